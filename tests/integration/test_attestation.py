"""Signed provenance that travels with a released model (issue 18), on real servers.

The registry issues an in-toto statement in a DSSE envelope at release; GetAttestation
hands it out with an inclusion proof of every audit event it cites. It is checked by
Privet's own offline verifier and by an independent DSSE implementation
(securesystemslib); a tampered attestation, weights file or audit proof fails; and the
inference service refuses, audited, a version whose attestation does not verify.
"""

from __future__ import annotations

import base64
import copy
import json

import grpc
import numpy as np
import pytest
from safetensors.numpy import save
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey
from sqlalchemy import select, update

from privet.governance.attestation.dsse import sign_envelope
from privet.governance.attestation.keys import AttestationSigner, keyid_of, load_public_key
from privet.governance.attestation.verify import verify_attestation
from privet.governance.registry import ModelRegistry, VersionSpec
from privet.governance.runtime import Runtime
from privet.governance.store.registry_tables import ModelVersion
from privet.governance.store.tables import AuditEvent
from privet.kserve.v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from privet.registry.v1 import registry_pb2, registry_pb2_grpc
from tests.established import establish_version
from tests.helpers import channel
from tests.integration.test_inference import _request, release_toy

GUARANTEE = {"epsilon": 3.0, "delta": 1e-6, "noise_multiplier": 1.1, "sample_rate": 0.01, "steps": 500, "accountant": "prv", "max_grad_norm": 1.0}


def _p(rt: Runtime, who: str):
    return rt.policies.engine.directory.principals[who]


def _weights() -> bytes:
    return save({"w": np.random.default_rng(7).standard_normal(256).astype(np.float32)})


@pytest.fixture
def released(servers, sqlite_runtime):
    """An established version, released by alice → dana → bob; its attestation document as
    any registry reader (carol, an auditor) fetches it over gRPC."""
    rt = sqlite_runtime
    registry = ModelRegistry(rt)
    weights = _weights()
    v = establish_version(registry, rt, VersionSpec("churn", guarantee=GUARANTEE, metrics={"accuracy": 0.91}), weights)
    registry.request_release(_p(rt, "user/alice"), "churn", v.version, thresholds={"accuracy": 0.9})
    registry.approve(_p(rt, "user/dana"), "churn", v.version, note="ok")
    registry.release(_p(rt, "user/bob"), "churn", v.version)
    with channel(rt.home, "carol", servers["registry"]) as ch:
        reply = registry_pb2_grpc.RegistryServiceStub(ch).GetAttestation(registry_pb2.GetAttestationRequest(name="churn", version=v.version, with_proofs=True))
    keys = rt.home.keys
    return {"document": json.loads(reply.document_json), "weights": weights, "version": v, "reply": reply,
            "key": (keys / "attestation.pub").read_bytes(), "audit_key": (keys / "audit.pub").read_text().strip()}


def _verify(r: dict, document: dict | None = None, weights: bytes | None = None):
    return verify_attestation(document if document is not None else r["document"], attestation_key_pem=r["key"], audit_key=r["audit_key"],
                              weights=weights if weights is not None else r["weights"], expect_model=("churn", r["version"].version))


def test_the_attestation_carries_the_established_facts_and_verifies(released) -> None:
    report = _verify(released)
    assert report.ok, report.message
    statement = report.statement
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["subject"][0]["digest"]["sha256"] == released["version"].digest
    predicate = statement["predicate"]
    v = released["version"]
    assert predicate["provenance"] == "established" and predicate["trainedOnPersonalData"] is True
    assert predicate["lineage"]["training_job_id"] == v.job_id and predicate["lineage"]["trained_by"] == "user/alice"
    assert {"dataset_id", "raw_digest", "dataset_digest", "masking_profile_digest", "code_version"} <= set(predicate["lineage"])
    assert predicate["guarantee"]["epsilon"] == 3.0 and predicate["evaluation"] == {"accuracy": 0.91}
    assert [a["principal"] for a in predicate["release"]["approvals"]] == ["user/dana"] and predicate["release"]["released_by"] == "user/bob"
    actions = [e["action"] for e in predicate["auditEvents"]]
    assert actions[0] == "registry.CreateModelVersion" and actions[-1] == "registry.ReleaseModelVersion"
    assert {"registry.RequestRelease", "registry.ApproveRelease", "training.EndJob"} <= set(actions)
    assert len(released["document"]["auditProofs"]) == len(actions) == len(released["reply"].audit_seqs)


def test_an_independent_dsse_verifier_accepts_it(released) -> None:
    """securesystemslib (not Privet's code) checks the signature over DSSE's PAE."""
    envelope = Envelope.from_dict(copy.deepcopy(released["document"]["dsseEnvelope"]))  # it rewrites what it is given
    public = load_public_key(released["key"])
    key = SSlibKey.from_crypto(public, keyid=keyid_of(public))
    assert list(envelope.verify([key], 1)) == [keyid_of(public)]
    statement = json.loads(envelope.pae()[envelope.pae().index(b"{"):])
    assert statement["predicateType"] == "https://privet.dev/attestations/model-release/v1"
    assert statement["subject"][0]["digest"]["sha256"] == released["version"].digest
    tampered = copy.deepcopy(released["document"]["dsseEnvelope"])
    payload = bytearray(base64.b64decode(tampered["payload"]))
    payload[10] ^= 1
    tampered["payload"] = base64.b64encode(bytes(payload)).decode()
    with pytest.raises(VerificationError):
        Envelope.from_dict(tampered).verify([key], 1)


