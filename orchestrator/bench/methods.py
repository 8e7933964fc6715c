"""``roft bench methods``: every method's trials per hour, each trial alone and in fused groups.

One cell (default: Hu et al.'s supervised GCN, BBBP, scaffold split, 100 labels, 5 seeds), every
method with its default hyper-parameters (one trial per seed, so every method's fused groups have
as many members as Full FT's; ``--grid paper``: its grid in ``search_spaces/paper.yaml``, e.g.
120 RoFt-Mol fits), trained in this process by the worker's own trial path:
:func:`trainables.worker.trial.execute_trial` for a trial alone, and for the fused engine the units
a sweep forms (:func:`orchestrator.sweep.fusion.plan_units`: fused groups of at most ``fuse_max``
trials through :func:`trainables.worker.trial.execute_fused_group`, the rest alone). Each timing
covers a trial's whole path: its preparation (data and checkpoint cached in the process, as in a
reused Ray actor), training, evaluation and its row, epochs and checkpoint written to a
temporary store. Ray's scheduling is not included (``roft bench orchestrator`` measures it).

The recipe is shortened to ``epochs`` (the paper's is 100); a method's own stage lengths scale
with it as the paper's grid has them (LP-FT ``epochs + epochs``; RoFt-Mol ``2 x epochs`` alpha
epochs). WiSE-FT and RoFt-Mol start from their seed's Full-FT trial, trained first (untimed).
In each of ``repeats`` (outermost, so that a stretch of heavy load slows one repeat of every
method rather than every repeat of one), per method: ``unfused_trials`` of its trials (spread over
its grid) alone, then all its trials on the fused engine, each in a fresh store; the fastest
repeat is the figure and the repeats give its range. A method whose trials form no fused group "does not fuse".

Printed per method: trials per hour alone and fused (RoFt-Mol: fits; WiSE-FT: points), their
ratio and seconds per trial-epoch; ``--out FILE`` writes the rates file
(:mod:`orchestrator.sweep.rates`) that the GPU-hour estimate reads. Absolute figures depend on
the machine and its load; ratios measured in the same run are the result.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from orchestrator.bench.timing import Spread
from orchestrator.store.results import ResultStore
from orchestrator.sweep.estimate import task_molecules
from orchestrator.sweep.fusion import Unit, plan_units
from orchestrator.sweep.plan import expand
from orchestrator.sweep.rates import EngineRate, MethodRate, MethodRates
from search_spaces import load_spec, parse_spec
from trainables.core.config import Runtime, TrialSpec
from trainables.core.data_root import DataRoot
from trainables.core.engine import EngineOptions
from trainables.methods import METHODS, make_method
from trainables.methods.dependencies import parent_spec
from trainables.worker.trial import execute_fused_group, execute_trial, resolve_device

PAPER_SPEC = "paper.yaml"
GRIDS = ("default", "paper")


@dataclass(frozen=True)
class MethodsBench:
    """What ``roft bench methods`` measures (the CLI's options)."""

    backbone: str = "hu-gcn-supervised"
    task: str = "bbbp"
    split: str = "scaffold"
    label_setting: str = "fewshot:100"
    seeds: int = 5
    epochs: int = 10
    methods: tuple[str, ...] = ()  # empty: every method of the paper's grid
    grid: str = "default"  # default: each method's default hyper-parameters; paper: its paper grid
    unfused_trials: int = 5  # trials of each method timed alone per repeat
    repeats: int = 1
    fuse_max: int = 64
    threads: int = 1
    device: str = "auto"
    engine: str = "plain"  # engine options as words (EngineOptions.from_words), e.g. "lazy-test"

    def __post_init__(self):
        EngineOptions.from_words(self.engine)  # refuses unknown words, naming them and the accepted ones
        for name in ("seeds", "epochs", "unfused_trials", "repeats", "fuse_max", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"--{name.replace('_', '-')} {value!r} is not accepted; accepted: an integer >= 1")
        if self.grid not in GRIDS:
            raise ValueError(f"--grid {self.grid!r} is not accepted; accepted: {', '.join(GRIDS)}")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"--methods {', '.join(unknown)} not accepted; accepted: {', '.join(METHODS.names())}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"--device {self.device!r} is not accepted; accepted: auto, cpu, cuda")


def scaled_params(method: str, params: dict, epochs: int, paper_epochs: int) -> dict:
    """``params`` with every stage length (an integer hyper-parameter named ``*epochs``) scaled from the
    paper's ``paper_epochs``-epoch recipe to ``epochs`` (at least 1)."""
    out = dict(params)
    for name, hp in METHODS.get(method).hyperparameters.items():
        if name.endswith("epochs") and hp.type is int and isinstance(out.get(name), int):
            out[name] = max(1, round(out[name] * epochs / paper_epochs))
    return out


def method_grid(options: MethodsBench) -> dict[str, list[dict]]:
    """Each method's hyper-parameter points, in the paper grid's order, stage lengths scaled to ``epochs``."""
    paper = load_spec(PAPER_SPEC)
    grid: dict[str, list[dict]] = {}
    for method, params in paper.methods:
        if options.methods and method not in options.methods:
            continue
        points = grid.setdefault(method, [])
        if options.grid == "paper" or not points:
            base = params if options.grid == "paper" else METHODS.get(method).validate_params({})
            point = scaled_params(method, base, options.epochs, paper.recipe.epochs)
            if point not in points:
                points.append(point)
    for method in options.methods:  # methods outside the paper's grid: their defaults
        grid.setdefault(
            method,
            [scaled_params(method, METHODS.get(method).validate_params({}), options.epochs, paper.recipe.epochs)],
        )
    return grid


def unit_of(method: str, params: dict, epochs: int) -> str:
    """What one trial of the method is: a ``point`` (no training), a ``fit`` (trains from a parent), a ``trial``."""
    instance = make_method(method, params)
    if not sum(stage.epochs for stage in instance.stages(epochs)):
        return "point"
    return "fit" if instance.requires_parent else "trial"


def fit_epochs(method: str, params: dict, epochs: int) -> int:
    return sum(stage.epochs for stage in make_method(method, params).stages(epochs))


def plan_trials(options: MethodsBench, data_root: DataRoot) -> tuple[dict[str, list[TrialSpec]], list[TrialSpec]]:
    """(each method's trials in the cell, the Full-FT parents the dependants need), as a sweep plans them."""
    grid = method_grid(options)
    raw = {
        "name": "bench-methods",
        "backbones": [options.backbone],
        "methods": {method: points for method, points in grid.items()},
        "tasks": [options.task],
        "splits": [options.split],
        "label_settings": [options.label_setting],
        "seeds": {"range": [0, options.seeds]},
        "training": {"epochs": options.epochs},
        "execution": {"fuse_max": options.fuse_max},
    }
    spec = parse_spec(raw, "roft bench methods")
    trials, missing = expand(spec, data_root)
    if missing:
        raise FileNotFoundError(
            "roft bench methods: files are missing: " + "; ".join(f"{what}: {why}" for what, why in missing.items())
        )
    by_method: dict[str, list[TrialSpec]] = {method: [] for method in grid}
    for trial in trials:
        by_method[trial.method].append(trial)
    parents: dict[str, TrialSpec] = {}
    for trial in trials:
        parent = parent_spec(trial)
        if parent is not None:
            parents.setdefault(parent.key(), parent)
    return by_method, list(parents.values())


def spread_sample(trials: Sequence[TrialSpec], n: int) -> list[TrialSpec]:
    """``n`` of ``trials`` spread evenly over the list (hence over the method's grid), all when fewer."""
    if n >= len(trials):
        return list(trials)
    return [trials[round(i * (len(trials) - 1) / max(1, n - 1))] for i in range(n)] if n > 1 else [trials[0]]


def run_units(units: Sequence[Unit], runtime: Runtime, store: ResultStore) -> list[dict]:
    """Train ``units`` as a sweep's workers do; returns the rows."""
    rows = []
    for unit in units:
        if unit.fused:
            rows += execute_fused_group(list(unit.specs), runtime, store, unit=unit.key)
        else:
            rows.append(execute_trial(unit.specs[0], runtime, store))
    return rows


@dataclass
class _Workspace:
    """Fresh stores under one temporary folder; dependants' stores start with the parents' rows."""

    root: Path
    options: MethodsBench
    data_root: DataRoot
    parents: Path | None = None
    made: int = 0

    def runtime(self, store: Path) -> Runtime:
        return Runtime(
            store=str(store),
            sweep="bench-methods",
            data_root=self.data_root,
            threads=self.options.threads,
            device=self.options.device,
            engine=EngineOptions.from_words(self.options.engine),
        )

    def fresh(self, with_parents: bool = False) -> tuple[Runtime, ResultStore]:
        self.made += 1
        path = self.root / f"store-{self.made}"
        if with_parents and self.parents is not None:
            shutil.copytree(self.parents, path)
        else:
            path.mkdir()
        return self.runtime(path), ResultStore(path)


@dataclass
class _Measured:
    unfused: list[float] = field(default_factory=list)  # seconds per trial, one per repeat
    fused: list[float] = field(default_factory=list)
    groups: tuple[int, ...] = ()
    timed_alone: int = 0


def _timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def bench_methods(
    options: MethodsBench, data_root: DataRoot = DataRoot(), out: str | Path | None = None, echo=print
) -> MethodRates:
    """Measure every method of ``options`` (see the module docstring), print the table, write ``out``."""
    torch.set_num_threads(options.threads)
    device = resolve_device(options.device)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    by_method, parents = plan_trials(options, data_root)
    grid = method_grid(options)
    measured: dict[str, _Measured] = {}
    molecules: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="roft-bench-methods-") as tmp:
        space = _Workspace(Path(tmp), options, data_root)
        # Untimed: the parents (the fused path's warm-up too), then one trial alone (data, checkpoint, allocator).
        if parents:
            runtime, store = space.fresh()
            run_units(plan_units(parents, True, options.fuse_max, data_root), runtime, store)
            space.parents = Path(runtime.store)
        runtime, store = space.fresh()
        alone = [t for ts in by_method.values() for t in ts if parent_spec(t) is None]
        row = execute_trial((alone or parents)[0], runtime, store)
        molecules = {"train": row["n_train"], "valid": row["n_val"], "test": row["n_test"]}
        echo(header(options, device, load, molecules, grid), flush=True)
        plans = {}
        for method, trials in by_method.items():
            units = plan_units(trials, True, options.fuse_max, data_root)
            sample = spread_sample(trials, options.unfused_trials)
            plans[method] = (units, sample, METHODS.get(method).requires_parent is not None)
            measured[method] = _Measured(groups=tuple(len(u.specs) for u in units if u.fused), timed_alone=len(sample))
        # Repeats outermost: a stretch of heavy load on the machine slows every method's figure of one repeat,
        # not one method's every figure; each method's two engines run back to back.
        for repeat in range(options.repeats):
            last = repeat == options.repeats - 1
            for method, (units, sample, dependant) in plans.items():
                result = measured[method]
                runtime, store = space.fresh(dependant)
                result.unfused.append(_timed(lambda: [execute_trial(t, runtime, store) for t in sample]) / len(sample))
                if any(unit.fused for unit in units):
                    runtime, store = space.fresh(dependant)
                    result.fused.append(_timed(lambda: run_units(units, runtime, store)) / len(by_method[method]))
                if last:
                    echo(
                        table_row(method_rate(method, grid[method], len(by_method[method]), options.epochs, result)),
                        flush=True,
                    )
            if not last:
                echo(f"repeat {repeat + 1} of {options.repeats} done", flush=True)
    rates = MethodRates(
        measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        device=device_words(device, options.threads, load)
        + ("" if options.engine == "plain" else f", engine options {options.engine}"),
        epochs=options.epochs,
        backbone=options.backbone,
        task=options.task,
        split=options.split,
        label_setting=options.label_setting,
        seeds=options.seeds,
        task_molecules=task_molecules(options.task, data_root) or 0,
        molecules=molecules,
        methods={m: method_rate(m, grid[m], len(by_method[m]), options.epochs, measured[m]) for m in by_method},
        fuse_max=options.fuse_max,
    )
    if out is not None:
        echo(f"rates written to {rates.write(out)}")
    return rates


