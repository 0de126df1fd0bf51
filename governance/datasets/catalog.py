"""Dataset records: create (mask, store, record, audit), read, list, erase, and an operator's
declaration about personal data. Every act on an existing dataset is checked against its
owner and team (`governance.policy.ownership`) when a principal is given.

Recognising the same data under other bytes (for the budget that belongs to the data) is
`same_data`; reading and masking an upload is `formats` and `pipeline`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pathlib
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from privet.governance.audit.log import Event
from privet.governance.crypto.keyring import FileKeyring
from privet.governance.datasets.formats import FORMATS, CsvDialect, spool
from privet.governance.datasets.personal import OPERATOR_PREFIX, is_personal_basis, personal_basis
from privet.governance.datasets.pipeline import AnonymisationSpec, MaskedFile, mask_upload, preview_upload
from privet.governance.datasets.same_data import mark_same_data_personal, personal_among, record_content, same_data
from privet.governance.errors import AlreadyExists, DataLoss, InvalidArgument, NotFound
from privet.governance.identity.principals import Principal
from privet.governance.identity.spiffe import check_name
from privet.governance.masking.operators import MaskingKeys
from privet.governance.masking.profile import ColumnPreview, MaskingProfile, MaskingReport, load_profile
from privet.governance.paging import after_text
from privet.governance.policy.ownership import Owned, acting_principal, may, require
from privet.governance.privacy.ledger import Budget, BudgetLedger
from privet.governance.privacy.limits import DEFAULT_MAX_DATASET_DELTA, DEFAULT_MAX_DATASET_EPSILON
from privet.governance.runtime import Runtime
from privet.governance.store.dataset_tables import Dataset, PseudonymKey
from privet.governance.store.privacy_tables import DatasetBudget, LedgerEntry

__all__ = ["DatasetSpec", "dataset_budget", "dataset_ledger", "create_dataset", "preview_dataset", "get_dataset", "list_datasets", "delete_dataset", "dataset_batches",
           "declare_personal_data", "owned_dataset"]


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    format: str
    profile: str
    anonymisation: AnonymisationSpec
    dialect: CsvDialect
    epsilon: float
    delta: float
    description: str = ""
    personal: bool = False  # the owner says the data is about people, whatever the detectors find

    def validate(self, *, max_epsilon: float = DEFAULT_MAX_DATASET_EPSILON, max_delta: float = DEFAULT_MAX_DATASET_DELTA) -> None:
        """InvalidArgument naming the header field at fault. `max_epsilon` and `max_delta`
        are the operator's cap ([privacy] in privet.toml): a budget may be less, never more."""
        check_name(self.name, "header.name")
        if self.format not in FORMATS:
            raise InvalidArgument("header.format", f"must be one of {', '.join(FORMATS)}")
        if not self.profile:
            raise InvalidArgument("header.profile", "name a masking profile (e.g. default)")
        a = self.anonymisation
        if a.k < 0:
            raise InvalidArgument("header.k", "must not be negative")
        if a.k > 1 and not a.quasi_identifiers:
            raise InvalidArgument("header.quasi_identifiers", "k-anonymity needs at least one quasi-identifier")
        if len(set(a.quasi_identifiers)) != len(a.quasi_identifiers):
            raise InvalidArgument("header.quasi_identifiers", "names a column twice")
        if a.max_suppression is not None and not 0 <= a.max_suppression < 1:
            raise InvalidArgument("header.max_suppression", "must be in [0, 1)")
        if not (self.epsilon > 0 and math.isfinite(self.epsilon)):
            raise InvalidArgument("header.epsilon_budget", "must be a positive privacy budget (e.g. 8)")
        if self.epsilon > max_epsilon:
            raise InvalidArgument("header.epsilon_budget", f"{self.epsilon:g} is above the operator's cap of {max_epsilon:g} ([privacy] max_dataset_epsilon); ask for at most that")
        if not 0 < self.delta < 1:
            raise InvalidArgument("header.delta_budget", "must be in (0, 1), e.g. 1e-5")
        if self.delta > max_delta:
            raise InvalidArgument("header.delta_budget", f"{self.delta:g} is above the operator's cap of {max_delta:g} ([privacy] max_dataset_delta); ask for at most that")


