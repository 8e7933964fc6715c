"""What a store says about the work on it, read from the store alone (no Ray): for ``roft status``.

* **running markers** (``running/<trial_key>.json``, written by the worker while a trial trains,
  :meth:`~orchestrator.store.results.ResultStore.mark_running`): host, pid, start, last heartbeat;
  a marker whose heartbeat is older than a threshold is *stale* (its worker was killed, or is
  stuck: a live worker refreshes it at least every 30 s of epochs);
* **failure records** (``failures/``): grouped by their error line;
* **the last rows landed** (``trials/``, by ``finished_at``).

:func:`read_store_state` reads all three once; which trials a sweep still has to run needs its
plan, one layer up (:mod:`orchestrator.sweep.status`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from orchestrator.store.results import ResultStore

DEFAULT_STALE_AFTER_S = 600.0  # a running marker's heartbeat older than this: stale
# The columns of the last rows that ``roft status`` prints (and what it needs to attribute rows to sweeps).
ROW_COLUMNS = [
    "trial_key",
    "sweep",
    "backbone",
    "method_label",
    "task",
    "seed",
    "metric",
    "test_metric",
    "hostname",
    "node_ip",
    "finished_at",
]
FAILURE_COLUMNS = ["trial_key", "sweep", "error", "failed_at"]


def parse_time(value: Any) -> datetime | None:
    """An ISO time of a marker as an aware datetime (UTC when it names no zone), else None."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Marker:
    """One running marker. ``problem`` says why it could not be read (then only the key is known)."""

    trial_key: str
    sweep: str | None = None
    host: str | None = None
    node_ip: str | None = None  # the Ray node (markers of roft >= 0.3)
    gpu_ids: str | None = None  # the accelerators Ray assigned ("0", "2,3"; empty for none)
    pid: int | None = None
    started_at: datetime | None = None
    heartbeat_at: datetime | None = None
    unit: str | None = None
    epoch: int | None = None
    epochs: int | None = None
    stage: str | None = None
    problem: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Marker:
        def text(name: str) -> str | None:
            value = data.get(name)
            return None if value is None else str(value)

        def number(name: str) -> int | None:
            value = data.get(name)
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        return cls(
            trial_key=str(data["trial_key"]),
            sweep=text("sweep"),
            host=text("host"),
            node_ip=text("node_ip"),
            gpu_ids=text("gpu_ids"),
            pid=number("pid"),
            started_at=parse_time(data.get("started_at")),
            heartbeat_at=parse_time(data.get("heartbeat_at")),
            unit=text("unit"),
            epoch=number("epoch"),
            epochs=number("epochs"),
            stage=text("stage"),
            problem=text("unreadable") or "",
        )

    def silent_s(self, now: datetime) -> float | None:
        """Seconds since the last heartbeat (None when the marker holds none)."""
        return None if self.heartbeat_at is None else (now - self.heartbeat_at).total_seconds()

    def is_stale(self, now: datetime, after_s: float) -> bool:
        """No heartbeat for ``after_s`` seconds (or none readable)."""
        silent = self.silent_s(now)
        return silent is None or silent > after_s


