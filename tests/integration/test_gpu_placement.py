"""Fused groups on a node with four GPUs: four at once with ``gpu: 1``, sixteen with ``gpu: 0.25``.

The loopback cluster's worker advertises 4 GPUs (Ray only counts them on this CPU machine; each
trial actor is still given its devices, ``ray.get_gpu_ids()``, as on a real GPU node) and the
head none, so every group trains on the worker. Two sweeps of sixteen fused groups of two trials
each run there, one asking a whole GPU per group, one a quarter. The rows alone show the
placement: ``node_ip``, ``gpu_ids`` and the group's ``started_at`` / ``finished_at``. With
``gpu: 1`` at most four groups overlap, each on its own device; with ``gpu: 0.25`` all sixteen
overlap, four on each device.
"""

from __future__ import annotations

import sys
import time
from collections import Counter

import pytest
import yaml

from orchestrator.store.results import ResultStore
from tests.integration.cluster import WORKER_IP, kill_group, loopback_cluster

pytestmark = [pytest.mark.slow, pytest.mark.data, pytest.mark.cluster]

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


def groups(rows: list[dict]) -> list[dict]:
    """One entry per fused group: its members share ``started_at`` (the group's start)."""
    by_start: dict = {}
    for row in rows:
        group = by_start.setdefault((row["node_ip"], row["gpu_ids"], row["started_at"]), {
            "node_ip": row["node_ip"], "gpu_ids": row["gpu_ids"], "start": row["started_at"].timestamp(),
            "finish": row["finished_at"].timestamp(), "trials": 0})
        group["finish"] = max(group["finish"], row["finished_at"].timestamp())
        group["trials"] += 1
    return sorted(by_start.values(), key=lambda g: g["start"])


def most_at_once(entries: list[dict]) -> tuple[int, list[dict]]:
    """The largest number of groups training at one moment, and those groups (interval overlap)."""
    best: tuple[int, list[dict]] = (0, [])
    for moment in sorted(g["start"] for g in entries):
        live = [g for g in entries if g["start"] <= moment < g["finish"]]
        if len(live) > best[0]:
            best = (len(live), live)
    return best


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
        rows = ResultStore(stores[name]).read_trials(
            ["trial_key", "node_ip", "gpu_ids", "started_at", "finished_at", "fused_trials"]).to_pylist()
        assert len(rows) == GROUPS * SIZE and all(r["fused_trials"] == SIZE for r in rows)
        entries = groups(rows)
        assert len(entries) == GROUPS and {g["trials"] for g in entries} == {SIZE}
        assert {g["node_ip"] for g in entries} == {WORKER_IP}  # the head has no GPU
        assert {g["gpu_ids"] for g in entries} == {"0", "1", "2", "3"}  # one device each, all four used
        count, live = most_at_once(entries)
        t0 = entries[0]["start"]
        print(f"{name}: at most {count} groups at once; devices of those: "
              f"{dict(sorted(Counter(g['gpu_ids'] for g in live).items()))}; groups (device: start-finish s): "
              + ", ".join(f"{g['gpu_ids']}: {g['start'] - t0:.0f}-{g['finish'] - t0:.0f}" for g in entries),
              file=sys.stderr)
        if gpu == 1.0:
            assert count == 4 and sorted(g["gpu_ids"] for g in live) == ["0", "1", "2", "3"]
        else:
            assert count == GROUPS and Counter(g["gpu_ids"] for g in live) == {"0": 4, "1": 4, "2": 4, "3": 4}
