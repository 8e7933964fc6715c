"""``roft bench plan``: planning a large grid and diffing it against a store that holds it.

Times, in this process: planning the spec against an empty store (expanding the grid, adding
parents, computing every trial key, the fusion summary), writing a store that holds one row per
planned trial (one compacted file, or with ``per_trial_files`` one file per trial as sweeps
write them; only ``trial_key`` is filled), and planning the spec again against that store
(learning every done key and diffing). Prints seconds and the process's peak resident memory
after each step (peak RSS only grows, so the last figure covers all three). ``store`` puts the
full store at a given location (an ``s3://`` prefix measures planning against object storage).

The re-plan is split into the store's reads (``done_keys`` and ``failed_keys``) and the rest
(planning proper), and set against a plain listing of ``trials/`` by the store's own pyarrow
filesystem in the same run (no roft code: what any client pays the server for the same names).
A store on a plain-HTTP S3 endpoint (``endpoint_override=HOST:PORT&scheme=http``) is reached
through a :class:`~orchestrator.bench.s3_requests.RequestCounter` for both, which counts the requests
(LIST and others) and the seconds the server took to answer them.
"""

from __future__ import annotations

import dataclasses
import math
import resource
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs

from orchestrator.bench.s3_requests import RequestCounter, Requests, counted
from orchestrator.store.results import ResultStore
from orchestrator.store.schema import PART_PREFIX, TRIAL_SCHEMA
from orchestrator.sweep.plan import plan_sweep
from search_spaces import load_spec
from search_spaces.spec import SweepSpec
from trainables.core.data_root import DataRoot

LIST_PAGE = 1000  # the most names one S3 LIST request returns


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _TimedStore(ResultStore):
    """A store that adds the seconds of its reads of what is done or failed to :attr:`reads_s`."""

    def __init__(self, root: str):
        super().__init__(root)
        self.reads_s = 0.0

    def _timed(self, read: Callable[[], set[str]]) -> set[str]:
        started = time.perf_counter()
        try:
            return read()
        finally:
            self.reads_s += time.perf_counter() - started

    def done_keys(self) -> set[str]:
        return self._timed(super().done_keys)

    def failed_keys(self) -> set[str]:
        return self._timed(super().failed_keys)


@dataclasses.dataclass
class Replan:
    """The figures of a re-plan against the full store (see :func:`replan`)."""

    objects: int  # names below trials/, as the plain listing found them
    plain_s: float  # the plain listing of trials/
    total_s: float  # the whole re-plan
    reads_s: float  # its done_keys and failed_keys
    pending: int
    plain_requests: Requests | None = None  # None: the store's requests were not counted
    requests: Requests | None = None

    @property
    def planning_s(self) -> float:
        return self.total_s - self.reads_s


def replan(spec: SweepSpec, uri: str, data_root: DataRoot) -> Replan:
    """Time a plain listing of ``trials/`` of the store at ``uri``, then re-planning ``spec`` against it.

    Through a :class:`RequestCounter` when the store's requests can be counted (see
    :func:`~orchestrator.bench.s3_requests.relayed_uri`). Raises :class:`RuntimeError` rather than return
    a figure that cannot be right: a relay that failed to pass a request, fewer LIST requests than
    the names listed need, server time above the wall time of a listing that sends one request at
    a time.
    """
    with counted(uri) as relay:
        store = _TimedStore(relay[0] if relay is not None else uri)
        counter: RequestCounter | None = relay[1] if relay is not None else None
        if counter is not None:
            counter.reset()  # opening the store: not part of either figure
        started = time.perf_counter()
        objects = len(store.fs.get_file_info(pafs.FileSelector(store.path("trials"), allow_not_found=True)))
        plain_s = time.perf_counter() - started
        plain_requests = counter.reset() if counter is not None else None
        started = time.perf_counter()
        again = plan_sweep(spec, store, data_root)
        total_s = time.perf_counter() - started
        requests = counter.reset() if counter is not None else None
        if counter is not None and counter.errors:
            raise RuntimeError(f"the request counter failed, its counts would be wrong: {counter.errors[0]}")
    figures = Replan(
        objects=objects,
        plain_s=plain_s,
        total_s=total_s,
        reads_s=store.reads_s,
        pending=len(again.pending),
        plain_requests=plain_requests,
        requests=requests,
    )
    _check(figures)
    return figures


def _check(figures: Replan) -> None:
    if not 0 <= figures.reads_s <= figures.total_s:
        raise RuntimeError(f"store reads of {figures.reads_s:.3f} s in a re-plan of {figures.total_s:.3f} s")
    least = max(1, math.ceil(figures.objects / LIST_PAGE))
    for what, requests, wall in (
        ("the plain listing", figures.plain_requests, figures.plain_s),
        ("the re-plan's store reads", figures.requests, figures.reads_s),
    ):
        if requests is None:
            continue
        if requests.count["LIST"] < least:
            raise RuntimeError(
                f"{what} made {requests.count['LIST']} LIST requests counted for {figures.objects:,} "
                f"names, which need at least {least}: requests were missed"
            )
        if requests.server_s["LIST"] > wall:
            raise RuntimeError(
                f"{what}: the server answered its LIST requests in {requests.server_s['LIST']:.3f} s, "
                f"more than the {wall:.3f} s it took"
            )


