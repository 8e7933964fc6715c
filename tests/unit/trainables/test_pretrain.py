"""trainables.pretrain: attribute masking on hand-written molecules."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from tests.unit.trainables.hand_molecules import HAND_SMILES
from trainables.backbones import load_state_strict
from trainables.gnn import GNNShape, GraphPredictor
from trainables.pretrain import MASK_ATOM_TYPE, PretrainConfig, load_pretrained, mask_atoms, pretrain

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


@pytest.mark.parametrize("arch", ["gin", "gcn"])
def test_the_masked_atom_loss_decreases(corpus, tmp_path, arch):
    result = pretrain(PretrainConfig(arch=arch, epochs=25, **SMALL), corpus, tmp_path / "out")
    assert len(result.losses) == 25 and result.steps == 25 * 3  # 20 valid molecules, batches of 8
    assert sum(result.losses[-5:]) / 5 < 0.6 * sum(result.losses[:5]) / 5, result.losses


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
    with pytest.raises(ValueError, match="objective 'contrastive' is not accepted; accepted: attr-mask"):
        PretrainConfig(objective="contrastive")
    with pytest.raises(ValueError, match="mask_rate 1.5 is not accepted"):
        PretrainConfig(mask_rate=1.5)
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"smi": ["C"]}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match="no column 'smiles'; columns: smi"):
        pretrain(PretrainConfig(epochs=1, **SMALL), bad, tmp_path / "bad")


def test_an_installed_pretraining_is_a_backbone(corpus, tmp_path, monkeypatch):
    from trainables.backbones import BACKBONES, build_model, read_checkpoint
    from trainables.pretrain import install

    monkeypatch.setenv("ROFT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ROFT_GIN_ATTRMASK_CKPT", raising=False)
    monkeypatch.delenv("ROFT_DATA", raising=False)
    backbone = BACKBONES.get("roft-gin-attrmask")
    assert not backbone.is_available(None)
    pretrain(PretrainConfig(epochs=1, **SMALL), corpus, tmp_path / "out")
    name, path = install(tmp_path / "out")
    assert name == "roft-gin-attrmask" and path == tmp_path / "cache" / "weights" / "user" / "roft-gin-attrmask.pth"
    assert backbone.is_available(None) and backbone.pretraining == "self-supervised"
    weights = read_checkpoint(backbone, None)
    model = build_model(backbone, 1, GNNShape("gin", 5, 300, 0.5), weights)  # the shape comes from the checkpoint
    assert (model.gnn.shape.num_layers, model.gnn.shape.emb_dim) == (2, 16)
    saved = torch.load(tmp_path / "out" / "model.pth", weights_only=True)
    assert all(torch.equal(model.gnn.state_dict()[k], v) for k, v in saved.items())
