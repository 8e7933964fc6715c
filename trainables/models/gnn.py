"""The Hu et al. (2020) GNN (pretrain-gnns ``chem/model.py``), state-dict compatible key for key.

All layers first add a self-loop to every node with bond features ``(4, 0)`` and embed edges as
``e_uv = E1[bond_type] + E2[bond_dir]``. With ``h_u`` the input node states (shape ``(n, d)``)
and ``N(v)`` the in-neighbours of ``v`` including ``v`` itself:

* GIN:        ``h'_v = MLP( sum_{u in N(v)} (h_u + e_uv) )``, MLP ``d -> 2d -> d`` with ReLU
  (keys ``mlp.0``, ``mlp.2``).
* GCN:        ``h'_v = sum_{u in N(v)} deg(u)^-1/2 deg(v)^-1/2 (W h_u + e_uv)`` (key ``linear``);
  degrees count the self-loop, as in the reference.
* GraphSAGE:  ``h'_v = normalize_2( mean_{u in N(v)} (W h_u + e_uv) )`` (key ``linear``).
* GAT:        ``m_uv^k = W^k h_u + e_uv^k`` per head ``k`` (2 heads, ``weight_linear (2d, d)``,
  edge embeddings of width ``2d``), ``a_uv^k = softmax_u(LeakyReLU_0.2(att^k . [W^k h_v || m_uv^k]))``
  over the in-edges of ``v``, ``h'_v = mean_k sum_u a_uv^k m_uv^k + bias``.

The reference code was written for PyTorch Geometric 1.0, whose ``propagate`` gathered
``x_j = x[edge_index[1]]`` and aggregated at ``edge_index[0]``; molecular graphs hold every
bond in both directions with the same features, so this module's ``source -> target``
convention computes the same function (the GAT softmax normalises over each centre node's
edges, exactly as there).

The stack (:class:`HuGNN`): ``h_0 = X1[atom] + X2[chirality]``; for each layer
``h_{l+1} = dropout(act(BN_l(conv_l(h_l))))`` with ReLU on all but the last layer; JK = last.
:class:`GraphPredictor` adds mean pooling and the linear head ``graph_pred_linear``; its state
dict is ``gnn.*`` + ``graph_pred_linear.*``, the layout of the reference fine-tuning model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.utils import scatter, softmax

from trainables.data.vocabulary import NUM_BOND_DIRECTIONS, NUM_BOND_TYPES, SELF_LOOP_BOND_TYPE
from trainables.models.encoders import Encoder

GNN_TYPES = ("gin", "gcn", "graphsage", "gat")


def scatter_sum(values: torch.Tensor, index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """``out[v] = sum_{k: index[k] = v} values[k]``; shapes ``(e, ...) -> (num_nodes, ...)``."""
    return values.new_zeros((num_nodes, *values.shape[1:])).index_add_(0, index, values)


def add_self_loops(
    edge_index: torch.Tensor, edge_attr: torch.Tensor, num_nodes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Append one self-loop per node with bond features ``(SELF_LOOP_BOND_TYPE, 0)``.

    Shapes: ``edge_index (2, e) -> (2, e + n)``, ``edge_attr (e, 2) -> (e + n, 2)``.
    """
    loops = torch.arange(num_nodes, device=edge_index.device)
    loop_attr = torch.zeros((num_nodes, 2), dtype=edge_attr.dtype, device=edge_attr.device)
    loop_attr[:, 0] = SELF_LOOP_BOND_TYPE
    return torch.cat([edge_index, torch.stack([loops, loops])], dim=1), torch.cat([edge_attr, loop_attr], dim=0)


class _EdgeEmbedding(nn.Module):
    """Base of the Hu layers: the two bond embeddings ``edge_embedding1/2`` of width ``width``."""

    def __init__(self, width: int):
        super().__init__()
        self.edge_embedding1 = nn.Embedding(NUM_BOND_TYPES, width)
        self.edge_embedding2 = nn.Embedding(NUM_BOND_DIRECTIONS, width)
        nn.init.xavier_uniform_(self.edge_embedding1.weight)
        nn.init.xavier_uniform_(self.edge_embedding2.weight)

    def embed_edges(self, edge_index, edge_attr, num_nodes):
        edge_index, edge_attr = add_self_loops(edge_index, edge_attr, num_nodes)
        return edge_index, self.edge_embedding1(edge_attr[:, 0]) + self.edge_embedding2(edge_attr[:, 1])


class GINConv(_EdgeEmbedding):
    def __init__(self, emb_dim: int):
        super().__init__(emb_dim)
        self.mlp = nn.Sequential(nn.Linear(emb_dim, 2 * emb_dim), nn.ReLU(), nn.Linear(2 * emb_dim, emb_dim))

    def forward(self, x, edge_index, edge_attr):
        edge_index, edge_emb = self.embed_edges(edge_index, edge_attr, x.size(0))
        src, dst = edge_index
        aggregated = scatter_sum(x[src] + edge_emb, dst, x.size(0))
        return self.mlp(aggregated)


