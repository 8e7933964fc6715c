"""Optuna alpha search: optimum found, determinism, continuation, shared journals, the methods' search mode."""

from __future__ import annotations

import math
import multiprocessing

import pytest
import torch

from tests.unit.trainables.methods.test_methods_interpolation import (  # noqa: F401
    ENCODER,
    fit_dependant,
    interpolated_state,
    parent,
    regression_data,
    scored,
)
from trainables.methods import make_method
from trainables.methods.alpha_search import AlphaPoint, open_storage, search_alphas

OPTIMUM = (0.3, 0.8)


def bowl(alphas) -> tuple[float, float]:
    """A known optimum: val = -||alphas - OPTIMUM||^2 (maximised at OPTIMUM), test = val - 1."""
    val = -sum((a - o) ** 2 for a, o in zip(alphas, OPTIMUM))
    return val, val - 1.0


def search(n_trials=60, groups=2, seed=0, name="bowl", storage=None, prior=(), evaluate=bowl, **kw):
    return search_alphas(evaluate, groups=groups, n_trials=n_trials, seed=seed, direction="maximize",
                         study_name=name, storage=storage, prior=prior, **kw)


def test_finds_a_known_optimum():
    best, new, points = search(n_trials=80)
    assert len(new) == len(points) == 80
    assert math.dist(best.alphas, OPTIMUM) < 0.1, best
    assert best.val == max(p.val for p in points) and best.test == best.val - 1.0


def test_minimisation_and_one_group():
    best, _, _ = search_alphas(lambda a: ((a[0] - 0.7) ** 2, 0.0), groups=1, n_trials=40, seed=1,
                               direction="minimize", study_name="one")
    assert abs(best.alphas[0] - 0.7) < 0.05


def test_same_seed_same_alphas_other_seed_other_alphas():
    first = [p.alphas for p in search(n_trials=25)[2]]
    assert first == [p.alphas for p in search(n_trials=25)[2]]
    assert first != [p.alphas for p in search(n_trials=25, seed=1)[2]]


def test_continuing_in_memory_from_prior_points_keeps_them():
    _, _, earlier = search(n_trials=15)
    best, new, points = search(n_trials=40, prior=earlier)
    assert len(new) == 25 and len(points) == 40
    assert [(p.number, p.alphas, p.val) for p in points[:15]] == [(p.number, p.alphas, p.val) for p in earlier]
    assert best.val >= max(p.val for p in earlier)
    # A budget already met evaluates nothing and answers with the study's first points.
    _, none, again = search(n_trials=10, prior=points)
    assert none == [] and again == points[:10]


def test_continuing_a_journal_study(tmp_path):
    journal = str(tmp_path / "studies.journal")
    _, _, earlier = search(n_trials=10, storage=open_storage(journal))
    _, new, points = search(n_trials=18, storage=open_storage(journal))
    assert len(new) == 8 and [p.alphas for p in points[:10]] == [p.alphas for p in earlier]


def _search_in_process(journal: str, name: str, seed: int) -> None:
    search(n_trials=20, seed=seed, name=name, storage=open_storage(journal))


@pytest.mark.slow
def test_one_journal_shared_by_two_processes(tmp_path):
    """Two processes append to one journal at once (two studies, and one study from both): nothing is lost."""
    import optuna

    journal = str(tmp_path / "shared.journal")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_search_in_process, args=(journal, name, seed))
               for name, seed in (("a", 0), ("b", 1), ("both", 2), ("both", 3))]
    for w in workers:
        w.start()
    for w in workers:
        w.join(600)  # a loaded machine spawns slowly (each process imports torch and optuna)
        assert w.exitcode == 0
    storage = open_storage(journal)
    counts = {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(storage)}
    assert counts["a"] == counts["b"] == 20
    # Both processes ran until the shared study held 20 complete points; at most one extra each.
    assert 20 <= counts["both"] <= 22
    study = optuna.load_study(study_name="both", storage=storage)
    assert all(t.value is not None and len(t.params) == 2 for t in study.trials
               if t.state == optuna.trial.TrialState.COMPLETE)


def test_nan_points_are_failed_not_best():
    calls = []

    def sometimes_nan(alphas):
        calls.append(alphas)
        return (math.nan, 0.0) if len(calls) % 2 else bowl(alphas)

    best, new, points = search(n_trials=10, evaluate=sometimes_nan)
    assert math.isfinite(best.val) and all(math.isfinite(p.val) for p in points)
    assert len(points) == 10 and len(calls) == 20  # failed points do not count toward the budget


@pytest.mark.parametrize("low, high", [(1.0, 0.0), (0.5, 0.5), (0.0, math.inf), (math.nan, 1.0)])
def test_invalid_ranges_are_clear_errors(low, high):
    with pytest.raises(ValueError, match=r"alpha range \[.*\] is not accepted; accepted: finite low < high"):
        search(n_trials=2, low=low, high=high)


