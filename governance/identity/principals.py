"""Principals and their roles, read from policies/principals.yaml."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass

import yaml

from governance.errors import InvalidArgument, Unauthenticated
from governance.identity.spiffe import SpiffeId, check_name

__all__ = ["Principal", "Directory", "load_directory", "add_principal"]


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


def load_directory(path: pathlib.Path) -> Directory:
    raw = yaml.safe_load(path.read_text()) or {}
    roles = tuple(raw.get("roles", ()))
    principals: dict[str, Principal] = {}
    for name, entry in (raw.get("users") or {}).items():
        role = (entry or {}).get("role")
        if role not in roles:
            raise InvalidArgument(f"users.{name}.role", f"unknown role {role!r} (known: {', '.join(roles)})")
        team = (entry or {}).get("team") or ""
        if team:
            check_name(str(team), f"users.{name}.team")
        p = Principal(SpiffeId("user", check_name(name, f"users.{name}")), role, str(team))
        principals[p.id.principal] = p
    for name in raw.get("services") or ():
        p = Principal(SpiffeId("service", check_name(name, f"services.{name}")), "service")
        principals[p.id.principal] = p
    return Directory(roles, principals)


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


def _render(raw: dict) -> str:
    header = "# Principals and roles. A user's certificate carries spiffe://privet.local/user/<name>.\n"
    return header + yaml.safe_dump(raw, sort_keys=False)
