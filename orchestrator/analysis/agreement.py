"""Do two stores agree on the trials they both hold? The same trial key names the same configuration
and seed, so a trial trained in both (on a GPU and on a CPU, from two commits, ...) should give the same
test metric up to the run-to-run noise of its device. This pairs them by key and says how far apart they are.

For the ``n`` keys in both stores, per metric, with ``d_i = test_i(store) - test_i(against)`` in table units
(ROC-AUC in points of %, RMSE as is):

* mean ``d`` and Wilcoxon's signed-rank test of ``d`` (two-sided): a systematic shift between the stores;
* median and largest ``|d|`` (and that trial): how far one trial can move;
* the seed spread for scale: per cell of the pairs (configuration without the seed), the std over seeds of
  the test metric in ``store`` where it holds two or more seeds of that cell, averaged (none when it holds
  one seed per cell).

    roft reading --store STORE --against OTHER_STORE
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from orchestrator.analysis.claims import UNITS, paired
from orchestrator.analysis.tables import CELL
from orchestrator.wording import plural
from trainables.data.tasks import HIGHER_IS_BETTER

NEEDED = [*CELL, "method_label", "metric", "seed", "trial_key", "test_metric"]
SHOWN = ["task", "backbone", "method_label", "label_setting", "seed"]


@dataclass(frozen=True)
class MetricAgreement:
    metric: str
    differences: np.ndarray  # store - other, table units, one per shared trial
    sides: str  # how the difference is taken, in words: "store minus other", with their devices where known
    p: float  # Wilcoxon signed-rank, two-sided
    largest: str  # the trial with the largest |difference|, in words
    seed_spread: float | None  # mean std over seeds of the shared cells in the store (None: one seed each)

    def line(self) -> str:
        d = self.differences
        unit = "ROC-AUC points" if self.metric == "roc_auc" else self.metric.upper()
        spread = (
            f"; for scale, the std over seeds of the same cells in the store is {self.seed_spread:.2f} on average"
            if self.seed_spread is not None
            else "; the store holds one seed of each of these cells, so no seed spread to compare with"
        )
        return (
            f"{self.metric}: {plural(len(d), 'trial')}, {self.sides} {np.mean(d):+.2f} {unit} on average "
            f"(Wilcoxon p = {self.p:.3g}), median |difference| {np.median(np.abs(d)):.2f}, "
            f"largest {np.max(np.abs(d)):.2f} ({self.largest}){spread}"
        )


def _seed_spread(store_rows: pd.DataFrame, shared: pd.DataFrame, scale: float) -> float | None:
    cells = [*CELL, "method_label"]
    mine = store_rows.merge(shared[cells].drop_duplicates(), on=cells, how="inner")
    spreads = mine.groupby(cells)["test_metric"].agg(["std", "count"])
    spreads = spreads[spreads["count"] >= 2]
    if spreads.empty:
        return None
    return float((spreads["std"] * scale).mean())


def _sides(shared: pd.DataFrame) -> str:
    """ "store minus other", naming each side's device when the rows record one device per side."""

    def device(column: str) -> str:
        values = shared[column].dropna().unique() if column in shared else []
        return f" ({values[0]})" if len(values) == 1 else ""

    return f"store{device('device')} minus other{device('device_other')}"


def agreement(store_rows: pd.DataFrame, other_rows: pd.DataFrame) -> list[MetricAgreement]:
    """Per metric, how the test metrics of the trials in both frames differ (see the module docstring).

    ``store_rows`` and ``other_rows``: trial rows with :data:`NEEDED` columns, one per trial key."""
    for name, frame in (("store", store_rows), ("other", other_rows)):
        missing = [c for c in NEEDED if c not in frame]
        if missing:
            raise ValueError(f"the {name}'s trials lack column(s) {missing}; needed: {', '.join(NEEDED)}")
    mine = store_rows[store_rows["test_metric"].notna()].drop_duplicates("trial_key", keep="last")
    theirs = other_rows[other_rows["test_metric"].notna()].drop_duplicates("trial_key", keep="last")
    carried = ["trial_key", "test_metric", *(["device"] if "device" in theirs else [])]
    shared = mine.merge(theirs[carried], on="trial_key", suffixes=("", "_other"))
    results = []
    # classification metrics (higher is better) first, then regression ones, each by name
    for metric, rows in sorted(shared.groupby("metric"), key=lambda item: (not HIGHER_IS_BETTER[item[0]], item[0])):
        scale = UNITS.get(metric, 1.0)
        differences = ((rows["test_metric"] - rows["test_metric_other"]) * scale).to_numpy()
        worst = rows.iloc[int(np.argmax(np.abs(differences)))]
        largest = " ".join(f"{worst[c]}" if c != "seed" else f"seed {worst[c]}" for c in SHOWN)
        results.append(
            MetricAgreement(
                str(metric), differences, _sides(rows), paired(differences).p, largest, _seed_spread(mine, rows, scale)
            )
        )
    return results


def agreement_text(store_rows: pd.DataFrame, other_rows: pd.DataFrame, other_name: str) -> str:
    """One line of how many trials both hold, then one line per metric (:meth:`MetricAgreement.line`)."""
    results = agreement(store_rows, other_rows)
    shared = sum(len(r.differences) for r in results)
    head = (
        f"{shared} of the {len(other_rows['trial_key'].unique()):,} trials in {other_name} are also in the store "
        f"(same trial key: configuration and seed)"
    )
    if not results:
        return head + "; nothing to compare."
    return "\n".join([head + ":", *(r.line() for r in results)])
