"""Ray Tune trainable of a hyper-parameter search: one sampled point, every seed of its cell.

The search driver (:mod:`orchestrator.sweep.searches`) passes the cell's trials with the method's
fixed hyper-parameters (one per seed) and Tune's sampled values in ``config["point"]``. Each
seed's trial is an ordinary trial with an ordinary key: found in the store it is reused (no
training), else it is trained and committed. The point's objective is the seed-mean validation
metric, the selection rule of the benchmark.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trainables.core.config import Runtime, TrialSpec
from trainables.methods import METHODS
from trainables.worker.placement import Placement
from trainables.worker.store import StoreOpener
from trainables.worker.trial import execute_trial


def point_trials(base: list[dict[str, Any]], point: dict[str, Any]) -> list[TrialSpec]:
    """The cell's trials with ``point`` merged into their hyper-parameters (validated, typed)."""
    trials = []
    for data in base:
        spec = TrialSpec.from_dict(data)
        params = METHODS.get(spec.method).validate_params({**spec.method_params, **point})
        trials.append(TrialSpec.from_dict({**data, "method_params": params}))
    return trials


def evaluate_point(config: dict[str, Any], open_store: StoreOpener) -> dict[str, Any]:
    """Train (or reuse) every seed's trial of one point; returns what the trainable reports."""
    runtime = Runtime(**config["runtime"])
    store = open_store(runtime.store)
    placement = Placement.of_ray_worker()
    values, keys, reused = [], [], 0
    for trial in point_trials(config["base"], config["point"]):
        row = store.read_trial(trial.key())
        if row is None:
            row = execute_trial(trial, runtime, store, placement=placement)
        else:
            reused += 1
        values.append(row["val_metric"])
        keys.append(trial.key())
    return {"objective": float(np.mean(values)), "trial_keys": keys, "reused": reused, "done": True}


def tune_point_trainable(config: dict[str, Any], open_store: StoreOpener) -> None:
    from ray import tune

    tune.report(evaluate_point(config, open_store))
