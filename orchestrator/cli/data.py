"""``roft data list|verify|featurize``, ``roft backbones list``, ``roft methods list``: what the benchmark holds
(rows from the ``inventory`` modules of trainables.data, .models and .methods, printed here)."""

from __future__ import annotations

import sys

from orchestrator.cli.common import add_data_root, data_root, print_rows


def register(sub) -> None:
    data = sub.add_parser("data", help="benchmark files and featurized caches")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    listing = data_sub.add_parser("list", help="tasks with rows, RDKit-valid rows, label columns, cache state")
    add_data_root(listing)
    listing.set_defaults(handler=data_list)
    verify = data_sub.add_parser("verify", help="check every file's sha256 against the registry")
    add_data_root(verify)
    verify.set_defaults(handler=data_verify)
    featurize = data_sub.add_parser("featurize", help="build featurized caches (and time them)")
    featurize.add_argument("tasks", nargs="*", help="task names (default: all)")
    add_data_root(featurize)
    featurize.set_defaults(handler=data_featurize)

    backbones = sub.add_parser("backbones", help="backbone registry")
    backbones_sub = backbones.add_subparsers(dest="backbones_command", required=True)
    listing = backbones_sub.add_parser("list", help="name, architecture, pre-training, checkpoint state and file")
    add_data_root(listing)
    listing.set_defaults(handler=backbones_list)

    methods = sub.add_parser("methods", help="fine-tuning method registry")
    methods_sub = methods.add_subparsers(dest="methods_command", required=True)
    methods_sub.add_parser(
        "list",
        help="one line per method: mechanism, hyper-parameters with their defaults and the paper's grid where declared",
    ).set_defaults(handler=methods_list)


def data_verify(args) -> int:
    from trainables.data.inventory import verify_files

    checks = verify_files(data_root(args))
    for check in checks:
        status = {"mismatch": f"MISMATCH (got {check.actual_sha256})"}.get(check.status, check.status)
        print(f"{status:<10} {check.relpath}")
    good = sum(check.status == "ok" for check in checks)
    print(f"{good}/{len(checks)} files verified", file=sys.stderr)
    return 0 if good == len(checks) else 1


def data_featurize(args) -> int:
    from trainables.data.inventory import featurize_tasks

    for done in featurize_tasks(args.tasks, data_root(args)):
        rate = f", {done.molecules_per_second:,.0f} molecules/s" if done.cold else ""
        print(
            f"{done.task}: {done.molecules} molecules, {done.dropped} dropped, "
            f"{'featurized' if done.cold else 'loaded from cache'} in {done.seconds:.2f} s{rate}"
        )
    return 0


def data_list(args) -> int:
    from trainables.data.inventory import task_inventory

    def shown(value):
        return "-" if value is None else value

    rows = [
        [
            t.name + ("" if t.in_paper else " *"),
            t.task_type,
            t.metric,
            t.file,
            "missing" if t.rows is None else t.rows,
            shown(t.valid),
            shown(t.dropped),
            shown(t.label_columns),
            "yes" if t.cached else "no",
        ]
        for t in task_inventory(data_root(args))
    ]
    print_rows(["task", "type", "metric", "file", "rows", "valid", "dropped", "#tasks", "cached"], rows)
    print("* not in the RoFt-Mol paper. 'valid' needs the featurized cache: `roft data featurize`.", file=sys.stderr)
    return 0


def backbones_list(args) -> int:
    from trainables.models.inventory import CHECKPOINT_STATES, backbone_inventory

    rows = [
        [b.name, b.architecture, b.pretraining, "yes" if b.available else "no", b.checkpoint, b.file]
        for b in backbone_inventory(data_root(args))
    ]
    print_rows(["backbone", "architecture", "pre-training", "available", "checkpoint", "file"], rows)
    print(
        "checkpoint: " + "; ".join(f"{state}: {meaning}" for state, meaning in CHECKPOINT_STATES.items()),
        file=sys.stderr,
    )
    return 0


def methods_list(args) -> int:
    from trainables.methods.inventory import method_inventory

    def value(v) -> str:  # as a sweep spec (YAML) writes it
        if v is None:
            return "null"
        return ("true" if v else "false") if isinstance(v, bool) else str(v)

    def described(hp) -> str:
        text = f"{hp.name}={value(hp.default)}"
        if hp.choices is not None:
            text += f" {{{'|'.join(value(c) for c in hp.choices)}}}"
        if hp.paper_grid is not None:
            text += f" (paper grid: {', '.join(hp.paper_grid)})"
        return text

    rows = [
        [
            m.name,
            m.mechanism,
            m.requires_parent or "-",
            "; ".join(described(hp) for hp in m.hyperparameters) or "(none)",
        ]
        for m in method_inventory()
    ]
    print_rows(["method", "mechanism", "parent", "hyper-parameters: name=default {choices} (paper grid)"], rows)
    return 0
