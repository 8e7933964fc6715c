"""The ``roft`` command line: a thin layer over the library.

    roft data list|verify|featurize     the benchmark's files and featurized caches
    roft backbones list                 pre-trained and scratch backbones
    roft sweep SPEC [--dry-run]         plan, dedup against the store, run on Ray Tune, print the table
    roft pretrain --out DIR             pre-training (attr-mask, contrastive, descriptors; GIN..GPS), resumable
                                        (--dry-run: the plan and an estimate of GPU-hours)
    roft table --store DIR              paper tables (selection protocol, formats, best marked)
    roft report --store DIR --out DIR   one HTML page: tables, significance, figures, provenance
    roft store compact --store DIR      merge per-trial files (refuses while a sweep holds the store)
    roft store list --store DIR [--where C=V]  one line per trial (key, cell, seed, metrics); --keys: keys only
    roft store forget KEY... --store DIR  remove trials (rows, epochs, checkpoint), so a sweep runs them again
    roft store clean --store DIR        remove temporaries of interrupted writes and Tune state of killed sweeps
    roft bench orchestrator             Ray Tune per-trial overhead with a no-op trial
    roft bench methods                  wall time of every method relative to Full FT
    roft bench alpha                    cost of an Optuna alpha search relative to Full FT
    roft bench throughput               trials per hour: reference loop vs roft unfused vs roft fused
    roft bench plan [--spec S]          planning a large grid and diffing it against a full store
    roft alpha                          Optuna searches of WiSE-FT / RoFt-Mol alphas over stored FT checkpoints
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

DEFAULT_STORE = "results"
STORE_ENV = "ROFT_STORE"  # the store's default location (cluster images set it to shared storage)
STORE_HELP = (f"results store: a folder, or s3://bucket/prefix[?endpoint_override=HOST:PORT&scheme=http] with "
              f"credentials in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (default: ${STORE_ENV}, else ./{DEFAULT_STORE})")
OPTUNA_STORAGE_HELP = ("where alpha-search studies live: a JournalStorage file path (safe on a shared filesystem; "
                       "optuna-dashboard opens it) or an RDB URL such as sqlite:///studies.db (default: in memory, "
                       "continued from the store's alpha_trials table)")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", default=None, metavar="DIR",
                        help="folder laid out like shared/data (default: $ROFT_DATA, else download into the cache)")


def _store_option(parser: argparse.ArgumentParser) -> None:
    """``--store``, defaulting to ``$ROFT_STORE`` (set by the cluster images), else ``./results``."""
    parser.add_argument("--store", default=os.environ.get(STORE_ENV) or DEFAULT_STORE, help=STORE_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="roft", description="Robust fine-tuning benchmark sweeps for molecular GNNs.")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="benchmark files and featurized caches")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    for name, text in (("list", "tasks with rows, RDKit-valid rows, label columns, cache state"),
                       ("verify", "check every file's sha256 against the registry")):
        _common(data_sub.add_parser(name, help=text))
    featurize = data_sub.add_parser("featurize", help="build featurized caches (and time them)")
    featurize.add_argument("tasks", nargs="*", help="task names (default: all)")
    _common(featurize)

    backbones = sub.add_parser("backbones", help="backbone registry")
    backbones_sub = backbones.add_subparsers(dest="backbones_command", required=True)
    _common(backbones_sub.add_parser("list", help="name, architecture, pre-training, file availability"))

    sweep = sub.add_parser("sweep", help="run a sweep spec")
    sweep.add_argument("spec", help="YAML sweep spec (a path, or the name of a bundled spec such as mini.yaml)")
    _store_option(sweep)
    sweep.add_argument("--address", default=None,
                       help="Ray cluster address, or auto (default: $RAY_ADDRESS, as set inside `ray job submit`, "
                            "else start a local Ray)")
    sweep.add_argument("--dry-run", action="store_true",
                       help="print the plan, missing files and an estimate of GPU-hours; run nothing")
    sweep.add_argument("--trials-per-gpu-hour", type=float, default=None, metavar="N",
                       help="for the GPU-hour estimate: fused 100-epoch BBBP-sized trials per GPU-hour "
                            "(default: 2064, measured on one H100)")
    sweep.add_argument("--unfused-trials-per-gpu-hour", type=float, default=None, metavar="N",
                       help="for the GPU-hour estimate: unfused trials per GPU-hour (default: 46, measured on one H100)")
    sweep.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    sweep.add_argument("--optuna-storage", default=None, help=OPTUNA_STORAGE_HELP)
    sweep.add_argument("--retry-failed", action="store_true",
                       help="also run the trials that failed in earlier runs (recorded in the store's failures/)")
    _common(sweep)

    pre = sub.add_parser("pretrain", help="pre-train a backbone encoder (Hu GNN or GPS) on a molecule corpus")
    pre.add_argument("--objective", default="attr-mask", choices=("attr-mask", "contrastive", "descriptors"),
                     help="attr-mask (masked atom types), contrastive (GraphCL) or descriptors (supervised: 16 RDKit "
                          "descriptors); default attr-mask")
    pre.add_argument("--arch", default="gin", choices=("gin", "gcn", "graphsage", "gat", "gps"), help="default gin")
    pre.add_argument("--corpus", default=None,
                     help="CSV with a smiles column (default: the data root's pretrain/zinc250k.csv.gz, sha256-checked)")
    pre.add_argument("--out", required=True, help="folder for model.pth, model.json (metadata) and state.pt (resume)")
    pre.add_argument("--epochs", type=int, default=1)
    pre.add_argument("--limit", type=int, default=None, help="only the corpus's first N molecules")
    pre.add_argument("--batch-size", type=int, default=256)
    pre.add_argument("--layers", type=int, default=None, help="default 5 (GPS 16)")
    pre.add_argument("--width", type=int, default=None, help="default 300 (GPS 256)")
    pre.add_argument("--heads", type=int, default=8, help="GPS attention heads (default 8)")
    pre.add_argument("--lr", type=float, default=1e-3)
    pre.add_argument("--mask-rate", type=float, default=0.15, help="attr-mask: fraction of atoms masked")
    pre.add_argument("--augmentations", default="node-drop,edge-perturb,attr-mask,subgraph",
                     help="contrastive: comma-separated views to draw from (default all four)")
    pre.add_argument("--aug-rate", type=float, default=0.2, help="contrastive: strength of each augmentation")
    pre.add_argument("--temperature", type=float, default=0.1, help="contrastive: NT-Xent temperature")
    pre.add_argument("--seed", type=int, default=0)
    pre.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default cpu)")
    pre.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    pre.add_argument("--resume", action="store_true", help="continue the pre-training saved in --out")
    pre.add_argument("--install", action="store_true",
                     help="then install the checkpoint as backbone roft-<arch>-<objective> (in the cache) for sweeps")
    _common(pre)

    alpha = sub.add_parser("alpha", help="Optuna search of WiSE-FT / RoFt-Mol alphas over the store's Full-FT checkpoints")
    _store_option(alpha)
    alpha.add_argument("--method", nargs="+", default=["wise-ft", "roft-mol"], help="wise-ft and/or roft-mol")
    alpha.add_argument("--groups", type=int, nargs="+", default=[1, 2, 3, 6], help="RoFt-Mol alpha groups")
    alpha.add_argument("--n-trials", type=int, default=100, help="points per study (raising it continues studies)")
    alpha.add_argument("--search-seed", type=int, default=0, help="TPE sampler seed")
    alpha.add_argument("--alpha-range", type=float, nargs=2, default=[0.0, 1.0], metavar=("LOW", "HIGH"))
    for column in ("backbone", "task", "split", "label-setting"):
        alpha.add_argument(f"--{column}", nargs="+", default=None, help=f"only Full-FT trials with this {column}")
    alpha.add_argument("--seed", type=int, nargs="+", default=None, help="only Full-FT trials with this run seed")
    alpha.add_argument("--optuna-storage", default=None, help=OPTUNA_STORAGE_HELP)
    alpha.add_argument("--address", default=None,
                       help="Ray cluster address, or auto (default: $RAY_ADDRESS, else start a local Ray)")
    alpha.add_argument("--cpus", type=float, default=1.0, help="CPUs per search trial")
    alpha.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    alpha.add_argument("--dry-run", action="store_true", help="print the plan; run nothing")
    _common(alpha)

    table = sub.add_parser("table", help="paper tables: per-cell hyper-parameter selection, mean +- std over seeds")
    _store_option(table)
    table.add_argument("--where", action="append", default=[], metavar="COLUMN=V[,V...]",
                       help="keep rows whose COLUMN is one of the values (repeatable), e.g. --where backbone=hu-gcn-contextpred")
    table.add_argument("--rows", default="method", help="comma-separated row dimensions (default: method)")
    table.add_argument("--cols", default="task", help="comma-separated column dimensions (default: task)")
    table.add_argument("--select", default="val", choices=["val", "test"],
                       help="pick each cell's hyper-parameters by seed-mean val (default) or test (optimistic)")
    table.add_argument("--ddof", type=int, default=0, choices=[0, 1], help="degrees of freedom of the std (default 0)")
    table.add_argument("--format", default="markdown", choices=["markdown", "latex", "csv", "html"])
    table.add_argument("--all-points", action="store_true",
                       help="every grid point as its own row (no selection), as the sweep prints")

    report = sub.add_parser("report", help="one static HTML page: tables, significance, figures, provenance")
    _store_option(report)
    report.add_argument("--out", required=True, help="folder for index.html, figures/ and selected.csv")
    report.add_argument("--where", action="append", default=[], metavar="COLUMN=V[,V...]")
    report.add_argument("--select", default="val", choices=["val", "test"])
    report.add_argument("--ddof", type=int, default=0, choices=[0, 1])
    report.add_argument("--test", default="ttest", choices=["ttest", "wilcoxon"],
                        help="paired test against Full FT (default: paired t-test)")

    store_parser = sub.add_parser("store", help="maintenance of a results store")
    store_sub = store_parser.add_subparsers(dest="store_command", required=True)
    compact = store_sub.add_parser("compact", help="merge the per-trial files into large ones (refuses during a sweep)")
    _store_option(compact)
    compact.add_argument("--unlocked", action="store_true",
                         help="object storage has no lock: compact an s3:// store only after every sweep on it stopped")
    listing = store_sub.add_parser("list", help="one line per trial: key, cell, seed, metrics, engine")
    _store_option(listing)
    listing.add_argument("--where", action="append", default=[], metavar="COLUMN=V[,V...]",
                         help="keep rows whose COLUMN is one of the values (repeatable), e.g. --where method=wise-ft")
    listing.add_argument("--keys", action="store_true",
                         help="trial keys only, one per line (for `roft store forget`)")
    forget = store_sub.add_parser("forget", help="remove trials (row, epochs, alpha points, checkpoint, failure "
                                                 "record) so that the next sweep runs them again")
    forget.add_argument("keys", nargs="+", metavar="KEY", help="trial keys (the trial_key column, 24 hex digits)")
    _store_option(forget)
    forget.add_argument("--unlocked", action="store_true",
                        help="object storage has no lock: forget on an s3:// store only after every sweep stopped")
    clean = store_sub.add_parser("clean", help="remove temporaries of interrupted writes and Tune state of killed "
                                               "sweeps (refuses during a sweep)")
    _store_option(clean)
    clean.add_argument("--older-than", default="1h", metavar="AGE",
                       help="temporaries at least this old (s, m, h, d; default 1h: a write in flight elsewhere "
                            "is never touched)")
    clean.add_argument("--dry-run", action="store_true", help="list what would be removed; remove nothing")
    clean.add_argument("--unlocked", action="store_true",
                       help="object storage has no lock: clean an s3:// store only after every sweep stopped")

    bench = sub.add_parser("bench", help="benchmarks that print figures")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    orch = bench_sub.add_parser("orchestrator", help="per-trial overhead of the Ray Tune path with no-op trials")
    orch.add_argument("--trials", type=int, nargs="+", default=[200, 1000])
    orch.add_argument("--cpus", type=int, default=None, help="CPUs for the local Ray (default: all)")
    plan_bench = bench_sub.add_parser("plan", help="plan a large grid, then diff it against a store holding it")
    plan_bench.add_argument("--spec", default="paper.yaml", help="spec to plan (default: the paper grid)")
    plan_bench.add_argument("--seeds", type=int, default=None, help="plan with seeds 0..N-1 instead of the spec's")
    _common(plan_bench)
    methods = _trial_bench(bench_sub, "methods", "wall time of one trial of every method relative to Full FT",
                           "fewshot:100")
    methods.add_argument("--epochs", type=int, default=10, help="Full-FT epochs (default 10)")
    methods.add_argument("--repeats", type=int, default=2, help="trials per method; the minimum is reported")
    alpha_bench = _trial_bench(bench_sub, "alpha", "cost of an Optuna alpha search relative to one Full-FT trial",
                               "full")
    alpha_bench.add_argument("--ft-epochs", type=int, default=5, help="Full-FT epochs actually run (default 5)")
    alpha_bench.add_argument("--n-trials", type=int, default=100, help="points per search (default 100)")
    report_bench = bench_sub.add_parser("report", help="time tables and the HTML report on a synthetic store")
    report_bench.add_argument("--rows", type=int, default=100_000, help="synthetic trial rows (default 100000)")
    throughput = bench_sub.add_parser("throughput", help="trials per hour: reference loop, roft unfused, roft fused")
    throughput.add_argument("--device", default="auto", help="auto | cpu | cuda (default: cuda where available)")
    throughput.add_argument("--fused", type=int, nargs="*", default=[8, 32, 64, 128],
                            help="fused group sizes K to measure (default: 8 32 64 128)")
    throughput.add_argument("--gnn", default="gin", help="gin | gcn | graphsage | gat (default gin)")
    throughput.add_argument("--layers", type=int, default=5)
    throughput.add_argument("--width", type=int, default=300)
    throughput.add_argument("--epochs", type=int, default=2, help="timed epochs per engine (default 2)")
    throughput.add_argument("--molecules", type=int, default=2039,
                            help="synthetic molecules (default 2039, BBBP's size)")
    throughput.add_argument("--task", default=None, help="a registered task instead of synthetic molecules")
    throughput.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    throughput.add_argument("--tf32", action="store_true", help="allow TF32 matrix products on the GPU")
    throughput.add_argument("--no-reference", action="store_true", help="skip the PyG reference loop")
    throughput.add_argument("--compile", action="store_true",
                            help="fused engine: torch.compile the training-mode BatchNorm + ReLU + dropout")
    throughput.add_argument("--group-dropout", action="store_true",
                            help="fused engine: one dropout generator per group instead of one per trial")
    throughput.add_argument("--bf16", action="store_true", help="fused engine: bfloat16 autocast")
    throughput.add_argument("--variant", action="append", default=None, metavar="OPTIONS",
                            help="measure the fused engine under several option sets, e.g. --variant plain "
                                 "--variant compile,group-dropout,bf16 (options: "
                                 f"{', '.join(FUSED_VARIANT_OPTIONS)}; 'plain' for none); overrides the flags")
    throughput.add_argument("--no-unfused", action="store_true", help="skip roft's unfused engine")
    throughput.add_argument("--profile", action="store_true",
                            help="also print a torch.profiler table of one fused epoch at the largest K")
    _common(throughput)
    return parser


def _trial_bench(bench_sub, name: str, text: str, label_setting: str) -> argparse.ArgumentParser:
    """A benchmark that runs real trials in-process on one backbone and task."""
    parser = bench_sub.add_parser(name, help=text)
    parser.add_argument("--backbone", default="hu-gcn-supervised-contextpred")
    parser.add_argument("--task", default="bbbp")
    parser.add_argument("--label-setting", default=label_setting)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as a sweep trial)")
    _common(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"data": _data, "backbones": _backbones, "sweep": _sweep, "pretrain": _pretrain, "alpha": _alpha, "table": _table,
               "report": _report, "store": _store, "bench": _bench}[args.command]
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("interrupted; finished trials are in the store, rerun the same command to resume", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as exc:
        print(f"roft: error: {exc}", file=sys.stderr)
        return 2


def _data_root(args) -> str | None:
    from trainables.data.sources import data_root
    root = data_root(args.data_root)
    return None if root is None else str(root)


def _print_rows(header: list[str], rows: list[list[object]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())


def _data(args) -> int:
    from trainables.data import sources
    from trainables.data.dataset import checked_sha256, featurized_cache_path, is_cached, load_graphs, read_table
    from trainables.data.tasks import TASKS

    root = _data_root(args)
    if args.data_command == "verify":
        bad = 0
        for relpath, spec in sources.FILES.items():
            try:
                path = sources.resolve(relpath, root, download=False)
                actual = sources.sha256_of(path)
                status = "ok" if actual in (spec.sha256, spec.served_sha256) else f"MISMATCH (got {actual})"
            except sources.DataUnavailableError:
                status = "missing"
            bad += status != "ok"
            print(f"{status:<10} {relpath}")
        print(f"{len(sources.FILES) - bad}/{len(sources.FILES)} files verified", file=sys.stderr)
        return 1 if bad else 0
    if args.data_command == "featurize":
        names = args.tasks or TASKS.names()
        for name in names:
            task = TASKS.get(name)
            path = sources.resolve(task.file, root)
            cache = featurized_cache_path(checked_sha256(task.file, path))
            cold = not cache.is_file()
            start = time.perf_counter()
            graphs, _ = load_graphs(task.file, task.smiles_column, root)
            seconds = time.perf_counter() - start
            n = graphs["stats"]["molecules"]
            rate = f", {n / seconds:,.0f} molecules/s" if cold else ""
            print(f"{name}: {n} molecules, {graphs['stats']['dropped']} dropped, "
                  f"{'featurized' if cold else 'loaded from cache'} in {seconds:.2f} s{rate}")
        return 0
    rows = []
    for name, task in TASKS.items():
        try:
            path = sources.resolve(task.file, root, download=False)
        except sources.DataUnavailableError:
            rows.append([name, task.task_type.value, task.metric, task.file, "missing", "-", "-", "-", "no"])
            continue
        table = read_table(path)
        n_tasks = len(task.resolve_label_columns(list(table.columns)))
        valid = dropped = "-"
        cached = is_cached(task, root)
        if cached:
            graphs, _ = load_graphs(task.file, task.smiles_column, root)
            valid, dropped = len(graphs["scaffolds"]), graphs["stats"]["dropped"]
        rows.append([name + ("" if task.in_paper else " *"), task.task_type.value, task.metric, task.file,
                     len(table), valid, dropped, n_tasks, "yes" if cached else "no"])
    _print_rows(["task", "type", "metric", "file", "rows", "valid", "dropped", "#tasks", "cached"], rows)
    print("* not in the RoFt-Mol paper. 'valid' needs the featurized cache: `roft data featurize`.", file=sys.stderr)
    return 0


def _backbones(args) -> int:
    from trainables.models.backbones import BACKBONES

    root = _data_root(args)
    rows = [[name, b.gnn_type, b.pretraining, "yes" if b.is_available(root) else "no",
             b.data_file or (f"${b.user_file_env}" if b.user_file_env else "(random init)")]
            for name, b in BACKBONES.items()]
    _print_rows(["backbone", "architecture", "pre-training", "available", "file"], rows)
    return 0


def _sweep(args) -> int:
    from orchestrator import code_version
    from orchestrator.store.results import ResultStore
    from orchestrator.sweep.plan import plan_sweep
    from search_spaces import load_spec
    from trainables.core.config import Runtime

    spec = load_spec(args.spec)
    root = _data_root(args)
    store = ResultStore(args.store)
    print(f"data root: {root or '(none: files come from the download cache ' + str(_cache()) + ')'}", file=sys.stderr)
    print(f"store: {store.location}", file=sys.stderr)
    if not store.remote and not Path(args.store).expanduser().is_absolute() and (args.address or _ray_address()):
        print(f"roft: warning: the store {args.store!r} is relative to this process's working directory "
              f"({Path.cwd()}); on a cluster (or in a Ray job, whose working directory is temporary) put it on "
              f"storage every node reaches: --store /shared/path, s3://..., or ${STORE_ENV}", file=sys.stderr)
    plan = plan_sweep(spec, store, root, retry_failed=args.retry_failed)
    print(plan.summary(), file=sys.stderr)
    if args.dry_run:
        print(_gpu_hours(plan, args), file=sys.stderr)
        return 1 if plan.missing_files else 0
    if plan.missing_files:
        print("roft: error: files are missing (listed above); nothing was run", file=sys.stderr)
        return 2
    runtime = Runtime(store=store.uri, sweep=spec.name, data_root=root, threads=max(1, int(spec.resources.cpu)),
                      device=args.device, code_version=code_version(), artifacts=spec.execution.artifacts,
                      optuna_storage=_optuna_storage(args.optuna_storage), tf32=spec.execution.tf32,
                      compile=spec.execution.compile, dropout_streams=spec.execution.dropout_streams,
                      precision=spec.execution.precision, aggregation=spec.execution.aggregation)
    return _run_and_report(plan, store, runtime, args.address)


def _ray_address() -> str | None:
    return os.environ.get("RAY_ADDRESS") or None


def _gpu_hours(plan, args) -> str:
    from orchestrator.sweep.estimate import TrialRates, estimate_gpu_hours

    defaults = TrialRates()
    throughput = TrialRates(fused=defaults.fused if args.trials_per_gpu_hour is None else args.trials_per_gpu_hour,
                            unfused=defaults.unfused if args.unfused_trials_per_gpu_hour is None
                            else args.unfused_trials_per_gpu_hour)
    return estimate_gpu_hours(plan, throughput).summary()


def _pretrain(args) -> int:
    import torch

    from orchestrator import code_version
    from orchestrator.sweep.progress import ProgressLine
    from trainables.data import sources
    from trainables.pretrain import PretrainConfig, pretrain

    if args.threads:
        torch.set_num_threads(args.threads)
    config = PretrainConfig(objective=args.objective, arch=args.arch, num_layers=args.layers, emb_dim=args.width,
                            heads=args.heads, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                            mask_rate=args.mask_rate, aug_rate=args.aug_rate, temperature=args.temperature,
                            augmentations=tuple(a.strip() for a in args.augmentations.split(",") if a.strip()),
                            seed=args.seed, limit=args.limit)
    if args.corpus is None:
        from trainables.data.dataset import checked_sha256
        relpath = "pretrain/zinc250k.csv.gz"
        corpus = sources.resolve(relpath, _data_root(args))
        sha = checked_sha256(relpath, corpus)
    else:
        corpus = Path(args.corpus)
        if not corpus.is_file():
            raise FileNotFoundError(f"--corpus {args.corpus}: no such file")
        sha = sources.sha256_of(corpus)
    started = time.perf_counter()
    progress = ProgressLine(sys.stderr)

    def on_step(epoch: int, step: int, steps_per_epoch: int, loss: float) -> None:
        progress.update(step - (epoch - 1) * steps_per_epoch, steps_per_epoch,
                        f"epoch {epoch}/{config.epochs}  loss {loss:.4f}  {time.perf_counter() - started:,.0f} s")

    print(f"pre-training {config.arch} {config.num_layers}x{config.emb_dim} by {config.objective} on {corpus} "
          f"({'first ' + str(config.limit) if config.limit else 'all'} molecules) into {args.out}", file=sys.stderr)
    result = pretrain(config, corpus, args.out, resume=args.resume, corpus_sha256=sha, code_version=code_version(),
                      on_step=on_step, device=args.device)
    progress.close()
    for epoch, loss in enumerate(result.losses, 1):
        print(f"epoch {epoch}: mean {config.objective} loss {loss:.4f}")
    print(f"{result.steps} steps in {time.perf_counter() - started:,.1f} s; checkpoint {Path(args.out) / 'model.pth'}")
    if args.install:
        from trainables.pretrain import install
        name, path = install(args.out)
        print(f"installed as backbone {name} ({path}); name it under `backbones:` in a sweep spec")
    return 0


def _optuna_storage(location: str | None) -> str | None:
    """Journal paths made absolute (trials run in other working directories); URLs unchanged."""
    if location is None or "://" in location:
        return location
    path = Path(location).expanduser().resolve()
    if not path.parent.is_dir():
        raise FileNotFoundError(f"--optuna-storage {location!r}: folder {path.parent} does not exist")
    return str(path)


def _alpha(args) -> int:
    from orchestrator import code_version
    from orchestrator.sweep.alpha import plan_alpha_searches, search_points
    from search_spaces.spec import Resources
    from trainables.core.config import Runtime

    store = _existing_store(args.store)
    points = search_points(args.method, args.groups, args.n_trials, args.search_seed, *args.alpha_range)
    filters = {"backbone": args.backbone, "task": args.task, "split": args.split,
               "label_setting": args.label_setting, "seed": args.seed}
    plan = plan_alpha_searches(store, points, {k: set(v) for k, v in filters.items() if v},
                               resources=Resources(cpu=args.cpus))
    print(plan.summary(), file=sys.stderr)
    if not plan.trials:
        print("roft: no Full-FT trial with a kept checkpoint matches; run a sweep with full-ft first",
              file=sys.stderr)
        return 1
    if args.dry_run:
        return 0
    runtime = Runtime(store=store.uri, sweep="alpha", data_root=_data_root(args),
                      threads=max(1, int(args.cpus)), device=args.device, code_version=code_version(),
                      optuna_storage=_optuna_storage(args.optuna_storage))
    return _run_and_report(plan, store, runtime, args.address)


def _run_and_report(plan, store, runtime, address: str | None) -> int:
    from orchestrator.analysis.summary import store_table
    from orchestrator.sweep.execute import error_line, run_sweep

    outcome = run_sweep(plan, store, runtime, address=address)
    print(f"ran {outcome.submitted} trials in {outcome.wall_seconds:.1f} s: {outcome.succeeded} landed, "
          f"{len(outcome.failed)} failed", file=sys.stderr)
    if outcome.searches is not None:
        print(f"hyper-parameter searches: {outcome.searches.points} points scored", file=sys.stderr)
        for best in outcome.searches.best:
            print(f"  best {best['method']} on {best['backbone']} / {best['task']} / {best['split']} / "
                  f"{best['label_setting']}: {best['point']} (seed-mean val {best['objective']:.4f})", file=sys.stderr)
    print(store_table(store))
    if outcome.failed:
        print("failed trials (tracebacks in the store's failures/ table; roft sweep --retry-failed runs them "
              "again):", file=sys.stderr)
        for key, error in outcome.failed.items():
            print(f"  {key}: {error_line(error)}", file=sys.stderr)
        return 1
    return 0


def _cache() -> Path:
    from trainables.data.sources import cache_dir
    return cache_dir()


def _table(args) -> int:
    from orchestrator.analysis.summary import store_table
    from orchestrator.analysis.tables import load_trials, parse_where, render, select

    store = _existing_store(args.store)
    if args.all_points:
        print(store_table(store, ddof=args.ddof))
        return 0
    trials = load_trials(store, parse_where(args.where))
    print(render(select(trials, args.select, args.ddof), rows=args.rows.split(","), cols=args.cols.split(","),
                 fmt=args.format))
    return 0


def _existing_store(path: str):
    from orchestrator.store.results import ResultStore

    store = ResultStore(path)
    if not store.exists():
        raise FileNotFoundError(f"store {store.location!r} does not exist")
    return store


def _report(args) -> int:
    from orchestrator.analysis.report import build_report
    from orchestrator.analysis.tables import parse_where

    started = time.perf_counter()
    page = build_report(_existing_store(args.store), Path(args.out), parse_where(args.where), args.select, args.ddof,
                        args.test)
    print(f"wrote {page} in {time.perf_counter() - started:.1f} s")
    return 0


STORE_LIST_COLUMNS = ["trial_key", "sweep", "backbone", "method_label", "task", "split", "label_setting", "seed",
                      "val_metric", "test_metric", "engine", "finished_at"]


def _store(args) -> int:
    if args.store_command == "list":
        from orchestrator.analysis.tables import load_trials, parse_where

        trials = load_trials(_existing_store(args.store), parse_where(args.where), STORE_LIST_COLUMNS)
        trials = trials.sort_values(["task", "backbone", "method_label", "label_setting", "split", "seed"])
        if args.keys:
            print("\n".join(trials["trial_key"]))
        else:
            print(trials.to_string(index=False) if len(trials) else "no trials match")
            print(f"{len(trials)} trial(s)", file=sys.stderr)
        return 0
    if args.store_command == "clean":
        from orchestrator.store.clean import age_seconds, clean

        print(clean(_existing_store(args.store), age_seconds(args.older_than), args.dry_run, args.unlocked))
        return 0
    if args.store_command == "forget":
        from orchestrator.store.forget import forget

        print(forget(_existing_store(args.store), args.keys, unlocked=args.unlocked))
        return 0
    from orchestrator.store.compact import compact

    print(compact(_existing_store(args.store), unlocked=args.unlocked))
    return 0


def _bench(args) -> int:
    if args.bench_command == "throughput":
        return _bench_throughput(args)
    if args.bench_command == "plan":
        from orchestrator.bench.plan import bench_plan
        bench_plan(args.spec, _data_root(args), args.seeds)
        return 0
    if args.bench_command == "report":
        from orchestrator.bench.report import bench_report
        bench_report(args.rows)
        return 0
    from orchestrator.bench.sweeps import bench_alpha, bench_methods, bench_orchestrator

    if args.bench_command == "alpha":
        bench_alpha(args.backbone, args.task, args.label_setting, args.ft_epochs, args.n_trials,
                    data_root=_data_root(args), threads=args.threads)
    elif args.bench_command == "methods":
        bench_methods(args.backbone, args.task, args.label_setting, args.epochs, args.repeats,
                      data_root=_data_root(args), threads=args.threads)
    else:
        bench_orchestrator(args.trials, num_cpus=args.cpus)
    return 0


def _bench_throughput(args) -> int:
    import torch

    from orchestrator.bench.throughput import bench_throughput, load_bench_data, profile_fused
    from trainables.models.gnn import GNNShape
    from trainables.worker.trial import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    variants = ([fused_variant(text) for text in args.variant] if args.variant else
                [fused_variant(",".join(name for name, on in (("compile", args.compile),
                                                              ("group-dropout", args.group_dropout),
                                                              ("bf16", args.bf16)) if on) or "plain")])
    data, task_type, split = load_bench_data(args.task, args.molecules, _data_root(args) if args.task else None)
    bench_throughput(data, task_type, GNNShape(args.gnn, args.layers, args.width, 0.5), args.fused,
                     resolve_device(args.device), epochs=args.epochs, split=split, skip_reference=args.no_reference,
                     skip_unfused=args.no_unfused, variants=variants)
    if args.profile and args.fused:
        profile_fused(data, split, GNNShape(args.gnn, args.layers, args.width, 0.5), task_type,
                      resolve_device(args.device), max(args.fused), options=variants[-1])
    return 0


FUSED_VARIANT_OPTIONS = ("compile", "group-dropout", "bf16", "csr")


def fused_variant(text: str):
    """``"compile,bf16"`` -> the fused engine's options; ``"plain"`` for none."""
    from orchestrator.bench.throughput import FusedOptions

    names = [] if text.strip() == "plain" else [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in FUSED_VARIANT_OPTIONS]
    if unknown or not (names or text.strip() == "plain"):
        raise SystemExit(f"roft bench throughput: --variant {text!r}: unknown option(s) {', '.join(unknown) or '(none)'}; "
                         f"accepted: plain, or a comma-separated subset of {', '.join(FUSED_VARIANT_OPTIONS)}")
    return FusedOptions(compile_normalisation="compile" in names,
                        dropout_streams="group" if "group-dropout" in names else "per-trial",
                        precision="bf16" if "bf16" in names else "fp32",
                        aggregation="csr" if "csr" in names else "scatter")


if __name__ == "__main__":
    sys.exit(main())
