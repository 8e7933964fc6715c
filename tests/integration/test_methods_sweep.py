"""Every method through a real Ray sweep: parents added and run first, one row per logical trial."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
import torch

from orchestrator.store.results import ResultStore
from orchestrator.sweep.execute import run_sweep
from orchestrator.sweep.plan import plan_sweep
from search_spaces import parse_spec
from tests.integration.sweeps import planned
from trainables.core.config import Runtime
from trainables.core.data_root import DataRoot
from trainables.methods.dependencies import parent_spec

pytestmark = [pytest.mark.slow, pytest.mark.data]

EVERY_METHOD = {
    "name": "every-method",
    "backbones": ["scratch-gcn"],
    "methods": {  # full-ft is not listed: the planner adds it for wise-ft and roft-mol
        "lp": {}, "surgical-ft": {"layer": [0, 4]}, "lp-ft": {"lp_epochs": 1, "ft_epochs": 2},
        "wise-ft": {"alpha": [0.5, 1.0]}, "l2-sp": {"d": 0.01}, "feature-map": {"d": 0.001}, "bss": {"d": 0.01},
        "roft-mol": {"groups": [1, 6], "epochs": 2},
    },
    "tasks": ["esol"],
    "splits": ["scaffold"],
    "label_settings": ["fewshot:16"],
    "seeds": [0, 1],
    "training": {"epochs": 2, "batch_size": 8},
    "model": {"num_layers": 5, "emb_dim": 8},
    "resources": {"cpu": 1},
}


def test_every_method_lands_one_row_per_logical_trial(ray_session, real_env, tmp_path):
    setup = planned(EVERY_METHOD, real_env, tmp_path)
    spec, store, runtime, plan = setup.spec, setup.store, setup.runtime, setup.plan
    assert plan.added_parents == 2 and len(plan.trials) == 2 * 12
    outcome = run_sweep(plan, store, runtime, stream=io.StringIO())
    assert outcome.failed == {} and outcome.succeeded == 24

    rows = store.read_trials().to_pandas()
    assert len(rows) == 24 and sorted(rows.trial_key) == sorted(t.key() for t in plan.trials)
    assert rows.groupby("method").size().to_dict() == {
        "full-ft": 2, "lp": 2, "surgical-ft": 4, "lp-ft": 2, "wise-ft": 4, "l2-sp": 2, "feature-map": 2, "bss": 2,
        "roft-mol": 4}
    by_key = rows.set_index("trial_key")
    for trial in plan.trials:
        row = by_key.loc[trial.key()]
        parent = parent_spec(trial)
        if parent is None:
            assert pd.isna(row.parent_trial_key)  # null: no parent
            continue
        # Dependants ran against the very checkpoint their parent committed.
        parent_row = by_key.loc[parent.key()]
        assert row.parent_trial_key == parent.key()
        assert row.parent_artifact_sha256 == parent_row.artifact_sha256 != ""
        assert row.finished_at >= parent_row.finished_at
        if trial.method == "wise-ft" and trial.method_params["alpha"] == 1.0:
            # the parent trained in a fused group and was scored by the fused forward pass: equal
            # up to the order of floating-point sums
            assert (row.val_metric, row.test_metric) == pytest.approx(
                (parent_row.val_metric, parent_row.test_metric), rel=1e-6)
        if trial.method == "roft-mol":
            alphas = json.loads(row.method_results)["alphas"]
            assert len(alphas) == trial.method_params["groups"] and all(a == a for a in alphas)
    assert set(rows.loc[rows.method == "lp-ft", "best_stage"]) == {"ft"}
    assert set(rows.loc[rows.method == "wise-ft", "best_epoch"]) == {0}
    parent_state = torch.load(rows.loc[rows.method == "full-ft", "artifact_path"].iloc[0], weights_only=True)
    assert "graph_pred_linear.weight" in parent_state

    # A rerun plans nothing; the report shows one cell per method point.
    assert plan_sweep(spec, store, DataRoot(real_env)).pending == []


def test_dependants_of_a_failed_parent_are_not_run(ray_session, real_env, tmp_path):
    spec = parse_spec(dict(EVERY_METHOD, methods={"wise-ft": {}}, seeds=[0], label_settings=["fewshot:100000"],
                           execution={"max_failures": 0}))
    store = ResultStore(tmp_path / "store")
    runtime = Runtime(store=str(store.root), sweep=spec.name, data_root=DataRoot(real_env))
    plan = plan_sweep(spec, store, DataRoot(real_env))
    outcome = run_sweep(plan, store, runtime, stream=io.StringIO())
    wise = next(t for t in plan.trials if t.method == "wise-ft")
    assert set(outcome.failed) == {t.key() for t in plan.trials}
    assert outcome.failed[wise.key()].startswith(f"not run: its full-ft parent trial {parent_spec(wise).key()} "
                                                 "did not land")
    assert store.done_keys() == set()
