"""orchestrator.bench.throughput: robust timing, and no impossible figure."""

from __future__ import annotations

import itertools

import pytest

from orchestrator.bench.throughput import TimingNoiseError, setup_and_epoch


def fits(timings: dict[int, list[float]]):
    """``run(n_epochs)`` returning the next of ``timings[n_epochs]`` (the warm-up takes the first 1-epoch value)."""
    streams = {n: itertools.cycle(values) for n, values in timings.items()}
    return lambda n_epochs: next(streams[n_epochs])


def test_the_fastest_fit_of_each_length_gives_epoch_and_set_up():
    # set-up 1 s, 0.5 s per epoch, plus noise that only ever adds time
    run = fits({1: [1.5, 1.5, 2.4, 1.9], 3: [2.5, 3.9, 2.9]})
    setup, per_epoch = setup_and_epoch(run, epochs=2)
    assert per_epoch == pytest.approx(0.5) and setup == pytest.approx(1.0)


def test_noise_larger_than_the_epochs_is_refused_not_printed_as_a_negative_rate():
    # the loaded machine of the report: the longer fit came out faster than the short one
    run = fits({1: [7.0, 7.0, 7.1, 7.2], 3: [6.8, 6.9, 7.0]})
    with pytest.raises(TimingNoiseError, match=r"timing noise exceeds the signal: fits of 1 epoch took 7.000-7.200 s"):
        setup_and_epoch(run, epochs=2)


def test_a_per_epoch_cost_above_a_whole_fit_is_refused():
    run = fits({1: [1.0], 3: [9.0]})  # 4 s per epoch from a 1-epoch fit of 1 s: a negative set-up
    with pytest.raises(TimingNoiseError, match="-3.000 s of set-up"):
        setup_and_epoch(run, epochs=2)
