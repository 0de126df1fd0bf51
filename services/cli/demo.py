"""`privet demo`: the whole path on a fresh home, told step by step.

ingest (mask + k-anonymity) → DP training → registry → release through the gates (a second
person approves) → inference through the stock KServe client → a denied call → the audit log
exported and verified offline. Every call is a real gRPC call over mutual TLS, made as the
principal a real deployment would use.
"""

from __future__ import annotations

import pathlib
import secrets
import signal
import subprocess
import sys
import time
from typing import Any

import pyarrow.csv as pacsv
from rich.panel import Panel
from rich.table import Table

from privet.governance.bootstrap import init_home
from privet.governance.datasets.synthetic import customer_table
from privet.services.cli.clients import stub
from privet.services.cli.context import Ctx, console
from privet.services.common.health import wait_healthy

__all__ = ["run_demo"]

DATASET, TARGET = "customers", "churned"
FEATURES = ["age", "tenure_months", "monthly_spend", "plan", "support_calls"]
QUASI_IDENTIFIERS = ["age", "zip", "sex"]


class _Story:
    def __init__(self) -> None:
        self.n = 0
        self.started = time.monotonic()

    def step(self, text: str) -> None:
        self.n += 1
        console.print(f"\n[bold cyan]{self.n}.[/bold cyan] [bold]{text}[/bold]  [dim]({time.monotonic() - self.started:.0f}s)[/dim]")

    def say(self, text: str) -> None:
        console.print(f"   {text}", highlight=False)



