"""Encoder + mean pooling + linear head: the fine-tuned model of every trial.

For a batch of ``B`` graphs with ``n`` nodes in all, ``h = encoder(x, edge_index, edge_attr)``
is ``(n, d)``, ``g = mean_pool(h) (B, d)``, ``logits = W g + b (B, T)``. The state dict is
``gnn.*`` + ``graph_pred_linear.*``, the layout of the reference fine-tuning model.
"""

from __future__ import annotations

from torch import nn
from torch_geometric.utils import scatter

from trainables.models.encoders import GNNOutput
from trainables.models.gnn import GNNShape, HuGNN
from trainables.models.gps import GPSEncoder, GPSShape


def build_encoder(shape) -> nn.Module:
    """The encoder of a shape: :class:`HuGNN` for a :class:`GNNShape`, a GPS encoder for a ``GPSShape``."""
    if isinstance(shape, GNNShape):
        return HuGNN(shape)
    if isinstance(shape, GPSShape):
        return GPSEncoder(shape)
    raise TypeError(f"no encoder for a {type(shape).__name__}; accepted: GNNShape, GPSShape")


class GraphPredictor(nn.Module):
    """Encoder (:class:`HuGNN` or GPS) + mean pooling + linear head (``graph_pred_linear``, ``(T, d)``)."""

    def __init__(self, shape, num_tasks: int):
        super().__init__()
        self.gnn = build_encoder(shape)
        self.graph_pred_linear = nn.Linear(shape.emb_dim, num_tasks)

    @property
    def head(self) -> nn.Linear:
        return self.graph_pred_linear

    def forward(self, batch) -> GNNOutput:
        node = self.gnn(batch.x, batch.edge_index, batch.edge_attr, batch.batch)
        graph = scatter(node, batch.batch, dim=0, dim_size=batch.num_graphs, reduce="mean")
        return GNNOutput(node=node, graph=graph, logits=self.graph_pred_linear(graph))
