"""Many states scored in one stacked pass equal the states scored one at a time."""

from __future__ import annotations

import pytest
import torch

from tests.unit.trainables.training.fused.test_engine import build, split_for
from trainables.data.tasks import TaskType
from trainables.training.fused.evaluation import stacked_scorer
from trainables.training.trainer import Evaluator


@pytest.mark.parametrize("gnn_type", ["gin", "gcn"])
def test_stacked_scores_equal_one_at_a_time(molecules, gnn_type):
    cpu = torch.device("cpu")
    split = split_for(0)
    states = [build(seed, gnn_type, 0.5, "cpu").state_dict() for seed in (1, 2, 3)]
    template = build(0, gnn_type, 0.5, "cpu")
    batched = stacked_scorer(molecules, split, TaskType.CLASSIFICATION, cpu)(template, states, "valid")
    evaluator = Evaluator(molecules, split, TaskType.CLASSIFICATION, cpu)
    for state, score in zip(states, batched):
        template.load_state_dict(state)
        assert score.value == pytest.approx(evaluator(template, "valid").value, rel=1e-12)
    assert len({s.value for s in batched}) == 3
