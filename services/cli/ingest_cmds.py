"""privet ingest | datasets list|show|export|delete."""

from __future__ import annotations

import pathlib

import typer
from google.protobuf.json_format import MessageToDict
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from privet.services.cli.clients import stub
from privet.services.cli.context import console, ctx_of, emit

datasets_app = typer.Typer(help="Masked datasets.", no_args_is_help=True)

CHUNK = 1 << 20
_FORMATS = {".csv": "CSV", ".tsv": "CSV", ".jsonl": "JSONL", ".ndjson": "JSONL", ".parquet": "PARQUET"}


def _ingestion(ctx: typer.Context):
    from privet.ingestion.v1 import ingestion_pb2_grpc

    return stub(ctx_of(ctx), "ingestion", ingestion_pb2_grpc.IngestionServiceStub)


def upload_requests(path: pathlib.Path, header, progress: Progress | None = None):
    from privet.ingestion.v1 import ingestion_pb2

    yield ingestion_pb2.CreateDatasetRequest(header=header)
    task = progress.add_task(f"uploading {path.name}", total=path.stat().st_size) if progress else None
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            if progress is not None and task is not None:
                progress.advance(task, len(chunk))
            yield ingestion_pb2.CreateDatasetRequest(chunk=chunk)


def make_header(path: pathlib.Path, name: str, profile: str, quasi_identifiers: str, k: int, epsilon: float, delta: float, fmt: str | None = None, personal: bool = False):
    from privet.ingestion.v1 import ingestion_pb2

    fmt_name = (fmt or _FORMATS.get(path.suffix.lower(), "")).upper()
    if not fmt_name:
        raise typer.BadParameter(f"cannot tell the format of {path.name}; pass --format csv|jsonl|parquet")
    return ingestion_pb2.DatasetHeader(
        name=name, format=f"DATA_FORMAT_{fmt_name}", profile=profile,
        quasi_identifiers=[q for q in quasi_identifiers.split(",") if q], k=k, epsilon_budget=epsilon, delta_budget=delta,
        expected_size=path.stat().st_size, personal=personal, csv=ingestion_pb2.CsvOptions(delimiter="\t" if path.suffix.lower() == ".tsv" else ""),
    )


def report_table(d) -> Table:
    table = Table("column", "type", "action", "PII found", title=f"dataset {d.name} ({d.rows} rows, digest {d.digest[:12]}…)")
    for c in d.columns:
        table.add_row(c.name, c.type, c.action, ", ".join(c.detected_types))
    return table


def ingest(
    ctx: typer.Context,
    path: pathlib.Path = typer.Argument(..., exists=True, dir_okay=False),
    name: str = typer.Option(..., "--name"),
    profile: str = typer.Option("default", "--profile"),
    quasi_identifiers: str = typer.Option("", "--quasi-identifiers", help="comma-separated"),
    k: int = typer.Option(1, "--k"),
    epsilon: float = typer.Option(8.0, "--epsilon", help="the dataset's total privacy budget"),
    delta: float = typer.Option(1e-5, "--delta"),
    fmt: str | None = typer.Option(None, "--format"),
    personal: bool = typer.Option(False, "--personal", help="The data is about people, whatever the detectors find."),
) -> None:
    """Upload a CSV/JSONL/Parquet file; it is masked, k-anonymised and stored."""
    c = ctx_of(ctx)
    header = make_header(path, name, profile, quasi_identifiers, k, epsilon, delta, fmt, personal)
    with _ingestion(ctx) as s, Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=console, transient=True, disable=c.json) as progress:
        d = s.CreateDataset(upload_requests(path, header, progress))
    r = d.report
    summary = (f"[green]✓[/green] {d.name}: {r.rows_in} rows in, {r.rows_out} out, {r.suppressed_rows} suppressed; generalisation {dict(r.generalisation) or 'none'}; "
               f"information loss {r.information_loss:.3f}; {'personal data (' + ', '.join(d.personal_basis) + ')' if d.personal else 'not personal data'}")
    emit(c, MessageToDict(d, preserving_proto_field_name=True), summary)
    if not c.json:
        console.print(report_table(d))


