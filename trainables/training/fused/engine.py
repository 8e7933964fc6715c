"""The fine-tuning loop of :func:`trainables.training.trainer.fit`, run by K trials at once.

Each member of a fused group brings what its unfused run would use: the model built under its
seed, its fitting molecules, its shuffling generator and its dropout generator. Per epoch every
member shuffles its own fitting molecules with its own generator; step ``s`` trains every
member on its own ``s``-th mini-batch (one fused forward and backward; the summed loss gives
each trial exactly its own gradient, as trials share no parameter); Adam over the stacked
weights is K independent Adams. Then every member is evaluated on the shared validation and
test molecules, and each keeps its own best epoch (strict improvement, as unfused) and that
epoch's weights (kept on the device, copied out once at the end).

Members must share the architecture, the task and split (hence the evaluation molecules), the
number of fitting molecules (hence the number of steps) and the recipe, and their methods must
be ``fusable``; methods and hyper-parameters may differ. Each member's loss is its task loss
plus its method's :class:`~trainables.methods.base.FusedTerms` (L2-SP's anchor penalty and
gradient clipping, Feature-map's node-feature penalty against the member's initial weights,
BSS's spectral penalty, the head L2), evaluated for all members at once (:class:`StackedTerms`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from trainables.core.config import TrainingRecipe
from trainables.core.engine import EngineOptions
from trainables.data.dataset import GraphDataset
from trainables.data.tasks import TaskType
from trainables.methods.base import FineTuningMethod, MethodContext
from trainables.methods.penalties import (
    anchor_penalty,
    clip_gradient_values,
    feature_penalty,
    spectral_penalty,
    squared_norm,
)
from trainables.models.predictor import GraphPredictor
from trainables.training.fused.batching import DeviceGraphs, FusedBatch
from trainables.training.fused.model import FusedOutput, FusionError, StackedPredictors
from trainables.training.metrics import Score, evaluate_metric_stacked, is_better, task_loss
from trainables.training.trainer import (
    DivergedError,
    EpochRecord,
    FitResult,
    SplitIndices,
    check_finite,
    eval_batch_size,
)


@dataclass
class FusedMember:
    """One trial of a fused group, prepared exactly as its unfused run would be."""

    model: GraphPredictor
    method: FineTuningMethod
    split: SplitIndices
    shuffle_generator: torch.Generator  # the trial's generator (seeded with its seed)
    dropout_generator: torch.Generator  # the RNG its unfused run's dropout would draw from
    seed: int = 0  # the trial's run seed (L2-SP's reference-code head anchor derives from it)


def widened(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` in float32 where autocast made it narrower (float32 and float64 stay as they are)."""
    return tensor.float() if tensor.dtype in (torch.bfloat16, torch.float16) else tensor


