"""``roft bench orchestrator|methods|alpha|report|throughput|plan``: benchmarks that print figures."""

from __future__ import annotations

import argparse

from orchestrator.cli.arguments import MAX_EPOCHS, MAX_SEEDS, device, integer
from orchestrator.cli.common import add_data_root, data_root


def register(sub) -> None:
    bench = sub.add_parser("bench", help="benchmarks that print figures")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)

    orch = bench_sub.add_parser("orchestrator", help="per-trial overhead of the Ray Tune path with no-op trials")
    orch.add_argument(
        "--trials",
        type=integer(1, 1_000_000),
        nargs="+",
        default=[200, 1000],
        help="sweep sizes to time, in no-op trials (default 200 1000)",
    )
    orch.add_argument("--cpus", type=integer(1, 1_024), default=None, help="CPUs for the local Ray (default: all)")
    orch.add_argument(
        "--no-reuse",
        type=integer(0, 100_000),
        default=16,
        metavar="N",
        help="also time N trials with a fresh actor each, no reuse (default 16; 0: skip)",
    )
    orch.set_defaults(handler=bench_orchestrator)

    plan = bench_sub.add_parser("plan", help="plan a large grid, then diff it against a store holding it")
    plan.add_argument("--spec", default="paper.yaml", help="spec to plan (default: the paper grid)")
    plan.add_argument(
        "--seeds", type=integer(1, MAX_SEEDS), default=None, help="plan with seeds 0..N-1 instead of the spec's"
    )
    plan.add_argument(
        "--store",
        default=None,
        help="write the full store here (an empty folder or s3:// prefix; default: a temporary folder)",
    )
    plan.add_argument(
        "--per-trial-files",
        action="store_true",
        help="write one trial file per planned row, as sweeps do, instead of one compacted file",
    )
    plan.add_argument(
        "--writers", type=integer(1, 1_024), default=16, help="parallel writers for --per-trial-files (default 16)"
    )
    add_data_root(plan)
    plan.set_defaults(handler=bench_plan)

    _register_methods(bench_sub)

    alpha = _trial_bench(bench_sub, "alpha", "cost of an Optuna alpha search relative to one Full-FT trial", "full")
    alpha.add_argument(
        "--ft-epochs", type=integer(1, MAX_EPOCHS), default=5, help="Full-FT epochs actually run (default 5)"
    )
    alpha.add_argument("--n-trials", type=integer(1, 100_000), default=100, help="points per search (default 100)")
    alpha.set_defaults(handler=bench_alpha)

    report = bench_sub.add_parser("report", help="time tables and the HTML report on a synthetic store")
    report.add_argument(
        "--rows", type=integer(1, 100_000_000), default=100_000, help="synthetic trial rows (default 100000)"
    )
    report.set_defaults(handler=bench_report)

    _register_throughput(bench_sub)


def _trial_bench(bench_sub, name: str, text: str, label_setting: str) -> argparse.ArgumentParser:
    """A benchmark that runs real trials in-process on one backbone and task."""
    parser = bench_sub.add_parser(name, help=text)
    parser.add_argument(
        "--backbone",
        default="hu-gcn-supervised-contextpred",
        help="backbone of the trials (default hu-gcn-supervised-contextpred)",
    )
    parser.add_argument("--task", default="bbbp", help="task of the trials (default bbbp)")
    parser.add_argument("--label-setting", default=label_setting, help=f"full or fewshot:N (default {label_setting})")
    parser.add_argument(
        "--threads", type=integer(1, 1_024), default=1, help="torch threads (default 1, as a sweep trial)"
    )
    add_data_root(parser)
    return parser


