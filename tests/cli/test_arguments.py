"""orchestrator/cli/arguments.py: the ranges of option values, durations and devices."""

from __future__ import annotations

import argparse

import pytest

from orchestrator.cli.arguments import age_seconds, device, integer, number


@pytest.mark.parametrize("text, seconds", [("30s", 30), ("90m", 5400), ("2h", 7200), ("1d", 86400), ("0", 0)])
def test_age_seconds(text, seconds):
    assert age_seconds(text) == seconds


@pytest.mark.parametrize("text", ["soon", "-1h", "h", "nan", "NANm", "inf", "-inf", "1e400"])
def test_bad_ages_are_refused(text):
    """NaN compared false with 0 and was accepted; an infinite age would never clean anything."""
    with pytest.raises(ValueError, match=f"^'{text}' is not accepted; accepted: a finite duration >= 0"):
        age_seconds(text)


def test_integers_and_numbers_have_both_ends():
    assert integer(1, 10)("10") == 10
    for text in ("0", "11", "1.5", "nan", str(2**1100)):
        with pytest.raises(argparse.ArgumentTypeError, match=f"^{text!r} is not accepted; accepted: an integer from 1 to 10$"):
            integer(1, 10)(text)
    assert number(0.0, 1.0)("0") == 0.0
    for text in ("nan", "inf", "-inf", "1.0001", "x"):
        with pytest.raises(argparse.ArgumentTypeError, match="accepted: a finite number from 0 to 1$"):
            number(0.0, 1.0)(text)
    with pytest.raises(argparse.ArgumentTypeError, match="accepted: a finite number above 0, up to 10$"):
        number(0.0, 10.0, above=True)("0")


@pytest.mark.parametrize("text", ["auto", "cpu", "cuda", "cuda:1"])
def test_devices(text):
    assert device(text) == text


@pytest.mark.parametrize("text", ["bogus", "CUDA", "cuda:", "cuda:x", "gpu"])
def test_unknown_devices_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match="accepted: auto, cpu, cuda or cuda:N$"):
        device(text)
