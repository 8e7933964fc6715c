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
                dropout_streams: per-trial, precision: fp32, aggregation: scatter,
                tracker: mlflow=http://127.0.0.1:5000}
                                        # artifacts: required (keep the checkpoints that WiSE-FT /
                                        # RoFt-Mol start from) or all; fuse: train compatible
                                        # trials as fused groups of up to fuse_max (one Ray trial
                                        # each, with the resources above), false: one by one;
                                        # tf32, compile, dropout_streams (per-trial | group),
                                        # precision (fp32 | bf16), aggregation (scatter | csr):
                                        # GPU speed options, see trainables.training.fused.engine.fit_fused;
                                        # tracker (optional): each trial also an MLflow run
                                        # (mlflow, or mlflow=TRACKING_URI; roft sweep --tracker)

Methods that start from another trial's checkpoint (``wise-ft``, ``roft-mol``: ``full-ft``)
make the planner add the ``full-ft`` trials they need when the spec does not list them.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import re
import reprlib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml

from trainables.core.config import (
    ARTIFACT_POLICIES,
    MAX_SEED,
    MAX_SEEDS,
    TrainingRecipe,
    accepted_range,
    bounded,
    in_range,
)
from trainables.core.engine import EngineOptions
from trainables.data.splits import SPLITS, parse_label_setting
from trainables.data.tasks import TASKS
from trainables.methods import METHODS
from trainables.models.backbones import BACKBONES
from trainables.models.shapes import scratch_shape

MAX_METHOD_POINTS = 100_000  # points of one method's hyper-parameter grid
MAX_YAML_NODES = 1_000_000  # YAML nodes of a spec with its aliases expanded (a "billion laughs" is refused)
_SHOWN_ERRORS, _SHOWN_CHARS = 12, 400  # a spec's error message: at most so many problems, so long each


class SpecError(ValueError):
    """A sweep spec is invalid; ``errors`` lists every problem as ``key.path: message`` (the message
    shows the first few, each cut to a bounded length: a hostile spec cannot flood the terminal)."""

    def __init__(self, source: str, errors: list[str]):
        self.errors = errors
        shown = [e if len(e) <= _SHOWN_CHARS else e[: _SHOWN_CHARS - 3] + "..." for e in errors[:_SHOWN_ERRORS]]
        more = [f"  ... and {len(errors) - _SHOWN_ERRORS} more"] if len(errors) > _SHOWN_ERRORS else []
        super().__init__(f"invalid sweep spec {source}:\n" + "\n".join([*(f"  - {e}" for e in shown), *more]))


_repr = reprlib.Repr()
_repr.maxstring, _repr.maxother, _repr.maxlist, _repr.maxdict, _repr.maxlevel = 80, 80, 8, 8, 3


def _shown(value: object) -> str:
    """``repr(value)``, shortened (long strings, lists and nested mappings elided with ``...``)."""
    return _repr.repr(value)


TRACKER = re.compile(r"mlflow(=\S+)?")  # execution.tracker: mlflow, or mlflow=TRACKING_URI

# The sections of a spec are validated against their dataclasses' fields: the type of each field, its
# range (trainables.core.config.bounded), its ``choices``, or its ``pattern``.


@dataclass(frozen=True)
class Resources:
    cpu: float = bounded(1.0, 0.0, 1024.0)
    gpu: float = bounded(0.0, 0.0, 64.0)


@dataclass(frozen=True)
class Execution:
    chunk_size: int = bounded(256, 1, 1_000_000)
    max_failures: int = bounded(1, 0, 1_000)
    max_concurrent: int = bounded(0, 0, 1_000_000)  # 0: as many as resources allow
    # which trials keep their best checkpoint: required (those others depend on) or all
    artifacts: str = field(default="required", metadata={"choices": ARTIFACT_POLICIES})
    fuse: bool = True  # train compatible trials as fused groups (trainables.training.fused); false: one by one
    fuse_max: int = bounded(64, 1, 10_000)  # most trials in one fused group
    # "mlflow" or "mlflow=TRACKING_URI": each trial also an MLflow run (roft sweep --tracker)
    tracker: str | None = field(default=None, metadata={"pattern": TRACKER})
    # speed options, written flat under `execution:` (tf32, compile, ...; see trainables.core.engine)
    engine: EngineOptions = field(default_factory=EngineOptions)


