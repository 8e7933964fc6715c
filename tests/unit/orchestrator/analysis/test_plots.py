from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from orchestrator.analysis import plots
from orchestrator.analysis.report import REPORT_COLUMNS
from orchestrator.analysis.tables import load_trials
from orchestrator.store.results import ResultStore
from tests.unit.orchestrator.store.rows import SEARCH_PARAMS, make_row, write_alpha_search_store


def _series(axis) -> dict[str, np.ndarray]:
    """Legend label -> the y values drawn under it (lines and scatter points)."""
    handles, labels = axis.get_legend_handles_labels()
    out = {}
    for handle, label in zip(handles, labels):
        if hasattr(handle, "get_offsets"):
            out[label] = np.asarray(handle.get_offsets())[:, 1]
        else:  # an errorbar container: its line
            out[label] = np.asarray(handle.lines[0].get_ydata())
    return out


@pytest.fixture
def searched(tmp_path):
    store = ResultStore(tmp_path)
    write_alpha_search_store(store)
    return load_trials(store, columns=REPORT_COLUMNS), store.read_side_table("alpha_trials").to_pandas()


def test_alpha_curves_draw_only_search_points_when_every_wise_ft_row_is_a_search(searched):
    figure = plots.alpha_curves(*searched)
    assert figure is not None
    titles = [axis.get_title() for axis in figure.axes]
    assert titles == ["BBBP: validation", "BBBP: test", "ESOL: validation", "ESOL: test"]


def test_alpha_curves_keep_validation_and_test_apart(searched, tmp_path):
    trials, points = searched
    grid = [make_row(f"g{a}{s}", method="wise-ft", task="esol", metric="rmse", seed=s, val_metric=1.0 + a,
                     test_metric=2.0 + a, method_params=json.dumps({"alpha": a, "search": "none"}))
            for a in (0.1, 0.5) for s in (0, 1)]
    trials = pd.concat([trials, pd.DataFrame(grid)[trials.columns]], ignore_index=True)
    figure = plots.alpha_curves(trials, points)
    val, test = figure.axes[2], figure.axes[3]  # esol
    assert val.get_ylabel() == "val rmse" and test.get_ylabel() == "test rmse"
    val_series, test_series = _series(val), _series(test)
    search = "wise-ft[optuna,n_trials=8]"  # the method variant, by its label
    assert set(val_series) == {"wise-ft grid, seed mean (val)", f"{search} points (val)",
                               f"{search}, chosen alpha (val)"}
    # the search scored no test metric per point (no test_per_point): the test panel has none
    assert set(test_series) == {"wise-ft grid, seed mean (test)", f"{search}, chosen alpha (test)"}
    assert val_series["wise-ft grid, seed mean (val)"] == pytest.approx([1.1, 1.5])
    assert test_series["wise-ft grid, seed mean (test)"] == pytest.approx([2.1, 2.5])
    assert sorted(val_series[f"{search} points (val)"]) == pytest.approx(sorted([0.70 + n / 100 for n in range(8)] * 3))
    assert test_series[f"{search}, chosen alpha (test)"] == pytest.approx([0.72, 0.73, 0.74])
    plots.save_figure(figure, tmp_path, "alpha")


def test_alpha_curves_of_trials_without_their_points_draw_nothing(searched):
    trials, points = searched
    with pytest.raises(plots.NothingToDraw, match="no WiSE-FT grid and no alpha search"):
        plots.alpha_curves(trials[trials.method == "full-ft"], points)
    with pytest.raises(plots.NothingToDraw):
        plots.alpha_curves(trials.iloc[0:0], points)


def test_an_alpha_curve_needs_two_alphas(tmp_path):
    grid = pd.DataFrame([make_row(f"g{s}", method="wise-ft", task="esol", metric="rmse", seed=s,
                                  method_params=json.dumps({"alpha": 0.5, "search": "none"})) for s in (0, 1)])
    with pytest.raises(plots.NothingToDraw, match="one alpha only"):
        plots.alpha_curves(grid, None)


def cell(backbone, method, task, label_setting, mean, std=0.01, split="scaffold", metric="roc_auc"):
    return {"backbone": backbone, "method": method, "task": task, "split": split, "label_setting": label_setting,
            "metric": metric, "method_label": method, "mean": mean, "std": std, "seeds": 3, "val_mean": mean,
            "points": 1}


