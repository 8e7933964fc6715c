"""Plain fine-tuning methods, written the way the RoFt-Mol scripts compute them, to check roft's trainers against.

Each function below follows one script of RoFt-Mol's ``Mole-BERT`` folder on the loop of
:mod:`tests.unit.trainables.training.reference_loop` (PyG ``Data`` batches, the scripts' task loss,
the same batch order as roft; see that module for the two departures that only align the
randomness). The model is whatever ``GraphPredictor`` is handed in, called on the PyG batch;
nothing here uses roft's methods, trainer or fused engine.

* :func:`regularized_finetune`: ``reg_ft.py``. Every step runs, in order, the source model
  (a frozen copy of the pre-trained model, ``eval()``) through its layer getter, the target
  model through its layer getter (train mode: its BatchNorm statistics move), then the target
  model again for the task loss; ``loss = task + trade_off_backbone * backbone +
  trade_off_head * head + trade_off_bss * bss`` with (tllib's regularisers)

  - ``l2_sp``: ``backbone = sum over every named parameter of the target (head included) of
    0.5 ||w - w_source||^2``; the source's head is its own random initialisation;
  - ``feature_map``: ``backbone = 0.5 ||F_t - F_s||_F^2``, ``F`` the output the getter records:
    ``gnn.gnns.4.mlp.2`` in the script (GIN only; the last layer's convolution output before
    its BatchNorm), ``gnn.gnns.{L-1}`` here for other convolutions;
  - ``bss``: ``sum_{i<k}`` of the squared smallest singular values of ``torch.svd`` of the
    mean-pooled final node states of the *getter's* pass, transposed;
  - ``head = sum over the head's parameters of 0.5 ||w||^2`` (added for every type);

  then ``clip_grad_value_(model.parameters(), 10)`` and one Adam step over every parameter.
  ``double_forward=False`` takes the features and logits from one pass (roft's default, a
  documented departure: BatchNorm statistics move once per step instead of twice).
  The script's total loss is a float32 ``(1,)`` tensor (``torch.tensor([0.0]) + ...``); that
  rounds the value it would print, not the gradients (the sum's backward passes 1 exactly), so
  here the total is kept in the model's precision.
  tllib writes each squared norm as ``torch.norm(x) ** 2``; here it is ``x.pow(2).sum()``, the
  same function with another rounding of its gradient (``2 ||x|| x / ||x||`` against ``2 x``).
  That rounding is not harmless in a step-exact check: a GIN's second MLP bias feeds a
  training-mode BatchNorm, so its task gradient is rounding noise, and under L2-SP its whole
  gradient is noise plus ``d (b - b_pre)`` of the same size, which Adam turns into steps of up to
  ``lr``. Measured with ``torch.norm(x) ** 2`` against roft (Tox21, GIN 5 x 64, ``d = 0.01``, 24
  steps): step losses apart by up to 4e-10 (relative), those biases by 6e-6, ROC-AUC by 2e-6.
  BSS keeps the script's ``torch.svd`` (roft: ``torch.linalg.svdvals``): the two agree to ~1e-14
  in the step losses and ~2e-10 on those biases after 24 steps.
* :func:`partial_finetune`: ``finetune_ood.py`` with a ``tune_option``: ``linear_layer`` (LP,
  the head) or ``first_linear`` .. ``fifth_linear`` (Surgical FT: ``gnn.gnns[i]`` and the head;
  the layer's BatchNorm does not train). Adam holds only those parameters; the model is never
  frozen (every parameter keeps ``requires_grad``) and runs in train mode throughout, so every
  BatchNorm's running statistics move.
* :func:`lp_ft`: ``lp_ft.py``. Two Adams are built up front, over the head (LP) and over
  everything (FT, so its state starts empty when FT starts). The LP stage's "best head" is
  ``graph_pred_linear.state_dict()``, whose tensors alias the live head, so FT continues from the
  last LP head; only the FT epochs are reported (epochs numbered on from the LP stage here, as
  roft counts them).
* :func:`wise_ft`: ``WISE.py``. ``theta = (1 - alpha) * theta_pre + alpha * theta_ft`` over every
  key of the encoder's state (running statistics and the integer ``num_batches_tracked`` too,
  which ``load_state_dict`` truncates back into int64), the fine-tuned head; one evaluation.
* :class:`InterpolatedModel` and :func:`dwise`: ``model.py``'s ``GNN_interpolate`` and
  ``DWISE.py``. An encoder loaded with theta_ft whose parameters are replaced before every
  forward by ``alpha_g * w_ft + (1 - alpha_g) * w_pre``, only for parameter names containing
  ``x_embedding`` (group 0), ``mlp``, ``edge_embedding`` or ``batch_norms`` (group layer + 1):
  a GCN's ``linear`` weights stay at theta_ft there (``interpolate="all"`` interpolates them
  too, as roft does). Running statistics are the encoder's own, from theta_ft, and move while
  the alphas fit (``model.train()``); the head is theta_ft's, frozen. The alphas fit on the
  validation split in its order (``val_loader``, not shuffled) with ``Adam(alpha_list)``,
  ``alpha_list`` naming a tied alpha once per group that shares it; on the CPU Adam's
  per-parameter loop then updates a tied alpha once per repeat (``tied_updates="repeated"``).
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
from torch_geometric.data import Data
from torch_geometric.nn import global_mean_pool

from tests.unit.trainables.training.reference_loop import ReferenceRun, evaluate, make_loaders, script_loss

CLIP_VALUE = 10.0  # reg_ft.py: nn.utils.clip_grad_value_(model.parameters(), clip_value=10)
SURGICAL_OPTIONS = ("first_linear", "second_linear", "third_linear", "fourth_linear", "fifth_linear")
# GNN_interpolate: alpha_list (one entry per group: atom embeddings, layers 1..5) for 1, 2, 3 or 6 alphas
ALPHA_LISTS = {1: (0, 0, 0, 0, 0, 0), 2: (0, 0, 0, 0, 1, 1), 3: (0, 0, 0, 1, 1, 2), 6: (0, 1, 2, 3, 4, 5)}
INTERPOLATED_NAMES = ("x_embedding", "mlp", "edge_embedding", "batch_norms")  # GNN_interpolate.weight_interpolate


@dataclass
class MethodRun(ReferenceRun):
    """A :class:`ReferenceRun` with the methods' extras.

    ``total_losses``: each step's full loss (task + penalties; empty: equal to the task loss).
    ``stages``: each epoch's stage. ``alphas``: RoFt-Mol's alphas after each epoch, one per group.
    """

    total_losses: list[float] = field(default_factory=list)
    stages: list[str] = field(default_factory=list)
    alphas: list[list[float]] = field(default_factory=list)

    def epoch_losses(self, steps_per_epoch: int) -> list[float]:
        """Mean loss of each epoch (the full loss where the method adds terms)."""
        losses = self.total_losses or self.step_losses
        return [sum(losses[i:i + steps_per_epoch]) / steps_per_epoch for i in range(0, len(losses), steps_per_epoch)]


class EpochLog:
    """The scripts' per-epoch bookkeeping: valid and test evaluated after every epoch; the reported
    epoch is the first with the best validation metric among the reported stages."""

    def __init__(self, regression: bool):
        self.regression = regression
        self.val, self.test, self.outputs, self.states, self.stages, self.alphas = [], [], [], [], [], []

    def evaluate(self, model: Callable, val_loader, test_loader, stage: str, state: dict,
                 alphas: list[float] | None = None) -> None:
        val_out, test_out = [], []
        self.val.append(evaluate(model, val_loader, self.regression, val_out))
        self.test.append(evaluate(model, test_loader, self.regression, test_out))
        self.outputs.append({"valid": val_out[0], "test": test_out[0]})
        self.states.append(copy.deepcopy(state))
        self.stages.append(stage)
        if alphas is not None:
            self.alphas.append(alphas)

    def run(self, step_losses: list[float], total_losses: list[float], final_state: dict,
            reported: Iterable[str] | None = None) -> MethodRun:
        chosen = [i for i, stage in enumerate(self.stages) if reported is None or stage in reported]
        listed = [self.val[i] for i in chosen]
        best = chosen[listed.index((min if self.regression else max)(listed))]
        return MethodRun(step_losses, self.val, self.test, best + 1, self.val[best], self.test[best],
                         self.states[best], copy.deepcopy(final_state), self.outputs, total_losses, self.stages,
                         self.alphas)


def module_at(model: nn.Module, name: str) -> nn.Module:
    return model.get_submodule(name)


@contextlib.contextmanager
def recording(model: nn.Module, name: str):
    """tllib's ``IntermediateLayerGetter``: the output of module ``name`` in the forward passes run inside
    (the last one's, under key ``"output"``)."""
    record: dict[str, torch.Tensor] = {}
    handle = module_at(model, name).register_forward_hook(lambda module, args, output: record.__setitem__("output",
                                                                                                         output))
    try:
        yield record
    finally:
        handle.remove()


def feature_layer(model: nn.Module) -> str:
    """The module whose output Feature-map compares: ``gnn.gnns.4.mlp.2`` in reg_ft.py (a 5-layer GIN);
    the last layer's convolution for other encoders."""
    last = len(model.gnn.gnns) - 1
    return f"gnn.gnns.{last}.mlp.2" if hasattr(model.gnn.gnns[last], "mlp") else f"gnn.gnns.{last}"


def squared_frobenius(tensor: torch.Tensor) -> torch.Tensor:
    """``||tensor||_F^2`` as a sum of squares (tllib writes ``torch.norm(tensor) ** 2``; see the module doc)."""
    return tensor.pow(2).sum()


def regularized_finetune(model: nn.Module, train_dataset: list[Data], valid_dataset: list[Data],
                         test_dataset: list[Data], *, regression: bool, epochs: int, regularization: str,
                         trade_off: float, trade_off_head: float, k: int = 1, source_head: dict | None = None,
                         double_forward: bool = True, feature_module: str | None = None, batch_size: int = 32,
                         lr: float = 1e-3, clip_value: float = CLIP_VALUE, penalty_first: bool = False,
                         shuffle_generator: torch.Generator) -> MethodRun:
    """reg_ft.py's ``train`` (``regularization`` ``l2_sp``, ``feature_map`` or ``bss``; ``trade_off`` is
    ``trade_off_backbone``, or ``trade_off_bss`` for ``bss``) on ``model`` in place; ``model``'s current
    weights are the pre-trained (source) model's. ``source_head``: the source model's head
    (``graph_pred_linear`` state; None: the target's). ``feature_module``: the recorded module
    (None: :func:`feature_layer`). ``penalty_first``: build the penalty right after the getter's
    pass, before the task loss's (the script builds it after; the same function, whose gradient is
    accumulated in another order)."""
    if regularization not in ("l2_sp", "feature_map", "bss"):
        raise ValueError(f"regularization {regularization!r}")
    train_loader, val_loader, test_loader = make_loaders(train_dataset, valid_dataset, test_dataset, batch_size,
                                                         shuffle_generator)
    source = copy.deepcopy(model)
    if source_head is not None:
        source.graph_pred_linear.load_state_dict(source_head)
    for param in source.parameters():
        param.requires_grad = False
    source.eval()
    source_weight = {name: param.detach() for name, param in source.named_parameters()}  # SPRegularization
    layer = feature_module or feature_layer(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=0.0)

    log, step_losses, total_losses = EpochLog(regression), [], []
    for _ in range(epochs):
        model.train()
        for batch in train_loader:
            with recording(source, layer) as features_s:
                source(batch)  # source_getter: eval mode, no effect beyond its features
            with recording(model, layer) as features_t:
                output_t = model(batch)  # target_getter
            fea = global_mean_pool(output_t.node, batch.batch)

            def penalties():
                if regularization == "l2_sp":
                    return sum(0.5 * squared_frobenius(param - source_weight[name])
                               for name, param in model.named_parameters()), 0.0
                if regularization == "feature_map":
                    return 0.5 * squared_frobenius(features_t["output"] - features_s["output"].detach()), 0.0
                _, s, _ = torch.svd(fea.t())
                return 0.0, sum(torch.pow(s[s.size(0) - 1 - i], 2) for i in range(k))

            if penalty_first:
                backbone, bss = penalties()
            pred = model(batch).logits if double_forward else output_t.logits
            cls_loss = script_loss(pred, batch, regression)
            head = sum(0.5 * squared_frobenius(param) for param in model.graph_pred_linear.parameters())
            if not penalty_first:
                backbone, bss = penalties()
            trade_off_backbone = 0.0 if regularization == "bss" else trade_off
            trade_off_bss = trade_off if regularization == "bss" else 0.0
            loss = cls_loss + trade_off_backbone * backbone + trade_off_head * head + trade_off_bss * bss
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_value_(model.parameters(), clip_value=clip_value)
            optimizer.step()
            step_losses.append(float(cls_loss.detach()))
            total_losses.append(float(loss.detach()))
        log.evaluate(model, val_loader, test_loader, "finetune", model.state_dict())
    return log.run(step_losses, total_losses, model.state_dict())


def tune_option_parameters(model: nn.Module, tune_option: str) -> list[nn.Parameter]:
    """finetune_ood.py's ``tune_params_dict[tune_option]``, flattened."""
    if tune_option == "linear_layer":
        return list(model.graph_pred_linear.parameters())
    if tune_option == "all":
        return list(model.gnn.parameters()) + list(model.graph_pred_linear.parameters())
    layer = SURGICAL_OPTIONS.index(tune_option)
    return list(model.gnn.gnns[layer].parameters()) + list(model.graph_pred_linear.parameters())


def train_steps(model: nn.Module, loader, optimizer, regression: bool, step_losses: list) -> None:
    """The scripts' ``train``: one epoch in train mode, nothing frozen."""
    model.train()
    for batch in loader:
        pred = model(batch).logits
        loss = script_loss(pred, batch, regression)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step_losses.append(float(loss.detach()))


def partial_finetune(model: nn.Module, train_dataset: list[Data], valid_dataset: list[Data], test_dataset: list[Data],
                     *, regression: bool, epochs: int, tune_option: str,
                     extra_parameters: Callable[[nn.Module], list[nn.Parameter]] | None = None, batch_size: int = 32,
                     lr: float = 1e-3, shuffle_generator: torch.Generator) -> MethodRun:
    """finetune_ood.py with ``tune_option`` (``linear_layer``, ``first_linear`` ..). ``extra_parameters``
    (for checks only) adds parameters to the optimizer."""
    train_loader, val_loader, test_loader = make_loaders(train_dataset, valid_dataset, test_dataset, batch_size,
                                                         shuffle_generator)
    params_list = tune_option_parameters(model, tune_option) + (extra_parameters(model) if extra_parameters else [])
    optimizer = torch.optim.Adam(params_list, lr=lr, weight_decay=0.0)
    log, step_losses = EpochLog(regression), []
    for _ in range(epochs):
        train_steps(model, train_loader, optimizer, regression, step_losses)
        log.evaluate(model, val_loader, test_loader, "finetune", model.state_dict())
    return log.run(step_losses, [], model.state_dict())


def lp_ft(model: nn.Module, train_dataset: list[Data], valid_dataset: list[Data], test_dataset: list[Data], *,
          regression: bool, lp_epochs: int, ft_epochs: int, batch_size: int = 32, lr: float = 1e-3,
          shuffle_generator: torch.Generator, carry_head_moments: bool = False) -> MethodRun:
    """lp_ft.py (its one ``--epochs`` split into ``lp_epochs`` and ``ft_epochs``). Every epoch of both
    stages is logged (stages ``lp`` and ``ft``); the reported epoch is the FT stage's best.

    ``carry_head_moments`` (for checks only): the FT Adam starts from the LP Adam's state for the head."""
    train_loader, val_loader, test_loader = make_loaders(train_dataset, valid_dataset, test_dataset, batch_size,
                                                         shuffle_generator)
    optimizer = torch.optim.Adam(list(model.gnn.parameters()) + list(model.graph_pred_linear.parameters()), lr=lr,
                                 weight_decay=0.0)
    optimizer_cls = torch.optim.Adam(model.graph_pred_linear.parameters(), lr=lr, weight_decay=0.0)
    log, step_losses = EpochLog(regression), []

    # linear_probing
    best_val_acc = 100 if regression else -1
    best_cls = model.graph_pred_linear.state_dict()
    for _ in range(lp_epochs):
        train_steps(model, train_loader, optimizer_cls, regression, step_losses)
        log.evaluate(model, val_loader, test_loader, "lp", model.state_dict())
        val_acc = log.val[-1]
        if (val_acc < best_val_acc) if regression else (val_acc > best_val_acc):
            best_cls = model.graph_pred_linear.state_dict()  # aliases the live head
            best_val_acc = val_acc
    last_head = copy.deepcopy(model.graph_pred_linear.state_dict())
    model.graph_pred_linear.load_state_dict(best_cls)
    for name, value in model.graph_pred_linear.state_dict().items():
        assert torch.equal(value, last_head[name]), "lp_ft.py continues from the last LP head"
    if carry_head_moments:
        for param in model.graph_pred_linear.parameters():
            optimizer.state[param] = copy.deepcopy(optimizer_cls.state[param])

    for _ in range(ft_epochs):
        train_steps(model, train_loader, optimizer, regression, step_losses)
        log.evaluate(model, val_loader, test_loader, "ft", model.state_dict())
    return log.run(step_losses, [], model.state_dict(), reported=("ft",))


def wise_ft(model: nn.Module, pretrained_gnn: dict[str, torch.Tensor], finetuned: dict[str, torch.Tensor],
            alpha: float, valid_dataset: list[Data], test_dataset: list[Data], *, regression: bool,
            batch_size: int = 32, generator_seed: int = 0) -> MethodRun:
    """WISE.py on ``model`` in place: ``pretrained_gnn`` is theta_pre's encoder state (keys without
    ``gnn.``), ``finetuned`` the Full-FT checkpoint (``GraphPredictor`` keys). One evaluation."""
    ft_gnn = {key.split(".", 1)[1]: value for key, value in finetuned.items() if key.startswith("gnn.")}
    ft_cls = {key.split(".", 1)[1]: value for key, value in finetuned.items() if key.startswith("graph_pred_linear.")}
    theta = {key: (1 - alpha) * pretrained_gnn[key] + alpha * ft_gnn[key] for key in pretrained_gnn.keys()}
    model.gnn.load_state_dict(theta)
    model.graph_pred_linear.load_state_dict(ft_cls)
    _, val_loader, test_loader = make_loaders([], valid_dataset, test_dataset, batch_size,
                                              torch.Generator().manual_seed(generator_seed))
    log = EpochLog(regression)
    log.evaluate(model, val_loader, test_loader, "evaluate", model.state_dict())
    return log.run([], [], model.state_dict())


class InterpolatedModel:
    """``GNN_interpolate`` on a ``GraphPredictor``: ``model`` holds theta_ft (encoder with its running
    statistics, and the head); before every forward the selected encoder parameters are replaced by
    ``alpha * w_ft + (1 - alpha) * w_pre`` (tensors set on their modules, as the script's
    ``del ...; ... = interpolate_param``).

    ``groups``: 1, 2, 3 or 6 alphas (``ALPHA_LISTS``). ``interpolate``: ``"reference"`` (names with
    ``x_embedding``, ``mlp``, ``edge_embedding`` or ``batch_norms``) or ``"all"`` (every encoder
    parameter). ``alpha_dtype``: the alphas' dtype (``GNN_interpolate`` makes them with
    ``torch.tensor(float)``; a model converted with ``.double()`` converts them too).
    """

    def __init__(self, model: nn.Module, pretrained_gnn: dict[str, torch.Tensor], finetuned: dict[str, torch.Tensor],
                 groups: int, alpha_init: float, interpolate: str = "reference", alpha_dtype=torch.float64,
                 alpha_list: tuple[int, ...] | None = None):
        if interpolate not in ("reference", "all"):
            raise ValueError(f"interpolate {interpolate!r}")
        self.model = model
        self.model.load_state_dict(finetuned)
        for param in self.model.graph_pred_linear.parameters():
            param.requires_grad = False
        self.alphas = [nn.Parameter(torch.tensor(alpha_init, dtype=alpha_dtype)) for _ in range(groups)]
        self.alpha_list = [self.alphas[i] for i in (alpha_list or ALPHA_LISTS[groups])]
        self.keys = list(finetuned)
        self.targets = {}  # encoder parameter name -> (alpha_list index, w_pre, w_ft)
        for name, _ in list(model.gnn.named_parameters()):
            if "x_embedding" in name:
                index = 0
            elif interpolate == "all" or any(part in name for part in INTERPOLATED_NAMES[1:]):
                index = int(name.split(".")[1]) + 1
            else:
                continue
            self.targets[name] = (index, pretrained_gnn[name].detach(), finetuned["gnn." + name].detach())
        self._replaced: set[str] = set()

    def weight_interpolate(self) -> None:
        for name, (index, w_pre, w_ft) in self.targets.items():
            alpha = self.alpha_list[index]
            owner, attribute = name.rsplit(".", 1)
            module = self.model.gnn.get_submodule(owner)
            delattr(module, attribute)
            setattr(module, attribute, alpha * w_ft + (1 - alpha) * w_pre)

    def __call__(self, batch):
        self.weight_interpolate()
        return self.model(batch)

    def train(self):
        self.model.train()

    def eval(self):
        self.model.eval()

    def state(self) -> dict[str, torch.Tensor]:
        """The weights in effect (``GraphPredictor`` keys): interpolated parameters and the encoder's own
        buffers and remaining parameters (detached copies)."""
        self.weight_interpolate()
        out = {}
        for key in self.keys:
            owner, attribute = key.rsplit(".", 1)
            out[key] = getattr(self.model.get_submodule(owner), attribute).detach().clone()
        return out


def dwise(interpolated: InterpolatedModel, valid_dataset: list[Data], test_dataset: list[Data], *, regression: bool,
          epochs: int, lr: float, batch_size: int = 32, tied_updates: str = "repeated",
          bn_mode: str = "train") -> MethodRun:
    """DWISE.py: fit the alphas of ``interpolated`` on ``valid_dataset`` in its order (``val_loader``),
    evaluating valid and test after every epoch.

    ``tied_updates`` (for checks): ``"repeated"`` (``Adam(alpha_list)``, the script) or ``"once"``
    (each alpha once). ``bn_mode`` (for checks): ``"train"`` (the script) or ``"eval"``."""
    _, val_loader, test_loader = make_loaders([], valid_dataset, test_dataset, batch_size,
                                              torch.Generator().manual_seed(0))
    parameters = interpolated.alpha_list if tied_updates == "repeated" else interpolated.alphas
    with warnings.catch_warnings():  # "optimizer contains a parameter group with duplicate parameters"
        warnings.simplefilter("ignore", UserWarning)
        optimizer = torch.optim.Adam(parameters, lr=lr, weight_decay=0.0)
    log, step_losses = EpochLog(regression), []
    for _ in range(epochs):
        interpolated.train()
        if bn_mode == "eval":
            for module in interpolated.model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        for batch in val_loader:
            pred = interpolated(batch).logits
            loss = script_loss(pred, batch, regression)
            optimizer.zero_grad()
            loss.backward()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                optimizer.step()
            step_losses.append(float(loss.detach()))
        log.evaluate(interpolated, val_loader, test_loader, "alpha", interpolated.state(),
                     [float(alpha) for alpha in interpolated.alphas])
    return log.run(step_losses, [], interpolated.state())


def alpha_values(run: MethodRun, epoch: int) -> np.ndarray:
    """The alphas after ``epoch`` (1-based)."""
    return np.asarray(run.alphas[epoch - 1])
