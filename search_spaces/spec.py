"""Sweep specs: YAML files validated before anything runs.

A spec lists the axes of the grid; every unknown key or value is an error naming its key path
and the accepted values, and *all* errors of a spec are reported together::

    name: mini                          # sweep name (letters, digits, - and _)
    backbones: [hu-gcn-contextpred, scratch-gcn]
    methods:                            # method -> {hyper-parameter: value or list of values}
      full-ft: {}                       #   (or a list of such grids, e.g. RoFt-Mol's gradient
      lp: {freeze_bn_stats: [false, true]}  # grid and its Optuna search)
    tasks: [bbbp, esol]
    splits: [scaffold]                  # scaffold | size | random
    label_settings: [full, "fewshot:100", "ratio:0.1"]
    seeds: [0, 1, 2]                    # or {range: [0, 5]}
    subset_seed: 42                     # int, or "run" to follow each run seed
    training: {epochs: 100, batch_size: 32, lr: 0.001, weight_decay: 0.0, dropout: 0.5}
    model: {num_layers: 5, emb_dim: 300}   # scratch backbones only (default 5x300, GPS 16x256); checkpoints fix their own
    resources: {cpu: 1, gpu: 0}         # per trial; gpu may be fractional (0.25)
    execution: {chunk_size: 256, max_failures: 1, max_concurrent: 0, artifacts: required,
                fuse: true, fuse_max: 64, tf32: false, compile: false,
                dropout_streams: per-trial, precision: fp32, aggregation: scatter}
                                        # artifacts: required (keep the checkpoints that WiSE-FT /
                                        # RoFt-Mol start from) or all; fuse: train compatible
                                        # trials as fused groups of up to fuse_max (one Ray trial
                                        # each, with the resources above), false: one by one;
                                        # tf32, compile, dropout_streams (per-trial | group),
                                        # precision (fp32 | bf16), aggregation (scatter | csr):
                                        # GPU speed options, see trainables.training.fused.engine.fit_fused

Methods that start from another trial's checkpoint (``wise-ft``, ``roft-mol``: ``full-ft``)
make the planner add the ``full-ft`` trials they need when the spec does not list them.
"""

from __future__ import annotations

import difflib
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trainables.core.config import ARTIFACT_POLICIES, TrainingRecipe
from trainables.core.engine import EngineOptions
from trainables.data.splits import SPLITS, parse_label_setting
from trainables.data.tasks import TASKS
from trainables.methods import METHODS
from trainables.models.backbones import BACKBONES
from trainables.models.shapes import scratch_shape


class SpecError(ValueError):
    """A sweep spec is invalid; ``errors`` lists every problem as ``key.path: message``."""

    def __init__(self, source: str, errors: list[str]):
        self.errors = errors
        super().__init__(f"invalid sweep spec {source}:\n" + "\n".join(f"  - {e}" for e in errors))


@dataclass(frozen=True)
class Resources:
    cpu: float = 1.0
    gpu: float = 0.0


@dataclass(frozen=True)
class Execution:
    chunk_size: int = 256
    max_failures: int = 1
    max_concurrent: int = 0  # 0: as many as resources allow
    artifacts: str = "required"  # required | all (which trials keep their best checkpoint)
    fuse: bool = True  # train compatible trials as fused groups (trainables.training.fused); false: one by one
    fuse_max: int = 64  # most trials in one fused group
    # speed options, written flat under `execution:` (tf32, compile, ...; see trainables.core.engine)
    engine: EngineOptions = field(default_factory=EngineOptions)


DISTRIBUTIONS = ("uniform", "log_uniform", "int", "choice")
SEARCH_KEYS = ("tune", "num_samples", "tune_seed", "max_concurrent")  # keys of a searched method's mapping


@dataclass(frozen=True)
class HyperparameterSearch:
    """A method whose hyper-parameters Ray Tune's OptunaSearch explores instead of a grid.

    ``space``: name -> (distribution, arguments): ``("uniform", (lo, hi))``, ``("log_uniform",
    (lo, hi))``, ``("int", (lo, hi))`` (both ends included) or ``("choice", (v1, v2, ...))``.
    ``fixed``: the method's other hyper-parameters. Each sampled point trains every seed of
    the spec; its objective is the seed-mean validation metric.
    """

    method: str
    fixed: tuple[tuple[str, Any], ...]
    space: tuple[tuple[str, str, tuple], ...]
    num_samples: int = 20
    tune_seed: int = 0
    max_concurrent: int = 1  # 1: points are proposed in order, so a rerun replays the study from the store

    def describe(self) -> str:
        space = ", ".join(f"{name} ~ {kind}{list(args)}" for name, kind, args in self.space)
        return f"{self.method}: optuna over {space}, {self.num_samples} samples (seed {self.tune_seed})"


