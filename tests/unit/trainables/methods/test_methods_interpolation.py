"""trainables.methods.interpolation: WiSE-FT, RoFt-Mol, alpha tying and layer groups."""

from __future__ import annotations

import math
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tests.unit.trainables.hand_molecules import HAND_SMILES, TEST, TRAIN, VALID, make_dataset
from trainables.core.config import TrainingRecipe
from trainables.data.tasks import TaskType
from trainables.methods import METHODS, MethodContext, Stage, make_method
from trainables.methods.interpolation import InterpolatedPredictor, interpolated_state, layer_group, tying
from trainables.models.gnn import GNNShape
from trainables.models.predictor import GraphPredictor
from trainables.training.metrics import evaluate_metric
from trainables.training.trainer import SplitIndices, fit, predict

SHAPE = GNNShape("gin", 5, 8)
SEED = 0
RECIPE = TrainingRecipe(epochs=2, batch_size=4, lr=1e-2)
CPU = torch.device("cpu")
STATISTICS = ("running_mean", "running_var")
ENCODER = GraphPredictor(SHAPE, 1).gnn  # says which layer each state key belongs to


def split() -> SplitIndices:
    return SplitIndices(torch.tensor(TRAIN), torch.tensor(VALID), torch.tensor(TEST))


def wide_split() -> SplitIndices:
    """Twelve validation molecules, so each half of validation holds six."""
    return SplitIndices(torch.arange(0, 6), torch.arange(6, 18), torch.tensor([18, 19]))


def predictor(shape: GNNShape = SHAPE, seed: int = SEED) -> GraphPredictor:
    torch.manual_seed(seed)
    return GraphPredictor(shape, 1)


