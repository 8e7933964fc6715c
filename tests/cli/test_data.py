"""orchestrator/cli/data.py: ``roft methods list``; ``roft backbones list`` on a data root with a corrupted checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.cli import main
from trainables.methods import METHODS

CORRUPTED = "weights/pretrain_gnns_chem/gcn_contextpred.pth"


def test_methods_list_names_every_method_with_defaults_and_paper_grids(capsys):
    assert main(["methods", "list"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert set(lines) == set(METHODS.names())
    assert "alpha=0.5 (paper grid: 0.1, 0.3, 0.5, 0.7, 0.9)" in lines["wise-ft"]
    assert " full-ft " in lines["wise-ft"]  # the parent it starts from
    assert "groups=6 (paper grid: 1, 2, 3, 6)" in lines["roft-mol"] and "bn_stats=ft {ft|interpolate}" in lines["roft-mol"]
    assert "d=0.01 (paper grid: 1, 1e-1, 1e-2, 1e-3, 1e-4); d_head=null" in lines["l2-sp"]
    assert "lp_epochs=null" in lines["lp-ft"] and "paper grid" not in lines["lp-ft"]  # nothing invented
    assert lines["full-ft"].split()[1:] == ["baseline", "-", "(none)"]


@pytest.fixture
def corrupted_root(tmp_path, data_root) -> Path:
    """A data root of symlinks to the real one, with one Hu et al. checkpoint replaced by garbage."""
    root = tmp_path / "data"
    (root / "weights" / "pretrain_gnns_chem").mkdir(parents=True)
    for entry in data_root.iterdir():
        if entry.name != "weights":
            (root / entry.name).symlink_to(entry)
    for entry in (data_root / "weights").iterdir():
        if entry.name != "pretrain_gnns_chem":
            (root / "weights" / entry.name).symlink_to(entry)
    for entry in (data_root / "weights" / "pretrain_gnns_chem").iterdir():
        (root / "weights" / "pretrain_gnns_chem" / entry.name).symlink_to(entry)
    (root / CORRUPTED).unlink()
    (root / CORRUPTED).write_bytes(b"not a checkpoint" * 64)
    return root


def test_backbones_list_tells_a_mismatched_checkpoint_from_a_verified_one(corrupted_root, tmp_path, capsys,
                                                                          monkeypatch):
    user_file = tmp_path / "mole-bert.pth"
    user_file.write_bytes(b"user weights")
    monkeypatch.setenv("ROFT_MOLE_BERT_CKPT", str(user_file))
    monkeypatch.delenv("ROFT_GRAPHMAE_CKPT", raising=False)
    monkeypatch.setenv("ROFT_CACHE", str(tmp_path / "cache"))
    assert main(["backbones", "list", "--data-root", str(corrupted_root)]) == 0
    captured = capsys.readouterr()
    lines = {line.split()[0]: line.split() for line in captured.out.splitlines()[2:]}
    assert lines["hu-gcn-contextpred"][1:6] == ["gcn", "self-supervised", "no", "mismatch", CORRUPTED]
    assert lines["hu-gcn-supervised"][3:5] == ["yes", "verified"]
    assert lines["mole-bert"][3:6] == ["yes", "recorded", "$ROFT_MOLE_BERT_CKPT"]
    assert lines["graphmae"][3:5] == ["no", "missing"]
    assert lines["scratch-gin"][3:6] == ["yes", "-", "(random"]
    assert "mismatch: a registered file whose sha256 differs" in captured.err

