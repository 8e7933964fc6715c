from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from orchestrator.store.results import ResultStore
from orchestrator.store.schema import StoreError
from tests.unit.orchestrator.store.rows import make_row


def test_write_then_read_and_done_keys(tmp_path):
    store = ResultStore(tmp_path)
    store.write_trial(make_row("a"), [{"stage": "finetune", "epoch": 1, "train_loss": 0.5, "val_metric": 1.0,
                                       "test_metric": 2.0, "val_tasks_skipped": 0, "test_tasks_skipped": 0}])
    store.write_trial(make_row("b", seed=1))
    assert store.done_keys() == {"a", "b"}
    assert sorted(store.read_trials().column("trial_key").to_pylist()) == ["a", "b"]
    epochs = store.read_side_table("epochs").to_pylist()
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
    assert store.read_side_table("epochs").num_rows == 0


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


EPOCH = {"stage": "finetune", "epoch": 1, "train_loss": 0.5, "val_metric": 1.0, "test_metric": 2.0,
         "val_tasks_skipped": 0, "test_tasks_skipped": 0}


def test_corrupt_files_are_quarantined_and_the_rest_stays_readable(tmp_path):
    import pyarrow as pa

    from orchestrator.store.schema import QuarantineWarning

    store = ResultStore(tmp_path)
    for key in ("a", "b", "c", "d"):
        store.write_trial(make_row(key), [EPOCH])
    (store.trials_dir / "b.parquet").write_bytes(b"not parquet at all")  # garbage
    blob = (store.trials_dir / "c.parquet").read_bytes()
    (store.trials_dir / "c.parquet").write_bytes(blob[: len(blob) // 2])  # truncated
    pq.write_table(pa.table({"foo": [1]}), store.trials_dir / "d.parquet")  # another schema
    (store.root / "epochs" / "a.parquet").write_bytes(b"PAR1 garbage PAR1")
    with pytest.warns(QuarantineWarning) as caught:
        assert store.read_trials().column("trial_key").to_pylist() == ["a"]
    messages = " ".join(str(w.message) for w in caught)
    assert "trials/b.parquet is unreadable" in messages and "moved to quarantine/trials/b.parquet" in messages
    assert "trials/c.parquet" in messages and "trials/d.parquet is unreadable (columns missing: trial_key" in messages
    assert sorted(p.name for p in (tmp_path / "quarantine" / "trials").iterdir()) == ["b.parquet", "c.parquet",
                                                                                      "d.parquet"]
    assert (tmp_path / "quarantine" / "trials" / "b.parquet").read_bytes() == b"not parquet at all"  # kept as found
    assert store.done_keys() == {"a"}  # b, c, d run again in the next sweep
    with pytest.warns(QuarantineWarning, match="epochs/a.parquet is unreadable"):
        assert sorted(store.read_side_table("epochs").column("trial_key").to_pylist()) == ["b", "c", "d"]


def test_a_corrupt_trial_file_read_alone_is_quarantined(tmp_path):
    from orchestrator.store.schema import QuarantineWarning

    store = ResultStore(tmp_path)
    store.write_trial(make_row("a"))
    (store.trials_dir / "a.parquet").write_bytes(b"\x00" * 64)
    with pytest.warns(QuarantineWarning, match="trials/a.parquet is unreadable"):
        assert store.read_trial("a") is None
    assert (tmp_path / "quarantine" / "trials" / "a.parquet").exists() and store.done_keys() == set()


def test_an_unreadable_store_is_an_error_not_a_quarantine(tmp_path, monkeypatch):
    store = ResultStore(tmp_path)
    store.write_trial(make_row("a"))

    def refuse(*args, **kwargs):
        raise OSError("connection refused")

    monkeypatch.setattr(pq, "read_table", refuse)
    monkeypatch.setattr(type(store), "_dataset", lambda *a, **k: type("D", (), {"to_table": refuse})())
    with pytest.raises(StoreError, match="cannot read trials/ of the store at .*connection refused"):
        store.done_keys()
    assert (store.trials_dir / "a.parquet").exists()


def test_concurrent_local_writers_never_duplicate_or_lose_a_trial(tmp_path):
    """Threads of this process and two other processes write the same 16 trials into one folder."""
    from tests.unit.orchestrator.store.rows import KEYS, write_concurrently

    uri = str(tmp_path / "store")
    write_concurrently(uri)
    store = ResultStore(uri)
    assert sorted(store.read_trials().column("trial_key").to_pylist()) == KEYS
    epochs = store.read_side_table("epochs").to_pylist()
    assert sorted((r["trial_key"], r["epoch"]) for r in epochs) == sorted((k, n) for k in KEYS for n in (1, 2))
    assert not [p for p in (tmp_path / "store").rglob(".*") if p.name != ".lock"]  # no temporary file left


KILLED_LOCAL_WRITER = r"""
import sys
from orchestrator.store.results import ResultStore
from tests.unit.orchestrator.store.rows import make_row

store = ResultStore(sys.argv[1])
blob = bytes(range(256)) * 40000  # a 10 MB checkpoint per trial: long writes to be killed in
n = 0
while True:
    key = f"k{n:04d}"
    store.write_artifact(key, blob)
    store.write_trial(make_row(key, seed=n))
    n += 1
    print(n, flush=True)
"""


def test_a_local_writer_killed_mid_write_damages_nothing(tmp_path):
    """A process writing trials and large checkpoints is killed (SIGKILL) at random moments;
    readers then see only whole rows, and every checkpoint named by a row is whole."""
    import random
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    repo = Path(__file__).resolve().parents[4]
    uri = str(tmp_path / "store")
    rng = random.Random(3)
    for attempt in range(3):
        process = subprocess.Popen([sys.executable, "-c", KILLED_LOCAL_WRITER, uri], cwd=repo,
                                   stdout=subprocess.PIPE, text=True)
        process.stdout.readline()  # it has written at least one trial
        time.sleep(rng.uniform(0.0, 0.3))
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stdout.close()
    store = ResultStore(uri)
    rows = store.read_trials().to_pylist()
    assert rows and len({r["trial_key"] for r in rows}) == len(rows)
    for row in rows:
        assert store.read_artifact(row["trial_key"]) == bytes(range(256)) * 40000
    hidden = [p for p in (tmp_path / "store").rglob(".*") if p.name != ".lock"]
    assert all(p.name.endswith(".tmp") for p in hidden)  # what a kill leaves is hidden from readers


ALPHA_POINT = {"study": "s", "number": 0, "alphas": [0.5], "val_metric": 0.7, "test_metric": None}


def test_junk_in_every_table_folder_is_quarantined_and_the_folders_read_again(tmp_path):
    """A junk file in epochs/ (or any side table) is moved aside as trials/ junk is, so that
    pandas.read_parquet of the folder works again; the store's own rows are untouched."""
    import pandas as pd

    from orchestrator.store.schema import TABLES, QuarantineWarning

    store = ResultStore(tmp_path)
    for key in ("a", "b"):
        store.write_trial(make_row(key), [EPOCH], side={"alpha_trials": [ALPHA_POINT]})
    junk = {"epochs/junk.parquet": b"not parquet at all", "epochs/notes.txt": b"my notes",
            "alpha_trials/b.parquet": b"PAR1 garbage PAR1", "trials/README": b"hello", "failures/x.parquet": b"x"}
    for name, blob in junk.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(blob)
    (tmp_path / "epochs" / "_SUCCESS").write_bytes(b"")  # names readers skip stay
    with pytest.raises(Exception):
        pd.read_parquet(tmp_path / "epochs")
    with pytest.warns(QuarantineWarning) as caught:
        moved = store.check_tables()
    assert sorted(moved) == sorted(f"quarantine/{name}" for name in junk)
    messages = " ".join(str(w.message) for w in caught)
    assert "epochs/notes.txt is not a Parquet file (not a table file" in messages
    assert "epochs/junk.parquet is unreadable" in messages and "the trials keep their rows" in messages
    for name, blob in junk.items():
        assert (tmp_path / "quarantine" / name).read_bytes() == blob  # kept as found
    assert (tmp_path / "epochs" / "_SUCCESS").exists()
    for name in TABLES:
        if name != "failures":
            pd.read_parquet(tmp_path / name)  # every folder reads again
    assert sorted(pd.read_parquet(tmp_path / "epochs").trial_key) == ["a", "b"]
    assert store.done_keys() == {"a", "b"} and store.read_side_table("alpha_trials").num_rows == 1
    assert store.check_tables() == []  # nothing left to move


def test_compaction_and_forget_quarantine_junk_instead_of_failing(tmp_path):
    from orchestrator.store.compact import compact
    from orchestrator.store.forget import forget
    from orchestrator.store.schema import QuarantineWarning

    store = ResultStore(tmp_path)
    keys = [f"{i:024x}" for i in range(3)]
    for key in keys:
        store.write_trial(make_row(key), [EPOCH])
    (tmp_path / "epochs" / "junk.parquet").write_bytes(b"not parquet at all")
    (tmp_path / "epochs" / "notes.txt").write_bytes(b"my notes")
    with pytest.warns(QuarantineWarning) as caught:
        summary = compact(store)
    messages = " ".join(str(w.message) for w in caught)
    assert "epochs/junk.parquet is unreadable" in messages and "epochs/notes.txt is not a Parquet file" in messages
    assert summary.tables["epochs"] == (3, 3) and summary.tables["trials"] == (3, 3)
    assert sorted(p.name for p in (tmp_path / "quarantine" / "epochs").iterdir()) == ["junk.parquet", "notes.txt"]
    (tmp_path / "epochs" / f"{keys[0]}.parquet").write_bytes(b"junk under a trial's own name")
    with pytest.warns(QuarantineWarning, match=f"epochs/{keys[0]}.parquet is unreadable"):
        forget(store, [keys[0]])
    assert store.done_keys() == set(keys[1:]) and sorted(store.read_side_table("epochs").column("trial_key").to_pylist()) == \
        keys[1:]


def test_empty_optional_text_is_stored_as_null_and_old_rows_with_empty_strings_still_read(tmp_path):
    import pyarrow as pa

    from orchestrator.store.schema import OPTIONAL_TEXT_COLUMNS, TRIAL_SCHEMA

    store = ResultStore(tmp_path)
    row = make_row("new", **{c: "" for c in OPTIONAL_TEXT_COLUMNS})
    store.write_trial(row)
    assert all(row[c] == "" for c in OPTIONAL_TEXT_COLUMNS)  # the caller's row is not changed
    stored = store.read_trial("new")
    assert all(stored[c] is None for c in OPTIONAL_TEXT_COLUMNS)
    assert stored["sweep"] == "t" and stored["method_results"] is None  # other columns as given
    kept = make_row("kept", artifact_path="/x/best.pt", artifact_sha256="ab" * 32, parent_trial_key="p" * 24)
    store.write_trial(kept)
    assert store.read_trial("kept")["artifact_sha256"] == "ab" * 32 and store.read_trial("kept")["artifact_path"]
    # a row written before: "" where nothing is meant, read back as written
    old = make_row("old", **{c: "" for c in OPTIONAL_TEXT_COLUMNS})
    store.write_table(pa.Table.from_pylist([old], schema=TRIAL_SCHEMA), store.path("trials", "old.parquet"))
    assert all(store.read_trial("old")[c] == "" for c in OPTIONAL_TEXT_COLUMNS)
    assert store.done_keys() == {"new", "kept", "old"}


def test_an_immutable_store_is_reported_in_one_line_before_anything_is_written(tmp_path):
    from tests.unit.orchestrator.store.rows import immutable

    store = ResultStore(tmp_path / "store")
    store.write_trial(make_row("a"))
    with immutable(store.root):
        with pytest.raises(StoreError, match=r"^the results store could not be written: cannot create a file in "
                                             r".*/store \(\[Errno 1\] Operation not permitted.*rerun the same "
                                             r"command$"):
            store.check_writable()
        with pytest.raises(StoreError, match=r"the results store could not be written: cannot open its lock file"):
            with store.sweep_lock():
                pass
        assert store.done_keys() == {"a"}  # still readable
    assert sorted(p.name for p in store.root.iterdir()) == ["trials"]  # no probe left behind
    with immutable(store.trials_dir):  # one table folder of the store
        with pytest.raises(StoreError, match=r"cannot create a file in trials/ of .*Operation not permitted"):
            store.check_writable()
    store.check_writable()  # writable again: no error, nothing left
    assert sorted(p.name for p in store.root.iterdir()) == ["trials"]


def test_a_store_that_refuses_writes_is_reported_before_anything_is_written(tmp_path, monkeypatch):
    import orchestrator.store.files as files

    store = ResultStore(tmp_path / "store")

    def refuse(target, write):
        raise PermissionError(13, "Permission denied", str(target))

    monkeypatch.setattr(files, "atomic_write", refuse)
    with pytest.raises(StoreError, match=r"the results store could not be written: .*Permission denied"):
        store.check_writable()
    monkeypatch.undo()
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "epochs").write_text("not a folder")  # a table folder that is a file
    with pytest.raises(StoreError, match=r"cannot create a file in epochs/ of "):
        store.check_writable()
