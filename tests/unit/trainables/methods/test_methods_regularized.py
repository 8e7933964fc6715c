"""trainables.methods.regularized: L2-SP, Feature-map and BSS penalties and their zero-strength limit."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tests.unit.trainables.hand_molecules import TEST, TRAIN, VALID
from trainables.core.config import TrainingRecipe
from trainables.data.tasks import TaskType
from trainables.methods import METHODS, MethodContext, Stage, make_method
from trainables.models.encoders import GNNOutput
from trainables.models.gnn import GNNShape
from trainables.models.predictor import GraphPredictor
from trainables.training.trainer import SplitIndices, fit

SHAPE = GNNShape("gin", 2, 16)
RECIPE = TrainingRecipe(epochs=2, batch_size=4, lr=1e-2)
CPU = torch.device("cpu")
STAGE = Stage("finetune", 1)


def split() -> SplitIndices:
    return SplitIndices(torch.tensor(TRAIN), torch.tensor(VALID), torch.tensor(TEST))


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def predictor(seed: int = 0) -> GraphPredictor:
    torch.manual_seed(seed)
    return GraphPredictor(SHAPE, 1)


def run(method, data, seed: int = 0, recipe: TrainingRecipe = RECIPE):
    model = predictor(seed)
    ctx = MethodContext(model=model, pretrained_state=None, seed=seed)
    result = fit(ctx, method, data, split(), TaskType.CLASSIFICATION, True, recipe,
                 torch.Generator().manual_seed(seed), CPU)
    return ctx, model, result


def set_up(method, seed: int = 0):
    """A model at theta_pre and ``method`` set up on it, as ``fit`` does before the first stage."""
    model = predictor(seed)
    ctx = MethodContext(model=model, pretrained_state=snapshot(model), seed=seed)
    method.setup(ctx)
    return ctx


def perturb(model: nn.Module, seed: int = 7, scale: float = 0.1) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator))


def backbone_distance(model: GraphPredictor, pre: dict) -> float:
    return sum(float((p.detach() - pre["gnn." + name]).pow(2).sum()) for name, p in model.gnn.named_parameters())


# ----------------------------------------------------------------------------- zero strength is Full FT

@pytest.mark.parametrize("name, params", [
    ("l2-sp", {"d": 0.0, "d_head": 0.0, "grad_clip": 0.0}),
    ("l2-sp", {"d": 0.0, "d_head": 0.0, "grad_clip": 0.0, "l2sp_scope": "all"}),
    ("feature-map", {"d": 0.0, "d_head": 0.0, "grad_clip": 0.0}),
    ("feature-map", {"d": 0.0, "d_head": 0.0, "grad_clip": 0.0, "features": "output"}),
    ("bss", {"d": 0.0, "d_head": 0.0, "grad_clip": 0.0}),
    ("bss", {"d": 0.0, "k": 3, "grad_clip": 0.0}),
])
def test_zero_strength_is_bitwise_full_fine_tuning(hand_dataset, name, params):
    """d = d_head = 0 (no clipping) reproduces Full FT's history and states bit for bit."""
    _, ft_model, ft = run(make_method("full-ft"), hand_dataset, seed=1)
    _, model, result = run(make_method(name, params), hand_dataset, seed=1)
    assert [(r.stage, r.epoch, r.train_loss, r.val, r.test) for r in result.history] == \
           [(r.stage, r.epoch, r.train_loss, r.val, r.test) for r in ft.history]
    assert (result.best_epoch, result.val, result.test) == (ft.best_epoch, ft.val, ft.test)
    assert states_equal(result.best_state, ft.best_state)
    assert states_equal(snapshot(model), snapshot(ft_model))


