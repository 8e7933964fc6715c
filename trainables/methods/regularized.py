"""Regularised fine-tuning: everything trains on ``task loss + d * penalty + d_head * 1/2 ||theta_head||^2``.

* ``l2-sp`` (weight mechanism): penalty ``1/2 sum_w ||w - w_pre||^2`` over every backbone parameter
  (``l2sp_scope: all``: every parameter, the head pulled toward a second random head, as the
  reference code).
* ``feature-map`` (representation): penalty ``1/2 ||F_t - F_s||^2`` summed over the ``(n, d)`` node
  features of the last message-passing layer's convolution, before its BatchNorm (``features:
  conv``: for a GIN the output of its MLP's last linear map, the tensor the reference code
  penalises; for GCN, GraphSAGE and GAT the convolution's output; for GPS the last GPS layer's
  output), ``F_s`` from a frozen copy of the pre-trained model in eval mode. ``features: output``
  penalises the encoder's final node states (after BatchNorm and dropout) instead.
* ``bss`` (representation): batch spectral shrinkage, penalty ``sum_{i<=k} sigma_{-i}^2``, the
  squares of the k smallest singular values of the batch's pooled graph embeddings ``(B, d)``.

Each adds ``d_head * 1/2 ||theta_head||^2`` (weight and bias of ``graph_pred_linear``; ``d_head``
follows ``d`` unless set) and clips gradient values to ``[-grad_clip, grad_clip]`` (10, as the
reference code does for every regularised method; 0: off). The terms themselves are the shared
functions of :mod:`trainables.methods.penalties` (the fused engine evaluates the same ones).

``double_forward: true`` reproduces the reference code's two forward passes per step: the penalty
reads a first training-mode pass (which moves BatchNorm's running statistics and draws its own
dropout masks), the task loss a second. roft's default reads the penalty from the one pass that
gives the loss. With ``d = d_head = 0`` and ``grad_clip = 0`` (one pass) each equals Full FT
exactly: the terms are still computed, multiplied by zero, and draw no random numbers.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from trainables.methods.base import (
    FineTuningMethod,
    FusedTerms,
    HyperParameter,
    MethodContext,
    Stage,
    register_method,
)
from trainables.methods.penalties import (
    anchor_penalty,
    clip_gradient_values,
    feature_penalty,
    spectral_penalty,
    squared_norm,
)
from trainables.models.encoders import GNNOutput

FRESH_HEAD_SEED_OFFSET = 1


def _leading(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` with a leading trial axis of one (the penalties take ``(K, ...)``)."""
    return tensor.unsqueeze(0)


