"""The append path's SQL: lock the log head, write a batch's events and nodes, move the head.

Driver-level on purpose: this runs once per group commit, and SQLAlchemy's per-statement cost
is of the order of the commit itself. On PostgreSQL every statement is a network round trip:
a batch with a session costs three (BEGIN with the head lock pipelined, then every row and the
new head in one statement of data-modifying CTEs, then COMMIT); a batch of pure appends one
(the head is not read, see `AuditLog.begin`, and the Transactor runs that statement as a
transaction of its own). SQLite has no round trips; there each table gets one
multi-row INSERT, so the driver steps (and drops the GIL) once per table, not once per row.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, Table

from privet.governance.audit.storage import table_of
from privet.governance.store.tables import AuditEvent, AuditNode

__all__ = ["lock_head", "write_batch"]

# Parameters per SQLite statement: under its limit of 32,766 host parameters.
_MAX_PARAMS = 30_000


def _driver(conn: Connection) -> Any:
    """The DB-API connection under `conn`, inside the transaction `conn` began."""
    return conn.connection.driver_connection


def lock_head(conn: Connection) -> int:
    """The log's size, with the head row locked until the transaction ends (SQLite: the
    writer's BEGIN IMMEDIATE already holds the database lock)."""
    driver = _driver(conn)
    if conn.dialect.name == "sqlite":
        return int(driver.execute("SELECT size FROM audit_head WHERE id = 1").fetchone()[0])
    with driver.pipeline():  # BEGIN and the locking read in one round trip
        cursor = driver.execute("SELECT size FROM audit_head WHERE id = 1 FOR UPDATE")
    return int(cursor.fetchone()[0])


def _values(rows: list[dict[str, Any]]) -> tuple[str, list[Any]]:
    cols = list(rows[0])
    row_sql = "(" + ", ".join(["?"] * len(cols)) + ")"
    return f"({', '.join(cols)}) VALUES {', '.join([row_sql] * len(rows))}", [v for row in rows for v in row.values()]


def _chunks(table: str, rows: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    if not rows:
        return []
    per = max(1, _MAX_PARAMS // len(rows[0]))
    return [(table, rows[i:i + per]) for i in range(0, len(rows), per)]


def write_batch(conn: Connection, events: list[dict[str, Any]], nodes: list[dict[str, Any]], size: int) -> None:
    """Insert `events` into audit_events and `nodes` into audit_nodes (each a list of dicts with
    the same keys in the same order) and set the head to `size`."""
    driver = _driver(conn)
    if conn.dialect.name == "sqlite":
        for table, rows in _chunks("audit_events", events) + _chunks("audit_nodes", nodes):
            sql, params = _values(rows)
            driver.execute(f"INSERT INTO {table} {sql}", params)
        driver.execute("UPDATE audit_head SET size = ? WHERE id = 1", (size,))
        return
    # PostgreSQL: one short, constant statement whatever the batch size. The rows travel as
    # one JSON document per table, unpacked server-side: a statement with a placeholder per
    # value costs psycopg ~0.2 ms a batch just to rewrite its placeholders (it caches none
    # past 50), on the committer's critical path.
    driver.execute(_PG_WRITE, (_json_rows(events), _json_rows(nodes), size))


def _json_rows(rows: list[dict[str, Any]]) -> str:
    # bytea columns as PostgreSQL's hex text form, which its bytea input reads back exactly.
    return json.dumps([{k: "\\x" + v.hex() if type(v) is bytes else v for k, v in row.items()} for row in rows],
                      separators=(",", ":"))


def _pg_insert(table: Table) -> str:
    names = ", ".join(column.name for column in table.columns)
    return f"INSERT INTO {table.name} ({names}) SELECT {names} FROM json_populate_recordset(NULL::{table.name}, %s::json)"


_PG_WRITE = (f"WITH e AS ({_pg_insert(table_of(AuditEvent))}), n AS ({_pg_insert(table_of(AuditNode))}) "
             "UPDATE audit_head SET size = %s WHERE id = 1")
