"""The GPU-hour estimate: scaling from the measured H100 trial, fused vs unfused, per method."""

from __future__ import annotations

import pytest

from orchestrator.sweep.estimate import (
    FUSED_TRIALS_PER_GPU_HOUR,
    REFERENCE_EPOCHS,
    REFERENCE_MOLECULES,
    UNFUSED_TRIALS_PER_GPU_HOUR,
    GpuHours,
    TrialRates,
    estimate_gpu_hours,
    molecule_passes,
    pass_factors,
    reference_passes,
    split_sizes,
    task_molecules,
)
from orchestrator.sweep.rates import EngineRate, MethodRate, MethodRates
from tests.integration.sweeps import planned
from trainables.core.data_root import DataRoot


def test_split_sizes_apply_the_label_setting_to_the_training_part():
    assert split_sizes(1000, "full") == pytest.approx((800, 100, 100))
    assert split_sizes(1000, "fewshot:50") == pytest.approx((50, 100, 100))
    assert split_sizes(1000, "fewshot:5000") == pytest.approx((800, 100, 100))  # never more than the split has
    assert split_sizes(1000, "ratio:0.25") == pytest.approx((200, 100, 100))


def test_the_measured_trial_is_one_unit_and_work_scales_with_epochs_and_molecules():
    one = molecule_passes("full-ft", {}, REFERENCE_EPOCHS, REFERENCE_MOLECULES, "full")
    assert one == reference_passes()
    assert molecule_passes("full-ft", {}, 50, REFERENCE_MOLECULES, "full") == pytest.approx(one / 2)
    assert molecule_passes("full-ft", {}, 100, 2 * REFERENCE_MOLECULES, "full") == pytest.approx(2 * one)
    # Few-shot trains on 100 molecules but still scores validation and test every epoch.
    train, valid, test = split_sizes(REFERENCE_MOLECULES, "fewshot:100")
    assert molecule_passes("full-ft", {}, 100, REFERENCE_MOLECULES, "fewshot:100") == pytest.approx(
        100 * (100 + (valid + test) / 3))


def test_methods_are_costed_by_their_stages():
    full = molecule_passes("full-ft", {}, 100, 1000, "full")
    assert molecule_passes("lp-ft", {}, 100, 1000, "full") == pytest.approx(2 * full)  # LP then FT, recipe epochs each
    assert molecule_passes("wise-ft", {"alpha": 0.5}, 100, 1000, "full") == pytest.approx((100 + 100) / 3)  # one scoring
    # RoFt-Mol fits its alphas on validation for its own epochs.
    assert molecule_passes("roft-mol", {"epochs": 200}, 100, 1000, "full") == pytest.approx(200 * (100 + 200 / 3))
    # An Optuna alpha search scores validation once per point.
    assert molecule_passes("wise-ft", {"search": "optuna", "n_trials": 30}, 100, 1000, "full") == pytest.approx(
        30 * 100 / 3)


def test_throughput_must_be_positive():
    assert TrialRates() == TrialRates(FUSED_TRIALS_PER_GPU_HOUR, UNFUSED_TRIALS_PER_GPU_HOUR)
    with pytest.raises(ValueError, match="unfused trials per GPU-hour = 0"):
        TrialRates(unfused=0)


def engine(seconds: float, groups: tuple[int, ...] = ()) -> EngineRate:
    return EngineRate(seconds, seconds, seconds, 5, groups)