@dataclass(frozen=True)
class SweepSpec:
    name: str
    backbones: tuple[str, ...]
    methods: tuple[tuple[str, dict[str, Any]], ...]  # expanded grid: (method, params) points
    tasks: tuple[str, ...]
    splits: tuple[str, ...]
    label_settings: tuple[str, ...]
    seeds: tuple[int, ...]
    subset_seed: int | str = 42
    recipe: TrainingRecipe = field(default_factory=TrainingRecipe)
    num_layers: int | None = None  # scratch backbones; None: the architecture's default (5x300, GPS 16x256)
    emb_dim: int | None = None
    resources: Resources = field(default_factory=Resources)
    execution: Execution = field(default_factory=Execution)
    source: str = "<spec>"
    searches: tuple[HyperparameterSearch, ...] = ()  # methods searched by Ray Tune + Optuna


_TOP_KEYS = ("name", "description", "backbones", "methods", "tasks", "splits", "label_settings", "seeds",
             "subset_seed", "training", "model", "resources", "execution")
_REQUIRED = ("name", "backbones", "methods", "tasks", "splits", "label_settings", "seeds")
_SECTIONS = {
    "training": {"epochs": (int, 1), "batch_size": (int, 1), "lr": (float, 0.0), "weight_decay": (float, 0.0),
                 "dropout": (float, 0.0)},
    "model": {"num_layers": (int, 1), "emb_dim": (int, 1)},
    "resources": {"cpu": (float, 0.0), "gpu": (float, 0.0)},
    "execution": {"chunk_size": (int, 1), "max_failures": (int, 0), "max_concurrent": (int, 0),
                  "artifacts": ARTIFACT_POLICIES, "fuse": bool, "fuse_max": (int, 1), **EngineOptions.schema()},
}


def _unknown(path: str, key: object, accepted: list[str] | tuple[str, ...], what: str = "value") -> str:
    close = difflib.get_close_matches(str(key), list(accepted), n=2)
    hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    return f"{path}: unknown {what} {key!r}{hint}; accepted: {', '.join(map(str, accepted))}"


