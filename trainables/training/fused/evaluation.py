"""Many states of one model scored at once: alpha searches evaluate batches of points in one pass.

:func:`stacked_scorer` returns ``score(template, states, part) -> [Score]``: ``template`` (a
``GraphPredictor``) loaded with each state dict, scored on a part of the split in one stacked
evaluation (:class:`~trainables.training.fused.model.StackedPredictors`) where the architecture
fuses, else one state after another. The scores equal one-at-a-time scoring up to the order of
floating-point sums. The worker hands it to methods as ``MethodContext.evaluate_states``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch

from trainables.data.dataset import GraphDataset
from trainables.data.tasks import TaskType
from trainables.training.fused.batching import DeviceGraphs
from trainables.training.fused.engine import _evaluation_batches, _scores
from trainables.training.fused.model import FUSABLE_GNN_TYPES, StackedPredictors
from trainables.training.metrics import Score, evaluate_metric
from trainables.training.trainer import SplitIndices, predict


def stacked_scorer(
    data: GraphDataset, split: SplitIndices, task_type: TaskType, device: torch.device
) -> Callable[[torch.nn.Module, list, str], list[Score]]:
    """A scorer of many states (see the module docstring); the molecules go to the device once."""
    graphs: list[DeviceGraphs] = []

    def score(template: torch.nn.Module, states: list[dict[str, torch.Tensor]], part: str) -> list[Score]:
        index = split.part(part)
        targets = data.y[index].numpy()
        if getattr(template.gnn.shape, "gnn_type", None) not in FUSABLE_GNN_TYPES:
            scores = []
            for state in states:
                template.load_state_dict(state)
                scores.append(evaluate_metric(task_type, targets, predict(template, data, index, device)))
            return scores
        if not graphs:
            graphs.append(DeviceGraphs(data, device))
        models = []
        for state in states:
            model = copy.deepcopy(template)
            model.load_state_dict(state)
            models.append(model)
        stacked = StackedPredictors(models).to(device)
        return _scores(stacked, _evaluation_batches(graphs[0], index, len(models)), targets, task_type)

    return score
