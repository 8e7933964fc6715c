"""A one-line progress bar for long loops: redrawn in place on a terminal, periodic lines in a log."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from orchestrator.wording import plural


class ProgressLine:
    """``[#########-----------]  45%  120/391  <text>``.

    On a terminal the line is redrawn at most ``1 / min_interval`` times a second; when the stream
    is a file or pipe (a job log), one plain line is written every ``log_interval`` seconds.
    """

    def __init__(self, stream: TextIO, width: int = 24, min_interval: float = 0.1, log_interval: float = 10.0):
        self.stream, self.width = stream, width
        self.interactive = bool(getattr(stream, "isatty", lambda: False)())
        self.interval = min_interval if self.interactive else log_interval
        self._last, self._drawn = float("-inf"), False

    def render(self, done: int, total: int, text: str) -> str:
        fraction = 0.0 if total <= 0 else min(1.0, done / total)
        filled = int(round(fraction * self.width))
        return f"[{'#' * filled}{'-' * (self.width - filled)}] {fraction:4.0%}  {done}/{total}  {text}"

    def update(self, done: int, total: int, text: str = "") -> None:
        now = time.monotonic()
        if now - self._last < self.interval and done < total:
            return
        self._last = now
        line = self.render(done, total, text)
        if self.interactive:
            self.stream.write("\r\033[K" + line)
            self._drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


class ProgressReporter:
    """Prints ``done / failed / running / queued`` and an ETA as trials start and finish, and a
    heartbeat with the epochs the running trials have reached when nothing else was printed for
    ``heartbeat_s`` (a fused group of hundreds of trials finishes all at once, minutes later)."""

    def __init__(
        self,
        total: int,
        name: str,
        stream: TextIO | None = None,
        min_interval_s: float = 2.0,
        heartbeat_s: float = 30.0,
    ):
        # stream None: whatever sys.stderr is when printing (the reporter must stay picklable
        # for Tune's experiment state, and sys.stderr may be swapped, e.g. by a test harness).
        self.total, self.name, self.stream, self.min_interval_s = total, name, stream, min_interval_s
        self.heartbeat_s = heartbeat_s
        self.done = self.failed = self.running = 0
        self.epochs: dict[str, int] = {}  # running unit (a Tune trial: one trial or a fused group) -> last epoch
        self.started_at = time.perf_counter()
        self._last_print = 0.0

    def update(self, running: int, finished_ok: int = 0, finished_failed: int = 0, unit: str | None = None) -> None:
        """Record ``running`` trials now and newly finished ones (those of ``unit``); print a line when due."""
        self.running = running
        self.done += finished_ok
        self.failed += finished_failed
        if unit is not None:
            self.epochs.pop(unit, None)
        self._print(force=bool(finished_ok or finished_failed))

    def progress(self, unit: str, epoch: int | None, running: int | None = None) -> None:
        """The running ``unit`` reported ``epoch`` (``running`` units now); prints the heartbeat line
        when one is due."""
        if running is not None:
            self.running = running
        if epoch is not None:
            self.epochs[unit] = int(epoch)
        if time.perf_counter() - self._last_print >= self.heartbeat_s:
            self._print(force=True)

    def retrying(self, unit: str, trials: int, failures: int, error: str) -> None:
        """A worker running ``unit`` (``trials`` trials) failed; Tune runs it again (``failures`` so far)."""
        self.epochs.pop(unit, None)
        cause = f" ({error})" if error else ""
        print(
            f"[{self.name}] {plural(trials, 'trial')} of {unit}: their worker was lost{cause}; retried elsewhere "
            f"(failure {failures})",
            file=self.stream or sys.stderr,
            flush=True,
        )

    def line(self) -> str:
        elapsed = time.perf_counter() - self.started_at
        finished = self.done + self.failed
        remaining = self.total - finished
        eta = _fmt(elapsed / finished * remaining) if finished else "?"
        epochs = sorted(self.epochs.values())
        at = (
            ""
            if not epochs
            else (f", at epoch {epochs[0]}" if epochs[0] == epochs[-1] else f", at epochs {epochs[0]}-{epochs[-1]}")
        )
        return (
            f"[{self.name}] {self.done}/{self.total} done, {self.failed} failed, {self.running} running{at}, "
            f"{max(0, remaining - self.running)} queued | elapsed {_fmt(elapsed)}, ETA {eta}"
        )

    def _print(self, force: bool = False) -> None:
        now = time.perf_counter()
        if force or now - self._last_print >= self.min_interval_s:
            self._last_print = now
            print(self.line(), file=self.stream or sys.stderr, flush=True)


def _fmt(seconds: float) -> str:
    seconds = int(round(seconds))
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"
    )


def _last_error_line(tune_trial) -> str:
    """The exception line of a Tune trial's last error (from its error file), or ''."""
    try:
        text = tune_trial.get_error()
    except Exception:  # noqa: BLE001 (a missing or unreadable error file: say nothing rather than fail the sweep)
        return ""
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    named = [line for line in lines if "Error" in line.split(":")[0] or "Exception" in line.split(":")[0]]
    return (named or lines or [""])[-1][:200]


def _size(tune_trial) -> int:
    """Logical trials in a Tune trial (a fused group holds several)."""
    return len(tune_trial.config["trial"].get("members", [None]))


def tune_callback(reporter: ProgressReporter):
    from ray.tune import Callback
    from ray.tune.experiment import Trial

    def running(trials, finishing=None) -> int:
        """Tune trials running now (``finishing``: one Tune still marks running as it reports its end)."""
        return sum(t.status == Trial.RUNNING and t is not finishing for t in trials)

    class _Progress(Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            reporter.update(running(trials))

        def on_trial_result(self, iteration, trials, trial, result, **info):
            reporter.progress(trial.trial_id, None if result.get("done") else result.get("epoch"), running(trials))

        def on_trial_complete(self, iteration, trials, trial, **info):
            reporter.update(running(trials, trial), finished_ok=_size(trial), unit=trial.trial_id)

        def on_trial_error(self, iteration, trials, trial, **info):
            reporter.update(running(trials, trial), finished_failed=_size(trial), unit=trial.trial_id)

        def on_trial_recover(self, iteration, trials, trial, **info):
            reporter.retrying(trial.trial_id, _size(trial), trial.num_failures, _last_error_line(trial))

    return _Progress()
