"""The keyed-hash memo: digests of values seen in earlier batches of one upload, so that a
value that recurs across batches (names, addresses) costs a dict lookup instead of an HMAC;
bounded, and retired in a column where it stops paying."""

from __future__ import annotations

from cryptography.hazmat.primitives import hmac

__all__ = ["MEMO_CAPACITY", "MEMO_MAX_VALUE_BYTES", "HashMemo", "macs_remembered"]

MEMO_CAPACITY = 1 << 16  # digests kept per column and upload
MEMO_MAX_VALUE_BYTES = 256  # longer values are hashed every time: the memo stays under ~25 MiB a column


class HashMemo(dict[bytes, bytes]):
    """Digests of values seen in earlier batches of one upload (see OperatorContext.memo)."""

    retired = False


def macs_remembered(base: hmac.HMAC, values: list[bytes], memo: dict[bytes, bytes]) -> list[bytes]:
    """The MACs of `values` (a copy of `base` fed each value), reading `memo` and filling it
    up to MEMO_CAPACITY entries. A `HashMemo` that filled up and then served under one
    value in 16 retires: in a column whose values do not recur (e-mail addresses, customer
    ids) every lookup is a miss, and the misses cost a sixth as much again as the MACs."""
    digests: list[bytes] = []
    copy, lookup = base.copy, memo.get
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
