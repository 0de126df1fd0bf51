"""privet train | jobs list|show|cancel."""

from __future__ import annotations

import typer
from rich.console import Group
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from privet.governance.errors import InvalidArgument
from privet.governance.privacy.accounting import DEFAULT_ACCOUNTANT
from privet.services.cli.choices import allowed
from privet.services.cli.clients import every_page, stub
from privet.services.cli.context import console, ctx_of, emit
from privet.services.cli.output import iso_time, to_json

jobs_app = typer.Typer(help="Training jobs.", no_args_is_help=True)


def _training(ctx: typer.Context):
    from privet.training.v1 import training_pb2_grpc

    return stub(ctx_of(ctx), "training", training_pb2_grpc.TrainingServiceStub)


def _state(job) -> str:
    from privet.training.v1 import training_pb2

    return training_pb2.JobState.Name(job.state).removeprefix("JOB_STATE_")


def _when(stamp) -> str:
    return (iso_time(stamp.ToMicroseconds()) or "") if stamp.seconds or stamp.nanos else ""


def _grid(rows: list[tuple[str, str]], title: str | None = None) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    if title:
        grid.title = title
    for label, value in rows:
        grid.add_row(label, Text(value))  # plain text: values are the caller's names
    return grid


def job_view(job) -> Group:
    """A job as a person reads it: what was asked, where it stands, what it guarantees."""
    r, g, p = job.request, job.guarantee, job.progress
    rows = [
        ("job", job.id), ("state", _state(job) + (f" — {job.reason}" if job.reason else "")),
        ("dataset", r.dataset), ("target", r.target), ("features", ", ".join(r.features) or "every column but the target"),
        ("architecture", r.arch), ("device", job.device or r.device),
        ("training", f"{r.epochs} epochs, batch {r.batch_size}, learning rate {r.learning_rate:g}, clipping {r.max_grad_norm:g}"),
        ("asked", f"ε {r.target_epsilon:g}, δ {r.delta:g} ({r.accountant or DEFAULT_ACCOUNTANT}); ε {job.epsilon_reserved:g} reserved"),
        ("submitted", f"{_when(job.submitted_at)} by {job.submitted_by}"), ("started", _when(job.started_at) or "-"), ("finished", _when(job.finished_at) or "-"),
        ("progress", f"epoch {p.epoch}, step {p.step}/{p.total_steps}, ε {p.epsilon_spent:.3f} spent" if job.HasField("progress") else "-"),
    ]
    if job.HasField("guarantee"):
        rows.append(("guarantee", f"ε {g.epsilon:.3f}, δ {g.delta:g} per {g.privacy_unit or 'row'} ({g.accountant}, σ {g.noise_multiplier:.3f}, q {g.sample_rate:.5f}, {g.steps} steps)"))
    if job.metrics:
        rows.append(("metrics", ", ".join(f"{k} {v:.4f}" for k, v in sorted(job.metrics.items()))))
    if job.model_name:
        rows.append(("model", f"{job.model_name}:{job.model_version}"))
    parts: list = [_grid(rows)]
    if job.HasField("guarantee") and g.releases:
        releases = Table("release", "mechanism", "ε", "δ", title="other DP releases")
        for rel in g.releases:
            releases.add_row(rel.purpose, rel.mechanism, f"{rel.epsilon:.4f}", f"{rel.delta:g}")
        parts.append(releases)
    return Group(*parts)


def watch(s, job_id: str, quiet: bool = False):
    """Follow a job with a live progress bar; returns the final progress message."""
    from privet.training.v1 import training_pb2

    last = None
    # No loss column: the loss of private batches is not released (docs/privacy.md).
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("step {task.completed:.0f}/{task.total:.0f}"), TextColumn("ε {task.fields[eps]:.3f}"), TimeRemainingColumn(), console=console, transient=True, disable=quiet) as bar:
        task = bar.add_task("training", total=1, eps=0.0)
        for p in s.WatchJob(training_pb2.WatchJobRequest(job_id=job_id)):
            last = p
            bar.update(task, total=max(p.total_steps, 1), completed=p.step, eps=p.epsilon_spent, description=f"epoch {p.epoch}")
    return last


