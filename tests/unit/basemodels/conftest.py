"""Tiny model folders, built once per session (transformers takes seconds to import)."""

from __future__ import annotations

import pathlib

import pytest

from tests.unit.basemodels.tiny_models import make_bert_folder, make_gpt2_folder, make_llama_folder


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return tmp_path_factory.mktemp("basemodels")


@pytest.fixture(scope="session")
def bert_folder(models_dir: pathlib.Path) -> pathlib.Path:
    return make_bert_folder(models_dir)


@pytest.fixture(scope="session")
def gpt2_folder(models_dir: pathlib.Path) -> pathlib.Path:
    return make_gpt2_folder(models_dir)


@pytest.fixture(scope="session")
def sharded_llama_folder(models_dir: pathlib.Path) -> pathlib.Path:
    folder = make_llama_folder(models_dir, max_shard_size="20KB")
    assert (folder / "model.safetensors.index.json").exists() and (folder / "model-00002-of-00002.safetensors").exists()
    return folder
