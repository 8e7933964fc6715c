"""trainables.methods: registry, hyper-parameter validation, what full-ft and lp train."""

from __future__ import annotations

import pytest
import torch

from tests.unit.trainables.hand_molecules import TEST, TRAIN, VALID
from trainables.core.config import TrainingRecipe
from trainables.core.registry import UnknownNameError
from trainables.data.tasks import TaskType
from trainables.methods import (
    METHODS,
    FineTuningMethod,
    HyperParameter,
    MethodContext,
    Stage,
    make_method,
    register_method,
)
from trainables.methods.base import MECHANISMS
from trainables.methods.partial import freeze_batch_norm_statistics
from trainables.models.gnn import GNNShape
from trainables.models.predictor import GraphPredictor
from trainables.training.trainer import SplitIndices, fit

SHAPE = GNNShape("gin", 2, 16)
RECIPE = TrainingRecipe(epochs=2, batch_size=4, lr=1e-2)


def split() -> SplitIndices:
    return SplitIndices(torch.tensor(TRAIN), torch.tensor(VALID), torch.tensor(TEST))


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def run(method: FineTuningMethod, data, seed: int = 0, recipe: TrainingRecipe = RECIPE):
    torch.manual_seed(seed)
    model = GraphPredictor(SHAPE, data.num_tasks)
    ctx = MethodContext(model=model, pretrained_state=None)
    before = snapshot(model)
    result = fit(ctx, method, data, split(), TaskType.CLASSIFICATION, True, recipe,
                 torch.Generator().manual_seed(seed), torch.device("cpu"))
    return model, before, result


def changed(before: dict, after: dict, prefix: str, kinds=("weight", "bias")) -> dict[str, bool]:
    return {k: not torch.equal(before[k], after[k]) for k in before
            if k.startswith(prefix) and k.rsplit(".", 1)[-1] in kinds}


# ----------------------------------------------------------------------------- registry and parameters

def test_registry_has_the_builtin_methods():
    assert {"full-ft", "lp"} <= set(METHODS.names())
    assert METHODS.get("full-ft").mechanism == "baseline" and METHODS.get("lp").mechanism == "partial"
    assert METHODS.get("lp").name == "lp" and METHODS.get("full-ft").hyperparameters == {}
    with pytest.raises(UnknownNameError, match="unknown method 'full_ft'.*did you mean 'full-ft'"):
        make_method("full_ft")


def test_defaults_and_label():
    lp = make_method("lp")
    assert lp.params == {"freeze_bn_stats": False}
    assert lp.label == "lp"
    frozen = make_method("lp", {"freeze_bn_stats": True})
    assert frozen.params == {"freeze_bn_stats": True}
    assert frozen.label == "lp[freeze_bn_stats=True]"
    assert make_method("full-ft", None).label == "full-ft"


@pytest.mark.parametrize("value", ["yes", 1, 0, None, "True"])
def test_bad_hyper_parameter_value_names_value_and_accepted(value):
    with pytest.raises(ValueError) as info:
        make_method("lp", {"freeze_bn_stats": value})
    assert str(info.value) == f"lp.freeze_bn_stats={value!r} is not accepted; accepted: one of [False, True]"


def test_unknown_hyper_parameter():
    with pytest.raises(ValueError, match=r"method lp: unknown hyper-parameter\(s\) \['alpha', 'freeze'\]; "
                                         r"accepted: freeze_bn_stats"):
        make_method("lp", {"freeze": True, "alpha": 0.1})
    with pytest.raises(ValueError, match=r"method full-ft: unknown hyper-parameter\(s\) \['lr'\]; accepted: none"):
        make_method("full-ft", {"lr": 0.1})


def test_hyper_parameter_validate():
    d = HyperParameter(float, 1e-2, "strength", minimum=0.0)
    assert d.validate("m.d", 1) == 1.0 and isinstance(d.validate("m.d", 1), float)
    assert d.validate("m.d", "0.5") == 0.5
    with pytest.raises(ValueError, match=r"m.d=-1 is not accepted; accepted: a float >= 0.0"):
        d.validate("m.d", -1)
    with pytest.raises(ValueError, match=r"m.d='x' is not accepted; accepted: a float >= 0.0"):
        d.validate("m.d", "x")
    with pytest.raises(ValueError, match=r"m.d=True is not accepted"):
        d.validate("m.d", True)  # a bool is not a number here
    epochs = HyperParameter(int, 200, "epochs", minimum=1, maximum=100_000)
    assert epochs.validate("m.epochs", 100_000) == 100_000
    for beyond in (100_001, 10**7, 2**1100):  # 2**1100: beyond float range, once accepted as an int
        with pytest.raises(ValueError, match=r"^m.epochs=.* is not accepted; accepted: an integer from 1 to 100,000$"):
            epochs.validate("m.epochs", beyond)
    layer = HyperParameter(int, 0, "layer", choices=(0, 1, 2))
    assert layer.validate("m.layer", 2) == 2
    with pytest.raises(ValueError, match=r"m.layer=3 is not accepted; accepted: one of \[0, 1, 2\]"):
        layer.validate("m.layer", 3)


