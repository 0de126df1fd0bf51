"""The `privet` command as an operator runs it: real processes, real exit codes."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

from privet.governance.config import Home
from tests.conftest import use_any_ports

PRIVET = [sys.executable, "-m", "privet.services.cli"]


def _run(home: pathlib.Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*PRIVET, "--home", str(home), *args], capture_output=True, text=True, timeout=timeout)


def _use_any_ports(root: pathlib.Path) -> None:
    use_any_ports(Home(root))


def test_init_serve_status_and_graceful_shutdown(tmp_path: pathlib.Path) -> None:
    home = tmp_path / "home"
    first = _run(home, "init")
    assert first.returncode == 0, first.stderr
    assert "created" in first.stdout
    assert _run(home, "--json", "init").returncode == 0
    _use_any_ports(home)
    log = open(tmp_path / "serve.log", "w")
    server = subprocess.Popen([*PRIVET, "--home", str(home), "serve", "all"], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            status = _run(home, "--as", "carol", "status")
            if status.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert status.returncode == 0, (status.stdout, (tmp_path / "serve.log").read_text())
        assert status.stdout.count("SERVING") == 4
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    assert "shutting down gracefully" in (tmp_path / "serve.log").read_text()
    down = _run(home, "status")
    assert down.returncode == 1 and "UNREACHABLE" in down.stdout


def test_a_policy_with_a_type_error_stops_serve(tmp_path: pathlib.Path) -> None:
    home = tmp_path / "home"
    assert _run(home, "init").returncode == 0
    (home / "policies" / "typo.cedar").write_text('@id("typo")\npermit (principal, action, resource) when { principal.rol == "admin" };\n')
    result = _run(home, "serve", "all")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "typo.cedar:1" in lines[0] and "rol" in lines[0], result.stderr


def test_unknown_principal_is_one_clear_line(tmp_path: pathlib.Path) -> None:
    home = tmp_path / "home"
    assert _run(home, "init").returncode == 0
    result = _run(home, "--as", "nobody", "status")
    assert result.returncode == 1
    assert "no identity for 'nobody'" in result.stderr
    assert os.path.exists(home / "pki" / "ca.pem")


def test_serve_with_json_logs_writes_only_json_lines(tmp_path: pathlib.Path) -> None:
    # Every line the server writes parses, gRPC's own core lines and the banner included.
    home = tmp_path / "home"
    assert _run(home, "init").returncode == 0
    _use_any_ports(home)
    env = {k: v for k, v in os.environ.items() if k != "GRPC_VERBOSITY"}
    server = subprocess.Popen([*PRIVET, "--home", str(home), "serve", "all", "--log-format", "json"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while _run(home, "status").returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.3)
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    lines = [line for line in output.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # raises on any line that is not JSON
    messages = [r["message"] for r in records]
    assert any(m.startswith("serving ") for m in messages) and "shutting down gracefully" in messages
