"""``roft report --watch``: the page follows rows as they land, every read of it is a whole page, Ctrl-C ends it."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from orchestrator.store.results import ResultStore
from tests.cli.test_status_watch import Landing
from tests.unit.orchestrator.analysis import browser

REPO = Path(__file__).resolve().parents[2]


def trials_on(text: str) -> int | None:
    """How many finished trials the page says it covers."""
    match = re.search(r"from <b>(\d+) finished trials</b>", text)
    return int(match.group(1)) if match else None


class Reader:
    """Reads the page again and again, as a browser reloading it would; keeps every read."""

    def __init__(self, page: Path):
        self.page, self.reads, self.stop = page, [], threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)

    def _read(self) -> None:
        while not self.stop.is_set():
            try:
                self.reads.append(self.page.read_text())
            except FileNotFoundError:
                pass
            time.sleep(0.01)

    def __enter__(self) -> Reader:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while (value := predicate()) is None or value is False:
        assert time.monotonic() < deadline, f"never saw {what} within {timeout:.0f} s"
        time.sleep(0.2)
    return value


def _sigint_as_at_a_terminal() -> None:
    # a suite started in the background (`make test &`) ignores SIGINT, and Python then never turns
    # Ctrl-C into KeyboardInterrupt in its children: give the watch the default a terminal gives
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_watch(store: ResultStore, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "orchestrator", "report", "--store", str(store.root), "--out",
                             str(out), "--watch", "1"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=_sigint_as_at_a_terminal)


def covered(page: Path) -> int | None:
    return trials_on(page.read_text()) if page.exists() else None


def test_the_page_follows_landing_rows_and_is_always_whole(tmp_path):
    store = ResultStore(tmp_path / "store")
    store.root.mkdir(parents=True)  # an empty store: the watch waits for the first rows
    out, page = tmp_path / "report", tmp_path / "report" / "index.html"
    watch = start_watch(store, out)
    try:
        wait_for(lambda: covered(page) == 0, 180, "the waiting page")
        assert "no trial has landed in the store yet" in page.read_text()
        assert "http-equiv='refresh' content='1'" in page.read_text()  # a browser reloads it
        with Reader(page) as reader, Landing(store, trials=600, every_s=1.0):
            first = wait_for(lambda: (covered(page) or 0) >= 2 and covered(page), 180, "a page of landed rows")
            wait_for(lambda: (covered(page) or 0) > first, 180, "a later page with more rows")
        watch.send_signal(signal.SIGINT)
        stdout, stderr = watch.communicate(timeout=120)
    finally:
        if watch.poll() is None:
            watch.kill()
    assert watch.returncode == 0 and "stopped watching (Ctrl-C)" in stderr and "Traceback" not in stderr
    assert "no finished trial yet" in stdout and "finished trials in" in stdout
    counts = [trials_on(text) for text in reader.reads]
    assert len(reader.reads) > 50 and len(set(counts)) >= 3  # read while several pages replaced each other
    for text in reader.reads:  # never half a page
        assert text.startswith("<!DOCTYPE html>") and text.endswith("</html>")
        assert trials_on(text) is not None
    assert counts == sorted(counts)  # a later read never covers fewer trials
    leftovers = [p.name for p in out.rglob(".*")]
    assert leftovers == []  # every temporary renamed into place


@pytest.mark.slow
def test_chromium_shows_the_page_advance_while_rows_land(tmp_path):
    store = ResultStore(tmp_path / "store")
    store.root.mkdir(parents=True)
    out, page = tmp_path / "report", tmp_path / "report" / "index.html"
    watch = start_watch(store, out)
    try:
        with Landing(store, trials=600, every_s=1.0):
            wait_for(lambda: (covered(page) or 0) >= 3, 180, "a page of landed rows")
            early = browser.dom(page)
            browser.screenshot(page, tmp_path / "early.png", height=1600)
            wait_for(lambda: (covered(page) or 0) >= trials_on(early) + 5, 180, "a later page")
            late = browser.dom(page)
            browser.screenshot(page, tmp_path / "late.png", height=1600)
        watch.send_signal(signal.SIGINT)
        watch.communicate(timeout=120)
    finally:
        if watch.poll() is None:
            watch.kill()
    assert trials_on(late) > trials_on(early) >= 3
    for shot in (tmp_path / "early.png", tmp_path / "late.png"):
        assert browser.ink(shot) > 0.02
