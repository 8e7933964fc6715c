"""Featurized task datasets as collated tensors, with an atomic on-disk cache.

A dataset of ``G`` molecules is stored *collated* (never as a list of per-graph objects, which
is slow to pickle and to ship between processes):

========================  =======================  ==========================================
tensor                    shape                    meaning
========================  =======================  ==========================================
``x``                     ``(N, 2)`` int64         node features of all molecules, concatenated
``edge_index``            ``(2, E)`` int64         edges, node indices *local* to each molecule
``edge_attr``             ``(E, 2)`` int64         edge features
``node_ptr``              ``(G + 1,)`` int64       molecule ``g`` owns nodes ``node_ptr[g]:node_ptr[g+1]``
``edge_ptr``              ``(G + 1,)`` int64       molecule ``g`` owns edges ``edge_ptr[g]:edge_ptr[g+1]``
``y``                     ``(G, T)`` float32       labels, ``NaN`` where missing
``source_rows``           ``(G,)`` int64           row of each molecule in the source file
========================  =======================  ==========================================

The graph part depends only on the source file, so it is cached once per
``(file sha256, featurizer version)`` under ``<cache>/featurized/``; labels are read from the
file on every load (cheap). The cache file is written under a temporary name and renamed into
place, and featurization holds an exclusive file lock, so concurrent trials on one node wait
for one featurization instead of corrupting or repeating it.
"""

from __future__ import annotations

import fcntl
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from trainables.data import sources
from trainables.data.tasks import TASKS, Task, TaskType
from trainables.data.vocabulary import FEATURIZER_VERSION


@dataclass
class GraphBatch:
    """A mini-batch of ``B`` molecules with ``n`` nodes and ``e`` edges in total."""

    x: torch.Tensor  # (n, 2)
    edge_index: torch.Tensor  # (2, e), batch-global node indices
    edge_attr: torch.Tensor  # (e, 2)
    batch: torch.Tensor  # (n,), molecule index of each node
    num_graphs: int
    y: torch.Tensor  # (B, T)

    def to(self, device: torch.device | str) -> GraphBatch:
        return GraphBatch(
            self.x.to(device),
            self.edge_index.to(device),
            self.edge_attr.to(device),
            self.batch.to(device),
            self.num_graphs,
            self.y.to(device),
        )


@dataclass
class GraphDataset:
    """Collated featurized molecules and their labels (see the module docstring for shapes)."""

    x: torch.Tensor
    edge_index: torch.Tensor
    edge_attr: torch.Tensor
    node_ptr: torch.Tensor
    edge_ptr: torch.Tensor
    y: torch.Tensor
    source_rows: torch.Tensor
    scaffolds: list[str]
    stats: dict[str, int] = field(default_factory=dict)
    file_sha256: str = ""
    label_columns: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.node_ptr.numel() - 1)

    @property
    def num_tasks(self) -> int:
        return int(self.y.shape[1])

    @property
    def num_atoms(self) -> np.ndarray:
        return (self.node_ptr[1:] - self.node_ptr[:-1]).numpy()

    def batch(self, graph_ids: torch.Tensor) -> GraphBatch:
        """Assemble the molecules ``graph_ids`` (shape ``(B,)``) into one batch, by tensor ops.

        Node gather: for molecule ``g`` at batch position ``b`` its nodes go to
        ``new_ptr[b] + (0..n_g-1)``; edges are shifted by ``new_ptr[b]``.
        """
        graph_ids = graph_ids.to(torch.long)
        node_start, edge_start = self.node_ptr[graph_ids], self.edge_ptr[graph_ids]
        n_nodes = self.node_ptr[graph_ids + 1] - node_start
        n_edges = self.edge_ptr[graph_ids + 1] - edge_start
        node_idx = _segment_gather_index(node_start, n_nodes)
        edge_idx = _segment_gather_index(edge_start, n_edges)
        new_node_start = torch.cumsum(n_nodes, 0) - n_nodes
        edge_shift = torch.repeat_interleave(new_node_start, n_edges)
        return GraphBatch(
            x=self.x[node_idx],
            edge_index=self.edge_index[:, edge_idx] + edge_shift,
            edge_attr=self.edge_attr[edge_idx],
            batch=torch.repeat_interleave(torch.arange(len(graph_ids)), n_nodes),
            num_graphs=len(graph_ids),
            y=self.y[graph_ids],
        )


