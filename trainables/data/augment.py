"""Graph augmentations on whole mini-batches: attribute masking and GraphCL's four views.

Every function takes a :class:`~trainables.data.dataset.GraphBatch` of ``B`` molecules and a
``torch.Generator`` and returns a new batch of the same ``B`` molecules (same order, every
molecule keeps at least one atom); nothing is modified in place and there is no Python loop
over molecules. ``rate`` is the augmentation strength (GraphCL uses 0.2).

* :func:`mask_atoms`: ``round(rate * n)`` atoms of the batch (at least one) get the mask token
  (atom type :data:`MASK_ATOM_TYPE`, chirality 0). Attribute masking pre-training predicts them.
* :func:`mask_attributes`: the same, as a view (GraphCL "attribute masking").
* :func:`drop_nodes`: each molecule loses ``floor(rate * n_g)`` atoms drawn at random, and their
  bonds (GraphCL "node dropping").
* :func:`perturb_edges`: each bond is removed with probability ``rate`` (both directions
  together); each molecule then gains as many random single bonds between random pairs of its
  own atoms as it lost (GraphCL "edge perturbation", which keeps the edge count in expectation).
* :func:`subgraph`: each molecule keeps the ``ceil((1 - rate) * n_g)`` atoms closest (in bonds)
  to a random seed atom, ties broken at random (GraphCL "subgraph", a breadth-first walk).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from trainables.data.dataset import GraphBatch

MASK_ATOM_TYPE = 119  # the extra row of the Hu atom-type embedding


def mask_atoms(x: torch.Tensor, rate: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_masked, masked)``: ``round(rate * n)`` atoms (at least one) drawn without replacement
    get the mask token; ``masked`` are their row indices ``(m,)``."""
    n = x.shape[0]
    masked = torch.randperm(n, generator=generator)[: max(1, int(round(rate * n)))]
    x_masked = x.clone()
    x_masked[masked, 0] = MASK_ATOM_TYPE
    x_masked[masked, 1] = 0
    return x_masked, masked


def mask_attributes(batch: GraphBatch, rate: float, generator: torch.Generator) -> GraphBatch:
    x_masked, _ = mask_atoms(batch.x, rate, generator)
    return GraphBatch(x_masked, batch.edge_index, batch.edge_attr, batch.batch, batch.num_graphs, batch.y)


def drop_nodes(batch: GraphBatch, rate: float, generator: torch.Generator) -> GraphBatch:
    sizes = _graph_sizes(batch)
    drop = torch.floor(rate * sizes.to(torch.float64)).to(torch.long)  # < n_g for rate < 1
    rank = _rank_within_graph(batch, torch.rand(batch.x.shape[0], generator=generator, dtype=torch.float64))
    return keep_atoms(batch, rank >= drop[batch.batch])


def subgraph(batch: GraphBatch, rate: float, generator: torch.Generator) -> GraphBatch:
    sizes = _graph_sizes(batch)
    keep = torch.ceil((1.0 - rate) * sizes.to(torch.float64)).to(torch.long).clamp(min=1)
    n = batch.x.shape[0]
    starts = torch.cumsum(sizes, 0) - sizes
    seeds = starts + torch.floor(torch.rand(batch.num_graphs, generator=generator, dtype=torch.float64) * sizes).to(
        torch.long
    )
    distance = hop_distance(batch.edge_index, n, seeds)
    tie_break = torch.rand(n, generator=generator, dtype=torch.float64)
    rank = _rank_within_graph(batch, distance.to(torch.float64) + tie_break)  # distance first, then chance
    return keep_atoms(batch, rank < keep[batch.batch])


