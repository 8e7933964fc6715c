"""A two-line reading of a store: does pre-training beat training from scratch here?

Per task, the seed-mean test metric of the best pre-trained backbone is set against the scratch
backbone's, both under the same method, split and label setting (a *context*). Line 1 states the
differences, per task, from the data: a win, a loss or a tie, never assumed; line 2 says what this
shows and what it does not (seeds, seed spread, the recipe against the paper's). Stores without a
scratch or a pre-trained backbone get a reading that says so.

Choices, all made on the data and never on the test metric:

* the context: the one (method, split, label setting) holding a pre-trained and a scratch backbone
  on the most tasks (ties: the most trials, then by name);
* the pre-trained backbone: per task, the best seed-mean **validation** metric among the pre-trained
  backbones (as ``roft table`` selects grid points);
* the scratch backbone: the scratch one of the pre-trained backbone's architecture where the store
  has it (``scratch-gcn`` for a Hu GCN), else the best seed-mean validation metric.

ROC-AUC differences are in points (percent); RMSE differences in the task's units, lower better.

    python -m orchestrator.analysis.reading --store results [--spec search_spaces/mini.yaml]

``--spec`` restricts the reading to that spec's trials (a store can hold other sweeps).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from orchestrator.analysis.names import task_name
from orchestrator.analysis.tables import seed_summary
from trainables.data.tasks import HIGHER_IS_BETTER

CONTEXT = ["method_label", "split", "label_setting"]
NEEDED = ["backbone", "method_label", "task", "split", "label_setting", "metric", "test_metric"]
METHOD_NAMES = {"lp": "linear probing", "full-ft": "full fine-tuning", "lp-ft": "LP-FT", "surgical-ft": "surgical FT"}


@dataclass(frozen=True)
class Comparison:
    """One task: the pre-trained and the scratch cell, seed-mean and seed std of the test metric."""

    task: str
    metric: str
    pretrained: str
    scratch: str
    pre_mean: float
    scratch_mean: float
    pre_std: float
    scratch_std: float
    pre_seeds: int
    scratch_seeds: int

    @property
    def scale(self) -> float:
        return 100.0 if self.metric == "roc_auc" else 1.0

    @property
    def gain(self) -> float:
        """Improvement of pre-trained over scratch in table units (positive: pre-training better)."""
        sign = 1.0 if HIGHER_IS_BETTER[self.metric] else -1.0
        return sign * (self.pre_mean - self.scratch_mean) * self.scale

    @property
    def spread(self) -> float:
        """The larger seed std (ddof=1) of the two cells, in table units (NaN when both have one seed)."""
        stds = [v for v in (self.pre_std, self.scratch_std) if not np.isnan(v)]
        return max(stds) * self.scale if stds else float("nan")

    @property
    def within_noise(self) -> bool:
        return not np.isnan(self.spread) and abs(self.gain) <= self.spread


def _pretrained_flags(trials: pd.DataFrame) -> pd.Series:
    """Per row: is its backbone pre-trained? The store's ``pretraining`` column, else the backbone registry,
    else the name (``scratch-*`` is not)."""

    def registry(name: str) -> bool:
        from trainables.models.backbones import BACKBONES  # only for rows without the column (it loads torch)

        if name in BACKBONES:
            return BACKBONES.get(name).is_pretrained
        return not str(name).startswith("scratch")

    known = trials["pretraining"] if "pretraining" in trials else pd.Series(None, index=trials.index, dtype=object)
    return pd.Series(
        [registry(b) if pd.isna(p) else p != "none" for b, p in zip(trials["backbone"], known)],
        index=trials.index,
        dtype=bool,
    )


def _architectures(trials: pd.DataFrame) -> dict[str, str | None]:
    """Backbone -> its architecture: the rows' ``architecture`` column, else the backbone registry."""
    known: dict[str, str | None] = (
        {}
        if "architecture" not in trials
        else {b: a for b, a in zip(trials["backbone"], trials["architecture"]) if isinstance(a, str) and a}
    )
    missing = set(trials["backbone"]) - set(known)
    if missing:
        from trainables.models.backbones import BACKBONES  # only for rows without the column (it loads torch)

        known.update({name: BACKBONES.get(name).gnn_type if name in BACKBONES else None for name in missing})
    return known


def _cells(trials: pd.DataFrame) -> pd.DataFrame:
    """Per (context, task, metric, backbone): seed-mean and seed std (ddof=1) of test, seed-mean val, seeds."""
    return seed_summary(trials, [*CONTEXT, "task", "metric", "backbone", "pretrained"], ddof=1)


