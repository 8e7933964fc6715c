"""A plain fine-tuning loop, written the way the reference scripts are, to check roft's trainers against.

The classification branch follows pretrain-gnns ``chem/finetune.py`` (Hu et al. 2020); the
regression branch follows RoFt-Mol's ``Mole-BERT/finetune_ood.py``, which is that script with a
regression case added (pretrain-gnns' chemistry script has none):

* one ``torch_geometric.data.Data`` per molecule (``x``, ``edge_index``, ``edge_attr``, ``y``),
  batched by ``torch_geometric.loader.DataLoader``; labels in the reference encoding:
  classification ``{-1, +1}`` with ``0`` for a missing label, ``y`` of shape ``(T,)`` per molecule
  and ``batch.y.view(pred.shape)`` in the loop;
* classification loss ``loss_mat = BCEWithLogits(reduction="none")(pred.double(), (y + 1) / 2)``,
  zeroed where ``y == 0``, ``loss = sum(loss_mat) / sum(is_valid)``;
  regression loss ``sqrt(MSELoss()(pred.double(), y))``, the batch RMSE (the regression sets
  have no missing labels; the reference takes every label as present);
* ``Adam([{gnn params}, {head params, lr * lr_scale}], lr, weight_decay)``; ``model.train()``
  for the epoch, ``model.eval()`` and ``torch.no_grad()`` for evaluation;
* after every epoch valid and test are evaluated: ROC-AUC (``sklearn.metrics.roc_auc_score``)
  averaged over the label columns with both classes among the present labels, or
  ``sqrt(mean_squared_error)``; the reported test metric is the one at the first epoch with the
  best validation metric (``val_list.index(best_func(val_list))``).

Nothing here uses roft's trainer or fused engine; the model is whatever module is handed in
(roft's ``GraphPredictor``, state-dict compatible with the reference ``GNN_graphpred``), called
on the PyG batch.

Where it departs from the scripts, only to consume the same randomness as roft's trainer:

* the training order: the scripts' ``DataLoader(..., shuffle=True)`` draws each epoch's
  permutation from the global RNG; roft draws ``torch.randperm(n, generator=g)`` per epoch from a
  generator of its own (seeded with the run seed). Here an explicit sampler
  (:class:`EpochPermutationSampler`) draws exactly that from a generator the caller passes.
  (``DataLoader(shuffle=True, generator=g)`` would not do: every ``iter(loader)`` first draws a
  base seed from ``g``, shifting the permutations.)
* every loader gets a private ``generator`` for that base-seed draw, so that iterating a loader
  leaves the global RNG alone: dropout masks then come from the global RNG exactly as in roft's
  unfused trainer (the scripts' loaders consume one global draw per iteration).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
from sklearn.metrics import mean_squared_error, roc_auc_score
from torch.utils.data import Sampler
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

criterion = nn.BCEWithLogitsLoss(reduction="none")
criterion_reg = nn.MSELoss()


def reference_graphs(dataset, index, regression: bool) -> list[Data]:
    """One PyG ``Data`` per molecule of ``index``, cut out of roft's collated dataset tensors.

    ``dataset`` has ``x (N, 2)``, ``edge_index (2, E)`` (local node ids), ``edge_attr (E, 2)``,
    ``node_ptr``, ``edge_ptr`` and ``y (G, T)`` with NaN for a missing label (roft's
    ``GraphDataset``); classification labels are turned into the reference's {-1, 0, +1}.
    """
    graphs = []
    for g in np.asarray(index).tolist():
        n0, n1 = int(dataset.node_ptr[g]), int(dataset.node_ptr[g + 1])
        e0, e1 = int(dataset.edge_ptr[g]), int(dataset.edge_ptr[g + 1])
        label = dataset.y[g].to(torch.float64)
        if regression:
            y = label.clone()
        else:  # 1 -> +1, 0 -> -1, missing -> 0
            y = torch.where(torch.isnan(label), torch.zeros_like(label), 2 * label - 1)
        graphs.append(Data(x=dataset.x[n0:n1].clone(), edge_index=dataset.edge_index[:, e0:e1].clone(),
                           edge_attr=dataset.edge_attr[e0:e1].clone(), y=y))
    return graphs


class EpochPermutationSampler(Sampler):
    """Yields ``torch.randperm(n, generator=generator)`` anew on every ``iter``: one permutation per epoch."""

    def __init__(self, n: int, generator: torch.Generator):
        self.n, self.generator = n, generator

    def __iter__(self):
        return iter(torch.randperm(self.n, generator=self.generator).tolist())

    def __len__(self) -> int:
        return self.n


def script_loss(pred: torch.Tensor, batch, regression: bool) -> torch.Tensor:
    """The scripts' task loss of one batch: masked mean BCE with logits, or the batch RMSE (float64)."""
    y = batch.y.view(pred.shape).to(torch.float64)
    if regression:
        loss_mat = criterion_reg(pred.double(), y)
        loss_mat = torch.sqrt(loss_mat)
        is_valid = torch.ones_like(y).bool()
    else:
        loss_mat = criterion(pred.double(), (y + 1) / 2)
        is_valid = y ** 2 > 0
    loss_mat = torch.where(is_valid, loss_mat, torch.zeros(loss_mat.shape).to(loss_mat.device).to(loss_mat.dtype))
    return torch.sum(loss_mat) / torch.sum(is_valid)


