from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from orchestrator.analysis import plots
from orchestrator.analysis.report import REPORT_COLUMNS
from orchestrator.analysis.tables import load_trials
from orchestrator.store.results import ResultStore
from tests.unit.orchestrator.store.rows import make_row, write_alpha_search_store


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
    assert titles == ["bbbp: validation", "bbbp: test", "esol: validation", "esol: test"]


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
    assert set(val_series) == {"wise-ft grid, seed mean (val)", "wise-ft search points (val)",
                               "wise-ft search, chosen alpha (val)"}
    # the search scored no test metric per point (no test_per_point): the test panel has none
    assert set(test_series) == {"wise-ft grid, seed mean (test)", "wise-ft search, chosen alpha (test)"}
    assert val_series["wise-ft grid, seed mean (val)"] == pytest.approx([1.1, 1.5])
    assert test_series["wise-ft grid, seed mean (test)"] == pytest.approx([2.1, 2.5])
    assert sorted(val_series["wise-ft search points (val)"]) == pytest.approx(sorted([0.70 + n / 100 for n in range(8)] * 3))
    assert test_series["wise-ft search, chosen alpha (test)"] == pytest.approx([0.72, 0.73, 0.74])
    plots.save_figure(figure, tmp_path, "alpha")


def test_alpha_curves_of_trials_without_their_points_draw_nothing(searched):
    trials, points = searched
    assert plots.alpha_curves(trials[trials.method == "full-ft"], points) is None
    assert plots.alpha_curves(trials.iloc[0:0], points) is None
