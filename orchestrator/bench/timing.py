"""Reading figures out of repeated wall-clock timings: when a figure is resolved, and its spread.

Every figure here is a pure function of timings already taken, so that the decision to print or
refuse a figure is tested with synthetic timings. A busy machine only ever adds time, so the
fastest of repeated runs is the figure; the spread is what the repeats allow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


class TimingNoiseError(RuntimeError):
    """A measurement whose noise exceeds its signal: no figure is printed for it."""


@dataclass(frozen=True)
class Spread:
    """A figure (``value``) and the range the repeats allow (``low <= value <= high``)."""

    value: float
    low: float
    high: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Spread:
        """The fastest sample, and the samples' range (a busy machine only adds time)."""
        if not samples:
            raise ValueError("no timings to summarise")
        return cls(min(samples), min(samples), max(samples))

    def scaled(self, factor: float) -> Spread:
        """Every bound times ``factor`` (> 0)."""
        return Spread(self.value * factor, self.low * factor, self.high * factor)

    def inverse(self, numerator: float = 1.0) -> Spread:
        """``numerator / value`` (rates from times): the bounds swap."""
        return Spread(numerator / self.value, numerator / self.high, numerator / self.low)

    def words(self, spec: str = ".3f") -> str:
        """``0.634 (0.600-0.664)`` (each number formatted by ``spec``); no range when the repeats agree."""
        value, low, high = (format(x, spec) for x in (self.value, self.low, self.high))
        return value if low == high else f"{value} ({low}-{high})"


@dataclass(frozen=True)
class EpochFit:
    """What whole fits of 1 and of ``1 + epochs`` epochs say: seconds per epoch (with its spread)
    and the fit's set-up seconds (0 when indistinguishable from zero)."""

    per_epoch: Spread
    setup: float


def fit_epochs(ones: Sequence[float], longs: Sequence[float], epochs: int) -> EpochFit:
    """Seconds per epoch and set-up from fits of 1 epoch (``ones``) and of ``1 + epochs`` (``longs``).

    ``ones[i]`` and ``longs[i]`` are one repeat, taken back to back. With ``a`` and ``b`` the fastest
    of each, the epoch costs ``e = (b - a) / epochs`` and the set-up ``s = a - e``. Its spread is
    the range of the repeats' own figures ``(longs[i] - ones[i]) / epochs``, which always holds ``e``.

    Refused (:class:`TimingNoiseError`, naming the timings) when the epoch is not resolved: ``e <= 0``,
    or its spread ``high - low`` is as large as ``e`` itself; or when the timings contradict each
    other, a set-up below zero even at the slowest 1-epoch fit and the cheapest epoch the repeats
    allow (``max(ones) - low < 0``: a 1-epoch fit faster than one epoch). A set-up within the noise
    of zero is reported as 0: a fit whose set-up is negligible, a fine answer.
    """
    if epochs < 1 or not ones or len(ones) != len(longs):
        raise ValueError(
            f"fit_epochs needs epochs >= 1 and as many timings of each length, at least one (got "
            f"epochs={epochs}, {len(ones)} and {len(longs)} timings)"
        )
    one, long = min(ones), min(longs)
    value = (long - one) / epochs
    repeats = [(b - a) / epochs for a, b in zip(ones, longs)]
    per_epoch = Spread(value, min(repeats), max(repeats))
    setup = one - value
    said = (
        f"fits of 1 epoch took {min(ones):.3f}-{max(ones):.3f} s and of {1 + epochs} epochs "
        f"{min(longs):.3f}-{max(longs):.3f} s over {len(ones)} repeats, which gives "
        f"{value:.3f} s per epoch ({per_epoch.low:.3f}-{per_epoch.high:.3f})"
    )
    advice = "; rerun with more --epochs, more --molecules or on a quieter machine"
    if not value > 0 or not math.isfinite(value):
        raise TimingNoiseError(f"timing noise exceeds the signal: {said}, not a positive figure{advice}")
    if per_epoch.high - per_epoch.low >= value:
        raise TimingNoiseError(f"timing noise exceeds the signal: {said}, a spread as large as the figure{advice}")
    if max(ones) - per_epoch.low < 0:
        raise TimingNoiseError(
            f"timings contradict each other: {said}, more than a whole 1-epoch fit ({setup:.3f} s of set-up){advice}"
        )
    return EpochFit(per_epoch, max(setup, 0.0))
