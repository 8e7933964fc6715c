"""Weight interpolation between theta_pre and the best-validation Full-FT checkpoint theta_ft.

Both methods below depend on the ``full-ft`` trial of the same backbone, task, split, label
setting and seeds (``requires_parent``); the trainable hands its saved state to them as
``ctx.parent_state``. Every backbone float entry ``w`` becomes

    w(alpha) = (1 - alpha) * w_pre + alpha * w_ft

with ``alpha`` a 0-d float tensor (the same expression in both methods, so RoFt-Mol with frozen
alphas reproduces WiSE-FT bit for bit). Integer buffers (``num_batches_tracked``) and the head
come from theta_ft (PROTOCOL section 5, quirk 9). BatchNorm running statistics are
interpolated (``bn_stats: interpolate``) or taken from theta_ft (``bn_stats: ft``).

* ``wise-ft``: one global alpha, evaluation only (PROTOCOL grid 0.1, 0.3, 0.5, 0.7, 0.9).
* ``roft-mol``: one alpha per group, learned. Groups of an L-layer GNN: 0 = atom embeddings,
  1..L = GNN layer (its weights, edge embeddings and BatchNorm). ``groups`` values tie them as
  in PROTOCOL section 4 (for L = 5): 1 -> one alpha; 2 -> [a0,a0,a0,a0,a1,a1];
  3 -> [a0,a0,a0,a1,a1,a2]; 6 -> one per group. Only the alphas train (Adam, ``alpha_lr``),
  on the validation split with the task loss, the FT head frozen, BatchNorm in eval mode; the
  best epoch is picked on validation (reference behaviour, quirk 6) or, with
  ``fit_split: val_half``, alphas fit on one half of validation and the other half selects.
  Alphas are not clamped. The best epoch's alphas are recorded in the trial's row.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from trainables.methods.base import FineTuningMethod, HyperParameter, MethodContext, Stage, register_method
from trainables.methods.partial import freeze_batch_norm_statistics

BN_STATISTICS = ("running_mean", "running_var")
TYING_FOR_FIVE_LAYERS = {1: (0, 0, 0, 0, 0, 0), 2: (0, 0, 0, 0, 1, 1), 3: (0, 0, 0, 1, 1, 2), 6: (0, 1, 2, 3, 4, 5)}
_LAYER_KEY = re.compile(r"^gnn\.(?:gnns|batch_norms)\.(\d+)\.")


def layer_group(key: str) -> int | None:
    """Group of a ``GraphPredictor`` state key: 0 for atom embeddings, i+1 for layer i, None for the head."""
    if key.startswith("gnn.x_embedding"):
        return 0
    match = _LAYER_KEY.match(key)
    if match:
        return int(match.group(1)) + 1
    if key.startswith("graph_pred_linear."):
        return None
    raise ValueError(f"state key {key!r} belongs to no interpolation group")


def tying(groups: int, num_layers: int) -> tuple[int, ...]:
    """Alpha index of each of the ``num_layers + 1`` layer groups."""
    if groups == 1:
        return (0,) * (num_layers + 1)
    if groups == num_layers + 1:
        return tuple(range(num_layers + 1))
    if num_layers == 5 and groups in TYING_FOR_FIVE_LAYERS:
        return TYING_FOR_FIVE_LAYERS[groups]
    raise ValueError(f"roft-mol.groups={groups} is not accepted for a {num_layers}-layer GNN; accepted: 1 or "
                     f"{num_layers + 1}" + (" (and 2 or 3 for a 5-layer GNN)" if num_layers != 5 else ""))


def interpolate(pre: torch.Tensor, ft: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``(1 - alpha) * pre + alpha * ft`` (alpha = 1 gives ft exactly, alpha = 0 gives pre exactly)."""
    return (1 - alpha) * pre + alpha * ft


def interpolated_state(pre: dict[str, torch.Tensor], ft: dict[str, torch.Tensor],
                       alpha_of_group: Callable[[int], torch.Tensor], bn_stats: str) -> dict[str, torch.Tensor]:
    """theta(alpha) in ``GraphPredictor`` layout; see the module docstring for what is interpolated."""
    out = {}
    for key, ft_value in ft.items():
        group = layer_group(key)
        is_statistic = key.rsplit(".", 1)[-1] in BN_STATISTICS
        if group is None or not ft_value.is_floating_point() or (bn_stats == "ft" and is_statistic):
            out[key] = ft_value
        else:
            alpha = alpha_of_group(group)
            # BatchNorm statistics are buffers: interpolated with the same alpha, but not differentiated.
            out[key] = interpolate(pre[key], ft_value, alpha.detach() if is_statistic else alpha)
    return out


def check_same_layout(pre: dict[str, torch.Tensor], ft: dict[str, torch.Tensor]) -> None:
    missing, unexpected = sorted(set(pre) - set(ft)), sorted(set(ft) - set(pre))
    shapes = [f"{k}: {tuple(pre[k].shape)} vs {tuple(ft[k].shape)}" for k in pre if k in ft and pre[k].shape != ft[k].shape]
    if missing or unexpected or shapes:
        raise ValueError(f"the fine-tuned checkpoint does not match the pre-trained model: missing {missing}, "
                         f"unexpected {unexpected}, shape differences {shapes}")


