from __future__ import annotations


import pyarrow.parquet as pq
import pytest

from tests.unit.orchestrator.rows import make_row
from orchestrator.store import ResultStore, StoreError


def test_write_then_read_and_done_keys(tmp_path):
    store = ResultStore(tmp_path)
    store.write_trial(make_row("a"), [{"stage": "finetune", "epoch": 1, "train_loss": 0.5, "val_metric": 1.0,
                                       "test_metric": 2.0, "val_tasks_skipped": 0, "test_tasks_skipped": 0}])
    store.write_trial(make_row("b", seed=1))
    assert store.done_keys() == {"a", "b"}
    assert sorted(store.read_trials().column("trial_key").to_pylist()) == ["a", "b"]
    epochs = store.read_epochs().to_pylist()
    assert len(epochs) == 1 and epochs[0]["trial_key"] == "a"


def test_rewriting_a_trial_never_duplicates_it(tmp_path):
    store = ResultStore(tmp_path)
    store.write_trial(make_row("a", test_metric=1.0))
    store.write_trial(make_row("a", test_metric=2.0))  # a retried trial lands on the same file
    table = store.read_trials()
    assert table.num_rows == 1
    assert table.column("test_metric").to_pylist() == [2.0]


def test_partial_files_are_invisible_to_readers(tmp_path):
    store = ResultStore(tmp_path)
    store.write_trial(make_row("a"))
    # A writer that crashed mid-write leaves only its hidden temporary file behind.
    (store.trials_dir / ".b.parquet.123.tmp").write_bytes(b"PAR1 truncated")
    assert store.done_keys() == {"a"}
    assert store.read_trials().num_rows == 1


def test_no_temporary_file_is_left_after_writes(tmp_path):
    store = ResultStore(tmp_path)
    for key in "abc":
        store.write_trial(make_row(key))
    assert sorted(p.name for p in store.trials_dir.iterdir()) == ["a.parquet", "b.parquet", "c.parquet"]


def test_row_with_wrong_columns_is_rejected_and_nothing_written(tmp_path):
    store = ResultStore(tmp_path)
    row = make_row("a")
    del row["seed"]
    row["unexpected"] = 1
    with pytest.raises(StoreError, match=r"missing \['seed'\], unexpected \['unexpected'\]"):
        store.write_trial(row)
    assert store.done_keys() == set()


def test_row_with_wrong_type_is_rejected(tmp_path):
    with pytest.raises(StoreError, match="wrong type"):
        ResultStore(tmp_path).write_trial(make_row("a", seed="zero"))


def test_unwritable_store_is_a_clear_error_and_keeps_existing_rows(tmp_path):
    store = ResultStore(tmp_path)
    store.write_trial(make_row("a"))
    # The epochs folder replaced by a plain file: every write below it fails (even as root).
    (tmp_path / "epochs").write_text("not a folder")
    with pytest.raises(StoreError, match="cannot write to the store"):
        store.write_trial(make_row("b"), [{"stage": "s", "epoch": 1, "train_loss": 0.0, "val_metric": 0.0,
                                           "test_metric": 0.0, "val_tasks_skipped": 0, "test_tasks_skipped": 0}])
    assert store.done_keys() == {"a"}  # the failed trial did not commit, the old row is intact


def test_one_file_per_trial_is_a_single_row_parquet(tmp_path):
    store = ResultStore(tmp_path)
    path = store.write_trial(make_row("a"))
    assert path.name == "a.parquet"
    assert pq.read_table(path).num_rows == 1


def test_empty_store_reads_as_empty(tmp_path):
    store = ResultStore(tmp_path / "nothing")
    assert store.done_keys() == set()
    assert store.read_trials().num_rows == 0
    assert store.read_epochs().num_rows == 0


def test_failures_are_recorded_apart_from_results_and_cleared(tmp_path):
    from datetime import datetime, timezone

    store = ResultStore(tmp_path)
    store.write_failure({"trial_key": "a", "sweep": "s", "method": "full-ft", "trial_config": "{}",
                         "error": "ValueError: boom", "traceback": "Traceback ...\nValueError: boom",
                         "failed_at": datetime.now(timezone.utc)})
    assert store.failed_keys() == {"a"} and store.done_keys() == set()
    assert store.read_failures().to_pylist()[0]["error"] == "ValueError: boom"
    store.clear_failure("a")
    store.clear_failure("never-failed")  # no error
    assert store.failed_keys() == set()
    with pytest.raises(StoreError, match="missing"):
        store.write_failure({"trial_key": "b"})
