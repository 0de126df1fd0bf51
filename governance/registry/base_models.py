"""Base models in the registry: pre-trained `transformers` folders that jobs fine-tune.

A base model is a version like any other (sealed at rest, downloaded, rotated, revoked and
erased by the same code) whose architecture is `transformers-base` and whose weights are
the folder's *pack* (`governance.basemodels`: one safetensors stream, each file a `U8`
tensor). What makes it a base is decided here, in one place:

- what its uploader may state (`check_base_spec`): an SPDX license id and a source; no
  inputs, outputs, metrics, lineage, guarantee or preprocessing — those would be claims
  about a model Privet cannot serve;
- what Privet establishes from the bytes it received (`base_facts_json`): `model_type`,
  parameter count, the config, and the per-file SHA-256 manifest, written by the registry
  into the version's `preprocessing_json` (the caller's is refused), so that a job and
  the inference service rebuild exactly the files that were registered;
- how the gates see it (`kind_of`, `license_of`): `kind` "base" and its license, so that
  `policies/release.cedar` decides which licenses may be used, and an approver must agree,
  before any job may train on it (release = usable for training; a base is never served).

A base is "not trained on data held by Privet": its lineage names no dataset, and its
personal-data fact is false. Whatever it learnt elsewhere is the approver's judgement,
made at the release gate, which is audited like any release.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from sqlmodel import Session

from privet.governance.errors import FailedPrecondition, InvalidArgument, NotFound
from privet.governance.registry.records import VersionSpec, find_version

__all__ = ["BASE_ARCHITECTURE", "base_facts_json", "base_facts_of", "check_base_spec", "check_named_base", "base_is_released", "kind_of", "lineage_with_named_base", "license_of", "resolve_base"]

BASE_ARCHITECTURE = "transformers-base"
BASE_FACTS_VERSION = 1
# One SPDX license identifier (https://spdx.org/licenses/), or a LicenseRef- of the
# operator's own; expressions ("MIT OR Apache-2.0") are not accepted: the gate compares ids.
_SPDX_ID = re.compile(r"(?:LicenseRef-)?[A-Za-z0-9][A-Za-z0-9.+-]{0,63}")
MAX_SOURCE = 1024


def check_base_spec(spec: VersionSpec) -> None:
    """InvalidArgument naming the field unless a base upload states a license and a source
    and nothing a base cannot have; and unless only a base states a license or source."""
    if spec.architecture != BASE_ARCHITECTURE:
        if spec.base_license or spec.base_source:
            raise InvalidArgument("metadata.base", f"a license and source are stated for base models only (architecture {BASE_ARCHITECTURE})")
        return
    if not _SPDX_ID.fullmatch(spec.base_license):
        raise InvalidArgument("metadata.base.license", "one SPDX license identifier, e.g. Apache-2.0 or MIT (or LicenseRef-…)")
    if not spec.base_source.strip() or len(spec.base_source) > MAX_SOURCE:
        raise InvalidArgument("metadata.base.source", f"where the model comes from, 1-{MAX_SOURCE} characters")
    stated = {
        "metadata.preprocessing_json": spec.preprocessing_json, "metadata.inputs": spec.inputs, "metadata.outputs": spec.outputs,
        "metadata.metrics": spec.metrics, "metadata.lineage": spec.lineage, "metadata.guarantee": spec.guarantee,
        "metadata.trained_on_personal_data": spec.trained_on_personal_data,
    }
    for field, value in stated.items():
        if value:
            raise InvalidArgument(field, "not stated for a base model: the registry records what it establishes from the files")


def base_facts_json(facts: Any, spec: VersionSpec) -> str:
    """The version's `preprocessing_json` for a base: what the registry established from the
    pack (`BaseFacts`), and what the uploader stated (license, source), each named as such."""
    return json.dumps({
        "base": {"version": BASE_FACTS_VERSION, "established": facts.to_json(),
                 "stated": {"license": spec.base_license, "source": spec.base_source},
                 "data_held_by_privet": False},
    }, sort_keys=True)


def base_facts_of(architecture: str, preprocessing_json: str) -> Mapping[str, Any] | None:
    """The base facts of a version (None for any other version)."""
    if architecture != BASE_ARCHITECTURE:
        return None
    try:
        doc = json.loads(preprocessing_json or "{}")
    except ValueError:
        return None
    base = doc.get("base") if isinstance(doc, dict) else None
    return base if isinstance(base, dict) else None


def kind_of(architecture: str) -> str:
    """How the gates and the ownership policy see a version: "base" or "trained"."""
    return "base" if architecture == BASE_ARCHITECTURE else "trained"


def license_of(architecture: str, preprocessing_json: str) -> str:
    """A base's stated license ("" for any other version)."""
    base = base_facts_of(architecture, preprocessing_json)
    stated = base.get("stated") if base else None
    return str(stated.get("license", "")) if isinstance(stated, dict) else ""


