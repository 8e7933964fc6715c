"""orchestrator.bench.timing: when repeated timings resolve a figure, and its spread (synthetic timings)."""

from __future__ import annotations

import pytest

from orchestrator.bench.timing import Spread, TimingNoiseError, fit_epochs


def test_the_quiet_machine_of_the_report_gives_a_figure_and_a_set_up_of_zero():
    # 2 idle cores, --epochs 3: unfused fits of 1 and 4 epochs; the fitted set-up is -0.033 s
    fit = fit_epochs([0.601, 0.704, 0.650], [2.503, 2.594, 2.560], epochs=3)
    assert fit.per_epoch.value == pytest.approx((2.503 - 0.601) / 3)
    assert fit.setup == 0.0
    assert fit.per_epoch.low == pytest.approx((2.594 - 0.704) / 3)  # the repeats' own figures
    assert fit.per_epoch.high == pytest.approx((2.560 - 0.650) / 3)
    # fused K=8 of the same report: 2.024-2.460 s and 8.607-9.432 s
    fused = fit_epochs([2.024, 2.460, 2.300], [8.607, 9.432, 9.000], epochs=3)
    assert fused.per_epoch.value / 8 == pytest.approx(0.274, abs=1e-3)
    assert fused.setup == 0.0 and fused.per_epoch.low <= fused.per_epoch.value <= fused.per_epoch.high


def test_a_positive_set_up_is_kept_and_the_fastest_runs_give_the_figure():
    # set-up 1 s, 0.5 s per epoch, plus noise that only ever adds time
    fit = fit_epochs([1.5, 2.4, 1.9], [2.5, 3.9, 2.9], epochs=2)
    assert fit.per_epoch.value == pytest.approx(0.5) and fit.setup == pytest.approx(1.0)
    assert (fit.per_epoch.low, fit.per_epoch.high) == pytest.approx((0.5, 0.75))


def test_an_epoch_that_is_not_positive_is_refused():
    # the loaded machine: the longer fit came out faster than the short one
    with pytest.raises(TimingNoiseError, match=r"fits of 1 epoch took 7.000-7.200 s .* not a positive figure"):
        fit_epochs([7.0, 7.1, 7.2], [6.8, 6.9, 7.0], epochs=2)
    with pytest.raises(TimingNoiseError, match="not a positive figure"):
        fit_epochs([1.0], [1.0], epochs=2)


def test_a_spread_as_large_as_the_figure_is_refused():
    # the fastest runs say 0.1 s per epoch, the repeats 0.1 and 0.35 s: a spread larger than the figure
    with pytest.raises(TimingNoiseError, match=r"0.100 s per epoch \(0.100-0.350\), a spread as large as the figure"):
        fit_epochs([1.0, 1.5], [1.2, 2.2], epochs=2)
    # the same spread around a larger figure is a figure
    assert fit_epochs([1.0, 1.5], [3.0, 4.0], epochs=2).per_epoch.words() == "1.000 (1.000-1.250)"


def test_timings_that_contradict_each_other_are_refused():
    run = fit_epochs  # 4 s per epoch from a 1-epoch fit of 1 s: a set-up of -3 s is impossible
    with pytest.raises(TimingNoiseError, match=r"timings contradict each other: .*-3.000 s of set-up"):
        run([1.0], [9.0], epochs=2)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="epochs=0"):
        fit_epochs([1.0], [2.0], epochs=0)
    with pytest.raises(ValueError, match="2 and 1 timings"):
        fit_epochs([1.0, 1.1], [2.0], epochs=1)


def test_spread_of_samples_rates_and_words():
    spread = Spread.of([2.0, 4.0, 3.0])
    assert (spread.value, spread.low, spread.high) == (2.0, 2.0, 4.0)
    rate = spread.inverse(3600)
    assert (rate.value, rate.low, rate.high) == pytest.approx((1800, 900, 1800))
    assert spread.scaled(0.5).words(".1f") == "1.0 (1.0-2.0)"
    assert Spread.of([1.0]).words() == "1.000"
    with pytest.raises(ValueError, match="no timings"):
        Spread.of([])
