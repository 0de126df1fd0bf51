"""Shared fixtures: real homes, real SQLite files, the real PostgreSQL server, real mTLS servers."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import psycopg
import pytest

import privet  # noqa: F401 - first, before grpc: pins TLS 1.3 (see privet/__init__.py)
from privet.governance.bootstrap import init_home
from privet.governance.config import SERVICES, Home
from privet.governance.runtime import Runtime

if TYPE_CHECKING:
    from privet.services.common.server import RunningServer
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
    home = make_home(tmp_path / "home", db_url)
    metrics_on_any_port(home)
    rt = Runtime.open(home)
    yield rt
    rt.close()


@pytest.fixture
def sqlite_runtime(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[Runtime]:
    """A runtime on a fresh home and SQLite file, its metrics on any free port;
    `@pytest.mark.privet_toml(TEXT)` appends settings to its privet.toml first."""
    home = make_home(tmp_path / "home")
    metrics_on_any_port(home)
    marker = request.node.get_closest_marker("privet_toml")
    if marker:
        home.config_path.write_text(home.config_path.read_text() + "\n" + marker.args[0])
    rt = Runtime.open(home)
    yield rt
    rt.close()


ANY_PORT = "127.0.0.1:0"


def _rewrite(home: Home, section: dict[str, str], values: dict[str, str]) -> None:
    """Replace `name = "<current>"` lines of privet.toml with `name = "<value>"`."""
    text = home.config_path.read_text()
    for name, value in values.items():
        text = text.replace(f'{name} = "{section[name]}"', f'{name} = "{value}"')
    home.config_path.write_text(text)


def metrics_on_any_port(home: Home) -> None:
    """Serve each service's metrics on any free port (the running server reports it as
    `metrics.port`). Call before `Runtime.open`, which reads privet.toml once."""
    current = home.settings().metrics_addresses
    _rewrite(home, current, {name: ANY_PORT for name in current})


def serve_on_any_ports(runtime: Runtime, names: Sequence[str] = SERVICES) -> tuple[list[RunningServer], dict[str, str]]:
    """Start `names` on 127.0.0.1:0 and read each port back from its RunningServer; the home
    says port 0 for them, so `Home.settings()` finds the port each bound (recorded by
    `start_services` before any engine calls another service). Returns the servers and
    name -> address."""
    from privet.services.launcher import start_services

    home = runtime.home
    _rewrite(home, home.settings().listen_addresses, {name: ANY_PORT for name in names})
    running = start_services(runtime, names, {name: ANY_PORT for name in names})
    return running, {server.name: f"127.0.0.1:{server.port}" for server in running}


def use_any_ports(home: Home) -> None:
    """For a child process (`privet serve`, the demo): configure every service on
    127.0.0.1:0. The child binds any free port and records it in the home
    (`Home.record_bound_address`), where `Home.settings().addresses` finds it; until then a
    service's address reads as port 0, where nothing answers. Metrics listen on any port too."""
    _rewrite(home, home.settings().listen_addresses, {name: ANY_PORT for name in SERVICES})
    metrics_on_any_port(home)


@pytest.fixture
def servers(sqlite_runtime: Runtime) -> Iterator[dict[str, str]]:
    """All four Privet servers on ports they chose, over mTLS; yields name -> address."""
    running, addresses = serve_on_any_ports(sqlite_runtime)
    yield addresses
    for s in running:
        s.stop(0)


@pytest.fixture
def cli(servers: dict[str, str], sqlite_runtime: Runtime):
    """cli("--as", "alice", "models", "list") -> (exit code, output), talking to `servers`."""
    from typer.testing import CliRunner

    from privet.services.cli import app

    home = sqlite_runtime.home
    text = home.config_path.read_text()
    for name, address in servers.items():
        text = "\n".join(f'{name} = "{address}"' if line.startswith(f"{name} = ") else line for line in text.splitlines()) + "\n"
    home.config_path.write_text(text)
    runner = CliRunner()

    def run(*args: str):
        result = runner.invoke(app, ["--home", str(home.root), *args])
        return result.exit_code, result.output, result.exception

    return run


@pytest.fixture
def served(tmp_path: pathlib.Path) -> Iterator[ServeProcess]:
    """`privet serve all` in a child process on free ports: a crash or a kill takes it, not
    pytest, and a test may restart it."""
    from tests.helpers import ServeProcess

    home = make_home(tmp_path / "home")
    use_any_ports(home)
    server = ServeProcess(home, tmp_path / "serve.log").start()
    yield server
    server.stop()


class DemoRuns:
    """`privet demo` run twice in one fresh home (`demo_runs`): each run's completed process,
    the home, a folder beside it for what the tests write, and the `--keep` run's services."""

    def __init__(self, root: pathlib.Path, home: Home) -> None:
        self.root, self.home = root, home
        self.runs: list[subprocess.CompletedProcess[str]] = []
        self._stopped = False

    def stop(self) -> None:
        """End the `privet serve all` that `demo --keep` left running (its own session, by pid), once."""
        if self._stopped:
            return
        self._stopped = True
        pid_file = self.home.run / "serve.pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text())
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
        os.killpg(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def demo_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRuns]:
    """`privet demo` on a fresh home as a user would run it, then again in the same home
    with `--keep`, whose services stay up for the commands that read the log afterwards
    (`privet audit report`). A run takes half a minute, so the session makes the pair once:
    test_demo checks both runs, test_audit_report reports on the log they wrote. A failed
    run stops the pair; the tests assert on the runs they got."""
    root = tmp_path_factory.mktemp("demo")
    home = make_home(root / "home")
    use_any_ports(home)  # the demo itself would use the default ports; keep tests independent
    demo = DemoRuns(root, home)
    try:
        for extra in ((), ("--keep",)):
            run = subprocess.run([sys.executable, "-m", "privet.services.cli", "--home", str(home.root), "demo", *extra],
                                 check=False, capture_output=True, text=True, timeout=600)
            demo.runs.append(run)
            if run.returncode != 0:
                break
        yield demo
    finally:
        demo.stop()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if anything imported a module under a repository folder's name
    (`governance.x` beside `privet.governance.x`: two copies, two sets of globals)."""
    bare = sorted(m for m in sys.modules if m.split(".")[0] in ("governance", "services", "inference", "policies"))
    if bare:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(f"\nmodules imported under a folder name instead of privet.*: {bare}", file=sys.stderr)
