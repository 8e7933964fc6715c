"""The scheduler that hands a freed actor to the newest pending trial."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

pytest.importorskip("ray.tune")
from ray.tune.experiment import Trial  # noqa: E402

from orchestrator.sweep.scheduling import NewestPendingFirst  # noqa: E402


def controller(*statuses: str) -> SimpleNamespace:
    trials = [SimpleNamespace(name=f"t{i}", status=status) for i, status in enumerate(statuses)]
    return SimpleNamespace(get_trials=lambda: trials)


def chosen(*statuses: str) -> str | None:
    trial = NewestPendingFirst().choose_trial_to_run(controller(*statuses))
    return None if trial is None else trial.name


def test_the_newest_pending_trial_is_chosen_not_the_oldest_whose_actor_may_be_starting():
    assert chosen(Trial.TERMINATED, Trial.PENDING, Trial.RUNNING, Trial.PENDING, Trial.TERMINATED) == "t3"


def test_paused_trials_come_after_pending_ones_newest_first():
    assert chosen(Trial.PAUSED, Trial.PENDING, Trial.PAUSED) == "t1"
    assert chosen(Trial.PAUSED, Trial.RUNNING, Trial.PAUSED, Trial.TERMINATED) == "t2"


def test_nothing_to_run_is_none():
    assert chosen(Trial.RUNNING, Trial.TERMINATED, Trial.ERROR) is None
    assert chosen() is None
