"""Average ranks follow the numbers: the better method ranks first, per backbone and over both."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from orchestrator.analysis.ranking import rank_scopes, ranks_text

TASKS = ("bbbp", "bace", "clintox", "sider", "esol", "lipophilicity")
QUALITY = {"roft-mol": 5.0, "wise-ft": 4.0, "full-ft": 3.0, "lp-ft": 2.0, "lp": 0.0}


def trials(quality=QUALITY, backbones=("hu-gcn-contextpred", "hu-gcn-supervised"), seed=0) -> pd.DataFrame:
    """Synthetic rows: ROC-AUC (higher better) or RMSE (lower better) from the method's quality and noise,
    plus a from-scratch reference with Full FT only."""
    rng = np.random.default_rng(seed)
    rows = []
    for backbone, method, task, run in itertools.product([*backbones, "scratch-gcn"], quality, TASKS, range(3)):
        if backbone == "scratch-gcn" and method != "full-ft":
            continue
        score = quality[method] + rng.normal(0, 0.1)
        regression = task in ("esol", "lipophilicity")
        value = 2.0 - score / 10 if regression else 0.5 + score / 100
        rows.append({"backbone": backbone, "method": method, "method_label": method, "task": task,
                     "split": "scaffold", "label_setting": "fewshot:100", "seed": run,
                     "metric": "rmse" if regression else "roc_auc", "trial_key": f"{backbone}-{method}-{task}-{run}",
                     "val_metric": value, "test_metric": value})
    return pd.DataFrame(rows)


def test_methods_rank_in_order_of_their_quality_in_every_scope_and_scratch_is_left_out():
    scopes = rank_scopes(trials())
    assert [s.name for s in scopes] == ["every backbone", "hu-gcn-contextpred", "hu-gcn-supervised"]
    for scope in scopes:
        assert list(scope.analysis.average_ranks.index) == ["roft-mol", "wise-ft", "full-ft", "lp-ft", "lp"]
        assert scope.analysis.average_ranks.iloc[0] == 1.0 and scope.analysis.friedman_p < 0.05
    assert len(scopes[0].analysis.ranks) == 12 and len(scopes[1].analysis.ranks) == 6  # no scratch blocks


def test_the_text_is_a_table_best_first_with_friedman_and_the_nemenyi_pairs():
    text = ranks_text(trials())
    lines = text.splitlines()
    assert lines[0] == "| method | every backbone (12 blocks) | hu-gcn-contextpred (6 blocks) | hu-gcn-supervised (6 blocks) |"
    assert lines[2] == "| roft-mol | 1.00 | 1.00 | 1.00 |" and lines[6] == "| lp | 5.00 | 5.00 | 5.00 |"
    assert lines[7].startswith("| Friedman | p = ")
    every = text.split("every backbone: ")[1].split(". hu-gcn-contextpred:")[0]
    assert "roft-mol > lp (p = " in every  # first against last over 12 blocks: Nemenyi says so
    assert "lp > " not in every and "lp-ft > roft-mol" not in every  # only better-ranked first


def test_the_ranks_see_through_the_metric_direction():
    # lower RMSE is better: a method best only on regression must not rank last there
    frame = trials()
    regression = frame["metric"] == "rmse"
    best_on_regression = regression & (frame["method"] == "lp")
    frame.loc[best_on_regression, ["val_metric", "test_metric"]] = 0.1
    scopes = rank_scopes(frame[regression | (frame["backbone"] == "scratch-gcn")])
    assert scopes[0].analysis.average_ranks.index[0] == "lp"


def test_without_three_methods_the_text_says_so():
    assert ranks_text(trials(quality={"full-ft": 1.0, "lp": 0.0})) == (
        "No ranking: no backbone has results for at least three methods."
    )
    one_task = trials()
    one_task = one_task[one_task["task"] == "bbbp"]
    text = ranks_text(one_task[one_task["backbone"] != "hu-gcn-supervised"])
    assert text.startswith("No ranking: hu-gcn-contextpred: ranking needs at least 3 methods on at least 2 complete blocks")
