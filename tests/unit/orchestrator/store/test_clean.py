import os
import time

import pytest

from orchestrator.store.clean import clean
from orchestrator.store.results import ResultStore
from orchestrator.store.schema import StoreError
from tests.unit.orchestrator.store.rows import epoch, held_by_a_sweep, make_row


def leftovers(tmp_path):
    """A store with two trials, what a killed writer and a killed sweep leave, and a write in flight."""
    store = ResultStore(tmp_path)
    for key in ("a", "b"):
        store.write_trial(make_row(key), [epoch(1)])
    store.write_artifact("a", b"weights")
    old = [tmp_path / "trials" / ".c.parquet.x1y2.tmp", tmp_path / "artifacts" / "c" / ".best.pt.z3.tmp"]
    for path in old:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
        os.utime(path, (time.time() - 7200, time.time() - 7200))
    in_flight = tmp_path / "epochs" / ".d.parquet.q9.tmp"
    in_flight.write_bytes(b"being written")
    experiment = tmp_path / "_tune" / "mini-1234"
    (experiment / "trial_0").mkdir(parents=True)
    (experiment / "trial_0" / ".result.json.tmp").write_text("{}")
    return store, old, in_flight, experiment


def test_clean_removes_old_temporaries_and_killed_tune_state_and_keeps_the_data(tmp_path):
    store, old, in_flight, experiment = leftovers(tmp_path)
    rows, epochs = store.read_trials().num_rows, store.read_side_table("epochs").num_rows

    preview = clean(store, dry_run=True)
    assert sorted(preview.temporaries) == ["artifacts/c/.best.pt.z3.tmp", "trials/.c.parquet.x1y2.tmp"]
    assert preview.tune_experiments == [str(experiment)] and preview.kept_recent == 1
    assert "would remove 2 temporary file(s) of interrupted writes (14 bytes)" in str(preview)
    assert all(p.exists() for p in old) and experiment.exists()  # a dry run removes nothing

    summary = clean(store)
    assert "removed 2 temporary file(s)" in str(summary) and "kept 1 temporary file(s) younger" in str(summary)
    assert not any(p.exists() for p in old) and not experiment.exists()
    assert in_flight.exists()  # younger than an hour: perhaps a write in flight on another host
    assert (store.read_trials().num_rows, store.read_side_table("epochs").num_rows) == (rows, epochs)
    assert store.read_artifact("a") == b"weights" and (tmp_path / ".lock").exists()
    assert clean(store, older_than_s=0).temporaries == ["epochs/.d.parquet.q9.tmp"]


def test_clean_refuses_while_a_sweep_holds_the_store(tmp_path):
    store, old, _, experiment = leftovers(tmp_path)
    with held_by_a_sweep(store):
        with pytest.raises(StoreError, match="a sweep is running .* clean after it finishes"):
            clean(store)
    assert all(p.exists() for p in old) and experiment.exists()


def test_clean_removes_markers_of_lost_workers_and_keeps_live_ones(tmp_path):
    from datetime import datetime, timedelta, timezone

    store, _, _, _ = leftovers(tmp_path)  # trials a and b landed

    def mark(unit: str, keys: list[str], silent: timedelta) -> None:
        beat = (datetime.now(timezone.utc) - silent).isoformat()
        store.mark_running(unit, keys, {"sweep": "t", "host": "h", "pid": 1, "heartbeat_at": beat})

    mark("lost", ["c"], timedelta(hours=2))  # its node died two hours ago
    mark("live", ["d"], timedelta(seconds=5))
    mark("fused-landed", ["a", "b"], timedelta(seconds=5))  # every member landed: nothing runs
    running = tmp_path / "running"
    (running / "garbled-old.json").write_text("{not json")
    os.utime(running / "garbled-old.json", (time.time() - 7200, time.time() - 7200))
    (running / "garbled-new.json").write_text("{not json")

    expected = ["running/fused-landed.json", "running/garbled-old.json", "running/lost.json"]
    preview = clean(store, dry_run=True)
    assert sorted(preview.markers) == expected and len(list(running.iterdir())) == 5
    assert "3 running marker(s) of lost workers" in str(preview)
    assert sorted(clean(store).markers) == expected
    assert sorted(p.name for p in running.iterdir()) == ["garbled-new.json", "live.json"]
    assert [m["trial_key"] for m in store.read_running() if "unreadable" not in m] == ["d"]
