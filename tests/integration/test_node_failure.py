"""A node of a real two-node Ray cluster dies mid-sweep: the sweep finishes on the node that is left.

The loopback cluster of :func:`tests.integration.cluster.loopback_cluster` (a head on 127.0.0.2
and a worker on 127.0.0.3, one CPU each) runs a sweep of six one-CPU trials submitted with ``ray
job submit`` (its driver runs on the head). As soon as a trial trains on the worker, the worker
node's whole process group (its raylet, its agents, its Ray workers) is killed with SIGKILL, as a
machine that loses power would be. Tune counts the lost trial as failed and retries it
(``execution.max_failures``) on the head, Ray marks the node dead, and every trial lands in the
store exactly once.

Until the worker's first trial actor starts, a placeholder job holds the head's CPU, so that the
first trial goes to the worker: with ``reuse_actors``, Tune hands a trial staged on an actor that
is still starting (the worker's first one: seconds of imports, tens on a busy machine) to an actor
that has just finished a trial (the head's) and discards the new actor, so on a loaded machine the
worker might otherwise never train.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.dataset as ds
import pytest
import yaml

from orchestrator.store.results import ResultStore
from orchestrator.sweep.plan import plan_sweep
from search_spaces import parse_spec
from tests.integration.cluster import BIN, HEAD_IP, WORKER_IP, LoopbackCluster, loopback_cluster, ray_env
from trainables.core.data_root import DataRoot

pytestmark = [pytest.mark.slow, pytest.mark.data, pytest.mark.drill, pytest.mark.cluster]

REPO = Path(__file__).resolve().parents[2]

SPEC = {
    "name": "node-failure",
    "backbones": ["scratch-gin"],
    "methods": {"full-ft": {}},
    "tasks": ["esol"],
    "splits": ["scaffold"],
    "label_settings": ["fewshot:16"],
    "seeds": {"range": [0, 6]},
    "training": {"epochs": 200, "batch_size": 8},  # a trial trains for about 5 s on one core
    "model": {"num_layers": 1, "emb_dim": 8},
    "resources": {"cpu": 1},  # one trial per node at a time
    "execution": {"fuse": False, "max_failures": 2},
}


def live_processes(session: int | None = None) -> list[tuple[int, str]]:
    """``(pid, command line)`` of every process of process session ``session`` (None: of every
    session) that still runs; zombies, dead but not yet reaped by their new parent, are left out."""
    out = subprocess.run(["ps", "-eo", "pid=,sid=,stat=,args="], capture_output=True, text=True, check=True).stdout
    rows = [line.split(None, 3) for line in out.splitlines()]
    return [(int(pid), args) for pid, sid, stat, args in (r for r in rows if len(r) == 4)
            if (session is None or int(sid) == session) and not stat.startswith("Z")]


def wait_until_gone(session: int, timeout: float = 30.0) -> list[tuple[int, str]]:
    """Wait until no process of ``session`` runs (SIGKILL takes effect when the kernel next
    schedules the process); returns those still running after ``timeout``."""
    deadline = time.monotonic() + timeout
    while (left := live_processes(session)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def trial_workers(session: int) -> list[int]:
    """PIDs of the Ray workers of ``session`` that host a Tune function trial (``ray::ImplicitFunc...``)."""
    return [pid for pid, args in live_processes(session) if "ray::ImplicitFunc" in args]


HOLD = """import os, sys, time
deadline = time.time() + 300
while not os.path.exists(sys.argv[1]) and time.time() < deadline:
    time.sleep(0.2)
