"""privet ingest | datasets list|show|export|delete."""

from __future__ import annotations

import pathlib

import typer
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table
from rich.text import Text

from privet.services.cli.choices import allowed
from privet.services.cli.clients import every_page, stub
from privet.services.cli.context import console, ctx_of, emit, err_console
from privet.services.cli.output import iso_time, suppressed_columns, to_json

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


def make_header(path: pathlib.Path, name: str, profile: str, quasi_identifiers: str, k: int, epsilon: float, delta: float, fmt: str | None = None, personal: bool = False,
                *, sensitive_column: str = "", l_diversity: int = 0, max_suppression: float = 0.0):
    from privet.ingestion.v1 import ingestion_pb2

    fmt_name = (fmt or _FORMATS.get(path.suffix.lower(), "")).upper()
    if not fmt_name:
        raise typer.BadParameter(f"cannot tell the format of {path.name}; pass --format", param_hint="--format")
    return ingestion_pb2.DatasetHeader(
        name=name, format=f"DATA_FORMAT_{fmt_name}", profile=profile,
        quasi_identifiers=[q.strip() for q in quasi_identifiers.split(",") if q.strip()], k=k, epsilon_budget=epsilon, delta_budget=delta,
        sensitive_column=sensitive_column, l_diversity=l_diversity, max_suppression=max_suppression,
        expected_size=path.stat().st_size, personal=personal, csv=ingestion_pb2.CsvOptions(delimiter="\t" if path.suffix.lower() == ".tsv" else ""),
    )


def report_table(d) -> Table:
    table = Table("column", "type", "action", "PII found", title=f"dataset {d.name} ({d.rows} rows, digest {d.digest[:12]}…)")
    for c in d.columns:
        table.add_row(c.name, c.type, c.action, ", ".join(c.detected_types))
    return table


def k_cost(report, quasi_identifiers: list[str] | None = None) -> list[str]:
    """What k-anonymity cost, in words: the columns it wiped to `*`, the rows it dropped,
    and what to try instead. Empty when it cost nothing worth a warning."""
    if report.k <= 1 and not report.suppressed_rows:
        return []
    lines = []
    wiped = suppressed_columns(dict(report.generalisation))
    if wiped:
        lines.append(f"k={report.k} generalised {', '.join(wiped)} to `*` in every row: {'that column carries' if len(wiped) == 1 else 'those columns carry'} no information")
    if report.suppressed_rows:
        share = report.suppressed_rows / report.rows_in if report.rows_in else 0.0
        lines.append(f"k={report.k} suppressed {report.suppressed_rows} of {report.rows_in} rows ({share:.1%})")
    if lines:
        keep = [q for q in (quasi_identifiers or []) if q not in wiped]
        hint = f"drop {', '.join(wiped)} from --quasi-identifiers" + (f" (keeping {', '.join(keep)})" if keep else "") if wiped else ""
        lines.append("suggestion: " + "; or ".join(x for x in (f"a smaller --k than {report.k}", hint, "a profile with coarser hierarchies") if x))
    return lines


def _warn_k_cost(report, quasi_identifiers: list[str]) -> None:
    for line in k_cost(report, quasi_identifiers):
        err_console.print(f"[yellow]warning:[/yellow] {escape(line)}" if not line.startswith("suggestion") else f"  {escape(line)}", highlight=False, soft_wrap=True)


def _budget_line(b) -> str:
    return f"privacy budget: ε {b.epsilon_total:g} total, {b.epsilon_reserved:g} reserved, {b.epsilon_spent:g} spent, {b.epsilon_remaining:g} left (δ {b.delta:g})"


def _masking_summary(d) -> Table:
    r = d.report
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    rows = [
        ("rows", f"{r.rows_in} in, {r.rows_out} kept, {r.suppressed_rows} suppressed"),
        ("k-anonymity", f"k={r.k}" + (f" over {', '.join(d.quasi_identifiers)}" if d.quasi_identifiers else " (none)")),
        ("generalisation", ", ".join(f"{q} → {level}" for q, level in sorted(r.generalisation.items())) or "none"),
        ("information loss", f"{r.information_loss:.3f}"),
        ("cells masked", str(r.cells_masked)),
        ("personal data", ("yes (" + ", ".join(d.personal_basis) + ")") if d.personal else "no"),
    ]
    for label, value in rows:
        grid.add_row(label, Text(value))
    return grid


