"""orchestrator.sweep.rates: the rates file of `roft bench methods`, written and read back, and refused when broken."""

from __future__ import annotations

import json

import pytest

from orchestrator.sweep.rates import BUNDLED_RATES, EngineRate, MethodRate, MethodRates, RatesError
from trainables.methods import METHODS


def rates(**methods: MethodRate) -> MethodRates:
    return MethodRates("2026-01-01T00:00:00+00:00", "cpu (test)", 10, "hu-gcn-supervised", "bbbp", "scaffold",
                       "fewshot:100", 5, 2039, {"train": 100, "valid": 204, "test": 204}, dict(methods))


def test_a_rates_file_round_trips(tmp_path):
    full = MethodRate("full-ft", "trial", ({},), 5, 10.0, EngineRate(4.0, 4.0, 5.0, 5), EngineRate(1.0, 1.0, 1.2, 5, (5,)))
    wise = MethodRate("wise-ft", "point", ({"alpha": 0.5},), 5, 0.0, EngineRate(0.5, 0.5, 0.5, 5), None)
    path = rates(**{"full-ft": full, "wise-ft": wise}).write(tmp_path / "rates.json")
    raw = json.loads(path.read_text())
    assert raw["methods"]["full-ft"]["fused"]["seconds_per_trial_epoch"] == pytest.approx(0.1)
    assert raw["methods"]["full-ft"]["fused_over_unfused"] == pytest.approx(4.0)
    assert raw["methods"]["wise-ft"]["fused"] is None and raw["methods"]["wise-ft"]["unfused"]["per_hour"] == 7200
    back = MethodRates.load(path)
    assert back == rates(**{"full-ft": full, "wise-ft": wise}) and back.source == str(path)
    assert back.methods["wise-ft"].seconds_per_trial_epoch("unfused") is None  # a point has no epochs


def test_broken_rates_files_are_named_in_one_line(tmp_path):
    with pytest.raises(RatesError, match=r"'.*nowhere.json' not found; accepted: a JSON file written by"):
        MethodRates.load(tmp_path / "nowhere.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(RatesError, match="is not a rates file"):
        MethodRates.load(bad)
    bad.write_text(json.dumps({"format": 1, "measured_at": "x"}))
    with pytest.raises(RatesError, match="missing field 'cell'"):
        MethodRates.load(bad)
    bad.write_text(json.dumps({"format": 7}))
    with pytest.raises(RatesError, match="format 7; accepted: 1"):
        MethodRates.load(bad)


def test_an_impossible_rate_is_refused():
    with pytest.raises(ValueError, match="seconds per trial -1.0"):
        EngineRate(-1.0, -1.0, 1.0, 5)
    with pytest.raises(ValueError, match="within its range"):
        EngineRate(2.0, 1.0, 1.5, 5)


def test_the_bundled_rates_were_measured_for_every_method():
    bundled = MethodRates.load()
    assert bundled.source == str(BUNDLED_RATES)
    assert set(bundled.methods) == set(METHODS.names())
    assert all(rate.unfused is not None for rate in bundled.methods.values())
    assert bundled.methods["full-ft"].fused is not None  # the reference every fused factor is relative to
    assert bundled.device.startswith(("cpu", "cuda")) and bundled.measured_at[:4].isdigit()
