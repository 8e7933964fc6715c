"""trainables.methods.partial: what Surgical FT, LP and LP-FT train, and LP-FT's two stages."""

from __future__ import annotations

import pytest
import torch

from tests.unit.trainables.hand_molecules import TEST, TRAIN, VALID
from trainables.core.config import TrainingRecipe
from trainables.data.tasks import TaskType
from trainables.methods import METHODS, HyperParameter, MethodContext, Stage, make_method
from trainables.models.gnn import GNNShape
from trainables.models.predictor import GraphPredictor
from trainables.training.trainer import SplitIndices, fit

SHAPE = GNNShape("gin", 3, 8)
RECIPE = TrainingRecipe(epochs=2, batch_size=4, lr=1e-2)
CPU = torch.device("cpu")
STATISTICS = ("running_mean", "running_var", "num_batches_tracked")


def split() -> SplitIndices:
    return SplitIndices(torch.tensor(TRAIN), torch.tensor(VALID), torch.tensor(TEST))


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def run(method, data, seed: int = 0, recipe: TrainingRecipe = RECIPE, shape: GNNShape = SHAPE):
    torch.manual_seed(seed)
    model = GraphPredictor(shape, data.num_tasks)
    before = snapshot(model)
    ctx = MethodContext(model=model, pretrained_state=None, seed=seed)
    result = fit(ctx, method, data, split(), TaskType.CLASSIFICATION, True, recipe,
                 torch.Generator().manual_seed(seed), CPU)
    return model, before, result


def moved(before: dict, after: dict) -> set[str]:
    return {k for k in before if not torch.equal(before[k], after[k])}


def head_of(state: dict) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in state.items() if k.startswith("graph_pred_linear.")}


def in_layer(key: str, layer: int) -> bool:
    return key.startswith((f"gnn.gnns.{layer}.", f"gnn.batch_norms.{layer}."))


# ----------------------------------------------------------------------------- Surgical FT

@pytest.mark.parametrize("train_batch_norm", [False, True])
@pytest.mark.parametrize("layer", [0, 1, 2])
def test_surgical_ft_trains_one_layer_and_the_head(hand_dataset, layer, train_batch_norm):
    """Only gnns.i (and batch_norms.i's affine parameters with train_batch_norm) and the head change
    weights; every layer's BN statistics still move (reference behaviour)."""
    model, before, _ = run(make_method("surgical-ft", {"layer": layer, "train_batch_norm": train_batch_norm}),
                           hand_dataset)
    after = snapshot(model)
    changed = moved(before, after)
    statistics = {k for k in before if k.rsplit(".", 1)[-1] in STATISTICS}
    tuned = {k for k in before if k.startswith((f"gnn.gnns.{layer}.", "graph_pred_linear."))
             or (train_batch_norm and k.startswith(f"gnn.batch_norms.{layer}."))}
    assert tuned - statistics <= changed, sorted(tuned - statistics - changed)  # every tuned tensor moves
    assert changed - tuned <= statistics, sorted(changed - tuned - statistics)  # no other weight moves
    assert not any(k.startswith("gnn.x_embedding") for k in changed)
    for any_layer in range(3):  # reference behaviour: BN statistics move in every layer
        assert f"gnn.batch_norms.{any_layer}.running_mean" in changed
        assert int(after[f"gnn.batch_norms.{any_layer}.num_batches_tracked"]) == 2 * 4
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {k for k in tuned - statistics}


@pytest.mark.parametrize("train_batch_norm", [False, True])
@pytest.mark.parametrize("layer", [0, 2])
def test_surgical_ft_freeze_bn_stats_keeps_every_other_backbone_tensor(hand_dataset, layer, train_batch_norm):
    """With freeze_bn_stats, every backbone tensor outside what trains is bitwise unchanged (layer i's
    BatchNorm statistics move only when its BatchNorm trains)."""
    model, before, _ = run(make_method("surgical-ft", {"layer": layer, "freeze_bn_stats": True,
                                                       "train_batch_norm": train_batch_norm}), hand_dataset)
    after = snapshot(model)
    changed = moved(before, after)
    assert {k for k in changed if not k.startswith("graph_pred_linear.")} == \
        {k for k in before if k.startswith(f"gnn.gnns.{layer}.")
         or (train_batch_norm and k.startswith(f"gnn.batch_norms.{layer}."))}
    assert int(after[f"gnn.batch_norms.{layer}.num_batches_tracked"]) == (2 * 4 if train_batch_norm else 0)


def test_surgical_ft_set_train_mode():
    """The BatchNorms that do not train go to eval mode, and only with freeze_bn_stats."""
    torch.manual_seed(0)
    model = GraphPredictor(SHAPE, 1)
    ctx = MethodContext(model=model, pretrained_state=None)
    make_method("surgical-ft", {"layer": 1}).set_train_mode(ctx, Stage("finetune", 1))
    assert all(m.training for m in model.modules())
    make_method("surgical-ft", {"layer": 1, "freeze_bn_stats": True}).set_train_mode(ctx, Stage("finetune", 1))
    assert [bn.training for bn in model.gnn.batch_norms] == [False, False, False]
    make_method("surgical-ft", {"layer": 1, "freeze_bn_stats": True, "train_batch_norm": True}).set_train_mode(
        ctx, Stage("finetune", 1))
    assert [bn.training for bn in model.gnn.batch_norms] == [False, True, False]
    assert model.training and all(conv.training for conv in model.gnn.gnns)


