import pytest

from orchestrator.store.compact import compact
from orchestrator.store.forget import forget
from orchestrator.store.results import ResultStore
from orchestrator.store.schema import PART_PREFIX, StoreError
from tests.unit.orchestrator.store.rows import epoch, held_by_a_sweep, make_row

KEYS = [f"{i:024x}" for i in range(6)]


def fill(store: ResultStore, keys=KEYS) -> None:
    """Every trial: a row, two epochs, one alpha point and a checkpoint."""
    for i, key in enumerate(keys):
        side = {"alpha_trials": [{"study": key, "number": 0, "alphas": [0.5], "val_metric": 1.0, "test_metric": 1.0}]}
        store.write_trial(make_row(key, seed=i), [epoch(1), epoch(2)], side)
        store.write_artifact(key, b"weights of " + key.encode())


def content(store: ResultStore) -> dict[str, list[str]]:
    """Trial keys per table, with multiplicity."""
    return {"trials": sorted(store.read_trials().column("trial_key").to_pylist()),
            "epochs": sorted(store.read_side_table("epochs").column("trial_key").to_pylist()),
            "alpha_trials": sorted(store.read_side_table("alpha_trials").column("trial_key").to_pylist()),
            "artifacts": sorted(k for k in KEYS if store.read_artifact(k) is not None)}


def without(keys_by_table: dict[str, list[str]], gone: set[str]) -> dict[str, list[str]]:
    return {table: [k for k in keys if k not in gone] for table, keys in keys_by_table.items()}


@pytest.mark.parametrize("compacted", [False, True])
def test_forget_removes_every_trace_of_the_trials_and_nothing_else(tmp_path, compacted):
    store = ResultStore(tmp_path)
    fill(store)
    if compacted:
        compact(store)
        fill(store, KEYS[4:])  # newer own files beside the compacted parts
    store.write_failure({"trial_key": KEYS[5], "sweep": "t", "method": "full-ft", "trial_config": "{}", "error": "boom",
                         "traceback": "...", "failed_at": make_row(KEYS[5])["finished_at"]})
    before = content(store)
    gone = {KEYS[1], KEYS[4], KEYS[5]}
    summary = forget(store, sorted(gone) + [KEYS[1]])  # a repeated key counts once
    assert content(store) == without(before, gone)
    assert store.done_keys() == set(KEYS) - gone and store.failed_keys() == set()
    assert (summary.artifacts, summary.failures) == (3, 1)
    assert summary.rows["trials"] == (5 if compacted else 3)  # trials 4 and 5 were in a part and in own files
    assert "forgot 3 trials" in str(summary)
    assert not (tmp_path / "artifacts" / KEYS[1]).exists()
    if compacted:  # the parts were rewritten in place: still one part per table, no temporary left behind
        assert [p.name.startswith(PART_PREFIX) for p in store.trials_dir.glob("*.parquet")] == [True]
        assert not [p for p in tmp_path.rglob(".*") if p.name != ".lock"]


def test_bad_keys_are_refused_and_nothing_is_removed(tmp_path):
    store = ResultStore(tmp_path)
    fill(store)
    before = content(store)
    with pytest.raises(StoreError, match=r"malformed trial key\(s\) '\.\./x'; accepted: 24 hex digits"):
        forget(store, [KEYS[0], "../x"])
    unknown = "f" * 24
    with pytest.raises(StoreError, match=f"{unknown} have neither a row nor a failure record.*nothing was removed"):
        forget(store, [KEYS[0], unknown])
    with pytest.raises(StoreError, match="no trial key given"):
        forget(store, [])
    assert content(store) == before


def test_a_forget_stopped_before_the_row_leaves_the_trial_done_and_forgetting_again_finishes(tmp_path, monkeypatch):
    """The row goes last: a forget that dies before it leaves a trial a sweep will not rerun
    beside stale rows; the next forget completes it."""
    store = ResultStore(tmp_path)
    fill(store)
    delete = store.delete

    def dies_at_the_row(path):
        if "/trials/" in path:
            raise StoreError("connection lost")
        delete(path)

    monkeypatch.setattr(store, "delete", dies_at_the_row)
    with pytest.raises(StoreError, match="connection lost"):
        forget(store, [KEYS[2]])
    assert KEYS[2] in store.done_keys()  # still done: no sweep runs it meanwhile
    monkeypatch.setattr(store, "delete", delete)
    forget(store, [KEYS[2]])
    assert KEYS[2] not in store.done_keys() and KEYS[2] not in content(store)["epochs"]


def test_forget_refuses_while_a_sweep_holds_the_store(tmp_path):
    store = ResultStore(tmp_path)
    fill(store)
    with held_by_a_sweep(store):
        with pytest.raises(StoreError, match="a sweep is running .* forget trials after it finishes"):
            forget(store, [KEYS[0]])
        assert KEYS[0] in store.done_keys()
