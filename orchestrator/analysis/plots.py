"""The report's figures (matplotlib, each saved as PNG and SVG).

* few-shot curves: test metric vs label setting, one line per backbone and method (never an
  average over backbones), one panel per task with at least two label settings;
* interpolation curves: WiSE-FT metric vs alpha (grid rows), the alpha-search points of
  one-dimensional studies (the ``alpha_trials`` table) and each search's chosen alpha, per task
  one validation panel and one test panel;
* methods by mechanism: average rank over tasks, bars coloured by mechanism (weight,
  representation, partial, baseline);
* pre-training: per task, each method's test metric on every backbone (one point per backbone,
  named by its architecture and pre-training), when the backbones differ in pre-training;
* published numbers: per task, the measured mean ± std beside the published one, for the cells
  that match a published configuration (:mod:`orchestrator.analysis.anchors`).

Every function takes the selected cells (:mod:`orchestrator.analysis.tables`) or trial rows and returns a
figure; when the data has nothing to show for it (e.g. one label setting: a curve needs an axis of
at least two values) it raises :class:`NothingToDraw`, whose message says why.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from orchestrator.analysis.names import (
    backbone_name,
    label_setting_name,
    label_setting_order,
    method_name,
    split_name,
    task_name,
)
from orchestrator.analysis.tables import HIGHER_IS_BETTER
from trainables.data.sources import atomic_write

STYLES = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "D")]  # (line, marker) per backbone in curves
MECHANISM_COLOURS = {"baseline": "#4d4d4d", "weight": "#1f77b4", "representation": "#ff7f0e", "partial": "#2ca02c"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


class NothingToDraw(ValueError):
    """The data holds nothing for this figure; the message says why (the report prints it)."""


def save_figure(figure, out_dir: Path, name: str) -> list[Path]:
    """``<name>.png`` and ``<name>.svg`` under ``out_dir``, each written whole (a temporary file
    renamed into place: a reader never opens half an image)."""
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.svg"]
    atomic_write(paths[0], lambda fh: figure.savefig(fh, format="png", dpi=120, bbox_inches="tight"))
    atomic_write(paths[1], lambda fh: figure.savefig(fh, format="svg", bbox_inches="tight"))
    _pyplot().close(figure)
    return paths


def _scale(metric: str) -> float:
    return 100.0 if metric == "roc_auc" else 1.0


def _panels(n: int, width: float = 4.0, height: float = 3.0):
    if n < 1:
        raise ValueError("a figure needs at least one panel")
    plt = _pyplot()
    columns = min(n, 3)
    rows = math.ceil(n / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows), squeeze=False)
    for extra in axes.flat[n:]:
        extra.set_visible(False)
    return figure, list(axes.flat[:n])


def _names(frame: pd.DataFrame, backbones: dict[str, str] | None) -> dict[str, str]:
    """Backbone id -> the name shown (``backbones`` where given, else from the id)."""
    return {b: (backbones or {}).get(b) or backbone_name(b) for b in frame.backbone.unique()}


def _figure_legend(figure, axes, columns: int = 2) -> None:
    """One legend under the panels, with every label drawn in any of them (each once)."""
    seen: dict[str, object] = {}
    for axis in axes:
        for handle, label in zip(*axis.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    if seen:
        figure.legend(
            list(seen.values()),
            list(seen),
            loc="upper center",
            bbox_to_anchor=(0.5, 0.0),
            ncol=min(columns, len(seen)),
            fontsize=8,
            frameon=False,
        )


def fewshot_curves(selected: pd.DataFrame, backbones: dict[str, str] | None = None):
    """Test metric vs label setting, one line per (backbone, method[, split]) and one panel per task
    that has cells of at least two label settings (mean ± std over seeds of each selected cell).

    No line averages cells: each point is one selected cell. ``backbones``: id -> name shown.
    """
    if selected.empty:
        raise NothingToDraw("no selected cells")
    tasks = [t for t in sorted(selected.task.unique()) if selected[selected.task == t].label_setting.nunique() >= 2]
    if not tasks:
        settings = ", ".join(
            label_setting_name(s) for s in sorted(selected.label_setting.unique(), key=label_setting_order)
        )
        raise NothingToDraw(f"every task has one label setting only ({settings}); a curve needs at least two")
    names = _names(selected, backbones)
    backbone_order, method_order = sorted(selected.backbone.unique()), sorted(selected.method.unique())
    figure, axes = _panels(len(tasks), width=4.5, height=3.2)
    for axis, task in zip(axes, tasks):
        part = selected[selected.task == task]
        order = sorted(part.label_setting.unique(), key=label_setting_order)
        metric = part.metric.iloc[0]
        scale = _scale(metric)
        several_splits = part.split.nunique() > 1
        for (backbone, method, split), rows in part.groupby(["backbone", "method", "split"], sort=True):
            rows = rows.set_index("label_setting").reindex(order)
            label = f"{names[backbone]} · {method_name(method)}" + (f" · {split_name(split)}" if several_splits else "")
            style = STYLES[backbone_order.index(backbone) % len(STYLES)]  # line and marker: the backbone
            colour = method_order.index(method) if len(method_order) > 1 else backbone_order.index(backbone)
            axis.errorbar(
                range(len(order)),
                rows["mean"] * scale,
                yerr=rows["std"].fillna(0) * scale,
                linestyle=style[0],
                marker=style[1],
                capsize=2,
                label=label,
                color=f"C{colour % 10}",
            )  # colour: the method (the backbone when one method ran)
        axis.set_xticks(range(len(order)), [label_setting_name(o) for o in order], rotation=25, ha="right", fontsize=8)
        axis.set_xlabel("training labels", fontsize=8)
        direction = "higher" if HIGHER_IS_BETTER[metric] else "lower"
        axis.set_title(f"{task_name(task)} ({direction} is better)", fontsize=10)
        axis.set_ylabel(f"test {'ROC-AUC (%)' if metric == 'roc_auc' else metric.upper()}")
    _figure_legend(figure, axes)
    figure.suptitle("test metric vs training labels (selected hyper-parameters; mean ± std over seeds)", fontsize=10)
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

    Searches are drawn per method variant, named by its label (``roft-mol[optuna,groups=1,...]``:
    which RoFt-Mol grouping), in the legends and the title; searches of several alphas (RoFt-Mol
    with more than one group) have no place on one alpha axis and are left out, as the title says.
    Only the points of ``trials`` are drawn (a filtered report draws only its own), and only the
    tasks with at least two alphas; :class:`NothingToDraw` when no task has them.
    """
    columns = ["trial_key", "task", "metric", "method", "method_label", "val_metric", "test_metric", "alpha"]
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
            alpha=alphas[alphas.notna()].astype(float)
        )
        points = points.merge(
            trials[["trial_key", "task", "metric", "method", "method_label"]], on="trial_key", how="inner"
        )
    tasks = sorted(set(wise.task) | set(points.task) | set(chosen.task))
    if not tasks:
        raise NothingToDraw("no WiSE-FT grid and no alpha search among these trials")
    alphas = pd.concat([frame[["task", "alpha"]] for frame in (wise, points, chosen)])
    tasks = [t for t in tasks if alphas[alphas.task == t].alpha.nunique() >= 2]
    if not tasks:
        raise NothingToDraw("every task has one alpha only; a curve needs at least two")
    variants = sorted(set(points.method_label) | set(chosen.method_label))
    colour = {label: i for i, label in enumerate(variants)}  # one colour per variant in every panel
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
                    axis.errorbar(
                        curve.index,
                        curve["mean"] * scale,
                        yerr=curve["std"].fillna(0) * scale,
                        marker="o",
                        capsize=2,
                        color="C0",
                        label=f"wise-ft grid, seed mean ({short})",
                    )
            for label, rows in searched.groupby("method_label"):
                rows = rows[rows[column].notna()]
                if not rows.empty:
                    axis.scatter(
                        rows.alpha,
                        rows[column] * scale,
                        s=10,
                        alpha=0.6,
                        color=f"C{1 + 2 * colour[label]}",
                        marker="x" if short == "test" else ".",
                        label=f"{label} points ({short})",
                    )
            for label, rows in picks.groupby("method_label"):
                rows = rows[rows[column].notna()]
                if not rows.empty:
                    axis.scatter(
                        rows.alpha,
                        rows[column] * scale,
                        s=90,
                        marker="*",
                        color=f"C{2 + 2 * colour[label]}",
                        edgecolors="black",
                        linewidths=0.5,
                        zorder=3,
                        label=f"{label}, chosen alpha ({short})",
                    )
            axis.set_xlabel("alpha (0: pre-trained, 1: fine-tuned)")
            axis.set_ylabel(f"{short} {metric}{' (%)' if scale != 1 else ''}")
            axis.set_title(f"{task_name(task)}: {split}", fontsize=10)
            if axis.get_legend_handles_labels()[0]:
                axis.legend(fontsize=7)
            else:
                axis.text(
                    0.5,
                    0.5,
                    f"no {split} metric recorded",
                    transform=axis.transAxes,
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="#777777",
                )
    figure.tight_layout()
    drawn = ", ".join((["wise-ft grid"] if not wise.empty else []) + [f"{v} search" for v in variants])
    figure.suptitle(
        "metric vs alpha: validation (left; what the search optimises) and test (right)\n"
        f"{drawn}; searches of several alphas (roft-mol, groups > 1) are not drawn",
        y=1.0,
        va="bottom",
        fontsize=9,
    )
    return figure


