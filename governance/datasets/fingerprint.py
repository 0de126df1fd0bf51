"""What a table holds, whatever file it came in: a content fingerprint and a MinHash sketch.

A privacy budget belongs to the data, so two uploads of the same rows must be recognised as
one body of data even when their bytes differ. Each row is hashed to 64 bits from its
canonical form:

- columns taken in the order of their names (a struct's fields as `parent.field`), each
  name part of the hash, so column order does not count and column names do;
- numbers by value: an integer-valued float is the integer (`3.0` == `3`), other floats
  by their bits (every NaN one value); decimals as floats;
- dates and times as nanoseconds (a date is its midnight), whatever the unit or zone;
- text and bytes exactly (not trimmed, not case-folded); a null is its own value, the same
  in every type (an empty column reads as `null` in one format, as text in another).

Row hashes are keyed with the installation's content key (32 random bytes in
`keys/content.key`, `Home.content_key`): the key seeds each column's name hash and each
row's starting value, so one installation's hashes say nothing about another's, and nobody
without the key can choose rows by their hash (no key: the unkeyed hashes, for tools and
tests).

The `fingerprint` combines the row hashes of every row, duplicates included, with sums
modulo 2⁶⁴: independent of row order and of how the rows were split into batches. The
`sketch` keeps the `SKETCH_SIZE` smallest distinct row hashes (a bottom-k MinHash), from
which `similarity` estimates how much two tables' rows overlap. An upload's own sketch can
be flooded by added rows with small hashes, so ingestion also keeps every distinct row hash
of the upload (in memory) and tests each stored sketch against that whole set
(`containment_in`).

Everything is computed a batch at a time in numpy: a string's hash is the sum
of its 8-byte words, each mixed with its position (MurmurHash3's finaliser), read straight
from Arrow's buffers. These are not cryptographic hashes: a collision, found by chance or
crafted, can only make two bodies of data share a budget, never give one a second budget.
List and map columns (rare: nested JSON) are hashed a row at a time in Python.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["MIN_SAMPLES", "SKETCH_SIZE", "SIMILARITY_THRESHOLD", "ContentSketch", "Overlap", "containment_in", "row_hashes", "similarity", "sketch_from_bytes"]

SKETCH_SIZE = 256  # row hashes kept per sketch: the estimates' standard error is about 1/√256
# Two tables are the same data when either's estimated share of the other's rows, or their
# Jaccard similarity, is at least this.
SIMILARITY_THRESHOLD = 0.5
# A containment estimate counts only on at least this many sampled rows (or on all of them).
MIN_SAMPLES = 32

_U64 = np.uint64
_MASK = (1 << 64) - 1
# Type tags: a value's hash depends on its kind, so the integer 1 is not `true` nor "1".
_NULL, _INT, _FLOAT, _BOOL, _TIME, _TIME_OF_DAY, _DURATION, _TEXT, _BYTES, _UINT, _OTHER = (
    _U64((0x9E3779B97F4A7C15 * (i + 1)) & _MASK) for i in range(11)
)
_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def _fmix(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser, elementwise (uint64 arithmetic wraps)."""
    h = h ^ (h >> _U64(33))
    h = h * _U64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> _U64(33))
    h = h * _U64(0xC4CEB9FE1A85EC53)
    mixed: np.ndarray = h ^ (h >> _U64(33))
    return mixed


@functools.lru_cache(maxsize=4096)
def _name_seed(name: str, key: bytes | None = None) -> np.uint64:
    """A column's seed: its name's hash, keyed with the installation's content key if any."""
    digest = hashlib.blake2b(name.encode(), digest_size=8, key=key or b"", person=b"privet-column").digest()
    return _U64(int.from_bytes(digest, "little"))


@functools.lru_cache(maxsize=64)
def _row_seed(key: bytes | None) -> np.uint64:
    """Where each row's hash starts: a constant without a key, derived from the key with one."""
    if not key:
        return _U64(0x84222325CBF29CE4)
    return _U64(int.from_bytes(hashlib.blake2b(key, digest_size=8, person=b"privet-row").digest(), "little"))


