"""WiSE-FT evaluations and RoFt-Mol alpha fits, K at once.

Each member interpolates its own pair (theta_pre, theta_ft: its backbone and its Full-FT parent)
with its own coefficients: for every float entry ``w`` of layer group ``g``,

    w_k(alpha) = (1 - a_kg) * w_pre_k + a_kg * w_ft_k,      a_kg = alpha_k[tie_k[g]]

the expression of :func:`trainables.methods.interpolation.interpolate`, evaluated for all members at
once on ``(K, ...)`` stacks (so each member's weights are bitwise those of its unfused run). The
stacked weights are handed to one :class:`~trainables.training.fused.model.StackedPredictors` with
``torch.func.functional_call``; its forward pass is the fused training engine's.

* WiSE-FT (``epochs = 0``): every member's theta(alpha) is evaluated once on validation and test:
  one batched pass for a whole cell's grid of alphas and seeds instead of one model per point.
* RoFt-Mol: the alphas ``(K, G)`` (``G`` the most groups of any member; unused columns never move)
  train with Adam, each member with its own learning rate and step count (:class:`StackedAdam`: with
  ``tied_updates: repeated`` a tied alpha takes one update per layer group sharing it), on the shared
  fitting molecules (validation, or its fitting half) in the split's order or in each member's own
  shuffled order, BatchNorm in train mode with running statistics of each member's own that drift
  (``bn_mode: train``; ``bn_mode: eval`` trains alone). Each member keeps its best epoch on its selection part and
  that epoch's weights and alphas.

Members must share the architecture, the task and split, the fitting and selection parts, the
number of epochs, the fitting order and the BatchNorm mode; backbones, parents, groupings,
initial values and learning rates may differ.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call

from trainables.core.config import TrainingRecipe
from trainables.core.engine import EngineOptions
from trainables.data.dataset import GraphDataset
from trainables.data.tasks import TaskType
from trainables.methods.base import MethodContext
from trainables.methods.interpolation import BN_STATISTICS, InterpolatingMethod, layer_group, tying
from trainables.training.fused.batching import DeviceGraphs
from trainables.training.fused.model import FusionError, StackedPredictors, _attribute
from trainables.training.metrics import task_loss
from trainables.training.trainer import DivergedError, EpochRecord, FitResult, check_finite


class StackedAdam:
    """Adam over a ``(K, G)`` tensor with a learning rate and a step count per element: the update of
    ``torch.optim.Adam`` (its single-tensor form, no weight decay), element by element.

    ``step(active)`` updates the elements where ``active`` is true and leaves the others (and their
    moments and step counts) alone."""

    def __init__(
        self, parameter: torch.Tensor, lr: torch.Tensor, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ):
        self.parameter, self.lr, (self.beta1, self.beta2), self.eps = parameter, lr, betas, eps
        self.exp_avg = torch.zeros_like(parameter)
        self.exp_avg_sq = torch.zeros_like(parameter)
        self.steps = torch.zeros(parameter.shape, dtype=torch.float64, device=parameter.device)

    @torch.no_grad()
    def step(self, active: torch.Tensor) -> None:
        gradient = self.parameter.grad
        self.steps += active.to(torch.float64)
        exp_avg = torch.lerp(self.exp_avg, gradient, 1 - self.beta1)
        exp_avg_sq = self.exp_avg_sq * self.beta2 + (1 - self.beta2) * gradient * gradient
        self.exp_avg.copy_(torch.where(active, exp_avg, self.exp_avg))
        self.exp_avg_sq.copy_(torch.where(active, exp_avg_sq, self.exp_avg_sq))
        steps = self.steps.clamp(min=1)
        step_size = (self.lr.to(torch.float64) / (1 - self.beta1**steps)).to(gradient.dtype)
        bias_correction2_sqrt = ((1 - self.beta2**steps) ** 0.5).to(gradient.dtype)
        denom = self.exp_avg_sq.sqrt() / bias_correction2_sqrt + self.eps
        updated = self.parameter - step_size * self.exp_avg / denom
        self.parameter.copy_(torch.where(active, updated, self.parameter))


class InterpolationMember:
    """One trial of an interpolation group: its model (``GraphPredictor`` with the backbone's weights),
    its method (WiSE-FT or RoFt-Mol, not searching), its context (``parent_state`` set), split,
    shuffling and dropout generators and seed, as its unfused run would use them."""

    def __init__(
        self,
        model: nn.Module,
        method: InterpolatingMethod,
        ctx: MethodContext,
        split,
        shuffle_generator: torch.Generator,
        dropout_generator: torch.Generator,
        seed: int,
    ):
        self.model, self.method, self.ctx, self.split = model, method, ctx, split
        self.shuffle_generator, self.dropout_generator, self.seed = shuffle_generator, dropout_generator, seed


class InterpolatedStack(nn.Module):
    """K members' theta(alpha) on one :class:`StackedPredictors`: ``forward(batch, training, ...)``."""

    def __init__(self, members: Sequence[InterpolationMember], device: torch.device):
        super().__init__()
        self.stack = StackedPredictors([m.model for m in members]).to(device)
        K = len(members)
        encoder = members[0].model.gnn
        self.names = self.stack.state_names
        groups = [m.method.num_groups() for m in members]
        dtype = self.stack.stacked("graph_pred_linear.weight").dtype
        self.alphas = torch.zeros(K, max(groups), dtype=dtype, device=device)
        ties = [tying(g, encoder.num_layers) for g in groups]
        self.tie = torch.tensor(ties, device=device)  # (K, L + 1): each layer group's alpha column
        self.used = torch.zeros(K, max(groups), dtype=torch.bool, device=device)
        self.repeats = torch.zeros(K, max(groups), dtype=torch.long, device=device)
        for k, (member, tie) in enumerate(zip(members, ties)):
            params = member.method.params
            self.alphas[k, : groups[k]] = float(params["alpha_init"] if "alpha_init" in params else params["alpha"])
            self.used[k, : groups[k]] = True
            for g in range(groups[k]):
                self.repeats[k, g] = tie.count(g)
        # members whose BatchNorm statistics are interpolated (bn_stats: interpolate); the others take theta_ft's
        self.interpolated_statistics = torch.tensor(
            [m.method.params["bn_stats"] == "interpolate" for m in members], device=device
        )
        self.pre = {name: torch.stack([m.method.pre[name] for m in members]).to(device) for name in self.names}
        self.ft = {name: torch.stack([m.method.ft[name] for m in members]).to(device) for name in self.names}
        self.group = {name: layer_group(name, encoder) for name in self.names}
        self.live: dict[str, torch.Tensor] | None = None

    def keep_live_statistics(self) -> None:
        """From now on the BatchNorm running statistics are buffers of the group's own, starting from
        theta(alpha)'s, that training-mode passes move (RoFt-Mol's ``bn_mode: train``)."""
        with torch.no_grad():
            start = self.state()
        self.live = {
            name: value.detach().clone()
            for name, value in start.items()
            if name.rsplit(".", 1)[-1] in (*BN_STATISTICS, "num_batches_tracked")
        }

    def state(self) -> dict[str, torch.Tensor]:
        """Every member's theta(alpha), stacked ``(K, ...)`` per state name (differentiable in ``alphas``)."""
        effective = torch.gather(self.alphas, 1, self.tie)  # (K, L + 1)
        out = {}
        for name in self.names:
            ft, group = self.ft[name], self.group[name]
            is_statistic = name.rsplit(".", 1)[-1] in BN_STATISTICS
            if group is None or not ft.is_floating_point() or (is_statistic and not self.interpolated_statistics.any()):
                out[name] = ft
                continue
            alpha = effective[:, group].view(-1, *([1] * (ft.dim() - 1)))
            alpha = alpha.detach() if is_statistic else alpha
            value = (1 - alpha) * self.pre[name] + alpha * ft
            if is_statistic:
                value = torch.where(self.interpolated_statistics.view_as(alpha), value, ft)
            out[name] = value
        if self.live is not None:
            out.update(self.live)
        return out

    def forward(self, batch, training: bool, dropout_generators=None):
        tensors = {_attribute(name): value for name, value in self.state().items()}
        return functional_call(
            self.stack, tensors, (batch,), {"training": training, "dropout_generators": dropout_generators}
        )


def fit_interpolation_group(
    members: Sequence[InterpolationMember],
    data: GraphDataset,
    task_type: TaskType,
    higher_is_better: bool,
    recipe: TrainingRecipe,
    device: torch.device,
    on_epoch: Callable[[int, EpochRecord], None] | None = None,
    options: EngineOptions = EngineOptions(),
) -> list[FitResult | DivergedError]:
    """Evaluate (WiSE-FT) or fit (RoFt-Mol) every member; one :class:`FitResult` (or divergence) per member.

    ``options.test_scoring``: ``improved`` scores a fit's test molecules only at the epochs some
    member's validation improves and at the last one (a WiSE-FT point is always scored)."""
    from trainables.training.fused.engine import _evaluation_batches, _scores

    device = torch.device(device)
    signature = members[0].method.fusion_signature(recipe.epochs)
    if signature is None or signature[0] != "interpolation":
        raise FusionError(f"method {members[0].method.label} does not fuse in an interpolation group")
    for member in members:
        if member.method.fusion_signature(recipe.epochs) != signature:
            raise FusionError(
                f"members of an interpolation group must share {signature}; "
                f"{member.method.label} has {member.method.fusion_signature(recipe.epochs)}"
            )
        if member.ctx.pretrained_state is None:  # theta_pre: the model's weights when fitting begins (as ``fit``)
            member.ctx.pretrained_state = {
                k: v.detach().to("cpu", copy=True) for k, v in member.model.state_dict().items()
            }
        member.method.setup(member.ctx)  # theta_pre and theta_ft of the member, checked to share one layout
    _, epochs, fit_on, select_on, shuffle, bn_mode = signature
    first = members[0].split
    for member in members[1:]:
        if not all(torch.equal(member.split.part(p), first.part(p)) for p in (fit_on, select_on, "test")):
            raise FusionError(
                "members of an interpolation group must share their fitting, selection and test molecules"
            )
    graphs = DeviceGraphs(data, device)
    stack = InterpolatedStack(members, device)
    K = len(members)
    evaluation = {part: _evaluation_batches(graphs, first.part(part), K) for part in (select_on, "test")}
    targets = {part: data.y[first.part(part)].numpy() for part in (select_on, "test")}
    if epochs == 0:  # WiSE-FT: one evaluation of theta(alpha)
        with torch.no_grad():
            val = _scores(stack, evaluation[select_on], targets[select_on], task_type)
            test = _scores(stack, evaluation["test"], targets["test"], task_type)
            state = {name: value.detach() for name, value in stack.state().items()}
        results: list[FitResult | DivergedError] = []
        for k, member in enumerate(members):
            record = EpochRecord(
                "evaluate", 0, float("nan"), val[k].value, test[k].value, val[k].skipped, test[k].skipped
            )
            if on_epoch is not None:
                on_epoch(k, record)
            results.append(
                FitResult(
                    0, "evaluate", val[k].value, test[k].value, val[k], test[k], _member_state(state, k), [record], {}
                )
            )
        return results
    return _fit_alphas(
        members,
        stack,
        graphs,
        evaluation,
        targets,
        task_type,
        higher_is_better,
        recipe,
        fit_on,
        select_on,
        epochs,
        shuffle,
        bn_mode,
        on_epoch,
        options,
    )


def _member_state(state: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    return {name: value[k].detach().to("cpu", copy=True) for name, value in state.items()}


def _fit_alphas(
    members,
    stack: InterpolatedStack,
    graphs: DeviceGraphs,
    evaluation,
    targets,
    task_type: TaskType,
    higher_is_better: bool,
    recipe: TrainingRecipe,
    fit_on: str,
    select_on: str,
    epochs: int,
    shuffle: bool,
    bn_mode: str,
    on_epoch,
    options: EngineOptions,
) -> list[FitResult | DivergedError]:
    from trainables.training.fused.engine import _improves, _scores, _test_scores

    K = len(members)
    if bn_mode == "train":
        stack.keep_live_statistics()
    stack.alphas.requires_grad_(True)
    lr = torch.tensor(
        [[m.method.params["alpha_lr"]] for m in members], dtype=torch.float64, device=stack.alphas.device
    ).expand_as(stack.alphas)
    repeated = torch.tensor(
        [[m.method.params["tied_updates"] == "repeated"] for m in members], device=stack.alphas.device
    ).expand_as(stack.used)
    rounds = torch.where(repeated, stack.repeats, stack.used.long())
    optimizer = StackedAdam(stack.alphas, lr)
    fit_index = members[0].split.in_split_order(fit_on) if not shuffle else members[0].split.part(fit_on)
    dropout = [m.dropout_generator for m in members]
    best: list[FitResult | None] = [None] * K
    best_state = {name: value.detach().clone() for name, value in stack.state().items()}
    best_alphas = stack.alphas.detach().clone()
    histories: list[list[EpochRecord]] = [[] for _ in members]
    diverged: list[DivergedError | None] = [None] * K
    for epoch in range(1, epochs + 1):
        orders = [
            fit_index[torch.randperm(len(fit_index), generator=m.shuffle_generator)].numpy()
            if shuffle
            else fit_index.numpy()
            for m in members
        ]
        loss_sum = torch.zeros(K, dtype=torch.float64, device=stack.alphas.device)
        steps = math.ceil(len(fit_index) / recipe.batch_size)
        for step in range(steps):
            window = slice(step * recipe.batch_size, (step + 1) * recipe.batch_size)
            batch = graphs.assemble([order[window] for order in orders])
            output = stack(batch, training=True, dropout_generators=dropout)
            losses = task_loss(task_type, output.logits, batch.y)  # (K,)
            stack.alphas.grad = None
            losses.sum().backward()
            for round_ in range(int(rounds.max())):
                optimizer.step(rounds > round_)
            loss_sum += losses.detach().double()
        train_loss = (loss_sum / max(steps, 1)).tolist()
        with torch.no_grad():
            val = _scores(stack, evaluation[select_on], targets[select_on], task_type)
            betters = [_improves(val[k], best[k], higher_is_better) for k in range(K)]
            test = _test_scores(
                stack, evaluation["test"], targets["test"], task_type, options, any(betters) or epoch == epochs, K
            )
        improved = []
        for k, member in enumerate(members):
            if diverged[k] is None:
                try:
                    check_finite(train_loss[k], epoch, "alpha")
                except DivergedError as exc:
                    diverged[k] = exc
            record = EpochRecord(
                "alpha", epoch, train_loss[k], val[k].value, test[k].value, val[k].skipped, test[k].skipped
            )
            histories[k].append(record)
            if on_epoch is not None:
                on_epoch(k, record)
            if betters[k]:
                best[k] = FitResult(epoch, "alpha", val[k].value, test[k].value, val[k], test[k], {}, histories[k], {})
                improved.append(k)
        if improved:
            rows = torch.tensor(improved, device=stack.alphas.device)
            with torch.no_grad():
                state = stack.state()
                for name, value in state.items():
                    best_state[name].index_copy_(0, rows, value.detach().index_select(0, rows))
                best_alphas.index_copy_(0, rows, stack.alphas.detach().index_select(0, rows))
    results: list[FitResult | DivergedError] = []
    for k, member in enumerate(members):
        failure, found = diverged[k], best[k]
        if failure is not None:
            results.append(failure)
            continue
        if found is None:
            raise RuntimeError(f"interpolation member {k}: no epoch produced a finite validation metric")
        groups = member.method.num_groups()
        chosen = [float(a) for a in best_alphas[k, :groups]]
        final = [float(a) for a in stack.alphas.detach()[k, :groups]]
        found.best_state = _member_state(best_state, k)
        found.summary = {"alphas": chosen, **({"final_alphas": final} if final != chosen else {})}
        results.append(found)
    return results
