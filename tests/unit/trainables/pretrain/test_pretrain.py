"""trainables.pretrain: attribute masking on hand-written molecules."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from tests.unit.trainables.hand_molecules import HAND_SMILES
from trainables.core.data_root import DataRoot
from trainables.data.augment import MASK_ATOM_TYPE, mask_atoms
from trainables.models.backbones import load_state_strict
from trainables.models.gnn import GNNShape
from trainables.models.predictor import GraphPredictor
from trainables.pretrain import PretrainConfig, load_pretrained, pretrain

SMALL = dict(num_layers=2, emb_dim=16, batch_size=8, lr=3e-3)


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.csv"
    pd.DataFrame({"smiles": HAND_SMILES + ["not a molecule"]}).to_csv(path, index=False)
    return path


def test_masking_replaces_a_fraction_of_atoms_by_the_mask_token():
    x = torch.stack([torch.arange(20) % 7, torch.zeros(20, dtype=torch.long)], dim=1)
    masked_x, masked = mask_atoms(x, 0.15, torch.Generator().manual_seed(0))
    assert len(masked) == 3 and len(set(masked.tolist())) == 3
    assert (masked_x[masked, 0] == MASK_ATOM_TYPE).all()
    keep = torch.ones(20, dtype=torch.bool)
    keep[masked] = False
    assert torch.equal(masked_x[keep], x[keep]) and torch.equal(x[:, 0], torch.arange(20) % 7)  # x untouched
    assert len(mask_atoms(x[:2], 0.15, torch.Generator())[1]) == 1  # at least one atom per batch


@pytest.mark.parametrize("objective, arch, ratio", [
    ("attr-mask", "gin", 0.6), ("attr-mask", "gcn", 0.6), ("contrastive", "gin", 0.75), ("descriptors", "gin", 0.6),
    ("descriptors", "gps", 0.6), ("attr-mask", "gps", 0.6),
])
def test_each_objective_loss_decreases(corpus, tmp_path, objective, arch, ratio):
    """Mean loss of the last 5 of 25 epochs below ``ratio`` x that of the first 5.

    The contrastive loss is compared on whole-corpus batches: its value depends on the batch size.
    """
    size = dict(SMALL, emb_dim=16, heads=4) if arch == "gps" else SMALL
    if objective == "contrastive":
        size = dict(size, batch_size=20)
    result = pretrain(PretrainConfig(objective=objective, arch=arch, epochs=25, **size), corpus, tmp_path / "out")
    assert len(result.losses) == 25 and result.steps == 25 * math.ceil(20 / size["batch_size"])  # 20 valid molecules
    assert sum(result.losses[-5:]) / 5 < ratio * sum(result.losses[:5]) / 5, result.losses


def test_the_descriptor_targets_are_cached_and_recorded(corpus, tmp_path):
    from trainables.data.descriptors import DESCRIPTORS
    pretrain(PretrainConfig(objective="descriptors", epochs=1, **SMALL), corpus, tmp_path / "out")
    raw = np.load(tmp_path / "out" / "descriptors.npy")
    assert raw.shape == (20, len(DESCRIPTORS))
    meta = json.loads((tmp_path / "out" / "model.json").read_text())
    assert meta["descriptors"] == list(DESCRIPTORS) and meta["pretraining"] == "supervised"
    assert meta["descriptor_mean"] == pytest.approx(np.nanmean(raw, axis=0).tolist())
    np.save(tmp_path / "out" / "descriptors.npy", raw[:5])  # another corpus's values
    with pytest.raises(ValueError, match="belongs to another corpus"):
        pretrain(PretrainConfig(objective="descriptors", epochs=2, **SMALL), corpus, tmp_path / "out", resume=True)


def test_a_resumed_contrastive_run_equals_an_uninterrupted_one(corpus, tmp_path):
    config = dict(objective="contrastive", **SMALL)
    whole = pretrain(PretrainConfig(epochs=3, **config), corpus, tmp_path / "whole")
    pretrain(PretrainConfig(epochs=1, **config), corpus, tmp_path / "parts")
    resumed = pretrain(PretrainConfig(epochs=3, **config), corpus, tmp_path / "parts", resume=True)
    assert resumed.losses == whole.losses  # augmentations drawn from the saved generator state


def test_a_gps_pretraining_installs_as_a_backbone_with_its_sidecar(corpus, tmp_path, monkeypatch):
    from trainables.models.backbones import BACKBONES, CheckpointMismatchError, build_model, read_checkpoint
    from trainables.models.gps import GPSShape
    from trainables.models.shapes import scratch_shape
    from trainables.pretrain import install

    monkeypatch.setenv("ROFT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ROFT_DATA", raising=False)
    config = PretrainConfig(objective="descriptors", arch="gps", epochs=1, **dict(SMALL, emb_dim=16, heads=2))
    pretrain(config, corpus, tmp_path / "out")
    state = torch.load(tmp_path / "out" / "model.pth", weights_only=True)
    assert {"x_embedding1.weight", "rwse_encoder.weight", "edge_embedding1.weight",
            "layers.1.attn.in_proj_weight"} <= set(state)
    meta = json.loads((tmp_path / "out" / "model.json").read_text())
    assert meta["layout"] == "roft-gps-v1" and meta["shape"] == {
        "gnn_type": "gps", "num_layers": 2, "emb_dim": 16, "heads": 2, "rwse_steps": 16, "dropout": 0.0,
        "attn_dropout": 0.1}
    name, path = install(tmp_path / "out")
    assert name == "roft-gps-descriptors" and path.with_suffix(".json").is_file()
    backbone = BACKBONES.get(name)
    assert backbone.pretraining == "supervised" and backbone.gnn_type == "gps"
    weights = read_checkpoint(backbone, DataRoot())
    model = build_model(backbone, 3, scratch_shape("gps", None, None, 0.5), weights)
    assert model.gnn.shape == GPSShape(2, 16, 2, dropout=0.5)  # size from the sidecar, dropout from fine-tuning
    assert all(torch.equal(model.gnn.state_dict()[k], v) for k, v in state.items())
    path.with_suffix(".json").unlink()
    with pytest.raises(CheckpointMismatchError, match="needs its sidecar"):
        build_model(backbone, 3, scratch_shape("gps", None, None, 0.5), weights)


def test_the_checkpoint_is_in_the_hu_layout_and_loads_strictly(corpus, tmp_path):
    pretrain(PretrainConfig(epochs=2, **SMALL), corpus, tmp_path / "out", corpus_sha256="ab" * 32,
             code_version="test")
    state = torch.load(tmp_path / "out" / "model.pth", weights_only=True)
    assert {"x_embedding1.weight", "x_embedding2.weight", "gnns.0.mlp.0.weight", "batch_norms.1.running_mean"} <= set(state)
    assert state["x_embedding1.weight"].shape == (120, 16)
    predictor = GraphPredictor(GNNShape("gin", 2, 16, 0.0), 1)  # as a fine-tuning backbone loads it
    load_state_strict(predictor.gnn, state, "model.pth")
    gnn, meta = load_pretrained(tmp_path / "out")
    assert all(torch.equal(gnn.state_dict()[k], v) for k, v in state.items())
    assert (meta["objective"], meta["arch"], meta["epochs"], meta["steps"], meta["molecules"]) == ("attr-mask", "gin",
                                                                                                  2, 6, 20)
    assert meta["corpus_sha256"] == "ab" * 32 and meta["final_loss"] == meta["losses"][-1]
    assert json.loads((tmp_path / "out" / "model.json").read_text())["layout"] == "hu2020-gnn"


def test_a_resumed_run_equals_an_uninterrupted_one(corpus, tmp_path):
    whole = pretrain(PretrainConfig(epochs=4, **SMALL), corpus, tmp_path / "whole")
    pretrain(PretrainConfig(epochs=2, **SMALL), corpus, tmp_path / "parts")  # interrupted after epoch 2
    resumed = pretrain(PretrainConfig(epochs=4, **SMALL), corpus, tmp_path / "parts", resume=True)
    assert resumed.steps == whole.steps == 12
    assert resumed.losses == whole.losses  # the same steps, from the saved step on
    a = torch.load(tmp_path / "whole" / "model.pth", weights_only=True)
    b = torch.load(tmp_path / "parts" / "model.pth", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_and_configuration_errors(corpus, tmp_path):
    with pytest.raises(FileNotFoundError, match="no .*state.pt to continue from"):
        pretrain(PretrainConfig(epochs=1, **SMALL), corpus, tmp_path / "none", resume=True)
    pretrain(PretrainConfig(epochs=1, **SMALL), corpus, tmp_path / "out")
    with pytest.raises(FileExistsError, match="pass --resume"):
        pretrain(PretrainConfig(epochs=1, **SMALL), corpus, tmp_path / "out")
    with pytest.raises(ValueError, match="another configuration"):
        pretrain(PretrainConfig(epochs=2, **{**SMALL, "lr": 0.1}), corpus, tmp_path / "out", resume=True)
    with pytest.raises(ValueError, match="objective 'graphcl' is not accepted; accepted: attr-mask, contrastive, "
                                         "descriptors"):
        PretrainConfig(objective="graphcl")
    with pytest.raises(ValueError, match="augmentations \\['node-drop', 'shuffle'\\] are not accepted"):
        PretrainConfig(objective="contrastive", augmentations=("node-drop", "shuffle"))
    with pytest.raises(ValueError, match="arch 'mpnn' is not accepted; accepted: gin, gcn, graphsage, gat, gps"):
        PretrainConfig(arch="mpnn")
    with pytest.raises(ValueError, match="emb_dim must be divisible by heads"):
        PretrainConfig(arch="gps", emb_dim=30, heads=4)
    with pytest.raises(ValueError, match="mask_rate 1.5 is not accepted"):
        PretrainConfig(mask_rate=1.5)
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"smi": ["C"]}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match="no column 'smiles'; columns: smi"):
        pretrain(PretrainConfig(epochs=1, **SMALL), bad, tmp_path / "bad")


def test_an_installed_pretraining_is_a_backbone(corpus, tmp_path, monkeypatch):
    from trainables.models.backbones import BACKBONES, build_model, read_checkpoint
    from trainables.pretrain import install

    monkeypatch.setenv("ROFT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ROFT_GIN_ATTRMASK_CKPT", raising=False)
    monkeypatch.delenv("ROFT_DATA", raising=False)
    backbone = BACKBONES.get("roft-gin-attrmask")
    assert not backbone.is_available(DataRoot())
    pretrain(PretrainConfig(epochs=1, **SMALL), corpus, tmp_path / "out")
    name, path = install(tmp_path / "out")
    assert name == "roft-gin-attrmask" and path == tmp_path / "cache" / "weights" / "user" / "roft-gin-attrmask.pth"
    assert backbone.is_available(DataRoot()) and backbone.pretraining == "self-supervised"
    weights = read_checkpoint(backbone, DataRoot())
    model = build_model(backbone, 1, GNNShape("gin", 5, 300, 0.5), weights)  # the shape comes from the checkpoint
    assert (model.gnn.shape.num_layers, model.gnn.shape.emb_dim) == (2, 16)
    saved = torch.load(tmp_path / "out" / "model.pth", weights_only=True)
    assert all(torch.equal(model.gnn.state_dict()[k], v) for k, v in saved.items())
