"""Timing helpers shared by the training benchmarks: device-synchronised step blocks and peak memory."""

from __future__ import annotations

import resource
import time
from typing import Any

__all__ = ["sync", "peak_mib", "time_block"]


def sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_mib(device: Any) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def time_block(step: Any, args: tuple, n: int, device: Any) -> float:
    """Seconds per call of `step(*args)` over `n` calls, with the device synchronised around them."""
    sync(device)
    start = time.perf_counter()
    for _ in range(n):
        step(*args)
    sync(device)
    return (time.perf_counter() - start) / n