def _bytes_hashes(array: pa.Array) -> np.ndarray:
    """One uint64 per value of a (large_)string or (large_)binary array; nulls unspecified.

    A value is read as 8-byte little-endian words (the last one zero-filled), each word
    hashed with its position, the word hashes summed and finalised with the length: numpy
    works on an eighth as many elements as there are bytes."""
    offset_type = np.int32 if pa.types.is_string(array.type) or pa.types.is_binary(array.type) else np.int64
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=offset_type)[array.offset : array.offset + len(array) + 1].astype(np.int64)
    first, last = int(offsets[0]), int(offsets[-1])
    padded = np.zeros(last - first + 8, dtype=np.uint8)
    if last > first:
        padded[: last - first] = np.frombuffer(data_buffer, dtype=np.uint8)[first:last]
    # Every 8-byte window of the data, one per byte offset (unaligned reads, no copy).
    windows = np.ndarray(shape=(last - first + 1,), dtype="<u8", buffer=padded, strides=(1,))
    starts, lengths = offsets[:-1] - first, np.diff(offsets)
    words = (lengths + 7) // 8
    first_word = np.cumsum(words) - words
    owner = np.repeat(np.arange(len(array)), words)
    index = np.arange(len(owner)) - first_word[owner]
    left = lengths[owner] - 8 * index
    word = windows[starts[owner] + 8 * index].astype(_U64)
    keep = np.where(left >= 8, _U64(_MASK), (_U64(1) << (np.minimum(left, 7) * 8).astype(_U64)) - _U64(1))
    with np.errstate(over="ignore"):
        terms = _fmix((word & keep) ^ (index.astype(_U64) * _U64(0x9E3779B97F4A7C15)))
        sums = np.zeros(len(array), dtype=_U64)
        nonempty = words > 0
        if nonempty.any():
            sums[nonempty] = np.add.reduceat(terms, first_word[nonempty])
        return _fmix(sums ^ _fmix(lengths.astype(_U64)))


def _numbers(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(value, tag) for float64 values: the integer where one is exact, else the bits."""
    with np.errstate(invalid="ignore"):
        integral = np.isfinite(values) & (values == np.floor(values)) & (np.abs(values) < 2.0**63)
    ints = np.where(integral, values, 0).astype(np.int64).view(_U64)
    bits = np.where(np.isnan(values), np.nan, values).view(_U64)
    return np.where(integral, ints, bits), np.where(integral, _INT, _FLOAT)


def _column_hashes(array: pa.Array, seed: np.uint64) -> np.ndarray:
    """One uint64 per cell of one column (not a struct), the column's name in `seed`."""
    kind = array.type
    n = len(array)
    tags: np.ndarray | np.uint64  # one per cell, or one for the whole column
    if pa.types.is_dictionary(kind):
        hashes = _column_hashes(array.dictionary, seed)
        indices = array.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        out = hashes[indices] if len(hashes) else np.zeros(n, _U64)
        return _with_nulls(out, array, seed)
    if pa.types.is_null(kind):
        return np.full(n, _fmix(np.array([seed ^ _NULL], dtype=_U64))[0], dtype=_U64)
    if pa.types.is_boolean(kind):
        values, tags = array.fill_null(False).to_numpy(zero_copy_only=False).astype(_U64), _BOOL
    elif pa.types.is_unsigned_integer(kind):
        raw = array.fill_null(0).to_numpy(zero_copy_only=False).astype(_U64)
        values, tags = raw, np.where(raw >= _U64(1 << 63), _UINT, _INT)
    elif pa.types.is_integer(kind):
        values, tags = array.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64).view(_U64), _INT
    elif pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        values, tags = _numbers(pc.cast(array, pa.float64()).fill_null(0).to_numpy(zero_copy_only=False))
    elif pa.types.is_date32(kind):
        values, tags = array.view(pa.int32()).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64).view(_U64) * _U64(86_400 * 10**9), _TIME
    elif pa.types.is_date64(kind) or pa.types.is_timestamp(kind) or pa.types.is_time(kind) or pa.types.is_duration(kind):
        unit = "ms" if pa.types.is_date64(kind) else kind.unit
        width = pa.int32() if kind.bit_width == 32 else pa.int64()
        values = array.view(width).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64).view(_U64) * _U64(_NS[unit])
        tags = _TIME_OF_DAY if pa.types.is_time(kind) else _DURATION if pa.types.is_duration(kind) else _TIME
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        values, tags = _bytes_hashes(array), _TEXT if pa.types.is_string(kind) or pa.types.is_large_string(kind) else _BYTES
    elif pa.types.is_string_view(kind) or pa.types.is_binary_view(kind):
        target = pa.large_string() if pa.types.is_string_view(kind) else pa.large_binary()
        return _column_hashes(pc.cast(array, target), seed)
    else:  # lists, maps, unions: rare, a row at a time
        values = np.array([_python_hash(v) for v in array.to_pylist()], dtype=_U64).reshape(n)
        tags = _OTHER
    with np.errstate(over="ignore"):
        out = _fmix(_fmix(values ^ tags) ^ seed)
    return _with_nulls(out, array, seed)