def mechanism_ranks(ranks: pd.DataFrame, mechanisms: dict[str, str]):
    """Average rank per method (bars, 1 = best), coloured and grouped by mechanism."""
    if ranks.empty:
        raise NothingToDraw("no rank analysis (see the significance section)")
    plt = _pyplot()
    average = ranks.mean()
    order = sorted(
        average.index,
        key=lambda m: (
            list(MECHANISM_COLOURS).index(mechanisms.get(m, "baseline"))
            if mechanisms.get(m) in MECHANISM_COLOURS
            else 9,
            average[m],
        ),
    )
    figure, axis = plt.subplots(figsize=(1 + 0.6 * len(order), 3.2))
    colours = [MECHANISM_COLOURS.get(mechanisms.get(m, ""), "#999999") for m in order]
    axis.bar(range(len(order)), [average[m] for m in order], color=colours)
    axis.set_xticks(range(len(order)), [method_name(m) for m in order], rotation=40, ha="right", fontsize=8)
    axis.set_ylabel(f"average rank over {len(ranks)} blocks")
    from matplotlib.patches import Patch

    axis.legend(handles=[Patch(color=c, label=m) for m, c in MECHANISM_COLOURS.items()], fontsize=7)
    axis.set_title("methods by mechanism (lower rank is better)")
    figure.tight_layout()
    return figure


