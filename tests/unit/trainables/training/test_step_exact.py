"""roft's trainers, step for step, against a plain reference fine-tuning loop (``reference_loop.py``).

Each trial is prepared by the worker's own :func:`~trainables.worker.trial.prepare_trial` (data,
scaffold split, ``fewshot:256`` label subset, seed, model built under the seed), then made
float64. roft trains it with the unfused trainer (:func:`~trainables.training.trainer.fit`, as
:func:`~trainables.worker.trial.execute_trial` calls it) or the fused engine
(:func:`~trainables.training.fused.engine.fit_fused`, members built as
:func:`~trainables.worker.trial.execute_fused_group` builds them, default options); the reference
loop trains a deep copy of the same initial model on PyG ``Data`` objects with the same batch
order (a fresh ``torch.Generator`` seeded with the run seed, ``randperm`` per epoch) and, with
dropout on, from the same global RNG state (so its dropout masks are roft's).

Per run: the training loss of every step (24 steps: 256 molecules, batches of 32, 3 epochs), the
per-epoch mean training loss, the state dict after the last step and at the best epoch, every
epoch's validation and test metric and the best epoch. roft's per-step losses are read by
wrapping the ``task_loss`` the trainer (or the engine) calls; the wrapper returns its value
unchanged. The fused engine's final weights are read from its stacked model, caught by a
recording subclass of ``StackedPredictors``.

Tolerances:

* losses: ``rtol 1e-10``;
* state dicts: ``rtol 1e-9`` (``atol 1e-12`` for entries at 0). The fused engine sums in
  another order; for GIN, whose second MLP bias feeds training-mode BatchNorm, the gradient
  of that bias is rounding noise (zero in exact arithmetic), which Adam turns into steps of up
  to ``lr * noise / eps``; those biases (and the running means that follow them) drift apart
  by some 1e-10 in 24 steps, so the fused comparisons use ``atol 1e-9`` (a millionth of one
  Adam step of ``lr = 1e-3``);
* metrics: roft scores float32 copies of the model's outputs (``predict_batches`` and the fused
  ``_scores`` call ``.float()``), the reference scores the float64 outputs, as the scripts score
  whatever the model returns. So roft's metric is checked against the reference's metric of its
  own outputs rounded to float32 (``rtol 1e-12`` unfused; the fused outputs differ from the
  reference's by ~1e-13, so a rounding boundary may fall between them: ``atol 1e-5``), and
  against the float64 metric with ``atol 1e-5`` for ROC-AUC (ties made by the float32 rounding
  move it by ``1 / (P N)`` per pair) and ``rtol 1e-8`` for RMSE. The best epochs are equal.

The largest differences of every comparison are printed (run with ``-s``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch

import trainables.training.fused.engine as fused_engine
import trainables.training.trainer as trainer
from tests.unit.trainables.training import reference_loop as reference
from trainables.core.config import Runtime, TrainingRecipe, TrialSpec
from trainables.data.sources import DataRoot
from trainables.data.splits import SPLIT_SEED
from trainables.data.tasks import TaskType
from trainables.training.fused.engine import FusedMember, dropout_generator_after_init, fit_fused
from trainables.training.trainer import fit
from trainables.worker.trial import PreparedTrial, prepare_trial

pytestmark = [pytest.mark.data, pytest.mark.slow]

CPU = torch.device("cpu")
EPOCHS, BATCH_SIZE, LR = 3, 32, 1e-3
LABEL_SETTING, N_TRAIN = "fewshot:256", 256
STEPS_PER_EPOCH = math.ceil(N_TRAIN / BATCH_SIZE)

# Tox21: 12 label columns with missing labels; GIN from scratch (Hu et al.'s architecture, 5 layers,
# narrowed to 64 so that a test takes seconds). ESOL: regression, the Hu et al. pre-trained GCN 5x300.
TOX21 = {"task": "tox21", "backbone": "scratch-gin", "num_layers": 5, "emb_dim": 64}
ESOL = {"task": "esol", "backbone": "hu-gcn-supervised-contextpred"}

LOSS_RTOL = 1e-10
STATE_RTOL, STATE_ATOL, FUSED_STATE_ATOL = 1e-9, 1e-12, 1e-9
ROC_ATOL, RMSE_RTOL = 1e-5, 1e-8


@pytest.fixture
def runtime(real_env, tmp_path) -> Runtime:
    return Runtime(store=str(tmp_path / "store"), data_root=DataRoot.from_setting(str(real_env)))


@dataclass
class Prepared:
    trial: PreparedTrial
    initial: torch.nn.Module  # a deep copy of the model before training
    rng_after_init: torch.Tensor  # the global RNG state right after the model was built

    @property
    def regression(self) -> bool:
        return self.trial.task.task_type is TaskType.REGRESSION


def prepare(case: dict, seed: int, dropout: float, runtime: Runtime) -> Prepared:
    recipe = TrainingRecipe(epochs=EPOCHS, batch_size=BATCH_SIZE, lr=LR, dropout=dropout)
    spec = TrialSpec(case["backbone"], "full-ft", case["task"], "scaffold", LABEL_SETTING, seed, SPLIT_SEED,
                     recipe=recipe, num_layers=case.get("num_layers"), emb_dim=case.get("emb_dim"))
    trial = prepare_trial(spec, runtime, None, CPU)  # full-ft has no parent: the store is not read
    trial.model.double()
    prepared = Prepared(trial, copy.deepcopy(trial.model), torch.get_rng_state())
    assert len(trial.indices.train) == N_TRAIN
    if prepared.regression:  # the reference's regression loss takes every label as present
        assert not torch.isnan(trial.data.y).any()
    return prepared


def run_reference(prepared: Prepared, lr: float = LR, rng_state: torch.Tensor | None = None) -> reference.ReferenceRun:
    data, indices = prepared.trial.data, prepared.trial.indices
    graphs = [reference.reference_graphs(data, indices.part(part), prepared.regression)
              for part in ("train", "valid", "test")]
    torch.set_rng_state(prepared.rng_after_init if rng_state is None else rng_state)
    return reference.finetune(copy.deepcopy(prepared.initial), *graphs, regression=prepared.regression,
                              epochs=prepared.trial.spec.recipe.epochs, batch_size=BATCH_SIZE, lr=lr,
                              shuffle_generator=torch.Generator().manual_seed(prepared.trial.spec.seed))


def record_task_losses(monkeypatch, module) -> list[torch.Tensor]:
    """Every value ``module``'s ``task_loss`` returns, in call order (the value itself is passed on)."""
    recorded, original = [], module.task_loss

    def recording(task_type, output, y):
        loss = original(task_type, output, y)
        recorded.append(loss.detach().clone())
        return loss

    monkeypatch.setattr(module, "task_loss", recording)
    return recorded