def _with_nulls(hashes: np.ndarray, array: pa.Array, seed: np.uint64) -> np.ndarray:
    if array.null_count == 0:
        return hashes
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    return np.where(valid, hashes, _fmix(np.array([seed ^ _NULL], dtype=_U64))[0])


def _python_hash(value: object) -> int:
    text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _leaves(name: str, array: pa.Array) -> Iterable[tuple[str, pa.Array]]:
    """A column as (name, array) leaves: a struct's fields as `name.field`, parent nulls applied."""
    if pa.types.is_struct(array.type):
        for child_field, child in zip(array.type, array.flatten(), strict=True):
            yield from _leaves(f"{name}.{child_field.name}", child)
    else:
        yield name, array


def row_hashes(batch: pa.RecordBatch | pa.Table, key: bytes | None = None) -> np.ndarray:
    """One uint64 per row of `batch`: its canonical row's hash (see the module's docstring),
    keyed with `key` (the installation's content key, `Home.content_key`) when given; None
    gives the unkeyed hashes."""
    if isinstance(batch, pa.Table):
        parts = [row_hashes(b, key) for b in batch.to_batches()]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=_U64)
    leaves: list[tuple[str, pa.Array]] = []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        leaves.extend(_leaves(name, column))
    h = np.full(batch.num_rows, _row_seed(key), dtype=_U64)
    with np.errstate(over="ignore"):
        for name, column in sorted(leaves, key=lambda leaf: leaf[0]):
            h = _fmix(h * _U64(0x9E3779B97F4A7C15) + _column_hashes(column, _name_seed(name, key)))
    return h


@dataclass
class ContentSketch:
    """The content of a table, built a batch at a time (`add`): the number of rows, the
    order-independent `fingerprint`, and the bottom-`SKETCH_SIZE` MinHash `sketch`
    (ascending distinct uint64 row hashes), each row hashed with `key` (see `row_hashes`).

    With `keep_hashes`, it also keeps every distinct row hash (`hashes`, in memory only,
    8 bytes a distinct row, never stored): ingestion tests each stored sketch for
    containment in the whole upload (`containment_in`), which no choice of extra rows can
    hide, unlike the upload's own bottom-k sketch."""

    rows: int = 0
    _sum: int = 0
    _mixed_sum: int = 0
    sketch: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=_U64))
    key: bytes | None = field(default=None, repr=False)
    keep_hashes: bool = False
    _all: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=_U64), repr=False)
    _pending: list[np.ndarray] = field(default_factory=list, repr=False)
    _pending_size: int = 0

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        if batch.num_rows == 0:
            return
        hashes = row_hashes(batch, self.key)
        if self.keep_hashes:
            # Merged when the batches since the last merge are as many as the merged hashes
            # (and at least a million): sorting costs O(n log n) over the whole upload.
            distinct = np.unique(hashes)
            self._pending.append(distinct)
            self._pending_size += len(distinct)
            if self._pending_size >= max(len(self._all), 1 << 20):
                self._merge()
        self.rows += len(hashes)
        # Python ints from numpy's wrapping sums: exact mod 2⁶⁴ however many batches.
        self._sum = (self._sum + int(hashes.sum(dtype=_U64))) & _MASK
        with np.errstate(over="ignore"):
            self._mixed_sum = (self._mixed_sum + int(_fmix(hashes ^ _U64(0x5BD1E9955BD1E995)).sum(dtype=_U64))) & _MASK
        smallest = np.partition(hashes, SKETCH_SIZE - 1)[:SKETCH_SIZE] if len(hashes) > SKETCH_SIZE else hashes
        self.sketch = np.union1d(self.sketch, smallest)[:SKETCH_SIZE]

    @property
    def fingerprint(self) -> str:
        """`content:<hex>`: equal for tables holding the same rows (as multisets)."""
        digest = hashlib.sha256(f"privet-content-v1:{self.rows}:{self._sum}:{self._mixed_sum}".encode()).hexdigest()
        return f"content:{digest}"

    @property
    def complete(self) -> bool:
        """Whether `sketch` holds every distinct row hash of the table."""
        return len(self.sketch) < SKETCH_SIZE

    def sketch_bytes(self) -> bytes:
        return self.sketch.astype("<u8").tobytes()

    def _merge(self) -> None:
        if self._pending:
            self._all = np.unique(np.concatenate([self._all, *self._pending]))
            self._pending, self._pending_size = [], 0

    @property
    def hashes(self) -> np.ndarray:
        """Every distinct row hash seen, ascending (only with `keep_hashes`)."""
        if not self.keep_hashes:
            raise ValueError("this ContentSketch keeps no full set of row hashes (keep_hashes=False)")
        self._merge()
        return self._all