class _Validator:
    def __init__(self, source: str):
        self.source = source
        self.errors: list[str] = []
        self.searches: list[HyperparameterSearch] = []

    def names(self, raw: dict, key: str, registry) -> tuple[str, ...]:
        values = raw.get(key)
        if not isinstance(values, list) or not values:
            self.errors.append(f"{key}: must be a non-empty list; accepted values: {', '.join(registry.names())}")
            return ()
        out = []
        for i, value in enumerate(values):
            if value not in registry:
                self.errors.append(_unknown(f"{key}[{i}]", value, registry.names()))
            else:
                out.append(value)
        return tuple(dict.fromkeys(out))

    def methods(self, raw: Any) -> tuple[tuple[str, dict[str, Any]], ...]:
        if not isinstance(raw, dict) or not raw:
            self.errors.append(f"methods: must be a non-empty mapping of method -> hyper-parameter grid; "
                               f"accepted methods: {', '.join(METHODS.names())}")
            return ()
        points: list[tuple[str, dict[str, Any]]] = []
        for name, grid in raw.items():
            path = f"methods.{name}"
            if name not in METHODS:
                self.errors.append(_unknown("methods", name, METHODS.names(), "method"))
                continue
            cls = METHODS.get(name)
            grids = grid if isinstance(grid, list) and grid else [grid or {}]
            for index, one in enumerate(grids):
                where = path if len(grids) == 1 else f"{path}[{index}]"
                if not isinstance(one, dict):
                    self.errors.append(f"{where}: must be a mapping of hyper-parameter -> value(s) (or a list of "
                                       f"such mappings), got {one!r}")
                    continue
                if "tune" in one:
                    search = self.method_search(cls, where, one)
                    if search is not None:
                        self.searches.append(search)
                    continue
                for point in self.method_grid(cls, where, one):
                    if (name, point) not in points:
                        points.append((name, point))
        return tuple(points)

    def method_search(self, cls, path: str, grid: dict) -> HyperparameterSearch | None:
        """A searched method: ``{tune: optuna, num_samples: N, <hp>: {uniform: [lo, hi]} | value, ...}``."""
        before = len(self.errors)
        if grid["tune"] != "optuna":
            self.errors.append(f"{path}.tune: {grid['tune']!r} is not accepted; accepted: optuna")
        settings = {}
        for key, minimum, default in (("num_samples", 1, 20), ("tune_seed", 0, 0), ("max_concurrent", 1, 1)):
            value = grid.get(key, default)
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                self.errors.append(f"{path}.{key}: {value!r} is not accepted; accepted: an integer >= {minimum}")
            settings[key] = value
        fixed, space = {}, []
        for name, value in grid.items():
            if name in SEARCH_KEYS:
                continue
            if name not in cls.hyperparameters:
                self.errors.append(_unknown(path, name, list(cls.hyperparameters) or ["(none)"], "hyper-parameter"))
                continue
            hp, where = cls.hyperparameters[name], f"{path}.{name}"
            if isinstance(value, dict):
                entry = self.distribution(hp, where, value)
                if entry is not None:
                    space.append((name, *entry))
            elif isinstance(value, list):
                self.errors.append(f"{where}: a searched method takes a distribution, not a list; accepted: "
                                   "{uniform: [lo, hi]}, {log_uniform: [lo, hi]}, {int: [lo, hi]}, {choice: [...]} "
                                   "or one fixed value")
            else:
                try:
                    fixed[name] = hp.validate(where, value)
                except ValueError as exc:
                    self.errors.append(str(exc))
        if not space and len(self.errors) == before:
            self.errors.append(f"{path}: 'tune: optuna' needs at least one hyper-parameter distribution, e.g. "
                               "d: {log_uniform: [1.0e-4, 1.0]}")
        if len(self.errors) > before:
            return None
        return HyperparameterSearch(cls.name, tuple(sorted(fixed.items())), tuple(space), **settings)

    def distribution(self, hp, path: str, value: dict) -> tuple[str, tuple] | None:
        if len(value) != 1 or next(iter(value)) not in DISTRIBUTIONS:
            self.errors.append(f"{path}: {value!r} is not accepted; accepted: one of "
                               + ", ".join(f"{{{d}: [...]}}" for d in DISTRIBUTIONS))
            return None
        kind, args = next(iter(value.items()))
        if not isinstance(args, list) or not args or (kind != "choice" and len(args) != 2):
            self.errors.append(f"{path}.{kind}: {args!r} is not accepted; accepted: "
                               + ("a non-empty list of values" if kind == "choice" else "[low, high]"))
            return None
        wanted = {"uniform": float, "log_uniform": float, "int": int}.get(kind)
        if wanted is not None and hp.type is not wanted:
            self.errors.append(f"{path}.{kind}: the hyper-parameter is {hp.type.__name__}-valued; accepted: "
                               + ("uniform, log_uniform or choice" if hp.type is float else
                                  "int or choice" if hp.type is int else "choice"))
            return None
        try:
            checked = tuple(hp.validate(path, a) for a in args)
        except ValueError as exc:
            self.errors.append(str(exc))
            return None
        if kind != "choice" and not checked[0] < checked[1]:
            self.errors.append(f"{path}.{kind}: low {checked[0]!r} must be below high {checked[1]!r}")
            return None
        if kind == "log_uniform" and checked[0] <= 0:
            self.errors.append(f"{path}.log_uniform: low {checked[0]!r} must be > 0")
            return None
        return kind, checked

    def method_grid(self, cls, path: str, grid: dict) -> list[dict[str, Any]]:
        """Every point of one hyper-parameter grid (cartesian product), each value validated."""
        axes: dict[str, list[Any]] = {}
        for hp_name, values in grid.items():
            if hp_name not in cls.hyperparameters:
                self.errors.append(_unknown(path, hp_name, list(cls.hyperparameters) or ["(none)"], "hyper-parameter"))
                continue
            values = values if isinstance(values, list) else [values]
            checked = []
            for value in values:
                try:
                    checked.append(cls.hyperparameters[hp_name].validate(f"{path}.{hp_name}", value))
                except ValueError as exc:
                    self.errors.append(str(exc))
            axes[hp_name] = checked
        points = []
        for combo in itertools.product(*axes.values()):
            try:
                points.append(cls.validate_params(dict(zip(axes, combo))))
            except ValueError as exc:
                if str(exc) not in self.errors:
                    self.errors.append(f"{path}: {exc}")
        return points

    def label_settings(self, raw: Any) -> tuple[str, ...]:
        if not isinstance(raw, list) or not raw:
            self.errors.append("label_settings: must be a non-empty list of 'full', 'fewshot:N' or 'ratio:r'")
            return ()
        out = []
        for i, value in enumerate(raw):
            try:
                out.append(str(parse_label_setting(value)))
            except ValueError as exc:
                self.errors.append(f"label_settings[{i}]: {exc}")
        return tuple(dict.fromkeys(out))

    def seeds(self, raw: Any) -> tuple[int, ...]:
        if isinstance(raw, dict) and set(raw) == {"range"} and isinstance(raw["range"], list) \
                and len(raw["range"]) == 2 and all(isinstance(v, int) for v in raw["range"]):
            raw = list(range(*raw["range"]))
        if not isinstance(raw, list) or not raw or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                           for s in raw):
            self.errors.append(f"seeds: {raw!r} is not accepted; accepted: a non-empty list of integers >= 0 "
                               "or {range: [start, stop]}")
            return ()
        return tuple(dict.fromkeys(raw))

    def section(self, raw: dict, name: str) -> dict[str, Any]:
        value = raw.get(name) or {}
        if not isinstance(value, dict):
            self.errors.append(f"{name}: must be a mapping, got {value!r}")
            return {}
        schema = _SECTIONS[name]
        out = {}
        for key, item in value.items():
            if key not in schema:
                self.errors.append(_unknown(name, key, list(schema), "key"))
                continue
            if schema[key] is bool:
                if not isinstance(item, bool):
                    self.errors.append(f"{name}.{key}: {item!r} is not accepted; accepted: true, false")
                else:
                    out[key] = item
                continue
            if isinstance(schema[key], tuple) and all(isinstance(c, str) for c in schema[key]):
                if item not in schema[key]:
                    self.errors.append(f"{name}.{key}: {item!r} is not accepted; accepted: {', '.join(schema[key])}")
                else:
                    out[key] = item
                continue
            kind, minimum = schema[key]
            ok = isinstance(item, (int, float)) and not isinstance(item, bool) and (kind is float or isinstance(item, int))
            if not ok or item < minimum:
                self.errors.append(f"{name}.{key}: {item!r} is not accepted; accepted: a{'n integer' if kind is int else ' number'} >= {minimum}")
                continue
            out[key] = kind(item)
        return out