def resolve_base(session: Session, reference: Any, field: str = "fine_tune.base") -> dict[str, Any]:
    """A job's base, `NAME:VERSION`, as Privet records it for the job: the model, version,
    pack digest and per-file manifest, model type and config, from the registry's own row.
    Only a RELEASED base (through the gates) may be trained on. InvalidArgument for a
    malformed reference, NotFound for no such version, FailedPrecondition for a version
    that is not a base, or not released, or erased."""
    if not isinstance(reference, str) or reference.count(":") != 1:
        raise InvalidArgument(field, "NAME:VERSION of a released base model")
    name, _, number = reference.partition(":")
    if not name or not (number.isascii() and number.isdigit()) or not 0 < int(number) < 2**62:
        raise InvalidArgument(field, "NAME:VERSION of a released base model")
    try:
        row = find_version(session, name, int(number), "")
    except NotFound:
        raise NotFound(f"no base model {reference}") from None
    base = base_facts_of(row.architecture, row.preprocessing_json)
    if base is None:
        raise FailedPrecondition(f"{reference} is not a base model (architecture {row.architecture!r})")
    if row.stage != "RELEASED" or row.erased:
        raise FailedPrecondition(f"the base {reference} is {'erased' if row.erased else row.stage}: only a base released through the gates may be trained on")
    established = base.get("established") or {}
    return {"model": row.model_name, "version": row.version, "digest": row.digest, "model_type": established.get("model_type", ""),
            "config": established.get("config", {}), "files": established.get("files", {})}


def check_named_base(session: Session, architecture: str, preprocessing_json: str) -> None:
    """A fine-tuned version names its base (in its model's hyperparameters and its
    tokenizer's record) as the registry holds it: an existing base version whose pack
    digest, file manifest and config are exactly those recorded. InvalidArgument naming
    `metadata.preprocessing_json` otherwise: an uploader cannot point a version at a base
    it was not built on, nor describe a base other than as it was registered."""
    from privet.governance.architectures.finetuned import FINE_TUNED_ARCH

    if architecture != FINE_TUNED_ARCH or not preprocessing_json:
        return
    field = "metadata.preprocessing_json"
    meta = json.loads(preprocessing_json)
    try:
        named = meta["model"]["hparams"]["base"]
        tokenizer_base = meta["preprocessor"]["base"]
    except (KeyError, TypeError):
        raise InvalidArgument(field, "a fine-tuned version names its base in model.hparams.base and preprocessor.base") from None
    if not isinstance(named, dict) or not isinstance(named.get("model"), str) or isinstance(named.get("version"), bool) or not isinstance(named.get("version"), int):
        raise InvalidArgument(field, "model.hparams.base names no base version")
    try:
        row = find_version(session, named["model"], int(named["version"]), "")
    except (NotFound, InvalidArgument):
        raise InvalidArgument(field, f"names base {named['model']}:{named['version']}, which the registry does not hold") from None
    base = base_facts_of(row.architecture, row.preprocessing_json)
    if base is None:
        raise InvalidArgument(field, f"{named['model']}:{named['version']} is not a base model")
    established = base.get("established") or {}
    recorded = {"digest": row.digest, "files": established.get("files"), "config": established.get("config"), "model_type": established.get("model_type")}
    differs = sorted(k for k, v in recorded.items() if named.get(k) != v)
    if differs:
        raise InvalidArgument(field, f"describes base {named['model']}:{named['version']} otherwise than the registry holds it ({', '.join(differs)})")
    if not isinstance(tokenizer_base, dict) or any(tokenizer_base.get(k) != named[k] for k in ("model", "version", "digest", "files")):
        raise InvalidArgument(field, "the tokenizer's base is not the model's")


_BASE_LINEAGE = ("base_model", "base_version", "base_digest")


def lineage_with_named_base(lineage: dict[str, str], architecture: str, preprocessing_json: str) -> dict[str, str]:
    """An uploaded version's lineage with its base fields taken from the base it is built
    from (its metadata, checked by `check_named_base`), never from what the uploader wrote
    there: a serving or audit decision that reads the lineage reads the real base."""
    kept = {k: v for k, v in lineage.items() if k not in _BASE_LINEAGE}
    from privet.governance.architectures.finetuned import FINE_TUNED_ARCH

    if architecture != FINE_TUNED_ARCH or not preprocessing_json:
        return kept
    named = json.loads(preprocessing_json)["model"]["hparams"]["base"]
    return {**kept, "base_model": str(named["model"]), "base_version": str(named["version"]), "base_digest": str(named["digest"])}


def base_is_released(session: Session, architecture: str, preprocessing_json: str) -> bool:
    """For the gates: whether the base a fine-tuned version is built from is RELEASED now
    (True for a version built on no base). A version whose base was revoked, or never
    released, does not advance: it could never serve."""
    from privet.governance.architectures.finetuned import FINE_TUNED_ARCH

    if architecture != FINE_TUNED_ARCH or not preprocessing_json:
        return True
    try:
        named = json.loads(preprocessing_json)["model"]["hparams"]["base"]
        row = find_version(session, str(named["model"]), int(named["version"]), "")
    except (KeyError, TypeError, ValueError, NotFound, InvalidArgument):
        return False
    return row.stage == "RELEASED" and not row.erased and base_facts_of(row.architecture, row.preprocessing_json) is not None
