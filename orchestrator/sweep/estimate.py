"""GPU-hours of a sweep plan: an estimate scaled from Full-FT throughput measured on one H100 and
each method's cost relative to Full FT's, measured by ``roft bench methods``.

The measured figures (``roft bench throughput`` on one H100; docs/engine.md, "Measured speed") are 100-epoch
trials of a 5x300 GIN, batch 32, on BBBP-sized molecules (2,039, split 80/10/10, validation
and test scored every epoch), per GPU-hour:

* **fused** trials: 2,064 (groups of K = 128, ``execution.tf32`` and ``execution.compile``,
  per-trial dropout streams). The same run measured 1,693 at K = 64 (the default
  ``execution.fuse_max``), 2,115 at K = 128 and 2,302 at K = 256 with
  ``execution.dropout_streams: group``; an earlier engine without TF32 and compile measured
  1,156 at K = 128. A later engine measured 2,323 at K = 256 (per-trial streams), and
  2,582-2,641 at K = 256 and 2,807 at K = 384 with group streams and ``execution.aggregation:
  csr``. The default stays the K = 128 per-trial figure, the closest to a spec's defaults
  (``fuse_max`` 64, per-trial streams). Pass ``--trials-per-gpu-hour`` to plan with another figure.
* **unfused** trials: 46 (the reference training loop, one process on the GPU; roft's own
  unfused loop measured 33 FP32 and 38 TF32). Packing several unfused trials on one GPU
  (a fractional ``resources.gpu``) raises the rate per GPU: 16 packed reference processes
  trained about 250 trials per hour, so for such specs this part is an upper bound.

Each trial counts as a fraction of the measured one, by the molecule passes it makes: for every
stage of its method, ``epochs x (molecules fitted + EVAL_COST x molecules scored)``, where the
task's molecules split 80/10/10, the label setting keeps its share of the training part (RoFt-Mol
fits its alphas on validation for its own epochs), every epoch scores validation and test, and a
scored molecule costs ``EVAL_COST`` of a fitted one (a forward pass against forward + backward).
A stage of 0 epochs (a WiSE-FT point) is one scoring pass of validation and test; LP-FT's passes
are its LP stage's and its FT stage's; an Optuna alpha search scores validation once per point.

A method's pass is not Full FT's: LP and Surgical FT back-propagate into part of the model,
RoFt-Mol recomputes its interpolated weights every step, a WiSE-FT point loads and interpolates
its parent's checkpoint before its one pass. So each trial's passes are multiplied by its method's
*cost per pass relative to Full FT's* on the engine it runs on (:func:`pass_factors`):

    factor(m, engine) = (s(m, engine) / P(m)) / (s(full-ft, engine) / P(full-ft))

with ``s`` the wall seconds per trial that ``roft bench methods`` measured on one cell (the rates
file, :mod:`orchestrator.sweep.rates`; fused: in the groups a sweep forms, unfused: each trial
alone) and ``P`` the passes the model above gives that cell's trials. A trial of ``m`` then costs
``factor(m, engine) x P(trial) / P(measured H100 trial)`` of a fused or an unfused H100 trial. Where
the rates file has no figure (a method it did not measure, or one that did not fuse when it was
measured but fuses now), the factor is *assumed* to be 1 (Full FT's cost per pass); the dry run
lists which factors are measured, on which device, and which are assumed.

Molecules are the rows of each task's file, so tasks whose file is missing are not counted.
The figure is an estimate: it leaves out Ray's start, the driver's planning and featurization,
and the spec's searched methods (their points are sampled while the sweep runs).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

from orchestrator.sweep.rates import ENGINES, MethodRates
from trainables.core.data_root import DataRoot
from trainables.data import sources
from trainables.data.splits import FRACTIONS, parse_label_setting
from trainables.data.tasks import TASKS
from trainables.methods import METHODS

# Measured on one H100 (``roft bench throughput``): 100-epoch BBBP-sized trials per GPU-hour.
FUSED_TRIALS_PER_GPU_HOUR = 2064.0
UNFUSED_TRIALS_PER_GPU_HOUR = 46.0
REFERENCE_MOLECULES = 2039  # BBBP
REFERENCE_EPOCHS = 100
EVAL_COST = 1.0 / 3.0  # a scored molecule (forward) against a fitted one (forward + backward)


@dataclass(frozen=True)
class TrialRates:
    """Measured 100-epoch BBBP-sized trials per GPU-hour, fused and unfused."""

    fused: float = FUSED_TRIALS_PER_GPU_HOUR
    unfused: float = UNFUSED_TRIALS_PER_GPU_HOUR

    def __post_init__(self):
        for name in ("fused", "unfused"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{name} trials per GPU-hour = {value!r} is not accepted; accepted: a number > 0")


def split_sizes(molecules: int, label_setting: str) -> tuple[float, float, float]:
    """(training molecules kept by the label setting, validation, test) for a task of ``molecules``."""
    train, valid, test = (fraction * molecules for fraction in FRACTIONS)
    setting = parse_label_setting(label_setting)
    if setting.kind == "fewshot":
        train = min(train, float(setting.amount))
    elif setting.kind == "ratio":
        train = max(1.0, round(setting.amount * train))
    return train, valid, test


def molecule_passes(method: str, params: dict, epochs: int, molecules: int, label_setting: str) -> float:
    """Fitted-molecule equivalents one trial processes (see the module docstring)."""
    train, valid, test = split_sizes(molecules, label_setting)
    instance = METHODS.get(method)(**params)
    if getattr(instance, "searching", False):  # an Optuna alpha search: one scoring of validation per point
        points = instance.params["n_trials"]
        return points * EVAL_COST * (valid + (test if instance.params["test_per_point"] else 0.0))
    fitted = {"train": train, "valid": valid, "valid_fit": valid / 2}
    total = 0.0
    for stage in instance.stages(epochs):
        scored = EVAL_COST * (valid / (2 if stage.select_on == "valid_select" else 1) + test)
        total += stage.epochs * (fitted[stage.fit_on] + scored) if stage.epochs > 0 else scored
    return total


def reference_passes() -> float:
    """Molecule passes of the measured trial: 100 epochs of Full FT on BBBP, all of its training part."""
    return molecule_passes("full-ft", {}, REFERENCE_EPOCHS, REFERENCE_MOLECULES, "full")


@lru_cache(maxsize=None)
def task_molecules(task: str, data_root: DataRoot) -> int | None:
    """Rows of the task's file (``None`` when the file is not available locally)."""
    import pandas as pd

    spec = TASKS.get(task)
    try:
        path = sources.resolve(spec.file, data_root, download=False)
    except sources.DataUnavailableError:
        return None
    return len(pd.read_csv(path, usecols=[spec.smiles_column]))


