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

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from trainables.core.config import TrainingRecipe
from trainables.core.engine import EngineOptions
from trainables.data.dataset import GraphDataset
from trainables.data.tasks import TaskType
from trainables.methods.base import FineTuningMethod
from trainables.models.predictor import GraphPredictor
from trainables.training.fused.batching import DeviceGraphs, FusedBatch
from trainables.training.fused.model import FusedOutput, FusionError, StackedPredictors
from trainables.training.metrics import evaluate_metric_stacked, is_better, task_loss
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

    Strengths are ``(K,)`` vectors (0 for members without the term); anchors are stacked per
    parameter (zeros where a member has none). The spectral term runs on the members that have
    it only (``svdvals``' gradient can be NaN on repeated singular values, and 0 x NaN is NaN).
    """

    def __init__(self, members: Sequence[FusedMember], model: StackedPredictors, device: torch.device):
        states = [m.model.state_dict() for m in members]
        terms = [m.method.fused_terms(state, m.seed) for m, state in zip(members, states)]
        dtype = model.stacked("graph_pred_linear.weight").dtype

        def vector(values) -> torch.Tensor:
            return torch.tensor(values, dtype=dtype, device=device)

        self.head = vector([t.head_strength for t in terms])
        self.feature = vector([t.feature_strength for t in terms])
        self.spectral_rows = torch.tensor([k for k, t in enumerate(terms) if t.spectral_strength > 0], device=device,
                                          dtype=torch.long)
        self.spectral = vector([t.spectral_strength for t in terms]).index_select(0, self.spectral_rows)
        self.spectral_k = torch.tensor([terms[k].spectral_k for k in self.spectral_rows.tolist()], device=device)
        self.clip = vector([t.grad_clip if t.grad_clip > 0 else float("inf") for t in terms])
        self.anchors = {}
        for name in sorted({name for t in terms for name in t.anchors}):
            reference = model.stacked(name)
            stacked = torch.stack([t.anchors[name].to(device, dtype) if name in t.anchors
                                   else torch.zeros_like(reference[0]) for t in terms])
            self.anchors[name] = (vector([t.anchor_strength if name in t.anchors else 0.0 for t in terms]), stacked)
        self.source = (StackedPredictors([m.model for m in members]).to(device).eval()
                       if any(t.feature_strength > 0 for t in terms) else None)
        self.clips = bool(torch.isfinite(self.clip).any())

    def __call__(self, model: StackedPredictors, batch: FusedBatch, output: FusedOutput) -> torch.Tensor:
        K = model.num_trials
        total = torch.zeros(K, dtype=self.head.dtype, device=self.head.device)
        for name, (strength, anchor) in self.anchors.items():
            total = total + 0.5 * strength * (model.stacked(name) - anchor).pow(2).flatten(1).sum(1)
        head = sum(model.stacked(f"graph_pred_linear.{p}").pow(2).flatten(1).sum(1) for p in ("weight", "bias"))
        total = total + 0.5 * self.head * head
        if self.source is not None:
            with torch.no_grad():
                source = self.source(batch, training=False).node
            mask = batch.node_mask.reshape(-1, 1).to(source.dtype)
            squared = ((widened(output.node) - widened(source)).pow(2) * mask).view(K, -1).sum(1)
            total = total + 0.5 * self.feature * squared
        if len(self.spectral_rows):
            # (k, min(G, d)), descending
            singular = torch.linalg.svdvals(widened(output.graph).index_select(0, self.spectral_rows))
            n = singular.shape[1]
            smallest = torch.arange(n, device=singular.device).unsqueeze(0) >= (n - self.spectral_k.clamp(max=n)).unsqueeze(1)
            penalty = (singular.pow(2) * smallest).sum(1) * self.spectral
            total = total.index_add(0, self.spectral_rows, penalty)
        return total

    def clip_gradients(self, model: StackedPredictors) -> None:
        """Each member's gradient values clipped to its ``[-grad_clip, grad_clip]``."""
        if not self.clips:
            return
        for parameter in model.parameters():
            if parameter.grad is not None:
                bound = self.clip.view(-1, *([1] * (parameter.dim() - 1)))
                parameter.grad.copy_(torch.maximum(torch.minimum(parameter.grad, bound), -bound))


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
        if not member.method.fusable:
            raise FusionError(f"method {member.method.name} does not fuse (it needs hooks beyond the base loop)")
        stages = member.method.stages(recipe.epochs)
        if len(stages) != 1 or stages[0].fit_on != "train" or stages[0].select_on != "valid":
            raise FusionError(f"method {member.method.name}: only one-stage train/valid methods fuse")
    first = members[0].split
    for member in members[1:]:
        if not (torch.equal(member.split.valid, first.valid) and torch.equal(member.split.test, first.test)):
            raise FusionError("members of a fused group must share validation and test molecules")
        if len(member.split.train) != len(first.train):
            raise FusionError(f"members of a fused group must fit on equally many molecules "
                              f"({len(member.split.train)} vs {len(first.train)})")


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


def fit_fused(members: Sequence[FusedMember], data: GraphDataset, task_type: TaskType, higher_is_better: bool,
              recipe: TrainingRecipe, device: torch.device,
              on_epoch: Callable[[int, EpochRecord], None] | None = None,
              options: EngineOptions = EngineOptions(), dropout_draws: str | None = None) -> list[FitResult | DivergedError]:
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
    model = StackedPredictors([m.model for m in members], options.compile, options.aggregation,
                              dropout_draws).to(device)
    terms = StackedTerms(members, model, device)
    K = model.num_trials
    # Adam is elementwise, so over stacked weights it is K independent Adams (one fused kernel on a GPU)
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay,
                                 fused=device.type == "cuda")
    split = members[0].split
    evaluation = {part: _evaluation_batches(graphs, getattr(split, part), K) for part in ("valid", "test")}
    targets = {part: data.y[getattr(split, part)].numpy() for part in ("valid", "test")}
    stage = members[0].method.stages(recipe.epochs)[0]
    best = _Best(model)
    diverged: list[DivergedError | None] = [None] * len(members)
    histories: list[list[EpochRecord]] = [[] for _ in members]
    dropout = ([m.dropout_generator for m in members] if options.dropout_streams == "per-trial"
               else group_dropout_generator(device, [m.seed for m in members]))
    for epoch in range(1, recipe.epochs + 1):
        train_loss = _train_epoch(model, graphs, members, recipe, task_type, terms, optimizer, dropout, autocast)
        for k, loss in enumerate(train_loss):
            if diverged[k] is None:
                try:
                    check_finite(loss, epoch, stage.name)
                except DivergedError as exc:
                    diverged[k] = exc
        with autocast:
            val = _scores(model, evaluation["valid"], targets["valid"], task_type)
            test = _scores(model, evaluation["test"], targets["test"], task_type)
        improved = []
        for k in range(K):
            record = EpochRecord(stage.name, epoch, train_loss[k], val[k].value, test[k].value, val[k].skipped,
                                 test[k].skipped)
            histories[k].append(record)
            if on_epoch is not None:
                on_epoch(k, record)
            current = best.results[k]
            if is_better(val[k].value, None if current is None else current.val, higher_is_better):
                best.results[k] = FitResult(epoch, stage.name, val[k].value, test[k].value, val[k], test[k], {},
                                            histories[k], {})
                improved.append(k)
        best.update(model, improved)
    return _results(model, best, diverged)


