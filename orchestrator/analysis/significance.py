"""Significance of method differences, on the selected grid points (see :mod:`orchestrator.analysis.tables`).

* Per task (and backbone, split, label setting): each method against the baseline (Full FT),
  paired over seeds (the same seed's runs share the split, label subset and head init):
  paired t-test (default; with 3-5 seeds the exact Wilcoxon signed-rank test cannot reach
  p < 0.05, its smallest two-sided p-value with 5 pairs is 0.0625) or Wilcoxon signed-rank,
  both from SciPy; p-values Holm-corrected over the methods compared within the task
  (statsmodels' ``multipletests``).
* Across tasks: per-task ranks of the methods' seed-mean test metric (1 = best, direction-aware,
  ties averaged), average ranks, the Friedman test (SciPy) and the Nemenyi post-hoc test with its
  critical-difference diagram (scikit-posthocs).

Library choice: SciPy and statsmodels are the reference implementations of these tests;
scikit-posthocs is the maintained implementation of Nemenyi and of the CD diagram (Demšar,
2006). No statistic is computed by hand here.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass

import numpy as np
import pandas as pd

from orchestrator.analysis.tables import CELL, HIGHER_IS_BETTER, Selected

TESTS = ("ttest", "wilcoxon")
GROUP = [c for c in CELL if c != "method"]  # backbone, task, split, label_setting


def selected_runs(trials: pd.DataFrame, selected: Selected) -> pd.DataFrame:
    """The per-seed rows of each cell's selected grid point."""
    keys = selected.frame[[*CELL, "method_label"]]
    return trials.merge(keys, on=[*CELL, "method_label"], how="inner")


def paired_tests(
    trials: pd.DataFrame, selected: Selected, baseline: str = "full-ft", test: str = "ttest", alpha: float = 0.05
) -> pd.DataFrame:
    """Each method vs ``baseline`` per task, paired over seeds, Holm-corrected within the task.

    Columns: GROUP, metric, method, pairs, mean_diff (method - baseline, in the metric's units:
    a fraction for ROC-AUC; :func:`in_table_units` converts it to the tables' units; ``better``
    says whether that direction is an improvement), statistic, p, p_holm, significant.
    """
    if test not in TESTS:
        raise ValueError(f"test {test!r} is not accepted; accepted: {', '.join(TESTS)}")
    from statsmodels.stats.multitest import multipletests

    families = _paired_families(selected_runs(trials, selected), baseline, test)
    # statsmodels' Holm branch calls gc.collect() on every call, which costs ~0.1 s with the
    # store's rows in memory; frozen objects are skipped by the collector, so freeze them first.
    gc.freeze()
    try:
        for rows in families:
            testable = [r for r in rows if not np.isnan(r["p"])]
            if testable:
                reject, corrected, _, _ = multipletests([r["p"] for r in testable], alpha=alpha, method="holm")
                for r, rejected, p_holm in zip(testable, reject, corrected):
                    r["p_holm"], r["significant"] = float(p_holm), bool(rejected)
    finally:
        gc.unfreeze()
    out = [{"p_holm": np.nan, "significant": False, **r} for rows in families for r in rows]
    columns = [*GROUP, "metric", "method", "pairs", "mean_diff", "better", "statistic", "p", "p_holm", "significant"]
    return pd.DataFrame(out, columns=columns)


def missing_comparison(selected: Selected, baseline: str = "full-ft") -> str:
    """Why :func:`paired_tests` has nothing to test here, in one sentence."""
    frame = selected.frame
    methods = sorted(frame["method"].unique()) if not frame.empty else []
    if baseline not in methods:
        return (
            f"every test compares a method with {baseline}, and {baseline} did not run here (methods: "
            f"{', '.join(methods) or 'none'})"
        )
    if methods == [baseline]:
        return f"only {baseline} ran here: there is no other method to compare with it"
    with_baseline = frame[frame["method"] == baseline][GROUP].drop_duplicates()
    others = frame[frame["method"] != baseline][GROUP].drop_duplicates()
    if with_baseline.merge(others, on=GROUP).empty:
        return (
            f"{baseline} and the other methods ({', '.join(m for m in methods if m != baseline)}) never ran on "
            "the same backbone, task, split and label setting"
        )
    return f"the seeds of {baseline} and of the other methods never match (the tests pair runs by seed)"


TABLE_UNITS = {"roc_auc": (100.0, "pp (ROC-AUC %)"), "rmse": (1.0, "RMSE")}
MEAN_DIFF_IN_TABLE_UNITS = "mean_diff (table units)"


def in_table_units(tests: pd.DataFrame) -> pd.DataFrame:
    """``tests`` (from :func:`paired_tests`) with mean_diff in the unit the tables show: percentage
    points for ROC-AUC (the tables give it in %), the metric's own unit for RMSE. The column is
    renamed :data:`MEAN_DIFF_IN_TABLE_UNITS` and a ``unit`` column beside it names the unit."""
    scale = tests["metric"].map(lambda m: TABLE_UNITS.get(m, (1.0, m))[0]).astype(float)
    unit = tests["metric"].map(lambda m: TABLE_UNITS.get(m, (1.0, m))[1])
    out = tests.assign(mean_diff=tests["mean_diff"] * scale)
    out.insert(out.columns.get_loc("mean_diff") + 1, "unit", unit)
    return out.rename(columns={"mean_diff": MEAN_DIFF_IN_TABLE_UNITS})


