"""Regularised fine-tuning: everything trains on ``task loss + d * penalty + head L2``.

* ``l2-sp`` (weight mechanism): penalty ``1/2 sum_w ||w - w_pre||^2`` over every backbone
  parameter, gradient values clipped to ``[-grad_clip, grad_clip]`` (10, as the reference).
* ``feature-map`` (representation): penalty ``1/2 ||F_t - F_s||^2`` summed over the nodes
  ``(n, d)`` of the last GNN layer's output, ``F_s`` from a frozen copy of the pre-trained
  model in eval mode.
* ``bss`` (representation): batch spectral shrinkage, penalty ``sum_{i<=k} sigma_{-i}^2``, the
  squares of the k smallest singular values of the batch's pooled graph embeddings ``(B, d)``.

Each adds ``d_head * 1/2 ||theta_head||^2`` (weight and bias of ``graph_pred_linear``); ``d_head``
follows ``d`` unless set. With ``d = d_head = 0`` (and no clipping) each equals Full FT exactly:
the terms are still computed, multiplied by zero, and draw no random numbers.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from trainables.methods.base import FineTuningMethod, FusedTerms, HyperParameter, MethodContext, Stage, register_method
from trainables.models.encoders import GNNOutput

FRESH_HEAD_SEED_OFFSET = 1


def squared_norm(tensors) -> torch.Tensor:
    return sum(t.pow(2).sum() for t in tensors)


class RegularizedFineTuning(FineTuningMethod):
    """Full fine-tuning plus ``d * penalty(...) + d_head * 1/2 ||theta_head||^2``."""

    label_hyperparameters = ("d",)
    fusable = True

    hyperparameters = {
        "d": HyperParameter(float, 1e-2, "regularisation strength (paper grid: 1, 1e-1, 1e-2, 1e-3, 1e-4)",
                            minimum=0.0),
        "d_head": HyperParameter(float, None, "head L2 strength (null: equal to d)", minimum=0.0, nullable=True),
    }

    @property
    def head_strength(self) -> float:
        return self.params["d"] if self.params["d_head"] is None else self.params["d_head"]

    def penalty(self, ctx: MethodContext, batch, output: GNNOutput) -> torch.Tensor:
        raise NotImplementedError

    def head_penalty(self, ctx: MethodContext) -> torch.Tensor:
        return 0.5 * squared_norm(ctx.model.head.parameters())

    def regularizer(self, ctx: MethodContext, stage: Stage, batch, output: GNNOutput) -> torch.Tensor:
        return self.params["d"] * self.penalty(ctx, batch, output) + self.head_strength * self.head_penalty(ctx)


@register_method("l2-sp")
class L2SP(RegularizedFineTuning):
    """L2-SP: pull the backbone toward theta_pre.

    ``l2sp_scope: all`` reproduces the reference code (docs/protocol.md, quirk Q3): the penalty
    covers every parameter including the head, whose "pre-trained" value is a second randomly
    initialised head (``nn.Linear``'s initialisation, generator seeded with run seed + 1); the
    separate head L2 term is then not added.
    """

    mechanism = "weight"
    hyperparameters = {
        **RegularizedFineTuning.hyperparameters,
        "grad_clip": HyperParameter(float, 10.0, "clip gradient values to [-c, c] (0: off)", minimum=0.0),
        "l2sp_scope": HyperParameter(str, "backbone", "backbone (canonical L2-SP) or all (reference code: the "
                                                      "head is pulled toward a fresh random head)",
                                     choices=("backbone", "all")),
    }

    def setup(self, ctx: MethodContext) -> None:
        super().setup(ctx)
        anchors = self.anchors(dict(ctx.model.named_parameters()), ctx.pretrained_state, ctx.seed)
        self._pairs = [(p, anchors[name].to(p.device)) for name, p in ctx.model.named_parameters() if name in anchors]

    def anchors(self, parameters: dict, pretrained_state: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
        """Parameter name (``GraphPredictor`` layout) -> the value the penalty pulls it toward."""
        scope_all = self.params["l2sp_scope"] == "all"
        anchors = {name: pretrained_state[name] for name in parameters if scope_all or name.startswith("gnn.")}
        if scope_all:
            weight = pretrained_state["graph_pred_linear.weight"]
            anchors.update(_fresh_head(nn.Linear(weight.shape[1], weight.shape[0], device="meta"),
                                       seed + FRESH_HEAD_SEED_OFFSET, "graph_pred_linear."))
        return anchors

    def fused_terms(self, pretrained_state: dict[str, torch.Tensor], seed: int) -> FusedTerms:
        parameters = {name: None for name in pretrained_state if not _is_buffer(name)}
        return FusedTerms(anchors=self.anchors(parameters, pretrained_state, seed), anchor_strength=self.params["d"],
                          head_strength=self.head_strength if self.params["l2sp_scope"] == "backbone" else 0.0,
                          grad_clip=self.params["grad_clip"])

    def penalty(self, ctx: MethodContext, batch, output: GNNOutput) -> torch.Tensor:
        return 0.5 * squared_norm(p - anchor for p, anchor in self._pairs)

    def head_penalty(self, ctx: MethodContext) -> torch.Tensor:
        return super().head_penalty(ctx) if self.params["l2sp_scope"] == "backbone" else torch.zeros(())

    def before_step(self, ctx: MethodContext, stage: Stage, parameters: list[nn.Parameter]) -> None:
        if self.params["grad_clip"] > 0:
            torch.nn.utils.clip_grad_value_(parameters, self.params["grad_clip"])


def _is_buffer(name: str) -> bool:
    return name.endswith(("running_mean", "running_var", "num_batches_tracked"))


def _fresh_head(head: nn.Linear, seed: int, prefix: str) -> dict[str, torch.Tensor]:
    """A second head with ``nn.Linear``'s initialisation, drawn from its own generator."""
    generator = torch.Generator().manual_seed(seed)
    weight = torch.empty(head.weight.shape)
    nn.init.kaiming_uniform_(weight, a=5 ** 0.5, generator=generator)
    bound = 1 / head.in_features ** 0.5
    bias = torch.empty(head.bias.shape).uniform_(-bound, bound, generator=generator)
    return {prefix + "weight": weight, prefix + "bias": bias}


@register_method("feature-map")
class FeatureMap(RegularizedFineTuning):
    """Feature-map regularisation: keep the last layer's node features near the pre-trained model's."""

    mechanism = "representation"

    def setup(self, ctx: MethodContext) -> None:
        super().setup(ctx)
        source = copy.deepcopy(ctx.model)
        source.load_state_dict(ctx.pretrained_state)
        self._source = source.eval().requires_grad_(False)

    def penalty(self, ctx: MethodContext, batch, output: GNNOutput) -> torch.Tensor:
        with torch.no_grad():
            source_nodes = self._source(batch).node
        return 0.5 * (output.node - source_nodes).pow(2).sum()

    def fused_terms(self, pretrained_state: dict[str, torch.Tensor], seed: int) -> FusedTerms:
        return FusedTerms(feature_strength=self.params["d"], head_strength=self.head_strength)


@register_method("bss")
class BatchSpectralShrinkage(RegularizedFineTuning):
    """BSS: shrink the k smallest singular values of the pooled graph embeddings of each batch."""

    mechanism = "representation"
    hyperparameters = {
        **RegularizedFineTuning.hyperparameters,
        "k": HyperParameter(int, 1, "number of smallest singular values penalised", minimum=1),
    }

    def penalty(self, ctx: MethodContext, batch, output: GNNOutput) -> torch.Tensor:
        return smallest_singular_values(output.graph, self.params["k"]).pow(2).sum()

    def fused_terms(self, pretrained_state: dict[str, torch.Tensor], seed: int) -> FusedTerms:
        return FusedTerms(spectral_strength=self.params["d"], spectral_k=self.params["k"],
                          head_strength=self.head_strength)


def smallest_singular_values(matrix: torch.Tensor, k: int) -> torch.Tensor:
    """The ``min(k, rank bound)`` smallest singular values of ``matrix (B, d)``, differentiable."""
    singular_values = torch.linalg.svdvals(matrix)  # descending, min(B, d) values
    return singular_values[-min(k, singular_values.numel()):]