class _LinearMessageConv(_EdgeEmbedding):
    """Shared part of the GCN and GraphSAGE layers: messages ``m_uv = W h_u + e_uv`` (key ``linear``)."""

    def __init__(self, emb_dim: int):
        super().__init__(emb_dim)
        self.linear = nn.Linear(emb_dim, emb_dim)

    def messages(self, x, edge_index, edge_attr):
        """``(src, dst, m)`` over edges with self-loops; ``m`` has shape ``(e + n, d)``."""
        edge_index, edge_emb = self.embed_edges(edge_index, edge_attr, x.size(0))
        src, dst = edge_index
        return src, dst, self.linear(x)[src] + edge_emb


class GCNConv(_LinearMessageConv):
    def forward(self, x, edge_index, edge_attr):
        src, dst, message = self.messages(x, edge_index, edge_attr)
        degree = scatter_sum(torch.ones_like(src, dtype=x.dtype), src, x.size(0))
        inv_sqrt = degree.pow(-0.5).masked_fill(degree == 0, 0.0)
        return scatter_sum((inv_sqrt[src] * inv_sqrt[dst]).unsqueeze(-1) * message, dst, x.size(0))


class GraphSAGEConv(_LinearMessageConv):
    def forward(self, x, edge_index, edge_attr):
        src, dst, message = self.messages(x, edge_index, edge_attr)
        return F.normalize(scatter(message, dst, dim=0, dim_size=x.size(0), reduce="mean"), p=2, dim=-1)


class GATConv(_EdgeEmbedding):
    def __init__(self, emb_dim: int, heads: int = 2, negative_slope: float = 0.2):
        super().__init__(heads * emb_dim)
        self.emb_dim, self.heads, self.negative_slope = emb_dim, heads, negative_slope
        self.weight_linear = nn.Linear(emb_dim, heads * emb_dim)
        self.att = nn.Parameter(torch.empty(1, heads, 2 * emb_dim))
        self.bias = nn.Parameter(torch.zeros(emb_dim))
        nn.init.xavier_uniform_(self.att)

    def forward(self, x, edge_index, edge_attr):
        edge_index, edge_emb = self.embed_edges(edge_index, edge_attr, x.size(0))
        src, dst = edge_index
        h = self.weight_linear(x).view(-1, self.heads, self.emb_dim)
        message = h[src] + edge_emb.view(-1, self.heads, self.emb_dim)  # (e, heads, d)
        score = (torch.cat([h[dst], message], dim=-1) * self.att).sum(dim=-1)  # (e, heads)
        alpha = softmax(F.leaky_relu(score, self.negative_slope), dst, num_nodes=x.size(0))
        out = scatter_sum(message * alpha.unsqueeze(-1), dst, x.size(0))
        return out.mean(dim=1) + self.bias


CONVS = {"gin": GINConv, "gcn": GCNConv, "graphsage": GraphSAGEConv, "gat": GATConv}


@dataclass(frozen=True)
class GNNShape:
    """Architecture of a Hu-style GNN."""

    gnn_type: str = "gin"
    num_layers: int = 5
    emb_dim: int = 300
    dropout: float = 0.5

    def __post_init__(self):
        if self.gnn_type not in CONVS:
            raise ValueError(f"unknown gnn_type {self.gnn_type!r}; accepted: {', '.join(CONVS)}")
        if self.num_layers < 1 or self.emb_dim < 1:
            raise ValueError(f"num_layers and emb_dim must be >= 1, got {self.num_layers} x {self.emb_dim}")


class HuGNN(Encoder):
    """Embeddings + ``num_layers`` message-passing layers with BatchNorm; returns node states ``(n, d)``.

    Encoder protocol (see :class:`Encoder`): the input encoders are the atom embeddings; a
    surgical unit is one layer, its convolution with its edge embeddings and its BatchNorm.
    """

    INPUT_PREFIXES = ("x_embedding",)
    LAYER_KEY = re.compile(r"^(?:gnns|batch_norms)\.(\d+)\.")

    def __init__(self, shape: GNNShape):
        super().__init__(shape)
        d = shape.emb_dim
        nn.init.xavier_uniform_(self.x_embedding1.weight)
        nn.init.xavier_uniform_(self.x_embedding2.weight)
        self.gnns = nn.ModuleList(CONVS[shape.gnn_type](d) for _ in range(shape.num_layers))
        self.batch_norms = nn.ModuleList(nn.BatchNorm1d(d) for _ in range(shape.num_layers))

    def surgical_units(self) -> list[list[nn.Module]]:
        return [[conv, norm] for conv, norm in zip(self.gnns, self.batch_norms)]

    def surgical_unit_names(self) -> list[str]:
        return [f"layer {i}" for i in range(self.num_layers)]

    def feature_map_module(self) -> nn.Module:
        """The module whose output Feature-map penalises: the last layer's convolution (its output is
        ``(n, d)``, before that layer's BatchNorm; for a GIN, its MLP's last linear map's output)."""
        return self.gnns[-1]

    def forward(self, x, edge_index, edge_attr, batch=None):
        """Node states ``(n, d)``; ``batch`` (graph of each node) is unused: every layer is local."""
        h = self.embed_atoms(x)
        last = self.shape.num_layers - 1
        for layer, (conv, norm) in enumerate(zip(self.gnns, self.batch_norms)):
            h = norm(conv(h, edge_index, edge_attr))
            if layer != last:
                h = F.relu(h)
            h = F.dropout(h, self.shape.dropout, training=self.training)
        return h