def method_rate(method: str, configs: list[dict], trials: int, epochs: int, result: _Measured) -> MethodRate:
    """A method's rates from its timings (seconds per trial, one per repeat)."""

    def engine(samples: list[float], timed: int, groups: tuple[int, ...] = ()) -> EngineRate | None:
        if not samples:
            return None
        spread = Spread.of(samples)
        return EngineRate(spread.value, spread.low, spread.high, timed, groups)

    mean_epochs = sum(fit_epochs(method, c, epochs) for c in configs) / len(configs)
    return MethodRate(
        method,
        unit_of(method, configs[0], epochs),
        tuple(configs),
        trials,
        mean_epochs,
        engine(result.unfused, result.timed_alone),
        engine(result.fused, trials, result.groups),
    )


def device_words(device: torch.device, threads: int, load: float) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            model = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "")
    except OSError:
        pass
    return (
        f"cpu ({model + ', ' if model else ''}{threads} torch thread{'s' if threads > 1 else ''}, "
        f"{os.cpu_count()} CPUs, load average {load:.1f} at the start)"
    )


def header(
    options: MethodsBench, device: torch.device, load: float, molecules: dict[str, int], grid: dict[str, list[dict]]
) -> str:
    stages = []
    if "lp-ft" in grid:
        lp_ft = make_method("lp-ft", grid["lp-ft"][0]).stages(options.epochs)
        stages.append("LP-FT " + "+".join(str(s.epochs) for s in lp_ft))
    if "roft-mol" in grid:
        stages.append(f"RoFt-Mol {fit_epochs('roft-mol', grid['roft-mol'][0], options.epochs)} alpha epochs")
    return (
        f"roft bench methods: {options.backbone}, {options.task}, {options.split}, {options.label_setting} "
        f"({molecules['train']} train, {molecules['valid']} valid, {molecules['test']} test molecules), seeds "
        f"0-{options.seeds - 1}, {options.grid} grid; {options.epochs} epochs"
        + (f" ({'; '.join(stages)})" if stages else "")
        + f": rates of these shortened trials, not of the paper's 100-epoch ones\n"
        f"{device_words(device, options.threads, load)}; fused groups of at most {options.fuse_max}"
        f"{'' if options.engine == 'plain' else ', engine options ' + options.engine}; each trial's "
        f"whole path in this process (no Ray); {options.unfused_trials} trials timed alone per method; "
        f"{'fastest of ' + str(options.repeats) + ' repeats (range)' if options.repeats > 1 else 'one repeat'}\n"
        f"{'method':<12} {'unit':<5} {'trials':>6} {'alone /h':>20} {'fused /h':>20} {'groups':<10} "
        f"{'fused/alone':>11}  {'s per trial-epoch alone / fused':<31}"
    )