def run_unfused(prepared: Prepared, monkeypatch) -> tuple[list[float], trainer.FitResult, dict]:
    trial = prepared.trial
    losses = record_task_losses(monkeypatch, trainer)
    torch.set_rng_state(prepared.rng_after_init)
    result = fit(trial.ctx, trial.method, trial.data, trial.indices, trial.task.task_type,
                 trial.task.higher_is_better, trial.spec.recipe, trial.generator, trial.device)
    return [float(loss) for loss in losses], result, copy.deepcopy(trial.ctx.model.state_dict())


def run_fused(members: list[Prepared], monkeypatch) -> list[tuple[list[float], trainer.FitResult, dict]]:
    """``fit_fused`` over the members (their dropout generators taken right after each was built,
    as ``execute_fused_group`` does); per member: its step losses, result and final state dict (of
    the first ``StackedPredictors`` the engine builds, the one it trains)."""
    stacked = []

    class Recording(fused_engine.StackedPredictors):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            stacked.append(self)

    monkeypatch.setattr(fused_engine, "StackedPredictors", Recording)
    losses = record_task_losses(monkeypatch, fused_engine)
    fused_members = []
    for member in members:
        torch.set_rng_state(member.rng_after_init)
        fused_members.append(FusedMember(member.trial.model, member.trial.method, member.trial.indices,
                                         member.trial.generator, dropout_generator_after_init(CPU, member.trial.spec.seed),
                                         member.trial.spec.seed))
    first = members[0].trial
    results = fit_fused(fused_members, first.data, first.task.task_type, first.task.higher_is_better,
                        first.spec.recipe, CPU)
    # the trained model is built first (Feature-map members add a frozen stacked source model after it)
    assert stacked and stacked[0].num_trials == len(members)
    per_step = torch.stack(losses)  # (steps, K)
    return [([float(v) for v in per_step[:, k]], result, stacked[0].trial_state(k))
            for k, result in enumerate(results)]


