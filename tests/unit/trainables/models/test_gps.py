"""trainables.models.gps: hand-computed RWSE, shape validation, equivariance, state-dict layout, surgical units."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.nn import GPSConv
from torch_geometric.utils import scatter

from trainables.data.featurize import featurize_smiles
from trainables.models.gps import GPSEncoder, GPSShape, random_walk_encoding

TINY = GPSShape(num_layers=3, emb_dim=32, heads=4, rwse_steps=8, dropout=0.0, attn_dropout=0.0)


def undirected(pairs: list[tuple[int, int]]) -> torch.Tensor:
    """``edge_index (2, 2 * len(pairs))`` holding every pair in both directions."""
    src = [node for a, b in pairs for node in (a, b)]
    dst = [node for a, b in pairs for node in (b, a)]
    return torch.tensor([src, dst], dtype=torch.long)


def cycle(n: int) -> torch.Tensor:
    return undirected([(i, (i + 1) % n) for i in range(n)])


def one_graph(num_nodes: int) -> torch.Tensor:
    return torch.zeros(num_nodes, dtype=torch.long)


def cycle_return_probability(n: int, k: int) -> float:
    """``(P^k)[v, v]`` on the n-cycle from its spectrum: ``mean_j cos(2 pi j / n)^k``."""
    return sum(math.cos(2 * math.pi * j / n) ** k for j in range(n)) / n


# ----------------------------------------------------------------------------- RWSE

def test_rwse_of_a_single_bond_alternates_between_zero_and_one():
    out = random_walk_encoding(undirected([(0, 1)]), one_graph(2), steps=6)
    assert out.shape == (2, 6) and out.dtype == torch.float32
    assert out.tolist() == [[0.0, 1.0] * 3] * 2


def test_rwse_of_a_triangle():
    out = random_walk_encoding(cycle(3), one_graph(3), steps=3)
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.5, 0.25]] * 3))


def test_rwse_normalises_by_the_degree_of_the_walking_node():
    # path 0 - 1 - 2: a leaf returns after 2 steps with 1 * 1/2, the centre with 1/2 + 1/2
    out = random_walk_encoding(undirected([(0, 1), (1, 2)]), one_graph(3), steps=2)
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.5], [0.0, 1.0], [0.0, 0.5]]))


def test_rwse_of_benzene_matches_the_cycle_spectrum():
    benzene = featurize_smiles("c1ccccc1")
    steps = 9
    out = random_walk_encoding(torch.from_numpy(benzene.edge_index), one_graph(6), steps)
    expected = torch.tensor([[cycle_return_probability(6, k) for k in range(1, steps + 1)]] * 6)
    torch.testing.assert_close(out, expected)
    assert (out[:, 0::2] == 0).all()  # odd walks never return on a bipartite graph


def test_rwse_of_isolated_atoms_is_zero():
    methane = featurize_smiles("C")
    assert methane.num_atoms == 1 and methane.edge_index.shape == (2, 0)
    out = random_walk_encoding(torch.from_numpy(methane.edge_index), one_graph(1), steps=4)
    assert out.tolist() == [[0.0] * 4]
    # a methane between two bonds in a batch: its row stays zero, its neighbours are unaffected
    batch = torch.tensor([0, 0, 1, 2, 2])
    out = random_walk_encoding(undirected([(0, 1), (3, 4)]), batch, steps=4)
    assert out.tolist() == [[0.0, 1.0, 0.0, 1.0]] * 2 + [[0.0] * 4] + [[0.0, 1.0, 0.0, 1.0]] * 2


@pytest.mark.parametrize("max_padded_entries", [1, 3000, 2**24], ids=["graph-by-graph", "runs", "all-at-once"])
def test_rwse_of_a_batch_is_the_per_graph_rwse_concatenated(hand_dataset, max_padded_entries):
    data = hand_dataset
    batch = data.batch(torch.arange(len(data)))
    out = random_walk_encoding(batch.edge_index, batch.batch, 7, max_padded_entries=max_padded_entries)
    per_graph = []
    for g in range(len(data)):
        edges = data.edge_index[:, data.edge_ptr[g]:data.edge_ptr[g + 1]]
        per_graph.append(random_walk_encoding(edges, one_graph(int(data.num_atoms[g])), 7))
    torch.testing.assert_close(out, torch.cat(per_graph))


# ----------------------------------------------------------------------------- shape

def test_shape_defaults_and_gnn_type():
    shape = GPSShape()
    assert (shape.num_layers, shape.emb_dim, shape.heads, shape.rwse_steps) == (16, 256, 8, 16)
    assert (shape.dropout, shape.attn_dropout) == (0.5, 0.1)
    assert shape.gnn_type == "gps"
    with pytest.raises(AttributeError):
        shape.gnn_type = "gin"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"num_layers": 0}, "num_layers must be an integer >= 1, got 0"),
    ({"emb_dim": -4}, "emb_dim must be an integer >= 1, got -4"),
    ({"heads": 0}, "heads must be an integer >= 1, got 0"),
    ({"rwse_steps": 0}, "rwse_steps must be an integer >= 1, got 0"),
    ({"emb_dim": 30, "heads": 4}, "emb_dim must be divisible by heads, got emb_dim=30 and heads=4"),
    ({"dropout": 1.0}, r"dropout must be a probability in \[0, 1\), got 1.0"),
    ({"attn_dropout": -0.1}, r"attn_dropout must be a probability in \[0, 1\), got -0.1"),
])
def test_shape_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GPSShape(**kwargs)


def test_dropouts_reach_the_gps_layers():
    encoder = GPSEncoder(GPSShape(num_layers=2, emb_dim=8, heads=2, dropout=0.3, attn_dropout=0.2))
    assert all(isinstance(layer, GPSConv) for layer in encoder.layers)
    assert all(layer.dropout == 0.3 and layer.attn.dropout == 0.2 for layer in encoder.layers)


# ----------------------------------------------------------------------------- forward

def encode(encoder: GPSEncoder, batch, **kwargs) -> torch.Tensor:
    return encoder(batch.x, batch.edge_index, batch.edge_attr, batch.batch, **kwargs)


def test_output_shape_and_precomputed_rwse(hand_dataset):
    torch.manual_seed(0)
    encoder = GPSEncoder(TINY).eval()
    batch = hand_dataset.batch(torch.arange(len(hand_dataset)))
    with torch.no_grad():
        out = encode(encoder, batch)
        precomputed = encode(encoder, batch, rwse=random_walk_encoding(batch.edge_index, batch.batch, TINY.rwse_steps))
    assert out.shape == (batch.x.shape[0], TINY.emb_dim) and torch.isfinite(out).all()
    torch.testing.assert_close(precomputed, out)


def test_permuting_the_graphs_permutes_the_node_states(hand_dataset):
    torch.manual_seed(0)
    encoder = GPSEncoder(TINY).eval()
    order = torch.arange(len(hand_dataset))
    shuffled = torch.randperm(len(hand_dataset), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = encode(encoder, hand_dataset.batch(order))
        out_shuffled = encode(encoder, hand_dataset.batch(shuffled))
    node_ptr = hand_dataset.node_ptr
    expected = torch.cat([out[node_ptr[g]:node_ptr[g + 1]] for g in shuffled.tolist()])
    torch.testing.assert_close(out_shuffled, expected, rtol=1e-5, atol=1e-5)


def test_a_few_adam_steps_reduce_a_regression_loss(hand_dataset):
    torch.manual_seed(0)
    encoder = GPSEncoder(TINY)
    head = torch.nn.Linear(TINY.emb_dim, 1)
    batch = hand_dataset.batch(torch.arange(len(hand_dataset)))
    target = torch.randn(batch.num_graphs, 1, generator=torch.Generator().manual_seed(2))
    optimizer = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=3e-3)
    rwse = random_walk_encoding(batch.edge_index, batch.batch, TINY.rwse_steps)
    losses = []
    for _ in range(25):
        node = encode(encoder, batch, rwse=rwse)
        graph = scatter(node, batch.batch, dim=0, dim_size=batch.num_graphs, reduce="mean")
        loss = F.mse_loss(head(graph), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0], losses
    assert all(p.grad is not None for p in encoder.parameters())


# ----------------------------------------------------------------------------- state dict and protocol

def test_state_dict_keys_and_layer_of_key():
    encoder = GPSEncoder(TINY)
    keys = list(encoder.state_dict())
    assert GPSEncoder.INPUT_PREFIXES == ("x_embedding", "rwse_", "edge_embedding")
    input_keys = [key for key in keys if not key.startswith("layers.")]
    assert input_keys == [
        "x_embedding1.weight", "x_embedding2.weight",
        "rwse_norm.weight", "rwse_norm.bias", "rwse_norm.running_mean", "rwse_norm.running_var",
        "rwse_norm.num_batches_tracked", "rwse_encoder.weight", "rwse_encoder.bias",
        "edge_embedding1.weight", "edge_embedding2.weight"]
    norm_keys = [f"norm{j}.module.{name}" for j in (1, 2, 3)
                 for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]
    layer_keys = ["conv.eps", "conv.nn.0.weight", "conv.nn.0.bias", "conv.nn.2.weight", "conv.nn.2.bias",
                  "attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight", "attn.out_proj.bias",
                  "mlp.0.weight", "mlp.0.bias", "mlp.3.weight", "mlp.3.bias", *norm_keys]
    assert keys[len(input_keys):] == [f"layers.{i}.{key}" for i in range(TINY.num_layers) for key in layer_keys]

    layers = [encoder.layer_of_key(key) for key in keys]
    assert layers[:len(input_keys)] == [None] * len(input_keys)
    assert set(layers[len(input_keys):]) == set(range(TINY.num_layers))
    assert encoder.layer_of_key("layers.2.attn.in_proj_weight") == 2
    assert encoder.num_layers == TINY.num_layers


@pytest.mark.parametrize("key", ["layers.3.attn.in_proj_weight", "layers.x.mlp.0.weight", "layers.1",
                                 "graph_pred_linear.weight", "gnns.0.mlp.0.weight"])
def test_layer_of_key_rejects_other_keys(key):
    with pytest.raises(ValueError, match=f"state key '{key}' belongs to no layer and to no input encoder"):
        GPSEncoder(TINY).layer_of_key(key)


def test_embedding_shapes_match_the_hu_vocabulary():
    encoder = GPSEncoder(TINY)
    d = TINY.emb_dim
    assert encoder.x_embedding1.weight.shape == (120, d) and encoder.x_embedding2.weight.shape == (3, d)
    assert encoder.edge_embedding1.weight.shape == (6, d) and encoder.edge_embedding2.weight.shape == (3, d)
    assert encoder.rwse_encoder.weight.shape == (d, TINY.rwse_steps)


@pytest.mark.parametrize(("num_layers", "sizes", "names"), [
    (16, [6, 5, 5], ["layers 0-5", "layers 6-10", "layers 11-15"]),
    (6, [2, 2, 2], ["layers 0-1", "layers 2-3", "layers 4-5"]),
    (4, [2, 1, 1], ["layers 0-1", "layer 2", "layer 3"]),
    (2, [1, 1], ["layer 0", "layer 1"]),
    (1, [1], ["layer 0"]),
])
def test_surgical_units_are_contiguous_thirds(num_layers, sizes, names):
    encoder = GPSEncoder(GPSShape(num_layers=num_layers, emb_dim=4, heads=1, rwse_steps=2))
    units = encoder.surgical_units()
    assert [len(unit) for unit in units] == sizes
    assert encoder.surgical_unit_names() == names
    flat = [module for unit in units for module in unit]
    assert [id(m) for m in flat] == [id(m) for m in encoder.layers]  # disjoint, in order, covering all layers


def test_strict_state_dict_round_trip(hand_dataset):
    torch.manual_seed(0)
    trained = GPSEncoder(TINY)
    batch = hand_dataset.batch(torch.arange(len(hand_dataset)))
    with torch.no_grad():
        encode(trained, batch)  # training-mode pass: moves the batch-norm running statistics
    state = trained.state_dict()
    torch.manual_seed(1)
    fresh = GPSEncoder(TINY)
    fresh.load_state_dict(state, strict=True)
    trained.eval(), fresh.eval()
    with torch.no_grad():
        torch.testing.assert_close(encode(fresh, batch), encode(trained, batch), rtol=0, atol=0)
