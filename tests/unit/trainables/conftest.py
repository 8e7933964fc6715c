"""Fixtures for the trainables unit tests.

The real data root and the shared featurization cache come from ``tests/conftest.py``
(``data_root``: skips when the real data is absent; ``real_env``). Here: an isolated
``ROFT_CACHE`` for every test (nothing is ever written to ``~/.cache``), one torch thread per test, and a tiny hand-written
dataset for training tests (see ``hand_molecules.py``).
"""

from __future__ import annotations

import pytest
import torch

from tests.unit.trainables.hand_molecules import HAND_LABELS, HAND_SMILES, make_dataset
from trainables.data.dataset import GraphDataset


@pytest.fixture(autouse=True)
def _isolated_cache(monkeypatch, tmp_path):
    """Every test gets its own ROFT_CACHE (tests that use ``real_env`` switch to the session cache)."""
    monkeypatch.setenv("ROFT_CACHE", str(tmp_path / "roft-cache"))


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny tensors: one intra-op thread is much faster on a shared 2-core box (and deterministic)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def hand_dataset() -> GraphDataset:
    """The 20 hand molecules with made-up binary labels (read-only: shared by the session)."""
    return make_dataset(HAND_SMILES, HAND_LABELS)
