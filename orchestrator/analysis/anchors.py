"""Published numbers beside measured ones (``roft table --anchors``, the report).

The published rows ship as data (``published.yaml`` beside this module), each with its source,
the epoch its test metric is taken at, and how sure the figures are. A measured cell is compared
with a published row only when its configuration is the row's: one of the row's backbones, Full
FT, scaffold split, all training labels, the published recipe (100 epochs, batch 32, lr 1e-3,
dropout 0.5, weight decay 0, GIN 5 x 300), and a task the row reports. Cells without such a row
get nothing.

Like is compared with like: for a row whose source reports the test metric at the best
validation epoch, the measured value is each trial's test metric at its best validation epoch
(the trial row's); for a row reporting the last epoch, it is each trial's test metric at its last
epoch, read from the stored epoch curves.

For a cell of ``n`` seeds with mean ``m`` and std ``s`` (``ddof`` as the table's) against a
published ``M +- S`` over ``N`` seeds, the difference is ``m - M`` and it lies *within two
combined standard errors* when ``|m - M| <= 2 sqrt(s^2/n + S^2/N)``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

PUBLISHED = Path(__file__).with_name("published.yaml")
EPOCH_RULES = ("best-val", "last")
CONFIDENCES = ("checked", "recalled")
TRIAL_COLUMNS = ["num_layers", "emb_dim", "trial_config"]  # what matching needs beyond the tables' columns
RECIPE = {
    "method": "full-ft",
    "split": "scaffold",
    "label_setting": "full",
    "epochs": 100,
    "batch_size": 32,
    "lr": 1e-3,
    "dropout": 0.5,
    "weight_decay": 0.0,
    "num_layers": 5,
    "emb_dim": 300,
}


@dataclass(frozen=True)
class PublishedRow:
    """One published row: per task ``(mean, std)`` in the metric's table unit (ROC-AUC in %)."""

    id: str
    source: str
    backbones: tuple[str, ...]
    architecture: str
    pretraining: str
    seeds: int
    epoch: str
    epoch_evidence: str
    confidence: str
    metric: str
    values: dict[str, tuple[float, float]]

    def short(self) -> str:
        return f"{self.id}, {self.epoch} epoch, {self.confidence}"


@lru_cache(maxsize=1)
def published_rows(path: Path = PUBLISHED) -> tuple[PublishedRow, ...]:
    """The shipped published rows (validated: a malformed entry names itself)."""
    rows = []
    for entry in yaml.safe_load(path.read_text()):
        where = f"{path.name}, entry {entry.get('id', '?')!r}"
        if entry.get("epoch") not in EPOCH_RULES:
            raise ValueError(
                f"{where}: epoch {entry.get('epoch')!r} is not accepted; accepted: {', '.join(EPOCH_RULES)}"
            )
        if entry.get("confidence") not in CONFIDENCES:
            raise ValueError(
                f"{where}: confidence {entry.get('confidence')!r} is not accepted; accepted: {', '.join(CONFIDENCES)}"
            )
        values = {task: (float(mean), float(std)) for task, (mean, std) in entry["roc_auc"].items()}
        rows.append(
            PublishedRow(
                entry["id"],
                entry["source"],
                tuple(entry["backbones"]),
                entry["architecture"],
                entry["pretraining"],
                int(entry["seeds"]),
                entry["epoch"],
                entry["epoch_evidence"],
                entry["confidence"],
                "roc_auc",
                values,
            )
        )
    ids = [row.id for row in rows]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path.name}: duplicate ids {sorted({i for i in ids if ids.count(i) > 1})}")
    return tuple(rows)


def matching_row(backbone: str, task: str) -> PublishedRow | None:
    """The published row describing ``backbone`` on ``task``, if any."""
    for row in published_rows():
        if backbone in row.backbones and task in row.values:
            return row
    return None


def needs_curves(trials: pd.DataFrame) -> bool:
    """Whether comparing ``trials`` needs their epoch curves (a matching source reports the last epoch)."""
    cells = trials[["backbone", "task"]].drop_duplicates().itertuples(index=False) if not trials.empty else []
    return any((row := matching_row(b, t)) is not None and row.epoch == "last" for b, t in cells)