def ingest(
    ctx: typer.Context,
    path: pathlib.Path = typer.Argument(..., exists=True, dir_okay=False),
    name: str = typer.Option(..., "--name"),
    profile: str = typer.Option("default", "--profile", help="masking profile", callback=allowed("profile")),
    quasi_identifiers: str = typer.Option("", "--quasi-identifiers", help="comma-separated"),
    k: int = typer.Option(1, "--k", min=1, help="k-anonymity over the quasi-identifiers (1 = none)"),
    sensitive_column: str = typer.Option("", "--sensitive-column", help="the column ℓ-diversity protects"),
    l_diversity: int = typer.Option(0, "--l-diversity", min=0, help="distinct ℓ-diversity of --sensitive-column in each group (0 or 1 = none)"),
    max_suppression: float = typer.Option(0.0, "--max-suppression", min=0.0, max=0.999999, help="share of rows k-anonymity may suppress (0 = the server's default, 0.05)"),
    epsilon: float = typer.Option(8.0, "--epsilon", help="the dataset's total privacy budget"),
    delta: float = typer.Option(1e-5, "--delta"),
    fmt: str | None = typer.Option(None, "--format", help="default: from the file's suffix", callback=allowed("fmt")),
    personal: bool = typer.Option(False, "--personal", help="The data is about people, whatever the detectors find."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what each column would become; store nothing."),
) -> None:
    """Upload a CSV/JSONL/Parquet file; it is masked, k-anonymised and stored."""
    c = ctx_of(ctx)
    if l_diversity > 1 and not sensitive_column:
        raise typer.BadParameter("needs --sensitive-column", param_hint="--l-diversity")
    header = make_header(path, name, profile, quasi_identifiers, k, epsilon, delta, fmt, personal,
                         sensitive_column=sensitive_column, l_diversity=l_diversity, max_suppression=max_suppression)
    with _ingestion(ctx) as s, Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=console, transient=True, disable=c.json) as progress:
        if dry_run:
            preview = s.PreviewMasking(upload_requests(path, header, progress))
        else:
            d = s.CreateDataset(upload_requests(path, header, progress))
    if dry_run:
        emit(c, to_json(preview), preview_table(name, preview))
        if not c.json and preview.HasField("report"):
            _warn_k_cost(preview.report, list(header.quasi_identifiers))
        return
    r = d.report
    summary = (f"[green]✓[/green] {escape(d.name)}: {r.rows_in} rows in, {r.rows_out} out, {r.suppressed_rows} suppressed; "
               f"information loss {r.information_loss:.3f}; {'personal data (' + escape(', '.join(d.personal_basis)) + ')' if d.personal else 'not personal data'}")
    emit(c, to_json(d), summary)
    if not c.json:
        console.print(report_table(d))
        console.print(_masking_summary(d))
        _warn_k_cost(r, list(d.quasi_identifiers))


def preview_table(name: str, preview) -> Table:
    """Each column: what it holds, the rule it gets, and a few values before → after."""
    table = Table("column", "action", "PII found", "original", "masked", title=f"dry run: {name} would be stored as (nothing stored)")
    for col in preview.columns:
        table.add_row(col.name, col.action, ", ".join(col.detected_types), Text("\n".join(col.original[:3])), Text("\n".join(col.masked[:3])))
    return table


@datasets_app.command("list")
def list_(ctx: typer.Context) -> None:
    from privet.ingestion.v1 import ingestion_pb2

    c = ctx_of(ctx)
    with _ingestion(ctx) as s:
        datasets = every_page(lambda page: s.ListDatasets(ingestion_pb2.ListDatasetsRequest(page=page)), "datasets")
    table = Table("name", "rows", "profile", "k", "personal", "ε budget", "created by", "created at")
    for d in datasets:
        table.add_row(d.name, str(d.rows), d.profile, str(d.report.k), "yes" if d.personal else "no",
                      f"{d.budget.epsilon_remaining:g} of {d.budget.epsilon_total:g}", d.created_by, iso_time(d.created_at.ToMicroseconds()) or "")
    emit(c, [to_json(d) for d in datasets], table)


@datasets_app.command("show")
def show(ctx: typer.Context, name: str) -> None:
    """One dataset: its columns and masking, what k-anonymity cost, its budget and ledger."""
    from privet.ingestion.v1 import ingestion_pb2

    c = ctx_of(ctx)
    with _ingestion(ctx) as s:
        d = s.GetDataset(ingestion_pb2.GetDatasetRequest(name=name))
    emit(c, to_json(d), report_table(d))
    if not c.json:
        console.print(_masking_summary(d))
        _warn_k_cost(d.report, list(d.quasi_identifiers))
        console.print(_budget_line(d.budget))
        ledger = Table("time", "kind", "job", "ε", "δ", "σ", "q", "steps", "accountant", "by", title="privacy ledger")
        for e in d.ledger:
            mech = (f"{e.noise_multiplier:.4f}", f"{e.sample_rate:.5f}", str(e.steps)) if e.kind == "charge" else ("", "", "")
            ledger.add_row(iso_time(e.time_us) or "", e.kind, e.job_id[:8], f"{e.epsilon:.4f}", f"{e.delta:g}" if e.delta else "", *mech, e.accountant, e.principal)
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
    emit(c, to_json(d), f"[green]✓[/green] {d.name} declared {'personal' if d.personal else 'not personal'} data")


@datasets_app.command("delete")
def delete(ctx: typer.Context, name: str, reason: str = typer.Option("", "--reason")) -> None:
    """Erase a dataset: its blob and pseudonymisation key are destroyed; the audit trail stays."""
    from privet.ingestion.v1 import ingestion_pb2

    c = ctx_of(ctx)
    with _ingestion(ctx) as s:
        reply = s.DeleteDataset(ingestion_pb2.DeleteDatasetRequest(name=name, reason=reason))
    emit(c, to_json(reply.dataset), f"[green]✓[/green] {reply.dataset.name} erased")


