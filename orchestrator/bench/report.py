"""``roft bench report``: time tables and the HTML report on a large synthetic store.

Writes a synthetic store of about ``rows`` trials (:mod:`orchestrator.bench.stores`, one
compacted file), then times, each in this process: reading the rows (pyarrow dataset), hyper-
parameter selection over every cell, one rendered table, and the whole ``roft report``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from orchestrator.analysis.report import build_report
from orchestrator.analysis.tables import Selected, load_trials, render, select
from orchestrator.bench.stores import write_synthetic_store
from orchestrator.store.results import ResultStore


def bench_report(rows: int = 100_000) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="roft-report-bench-") as tmp:
        store = ResultStore(Path(tmp) / "store")
        started = time.perf_counter()
        written = write_synthetic_store(store, rows)
        figures = {"write synthetic store": time.perf_counter() - started}
        started = time.perf_counter()
        trials = load_trials(store)
        figures["read rows"] = time.perf_counter() - started
        started = time.perf_counter()
        selected = select(trials)
        figures["select per cell"] = time.perf_counter() - started
        started = time.perf_counter()
        block = selected.frame[
            (selected.frame.backbone == selected.frame.backbone.iloc[0])
            & (selected.frame.split == selected.frame.split.iloc[0])
            & (selected.frame.label_setting == selected.frame.label_setting.iloc[0])
        ]
        render(Selected(block, "val", 0))
        figures["render one table"] = time.perf_counter() - started
        started = time.perf_counter()
        build_report(store, Path(tmp) / "report")
        figures["whole report"] = time.perf_counter() - started
    print(f"synthetic store: {written:,} trial rows, {len(selected.frame):,} selected cells")
    for name, seconds in figures.items():
        print(f"  {name:<22} {seconds:7.2f} s")
    return figures
