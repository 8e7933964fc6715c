"""The shared loss terms (trainables.methods.penalties), for one trial and for K stacked trials."""

from __future__ import annotations

import torch

from trainables.methods.penalties import (
    anchor_penalty,
    clip_gradient_values,
    feature_penalty,
    spectral_penalty,
    squared_norm,
)


def test_spectral_penalty_of_a_known_matrix():
    """diag(3, 2, 1) padded with zero columns has singular values 3, 2, 1; k is capped at min(B, d)."""
    matrix = torch.zeros(3, 5)
    matrix[0, 0], matrix[1, 1], matrix[2, 2] = 3.0, 2.0, 1.0
    for k, expected in ((1, 1.0), (2, 5.0), (3, 14.0), (10, 14.0)):
        torch.testing.assert_close(spectral_penalty(matrix[None], torch.tensor([k])), torch.tensor([expected]))
        torch.testing.assert_close(spectral_penalty(matrix.T[None], torch.tensor([k])), torch.tensor([expected]))


def test_spectral_penalty_is_rotation_invariant_and_per_trial():
    """Orthogonal rotations leave the singular values unchanged; each trial uses its own k."""
    generator = torch.Generator().manual_seed(0)
    left, _ = torch.linalg.qr(torch.randn(4, 4, generator=generator, dtype=torch.float64))
    right, _ = torch.linalg.qr(torch.randn(6, 6, generator=generator, dtype=torch.float64))
    matrix = torch.zeros(4, 6, dtype=torch.float64)
    matrix[0, 0], matrix[1, 1], matrix[2, 2], matrix[3, 3] = 4.0, 3.0, 2.0, 0.5
    stacked = torch.stack([left @ matrix @ right, matrix])
    torch.testing.assert_close(spectral_penalty(stacked, torch.tensor([2, 1])),
                               torch.tensor([4.25, 0.25], dtype=torch.float64))


def test_anchor_feature_and_norm_terms_per_trial():
    weights = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    anchors = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    torch.testing.assert_close(anchor_penalty(weights, anchors), torch.tensor([2.0, 2.5]))
    torch.testing.assert_close(squared_norm([weights, anchors]), torch.tensor([6.0, 3.0]))
    target = torch.ones(2, 3, 2)
    source = torch.zeros(2, 3, 2)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)
    torch.testing.assert_close(feature_penalty(target, source, mask), torch.tensor([2.0, 1.0]))
    torch.testing.assert_close(feature_penalty(target, source), torch.tensor([3.0, 3.0]))


def test_feature_penalty_sends_no_gradient_into_the_source():
    target = torch.ones(1, 2, 2, requires_grad=True)
    source = torch.zeros(1, 2, 2, requires_grad=True)
    feature_penalty(target, source).sum().backward()
    assert source.grad is None and torch.equal(target.grad, torch.ones(1, 2, 2))


def test_clip_gradient_values_per_trial():
    gradient = torch.tensor([[5.0, -20.0], [5.0, -20.0]])
    clip_gradient_values(gradient, torch.tensor([10.0, float("inf")]))
    assert torch.equal(gradient, torch.tensor([[5.0, -10.0], [5.0, -20.0]]))
