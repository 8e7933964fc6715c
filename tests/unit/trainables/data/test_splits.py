"""trainables.data.splits: scaffold / size / random splits and label settings."""

from __future__ import annotations

import numpy as np
import pytest

from trainables.core.data_root import DataRoot
from trainables.data.splits import (
    SPLITS,
    LabelSetting,
    Split,
    make_split,
    parse_label_setting,
    random_split,
    scaffold_split,
    size_split,
)

SCAFFOLDS = ["A", "B", "A", "C", "A", "B", "D", "A", "E", "B"]


def check_partition(split: Split, n: int) -> None:
    parts = [split.train, split.valid, split.test]
    assert sum(len(p) for p in parts) == n
    joined = np.concatenate(parts)
    assert len(np.unique(joined)) == n and joined.min() >= 0 and joined.max() == n - 1
    for p in parts:
        assert p.dtype == np.int64 and np.all(np.diff(p) > 0)  # sorted, no duplicates


def test_registry():
    assert SPLITS.names() == ["scaffold", "size", "random"]
    with pytest.raises(KeyError, match="unknown split 'scafold'.*did you mean 'scaffold'.*accepted: scaffold, size, random"):
        make_split("scafold", SCAFFOLDS, np.ones(10))


# ----------------------------------------------------------------------------- scaffold

def test_scaffold_split_by_hand():
    # groups A(4) B(3) then the singletons by first index, largest first: E(8), D(6), C(3)
    split = scaffold_split(SCAFFOLDS, np.ones(10))
    assert split.train.tolist() == [0, 1, 2, 4, 5, 7, 8, 9]
    assert split.valid.tolist() == [6]
    assert split.test.tolist() == [3]
    check_partition(split, 10)


def test_scaffold_split_ignores_seed():
    a = make_split("scaffold", SCAFFOLDS, np.ones(10), seed=0)
    b = make_split("scaffold", SCAFFOLDS, np.ones(10), seed=123)
    assert all(np.array_equal(x, y) for x, y in zip((a.train, a.valid, a.test), (b.train, b.valid, b.test)))


def test_scaffold_split_synthetic_never_shares_scaffolds():
    rng = np.random.RandomState(0)
    scaffolds = [f"s{k}" for k in rng.zipf(1.6, size=500)]
    split = scaffold_split(scaffolds, np.ones(500))
    check_partition(split, 500)
    sets = [{scaffolds[i] for i in part} for part in (split.train, split.valid, split.test)]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert len(split.train) <= 400 and len(split.train) + len(split.valid) <= 450


@pytest.mark.data
def test_bbbp_scaffold_split_matches_hu(real_env):
    from trainables.data.dataset import load_task

    data = load_task("bbbp")
    split = make_split("scaffold", data.scaffolds, data.num_atoms)
    assert split.sizes() == (1631, 204, 204)  # the published Hu et al. BBBP scaffold split
    check_partition(split, len(data))
    sets = [{data.scaffolds[i] for i in part} for part in (split.train, split.valid, split.test)]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])


def reference_scaffold_split(smiles_list: list[str]) -> tuple[set[int], set[int], set[int]]:
    """The pretrain-gnns ``scaffold_split``, written as that code works: it takes SMILES strings,
    re-parses each to compute its Murcko scaffold (chirality included), sorts the scaffold sets by
    (size, first index) descending and fills train (cutoff 0.8 n), then valid (0.9 n), then test."""
    from rdkit.Chem.Scaffolds import MurckoScaffold

    scaffolds: dict[str, list[int]] = {}
    for i, smiles in enumerate(smiles_list):
        scaffold = MurckoScaffold.MurckoScaffoldSmiles(smiles=smiles, includeChirality=True)
        scaffolds.setdefault(scaffold, []).append(i)
    ordered = [sorted(s) for _, s in sorted(scaffolds.items(), key=lambda x: (len(x[1]), x[1][0]), reverse=True)]
    train_cutoff, valid_cutoff = 0.8 * len(smiles_list), 0.9 * len(smiles_list)
    train: list[int] = []
    valid: list[int] = []
    test: list[int] = []
    for group in ordered:
        if len(train) + len(group) > train_cutoff:
            if len(train) + len(valid) + len(group) > valid_cutoff:
                test.extend(group)
            else:
                valid.extend(group)
        else:
            train.extend(group)
    return set(train), set(valid), set(test)