@pytest.mark.parametrize("layer", [3, 7])
def test_surgical_ft_layer_out_of_range(hand_dataset, layer):
    """A layer the GNN does not have is an error naming the value and the accepted range."""
    with pytest.raises(ValueError, match=rf"^surgical-ft.layer={layer} is not accepted for this 3-layer encoder; "
                                         rf"accepted: 0..2 \(layer 0, layer 1, layer 2\)$"):
        run(make_method("surgical-ft", {"layer": layer}), hand_dataset)


def test_surgical_ft_negative_layer_is_rejected():
    """layer has a minimum of 0."""
    with pytest.raises(ValueError, match=r"^surgical-ft.layer=-1 is not accepted; accepted: an integer from 0 to 99$"):
        make_method("surgical-ft", {"layer": -1})


def test_integer_hyper_parameter_rejects_fractional_values():
    """A fractional value for an integer hyper-parameter is refused, not truncated."""
    with pytest.raises(ValueError, match=r"surgical-ft.layer=1.5 is not accepted"):
        make_method("surgical-ft", {"layer": 1.5})


# ----------------------------------------------------------------------------- LP

def test_linear_probe_freeze_bn_stats_on_a_deeper_gnn(hand_dataset):
    """LP with frozen BN statistics leaves every backbone tensor of a 3-layer GNN unchanged."""
    model, before, _ = run(make_method("lp", {"freeze_bn_stats": True}), hand_dataset)
    assert moved(before, snapshot(model)) == {"graph_pred_linear.weight", "graph_pred_linear.bias"}


# ----------------------------------------------------------------------------- LP-FT

class _Watched(METHODS.get("lp-ft")):
    """LP-FT recording the head when each stage ends and when the FT stage starts."""

    def __init__(self, **params):
        super().__init__(**params)
        self.last_lp_head = self.best_lp_head = self.ft_start_head = None
        self.lp_backbone_end = None

    def set_train_mode(self, ctx, stage):
        if stage.name == "ft" and self.ft_start_head is None:
            self.ft_start_head = head_of(ctx.model.state_dict())
        super().set_train_mode(ctx, stage)

    def end_stage(self, ctx, stage, best_state):
        if stage.name == "lp":
            self.last_lp_head = head_of(ctx.model.state_dict())
            self.best_lp_head = head_of(best_state)
            self.lp_backbone_end = {k: v.clone() for k, v in ctx.model.state_dict().items() if k.startswith("gnn.")}
        super().end_stage(ctx, stage, best_state)


LP_FT_RECIPE = TrainingRecipe(epochs=2, batch_size=4, lr=3e-2)  # seed 0: the best LP epoch is the first of 4


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_lp_ft_starts_ft_from_the_best_validation_lp_head(hand_dataset):
    """The FT stage starts from the head of the LP stage's best-validation epoch."""
    method = _Watched(lp_epochs=4, ft_epochs=2)
    _, _, result = run(method, hand_dataset, recipe=LP_FT_RECIPE, shape=GNNShape("gin", 2, 16))
    lp_vals = [r.val for r in result.history if r.stage == "lp"]
    assert lp_vals.index(max(lp_vals)) != len(lp_vals) - 1  # the best LP epoch is not the last one
    assert not states_equal(method.best_lp_head, method.last_lp_head)
    assert states_equal(method.ft_start_head, method.best_lp_head)


def test_lp_ft_copy_best_head_false_continues_from_the_last_lp_head(hand_dataset):
    """copy_best_head=False (reference code) starts FT from the last LP head."""
    method = _Watched(lp_epochs=4, ft_epochs=2, copy_best_head=False)
    _, _, result = run(method, hand_dataset, recipe=LP_FT_RECIPE, shape=GNNShape("gin", 2, 16))
    assert not states_equal(method.best_lp_head, method.last_lp_head)
    assert states_equal(method.ft_start_head, method.last_lp_head)


def test_lp_ft_reports_only_ft_epochs(hand_dataset):
    """The LP stage is not selectable: the best epoch is an FT epoch even when an LP epoch validates as well."""
    _, _, result = run(make_method("lp-ft", {"lp_epochs": 4, "ft_epochs": 2}), hand_dataset, recipe=LP_FT_RECIPE,
                       shape=GNNShape("gin", 2, 16))
    assert [r.stage for r in result.history] == ["lp"] * 4 + ["ft"] * 2
    assert [r.epoch for r in result.history] == [1, 2, 3, 4, 5, 6]
    lp_best = max(r.val for r in result.history if r.stage == "lp")
    ft_best = max(r.val for r in result.history if r.stage == "ft")
    assert lp_best >= ft_best  # ties keep the earliest epoch: an LP epoch would win if it were selectable
    assert result.best_stage == "ft" and result.best_epoch > 4 and result.val == ft_best