def _counted(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _requests_text(requests: Requests, wall_s: float) -> str:
    """The requests of a listing that took ``wall_s``, and whose share of it the server's answers were."""
    others = {kind: n for kind, n in sorted(requests.count.items()) if kind != "LIST"}
    other = ", ".join(_counted(n, kind) for kind, n in others.items()) if others else "no other request"
    server = requests.server_s["LIST"]
    share = f" ({server / wall_s:.0%})" if wall_s > 0 else ""
    lists = _counted(requests.count["LIST"], "LIST request")
    return (
        f"{lists} ({other}); the server answered the LISTs in {server:.1f} s{share}, "
        f"leaving {wall_s - server:.1f} s to this process and the loopback"
    )


def bench_plan(
    spec_name: str = "paper.yaml",
    data_root: DataRoot = DataRoot(),
    seeds: int | None = None,
    store: str | None = None,
    per_trial_files: bool = False,
    writers: int = 16,
) -> dict[str, float]:
    """``seeds``: replace the spec's seeds by ``0 .. seeds-1`` (to plan a grid of another size)."""
    spec = load_spec(spec_name)
    if seeds is not None:
        spec = dataclasses.replace(spec, seeds=tuple(range(seeds)))
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="roft-plan-bench-") as tmp:
        results = ResultStore(store if store is not None else Path(tmp) / "store")
        if results.exists() and results.list_files("trials"):
            raise ValueError(f"--store {results.location} already holds trials; accepted: an empty folder or prefix")
        started = time.perf_counter()
        plan = plan_sweep(spec, results, data_root)
        summary = plan.summary()
        figures["plan against an empty store"] = time.perf_counter() - started
        print(
            f"{spec.name}: {len(plan.trials):,} trials planned in {figures['plan against an empty store']:.1f} s, "
            f"peak RSS {_peak_mib():,.0f} MiB"
        )
        started = time.perf_counter()
        keys = pa.array([t.key() for t in plan.trials], pa.string())
        columns = [keys if field.name == "trial_key" else pa.nulls(len(keys), field.type) for field in TRIAL_SCHEMA]
        table = pa.Table.from_arrays(columns, schema=TRIAL_SCHEMA)
        if per_trial_files:
            with ThreadPoolExecutor(max_workers=max(1, writers)) as pool:
                list(
                    pool.map(
                        lambda i: results.write_table(table.slice(i, 1), results.path("trials", f"{keys[i]}.parquet")),
                        range(len(keys)),
                    )
                )
        else:
            results.write_table(table, results.path("trials", f"{PART_PREFIX}0.parquet"))
        figures["write a store of every planned row"] = time.perf_counter() - started
        layout = "one file per trial" if per_trial_files else "one compacted file"
        print(
            f"store of {len(keys):,} rows ({layout}, {results.location}) written in "
            f"{figures['write a store of every planned row']:.1f} s"
        )
        again = replan(spec, results.uri, data_root)
        if again.pending:
            raise RuntimeError(f"{again.pending} trials still pending against a store holding every planned row")
        figures.update(
            {
                "plan against the full store": again.total_s,
                "store reads in the re-plan": again.reads_s,
                "planning in the re-plan": again.planning_s,
                "plain listing of trials/": again.plain_s,
                "objects in trials/": again.objects,
            }
        )
        print(
            f"planned again against the {len(keys):,}-row store in {again.total_s:.1f} s (0 pending), "
            f"peak RSS {_peak_mib():,.0f} MiB"
        )
        reads = (
            f"  store reads (done_keys, failed_keys): {again.reads_s:.1f} s for "
            f"{_counted(again.objects, 'object')} in trials/"
        )
        plain = (
            f"  a plain listing of trials/ in the same run (the store's pyarrow filesystem, no roft code): "
            f"{again.plain_s:.1f} s"
        )
        if again.requests is not None and again.plain_requests is not None:
            figures.update(
                {
                    "LIST requests in the re-plan": again.requests.count["LIST"],
                    "other requests in the re-plan": again.requests.total() - again.requests.count["LIST"],
                    "server seconds on the re-plan's LISTs": again.requests.server_s["LIST"],
                    "LIST requests of the plain listing": again.plain_requests.count["LIST"],
                    "server seconds on the plain listing's LISTs": again.plain_requests.server_s["LIST"],
                }
            )
            reads += f": {_requests_text(again.requests, again.reads_s)}"
            plain += f": {_requests_text(again.plain_requests, again.plain_s)}"
        elif results.remote:
            reads += " (requests not counted: only a store on a plain-HTTP endpoint_override can be)"
        print(reads)
        print(f"  planning (grid, parents, keys, diff): {again.planning_s:.1f} s")
        if again.plain_s > 0:
            figures["store reads / plain listing"] = again.reads_s / again.plain_s
            plain += f"; the store reads took {again.reads_s / again.plain_s:.2f}x the plain listing's time"
        print(plain)
        print(summary.splitlines()[0] if summary else "")
    figures["peak_rss_mib"] = _peak_mib()
    return figures