def sketch_from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<u8").astype(_U64)


@dataclass(frozen=True)
class Overlap:
    """How two tables' rows overlap, estimated from their sketches: `jaccard` (shared
    distinct rows over all distinct rows), `contained` (the share of the first's rows found
    in the second) and `contains` (of the second's in the first); None where too few rows
    were sampled to tell."""

    jaccard: float
    contained: float | None
    contains: float | None

    @property
    def same_data(self) -> bool:
        shares = [self.jaccard, self.contained, self.contains]
        return any(s is not None and s >= SIMILARITY_THRESHOLD for s in shares)


def _containment(a: np.ndarray, b: np.ndarray) -> float | None:
    """The share of A's distinct rows in B: over A's sampled rows that B's sketch would hold
    if B had them (those at most B's largest kept hash; all, if B's sketch is complete)."""
    sampled = a if len(b) < SKETCH_SIZE else a[a <= b[-1]]
    if len(sampled) == 0 or (len(sampled) < MIN_SAMPLES and not (len(a) < SKETCH_SIZE and len(sampled) == len(a))):
        return None
    return float(np.isin(sampled, b, assume_unique=True).mean())


def similarity(a: np.ndarray, b: np.ndarray) -> Overlap:
    """The overlap of two tables from their sketches (ascending distinct uint64 row hashes,
    at most `SKETCH_SIZE` each). Requires both non-empty."""
    union = np.union1d(a, b)[:SKETCH_SIZE]
    # Each of the union's k smallest is in A's sketch if it is in A at all (and so for B).
    both = np.isin(union, a, assume_unique=True) & np.isin(union, b, assume_unique=True)
    return Overlap(float(both.mean()), _containment(a, b), _containment(b, a))


def containment_in(hashes: np.ndarray, sketches: list[np.ndarray]) -> np.ndarray:
    """For each stored sketch, the share of its hashes found in `hashes` (an upload's every
    distinct row hash, ascending): it estimates what share of that stored table's distinct
    rows the upload holds, whatever else the upload holds. NaN where the sketch has too few
    hashes to tell (under `MIN_SAMPLES`, unless it is complete: then it is every row).
    Vectorised over all the sketches at once."""
    out = np.full(len(sketches), np.nan)
    if not sketches:
        return out
    sizes = np.array([len(s) for s in sketches], dtype=np.int64)
    usable = (sizes > 0) & ((sizes >= MIN_SAMPLES) | (sizes < SKETCH_SIZE))
    if not usable.any() or len(hashes) == 0:
        out[usable] = 0.0
        return out
    flat = np.concatenate([s for s, ok in zip(sketches, usable, strict=True) if ok]).astype(_U64, copy=False)
    where = np.searchsorted(hashes, flat)
    found = hashes[np.minimum(where, len(hashes) - 1)] == flat
    kept = sizes[usable]
    starts = np.cumsum(kept) - kept
    out[usable] = np.add.reduceat(found.astype(np.int64), starts) / kept
    return out