def test_fewshot_curves_need_two_label_settings_and_never_average_backbones():
    one = pd.DataFrame([cell("hu-gcn-supervised-contextpred", "lp", "bbbp", "full", 0.69),
                        cell("scratch-gcn", "lp", "bbbp", "full", 0.56)])
    with pytest.raises(plots.NothingToDraw, match=r"one label setting only \(all training labels\)"):
        plots.fewshot_curves(one)
    two = pd.concat([one, pd.DataFrame([cell("hu-gcn-supervised-contextpred", "lp", "bbbp", "fewshot:64", 0.61),
                                        cell("scratch-gcn", "lp", "bbbp", "fewshot:64", 0.52),
                                        cell("scratch-gcn", "lp", "clintox", "full", 0.56)])])
    figure = plots.fewshot_curves(two)
    assert [axis.get_title() for axis in figure.axes] == ["BBBP (higher is better)"]  # ClinTox: one setting
    series = _series_of(figure.axes[0])
    assert series == {"GCN, supervised + ContextPred pre-training · linear probing": pytest.approx([61.0, 69.0]),
                      "GCN, random init (no pre-training) · linear probing": pytest.approx([52.0, 56.0])}
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == ["64 labelled molecules", "all training labels"]


def _series_of(axis) -> dict[str, list[float]]:
    return {label: list(values) for label, values in _series(axis).items()}


def test_the_pretraining_figure_names_backbones_and_needs_two_kinds():
    frame = pd.DataFrame([cell("hu-gcn-supervised-contextpred", "lp", "bbbp", "full", 0.69),
                          cell("scratch-gcn", "lp", "bbbp", "full", 0.56)])
    kinds = {"hu-gcn-supervised-contextpred": "both", "scratch-gcn": "none"}
    figure = plots.pretraining_comparison(frame, kinds)
    labels = [t.get_text() for t in figure.legends[0].get_texts()]
    assert labels == ["GCN, random init (no pre-training)", "GCN, supervised + ContextPred pre-training"]
    assert _series_of(figure.axes[0]) == {"GCN, random init (no pre-training)": pytest.approx([56.0]),
                                          "GCN, supervised + ContextPred pre-training": pytest.approx([69.0])}
    # one point per backbone: nothing averaged
    with pytest.raises(plots.NothingToDraw, match=r"same pre-training \(none\)"):
        plots.pretraining_comparison(frame[frame.backbone == "scratch-gcn"], kinds)


def test_the_published_figure_puts_each_published_value_beside_the_measured_one():
    comparison = pd.DataFrame([{"backbone": "scratch-gin", "task": t, "mean": m, "std": 2.0, "seeds": 3,
                                "published_mean": p, "published_std": 4.0, "published_seeds": 10, "difference": m - p,
                                "within_2se": True, "epoch": "best-val", "anchor": "hu2020-none", "source": "x",
                                "confidence": "recalled"} for t, m, p in (("bbbp", 69.2, 65.8), ("bace", 67.9, 70.1))])
    figure = plots.published_comparison(comparison)
    series = _series_of(figure.axes[0])
    assert series["GIN, random init (no pre-training): measured (n=3)"] == pytest.approx([67.9, 69.2])
    assert series["GIN, random init (no pre-training): published, hu2020-none (n=10)"] == pytest.approx([70.1, 65.8])
    with pytest.raises(plots.NothingToDraw, match="no cell matches a published configuration"):
        plots.published_comparison(comparison.iloc[0:0])


def test_alpha_curves_name_the_roft_mol_grouping_they_show(tmp_path):
    """A one-group RoFt-Mol search is drawn under its label (its grouping); a six-group one is not
    drawn (six alphas), and the title says which variants are drawn and which are not."""
    store = ResultStore(tmp_path)
    params = {**SEARCH_PARAMS, "groups": 1}
    for groups, alphas in ((1, [0.4]), (6, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])):
        label, study = f"roft-mol[optuna,groups={groups},n_trials=8]", f"roft-mol:g{groups}"
        store.write_trial(
            make_row(f"rm{groups}", task="bbbp", method="roft-mol", method_label=label, mechanism="weight",
                     pretraining="none", method_params=json.dumps({**params, "groups": groups}, sort_keys=True),
                     method_results=json.dumps({"alphas": alphas, "study": study}), val_metric=0.7, test_metric=0.6),
            side={"alpha_trials": [{"study": study, "number": n, "alphas": [0.2 + n / 10] if groups == 1 else alphas,
                                    "val_metric": 0.6 + n / 100, "test_metric": None} for n in range(3)]})
    figure = plots.alpha_curves(load_trials(store, columns=REPORT_COLUMNS),
                                store.read_side_table("alpha_trials").to_pandas())
    assert set(_series(figure.axes[0])) == {"roft-mol[optuna,groups=1,n_trials=8] points (val)",
                                            "roft-mol[optuna,groups=1,n_trials=8], chosen alpha (val)"}
    title = figure._suptitle.get_text()
    assert "roft-mol[optuna,groups=1,n_trials=8] search" in title and "groups=6" not in title
    assert "searches of several alphas (roft-mol, groups > 1) are not drawn" in title
