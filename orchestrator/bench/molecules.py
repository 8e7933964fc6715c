"""Synthetic molecule-like graphs for benchmarks, in the collated :class:`GraphDataset` layout.

Sized like MoleculeNet's BBBP by default (2,039 molecules, about 24 heavy atoms on average):
each molecule is a random spanning tree over its atoms plus ring closures (about one per 8
atoms), with organic-chemistry frequencies of atom and bond types, every bond stored in both
directions. The binary label is a learnable function of the graph (heteroatom fraction above
the median, flipped for 10% of molecules), so ROC-AUC moves during training as on real data.
Needs no RDKit and no data files: benchmarks run anywhere, GPU machines included.
"""

from __future__ import annotations

import numpy as np
import torch

from trainables.data.dataset import GraphDataset

# atomic-number index (atomic number - 1) and its frequency: C, N, O, F, S, Cl, Br
ATOM_TYPES = np.array([5, 6, 7, 8, 15, 16, 34])
ATOM_FREQUENCIES = np.array([0.72, 0.11, 0.12, 0.015, 0.015, 0.015, 0.005])
BOND_FREQUENCIES = np.array([0.62, 0.08, 0.005, 0.295])  # single, double, triple, aromatic


def synthetic_dataset(num_molecules: int = 2039, mean_atoms: float = 24.0, seed: int = 0) -> GraphDataset:
    """``num_molecules`` random molecule-like graphs with one binary task."""
    if num_molecules < 1 or mean_atoms < 2:
        raise ValueError(f"need num_molecules >= 1 and mean_atoms >= 2, got {num_molecules}, {mean_atoms}")
    rng = np.random.default_rng(seed)
    sizes = np.clip(rng.normal(mean_atoms, mean_atoms * 0.4, num_molecules).round(), 2, 6 * mean_atoms).astype(int)
    xs, edges, attrs, hetero = [], [], [], []
    for n in sizes:
        atoms = rng.choice(ATOM_TYPES, size=n, p=ATOM_FREQUENCIES)
        chirality = (rng.random(n) < 0.03) * rng.integers(1, 3, n)
        parents = np.array([rng.integers(0, i) for i in range(1, n)], dtype=np.int64)
        src, dst = np.arange(1, n), parents
        closures = max(0, int(rng.poisson(n / 8)))
        if closures and n > 4:
            a, b = rng.integers(0, n, closures), rng.integers(0, n, closures)
            keep = np.abs(a - b) > 2
            src, dst = np.concatenate([src, a[keep]]), np.concatenate([dst, b[keep]])
        bond = rng.choice(4, size=len(src), p=BOND_FREQUENCIES)
        direction = np.zeros(len(src), dtype=np.int64)
        xs.append(np.stack([atoms, chirality], axis=1))
        edges.append(np.stack([np.concatenate([src, dst]), np.concatenate([dst, src])]))
        attrs.append(np.stack([np.tile(bond, 2), np.tile(direction, 2)], axis=1))
        hetero.append(np.mean(atoms != 5))
    fractions = np.array(hetero)
    labels = (fractions > np.median(fractions)).astype(np.float32)
    flip = rng.random(num_molecules) < 0.1
    labels[flip] = 1 - labels[flip]
    node_ptr = np.concatenate([[0], np.cumsum(sizes)])
    edge_ptr = np.concatenate([[0], np.cumsum([e.shape[1] for e in edges])])
    return GraphDataset(
        x=torch.from_numpy(np.concatenate(xs).astype(np.int64)),
        edge_index=torch.from_numpy(np.concatenate(edges, axis=1).astype(np.int64)),
        edge_attr=torch.from_numpy(np.concatenate(attrs).astype(np.int64)),
        node_ptr=torch.from_numpy(node_ptr.astype(np.int64)),
        edge_ptr=torch.from_numpy(edge_ptr.astype(np.int64)),
        y=torch.from_numpy(labels[:, None]),
        source_rows=torch.arange(num_molecules),
        scaffolds=[f"synthetic-{i % 97}" for i in range(num_molecules)],
        stats={},
        file_sha256="synthetic",
        label_columns=("label",),
    )
