"""The sealed-weights recipe: round trips, and every kind of tampering is one opaque error."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import tracemalloc

import pytest

from privet.governance.crypto import FileKeyring, WeightsTampered, open_weights, rewrap, seal_weights
from privet.governance.crypto.weights import DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE
from privet.governance.errors import InvalidArgument

CHUNK = 64
HEADER = 9
TAG = 16
OPAQUE = str(WeightsTampered())


@pytest.fixture
def keyring(tmp_path):
    return FileKeyring.ensure(tmp_path / "keys")


def _plaintext(size: int) -> bytes:
    # Structured, repetitive bytes (as real weights often are) make leaked runs visible.
    pattern = b"weights:" + bytes(range(256))
    return (pattern * (size // len(pattern) + 1))[:size]


def _seal(keyring, plaintext: bytes, version_id: str = "m:1", chunk_size: int = CHUNK):
    out = io.BytesIO()
    sealed = seal_weights(io.BytesIO(plaintext), out, version_id=version_id, keyring=keyring, chunk_size=chunk_size)
    return sealed, out.getvalue()


def _open(keyring, blob: bytes, sealed, version_id: str = "m:1", **overrides) -> bytes:
    arguments = {
        "version_id": version_id,
        "kek_id": sealed.kek_id,
        "wrapped_key": sealed.wrapped_key,
        "keyring": keyring,
        "expected_digest": sealed.digest,
    }
    arguments.update(overrides)
    return b"".join(open_weights(io.BytesIO(blob), **arguments))


def _assert_tampered(keyring, blob: bytes, sealed, **overrides) -> None:
    with pytest.raises(WeightsTampered) as caught:
        _open(keyring, blob, sealed, **overrides)
    assert str(caught.value) == OPAQUE


def _chunks(blob: bytes, chunk_size: int = CHUNK) -> list[bytes]:
    body, step = blob[HEADER:], chunk_size + TAG
    return [body[i : i + step] for i in range(0, len(body), step)]


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 5 * CHUNK + 7])
def test_round_trip(keyring, size):
    plaintext = os.urandom(size)
    sealed, blob = _seal(keyring, plaintext)
    chunks = max(1, -(-size // CHUNK))
    assert sealed.size == size
    assert sealed.digest == hashlib.sha256(plaintext).hexdigest()
    assert sealed.ciphertext_size == len(blob) == HEADER + size + TAG * chunks
    assert sealed.kek_id == "kek-1" and sealed.chunk_size == CHUNK
    pieces = list(
        open_weights(
            io.BytesIO(blob),
            version_id="m:1",
            kek_id=sealed.kek_id,
            wrapped_key=sealed.wrapped_key,
            keyring=keyring,
            expected_digest=sealed.digest,
        )
    )
    assert b"".join(pieces) == plaintext
    assert len(pieces) == chunks
    assert _open(keyring, blob, sealed, expected_digest=None) == plaintext


def test_default_chunk_size_round_trip(keyring):
    plaintext = os.urandom(2 * DEFAULT_CHUNK_SIZE + 3)
    sealed, blob = _seal(keyring, plaintext, chunk_size=DEFAULT_CHUNK_SIZE)
    assert _open(keyring, blob, sealed) == plaintext


def test_each_seal_uses_a_fresh_data_key(keyring):
    plaintext = _plaintext(300)
    first, blob_a = _seal(keyring, plaintext)
    second, blob_b = _seal(keyring, plaintext)
    assert first.wrapped_key != second.wrapped_key
    assert blob_a[HEADER:] != blob_b[HEADER:]


def test_blob_never_contains_a_16_byte_run_of_plaintext(keyring):
    plaintext = _plaintext(40 * CHUNK + 5)
    _, blob = _seal(keyring, plaintext)
    runs = {plaintext[i : i + 16] for i in range(len(plaintext) - 15)}
    assert not any(blob[i : i + 16] in runs for i in range(len(blob) - 15))


def test_every_flipped_bit_is_detected(keyring):
    plaintext = _plaintext(3 * CHUNK + 10)
    sealed, blob = _seal(keyring, plaintext)
    for position in range(len(blob)):  # header, every chunk body, every tag
        for bit in (0, 7):
            altered = bytearray(blob)
            altered[position] ^= 1 << bit
            _assert_tampered(keyring, bytes(altered), sealed)


def test_every_truncation_is_detected(keyring):
    # Covers chunk boundaries, mid-chunk, mid-tag, header-only and empty.
    sealed, blob = _seal(keyring, _plaintext(3 * CHUNK + 10))
    for length in range(len(blob)):
        _assert_tampered(keyring, blob[:length], sealed)


def test_truncation_of_a_whole_number_of_chunks_is_detected(keyring):
    # The plaintext fills its chunks exactly, so each prefix looks well framed.
    sealed, blob = _seal(keyring, _plaintext(4 * CHUNK))
    chunks = _chunks(blob)
    for keep in range(len(chunks)):
        _assert_tampered(keyring, blob[:HEADER] + b"".join(chunks[:keep]), sealed, expected_digest=None)


def test_dropped_last_chunk_is_detected(keyring):
    sealed, blob = _seal(keyring, _plaintext(3 * CHUNK + 10))
    chunks = _chunks(blob)
    _assert_tampered(keyring, blob[:HEADER] + b"".join(chunks[:-1]), sealed, expected_digest=None)


@pytest.mark.parametrize("extra", [b"\x00", os.urandom(TAG), os.urandom(CHUNK + TAG)])
@pytest.mark.parametrize("size", [0, CHUNK, 2 * CHUNK + 1])
def test_trailing_bytes_are_detected(keyring, size, extra):
    sealed, blob = _seal(keyring, _plaintext(size))
    _assert_tampered(keyring, blob + extra, sealed, expected_digest=None)


def test_swapped_and_duplicated_chunks_are_detected(keyring):
    sealed, blob = _seal(keyring, _plaintext(4 * CHUNK + 10))
    chunks = _chunks(blob)
    for order in ([1, 0, 2, 3, 4], [0, 2, 1, 3, 4], [0, 1, 2, 4, 3], [0, 0, 2, 3, 4], [0, 1, 2, 3, 3, 4]):
        reordered = blob[:HEADER] + b"".join(chunks[i] for i in order)
        _assert_tampered(keyring, reordered, sealed, expected_digest=None)


def test_blob_moved_to_another_version_is_detected(keyring):
    sealed, blob = _seal(keyring, _plaintext(2 * CHUNK + 1), version_id="m:1")
    assert _open(keyring, blob, sealed, version_id="m:1") == _plaintext(2 * CHUNK + 1)
    for other in ("m:2", "m:1 ", "M:1", "n:1"):
        _assert_tampered(keyring, blob, sealed, version_id=other, expected_digest=None)


def test_chunks_spliced_between_versions_are_detected(keyring):
    plaintext = _plaintext(3 * CHUNK)
    sealed_a, blob_a = _seal(keyring, plaintext, version_id="m:1")
    _, blob_b = _seal(keyring, plaintext, version_id="m:2")
    a, b = _chunks(blob_a), _chunks(blob_b)
    _assert_tampered(keyring, blob_a[:HEADER] + a[0] + b[1] + a[2], sealed_a, expected_digest=None)


@pytest.mark.parametrize("size", [0, 10, 4 * CHUNK])
def test_header_with_another_chunk_size_is_detected(keyring, size):
    # With one short chunk the framing reads the same under any larger chunk size, so
    # only the header's place in the associated data catches the change.
    sealed, blob = _seal(keyring, _plaintext(size))
    for chunk_size in (CHUNK // 2, 2 * CHUNK, MAX_CHUNK_SIZE + 1, 0xFFFFFFFF, 0):
        forged = blob[:5] + chunk_size.to_bytes(4, "big") + blob[HEADER:]
        _assert_tampered(keyring, forged, sealed, expected_digest=None)


def test_wrong_wrapped_key_is_detected(keyring):
    sealed, blob = _seal(keyring, _plaintext(100))
    other, _ = _seal(keyring, _plaintext(100))
    _assert_tampered(keyring, blob, sealed, wrapped_key=other.wrapped_key)
    flipped = bytearray(sealed.wrapped_key)
    flipped[0] ^= 0x80
    with pytest.raises(WeightsTampered):
        _open(keyring, blob, sealed, wrapped_key=bytes(flipped))
    with pytest.raises(WeightsTampered):
        _open(keyring, blob, sealed, kek_id="kek-7")


def test_digest_mismatch_is_detected_at_the_end(keyring):
    sealed, blob = _seal(keyring, _plaintext(3 * CHUNK))
    wrong = hashlib.sha256(b"something else").hexdigest()
    pieces = open_weights(
        io.BytesIO(blob),
        version_id="m:1",
        kek_id=sealed.kek_id,
        wrapped_key=sealed.wrapped_key,
        keyring=keyring,
        expected_digest=wrong,
    )
    assert len(next(pieces)) == CHUNK
    with pytest.raises(WeightsTampered):
        list(pieces)
    assert _open(keyring, blob, sealed, expected_digest=sealed.digest.upper()) == _plaintext(3 * CHUNK)


@pytest.mark.parametrize("digest", ["", "ab", "zz" * 32, "00" * 31, "00" * 33])
def test_malformed_expected_digest_is_invalid_argument(keyring, digest):
    sealed, blob = _seal(keyring, b"x")
    with pytest.raises(InvalidArgument):
        _open(keyring, blob, sealed, expected_digest=digest)


def test_rewrap_after_rotate_leaves_blob_identical(keyring):
    plaintext = _plaintext(5 * CHUNK + 3)
    sealed, blob = _seal(keyring, plaintext)
    stored = bytes(blob)
    assert keyring.rotate() == "kek-2"
    kek_id, wrapped = rewrap(sealed.kek_id, sealed.wrapped_key, keyring)
    assert kek_id == "kek-2" and wrapped != sealed.wrapped_key
    assert blob == stored
    assert _open(keyring, blob, sealed, kek_id=kek_id, wrapped_key=wrapped) == plaintext
    # Once every key is rewrapped the old KEK can go; the rewrapped key still opens.
    os.unlink(keyring.path / "kek-1.key")
    assert _open(keyring, blob, sealed, kek_id=kek_id, wrapped_key=wrapped) == plaintext
    with pytest.raises(WeightsTampered):
        _open(keyring, blob, sealed)


def test_rewrap_of_a_bad_wrapped_key_is_tampering(keyring):
    with pytest.raises(WeightsTampered):
        rewrap("kek-1", os.urandom(40), keyring)


@pytest.mark.parametrize("chunk_size", [0, -1, MAX_CHUNK_SIZE + 1, 1.5, True])
def test_bad_chunk_size_is_invalid_argument(keyring, chunk_size):
    with pytest.raises(InvalidArgument):
        seal_weights(io.BytesIO(b"x"), io.BytesIO(), version_id="m:1", keyring=keyring, chunk_size=chunk_size)


@pytest.mark.parametrize("version_id", ["", None, b"m:1"])
def test_bad_version_id_is_invalid_argument(keyring, version_id):
    with pytest.raises(InvalidArgument):
        seal_weights(io.BytesIO(b"x"), io.BytesIO(), version_id=version_id, keyring=keyring)


class _Trickle:
    """A stream that reads and writes at most a few bytes per call, without readinto."""

    def __init__(self, data: bytes = b"") -> None:
        self._data = data
        self._position = 0
        self.written = bytearray()

    def read(self, size: int = -1) -> bytes:
        piece = self._data[self._position : self._position + min(size, 7)]
        self._position += len(piece)
        return piece

    def write(self, data) -> int:
        piece = bytes(data[:5])
        self.written += piece
        return len(piece)


def test_short_reads_and_writes_are_handled(keyring):
    plaintext = _plaintext(3 * CHUNK + 9)
    source = _Trickle(plaintext)
    sink = _Trickle()
    sealed = seal_weights(source, sink, version_id="m:1", keyring=keyring, chunk_size=CHUNK)
    blob = bytes(sink.written)
    assert len(blob) == sealed.ciphertext_size
    trickle = _Trickle(blob)
    pieces = open_weights(
        trickle,
        version_id="m:1",
        kek_id=sealed.kek_id,
        wrapped_key=sealed.wrapped_key,
        keyring=keyring,
        expected_digest=sealed.digest,
    )
    assert b"".join(pieces) == plaintext


def test_abandoned_iteration_stops_its_worker(keyring):
    sealed, blob = _seal(keyring, _plaintext(20 * CHUNK))
    before = threading.active_count()
    pieces = open_weights(
        io.BytesIO(blob),
        version_id="m:1",
        kek_id=sealed.kek_id,
        wrapped_key=sealed.wrapped_key,
        keyring=keyring,
        expected_digest=sealed.digest,
    )
    next(pieces)
    pieces.close()
    assert threading.active_count() == before


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = min(len(buffer), self._left)
        buffer[:count] = bytes(count)
        self._left -= count
        return count


class _Sink(io.RawIOBase):
    def __init__(self) -> None:
        self.size = 0
        self.sha = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.sha.update(data)
        self.size += len(data)
        return len(data)


def test_memory_stays_bounded(keyring):
    chunk, size = 64 << 10, 16 << 20
    tracemalloc.start()
    try:
        sealed = seal_weights(_Zeros(size), _Sink(), version_id="m:1", keyring=keyring, chunk_size=chunk)
        _, seal_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    blob = io.BytesIO()  # held outside tracing: the blob is the test's memory, not the recipe's
    sealed = seal_weights(_Zeros(size), blob, version_id="m:1", keyring=keyring, chunk_size=chunk)
    blob.seek(0)
    total = 0
    tracemalloc.start()
    try:
        for piece in open_weights(
            blob,
            version_id="m:1",
            kek_id=sealed.kek_id,
            wrapped_key=sealed.wrapped_key,
            keyring=keyring,
            expected_digest=sealed.digest,
        ):
            total += len(piece)
        _, open_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == size
    assert seal_peak < 8 * chunk, seal_peak
    assert open_peak < 10 * chunk, open_peak