def start_background_server(home_root: str, log_path: pathlib.Path) -> subprocess.Popen[bytes]:
    """`privet serve all` as a child process (its own session so --keep survives us)."""
    log = open(log_path, "ab")
    return subprocess.Popen([sys.executable, "-m", "privet.services.cli", "--home", home_root, "serve", "all"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

def _as(c: Ctx, principal: str) -> Ctx:
    return Ctx(c.home, principal, c.json)


def run_demo(c: Ctx, *, keep: bool) -> None:

    story = _Story()
    console.print(Panel.fit("Privet demo — governed, privacy-preserving models end to end", style="bold"))
    story.step(f"Initialise the home at {c.home.root}: local CA, SPIFFE certificates, keys, Cedar policies")
    report = init_home(c.home)
    story.say(f"created {len(report.created)} file(s), kept {len(report.kept)}")

    story.step("Start the four services over mutual TLS 1.3 (privet serve all)")
    proc = start_background_server(str(c.home.root), c.home.run / "serve.log")
    try:
        results = _wait_for(proc, c)
        for r in results:
            story.say(f"{'[green]✓[/green]' if r.ok else '[red]✗[/red]'} {r.service:<10} {r.address:<18} {r.status}")
        if not all(r.ok for r in results):
            raise RuntimeError(f"services did not become healthy; see {c.home.run / 'serve.log'}")
        _ingest(c, story)
        model, version = _train(c, story)
        _release(c, story, model, version)
        _infer(c, story, model)
        _audit(c, story)
        _attest(c, story, model, version)
        console.print(Panel.fit(f"[green]Done in {time.monotonic() - story.started:.0f}s.[/green] Explore with `privet --home {c.home.root} models list`, `… audit events`, `… datasets show {DATASET}`.", style="green"))
    finally:
        if keep:
            console.print(f"services keep running (pid {proc.pid}); stop them with: kill {proc.pid}")
        else:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


def _wait_for(proc, c: Ctx) -> list:
    """Health of every service, failing fast (with the server's own words) if it exits."""
    deadline = time.monotonic() + 90
    while True:
        results = wait_healthy(c.home, c.principal, timeout=1.0)
        if all(r.ok for r in results) or time.monotonic() > deadline:
            return results
        if proc.poll() is not None:
            log = (c.home.run / "serve.log").read_text().strip().splitlines()
            raise RuntimeError(f"privet serve exited ({proc.returncode}): {log[-1] if log else 'no output'}")


def _ingest(c: Ctx, story: _Story) -> None:
    from privet.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
    from privet.services.cli.ingest_cmds import make_header, upload_requests

    story.step("Generate a raw customer table full of personal data (Faker): names, emails, phones, cards, IBANs, addresses, notes")
    # Fresh customers on every run: the privacy budget belongs to the data, so the same
    # bytes ingested again would resume the budget earlier runs spent.
    raw = customer_table(3000, seed=secrets.randbelow(2**31))
    path = c.home.run / "demo-customers.csv"
    pacsv.write_csv(raw, path)
    first = raw.slice(0, 1).to_pylist()[0]
    story.say(f"{raw.num_rows} rows, e.g. {first['name']} <{first['email']}>, card {first['card']}, notes: “{first['notes'][:60]}…”")

    story.step("alice ingests it with the default masking profile, k = 5 over age/zip/sex, a privacy budget of ε = 8")
    header = make_header(path, DATASET, "default", ",".join(QUASI_IDENTIFIERS), 5, 8.0, 1e-5)
    with stub(_as(c, "alice"), "ingestion", ingestion_pb2_grpc.IngestionServiceStub) as s:
        if any(d.name == DATASET for d in s.ListDatasets(ingestion_pb2.ListDatasetsRequest()).datasets):
            s.DeleteDataset(ingestion_pb2.DeleteDatasetRequest(name=DATASET, reason="demo rerun"))
        d = s.CreateDataset(upload_requests(path, header))
        rows = s.ReadDataset(ingestion_pb2.ReadDatasetRequest(name=DATASET, columns=["name", "email", "card", "notes", "age", "zip"]))
        import pyarrow as pa

        sample = pa.ipc.open_stream(b"".join(m.arrow_ipc for m in rows)).read_all().slice(0, 1).to_pylist()[0]
    table = Table("column", "action", "PII found")
    for col in d.columns:
        table.add_row(col.name, col.action, ", ".join(col.detected_types))
    console.print(table)
    r = d.report
    story.say(f"{r.rows_in} rows in, {r.rows_out} stored, {r.suppressed_rows} suppressed; generalisation {dict(r.generalisation)}; information loss {r.information_loss:.3f}")
    story.say(f"stored row: name {sample['name'][:16]}…, email {sample['email'][:16]}…, card {sample['card']}, notes “{sample['notes'][:60]}”")


def _train(c: Ctx, story: _Story) -> tuple[str, int]:
    from privet.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
    from privet.services.cli.train_cmds import watch
    from privet.training.v1 import training_pb2, training_pb2_grpc

    story.step("alice trains a DP-SGD mlp with ε = 3 (Opacus, Poisson sampling, secret noise); the ε is reserved against the budget first")
    # Public facts about the product (not the customers) are declared, so they cost no ε;
    # what is not declared (the generalised ages' domain) is released with DP, charged.
    request = training_pb2.SubmitJobRequest(
        dataset=DATASET, target=TARGET, features=FEATURES, arch="mlp", epochs=3, batch_size=128, learning_rate=0.01, target_epsilon=3.0, delta=1e-5, device="auto", seed=7,
        feature_bounds={"tenure_months": training_pb2.Bounds(lower=0, upper=120), "monthly_spend": training_pb2.Bounds(lower=0, upper=250), "support_calls": training_pb2.Bounds(lower=0, upper=10)},
        categories={"plan": training_pb2.Domain(values=["basic", "plus", "premium"])}, classes=[0, 1],
    )
    with stub(_as(c, "alice"), "training", training_pb2_grpc.TrainingServiceStub) as s:
        job = s.SubmitJob(request)
        story.say(f"job {job.id[:8]} queued, ε {job.epsilon_reserved:g} reserved")
        watch(s, job.id, quiet=c.json)
        job = s.GetJob(training_pb2.GetJobRequest(job_id=job.id))
    if job.state != training_pb2.JOB_STATE_SUCCEEDED:
        raise RuntimeError(f"training failed: {job.reason}")
    g, m = job.guarantee, job.metrics
    parts = ", ".join(f"{r.purpose} {r.epsilon:.3f}" for r in g.releases)
    story.say(f"guarantee ε {g.epsilon:.3f} (≤ 3), δ {g.delta:.3g}, {g.neighbouring_relation} of one {g.privacy_unit}: DP-SGD {g.sgd_epsilon:.3f} ({g.accountant}, σ {g.noise_multiplier:.3f}, q {g.sample_rate:.4f}, {g.steps} steps, clip {g.max_grad_norm:g}) + {parts}")
    story.say(f"held-out accuracy {m['accuracy']:.3f} (majority baseline {m['baseline_accuracy']:.3f}), ROC AUC {m.get('roc_auc', float('nan')):.3f} — all DP")
    with stub(_as(c, "alice"), "ingestion", ingestion_pb2_grpc.IngestionServiceStub) as s:
        b = s.GetDataset(ingestion_pb2.GetDatasetRequest(name=DATASET)).budget
    story.say(f"budget of {DATASET}: ε {b.epsilon_spent:.3f} spent of {b.epsilon_total:g}, {b.epsilon_remaining:.3f} left")
    story.say(f"registered as {job.model_name}:{job.model_version} with its lineage and DP guarantee")
    return job.model_name, job.model_version


def _release(c: Ctx, story: _Story, model: str, version: int) -> None:
    import grpc

    from privet.registry.v1 import registry_pb2, registry_pb2_grpc

    ref: dict[str, Any] = dict(name=model, version=version)
    story.step("Release through the policy gates: alice requests, dana approves (not the requester, not the trainer), bob publishes")
    with stub(_as(c, "alice"), "registry", registry_pb2_grpc.RegistryServiceStub) as s:
        s.RequestRelease(registry_pb2.RequestReleaseRequest(**ref, metric_thresholds={"accuracy": 0.5}))
        story.say("alice: REGISTERED → CANDIDATE (threshold accuracy ≥ 0.5 recorded)")
    with stub(_as(c, "bob"), "registry", registry_pb2_grpc.RegistryServiceStub) as s:
        try:
            s.ReleaseModelVersion(registry_pb2.ReleaseModelVersionRequest(**ref))
        except grpc.RpcError as exc:
            story.say(f"bob tries to publish before any approval: [red]{exc.code().name}[/red] — {exc.details()}")
    with stub(_as(c, "dana"), "registry", registry_pb2_grpc.RegistryServiceStub) as s:
        s.ApproveRelease(registry_pb2.ApproveReleaseRequest(**ref, note="DP guarantee and metrics checked"))
        story.say("dana: CANDIDATE → APPROVED")
    with stub(_as(c, "bob"), "registry", registry_pb2_grpc.RegistryServiceStub) as s:
        v = s.ReleaseModelVersion(registry_pb2.ReleaseModelVersionRequest(**ref))
        story.say(f"bob: APPROVED → {registry_pb2.Stage.Name(v.stage).removeprefix('STAGE_')} (weights digest {v.digest[:16]}…)")


def _infer(c: Ctx, story: _Story, model: str) -> None:
    from tritonclient.utils import InferenceServerException

    from privet.services.cli.infer_cmds import infer_columns

    columns: dict[str, list[Any]] = {"age": [34.0, 71.0], "tenure_months": [3.0, 96.0], "monthly_spend": [180.0, 25.0], "plan": ["basic", "premium"], "support_calls": [7.0, 0.0]}
    story.step("The app calls the released model through the stock KServe v2 client (tritonclient), purpose churn-prediction")
    probabilities = infer_columns(_as(c, "app"), model, "", columns, "churn-prediction")
    for i, p in enumerate(probabilities):
        story.say(f"customer {i}: P(churn) = {p[1]:.3f}")
    story.step("Calls the policy does not allow are refused, with the deciding policy, and audited")
    for who, purpose in (("app", "marketing"), ("alice", "churn-prediction")):
        try:
            infer_columns(_as(c, who), model, "", columns, purpose)
            story.say(f"[red]unexpectedly allowed[/red]: {who} / {purpose}")
        except InferenceServerException as exc:
            story.say(f"{who} with purpose {purpose!r}: [red]{exc.status().removeprefix('StatusCode.')}[/red] — {exc.message()}")


def _attest(c: Ctx, story: _Story, model: str, version: int) -> None:
    import json

    from privet.governance.attestation.verify import verify_attestation
    from privet.registry.v1 import registry_pb2, registry_pb2_grpc

    story.step("carol takes the release's signed attestation (in-toto statement, DSSE envelope) and checks it offline")
    with stub(_as(c, "carol"), "registry", registry_pb2_grpc.RegistryServiceStub) as s:
        reply = s.GetAttestation(registry_pb2.GetAttestationRequest(name=model, version=version, with_proofs=True))
    out = c.home.run / f"demo-{model}-{version}.attestation.json"
    out.write_text(reply.document_json)
    report = verify_attestation(json.loads(reply.document_json), attestation_key_pem=(c.home.keys / "attestation.pub").read_bytes(),
                                audit_key=(c.home.keys / "audit.pub").read_text().strip(), expect_model=(model, version))
    predicate = (report.statement or {}).get("predicate", {})
    story.say(f"facts {predicate.get('provenance', '?')} by Privet: job {predicate.get('lineage', {}).get('training_job_id', '?')[:8]}…, "
              f"ε {((predicate.get('guarantee') or {}).get('epsilon') or 0):.3f}, {len(reply.audit_seqs)} audit events with inclusion proofs")
    story.say(("[green]✓ attestation verified[/green]: " if report.ok else "[red]✗ attestation failed[/red]: ") + report.message)
    story.say(f"repeat it yourself: privet models verify-attestation {out} --key {c.home.keys / 'attestation.pub'} --audit-key {c.home.keys / 'audit.pub'}")
    if not report.ok:
        raise RuntimeError("the release's attestation did not verify")


# The app's calls in `_infer`: one allowed, one refused for its purpose. Inference counts reach
# the log in batches (once a second), so the export waits until both are in it.
APP_INFERENCE_CALLS = 2


def _await_inference_counts(c: Ctx, expected: int, timeout_s: float = 10.0) -> None:
    """Until the log counts `expected` inference requests by user/app (or `timeout_s`)."""
    import json

    from privet.audit.v1 import audit_pb2, audit_pb2_grpc

    deadline = time.monotonic() + timeout_s
    with stub(c, "registry", audit_pb2_grpc.AuditServiceStub) as s:
        while time.monotonic() < deadline:
            page = s.ListEvents(audit_pb2.ListEventsRequest(action="inference.ModelInfer", principal="user/app"))
            if sum(json.loads(e.details_json or "{}").get("requests", 0) for e in page.events) >= expected:
                return
            time.sleep(0.25)


def _audit(c: Ctx, story: _Story) -> None:
    from privet.audit.v1 import audit_pb2, audit_pb2_grpc
    from privet.governance.audit.offline import verify_export
    from privet.services.cli.audit_cmds import export_line

    story.step("carol (auditor) takes a signed checkpoint, exports the log, and verifies it offline")
    carol = _as(c, "carol")
    _await_inference_counts(carol, APP_INFERENCE_CALLS)
    with stub(carol, "registry", audit_pb2_grpc.AuditServiceStub) as s:
        cp = s.GetCheckpoint(audit_pb2.GetCheckpointRequest())
        lines = []
        for e in s.ExportEvents(audit_pb2.ExportEventsRequest()):
            lines.append(export_line(e))
    export, checkpoint = c.home.run / "demo-events.jsonl", c.home.run / "demo-checkpoint.txt"
    export.write_text("\n".join(lines) + "\n")
    checkpoint.write_text(cp.note)
    report = verify_export(lines, cp.note, (c.home.keys / "audit.pub").read_text().strip())
    story.say(f"{len(lines)} events exported to {export.name}; checkpoint at size {cp.tree_size}")
    story.say(("[green]✓ verified offline[/green]: " if report.ok else "[red]✗ verification failed[/red]: ") + report.message)
    story.say(f"repeat it yourself: privet audit verify {export} --checkpoint {checkpoint} --key {c.home.keys / 'audit.pub'}")
    if not report.ok:
        raise RuntimeError("the audit log did not verify")
