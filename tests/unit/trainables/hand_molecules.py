"""Hand-written molecules and a dataset builder shared by the trainables unit tests."""

from __future__ import annotations

import torch

from trainables.data.dataset import GraphDataset, featurize_table

# 20 small, valid molecules written by hand.
HAND_SMILES = [
    "CC(=O)Oc1ccccc1C(=O)O",  # aspirin
    "Cn1cnc2c1c(=O)n(C)c(=O)n2C",  # caffeine
    "c1ccccc1",  # benzene
    "CCO",  # ethanol
    "C",  # methane
    "C[C@H](N)C(=O)O",  # L-alanine
    "F/C=C/F",
    "c1ccncc1",  # pyridine
    "CC(C)O",
    "CCN(CC)CC",
    "OC1CCCCC1",
    "c1ccc2ccccc2c1",  # naphthalene
    "CC#N",
    "O=C(O)c1ccccc1",  # benzoic acid
    "CCCCCC",
    "Clc1ccccc1",
    "CC(=O)N",
    "C1CCOC1",  # THF
    "Nc1ccccc1",  # aniline
    "CS(C)=O",  # DMSO
]
# Made-up binary labels: train = 0..13, valid = 14..16, test = 17..19; valid and test hold both classes.
HAND_LABELS = [1, 0, 1, 0, 0, 1, 0, 1, 0, 1, 1, 0, 1, 0, 0, 1, 0, 1, 0, 1]
TRAIN, VALID, TEST = list(range(14)), [14, 15, 16], [17, 18, 19]


def make_dataset(smiles: list[str], labels) -> GraphDataset:
    """A :class:`GraphDataset` from SMILES and per-row labels (rows of dropped SMILES are dropped)."""
    graphs = featurize_table(smiles)
    y = torch.as_tensor(labels, dtype=torch.float32)
    if y.dim() == 1:
        y = y[:, None]
    return GraphDataset(
        x=graphs["x"], edge_index=graphs["edge_index"], edge_attr=graphs["edge_attr"],
        node_ptr=graphs["node_ptr"], edge_ptr=graphs["edge_ptr"], y=y[graphs["source_rows"]],
        source_rows=graphs["source_rows"], scaffolds=graphs["scaffolds"], stats=graphs["stats"],
        label_columns=tuple(f"t{i}" for i in range(y.shape[1])))
