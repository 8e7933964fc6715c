"""The regularised methods' loss terms, written once, for K trials at once.

The unfused trainer evaluates them with K = 1 (its tensors with a leading axis of one), the fused
engine (:mod:`trainables.training.fused.engine`) with its K stacked trials, so both compute the
same expression. Every function returns ``(K,)``, one value per trial:

* :func:`anchor_penalty`: ``1/2 ||w - a||^2`` over ``(K, ...)`` weights and anchors (L2-SP);
* :func:`squared_norm`: ``||w||^2`` summed over several ``(K, ...)`` tensors (the head's L2);
* :func:`feature_penalty`: ``1/2 ||F_t - F_s||^2`` over ``(K, n, d)`` node features, padding rows
  masked out (Feature-map);
* :func:`spectral_penalty`: the sum of the squares of each trial's ``k`` smallest singular values
  of its ``(B, d)`` pooled embeddings (BSS);

and :func:`clip_gradient_values` clips each trial's gradient values to its own ``[-c, c]``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


def anchor_penalty(weights: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """``1/2 sum (w - a)^2`` per trial: ``(K, ...)``, ``(K, ...)`` -> ``(K,)``."""
    return 0.5 * (weights - anchors).pow(2).flatten(1).sum(1)


def squared_norm(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    """``sum_t ||t||^2`` per trial over tensors ``(K, ...)`` -> ``(K,)``."""
    return sum(tensor.pow(2).flatten(1).sum(1) for tensor in tensors)


def feature_penalty(target: torch.Tensor, source: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``1/2 sum_{nodes, channels} (F_t - F_s)^2`` per trial: ``(K, n, d)`` twice (``mask (K, n)``: 1 for
    a real node, 0 for padding) -> ``(K,)``. ``source`` is a constant (no gradient flows into it)."""
    squared = (target - source.detach()).pow(2)
    if mask is not None:
        squared = squared * mask.unsqueeze(-1).to(squared.dtype)
    return 0.5 * squared.flatten(1).sum(1)


def spectral_penalty(pooled: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Batch spectral shrinkage: ``sum_{i <= k} sigma_(-i)^2`` per trial, the squares of the ``k``
    smallest singular values (at most ``min(B, d)``) of each trial's ``pooled (K, B, d)``; ``k (K,)``."""
    singular = torch.linalg.svdvals(pooled)  # (K, min(B, d)), descending
    n = singular.shape[1]
    smallest = torch.arange(n, device=singular.device).unsqueeze(0) >= (n - k.clamp(max=n)).unsqueeze(1)
    return (singular.pow(2) * smallest).sum(1)


def clip_gradient_values(gradient: torch.Tensor, bound: torch.Tensor) -> None:
    """Clip ``gradient (K, ...)`` in place to ``[-bound_k, bound_k]`` per trial (``bound (K,)``, inf: none)."""
    limit = bound.view(-1, *([1] * (gradient.dim() - 1))).to(gradient.dtype)
    gradient.copy_(torch.maximum(torch.minimum(gradient, limit), -limit))
