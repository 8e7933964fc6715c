"""Train/valid/test splits (80/10/10, split seed 42) and label settings.

Splits (registry ``SPLITS``; each returns three disjoint index arrays into the dataset):

* ``scaffold``: Bemis-Murcko scaffold sets (chirality included), sorted by size, largest
  first (ties: by first index), filled greedily: a set goes to train unless train would
  exceed ``0.8 * G``, then to valid unless train + valid would exceed ``0.9 * G``, else to
  test. Deterministic (the seed is unused), as in the reference splitter.
* ``size``: molecules grouped by atom count, groups in *ascending* size fill train up to
  ``0.8 * G``, then valid up to ``0.9 * G``, then test, never going back, so every test
  molecule is at least as large as every valid one, and valid as every train one (out of
  distribution by size).
* ``random``: a permutation by ``numpy.random.RandomState(seed)``; the first ``int(0.8 G)``
  go to train, the next ``int(0.1 G)`` to valid, the rest to test.

Label settings (:func:`parse_label_setting`): ``full``; ``fewshot:N`` keeps ``N`` training
molecules (not per class); ``ratio:r`` keeps ``round(r * n_train)`` (at least 1), ``0 < r <= 1``.
The subset is the first molecules of the training indices shuffled by ``RandomState(subset_seed)``;
valid and test are never reduced. By default ``subset_seed`` is the split seed (42), so every
run seed sees the same subset, as in the reference code.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from trainables.core.registry import Registry

SPLIT_SEED = 42
FRACTIONS = (0.8, 0.1, 0.1)


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray

    def sizes(self) -> tuple[int, int, int]:
        return len(self.train), len(self.valid), len(self.test)


SplitFn = Callable[[Sequence[str], np.ndarray, int], Split]
SPLITS: Registry[SplitFn] = Registry("split")


def _as_split(train: list[int], valid: list[int], test: list[int]) -> Split:
    as_array = lambda idx: np.asarray(sorted(idx), dtype=np.int64)  # noqa: E731
    return Split(as_array(train), as_array(valid), as_array(test))


def _greedy_fill(groups: list[list[int]], n: int, fractions: tuple[float, float, float] = FRACTIONS) -> Split:
    """The reference scaffold fill: each group, in order, goes to train if it fits under
    ``0.8 n``, else to valid if train + valid stay under ``0.9 n``, else to test. A later,
    smaller group may still fit into train after a larger one overflowed."""
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


def _sequential_fill(groups: list[list[int]], n: int, fractions: tuple[float, float, float] = FRACTIONS) -> Split:
    """Fill train, then valid, then test with whole groups *in order*, never going back: once a
    group overflows a part, every later group goes to a later part (so for groups sorted by
    size, test holds the largest molecules)."""
    cutoffs = (fractions[0] * n, (fractions[0] + fractions[1]) * n, float("inf"))
    parts: tuple[list[int], list[int], list[int]] = ([], [], [])
    part, filled = 0, 0
    for group in groups:
        while filled + len(group) > cutoffs[part]:
            part += 1
        parts[part].extend(group)
        filled += len(group)
    return _as_split(*parts)


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
    return _sequential_fill(groups, len(num_atoms))


@SPLITS.register("random")
def random_split(scaffolds: Sequence[str], num_atoms: np.ndarray, seed: int = SPLIT_SEED) -> Split:
    n = len(num_atoms)
    order = np.random.RandomState(seed).permutation(n)
    n_train, n_valid = int(FRACTIONS[0] * n), int(FRACTIONS[1] * n)
    return Split(np.sort(order[:n_train]), np.sort(order[n_train:n_train + n_valid]), np.sort(order[n_train + n_valid:]))


def make_split(name: str, scaffolds: Sequence[str], num_atoms: np.ndarray, seed: int = SPLIT_SEED) -> Split:
    """The ``name`` split; every part must hold at least one molecule (else ``ValueError``)."""
    split = SPLITS.get(name)(scaffolds, num_atoms, seed)
    empty = [part for part in ("train", "valid", "test") if len(getattr(split, part)) == 0]
    if empty:
        raise ValueError(f"the {name} split of {len(scaffolds)} molecules leaves the {' and '.join(empty)} "
                         f"set(s) empty; a task needs at least one molecule in each of train, valid and test "
                         f"(about 10 molecules for the 80/10/10 fractions)")
    return split


# --------------------------------------------------------------------------- label settings

@dataclass(frozen=True)
class LabelSetting:
    """``kind`` is ``full``, ``fewshot`` (``value`` = molecules) or ``ratio`` (``value`` = fraction)."""

    kind: str
    value: float | int | None = None

    def __str__(self) -> str:
        if self.kind == "full":
            return "full"
        if self.kind == "fewshot":
            return f"fewshot:{int(self.value)}"
        value = float(self.value)
        return f"ratio:{int(value) if value.is_integer() else repr(value)}"  # exact round trip

    def subset(self, train: np.ndarray, subset_seed: int) -> np.ndarray:
        """The training indices kept under this setting (sorted)."""
        if self.kind == "full":
            return train
        n_train = len(train)
        keep = int(self.value) if self.kind == "fewshot" else max(1, int(round(self.value * n_train)))
        if keep > n_train:
            raise ValueError(f"label setting {self} asks for {keep} training molecules but the split's "
                             f"train set has only {n_train}")
        order = np.random.RandomState(subset_seed).permutation(n_train)
        return np.sort(train[order[:keep]])


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