@pytest.mark.data
@pytest.mark.parametrize("task, canonical, moved", [("bbbp", True, 4), ("clintox", True, 2), ("bace", False, 0),
                                                    pytest.param("sider", False, 0, marks=pytest.mark.slow)])
def test_scaffold_split_membership_equals_the_reference_loaders(real_env, task, canonical, moved):
    """Membership, molecule by molecule, against the reference loaders: BBBP's and ClinTox's hand the
    splitter ``MolToSmiles(mol)``, the others the file's SMILES. With canonical SMILES, E/Z marks in
    some scaffolds differ from the raw route's, which moves ``moved`` molecules between train and
    valid (the test sets agree either way)."""
    from rdkit import Chem

    from trainables.data import sources
    from trainables.data.dataset import load_task, read_table
    from trainables.data.tasks import TASKS

    spec = TASKS.get(task)
    assert (spec.scaffold_source == "canonical") == canonical
    table = read_table(sources.resolve(spec.file, DataRoot.from_setting()))
    parsed = {row: Chem.MolFromSmiles(s) for row, s in enumerate(table[spec.smiles_column].tolist())
              if isinstance(s, str)}
    parsed = {row: mol for row, mol in parsed.items() if mol is not None}  # what the reference loader keeps
    data = load_task(task)
    rows = data.source_rows.tolist()
    dropped = sorted(set(parsed) - set(rows))  # roft also drops molecules with a dummy atom (a documented departure)
    assert rows == sorted(rows) and set(rows) <= set(parsed)
    assert len(dropped) == data.stats["dummy_atom_molecules"]
    assert all(any(atom.GetAtomicNum() == 0 for atom in parsed[row].GetAtoms()) for row in dropped)
    raw = [table[spec.smiles_column][row] for row in rows]
    canonical_smiles = [Chem.MolToSmiles(parsed[row]) for row in rows]
    reference = reference_scaffold_split(canonical_smiles if canonical else raw)
    split = make_split("scaffold", data.scaffolds, data.num_atoms)
    ours = tuple(set(part.tolist()) for part in (split.train, split.valid, split.test))
    assert ours == reference
    other_route = reference_scaffold_split(raw if canonical else canonical_smiles)
    assert other_route[2] == reference[2]
    assert len(other_route[0] ^ reference[0]) == moved and len(other_route[1] ^ reference[1]) == moved


# ----------------------------------------------------------------------------- size

def test_size_split_by_hand():
    atoms = np.array([3, 1, 2, 1, 1, 2, 5, 1, 4, 1])
    split = size_split(SCAFFOLDS, atoms)
    assert split.train.tolist() == [0, 1, 2, 3, 4, 5, 7, 9]
    assert split.valid.tolist() == [8]
    assert split.test.tolist() == [6]
    check_partition(split, 10)


def test_size_split_is_monotone_in_atom_count():
    atoms = np.array([1] * 7 + [2] * 2 + [3])  # the 2-atom group overflows train, the 3-atom one fits back in
    split = size_split(["x"] * 10, atoms)
    check_partition(split, 10)
    assert atoms[split.train].max() <= atoms[split.valid].min()
    assert atoms[split.valid].max() <= atoms[split.test].min()


@pytest.mark.data
def test_bbbp_size_split_partition(real_env):
    from trainables.data.dataset import load_task

    data = load_task("bbbp")
    split = make_split("size", data.scaffolds, data.num_atoms)
    check_partition(split, len(data))
    atoms = data.num_atoms
    # whole atom-count groups: no atom count is shared between train and test
    assert not set(atoms[split.train]) & set(atoms[split.test])
    assert atoms[split.test].max() == atoms.max()


@pytest.mark.data
def test_bbbp_size_split_test_holds_the_largest(real_env):
    from trainables.data.dataset import load_task

    data = load_task("bbbp")
    split = make_split("size", data.scaffolds, data.num_atoms)
    atoms = data.num_atoms
    assert atoms[split.train].max() <= atoms[split.valid].min()
    assert atoms[split.valid].max() <= atoms[split.test].min()


# ----------------------------------------------------------------------------- random

