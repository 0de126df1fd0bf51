"""Packing a folder into one safetensors stream, and reading a pack back.

`pack_folder` is the client's side: it applies `rules` before it yields a byte (the
registry checks again as the pack streams in), reading only the small files and each
weights file's header; the weights are then streamed from disk, never held whole.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator, Mapping

from privet.governance.basemodels import rules
from privet.governance.basemodels.framing import MAX_PACK_HEADER, HeaderTap, members, pack_header
from privet.governance.errors import InvalidArgument

__all__ = ["CHUNK_BYTES", "pack_folder", "unpack"]

CHUNK_BYTES = 1 << 20


def pack_folder(path: str | os.PathLike[str]) -> tuple[int, Iterator[bytes]]:
    """The pack of the base model folder at `path`: its size in bytes and its bytes, in
    pieces of at most CHUNK_BYTES. InvalidArgument (naming the file) when the folder breaks
    `rules`, raised here, before the iterator exists."""
    folder = pathlib.Path(path)
    sizes = {entry.name: _size(entry) for entry in sorted(folder.iterdir())}
    rules.check_listing(sizes)  # before any file is opened: no reading of a refused file
    small = {name: _read_small(folder / name, size) for name, size in sizes.items() if not rules.is_weights(name)}
    tensors = {name: _tensor_names(folder / name, size) for name, size in sizes.items() if rules.is_weights(name)}
    rules.check_folder(sizes, small, tensors)
    header = pack_header(sizes)
    return len(header) + sum(sizes.values()), _stream(header, folder, sizes, small)


def unpack(data: bytes) -> dict[str, bytes]:
    """Every file of a pack held in memory, by path. InvalidArgument("weights") unless
    `data` is a whole pack (framing only: `rules` were applied when it was registered)."""
    tap = HeaderTap(field="weights", max_header=MAX_PACK_HEADER)
    body = tap.feed(data)
    tap.finish()
    return {m.path: bytes(body[m.begin:m.end]) for m in members(tap)}


def _size(entry: pathlib.Path) -> int:
    # A symbolic link is followed (a hub snapshot's files link to its blobs); a folder or a
    # device is refused.
    if not entry.is_file():
        raise InvalidArgument(rules.file_field(entry.name), "not a regular file: the folder must be flat")
    return entry.stat().st_size


def _read_small(path: pathlib.Path, size: int) -> bytes:
    with path.open("rb") as f:
        data = f.read(size + 1)
    _check_unchanged(path.name, size, len(data))
    return data


def _tensor_names(path: pathlib.Path, size: int) -> list[str]:
    """The tensors a weights file's header names, reading the header only; InvalidArgument
    unless it is a safetensors file of exactly the size its header implies."""
    tap = HeaderTap(field=rules.file_field(path.name))
    with path.open("rb") as f:
        tap.feed(f.read(8))
        if tap.header_bytes is not None:
            tap.feed(f.read(tap.header_bytes - 8))
    if tap.tensors is None:
        tap.finish()  # the file ends inside its header: this raises so
    assert tap.tensors is not None and tap.header_bytes is not None
    if size != tap.header_bytes + tap.body_bytes:
        raise InvalidArgument(tap.field, f"{size} bytes, but its header describes {tap.header_bytes + tap.body_bytes} (truncated or padded)")
    return list(tap.tensors)


def _stream(header: bytes, folder: pathlib.Path, sizes: Mapping[str, int], small: Mapping[str, bytes]) -> Iterator[bytes]:
    yield header
    for name in sorted(sizes):
        if name in small:
            data = small[name]
            for start in range(0, len(data), CHUNK_BYTES):
                yield data[start:start + CHUNK_BYTES]
        else:
            yield from _stream_file(folder / name, sizes[name])


def _stream_file(path: pathlib.Path, size: int) -> Iterator[bytes]:
    sent = 0
    with path.open("rb") as f:
        while piece := f.read(min(CHUNK_BYTES, size + 1 - sent)):
            sent += len(piece)
            if sent > size:
                break
            yield piece
    _check_unchanged(path.name, size, sent)


def _check_unchanged(name: str, size: int, read: int) -> None:
    # The pack's header promised `size` bytes: a file that grew or shrank since would
    # make the pack a lie, which the registry would refuse anyway.
    if read != size:
        raise InvalidArgument(rules.file_field(name), f"changed while it was packed ({size} bytes, then {read})")
