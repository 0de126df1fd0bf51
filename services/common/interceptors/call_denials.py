"""Every refused call lands in the audit log: unauthenticated peers, calls the policy
denies, streams refused a slot or cut off for idling, and requests a servicer refuses
(`audit_refusal`). Denials go through `Runtime.deny`, which coalesces a flood of them."""

from __future__ import annotations

import logging
import re

import grpc

from privet.governance.audit.log import Event
from privet.governance.errors import InvalidArgument, PrivetError
from privet.governance.runtime import Runtime
from privet.services.common.errors import MAX_DETAIL_BYTES, bounded, row_for
from privet.services.common.uploads import Upload

__all__ = ["audit_call_denial", "audit_cut_off", "audit_refusal"]

log = logging.getLogger("privet.refusals")

# A refusal quotes the caller's input ("invalid value 'Ana Souza'"): the caller may read it
# back, but the audit log is append-only and kept for years, so a quoted value (which may be
# a cell of personal data) is not copied into it; the field at fault and the reason are.
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def audit_call_denial(runtime: Runtime, who: str, action: str, why: str, policy_ids: tuple[str, ...] = (), *, api: str = "") -> None:
    api = api or action.split(".", 1)[0]
    runtime.deny(Event(principal=who, action=action, resource=f"api/{api}", decision="deny", policy_ids=policy_ids, details={"reason": why}))


def audit_cut_off(runtime: Runtime, upload: Upload) -> None:
    """The watchdog cut an idle stream off (the call itself ends CANCELLED)."""
    api = upload.api or upload.action.split(".", 1)[0]
    runtime.record(Event(principal=upload.principal, action=upload.action, resource=f"api/{api}", decision="deny",
                         details={"reason": f"stream cut off: idle for more than {upload.idle_limit} s"}))


def audit_refusal(runtime: Runtime, who: str, action: str, exc: PrivetError, *, api: str) -> None:
    """A request the servicer refused: its status, the field at fault and the reason, with
    quoted input left out."""
    status = row_for(exc).code
    code = status.name if isinstance(status, grpc.StatusCode) else "UNKNOWN"
    details = {"status": code, "reason": bounded(_QUOTED.sub("'…'", exc.message), MAX_DETAIL_BYTES)}
    if isinstance(exc, InvalidArgument):
        details["field"] = bounded(_QUOTED.sub("'…'", exc.field), 256)
    log.warning("refused %s by %s: %s %s", action, who, code, details["reason"])
    runtime.deny(Event(principal=who, action=action, resource=f"api/{api}", decision="deny", details=details))
