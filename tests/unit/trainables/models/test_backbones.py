"""trainables.models.backbones: registry, strict checkpoint loading, user-supplied and scratch backbones."""

from __future__ import annotations

import pytest
import torch

from trainables.core.data_root import DataRoot
from trainables.data import sources
from trainables.data.sources import ChecksumError, DataUnavailableError
from trainables.models.backbones import (
    BACKBONES,
    Backbone,
    CheckpointMismatchError,
    build_model,
    load_state_strict,
    read_checkpoint,
)
from trainables.models.gnn import GNNShape, HuGNN
from trainables.models.shapes import infer_shape

HU = [f"hu-{arch}-{strategy}" for arch in ("gcn", "graphsage", "gat")
      for strategy in ("contextpred", "supervised", "supervised-contextpred")]
SMALL = GNNShape("gin", 2, 16)


@pytest.fixture
def no_data_root(monkeypatch, tmp_path):
    monkeypatch.delenv("ROFT_DATA", raising=False)
    monkeypatch.delenv("ROFT_MOLE_BERT_CKPT", raising=False)
    monkeypatch.delenv("ROFT_GRAPHMAE_CKPT", raising=False)
    monkeypatch.setenv("ROFT_CACHE", str(tmp_path / "cache"))
    return tmp_path


def small_gin_state(shape: GNNShape = SMALL) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return HuGNN(shape).state_dict()


def test_registry_contents():
    made_here = [f"roft-{arch}-{objective}" for objective in ("attrmask", "contrastive", "descriptors")
                 for arch in ("gin", "gcn", "graphsage", "gat", "gps")]
    assert BACKBONES.names() == HU + ["mole-bert", "graphmae", *made_here, "scratch-gin", "scratch-gcn",
                                      "scratch-graphsage", "scratch-gat", "scratch-gps"]
    assert BACKBONES.get("roft-gps-descriptors").pretraining == "supervised"
    assert BACKBONES.get("roft-gat-contrastive").pretraining == "self-supervised"
    assert BACKBONES.get("roft-gcn-attrmask").user_file_env == "ROFT_GCN_ATTRMASK_CKPT"
    gat = BACKBONES.get("hu-gat-supervised-contextpred")
    assert (gat.gnn_type, gat.pretraining, gat.data_file) == (
        "gat", "both", "weights/pretrain_gnns_chem/gat_supervised_contextpred.pth")
    assert BACKBONES.get("hu-gcn-contextpred").pretraining == "self-supervised"
    assert BACKBONES.get("hu-graphsage-supervised").pretraining == "supervised"
    for name in HU:
        assert BACKBONES.get(name).data_file in sources.FILES
    assert BACKBONES.get("mole-bert").user_file_env == "ROFT_MOLE_BERT_CKPT"
    assert BACKBONES.get("graphmae").user_file_env == "ROFT_GRAPHMAE_CKPT"
    scratch = BACKBONES.get("scratch-gat")
    assert not scratch.is_pretrained and scratch.is_available(DataRoot()) and scratch.checkpoint_path(DataRoot()) is None


# ----------------------------------------------------------------------------- real Hu checkpoints

@pytest.mark.data
@pytest.mark.parametrize("name", HU)
def test_real_hu_checkpoints_load_strictly(name, data_root):
    backbone = BACKBONES.get(name)
    assert backbone.is_available(DataRoot(data_root))
    weights = read_checkpoint(backbone, DataRoot(data_root))
    assert weights.sha256 == sources.FILES.get(backbone.data_file).sha256
    assert weights.path == data_root / backbone.data_file
    model = build_model(backbone, num_tasks=2, shape=SMALL, pretrained=weights)
    assert model.gnn.shape == GNNShape(backbone.gnn_type, 5, 300, SMALL.dropout)
    loaded = model.gnn.state_dict()
    assert set(loaded) == set(weights.state)
    assert len(loaded) == (57 if backbone.gnn_type == "gat" else 47)
    for key, value in weights.state.items():
        assert torch.equal(loaded[key], value), key
    assert model.graph_pred_linear.weight.shape == (2, 300)


@pytest.mark.data
def test_molclr_is_not_hu_layout(data_root):
    """A real checkpoint of another layout is refused with every difference listed."""
    backbone = Backbone("molclr", "gcn", "self-supervised", "test", data_file="weights/molclr/molclr_gcn_model.pth")
    weights = read_checkpoint(backbone, DataRoot(data_root))
    with pytest.raises(CheckpointMismatchError) as info:
        build_model(backbone, 1, SMALL, weights)
    message = str(info.value)
    assert "missing keys: ['gnns.0.linear.bias', 'gnns.0.linear.weight'" in message
    assert "unexpected keys: [" in message and "'feat_lin.weight'" in message and "'gnns.0.weight'" in message
    assert "x_embedding1.weight: checkpoint (119, 300) vs model (120, 300)" in message
    assert "gnns.0.edge_embedding1.weight: checkpoint (5, 1) vs model (6, 300)" in message


