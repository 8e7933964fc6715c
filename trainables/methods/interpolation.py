"""Weight interpolation between theta_pre and the best-validation Full-FT checkpoint theta_ft.

Both methods below depend on the ``full-ft`` trial of the same backbone, task, split, label
setting and seeds (``requires_parent``); the trainable hands its saved state to them as
``ctx.parent_state``. Every backbone float entry ``w`` becomes

    w(alpha) = (1 - alpha) * w_pre + alpha * w_ft

with ``alpha`` a 0-d float tensor (the same expression in both methods, so RoFt-Mol with frozen
alphas reproduces WiSE-FT bit for bit). Integer buffers (``num_batches_tracked``) and the head
come from theta_ft (docs/protocol.md, quirk Q9). BatchNorm running statistics are
interpolated (``bn_stats: interpolate``) or taken from theta_ft (``bn_stats: ft``).

* ``wise-ft``: one global alpha, evaluation only (paper grid 0.1, 0.3, 0.5, 0.7, 0.9).
* ``roft-mol``: one alpha per group, learned. Groups of an L-layer GNN: 0 = atom embeddings,
  1..L = GNN layer (its weights, edge embeddings and BatchNorm); of an L-layer GPS encoder:
  0 = its input encoders (atom, random-walk and bond), 1..L = GPS layer (local MPNN, attention,
  feed-forward and their norms). ``groups`` values tie them as
  in docs/protocol.md, RoFt-Mol (for L = 5): 1 -> one alpha; 2 -> [a0,a0,a0,a0,a1,a1];
  3 -> [a0,a0,a0,a1,a1,a2]; 6 -> one per group. Only the alphas train (Adam, ``alpha_lr``),
  on the validation split with the task loss, the FT head frozen, BatchNorm in train mode (its
  running statistics drift from theta_ft's; ``bn_mode: eval`` keeps them fixed); the best epoch
  is picked on validation (reference behaviour, docs/protocol.md, quirk Q6) or, with
  ``fit_split: val_half``, alphas fit on one half of validation and the other half selects.
  Alphas are not clamped. The best epoch's alphas are recorded in the trial's row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn
from torch.func import functional_call

from trainables.core.config import MAX_EPOCHS, MAX_SEED
from trainables.methods.alpha_search import check_range, open_storage, search_alphas
from trainables.methods.base import FineTuningMethod, HyperParameter, MethodContext, Stage, register_method
from trainables.methods.partial import freeze_batch_norm_statistics

BN_STATISTICS = ("running_mean", "running_var")
TYING_FOR_FIVE_LAYERS = {1: (0, 0, 0, 0, 0, 0), 2: (0, 0, 0, 0, 1, 1), 3: (0, 0, 0, 1, 1, 2), 6: (0, 1, 2, 3, 4, 5)}


def layer_group(key: str, encoder: nn.Module) -> int | None:
    """Group of a ``GraphPredictor`` state key: 0 for the input encoders (atom embeddings; for GPS
    also its structural-encoding and bond encoders), i+1 for the encoder's layer i, None for the head."""
    if key.startswith("graph_pred_linear."):
        return None
    if key.startswith("gnn."):
        layer = encoder.layer_of_key(key[len("gnn.") :])
        return 0 if layer is None else layer + 1
    raise ValueError(f"state key {key!r} belongs to no interpolation group")


def tying(groups: int, num_layers: int) -> tuple[int, ...]:
    """Alpha index of each of the ``num_layers + 1`` layer groups."""
    if groups == 1:
        return (0,) * (num_layers + 1)
    if groups == num_layers + 1:
        return tuple(range(num_layers + 1))
    if num_layers == 5 and groups in TYING_FOR_FIVE_LAYERS:
        return TYING_FOR_FIVE_LAYERS[groups]
    raise ValueError(
        f"roft-mol.groups={groups} is not accepted for a {num_layers}-layer GNN; accepted: 1 or "
        f"{num_layers + 1}" + (" (and 2 or 3 for a 5-layer GNN)" if num_layers != 5 else "")
    )


