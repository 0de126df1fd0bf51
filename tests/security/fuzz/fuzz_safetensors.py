"""Fuzz target: the safetensors header parser (governance.registry.weights_format), whole
(`parse_safetensors`) and streamed in pieces (`SafetensorsChecker.feed`/`finish`).

Contract: any bytes either validate as safetensors or raise InvalidArgument. Nothing else
escapes, no input hangs, and the streamed check agrees with the whole-file check.

Two kinds of input, chosen by the first byte: raw bytes (the length prefix, header and body
as given), or a header built from the input as JSON values of every type under the keys
the format uses (type confusion that byte mutation of a valid file rarely reaches)."""

from __future__ import annotations

if __name__ == "__main__":
    import atheris

    with atheris.instrument_imports(include=["governance"]):
        from privet.governance.registry import weights_format
else:
    from privet.governance.registry import weights_format

import json
import struct

from privet.governance.errors import InvalidArgument
from tests.security.fuzz._harness import Cursor, KnownGaps, fuzz_main

WORDS = ("dtype", "shape", "data_offsets", "__metadata__", "F32", "BF16", "I8", "U8", "BOOL", "F64", "F4", "w", "a.b")

KNOWN_GAPS = KnownGaps()  # none open: every input parses or raises the documented error


def _file(header: object, body: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


SEEDS = [
    b"\x07" + _file({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}, bytes(16)),
    b"\x03" + _file({"__metadata__": {"format": "pt"}, "a": {"dtype": "I8", "shape": [3], "data_offsets": [0, 3]},
                     "b": {"dtype": "BF16", "shape": [], "data_offsets": [3, 5]}}, bytes(5)),
    b"\x00" + _file({"e": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]}}),
    b"\x81\x07\x09\x04\x05\x00\x04\x02\x08\x02\x02\x01\x02\x04\x02\x07\x02\x02\x00\x02\x05",
]


def _structured(cursor: Cursor) -> bytes:
    """A header map of tensor names to specs whose parts are valid or any JSON value."""
    tensors: dict[str, object] = {}
    for index in range(1 + cursor.byte() % 3):
        spec: dict[str, object] = {}
        for key, valid in (("dtype", "F32"), ("shape", [1]), ("data_offsets", [0, 4])):
            choice = cursor.byte() % 4
            if choice == 0:
                spec[key] = valid
            elif choice != 1:  # 1: leave the key out
                spec[key] = cursor.value(WORDS)
        if cursor.byte() % 5 == 0:
            spec[cursor.pick(WORDS)] = cursor.value(WORDS)
        tensors[f"t{index}" if cursor.byte() % 4 else "__metadata__"] = spec if cursor.byte() % 6 else cursor.value(WORDS)
    try:
        raw = json.dumps(tensors, allow_nan=True).encode()
    except (TypeError, ValueError):
        raw = b"{}"
    return struct.pack("<Q", len(raw)) + raw + bytes(cursor.byte() % 32)


def _whole(data: bytes) -> list | None:
    try:
        return weights_format.parse_safetensors(data)
    except InvalidArgument:
        return None


def _streamed(data: bytes, piece: int) -> list | None:
    checker = weights_format.SafetensorsChecker()
    try:
        for i in range(0, len(data), piece):
            checker.feed(data[i : i + piece])
        return checker.finish()
    except InvalidArgument:
        return None


def check(data: bytes) -> None:
    cursor = Cursor(data)
    mode = cursor.byte()
    piece = 1 + mode % 17
    body = _structured(cursor) if mode & 0x80 else cursor.rest()
    try:
        whole = _whole(body)
        streamed = _streamed(body, piece)
    except Exception as exc:
        if exc not in KNOWN_GAPS:
            raise
        return
    assert whole == streamed, f"whole-file and streamed ({piece}-byte pieces) checks disagree: {whole} vs {streamed}"


if __name__ == "__main__":
    fuzz_main(check)
