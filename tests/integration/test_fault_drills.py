"""Fault drills with real processes and signals: the store ends with every trial exactly once.

* the driver of ``roft sweep`` (with the local Ray it started) is killed with SIGKILL five
  times, each at a random moment after its run has landed a row (trials in flight, rows being
  written), and the sweep is rerun after each kill;
* a Ray worker is killed with SIGKILL in the middle of a trial: Tune retries the trial
  (``execution.max_failures``) and it lands once.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pyarrow.dataset as ds
import pytest
import yaml

from orchestrator.store.results import ResultStore
from orchestrator.sweep.plan import plan_sweep
from search_spaces import parse_spec
from trainables.core.data_root import DataRoot

pytestmark = [pytest.mark.slow, pytest.mark.data, pytest.mark.drill]

REPO = Path(__file__).resolve().parents[2]


def drill_spec(seeds: int, epochs: int, max_failures: int = 1) -> dict:
    return {
        "name": "drill", "backbones": ["scratch-gin"], "methods": {"full-ft": {}, "lp": {}}, "tasks": ["esol"],
        "splits": ["scaffold"], "label_settings": ["fewshot:16"], "seeds": {"range": [0, seeds]},
        "training": {"epochs": epochs, "batch_size": 8}, "model": {"num_layers": 1, "emb_dim": 8},
        "resources": {"cpu": 1}, "execution": {"fuse": False, "chunk_size": 4, "max_failures": max_failures},
    }


def start_sweep(spec_path: Path, store: Path, tmp_path: Path, run: int) -> subprocess.Popen:
    """``roft sweep`` in its own session (its local Ray's processes share the session)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    # Ray's socket paths must stay under 108 bytes: a short private folder in /tmp
    env.update(RAY_TMPDIR=tempfile.mkdtemp(prefix="roft-drill-", dir="/tmp"), PYTHONUNBUFFERED="1")
    log = open(tmp_path / f"sweep{run}.log", "w")
    return subprocess.Popen([sys.executable, "-m", "orchestrator", "sweep", str(spec_path), "--store", str(store)],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def kill_session(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def finish_sweep(spec_path: Path, store: Path, tmp_path: Path, run: int, expected: set[str]) -> None:
    """Rerun the sweep to the end: it exits 0 and the store holds every expected trial exactly once."""
    final = start_sweep(spec_path, store, tmp_path, run)
    try:
        assert final.wait(timeout=420) == 0, (tmp_path / f"sweep{run}.log").read_text()[-3000:]
    finally:
        kill_session(final)
    landed = rows_per_key(store, "trials")
    assert set(landed) == expected and all(n == 1 for n in landed.values())


def rows_per_key(store: Path, table: str) -> Counter:
    """Every row of ``table`` in every data file (per-trial files and part files alike)."""
    files = sorted(str(p) for p in (store / table).glob("*.parquet") if not p.name.startswith("."))
    if not files:
        return Counter()
    keys = ds.dataset(files, format="parquet").to_table(columns=["trial_key"]).column("trial_key")
    return Counter(keys.to_pylist())


def write_spec(raw: dict, tmp_path: Path) -> Path:
    path = tmp_path / "drill.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_killing_the_driver_five_times_loses_and_duplicates_nothing(real_env, tmp_path):
    raw = drill_spec(seeds=12, epochs=3)
    spec_path, store = write_spec(raw, tmp_path), tmp_path / "store"
    expected = {t.key() for t in plan_sweep(parse_spec(raw), ResultStore(store), DataRoot(real_env)).trials}
    rng = random.Random(7)
    landed_before = 0
    for run in range(5):
        process = start_sweep(spec_path, store, tmp_path, run)
        deadline = time.time() + 240
        while len(rows_per_key(store, "trials")) == landed_before and time.time() < deadline:
            time.sleep(0.2)  # until this run lands a row: trials are in flight, rows being written
        assert process.poll() is None, f"run {run} ended before it was killed"
        time.sleep(rng.uniform(0.0, 1.5))
        process.send_signal(signal.SIGKILL)  # the driver alone first, as `kill -9 <pid>` would
        time.sleep(0.5)
        kill_session(process)  # then what it left behind (its local Ray)
        landed = rows_per_key(store, "trials")
        assert all(n == 1 for n in landed.values()), f"run {run}: duplicated rows {landed}"
        assert set(landed) <= expected and len(landed) > landed_before  # nothing lost, nothing foreign
        landed_before = len(landed)
    assert landed_before < len(expected)  # the kills all fell inside the sweep
    finish_sweep(spec_path, store, tmp_path, 5, expected)
    epochs = rows_per_key(store, "epochs")
    assert set(epochs) == expected and all(n == 3 for n in epochs.values())  # each trial's 3 epochs, once
    assert ResultStore(store).read_failures().num_rows == 0
    leftovers = [p for table in ("trials", "epochs", "artifacts") for p in (store / table).rglob("*")
                 if p.is_file() and p.name.startswith(".")]
    assert not leftovers  # no temporary file of an interrupted write is left among the data


def ray_trial_workers(session: int) -> list[int]:
    """PIDs of the Ray worker processes of process session ``session`` (the sweep's) that run a
    Tune function trial (``ray::ImplicitFunc...``)."""
    out = subprocess.run(["ps", "-eo", "pid=,sid=,args="], capture_output=True, text=True, check=True).stdout
    rows = [line.split(None, 2) for line in out.splitlines()]
    return [int(pid) for pid, sid, args in (r for r in rows if len(r) == 3)
            if int(sid) == session and "ray::ImplicitFunc" in args]


def test_a_worker_killed_mid_trial_is_retried_and_lands_once(real_env, tmp_path):
    raw = drill_spec(seeds=1, epochs=2000, max_failures=2)  # about a minute per trial on an idle core
    spec_path, store = write_spec(raw, tmp_path), tmp_path / "store"
    expected = {t.key() for t in plan_sweep(parse_spec(raw), ResultStore(store), DataRoot(real_env)).trials}
    process = start_sweep(spec_path, store, tmp_path, 0)
    try:
        deadline, victims = time.time() + 180, []
        while time.time() < deadline and not victims and process.poll() is None:
            time.sleep(1.0)
            victims = ray_trial_workers(process.pid)
        assert victims, "no Ray worker ran a trial within 180 s: " + (tmp_path / "sweep0.log").read_text()[-2000:]
        time.sleep(2.0)  # well inside a 2000-epoch trial
        os.kill(victims[0], signal.SIGKILL)
        assert process.wait(timeout=420) == 0, (tmp_path / "sweep0.log").read_text()[-3000:]
    finally:
        kill_session(process)
    landed = rows_per_key(store, "trials")
    assert set(landed) == expected and all(n == 1 for n in landed.values())
    log = (tmp_path / "sweep0.log").read_text()
    assert "2/2 done, 0 failed" in log and "worker was lost" in log and "retried elsewhere" in log, log[-3000:]


def mounted_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def fill(path: Path) -> None:
    """Fill the filesystem of ``path`` to the last byte (unbuffered writes: nothing is left in a
    buffer for ``close`` to fail on)."""
    for name, chunk in (("filler", 65536), ("filler2", 1)):  # then the last partial block
        with open(path / name, "wb", buffering=0) as handle:
            try:
                while True:
                    handle.write(b"\0" * chunk)
            except OSError:
                pass


def test_a_full_disk_stops_the_sweep_with_a_clear_error_and_damages_nothing(real_env, tmp_path):
    disk = tmp_path / "disk"
    if not mounted_tmpfs(disk, "64m"):
        pytest.skip("mounting a small tmpfs needs root (the disk-full drill runs where it can)")
    try:
        raw = drill_spec(seeds=6, epochs=3, max_failures=0)
        raw["execution"]["chunk_size"] = 2
        spec_path, store = write_spec(raw, tmp_path), disk / "store"
        expected = {t.key() for t in plan_sweep(parse_spec(raw), ResultStore(store), DataRoot(real_env)).trials}
        process = start_sweep(spec_path, store, tmp_path, 0)
        try:
            deadline = time.time() + 240
            while len(rows_per_key(store, "trials")) < 2 and time.time() < deadline and process.poll() is None:
                time.sleep(0.2)
            fill(disk)
            code = process.wait(timeout=300)
        finally:
            kill_session(process)
        log = (tmp_path / "sweep0.log").read_text()
        landed = rows_per_key(store, "trials")
        assert code == 2, log[-3000:]
        # the trials' own writes or Tune's state under the store, whichever meets the full disk first
        assert re.search(r"roft: error: (the results store could not be written|Tune could not write its "
                         r"experiment state)", log), log[-3000:]
        assert "No space left on device" in log
        assert 2 <= len(landed) < len(expected) and all(n == 1 for n in landed.values())
        for name in ("filler", "filler2"):
            (disk / name).unlink(missing_ok=True)
        done = ResultStore(store).read_trials()  # what landed before the disk filled is whole and readable
        assert set(done.column("trial_key").to_pylist()) == set(landed)
        again = plan_sweep(parse_spec(raw), ResultStore(store), DataRoot(real_env))  # a rerun runs exactly the rest
        assert {t.key() for t in again.pending} == expected - set(landed)
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
