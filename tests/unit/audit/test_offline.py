"""Offline verification of exports and bundles: every tampering an operator could try is
caught, and the report names the first event that does not verify."""

from __future__ import annotations

import base64
import copy
import dataclasses
import json

import pytest

from privet.governance.audit.checkpoint import Checkpoint, NoteSigner, generate_signer, sign_checkpoint
from privet.governance.audit.hashing import EMPTY_ROOT
from privet.governance.audit.leaf import EventRecord, encode_leaf
from privet.governance.audit.merkle import MemoryNodeStore, root
from privet.governance.audit.offline import BUNDLE_FORMAT, make_bundle, verify_bundle, verify_export
from privet.governance.errors import DataLoss

ORIGIN = "privet.test/audit"
SIGNER_TEXT, KEY = generate_signer(ORIGIN)
SIGNER = NoteSigner.from_text(SIGNER_TEXT)
N = 40


def _event(seq: int, **changes) -> EventRecord:
    fields = dict(
        seq=seq,
        time_us=1_750_000_000_000_000 + seq * 1000,
        principal="spiffe://privet.local/user/alice" if seq % 3 else "spiffe://privet.local/service/training",
        action="ReleaseModelVersion" if seq % 2 else "ChargeBudget",
        resource=f"model/fraud/{seq}",
        decision="deny" if seq % 7 == 0 else "allow",
        policy_ids=("release-requires-approval",) if seq % 2 else (),
        details={"epsilon": "1.5", "n": seq, "note": "caf\u00e9"},
    )
    fields.update(changes)
    return EventRecord(**fields)


def _line(event: EventRecord, leaf: bytes | None = None) -> str:
    leaf = encode_leaf(event) if leaf is None else leaf
    return json.dumps({**event.as_dict(), "leaf": base64.b64encode(leaf).decode("ascii")})


EVENTS = [_event(i) for i in range(N)]
LEAVES = [encode_leaf(e) for e in EVENTS]
LINES = [_line(e) for e in EVENTS]
STORE = MemoryNodeStore()
for _leaf in LEAVES:
    STORE.append(_leaf)


def _checkpoint(size: int, store=STORE, signer=SIGNER, origin=ORIGIN) -> str:
    return sign_checkpoint(Checkpoint(origin, size, root(size, store)), signer)


CP = _checkpoint(N)
OLD = _checkpoint(17)


def _with_line(lines: list[str], i: int, event: EventRecord, leaf: bytes | None = None) -> list[str]:
    out = list(lines)
    out[i] = _line(event, leaf)
    return out


# --- exports: the good cases -------------------------------------------------------------


def test_untouched_export_verifies():
    report = verify_export(LINES, CP, KEY)
    assert report.ok and report.size == N and report.events == N and report.first_bad_seq is None
    assert "40 events verify" in report.message


def test_export_as_bytes_with_newlines_and_blank_lines_verifies():
    lines = [(line + "\n").encode("utf-8") for line in LINES]
    lines.insert(5, b"\n")
    assert verify_export(lines, CP, KEY).ok


def test_consistent_older_checkpoint_verifies():
    report = verify_export(LINES, CP, KEY, older_checkpoint_note=OLD)
    assert report.ok and "older checkpoint at size 17 is a prefix" in report.message


def test_lines_after_the_checkpoint_are_reported_as_uncovered():
    report = verify_export(LINES, _checkpoint(30), KEY)
    assert report.ok and report.size == 30 and report.events == N
    assert "10 later events are not covered" in report.message


def test_empty_log():
    cp = sign_checkpoint(Checkpoint(ORIGIN, 0, EMPTY_ROOT), SIGNER)
    assert verify_export([], cp, KEY).ok


# --- exports: tampering -----------------------------------------------------------------


