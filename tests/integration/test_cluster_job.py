"""A real two-node Ray cluster on loopback runs a sweep submitted with ``ray job submit``.

The head (``ray start --head``, no GPU) and a worker (``ray start --address``, one GPU, which
Ray only counts) are separate Ray nodes on 127.0.0.2 and 127.0.0.3, started by
:func:`tests.integration.cluster.loopback_cluster`; every address the cluster reports stays on
127.0.0.0/8 (the test checks that). ``ray job submit --working-dir .`` runs ``python -m
orchestrator sweep`` on the head; the spec asks for half a GPU per trial, so Tune must place its
trials on the worker.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from orchestrator.store.results import ResultStore
from orchestrator.sweep.plan import plan_sweep
from search_spaces import load_spec
from tests.integration.cluster import BIN, HEAD_IP, WORKER_IP, loopback_cluster, ray_env
from trainables.core.data_root import DataRoot

pytestmark = [pytest.mark.slow, pytest.mark.data, pytest.mark.cluster]

REPO = Path(__file__).resolve().parents[2]

SPEC = {
    "name": "cluster-job",
    "backbones": ["scratch-gin"],
    "methods": {"full-ft": {}},
    "tasks": ["bbbp"],
    "splits": ["scaffold"],
    "label_settings": ["fewshot:16"],
    "seeds": [0, 1],
    "training": {"epochs": 2, "batch_size": 8},
    "model": {"num_layers": 2, "emb_dim": 16},
    "resources": {"cpu": 1, "gpu": 0.5},  # only the worker has a GPU
    "execution": {"fuse": False, "max_failures": 0},  # two Tune trials
}


def test_ray_job_submit_runs_a_sweep_on_a_two_node_cluster(real_env, session_cache, tmp_path):
    spec_path = tmp_path / "cluster-job.yaml"
    spec_path.write_text(yaml.safe_dump(SPEC))
    store_dir = tmp_path / "store"
    runtime_env = {"env_vars": {"ROFT_DATA": str(real_env), "ROFT_CACHE": str(session_cache)}}

    with loopback_cluster() as cluster:
        nodes = {n["node_ip"]: n for n in cluster.alive_nodes()}
        assert set(nodes) == {HEAD_IP, WORKER_IP}  # every address Ray reports is on loopback
        assert nodes[HEAD_IP]["resources_total"].get("GPU", 0) == 0
        assert nodes[WORKER_IP]["resources_total"]["GPU"] == 1

        started = time.monotonic()
        submitted = subprocess.run(
            [str(BIN / "ray"), "job", "submit", "--address", cluster.dashboard, "--working-dir", ".",
             "--runtime-env-json", json.dumps(runtime_env), "--",
             sys.executable, "-m", "orchestrator", "sweep", str(spec_path), "--store", str(store_dir)],
            cwd=REPO, env=ray_env(), capture_output=True, text=True, timeout=400)
        seconds = time.monotonic() - started
        print(f"ray job submit -> SUCCEEDED in {seconds:.1f} s")
        assert submitted.returncode == 0, submitted.stdout[-4000:] + submitted.stderr[-4000:]
        assert "ran 2 trials" in submitted.stdout and "2 landed, 0 failed" in submitted.stdout
        assert "succeeded" in submitted.stdout + submitted.stderr

        # Tune asked Ray for half a GPU per trial, so the trials ran on the worker, the only GPU node.
        node_ip = {n["node_id"]: n["node_ip"] for n in cluster.state("nodes", detail="true")}
        deadline = time.monotonic() + 30  # the state API learns of finished actors with a delay
        while True:
            actors = cluster.state("actors", detail="true")
            # Tune's trial actor class: ImplicitFunc, or wrap_function.<locals>.ImplicitFunc as Ray names it
            trainables = [a for a in actors if a["class_name"].endswith("ImplicitFunc")]
            if trainables or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        assert trainables, sorted({a["class_name"] for a in actors})
        assert {node_ip[a["node_id"]] for a in trainables} == {WORKER_IP}
        assert all(any(k.startswith("GPU_group") and v == 0.5 for k, v in a["required_resources"].items())
                   for a in trainables)
        driver = [j for j in cluster.state("jobs") if j.get("type") == "SUBMISSION"]
        assert [j["status"] for j in driver] == ["SUCCEEDED"]

    store = ResultStore(store_dir)
    rows = store.read_trials().to_pandas()
    planned = plan_sweep(load_spec(str(spec_path)), store, DataRoot(real_env))
    assert sorted(rows.trial_key) == sorted(t.key() for t in planned.trials) and planned.pending == []
    assert set(rows.seed) == {0, 1} and (rows.epochs == 2).all() and (rows.n_train == 16).all()
    assert (rows.sweep == "cluster-job").all() and (rows.device == "cpu").all()  # Ray's GPU was only counted
