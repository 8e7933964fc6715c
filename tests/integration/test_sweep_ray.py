"""A real tiny sweep through Ray Tune: real checkpoints, real Parquet store, dedup on rerun."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from orchestrator.analysis.summary import store_table
from orchestrator.bench.noop import noop_trainable
from orchestrator.store.results import ResultStore
from orchestrator.sweep.execute import run_sweep, run_trials
from orchestrator.sweep.plan import plan_sweep
from search_spaces import parse_spec
from tests.integration.sweeps import planned
from trainables.core.config import Runtime
from trainables.core.data_root import DataRoot

pytestmark = [pytest.mark.data]

TINY = {
    "name": "tiny",
    "backbones": ["hu-gcn-contextpred", "scratch-gin"],
    "methods": {"full-ft": {}, "lp": {}},
    "tasks": ["esol"],
    "splits": ["scaffold"],
    "label_settings": ["fewshot:16"],
    "seeds": [0],
    "training": {"epochs": 2, "batch_size": 8},
    "model": {"num_layers": 2, "emb_dim": 16},
    "resources": {"cpu": 1},
}


@pytest.mark.slow
def test_tiny_sweep_writes_rows_and_rerun_runs_nothing(ray_session, real_env, tmp_path):
    setup = planned(TINY, real_env, tmp_path, sweep="tiny")
    spec, store, runtime, plan = setup.spec, setup.store, setup.runtime, setup.plan
    assert len(plan.pending) == 4 and not plan.missing_files

    stream = io.StringIO()
    outcome = run_sweep(plan, store, runtime, stream=stream)
    assert outcome.failed == {}
    assert outcome.succeeded == 4
    assert "4/4 done, 0 failed" in stream.getvalue()

    rows = store.read_trials().to_pandas()
    assert sorted(rows.trial_key) == sorted(t.key() for t in plan.trials)
    assert set(rows.method) == {"full-ft", "lp"}
    assert (rows.n_train == 16).all() and (rows.epochs == 2).all()
    assert rows.loc[rows.backbone == "hu-gcn-contextpred", "backbone_sha256"].str.len().eq(64).all()
    assert rows.loc[rows.backbone == "hu-gcn-contextpred", "num_layers"].eq(5).all()  # from the checkpoint
    assert rows.loc[rows.backbone == "scratch-gin", "emb_dim"].eq(16).all()  # from the spec
    for method, path, sha in zip(rows.method, rows.artifact_path, rows.artifact_sha256):
        # Only trials that others depend on (full-ft) keep their checkpoint by default.
        assert ((tmp_path / "store" / "artifacts").as_posix() in path and len(sha) == 64) if method == "full-ft" \
            else (pd.isna(path) and pd.isna(sha))  # null: no checkpoint kept
    epochs = store.read_side_table("epochs").to_pandas()
    assert len(epochs) == 4 * 2

    again = plan_sweep(spec, store, DataRoot(real_env))
    assert again.pending == []
    assert run_sweep(again, store, runtime, stream=io.StringIO()).submitted == 0
    assert len(store.read_trials()) == 4
    assert "| hu-gcn-contextpred | full-ft | esol | scaffold | fewshot:16 | rmse |" in store_table(store)


def test_failing_trial_is_reported_not_stored(ray_session, real_env, tmp_path):
    """A trial that raises lands in the outcome's failures and never in the store."""
    spec = parse_spec(dict(TINY, backbones=["scratch-gin"], methods={"full-ft": {}},
                           label_settings=["fewshot:100000"], execution={"max_failures": 0}))
    store = ResultStore(tmp_path / "store")
    runtime = Runtime(store=str(store.root), sweep="tiny", data_root=DataRoot(real_env))
    outcome = run_sweep(plan_sweep(spec, store, DataRoot(real_env)), store, runtime, stream=io.StringIO())
    assert outcome.succeeded == 0 and len(outcome.failed) == 1
    assert "fewshot:100000" in next(iter(outcome.failed.values()))
    assert store.done_keys() == set()


def test_noop_trials_through_the_sweep_path(ray_session, tmp_path):
    runtime = Runtime(store=str(tmp_path), sweep="bench")
    errors = run_trials([{"key": f"k{i}"} for i in range(6)], runtime, noop_trainable, name="noop",
                        resources={"cpu": 1}, chunk_size=4, tune_root=tmp_path / "_tune")
    assert errors == {}


@pytest.mark.slow
def test_a_slice_runs_only_its_trials_and_the_store_keeps_the_whole_spec(ray_session, real_env, tmp_path, capsys):
    """roft sweep --only: the slice's trials land; the store's saved spec is the whole file, so roft status
    counts what is left of the whole grid, and the whole spec then runs only the rest."""
    import yaml

    from orchestrator.cli import main

    spec_path, store = tmp_path / "tiny.yaml", tmp_path / "store"
    spec_path.write_text(yaml.safe_dump(dict(TINY, methods={"full-ft": {}})))  # 2 trials: one per backbone
    assert main(["sweep", str(spec_path), "--store", str(store), "--only", "backbone=scratch-gin"]) == 0
    err = capsys.readouterr().err
    assert "sweep tiny (" in err and "1 trial, 0 already in the store, 1 to run" in err
    assert "slice: backbone=scratch-gin (of 2 backbones)" in err
    assert ResultStore(store).read_trials(["backbone"]).column("backbone").to_pylist() == ["scratch-gin"]
    assert (store / "specs" / "tiny.yaml").read_bytes() == spec_path.read_bytes()

    assert main(["status", "--store", str(store)]) == 0
    assert "sweep tiny (specs/tiny.yaml, 2 planned): 1 done, 0 failed, 0 running, 1 queued" in capsys.readouterr().out
    assert main(["sweep", str(spec_path), "--store", str(store)]) == 0
    assert "2 trials, 1 already in the store, 1 to run" in capsys.readouterr().err
    assert sorted(ResultStore(store).read_trials(["backbone"]).column("backbone").to_pylist()) == [
        "hu-gcn-contextpred", "scratch-gin"]


@pytest.mark.parametrize(("asked", "named"), [({"cpu": 1, "gpu": 0.25}, "resources.gpu: 0.25 GPUs per trial"),
                                              ({"cpu": 64}, "resources.cpu: 64 CPUs per trial")])
def test_a_trial_this_machines_ray_cannot_hold_is_refused_in_one_line_not_left_waiting(ray_session, real_env, tmp_path,
                                                                                        capsys, asked, named):
    """A GPU spec on a machine without a GPU (or more CPUs than it has): a private Ray never grows, so Tune
    would keep the trials pending for ever; roft refuses before any trial is submitted."""
    import yaml

    from orchestrator.cli import main

    spec_path, store = tmp_path / "tiny.yaml", tmp_path / "store"
    spec_path.write_text(yaml.safe_dump(dict(TINY, methods={"full-ft": {}}, resources=asked)))
    assert main(["sweep", str(spec_path), "--store", str(store)]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"roft: error: {named}, but this machine's Ray has ") and "nothing was run" in error
    assert ResultStore(store).read_trials(["trial_key"]).num_rows == 0
