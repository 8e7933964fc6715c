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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from orchestrator.analysis.names import label_setting_order
from orchestrator.store.results import ResultStore
from trainables.data.tasks import HIGHER_IS_BETTER

CELL = ("backbone", "method", "task", "split", "label_setting")
SELECTIONS = ("val", "test")
FORMATS = ("markdown", "latex", "csv", "html")
COLUMNS = [
    *CELL,
    "method_label",
    "mechanism",
    "pretraining",
    "metric",
    "seed",
    "trial_key",
    "val_metric",
    "test_metric",
]


def where_expression(where: Mapping[str, Sequence[str]] | None):
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
            raise ValueError(
                f"--where {column}={','.join(values)}: {column} holds {kind} values; accepted: "
                f"{convert.__name__} values"
            ) from None
        term = ds.field(column).isin(typed)
        expression = term if expression is None else expression & term
    return expression


def load_trials(
    store: ResultStore, where: Mapping[str, Sequence[str]] | None = None, columns: Sequence[str] = COLUMNS
) -> pd.DataFrame:
    """Trial rows (one per trial key) whose columns match ``where`` (column -> accepted values)."""
    expression = where_expression(where)
    frame = store.scan("trials", columns=list(dict.fromkeys([*columns, "trial_key"])), filter=expression).to_pandas()
    if frame.empty:
        return pd.DataFrame(columns=list(columns))
    return frame.drop_duplicates("trial_key", keep="last")


@dataclass(frozen=True)
class Selected:
    """Per cell: the chosen grid point and its test metric over seeds."""

    # CELL + metric, method_label, mean, std, seeds, val_mean, points (grid points considered), uneven_seeds
    # (whether those points have different seed counts so far: the choice compared means over different seeds)
    frame: pd.DataFrame
    selection: str
    ddof: int


def direction_sign(metrics: pd.Series) -> pd.Series:
    """+1 for each metric where higher is better (ROC-AUC), -1 where lower is (RMSE): ``sign * value`` orders
    values best-last for every metric."""
    return metrics.map(lambda metric: 1.0 if HIGHER_IS_BETTER[metric] else -1.0)


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
    return (
        trials.groupby(list(by), sort=True)
        .agg(
            mean=("test_metric", "mean"),
            val_mean=("val_metric", "mean"),
            seeds=("test_metric", "count"),
            std=("test_metric", lambda s: s.std(ddof=ddof) if len(s) > ddof else np.nan),
        )
        .reset_index()
    )


def select(trials: pd.DataFrame, selection: str = "val", ddof: int = 0) -> Selected:
    """Choose one grid point per cell by seed-mean validation (or test) metric."""
    if selection not in SELECTIONS:
        raise ValueError(f"selection {selection!r} is not accepted; accepted: {', '.join(SELECTIONS)}")
    if ddof not in (0, 1):
        raise ValueError(f"ddof={ddof} is not accepted; accepted: 0 (population) or 1 (sample)")
    columns = [*CELL, "metric", "method_label", "mean", "std", "seeds", "val_mean", "points", "uneven_seeds"]
    if trials.empty:
        return Selected(pd.DataFrame(columns=columns), selection, ddof)
    per_point = seed_summary(trials, [*CELL, "metric", "method_label"], ddof)
    score = per_point["val_mean" if selection == "val" else "mean"]
    per_point["_key"] = (score * direction_sign(per_point["metric"])).fillna(-np.inf)
    per_point["points"] = per_point.groupby([*CELL])["method_label"].transform("count")
    # a sweep mid-run: the cell's points have different seed counts, so the choice compared unequal means
    per_point["uneven_seeds"] = per_point.groupby([*CELL])["seeds"].transform("nunique") > 1
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
        best: dict[tuple, tuple] = {}
        for row, column in sorted(self.best_cells()):
            best.setdefault(column, row)
        return best

    def best_cells(self) -> set[tuple[tuple, tuple]]:
        """The ``(row, column)`` of each column's best mean (direction-aware), compared only within
        one metric and one value of the :attr:`added_rows` (never ROC-AUC against RMSE, nor one
        backbone's cells against another's when the backbone was added to the rows); a cell alone
        in its comparison is no best one."""
        blocks: dict[tuple, list[tuple[tuple, dict]]] = {}
        for (row, column), record in self.cells.items():
            if not pd.isna(record["mean"]):
                blocks.setdefault((column, row[: len(self.added_rows)], record["metric"]), []).append((row, record))
        best = set()
        for (column, _, metric), records in blocks.items():
            if len(records) < 2:  # nothing to compare with: a one-method table has no best cell
                continue
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


