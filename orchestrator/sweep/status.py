"""The state of a store shared by many nodes, per sweep, from the store alone (``roft status``).

For every sweep the store knows of (a saved spec ``specs/<sweep>.yaml``, or rows, failure
records or running markers naming it), its trials are counted as

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
from datetime import datetime, timezone
from typing import Any

import yaml

from orchestrator.store.results import ResultStore
from orchestrator.store.status import DEFAULT_STALE_AFTER_S, Marker, StoreState, read_store_state
from orchestrator.sweep.plan import plan_sweep
from search_spaces.spec import parse_spec
from trainables.core.data_root import DataRoot


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


def _planned_keys(text: str, source: str, state: StoreState, data_root: DataRoot) -> tuple[str | None, set[str], str]:
    """(the spec's sweep name, its planned trial keys, "") or (None, set(), why it cannot be planned)."""
    try:
        spec = parse_spec(yaml.safe_load(text), source)
        plan = plan_sweep(spec, _Known(state), data_root)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - any reason is reported on the sweep's line
        return None, set(), f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    if plan.missing_files:
        what = "; ".join(f"{what}: {why}" for what, why in plan.missing_files.items())
        return spec.name, set(), f"missing files ({len(plan.missing_files)}): {what}"
    return spec.name, {t.key() for t in plan.trials}, ""


def sweep_status(store: ResultStore, data_root: DataRoot, stale_after_s: float = DEFAULT_STALE_AFTER_S,
                 last: int = 5, now: datetime | None = None) -> StoreStatus:
    """Per sweep of ``store``: done / failed / running / queued counts, the ``last`` rows landed, the
    failure causes and the running trials (stale after ``stale_after_s`` seconds without a heartbeat).

    Raises :class:`FileNotFoundError` when the store holds no sweep at all (no spec, row, failure
    record or running marker).
    """
    now = now or datetime.now(timezone.utc)
    state = read_store_state(store)
    if state.empty:
        raise FileNotFoundError(f"store {store.location!r} holds no sweep: no specs/, trials/, failures/ or "
                                "running/ files")
    running = {m.trial_key: m for m in state.running()}
    stale = {key for key, m in running.items() if m.is_stale(now, stale_after_s)}
    specs = {name[:-len(".yaml")]: (name, text) for name, text in state.specs}
    sweeps, queued_keys, unplanned, attributed = [], set(), 0, set()
    for name in state.sweep_names():
        planned, error, spec_file = None, "", None
        if name in specs:
            spec_file = f"specs/{specs[name][0]}"
            _, keys, error = _planned_keys(specs[name][1], spec_file, state, data_root)
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
        sweeps.append(SweepStatus(
            name=name, spec_file=spec_file, planned=None if planned is None else len(planned), plan_error=error,
            done=len(done), failed=len(failed), running=sweep_running,
            stale={m.trial_key for m in sweep_running} & stale, queued=queued,
            outside=0 if planned is None else len(done - planned), last=state.last_rows(done, last),
            causes=state.failure_causes(failed)))
    return StoreStatus(location=store.location, now=now, stale_after_s=stale_after_s, sweeps=sweeps,
                       done=len(state.done), failed=len(state.failed - running.keys()), running=len(running),
                       stale=len(stale), queued=len(queued_keys), unplanned=unplanned,
                       unattributed=[m for key, m in sorted(running.items()) if key not in attributed],
                       unread=state.unread)
