"""Cedar policy evaluation (cedarpy): load and validate once, decide many times.

Policies, schema and the principal entities are parsed into cedarpy handles at load, so a
decision costs tens of microseconds; a reload builds a new engine and swaps it in whole.
"""

from __future__ import annotations

import json
import pathlib
import threading
from dataclasses import dataclass, field
from typing import Any

import cedarpy

from governance.errors import PermissionDenied
from governance.identity.principals import Directory, Principal, load_directory
from governance.policy.source import PolicySource, read_policy_dir

__all__ = ["DEFAULT_DENY", "PolicyError", "Decision", "PolicyEngine", "entity_uid", "principal_uid"]

NAMESPACE = "Privet"
# Named in a denial that no policy permitted (Cedar's default deny has no policy of its own).
DEFAULT_DENY = "default-deny"


class PolicyError(Exception):
    """A policy set that must not be served: it does not parse or does not validate."""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    policy_ids: tuple[str, ...]  # the @id of each policy that decided (permits if allowed, forbids if denied)
    errors: tuple[str, ...] = ()

    def require(self, what: str) -> None:
        """Raise PermissionDenied unless allowed, naming the deciding policies."""
        if not self.allowed:
            why = f" by {', '.join(self.policy_ids)}"
            raise PermissionDenied(f"{what} denied{why}", policy_ids=self.policy_ids)


def entity_uid(entity_type: str, entity_id: str) -> str:
    return f'{NAMESPACE}::{entity_type}::{json.dumps(entity_id)}'


def principal_uid(principal: Principal) -> str:
    return entity_uid("User" if principal.id.kind == "user" else "Service", principal.id.name)


def _directory_entities(directory: Directory) -> list[dict[str, Any]]:
    entities: list[dict[str, Any]] = [
        {"uid": {"type": f"{NAMESPACE}::Role", "id": role}, "attrs": {}, "parents": []}
        for role in (*directory.roles, "service")
    ]
    for p in directory.principals.values():
        if p.id.kind == "user":
            uid, attrs = {"type": f"{NAMESPACE}::User", "id": p.name}, {"name": p.name, "role": p.role, "team": p.team}
        else:
            uid, attrs = {"type": f"{NAMESPACE}::Service", "id": p.name}, {"name": p.name, "team": ""}
        entities.append({"uid": uid, "attrs": attrs, "parents": [{"type": f"{NAMESPACE}::Role", "id": p.role}]})
    return entities


