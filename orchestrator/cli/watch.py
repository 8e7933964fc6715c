"""``--watch [SECONDS]``: repeat a command's work every few seconds until Ctrl-C (``roft status``, ``roft report``).

Ctrl-C ends the watch cleanly: exit status 0, the last view left as it was, one line saying so.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from orchestrator.cli.arguments import number

DEFAULT_EVERY_S = 5.0
MIN_EVERY_S = 0.5


interval = number(MIN_EVERY_S, 86_400.0)  # --watch's SECONDS (argparse names the option and the value)


def add_watch(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--watch",
        nargs="?",
        const=DEFAULT_EVERY_S,
        default=None,
        type=interval,
        metavar="SECONDS",
        help=f"{what} every SECONDS (default {DEFAULT_EVERY_S:g}) until Ctrl-C",
    )


def repeat(step: Callable[[], object], every_s: float) -> int:
    """Call ``step`` now and then every ``every_s`` seconds (counted from each start) until Ctrl-C; returns 0."""
    try:
        while True:
            started = time.monotonic()
            step()
            time.sleep(max(0.0, every_s - (time.monotonic() - started)))
    except KeyboardInterrupt:
        return stopped()


def stopped() -> int:
    """Say that Ctrl-C ended the watch; the exit status 0."""
    print("stopped watching (Ctrl-C)", file=sys.stderr, flush=True)
    return 0