def _profile(runtime: Runtime, name: str) -> tuple[MaskingProfile, str]:
    check_name(name, "header.profile")
    path = runtime.home.policies / "masking" / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise InvalidArgument("header.profile", f"no masking profile {name!r} (known: {', '.join(known)})")
    return load_profile(path), hashlib.sha256(path.read_bytes()).hexdigest()


def _key_scope(profile: MaskingProfile, dataset_id: str) -> str:
    return f"domain:{profile.domain}" if profile.domain else f"dataset:{dataset_id}"


def _keys_for(runtime: Runtime, scope: str) -> tuple[MaskingKeys, PseudonymKey | None]:
    """The scope's live key, or a fresh one (returned as a row to insert with the dataset)."""
    keyring = FileKeyring(runtime.home.keys)
    with runtime.read() as s:
        row = s.execute(select(PseudonymKey).where(col(PseudonymKey.scope) == scope, col(PseudonymKey.destroyed).is_(False)).order_by(col(PseudonymKey.version).desc())).scalars().first()
    if row is not None and row.wrapped_key is not None:
        secret = keyring.unwrap(row.kek_id, row.wrapped_key)
        return MaskingKeys.derive(secret, f"{scope}#v{row.version}"), None
    secret = os.urandom(32)
    kek_id, wrapped = keyring.wrap(secret)
    new = PseudonymKey(scope=scope, version=1, kek_id=kek_id, wrapped_key=wrapped, destroyed=False)
    return MaskingKeys.derive(secret, f"{scope}#v1"), new


def _live(session: Session, name: str, dataset_id: str = "") -> Dataset | None:
    query = select(Dataset).where(col(Dataset.deleted_at_us) == 0)
    if dataset_id:
        query = query.where(col(Dataset.id) == dataset_id)
    if name:
        query = query.where(col(Dataset.name) == name)
    return session.execute(query).scalar_one_or_none() if (name or dataset_id) else None


def owned_dataset(row: Dataset) -> Owned:
    """The dataset as Cedar sees it for an ownership decision."""
    return Owned("Dataset", row.id, {"name": row.name, "owner": row.created_by, "team": row.team}, f"dataset/{row.name}")


def get_dataset(runtime: Runtime, name: str, *, dataset_id: str = "", principal: Principal | str | None = None, action: str = "dataset.describe") -> Dataset:
    """The live dataset called `name` (or with id `dataset_id`, or both: then it must be that
    one). With `principal`, they must be allowed `action` on it (PermissionDenied, audited)."""
    with runtime.read() as s:
        row = _live(s, name, dataset_id)
    if row is None:
        raise NotFound(f"no dataset named {name!r}" if name else f"no live dataset with id {dataset_id!r}")
    if principal is not None:
        require(runtime, principal, action, owned_dataset(row))
        if action == "dataset.describe":
            runtime.count_read(Event(principal=acting_principal(runtime, principal).id.principal, action="ingestion.GetDataset", resource=f"dataset/{row.name}",
                                     decision="allow", details={"dataset_id": row.id}))
    return row


def dataset_budget(runtime: Runtime, dataset_id: str) -> Budget:
    with runtime.read() as s:
        return BudgetLedger(runtime.audit).budget(s, dataset_id)


def dataset_ledger(runtime: Runtime, dataset_id: str) -> list[LedgerEntry]:
    with runtime.read() as s:
        return BudgetLedger(runtime.audit).history(s, dataset_id)


def list_datasets(runtime: Runtime, *, after: str, limit: int, principal: Principal | str | None = None) -> list[Dataset]:
    """Live datasets by name after `after` (a page token); with `principal`, only those they may describe."""
    after = after_text(after)
    out: list[Dataset] = []
    while len(out) < limit:
        with runtime.read() as s:
            rows = list(s.execute(select(Dataset).where(col(Dataset.deleted_at_us) == 0, col(Dataset.name) > after).order_by(col(Dataset.name)).limit(limit)).scalars())
        out.extend(r for r in rows if principal is None or may(runtime, principal, "dataset.describe", owned_dataset(r))[0])
        if len(rows) < limit:
            break
        after = rows[-1].name
    if principal is not None:
        runtime.count_read(Event(principal=acting_principal(runtime, principal).id.principal, action="ingestion.ListDatasets", resource="dataset/*",
                                 decision="allow", details={}))
    return out[:limit]


def _validate(runtime: Runtime, spec: DatasetSpec) -> None:
    spec.validate(max_epsilon=runtime.settings.max_dataset_epsilon, max_delta=runtime.settings.max_dataset_delta)