def test_edited_field_is_named():
    lines = list(LINES)
    obj = json.loads(lines[12])
    obj["principal"] = "spiffe://privet.local/user/mallory"
    lines[12] = json.dumps(obj)
    report = verify_export(lines, CP, KEY)
    assert not report.ok
    assert (report.first_bad_seq, report.first_bad_line) == (12, 13)
    assert report.message == "seq 12 (line 13): field 'principal' differs from the leaf"


def test_type_changes_count_as_edits():
    lines = list(LINES)
    obj = json.loads(lines[3])
    obj["details"]["n"] = 3.0  # equal in Python, different in the leaf
    lines[3] = json.dumps(obj)
    report = verify_export(lines, CP, KEY)
    assert report.first_bad_seq == 3 and "'details'" in report.message


def test_edited_leaf_alone_is_caught_at_its_line():
    forged = encode_leaf(_event(8, decision="allow", details={"n": 8}))
    report = verify_export(_with_line(LINES, 8, EVENTS[8], leaf=forged), CP, KEY)
    assert report.first_bad_seq == 8 and "differs from the leaf" in report.message


def test_leaf_and_fields_edited_together_fail_on_the_root():
    lines = _with_line(LINES, 25, _event(25, decision="allow", resource="model/fraud/other"))
    report = verify_export(lines, CP, KEY)
    assert not report.ok and report.first_bad_seq is None
    assert report.bad_range == (0, N)
    assert "differs from the checkpoint's" in report.message and "0..39" in report.message


def test_older_checkpoint_narrows_a_root_mismatch_down():
    after = _with_line(LINES, 25, _event(25, decision="info"))
    report = verify_export(after, CP, KEY, older_checkpoint_note=OLD)
    assert not report.ok and report.bad_range == (17, N) and "17..39" in report.message

    before = _with_line(LINES, 5, _event(5, decision="info"))
    report = verify_export(before, CP, KEY, older_checkpoint_note=OLD)
    assert not report.ok and report.bad_range == (0, 17) and "older checkpoint" in report.message
    assert report.events == 17  # stopped as soon as the older root failed


def test_deleted_line_is_named():
    report = verify_export(LINES[:9] + LINES[10:], CP, KEY)
    assert (report.first_bad_seq, report.first_bad_line) == (9, 10)
    assert "found seq 10 instead" in report.message and "deleted" in report.message


def test_deleted_and_renumbered_lines_fail_on_the_root():
    # The forger re-encodes every later leaf with its new seq, so each line is
    # self-consistent; only the signed root can tell.
    renumbered = LINES[:9] + [_line(dataclasses.replace(EVENTS[i], seq=i - 1)) for i in range(10, N)]
    report = verify_export(renumbered, _checkpoint(N - 1), KEY)
    assert not report.ok and report.bad_range == (0, N - 1)


def test_deleted_last_lines_are_named():
    report = verify_export(LINES[:-3], CP, KEY)
    assert not report.ok and report.first_bad_seq == N - 3
    assert "ends after 37 events but the checkpoint covers 40" in report.message


def test_inserted_line_is_named():
    forged = _line(_event(20, principal="spiffe://privet.local/user/mallory"))
    report = verify_export(LINES[:21] + [forged] + LINES[21:], CP, KEY)
    assert (report.first_bad_seq, report.first_bad_line) == (21, 22)
    assert "found seq 20 again" in report.message and "inserted" in report.message


def test_reordered_lines_are_named():
    lines = list(LINES)
    lines[30], lines[31] = lines[31], lines[30]
    report = verify_export(lines, CP, KEY)
    assert (report.first_bad_seq, report.first_bad_line) == (30, 31)
    assert "reordered" in report.message


def test_line_seq_and_leaf_seq_must_agree():
    lines = list(LINES)
    obj = json.loads(lines[6])
    obj["leaf"] = base64.b64encode(LEAVES[7]).decode()
    lines[6] = json.dumps(obj)
    report = verify_export(lines, CP, KEY)
    assert report.first_bad_seq == 6 and "leaf says seq 7" in report.message


