import dataclasses

import numpy as np
import pytest
import torch

from tests.unit.trainables.training.fused.conftest import DEVICES
from trainables.data.tasks import TaskType
from trainables.models.gnn import GNNShape
from trainables.models.predictor import GraphPredictor
from trainables.training.fused.batching import DeviceGraphs
from trainables.training.fused.model import FUSABLE_GNN_TYPES, FusionError, StackedPredictors
from trainables.training.metrics import task_loss

IDS = [np.array([1, 2, 3, 30]), np.array([50, 9, 11, 12]), np.array([70, 71, 72])]


def predictors(gnn_type: str, dtype=torch.float32, dropout=0.5) -> list[GraphPredictor]:
    models = []
    for seed in range(len(IDS)):
        torch.manual_seed(seed)
        model = GraphPredictor(GNNShape(gnn_type, 3, 8, dropout), 2).to(dtype)
        for norm in model.gnn.batch_norms:  # non-trivial running statistics
            norm.running_mean.uniform_(-0.5, 0.5)
            norm.running_var.uniform_(0.5, 2.0)
        models.append(model)
    return models


def two_task(molecules):
    return dataclasses.replace(molecules, y=torch.cat([molecules.y, 1 - molecules.y], dim=1))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("gnn_type", FUSABLE_GNN_TYPES)
def test_eval_forward_equals_each_unfused_model(molecules, gnn_type, device):
    data = two_task(molecules)
    models = [m.to(device).eval() for m in predictors(gnn_type)]
    fused = StackedPredictors(models).to(device)
    logits = fused(DeviceGraphs(data, device).assemble(IDS), training=False).logits
    for k, (model, ids) in enumerate(zip(models, IDS)):
        expected = model(data.batch(torch.from_numpy(ids)).to(device)).logits
        torch.testing.assert_close(logits[k, :len(ids)], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("gnn_type", FUSABLE_GNN_TYPES)
def test_training_forward_and_gradients_equal_each_unfused_model(molecules, gnn_type):
    """Same dropout masks (each trial's own generator) and, per trial, exactly its own gradient."""
    data = two_task(molecules)
    models = predictors(gnn_type, torch.float64)
    fused = StackedPredictors(models)
    generators = [torch.Generator().manual_seed(100 + k) for k in range(len(models))]
    batch = DeviceGraphs(data, "cpu").assemble(IDS)
    losses = task_loss(TaskType.CLASSIFICATION, fused(batch, training=True, dropout_generators=generators).logits,
                       batch.y)
    losses.sum().backward()
    for k, (model, ids) in enumerate(zip(models, IDS)):
        model.train()
        torch.manual_seed(100 + k)  # the unfused model's dropout draws from the global generator
        single = data.batch(torch.from_numpy(ids))
        loss = task_loss(TaskType.CLASSIFICATION, model(single).logits, single.y)
        loss.backward()
        torch.testing.assert_close(losses[k], loss, rtol=1e-12, atol=1e-12)
        for name, parameter in model.named_parameters():
            torch.testing.assert_close(fused.stacked(name).grad[k], parameter.grad, rtol=1e-9, atol=1e-12,
                                       msg=lambda m: f"{name}: {m}")
        for name, buffer in model.named_buffers():  # BatchNorm running statistics moved identically
            torch.testing.assert_close(fused.stacked(name)[k], buffer, rtol=1e-12, atol=1e-12)


def test_trial_state_loads_into_a_graph_predictor():
    models = predictors("gin")
    fused = StackedPredictors(models)
    for k, model in enumerate(models):
        state = fused.trial_state(k)
        assert list(state) == list(model.state_dict())
        fresh = GraphPredictor(GNNShape("gin", 3, 8, 0.5), 2)
        fresh.load_state_dict(state, strict=True)
        for name, value in model.state_dict().items():
            assert torch.equal(fresh.state_dict()[name], value)


def test_csr_for_gat_and_mixed_architectures_are_refused():
    with pytest.raises(FusionError, match="aggregation 'csr' does not apply to GAT"):
        StackedPredictors([GraphPredictor(GNNShape("gat", 2, 8), 1)], aggregation="csr")
    with pytest.raises(FusionError, match="architecture"):
        StackedPredictors([GraphPredictor(GNNShape("gin", 2, 8), 1), GraphPredictor(GNNShape("gin", 3, 8), 1)])
    with pytest.raises(FusionError, match="architecture"):
        StackedPredictors([GraphPredictor(GNNShape("gin", 2, 8), 1), GraphPredictor(GNNShape("gin", 2, 8), 2)])


def test_training_without_generators_is_an_error(molecules):
    fused = StackedPredictors(predictors("gin"))
    with pytest.raises(FusionError, match="generator"):
        fused(DeviceGraphs(molecules, "cpu").assemble(IDS), training=True)
