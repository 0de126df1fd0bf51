"""Base models in the registry (real runtime, SQLite, the shipped Cedar policies): a
transformers folder registered as a sealed pack, its facts established from the files, its
refusals, and the gate that makes it usable for training (license allow-list + approver)."""

from __future__ import annotations

import hashlib
import json
import pathlib

import pytest

from privet.governance.basemodels.pack import pack_folder
from privet.governance.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from privet.governance.registry import ModelRegistry, VersionSpec
from privet.governance.registry.base_models import BASE_ARCHITECTURE, resolve_base
from privet.governance.runtime import Runtime
from tests.integration._registry_support import audit_events, principal, weights
from tests.unit.basemodels.tiny_models import make_bert_folder


@pytest.fixture
def registry(sqlite_runtime: Runtime) -> ModelRegistry:
    return ModelRegistry(sqlite_runtime)


def _pack(folder: pathlib.Path) -> bytes:
    _, pieces = pack_folder(folder)
    return b"".join(pieces)


def _base(name: str, license_id: str = "Apache-2.0") -> VersionSpec:
    return VersionSpec(name, architecture=BASE_ARCHITECTURE, base_license=license_id, base_source="generated in the test")


def _release(registry: ModelRegistry, rt: Runtime, name: str) -> None:
    registry.request_release(principal(rt, "user/alice"), name, 1)
    registry.approve(principal(rt, "user/dana"), name, 1)
    registry.release(principal(rt, "user/bob"), name, 1)


