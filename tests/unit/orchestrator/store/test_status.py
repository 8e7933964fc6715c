"""Running markers (``running/<unit>.json``) and the per-sweep state of a store (``roft status``).

The markers' life is tested with tiny real trials (1 epoch, 16 labels, a 2x16 scratch GIN); the
counts on a hand-made store whose saved spec is planned against the real data.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import trainables.worker.trial as worker
from orchestrator.store.results import ResultStore
from orchestrator.store.schema import StoreError
from orchestrator.store.status import read_markers
from orchestrator.sweep.plan import plan_sweep
from orchestrator.sweep.status import sweep_status
from search_spaces.spec import parse_spec
from tests.unit.orchestrator.store.rows import immutable, make_row
from trainables.core.config import Runtime, TrainingRecipe, TrialSpec
from trainables.core.data_root import DataRoot
from trainables.methods.revisions import with_revisions
from trainables.worker.trial import DependencyError, execute_fused_group, execute_trial


def tiny(method: str = "full-ft", seed: int = 0, **params) -> TrialSpec:
    return with_revisions(TrialSpec(
        backbone="scratch-gin", method=method, task="esol", split="scaffold", label_setting="fewshot:16", seed=seed,
        subset_seed=42, recipe=TrainingRecipe(epochs=1), method_params=params, num_layers=2, emb_dim=16))


def runtime_of(store: ResultStore, data_root) -> Runtime:
    return Runtime(store=store.uri, sweep="tiny", data_root=DataRoot(data_root), code_version="test")


def test_a_trial_is_marked_running_while_it_trains_and_unmarked_when_its_row_lands(real_env, tmp_path,
                                                                                      monkeypatch):
    monkeypatch.setattr(worker, "HEARTBEAT_S", 0.0)  # every epoch refreshes the heartbeat
    store = ResultStore(tmp_path / "store")
    spec = tiny()
    seen = []
    row = execute_trial(spec, runtime_of(store, real_env), store, lambda record: seen.append(store.read_running()))
    assert len(seen) == 1 and len(seen[0]) == 1
    marker = seen[0][0]
    assert marker["trial_key"] == spec.key() and marker["sweep"] == "tiny" and marker["unit"] is None
    assert (marker["host"], marker["pid"]) == (socket.gethostname(), os.getpid())
    assert (marker["epoch"], marker["epochs"]) == (1, 1)  # the heartbeat of epoch 1 was written
    started, beat = (datetime.fromisoformat(marker[k]) for k in ("started_at", "heartbeat_at"))
    assert started <= beat <= datetime.now(timezone.utc)
    assert row["trial_key"] == spec.key() and store.done_keys() == {spec.key()}
    assert store.read_running() == [] and not list((store.root / "running").iterdir())


def test_a_failed_trial_removes_its_marker(real_env, tmp_path):
    store = ResultStore(tmp_path / "store")
    with pytest.raises(DependencyError):  # no full-ft parent in the store
        execute_trial(tiny("wise-ft", alpha=0.5), runtime_of(store, real_env), store)
    assert (store.root / "running").is_dir() and store.read_running() == []


def test_a_marker_that_cannot_be_removed_does_not_fail_the_landed_trial(real_env, tmp_path, caplog):
    class Undeletable(ResultStore):
        def clear_running(self, unit):
            raise StoreError("cannot delete running/x.json: permission denied")

    store = Undeletable(tmp_path / "store")
    with caplog.at_level(logging.WARNING, logger="trainables.worker.trial"):
        row = execute_trial(tiny(), runtime_of(store, real_env), store)
    assert store.done_keys() == {row["trial_key"]}
    assert [m["trial_key"] for m in store.read_running()] == [row["trial_key"]]  # left behind
    assert "could not remove the running marker" in caplog.text and "permission denied" in caplog.text


def test_an_unwritable_store_still_fails_the_trial(real_env, tmp_path):
    class Unwritable(ResultStore):
        def mark_running(self, unit, keys, info):
            raise StoreError("cannot write to the store: read-only")

    store = Unwritable(tmp_path / "store")
    with pytest.raises(StoreError, match="read-only"):
        execute_trial(tiny(), runtime_of(store, real_env), store)
    assert store.done_keys() == set()


def test_a_fused_group_is_one_marker_naming_every_member(real_env, tmp_path):
    store = ResultStore(tmp_path / "store")
    specs = [tiny(seed=0), tiny(seed=1)]
    seen, files = [], []
    rows = execute_fused_group(specs, runtime_of(store, real_env), store,
                               lambda k, record: (seen.append(read_markers(store)),
                                                  files.append(sorted(p.name for p in (store.root / "running").iterdir()))),
                               unit="fused-abc")
    assert seen and all(sorted(m.trial_key for m in markers) == sorted(s.key() for s in specs) for markers in seen)
    assert {m.unit for m in seen[0]} == {"fused-abc"} and files[0] == ["fused-abc.json"]  # one file, not one per member
    assert len(rows) == 2 and store.read_running() == []


def test_markers_are_no_table(tmp_path):
    store = ResultStore(tmp_path / "store")
    store.mark_running("g", ["k1", "k2"], {"sweep": "s", "host": "h", "pid": 1})
    (store.root / "running" / "k3.json").write_text("{not json")
    (store.root / "running" / "k4.json").write_text('{"sweep": "s"}')
    assert json.loads((store.root / "running" / "g.json").read_text())["trial_keys"] == ["k1", "k2"]
    assert store.check_tables() == []  # neither a stray of a table nor quarantined
    assert sorted(p.name for p in (store.root / "running").iterdir()) == ["g.json", "k3.json", "k4.json"]
    markers = {m.trial_key: m for m in read_markers(store)}
    assert (markers["k1"].sweep, markers["k1"].host, markers["k1"].pid) == ("s", "h", 1) == (
        markers["k2"].sweep, markers["k2"].host, markers["k2"].pid)
    assert markers["k3"].problem.startswith("not JSON") and markers["k4"].problem == "no list of trial_keys"
    store.clear_running("g")
    store.clear_running("missing")
    assert sorted(m.trial_key for m in read_markers(store)) == ["k3", "k4"]


def test_a_sweep_first_checks_that_running_can_be_written(tmp_path):
    store = ResultStore(tmp_path / "store")
    store.mark_running("k1", ["k1"], {"sweep": "s"})
    with immutable(store.root / "running"):
        with pytest.raises(StoreError, match="cannot create a file in running/"):
            store.check_writable()


# ---- the per-sweep state ------------------------------------------------------------------------

SPEC = {"name": "tiny", "backbones": ["scratch-gin"], "methods": {"full-ft": {}}, "tasks": ["esol"],
        "splits": ["scaffold"], "label_settings": ["fewshot:16"], "seeds": [0, 1, 2, 3, 4],
        "training": {"epochs": 1}, "model": {"num_layers": 2, "emb_dim": 16}}


def marker(store: ResultStore, key: str, silent: timedelta, sweep: str = "tiny", **placement: str) -> None:
    beat = datetime.now(timezone.utc) - silent
    store.mark_running(key, [key], {**placement, "sweep": sweep, "host": "node-7", "pid": 4242, "unit": None, "epoch": 3,
                               "epochs": 10, "started_at": (beat - timedelta(minutes=5)).isoformat(),
                               "heartbeat_at": beat.isoformat()})


def hand_made_store(tmp_path: Path, data_root) -> tuple[ResultStore, list[str]]:
    """Spec ``tiny`` (5 trials) saved; seed 0 done, seed 1 failed, seed 2 running, seed 3 running but
    silent for 20 minutes, seed 4 queued; plus a row of another sweep without a spec."""
    store = ResultStore(tmp_path / "store")
    store.write_spec("tiny", json.dumps(SPEC).encode())  # JSON is YAML
    keys = [t.key() for t in sorted(plan_sweep(parse_spec(SPEC), store, DataRoot(data_root)).trials,
                                    key=lambda t: t.seed)]
    store.write_trial(make_row(keys[0], sweep="tiny", seed=0, hostname="node-1", node_ip="10.0.0.1", test_metric=1.25))
    store.write_failure({"trial_key": keys[1], "sweep": "tiny", "method": "full-ft", "trial_config": "{}",
                         "error": "DivergedError: train loss is nan at epoch 1", "traceback": "...",
                         "failed_at": datetime.now(timezone.utc)})
    marker(store, keys[2], timedelta(seconds=20), node_ip="10.0.0.7", gpu_ids="2")
    marker(store, keys[3], timedelta(minutes=20))
    store.write_trial(make_row("other-0", sweep="other", hostname="node-2"))
    return store, keys


def test_counts_per_sweep_on_a_hand_made_store(real_env, tmp_path):
    store, keys = hand_made_store(tmp_path, real_env)
    status = sweep_status(store, DataRoot(real_env))
    tiny_, other = status.sweeps
    assert (tiny_.name, tiny_.spec_file, tiny_.planned, tiny_.plan_error) == ("tiny", "specs/tiny.yaml", 5, "")
    assert (tiny_.done, tiny_.failed, len(tiny_.running), tiny_.queued) == (1, 1, 2, 1)
    assert [m.trial_key for m in tiny_.running] == sorted(keys[2:4]) and tiny_.stale == {keys[3]}
    assert [r["trial_key"] for r in tiny_.last] == [keys[0]] and tiny_.last[0]["hostname"] == "node-1"
    assert tiny_.causes == [("DivergedError: train loss is nan at epoch 1", 1)]
    assert (other.name, other.spec_file, other.done, other.queued) == ("other", None, 1, None)
    assert "no saved spec" in other.plan_error
    assert (status.done, status.failed, status.running, status.stale, status.queued) == (2, 1, 2, 1, 1)

    # the threshold decides what is stale; a trial whose row landed is no longer running or failed
    assert sweep_status(store, DataRoot(real_env), stale_after_s=3600).sweeps[0].stale == set()
    for key in keys[1:3]:
        store.write_trial(make_row(key, sweep="tiny"))
    tiny_ = sweep_status(store, DataRoot(real_env)).sweeps[0]
    assert (tiny_.done, tiny_.failed, len(tiny_.running), tiny_.queued, tiny_.causes) == (3, 0, 1, 1, [])


def test_a_spec_that_cannot_be_planned_is_reported_on_its_line(real_env, tmp_path):
    store = ResultStore(tmp_path / "store")
    store.write_spec("bad", b"name: bad\nbackbones: [no-such-backbone]\n")
    store.write_spec("tiny", json.dumps(SPEC).encode())
    missing = tmp_path / "empty-data-root"
    missing.mkdir()
    bad, tiny_ = sweep_status(store, DataRoot(missing)).sweeps
    assert bad.planned is None and bad.queued is None and "SpecError" in bad.plan_error
    assert "no-such-backbone" in bad.plan_error
    assert tiny_.queued is None and tiny_.plan_error.startswith("missing files (1): task esol")
