"""The GPU-hour estimate: scaling from the measured H100 trial, fused vs unfused, per method."""

from __future__ import annotations

import pytest

from orchestrator.sweep.estimate import (
    FUSED_TRIALS_PER_GPU_HOUR,
    REFERENCE_EPOCHS,
    REFERENCE_MOLECULES,
    UNFUSED_TRIALS_PER_GPU_HOUR,
    TrialRates,
    estimate_gpu_hours,
    molecule_passes,
    reference_passes,
    split_sizes,
    task_molecules,
)
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


def test_estimate_of_a_plan_splits_fused_groups_from_trials_alone(real_env, tmp_path):
    """Full FT of two seeds fuses into one group; LP trains alone."""
    raw = {"name": "e", "backbones": ["scratch-gin"], "methods": {"full-ft": {}, "lp": {}}, "tasks": ["esol"],
           "splits": ["scaffold"], "label_settings": ["full"], "seeds": [0, 1], "training": {"epochs": 100},
           "resources": {"cpu": 1, "gpu": 0.5}}
    plan = planned(raw, real_env, tmp_path).plan
    molecules = task_molecules("esol", DataRoot(real_env))
    assert molecules == 1128
    share = molecule_passes("full-ft", {}, 100, molecules, "full") / reference_passes()
    lp_share = molecule_passes("lp", {}, 100, molecules, "full") / reference_passes()

    estimate = estimate_gpu_hours(plan, TrialRates(fused=1000, unfused=10))
    assert (estimate.fused_trials, estimate.unfused_trials) == (2, 2)
    assert estimate.fused_hours == pytest.approx(2 * share / 1000)
    assert estimate.unfused_hours == pytest.approx(2 * lp_share / 10)
    text = estimate.summary(gpus_per_node=8)
    assert "estimate from throughput measured on one H100 (1,000 fused / 10 unfused" in text
    assert "2 unfused trials" in text and "upper bound" not in text  # a rate given by hand is taken as it is
    # The measured unfused rate is one trial at a time per GPU: with half a GPU per trial, an upper bound.
    assert "upper bound, as resources.gpu=0.5 packs several" in estimate_gpu_hours(plan).summary()


def test_tasks_without_a_file_are_listed_not_counted(tmp_path, monkeypatch, real_env):
    raw = {"name": "e", "backbones": ["scratch-gin"], "methods": {"full-ft": {}}, "tasks": ["esol"],
           "splits": ["scaffold"], "label_settings": ["full"], "seeds": [0]}
    plan = planned(raw, real_env, tmp_path).plan
    monkeypatch.setattr("orchestrator.sweep.estimate.task_molecules", lambda task, root: None)
    estimate = estimate_gpu_hours(plan)
    assert estimate.hours == 0 and estimate.uncounted == {"esol": 1}
    assert "not counted (task file missing): esol=1" in estimate.summary()