def train(model, loader, optimizer, regression: bool, step_losses: list):
    model.train()
    for step, batch in enumerate(loader):
        pred = model(batch).logits
        loss = script_loss(pred, batch, regression)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step_losses.append(float(loss.detach()))


def predict(model, loader) -> tuple[np.ndarray, np.ndarray]:
    """Labels and outputs over ``loader``, in eval mode: ``(y_true, y_scores)``, both ``(n, T)``."""
    model.eval()
    y_true, y_scores = [], []
    for batch in loader:
        with torch.no_grad():
            pred = model(batch).logits
        y_true.append(batch.y.view(pred.shape))
        y_scores.append(pred)
    y_true = torch.cat(y_true, dim=0).cpu().numpy()
    y_scores = torch.cat(y_scores, dim=0).cpu().numpy()
    return y_true, y_scores


def metric(y_true: np.ndarray, y_scores: np.ndarray, regression: bool) -> float:
    roc_list = []
    if regression:
        roc_list.append(math.sqrt(mean_squared_error(y_true, y_scores)))
    else:
        for i in range(y_true.shape[1]):
            # AUC is only defined when there is at least one positive data.
            if np.sum(y_true[:, i] == 1) > 0 and np.sum(y_true[:, i] == -1) > 0:
                is_valid = y_true[:, i] ** 2 > 0
                roc_list.append(roc_auc_score((y_true[is_valid, i] + 1) / 2, y_scores[is_valid, i]))
    if not roc_list:
        return float("nan")
    return sum(roc_list) / len(roc_list)


def evaluate(model, loader, regression: bool, outputs: list | None = None) -> float:
    """The script's ``eval``; ``outputs`` (optional) collects ``(y_true, y_scores)``."""
    y_true, y_scores = predict(model, loader)
    if outputs is not None:
        outputs.append((y_true, y_scores))
    return metric(y_true, y_scores, regression)


@dataclass
class ReferenceRun:
    step_losses: list[float]
    val: list[float]
    test: list[float]
    best_epoch: int  # 1-based
    best_val: float
    best_test: float
    best_state: dict[str, torch.Tensor]
    final_state: dict[str, torch.Tensor]
    # per epoch: {"valid": (y_true, y_scores), "test": (y_true, y_scores)}, labels in the reference encoding
    outputs: list[dict[str, tuple[np.ndarray, np.ndarray]]] = field(default_factory=list)

    def epoch_losses(self, steps_per_epoch: int) -> list[float]:
        """Mean training loss of each epoch."""
        return [sum(self.step_losses[i:i + steps_per_epoch]) / steps_per_epoch
                for i in range(0, len(self.step_losses), steps_per_epoch)]


def make_loaders(train_dataset: list[Data], valid_dataset: list[Data], test_dataset: list[Data], batch_size: int,
                 shuffle_generator: torch.Generator) -> tuple[DataLoader, DataLoader, DataLoader]:
    """The scripts' three loaders: train shuffled per epoch (drawn from ``shuffle_generator``), valid and test
    in their order."""
    loader_rng = lambda: torch.Generator().manual_seed(0)  # noqa: E731  (base-seed draws only, see the module doc)
    train_loader = DataLoader(train_dataset, batch_size=batch_size,
                              sampler=EpochPermutationSampler(len(train_dataset), shuffle_generator),
                              generator=loader_rng())
    val_loader = DataLoader(valid_dataset, batch_size=batch_size, shuffle=False, generator=loader_rng())
    test_loader = DataLoader(test_dataset, batch_size=batch_size, shuffle=False, generator=loader_rng())
    return train_loader, val_loader, test_loader


def finetune(model: nn.Module, train_dataset: list[Data], valid_dataset: list[Data], test_dataset: list[Data], *,
             regression: bool, epochs: int, batch_size: int = 32, lr: float = 1e-3, lr_scale: float = 1.0,
             decay: float = 0.0, shuffle_generator: torch.Generator) -> ReferenceRun:
    """Fine-tune ``model`` in place (its current weights are the start) and return the run's record.

    ``shuffle_generator``: the generator the per-epoch permutations are drawn from.
    """
    train_loader, val_loader, test_loader = make_loaders(train_dataset, valid_dataset, test_dataset, batch_size,
                                                         shuffle_generator)

    model_param_group = [{"params": model.gnn.parameters()},
                         {"params": model.graph_pred_linear.parameters(), "lr": lr * lr_scale}]
    optimizer = torch.optim.Adam(model_param_group, lr=lr, weight_decay=decay)

    step_losses: list[float] = []
    val_acc_list, test_acc_list, states, outputs = [], [], [], []
    for epoch in range(1, epochs + 1):
        train(model, train_loader, optimizer, regression, step_losses)
        val_out, test_out = [], []
        val_acc_list.append(evaluate(model, val_loader, regression, val_out))
        test_acc_list.append(evaluate(model, test_loader, regression, test_out))
        outputs.append({"valid": val_out[0], "test": test_out[0]})
        states.append(copy.deepcopy(model.state_dict()))
    best_func = min if regression else max
    best = val_acc_list.index(best_func(val_acc_list))
    return ReferenceRun(step_losses, val_acc_list, test_acc_list, best + 1, val_acc_list[best], test_acc_list[best],
                        states[best], copy.deepcopy(model.state_dict()), outputs)
