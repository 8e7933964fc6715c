"""Stale rows: trials whose stored key is not the key this roft gives their configuration.

A row is stale when the code that wrote it computed its method or its molecules differently from
this code (a method's ``revision`` or the split's ``subset_revision`` was raised since, or the
method gained a hyper-parameter): the trial this code would run for that configuration has another
key, so the sweep runs it anew and the old row is never pooled with new ones. ``roft store list
--stale`` lists them; ``roft store forget`` removes them.
"""

from __future__ import annotations

import json

import pandas as pd

from trainables.methods.revisions import current_key


def stale_mask(trials: pd.DataFrame) -> pd.Series:
    """``True`` for each row (with ``trial_key`` and ``trial_config``) whose key this code would not give it
    (a row without a stored configuration cannot be judged and counts as current)."""
    if trials.empty:
        return pd.Series([], dtype=bool, index=trials.index)
    configs = trials["trial_config"]
    current = configs.map(
        lambda config: current_key(json.loads(config)) if isinstance(config, str) and config else None
    )
    judged = configs.map(lambda config: isinstance(config, str) and bool(config))
    return judged & (current != trials["trial_key"])