@pytest.mark.parametrize("name", ["l2-sp", "feature-map", "bss"])
def test_positive_strength_changes_training(hand_dataset, name):
    """With the default strength the regulariser enters the loss and training differs from Full FT."""
    _, ft_model, ft = run(make_method("full-ft"), hand_dataset, seed=1)
    _, model, result = run(make_method(name, {"d": 1.0}), hand_dataset, seed=1)
    assert [r.train_loss for r in result.history] != [r.train_loss for r in ft.history]
    assert not states_equal(snapshot(model), snapshot(ft_model))


# ----------------------------------------------------------------------------- L2-SP

def test_l2_sp_stays_closer_to_the_pretrained_backbone(hand_dataset):
    """A positive d keeps the backbone nearer theta_pre than Full FT does."""
    recipe = TrainingRecipe(epochs=3, batch_size=4, lr=1e-2)
    ft_ctx, ft_model, _ = run(make_method("full-ft"), hand_dataset, recipe=recipe)
    ctx, model, _ = run(make_method("l2-sp", {"d": 1.0}), hand_dataset, recipe=recipe)
    assert states_equal(ctx.pretrained_state, ft_ctx.pretrained_state)
    ft_distance, l2sp_distance = backbone_distance(ft_model, ft_ctx.pretrained_state), \
        backbone_distance(model, ctx.pretrained_state)
    assert 0 < l2sp_distance < 0.5 * ft_distance
    stronger_ctx, stronger, _ = run(make_method("l2-sp", {"d": 10.0}), hand_dataset, recipe=recipe)
    assert backbone_distance(stronger, stronger_ctx.pretrained_state) < l2sp_distance


def test_l2_sp_penalty_is_half_the_squared_distance_to_theta_pre():
    """penalty = 1/2 sum over backbone parameters of ||w - w_pre||^2 (head and BN statistics excluded)."""
    method = make_method("l2-sp")
    ctx = set_up(method)
    assert method.penalty(ctx, None, None).item() == 0.0
    pre = ctx.pretrained_state
    perturb(ctx.model)
    with torch.no_grad():
        ctx.model.gnn.batch_norms[0].running_mean.add_(5.0)  # buffers are not penalised
    parameter_names = {name for name, _ in ctx.model.named_parameters()}
    by_hand = 0.0
    for key, value in ctx.model.state_dict().items():
        if key.startswith("gnn.") and key in parameter_names:
            by_hand += 0.5 * float((value.double() - pre[key].double()).pow(2).sum())
    penalty = method.penalty(ctx, None, None)
    assert penalty.requires_grad
    assert math.isclose(penalty.item(), by_hand, rel_tol=1e-5)
    head_part = 0.5 * sum(float(p.detach().double().pow(2).sum()) for p in ctx.model.head.parameters())
    assert math.isclose(method.regularizer(ctx, STAGE, None, None).item(), 0.01 * by_hand + 0.01 * head_part,
                        rel_tol=1e-5)


def test_l2_sp_penalty_gradient_pulls_toward_theta_pre():
    """The penalty's gradient is w - w_pre for each backbone parameter and nothing for the head."""
    method = make_method("l2-sp")
    ctx = set_up(method)
    pre = ctx.pretrained_state
    perturb(ctx.model)
    method.penalty(ctx, None, None).backward()
    for name, p in ctx.model.gnn.named_parameters():
        torch.testing.assert_close(p.grad, p.detach() - pre["gnn." + name], rtol=1e-6, atol=1e-7)
    assert all(p.grad is None for p in ctx.model.head.parameters())


def fresh_linear(seed: int, in_features: int = 16, out_features: int = 1) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(in_features, out_features)