@datasets_app.command("list")
def list_(ctx: typer.Context) -> None:
    from privet.ingestion.v1 import ingestion_pb2

    c = ctx_of(ctx)
    with _ingestion(ctx) as s:
        reply = s.ListDatasets(ingestion_pb2.ListDatasetsRequest())
    table = Table("name", "rows", "profile", "ε budget", "created by")
    for d in reply.datasets:
        table.add_row(d.name, str(d.rows), d.profile, f"{d.budget.epsilon_remaining:g} of {d.budget.epsilon_total:g}", d.created_by)
    emit(c, [MessageToDict(d, preserving_proto_field_name=True) for d in reply.datasets], table)


@datasets_app.command("show")
def show(ctx: typer.Context, name: str) -> None:
    from privet.ingestion.v1 import ingestion_pb2

    c = ctx_of(ctx)
    with _ingestion(ctx) as s:
        d = s.GetDataset(ingestion_pb2.GetDatasetRequest(name=name))
    emit(c, MessageToDict(d, preserving_proto_field_name=True), report_table(d))
    if not c.json:
        b = d.budget
        console.print(f"privacy budget: ε {b.epsilon_total:g} total, {b.epsilon_reserved:g} reserved, {b.epsilon_spent:g} spent, {b.epsilon_remaining:g} left (δ {b.delta:g})")
        ledger = Table("kind", "job", "ε", "δ", "σ", "q", "steps", "accountant", "by", title="privacy ledger")
        for e in d.ledger:
            mech = (f"{e.noise_multiplier:.4f}", f"{e.sample_rate:.5f}", str(e.steps)) if e.kind == "charge" else ("", "", "")
            ledger.add_row(e.kind, e.job_id[:8], f"{e.epsilon:.4f}", f"{e.delta:g}" if e.delta else "", *mech, e.accountant, e.principal)
        console.print(ledger)


@datasets_app.command("export")
def export(ctx: typer.Context, name: str, out: pathlib.Path = typer.Option(..., "--out")) -> None:
    """Download the masked dataset as Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from privet.ingestion.v1 import ingestion_pb2

    c = ctx_of(ctx)
    with _ingestion(ctx) as s:
        data = b"".join(m.arrow_ipc for m in s.ReadDataset(ingestion_pb2.ReadDatasetRequest(name=name)))
    table = pa.ipc.open_stream(data).read_all()
    tmp = out.with_name(out.name + ".part")
    pq.write_table(table, tmp)
    tmp.replace(out)
    emit(c, {"out": str(out), "rows": table.num_rows}, f"[green]✓[/green] {table.num_rows} rows written to {out}")


@datasets_app.command("declare")
def declare(
    ctx: typer.Context,
    name: str,
    personal: bool = typer.Option(..., "--personal/--not-personal", help="Whether the dataset is personal data."),
    reason: str = typer.Option(..., "--reason", help="Why (kept in the audit log)."),
) -> None:
    """Operators only: declare whether a dataset is personal data (overrides the detectors' judgement)."""
    from privet.ingestion.v1 import ingestion_pb2

    c = ctx_of(ctx)
    with _ingestion(ctx) as s:
        d = s.DeclarePersonalData(ingestion_pb2.DeclarePersonalDataRequest(name=name, personal=personal, reason=reason))
    emit(c, MessageToDict(d, preserving_proto_field_name=True), f"[green]✓[/green] {d.name} declared {'personal' if d.personal else 'not personal'} data")


@datasets_app.command("delete")
def delete(ctx: typer.Context, name: str, reason: str = typer.Option("", "--reason")) -> None:
    """Erase a dataset: its blob and pseudonymisation key are destroyed; the audit trail stays."""
    from privet.ingestion.v1 import ingestion_pb2

    c = ctx_of(ctx)
    with _ingestion(ctx) as s:
        reply = s.DeleteDataset(ingestion_pb2.DeleteDatasetRequest(name=name, reason=reason))
    emit(c, {"deleted": reply.dataset.name}, f"[green]✓[/green] {reply.dataset.name} erased")


