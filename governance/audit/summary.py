"""What a verified audit log says, joined up: the facts behind the compliance report
(`report.render_report` renders them). Pure: events in, an `AuditSummary` out.

What it derives from the log alone (docs/audit-format.md names the events):

- lineage of each released model: `registry.CreateModelVersion` (weights digest, the
  lineage's dataset and training job, and whether those facts were *established* by Privet
  or *claimed* by an uploader) → `ingestion.CreateDataset` (raw data digest, masking
  profile and its digest) → the job's `privacy.charge` entries → `registry.ApproveRelease`
  → `registry.ReleaseModelVersion`, all joined on version / dataset / job ids. A job named
  by two versions, or a version whose weights are not those its job produced
  (`training.EndJob`), is flagged (`AuditSummary.flags`);
- the privacy ledger of each dataset: `privacy.open|reserve|charge|release`;
- denials (decision ``deny``) by principal, with the policy ids that decided them.

ε values are exact decimals (the log stores them as the text of the ledger's micro-ε
floats), so sums are exact. The log records what principals sent and a principal may be
hostile: `summarise` tolerates any content and never raises on it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from privet.governance.audit.leaf import EventRecord

__all__ = ["AuditSummary", "DatasetLedger", "Denials", "LedgerEntry", "ModelLineage", "as_text", "summarise"]

_LEDGER_KINDS = ("open", "reserve", "charge", "release")


# -- what the log says, joined up ---------------------------------------------------------
@dataclass(frozen=True)
class LedgerEntry:
    seq: int
    time_us: int
    kind: str  # open | reserve | charge | release
    epsilon: Decimal
    job_id: str
    principal: str
    accountant: str = ""
    noise_multiplier: str = ""
    sample_rate: str = ""
    steps: int | None = None


@dataclass
class DatasetLedger:
    dataset_id: str
    name: str = ""
    epsilon_total: Decimal | None = None  # None: the budget was opened outside the log read
    opened_us: int | None = None
    raw_digest: str = ""
    digest: str = ""
    profile: str = ""
    profile_digest: str = ""
    k: int | None = None
    created_by: str = ""
    created_us: int | None = None
    deleted_us: int | None = None
    entries: list[LedgerEntry] = field(default_factory=list)

    def total(self, kind: str) -> Decimal:
        return sum((e.epsilon for e in self.entries if e.kind == kind), Decimal(0))

    @property
    def epsilon_spent(self) -> Decimal:
        return self.total("charge")

    def committed_series(self) -> list[tuple[int, Decimal]]:
        """(time, ε spent + still reserved) after each reserve/charge/release entry."""
        held: dict[str, Decimal] = defaultdict(Decimal)
        spent, series = Decimal(0), []
        for entry in self.entries:
            if entry.kind == "reserve":
                held[entry.job_id] += entry.epsilon
            elif entry.kind == "charge":
                # A charge beyond the reservation is taken from the budget: nothing stays held.
                spent += entry.epsilon
                held[entry.job_id] = max(held[entry.job_id] - entry.epsilon, Decimal(0))
            elif entry.kind == "release":
                held[entry.job_id] = max(held[entry.job_id] - entry.epsilon, Decimal(0))
            else:
                continue
            series.append((entry.time_us, spent + sum(held.values(), Decimal(0))))
        return series

    @property
    def epsilon_reserved_open(self) -> Decimal:
        """Reserved and neither charged nor released yet (a job still running)."""
        series = self.committed_series()
        return series[-1][1] - self.epsilon_spent if series else Decimal(0)


@dataclass
class ModelLineage:
    model: str
    version: str
    version_id: str
    weights_digest: str = ""
    registered_by: str = ""
    registered_us: int | None = None
    dataset_id: str = ""
    dataset_digest: str = ""
    job_id: str = ""
    trained_by: str = ""
    requested: tuple[str, int] | None = None
    approvals: list[tuple[str, int, str]] = field(default_factory=list)  # (who, when, note)
    released: tuple[str, int] | None = None
    revoked: tuple[str, int, str] | None = None
    requests_served: int = 0
    served_digests: set[str] = field(default_factory=set)
    provenance: str = "claimed"  # "established" only when the registry said so (events before it: claimed)

    @property
    def ref(self) -> str:
        return f"{self.model}:{self.version}"


@dataclass
class Denials:
    principal: str
    events: int = 0
    requests: int = 0  # metered inference events stand for several requests each
    policies: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)


@dataclass
class AuditSummary:
    events: int
    first_us: int | None
    last_us: int | None
    datasets: dict[str, DatasetLedger]
    models: dict[str, ModelLineage]  # by version id, in creation order
    denials: dict[str, Denials]
    job_weights: dict[str, str] = field(default_factory=dict)  # job id -> the weights digest its worker produced (training.EndJob)

    def flags(self, m: ModelLineage) -> list[str]:
        """What does not add up about a version's lineage, in plain words."""
        out = []
        if m.job_id:
            named = sorted(x.ref for x in self.models.values() if x.job_id == m.job_id)
            if len(named) > 1:
                out.append(f"training job {m.job_id} is named by {len(named)} versions: {', '.join(named)}")
            produced = self.job_weights.get(m.job_id, "")
            if produced and produced != m.weights_digest:
                out.append(f"the weights ({m.weights_digest[:16]}…) are not those job {m.job_id} produced ({produced[:16]}…)")
        return out

    @property
    def released(self) -> list[ModelLineage]:
        return sorted((m for m in self.models.values() if m.released), key=lambda m: m.released[1] if m.released else 0)


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return Decimal(0)
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return Decimal(0)
    return number if number.is_finite() else Decimal(0)