def caption(selected: Selected, added_rows: Sequence[str] = (), marked: bool = True) -> str:
    """The table's caption; ``marked``: whether any cell is in bold (none is when every column holds
    one value per comparison)."""
    protocol = (
        "hyper-parameters selected per cell by the best seed-mean validation metric"
        if selected.selection == "val"
        else "OPTIMISTIC: hyper-parameters selected per cell by the best seed-mean test metric (the reference "
        "code's protocol)"
    )
    best = "best per column in bold" if marked else "no cell in bold (one value per column: nothing to compare)"
    text = (
        f"Test metric at the best-validation epoch, mean ± std over seeds (std with ddof={selected.ddof}), "
        f"n = seeds; {protocol}. ROC-AUC in %, higher is better; RMSE, lower is better; {best}; "
        "— marks a missing cell."
    )
    if selected.frame.get("uneven_seeds", pd.Series(dtype=bool)).eq(True).any():
        text += (
            " † marks a cell whose grid points have different seed counts so far (a sweep mid-run): its choice "
            "compared means over different seeds."
        )
    if added_rows:
        names = ", ".join(added_rows)
        text += (
            f" Rows are also split by {names}: the selected trials hold several values of "
            f"{'it' if len(added_rows) == 1 else 'each'} (--where {added_rows[0]}=VALUE keeps one); the best "
            f"is marked per column within each {names}."
        )
    return text


PUBLISHED_COLUMNS = [
    "published_mean",
    "published_std",
    "published_seeds",
    "published_difference",
    "within_2se",
    "anchor",
]
CSV_COLUMNS = [*CELL, "metric", "method_label", "mean", "std", "seeds", "val_mean", "points"]


def table_frame(
    selected: Selected,
    rows: Sequence[str] = ("method",),
    cols: Sequence[str] = ("task",),
    published: pd.DataFrame | None = None,
    published_caption: str = "",
) -> pd.DataFrame:
    """The table as data: one row per selected cell, from which :func:`render_frame` prints every format.

    Columns: the cell (:data:`CELL`), ``metric``, the selected grid point ``method_label`` (of
    ``points`` considered), ``mean`` / ``std`` of the test metric over ``seeds`` seeds (the metric's
    own unit, as stored: ROC-AUC as a fraction; the printed tables show it in %), ``val_mean``,
    ``best`` (the bold cells: each column's best within one metric and value of the added rows,
    only where there are at least two to compare) and, when ``published`` is given (a frame of
    :data:`CELL` + :data:`PUBLISHED_COLUMNS`, :func:`orchestrator.analysis.anchors.cell_values`),
    the published number beside the cells it matches (null elsewhere).

    ``frame.attrs`` holds the layout: ``rows`` (row dimensions, :attr:`Grid.added_rows` first),
    ``cols``, ``added_rows``, ``selection``, ``ddof``, ``caption`` and ``published`` (whether the
    published columns are there).
    """
    grid = pivot(selected, rows, cols)
    frame = selected.frame.reset_index(drop=True).copy()
    best = grid.best_cells()
    frame["best"] = [
        (tuple(r[d] for d in grid.row_names), tuple(r[d] for d in grid.column_names)) in best
        for r in frame.to_dict("records")
    ]
    if published is not None:
        values = published[[*CELL, *PUBLISHED_COLUMNS]].drop_duplicates(list(CELL))
        frame = (
            frame.merge(values, on=list(CELL), how="left")
            if len(values)
            else frame.assign(**{c: np.nan for c in PUBLISHED_COLUMNS})
        )
    text = caption(selected, grid.added_rows, marked=bool(best) or frame.empty)
    frame.attrs = {
        "rows": grid.row_names,
        "cols": grid.column_names,
        "added_rows": grid.added_rows,
        "selection": selected.selection,
        "ddof": selected.ddof,
        "published": published is not None,
        "caption": text + (f" {published_caption}" if published_caption else ""),
    }
    return frame


