"""Timing helpers shared by the training benchmarks: device-synchronised step blocks and peak memory."""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["Interleaved", "interleave", "sync", "peak_mib", "time_block"]


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


@dataclass(frozen=True)
class Interleaved:
    plain_times: list[float]
    dp_times: list[float]
    peak_plain: float  # after the plain warm-up
    peak_dp: float  # after the DP rounds (on CUDA, the allocator's peak since the plain warm-up)


def interleave(plain: Any, dp: Any, args: tuple, device: Any, *, warmup: int, steps: int, rounds: int) -> Interleaved:
    """Warm up both steps, then alternate rounds of `steps` plain and DP calls, so that drift
    on a shared host hits both sides alike. Seconds per call, per round."""
    import torch

    time_block(plain, args, warmup, device)
    peak_plain = peak_mib(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    time_block(dp, args, warmup, device)
    plain_times, dp_times = [], []
    for _ in range(rounds):
        plain_times.append(time_block(plain, args, steps, device))
        dp_times.append(time_block(dp, args, steps, device))
    return Interleaved(plain_times, dp_times, peak_plain, peak_mib(device))