def pass_factors(rates: MethodRates) -> dict[tuple[str, str], float]:
    """``(method, engine) -> cost per molecule pass relative to Full FT's on that engine`` (see the module
    docstring), for each method and engine the rates file has a figure for (and Full FT has one too)."""

    def passes(method: str) -> float:
        configs = rates.methods[method].configs
        return sum(
            molecule_passes(method, dict(c), rates.epochs, rates.task_molecules, rates.label_setting) for c in configs
        ) / len(configs)

    base = rates.methods.get("full-ft")
    factors = {}
    for engine in ENGINES:
        reference = None if base is None else base.engine(engine)
        if reference is None:
            continue
        per_pass = reference.seconds / passes("full-ft")
        for method, rate in rates.methods.items():
            measured = rate.engine(engine)
            if measured is not None:
                factors[(method, engine)] = measured.seconds / passes(method) / per_pass
    return factors


@dataclass
class MethodHours:
    """One method's share of the estimate, by engine."""

    trials: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ENGINES, 0))
    hours: dict[str, float] = field(default_factory=lambda: dict.fromkeys(ENGINES, 0.0))


@dataclass
class GpuHours:
    """The estimate, by method and engine."""

    throughput: TrialRates
    rates: MethodRates | None = None  # None: every method's cost per pass assumed to be Full FT's
    methods: dict[str, MethodHours] = field(default_factory=dict)
    uncounted: dict[str, int] = field(default_factory=dict)  # task -> trials whose file is missing
    gpu_per_trial: float = 1.0  # the spec's resources.gpu
    factors: dict[tuple[str, str], float] = field(init=False)  # the measured (method, engine) factors

    def __post_init__(self):
        self.factors = {} if self.rates is None else pass_factors(self.rates)

    def add(self, method: str, engine: str, trials: int, share: float) -> None:
        """``trials`` of ``method`` on ``engine``, each ``share`` of the measured H100 trial in passes."""
        rate = self.throughput.fused if engine == "fused" else self.throughput.unfused
        row = self.methods.setdefault(method, MethodHours())
        row.trials[engine] += trials
        row.hours[engine] += trials * share * self.factor(method, engine) / rate

    def factor(self, method: str, engine: str) -> float:
        """The method's measured cost per pass relative to Full FT's on ``engine``; 1 where assumed."""
        return self.factors.get((method, engine), 1.0) if method != "full-ft" else 1.0

    def measured(self, method: str, engine: str) -> bool:
        return method == "full-ft" or (method, engine) in self.factors

    def _total(self, what: str, engine: str) -> float:
        return sum(getattr(row, what)[engine] for row in self.methods.values())

    @property
    def fused_trials(self) -> int:
        return int(self._total("trials", "fused"))

    @property
    def unfused_trials(self) -> int:
        return int(self._total("trials", "unfused"))

    @property
    def fused_hours(self) -> float:
        return self._total("hours", "fused")

    @property
    def unfused_hours(self) -> float:
        return self._total("hours", "unfused")

    @property
    def hours(self) -> float:
        return self.fused_hours + self.unfused_hours

    def sources(self) -> list[str]:
        """Which figures are measured, where and when, and which are assumed."""
        anchors = (
            f"{self.throughput.fused:,.0f} fused / {self.throughput.unfused:,.0f} unfused 100-epoch "
            "BBBP-sized Full-FT trials per GPU-hour"
        )
        measured_anchors = (self.throughput.fused, self.throughput.unfused) == (
            FUSED_TRIALS_PER_GPU_HOUR,
            UNFUSED_TRIALS_PER_GPU_HOUR,
        )
        lines = [
            f"Full FT: {anchors}, "
            + (
                "measured on one H100 (roft bench throughput)"
                if measured_anchors
                else "as given (--trials-per-gpu-hour / --unfused-trials-per-gpu-hour)"
            )
        ]

        def listed(measured: bool) -> str:
            return "; ".join(
                f"{engine}: " + ", ".join(names)
                for engine in ("fused", "unfused")
                if (
                    names := [
                        m
                        for m, row in self.methods.items()
                        if m != "full-ft" and row.trials[engine] and self.measured(m, engine) == measured
                    ]
                )
            )

        measured, assumed = listed(True), listed(False)
        if self.rates is None:
            lines.append("other methods: cost per pass assumed equal to Full FT's (--method-rates none)")
            return lines
        rates = self.rates
        if measured:
            lines.append(
                f"cost per pass relative to Full FT's, measured on {rates.device} at {rates.measured_at} "
                f"(roft bench methods: {rates.backbone}, {rates.task}, {rates.split}, {rates.label_setting}, "
                f"{rates.seeds} seeds, {rates.epochs} epochs; {rates.source or 'given'}): {measured}"
            )
        if assumed:
            lines.append(f"cost per pass assumed equal to Full FT's (no measurement in the rates file): {assumed}")
        return lines

    def summary(self, gpus_per_node: int = 8) -> str:
        packed = (
            f" (one at a time per GPU: an upper bound, as resources.gpu={self.gpu_per_trial:g} packs several)"
            if 0 < self.gpu_per_trial < 1
            and self.unfused_trials
            and self.throughput.unfused == UNFUSED_TRIALS_PER_GPU_HOUR
            else ""
        )
        lines = [
            "  GPU-hours, an estimate: each trial's molecule passes (its stages' epochs x molecules fitted and "
            "scored) relative to a 100-epoch Full-FT trial of BBBP, times its method's cost per pass relative "
            "to Full FT's on its engine (orchestrator/sweep/estimate.py); rates:"
        ]
        lines += [f"    {line}" for line in self.sources()]
        lines.append(
            f"    {'method':<12} {'fused trials':>12} {'GPU-hours':>9} {'x pass':>6}   "
            f"{'unfused trials':>14} {'GPU-hours':>9} {'x pass':>6}"
        )
        for method, row in self.methods.items():
            cells = []
            for engine in ("fused", "unfused"):
                n = row.trials[engine]
                factor = (
                    f"{self.factor(method, engine):.2f}" + ("" if self.measured(method, engine) else "*") if n else ""
                )
                width = 12 if engine == "fused" else 14
                cells.append(f"{n:>{width},} {_hours(row.hours[engine]) if n else '-':>9} {factor:>6}")
            lines.append(f"    {method:<12} " + "   ".join(cells))
        if any(row.trials[e] and not self.measured(m, e) for m, row in self.methods.items() for e in ENGINES):
            lines.append("    (* assumed: Full FT's cost per pass)")
        lines += [
            f"    {self.fused_trials:,} fused trials: {_hours(self.fused_hours)} GPU-hours; "
            f"{self.unfused_trials:,} unfused trials: {_hours(self.unfused_hours)} GPU-hours{packed}",
            f"    total about {_hours(self.hours)} GPU-hours: {_hours(self.hours / gpus_per_node)} hours on one "
            f"{gpus_per_node}-GPU node",
        ]
        if self.uncounted:
            lines.append(
                "    not counted (task file missing): "
                + ", ".join(f"{task}={n}" for task, n in sorted(self.uncounted.items()))
            )
        return "\n".join(lines)


