"""What `privet status` reports beside health, read from the database without changing it."""

from __future__ import annotations

import pathlib

from privet.governance.audit.log import Event
from privet.governance.config import Home
from privet.governance.platform_status import platform_facts
from privet.governance.runtime import Runtime


def test_the_facts_of_a_running_home(runtime: Runtime) -> None:
    runtime.record(Event(principal="user/admin", action="test.Status", resource="x", decision="allow"))
    facts = {f.name: f for f in platform_facts(runtime.home)}
    assert facts["version"].value and all(f.ok for f in facts.values())
    assert facts["audit log"].value == f"{runtime.audit.committed_size} events"
    assert facts["training jobs"].value == "0 running, 0 queued"
    assert "password" not in facts["database"].value.lower() or "***" in facts["database"].value


def test_a_home_whose_database_does_not_exist_yet_is_not_created(tmp_path: pathlib.Path) -> None:
    from tests.conftest import make_home

    home: Home = make_home(tmp_path / "home")
    facts = {f.name: f for f in platform_facts(home)}
    assert "not created yet" in facts["database"].value
    assert not (tmp_path / "home" / "privet.db").exists()


def test_the_database_is_shown_without_anything_that_authenticates(tmp_path: pathlib.Path, monkeypatch) -> None:
    from tests.conftest import make_home

    home = make_home(tmp_path / "home")
    monkeypatch.setenv("PRIVET_DATABASE_URL", "postgresql+psycopg://user:S3cr3tPW@127.0.0.1:1/db?password=Q2&sslkey=/x")
    (database,) = [f for f in platform_facts(home) if f.name == "database"]
    assert database.value.startswith("postgresql+psycopg://127.0.0.1:1/db") and not database.ok
    for secret in ("S3cr3tPW", "Q2", "sslkey", "user"):
        assert secret not in database.value
