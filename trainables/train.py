"""The shared fine-tuning loop (PROTOCOL section 3), identical for every method.

Per stage of the method: Adam(lr, weight_decay) over the method's trainable parameters;
each epoch shuffles the (label-setting) training molecules with the trial's generator, takes
mini-batches of ``batch_size``, minimises ``task_loss + method.regularizer``, then evaluates
valid and test. The reported result is the test metric at the epoch with the best validation
metric (strict improvement, so ties keep the earliest epoch); that epoch's state dict is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from trainables.config import TrainingRecipe
from trainables.dataset import GraphDataset
from trainables.metrics import Score, evaluate_metric, is_better, task_loss
from trainables.methods.base import FineTuningMethod, MethodContext, Stage
from trainables.tasks import TaskType

EVAL_BATCH_SIZE = 256


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


@dataclass
class SplitIndices:
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor


@torch.no_grad()
def predict(model: torch.nn.Module, data: GraphDataset, index: torch.Tensor, device: torch.device) -> np.ndarray:
    """Model outputs ``(len(index), T)`` in eval mode."""
    model.eval()
    outputs = [model(data.batch(index[i:i + EVAL_BATCH_SIZE]).to(device)).logits.float().cpu()
               for i in range(0, len(index), EVAL_BATCH_SIZE)]
    return torch.cat(outputs).numpy()


def score(model, data: GraphDataset, index: torch.Tensor, task_type: TaskType, device) -> Score:
    return evaluate_metric(task_type, data.y[index].numpy(), predict(model, data, index, device))


def fit(ctx: MethodContext, method: FineTuningMethod, data: GraphDataset, split: SplitIndices,
        task_type: TaskType, higher_is_better: bool, recipe: TrainingRecipe, generator: torch.Generator,
        device: torch.device, on_epoch: Callable[[EpochRecord], None] | None = None) -> FitResult:
    """Run every stage of ``method`` and return the best-validation epoch's result."""
    model = ctx.model
    best: FitResult | None = None
    history: list[EpochRecord] = []
    epoch_counter = 0
    for stage in method.stages(recipe.epochs):
        parameters = _select_trainable(model, method.trainable_parameters(ctx, stage))
        optimizer = torch.optim.Adam(parameters, lr=recipe.lr, weight_decay=recipe.weight_decay)
        stage_best_state: dict[str, torch.Tensor] | None = None
        stage_best_val: float | None = None
        for _ in range(stage.epochs):
            epoch_counter += 1
            train_loss = _train_epoch(ctx, method, stage, data, split.train, task_type, recipe, optimizer,
                                      parameters, generator, device)
            val_score = score(model, data, split.valid, task_type, device)
            test_score = score(model, data, split.test, task_type, device)
            record = EpochRecord(stage.name, epoch_counter, train_loss, val_score.value, test_score.value,
                                 val_score.skipped, test_score.skipped)
            history.append(record)
            if on_epoch is not None:
                on_epoch(record)
            if is_better(val_score.value, stage_best_val, higher_is_better):
                stage_best_val = val_score.value
                stage_best_state = _cpu_copy(model.state_dict())
            if is_better(val_score.value, None if best is None else best.val, higher_is_better):
                best = FitResult(epoch_counter, stage.name, val_score.value, test_score.value, val_score,
                                 test_score, stage_best_state, history)
        method.end_stage(ctx, stage, stage_best_state)
    if best is None:
        raise RuntimeError("no epoch produced a finite validation metric (is the validation set empty "
                           "or missing one of the classes in every task?)")
    return best


def _select_trainable(model: torch.nn.Module, trainable: list[torch.nn.Parameter]) -> list[torch.nn.Parameter]:
    chosen = {id(p) for p in trainable}
    for p in model.parameters():
        p.requires_grad_(id(p) in chosen)
    if not trainable:
        raise ValueError("the method selected no trainable parameters")
    return trainable


def _train_epoch(ctx, method, stage: Stage, data: GraphDataset, train_index: torch.Tensor, task_type: TaskType,
                 recipe: TrainingRecipe, optimizer, parameters, generator, device) -> float:
    method.set_train_mode(ctx, stage)
    order = train_index[torch.randperm(len(train_index), generator=generator)]
    total, batches = 0.0, 0
    for start in range(0, len(order), recipe.batch_size):
        batch = data.batch(order[start:start + recipe.batch_size]).to(device)
        output = ctx.model(batch)
        loss = task_loss(task_type, output.logits, batch.y)
        extra = method.regularizer(ctx, stage, batch, output)
        if extra is not None:
            loss = loss + extra
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        method.before_step(ctx, stage, parameters)
        optimizer.step()
        total += float(loss.detach())
        batches += 1
    return total / max(batches, 1)


def _cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}
