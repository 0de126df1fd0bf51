"""What a folder may not hold, refused alike by the packing client and by the registry.

Each case changes a good folder's files; the client (`pack_folder`, on disk) and the
registry (`BasePackChecker`, on a pack built without any rule) must refuse it naming the
same field. Cases a folder on disk cannot hold are the registry's alone."""

from __future__ import annotations

import io
import json
import pathlib
import pickle
from collections.abc import Callable

import numpy as np
import pytest
import torch
from safetensors.numpy import save

from privet.governance.basemodels import pack_folder, rules
from privet.governance.basemodels.framing import pack_header
from privet.governance.errors import InvalidArgument
from tests.unit.basemodels._packs import check, pack_files, read_folder, write_folder

Files = dict[str, bytes]
INDEX = "model.safetensors.index.json"
SHARD_1, SHARD_2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"


def _with_config(**changes: object) -> Callable[[Files], None]:
    def change(files: Files) -> None:
        config = json.loads(files["config.json"])
        config.update(changes)
        files["config.json"] = json.dumps(config).encode()
    return change


def _torch_zip() -> bytes:
    out = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, out)
    return out.getvalue()


def _move_tensor_in_index(files: Files) -> None:
    index = json.loads(files[INDEX])
    name = next(k for k, v in index["weight_map"].items() if v == SHARD_1)
    index["weight_map"][name] = SHARD_2
    files[INDEX] = json.dumps(index).encode()


def _duplicate_tensor(files: Files) -> None:
    # A tensor of shard 1 also stored in shard 2 (the index names one of them).
    index = json.loads(files[INDEX])
    name = next(k for k, v in index["weight_map"].items() if v == SHARD_1)
    files[SHARD_2] = save({name: np.zeros(2, dtype=np.float32), "extra": np.zeros(1, dtype=np.float32)})


# (case, folder, change, field, message)
CASES: list[tuple[str, str, Callable[[Files], None], str, str]] = [
    ("pytorch_bin", "bert", lambda f: f.update({"pytorch_model.bin": pickle.dumps({"w": 1})}), "files[pytorch_model.bin]", "pickle"),
    ("ckpt", "bert", lambda f: f.update({"model.ckpt": b"x"}), "files[model.ckpt]", "pickle"),
    ("code", "bert", lambda f: f.update({"modeling_x.py": b"import os\n"}), "files[modeling_x.py]", "code"),
    ("unknown_file", "bert", lambda f: f.update({"model.onnx": b"x"}), "files[model.onnx]", "may hold"),
    ("hidden_file", "bert", lambda f: f.update({".gitattributes": b"*.bin lfs\n"}), "files[.gitattributes]", "hidden"),
    ("auto_map", "bert", _with_config(auto_map={"AutoModel": "modeling_x.XModel"}), "config.json", "auto_map"),
    ("nested_remote_code", "bert", _with_config(text_config={"trust_remote_code": True}), "config.json", "trust_remote_code"),
    ("tokenizer_auto_map", "bert", lambda f: f.update({"tokenizer_config.json": b'{"auto_map": {"AutoTokenizer": ["x.T", null]}}'}),
     "files[tokenizer_config.json]", "auto_map"),
    ("not_a_model", "bert", _with_config(model_type="not-a-model"), "config.json", "not one transformers implements"),
    ("no_model_type", "bert", lambda f: f.update({"config.json": b"{}"}), "config.json", "model_type"),
    ("nan_in_config", "bert", lambda f: f.update({"config.json": f["config.json"].replace(b'"layer_norm_eps": 1e-12', b'"layer_norm_eps": NaN')}),
     "config.json", "not valid JSON"),
    ("deep_config", "bert", lambda f: f.update({"config.json": b'{"model_type": "bert", "x": ' + b"[" * 100 + b"]" * 100 + b"}"}),
     "config.json", "nested deeper"),
    ("no_config", "bert", lambda f: f.pop("config.json"), "files[config.json]", "required"),
    ("no_tokenizer", "bert", lambda f: f.pop("tokenizer.json"), "files[tokenizer.json]", "tokenizers"),
    ("bad_tokenizer", "bert", lambda f: f.update({"tokenizer.json": b'{"model": 1}'}), "files[tokenizer.json]", "cannot load"),
    ("no_weights", "bert", lambda f: f.pop("model.safetensors"), "files", "no weights"),
    ("pickle_as_safetensors", "bert", lambda f: f.update({"model.safetensors": pickle.dumps({"w": list(range(64))}, protocol=4)}),
     "files[model.safetensors]", "not a safetensors file"),
    ("pickle_as_tokenizer", "bert", lambda f: f.update({"tokenizer.json": pickle.dumps({"w": 1}, protocol=5)}), "files[tokenizer.json]", "pickle"),
    ("torch_zip_as_vocab", "bert", lambda f: f.update({"vocab.txt": _torch_zip()}), "files[vocab.txt]", "torch.save zip"),
    ("binary_readme", "bert", lambda f: f.update({"README.md": b"\xff\xfe"}), "files[README.md]", "UTF-8"),
    ("truncated_weights", "bert", lambda f: f.update({"model.safetensors": f["model.safetensors"][:-1]}), "files[model.safetensors]", "bytes"),
    ("padded_weights", "bert", lambda f: f.update({"model.safetensors": f["model.safetensors"] + b"\0"}), "files[model.safetensors]", "bytes"),
    ("shard_without_index", "bert", lambda f: f.update({"model-00001-of-00001.safetensors": f["model.safetensors"]}),
     "files[model-00001-of-00001.safetensors]", "index"),
    ("index_names_missing_shard", "llama", lambda f: f.pop(SHARD_2), f"files[{SHARD_2}]", "not in the folder"),
    ("shard_not_in_index", "llama", lambda f: f.update({"model-00003-of-00003.safetensors": f[SHARD_2]}),
     "files[model-00003-of-00003.safetensors]", "not named by"),
    ("tensor_in_other_shard", "llama", _move_tensor_in_index, f"files[{INDEX}]", "the shard the index names"),
    ("tensor_twice", "llama", _duplicate_tensor, f"files[{SHARD_2}]", "also in"),
    ("too_many_files", "bert", lambda f: f.update({f"x{i}": b"" for i in range(64)}), "files", "at most 64"),
]


