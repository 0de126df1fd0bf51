"""Per-request accounting off the hot path: quotas, and audit counts written in batches.

Every request — allowed or denied — is counted under (principal, model, version, weights
digest, purpose, decision, policy ids); the counts are appended to the audit log as one event
per key about once a second, and `flush()` makes them durable on demand (and at shutdown).
The payload is never recorded.
"""

from __future__ import annotations

import collections
import threading
import time

from privet.governance.audit.log import Event
from privet.governance.audit.periodic import PeriodicFlush
from privet.governance.errors import ResourceExhausted
from privet.governance.registry.records import version_resource
from privet.governance.runtime import Runtime

__all__ = ["Quotas", "AuditCounter"]


class Quotas:
    """Requests per minute per (principal, model): a sliding one-minute window."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._calls: dict[tuple[str, str], collections.deque] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()

    def used(self, principal: str, model: str) -> int:
        with self._lock:
            window = self._calls[(principal, model)]
            cutoff = time.monotonic() - 60
            while window and window[0] < cutoff:
                window.popleft()
            return len(window)

    def take(self, principal: str, model: str) -> None:
        with self._lock:
            window = self._calls[(principal, model)]
            cutoff = time.monotonic() - 60
            while window and window[0] < cutoff:
                window.popleft()
            if len(window) >= self.per_minute:
                raise ResourceExhausted(f"quota of {self.per_minute} requests a minute for {principal} on {model} is used up")
            window.append(time.monotonic())


# The most distinct counted keys one principal writes per flush. Purposes and model names
# come from the caller: without a bound, varying them made every refused call an event.
MAX_KEYS_PER_PRINCIPAL = 32
VARIOUS = "(various)"


def _bounded(pending: collections.Counter) -> collections.Counter:
    """`pending` with each principal's keys beyond its MAX_KEYS_PER_PRINCIPAL most counted
    folded into one key per decision: model and purpose "(various)", the union of the
    deciding policies. Who, the decision, which policies and how many are kept."""
    by_principal: dict[str, list] = collections.defaultdict(list)
    for key, n in pending.items():
        by_principal[key[0]].append((n, key))
    out: collections.Counter = collections.Counter()
    for principal, items in by_principal.items():
        items.sort(key=lambda item: (-item[0], repr(item[1])))
        for n, key in items[:MAX_KEYS_PER_PRINCIPAL]:
            out[key] += n
        folded: dict[str, tuple[int, set]] = {}
        for n, (_p, _m, _v, _d, _purpose, decision, ids) in items[MAX_KEYS_PER_PRINCIPAL:]:
            count, policies = folded.get(decision, (0, set()))
            folded[decision] = (count + n, policies | set(ids))
        for decision, (n, policies) in folded.items():
            out[(principal, VARIOUS, 0, "", VARIOUS, decision, tuple(sorted(policies)))] += n
    return out


class AuditCounter:
    def __init__(self, runtime: Runtime, *, every_s: float = 1.0) -> None:
        self._rt = runtime
        self._counts: collections.Counter = collections.Counter()
        self._lock = threading.Lock()
        self._clock = PeriodicFlush(self.flush, every_s, "privet-inference-audit")

    def count(self, principal: str, model: str, version: int, digest: str, purpose: str, decision: str, policy_ids: tuple[str, ...]) -> None:
        with self._lock:
            self._counts[(principal, model, version, digest, purpose, decision, policy_ids)] += 1

    def flush(self) -> int:
        """Write the pending counts as audit events; returns how many requests they cover."""
        with self._lock:
            pending, self._counts = self._counts, collections.Counter()
        if not pending:
            return 0
        pending = _bounded(pending)
        events = [
            Event(principal=p, action="inference.ModelInfer", resource=version_resource(m, v), decision=d, policy_ids=ids, details={"requests": n, "weights_digest": digest, "purpose": purpose})
            for (p, m, v, digest, purpose, d, ids), n in pending.items()
        ]
        try:
            self._rt.write(lambda _s: [self._rt.audit.append(e) for e in events])
        except Exception:
            with self._lock:  # keep them for the next round: counts are never dropped
                self._counts.update(pending)
            raise
        return sum(pending.values())

    def stop(self, _grace: float = 0.0) -> None:
        self._clock.close()
