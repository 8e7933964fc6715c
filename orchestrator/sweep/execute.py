"""Run a planned sweep on Ray Tune, in chunks, with live progress.

Design: the store is the truth, Tune's experiment state is disposable. Pending trials are
submitted in chunks of ``execution.chunk_size`` (one small Tune experiment each), so the
driver's memory and Tune's experiment-state file stay bounded by the chunk, not the grid. Each
trial runs :func:`trainables.worker.trial.tune_trainable` on a reused actor (``reuse_actors``:
a fresh worker per trial would pay Ray's ~2 s start and ~5 s of imports every time; which trial a
freed actor takes is :class:`~orchestrator.sweep.scheduling.NewestPendingFirst`'s choice, so that
nodes joining mid-sweep get work) and
commits its own row to the store, so a crash of the driver at any point loses only the trials
in flight: rerunning the sweep resubmits exactly what is missing.

Before anything starts, the store must take a file (:meth:`ResultStore.check_writable`) and its
table folders are checked for files their readers would fail on
(:meth:`ResultStore.check_tables`). While the sweep runs, Ray's driver log (Tune's tracebacks of
failed trials, its hints) goes to a log file (:func:`ray_log`; its path is
:attr:`SweepOutcome.log_path`); the terminal keeps Ray's other warnings but none of its tracebacks
nor hints that do not apply to roft (``Tuner.restore(...)``: a sweep resumes by rerunning it).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from orchestrator.store.results import ResultStore
from orchestrator.store.schema import SIDE_TABLES, StoreError, refused_access
from orchestrator.sweep.fusion import plan_units
from orchestrator.sweep.plan import SweepPlan
from orchestrator.sweep.progress import ProgressReporter, tune_callback
from orchestrator.sweep.ray_log import filter_ray_console, log, ray_log, see_log, sweep_log_path
from search_spaces.spec import Resources
from trainables.core.config import Runtime
from trainables.methods.dependencies import parent_spec

if TYPE_CHECKING:  # for the annotations only
    from orchestrator.sweep.tracking import MlflowTracker


@dataclass
class SweepOutcome:
    submitted: int
    succeeded: int
    failed: dict[str, str] = field(default_factory=dict)  # trial key (or "search <experiment>") -> error
    wall_seconds: float = 0.0
    searches: Any = None  # orchestrator.sweep.searches.SearchOutcome when the spec has searched methods
    log_path: Path | None = None  # Ray's driver log of the sweep (full tracebacks), kept when a trial failed
    tracker: Any = None  # orchestrator.sweep.tracking.MlflowTracker when the sweep tracks its trials


# This module's own records (e.g. the traceback behind a StoreError) go to the sweep's log file only.


# Ray's console messages that roft reports itself, or whose advice does not apply to a roft sweep.
def init_ray(address: str | None = None, num_cpus: int | None = None, env: dict[str, str] | None = None) -> None:
    """Connect to ``address`` (an existing cluster; ``auto``: the one Ray finds), else to
    ``$RAY_ADDRESS`` (which ``ray job submit`` sets for its entry point), else start a private local Ray.

    A local Ray is kept on the loopback interface (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``)
    with no dashboard; Ray's own per-trial file loggers are disabled (the store keeps results).
    The workers of a local Ray inherit this process's environment; on a cluster they get ``env``
    (the store's :meth:`~orchestrator.store.results.ResultStore.worker_env`, e.g. S3 credentials) through
    the job's ``runtime_env``, where whoever can read the cluster's job information can see it.
    """

    import ray

    # Tune's per-trial JSON/CSV loggers are off (the store keeps results), so silence its
    # warning that it cannot read them back.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    address = address or os.environ.get("RAY_ADDRESS") or None
    if not address:
        # On one machine, at most 16 trials wait for resources (each holds a placement-group request).
        # On a cluster Tune's own default stands (at least 200, more with the cluster's CPUs): the
        # autoscaler sizes the cluster by those requests, so 16 would add one node at a time.
        os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", "16")
    if ray.is_initialized():
        return
    if address:
        env = {k: v for k, v in (env or {}).items() if k not in _job_env_vars()}
        ray.init(address=address, log_to_driver=True, **({"runtime_env": {"env_vars": env}} if env else {}))
    else:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        # Tune hands the AWS_* variables of this process to every trial actor's runtime_env, which Ray's
        # runtime-env agent logs at INFO level (runtime_env_agent.log): keep Ray's own processes at warning.
        os.environ.setdefault("RAY_LOGGER_LEVEL", "warning")
        ray.init(
            num_cpus=num_cpus,
            include_dashboard=False,
            log_to_driver=True,
            configure_logging=True,
            logging_level="WARNING",
        )
    filter_ray_console()  # inside a sweep's ray_log: filter the terminal handlers ray.init may have made


def _job_env_vars() -> set[str]:
    """Variables that the Ray job running this driver already sets (``ray job submit --runtime-env-json``);
    Ray refuses a ``ray.init`` runtime_env that sets any of them again."""
    import json

    config = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR") or "{}")
    return set((config.get("runtime_env") or {}).get("env_vars") or {})


def run_trials(
    trials: list[dict[str, Any]],
    runtime: Runtime,
    trainable: Callable[[dict], None],
    *,
    name: str,
    resources: dict[str, float],
    chunk_size: int,
    max_failures: int = 1,
    max_concurrent: int = 0,
    tune_root: Path,
    reporter: ProgressReporter | None = None,
    log_path: Path | None = None,
    scheduler: str = "newest-first",
    reuse_actors: bool = True,
    callbacks: tuple = (),
) -> dict[str, str]:
    """Run ``trials`` (each a unit's config: ``{"key": ..., "spec": TrialSpec dict}`` or a fused
    group's ``{"key": ..., "group": [...], "members": [trial keys]}``) through Tune in chunks.

    Returns the errors of trials that failed after their retries, by trial key (every member of a
    failed group gets the group's error). ``scheduler`` (a name of
    :data:`~orchestrator.sweep.scheduling.SCHEDULERS`) and ``reuse_actors`` stay as they are for
    sweeps; benchmarks set them to measure the alternatives. ``callbacks``: more Tune callbacks (the
    tracker's).
    """
    from ray import tune

    from orchestrator.sweep.scheduling import SCHEDULERS

    errors: dict[str, str] = {}
    resourced = tune.with_resources(trainable, resources)
    for start in range(0, len(trials), chunk_size):
        chunk = trials[start : start + chunk_size]
        experiment = f"{name}-{int(time.time())}-{start // chunk_size}"
        chunk_callbacks = ([tune_callback(reporter)] if reporter is not None else []) + list(callbacks)
        tuner = tune.Tuner(
            resourced,
            param_space={"trial": tune.grid_search(chunk), "runtime": runtime.to_dict()},
            tune_config=tune.TuneConfig(
                reuse_actors=reuse_actors,
                max_concurrent_trials=max_concurrent or None,
                scheduler=SCHEDULERS[scheduler](),
            ),
            run_config=tune.RunConfig(
                name=experiment,
                storage_path=str(tune_root),
                verbose=0,
                callbacks=chunk_callbacks,
                failure_config=tune.FailureConfig(max_failures=max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            ),
        )
        try:
            grid = tuner.fit()
        except (OSError, EOFError) as exc:  # Tune's experiment state under tune_root: a full or unwritable disk
            # (EOFError: Tune reading back a trial's error file that the full disk truncated)
            log.error("Tune could not write its experiment state under %s", tune_root, exc_info=exc)
            raise StoreError(
                f"Tune could not write its experiment state under {tune_root} "
                f"({type(exc).__name__}: {exc}{_free_space(tune_root)}); the sweep "
                f"stopped in units {start + 1}-{start + len(chunk)} of {len(trials)}. Rows already in "
                "the store are untouched: free space or fix the permissions, then rerun the same "
                f"command{see_log(log_path)}"
            ) from exc
        unfinished = 0
        for i in range(len(grid)):
            result = grid[i]
            if result.error is not None:
                unit = result.config["trial"]
                message = f"{type(result.error).__name__}: {_ANSI_ESCAPE.sub('', str(result.error))}"
                if "members" in unit:
                    message = f"its fused group {unit['key']} failed: {message}"
                errors.update({key: message for key in unit.get("members", [unit["key"]])})
            elif not (result.metrics or {}).get("done"):
                unfinished += 1
        if unfinished:
            # Tune returns normally after Ctrl-C / SIGTERM: stop here instead of starting the next chunk.
            raise KeyboardInterrupt(f"{unfinished} trials of {experiment} did not finish")
        unwritable = [message for message in errors.values() if "StoreError" in message]
        if unwritable:
            # every later trial would fail the same way: stop (what landed stays as it is)
            log.error("the results store could not be written:\n%s", _ANSI_ESCAPE.sub("", unwritable[0]))
            cause = error_line(unwritable[0])
            remedy = (
                ""
                if refused_access(cause)
                # StoreError names the credentials
                else "free space or fix the store's permissions, then rerun the same command"
            )
            raise StoreError(
                f"the results store could not be written ({cause}); the sweep "
                f"stopped after {min(start + chunk_size, len(trials))} of {len(trials)} units, "
                f"{len(trials) - start - len(chunk)} not started. Rows already in the store are "
                f"untouched{': ' + remedy if remedy else ''}{see_log(log_path)}"
            )
        if not errors:
            shutil.rmtree(tune_root / experiment, ignore_errors=True)
    return errors


def _free_space(path: Path) -> str:
    """``"; N bytes free on its disk"`` for the nearest existing folder of ``path`` ('' if unknown;
    ``"; No space left on device (0 bytes free on its disk)"`` when it is full, the cause behind
    whatever Tune reports then)."""
    for folder in [Path(path), *Path(path).parents]:
        if folder.exists():
            try:
                free = shutil.disk_usage(folder).free
            except OSError:
                return ""
            return (
                "; No space left on device (0 bytes free on its disk)"
                if free == 0
                else f"; {free:,} bytes free on its disk"
            )
    return ""


def run_sweep(
    plan: SweepPlan,
    store: ResultStore,
    runtime: Runtime,
    address: str | None = None,
    stream: TextIO | None = None,
    tracker: MlflowTracker | None = None,
) -> SweepOutcome:
    """Run every pending trial of ``plan``, wave by wave, and report what landed in the store.

    A dependant whose parent failed is not submitted; it is reported failed with the reason.
    ``tracker`` (:class:`~orchestrator.sweep.tracking.MlflowTracker`, started): each trial is logged
    as it lands, and at the end every landed trial of the plan (and of the sweep's searches) that
    has no run yet, also when nothing was pending.
    """
    try:
        outcome = _run_pending(plan, store, runtime, address, stream, tracker)
    finally:
        if tracker is not None:
            tracker.wait()  # the units handed to its thread as they landed
    if tracker is not None:
        tracker.log(store, _sweep_keys(plan, store))
        outcome.tracker = tracker
    return outcome


def _sweep_keys(plan: SweepPlan, store: ResultStore) -> set[str]:
    """The landed trials of ``plan``, and the rows its sweep wrote outside it (points of its searches)."""
    import pyarrow.compute as pc

    rows = store.read_trials(columns=["trial_key", "sweep"])
    mine = rows.filter(pc.equal(rows.column("sweep"), plan.spec.name)).column("trial_key").to_pylist()
    return ({t.key() for t in plan.trials} & set(rows.column("trial_key").to_pylist())) | set(mine)


def _run_pending(
    plan: SweepPlan,
    store: ResultStore,
    runtime: Runtime,
    address: str | None,
    stream: TextIO | None,
    tracker: MlflowTracker | None,
) -> SweepOutcome:
    started = time.perf_counter()
    if not plan.pending and not plan.spec.searches:
        return SweepOutcome(0, 0)
    store.check_writable()  # before anything starts: an unwritable store is one line, not a Ray traceback
    _check_folder_writable(
        store.tune_dir(),
        "the results store could not be written"
        if not store.remote
        else "Tune's experiment state could not be written",
    )
    # Quarantine what readers of the store's folders would fail on (planning has read trials/ and
    # failures/ already, which quarantines their unreadable files; nothing else of roft reads epochs/).
    store.check_tables(["trials", "failures"], contents=False)
    store.check_tables(SIDE_TABLES, contents=not store.remote)
    path = sweep_log_path(plan.spec.name)
    with store.sweep_lock(), ray_log(path):  # `roft store compact` waits for no sweep
        outcome = _run_sweep(plan, store, runtime, address, stream, path, tracker)
    outcome.wall_seconds = time.perf_counter() - started
    if not outcome.failed:  # nothing to look up: no log file left behind (one is kept when the sweep raised)
        path.unlink(missing_ok=True)
    outcome.log_path = path if path.exists() else None
    if outcome.log_path is not None:
        print(
            f"[{plan.spec.name}] Ray's log of this sweep, with the full tracebacks: {outcome.log_path}",
            file=stream or sys.stderr,
            flush=True,
        )
    return outcome


class ResourcesError(ValueError):
    """A trial asks for more than the Ray it would run on can ever hold."""


def check_device_resources(device: str, resources: Resources) -> None:
    """:class:`ResourcesError` for ``--device cuda`` with trials that ask for no GPU: Ray hides every GPU from
    such a trial (``CUDA_VISIBLE_DEVICES`` empty), so each would fail at its first step on the device."""
    if device == "cuda" and resources.gpu == 0:
        raise ResourcesError(
            "--device cuda, but the trials ask for no GPU (resources.gpu: 0; roft alpha: --gpus 0), and Ray hides "
            "every GPU from such a trial; nothing was run. Accepted: resources.gpu above 0 (roft alpha: --gpus), "
            "or --device auto or cpu"
        )


def check_resources_fit(resources: Resources, address: str | None) -> None:
    """:class:`ResourcesError` when a trial asks for more CPUs or GPUs than a private local Ray has.

    Such a Ray never grows, so Tune would keep the trials pending for ever with nothing said (a GPU spec
    on a machine without one). On a cluster (``address`` or ``$RAY_ADDRESS``) the request stands: an
    autoscaler may add the nodes it needs.
    """
    if address or os.environ.get("RAY_ADDRESS"):
        return
    import ray

    have = ray.cluster_resources()
    for field_name, kind in (("cpu", "CPU"), ("gpu", "GPU")):
        wanted, there = getattr(resources, field_name), have.get(kind, 0.0)
        if wanted > there:
            raise ResourcesError(
                f"resources.{field_name}: {wanted:g} {kind}s per trial, but this machine's Ray has {there:g}, so no "
                f"trial could start; nothing was run. Accepted here: at most {there:g} (the spec's resources, or "
                "roft alpha's --cpus; trial keys do not depend on them), or a cluster that has them (--address)"
            )


def _check_folder_writable(folder: Path, problem: str) -> None:
    """:class:`StoreError` saying ``problem`` unless a file can be created in ``folder`` (made if missing),
    where Tune keeps its experiment state."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise StoreError(
            f"{problem}: cannot create a file for Tune's experiment state in {folder} ({exc}); "
            "nothing was run. Fix the permissions or free space, then rerun the same command"
        ) from exc


def _run_sweep(
    plan: SweepPlan,
    store: ResultStore,
    runtime: Runtime,
    address: str | None,
    stream: TextIO | None,
    log_path: Path | None = None,
    tracker: MlflowTracker | None = None,
) -> SweepOutcome:
    pending = plan.pending
    spec = plan.spec
    check_device_resources(runtime.device, spec.resources)
    _save_spec(plan, store)
    _prefeaturize(plan, runtime)
    init_ray(address, env=store.worker_env())
    check_resources_fit(spec.resources, address)
    reporter = ProgressReporter(len(pending), spec.name, stream)
    callbacks: tuple = ()
    if tracker is not None:
        from orchestrator.sweep.tracking import tune_callback as tracking_callback

        callbacks = (tracking_callback(tracker, store),)
    errors: dict[str, str] = {}
    for wave in plan.waves():
        landed = store.done_keys()
        runnable = []
        for trial in wave:
            parent = parent_spec(trial)
            if parent is not None and parent.key() not in landed:
                errors[trial.key()] = (
                    f"not run: its {parent.method} parent trial {parent.key()} did not land "
                    f"({errors.get(parent.key(), 'see the failures above')})"
                )
                reporter.update(reporter.running, finished_failed=1)
            else:
                runnable.append(trial)
        if runnable:
            units = plan_units(runnable, spec.execution.fuse, spec.execution.fuse_max, runtime.data_root)
            errors.update(
                run_trials(
                    [unit.to_config() for unit in units],
                    runtime,
                    _trainable(),
                    name=spec.name,
                    resources={"cpu": spec.resources.cpu, "gpu": spec.resources.gpu},
                    chunk_size=spec.execution.chunk_size,
                    max_failures=spec.execution.max_failures,
                    max_concurrent=spec.execution.max_concurrent,
                    tune_root=store.tune_dir(),
                    reporter=reporter,
                    log_path=log_path,
                    callbacks=callbacks,
                )
            )
    landed = store.done_keys()
    failed = {
        t.key(): errors.get(t.key(), "finished without committing a row to the store")
        for t in pending
        if t.key() not in landed
    }
    recorded = store.failed_keys()
    _record_failures(store, runtime, [t for t in pending if t.key() in failed], failed)
    for trial in pending:
        if trial.key() in landed and trial.key() in recorded:
            store.clear_failure(trial.key())
    succeeded = len(pending) - len(failed)
    searches = None
    if spec.searches:
        from orchestrator.sweep.searches import run_searches

        searches = run_searches(spec, runtime)
        failed.update({f"search {name}": error for name, error in searches.failed.items()})
    return SweepOutcome(len(pending), succeeded, failed, searches=searches)


_EXCEPTION_LINE = re.compile(r"^[\w.]*(Error|Exception)\b.*")
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def error_line(report: str) -> str:
    """The line of a (possibly remote, multi-line) error report that names the exception, else its last line."""
    lines = [line.strip() for line in report.splitlines() if line.strip()]
    named = [line for line in lines if _EXCEPTION_LINE.match(line)]
    return named[-1] if named else (lines[-1] if lines else report)


def _record_failures(store: ResultStore, runtime: Runtime, trials: list, errors: dict[str, str]) -> None:
    """One failures/ row per trial that did not land: the exception's line and the whole report."""
    from datetime import datetime, timezone

    for trial in trials:
        report = _ANSI_ESCAPE.sub("", errors[trial.key()])  # Ray colours its remote reports
        store.write_failure(
            {
                "trial_key": trial.key(),
                "sweep": runtime.sweep,
                "method": trial.method,
                "trial_config": trial.canonical_json(),
                "error": error_line(report),
                "traceback": report,
                "failed_at": datetime.now(timezone.utc),
            }
        )


def _save_spec(plan: SweepPlan, store: ResultStore) -> None:
    """Keep the spec file with the results (``specs/<sweep>.yaml``), for reports' provenance."""
    source = Path(plan.spec.source)
    if source.is_file():
        store.write_spec(plan.spec.name, source.read_bytes())


def _trainable() -> Callable[[dict], None]:
    """The worker's trainable with the store opener bound (``trainables`` never imports the store)."""
    from ray import tune

    from trainables.worker.trial import tune_trainable

    return tune.with_parameters(tune_trainable, open_store=ResultStore)


def _prefeaturize(plan: SweepPlan, runtime: Runtime) -> None:
    """Featurize each task once on the driver, so concurrent trials find the cache ready."""
    from trainables.data.dataset import load_graphs
    from trainables.data.tasks import TASKS

    for task in sorted({t.task for t in plan.pending}):
        spec = TASKS.get(task)
        load_graphs(spec.file, spec.smiles_column, runtime.data_root, spec.scaffold_source)
