"""privet models register | list | show | download | declare | attest | verify-attestation;
privet release pending | request | approve | publish | alias | revoke; privet keys rotate."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator
from typing import Any

import typer
from google.protobuf.json_format import ParseDict
from rich.console import Group
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from privet.services.cli.clients import every_page, stub
from privet.services.cli.context import console, ctx_of, emit
from privet.services.cli.output import iso_time, to_json

__all__: list[str] = []

models_app = typer.Typer(help="Register, inspect and download model versions.", no_args_is_help=True)
release_app = typer.Typer(help="Move a version through the release gates.", no_args_is_help=True)
keys_app = typer.Typer(help="Key-encryption keys of the weights at rest.", no_args_is_help=True)

UPLOAD_CHUNK = 1 << 20  # well under the message size limit


def _registry(ctx: typer.Context):
    from privet.registry.v1 import registry_pb2_grpc

    return stub(ctx_of(ctx), "registry", registry_pb2_grpc.RegistryServiceStub)


def _split(ref: str, *, need_version: bool) -> tuple[str, int]:
    name, sep, version = ref.partition(":")
    if not name or (sep and not version.isdigit()) or (need_version and not sep):
        raise typer.BadParameter(f"expected NAME:VERSION, got {ref!r}" if need_version else f"expected NAME or NAME:VERSION, got {ref!r}")
    return name, int(version) if sep else 0


def _as_dict(message: Any) -> dict:
    return to_json(message)


def _stage(v: Any) -> str:
    from privet.registry.v1 import registry_pb2

    return registry_pb2.Stage.Name(v.stage).removeprefix("STAGE_")


def version_view(v: Any) -> Group:
    """One version as a person reads it: where it stands, where it came from, what it guarantees."""
    g, lin = v.guarantee, v.lineage
    rows = [
        ("version", f"{v.model_name}:{v.version}"), ("stage", _stage(v) + (f" — {v.revoked_reason}" if v.revoked_reason else "") + (" (weights erased)" if v.erased else "")),
        ("facts", v.provenance + (f" (job {v.training_job_id})" if v.training_job_id else "")),
        ("architecture", v.architecture), ("weights", f"sha256 {v.digest}, {v.size_bytes} bytes, key {v.key_id}"),
        ("inputs", ", ".join(f"{t.name} {t.datatype}" for t in v.inputs)), ("outputs", ", ".join(f"{t.name} {t.datatype}" for t in v.outputs)),
        ("personal data", ("yes" if v.trained_on_personal_data else "no") + (f" (declared by {v.personal_declared_by})" if v.personal_declared_by else "")),
        ("guarantee", f"ε {g.epsilon:.3f}, δ {g.delta:g} per {g.privacy_unit or 'row'} ({g.accountant}, σ {g.noise_multiplier:.3f}, {g.steps} steps)" if v.has_guarantee else "none"),
        ("metrics", ", ".join(f"{k} {val:.4f}" for k, val in sorted(v.metrics.items())) or "-"),
        ("thresholds", ", ".join(f"{k} ≥ {val:g}" for k, val in sorted(v.metric_thresholds.items())) or "-"),
        ("lineage", f"dataset {lin.dataset_name or lin.dataset_id} ({lin.dataset_digest[:16]}), masking {lin.masking_profile or '-'}, trained by {lin.trained_by or '-'}" if v.HasField("lineage") else "-"),
        ("created", f"{iso_time(v.created_at.ToMicroseconds()) or '-'} by {v.created_by}"),
        ("requested by", v.requested_by or "-"), ("released by", v.released_by or "-"), ("attested", "yes" if v.attested else "no"), ("team", v.team or "-"),
    ]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for label, value in rows:
        grid.add_row(label, Text(value))
    parts: list = [grid]
    if v.approvals:
        approvals = Table("approved by", "at", "note", title="approvals")
        for a in v.approvals:
            approvals.add_row(a.principal, iso_time(a.at.ToMicroseconds()) or "", Text(a.note))
        parts.append(approvals)
    return Group(*parts)


def _progress(disabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=console, transient=True, disable=disabled)


def _version_line(v: Any) -> str:
    return f"{v.model_name}:{v.version} [bold]{_stage(v)}[/bold] sha256={v.digest[:16]}… {v.size_bytes} bytes"


@models_app.command("register")
def register(
    ctx: typer.Context,
    name: str = typer.Option(..., "--name", help="Model name."),
    weights: pathlib.Path = typer.Option(..., "--weights", exists=True, dir_okay=False, help="FILE.safetensors (pickle is refused)."),
    metadata: pathlib.Path | None = typer.Option(None, "--metadata", exists=True, dir_okay=False, help="JSON: architecture, inputs, outputs, metrics, lineage, guarantee, trained_on_personal_data, ..."),
) -> None:
    """Upload a safetensors file as a new version (sealed at rest under a fresh data key)."""
    from privet.registry.v1 import registry_pb2

    c = ctx_of(ctx)
    meta = registry_pb2.ModelVersionMetadata()
    if metadata is not None:
        try:
            ParseDict(json.loads(metadata.read_text()), meta)
        except Exception as exc:
            raise ValueError(f"{metadata}: not valid version metadata: {exc}") from None
    size = weights.stat().st_size
    meta.model_name, meta.expected_size = name, size
    with _registry(ctx) as s, _progress(c.json) as progress:
        task = progress.add_task(f"uploading {weights.name}", total=size)

        def requests() -> Iterator[Any]:
            yield registry_pb2.CreateModelVersionRequest(metadata=meta)
            with open(weights, "rb") as f:
                while piece := f.read(UPLOAD_CHUNK):
                    yield registry_pb2.CreateModelVersionRequest(chunk=piece)
                    progress.advance(task, len(piece))

        version = s.CreateModelVersion(requests())
    emit(c, _as_dict(version), f"[green]✓[/green] registered {_version_line(version)}")


@models_app.command("register-base")
def register_base(
    ctx: typer.Context,
    folder: pathlib.Path = typer.Argument(..., exists=True, file_okay=False, help="A transformers model folder: config.json, *.safetensors, tokenizer.json."),
    name: str = typer.Option(..., "--name", help="Model name of the base (its versions are the uploads)."),
    license_id: str = typer.Option(..., "--license", help="SPDX license id, e.g. Apache-2.0 (the release gate checks it)."),
    source: str = typer.Option(..., "--source", help="Where the model comes from (URL, vendor, release)."),
) -> None:
    """Upload a pre-trained transformers model as a base for DP fine-tuning. Pickle files,
    custom code (auto_map) and model types transformers does not implement are refused."""
    from privet.governance.basemodels.pack import pack_folder
    from privet.governance.registry.base_models import BASE_ARCHITECTURE
    from privet.registry.v1 import registry_pb2

    c = ctx_of(ctx)
    size, pieces = pack_folder(folder)
    meta = registry_pb2.ModelVersionMetadata(model_name=name, architecture=BASE_ARCHITECTURE, expected_size=size,
                                             base=registry_pb2.BaseModelDeclaration(license=license_id, source=source))
    with _registry(ctx) as s, _progress(c.json) as progress:
        task = progress.add_task(f"uploading {folder.name}", total=size)

        def requests() -> Iterator[Any]:
            yield registry_pb2.CreateModelVersionRequest(metadata=meta)
            for piece in pieces:
                yield registry_pb2.CreateModelVersionRequest(chunk=piece)
                progress.advance(task, len(piece))

        version = s.CreateModelVersion(requests())
    emit(c, _as_dict(version), f"[green]✓[/green] registered base {_version_line(version)}; release it to make it usable for training")


@models_app.command("list")
def list_models(ctx: typer.Context) -> None:
    """Every model, with its latest and released versions."""
    from privet.registry.v1 import registry_pb2

    c = ctx_of(ctx)
    with _registry(ctx) as s:
        models = every_page(lambda page: s.ListModels(registry_pb2.ListModelsRequest(page=page)), "models")
    table = Table("name", "owner", "team", "latest", "released", "created at")
    for m in models:
        table.add_row(m.name, m.owner, m.team or "-", str(m.latest_version), str(m.released_version or "-"), iso_time(m.created_at.ToMicroseconds()) or "")
    emit(c, [_as_dict(m) for m in models], table)


@models_app.command("show")
def show(ctx: typer.Context, ref: str = typer.Argument(..., metavar="NAME[:VERSION]")) -> None:
    """One model and its versions, or one version with all its facts."""
    from privet.registry.v1 import registry_pb2

    c = ctx_of(ctx)
    name, version = _split(ref, need_version=False)
    with _registry(ctx) as s:
        if version:
            v = s.GetModelVersion(registry_pb2.GetModelVersionRequest(name=name, version=version))
            emit(c, _as_dict(v), version_view(v))
            return
        model = s.GetModel(registry_pb2.GetModelRequest(name=name))
        versions = every_page(lambda page: s.ListModelVersions(registry_pb2.ListModelVersionsRequest(name=name, page=page)), "versions")
    table = Table("version", "stage", "facts", "digest", "bytes", "ε", "approvals", title=f"{model.name} (owner {model.owner}, team {model.team or 'none'})")
    for v in versions:
        eps = f"{v.guarantee.epsilon:g}" if v.has_guarantee else "-"
        table.add_row(str(v.version), _stage(v), v.provenance, v.digest[:16], str(v.size_bytes), eps, ",".join(a.principal for a in v.approvals))
    emit(c, {"model": _as_dict(model), "versions": [_as_dict(v) for v in versions]}, table)


@models_app.command("declare")
def declare(
    ctx: typer.Context,
    ref: str = typer.Argument(..., metavar="NAME:VERSION"),
    personal: bool = typer.Option(..., "--personal/--not-personal", help="Whether the version was trained on personal data."),
    reason: str = typer.Option(..., "--reason", help="Why (kept in the audit log)."),
) -> None:
    """Operators only: declare whether a claimed (uploaded) version was trained on personal data."""
    from privet.registry.v1 import registry_pb2

    c = ctx_of(ctx)
    name, version = _split(ref, need_version=True)
    with _registry(ctx) as s:
        v = s.DeclarePersonalData(registry_pb2.DeclareVersionPersonalDataRequest(name=name, version=version, personal=personal, reason=reason))
    emit(c, _as_dict(v), f"[green]✓[/green] {name}:{version} declared {'personal' if personal else 'not personal'} data")


@models_app.command("attest")
def attest(
    ctx: typer.Context,
    ref: str = typer.Argument(..., metavar="NAME:VERSION"),
    out: pathlib.Path = typer.Option(..., "--out", help="Where to write the attestation (JSON)."),
) -> None:
    """Write a released version's signed attestation with the audit proofs of the events it cites."""
    from privet.registry.v1 import registry_pb2

    c = ctx_of(ctx)
    name, version = _split(ref, need_version=True)
    with _registry(ctx) as s:
        reply = s.GetAttestation(registry_pb2.GetAttestationRequest(name=name, version=version, with_proofs=True))
    tmp = out.with_name(out.name + ".part")
    tmp.write_text(json.dumps(json.loads(reply.document_json), indent=2, sort_keys=True) + "\n")
    tmp.replace(out)
    emit(c, {"out": str(out), "key_id": reply.key_id, "audit_events": list(reply.audit_seqs)},
         f"[green]✓[/green] attestation of {name}:{version} ({len(reply.audit_seqs)} audit events, key {reply.key_id[:20]}…) saved to {out}")


