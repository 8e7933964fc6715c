"""A node of a real two-node Ray cluster dies mid-sweep: the sweep finishes on the node that is left.

The loopback cluster of :func:`tests.integration.cluster.loopback_cluster` (a head on 127.0.0.2
and a worker on 127.0.0.3, one CPU each) runs a sweep of six one-CPU trials submitted with ``ray
job submit`` (its driver runs on the head). As soon as a trial trains on the worker, the worker
node's whole process group (its raylet, its agents, its Ray workers) is killed with SIGKILL, as a
machine that loses power would be. Tune counts the lost trial as failed and retries it
(``execution.max_failures``) on the head, Ray marks the node dead, and every trial lands in the
store exactly once.

Both nodes train from the start, although the worker's first actor starts seconds after the
head's: the sweep's scheduler (:mod:`orchestrator.sweep.scheduling`) never hands the worker's
trial to the head's freed actor while newer trials wait. (Trials are longer than an actor's
start: a sweep that the head alone finishes before the worker's actor is up would end with the
head taking the worker's trial too, the last one pending, which is right.)
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest
import yaml

from orchestrator.store.results import ResultStore
from orchestrator.sweep.plan import plan_sweep
from search_spaces import parse_spec
from tests.integration.cluster import (
    HEAD_IP,
    WORKER_IP,
    kill_group,
    live_processes,
    loopback_cluster,
    rows_per_key,
    wait_until_gone,
)
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
    "training": {"epochs": 1500, "batch_size": 8},  # a trial trains for 8-40 s on one core: longer than an actor start
    "model": {"num_layers": 1, "emb_dim": 8},
    "resources": {"cpu": 1},  # one trial per node at a time
    "execution": {"fuse": False, "max_failures": 2},
}


def trial_workers(session: int) -> list[int]:
    """PIDs of the Ray workers of ``session`` that host a Tune function trial (``ray::ImplicitFunc...``)."""
    return [pid for pid, args in live_processes(session) if "ray::ImplicitFunc" in args]


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
        job = cluster.submit([sys.executable, "-m", "orchestrator", "sweep", str(spec_path), "--store", str(store)],
                             log_path, runtime_env)
        try:
            # Until a trial trains on the worker: a Ray worker of the worker node hosts a trial, and
            # Ray's state API lists a ``train`` call of it (Tune calls it for each epoch's report).
            worker_id = next(n["node_id"] for n in cluster.alive_nodes() if n["node_ip"] == WORKER_IP)
            deadline, training = time.monotonic() + 180, []
            while time.monotonic() < deadline and job.poll() is None and not training:
                time.sleep(0.5)
                if trial_workers(worker.pid):
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
            trainables = [a for a in cluster.state("actors", detail="true") if a["class_name"].endswith("ImplicitFunc")]
        finally:
            kill_group(job)
        print(f"cluster up in {up:.1f} s; a trial trained on the worker at {found:.1f} s and the node was killed; "
              f"the GCS marked it dead {detected:.1f} s later; the sweep ended {finished:.1f} s after the kill")
        temp_dirs, sessions = cluster.temp_dirs, (head.pid, worker.pid)

    # The job succeeded, after Tune lost a trial with the node and retried it on the head.
    assert jobs == {"sweep": "SUCCEEDED"}
    text = log()
    assert "6/6 done, 0 failed" in text and "ran 6 trials" in text and "6 landed, 0 failed" in text
    # Tune learnt of the loss from the trial's call to its actor (whose connection closed), before the
    # GCS marked the node dead (health checks missed), and retried the trial; the sweep says so in one
    # line (Ray's traceback goes to the sweep's log file, not the terminal).
    assert re.search(r"trials? of [\w-]+: their worker was lost.*; retried elsewhere \(failure 1\)", text), text[-4000:]
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