def _recipe_matches(trial: pd.Series) -> bool:
    """Whether a trial ran the published configuration (a row without its configuration never matches)."""
    if (
        not isinstance(trial.get("trial_config"), str)
        or pd.isna(trial.get("num_layers"))
        or pd.isna(trial.get("emb_dim"))
    ):
        return False
    config = json.loads(trial["trial_config"])
    recipe = config.get("recipe", {})
    values = {
        "method": trial["method"],
        "split": trial["split"],
        "label_setting": trial["label_setting"],
        "epochs": recipe.get("epochs"),
        "batch_size": recipe.get("batch_size"),
        "lr": recipe.get("lr"),
        "dropout": recipe.get("dropout"),
        "weight_decay": recipe.get("weight_decay"),
        "num_layers": int(trial["num_layers"]),
        "emb_dim": int(trial["emb_dim"]),
    }
    return all(values[k] == v if not isinstance(v, float) else math.isclose(values[k], v) for k, v in RECIPE.items())


def compare(trials: pd.DataFrame, epochs: pd.DataFrame | None, ddof: int = 0) -> pd.DataFrame:
    """One row per measured (backbone, task) cell that a published row describes.

    ``trials``: trial rows with ``trial_key, backbone, task, method, split, label_setting, metric,
    num_layers, emb_dim, trial_config, test_metric``; ``epochs``: epoch curves (``trial_key,
    epoch, test_metric``), needed only for rows whose source reports the last epoch.
    Values are in the tables' unit (ROC-AUC in %).
    """
    columns = [
        "backbone",
        "task",
        "mean",
        "std",
        "seeds",
        "published_mean",
        "published_std",
        "published_seeds",
        "difference",
        "within_2se",
        "epoch",
        "anchor",
        "source",
        "confidence",
    ]
    if trials.empty:
        return pd.DataFrame(columns=columns)
    trials = trials.drop_duplicates("trial_key")
    out = []
    for (backbone, task), cell in trials.groupby(["backbone", "task"], sort=True):
        row = matching_row(backbone, task)
        if row is None:
            continue
        cell = cell[cell.apply(_recipe_matches, axis=1) & (cell["metric"] == row.metric)]
        if cell.empty:
            continue
        values = _measured(cell, epochs, row.epoch) * 100.0
        if len(values) == 0:
            continue
        mean = float(np.mean(values))
        std = float(np.std(values, ddof=ddof)) if len(values) > ddof else float("nan")
        published_mean, published_std = row.values[task]
        se = math.sqrt((std**2 if not math.isnan(std) else 0.0) / len(values) + published_std**2 / row.seeds)
        difference = mean - published_mean
        out.append(
            {
                "backbone": backbone,
                "task": task,
                "mean": mean,
                "std": std,
                "seeds": len(values),
                "published_mean": published_mean,
                "published_std": published_std,
                "published_seeds": row.seeds,
                "difference": difference,
                "within_2se": bool(abs(difference) <= 2 * se),
                "epoch": row.epoch,
                "anchor": row.id,
                "source": row.source,
                "confidence": row.confidence,
            }
        )
    return pd.DataFrame(out, columns=columns)


def _measured(cell: pd.DataFrame, epochs: pd.DataFrame | None, rule: str) -> np.ndarray:
    """Each trial's test metric at the epoch the published source reports."""
    if rule == "best-val":
        return cell["test_metric"].to_numpy(dtype=float)
    if epochs is None:
        raise ValueError("comparing with a source that reports the last epoch needs the stored epoch curves")
    curves = epochs[epochs["trial_key"].isin(cell["trial_key"])]
    last = curves.sort_values("epoch").groupby("trial_key").tail(1)
    return last["test_metric"].to_numpy(dtype=float)


def note_text(
    published_mean: float, published_std: float, published_seeds: int, difference: float, within_2se: bool
) -> str:
    """``published 65.8 ± 4.5 (n=10; Δ -0.6, within 2 SE)``, from values in the tables' unit."""
    verdict = "within 2 SE" if within_2se else "outside 2 SE"
    return f"published {published_mean:.1f} ± {published_std:.1f} (n={published_seeds}; Δ {difference:+.1f}, {verdict})"