@dataclass
class StoreState:
    """One read of what ``roft status`` needs from a store.

    ``rows`` are the rows read; ``done`` every trial with a row, read or known by its file's name
    (``unread`` of them: per-trial objects on object storage beyond the newest ones read).
    """

    specs: list[tuple[str, str]]  # (file name, text) of specs/
    rows: pa.Table  # ROW_COLUMNS of the committed trial rows read, once per trial
    failures: pa.Table  # FAILURE_COLUMNS of every failure record
    markers: list[Marker]
    done: set[str] = field(default_factory=set)  # default: the keys of ``rows``
    unread: int = 0  # rows known only by their file's name
    failed: set[str] = field(init=False)

    def __post_init__(self) -> None:
        self.done = set(self.done) | set(self.rows.column("trial_key").to_pylist())
        self.failed = set(self.failures.column("trial_key").to_pylist()) - self.done

    @property
    def empty(self) -> bool:
        return not (self.specs or self.rows.num_rows or self.failures.num_rows or self.markers)

    def sweep_names(self) -> list[str]:
        """The sweeps the store knows of: those with a saved spec (by name), then those only named
        by rows, failure records or running markers."""
        named = [name[: -len(".yaml")] for name, _ in self.specs]
        others = set(self.rows.column("sweep").drop_null().to_pylist())
        others |= set(self.failures.column("sweep").drop_null().to_pylist())
        others |= {m.sweep for m in self.markers if m.sweep}
        return named + sorted(others - set(named))

    def running(self) -> list[Marker]:
        """Markers of trials without a row (a marker left by a trial whose row landed is no trial in flight)."""
        return [m for m in self.markers if m.trial_key not in self.done]

    def keys_of(self, sweep: str) -> set[str]:
        """Keys of the rows, failure records and running markers that name ``sweep``."""
        keys = set(_where(self.rows, "sweep", sweep).column("trial_key").to_pylist())
        keys |= set(_where(self.failures, "sweep", sweep).column("trial_key").to_pylist())
        return keys | {m.trial_key for m in self.markers if m.sweep == sweep}

    def last_rows(self, keys: set[str], n: int) -> list[dict[str, Any]]:
        """The ``n`` rows among ``keys`` that landed last, newest first."""
        table = self.rows.filter(pc.is_in(self.rows.column("trial_key"), value_set=pa.array(sorted(keys), pa.string())))
        return _newest(table, "finished_at", n)

    def landed_since(self, keys: set[str], since: datetime) -> int:
        """How many rows among ``keys`` landed at ``since`` or later (by ``finished_at``)."""
        if not keys or self.rows.num_rows == 0:
            return 0
        table = self.rows.filter(pc.is_in(self.rows.column("trial_key"), value_set=pa.array(sorted(keys), pa.string())))
        times = table.column("finished_at").cast(pa.timestamp("us", tz="UTC"))
        return int(pc.sum(pc.greater_equal(times, pa.scalar(since, pa.timestamp("us", tz="UTC")))).as_py() or 0)

    def newest_failures(self, keys: set[str], n: int) -> list[dict[str, Any]]:
        """The ``n`` failure records among ``keys`` (not landed since) that were written last, newest first."""
        failed = sorted(keys & self.failed)
        table = self.failures.filter(
            pc.is_in(self.failures.column("trial_key"), value_set=pa.array(failed, pa.string()))
        )
        return _newest(table, "failed_at", n)

    def failure_causes(self, keys: set[str]) -> list[tuple[str, int]]:
        """``(error line, how many)`` of the failure records of ``keys`` (not landed since), most frequent first."""
        errors = [
            r["error"] or "(no error line)"
            for r in self.failures.select(["trial_key", "error"]).to_pylist()
            if r["trial_key"] in keys and r["trial_key"] in self.failed
        ]
        return sorted(Counter(errors).items(), key=lambda item: (-item[1], item[0]))


def _where(table: pa.Table, column: str, value: str) -> pa.Table:
    return table.filter(pc.equal(table.column(column), value))


def _newest(table: pa.Table, column: str, n: int) -> list[dict[str, Any]]:
    if n <= 0 or table.num_rows == 0:
        return []
    table = table.filter(pc.is_valid(table.column(column)))
    order = pc.sort_indices(table, sort_keys=[(column, "descending"), ("trial_key", "ascending")])
    return table.take(order[:n]).to_pylist()


def read_markers(store: ResultStore) -> list[Marker]:
    """Every running marker of the store, by key."""
    return [Marker.from_json(data) for data in store.read_running()]


# On object storage, the most per-trial row objects ``roft status`` reads (the newest); the rest
# count by name. A sweep of 10^5 trials that has not been compacted costs one listing and at most
# this many GETs, not 10^5.
REMOTE_ROWS_READ = 1000


def read_store_state(store: ResultStore, remote_rows_read: int = REMOTE_ROWS_READ) -> StoreState:
    """Specs, rows (:data:`ROW_COLUMNS`), failure records and running markers of ``store``.

    In a folder every committed row is read (its few columns). On object storage a trial is done
    when its object is listed (its name is its commit, see :meth:`ResultStore.done_keys`): the
    compacted parts and the ``remote_rows_read`` newest per-trial objects (by modification time,
    from the same listing) are read, the others only counted; their rows then miss from what
    needs a row's columns (a sweep's rows outside its plan, a sweep named only by rows, the last
    rows landed beyond the newest read), which ``roft store compact`` restores.
    """
    common = dict(
        specs=store.read_specs(), failures=store.scan("failures", columns=FAILURE_COLUMNS), markers=read_markers(store)
    )
    if not store.remote:
        return StoreState(rows=store.read_trials(columns=ROW_COLUMNS), **common)
    rows, done, unread = store.read_newest_trials(ROW_COLUMNS, remote_rows_read)
    return StoreState(rows=rows, done=done, unread=unread, **common)