def test_l2_sp_scope_all_pulls_the_head_toward_a_fresh_head():
    """l2sp_scope=all adds 1/2 ||head - fresh||^2, fresh being nn.Linear's init seeded with seed + 1."""
    seed = 5
    backbone = make_method("l2-sp", {"d": 1.0})
    everything = make_method("l2-sp", {"d": 1.0, "l2sp_scope": "all"})
    backbone_ctx, all_ctx = set_up(backbone, seed), set_up(everything, seed)
    for ctx in (backbone_ctx, all_ctx):
        perturb(ctx.model)
    fresh = fresh_linear(seed + 1)
    own_head = predictor(seed).head
    assert not torch.equal(fresh.weight, own_head.weight)  # not the model's initial head
    head = all_ctx.model.head
    head_term = 0.5 * (float((head.weight.detach().double() - fresh.weight.detach().double()).pow(2).sum())
                       + float((head.bias.detach().double() - fresh.bias.detach().double()).pow(2).sum()))
    assert head_term > 0
    assert math.isclose(everything.penalty(all_ctx, None, None).item(),
                        backbone.penalty(backbone_ctx, None, None).item() + head_term, rel_tol=1e-5)
    # the separate head L2 term is added too, as the reference code always adds it
    own_l2 = 0.5 * sum(float(p.detach().double().pow(2).sum()) for p in head.parameters())
    assert math.isclose(everything.head_penalty(all_ctx).item(), own_l2, rel_tol=1e-5)
    assert math.isclose(everything.regularizer(all_ctx, STAGE, None, None).item(),
                        everything.penalty(all_ctx, None, None).item() + own_l2, rel_tol=1e-5)


def test_l2_sp_fresh_head_is_deterministic_per_seed():
    """The same seed gives the same fresh head; another seed gives another one."""
    def penalty_at_theta_pre(seed: int, model_seed: int = 0) -> float:
        method = make_method("l2-sp", {"l2sp_scope": "all"})
        model = predictor(model_seed)
        ctx = MethodContext(model=model, pretrained_state=snapshot(model), seed=seed)
        method.setup(ctx)
        return method.penalty(ctx, None, None).item()  # only the head term is non-zero at theta_pre

    assert penalty_at_theta_pre(3) == penalty_at_theta_pre(3) > 0
    assert penalty_at_theta_pre(3) != penalty_at_theta_pre(4)
    # the fresh head depends on the run seed only, not on the global random state
    torch.manual_seed(123)
    first = penalty_at_theta_pre(3)
    torch.manual_seed(456)
    assert penalty_at_theta_pre(3) == first


def test_l2_sp_gradient_value_clipping():
    """before_step clips each gradient value to [-grad_clip, grad_clip]; 0 leaves gradients alone."""
    ctx = set_up(make_method("l2-sp"))
    weight = nn.Parameter(torch.zeros(4))
    weight.grad = torch.tensor([100.0, -50.0, 3.0, -10.5])
    make_method("l2-sp").before_step(ctx, STAGE, [weight])
    assert torch.equal(weight.grad, torch.tensor([10.0, -10.0, 3.0, -10.0]))
    weight.grad = torch.tensor([100.0, -50.0, 3.0, -10.5])
    make_method("l2-sp", {"grad_clip": 2.5}).before_step(ctx, STAGE, [weight])
    assert torch.equal(weight.grad, torch.tensor([2.5, -2.5, 2.5, -2.5]))
    weight.grad = torch.tensor([100.0, -50.0, 3.0, -10.5])
    make_method("l2-sp", {"grad_clip": 0.0}).before_step(ctx, STAGE, [weight])
    assert torch.equal(weight.grad, torch.tensor([100.0, -50.0, 3.0, -10.5]))


def test_l2_sp_clipping_applies_during_training(hand_dataset):
    """The trainer calls before_step: every gradient the optimiser sees is within the clip."""
    largest = []

    class Watching(METHODS.get("l2-sp")):
        def before_step(self, ctx, stage, parameters):
            super().before_step(ctx, stage, parameters)
            largest.append(max(float(p.grad.abs().max()) for p in parameters if p.grad is not None))

    clip = 2.0 ** -10  # exactly representable in float32
    run(Watching(grad_clip=clip), hand_dataset, recipe=TrainingRecipe(epochs=1, batch_size=4, lr=1e-2))
    assert largest == [clip] * 4  # 4 batches, each with some gradient value at the clip