@pytest.mark.parametrize(
    "bad_line, fragment",
    [
        ("not json", "not a JSON object"),
        ("[1, 2]", "not a JSON object"),
        ('{"seq": 4}', "leaf must be a base64 string"),
        ('{"seq": "4", "leaf": ""}', "no integer seq"),
        ('{"seq": true, "leaf": ""}', "no integer seq"),
        ('{"seq": 4, "leaf": "***"}', "not standard base64"),
        ('{"seq": 4, "leaf": "aGVsbG8="}', "not a canonical privet.audit.v1 leaf"),
        ('{"seq": 4, "seq": 4, "leaf": ""}', "duplicate JSON key"),
        ("[" * 100000, "nested deeper than the limit of 64"),
    ],
)
def test_malformed_lines_are_named(bad_line, fragment):
    lines = list(LINES)
    lines[4] = bad_line
    report = verify_export(lines, CP, KEY)
    assert not report.ok and report.first_bad_seq == 4 and report.first_bad_line == 5
    assert fragment in report.message


def test_non_canonical_leaf_is_rejected():
    event = EVENTS[2]
    spaced = b"privet.audit.v1\n" + json.dumps(event.as_dict(), sort_keys=True).encode()
    report = verify_export(_with_line(LINES, 2, event, leaf=spaced), CP, KEY)
    assert report.first_bad_seq == 2 and "canonical" in report.message


def test_forked_older_checkpoint_fails():
    forked_store = MemoryNodeStore()
    for i in range(17):
        forked_store.append(encode_leaf(_event(i, decision="allow")))
    forked_old = _checkpoint(17, store=forked_store)
    report = verify_export(LINES, CP, KEY, older_checkpoint_note=forked_old)
    assert not report.ok and report.bad_range == (0, 17) and "forked" in report.message


def test_older_checkpoint_must_be_older_and_same_log():
    report = verify_export(LINES, _checkpoint(10), KEY, older_checkpoint_note=_checkpoint(20))
    assert not report.ok and "more than the newer" in report.message
    other_log = _checkpoint(10, origin="elsewhere.test/log")
    report = verify_export(LINES, CP, KEY, older_checkpoint_note=other_log)
    assert not report.ok and "is for log" in report.message
    same_size_other_root = sign_checkpoint(Checkpoint(ORIGIN, N, bytes(32)), SIGNER)
    report = verify_export(LINES, CP, KEY, older_checkpoint_note=same_size_other_root)
    assert not report.ok and "forked" in report.message


def test_checkpoint_signed_by_another_key_fails():
    impostor = NoteSigner.from_text(generate_signer(ORIGIN)[0])
    report = verify_export(LINES, _checkpoint(N, signer=impostor), KEY)
    assert not report.ok and report.size is None and "not signed by" in report.message
    report = verify_export(LINES, CP, KEY, older_checkpoint_note=_checkpoint(17, signer=impostor))
    assert not report.ok and report.message.startswith("older checkpoint")


def test_checkpoint_with_edited_size_fails():
    report = verify_export(LINES[:39], CP.replace("\n40\n", "\n39\n"), KEY)
    assert not report.ok and "does not verify" in report.message


def test_malformed_verifier_key_raises():
    with pytest.raises(ValueError):
        verify_export(LINES, CP, "not a key")


# --- bundles ----------------------------------------------------------------------------


def _bundle(index=9, older=OLD):
    return make_bundle(leaf=LEAVES[index], index=index, checkpoint_note=CP, reader=STORE, older_checkpoint_note=older)


def test_bundle_round_trips_through_json():
    bundle = json.loads(json.dumps(_bundle()))
    assert bundle["format"] == BUNDLE_FORMAT and bundle["event"] == EVENTS[9].as_dict()
    report = verify_bundle(bundle, KEY)
    assert report.ok and report.size == N
    assert report.message == "seq 9 is in the log privet.test/audit at size 40, which extends the older checkpoint at size 17"


