"""A seeded stand-in for `SecureRandom`, for tests that must compare two runs draw for draw
(clipping modes, initialisation). Production code has no way to seed the real one."""

from __future__ import annotations

import numpy as np
import torch


class SeededRandom:
    """The `SecureRandom` interface over numpy's PCG64, seeded."""

    def __init__(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)

    def uniform(self, n: int) -> np.ndarray:
        return 1.0 - self._rng.random(n)  # (0, 1], like SecureRandom

    def bernoulli_mask(self, n: int, p: float) -> torch.Tensor:
        return torch.from_numpy(self.uniform(n) <= p)

    def normal(self, n: int, std: float, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.from_numpy(self._rng.normal(0.0, std, n)).to(device=device, dtype=dtype)
