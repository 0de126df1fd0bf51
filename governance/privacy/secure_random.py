"""The randomness a DP mechanism's guarantee rests on: secret, unpredictable, never recorded.

DP-SGD's ε holds only if nobody can predict its noise or its Poisson sample. A generator
seeded from a known value (a job's seed) lets anyone who knows every other row re-run the
training on both candidates for the last row and see which one reproduces the released
weights: the effective ε is infinite whatever the accountant says.

`SecureRandom` draws from AES-256 in counter mode keyed by 32 bytes from the operating
system's CSPRNG (`os.urandom`). The key lives only in this object's memory and dies with
the training process: it is never logged, stored, returned or derivable from anything
Privet records. AES-CTR is a standard CSPRNG construction (NIST SP 800-90A's CTR_DRBG is
built on it), runs on AES-NI, and predicting its output without the key is breaking AES.

Opacus's own answer, `secure_mode=True`, needs `torchcsprng`, unmaintained since 2021 and
not built for current torch; this module is the replacement (see docs/privacy.md).

Residual risks, stated for auditors:
- Floating point. Gaussian noise is computed in float64 by Box–Muller from 53-bit uniforms
  and added in the parameters' dtype. Rounding makes the sum not exactly Gaussian; attacks
  on floating-point Laplace/Gaussian samplers (Mironov 2012; Jin et al. 2022) need the
  attacker to see individual noisy values at full precision over many releases. Released
  weights are the sum of thousands of noisy steps passed through an optimizer, which is not
  that setting, but the guarantee is stated for ideal real-valued noise.
- Process memory. Anyone who can read the training worker's memory while it runs can read
  the key — and the raw training data, which is the greater loss.
"""

from __future__ import annotations

import math
import os
import threading
from typing import Any

import numpy as np
import torch
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["SecureRandom"]

_TWO_PI = 2.0 * math.pi
_2_POW_MINUS_53 = 2.0**-53
#: Keystream is produced in blocks of this many bytes at most, to bound peak memory.
_MAX_BLOCK = 1 << 24


class SecureRandom:
    """Uniform and Gaussian draws from an AES-256-CTR keystream under a fresh random key.

    Thread-safe. Two instances never share a key (each draws its own from the OS); there
    is deliberately no way to seed one.
    """

    def __init__(self) -> None:
        cipher = Cipher(algorithms.AES(os.urandom(32)), modes.CTR(os.urandom(16)))
        self._encryptor = cipher.encryptor()
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never show anything key-derived
        return "SecureRandom()"

    def __reduce__(self) -> tuple[Any, ...]:
        # A pickled copy would replay the same stream elsewhere: refuse.
        raise TypeError("SecureRandom cannot be pickled or copied")

    def random_bytes(self, n: int) -> bytes:
        """`n` bytes of keystream."""
        if n < 0:
            raise ValueError("n must be >= 0")
        with self._lock:
            return self._encryptor.update(bytes(n))

    def _uint64(self, n: int) -> np.ndarray:
        return np.frombuffer(self.random_bytes(8 * n), dtype=np.uint64)

    def uniform(self, n: int) -> np.ndarray:
        """`n` float64 uniforms in (0, 1]: a 53-bit integer k gives (k + 1) · 2⁻⁵³, so 0 never
        occurs (Box–Muller takes its logarithm) and every value is exactly representable."""
        k = self._uint64(n) >> np.uint64(11)
        return (k.astype(np.float64) + 1.0) * _2_POW_MINUS_53

    def bernoulli_mask(self, n: int, p: float) -> torch.Tensor:
        """A boolean tensor of `n` independent draws, each True with probability `p`
        (Poisson sampling: row i is in the batch iff its uniform is below p)."""
        return torch.from_numpy(self.uniform(n) <= p)  # a fresh, writable array

    def normal(self, n: int, std: float, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """`n` independent N(0, std²) draws as a 1-D tensor on `device`, computed in float64
        by the Box–Muller transform, then cast to `dtype`."""
        if n < 0:
            raise ValueError("n must be >= 0")
        if not (math.isfinite(std) and std >= 0):
            raise ValueError(f"std must be finite and >= 0, got {std!r}")
        out = torch.empty(n, device=device, dtype=dtype)
        done = 0
        while done < n:
            count = min(n - done, _MAX_BLOCK // 8)
            out[done : done + count] = self._normal_block(count, std, device).to(dtype)
            done += count
        return out

    def _normal_block(self, n: int, std: float, device: torch.device | str) -> torch.Tensor:
        half = (n + 1) // 2
        # Uniform bits go to the device as integers; the transform runs there (cheap on CUDA).
        bits = torch.frombuffer(bytearray(self.random_bytes(16 * half)), dtype=torch.int64).to(device)
        k = torch.bitwise_right_shift(bits, 11) & ((1 << 53) - 1)
        u = (k.to(torch.float64) + 1.0) * _2_POW_MINUS_53
        radius = torch.sqrt(-2.0 * torch.log(u[:half])) * std
        angle = _TWO_PI * u[half:]
        return torch.cat((radius * torch.cos(angle), radius * torch.sin(angle)))[:n]