DISTRIBUTIONS = ("uniform", "log_uniform", "int", "choice")


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
    num_samples: int = bounded(20, 1, 100_000)
    tune_seed: int = bounded(0, 0, MAX_SEED)
    max_concurrent: int = bounded(
        1, 1, 1_024
    )  # 1: points are proposed in order, so a rerun replays the study from the store

    def describe(self) -> str:
        space = ", ".join(f"{name} ~ {kind}{list(args)}" for name, kind, args in self.space)
        return f"{self.method}: optuna over {space}, {self.num_samples} samples (seed {self.tune_seed})"


# The settings of a searched method (num_samples, tune_seed, max_concurrent), and every key of its mapping.
_SEARCH_SETTINGS = [spec for spec in dataclasses.fields(HyperparameterSearch) if "minimum" in spec.metadata]
SEARCH_KEYS = ("tune", *(spec.name for spec in _SEARCH_SETTINGS))


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
    # scratch backbones (the spec's `model:` section); None: the architecture's default (5x300, GPS 16x256)
    num_layers: int | None = bounded(None, 1, 100, section="model")
    emb_dim: int | None = bounded(None, 1, 65_536, section="model")
    resources: Resources = field(default_factory=Resources)
    execution: Execution = field(default_factory=Execution)
    source: str = "<spec>"
    searches: tuple[HyperparameterSearch, ...] = ()  # methods searched by Ray Tune + Optuna


_TOP_KEYS = (
    "name",
    "description",
    "backbones",
    "methods",
    "tasks",
    "splits",
    "label_settings",
    "seeds",
    "subset_seed",
    "reference_exact",
    "training",
    "model",
    "resources",
    "execution",
)
_REQUIRED = ("name", "backbones", "methods", "tasks", "splits", "label_settings", "seeds")


def _rules(cls: type, section: str | None = None) -> dict[str, Any]:
    """Key -> rule of a spec section, from the fields of dataclass ``cls`` (those of ``section`` only, when
    given): ``bool``, a tuple of accepted values, a pattern (``execution.tracker``), or ``(int or float, minimum, maximum)``;
    an :class:`EngineOptions` field contributes every engine option."""
    hints = typing.get_type_hints(cls)
    rules: dict[str, Any] = {}
    for spec in dataclasses.fields(cls):
        if section is not None and spec.metadata.get("section") != section:
            continue
        kind = hints[spec.name]
        if kind is EngineOptions:
            rules.update(EngineOptions.schema())
        elif "pattern" in spec.metadata:
            rules[spec.name] = spec.metadata["pattern"]
        elif "choices" in spec.metadata:
            rules[spec.name] = spec.metadata["choices"]
        elif kind is bool:
            rules[spec.name] = bool
        else:
            number = int if int in (kind, *typing.get_args(kind)) else float
            rules[spec.name] = (number, spec.metadata["minimum"], spec.metadata["maximum"])
    return rules


