"""Per-method rates measured by ``roft bench methods``: the rates file, read and written here only.

A rates file holds, for one cell (backbone, task, split, label setting, seeds) and one recipe
length (``epochs``), each method's wall seconds per trial (a RoFt-Mol fit, a WiSE-FT point) on
the unfused engine (each trial alone) and on the fused one (the trials in the groups a sweep
forms; ``None`` where the method does not fuse), with the range of the repeats, the hyper-parameter
points it ran and where and when it was measured. The GPU-hour estimate
(:mod:`orchestrator.sweep.estimate`) reads each method's cost relative to Full FT's from it.

The bundled file, ``search_spaces/method_rates.json``, was measured on a CPU (its ``device`` and
``measured_at`` say which and when); ``roft bench methods --out FILE`` writes another, and
``roft sweep SPEC --dry-run --method-rates FILE`` plans with it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import search_spaces

RATES_FORMAT = 1
BUNDLED_RATES = Path(search_spaces.__file__).parent / "method_rates.json"
ENGINES = ("unfused", "fused")


class RatesError(ValueError):
    """A rates file that cannot be read: one line naming the file and what is wrong."""


@dataclass(frozen=True)
class EngineRate:
    """Wall seconds per trial on one engine: the fastest repeat (``seconds``) and the repeats' range.

    ``trials_timed``: trials each repeat timed; ``groups``: the sizes of the fused groups (empty
    for the unfused engine, where each trial ran alone).
    """

    seconds: float
    low: float
    high: float
    trials_timed: int
    groups: tuple[int, ...] = ()

    def __post_init__(self):
        if not (0 < self.low <= self.seconds <= self.high and math.isfinite(self.high)):
            raise ValueError(
                f"seconds per trial {self.seconds!r} (range {self.low!r}-{self.high!r}) is not accepted; "
                "accepted: positive, finite, within its range"
            )

    @property
    def per_hour(self) -> float:
        return 3600.0 / self.seconds

    def to_json(self) -> dict[str, Any]:
        return {
            "seconds_per_trial": self.seconds,
            "range": [self.low, self.high],
            "trials_timed": self.trials_timed,
            "groups": list(self.groups),
            "per_hour": self.per_hour,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> EngineRate:
        low, high = raw["range"]
        return cls(
            float(raw["seconds_per_trial"]),
            float(low),
            float(high),
            int(raw["trials_timed"]),
            tuple(int(g) for g in raw.get("groups", ())),
        )


@dataclass(frozen=True)
class MethodRate:
    """One method's measured rates in the bench's cell.

    ``unit``: what one trial of it is (``trial``; ``fit`` for a method that trains from a parent's
    checkpoint, RoFt-Mol; ``point`` for one that only evaluates, WiSE-FT). ``configs``: the
    hyper-parameter points it ran (each for every seed; stage lengths as run). ``fit_epochs``: the
    mean training epochs of its trials (0 for a point).
    """

    method: str
    unit: str
    configs: tuple[dict[str, Any], ...]
    trials: int
    fit_epochs: float
    unfused: EngineRate | None
    fused: EngineRate | None  # None: the method does not fuse

    def engine(self, name: str) -> EngineRate | None:
        if name not in ENGINES:
            raise ValueError(f"engine {name!r}; accepted: {', '.join(ENGINES)}")
        return getattr(self, name)

    def seconds_per_trial_epoch(self, name: str) -> float | None:
        rate = self.engine(name)
        return None if rate is None or not self.fit_epochs else rate.seconds / self.fit_epochs

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "unit": self.unit,
            "configs": [dict(c) for c in self.configs],
            "trials": self.trials,
            "fit_epochs": self.fit_epochs,
        }
        for name in ENGINES:
            rate = self.engine(name)
            out[name] = (
                None
                if rate is None
                else {**rate.to_json(), "seconds_per_trial_epoch": self.seconds_per_trial_epoch(name)}
            )
        if self.unfused is not None and self.fused is not None:
            out["fused_over_unfused"] = self.fused.per_hour / self.unfused.per_hour
        return out

    @classmethod
    def from_json(cls, method: str, raw: dict[str, Any]) -> MethodRate:
        return cls(
            method,
            str(raw["unit"]),
            tuple(dict(c) for c in raw["configs"]),
            int(raw["trials"]),
            float(raw["fit_epochs"]),
            *(None if raw.get(name) is None else EngineRate.from_json(raw[name]) for name in ENGINES),
        )


@dataclass(frozen=True)
class MethodRates:
    """A rates file: where, when and on what the methods were measured, and each method's rates."""

    measured_at: str  # ISO date and time (UTC)
    device: str  # e.g. "cpu (AMD EPYC 7B13, 1 torch thread, 2 CPUs, load 9.1)" or "cuda (NVIDIA H100 80GB HBM3)"
    epochs: int  # the recipe's (Full FT's) epochs
    backbone: str
    task: str
    split: str
    label_setting: str
    seeds: int
    task_molecules: int  # rows of the task's file (what the estimate scales by)
    molecules: dict[str, int]  # train / valid / test as the trials saw them
    methods: dict[str, MethodRate]
    fuse_max: int = 64
    source: str = field(default="", compare=False)  # the file it was read from

    def to_json(self) -> dict[str, Any]:
        return {
            "format": RATES_FORMAT,
            "measured_at": self.measured_at,
            "device": self.device,
            "epochs": self.epochs,
            "cell": {
                "backbone": self.backbone,
                "task": self.task,
                "split": self.split,
                "label_setting": self.label_setting,
                "seeds": self.seeds,
            },
            "task_molecules": self.task_molecules,
            "molecules": dict(self.molecules),
            "fuse_max": self.fuse_max,
            "methods": {name: rate.to_json() for name, rate in self.methods.items()},
        }

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_json(cls, raw: dict[str, Any], source: str = "") -> MethodRates:
        if raw.get("format") != RATES_FORMAT:
            raise ValueError(f"format {raw.get('format')!r}; accepted: {RATES_FORMAT}")
        cell = raw["cell"]
        return cls(
            str(raw["measured_at"]),
            str(raw["device"]),
            int(raw["epochs"]),
            str(cell["backbone"]),
            str(cell["task"]),
            str(cell["split"]),
            str(cell["label_setting"]),
            int(cell["seeds"]),
            int(raw["task_molecules"]),
            {k: int(v) for k, v in raw["molecules"].items()},
            {name: MethodRate.from_json(name, m) for name, m in raw["methods"].items()},
            int(raw.get("fuse_max", 64)),
            source,
        )

    @classmethod
    def load(cls, path: str | Path | None = None) -> MethodRates:
        """The rates file at ``path`` (default: the bundled one); :class:`RatesError` naming what is wrong."""
        path = Path(path) if path is not None else BUNDLED_RATES
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return cls.from_json(raw, str(path))
        except FileNotFoundError:
            raise RatesError(
                f"method rates file {str(path)!r} not found; accepted: a JSON file written by "
                "`roft bench methods --out FILE`"
            ) from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            what = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise RatesError(
                f"method rates file {str(path)!r} is not a rates file ({what}); accepted: a JSON file "
                "written by `roft bench methods --out FILE`"
            ) from None