def preview_dataset(runtime: Runtime, spec: DatasetSpec, chunks: Iterable[bytes], *, principal: Principal | str | None = None) -> tuple[list[ColumnPreview], MaskingReport | None]:
    """What each column of an upload would become (on its first rows), and, with
    k-anonymity asked for, what it would cost on the whole upload (the report ingestion
    would record: levels, rows suppressed); stores nothing. Counted in the audit log."""
    _validate(runtime, spec)
    if principal is not None:
        runtime.count_read(Event(principal=acting_principal(runtime, principal).id.principal, action="ingestion.PreviewMasking", resource=f"dataset/{spec.name}",
                                 decision="allow", details={"profile": spec.profile}))
    profile, _ = _profile(runtime, spec.profile)
    upload = spool(chunks, runtime.settings.blob_dir / "tmp", limit=runtime.settings.max_upload_bytes)
    masked: MaskedFile | None = None
    try:
        keys, _ = _keys_for(runtime, _key_scope(profile, "preview"))
        columns = preview_upload(upload, spec.format, spec.dialect, profile, keys, spec.anonymisation)
        if spec.anonymisation.active:  # k's cost is the whole table's: the same run as ingestion, kept nowhere
            masked = mask_upload(upload, spec.format, spec.dialect, profile, keys, spec.anonymisation, runtime.settings.blob_dir / "tmp")
        return columns, masked.report if masked is not None else None
    finally:
        upload.discard()
        if masked is not None:
            masked.discard()


def _null_counts(path: pathlib.Path) -> dict[str, int]:
    """Missing values per column of the stored table, from its Parquet statistics (no data
    is read); a column whose statistics are absent is left out. A job's submit-time checks
    read them (a target with no values at all cannot train)."""
    meta = pq.ParquetFile(path).metadata
    counts: dict[str, int] = {}
    for j in range(meta.num_columns):
        name = meta.schema.column(j).path
        stats = [meta.row_group(i).column(j).statistics for i in range(meta.num_row_groups)]
        if all(s is not None and s.has_null_count for s in stats):
            counts[name] = sum(int(s.null_count) for s in stats)
    return counts


