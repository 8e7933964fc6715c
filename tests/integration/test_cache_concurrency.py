"""Concurrent trials on one node share one featurized cache without corrupting it."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.data

LOADER = """
import hashlib, sys, torch
from trainables.data.dataset import load_graphs
graphs, sha = load_graphs("moleculenet/esol.csv", "smiles")
digest = hashlib.sha256()
for name in ("x", "edge_index", "edge_attr", "node_ptr", "edge_ptr"):
    digest.update(graphs[name].numpy().tobytes())
print(digest.hexdigest())
"""


def test_concurrent_loaders_build_one_valid_cache(real_env, tmp_path, monkeypatch):
    monkeypatch.setenv("ROFT_CACHE", str(tmp_path))
    procs = [subprocess.Popen([sys.executable, "-c", LOADER], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err for _, err in outputs]
    digests = {out.strip() for out, _ in outputs}
    assert len(digests) == 1
    files = sorted(p.name for p in (tmp_path / "featurized").iterdir())
    assert len([f for f in files if f.endswith(".pt")]) == 1
    assert not [f for f in files if f.endswith(".tmp")]
