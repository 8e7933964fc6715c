"""A one-line progress bar for long loops: redrawn in place on a terminal, periodic lines in a log."""

from __future__ import annotations

import time
from typing import TextIO


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