def synthetic_rates() -> MethodRates:
    """A 10-epoch bench on a 2,000-molecule task, 100 labels: Full FT 4 s alone and 1 s fused per trial,
    LP 3 s alone (does not fuse), WiSE-FT points 0.5 s, RoFt-Mol fits of 20 alpha epochs 6 s alone and 2 s fused."""
    return MethodRates("2026-01-01T00:00:00+00:00", "cpu (synthetic)", 10, "hu-gcn-supervised", "bbbp", "scaffold",
                       "fewshot:100", 5, 2000, {"train": 100, "valid": 200, "test": 200}, {
                           "full-ft": MethodRate("full-ft", "trial", ({},), 5, 10, engine(4.0), engine(1.0, (5,))),
                           "lp": MethodRate("lp", "trial", ({},), 5, 10, engine(3.0), None),
                           "wise-ft": MethodRate("wise-ft", "point", ({"alpha": 0.1}, {"alpha": 0.9}), 10, 0,
                                                 engine(0.5), None),
                           "roft-mol": MethodRate("roft-mol", "fit", ({"epochs": 20, "groups": 1},), 5, 20,
                                                  engine(6.0), engine(2.0, (5,)))})


def test_each_method_costs_its_measured_seconds_per_molecule_pass_relative_to_full_ft():
    factors = pass_factors(synthetic_rates())
    ft = molecule_passes("full-ft", {}, 10, 2000, "fewshot:100")  # 10 x (100 + 400/3)
    assert ft == pytest.approx(10 * (100 + 400 / 3))
    lp = molecule_passes("lp", {}, 10, 2000, "fewshot:100")
    wise = molecule_passes("wise-ft", {"alpha": 0.5}, 10, 2000, "fewshot:100")  # one scoring of valid + test
    roft = molecule_passes("roft-mol", {"epochs": 20}, 10, 2000, "fewshot:100")  # 20 epochs fitting validation
    assert wise == pytest.approx(400 / 3) and roft == pytest.approx(20 * (200 + 400 / 3))
    assert factors[("full-ft", "fused")] == factors[("full-ft", "unfused")] == pytest.approx(1.0)
    assert factors[("lp", "unfused")] == pytest.approx((3.0 / lp) / (4.0 / ft))
    assert factors[("wise-ft", "unfused")] == pytest.approx((0.5 / wise) / (4.0 / ft))
    assert factors[("roft-mol", "unfused")] == pytest.approx((6.0 / roft) / (4.0 / ft))
    assert factors[("roft-mol", "fused")] == pytest.approx((2.0 / roft) / (1.0 / ft))  # against Full FT fused
    assert ("lp", "fused") not in factors and ("wise-ft", "fused") not in factors  # did not fuse: no figure


def test_trials_are_priced_by_passes_factor_and_engine_rate_and_assumed_where_unmeasured():
    estimate = GpuHours(TrialRates(fused=1000, unfused=10), synthetic_rates())
    estimate.add("full-ft", "fused", 4, 0.5)
    estimate.add("roft-mol", "fused", 8, 0.25)
    estimate.add("lp", "unfused", 2, 0.5)
    estimate.add("lp", "fused", 3, 0.5)  # LP fuses now, but the rates file measured it alone: assumed
    estimate.add("bss", "unfused", 1, 1.0)  # not in the rates file: assumed
    factors = pass_factors(synthetic_rates())
    assert estimate.methods["full-ft"].hours["fused"] == pytest.approx(4 * 0.5 / 1000)
    assert estimate.methods["roft-mol"].hours["fused"] == pytest.approx(8 * 0.25 * factors[("roft-mol", "fused")] / 1000)
    assert estimate.methods["lp"].hours["unfused"] == pytest.approx(2 * 0.5 * factors[("lp", "unfused")] / 10)
    assert estimate.methods["lp"].hours["fused"] == pytest.approx(3 * 0.5 / 1000)
    assert estimate.methods["bss"].hours["unfused"] == pytest.approx(1 / 10)
    assert (estimate.fused_trials, estimate.unfused_trials) == (15, 3)
    assert estimate.hours == pytest.approx(sum(sum(row.hours.values()) for row in estimate.methods.values()))
    text = estimate.summary()
    assert "Full FT: 1,000 fused / 10 unfused 100-epoch BBBP-sized Full-FT trials per GPU-hour, as given" in text
    assert ("measured on cpu (synthetic) at 2026-01-01T00:00:00+00:00 (roft bench methods: hu-gcn-supervised, bbbp, "
            "scaffold, fewshot:100, 5 seeds, 10 epochs; given): fused: roft-mol; unfused: lp") in text
    assert "assumed equal to Full FT's (no measurement in the rates file): fused: lp; unfused: bss" in text
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line.startswith("    ")}
    assert rows["lp"][1:] == ["3", "0.0015", "1.00*", "2", f"{2 * 0.5 * factors[('lp', 'unfused')] / 10:.2g}",
                              f"{factors[('lp', 'unfused')]:.2f}"]
    assert rows["full-ft"][1:] == ["4", "0.002", "1.00", "0", "-"]