"""


def hold_head_cpu(cluster: LoopbackCluster, release: Path) -> None:
    """Submit a job whose entry point holds the head's CPU until the file ``release`` exists; return
    once it runs."""
    subprocess.run([str(BIN / "ray"), "job", "submit", "--address", cluster.dashboard, "--no-wait",
                    "--submission-id", "hold-head-cpu", "--entrypoint-num-cpus", "1",
                    "--entrypoint-resources", json.dumps({"roft_head": 1}), "--", sys.executable, "-c", HOLD,
                    str(release)], env=ray_env(), capture_output=True, text=True, check=True, timeout=120)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = {j["submission_id"]: j["status"] for j in cluster.state("jobs") if j.get("type") == "SUBMISSION"}
        if status.get("hold-head-cpu") == "RUNNING":
            return
        assert status.get("hold-head-cpu") in ("PENDING", None), status
        time.sleep(0.5)
    raise AssertionError("the job holding the head's CPU did not start")


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the process group (session) that ``process`` leads, which this test started."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=30)


def rows_per_key(store: Path) -> Counter:
    """Every row of the trials table, in every data file (per-trial files and part files alike)."""
    directory = store / "trials"
    if not directory.is_dir():
        return Counter()
    keys = ds.dataset(str(directory), format="parquet").to_table(columns=["trial_key"]).column("trial_key")
    return Counter(keys.to_pylist())


def test_killing_the_worker_node_mid_sweep_finishes_the_sweep_on_the_head(real_env, session_cache, tmp_path):
    spec_path, store = tmp_path / "node-failure.yaml", tmp_path / "store"
    spec_path.write_text(yaml.safe_dump(SPEC))
    expected = {t.key() for t in plan_sweep(parse_spec(SPEC), ResultStore(store), DataRoot(real_env)).trials}
    assert len(expected) == 6
    runtime_env = {"env_vars": {"ROFT_DATA": str(real_env), "ROFT_CACHE": str(session_cache)}}
    log_path = tmp_path / "job.log"

    def log() -> str:
        return log_path.read_text(errors="replace")

    started = time.monotonic()
    with loopback_cluster() as cluster:
        head, worker = cluster.head, cluster.worker
        up = time.monotonic() - started
        assert {n["node_ip"] for n in cluster.alive_nodes()} == {HEAD_IP, WORKER_IP}
        hold_head_cpu(cluster, tmp_path / "release-head")
        with open(log_path, "w") as out:
            job = subprocess.Popen(
                [str(BIN / "ray"), "job", "submit", "--address", cluster.dashboard, "--submission-id", "sweep",
                 "--working-dir", ".", "--runtime-env-json", json.dumps(runtime_env), "--",
                 sys.executable, "-m", "orchestrator", "sweep", str(spec_path), "--store", str(store)],
                cwd=REPO, env={**ray_env(), "PYTHONUNBUFFERED": "1"}, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        try:
            # Until a trial trains on the worker: a Ray worker of the worker node hosts a trial, and
            # Ray's state API lists a ``train`` call of it (Tune calls it for each epoch's report).
            worker_id = next(n["node_id"] for n in cluster.alive_nodes() if n["node_ip"] == WORKER_IP)
            deadline, victims, training = time.monotonic() + 180, [], []
            while time.monotonic() < deadline and job.poll() is None and not training:
                time.sleep(0.5)
                victims = trial_workers(worker.pid)
                if victims:
                    # The worker's trial actor is starting: free the head's CPU. The head's actor starts
                    # later, so it cannot take the worker's trial (it would have to finish one first).
                    (tmp_path / "release-head").touch()
                    training = [t for t in cluster.state("tasks", filter_keys="node_id", filter_predicates="=",
                                                         filter_values=worker_id, detail="true")
                                if t["name"] == "ImplicitFunc.train"]
            assert training, "no trial trained on the worker node:\n" + log()[-3000:]
            found = time.monotonic() - started
            assert job.poll() is None and len(rows_per_key(store)) < len(expected)
            killed_at = time.monotonic()
            kill_group(worker)  # the worker node, as a power cut would end it: raylet, agents, Ray workers
            assert not wait_until_gone(worker.pid)
            assert not [args for _, args in live_processes() if str(cluster.temp_dirs[1]) in args]
            while WORKER_IP in {n["node_ip"] for n in cluster.alive_nodes()} and time.monotonic() < killed_at + 120:
                time.sleep(0.5)
            detected = time.monotonic() - killed_at
            assert WORKER_IP not in {n["node_ip"] for n in cluster.alive_nodes()}, "the worker node is still alive"

            assert job.wait(timeout=300) == 0, log()[-4000:]
            finished = time.monotonic() - killed_at
            nodes = {n["node_id"]: n for n in cluster.state("nodes", detail="true")}
            jobs = {j["submission_id"]: j["status"] for j in cluster.state("jobs") if j.get("type") == "SUBMISSION"}
            trainables = [a for a in cluster.state("actors", detail="true") if a["class_name"] == "ImplicitFunc"]
        finally:
            kill_group(job)
        print(f"cluster up in {up:.1f} s; a trial trained on the worker at {found:.1f} s and the node was killed; "
              f"the GCS marked it dead {detected:.1f} s later; the sweep ended {finished:.1f} s after the kill")
        temp_dirs, sessions = cluster.temp_dirs, (head.pid, worker.pid)

    # The job succeeded, after Tune lost a trial with the node and retried it on the head.
    assert jobs == {"hold-head-cpu": "SUCCEEDED", "sweep": "SUCCEEDED"}
    text = log()
    assert "6/6 done, 0 failed" in text and "ran 6 trials" in text and "6 landed, 0 failed" in text
    # Tune learnt of the loss from the trial's call to its actor (whose connection closed), before the
    # GCS marked the node dead (health checks missed), and retried the trial; the sweep says so in one
    # line (Ray's traceback goes to the sweep's log file, not the terminal).
    assert re.search(r"trial\(s\) of \w+: their worker was lost.*; retried elsewhere \(failure 1\)", text), text[-4000:]
    assert "Trial task failed" not in text
    dead = [n for n in nodes.values() if n["state"] == "DEAD"]
    assert [n["node_ip"] for n in dead] == [WORKER_IP] and "health check failed" in dead[0]["state_message"]
    on_worker = [a for a in trainables if nodes[a["node_id"]]["node_ip"] == WORKER_IP]
    assert on_worker and all(a["state"] == "DEAD" for a in on_worker)  # the trial actor died with its node
    assert any(nodes[a["node_id"]]["node_ip"] == HEAD_IP for a in trainables)

    # Every planned trial landed exactly once, and no failure was recorded.
    landed = rows_per_key(store)
    assert set(landed) == expected and all(n == 1 for n in landed.values()), landed
    assert ResultStore(store).read_failures().num_rows == 0

    # Teardown left nothing of the cluster behind: no process of its nodes, no temp dir.
    assert not any(wait_until_gone(s) for s in sessions)
    assert not any(d.exists() for d in temp_dirs)
