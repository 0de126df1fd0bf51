"""The `transformer` catalog architecture: a registered base fine-tuned by the training
engine under DP (Opacus), exported as its trained part only, rebuilt from the base's
verified files, and checked by shape on the meta device as the registry does."""

from __future__ import annotations

import hashlib
import json
import pathlib

import pyarrow as pa
import pytest
import torch

from privet.governance.architectures import FINE_TUNED_ARCH, BaseTextPreprocessor, load_model, preprocessor_from_metadata
from privet.governance.architectures.consistency import check_metadata_matches_weights
from privet.governance.architectures.tabular import ClassLabels
from privet.governance.basemodels import source
from privet.governance.basemodels.checker import BasePackChecker
from privet.governance.basemodels.pack import pack_folder
from privet.governance.errors import DataLoss, InvalidArgument
from privet.governance.registry.weights_format import parse_safetensors
from privet.services.training.engine import TrainConfig, train_dp
from tests.unit.basemodels.tiny_models import make_bert_folder

WORDS = ["good", "great", "fine", "bad", "awful", "poor"]


def _register(folder: pathlib.Path, fetched: dict[str, bytes]) -> dict:
    """What the registry and `resolve_base` would record for this folder, and a fetcher
    that serves its pack (as the registry would)."""
    _, pieces = pack_folder(folder)
    data = b"".join(pieces)
    checker = BasePackChecker()
    checker.feed(data)
    facts = checker.finish()
    fetched["pack"] = data
    source.use_fetcher(lambda model, version: fetched["pack"])
    return {"model": "tiny", "version": 1, "digest": hashlib.sha256(data).hexdigest(), "model_type": facts.model_type,
            "config": facts.config, "files": facts.files}


@pytest.fixture(autouse=True)
def _no_fetcher():
    yield
    source.use_fetcher(None)


def _texts(n: int) -> tuple[list[str], torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (n,), generator=gen)
    texts = [" ".join(WORDS[(3 * int(y)) + int(torch.randint(0, 3, (1,), generator=gen))] for _ in range(4)) for y in labels]
    return texts, labels


@pytest.mark.parametrize("make_folder", [make_bert_folder])  # Llama: covered by the parity tests
def test_a_base_fine_tunes_under_dp_and_rebuilds_from_its_trained_part(tmp_path, make_folder) -> None:
    fetched: dict[str, bytes] = {}
    base = _register(make_folder(tmp_path), fetched)
    pre = BaseTextPreprocessor.fit(pa.table({"text": ["x"]}), ["text"], base=base, max_length=8)
    texts, labels = _texts(96)
    x = pre.encode(texts)
    hparams = {"base": base, "tune": "lora", "lora_rank": 2, "max_length": 8}
    result = train_dp(TrainConfig(arch=FINE_TUNED_ARCH, epochs=1, batch_size=32, learning_rate=1e-2, target_epsilon=8.0, delta=1e-3,
                                  hparams=hparams, n_classes=2, device="cpu", num_threads=1, max_noise_to_batch=10.0,
                                  accountant="rdp", calibration="accountant"),  # RDP calibrates in a fraction of PRV's time
                      (x[:64], labels[:64]), (x[64:], labels[64:]), on_progress=lambda _p: None, should_stop=lambda: False)
    assert result.guarantee.epsilon > 0
    # Only the adapter and the head travel: the base is rebuilt from the registry.
    names = [t.name for t in parse_safetensors(result.weights)]
    assert names and all(".lora_" in n or "classifier" in n or "score" in n for n in names)
    model = load_model(FINE_TUNED_ARCH, result.model, result.weights)
    again = load_model(FINE_TUNED_ARCH, result.model, result.weights)
    with torch.no_grad():
        torch.testing.assert_close(model(x[64:]), again(x[64:]))
    # The registry's check, on the meta device from the recorded config alone.
    meta = {"model": result.model, "preprocessor": pre.to_metadata(), "labels": ClassLabels("label", [0, 1]).to_metadata()}
    source.use_fetcher(None)  # the registry has no fetcher: metadata alone must do
    check_metadata_matches_weights(FINE_TUNED_ARCH, json.dumps(meta), parse_safetensors(result.weights), ["text"])
    assert preprocessor_from_metadata(pre.to_metadata()) == pre


def test_a_base_that_differs_from_the_record_is_refused(tmp_path) -> None:
    fetched: dict[str, bytes] = {}
    base = _register(make_bert_folder(tmp_path), fetched)
    hparams = {"base": base, "tune": "head", "max_length": 8}
    from privet.governance.architectures import ModelSpec

    spec = ModelSpec.create(FINE_TUNED_ARCH, 8, 2, **hparams)
    spec.build()  # as recorded: builds
    fetched["pack"] = fetched["pack"][:-1] + bytes([fetched["pack"][-1] ^ 1])
    source.use_fetcher(lambda model, version: fetched["pack"])
    with pytest.raises(DataLoss):
        spec.build()
    with pytest.raises(InvalidArgument) as err:
        ModelSpec.create(FINE_TUNED_ARCH, 8, 2, base="tiny:1", max_length=8)
    assert err.value.field == "hparams.base"
    with pytest.raises(InvalidArgument) as err:
        ModelSpec.create(FINE_TUNED_ARCH, 8, 2, base=base, max_length=100_000)
    assert err.value.field == "hparams.max_length"


def test_a_huge_text_costs_what_its_first_tokens_do(tmp_path) -> None:
    fetched: dict[str, bytes] = {}
    base = _register(make_bert_folder(tmp_path), fetched)
    pre = BaseTextPreprocessor.fit(pa.table({"text": ["x"]}), ["text"], base=base, max_length=8)
    huge = "w1 w2 w3 " + "w4 " * 2_000_000  # 6 MB
    table = pa.table({"text": [huge, "w1 w2 w3 w4"]})
    assert len(pre.texts(table)[0]) == 8 * 128
    ids = pre.transform(table)
    torch.testing.assert_close(ids[0], pre.encode([huge[: 8 * 128]])[0])