# --------------------------------------------------------------------------- comparison

def state_differences(actual: dict, expected: dict) -> tuple[float, float, str]:
    """Largest absolute difference, largest relative difference (over entries not 0), and where the
    largest absolute difference is."""
    assert list(actual) == list(expected)
    worst_abs, worst_rel, where = 0.0, 0.0, ""
    for name, want in expected.items():
        got = actual[name]
        assert got.dtype == want.dtype and got.shape == want.shape, name
        difference = (got.double() - want.double()).abs()
        if difference.numel() and difference.max().item() > worst_abs:
            worst_abs, where = difference.max().item(), name
        nonzero = want.double() != 0
        if nonzero.any():
            worst_rel = max(worst_rel, (difference[nonzero] / want.double().abs()[nonzero]).max().item())
    return worst_abs, worst_rel, where


def assert_states_close(actual: dict, expected: dict, atol: float | Callable[[str], float]) -> None:
    """Every entry within ``rtol STATE_RTOL`` and ``atol`` (a number, or a function of the entry's name)."""
    for name, want in expected.items():
        torch.testing.assert_close(actual[name], want, rtol=STATE_RTOL, atol=atol(name) if callable(atol) else atol,
                                   msg=lambda m: f"{name}: {m}")


def float32_metric(ref: reference.ReferenceRun, epoch: int, part: str, regression: bool) -> float:
    """The reference's metric of its own epoch-``epoch`` outputs rounded to float32, as roft scores them."""
    y_true, y_scores = ref.outputs[epoch][part]
    return reference.metric(y_true, y_scores.astype(np.float32), regression)


def compare(label: str, roft: tuple[list[float], trainer.FitResult, dict], ref: reference.ReferenceRun,
            regression: bool, state_atol: float | Callable[[str], float], float32_exact: bool, epochs: int = EPOCHS,
            steps_per_epoch: int = STEPS_PER_EPOCH) -> dict:
    """Assert roft's run equals the reference's; returns (and prints) the largest differences.

    ``ref.epoch_losses`` gives the mean loss of each epoch that roft records (``train_loss``)."""
    losses, result, final_state = roft
    steps = epochs * steps_per_epoch
    assert len(losses) == len(ref.step_losses) == steps >= 20
    loss_abs = np.abs(np.array(losses) - np.array(ref.step_losses))
    np.testing.assert_allclose(losses, ref.step_losses, rtol=LOSS_RTOL, atol=0, err_msg=f"{label}: step losses")
    epoch_losses = [record.train_loss for record in result.history]
    np.testing.assert_allclose(epoch_losses, ref.epoch_losses(steps_per_epoch), rtol=LOSS_RTOL, atol=0,
                               err_msg=f"{label}: epoch mean losses")

    assert_states_close(final_state, ref.final_state, state_atol)
    assert [record.epoch for record in result.history] == list(range(1, epochs + 1))
    assert result.best_epoch == ref.best_epoch, f"{label}: best epoch {result.best_epoch} vs {ref.best_epoch}"
    assert_states_close(result.best_state, ref.best_state, state_atol)

    metric_abs, metric_rel, float32_abs = 0.0, 0.0, 0.0
    for epoch, record in enumerate(result.history):
        for part, got, want in (("valid", record.val, ref.val[epoch]), ("test", record.test, ref.test[epoch])):
            rounded = float32_metric(ref, epoch, part, regression)
            float32_abs = max(float32_abs, abs(got - rounded))
            assert got == metric_approx(rounded, regression, float32_exact), (label, epoch + 1, part, "float32")
            metric_abs, metric_rel = max(metric_abs, abs(got - want)), max(metric_rel, abs(got - want) / abs(want))
            assert got == metric_approx(want, regression), (label, epoch + 1, part)
    best = ref.best_epoch - 1
    assert result.val == record_value(result, "val") and result.test == record_value(result, "test")
    assert result.test == metric_approx(ref.test[best], regression)

    final_abs, final_rel, final_where = state_differences(final_state, ref.final_state)
    best_abs, best_rel, _ = state_differences(result.best_state, ref.best_state)
    report = {"step_loss_abs": loss_abs.max(), "step_loss_rel": (loss_abs / np.abs(ref.step_losses)).max(),
              "state_abs": max(final_abs, best_abs), "state_rel": max(final_rel, best_rel), "state_worst": final_where,
              "metric_abs": metric_abs, "metric_rel": metric_rel, "metric_vs_float32_abs": float32_abs,
              "best_epoch": result.best_epoch}
    print(f"\n[step-exact] {label}: {steps} steps; " + ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in report.items()))
    return report