class RegularizedFineTuning(FineTuningMethod):
    """Full fine-tuning plus ``d * penalty(...) + d_head * 1/2 ||theta_head||^2``, gradients clipped."""

    label_hyperparameters = ("d",)
    fusable = True
    reference_params = {"double_forward": True}

    hyperparameters = {
        "d": HyperParameter(
            float, 1e-2, "regularisation strength (paper grid: 1, 1e-1, 1e-2, 1e-3, 1e-4)", minimum=0.0, maximum=1e6
        ),
        "d_head": HyperParameter(
            float, None, "head L2 strength (null: equal to d)", minimum=0.0, maximum=1e6, nullable=True
        ),
        "grad_clip": HyperParameter(
            float, 10.0, "clip gradient values to [-c, c] (0: off; reference code: 10)", minimum=0.0, maximum=1e6
        ),
        "double_forward": HyperParameter(
            bool,
            False,
            "two training-mode forward passes per step, the first for the "
            "penalty, the second for the loss (reference code: true)",
            choices=(False, True),
        ),
    }

    @property
    def head_strength(self) -> float:
        return self.params["d"] if self.params["d_head"] is None else self.params["d_head"]

    def fuses(self) -> bool:
        """One forward pass per step is what the fused engine runs."""
        return not self.params["double_forward"]

    def penalty(self, ctx: MethodContext, batch, output: GNNOutput) -> torch.Tensor:
        """The method's penalty (a 0-d tensor) read from the forward pass that produced ``output``."""
        raise NotImplementedError

    def head_penalty(self, ctx: MethodContext) -> torch.Tensor:
        return 0.5 * squared_norm(_leading(p) for p in ctx.model.head.parameters())[0]

    def penalty_forward(self, ctx: MethodContext, stage: Stage, batch) -> None:
        if self.params["double_forward"]:
            self._pending = self.penalty(ctx, batch, ctx.model(batch))

    def regularizer(self, ctx: MethodContext, stage: Stage, batch, output: GNNOutput) -> torch.Tensor:
        penalty = self._pending if self.params["double_forward"] else self.penalty(ctx, batch, output)
        self._pending = None
        return self.params["d"] * penalty + self.head_strength * self.head_penalty(ctx)

    def before_step(self, ctx: MethodContext, stage: Stage, parameters: list[nn.Parameter]) -> None:
        if self.params["grad_clip"] > 0:
            bound = torch.tensor([self.params["grad_clip"]])
            for parameter in parameters:
                if parameter.grad is not None:
                    clip_gradient_values(_leading(parameter.grad), bound.to(parameter.grad.device))

    def common_terms(self) -> dict:
        """The :class:`FusedTerms` fields every regularised method sets."""
        return {"head_strength": self.head_strength, "grad_clip": self.params["grad_clip"]}


@register_method("l2-sp")
class L2SP(RegularizedFineTuning):
    """L2-SP: pull the backbone toward theta_pre.

    ``l2sp_scope: all`` follows the reference code (docs/protocol.md, quirk Q3): the penalty covers
    every parameter including the head, whose "pre-trained" value is a second randomly
    initialised head (``nn.Linear``'s initialisation, generator seeded with run seed + 1), and the
    separate head L2 term is added as well.
    """

    mechanism = "weight"
    revision = 2  # scope all adds the head L2 term; gradient clipping declared once for every regularised method
    reference_params = {"double_forward": True, "l2sp_scope": "all"}
    hyperparameters = {
        **RegularizedFineTuning.hyperparameters,
        "l2sp_scope": HyperParameter(
            str,
            "backbone",
            "backbone (canonical L2-SP) or all (reference code: the head is pulled toward a fresh random head too)",
            choices=("backbone", "all"),
        ),
    }

    def setup(self, ctx: MethodContext) -> None:
        super().setup(ctx)
        if ctx.pretrained_state is None:
            raise ValueError(f"{self.name} anchors to the pre-trained weights, which the context does not hold")
        anchors = self.anchors(dict(ctx.model.named_parameters()), ctx.pretrained_state, ctx.seed)
        self._pairs = [
            (p, anchors[name].to(p.device, p.dtype)) for name, p in ctx.model.named_parameters() if name in anchors
        ]

    def anchors(
        self, parameters: dict, pretrained_state: dict[str, torch.Tensor], seed: int
    ) -> dict[str, torch.Tensor]:
        """Parameter name (``GraphPredictor`` layout) -> the value the penalty pulls it toward."""
        scope_all = self.params["l2sp_scope"] == "all"
        anchors = {name: pretrained_state[name] for name in parameters if scope_all or name.startswith("gnn.")}
        if scope_all:
            weight = pretrained_state["graph_pred_linear.weight"]
            anchors.update(
                _fresh_head(
                    nn.Linear(weight.shape[1], weight.shape[0], device="meta"),
                    seed + FRESH_HEAD_SEED_OFFSET,
                    "graph_pred_linear.",
                )
            )
        return anchors

    def fused_terms(self, pretrained_state: dict[str, torch.Tensor], seed: int) -> FusedTerms:
        parameters = {name: None for name in pretrained_state if not _is_buffer(name)}
        return FusedTerms(
            anchors=self.anchors(parameters, pretrained_state, seed),
            anchor_strength=self.params["d"],
            **self.common_terms(),
        )

    def penalty(self, ctx: MethodContext, batch, output: GNNOutput) -> torch.Tensor:
        return sum(anchor_penalty(_leading(p), _leading(anchor))[0] for p, anchor in self._pairs)


