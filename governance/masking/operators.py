"""Masking operators: each maps a pyarrow column (Array or ChunkedArray) to a new one of
the same length, nulls staying null. Profiles name them; `OPERATORS` is the registry
the profile loader checks names and parameters against.

Operators that compute something per value (keyed hash, tokenisation) do it once per
distinct value: the column is dictionary-encoded, the dictionary transformed, and the
indices taken through it. Everything else is a pyarrow compute kernel.
"""

from __future__ import annotations

import binascii
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from privet.governance.errors import InvalidArgument
from privet.governance.masking.detect import SCAN_MIN_SCORE, replace_entities
from privet.governance.masking.entities import PiiType
from privet.governance.masking.ff1 import FF1
from privet.governance.masking.patterns import DATE_FORMATS
from privet.governance.masking.strings import ascii_digits, digits_only, string_bytes, strings_from, whole_numbers_as_digits

__all__ = [
    "OPERATORS",
    "HashMemo",
    "MaskingKeys",
    "OperatorContext",
    "OperatorSpec",
    "Param",
    "check_params",
    "detokenise",
    "generalise_date",
    "generalise_numeric",
    "generalise_prefix",
    "keep",
    "keyed_hash",
    "partial_mask",
    "redact",
    "scan",
    "tokenise",
]

Column: TypeAlias = pa.Array | pa.ChunkedArray
DEFAULT_REDACTION = "[REDACTED]"
_LETTER_OR_DIGIT = r"[\p{L}\p{N}]"


@dataclass(frozen=True, repr=False)
class MaskingKeys:
    """The secrets masking needs. The caller owns them (the keyring; one set per dataset,
    or per pseudonymisation domain so hashes and tokens agree across datasets).

    `hash_key` (≥ 16 bytes): HMAC-SHA256 for `hash` and for `scan` pseudonyms.
    `token_key` (16, 24 or 32 bytes): the AES key of FF1 for `tokenise`.
    `key_id`: which key version this is; recorded in the report, never the key itself.
    Raises InvalidArgument for a key of the wrong size."""

    hash_key: bytes | None = None
    token_key: bytes | None = None
    key_id: str = ""

    def __post_init__(self) -> None:
        if self.hash_key is not None and (not isinstance(self.hash_key, bytes) or len(self.hash_key) < 16):
            raise InvalidArgument("keys.hash_key", "must be at least 16 bytes")
        if self.token_key is not None and (not isinstance(self.token_key, bytes) or len(self.token_key) not in (16, 24, 32)):
            raise InvalidArgument("keys.token_key", "must be an AES key of 16, 24 or 32 bytes")

    def __repr__(self) -> str:
        return f"MaskingKeys(key_id={self.key_id!r})"

    @classmethod
    def derive(cls, secret: bytes, key_id: str = "") -> MaskingKeys:
        """Both keys from one stored secret (≥ 32 bytes), by HKDF-SHA256 with distinct labels."""
        if not isinstance(secret, bytes) or len(secret) < 32:
            raise InvalidArgument("keys", "the secret must be at least 32 bytes")

        def hkdf(label: bytes) -> bytes:
            return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(secret)

        return cls(hkdf(b"privet/masking/hmac/v1"), hkdf(b"privet/masking/ff1/v1"), key_id)


@dataclass(frozen=True)
class OperatorContext:
    """What an operator may need besides its parameters."""

    column: str
    keys: MaskingKeys | None = None
    default_region: str = "US"
    # Keyed hashes already computed for this column in earlier batches of the same upload
    # (value bytes -> digest), owned by the MaskingPlan and dropped with it: names and
    # addresses recur across batches, and a hit costs a dict lookup instead of an HMAC.
    memo: dict[bytes, bytes] | None = field(default=None, compare=False, repr=False)


# --- helpers -----------------------------------------------------------------------------

def _map_chunks(values: Column, fn: Callable[[pa.Array], pa.Array]) -> Column:
    if isinstance(values, pa.ChunkedArray):
        chunks = [fn(c) for c in values.chunks]
        if not chunks:
            return pa.chunked_array([], type=fn(pa.array([], type=values.type)).type)
        return pa.chunked_array(chunks, type=chunks[0].type)
    return fn(values)


def _as_strings(values: Column) -> Column:
    t = values.type
    if pa.types.is_dictionary(t):
        values, t = values.cast(t.value_type), t.value_type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return values
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return _whole_as_digits(values)
    try:
        return values.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise InvalidArgument("values", f"cannot read a {t} column as text") from None


