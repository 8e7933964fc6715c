"""``roft sweep`` (plan, dedup against the store, run on Ray Tune, print the table) and ``roft alpha``
(Optuna searches of WiSE-FT / RoFt-Mol alphas over stored Full-FT checkpoints)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from orchestrator.cli.arguments import MAX_SEED, integer, number, selection
from orchestrator.cli.common import (
    OPTUNA_STORAGE_HELP,
    STORE_ENV,
    add_data_root,
    add_store,
    data_root,
    existing_store,
    open_store,
)
from orchestrator.wording import plural
from trainables.core.paths import user_path

DEVICE_HELP = "where trials train: auto (cuda where available, else cpu), cpu or cuda (default auto)"

# What roft says when Ctrl-C stops a command that lands trials as it goes (orchestrator.cli._run).
RESUMABLE = "finished trials are in the store, rerun the same command to resume"


def register(sub) -> None:
    _register_sweep(sub)
    _register_alpha(sub)


def _register_sweep(sub) -> None:
    sweep = sub.add_parser("sweep", help="run a sweep spec")
    sweep.add_argument("spec", help="YAML sweep spec (a path, or the name of a bundled spec such as mini.yaml)")
    add_store(sweep)
    sweep.add_argument(
        "--address",
        default=None,
        help="Ray cluster address, or auto (default: $RAY_ADDRESS, as set inside `ray job submit`, "
        "else start a local Ray)",
    )
    add_sweep_options(sweep)
    add_data_root(sweep)
    sweep.set_defaults(handler=run_sweep_spec, on_interrupt=RESUMABLE)


def add_sweep_options(parser) -> None:
    """The options of a sweep's run, which ``roft submit`` passes on to the job's ``roft sweep``
    (:func:`sweep_option_argv`)."""
    parser.add_argument(
        "--dry-run", action="store_true", help="print the plan, missing files and an estimate of GPU-hours; run nothing"
    )
    parser.add_argument(
        "--only",
        type=selection,
        action="append",
        default=None,
        metavar="AXIS=VALUE[,VALUE]",
        help="run a slice of the spec: only these values of an axis (backbone, method, task, split, "
        "label_setting, seed); repeat for more axes, e.g. --only task=bbbp --only seed=0,1. The store keeps "
        "the whole spec, so roft status counts what is left of the whole grid",
    )
    parser.add_argument(
        "--trials-per-gpu-hour",
        type=number(0.0, 1e9, above=True),
        default=None,
        metavar="N",
        help="for the GPU-hour estimate: fused 100-epoch BBBP-sized trials per GPU-hour "
        "(default: 2064, measured on one H100)",
    )
    parser.add_argument(
        "--unfused-trials-per-gpu-hour",
        type=number(0.0, 1e9, above=True),
        default=None,
        metavar="N",
        help="for the GPU-hour estimate: unfused trials per GPU-hour (default: 46, measured on one H100)",
    )
    parser.add_argument(
        "--method-rates",
        default=None,
        metavar="FILE",
        help="for the GPU-hour estimate: each method's cost relative to Full FT's, a file written by "
        "`roft bench methods --out FILE` (default: the bundled CPU measurement; none: assume "
        "every method costs what Full FT costs per molecule pass)",
    )
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help=DEVICE_HELP)
    parser.add_argument("--optuna-storage", default=None, help=OPTUNA_STORAGE_HELP)
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="also run the trials that failed in earlier runs (recorded in the store's failures/)",
    )
    parser.add_argument(
        "--tracker",
        default=None,
        metavar="mlflow[=URI]",
        help="also log each landed trial as an MLflow run, nested under one run per sweep, at the "
        "tracking URI (default: $MLFLOW_TRACKING_URI, else MLflow's default); overrides the "
        "spec's execution.tracker; needs pip install 'roft[mlflow]'",
    )


def sweep_option_argv(args) -> list[str]:
    """The options of :func:`add_sweep_options` that ``args`` sets, as ``roft sweep`` arguments
    (a journal path of ``--optuna-storage`` made absolute: the job runs in another folder)."""
    import argparse

    parser = argparse.ArgumentParser(add_help=False)
    add_sweep_options(parser)
    argv = []
    for action in parser._actions:
        value = getattr(args, action.dest, action.default)
        if value == action.default:
            continue
        if (action.dest == "optuna_storage" and "://" not in value) or (
            action.dest == "method_rates" and value != "none"
        ):
            value = str(user_path(value, "--" + action.dest.replace("_", "-")).absolute())
        if action.dest == "only":  # appended (axis, values) selections: one --only each
            for axis, values in value:
                argv += [action.option_strings[0], f"{axis}={','.join(values)}"]
            continue
        argv += [action.option_strings[0]] if action.nargs == 0 else [action.option_strings[0], str(value)]
    return argv


def _register_alpha(sub) -> None:
    alpha = sub.add_parser(
        "alpha", help="Optuna search of WiSE-FT / RoFt-Mol alphas over the store's Full-FT checkpoints"
    )
    add_store(alpha)
    alpha.add_argument("--method", nargs="+", default=["wise-ft", "roft-mol"], help="wise-ft and/or roft-mol")
    alpha.add_argument(
        "--groups", type=integer(1, 1_000), nargs="+", default=[1, 2, 3, 6], help="RoFt-Mol alpha groups"
    )
    alpha.add_argument(
        "--n-trials", type=integer(1, 100_000), default=100, help="points per study (raising it continues studies)"
    )
    alpha.add_argument("--search-seed", type=integer(0, MAX_SEED), default=0, help="TPE sampler seed")
    alpha.add_argument(
        "--alpha-range",
        type=number(-1_000.0, 1_000.0),
        nargs=2,
        default=[0.0, 1.0],
        metavar=("LOW", "HIGH"),
        help="range every alpha is searched in (default 0 1)",
    )
    for column in ("backbone", "task", "split", "label-setting"):
        alpha.add_argument(f"--{column}", nargs="+", default=None, help=f"only Full-FT trials with this {column}")
    alpha.add_argument(
        "--seed", type=integer(0, MAX_SEED), nargs="+", default=None, help="only Full-FT trials with this run seed"
    )
    alpha.add_argument("--optuna-storage", default=None, help=OPTUNA_STORAGE_HELP)
    alpha.add_argument(
        "--address", default=None, help="Ray cluster address, or auto (default: $RAY_ADDRESS, else start a local Ray)"
    )
    alpha.add_argument("--cpus", type=number(0.0, 1_024.0, above=True), default=1.0, help="CPUs per search trial")
    alpha.add_argument(
        "--gpus",
        type=number(0.0, 64.0),
        default=0.0,
        help="GPUs per search trial, fractions sharing one (default 0: on CPU; --device cuda needs some)",
    )
    alpha.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help=DEVICE_HELP)
    alpha.add_argument("--dry-run", action="store_true", help="print the plan; run nothing")
    add_data_root(alpha)
    alpha.set_defaults(handler=run_alpha_searches, on_interrupt=RESUMABLE)


def run_sweep_spec(args) -> int:
    from orchestrator.sweep.estimate import estimate_gpu_hours
    from orchestrator.sweep.plan import plan_sweep
    from orchestrator.sweep.tracking import TrackerSetting
    from orchestrator.version import code_version
    from search_spaces import load_spec
    from search_spaces.slices import describe as describe_slice
    from search_spaces.slices import narrow
    from trainables.core.config import Runtime

    whole = load_spec(args.spec)
    spec = narrow(whole, args.only or ())  # a slice's source stays the spec file: the store keeps the whole spec
    tracking = args.tracker or spec.execution.tracker
    setting = None if tracking is None else TrackerSetting.parse(tracking)  # a bad value: one line, before anything
    rates = _estimate_rates(args) if args.dry_run else None  # a bad rates file fails before the planning
    root = data_root(args)
    store = open_store(args.store)
    print(f"data root: {root}", file=sys.stderr)
    print(f"store: {store.location}", file=sys.stderr)
    if not store.remote and not user_path(args.store, "store").is_absolute() and (args.address or _ray_address()):
        print(
            f"roft: warning: the store {args.store!r} is relative to this process's working directory "
            f"({Path.cwd()}); on a cluster (or in a Ray job, whose working directory is temporary) put it on "
            f"storage every node reaches: --store /shared/path, s3://..., or ${STORE_ENV}",
            file=sys.stderr,
        )
    plan = plan_sweep(spec, store, root, retry_failed=args.retry_failed)
    print(plan.summary(), file=sys.stderr)
    if args.only:
        print(f"  {describe_slice(whole, args.only)}", file=sys.stderr)
    if args.dry_run:
        print(estimate_gpu_hours(plan, *(rates or ())).summary(), file=sys.stderr)
        return 1 if plan.missing_files else 0
    if plan.missing_files:
        print("roft: error: files are missing (listed above); nothing was run", file=sys.stderr)
        return 2
    runtime = Runtime(
        store=store.uri,
        sweep=spec.name,
        data_root=root,
        threads=max(1, int(spec.resources.cpu)),
        device=args.device,
        code_version=code_version(),
        artifacts=spec.execution.artifacts,
        optuna_storage=optuna_storage(args.optuna_storage),
        engine=spec.execution.engine,
    )
    tracker = None
    if setting is not None:
        from orchestrator.sweep.tracking import open_tracker

        tracker = open_tracker(setting, spec.name)  # the server must answer before anything runs
        print(
            f"tracking: MLflow at {tracker.uri}, experiment {tracker.experiment!r}, parent run "
            f"{tracker.parent_run_id} of sweep {spec.name!r} ({len(tracker.logged)} trial runs there already)",
            file=sys.stderr,
        )
    return run_and_report(plan, store, runtime, args.address, tracker)


def run_alpha_searches(args) -> int:
    from orchestrator.sweep.alpha import ALPHA_SWEEP, AlphaRequest, plan_alpha_request, save_alpha_request
    from orchestrator.version import code_version
    from trainables.core.config import Runtime

    store = existing_store(args.store)
    filters = {
        "backbone": args.backbone,
        "task": args.task,
        "split": args.split,
        "label_setting": args.label_setting,
        "seed": args.seed,
    }
    request = AlphaRequest(
        methods=tuple(args.method),
        groups=tuple(args.groups),
        n_trials=args.n_trials,
        search_seed=args.search_seed,
        alpha_range=tuple(args.alpha_range),
        filters={k: tuple(v) for k, v in filters.items() if v},
        cpus=args.cpus,
        gpus=args.gpus,
    )
    plan = plan_alpha_request(store, request)
    print(plan.summary(), file=sys.stderr)
    if not plan.trials:
        print("roft: no Full-FT trial with a kept checkpoint matches; run a sweep with full-ft first", file=sys.stderr)
        return 1
    if args.dry_run:
        return 0
    save_alpha_request(store, request)  # roft status plans it again from the store
    runtime = Runtime(
        store=store.uri,
        sweep=ALPHA_SWEEP,
        data_root=data_root(args),
        threads=max(1, int(args.cpus)),
        device=args.device,
        code_version=code_version(),
        optuna_storage=optuna_storage(args.optuna_storage),
    )
    return run_and_report(plan, store, runtime, args.address)


def run_and_report(plan, store, runtime, address: str | None, tracker=None) -> int:
    """Run a plan on Ray Tune, then print what landed, the best searched points, the table, what the
    tracker logged and the failures (exit 1 when a trial failed or a landed trial could not be logged)."""
    from orchestrator.analysis.summary import store_table
    from orchestrator.sweep.execute import error_line, run_sweep

    outcome = run_sweep(plan, store, runtime, address=address, tracker=tracker)
    print(
        f"ran {plural(outcome.submitted, 'trial')} in {outcome.wall_seconds:.1f} s: {outcome.succeeded} landed, "
        f"{len(outcome.failed)} failed",
        file=sys.stderr,
    )
    if outcome.searches is not None:
        print(f"hyper-parameter searches: {outcome.searches.points} points scored", file=sys.stderr)
        for best in outcome.searches.best:
            print(
                f"  best {best['method']} on {best['backbone']} / {best['task']} / {best['split']} / "
                f"{best['label_setting']}: {best['point']} (seed-mean val {best['objective']:.4f})",
                file=sys.stderr,
            )
    print(store_table(store))
    if tracker is not None:
        print(tracker.summary(), file=sys.stderr)
    if outcome.failed:
        print(
            "failed trials (tracebacks in the store's failures/ table; roft sweep --retry-failed runs them again):",
            file=sys.stderr,
        )
        for key, error in outcome.failed.items():
            print(f"  {key}: {error_line(error)}", file=sys.stderr)
        return 1
    return 1 if tracker is not None and tracker.errors else 0


def optuna_storage(location: str | None) -> str | None:
    """``--optuna-storage``: journal paths made absolute (trials run in other working directories); URLs unchanged."""
    if location is None or "://" in location:
        return location
    path = user_path(location, "--optuna-storage").resolve()
    if not path.parent.is_dir():
        raise FileNotFoundError(f"--optuna-storage {location!r}: folder {path.parent} does not exist")
    return str(path)


def _ray_address() -> str | None:
    return os.environ.get("RAY_ADDRESS") or None


def _estimate_rates(args) -> tuple:
    """The GPU-hour estimate's rates: (Full-FT trials per GPU-hour, the per-method rates file or None)."""
    from orchestrator.sweep.estimate import TrialRates
    from orchestrator.sweep.rates import MethodRates

    defaults = TrialRates()
    throughput = TrialRates(
        fused=defaults.fused if args.trials_per_gpu_hour is None else args.trials_per_gpu_hour,
        unfused=defaults.unfused if args.unfused_trials_per_gpu_hour is None else args.unfused_trials_per_gpu_hour,
    )
    return throughput, None if args.method_rates == "none" else MethodRates.load(args.method_rates)
