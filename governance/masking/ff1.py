"""NIST SP 800-38G (Rev. 1) FF1 format-preserving encryption over AES.

`FF1(key, radix).encrypt(numerals, tweak)` maps a string of numerals in radix 2..36
(alphabet `0-9a-z`, case-insensitive on input, lower case on output) to another of the
same length and radix; `decrypt` inverts it. The block cipher is AES (the `cryptography`
package, one ECB context used as the raw block function); FF1's PRF is CBC-MAC over it.

Two implementations that must agree: `encrypt`/`decrypt` follow the standard's steps
line by line for one value (the NIST sample vectors test it); `encrypt_many`/
`decrypt_many` run the ten Feistel rounds for many values at once, one AES call per round
for all values of the same length, with numpy holding the halves when they fit in 32 bits
(card numbers, phone numbers, most ids); `crypt_halves` and `crypt_numerals` are that
numpy path for callers that hold their values as numbers or as rows of numerals. Tests
check one against the other.

Not FF3/FF3-1: those have published attacks and NIST has withdrawn FF3.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from privet.governance.errors import InvalidArgument

__all__ = ["ALPHABET", "FF1", "min_length"]

ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_ROUNDS = 10
_Halves = npt.NDArray[np.uint64]  # many inputs' A or B halves, as numbers
# Halves below this stay exact in uint64 through (acc * 2**16 + limb) in `_ys_mod_numpy`.
_NUMPY_HALF_LIMIT = 1 << 47


def min_length(radix: int) -> int:
    """SP 800-38G Rev. 1: radix**minlen must be at least one million."""
    n = 1
    while radix**n < 1_000_000:
        n += 1
    return n


def _to_str(x: int, radix: int, m: int) -> str:
    """STR^m_radix(x): x as m numerals, most significant first."""
    if radix == 10:
        return f"{x:0{m}d}"
    out = []
    for _ in range(m):
        x, r = divmod(x, radix)
        out.append(ALPHABET[r])
    return "".join(reversed(out))


def _num_rows(numerals: npt.NDArray[np.uint8], radix: int) -> _Halves:
    """NUM_radix(X) of each row X of numerals (0..radix-1): requires radix**width < 2**64."""
    powers = np.uint64(radix) ** np.arange(numerals.shape[1] - 1, -1, -1, dtype=np.uint64)
    values: _Halves = numerals.astype(np.uint64) @ powers
    return values


def _str_rows(values: _Halves, width: int, radix: int) -> npt.NDArray[np.uint8]:
    """STR^width_radix(x) of each number x, as a row of numerals (0..radix-1), most
    significant first."""
    out = np.empty((len(values), width), dtype=np.uint8)
    for j in range(width - 1, -1, -1):
        values, digit = np.divmod(values, np.uint64(radix))
        out[:, j] = digit
    return out


class FF1:
    """FF1 under one AES key (16, 24 or 32 bytes) for one radix (2..36).

    Requires numeral strings of length min_length(radix)..2**32-1 whose characters are
    numerals of the radix. Raises InvalidArgument for a bad key, radix, length or numeral.
    """

    def __init__(self, key: bytes, radix: int = 10) -> None:
        if not isinstance(key, (bytes, bytearray)) or len(key) not in (16, 24, 32):
            raise InvalidArgument("key", "an AES key of 16, 24 or 32 bytes is required")
        if not isinstance(radix, int) or not 2 <= radix <= len(ALPHABET):
            raise InvalidArgument("radix", f"must be an integer in 2..{len(ALPHABET)}")
        self.radix = radix
        self.minlen = min_length(radix)
        self._aes = Cipher(algorithms.AES(bytes(key)), modes.ECB()).encryptor()

    # --- the standard, step by step, one value ---------------------------------------

    def _ciph(self, block: bytes) -> bytes:
        return self._aes.update(block)

    def _prf(self, data: bytes) -> bytes:
        """CBC-MAC with a zero IV; len(data) is a multiple of 16."""
        y = 0
        for i in range(0, len(data), 16):
            y = int.from_bytes(self._ciph((y ^ int.from_bytes(data[i:i + 16], "big")).to_bytes(16, "big")), "big")
        return y.to_bytes(16, "big")

    def _check(self, numerals: str, tweak: bytes) -> None:
        if not isinstance(tweak, (bytes, bytearray)):
            raise InvalidArgument("tweak", "must be bytes")
        if not self.minlen <= len(numerals) < 2**32:
            raise InvalidArgument("numerals", f"length must be at least {self.minlen} for radix {self.radix}")
        allowed = ALPHABET[: self.radix]
        if any(ch not in allowed for ch in numerals.lower()):
            raise InvalidArgument("numerals", f"not all characters are numerals of radix {self.radix}")

    def _params(self, n: int, t: int) -> tuple[int, int, int, int, bytes]:
        u, v = n // 2, n - n // 2
        b = -(-((self.radix**v - 1).bit_length()) // 8)  # ceil(ceil(v*log2(radix))/8)
        d = 4 * -(-b // 4) + 4
        p = bytes([1, 2, 1]) + self.radix.to_bytes(3, "big") + bytes([10, u % 256]) \
            + n.to_bytes(4, "big") + t.to_bytes(4, "big")
        return u, v, b, d, p

    def _round_y(self, p: bytes, tweak: bytes, i: int, num: int, b: int, d: int) -> int:
        q = tweak + bytes((-len(tweak) - b - 1) % 16) + bytes([i]) + num.to_bytes(b, "big")
        r = self._prf(p + q)
        s = r
        j = 1
        while len(s) < d:
            s += self._ciph((int.from_bytes(r, "big") ^ j).to_bytes(16, "big"))
            j += 1
        return int.from_bytes(s[:d], "big")

    def encrypt(self, numerals: str, tweak: bytes = b"") -> str:
        """FF1.Encrypt(K, T, X) (Algorithm 7)."""
        self._check(numerals, tweak)
        n = len(numerals)
        u, v, b, d, p = self._params(n, len(tweak))
        a, bb = int(numerals[:u], self.radix), int(numerals[u:], self.radix)
        for i in range(_ROUNDS):
            m = u if i % 2 == 0 else v
            c = (a + self._round_y(p, bytes(tweak), i, bb, b, d)) % self.radix**m
            a, bb = bb, c
        return _to_str(a, self.radix, u) + _to_str(bb, self.radix, v)

    def decrypt(self, numerals: str, tweak: bytes = b"") -> str:
        """FF1.Decrypt(K, T, Y) (Algorithm 8)."""
        self._check(numerals, tweak)
        n = len(numerals)
        u, v, b, d, p = self._params(n, len(tweak))
        a, bb = int(numerals[:u], self.radix), int(numerals[u:], self.radix)
        for i in reversed(range(_ROUNDS)):
            m = u if i % 2 == 0 else v
            c = (bb - self._round_y(p, bytes(tweak), i, a, b, d)) % self.radix**m
            a, bb = c, a
        return _to_str(a, self.radix, u) + _to_str(bb, self.radix, v)

    # --- many values at once ---------------------------------------------------------

    def encrypt_many(self, values: Sequence[str], tweak: bytes = b"") -> list[str]:
        """`[encrypt(x, tweak) for x in values]`, computed a length-group at a time."""
        return self._many(values, tweak, decrypt=False)

    def decrypt_many(self, values: Sequence[str], tweak: bytes = b"") -> list[str]:
        """`[decrypt(x, tweak) for x in values]`, computed a length-group at a time."""
        return self._many(values, tweak, decrypt=True)

    def _many(self, values: Sequence[str], tweak: bytes, *, decrypt: bool) -> list[str]:
        tweak = bytes(tweak)
        out: list[str] = [""] * len(values)
        groups: dict[int, list[int]] = {}
        for i, x in enumerate(values):
            groups.setdefault(len(x), []).append(i)
        for n, idx in groups.items():
            members = [values[i] for i in idx]
            for x in members[:1]:
                self._check(x, tweak)
            u, v, b, d, p = self._params(n, len(tweak))
            if b > 12:  # S spans more than one block: rare (over ~28 decimal digits)
                fn = self.decrypt if decrypt else self.encrypt
                results = [fn(x, tweak) for x in members]
            else:
                results = self._group(members, tweak, n, u, v, b, d, p, decrypt)
            for i, r in zip(idx, results):
                out[i] = r
        return out

    def _round_keys(self, tweak: bytes, b: int, p: bytes) -> list[int]:
        """Per round, the 128-bit value that XORed with NUM(B) (which sits in the last b
        bytes of Q's last block) gives the last CBC-MAC input block: the MAC chain over
        P and Q's constant blocks, folded with the last block's constant bytes."""
        keys = []
        for i in range(_ROUNDS):
            q = tweak + bytes((-len(tweak) - b - 1) % 16) + bytes([i]) + bytes(b)
            head, last = p + q[:-16], q[-16:]
            chain = self._prf(head)
            keys.append(int.from_bytes(chain, "big") ^ int.from_bytes(last, "big"))
        return keys

    def _group(self, members: list[str], tweak: bytes, n: int, u: int, v: int, b: int, d: int,
               p: bytes, decrypt: bool) -> list[str]:
        radix = self.radix
        try:
            a = [int(x[:u], radix) for x in members]
            bb = [int(x[u:], radix) for x in members]
        except ValueError:
            raise InvalidArgument("numerals", f"not all characters are numerals of radix {radix}") from None
        if self.numpy_ok(n):
            a_np, b_np = self.crypt_halves(np.array(a, dtype=np.uint64), np.array(bb, dtype=np.uint64), n, tweak,
                                           decrypt=decrypt)
            a, bb = a_np.tolist(), b_np.tolist()
        else:
            keys = self._round_keys(tweak, b, p)
            order = reversed(range(_ROUNDS)) if decrypt else range(_ROUNDS)
            for i in order:
                m = radix ** (u if i % 2 == 0 else v)
                ys = self._ys_python(keys[i], a if decrypt else bb, d)
                if decrypt:
                    a, bb = [(x - y) % m for x, y in zip(bb, ys)], a
                else:
                    a, bb = bb, [(x + y) % m for x, y in zip(a, ys)]
        return [_to_str(x, radix, u) + _to_str(y, radix, v) for x, y in zip(a, bb)]

    def numpy_ok(self, n: int) -> bool:
        """Whether `crypt_halves` takes `n` numerals: each half's value stays under 2**47, so
        that NUM(B) fits the block's last 8 bytes and y mod radix**m folds in 16-bit limbs
        without leaving uint64 (decimal: up to 28 digits, every IBAN's count)."""
        largest_half: int = self.radix ** (n - n // 2)
        return largest_half < _NUMPY_HALF_LIMIT

    def crypt_halves(self, a: _Halves, b: _Halves, n: int, tweak: bytes = b"", *,
                     decrypt: bool = False) -> tuple[_Halves, _Halves]:
        """FF1 over many inputs of `n` numerals given as their halves' values (uint64:
        A = NUM(X[:n//2]), B = NUM(X[n//2:])); returns the output's halves. Requires
        `numpy_ok(n)`: the whole computation stays in numpy, one AES call per round."""
        tweak = bytes(tweak)
        self._check("0" * n, tweak)
        if not self.numpy_ok(n):
            raise InvalidArgument("numerals", f"{n} numerals of radix {self.radix} exceed the vectorised path")
        u, v, b_len, d, p = self._params(n, len(tweak))
        keys = self._round_keys(tweak, b_len, p)
        order = reversed(range(_ROUNDS)) if decrypt else range(_ROUNDS)
        for i in order:
            modulus = self.radix ** (u if i % 2 == 0 else v)
            m = np.uint64(modulus)
            y = self._ys_mod_numpy(keys[i], a if decrypt else b, d, modulus)
            if decrypt:
                a, b = (b + m - y) % m, a
            else:
                a, b = b, (a + y) % m
        return a, b

    def crypt_numerals(self, numerals: npt.NDArray[np.uint8], tweak: bytes = b"", *,
                       decrypt: bool = False) -> npt.NDArray[np.uint8]:
        """`crypt_halves` over many inputs given as rows of numerals (each 0..radix-1, one
        input per row, all of the same length n); returns the output's rows. Requires
        `numpy_ok(n)`."""
        n = numerals.shape[1]
        u = n // 2
        a, b = self.crypt_halves(_num_rows(numerals[:, :u], self.radix), _num_rows(numerals[:, u:], self.radix), n,
                                 tweak, decrypt=decrypt)
        out = np.empty_like(numerals)
        out[:, :u] = _str_rows(a, u, self.radix)
        out[:, u:] = _str_rows(b, n - u, self.radix)
        return out

    def _ys_python(self, key: int, nums: list[int], d: int) -> list[int]:
        r = self._aes.update(b"".join((key ^ x).to_bytes(16, "big") for x in nums))
        return [int.from_bytes(r[16 * j:16 * j + d], "big") for j in range(len(nums))]

    def _ys_mod_numpy(self, key: int, nums: _Halves, d: int, modulus: int) -> _Halves:
        """NUM(S) mod `modulus` for every value (`numpy_ok`: NUM(B) < 2**47, d <= 16): only the
        last eight bytes of each block vary, and S, the first d bytes of R, is folded 16 bits
        at a time so that no intermediate leaves uint64."""
        count = len(nums)
        blocks = np.empty((count, 16), dtype=np.uint8)
        blocks[:, :8] = np.frombuffer((key >> 64).to_bytes(8, "big"), dtype=np.uint8)
        low = (np.uint64(key & 0xFFFFFFFFFFFFFFFF) ^ nums).astype(">u8")
        blocks[:, 8:] = low.view(np.uint8).reshape(count, 8)
        r = np.frombuffer(self._aes.update(blocks.tobytes()), dtype=np.uint8).reshape(count, 16)
        m = np.uint64(modulus)
        if d == 8:  # NUM(B) < 2**32: S is one uint64
            return np.ascontiguousarray(r[:, :8]).view(">u8").ravel().astype(np.uint64) % m
        s = r[:, :d].astype(np.uint64)
        acc = np.zeros(count, dtype=np.uint64)
        for j in range(0, d, 2):
            acc = (acc * np.uint64(65536) + (s[:, j] << np.uint64(8) | s[:, j + 1])) % m
        return acc