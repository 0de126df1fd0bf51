"""Crash-safe file writes: temporary name, fsync, rename, fsync the directory."""

from __future__ import annotations

import os
import pathlib

__all__ = ["write_atomic", "fsync_dir"]


def fsync_dir(path: pathlib.Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: pathlib.Path, data: bytes, *, mode: int = 0o644, overwrite: bool = True) -> bool:
    """Write `data` to `path` so that a crash leaves either the old file or the new one.

    Returns False (and writes nothing) when `overwrite` is False and the file exists.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not overwrite and path.exists():
        return False
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:  # os.write may write less than it is given
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    if overwrite:
        os.replace(tmp, path)
    else:
        try:
            os.link(tmp, path)  # fails if a concurrent writer got there first: never clobber
        except FileExistsError:
            os.unlink(tmp)
            return False
        os.unlink(tmp)
    fsync_dir(path.parent)
    return True