def _pairs(option: str, text: str) -> list[tuple[str, str]]:
    pairs = []
    for item in (i.strip() for i in text.split(",") if i.strip()):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise InvalidArgument(option, f"expected NAME=VALUE, got {item!r}")
        pairs.append((name.strip(), value.strip()))
    return pairs


def _bounds(text: str) -> dict[str, tuple[float, float]]:
    out = {}
    for name, value in _pairs("--bounds", text):
        lower, sep, upper = value.partition(":")
        try:
            out[name] = (float(lower), float(upper))
        except ValueError:
            raise InvalidArgument("--bounds", f"{name}: expected LOWER:UPPER, got {value!r}") from None
        if not sep:
            raise InvalidArgument("--bounds", f"{name}: expected LOWER:UPPER, got {value!r}")
    return out


def _categories(text: str) -> dict[str, list[str]]:
    return {name: [v for v in value.split("|") if v] for name, value in _pairs("--categories", text)}


def _classes(text: str) -> tuple[list[int], list[str]]:
    """(`classes`, `class_names`): whole numbers for a numeric target, else text labels."""
    labels = [c.strip() for c in text.split(",") if c.strip()]
    try:
        return [int(c) for c in labels], []
    except ValueError:
        return [], labels


def train(
    ctx: typer.Context,
    dataset: str = typer.Argument(...),
    target: str = typer.Option("", "--target", help="the column to predict (none for --task causal-lm)"),
    features: str = typer.Option("", "--features", help="comma-separated; default: every column but the target"),
    arch: str = typer.Option("mlp", "--arch", help="model architecture", callback=allowed("arch")),
    epsilon: float = typer.Option(3.0, "--epsilon"),
    delta: float = typer.Option(1e-5, "--delta"),
    epochs: int = typer.Option(3, "--epochs"),
    batch_size: int = typer.Option(256, "--batch-size"),
    learning_rate: float = typer.Option(0.01, "--learning-rate"),
    device: str = typer.Option("auto", "--device", help="where the job trains", callback=allowed("device")),
    max_grad_norm: float = typer.Option(1.0, "--max-grad-norm", help="per-sample gradient clipping norm (DP-SGD)"),
    accountant: str = typer.Option(DEFAULT_ACCOUNTANT, "--accountant", help="privacy accountant", callback=allowed("accountant")),
    model_name: str = typer.Option("", "--model-name"),
    seed: int = typer.Option(0, "--seed", help="initial weights only; noise and sampling are secret"),
    bounds: str = typer.Option("", "--bounds", help="public bounds of numeric features, e.g. age=0:120,spend=0:1000 (else DP bounds, charged)"),
    categories: str = typer.Option("", "--categories", help="public domains of string features, e.g. 'plan=basic|plus|pro' (else DP selection, charged)"),
    classes: str = typer.Option("", "--classes", help="the target's classes, e.g. 0,1 or churned,stayed (else DP selection, charged)"),
    person_key: str = typer.Option("", "--person-key", help="column naming the person a row is about: one row per person, ε per person"),
    watch_: bool = typer.Option(False, "--watch", help="follow the job with a live progress bar"),
    base: str = typer.Option("", "--base", help="NAME:VERSION of a released base model to fine-tune (arch transformer)"),
    task: str = typer.Option("sequence-classification", "--task", help="fine-tuning: sequence-classification | causal-lm (no --target)"),
    tune: str = typer.Option("lora", "--tune", help="fine-tuning: lora | head | last-k"),
    lora_rank: int = typer.Option(0, "--lora-rank", help="LoRA rank (default 8)"),
    last_k: int = typer.Option(0, "--last-k", help="last-k: transformer blocks trained (default 1)"),
    max_length: int = typer.Option(0, "--max-length", help="fine-tuning: tokens per text (default 128)"),
    workers: int = typer.Option(1, "--workers", help="data-parallel ranks (torch.distributed; noise drawn once a step)"),
) -> None:
    """Submit a DP training job; its target ε is reserved against the dataset's budget.
    With --base, the job fine-tunes a released base model on one text column (--features)."""
    from privet.training.v1 import training_pb2

    c = ctx_of(ctx)
    fine_tune = training_pb2.FineTune(base=base, task=task, tune=tune, lora_rank=lora_rank, last_k=last_k, max_length=max_length) if base else None
    request = training_pb2.SubmitJobRequest(dataset=dataset, target=target, features=[f for f in features.split(",") if f], arch="transformer" if base else arch, epochs=epochs, batch_size=batch_size,
                                            learning_rate=learning_rate, target_epsilon=epsilon, delta=delta, device=device,
                                            max_grad_norm=max_grad_norm, accountant=accountant, model_name=model_name, seed=seed,
                                            feature_bounds={k: training_pb2.Bounds(lower=lo, upper=hi) for k, (lo, hi) in _bounds(bounds).items()},
                                            categories={k: training_pb2.Domain(values=v) for k, v in _categories(categories).items()},
                                            classes=_classes(classes)[0], class_names=_classes(classes)[1], person_key=person_key,
                                            fine_tune=fine_tune, workers=workers)
    with _training(ctx) as s:
        job = s.SubmitJob(request)
        if not watch_:
            emit(c, to_json(job), f"[green]✓[/green] job {job.id} queued; ε {job.epsilon_reserved:g} reserved")
            return
        watch(s, job.id, quiet=c.json)
        job = s.GetJob(training_pb2.GetJobRequest(job_id=job.id))
    g = job.guarantee
    line = f"job {job.id}: {_state(job)}" + (f" — {job.reason}" if job.reason else "")
    if job.model_name:
        line += f"; registered {job.model_name}:{job.model_version} with ε {g.epsilon:.3f}, δ {g.delta:g} ({g.accountant}, σ {g.noise_multiplier:.3f}, {g.steps} steps)"
    emit(c, to_json(job), line)
    if _state(job) != "SUCCEEDED":
        raise typer.Exit(1)


