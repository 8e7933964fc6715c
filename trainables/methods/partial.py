"""Partial fine-tuning: only part of the model trains (docs/protocol.md, Methods, "partial" mechanism).

* ``lp``: linear probing, the head only.
* ``surgical-ft``: one unit of the encoder and the head: a GNN layer's convolution with its edge
  embeddings (its BatchNorm too with ``train_batch_norm: true``), or a third of a GPS encoder's
  layers; input encoders never train.
* ``lp-ft``: linear probing, then full fine-tuning from the best-validation LP head.

As in the reference code (docs/protocol.md, quirk Q4), frozen layers stay in train mode:
dropout stays on and their BatchNorm running statistics still move. ``freeze_bn_stats: true``
keeps the frozen layers' BatchNorm statistics fixed instead.
"""

from __future__ import annotations

from torch import nn

from trainables.core.config import MAX_EPOCHS
from trainables.methods.base import FineTuningMethod, HyperParameter, MethodContext, Stage, register_method

FREEZE_BN_STATS = HyperParameter(
    bool,
    False,
    "keep the frozen layers' BatchNorm running statistics fixed (reference code: false, they still move)",
    choices=(False, True),
)


def freeze_batch_norm_statistics(module: nn.Module) -> None:
    """Put every BatchNorm of ``module`` in eval mode, so its running statistics stop moving."""
    for child in module.modules():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            child.eval()


def train_with_frozen_statistics(model: nn.Module, frozen: list[nn.Module], freeze: bool) -> None:
    """``model.train()``; then, if ``freeze``, the BatchNorms inside ``frozen`` go to eval mode."""
    model.train()
    if freeze:
        for module in frozen:
            freeze_batch_norm_statistics(module)


class PartialFineTuning(FineTuningMethod):
    """Shared by the partial methods: they fuse (per-member masks of what trains) unless their frozen
    layers' BatchNorm statistics must stay fixed, which the fused engine does not do per member."""

    mechanism = "partial"
    fusable = True

    def fuses(self) -> bool:
        return not self.params["freeze_bn_stats"]


@register_method("lp")
class LinearProbe(PartialFineTuning):
    """Train ``graph_pred_linear`` only: ``min_{W, b} L(W . mean_pool(GNN_pre(G)) + b)``."""

    hyperparameters = {"freeze_bn_stats": FREEZE_BN_STATS}

    def trainable_parameters(self, ctx: MethodContext, stage: Stage) -> list[nn.Parameter]:
        return list(ctx.model.head.parameters())

    def set_train_mode(self, ctx: MethodContext, stage: Stage) -> None:
        train_with_frozen_statistics(ctx.model, [ctx.model.gnn], self.params["freeze_bn_stats"])


@register_method("surgical-ft")
class SurgicalFineTuning(PartialFineTuning):
    """Train one surgical unit of the encoder and the head; all else (input encoders included) frozen.

    The units come from the encoder (``surgical_units()``): each layer of a Hu GNN (``gnns.{i}``,
    its convolution with its edge embeddings; its ``batch_norms.{i}`` only with
    ``train_batch_norm: true``: the reference code trains the convolution alone), or the front,
    middle and back thirds of a GPS encoder's layers, as in the paper. The paper's grid is every
    unit (0..L-1 for an L-layer Hu GNN, 0..2 for GPS).
    """

    revision = 2  # the unit's BatchNorm no longer trains by default
    label_hyperparameters = ("layer",)
    hyperparameters = {
        "layer": HyperParameter(
            int,
            0,
            "index of the unit that trains: the GNN layer (0 = first), or for GPS the "
            "third of its layers (0 front, 1 middle, 2 back)",
            minimum=0,
            maximum=99,
        ),
        "train_batch_norm": HyperParameter(
            bool,
            False,
            "a Hu GNN layer's BatchNorm affine parameters train with its convolution (reference code: false)",
            choices=(False, True),
        ),
        "freeze_bn_stats": FREEZE_BN_STATS,
    }

    def validate_model(self, model: nn.Module) -> None:
        names = model.gnn.surgical_unit_names()
        if self.params["layer"] >= len(names):
            raise ValueError(
                f"surgical-ft.layer={self.params['layer']} is not accepted for this "
                f"{model.gnn.num_layers}-layer encoder; accepted: 0..{len(names) - 1} "
                f"({', '.join(names)})"
            )

    def _tuned(self, ctx: MethodContext) -> list[nn.Module]:
        unit = ctx.model.gnn.surgical_units()[self.params["layer"]]
        if not self.params["train_batch_norm"]:
            unit = [module for module in unit if not isinstance(module, nn.modules.batchnorm._BatchNorm)]
        return [*unit, ctx.model.head]

    def trainable_parameters(self, ctx: MethodContext, stage: Stage) -> list[nn.Parameter]:
        return [p for module in self._tuned(ctx) for p in module.parameters()]

    def set_train_mode(self, ctx: MethodContext, stage: Stage) -> None:
        tuned = {id(module) for module in self._tuned(ctx)}
        frozen = [module for unit in ctx.model.gnn.surgical_units() for module in unit if id(module) not in tuned]
        train_with_frozen_statistics(ctx.model, frozen, self.params["freeze_bn_stats"])


@register_method("lp-ft")
class LinearProbeThenFineTune(PartialFineTuning):
    """Stage ``lp``: the head trains (``lp_epochs``); stage ``ft``: everything trains (``ft_epochs``).

    The FT stage starts from the best-validation LP head (deep-copied from that epoch's
    snapshot); ``copy_best_head: false`` reproduces the reference code, which continues from
    the *last* LP head (docs/protocol.md, quirk Q5). Only the FT stage's epochs can be
    reported as the trial's best.
    """

    has_stage_end = True
    reference_params = {"copy_best_head": False}
    hyperparameters = {
        "lp_epochs": HyperParameter(
            int,
            None,
            "epochs of the LP stage (null: the recipe's epochs)",
            minimum=1,
            maximum=MAX_EPOCHS,
            nullable=True,
        ),
        "ft_epochs": HyperParameter(
            int,
            None,
            "epochs of the FT stage (null: the recipe's epochs)",
            minimum=1,
            maximum=MAX_EPOCHS,
            nullable=True,
        ),
        "copy_best_head": HyperParameter(
            bool,
            True,
            "start FT from the best-validation LP head (reference code: false, the last LP head)",
            choices=(False, True),
        ),
        "freeze_bn_stats": FREEZE_BN_STATS,
    }

    def stages(self, epochs: int) -> list[Stage]:
        return [
            Stage("lp", self.params["lp_epochs"] or epochs, selectable=False),
            Stage("ft", self.params["ft_epochs"] or epochs),
        ]

    def trainable_parameters(self, ctx: MethodContext, stage: Stage) -> list[nn.Parameter]:
        return list((ctx.model.head if stage.name == "lp" else ctx.model).parameters())

    def set_train_mode(self, ctx: MethodContext, stage: Stage) -> None:
        frozen = [ctx.model.gnn] if stage.name == "lp" else []
        train_with_frozen_statistics(ctx.model, frozen, self.params["freeze_bn_stats"])

    def end_stage(self, ctx: MethodContext, stage: Stage, best_state) -> None:
        if stage.name == "lp" and self.params["copy_best_head"] and best_state is not None:
            head = {k.split(".", 1)[1]: v for k, v in best_state.items() if k.startswith("graph_pred_linear.")}
            ctx.model.head.load_state_dict(head)
