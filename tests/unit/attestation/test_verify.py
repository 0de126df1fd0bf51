"""Offline verification of a release attestation against a real audit log: the good case,
and each way the document, the weights or the audit proofs could be forged. Every failure
is a report with a plain message, never an exception."""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import json
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import select

from privet.governance.attestation.dsse import MAX_ENVELOPE_BYTES, sign_envelope
from privet.governance.attestation.keys import AttestationSigner
from privet.governance.attestation.statement import release_statement, statement_bytes
from privet.governance.attestation.verify import (
    MEDIA_TYPE,
    attestation_document,
    verify_attestation,
)
from privet.governance.audit.checkpoint import (
    NoteSigner,
    generate_signer,
    peek_checkpoint,
    sign_checkpoint,
)
from privet.governance.audit.leaf import EventRecord, decode_leaf, encode_leaf
from privet.governance.audit.log import Event
from privet.governance.audit.merkle import MemoryNodeStore, root
from privet.governance.audit.offline import bundle_from_proofs, make_bundle
from privet.governance.audit.storage import SqlNodeReader
from privet.governance.runtime import Runtime
from privet.governance.store.tables import AuditEvent
from tests.conftest import make_home

WEIGHTS = bytes(range(256)) * 40
DIGEST = hashlib.sha256(WEIGHTS).hexdigest()
VERSION_ID = "9f" * 16
SIGNER = AttestationSigner.generate()
RESOURCE = "model/churn/3"


@dataclasses.dataclass
class Release:
    """A model version released in a real audit log, and what an attestation needs of it."""

    rt: Runtime
    audit_key: str
    checkpoint: str
    seq: dict[str, int]  # which seq each interesting event got
    bundles: dict[int, dict[str, Any]]  # seq -> bundle, for every event in the log

    def predicate(self, **changes: Any) -> dict[str, Any]:
        predicate = {
            "model": {"name": "churn", "version": 3, "version_id": VERSION_ID, "architecture": "mlp", "team": "growth",
                      "weights": {"sha256": DIGEST, "size": len(WEIGHTS)}},
            "provenance": "established",
            "lineage": {"dataset_id": "ds-1", "dataset_name": "customers", "raw_digest": "a" * 64, "masked_digest": "b" * 64,
                        "masking_profile": "default", "masking_profile_digest": "c" * 64, "training_job_id": "job-1",
                        "code_version": "privet 0.1.0", "trained_by": "user/alice"},
            "trainedOnPersonalData": True,
            "personalDataDeclaredBy": "",
            "guarantee": {"epsilon": 3.0, "delta": 1e-5},
            "evaluation": {"accuracy": 0.91},
            "release": {"requested_by": "user/alice", "thresholds": {"accuracy": 0.9},
                        "approvals": [{"principal": "user/dana", "at_us": 1}], "released_by": "user/bob", "released_at_us": 2},
            "auditLog": {"origin": self.rt.settings.audit_origin},
            "auditEvents": [
                {"seq": self.seq["create"], "action": "registry.CreateModelVersion", "resource": RESOURCE},
                {"seq": self.seq["release"], "action": "registry.ReleaseModelVersion", "resource": RESOURCE},
            ],
            "issuer": {"name": "privet-registry", "keyid": SIGNER.keyid},
        }
        predicate.update(changes)
        return predicate

    def document(self, *, predicate: dict[str, Any] | None = None, digest: str = DIGEST,
                 seqs: tuple[str, ...] = ("create", "release"), signer: AttestationSigner = SIGNER) -> dict[str, Any]:
        statement = release_statement(subject_name=RESOURCE, weights_sha256=digest, predicate=predicate or self.predicate())
        envelope = sign_envelope(statement_bytes(statement), signer)
        return attestation_document(envelope, [copy.deepcopy(self.bundles[self.seq[s]]) for s in seqs])