def _whole_as_digits(values: Column) -> Column:
    """Floats and decimals as text, whole values as integer digits: an id column pandas stored
    as float64 must hash and tokenise as the same integers would. Fractions keep Arrow's text."""
    return pc.coalesce(whole_numbers_as_digits(values), values.cast(pa.string()))


def _per_distinct(values: Column, fn: Callable[[list[str]], list[str]] | None = None, *,
                  on_array: Callable[[pa.Array], pa.Array] | None = None) -> Column:
    """Apply `fn` (to a list) or `on_array` (to a string array) to the distinct non-null
    strings once; map every cell through it."""
    text = _as_strings(values)
    encoded = pc.dictionary_encode(text)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.unify_dictionaries()
        if encoded.num_chunks == 0:
            return pa.chunked_array([], type=pa.string())
        dictionary = encoded.chunk(0).dictionary
    else:
        dictionary = encoded.dictionary
    if on_array is not None:
        mapped = on_array(dictionary.cast(pa.string()))
    else:
        assert fn is not None
        mapped = pa.array(fn(dictionary.to_pylist()), type=pa.string())
    if isinstance(encoded, pa.ChunkedArray):
        return pa.chunked_array([mapped.take(c.indices) for c in encoded.chunks], type=pa.string())
    return mapped.take(encoded.indices)


# --- operators ----------------------------------------------------------------------------

def keep(values: Column) -> Column:
    """The column unchanged."""
    return values


def redact(values: Column, token: str = DEFAULT_REDACTION) -> Column:
    """Every non-null value becomes `token`."""
    def one(chunk: pa.Array) -> pa.Array:
        return pc.if_else(chunk.is_null(), pa.scalar(None, pa.string()), pa.scalar(token, pa.string()))
    return _map_chunks(values, one)


def partial_mask(values: Column, *, keep_first: int = 0, keep_last: int = 0, mask_char: str = "*") -> Column:
    """Keep the first `keep_first` and last `keep_last` characters; every other letter or
    digit becomes `mask_char`, separators stay (`****-****-****-1111`). A value no longer
    than what would be kept is masked whole, so a short value is never shown in full."""
    if keep_first < 0 or keep_last < 0:
        raise InvalidArgument("keep_first", "keep_first and keep_last must be ≥ 0")
    replacement = mask_char.replace("\\", "\\\\")

    def one(chunk: pa.Array) -> pa.Array:
        whole = pc.replace_substring_regex(chunk, _LETTER_OR_DIGIT, replacement)
        if keep_first == 0 and keep_last == 0:
            return whole
        head = pc.utf8_slice_codeunits(chunk, 0, keep_first)
        middle = pc.utf8_slice_codeunits(chunk, keep_first, -keep_last if keep_last else None)
        tail = pc.utf8_slice_codeunits(chunk, -keep_last) if keep_last else pc.utf8_slice_codeunits(chunk, 0, 0)
        joined = pc.binary_join_element_wise(
            head, pc.replace_substring_regex(middle, _LETTER_OR_DIGIT, replacement), tail, "")
        short = pc.less_equal(pc.utf8_length(chunk), keep_first + keep_last)
        return pc.if_else(short, whole, joined)

    return _map_chunks(_as_strings(values), one)


MEMO_CAPACITY = 1 << 16  # digests kept per column and upload
MEMO_MAX_VALUE_BYTES = 256  # longer values are hashed every time: the memo stays under ~25 MiB a column