def test_a_tampered_attestation_weights_file_or_audit_proof_fails(released) -> None:
    document = released["document"]
    # The statement: one flipped byte in the signed payload.
    forged = copy.deepcopy(document)
    payload = bytearray(base64.b64decode(forged["dsseEnvelope"]["payload"]))
    payload[len(payload) // 2] ^= 1
    forged["dsseEnvelope"]["payload"] = base64.b64encode(bytes(payload)).decode()
    assert not _verify(released, forged).ok
    # A statement re-signed by a key that is not the registry's.
    other = AttestationSigner.generate()
    resigned = copy.deepcopy(document)
    resigned["dsseEnvelope"] = sign_envelope(base64.b64decode(document["dsseEnvelope"]["payload"]), other)
    assert not _verify(released, resigned).ok
    # The weights: one bit.
    weights = bytearray(released["weights"])
    weights[-1] ^= 1
    assert not _verify(released, weights=bytes(weights)).ok
    # An audit proof: one hash altered, one dropped, one leaf swapped for another event's.
    bad_hash = copy.deepcopy(document)
    proof = bad_hash["auditProofs"][-1]["inclusion_proof"]
    proof[0] = base64.b64encode(bytes(32)).decode()
    assert not _verify(released, bad_hash).ok
    dropped = copy.deepcopy(document)
    dropped["auditProofs"].pop(0)
    assert not _verify(released, dropped).ok
    swapped = copy.deepcopy(document)
    swapped["auditProofs"][0], swapped["auditProofs"][1] = swapped["auditProofs"][1], swapped["auditProofs"][0]
    swapped["auditProofs"][0]["index"] = swapped["auditProofs"][1]["index"]
    assert not _verify(released, swapped).ok
    # Checked against another log's key, the proofs do not verify.
    from privet.governance.audit.checkpoint import generate_signer

    assert not verify_attestation(document, attestation_key_pem=released["key"], audit_key=generate_signer("privet.local/audit")[1]).ok


def test_inference_refuses_a_version_whose_attestation_does_not_verify(servers, sqlite_runtime) -> None:
    rt, home = sqlite_runtime, sqlite_runtime.home
    version, _, _ = release_toy(home, servers["registry"])
    with rt.read() as session:
        genuine = session.scalars(select(ModelVersion.attestation_json).where(ModelVersion.model_name == "churn")).one()
    # Someone with write access to the database swaps in an attestation signed by another key.
    envelope = json.loads(genuine)
    forged = json.dumps(sign_envelope(base64.b64decode(envelope["payload"]), AttestationSigner.generate()))
    rt.write(lambda s: s.execute(update(ModelVersion).where(ModelVersion.model_name == "churn").values(attestation_json=forged)))
    with channel(home, "app", servers["inference"]) as ch:
        infer = pb_grpc.GRPCInferenceServiceStub(ch)
        with pytest.raises(grpc.RpcError) as err:
            infer.ModelInfer(_request(), timeout=30)
        assert err.value.code() == grpc.StatusCode.DATA_LOSS and "attestation" in err.value.details()
        with rt.read() as session:
            (refusal,) = session.scalars(select(AuditEvent).where(AuditEvent.action == "inference.VerifyAttestation")).all()
        assert refusal.decision == "deny" and refusal.principal == "service/inference"
        # The genuine attestation back: the version serves.
        rt.write(lambda s: s.execute(update(ModelVersion).where(ModelVersion.model_name == "churn").values(attestation_json=genuine)))
        reply = infer.ModelInfer(_request(), timeout=30)
        assert reply.model_name == "churn"


def test_a_version_released_before_attestations_is_attested_at_the_next_start(sqlite_runtime) -> None:
    rt = sqlite_runtime
    registry = ModelRegistry(rt)
    v = establish_version(registry, rt, VersionSpec("old", guarantee=GUARANTEE), _weights())
    registry.request_release(_p(rt, "user/alice"), "old", v.version)
    registry.approve(_p(rt, "user/dana"), "old", v.version)
    registry.release(_p(rt, "user/bob"), "old", v.version)
    rt.write(lambda s: s.execute(update(ModelVersion).where(ModelVersion.model_name == "old").values(attestation_json="")))  # as before the upgrade
    restarted = ModelRegistry(rt)  # what the registry service does when it starts
    _, document = restarted.attestation_document("old", v.version)
    report = verify_attestation(document, attestation_key_pem=(rt.home.keys / "attestation.pub").read_bytes(),
                                audit_key=(rt.home.keys / "audit.pub").read_text().strip(), weights=_weights(), expect_model=("old", v.version))
    assert report.ok, report.message
    with rt.read() as session:
        (issued,) = session.scalars(select(AuditEvent).where(AuditEvent.action == "registry.IssueAttestation")).all()
    assert issued.resource == f"model/old/{v.version}"
    assert ModelRegistry(rt).attest_unattested_releases() == 0
