"""Published claims about fine-tuning with few labels, decided by a store's numbers.

Each claim was written down before the runs that decide it; :func:`check_claims` only computes.
Every comparison uses each cell's grid point selected by seed-mean *validation* metric
(:func:`orchestrator.analysis.tables.select`), its per-seed test metrics, oriented so that higher is
better (ROC-AUC as is, RMSE negated), and pairs runs of the same task, label setting and seed. The
test is Wilcoxon's signed-rank test on the paired differences (two-sided, alpha 0.05, exact for few
pairs); the effect is the mean paired difference in table units (ROC-AUC points, RMSE units; positive
favours the claim) and the share of pairs that favour it.

A claim is *supported* when its test is significant in its direction, *contradicted* when it is
significant the other way, *inconclusive* otherwise (or when the store lacks what it needs, said
as such). "Matches or beats" (claim a) counts as supported unless the method is significantly worse
(no test shows equality; the verdict then says "not worse"), and only where every comparison has
enough pairs for its test to be significant at all (6 for a two-sided exact signed-rank test at
0.05): with fewer, "not worse" would hold whatever the numbers, so the claim is inconclusive. A claim significant for itself in one
comparison and against itself in another is *contradicted*, and its evidence says it is mixed.

The rule tests each comparison at 0.05 on its own, as written down before the runs. A claim of ``m``
tests is therefore more likely than 0.05 to be decided by chance, so each verdict of several tests
also says what it would read with Holm's step-down correction over its own tests (:func:`holm`): a
reading beside the verdict, never the verdict.

* (a) RoFt-Mol matches or beats WiSE-FT and Full FT, on classification and on regression.
* (b) The weight-based methods (WiSE-FT, L2-SP, RoFt-Mol) rank above the representation-based and
  partial ones (Feature-map, BSS, LP, Surgical FT, LP-FT) with few labels, more so on the
  self-supervised backbone: per (backbone, task, label setting) block, the mean rank of the weight
  methods against the mean rank of the others.
* (c) With few labels, the supervised backbone beats the self-supervised one (every method).
* (d) Pre-training beats training from scratch (Full FT, each pre-trained backbone against the
  scratch backbone of its architecture).

    roft reading --store STORE --claims
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from orchestrator.analysis.tables import direction_sign, select
from trainables.data.tasks import HIGHER_IS_BETTER

ALPHA = 0.05
# The fewest pairs with which a two-sided exact signed-rank test can reach p < ALPHA (its smallest p is
# 2 / 2^n: 0.0625 for 5 pairs, 0.031 for 6); a comparison with fewer could never be significant either way.
MIN_DECIDING_PAIRS = next(n for n in range(1, 64) if 2.0 / 2**n < ALPHA)
WEIGHT = ("wise-ft", "l2-sp", "roft-mol")
OTHERS = ("feature-map", "bss", "lp", "surgical-ft", "lp-ft")
SELF_SUPERVISED, SUPERVISED = "hu-gcn-contextpred", "hu-gcn-supervised"
UNITS = {"roc_auc": 100.0, "rmse": 1.0}
NEEDED = [
    "backbone",
    "method",
    "method_label",
    "task",
    "split",
    "label_setting",
    "metric",
    "seed",
    "trial_key",
    "val_metric",
    "test_metric",
]


@dataclass(frozen=True)
class Verdict:
    claim: str  # "a", "b", ...
    statement: str
    verdict: str  # supported | contradicted | inconclusive
    evidence: str  # the test and effect, in words

    def line(self) -> str:
        return f"({self.claim}) {self.statement}: **{self.verdict}**. {self.evidence}"


@dataclass(frozen=True)
class Paired:
    """Paired differences (favouring the claim when positive, in table units) and their test."""

    differences: np.ndarray
    p: float

    @property
    def n(self) -> int:
        return len(self.differences)

    @property
    def mean(self) -> float:
        return float(np.mean(self.differences)) if self.n else float("nan")

    @property
    def favourable(self) -> float:
        return float(np.mean(self.differences > 0)) if self.n else float("nan")

    def outcome(self, decidable: bool = True) -> Outcome:
        """This test as one of a claim's outcomes (``decidable`` False: it counts as missing)."""
        return Outcome(self.p, bool(self.mean > 0), decidable)

    def can_decide(self) -> bool:
        """Whether there are enough pairs for the test to be significant at all (:data:`MIN_DECIDING_PAIRS`)."""
        return self.n >= MIN_DECIDING_PAIRS

    def words(self, unit: str) -> str:
        if self.n == 0:
            return "no paired runs"
        return (
            f"mean difference {self.mean:+.2f} {unit} over {self.n} paired runs, {100 * self.favourable:.0f}% "
            f"in favour, Wilcoxon p = {self.p:.3g}"
        )


