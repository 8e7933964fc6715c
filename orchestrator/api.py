"""The Python API: a store's results as pandas DataFrames, for notebooks and scripts.

    import orchestrator as roft

    trials = roft.load_trials("results", where={"task": "bbbp"})     # one row per trial
    curves = roft.load_curves("results", where={"method": "full-ft"})  # one row per trial and epoch
    paper = roft.table("results", rows="backbone", cols="task", anchors=True)  # what `roft table` prints

``store`` is a folder, an ``s3://bucket/prefix[?endpoint_override=HOST:PORT&scheme=http]`` URI (credentials
from ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``) or a :class:`ResultStore`. ``where`` maps a
trial column (:data:`orchestrator.store.schema.TRIAL_SCHEMA`) to one value or a list of accepted
values (``{"task": ["bbbp", "bace"], "seed": 0}``). Every frame is read from the store alone: no Ray,
no torch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import pandas as pd

from orchestrator.store.results import ResultStore

# What a curve row carries besides the epoch table's own columns: the trial's cell and seed, so that
# curves group like the tables (by backbone, method, task, split, label setting) without a join.
CURVE_TRIAL_COLUMNS = ["backbone", "method", "method_label", "task", "split", "label_setting", "metric", "seed"]


def open_store(store: str | os.PathLike | ResultStore) -> ResultStore:
    """The :class:`ResultStore` at ``store`` (a folder, an ``s3://`` URI, or a store already open),
    which must exist (:class:`FileNotFoundError` naming it otherwise)."""
    opened = store if isinstance(store, ResultStore) else ResultStore(store)
    if not opened.exists():
        raise FileNotFoundError(f"store {opened.location!r} does not exist")
    return opened


def _where(where: dict[str, Any] | None) -> dict[str, list[str]]:
    """``where`` with every value a list of text, as :func:`~orchestrator.analysis.tables.where_expression` takes it."""
    if where is None:
        return {}
    if not isinstance(where, dict):
        raise ValueError(f"where={where!r} is not accepted; accepted: a dict of column -> value or list of values")
    out = {}
    for column, values in where.items():
        values = list(values) if isinstance(values, (list, tuple, set, frozenset, pd.Series)) else [values]
        if not values:
            raise ValueError(f"where[{column!r}] is empty; accepted: one value or a non-empty list of values")
        out[column] = [str(v) for v in values]
    return out


def _dims(value: str | Sequence[str]) -> tuple[str, ...]:
    return tuple(value.split(",")) if isinstance(value, str) else tuple(value)


def load_trials(
    store: str | os.PathLike | ResultStore, where: dict[str, Any] | None = None, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """One row per finished trial, with the store's typed columns (all, or ``columns``).

    Integers stay integers, ``finished_at`` / ``started_at`` are UTC timestamps, ``val_metric`` and
    ``test_metric`` are the metric at the best-validation epoch in the metric's own unit (ROC-AUC as
    a fraction, RMSE in the task's unit); JSON columns (``trial_config``, ``method_params``,
    ``method_results``) are text. A trial whose row is in two files (a compaction interrupted) is
    one row.
    """
    from orchestrator.analysis.tables import where_expression
    from orchestrator.store.schema import TRIAL_SCHEMA

    opened = open_store(store)
    wanted = list(TRIAL_SCHEMA.names) if columns is None else list(columns)
    unknown = [c for c in wanted if c not in TRIAL_SCHEMA.names]
    if unknown:
        raise ValueError(f"unknown column(s) {unknown}; accepted: {', '.join(TRIAL_SCHEMA.names)}")
    conditions = _where(where)
    expression = where_expression(conditions)
    table = opened.read_trials(columns=list(dict.fromkeys([*wanted, *conditions])))
    if expression is not None:
        table = table.filter(expression)
    return table.select(wanted).to_pandas().reset_index(drop=True)


def load_curves(store: str | os.PathLike | ResultStore, where: dict[str, Any] | None = None) -> pd.DataFrame:
    """Per-epoch curves: one row per trial, stage and epoch, with the trials' cell and seed.

    Columns: ``trial_key``, :data:`CURVE_TRIAL_COLUMNS` (backbone ... seed), then the epoch table's
    ``stage`` (``finetune``; LP-FT's ``lp`` then ``ft``), ``epoch``, ``train_loss``, ``val_metric``,
    ``test_metric`` (the metric's own unit) and the tasks skipped in evaluation. ``where`` selects
    trials by their columns, as in :func:`load_trials`. Ordered by trial, then as trained (stage, epoch).
    """
    import pyarrow.dataset as ds

    opened = open_store(store)
    trials = load_trials(opened, where, ["trial_key", *CURVE_TRIAL_COLUMNS])
    filter = None if where is None else ds.field("trial_key").isin(trials["trial_key"].tolist())
    epochs = opened.scan("epochs", filter=filter).to_pandas()
    # a trial's curve is in two files only after an interrupted compaction: count it once
    epochs = epochs.drop_duplicates(["trial_key", "stage", "epoch"], keep="last")
    curves = trials.merge(epochs, on="trial_key", how="inner")
    return curves.sort_values("trial_key", kind="stable").reset_index(drop=True)


def table(
    store: str | os.PathLike | ResultStore,
    rows: str | Sequence[str] = ("method",),
    cols: str | Sequence[str] = ("task",),
    where: dict[str, Any] | None = None,
    select: str = "val",
    anchors: bool = False,
    ddof: int = 0,
) -> pd.DataFrame:
    """The paper table as data: exactly the frame ``roft table`` prints (one row per cell).

    Per cell (backbone, method, task, split, label setting), the grid point chosen by the best
    seed-mean validation metric (``select="test"``: by test, the reference code's optimistic
    protocol), its test metric's ``mean`` and ``std`` over ``seeds`` (std with ``ddof``), in the
    metric's own unit (ROC-AUC as a fraction: ``roft table`` prints it in %), ``best`` (bold in the
    printed table) and, with ``anchors``, the published number and verdict beside the cells that
    match a published configuration (``published_mean``, ``published_std``, ``published_seeds``,
    ``published_difference``, ``within_2se``, ``anchor``). ``frame.attrs`` holds the layout (``rows``,
    ``cols``) and the caption; :func:`orchestrator.analysis.tables.render_frame` prints it as
    markdown, LaTeX, CSV or HTML. ``frame.pivot(index=list(frame.attrs["rows"]),
    columns=list(frame.attrs["cols"]), values="mean")`` is the grid of means.

    ``select="gap"``: instead, per cell, how much better choosing by test makes the cell look than
    choosing by validation (:func:`orchestrator.analysis.optimism.gap_table`, printed by
    :func:`orchestrator.analysis.optimism.render_gap`; no anchors).
    """
    from orchestrator.analysis import anchors as published
    from orchestrator.analysis import optimism, tables

    opened = open_store(store)
    columns = [*tables.COLUMNS, *published.TRIAL_COLUMNS] if anchors else tables.COLUMNS
    trials = tables.load_trials(opened, _where(where), columns)
    if select == optimism.GAP:
        if anchors:
            raise ValueError("anchors=True is not accepted with select='gap'; accepted: select='val' or 'test'")
        return optimism.gap_table(trials, _dims(rows), _dims(cols), ddof)
    selected = tables.select(trials, select, ddof)
    values, caption = None, ""
    if anchors:
        comparison = published.published_comparison(opened, trials, ddof)
        values = published.cell_values(comparison)
        caption = published.caption(comparison) if not trials.empty else ""
    return tables.table_frame(selected, _dims(rows), _dims(cols), values, caption)
