"""Task losses and evaluation metrics with missing labels (``NaN``) masked out.

Shapes: ``y`` and ``output`` are ``(B, T)``; ``NaN`` in ``y`` marks a missing label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from trainables.data.tasks import TaskType

SQRT_FLOOR = 1e-12


def task_loss(task_type: TaskType, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean loss over present labels, reduced over the last two dimensions ``(B, T)``.

    Classification: ``sum_{present} BCEWithLogits(output, y) / #present``.
    Regression (as the reference code): ``sqrt(mean_{present} (output - y)^2)`` per batch.
    Shapes ``(B, T) -> ()``; stacked trials ``(K, B, T) -> (K,)``, one loss per trial.
    """
    present = ~torch.isnan(y)
    target = torch.where(present, y, torch.zeros_like(y)).to(output.dtype)
    count = present.sum(dim=(-2, -1)).clamp(min=1)
    if task_type is TaskType.CLASSIFICATION:
        losses = F.binary_cross_entropy_with_logits(output, target, reduction="none")
        return (losses * present).sum(dim=(-2, -1)) / count
    squared = (output - target).pow(2) * present
    mse = squared.sum(dim=(-2, -1)) / count
    # sqrt has an infinite gradient at 0 (a batch without labels, or a perfect fit), which
    # masking turns into NaN: there, return the MSE itself (value 0, gradient 0).
    return torch.where(mse > 0, torch.sqrt(mse.clamp(min=SQRT_FLOOR)), mse)


@dataclass(frozen=True)
class Score:
    """A metric value and how many label columns it averages (``skipped``: columns left out)."""

    value: float
    evaluated: int
    skipped: int


def roc_auc(y: np.ndarray, scores: np.ndarray) -> Score:
    """ROC-AUC averaged over the columns that have both classes among present labels.

    Columns with one class only (or no labels) in the evaluated set are left out and counted
    in ``skipped``; ``value`` is ``NaN`` when every column is left out.
    """
    return evaluate_metric_stacked(TaskType.CLASSIFICATION, y, scores[None])[0]


def rmse(y: np.ndarray, predictions: np.ndarray) -> Score:
    """Root mean squared error per column over present labels, averaged over columns."""
    return evaluate_metric_stacked(TaskType.REGRESSION, y, predictions[None])[0]


def evaluate_metric(task_type: TaskType, y: np.ndarray, output: np.ndarray) -> Score:
    return evaluate_metric_stacked(task_type, y, output[None])[0]


def evaluate_metric_stacked(task_type: TaskType, y: np.ndarray, outputs: np.ndarray) -> list[Score]:
    """The metric of each of K models' outputs ``(K, n, T)`` on the same labels ``y (n, T)``.

    Vectorised over the K models; one implementation serves the unfused and the fused engines,
    so equal outputs give bit-equal metrics (and the same best epoch) in both. ROC-AUC is the
    Mann-Whitney statistic with average ranks for ties,
    ``(sum of positives' ranks - P (P + 1) / 2) / (P N)``, what ``sklearn.metrics.roc_auc_score``
    computes (to the last bits: the numerator here is an exact multiple of 1/2). A model whose
    outputs hold NaN gets NaN.
    """
    from scipy.stats import rankdata

    K = outputs.shape[0]
    per_task = []
    for t in range(y.shape[1]):
        present = ~np.isnan(y[:, t])
        labels, scores = y[present, t], outputs[:, present, t].astype(np.float64)
        if task_type is TaskType.CLASSIFICATION:
            positives = int(labels.sum())
            negatives = len(labels) - positives
            if positives == 0 or negatives == 0:
                continue
            ranks = rankdata(scores, method="average", axis=1, nan_policy="propagate")
            per_task.append(
                (ranks[:, labels == 1].sum(axis=1) - positives * (positives + 1) / 2) / (positives * negatives)
            )
        elif present.any():
            squared = (scores - labels) ** 2  # row by row: numpy's 2-D reductions sum in another order
            per_task.append(np.sqrt(np.array([row.mean() for row in squared])))
    if not per_task:
        return [Score(float("nan"), 0, y.shape[1])] * K
    values = per_task[0].copy()
    for column in per_task[1:]:  # a fixed order of sums: the same bits for any K
        values += column
    values /= len(per_task)
    return [Score(float(v), len(per_task), y.shape[1] - len(per_task)) for v in values]


def is_better(candidate: float, best: float | None, higher_is_better: bool) -> bool:
    """Strict improvement (ties keep the earlier epoch); ``NaN`` never improves."""
    if np.isnan(candidate):
        return False
    if best is None or np.isnan(best):
        return True
    return candidate > best if higher_is_better else candidate < best
