"""trainables.data.splits: scaffold / size / random splits and label settings."""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import pytest

from tests.unit.trainables.hand_molecules import HAND_SMILES
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
    subset_revision,
)

SCAFFOLDS = ["A", "B", "A", "C", "A", "B", "D", "A", "E", "B"]


def check_partition(split: Split, n: int) -> None:
    parts = [split.train, split.valid, split.test]
    assert sum(len(p) for p in parts) == n
    joined = np.concatenate(parts)
    assert len(np.unique(joined)) == n and joined.min() >= 0 and joined.max() == n - 1
    for p in parts:
        assert p.dtype == np.int64 and np.all(np.diff(p) > 0)  # sorted, no duplicates
    assert sorted(split.train_order.tolist()) == split.train.tolist()  # the same molecules, in fill order


# ----------------------------------------------------------------------------- the reference, written out
# A plain re-implementation of the reference code's splitters (scaffold_split, size_split, random_split
# with their fewshot arguments), kept independent of roft's module: the global ``random`` module as that
# code uses it, its own grouping, sorting and fill. Each returns (train, valid, test) lists; ``train`` is
# cut to ``fewshot`` molecules when given.

def reference_fill(groups: Sequence[list[int]], n: int) -> tuple[list[int], list[int], list[int]]:
    train: list[int] = []
    valid: list[int] = []
    test: list[int] = []
    for group in groups:
        if len(train) + len(group) > 0.8 * n:
            if len(train) + len(valid) + len(group) > 0.9 * n:
                test.extend(group)
            else:
                valid.extend(group)
        else:
            train.extend(group)
    return train, valid, test


def reference_fewshot(train: list[int], fewshot: int, seed: int) -> list[int]:
    """``random.seed(seed); random.shuffle(train); train[:fewshot]`` (global state restored after)."""
    state = random.getstate()
    try:
        random.seed(seed)
        train = list(train)
        random.shuffle(train)
    finally:
        random.setstate(state)
    return train[:fewshot]


def reference_scaffold(scaffold_of: Sequence[str], fewshot: int | None = None, seed: int = 42):
    sets: dict[str, list[int]] = {}
    for i, scaffold in enumerate(scaffold_of):
        sets.setdefault(scaffold, []).append(i)
    sets = {key: sorted(members) for key, members in sets.items()}
    ordered = [members for _, members in sorted(sets.items(), key=lambda kv: (len(kv[1]), kv[1][0]), reverse=True)]
    train, valid, test = reference_fill(ordered, len(scaffold_of))
    return (reference_fewshot(train, fewshot, seed) if fewshot else train), valid, test


def reference_size(atoms_of: Sequence[int], fewshot: int | None = None, seed: int = 42):
    sizes: dict[int, list[int]] = {}
    for i, atoms in enumerate(atoms_of):
        sizes.setdefault(int(atoms), []).append(i)
    train, valid, test = reference_fill([sorted(v) for _, v in sorted(sizes.items())], len(atoms_of))
    return (reference_fewshot(train, fewshot, seed) if fewshot else train), valid, test


def reference_random(n: int, fewshot: int | None = None, seed: int = 42):
    state = random.getstate()
    try:
        random.seed(seed)
        order = list(range(n))
        random.shuffle(order)
    finally:
        random.setstate(state)
    n_train, n_valid = int(0.8 * n), int(0.1 * n)
    train, valid, test = order[:n_train], order[n_train:n_train + n_valid], order[n_train + n_valid:]
    return (train[:fewshot] if fewshot else train), valid, test


def reference(name: str, scaffold_of: Sequence[str], atoms_of: Sequence[int], fewshot: int | None = None,
              seed: int = 42) -> tuple[set[int], set[int], set[int]]:
    if name == "scaffold":
        parts = reference_scaffold(scaffold_of, fewshot, seed)
    elif name == "size":
        parts = reference_size(atoms_of, fewshot, seed)
    else:
        parts = reference_random(len(atoms_of), fewshot, seed)
    return tuple(set(part) for part in parts)


def roft(name: str, scaffold_of: Sequence[str], atoms_of: Sequence[int], label_setting: str = "full",
         subset_seed: int = 42) -> tuple[set[int], set[int], set[int]]:
    split = make_split(name, list(scaffold_of), np.asarray(atoms_of))
    train = parse_label_setting(label_setting).subset(split, subset_seed)
    return set(train.tolist()), set(split.valid.tolist()), set(split.test.tolist())


def hand_keys() -> tuple[list[str], list[int]]:
    """Scaffold and atom count of each hand-written molecule, computed here with RDKit from the SMILES."""
    from rdkit import Chem
    from rdkit.Chem.Scaffolds import MurckoScaffold

    scaffolds = [MurckoScaffold.MurckoScaffoldSmiles(smiles=s, includeChirality=True) for s in HAND_SMILES]
    return scaffolds, [Chem.MolFromSmiles(s).GetNumAtoms() for s in HAND_SMILES]


