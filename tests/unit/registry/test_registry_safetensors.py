"""The safetensors check: real files pass in any chunking; pickles and malformed files are refused."""

from __future__ import annotations

import io
import json
import pickle
import struct

import numpy as np
import pytest
import torch
from safetensors.numpy import save
from safetensors.torch import save as torch_save

from privet.governance.errors import InvalidArgument
from privet.governance.registry.weights_format import (
    MAX_HEADER_BYTES,
    SafetensorsChecker,
    TensorInfo,
    parse_safetensors,
)


def _file(header: dict, body: bytes, *, pad: bytes = b"") -> bytes:
    raw = json.dumps(header).encode() + pad
    return struct.pack("<Q", len(raw)) + raw + body


def _weights() -> bytes:
    return save({"layer.weight": np.arange(24, dtype=np.float32).reshape(4, 6), "layer.bias": np.zeros(4, dtype=np.float64), "steps": np.array([7], dtype=np.int64)})


def test_real_file_tensors_are_recorded() -> None:
    tensors = parse_safetensors(_weights())
    assert sorted(tensors, key=lambda t: t.name) == [
        TensorInfo("layer.bias", "F64", (4,)),
        TensorInfo("layer.weight", "F32", (4, 6)),
        TensorInfo("steps", "I64", (1,)),
    ]


def test_torch_file_with_metadata_and_bf16() -> None:
    data = torch_save({"w": torch.ones(3, 2, dtype=torch.bfloat16), "empty": torch.zeros(0, 5)}, metadata={"format": "pt"})
    assert {t.name: (t.dtype, t.shape) for t in parse_safetensors(data)} == {"w": ("BF16", (3, 2)), "empty": ("F32", (0, 5))}


@pytest.mark.parametrize("piece", [1, 7, 8, 9, 64, 1 << 20])
def test_any_chunking_gives_the_same_answer(piece: int) -> None:
    data = _weights()
    checker = SafetensorsChecker()
    for i in range(0, len(data), piece):
        checker.feed(data[i : i + piece])
    assert checker.finish() == parse_safetensors(data)


def _refused(data: bytes, match: str) -> InvalidArgument:
    with pytest.raises(InvalidArgument, match=match) as err:
        parse_safetensors(data)
    assert err.value.field == "weights"
    return err.value


def test_pickle_is_refused() -> None:
    _refused(pickle.dumps({"w": [1.0, 2.0]}), "not a safetensors file")


def test_torch_save_zip_is_refused() -> None:
    buffer = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buffer)
    _refused(buffer.getvalue(), "not a safetensors file")


def test_text_and_empty_inputs_are_refused() -> None:
    _refused(b"hello world, not weights at all", "not a safetensors file")
    _refused(b"", "ends inside the header")
    _refused(b"\x10\x00\x00", "ends inside the header")


def test_oversized_header_is_refused_before_it_is_read() -> None:
    checker = SafetensorsChecker()
    with pytest.raises(InvalidArgument, match="header length"):
        checker.feed(struct.pack("<Q", MAX_HEADER_BYTES + 1))


def test_header_that_is_not_an_object_is_refused() -> None:
    _refused(struct.pack("<Q", 4) + b"[1] ", "not a JSON object")
    _refused(struct.pack("<Q", 4) + b"{1:2", "not valid JSON")


def test_duplicate_tensor_names_are_refused() -> None:
    raw = b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}'
    _refused(struct.pack("<Q", len(raw)) + raw + b"\x00\x00", "duplicate JSON key")


def test_header_padding_with_spaces_is_allowed() -> None:
    data = _file({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}, b"\x01\x02", pad=b"    ")
    assert parse_safetensors(data) == [TensorInfo("a", "U8", (2,))]


@pytest.mark.parametrize(
    "header,body,match",
    [
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\x00" * 9, "past the end"),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\x00" * 7, "truncated"),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\x00" * 4, "do not hold"),
        ({"a": {"dtype": "U8", "shape": [2], "data_offsets": [1, 3]}}, b"\x00" * 3, "gaps and overlaps"),
        ({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}, "b": {"dtype": "U8", "shape": [2], "data_offsets": [1, 3]}}, b"\x00" * 3, "gaps and overlaps"),
        ({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}, "b": {"dtype": "U8", "shape": [1], "data_offsets": [3, 4]}}, b"\x00" * 4, "gaps and overlaps"),
        ({"a": {"dtype": "F4", "shape": [2], "data_offsets": [0, 1]}}, b"\x00", "unsupported dtype"),
        ({"a": {"dtype": "U8", "shape": [-1], "data_offsets": [0, 0]}}, b"", "shape"),
        ({"a": {"dtype": "U8", "shape": [1], "data_offsets": [1, 0]}}, b"\x00", "data_offsets"),
        ({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1], "extra": 1}}, b"\x00", "exactly"),
        ({"a": {"dtype": "U8", "shape": [True], "data_offsets": [0, 1]}}, b"\x00", "shape"),
        ({"__metadata__": {"k": 1}, "a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}, b"\x00", "__metadata__"),
        ({"__metadata__": {"k": "v"}}, b"", "no tensors"),
    ],
    ids=["trailing-bytes", "truncated", "size-mismatch", "gap-at-start", "overlap", "gap-between", "sub-byte-dtype", "negative-dim", "reversed-offsets", "extra-key", "bool-dim", "bad-metadata", "no-tensors"],
)
def test_malformed_headers_are_refused(header: dict, body: bytes, match: str) -> None:
    _refused(_file(header, body), match)
