"""Cedar policy evaluation (cedarpy): load and validate once, decide many times.

Policies, schema and the principal entities are parsed into cedarpy handles at load, so a
decision costs tens of microseconds; a reload builds a new engine and swaps it in whole.
"""

from __future__ import annotations

import json
import pathlib
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cedarpy
import yaml

from privet.governance.errors import PermissionDenied
from privet.governance.identity.principals import (
    SERVICE_ROLE,
    Directory,
    Principal,
    PrincipalsError,
    load_directory,
)
from privet.governance.policy.source import PolicySource, read_policy_dir

__all__ = ["DEFAULT_DENY", "Decision", "PolicyEngine", "PolicyError", "entity_uid", "fill_reason", "principal_uid"]

NAMESPACE = "Privet"
# Named in a denial that no policy permitted (Cedar's default deny has no policy of its own).
DEFAULT_DENY = "default-deny"


class PolicyError(Exception):
    """A policy set that must not be served. `problems` holds every one found, each naming its
    file and line (and the policy's @id where it has one); the message lists them all on one line."""

    def __init__(self, problems: str | Sequence[str]) -> None:
        self.problems = (problems,) if isinstance(problems, str) else tuple(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = f"{len(self.problems)} problems: " + "; ".join(self.problems)
        super().__init__(message)


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
    _sources: list[PolicySource] = field(default_factory=list)
    _by_action: dict[str, tuple[Any, dict[str, str]]] = field(default_factory=dict)  # action -> (policy subset, its ids)
    _ancestors: dict[str, set[str]] | None = None
    _reasons: dict[str, str] = field(default_factory=dict)  # @id -> its @reason annotation

    @classmethod
    def load(cls, folder: pathlib.Path) -> PolicyEngine:
        """Parse and validate `folder/*.cedar` against `folder/privet.cedarschema`, with the
        principals of `folder/principals.yaml`.

        Raises PolicyError listing every problem at once: a schema or policy that does not
        parse or validate (named by file, line and @id), a policy without an @id or with
        another's, a role a policy names that principals.yaml does not declare, and each
        problem of principals.yaml itself.
        """
        problems: list[str] = []
        schema = _load_schema(folder, problems)
        directory, declared = _load_principals(folder, problems)
        try:
            sources = read_policy_dir(folder)
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{folder}: cannot read the policies: {_one_line(str(exc))}")
            sources = []
        else:
            if not sources:
                problems.append(f"{folder}: no *.cedar policies found")
        roles = None if declared is None else {*declared, SERVICE_ROLE}
        ids = {f"policy{i}": _check_one(src, schema, roles, problems) for i, src in enumerate(sources)}
        first: dict[str, PolicySource] = {}
        for i, src in enumerate(sources):
            policy_id = ids[f"policy{i}"]
            if policy_id is None:
                continue
            if policy_id in first:
                problems.append(f'{src.where}: duplicate @id("{policy_id}") (first at {first[policy_id].where}): every policy needs its own id')
            else:
                first[policy_id] = src
        if problems:
            raise PolicyError(problems)
        assert directory is not None  # principals.yaml loaded: otherwise its problems were raised above
        text = "\n".join(s.text for s in sources)
        result = cedarpy.validate_policies(text, schema)
        if not result.validation_passed:  # cross-policy problems, should any remain, land here
            raise PolicyError([_one_line(str(e)) for e in result.errors])
        try:
            entities = cedarpy.Entities.from_json_str(json.dumps(_directory_entities(directory)), schema)
        except ValueError as exc:
            raise PolicyError(f"principals.yaml: the principals do not fit the schema: {_one_line(str(exc))}") from exc
        engine = cls(folder, directory, cedarpy.PolicySet.from_str(text), schema, entities, {k: v for k, v in ids.items() if v})
        engine._sources = sources
        engine._reasons = _reasons(sources)
        return engine

    def reason(self, policy_id: str) -> str | None:
        """The policy's @reason annotation (what a denial by it says), if it has one."""
        return self._reasons.get(policy_id)

    def denial_reasons(self, policy_ids: tuple[str, ...], values: dict[str, Any]) -> tuple[str, ...]:
        """What each deciding policy's @reason says, its {placeholders} filled from `values`
        (one it does not know is left as written); a policy without one says nothing."""
        return tuple(fill_reason(template, values) for pid in policy_ids if (template := self.reason(pid)))

    @property
    def policy_ids(self) -> tuple[str, ...]:
        """The @id of every policy in the set, in file order."""
        return tuple(self._ids.values())

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

    def with_entities(self, extra_entities: list[dict[str, Any]]) -> Any:
        """A parsed entity set: the directory plus `extra_entities`. Parse once, decide often
        (a per-call parse costs more than the decision itself)."""
        return self._entities.with_added_json_str(json.dumps(extra_entities))

    def decide(self, principal: Principal, action: str, resource: tuple[str, str], context: dict[str, Any], extra_entities: list[dict[str, Any]] | None = None, *, entities: Any = None) -> Decision:
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


def _scope_matches(scope: dict[str, Any], related: set[str]) -> bool:
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


def _reasons(sources: list[PolicySource]) -> dict[str, str]:
    """@id -> @reason of every policy that states one (policies/release.cedar)."""
    out: dict[str, str] = {}
    for src in sources:
        for policy in json.loads(cedarpy.policies_to_json_str(src.text)).get("staticPolicies", {}).values():
            annotations = policy.get("annotations", {})
            if "id" in annotations and "reason" in annotations:
                out[annotations["id"]] = annotations["reason"]
    return out


def _annotated_id(src: PolicySource) -> str | None:
    """The policy's @id from its text (so even a policy that does not parse is named), or None."""
    marker = '@id("'
    at = src.text.find(marker)
    if at < 0:
        return None
    end = src.text.find('")', at)
    return src.text[at + len(marker) : end]


def _load_schema(folder: pathlib.Path, problems: list[str]) -> Any:
    schema_path = folder / "privet.cedarschema"
    try:
        return cedarpy.Schema.from_str(schema_path.read_text())
    except FileNotFoundError:
        problems.append(f"{schema_path}: schema file missing")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{schema_path}: cannot read the schema: {_one_line(str(exc))}")
    except ValueError as exc:
        problems.append(f"{schema_path.name}: schema does not parse: {_one_line(str(exc))}")
    return None


def _load_principals(folder: pathlib.Path, problems: list[str]) -> tuple[Directory | None, tuple[str, ...] | None]:
    """The directory (None if principals.yaml has problems, which are added) and the roles it
    declares well (None if there is no telling), to check the policies' roles against."""
    path = folder / "principals.yaml"
    try:
        directory = load_directory(path)
    except PrincipalsError as exc:
        problems.extend(exc.problems)
        return None, exc.roles
    except FileNotFoundError:
        problems.append(f"{path}: principals file missing")
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        problems.append(f"{path}: cannot read the principals: {_one_line(str(exc))}")
    else:
        return directory, directory.roles
    return None, None


def _check_one(src: PolicySource, schema: Any, roles: set[str] | None, problems: list[str]) -> str | None:
    """Check one policy on its own, adding each problem found; returns its @id (None if it has none)."""
    try:
        est = json.loads(cedarpy.policies_to_json_str(src.text))
    except ValueError as exc:
        policy_id = _annotated_id(src)
        named = f', @id("{policy_id}")' if policy_id is not None else ""
        problems.append(f"{src.where}: policy does not parse{named}: {_one_line(str(exc))}")
        return policy_id
    parsed = [*est.get("staticPolicies", {}).values(), *est.get("templates", {}).values()]
    policy_id = next((p["annotations"]["id"] for p in parsed if "id" in p.get("annotations", {})), None)
    named = f', @id("{policy_id}")' if policy_id is not None else ""
    if policy_id is None:
        problems.append(f"{src.where}: policy has no @id(\"...\") annotation")
    if est.get("templates"):  # nothing links templates here, and decisions read static policies only
        problems.append(f"{src.where}: policy{named.lstrip(',')} is a template (?principal or ?resource): write it for the principals it means")
    if schema is not None:
        result = cedarpy.validate_policies(src.text, schema)
        if not result.validation_passed:
            # Each policy is validated alone, so cedar's "for policy `policy0`," says nothing.
            errors = "; ".join(sorted(_one_line(re.sub(r"^for policy `[^`]*`, ", "", e.error)) for e in result.errors))
            problems.append(f"{src.where}: policy does not validate against the schema{named}: {errors}")
    if roles is not None:
        for role in sorted(_roles_named(est) - roles):
            problems.append(f"{src.where}: policy{named.lstrip(',')} names role {role!r}, which principals.yaml does not "
                            f"declare (declared: {', '.join(sorted(roles))})")
    return policy_id


def _roles_named(est: Any) -> set[str]:
    """Every Privet::Role id that a policy's JSON form mentions (scope and conditions)."""
    found: set[str] = set()
    stack = [est]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("type") == f"{NAMESPACE}::Role" and isinstance(node.get("id"), str):
                found.add(node["id"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _one_line(text: str) -> str:
    return " ".join(text.split())


class _AsWritten(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill_reason(template: str, values: dict[str, Any]) -> str:
    """A @reason with its {placeholders} filled from `values`; an unknown one stays as written."""
    return template.format_map(_AsWritten(values))
