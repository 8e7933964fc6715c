"""``roft store forget KEY ...``: take trials out of a store, so that the next sweep runs them again.

A forgotten trial loses everything the store holds of it: its row, its epoch and alpha-search
rows, its checkpoint and its failure record. Where a row sits in a compacted ``part-*.parquet``
file, that file is rewritten without it under the same name (atomically, as every store
file), so the other trials' rows never disappear, not even for a moment. The trial's row goes
last: until it is gone the trial still counts as done, so a forget stopped half-way (kill it,
lose the connection) leaves no half-kept trial for a sweep to run beside stale rows; forgetting
it again finishes the job. Other trials are untouched, including those that started from a
forgotten trial's checkpoint (their rows record that checkpoint's sha256).

Like compaction it needs the store to itself: it refuses while a sweep holds a folder store's
lock (on object storage, the leases of :mod:`orchestrator.store.leases`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from orchestrator.store.results import ResultStore
from orchestrator.store.schema import PART_PREFIX, SIDE_TABLES, TRIAL_SCHEMA, StoreError
from orchestrator.wording import plural

TRIAL_KEY = re.compile(r"[0-9a-f]{24}")  # TrialSpec.key(): 24 hex digits


@dataclass
class ForgetSummary:
    keys: list[str]
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows removed
    artifacts: int = 0
    failures: int = 0

    def __str__(self) -> str:
        rows = ", ".join(f"{plural(n, name + ' row')}" for name, n in self.rows.items() if n)
        return (
            f"forgot {plural(len(self.keys), 'trial')}: {rows or 'no rows'}, "
            f"{plural(self.artifacts, 'checkpoint')}, "
            f"{plural(self.failures, 'failure record')}; the next sweep that plans them runs them again"
        )


def forget(store: ResultStore, keys: list[str], unlocked: bool = False) -> ForgetSummary:
    """Remove the trials ``keys`` from ``store``; :class:`StoreError` for a malformed or unknown key
    (nothing is removed then) or while a sweep holds the store."""
    keys = sorted(dict.fromkeys(keys))
    if not keys:
        raise StoreError("no trial key given; accepted: one or more trial keys (24 hex digits, the trial_key column)")
    malformed = [k for k in keys if not TRIAL_KEY.fullmatch(k)]
    if malformed:
        raise StoreError(
            f"malformed trial key(s) {', '.join(map(repr, malformed))}; accepted: 24 hex digits "
            "(the trial_key column of the store's rows)"
        )
    with store.compaction_lock(unlocked, action="forget trials"):
        known = store.done_keys() | store.failed_keys()
        unknown = [k for k in keys if k not in known]
        if unknown:
            raise StoreError(
                f"trial key(s) {', '.join(unknown)} have neither a row nor a failure record in the store "
                f"at {store.location}; nothing was removed"
            )
        summary = ForgetSummary(keys)
        for name, schema in SIDE_TABLES.items():
            summary.rows[name] = _remove_rows(store, name, schema, keys)
        for key in keys:
            summary.artifacts += _remove_artifact(store, key)
            failure = store.path("failures", f"{key}.parquet")
            if store.has_file(failure):
                store.delete(failure)
                summary.failures += 1
        summary.rows = {"trials": _remove_rows(store, "trials", TRIAL_SCHEMA, keys), **summary.rows}
        return summary


def _remove_rows(store: ResultStore, name: str, schema: pa.Schema, keys: list[str]) -> int:
    """Delete the trials' own files of table ``name`` and rewrite the part files holding their rows."""
    removed, wanted = 0, set(keys)
    value_set = pa.array(keys, pa.string())
    for path in store.list_files(name):
        base = path.rpartition("/")[2]
        if not base.startswith(PART_PREFIX):
            if base.removesuffix(".parquet") in wanted:
                table = store.read_table_file(path, schema)  # None: unreadable, and quarantined
                if table is not None:
                    removed += table.num_rows
                    store.delete(path)
            continue
        table = store.read_table_file(path, schema)
        if table is None:
            continue
        drop = pc.is_in(table.column("trial_key"), value_set=value_set)
        dropped = pc.sum(drop).as_py() or 0
        if not dropped:
            continue
        kept = table.filter(pc.invert(drop))
        if kept.num_rows:
            store.write_table(kept, path)  # the same name, replaced whole
        else:
            store.delete(path)
        removed += dropped
    return removed


def _remove_artifact(store: ResultStore, key: str) -> int:
    path = store.path("artifacts", key, "best.pt")
    if not store.has_file(path):
        return 0
    store.delete(path)
    if not store.remote:
        try:
            Path(path).parent.rmdir()
        except OSError:  # not empty (a file that is not ours): leave the folder
            pass
    return 1
