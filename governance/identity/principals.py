"""Principals and their roles, read from policies/principals.yaml."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from privet.governance.errors import InvalidArgument, PrivetError, Unauthenticated
from privet.governance.identity.spiffe import SpiffeId, check_name

__all__ = ["SERVICE_ROLE", "Directory", "Principal", "PrincipalsError", "add_principal", "load_directory", "parse_directory"]

# The role of every service identity: Privet gives it, the file never does (a user given it
# would act with a service's rights).
SERVICE_ROLE = "service"
_TOP_KEYS = ("roles", "users", "services")
_USER_KEYS = ("role", "team")


@dataclass(frozen=True)
class Principal:
    id: SpiffeId
    role: str
    team: str = ""  # the team whose datasets, jobs and models a user works on ("" = none: own things only)

    @property
    def name(self) -> str:
        return self.id.name


@dataclass(frozen=True)
class Directory:
    """Who exists. Services are principals too (kind "service", role "service")."""

    roles: tuple[str, ...]
    principals: dict[str, Principal]  # keyed by SpiffeId.principal ("user/alice")

    def resolve(self, spiffe: SpiffeId) -> Principal:
        found = self.principals.get(spiffe.principal)
        if found is None:
            raise Unauthenticated(f"{spiffe.principal} is not a known principal")
        return found

    def users(self) -> list[Principal]:
        return [p for p in self.principals.values() if p.id.kind == "user"]


class PrincipalsError(InvalidArgument):
    """A principals.yaml that must not be used. `problems` holds every one found, each as
    "FILE:LINE: KEY: what is wrong". `roles` are the roles that were declared well (None if
    the file did not parse), so that policies can still be checked against them."""

    def __init__(self, problems: Sequence[str], roles: tuple[str, ...] | None = None) -> None:
        self.problems = tuple(problems)
        self.roles = roles
        PrivetError.__init__(self, "; ".join(self.problems))
        self.field = "principals.yaml"
        self.description = self.message


def load_directory(path: pathlib.Path) -> Directory:
    """Read and check principals.yaml. Raises PrincipalsError listing every problem (OSError if
    the file cannot be read)."""
    return parse_directory(path.read_text(), path.name)


def parse_directory(text: str, source: str = "principals.yaml") -> Directory:
    """The directory that `text` describes. Raises PrincipalsError listing every problem: YAML
    that does not parse, an unknown key, a role that is not declared under `roles:`, a bad name."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        why = getattr(exc, "problem", None) or str(exc)
        raise PrincipalsError([f"{source}:{mark.line + 1 if mark else 1}: not valid YAML: {_one_line(why)}"]) from exc
    lines = _key_lines(text)
    found: list[tuple[int, str]] = []

    def bad(key: str, message: str) -> None:
        line = _line_of(lines, key)
        found.append((line, f"{source}:{line}: {key}: {message}"))

    if not isinstance(raw, dict):
        bad("roles", "the file must be a mapping with roles:, users: and services:")
        raise PrincipalsError([message for _, message in found])
    for key in raw:
        if key not in _TOP_KEYS:
            bad(str(key), f"unknown key (known: {', '.join(_TOP_KEYS)})")
    roles = _roles(raw, bad)
    principals: dict[str, Principal] = {}
    users = raw.get("users") or {}
    if not isinstance(users, dict):
        bad("users", "must be a mapping of user name to {role: ..., team: ...}")
        users = {}
    for name, entry in users.items():
        where = f"users.{name}"
        if not _valid_name(name, where, bad):
            continue
        if not isinstance(entry, dict):
            bad(where, "must be a mapping such as {role: data-scientist}")
            continue
        for key in entry:
            if key not in _USER_KEYS:
                bad(f"{where}.{key}", f"unknown key (known: {', '.join(_USER_KEYS)})")
        role = entry.get("role")
        if role is None:
            bad(f"{where}.role", "missing: every user has a role")
            continue
        if not isinstance(role, str) or role not in roles:
            bad(f"{where}.role", f"unknown role {role!r} (known: {', '.join(roles)})")
            continue
        team = entry.get("team") or ""
        if team and not _valid_name(team, f"{where}.team", bad):
            continue
        p = Principal(SpiffeId("user", name), role, team)
        principals[p.id.principal] = p
    services = raw.get("services") or []
    if not isinstance(services, list):
        bad("services", "must be a list of service names")
        services = []
    for i, name in enumerate(services):
        if not _valid_name(name, f"services[{i}]", bad):
            continue
        if f"service/{name}" in principals:
            bad(f"services[{i}]", f"{name!r} is listed twice")
        p = Principal(SpiffeId("service", name), SERVICE_ROLE)
        principals[p.id.principal] = p
    if found:
        raise PrincipalsError([message for _, message in sorted(found, key=lambda f: f[0])], roles)
    return Directory(roles, principals)