def parse_spec(raw: Any, source: str = "<spec>") -> SweepSpec:
    """Validate a spec mapping (as loaded from YAML) into a :class:`SweepSpec`."""
    v = _Validator(source)
    if not isinstance(raw, dict):
        raise SpecError(source, [f"the spec must be a mapping of {', '.join(_TOP_KEYS)}; got {type(raw).__name__}"])
    for key in raw:
        if key not in _TOP_KEYS:
            v.errors.append(_unknown("(top level)", key, _TOP_KEYS, "key"))
    for key in _REQUIRED:
        if key not in raw:
            v.errors.append(f"{key}: required key is missing")
    name = raw.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name or ""):
        v.errors.append(f"name: {name!r} is not accepted; accepted: letters, digits, '.', '-' and '_'")
    backbones = v.names(raw, "backbones", BACKBONES)
    tasks = v.names(raw, "tasks", TASKS)
    splits = v.names(raw, "splits", SPLITS)
    methods = v.methods(raw.get("methods"))
    label_settings = v.label_settings(raw.get("label_settings"))
    seeds = v.seeds(raw.get("seeds"))
    subset_seed = raw.get("subset_seed", 42)
    if not (subset_seed == "run" or (isinstance(subset_seed, int) and not isinstance(subset_seed, bool) and subset_seed >= 0)):
        v.errors.append(f"subset_seed: {subset_seed!r} is not accepted; accepted: an integer >= 0 or 'run'")
    training, model = v.section(raw, "training"), v.section(raw, "model")
    resources, execution = v.section(raw, "resources"), v.section(raw, "execution")
    for backbone in backbones or ():
        entry = BACKBONES.get(backbone)
        if not entry.is_pretrained:
            try:
                scratch_shape(entry.gnn_type, model.get("num_layers"), model.get("emb_dim"), 0.0)
            except ValueError as exc:
                v.errors.append(f"model: {exc} (backbone {backbone})")
    if v.errors:
        raise SpecError(source, v.errors)
    return SweepSpec(
        name=name, backbones=backbones, methods=methods, tasks=tasks, splits=splits,
        label_settings=label_settings, seeds=seeds, subset_seed=subset_seed, recipe=TrainingRecipe(**training),
        num_layers=model.get("num_layers"), emb_dim=model.get("emb_dim"),
        resources=Resources(**resources), execution=_execution(execution), source=source,
        searches=tuple(v.searches))


def _execution(values: dict[str, Any]) -> Execution:
    """The validated ``execution`` mapping: its engine keys become one :class:`EngineOptions`."""
    engine_keys = EngineOptions.schema()
    engine = EngineOptions(**{k: v for k, v in values.items() if k in engine_keys})
    return Execution(**{k: v for k, v in values.items() if k not in engine_keys}, engine=engine)


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a YAML spec file."""
    path = Path(path)
    if not path.is_file():
        bundled = Path(__file__).parent / path.name
        if not path.parent.parts and bundled.is_file():
            path = bundled
        else:
            raise FileNotFoundError(f"sweep spec {str(path)!r} not found (bundled specs: "
                                    f"{', '.join(p.name for p in sorted(Path(__file__).parent.glob('*.yaml')))})")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"sweep spec {str(path)!r} is not a UTF-8 text file ({exc.reason} at offset {exc.start}); "
                         "accepted: a YAML file") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(str(path), [f"not valid YAML: {exc}"]) from exc
    return parse_spec(raw, str(path))