def as_text(value: Any) -> str:
    """A detail value as text ("" for None), whatever type a principal sent."""
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _model_ref(resource: str) -> tuple[str, str]:
    """"model/<name>/<version>" (registry) or "model/<name>:<version>" (inference)."""
    body = resource.removeprefix("model/")
    name, sep, version = body.rpartition("/")
    if not sep:
        name, sep, version = body.rpartition(":")
    return (name, version) if sep else (body, "")


def summarise(events: Sequence[EventRecord]) -> AuditSummary:
    """Join the events into lineage, ledgers and denials. Tolerates events it does not know
    and links it cannot make (the page then says what is missing); never raises on content."""
    datasets: dict[str, DatasetLedger] = {}
    models: dict[str, ModelLineage] = {}
    by_ref: dict[str, str] = {}  # "name:version" -> version id
    denials: dict[str, Denials] = {}
    job_weights: dict[str, str] = {}

    def dataset(dataset_id: str) -> DatasetLedger:
        return datasets.setdefault(dataset_id, DatasetLedger(dataset_id))

    for e in events:
        d = e.details if isinstance(e.details, dict) else {}
        if e.decision == "deny":
            entry = denials.setdefault(e.principal, Denials(e.principal))
            entry.events += 1
            entry.requests += _int(d.get("requests")) or 1
            entry.policies.update(e.policy_ids or ("(none: a precondition failed)",))
            entry.actions[e.action] += 1
            continue
        action = e.action
        if action.startswith("privacy.") and action.split(".", 1)[1] in _LEDGER_KINDS:
            kind = action.split(".", 1)[1]
            ledger = dataset(as_text(d.get("dataset_id")) or e.resource.removeprefix("dataset/"))
            epsilon = _decimal(d.get("epsilon"))
            if kind == "open":
                ledger.epsilon_total, ledger.opened_us = epsilon, e.time_us
            ledger.entries.append(LedgerEntry(
                seq=e.seq, time_us=e.time_us, kind=kind, epsilon=epsilon, job_id=as_text(d.get("job_id")), principal=e.principal,
                accountant=as_text(d.get("accountant")), noise_multiplier=as_text(d.get("noise_multiplier")),
                sample_rate=as_text(d.get("sample_rate")), steps=_int(d.get("steps")),
            ))
        elif action == "ingestion.CreateDataset":
            ledger = dataset(as_text(d.get("dataset_id")))
            ledger.name = e.resource.removeprefix("dataset/")
            ledger.raw_digest, ledger.digest = as_text(d.get("raw_digest")), as_text(d.get("digest"))
            ledger.profile, ledger.profile_digest = as_text(d.get("profile")), as_text(d.get("profile_digest"))
            ledger.k, ledger.created_by, ledger.created_us = _int(d.get("k")), e.principal, e.time_us
        elif action == "ingestion.DeleteDataset":
            if as_text(d.get("dataset_id")) in datasets:
                datasets[as_text(d.get("dataset_id"))].deleted_us = e.time_us
        elif action == "registry.CreateModelVersion":
            name, version = _model_ref(e.resource)
            version_id = as_text(d.get("version_id")) or f"{name}:{version}"
            raw_lineage = d.get("lineage")
            lineage: dict[str, Any] = raw_lineage if isinstance(raw_lineage, dict) else {}
            models[version_id] = ModelLineage(
                model=name, version=version, version_id=version_id, weights_digest=as_text(d.get("digest")),
                registered_by=e.principal, registered_us=e.time_us, dataset_id=as_text(lineage.get("dataset_id")),
                dataset_digest=as_text(lineage.get("dataset_digest")), job_id=as_text(lineage.get("training_job_id")),
                trained_by=as_text(lineage.get("trained_by")), provenance="established" if d.get("provenance") == "established" else "claimed",
            )
            by_ref[f"{name}:{version}"] = version_id
        elif action == "training.EndJob" and as_text(d.get("weights_digest")):
            job_weights[e.resource.removeprefix("job/")] = as_text(d.get("weights_digest"))
        elif action in ("registry.RequestRelease", "registry.ApproveRelease", "registry.ReleaseModelVersion", "registry.RevokeModelVersion"):
            name, version = _model_ref(e.resource)
            model = models.get(as_text(d.get("version_id"))) or models.get(by_ref.get(f"{name}:{version}", ""))
            if model is None:
                continue
            if action == "registry.RequestRelease":
                model.requested = (e.principal, e.time_us)
            elif action == "registry.ApproveRelease":
                model.approvals.append((e.principal, e.time_us, as_text(d.get("note"))))
            elif action == "registry.ReleaseModelVersion":
                model.released = (e.principal, e.time_us)
            else:
                model.revoked = (e.principal, e.time_us, as_text(d.get("note")))
        elif action == "inference.ModelInfer":
            name, version = _model_ref(e.resource)
            model = models.get(by_ref.get(f"{name}:{version}", ""))
            if model is not None:
                model.requests_served += _int(d.get("requests")) or 0
                model.served_digests.add(as_text(d.get("weights_digest")))
    times = [e.time_us for e in events]
    return AuditSummary(len(events), min(times, default=None), max(times, default=None), datasets, models, denials, job_weights)