BN_STATS = HyperParameter(str, "interpolate", "BatchNorm running statistics: interpolate, or ft (taken from "
                                              "theta_ft)", choices=("interpolate", "ft"))


class InterpolatingMethod(FineTuningMethod):
    """Shared set-up of methods that interpolate between theta_pre and their Full-FT parent."""

    mechanism = "weight"
    requires_parent = "full-ft"

    def setup(self, ctx: MethodContext) -> None:
        """Keep theta_pre and theta_ft on the model's device, checked to share one layout."""
        super().setup(ctx)
        check_same_layout(ctx.pretrained_state, ctx.parent_state)
        device = next(ctx.model.parameters()).device
        self.pre = {k: v.to(device) for k, v in ctx.pretrained_state.items()}
        self.ft = {k: v.to(device) for k, v in ctx.parent_state.items()}


@register_method("wise-ft")
class WiSEFT(InterpolatingMethod):
    """WiSE-FT: evaluate theta(alpha) for one global alpha; no training."""

    hyperparameters = {
        "alpha": HyperParameter(float, 0.5, "weight of theta_ft (paper grid: 0.1, 0.3, 0.5, 0.7, 0.9)"),
        "bn_stats": BN_STATS,
    }

    def setup(self, ctx: MethodContext) -> None:
        super().setup(ctx)
        alpha = torch.tensor(self.params["alpha"], dtype=torch.float32, device=next(ctx.model.parameters()).device)
        with torch.no_grad():
            ctx.model.load_state_dict(interpolated_state(self.pre, self.ft, lambda group: alpha,
                                                         self.params["bn_stats"]))

    def stages(self, epochs: int) -> list[Stage]:
        return [Stage("evaluate", 0)]


class InterpolatedPredictor(nn.Module):
    """A ``GraphPredictor`` whose weights are theta(alpha) with one trainable alpha per group.

    ``alphas``: ``(groups,)``; ``forward(batch)`` recomputes theta(alpha) (differentiable in
    alpha) and runs the wrapped model on it with ``torch.func.functional_call``.
    """

    def __init__(self, model: nn.Module, pre: dict[str, torch.Tensor], ft: dict[str, torch.Tensor],
                 tie: tuple[int, ...], groups: int, alpha_init: float, bn_stats: str):
        super().__init__()
        self.model = model
        self.alphas = nn.Parameter(torch.full((groups,), alpha_init, dtype=torch.float32,
                                              device=next(model.parameters()).device))
        self._pre, self._ft, self._tie, self._bn_stats = pre, ft, tie, bn_stats

    def current_state(self) -> dict[str, torch.Tensor]:
        return interpolated_state(self._pre, self._ft, lambda group: self.alphas[self._tie[group]], self._bn_stats)

    def forward(self, batch):
        return functional_call(self.model, self.current_state(), (batch,))


@register_method("roft-mol")
class RoFtMol(InterpolatingMethod):
    """RoFt-Mol (DWiSE-FT): learned layer-wise interpolation coefficients."""

    hyperparameters = {
        "groups": HyperParameter(int, 6, "number of alpha groups: 1 or L+1 for an L-layer GNN; for L = 5 also 2 "
                                         "or 3 (paper grid: 1, 2, 3, 6)", minimum=1),
        "alpha_init": HyperParameter(float, 0.9, "initial value of every alpha (paper grid: 0.9, 0.5)"),
        "alpha_lr": HyperParameter(float, 1e-2, "Adam learning rate of the alphas (e.g. 1e-3, 1e-2, 1e-1)",
                                   minimum=0.0),
        "epochs": HyperParameter(int, 200, "epochs of alpha training", minimum=1),
        "fit_split": HyperParameter(str, "val", "val: fit and select on validation (reference code); val_half: "
                                                "fit on one half, select on the other", choices=("val", "val_half")),
        "bn_stats": HyperParameter(str, "ft", "BatchNorm running statistics: ft (reference), or interpolate",
                                   choices=("ft", "interpolate")),
    }

    def setup(self, ctx: MethodContext) -> None:
        super().setup(ctx)
        tie = tying(self.params["groups"], len(ctx.model.gnn.gnns))
        ctx.model = InterpolatedPredictor(ctx.model, self.pre, self.ft, tie, self.params["groups"], self.params["alpha_init"],
                                          self.params["bn_stats"])

    def stages(self, epochs: int) -> list[Stage]:
        halves = self.params["fit_split"] == "val_half"
        return [Stage("alpha", self.params["epochs"], lr=self.params["alpha_lr"],
                      fit_on="valid_fit" if halves else "valid", select_on="valid_select" if halves else "valid")]

    def trainable_parameters(self, ctx: MethodContext, stage: Stage) -> list[nn.Parameter]:
        return [ctx.model.alphas]

    def set_train_mode(self, ctx: MethodContext, stage: Stage) -> None:
        ctx.model.train()
        freeze_batch_norm_statistics(ctx.model)

    def snapshot(self, ctx: MethodContext) -> dict[str, torch.Tensor]:
        return {k: v.detach() for k, v in ctx.model.current_state().items()}

    def summary(self, ctx: MethodContext) -> dict[str, Any]:
        return {"alphas": [float(a) for a in ctx.model.alphas.detach().cpu()]}
