"""The registry's check of a pack as it streams in: the manifest, the parameters, the facts."""

from __future__ import annotations

import hashlib
import json
import pathlib

import pytest
from safetensors import safe_open

from privet.governance.basemodels import BaseFacts, pack_folder
from tests.unit.basemodels._packs import check, read_folder
from tests.unit.basemodels.tiny_models import tiny_bert, tiny_gpt2, tiny_llama

BUILDERS = {"bert_folder": tiny_bert, "gpt2_folder": tiny_gpt2, "sharded_llama_folder": tiny_llama}


def _pack(folder: pathlib.Path) -> bytes:
    _, stream = pack_folder(folder)
    return b"".join(stream)


def _stored_tensors(folder: pathlib.Path) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for path in folder.glob("*.safetensors"):
        with safe_open(str(path), framework="pt") as f:
            shapes.update({k: tuple(f.get_slice(k).get_shape()) for k in f.keys()})
    return shapes


@pytest.mark.parametrize("size", [1, 7, 1 << 20])
def test_manifest_and_parameters_in_any_chunking(size: int, bert_folder: pathlib.Path) -> None:
    facts = check(_pack(bert_folder), size)
    assert facts.files == {name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)} for name, data in read_folder(bert_folder).items()}
    assert facts.parameters == sum(p.numel() for p in tiny_bert().parameters())
    assert facts.model_type == "bert" and facts.architectures == ["BertModel"]


@pytest.mark.parametrize("name", ["gpt2_folder", "sharded_llama_folder"])
def test_parameters_are_what_the_files_hold(name: str, request: pytest.FixtureRequest) -> None:
    folder: pathlib.Path = request.getfixturevalue(name)
    facts = check(_pack(folder), 7)
    stored = _stored_tensors(folder)
    assert facts.tensor_names == sorted(stored)
    assert facts.parameters == sum(_elements(shape) for shape in stored.values())
    # Tied weights (GPT-2's lm_head) are stored once, as model.parameters() counts them.
    assert facts.parameters == sum(p.numel() for p in BUILDERS[name]().parameters())
    assert facts.parameters_by_dtype == {"F32": facts.parameters}
    assert facts.config == json.loads((folder / "config.json").read_text())


def test_facts_json_round_trip(sharded_llama_folder: pathlib.Path) -> None:
    facts = check(_pack(sharded_llama_folder))
    doc = json.loads(json.dumps(facts.to_json()))
    assert BaseFacts.from_json(doc) == facts


def _elements(shape: tuple[int, ...]) -> int:
    count = 1
    for d in shape:
        count *= d
    return count
