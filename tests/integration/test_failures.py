"""Persistent failures through a real Ray sweep: recorded with their traceback, skipped, retried on request."""

from __future__ import annotations

import io

import pytest

from orchestrator.sweep.execute import run_sweep
from orchestrator.sweep.plan import plan_sweep
from tests.integration.sweeps import planned
from trainables.core.data_root import DataRoot

pytestmark = [pytest.mark.data]

SPEC = {
    "name": "failing",
    "backbones": ["mole-bert", "scratch-gcn"],  # mole-bert's checkpoint is a user file: here, a corrupt one
    "methods": {"full-ft": {}},
    "tasks": ["esol"],
    "splits": ["scaffold"],
    "label_settings": ["fewshot:16"],
    "seeds": [0],
    "training": {"epochs": 1, "batch_size": 8},
    "model": {"num_layers": 2, "emb_dim": 8},
    "resources": {"cpu": 1},
    "execution": {"max_failures": 1},
}


@pytest.fixture
def corrupt_checkpoint(ray_session, session_cache):
    path = session_cache / "weights" / "user" / "mole-bert.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a state dict")
    yield path
    path.unlink()


@pytest.mark.slow
def test_a_failing_trial_is_recorded_skipped_and_retried_on_request(corrupt_checkpoint, real_env, tmp_path):
    setup = planned(SPEC, real_env, tmp_path)
    store, runtime = setup.store, setup.runtime
    outcome = run_sweep(setup.plan, store, runtime, stream=io.StringIO())
    assert outcome.succeeded == 1 and len(outcome.failed) == 1
    (failure,) = store.read_failures().to_pylist()
    (bad,) = [t for t in setup.plan.trials if t.backbone == "mole-bert"]
    assert failure["trial_key"] == bad.key() and failure["method"] == "full-ft"
    assert failure["error"].startswith("trainables.models.shapes.CheckpointMismatchError: backbone mole-bert: cannot read")
    assert 'trainables/worker/trial.py", line' in failure["traceback"]  # the remote frames
    assert "\x1b[" not in failure["traceback"]
    assert store.read_trial(bad.key()) is None  # never a result
    assert [r["backbone"] for r in store.read_trials().to_pylist()] == ["scratch-gcn"]

    again = plan_sweep(setup.spec, store, DataRoot(real_env))  # a plain rerun skips the known failure
    assert again.pending == [] and again.failed == {bad.key()}
    assert "skipped 1 trial that failed before" in again.summary()

    retry = plan_sweep(setup.spec, store, DataRoot(real_env), retry_failed=True)
    assert [t.key() for t in retry.pending] == [bad.key()]
    outcome = run_sweep(retry, store, runtime, stream=io.StringIO())
    assert list(outcome.failed) == [bad.key()] and store.failed_keys() == {bad.key()}  # still failing, still recorded


def test_a_trial_that_lands_clears_its_failure_record(ray_session, real_env, tmp_path):
    setup = planned({**SPEC, "backbones": ["scratch-gcn"]}, real_env, tmp_path)
    (trial,) = setup.plan.trials
    setup.store.write_failure({"trial_key": trial.key(), "sweep": "old", "method": "full-ft", "trial_config": "{}",
                               "error": "an earlier failure", "traceback": "", "failed_at": None})
    retry = plan_sweep(setup.spec, setup.store, DataRoot(real_env), retry_failed=True)
    assert run_sweep(retry, setup.store, setup.runtime, stream=io.StringIO()).succeeded == 1
    assert setup.store.failed_keys() == set() and setup.store.read_trial(trial.key()) is not None