def _events() -> list[tuple[str, Event]]:
    other = "model/churn/2"
    return [
        ("", Event(principal="user/alice", action="datasets.Ingest", resource="dataset/ds-1", decision="allow")),
        ("create_other", Event(principal="service/training", action="registry.CreateModelVersion", resource=other,
                               decision="allow", details={"version_id": "11" * 16, "digest": "d" * 64})),
        ("create", Event(principal="service/training", action="registry.CreateModelVersion", resource=RESOURCE,
                         decision="allow", details={"version_id": VERSION_ID, "digest": DIGEST, "size": len(WEIGHTS)})),
        ("denied", Event(principal="user/bob", action="registry.ReleaseModelVersion", resource=RESOURCE, decision="deny",
                         policy_ids=("release-requires-approval",), details={"version_id": VERSION_ID, "reasons": ["no approval"]})),
        ("", Event(principal="user/dana", action="registry.ApproveRelease", resource=RESOURCE, decision="allow",
                   details={"version_id": VERSION_ID})),
        ("release", Event(principal="user/bob", action="registry.ReleaseModelVersion", resource=RESOURCE, decision="allow",
                          details={"version_id": VERSION_ID, "from": "approved", "to": "released"})),
        ("release_other", Event(principal="user/bob", action="registry.ReleaseModelVersion", resource=other, decision="allow",
                                details={"version_id": "11" * 16})),
        ("", Event(principal="user/carol", action="inference.Predict", resource=RESOURCE, decision="allow")),
    ]


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    rt = Runtime.open(make_home(tmp_path_factory.mktemp("attest") / "home"))
    named = _events()
    seqs = rt.write(lambda _s: [rt.audit.append(e) for _, e in named])
    checkpoint = rt.checkpointer.checkpoint_now().note
    with rt.read() as session:
        reader = SqlNodeReader(session)
        bundles = {
            seq: make_bundle(leaf=session.get(AuditEvent, seq).leaf, index=seq, checkpoint_note=checkpoint, reader=reader)
            for seq in seqs
        }
    audit_key = (rt.home.keys / "audit.pub").read_text().strip()
    yield Release(rt, audit_key, checkpoint, {name: seq for (name, _), seq in zip(named, seqs) if name}, bundles)
    rt.close()


def _verify(release: Release, document: object, **kwargs: Any):
    kwargs.setdefault("audit_key", release.audit_key)
    return verify_attestation(document, attestation_key_pem=SIGNER.public_pem, **kwargs)


def _fails(release: Release, document: object, match: str, **kwargs: Any) -> str:
    report = _verify(release, document, **kwargs)
    assert not report.ok, report.message
    assert report.statement is None
    assert match in report.message, report.message
    assert "\n" not in report.message
    return report.message


# --- the good cases ------------------------------------------------------------------------


def test_untouched_document_verifies_with_every_check(release, tmp_path):
    document = release.document()
    weights_file = tmp_path / "model.safetensors"
    weights_file.write_bytes(WEIGHTS)
    for weights in (WEIGHTS, weights_file):
        report = _verify(release, document, weights=weights, expect_model=("churn", 3))
        assert report.ok, report.message
        assert report.statement["subject"][0]["digest"]["sha256"] == DIGEST
        assert report.statement["predicate"]["model"]["version_id"] == VERSION_ID
        assert "churn v3" in report.message and SIGNER.keyid in report.message
        assert "the weights match" in report.message
        assert f"the audit log proves events {release.seq['create']}, {release.seq['release']}" in report.message
        assert "\n" not in report.message


def test_document_survives_a_trip_through_a_json_file(release):
    raw = json.dumps(release.document(), indent=2).encode()
    assert _verify(release, raw).ok
    assert _verify(release, raw.decode()).ok
    assert _verify(release, json.loads(raw)).ok


def test_document_shape(release):
    document = release.document()
    assert set(document) == {"mediaType", "dsseEnvelope", "auditProofs"}
    assert document["mediaType"] == MEDIA_TYPE == "application/vnd.privet.attestation+json;version=1"
    assert document["dsseEnvelope"]["payloadType"] == "application/vnd.in-toto+json"


