"""``roft store compact``: merge the store's per-trial files into one file per table.

A sweep writes one small Parquet file per trial and table (``trials/<key>.parquet``, ...);
100k trials are 300k files, slow to list and to open. Compaction reads every file of a table
(per-trial files and earlier compacted ``part-*.parquet`` files), keeps each trial's rows from
one source (its own file when there is one, as the newest, else the newest part), writes them
as one new ``part-<timestamp>.parquet`` (under a temporary name, then renamed), and only then
deletes the files it merged. The multiset of rows is unchanged; rows duplicated by a crash in
the middle of an earlier compaction are dropped. Readers see every row at every moment
(a trial may briefly be in two files; the readers keep one). It refuses to run while a sweep
holds the store's lock.
"""

from __future__ import annotations

import fcntl
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from orchestrator.store import LOCK_NAME, PART_PREFIX, SIDE_TABLES, TRIAL_SCHEMA, ResultStore, StoreError


@dataclass
class CompactionSummary:
    tables: dict[str, tuple[int, int]]  # table -> (files merged, rows kept)
    seconds: float

    def __str__(self) -> str:
        parts = ", ".join(f"{name}: {files} files -> 1 ({rows} rows)" for name, (files, rows) in self.tables.items())
        return f"compacted in {self.seconds:.1f} s: {parts or 'nothing to compact'}"


def _merge(directory: Path, schema: pa.Schema) -> tuple[pa.Table, list[Path]] | None:
    files = sorted(p for p in directory.glob("*.parquet"))
    if len(files) <= 1:
        return None
    # newest source last: parts in name (timestamp) order, then per-trial files
    files = sorted(files, key=lambda p: (not p.name.startswith(PART_PREFIX), p.name))
    tables = []
    for rank, path in enumerate(files):
        table = pq.read_table(path, schema=schema)
        tables.append(table.append_column("_rank", pa.array([rank] * table.num_rows, pa.int64())))
    merged = pa.concat_tables(tables)
    newest = merged.group_by("trial_key").aggregate([("_rank", "max")])
    source = dict(zip(newest.column("trial_key").to_pylist(), newest.column("_rank_max").to_pylist()))
    wanted = pa.array([source[key] for key in merged.column("trial_key").to_pylist()], pa.int64())
    keep = merged.filter(pc.equal(merged.column("_rank"), wanted)).drop_columns(["_rank"])
    return keep.select(schema.names).cast(schema), files


def compact(store: ResultStore) -> CompactionSummary:
    """Compact every table of ``store``; raises :class:`StoreError` while a sweep holds the lock."""
    started = time.perf_counter()
    store.root.mkdir(parents=True, exist_ok=True)
    with open(store.root / LOCK_NAME, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(f"a sweep is running on the store at {store.root} (it holds {LOCK_NAME}); compact "
                             "after it finishes") from None
        summary = {}
        for name, schema in {"trials": TRIAL_SCHEMA, **SIDE_TABLES}.items():
            result = _merge(store.root / name, schema)
            if result is None:
                continue
            table, files = result
            target = store.root / name / f"{PART_PREFIX}{time.time_ns()}.parquet"
            store.write_table(table, target)
            for path in files:
                if path != target:
                    path.unlink()
            summary[name] = (len(files), table.num_rows)
        return CompactionSummary(summary, time.perf_counter() - started)
