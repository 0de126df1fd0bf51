"""MAC addresses in Cisco's dotted notation are found like the colon and hyphen forms, and
twelve digits in dotted fours (a version, a reference) are not taken for one."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from privet.governance.masking import MaskingKeys, apply_profile, classify_column, load_profile
from privet.governance.masking.detect import replace_entities

KEYS = MaskingKeys.derive(b"test-secret-of-32-bytes-at-least!", key_id="test/v1")
CISCO = ["001a.2b3c.4d5e", "F4CE.4680.0A1B", "3c5a.b41f.9e02", "0050.56c0.0008"]


@pytest.fixture(scope="module")
def default_profile():
    return load_profile(Path(__file__).resolve().parents[3] / "policies" / "masking" / "default.yaml")


def test_a_column_of_dotted_macs_is_a_mac_column_and_is_masked(default_profile) -> None:
    column = pa.array(CISCO * 50)
    assert classify_column("device", column).pii_type.value == "MAC_ADDRESS"
    masked, report = apply_profile(pa.table({"device": column}), default_profile, KEYS)
    assert [c.pii_types for c in report.columns] == [["MAC_ADDRESS"]]
    assert not set(masked.column("device").to_pylist()) & set(CISCO)


def test_dotted_macs_in_text_are_replaced_and_version_numbers_are_not() -> None:
    texts = pa.array(["router 001a.2b3c.4d5e rebooted", "build 2024.1101.0001 shipped", "ref 1234.5678.9012"])
    assert replace_entities(texts).to_pylist() == ["router <MAC_ADDRESS> rebooted", "build 2024.1101.0001 shipped",
                                                    "ref 1234.5678.9012"]


def test_one_address_gets_one_pseudonym_however_it_is_written() -> None:
    texts = pa.array(["seen 00:1A:2B:3C:4D:5E", "seen 00-1a-2b-3c-4d-5e", "seen 001a.2b3c.4d5e"])
    pseudonyms = {t.split()[1] for t in replace_entities(texts, replace="pseudonym", key=b"k" * 32).to_pylist()}
    assert len(pseudonyms) == 1 and pseudonyms.pop().startswith("<MAC_ADDRESS_")


def test_a_mac_column_hashes_one_device_the_same_in_any_notation(default_profile) -> None:
    from privet.governance.masking import keyed_hash

    written = pa.array(["00:1A:2B:3C:4D:5E", "00-1a-2b-3c-4d-5e", "001a.2b3c.4d5e", "not a mac", None])
    hashed = keyed_hash(written, b"k" * 32, normalize="mac").to_pylist()
    assert hashed[0] == hashed[1] == hashed[2] != hashed[3] and hashed[4] is None
    # The colon form's pseudonyms are the ones "lower" gave: existing datasets still join.
    assert hashed[0] == keyed_hash(pa.array(["00:1a:2b:3c:4d:5e"]), b"k" * 32, normalize="lower")[0].as_py()
    masked, _ = apply_profile(pa.table({"mac": written.slice(0, 3)}), default_profile, KEYS)
    assert len(set(masked.column("mac").to_pylist())) == 1
