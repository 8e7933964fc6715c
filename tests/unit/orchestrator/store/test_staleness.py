"""Stale rows: stored keys this roft would no longer give their configurations."""

from __future__ import annotations

import pandas as pd

from orchestrator.store.staleness import stale_mask
from trainables.core.config import TrialSpec
from trainables.methods import METHODS
from trainables.methods.revisions import with_revisions


def spec(method: str, params: dict, label_setting: str = "full", **revisions) -> TrialSpec:
    return TrialSpec(backbone="scratch-gin", method=method, task="bbbp", split="scaffold", label_setting=label_setting,
                     seed=0, subset_seed=42, method_params=params, **revisions)


def rows(*specs: TrialSpec) -> pd.DataFrame:
    return pd.DataFrame({"trial_key": [s.key() for s in specs], "trial_config": [s.canonical_json() for s in specs]})


def test_rows_of_an_unchanged_computation_are_not_stale():
    full_ft = spec("full-ft", {})
    current = with_revisions(spec("feature-map", METHODS.get("feature-map").validate_params({"d": 0.1}),
                                  "fewshot:100"))
    assert with_revisions(full_ft) is full_ft  # Full FT on the full-label scaffold split keeps its key
    assert stale_mask(rows(full_ft, current)).tolist() == [False, False]


def test_rows_of_an_older_computation_are_stale():
    old_feature_map = spec("feature-map", {"d": 0.1, "d_head": None})  # before features / grad_clip existed
    old_subset = spec("full-ft", {}, "fewshot:100")  # a few-shot subset of subset revision 1
    old_surgical = spec("surgical-ft", METHODS.get("surgical-ft").validate_params({"layer": 2}))  # revision 1
    assert stale_mask(rows(old_feature_map, old_subset, old_surgical)).tolist() == [True, True, True]


def test_a_configuration_this_roft_cannot_run_is_stale():
    frame = rows(spec("full-ft", {}))
    unknown = spec("full-ft", {}).to_dict() | {"method": "no-such-method"}
    frame.loc[1] = ["0" * 24, TrialSpec.from_dict(unknown).canonical_json()]
    assert stale_mask(frame).tolist() == [False, True]
    assert stale_mask(frame.iloc[:0]).tolist() == []
