"""The pack's format: a safetensors file whose tensors are a folder's files.

Each file is a `U8` tensor of shape `[size]` named `file:<path>`, its data exactly the
file's bytes, in sorted path order; `__metadata__` is `{"format": "privet-base-pack",
"version": "1"}`. Any safetensors reader can read a file back; Privet's own reads go
through the registry's checker (`SafetensorsChecker`), whose `TensorInfo` carries no
offsets, so `HeaderTap` keeps a copy of the header the checker accepted to read them from.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from privet.governance.basemodels.rules import MAX_PATH_CHARS
from privet.governance.errors import InvalidArgument
from privet.governance.registry.weights_format import MAX_HEADER_BYTES, SafetensorsChecker, TensorInfo

__all__ = ["MAX_PACK_HEADER", "PACK_METADATA", "PREFIX", "HeaderTap", "Member", "members", "pack_header"]

PREFIX = "file:"
PACK_METADATA = {"format": "privet-base-pack", "version": "1"}
# A pack's header lists at most `rules.MAX_FILES` short names (about 100 bytes each): bounded
# far below the 16 MiB a model's header may take, so a hostile header is refused unread.
MAX_PACK_HEADER = 64 << 10
_LENGTH = struct.Struct("<Q")


@dataclass(frozen=True)
class Member:
    """One file of a pack: its path and its bytes' span in the pack's body."""

    path: str
    begin: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.begin


def pack_header(sizes: Mapping[str, int]) -> bytes:
    """The length prefix and header of the pack of files of these sizes."""
    header: dict[str, Any] = {"__metadata__": PACK_METADATA}
    offset = 0
    for path in sorted(sizes):
        header[PREFIX + path] = {"dtype": "U8", "shape": [sizes[path]], "data_offsets": [offset, offset + sizes[path]]}
        offset += sizes[path]
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # as safetensors pads: the body starts 8-byte aligned
    return _LENGTH.pack(len(raw)) + raw


class HeaderTap:
    """A `SafetensorsChecker` that also hands out the header it accepted, as soon as it is
    complete: `feed` returns the part of each piece past the header (the body's bytes)."""

    def __init__(self, *, field: str, max_header: int = MAX_HEADER_BYTES) -> None:
        self.field = field
        self._checker = SafetensorsChecker(field=field, max_header=max_header)
        self._head = bytearray()
        self.header_bytes: int | None = None  # the length prefix and the header
        self.tensors: dict[str, dict[str, Any]] | None = None  # the header less __metadata__
        self.metadata: dict[str, str] = {}

    @property
    def body_bytes(self) -> int:
        """The body's length the header implies (0 before it is complete)."""
        return max((spec["data_offsets"][1] for spec in (self.tensors or {}).values()), default=0)

    def feed(self, data: bytes | bytearray | memoryview) -> memoryview:
        view = memoryview(data).cast("B")
        self._checker.feed(view)  # raises on anything that is not safetensors
        if self.tensors is not None:
            return view
        if self.header_bytes is None:
            take = _LENGTH.size - len(self._head)
            self._head += view[:take]
            view = view[take:]
            if len(self._head) < _LENGTH.size:
                return view
            self.header_bytes = _LENGTH.size + _LENGTH.unpack(self._head)[0]
        take = self.header_bytes - len(self._head)
        self._head += view[:take]
        if len(self._head) == self.header_bytes:
            # The checker has parsed these very bytes: valid JSON of bounded depth, no
            # duplicate keys, every tensor's offsets checked.
            header = json.loads(bytes(self._head[_LENGTH.size:]))
            self.metadata = header.pop("__metadata__", None) or {}
            self.tensors = header
            self._head = bytearray()
        return view[take:]

    def finish(self) -> list[TensorInfo]:
        """The checker's end-of-stream check: raises unless the body was exactly complete."""
        return self._checker.finish()


def members(tap: HeaderTap) -> list[Member]:
    """The files of a pack whose header `tap` has read, in body order. InvalidArgument
    (the tap's field) unless it is a pack: the metadata above and only `file:` U8 vectors.
    The names themselves are `rules`' to judge."""
    if tap.tensors is None:
        raise ValueError("the header is not complete")
    if tap.metadata != PACK_METADATA:
        raise InvalidArgument(tap.field, f"not a base model pack: __metadata__ must be {PACK_METADATA} (pack a folder with privet.governance.basemodels.pack_folder)")
    found: list[Member] = []
    for name, spec in tap.tensors.items():
        if not name.startswith(PREFIX):
            raise InvalidArgument(tap.field, f"tensor {name[:MAX_PATH_CHARS]!r}: a pack holds only tensors named {PREFIX}<file name>")
        if spec["dtype"] != "U8" or len(spec["shape"]) != 1:
            raise InvalidArgument(tap.field, f"tensor {name!r}: a file is a U8 tensor of one dimension")
        begin, end = spec["data_offsets"]
        found.append(Member(name[len(PREFIX):], begin, end))
    return sorted(found, key=lambda m: (m.begin, m.end))