def keyed_hash(values: Column, key: bytes, *, length: int = 32, normalize: str | None = None,
               memo: dict[bytes, bytes] | None = None) -> Column:
    """HMAC-SHA256 of each value under `key`, as `length` hex characters (8..64). Each
    distinct value is hashed once. `normalize`: None (exact bytes), "lower" (case-folded:
    emails), "digits" (digits only: phone numbers written differently) or "mac" (MAC
    addresses in colon, hyphen or dotted notation as one colon form). Blank cells stay
    blank. `memo`, if given, maps normalised value bytes to digests under this same key and
    normalisation: it is read, and filled up to MEMO_CAPACITY entries (a `HashMemo` retires
    when that stops paying)."""
    if not isinstance(key, bytes) or len(key) < 16:
        raise InvalidArgument("keys.hash_key", "must be at least 16 bytes")
    if not 8 <= length <= 64:
        raise InvalidArgument("length", "must be between 8 and 64 hex characters")
    text = _as_strings(values)
    if normalize == "lower":
        text = pc.utf8_lower(text)
    elif normalize == "digits":
        text = digits_only(text)
    elif normalize == "mac":
        text = _mac_colon_form(text)
    elif normalize is not None:
        raise InvalidArgument("normalize", "expected 'lower', 'digits' or 'mac'")
    base = hmac.HMAC(key, hashes.SHA256())
    base.update(b"hash\x00")  # the domain prefix every value's MAC starts with

    def digest_all(distinct: pa.Array) -> pa.Array:
        # The one Python loop is the MAC itself: the bytes come from Arrow and the hex goes
        # back to it through numpy, with no per-value string handling.
        values = distinct.cast(pa.binary()).to_pylist()
        if memo is None or getattr(memo, "retired", False):
            digests = _macs(base, values)
        else:
            digests = _macs_remembered(base, values, memo)
        return _hex_strings(b"".join(digests), len(digests), length)

    hashed = _per_distinct(text, on_array=digest_all)
    # A blank cell holds nothing to protect; hashed, it would read as a value like any other.
    blank = pc.equal(pc.utf8_trim_whitespace(text), "")
    return pc.if_else(blank, text, hashed) if pc.any(blank).as_py() else hashed


def _mac_colon_form(text: Column) -> Column:
    """A MAC address as lower-case colon pairs (00:1a:2b:3c:4d:5e) whether written with
    colons, hyphens or Cisco's dots: one device, one pseudonym. Anything that is not twelve
    hex digits stays as it is, lower-cased (the colon form lower-cased is unchanged, so its
    pseudonyms are those "lower" gave)."""
    lowered = pc.utf8_lower(text)
    hex_digits = pc.replace_substring_regex(lowered, r"[^0-9a-f]", "")
    pairs = [pc.utf8_slice_codeunits(hex_digits, i, i + 2) for i in range(0, 12, 2)]
    colon_form = pc.binary_join_element_wise(*pairs, ":")
    is_mac = pc.and_(pc.equal(pc.utf8_length(hex_digits), 12), pc.match_substring_regex(lowered, r"^[0-9a-f:.\-]+$"))
    return pc.if_else(is_mac, colon_form, lowered)


def _macs(base: hmac.HMAC, values: list[bytes]) -> list[bytes]:
    digests, copy = [], base.copy
    append = digests.append
    for value in values:
        mac = copy()
        mac.update(value)
        append(mac.finalize())
    return digests


def _macs_remembered(base: hmac.HMAC, values: list[bytes], memo: dict[bytes, bytes]) -> list[bytes]:
    """`_macs`, reading and filling `memo`. A `HashMemo` that filled up and then served under
    one value in 16 retires: in a column whose values do not recur (e-mail addresses,
    customer ids) every lookup is a miss, and the misses cost a sixth as much again as the MACs."""
    digests, copy, lookup = [], base.copy, memo.get
    append = digests.append
    room = MEMO_CAPACITY - len(memo)
    full, hits = room <= 0, 0  # judged only on batches that found it full
    for value in values:
        digest = lookup(value)
        if digest is None:
            mac = copy()
            mac.update(value)
            digest = mac.finalize()
            if room > 0 and len(value) <= MEMO_MAX_VALUE_BYTES:
                memo[value] = digest
                room -= 1
        else:
            hits += 1
        append(digest)
    if isinstance(memo, HashMemo) and full and hits * 16 < len(values):
        memo.retired = True
        memo.clear()  # nothing more to gain from it, and it holds raw values
    return digests


class HashMemo(dict):  # type: ignore[type-arg]
    """Digests of values seen in earlier batches of one upload (see OperatorContext.memo)."""

    retired = False


def _hex_strings(digests: bytes, count: int, length: int) -> pa.Array:
    """`count` concatenated 32-byte digests as strings of their first `length` hex digits
    (hexlify in C, then each row cut in numpy: 4x faster than a numpy table lookup)."""
    text = np.frombuffer(binascii.hexlify(digests), dtype=np.uint8).reshape(count, 64)[:, :length]
    return strings_from(np.arange(0, count * length + 1, length, dtype=np.int32), text)


_ALPHABETS = {"digits": (10, re.compile(r"[0-9]")), "alnum": (36, re.compile(r"[0-9A-Za-z]"))}