@dataclass(frozen=True)
class Outcome:
    """One test of a claim: its p-value, whether its effect favours the claim, and whether it could decide
    at all (enough pairs, or any data)."""

    p: float
    favours: bool
    decidable: bool = True

    def direction(self, p: float | None = None) -> str:
        """``for``, ``against``, ``none`` (not significant at ``p``, this test's own by default) or ``missing``."""
        p = self.p if p is None else p
        if not self.decidable:
            return "missing"
        if not p < ALPHA:
            return "none"
        return "for" if self.favours else "against"


def holm(ps) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given (statsmodels, as the report's paired tests):
    rejecting where ``adjusted < alpha`` keeps the chance of any false rejection among the tests at most
    ``alpha``."""
    from statsmodels.stats.multitest import multipletests

    return [float(p) for p in multipletests(list(ps), method="holm")[1]]


def holm_reading(outcomes: list[Outcome], decide, qualify=lambda verdict, directions: "") -> str:
    """What the claim would read with Holm's correction over its own tests (``decide`` maps directions to a
    verdict, and ``qualify`` a verdict and its directions to the words after it, as for the claim itself);
    "the same" where both read as the uncorrected claim's; empty for a claim of one test."""
    if len(outcomes) < 2:
        return ""
    directions = [o.direction() for o in outcomes]
    adjusted = [o.direction(p) for o, p in zip(outcomes, holm([o.p for o in outcomes]))]
    verdict, corrected = decide(directions), decide(adjusted)
    same = (corrected, qualify(corrected, adjusted)) == (verdict, qualify(verdict, directions))
    reads = "the same" if same else f"*{corrected}*{qualify(corrected, adjusted)}"
    return f" Holm-corrected over its {len(outcomes)} tests (a reading, not the rule): {reads}."


def paired(differences) -> Paired:
    from scipy.stats import wilcoxon

    values = np.asarray([d for d in differences if np.isfinite(d)], dtype=float)
    if len(values) == 0 or np.all(values == 0):
        return Paired(values, 1.0)
    return Paired(values, float(wilcoxon(values, zero_method="wilcox", alternative="two-sided").pvalue))


def oriented_runs(trials: pd.DataFrame) -> pd.DataFrame:
    """Per-seed runs of each cell's validation-selected grid point, with ``score``: the test metric in table
    units, oriented so that higher is better."""
    trials = trials.drop_duplicates("trial_key", keep="last")
    trials = trials[trials["test_metric"].notna()]
    chosen = select(trials, "val").frame[["backbone", "method", "task", "split", "label_setting", "method_label"]]
    runs = trials.merge(chosen, on=list(chosen.columns), how="inner")
    sign = direction_sign(runs["metric"]) * runs["metric"].map(lambda m: UNITS.get(m, 1.0))
    return runs.assign(
        score=runs["test_metric"] * sign,
        kind=runs["metric"].map(lambda m: "classification" if HIGHER_IS_BETTER[m] else "regression"),
    )


def _pairs(runs: pd.DataFrame, left: pd.Series, right: pd.Series, on: list[str]) -> np.ndarray:
    a = runs[left].set_index(on)["score"]
    b = runs[right].set_index(on)["score"]
    joined = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner")
    return (joined["a"] - joined["b"]).to_numpy()


