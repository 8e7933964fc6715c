"""Fused groups on a node with four GPUs: four at once with ``gpu: 1``, sixteen with ``gpu: 0.25``.

The loopback cluster's worker advertises 4 GPUs (Ray only counts them on this CPU machine; each
trial actor is still given its devices, ``ray.get_gpu_ids()``, as on a real GPU node) and the
head none, so every group trains on the worker. Two sweeps of sixteen fused groups of two trials
each run there, one asking a whole GPU per group, one a quarter. The rows alone show the
placement: ``node_ip``, ``gpu_ids`` and the group's ``started_at`` / ``finished_at``
(:mod:`orchestrator.analysis.placement`, ``roft placement``). With ``gpu: 1`` at most four groups
overlap, each on its own device; with ``gpu: 0.25`` all sixteen overlap, four on each device.

``ROFT_EVIDENCE_DIR=docs/results pytest tests/integration/test_gpu_placement.py`` keeps both
stores, compacted, as the evidence docs/results/placement-*.md are generated from.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest
import yaml

from orchestrator.analysis.placement import COLUMNS, by_node, placement_lines, units_of
from orchestrator.cli import main
from orchestrator.store.results import ResultStore
from tests.integration.cluster import WORKER_IP, kill_group, loopback_cluster

# Two sweeps on one loopback cluster: 7.5 minutes measured on 2 cores busy with other work. Each sweep
# has 15 minutes (job.wait below) before it counts as hung, the drill 25 in all.
pytestmark = [pytest.mark.slow, pytest.mark.data, pytest.mark.cluster, pytest.mark.timeout(1500)]

GROUPS, SIZE = 16, 2


def spec(name: str, gpu: float, epochs: int) -> dict:
    return {
        "name": name,
        "backbones": ["scratch-gin"],
        "methods": {"full-ft": {}},
        "tasks": ["esol"],
        "splits": ["scaffold"],
        "label_settings": ["fewshot:16"],
        "seeds": {"range": [0, GROUPS * SIZE]},
        "training": {"epochs": epochs, "batch_size": 8},
        "model": {"num_layers": 1, "emb_dim": 8},
        "resources": {"cpu": 0, "gpu": gpu},
        "execution": {"fuse": True, "fuse_max": SIZE, "max_failures": 0},
    }


def keep_evidence(store: Path, name: str) -> None:
    """With ``$ROFT_EVIDENCE_DIR`` set, keep the store there, compacted: rows, epoch curves and the
    spec, without checkpoints, running markers or Tune's folders (the committed evidence of
    docs/results/placement-*.md)."""
    if not os.environ.get("ROFT_EVIDENCE_DIR"):
        return
    assert main(["store", "compact", "--store", str(store)]) == 0
    target = Path(os.environ["ROFT_EVIDENCE_DIR"]) / f"store-placement-{name}"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(store, target, ignore=shutil.ignore_patterns("_tune", "running", "artifacts", ".lock", "quarantine"))


def test_a_four_gpu_node_runs_four_whole_gpu_groups_or_sixteen_quarter_gpu_groups_at_once(real_env, session_cache,
                                                                                           tmp_path):
    runtime_env = {"env_vars": {"ROFT_DATA": str(real_env), "ROFT_CACHE": str(session_cache)}}
    sweeps = {"whole": (1.0, 300), "quarter": (0.25, 300)}
    stores = {name: tmp_path / f"store-{name}" for name in sweeps}
    with loopback_cluster(workers=1, worker_gpus=4) as cluster:
        gpus = {n["node_ip"]: n["resources_total"].get("GPU", 0) for n in cluster.alive_nodes()}
        assert gpus[WORKER_IP] == 4 and sum(gpus.values()) == 4
        for name, (gpu, epochs) in sweeps.items():
            path = tmp_path / f"{name}.yaml"
            path.write_text(yaml.safe_dump(spec(name, gpu, epochs)))
            started = time.monotonic()
            job = cluster.submit([sys.executable, "-m", "orchestrator", "sweep", str(path), "--store",
                                  str(stores[name])], tmp_path / f"{name}.log", runtime_env, submission_id=name)
            try:
                assert job.wait(timeout=900) == 0, (tmp_path / f"{name}.log").read_text()[-4000:]
            finally:
                kill_group(job)
            print(f"\n{name} ({gpu} GPU per group): {time.monotonic() - started:.0f} s", file=sys.stderr)

    for name, (gpu, _) in sweeps.items():
        rows = ResultStore(stores[name]).read_trials([*COLUMNS, "fused_trials"]).to_pylist()
        assert len(rows) == GROUPS * SIZE and all(r["fused_trials"] == SIZE for r in rows)
        units, unplaced = units_of(rows)
        assert unplaced == 0 and len(units) == GROUPS and {u.trials for u in units} == {SIZE}
        (node,) = by_node(units)
        assert node.node == WORKER_IP  # the head has no GPU
        assert {u.gpus for u in units} == {"0", "1", "2", "3"}  # one device each, all four used
        print(f"{name} (gpu: {gpu}):", *placement_lines(rows, timeline=True), sep="\n", file=sys.stderr)
        if gpu == 1.0:
            assert node.most_at_once == 4 and node.devices_then == {"0": 1, "1": 1, "2": 1, "3": 1}
        else:
            assert node.most_at_once == GROUPS and node.devices_then == {"0": 4, "1": 4, "2": 4, "3": 4}
        keep_evidence(stores[name], name)
