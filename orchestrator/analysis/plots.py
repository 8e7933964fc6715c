"""The report's figures (matplotlib, each saved as PNG and SVG).

* few-shot curves: test metric vs label setting per method, one panel per task;
* interpolation curves: WiSE-FT test metric vs alpha (grid rows) and the alpha-search points
  of one-dimensional studies (the ``alpha_trials`` table), one panel per task;
* methods by mechanism: average rank over tasks, bars coloured by mechanism (weight,
  representation, partial, baseline);
* pre-training: each method's test metric per pre-training kind of the backbone, per task.

Every function takes the selected cells (:mod:`orchestrator.analysis.tables`) or trial rows and returns a
figure, or None when the data has nothing to show for it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from orchestrator.analysis.tables import HIGHER_IS_BETTER

MECHANISM_COLOURS = {"baseline": "#4d4d4d", "weight": "#1f77b4", "representation": "#ff7f0e", "partial": "#2ca02c"}


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(figure, out_dir: Path, name: str) -> list[Path]:
    """``<name>.png`` and ``<name>.svg`` under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.svg"]
    figure.savefig(paths[0], dpi=120, bbox_inches="tight")
    figure.savefig(paths[1], bbox_inches="tight")
    _pyplot().close(figure)
    return paths


def label_setting_order(value: str) -> tuple:
    """fewshot:N by N, then ratio:r by r, then full."""
    if value.startswith("fewshot:"):
        return (0, float(value.split(":")[1]))
    if value.startswith("ratio:"):
        return (1, float(value.split(":")[1]))
    return (2, 0.0)


def _scale(metric: str) -> float:
    return 100.0 if metric == "roc_auc" else 1.0


def _panels(n: int, width: float = 4.0, height: float = 3.0):
    plt = _pyplot()
    columns = min(n, 3)
    rows = -(-n // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows), squeeze=False)
    for extra in axes.flat[n:]:
        extra.set_visible(False)
    return figure, list(axes.flat[:n])


def fewshot_curves(selected: pd.DataFrame):
    """Test metric vs label setting per method, one panel per task (mean +- std over seeds)."""
    if selected.empty:
        return None
    tasks = sorted(selected.task.unique())
    figure, axes = _panels(len(tasks))
    for axis, task in zip(axes, tasks):
        part = selected[selected.task == task]
        order = sorted(part.label_setting.unique(), key=label_setting_order)
        scale = _scale(part.metric.iloc[0])
        for method, rows in part.groupby("method"):
            rows = rows.groupby("label_setting")[["mean", "std"]].mean().reindex(order)
            axis.errorbar(range(len(order)), rows["mean"] * scale, yerr=rows["std"].fillna(0) * scale, marker="o",
                          capsize=2, label=method)
        axis.set_xticks(range(len(order)), order, rotation=30, fontsize=8)
        axis.set_title(task)
        axis.set_ylabel(f"{part.metric.iloc[0]}{' (%)' if scale != 1 else ''}")
    axes[0].legend(fontsize=7)
    figure.suptitle("test metric vs label setting (selected hyper-parameters)")
    figure.tight_layout()
    return figure


def alpha_curves(trials: pd.DataFrame, alpha_points: pd.DataFrame | None = None):
    """WiSE-FT test metric vs alpha (grid rows, mean over seeds) and 1-D alpha-search points, per task."""
    wise = trials[trials.method == "wise-ft"].copy()
    if not wise.empty:
        params = wise.method_params.map(json.loads)
        wise = wise[params.map(lambda p: p.get("search", "none") == "none")]
        wise["alpha"] = params.map(lambda p: p.get("alpha"))
    points = pd.DataFrame() if alpha_points is None else alpha_points[alpha_points.alphas.map(len) == 1].copy()
    if wise.empty and points.empty:
        return None
    if not points.empty:
        points["alpha"] = points.alphas.map(lambda a: a[0])
        points = points.merge(trials[["trial_key", "task", "metric"]], on="trial_key", how="inner")
    tasks = sorted(set(wise.task) | set(points.task if not points.empty else []))
    figure, axes = _panels(len(tasks))
    for axis, task in zip(axes, tasks):
        grid = wise[wise.task == task]
        metric = (grid.metric.iloc[0] if not grid.empty else points[points.task == task].metric.iloc[0])
        scale = _scale(metric)
        if not grid.empty:
            curve = grid.groupby("alpha").test_metric.agg(["mean", "std"]).sort_index()
            axis.errorbar(curve.index, curve["mean"] * scale, yerr=curve["std"].fillna(0) * scale, marker="o",
                          capsize=2, label="wise-ft grid (test)")
        searched = points[points.task == task] if not points.empty else points
        if not searched.empty:
            axis.scatter(searched.alpha, searched.val_metric * scale, s=8, alpha=0.5, label="search points (val)")
        axis.set_xlabel("alpha (0: pre-trained, 1: fine-tuned)")
        axis.set_ylabel(f"{metric}{' (%)' if scale != 1 else ''}")
        axis.set_title(task)
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    return figure


def mechanism_ranks(ranks: pd.DataFrame, mechanisms: dict[str, str]):
    """Average rank per method (bars, 1 = best), coloured and grouped by mechanism."""
    if ranks.empty:
        return None
    plt = _pyplot()
    average = ranks.mean()
    order = sorted(average.index, key=lambda m: (list(MECHANISM_COLOURS).index(mechanisms.get(m, "baseline"))
                                                 if mechanisms.get(m) in MECHANISM_COLOURS else 9, average[m]))
    figure, axis = plt.subplots(figsize=(1 + 0.6 * len(order), 3.2))
    colours = [MECHANISM_COLOURS.get(mechanisms.get(m, ""), "#999999") for m in order]
    axis.bar(range(len(order)), [average[m] for m in order], color=colours)
    axis.set_xticks(range(len(order)), order, rotation=40, ha="right", fontsize=8)
    axis.set_ylabel(f"average rank over {len(ranks)} blocks")
    from matplotlib.patches import Patch
    axis.legend(handles=[Patch(color=c, label=m) for m, c in MECHANISM_COLOURS.items()], fontsize=7)
    axis.set_title("methods by mechanism (lower rank is better)")
    figure.tight_layout()
    return figure


def pretraining_comparison(selected: pd.DataFrame, pretraining: dict[str, str]):
    """Per task: each method's test metric, one bar per backbone pre-training kind (averaged over backbones)."""
    frame = selected.assign(pretraining=selected.backbone.map(pretraining))
    if frame.empty or frame.pretraining.nunique() < 2:
        return None
    tasks = sorted(frame.task.unique())
    kinds = sorted(frame.pretraining.dropna().unique())
    figure, axes = _panels(len(tasks), width=5.0)
    for axis, task in zip(axes, tasks):
        part = frame[frame.task == task]
        scale = _scale(part.metric.iloc[0])
        methods = sorted(part.method.unique())
        width = 0.8 / len(kinds)
        for i, kind in enumerate(kinds):
            values = part[part.pretraining == kind].groupby("method")["mean"].mean().reindex(methods) * scale
            axis.bar(np.arange(len(methods)) + i * width, values, width=width, label=kind)
        axis.set_xticks(np.arange(len(methods)) + 0.4 - width / 2, methods, rotation=40, ha="right", fontsize=8)
        direction = "higher" if HIGHER_IS_BETTER[part.metric.iloc[0]] else "lower"
        axis.set_title(f"{task} ({part.metric.iloc[0]}, {direction} is better)", fontsize=9)
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    return figure