def _mixed(directions: list[str]) -> str:
    """A note for a claim whose comparisons are significant both ways (its verdict is then *contradicted*)."""
    if "for" in directions and "against" in directions:
        return " Mixed: significant for the claim in some comparisons and against it in others."
    return ""


def _verdict_of(directions: list[str]) -> str:
    if "against" in directions:
        return "contradicted"
    if directions and all(d == "for" for d in directions):
        return "supported"
    return "inconclusive"


def qualify_a(verdict: str, directions: list[str]) -> str:
    """Claim (a) supported without every test significant for it: RoFt-Mol is not worse, which is not equal."""
    if verdict == "supported" and not all(d == "for" for d in directions):
        return " (not worse: equality is not tested)"
    return ""


def decide_a(directions: list[str]) -> str:
    """Claim (a)'s verdict from its tests' directions: "matches or beats" holds unless a test says worse,
    and only where every test could have said so (none ``missing``)."""
    if "missing" in directions:
        return "inconclusive"
    return "contradicted" if "against" in directions else "supported"


def _decide_all_present(directions: list[str]) -> str:
    return "inconclusive" if "missing" in directions else _verdict_of(directions)


def _decided(claim: str, statement: str, outcomes: list[Outcome], parts: list[str]) -> Verdict:
    """The verdict of a claim whose every test must have data (claims c and d), with its evidence."""
    directions = [o.direction() for o in outcomes]
    verdict = _decide_all_present(directions)
    evidence = "; ".join(parts) + "." + _mixed(directions) + holm_reading(outcomes, _decide_all_present)
    return Verdict(claim, statement, verdict, evidence)


def claim_a(runs: pd.DataFrame) -> Verdict:
    statement = "RoFt-Mol matches or beats WiSE-FT and Full FT, on classification and on regression"
    key = ["backbone", "task", "split", "label_setting", "seed"]
    parts, outcomes = [], []
    for kind, unit in (("classification", "ROC-AUC points"), ("regression", "RMSE")):
        of_kind = runs[runs["kind"] == kind]
        for other in ("wise-ft", "full-ft"):
            test = paired(_pairs(of_kind, of_kind["method"] == "roft-mol", of_kind["method"] == other, key))
            # "not worse" needs a test that could have said "worse": too few pairs decide nothing
            outcomes.append(test.outcome(test.can_decide()))
            parts.append(f"{kind}, vs {other}: {test.words(unit)}")
    directions = [o.direction() for o in outcomes]
    verdict = decide_a(directions)
    if verdict == "inconclusive":
        evidence = (
            f"a comparison has fewer than {MIN_DECIDING_PAIRS} paired runs (the fewest with which its test can "
            "reach p < 0.05), so 'not worse' is untested. " + "; ".join(parts) + "."
        )
    else:
        evidence = "; ".join(parts) + "." + qualify_a(verdict, directions) + _mixed(directions)
    return Verdict("a", statement, verdict, evidence + holm_reading(outcomes, decide_a, qualify_a))