def synthetic_keys(n: int = 300, seed: int = 0) -> tuple[list[str], list[int]]:
    """Skewed scaffold sets and atom counts: a few big groups, many small ones."""
    rng = np.random.RandomState(seed)
    return [f"s{k}" for k in rng.zipf(1.5, size=n)], (5 + rng.zipf(1.3, size=n) % 60).tolist()


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


def reference_smiles_scaffold_split(smiles_list: list[str]) -> tuple[set[int], set[int], set[int]]:
    """The reference scaffold split as that code runs it: on SMILES strings, each re-parsed for its
    Murcko scaffold (chirality included)."""
    from rdkit.Chem.Scaffolds import MurckoScaffold

    scaffolds = [MurckoScaffold.MurckoScaffoldSmiles(smiles=s, includeChirality=True) for s in smiles_list]
    return reference("scaffold", scaffolds, [0] * len(smiles_list))


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
    reference = reference_smiles_scaffold_split(canonical_smiles if canonical else raw)
    split = make_split("scaffold", data.scaffolds, data.num_atoms)
    ours = tuple(set(part.tolist()) for part in (split.train, split.valid, split.test))
    assert ours == reference
    other_route = reference_smiles_scaffold_split(raw if canonical else canonical_smiles)
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


def test_size_split_fills_greedily_like_the_scaffold_split():
    atoms = np.array([1] * 7 + [2] * 2 + [3])  # the 2-atom group overflows train, the 3-atom one still fits in
    split = size_split(["x"] * 10, atoms)
    check_partition(split, 10)
    assert split.train.tolist() == [0, 1, 2, 3, 4, 5, 6, 9] and split.valid.tolist() == [7, 8] and split.test.size == 0
    assert split.train_order.tolist() == [0, 1, 2, 3, 4, 5, 6, 9]  # groups in ascending atom count


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


# ----------------------------------------------------------------------------- random

def test_random_split_sizes_and_determinism():
    n = 2039
    atoms = np.ones(n)
    a = random_split([""] * n, atoms, 42)
    assert a.sizes() == (1631, 203, 205)
    check_partition(a, n)
    b = make_split("random", [""] * n, atoms, 42)
    assert all(np.array_equal(x, y) for x, y in zip((a.train, a.valid, a.test), (b.train, b.valid, b.test)))
    order = list(range(n))
    random.Random(42).shuffle(order)
    assert a.train_order.tolist() == order[:1631] and a.train_shuffled_by == 42
    assert a.valid.tolist() == sorted(order[1631:1834])
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
    split = scaffold_split([f"s{i % 23}" for i in range(250)], np.ones(250))
    setting = parse_label_setting("fewshot:50")
    a = setting.subset(split, subset_seed=42)
    assert len(a) == 50 and len(np.unique(a)) == 50
    assert set(a.tolist()) <= set(split.train.tolist())
    assert np.all(np.diff(a) > 0)
    assert np.array_equal(a, setting.subset(split, subset_seed=42))
    assert not np.array_equal(a, setting.subset(split, subset_seed=0))
    order = split.train_order.tolist()
    random.Random(42).shuffle(order)
    assert a.tolist() == sorted(order[:50])


def test_ratio_and_full_subsets():
    split = scaffold_split([f"s{i}" for i in range(46)], np.ones(46))
    assert len(split.train) == 36
    assert len(parse_label_setting("ratio:0.1").subset(split, 42)) == 4  # round(3.6)
    assert len(parse_label_setting("ratio:0.01").subset(split, 42)) == 1  # at least one
    assert np.array_equal(parse_label_setting("ratio:1").subset(split, 42), split.train)
    assert parse_label_setting("full").subset(split, 42) is split.train


@pytest.mark.parametrize("name", ["scaffold", "size", "random"])
def test_ratio_and_fewshot_subsets_are_nested(name):
    scaffolds, atoms = synthetic_keys()
    split = make_split(name, scaffolds, np.asarray(atoms))
    for seed in (42, 0):
        ratio = parse_label_setting("ratio:0.2").subset(split, seed)  # 48 of 240
        fewshot = parse_label_setting(f"fewshot:{len(ratio)}").subset(split, seed)
        assert np.array_equal(ratio, fewshot)
        assert set(parse_label_setting("fewshot:10").subset(split, seed).tolist()) <= set(ratio.tolist())


def test_fewshot_larger_than_train_errors():
    split = scaffold_split([f"s{i}" for i in range(47)], np.ones(47))
    assert len(split.train) == 37
    with pytest.raises(ValueError, match=r"fewshot:500 asks for 500 training molecules but the split's train set has only 37"):
        parse_label_setting("fewshot:500").subset(split, 42)
    assert np.array_equal(parse_label_setting("fewshot:37").subset(split, 42), split.train)


