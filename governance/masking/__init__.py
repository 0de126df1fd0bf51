"""Find personal data in tables and mask it: detectors, operators, profiles, k-anonymity.

The library is pure (no gRPC, no database): the caller loads a profile, gets keys from
its keyring, and masks tables.

    profile = load_profile("policies/masking/default.yaml")
    keys = MaskingKeys.derive(secret_from_keyring, key_id="dataset-42/v1")
    masked, report = apply_profile(table, profile, keys, quasi_identifiers=["age", "zip"], k=5)

Streaming, in bounded memory: `plan = plan_masking(first_batch, profile, keys,
quasi_identifiers=qis)` once; per batch `plan.verify(batch)` (the safety net for PII that
first shows up later) and `plan.mask(batch)`; then, when k-anonymity is
asked for, `plan_k_anonymity(<the quasi-identifier columns of all masked rows>,
profile.hierarchies(qis), k)` and `kplan.apply(batch, offset)` per masked batch.
"""

from privet.governance.masking.detect import (
    ColumnClassification,
    classify_column,
    replace_entities,
    scan_text,
)
from privet.governance.masking.entities import Finding, PiiType, type_token
from privet.governance.masking.ff1 import FF1
from privet.governance.masking.kanon import (
    Hierarchy,
    KAnonymityPlan,
    KAnonymityReport,
    is_k_anonymous,
    k_anonymise,
    plan_k_anonymity,
)
from privet.governance.masking.operators import (
    OPERATORS,
    MaskingKeys,
    detokenise,
    generalise_date,
    generalise_numeric,
    generalise_prefix,
    keep,
    keyed_hash,
    partial_mask,
    redact,
    scan,
    tokenise,
)
from privet.governance.masking.profile import (
    ColumnPreview,
    ColumnReport,
    MaskingPlan,
    MaskingProfile,
    MaskingReport,
    Rule,
    apply_profile,
    load_profile,
    parse_profile,
    plan_masking,
    preview,
)

__all__ = [
    "FF1",
    "OPERATORS",
    "ColumnClassification",
    "ColumnPreview",
    "ColumnReport",
    "Finding",
    "Hierarchy",
    "KAnonymityPlan",
    "KAnonymityReport",
    "MaskingKeys",
    "MaskingPlan",
    "MaskingProfile",
    "MaskingReport",
    "PiiType",
    "Rule",
    "apply_profile",
    "classify_column",
    "detokenise",
    "generalise_date",
    "generalise_numeric",
    "generalise_prefix",
    "is_k_anonymous",
    "k_anonymise",
    "keep",
    "keyed_hash",
    "load_profile",
    "parse_profile",
    "partial_mask",
    "plan_k_anonymity",
    "plan_masking",
    "preview",
    "redact",
    "replace_entities",
    "scan",
    "scan_text",
    "tokenise",
    "type_token",
]