def test_without_an_audit_key_the_message_says_the_proofs_were_not_checked(release):
    document = release.document()
    document["auditProofs"] = []
    report = _verify(release, document, audit_key=None)
    assert report.ok and "audit proofs were NOT checked" in report.message


def test_verification_does_not_modify_the_document(release):
    document = release.document()
    before = copy.deepcopy(document)
    assert _verify(release, document).ok
    assert document == before


# --- the envelope and the statement --------------------------------------------------------


def test_flipped_payload_byte_fails(release):
    document = release.document()
    payload = bytearray(base64.b64decode(document["dsseEnvelope"]["payload"]))
    payload[payload.index(b'"accuracy":0.91') + 14] = ord("9")  # 0.91 -> 0.99
    document["dsseEnvelope"]["payload"] = base64.b64encode(bytes(payload)).decode()
    _fails(release, document, "signature does not verify with the attestation key")


def test_changed_payload_type_fails(release):
    document = release.document()
    document["dsseEnvelope"]["payloadType"] = "application/json"
    _fails(release, document, "payloadType is 'application/json', not 'application/vnd.in-toto+json'")


def test_signature_by_another_key_fails(release):
    _fails(release, release.document(signer=AttestationSigner.generate()), "no signature by the attestation key")


def test_changed_subject_digest_breaks_the_signature(release):
    document = release.document()
    payload = base64.b64decode(document["dsseEnvelope"]["payload"]).replace(DIGEST.encode(), b"e" * 64)
    document["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode()
    _fails(release, document, "signature does not verify")


def test_subject_digest_that_the_log_never_recorded_fails(release):
    # Signed by the right key, but the creation event in the public log says otherwise.
    other = "e" * 64
    predicate = release.predicate()
    predicate["model"]["weights"]["sha256"] = other
    message = _fails(release, release.document(predicate=predicate, digest=other), "registry.CreateModelVersion event")
    assert f"records weights digest '{DIGEST}', not the attested {other}" in message


def test_predicate_digest_differing_from_the_subject_fails(release):
    predicate = release.predicate()
    predicate["model"]["weights"]["sha256"] = "e" * 64
    _fails(release, release.document(predicate=predicate), "differs from the statement's subject digest")


def test_duplicate_keys_in_the_signed_payload_fail(release):
    statement = release_statement(subject_name=RESOURCE, weights_sha256=DIGEST, predicate=release.predicate())
    payload = statement_bytes(statement).replace(b'"provenance":', b'"provenance":"alleged","provenance":', 1)
    document = attestation_document(sign_envelope(payload, SIGNER), [])
    _fails(release, document, "the statement: duplicate JSON key 'provenance'", audit_key=None)


def test_duplicate_keys_in_the_document_file_fail(release):
    raw = json.dumps(release.document())
    raw = raw.replace('"auditProofs":', '"auditProofs": [], "auditProofs":', 1)
    _fails(release, raw.encode(), "the attestation document: duplicate JSON key 'auditProofs'")


def test_deep_nesting_in_the_signed_payload_fails(release):
    deep: Any = "x"
    for _ in range(40):
        deep = [deep]
    statement = {"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://privet.dev/attestations/model-release/v1",
                 "subject": [{"name": RESOURCE, "digest": {"sha256": DIGEST}}], "predicate": {"deep": deep}}
    document = attestation_document(sign_envelope(statement_bytes(statement), SIGNER), [])
    _fails(release, document, "the statement nests deeper than 32 levels")


def test_deep_nesting_in_the_document_file_fails(release):
    _fails(release, b'{"mediaType": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "the attestation document nests deeper")


def test_oversized_envelope_fails(release):
    document = release.document()
    document["dsseEnvelope"]["payload"] = "A" * (MAX_ENVELOPE_BYTES + 4)
    _fails(release, document, f"the DSSE envelope is larger than {MAX_ENVELOPE_BYTES} bytes")


def test_oversized_document_file_fails(release):
    _fails(release, b" " * (9 * 1024 * 1024), "the attestation document is larger than")


@pytest.mark.parametrize(
    ("document", "match"),
    [
        (None, "not a JSON object"),
        ([], "not a JSON object"),
        (b"not json", "the attestation document is not JSON"),
        ({"mediaType": MEDIA_TYPE}, "must have exactly the keys"),
        ({"mediaType": "application/json", "dsseEnvelope": {}, "auditProofs": []}, "mediaType is 'application/json'"),
        ({"mediaType": MEDIA_TYPE, "dsseEnvelope": {}, "auditProofs": {}}, "auditProofs is not a list"),
        ({"mediaType": MEDIA_TYPE, "dsseEnvelope": {}, "auditProofs": [{}] * 257}, "more than the 256 allowed"),
        ({"mediaType": MEDIA_TYPE, "dsseEnvelope": [], "auditProofs": []}, "the DSSE envelope is not a JSON object"),
    ],
)
def test_malformed_documents_are_reported(release, document, match):
    _fails(release, document, match)


def test_predicate_without_a_model_fails(release):
    _fails(release, release.document(predicate=release.predicate(model="churn")), "the predicate has no model object")


# --- weights and the expected model --------------------------------------------------------


def test_weights_that_differ_by_one_byte_fail(release, tmp_path):
    changed = bytearray(WEIGHTS)
    changed[-1] ^= 0x01
    message = _fails(release, release.document(), "the weights' sha256 is", weights=bytes(changed))
    assert f"not the attested {DIGEST}" in message
    weights_file = tmp_path / "w.bin"
    weights_file.write_bytes(bytes(changed))
    _fails(release, release.document(), "the weights' sha256 is", weights=weights_file)


def test_weights_longer_than_one_hashing_piece_are_hashed_whole(release, tmp_path):
    big = WEIGHTS * 200  # ~2 MiB: crosses the 1 MiB pieces
    predicate = release.predicate()
    predicate["model"]["weights"]["sha256"] = hashlib.sha256(big).hexdigest()
    document = release.document(predicate=predicate, digest=hashlib.sha256(big).hexdigest())
    weights_file = tmp_path / "big.bin"
    weights_file.write_bytes(big)
    assert _verify(release, document, weights=weights_file, audit_key=None).ok


def test_unreadable_weights_file_is_reported(release, tmp_path):
    _fails(release, release.document(), "cannot read the weights file", weights=tmp_path / "missing.bin")


@pytest.mark.parametrize("expect", [("churn", 4), ("fraud", 3)])
def test_a_different_model_than_expected_fails(release, expect):
    _fails(release, release.document(), f"the attestation is for churn v3, not {expect[0]} v{expect[1]}", expect_model=expect)


# --- audit proofs --------------------------------------------------------------------------


def test_a_missing_bundle_fails(release):
    document = release.document(seqs=("release",))
    _fails(release, document, f"no audit proof covers the listed event seq {release.seq['create']} (registry.CreateModelVersion on {RESOURCE})")


def test_no_bundles_at_all_fail_when_an_audit_key_is_given(release):
    document = release.document(seqs=())
    _fails(release, document, "no audit proof covers the listed event")


def test_a_bundle_for_a_different_event_fails(release):
    # The other model's release stands in for this one's: it verifies, but proves another seq.
    document = release.document(seqs=("create", "release_other"))
    _fails(release, document, f"no audit proof covers the listed event seq {release.seq['release']}")


def test_a_listed_event_that_is_something_else_in_the_log_fails(release):
    predicate = release.predicate(auditEvents=[
        {"seq": release.seq["create"], "action": "registry.CreateModelVersion", "resource": RESOURCE},
        {"seq": release.seq["release_other"], "action": "registry.ReleaseModelVersion", "resource": RESOURCE},
    ])
    document = release.document(predicate=predicate, seqs=("create", "release_other"))
    _fails(release, document, f"event seq {release.seq['release_other']} is registry.ReleaseModelVersion on model/churn/2, not "
                              f"registry.ReleaseModelVersion on {RESOURCE}")


def test_a_denied_release_does_not_count(release):
    predicate = release.predicate(auditEvents=[
        {"seq": release.seq["create"], "action": "registry.CreateModelVersion", "resource": RESOURCE},
        {"seq": release.seq["denied"], "action": "registry.ReleaseModelVersion", "resource": RESOURCE},
    ])
    document = release.document(predicate=predicate, seqs=("create", "denied"))
    _fails(release, document, f"event (seq {release.seq['denied']}) was a 'deny', not an allowed release")


def test_a_release_of_another_version_id_fails(release):
    predicate = release.predicate()
    predicate["model"]["version_id"] = "ab" * 16
    _fails(release, release.document(predicate=predicate), f"released version_id '{VERSION_ID}', not the attested '{'ab' * 16}'")


def test_a_creation_of_another_model_fails(release):
    predicate = release.predicate(auditEvents=[
        {"seq": release.seq["create_other"], "action": "registry.CreateModelVersion", "resource": "model/churn/2"},
        {"seq": release.seq["release"], "action": "registry.ReleaseModelVersion", "resource": RESOURCE},
    ])
    document = release.document(predicate=predicate, seqs=("create_other", "release"))
    _fails(release, document, f"records weights digest '{'d' * 64}', not the attested {DIGEST}")


@pytest.mark.parametrize("missing", ["registry.CreateModelVersion", "registry.ReleaseModelVersion"])
def test_the_predicate_must_list_the_creation_and_the_release(release, missing):
    listed = [e for e in release.predicate()["auditEvents"] if e["action"] != missing]
    _fails(release, release.document(predicate=release.predicate(auditEvents=listed)), f"the predicate lists no {missing} audit event")


@pytest.mark.parametrize("listed", [None, "events", [{"seq": "1", "action": "a", "resource": "r"}], [{"seq": -1, "action": "a", "resource": "r"}], [{"seq": True, "action": "a", "resource": "r"}], [{"seq": 1}]])
def test_malformed_audit_event_lists_fail(release, listed):
    predicate = release.predicate(auditEvents=listed)
    _fails(release, release.document(predicate=predicate), "auditEvents")


def test_a_bundle_whose_inclusion_proof_is_altered_fails(release):
    document = release.document()
    proof = document["auditProofs"][1]["inclusion_proof"]
    first = bytearray(base64.b64decode(proof[0]))
    first[0] ^= 0x01
    proof[0] = base64.b64encode(bytes(first)).decode()
    _fails(release, document, f"audit proof 1 does not verify: seq {release.seq['release']} is not in the checkpointed tree")


def test_a_bundle_whose_readable_event_was_edited_fails(release):
    document = release.document()
    document["auditProofs"][1]["event"]["decision"] = "deny"
    _fails(release, document, "audit proof 1 does not verify: event field 'decision' differs from the leaf")


def test_a_bundle_whose_leaf_was_swapped_fails(release):
    # A forged leaf saying the creation recorded another digest: not in the signed tree.
    document = release.document()
    bundle = document["auditProofs"][0]
    forged = bundle_from_proofs(
        leaf=encode_leaf(dataclasses.replace(_leaf_event(bundle), details={"digest": "e" * 64})),
        index=bundle["index"], checkpoint_note=bundle["checkpoint"],
        inclusion=[base64.b64decode(h) for h in bundle["inclusion_proof"]],
    )
    document["auditProofs"][0] = forged
    _fails(release, document, "audit proof 0 does not verify")


def _leaf_event(bundle: dict[str, Any]) -> EventRecord:
    return decode_leaf(base64.b64decode(bundle["leaf"]))


def test_a_checkpoint_signed_by_a_different_audit_key_fails(release):
    impostor = NoteSigner.from_text(generate_signer(release.rt.settings.audit_origin)[0])
    document = release.document()
    for bundle in document["auditProofs"]:
        bundle["checkpoint"] = sign_checkpoint(peek_checkpoint(bundle["checkpoint"]), impostor)
    _fails(release, document, "audit proof 0 does not verify: checkpoint:")
    # ... and it does verify with the impostor's key, which is why the auditor's key matters.
    report = _verify(release, document, audit_key=impostor.verifier.text)
    assert report.ok, report.message


def test_a_malformed_bundle_is_reported(release):
    document = release.document()
    document["auditProofs"][0] = "bundle"
    _fails(release, document, "audit proof 0 does not verify: bundle is not a JSON object")


def _forked_bundles(release: Release) -> dict[int, dict[str, Any]]:
    """Bundles from a second log under the same key and origin, identical to the real one
    but for the creation event: each verifies on its own."""
    signer = NoteSigner.from_text((release.rt.home.keys / "audit.key").read_text().strip())
    with release.rt.read() as session:
        leaves = list(session.exec(select(AuditEvent.leaf).order_by(AuditEvent.seq)))
    create = release.seq["create"]
    leaves[create] = encode_leaf(dataclasses.replace(_leaf_event(release.bundles[create]), principal="user/mallory"))
    store = MemoryNodeStore()
    for leaf in leaves:
        store.append(leaf)
    real = peek_checkpoint(release.checkpoint)
    note = sign_checkpoint(dataclasses.replace(real, root_hash=root(len(leaves), store)), signer)
    return {seq: make_bundle(leaf=leaves[seq], index=seq, checkpoint_note=note, reader=store) for seq in range(len(leaves))}


def test_two_proofs_that_disagree_on_one_seq_show_a_fork(release):
    forked = _forked_bundles(release)
    document = release.document()
    document["auditProofs"].append(forked[release.seq["create"]])
    message = _fails(release, document, "audit proof 2 contradicts an earlier one")
    assert f"different events at seq {release.seq['create']}" in message


def test_two_checkpoints_of_one_size_with_different_roots_show_a_fork(release):
    # The forked log's bundle for another event is fine on its own, but its checkpoint
    # contradicts the real one at the same size.
    forked = _forked_bundles(release)
    document = release.document()
    document["auditProofs"][1] = forked[release.seq["release"]]
    message = _fails(release, document, "audit proof 1 contradicts an earlier one")
    assert f"different roots at size {len(forked)}" in message and "the audit log forked" in message


def test_a_bundle_from_another_log_than_the_predicate_names_fails(release):
    document = release.document(predicate=release.predicate(auditLog={"origin": "example.org/other-log"}))
    _fails(release, document, f"audit proof 0 is from the log {release.rt.settings.audit_origin!r}, not 'example.org/other-log' that the predicate names")
    document = release.document(predicate=release.predicate(auditLog={"name": "x"}))
    _fails(release, document, "the predicate's auditLog has no origin")


def test_a_predicate_that_names_no_log_is_checked_against_the_key_alone(release):
    predicate = release.predicate()
    del predicate["auditLog"]
    assert _verify(release, release.document(predicate=predicate)).ok


def test_extra_bundles_that_verify_are_allowed(release):
    document = release.document(seqs=("create", "denied", "release"))
    assert _verify(release, document).ok


# --- keys ----------------------------------------------------------------------------------


def test_a_malformed_attestation_key_raises(release):
    with pytest.raises(ValueError, match="not a PEM"):
        verify_attestation(release.document(), attestation_key_pem="nope")


def test_a_malformed_audit_key_raises_even_before_the_document_is_read(release):
    with pytest.raises(ValueError):
        verify_attestation(None, attestation_key_pem=SIGNER.public_pem, audit_key="not+a+key")


def test_weights_of_the_wrong_type_are_a_programming_error(release):
    with pytest.raises(TypeError):
        _verify(release, release.document(), weights=str(pathlib.Path("x")))
