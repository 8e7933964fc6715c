"""Hand-made trial rows for store, table and report tests."""

from __future__ import annotations

from datetime import datetime, timezone

from orchestrator.store import TRIAL_SCHEMA


def make_row(key: str, **overrides) -> dict:
    row = {name: None for name in TRIAL_SCHEMA.names}
    row.update(trial_key=key, sweep="t", backbone="scratch-gin", method="full-ft", method_label="full-ft",
               task="esol", task_type="regression", metric="rmse", split="scaffold", label_setting="full",
               seed=0, test_metric=1.0, val_metric=1.0, finished_at=datetime.now(timezone.utc))
    row.update(overrides)
    return row
