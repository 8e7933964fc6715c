"""``roft status --watch``: the status redrawn in place in a terminal (tmux) while trials land, and Ctrl-C."""

from __future__ import annotations

import re
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from orchestrator.cli import main as roft
from orchestrator.store.results import ResultStore
from orchestrator.sweep.status import sweep_status
from tests.cli.tmux import Pane
from tests.unit.orchestrator.store.rows import epoch, make_row
from trainables.core.data_root import DataRoot

REPO = Path(__file__).resolve().parents[2]


def done_of(text: str, sweep: str) -> int | None:
    """The done count of ``sweep``'s row in the watch's table, else None."""
    match = re.search(rf"│ {re.escape(sweep)}\s+│\s+(\d+)", text)
    return int(match.group(1)) if match else None


class Landing:
    """Trials of sweep ``live`` landing one every ``every_s`` seconds (a running marker first), and a
    failure record after the third; as a sweep's workers write them."""

    def __init__(self, store: ResultStore, trials: int = 40, every_s: float = 0.4):
        self.store, self.trials, self.every_s = store, trials, every_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._land, daemon=True)

    def _land(self) -> None:
        for i in range(self.trials):
            if self.stop.wait(self.every_s):
                return
            key = f"live{i:04d}"
            self.store.mark_running(key, [key], {"sweep": "live", "host": "node-1", "pid": 1,
                                                 "heartbeat_at": datetime.now(timezone.utc).isoformat()})
            self.store.write_trial(make_row(key, sweep="live", seed=i, finished_at=datetime.now(timezone.utc)),
                                   [epoch(1)])
            self.store.clear_running(key)
            if i == 3:
                self.store.write_failure({"trial_key": "broken0001", "sweep": "live", "method": "full-ft",
                                          "trial_config": "{}", "error": "RuntimeError: CUDA out of memory",
                                          "traceback": "...", "failed_at": datetime.now(timezone.utc)})

    def __enter__(self) -> Landing:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


@pytest.fixture
def store(tmp_path) -> ResultStore:
    store = ResultStore(tmp_path / "store")
    store.write_trial(make_row("first", sweep="live"), [epoch(1)])
    return store


def test_the_watch_redraws_counts_that_advance_and_ctrl_c_exits_cleanly(store):
    argv = [sys.executable, "-m", "orchestrator", "status", "--store", str(store.root), "--watch", "1"]
    with Pane(argv, cwd=str(REPO)) as pane:
        start = pane.wait_for(lambda text: done_of(text, "live") is not None, 180, "the first view")
        assert done_of(start, "live") == 1
        with Landing(store):
            first = pane.wait_for(lambda text: (done_of(text, "live") or 0) >= 3, 120, "trials landing")
            second = pane.wait_for(lambda text: (done_of(text, "live") or 0) >= done_of(first, "live") + 3, 120,
                                   "the count advancing")
        assert done_of(second, "live") > done_of(first, "live") > done_of(start, "live")
        assert "redrawn every 1 s" in second and "per hour" in second
        # redrawn in place: one table on the screen, never a scroll of snapshots
        assert second.count("redrawn every") == 1 and second.count("┃ sweep ┃ done") == 1
        pane.wait_for(lambda text: "CUDA out of memory" in text, 60, "the newest failure")
        pane.send("C-c")
        end = pane.wait_for(lambda text: "EXIT=" in text, 60, "the command's end")
    assert "EXIT=0" in end and "stopped watching (Ctrl-C)" in end
    assert "Traceback" not in end and "KeyboardInterrupt" not in end


def test_trials_per_hour_and_eta_come_from_the_rows_of_the_last_minutes(tmp_path):
    store = ResultStore(tmp_path / "store")
    now = datetime(2025, 1, 1, 12, 0, tzinfo=timezone.utc)
    for i in range(30):  # 30 rows, one a minute: 10 in the last 10 minutes
        store.write_trial(make_row(f"k{i:02d}", sweep="s", finished_at=now - timedelta(minutes=i, seconds=30)))
    status = sweep_status(store, DataRoot(None), now=now)
    sweep = status.sweeps[0]
    assert sweep.landed_recently == 10 and sweep.per_hour == pytest.approx(60.0)
    assert sweep.queued is None and sweep.eta_s is None  # no saved spec: what is left is unknown
    sweep.queued = 30
    assert sweep.eta_s == pytest.approx(30 * 60.0)  # 30 trials at 60 per hour


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan"])
def test_a_bad_interval_is_one_line_naming_it(store, value, capsys):
    with pytest.raises(SystemExit) as exit_:
        roft(["status", "--store", str(store.root), "--watch", value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --watch: {value!r} is not accepted; accepted: a finite number from 0.5 to 86,400" in err
    assert "Traceback" not in err


def test_a_watch_into_a_pipe_prints_one_snapshot_after_another(store, capsys, monkeypatch):
    from orchestrator.cli import watch

    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(watch.time, "sleep", sleep)
    assert roft(["status", "--store", str(store.root), "--watch", "2"]) == 0
    out = capsys.readouterr()
    assert out.out.count("redrawn every") == 2 and "stopped watching (Ctrl-C)" in out.err
    assert all(0 <= s <= 2 for s in sleeps)


@pytest.mark.slow
@pytest.mark.data
def test_the_watch_follows_a_real_sweep(real_env, tmp_path):
    """The watch started on an empty store, then a real `roft sweep` of 8 tiny trials, one at a time:
    the sweep's row appears, planned from its saved spec, and its done count advances; then Ctrl-C."""
    import subprocess

    spec = tmp_path / "tiny.yaml"
    spec.write_text("name: tiny-watch\nbackbones: [scratch-gin]\nmethods: {full-ft: {}}\ntasks: [esol]\n"
                    "splits: [scaffold]\nlabel_settings: ['fewshot:16']\nseeds: [0, 1, 2, 3, 4, 5, 6, 7]\n"
                    "training: {epochs: 3, batch_size: 8}\nmodel: {num_layers: 2, emb_dim: 16}\n"
                    "resources: {cpu: 1}\nexecution: {fuse: false, max_concurrent: 1}\n")
    store = tmp_path / "store"
    store.mkdir()
    argv = [sys.executable, "-m", "orchestrator", "status", "--store", str(store), "--watch", "1"]
    with Pane(argv, cwd=str(REPO)) as pane:
        pane.wait_for(lambda text: "holds no sweep" in " ".join(text.split()), 300, "the empty store's line")  # as wrapped
        sweep = subprocess.Popen([sys.executable, "-m", "orchestrator", "sweep", str(spec), "--store", str(store),
                                  "--device", "cpu"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            first = pane.wait_for(lambda text: re.search(r"│ tiny-watch\s+│\s+\d+ of 8", text) is not None, 600,
                                  "the sweep's row, planned from its saved spec")
            later = pane.wait_for(lambda text: (done_of(text, "tiny-watch") or 0) > done_of(first, "tiny-watch"),
                                  900, "the done count advancing")
            assert done_of(later, "tiny-watch") > done_of(first, "tiny-watch")
            pane.send("C-c")
            end = pane.wait_for(lambda text: "EXIT=" in text, 60, "the command's end")
            assert "EXIT=0" in end and "Traceback" not in end
            assert sweep.wait(timeout=900) == 0
        finally:
            if sweep.poll() is None:
                sweep.terminate()
                sweep.wait(timeout=60)