def _is_buffer(name: str) -> bool:
    return name.endswith(("running_mean", "running_var", "num_batches_tracked"))


def _fresh_head(head: nn.Linear, seed: int, prefix: str) -> dict[str, torch.Tensor]:
    """A second head with ``nn.Linear``'s initialisation, drawn from its own generator."""
    generator = torch.Generator().manual_seed(seed)
    weight = torch.empty(head.weight.shape)
    nn.init.kaiming_uniform_(weight, a=5**0.5, generator=generator)
    bound = 1 / head.in_features**0.5
    bias = torch.empty(head.bias.shape).uniform_(-bound, bound, generator=generator)
    return {prefix + "weight": weight, prefix + "bias": bias}


class FeatureCapture:
    """Keeps the output of one module of a model from its latest forward pass (a forward hook)."""

    def __init__(self, module: nn.Module):
        self.value: torch.Tensor | None = None
        self._handle = module.register_forward_hook(self._keep)

    def _keep(self, module, inputs, output) -> None:
        self.value = output

    def take(self) -> torch.Tensor:
        if self.value is None:
            raise RuntimeError("no forward pass recorded the penalised features")
        return self.value


FEATURES = ("conv", "output")


@register_method("feature-map")
class FeatureMap(RegularizedFineTuning):
    """Feature-map regularisation: keep the last layer's node features near the pre-trained model's."""

    mechanism = "representation"
    revision = 2  # the penalised tensor is the last convolution's output (was the final node states)
    hyperparameters = {
        **RegularizedFineTuning.hyperparameters,
        "features": HyperParameter(
            str,
            "conv",
            "penalised node features: conv (the last message-passing layer's "
            "output before its BatchNorm, as the reference code) or output "
            "(the encoder's final node states)",
            choices=FEATURES,
        ),
    }

    def setup(self, ctx: MethodContext) -> None:
        super().setup(ctx)
        source = copy.deepcopy(ctx.model)
        source.load_state_dict(ctx.pretrained_state)
        self._source = source.eval().requires_grad_(False)
        if self.params["features"] == "conv":
            self._target_features = FeatureCapture(ctx.model.gnn.feature_map_module())
            self._source_features = FeatureCapture(self._source.gnn.feature_map_module())

    def penalty(self, ctx: MethodContext, batch, output: GNNOutput) -> torch.Tensor:
        with torch.no_grad():
            source_output = self._source(batch)
        if self.params["features"] == "conv":
            target, source = self._target_features.take(), self._source_features.take()
        else:
            target, source = output.node, source_output.node
        return feature_penalty(_leading(target), _leading(source))[0]

    def fused_terms(self, pretrained_state: dict[str, torch.Tensor], seed: int) -> FusedTerms:
        return FusedTerms(
            feature_strength=self.params["d"], feature_tensor=self.params["features"], **self.common_terms()
        )


@register_method("bss")
class BatchSpectralShrinkage(RegularizedFineTuning):
    """BSS: shrink the k smallest singular values of the pooled graph embeddings of each batch."""

    mechanism = "representation"
    revision = 2  # gradient values clipped to +-10 by default, as the reference code
    hyperparameters = {
        **RegularizedFineTuning.hyperparameters,
        "k": HyperParameter(int, 1, "number of smallest singular values penalised", minimum=1, maximum=10_000),
    }

    def penalty(self, ctx: MethodContext, batch, output: GNNOutput) -> torch.Tensor:
        k = torch.tensor([self.params["k"]], device=output.graph.device)
        return spectral_penalty(_leading(output.graph), k)[0]

    def fused_terms(self, pretrained_state: dict[str, torch.Tensor], seed: int) -> FusedTerms:
        return FusedTerms(spectral_strength=self.params["d"], spectral_k=self.params["k"], **self.common_terms())
