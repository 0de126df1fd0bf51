"""The only weights format the registry accepts: safetensors, checked as it streams in.

Layout (https://github.com/huggingface/safetensors, format 1): an unsigned 64-bit
little-endian header length N, N bytes of UTF-8 JSON mapping tensor names to
{"dtype", "shape", "data_offsets": [begin, end]} (plus an optional "__metadata__" map of
strings), then the byte buffer. Offsets are relative to the buffer's start.

Anything else (a pickle, a zip written by torch.save, a truncated or padded file) is refused
with InvalidArgument naming the request field: nothing in it is ever deserialised beyond
the JSON header, whose size is bounded before it is read and whose nesting is bounded
(`governance.jsonlimits`) before it is parsed.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

from privet.governance.errors import InvalidArgument
from privet.governance.jsonlimits import check_json_depth, object_without_duplicates

__all__ = ["DTYPE_SIZES", "MAX_HEADER_BYTES", "SafetensorsChecker", "TensorInfo", "parse_safetensors"]

# Bytes per element of each dtype the registry accepts (sub-byte dtypes are refused).
DTYPE_SIZES: dict[str, int] = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8, "C64": 8,
}
# A header larger than this is refused before it is buffered (real models stay far below).
MAX_HEADER_BYTES = 16 << 20
_LENGTH = struct.Struct("<Q")
_NOT_SAFETENSORS = "not a safetensors file (pickle and every other format are refused)"


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


class SafetensorsChecker:
    """Validate a safetensors stream piece by piece: `feed(data)` each piece in order, then
    `finish()` for the tensors. Memory: the header only (at most `max_header` bytes).

    Raises InvalidArgument(field, ...) from `feed` as soon as the bytes seen cannot be a
    safetensors file (bad header, body longer than the offsets), and from `finish` when the
    body is shorter than the offsets say.
    """

    def __init__(self, *, field: str = "weights", max_header: int = MAX_HEADER_BYTES) -> None:
        self._field = field
        self._max_header = max_header
        self._head = bytearray()  # the length prefix and header until parsed
        self._header_len: int | None = None
        self._tensors: list[TensorInfo] | None = None
        self._body_expected = 0
        self._body_seen = 0

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        if self._tensors is None:
            view = self._feed_header(view)
            if self._tensors is None:
                return
        self._body_seen += len(view)
        if self._body_seen > self._body_expected:
            raise InvalidArgument(self._field, "bytes past the end of the last tensor (the offsets must cover the body exactly)")

    def finish(self) -> list[TensorInfo]:
        if self._tensors is None:
            raise InvalidArgument(self._field, f"{_NOT_SAFETENSORS}: the stream ends inside the header")
        if self._body_seen != self._body_expected:
            raise InvalidArgument(self._field, f"truncated: the tensors need {self._body_expected} bytes of data, the stream has {self._body_seen}")
        return list(self._tensors)

    def _feed_header(self, view: memoryview) -> memoryview:
        if self._header_len is None:
            take = min(len(view), _LENGTH.size - len(self._head))
            self._head += view[:take]
            view = view[take:]
            if len(self._head) < _LENGTH.size:
                return view
            (length,) = _LENGTH.unpack(self._head)
            if length < 2 or length > self._max_header:
                raise InvalidArgument(self._field, f"{_NOT_SAFETENSORS}: header length {length} is outside 2..{self._max_header}")
            self._header_len = length
            self._head.clear()
        take = min(len(view), self._header_len - len(self._head))
        if not self._head and take and view[0] != ord("{"):
            raise InvalidArgument(self._field, f"{_NOT_SAFETENSORS}: the header is not a JSON object")
        self._head += view[:take]
        view = view[take:]
        if len(self._head) == self._header_len:
            self._tensors, self._body_expected = _parse_header(bytes(self._head), self._field)
            self._head = bytearray()
        return view


def parse_safetensors(data: bytes, *, field: str = "weights") -> list[TensorInfo]:
    """Validate a whole safetensors file held in memory; return its tensors (file order)."""
    checker = SafetensorsChecker(field=field)
    checker.feed(data)
    return checker.finish()


def _parse_header(raw: bytes, field: str) -> tuple[list[TensorInfo], int]:
    """Tensors in header order and the body length their offsets imply."""
    check_json_depth(raw, field=field)  # a real header nests 3 deep; json.loads recurses per level
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=object_without_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidArgument(field, f"{_NOT_SAFETENSORS}: the header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise InvalidArgument(field, f"{_NOT_SAFETENSORS}: the header is not a JSON object")
    metadata = header.pop("__metadata__", None)
    if metadata is not None and not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise InvalidArgument(field, "__metadata__ must map strings to strings")
    if not header:
        raise InvalidArgument(field, "the file holds no tensors")
    tensors: list[TensorInfo] = []
    spans: list[tuple[int, int, str]] = []
    for name, spec in header.items():
        if not isinstance(spec, dict) or set(spec) != {"dtype", "shape", "data_offsets"}:
            raise InvalidArgument(field, f"tensor {name!r}: needs exactly dtype, shape and data_offsets")
        dtype, shape, offsets = spec["dtype"], spec["shape"], spec["data_offsets"]
        if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
            raise InvalidArgument(field, f"tensor {name!r}: unsupported dtype {dtype!r}")
        if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
            raise InvalidArgument(field, f"tensor {name!r}: shape must be a list of non-negative integers")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets) and offsets[0] <= offsets[1]):
            raise InvalidArgument(field, f"tensor {name!r}: data_offsets must be [begin, end] with 0 <= begin <= end")
        elements = 1
        for d in shape:
            elements *= d
        if offsets[1] - offsets[0] != elements * DTYPE_SIZES[dtype]:
            raise InvalidArgument(field, f"tensor {name!r}: {offsets[1] - offsets[0]} bytes do not hold a {dtype} tensor of shape {shape}")
        tensors.append(TensorInfo(name, dtype, tuple(shape)))
        spans.append((offsets[0], offsets[1], name))
    end = 0
    for begin, stop, name in sorted(spans):
        if begin != end:
            raise InvalidArgument(field, f"tensor {name!r}: data starts at {begin}, expected {end} (gaps and overlaps are refused)")
        end = stop
    return tensors, end


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
