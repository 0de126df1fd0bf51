"""Sealed model weights: the recipe the registry uses to store weights encrypted at rest.

    sealed = seal_weights(src, dst, version_id=vid, keyring=keyring)
    for piece in open_weights(blob, version_id=vid, kek_id=sealed.kek_id,
                              wrapped_key=sealed.wrapped_key, keyring=keyring,
                              expected_digest=sealed.digest):
        ...
    kek_id, wrapped_key = rewrap(sealed.kek_id, sealed.wrapped_key, keyring)

Each call to `seal_weights` draws a fresh 256-bit data key, encrypts the stream with
AES-256-GCM in fixed-size chunks, and returns the data key wrapped by the keyring's active
key-encryption key; the caller stores `SealedWeights` beside the blob.

Rotation: `rewrap` re-wraps a data key under the newest KEK; the blob is not touched.
Erasure: the data key exists only in wrapped form, in the record the caller keeps. Drop
every copy of `wrapped_key` (database row and backups) and the blob can never be
decrypted again; there is nothing else to destroy. Backups that still hold a wrapped key
stay readable for as long as the KEK that wrapped it exists, which is why old KEKs should
be deleted once every key has been rewrapped.

Blob layout (format 1), private to this module:

    header  = b"PRVW" | u8 format = 1 | u32be chunk_size                         9 bytes
    chunk i = AES-256-GCM(data_key, nonce_i, plaintext_i, aad_i) with its tag   n_i + 16 bytes
    nonce_i = SHA-256("privet/weights/v1" 0x00 version_id)[:7] | u32be i | u8 last
    aad_i   = header | u16be len(version_id) | version_id | u32be i | u8 last

Every chunk but the last holds exactly chunk_size plaintext bytes; the last holds 0 to
chunk_size (empty input still has one, empty, last chunk). A reader learns "last" from
where the stream ends, and a chunk only verifies under its own index, last flag, version
id and header, so truncation (at a boundary or not), a dropped last chunk, trailing bytes,
reordered or swapped chunks, a blob moved to another version and a changed header all
fail. Nonces never repeat: a data key seals exactly one blob, and (i, last) is distinct
per chunk.

Speed: SHA-256 of the plaintext (the digest the registry records) is slower than
AES-GCM, so it runs on a worker thread; hashlib releases the GIL on large updates, so
hashing one chunk overlaps reading, encrypting and writing the next ones. Buffers are
reused (readinto, encrypt_into), so memory stays at a few chunks whatever the size.
"""

from __future__ import annotations

import hashlib
import hmac
import queue
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from privet.governance.crypto.errors import WeightsTampered
from privet.governance.crypto.keyring import KeyEncryptionKeys
from privet.governance.errors import InvalidArgument

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAX_CHUNK_SIZE",
    "SealedWeights",
    "open_weights",
    "rewrap",
    "seal_weights",
]

DEFAULT_CHUNK_SIZE = 1 << 20
MAX_CHUNK_SIZE = 16 << 20  # bounds what a (possibly tampered) header can make us allocate

_MAGIC = b"PRVW"
_FORMAT = 1
_HEADER = struct.Struct(">4sBI")
_TAG_SIZE = 16
_MAX_CHUNKS = 1 << 32  # the chunk index is a u32 in the nonce
_NONCE_DOMAIN = b"privet/weights/v1\x00"
# Plaintext chunks in flight between the reader and the hashing thread. Two are needed
# (the chunk being encrypted and the one read ahead to learn whether it is the last);
# the rest let hashing lag behind a burst of fast reads.
_SLOTS = 4


@dataclass(frozen=True, slots=True)
class SealedWeights:
    """What the caller must keep to open a sealed blob again.

    `digest`: SHA-256 of the plaintext, lowercase hex. `size`: plaintext bytes.
    `ciphertext_size`: bytes written to `dst`. `kek_id` + `wrapped_key`: the data key,
    wrapped; losing them (deliberately or not) makes the blob unreadable.
    """

    digest: str
    size: int
    ciphertext_size: int
    kek_id: str
    wrapped_key: bytes
    chunk_size: int