def _paired_families(runs: pd.DataFrame, baseline: str, test: str) -> list[list[dict]]:
    """Per group (a family of comparisons), each method's paired test against the baseline.

    Vectorised: per method, the seeds of every group form one row of a ``(groups, seeds)``
    array, and SciPy tests all rows in one call (``axis=1``, NaN where a seed is missing).
    """
    from scipy.stats import ttest_rel, wilcoxon

    if runs.empty:
        return []
    wide = runs.pivot_table(index=[*GROUP, "seed"], columns="method", values="test_metric", aggfunc="first")
    if baseline not in wide.columns:
        return []
    metric = runs.groupby(GROUP)["metric"].first()
    families: dict[tuple, list[dict]] = {}
    for method in sorted(c for c in wide.columns if c != baseline):
        pairs = wide[[method, baseline]].dropna()
        if pairs.empty:
            continue
        groups = pairs.index.droplevel("seed")
        position = pairs.groupby(level=list(range(len(GROUP)))).cumcount().to_numpy()
        keys = list(dict.fromkeys(groups))
        row = pd.Index(keys).get_indexer(groups)
        x = np.full((len(keys), position.max() + 1), np.nan)
        y = x.copy()
        x[row, position], y[row, position] = pairs[method].to_numpy(), pairs[baseline].to_numpy()
        diff = x - y
        count = np.sum(~np.isnan(diff), axis=1)
        spread = np.nanmax(diff, axis=1) - np.nanmin(diff, axis=1)
        testable = (count >= 2) & ~np.isclose(spread, 0.0)
        statistic, p = np.full(len(keys), np.nan), np.full(len(keys), np.nan)
        if testable.any():
            run = ttest_rel if test == "ttest" else wilcoxon
            with np.errstate(all="ignore"):
                result = run(x[testable], y[testable], axis=1, nan_policy="omit")
            statistic[testable], p[testable] = np.asarray(result.statistic), np.asarray(result.pvalue)
        mean_diff = np.nanmean(diff, axis=1)
        for i, key in enumerate(keys):
            higher = HIGHER_IS_BETTER[metric.loc[key]]
            families.setdefault(key, []).append(
                {
                    **dict(zip(GROUP, key)),
                    "metric": metric.loc[key],
                    "method": method,
                    "pairs": int(count[i]),
                    "mean_diff": float(mean_diff[i]),
                    "better": bool(mean_diff[i] > 0) == higher,
                    "statistic": float(statistic[i]),
                    "p": float(p[i]),
                }
            )
    return [families[key] for key in sorted(families)]


@dataclass
class RankAnalysis:
    ranks: pd.DataFrame  # blocks (task, ...) x methods, 1 = best
    average_ranks: pd.Series  # method -> average rank, ascending
    friedman_statistic: float
    friedman_p: float
    nemenyi: pd.DataFrame  # method x method p-values
    dropped_blocks: list  # blocks left out because a method had no result there


def rank_analysis(selected: Selected) -> RankAnalysis:
    """Average ranks over tasks (blocks: every (backbone, task, split, label setting)), Friedman, Nemenyi."""
    import scikit_posthocs as sp
    from scipy.stats import friedmanchisquare

    frame = selected.frame.copy()
    # orient every metric so that higher is better, then rank within each block
    frame["score"] = [m if HIGHER_IS_BETTER[metric] else -m for m, metric in zip(frame["mean"], frame["metric"])]
    table = frame.pivot_table(index=GROUP, columns="method", values="score", aggfunc="first")
    complete = table.dropna()
    dropped = [tuple(i) if isinstance(i, tuple) else (i,) for i in table.index.difference(complete.index)]
    if complete.shape[1] < 3 or complete.shape[0] < 2:
        raise ValueError(
            f"ranking needs at least 3 methods on at least 2 complete blocks (tasks); have "
            f"{complete.shape[1]} methods on {complete.shape[0]} complete blocks"
            + (f" ({len(dropped)} blocks lack a method)" if dropped else "")
        )
    ranks = complete.rank(axis=1, ascending=False, method="average")
    statistic, p = friedmanchisquare(*[complete[c].to_numpy() for c in complete.columns])
    nemenyi = sp.posthoc_nemenyi_friedman(complete.reset_index(drop=True))
    return RankAnalysis(ranks, ranks.mean().sort_values(), float(statistic), float(p), nemenyi, dropped)


def critical_difference_figure(analysis: RankAnalysis):
    """The Nemenyi critical-difference diagram as a matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import scikit_posthocs as sp

    figure, axes = plt.subplots(figsize=(8, 0.6 + 0.35 * len(analysis.average_ranks)))
    sp.critical_difference_diagram(analysis.average_ranks, analysis.nemenyi, ax=axes)
    axes.set_title(
        f"average rank over {len(analysis.ranks)} blocks (1 = best); Friedman p = {analysis.friedman_p:.3g}", fontsize=9
    )
    figure.tight_layout()
    return figure
