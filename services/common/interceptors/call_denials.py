"""Every call refused before it reaches a servicer lands in the audit log: unauthenticated
peers, calls the policy denies, streams refused a slot or cut off for idling. Denials go
through `Runtime.deny`, which coalesces a flood of them."""

from __future__ import annotations

from privet.governance.audit.log import Event
from privet.governance.runtime import Runtime
from privet.services.common.uploads import Upload

__all__ = ["audit_call_denial", "audit_cut_off"]


def audit_call_denial(runtime: Runtime, who: str, action: str, why: str, policy_ids: tuple[str, ...] = (), *, api: str = "") -> None:
    api = api or action.split(".", 1)[0]
    runtime.deny(Event(principal=who, action=action, resource=f"api/{api}", decision="deny", policy_ids=policy_ids, details={"reason": why}))


def audit_cut_off(runtime: Runtime, upload: Upload) -> None:
    """The watchdog cut an idle stream off (the call itself ends CANCELLED)."""
    api = upload.api or upload.action.split(".", 1)[0]
    runtime.record(Event(principal=upload.principal, action=upload.action, resource=f"api/{api}", decision="deny",
                         details={"reason": f"stream cut off: idle for more than {upload.idle_limit} s"}))