def _refill(numeral: re.Pattern[str], template: str, numerals: str) -> str:
    """`template` with its numerals replaced, in order, by those of `numerals`."""
    it = iter(numerals)
    return numeral.sub(lambda _m: next(it), template)


def _fpe(values: Column, key: bytes, tweak: bytes | str, alphabet: str, *, decrypt: bool) -> Column:
    if alphabet not in _ALPHABETS:
        raise InvalidArgument("alphabet", "expected 'digits' or 'alnum'")
    radix, numeral = _ALPHABETS[alphabet]
    cipher = FF1(key, radix)
    tweak_bytes = tweak.encode() if isinstance(tweak, str) else bytes(tweak)

    def transform(distinct: list[str]) -> list[str]:
        numerals = ["".join(numeral.findall(v)) for v in distinct]
        if alphabet == "alnum":
            numerals = [n.lower() for n in numerals]
        work = [i for i, n in enumerate(numerals) if len(n) >= cipher.minlen]
        fn = cipher.decrypt_many if decrypt else cipher.encrypt_many
        done = fn([numerals[i] for i in work], tweak_bytes)
        out = list(distinct)
        for i, token in zip(work, done):
            token = token.upper() if alphabet == "alnum" else token
            if len(token) == len(distinct[i]):
                out[i] = token
            else:  # put the numerals back between the separators
                out[i] = _refill(numeral, distinct[i], token)
        if not decrypt:
            # Too few numerals for FF1's security bound: no reversible token, mask them.
            for i, n in enumerate(numerals):
                if 0 < len(n) < cipher.minlen:
                    out[i] = numeral.sub("*", distinct[i])
        return out

    if alphabet == "digits":
        return _per_distinct(values, on_array=lambda distinct: _fpe_digits(distinct, cipher, tweak_bytes, transform,
                                                                           decrypt=decrypt))
    return _per_distinct(values, transform)


def _with_bytes_replaced(arr: pa.Array, select: Callable[[np.ndarray], np.ndarray], values: Any) -> pa.Array:
    """`arr` (strings, no nulls) with the bytes `select(data)` picks set to `values`, every
    string's length unchanged: for rewrites that swap ASCII bytes one for one."""
    offsets, data = string_bytes(arr)
    data = data.copy()
    data[select(data)] = values
    return strings_from(offsets, data)


def _decimal_values(numerals: np.ndarray) -> np.ndarray:
    """Rows of decimal numerals (0-9) as the uint64 numbers they spell."""
    powers = np.uint64(10) ** np.arange(numerals.shape[1] - 1, -1, -1, dtype=np.uint64)
    return numerals.astype(np.uint64) @ powers


def _decimal_digits(values: np.ndarray, width: int) -> np.ndarray:
    """uint64 numbers as rows of `width` numerals (0-9), zero-padded on the left."""
    out = np.empty((len(values), width), dtype=np.uint8)
    for j in range(width - 1, -1, -1):
        values, digit = np.divmod(values, np.uint64(10))
        out[:, j] = digit
    return out


def _fpe_digits(distinct: pa.Array, cipher: FF1, tweak: bytes, fallback: Callable[[list[str]], list[str]], *,
                decrypt: bool) -> pa.Array:
    """FF1 on the digits of each value, in numpy: the values' digits are read off as one
    stream of numerals, each value's as its halves' numbers, encrypted a digit count at a
    time, and written back over the same bytes, so separators and letters stay where they
    were (an ASCII digit is one byte in UTF-8 and never part of another character). Values
    whose digits are too many for 64-bit halves, or too few for FF1, go through `fallback`."""
    offsets, data = string_bytes(distinct)
    where = np.flatnonzero(ascii_digits(data))  # every digit's byte, value after value
    bounds = np.searchsorted(where, offsets)
    first, count = bounds[:-1], np.diff(bounds)  # each value's digits: stream[first:first + count]
    stream = data[where] - np.uint8(0x30)
    fast = np.zeros(len(distinct), dtype=bool)
    for n in np.unique(count).tolist():
        if n < cipher.minlen or not cipher.numpy_ok(n):
            continue
        rows = np.flatnonzero(count == n)
        # Usually every value has this many digits: the stream itself, in rows, no gather.
        at = None if rows.size * n == stream.size else first[rows][:, None] + np.arange(n)
        numerals = stream.reshape(rows.size, n) if at is None else stream[at]
        u = n // 2
        a, b = cipher.crypt_halves(_decimal_values(numerals[:, :u]), _decimal_values(numerals[:, u:]), n, tweak,
                                   decrypt=decrypt)
        numerals[:, :u] = _decimal_digits(a, u)
        numerals[:, u:] = _decimal_digits(b, n - u)
        if at is not None:
            stream[at] = numerals
        fast[rows] = True
    out = data.copy()
    out[where] = stream + np.uint8(0x30)
    result = strings_from(offsets, out)
    slow = np.flatnonzero(~fast & (count > 0))
    if slow.size:
        mask = np.zeros(len(distinct), dtype=bool)
        mask[slow] = True
        result = pc.replace_with_mask(result, pa.array(mask), pa.array(fallback(distinct.take(pa.array(slow)).to_pylist()),
                                                                       type=pa.string()))
    return result