def cell_notes(comparison: pd.DataFrame) -> dict[tuple, str]:
    """Table cell ``(backbone, method, task, split, label_setting)`` -> ``"published 65.8 ± 4.5 (n=10;
    Δ -0.6, within 2 SE)"``; only the published configuration's cells (Full FT, scaffold, full labels)."""
    return {
        (r.backbone, RECIPE["method"], r.task, RECIPE["split"], RECIPE["label_setting"]): note_text(
            r.published_mean, r.published_std, r.published_seeds, r.difference, r.within_2se
        )
        for r in comparison.itertuples(index=False)
    }


CELL_VALUE_COLUMNS = [
    "backbone",
    "method",
    "task",
    "split",
    "label_setting",
    "published_mean",
    "published_std",
    "published_seeds",
    "published_difference",
    "within_2se",
    "anchor",
]


def cell_values(comparison: pd.DataFrame) -> pd.DataFrame:
    """The published numbers by table cell (the published configuration's: Full FT, scaffold, full
    labels), in the metric's own unit as the store keeps it (ROC-AUC as a fraction): ``published_mean``,
    ``published_std``, ``published_seeds``, ``published_difference`` (measured - published, the
    measured value taken at the epoch the source reports), ``within_2se``, ``anchor`` (the published
    row's id)."""
    if comparison.empty:
        return pd.DataFrame(columns=CELL_VALUE_COLUMNS)
    scale = 100.0  # the published rows are ROC-AUC, in %
    return pd.DataFrame(
        {
            "backbone": comparison["backbone"],
            "method": RECIPE["method"],
            "task": comparison["task"],
            "split": RECIPE["split"],
            "label_setting": RECIPE["label_setting"],
            "published_mean": comparison["published_mean"] / scale,
            "published_std": comparison["published_std"] / scale,
            "published_seeds": comparison["published_seeds"].astype(int),
            "published_difference": comparison["difference"] / scale,
            "within_2se": comparison["within_2se"].astype(bool),
            "anchor": comparison["anchor"],
        },
        columns=CELL_VALUE_COLUMNS,
    ).reset_index(drop=True)


def caption(comparison: pd.DataFrame) -> str:
    """Which published rows appear, and at which epoch each measured value was taken."""
    if comparison.empty:
        return "No cell matches a published configuration (GIN 5x300, Full FT, scaffold, full labels, 100 epochs)."
    parts = []
    for anchor, rows in comparison.groupby("anchor", sort=True):
        first = rows.iloc[0]
        at = "the best-validation epoch" if first["epoch"] == "best-val" else "the last epoch (100)"
        parts.append(
            f"{anchor}: {first['source']} ({first['confidence']}); measured values taken at {at}, as the source reports"
        )
    return (
        "Published mean ± std beside matching cells; Δ = measured − published, 'within 2 SE' when "
        "|Δ| ≤ 2·sqrt(s²/n + S²/N). " + "; ".join(parts) + "."
    )


def render(comparison: pd.DataFrame) -> str:
    """The comparison as a markdown table with its caption."""
    lines = ["| backbone | task | measured | published | Δ | within 2 SE | epoch | source |", "|" + "---|" * 8]
    for r in comparison.itertuples(index=False):
        std = "n/a" if math.isnan(r.std) else f"{r.std:.1f}"
        lines.append(
            f"| {r.backbone} | {r.task} | {r.mean:.1f} ± {std} (n={r.seeds}) | {r.published_mean:.1f} ± "
            f"{r.published_std:.1f} (n={r.published_seeds}) | {r.difference:+.1f} | "
            f"{'yes' if r.within_2se else 'no'} | {r.epoch} | {r.anchor} |"
        )
    return "\n".join(lines + ["", caption(comparison)])


def published_comparison(store, trials: pd.DataFrame, ddof: int = 0) -> pd.DataFrame:
    """:func:`compare` of ``trials`` from ``store`` (loaded with :data:`TRIAL_COLUMNS` among their
    columns), reading the epoch curves only when a matching source reports the last epoch."""
    import pyarrow.dataset as ds

    if trials.empty:
        return compare(trials, None, ddof)
    epochs = None
    if needs_curves(trials):
        epochs = store.scan(
            "epochs",
            columns=["trial_key", "epoch", "test_metric"],
            filter=ds.field("trial_key").isin(trials["trial_key"].tolist()),
        ).to_pandas()
    return compare(trials, epochs, ddof)
