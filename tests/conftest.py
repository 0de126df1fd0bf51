"""Shared fixtures: real homes, real SQLite files, the real PostgreSQL server, real mTLS servers."""

from __future__ import annotations

import os
import pathlib
import socket
import sys
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import psycopg
import pytest

import privet  # noqa: F401 - first, before grpc: pins TLS 1.3 (see privet/__init__.py)
from privet.governance.bootstrap import init_home
from privet.governance.config import SERVICES, Home
from privet.governance.runtime import Runtime

if TYPE_CHECKING:
    from tests.helpers import ServeProcess

PG_ADMIN_DSN = os.environ.get("PRIVET_TEST_PG", "host=127.0.0.1 port=5432 dbname=test user=postgres")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the local server, dropped afterwards."""
    name = f"privet_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params = dict(p.split("=", 1) for p in PG_ADMIN_DSN.split())
    yield f"postgresql+psycopg://{params.get('user', 'postgres')}@{params.get('host', '127.0.0.1')}:{params.get('port', '5432')}/{name}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'privet.db'}"
    return request.getfixturevalue("pg_url")


def make_home(root: pathlib.Path, db_url: str | None = None) -> Home:
    home = Home(root)
    init_home(home)
    if db_url:
        text = home.config_path.read_text().replace('url = ""', f'url = "{db_url}"', 1)
        home.config_path.write_text(text)
    return home


@pytest.fixture
def home(tmp_path: pathlib.Path) -> Home:
    return make_home(tmp_path / "home")


@pytest.fixture
def runtime(tmp_path: pathlib.Path, db_url: str) -> Iterator[Runtime]:
    rt = Runtime.open(make_home(tmp_path / "home", db_url))
    yield rt
    rt.close()


@pytest.fixture
def sqlite_runtime(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[Runtime]:
    """A runtime on a fresh home and SQLite file; `@pytest.mark.privet_toml(TEXT)` appends
    settings to its privet.toml first."""
    home = make_home(tmp_path / "home")
    marker = request.node.get_closest_marker("privet_toml")
    if marker:
        home.config_path.write_text(home.config_path.read_text() + "\n" + marker.args[0])
    rt = Runtime.open(home)
    yield rt
    rt.close()


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def use_free_ports(home: Home) -> dict[str, str]:
    """Point the home's privet.toml at free loopback ports (services call each other by it;
    metrics listen on any free port, read back from the running server)."""
    addresses = {name: f"127.0.0.1:{port}" for name, port in zip(SERVICES, free_ports(len(SERVICES)))}
    text = home.config_path.read_text()
    settings = home.settings()
    for name, default in settings.addresses.items():
        text = text.replace(f'{name} = "{default}"', f'{name} = "{addresses[name]}"')
    for name, default in settings.metrics_addresses.items():  # metrics: any free port
        text = text.replace(f'{name} = "{default}"', f'{name} = "127.0.0.1:0"')
    home.config_path.write_text(text)
    return addresses


@pytest.fixture
def servers(sqlite_runtime: Runtime) -> Iterator[dict[str, str]]:
    """All four Privet servers on free loopback ports, over mTLS; yields name -> address."""
    from privet.services.launcher import start_services

    addresses = use_free_ports(sqlite_runtime.home)
    running = start_services(sqlite_runtime, SERVICES, addresses)
    yield addresses
    for s in running:
        s.stop(0)


@pytest.fixture
def served(tmp_path: pathlib.Path) -> Iterator[ServeProcess]:
    """`privet serve all` in a child process on free ports: a crash or a kill takes it, not
    pytest, and a test may restart it."""
    from tests.helpers import ServeProcess

    home = make_home(tmp_path / "home")
    use_free_ports(home)
    server = ServeProcess(home, tmp_path / "serve.log").start()
    yield server
    server.stop()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if anything imported a module under a repository folder's name
    (`governance.x` beside `privet.governance.x`: two copies, two sets of globals)."""
    bare = sorted(m for m in sys.modules if m.split(".")[0] in ("governance", "services", "inference", "policies"))
    if bare:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(f"\nmodules imported under a folder name instead of privet.*: {bare}", file=sys.stderr)
