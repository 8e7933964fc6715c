"""The shared fine-tuning loop (docs/protocol.md, Recipe), identical for every method.

``method.setup`` runs first (theta_pre is the model's state at that moment). Per stage of the
method: Adam(stage lr or recipe lr, weight_decay) over the method's trainable parameters; each
epoch shuffles the stage's fitting molecules (the label-setting training subset, or validation
for RoFt-Mol) with the trial's generator unless the stage keeps their order, takes mini-batches
of ``batch_size``, runs ``method.penalty_forward``, minimises ``task_loss + method.regularizer``
and steps through ``method.optimizer_step``, then evaluates the selection set and test. A stage of 0
epochs is evaluated once without training (post-hoc methods). The reported result is the test
metric at the epoch with the best selection metric over the selectable stages (strict
improvement, so ties keep the earliest epoch); that epoch's ``method.snapshot`` is kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from trainables.core.config import TrainingRecipe
from trainables.data.dataset import GraphDataset
from trainables.data.tasks import TaskType
from trainables.methods.base import FineTuningMethod, MethodContext, Stage
from trainables.training.metrics import Score, evaluate_metric, is_better, task_loss

# Molecules per evaluation batch. On a CPU small batches keep the activations in cache (a 5x300
# GCN scores BBBP's 204 validation molecules 1.8x faster in batches of 32 than of 256 on one
# thread); on a GPU large batches mean fewer launches. Per-molecule outputs do not depend on it
# (BatchNorm is in eval mode), up to float rounding.
EVAL_BATCH_SIZE = {"cpu": 32}
DEFAULT_EVAL_BATCH_SIZE = 256


def eval_batch_size(device: torch.device | str) -> int:
    return EVAL_BATCH_SIZE.get(torch.device(device).type, DEFAULT_EVAL_BATCH_SIZE)


@dataclass
class EpochRecord:
    stage: str
    epoch: int  # 1-based, counted across stages
    train_loss: float
    val: float
    test: float
    val_tasks_skipped: int
    test_tasks_skipped: int


@dataclass
class FitResult:
    best_epoch: int
    best_stage: str
    val: float
    test: float
    val_score: Score
    test_score: Score
    best_state: dict[str, torch.Tensor]
    history: list[EpochRecord] = field(default_factory=list)
    summary: dict = field(
        default_factory=dict
    )  # method.summary() at the best epoch; final_*: after the last, where different


HALVING_SEED = 42


@dataclass
class SplitIndices:
    """Molecule indices of train (after the label setting), valid and test.

    ``valid_fit`` / ``valid_select`` are the two halves of valid (a fixed permutation with seed
    42, first half fits, second half selects), for methods that fit on validation data.
    ``valid_order``: valid in the split's own order, where the split keeps one.
    """

    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    valid_order: torch.Tensor | None = None  # valid in the split's own order (None: as ``valid``)

    def in_split_order(self, name: str) -> torch.Tensor:
        """The molecules of part ``name`` in the order the split produced them (a stage that keeps its
        order fits in this order every epoch)."""
        return self.valid_order if name == "valid" and self.valid_order is not None else self.part(name)

    def part(self, name: str) -> torch.Tensor:
        if name in ("train", "valid", "test"):
            return getattr(self, name)
        if name in ("valid_fit", "valid_select"):
            order = self.valid[torch.randperm(len(self.valid), generator=torch.Generator().manual_seed(HALVING_SEED))]
            half = (len(order) + 1) // 2
            return order[:half] if name == "valid_fit" else order[half:]
        raise ValueError(f"unknown split part {name!r}; accepted: train, valid, test, valid_fit, valid_select")


def eval_batches(data: GraphDataset, index: torch.Tensor, device: torch.device) -> list:
    """The molecules ``index`` assembled into batches of :func:`eval_batch_size` on ``device``."""
    size = eval_batch_size(device)
    return [data.batch(index[i : i + size]).to(device) for i in range(0, len(index), size)]


@torch.no_grad()
def predict_batches(model: torch.nn.Module, batches: list) -> np.ndarray:
    """Model outputs over pre-assembled batches, concatenated ``(n, T)``, in eval mode."""
    model.eval()
    return torch.cat([model(batch).logits.float().cpu() for batch in batches]).numpy()


def predict(model: torch.nn.Module, data: GraphDataset, index: torch.Tensor, device: torch.device) -> np.ndarray:
    """Model outputs ``(len(index), T)`` in eval mode."""
    return predict_batches(model, eval_batches(data, index, device))


class Evaluator:
    """Scores a model on a named part of the split, with the evaluation batches kept resident.

    Each part's molecules are assembled into batches once, on ``device``, and reused by every
    evaluation (every epoch, every alpha point of a search).
    """

    def __init__(self, data: GraphDataset, split: SplitIndices, task_type: TaskType, device: torch.device):
        self.data, self.split, self.task_type, self.device = data, split, task_type, device
        self._parts: dict[str, tuple[list, np.ndarray]] = {}

    def __call__(self, model: torch.nn.Module, part: str) -> Score:
        if part not in self._parts:
            index = self.split.part(part)
            self._parts[part] = (eval_batches(self.data, index, self.device), self.data.y[index].numpy())
        batches, targets = self._parts[part]
        return evaluate_metric(self.task_type, targets, predict_batches(model, batches))


def fit(
    ctx: MethodContext,
    method: FineTuningMethod,
    data: GraphDataset,
    split: SplitIndices,
    task_type: TaskType,
    higher_is_better: bool,
    recipe: TrainingRecipe,
    generator: torch.Generator,
    device: torch.device,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> FitResult:
    """Run every stage of ``method`` and return the best-selection epoch's result."""
    if ctx.pretrained_state is None:
        ctx.pretrained_state = _cpu_copy(ctx.model.state_dict())
    evaluator = Evaluator(data, split, task_type, device)
    ctx.evaluate = lambda part: evaluator(ctx.model, part)
    ctx.higher_is_better = higher_is_better
    method.setup(ctx)
    best: FitResult | None = None
    history: list[EpochRecord] = []
    epoch_counter = 0
    for stage in method.stages(recipe.epochs):
        stage_best_state: dict[str, torch.Tensor] | None = None
        stage_best_val: float | None = None
        if stage.epochs > 0:
            parameters = _select_trainable(ctx.model, method.trainable_parameters(ctx, stage))
            optimizer = torch.optim.Adam(
                parameters, lr=recipe.lr if stage.lr is None else stage.lr, weight_decay=recipe.weight_decay
            )
            fit_index = split.part(stage.fit_on)
        for _ in range(max(stage.epochs, 1)):  # an evaluation-only stage is evaluated once
            train_loss = float("nan")
            if stage.epochs > 0:
                epoch_counter += 1
                train_loss = _train_epoch(
                    ctx,
                    method,
                    stage,
                    data,
                    split,
                    fit_index,
                    task_type,
                    recipe,
                    optimizer,
                    parameters,
                    generator,
                    device,
                )
                check_finite(train_loss, epoch_counter, stage.name)
            val_score = ctx.evaluate(stage.select_on)
            test_score = ctx.evaluate("test")
            record = EpochRecord(
                stage.name,
                epoch_counter,
                train_loss,
                val_score.value,
                test_score.value,
                val_score.skipped,
                test_score.skipped,
            )
            history.append(record)
            if on_epoch is not None:
                on_epoch(record)
            improves_stage = is_better(val_score.value, stage_best_val, higher_is_better)
            improves_trial = stage.selectable and is_better(
                val_score.value, None if best is None else best.val, higher_is_better
            )
            if improves_stage or improves_trial:
                state = _cpu_copy(method.snapshot(ctx))
            if improves_stage:
                stage_best_val, stage_best_state = val_score.value, state
            if improves_trial:
                best = FitResult(
                    epoch_counter,
                    stage.name,
                    val_score.value,
                    test_score.value,
                    val_score,
                    test_score,
                    state,
                    history,
                    method.summary(ctx),
                )
        method.end_stage(ctx, stage, stage_best_state)
    if best is None:
        raise RuntimeError(
            "no epoch produced a finite validation metric (is the validation set empty "
            "or missing one of the classes in every task?)"
        )
    best.summary.update(
        {f"final_{name}": value for name, value in method.summary(ctx).items() if best.summary.get(name) != value}
    )
    return best