def test_invalid_direction_and_sizes():
    with pytest.raises(ValueError, match="direction 'up' is not accepted; accepted: maximize, minimize"):
        search_alphas(bowl, groups=2, n_trials=2, seed=0, direction="up", study_name="x")
    with pytest.raises(ValueError, match="groups=0 and n_trials=5"):
        search(n_trials=5, groups=0)


def test_storage_locations(tmp_path):
    import optuna

    assert isinstance(open_storage(None), optuna.storages.InMemoryStorage)
    assert isinstance(open_storage(str(tmp_path / "j.log")), optuna.storages.JournalStorage)
    assert isinstance(open_storage(f"sqlite:///{tmp_path}/s.db"), optuna.storages.RDBStorage)


# ----------------------------------------------------------------------------- the methods' search mode

def test_wise_ft_search_reports_the_best_alpha_and_every_point(regression_data, parent):  # noqa: F811
    method = make_method("wise-ft", {"search": "optuna", "n_trials": 12, "search_seed": 3})
    assert method.label == "wise-ft[optuna,n_trials=12,search_seed=3]"
    ctx, model, result = fit_dependant(method, regression_data, parent.state)
    summary = result.summary
    assert [r.stage for r in result.history] == ["search"] and result.best_epoch == 0
    assert summary["points"] == summary["points_evaluated_now"] == 12 and len(summary["alphas"]) == 1
    points = method.records(ctx)["alpha_trials"]
    assert [p["number"] for p in points] == list(range(12))
    assert summary["search_val"] == min(p["val_metric"] for p in points)  # RMSE: lowest is best
    assert result.val == summary["search_val"]
    # The reported model is theta(best alpha), scored independently.
    alpha = torch.tensor(summary["alphas"], dtype=torch.float32)
    expected = interpolated_state(parent.pre, parent.state, lambda g: alpha[0], "interpolate", ENCODER)
    assert scored(expected, regression_data, [14, 15, 16]) == pytest.approx(result.val, abs=0, rel=1e-12)


def test_roft_mol_search_with_groups_and_prior_points(regression_data, parent):  # noqa: F811
    first = make_method("roft-mol", {"search": "optuna", "n_trials": 6, "groups": 3})
    ctx, _, result = fit_dependant(first, regression_data, parent.state)
    assert first.label == "roft-mol[optuna,groups=3,n_trials=6]"
    rows = first.records(ctx)["alpha_trials"]
    assert len(result.summary["alphas"]) == 3 and all(len(r["alphas"]) == 3 for r in rows)
    more = make_method("roft-mol", {"search": "optuna", "n_trials": 9, "groups": 3})
    assert more.study_name(ctx) == first.study_name(ctx)  # the budget is not part of the study

    prior = [AlphaPoint(r["number"], tuple(r["alphas"]), r["val_metric"], r["test_metric"]) for r in rows]
    model_ctx, _, again = fit_dependant(more, regression_data, parent.state, prior_points=prior)
    assert again.summary["points"] == 9 and again.summary["points_evaluated_now"] == 3
    assert [r["alphas"] for r in more.records(model_ctx)["alpha_trials"][:6]] == [r["alphas"] for r in rows]


@pytest.mark.parametrize("params, message", [
    ({"search": "optuna", "alpha": 0.3}, r"method wise-ft: alpha has no effect with search: optuna"),
    ({"n_trials": 5}, r"method wise-ft: n_trials applies only with search: optuna"),
    ({"search": "optuna", "alpha_low": 1.0, "alpha_high": 0.0}, r"alpha range \[1.0, 0.0\] is not accepted"),
    ({"search": "grid"}, r"wise-ft.search='grid' is not accepted; accepted: one of \['none', 'optuna'\]"),
])
def test_search_parameter_errors(params, message):
    with pytest.raises(ValueError, match=message):
        make_method("wise-ft", params)


def test_roft_mol_search_refuses_gradient_parameters():
    with pytest.raises(ValueError, match=r"method roft-mol: alpha_lr, epochs have no effect with search: optuna"):
        make_method("roft-mol", {"search": "optuna", "alpha_lr": 0.1, "epochs": 3})


@pytest.mark.parametrize("n_trials", [4, 15])
def test_startup_points_scored_in_one_batch_are_the_sequential_points(n_trials):
    """TPE's random startup points asked together and scored in one batch are the points, values and order
    of one-by-one evaluation; later points follow the same history, so they are the same too."""
    batches = []

    def evaluate_many(points):
        batches.append(len(points))
        return [bowl(alphas) for alphas in points]

    _, _, sequential = search(n_trials=n_trials)
    best, new, batched = search(n_trials=n_trials, evaluate_many=evaluate_many)
    assert batches == [min(n_trials, 10)]
    assert [(p.number, p.alphas, p.val, p.test) for p in batched] == \
        [(p.number, p.alphas, p.val, p.test) for p in sequential]
    assert len(new) == n_trials and best.val == max(p.val for p in batched)
    # a continued study with its startup done scores one point at a time
    storage = open_storage(None)
    search(n_trials=12, storage=storage, evaluate_many=evaluate_many)
    search(n_trials=14, storage=storage, evaluate_many=evaluate_many)
    assert batches[-1] == 10
