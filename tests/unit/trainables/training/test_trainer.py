"""trainables.training.trainer: model selection on validation, determinism, method hooks, stages."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.unit.trainables.hand_molecules import HAND_SMILES, TEST, TRAIN, VALID, make_dataset
from trainables.core.config import TrainingRecipe
from trainables.data.tasks import TaskType
from trainables.methods import FineTuningMethod, MethodContext, Stage, make_method
from trainables.models.gnn import GNNShape
from trainables.models.predictor import GraphPredictor
from trainables.training.metrics import evaluate_metric
from trainables.training.trainer import SplitIndices, eval_batch_size, fit, predict

SHAPE = GNNShape("gin", 2, 16)
CPU = torch.device("cpu")


def split() -> SplitIndices:
    return SplitIndices(torch.tensor(TRAIN), torch.tensor(VALID), torch.tensor(TEST))


def run(data, method=None, seed=0, recipe=TrainingRecipe(epochs=4, batch_size=4, lr=1e-2),
        task_type=TaskType.CLASSIFICATION, higher=True, on_epoch=None, indices=None):
    torch.manual_seed(seed)
    model = GraphPredictor(SHAPE, data.num_tasks)
    ctx = MethodContext(model=model, pretrained_state=None)
    result = fit(ctx, method or make_method("full-ft"), data, indices or split(), task_type, higher, recipe,
                 torch.Generator().manual_seed(seed), CPU, on_epoch)
    return model, result


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_recipe_defaults_are_the_papers():
    assert TrainingRecipe() == TrainingRecipe(epochs=100, batch_size=32, lr=1e-3, weight_decay=0.0, dropout=0.5)


def test_fit_returns_the_best_validation_epoch(hand_dataset):
    snapshots = []
    model_holder = {}

    def on_epoch(record):
        snapshots.append({k: v.detach().clone() for k, v in model_holder["model"].state_dict().items()})

    torch.manual_seed(0)
    model = GraphPredictor(SHAPE, 1)
    model_holder["model"] = model
    ctx = MethodContext(model=model, pretrained_state=None)
    result = fit(ctx, make_method("full-ft"), hand_dataset, split(), TaskType.CLASSIFICATION, True,
                 TrainingRecipe(epochs=6, batch_size=4, lr=3e-2), torch.Generator().manual_seed(0), CPU, on_epoch)
    vals = [r.val for r in result.history]
    assert [r.epoch for r in result.history] == [1, 2, 3, 4, 5, 6]
    assert len(snapshots) == 6
    best = int(np.argmax(vals))  # first maximum: ties keep the earlier epoch
    assert result.best_epoch == best + 1 and result.best_stage == "finetune"
    assert result.val == vals[best] and result.test == result.history[best].test
    assert result.val_score.value == result.val and result.test_score.value == result.test
    assert states_equal(result.best_state, snapshots[best])
    # the stored state reproduces the reported metrics
    check = GraphPredictor(SHAPE, 1)
    check.load_state_dict(result.best_state)
    for part, metric in ((VALID, result.val), (TEST, result.test)):
        index = torch.tensor(part)
        outputs = predict(check, hand_dataset, index, CPU)
        assert evaluate_metric(TaskType.CLASSIFICATION, hand_dataset.y[index].numpy(), outputs).value == metric
    assert all(r.val_tasks_skipped == 0 and r.test_tasks_skipped == 0 for r in result.history)


def test_ties_keep_the_earliest_epoch(hand_dataset):
    # lr 0 and frozen BN statistics: the model never changes, so every epoch ties
    recipe = TrainingRecipe(epochs=3, batch_size=4, lr=0.0)
    _, result = run(hand_dataset, make_method("lp", {"freeze_bn_stats": True}), recipe=recipe)
    assert len({r.val for r in result.history}) == 1
    assert result.best_epoch == 1


def test_regression_selects_the_lowest_rmse():
    data = make_dataset(HAND_SMILES, np.linspace(-2.0, 3.0, 20))
    _, result = run(data, task_type=TaskType.REGRESSION, higher=False,
                    recipe=TrainingRecipe(epochs=5, batch_size=4, lr=3e-2))
    vals = [r.val for r in result.history]
    assert result.best_epoch == int(np.argmin(vals)) + 1
    assert all(np.isfinite(r.train_loss) for r in result.history)


def test_same_seed_is_bitwise_identical(hand_dataset):
    _, a = run(hand_dataset, seed=3)
    _, b = run(hand_dataset, seed=3)
    assert [(r.train_loss, r.val, r.test) for r in a.history] == [(r.train_loss, r.val, r.test) for r in b.history]
    assert (a.best_epoch, a.val, a.test) == (b.best_epoch, b.val, b.test)
    assert states_equal(a.best_state, b.best_state)
    _, c = run(hand_dataset, seed=4)
    assert [r.train_loss for r in c.history] != [r.train_loss for r in a.history]


def test_best_state_is_a_detached_cpu_copy(hand_dataset):
    model, result = run(hand_dataset, recipe=TrainingRecipe(epochs=2, batch_size=4, lr=1e-2))
    live = model.state_dict()
    for key, value in result.best_state.items():
        assert value.data_ptr() != live[key].data_ptr()
        assert not value.requires_grad and value.device.type == "cpu"


def test_validation_without_both_classes_is_an_error():
    labels = [1, 0] * 7 + [1, 1, 1, 0, 1, 0]  # validation rows 14..16 hold class 1 only
    data = make_dataset(HAND_SMILES, labels)
    with pytest.raises(RuntimeError, match="no epoch produced a finite validation metric"):
        run(data, recipe=TrainingRecipe(epochs=2, batch_size=4))


class _Recorder(FineTuningMethod):
    """Two stages, a constant regulariser, gradients zeroed before the step, hooks recorded."""

    name = "recorder"
    mechanism = "baseline"

    def __init__(self, extra: float = 0.0, zero_grads: bool = False):
        super().__init__()
        self.extra, self.zero_grads, self.calls = extra, zero_grads, []

    def stages(self, epochs):
        return [Stage("first", epochs), Stage("second", epochs)]

    def regularizer(self, ctx, stage, batch, output):
        return None if self.extra == 0 else torch.tensor(self.extra)

    def before_step(self, ctx, stage, parameters):
        self.calls.append(("step", stage.name))
        if self.zero_grads:
            for p in parameters:
                p.grad = torch.zeros_like(p)

    def end_stage(self, ctx, stage, best_state):
        self.calls.append(("end", stage.name, best_state is not None))


def test_stages_hooks_and_regularizer(hand_dataset):
    recipe = TrainingRecipe(epochs=2, batch_size=4, lr=1e-2)
    plain = _Recorder()
    _, base = run(hand_dataset, plain, recipe=recipe)
    assert [(r.stage, r.epoch) for r in base.history] == [("first", 1), ("first", 2), ("second", 3), ("second", 4)]
    steps = [c for c in plain.calls if c[0] == "step"]
    assert steps == [("step", "first")] * 8 + [("step", "second")] * 8  # 2 epochs x 4 batches per stage
    assert [c for c in plain.calls if c[0] == "end"] == [("end", "first", True), ("end", "second", True)]
    # a constant regulariser adds exactly itself to the recorded loss and changes no gradient
    _, shifted = run(hand_dataset, _Recorder(extra=0.5), recipe=recipe)
    np.testing.assert_allclose([r.train_loss for r in shifted.history],
                               [r.train_loss + 0.5 for r in base.history], rtol=0, atol=1e-6)
    assert [r.val for r in shifted.history] == [r.val for r in base.history]


def test_before_step_sees_the_gradients(hand_dataset):
    recipe = TrainingRecipe(epochs=1, batch_size=4, lr=1e-2)
    torch.manual_seed(0)
    model = GraphPredictor(SHAPE, 1)
    before = {k: v.clone() for k, v in model.named_parameters()}
    method = _Recorder(zero_grads=True)
    fit(MethodContext(model=model, pretrained_state=None), method, hand_dataset, split(), TaskType.CLASSIFICATION,
        True, recipe, torch.Generator().manual_seed(0), CPU)
    for name, p in model.named_parameters():  # Adam with zero gradients (and no decay) does not move
        assert torch.equal(p.detach(), before[name]), name


def test_a_method_that_trains_nothing_is_an_error(hand_dataset):
    class Nothing(FineTuningMethod):
        name = "nothing"

        def trainable_parameters(self, ctx, stage):
            return []

    with pytest.raises(ValueError, match="selected no trainable parameters"):
        run(hand_dataset, Nothing(), recipe=TrainingRecipe(epochs=1))


def test_predict_in_eval_mode_and_in_chunks(hand_dataset):
    torch.manual_seed(0)
    model = GraphPredictor(GNNShape("gin", 2, 16, dropout=0.9), 1)
    model.train()
    index = torch.arange(20).repeat(eval_batch_size("cpu") // 20 + 2)  # more than one evaluation chunk
    out = predict(model, hand_dataset, index, CPU)
    assert not model.training and out.shape == (len(index), 1)
    np.testing.assert_allclose(out[:20], out[20:40], rtol=0, atol=1e-6)  # no dropout, no batch effects


def test_a_stage_that_keeps_its_order_fits_validation_in_the_split_order():
    """in_split_order gives valid in the split's own order where the split kept one, else the part."""
    from trainables.training.trainer import SplitIndices

    ordered = SplitIndices(torch.arange(3), torch.tensor([5, 6, 7]), torch.tensor([8]),
                           valid_order=torch.tensor([7, 5, 6]))
    assert ordered.in_split_order("valid").tolist() == [7, 5, 6]
    assert ordered.in_split_order("train").tolist() == [0, 1, 2]
    assert SplitIndices(torch.arange(3), torch.tensor([5, 6, 7]), torch.tensor([8])).in_split_order(
        "valid").tolist() == [5, 6, 7]
