"""``roft sweep --store s3://...`` end to end: a real Ray sweep whose workers write to a local S3 server."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from pyarrow import fs

from orchestrator.store.results import ResultStore
from orchestrator.sweep.plan import plan_sweep
from search_spaces import parse_spec
from trainables.core.data_root import DataRoot

pytestmark = [pytest.mark.slow, pytest.mark.data]

REPO = Path(__file__).resolve().parents[2]
SPEC = {
    "name": "s3tiny",
    "backbones": ["scratch-gcn"],
    "methods": {"wise-ft": {"alpha": [0.5]}},  # the planner adds its full-ft parent: a checkpoint on S3
    "tasks": ["esol"],
    "splits": ["scaffold"],
    "label_settings": ["fewshot:16"],
    "seeds": [0],
    "training": {"epochs": 2, "batch_size": 8},
    "model": {"num_layers": 2, "emb_dim": 8},
    "resources": {"cpu": 1},
}


def test_a_sweep_writes_its_trials_and_checkpoints_to_s3(s3_store_uri, s3_bucket, real_env, tmp_path):
    spec_file = tmp_path / "s3tiny.yaml"
    spec_file.write_text(yaml.safe_dump(SPEC))
    ray_tmp = tempfile.mkdtemp(prefix="roft-ray-", dir="/tmp")  # its own Ray, never the session's
    env = {**os.environ, "RAY_TMPDIR": ray_tmp, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    env.pop("RAY_ADDRESS", None)
    try:
        # The credentials reach the Ray workers only through the environment (s3_server set them).
        result = subprocess.run([sys.executable, "-m", "orchestrator", "sweep", str(spec_file), "--store", s3_store_uri],
                                cwd=REPO, env=env, capture_output=True, text=True, timeout=480)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"store: s3://{s3_bucket}/results\n" in result.stderr
    assert "ran 2 trials" in result.stderr and "2 landed, 0 failed" in result.stderr

    store = ResultStore(s3_store_uri)
    rows = store.read_trials().to_pandas().set_index("method")
    assert sorted(rows.index) == ["full-ft", "wise-ft"]
    ft, wise = rows.loc["full-ft"], rows.loc["wise-ft"]
    assert ft.artifact_path == f"s3://{s3_bucket}/results/artifacts/{ft.trial_key}/best.pt"
    assert hashlib.sha256(store.read_artifact(ft.trial_key)).hexdigest() == ft.artifact_sha256
    # the wise-ft trial ran in a Ray worker that read its parent's checkpoint back from S3
    assert wise.parent_trial_key == ft.trial_key and wise.parent_artifact_sha256 == ft.artifact_sha256
    epochs = store.read_side_table("epochs").to_pandas()
    assert sorted(epochs.loc[epochs.trial_key == ft.trial_key, "epoch"]) == [1, 2]
    assert store.failed_keys() == set() and store.read_specs()[0][0] == "s3tiny.yaml"
    listed = store.fs.get_file_info(fs.FileSelector(store.base, recursive=True))
    assert not [info.path for info in listed if "/_tune" in info.path]  # Tune's state stays on the driver's disk

    again = plan_sweep(parse_spec(SPEC), store, DataRoot(real_env))  # a rerun finds both trials done
    assert again.pending == [] and len(again.done) == 2
