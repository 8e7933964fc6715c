import numpy as np
import pandas as pd
import pytest
from scipy.stats import ttest_rel, wilcoxon

from orchestrator.analysis.significance import critical_difference_figure, paired_tests, rank_analysis
from orchestrator.analysis.tables import select

SEEDS = [0, 1, 2, 3, 4]
BASE = np.array([0.70, 0.72, 0.71, 0.69, 0.70])
GAIN = np.array([0.05, 0.06, 0.05, 0.07, 0.06])  # always better: significant
NOISE = np.array([0.01, -0.01, 0.02, -0.02, 0.0])  # no effect


def frame(rows):
    return pd.DataFrame(rows, columns=["backbone", "method", "task", "split", "label_setting", "method_label",
                                       "metric", "seed", "trial_key", "val_metric", "test_metric"])


def runs(task, metric, per_method):
    rows = []
    for method, values in per_method.items():
        for seed, value in zip(SEEDS, values):
            rows.append(("b", method, task, "scaffold", "full", method, metric, seed, f"{task}-{method}-{seed}",
                         value, value))
    return rows


def test_paired_tests_find_the_known_effect_and_pair_by_seed():
    trials = frame(runs("bbbp", "roc_auc", {"full-ft": BASE, "good": BASE + GAIN, "same": BASE + NOISE}))
    shuffled = trials.sample(frac=1.0, random_state=0)  # pairing must follow the seed, not the row order
    result = paired_tests(shuffled, select(shuffled)).set_index("method")
    assert result.loc["good", "p"] == pytest.approx(ttest_rel(BASE + GAIN, BASE).pvalue)
    assert result.loc["good", "significant"] and result.loc["good", "better"]
    assert not result.loc["same", "significant"]
    # Holm over the two comparisons: the smaller p doubled, the larger kept (it is larger still)
    assert result.loc["good", "p_holm"] == pytest.approx(2 * result.loc["good", "p"])
    wil = paired_tests(shuffled, select(shuffled), test="wilcoxon").set_index("method")
    assert wil.loc["good", "p"] == pytest.approx(wilcoxon(BASE + GAIN, BASE).pvalue)  # 0.0625: 5 pairs
    assert not wil.loc["good", "significant"]


def test_lower_rmse_is_better():
    trials = frame(runs("esol", "rmse", {"full-ft": BASE + 1, "worse": BASE + 1 + GAIN}))
    result = paired_tests(trials, select(trials)).set_index("method")
    assert result.loc["worse", "mean_diff"] > 0 and not result.loc["worse", "better"]


def test_friedman_and_ranks_on_a_known_case():
    rows = []
    for task in ["t1", "t2", "t3", "t4"]:  # every task ranks a > b > c
        rows += runs(task, "roc_auc", {"a": BASE + 0.2, "b": BASE + 0.1, "c": BASE})
    rows += runs("t5", "rmse", {"a": BASE, "b": BASE + 0.1, "c": BASE + 0.2})  # RMSE: a lowest, still best
    analysis = rank_analysis(select(frame(rows)))
    assert analysis.average_ranks.to_dict() == {"a": 1.0, "b": 2.0, "c": 3.0}
    # Friedman with n = 5 blocks, k = 3 perfectly consistent ranks: chi2 = 12n/(k(k+1)) * sum R_j^2 - 3n(k+1) = 10
    assert analysis.friedman_statistic == pytest.approx(10.0)
    assert analysis.friedman_p == pytest.approx(np.exp(-5.0))
    assert analysis.nemenyi.loc["a", "c"] < analysis.nemenyi.loc["a", "b"]
    figure = critical_difference_figure(analysis)
    assert figure.axes


def test_ranking_needs_enough_methods():
    trials = frame(runs("t1", "roc_auc", {"a": BASE, "b": BASE}))
    with pytest.raises(ValueError, match="at least 3 methods"):
        rank_analysis(select(trials))