def block_rank_gaps(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (backbone, task, split, label setting) block holding every method of both families: the mean rank
    of the weight methods minus that of the others (negative: weight methods rank better; rank 1 = best)."""
    means = runs.groupby(["backbone", "task", "split", "label_setting", "method"])["score"].mean().unstack("method")
    needed = [m for m in (*WEIGHT, *OTHERS)]
    complete = means.dropna(subset=[m for m in needed if m in means.columns])
    if not all(m in means.columns for m in needed) or complete.empty:
        return pd.DataFrame(columns=["backbone", "gap"])
    ranks = complete[needed].rank(axis=1, ascending=False, method="average")
    gap = ranks[list(WEIGHT)].mean(axis=1) - ranks[list(OTHERS)].mean(axis=1)
    return gap.rename("gap").reset_index()


def claim_b(runs: pd.DataFrame) -> Verdict:
    statement = (
        "the weight-based methods (WiSE-FT, L2-SP, RoFt-Mol) rank above the representation-based and "
        "partial ones with few labels, more so on the self-supervised backbone"
    )
    gaps = block_rank_gaps(runs)
    if gaps.empty:
        return Verdict("b", statement, "inconclusive", "the store lacks blocks holding all eight methods.")
    overall = paired(-gaps["gap"].to_numpy())  # positive: weight methods rank better
    by_backbone = {b: -g["gap"].to_numpy() for b, g in gaps.groupby("backbone")}
    evidence = (
        f"weight methods' mean rank minus the others' over {overall.n} blocks: {-overall.mean:+.2f} "
        f"({100 * overall.favourable:.0f}% of blocks favour them, Wilcoxon p = {overall.p:.3g})"
    )
    if SELF_SUPERVISED in by_backbone and SUPERVISED in by_backbone:
        ss, sup = float(np.mean(by_backbone[SELF_SUPERVISED])), float(np.mean(by_backbone[SUPERVISED]))
        from scipy.stats import mannwhitneyu

        more = mannwhitneyu(by_backbone[SELF_SUPERVISED], by_backbone[SUPERVISED], alternative="two-sided").pvalue
        evidence += (
            f"; rank advantage on {SELF_SUPERVISED} {ss:+.2f} vs {SUPERVISED} {sup:+.2f} (Mann-Whitney p = {more:.3g})"
        )
        outcomes = [overall.outcome(), Outcome(float(more), ss > sup)]
    else:
        outcomes = [overall.outcome(), Outcome(1.0, False)]
        evidence += "; the store lacks one of the two backbones, so 'more so' is untested"
    directions = [o.direction() for o in outcomes]
    verdict = _verdict_of(directions)
    return Verdict("b", statement, verdict, evidence + "." + _mixed(directions) + holm_reading(outcomes, _verdict_of))


def claim_c(runs: pd.DataFrame) -> Verdict:
    statement = "with few labels the supervised backbone beats the self-supervised one"
    key = ["method", "task", "split", "label_setting", "seed"]
    pretrained = runs[runs["backbone"].isin([SELF_SUPERVISED, SUPERVISED])]
    parts, outcomes = [], []
    for kind, unit in (("classification", "ROC-AUC points"), ("regression", "RMSE")):
        of_kind = pretrained[pretrained["kind"] == kind]
        test = paired(_pairs(of_kind, of_kind["backbone"] == SUPERVISED, of_kind["backbone"] == SELF_SUPERVISED, key))
        outcomes.append(test.outcome(test.n > 0))
        parts.append(f"{kind}, every method: {test.words(unit)}")
    return _decided("c", statement, outcomes, parts)


def claim_d(runs: pd.DataFrame) -> Verdict:
    statement = "pre-training beats training from scratch (Full FT)"
    key = ["task", "split", "label_setting", "seed"]
    full = runs[runs["method"] == "full-ft"]
    scratch = full[full["backbone"].str.startswith("scratch-")]
    parts, outcomes = [], []
    for backbone in (SELF_SUPERVISED, SUPERVISED):
        for kind, unit in (("classification", "ROC-AUC points"), ("regression", "RMSE")):
            of_kind = full[full["kind"] == kind]
            test = paired(
                _pairs(
                    of_kind,
                    of_kind["backbone"] == backbone,
                    of_kind["backbone"].isin(scratch["backbone"].unique()),
                    key,
                )
            )
            outcomes.append(test.outcome(test.n > 0))
            parts.append(f"{backbone} vs scratch, {kind}: {test.words(unit)}")
    return _decided("d", statement, outcomes, parts)


def check_claims(trials: pd.DataFrame) -> list[Verdict]:
    """The four verdicts from ``trials`` (rows as :func:`orchestrator.analysis.tables.load_trials` returns)."""
    missing = [c for c in NEEDED if c not in trials]
    if missing:
        raise ValueError(f"the trials lack column(s) {missing}; needed: {', '.join(NEEDED)}")
    runs = oriented_runs(trials)
    return [claim_a(runs), claim_b(runs), claim_c(runs), claim_d(runs)]


def claims_text(trials: pd.DataFrame) -> str:
    return "\n".join(verdict.line() for verdict in check_claims(trials))
