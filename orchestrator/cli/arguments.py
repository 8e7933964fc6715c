"""Argument types of the ``roft`` commands: every number an option takes has a range, refused by
argparse (exit 2) in one line that names the option, the value and what is accepted, e.g.
``argument --seeds: '-1' is not accepted; accepted: an integer from 1 to 10,000``. NaN and infinities
are refused wherever a number is taken; durations (``--stale-after``, ``--older-than``) and torch
devices are checked the same way, before any command runs."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

from trainables.core.config import MAX_EPOCHS, MAX_SEED, MAX_SEEDS, accepted_range

__all__ = ["MAX_EPOCHS", "MAX_SEED", "MAX_SEEDS", "age", "age_seconds", "device", "integer", "number", "selection"]


def integer(minimum: int, maximum: int) -> Callable[[str], int]:
    """An argparse type: an integer from ``minimum`` to ``maximum`` (both included)."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not accepted; accepted: {accepted_range(int, minimum, maximum)}"
            )
        return value

    convert.__name__ = "integer"
    return convert


def number(minimum: float, maximum: float, *, above: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number from ``minimum`` to ``maximum``; ``above``: strictly above ``minimum``."""

    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (minimum < value if above else minimum <= value) or not value <= maximum:  # NaN fails both
            accepted = accepted_range(float, minimum, maximum)
            if above:
                accepted = accepted.replace(" from ", " above ", 1).replace(" to ", ", up to ", 1)
            raise argparse.ArgumentTypeError(f"{text!r} is not accepted; accepted: {accepted}")
        return value

    convert.__name__ = "number"
    return convert


def age_seconds(text: str) -> float:
    """``"90m"``, ``"2h"``, ``"30s"``, ``"0"`` -> seconds; ``ValueError`` naming the text for anything else,
    NaN and infinities included."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    try:
        seconds = float(value) * units[unit]
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds < math.inf:  # NaN fails too
        raise ValueError(
            f"{text!r} is not accepted; accepted: a finite duration >= 0 in s, m, h or d (e.g. 30m, 2h; a bare number: s)"
        )
    return seconds


def age(text: str) -> float:
    """An argparse type: a duration such as ``30s``, ``90m``, ``2h``, ``1d`` (a bare number: seconds) -> seconds."""
    try:
        return age_seconds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


DEVICE = re.compile(r"auto|cpu|cuda(:\d{1,3})?")


def device(text: str) -> str:
    """An argparse type: ``auto`` (CUDA where available), ``cpu``, ``cuda`` or ``cuda:N``."""
    if not DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not accepted; accepted: auto, cpu, cuda or cuda:N")
    return text


def selection(text: str) -> tuple[str, tuple[str, ...]]:
    """An argparse type: ``AXIS=VALUE[,VALUE]`` of ``roft sweep --only`` (:mod:`search_spaces.slices`)."""
    from search_spaces.slices import parse_selection

    try:
        return parse_selection(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
