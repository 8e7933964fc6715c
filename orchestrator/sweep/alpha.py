"""``roft alpha``: Optuna searches of interpolation coefficients over the Full-FT checkpoints in a store.

For every committed ``full-ft`` trial (a cell x seed) that kept its checkpoint and matches the
filters, one search trial per requested method point is planned: ``wise-ft`` (one global
alpha) and/or ``roft-mol`` (one alpha per group, for each requested group count), each with
``search: optuna``. They are ordinary dependant trials (:mod:`trainables.methods.dependencies`): their
key derives from the FT trial's spec, the store deduplicates them, and they run through the
same sweep path as ``roft sweep`` (Ray Tune, local or ``--address``). Raising ``n_trials``
makes new search trials that continue the same studies (see :mod:`trainables.methods.alpha_search`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import Any

from orchestrator.store.results import ResultStore
from orchestrator.sweep.plan import SweepPlan
from search_spaces.spec import Execution, Resources, SweepSpec
from trainables.core.config import TrialSpec
from trainables.methods import METHODS
from trainables.methods.dependencies import parent_spec

SEARCHABLE = ("wise-ft", "roft-mol")
FILTER_COLUMNS = ("backbone", "task", "split", "label_setting", "seed")


def search_points(methods: Iterable[str], groups: Iterable[int], n_trials: int, search_seed: int,
                  low: float = 0.0, high: float = 1.0) -> list[tuple[str, dict[str, Any]]]:
    """(method, validated params) of every requested search; errors name the value and what is accepted."""
    points = []
    for method in methods:
        if method not in SEARCHABLE:
            raise ValueError(f"--method {method!r} is not accepted; accepted: {', '.join(SEARCHABLE)}")
        common = {"search": "optuna", "n_trials": n_trials, "search_seed": search_seed, "alpha_low": low,
                  "alpha_high": high}
        for extra in ([{}] if method == "wise-ft" else [{"groups": g} for g in groups]):
            points.append((method, METHODS.get(method).validate_params({**common, **extra})))
    return points


def plan_alpha_searches(store: ResultStore, points: list[tuple[str, dict[str, Any]]],
                        filters: dict[str, set] | None = None, name: str = "alpha",
                        resources: Resources = Resources(), execution: Execution = Execution()) -> SweepPlan:
    """One search trial per (matching Full-FT trial with a kept checkpoint) x (method point)."""
    filters = {k: v for k, v in (filters or {}).items() if v}
    unknown = sorted(set(filters) - set(FILTER_COLUMNS))
    if unknown:
        raise ValueError(f"unknown filter(s) {unknown}; accepted: {', '.join(FILTER_COLUMNS)}")
    rows = store.read_trials(columns=["trial_key", "method", "trial_config", "artifact_sha256",
                                      *FILTER_COLUMNS]).to_pylist()
    trials: list[TrialSpec] = []
    for row in sorted(rows, key=lambda r: r["trial_key"]):
        if row["method"] != "full-ft" or not row["artifact_sha256"]:
            continue
        if any(row[column] not in values for column, values in filters.items()):
            continue
        parent = TrialSpec.from_dict(json.loads(row["trial_config"]))
        for method, params in points:
            trial = dataclasses.replace(parent, method=method, method_params=dict(params))
            if parent_spec(trial).key() != row["trial_key"]:
                raise RuntimeError(f"store row {row['trial_key']} does not match the key of its own trial_config")
            trials.append(trial)
    spec = SweepSpec(name=name, backbones=(), methods=tuple(points), tasks=(), splits=(), label_settings=(),
                     seeds=(), resources=resources, execution=execution, source="roft alpha")
    return SweepPlan(spec=spec, trials=trials, done=store.done_keys() & {t.key() for t in trials})
