"""``roft bench plan``: planning a large grid and diffing it against a store that holds it.

Times, in this process: planning the spec against an empty store (expanding the grid, adding
parents, computing every trial key, the fusion summary), writing a store that holds one row per
planned trial (one compacted file, or with ``per_trial_files`` one file per trial as sweeps
write them; only ``trial_key`` is filled), and planning the spec again against that store
(learning every done key and diffing). Prints seconds and the process's peak resident memory
after each step (peak RSS only grows, so the last figure covers all three). ``store`` puts the
full store at a given location (an ``s3://`` prefix measures planning against object storage).
"""

from __future__ import annotations

import dataclasses
import resource
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa

from orchestrator.store.results import ResultStore
from orchestrator.store.schema import PART_PREFIX, TRIAL_SCHEMA
from orchestrator.sweep.plan import plan_sweep
from search_spaces import load_spec
from trainables.core.data_root import DataRoot


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_plan(spec_name: str = "paper.yaml", data_root: DataRoot = DataRoot(), seeds: int | None = None,
               store: str | None = None, per_trial_files: bool = False, writers: int = 16) -> dict[str, float]:
    """``seeds``: replace the spec's seeds by ``0 .. seeds-1`` (to plan a grid of another size)."""
    spec = load_spec(spec_name)
    if seeds is not None:
        spec = dataclasses.replace(spec, seeds=tuple(range(seeds)))
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="roft-plan-bench-") as tmp:
        store = ResultStore(store if store is not None else Path(tmp) / "store")
        if store.exists() and store.list_files("trials"):
            raise ValueError(f"--store {store.location} already holds trials; accepted: an empty folder or prefix")
        started = time.perf_counter()
        plan = plan_sweep(spec, store, data_root)
        summary = plan.summary()
        figures["plan against an empty store"] = time.perf_counter() - started
        print(f"{spec.name}: {len(plan.trials):,} trials planned in {figures['plan against an empty store']:.1f} s, "
              f"peak RSS {_peak_mib():,.0f} MiB")
        started = time.perf_counter()
        keys = pa.array([t.key() for t in plan.trials], pa.string())
        columns = [keys if field.name == "trial_key" else pa.nulls(len(keys), field.type) for field in TRIAL_SCHEMA]
        table = pa.Table.from_arrays(columns, schema=TRIAL_SCHEMA)
        if per_trial_files:
            with ThreadPoolExecutor(max_workers=max(1, writers)) as pool:
                list(pool.map(lambda i: store.write_table(table.slice(i, 1), store.path("trials", f"{keys[i]}.parquet")),
                              range(len(keys))))
        else:
            store.write_table(table, store.path("trials", f"{PART_PREFIX}0.parquet"))
        figures["write a store of every planned row"] = time.perf_counter() - started
        layout = "one file per trial" if per_trial_files else "one compacted file"
        print(f"store of {len(keys):,} rows ({layout}, {store.location}) written in "
              f"{figures['write a store of every planned row']:.1f} s")
        started = time.perf_counter()
        again = plan_sweep(spec, store, data_root)
        figures["plan against the full store"] = time.perf_counter() - started
        if again.pending:
            raise RuntimeError(f"{len(again.pending)} trials still pending against a store holding every planned row")
        print(f"planned again against the {len(keys):,}-row store in {figures['plan against the full store']:.1f} s "
              f"(0 pending), peak RSS {_peak_mib():,.0f} MiB")
        print(summary.splitlines()[0] if summary else "")
    figures["peak_rss_mib"] = _peak_mib()
    return figures
