"""Device-resident molecules and the padded layout of K trials' mini-batches.

A fused batch holds ``K`` trials' mini-batches (each its own molecules, up to ``G`` of them)
in one set of tensors. Trial ``k`` owns the node *slots* ``k * S .. k * S + S - 1``; its
``n_k`` nodes fill the first ``n_k`` slots in the order :meth:`GraphDataset.batch` would give
them, the rest are padding (every trial has at least one padding slot). Graph slots are
``k * G + b``; padding nodes belong to one extra dummy graph ``K * G``.

========================  ===================  ==============================================
tensor                    shape                meaning
========================  ===================  ==============================================
``x``                     ``(K*S, 2)`` int64   node features (padding: zeros)
``edge_src, edge_dst``    ``(E,)`` int64       slots of every real edge (no self-loops)
``edge_attr``             ``(E, 2)`` int64     bond features
``slot_trial``            ``(K*S,)`` int64     owning trial of each slot
``node_mask``             ``(K, S)`` bool      real (not padding) slots
``node_count``            ``(K,)`` float       ``n_k``
``node_graph``            ``(K*S,)`` int64     graph slot of each node slot
``graph_count``           ``(K*G,)`` float     nodes per graph slot (0 for padding graphs)
``y``                     ``(K, G, T)`` float  labels, ``NaN`` where missing or padding
========================  ===================  ==============================================

Index arithmetic runs on the host over per-molecule counts kept in NumPy; one host-to-device
copy per batch carries it, and the gathers run on the device without ever making the host wait
for the device (no ``.item()``, no ``bincount``, no boolean masks).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from trainables.data.dataset import GraphDataset

SLOT_MULTIPLE = 32  # slots per trial are rounded up to this, so shapes repeat across steps


@dataclass
class FusedBatch:
    num_trials: int
    slots: int
    graphs: int
    nodes_per_trial: list[int]
    x: torch.Tensor
    edge_src: torch.Tensor
    edge_dst: torch.Tensor
    edge_attr: torch.Tensor
    slot_trial: torch.Tensor
    node_mask: torch.Tensor
    node_count: torch.Tensor
    node_graph: torch.Tensor
    graph_count: torch.Tensor
    y: torch.Tensor


def _segment_arange(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(starts[i], starts[i] + counts[i])``."""
    offsets = np.cumsum(counts) - counts
    return np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(offsets - starts, counts)


class DeviceGraphs:
    """A :class:`GraphDataset` resident on ``device``, assembling fused batches by gathers."""

    def __init__(self, data: GraphDataset, device: torch.device | str):
        self.device = torch.device(device)
        self.x = data.x.to(self.device)
        self.edge_index = data.edge_index.to(self.device)
        self.edge_attr = data.edge_attr.to(self.device)
        self.y = data.y.to(self.device)
        self.node_ptr = data.node_ptr.numpy()
        self.edge_ptr = data.edge_ptr.numpy()
        self.node_counts = np.diff(self.node_ptr)
        self.edge_counts = np.diff(self.edge_ptr)
        self.num_tasks = data.num_tasks

    def _to_device(self, host: np.ndarray) -> torch.Tensor:
        """One host-to-device copy; from pinned memory on a GPU, so the host never waits for it."""
        tensor = torch.from_numpy(host)
        if self.device.type == "cuda":
            tensor = tensor.pin_memory()
        return tensor.to(self.device, non_blocking=True)

    def assemble(self, graph_ids: Sequence[np.ndarray | torch.Tensor]) -> FusedBatch:
        """One fused batch; ``graph_ids[k]`` are trial ``k``'s molecules (shape ``(B_k,)``)."""
        ids_per_trial = [np.asarray(ids, dtype=np.int64) for ids in graph_ids]
        K = len(ids_per_trial)
        lengths = np.array([len(ids) for ids in ids_per_trial])
        G = max(int(lengths.max()), 1)
        ids = np.concatenate(ids_per_trial)
        trial_of_graph = np.repeat(np.arange(K), lengths)
        graph_local = np.arange(len(ids)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        n, e = self.node_counts[ids], self.edge_counts[ids]
        nodes_per_trial = np.bincount(trial_of_graph, weights=n, minlength=K).astype(np.int64)
        # slots per trial: every trial's nodes plus one padding slot, rounded up so shapes repeat
        S = math.ceil((int(nodes_per_trial.max()) + 1) / SLOT_MULTIPLE) * SLOT_MULTIPLE
        node_offset_in_trial = np.cumsum(n) - n - np.repeat(np.cumsum(nodes_per_trial) - nodes_per_trial, lengths)
        graph_slot_base = trial_of_graph * S + node_offset_in_trial
        graph_slot = trial_of_graph * G + graph_local
        host = np.concatenate(
            [
                _segment_arange(self.node_ptr[ids], n),  # source rows of nodes
                _segment_arange(graph_slot_base, n),  # their slots
                np.repeat(graph_slot, n),  # their graph slots
                _segment_arange(self.edge_ptr[ids], e),  # source rows of edges
                np.repeat(graph_slot_base, e),  # slot shift of each edge
                graph_slot,
                ids,
                n,
                nodes_per_trial,
            ]
        )
        total_nodes, total_edges = int(n.sum()), int(e.sum())
        index = self._to_device(host)
        (
            node_src,
            node_slot,
            node_graph_slot,
            edge_rows,
            edge_shift,
            graph_slots,
            graph_rows,
            graph_nodes,
            trial_nodes,
        ) = index.split(
            [total_nodes, total_nodes, total_nodes, total_edges, total_edges, len(ids), len(ids), len(ids), K]
        )
        # index_select / index_copy_ / index_fill_ only: none of them waits for the device
        x = torch.zeros((K * S, 2), dtype=self.x.dtype, device=self.device)
        x.index_copy_(0, node_slot, self.x.index_select(0, node_src))
        edges = self.edge_index.index_select(1, edge_rows) + edge_shift
        node_graph = torch.full((K * S,), K * G, dtype=torch.long, device=self.device)
        node_graph.index_copy_(0, node_slot, node_graph_slot)
        node_mask = torch.zeros(K * S, dtype=torch.bool, device=self.device).index_fill_(0, node_slot, True)
        graph_count = torch.zeros(K * G, device=self.device).index_copy_(0, graph_slots, graph_nodes.to(torch.float32))
        y = torch.full((K * G, self.num_tasks), float("nan"), device=self.device)
        y.index_copy_(0, graph_slots, self.y.index_select(0, graph_rows))
        return FusedBatch(
            num_trials=K,
            slots=S,
            graphs=G,
            nodes_per_trial=nodes_per_trial.tolist(),
            x=x,
            edge_src=edges[0],
            edge_dst=edges[1],
            edge_attr=self.edge_attr.index_select(0, edge_rows),
            slot_trial=torch.arange(K, device=self.device).repeat_interleave(S),
            node_mask=node_mask.view(K, S),
            node_count=trial_nodes.to(torch.float32),
            node_graph=node_graph,
            graph_count=graph_count,
            y=y.view(K, G, self.num_tasks),
        )
