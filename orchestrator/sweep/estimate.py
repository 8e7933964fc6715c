"""GPU-hours of a sweep plan: an estimate scaled from throughput measured on one H100.

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
fits its alphas on validation), every epoch scores validation and test, and a scored molecule
costs ``EVAL_COST`` of a fitted one (a forward pass against forward + backward). A stage of 0
epochs (WiSE-FT) is one scoring pass; an Optuna alpha search scores validation once per point.
Molecules are the rows of each task's file, so tasks whose file is missing are not counted.
The figure is an estimate: it leaves out Ray's start, the driver's planning and featurization,
and the spec's searched methods (their points are sampled while the sweep runs).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

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
        train = min(train, float(setting.value))
    elif setting.kind == "ratio":
        train = max(1.0, round(setting.value * train))
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


@dataclass
class GpuHours:
    """The estimate, split by engine."""

    throughput: TrialRates
    fused_trials: int = 0
    unfused_trials: int = 0
    fused_hours: float = 0.0
    unfused_hours: float = 0.0
    uncounted: dict[str, int] = field(default_factory=dict)  # task -> trials whose file is missing
    gpu_per_trial: float = 1.0  # the spec's resources.gpu

    @property
    def hours(self) -> float:
        return self.fused_hours + self.unfused_hours

    def summary(self, gpus_per_node: int = 8) -> str:
        rates = (f"{self.throughput.fused:,.0f} fused / {self.throughput.unfused:,.0f} unfused 100-epoch "
                 f"BBBP-sized trials per GPU-hour")
        packed = (f" (one at a time per GPU: an upper bound, as resources.gpu={self.gpu_per_trial:g} packs several)"
                  if 0 < self.gpu_per_trial < 1 and self.unfused_trials
                  and self.throughput.unfused == UNFUSED_TRIALS_PER_GPU_HOUR else "")
        lines = [f"  GPU-hours, an estimate from throughput measured on one H100 ({rates}), each trial scaled "
                 "by its epochs and molecules (orchestrator/sweep/estimate.py):",
                 f"    {self.fused_trials:,} fused trials: {_hours(self.fused_hours)} GPU-hours; "
                 f"{self.unfused_trials:,} unfused trials: {_hours(self.unfused_hours)} GPU-hours{packed}",
                 f"    total about {_hours(self.hours)} GPU-hours: {_hours(self.hours / gpus_per_node)} hours on one "
                 f"{gpus_per_node}-GPU node"]
        if self.uncounted:
            lines.append("    not counted (task file missing): "
                         + ", ".join(f"{task}={n}" for task, n in sorted(self.uncounted.items())))
        return "\n".join(lines)


def _hours(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.2g}"


def estimate_gpu_hours(plan, throughput: TrialRates | None = None) -> GpuHours:
    """GPU-hours of ``plan``'s pending trials (:class:`orchestrator.sweep.plan.SweepPlan`), fused groups as
    the planner would form them."""
    from orchestrator.sweep.fusion import plan_units

    throughput = throughput or TrialRates()
    execution = plan.spec.execution
    counts: Counter = Counter()  # (fused, method, params JSON, epochs, task, label setting) -> trials
    for wave in plan.waves():
        for unit in plan_units(wave, execution.fuse, execution.fuse_max, plan.data_root):
            for trial in unit.specs:
                counts[(unit.fused, trial.method, json.dumps(trial.method_params, sort_keys=True),
                        trial.recipe.epochs, trial.task, trial.label_setting)] += 1
    estimate = GpuHours(throughput, gpu_per_trial=plan.spec.resources.gpu)
    reference = reference_passes()
    for (fused, method, params, epochs, task, label_setting), n in counts.items():
        molecules = task_molecules(task, plan.data_root)
        if molecules is None:
            estimate.uncounted[task] = estimate.uncounted.get(task, 0) + n
            continue
        share = molecule_passes(method, json.loads(params), epochs, molecules, label_setting) / reference
        if fused:
            estimate.fused_trials += n
            estimate.fused_hours += n * share / throughput.fused
        else:
            estimate.unfused_trials += n
            estimate.unfused_hours += n * share / throughput.unfused
    return estimate