@pytest.fixture
def folders(bert_folder: pathlib.Path, sharded_llama_folder: pathlib.Path) -> dict[str, Files]:
    return {"bert": read_folder(bert_folder), "llama": read_folder(sharded_llama_folder)}


@pytest.mark.parametrize(("case", "base", "change", "field", "message"), CASES, ids=[c[0] for c in CASES])
def test_client_and_registry_refuse(case: str, base: str, change: Callable[[Files], None], field: str, message: str,
                                    folders: dict[str, Files], tmp_path: pathlib.Path) -> None:
    files = folders[base]
    change(files)
    with pytest.raises(InvalidArgument, match=message) as client:
        pack_folder(write_folder(tmp_path / case, files))
    assert client.value.field == field
    with pytest.raises(InvalidArgument, match=message) as registry:
        check(pack_files(files), 7)
    assert registry.value.field == field


def test_unchanged_folders_pass(folders: dict[str, Files]) -> None:
    for files in folders.values():
        check(pack_files(files))


@pytest.mark.parametrize("name", ["../config.json", "sub/config.json", "sub\\config.json", "a\x00b", "x" * 129, ""])
def test_registry_refuses_paths(name: str, folders: dict[str, Files]) -> None:
    files = {**folders["bert"], name: b"{}"}
    with pytest.raises(InvalidArgument) as err:
        check(pack_files(files))
    assert err.value.field.startswith("files[")


def test_registry_refuses_by_name_before_the_body(folders: dict[str, Files]) -> None:
    files = {**folders["bert"], "pytorch_model.bin": b"\x80\x04" + b"\0" * 100}
    data = pack_files(files)
    header = pack_header({name: len(content) for name, content in files.items()})
    checker_input = data[:len(header)]  # the header alone: no file's bytes yet
    with pytest.raises(InvalidArgument) as err:
        check(checker_input)
    assert err.value.field == "files[pytorch_model.bin]"


@pytest.mark.parametrize(("cut", "message"), [(-1, "truncated"), (10, "ends inside the header")])
def test_registry_refuses_a_truncated_pack(cut: int, message: str, folders: dict[str, Files]) -> None:
    with pytest.raises(InvalidArgument, match=message) as err:
        check(pack_files(folders["bert"])[:cut], 7)
    assert err.value.field == "weights"


def test_registry_refuses_bytes_past_the_end(folders: dict[str, Files]) -> None:
    with pytest.raises(InvalidArgument, match="past the end") as err:
        check(pack_files(folders["bert"]) + b"\0", 7)
    assert err.value.field == "weights"


def test_registry_refuses_a_plain_model_file(bert_folder: pathlib.Path) -> None:
    with pytest.raises(InvalidArgument, match="not a base model pack") as err:
        check((bert_folder / "model.safetensors").read_bytes())
    assert err.value.field == "weights"


def test_registry_refuses_a_pickle_upload() -> None:
    with pytest.raises(InvalidArgument, match="not a safetensors file") as err:
        check(pickle.dumps({"w": list(range(100))}, protocol=4))
    assert err.value.field == "weights"


def test_registry_bounds_the_tensors_as_they_arrive(folders: dict[str, Files], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rules, "MAX_TENSORS", 10)
    with pytest.raises(InvalidArgument, match="at most 10") as err:
        check(pack_files(folders["llama"]))
    assert err.value.field == "files"


def test_weights_that_start_like_a_pickle_are_safetensors(folders: dict[str, Files], tmp_path: pathlib.Path) -> None:
    # A header of 65,536 + 640 bytes: the file starts 80 02, a pickle's marker; it is judged
    # as the safetensors file it is (the real weights, their header padded by metadata).
    from safetensors.numpy import load

    tensors = load(folders["bert"]["model.safetensors"])
    bare = len(save(tensors, metadata={"pad": ""}))
    near = 65_536 + 640 - (bare - sum(t.nbytes for t in tensors.values()) - 8)
    weights = next(w for pad in range(max(near - 64, 0), near + 64) if (w := save(tensors, metadata={"pad": "x" * pad}))[:2] == b"\x80\x02")
    files = {**folders["bert"], "model.safetensors": weights}
    assert check(pack_files(files)).parameters == sum(t.size for t in tensors.values())
    pack_folder(write_folder(tmp_path / "m", files))


@pytest.mark.parametrize("edit", [{"num_hidden_layers": 1}, {"num_hidden_layers": 4}, {"hidden_size": 32}, {"model_type": "gpt2"}])
def test_a_config_that_contradicts_its_weights_is_refused(folders: dict[str, Files], edit: dict) -> None:
    # The registry records the config and model type as facts: they must describe the weights.
    config = {**json.loads(folders["bert"]["config.json"]), **edit}
    files = {**folders["bert"], "config.json": json.dumps(config).encode()}
    with pytest.raises(InvalidArgument) as err:
        check(pack_files(files))
    assert err.value.field == "config.json"
