"""How optimistic choosing hyper-parameters by test is: the gap between the two selections, per cell.

The honest table chooses each cell's grid point by seed-mean validation metric; the reference
code's notebooks choose it by seed-mean test metric (:mod:`orchestrator.analysis.tables`). Per cell
(backbone, method, task, split, label setting) with test-selected mean ``m_test`` and
validation-selected mean ``m_val`` (both the seed-mean test metric of the chosen point):

    gap = s * (m_test - m_val),   s = +1 where higher is better (ROC-AUC), -1 where lower is (RMSE)

so ``gap >= 0`` always: the test-selected point has the cell's best seed-mean test metric, and a
positive gap is how much better the optimistic table makes the cell look, in the metric's unit
(ROC-AUC points in the printed table, RMSE as is). The gap is 0 where both choose the same point,
and always 0 for a cell of one grid point.

    roft table --store STORE --rows backbone,method --cols task --select gap
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from orchestrator.analysis import tables

GAP = "gap"  # the selection name of this table (``roft table --select gap``)
GAP_COLUMNS = [
    *tables.CELL,
    "metric",
    "val_point",
    "test_point",
    "val_selected_mean",
    "test_selected_mean",
    "val_selected_seeds",
    "test_selected_seeds",
    "points",
    "gap",
]


def selection_gap(trials: pd.DataFrame, ddof: int = 0) -> pd.DataFrame:
    """One row per cell of ``trials`` (rows as :func:`orchestrator.analysis.tables.load_trials` returns):
    :data:`GAP_COLUMNS`, the two selections' points, seed-mean test metrics and seed counts, and ``gap``
    (module docstring; the metric's own unit: ROC-AUC as a fraction)."""
    by_val = tables.select(trials, "val", ddof).frame
    by_test = tables.select(trials, "test", ddof).frame
    if by_val.empty:
        return pd.DataFrame(columns=GAP_COLUMNS)
    keep = ["method_label", "mean", "seeds"]
    merged = by_val[[*tables.CELL, "metric", *keep, "points"]].merge(
        by_test[[*tables.CELL, *keep]], on=list(tables.CELL), suffixes=("_val", "_test")
    )
    gap = tables.direction_sign(merged["metric"]) * (merged["mean_test"] - merged["mean_val"])
    frame = pd.DataFrame(
        {
            **{dim: merged[dim] for dim in tables.CELL},
            "metric": merged["metric"],
            "val_point": merged["method_label_val"],
            "test_point": merged["method_label_test"],
            "val_selected_mean": merged["mean_val"],
            "test_selected_mean": merged["mean_test"],
            "val_selected_seeds": merged["seeds_val"],
            "test_selected_seeds": merged["seeds_test"],
            "points": merged["points"],
            # the same point chosen twice is a gap of exactly 0, not a float difference of a value with itself
            "gap": np.where(merged["method_label_val"] == merged["method_label_test"], 0.0, gap),
        }
    )
    return frame[GAP_COLUMNS]


def gap_table(
    trials: pd.DataFrame, rows: Sequence[str] = ("method",), cols: Sequence[str] = ("task",), ddof: int = 0
) -> pd.DataFrame:
    """:func:`selection_gap` laid out for :func:`render_gap`: ``frame.attrs`` holds ``rows`` (the grid's row
    dimensions, the added ones first, as :func:`orchestrator.analysis.tables.pivot` adds them), ``cols``,
    ``selection`` (``gap``), ``ddof`` and the caption, which states the mean gap of the cells with several
    grid points per metric."""
    frame = selection_gap(trials, ddof)
    grid = tables.pivot(tables.Selected(frame, GAP, ddof), rows, cols)
    frame = frame.assign(best=False)
    frame.attrs = {
        "rows": grid.row_names,
        "cols": grid.column_names,
        "added_rows": grid.added_rows,
        "selection": GAP,
        "ddof": ddof,
        "published": False,
        "csv_columns": GAP_COLUMNS,
        "caption": caption(frame),
    }
    return frame


def caption(frame: pd.DataFrame) -> str:
    """What the gap table shows, and per metric the mean gap over the cells with several grid points."""
    text = (
        "Optimism of choosing each cell's hyper-parameters by test instead of validation: the seed-mean test "
        "metric of the point with the best seed-mean test metric minus that of the point with the best "
        "seed-mean validation metric (the honest table's), signed so that positive means the optimistic "
        "table looks better (ROC-AUC in points of %, RMSE as is); [validation's point → test's point] where "
        "they differ; a cell of one grid point is 0 by construction."
    )
    if (frame["val_selected_seeds"] != frame["test_selected_seeds"]).any():
        text += " † marks a cell whose two points have different seed counts so far: its means cover different seeds."
    gridded = frame[frame["points"] > 1]
    for metric, cells in gridded.groupby("metric", sort=True):
        scale = 100.0 if metric == "roc_auc" else 1.0
        differ = int((cells["val_point"] != cells["test_point"]).sum())
        text += (
            f" {metric}: mean gap {cells['gap'].mean() * scale:.2f} over the {len(cells)} cells with several "
            f"points ({differ} choose differently), largest {cells['gap'].max() * scale:.2f}."
        )
    return text


def gap_text(record: dict, scale: float) -> str:
    """One cell: ``+1.57 [bss[d=0.1] → bss[d=0.001]]``, or ``0.00`` where both selections choose one point;
    ``†`` where the two points' seed counts differ (a sweep mid-run)."""
    mark = " †" if record["val_selected_seeds"] != record["test_selected_seeds"] else ""
    if record["val_point"] == record["test_point"]:
        return f"{record['gap'] * scale:.2f}"
    return f"+{record['gap'] * scale:.2f} [{record['val_point']} → {record['test_point']}]{mark}"


def render_gap(frame: pd.DataFrame, fmt: str = "markdown") -> str:
    """The gap table of :func:`gap_table` in ``fmt`` (markdown, latex, csv, html), with its caption."""
    return tables.render_frame(frame, fmt, cell_text=gap_text)
