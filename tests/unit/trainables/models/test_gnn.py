"""trainables.models.gnn: shapes, hand-computed layer outputs, equivariance, GAT attention normalisation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.unit.trainables.hand_molecules import make_dataset
from trainables.data.featurize import featurize_smiles
from trainables.models.gnn import (
    CONVS,
    GNN_TYPES,
    GATConv,
    GCNConv,
    GINConv,
    GNNShape,
    GraphSAGEConv,
    HuGNN,
    add_self_loops,
)
from trainables.models.predictor import GraphPredictor

D = 8


def path_graph(n: int, bond_type: int = 0, bond_dir: int = 0):
    """A path 0-1-...-(n-1), every bond in both directions."""
    src = [i for k in range(n - 1) for i in (k, k + 1)]
    dst = [i for k in range(n - 1) for i in (k + 1, k)]
    edge_index = torch.tensor([src, dst], dtype=torch.long)
    edge_attr = torch.tensor([[bond_type, bond_dir]] * len(src), dtype=torch.long)
    return edge_index, edge_attr


def in_edges(edge_index, edge_attr, v):
    """(source, attr) of the in-edges of v after adding self-loops, in a python list."""
    ei, ea = add_self_loops(edge_index, edge_attr, int(edge_index.max()) + 1)
    return [(int(ei[0, k]), ea[k]) for k in range(ei.shape[1]) if int(ei[1, k]) == v]


def edge_emb(conv, attr):
    return conv.edge_embedding1.weight[attr[0]] + conv.edge_embedding2.weight[attr[1]]


# ----------------------------------------------------------------------------- shapes

def test_gnn_types_and_shape_validation():
    assert GNN_TYPES == ("gin", "gcn", "graphsage", "gat") and set(CONVS) == set(GNN_TYPES)
    with pytest.raises(ValueError, match="unknown gnn_type 'gine'; accepted: gin, gcn, graphsage, gat"):
        GNNShape("gine")
    with pytest.raises(ValueError, match="got 0 x 16"):
        GNNShape("gin", 0, 16)
    assert GNNShape() == GNNShape("gin", 5, 300, 0.5)


def test_add_self_loops():
    ei, ea = path_graph(3, bond_type=1, bond_dir=2)
    ei2, ea2 = add_self_loops(ei, ea, 3)
    assert ei2.tolist() == [[0, 1, 1, 2, 0, 1, 2], [1, 0, 2, 1, 0, 1, 2]]
    assert ea2.tolist() == [[1, 2]] * 4 + [[4, 0]] * 3


@pytest.mark.parametrize("gnn_type", GNN_TYPES)
def test_output_shapes_on_a_four_node_graph(gnn_type):
    torch.manual_seed(0)
    shape = GNNShape(gnn_type, 2, 16, dropout=0.0)
    model = HuGNN(shape)
    x = torch.tensor([[5, 0], [5, 1], [7, 0], [6, 2]])
    ei, ea = path_graph(4)
    out = model(x, ei, ea)
    assert out.shape == (4, 16) and torch.isfinite(out).all()
    # layer parameter shapes (Hu layout)
    conv = model.gnns[0]
    width = 32 if gnn_type == "gat" else 16
    assert conv.edge_embedding1.weight.shape == (6, width) and conv.edge_embedding2.weight.shape == (3, width)
    assert model.x_embedding1.weight.shape == (120, 16) and model.x_embedding2.weight.shape == (3, 16)
    if gnn_type == "gat":
        assert conv.weight_linear.weight.shape == (32, 16) and conv.att.shape == (1, 2, 32) and conv.bias.shape == (16,)


@pytest.mark.parametrize("gnn_type", GNN_TYPES)
def test_graph_predictor_shapes_and_keys(gnn_type, hand_dataset):
    torch.manual_seed(0)
    model = GraphPredictor(GNNShape(gnn_type, 2, 16), num_tasks=3)
    model.eval()
    batch = hand_dataset.batch(torch.tensor([0, 4, 2]))  # aspirin, methane (no bonds), benzene
    out = model(batch)
    assert out.node.shape == (13 + 1 + 6, 16)
    assert out.graph.shape == (3, 16) and out.logits.shape == (3, 3)
    torch.testing.assert_close(out.graph[1], out.node[13])  # mean pool of a 1-atom molecule
    torch.testing.assert_close(out.graph[0], out.node[:13].mean(0))
    torch.testing.assert_close(out.logits, model.graph_pred_linear(out.graph))
    assert model.head is model.graph_pred_linear
    keys = set(model.state_dict())
    assert {"graph_pred_linear.weight", "graph_pred_linear.bias"} <= keys
    assert all(k.startswith(("gnn.", "graph_pred_linear.")) for k in keys)


# ----------------------------------------------------------------------------- hand computations

def test_gin_on_two_nodes_by_hand():
    torch.manual_seed(1)
    conv = GINConv(D).eval()
    x = torch.randn(2, D)
    ei, ea = path_graph(2, bond_type=1, bond_dir=1)  # a double bond, ENDUPRIGHT
    e_bond = conv.edge_embedding1.weight[1] + conv.edge_embedding2.weight[1]
    e_loop = conv.edge_embedding1.weight[4] + conv.edge_embedding2.weight[0]
    expected = torch.stack([conv.mlp(x[0] + e_loop + x[1] + e_bond), conv.mlp(x[1] + e_loop + x[0] + e_bond)])
    torch.testing.assert_close(conv(x, ei, ea), expected)
    # the MLP is Linear(d, 2d) -> ReLU -> Linear(2d, d)
    agg = x[0] + e_loop + x[1] + e_bond
    manual = conv.mlp[2](torch.relu(conv.mlp[0](agg)))
    torch.testing.assert_close(conv(x, ei, ea)[0], manual)


def test_hu_gnn_gin_stack_by_hand():
    """h0 = X1[atom] + X2[chir]; two GIN layers, eval-mode BN with fresh stats, ReLU between layers only."""
    torch.manual_seed(2)
    model = HuGNN(GNNShape("gin", 2, D, dropout=0.0)).eval()
    x = torch.tensor([[5, 1], [7, 0]])
    ei, ea = path_graph(2)
    h = model.x_embedding1.weight[x[:, 0]] + model.x_embedding2.weight[x[:, 1]]
    bn = 1 / math.sqrt(1 + 1e-5)  # running mean 0, var 1, weight 1, bias 0
    for layer in range(2):
        conv = model.gnns[layer]
        e_bond, e_loop = edge_emb(conv, (0, 0)), edge_emb(conv, (4, 0))
        h = torch.stack([conv.mlp(h[0] + e_loop + h[1] + e_bond), conv.mlp(h[1] + e_loop + h[0] + e_bond)]) * bn
        if layer == 0:
            h = torch.relu(h)
    torch.testing.assert_close(model(x, ei, ea), h)


def test_gcn_on_a_path_by_hand():
    torch.manual_seed(3)
    conv = GCNConv(D)
    x = torch.randn(3, D)
    ei, ea = path_graph(3)
    deg = [2, 3, 2]  # neighbours + self-loop
    h = conv.linear(x)
    out = conv(x, ei, ea)
    for v in range(3):
        expected = sum(1 / math.sqrt(deg[u] * deg[v]) * (h[u] + edge_emb(conv, a)) for u, a in in_edges(ei, ea, v))
        torch.testing.assert_close(out[v], expected)


def test_graphsage_on_a_path_by_hand():
    torch.manual_seed(4)
    conv = GraphSAGEConv(D)
    x = torch.randn(3, D)
    ei, ea = path_graph(3, bond_type=3)
    h = conv.linear(x)
    out = conv(x, ei, ea)
    for v in range(3):
        msgs = [h[u] + edge_emb(conv, a) for u, a in in_edges(ei, ea, v)]
        mean = sum(msgs) / len(msgs)
        torch.testing.assert_close(out[v], mean / mean.norm())
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(3))


def test_gat_on_a_star_by_hand():
    torch.manual_seed(5)
    conv = GATConv(D)
    x = torch.randn(4, D)
    ei = torch.tensor([[0, 1, 0, 2, 0, 3], [1, 0, 2, 0, 3, 0]])  # centre 0, leaves 1..3
    ea = torch.tensor([[0, 0], [0, 0], [1, 0], [1, 0], [3, 2], [3, 2]])
    h = conv.weight_linear(x).view(4, 2, D)
    out = conv(x, ei, ea)
    for v in range(4):
        edges = in_edges(ei, ea, v)
        per_head = []
        for k in range(2):
            msgs = [h[u, k] + edge_emb(conv, a).view(2, D)[k] for u, a in edges]
            scores = torch.stack([F.leaky_relu((torch.cat([h[v, k], m]) * conv.att[0, k]).sum(), 0.2) for m in msgs])
            alpha = torch.softmax(scores, 0)
            per_head.append(sum(a * m for a, m in zip(alpha, msgs)))
        torch.testing.assert_close(out[v], torch.stack(per_head).mean(0) + conv.bias)


def test_gat_attention_sums_to_one_over_in_edges():
    """Equal messages on every edge: a normalised attention returns that message whatever the degree."""
    torch.manual_seed(6)
    conv = GATConv(D)
    with torch.no_grad():
        conv.edge_embedding1.weight.zero_()
        conv.edge_embedding2.weight.zero_()
        conv.bias.copy_(torch.randn(D))
    x = torch.randn(1, D).repeat(5, 1)
    ei = torch.tensor([[0, 1, 0, 2, 0, 3, 0, 4], [1, 0, 2, 0, 3, 0, 4, 0]])  # degrees 5 (centre) and 2
    ea = torch.zeros((8, 2), dtype=torch.long)
    out = conv(x, ei, ea)
    message = conv.weight_linear(x[0]).view(2, D).mean(0) + conv.bias
    torch.testing.assert_close(out, message.expand(5, D))


def test_gat_softmax_groups_by_centre_node():
    from torch_geometric.utils import softmax

    scores = torch.tensor([[0.3], [2.0], [-1.0], [0.5], [0.0]])
    dst = torch.tensor([0, 0, 1, 1, 1])
    alpha = softmax(scores, dst, num_nodes=2)
    sums = torch.zeros(2, 1).index_add_(0, dst, alpha)
    torch.testing.assert_close(sums, torch.ones(2, 1))
    torch.testing.assert_close(alpha[:2, 0], torch.softmax(scores[:2, 0], 0))


# ----------------------------------------------------------------------------- equivariance

@pytest.mark.parametrize("gnn_type", GNN_TYPES)
def test_permuting_nodes_permutes_outputs(gnn_type):
    torch.manual_seed(7)
    model = HuGNN(GNNShape(gnn_type, 3, 16)).eval()
    graph = featurize_smiles("Cn1cnc2c1c(=O)n(C)c(=O)n2C")  # caffeine, 14 nodes
    x, ei, ea = (torch.from_numpy(a) for a in (graph.x, graph.edge_index, graph.edge_attr))
    perm = torch.randperm(14, generator=torch.Generator().manual_seed(0))
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(14)
    edge_order = torch.randperm(ei.shape[1], generator=torch.Generator().manual_seed(1))
    out = model(x, ei, ea)
    out_perm = model(x[perm], inverse[ei][:, edge_order], ea[edge_order])
    torch.testing.assert_close(out_perm, out[perm], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out_perm, out)  # the permutation is not trivial


def test_graph_outputs_independent_of_batch_neighbours():
    torch.manual_seed(8)
    data = make_dataset(["CCO", "c1ccccc1", "CC(=O)Oc1ccccc1C(=O)O"], [0, 1, 0])
    model = GraphPredictor(GNNShape("gat", 2, 16), 1).eval()
    together = model(data.batch(torch.tensor([0, 1, 2]))).logits
    alone = torch.cat([model(data.batch(torch.tensor([i]))).logits for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)


def test_dropout_only_in_training_mode():
    torch.manual_seed(9)
    model = HuGNN(GNNShape("gin", 2, 16, dropout=0.5))
    x = torch.tensor([[5, 0], [7, 0], [6, 0]])
    ei, ea = path_graph(3)
    model.eval()
    torch.testing.assert_close(model(x, ei, ea), model(x, ei, ea))
    model.train()
    torch.manual_seed(0)
    a = model(x, ei, ea)
    assert (a == 0).any()
