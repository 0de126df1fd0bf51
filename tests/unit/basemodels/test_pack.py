"""The pack: a safetensors file any reader reads each folder file back from, byte for byte."""

from __future__ import annotations

import json
import pathlib
import struct

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save

from privet.governance.basemodels import pack_folder, unpack
from privet.governance.basemodels.pack import CHUNK_BYTES
from privet.governance.errors import InvalidArgument
from tests.unit.basemodels._packs import pack_files, read_folder


@pytest.mark.parametrize("name", ["bert_folder", "gpt2_folder", "sharded_llama_folder"])
def test_safetensors_reads_every_file_back(name: str, request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> None:
    folder: pathlib.Path = request.getfixturevalue(name)
    size, stream = pack_folder(folder)
    chunks = list(stream)
    assert all(len(c) <= CHUNK_BYTES for c in chunks)
    assert size == sum(map(len, chunks))
    packed = tmp_path / "pack.safetensors"
    packed.write_bytes(b"".join(chunks))
    files = read_folder(folder)
    # The reference implementation, not Privet's reader.
    with safe_open(str(packed), framework="numpy") as f:
        assert f.metadata() == {"format": "privet-base-pack", "version": "1"}
        assert sorted(f.keys()) == [f"file:{n}" for n in sorted(files)]
        for n, data in files.items():
            array = f.get_tensor(f"file:{n}")
            assert array.dtype == np.uint8 and array.shape == (len(data),)
            assert array.tobytes() == data


def test_header_is_padded_and_files_sorted(bert_folder: pathlib.Path) -> None:
    _, stream = pack_folder(bert_folder)
    data = b"".join(stream)
    (length,) = struct.unpack("<Q", data[:8])
    assert length % 8 == 0
    header = json.loads(data[8:8 + length])
    names = [k for k in header if k != "__metadata__"]
    assert names == sorted(names)
    assert [header[n]["data_offsets"][0] for n in names] == sorted(header[n]["data_offsets"][0] for n in names)


def test_unpack_round_trip(sharded_llama_folder: pathlib.Path) -> None:
    _, stream = pack_folder(sharded_llama_folder)
    assert unpack(b"".join(stream)) == read_folder(sharded_llama_folder)


def test_empty_file_packs(bert_folder: pathlib.Path, tmp_path: pathlib.Path) -> None:
    files = {**read_folder(bert_folder), "LICENSE": b""}
    assert unpack(pack_files(files)) == files


@pytest.mark.parametrize("tensors", [
    {"weight": np.zeros(3, dtype=np.uint8)},  # not named file:
    {"file:config.json": np.zeros(3, dtype=np.float32)},  # not U8
    {"file:config.json": np.zeros((2, 2), dtype=np.uint8)},  # not one dimension
], ids=["name", "dtype", "shape"])
def test_unpack_refuses_other_tensors(tensors: dict[str, np.ndarray]) -> None:
    with pytest.raises(InvalidArgument) as err:
        unpack(save(tensors, metadata={"format": "privet-base-pack", "version": "1"}))
    assert err.value.field == "weights"


def test_unpack_refuses_a_plain_safetensors_file(bert_folder: pathlib.Path) -> None:
    with pytest.raises(InvalidArgument, match="not a base model pack") as err:
        unpack((bert_folder / "model.safetensors").read_bytes())
    assert err.value.field == "weights"


def test_unpack_refuses_a_truncated_pack(bert_folder: pathlib.Path) -> None:
    with pytest.raises(InvalidArgument, match="truncated") as err:
        unpack(pack_files(read_folder(bert_folder))[:-1])
    assert err.value.field == "weights"


def test_subfolder_is_refused(bert_folder: pathlib.Path, tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    for name, data in read_folder(bert_folder).items():
        (folder / name).write_bytes(data)
    (folder / "onnx").mkdir()
    with pytest.raises(InvalidArgument, match="flat") as err:
        pack_folder(folder)
    assert err.value.field == "files[onnx]"
