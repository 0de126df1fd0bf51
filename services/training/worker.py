"""The training worker: one process per job, so a crash never takes the service down.

The parent hands it tensors in a safetensors file and shared counters; it hands back the
result in files. `should_stop` is polled once before every noisy step (see train_dp), so the
shared `taken` count bounds the steps taken from above even if the worker is SIGKILLed, and a
step is only taken once the parent has persisted a lease (`allowed`) covering it.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import pathlib
import time
import traceback
from dataclasses import asdict
from typing import Any

__all__ = ["WorkerHandles", "run_worker", "wait_for_lease"]


class WorkerHandles:
    """The shared state between the scheduler and one worker process."""

    def __init__(self, ctx: Any) -> None:
        self.taken = ctx.Value("q", 0)
        self.allowed = ctx.Value("q", 0)
        self.cancel = ctx.Event()
        self.progress = ctx.Queue()


def run_worker(config: dict, data_path: str, out_dir: str, handles: WorkerHandles, home_root: str | None = None, workers: int = 1) -> None:
    from safetensors.torch import load_file

    from privet.governance.errors import InvalidArgument
    from privet.services.training.engine import DataRefused, Progress, TrainConfig, TrainingAborted, train_dp

    out = pathlib.Path(out_dir)
    if home_root is not None:
        from privet.services.common.bases import use_registry_for_bases

        use_registry_for_bases(home_root, "training")  # a fine-tuning job's base comes from the registry, into memory
        try:
            _fetch_base(config)
        except BaseException as exc:
            # Before any noisy step, and the base is public: its failure depends on no row,
            # so it is not charged as if training had looked at the data.
            (out / "result.json").write_text(json.dumps({"ok": False, "error": f"the base model could not be fetched: {exc}", "guarantee": None, "data_dependent": False}))
            return

    tensors = load_file(data_path)

    def on_progress(p: Progress) -> None:
        handles.progress.put(asdict(p))

    parent = os.getppid()

    def should_stop() -> bool:
        if handles.cancel.is_set() or not wait_for_lease(handles, parent):
            return True
        with handles.taken.get_lock():
            handles.taken.value += 1
        return False

    try:
        splits = (tensors["x_train"], tensors["y_train"]), (tensors["x_valid"], tensors["y_valid"])
        if workers > 1:
            from privet.services.training.distributed import train_dp_distributed

            result = train_dp_distributed(TrainConfig(**config), *splits, world_size=workers, on_progress=on_progress, should_stop=should_stop,
                                          base_home=home_root)
        else:
            result = train_dp(TrainConfig(**config), *splits, on_progress=on_progress, should_stop=should_stop)
        (out / "weights.safetensors").write_bytes(result.weights)
        summary = {
            "ok": True, "model": result.model, "metrics": asdict(result.metrics),
            "guarantee": result.guarantee.to_dict(), "evaluation": result.evaluation.to_dict(), "registrable": result.registrable, "refusal": result.refusal, "cancelled": result.cancelled,
            "device": result.device, "grad_sample_mode": result.grad_sample_mode,
        }
    # `data_dependent`: whether the failure may depend on the private rows (the parent then
    # charges the whole reservation and publishes no detail); refusals of the configuration
    # and public counts do not.
    except TrainingAborted as exc:
        summary = {"ok": False, "error": str(exc), "guarantee": exc.guarantee.to_dict(), "data_dependent": True}
    except DataRefused as exc:
        summary = {"ok": False, "error": exc.message, "field": exc.field, "guarantee": None, "data_dependent": True}
    except InvalidArgument as exc:
        summary = {"ok": False, "error": exc.message, "field": exc.field, "guarantee": None, "data_dependent": False}
    except BaseException as exc:
        summary = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc(), "guarantee": None, "data_dependent": True}
    (out / "result.json").write_text(json.dumps(summary, default=str))


def _fetch_base(config: dict) -> None:
    """Fetch and check a fine-tuning job's base before training starts (kept in memory)."""
    base = (config.get("hparams") or {}).get("base")
    if isinstance(base, dict):
        from privet.governance.basemodels.source import base_files

        base_files(base)


def wait_for_lease(handles: WorkerHandles, parent: int, poll_s: float = 0.005) -> bool:
    """Block until the parent's lease covers one more step: True then; False once the job is
    cancelled or the parent is gone. A parent killed outright (SIGKILL) cannot stop its
    daemonic worker, and a lease it will never extend would hold this process for ever."""
    while handles.taken.value >= handles.allowed.value:
        if handles.cancel.is_set() or os.getppid() != parent:  # orphans are re-parented
            return False
        time.sleep(poll_s)
    return True


def spawn_context() -> Any:
    # spawn, not fork: the parent runs gRPC threads, which must not be forked.
    return mp.get_context("spawn")
