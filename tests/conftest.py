"""Shared fixtures: the real data root, an isolated cache, and one Ray session per test run."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_DEFAULT_DATA = REPO.parent / "shared" / "data"


def real_data_root() -> Path | None:
    root = Path(os.environ.get("ROFT_DATA") or _DEFAULT_DATA).resolve()
    return root if (root / "moleculenet").is_dir() else None


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = real_data_root()
    if root is None:
        pytest.skip("real data not available: set ROFT_DATA to a folder laid out like shared/data")
    return root


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    """A featurization cache shared by the tests of one run (never ~/.cache)."""
    return tmp_path_factory.mktemp("roft-cache")


@pytest.fixture
def real_env(monkeypatch, data_root, session_cache):
    """ROFT_DATA -> the real data, ROFT_CACHE -> the session cache."""
    monkeypatch.setenv("ROFT_DATA", str(data_root))
    monkeypatch.setenv("ROFT_CACHE", str(session_cache))
    return data_root


@pytest.fixture(scope="session")
def ray_session(data_root, session_cache):
    """A local Ray on loopback, started once per test session in a fresh temp dir."""
    import ray

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ["ROFT_CACHE"] = str(session_cache)  # Ray workers inherit the driver's environment
    os.environ["ROFT_DATA"] = str(data_root)
    from orchestrator.execute import init_ray

    ray_tmp = tempfile.mkdtemp(prefix="roft-ray-", dir="/tmp")
    os.environ["RAY_TMPDIR"] = ray_tmp
    init_ray(num_cpus=2)
    yield ray
    ray.shutdown()