def _train_epoch(model: StackedPredictors, graphs: DeviceGraphs, members: Sequence[FusedMember],
                 recipe: TrainingRecipe, task_type: TaskType, terms: StackedTerms, optimizer: torch.optim.Optimizer,
                 dropout, autocast) -> list[float]:
    """One epoch of every member: each shuffles its own training molecules with its own generator;
    step ``s`` trains member ``k`` on its ``s``-th mini-batch. Returns each member's mean step loss."""
    model.train()
    orders = [m.split.train[torch.randperm(len(m.split.train), generator=m.shuffle_generator)].numpy()
              for m in members]
    steps = -(-len(orders[0]) // recipe.batch_size)
    loss_sum = torch.zeros(model.num_trials, dtype=model.stacked("graph_pred_linear.weight").dtype,
                           device=graphs.device)
    for step in range(steps):
        window = slice(step * recipe.batch_size, (step + 1) * recipe.batch_size)
        batch = graphs.assemble([order[window] for order in orders])
        with autocast:
            output = model(batch, training=True, dropout_generators=dropout)
            losses = task_loss(task_type, widened(output.logits), batch.y) + terms(model, batch, output)  # (K,)
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        terms.clip_gradients(model)
        optimizer.step()
        loss_sum += losses.detach()
    return (loss_sum / max(steps, 1)).tolist()


def _results(model: StackedPredictors, best: _Best, diverged: list[DivergedError | None]) -> list[FitResult | DivergedError]:
    """Each member's best epoch with its weights, or its divergence."""
    results: list[FitResult | DivergedError] = []
    for k, result in enumerate(best.results):
        if diverged[k] is not None:
            results.append(diverged[k])
            continue
        if result is None:
            raise RuntimeError(f"fused member {k}: no epoch produced a finite validation metric (is the validation "
                               "set empty or missing one of the classes in every task?)")
        result.best_state = model.trial_state(k, best.state)
        results.append(result)
    return results


def _evaluation_batches(graphs: DeviceGraphs, index: torch.Tensor, K: int) -> list[FusedBatch]:
    """The molecules ``index``, the same for every trial, in fused batches of :func:`eval_batch_size`, kept
    resident."""
    ids, size = index.numpy(), eval_batch_size(graphs.device)
    return [graphs.assemble([ids[i:i + size]] * K) for i in range(0, len(ids), size)]


@torch.no_grad()
def _scores(model: StackedPredictors, batches: list[FusedBatch], targets: np.ndarray, task_type: TaskType) -> list:
    model.eval()
    logits = torch.cat([model(batch, training=False).logits for batch in batches], dim=1).float().cpu().numpy()
    return evaluate_metric_stacked(task_type, targets, logits)