def metric_approx(expected: float, regression: bool, exact: bool = False):
    if exact:
        return pytest.approx(expected, rel=1e-12, abs=0)
    return pytest.approx(expected, rel=RMSE_RTOL, abs=0) if regression else pytest.approx(expected, rel=0, abs=ROC_ATOL)


def record_value(result: trainer.FitResult, name: str) -> float:
    return getattr(result.history[result.best_epoch - 1], name)


# --------------------------------------------------------------------------- tests

@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_unfused_trainer_equals_the_reference_on_tox21(runtime, monkeypatch, dropout):
    """Classification with missing labels; with dropout 0.5 the masks are the same draws."""
    prepared = prepare(TOX21, 0, dropout, runtime)
    roft = run_unfused(prepared, monkeypatch)
    compare(f"unfused tox21 gin dropout={dropout}", roft, run_reference(prepared), False, STATE_ATOL, True)


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_fused_engine_equals_the_reference_on_tox21(runtime, monkeypatch, dropout):
    seeds = (0, 1, 2)
    members = [prepare(TOX21, seed, dropout, runtime) for seed in seeds]
    fused = run_fused(members, monkeypatch)
    for seed, member, roft in zip(seeds, members, fused):
        compare(f"fused tox21 gin dropout={dropout} seed={seed} (K={len(seeds)})", roft, run_reference(member), False,
                FUSED_STATE_ATOL, False)


def test_unfused_trainer_equals_the_reference_on_esol(runtime, monkeypatch):
    """Regression: roft's loss is the batch RMSE, as the reference's (RoFt-Mol) regression branch."""
    prepared = prepare(ESOL, 0, 0.0, runtime)
    roft = run_unfused(prepared, monkeypatch)
    compare("unfused esol gcn-pretrained dropout=0.0", roft, run_reference(prepared), True, STATE_ATOL, True)


def test_fused_engine_equals_the_reference_on_esol(runtime, monkeypatch):
    seeds = (0, 1)
    members = [prepare(ESOL, seed, 0.0, runtime) for seed in seeds]
    fused = run_fused(members, monkeypatch)
    for seed, member, roft in zip(seeds, members, fused):
        compare(f"fused esol gcn-pretrained dropout=0.0 seed={seed} (K={len(seeds)})", roft, run_reference(member),
                True, FUSED_STATE_ATOL, False)


def test_the_comparison_catches_a_different_learning_rate_or_dropout_mask(runtime, monkeypatch):
    """The checks are not vacuous: the reference with lr * 1.0001, or with its dropout masks drawn one
    draw later, no longer passes (one unfused Tox21 run, dropout 0.5)."""
    prepared = prepare(TOX21, 0, 0.5, runtime)
    roft = run_unfused(prepared, monkeypatch)
    _, result, final_state = roft
    torch.set_rng_state(prepared.rng_after_init)
    torch.rand(1)  # one draw: every mask shifts
    for label, perturbed in (("perturbed lr", run_reference(prepared, lr=LR * 1.0001)),
                             ("shifted dropout", run_reference(prepared, rng_state=torch.get_rng_state()))):
        with pytest.raises(AssertionError, match="step losses"):
            compare(label, roft, perturbed, False, STATE_ATOL, True)
        with pytest.raises(AssertionError):  # each check on its own
            assert_states_close(final_state, perturbed.final_state, FUSED_STATE_ATOL)
        assert any(record.val != metric_approx(want, False) or record.test != metric_approx(other, False)
                   for record, want, other in zip(result.history, perturbed.val, perturbed.test))