@pytest.mark.data
def test_modified_hu_checkpoint_fails_its_checksum(monkeypatch, tmp_path, data_root):
    backbone = BACKBONES.get("hu-gcn-contextpred")
    root = tmp_path / "data"
    target = root / backbone.data_file
    target.parent.mkdir(parents=True)
    target.write_bytes((data_root / backbone.data_file).read_bytes() + b"\0")
    with pytest.raises(ChecksumError, match="gcn_contextpred.pth: sha256 of"):
        read_checkpoint(backbone, DataRoot(root))


def test_hu_checkpoint_missing_from_data_root(no_data_root):
    backbone = BACKBONES.get("hu-gat-supervised")
    (no_data_root / "empty").mkdir()
    assert not backbone.is_available(DataRoot(no_data_root / "empty"))
    with pytest.raises(DataUnavailableError, match="weights/pretrain_gnns_chem/gat_supervised.pth: not found at"):
        read_checkpoint(backbone, DataRoot(no_data_root / "empty"))


# ----------------------------------------------------------------------------- strict loading

def test_load_state_strict_lists_missing_and_unexpected_keys(tmp_path):
    state = small_gin_state()
    state.pop("gnns.1.mlp.0.bias")
    state["batch_norms.0.gamma"] = state.pop("batch_norms.0.weight")
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointMismatchError) as info:
        load_state_strict(HuGNN(SMALL), torch.load(path, weights_only=True), f"checkpoint {path}")
    message = str(info.value)
    assert message.startswith(f"checkpoint {path} does not match the HuGNN architecture")
    assert "missing keys: ['batch_norms.0.weight', 'gnns.1.mlp.0.bias']" in message
    assert "unexpected keys: ['batch_norms.0.gamma']" in message
    assert "shape mismatches" not in message


def test_load_state_strict_lists_shape_mismatches():
    state = small_gin_state()
    state["gnns.0.mlp.0.weight"] = torch.zeros(31, 16)
    state["x_embedding2.weight"] = torch.zeros(4, 16)
    model = HuGNN(SMALL)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointMismatchError) as info:
        load_state_strict(model, state, "ckpt")
    message = str(info.value)
    assert ("shape mismatches: ['gnns.0.mlp.0.weight: checkpoint (31, 16) vs model (32, 16)', "
            "'x_embedding2.weight: checkpoint (4, 16) vs model (3, 16)']") in message
    assert "missing keys" not in message and "unexpected keys" not in message
    # nothing was loaded
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_load_state_strict_loads_a_matching_state():
    state = small_gin_state()
    model = HuGNN(SMALL)
    load_state_strict(model, state, "ckpt")
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_infer_shape():
    state = small_gin_state(GNNShape("gin", 3, 12))
    assert infer_shape(state, "gin", 0.1) == GNNShape("gin", 3, 12, 0.1)
    with pytest.raises(CheckpointMismatchError, match="no 'x_embedding1.weight'"):
        infer_shape({"gnn.x_embedding1.weight": torch.zeros(120, 4)}, "gin", 0.5)
    with pytest.raises(CheckpointMismatchError, match="batch_norms"):
        infer_shape({"x_embedding1.weight": torch.zeros(120, 4)}, "gin", 0.5)


# ----------------------------------------------------------------------------- user-supplied files

def test_mole_bert_without_file_names_the_env_variable(no_data_root):
    backbone = BACKBONES.get("mole-bert")
    assert not backbone.is_available(DataRoot.from_setting())
    with pytest.raises(DataUnavailableError) as info:
        read_checkpoint(backbone, DataRoot.from_setting())
    message = str(info.value)
    assert "ROFT_MOLE_BERT_CKPT=/path/to/file.pth" in message
    assert str(no_data_root / "cache" / "weights" / "user" / "mole-bert.pth") in message
    assert "<data root>/weights/user/mole-bert.pth" in message


def test_mole_bert_env_pointing_nowhere_is_listed(no_data_root, monkeypatch):
    missing = no_data_root / "nope.pth"
    monkeypatch.setenv("ROFT_MOLE_BERT_CKPT", str(missing))
    with pytest.raises(DataUnavailableError, match=str(missing)):
        read_checkpoint(BACKBONES.get("mole-bert"), DataRoot.from_setting())


def test_mole_bert_from_env_loads_a_gin_5x300(no_data_root, monkeypatch):
    torch.manual_seed(0)
    state = HuGNN(GNNShape("gin", 5, 300)).state_dict()
    path = no_data_root / "mole-bert.pth"
    torch.save(state, path)
    monkeypatch.setenv("ROFT_MOLE_BERT_CKPT", str(path))
    backbone = BACKBONES.get("mole-bert")
    assert backbone.is_available(DataRoot.from_setting())
    weights = read_checkpoint(backbone, DataRoot.from_setting())
    assert weights.path == path and weights.sha256 == sources.sha256_of(path)
    model = build_model(backbone, 3, SMALL, weights)
    assert model.gnn.shape == GNNShape("gin", 5, 300, SMALL.dropout)
    assert all(torch.equal(state[k], v) for k, v in model.gnn.state_dict().items())