def test_a_split_that_leaves_a_part_empty_is_a_clear_error():
    with pytest.raises(ValueError, match=r"the scaffold split of 3 molecules leaves the train and valid set\(s\) empty"):
        make_split("scaffold", ["c1ccccc1"] * 3, np.array([6, 6, 6]))


# ----------------------------------------------------------------------------- against the reference

@pytest.mark.parametrize("name", ["scaffold", "size", "random"])
@pytest.mark.parametrize("fewshot", [None, 1, 5, 16])
def test_hand_molecules_match_the_reference(name, fewshot):
    """Every split and few-shot subset of the hand-written molecules, molecule by molecule."""
    scaffolds, atoms = hand_keys()
    featurized_scaffolds, featurized_atoms = _hand_dataset_keys()
    setting = "full" if fewshot is None else f"fewshot:{fewshot}"
    assert roft(name, featurized_scaffolds, featurized_atoms, setting) == reference(name, scaffolds, atoms, fewshot)


def _hand_dataset_keys() -> tuple[list[str], list[int]]:
    """Scaffolds and atom counts as roft's featurizer computes them for the hand-written molecules."""
    from trainables.data.dataset import featurize_table

    graphs = featurize_table(HAND_SMILES)
    assert graphs["source_rows"].tolist() == list(range(len(HAND_SMILES)))
    return graphs["scaffolds"], (graphs["node_ptr"][1:] - graphs["node_ptr"][:-1]).tolist()


@pytest.mark.parametrize("name", ["scaffold", "size", "random"])
@pytest.mark.parametrize("data_seed", [0, 1, 2])
def test_synthetic_splits_and_subsets_match_the_reference(name, data_seed):
    scaffolds, atoms = synthetic_keys(seed=data_seed)
    assert roft(name, scaffolds, atoms) == reference(name, scaffolds, atoms)
    for fewshot in (1, 10, 100, 240):
        assert roft(name, scaffolds, atoms, f"fewshot:{fewshot}") == reference(name, scaffolds, atoms, fewshot)
    if name != "random":  # the reference's --seed also moves the random split; the others only reseed the subset
        assert roft(name, scaffolds, atoms, "fewshot:10", subset_seed=7) == reference(name, scaffolds, atoms, 10, seed=7)


def test_the_size_split_goes_back_to_train_on_the_synthetic_data():
    """The synthetic atom counts exercise the greedy fill: a group after the first overflow still fits."""
    _, atoms = synthetic_keys()
    split = size_split([""] * len(atoms), np.asarray(atoms))
    atoms = np.asarray(atoms)
    assert atoms[split.train].max() > atoms[split.valid].min()


def test_random_split_subset_under_another_seed_reshuffles_the_training_order():
    """No reference counterpart (its subset always uses the split seed): documented rule."""
    split = random_split([""] * 200, np.ones(200), 42)
    order = split.train_order.tolist()
    random.Random(3).shuffle(order)
    assert parse_label_setting("fewshot:20").subset(split, 3).tolist() == sorted(order[:20])
    assert parse_label_setting("fewshot:20").subset(split, 42).tolist() == sorted(split.train_order[:20].tolist())


def _perturbed_references():
    """The reference with one detail changed each; every one must select other molecules than roft."""

    def numpy_on_sorted(name, scaffolds, atoms, fewshot):  # roft's former subset: RandomState over sorted indices
        train, valid, test = reference(name, scaffolds, atoms)
        train = sorted(train)
        return {train[i] for i in np.random.RandomState(42).permutation(len(train))[:fewshot]}, valid, test

    def shuffled_sorted(name, scaffolds, atoms, fewshot):  # the right shuffle, but over sorted indices
        train, valid, test = reference(name, scaffolds, atoms)
        return set(reference_fewshot(sorted(train), fewshot, 42)), valid, test

    def other_seed(name, scaffolds, atoms, fewshot):  # (for the random split this moves the split itself)
        return reference(name, scaffolds, atoms, fewshot, seed=43)

    def numpy_random_split(name, scaffolds, atoms, fewshot):  # roft's former random split
        order = np.random.RandomState(42).permutation(len(atoms)).tolist()
        n_train, n_valid = int(0.8 * len(atoms)), int(0.1 * len(atoms))
        return set(order[:n_train][:fewshot]), set(order[n_train:n_train + n_valid]), set(order[n_train + n_valid:])

    def never_go_back(name, scaffolds, atoms, fewshot):  # roft's former size fill
        sizes: dict[int, list[int]] = {}
        for i, a in enumerate(atoms):
            sizes.setdefault(a, []).append(i)
        parts: list[list[int]] = [[], [], []]
        part, filled, cutoffs = 0, 0, (0.8 * len(atoms), 0.9 * len(atoms), float("inf"))
        for _, group in sorted(sizes.items()):
            while filled + len(group) > cutoffs[part]:
                part += 1
            parts[part].extend(group)
            filled += len(group)
        return set(reference_fewshot(parts[0], fewshot, 42)), set(parts[1]), set(parts[2])

    return {"numpy_on_sorted": (numpy_on_sorted, ("scaffold", "size", "random")),
            "shuffled_sorted": (shuffled_sorted, ("scaffold", "size", "random")),
            "other_seed": (other_seed, ("scaffold", "size", "random")),
            "numpy_random_split": (numpy_random_split, ("random",)),
            "never_go_back": (never_go_back, ("size",))}


