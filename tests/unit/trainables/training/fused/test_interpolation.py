"""WiSE-FT and RoFt-Mol members in one interpolation group equal their unfused runs (float64, CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.unit.trainables.training.fused.test_engine import assert_same_run, split_for
from trainables.core.config import TrainingRecipe
from trainables.core.engine import EngineOptions
from trainables.data.tasks import TaskType
from trainables.methods import MethodContext, make_method
from trainables.models.gnn import GNNShape
from trainables.models.predictor import GraphPredictor
from trainables.training.fused.engine import dropout_generator_after_init
from trainables.training.fused.interpolation import InterpolationMember, StackedAdam, fit_interpolation_group
from trainables.training.fused.model import FusionError
from trainables.training.trainer import fit

RECIPE = TrainingRecipe(epochs=3, batch_size=8)
CPU = torch.device("cpu")


def build(seed: int, dropout: float = 0.5) -> GraphPredictor:
    torch.manual_seed(seed)
    return GraphPredictor(GNNShape("gin", 5, 8, dropout), 1).double()


def parent_state(seed: int) -> dict:
    """A stand-in Full-FT checkpoint: the same architecture with other weights and statistics."""
    model = build(seed + 100)
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith("running_var"):
                buffer.add_(0.5)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def unfused(molecules, seed: int, method: tuple):
    ctx = MethodContext(model=build(seed), pretrained_state=None, parent_state=parent_state(seed), seed=seed)
    return fit(ctx, make_method(*method), molecules, split_for(seed), TaskType.CLASSIFICATION, True, RECIPE,
               torch.Generator().manual_seed(seed), CPU)


def fused(molecules, seeds, methods, options: EngineOptions = EngineOptions()):
    members = []
    for seed, method in zip(seeds, methods):
        model = build(seed)
        members.append(InterpolationMember(model, make_method(*method), MethodContext(
            model=model, pretrained_state=None, parent_state=parent_state(seed), seed=seed), split_for(seed),
            torch.Generator().manual_seed(seed), dropout_generator_after_init(CPU, seed), seed))
    return fit_interpolation_group(members, molecules, TaskType.CLASSIFICATION, True, RECIPE, CPU, options=options)


ROFT = [("roft-mol", {"groups": 6, "epochs": 3, "alpha_lr": 0.01}),
        ("roft-mol", {"groups": 1, "epochs": 3, "alpha_lr": 0.1, "tied_updates": "repeated"}),
        ("roft-mol", {"groups": 2, "epochs": 3, "alpha_lr": 0.05, "tied_updates": "repeated", "alpha_init": 0.5}),
        ("roft-mol", {"groups": 3, "epochs": 3, "alpha_lr": 0.05}),
        ("roft-mol", {"groups": 6, "epochs": 3, "alpha_lr": 0.01, "bn_stats": "ft"})]


def test_roft_mol_fits_in_one_group_equal_their_unfused_runs(molecules):
    """Different groupings, initial values, learning rates and tied updates, each its own parent; the
    alphas fit in train mode on validation in the split's order, dropout on."""
    seeds = list(range(len(ROFT)))
    results = fused(molecules, seeds, ROFT)
    for seed, method, result in zip(seeds, ROFT, results):
        alone = unfused(molecules, seed, method)
        assert_same_run(alone, result)
        np.testing.assert_allclose(result.summary["alphas"], alone.summary["alphas"], rtol=1e-9)
        assert ("final_alphas" in result.summary) == ("final_alphas" in alone.summary)
        if "final_alphas" in alone.summary:
            np.testing.assert_allclose(result.summary["final_alphas"], alone.summary["final_alphas"], rtol=1e-9)


def test_shuffled_fits_use_each_members_own_order(molecules):
    methods = [("roft-mol", {"groups": 6, "epochs": 3, "alpha_lr": 0.05, "fit_order": "shuffled"})] * 2
    for seed, method, result in zip([3, 4], methods, fused(molecules, [3, 4], methods)):
        assert_same_run(unfused(molecules, seed, method), result)


