"""Rows edited, deleted or reordered behind Privet's back, in SQLite and in PostgreSQL: both the
offline `privet audit verify` and the run-time check catch each one."""

from __future__ import annotations

import base64
import json
import pathlib

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from governance.audit.hashing import leaf_hash
from governance.audit.leaf import encode_leaf
from governance.audit.log import Event
from governance.audit.storage import iter_events, record_of
from governance.errors import DataLoss
from governance.runtime import Runtime
from services.cli.app import _register_commands, app


def _export(rt: Runtime, path: pathlib.Path) -> None:
    """What `privet audit export` writes, straight from the (possibly tampered) table."""
    with rt.read() as s, open(path, "w") as f:
        for row in iter_events(s):
            line = record_of(row).as_dict() | {"leaf": base64.b64encode(row.leaf).decode()}
            f.write(json.dumps(line) + "\n")


def _verify(rt: Runtime, events: pathlib.Path, checkpoint: pathlib.Path) -> tuple[int, str]:
    _register_commands()
    result = CliRunner().invoke(app, ["--json", "audit", "verify", str(events), "--checkpoint", str(checkpoint), "--key", str(rt.home.keys / "audit.pub")])
    return result.exit_code, result.output


def _reencode(conn, seq: int) -> None:  # type: ignore[no-untyped-def]
    """A careful tamperer also rewrites the leaf and its hash so the row is self-consistent."""
    row = conn.execute(text("SELECT seq, time_us, principal, action, resource, decision, policy_ids, details FROM audit_events WHERE seq = :s"), {"s": seq}).one()
    from governance.audit.leaf import EventRecord

    leaf = encode_leaf(EventRecord(row.seq, row.time_us, row.principal, row.action, row.resource, row.decision, tuple(json.loads(row.policy_ids)), json.loads(row.details)))
    conn.execute(text("UPDATE audit_events SET leaf = :l, leaf_hash = :h WHERE seq = :s"), {"l": leaf, "h": leaf_hash(leaf), "s": seq})


TAMPERINGS = {
    "edit-field": ["UPDATE audit_events SET principal = 'user/mallory' WHERE seq = 7"],
    "edit-field-and-leaf": ["UPDATE audit_events SET decision = 'allow', policy_ids = '[]' WHERE seq = 7", "reencode 7"],
    "delete": ["DELETE FROM audit_events WHERE seq = 7"],
    "reorder": [
        "UPDATE audit_events SET seq = -1 WHERE seq = 7",
        "UPDATE audit_events SET seq = 7 WHERE seq = 8",
        "UPDATE audit_events SET seq = 8 WHERE seq = -1",
    ],
}


@pytest.mark.parametrize("how", list(TAMPERINGS))
def test_tampering_is_caught_offline_and_at_run_time(runtime: Runtime, tmp_path: pathlib.Path, how: str) -> None:
    events = [Event(principal="user/bob", action="registry.ReleaseModelVersion", resource=f"model/m{i}", decision="deny" if i == 7 else "allow", policy_ids=("gate",) if i == 7 else ()) for i in range(12)]
    runtime.write(lambda _s: [runtime.audit.append(e) for e in events])
    checkpoint = tmp_path / "cp.txt"
    checkpoint.write_text(runtime.checkpointer.checkpoint_now().note)
    clean = tmp_path / "clean.jsonl"
    _export(runtime, clean)
    assert _verify(runtime, clean, checkpoint)[0] == 0
    assert runtime.check_audit_log().ok

    with runtime.engines.writer.begin() as conn:
        for stmt in TAMPERINGS[how]:
            if stmt.startswith("reencode"):
                _reencode(conn, int(stmt.split()[1]))
            else:
                conn.execute(text(stmt))

    tampered = tmp_path / "tampered.jsonl"
    _export(runtime, tampered)
    code, output = _verify(runtime, tampered, checkpoint)
    assert code == 1, output
    report = json.loads(output)
    assert not report["ok"]
    if how != "edit-field-and-leaf":  # a self-consistent row is only caught by the root
        assert report["first_bad_seq"] == 7, report

    check = runtime.check_audit_log()
    assert not check.ok and "audit log altered" in check.message
    with pytest.raises(DataLoss, match="writes refused"):
        runtime.record(Event(principal="user/admin", action="test.After", resource="x", decision="allow"))