def table_row(rate: MethodRate) -> str:
    """One method's line: per hour alone and fused (with the repeats' range), groups, ratio, s per trial-epoch."""

    def per_hour(engine: EngineRate | None) -> str:
        if engine is None:
            return "-"
        spread = Spread(engine.seconds, engine.low, engine.high).inverse(3600)
        return spread.words(",.0f")

    def per_epoch(name: str) -> str:
        value = rate.seconds_per_trial_epoch(name)
        return "-" if value is None else f"{value:.3f}"

    fused = per_hour(rate.fused) if rate.fused is not None else "does not fuse"
    groups = _groups(rate.fused.groups) if rate.fused is not None else ""
    ratio = f"{rate.fused.per_hour / rate.unfused.per_hour:.2f}x" if rate.fused and rate.unfused else "-"
    return (
        f"{rate.method:<12} {rate.unit:<5} {rate.trials:>6} {per_hour(rate.unfused):>20} {fused:>20} "
        f"{groups:<10} {ratio:>11}  {per_epoch('unfused')} / {per_epoch('fused')}"
    )


def _groups(sizes: Sequence[int]) -> str:
    counts: dict[int, int] = {}
    for size in sizes:
        counts[size] = counts.get(size, 0) + 1
    return ", ".join(f"{n}x{size}" for size, n in sorted(counts.items(), reverse=True))
