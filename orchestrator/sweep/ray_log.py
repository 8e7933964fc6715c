"""Ray's driver log during a sweep: to a file, with the terminal kept to what applies to roft.

Tune's tracebacks of failed trials and its hints go to ``<tmp>/roft-logs/<sweep>-<time>-<pid>.log``
(:func:`ray_log`); the terminal keeps Ray's other warnings but none of its tracebacks nor hints
that do not apply (``Tuner.restore(...)``: a sweep resumes by rerunning the same command).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("orchestrator.sweep.execute")  # the sweep's own records (to the log file only)
log.addHandler(logging.NullHandler())
log.propagate = False

_HIDDEN_RAY_MESSAGES = re.compile(
    r"Trials did not complete"  # the sweep lists its failed trials, one line each
    r"|Tuner\.restore|Resume (experiment|training) with"  # a sweep resumes by being rerun, not restored
    r"|Stop signal received"  # Tune's Ctrl-C advice; roft says what to do after an interruption
    r"|Token authentication is (enabled|disabled) for this Ray cluster"
)  # a private local Ray's notice


class _RayConsoleFilter(logging.Filter):
    """Keeps Ray's console free of tracebacks (failed trials are reported in one line each; the log
    file and the store's failures/ table hold the tracebacks) and of :data:`_HIDDEN_RAY_MESSAGES`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info or record.exc_text:
            return False
        try:
            message = record.getMessage()
        except Exception:  # a record whose message cannot be formatted: let its handler deal with it
            return True
        # (a traceback can also come inside the message, e.g. Tune's "Last sync command failed")
        return "Traceback (most recent call last)" not in message and not _HIDDEN_RAY_MESSAGES.search(message)


class _LogFile(logging.FileHandler):
    """A log file created on its first record; a failure to write it is ignored (the store's
    disk may be full: the sweep's own error must still come out as one line)."""

    def __init__(self, path: Path):
        super().__init__(path, delay=True, encoding="utf-8")
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s:%(lineno)d -- %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            return
        super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def sweep_log_path(name: str) -> Path:
    """Where a sweep's Ray log goes: ``<temp>/roft-logs/<sweep>-<time>-<pid>.log`` (on the driver's
    disk, not in the store: a full or unwritable store must not lose it)."""
    safe, stamp = re.sub(r"[^\w.-]", "_", name), time.strftime("%Y%m%d-%H%M%S")
    return Path(tempfile.gettempdir()) / "roft-logs" / f"{safe}-{stamp}-{os.getpid()}.log"


class _RayLog:
    """The file handler and console filter of :func:`ray_log` while it runs."""

    active: _RayLog | None = None

    def __init__(self, path: Path):
        self.handler, self.console = _LogFile(path), _RayConsoleFilter()
        self.filtered: list[logging.Handler] = []

    def filter_console(self) -> None:
        """Filter every terminal handler of the ``ray`` logger (idempotent: Ray may add or replace
        them in ``ray.init``, which calls this again)."""
        for handler in logging.getLogger("ray").handlers:
            if not isinstance(handler, logging.FileHandler) and self.console not in handler.filters:
                handler.addFilter(self.console)
                self.filtered.append(handler)


@contextlib.contextmanager
def ray_log(path: Path) -> Iterator[Path]:
    """While the block runs, every record of Ray's driver loggers (``ray``, ``ray.tune``, ...) and of
    this module goes to ``path`` (created on the first record), and Ray's console shows only what
    :class:`_RayConsoleFilter` keeps."""
    import ray  # noqa: F401  (importing Ray installs the ``ray`` logger's terminal handler, filtered here)

    state = _RayLog(path)
    ray_logger = logging.getLogger("ray")
    ray_logger.addHandler(state.handler)
    log.addHandler(state.handler)
    state.filter_console()
    _RayLog.active = state
    try:
        yield path
    finally:
        _RayLog.active = None
        for handler in state.filtered:
            handler.removeFilter(state.console)
        ray_logger.removeHandler(state.handler)
        log.removeHandler(state.handler)
        state.handler.close()


def see_log(path: Path | None) -> str:
    """``"; the full traceback is in PATH"`` when the sweep's log file exists, else ''."""
    return f"; the full traceback is in {path}" if path is not None and path.exists() else ""


def filter_ray_console() -> None:
    """Inside :func:`ray_log`: filter the terminal handlers that ``ray.init`` may have added since."""
    if _RayLog.active is not None:
        _RayLog.active.filter_console()