def _best(cells: pd.DataFrame) -> pd.Series:
    """The cell with the best seed-mean validation metric (test never chooses); ties by name."""
    metric = cells["metric"].iloc[0]
    key = cells["val_mean"] * (1.0 if HIGHER_IS_BETTER[metric] else -1.0)
    return cells.assign(_key=key.fillna(-np.inf)).sort_values(["_key", "backbone"], ascending=[False, True]).iloc[0]


def compare(trials: pd.DataFrame) -> tuple[tuple[str, str, str] | None, list[Comparison], dict[tuple, int]]:
    """The chosen context, its per-task comparisons (tasks by name), and every context's count of
    paired tasks. ``trials`` carries a boolean ``pretrained`` column."""
    cells = _cells(trials)
    architecture = _architectures(trials)
    pairs: dict[tuple, list[Comparison]] = {}
    counts: dict[tuple, int] = {}
    for context, block in cells.groupby(CONTEXT, sort=True):
        found = []
        for (task, metric), one in block.groupby(["task", "metric"], sort=True):
            pre, scratch = one[one["pretrained"]], one[~one["pretrained"]]
            if pre.empty or scratch.empty:
                continue
            p = _best(pre)
            same = scratch[scratch["backbone"].map(architecture) == architecture[p["backbone"]]]
            s = _best(same if not same.empty else scratch)
            found.append(
                Comparison(
                    task,
                    metric,
                    p["backbone"],
                    s["backbone"],
                    float(p["mean"]),
                    float(s["mean"]),
                    float(p["std"]),
                    float(s["std"]),
                    int(p["seeds"]),
                    int(s["seeds"]),
                )
            )
        pairs[context] = found
        counts[context] = int(block["seeds"].sum())  # trials
    if not any(pairs.values()):
        return None, [], {}
    chosen = sorted(pairs, key=lambda c: (-len(pairs[c]), -counts[c], c))[0]
    return chosen, pairs[chosen], {c: len(v) for c, v in pairs.items()}


def _task(name: str) -> str:
    return task_name(name)


def _seeds(comparisons: Sequence[Comparison]) -> str:
    counts = sorted({c.pre_seeds for c in comparisons} | {c.scratch_seeds for c in comparisons})
    n = counts[0] if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return f"{n} seed{'s' if counts[-1] != 1 else ''}"


def _method(label: str, params: bool = True) -> str:
    """``lp[freeze_bn_stats=True]`` -> ``linear probing [freeze_bn_stats=True]`` (without ``params``: ``linear probing``)."""
    base, bracket, rest = label.partition("[")
    name = METHOD_NAMES.get(base, base)
    return f"{name} [{rest}" if bracket and params else name


def _setting(context: tuple[str, str, str], comparisons: Sequence[Comparison]) -> str:
    label, split, label_setting = context
    labels = (
        "full labels"
        if label_setting == "full"
        else f"{label_setting.split(':', 1)[1]}-shot"
        if label_setting.startswith("fewshot:")
        else f"{label_setting.split(':', 1)[1]} of the labels"
        if label_setting.startswith("ratio:")
        else label_setting
    )
    return f"{_method(label)}, {_seeds(comparisons)}, {split} split, {labels}"


def _part(c: Comparison, unit: bool) -> str:
    """``+13.2 ROC-AUC points on BBBP (69.4 vs 56.2)``, ``0.31 lower RMSE on ESOL (1.12 vs 1.43)``."""
    if c.metric == "roc_auc":
        change = f"{c.gain:+.1f}{' ROC-AUC points' if unit else ''}"
        values = f"{c.pre_mean * 100:.1f} vs {c.scratch_mean * 100:.1f}"
    else:
        change = (
            f"{abs(c.gain):.2f} {'lower' if c.gain > 0 else 'higher' if c.gain < 0 else 'equal'} {c.metric.upper()}"
        )
        values = f"{c.pre_mean:.2f} vs {c.scratch_mean:.2f}"
    return f"{change} on {_task(c.task)} ({values})"


