"""Credentials in the environment never reach what a sweep leaves behind: a real tiny sweep (one trial
that lands, one that fails) runs as ``roft sweep`` with recognisable fake AWS, MLflow and Ray credentials
set, then ``roft report``; no stored row, saved spec, failure record, log file, report or output
holds any of them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.data, pytest.mark.slow]

FAKE = {"AWS_ACCESS_KEY_ID": "AKIAROFTFAKELEAK0001", "AWS_SECRET_ACCESS_KEY": "roftFakeSecretLeak0002zzzzzzzzzzzzzzzzz",
        "AWS_SESSION_TOKEN": "roftFakeSessionLeak0003", "MLFLOW_TRACKING_TOKEN": "roftFakeMlflowTokenLeak0004",
        "MLFLOW_TRACKING_PASSWORD": "roftFakeMlflowPasswordLeak0005", "RAY_AUTH_TOKEN": "roftFakeRayTokenLeak0006"}
SPEC = {"name": "leak-check", "description": "credentials must not land anywhere",
        "backbones": ["scratch-gin"], "methods": {"lp": {}}, "tasks": ["esol"], "splits": ["scaffold"],
        "label_settings": ["fewshot:16", "fewshot:100000"],  # the second fails: a failure record is written
        "seeds": [0], "training": {"epochs": 1, "batch_size": 8}, "model": {"num_layers": 2, "emb_dim": 8},
        "resources": {"cpu": 1}, "execution": {"max_failures": 0}}


def _leaks(root: Path) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            found += [f"{path}: {name}" for name, value in FAKE.items() if value.encode() in data]
    return found


def test_no_credential_reaches_the_store_logs_or_report(real_env, tmp_path):
    (tmp_path / "tmp").mkdir()
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(SPEC))
    ray_tmp = tempfile.mkdtemp(prefix="roft-leak-", dir="/tmp")  # Ray's socket paths must stay short
    env = {**os.environ, **FAKE, "TMPDIR": str(tmp_path / "tmp"), "RAY_TMPDIR": ray_tmp,
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    env.pop("RAY_ADDRESS", None)
    try:
        sweep = subprocess.run([sys.executable, "-m", "orchestrator", "sweep", "spec.yaml", "--store", "store",
                                "--device", "cpu"], cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=900)
        assert sweep.returncode == 1, sweep.stderr[-3000:]  # one trial failed, as planned
        assert "1 landed, 1 failed" in sweep.stderr, sweep.stderr[-3000:]
        report = subprocess.run([sys.executable, "-m", "orchestrator", "report", "--store", "store", "--out",
                                 "report"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert report.returncode == 0, report.stderr[-3000:]
        store = tmp_path / "store"
        assert list((store / "failures").rglob("*.parquet")) and list((store / "specs").glob("*.yaml"))
        assert list((tmp_path / "tmp" / "roft-logs").glob("*.log")), "the sweep's log file (kept after a failure)"
        outputs = [f"{name} in the output of {what}" for what, run in (("sweep", sweep), ("report", report))
                   for name, value in FAKE.items() if value in run.stdout + run.stderr]
        assert _leaks(tmp_path) + outputs == []
        assert _leaks(Path(ray_tmp)) == [], "Ray's session logs of the local sweep"
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
