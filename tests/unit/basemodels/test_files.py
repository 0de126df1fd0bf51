"""A registered base's files: used only when every file is the one registered."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
import torch
from safetensors.numpy import save
from tokenizers import Tokenizer

from privet.governance.basemodels import BaseFiles, pack_folder
from privet.governance.errors import DataLoss, InvalidArgument, NotFound
from tests.unit.basemodels._packs import check, pack_files, read_folder
from tests.unit.basemodels.tiny_models import tiny_llama


def _registered(folder: pathlib.Path) -> tuple[bytes, dict[str, dict[str, object]]]:
    _, stream = pack_folder(folder)
    data = b"".join(stream)
    return data, check(data).files


def test_files_of_a_registered_base(bert_folder: pathlib.Path) -> None:
    data, manifest = _registered(bert_folder)
    files = BaseFiles.from_pack(data, manifest)
    assert files.names == sorted(read_folder(bert_folder))
    assert files.config == json.loads((bert_folder / "config.json").read_text())
    assert files.file("model.safetensors") == (bert_folder / "model.safetensors").read_bytes()
    tokenizer = Tokenizer.from_str(files.tokenizer_json)
    assert tokenizer.padding is not None and tokenizer.padding["pad_token"] == "[PAD]"
    with pytest.raises(NotFound):
        files.file("vocab.txt")


def test_sharded_weights_equal_the_state_dict(sharded_llama_folder: pathlib.Path) -> None:
    data, manifest = _registered(sharded_llama_folder)
    weights = BaseFiles.from_pack(data, manifest).weights()
    state = tiny_llama().state_dict()
    assert sorted(weights) == sorted(state)
    for name, tensor in state.items():
        assert torch.equal(weights[name], tensor), name


def test_a_flipped_byte_is_data_loss(bert_folder: pathlib.Path) -> None:
    data, manifest = _registered(bert_folder)
    flipped = bytearray(data)
    flipped[-1] ^= 1  # the last byte of the last file in sorted order
    last = max(manifest)
    with pytest.raises(DataLoss, match=last.replace(".", r"\.")):
        BaseFiles.from_pack(bytes(flipped), manifest)


def test_a_missing_file_is_data_loss(bert_folder: pathlib.Path) -> None:
    files = read_folder(bert_folder)
    _, manifest = _registered(bert_folder)
    del files["tokenizer.json"]
    with pytest.raises(DataLoss, match="tokenizer.json"):
        BaseFiles.from_pack(pack_files(files), manifest)


def test_an_extra_file_is_data_loss(bert_folder: pathlib.Path) -> None:
    files = read_folder(bert_folder)
    _, manifest = _registered(bert_folder)
    files["README.md"] = b"# hello\n"
    with pytest.raises(DataLoss, match="README.md"):
        BaseFiles.from_pack(pack_files(files), manifest)


def test_a_different_size_is_data_loss(bert_folder: pathlib.Path) -> None:
    data, manifest = _registered(bert_folder)
    manifest = {**manifest, "config.json": {**manifest["config.json"], "size": 1}}
    with pytest.raises(DataLoss, match="config.json"):
        BaseFiles.from_pack(data, manifest)


def test_weights_refuses_a_tensor_in_two_shards() -> None:
    # Registration refuses this folder (test_refusals); BaseFiles does not rely on it.
    shard = save({"w": np.zeros(2, dtype=np.float32)})
    files = BaseFiles({"model-00001-of-00002.safetensors": shard, "model-00002-of-00002.safetensors": shard})
    with pytest.raises(InvalidArgument, match="also in"):
        files.weights()