def test_graphmae_from_the_data_root(no_data_root):
    root = no_data_root / "data"
    (root / "weights" / "user").mkdir(parents=True)
    torch.save(small_gin_state(), root / "weights" / "user" / "graphmae.pth")
    weights = read_checkpoint(BACKBONES.get("graphmae"), DataRoot(root))
    assert weights.path == root / "weights" / "user" / "graphmae.pth"
    assert build_model(BACKBONES.get("graphmae"), 1, GNNShape("gcn", 5, 300), weights).gnn.shape == GNNShape(
        "gin", 2, 16, 0.5)


def test_corrupted_user_checkpoint_is_a_mismatch(no_data_root, monkeypatch):
    state = small_gin_state()
    state.pop("gnns.0.mlp.2.weight")
    state["gnns.0.mlp.3.weight"] = torch.zeros(16, 32)
    path = no_data_root / "broken.pth"
    torch.save(state, path)
    monkeypatch.setenv("ROFT_MOLE_BERT_CKPT", str(path))
    weights = read_checkpoint(BACKBONES.get("mole-bert"), DataRoot.from_setting())
    with pytest.raises(CheckpointMismatchError) as info:
        build_model(BACKBONES.get("mole-bert"), 1, SMALL, weights)
    assert "missing keys: ['gnns.0.mlp.2.weight']" in str(info.value)
    assert "unexpected keys: ['gnns.0.mlp.3.weight']" in str(info.value)
    assert "backbone mole-bert" in str(info.value)


@pytest.mark.parametrize("content", ["garbage", "truncated", "tensor"])
def test_unreadable_checkpoint_is_a_mismatch(no_data_root, monkeypatch, content):
    path = no_data_root / f"{content}.pth"
    if content == "garbage":
        path.write_bytes(b"this is not a checkpoint\n" * 10)
    elif content == "truncated":
        torch.save(small_gin_state(), path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        torch.save(torch.zeros(3), path)
    monkeypatch.setenv("ROFT_MOLE_BERT_CKPT", str(path))
    with pytest.raises(CheckpointMismatchError) as info:
        read_checkpoint(BACKBONES.get("mole-bert"), DataRoot.from_setting())
    assert "backbone mole-bert" in str(info.value) and str(path) in str(info.value)
    if content == "tensor":
        assert "holds a Tensor, not a state dict" in str(info.value)
    else:
        assert "cannot read" in str(info.value)


# ----------------------------------------------------------------------------- scratch

@pytest.mark.parametrize("arch", ["gin", "gcn", "graphsage", "gat"])
def test_scratch_backbone_uses_the_given_shape(arch):
    backbone = BACKBONES.get(f"scratch-{arch}")
    assert read_checkpoint(backbone, DataRoot.from_setting()) is None
    model = build_model(backbone, 4, GNNShape("gin", 3, 24, 0.2), None)
    assert model.gnn.shape == GNNShape(arch, 3, 24, 0.2)  # the backbone decides the layer type
    assert len(model.gnn.gnns) == 3 and model.graph_pred_linear.weight.shape == (4, 24)


def test_scratch_initialisation_follows_the_rng():
    backbone = BACKBONES.get("scratch-gin")
    torch.manual_seed(3)
    a = build_model(backbone, 1, SMALL, None).state_dict()
    torch.manual_seed(3)
    b = build_model(backbone, 1, SMALL, None).state_dict()
    torch.manual_seed(4)
    c = build_model(backbone, 1, SMALL, None).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["gnn.x_embedding1.weight"], c["gnn.x_embedding1.weight"])


def test_scratch_shapes_default_per_architecture():
    from trainables.models.gps import GPSShape
    from trainables.models.shapes import scratch_shape

    assert scratch_shape("gin", None, None, 0.5) == GNNShape("gin", 5, 300, 0.5)
    assert scratch_shape("gps", None, None, 0.5) == GPSShape(16, 256, 8, dropout=0.5)  # the paper's GPS-deep
    assert scratch_shape("gps", 3, 32, 0.1) == GPSShape(3, 32, 8, dropout=0.1)
    with pytest.raises(ValueError, match="emb_dim 300 is not accepted for a GPS encoder; accepted: a multiple of its "
                                         "8 attention heads"):
        scratch_shape("gps", 5, 300, 0.5)
    model = build_model(BACKBONES.get("scratch-gps"), 2, GNNShape("gin", 2, 16, 0.2), None)
    assert model.gnn.shape == GPSShape(2, 16, 8, dropout=0.2) and model.gnn.num_layers == 2
