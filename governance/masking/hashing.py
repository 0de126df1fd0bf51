"""The keyed hash operator: HMAC-SHA256 of each value, after an optional normalisation, as
hex. Each distinct value is hashed once, and an upload's batches share a `HashMemo`."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from cryptography.hazmat.primitives import hashes, hmac

from privet.governance.errors import InvalidArgument
from privet.governance.masking._columns import Column, as_strings, per_distinct
from privet.governance.masking.hash_memo import macs_remembered
from privet.governance.masking.strings import digits_only, hex_strings

__all__ = ["keyed_hash"]


def keyed_hash(values: Column, key: bytes, *, length: int = 32, normalize: str | None = None,
               memo: dict[bytes, bytes] | None = None) -> Column:
    """HMAC-SHA256 of each value under `key`, as `length` hex characters (8..64). Each
    distinct value is hashed once. `normalize`: None (exact bytes), "lower" (case-folded:
    emails), "digits" (digits only: phone numbers written differently) or "mac" (MAC
    addresses in colon, hyphen or dotted notation as one colon form). Blank cells stay
    blank. `memo`, if given, maps normalised value bytes to digests under this same key and
    normalisation: it is read, and filled up to hash_memo.MEMO_CAPACITY entries (a `HashMemo`
    retires when that stops paying)."""
    if not isinstance(key, bytes) or len(key) < 16:
        raise InvalidArgument("keys.hash_key", "must be at least 16 bytes")
    if not 8 <= length <= 64:
        raise InvalidArgument("length", "must be between 8 and 64 hex characters")
    text = as_strings(values)
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
            digests = macs_remembered(base, values, memo)
        return hex_strings(b"".join(digests), len(digests), length)

    hashed = per_distinct(text, on_array=digest_all)
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
    digests: list[bytes] = []
    copy = base.copy
    append = digests.append
    for value in values:
        mac = copy()
        mac.update(value)
        append(mac.finalize())
    return digests

