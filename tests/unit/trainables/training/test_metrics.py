"""trainables.training.metrics: masked losses and metrics, skipped columns, model selection."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import mean_squared_error, roc_auc_score

from trainables.data.tasks import TaskType
from trainables.training.metrics import (
    Score,
    evaluate_metric,
    evaluate_metric_stacked,
    is_better,
    rmse,
    roc_auc,
    task_loss,
)

NAN = np.nan


# ----------------------------------------------------------------------------- ROC-AUC

def test_roc_auc_masks_nan_and_skips_single_class_columns():
    y = np.array([
        [1, 0, 1, NAN],
        [0, NAN, 1, NAN],
        [1, 1, 1, NAN],
        [0, 1, 1, NAN],
        [NAN, 0, 1, NAN],
    ])
    scores = np.array([
        [0.9, 0.1, 0.5, 0.3],
        [0.2, 0.8, 0.4, 0.3],
        [0.4, 0.5, 0.3, 0.3],
        [0.6, 0.2, 0.2, 0.3],
        [0.5, 0.6, 0.1, 0.3],
    ])
    result = roc_auc(y, scores)
    col0 = roc_auc_score([1, 0, 1, 0], [0.9, 0.2, 0.4, 0.6])  # 0.75
    col1 = roc_auc_score([0, 1, 1, 0], [0.1, 0.5, 0.2, 0.6])  # 0.5
    assert (col0, col1) == (0.75, 0.5)
    assert result == Score(value=pytest.approx((col0 + col1) / 2), evaluated=2, skipped=2)
    assert result.value == pytest.approx(0.625)


def test_roc_auc_all_columns_skipped_is_nan():
    result = roc_auc(np.array([[1.0], [1.0], [NAN]]), np.array([[0.1], [0.2], [0.3]]))
    assert math.isnan(result.value) and (result.evaluated, result.skipped) == (0, 1)


def test_roc_auc_nan_labels_really_are_ignored():
    """Changing the score of a row with a missing label must not change the metric."""
    y = np.array([[1.0], [0.0], [NAN], [1.0], [0.0]])
    s1 = np.array([[0.9], [0.1], [0.0], [0.3], [0.6]])
    s2 = s1.copy()
    s2[2, 0] = 0.95
    assert roc_auc(y, s1).value == roc_auc(y, s2).value == pytest.approx(0.75)


# ----------------------------------------------------------------------------- RMSE

def test_rmse_per_column_then_averaged():
    y = np.array([[1.0, 0.0], [2.0, NAN], [3.0, 4.0]])
    pred = np.array([[1.0, 1.0], [4.0, 100.0], [3.0, 4.0]])
    result = rmse(y, pred)
    col0 = math.sqrt((0 + 4 + 0) / 3)
    col1 = math.sqrt((1 + 0) / 2)
    assert result.value == pytest.approx((col0 + col1) / 2)
    # not the pooled RMSE over all present entries
    assert result.value != pytest.approx(math.sqrt((0 + 4 + 0 + 1 + 0) / 5))
    assert (result.evaluated, result.skipped) == (2, 0)


def test_rmse_skips_empty_columns():
    result = rmse(np.array([[1.0, NAN], [3.0, NAN]]), np.array([[2.0, 0.0], [3.0, 0.0]]))
    assert result.value == pytest.approx(math.sqrt(0.5)) and (result.evaluated, result.skipped) == (1, 1)
    empty = rmse(np.full((2, 1), NAN), np.zeros((2, 1)))
    assert math.isnan(empty.value) and empty.skipped == 1


def test_evaluate_metric_dispatch():
    y = np.array([[1.0], [0.0]])
    out = np.array([[0.2], [0.7]])
    assert evaluate_metric(TaskType.CLASSIFICATION, y, out).value == 0.0
    assert evaluate_metric(TaskType.REGRESSION, y, out).value == pytest.approx(math.sqrt((0.64 + 0.49) / 2))


# ----------------------------------------------------------------------------- losses

def test_classification_loss_masks_nan_and_zeroes_their_gradient():
    output = torch.tensor([[0.3, -1.2], [2.0, 0.5], [-0.7, 0.1]], requires_grad=True)
    y = torch.tensor([[1.0, NAN], [0.0, 1.0], [NAN, 0.0]])
    loss = task_loss(TaskType.CLASSIFICATION, output, y)
    present = [(0, 0, 1.0), (1, 0, 0.0), (1, 1, 1.0), (2, 1, 0.0)]
    expected = sum(F.binary_cross_entropy_with_logits(output[i, j], torch.tensor(t)) for i, j, t in present) / 4
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert output.grad[0, 1] == 0 and output.grad[2, 0] == 0
    assert (output.grad[torch.tensor([0, 1, 1, 2]), torch.tensor([0, 0, 1, 1])] != 0).all()


def test_regression_loss_is_batch_rmse_over_present_labels():
    output = torch.tensor([[1.0, 5.0], [2.0, 0.0], [0.0, 1.0]], requires_grad=True)
    y = torch.tensor([[0.0, NAN], [4.0, 0.0], [NAN, 3.0]])
    loss = task_loss(TaskType.REGRESSION, output, y)
    torch.testing.assert_close(loss, torch.tensor(math.sqrt((1 + 4 + 0 + 4) / 4)))
    loss.backward()
    assert output.grad[0, 1] == 0 and output.grad[2, 0] == 0
    assert torch.isfinite(output.grad).all()
    assert output.grad[0, 0] != 0 and output.grad[1, 0] != 0


def test_classification_loss_of_an_all_missing_batch_is_zero_with_zero_gradient():
    output = torch.randn(3, 2, requires_grad=True)
    loss = task_loss(TaskType.CLASSIFICATION, output, torch.full((3, 2), NAN))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(output.grad, torch.zeros(3, 2))


def test_regression_loss_of_an_all_missing_batch_has_finite_gradient():
    output = torch.randn(3, 1, requires_grad=True)
    loss = task_loss(TaskType.REGRESSION, output, torch.full((3, 1), NAN))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(output.grad).all()


# ----------------------------------------------------------------------------- selection

@pytest.mark.parametrize("candidate, best, higher, expected", [
    (0.8, 0.7, True, True),
    (0.7, 0.7, True, False),  # ties keep the earlier epoch
    (0.6, 0.7, True, False),
    (0.6, 0.7, False, True),
    (0.7, 0.7, False, False),
    (0.8, 0.7, False, False),
    (0.1, None, True, True),
    (5.0, None, False, True),
    (NAN, 0.7, True, False),
    (NAN, None, True, False),
    (0.1, NAN, True, True),
    (9.0, NAN, False, True),
])
def test_is_better(candidate, best, higher, expected):
    assert is_better(candidate, best, higher) is expected


@pytest.mark.parametrize("task_type", [TaskType.CLASSIFICATION, TaskType.REGRESSION])
def test_stacked_metric_equals_sklearn_per_model(task_type):
    rng = np.random.default_rng(0)
    n, T, K = 60, 4, 5
    y = rng.integers(0, 2, (n, T)).astype(np.float64) if task_type is TaskType.CLASSIFICATION else rng.normal(size=(n, T))
    y[rng.random((n, T)) < 0.2] = np.nan  # missing labels
    y[:, 3] = np.where(np.isnan(y[:, 3]), np.nan, 1.0)  # a column with one class only (skipped by ROC-AUC)
    outputs = rng.normal(size=(K, n, T)).round(1)  # rounded: many tied scores
    stacked = evaluate_metric_stacked(task_type, y, outputs)
    columns = 3 if task_type is TaskType.CLASSIFICATION else 4
    for k in range(K):
        per_column = []
        for t in range(columns):
            present = ~np.isnan(y[:, t])
            if task_type is TaskType.CLASSIFICATION:
                per_column.append(roc_auc_score(y[present, t], outputs[k, present, t]))
            else:
                per_column.append(np.sqrt(mean_squared_error(y[present, t], outputs[k, present, t])))
        assert (stacked[k].evaluated, stacked[k].skipped) == (columns, T - columns)
        assert stacked[k].value == pytest.approx(np.mean(per_column), rel=1e-12)
        assert evaluate_metric(task_type, y, outputs[k]) == stacked[k]


def test_stacked_metric_gives_nan_to_a_diverged_model_only():
    y = np.array([[0.0], [1.0], [1.0], [0.0]])
    outputs = np.array([[[0.1], [0.9], [0.8], [0.2]], [[np.nan], [0.9], [0.8], [0.2]]])
    good, diverged = evaluate_metric_stacked(TaskType.CLASSIFICATION, y, outputs)
    assert good.value == 1.0 and np.isnan(diverged.value)