class DivergedError(RuntimeError):
    """Training produced a NaN or infinite loss; the trial is not a result."""


def check_finite(train_loss: float, epoch: int, stage: str) -> None:
    if not math.isfinite(train_loss):
        raise DivergedError(
            f"diverged at epoch {epoch} (stage {stage}): mean training loss {train_loss}; the trial "
            "is not stored as a result (lower the learning rate or the regularisation strength)"
        )


def _select_trainable(model: torch.nn.Module, trainable: list[torch.nn.Parameter]) -> list[torch.nn.Parameter]:
    chosen = {id(p) for p in trainable}
    for p in model.parameters():
        p.requires_grad_(id(p) in chosen)
    if not trainable:
        raise ValueError("the method selected no trainable parameters")
    return trainable


def _train_epoch(
    ctx: MethodContext,
    method: FineTuningMethod,
    stage: Stage,
    data: GraphDataset,
    split: SplitIndices,
    fit_index: torch.Tensor,
    task_type: TaskType,
    recipe: TrainingRecipe,
    optimizer: torch.optim.Optimizer,
    parameters: list[torch.nn.Parameter],
    generator: torch.Generator,
    device: torch.device,
) -> float:
    method.set_train_mode(ctx, stage)
    order = (
        fit_index[torch.randperm(len(fit_index), generator=generator)]
        if stage.shuffle
        else split.in_split_order(stage.fit_on)
    )
    total, batches = 0.0, 0
    for start in range(0, len(order), recipe.batch_size):
        batch = data.batch(order[start : start + recipe.batch_size]).to(device)
        method.penalty_forward(ctx, stage, batch)
        output = ctx.model(batch)
        loss = task_loss(task_type, output.logits, batch.y)
        extra = method.regularizer(ctx, stage, batch, output)
        if extra is not None:
            loss = loss + extra
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        method.before_step(ctx, stage, parameters)
        method.optimizer_step(ctx, stage, optimizer)
        total += float(loss.detach())
        batches += 1
    return total / max(batches, 1)


def _cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}
