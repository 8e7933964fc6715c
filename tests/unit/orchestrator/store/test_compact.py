import pytest

from orchestrator.store.compact import compact
from orchestrator.store.results import ResultStore
from orchestrator.store.schema import PART_PREFIX, StoreError
from tests.unit.orchestrator.store.rows import held_by_a_sweep, make_row


def epoch(n):
    return {"stage": "finetune", "epoch": n, "train_loss": 0.1 * n, "val_metric": 1.0, "test_metric": 2.0,
            "val_tasks_skipped": 0, "test_tasks_skipped": 0}


def fill(store, keys):
    for i, key in enumerate(keys):
        side = {"alpha_trials": [{"study": "s", "number": 0, "alphas": [0.5], "val_metric": 1.0, "test_metric": 1.0}]}
        store.write_trial(make_row(key, seed=i, test_metric=float(i)), [epoch(1), epoch(2)], side if i % 2 else None)


def rows(store):
    trials = sorted(tuple(sorted((k, str(v)) for k, v in r.items())) for r in store.read_trials().to_pylist())
    epochs = sorted(tuple(r.values()) for r in store.read_side_table("epochs").to_pylist())
    alphas = sorted(str(r) for r in store.read_side_table("alpha_trials").to_pylist())
    return trials, epochs, alphas


def test_compaction_keeps_the_row_multiset(tmp_path):
    store = ResultStore(tmp_path)
    fill(store, [f"k{i}" for i in range(20)])
    before = rows(store)
    summary = compact(store)
    assert summary.tables["trials"] == (20, 20) and summary.tables["epochs"] == (20, 40)
    assert rows(store) == before
    assert [p.name.startswith(PART_PREFIX) for p in store.trials_dir.glob("*.parquet")] == [True]
    assert store.read_trial("k7")["test_metric"] == 7.0 and store.read_trial("nope") is None
    assert store.done_keys() == {f"k{i}" for i in range(20)}

    fill(store, ["k20", "k21"])  # new trials after a compaction, then compact again
    before = rows(store)
    compact(store)
    assert rows(store) == before and len(list(store.trials_dir.glob("*.parquet"))) == 1


def test_a_trial_in_two_files_is_kept_once(tmp_path):
    """As after a crash between writing the part and deleting the merged files."""
    store = ResultStore(tmp_path)
    fill(store, ["a", "b"])
    compact(store)
    store.write_trial(make_row("a", test_metric=9.0), [epoch(1)])  # the newer copy of trial a
    before = store.read_trials()  # readers keep one copy too: the newer
    assert sorted(zip(before.column("trial_key").to_pylist(), before.column("test_metric").to_pylist())) == [
        ("a", 9.0), ("b", 1.0)]
    compact(store)
    assert sorted(r["trial_key"] for r in store.read_trials().to_pylist()) == ["a", "b"]
    assert store.read_trial("a")["test_metric"] == 9.0
    assert [r["epoch"] for r in store.read_side_table("epochs").to_pylist() if r["trial_key"] == "a"] == [1]


def test_compaction_refuses_while_a_sweep_holds_the_store(tmp_path):
    store = ResultStore(tmp_path)
    fill(store, ["a", "b"])
    with held_by_a_sweep(store):
        with pytest.raises(StoreError, match="a sweep is running"):
            compact(store)
        assert len(list(store.trials_dir.glob("*.parquet"))) == 2  # nothing touched
    compact(store)
