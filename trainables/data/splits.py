"""Train/valid/test splits (80/10/10, split seed 42) and label settings, as the reference code selects them.

A split (registry ``SPLITS``) returns a :class:`Split`: three disjoint, sorted index arrays into
the dataset (``G`` molecules), plus the training indices in the order the split produced them
(``train_order``), which is the order a label subset draws from.

* ``scaffold``: Bemis-Murcko scaffold sets (chirality included), each set in ascending index,
  the sets sorted by ``(size, first index)`` descending (so of two sets of one size the one
  with the *later* first index comes first), filled greedily (:func:`_greedy_fill`): a set goes
  to train unless train would exceed ``0.8 * G``, else to valid unless train + valid would
  exceed ``0.9 * G``, else to test. A later, smaller set may still go to train after a larger
  one overflowed. Deterministic (the seed is unused).
* ``size``: molecules grouped by atom count (heavy atoms of the parsed molecule, the number of
  graph nodes), each group in ascending index, groups in *ascending* atom count, filled by the
  same greedy rule. Mostly the small molecules train and the large ones test, but a small group
  of large molecules may still fit into train after a larger group of smaller ones overflowed.
* ``random``: ``random.Random(seed).shuffle(list(range(G)))`` (Python's Mersenne Twister); the
  first ``int(0.8 G)`` go to train, the next ``int(0.1 G)`` to valid, the rest to test.
  ``train_order`` is the shuffled order, recorded as already shuffled by ``seed``.

Label settings (:func:`parse_label_setting`): ``full``; ``fewshot:N`` keeps ``N`` training
molecules (not per class); ``ratio:r`` keeps ``round(r * n_train)`` (at least 1), ``0 < r <= 1``.
A subset (:meth:`LabelSetting.subset`) is the first molecules of ``train_order`` after
``random.Random(subset_seed).shuffle``, the shuffle skipped when ``train_order`` was already
shuffled by ``subset_seed`` (the random split under its own seed), exactly as the reference code
takes few-shot subsets. Fewshot and ratio subsets of one split and seed are nested (a smaller one
is a prefix of a larger one). Valid and test are never reduced. By default ``subset_seed`` is the
split seed (42), so every run seed sees the same subset, as in the reference code.

:func:`subset_revision` numbers the selection rule behind a (split, label setting) pair: 1 where
the training molecules are those roft selected before the rules above matched the reference
code, 2 where they changed.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from trainables.core.registry import Registry

SPLIT_SEED = 42
FRACTIONS = (0.8, 0.1, 0.1)


@dataclass(frozen=True)
class Split:
    """``train``/``valid``/``test``: sorted int64 indices. ``train_order``: the training indices in
    the order the split produced them; ``train_shuffled_by``: the seed whose shuffle produced that
    order (the random split), ``None`` for a deterministic order. ``valid_order``: the validation
    indices in the order the split produced them (the order the reference code's unshuffled
    validation loader visits them, which RoFt-Mol's alphas fit in)."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    train_order: np.ndarray
    train_shuffled_by: int | None = None
    valid_order: np.ndarray | None = None

    def sizes(self) -> tuple[int, int, int]:
        return len(self.train), len(self.valid), len(self.test)


SplitFn = Callable[[Sequence[str], np.ndarray, int], Split]
SPLITS: Registry[SplitFn] = Registry("split")


def _as_split(train: list[int], valid: list[int], test: list[int], shuffled_by: int | None = None) -> Split:
    as_array = lambda idx: np.asarray(sorted(idx), dtype=np.int64)  # noqa: E731
    return Split(
        as_array(train),
        as_array(valid),
        as_array(test),
        np.asarray(train, dtype=np.int64),
        shuffled_by,
        np.asarray(valid, dtype=np.int64),
    )


def _greedy_fill(groups: list[list[int]], n: int, fractions: tuple[float, float, float] = FRACTIONS) -> Split:
    """The reference fill: each group, in order, goes to train if it fits under ``0.8 n``, else
    to valid if train + valid stay under ``0.9 n``, else to test. A later, smaller group may
    still fit into train after a larger one overflowed. ``train_order`` is the fill order."""
    train_cutoff = fractions[0] * n
    valid_cutoff = (fractions[0] + fractions[1]) * n
    train: list[int] = []
    valid: list[int] = []
    test: list[int] = []
    for group in groups:
        if len(train) + len(group) > train_cutoff:
            if len(train) + len(valid) + len(group) > valid_cutoff:
                test.extend(group)
            else:
                valid.extend(group)
        else:
            train.extend(group)
    return _as_split(train, valid, test)


@SPLITS.register("scaffold")
def scaffold_split(scaffolds: Sequence[str], num_atoms: np.ndarray, seed: int = SPLIT_SEED) -> Split:
    by_scaffold: dict[str, list[int]] = defaultdict(list)
    for i, scaffold in enumerate(scaffolds):
        by_scaffold[scaffold].append(i)
    groups = sorted(by_scaffold.values(), key=lambda g: (len(g), g[0]), reverse=True)
    return _greedy_fill(groups, len(scaffolds))


@SPLITS.register("size")
def size_split(scaffolds: Sequence[str], num_atoms: np.ndarray, seed: int = SPLIT_SEED) -> Split:
    by_size: dict[int, list[int]] = defaultdict(list)
    for i, size in enumerate(np.asarray(num_atoms).tolist()):
        by_size[size].append(i)
    groups = [by_size[size] for size in sorted(by_size)]
    return _greedy_fill(groups, len(num_atoms))


@SPLITS.register("random")
def random_split(scaffolds: Sequence[str], num_atoms: np.ndarray, seed: int = SPLIT_SEED) -> Split:
    n = len(num_atoms)
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_train, n_valid = int(FRACTIONS[0] * n), int(FRACTIONS[1] * n)
    return _as_split(order[:n_train], order[n_train : n_train + n_valid], order[n_train + n_valid :], shuffled_by=seed)


def make_split(name: str, scaffolds: Sequence[str], num_atoms: np.ndarray, seed: int = SPLIT_SEED) -> Split:
    """The ``name`` split; every part must hold at least one molecule (else ``ValueError``)."""
    split = SPLITS.get(name)(scaffolds, num_atoms, seed)
    empty = [part for part in ("train", "valid", "test") if len(getattr(split, part)) == 0]
    if empty:
        raise ValueError(
            f"the {name} split of {len(scaffolds)} molecules leaves the {' and '.join(empty)} "
            f"set(s) empty; a task needs at least one molecule in each of train, valid and test "
            f"(about 10 molecules for the 80/10/10 fractions)"
        )
    return split


# --------------------------------------------------------------------------- label settings


@dataclass(frozen=True)
class LabelSetting:
    """``kind`` is ``full``, ``fewshot`` (``value`` = molecules) or ``ratio`` (``value`` = fraction)."""

    kind: str
    value: float | int | None = None

    @property
    def amount(self) -> float:
        """The ``value`` of a ``fewshot`` or ``ratio`` setting (molecules, or the fraction kept)."""
        if self.value is None:
            raise ValueError(f"label setting {self.kind!r} has no value")
        return self.value

    def __str__(self) -> str:
        if self.kind == "full":
            return "full"
        if self.kind == "fewshot":
            return f"fewshot:{int(self.amount)}"
        value = float(self.amount)
        return f"ratio:{int(value) if value.is_integer() else repr(value)}"  # exact round trip

    def keeps_all(self) -> bool:
        """Whether every training molecule is kept (``full`` or ``ratio:1``)."""
        return self.kind == "full" or (self.kind == "ratio" and float(self.amount) == 1.0)

    def subset(self, split: Split, subset_seed: int) -> np.ndarray:
        """The training indices of ``split`` kept under this setting (sorted).

        ``k`` = ``N`` (fewshot) or ``max(1, round(r * n_train))`` (ratio) molecules: the first
        ``k`` of ``split.train_order`` after ``random.Random(subset_seed).shuffle``, the shuffle
        skipped when ``split.train_shuffled_by == subset_seed`` (the order is already that shuffle).
        """
        if self.kind == "full":
            return split.train
        n_train = len(split.train)
        keep = int(self.amount) if self.kind == "fewshot" else max(1, int(round(self.amount * n_train)))
        if keep > n_train:
            raise ValueError(
                f"label setting {self} asks for {keep} training molecules but the split's train set has only {n_train}"
            )
        order = split.train_order.tolist()
        if split.train_shuffled_by != subset_seed:
            random.Random(subset_seed).shuffle(order)
        return np.asarray(sorted(order[:keep]), dtype=np.int64)


LABEL_SETTING_FORMS = "'full', 'fewshot:N' (N >= 1 molecules) or 'ratio:r' (0 < r <= 1)"


def parse_label_setting(text: str) -> LabelSetting:
    """Parse ``full``, ``fewshot:N`` or ``ratio:r``; a clear ``ValueError`` otherwise."""
    text = str(text).strip()
    if text == "full":
        return LabelSetting("full")
    kind, _, value = text.partition(":")
    try:
        if kind == "fewshot" and int(value) >= 1 and str(int(value)) == value:
            return LabelSetting("fewshot", int(value))
        if kind == "ratio" and 0 < float(value) <= 1:
            return LabelSetting("ratio", float(value))
    except ValueError:
        pass
    raise ValueError(f"invalid label setting {text!r}; accepted: {LABEL_SETTING_FORMS}")


def subset_revision(split: str, label_setting: str) -> int:
    """The revision of the rule that selects the training molecules of ``split`` under
    ``label_setting``: 1 where they are the molecules roft selected before its splits and subsets
    followed the reference code (the scaffold split keeping every training molecule: ``full`` or
    ``ratio:1``), 2 where the selection changed (the random and size splits, and every fewshot or
    ratio subset that drops molecules). Unknown names raise the registry's / parser's error."""
    SPLITS.get(split)
    setting = parse_label_setting(label_setting)
    return 1 if split == "scaffold" and setting.keeps_all() else 2