def pretraining_comparison(
    selected: pd.DataFrame, pretraining: dict[str, str], backbones: dict[str, str] | None = None
):
    """Per task: each method's test metric on each backbone, one point per backbone (named by its
    architecture and pre-training; never an average over backbones), when the selected backbones
    differ in pre-training (``pretraining``: backbone -> kind: none, self-supervised, supervised, both).

    One split and label setting is drawn (averaging over them would mix unlike cells): the one with
    the most pre-training kinds, then the most cells (all training labels first on ties); the
    title names it.
    """
    frame = selected.assign(pretraining=selected.backbone.map(pretraining))
    kinds = sorted(frame.pretraining.dropna().unique())
    if frame.empty or len(kinds) < 2:
        raise NothingToDraw(
            f"every backbone here has the same pre-training ({', '.join(kinds) or 'unknown'}); "
            "comparing pre-training needs backbones that differ in it"
        )
    contexts = (
        frame.groupby(["split", "label_setting"])
        .agg(kinds=("pretraining", "nunique"), cells=("mean", "size"))
        .reset_index()
    )
    contexts["order"] = contexts.label_setting.map(label_setting_order)
    best = contexts.sort_values(["kinds", "cells", "order", "split"], ascending=[False, False, False, True]).iloc[0]
    if best["kinds"] < 2:
        raise NothingToDraw("backbones that differ in pre-training never share a split and label setting")
    frame = frame[(frame.split == best["split"]) & (frame.label_setting == best["label_setting"])]
    names = _names(frame, backbones)
    order = sorted(frame.backbone.unique(), key=lambda b: (frame[frame.backbone == b].pretraining.iloc[0] != "none", b))
    tasks = sorted(frame.task.unique())
    figure, axes = _panels(len(tasks), width=5.0, height=3.4)
    for axis, task in zip(axes, tasks):
        part = frame[frame.task == task]
        metric = part.metric.iloc[0]
        scale = _scale(metric)
        methods = sorted(part.method.unique())
        here = [b for b in order if b in set(part.backbone)]
        width = 0.8 / len(here)
        for i, backbone in enumerate(here):
            rows = part[part.backbone == backbone].set_index("method").reindex(methods)
            axis.errorbar(
                np.arange(len(methods)) + (i - (len(here) - 1) / 2) * width,
                rows["mean"] * scale,
                yerr=rows["std"].fillna(0) * scale,
                fmt="o",
                capsize=3,
                label=names[backbone],
                color=f"C{order.index(backbone)}",
            )
        axis.set_xticks(
            np.arange(len(methods)),
            [method_name(m) for m in methods],
            rotation=30 if len(methods) > 3 else 0,
            ha="right" if len(methods) > 3 else "center",
            fontsize=8,
        )
        axis.set_xlim(-0.6, len(methods) - 0.4)
        direction = "higher" if HIGHER_IS_BETTER[metric] else "lower"
        axis.set_title(f"{task_name(task)} ({direction} is better)", fontsize=10)
        axis.set_ylabel(f"test {'ROC-AUC (%)' if metric == 'roc_auc' else metric.upper()}")
    _figure_legend(figure, axes, columns=1)
    figure.suptitle(
        f"pre-trained vs random-init backbones: {split_name(best['split'])}, "
        f"{label_setting_name(best['label_setting'])} (selected hyper-parameters; mean ± std over seeds)",
        fontsize=10,
    )
    figure.tight_layout()
    return figure