def _order(names: Sequence[str], values: tuple) -> tuple:
    """Sort key of a row or column: its values in order, label settings by size (16 < 64 < 256 < full)."""
    return tuple(label_setting_order(v) if name == "label_setting" else (v,) for name, v in zip(names, values))


def _cell_text(record, scale: float, show_point: bool) -> str:
    std = "n/a" if pd.isna(record["std"]) else f"{record['std'] * scale:.2f}"
    text = f"{record['mean'] * scale:.2f} ± {std} (n={record['seeds']})"
    text += f" [{record['method_label']}]" if show_point and record["points"] > 1 else ""
    uneven = record.get("uneven_seeds")
    return text + (" †" if isinstance(uneven, (bool, np.bool_)) and uneven else "")


def _published_text(record, scale: float) -> str:
    """``published 65.8 ± 4.5 (n=10; Δ -2.2, within 2 SE)`` for a cell with a published number, else ''."""
    from orchestrator.analysis.anchors import note_text

    if pd.isna(record.get("published_mean", float("nan"))):
        return ""
    return note_text(
        record["published_mean"] * scale,
        record["published_std"] * scale,
        int(record["published_seeds"]),
        record["published_difference"] * scale,
        bool(record["within_2se"]),
    )


def render_frame(
    frame: pd.DataFrame,
    fmt: str = "markdown",
    show_point: bool = True,
    cell_text: Callable[[dict, float], str] | None = None,
) -> str:
    """The table of :func:`table_frame` in ``fmt`` (markdown, latex, csv, html), with its caption.

    Every number printed comes from ``frame``: the cells, their bold mark, the published numbers
    beside them; csv prints the frame's :data:`CSV_COLUMNS` (and the published columns when the
    frame has them), or the columns its ``attrs["csv_columns"]`` names. ``cell_text(record, scale)``
    writes a cell instead of the mean ± std (``scale``: 100 for ROC-AUC, printed in %, else 1).
    """
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not accepted; accepted: {', '.join(FORMATS)}")
    if fmt == "csv":
        csv_columns = frame.attrs.get("csv_columns") or CSV_COLUMNS + (
            PUBLISHED_COLUMNS if frame.attrs.get("published") else []
        )
        return frame[csv_columns].to_csv(index=False)
    if frame.empty:
        return "(no finished trials match)"
    row_names, column_names = tuple(frame.attrs["rows"]), tuple(frame.attrs["cols"])
    cells = {(tuple(r[d] for d in row_names), tuple(r[d] for d in column_names)): r for r in frame.to_dict("records")}
    rows = sorted({row for row, _ in cells}, key=lambda row: _order(row_names, row))
    columns = sorted({column for _, column in cells}, key=lambda column: _order(column_names, column))
    header = [" / ".join(row_names)] + [" / ".join(map(str, c)) for c in columns]
    body = []
    for row in rows:
        texts = []
        for column in columns:
            record = cells.get((row, column))
            if record is None:
                texts.append(("—", False))
                continue
            scale = 100.0 if record["metric"] == "roc_auc" else 1.0
            if cell_text is not None:
                texts.append((cell_text(record, scale), bool(record["best"])))
                continue
            note = _published_text(record, scale)
            texts.append((_cell_text(record, scale, show_point) + (f"; {note}" if note else ""), bool(record["best"])))
        body.append((" / ".join(map(str, row)), texts))
    text = frame.attrs["caption"]
    if fmt == "markdown":
        md = markdown_escape
        lines = ["| " + " | ".join(map(md, header)) + " |", "|" + "---|" * len(header)]
        lines += [
            "| " + " | ".join([md(name)] + [f"**{md(c)}**" if b else md(c) for c, b in texts]) + " |"
            for name, texts in body
        ]
        caption = text.replace("<", "&lt;").replace(">", "&gt;")  # prose below the table: no raw HTML
        return "\n".join(lines + ["", caption])
    if fmt == "latex":
        escape = _latex_escape
        lines = [
            r"\begin{table}",
            r"\centering",
            r"\begin{tabular}{l" + "c" * (len(header) - 1) + "}",
            r"\toprule",
            " & ".join(escape(h) for h in header) + r" \\",
            r"\midrule",
        ]
        lines += [
            " & ".join([escape(name)] + [rf"\textbf{{{escape(c)}}}" if b else escape(c) for c, b in texts]) + r" \\"
            for name, texts in body
        ]
        return "\n".join(lines + [r"\bottomrule", r"\end{tabular}", rf"\caption{{{escape(text)}}}", r"\end{table}"])
    import html

    lines = [
        "<table class='results'>",
        "<caption>" + html.escape(text) + "</caption>",
        "<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead><tbody>",
    ]
    lines += [
        "<tr><th>"
        + html.escape(name)
        + "</th>"
        + "".join(
            f"<td class='best'><b>{html.escape(c)}</b></td>" if b else f"<td>{html.escape(c)}</td>" for c, b in texts
        )
        + "</tr>"
        for name, texts in body
    ]
    return "\n".join(lines + ["</tbody></table>"])


