"""One trial, end to end: data -> split -> label subset -> model -> method -> fit -> store.

:func:`execute_trial` is plain Python (usable without Ray); :func:`tune_trainable` is the Ray
Tune function trainable that wraps it, reporting every epoch to Tune. The trial's artifact,
epoch curve and result row are written to the store by the worker itself, so a finished trial
is durable even if the driver dies. While it trains, the trial is marked in the store
(``running/<unit>.json``, :class:`RunningMarkers`) for ``roft status``.

Reused Ray actors run many trials in one process, so datasets and checkpoints are memoised per
process (:data:`_DATASETS`, :data:`_CHECKPOINTS`).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, cast

import numpy as np
import torch

from trainables.core.config import Runtime, TrialSpec, canonical_json
from trainables.core.data_root import DataRoot
from trainables.data.dataset import GraphDataset, load_task
from trainables.data.splits import make_split, parse_label_setting
from trainables.data.tasks import TASKS
from trainables.methods import FineTuningMethod, MethodContext, make_method
from trainables.methods.alpha_search import AlphaPoint
from trainables.methods.dependencies import parent_methods, parent_spec
from trainables.methods.interpolation import InterpolatingMethod
from trainables.methods.revisions import check_revisions
from trainables.models.backbones import BACKBONES, PretrainedWeights, build_model, read_checkpoint
from trainables.models.shapes import scratch_shape
from trainables.training.trainer import DivergedError, EpochRecord, FitResult, SplitIndices, fit
from trainables.worker.placement import OUTSIDE_RAY, Placement
from trainables.worker.store import StoreOpener, TrialStore
from trainables.worker.termination import quiet_termination

log = logging.getLogger(__name__)

_DATASETS: dict[tuple[str, DataRoot], GraphDataset] = {}
_CHECKPOINTS: dict[tuple[str, DataRoot], PretrainedWeights | None] = {}


def cached_task(task: str, data_root: DataRoot) -> GraphDataset:
    if (task, data_root) not in _DATASETS:
        if len(_DATASETS) >= 4:
            _DATASETS.pop(next(iter(_DATASETS)))
        _DATASETS[(task, data_root)] = load_task(task, data_root)
    return _DATASETS[(task, data_root)]


def cached_checkpoint(backbone: str, data_root: DataRoot) -> PretrainedWeights | None:
    if (backbone, data_root) not in _CHECKPOINTS:
        _CHECKPOINTS[(backbone, data_root)] = read_checkpoint(BACKBONES.get(backbone), data_root)
    return _CHECKPOINTS[(backbone, data_root)]


class DependencyError(RuntimeError):
    """A dependant trial's parent checkpoint is missing or does not match its record."""


@dataclass(frozen=True)
class ParentCheckpoint:
    key: str
    sha256: str
    state: dict[str, torch.Tensor]


def load_parent_state(spec: TrialSpec, store: TrialStore) -> ParentCheckpoint | None:
    """The verified checkpoint of ``spec``'s parent trial; None for a trial without one.

    The parent must have a committed row under the key derived from ``spec``; its artifact must
    exist and hash to the sha256 recorded in that row.
    """
    parent = parent_spec(spec)
    if parent is None:
        return None
    key = parent.key()
    row = store.read_trial(key)
    if row is None:
        raise DependencyError(
            f"{spec.method} trial {spec.key()} needs its {parent.method} parent trial {key}, "
            f"which is not in the store at {store.location}; run the sweep (it plans the parent "
            "first) or the parent trial"
        )
    location = store.artifact_location(key)
    recorded = row.get("artifact_sha256") or ""
    blob = store.read_artifact(key) if recorded else None
    if blob is None or not recorded:
        raise DependencyError(
            f"{parent.method} trial {key} has no saved checkpoint at {location} (recorded sha256: "
            f"{recorded or 'none'}); `roft store forget {key}` takes it out of the store, and the next "
            "sweep retrains it, then runs again the trials that failed for want of it"
        )
    actual = hashlib.sha256(blob).hexdigest()
    if actual != recorded:
        raise DependencyError(
            f"{parent.method} trial {key}: checkpoint {location} has sha256 {actual}, but its row "
            f"records {recorded}; refusing to use a mismatched checkpoint"
        )
    return ParentCheckpoint(key, actual, torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True))