@jobs_app.command("list")
def list_(ctx: typer.Context, dataset: str = typer.Option("", "--dataset")) -> None:
    from privet.training.v1 import training_pb2

    c = ctx_of(ctx)
    with _training(ctx) as s:
        jobs = every_page(lambda page: s.ListJobs(training_pb2.ListJobsRequest(dataset=dataset, page=page)), "jobs")
    table = Table("job", "dataset", "arch", "state", "ε reserved", "ε spent", "model", "submitted")
    for j in jobs:
        table.add_row(j.id[:8], j.request.dataset, j.request.arch, _state(j), f"{j.epsilon_reserved:g}", f"{j.guarantee.epsilon:.3f}", f"{j.model_name}:{j.model_version}" if j.model_name else "", _when(j.submitted_at))
    emit(c, [to_json(j) for j in jobs], table)


@jobs_app.command("show")
def show(ctx: typer.Context, job_id: str) -> None:
    from privet.training.v1 import training_pb2

    c = ctx_of(ctx)
    with _training(ctx) as s:
        job = s.GetJob(training_pb2.GetJobRequest(job_id=job_id))
    emit(c, to_json(job), job_view(job))


@jobs_app.command("cancel")
def cancel(ctx: typer.Context, job_id: str, reason: str | None = typer.Option("", "--reason")) -> None:
    from privet.training.v1 import training_pb2

    c = ctx_of(ctx)
    with _training(ctx) as s:
        job = s.CancelJob(training_pb2.CancelJobRequest(job_id=job_id, reason=reason or ""))
    emit(c, to_json(job), f"[green]✓[/green] cancellation of {job.id} requested ({_state(job)})")
