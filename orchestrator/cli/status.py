"""``roft status``: per sweep of a store, its done / failed / running / queued trials, the last rows
landed, the failure causes and the running trials, read from the store alone (no Ray)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from orchestrator.cli.arguments import age, integer
from orchestrator.cli.common import add_data_root, add_store, data_root, existing_store
from orchestrator.cli.watch import add_watch, repeat, stopped
from orchestrator.wording import plural

STALE_AFTER_HELP = (
    "a running trial whose heartbeat is older than this is marked stale (its worker was killed "
    "or is stuck); s, m, h or d (default 10m)"
)


def register(sub) -> None:
    status = sub.add_parser(
        "status",
        help="per sweep of a store: done / failed / running / queued trials, the last "
        "rows landed, failure causes, running trials (no Ray needed)",
    )
    add_store(status)
    add_data_root(status)
    status.add_argument("--stale-after", type=age, default="10m", metavar="AGE", help=STALE_AFTER_HELP)
    status.add_argument(
        "--last",
        type=integer(0, 1_000_000),
        default=5,
        metavar="N",
        help="how many of each sweep's last landed rows to print (default 5)",
    )
    add_watch(
        status,
        "redraw the status in place (per sweep: counts, trials per hour over the last 10 minutes, ETA, "
        "newest failures), read again from the store",
    )
    status.set_defaults(handler=print_status)

    placement = sub.add_parser(
        "placement",
        help="where the trials ran, from the rows alone: per node and GPU, the "
        "trials or fused groups and the most that trained at once",
    )
    add_store(placement)
    placement.add_argument("--sweep", default=None, help="only this sweep's rows (default: every row)")
    placement.add_argument(
        "--timeline",
        action="store_true",
        help="also list every trial or fused group: node, GPU, start-finish in seconds",
    )
    placement.set_defaults(handler=print_placement)


def print_status(args) -> int:
    if args.watch is None:
        return _print_status(args)
    try:  # Ctrl-C at any moment of a watch (even while the store is first opened) exits with 0
        return _print_status(args)
    except KeyboardInterrupt:
        return stopped()


def _print_status(args) -> int:
    from orchestrator.sweep.status import sweep_status

    store, root = existing_store(args.store), data_root(args)
    if args.watch is not None:
        return _watch_status(store, root, args.stale_after, args.watch)
    status = sweep_status(store, root, args.stale_after, args.last)
    for line in status_lines(status):
        print(line)
    return 0


def _watch_status(store, root, stale_after: float, every_s: float) -> int:
    """The status redrawn in place every ``every_s`` seconds (rich's live display) until Ctrl-C; on a
    stream that is no terminal, one snapshot after another."""
    import sys

    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    from orchestrator.sweep.status import sweep_status

    plans: dict[str, tuple] = {}  # a spec's plan does not change while the store does: planned once

    def view():
        try:
            status = sweep_status(store, root, stale_after, last=1, plans=plans)
        except FileNotFoundError as exc:  # nothing written yet: keep watching for the sweep to start
            return Text(f"{exc}; watching it every {every_s:g} s (Ctrl-C stops)")
        return status_view(status, every_s)

    console = Console()
    if not console.is_terminal:
        return repeat(lambda: (console.print(view()), sys.stdout.flush()), every_s)
    with Live(Text(f"reading {store.location} ..."), console=console, auto_refresh=False, transient=False) as live:
        return repeat(lambda: live.update(view(), refresh=True), every_s)


def status_view(status, every_s: float):
    """The live view of :func:`orchestrator.sweep.status.sweep_status`: a table of the sweeps (counts,
    trials per hour over the last minutes, ETA, last row landed) and the newest failures."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    window = status.sweeps[0].rate_window_s if status.sweeps else 600.0
    header = Text.assemble(
        ("roft status ", "bold"),
        f"{status.location} at {_when(status.now)} UTC, redrawn every {every_s:g} s (Ctrl-C stops): ",
        (f"{status.done} done", "green"),
        ", ",
        (f"{status.failed} failed", "red"),
        f", {status.running} running" + (f" ({status.stale} stale)" if status.stale else ""),
        f", {status.queued} queued" + (f" (+ {status.unplanned} sweep(s) not planned)" if status.unplanned else ""),
    )
    table = Table(title=None, expand=False, header_style="bold")
    for name, justify in (
        ("sweep", "left"),
        ("done", "right"),
        ("failed", "right"),
        ("running", "right"),
        ("queued", "right"),
        (f"per hour ({window / 60:g} min)", "right"),
        ("ETA", "right"),
        ("last row (UTC)", "left"),
    ):
        table.add_column(name, justify=justify, no_wrap=name == "sweep")
    failures = []
    for sweep in status.sweeps:
        planned = "" if sweep.planned is None else f" of {sweep.planned}"
        running = f"{len(sweep.running)}" + (f" ({len(sweep.stale)} stale)" if sweep.stale else "")
        eta = sweep.eta_s
        landed = max((r["finished_at"] for r in sweep.last), default=None)
        table.add_row(
            sweep.name,
            f"{sweep.done}{planned}",
            str(sweep.failed),
            running,
            "?" if sweep.queued is None else str(sweep.queued),
            f"{sweep.per_hour:.0f}",
            "done" if eta == 0 else "?" if eta is None else _duration(eta),
            landed.strftime("%H:%M:%S") if landed else "-",
        )
        failures += [(f["failed_at"], sweep.name, f["trial_key"], f["error"]) for f in sweep.newest_failures]
    parts = [header, table]
    if failures:
        newest = Table(title="newest failures", title_justify="left", header_style="bold")
        for name in ("failed (UTC)", "sweep", "trial_key", "error"):
            newest.add_column(name, overflow="fold" if name == "error" else "ellipsis")
        for failed_at, sweep, key, error in sorted(failures, key=lambda f: (f[0] is not None, f[0]), reverse=True)[:5]:
            newest.add_row(_when(failed_at), sweep, key, error or "(no error line)")
        parts.append(newest)
    if status.unread:
        parts.append(
            Text(
                f"{status.unread} done trials counted by their object's name only (object storage; "
                "see roft status without --watch)",
                style="dim",
            )
        )
    return Group(*parts)


def print_placement(args) -> int:
    from orchestrator.analysis.placement import COLUMNS, placement_lines

    rows = existing_store(args.store).read_trials(COLUMNS).to_pylist()
    if args.sweep is not None:
        sweeps = sorted({r["sweep"] for r in rows})
        rows = [r for r in rows if r["sweep"] == args.sweep]
        if not rows:
            raise ValueError(
                f"--sweep {args.sweep!r} has no rows in the store; accepted: {', '.join(sweeps) or 'none'}"
            )
    for line in placement_lines(rows, args.timeline):
        print(line)
    return 0


def _when(moment: datetime | None) -> str:
    return "?" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float) -> str:
    """``42s``, ``5m03s``, ``2h05m``, ``3d04h``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def _ago(seconds: float | None) -> str:
    return "?" if seconds is None else f"{_duration(seconds)} ago"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], indent: str = "    ") -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    return [(indent + "  ".join(str(x).ljust(w) for x, w in zip(row, widths))).rstrip() for row in [header, *rows]]


def _metric(row: dict) -> str:
    value = row.get("test_metric")
    return "-" if value is None else f"{row.get('metric') or ''} {value:.4g}".strip()


def _running_lines(status, markers) -> list[str]:
    rows = []
    for m in markers:
        epoch = "-" if m.epoch is None else f"{m.epoch}" + (f"/{m.epochs}" if m.epochs else "")
        rows.append(
            [
                m.trial_key,
                _where(m.host, m.node_ip, m.gpu_ids),
                m.pid if m.pid is not None else "?",
                _when(m.started_at),
                _ago(m.silent_s(status.now)),
                epoch,
                m.unit or "-",
                ("stale" if status.stale_marker(m) else "") + (f" ({m.problem})" if m.problem else ""),
            ]
        )
    return _table(["trial_key", "host", "pid", "started (UTC)", "heartbeat", "epoch", "unit", ""], rows)


def _where(host: str | None, node_ip: str | None = None, gpu_ids: str | None = None) -> str:
    """``host``, with the Ray node's address and the GPUs where known: ``gpu-3 (10.0.1.7, GPU 2)``."""
    detail = ", ".join(x for x in (node_ip, f"GPU {gpu_ids}" if gpu_ids else None) if x)
    return f"{host or '?'}" + (f" ({detail})" if detail else "")


