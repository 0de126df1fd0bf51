"""A content-addressed blob store on a local directory.

A blob is streamed to a temporary file, fsynced and renamed to its SHA-256 name, so a crash
never leaves a partial blob visible; temporaries orphaned by a crash are swept at start.

A temporary is named after the process that writes it, by pid and start time
(`governance.processes.process_identity`), so that the sweep never takes a dead process's
leftovers for a live one's.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import re
import shutil
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import BinaryIO

from privet.governance.errors import NotFound, ResourceExhausted
from privet.governance.fsutil import fsync_dir
from privet.governance.processes import IDENTITY_PATTERN, identity_alive, process_identity

__all__ = ["BlobStore", "BlobWriter", "temporary_name"]

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_TMP_DIR = "tmp"


def temporary_name(label: str = "") -> str:
    """A unique name for a temporary under the blob store's `tmp/`, `[<label>-]<identity>-<random>`,
    that `sweep_orphans` removes once the process that made it is gone."""
    name = f"{process_identity()}-{os.urandom(8).hex()}"
    return f"{label}-{name}" if label else name


class BlobWriter:
    """Write a blob in pieces; `commit()` makes it visible under its digest, `abort()` drops it."""

    def __init__(self, store: BlobStore, limit: int | None) -> None:
        self._store = store
        self._limit = limit
        self._hash = hashlib.sha256()
        self.size = 0
        self._path = store.root / _TMP_DIR / temporary_name()
        self._file: BinaryIO | None = os.fdopen(os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")

    def write(self, data: bytes | memoryview) -> None:
        assert self._file is not None, "writer already closed"
        self.size += len(data)
        if self._limit is not None and self.size > self._limit:
            self.abort()
            raise ResourceExhausted(f"blob larger than the limit of {self._limit} bytes")
        self._hash.update(data)
        self._file.write(data)

    def commit(self) -> str:
        """fsync, rename to the digest, fsync the directory. Returns the hex digest."""
        assert self._file is not None, "writer already closed"
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        digest = self._hash.hexdigest()
        final = self._store.path_of(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._path, final)
        fsync_dir(final.parent)
        return digest

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._path.unlink(missing_ok=True)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._file is not None:
            self.abort()


class BlobStore:
    def __init__(self, root: pathlib.Path) -> None:
        self.root = root
        (root / _TMP_DIR).mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(root, 0o700)  # blobs are weights and data: owner-only, whatever made the folder

    def sweep_orphans(self) -> int:
        """Remove temporaries left by a crashed writer of this host. Call at start, before serving."""
        removed = 0
        for tmp in (self.root / _TMP_DIR).iterdir():
            writer = _writer_identity(tmp.name)
            if writer is not None and not identity_alive(writer):
                if tmp.is_dir():  # an ingestion's exchange with its workers
                    shutil.rmtree(tmp, ignore_errors=True)
                else:
                    tmp.unlink(missing_ok=True)
                removed += 1
        return removed

    def path_of(self, digest: str) -> pathlib.Path:
        if not _DIGEST.fullmatch(digest):
            raise NotFound(f"blob {digest!r} is not a SHA-256 digest")
        return self.root / digest[:2] / digest

    def writer(self, limit: int | None = None) -> BlobWriter:
        return BlobWriter(self, limit)

    def put(self, chunks: Iterable[bytes], limit: int | None = None) -> tuple[str, int]:
        with self.writer(limit) as w:
            for chunk in chunks:
                w.write(chunk)
            return w.commit(), w.size

    def exists(self, digest: str) -> bool:
        return self.path_of(digest).exists()

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path_of(digest), "rb")
        except FileNotFoundError as exc:
            raise NotFound(f"blob {digest} not found") from exc

    def read_chunks(self, digest: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        with self.open(digest) as f:
            while chunk := f.read(chunk_size):
                yield chunk

    def delete(self, digest: str) -> bool:
        path = self.path_of(digest)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        fsync_dir(path.parent)
        return True

    def digests(self) -> Iterator[str]:
        for sub in self.root.iterdir():
            if sub.is_dir() and sub.name != _TMP_DIR:
                yield from (p.name for p in sub.iterdir() if _DIGEST.fullmatch(p.name))


def _writer_identity(name: str) -> str | None:
    """Temporaries are named `<identity>-<random>` or `<label>-<identity>-<random>` by their
    writer, the identity being `<pid>.<start>` (`temporary_name`) or, from older writers, `<pid>`."""
    parts = name.split("-")
    for part in parts[:2]:
        if IDENTITY_PATTERN.fullmatch(part):
            return part
    return None
