"""orchestrator.bench.throughput: fits timed in repeats, and each engine's row with its spread."""

from __future__ import annotations

import itertools

import pytest

from orchestrator.bench.throughput import EpochTiming, TimingNoiseError, setup_and_epoch, timing_line
from orchestrator.bench.timing import Spread


def fits(timings: dict[int, list[float]]):
    """``run(n_epochs)`` returning the next of ``timings[n_epochs]`` (the warm-up takes the first 1-epoch value)."""
    streams = {n: itertools.cycle(values) for n, values in timings.items()}
    return lambda n_epochs: next(streams[n_epochs])


def test_one_warm_up_then_repeats_of_both_lengths():
    calls = []

    def run(n_epochs):
        calls.append(n_epochs)
        return {1: 1.5, 3: 2.5}[n_epochs]

    fit = setup_and_epoch(run, epochs=2, repeats=3)
    assert calls == [1, 1, 3, 1, 3, 1, 3]
    assert fit.per_epoch.value == pytest.approx(0.5) and fit.setup == pytest.approx(1.0)


def test_noise_larger_than_the_epochs_is_refused_not_printed_as_a_negative_rate():
    run = fits({1: [7.0, 7.0, 7.1, 7.2], 3: [6.8, 6.9, 7.0]})
    with pytest.raises(TimingNoiseError, match=r"timing noise exceeds the signal: fits of 1 epoch took 7.000-7.200 s"):
        setup_and_epoch(run, epochs=2)


def test_a_row_shows_the_epoch_spread_and_the_trials_per_hour_it_allows():
    fused = EpochTiming("fused K=8", 8, 2.0, 1600, setup_seconds=0.0, spread=Spread(2.0, 1.8, 2.5))
    unfused = EpochTiming("unfused", 1, 0.5, 1600, setup_seconds=0.0, spread=Spread(0.5, 0.5, 0.5))
    line = timing_line(fused, unfused)
    assert "2.000 s/epoch (1.800-2.500)" in line
    assert "144 (115-160) trials/h" in line  # 8 * 3600 / (100 * 2.0), at 2.5 and 1.8 s per epoch
    assert "x  2.00 vs unfused" in line
    reference = EpochTiming("reference", 1, 0.6, 1600)
    assert "0.600 s/epoch  set-up" in timing_line(reference, reference)