def _segment_gather_index(starts: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Concatenation of ``arange(starts[i], starts[i] + counts[i])`` over ``i``."""
    total = int(counts.sum())
    offsets = torch.cumsum(counts, 0) - counts
    return torch.arange(total) - torch.repeat_interleave(offsets, counts) + torch.repeat_interleave(starts, counts)


# --------------------------------------------------------------------------- featurization


def featurize_table(smiles: list[object], scaffold_source: str = "raw") -> dict:
    """Featurize a column of SMILES into the collated graph part of a dataset.

    Returns a dict with ``x, edge_index, edge_attr, node_ptr, edge_ptr, source_rows`` tensors,
    ``scaffolds`` (list of str) and ``stats`` (the featurizer's counters).
    """
    from trainables.data.featurize import (  # RDKit only when featurizing
        FeaturizationStats,
        featurize_smiles,
        quiet_rdkit,
    )

    stats = FeaturizationStats()
    xs, eis, eas, scaffolds, rows = [], [], [], [], []
    n_nodes, n_edges = [0], [0]
    with quiet_rdkit():
        for row, smi in enumerate(smiles):
            graph = featurize_smiles(smi, stats, scaffold_source)
            if graph is None:
                continue
            xs.append(graph.x)
            eis.append(graph.edge_index)
            eas.append(graph.edge_attr)
            scaffolds.append(graph.scaffold)
            rows.append(row)
            n_nodes.append(graph.x.shape[0])
            n_edges.append(graph.edge_attr.shape[0])
    return {
        "x": torch.from_numpy(np.concatenate(xs, axis=0)) if xs else torch.zeros((0, 2), dtype=torch.long),
        "edge_index": torch.from_numpy(np.concatenate(eis, axis=1)) if eis else torch.zeros((2, 0), dtype=torch.long),
        "edge_attr": torch.from_numpy(np.concatenate(eas, axis=0)) if eas else torch.zeros((0, 2), dtype=torch.long),
        "node_ptr": torch.from_numpy(np.cumsum(n_nodes)),
        "edge_ptr": torch.from_numpy(np.cumsum(n_edges)),
        "source_rows": torch.tensor(rows, dtype=torch.long),
        "scaffolds": scaffolds,
        "stats": stats.as_dict(),
    }


# --------------------------------------------------------------------------- cache


def featurized_cache_path(file_sha256: str, scaffold_source: str = "raw") -> Path:
    """The featurized cache of a file: keyed by its sha256, the featurizer version and (where not
    the file's own SMILES) the SMILES its scaffolds come from."""
    suffix = "" if scaffold_source == "raw" else f"-{scaffold_source}-scaffolds"
    return sources.cache_dir() / "featurized" / f"{file_sha256[:24]}-{FEATURIZER_VERSION}{suffix}.pt"


def read_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, low_memory=False)


def load_graphs(
    relpath: str, smiles_column: str, data_root: sources.DataRoot | None = None, scaffold_source: str = "raw"
) -> tuple[dict, str]:
    """The collated graph part of a file, from the cache or freshly featurized.

    Returns ``(graphs, file_sha256)``. The file's sha256 is checked against the registry.
    """
    path = sources.resolve(relpath, data_root or sources.DataRoot.from_setting())
    sha = checked_sha256(relpath, path)
    cache = featurized_cache_path(sha, scaffold_source)
    if cache.is_file():
        return _load_cache(cache), sha
    cache.parent.mkdir(parents=True, exist_ok=True)
    with open(cache.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one featurization per node; others wait here
        if cache.is_file():
            return _load_cache(cache), sha
        smiles = read_table(path)[smiles_column].tolist()
        graphs = featurize_table(smiles, scaffold_source)
        graphs["smiles_column"] = smiles_column
        sources.atomic_write(cache, lambda fh: torch.save(graphs, fh))
    return graphs, sha


def _load_cache(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


_SHA_MEMO: dict[tuple[str, int, int], str] = {}


def checked_sha256(relpath: str, path: Path) -> str:
    """sha256 of ``path`` (memoised on path, size and mtime), which must match the registry."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _SHA_MEMO:
        _SHA_MEMO[key] = sources.sha256_of(path)
    actual = _SHA_MEMO[key]
    spec = sources.FILES.get(relpath)
    if actual not in (spec.sha256, spec.served_sha256):
        raise sources.ChecksumError(
            f"{relpath}: sha256 of {path} is {actual}, but the registry expects {spec.sha256}; "
            "the file differs from the benchmark's (replace it with the canonical file)"
        )
    return actual


def load_task(name: str | Task, data_root: sources.DataRoot | None = None) -> GraphDataset:
    """Featurized molecules and labels of a registered task.

    Classification labels are mapped to {0, 1} (the reference files use {0, 1}; {-1, +1} is
    accepted too) and missing labels to ``NaN``.
    """
    task = TASKS.get(name) if isinstance(name, str) else name
    data_root = data_root or sources.DataRoot.from_setting()
    graphs, sha = load_graphs(task.file, task.smiles_column, data_root, task.scaffold_source)
    if len(graphs["source_rows"]) == 0:
        raise ValueError(
            f"task {task.name}: none of the SMILES in column {task.smiles_column!r} of {task.file} "
            f"could be read by RDKit ({graphs['stats'].get('dropped', 0)} dropped); nothing to train on"
        )
    table = read_table(sources.resolve(task.file, data_root))
    columns = task.resolve_label_columns(list(table.columns))
    labels = table.loc[:, list(columns)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float32)
    labels = labels[graphs["source_rows"].numpy()]
    if task.task_type is TaskType.CLASSIFICATION:
        labels = np.where(labels == -1, 0.0, labels).astype(np.float32)
        bad = ~np.isnan(labels) & (labels != 0) & (labels != 1)
        if bad.any():
            raise ValueError(f"task {task.name}: classification labels outside {{0, 1}}: {np.unique(labels[bad])[:5]}")
    return GraphDataset(
        x=graphs["x"],
        edge_index=graphs["edge_index"],
        edge_attr=graphs["edge_attr"],
        node_ptr=graphs["node_ptr"],
        edge_ptr=graphs["edge_ptr"],
        y=torch.from_numpy(labels),
        source_rows=graphs["source_rows"],
        scaffolds=graphs["scaffolds"],
        stats=graphs["stats"],
        file_sha256=sha,
        label_columns=columns,
    )


def is_cached(task: Task, data_root: sources.DataRoot) -> bool:
    """Whether the featurized cache of ``task``'s file exists (without featurizing)."""
    try:
        path = sources.resolve(task.file, data_root, download=False)
    except sources.DataUnavailableError:
        return False
    return featurized_cache_path(checked_sha256(task.file, path), task.scaffold_source).is_file()
