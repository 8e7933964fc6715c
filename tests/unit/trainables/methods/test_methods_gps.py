"""Every fine-tuning method on a GPS encoder: Surgical FT by thirds, RoFt-Mol by GPS layer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.unit.trainables.hand_molecules import HAND_SMILES, TEST, TRAIN, VALID, make_dataset
from trainables.core.config import TrainingRecipe
from trainables.data.tasks import TaskType
from trainables.methods import METHODS, MethodContext, make_method
from trainables.methods.interpolation import layer_group
from trainables.models.gps import GPSShape
from trainables.models.predictor import GraphPredictor
from trainables.training.trainer import SplitIndices, fit

SHAPE = GPSShape(num_layers=6, emb_dim=16, heads=4, dropout=0.1)
RECIPE = TrainingRecipe(epochs=2, batch_size=4, lr=1e-2)


@pytest.fixture(scope="module")
def data():
    return make_dataset(HAND_SMILES, np.linspace(-2.0, 3.0, 20))


def predictor() -> GraphPredictor:
    torch.manual_seed(0)
    return GraphPredictor(SHAPE, 1)


def run(method_name: str, params: dict, data, parent_state=None):
    model = predictor()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    ctx = MethodContext(model=model, pretrained_state=None, parent_state=parent_state, seed=0)
    result = fit(ctx, make_method(method_name, params), data,
                 SplitIndices(torch.tensor(TRAIN), torch.tensor(VALID), torch.tensor(TEST)), TaskType.REGRESSION,
                 False, RECIPE, torch.Generator().manual_seed(0), torch.device("cpu"))
    return model, before, result


def moved_layers(before, after) -> set:
    """Groups (0 = input encoders, i + 1 = GPS layer i, None = head) whose weights changed."""
    encoder = predictor().gnn
    return {layer_group(k, encoder) for k in before
            if k.rsplit(".", 1)[-1] in ("weight", "bias", "in_proj_weight") and not torch.equal(before[k], after[k])}


@pytest.fixture(scope="module")
def parent(data):
    _, _, result = run("full-ft", {}, data)
    return result.best_state


@pytest.mark.parametrize("method", [m for m in METHODS.names() if not METHODS.get(m).requires_parent])
def test_every_method_fine_tunes_a_gps_encoder(data, method):
    _, _, result = run(method, {}, data)
    assert math.isfinite(result.val) and math.isfinite(result.test)


@pytest.mark.parametrize("third, layers", [(0, {0, 1}), (1, {2, 3}), (2, {4, 5})])
def test_surgical_ft_trains_one_third_of_the_gps_layers(data, third, layers):
    model, before, _ = run("surgical-ft", {"layer": third}, data)
    assert moved_layers(before, model.state_dict()) == {None} | {layer + 1 for layer in layers}  # never the inputs


def test_surgical_ft_names_the_thirds_when_out_of_range(data):
    with pytest.raises(ValueError, match=r"surgical-ft.layer=3 is not accepted for this 6-layer encoder; accepted: "
                                         r"0..2 \(layers 0-1, layers 2-3, layers 4-5\)"):
        run("surgical-ft", {"layer": 3}, data)


@pytest.mark.slow
def test_wise_ft_and_roft_mol_interpolate_gps_layers(data, parent):
    model, _, result = run("wise-ft", {"alpha": 1.0}, data, parent)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in parent.items())  # alpha = 1 is theta_ft
    _, _, result = run("roft-mol", {"groups": 7, "epochs": 3}, data, parent)  # inputs + one per GPS layer
    assert len(result.summary["alphas"]) == 7 and math.isfinite(result.val)
    with pytest.raises(ValueError, match="roft-mol.groups=3 is not accepted for a 6-layer GNN; accepted: 1 or 7"):
        run("roft-mol", {"groups": 3, "epochs": 1}, data, parent)