def status_lines(status) -> list[str]:
    """The report of :func:`orchestrator.sweep.status.sweep_status`, as printed lines."""
    running = f"{status.running} running" + (f" ({status.stale} stale)" if status.stale else "")
    queued = f"{status.queued} queued" + (
        f" (+ those of {plural(status.unplanned, 'sweep')} that could not be planned)" if status.unplanned else ""
    )
    lines = [
        f"store {status.location} at {_when(status.now)} UTC: {plural(len(status.sweeps), 'sweep')}; "
        f"{status.done} done, {status.failed} failed, {running}, {queued}"
    ]
    if status.unread:
        lines.append(
            f"  {status.unread} of the done trials are counted by their object's name only (on object "
            "storage only the compacted parts and the newest rows are read): a sweep without a saved "
            "spec counts only the rows read, and the last rows landed and a sweep's trials outside its "
            "plan may miss some until `roft store compact`"
        )
    for sweep in status.sweeps:
        where = ", ".join(
            x for x in (sweep.spec_file, None if sweep.planned is None else f"{sweep.planned} planned") if x
        )
        lines += ["", f"sweep {sweep.name}" + (f" ({where})" if where else "") + f": {sweep.counts}"]
        if sweep.plan_error:
            lines.append(f"  {'cannot plan: ' if sweep.spec_file else ''}{sweep.plan_error}")
        if sweep.outside:
            lines.append(
                f"  {sweep.outside} of the done trials are outside its grid (search points, or trials of an "
                "earlier version of the spec)"
            )
        if sweep.last:
            lines.append(f"  last {len(sweep.last)} landed:")
            lines += _table(
                ["finished (UTC)", "trial_key", "backbone", "method", "task", "seed", "test", "host"],
                [
                    [
                        _when(r["finished_at"]),
                        r["trial_key"],
                        r["backbone"],
                        r["method_label"],
                        r["task"],
                        r["seed"],
                        _metric(r),
                        _where(r["hostname"], r.get("node_ip")),
                    ]
                    for r in sweep.last
                ],
            )
        if sweep.causes:
            lines.append(
                f"  failures by cause ({sweep.failed}; tracebacks in failures/, roft sweep --retry-failed "
                "runs them again):"
            )
            lines += [f"    {count:>5}  {error}" for error, count in sweep.causes]
        if sweep.running:
            lines.append(
                f"  running ({len(sweep.running)}"
                + (
                    f", {len(sweep.stale)} stale: no heartbeat for {_duration(status.stale_after_s)}"
                    if sweep.stale
                    else ""
                )
                + "):"
            )
            lines += _running_lines(status, sweep.running)
    if status.unattributed:
        lines += [
            "",
            f"running trials of no sweep above ({len(status.unattributed)}):",
            *_running_lines(status, status.unattributed),
        ]
    return lines
