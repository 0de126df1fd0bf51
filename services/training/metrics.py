"""Held-out evaluation of a classifier: accuracy, ROC AUC, loss, majority baseline."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["Metrics", "evaluate", "roc_auc"]


@dataclass(frozen=True)
class Metrics:
    """Held-out metrics. `roc_auc` is None when undefined (a split with one class only);
    for more than two classes it is the macro average of one-vs-rest AUCs over the
    classes present. `baseline_accuracy` is what always predicting the split's most
    frequent class scores — the bar a model must clear."""

    accuracy: float
    roc_auc: float | None
    loss: float
    baseline_accuracy: float
    examples: int

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)  # rank of the last member of each run of equal values
    return (last - (counts - 1) / 2.0)[inverse]


def _binary_auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = _average_ranks(scores)
    # Mann–Whitney U: the probability a random positive outscores a random negative.
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def roc_auc(probabilities: np.ndarray, labels: np.ndarray) -> float | None:
    """ROC AUC from class probabilities (rows × classes) and integer labels.

    Two classes: the AUC of the class-1 probability. More: the unweighted mean of the
    one-vs-rest AUCs of the classes that are present and absent somewhere. None when no
    class qualifies.
    """
    n_classes = probabilities.shape[1]
    if n_classes == 2:
        return _binary_auc(probabilities[:, 1], labels == 1)
    aucs = [a for k in range(n_classes) if (a := _binary_auc(probabilities[:, k], labels == k)) is not None]
    return float(np.mean(aucs)) if aucs else None


@torch.no_grad()
def evaluate(model: nn.Module, features: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 4096) -> Metrics:
    """Evaluate `model` (put in eval mode) on a held-out split. Requires at least one row."""
    if features.shape[0] == 0:
        raise ValueError("cannot evaluate on an empty split")
    model.eval()
    losses, probs = [], []
    for start in range(0, features.shape[0], batch_size):
        logits = model(features[start : start + batch_size]).float()
        y = labels[start : start + batch_size]
        losses.append(F.cross_entropy(logits, y, reduction="sum"))
        probs.append(torch.softmax(logits, dim=1))
    p = torch.cat(probs).cpu().numpy().astype(np.float64)
    truth = labels.cpu().numpy()
    n = len(truth)
    loss = float(torch.stack(losses).sum().item()) / n
    accuracy = float((p.argmax(axis=1) == truth).mean())
    baseline = float(np.bincount(truth, minlength=p.shape[1]).max() / n)
    auc = roc_auc(p, truth) if np.all(np.isfinite(p)) else None
    return Metrics(
        accuracy=accuracy,
        roc_auc=auc,
        loss=loss,
        baseline_accuracy=baseline,
        examples=n,
    )
