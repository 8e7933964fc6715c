"""orchestrator/analysis/cost.py: worker-hours from the rows' shares, wall time as a union of intervals."""

from __future__ import annotations

import pandas as pd

from orchestrator.analysis.cost import busy_seconds, cost_table, cost_text


def _at(minute: float) -> pd.Timestamp:
    return pd.Timestamp("2026-01-01T00:00:00Z") + pd.Timedelta(minutes=minute)


def test_overlapping_intervals_count_once_and_gaps_not_at_all():
    starts = pd.Series([_at(0), _at(5), _at(30)])
    ends = pd.Series([_at(10), _at(12), _at(40)])  # 0-12 (two overlapping), gap, 30-40
    assert busy_seconds(starts, ends) == 22 * 60
    assert busy_seconds(pd.Series([], dtype=object), pd.Series([], dtype=object)) == 0.0


def test_cost_per_method_and_in_all():
    trials = pd.DataFrame({
        "method": ["full-ft", "full-ft", "wise-ft"],
        "wall_seconds": [1800.0, 1800.0, 60.0],  # two fused members sharing one hour; a fast dependant
        "started_at": [_at(0), _at(0), None],
        "finished_at": [_at(60), _at(60), _at(61)],
    })
    table = cost_table(trials)
    assert table.loc["full-ft", "trials"] == 2 and table.loc["full-ft", "worker_hours"] == 1.0
    assert table.loc["(all)", "trials"] == 3 and abs(table.loc["(all)", "worker_hours"] - 3660 / 3600) < 1e-12
    text = cost_text(trials)
    assert "| (all) | 3 | 1.02 | 20.33 |" in text
    assert "| wise-ft | 1 | 0.017 | 1.00 |" in text  # below 1: two significant digits, never 0.00
    assert "Wall time with a trial in flight: 1.02 h" in text  # the row without a start spans its wall_seconds


def test_seconds_of_gpu_work_read_as_small_figures_not_zero():
    trials = pd.DataFrame({
        "method": ["full-ft"] * 20,
        "wall_seconds": [3.2] * 20,  # a fused group of 20 sharing 64 s
        "started_at": [_at(0)] * 20,
        "finished_at": [_at(1.07)] * 20,
    })
    text = cost_text(trials)
    assert "| full-ft | 20 | 0.018 | 0.053 |" in text
    assert "Wall time with a trial in flight: 0.018 h" in text


def test_an_empty_store_spent_nothing():
    assert "nothing was spent" in cost_text(pd.DataFrame(columns=["method", "wall_seconds", "started_at", "finished_at"]))
