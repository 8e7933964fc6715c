"""``roft store compact``: merge the store's per-trial files into one file per table.

A sweep writes one small Parquet file per trial and table (``trials/<key>.parquet``, ...);
100k trials are 300k files, slow to list and to open. Compaction reads every file of a table
(per-trial files and earlier compacted ``part-*.parquet`` files), keeps each trial's rows from
one source (its own file when there is one, as the newest, else the newest part), writes them
as one new ``part-<timestamp>.parquet`` (atomically, as every store file), and only then
deletes the files it merged. A file it cannot read as the table's Parquet is quarantined (see
:meth:`ResultStore.check_tables`), not merged. The multiset of readable rows is unchanged; rows
duplicated by a crash in the middle of an earlier compaction are dropped. Readers see every row at every moment
(a trial may briefly be in two files; the readers keep one). It refuses to run while a sweep
holds the store's lock: ``flock`` in a folder, a live sweep lease on object storage
(:mod:`orchestrator.store.leases`), where ``--unlocked`` skips the check.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from orchestrator.store.results import ResultStore
from orchestrator.store.schema import PART_PREFIX, SIDE_TABLES, TRIAL_SCHEMA


@dataclass
class CompactionSummary:
    tables: dict[str, tuple[int, int]]  # table -> (files merged, rows kept)
    seconds: float

    def __str__(self) -> str:
        parts = ", ".join(f"{name}: {files} files -> 1 ({rows} rows)" for name, (files, rows) in self.tables.items())
        return f"compacted in {self.seconds:.1f} s: {parts or 'nothing to compact'}"


def _merge(store: ResultStore, name: str, schema: pa.Schema) -> tuple[pa.Table, list[str]] | None:
    files = store.list_files(name)
    if len(files) <= 1:
        return None
    # newest source last: parts in name (timestamp) order, then per-trial files
    files = sorted(files, key=lambda p: (not _base(p).startswith(PART_PREFIX), _base(p)))
    tables, merged_files = [], []
    for rank, path in enumerate(files):
        table = store.read_table_file(path, schema)  # None: vanished, or unreadable and quarantined
        if table is None:
            continue
        merged_files.append(path)
        tables.append(table.append_column("_rank", pa.array([rank] * table.num_rows, pa.int64())))
    if len(tables) <= 1:
        return None
    files = merged_files
    merged = pa.concat_tables(tables)
    newest = merged.group_by("trial_key").aggregate([("_rank", "max")])
    source = dict(zip(newest.column("trial_key").to_pylist(), newest.column("_rank_max").to_pylist()))
    wanted = pa.array([source[key] for key in merged.column("trial_key").to_pylist()], pa.int64())
    keep = merged.filter(pc.equal(merged.column("_rank"), wanted)).drop_columns(["_rank"])
    return keep.select(schema.names).cast(schema), files


def _base(path: str) -> str:
    return path.rpartition("/")[2]


def compact(store: ResultStore, unlocked: bool = False) -> CompactionSummary:
    """Compact every table of ``store``; raises :class:`StoreError` while a sweep holds the lock.

    On object storage there is no lock (see :meth:`ResultStore.compaction_lock`): it raises
    unless ``unlocked``, the caller's word that no sweep writes to the store meanwhile.
    """
    started = time.perf_counter()
    with store.compaction_lock(unlocked):
        store.check_tables(contents=False)  # no-table files; the merge itself quarantines unreadable ones
        summary = {}
        for name, schema in {"trials": TRIAL_SCHEMA, **SIDE_TABLES}.items():
            result = _merge(store, name, schema)
            if result is None:
                continue
            table, files = result
            target = store.path(name, f"{PART_PREFIX}{time.time_ns()}.parquet")
            store.write_table(table, target)
            for path in files:
                if path != target:
                    store.delete(path)
            summary[name] = (len(files), table.num_rows)
        return CompactionSummary(summary, time.perf_counter() - started)
