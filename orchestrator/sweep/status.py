"""The state of a store shared by many nodes, per sweep, from the store alone (``roft status``).

For every sweep the store knows of (a saved spec ``specs/<sweep>.yaml``, ``roft alpha``'s
included, or rows, failure records or running markers naming it), its trials are counted as

* **done**: a committed row (whichever sweep wrote it: a sweep skips every trial in the store);
* **failed**: a failure record and no row;
* **running**: a running marker and no row (``stale`` when its heartbeat is older than the
  threshold: a killed or stuck worker);
* **queued**: planned by the saved spec and none of the above: what rerunning the sweep would run
  (a failed trial reruns only with ``--retry-failed``).

Queued trials need the sweep's plan, hence the data root (the files' sha256 are part of the trial
keys); a spec that cannot be planned (invalid, unknown names, missing files) is reported on its
sweep's line, and its sweep is counted from what names it in the store. Trials that the sweep ran
outside its grid (points of hyper-parameter searches, trials of an earlier version of the spec)
count as done and are reported apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import yaml

from orchestrator.store.results import ResultStore
from orchestrator.store.status import DEFAULT_STALE_AFTER_S, Marker, StoreState, read_store_state
from orchestrator.sweep.alpha import ALPHA_SWEEP, is_alpha_spec, saved_request_keys
from orchestrator.sweep.plan import plan_sweep
from search_spaces.spec import parse_spec
from trainables.core.data_root import DataRoot

RATE_WINDOW_S = 600.0  # trials per hour are counted over the last 10 minutes


@dataclass
class SweepStatus:
    name: str
    spec_file: str | None  # specs/<name>.yaml, or None when the store holds no spec of the sweep
    planned: int | None  # trials of the spec's plan; None when it could not be planned
    plan_error: str  # why the spec could not be planned ("" when it was)
    done: int
    failed: int
    running: list[Marker]
    stale: set[str]  # keys of the running markers that are stale
    queued: int | None  # None when the spec could not be planned
    outside: int  # done trials of this sweep outside its plan (searched points, an earlier spec)
    last: list[dict[str, Any]] = field(default_factory=list)  # rows landed last, newest first
    causes: list[tuple[str, int]] = field(default_factory=list)  # (error line, count) of its failures
    landed_recently: int = 0  # rows landed in the last ``rate_window_s`` seconds
    rate_window_s: float = RATE_WINDOW_S
    newest_failures: list[dict[str, Any]] = field(default_factory=list)  # failure records, newest first

    @property
    def per_hour(self) -> float:
        """Trials landed per hour over the last :attr:`rate_window_s` seconds."""
        return self.landed_recently * 3600.0 / self.rate_window_s

    @property
    def eta_s(self) -> float | None:
        """Seconds until the running and queued trials land at :attr:`per_hour`; None when nothing
        landed lately (no rate) or the queue is unknown, 0 when nothing is left."""
        if self.queued is None:
            return None
        left = self.queued + len(self.running)
        if left == 0:
            return 0.0
        return None if self.landed_recently == 0 else left / self.per_hour * 3600.0

    @property
    def counts(self) -> str:
        running = f"{len(self.running)} running" + (f" ({len(self.stale)} stale)" if self.stale else "")
        queued = "? queued" if self.queued is None else f"{self.queued} queued"
        return f"{self.done} done, {self.failed} failed, {running}, {queued}"


@dataclass
class StoreStatus:
    location: str
    now: datetime
    stale_after_s: float
    sweeps: list[SweepStatus]
    done: int  # rows in the store
    failed: int  # failure records without a row
    running: int  # running markers without a row
    stale: int
    queued: int  # distinct queued trials over the sweeps that could be planned
    unplanned: int  # sweeps whose queued trials are unknown (no spec, or one that cannot be planned)
    unattributed: list[Marker] = field(default_factory=list)  # running markers of no sweep listed
    unread: int = 0  # rows on object storage known only by their object's name (see read_store_state)

    def stale_marker(self, marker: Marker) -> bool:
        return marker.is_stale(self.now, self.stale_after_s)


class _Known:
    """What :func:`plan_sweep` asks of a store, answered from one read of it (no read per sweep)."""

    def __init__(self, state: StoreState):
        self._state = state

    def done_keys(self) -> set[str]:
        return self._state.done

    def failed_keys(self) -> set[str]:
        return self._state.failed


def _planned_keys(
    text: str, source: str, state: StoreState, data_root: DataRoot, store: ResultStore
) -> tuple[str | None, set[str], str]:
    """(the spec's sweep name, its planned trial keys, "") or (None, set(), why it cannot be planned).
    ``roft alpha``'s saved requests are planned against the store's Full-FT checkpoints."""
    try:
        raw = yaml.safe_load(text)
        if is_alpha_spec(raw):
            return ALPHA_SWEEP, saved_request_keys(store, raw), ""
        spec = parse_spec(raw, source)
        plan = plan_sweep(spec, _Known(state), data_root)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - any reason is reported on the sweep's line
        return None, set(), f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    if plan.missing_files:
        what = "; ".join(f"{what}: {why}" for what, why in plan.missing_files.items())
        return spec.name, set(), f"missing files ({len(plan.missing_files)}): {what}"
    return spec.name, {t.key() for t in plan.trials}, ""


def sweep_status(
    store: ResultStore,
    data_root: DataRoot,
    stale_after_s: float = DEFAULT_STALE_AFTER_S,
    last: int = 5,
    now: datetime | None = None,
    plans: dict[str, tuple] | None = None,
    rate_window_s: float = RATE_WINDOW_S,
    failures: int = 3,
) -> StoreStatus:
    """Per sweep of ``store``: done / failed / running / queued counts, the ``last`` rows landed, the
    failure causes, the ``failures`` newest failure records, the rows landed in the last
    ``rate_window_s`` seconds and the running trials (stale after ``stale_after_s`` seconds without
    a heartbeat).

    ``plans``: a cache of the specs' plans, by spec text, kept by a caller that asks again and again
    (``roft status --watch``): a sweep's plan depends on the spec and the data root only, not on the
    store (``roft alpha``'s request, planned against the store's checkpoints, is planned every time).

    Raises :class:`FileNotFoundError` when the store holds no sweep at all (no spec, row, failure
    record or running marker).
    """
    now = now or datetime.now(timezone.utc)
    state = read_store_state(store)
    if state.empty:
        raise FileNotFoundError(
            f"store {store.location!r} holds no sweep: no specs/, trials/, failures/ or running/ files"
        )
    running = {m.trial_key: m for m in state.running()}
    stale = {key for key, m in running.items() if m.is_stale(now, stale_after_s)}
    specs = {name[: -len(".yaml")]: (name, text) for name, text in state.specs}
    sweeps, queued_keys, unplanned, attributed = [], set(), 0, set()
    for name in state.sweep_names():
        planned, error, spec_file = None, "", None
        if name in specs:
            spec_file = f"specs/{specs[name][0]}"
            text = specs[name][1]
            if plans is not None and text in plans:
                keys, error = plans[text]
            else:
                planned_name, keys, error = _planned_keys(text, spec_file, state, data_root, store)
                if plans is not None and planned_name != ALPHA_SWEEP:  # an alpha request follows the store
                    plans[text] = (keys, error)
            planned = None if error else keys
        else:
            error = f"no saved spec (specs/{name}.yaml): its queued trials are unknown"
        named = state.keys_of(name)
        keys = named | (planned or set())
        done = keys & state.done
        sweep_running = [running[k] for k in sorted(keys & running.keys())]
        failed = (keys & state.failed) - running.keys()
        queued = None
        if planned is not None:
            queued_set = planned - state.done - state.failed - running.keys()
            queued_keys |= queued_set
            queued = len(queued_set)
        else:
            unplanned += 1
        attributed |= keys
        sweeps.append(
            SweepStatus(
                name=name,
                spec_file=spec_file,
                planned=None if planned is None else len(planned),
                plan_error=error,
                done=len(done),
                failed=len(failed),
                running=sweep_running,
                stale={m.trial_key for m in sweep_running} & stale,
                queued=queued,
                outside=0 if planned is None else len(done - planned),
                last=state.last_rows(done, last),
                causes=state.failure_causes(failed),
                landed_recently=state.landed_since(done, now - timedelta(seconds=rate_window_s)),
                rate_window_s=rate_window_s,
                newest_failures=state.newest_failures(failed, failures),
            )
        )
    return StoreStatus(
        location=store.location,
        now=now,
        stale_after_s=stale_after_s,
        sweeps=sweeps,
        done=len(state.done),
        failed=len(state.failed - running.keys()),
        running=len(running),
        stale=len(stale),
        queued=len(queued_keys),
        unplanned=unplanned,
        unattributed=[m for key, m in sorted(running.items()) if key not in attributed],
        unread=state.unread,
    )