@models_app.command("verify-attestation")
def verify_attestation_cmd(
    ctx: typer.Context,
    document: pathlib.Path = typer.Argument(..., help="The file `privet models attest` wrote."),
    key: pathlib.Path = typer.Option(..., "--key", help="The registry's attestation public key (keys/attestation.pub)."),
    audit_key: pathlib.Path | None = typer.Option(None, "--audit-key", help="The audit log's public key (keys/audit.pub): also check every cited event's inclusion proof."),
    weights: pathlib.Path | None = typer.Option(None, "--weights", help="A weights file: check it is the one attested."),
) -> None:
    """Check an attestation offline (no server): signature, subject, audit proofs, weights."""
    from privet.governance.attestation.verify import verify_attestation

    c = ctx_of(ctx)
    try:
        data = document.read_bytes()  # parsed by the verifier, strictly and within its limits
    except OSError as exc:
        raise typer.BadParameter(f"{document}: {exc}") from None
    report = verify_attestation(data, attestation_key_pem=key.read_bytes(), audit_key=audit_key.read_text().strip() if audit_key else None, weights=weights)
    emit(c, {"ok": report.ok, "message": report.message}, f"[green]✓ verified[/green]: {report.message}" if report.ok else f"[red]✗ FAILED[/red]: {report.message}")
    if not report.ok:
        raise typer.Exit(1)