def test_random_split_sizes_and_determinism():
    n = 2039
    atoms = np.ones(n)
    a = random_split([""] * n, atoms, 42)
    assert a.sizes() == (1631, 203, 205)
    check_partition(a, n)
    b = make_split("random", [""] * n, atoms, 42)
    assert all(np.array_equal(x, y) for x, y in zip((a.train, a.valid, a.test), (b.train, b.valid, b.test)))
    order = np.random.RandomState(42).permutation(n)
    assert a.valid.tolist() == sorted(order[1631:1834].tolist())
    c = make_split("random", [""] * n, atoms, 0)
    assert not np.array_equal(a.train, c.train)
    assert c.sizes() == a.sizes()


@pytest.mark.data
def test_bbbp_random_split(real_env):
    from trainables.data.dataset import load_task

    data = load_task("bbbp")
    split = make_split("random", data.scaffolds, data.num_atoms)
    check_partition(split, len(data))
    assert split.sizes() == (1631, 203, 205)


# ----------------------------------------------------------------------------- label settings

@pytest.mark.parametrize("text, expected, printed", [
    ("full", LabelSetting("full"), "full"),
    (" full ", LabelSetting("full"), "full"),
    ("fewshot:100", LabelSetting("fewshot", 100), "fewshot:100"),
    ("fewshot:1", LabelSetting("fewshot", 1), "fewshot:1"),
    ("ratio:0.1", LabelSetting("ratio", 0.1), "ratio:0.1"),
    ("ratio:1", LabelSetting("ratio", 1.0), "ratio:1"),
])
def test_parse_label_setting(text, expected, printed):
    parsed = parse_label_setting(text)
    assert parsed == expected
    assert str(parsed) == printed
    assert parse_label_setting(str(parsed)) == parsed


@pytest.mark.parametrize("text", ["fewshot:0", "fewshot:-5", "fewshot:1.5", "fewshot:+5", "fewshot:", "ratio:1.5",
                                  "ratio:0", "ratio:-0.1", "ratio:nan", "ratio:abc", "few:3", "Full", "", "ratio"])
def test_bad_label_settings_name_the_value(text):
    with pytest.raises(ValueError) as info:
        parse_label_setting(text)
    message = str(info.value)
    assert f"invalid label setting {text.strip()!r}" in message
    assert "'full', 'fewshot:N' (N >= 1 molecules) or 'ratio:r' (0 < r <= 1)" in message


@pytest.mark.parametrize("text", ["fewshot:1000000", "ratio:0.12345678"])
def test_label_setting_str_round_trips(text):
    parsed = parse_label_setting(text)
    assert parse_label_setting(str(parsed)) == parsed


def test_fewshot_subset():
    train = np.arange(100, 300)  # 200 training indices
    setting = parse_label_setting("fewshot:50")
    a = setting.subset(train, subset_seed=42)
    assert len(a) == 50 and len(np.unique(a)) == 50
    assert set(a.tolist()) <= set(train.tolist())
    assert np.all(np.diff(a) > 0)
    assert np.array_equal(a, setting.subset(train, subset_seed=42))
    assert not np.array_equal(a, setting.subset(train, subset_seed=0))
    expected = np.sort(train[np.random.RandomState(42).permutation(200)[:50]])
    assert np.array_equal(a, expected)


def test_ratio_and_full_subsets():
    train = np.arange(37)
    assert len(parse_label_setting("ratio:0.1").subset(train, 42)) == 4  # round(3.7)
    assert len(parse_label_setting("ratio:0.01").subset(train, 42)) == 1  # at least one
    assert np.array_equal(parse_label_setting("ratio:1").subset(train, 42), train)
    assert parse_label_setting("full").subset(train, 42) is train


def test_fewshot_larger_than_train_errors():
    with pytest.raises(ValueError, match=r"fewshot:500 asks for 500 training molecules but the split's train set has only 37"):
        parse_label_setting("fewshot:500").subset(np.arange(37), 42)
    assert len(parse_label_setting("fewshot:37").subset(np.arange(37), 42)) == 37


def test_a_split_that_leaves_a_part_empty_is_a_clear_error():
    with pytest.raises(ValueError, match=r"the scaffold split of 3 molecules leaves the train and valid set\(s\) empty"):
        make_split("scaffold", ["c1ccccc1"] * 3, np.array([6, 6, 6]))