def test_lp_ft_stage_lengths(hand_dataset):
    """lp_epochs and ft_epochs set each stage's length; null follows the recipe's epochs."""
    assert make_method("lp-ft").stages(7) == [Stage("lp", 7, selectable=False), Stage("ft", 7)]
    assert make_method("lp-ft", {"lp_epochs": 3}).stages(7) == [Stage("lp", 3, selectable=False), Stage("ft", 7)]
    assert make_method("lp-ft", {"ft_epochs": 2}).stages(7) == [Stage("lp", 7, selectable=False), Stage("ft", 2)]
    _, _, default = run(make_method("lp-ft"), hand_dataset)
    assert [r.stage for r in default.history] == ["lp", "lp", "ft", "ft"]
    _, _, custom = run(make_method("lp-ft", {"lp_epochs": 3, "ft_epochs": 1}), hand_dataset)
    assert [r.stage for r in custom.history] == ["lp", "lp", "lp", "ft"]


def test_lp_ft_trains_the_head_then_everything(hand_dataset):
    """The LP stage moves no backbone weight; the FT stage moves the backbone."""
    method = _Watched(lp_epochs=2, ft_epochs=2, freeze_bn_stats=True)
    model, before, _ = run(method, hand_dataset)
    backbone_before = {k: v for k, v in before.items() if k.startswith("gnn.")}
    assert states_equal(method.lp_backbone_end, backbone_before)  # frozen BN statistics: nothing moved
    assert not states_equal(method.last_lp_head, head_of(before))
    after = snapshot(model)
    assert "gnn.gnns.0.mlp.0.weight" in moved(before, after)
    assert all(p.requires_grad for p in model.parameters())


def test_lp_ft_lp_stage_moves_bn_statistics_by_default(hand_dataset):
    """Without freeze_bn_stats the frozen GNN's BatchNorm statistics move during LP, its weights do not."""
    method = _Watched(lp_epochs=2, ft_epochs=1)
    _, before, _ = run(method, hand_dataset)
    changed = {k for k, v in method.lp_backbone_end.items() if not torch.equal(v, before[k])}
    assert changed and all(k.rsplit(".", 1)[-1] in STATISTICS for k in changed)


# ----------------------------------------------------------------------------- nullable hyper-parameters

def test_nullable_hyper_parameter_accepts_none():
    """None is accepted as such when nullable; other values are still validated."""
    epochs = HyperParameter(int, None, "epochs (null: the recipe's)", minimum=1, nullable=True)
    assert epochs.validate("m.epochs", None) is None
    assert epochs.validate("m.epochs", "3") == 3
    with pytest.raises(ValueError, match=r"^m.epochs=0 is not accepted; accepted: an int >= 1 or null$"):
        epochs.validate("m.epochs", 0)
    with pytest.raises(ValueError, match=r"^m.epochs='x' is not accepted; accepted: an int >= 1 or null$"):
        epochs.validate("m.epochs", "x")


def test_non_nullable_hyper_parameter_refuses_none():
    """None is an error when not nullable, and the message does not offer null."""
    strength = HyperParameter(float, 1e-2, "strength", minimum=0.0)
    with pytest.raises(ValueError) as info:
        strength.validate("m.d", None)
    assert str(info.value) == "m.d=None is not accepted; accepted: a float >= 0.0"
    choice = HyperParameter(str, "a", "choice", choices=("a", "b"))
    with pytest.raises(ValueError, match=r"^m.c=None is not accepted; accepted: one of \['a', 'b'\]$"):
        choice.validate("m.c", None)


def test_nullable_choices_mention_null():
    """A nullable hyper-parameter with choices lists them and null."""
    mode = HyperParameter(str, None, "mode", choices=("x", "y"), nullable=True)
    assert mode.validate("m.mode", None) is None and mode.validate("m.mode", "y") == "y"
    with pytest.raises(ValueError, match=r"^m.mode='z' is not accepted; accepted: one of \['x', 'y'\] or null$"):
        mode.validate("m.mode", "z")


def test_lp_ft_epochs_are_nullable():
    """lp_epochs/ft_epochs take null (the recipe's epochs) or an integer >= 1."""
    assert make_method("lp-ft", {"lp_epochs": None, "ft_epochs": None}).params == {
        "lp_epochs": None, "ft_epochs": None, "copy_best_head": True, "freeze_bn_stats": False}
    with pytest.raises(ValueError, match=r"^lp-ft.lp_epochs=0 is not accepted; accepted: an integer from 1 to 100,000 or null$"):
        make_method("lp-ft", {"lp_epochs": 0})
    with pytest.raises(ValueError, match=r"^lp-ft.copy_best_head=None is not accepted; "
                                         r"accepted: one of \[False, True\]$"):
        make_method("lp-ft", {"copy_best_head": None})
    assert make_method("lp-ft", {"copy_best_head": False}).label == "lp-ft[copy_best_head=False]"
