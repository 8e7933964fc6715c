"""The report's figures (matplotlib, each saved as PNG and SVG).

* few-shot curves: test metric vs label setting per method, one panel per task;
* interpolation curves: WiSE-FT metric vs alpha (grid rows), the alpha-search points of
  one-dimensional studies (the ``alpha_trials`` table) and each search's chosen alpha, per task
  one validation panel and one test panel;
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
    if n < 1:
        raise ValueError("a figure needs at least one panel")
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


def _json(text) -> dict:
    """A JSON object column's value as a dict ({} for null, empty or malformed text)."""
    if not isinstance(text, str) or not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _one_alpha(values) -> float | None:
    """The alpha of a one-dimensional alpha list (an alpha-search point, a search's choice), else None."""
    try:
        return float(values[0]) if values is not None and len(values) == 1 else None
    except (TypeError, ValueError):
        return None


def alpha_curves(trials: pd.DataFrame, alpha_points: pd.DataFrame | None = None):
    """Metric vs alpha per task, validation and test in separate panels (one row of two per task).

    * WiSE-FT grid rows (a fixed alpha, ``search: none``): the seed-mean validation and test metric
      vs alpha (lines, error bars: std over seeds);
    * one-dimensional alpha-search points (``alpha_trials`` rows of ``trials``, e.g. WiSE-FT with
      ``search: optuna``): each point's validation metric, and its test metric where the search
      scored it (``test_per_point``);
    * each search trial's chosen alpha (``method_results``) with the trial's val and test metric.

    Only the points of ``trials`` are drawn (a filtered report draws only its own); None when
    there is nothing to draw.
    """
    columns = ["trial_key", "task", "metric", "method", "val_metric", "test_metric", "alpha"]
    empty = pd.DataFrame(columns=columns)
    wise, chosen = empty, empty
    if not trials.empty and "method_params" in trials:
        params = trials.method_params.map(_json)
        search = params.map(lambda p: p.get("search", "none"))
        alpha = params.map(lambda p: p.get("alpha"))
        grid_rows = (trials.method == "wise-ft") & (search == "none") & alpha.notna()
        wise = trials.loc[grid_rows].assign(alpha=alpha[grid_rows].astype(float))
        if "method_results" in trials:
            picked = trials.method_results.map(lambda r: _one_alpha(_json(r).get("alphas")))
            searched = (search == "optuna") & picked.notna()
            chosen = trials.loc[searched].assign(alpha=picked[searched].astype(float))
    points = empty
    if alpha_points is not None and not alpha_points.empty and not trials.empty:
        alphas = alpha_points.alphas.map(_one_alpha)
        points = alpha_points.loc[alphas.notna(), ["trial_key", "val_metric", "test_metric"]].assign(
            alpha=alphas[alphas.notna()].astype(float))
        points = points.merge(trials[["trial_key", "task", "metric", "method"]], on="trial_key", how="inner")
    tasks = sorted(set(wise.task) | set(points.task) | set(chosen.task))
    if not tasks:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(len(tasks), 2, figsize=(10.0, 3.2 * len(tasks)), squeeze=False)
    for (val_axis, test_axis), task in zip(axes, tasks):
        grid, searched, picks = wise[wise.task == task], points[points.task == task], chosen[chosen.task == task]
        metric = next(frame.metric.iloc[0] for frame in (grid, searched, picks) if not frame.empty)
        scale = _scale(metric)
        for axis, column, split in ((val_axis, "val_metric", "validation"), (test_axis, "test_metric", "test")):
            short = "val" if split == "validation" else "test"
            if not grid.empty:
                curve = grid.groupby("alpha")[column].agg(["mean", "std"]).sort_index()
                if curve["mean"].notna().any():
                    axis.errorbar(curve.index, curve["mean"] * scale, yerr=curve["std"].fillna(0) * scale,
                                  marker="o", capsize=2, color="C0", label=f"wise-ft grid, seed mean ({short})")
            for i, (method, rows) in enumerate(searched.groupby("method")):
                rows = rows[rows[column].notna()]
                if not rows.empty:
                    axis.scatter(rows.alpha, rows[column] * scale, s=10, alpha=0.6, color=f"C{1 + 2 * i}",
                                 marker="x" if short == "test" else ".", label=f"{method} search points ({short})")
            for i, (method, rows) in enumerate(picks.groupby("method")):
                rows = rows[rows[column].notna()]
                if not rows.empty:
                    axis.scatter(rows.alpha, rows[column] * scale, s=90, marker="*", color=f"C{2 + 2 * i}",
                                 edgecolors="black", linewidths=0.5, zorder=3,
                                 label=f"{method} search, chosen alpha ({short})")
            axis.set_xlabel("alpha (0: pre-trained, 1: fine-tuned)")
            axis.set_ylabel(f"{short} {metric}{' (%)' if scale != 1 else ''}")
            axis.set_title(f"{task}: {split}", fontsize=10)
            if axis.get_legend_handles_labels()[0]:
                axis.legend(fontsize=7)
            else:
                axis.text(0.5, 0.5, f"no {split} metric recorded", transform=axis.transAxes, ha="center",
                          va="center", fontsize=8, color="#777777")
    figure.tight_layout()
    figure.suptitle("metric vs alpha: validation (left; what the search optimises) and test (right)", y=1.0,
                    va="bottom")
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