def test_wise_ft_points_evaluate_in_one_pass(molecules):
    methods = [("wise-ft", {"alpha": a, "bn_stats": b}) for a, b in ((0.1, "interpolate"), (0.5, "interpolate"),
                                                                       (0.9, "ft"))]
    seeds = [0, 1, 2]
    results = fused(molecules, seeds, methods)
    for seed, method, result in zip(seeds, methods, results):
        alone = unfused(molecules, seed, method)
        assert (result.val, result.test) == pytest.approx((alone.val, alone.test), rel=1e-12)
        for name, value in alone.best_state.items():
            torch.testing.assert_close(result.best_state[name], value, rtol=1e-12, atol=1e-14)


def test_members_that_cannot_share_an_interpolation_group_are_refused(molecules):
    with pytest.raises(FusionError, match="must share"):
        fused(molecules, [0, 1], [ROFT[0], ("roft-mol", {"groups": 6, "epochs": 2})])
    with pytest.raises(FusionError, match="does not fuse"):
        fused(molecules, [0], [("roft-mol", {"groups": 6, "epochs": 2, "bn_mode": "eval"})])


def test_stacked_adam_is_torch_adam_element_by_element():
    """Per-element learning rates and step counts; an element stepped twice equals torch's Adam stepped twice."""
    torch.manual_seed(0)
    start = torch.randn(2, 3, dtype=torch.float64)
    lr = torch.tensor([[0.1, 0.1, 0.1], [0.01, 0.01, 0.01]], dtype=torch.float64)
    mine = start.clone()
    adam = StackedAdam(mine, lr)
    reference = [torch.nn.Parameter(start[k].clone()) for k in range(2)]
    optimizers = [torch.optim.Adam([reference[k]], lr=float(lr[k, 0])) for k in range(2)]
    for step in range(3):
        gradient = torch.randn(2, 3, dtype=torch.float64)
        mine.grad = gradient
        adam.step(torch.ones(2, 3, dtype=torch.bool))
        for k in range(2):
            reference[k].grad = gradient[k].clone()
            optimizers[k].step()
    torch.testing.assert_close(mine, torch.stack([p.detach() for p in reference]), rtol=1e-14, atol=0)
    adam.step(torch.tensor([[True, False, False], [False, False, False]]))
    assert adam.steps.tolist() == [[4, 3, 3], [3, 3, 3]]


def test_lazy_test_scoring_reports_the_same_fits(molecules):
    """``test_scoring: improved``: the same alphas, best epochs and test figures; test is missing from a
    curve only at epochs where no member's validation improved, and present at the last one."""
    seeds = list(range(len(ROFT)))
    fits = [(name, {**params, "epochs": 12}) for name, params in ROFT]
    every = fused(molecules, seeds, fits)
    lazy = fused(molecules, seeds, fits, EngineOptions(test_scoring="improved"))
    for a, b in zip(every, lazy):
        assert (a.best_epoch, a.val, a.test, a.summary) == (b.best_epoch, b.val, b.test, b.summary)
        assert [e.val for e in a.history] == [e.val for e in b.history]
        assert not np.isnan(b.history[-1].test)
    for epoch in range(len(every[0].history)):
        scored = [not np.isnan(r.history[epoch].test) for r in lazy]
        assert len(set(scored)) == 1  # an epoch is scored for every member or for none
        if scored[0]:
            assert [r.history[epoch].test for r in lazy] == [r.history[epoch].test for r in every]
    # one fit alone, long enough for its validation to stall: those epochs are not scored
    long = [("roft-mol", {**ROFT[0][1], "epochs": 30, "alpha_lr": 0.1})]
    alone_every, alone_lazy = fused(molecules, [0], long)[0], fused(molecules, [0], long, EngineOptions(
        test_scoring="improved"))[0]
    assert (alone_every.best_epoch, alone_every.test) == (alone_lazy.best_epoch, alone_lazy.test)
    assert sum(np.isnan(e.test) for e in alone_lazy.history) > 0