def test_l2_sp_hyper_parameters():
    """Defaults follow the paper; l2sp_scope is one of two choices."""
    assert make_method("l2-sp").params == {"d": 0.01, "d_head": None, "grad_clip": 10.0, "double_forward": False,
                                           "l2sp_scope": "backbone"}
    with pytest.raises(ValueError, match=r"^l2-sp.l2sp_scope='head' is not accepted; "
                                         r"accepted: one of \['backbone', 'all'\]$"):
        make_method("l2-sp", {"l2sp_scope": "head"})
    with pytest.raises(ValueError, match=r"^l2-sp.grad_clip=-1 is not accepted; accepted: a finite number from 0 to 1,000,000$"):
        make_method("l2-sp", {"grad_clip": -1})


def test_nan_strength_is_rejected():
    """A NaN strength is not a float >= 0 and is refused."""
    with pytest.raises(ValueError, match=r"l2-sp.d=nan is not accepted"):
        make_method("l2-sp", {"d": float("nan")})


# ----------------------------------------------------------------------------- head strength

@pytest.mark.parametrize("name", ["l2-sp", "feature-map", "bss"])
def test_head_strength_follows_d_unless_set(hand_dataset, name):
    """regulariser = d * penalty + d_head * 1/2 ||head||^2 with d_head = d when null."""
    batch = hand_dataset.batch(torch.arange(6))
    values = {}
    for d_head in (None, 0.0, 0.7):
        method = make_method(name, {"d": 0.1, "d_head": d_head})
        assert method.head_strength == (0.1 if d_head is None else d_head)
        ctx = set_up(method)
        perturb(ctx.model)
        ctx.model.train()
        torch.manual_seed(0)  # the same dropout mask for each strength
        output = ctx.model(batch)
        penalty = method.penalty(ctx, batch, output).item()
        head = 0.5 * sum(float(p.detach().double().pow(2).sum()) for p in ctx.model.head.parameters())
        values[d_head] = method.regularizer(ctx, STAGE, batch, output).item()
        assert math.isclose(values[d_head], 0.1 * penalty + method.head_strength * head, rel_tol=1e-5)
    assert values[None] != values[0.0] != values[0.7]


# ----------------------------------------------------------------------------- BSS

@pytest.mark.parametrize("k, expected", [(1, 1.0), (2, 5.0), (3, 14.0), (8, 14.0)])
def test_bss_penalty_is_the_sum_of_the_k_smallest_squared_singular_values(k, expected):
    """BSS penalises sum_{i<=k} sigma_{-i}^2 of the pooled graph embeddings (k capped at min(B, d))."""
    graph = torch.zeros(3, 5)
    graph[0, 0], graph[1, 1], graph[2, 2] = 3.0, 2.0, 1.0
    output = GNNOutput(node=torch.zeros(7, 5), graph=graph, logits=torch.zeros(3, 1))
    method = make_method("bss", {"k": k})
    assert math.isclose(method.penalty(None, None, output).item(), expected, rel_tol=1e-6)


def test_bss_penalty_gradient_shrinks_the_smallest_direction():
    """The gradient of sigma_min^2 is 2 sigma_min u v^T: only the smallest direction is touched."""
    graph = torch.zeros(3, 5)
    graph[0, 0], graph[1, 1], graph[2, 2] = 3.0, 2.0, 1.0
    graph.requires_grad_(True)
    output = GNNOutput(node=torch.zeros(7, 5), graph=graph, logits=torch.zeros(3, 1))
    make_method("bss").penalty(None, None, output).backward()
    expected = torch.zeros(3, 5)
    expected[2, 2] = 2.0
    torch.testing.assert_close(graph.grad.abs(), expected)


def test_bss_k_must_be_positive():
    """k counts singular values and must be at least 1."""
    with pytest.raises(ValueError, match=r"^bss.k=0 is not accepted; accepted: an integer from 1 to 10,000$"):
        make_method("bss", {"k": 0})


