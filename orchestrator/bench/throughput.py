"""``roft bench throughput``: fine-tuning trials per hour of the reference loop, roft unfused and roft fused.

All engines run in this one process on the same device, on the same BBBP-sized task (synthetic
molecule-like graphs by default: :func:`orchestrator.bench.molecules.synthetic_dataset`; a registered
task with ``--task``), with Full FT, the same model shape, batch size 32 and Adam:

* ``reference``: the pretrain-gnns fine-tuning loop: CPU-resident PyG ``Data`` objects, a
  PyG ``DataLoader`` (shuffled, batch 32), ``batch.to(device)`` per step; per epoch, validation
  and test through ``DataLoader`` s of batch 32 (pretrain-gnns' defaults, ``eval_train=0``);
* ``unfused``: :func:`trainables.training.trainer.fit`, one trial;
* ``fused K``: :func:`trainables.training.fused.engine.fit_fused`, K trials (seeds 0..K-1) at once.

Each engine runs one untimed warm-up epoch, then timed epochs (training plus the per-epoch
validation and test evaluation every engine does). The roft engines are timed as whole fits of
1 and of ``1 + epochs`` epochs, three of each: the difference gives seconds per epoch, the rest is
the fit's set-up (stacking the models, moving molecules to the device, assembling the evaluation
batches), which a 100-epoch trial pays once; the reference loop's set-up (building its
``DataLoader`` s) is not timed (:func:`orchestrator.bench.timing.fit_epochs` says when the
timings resolve a figure). Printed per engine: seconds per epoch with the range of the repeats,
set-up seconds, trial-epochs/s, training graphs/s, projected 100-epoch trials per hour
(``trials * 3600 / (set-up + 100 * seconds per epoch)``, with the range the epoch's spread gives)
and the ratio to the reference. Nothing here is a test: absolute figures depend on the machine,
the ratios are the result.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from orchestrator.bench.timing import EpochFit, Spread, TimingNoiseError, fit_epochs
from trainables.core.config import TrainingRecipe
from trainables.core.data_root import DataRoot
from trainables.core.engine import EngineOptions
from trainables.data.dataset import GraphDataset
from trainables.data.tasks import TaskType
from trainables.methods import MethodContext, make_method
from trainables.models.gnn import GNNShape
from trainables.models.predictor import GraphPredictor
from trainables.training.fused.engine import FusedMember, dropout_generator_after_init, fit_fused
from trainables.training.metrics import evaluate_metric, task_loss
from trainables.training.trainer import SplitIndices, fit

TRIAL_EPOCHS = 100  # the paper's recipe, for projecting trials per hour


@dataclass
class EpochTiming:
    engine: str
    trials: int
    seconds_per_epoch: float  # wall seconds for one epoch of all ``trials``
    train_graphs: int
    peak_memory_mib: float | None = None
    setup_seconds: float = 0.0  # once per fit
    spread: Spread | None = None  # seconds per epoch over the repeats (None: a single timing)

    @property
    def trial_epochs_per_second(self) -> float:
        return self.trials / self.seconds_per_epoch

    @property
    def graphs_per_second(self) -> float:
        return self.trial_epochs_per_second * self.train_graphs

    @property
    def trials_per_hour(self) -> float:
        return self.trials * 3600 / (self.setup_seconds + TRIAL_EPOCHS * self.seconds_per_epoch)

    @property
    def trials_per_hour_range(self) -> tuple[float, float] | None:
        """Projected trials per hour at the slowest and fastest epoch the repeats allow."""
        if self.spread is None:
            return None
        slowest, fastest = (
            self.trials * 3600 / (self.setup_seconds + TRIAL_EPOCHS * epoch)
            for epoch in (self.spread.high, self.spread.low)
        )
        return slowest, fastest


def index_split(n: int) -> SplitIndices:
    """80/10/10 by position (the synthetic molecules are in random order)."""
    train_end, valid_end = int(0.8 * n), int(0.9 * n)
    return SplitIndices(torch.arange(train_end), torch.arange(train_end, valid_end), torch.arange(valid_end, n))


def _model(shape: GNNShape, num_tasks: int, seed: int, device: torch.device) -> GraphPredictor:
    torch.manual_seed(seed)
    return GraphPredictor(shape, num_tasks).to(device)


# --------------------------------------------------------------------------- reference loop


def _pyg_data(data: GraphDataset, index: torch.Tensor) -> list:
    from torch_geometric.data import Data

    graphs = []
    for g in index.tolist():
        n0, n1, e0, e1 = (
            int(v) for v in (data.node_ptr[g], data.node_ptr[g + 1], data.edge_ptr[g], data.edge_ptr[g + 1])
        )
        graphs.append(
            Data(
                x=data.x[n0:n1],
                edge_index=data.edge_index[:, e0:e1],
                edge_attr=data.edge_attr[e0:e1],
                y=data.y[g : g + 1],
            )
        )
    return graphs


def reference_epochs(
    data: GraphDataset,
    split: SplitIndices,
    shape: GNNShape,
    task_type: TaskType,
    recipe: TrainingRecipe,
    device: torch.device,
    epochs: int,
) -> float:
    """Seconds per epoch of the pretrain-gnns loop (after one warm-up epoch)."""
    from torch_geometric.loader import DataLoader

    train = DataLoader(_pyg_data(data, split.train), batch_size=recipe.batch_size, shuffle=True)
    evaluation = [
        DataLoader(_pyg_data(data, getattr(split, part)), batch_size=recipe.batch_size, shuffle=False)
        for part in ("valid", "test")
    ]
    model = _model(shape, data.num_tasks, 0, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)

    def epoch() -> None:
        model.train()
        for batch in train:
            batch = batch.to(device)
            loss = task_loss(task_type, model(batch).logits, batch.y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            for loader in evaluation:
                outputs, labels = [], []
                for batch in loader:
                    batch = batch.to(device)
                    outputs.append(model(batch).logits.cpu())
                    labels.append(batch.y.cpu())
                evaluate_metric(task_type, torch.cat(labels).numpy(), torch.cat(outputs).numpy())

    epoch()
    return _timed(epoch, epochs, device) / epochs


def _timed(work: Callable[[], object], repeats: int, device: torch.device) -> float:
    _synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        work()
    _synchronize(device)
    return time.perf_counter() - started


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------- roft engines


def setup_and_epoch(run: Callable[[int], float], epochs: int, repeats: int = 3) -> EpochFit:
    """Seconds per epoch (with its spread) and set-up of ``run(n_epochs) -> seconds`` (one whole fit).

    One warm-up fit of 1 epoch, then ``repeats`` times a fit of 1 and one of ``1 + epochs`` epochs,
    read by :func:`orchestrator.bench.timing.fit_epochs` (which raises :class:`TimingNoiseError` when
    they resolve no figure).
    """
    run(1)
    ones, longs = [], []
    for _ in range(repeats):
        ones.append(run(1))
        longs.append(run(1 + epochs))
    return fit_epochs(ones, longs, epochs)


def unfused_run(
    data: GraphDataset,
    split: SplitIndices,
    shape: GNNShape,
    task_type: TaskType,
    recipe: TrainingRecipe,
    device: torch.device,
) -> Callable[[int], float]:
    """``run(epochs) -> seconds`` of :func:`trainables.training.trainer.fit` (model built before timing)."""

    def run(n_epochs: int) -> float:
        ctx = MethodContext(model=_model(shape, data.num_tasks, 0, device), pretrained_state=None, seed=0)
        return _timed(
            lambda: fit(
                ctx,
                make_method("full-ft"),
                data,
                split,
                task_type,
                True,
                _with_epochs(recipe, n_epochs),
                torch.Generator().manual_seed(0),
                device,
            ),
            1,
            device,
        )

    return run


def fused_run(
    data: GraphDataset,
    split: SplitIndices,
    shape: GNNShape,
    task_type: TaskType,
    recipe: TrainingRecipe,
    device: torch.device,
    trials: int,
    options: EngineOptions = EngineOptions(),
) -> Callable[[int], float]:
    """``run(epochs) -> seconds``: builds ``trials`` fresh members (untimed), times their fused fit
    (stacking the models and assembling the resident evaluation batches included)."""

    def run(n_epochs: int) -> float:
        members = []
        for seed in range(trials):
            model = _model(shape, data.num_tasks, seed, device)
            members.append(
                FusedMember(
                    model,
                    make_method("full-ft"),
                    split,
                    torch.Generator().manual_seed(seed),
                    dropout_generator_after_init(device, seed),
                    seed,
                )
            )
        return _timed(
            lambda: fit_fused(members, data, task_type, True, _with_epochs(recipe, n_epochs), device, options=options),
            1,
            device,
        )

    return run


def _with_epochs(recipe: TrainingRecipe, epochs: int) -> TrainingRecipe:
    return TrainingRecipe(epochs, recipe.batch_size, recipe.lr, recipe.weight_decay, recipe.dropout)


def _peak_memory(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    peak = torch.cuda.max_memory_allocated(device) / 2**20
    torch.cuda.reset_peak_memory_stats(device)
    return peak


def bench_throughput(
    data: GraphDataset,
    task_type: TaskType,
    shape: GNNShape,
    fused_sizes: Sequence[int],
    device: torch.device,
    epochs: int = 2,
    batch_size: int = 32,
    split: SplitIndices | None = None,
    skip_reference: bool = False,
    skip_unfused: bool = False,
    variants: Sequence[EngineOptions] = (EngineOptions(),),
) -> list[EpochTiming]:
    """Measure every engine (the fused one under each of ``variants``) and print one table."""
    split = index_split(len(data)) if split is None else split
    recipe = TrainingRecipe(epochs=epochs, batch_size=batch_size)
    n_train = len(split.train)
    print(
        f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), "
        f"torch threads {torch.get_num_threads()}, {shape.gnn_type} {shape.num_layers}x{shape.emb_dim}, "
        f"{len(data)} molecules ({n_train} train, {len(split.valid)} valid, {len(split.test)} test), "
        f"{data.num_atoms.mean():.1f} atoms/molecule, batch {batch_size}, {epochs} timed epochs per engine, "
        f"TF32 matmul {torch.backends.cuda.matmul.allow_tf32 if device.type == 'cuda' else 'n/a'}",
        flush=True,
    )
    _peak_memory(device)
    results: list[EpochTiming] = []
    runs: list[tuple[str, int, Callable[[], EpochFit | float]]] = []
    if not skip_reference:
        runs.append(("reference", 1, lambda: reference_epochs(data, split, shape, task_type, recipe, device, epochs)))
    if not skip_unfused:
        runs.append(
            ("unfused", 1, lambda: setup_and_epoch(unfused_run(data, split, shape, task_type, recipe, device), epochs))
        )

    def fused_epochs(k: int, options: EngineOptions) -> EpochFit:
        return setup_and_epoch(fused_run(data, split, shape, task_type, recipe, device, k, options), epochs)

    for v, options in enumerate(variants):
        if len(variants) > 1:
            print(f"fused variant {chr(ord('a') + v)}: {options.as_words()}", flush=True)
        tag = f" {chr(ord('a') + v)}" if len(variants) > 1 else ""
        for k in fused_sizes:
            runs.append((f"fused{tag} K={k}", k, functools.partial(fused_epochs, k, options)))
    baseline: EpochTiming | None = None
    for engine, trials, measure in runs:
        try:
            measured = measure()
        except torch.cuda.OutOfMemoryError as exc:  # larger K than the device holds: say so, keep the table
            print(f"{engine}: out of device memory ({str(exc).splitlines()[0]})", flush=True)
            torch.cuda.empty_cache()
            continue
        except TimingNoiseError as exc:  # no figure rather than an impossible one
            print(f"{engine}: no figure: {exc}", flush=True)
            continue
        if isinstance(measured, EpochFit):
            result = EpochTiming(
                engine,
                trials,
                measured.per_epoch.value,
                n_train,
                _peak_memory(device),
                measured.setup,
                measured.per_epoch,
            )
        else:  # the reference loop: seconds per epoch of one timed run
            result = EpochTiming(engine, trials, measured, n_train, _peak_memory(device))
        baseline = baseline or result
        results.append(result)
        print(timing_line(result, baseline), flush=True)
    return results


def timing_line(result: EpochTiming, baseline: EpochTiming) -> str:
    """One engine's row: seconds per epoch (range of the repeats), set-up, rates and the ratio to ``baseline``."""
    spread = "" if result.spread is None else f" ({result.spread.low:.3f}-{result.spread.high:.3f})"
    span = result.trials_per_hour_range
    per_hour = f"{result.trials_per_hour:9,.0f}" + ("" if span is None else f" ({span[0]:,.0f}-{span[1]:,.0f})")
    memory = "" if result.peak_memory_mib is None else f"  peak {result.peak_memory_mib:,.0f} MiB"
    return (
        f"{result.engine:<15} {result.seconds_per_epoch:8.3f} s/epoch{spread}  set-up {result.setup_seconds:6.2f} s  "
        f"{result.trial_epochs_per_second:8.2f} trial-epochs/s  {result.graphs_per_second:10,.0f} graphs/s  "
        f"{per_hour} trials/h  x{result.trials_per_hour / baseline.trials_per_hour:6.2f} vs "
        f"{baseline.engine}{memory}"
    )