def clone(state: dict) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in state.items()}


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def is_statistic(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in STATISTICS


def fit_dependant(method, data, parent_state, *, shape=SHAPE, seed=SEED, indices=None, recipe=RECIPE,
                  prior_points=None):
    """Fit ``method`` on a model rebuilt with ``seed`` (theta_pre identical to its parent's)."""
    model = predictor(shape, seed)
    ctx = MethodContext(model=model, pretrained_state=None, parent_state=parent_state, seed=seed,
                        prior_alpha_points=None if prior_points is None else (lambda study: prior_points))
    result = fit(ctx, method, data, indices or split(), TaskType.REGRESSION, False, recipe,
                 torch.Generator().manual_seed(seed), CPU)
    return ctx, model, result


def scored(state: dict, data, index) -> float:
    model = GraphPredictor(SHAPE, 1)
    model.load_state_dict(state)
    index = torch.as_tensor(index)
    return evaluate_metric(TaskType.REGRESSION, data.y[index].numpy(), predict(model, data, index, CPU)).value


@pytest.fixture(scope="module")
def regression_data():
    """The hand molecules with continuous targets: RMSE separates models that ROC-AUC on 3 molecules ties."""
    return make_dataset(HAND_SMILES, np.linspace(-2.0, 3.0, 20))


@pytest.fixture(scope="module")
def parent(regression_data):
    """A Full-FT parent trial: theta_pre, its best-validation state and its result."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pre = clone(predictor().state_dict())
        _, _, result = fit_dependant(make_method("full-ft"), regression_data, None,
                                     recipe=TrainingRecipe(epochs=3, batch_size=4, lr=1e-2))
    finally:
        torch.set_num_threads(threads)
    assert not states_equal(pre, result.best_state)
    return SimpleNamespace(pre=pre, state=result.best_state, result=result)


# ----------------------------------------------------------------------------- WiSE-FT

def test_wise_ft_alpha_one_reproduces_full_ft(regression_data, parent):
    """alpha = 1 is theta_ft exactly, with the parent's validation and test metrics."""
    _, model, result = fit_dependant(make_method("wise-ft", {"alpha": 1.0}), regression_data, parent.state)
    assert states_equal(model.state_dict(), parent.state)
    assert [(r.stage, r.epoch) for r in result.history] == [("evaluate", 0)]
    assert math.isnan(result.history[0].train_loss)
    assert result.best_stage == "evaluate" and result.best_epoch == 0
    assert result.val == scored(parent.state, regression_data, VALID) == parent.result.val
    assert result.test == scored(parent.state, regression_data, TEST) == parent.result.test
    assert states_equal(result.best_state, parent.state)


def test_wise_ft_alpha_zero_is_the_pretrained_backbone_with_the_ft_head(regression_data, parent):
    """alpha = 0: every float backbone entry (BN statistics included) from theta_pre; head and counters from FT."""
    _, model, result = fit_dependant(make_method("wise-ft", {"alpha": 0.0, "bn_stats": "interpolate"}),
                                     regression_data, parent.state)
    state = model.state_dict()
    expected = {}
    for key, ft_value in parent.state.items():
        if key.startswith("graph_pred_linear.") or key.endswith("num_batches_tracked"):
            expected[key] = ft_value
        else:
            expected[key] = parent.pre[key]
    assert states_equal(state, expected)
    assert int(state["gnn.batch_norms.0.num_batches_tracked"]) > 0  # from FT, not theta_pre's 0
    assert not torch.equal(parent.pre["gnn.batch_norms.0.running_mean"], parent.state["gnn.batch_norms.0.running_mean"])
    assert result.val == scored(expected, regression_data, VALID)
    assert result.test == scored(expected, regression_data, TEST)


@pytest.mark.parametrize("bn_stats", ["interpolate", "ft"])
def test_wise_ft_intermediate_alpha_is_the_linear_interpolation(regression_data, parent, bn_stats):
    """Float backbone entries are (1 - a) pre + a ft; BN statistics follow bn_stats; the rest comes from FT."""
    a = 0.3
    _, model, result = fit_dependant(make_method("wise-ft", {"alpha": a, "bn_stats": bn_stats}),
                                     regression_data, parent.state)
    state = model.state_dict()
    alpha = torch.tensor(a, dtype=torch.float32)
    assert state.keys() == parent.state.keys()
    for key, ft_value in parent.state.items():
        pre_value = parent.pre[key]
        if key.startswith("graph_pred_linear.") or not ft_value.is_floating_point():
            assert torch.equal(state[key], ft_value), key
        elif is_statistic(key) and bn_stats == "ft":
            assert torch.equal(state[key], ft_value), key
        else:
            assert torch.equal(state[key], (1 - alpha) * pre_value + alpha * ft_value), key
            np.testing.assert_allclose(state[key].numpy(), (1 - a) * pre_value.double().numpy()
                                       + a * ft_value.double().numpy(), rtol=1e-6, atol=1e-7)
    assert result.val == scored(state, regression_data, VALID)


def test_wise_ft_hyper_parameters():
    """WiSE-FT is an evaluation-only stage; bad bn_stats values name what is accepted."""
    method = make_method("wise-ft")
    assert method.params == {"alpha": 0.5, "bn_stats": "interpolate", "search": "none", "n_trials": 100,
                             "search_seed": 0, "alpha_low": 0.0, "alpha_high": 1.0, "test_per_point": False}
    assert method.stages(100) == [Stage("evaluate", 0)]
    assert METHODS.get("wise-ft").requires_parent == "full-ft"
    with pytest.raises(ValueError, match=r"^wise-ft.bn_stats='none' is not accepted; "
                                         r"accepted: one of \['interpolate', 'ft'\]$"):
        make_method("wise-ft", {"bn_stats": "none"})


# ----------------------------------------------------------------------------- RoFt-Mol against WiSE-FT

@pytest.mark.parametrize("bn_stats", ["interpolate", "ft"])
def test_roft_mol_with_frozen_alphas_equals_wise_ft(regression_data, parent, bn_stats):
    """alpha_lr = 0 and one group: every epoch scores exactly as WiSE-FT at the same alpha."""
    a = 0.3
    _, _, wise = fit_dependant(make_method("wise-ft", {"alpha": a, "bn_stats": bn_stats}),
                               regression_data, parent.state)
    roft = make_method("roft-mol", {"groups": 1, "alpha_init": a, "alpha_lr": 0.0, "epochs": 3,
                                    "bn_stats": bn_stats, "bn_mode": "eval"})
    _, _, result = fit_dependant(roft, regression_data, parent.state)
    assert [(r.stage, r.epoch) for r in result.history] == [("alpha", 1), ("alpha", 2), ("alpha", 3)]
    assert [(r.val, r.test) for r in result.history] == [(wise.val, wise.test)] * 3
    frozen = [float(torch.tensor(a, dtype=torch.float32))]
    assert result.summary == {"alphas": frozen}  # final_alphas only where they differ
    assert states_equal(result.best_state, wise.best_state)


def test_wise_ft_bn_stats_options_differ(regression_data, parent):
    """Interpolated and FT BatchNorm statistics give different models at an intermediate alpha."""
    _, a, _ = fit_dependant(make_method("wise-ft", {"alpha": 0.3, "bn_stats": "interpolate"}),
                            regression_data, parent.state)
    _, b, _ = fit_dependant(make_method("wise-ft", {"alpha": 0.3, "bn_stats": "ft"}),
                            regression_data, parent.state)
    key = "gnn.batch_norms.2.running_var"
    assert not torch.equal(a.state_dict()[key], b.state_dict()[key])
    assert torch.equal(a.state_dict()["gnn.gnns.2.mlp.0.weight"], b.state_dict()["gnn.gnns.2.mlp.0.weight"])


# ----------------------------------------------------------------------------- RoFt-Mol training

@pytest.mark.parametrize("groups", [1, 2, 3, 6])
def test_roft_mol_trains_only_the_alphas(regression_data, parent, groups):
    """Only the alphas move; best_state is theta(alphas) at the recorded alphas, in GraphPredictor layout."""
    method = make_method("roft-mol", {"groups": groups, "alpha_lr": 0.1, "epochs": 3, "alpha_init": 0.5,
                                      "bn_stats": "ft", "bn_mode": "eval"})
    ctx, model, result = fit_dependant(method, regression_data, parent.state)
    assert isinstance(ctx.model, InterpolatedPredictor) and ctx.model.model is model
    assert states_equal(model.state_dict(), parent.pre)  # the wrapped model's own tensors never change
    assert not torch.equal(torch.stack(list(ctx.model.alphas)).detach(), torch.full((groups,), 0.5))
    trainable = [p for p in ctx.model.parameters() if p.requires_grad]
    assert len(trainable) == groups and all(p is a for p, a in zip(trainable, ctx.model.alphas))

    alphas = result.summary["alphas"]
    assert len(alphas) == groups and all(isinstance(a, float) for a in alphas)
    check = GraphPredictor(SHAPE, 1)
    check.load_state_dict(result.best_state, strict=True)
    tie = tying(groups, 5)
    at = torch.tensor(alphas, dtype=torch.float32)
    expected = interpolated_state(parent.pre, parent.state, lambda group: at[tie[group]], "ft", ENCODER)
    assert states_equal(result.best_state, expected)
    assert result.val == scored(result.best_state, regression_data, VALID)
    assert result.test == scored(result.best_state, regression_data, TEST)


def test_roft_mol_best_epoch_alphas_are_recorded(regression_data, parent):
    """The recorded alphas are those of the best epoch, not of the last one."""
    seen = []

    class Recording(METHODS.get("roft-mol")):
        def summary(self, ctx):
            out = super().summary(ctx)
            seen.append(out["alphas"])
            return out

    method = Recording(groups=6, alpha_lr=2.0, epochs=3, alpha_init=0.9, bn_mode="eval",
                       fit_order="shuffled")  # a large step overshoots
    ctx, _, result = fit_dependant(method, regression_data, parent.state)
    best = min(range(3), key=lambda i: result.history[i].val)  # regression: lowest RMSE, earliest on ties
    assert result.best_epoch == best + 1 < 3
    assert result.summary["alphas"] == seen[-2]  # seen[-1]: the summary after the last epoch
    final = [float(a) for a in ctx.model.alphas]
    assert result.summary["alphas"] != final and result.summary["final_alphas"] == final == seen[-1]
    tie = tying(6, 5)
    at = torch.tensor(result.summary["alphas"], dtype=torch.float32)
    assert states_equal(result.best_state, interpolated_state(parent.pre, parent.state, lambda g: at[tie[g]], "ft", ENCODER))


def test_roft_mol_val_half_fits_and_selects_on_disjoint_halves(regression_data, parent):
    """fit_split=val_half: alphas see only valid_fit; validation metrics come from valid_select."""
    indices = wide_split()
    fit_half, select_half = indices.part("valid_fit"), indices.part("valid_select")

    class Recorded:
        def __init__(self, data):
            self._data, self.calls = data, []

        def __getattr__(self, name):
            return getattr(self._data, name)

        def batch(self, ids):
            self.calls.append((torch.is_grad_enabled(), ids.tolist()))
            return self._data.batch(ids)

    data = Recorded(regression_data)
    method = make_method("roft-mol", {"fit_split": "val_half", "epochs": 2, "alpha_lr": 0.1})
    assert method.stages(5) == [Stage("alpha", 2, lr=0.1, fit_on="valid_fit", select_on="valid_select", shuffle=False)]
    _, _, result = fit_dependant(method, data, parent.state, indices=indices)
    evaluation = [select_half.tolist(), indices.test.tolist()]
    evaluated = [ids for _, ids in data.calls if ids in evaluation]
    trained = [ids for _, ids in data.calls if ids not in evaluation]
    assert sorted(i for ids in trained for i in ids) == sorted(fit_half.tolist() * 2)  # 2 epochs
    assert [i for ids in trained for i in ids] == fit_half.tolist() * 2  # in the split's order each epoch
    assert evaluated == evaluation  # evaluation batches are assembled once and stay resident
    assert result.val == scored(result.best_state, regression_data, select_half)
    assert result.history[result.best_epoch - 1].val == result.val


def test_roft_mol_default_fits_and_selects_on_validation():
    """fit_split=val (the reference behaviour) fits and selects on the whole validation split."""
    method = make_method("roft-mol")
    assert method.params["fit_split"] == "val" and method.params["bn_stats"] == "ft"
    assert (method.params["bn_mode"], method.params["fit_order"], method.params["tied_updates"]) == \
        ("train", "fixed", "once")
    assert method.stages(100) == [Stage("alpha", 200, lr=1e-2, fit_on="valid", select_on="valid", shuffle=False)]
    assert make_method("roft-mol", {"fit_order": "shuffled"}).stages(100)[0].shuffle
    assert METHODS.get("roft-mol").requires_parent == "full-ft"


@pytest.mark.parametrize("size", [3, 12, 13])
def test_validation_halves_are_disjoint_cover_and_are_deterministic(size):
    """valid_fit and valid_select split validation in two fixed halves (the first one larger)."""
    valid = torch.arange(100, 100 + size)
    indices = SplitIndices(torch.arange(0, 5), valid, torch.arange(5, 8))
    fit_half, select_half = indices.part("valid_fit"), indices.part("valid_select")
    assert set(fit_half.tolist()).isdisjoint(select_half.tolist())
    assert sorted(fit_half.tolist() + select_half.tolist()) == valid.tolist()
    assert len(fit_half) == (size + 1) // 2
    assert torch.equal(fit_half, indices.part("valid_fit")) and torch.equal(select_half, indices.part("valid_select"))
    with pytest.raises(ValueError, match=r"unknown split part 'half'; accepted: train, valid, test, "
                                         r"valid_fit, valid_select"):
        indices.part("half")


def test_roft_mol_string_choices_are_validated():
    """Unknown fit_split or bn_stats values are errors naming the value and the choices."""
    with pytest.raises(ValueError, match=r"^roft-mol.fit_split='half' is not accepted; "
                                         r"accepted: one of \['val', 'val_half'\]$"):
        make_method("roft-mol", {"fit_split": "half"})
    with pytest.raises(ValueError, match=r"^roft-mol.bn_stats='running' is not accepted; "
                                         r"accepted: one of \['ft', 'interpolate'\]$"):
        make_method("roft-mol", {"bn_stats": "running"})
    with pytest.raises(ValueError, match=r"^roft-mol.groups=0 is not accepted; accepted: an integer from 1 to 1,000$"):
        make_method("roft-mol", {"groups": 0})


# ----------------------------------------------------------------------------- tying and groups

@pytest.mark.parametrize("groups, expected", [
    (1, (0, 0, 0, 0, 0, 0)),
    (2, (0, 0, 0, 0, 1, 1)),
    (3, (0, 0, 0, 1, 1, 2)),
    (6, (0, 1, 2, 3, 4, 5)),
])
def test_tying_of_a_five_layer_gnn_follows_the_protocol(groups, expected):
    """The tying of the 6 layer groups of a 5-layer GNN (docs/protocol.md, RoFt-Mol)."""
    assert tying(groups, 5) == expected


def test_tying_of_other_depths():
    """One alpha, or one per group, for depths other than 5."""
    assert tying(1, 3) == (0, 0, 0, 0)
    assert tying(4, 3) == (0, 1, 2, 3)
    assert tying(3, 2) == (0, 1, 2)


@pytest.mark.parametrize("groups, layers", [(2, 3), (3, 3), (6, 3), (4, 5)])
def test_tying_rejects_groups_that_do_not_fit(groups, layers):
    """A group count the depth cannot be tied to is an error naming it and what is accepted."""
    with pytest.raises(ValueError) as info:
        tying(groups, layers)
    message = str(info.value)
    assert message.startswith(f"roft-mol.groups={groups} is not accepted for a {layers}-layer GNN; accepted: 1 or "
                              f"{layers + 1}")


def test_roft_mol_groups_two_on_a_three_layer_gnn_is_an_error(regression_data):
    """Setting up RoFt-Mol with groups=2 on a 3-layer GNN fails before any training."""
    shape = GNNShape("gin", 3, 8)
    parent_state = clone(predictor(shape).state_dict())
    with pytest.raises(ValueError, match=r"roft-mol.groups=2 is not accepted for a 3-layer GNN; accepted: 1 or 4"):
        fit_dependant(make_method("roft-mol", {"groups": 2, "epochs": 1}), regression_data, parent_state,
                      shape=shape)


def test_groups_the_tying_error_names_as_accepted_are_accepted(regression_data):
    """A per-group RoFt-Mol on a 3-layer GNN (the count tying() advertises) can be configured."""
    with pytest.raises(ValueError, match="accepted: 1 or 4"):
        tying(2, 3)
    shape = GNNShape("gin", 3, 8)
    parent_state = clone(predictor(shape).state_dict())
    method = make_method("roft-mol", {"groups": 4, "epochs": 1})
    _, _, result = fit_dependant(method, regression_data, parent_state, shape=shape)
    assert len(result.summary["alphas"]) == 4


@pytest.mark.parametrize("key, group", [
    ("gnn.x_embedding1.weight", 0),
    ("gnn.x_embedding2.weight", 0),
    ("gnn.gnns.0.mlp.0.weight", 1),
    ("gnn.gnns.0.edge_embedding1.weight", 1),
    ("gnn.batch_norms.0.running_mean", 1),
    ("gnn.batch_norms.0.num_batches_tracked", 1),
    ("gnn.gnns.4.mlp.2.bias", 5),
    ("gnn.batch_norms.4.weight", 5),
    ("gnn.gnns.3.linear.weight", 4),
    ("graph_pred_linear.weight", None),
    ("graph_pred_linear.bias", None),
])
def test_layer_group_of_state_keys(key, group):
    """Atom embeddings are group 0, layer i (convolution and BatchNorm) is i + 1, the head has none."""
    assert layer_group(key, ENCODER) == group


@pytest.mark.parametrize("key, message", [
    ("gnn.pool.weight", "state key 'pool.weight' belongs to no layer"),
    ("gnn.gnns.weight", "state key 'gnns.weight' belongs to no layer"),
    ("gnn.gnns.5.mlp.0.weight", "state key 'gnns.5.mlp.0.weight' belongs to no layer"),  # a 6th layer of 5
    ("head.weight", "state key 'head.weight' belongs to no interpolation group"),
])
def test_layer_group_rejects_unknown_keys(key, message):
    """A key outside the GraphPredictor layout is an error naming it."""
    with pytest.raises(ValueError, match=re.escape(message)):
        layer_group(key, ENCODER)


def test_every_graph_predictor_key_has_a_group():
    """Each key of a 5-layer predictor maps to its layer's group; groups 0..5 are all used."""
    keys = predictor().state_dict().keys()
    groups = {key: layer_group(key, ENCODER) for key in keys}
    assert {g for g in groups.values() if g is not None} == set(range(6))
    assert [k for k, g in groups.items() if g is None] == ["graph_pred_linear.weight", "graph_pred_linear.bias"]


@pytest.mark.parametrize("groups, alphas, ft_layers", [
    (2, [0.0, 1.0], {3, 4}),
    (3, [0.0, 1.0, 0.0], {2, 3}),
    (6, [1.0, 0.0, 1.0, 0.0, 0.0, 0.0], {"embedding", 1}),
])
def test_interpolated_predictor_applies_each_alpha_to_its_groups(groups, alphas, ft_layers):
    """With alphas of 0 and 1, each layer's weights are exactly theta_pre or theta_ft as tied."""
    pre, ft = clone(predictor(seed=1).state_dict()), clone(predictor(seed=2).state_dict())
    model = predictor(seed=3)
    wrapped = InterpolatedPredictor(model, pre, ft, tying(groups, 5), groups, 0.5, "interpolate")
    assert len(wrapped.alphas) == groups and all(float(a) == 0.5 for a in wrapped.alphas)
    with torch.no_grad():
        for alpha, value in zip(wrapped.alphas, alphas):
            alpha.copy_(torch.tensor(value))
    state = wrapped.current_state()
    for key, value in state.items():
        if key.startswith("graph_pred_linear.") or key.endswith("num_batches_tracked"):
            source = ft
        else:
            group = layer_group(key, ENCODER)
            source = ft if ("embedding" if group == 0 else group - 1) in ft_layers else pre
        assert torch.equal(value, source[key]), key


def test_interpolated_predictor_is_differentiable_in_every_alpha(hand_dataset):
    """The forward pass differentiates into each alpha and into no wrapped parameter."""
    pre, ft = clone(predictor(seed=1).state_dict()), clone(predictor(seed=2).state_dict())
    model = predictor(seed=3)
    wrapped = InterpolatedPredictor(model, pre, ft, tying(6, 5), 6, 0.5, "interpolate")
    wrapped.eval()
    wrapped(hand_dataset.batch(torch.arange(8))).logits.sum().backward()
    assert all(a.grad is not None and float(a.grad) != 0 for a in wrapped.alphas)
    assert all(p.grad is None for p in model.parameters())


# ----------------------------------------------------------------------------- parent checks

@pytest.mark.parametrize("name", ["wise-ft", "roft-mol"])
def test_interpolation_without_a_parent_is_an_error(regression_data, name):
    """A method that needs the Full-FT parent refuses to start without it."""
    with pytest.raises(ValueError, match=f"method {name} needs the state of its full-ft parent trial"):
        fit_dependant(make_method(name), regression_data, None)


@pytest.mark.parametrize("name", ["wise-ft", "roft-mol"])
def test_parent_with_another_layout_is_an_error_listing_the_differences(regression_data, parent, name):
    """Missing keys, unexpected keys and shape differences of the parent state are all listed."""
    bad = dict(parent.state)
    del bad["gnn.gnns.0.mlp.0.bias"]
    bad["gnn.extra.weight"] = torch.zeros(3)
    bad["graph_pred_linear.weight"] = torch.zeros(2, 8)
    with pytest.raises(ValueError) as info:
        fit_dependant(make_method(name, {"epochs": 1} if name == "roft-mol" else {}), regression_data, bad)
    message = str(info.value)
    assert "does not match the pre-trained model" in message
    assert "missing ['gnn.gnns.0.mlp.0.bias']" in message
    assert "unexpected ['gnn.extra.weight']" in message
    assert "graph_pred_linear.weight: (1, 8) vs (2, 8)" in message


@pytest.mark.parametrize("change", ["missing", "unexpected", "shape"])
def test_parent_layout_check_catches_each_difference_alone(regression_data, parent, change):
    """Each single layout difference is enough to stop WiSE-FT."""
    bad = dict(parent.state)
    if change == "missing":
        del bad["gnn.batch_norms.4.running_var"]
    elif change == "unexpected":
        bad["gnn.batch_norms.5.weight"] = torch.ones(8)
    else:
        bad["gnn.x_embedding2.weight"] = bad["gnn.x_embedding2.weight"][:, :4]
    with pytest.raises(ValueError, match="does not match the pre-trained model"):
        fit_dependant(make_method("wise-ft"), regression_data, bad)


# ----------------------------------------------------------------------------- RoFt-Mol as the reference code fits

@pytest.mark.parametrize("tied_updates, moves", [("once", [1, 1]), ("repeated", [4, 2])])
def test_roft_mol_tied_alphas_take_one_adam_step_or_one_per_layer_group(tied_updates, moves):
    """groups 2 ties [a0 a0 a0 a0 a1 a1]: tied_updates repeated steps a0 four times and a1 twice per
    optimizer step (Adam's first steps are lr * sign(gradient)), as the reference code on the CPU."""
    pre, ft = clone(predictor(seed=1).state_dict()), clone(predictor(seed=2).state_dict())
    method = make_method("roft-mol", {"groups": 2, "alpha_lr": 0.01, "tied_updates": tied_updates})
    method._repeats = [tying(2, 5).count(group) for group in range(2)]
    wrapped = InterpolatedPredictor(predictor(seed=3), pre, ft, tying(2, 5), 2, 0.5, "ft")
    ctx = MethodContext(model=wrapped, pretrained_state=None)
    optimizer = torch.optim.Adam(list(wrapped.alphas), lr=0.01)
    for alpha in wrapped.alphas:
        alpha.grad = torch.tensor(1.0)
    method.optimizer_step(ctx, Stage("alpha", 1), optimizer)
    for alpha, steps in zip(wrapped.alphas, moves):
        assert float(alpha) == pytest.approx(0.5 - 0.01 * steps, abs=1e-6)
        assert int(optimizer.state[alpha]["step"]) == steps
        assert float(alpha.grad) == 1.0  # the gradients are left as they were


def test_roft_mol_train_mode_moves_the_running_statistics(regression_data, parent):
    """bn_mode train (the reference's): BatchNorm normalises with batch statistics while the alphas fit
    and its running statistics drift from theta_ft's; the best state carries the drifted statistics
    and the interpolated weights; bn_mode eval keeps theta_ft's statistics."""
    params = {"groups": 6, "alpha_lr": 0.0, "epochs": 2, "alpha_init": 0.5, "bn_stats": "ft"}
    _, _, train = fit_dependant(make_method("roft-mol", params), regression_data, parent.state)
    _, _, frozen = fit_dependant(make_method("roft-mol", {**params, "bn_mode": "eval"}), regression_data,
                                 parent.state)
    key = "gnn.batch_norms.2.running_mean"
    assert torch.equal(frozen.best_state[key], parent.state[key])
    assert not torch.equal(train.best_state[key], parent.state[key])
    assert int(train.best_state["gnn.batch_norms.2.num_batches_tracked"]) > \
        int(parent.state["gnn.batch_norms.2.num_batches_tracked"])
    at = torch.tensor([0.5] * 6, dtype=torch.float32)
    expected = interpolated_state(parent.pre, parent.state, lambda g: at[g], "ft", ENCODER)
    weight = "gnn.gnns.2.mlp.0.weight"
    assert torch.equal(train.best_state[weight], expected[weight])
    assert [r.val for r in train.history] != [r.val for r in frozen.history]