def test_register_method_checks_mechanism_and_duplicates():
    with pytest.raises(ValueError, match=r"method weird: mechanism 'magic' not in"):
        @register_method("weird")
        class Weird(FineTuningMethod):
            mechanism = "magic"
    assert "weird" not in METHODS
    assert MECHANISMS == ("baseline", "partial", "weight", "representation")
    with pytest.raises(ValueError, match="method 'lp' is already registered"):
        @register_method("lp")
        class AnotherLP(FineTuningMethod):
            mechanism = "partial"
    assert METHODS.get("lp").__name__ == "LinearProbe"


def test_base_hooks():
    model = GraphPredictor(SHAPE, 1)
    ctx = MethodContext(model=model, pretrained_state=None)
    method = make_method("full-ft")
    assert method.stages(7) == [Stage("finetune", 7)]
    assert method.trainable_parameters(ctx, Stage("finetune", 1)) == list(model.parameters())
    model.eval()
    method.set_train_mode(ctx, Stage("finetune", 1))
    assert model.training and model.gnn.batch_norms[0].training
    lp = make_method("lp")
    assert [id(p) for p in lp.trainable_parameters(ctx, Stage("finetune", 1))] == [
        id(model.graph_pred_linear.weight), id(model.graph_pred_linear.bias)]


def test_freeze_batch_norm_statistics_only_touches_batch_norms():
    model = GraphPredictor(SHAPE, 1)
    model.train()
    freeze_batch_norm_statistics(model.gnn)
    assert not any(bn.training for bn in model.gnn.batch_norms)
    assert model.training and model.gnn.training and model.gnn.gnns[0].training


# ----------------------------------------------------------------------------- what trains

def test_linear_probe_trains_only_the_head(hand_dataset):
    model, before, _ = run(make_method("lp"), hand_dataset)
    after = snapshot(model)
    for key in before:
        if key.startswith("gnn.") and not key.endswith(("running_mean", "running_var", "num_batches_tracked")):
            assert torch.equal(before[key], after[key]), f"{key} moved under linear probing"
    assert not torch.equal(before["graph_pred_linear.weight"], after["graph_pred_linear.weight"])
    assert not torch.equal(before["graph_pred_linear.bias"], after["graph_pred_linear.bias"])
    # as the reference code: the frozen GNN's BatchNorm statistics still move
    assert not torch.equal(before["gnn.batch_norms.0.running_mean"], after["gnn.batch_norms.0.running_mean"])
    assert int(after["gnn.batch_norms.1.num_batches_tracked"]) == 2 * 4  # 2 epochs x ceil(14 / 4) batches


def test_linear_probe_freeze_bn_stats_keeps_running_statistics(hand_dataset):
    model, before, _ = run(make_method("lp", {"freeze_bn_stats": True}), hand_dataset)
    after = snapshot(model)
    for key in before:
        if key.startswith("gnn."):
            assert torch.equal(before[key], after[key]), f"{key} moved with freeze_bn_stats=True"
    assert not torch.equal(before["graph_pred_linear.weight"], after["graph_pred_linear.weight"])


def test_linear_probe_leaves_the_gnn_frozen_and_head_trainable(hand_dataset):
    model, _, _ = run(make_method("lp"), hand_dataset)
    assert not any(p.requires_grad for p in model.gnn.parameters())
    assert all(p.requires_grad for p in model.graph_pred_linear.parameters())


def test_full_fine_tuning_trains_everything(hand_dataset):
    model, before, _ = run(make_method("full-ft"), hand_dataset)
    after = snapshot(model)
    moved = changed(before, after, "gnn.")
    moved.pop("gnn.x_embedding1.weight")  # only some rows are used, but the tensor moves
    assert all(moved.values()), [k for k, v in moved.items() if not v]
    assert not torch.equal(before["gnn.x_embedding1.weight"], after["gnn.x_embedding1.weight"])
    assert not torch.equal(before["graph_pred_linear.weight"], after["graph_pred_linear.weight"])
    assert all(p.requires_grad for p in model.parameters())