def tokenise(values: Column, key: bytes, *, tweak: bytes | str, alphabet: str = "digits") -> Column:
    """Format-preserving encryption (FF1, AES `key`) of each value's numerals, in place:
    with `alphabet="digits"` digits stay digits and every other character stays where it
    is (`4111-1111-1111-1111` → `7730-5921-0871-3348`); with "alnum" letters and digits
    are encrypted together (radix 36, output upper case). `tweak` is the column name, or
    a name shared across tables whose tokens must join. `detokenise` reverses it with the
    same key and tweak. Values with fewer numerals than FF1 allows (6 digits, 4 alnum)
    cannot be tokenised safely; their numerals become `*` and cannot be recovered."""
    return _fpe(values, key, tweak, alphabet, decrypt=False)


def detokenise(values: Column, key: bytes, *, tweak: bytes | str, alphabet: str = "digits") -> Column:
    """The inverse of `tokenise` under the same key, tweak and alphabet ("alnum" comes
    back upper case)."""
    return _fpe(values, key, tweak, alphabet, decrypt=True)


def _numbers(values: Column) -> Column:
    t = values.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return values
    try:
        return _as_strings(values).cast(pa.float64())
    except (pa.ArrowInvalid, InvalidArgument):
        raise InvalidArgument("values", f"numeric bins need numbers, got {t}") from None


def _format_numbers(values: Column, integral: bool) -> Column:
    return values.cast(pa.int64()).cast(pa.string()) if integral else values.cast(pa.string())


def numeric_bounds(values: Column, width: float) -> tuple[Column, Column, bool]:
    """Lower and upper bounds of each value's bin of `width`, and whether they are integers."""
    if not width > 0 or not math.isfinite(width):
        raise InvalidArgument("bins", "the bin width must be a positive number")
    numbers = _numbers(values)
    integral = (pa.types.is_integer(numbers.type) or pa.types.is_decimal(numbers.type)) and float(width).is_integer()
    lo = pc.multiply(pc.floor(pc.divide(numbers.cast(pa.float64()), float(width))), float(width))
    hi = pc.add(lo, float(width))
    return lo, hi, integral


def generalise_numeric(values: Column, width: float) -> Column:
    """Each number becomes its bin of `width` as a label: 37 with width 10 → `[30, 40)`."""
    lo, hi, integral = numeric_bounds(values, width)
    return pc.binary_join_element_wise("[", _format_numbers(lo, integral), ", ", _format_numbers(hi, integral), ")", "")


def parse_dates(values: Column) -> Column:
    """Dates from a date or timestamp column, or from strings in the common formats;
    anything else becomes null."""
    t = values.type
    if pa.types.is_date(t) or pa.types.is_timestamp(t):
        return values
    text = _as_strings(values)
    return pc.coalesce(*[pc.strptime(text, format=f, unit="s", error_is_null=True) for f in DATE_FORMATS])


