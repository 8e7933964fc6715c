"""orchestrator.bench.methods: the cell's trials, stage lengths, samples and the table (no timing here)."""

from __future__ import annotations

import pytest

from orchestrator.bench.methods import (
    MethodsBench,
    _Measured,
    method_grid,
    method_rate,
    scaled_params,
    spread_sample,
    table_row,
    unit_of,
)


def test_the_paper_grid_with_stage_lengths_scaled_to_the_shortened_recipe():
    grid = method_grid(MethodsBench(epochs=3, grid="paper"))
    assert list(grid) == ["full-ft", "lp", "surgical-ft", "lp-ft", "wise-ft", "l2-sp", "feature-map", "bss",
                          "roft-mol"]
    assert {m: len(points) for m, points in grid.items()} == {
        "full-ft": 1, "lp": 1, "surgical-ft": 5, "lp-ft": 1, "wise-ft": 5, "l2-sp": 5, "feature-map": 5, "bss": 5,
        "roft-mol": 24}
    assert (grid["lp-ft"][0]["lp_epochs"], grid["lp-ft"][0]["ft_epochs"]) == (3, 3)  # 100 + 100 in the paper
    assert {p["epochs"] for p in grid["roft-mol"]} == {6}  # 200 in the paper
    default = method_grid(MethodsBench(epochs=10, methods=("roft-mol", "lp-ft")))  # the default grid
    assert list(default) == ["lp-ft", "roft-mol"]
    assert default["roft-mol"] == [scaled_params("roft-mol", {**default["roft-mol"][0], "epochs": 200}, 10, 100)]
    assert default["roft-mol"][0]["epochs"] == 20 and default["lp-ft"][0]["lp_epochs"] is None  # recipe's


def test_stage_lengths_never_scale_below_one_epoch():
    assert scaled_params("roft-mol", {"epochs": 200, "groups": 6}, 0.1, 100) == {"epochs": 1, "groups": 6}


def test_what_one_trial_of_a_method_is():
    assert unit_of("full-ft", {}, 3) == "trial" and unit_of("lp-ft", {}, 3) == "trial"
    assert unit_of("roft-mol", {"epochs": 6}, 3) == "fit"
    assert unit_of("wise-ft", {"alpha": 0.5}, 3) == "point"


def test_the_trials_timed_alone_spread_over_the_grid():
    trials = list(range(25))
    assert spread_sample(trials, 5) == [0, 6, 12, 18, 24]
    assert spread_sample(trials, 1) == [0]
    assert spread_sample(trials[:3], 5) == [0, 1, 2]


@pytest.mark.parametrize("bad, words", [({"epochs": 0}, "--epochs 0"), ({"grid": "all"}, "--grid 'all'"),
                                        ({"methods": ("lora",)}, "--methods lora"), ({"device": "tpu"}, "--device"),
                                        ({"engine": "lazy"}, "engine option.s. .lazy. are not accepted")])
def test_bad_options_are_named(bad, words):
    with pytest.raises(ValueError, match=words):
        MethodsBench(**bad)


def test_rates_and_row_from_synthetic_timings():
    measured = _Measured(unfused=[2.0, 2.5], fused=[0.5, 0.6], groups=(25,), timed_alone=5)
    rate = method_rate("surgical-ft", [{"layer": i} for i in range(5)], 25, 3, measured)
    assert (rate.unit, rate.trials, rate.fit_epochs) == ("trial", 25, 3)
    assert (rate.unfused.seconds, rate.unfused.low, rate.unfused.high) == (2.0, 2.0, 2.5)
    assert rate.fused.per_hour == pytest.approx(7200) and rate.fused.groups == (25,)
    row = table_row(rate)
    assert row.split()[:3] == ["surgical-ft", "trial", "25"]
    assert "1,800 (1,440-1,800)" in row and "7,200 (6,000-7,200)" in row and "1x25" in row
    assert "4.00x" in row and row.endswith("0.667 / 0.167")
    alone = method_rate("wise-ft", [{"alpha": 0.5}], 5, 3, _Measured(unfused=[0.4], timed_alone=5))
    row = table_row(alone)
    assert "does not fuse" in row and row.split()[1] == "point" and "9,000" in row and row.endswith("- / -")
