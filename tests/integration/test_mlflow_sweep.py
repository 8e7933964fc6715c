"""A real Ray sweep with ``--tracker mlflow``: its trials, fused or alone, as MLflow runs on a real
tracking server on loopback, read back and checked against the store's rows; a rerun adds none."""

from __future__ import annotations

import io
import uuid

import pytest

from orchestrator.sweep.execute import run_sweep
from orchestrator.sweep.plan import plan_sweep
from orchestrator.sweep.tracking import TrackerSetting, open_tracker
from tests.integration.sweeps import planned
from tests.unit.orchestrator.sweep.test_tracking import experiment_runs
from trainables.core.data_root import DataRoot

pytestmark = [pytest.mark.slow, pytest.mark.data]

TRACKED = {
    "name": "tracked",
    "backbones": ["scratch-gin"],
    "methods": {"full-ft": {}, "lp": {"freeze_bn_stats": True}},  # full-ft fuses (one group of 3), lp runs alone
    "tasks": ["esol"],
    "splits": ["scaffold"],
    "label_settings": ["fewshot:16"],
    "seeds": [0, 1, 2],
    "training": {"epochs": 3, "batch_size": 8},
    "model": {"num_layers": 2, "emb_dim": 16},
    "resources": {"cpu": 1},
}


def test_a_tracked_sweep_logs_one_run_per_landed_trial(ray_session, real_env, tmp_path, mlflow_server, monkeypatch):
    experiment = f"roft-sweep-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", experiment)
    setup = planned(TRACKED, real_env, tmp_path)
    spec, store, runtime, plan = setup.spec, setup.store, setup.runtime, setup.plan
    assert "3 trials in 1 fused group (1 x 3" in plan.summary() and "3 trials alone" in plan.summary()
    tracker = open_tracker(TrackerSetting("mlflow", mlflow_server), spec.name)
    outcome = run_sweep(plan, store, runtime, stream=io.StringIO(), tracker=tracker)
    assert outcome.failed == {} and outcome.succeeded == 6 and tracker.errors == []

    rows = {r["trial_key"]: r for r in store.read_trials().to_pylist()}
    client, runs = experiment_runs(mlflow_server, experiment)
    assert len(runs) == len(rows) == 6
    by_key = {run.data.tags["roft.trial_key"]: run for run in runs}
    assert set(by_key) == set(rows)
    for key, row in rows.items():
        run = by_key[key]
        assert run.data.tags["roft.engine"] == row["engine"] and run.data.tags["roft.method"] == row["method"]
        assert run.data.metrics["test_rmse_at_best_val_epoch"] == pytest.approx(row["test_metric"])
        assert run.data.params["recipe.epochs"] == "3" and run.data.params["seed"] == str(row["seed"])
        assert len(client.get_metric_history(run.info.run_id, "val_rmse")) == 3
    assert sorted(r["engine"] for r in rows.values()) == ["fused"] * 3 + ["unfused"] * 3  # 3 members: 3 runs

    again = open_tracker(TrackerSetting("mlflow", mlflow_server), spec.name)
    rerun = run_sweep(plan_sweep(spec, store, DataRoot(real_env)), store, runtime, stream=io.StringIO(), tracker=again)
    assert rerun.submitted == 0 and again.added == 0
    assert len(experiment_runs(mlflow_server, experiment)[1]) == 6
