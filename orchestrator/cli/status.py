"""``roft status``: per sweep of a store, its done / failed / running / queued trials, the last rows
landed, the failure causes and the running trials, read from the store alone (no Ray)."""

from __future__ import annotations

from datetime import datetime

from orchestrator.cli.common import add_data_root, add_store, data_root, existing_store

STALE_AFTER_HELP = ("a running trial whose heartbeat is older than this is marked stale (its worker was killed "
                    "or is stuck); s, m, h or d (default 10m)")


def register(sub) -> None:
    status = sub.add_parser("status", help="per sweep of a store: done / failed / running / queued trials, the last "
                                           "rows landed, failure causes, running trials (no Ray needed)")
    add_store(status)
    add_data_root(status)
    status.add_argument("--stale-after", default="10m", metavar="AGE", help=STALE_AFTER_HELP)
    status.add_argument("--last", type=int, default=5, metavar="N",
                        help="how many of each sweep's last landed rows to print (default 5)")
    status.set_defaults(handler=print_status)

    placement = sub.add_parser("placement", help="where the trials ran, from the rows alone: per node and GPU, the "
                                                 "trials or fused groups and the most that trained at once")
    add_store(placement)
    placement.add_argument("--sweep", default=None, help="only this sweep's rows (default: every row)")
    placement.add_argument("--timeline", action="store_true",
                           help="also list every trial or fused group: node, GPU, start-finish in seconds")
    placement.set_defaults(handler=print_placement)


def print_status(args) -> int:
    from orchestrator.store.clean import age_seconds
    from orchestrator.sweep.status import sweep_status

    try:
        stale_after = age_seconds(args.stale_after)
    except ValueError as exc:
        raise ValueError(str(exc).replace("--older-than", "--stale-after")) from None
    if args.last < 0:
        raise ValueError(f"--last {args.last} is not accepted; accepted: a number of rows >= 0")
    status = sweep_status(existing_store(args.store), data_root(args), stale_after, args.last)
    for line in status_lines(status):
        print(line)
    return 0


def print_placement(args) -> int:
    from orchestrator.analysis.placement import COLUMNS, placement_lines

    rows = existing_store(args.store).read_trials(COLUMNS).to_pylist()
    if args.sweep is not None:
        sweeps = sorted({r["sweep"] for r in rows})
        rows = [r for r in rows if r["sweep"] == args.sweep]
        if not rows:
            raise ValueError(f"--sweep {args.sweep!r} has no rows in the store; accepted: {', '.join(sweeps) or 'none'}")
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


def _table(header: list[str], rows: list[list[object]], indent: str = "    ") -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    return [(indent + "  ".join(str(x).ljust(w) for x, w in zip(row, widths))).rstrip() for row in [header, *rows]]


def _metric(row: dict) -> str:
    value = row.get("test_metric")
    return "-" if value is None else f"{row.get('metric') or ''} {value:.4g}".strip()


def _running_lines(status, markers) -> list[str]:
    rows = []
    for m in markers:
        epoch = "-" if m.epoch is None else f"{m.epoch}" + (f"/{m.epochs}" if m.epochs else "")
        rows.append([m.trial_key, _where(m.host, m.node_ip, m.gpu_ids), m.pid if m.pid is not None else "?",
                     _when(m.started_at),
                     _ago(m.silent_s(status.now)), epoch, m.unit or "-",
                     ("stale" if status.stale_marker(m) else "") + (f" ({m.problem})" if m.problem else "")])
    return _table(["trial_key", "host", "pid", "started (UTC)", "heartbeat", "epoch", "unit", ""], rows)


def _where(host: str | None, node_ip: str | None = None, gpu_ids: str | None = None) -> str:
    """``host``, with the Ray node's address and the GPUs where known: ``gpu-3 (10.0.1.7, GPU 2)``."""
    detail = ", ".join(x for x in (node_ip, f"GPU {gpu_ids}" if gpu_ids else None) if x)
    return f"{host or '?'}" + (f" ({detail})" if detail else "")


def status_lines(status) -> list[str]:
    """The report of :func:`orchestrator.sweep.status.sweep_status`, as printed lines."""
    running = f"{status.running} running" + (f" ({status.stale} stale)" if status.stale else "")
    queued = f"{status.queued} queued" + (f" (+ those of {status.unplanned} sweep(s) that could not be planned)"
                                          if status.unplanned else "")
    lines = [f"store {status.location} at {_when(status.now)} UTC: {len(status.sweeps)} sweep(s); "
             f"{status.done} done, {status.failed} failed, {running}, {queued}"]
    if status.unread:
        lines.append(f"  {status.unread} of the done trials are counted by their object's name only (on object "
                     "storage only the compacted parts and the newest rows are read): a sweep without a saved "
                     "spec counts only the rows read, and the last rows landed and a sweep's trials outside its "
                     "plan may miss some until `roft store compact`")
    for sweep in status.sweeps:
        where = ", ".join(x for x in (sweep.spec_file, None if sweep.planned is None else f"{sweep.planned} planned")
                          if x)
        lines += ["", f"sweep {sweep.name}" + (f" ({where})" if where else "") + f": {sweep.counts}"]
        if sweep.plan_error:
            lines.append(f"  {'cannot plan: ' if sweep.spec_file else ''}{sweep.plan_error}")
        if sweep.outside:
            lines.append(f"  {sweep.outside} of the done trials are outside its grid (search points, or trials of an "
                         "earlier version of the spec)")
        if sweep.last:
            lines.append(f"  last {len(sweep.last)} landed:")
            lines += _table(["finished (UTC)", "trial_key", "backbone", "method", "task", "seed", "test", "host"],
                            [[_when(r["finished_at"]), r["trial_key"], r["backbone"], r["method_label"], r["task"],
                              r["seed"], _metric(r), _where(r["hostname"], r.get("node_ip"))] for r in sweep.last])
        if sweep.causes:
            lines.append(f"  failures by cause ({sweep.failed}; tracebacks in failures/, roft sweep --retry-failed "
                         "runs them again):")
            lines += [f"    {count:>5}  {error}" for error, count in sweep.causes]
        if sweep.running:
            lines.append(f"  running ({len(sweep.running)}" + (f", {len(sweep.stale)} stale: no heartbeat for "
                                                               f"{_duration(status.stale_after_s)}"
                                                               if sweep.stale else "") + "):")
            lines += _running_lines(status, sweep.running)
    if status.unattributed:
        lines += ["", f"running trials of no sweep above ({len(status.unattributed)}):",
                  *_running_lines(status, status.unattributed)]
    return lines
