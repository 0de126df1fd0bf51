"""A dataset as callers see it: the stored row with its JSON columns read once, here, so
that nothing outside the catalog parses the table's storage format."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from privet.governance.store.dataset_tables import Dataset

__all__ = ["ColumnRecord", "DatasetRecord", "MaskingSummary"]


@dataclass(frozen=True)
class ColumnRecord:
    name: str
    type: str
    action: str
    pii_types: list[str]


@dataclass(frozen=True)
class MaskingSummary:
    """What masking and k-anonymity did to the upload (k is 0 where it was not asked for)."""

    rows_in: int
    rows_out: int
    suppressed_rows: int = 0
    generalisation: dict[str, str] = field(default_factory=dict)
    information_loss: float = 0.0
    k: int = 0
    column_loss: dict[str, float] = field(default_factory=dict)
    # ReidentificationRisk.to_dict() of the rows before and after k-anonymity (empty: none).
    risk_before: dict[str, Any] = field(default_factory=dict)
    risk_after: dict[str, Any] = field(default_factory=dict)
    recoded_rows: int = 0

    @classmethod
    def of(cls, report: dict[str, Any]) -> MaskingSummary:
        """From a masking report's dict form (`MaskingReport.to_dict()`, as stored)."""
        kan = report.get("k_anonymity") or {}
        return cls(rows_in=report["rows_in"], rows_out=report["rows_out"], suppressed_rows=kan.get("suppressed_rows", 0),
                   generalisation={k: str(v) for k, v in (kan.get("levels") or {}).items()}, information_loss=kan.get("information_loss", 0.0),
                   k=kan.get("k", 0), column_loss={k: float(v) for k, v in (kan.get("column_ncp") or {}).items()},
                   risk_before=kan.get("risk_before") or {}, risk_after=kan.get("risk_after") or {},
                   recoded_rows=int(kan.get("recoded_rows", 0)))


@dataclass(frozen=True)
class DatasetRecord:
    id: str
    name: str
    blob_digest: str
    raw_digest: str
    rows: int
    size_bytes: int
    columns: list[ColumnRecord]
    profile: str
    profile_digest: str
    domain: str
    key_version: int
    masking: MaskingSummary
    quasi_identifiers: list[str]
    epsilon_total: float
    delta: float
    description: str
    created_by: str
    created_at_us: int
    personal: bool
    personal_basis: list[str]
    team: str

    @classmethod
    def of(cls, row: Dataset) -> DatasetRecord:
        masking = MaskingSummary.of(json.loads(row.report_json))
        columns = [ColumnRecord(c["name"], c["type"], c["action"], list(c["pii_types"])) for c in json.loads(row.columns_json)]
        return cls(
            id=row.id, name=row.name, blob_digest=row.blob_digest, raw_digest=row.raw_digest, rows=row.rows, size_bytes=row.size_bytes,
            columns=columns, profile=row.profile, profile_digest=row.profile_digest, domain=row.domain, key_version=row.key_version,
            masking=masking, quasi_identifiers=list(json.loads(row.quasi_identifiers_json)), epsilon_total=row.epsilon_total, delta=row.delta,
            description=row.description, created_by=row.created_by, created_at_us=row.created_at_us, personal=row.personal,
            personal_basis=list(json.loads(row.personal_basis_json)), team=row.team,
        )
