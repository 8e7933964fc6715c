"""Which fine-tuning method ranks first: average ranks over tasks, per backbone and over both.

A *block* is one (backbone, task, split, label setting); in each block that holds every method, the
methods are ranked by the seed-mean test metric of their validation-selected grid point
(:func:`orchestrator.analysis.tables.select`; 1 = best, ties share the mean rank), and a method's
average rank is the mean over blocks (:func:`orchestrator.analysis.significance.rank_analysis`, the
same analysis as the report's critical-difference diagram). Friedman's test asks whether the methods'
ranks differ at all; Nemenyi's post-hoc test which pairs do (alpha 0.05, corrected for all pairs).
Backbones with fewer than three methods (a from-scratch reference trained by Full FT only) are left out.

    roft reading --store STORE --ranks
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from orchestrator.analysis.significance import RankAnalysis, rank_analysis
from orchestrator.analysis.tables import Selected, select

ALPHA = 0.05
MIN_METHODS = 3  # ranking needs at least three methods (Friedman)


@dataclass(frozen=True)
class Scope:
    """One column of the rank table: the blocks of ``backbones``, and their analysis (or why there is none)."""

    name: str
    analysis: RankAnalysis | None
    reason: str = ""


def rank_scopes(trials: pd.DataFrame) -> list[Scope]:
    """Average ranks over the blocks of every ranked backbone together, then of each backbone alone."""
    selected = select(trials, "val")
    frame = selected.frame
    methods = frame.groupby("backbone")["method"].nunique()
    ranked = sorted(methods[methods >= MIN_METHODS].index)
    if not ranked:
        return []
    groups = [("every backbone", ranked)] if len(ranked) > 1 else []
    groups += [(backbone, [backbone]) for backbone in ranked]
    scopes = []
    for name, backbones in groups:
        part = Selected(frame[frame["backbone"].isin(backbones)], selected.selection, selected.ddof)
        try:
            scopes.append(Scope(name, rank_analysis(part)))
        except ValueError as exc:
            scopes.append(Scope(name, None, str(exc)))
    return scopes


def _different_pairs(analysis: RankAnalysis) -> list[str]:
    """The method pairs Nemenyi's test finds different at :data:`ALPHA`, the better-ranked one first."""
    order = list(analysis.average_ranks.index)
    pairs = []
    for i, better in enumerate(order):
        for worse in order[i + 1 :]:
            if analysis.nemenyi.loc[better, worse] < ALPHA:
                pairs.append(f"{better} > {worse} (p = {analysis.nemenyi.loc[better, worse]:.3g})")
    return pairs


def ranks_text(trials: pd.DataFrame) -> str:
    """A Markdown table (methods x scopes, average rank, best first by the first scope) and its caption."""
    scopes = rank_scopes(trials)
    if not scopes:
        return "No ranking: no backbone has results for at least three methods."
    decided = [s for s in scopes if s.analysis is not None]
    if not decided:
        return "No ranking: " + "; ".join(f"{s.name}: {s.reason}" for s in scopes) + "."
    order = list(decided[0].analysis.average_ranks.index)  # type: ignore[union-attr]
    header = [f"{s.name} ({len(s.analysis.ranks)} blocks)" if s.analysis is not None else s.name for s in scopes]
    lines = ["| method | " + " | ".join(header) + " |", "|---" * (len(scopes) + 1) + "|"]
    for method in order:
        cells = [
            f"{s.analysis.average_ranks[method]:.2f}"
            if s.analysis is not None and method in s.analysis.average_ranks
            else "-"
            for s in scopes
        ]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    friedman = [f"p = {s.analysis.friedman_p:.3g}" if s.analysis is not None else "-" for s in scopes]
    lines.append("| Friedman | " + " | ".join(friedman) + " |")
    notes = []
    for scope in scopes:
        if scope.analysis is None:
            notes.append(f"{scope.name}: no ranking ({scope.reason})")
            continue
        pairs = _different_pairs(scope.analysis)
        notes.append(f"{scope.name}: {'; '.join(pairs) if pairs else 'no pair differs'}")
    caption = (
        "Average rank of each method over blocks (backbone x task x split x label setting) holding every "
        "method, from the seed-mean test metric of its validation-selected grid point; 1 = best. "
        f"Pairs that Nemenyi's post-hoc test finds different (alpha {ALPHA:g}): " + ". ".join(notes) + "."
    )
    return "\n".join(lines) + "\n\n" + caption