def test_bundle_without_older_checkpoint():
    bundle = _bundle(index=39, older=None)
    assert "consistency_proof" not in bundle and verify_bundle(bundle, KEY).ok


def test_bundle_for_every_index_verifies():
    for index in range(N):
        assert verify_bundle(_bundle(index), KEY).ok


def _flip_b64(text: str, bit: int) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[bit // 8 % len(raw)] ^= 1 << (bit % 8)
    return base64.b64encode(bytes(raw)).decode()


def test_any_bit_flip_in_a_bundle_proof_fails():
    good = _bundle(index=21)
    for key in ("inclusion_proof", "consistency_proof"):
        for i in range(len(good[key])):
            for bit in (0, 7, 100, 255):
                bundle = copy.deepcopy(good)
                bundle[key][i] = _flip_b64(bundle[key][i], bit)
                assert not verify_bundle(bundle, KEY).ok, (key, i, bit)


def test_bundle_with_edited_leaf_and_event_fails_inclusion():
    bundle = _bundle(index=21)
    forged = _event(21, decision="allow")
    bundle["leaf"] = base64.b64encode(encode_leaf(forged)).decode()
    bundle["event"] = forged.as_dict()
    report = verify_bundle(bundle, KEY)
    assert not report.ok and report.first_bad_seq == 21 and "not in the checkpointed tree" in report.message


def test_bundle_with_edited_event_only_names_the_field():
    bundle = _bundle(index=21)
    bundle["event"]["resource"] = "model/other"
    report = verify_bundle(bundle, KEY)
    assert not report.ok and report.message == "event field 'resource' differs from the leaf"


def test_bundle_index_must_match_leaf_seq():
    bundle = _bundle(index=21)
    bundle["index"] = 22
    report = verify_bundle(bundle, KEY)
    assert not report.ok and "leaf says seq 21" in report.message


def test_bundle_with_forked_older_checkpoint_fails():
    forked_store = MemoryNodeStore()
    for i in range(17):
        forked_store.append(encode_leaf(_event(i, decision="allow")))
    bundle = _bundle(index=21)
    bundle["older_checkpoint"] = _checkpoint(17, store=forked_store)
    report = verify_bundle(bundle, KEY)
    assert not report.ok and "not a prefix" in report.message


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.pop("checkpoint"),
        lambda b: b.update(extra=1),
        lambda b: b.update(format="other"),
        lambda b: b.update(index=-1),
        lambda b: b.update(index=True),
        lambda b: b.pop("consistency_proof"),
        lambda b: b.update(inclusion_proof="AAAA"),
        lambda b: b.update(inclusion_proof=["AAAA"]),
        lambda b: b.update(leaf=5),
        lambda b: b.update(checkpoint=b["checkpoint"].replace("\u2014", "-")),
    ],
)
def test_malformed_bundles_fail_without_raising(mutate):
    bundle = _bundle(index=3)
    mutate(bundle)
    assert not verify_bundle(bundle, KEY).ok


def test_bundle_that_is_not_an_object_fails():
    assert not verify_bundle([], KEY).ok  # type: ignore[arg-type]


def test_make_bundle_checks_its_inputs():
    with pytest.raises(ValueError):
        make_bundle(leaf=LEAVES[3], index=4, checkpoint_note=CP, reader=STORE)
    with pytest.raises(ValueError):
        make_bundle(leaf=LEAVES[39], index=39, checkpoint_note=_checkpoint(30), reader=STORE)
    with pytest.raises(ValueError):
        make_bundle(leaf=LEAVES[3], index=3, checkpoint_note=_checkpoint(10), reader=STORE, older_checkpoint_note=CP)
    wrong_root = sign_checkpoint(Checkpoint(ORIGIN, N, bytes(32)), SIGNER)
    with pytest.raises(DataLoss):
        make_bundle(leaf=LEAVES[3], index=3, checkpoint_note=wrong_root, reader=STORE)