def test_without_rates_every_method_costs_what_full_ft_costs_per_pass():
    estimate = GpuHours(TrialRates(), None)
    estimate.add("roft-mol", "unfused", 10, 0.5)
    assert estimate.unfused_hours == pytest.approx(10 * 0.5 / UNFUSED_TRIALS_PER_GPU_HOUR)
    text = estimate.summary()
    assert "measured on one H100 (roft bench throughput)" in text
    assert "cost per pass assumed equal to Full FT's (--method-rates none)" in text


def test_estimate_of_a_plan_splits_fused_groups_from_trials_alone(real_env, tmp_path):
    """Full FT of two seeds fuses into one group; LP with fixed BatchNorm statistics trains alone."""
    raw = {"name": "e", "backbones": ["scratch-gin"], "methods": {"full-ft": {}, "lp": {"freeze_bn_stats": True}},
           "tasks": ["esol"],
           "splits": ["scaffold"], "label_settings": ["full"], "seeds": [0, 1], "training": {"epochs": 100},
           "resources": {"cpu": 1, "gpu": 0.5}}
    plan = planned(raw, real_env, tmp_path).plan
    molecules = task_molecules("esol", DataRoot(real_env))
    assert molecules == 1128
    share = molecule_passes("full-ft", {}, 100, molecules, "full") / reference_passes()
    lp_share = molecule_passes("lp", {"freeze_bn_stats": True}, 100, molecules, "full") / reference_passes()

    estimate = estimate_gpu_hours(plan, TrialRates(fused=1000, unfused=10), synthetic_rates())
    assert (estimate.fused_trials, estimate.unfused_trials) == (2, 2)
    assert estimate.fused_hours == pytest.approx(2 * share / 1000)
    assert estimate.unfused_hours == pytest.approx(2 * lp_share * pass_factors(synthetic_rates())[("lp", "unfused")] / 10)
    assert list(estimate.methods) == ["full-ft", "lp"]  # the spec's order
    text = estimate.summary(gpus_per_node=8)
    assert "1,000 fused / 10 unfused 100-epoch BBBP-sized Full-FT trials per GPU-hour, as given" in text
    assert "2 unfused trials" in text and "upper bound" not in text  # a rate given by hand is taken as it is
    # The measured unfused rate is one trial at a time per GPU: with half a GPU per trial, an upper bound.
    assert "upper bound, as resources.gpu=0.5 packs several" in estimate_gpu_hours(plan).summary()
    # Without per-method rates, LP costs what Full FT costs per pass.
    assert estimate_gpu_hours(plan, TrialRates(fused=1000, unfused=10)).unfused_hours == pytest.approx(
        2 * lp_share / 10)


def test_tasks_without_a_file_are_listed_not_counted(tmp_path, monkeypatch, real_env):
    raw = {"name": "e", "backbones": ["scratch-gin"], "methods": {"full-ft": {}}, "tasks": ["esol"],
           "splits": ["scaffold"], "label_settings": ["full"], "seeds": [0]}
    plan = planned(raw, real_env, tmp_path).plan
    monkeypatch.setattr("orchestrator.sweep.estimate.task_molecules", lambda task, root: None)
    estimate = estimate_gpu_hours(plan)
    assert estimate.hours == 0 and estimate.uncounted == {"esol": 1}
    assert "not counted (task file missing): esol=1" in estimate.summary()