def _register_methods(bench_sub) -> None:
    from orchestrator.bench.methods import GRIDS, MethodsBench

    d = MethodsBench()
    methods = bench_sub.add_parser("methods", help="trials per hour of every method, alone and fused, in one cell")
    methods.add_argument("--backbone", default=d.backbone, help=f"backbone of the trials (default {d.backbone})")
    methods.add_argument("--task", default=d.task, help=f"task of the trials (default {d.task})")
    methods.add_argument("--split", default=d.split, help=f"split (default {d.split})")
    methods.add_argument(
        "--label-setting", default=d.label_setting, help=f"full, fewshot:N or ratio:R (default {d.label_setting})"
    )
    methods.add_argument(
        "--seeds", type=integer(1, MAX_SEEDS), default=d.seeds, help=f"run seeds 0..N-1 (default {d.seeds})"
    )
    methods.add_argument(
        "--epochs",
        type=integer(1, MAX_EPOCHS),
        default=d.epochs,
        help=f"the recipe's epochs; LP-FT's and RoFt-Mol's stages scale with them (default {d.epochs}; the paper: 100)",
    )
    methods.add_argument("--methods", nargs="+", default=None, help="methods to measure (default: every method)")
    methods.add_argument(
        "--grid",
        default=d.grid,
        choices=GRIDS,
        help="each method's hyper-parameter points: its defaults, one trial per seed (default), or "
        "its grid in paper.yaml",
    )
    methods.add_argument(
        "--unfused-trials",
        type=integer(0, 10_000),
        default=d.unfused_trials,
        help=f"trials of each method timed alone per repeat (default {d.unfused_trials})",
    )
    methods.add_argument(
        "--repeats",
        type=integer(1, 1_000),
        default=d.repeats,
        help=f"repeats of each measurement; the fastest is the figure (default {d.repeats})",
    )
    methods.add_argument(
        "--fuse-max",
        type=integer(1, 10_000),
        default=d.fuse_max,
        help=f"largest fused group (default {d.fuse_max}, as a spec's execution.fuse_max)",
    )
    methods.add_argument(
        "--threads",
        type=integer(1, 1_024),
        default=d.threads,
        help=f"torch threads (default {d.threads}, as a sweep trial)",
    )
    methods.add_argument(
        "--device", type=device, default=d.device, help="auto | cpu | cuda (default: cuda where available)"
    )
    methods.add_argument(
        "--engine",
        default=d.engine,
        metavar="WORDS",
        help="engine options, comma-separated words as roft bench throughput's --variant (e.g. "
        "lazy-test; default plain)",
    )
    methods.add_argument(
        "--out",
        default=None,
        metavar="FILE",
        help="write the rates (JSON) here, for `roft sweep --dry-run --method-rates FILE`",
    )
    add_data_root(methods)
    methods.set_defaults(handler=bench_methods)


def _register_throughput(bench_sub) -> None:
    from trainables.core.engine import EngineOptions

    throughput = bench_sub.add_parser("throughput", help="trials per hour: reference loop, roft unfused, roft fused")
    throughput.add_argument(
        "--device", type=device, default="auto", help="auto | cpu | cuda (default: cuda where available)"
    )
    throughput.add_argument(
        "--fused",
        type=integer(1, 10_000),
        nargs="*",
        default=[8, 32, 64, 128],
        help="fused group sizes K to measure (default: 8 32 64 128)",
    )
    throughput.add_argument("--gnn", default="gin", help="gin | gcn | graphsage | gat (default gin)")
    throughput.add_argument("--layers", type=integer(1, 100), default=5, help="GNN layers (default 5)")
    throughput.add_argument("--width", type=integer(1, 65_536), default=300, help="embedding width (default 300)")
    throughput.add_argument(
        "--epochs", type=integer(1, MAX_EPOCHS), default=2, help="timed epochs per engine (default 2)"
    )
    throughput.add_argument(
        "--molecules", type=integer(1, 10_000_000), default=2039, help="synthetic molecules (default 2039, BBBP's size)"
    )
    throughput.add_argument("--task", default=None, help="a registered task instead of synthetic molecules")
    throughput.add_argument(
        "--threads", type=integer(1, 1_024), default=None, help="torch CPU threads (default: torch's)"
    )
    throughput.add_argument("--no-reference", action="store_true", help="skip the PyG reference loop")
    helps = {name: text for name, _, text in EngineOptions.describe()}
    for word, (name, value) in EngineOptions.words().items():  # --tf32, --compile, --group-dropout, --bf16, --csr
        setting = "" if value is True else f"; this flag: {name}={value}"
        throughput.add_argument(f"--{word}", action="store_true", help=f"{helps[name]}{setting}")
    throughput.add_argument(
        "--variant",
        action="append",
        default=None,
        metavar="OPTIONS",
        help="measure the fused engine under several option sets, e.g. --variant plain "
        "--variant compile,group-dropout,bf16 (options: "
        f"{', '.join(_variant_words())}; 'plain' for none); overrides the flags but --tf32",
    )
    throughput.add_argument("--no-unfused", action="store_true", help="skip roft's unfused engine")
    throughput.add_argument(
        "--profile", action="store_true", help="also print a torch.profiler table of one fused epoch at the largest K"
    )
    add_data_root(throughput)
    throughput.set_defaults(handler=bench_throughput)