def create_dataset(runtime: Runtime, principal: Principal | str, spec: DatasetSpec, chunks: Iterable[bytes]) -> Dataset:
    """Mask and store an upload. Nothing is stored unless every step succeeds: the spooled
    upload and temporaries are removed on any error, the blob is removed if the record cannot
    be written, and the record, its key, its budget link and its audit event commit together.

    The privacy budget belongs to the data: if a dataset was ever made (under any name,
    deleted or not) from the same upload, or from the same rows in other bytes, or if this
    upload holds that dataset's stored masked table, or shares most of its rows with either
    (`same_data`), the new one shares that budget, which stands as it is whatever this
    upload asked; the record's epsilon_total/delta and its report's "privacy_budget" say
    which budget applies, whether it was shared and how the data was recognised."""
    _validate(runtime, spec)
    profile, profile_digest = _profile(runtime, spec.profile)
    with runtime.read() as s:
        if _live(s, spec.name) is not None:
            raise AlreadyExists(f"a dataset named {spec.name!r} exists")
    dataset_id = str(uuid.uuid4())
    scope = _key_scope(profile, dataset_id)
    keys, new_key = _keys_for(runtime, scope)
    workdir = runtime.settings.blob_dir / "tmp"
    upload = spool(chunks, workdir, limit=runtime.settings.max_upload_bytes)
    masked: MaskedFile | None = None
    try:
        masked = mask_upload(upload, spec.format, spec.dialect, profile, keys, spec.anonymisation, workdir, content_key=runtime.home.content_key())
        nulls = _null_counts(masked.path)
        with open(masked.path, "rb") as f:
            blob_digest, size = runtime.blobs.put(iter(lambda: f.read(1 << 20), b""))
    finally:
        upload.discard()
        if masked is not None:
            masked.discard()
    report = masked.report
    owner = acting_principal(runtime, principal)
    columns = [{"name": c.column, "action": c.action, "pii_types": list(c.pii_types), "type": str(masked.schema.field(c.column).type) if c.column in masked.schema.names else "",
                **({"nulls": nulls[c.column]} if c.column in nulls else {})} for c in report.columns]
    record = Dataset(
        id=dataset_id, name=spec.name, blob_digest=blob_digest, raw_digest=upload.sha256, rows=report.rows_out, size_bytes=size,
        columns_json=json.dumps(columns), profile=spec.profile, profile_digest=profile_digest, domain=profile.domain or "",
        key_version=1 if new_key else int(keys.key_id.rsplit("#v", 1)[1]), report_json=json.dumps(report.to_dict(), default=str),
        quasi_identifiers_json=json.dumps(list(spec.anonymisation.quasi_identifiers)), epsilon_total=spec.epsilon, delta=spec.delta,
        description=spec.description, created_by=owner.id.principal, created_at_us=int(time.time() * 1e6), deleted_at_us=0, team=owner.team,
    )
    principal = owner.id.principal

    def commit(session: Session) -> Dataset:
        if _live(session, spec.name) is not None:
            raise AlreadyExists(f"a dataset named {spec.name!r} exists")
        if new_key is not None:
            session.add(PseudonymKey.model_validate(new_key.model_dump()))
        matches = same_data(session, masked.raw_content)
        match = {"datasets": matches} if matches else None
        basis = personal_basis(columns, spec.anonymisation.quasi_identifiers, spec.anonymisation.k, owner_says=spec.personal,
                               same_data_as=personal_among(session, [str(m["dataset_id"]) for m in matches], upload.sha256))
        record.personal, record.personal_basis_json = bool(basis), json.dumps(basis)
        # The judgement runs both ways: the same rows ingested earlier without it are personal too.
        also_personal = mark_same_data_personal(session, [str(m["dataset_id"]) for m in matches], upload.sha256, dataset_id) if record.personal else []
        budget = BudgetLedger(runtime.audit).open_budget(session, dataset_id, spec.epsilon, spec.delta, principal, raw_digest=upload.sha256,
                                                         same_data_as=[str(m["dataset_id"]) for m in matches], match=match)
        record_content(session, dataset_id, {"raw": masked.raw_content, "masked": masked.masked_content})
        # Linked before this one (a live dataset, or an erased one: its budget stays spent).
        shared = session.execute(select(func.count()).select_from(DatasetBudget).where(col(DatasetBudget.budget_id) == budget.budget_id)).scalar_one() > 1
        note = {"budget_id": budget.budget_id, "epsilon_total": budget.epsilon_total, "delta": budget.delta, "requested_epsilon": spec.epsilon, "requested_delta": spec.delta}
        if shared:
            note["note"] = "the same data already has a privacy budget; it stands as it is (never raised) and this dataset draws on it"
            if matches:
                note["matched"] = matches
        record.epsilon_total, record.delta = budget.epsilon_total, budget.delta
        record.report_json = json.dumps(json.loads(record.report_json) | {"privacy_budget": note}, default=str)
        session.add(record)
        session.flush()
        runtime.audit.append(Event(principal=principal, action="ingestion.CreateDataset", resource=f"dataset/{spec.name}", decision="allow", details={
            "dataset_id": dataset_id, "digest": blob_digest, "raw_digest": upload.sha256, "raw_content": masked.raw_content.fingerprint, "rows_in": report.rows_in, "rows_out": report.rows_out,
            "profile": spec.profile, "profile_digest": profile_digest, "k": spec.anonymisation.k, "epsilon_budget": spec.epsilon, "delta_budget": spec.delta,
            "budget_id": budget.budget_id, "budget_epsilon_total": budget.epsilon_total, "budget_delta": budget.delta,
            "personal": record.personal, "personal_basis": basis, "team": record.team, "also_personal": also_personal,
        }))
        return record

    try:
        return runtime.write(commit)
    except (AlreadyExists, IntegrityError) as exc:
        _drop_blob_if_unused(runtime, blob_digest)
        if isinstance(exc, IntegrityError):
            raise AlreadyExists(f"a dataset named {spec.name!r} exists") from exc
        raise
    except BaseException:
        _drop_blob_if_unused(runtime, blob_digest)
        raise


def _drop_blob_if_unused(runtime: Runtime, digest: str) -> None:
    with runtime.read() as s:
        used = s.execute(select(col(Dataset.id)).where(col(Dataset.blob_digest) == digest, col(Dataset.deleted_at_us) == 0)).first()
    if used is None:
        runtime.blobs.delete(digest)


