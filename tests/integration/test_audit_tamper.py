"""Rows edited, deleted or reordered behind Privet's back, in SQLite and in PostgreSQL: both the
offline `privet audit verify` and the run-time check catch each one."""

from __future__ import annotations

import base64
import json
import pathlib

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from privet.governance.audit.hashing import leaf_hash
from privet.governance.audit.leaf import encode_leaf
from privet.governance.audit.log import Event
from privet.governance.audit.storage import iter_events, record_of
from privet.governance.errors import DataLoss
from privet.governance.runtime import Runtime
from privet.governance.store.tables import AuditCheckpoint
from privet.services.cli import app


def _export(rt: Runtime, path: pathlib.Path) -> None:
    """What `privet audit export` writes, straight from the (possibly tampered) table."""
    with rt.read() as s, open(path, "w") as f:
        for row in iter_events(s):
            line = record_of(row).as_dict() | {"leaf": base64.b64encode(row.leaf).decode()}
            f.write(json.dumps(line) + "\n")


def _verify(rt: Runtime, events: pathlib.Path, checkpoint: pathlib.Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--json", "audit", "verify", str(events), "--checkpoint", str(checkpoint), "--key", str(rt.home.keys / "audit.pub")])
    return result.exit_code, result.output


def _reencode(conn, seq: int) -> None:
    """A careful tamperer also rewrites the leaf and its hash so the row is self-consistent."""
    row = conn.execute(text("SELECT seq, time_us, principal, action, resource, decision, policy_ids, details FROM audit_events WHERE seq = :s"), {"s": seq}).one()
    from privet.governance.audit.leaf import EventRecord

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


def _seed(rt: Runtime, n: int) -> None:
    events = [Event(principal="user/bob", action="test.Thing", resource=f"thing/{i}", decision="allow", details={"i": i}) for i in range(n)]
    rt.write(lambda _s: [rt.audit.append(e) for e in events])


UNDECODABLE = {
    "details-not-json": "UPDATE audit_events SET details = 'not json' WHERE seq = 3",
    "details-with-a-float": "UPDATE audit_events SET details = '{\"i\": 1.5}' WHERE seq = 3",
    "policy-ids-null": "UPDATE audit_events SET policy_ids = 'null' WHERE seq = 3",
}


@pytest.mark.parametrize("how", list(UNDECODABLE))
def test_fields_that_no_longer_decode_are_named_not_crashed_on(runtime: Runtime, tmp_path: pathlib.Path, how: str) -> None:
    from privet.governance.audit.auditor_reads import LoggedEvent
    from privet.services.cli.audit_cmds import export_line
    from privet.services.registry.audit_servicer import event_message

    _seed(runtime, 10)
    checkpoint = tmp_path / "cp.txt"
    checkpoint.write_text(runtime.checkpointer.checkpoint_now().note)
    with runtime.engines.writer.begin() as conn:
        conn.execute(text(UNDECODABLE[how]))

    report = runtime.check_audit_log()
    assert not report.ok and report.first_bad_seq == 3, report
    with pytest.raises(DataLoss, match="writes refused"):
        runtime.record(Event(principal="user/admin", action="test.After", resource="x", decision="allow"))
    restarted = Runtime.open(runtime.home)  # the start-up check finds it too, and freezes the log
    try:
        assert restarted.audit.tampered and "event 3" in restarted.audit.tampered
    finally:
        restarted.close()
    # The export the service streams still carries the row, and offline verify names it.
    export = tmp_path / "events.jsonl"
    with runtime.read() as s:
        export.write_text("".join(export_line(event_message(LoggedEvent.of(row))) + "\n" for row in iter_events(s)))
    code, output = _verify(runtime, export, checkpoint)
    assert code == 1 and json.loads(output)["first_bad_seq"] == 3, output


NODE_EDITS = {
    "edited": ("UPDATE audit_nodes SET hash = :h WHERE level = 4 AND idx = 1", "stored tree node (4, 1) is missing or does not match events 16..31"),
    "deleted": ("DELETE FROM audit_nodes WHERE level = 5 AND idx = 0", "stored tree node (5, 0) is missing"),
    "inserted": ("INSERT INTO audit_nodes (level, idx, hash) VALUES (4, 99, :h)", "nodes that no events account for"),
}


@pytest.mark.parametrize("how", list(NODE_EDITS))
def test_an_edited_deleted_or_inserted_tree_node_is_caught(runtime: Runtime, how: str) -> None:
    _seed(runtime, 70)  # nodes (4, 0..3), (5, 0..1), (6, 0): only (6, 0) and the leaves' run lie on the root path
    assert runtime.check_audit_log().ok
    stmt, message = NODE_EDITS[how]
    with runtime.engines.writer.begin() as conn:
        conn.execute(text(stmt), {"h": b"\x00" * 32})
    report = runtime.check_audit_log()
    assert not report.ok and message in report.message, report.message
    assert runtime.audit.tampered


def test_no_checkpoint_is_signed_over_a_tree_node_edited_behind_the_log(runtime: Runtime) -> None:
    _seed(runtime, 32)
    runtime.checkpointer.checkpoint_now()
    with runtime.engines.writer.begin() as conn:  # (5, 0) covers events 0..31: on every later root's path
        conn.execute(text("UPDATE audit_nodes SET hash = :h WHERE level = 5 AND idx = 0"), {"h": b"\x11" * 32})
    _seed(runtime, 16)  # appends use the right edge this process holds, not the edited row
    with pytest.raises(DataLoss, match="not the one this process appended"):
        runtime.checkpointer.checkpoint_now()
    with runtime.read() as s:
        assert s.get(AuditCheckpoint, 48) is None
    with pytest.raises(DataLoss, match="writes refused"):
        runtime.record(Event(principal="user/admin", action="test.After", resource="x", decision="allow"))