@models_app.command("download")
def download(
    ctx: typer.Context,
    ref: str = typer.Argument(..., metavar="NAME:VERSION"),
    out: pathlib.Path = typer.Option(..., "--out", help="Where to write the safetensors file."),
) -> None:
    """Download decrypted weights; the file appears only once every byte and the digest verified."""
    from privet.registry.v1 import registry_pb2

    c = ctx_of(ctx)
    name, version = _split(ref, need_version=True)
    tmp = out.with_name(out.name + ".part")
    try:
        with _registry(ctx) as s, open(tmp, "wb") as f, _progress(c.json) as progress:
            info = s.GetModelVersion(registry_pb2.GetModelVersionRequest(name=name, version=version))
            task = progress.add_task(f"downloading {name}:{version}", total=info.size_bytes)
            for piece in s.DownloadWeights(registry_pb2.DownloadWeightsRequest(name=name, version=version)):
                f.write(piece.data)
                progress.advance(task, len(piece.data))
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    emit(c, {"out": str(out), "digest": info.digest, "size_bytes": info.size_bytes}, f"[green]✓[/green] {name}:{version} ({info.size_bytes} bytes, sha256 {info.digest[:16]}…) saved to {out}")


def _thresholds(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        metric, sep, value = item.partition("=")
        try:
            out[metric] = float(value)
        except ValueError:
            sep = ""
        if not sep or not metric:
            raise typer.BadParameter(f"--threshold takes METRIC=MINIMUM, got {item!r}")
    return out


@release_app.command("request")
def request(
    ctx: typer.Context,
    ref: str = typer.Argument(..., metavar="NAME:VERSION"),
    threshold: list[str] = typer.Option([], "--threshold", help="METRIC=MINIMUM, repeatable; checked by every later gate."),
    note: str = typer.Option("", "--note"),
) -> None:
    """REGISTERED -> CANDIDATE."""
    from privet.registry.v1 import registry_pb2

    c = ctx_of(ctx)
    name, version = _split(ref, need_version=True)
    with _registry(ctx) as s:
        v = s.RequestRelease(registry_pb2.RequestReleaseRequest(name=name, version=version, metric_thresholds=_thresholds(threshold), note=note))
    emit(c, _as_dict(v), f"[green]✓[/green] {_version_line(v)}")


@release_app.command("approve")
def approve(ctx: typer.Context, ref: str = typer.Argument(..., metavar="NAME:VERSION"), note: str = typer.Option("", "--note")) -> None:
    """CANDIDATE -> APPROVED (an approver who neither requested nor trained it)."""
    from privet.registry.v1 import registry_pb2

    c = ctx_of(ctx)
    name, version = _split(ref, need_version=True)
    with _registry(ctx) as s:
        v = s.ApproveRelease(registry_pb2.ApproveReleaseRequest(name=name, version=version, note=note))
    emit(c, _as_dict(v), f"[green]✓[/green] {_version_line(v)}")


@release_app.command("publish")
def publish(ctx: typer.Context, ref: str = typer.Argument(..., metavar="NAME:VERSION")) -> None:
    """APPROVED -> RELEASED (a release manager)."""
    from privet.registry.v1 import registry_pb2

    c = ctx_of(ctx)
    name, version = _split(ref, need_version=True)
    with _registry(ctx) as s:
        v = s.ReleaseModelVersion(registry_pb2.ReleaseModelVersionRequest(name=name, version=version))
    emit(c, _as_dict(v), f"[green]✓[/green] {_version_line(v)}")


@release_app.command("pending")
def pending(ctx: typer.Context) -> None:
    """What waits for whom: versions waiting for an approver or a release manager, oldest first."""
    from privet.registry.v1 import registry_pb2

    c = ctx_of(ctx)
    with _registry(ctx) as s:
        items = every_page(lambda page: s.ListPendingReleases(registry_pb2.ListPendingReleasesRequest(page=page)), "releases")
    table = Table("version", "waiting for", "requested by", "requested", "approved by", "note")
    for p in items:
        table.add_row(f"{p.model_name}:{p.version}", p.waiting_for, p.requested_by, iso_time(p.requested_at.ToMicroseconds()) or "",
                      ", ".join(p.approved_by), p.note)
    emit(c, [_as_dict(p) for p in items], table if items else "nothing waits")


@release_app.command("alias")
def alias(
    ctx: typer.Context,
    ref: str = typer.Argument(..., metavar="NAME:VERSION"),
    name_of_alias: str = typer.Argument(..., metavar="ALIAS", help="e.g. production; applications ask for NAME@ALIAS."),
    reason: str = typer.Option(..., "--reason", help="Why (required; kept in the audit log)."),
) -> None:
    """Point ALIAS at a RELEASED version (a release manager; the release gates decide)."""
    from privet.registry.v1 import registry_pb2

    c = ctx_of(ctx)
    name, version = _split(ref, need_version=True)
    with _registry(ctx) as s:
        v = s.SetAlias(registry_pb2.SetAliasRequest(name=name, alias=name_of_alias.removeprefix("@"), version=version, reason=reason))
    emit(c, _as_dict(v), f"[green]✓[/green] {name}@{name_of_alias.removeprefix('@')} -> {_version_line(v)}")


@release_app.command("revoke")
def revoke(
    ctx: typer.Context,
    ref: str = typer.Argument(..., metavar="NAME:VERSION"),
    erase: bool = typer.Option(False, "--erase", help="Destroy the data key: the weights become unrecoverable."),
    reason: str = typer.Option(..., "--reason", help="Why (required; kept in the audit log)."),
) -> None:
    """Any stage -> REVOKED, with the version's aliases; with --erase, irreversibly."""
    from privet.registry.v1 import registry_pb2

    c = ctx_of(ctx)
    name, version = _split(ref, need_version=True)
    with _registry(ctx) as s:
        v = s.RevokeModelVersion(registry_pb2.RevokeModelVersionRequest(name=name, version=version, erase=erase, reason=reason))
    emit(c, _as_dict(v), f"[green]✓[/green] {_version_line(v)}" + (" (weights erased)" if v.erased else ""))


@keys_app.command("rotate")
def rotate(ctx: typer.Context) -> None:
    """Add a key-encryption key and rewrap every data key under it (weights untouched)."""
    from privet.registry.v1 import registry_pb2

    c = ctx_of(ctx)
    with _registry(ctx) as s:
        reply = s.RotateKeys(registry_pb2.RotateKeysRequest())
    emit(c, {"key_id": reply.key_id, "rewrapped": reply.rewrapped}, f"[green]✓[/green] active key {reply.key_id}; {reply.rewrapped} data keys rewrapped")
