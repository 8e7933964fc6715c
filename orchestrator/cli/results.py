"""``roft table`` (paper tables from the store) and ``roft report`` (one static HTML page)."""

from __future__ import annotations

import time
from pathlib import Path

from orchestrator.cli.common import (
    DDOF_HELP,
    SELECT_HELP,
    add_data_root,
    add_store,
    add_where,
    data_root,
    existing_store,
)
from orchestrator.cli.watch import add_watch, repeat, stopped


def register(sub) -> None:
    from orchestrator.analysis.optimism import GAP
    from orchestrator.analysis.tables import CELL, FORMATS, SELECTIONS

    dimensions = ", ".join(CELL)
    table = sub.add_parser("table", help="paper tables: per-cell hyper-parameter selection, mean +- std over seeds")
    add_store(table)
    add_where(table, "backbone=hu-gcn-contextpred")
    table.add_argument(
        "--rows", default="method", help=f"comma-separated row dimensions, of: {dimensions} (default: method)"
    )
    table.add_argument(
        "--cols", default="task", help=f"comma-separated column dimensions, of: {dimensions} (default: task)"
    )
    table.add_argument(
        "--select",
        default="val",
        choices=[*SELECTIONS, GAP],
        help=SELECT_HELP + "; gap: instead, per cell, how much better choosing by test makes it look",
    )
    table.add_argument("--ddof", type=int, default=0, choices=[0, 1], help=DDOF_HELP)
    table.add_argument("--format", default="markdown", choices=list(FORMATS), help="output format (default markdown)")
    table.add_argument(
        "--all-points", action="store_true", help="every grid point as its own row (no selection), as the sweep prints"
    )
    table.add_argument(
        "--anchors",
        action="store_true",
        help="put the published mean ± std beside each cell whose configuration a published "
        "result matches (GIN 5x300, Full FT, scaffold, full labels, 100 epochs), with the "
        "difference and whether it lies within two combined standard errors",
    )
    table.set_defaults(handler=print_table)

    reading = sub.add_parser(
        "reading",
        help="two lines under a table: does a pre-trained backbone beat its "
        "random-init counterpart, task by task (what `make demo` prints)",
    )
    add_store(reading)
    add_where(reading, "label_setting=fewshot:100")
    reading.add_argument(
        "--spec", default=None, help="read only this sweep spec's trials (a path or a bundled name such as mini.yaml)"
    )
    add_data_root(reading)
    reading.add_argument(
        "--claims",
        action="store_true",
        help="instead: the published claims about few-label fine-tuning (RoFt-Mol vs WiSE-FT and "
        "Full FT; weight-based methods ranking first; supervised vs self-supervised "
        "pre-training; pre-training vs scratch), each supported, contradicted or "
        "inconclusive by paired tests on the store",
    )
    reading.add_argument(
        "--cost",
        action="store_true",
        help="instead: what the trials cost, per method and in all (trials, worker-hours from the rows' "
        "wall_seconds, wall time with a trial in flight)",
    )
    reading.add_argument(
        "--ranks",
        action="store_true",
        help="instead: the average rank of each fine-tuning method over tasks, per backbone and over all, "
        "with Friedman's test and the pairs Nemenyi's test finds different",
    )
    reading.add_argument(
        "--against",
        default=None,
        metavar="OTHER_STORE",
        help="instead: for the trials both stores hold (same trial key), how far apart their test metrics are "
        "(mean and largest difference, Wilcoxon's test of a shift, the seed spread for scale): e.g. a "
        "GPU store against a CPU one",
    )
    reading.set_defaults(handler=print_reading)

    report = sub.add_parser("report", help="one static HTML page: tables, significance, figures, provenance")
    add_store(report)
    report.add_argument("--out", required=True, help="folder for index.html, figures/ and selected.csv")
    add_where(report, "task=bbbp,tox21")
    report.add_argument("--select", default="val", choices=list(SELECTIONS), help=SELECT_HELP)
    report.add_argument("--ddof", type=int, default=0, choices=[0, 1], help=DDOF_HELP)
    report.add_argument(
        "--test",
        default="ttest",
        choices=["ttest", "wilcoxon"],
        help="paired test against Full FT (default: paired t-test)",
    )
    add_watch(
        report,
        "rebuild the page whenever rows have landed (each file replaced whole; the page reloads "
        "itself in a browser), checking the store",
    )
    report.set_defaults(handler=write_report)


