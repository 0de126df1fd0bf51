"""Process-level settings for a training worker: device choice and the C allocator.

DP-SGD allocates and frees batch-sized buffers on every step (activations kept for
clipping, per-sample norms, noise). With glibc's defaults, large blocks are served by
`mmap` and handed back to the OS on `free`, and the top of the heap is trimmed as soon as
it is free, so every step pays page faults to get the same memory back. Measured on
2 cores (Opacus 1.6, torch 2.13, MLP at batch 256): hooks mode 15.4 ms → 6.6 ms per
step, ghost clipping 2.5 ms → 2.3 ms, with `tune_allocator()`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import torch

from privet.governance.errors import InvalidArgument
from privet.governance.training.job_spec import DEVICES

__all__ = ["DEVICES", "resolve_device", "tune_allocator"]


# mallopt(3) parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

# Blocks up to this size come from the heap and are reused; glibc refuses more than
# 32 MiB (HEAP_MAX_SIZE / 2 on 64-bit), and larger blocks are rare at these batch sizes.
_MMAP_THRESHOLD = 32 << 20
# Keep up to this much free memory at the top of the heap instead of returning it.
_TRIM_THRESHOLD = 512 << 20
# Grow the heap in steps this large, so a growing batch does not call brk each time.
_TOP_PAD = 64 << 20

_tuned: bool | None = None


def tune_allocator() -> bool:
    """Stop glibc from returning per-step buffers to the OS between steps.

    Affects the whole process (meant for a training worker); idempotent. Returns
    whether the settings were applied (False off glibc, e.g. macOS or musl).
    """
    global _tuned
    if _tuned is not None:
        return _tuned
    _tuned = False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success; setting the mmap threshold explicitly also turns off
    # glibc's sliding threshold, which would otherwise keep moving under us.
    _tuned = all(
        mallopt(param, value) == 1
        for param, value in (
            (_M_MMAP_THRESHOLD, _MMAP_THRESHOLD),
            (_M_TRIM_THRESHOLD, _TRIM_THRESHOLD),
            (_M_TOP_PAD, _TOP_PAD),
        )
    )
    return _tuned


def resolve_device(name: str) -> torch.device:
    """`auto` → CUDA when present, else CPU. Raises InvalidArgument("device") for an
    unknown name, or for `cuda` on a machine without a usable CUDA device."""
    if name not in DEVICES:
        raise InvalidArgument("device", f"must be one of {', '.join(DEVICES)}, got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InvalidArgument("device", "cuda requested but no CUDA device is available")
    return torch.device(name)