def delete_dataset(runtime: Runtime, principal: Principal | str, name: str, reason: str) -> Dataset:
    """Erasure: the record is marked deleted, its own pseudonymisation key destroyed, its blob
    removed; the audit trail stays. A domain key is shared, so it is kept. Only those the
    ownership policy lets delete it may (the key's destruction cannot be undone)."""
    target = get_dataset(runtime, name, principal=principal, action="dataset.delete")
    principal = acting_principal(runtime, principal).id.principal

    def erase(session: Session) -> Dataset:
        row = _live(session, name)
        if row is None or row.id != target.id:
            raise NotFound(f"no dataset named {name!r}")
        row.deleted_at_us = int(time.time() * 1e6)
        for key in session.execute(select(PseudonymKey).where(col(PseudonymKey.scope) == f"dataset:{row.id}")).scalars():
            key.wrapped_key, key.destroyed = None, True
        session.add(row)
        runtime.audit.append(Event(principal=principal, action="ingestion.DeleteDataset", resource=f"dataset/{name}", decision="allow", details={"dataset_id": row.id, "digest": row.blob_digest, "reason": reason}))
        return row

    row = runtime.write(erase)
    _drop_blob_if_unused(runtime, row.blob_digest)
    runtime.scrub()  # no copy of the destroyed key left in the database's files
    return row


def declare_personal_data(runtime: Runtime, principal: Principal | str, name: str, personal: bool, reason: str) -> Dataset:
    """An operator's declaration that the dataset is (or is not) personal data, kept as the
    last word of its basis and audited with the basis it overrode. Who may make it is
    decided per RPC (policies/api.cedar: operators only)."""
    if not reason.strip():
        raise InvalidArgument("reason", "say why (it is kept in the audit log)")
    who = acting_principal(runtime, principal).id.principal

    def declare(session: Session) -> Dataset:
        row = _live(session, name)
        if row is None:
            raise NotFound(f"no dataset named {name!r}")
        before = json.loads(row.personal_basis_json)
        kept = [r for r in before if not str(r).startswith(OPERATOR_PREFIX)]
        basis = [*kept, f"{OPERATOR_PREFIX}{who}:{'personal' if personal else 'not-personal'}"]
        row.personal_basis_json, row.personal = json.dumps(basis), is_personal_basis(json.dumps(basis))
        session.add(row)
        runtime.audit.append(Event(principal=who, action="ingestion.DeclarePersonalData", resource=f"dataset/{name}", decision="allow",
                                   details={"dataset_id": row.id, "personal": personal, "reason": reason, "basis_before": before}))
        return row

    return runtime.write(declare)


def dataset_batches(runtime: Runtime, name: str, columns: list[str], *, dataset_id: str = "", principal: Principal | str | None = None) -> Iterator[pa.RecordBatch]:
    """The rows of the live dataset (`name`, or `dataset_id`, or both), for a principal the
    ownership policy lets read them."""
    row = get_dataset(runtime, name, dataset_id=dataset_id, principal=principal, action="dataset.read")
    name = row.name
    stored = {c["name"] for c in json.loads(row.columns_json)}
    missing = [c for c in columns if c not in stored]
    if missing:  # refused before the read is recorded: no rows leave, so none is logged as read
        raise InvalidArgument("columns", f"no column {missing[0]!r} in dataset {name!r}")
    if principal is not None:  # a read of (masked) personal data: in the log before the first row leaves
        runtime.record(Event(principal=acting_principal(runtime, principal).id.principal, action="ingestion.ReadDataset", resource=f"dataset/{name}",
                             decision="allow", details={"dataset_id": row.id, "columns": list(columns)}))
    with runtime.blobs.open(row.blob_digest) as f:
        # The stored table is what ingestion recorded, byte for byte, or nothing is read.
        digest = hashlib.sha256()
        while chunk := f.read(1 << 20):
            digest.update(chunk)
        if digest.hexdigest() != row.blob_digest:
            raise DataLoss(f"the stored table of dataset {name!r} does not match its digest: it was altered or damaged")
        f.seek(0)
        try:
            parquet = pq.ParquetFile(f)
        except (pa.ArrowException, OSError) as exc:
            raise DataLoss(f"the stored table of dataset {name!r} does not read as Parquet ({exc})") from None
        missing = [c for c in columns if c not in parquet.schema_arrow.names]
        if missing:
            raise InvalidArgument("columns", f"no column {missing[0]!r} in dataset {name!r}")
        yield from parquet.iter_batches(batch_size=64 * 1024, columns=columns or None)
