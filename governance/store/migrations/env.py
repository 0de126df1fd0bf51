"""Alembic environment: the connection is handed in by governance.store.schema.upgrade."""

from alembic import context
from sqlmodel import SQLModel

import privet.governance.store.tables  # noqa: F401 - its tables on SQLModel.metadata, as before

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=SQLModel.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
