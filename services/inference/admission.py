"""Whether a prediction request may run, decided before it joins a batch: the model must be
served (released, attested, loadable), the caller within its quota, and the policy must
allow this principal this model for the declared purpose. Every request is counted in the
audit log, whatever its outcome: served, refused by policy, quota or stage, or invalid."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from privet.governance.errors import InvalidArgument, PermissionDenied, PrivetError, ResourceExhausted
from privet.governance.identity.principals import Principal
from privet.governance.policy.engine import Decision, PolicyEngine
from privet.governance.policy.holder import PolicyHolder
from privet.governance.registry.gates import served_model_entity
from privet.services.inference.loader import LoadedModel, ModelCache
from privet.services.inference.metering import AuditCounter, Quotas

__all__ = ["MAX_PURPOSE", "PREDICT_ACTION", "RELEASED", "Admission", "Admitted", "denial"]

PREDICT_ACTION = "inference.Predict"
MAX_PURPOSE = 128  # characters of a declared purpose (and of a model name, as counted)
RELEASED = "RELEASED"  # the only stage that serves (the policy checks it too)


@dataclass(frozen=True)
class Admitted:
    """A request the policy allowed: its model, and how to count its outcome once known."""

    model: LoadedModel
    count: Callable[[str], None]


class Admission:
    def __init__(self, models: ModelCache, quotas: Quotas, audit: AuditCounter, policies: PolicyHolder) -> None:
        self._models = models
        self._quotas = quotas
        self._audit = audit
        self._policies = policies
        self._entities: dict[tuple[str, int], tuple[object, Any]] = {}

    def _entities_for(self, engine: Any, name: str, version: int, epsilon: float, owner: str) -> Any:
        """The policy entities with this released version's facts (the registry's rule for a
        served model, ε rounded as the gates round it), parsed once per version and policy set
        (a version's facts never change)."""
        key = (name, version)
        cached = self._entities.get(key)
        if cached is None or cached[0] is not engine:
            handle = engine.with_entities([served_model_entity(name, version, RELEASED, epsilon or None, owner)])
            cached = self._entities[key] = (engine, handle)
        return cached[1]

    def decide(self, who: Principal, name: str, version: int, epsilon: float, owner: str, purpose: str, *, max_new_tokens: int | None = None) -> Decision:
        """The policy's decision on `who` calling released version `name`:`version` (its ε and
        owner as the registry states them) for `purpose`, with the caller's quota use this
        minute: what `admit` asks, taking no quota and counting nothing. The repository index
        and the model configuration show a caller exactly the versions this allows."""
        engine = self._policies.engine
        principal = who.id.principal
        context: dict[str, Any] = {"purpose": purpose, "quota_used": self._quotas.used(principal, name), "quota_limit": self._quotas.per_minute}
        if max_new_tokens is not None:  # a generative model's request: the policy caps it
            context["max_new_tokens"] = max_new_tokens
        return engine.decide(who, PREDICT_ACTION, ("ServedModel", f"{name}:{version}"), context, entities=self._entities_for(engine, name, version, epsilon, owner))

    def admit(self, who: Principal, model_name: str, model_version: str, purpose: str, *, max_new_tokens: int | None = None) -> Admitted:
        """The request's model, once everything allows it; raises (counted) otherwise."""
        principal = who.id.principal
        if len(purpose) > MAX_PURPOSE:  # the caller's string goes into the log: bounded first
            self._audit.count(principal, model_name[:MAX_PURPOSE], 0, "", "(too long)", "invalid", ("invalid-input",))
            raise InvalidArgument("parameters.purpose", f"at most {MAX_PURPOSE} characters").mark_audited()
        try:
            model = self._models.get(model_name, model_version or "released")
        except PrivetError as exc:
            self._audit.count(principal, model_name[:MAX_PURPOSE], 0, "", purpose, "deny", (f"not-served:{type(exc).__name__}",))
            exc.mark_audited()
            raise
        count = functools.partial(self._audit.count, principal, model.name, model.version, model.digest, purpose)
        try:
            self._quotas.take(principal, model.name)
        except ResourceExhausted as exc:
            count("deny", ("quota-exceeded",))
            exc.mark_audited()
            raise
        decision = self.decide(who, model.name, model.version, model.epsilon, model.owner, purpose,
                               max_new_tokens=max_new_tokens if model.generates else None)
        if not decision.allowed:
            count("deny", decision.policy_ids)
            raise denial(principal, model.name, model.version, purpose, decision, self._policies.engine)
        return Admitted(model, lambda outcome: count(outcome, decision.policy_ids))


def denial(principal: str, name: str, version: int, purpose: str, decision: Decision, engine: PolicyEngine) -> PermissionDenied:
    """The refusal a denied caller gets: what the deciding policies say (their @reason,
    e.g. which purposes are approved) and their ids."""
    reasons = engine.denial_reasons(decision.policy_ids, {"caller": principal, "purpose": repr(purpose), "model": f"{name}:{version}"})
    said = f": {'; '.join(reasons)}" if reasons else ""
    return PermissionDenied(f"{principal} may not use {name}:{version} for purpose {purpose!r}{said} (denied by {', '.join(decision.policy_ids)})",
                            policy_ids=decision.policy_ids, reasons=reasons)
