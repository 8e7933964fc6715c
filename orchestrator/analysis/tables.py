"""Paper tables from the store: hyper-parameter selection per cell, mean +- std over seeds.

A *cell* is one (backbone, method, task, split, label setting); its *grid points* are the
method's hyper-parameter settings (``method_label``). Selection picks one point per cell:

* ``val`` (default, honest): the point with the best seed-mean **validation** metric;
* ``test`` (the reference code's protocol, optimistic): the best seed-mean **test** metric.

The selected point's test metric is reported as mean +- std over its seeds (``ddof`` stated
in the caption), with the seed count. "Best" is direction-aware: ROC-AUC higher, RMSE lower.

Queries read the store through pyarrow datasets (filter and column pushdown over the Parquet
files; no extra engine to install or keep in sync) into pandas, which groups 100k rows in
well under a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from orchestrator.store.results import ResultStore
from trainables.data.tasks import HIGHER_IS_BETTER

CELL = ("backbone", "method", "task", "split", "label_setting")
SELECTIONS = ("val", "test")
FORMATS = ("markdown", "latex", "csv", "html")
COLUMNS = [*CELL, "method_label", "mechanism", "pretraining", "metric", "seed", "trial_key", "val_metric",
           "test_metric"]


def where_expression(where: dict[str, Sequence[str]] | None):
    """The pyarrow filter of ``where`` (column -> accepted values; the values are text, converted to
    the column's type), or None for no filter; ValueError for an unknown column or a bad value."""
    import pyarrow.dataset as ds

    from orchestrator.store.schema import TRIAL_SCHEMA

    where = where or {}
    unknown = sorted(set(where) - set(TRIAL_SCHEMA.names))
    if unknown:
        raise ValueError(f"unknown column(s) {unknown} in the filter; accepted: {', '.join(TRIAL_SCHEMA.names)}")
    expression = None
    for column, values in where.items():
        kind = str(TRIAL_SCHEMA.field(column).type)
        convert = int if kind.startswith("int") else float if kind.startswith("double") else str
        try:
            typed = [convert(v) for v in values]
        except ValueError:
            raise ValueError(f"--where {column}={','.join(values)}: {column} holds {kind} values; accepted: "
                             f"{convert.__name__} values") from None
        term = ds.field(column).isin(typed)
        expression = term if expression is None else expression & term
    return expression


def load_trials(store: ResultStore, where: dict[str, Sequence[str]] | None = None,
                columns: Sequence[str] = COLUMNS) -> pd.DataFrame:
    """Trial rows (one per trial key) whose columns match ``where`` (column -> accepted values)."""
    expression = where_expression(where)
    frame = store.scan("trials", columns=list(dict.fromkeys([*columns, "trial_key"])), filter=expression).to_pandas()
    if frame.empty:
        return pd.DataFrame(columns=list(columns))
    return frame.drop_duplicates("trial_key", keep="last")


@dataclass(frozen=True)
class Selected:
    """Per cell: the chosen grid point and its test metric over seeds."""

    frame: pd.DataFrame  # CELL + metric, method_label, mean, std, seeds, val_mean, points (grid points considered)
    selection: str
    ddof: int


def seed_summary(trials: pd.DataFrame, by: Sequence[str], ddof: int = 0) -> pd.DataFrame:
    """Mean and std over seeds of the test metric, per group of ``by``: one row per group with
    ``mean``, ``std`` (``ddof`` degrees of freedom; NaN when a group has ``<= ddof`` seeds),
    ``seeds`` (count) and ``val_mean`` (seed-mean validation metric). Rows with the same trial key
    count once."""
    if ddof not in (0, 1):
        raise ValueError(f"ddof={ddof} is not accepted; accepted: 0 (population) or 1 (sample)")
    trials = trials.drop_duplicates("trial_key")
    if "val_metric" not in trials:
        trials = trials.assign(val_metric=np.nan)
    return trials.groupby(list(by), sort=True).agg(
        mean=("test_metric", "mean"), val_mean=("val_metric", "mean"), seeds=("test_metric", "count"),
        std=("test_metric", lambda s: s.std(ddof=ddof) if len(s) > ddof else np.nan)).reset_index()


def select(trials: pd.DataFrame, selection: str = "val", ddof: int = 0) -> Selected:
    """Choose one grid point per cell by seed-mean validation (or test) metric."""
    if selection not in SELECTIONS:
        raise ValueError(f"selection {selection!r} is not accepted; accepted: {', '.join(SELECTIONS)}")
    if ddof not in (0, 1):
        raise ValueError(f"ddof={ddof} is not accepted; accepted: 0 (population) or 1 (sample)")
    columns = [*CELL, "metric", "method_label", "mean", "std", "seeds", "val_mean", "points"]
    if trials.empty:
        return Selected(pd.DataFrame(columns=columns), selection, ddof)
    per_point = seed_summary(trials, [*CELL, "metric", "method_label"], ddof)
    score = per_point["val_mean" if selection == "val" else "mean"]
    sign = per_point["metric"].map(lambda m: 1.0 if HIGHER_IS_BETTER[m] else -1.0)
    per_point["_key"] = (score * sign).fillna(-np.inf)
    per_point["points"] = per_point.groupby([*CELL])["method_label"].transform("count")
    chosen = per_point.sort_values([*CELL, "_key", "method_label"], ascending=[True] * len(CELL) + [False, True])
    chosen = chosen.drop_duplicates(list(CELL), keep="first").drop(columns="_key")
    return Selected(chosen[columns].reset_index(drop=True), selection, ddof)


@dataclass(frozen=True)
class Grid:
    """Selected cells laid out as rows x columns; ``cells[(row, column)]`` is a selected record.

    ``added_rows``: cell dimensions that were neither rows nor columns but hold several values in
    the selection; they lead ``row_names`` (a table never mixes cells silently).
    """

    row_names: tuple[str, ...]
    column_names: tuple[str, ...]
    rows: list[tuple]
    columns: list[tuple]
    cells: dict[tuple[tuple, tuple], dict]
    added_rows: tuple[str, ...] = ()

    def best_per_column(self) -> dict[tuple, tuple]:
        """Column -> row with the best mean (direction-aware by the column's metric), for a grid
        whose columns each hold one metric and no added rows; see :meth:`best_cells` otherwise."""
        best = {}
        for row, column in sorted(self.best_cells()):
            best.setdefault(column, row)
        return best

    def best_cells(self) -> set[tuple[tuple, tuple]]:
        """The ``(row, column)`` of each column's best mean (direction-aware), compared only within
        one metric and one value of the :attr:`added_rows` (never ROC-AUC against RMSE, nor one
        backbone's cells against another's when the backbone was added to the rows)."""
        blocks: dict[tuple, list[tuple[tuple, dict]]] = {}
        for (row, column), record in self.cells.items():
            if not pd.isna(record["mean"]):
                blocks.setdefault((column, row[:len(self.added_rows)], record["metric"]), []).append((row, record))
        best = set()
        for (column, _, metric), records in blocks.items():
            pick = max if HIGHER_IS_BETTER[metric] else min
            best.add((pick(sorted(records, key=lambda item: item[0]), key=lambda item: item[1]["mean"])[0], column))
        return best


def pivot(selected: Selected, rows: Sequence[str] = ("method",), cols: Sequence[str] = ("task",)) -> Grid:
    """The selected cells as a rows x columns grid (a missing cell has no entry).

    Every other cell dimension that holds several values in the selection is added to the rows
    (before ``rows``; :attr:`Grid.added_rows` names them), so that no cell of the grid mixes
    several backbones, splits, ...: the default table of any store is well defined.
    """
    frame = selected.frame
    rows, cols = tuple(rows), tuple(cols)
    dims = [*rows, *cols]
    bad = [d for d in dims if d not in CELL]
    if bad:
        raise ValueError(f"rows/cols {bad} are not accepted; accepted: {', '.join(CELL)}")
    if set(rows) & set(cols):
        raise ValueError(f"a column cannot be both a row and a column: {sorted(set(rows) & set(cols))}")
    added = tuple(d for d in CELL if d not in dims and frame[d].nunique() > 1)
    rows = (*added, *rows)
    cells = {(tuple(r[d] for d in rows), tuple(r[d] for d in cols)): r for r in frame.to_dict("records")}
    return Grid(rows, cols, sorted({row for row, _ in cells}), sorted({col for _, col in cells}), cells, added)


def caption(selected: Selected, added_rows: Sequence[str] = ()) -> str:
    protocol = ("hyper-parameters selected per cell by the best seed-mean validation metric" if selected.selection == "val"
                else "OPTIMISTIC: hyper-parameters selected per cell by the best seed-mean test metric (the reference "
                     "code's protocol)")
    text = (f"Test metric at the best-validation epoch, mean ± std over seeds (std with ddof={selected.ddof}), "
            f"n = seeds; {protocol}. ROC-AUC in %, higher is better; RMSE, lower is better; best per column in bold; "
            "— marks a missing cell.")
    if added_rows:
        names = ", ".join(added_rows)
        text += (f" Rows are also split by {names}: the selected trials hold several values of "
                 f"{'it' if len(added_rows) == 1 else 'each'} (--where {added_rows[0]}=VALUE keeps one); the best "
                 f"is marked per column within each {names}.")
    return text


def _cell_text(record, scale: float, show_point: bool) -> str:
    std = "n/a" if pd.isna(record["std"]) else f"{record['std'] * scale:.2f}"
    text = f"{record['mean'] * scale:.2f} ± {std} (n={record['seeds']})"
    return text + (f" [{record['method_label']}]" if show_point and record["points"] > 1 else "")


def render(selected: Selected, rows: Sequence[str] = ("method",), cols: Sequence[str] = ("task",),
           fmt: str = "markdown", show_point: bool = True, notes: dict[tuple, str] | None = None,
           note_caption: str = "") -> str:
    """The table in ``fmt`` (markdown, latex, csv, html), with its caption. ``notes`` maps a cell
    (its :data:`CELL` values) to text shown after its value (e.g. the published number beside it),
    ``note_caption`` explains them."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not accepted; accepted: {', '.join(FORMATS)}")
    if fmt == "csv":
        return selected.frame.to_csv(index=False)
    if selected.frame.empty:
        return "(no finished trials match)"
    grid = pivot(selected, rows, cols)
    best = grid.best_cells()
    header = [" / ".join(grid.row_names)] + [" / ".join(map(str, c)) for c in grid.columns]
    body = []
    for row in grid.rows:
        cells = []
        for column in grid.columns:
            record = grid.cells.get((row, column))
            if record is None:
                cells.append(("—", False))
                continue
            scale = 100.0 if record["metric"] == "roc_auc" else 1.0
            note = (notes or {}).get(tuple(record[d] for d in CELL))
            text = _cell_text(record, scale, show_point) + (f"; {note}" if note else "")
            cells.append((text, (row, column) in best))
        body.append((" / ".join(map(str, row)), cells))
    text = caption(selected, grid.added_rows) + (f" {note_caption}" if note_caption else "")
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join([name] + [f"**{c}**" if b else c for c, b in cells]) + " |" for name, cells in body]
        return "\n".join(lines + ["", text])
    if fmt == "latex":
        escape = _latex_escape
        lines = [r"\begin{table}", r"\centering", r"\begin{tabular}{l" + "c" * (len(header) - 1) + "}", r"\toprule",
                 " & ".join(escape(h) for h in header) + r" \\", r"\midrule"]
        lines += [" & ".join([escape(name)] + [rf"\textbf{{{escape(c)}}}" if b else escape(c) for c, b in cells])
                  + r" \\" for name, cells in body]
        return "\n".join(lines + [r"\bottomrule", r"\end{tabular}", rf"\caption{{{escape(text)}}}", r"\end{table}"])
    import html
    lines = ["<table class='results'>", "<caption>" + html.escape(text) + "</caption>",
             "<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead><tbody>"]
    lines += ["<tr><th>" + html.escape(name) + "</th>"
              + "".join(f"<td class='best'><b>{html.escape(c)}</b></td>" if b else f"<td>{html.escape(c)}</td>"
                        for c, b in cells) + "</tr>" for name, cells in body]
    return "\n".join(lines + ["</tbody></table>"])


def _latex_escape(text: str) -> str:
    for char, replacement in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                              ("±", r"$\pm$"), ("—", "--")):
        text = text.replace(char, replacement)
    return text


def parse_where(items: Sequence[str]) -> dict[str, list[str]]:
    """``["task=bbbp,esol", "seed=0"]`` -> ``{"task": ["bbbp", "esol"], "seed": ["0"]}``."""
    out: dict[str, list[str]] = {}
    for item in items:
        column, sep, values = item.partition("=")
        if not sep or not column or not values:
            raise ValueError(f"--where {item!r} is not accepted; accepted: COLUMN=VALUE[,VALUE...]")
        out.setdefault(column, []).extend(values.split(","))
    return out

