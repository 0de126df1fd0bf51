"""What the base model tests share: folders as dicts of bytes, packs built by hand (so the
registry's check meets what a client's own check would have refused), and the checker."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator, Mapping

from privet.governance.basemodels import BaseFacts, BasePackChecker
from privet.governance.basemodels.framing import pack_header


def read_folder(folder: pathlib.Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def write_folder(folder: pathlib.Path, files: Mapping[str, bytes]) -> pathlib.Path:
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def pack_files(files: Mapping[str, bytes]) -> bytes:
    """A pack of `files` with no rule applied: the framing only."""
    return pack_header({name: len(data) for name, data in files.items()}) + b"".join(files[name] for name in sorted(files))


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


def check(data: bytes, size: int = 1 << 20) -> BaseFacts:
    """The registry's check of the pack `data`, fed in pieces of `size` bytes."""
    checker = BasePackChecker()
    for piece in pieces(data, size):
        checker.feed(piece)
    return checker.finish()