def seal_weights(
    src: BinaryIO,
    dst: BinaryIO,
    *,
    version_id: str,
    keyring: KeyEncryptionKeys,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> SealedWeights:
    """Encrypt all of `src` (read to EOF) into `dst` under a fresh data key.

    Requires a blocking, readable `src` and a writable `dst`; neither is closed or
    flushed to disk (durability is the blob store's job). `version_id` is bound into
    every chunk: the blob opens only under the same id. Memory: about
    (_SLOTS + 1) * chunk_size whatever the input size.
    Raises InvalidArgument for an empty or over-long version id or a chunk size outside
    1..MAX_CHUNK_SIZE; whatever `keyring.wrap` or the streams raise passes through.
    """
    framing = _Framing(_version_bytes(version_id), _chunk_size(chunk_size))
    data_key = AESGCM.generate_key(bit_length=256)
    kek_id, wrapped_key = keyring.wrap(data_key)
    aead = AESGCM(data_key)
    del data_key

    ring = [memoryview(bytearray(chunk_size)) for _ in range(_SLOTS)]
    sealed = memoryview(bytearray(chunk_size + _TAG_SIZE))
    hasher = _BackgroundHasher(_SLOTS)
    try:
        _write_all(dst, framing.header)
        written = len(framing.header)

        def read_chunk(index: int) -> memoryview:
            # Blocks until the hasher is done with the chunk that last used this slot.
            hasher.acquire_slot()
            buffer = ring[index % _SLOTS]
            view = buffer[: _read_full(src, buffer)]
            if view:
                hasher.submit(view)
            else:
                hasher.release_slot()
            return view

        index, size = 0, 0
        current = read_chunk(0)
        while True:
            if len(current) == chunk_size:
                following = read_chunk(index + 1)
                last = not following
            else:
                last = True  # a short read means the source is exhausted
            if index >= _MAX_CHUNKS:
                raise InvalidArgument("src", "too many chunks for this chunk size")
            out = sealed[: len(current) + _TAG_SIZE]
            aead.encrypt_into(framing.nonce(index, last), current, framing.aad(index, last), out)
            _write_all(dst, out)
            written += len(out)
            size += len(current)
            if last:
                break
            current = following
            index += 1
        digest = hasher.finish()
    finally:
        hasher.close()
    return SealedWeights(
        digest=digest,
        size=size,
        ciphertext_size=written,
        kek_id=kek_id,
        wrapped_key=wrapped_key,
        chunk_size=chunk_size,
    )


def open_weights(
    src: BinaryIO,
    *,
    version_id: str,
    kek_id: str,
    wrapped_key: bytes,
    keyring: KeyEncryptionKeys,
    expected_digest: str | None,
) -> Iterator[bytes]:
    """Decrypt a blob written by `seal_weights`, yielding verified plaintext chunks.

    The key is unwrapped and the header read before this returns; chunks are read from
    `src` (a blocking stream positioned at the blob's start) as the iterator advances.
    Each chunk is authenticated before it is yielded; the whole stream (its end included)
    and `expected_digest` (SHA-256 hex of the plaintext, checked when not None) only
    when the iterator finishes. So a consumer must treat what it received as unverified
    until iteration ends without an error (write to a temporary, rename on success).

    Raises WeightsTampered, carrying no detail of where, for any failure: unknown KEK,
    wrapped key that does not verify, bad header, a chunk that does not authenticate,
    a missing last chunk, trailing bytes, or a digest mismatch. Raises InvalidArgument
    for a malformed `expected_digest` or version id.
    """
    expected = _expected_digest(expected_digest)
    version = _version_bytes(version_id)
    data_key = keyring.unwrap(kek_id, wrapped_key)
    if len(data_key) != 32:
        raise WeightsTampered()
    header = bytearray(_HEADER.size)
    if _read_full(src, memoryview(header)) != _HEADER.size:
        raise WeightsTampered()
    magic, fmt, chunk_size = _HEADER.unpack(header)
    if magic != _MAGIC or fmt != _FORMAT or not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise WeightsTampered()
    return _open_chunks(src, AESGCM(data_key), _Framing(version, chunk_size), expected)


def rewrap(kek_id: str, wrapped_key: bytes, keyring: KeyEncryptionKeys) -> tuple[str, bytes]:
    """Re-wrap a data key under the keyring's active KEK; returns (new_kek_id, new_wrapped).

    The sealed blob is not read or changed. Raises WeightsTampered if the old wrapped
    key does not unwrap.
    """
    return keyring.wrap(keyring.unwrap(kek_id, wrapped_key))


def _open_chunks(src: BinaryIO, aead: AESGCM, framing: _Framing, expected: bytes | None) -> Iterator[bytes]:
    full = framing.chunk_size + _TAG_SIZE
    # Two ciphertext buffers: the chunk being decrypted and the one read ahead of it.
    buffers = [memoryview(bytearray(full)) for _ in range(2)]
    hasher = _BackgroundHasher(_SLOTS) if expected is not None else None
    try:
        index = 0
        current = buffers[0][: _read_full(src, buffers[0])]
        while True:
            if len(current) == full:
                ahead = buffers[(index + 1) % 2]
                following = ahead[: _read_full(src, ahead)]
                last = not following
            elif len(current) >= _TAG_SIZE:
                last = True
            else:
                raise WeightsTampered()  # no last chunk, or a stub shorter than a tag
            if index >= _MAX_CHUNKS:
                raise WeightsTampered()
            try:
                plain = aead.decrypt(framing.nonce(index, last), current, framing.aad(index, last))
            except InvalidTag:
                raise WeightsTampered() from None
            if hasher is not None:
                # Bytes are immutable, so the consumer and the hasher can share them.
                hasher.acquire_slot()
                hasher.submit(plain)
            yield plain
            if last:
                break
            current = following
            index += 1
        if hasher is not None:
            digest = hasher.finish()
            if not hmac.compare_digest(bytes.fromhex(digest), expected or b""):
                raise WeightsTampered()
    finally:
        if hasher is not None:
            hasher.close()


class _Framing:
    """Per-chunk nonce and associated data for one blob."""

    __slots__ = ("_aad_prefix", "_prefix", "chunk_size", "header")

    def __init__(self, version: bytes, chunk_size: int) -> None:
        self.chunk_size = chunk_size
        self.header = _HEADER.pack(_MAGIC, _FORMAT, chunk_size)
        self._prefix = hashlib.sha256(_NONCE_DOMAIN + version).digest()[:7]
        self._aad_prefix = self.header + struct.pack(">H", len(version)) + version

    def nonce(self, index: int, last: bool) -> bytes:
        return self._prefix + struct.pack(">IB", index, last)

    def aad(self, index: int, last: bool) -> bytes:
        return self._aad_prefix + struct.pack(">IB", index, last)


class _BackgroundHasher:
    """SHA-256 over submitted buffers, in order, on a worker thread.

    `acquire_slot` before each `submit` bounds the buffers in flight to `slots`; the
    slot is released once that buffer is hashed, so a submitted buffer may be reused
    after the caller next acquires `slots` times.
    """

    def __init__(self, slots: int) -> None:
        self._sha = hashlib.sha256()
        self._slots = threading.Semaphore(slots)
        self._queue: queue.SimpleQueue[memoryview | bytes | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="privet-sha256", daemon=True)
        self._thread.start()

    def acquire_slot(self) -> None:
        self._slots.acquire()

    def release_slot(self) -> None:
        self._slots.release()

    def submit(self, data: memoryview | bytes) -> None:
        self._queue.put(data)

    def finish(self) -> str:
        """Wait for every submitted buffer; return the hex digest."""
        self.close()
        if self._error is not None:
            raise self._error
        return self._sha.hexdigest()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _run(self) -> None:
        while True:
            data = self._queue.get()
            if data is None:
                return
            try:
                if self._error is None:
                    self._sha.update(data)
            except BaseException as exc:
                self._error = exc
            finally:
                self._slots.release()


def _read_full(src: BinaryIO, view: memoryview) -> int:
    """Fill `view` from `src`; fewer bytes than len(view) only at end of stream."""
    readinto = getattr(src, "readinto", None)
    total = 0
    while total < len(view):
        if readinto is not None:
            count = readinto(view[total:])
        else:
            data = src.read(len(view) - total)
            count = None if data is None else len(data)
            if count:
                view[total : total + count] = data
        if count is None:
            raise InvalidArgument("src", "non-blocking streams are not supported")
        if count == 0:
            break
        total += count
    return total


def _write_all(dst: BinaryIO, data: memoryview | bytes) -> None:
    view = memoryview(data)
    while view:
        count = dst.write(view)
        if count is None:
            raise InvalidArgument("dst", "non-blocking streams are not supported")
        view = view[count:]


def _version_bytes(version_id: str) -> bytes:
    if not isinstance(version_id, str) or not version_id:
        raise InvalidArgument("version_id", "must be a non-empty string")
    encoded = version_id.encode("utf-8")
    if len(encoded) > 0xFFFF:
        raise InvalidArgument("version_id", "must be at most 65535 bytes in UTF-8")
    return encoded


def _chunk_size(chunk_size: int) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise InvalidArgument("chunk_size", f"must be an integer from 1 to {MAX_CHUNK_SIZE}")
    return chunk_size


def _expected_digest(digest: str | None) -> bytes | None:
    if digest is None:
        return None
    try:
        raw = bytes.fromhex(digest) if isinstance(digest, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise InvalidArgument("expected_digest", "must be a SHA-256 digest in hex (64 characters)")
    return raw
