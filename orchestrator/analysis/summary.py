"""Tables from the store: mean +- std over seeds per cell.

A cell is (backbone, method label, task, split, label setting). The std is over seeds with
``ddof`` degrees of freedom (0 = population std, the reference code's numpy default); the
caption states it and each cell shows its seed count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from orchestrator.analysis.tables import seed_summary
from orchestrator.store.results import ResultStore

CELL = ["backbone", "method_label", "task", "split", "label_setting"]


def summarize(trials: pd.DataFrame, ddof: int = 0) -> pd.DataFrame:
    """One row per cell: metric, mean, std, seeds (rows with the same trial key counted once)."""
    if trials.empty:
        return pd.DataFrame(columns=[*CELL, "metric", "mean", "std", "seeds"])
    return seed_summary(trials, [*CELL, "metric"], ddof)[[*CELL, "metric", "mean", "std", "seeds"]]


def markdown_table(summary: pd.DataFrame, ddof: int = 0) -> str:
    """Markdown rendering of :func:`summarize` with a caption."""
    from orchestrator.analysis.tables import markdown_escape as md

    if summary.empty:
        return "(the store holds no finished trials)"
    header = "| backbone | method | task | split | label setting | metric | test (mean ± std) | seeds |"
    lines = [header, "|" + "---|" * 8]
    for row in summary.itertuples(index=False):
        scale = 100.0 if row.metric == "roc_auc" else 1.0
        std = "n/a" if pd.isna(row.std) else f"{row.std * scale:.2f}"
        names = [md(str(value)) for value in (row.backbone, row.method_label, row.task, row.split, row.label_setting)]
        lines.append(
            f"| {' | '.join(names)} | "
            f"{md(str(row.metric))}{' (%)' if scale != 1 else ''} | {row.mean * scale:.2f} ± {std} | {row.seeds} |"
        )
    lines.append("")
    lines.append(
        f"Test metric at the best-validation epoch; mean ± std over seeds (std with ddof={ddof}); "
        "ROC-AUC in %, higher is better; RMSE lower is better."
    )
    return "\n".join(lines)


def store_table(store: ResultStore, ddof: int = 0, where: Mapping[str, Sequence[str]] | None = None) -> str:
    """Every grid point of the store (``roft table --all-points``, and the table a sweep prints),
    restricted to the rows matching ``where`` (column -> accepted values, as ``--where`` gives them;
    ValueError for an unknown column or a value of the wrong type)."""
    from orchestrator.analysis.tables import where_expression

    expression = where_expression(where)
    columns = [*CELL, "metric", "trial_key", "val_metric", "test_metric"]
    table = store.read_trials(columns=list(dict.fromkeys([*columns, *(where or {})])))
    if expression is not None:
        table = table.filter(expression)
    summary = summarize(table.select(columns).to_pandas(), ddof)
    if summary.empty and where:
        shown = " ".join(f"{column}={','.join(map(str, values))}" for column, values in where.items())
        return f"(no finished trials match --where {shown})"
    return markdown_table(summary, ddof)
