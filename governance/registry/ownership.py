"""Models and versions as Cedar sees them for ownership decisions (policies/ownership.cedar)."""

from __future__ import annotations

from privet.governance.policy.ownership import Owned
from privet.governance.store.registry_tables import Model

__all__ = ["owned_model"]


def owned_model(model: Model) -> Owned:
    return Owned("Model", model.name, {"name": model.name, "owner": model.owner, "team": model.team}, f"model/{model.name}")

