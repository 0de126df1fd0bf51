"""What an operator's `privet status` reports beside health: the version installed, the
database (without its password), how large the audit log is, and what the training queue
holds. Read without changing anything: nothing is created or migrated here."""

from __future__ import annotations

import importlib.metadata
import pathlib
from dataclasses import dataclass

from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col

from privet.governance.config import Home
from privet.governance.store.engine import is_sqlite, normalise_url
from privet.governance.store.tables import AuditHead
from privet.governance.store.training_tables import TrainingJob

__all__ = ["PlatformFact", "platform_facts"]


@dataclass(frozen=True)
class PlatformFact:
    name: str
    value: str
    ok: bool = True


def _version() -> str:
    try:
        return importlib.metadata.version("privet")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed as a package)"


def _shown(url: str) -> str:
    """Where the database is, and nothing that authenticates to it: scheme, host, port and
    database name (no user, password or connection parameters, which may carry secrets)."""
    parsed = make_url(url)
    where = f"{parsed.host}{':' + str(parsed.port) if parsed.port else ''}/" if parsed.host else ""
    return f"{parsed.drivername}://{where}{parsed.database or ''}"


def _database_facts(url: str) -> list[PlatformFact]:
    shown = _shown(url)
    if is_sqlite(url):
        database = make_url(url).database or ""
        if not pathlib.Path(database).exists():
            return [PlatformFact("database", f"{shown} (not created yet: the services create it)")]
    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as conn:
            size = conn.execute(select(col(AuditHead.size)).where(col(AuditHead.id) == 1)).scalar()
            state = col(TrainingJob.state)
            counts: dict[str, int] = {row[0]: int(row[1]) for row in conn.execute(
                select(state, func.count()).where(state.in_(("QUEUED", "RUNNING"))).group_by(state))}
    except SQLAlchemyError as exc:
        return [PlatformFact("database", f"{shown}: unreachable or not migrated ({type(exc).__name__})", ok=False)]
    finally:
        engine.dispose()
    return [PlatformFact("database", shown), PlatformFact("audit log", f"{int(size or 0)} events"),
            PlatformFact("training jobs", f"{int(counts.get('RUNNING', 0))} running, {int(counts.get('QUEUED', 0))} queued")]


def platform_facts(home: Home) -> list[PlatformFact]:
    """The version, then the database's facts (a fact with ok False when it cannot be read)."""
    return [PlatformFact("version", _version()), *_database_facts(home.settings().database_url)]
