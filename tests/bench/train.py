"""Benchmark: one DP-SGD step against the same model's non-private step.

    python -m tests.bench.train --json
    python -m tests.bench.train --arch mlp --modes bk,ghost,hooks --device cuda

For each architecture and per-sample-gradient mode, a fresh process builds the model,
then alternates blocks of non-private steps and DP steps on the same fixed batch (so
machine noise hits both alike) and reports median times per step, samples/s, the
DP/non-private ratio, and peak memory (process RSS on CPU, whose imports alone take
~400 MiB, so compare with `peak_mib_setup`; the allocator's peak on CUDA). The
DP step is the one training runs (`PrivateTraining.step`: forward, per-sample clipping,
noise, optimizer step); `dp_loop_step_ms` adds Poisson sampling and Opacus's
BatchMemoryManager, i.e. a whole logical step of the real loop.

Noise and Poisson sampling come from the secret AES-CTR source (`SecureRandom`), as in
training. What that costs against torch's seedable generator (which training used before
and must not) is measured in the same process: `noise_secure_ms` / `noise_torch_ms` for
one draw of the model's parameter count, and `--noise-sizes` adds draws of other sizes
(text-minilm trains 1.8 M parameters).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any

from tests.bench._timing import child_setup, environment, in_children, interleave, peak_mib, sync

_ROWS = 256 * 40


def _measure(arch: str, mode: str, opts: dict[str, Any]) -> dict[str, Any]:
    import torch

    from privet.governance.architectures import build_model
    from privet.services.training.dp import (
        TensorRows,
        make_private,
        plain_step_fn,
        quiet_hook_warnings,
    )

    device, tuned = child_setup(opts)
    batch, features = opts["batch"], opts["features"]
    hparams: dict[str, Any] = {}
    if arch == "mlp":
        if opts["hidden"]:
            hparams["hidden"] = opts["hidden"]
        if opts["layer_norm"]:
            hparams["layer_norm"] = True

    torch.manual_seed(0)
    x = torch.randn(_ROWS, features, device=device)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    xb, yb = x[:batch], y[:batch]

    def build() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(1)
        model = build_model(arch, features, 2, **hparams).to(device)
        return model, torch.optim.Adam(model.parameters(), lr=1e-3)

    plain_model, plain_opt = build()
    plain = plain_step_fn(plain_model, plain_opt)

    dp_model, dp_opt = build()
    training = make_private(
        model=dp_model,
        optimizer=dp_opt,
        train=TensorRows(x, y),
        batch_size=batch,
        epochs=1000,  # a long horizon so the loop below never runs out of steps
        target_epsilon=8.0,
        delta=1e-6,
        max_grad_norm=1.0,
        accountant="rdp",  # only the noise multiplier's search uses it; rdp is quicker
        mode=mode,
        calibration="accountant",
    )
    n_params = sum(p.numel() for p in dp_model.parameters())

    peak_setup = peak_mib(device)
    with quiet_hook_warnings():
        timed = interleave(plain, training.step, (xb, yb), device,
                           warmup=opts["warmup"], steps=opts["steps"], rounds=opts["rounds"])
        plain_times, dp_times, peak_plain, peak_dp = timed.plain_times, timed.dp_times, timed.peak_plain, timed.peak_dp

        # The real loop: Poisson sampling, BatchMemoryManager, one logical step each.
        from opacus.utils.batch_memory_manager import BatchMemoryManager

        loop_steps = min(opts["rounds"] * opts["steps"], training.steps_per_epoch)
        with BatchMemoryManager(
            data_loader=training.loader, max_physical_batch_size=4 * batch, optimizer=training.optimizer
        ) as loader:
            taken = training.steps
            sync(device)
            start = time.perf_counter()
            for features_batch, labels_batch in loader:
                training.step(features_batch, labels_batch)
                if training.steps - taken >= loop_steps:
                    break
            sync(device)
            loop_time = (time.perf_counter() - start) / max(training.steps - taken, 1)
    training.close()

    plain_s = statistics.median(plain_times)
    dp_s = statistics.median(dp_times)
    noise = {n: _noise_cost(n, device, opts["rounds"]) for n in [n_params, *opts["noise_sizes"]]}
    return {
        "arch": arch,
        "mode": mode,
        "hparams": hparams or None,
        "features": features,
        "parameters": n_params,
        "batch": batch,
        "device": str(device),
        "allocator_tuned": tuned,
        "plain_step_ms": round(plain_s * 1e3, 4),
        "dp_step_ms": round(dp_s * 1e3, 4),
        "ratio": round(dp_s / plain_s, 3),
        "plain_samples_per_s": round(batch / plain_s),
        "dp_samples_per_s": round(batch / dp_s),
        "dp_loop_step_ms": round(loop_time * 1e3, 4),
        "noise_secure_ms": noise[n_params][0],
        "noise_torch_ms": noise[n_params][1],
        "noise_by_size": {str(n): {"secure_ms": a, "torch_ms": b, "ratio": round(a / b, 2)} for n, (a, b) in noise.items()},
        "peak_mib_setup": round(peak_setup, 1),
        "peak_mib_plain": round(peak_plain, 1),
        "peak_mib_dp": round(peak_dp, 1),
        "peak_mib_kind": "cuda max_memory_allocated" if device.type == "cuda" else "process max RSS",
    }


def _noise_cost(n: int, device: Any, rounds: int) -> tuple[float, float]:
    """Median ms of one N(0, 1) draw of `n` values: the secret source against torch's
    generator, alternated so machine noise hits both alike."""
    import torch

    from privet.governance.privacy.secure_random import SecureRandom

    secure, generator = SecureRandom(), torch.Generator(device=device).manual_seed(0)
    times: dict[str, list[float]] = {"secure": [], "torch": []}
    draws = {
        "secure": lambda: secure.normal(n, 1.0, device=device),
        "torch": lambda: torch.normal(0.0, 1.0, size=(n,), generator=generator, device=device),
    }
    for _ in range(max(rounds, 3) * 3):
        for name, draw in draws.items():
            sync(device)
            start = time.perf_counter()
            draw()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return round(statistics.median(times["secure"]) * 1e3, 4), round(statistics.median(times["torch"]) * 1e3, 4)


def _child(arch: str, mode: str, opts: dict[str, Any], queue: Any) -> None:
    try:
        queue.put(_measure(arch, mode, opts))
    except Exception as exc:
        queue.put({"arch": arch, "mode": mode, "error": f"{type(exc).__name__}: {exc}"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.train", description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--arch", default="mlp,logreg", help="comma-separated architectures (default mlp,logreg)")
    parser.add_argument("--modes", default="bk,ghost,hooks", help="comma-separated grad-sample modes")
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--hidden", default="", help="mlp widths, e.g. 512,512 (default: the catalog's)")
    parser.add_argument("--layer-norm", action="store_true", help="mlp with LayerNorm (bk does not apply)")
    parser.add_argument("--steps", type=int, default=50, help="steps per timed block")
    parser.add_argument("--rounds", type=int, default=7, help="alternating plain/DP blocks")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--no-tune-allocator", dest="tune_allocator", action="store_false")
    parser.add_argument("--noise-sizes", default="1800000", help="extra noise draw sizes to time, comma-separated")
    args = parser.parse_args(argv)

    opts = {
        "device": args.device,
        "batch": args.batch,
        "features": args.features,
        "hidden": [int(h) for h in args.hidden.split(",")] if args.hidden else None,
        "layer_norm": args.layer_norm,
        "steps": args.steps,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "threads": args.threads,
        "tune_allocator": args.tune_allocator,
        "noise_sizes": [int(n) for n in args.noise_sizes.split(",") if n],
    }
    results = in_children(_child, [(arch, mode, opts) for arch in args.arch.split(",") for mode in args.modes.split(",")])

    import opacus
    import torch

    from privet.services.training.dp import FASTEST_MODE

    report = {
        "command": "python -m tests.bench.train " + " ".join(argv if argv is not None else sys.argv[1:]),
        "environment": environment(args.threads),
        "modes_fastest_first": FASTEST_MODE,
        "results": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"torch {torch.__version__}, opacus {opacus.__version__}, {os.cpu_count()} CPUs, device {args.device}")
        print(
            f"{'arch':8} {'mode':6} {'plain ms':>9} {'DP ms':>9} {'ratio':>6} {'DP rows/s':>10} {'loop ms':>8} {'peak MiB':>9} {'noise ms secure/torch':>22}"
        )
        for r in results:
            if "error" in r:
                print(f"{r['arch']:8} {r['mode']:6} error: {r['error']}")
                continue
            print(
                f"{r['arch']:8} {r['mode']:6} {r['plain_step_ms']:9.3f} {r['dp_step_ms']:9.3f} {r['ratio']:6.2f} "
                f"{r['dp_samples_per_s']:10d} {r['dp_loop_step_ms']:8.3f} {r['peak_mib_dp']:9.1f} "
                f"{r['noise_secure_ms']:10.3f}/{r['noise_torch_ms']:.3f}"
            )
            for size, cost in r["noise_by_size"].items():
                print(f"    noise draw of {size} values: secure {cost['secure_ms']} ms, torch {cost['torch_ms']} ms ({cost['ratio']}×)")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
