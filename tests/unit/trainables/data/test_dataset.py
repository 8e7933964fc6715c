"""trainables.data.dataset: collation, batching by tensor ops, the featurized cache, label loading."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from tests.unit.trainables.hand_molecules import make_dataset
from trainables.core.data_root import DataRoot
from trainables.data import dataset as ds
from trainables.data import sources
from trainables.data.featurize import featurize_smiles
from trainables.data.sources import ChecksumError, DataFile
from trainables.data.tasks import Task, TaskType
from trainables.data.vocabulary import FEATURIZER_VERSION

ASPIRIN, CAFFEINE, ETHANOL, BENZENE = "CC(=O)Oc1ccccc1C(=O)O", "Cn1cnc2c1c(=O)n(C)c(=O)n2C", "CCO", "c1ccccc1"
ESOL = "moleculenet/esol.csv"


# ----------------------------------------------------------------------------- collation and batching

def test_featurize_table_collates_and_drops():
    table = ds.featurize_table([ASPIRIN, "C1CC", CAFFEINE, "*C", ETHANOL, BENZENE])
    assert table["node_ptr"].tolist() == [0, 13, 27, 30, 36]
    assert table["edge_ptr"].tolist() == [0, 26, 56, 60, 72]
    assert table["source_rows"].tolist() == [0, 2, 4, 5]
    assert table["x"].shape == (36, 2) and table["x"].dtype == torch.int64
    assert table["edge_index"].shape == (2, 72) and table["edge_attr"].shape == (72, 2)
    assert table["scaffolds"] == ["c1ccccc1", "O=c1[nH]c(=O)c2[nH]cnc2[nH]1", "", "c1ccccc1"]
    assert table["stats"]["molecules"] == 6
    assert (table["stats"]["invalid_smiles"], table["stats"]["dummy_atom_molecules"], table["stats"]["dropped"]) == (1, 1, 2)
    # edge indices stay local to each molecule
    ethanol = featurize_smiles(ETHANOL)
    assert torch.equal(table["edge_index"][:, 56:60], torch.from_numpy(ethanol.edge_index))


def test_featurize_table_all_dropped_is_empty_but_well_formed():
    table = ds.featurize_table(["C1CC", None])
    assert table["x"].shape == (0, 2) and table["edge_index"].shape == (2, 0) and table["edge_attr"].shape == (0, 2)
    assert table["node_ptr"].tolist() == [0] and table["edge_ptr"].tolist() == [0]
    assert table["source_rows"].tolist() == [] and table["scaffolds"] == []


def test_batch_offsets_and_gather():
    data = make_dataset([ASPIRIN, CAFFEINE, ETHANOL, BENZENE], [[1.0, 0.0], [0.0, 1.0], [np.nan, 1.0], [1.0, np.nan]])
    assert len(data) == 4 and data.num_tasks == 2
    assert data.num_atoms.tolist() == [13, 14, 3, 6]
    graphs = [featurize_smiles(s) for s in (ASPIRIN, CAFFEINE, ETHANOL, BENZENE)]
    ids = torch.tensor([2, 0, 3])  # ethanol, aspirin, benzene
    batch = data.batch(ids)
    assert batch.num_graphs == 3
    assert batch.batch.tolist() == [0] * 3 + [1] * 13 + [2] * 6
    expected_x = np.concatenate([graphs[2].x, graphs[0].x, graphs[3].x])
    assert torch.equal(batch.x, torch.from_numpy(expected_x))
    expected_ei = np.concatenate([graphs[2].edge_index, graphs[0].edge_index + 3, graphs[3].edge_index + 16], axis=1)
    assert torch.equal(batch.edge_index, torch.from_numpy(expected_ei))
    expected_ea = np.concatenate([graphs[2].edge_attr, graphs[0].edge_attr, graphs[3].edge_attr])
    assert torch.equal(batch.edge_attr, torch.from_numpy(expected_ea))
    torch.testing.assert_close(batch.y, data.y[ids], equal_nan=True, rtol=0, atol=0)
    assert torch.isnan(batch.y[0, 0]) and torch.isnan(batch.y[2, 1])
    # every edge of molecule b connects nodes of molecule b
    assert torch.equal(batch.batch[batch.edge_index[0]], batch.batch[batch.edge_index[1]])


def test_batch_of_a_graph_without_edges_and_repeats():
    data = make_dataset(["C", ETHANOL, "C"], [0.0, 1.0, 2.0])
    batch = data.batch(torch.tensor([1, 0, 1, 2]))
    assert batch.batch.tolist() == [0, 0, 0, 1, 2, 2, 2, 3]
    assert batch.edge_index.tolist() == [[0, 1, 1, 2, 4, 5, 5, 6], [1, 0, 2, 1, 5, 4, 6, 5]]
    assert batch.y[:, 0].tolist() == [1.0, 0.0, 1.0, 2.0]
    assert batch.to("cpu").x.shape == (8, 2)


def test_segment_gather_index():
    out = ds._segment_gather_index(torch.tensor([5, 0, 10]), torch.tensor([2, 0, 3]))
    assert out.tolist() == [5, 6, 10, 11, 12]


# ----------------------------------------------------------------------------- featurized cache

@pytest.mark.data
def test_load_graphs_writes_one_cache_file_atomically_and_reuses_it(monkeypatch, tmp_path, data_root):
    monkeypatch.setenv("ROFT_DATA", str(data_root))
    cache = tmp_path / "fresh-cache"
    monkeypatch.setenv("ROFT_CACHE", str(cache))
    graphs, sha = ds.load_graphs(ESOL, "smiles")
    assert sha == sources.FILES.get(ESOL).sha256
    folder = cache / "featurized"
    pt_files = sorted(p.name for p in folder.glob("*.pt"))
    assert pt_files == [f"{sha[:24]}-{FEATURIZER_VERSION}.pt"]
    everything = sorted(p.name for p in folder.iterdir())
    assert everything == sorted(pt_files + [f"{sha[:24]}-{FEATURIZER_VERSION}.lock"])  # no temp files left
    assert not list(cache.rglob("*.tmp"))
    assert list(cache.iterdir()) == [folder]  # the data file itself is read in place, not copied
    assert len(graphs["scaffolds"]) == 1128 and graphs["node_ptr"].shape == (1129,)
    assert graphs["stats"]["dropped"] == 0 and graphs["smiles_column"] == "smiles"

    def boom(*_args, **_kwargs):
        raise AssertionError("featurize_table called although the cache exists")

    monkeypatch.setattr(ds, "featurize_table", boom)
    again, sha2 = ds.load_graphs(ESOL, "smiles")
    assert sha2 == sha
    assert set(again) == set(graphs)
    for key in ("x", "edge_index", "edge_attr", "node_ptr", "edge_ptr", "source_rows"):
        assert torch.equal(again[key], graphs[key]), key
    assert again["scaffolds"] == graphs["scaffolds"] and again["stats"] == graphs["stats"]
    assert ds.is_cached(ds.TASKS.get("esol"), DataRoot.from_setting())
    assert not ds.is_cached(ds.TASKS.get("freesolv"), DataRoot.from_setting())


@pytest.mark.data
def test_checked_sha256_rejects_a_modified_copy(monkeypatch, tmp_path, data_root):
    root = tmp_path / "data"
    (root / "moleculenet").mkdir(parents=True)
    copy = root / ESOL
    shutil.copyfile(data_root / ESOL, copy)
    assert ds.checked_sha256(ESOL, copy) == sources.FILES.get(ESOL).sha256
    with open(copy, "ab") as fh:
        fh.write(b"\n")
    with pytest.raises(ChecksumError) as info:
        ds.checked_sha256(ESOL, copy)
    assert str(copy) in str(info.value) and sources.FILES.get(ESOL).sha256 in str(info.value)
    with pytest.raises(ChecksumError):
        ds.load_graphs(ESOL, "smiles", data_root=DataRoot(root))
    assert not (tmp_path / "roft-cache" / "featurized").exists() or not list(
        (tmp_path / "roft-cache" / "featurized").glob("*.pt"))


# ----------------------------------------------------------------------------- labels

@pytest.fixture
def fake_task_file(monkeypatch, tmp_path):
    """A registered file (only for this test) with an invalid SMILES, {-1, +1} labels and blanks."""
    relpath = "moleculenet/fake.csv"
    root = tmp_path / "data"
    (root / "moleculenet").mkdir(parents=True)
    frame = pd.DataFrame({
        "smiles": ["CCO", "C1CC", "c1ccccc1", "CC(=O)O", "*C", "CCN"],
        "a": [1, 1, -1, None, 1, -1],
        "b": [0.0, 1.0, 1.0, 0.0, 1.0, "x"],
    })
    path = root / relpath
    frame.to_csv(path, index=False)
    monkeypatch.setitem(sources.FILES._entries, relpath, DataFile(relpath, sources.sha256_of(path), None))
    monkeypatch.setenv("ROFT_DATA", str(root))
    return relpath, root


def test_load_task_aligns_labels_with_surviving_rows(fake_task_file):
    relpath, _ = fake_task_file
    task = Task("fake", relpath, "smiles", TaskType.CLASSIFICATION, ("a", "b"))
    data = ds.load_task(task)
    assert data.source_rows.tolist() == [0, 2, 3, 5]
    assert data.label_columns == ("a", "b")
    expected = np.array([[1, 0], [0, 1], [np.nan, 0], [0, np.nan]], dtype=np.float32)
    np.testing.assert_array_equal(data.y.numpy(), expected)  # -1 -> 0, blanks and junk -> NaN
    assert data.y.dtype == torch.float32
    assert data.stats["dropped"] == 2 and len(data.scaffolds) == 4
    assert data.file_sha256 == sources.FILES.get(relpath).sha256


def test_load_task_rejects_labels_outside_0_1(fake_task_file, tmp_path, monkeypatch):
    relpath, root = fake_task_file
    pd.DataFrame({"smiles": ["CCO", "CCN"], "a": [0, 2]}).to_csv(root / relpath, index=False)
    monkeypatch.setitem(sources.FILES._entries, relpath, DataFile(relpath, sources.sha256_of(root / relpath), None))
    task = Task("fake", relpath, "smiles", TaskType.CLASSIFICATION, ("a",))
    with pytest.raises(ValueError, match=r"task fake: classification labels outside \{0, 1\}: \[2\.\]"):
        ds.load_task(task)
    regression = Task("fake", relpath, "smiles", TaskType.REGRESSION, ("a",))
    assert ds.load_task(regression).y[:, 0].tolist() == [0.0, 2.0]


@pytest.mark.data
def test_load_real_bbbp(real_env):
    data = ds.load_task("bbbp")
    assert len(data) == 2039 and data.num_tasks == 1
    assert data.stats["invalid_smiles"] == 11 and data.stats["dropped"] == 11
    assert set(torch.unique(data.y).tolist()) == {0.0, 1.0}
    assert data.label_columns == ("p_np",)
    assert int(data.node_ptr[-1]) == data.x.shape[0] and int(data.edge_ptr[-1]) == data.edge_attr.shape[0]


def test_a_task_whose_smiles_are_all_invalid_is_a_clear_error(monkeypatch):
    empty = ds.featurize_table(["C1CC", "*C", None])
    monkeypatch.setattr(ds, "load_graphs", lambda *args, **kwargs: (empty, "0" * 64))
    with pytest.raises(ValueError, match=r"task bbbp: none of the SMILES in column 'smiles' of .* could be read "
                                         r"by RDKit \(3 dropped\); nothing to train on"):
        ds.load_task("bbbp")