class StackedTerms:
    """Every member's :class:`FusedTerms`, stacked: ``terms(model, batch, output)`` is ``(K,)``.

    The terms are the functions of :mod:`trainables.methods.penalties`, the ones the unfused trainer
    evaluates. Strengths are ``(K,)`` vectors (0 for members without the term); anchors are stacked
    per parameter (zeros where a member has none). The spectral term runs on the members that have
    it only (``svdvals``' gradient can be NaN on repeated singular values, and 0 x NaN is NaN).
    """

    def __init__(self, members: Sequence[FusedMember], model: StackedPredictors, device: torch.device):
        states = [m.model.state_dict() for m in members]
        terms = [m.method.fused_terms(state, m.seed) for m, state in zip(members, states)]
        dtype = model.stacked("graph_pred_linear.weight").dtype

        def vector(values) -> torch.Tensor:
            return torch.tensor(values, dtype=dtype, device=device)

        self.head = vector([t.head_strength for t in terms])
        self.features = {
            kind: vector([t.feature_strength if t.feature_tensor == kind else 0.0 for t in terms])
            for kind in ("conv", "output")
        }
        self.features = {kind: strength for kind, strength in self.features.items() if bool((strength > 0).any())}
        self.spectral_rows = torch.tensor(
            [k for k, t in enumerate(terms) if t.spectral_strength > 0], device=device, dtype=torch.long
        )
        self.spectral = vector([t.spectral_strength for t in terms]).index_select(0, self.spectral_rows)
        self.spectral_k = torch.tensor([terms[k].spectral_k for k in self.spectral_rows.tolist()], device=device)
        self.clip = vector([t.grad_clip if t.grad_clip > 0 else float("inf") for t in terms])
        self.anchors = {}
        for name in sorted({name for t in terms for name in t.anchors}):
            reference = model.stacked(name)
            stacked = torch.stack(
                [
                    t.anchors[name].to(device, dtype) if name in t.anchors else torch.zeros_like(reference[0])
                    for t in terms
                ]
            )
            self.anchors[name] = (vector([t.anchor_strength if name in t.anchors else 0.0 for t in terms]), stacked)
        self.source = StackedPredictors([m.model for m in members]).to(device).eval() if self.features else None
        self.clips = bool(torch.isfinite(self.clip).any())

    def __call__(self, model: StackedPredictors, batch: FusedBatch, output: FusedOutput) -> torch.Tensor:
        K = model.num_trials
        total = torch.zeros(K, dtype=self.head.dtype, device=self.head.device)
        for name, (strength, anchor) in self.anchors.items():
            total = total + strength * anchor_penalty(model.stacked(name), anchor)
        head = squared_norm(model.stacked(f"graph_pred_linear.{p}") for p in ("weight", "bias"))
        total = total + 0.5 * self.head * head
        if self.source is not None:
            with torch.no_grad():
                source = self.source(batch, training=False)
            mask = batch.node_mask.view(K, -1)
            for kind, strength in self.features.items():
                target, reference = (
                    (output.last_conv, source.last_conv) if kind == "conv" else (output.node, source.node)
                )
                penalty = feature_penalty(
                    widened(target).view(K, mask.shape[1], -1), widened(reference).view(K, mask.shape[1], -1), mask
                )
                total = total + strength * penalty
        if len(self.spectral_rows):
            pooled = widened(output.graph).index_select(0, self.spectral_rows)
            total = total.index_add(0, self.spectral_rows, self.spectral * spectral_penalty(pooled, self.spectral_k))
        return total

    def clip_gradients(self, model: StackedPredictors) -> None:
        """Each member's gradient values clipped to its ``[-grad_clip, grad_clip]``."""
        if not self.clips:
            return
        for parameter in model.parameters():
            if parameter.grad is not None:
                clip_gradient_values(parameter.grad, self.clip)


def dropout_generator_after_init(device: torch.device, seed: int) -> torch.Generator:
    """The generator an unfused trial's dropout draws from once its model is built.

    On the CPU that is the global generator in its current state (the trial seeded it and built
    its model), cloned; on an accelerator, a device generator seeded with the trial's seed.
    """
    generator = torch.Generator(device=device)
    if device.type == "cpu":
        generator.set_state(torch.get_rng_state())
    else:
        generator.manual_seed(seed)
    return generator


def group_dropout_generator(device: torch.device, seeds: Sequence[int]) -> torch.Generator:
    """One dropout generator for a whole group, seeded from its members' seeds (in order)."""
    seed = int(np.random.SeedSequence([int(s) for s in seeds]).generate_state(1, dtype=np.uint64)[0] >> 1)
    return torch.Generator(device=device).manual_seed(seed)


def check_group(members: Sequence[FusedMember], recipe: TrainingRecipe) -> None:
    if not members:
        raise FusionError("a fused group needs at least one member")
    for member in members:
        if not member.method.fuses():
            raise FusionError(f"method {member.method.label} does not fuse (it needs hooks beyond the fused loop)")
        stages = member.method.stages(recipe.epochs)
        if any(s.fit_on != "train" or s.select_on != "valid" or s.epochs < 1 for s in stages):
            raise FusionError(f"method {member.method.name}: only methods that train on train and select on valid fuse")
        member.method.validate_model(member.model)
    structure = members[0].method.fusion_signature(recipe.epochs)
    for member in members[1:]:
        if member.method.fusion_signature(recipe.epochs) != structure:
            raise FusionError(
                f"members of a fused group must share their stages: {member.method.label} has "
                f"{member.method.fusion_signature(recipe.epochs)}, {members[0].method.label} {structure}"
            )
    first = members[0].split
    for member in members[1:]:
        if not (torch.equal(member.split.valid, first.valid) and torch.equal(member.split.test, first.test)):
            raise FusionError("members of a fused group must share validation and test molecules")
        if len(member.split.train) != len(first.train):
            raise FusionError(
                f"members of a fused group must fit on equally many molecules "
                f"({len(member.split.train)} vs {len(first.train)})"
            )


