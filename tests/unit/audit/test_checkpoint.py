"""Signed notes and checkpoints: published vectors, round trips, tampering, malformed input."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from privet.governance.audit.checkpoint import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    generate_signer,
    open_checkpoint,
    open_note,
    peek_checkpoint,
    sign_checkpoint,
    sign_note,
)
from privet.governance.audit.hashing import EMPTY_ROOT
from privet.governance.errors import DataLoss

VECTORS = json.loads((Path(__file__).parent / "testdata" / "signed_note_vectors.json").read_text())
GO = VECTORS["go_example"]
SPEC = VECTORS["spec_example"]

SIGNER_TEXT, VERIFIER_TEXT = generate_signer("privet.test/audit")
SIGNER = NoteSigner.from_text(SIGNER_TEXT)
VERIFIER = NoteVerifier.from_text(VERIFIER_TEXT)
CP = Checkpoint("privet.test/audit", 20852163, bytes(range(32)))


# --- published vectors ------------------------------------------------------------------


def test_go_example_signs_byte_for_byte():
    signer = NoteSigner.from_text(GO["signer_key"])
    assert signer.name == "PeterNeumann" and signer.key_id == 0xC74F20A3
    assert signer.text == GO["signer_key"]
    assert signer.verifier.text == GO["verifier_key"]
    assert sign_note(GO["text"], signer) == GO["note"]


def test_go_example_opens():
    assert open_note(GO["note"], NoteVerifier.from_text(GO["verifier_key"])) == GO["text"]
    assert open_note(GO["note"].encode("utf-8"), NoteVerifier.from_text(GO["verifier_key"])) == GO["text"]


def test_unknown_signatures_are_ignored_and_each_key_checks_its_own():
    both = GO["note"] + GO["enoch_signature_line"]
    assert open_note(both, NoteVerifier.from_text(GO["verifier_key"])) == GO["text"]
    assert open_note(both, NoteVerifier.from_text(GO["enoch_verifier_key"])) == GO["text"]
    with pytest.raises(DataLoss, match="not signed by"):
        open_note(GO["note"], NoteVerifier.from_text(GO["enoch_verifier_key"]))


def test_c2sp_spec_example_opens():
    verifier = NoteVerifier.from_text(SPEC["verifier_key"])
    assert verifier.name == "example.com/foo" and verifier.key_id == 0x530D903A
    assert verifier.text == SPEC["verifier_key"]
    assert open_note(SPEC["note"], verifier) == SPEC["text"]


# --- checkpoints ------------------------------------------------------------------------


def test_checkpoint_body_is_the_tlog_checkpoint_text():
    assert CP.format_body() == "privet.test/audit\n20852163\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
    assert Checkpoint.parse_body(CP.format_body()) == CP


def test_sign_and_open_round_trip():
    note = sign_checkpoint(CP, SIGNER)
    body, signature_line = note.split("\n\n")
    assert body + "\n" == CP.format_body()
    assert signature_line.startswith("\u2014 privet.test/audit ") and signature_line.endswith("\n")
    blob = base64.b64decode(signature_line.split(" ")[2])
    assert blob[:4] == SIGNER.key_id.to_bytes(4, "big") and len(blob) == 68
    assert open_checkpoint(note, VERIFIER) == CP
    assert peek_checkpoint(note) == CP


def test_empty_tree_checkpoint():
    cp = Checkpoint("privet.test/audit", 0, EMPTY_ROOT)
    assert open_checkpoint(sign_checkpoint(cp, SIGNER), VERIFIER) == cp


def test_generated_keys_are_fresh_and_consistent():
    other_signer, other_verifier = generate_signer("privet.test/audit")
    assert other_signer != SIGNER_TEXT
    assert NoteSigner.from_text(other_signer).verifier.text == other_verifier
    # The key is everything after the fourth '+' (base64 has '+' of its own).
    assert "PRIVATE" not in repr(SIGNER) and SIGNER_TEXT.split("+", 4)[4] not in repr(SIGNER)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda n: n.replace("20852163", "20852164"),  # size
        lambda n: n.replace("privet.test/audit\n", "privet.test/other\n", 1),  # origin
        lambda n: n.replace("AAEC", "AAED", 1),  # root
    ],
    ids=["size", "origin", "root"],
)
def test_tampered_body_fails_signature(tamper):
    with pytest.raises(DataLoss, match="does not verify"):
        open_checkpoint(tamper(sign_checkpoint(CP, SIGNER)), VERIFIER)


def test_every_single_bit_of_the_signature_matters():
    note = sign_checkpoint(CP, SIGNER)
    body, line = note.split("\n\n")
    blob = base64.b64decode(line.rstrip("\n").split(" ")[2])
    for bit in range(32, len(blob) * 8):  # past the key id: a changed id just names another key
        bad = bytearray(blob)
        bad[bit // 8] ^= 1 << (bit % 8)
        tampered = f"{body}\n\n\u2014 privet.test/audit {base64.b64encode(bytes(bad)).decode()}\n"
        with pytest.raises(DataLoss):
            open_checkpoint(tampered, VERIFIER)


def test_signature_by_another_key_of_the_same_name_is_rejected():
    impostor = NoteSigner.from_text(generate_signer("privet.test/audit")[0])
    with pytest.raises(DataLoss, match="not signed by"):
        open_checkpoint(sign_checkpoint(CP, impostor), VERIFIER)


def test_known_good_signature_plus_bad_one_from_same_key_is_rejected():
    note = sign_checkpoint(CP, SIGNER)
    other = sign_checkpoint(Checkpoint(CP.origin, CP.size + 1, CP.root_hash), SIGNER).split("\n\n")[1]
    with pytest.raises(DataLoss):
        open_checkpoint(note + other, VERIFIER)


@pytest.mark.parametrize(
    "note",
    [
        "",
        "privet.test/audit\n1\nAAAA\n",  # no signature block
        "privet.test/audit\n1\n" + base64.b64encode(bytes(32)).decode() + "\n\n",  # no signature lines
        "privet.test/audit\n1\n" + base64.b64encode(bytes(32)).decode() + "\n\n- privet.test/audit AAAA\n",
        "privet.test/audit\n1\n" + base64.b64encode(bytes(32)).decode() + "\n\n\u2014 privet.test/audit AAAA",
        "privet.test/audit\n1\n" + base64.b64encode(bytes(32)).decode() + "\n\n\u2014 privet.test/audit AAA!\n",
        "privet.test/audit\n1\n" + base64.b64encode(bytes(32)).decode() + "\n\n\u2014 privet.test/audit AAAA\n",
        "privet.test/audit\r\n1\n" + base64.b64encode(bytes(32)).decode() + "\n\n\u2014 x AAAAAAAA\n",
    ],
)
def test_malformed_notes_raise_value_error(note):
    with pytest.raises(ValueError):
        open_checkpoint(note, VERIFIER)


@pytest.mark.parametrize(
    "body",
    [
        "privet.test/audit\n01\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",  # leading zero
        "privet.test/audit\n+1\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        "privet.test/audit\n1_0\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        "privet.test/audit\n\u0661\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",  # Arabic-Indic one
        "privet.test/audit\n1\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==\n",  # 31 bytes
        "privet.test/audit\n1\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n",  # no padding
        "privet.test/audit\n1\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=\n",  # non-canonical bits
        "privet.test/audit\n1\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\nextension\n",
        "\n1\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
    ],
)
def test_malformed_bodies_raise_value_error_even_when_signed(body):
    note = sign_note(body, SIGNER)
    with pytest.raises(ValueError):
        open_checkpoint(note, VERIFIER)


@pytest.mark.parametrize(
    "key",
    [
        "",
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong id
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # upper-case id
        "PeterNeumann+c74f20a3+Ahpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # algorithm 2
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10",  # short
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
    ],
)
def test_malformed_verifier_keys(key):
    with pytest.raises(ValueError):
        NoteVerifier.from_text(key)


def test_every_truncation_and_byte_change_of_the_signer_key_is_rejected():
    good = GO["signer_key"]
    for end in range(len(good)):
        with pytest.raises(ValueError):
            NoteSigner.from_text(good[:end])
    for i, ch in enumerate(good):
        changed = good[:i] + chr(ord(ch) + 1) + good[i + 1 :]
        with pytest.raises(ValueError):
            NoteSigner.from_text(changed)


@pytest.mark.parametrize(
    "args",
    [("", 1, bytes(32)), ("a\nb", 1, bytes(32)), ("o", -1, bytes(32)), ("o", True, bytes(32)), ("o", 1, bytes(31))],
)
def test_checkpoint_fields_are_validated(args):
    with pytest.raises(ValueError):
        Checkpoint(*args)


@pytest.mark.parametrize("text", ["no newline", "ends blank\n\n", "\n", "tab\there\n"])
def test_sign_note_rejects_text_that_would_not_round_trip(text):
    with pytest.raises(ValueError):
        sign_note(text, SIGNER)


@pytest.mark.parametrize("name", ["", "a b", "a+b", "tab\tname"])
def test_bad_key_names(name):
    with pytest.raises(ValueError):
        generate_signer(name)