def _hours(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.2g}"


def _spec_order(spec, method: str) -> int:
    names = list(dict.fromkeys(name for name, _ in spec.methods))
    return names.index(method) if method in names else -1  # parents the planner added come first


def estimate_gpu_hours(plan, throughput: TrialRates | None = None, rates: MethodRates | None = None) -> GpuHours:
    """GPU-hours of ``plan``'s pending trials (:class:`orchestrator.sweep.plan.SweepPlan`), fused groups as
    the planner would form them, each method's cost per pass from ``rates`` (``None``: Full FT's)."""
    from orchestrator.sweep.fusion import plan_units

    throughput = throughput or TrialRates()
    execution = plan.spec.execution
    counts: Counter = Counter()  # (fused, method, params JSON, epochs, task, label setting) -> trials
    for wave in plan.waves():
        for unit in plan_units(wave, execution.fuse, execution.fuse_max, plan.data_root):
            for trial in unit.specs:
                counts[
                    (
                        unit.fused,
                        trial.method,
                        json.dumps(trial.method_params, sort_keys=True),
                        trial.recipe.epochs,
                        trial.task,
                        trial.label_setting,
                    )
                ] += 1
    estimate = GpuHours(throughput, rates, gpu_per_trial=plan.spec.resources.gpu)
    for method in dict.fromkeys(m for _, m, *_ in sorted(counts, key=lambda k: _spec_order(plan.spec, k[1]))):
        estimate.methods[method] = MethodHours()  # rows in the spec's order of methods
    reference = reference_passes()
    for (fused, method, params, epochs, task, label_setting), n in counts.items():
        molecules = task_molecules(task, plan.data_root)
        if molecules is None:
            estimate.uncounted[task] = estimate.uncounted.get(task, 0) + n
            continue
        share = molecule_passes(method, json.loads(params), epochs, molecules, label_setting) / reference
        estimate.add(method, "fused" if fused else "unfused", n, share)
    return estimate