def save_artifact(store: TrialStore, key: str, state: dict[str, torch.Tensor]) -> tuple[str, str]:
    """Write ``state`` atomically to the store; returns (its location: a path or an s3:// URI, sha256)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    blob = buffer.getvalue()
    return store.write_artifact(key, blob), hashlib.sha256(blob).hexdigest()


HEARTBEAT_S = 30.0  # a running marker's heartbeat is rewritten at most this often


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunningMarkers:
    """The store's ``running/<unit>.json`` marker of what one worker trains: one trial, or one
    fused group (named by its ``unit`` key, listing its members), so that a group of hundreds of
    trials costs one small write per heartbeat, not one per member.

    Written when the unit starts (a store that cannot take it fails the trial, as it would fail its
    row), refreshed from the epoch callback at most every :data:`HEARTBEAT_S` seconds (a failed
    refresh only warns: the row's write decides), removed when the unit ends, whatever the outcome
    (:meth:`clear` never raises: the result, or the unit's own error, stands). A member whose row
    has landed counts as done, not running, even while its group's marker stays. A killed worker
    leaves its marker, whose heartbeat then grows old.
    """

    def __init__(
        self,
        store: TrialStore,
        specs: list[TrialSpec],
        runtime: Runtime,
        unit: str | None = None,
        placement: Placement = OUTSIDE_RAY,
    ):
        keys = [spec.key() for spec in specs]
        self.store, self.name, self.keys = store, unit or keys[0], keys
        now = _now()
        self.info: dict[str, Any] = {
            "sweep": runtime.sweep,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "node_ip": placement.node_ip,
            "gpu_ids": placement.gpu_ids,
            "started_at": now,
            "heartbeat_at": now,
            "unit": unit,
            "epoch": None,
            "stage": None,
            "epochs": specs[0].recipe.epochs,
        }
        self._written = time.monotonic()
        self._held = True
        store.mark_running(self.name, keys, self.info)

    def beat(self, record: EpochRecord) -> None:
        """An epoch finished: refresh the heartbeat (and epoch) when the last one is old enough."""
        self.info.update(epoch=record.epoch, stage=record.stage)
        if time.monotonic() - self._written < HEARTBEAT_S or not self._held:
            return
        self._written = time.monotonic()
        self.info["heartbeat_at"] = _now()
        try:
            self.store.mark_running(self.name, self.keys, self.info)
        except Exception as exc:  # noqa: BLE001 - a missed heartbeat must not stop training
            log.warning(
                "could not refresh the running marker %s in the store at %s: %s", self.name, self.store.location, exc
            )

    def clear(self) -> None:
        """Remove the marker; a failure only warns."""
        if not self._held:
            return
        self._held = False
        try:
            self.store.clear_running(self.name)
        except Exception as exc:  # noqa: BLE001 - the row landed (or the trial failed): that stands
            log.warning(
                "could not remove the running marker %s from the store at %s (roft status will show it stale): %s",
                self.name,
                self.store.location,
                exc,
            )


def resolve_device(preference: str) -> torch.device:
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


@dataclass
class PreparedTrial:
    """Everything a trial's training needs, built exactly as its result depends on it."""

    spec: TrialSpec
    started: float  # time.perf_counter() when its preparation began
    started_at: datetime  # the same moment on the wall clock (UTC)
    device: torch.device
    data: GraphDataset
    indices: SplitIndices
    store: TrialStore
    parent: ParentCheckpoint | None
    pretrained: PretrainedWeights | None
    model: torch.nn.Module
    method: FineTuningMethod
    ctx: MethodContext
    generator: torch.Generator

    @property
    def task(self):
        return TASKS.get(self.spec.task)


def prepare_trial(spec: TrialSpec, runtime: Runtime, store: TrialStore, device: torch.device) -> PreparedTrial:
    """Data, split, label subset, parent checkpoint and model of one trial.

    Seeds the global RNGs with the trial's seed and builds the model under them (the head's
    initialisation draws from them); the caller's training continues from that RNG state.
    """
    started, started_at = time.perf_counter(), datetime.now(timezone.utc)
    data = cached_task(spec.task, runtime.data_root)
    if spec.data_sha256 and data.file_sha256 != spec.data_sha256:
        raise RuntimeError(
            f"task {spec.task}: data file sha256 {data.file_sha256} differs from the planned {spec.data_sha256}"
        )
    split = make_split(spec.split, data.scaffolds, data.num_atoms)
    train_index = parse_label_setting(spec.label_setting).subset(split, spec.subset_seed)
    train, valid, test = (torch.from_numpy(np.asarray(i)) for i in (train_index, split.valid, split.test))
    indices = SplitIndices(
        train, valid, test, valid_order=None if split.valid_order is None else torch.from_numpy(split.valid_order)
    )
    parent = load_parent_state(spec, store)
    backbone = BACKBONES.get(spec.backbone)
    pretrained = cached_checkpoint(spec.backbone, runtime.data_root)
    if pretrained is not None and spec.backbone_sha256 and pretrained.sha256 != spec.backbone_sha256:
        raise RuntimeError(
            f"backbone {spec.backbone}: checkpoint sha256 {pretrained.sha256} differs from the "
            f"planned {spec.backbone_sha256}"
        )
    torch.manual_seed(spec.seed)
    np.random.seed(spec.seed)
    shape = scratch_shape(backbone.gnn_type, spec.num_layers, spec.emb_dim, spec.recipe.dropout)
    model = build_model(backbone, data.num_tasks, shape, pretrained).to(device)
    method = make_method(spec.method, spec.method_params)
    ctx = MethodContext(
        model=model,
        pretrained_state=None,
        parent_state=None if parent is None else parent.state,
        seed=spec.seed,
        parent_key="" if parent is None else parent.key,
        optuna_storage=runtime.optuna_storage,
        prior_alpha_points=lambda study: [
            AlphaPoint(p["number"], tuple(p["alphas"]), p["val_metric"], p["test_metric"])
            for p in store.alpha_points(study)
        ],
    )
    from trainables.training.fused.evaluation import stacked_scorer

    score_states = stacked_scorer(data, indices, TASKS.get(spec.task).task_type, device)
    ctx.evaluate_states = lambda part, states: score_states(ctx.model, states, part)  # alpha searches' batches
    return PreparedTrial(
        spec,
        started,
        started_at,
        device,
        data,
        indices,
        store,
        parent,
        pretrained,
        model,
        method,
        ctx,
        torch.Generator().manual_seed(spec.seed),
    )


def commit_trial(
    trial: PreparedTrial,
    result: FitResult,
    runtime: Runtime,
    placement: Placement = OUTSIDE_RAY,
    fused_trials: int = 1,
    wall_seconds: float | None = None,
    started_at: datetime | None = None,
) -> dict[str, Any]:
    """Save the trial's artifact (where kept), epochs, side tables and row; returns the row.

    A fused group's members pass the group's ``started_at`` and their share of its wall time.
    """
    spec, data, store, parent, pretrained = trial.spec, trial.data, trial.store, trial.parent, trial.pretrained
    key, task, backbone = spec.key(), trial.task, BACKBONES.get(spec.backbone)
    artifact, artifact_sha256 = "", ""
    if runtime.artifacts == "all" or spec.method in parent_methods():
        artifact, artifact_sha256 = save_artifact(store, key, result.best_state)
    shape = trial.model.gnn.shape
    row = {
        "trial_key": key,
        "sweep": runtime.sweep,
        "backbone": spec.backbone,
        "backbone_sha256": pretrained.sha256 if pretrained else "",
        "architecture": shape.gnn_type,
        "num_layers": shape.num_layers,
        "emb_dim": shape.emb_dim,
        "pretraining": backbone.pretraining,
        "method": spec.method,
        "method_label": trial.method.label,
        "mechanism": trial.method.mechanism,
        "method_params": canonical_json(trial.method.params),
        "task": spec.task,
        "task_type": task.task_type.value,
        "metric": task.metric,
        "data_sha256": data.file_sha256,
        "split": spec.split,
        "label_setting": spec.label_setting,
        "subset_seed": spec.subset_seed,
        "seed": spec.seed,
        "epochs": spec.recipe.epochs,
        "batch_size": spec.recipe.batch_size,
        "lr": spec.recipe.lr,
        "best_epoch": result.best_epoch,
        "best_stage": result.best_stage,
        "val_metric": result.val,
        "test_metric": result.test,
        "n_train": len(trial.indices.train),
        "n_val": len(trial.indices.valid),
        "n_test": len(trial.indices.test),
        "invalid_smiles_dropped": int(data.stats.get("dropped", 0)),
        "tasks_total": data.num_tasks,
        "val_tasks_evaluated": result.val_score.evaluated,
        "test_tasks_evaluated": result.test_score.evaluated,
        "wall_seconds": time.perf_counter() - trial.started if wall_seconds is None else wall_seconds,
        "device": str(trial.device),
        "hostname": socket.gethostname(),
        "code_version": runtime.code_version,
        "protocol_version": spec.protocol_version,
        "trial_config": spec.canonical_json(),
        "finished_at": datetime.now(timezone.utc),
        "started_at": started_at or trial.started_at,
        "node_ip": placement.node_ip,
        "gpu_ids": placement.gpu_ids,
        "artifact_path": artifact,
        "artifact_sha256": artifact_sha256,
        "parent_trial_key": "" if parent is None else parent.key,
        "parent_artifact_sha256": "" if parent is None else parent.sha256,
        "method_results": canonical_json(result.summary),
        "engine": runtime.engine.label(fused_trials, trial.device.type, shape.gnn_type),
        "fused_trials": fused_trials,
    }
    epochs = [
        {
            "stage": e.stage,
            "epoch": e.epoch,
            "train_loss": e.train_loss,
            "val_metric": e.val,
            "test_metric": e.test,
            "val_tasks_skipped": e.val_tasks_skipped,
            "test_tasks_skipped": e.test_tasks_skipped,
        }
        for e in result.history
    ]
    store.write_trial(row, epochs, side=trial.method.records(trial.ctx))
    return row


def apply_matmul_precision(runtime: Runtime) -> None:
    """TF32 matrix products on CUDA devices where the sweep asks for them (a process-wide switch:
    every trial of a sweep runs under the same setting)."""
    torch.backends.cuda.matmul.allow_tf32 = runtime.engine.tf32
    torch.backends.cudnn.allow_tf32 = runtime.engine.tf32


def execute_trial(
    spec: TrialSpec,
    runtime: Runtime,
    store: TrialStore,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    placement: Placement = OUTSIDE_RAY,
) -> dict[str, Any]:
    """Run one trial and commit it to ``store`` (the one at ``runtime.store``); returns the result row.

    The trial is marked running in the store (:class:`RunningMarkers`) until its row lands or it fails.
    A trial planned by code that computes its method or molecules differently is refused.
    """
    check_revisions(spec)
    markers = RunningMarkers(store, [spec], runtime, placement=placement)
    try:
        torch.set_num_threads(max(1, runtime.threads))
        apply_matmul_precision(runtime)
        trial = prepare_trial(spec, runtime, store, resolve_device(runtime.device))
        task = trial.task

        def epoch_done(record: EpochRecord) -> None:
            markers.beat(record)
            if on_epoch is not None:
                on_epoch(record)

        result = fit(
            trial.ctx,
            trial.method,
            trial.data,
            trial.indices,
            task.task_type,
            task.higher_is_better,
            spec.recipe,
            trial.generator,
            trial.device,
            epoch_done,
        )
        return commit_trial(trial, result, runtime, placement)
    finally:
        markers.clear()


def execute_fused_group(
    specs: list[TrialSpec],
    runtime: Runtime,
    store: TrialStore,
    on_epoch: Callable[[int, EpochRecord], None] | None = None,
    unit: str | None = None,
    placement: Placement = OUTSIDE_RAY,
) -> list[dict[str, Any]]:
    """Train ``specs`` as one fused group (see :mod:`trainables.training.fused`); commits one row per trial.

    Each trial is prepared as unfused (its seed, its model, its generators), so on the CPU its
    results equal its unfused run's within floating-point tolerance. Each member is marked running
    (with the group's ``unit`` key) until its row lands or the group fails.
    """
    for spec in specs:
        check_revisions(spec)
    started = time.perf_counter(), datetime.now(timezone.utc)
    landed = {spec.key(): store.read_trial(spec.key()) for spec in specs}
    todo = [spec for spec in specs if landed[spec.key()] is None]  # a retried group redoes only what is missing
    if len(todo) <= 1:
        rows = [execute_trial(spec, runtime, store, placement=placement) for spec in todo]
        return [row for row in landed.values() if row is not None] + rows
    specs = todo
    markers = RunningMarkers(store, specs, runtime, unit, placement)
    try:
        return _fused_group(specs, runtime, store, on_epoch, markers, started, landed, placement)
    finally:
        markers.clear()


def _fused_group(
    specs: list[TrialSpec],
    runtime: Runtime,
    store: TrialStore,
    on_epoch: Callable[[int, EpochRecord], None] | None,
    markers: RunningMarkers,
    started: tuple[float, datetime],
    landed: dict[str, dict[str, Any] | None],
    placement: Placement,
) -> list[dict[str, Any]]:
    from trainables.training.fused.engine import FusedMember, dropout_generator_after_init, fit_fused
    from trainables.training.fused.interpolation import InterpolationMember, fit_interpolation_group

    torch.set_num_threads(max(1, runtime.threads))
    apply_matmul_precision(runtime)
    device = resolve_device(runtime.device)
    trials, members = [], []
    for spec in specs:
        trial = prepare_trial(spec, runtime, store, device)
        trials.append(trial)
        members.append((trial, dropout_generator_after_init(device, spec.seed)))
    interpolating = (trials[0].method.fusion_signature(trials[0].spec.recipe.epochs) or ("",))[0] == "interpolation"
    first = trials[0]
    for trial in trials[1:]:
        if (trial.spec.task, trial.spec.split, trial.spec.recipe) != (
            first.spec.task,
            first.spec.split,
            first.spec.recipe,
        ):
            raise ValueError("a fused group's trials must share task, split and recipe")

    def epoch_done(k: int, record: EpochRecord) -> None:
        markers.beat(record)
        if on_epoch is not None:
            on_epoch(k, record)

    options = runtime.engine.in_effect(True, device.type, first.model.gnn.shape.gnn_type)
    if interpolating:  # WiSE-FT evaluations or RoFt-Mol fits of many alpha sets at once
        results = fit_interpolation_group(
            [
                InterpolationMember(
                    t.model, cast(InterpolatingMethod, t.method), t.ctx, t.indices, t.generator, dropout, t.spec.seed
                )
                for t, dropout in members
            ],
            first.data,
            first.task.task_type,
            first.task.higher_is_better,
            first.spec.recipe,
            device,
            epoch_done,
            options,
        )
    else:
        results = fit_fused(
            [FusedMember(t.model, t.method, t.indices, t.generator, dropout, t.spec.seed) for t, dropout in members],
            first.data,
            first.task.task_type,
            first.task.higher_is_better,
            first.spec.recipe,
            device,
            epoch_done,
            options,
        )
    share = (time.perf_counter() - started[0]) / len(specs)
    rows = []
    for trial, result in zip(trials, results):
        if not isinstance(result, DivergedError):
            rows.append(
                commit_trial(
                    trial,
                    result,
                    runtime,
                    placement,
                    fused_trials=len(specs),
                    wall_seconds=share,
                    started_at=started[1],
                )
            )
    failed = [
        f"{trial.spec.key()} ({trial.spec.method} {canonical_json(trial.method.params)}): {result}"
        for trial, result in zip(trials, results)
        if isinstance(result, DivergedError)
    ]
    if failed:
        raise DivergedError(
            f"{len(failed)} of {len(specs)} trials of the fused group diverged; the other "
            f"{len(rows)} landed. " + "; ".join(failed)
        )
    return [row for row in landed.values() if row is not None] + rows


def tune_trainable(config: dict[str, Any], open_store: StoreOpener) -> None:
    """Ray Tune function trainable: one trial, or one fused group of trials.

    ``config = {"trial": {"key": str, "spec": TrialSpec dict}, "runtime": Runtime dict}``, or for
    a group ``{"trial": {"key": str, "group": [TrialSpec dict], "members": [key]}, ...}``.
    ``open_store`` opens the results store named by the runtime (bound by ``tune.with_parameters``).
    """
    from ray import tune

    quiet_termination()  # Ray ends this worker by SIGTERM: no traceback in the job's log for that
    runtime = Runtime(**config["runtime"])
    store = open_store(runtime.store)
    placement = Placement.of_ray_worker()
    unit = config["trial"]
    if "group" in unit:
        specs = [TrialSpec.from_dict(d) for d in unit["group"]]

        def report_group(k: int, record: EpochRecord) -> None:
            if k == len(specs) - 1:  # once per epoch of the whole group
                tune.report({"epoch": record.epoch, "stage": record.stage, "fused_trials": len(specs), "done": False})

        rows = execute_fused_group(specs, runtime, store, report_group, unit=unit["key"], placement=placement)
        tune.report({"epoch": rows[0]["epochs"], "fused_trials": len(rows), "trial_key": unit["key"], "done": True})
        return

    spec = TrialSpec.from_dict(unit["spec"])

    def report(record: EpochRecord) -> None:
        tune.report(
            {
                "epoch": record.epoch,
                "stage": record.stage,
                "train_loss": record.train_loss,
                "val_metric": record.val,
                "test_metric": record.test,
                "done": False,
            }
        )

    row = execute_trial(spec, runtime, store, report, placement)
    tune.report(
        {
            "epoch": row["best_epoch"],
            "val_metric": row["val_metric"],
            "test_metric": row["test_metric"],
            "trial_key": row["trial_key"],
            "done": True,
        }
    )
