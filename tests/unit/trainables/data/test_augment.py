"""trainables.data.augment: GraphCL's views on whole batches of hand-written molecules."""

from __future__ import annotations

import math

import pytest
import torch

from tests.unit.trainables.hand_molecules import HAND_SMILES, make_dataset
from trainables.data.augment import (
    AUGMENTATIONS,
    MASK_ATOM_TYPE,
    check_rate,
    drop_nodes,
    hop_distance,
    keep_atoms,
    mask_attributes,
    perturb_edges,
    subgraph,
    two_views,
)


@pytest.fixture(scope="module")
def batch():
    data = make_dataset(HAND_SMILES, [[0.0]] * len(HAND_SMILES))
    return data.batch(torch.arange(len(HAND_SMILES)))


def sizes(batch):
    return torch.bincount(batch.batch, minlength=batch.num_graphs)


def bonds_per_graph(batch):
    return torch.bincount(batch.batch[batch.edge_index[0]], minlength=batch.num_graphs) // 2


def is_consistent(view, original):
    """Same molecules in the same order, each with an atom; bonds inside molecules, in both directions."""
    src, dst = view.edge_index
    pairs = set(zip(src.tolist(), dst.tolist()))
    return (view.num_graphs == original.num_graphs and bool((sizes(view) >= 1).all())
            and torch.equal(view.batch, torch.sort(view.batch).values)
            and bool((view.batch[src] == view.batch[dst]).all()) and bool((src != dst).all())
            and all((v, u) in pairs for u, v in pairs) and view.edge_attr.shape == (src.numel(), 2))


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_every_view_is_a_consistent_batch_and_leaves_the_input_alone(batch, name):
    before = [t.clone() for t in (batch.x, batch.edge_index, batch.edge_attr, batch.batch)]
    view = AUGMENTATIONS[name](batch, 0.3, torch.Generator().manual_seed(1))
    assert is_consistent(view, batch)
    assert all(torch.equal(a, b) for a, b in zip(before, (batch.x, batch.edge_index, batch.edge_attr, batch.batch)))
    again = AUGMENTATIONS[name](batch, 0.3, torch.Generator().manual_seed(1))
    assert torch.equal(view.x, again.x) and torch.equal(view.edge_index, again.edge_index)  # seeded


def test_node_dropping_removes_floor_rate_n_atoms_per_molecule(batch):
    view = drop_nodes(batch, 0.3, torch.Generator().manual_seed(0))
    expected = sizes(batch) - torch.floor(0.3 * sizes(batch).double()).long()
    assert torch.equal(sizes(view), expected)
    assert view.edge_index.shape[1] < batch.edge_index.shape[1]


def test_subgraph_keeps_a_connected_ball_around_a_seed(batch):
    view = subgraph(batch, 0.4, torch.Generator().manual_seed(0))
    assert torch.equal(sizes(view), torch.ceil(0.6 * sizes(batch).double()).long())
    # every hand molecule is connected, so each kept part is connected: one seed per molecule reaches all
    starts = torch.cumsum(sizes(view), 0) - sizes(view)
    assert bool((hop_distance(view.edge_index, view.x.shape[0], starts) < view.x.shape[0]).all())


def test_edge_perturbation_keeps_the_bond_count_of_molecules_with_two_atoms(batch):
    view = perturb_edges(batch, 0.5, torch.Generator().manual_seed(0))
    many = sizes(batch) > 1
    assert torch.equal(bonds_per_graph(view)[many], bonds_per_graph(batch)[many])
    assert torch.equal(view.x, batch.x)
    original = set(zip(*batch.edge_index.tolist()))
    added = [(u, v) for u, v in zip(*view.edge_index.tolist()) if (u, v) not in original]
    assert added and len(view.edge_index[0]) == len(batch.edge_index[0])


def test_attribute_masking_masks_round_rate_n_atoms(batch):
    view = mask_attributes(batch, 0.25, torch.Generator().manual_seed(0))
    masked = view.x[:, 0] == MASK_ATOM_TYPE
    assert int(masked.sum()) == round(0.25 * batch.x.shape[0]) and bool((view.x[masked, 1] == 0).all())
    assert torch.equal(view.edge_index, batch.edge_index)


def test_hop_distance_on_a_path():
    path = torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])  # 0-1-2-3 and a lone node 4
    assert hop_distance(path, 5, torch.tensor([1])).tolist() == [1, 0, 1, 2, 5]


def test_keep_atoms_renumbers_and_drops_dangling_bonds(batch):
    keep = torch.ones(batch.x.shape[0], dtype=torch.bool)
    keep[0] = False  # aspirin's first carbon
    view = keep_atoms(batch, keep)
    assert view.x.shape[0] == batch.x.shape[0] - 1 and int(view.edge_index.max()) == view.x.shape[0] - 1
    assert view.edge_index.shape[1] == batch.edge_index.shape[1] - 2  # its one bond, both directions


def test_two_views_draw_from_the_named_augmentations(batch):
    first, second = two_views(batch, ("node-drop",), 0.5, torch.Generator().manual_seed(0))
    assert first.x.shape[0] < batch.x.shape[0] and second.x.shape[0] < batch.x.shape[0]


@pytest.mark.parametrize("rate", [0.0, 1.0, -0.1, math.nan, "0.2"])
def test_rates_outside_the_open_unit_interval_are_refused(rate):
    with pytest.raises(ValueError, match=r"aug_rate .* is not accepted; accepted: a number in \(0, 1\)"):
        check_rate(rate)