def _roles(raw: dict[str, Any], bad: Any) -> tuple[str, ...]:
    roles = raw.get("roles")
    if roles is None:
        bad("roles", "missing: list the roles, e.g. roles: [admin, data-scientist]")
        return ()
    if not isinstance(roles, list):
        bad("roles", "must be a list of role names")
        return ()
    out: list[str] = []
    for i, role in enumerate(roles):
        if not _valid_name(role, f"roles[{i}]", bad):
            continue
        if role == SERVICE_ROLE:
            bad(f"roles[{i}]", f"{SERVICE_ROLE!r} is reserved for service identities")
        elif role in out:
            bad(f"roles[{i}]", f"{role!r} is listed twice")
        else:
            out.append(role)
    return tuple(out)


def _valid_name(name: Any, where: str, bad: Any) -> bool:
    if not isinstance(name, str):
        bad(where, f"{name!r} is not a name")
        return False
    try:
        check_name(name, where)
    except InvalidArgument as exc:
        bad(where, exc.description)
        return False
    return True


def _key_lines(text: str) -> dict[str, int]:
    """The 1-based line of each key ("users.bob.role") and list item ("roles[2]") in `text`."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    out: dict[str, int] = {}

    def walk(n: Any, path: str) -> None:
        if isinstance(n, yaml.MappingNode):
            for key, value in n.value:
                sub = f"{path}.{key.value}" if path else str(key.value)
                out.setdefault(sub, key.start_mark.line + 1)
                walk(value, sub)
        elif isinstance(n, yaml.SequenceNode):
            for i, value in enumerate(n.value):
                sub = f"{path}[{i}]"
                out.setdefault(sub, value.start_mark.line + 1)
                walk(value, sub)

    if node is not None:
        walk(node, "")
    return out


def _line_of(lines: dict[str, int], key: str) -> int:
    """The line of `key`, else of the nearest enclosing key that has one, else 1."""
    while key:
        if key in lines:
            return lines[key]
        cut = max(key.rfind("."), key.rfind("["))
        key = key[:cut] if cut > 0 else ""
    return 1


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def add_principal(path: pathlib.Path, name: str, role: str, team: str = "") -> bool:
    """Add a user to principals.yaml (text append, so operators' comments survive).

    Returns False if it already exists with that role; raises if it exists with another.
    """
    check_name(name, "principal")
    if team:
        check_name(team, "team")
    directory = load_directory(path)
    if role not in directory.roles:
        raise InvalidArgument("role", f"unknown role {role!r} (known: {', '.join(directory.roles)})")
    existing = directory.principals.get(f"user/{name}")
    if existing:
        if existing.role != role:
            raise InvalidArgument("principal", f"{name} already exists with role {existing.role}")
        if team and existing.team != team:
            raise InvalidArgument("team", f"{name} already exists in team {existing.team or '(none)'}")
        return False
    raw = yaml.safe_load(path.read_text()) or {}
    raw.setdefault("users", {})[name] = {"role": role, **({"team": team} if team else {})}
    path.write_text(_render(raw))
    return True


def _render(raw: dict[str, Any]) -> str:
    header = "# Principals and roles. A user's certificate carries spiffe://privet.local/user/<name>.\n"
    return header + yaml.safe_dump(raw, sort_keys=False)
