"""Key-encryption keys (KEKs): the keys that wrap each version's data key.

`KeyEncryptionKeys` is the whole interface the weights recipe needs, so an external KMS
can stand in for the file keyring. `FileKeyring` keeps each KEK as a file in
`PRIVET_HOME/keys/`:

* `kek-<n>.key` holds 32 random bytes, mode 0600; the active KEK is the highest n.
* A file is created under a temporary name, fsynced, then hard-linked into place, so a
  reader never sees a partial key and an existing key is never overwritten (a plain
  rename would silently replace a key that a concurrent `rotate` just made).
* Data keys are wrapped with AES key wrap (RFC 3394): deterministic, integrity-checked,
  and eight bytes of overhead.

Old KEKs stay on disk so that data keys wrapped before a rotation still open; once every
wrapped key has been rewrapped (`governance.crypto.weights.rewrap`), an operator may
delete the old files.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from privet.governance.crypto.errors import WeightsTampered
from privet.governance.errors import FailedPrecondition, InvalidArgument
from privet.governance.fsutil import fsync_dir

__all__ = ["KEK_SIZE", "FileKeyring", "KeyEncryptionKeys"]

KEK_SIZE = 32
_KEY_FILE = re.compile(r"kek-([1-9][0-9]{0,17})\.key")
_KEK_ID = re.compile(r"kek-([1-9][0-9]{0,17})")
# A temporary older than this belongs to a creator that died; younger ones may be in use.
_STALE_TEMP_SECONDS = 600.0


@runtime_checkable
class KeyEncryptionKeys(Protocol):
    """What the weights recipe needs from a keyring or an external KMS."""

    @property
    def active_id(self) -> str:
        """Id of the KEK that `wrap` uses now."""
        ...

    def wrap(self, data_key: bytes) -> tuple[str, bytes]:
        """Wrap `data_key` with the active KEK; return (kek_id, wrapped)."""
        ...

    def unwrap(self, kek_id: str, wrapped: bytes) -> bytes:
        """Recover a data key. Raises WeightsTampered if the KEK is unknown or the
        wrapped bytes do not verify."""
        ...

    def rotate(self) -> str:
        """Create a new KEK, make it active and return its id. Old KEKs still unwrap."""
        ...


class FileKeyring:
    """KEKs as files in one directory; implements `KeyEncryptionKeys`.

    Requires `path` to exist and hold at least one `kek-<n>.key` (`FileKeyring.ensure`
    creates both). Raises FailedPrecondition otherwise. Safe to share between threads;
    several processes may use one directory (rotation never overwrites a key).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._dir = Path(path)
        self._lock = threading.Lock()
        self._keys: dict[int, bytes] = {}  # KEK files never change once written
        if not self._dir.is_dir():
            raise FailedPrecondition(f"key directory {self._dir} does not exist (run `privet init`)")
        if not self._numbers():
            raise FailedPrecondition(f"no key-encryption key in {self._dir} (run `privet init`)")

    @classmethod
    def ensure(cls, path: str | os.PathLike[str]) -> FileKeyring:
        """Create the directory (mode 0700) and `kek-1.key` if no KEK exists yet, then
        open the keyring. Idempotent: never touches an existing key."""
        directory = Path(path)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        _sweep_stale_temporaries(directory)
        if not _key_numbers(directory):
            _create_key_file(directory, 1)  # False when a concurrent ensure won: fine
        return cls(directory)

    @property
    def path(self) -> Path:
        return self._dir

    @property
    def active_id(self) -> str:
        # Listed afresh each time so that a rotation by another process is seen.
        return _kek_id(self._highest())

    def ids(self) -> list[str]:
        """Every KEK id present, oldest first."""
        return [_kek_id(n) for n in sorted(self._numbers())]

    def wrap(self, data_key: bytes) -> tuple[str, bytes]:
        """AES-KW-wrap `data_key` (16+ bytes, a multiple of 8) with the active KEK.
        Raises InvalidArgument for a key of the wrong length."""
        if len(data_key) < 16 or len(data_key) % 8:
            raise InvalidArgument("data_key", "must be at least 16 bytes and a multiple of 8")
        number = self._highest()
        return _kek_id(number), aes_key_wrap(self._load(number), bytes(data_key))

    def unwrap(self, kek_id: str, wrapped: bytes) -> bytes:
        """Raises WeightsTampered if `kek_id` names no KEK here or `wrapped` does not
        verify under it (wrong KEK, altered bytes, or a key that was never wrapped)."""
        match = _KEK_ID.fullmatch(kek_id) if isinstance(kek_id, str) else None
        if match is None or not (self._dir / f"{kek_id}.key").is_file():
            raise WeightsTampered(f"unknown key-encryption key {kek_id!r}")
        try:
            return aes_key_unwrap(self._load(int(match.group(1))), bytes(wrapped))
        except (InvalidUnwrap, ValueError):
            raise WeightsTampered("wrapped data key does not verify") from None

    def rotate(self) -> str:
        """Create `kek-<highest+1>.key` and return its id. Concurrent rotations (threads
        or processes) each get a distinct new key; none is overwritten."""
        number = self._highest() + 1
        while not _create_key_file(self._dir, number):
            number += 1
        return _kek_id(number)

    def _numbers(self) -> list[int]:
        return _key_numbers(self._dir)

    def _highest(self) -> int:
        numbers = self._numbers()
        if not numbers:
            raise FailedPrecondition(f"no key-encryption key in {self._dir} (run `privet init`)")
        return max(numbers)

    def _load(self, number: int) -> bytes:
        with self._lock:
            key = self._keys.get(number)
            if key is None:
                path = self._dir / f"kek-{number}.key"
                key = path.read_bytes()
                if len(key) != KEK_SIZE:
                    raise FailedPrecondition(f"{path} is not a {KEK_SIZE}-byte key")
                self._keys[number] = key
            return key


def _kek_id(number: int) -> str:
    return f"kek-{number}"


def _key_numbers(directory: Path) -> list[int]:
    numbers = []
    for name in os.listdir(directory):
        match = _KEY_FILE.fullmatch(name)
        if match:
            numbers.append(int(match.group(1)))
    return numbers


def _create_key_file(directory: Path, number: int) -> bool:
    """Write a fresh KEK as `kek-<number>.key`; False if that name already exists."""
    final = directory / f"kek-{number}.key"
    if final.exists():
        return False
    fd, temporary = tempfile.mkstemp(prefix=f".kek-{number}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        key = os.urandom(KEK_SIZE)
        written = 0
        while written < KEK_SIZE:
            written += os.write(fd, key[written:])
        os.fsync(fd)
        os.close(fd)
        fd = -1
        try:
            os.link(temporary, final)  # atomic, and fails rather than overwrite
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV):
                raise
            # No hard links on this filesystem: rename, accepting a narrow race.
            if final.exists():
                return False
            os.rename(temporary, final)
        fsync_dir(directory)
        return True
    finally:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass


def _sweep_stale_temporaries(directory: Path) -> None:
    cutoff = time.time() - _STALE_TEMP_SECONDS
    for entry in os.scandir(directory):
        if entry.name.startswith(".kek-") and entry.name.endswith(".tmp"):
            try:
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
            except FileNotFoundError:
                pass