def published_comparison(comparison: pd.DataFrame, backbones: dict[str, str] | None = None):
    """Per task, the measured mean ± std (filled) beside the published mean ± std (open) of every
    cell that matches a published configuration (``comparison``: :func:`orchestrator.analysis.anchors.compare`,
    values in %)."""
    if comparison.empty:
        raise NothingToDraw(
            "no cell matches a published configuration (GIN 5x300, Full FT, scaffold split, "
            "all training labels, the published 100-epoch recipe)"
        )
    plt = _pyplot()
    names = _names(comparison, backbones)
    tasks = sorted(comparison.task.unique())
    pairs = sorted(comparison.backbone.unique())
    figure, axis = plt.subplots(figsize=(max(4.5, 1.2 * len(tasks) * len(pairs) + 1.5), 3.4))
    width = 0.8 / len(pairs)  # the room of one backbone within a task
    for i, backbone in enumerate(pairs):
        rows = comparison[comparison.backbone == backbone].set_index("task").reindex(tasks)
        x = np.arange(len(tasks)) + (i - (len(pairs) - 1) / 2) * width
        axis.errorbar(
            x - width * 0.2,
            rows["mean"],
            yerr=rows["std"].fillna(0),
            fmt="o",
            capsize=3,
            color=f"C{i}",
            label=f"{names[backbone]}: measured (n={int(rows['seeds'].max())})",
        )
        axis.errorbar(
            x + width * 0.2,
            rows["published_mean"],
            yerr=rows["published_std"],
            fmt="s",
            capsize=3,
            color=f"C{i}",
            markerfacecolor="white",
            label=f"{names[backbone]}: published, {rows['anchor'].dropna().iloc[0]} "
            f"(n={int(rows['published_seeds'].max())})",
        )
    axis.set_xticks(np.arange(len(tasks)), [task_name(t) for t in tasks])
    axis.set_xlim(-0.6, len(tasks) - 0.4)
    axis.set_ylabel("test ROC-AUC (%)")
    axis.set_title("measured vs published (mean ± std over seeds)", fontsize=10)
    _figure_legend(figure, [axis], columns=1)
    figure.tight_layout()
    return figure
