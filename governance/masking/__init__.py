"""Find personal data in tables and mask it: detectors, operators, profiles, k-anonymity.

The library is pure (no gRPC, no database): the ingestion service loads a profile, gets
keys from the keyring, and calls `apply_profile` on each table (or `preview` on a sample).

    profile = load_profile("policies/masking/default.yaml")
    keys = MaskingKeys.derive(secret_from_keyring, key_id="dataset-42/v1")
    masked, report = apply_profile(table, profile, keys, quasi_identifiers=["age", "zip"], k=5)
"""

from governance.masking.detect import ColumnClassification, classify_column, replace_entities, scan_text
from governance.masking.entities import Finding, PiiType, type_token
from governance.masking.ff1 import FF1
from governance.masking.kanon import Hierarchy, KAnonymityReport, is_k_anonymous, k_anonymise
from governance.masking.operators import (
    OPERATORS, MaskingKeys, detokenise, generalise_date, generalise_numeric, generalise_prefix, keep,
    keyed_hash, partial_mask, redact, scan, tokenise,
)
from governance.masking.profile import (
    ColumnPreview, ColumnReport, MaskingProfile, MaskingReport, Rule, apply_profile, load_profile,
    parse_profile, preview,
)

__all__ = [
    "PiiType", "Finding", "type_token",
    "ColumnClassification", "classify_column", "scan_text", "replace_entities",
    "FF1",
    "MaskingKeys", "OPERATORS", "keep", "redact", "partial_mask", "keyed_hash", "tokenise", "detokenise",
    "generalise_numeric", "generalise_date", "generalise_prefix", "scan",
    "MaskingProfile", "Rule", "MaskingReport", "ColumnReport", "ColumnPreview",
    "load_profile", "parse_profile", "apply_profile", "preview",
    "Hierarchy", "KAnonymityReport", "k_anonymise", "is_k_anonymous",
]
