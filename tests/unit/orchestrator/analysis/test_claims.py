"""The claims' verdicts follow the numbers: supported, contradicted or inconclusive, never assumed."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from orchestrator.analysis.claims import Outcome, check_claims, claims_text, decide_a, holm_reading, qualify_a

CLASSIFICATION = ("bbbp", "bace", "clintox", "sider")
REGRESSION = ("esol", "lipophilicity")
METHODS = ("full-ft", "lp", "surgical-ft", "lp-ft", "wise-ft", "l2-sp", "feature-map", "bss", "roft-mol")
QUALITY = {
    "roft-mol": 6.0,
    "wise-ft": 5.0,
    "l2-sp": 4.5,
    "full-ft": 3.0,
    "lp-ft": 2.0,
    "feature-map": 1.5,
    "bss": 1.0,
    "surgical-ft": 0.5,
    "lp": 0.0,
}


def trials(
    quality=QUALITY,
    backbone_effect=None,
    scratch_penalty=5.0,
    weight_boost_ss=2.0,
    weight_shift_sup=-4.0,
    methods=METHODS,
    seed=0,
) -> pd.DataFrame:
    """Synthetic rows: a score per (backbone, method, task, seed) from the method's quality, the backbone's
    effect and a little noise; ROC-AUC as a fraction, RMSE as a positive error (lower better)."""
    backbone_effect = backbone_effect or {"hu-gcn-supervised": 3.0, "hu-gcn-contextpred": 0.0}
    rng = np.random.default_rng(seed)
    rows = []
    for backbone, method, task, run in itertools.product(
        [*backbone_effect, "scratch-gcn"], methods, CLASSIFICATION + REGRESSION, range(5)
    ):
        if backbone == "scratch-gcn" and method != "full-ft":
            continue
        score = quality[method] + backbone_effect.get(backbone, -scratch_penalty) + rng.normal(0, 0.1)
        if backbone == "hu-gcn-contextpred" and method in ("wise-ft", "l2-sp", "roft-mol"):
            score += weight_boost_ss
        if backbone == "hu-gcn-supervised" and method in ("wise-ft", "l2-sp", "roft-mol"):
            score += weight_shift_sup
        regression = task in REGRESSION
        rows.append(
            {
                "backbone": backbone,
                "method": method,
                "method_label": method,
                "task": task,
                "split": "scaffold",
                "label_setting": "fewshot:100",
                "seed": run,
                "metric": "rmse" if regression else "roc_auc",
                "trial_key": f"{backbone}-{method}-{task}-{run}",
                "val_metric": (2.0 - score / 10) if regression else 0.5 + score / 100,
                "test_metric": (2.0 - score / 10) if regression else 0.5 + score / 100,
            }
        )
    return pd.DataFrame(rows)


def verdicts(frame) -> dict[str, str]:
    return {v.claim: v.verdict for v in check_claims(frame)}


def test_every_claim_supported_when_the_numbers_say_so():
    assert verdicts(trials()) == {"a": "supported", "b": "supported", "c": "supported", "d": "supported"}


def test_every_claim_contradicted_when_the_numbers_say_the_opposite():
    reversed_quality = {m: -q for m, q in QUALITY.items()}
    frame = trials(
        quality=reversed_quality,
        backbone_effect={"hu-gcn-supervised": 0.0, "hu-gcn-contextpred": 3.0},
        scratch_penalty=-8.0,
        weight_boost_ss=-2.0,
        weight_shift_sup=4.0,
    )
    assert verdicts(frame) == {"a": "contradicted", "b": "contradicted", "c": "contradicted", "d": "contradicted"}


def test_a_claim_significant_both_ways_is_contradicted_and_says_it_is_mixed():
    # scratch between the two checkpoints: the supervised one beats it, the self-supervised one loses to it
    frame = trials(scratch_penalty=-1.5)
    (d,) = [v for v in check_claims(frame) if v.claim == "d"]
    assert d.verdict == "contradicted"
    assert "Mixed: significant for the claim in some comparisons and against it in others." in d.evidence
    assert all("Mixed" not in v.evidence for v in check_claims(trials()))


def test_noise_alone_is_inconclusive():
    flat = {m: 0.0 for m in QUALITY}
    frame = trials(
        quality=flat,
        backbone_effect={"hu-gcn-supervised": 0.0, "hu-gcn-contextpred": 0.0},
        scratch_penalty=0.0,
        weight_boost_ss=0.0,
        weight_shift_sup=0.0,
        seed=3,
    )
    frame["test_metric"] += np.random.default_rng(1).normal(0, 1e-6, len(frame))
    result = verdicts(frame)
    assert result["b"] == "inconclusive" and result["c"] in ("inconclusive", "supported", "contradicted")


def test_missing_methods_make_a_claim_inconclusive_and_say_why():
    frame = trials(methods=("full-ft", "lp"))
    lines = claims_text(frame).splitlines()
    assert lines[0].startswith("(a) RoFt-Mol matches or beats") and "**inconclusive**" in lines[0]
    assert "fewer than 6 paired runs" in lines[0] and "lacks blocks holding all eight methods" in lines[1]
    assert verdicts(frame)["d"] == "supported"


def test_matching_is_not_claimed_from_too_few_pairs_to_test():
    # RoFt-Mol far worse on regression, but with 4 pairs per comparison no test can say so (smallest p 0.125)
    frame = trials()
    regression = frame["task"].isin(REGRESSION) & (frame["method"] == "roft-mol")
    frame.loc[regression, ["val_metric", "test_metric"]] += 5.0  # RMSE: much worse
    few = frame[~frame["task"].isin(REGRESSION) | ((frame["task"] == "esol") & (frame["seed"] < 2))]
    (a,) = [v for v in check_claims(few) if v.claim == "a"]
    assert a.verdict == "inconclusive" and "fewer than 6 paired runs" in a.evidence
    (a,) = [v for v in check_claims(frame) if v.claim == "a"]  # 20 pairs: the test says worse
    assert a.verdict == "contradicted"


def test_a_missing_column_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"lack column\(s\) \['seed'\]"):
        check_claims(trials().drop(columns="seed"))


def test_each_verdict_of_several_tests_also_reads_its_holm_correction_and_keeps_the_rule():
    # one test barely against the claim among four: the rule says contradicted, Holm leaves only the strong one
    outcomes = [Outcome(0.03, favours=False), Outcome(0.001, favours=True), Outcome(0.5, True), Outcome(0.4, True)]
    assert decide_a([o.direction() for o in outcomes]) == "contradicted"
    assert holm_reading(outcomes, decide_a, qualify_a) == (
        " Holm-corrected over its 4 tests (a reading, not the rule): *supported* (not worse: equality is not tested)."
    )
    assert holm_reading(outcomes, decide_a) == " Holm-corrected over its 4 tests (a reading, not the rule): *supported*."
    assert holm_reading(outcomes[:1], decide_a, qualify_a) == ""  # one test: nothing to correct
    # the same verdict but not the same words: all four for the claim, three no longer significant after Holm
    strong = [Outcome(0.02, True), Outcome(0.001, True), Outcome(0.03, True), Outcome(0.04, True)]
    assert holm_reading(strong, decide_a, qualify_a) == (
        " Holm-corrected over its 4 tests (a reading, not the rule): *supported* (not worse: equality is not tested)."
    )
    for verdict in check_claims(trials()):  # every test overwhelming: Holm reads the same, verdicts unchanged
        assert verdict.verdict == "supported" and verdict.evidence.endswith("(a reading, not the rule): the same.")
