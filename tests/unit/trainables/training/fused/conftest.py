import pytest
import torch

from orchestrator.bench.molecules import synthetic_dataset

# The fused engine's checks run on the CPU everywhere, and on the GPU where there is one.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="session")
def molecules():
    """120 small synthetic molecules (about 10 atoms each), one binary task."""
    return synthetic_dataset(120, mean_atoms=10, seed=3)