def test_a_base_is_registered_with_the_facts_of_its_files(registry, sqlite_runtime, tmp_path) -> None:
    folder = make_bert_folder(tmp_path)
    data = _pack(folder)
    v = registry.create_version(principal(sqlite_runtime, "user/alice"), _base("bert-tiny"), [data[i : i + 1000] for i in range(0, len(data), 1000)])
    assert v.architecture == BASE_ARCHITECTURE and v.digest == hashlib.sha256(data).hexdigest()
    assert not v.trained_on_personal_data and v.provenance == "claimed" and v.guarantee is None
    facts = json.loads(v.preprocessing_json)["base"]
    established = facts["established"]
    assert established["model_type"] == "bert" and established["parameters"] > 0
    # The manifest is of the original files, comparable with what their publisher lists.
    assert established["files"] == {p.name: {"sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "size": p.stat().st_size}
                                    for p in sorted(folder.iterdir())}
    assert facts["stated"] == {"license": "Apache-2.0", "source": "generated in the test"} and facts["data_held_by_privet"] is False
    (event,) = audit_events(sqlite_runtime, "registry.CreateModelVersion")
    assert json.loads(event.details)["base"]["license"] == "Apache-2.0"
    # Downloaded back, it is the pack, byte for byte.
    assert b"".join(registry.download(principal(sqlite_runtime, "user/alice"), "bert-tiny", 1)) == data


@pytest.mark.parametrize(("spec", "field"), [
    (VersionSpec("b", architecture=BASE_ARCHITECTURE, base_license="", base_source="x"), "metadata.base.license"),
    (VersionSpec("b", architecture=BASE_ARCHITECTURE, base_license="MIT OR Apache-2.0", base_source="x"), "metadata.base.license"),
    (VersionSpec("b", architecture=BASE_ARCHITECTURE, base_license="MIT", base_source=""), "metadata.base.source"),
    (VersionSpec("b", architecture=BASE_ARCHITECTURE, base_license="MIT", base_source="x", preprocessing_json="{}"), "metadata.preprocessing_json"),
    (VersionSpec("b", architecture=BASE_ARCHITECTURE, base_license="MIT", base_source="x", lineage={"dataset_id": "d"}), "metadata.lineage"),
    (VersionSpec("b", architecture="mlp", base_license="MIT"), "metadata.base"),
])
def test_what_a_base_cannot_state_is_refused(registry, sqlite_runtime, tmp_path, spec, field) -> None:
    with pytest.raises(InvalidArgument) as err:
        registry.create_version(principal(sqlite_runtime, "user/alice"), spec, [_pack(make_bert_folder(tmp_path))])
    assert err.value.field == field


def test_plain_weights_are_not_a_base_and_a_pack_with_pickle_is_refused(registry, sqlite_runtime, tmp_path) -> None:
    alice = principal(sqlite_runtime, "user/alice")
    with pytest.raises(InvalidArgument):
        registry.create_version(alice, _base("b"), [weights()])
    folder = make_bert_folder(tmp_path)
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04not really")
    # The client refuses to pack it; a hand-made pack reaches the registry and is refused there.
    with pytest.raises(InvalidArgument):
        pack_folder(folder)
    from privet.governance.basemodels.framing import pack_header

    files = {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
    forged = pack_header({n: len(b) for n, b in files.items()}) + b"".join(files.values())
    with pytest.raises(InvalidArgument) as err:
        registry.create_version(alice, _base("b"), [forged])
    assert "pytorch_model.bin" in err.value.field
    with sqlite_runtime.read() as session:  # nothing was kept
        with pytest.raises(NotFound):
            resolve_base(session, "b:1")


def test_a_base_is_usable_for_training_only_once_released_through_the_gates(registry, sqlite_runtime, tmp_path) -> None:
    alice = principal(sqlite_runtime, "user/alice")
    data = _pack(make_bert_folder(tmp_path))
    registry.create_version(alice, _base("bert-ok"), [data])
    with sqlite_runtime.read() as session, pytest.raises(FailedPrecondition, match="REGISTERED"):
        resolve_base(session, "bert-ok:1")
    _release(registry, sqlite_runtime, "bert-ok")
    with sqlite_runtime.read() as session:
        ref = resolve_base(session, "bert-ok:1")
    assert ref["digest"] == hashlib.sha256(data).hexdigest() and ref["model_type"] == "bert" and "tokenizer.json" in ref["files"]
    # A license outside the allow-list never gets there: the gate says why.
    registry.create_version(alice, _base("bert-closed", "LicenseRef-Proprietary"), [data])
    with pytest.raises(PermissionDenied) as err:
        registry.request_release(alice, "bert-closed", 1)
    assert "base-license-allowed" in err.value.policy_ids and "LicenseRef-Proprietary" in err.value.message
    # Nor may the uploader approve their own base.
    registry.create_version(alice, _base("bert-self"), [data])
    registry.request_release(alice, "bert-self", 1)
    with pytest.raises(PermissionDenied):
        registry.approve(alice, "bert-self", 1)
    # Only the services fetch a released base; a trained version is no base.
    training = principal(sqlite_runtime, "service/training")
    assert b"".join(registry.download(training, "bert-ok", 1)) == data
    with pytest.raises(PermissionDenied):
        registry.download(training, "bert-self", 1)
    for malformed in ("bert-ok", "bert-ok:１", "bert-ok:0", "bert-ok:1:2", "bert-ok:+1"):
        with sqlite_runtime.read() as session, pytest.raises(InvalidArgument):
            resolve_base(session, malformed)
    registry.create_version(alice, VersionSpec("plain"), [weights()])
    with sqlite_runtime.read() as session, pytest.raises(FailedPrecondition, match="not a base"):
        resolve_base(session, "plain:1")
    # Revoked, it is no longer usable.
    registry.revoke(principal(sqlite_runtime, "user/bob"), "bert-ok", 1, reason="license withdrawn")
    with sqlite_runtime.read() as session, pytest.raises(FailedPrecondition, match="REVOKED"):
        resolve_base(session, "bert-ok:1")


def test_a_fine_tuned_upload_must_name_its_base_as_the_registry_holds_it(registry, sqlite_runtime, tmp_path) -> None:
    from privet.governance.architectures import FINE_TUNED_ARCH, BaseTextPreprocessor, ModelSpec, export_weights
    from privet.governance.architectures.tabular import ClassLabels
    from privet.governance.basemodels import source

    alice = principal(sqlite_runtime, "user/alice")
    data = _pack(make_bert_folder(tmp_path))
    registry.create_version(alice, _base("bert-b"), [data])
    facts = json.loads(registry.get_version("bert-b", 1).preprocessing_json)["base"]["established"]
    ref = {"model": "bert-b", "version": 1, "digest": hashlib.sha256(data).hexdigest(), "model_type": facts["model_type"],
           "config": facts["config"], "files": facts["files"]}
    source.use_fetcher(lambda model, version: data)
    try:
        spec = ModelSpec.create(FINE_TUNED_ARCH, 8, 2, base=ref, tune="head", max_length=8)
        weights_bytes = export_weights(spec.build())
    finally:
        source.use_fetcher(None)
    pre = BaseTextPreprocessor("text", 8, ref)

    def upload(name: str, base: dict, tokenizer_base: dict | None = None):
        meta = {"model": {**spec.to_metadata(), "hparams": {**spec.to_metadata()["hparams"], "base": base}},
                "preprocessor": {**pre.to_metadata(), "base": tokenizer_base or {k: base[k] for k in ("model", "version", "digest", "files")}},
                "labels": ClassLabels("label", [0, 1]).to_metadata()}
        # The uploader's word on the base in the lineage counts for nothing: it is the base built from.
        lineage = {"base_model": "someone-else", "base_version": "7", "base_digest": "f" * 64}
        return registry.create_version(alice, VersionSpec(name, architecture=FINE_TUNED_ARCH, preprocessing_json=json.dumps(meta), lineage=lineage),
                                       [weights_bytes])

    honest = upload("honest", ref)
    assert honest.architecture == FINE_TUNED_ARCH
    assert (honest.lineage["base_model"], honest.lineage["base_version"], honest.lineage["base_digest"]) == ("bert-b", "1", ref["digest"])
    lies = {
        "other-digest": {**ref, "digest": "0" * 64},
        "other-config": {**ref, "config": {**ref["config"], "hidden_act": "relu"}},
        "no-such-base": {**ref, "model": "ghost"},
    }
    for name, base in lies.items():
        with pytest.raises(InvalidArgument) as err:
            upload(name, base)
        assert err.value.field == "metadata.preprocessing_json", name
    registry.create_version(alice, VersionSpec("plain"), [weights()])
    with pytest.raises(InvalidArgument, match="not a base"):
        upload("trained-as-base", {**ref, "model": "plain"})
    with pytest.raises(InvalidArgument, match="tokenizer"):
        upload("two-bases", ref, {**{k: ref[k] for k in ("model", "version", "files")}, "digest": "1" * 64})
    # Built on a base that is not RELEASED, it does not advance through the gates.
    with pytest.raises(PermissionDenied) as denied:
        registry.request_release(alice, "honest", 1)
    assert "fine-tuned-needs-a-released-base" in denied.value.policy_ids
