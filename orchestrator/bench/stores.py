"""Synthetic results stores for report tests and the report benchmark (no training).

Rows follow the store's schema and the benchmark's shape: backbones x methods (with grids)
x tasks x split x label settings x seeds, metrics drawn around a per-method effect, written
as one compacted part file (as ``roft store compact`` leaves a store), plus an alpha-search
table for one WiSE-FT study.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa

from orchestrator.store.results import ResultStore
from orchestrator.store.schema import ALPHA_SCHEMA, PART_PREFIX, TRIAL_SCHEMA

# method -> (mechanism, grid of labels and params, effect on the metric)
METHODS: dict[str, tuple[str, list[tuple[str, dict[str, Any]]], float]] = {
    "full-ft": ("baseline", [("full-ft", {})], 0.0),
    "lp": ("partial", [("lp", {})], -0.04),
    "l2-sp": ("weight", [(f"l2-sp[d={d}]", {"d": d}) for d in (0.1, 0.01, 0.001)], 0.01),
    "bss": ("representation", [(f"bss[d={d}]", {"d": d}) for d in (0.1, 0.01)], 0.005),
    "wise-ft": ("weight", [(f"wise-ft[alpha={a}]", {"alpha": a}) for a in (0.1, 0.5, 0.9)], 0.015),
}
BACKBONES = {"hu-gcn-contextpred": "self-supervised", "hu-gcn-supervised": "supervised", "scratch-gcn": "none"}
TASKS = {"bbbp": "roc_auc", "tox21": "roc_auc", "bace": "roc_auc", "esol": "rmse", "lipophilicity": "rmse"}
LABEL_SETTINGS = ["fewshot:50", "fewshot:100", "full"]


def synthetic_rows(target_rows: int, seeds: int = 5, rng_seed: int = 0) -> list[dict]:
    """About ``target_rows`` trial rows (the grid is repeated over splits named split0, split1, ...)."""
    rng = np.random.default_rng(rng_seed)
    per_split = sum(len(g) for _, g, _ in METHODS.values()) * len(BACKBONES) * len(TASKS) * len(LABEL_SETTINGS) * seeds
    splits = [f"split{i}" for i in range(max(1, round(target_rows / per_split)))]
    now = datetime.now(timezone.utc)
    rows: list[dict[str, Any]] = []
    for split in splits:
        for backbone, pretraining in BACKBONES.items():
            for task, metric in TASKS.items():
                base = 0.75 if metric == "roc_auc" else 1.2
                for label_setting in LABEL_SETTINGS:
                    for method, (mechanism, grid, effect) in METHODS.items():
                        for label, params in grid:
                            for seed in range(seeds):
                                sign = 1.0 if metric == "roc_auc" else -1.0
                                test = base + sign * effect + rng.normal(0, 0.02)
                                row: dict[str, Any] = {name: None for name in TRIAL_SCHEMA.names}
                                row.update(
                                    trial_key=f"{len(rows):024x}",
                                    sweep="synthetic",
                                    backbone=backbone,
                                    pretraining=pretraining,
                                    architecture="gcn",
                                    method=method,
                                    method_label=label,
                                    mechanism=mechanism,
                                    method_params=json.dumps(params, sort_keys=True),
                                    task=task,
                                    task_type="classification" if metric == "roc_auc" else "regression",
                                    metric=metric,
                                    split=split,
                                    label_setting=label_setting,
                                    seed=seed,
                                    subset_seed=42,
                                    val_metric=test + rng.normal(0, 0.01),
                                    test_metric=test,
                                    code_version="synthetic",
                                    protocol_version="roft-protocol-1",
                                    engine="unfused",
                                    finished_at=now,
                                    data_sha256="",
                                    backbone_sha256="",
                                )
                                rows.append(row)
    return rows


def write_synthetic_store(store: ResultStore, target_rows: int, seeds: int = 5) -> int:
    """Write the rows as one compacted part file (and a WiSE-FT alpha study); returns the row count."""
    rows = synthetic_rows(target_rows, seeds)
    store.write_table(pa.Table.from_pylist(rows, schema=TRIAL_SCHEMA), store.trials_dir / f"{PART_PREFIX}0.parquet")
    wise = next(r for r in rows if r["method"] == "wise-ft")
    rng = np.random.default_rng(1)
    points = [
        {
            "trial_key": wise["trial_key"],
            "study": "synthetic",
            "number": i,
            "alphas": [float(a)],
            "val_metric": float(0.8 - (a - 0.6) ** 2),
            "test_metric": float(0.78 - (a - 0.5) ** 2),
        }
        for i, a in enumerate(rng.random(40))
    ]
    store.write_table(
        pa.Table.from_pylist(points, schema=ALPHA_SCHEMA), store.root / "alpha_trials" / f"{PART_PREFIX}0.parquet"
    )
    return len(rows)