def print_table(args) -> int:
    """``roft table``: :func:`orchestrator.api.table`'s frame, rendered (``--all-points``: every grid point)."""
    from orchestrator import api
    from orchestrator.analysis.optimism import GAP, render_gap
    from orchestrator.analysis.summary import store_table
    from orchestrator.analysis.tables import parse_where, render_frame

    store = existing_store(args.store)
    if args.all_points:
        print(store_table(store, ddof=args.ddof, where=parse_where(args.where)))
        return 0
    frame = api.table(
        store,
        rows=args.rows.split(","),
        cols=args.cols.split(","),
        where=parse_where(args.where),
        select=args.select,
        anchors=args.anchors,
        ddof=args.ddof,
    )
    print(render_gap(frame, args.format) if args.select == GAP else render_frame(frame, args.format))
    return 0


def write_report(args) -> int:
    from orchestrator.analysis.report import build_report
    from orchestrator.analysis.tables import parse_where

    if args.watch is not None:
        try:
            return watch_report(args)
        except KeyboardInterrupt:
            return stopped()
    started = time.perf_counter()
    page = build_report(
        existing_store(args.store), Path(args.out), parse_where(args.where), args.select, args.ddof, args.test
    )
    print(f"wrote {page} in {time.perf_counter() - started:.1f} s")
    return 0


def watch_report(args) -> int:
    """``roft report --watch``: the page rebuilt whenever the store's set of finished trials changed."""
    import hashlib
    from datetime import datetime, timezone

    from orchestrator.analysis.report import NoTrials, build_report, waiting_page
    from orchestrator.analysis.tables import parse_where

    store, out, where = existing_store(args.store), Path(args.out), parse_where(args.where)
    seen: list[str] = []

    def step() -> None:
        keys = sorted(store.done_keys())
        fingerprint = hashlib.sha256("\n".join(keys).encode()).hexdigest()
        if seen and seen[-1] == fingerprint:
            return
        started = time.perf_counter()
        moment = f"{datetime.now(timezone.utc):%H:%M:%S} UTC"
        try:
            page = build_report(store, out, where, args.select, args.ddof, args.test, refresh_s=args.watch)
        except NoTrials:
            page = waiting_page(store, out, args.watch)
            print(f"{moment}: no finished trial yet; wrote {page}, which reloads itself", flush=True)
        else:
            print(
                f"{moment}: wrote {page} from {len(keys)} finished trials in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
        seen.append(fingerprint)

    return repeat(step, args.watch)


def print_reading(args) -> int:
    from orchestrator.analysis.reading import reading
    from orchestrator.analysis.tables import COLUMNS, load_trials, parse_where
    from orchestrator.sweep.plan import expand, with_parents
    from search_spaces import load_spec

    store = existing_store(args.store)
    chosen = [flag for flag in ("claims", "cost", "ranks", "against") if getattr(args, flag)]
    if len(chosen) > 1:
        raise ValueError(
            f"{' and '.join('--' + f for f in chosen)} are not accepted together; accepted: one of --claims, --cost, "
            "--ranks, --against"
        )
    extra = ["wall_seconds", "started_at", "finished_at"] if args.cost else ["device"] if args.against else []
    trials = load_trials(store, where=parse_where(args.where), columns=[*COLUMNS, "epochs", *extra])
    if args.spec is not None:
        planned, _ = expand(load_spec(args.spec), data_root(args))
        planned, _ = with_parents(planned)
        trials = trials[trials["trial_key"].isin({t.key() for t in planned})]
    if args.against is not None:
        from orchestrator.analysis.agreement import agreement_text

        other = existing_store(args.against)
        other_trials = load_trials(other, where=parse_where(args.where), columns=[*COLUMNS, "device"])
        print(agreement_text(trials, other_trials, args.against))
    elif args.claims:
        from orchestrator.analysis.claims import claims_text

        print(claims_text(trials))
    elif args.cost:
        from orchestrator.analysis.cost import cost_text

        print(cost_text(trials))
    elif args.ranks:
        from orchestrator.analysis.ranking import ranks_text

        print(ranks_text(trials))
    else:
        print(reading(trials))
    return 0
