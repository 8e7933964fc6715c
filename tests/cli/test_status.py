"""``roft status``: a store's sweeps, counts, last rows, failure causes and running trials, without Ray."""

from __future__ import annotations

import re

import pytest

from orchestrator.cli import main
from tests.unit.orchestrator.store.test_status import hand_made_store


def test_status_prints_each_sweeps_counts_and_exits_0(real_env, tmp_path, capsys):
    store, keys = hand_made_store(tmp_path, real_env)
    assert main(["status", "--store", store.location, "--data-root", str(real_env)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith(f"store {store.location} at ")
    assert lines[0].endswith("2 sweeps; 2 done, 1 failed, 2 running (1 stale), 1 queued (+ those of 1 sweep "
                             "that could not be planned)")
    assert "sweep tiny (specs/tiny.yaml, 5 planned): 1 done, 1 failed, 2 running (1 stale), 1 queued" in lines
    assert "sweep other: 1 done, 0 failed, 0 running, ? queued" in lines
    landed = next(line for line in lines if keys[0] in line)
    assert landed.split()[2:] == [keys[0], "scratch-gin", "full-ft", "esol", "0", "rmse", "1.25", "node-1",
                                  "(10.0.0.1)"]
    assert "  no saved spec (specs/other.yaml): its queued trials are unknown" in lines
    assert "        1  DivergedError: train loss is nan at epoch 1" in lines
    running = {line.split()[0]: line for line in lines if line.strip().startswith(tuple(keys[2:4]))}
    assert set(running) == set(keys[2:4])
    assert running[keys[3]].rstrip().endswith("stale") and not running[keys[2]].rstrip().endswith("stale")
    assert "node-7 (10.0.0.7, GPU 2)" in running[keys[2]] and "4242" in running[keys[2]] and " 3/10 " in running[keys[2]]
    assert "node-7 " in running[keys[3]] and "(" not in running[keys[3]]  # a marker without placement (roft < 0.3)
    assert re.search(r" 20m\d\ds ago ", running[keys[3]])

    assert main(["status", "--store", store.location, "--data-root", str(real_env), "--stale-after", "1h",
                 "--last", "0"]) == 0
    out = capsys.readouterr().out
    assert "stale" not in out and keys[0] not in out and "2 running, 1 queued" in out


@pytest.mark.parametrize("layout", ["missing", "empty"])
def test_a_store_without_sweeps_is_one_line(tmp_path, capsys, layout):
    location = tmp_path / "store"
    if layout == "empty":
        (location / "trials").mkdir(parents=True)
    assert main(["status", "--store", str(location)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1
    assert captured.err.startswith("roft: error: store ")
    assert ("does not exist" if layout == "missing" else "holds no sweep") in captured.err


def test_a_bad_stale_after_is_one_line(tmp_path, capsys):
    (tmp_path / "store").mkdir()
    with pytest.raises(SystemExit) as exit_:
        main(["status", "--store", str(tmp_path / "store"), "--stale-after", "soon"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("roft status: error: argument --stale-after: 'soon' is not accepted") and len(err.splitlines()) == 1


def test_placement_prints_each_nodes_units_and_most_at_once(tmp_path, capsys):
    from datetime import datetime, timedelta, timezone

    from orchestrator.store.results import ResultStore
    from tests.unit.orchestrator.store.rows import make_row

    store = ResultStore(tmp_path / "store")
    t0 = datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)
    for i, gpus in enumerate(["0", "1", "0"]):
        store.write_trial(make_row(f"k{i}", sweep="gpu" if i < 2 else "other", node_ip="10.0.0.7", gpu_ids=gpus,
                                   started_at=t0 + timedelta(seconds=10 * i), finished_at=t0 + timedelta(seconds=15 + 10 * i)))
    assert main(["placement", "--store", str(tmp_path / "store"), "--sweep", "gpu", "--timeline"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2] == "| 10.0.0.7 | 2 | 2 | 2 | GPU 0: 1, GPU 1: 1 | 0 - 25 |"
    assert out[-1] == "Units (node, GPU: start-finish s): 10.0.0.7 0: 0-15, 10.0.0.7 1: 10-25"

    assert main(["placement", "--store", str(tmp_path / "store"), "--sweep", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err == "roft: error: --sweep 'cpu' has no rows in the store; accepted: gpu, other\n"


def test_rows_counted_by_name_only_are_said_under_the_totals():
    from datetime import datetime, timezone

    from orchestrator.cli.status import status_lines
    from orchestrator.sweep.status import StoreStatus

    status = StoreStatus(location="s3://b/r", now=datetime(2026, 11, 30, tzinfo=timezone.utc), stale_after_s=600,
                         sweeps=[], done=12, failed=0, running=0, stale=0, queued=0, unplanned=0, unread=4)
    lines = status_lines(status)
    assert lines[0].endswith("0 sweeps; 12 done, 0 failed, 0 running, 0 queued")
    assert lines[1].startswith("  4 of the done trials are counted by their object's name only")
    assert status_lines(StoreStatus(**{**status.__dict__, "unread": 0}))[1:] == []
