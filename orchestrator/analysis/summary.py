"""Tables from the store: mean +- std over seeds per cell.

A cell is (backbone, method label, task, split, label setting). The std is over seeds with
``ddof`` degrees of freedom (0 = population std, the reference code's numpy default); the
caption states it and each cell shows its seed count.
"""

from __future__ import annotations

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
    if summary.empty:
        return "(the store holds no finished trials)"
    header = "| backbone | method | task | split | label setting | metric | test (mean ± std) | seeds |"
    lines = [header, "|" + "---|" * 8]
    for row in summary.itertuples(index=False):
        scale = 100.0 if row.metric == "roc_auc" else 1.0
        std = "n/a" if pd.isna(row.std) else f"{row.std * scale:.2f}"
        lines.append(f"| {row.backbone} | {row.method_label} | {row.task} | {row.split} | {row.label_setting} | "
                     f"{row.metric}{' (%)' if scale != 1 else ''} | {row.mean * scale:.2f} ± {std} | {row.seeds} |")
    lines.append("")
    lines.append(f"Test metric at the best-validation epoch; mean ± std over seeds (std with ddof={ddof}); "
                 "ROC-AUC in %, higher is better; RMSE lower is better.")
    return "\n".join(lines)


def store_table(store: ResultStore, ddof: int = 0) -> str:
    trials = store.read_trials(columns=[*CELL, "metric", "trial_key", "val_metric", "test_metric"]).to_pandas()
    return markdown_table(summarize(trials, ddof), ddof)