def bench_orchestrator(args) -> int:
    from orchestrator.bench.sweeps import bench_orchestrator as run

    run(args.trials, num_cpus=args.cpus, no_reuse=args.no_reuse)
    return 0


def bench_plan(args) -> int:
    from orchestrator.bench.plan import bench_plan as run

    run(
        args.spec,
        data_root(args),
        args.seeds,
        store=args.store,
        per_trial_files=args.per_trial_files,
        writers=args.writers,
    )
    return 0


def bench_methods(args) -> int:
    from orchestrator.bench.methods import MethodsBench
    from orchestrator.bench.methods import bench_methods as run

    options = MethodsBench(
        args.backbone,
        args.task,
        args.split,
        args.label_setting,
        args.seeds,
        args.epochs,
        tuple(args.methods or ()),
        args.grid,
        args.unfused_trials,
        args.repeats,
        args.fuse_max,
        args.threads,
        args.device,
        args.engine,
    )
    run(options, data_root(args), out=args.out)
    return 0


def bench_alpha(args) -> int:
    from orchestrator.bench.sweeps import bench_alpha as run

    run(
        args.backbone,
        args.task,
        args.label_setting,
        args.ft_epochs,
        args.n_trials,
        data_root=data_root(args),
        threads=args.threads,
    )
    return 0


def bench_report(args) -> int:
    from orchestrator.bench.report import bench_report as run

    run(args.rows)
    return 0


def bench_throughput(args) -> int:
    from orchestrator.bench.throughput import bench_throughput as run
    from orchestrator.bench.throughput import load_bench_data, profile_fused, set_torch_backend
    from trainables.models.gnn import GNNShape
    from trainables.worker.trial import resolve_device

    set_torch_backend(args.threads, tf32=args.tf32)
    variants = engine_variants(args)
    data, task_type, split = load_bench_data(args.task, args.molecules, data_root(args))
    shape, device = GNNShape(args.gnn, args.layers, args.width, 0.5), resolve_device(args.device)
    run(
        data,
        task_type,
        shape,
        args.fused,
        device,
        epochs=args.epochs,
        split=split,
        skip_reference=args.no_reference,
        skip_unfused=args.no_unfused,
        variants=variants,
    )
    if args.profile and args.fused:
        profile_fused(data, split, shape, task_type, device, max(args.fused), options=variants[-1])
    return 0


def _variant_words() -> list[str]:
    """``--variant`` words: the engine options but TF32, which is process-wide (``--tf32``)."""
    from trainables.core.engine import EngineOptions

    return [word for word, (name, _) in EngineOptions.words().items() if name != "tf32"]


def engine_variants(args) -> list:
    """The fused engine's option sets: one per ``--variant``, else the one the flags name."""
    from trainables.core.engine import EngineOptions

    base = EngineOptions(tf32=args.tf32)
    if not args.variant:
        flags = [word for word in _variant_words() if getattr(args, word.replace("-", "_"))]
        return [EngineOptions.from_words(",".join(flags), base)]
    variants = []
    for text in args.variant:
        names = [word.strip() for word in text.split(",") if word.strip()]
        unknown = [name for name in names if name not in (*_variant_words(), "plain")]
        if unknown or not names:
            raise ValueError(
                f"--variant {text!r}: unknown option(s) {', '.join(unknown) or '(none)'}; accepted: "
                f"plain, or a comma-separated subset of {', '.join(_variant_words())}"
            )
        variants.append(EngineOptions.from_words(text, base))
    return variants
