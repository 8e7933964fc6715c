"""``roft alpha`` end to end: real data, real Full-FT checkpoints, Ray, the store and Optuna studies."""

from __future__ import annotations

import json

import optuna
import pytest

from orchestrator.cli import main
from orchestrator.store.results import ResultStore
from trainables.core.config import Runtime, TrainingRecipe, TrialSpec
from trainables.core.data_root import DataRoot
from trainables.methods.revisions import with_revisions
from trainables.worker.trial import execute_trial

pytestmark = [pytest.mark.slow, pytest.mark.data]


def full_ft(seed: int) -> TrialSpec:
    return with_revisions(TrialSpec(backbone="scratch-gcn", method="full-ft", task="esol", split="scaffold",
                                    label_setting="fewshot:16", seed=seed, subset_seed=42,
                                    recipe=TrainingRecipe(epochs=2), num_layers=5, emb_dim=8))


def test_alpha_searches_land_dedup_and_continue(ray_session, real_env, tmp_path, capsys):
    store = ResultStore(tmp_path / "store")
    for seed in (0, 1):
        execute_trial(full_ft(seed), Runtime(store=str(store.root), data_root=DataRoot(real_env)), store)
    base = ["alpha", "--store", str(store.root), "--method", "wise-ft", "roft-mol", "--groups", "2",
            "--n-trials", "6", "--seed", "0"]
    assert main(base) == 0
    rows = store.read_trials().to_pandas()
    searches = rows[rows.method != "full-ft"]
    assert sorted(searches.method_label) == ["roft-mol[optuna,groups=2,n_trials=6]", "wise-ft[optuna,n_trials=6]"]
    assert set(searches.parent_trial_key) == {full_ft(0).key()}
    for row in searches.itertuples():
        results = json.loads(row.method_results)
        assert len(results["alphas"]) == (2 if row.method == "roft-mol" else 1) and results["points"] == 6
        # the search scored its points stacked (K interpolated states in one batched pass), the row scores the
        # chosen point in one model: the same float32 sums in another order
        assert row.val_metric == pytest.approx(results["search_val"], rel=1e-6)
    points = store.read_side_table("alpha_trials").to_pandas()
    assert len(points) == 12 and points.groupby("trial_key").size().tolist() == [6, 6]
    capsys.readouterr()
    assert main(["status", "--store", str(store.root)]) == 0  # the saved request is planned again
    assert "sweep alpha (specs/alpha.yaml, 2 planned): 2 done, 0 failed, 0 running, 0 queued" in capsys.readouterr().out

    assert main(base) == 0  # a rerun plans nothing
    assert "0 to run" in capsys.readouterr().err and len(store.read_trials()) == 4

    assert main([*base[:-4], "--n-trials", "9", "--seed", "0"]) == 0  # a larger budget continues the studies
    rows = store.read_trials().to_pandas()
    continued = rows[rows.method_label.str.contains("n_trials=9")]
    assert len(continued) == 2
    for row in continued.itertuples():
        results = json.loads(row.method_results)
        assert results["points"] == 9 and results["points_evaluated_now"] == 3
        first = store.alpha_points(results["study"])
        assert [p["number"] for p in first] == list(range(9))

    journal = tmp_path / "studies.journal"
    assert main([*base[:-4], "--n-trials", "4", "--seed", "1", "--method", "wise-ft",
                 "--optuna-storage", str(journal)]) == 0
    summaries = optuna.get_all_study_summaries(optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))))
    assert [s.n_trials for s in summaries] == [4] and full_ft(1).key() in summaries[0].study_name


def test_alpha_without_checkpoints_says_so(real_env, tmp_path, capsys):
    (tmp_path / "store").mkdir()
    assert main(["alpha", "--store", str(tmp_path / "store"), "--dry-run"]) == 1
    assert "no Full-FT trial with a kept checkpoint matches" in capsys.readouterr().err
