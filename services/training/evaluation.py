"""Held-out evaluation of a classifier, released with DP: accuracy, ROC AUC, loss, baseline.

The exact figures are functions of the held-out rows (the majority baseline alone gives
away labels), so nothing exact leaves `evaluate`. Each held-out row falls into one cell
of a histogram — for two classes, (true class, predicted probability of class 1 in one of
`BINS` bins); for more, (true class, predicted class) — and the histogram is released
with Laplace noise (`governance.privacy.dp_statistics.noisy_histogram`, ε-DP). Every
metric is computed from the noisy histogram alone (post-processing):

- accuracy and the majority-class baseline, from the cells' totals;
- for two classes, ROC AUC from the binned scores (ties within a bin count half) and the
  cross-entropy loss at each bin's midpoint; both None for more classes;
- `examples`, the noisy number of held-out rows.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from privet.governance.privacy.dp_statistics import noisy_histogram
from privet.governance.privacy.secure_random import SecureRandom

__all__ = ["BINS", "Metrics", "evaluate", "evaluate_causal_lm", "held_out_metrics", "metrics_from_histogram"]

#: Probability bins of a binary classifier's evaluation histogram (0.5 is a boundary).
#: Few, because each cell carries its own noise; enough for a useful ROC AUC.
BINS = 6


@dataclass(frozen=True)
class Metrics:
    """DP held-out metrics (see the module docstring). `roc_auc` and `loss` are None for
    more than two classes or when the noisy histogram leaves them undefined.
    `accuracy_noise` is the standard deviation the Laplace noise adds to accuracy minus
    baseline (a function of ε, the histogram's shape and the noisy row count only)."""

    accuracy: float
    roc_auc: float | None
    loss: float | None
    baseline_accuracy: float
    examples: int
    accuracy_noise: float = 0.0

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def _binary_auc(pos: np.ndarray, neg: np.ndarray) -> float | None:
    """P(a positive's bin > a negative's) + ½ P(same bin), from bin counts."""
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos <= 0 or n_neg <= 0:
        return None
    below = np.concatenate(([0.0], np.cumsum(neg)[:-1]))
    return float(np.clip((pos * (below + neg / 2.0)).sum() / (n_pos * n_neg), 0.0, 1.0))


def metrics_from_histogram(hist: np.ndarray, *, laplace_scale: float = 0.0) -> Metrics:
    """Metrics from a (noisy) histogram: k × BINS for two classes (k = 2), else k × k.
    `laplace_scale` is the noise's scale per cell (0 for exact counts)."""
    total = float(hist.sum())
    if total <= 0:
        # Nothing but noise, and cancelling noise at that: no figure here means anything.
        return Metrics(accuracy=0.0, roc_auc=None, loss=None, baseline_accuracy=1.0, examples=0, accuracy_noise=1.0 if laplace_scale else 0.0)
    per_class = hist.sum(axis=1)
    baseline = float(per_class.max() / total)
    if hist.shape[1] == BINS and hist.shape[0] == 2:
        half = BINS // 2
        correct = hist[0, :half].sum() + hist[1, half:].sum()
        mid = (np.arange(BINS) + 0.5) / BINS
        loss = float((hist[1] * -np.log(mid)).sum() + (hist[0] * -np.log1p(-mid)).sum()) / total
        auc = _binary_auc(hist[1], hist[0])
    else:
        correct = float(np.trace(hist))
        loss, auc = None, None
    # Correct cells: one per row of the histogram's width halves (binary) or the diagonal;
    # the baseline reads one class's row. Laplace(b) has variance 2b² per cell.
    correct_cells = hist.shape[1] if hist.shape[1] == BINS and hist.shape[0] == 2 else hist.shape[0]
    noise = math.sqrt(2 * laplace_scale**2 * (correct_cells + hist.shape[1])) / total
    # Four decimals: far finer than the noise, and no full-precision sum of Laplace draws
    # (floating-point attacks on noise read exactly those low-order bits).
    return Metrics(
        accuracy=_published(min(correct / total, 1.0)),
        roc_auc=None if auc is None else _published(auc),
        loss=None if loss is None else _published(loss),
        baseline_accuracy=_published(baseline),
        examples=int(round(total)),
        accuracy_noise=_published(noise),
    )


def _published(value: float) -> float:
    return round(float(value), 4)


@torch.no_grad()
def _histogram(model: nn.Module, features: torch.Tensor, labels: torch.Tensor, batch_size: int, n_classes: int) -> np.ndarray:
    model.eval()
    probs = []
    for start in range(0, features.shape[0], batch_size):
        probs.append(torch.softmax(model(features[start : start + batch_size]).float(), dim=1))
    p = torch.cat(probs).cpu().numpy().astype(np.float64) if probs else np.zeros((0, n_classes))
    truth = labels.cpu().numpy()
    if not np.all(np.isfinite(p)):
        p = np.nan_to_num(p, nan=1.0 / n_classes)
    if n_classes == 2:
        cell = np.minimum((p[:, 1] * BINS).astype(np.int64), BINS - 1)
        # argmax picks class 0 on an exact tie, so p1 = 0.5 goes below the boundary.
        cell = np.where(p[:, 1] == 0.5, BINS // 2 - 1, cell)
        width = BINS
    else:
        cell = p.argmax(axis=1)
        width = n_classes
    counts = np.zeros((n_classes, width), dtype=np.float64)
    np.add.at(counts, (truth, cell), 1.0)
    return counts


def evaluate(
    model: nn.Module,
    features: torch.Tensor,
    labels: torch.Tensor,
    *,
    n_classes: int,
    epsilon: float,
    random: SecureRandom,
    batch_size: int = 4096,
) -> Metrics:
    """ε-DP metrics of `model` (put in eval mode) on a held-out split (see the module
    docstring); an empty split gives a histogram of noise alone. Requires epsilon > 0."""
    if not (epsilon > 0 and math.isfinite(epsilon)):
        raise ValueError("the evaluation's epsilon must be finite and > 0")
    exact = _histogram(model, features, labels, batch_size, n_classes)
    return metrics_from_histogram(noisy_histogram(exact, epsilon=epsilon, random=random), laplace_scale=1.0 / epsilon)


@torch.no_grad()
def evaluate_causal_lm(model: nn.Module, ids: torch.Tensor, *, pad_id: int, epsilon: float, random: SecureRandom, batch_size: int = 64) -> Metrics:
    """ε-DP held-out next-token accuracy of a causal language model on token ids.

    Each held-out row contributes the share `a` of its next tokens the model predicts
    (argmax) to one cell and `1 - a` to another: adding or removing a row moves the two
    cells by `a` and `1 - a`, an L1 distance of exactly 1, so Laplace(1/ε) per cell (the
    same release as a classifier's histogram) is ε-DP. Accuracy and the row count are read
    off the noisy cells alone; a language model has no majority-class baseline (0)."""
    if not (epsilon > 0 and math.isfinite(epsilon)):
        raise ValueError("the evaluation's epsilon must be finite and > 0")
    model.eval()
    right = total = 0.0
    for start in range(0, ids.shape[0], batch_size):
        batch = ids[start : start + batch_size]
        targets = batch[:, 1:]
        predicted = model(batch)[:, :-1].argmax(dim=-1)
        counted = (targets != pad_id).to(torch.float64)
        shares = ((predicted == targets).to(torch.float64) * counted).sum(dim=1) / counted.sum(dim=1).clamp(min=1.0)
        right += float(shares.sum())
        total += float(shares.shape[0])
    noisy = noisy_histogram(np.array([[right, total - right]]), epsilon=epsilon, random=random)
    rows = float(noisy.sum())
    if rows <= 0:
        return Metrics(accuracy=0.0, roc_auc=None, loss=None, baseline_accuracy=0.0, examples=0, accuracy_noise=1.0)
    noise = math.sqrt(2 * 2 * (1.0 / epsilon) ** 2) / rows
    return Metrics(accuracy=_published(min(float(noisy[0, 0]) / rows, 1.0)), roc_auc=None, loss=None, baseline_accuracy=0.0,
                   examples=int(round(rows)), accuracy_noise=_published(noise))


def held_out_metrics(model: nn.Module, features: torch.Tensor, labels: torch.Tensor, *, token_inputs: bool, causal: bool, n_classes: int,
                     epsilon: float) -> Metrics:
    """A trained model's ε-DP held-out metrics, the way its kind is judged: a causal
    language model's next-token accuracy, else a classifier's histogram (token inputs run a
    transformer, whose attention memory grows with rows × tokens²: smaller batches)."""
    if causal:
        return evaluate_causal_lm(model, features, pad_id=int(getattr(model, "pad_id")), epsilon=epsilon, random=SecureRandom())  # noqa: B009
    return evaluate(model, features, labels, n_classes=n_classes, epsilon=epsilon, random=SecureRandom(), batch_size=256 if token_inputs else 4096)
