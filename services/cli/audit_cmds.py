"""privet audit events | export | checkpoint | verify | bundle | check."""

from __future__ import annotations

import base64
import datetime
import json
import pathlib
import time

import typer
from rich.progress import Progress
from rich.table import Table

from privet.governance.audit.offline import (
    bundle_from_proofs,
    verify_bundle_json,
    verify_export,
)
from privet.governance.errors import InvalidArgument
from privet.services.cli.clients import stub
from privet.services.cli.context import console, ctx_of, emit
from privet.services.cli.output import iso_time, to_json

audit_app = typer.Typer(help="Read, export and verify the tamper-evident audit log.", no_args_is_help=True)


def _details(stored: str):
    """The details object, or the stored text as it is where an edit left something that is
    not JSON: the line must still be written, so that `verify` names that event."""
    try:
        return json.loads(stored)
    except ValueError:
        return stored


def export_line(e) -> str:
    """One AuditEvent message as an export line: the decoded fields and `leaf`, the base64 of
    the exact leaf bytes (docs/audit-format.md)."""
    return json.dumps({
        "seq": e.seq,
        "time_us": e.time.seconds * 1_000_000 + e.time.nanos // 1000,
        "principal": e.principal,
        "action": e.action,
        "resource": e.resource,
        "decision": e.decision,
        "policy_ids": list(e.policy_ids),
        "details": _details(e.details_json),
        "leaf": base64.b64encode(e.leaf).decode(),
    }, sort_keys=True)


def _audit_stub(ctx: typer.Context):
    from privet.audit.v1 import audit_pb2_grpc

    return stub(ctx_of(ctx), "registry", audit_pb2_grpc.AuditServiceStub)


