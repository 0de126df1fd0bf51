"""SIGKILL of the registry during heavy appends loses no acknowledged event and leaves a log
that still verifies."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import grpc
from sqlalchemy import select

from privet.audit.v1 import audit_pb2, audit_pb2_grpc
from privet.governance.runtime import Runtime
from privet.governance.store.tables import AuditEvent
from tests.conftest import make_home
from tests.helpers import channel, eventually
from tests.integration.test_cli_platform import _use_any_ports


def test_sigkill_during_appends_loses_no_acknowledged_event(tmp_path: pathlib.Path) -> None:
    home = make_home(tmp_path / "home")
    _use_any_ports(home.root)
    log = open(tmp_path / "serve.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "privet.services.cli", "--home", str(home.root), "serve", "registry"], stdout=log, stderr=subprocess.STDOUT)
    eventually(lambda: home.bound_address("registry").exists(), 60, "the registry recorded the port it bound")
    address = home.settings().addresses["registry"]
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(tid: int) -> None:
        with channel(home, "carol", address) as ch:
            stub = audit_pb2_grpc.AuditServiceStub(ch)
            for i in range(100_000):
                if stop.is_set():
                    return
                probe = f"probe/{tid}-{i}"
                try:
                    stub.ListEvents(audit_pb2.ListEventsRequest(resource=probe), timeout=5, wait_for_ready=True)
                except grpc.RpcError:
                    return  # the server died under us: this one was never acknowledged
                with lock:
                    acknowledged.append(probe)

    threads = [threading.Thread(target=client, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < 300 and time.monotonic() < deadline and server.poll() is None:
        time.sleep(0.05)
    os.kill(server.pid, signal.SIGKILL)
    server.wait()
    stop.set()
    for t in threads:
        t.join()
    assert len(acknowledged) >= 300, (tmp_path / "serve.log").read_text()

    runtime = Runtime.open(home)  # the start-up integrity check runs here
    try:
        assert runtime.audit.tampered is None
        with runtime.read() as s:
            probes = {json.loads(d).get("resource") for d in s.execute(select(AuditEvent.details).where(AuditEvent.action == "audit.ListEvents")).scalars()}
        missing = [p for p in acknowledged if p not in probes]
        assert not missing, f"{len(missing)} acknowledged events lost, e.g. {missing[:3]}"
        assert runtime.check_audit_log().ok
    finally:
        runtime.close()