_SECTIONS: dict[str, dict[str, Any]] = {
    "training": _rules(TrainingRecipe),
    "model": _rules(SweepSpec, section="model"),
    "resources": _rules(Resources),
    "execution": _rules(Execution),
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

    def methods(self, raw: Any, reference_exact: bool = False) -> tuple[tuple[str, dict[str, Any]], ...]:
        """Every method's grid points; with ``reference_exact`` each grid starts from the method's
        ``reference_params`` (the reference code's behaviour), values the grid gives winning."""
        if not isinstance(raw, dict) or not raw:
            self.errors.append(
                f"methods: must be a non-empty mapping of method -> hyper-parameter grid; "
                f"accepted methods: {', '.join(METHODS.names())}"
            )
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
                    self.errors.append(
                        f"{where}: must be a mapping of hyper-parameter -> value(s) (or a list of "
                        f"such mappings), got {_shown(one)}"
                    )
                    continue
                if "tune" in one:
                    search = self.method_search(cls, where, one)
                    if search is not None:
                        self.searches.append(search)
                    continue
                if reference_exact:
                    one = {**cls.reference_params, **one}
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
        for spec in _SEARCH_SETTINGS:
            key, minimum, maximum = spec.name, spec.metadata["minimum"], spec.metadata["maximum"]
            value = grid.get(key, spec.default)
            if not isinstance(value, int) or isinstance(value, bool) or not in_range(value, minimum, maximum):
                self.errors.append(
                    f"{path}.{key}: {_shown(value)} is not accepted; accepted: {accepted_range(int, minimum, maximum)}"
                )
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
                self.errors.append(
                    f"{where}: a searched method takes a distribution, not a list; accepted: "
                    "{uniform: [lo, hi]}, {log_uniform: [lo, hi]}, {int: [lo, hi]}, {choice: [...]} "
                    "or one fixed value"
                )
            else:
                try:
                    fixed[name] = hp.validate(where, value)
                except ValueError as exc:
                    self.errors.append(str(exc))
        if not space and len(self.errors) == before:
            self.errors.append(
                f"{path}: 'tune: optuna' needs at least one hyper-parameter distribution, e.g. "
                "d: {log_uniform: [1.0e-4, 1.0]}"
            )
        if len(self.errors) > before:
            return None
        return HyperparameterSearch(cls.name, tuple(sorted(fixed.items())), tuple(space), **settings)

    def distribution(self, hp, path: str, value: dict) -> tuple[str, tuple] | None:
        if len(value) != 1 or next(iter(value)) not in DISTRIBUTIONS:
            self.errors.append(
                f"{path}: {value!r} is not accepted; accepted: one of "
                + ", ".join(f"{{{d}: [...]}}" for d in DISTRIBUTIONS)
            )
            return None
        kind, args = next(iter(value.items()))
        if not isinstance(args, list) or not args or (kind != "choice" and len(args) != 2):
            self.errors.append(
                f"{path}.{kind}: {args!r} is not accepted; accepted: "
                + ("a non-empty list of values" if kind == "choice" else "[low, high]")
            )
            return None
        wanted = {"uniform": float, "log_uniform": float, "int": int}.get(kind)
        if wanted is not None and hp.type is not wanted:
            self.errors.append(
                f"{path}.{kind}: the hyper-parameter is {hp.type.__name__}-valued; accepted: "
                + (
                    "uniform, log_uniform or choice"
                    if hp.type is float
                    else "int or choice"
                    if hp.type is int
                    else "choice"
                )
            )
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
        size = math.prod(len(values) for values in axes.values())
        if size > MAX_METHOD_POINTS:
            self.errors.append(f"{path}: the grid has {size} points; accepted: at most {MAX_METHOD_POINTS}")
            return []
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
        accepted = (
            f"accepted: a non-empty list of at most {MAX_SEEDS:,} integers from 0 to {MAX_SEED:,}"
            " or {range: [start, stop]}"
        )
        if (
            isinstance(raw, dict)
            and set(raw) == {"range"}
            and isinstance(raw["range"], list)
            and len(raw["range"]) == 2
            and all(
                isinstance(v, int) and not isinstance(v, bool) and in_range(v, 0, MAX_SEED + 1) for v in raw["range"]
            )
            and raw["range"][1] - raw["range"][0] <= MAX_SEEDS
        ):
            raw = list(range(*raw["range"]))
        if (
            not isinstance(raw, list)
            or not raw
            or len(raw) > MAX_SEEDS
            or not all(isinstance(s, int) and not isinstance(s, bool) and in_range(s, 0, MAX_SEED) for s in raw)
        ):
            self.errors.append(f"seeds: {_shown(raw)} is not accepted; {accepted}")
            return ()
        return tuple(dict.fromkeys(raw))

    def section(self, raw: dict, name: str) -> dict[str, Any]:
        value = raw.get(name) or {}
        if not isinstance(value, dict):
            self.errors.append(f"{name}: must be a mapping, got {_shown(value)}")
            return {}
        schema = _SECTIONS[name]
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key not in schema:
                self.errors.append(_unknown(name, key, list(schema), "key"))
                continue
            if isinstance(schema[key], re.Pattern):  # execution.tracker
                if not (isinstance(item, str) and schema[key].fullmatch(item)):
                    self.errors.append(
                        f"{name}.{key}: {item!r} is not accepted; accepted: mlflow, or "
                        "mlflow=TRACKING_URI (e.g. mlflow=http://127.0.0.1:5000)"
                    )
                else:
                    out[key] = item
                continue
            if schema[key] is bool:
                if not isinstance(item, bool):
                    self.errors.append(f"{name}.{key}: {item!r} is not accepted; accepted: true, false")
                else:
                    out[key] = item
                continue
            if isinstance(schema[key], tuple) and all(isinstance(c, str) for c in schema[key]):
                if item not in schema[key]:
                    self.errors.append(
                        f"{name}.{key}: {_shown(item)} is not accepted; accepted: {', '.join(schema[key])}"
                    )
                else:
                    out[key] = item
                continue
            kind, minimum, maximum = schema[key]
            ok = (
                isinstance(item, (int, float))
                and not isinstance(item, bool)
                and (kind is float or isinstance(item, int))
            )
            try:
                number = kind(item) if ok else None
            except OverflowError:  # an integer beyond any float
                number = None
            if number is None or not in_range(number, minimum, maximum):
                self.errors.append(
                    f"{name}.{key}: {_shown(item)} is not accepted; accepted: {accepted_range(kind, minimum, maximum)}"
                )
                continue
            out[key] = number
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
    if not isinstance(name, str) or not re.fullmatch(r"(?!\.+$)[A-Za-z0-9_.-]{1,100}", name or ""):
        v.errors.append(
            f"name: {_shown(name)} is not accepted; accepted: 1 to 100 letters, digits, '.', '-' and "
            "'_', not only dots (the name is part of file names in the store)"
        )
    backbones = v.names(raw, "backbones", BACKBONES)
    tasks = v.names(raw, "tasks", TASKS)
    splits = v.names(raw, "splits", SPLITS)
    reference_exact = raw.get("reference_exact", False)
    if not isinstance(reference_exact, bool):
        v.errors.append(f"reference_exact: {reference_exact!r} is not accepted; accepted: true or false")
        reference_exact = False
    methods = v.methods(raw.get("methods"), reference_exact)
    label_settings = v.label_settings(raw.get("label_settings"))
    seeds = v.seeds(raw.get("seeds"))
    subset_seed = raw.get("subset_seed", 42)
    if not (
        subset_seed == "run"
        or (isinstance(subset_seed, int) and not isinstance(subset_seed, bool) and in_range(subset_seed, 0, MAX_SEED))
    ):
        v.errors.append(
            f"subset_seed: {_shown(subset_seed)} is not accepted; accepted: {accepted_range(int, 0, MAX_SEED)} or 'run'"
        )
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
        name=cast(str, name),
        backbones=backbones,
        methods=methods,
        tasks=tasks,
        splits=splits,
        label_settings=label_settings,
        seeds=seeds,
        subset_seed=subset_seed,
        recipe=TrainingRecipe(**training),
        num_layers=model.get("num_layers"),
        emb_dim=model.get("emb_dim"),
        resources=Resources(**resources),
        execution=_execution(execution),
        source=source,
        searches=tuple(v.searches),
    )


