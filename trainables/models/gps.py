"""A GraphGPS encoder (Rampasek et al. 2022) for Hu-featurized molecules.

Inputs are the PyG-style batches of :mod:`trainables.data.dataset`: ``x (n, 2)`` (atom type,
chirality), ``edge_index (2, e)`` (each bond in both directions, no self-loops),
``edge_attr (e, 2)`` (bond type, bond direction) and ``batch (n,)`` (sorted graph index).

The stack (:class:`GPSEncoder`), width ``d``:

* ``p = RWSE(graph)``, shape ``(n, S)``: the random-walk return probabilities of
  :func:`random_walk_encoding` for ``S = rwse_steps`` steps.
* ``h_0 = X1[atom] + X2[chirality] + W_rw BN_rw(p) + b_rw`` (node states ``(n, d)``).
* ``e_uv = E1[bond_type] + E2[bond_dir]`` (``(e, d)``), computed once and shared by all layers.
* ``h_{l+1} = GPS_l(h_l)``, PyG's :class:`~torch_geometric.nn.GPSConv` with

  - local branch ``a = BN_1(h + drop(GINE(h)))``,
    ``GINE(h)_v = MLP((1 + eps) h_v + sum_{u -> v} ReLU(h_u + e_uv))``, MLP ``d -> d -> d``
    with ReLU and ``eps = 0`` (not trained); no self-loops are added, the ``(1 + eps) h_v``
    term covers the node itself;
  - global branch ``g = BN_2(h + drop(MHA(h)))``, multi-head self-attention over the atoms
    of each molecule (``heads`` heads, dropout ``attn_dropout`` on the attention weights);
  - ``h_{l+1} = BN_3(s + FFN(s))`` with ``s = a + g`` and ``FFN = drop(W_2 drop(ReLU(W_1 s)))``,
    ``d -> 2d -> d``.

  ``drop`` is dropout with probability ``dropout``: it acts on every residual branch of every
  layer (GPSConv's own ``dropout``), the transformer convention. No extra dropout is put on the
  residual stream itself (HuGNN drops its layer outputs, but it has no residual connections).
* The encoder returns the last node states ``h_L``, shape ``(n, d)``.

State-dict layout (keys of ``GPSEncoder.state_dict()``, ``i`` in ``0..num_layers-1``):

======================================================  =========================================
key                                                     tensor
======================================================  =========================================
``x_embedding1.weight``                                 ``(NUM_ATOM_TYPES, d)``, row 119 = mask token
``x_embedding2.weight``                                 ``(NUM_CHIRALITY_TAGS, d)``
``rwse_norm.{weight,bias,running_mean,running_var}``    ``(S,)``; ``rwse_norm.num_batches_tracked``
``rwse_encoder.weight``, ``rwse_encoder.bias``          ``(d, S)``, ``(d,)``
``edge_embedding1.weight``                              ``(NUM_BOND_TYPES, d)``
``edge_embedding2.weight``                              ``(NUM_BOND_DIRECTIONS, d)``
``layers.i.conv.eps``                                   ``(1,)`` buffer, GINE's ``eps`` (0)
``layers.i.conv.nn.{0,2}.{weight,bias}``                GINE MLP, ``(d, d)``, ``(d,)``
``layers.i.attn.in_proj_{weight,bias}``                 ``(3d, d)``, ``(3d,)`` (query, key, value)
``layers.i.attn.out_proj.{weight,bias}``                ``(d, d)``, ``(d,)``
``layers.i.mlp.0.{weight,bias}``                        FFN ``W_1``: ``(2d, d)``, ``(2d,)``
``layers.i.mlp.3.{weight,bias}``                        FFN ``W_2``: ``(d, 2d)``, ``(d,)``
``layers.i.norm{1,2,3}.module.<batch-norm state>``      ``BN_1..3``: ``(d,)`` each + counter
======================================================  =========================================

The input encoders are the keys under :attr:`GPSEncoder.INPUT_PREFIXES`; the atom and bond
embeddings have the names and shapes of :class:`trainables.models.gnn.HuGNN`'s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn
from torch_geometric.nn import GINEConv, GPSConv

from trainables.data.vocabulary import NUM_BOND_DIRECTIONS, NUM_BOND_TYPES
from trainables.models.encoders import Encoder

# Largest padded adjacency (graphs x nodes x nodes entries) built at once by random_walk_encoding.
RWSE_MAX_PADDED_ENTRIES = 2**24


@dataclass(frozen=True)
class GPSShape:
    """Architecture of a :class:`GPSEncoder` (see the module docstring for where each part acts)."""

    num_layers: int = 16
    emb_dim: int = 256
    heads: int = 8
    rwse_steps: int = 16
    dropout: float = 0.5  # residual-branch dropout inside every GPS layer
    attn_dropout: float = 0.1  # dropout on the attention weights

    def __post_init__(self):
        for name in ("num_layers", "emb_dim", "heads", "rwse_steps"):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.emb_dim % self.heads:
            raise ValueError(f"emb_dim must be divisible by heads, got emb_dim={self.emb_dim} and heads={self.heads}")
        for name in ("dropout", "attn_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1), got {value!r}")

    @property
    def gnn_type(self) -> str:
        return "gps"


def random_walk_encoding(
    edge_index: torch.Tensor, batch: torch.Tensor, steps: int, max_padded_entries: int = RWSE_MAX_PADDED_ENTRIES
) -> torch.Tensor:
    """Random-walk structural encoding (RWSE; Dwivedi et al. 2022, as used by GraphGPS).

    With ``A`` the adjacency matrix of ``edge_index`` (``A[u, v] = 1`` for each edge ``u -> v``;
    no self-loops are added), ``D = diag(A 1)`` the degrees and ``P = D^-1 A`` the random-walk
    transition matrix, the encoding of node ``v`` is

        ``out[v, k - 1] = (P^k)[v, v]`` for ``k = 1..steps``,

    the probability that a uniform random walk of ``k`` steps from ``v`` ends at ``v``. Isolated
    nodes (degree 0) get all zeros.

    Graphs of a batch are disconnected, so ``P`` is block-diagonal: the powers are computed per
    graph on a padded ``(graphs, nodes_max, nodes_max)`` tensor by repeated batched matmuls. Runs of
    consecutive graphs are processed together as long as their padded tensor holds at most
    ``max_padded_entries`` entries (one large molecule never pads a whole batch), never less than
    one graph at a time.

    Shapes: ``edge_index (2, e)`` with batch-global node indices, ``batch (n,)`` sorted graph index
    of each node -> ``(n, steps)`` float32. No gradient flows (computed under ``torch.no_grad``).
    """
    num_nodes = batch.numel()
    out = torch.zeros((num_nodes, steps), dtype=torch.float32, device=batch.device)
    if num_nodes == 0:
        return out
    with torch.no_grad():
        nodes_per_graph = torch.bincount(batch)
        graph_start = torch.cumsum(nodes_per_graph, 0) - nodes_per_graph  # first node of each graph
        local_index = torch.arange(num_nodes, device=batch.device) - graph_start[batch]
        src, dst = edge_index
        for first, stop in _graph_runs(nodes_per_graph.tolist(), max_padded_entries):
            node_in_run = (batch >= first) & (batch < stop)
            edge_in_run = node_in_run[src]
            width = int(nodes_per_graph[first:stop].max())
            adjacency = torch.zeros((stop - first, width, width), dtype=torch.float32, device=batch.device)
            run_src, run_dst = src[edge_in_run], dst[edge_in_run]
            adjacency[batch[run_src] - first, local_index[run_src], local_index[run_dst]] = 1.0
            degree = adjacency.sum(dim=-1, keepdim=True)
            transition = adjacency / degree.clamp(min=1.0)  # rows of isolated (and padding) nodes stay 0
            walk = transition
            run_graph, run_local = batch[node_in_run] - first, local_index[node_in_run]
            for k in range(steps):
                if k:
                    walk = torch.bmm(walk, transition)
                out[node_in_run, k] = walk[run_graph, run_local, run_local]
    return out


def _graph_runs(nodes_per_graph: list[int], max_padded_entries: int) -> list[tuple[int, int]]:
    """Split graphs ``0..B-1`` into consecutive runs ``[first, stop)`` whose padded adjacency
    ``(stop - first) * max_nodes^2`` fits ``max_padded_entries`` (a single graph always forms a run)."""
    runs, first, width = [], 0, 0
    for graph, size in enumerate(nodes_per_graph):
        wider = max(width, size)
        if graph > first and (graph - first + 1) * wider * wider > max_padded_entries:
            runs.append((first, graph))
            first, wider = graph, size
        width = wider
    runs.append((first, len(nodes_per_graph)))
    return runs


class GPSEncoder(Encoder):
    """Atom/bond/RWSE encoders + ``num_layers`` GPS layers; returns node states ``(n, d)``.

    Encoder protocol: see :class:`trainables.models.encoders.Encoder`; a surgical unit is a third of the layers.
    """

    INPUT_PREFIXES: tuple[str, ...] = ("x_embedding", "rwse_", "edge_embedding")
    LAYER_KEY = re.compile(r"^layers\.(\d+)\.")

    def __init__(self, shape: GPSShape):
        super().__init__(shape)
        d = shape.emb_dim
        self.rwse_norm = nn.BatchNorm1d(shape.rwse_steps)
        self.rwse_encoder = nn.Linear(shape.rwse_steps, d)
        self.edge_embedding1 = nn.Embedding(NUM_BOND_TYPES, d)
        self.edge_embedding2 = nn.Embedding(NUM_BOND_DIRECTIONS, d)
        for embedding in (self.x_embedding1, self.x_embedding2, self.edge_embedding1, self.edge_embedding2):
            nn.init.xavier_uniform_(embedding.weight)
        self.layers = nn.ModuleList(
            GPSConv(
                d,
                GINEConv(nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d))),
                heads=shape.heads,
                dropout=shape.dropout,
                norm="batch_norm",
                attn_type="multihead",
                attn_kwargs={"dropout": shape.attn_dropout},
            )
            for _ in range(shape.num_layers)
        )

    def forward(
        self,
        x: torch.Tensor,
        edge_index: torch.Tensor,
        edge_attr: torch.Tensor,
        batch: torch.Tensor,
        rwse: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Node states ``(n, d)`` of a batch (shapes in the module docstring).

        ``rwse``: precomputed :func:`random_walk_encoding` ``(n, rwse_steps)`` of this batch;
        computed here when ``None``.
        """
        if rwse is None:
            rwse = random_walk_encoding(edge_index, batch, self.shape.rwse_steps)
        h = self.embed_atoms(x) + self.rwse_encoder(self.rwse_norm(rwse))
        edge_emb = self.edge_embedding1(edge_attr[:, 0]) + self.edge_embedding2(edge_attr[:, 1])
        for layer in self.layers:
            h = layer(h, edge_index, batch, edge_attr=edge_emb)
        return h

    def _surgical_layer_ranges(self) -> list[range]:
        """Front, middle and back thirds of the layers (earlier thirds take the remainder);
        one range per layer when there are fewer than 3 layers."""
        count = self.num_layers
        if count < 3:
            return [range(i, i + 1) for i in range(count)]
        sizes = [count // 3 + (1 if third < count % 3 else 0) for third in range(3)]
        starts = [0, sizes[0], sizes[0] + sizes[1]]
        return [range(start, start + size) for start, size in zip(starts, sizes)]

    def surgical_units(self) -> list[list[nn.Module]]:
        """The units Surgical fine-tuning trains one at a time: the GPS layers of each third."""
        return [[self.layers[i] for i in layers] for layers in self._surgical_layer_ranges()]

    def feature_map_module(self) -> nn.Module:
        """The module whose output Feature-map penalises: the last GPS layer (its output ``(n, d)``)."""
        return self.layers[-1]

    def surgical_unit_names(self) -> list[str]:
        """Names of :meth:`surgical_units`, e.g. ``["layers 0-5", "layers 6-10", "layers 11-15"]``
        (``"layer i"`` for a single-layer unit)."""
        return [f"layers {r[0]}-{r[-1]}" if len(r) > 1 else f"layer {r[0]}" for r in self._surgical_layer_ranges()]