_DATE_LEVELS = {"day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}


def generalise_date(values: Column, level: str) -> Column:
    """Truncate dates to `level` ("month" → `1985-03`, "year" → `1985`). A value that is not
    a date becomes null: it cannot be generalised, and kept as is it might identify."""
    if level not in ("month", "year"):
        raise InvalidArgument("date", "expected 'month' or 'year'")
    return pc.strftime(parse_dates(values), format=_DATE_LEVELS[level])


def generalise_prefix(values: Column, length: int, mask_char: str = "*") -> Column:
    """Keep the first `length` characters; later letters and digits become `mask_char`:
    `75011` with 3 → `750**`."""
    if length < 0:
        raise InvalidArgument("prefix", "must be ≥ 0")

    def one(chunk: pa.Array) -> pa.Array:
        head = pc.utf8_slice_codeunits(chunk, 0, length)
        tail = _mask_letters_and_digits(pc.utf8_slice_codeunits(chunk, length), mask_char)
        return pc.binary_join_element_wise(head, tail, "")

    return _map_chunks(_as_strings(values), one)


_ASCII_ALNUM = np.zeros(256, dtype=bool)
_ASCII_ALNUM[list(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")] = True


def _mask_letters_and_digits(chunk: pa.Array, mask_char: str) -> pa.Array:
    """Every letter and digit becomes `mask_char`. An all-ASCII column with an ASCII mask is
    rewritten byte by byte in numpy (a regex replace pays per character matched); anything
    else goes through the Unicode-aware regex."""
    if len(chunk) == 0 or len(mask_char) != 1 or not mask_char.isascii() or chunk.null_count \
            or not pc.all(pc.string_is_ascii(chunk)).as_py():
        return pc.replace_substring_regex(chunk, _LETTER_OR_DIGIT, mask_char.replace("\\", "\\\\"))
    return _with_bytes_replaced(chunk, lambda data: _ASCII_ALNUM[data], ord(mask_char))


def scan(values: Column, *, replace: str = "token", key: bytes | None = None,
         types: Iterable[PiiType | str] | None = None, min_score: float = SCAN_MIN_SCORE,
         default_region: str = "US") -> Column:
    """Replace each entity found in free text by its type token (`<EMAIL>`), or with
    `replace="pseudonym"` by a keyed pseudonym (`<EMAIL_3fa94c0e1b2d7a55>`) that is the
    same wherever the same entity appears under the same key. See
    `detect.replace_entities`."""
    return replace_entities(values, replace=replace, key=key, types=types,  # type: ignore[arg-type]
                            min_score=min_score, default_region=default_region)


# --- the registry the profile loader checks against --------------------------------------

@dataclass(frozen=True)
class Param:
    """One operator parameter: its accepted Python types, whether required, its default,
    and an extra check returning an error message (or None)."""

    types: tuple[type, ...]
    required: bool = False
    default: Any = None
    check: Callable[[Any], str | None] | None = None
    describe: str = ""


@dataclass(frozen=True)
class OperatorSpec:
    """A named operator. `apply(values, params, ctx)` returns the new column, or None to
    drop it. `needs` names the key it requires. `check` validates the parameters together
    (e.g. exactly one of several)."""

    name: str
    apply: Callable[[Column, Mapping[str, Any], OperatorContext], Column | None]
    params: Mapping[str, Param] = field(default_factory=dict)
    needs: str | None = None
    check: Callable[[Mapping[str, Any]], tuple[str, str] | None] | None = None
    doc: str = ""


def _positive_int(x: Any) -> str | None:
    return None if x >= 0 else "must be ≥ 0"


def _one_char(x: Any) -> str | None:
    return None if len(x) == 1 else "must be one character"


def _one_of(*choices: str) -> Callable[[Any], str | None]:
    return lambda x: None if x in choices else "expected one of " + ", ".join(repr(c) for c in choices)


def _pii_types(x: Any) -> str | None:
    bad = [t for t in x if not isinstance(t, str) or t not in PiiType.__members__]
    return f"unknown PII type(s): {', '.join(map(str, bad))}" if bad else None


def _partial_check(p: Mapping[str, Any]) -> tuple[str, str] | None:
    if not p.get("keep_first") and not p.get("keep_last"):
        return ("action", "partial needs keep_last or keep_first")
    return None


_GENERALISERS = ("bins", "date", "prefix")


def _generalise_check(p: Mapping[str, Any]) -> tuple[str, str] | None:
    given = [k for k in _GENERALISERS if p.get(k) is not None]
    if len(given) != 1:
        return ("action", "generalise needs exactly one of bins (width), date (month|year), prefix (length)")
    return None


def _need_key(ctx: OperatorContext, which: str) -> bytes:
    key = getattr(ctx.keys, which, None) if ctx.keys is not None else None
    if key is None:
        raise InvalidArgument(f"keys.{which}", f"required to mask column {ctx.column!r}")
    return key


def _apply_generalise(values: Column, p: Mapping[str, Any], _ctx: OperatorContext) -> Column:
    if p.get("bins") is not None:
        return generalise_numeric(values, p["bins"])
    if p.get("date") is not None:
        return generalise_date(values, p["date"])
    return generalise_prefix(values, p["prefix"])


def _apply_scan(values: Column, p: Mapping[str, Any], ctx: OperatorContext) -> Column:
    key = _need_key(ctx, "hash_key") if p["replace"] == "pseudonym" else None
    return scan(values, replace=p["replace"], key=key, types=p.get("types"),
                min_score=p["min_score"], default_region=ctx.default_region)


OPERATORS: Mapping[str, OperatorSpec] = {spec.name: spec for spec in (
    OperatorSpec("keep", lambda v, p, c: v, doc="leave the column as it is"),
    OperatorSpec("drop", lambda v, p, c: None, doc="remove the column"),
    OperatorSpec(
        "redact", lambda v, p, c: redact(v, p["token"]),
        {"token": Param((str,), default=DEFAULT_REDACTION)}, doc="replace every value by a fixed token"),
    OperatorSpec(
        "partial",
        lambda v, p, c: partial_mask(v, keep_first=p["keep_first"], keep_last=p["keep_last"], mask_char=p["mask_char"]),
        {"keep_first": Param((int,), default=0, check=_positive_int),
         "keep_last": Param((int,), default=0, check=_positive_int),
         "mask_char": Param((str,), default="*", check=_one_char)},
        check=_partial_check, doc="mask all but the first/last characters"),
    OperatorSpec(
        "hash", lambda v, p, c: keyed_hash(v, _need_key(c, "hash_key"), length=p["length"], normalize=p["normalize"],
                                           memo=c.memo),
        {"length": Param((int,), default=32, check=lambda x: None if 8 <= x <= 64 else "must be 8..64"),
         "normalize": Param((str,), default=None, check=_one_of("lower", "digits", "mac"))},
        needs="hash_key", doc="HMAC-SHA256 under the dataset's key, hex"),
    OperatorSpec(
        "tokenise",
        lambda v, p, c: tokenise(v, _need_key(c, "token_key"), tweak=p["tweak"] or c.column, alphabet=p["alphabet"]),
        {"alphabet": Param((str,), default="digits", check=_one_of("digits", "alnum")),
         "tweak": Param((str,), default=None)},
        needs="token_key", doc="format-preserving encryption (FF1), reversible with the key"),
    OperatorSpec(
        "generalise", _apply_generalise,
        {"bins": Param((int, float), check=lambda x: None if x > 0 else "must be > 0"),
         "date": Param((str,), check=_one_of("month", "year")),
         "prefix": Param((int,), check=_positive_int)},
        check=_generalise_check, doc="numeric bins, date truncation or a string prefix"),
    OperatorSpec(
        "scan", _apply_scan,
        {"replace": Param((str,), default="token", check=_one_of("token", "pseudonym")),
         "types": Param((list,), default=None, check=_pii_types),
         "min_score": Param((int, float), default=SCAN_MIN_SCORE,
                            check=lambda x: None if 0 <= x <= 1 else "must be in [0, 1]")},
        doc="replace each entity in free text by its type token or a keyed pseudonym"),
)}


def check_params(name: str, given: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Validate an operator name and its parameters as written in a profile rule; return
    the parameters with defaults filled in. Errors name the field: `where.action`,
    `where.<param>`. Raises InvalidArgument."""
    spec = OPERATORS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise InvalidArgument(f"{where}.action", f"unknown operator {name!r}; known: {', '.join(OPERATORS)}")
    params: dict[str, Any] = {}
    for key, value in given.items():
        param = spec.params.get(key)
        if param is None:
            known = ", ".join(spec.params) or "none"
            raise InvalidArgument(f"{where}.{key}", f"unknown parameter for {name!r}; it takes: {known}")
        if isinstance(value, bool) or not isinstance(value, param.types):
            want = " or ".join("number" if t is float else t.__name__ for t in param.types)
            raise InvalidArgument(f"{where}.{key}", f"expected {want}, got {type(value).__name__} {value!r}")
        if param.check is not None and (problem := param.check(value)):
            raise InvalidArgument(f"{where}.{key}", problem)
        params[key] = value
    for key, param in spec.params.items():
        if key not in params:
            if param.required:
                raise InvalidArgument(f"{where}.{key}", f"required by operator {name!r}")
            params[key] = param.default
    if spec.check is not None and (joint := spec.check(params)):
        raise InvalidArgument(f"{where}.{joint[0]}", joint[1])
    return params