def _join(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def first_line(context: tuple[str, str, str], comparisons: Sequence[Comparison]) -> str:
    """Per task, the pre-trained backbone against the scratch one: who wins, by how much, the two means."""
    pretrained = list(dict.fromkeys(c.pretrained for c in comparisons))
    scratch = list(dict.fromkeys(c.scratch for c in comparisons))
    who = f"Pre-trained {_join(pretrained)}" if len(pretrained) == 1 else "The best pre-trained backbone"
    against = _join(scratch)
    parts, seen = [], set()
    for c in comparisons:
        part = _part(c, c.metric not in seen)
        seen.add(c.metric)
        parts.append(part if len(pretrained) == 1 else f"{part} [{c.pretrained}]")
    setting = f"seed-mean test metric; {_setting(context, comparisons)}"
    wins = [c for c in comparisons if c.gain > 0]
    if len(wins) == len(comparisons):
        return f"{who} beats {against}: {_join(parts)} ({setting})."
    if not wins:
        return f"{who} does NOT beat {against}: {_join(parts)} ({setting})."
    return f"{who} beats {against} on {len(wins)} of {len(comparisons)} tasks only: {_join(parts)} ({setting})."


def second_line(
    context: tuple[str, str, str], comparisons: Sequence[Comparison], trials: pd.DataFrame, others: dict[tuple, int]
) -> str:
    """What the comparison shows, and its caveats (noise, seeds, recipe, other settings in the store)."""
    method = context[0].partition("[")[0]
    name = _method(method, params=False)
    wins = [c for c in comparisons if c.gain > 0]
    losses = [c for c in comparisons if c.gain <= 0]
    if wins and not losses and method == "lp":
        shows = (
            "What it shows: the frozen pre-trained encoder's embeddings predict these labels better than a "
            "random encoder's of the same shape: the pre-training gain Hu et al. (2020) report for fine-tuning "
            "is there before any encoder weight moves"
        )
    elif wins and not losses:
        shows = f"What it shows: starting from pre-trained weights helps under {name}, as Hu et al. (2020) report"
    elif wins:
        shows = (
            f"What it shows: pre-training helps on {_join([_task(c.task) for c in wins])} but not on "
            f"{_join([_task(c.task) for c in losses])} in this run"
        )
    else:
        shows = (
            "What it shows: pre-training does not help in this run; check the recipe (epochs, learning rate) "
            "and the backbone's fit to these tasks before concluding"
        )
    caveats = []
    noisy = [c for c in comparisons if c.within_noise]
    if noisy:
        caveats.append(f"the difference on {_join([_task(c.task) for c in noisy])} is within one seed std")
    seeds = min(min(c.pre_seeds, c.scratch_seeds) for c in comparisons)
    if seeds < 5:
        caveats.append(f"{seeds} seed{'s' if seeds != 1 else ''} on one split is a small sample")
    epochs = sorted(set(trials["epochs"].dropna().astype(int))) if "epochs" in trials else []
    recipe = f"{epochs[0]} epochs" if len(epochs) == 1 else "other epochs" if epochs else "this recipe"
    if method != "full-ft":
        caveats.append(f"the paper's recipe is 100 epochs of full fine-tuning, not {recipe} of {name}")
    elif epochs != [100]:
        caveats.append(f"the paper's recipe is 100 epochs of full fine-tuning, not {recipe}")
    rest = [c for c, n in others.items() if c != context and n]
    if rest:
        shown = _join([" / ".join(c) for c in rest[:3]]) + (f" and {len(rest) - 3} more" if len(rest) > 3 else "")
        caveats.append(f"the store also compares them under {shown}, not read here (roft table shows every cell)")
    return f"{shows}." + (f" Caveats: {'; '.join(caveats)}." if caveats else "")


def reading(trials: pd.DataFrame) -> str:
    """The two-line reading of ``trials`` (rows as :func:`orchestrator.analysis.tables.load_trials` returns)."""
    missing = [c for c in NEEDED if c not in trials]
    if missing:
        raise ValueError(f"the trials lack column(s) {missing}; needed: {', '.join(NEEDED)}")
    if "trial_key" in trials:
        trials = trials.drop_duplicates("trial_key", keep="last")
    trials = trials[trials["test_metric"].notna()]
    if trials.empty:
        return (
            "No finished trials to read.\nRun a sweep with a pre-trained and a scratch backbone (e.g. make demo) first."
        )
    trials = trials.assign(pretrained=_pretrained_flags(trials))
    if not trials["pretrained"].any():
        names = ", ".join(sorted(trials["backbone"].unique()))
        return (
            f"No pre-trained backbone in these trials (only {names}): nothing to compare scratch against.\n"
            "Add a pre-trained backbone such as hu-gcn-supervised-contextpred to the spec's backbones."
        )
    if trials["pretrained"].all():
        names = ", ".join(sorted(trials["backbone"].unique()))
        return (
            f"No scratch backbone in these trials (only pre-trained {names}): nothing measures what "
            "pre-training adds.\n"
            "Add the scratch backbone of the same architecture (e.g. scratch-gcn) to the spec's backbones."
        )
    context, comparisons, others = compare(trials)
    if context is None:
        return (
            "The pre-trained and scratch backbones never share a task, method, split and label setting: "
            "nothing to compare.\n"
            "Run both backbones on the same cells (one spec listing both) to measure what pre-training adds."
        )
    return first_line(context, comparisons) + "\n" + second_line(context, comparisons, trials, others)
