"""Timing helpers shared by the training benchmarks: device-synchronised step blocks and peak memory."""

from __future__ import annotations

import multiprocessing
import os
import platform
import resource
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["Interleaved", "child_setup", "environment", "interleave", "in_children", "sync", "peak_mib", "time_block"]


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


def in_children(target: Callable[..., None], arg_tuples: Iterable[tuple]) -> list[Any]:
    """Run `target(*args, queue)` for each args in a fresh spawned process, one at a time
    (each configuration starts from a clean allocator and thread pool); their results."""
    context = multiprocessing.get_context("spawn")
    results = []
    for args in arg_tuples:
        queue = context.Queue()
        child = context.Process(target=target, args=(*args, queue))
        child.start()
        results.append(queue.get())
        child.join()
    return results


def environment(threads: int | None) -> dict[str, Any]:
    """What the figures were measured on."""
    import opacus
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "opacus": opacus.__version__,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "torch_threads": threads or torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def child_setup(opts: dict[str, Any]) -> tuple[Any, bool]:
    """In a benchmark child: quiet warnings, pick the device, tune the CPU allocator if asked,
    set torch's threads. Returns (device, whether the allocator was tuned)."""
    import torch

    from privet.services.training.process_settings import resolve_device, tune_allocator

    warnings.simplefilter("ignore")
    device = resolve_device(opts["device"])
    tuned = tune_allocator() if opts["tune_allocator"] and device.type == "cpu" else False
    if opts["threads"]:
        torch.set_num_threads(opts["threads"])
    return device, tuned