class TrainableMasks:
    """Which stacked parameters train for each member in a stage: ``(K,)`` masks of the parameters that
    some member keeps frozen (LP's backbone, Surgical FT's other layers, LP-FT's LP stage).

    The masks come from each member's own ``trainable_parameters`` on its own model. A frozen slice
    gets a zero gradient, so Adam (a fresh one per stage, as unfused) leaves it exactly where it is;
    with weight decay, which would move it, the slice is put back after the step."""

    def __init__(
        self,
        members: Sequence[FusedMember],
        model: StackedPredictors,
        stage_index: int,
        recipe: TrainingRecipe,
        device: torch.device,
    ):
        trains: list[set[str]] = []
        for member in members:
            stage = member.method.stages(recipe.epochs)[stage_index]
            ctx = MethodContext(model=member.model, pretrained_state=None, seed=member.seed)
            chosen = {id(p) for p in member.method.trainable_parameters(ctx, stage)}
            trains.append({name for name, p in member.model.named_parameters() if id(p) in chosen})
        self.masks: dict[str, torch.Tensor] = {}
        for name, _ in members[0].model.named_parameters():
            flags = [name in names for names in trains]
            if not all(flags):
                self.masks[name] = torch.tensor(flags, device=device)
        self.restore = recipe.weight_decay > 0

    def before_step(self, model: StackedPredictors) -> dict[str, torch.Tensor]:
        """Zero the frozen slices' gradients; returns the frozen slices to put back (weight decay only)."""
        saved = {}
        for name, mask in self.masks.items():
            parameter = model.stacked(name)
            if parameter.grad is not None:
                parameter.grad.mul_(mask.view(-1, *([1] * (parameter.dim() - 1))).to(parameter.grad.dtype))
            if self.restore:
                saved[name] = parameter.detach().clone()
        return saved

    def after_step(self, model: StackedPredictors, saved: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, before in saved.items():
                frozen = ~self.masks[name]
                model.stacked(name)[frozen] = before[frozen]


class _Best:
    """Per-trial best epoch, with the best weights stacked on the device."""

    def __init__(self, model: StackedPredictors):
        self.state = {name: tensor.detach().clone() for name, tensor in model.stacked_state().items()}
        self.results: list[FitResult | None] = [None] * model.num_trials

    def update(self, model: StackedPredictors, improved: list[int]) -> None:
        if not improved:
            return
        rows = torch.tensor(improved, device=next(iter(self.state.values())).device)
        with torch.no_grad():
            for name, tensor in model.stacked_state().items():
                self.state[name].index_copy_(0, rows, tensor.detach().index_select(0, rows))


def fit_fused(
    members: Sequence[FusedMember],
    data: GraphDataset,
    task_type: TaskType,
    higher_is_better: bool,
    recipe: TrainingRecipe,
    device: torch.device,
    on_epoch: Callable[[int, EpochRecord], None] | None = None,
    options: EngineOptions = EngineOptions(),
    dropout_draws: str | None = None,
) -> list[FitResult | DivergedError]:
    """Train every member; returns one :class:`FitResult` per member, in order.

    A member whose loss turns NaN or infinite gets a :class:`DivergedError` instead (its NaNs stay
    in its own slices: members share no parameter and no node), and the others train on.

    ``options`` (:class:`~trainables.core.engine.EngineOptions`) are applied as given (the worker
    passes those in effect for the group's device and architecture; ``tf32`` is process-wide and
    set by the caller):

    ``compile``: see ``compile_normalisation`` of :class:`StackedPredictors` (off by default:
    compiling costs tens of seconds once per process, worth it for long groups on a GPU).

    ``dropout_streams``: ``"per-trial"`` (each member's masks from its own dropout generator, as
    its unfused run: the default, exact on the CPU) or ``"group"`` (one generator for the group,
    seeded from the members' seeds: one dropout kernel per layer instead of K; a member's masks
    then depend on its group).

    ``dropout_draws`` (per-trial streams): ``"per-layer"`` (each layer's mask drawn as the unfused
    run draws it) or ``"per-step"`` (every layer's masks in one draw per member and step: K draws
    per step instead of K per layer; a member's masks still depend on its own generator only).
    ``None`` (the default): per-layer on the CPU, where the masks then equal the unfused run's,
    and per-step on an accelerator, whose unfused dropout draws with another kernel anyway.

    ``aggregation``: how messages are summed, ``"scatter"`` or ``"csr"`` (see
    :class:`StackedPredictors`; the same sums in another order).

    ``precision``: ``"fp32"`` (the default; TF32 products where ``torch.backends`` allow them) or
    ``"bf16"``: forward passes under bfloat16 autocast (matrix products, gathers and message sums
    in bfloat16, about 3 significant digits; reductions, losses and the Adam state stay float32).
    """
    check_group(members, recipe)
    device = torch.device(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=options.precision == "bf16")
    graphs = DeviceGraphs(data, device)
    if dropout_draws is None:
        dropout_draws = "per-layer" if device.type == "cpu" else "per-step"
    model = StackedPredictors([m.model for m in members], options.compile, options.aggregation, dropout_draws).to(
        device
    )
    terms = StackedTerms(members, model, device)
    K = model.num_trials
    split = members[0].split
    evaluation = {part: _evaluation_batches(graphs, getattr(split, part), K) for part in ("valid", "test")}
    targets = {part: data.y[getattr(split, part)].numpy() for part in ("valid", "test")}
    best = _Best(model)
    diverged: list[DivergedError | None] = [None] * len(members)
    histories: list[list[EpochRecord]] = [[] for _ in members]
    dropout = (
        [m.dropout_generator for m in members]
        if options.dropout_streams == "per-trial"
        else group_dropout_generator(device, [m.seed for m in members])
    )
    stages = [m.method.stages(recipe.epochs) for m in members]
    epoch = 0
    for index in range(len(stages[0])):
        # a fresh Adam per stage, as unfused; Adam is elementwise, so over stacked weights it is K
        # independent Adams (one fused kernel on a GPU)
        lr = recipe.lr if stages[0][index].lr is None else stages[0][index].lr
        optimizer = torch.optim.Adam(
            model.parameters(), lr=lr, weight_decay=recipe.weight_decay, fused=device.type == "cuda"
        )
        masks = TrainableMasks(members, model, index, recipe, device)
        stage_best = _Best(model) if any(m.method.has_stage_end for m in members) else None
        last_epoch = stages[0][index].epochs
        for epoch_in_stage in range(1, last_epoch + 1):
            epoch += 1
            train_loss = _train_epoch(
                model, graphs, members, recipe, task_type, terms, optimizer, dropout, autocast, masks
            )
            for k, loss in enumerate(train_loss):
                if diverged[k] is None:
                    try:
                        check_finite(loss, epoch, stages[k][index].name)
                    except DivergedError as exc:
                        diverged[k] = exc
            with autocast:
                val = _scores(model, evaluation["valid"], targets["valid"], task_type)
            betters_stage = [
                stage_best is not None and _improves(val[k], stage_best.results[k], higher_is_better) for k in range(K)
            ]
            betters_trial = [
                stages[k][index].selectable and _improves(val[k], best.results[k], higher_is_better) for k in range(K)
            ]
            with autocast:
                test = _test_scores(
                    model,
                    evaluation["test"],
                    targets["test"],
                    task_type,
                    options,
                    any(betters_stage) or any(betters_trial) or epoch_in_stage == last_epoch,
                    K,
                )
            improved, improved_in_stage = [], []
            for k in range(K):
                stage = stages[k][index]
                record = EpochRecord(
                    stage.name, epoch, train_loss[k], val[k].value, test[k].value, val[k].skipped, test[k].skipped
                )
                histories[k].append(record)
                if on_epoch is not None:
                    on_epoch(k, record)
                if betters_stage[k] and stage_best is not None:  # (it improved on stage_best: there is one)
                    stage_best.results[k] = FitResult(
                        epoch, stage.name, val[k].value, test[k].value, val[k], test[k], {}, histories[k], {}
                    )
                    improved_in_stage.append(k)
                if betters_trial[k]:
                    best.results[k] = FitResult(
                        epoch, stage.name, val[k].value, test[k].value, val[k], test[k], {}, histories[k], {}
                    )
                    improved.append(k)
            best.update(model, improved)
            if stage_best is not None:
                stage_best.update(model, improved_in_stage)
        if stage_best is not None:
            _end_stage(members, model, stages, index, stage_best)
    return _results(model, best, diverged)


def _end_stage(
    members: Sequence[FusedMember], model: StackedPredictors, stages: list[list], index: int, stage_best: _Best
) -> None:
    """Each member's ``end_stage`` hook on its own model, holding its current weights; what the hook
    changes goes back into the member's slices (LP-FT's best-validation LP head)."""
    for k, member in enumerate(members):
        if not member.method.has_stage_end:
            continue
        member.model.load_state_dict(model.trial_state(k))
        best_state = model.trial_state(k, stage_best.state) if stage_best.results[k] is not None else None
        ctx = MethodContext(model=member.model, pretrained_state=None, seed=member.seed)
        member.method.end_stage(ctx, stages[k][index], best_state)
        with torch.no_grad():
            for name, value in member.model.state_dict().items():
                model.stacked(name)[k].copy_(value.to(model.stacked(name).device))


def _train_epoch(
    model: StackedPredictors,
    graphs: DeviceGraphs,
    members: Sequence[FusedMember],
    recipe: TrainingRecipe,
    task_type: TaskType,
    terms: StackedTerms,
    optimizer: torch.optim.Optimizer,
    dropout,
    autocast,
    masks: TrainableMasks,
) -> list[float]:
    """One epoch of every member: each shuffles its own training molecules with its own generator;
    step ``s`` trains member ``k`` on its ``s``-th mini-batch. Returns each member's mean step loss."""
    model.train()
    orders = [m.split.train[torch.randperm(len(m.split.train), generator=m.shuffle_generator)].numpy() for m in members]
    steps = math.ceil(len(orders[0]) / recipe.batch_size)
    loss_sum = torch.zeros(
        model.num_trials, dtype=model.stacked("graph_pred_linear.weight").dtype, device=graphs.device
    )
    for step in range(steps):
        window = slice(step * recipe.batch_size, (step + 1) * recipe.batch_size)
        batch = graphs.assemble([order[window] for order in orders])
        with autocast:
            output = model(batch, training=True, dropout_generators=dropout)
            losses = task_loss(task_type, widened(output.logits), batch.y) + terms(model, batch, output)  # (K,)
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        saved = masks.before_step(model)
        terms.clip_gradients(model)
        optimizer.step()
        masks.after_step(model, saved)
        loss_sum += losses.detach()
    return (loss_sum / max(steps, 1)).tolist()


def _results(
    model: StackedPredictors, best: _Best, diverged: list[DivergedError | None]
) -> list[FitResult | DivergedError]:
    """Each member's best epoch with its weights, or its divergence."""
    results: list[FitResult | DivergedError] = []
    for k, result in enumerate(best.results):
        failure = diverged[k]
        if failure is not None:
            results.append(failure)
            continue
        if result is None:
            raise RuntimeError(
                f"fused member {k}: no epoch produced a finite validation metric (is the validation "
                "set empty or missing one of the classes in every task?)"
            )
        result.best_state = model.trial_state(k, best.state)
        results.append(result)
    return results


def _evaluation_batches(graphs: DeviceGraphs, index: torch.Tensor, K: int) -> list[FusedBatch]:
    """The molecules ``index``, the same for every trial, in fused batches of :func:`eval_batch_size`, kept
    resident."""
    ids, size = index.numpy(), eval_batch_size(graphs.device)
    return [graphs.assemble([ids[i : i + size]] * K) for i in range(0, len(ids), size)]


NOT_SCORED = Score(float("nan"), 0, 0)  # an epoch whose test molecules were not scored (``test_scoring: improved``)


def _improves(score: Score, current: FitResult | None, higher_is_better: bool) -> bool:
    return is_better(score.value, None if current is None else current.val, higher_is_better)


def _test_scores(
    model,
    batches: list[FusedBatch],
    targets: np.ndarray,
    task_type: TaskType,
    options: EngineOptions,
    reported: bool,
    K: int,
) -> list[Score]:
    """The test scores of an epoch: every member's, unless ``options.test_scoring`` is ``improved``
    and no figure of this epoch can be reported (``reported``: a member's validation improved, or
    the stage ends); then :data:`NOT_SCORED` for every member."""
    if reported or options.test_scoring == "every-epoch":
        return _scores(model, batches, targets, task_type)
    return [NOT_SCORED] * K


@torch.no_grad()
def _scores(model: StackedPredictors, batches: list[FusedBatch], targets: np.ndarray, task_type: TaskType) -> list:
    model.eval()
    logits = torch.cat([model(batch, training=False).logits for batch in batches], dim=1).float().cpu().numpy()
    return evaluate_metric_stacked(task_type, targets, logits)
