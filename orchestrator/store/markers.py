"""What is in flight on a store: the running markers of trials, and the locks of sweeps and compactions.

Markers are small JSON objects (``running/<unit>.json``), no table. The locks are an advisory
``flock`` on ``<store>/.lock`` in a folder, and leases (:mod:`orchestrator.store.leases`) on object
storage.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator, Sequence
from typing import Any

from orchestrator.store import leases
from orchestrator.store.files import StoreFiles
from orchestrator.store.schema import LOCK_NAME, RUNNING, StoreError


class StoreMarkers(StoreFiles):
    """Running markers, and the sweep and compaction locks of a store."""

    def mark_running(self, unit: str, keys: Sequence[str], info: dict[str, Any]) -> None:
        """Write (or refresh) ``running/<unit>.json``: ``info`` as a JSON object with the ``trial_keys``
        of the unit (one trial, or every member of a fused group: one small write per unit and
        heartbeat, whatever the group's size).

        A worker marks the trials it trains (host, pid, start, heartbeat, ...) so that ``roft status``
        can tell, from the store alone, what runs where; it removes the marker when the trial's row
        lands or the trial fails (:meth:`clear_running`), and a killed worker leaves it behind, with
        a heartbeat that no longer advances. Markers are no table: :meth:`check_tables`, the scans,
        compaction and ``forget`` never look at ``running/``. Written atomically, as every store file.
        """
        self.write_bytes(
            self.path(RUNNING, f"{unit}.json"),
            json.dumps({**info, "trial_keys": list(keys)}, sort_keys=True, default=str).encode(),
        )

    def clear_running(self, unit: str) -> None:
        """Remove the running marker of ``unit`` (a missing one is no error)."""
        self.delete(self.path(RUNNING, f"{unit}.json"))

    def read_running(self) -> list[dict[str, Any]]:
        """Every running trial: its unit's JSON object with its own ``trial_key``; a marker that is
        not a JSON object with ``trial_keys`` is ``{"trial_key": <its name>, "unreadable": <why>}``.
        Markers removed meanwhile are left out."""
        markers: list[dict[str, Any]] = []
        for path in self.list_files(RUNNING, ".json"):
            name = path.rpartition("/")[2][: -len(".json")]
            blob = self.read_bytes(path)
            if blob is None:
                continue
            try:
                marker = json.loads(blob)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                marker = {"trial_key": name, "unreadable": f"not JSON: {exc}"}
            if not isinstance(marker, dict):
                marker = {"trial_key": name, "unreadable": f"not a JSON object but {type(marker).__name__}"}
            keys = marker.pop("trial_keys", None)
            if not (isinstance(keys, list) and keys and all(isinstance(k, str) for k in keys)):
                keys = [name]
                marker.setdefault("unreadable", "no list of trial_keys")
            markers.extend({**marker, "trial_key": key} for key in keys)
        return markers

    # ---- locking ---------------------------------------------------------------------
    @contextlib.contextmanager
    def sweep_lock(self) -> Iterator[None]:
        """Held (shared) by a running sweep; :meth:`compaction_lock` needs it exclusively.

        In a folder: an advisory ``flock`` on ``<store>/.lock``; it guards this host (and
        filesystems that honour ``flock`` across hosts); on a shared store, do not compact while
        any node sweeps. On object storage: a ``sweep`` lease (:mod:`orchestrator.store.leases`),
        renewed while the sweep runs; it refuses while a compaction holds its lease.
        """
        if self.remote:
            with leases.hold(self, "sweep", action="sweep"):
                yield
            return
        with self._lock_file() as handle:
            fcntl.flock(handle, fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _lock_file(self) -> Iterator[Any]:
        """``<store>/.lock`` opened for locking; :class:`StoreError` when it cannot be created or opened."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            handle = open(self.root / LOCK_NAME, "a")
        except OSError as exc:
            raise StoreError(
                f"the results store could not be written: cannot open its lock file "
                f"{self.root / LOCK_NAME} ({exc}). Fix the store's permissions (or choose another "
                "--store), then rerun the same command"
            ) from exc
        with handle:
            yield handle

    @contextlib.contextmanager
    def compaction_lock(self, unlocked: bool = False, action: str = "compact") -> Iterator[None]:
        """Exclusive use of the store for compaction (or another ``action`` that rewrites files);
        :class:`StoreError` while a sweep holds it.

        In a folder the lock is always taken (``unlocked`` changes nothing). On object storage
        a ``compaction`` lease (:mod:`orchestrator.store.leases`): refused while any sweep or other
        compaction holds a live lease; ``unlocked`` skips it (the caller's word that nothing else
        writes to the store meanwhile).
        """
        if self.remote:
            if unlocked:  # the caller's word that nothing else writes (no lease is taken or checked)
                yield
                return
            with leases.hold(self, "compaction", action=action):
                yield
            return
        with self._lock_file() as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StoreError(
                    f"a sweep is running on the store at {self.location} (it holds {LOCK_NAME}); "
                    f"{action} after it finishes"
                ) from None
            yield
