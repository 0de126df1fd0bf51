"""privet audit report: the compliance report, only ever from a log verified offline."""

from __future__ import annotations

import base64
import json
import pathlib
import time

import typer

from privet.governance.audit.checkpoint import NoteVerifier, open_checkpoint
from privet.governance.audit.leaf import decode_leaf
from privet.governance.audit.offline import verify_export
from privet.governance.audit.report import render_report
from privet.services.cli.audit_cmds import export_line
from privet.services.cli.clients import stub
from privet.services.cli.context import ctx_of, emit

__all__: list[str] = []


def report(
    ctx: typer.Context,
    out: pathlib.Path = typer.Option(..., "--out", help="report.html"),
    key: pathlib.Path | None = typer.Option(None, "--key", help="the log's public key you hold (default: PRIVET_HOME/keys/audit.pub)"),
) -> None:
    """A self-contained HTML report for compliance reviewers: lineage of released models,
    privacy ledgers, denials. Takes a fresh signed checkpoint, exports the log, verifies it
    offline against the key, and refuses to write anything if it does not verify."""
    from privet.audit.v1 import audit_pb2, audit_pb2_grpc

    c = ctx_of(ctx)
    verifier_text = (key or c.home.keys / "audit.pub").read_text().strip()
    verifier = NoteVerifier.from_text(verifier_text)  # a malformed key is the caller's error: ValueError
    with stub(c, "registry", audit_pb2_grpc.AuditServiceStub) as s:
        cp = s.GetCheckpoint(audit_pb2.GetCheckpointRequest())
        # Only the checkpointed prefix: later events (this very export among them) are not covered.
        lines = [export_line(e) for e in s.ExportEvents(audit_pb2.ExportEventsRequest(to_seq=cp.tree_size))] if cp.tree_size else []
    result = verify_export(lines, cp.note, verifier_text)
    if not result.ok or result.events != result.size:
        message = result.message if not result.ok else f"the export holds {result.events} events, the checkpoint {result.size}"
        emit(c, {"ok": False, "message": message, "out": None}, f"[red]✗ not verified, no report written[/red]: {message}")
        raise typer.Exit(1)
    checkpoint = open_checkpoint(cp.note, verifier)  # verified above; parsed here for the page
    # The leaf bytes are what the checkpoint covers, so the page is built from them.
    events = [decode_leaf(base64.b64decode(json.loads(line)["leaf"])) for line in lines]
    page = render_report(events, checkpoint, note=cp.note, verified_message=result.message, verifier=verifier.text, generated_at_us=int(time.time() * 1_000_000))
    tmp = out.with_name(out.name + ".part")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)  # never leave a half-written report under the real name
    emit(
        c,
        {"ok": True, "message": result.message, "out": str(out), "tree_size": checkpoint.size, "root_hash": checkpoint.root_hash.hex()},
        f"[green]✓ verified[/green]: {result.message}\n[green]✓[/green] report written to {out}",
    )