_UNITS_US = {"s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000, "w": 604_800_000_000}


def parse_when(option: str, text: str, *, now_us: int) -> int:
    """--since/--until: ISO 8601 (`2026-01-02`, `2026-01-02T03:04:05+02:00`; UTC when no offset
    is given) or a span before `now_us` (`90s`, `15m`, `1h`, `2d`, `1w`). Microseconds since
    the epoch; raises InvalidArgument(option) for anything else."""
    text = text.strip()
    unit = _UNITS_US.get(text[-1:].lower())
    if unit and text[:-1].replace(".", "", 1).isdigit():
        return now_us - int(float(text[:-1]) * unit)
    try:
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise InvalidArgument(option, f"expected ISO 8601 (2026-01-02T03:04:05Z) or a span before now (30s, 15m, 1h, 2d, 1w), got {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return int(when.timestamp()) * 1_000_000 + when.microsecond


@audit_app.command("events")
def events(
    ctx: typer.Context,
    principal: str = typer.Option("", help="e.g. user/alice; a trailing * matches by prefix (user/*)"),
    action: str = typer.Option("", help="e.g. registry.ApproveRelease; a trailing * matches by prefix (registry.*)"),
    resource: str = typer.Option("", help="e.g. model/churn/1; a trailing * matches by prefix (model/churn/*)"),
    decision: str = typer.Option("", help="allow | deny | info"),
    since: str = typer.Option("", "--since", help="from this time on: ISO 8601 (UTC unless an offset is given) or a span before now: 30s, 15m, 1h, 2d, 1w"),
    until: str = typer.Option("", "--until", help="before this time: same forms as --since"),
    limit: int = typer.Option(50, min=1, max=1000, help="at most this many, the newest"),
) -> None:
    """List events, newest first, with their times; the server applies every filter (a
    trailing * matches by prefix) and the time window."""
    from privet.audit.v1 import audit_pb2
    from privet.common.v1 import types_pb2

    c = ctx_of(ctx)
    now_us = time.time_ns() // 1000
    since_us = parse_when("--since", since, now_us=now_us) if since else 0
    until_us = parse_when("--until", until, now_us=now_us) if until else 0
    if since_us and until_us and since_us >= until_us:
        raise InvalidArgument("--until", "must be after --since")
    request = audit_pb2.ListEventsRequest(principal=principal, action=action, resource=resource, decision=decision, newest_first=True,
                                          page=types_pb2.PageRequest(page_size=limit))
    if since_us:
        request.since.FromMicroseconds(since_us)
    if until_us:
        request.until.FromMicroseconds(until_us)
    with _audit_stub(ctx) as s:
        found = list(s.ListEvents(request).events)
    table = Table("time", "seq", "principal", "action", "resource", "decision", "policies")
    for e in found:
        table.add_row(iso_time(e.time.ToMicroseconds()) or "", str(e.seq), e.principal, e.action, e.resource, e.decision, ",".join(e.policy_ids))
    emit(c, [to_json(e) for e in found], table)


@audit_app.command("export")
def export(ctx: typer.Context, out: pathlib.Path = typer.Option(..., "--out", help="events.jsonl")) -> None:
    """Write every event as one JSON object per line, with `leaf` (base64 of the exact leaf bytes)."""
    from privet.audit.v1 import audit_pb2

    c = ctx_of(ctx)
    tmp = out.with_name(out.name + ".part")
    count = 0
    with _audit_stub(ctx) as s, open(tmp, "w") as f, Progress(console=console, transient=True, disable=c.json) as progress:
        task = progress.add_task("exporting audit events", total=None)
        for e in s.ExportEvents(audit_pb2.ExportEventsRequest()):
            f.write(export_line(e) + "\n")
            count += 1
            progress.advance(task)
    tmp.replace(out)  # never leave a half-written export under the real name
    emit(c, {"events": count, "out": str(out)}, f"[green]✓[/green] exported {count} events to {out}")


@audit_app.command("checkpoint")
def checkpoint(ctx: typer.Context, out: pathlib.Path = typer.Option(..., "--out"), size: int = typer.Option(0, help="0 = a fresh one at the current size")) -> None:
    """Save a signed checkpoint (C2SP tlog-checkpoint note)."""
    from privet.audit.v1 import audit_pb2

    c = ctx_of(ctx)
    with _audit_stub(ctx) as s:
        cp = s.GetCheckpoint(audit_pb2.GetCheckpointRequest(tree_size=size))
    out.write_text(cp.note)
    emit(c, to_json(cp) | {"out": str(out)}, f"[green]✓[/green] checkpoint at size {cp.tree_size} saved to {out}")


@audit_app.command("verify")
def verify(
    ctx: typer.Context,
    events_file: pathlib.Path | None = typer.Argument(None, help="events.jsonl from `privet audit export`"),
    checkpoint: pathlib.Path | None = typer.Option(None, "--checkpoint"),
    key: pathlib.Path = typer.Option(..., "--key", help="the log's public key (keys/audit.pub)"),
    from_: pathlib.Path | None = typer.Option(None, "--from", help="an older checkpoint: prove the log only grew"),
    bundle: pathlib.Path | None = typer.Option(None, "--bundle", help="verify a one-event bundle instead"),
) -> None:
    """Verify offline (no network): signatures, roots, consistency. Names the first bad event.

    With --from, the log must be shown to extend that older checkpoint: an export is
    recomputed over it; a bundle must carry the consistency proof from it."""
    c = ctx_of(ctx)
    verifier = key.read_text().strip()
    older_note = from_.read_text() if from_ else None
    if bundle is not None:
        if events_file is not None or checkpoint is not None:
            raise typer.BadParameter("a bundle carries its own checkpoint: give --bundle alone, or EVENTS_FILE and --checkpoint")
        report = verify_bundle_json(bundle.read_bytes(), verifier, older_checkpoint_note=older_note)
    else:
        if events_file is None or checkpoint is None:
            raise typer.BadParameter("give EVENTS_FILE and --checkpoint, or --bundle")
        with open(events_file) as lines:
            report = verify_export(lines, checkpoint.read_text(), verifier, older_checkpoint_note=older_note)
    emit(c, {"ok": report.ok, "message": report.message, "size": report.size, "first_bad_seq": report.first_bad_seq}, f"[green]✓ verified[/green]: {report.message}" if report.ok else f"[red]✗ FAILED[/red]: {report.message}")
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("bundle")
def bundle(
    ctx: typer.Context,
    seq: int = typer.Option(..., "--seq"),
    out: pathlib.Path = typer.Option(..., "--out"),
    from_: pathlib.Path | None = typer.Option(None, "--from", help="your older checkpoint, for a consistency proof"),
) -> None:
    """One event with its inclusion proof, the checkpoint and (with --from) a consistency proof."""
    from privet.audit.v1 import audit_pb2
    from privet.governance.audit.checkpoint import peek_checkpoint

    c = ctx_of(ctx)
    older_note = from_.read_text() if from_ else None
    with _audit_stub(ctx) as s:
        cp = s.GetCheckpoint(audit_pb2.GetCheckpointRequest())
        proof = s.GetInclusionProof(audit_pb2.GetInclusionProofRequest(seq=seq, tree_size=cp.tree_size))
        consistency = None
        if older_note:
            older_size = peek_checkpoint(older_note).size
            consistency = list(s.GetConsistencyProof(audit_pb2.GetConsistencyProofRequest(from_size=older_size, to_size=cp.tree_size)).hashes)
    data = bundle_from_proofs(leaf=proof.leaf, index=seq, checkpoint_note=cp.note, inclusion=list(proof.hashes), older_checkpoint_note=older_note, consistency=consistency)
    out.write_text(json.dumps(data, indent=2) + "\n")
    emit(c, {"out": str(out), "seq": seq, "tree_size": cp.tree_size}, f"[green]✓[/green] bundle for event {seq} (tree size {cp.tree_size}) saved to {out}")


@audit_app.command("check")
def check(ctx: typer.Context) -> None:
    """Ask the registry to recompute the stored log now (DATA_LOSS if it was altered)."""
    from privet.audit.v1 import audit_pb2

    c = ctx_of(ctx)
    with _audit_stub(ctx) as s:
        reply = s.CheckLog(audit_pb2.CheckLogRequest())
    emit(c, {"ok": reply.ok, "tree_size": reply.tree_size, "message": reply.message}, f"[green]✓[/green] {reply.message}")