@pytest.mark.parametrize("perturbation", sorted(_perturbed_references()))
def test_a_perturbed_reference_is_caught(perturbation):
    """The comparison is sharp: a reference with the wrong seed, order, generator or fill disagrees."""
    variant, names = _perturbed_references()[perturbation]
    scaffolds, atoms = synthetic_keys()
    for name in names:
        ours = roft(name, scaffolds, atoms, "fewshot:30")
        assert ours == reference(name, scaffolds, atoms, 30)
        assert variant(name, scaffolds, atoms, 30) != ours, (perturbation, name)


@pytest.mark.data
@pytest.mark.parametrize("task", ["bbbp", "esol", pytest.param("lipophilicity", marks=pytest.mark.slow)])
def test_real_splits_and_subsets_match_the_reference(real_env, task):
    """The three splits and the 50/100/500-molecule subsets of a real task, molecule by molecule,
    against the reference logic run on the molecules the reference loader keeps, with scaffolds from
    the SMILES that loader hands its splitter and atom counts from RDKit."""
    from rdkit import Chem
    from rdkit.Chem.Scaffolds import MurckoScaffold

    from trainables.data import sources
    from trainables.data.dataset import load_task, read_table
    from trainables.data.tasks import TASKS

    spec = TASKS.get(task)
    table = read_table(sources.resolve(spec.file, DataRoot.from_setting()))
    parsed = [(row, Chem.MolFromSmiles(s)) for row, s in enumerate(table[spec.smiles_column].tolist())
              if isinstance(s, str)]
    kept = [(row, mol) for row, mol in parsed if mol is not None]  # what the reference loader keeps
    data = load_task(task)
    assert data.source_rows.tolist() == [row for row, _ in kept]  # the same molecules, in the same order
    route = (lambda row, mol: Chem.MolToSmiles(mol)) if spec.scaffold_source == "canonical" else (
        lambda row, mol: table[spec.smiles_column][row])
    scaffolds = [MurckoScaffold.MurckoScaffoldSmiles(smiles=route(row, mol), includeChirality=True) for row, mol in kept]
    atoms = [mol.GetNumAtoms() for _, mol in kept]
    for name in ("scaffold", "size", "random"):
        split = make_split(name, data.scaffolds, data.num_atoms)
        ours = set(split.train.tolist()), set(split.valid.tolist()), set(split.test.tolist())
        assert ours == reference(name, scaffolds, atoms), name
        for fewshot in (50, 100, 500):
            kept_train = set(parse_label_setting(f"fewshot:{fewshot}").subset(split, 42).tolist())
            assert kept_train == reference(name, scaffolds, atoms, fewshot)[0], (name, fewshot)


# ----------------------------------------------------------------------------- subset revision

@pytest.mark.parametrize("split, label_setting, revision", [
    ("scaffold", "full", 1),
    ("scaffold", "ratio:1", 1),  # keeps every training molecule, as before
    ("scaffold", "fewshot:100", 2),
    ("scaffold", "ratio:0.1", 2),
    ("random", "full", 2),
    ("random", "fewshot:50", 2),
    ("random", "ratio:1", 2),
    ("size", "full", 2),
    ("size", "ratio:0.5", 2),
])
def test_subset_revision(split, label_setting, revision):
    assert subset_revision(split, label_setting) == revision


def test_subset_revision_rejects_unknown_names():
    with pytest.raises(KeyError, match="unknown split 'scafold'"):
        subset_revision("scafold", "full")
    with pytest.raises(ValueError, match="invalid label setting 'fewshot:0'"):
        subset_revision("scaffold", "fewshot:0")


def test_subset_revision_1_means_the_former_selection():
    """Where the revision is 1 the kept molecules equal the former rule's (sorted scaffold train set)."""
    scaffolds, atoms = synthetic_keys()
    split = make_split("scaffold", scaffolds, np.asarray(atoms))
    for setting in ("full", "ratio:1"):
        assert subset_revision("scaffold", setting) == 1
        assert np.array_equal(parse_label_setting(setting).subset(split, 42), split.train)
