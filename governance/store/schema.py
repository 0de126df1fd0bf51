"""Create and upgrade the schema through Alembic (the only way it changes)."""

from __future__ import annotations

import pathlib

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine

import privet.governance.store.dataset_tables
import privet.governance.store.privacy_tables
import privet.governance.store.registry_tables
import privet.governance.store.training_tables  # noqa: F401 - and for training jobs

__all__ = ["upgrade", "MIGRATIONS"]

MIGRATIONS = pathlib.Path(__file__).with_name("migrations")


def _config(connection: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to `revision`. Safe to run from several processes at once on
    PostgreSQL (an advisory lock serialises them) and idempotent."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7208657)")  # 'privet' migrations
        command.upgrade(_config(conn), revision)
