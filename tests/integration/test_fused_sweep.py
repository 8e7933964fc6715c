"""Fused groups through a real Ray sweep: one Ray trial per group, one row per logical trial."""

from __future__ import annotations

import io

import numpy as np
import pytest

from orchestrator.store.results import ResultStore
from orchestrator.sweep.execute import run_sweep
from orchestrator.sweep.plan import plan_sweep
from search_spaces import parse_spec
from tests.integration.sweeps import planned
from trainables.core.config import Runtime
from trainables.core.data_root import DataRoot
from trainables.core.engine import EngineOptions
from trainables.worker.trial import execute_fused_group, execute_trial

pytestmark = [pytest.mark.slow, pytest.mark.data]

FUSED = {
    "name": "fused",
    "backbones": ["hu-gcn-contextpred", "hu-gcn-supervised"],  # one architecture: they fuse
    "methods": {"full-ft": {}, "lp": {"freeze_bn_stats": True}},  # lp with fixed statistics does not fuse
    "tasks": ["bbbp"],
    "splits": ["scaffold"],
    "label_settings": ["fewshot:50"],
    "seeds": [0, 1],
    "training": {"epochs": 2, "batch_size": 16},
    "resources": {"cpu": 1},
}


def test_fused_groups_land_one_row_per_trial_and_resume(ray_session, real_env, tmp_path):
    setup = planned(FUSED, real_env, tmp_path)
    spec, store, runtime, plan = setup.spec, setup.store, setup.runtime, setup.plan
    assert "fusion: 4 trials in 1 fused group (1 x 4; at most 64), 4 trials alone" in plan.summary()
    outcome = run_sweep(plan, store, runtime, stream=io.StringIO())
    assert outcome.failed == {} and outcome.succeeded == 8

    rows = store.read_trials().to_pandas().set_index("trial_key")
    assert sorted(rows.index) == sorted(t.key() for t in plan.trials)
    for trial in plan.trials:
        row = rows.loc[trial.key()]
        expected = ("fused", 4) if trial.method == "full-ft" else ("unfused", 1)
        assert (row.engine, row.fused_trials) == expected
        assert np.isfinite(row.val_metric) and np.isfinite(row.test_metric)
        assert row.backbone == trial.backbone and row.seed == trial.seed
    # each fused trial kept its own checkpoint (WiSE-FT / RoFt-Mol would start from it)
    fused_keys = [t.key() for t in plan.trials if t.method == "full-ft"]
    assert len({rows.loc[k].artifact_sha256 for k in fused_keys}) == 4

    # a lost member row: the rerun trains exactly that trial again, alone
    (store.trials_dir / f"{fused_keys[2]}.parquet").unlink()
    again = plan_sweep(spec, store, DataRoot(real_env))
    assert [t.key() for t in again.pending] == [fused_keys[2]]
    assert run_sweep(again, store, runtime, stream=io.StringIO()).succeeded == 1
    assert store.read_trial(fused_keys[2])["engine"] == "unfused"


@pytest.mark.parametrize("aggregation", ["scatter", "csr"])
def test_a_fused_trial_starts_as_its_unfused_run(real_env, tmp_path, aggregation):
    """Same initial weights and dropout masks: the first epoch's loss agrees to float32 rounding,
    with messages summed by scatter or by CSR products (the row's engine names the latter).

    (Later epochs drift apart in float32: Adam normalises gradients, so rounding noise in
    gradients that are exactly zero in exact arithmetic, such as a bias right before BatchNorm,
    becomes steps of size lr. In float64 the engines agree to 1e-9: tests/unit/trainables/training/fused.)
    """
    spec = parse_spec({**FUSED, "methods": {"full-ft": {}}, "training": {"epochs": 1, "batch_size": 16}})
    assert spec.methods == (("full-ft", {}),)
    trials = plan_sweep(spec, ResultStore(tmp_path / "plan"), DataRoot(real_env)).trials
    fused_runtime = Runtime(store=str(tmp_path / "fused"), data_root=DataRoot(real_env), artifacts="all",
                            engine=EngineOptions(aggregation=aggregation))
    unfused_runtime = Runtime(store=str(tmp_path / "unfused"), data_root=DataRoot(real_env), artifacts="all")
    execute_fused_group(trials, fused_runtime, ResultStore(fused_runtime.store))
    for trial in trials:
        execute_trial(trial, unfused_runtime, ResultStore(unfused_runtime.store))
    fused_epochs = ResultStore(tmp_path / "fused").read_side_table("epochs").to_pandas().set_index("trial_key")
    unfused_epochs = ResultStore(tmp_path / "unfused").read_side_table("epochs").to_pandas().set_index("trial_key")
    losses = [(fused_epochs.loc[t.key()].train_loss, unfused_epochs.loc[t.key()].train_loss) for t in trials]
    assert len({round(u, 6) for _, u in losses}) == len(trials)  # the trials really differ
    for fused, unfused in losses:
        assert fused == pytest.approx(unfused, rel=1e-4)
    engine = "fused+csr" if aggregation == "csr" else "fused"
    assert {ResultStore(tmp_path / "fused").read_trial(t.key())["engine"] for t in trials} == {engine}


def test_a_rerun_group_trains_only_its_missing_members(real_env, tmp_path):
    spec = parse_spec({**FUSED, "methods": {"full-ft": {}}, "seeds": [0, 1, 2], "training": {"epochs": 1}})
    trials = plan_sweep(spec, ResultStore(tmp_path / "plan"), DataRoot(real_env)).trials[:3]
    runtime = Runtime(store=str(tmp_path / "store"), data_root=DataRoot(real_env))
    first = execute_trial(trials[0], runtime, ResultStore(runtime.store))
    rows = execute_fused_group(trials, runtime, ResultStore(runtime.store))
    assert sorted(r["trial_key"] for r in rows) == sorted(t.key() for t in trials)
    by_key = {r["trial_key"]: r for r in rows}
    assert by_key[trials[0].key()]["finished_at"] == first["finished_at"]  # reused, not retrained
    assert {by_key[t.key()]["fused_trials"] for t in trials[1:]} == {2}
