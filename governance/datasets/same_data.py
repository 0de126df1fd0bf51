"""Which earlier datasets hold the same data as an upload: the rule that a privacy budget
belongs to the data, not to a dataset record, needs to recognise the data in other bytes.

`catalog.create_dataset` asks, in the transaction that records the new dataset, which
datasets (live or erased) match its upload (`same_data`), carries the judgement that data
is personal both ways between them (`personal_among`, `mark_same_data_personal`), and
records the new dataset's own content for later uploads to match (`record_content`).
"""

from __future__ import annotations

import json

import numpy as np
from sqlalchemy import ColumnElement, select, text
from sqlmodel import Session, col

from privet.governance.datasets.fingerprint import SIMILARITY_THRESHOLD, ContentSketch, containment_in, similarity, sketch_from_bytes
from privet.governance.datasets.personal import OPERATOR_PREFIX
from privet.governance.store.dataset_tables import Dataset, DatasetContent, DatasetContentHash

__all__ = ["mark_same_data_personal", "personal_among", "record_content", "same_data"]


def _holding_same_data(dataset_ids: list[str], raw_digest: str) -> ColumnElement[bool]:
    """The datasets matched by content (`same_data`'s ids) or made from the same raw upload."""
    return col(Dataset.id).in_(dataset_ids) | (col(Dataset.raw_digest) == raw_digest)


def personal_among(session: Session, dataset_ids: list[str], raw_digest: str) -> list[str]:
    """Those of the datasets holding the same data (matched by content, or by the same raw
    upload; erased ones included) that were judged personal."""
    query = select(col(Dataset.id)).where(col(Dataset.personal).is_(True), _holding_same_data(dataset_ids, raw_digest))
    return sorted(session.execute(query).scalars())


def mark_same_data_personal(session: Session, dataset_ids: list[str], raw_digest: str, source_id: str) -> list[str]:
    """Mark personal the datasets holding the same data (by content or raw upload) that were
    not judged so, unless an operator declared them not personal; returns their ids."""
    query = select(Dataset).where(col(Dataset.personal).is_(False), _holding_same_data(dataset_ids, raw_digest), col(Dataset.id) != source_id)
    marked = []
    for other in session.execute(query).scalars():
        basis = json.loads(other.personal_basis_json or "[]")
        if basis and str(basis[-1]).startswith(OPERATOR_PREFIX):
            continue  # an operator's word stands until an operator changes it
        basis.append(f"same-data-as:{source_id}")
        other.personal_basis_json, other.personal = json.dumps(basis), True
        session.add(other)
        marked.append(other.id)
    return sorted(marked)


# Serialises the matching and recording of content on PostgreSQL, so that two uploads of
# the same data in different bytes, committed at once, cannot both open a budget. SQLite's
# one writer serialises them already.
_CONTENT_LOCK = 7208658


def same_data(session: Session, raw: ContentSketch) -> list[dict[str, object]]:
    """Datasets (live or erased) whose data the upload `raw` is: the same rows as their raw
    upload or their stored masked table (`content` fingerprint), or enough of them by the
    sketches (`similar`: `fingerprint.SIMILARITY_THRESHOLD`), or because the upload holds
    enough of their rows (`containment`: the share of their sketch's hashes among every
    distinct row hash of the upload, which added rows cannot hide), each with how it matched.
    Datasets made before content was recorded match by raw digest only (the ledger's)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CONTENT_LOCK})
    if raw.rows == 0:
        return []
    found: dict[str, dict[str, object]] = {}
    exact = select(col(DatasetContent.dataset_id), col(DatasetContent.kind)).where(col(DatasetContent.fingerprint) == raw.fingerprint, col(DatasetContent.rows) > 0)
    for dataset_id, kind in session.execute(exact):
        found.setdefault(dataset_id, {"dataset_id": dataset_id, "of": kind, "by": "content"})
    hashes = [int(h) for h in raw.sketch.view(np.int64)]
    candidates = select(col(DatasetContentHash.dataset_id), col(DatasetContentHash.kind)).where(col(DatasetContentHash.hash).in_(hashes)).distinct()
    for dataset_id, kind in sorted(session.execute(candidates).all()):
        if dataset_id in found:
            continue
        stored = session.get(DatasetContent, (dataset_id, kind))
        if stored is None or stored.rows == 0:
            continue
        overlap = similarity(raw.sketch, sketch_from_bytes(stored.sketch))
        if overlap.same_data:
            found[dataset_id] = {"dataset_id": dataset_id, "of": kind, "by": "similar", "jaccard": round(overlap.jaccard, 3),
                                 "contained": None if overlap.contained is None else round(overlap.contained, 3),
                                 "contains": None if overlap.contains is None else round(overlap.contains, 3)}
    if raw.keep_hashes:
        _contained_in_upload(session, raw.hashes, found)
    return [found[k] for k in sorted(found)]


def _contained_in_upload(session: Session, upload: np.ndarray, found: dict[str, dict[str, object]]) -> None:
    """Add to `found` every dataset (live or erased) whose raw or masked sketch is at least
    `SIMILARITY_THRESHOLD` contained in the upload's full set of distinct row hashes. The
    stored sketches are read in bulk, a few thousand at a time, and tested together."""
    stored = select(col(DatasetContent.dataset_id), col(DatasetContent.kind), col(DatasetContent.sketch)).where(col(DatasetContent.rows) > 0).order_by(col(DatasetContent.dataset_id), col(DatasetContent.kind))
    for part in session.execute(stored.execution_options(yield_per=4096)).partitions():
        rows = [(dataset_id, kind, sketch) for dataset_id, kind, sketch in part if dataset_id not in found]
        shares = containment_in(upload, [sketch_from_bytes(sketch) for _, _, sketch in rows])
        for (dataset_id, kind, _), share in zip(rows, shares, strict=True):
            if dataset_id not in found and share >= SIMILARITY_THRESHOLD:  # NaN (too few rows) never is
                found[dataset_id] = {"dataset_id": dataset_id, "of": kind, "by": "containment", "contains": round(float(share), 3)}


def record_content(session: Session, dataset_id: str, contents: dict[str, ContentSketch]) -> None:
    for kind, content in contents.items():
        session.add(DatasetContent(dataset_id=dataset_id, kind=kind, fingerprint=content.fingerprint, rows=content.rows, sketch=content.sketch_bytes()))
        session.add_all(DatasetContentHash(dataset_id=dataset_id, kind=kind, hash=int(h)) for h in content.sketch.view(np.int64))