def interpolate(pre: torch.Tensor, ft: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``(1 - alpha) * pre + alpha * ft`` (alpha = 1 gives ft exactly, alpha = 0 gives pre exactly)."""
    return (1 - alpha) * pre + alpha * ft


def interpolated_state(
    pre: dict[str, torch.Tensor],
    ft: dict[str, torch.Tensor],
    alpha_of_group: Callable[[int], torch.Tensor],
    bn_stats: str,
    encoder: nn.Module,
) -> dict[str, torch.Tensor]:
    """theta(alpha) in ``GraphPredictor`` layout; see the module docstring for what is interpolated.

    ``encoder`` (the predictor's ``gnn``) says which layer each state key belongs to.
    """
    out = {}
    for key, ft_value in ft.items():
        group = layer_group(key, encoder)
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
    shapes = [
        f"{k}: {tuple(pre[k].shape)} vs {tuple(ft[k].shape)}" for k in pre if k in ft and pre[k].shape != ft[k].shape
    ]
    if missing or unexpected or shapes:
        raise ValueError(
            f"the fine-tuned checkpoint does not match the pre-trained model: missing {missing}, "
            f"unexpected {unexpected}, shape differences {shapes}"
        )


BN_STATS = HyperParameter(
    str,
    "interpolate",
    "BatchNorm running statistics: interpolate, or ft (taken from theta_ft)",
    choices=("interpolate", "ft"),
)


SEARCH_HYPERPARAMETERS = {
    "search": HyperParameter(
        str,
        "none",
        "none: the method's own alphas; optuna: a seeded TPE search of the alphas on validation, evaluation only",
        choices=("none", "optuna"),
    ),
    "n_trials": HyperParameter(
        int,
        100,
        "points evaluated by the Optuna search (raising it continues the study)",
        minimum=1,
        maximum=100_000,
    ),
    "search_seed": HyperParameter(int, 0, "seed of the TPE sampler", minimum=0, maximum=MAX_SEED),
    "alpha_low": HyperParameter(float, 0.0, "lower end of the searched range of every alpha"),
    "alpha_high": HyperParameter(float, 1.0, "upper end of the searched range of every alpha"),
    "test_per_point": HyperParameter(
        bool,
        False,
        "also score the test split at every point, for plots (doubles "
        "the search's cost; the best point's test is always scored)",
        choices=(False, True),
    ),
}


class InterpolatingMethod(FineTuningMethod):
    """Shared behaviour of methods that interpolate between theta_pre and their Full-FT parent.

    With ``search: optuna`` the alphas are not the method's own (a fixed WiSE alpha, RoFt-Mol's
    gradient training) but found by :func:`trainables.methods.alpha_search.search_alphas`: each point
    is loaded into the one model (no rebuild) and scored on resident validation batches; the
    best point's model is then evaluated like any post-hoc method, its alphas and study go to
    the row, and every point to the store's ``alpha_trials`` table. Subclasses implement their
    own mode in ``prepare`` / ``own_stages`` / ``own_snapshot`` / ``own_summary``.
    """

    mechanism = "weight"
    requires_parent = "full-ft"
    own_hyperparameters: ClassVar[tuple[str, ...]] = ()  # those without effect under search: optuna
    fusable = True  # K members' interpolations at once (trainables.training.fused.interpolation)

    def fuses(self) -> bool:
        return not self.searching

    def fusion_signature(self, epochs: int) -> tuple | None:
        """Interpolation groups share their fitting and selection parts, epochs, order and BatchNorm mode;
        learning rates, groupings, initial values and parents may differ."""
        if not self.fuses():
            return None
        own = self.own_stages(epochs)[0]
        return ("interpolation", own.epochs, *self.parts(), own.shuffle, self.params.get("bn_mode", "eval"))

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        out = super().validate_params(params)
        if out["search"] == "optuna":
            moot = [k for k in cls.own_hyperparameters if out[k] != cls.hyperparameters[k].default]
            if moot:
                raise ValueError(
                    f"method {cls.name}: {', '.join(moot)} ha{'s' if len(moot) == 1 else 've'} no effect "
                    "with search: optuna (the search sets the alphas); leave out"
                )
            check_range(out["alpha_low"], out["alpha_high"])
        else:
            moot = [k for k in SEARCH_HYPERPARAMETERS if k != "search" and out[k] != SEARCH_HYPERPARAMETERS[k].default]
            if moot:
                raise ValueError(
                    f"method {cls.name}: {', '.join(moot)} appl{'ies' if len(moot) == 1 else 'y'} only "
                    "with search: optuna"
                )
        return out

    @property
    def searching(self) -> bool:
        return self.params["search"] == "optuna"

    @property
    def label(self) -> str:
        if not self.searching:
            return super().label
        inner = [f"{k}={v}" for k, v in self.label_items() if k != "search" and k not in self.own_hyperparameters]
        return f"{self.name}[" + ",".join(["optuna", *inner]) + "]"

    def num_groups(self) -> int:
        return 1

    def parts(self) -> tuple[str, str]:
        """(part the alphas are fitted or searched on, part the reported epoch is selected on)."""
        return "valid", "valid"

    # ---- the hooks, shared ---------------------------------------------------------------
    def setup(self, ctx: MethodContext) -> None:
        """Keep theta_pre and theta_ft on the model's device, checked to share one layout."""
        super().setup(ctx)
        pre, ft = ctx.pretrained_state, ctx.parent_state
        if pre is None or ft is None:
            raise ValueError(
                f"{self.name} interpolates between the pre-trained weights and its parent's checkpoint; "
                f"missing: {'the pre-trained weights' if pre is None else 'the parent checkpoint'}"
            )
        check_same_layout(pre, ft)
        self.device = next(ctx.model.parameters()).device
        self.pre = {k: v.to(self.device) for k, v in pre.items()}
        self.ft = {k: v.to(self.device) for k, v in ft.items()}
        if self.searching:
            self._search(ctx)
        else:
            self.prepare(ctx)

    def stages(self, epochs: int) -> list[Stage]:
        return [Stage("search", 0, select_on=self.parts()[1])] if self.searching else self.own_stages(epochs)

    def snapshot(self, ctx: MethodContext) -> dict[str, torch.Tensor]:
        return ctx.model.state_dict() if self.searching else self.own_snapshot(ctx)

    def summary(self, ctx: MethodContext) -> dict[str, Any]:
        return dict(self._search_summary) if self.searching else self.own_summary(ctx)

    def records(self, ctx: MethodContext) -> dict[str, list[dict[str, Any]]]:
        return {"alpha_trials": self._search_points} if self.searching else {}

    # ---- the method's own mode -----------------------------------------------------------
    def prepare(self, ctx: MethodContext) -> None:
        raise NotImplementedError

    def own_stages(self, epochs: int) -> list[Stage]:
        raise NotImplementedError

    def own_snapshot(self, ctx: MethodContext) -> dict[str, torch.Tensor]:
        return ctx.model.state_dict()

    def own_summary(self, ctx: MethodContext) -> dict[str, Any]:
        return {}

    # ---- search mode ---------------------------------------------------------------------
    def interpolated(self, ctx: MethodContext, alphas, tie: tuple[int, ...]) -> dict[str, torch.Tensor]:
        """theta(alphas) in ``GraphPredictor`` layout (alphas in the weights' dtype)."""
        dtype = next(iter(v for v in self.ft.values() if v.is_floating_point())).dtype
        alpha = torch.as_tensor(alphas, dtype=dtype, device=self.device)
        with torch.no_grad():
            return interpolated_state(
                self.pre, self.ft, lambda group: alpha[tie[group]], self.params["bn_stats"], ctx.model.gnn
            )

    def load_alphas(self, ctx: MethodContext, alphas, tie: tuple[int, ...]) -> None:
        """Copy theta(alphas) into ``ctx.model`` in place."""
        ctx.model.load_state_dict(self.interpolated(ctx, alphas, tie))

    def study_name(self, ctx: MethodContext) -> str:
        """Everything that defines the objective except the budget (so more trials continue it)."""
        settings = {k: v for k, v in self.params.items() if k not in ("n_trials", "search", *self.own_hyperparameters)}
        return f"{self.name}:{ctx.parent_key}:" + ",".join(f"{k}={v}" for k, v in sorted(settings.items()))

    def _search(self, ctx: MethodContext) -> None:
        tie = tying(self.num_groups(), ctx.model.gnn.num_layers)
        fit_part = self.parts()[0]

        def evaluate(alphas):
            self.load_alphas(ctx, alphas, tie)
            test = ctx.evaluate("test").value if self.params["test_per_point"] else float("nan")
            return ctx.evaluate(fit_part).value, test

        def evaluate_many(points):
            states = [self.interpolated(ctx, alphas, tie) for alphas in points]
            vals = [score.value for score in ctx.evaluate_states(fit_part, states)]
            tests = (
                [score.value for score in ctx.evaluate_states("test", states)]
                if self.params["test_per_point"]
                else [float("nan")] * len(points)
            )
            return list(zip(vals, tests))

        name = self.study_name(ctx)
        prior = ctx.prior_alpha_points(name) if ctx.optuna_storage is None and ctx.prior_alpha_points else ()
        best, new, points = search_alphas(
            evaluate,
            groups=self.num_groups(),
            n_trials=self.params["n_trials"],
            seed=self.params["search_seed"],
            direction="maximize" if ctx.higher_is_better else "minimize",
            study_name=name,
            storage=open_storage(ctx.optuna_storage),
            low=self.params["alpha_low"],
            high=self.params["alpha_high"],
            prior=prior,
            evaluate_many=evaluate_many if ctx.evaluate_states is not None else None,
        )
        self.load_alphas(ctx, best.alphas, tie)
        self._search_summary = {
            "alphas": list(best.alphas),
            "study": name,
            "best_point": best.number,
            "points": len(points),
            "points_evaluated_now": len(new),
            "search_val": best.val,
        }
        self._search_points = [
            {"study": name, "number": p.number, "alphas": list(p.alphas), "val_metric": p.val, "test_metric": p.test}
            for p in points
        ]


@register_method("wise-ft")
class WiSEFT(InterpolatingMethod):
    """WiSE-FT: evaluate theta(alpha) for one global alpha; no training."""

    hyperparameters = {
        "alpha": HyperParameter(float, 0.5, "weight of theta_ft (paper grid: 0.1, 0.3, 0.5, 0.7, 0.9)"),
        "bn_stats": BN_STATS,
        **SEARCH_HYPERPARAMETERS,
    }
    own_hyperparameters = ("alpha",)
    label_hyperparameters = ("alpha",)

    def prepare(self, ctx: MethodContext) -> None:
        self.load_alphas(ctx, [self.params["alpha"]], tying(1, ctx.model.gnn.num_layers))

    def own_stages(self, epochs: int) -> list[Stage]:
        return [Stage("evaluate", 0)]


class InterpolatedPredictor(nn.Module):
    """A ``GraphPredictor`` whose weights are theta(alpha) with one trainable alpha per group.

    ``alphas``: one 0-d parameter per group (a ``ParameterList``, so that a tied alpha can be
    handed to the optimizer once per layer group sharing it, as the reference code does);
    ``forward(batch)`` recomputes theta(alpha) (differentiable in alpha) and runs the wrapped model
    on it with ``torch.func.functional_call``.

    ``live_statistics``: BatchNorm running statistics kept as buffers of their own, starting from
    theta(alpha_init)'s, that training-mode forward passes move and evaluation reads (the reference
    code fits the alphas in train mode); without it the statistics are those of theta(alpha) at
    every call (``bn_stats``).
    """

    def __init__(
        self,
        model: nn.Module,
        pre: dict[str, torch.Tensor],
        ft: dict[str, torch.Tensor],
        tie: tuple[int, ...],
        groups: int,
        alpha_init: float,
        bn_stats: str,
        live_statistics: bool = False,
    ):
        super().__init__()
        self.model = model
        reference = next(model.parameters())
        self.alphas = nn.ParameterList(
            nn.Parameter(torch.tensor(alpha_init, dtype=reference.dtype, device=reference.device))
            for _ in range(groups)
        )
        self._pre, self._ft, self._tie, self._bn_stats = pre, ft, tie, bn_stats
        self._live: dict[str, torch.Tensor] | None = None
        if live_statistics:
            with torch.no_grad():
                start = self._interpolated()
            self._live = {key: value.detach().clone() for key, value in start.items() if _is_statistic(key)}

    def _interpolated(self) -> dict[str, torch.Tensor]:
        return interpolated_state(
            self._pre, self._ft, lambda group: self.alphas[self._tie[group]], self._bn_stats, self.model.gnn
        )

    def current_state(self) -> dict[str, torch.Tensor]:
        state = self._interpolated()
        if self._live is not None:
            state.update(self._live)
        return state

    def forward(self, batch):
        return functional_call(self.model, self.current_state(), (batch,))


def _is_statistic(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in (*BN_STATISTICS, "num_batches_tracked")


@register_method("roft-mol")
class RoFtMol(InterpolatingMethod):
    """RoFt-Mol (DWiSE-FT): learned layer-wise interpolation coefficients.

    As the reference code by default: the alphas fit with the model in train mode (``bn_mode:
    train``: BatchNorm normalises with batch statistics and its running statistics, starting from
    theta_ft's, drift with every step; dropout on), on the validation molecules in the split's
    order every epoch (``fit_order: fixed``). ``bn_mode: eval`` fits with BatchNorm in eval mode
    (running statistics fixed); ``fit_order: shuffled`` reshuffles every epoch. ``tied_updates:
    repeated`` reproduces the reference code's optimizer, which is handed a tied alpha once per
    layer group sharing it and so, on the CPU, updates it that many times per step with the same
    gradient; roft's default ``once`` takes one Adam step per alpha.
    """

    revision = 2  # train-mode BatchNorm and the split's order while the alphas fit, as the reference code
    hyperparameters = {
        "groups": HyperParameter(
            int,
            6,
            "number of alpha groups: 1 or L+1 for an L-layer GNN; for L = 5 also 2 or 3 (paper grid: 1, 2, 3, 6)",
            minimum=1,
            maximum=1_000,
        ),
        "alpha_init": HyperParameter(float, 0.9, "initial value of every alpha (paper grid: 0.9, 0.5)"),
        "alpha_lr": HyperParameter(
            float, 1e-2, "Adam learning rate of the alphas (e.g. 1e-3, 1e-2, 1e-1)", minimum=0.0, maximum=10.0
        ),
        "epochs": HyperParameter(int, 200, "epochs of alpha training", minimum=1, maximum=MAX_EPOCHS),
        "fit_split": HyperParameter(
            str,
            "val",
            "val: fit and select on validation (reference code); val_half: fit on one half, select on the other",
            choices=("val", "val_half"),
        ),
        "bn_stats": HyperParameter(
            str,
            "ft",
            "BatchNorm running statistics at the start: ft (reference), or interpolate",
            choices=("ft", "interpolate"),
        ),
        "bn_mode": HyperParameter(
            str,
            "train",
            "BatchNorm while the alphas fit: train (batch statistics, running "
            "statistics drift; reference code) or eval (running statistics "
            "fixed)",
            choices=("train", "eval"),
        ),
        "fit_order": HyperParameter(
            str,
            "fixed",
            "order of the fitting molecules per epoch: fixed (the split's, reference code) or shuffled",
            choices=("fixed", "shuffled"),
        ),
        "tied_updates": HyperParameter(
            str,
            "once",
            "Adam updates per step of an alpha tied across layer groups: "
            "once, or repeated (once per group sharing it, as the "
            "reference code on the CPU)",
            choices=("once", "repeated"),
        ),
        **SEARCH_HYPERPARAMETERS,
    }
    own_hyperparameters = ("alpha_init", "alpha_lr", "epochs", "bn_mode", "fit_order", "tied_updates")
    label_hyperparameters = ("groups",)
    reference_params = {"tied_updates": "repeated"}

    def fuses(self) -> bool:
        """``bn_mode: eval`` (dropout on, BatchNorm on fixed statistics) trains alone."""
        return super().fuses() and self.params["bn_mode"] == "train"

    def num_groups(self) -> int:
        return self.params["groups"]

    def parts(self) -> tuple[str, str]:
        return ("valid_fit", "valid_select") if self.params["fit_split"] == "val_half" else ("valid", "valid")

    def prepare(self, ctx: MethodContext) -> None:
        tie = tying(self.params["groups"], ctx.model.gnn.num_layers)
        self._repeats = [tie.count(group) for group in range(self.params["groups"])]
        ctx.model = InterpolatedPredictor(
            ctx.model,
            self.pre,
            self.ft,
            tie,
            self.params["groups"],
            self.params["alpha_init"],
            self.params["bn_stats"],
            live_statistics=self.params["bn_mode"] == "train",
        )

    def own_stages(self, epochs: int) -> list[Stage]:
        fit_on, select_on = self.parts()
        return [
            Stage(
                "alpha",
                self.params["epochs"],
                lr=self.params["alpha_lr"],
                fit_on=fit_on,
                select_on=select_on,
                shuffle=self.params["fit_order"] == "shuffled",
            )
        ]

    def trainable_parameters(self, ctx: MethodContext, stage: Stage) -> list[nn.Parameter]:
        return list(ctx.model.alphas)

    def set_train_mode(self, ctx: MethodContext, stage: Stage) -> None:
        ctx.model.train()
        if self.params["bn_mode"] == "eval":
            freeze_batch_norm_statistics(ctx.model)

    def optimizer_step(self, ctx: MethodContext, stage: Stage, optimizer: torch.optim.Optimizer) -> None:
        """One Adam step; with ``tied_updates: repeated``, round r steps the alphas shared by more than r
        layer groups (Adam skips a parameter without a gradient), so alpha j takes ``repeats_j`` steps
        with its gradient, in the order the reference code's optimizer takes them."""
        if self.params["tied_updates"] == "once":
            optimizer.step()
            return
        alphas = list(ctx.model.alphas)
        gradients = [alpha.grad for alpha in alphas]
        for round_ in range(max(self._repeats)):
            for alpha, gradient, repeats in zip(alphas, gradients, self._repeats):
                alpha.grad = gradient if repeats > round_ else None
            optimizer.step()
        for alpha, gradient in zip(alphas, gradients):
            alpha.grad = gradient

    def own_snapshot(self, ctx: MethodContext) -> dict[str, torch.Tensor]:
        return {k: v.detach() for k, v in ctx.model.current_state().items()}

    def own_summary(self, ctx: MethodContext) -> dict[str, Any]:
        return {"alphas": [float(a.detach()) for a in ctx.model.alphas]}
