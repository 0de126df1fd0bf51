"""What a caller states is checked before anything is written: a new version's metadata
(`check_spec`) and a release request's metric thresholds (`check_thresholds`).

Each raises InvalidArgument naming the field at fault, as the API reports it."""

from __future__ import annotations

import json
import math
import re

from privet.governance.errors import InvalidArgument
from privet.governance.jsonlimits import check_json_depth
from privet.governance.privacy.guarantee import check_stated_guarantee
from privet.governance.registry.base_models import check_base_spec
from privet.governance.registry.records import VersionSpec

__all__ = ["MAX_DESCRIPTION", "check_spec", "check_thresholds", "required_reason"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MAX_DESCRIPTION = 4096


def check_spec(spec: VersionSpec) -> None:
    """A new version's metadata: its model name, finite metrics, a complete and in-range DP
    guarantee (if stated), a non-negative expected size, a bounded description, and JSON
    where JSON belongs."""
    if not _NAME.fullmatch(spec.model_name or ""):
        raise InvalidArgument("metadata.model_name", "1-128 characters: letters, digits, '.', '_' or '-', starting with a letter or digit")
    for key, value in spec.metrics.items():
        if not math.isfinite(value):
            raise InvalidArgument(f"metadata.metrics[{key}]", "must be a finite number")
    if spec.guarantee is not None:
        check_stated_guarantee(spec.guarantee, field="metadata.guarantee")
    if spec.expected_size < 0:
        raise InvalidArgument("metadata.expected_size", "must not be negative")
    if len(spec.description) > MAX_DESCRIPTION:
        raise InvalidArgument("metadata.description", f"at most {MAX_DESCRIPTION} characters")
    for which in ("preprocessing_json",):
        text = getattr(spec, which)
        if text:
            check_json_depth(text, field=f"metadata.{which}")  # before the parser's recursion sees it
            try:
                json.loads(text)
            except ValueError:
                raise InvalidArgument(f"metadata.{which}", "must be JSON") from None
    check_base_spec(spec)


def check_thresholds(thresholds: dict[str, float] | None) -> dict[str, float]:
    """The metric thresholds of a release request, as str -> float; each must be finite."""
    limits = {str(k): float(v) for k, v in (thresholds or {}).items()}
    for key, value in limits.items():
        if not math.isfinite(value):
            raise InvalidArgument(f"metric_thresholds[{key}]", "must be a finite number")
    return limits


def required_reason(reason: str, field: str = "reason") -> str:
    """A non-blank reason: revocations and alias moves are explained in the audit log.
    InvalidArgument naming `field` otherwise."""
    if not reason.strip():
        raise InvalidArgument(field, "required: say why (it is kept in the audit log)")
    return reason