def _execution(values: dict[str, Any]) -> Execution:
    """The validated ``execution`` mapping: its engine keys become one :class:`EngineOptions`."""
    engine_keys = EngineOptions.schema()
    engine = EngineOptions(**{k: v for k, v in values.items() if k in engine_keys})
    return Execution(**{k: v for k, v in values.items() if k not in engine_keys}, engine=engine)


def bundled_spec_names() -> list[str]:
    """The specs shipped with roft, by the names a command accepts (``mini.yaml``, ...)."""
    return [p.name for p in sorted(Path(__file__).parent.glob("*.yaml"))]


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a YAML spec file."""
    path = Path(path)
    if not path.is_file():
        bundled = Path(__file__).parent / path.name
        if not path.parent.parts and bundled.is_file():
            path = bundled
        else:
            raise FileNotFoundError(
                f"sweep spec {str(path)!r} not found (bundled specs: {', '.join(bundled_spec_names())})"
            )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"sweep spec {str(path)!r} is not a UTF-8 text file ({exc.reason} at offset {exc.start}); "
            "accepted: a YAML file"
        ) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if _expanded_nodes(node) > MAX_YAML_NODES:
            raise SpecError(
                str(path),
                [
                    f"its YAML aliases expand to more than {MAX_YAML_NODES} nodes; accepted: "
                    "a spec of at most that size once its aliases are expanded"
                ],
            )
        raw = None if node is None else yaml.SafeLoader("").construct_document(node)
    except yaml.YAMLError as exc:
        raise SpecError(str(path), [f"not valid YAML: {exc}"]) from None
    return parse_spec(raw, str(path))


def _expanded_nodes(root) -> int:
    """How many YAML nodes ``root`` stands for once every alias is expanded (each shared node counted
    once per reference, computed once per node: linear in the document's size, not in the expansion)."""
    sizes: dict[int, int] = {}

    def size(node) -> int:
        if id(node) not in sizes:
            sizes[id(node)] = 1  # a recursive alias counts once (safe_load refuses to build it anyway)
            children = (
                node.value
                if isinstance(node, yaml.SequenceNode)
                else [n for pair in node.value for n in pair]
                if isinstance(node, yaml.MappingNode)
                else []
            )
            sizes[id(node)] = 1 + sum(size(child) for child in children)
        return sizes[id(node)]

    return size(root) if root is not None else 0
