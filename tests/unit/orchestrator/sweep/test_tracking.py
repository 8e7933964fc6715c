"""MLflow tracking against a real ``mlflow server`` on loopback: one run per trial (per member of a
fused group), nested under one run per sweep, read back with MlflowClient.search_runs and checked
against the store's rows; never twice."""

from __future__ import annotations

import json
import sys
import uuid

import pytest

from orchestrator.store.results import ResultStore
from orchestrator.sweep.tracking import MlflowTracker, TrackerError, TrackerSetting, flatten, open_tracker
from tests.unit.orchestrator.store.rows import PUBLISHED_RECIPE, demo_row, epoch, write_demo_store


def experiment_runs(uri: str, experiment: str, kind: str = "trial"):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return client, []
    runs, token = [], None
    while True:
        page = client.search_runs([found.experiment_id], filter_string=f"tags.`roft.kind` = '{kind}'",
                                  max_results=500, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return client, runs


@pytest.fixture
def experiment(monkeypatch) -> str:
    name = f"roft-test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", name)
    return name


@pytest.fixture
def store(tmp_path) -> ResultStore:
    """The demo's 12 trials (3 epochs each), and a fused group of 3 trials of another sweep's spec."""
    store = ResultStore(tmp_path / "store")
    write_demo_store(store)
    for seed in range(3):
        row = demo_row(f"fused-{seed}", "scratch-gcn", "bace", seed, 0.60 + seed / 100)
        row.update(engine="fused", fused_trials=3, trial_config=json.dumps({**PUBLISHED_RECIPE, "seed": seed}),
                   best_epoch=2, wall_seconds=12.5)
        store.write_trial(row, [epoch(n, loss=1.0 / n) for n in (1, 2, 3, 4)])
    return store


@pytest.mark.slow  # the server takes its time to start (about 40 s on 2 busy cores)
def test_each_landed_trial_is_one_run_under_the_sweeps_parent(mlflow_server, experiment, store):
    tracker = open_tracker(TrackerSetting("mlflow", mlflow_server), "mini")
    rows = {r["trial_key"]: r for r in store.read_trials().to_pylist()}
    assert tracker.log(store, [*rows, "not-landed-key"]) == 15 and tracker.errors == []
    client, runs = experiment_runs(mlflow_server, experiment)
    _, parents = experiment_runs(mlflow_server, experiment, kind="sweep")
    assert len(parents) == 1 and parents[0].data.tags["roft.sweep"] == "mini"
    assert len(runs) == len(rows) == 15  # one run per trial row: a fused group of 3 is 3 runs
    by_key = {run.data.tags["roft.trial_key"]: run for run in runs}
    assert set(by_key) == set(rows)
    for key, row in rows.items():
        run = by_key[key]
        tags, metrics = run.data.tags, run.data.metrics
        assert tags["mlflow.parentRunId"] == parents[0].info.run_id
        for column in ("sweep", "trial_key", "backbone", "method", "task", "split", "label_setting", "seed", "engine",
                       "code_version"):
            assert tags[f"roft.{column}"] == str(row[column]), column
        assert metrics["test_roc_auc_at_best_val_epoch"] == pytest.approx(row["test_metric"])
        assert metrics["best_val_roc_auc"] == pytest.approx(row["val_metric"])
        history = client.get_metric_history(run.info.run_id, "val_roc_auc")
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(
            range(1, (4 if key.startswith("fused") else 3) + 1))
        assert run.info.status == "FINISHED"
        assert run.info.end_time == int(row["finished_at"].timestamp() * 1000)
    fused = by_key["fused-1"]
    assert fused.data.params["recipe.lr"] == "0.001" and fused.data.params["seed"] == "1"
    assert fused.data.tags["roft.fused_trials"] == "3" and fused.data.metrics["best_epoch"] == 2
    losses = client.get_metric_history(fused.info.run_id, "train_loss")
    assert sorted((m.step, m.value) for m in losses) == [(n, pytest.approx(1.0 / n)) for n in (1, 2, 3, 4)]


@pytest.mark.slow  # the server takes its time to start (about 40 s on 2 busy cores)
def test_a_rerun_or_a_retried_trial_adds_no_run(mlflow_server, experiment, store):
    keys = store.done_keys()
    first = open_tracker(TrackerSetting("mlflow", mlflow_server), "mini")
    assert first.log(store, sorted(keys)[:5]) == 5
    assert first.log(store, sorted(keys)[:5]) == 0  # the same trials reported again (a retried unit)
    again = open_tracker(TrackerSetting("mlflow", mlflow_server), "mini")  # the sweep run again
    assert again.parent_run_id == first.parent_run_id and len(again.logged) == 5
    assert again.log(store, keys) == len(keys) - 5
    other = open_tracker(TrackerSetting("mlflow", mlflow_server), "another-sweep")  # a sweep planning the same trials
    assert other.log(store, keys) == 0
    _, runs = experiment_runs(mlflow_server, experiment)
    assert sorted(run.data.tags["roft.trial_key"] for run in runs) == sorted(keys)
    _, parents = experiment_runs(mlflow_server, experiment, kind="sweep")
    assert sorted(p.data.tags["roft.sweep"] for p in parents) == ["another-sweep", "mini"]


@pytest.mark.slow  # the server takes its time to start (about 40 s on 2 busy cores)
def test_the_tracker_survives_pickling_as_a_tune_callback_holds_it(mlflow_server, experiment, store):
    import pickle

    tracker = open_tracker(TrackerSetting("mlflow", mlflow_server), "mini")
    copy = pickle.loads(pickle.dumps(tracker))
    assert copy.log(store, ["demo-scratch-gcn-bbbp-0"]) == 1


def test_an_unreachable_server_is_one_line_before_anything_runs(experiment):
    import socket

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tracker = MlflowTracker(TrackerSetting("mlflow", f"http://127.0.0.1:{port}"), "mini")
    import os
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    try:
        with pytest.raises(TrackerError, match=rf"MLflow tracking server http://127.0.0.1:{port} cannot be used: .*"
                                               "nothing was run"):
            tracker.start()
    finally:
        del os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]


def test_without_mlflow_installed_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    with pytest.raises(TrackerError, match=r"needs MLflow, which is not installed: pip install 'roft\[mlflow\]'"):
        open_tracker(TrackerSetting("mlflow"), "mini")


@pytest.mark.parametrize("text, setting", [("mlflow", TrackerSetting("mlflow")),
                                           ("mlflow=http://127.0.0.1:5000", TrackerSetting("mlflow", "http://127.0.0.1:5000"))])
def test_tracker_settings(text, setting):
    assert TrackerSetting.parse(text) == setting


@pytest.mark.parametrize("text", ["wandb", "mlflow=", "MLflow"])
def test_a_bad_tracker_is_refused_naming_it(text):
    with pytest.raises(ValueError, match=rf"--tracker '{text}' is not accepted; accepted: mlflow, or mlflow=TRACKING_URI"):
        TrackerSetting.parse(text)


def test_configurations_flatten_into_params():
    assert flatten({"recipe": {"lr": 0.001, "epochs": 100}, "method_params": {"alpha": None}, "task": "bbbp"}) == {
        "method_params.alpha": "null", "recipe.epochs": "100", "recipe.lr": "0.001", "task": "bbbp"}