@dataclass
class PolicyEngine:
    """A validated policy set with its schema and directory. Build with `PolicyEngine.load`."""

    folder: pathlib.Path
    directory: Directory
    _policies: Any
    _schema: Any
    _entities: Any
    _ids: dict[str, str]  # cedar's generated id -> our @id
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _sources: list = field(default_factory=list)
    _by_action: dict = field(default_factory=dict)
    _ancestors: dict | None = None

    @classmethod
    def load(cls, folder: pathlib.Path) -> "PolicyEngine":
        """Parse and validate `folder/*.cedar` against `folder/privet.cedarschema`.

        Raises PolicyError naming the file and line of the first policy that fails.
        """
        schema_path = folder / "privet.cedarschema"
        try:
            schema = cedarpy.Schema.from_str(schema_path.read_text())
        except FileNotFoundError as exc:
            raise PolicyError(f"{schema_path}: schema file missing") from exc
        except ValueError as exc:
            raise PolicyError(f"{schema_path.name}: schema does not parse: {exc}") from exc
        sources = read_policy_dir(folder)
        if not sources:
            raise PolicyError(f"{folder}: no *.cedar policies found")
        for src in sources:
            _check_one(src, schema)
        text = "\n".join(s.text for s in sources)
        result = cedarpy.validate_policies(text, schema)
        if not result.validation_passed:  # cross-policy problems (e.g. duplicate @id) land here
            raise PolicyError("; ".join(str(e) for e in result.errors))
        ids = {f"policy{i}": _annotated_id(src) for i, src in enumerate(sources)}
        dup = {v for v in ids.values() if list(ids.values()).count(v) > 1}
        if dup:
            raise PolicyError(f"duplicate @id {sorted(dup)[0]!r}: every policy needs its own id")
        directory = load_directory(folder / "principals.yaml")
        entities = cedarpy.Entities.from_json_str(json.dumps(_directory_entities(directory)), schema)
        engine = cls(folder, directory, cedarpy.PolicySet.from_str(text), schema, entities, ids)
        engine._sources = sources
        return engine

    def _policies_for(self, action: str) -> tuple[Any, dict[str, str]]:
        """Only the policies whose action scope can match `action` (all actions, the action
        itself, or a group that holds it): the same decision, for a fraction of the work."""
        cached = self._by_action.get(action)
        if cached is not None:
            return cached
        if self._ancestors is None:
            parents = {e["uid"]["id"]: [p["id"] for p in e["parents"]] for e in json.loads(str(self._entities)) if e["uid"]["type"] == f"{NAMESPACE}::Action"}
            self._ancestors = {a: _closure(a, parents) for a in parents}
        related = {action, *self._ancestors.get(action, ())}
        est = json.loads(cedarpy.policies_to_json_str("\n".join(s.text for s in self._sources)))["staticPolicies"]
        keep = [i for i, src in enumerate(self._sources) if _scope_matches(est[f"policy{i}"]["action"], related)]
        subset = cedarpy.PolicySet.from_str("\n".join(self._sources[i].text for i in keep))
        ids = {f"policy{j}": self._ids[f"policy{i}"] for j, i in enumerate(keep)}
        self._by_action[action] = (subset, ids)
        return subset, ids

    def with_entities(self, extra_entities: list[dict]) -> Any:
        """A parsed entity set: the directory plus `extra_entities`. Parse once, decide often
        (a per-call parse costs more than the decision itself)."""
        return self._entities.with_added_json_str(json.dumps(extra_entities))

    def decide(self, principal: Principal, action: str, resource: tuple[str, str], context: dict[str, Any], extra_entities: list[dict] | None = None, *, entities: Any = None) -> Decision:
        """One Cedar request. `resource` is (entity type, id); `extra_entities` describe it
        (or `entities`, a handle from `with_entities` of this engine).

        Default deny: no permit → denied with no policy ids. A forbid wins over permits.
        """
        if entities is None:
            entities = self.with_entities(extra_entities) if extra_entities else self._entities
        request = {
            "principal": principal_uid(principal),
            "action": entity_uid("Action", action),
            "resource": entity_uid(*resource),
            "context": context,
        }
        policies, names = self._policies_for(action)
        result = cedarpy.is_authorized(request, policies, entities)
        ids = tuple(sorted(names.get(r, r) for r in result.diagnostics.reasons))
        if not result.allowed and not ids:
            ids = (DEFAULT_DENY,)
        return Decision(result.allowed, ids, tuple(str(e) for e in result.diagnostics.errors))


def _closure(action: str, parents: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    stack = list(parents.get(action, ()))
    while stack:
        group = stack.pop()
        if group not in seen:
            seen.add(group)
            stack.extend(parents.get(group, ()))
    return seen


def _scope_matches(scope: dict, related: set[str]) -> bool:
    """Whether a policy's action constraint (Cedar JSON form) can hold for an action whose
    self-and-groups are `related`."""
    if scope["op"] == "All":
        return True
    if scope["op"] == "==":
        return scope["entity"]["id"] in related
    if scope["op"] == "in":
        targets = scope.get("entities") or [scope["entity"]]
        return any(t["id"] in related for t in targets)
    return True  # anything newer: keep it, never drop a policy that might apply


def _annotated_id(src: PolicySource) -> str:
    marker = '@id("'
    at = src.text.find(marker)
    if at < 0:
        raise PolicyError(f"{src.where}: policy has no @id(\"...\") annotation")
    end = src.text.find('")', at)
    return src.text[at + len(marker) : end]


def _check_one(src: PolicySource, schema: Any) -> None:
    try:
        cedarpy.PolicySet.from_str(src.text)
    except ValueError as exc:
        raise PolicyError(f"{src.where}: policy does not parse: {exc}") from exc
    result = cedarpy.validate_policies(src.text, schema)
    if not result.validation_passed:
        errors = "; ".join(e.error for e in result.errors)
        raise PolicyError(f"{src.where}: policy does not validate against the schema: {errors}")