# ----------------------------------------------------------------------------- Feature-map

def test_feature_map_source_is_a_frozen_eval_copy_of_theta_pre(hand_dataset):
    """The source model holds theta_pre, is in eval mode, has no trainable parameter and stays so."""
    method = make_method("feature-map", {"d": 1.0})
    ctx, model, _ = run(method, hand_dataset)
    source = method._source
    assert source is not model and not source.training
    assert not any(m.training for m in source.modules())
    assert not any(p.requires_grad for p in source.parameters())
    assert states_equal(snapshot(source), ctx.pretrained_state)
    assert not states_equal(snapshot(model), ctx.pretrained_state)


def test_feature_map_penalty_is_zero_for_the_source_in_eval_mode(hand_dataset):
    """At theta_pre, in eval mode, the last-layer node features equal the source's: penalty 0."""
    method = make_method("feature-map")
    ctx = set_up(method)
    batch = hand_dataset.batch(torch.arange(8))
    ctx.model.eval()
    assert method.penalty(ctx, batch, ctx.model(batch)).item() == 0.0
    # in train mode (dropout and batch statistics) the features differ
    ctx.model.train()
    assert method.penalty(ctx, batch, ctx.model(batch)).item() > 0


def last_convolution_output(model: GraphPredictor, batch) -> torch.Tensor:
    """The output of the last layer's convolution (before its BatchNorm), caught by a hook of the test's own."""
    caught = []
    handle = model.gnn.gnns[-1].register_forward_hook(lambda module, inputs, output: caught.append(output))
    model(batch)
    handle.remove()
    return caught[0]


def test_feature_map_penalises_the_last_convolution_output(hand_dataset):
    """Default features: conv: penalty = 1/2 ||C_t - C_s||^2 with C the last layer's convolution output
    before BatchNorm (for this GIN, its MLP's last linear map), not the final node states."""
    method = make_method("feature-map", {"d": 0.1})
    assert method.params["features"] == "conv"
    ctx, model, _ = run(method, hand_dataset, recipe=TrainingRecipe(epochs=2, batch_size=4, lr=3e-2))
    batch = hand_dataset.batch(torch.arange(8))
    model.eval()
    reference = predictor(0)
    reference.load_state_dict(ctx.pretrained_state)
    reference.eval()
    with torch.no_grad():
        target, source = last_convolution_output(model, batch), last_convolution_output(reference, batch)
        by_hand = 0.5 * float((target.double() - source.double()).pow(2).sum())
        final_states = 0.5 * float((model(batch).node.double() - reference(batch).node.double()).pow(2).sum())
    output = model(batch)
    penalty = method.penalty(ctx, batch, output)
    assert by_hand > 0 and not math.isclose(by_hand, final_states, rel_tol=1e-3)
    assert math.isclose(penalty.item(), by_hand, rel_tol=1e-5)


def test_feature_map_penalty_is_half_the_squared_feature_distance(hand_dataset):
    """features: output: penalty = 1/2 ||F_t - F_s||^2 over the final node states, positive after training."""
    method = make_method("feature-map", {"d": 0.1, "features": "output"})
    ctx, model, _ = run(method, hand_dataset, recipe=TrainingRecipe(epochs=2, batch_size=4, lr=3e-2))
    batch = hand_dataset.batch(torch.arange(8))
    model.eval()
    output = model(batch)
    reference = predictor(0)
    reference.load_state_dict(ctx.pretrained_state)
    reference.eval()
    with torch.no_grad():
        by_hand = 0.5 * float((output.node.detach().double() - reference(batch).node.double()).pow(2).sum())
    penalty = method.penalty(ctx, batch, output)
    assert penalty.requires_grad and by_hand > 0
    assert math.isclose(penalty.item(), by_hand, rel_tol=1e-5)