def render(
    selected: Selected,
    rows: Sequence[str] = ("method",),
    cols: Sequence[str] = ("task",),
    fmt: str = "markdown",
    show_point: bool = True,
    published: pd.DataFrame | None = None,
    published_caption: str = "",
) -> str:
    """:func:`render_frame` of :func:`table_frame`: the table in ``fmt`` (markdown, latex, csv, html)."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not accepted; accepted: {', '.join(FORMATS)}")
    if selected.frame.empty:
        return selected.frame.to_csv(index=False) if fmt == "csv" else "(no finished trials match)"
    return render_frame(table_frame(selected, rows, cols, published, published_caption), fmt, show_point)


def markdown_escape(text: str) -> str:
    """``text`` as a Markdown table cell shows it: no cell break (``|``), emphasis, code or raw HTML."""
    replacements = {"\\": "\\\\", "|": "\\|", "*": "\\*", "`": "\\`", "<": "&lt;", ">": "&gt;"}
    return "".join(replacements.get(char, char) for char in text)


def _latex_escape(text: str) -> str:
    """``text`` as LaTeX prints it literally: every special character escaped (no control sequence passes)."""
    replacements = {
        "\\": r"\textbackslash{}",
        "&": r"\&",
        "%": r"\%",
        "_": r"\_",
        "#": r"\#",
        "$": r"\$",
        "{": r"\{",
        "}": r"\}",
        "~": r"\textasciitilde{}",
        "^": r"\textasciicircum{}",
        "±": r"$\pm$",
        "—": "--",
    }
    return "".join(replacements.get(char, char) for char in text)


def parse_where(items: Sequence[str]) -> dict[str, list[str]]:
    """``["task=bbbp,esol", "seed=0"]`` -> ``{"task": ["bbbp", "esol"], "seed": ["0"]}``."""
    out: dict[str, list[str]] = {}
    for item in items:
        column, sep, values = item.partition("=")
        if not sep or not column or not values:
            raise ValueError(f"--where {item!r} is not accepted; accepted: COLUMN=VALUE[,VALUE...]")
        out.setdefault(column, []).extend(values.split(","))
    return out