def perturb_edges(batch: GraphBatch, rate: float, generator: torch.Generator) -> GraphBatch:
    src, dst = batch.edge_index
    n = batch.x.shape[0]
    bond_id = torch.minimum(src, dst) * n + torch.maximum(src, dst)  # both directions share an id
    unique_bonds, bond_of_edge = torch.unique(bond_id, return_inverse=True)
    removed_bond = torch.rand(unique_bonds.numel(), generator=generator) < rate
    kept = ~removed_bond[bond_of_edge]
    graph_of_removed = batch.batch[torch.div(unique_bonds[removed_bond], n, rounding_mode="floor")]
    sizes = _graph_sizes(batch)
    graph_of_added = graph_of_removed[sizes[graph_of_removed] > 1]  # a lone atom gets no bond
    starts = torch.cumsum(sizes, 0) - sizes
    size = sizes[graph_of_added]
    first = torch.floor(torch.rand(size.numel(), generator=generator, dtype=torch.float64) * size).to(torch.long)
    step = 1 + torch.floor(torch.rand(size.numel(), generator=generator, dtype=torch.float64) * (size - 1)).to(
        torch.long
    )
    u, v = starts[graph_of_added] + first, starts[graph_of_added] + (first + step) % size  # u != v
    added_index = torch.cat([torch.stack([u, v]), torch.stack([v, u])], dim=1)
    added_attr = torch.zeros((added_index.shape[1], 2), dtype=batch.edge_attr.dtype)  # single bond, no direction
    return GraphBatch(
        batch.x,
        torch.cat([batch.edge_index[:, kept], added_index], dim=1),
        torch.cat([batch.edge_attr[kept], added_attr]),
        batch.batch,
        batch.num_graphs,
        batch.y,
    )


AUGMENTATIONS: dict[str, Callable[[GraphBatch, float, torch.Generator], GraphBatch]] = {
    "node-drop": drop_nodes,
    "edge-perturb": perturb_edges,
    "attr-mask": mask_attributes,
    "subgraph": subgraph,
}


def keep_atoms(batch: GraphBatch, keep: torch.Tensor) -> GraphBatch:
    """The batch restricted to the atoms where ``keep`` (bool ``(n,)``) holds, and the bonds between them."""
    new_index = torch.cumsum(keep.to(torch.long), 0) - 1
    src, dst = batch.edge_index
    kept_edges = keep[src] & keep[dst]
    return GraphBatch(
        batch.x[keep],
        new_index[batch.edge_index[:, kept_edges]],
        batch.edge_attr[kept_edges],
        batch.batch[keep],
        batch.num_graphs,
        batch.y,
    )


def hop_distance(edge_index: torch.Tensor, num_nodes: int, sources: torch.Tensor) -> torch.Tensor:
    """Bonds between each node and the nearest of ``sources`` (``(n,)`` long; unreachable: ``n``).

    Breadth-first, one frontier expansion per hop over the whole batch: ``O(diameter * e)``.
    """
    unreachable = num_nodes
    distance = torch.full((num_nodes,), unreachable, dtype=torch.long)
    distance[sources] = 0
    src, dst = edge_index
    for hop in range(1, num_nodes):
        frontier = distance[src] == hop - 1
        reached = dst[frontier]
        reached = reached[distance[reached] == unreachable]
        if reached.numel() == 0:
            break
        distance[reached] = hop
    return distance


def _graph_sizes(batch: GraphBatch) -> torch.Tensor:
    return torch.bincount(batch.batch, minlength=batch.num_graphs)


def _rank_within_graph(batch: GraphBatch, key: torch.Tensor) -> torch.Tensor:
    """Position of each node in its molecule when the molecule's nodes are sorted by ``key``."""
    order = torch.argsort(key, stable=True)
    order = order[torch.argsort(batch.batch[order], stable=True)]  # by molecule, then key
    sizes = _graph_sizes(batch)
    starts = torch.cumsum(sizes, 0) - sizes
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel()) - starts[batch.batch[order]]
    return rank


def two_views(
    batch: GraphBatch, names: tuple[str, ...], rate: float, generator: torch.Generator
) -> tuple[GraphBatch, GraphBatch]:
    """GraphCL's pair of views: each one augmentation drawn uniformly from ``names``."""
    first, second = torch.randint(len(names), (2,), generator=generator).tolist()
    return (AUGMENTATIONS[names[first]](batch, rate, generator), AUGMENTATIONS[names[second]](batch, rate, generator))


def check_rate(rate: float, name: str = "aug_rate") -> None:
    if not (isinstance(rate, (int, float)) and 0.0 < rate < 1.0) or math.isnan(rate):
        raise ValueError(f"{name} {rate!r} is not accepted; accepted: a number in (0, 1)")