def profile_fused(
    data: GraphDataset,
    split: SplitIndices,
    shape: GNNShape,
    task_type: TaskType,
    device: torch.device,
    trials: int,
    batch_size: int = 32,
    options: EngineOptions = EngineOptions(),
    rows: int = 15,
) -> None:
    """Print where one fused epoch of ``trials`` trials spends its time (torch.profiler, top ``rows`` ops)."""
    from torch.profiler import ProfilerActivity, profile

    run = fused_run(
        data, split, shape, task_type, TrainingRecipe(epochs=1, batch_size=batch_size), device, trials, options
    )
    run(1)  # warm-up
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as profiler:
        run(1)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(f"profile of one fused epoch, K={trials}, {options.as_words()} (after a warm-up run), by {sort}:")
    print(profiler.key_averages().table(sort_by=sort, row_limit=rows, max_name_column_width=48))


def load_bench_data(
    task: str | None, molecules: int, data_root: DataRoot, seed: int = 0
) -> tuple[GraphDataset, TaskType, SplitIndices]:
    """The benchmark's task: synthetic (``task`` None) or a registered task with its scaffold split."""
    if task is None:
        from orchestrator.bench.molecules import synthetic_dataset

        data = synthetic_dataset(molecules, seed=seed)
        return data, TaskType.CLASSIFICATION, index_split(len(data))
    from trainables.data.dataset import load_task
    from trainables.data.splits import make_split
    from trainables.data.tasks import TASKS

    data = load_task(task, data_root)
    split = make_split("scaffold", data.scaffolds, data.num_atoms)
    indices = SplitIndices(*(torch.from_numpy(np.asarray(i)) for i in (split.train, split.valid, split.test)))
    return data, TASKS.get(task).task_type, indices


def set_torch_backend(threads: int | None = None, tf32: bool = False) -> None:
    """Process-wide torch switches for a bench run: ``threads`` CPU threads (``None``: torch's default) and,
    with ``tf32``, TF32 matrix products and convolutions on CUDA devices (left as they are otherwise)."""
    if threads:
        torch.set_num_threads(threads)
    if tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
