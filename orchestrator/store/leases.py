"""Leases: the lock of a store on object storage, which has no ``flock``.

A lease is a small JSON object ``leases/<kind>-<id>.json`` (kind ``sweep`` or ``compaction``)
holding who took it and until when (``expires_at``, the holder's clock plus ``ttl``). Its holder
renews it every ``ttl / 4`` from a background thread and deletes it when done; a holder that dies
stops renewing, and its lease lapses after at most ``ttl``.

Taking a lease is write-then-look: the taker writes its own lease, then lists the live leases
of the kinds it excludes; if any exists it deletes its own and refuses. Of two takers that
race, at least one sees the other (each wrote before it looked), so a sweep and a compaction
never both proceed; at worst both refuse and are rerun. Sweeps share (a sweep excludes
compactions only); a compaction excludes sweeps and other compactions, so it never rewrites
files while a sweep on any node may be writing them.

Nodes' clocks are compared through ``expires_at``: a skew smaller than ``ttl`` minus the renewal
period (90 s at the default 120 s) is tolerated.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from orchestrator.store.files import StoreFiles
from orchestrator.store.schema import StoreError

LEASES = "leases"
KINDS = ("sweep", "compaction")
EXCLUDES = {"sweep": ("compaction",), "compaction": ("sweep", "compaction")}
DEFAULT_TTL_S = 120.0


@dataclass(frozen=True)
class Lease:
    kind: str
    holder: str
    acquired_at: float
    expires_at: float
    path: str

    def describe(self, now: float) -> str:
        return (
            f"a {self.kind} held by {self.holder} since {time.strftime('%H:%M:%S', time.gmtime(self.acquired_at))}"
            f" UTC (lease valid {max(0.0, self.expires_at - now):.0f} s more unless renewed)"
        )


def live_leases(store: StoreFiles, now: float | None = None) -> list[Lease]:
    """The store's leases that have not lapsed (unreadable lease files are ignored)."""
    now = time.time() if now is None else now
    out = []
    for path in store.list_files(LEASES, suffix=".json"):
        data = store.read_bytes(path)
        if data is None:
            continue
        try:
            record: dict[str, Any] = json.loads(data)
            lease = Lease(
                record["kind"], record["holder"], float(record["acquired_at"]), float(record["expires_at"]), path
            )
        except (ValueError, KeyError, TypeError):
            continue
        if lease.expires_at > now:
            out.append(lease)
    return out


@contextlib.contextmanager
def hold(store: StoreFiles, kind: str, ttl: float = DEFAULT_TTL_S, action: str = "") -> Iterator[Lease]:
    """Hold a ``kind`` lease on ``store`` for the block; :class:`StoreError` naming the live lease
    that excludes it (nothing is held then)."""
    if kind not in KINDS:
        raise ValueError(f"lease kind {kind!r} is not accepted; accepted: {', '.join(KINDS)}")
    path = store.path(LEASES, f"{kind}-{secrets.token_hex(8)}.json")
    holder = f"{socket.gethostname()}:{os.getpid()}"
    acquired = time.time()

    def write(expires_at: float) -> None:
        store.write_bytes(
            path,
            json.dumps({"kind": kind, "holder": holder, "acquired_at": acquired, "expires_at": expires_at}).encode(),
        )

    write(acquired + ttl)
    now = time.time()
    blocking = [lease for lease in live_leases(store, now) if lease.path != path and lease.kind in EXCLUDES[kind]]
    if blocking:
        _delete_quietly(store, path)
        raise StoreError(
            f"the store at {store.location} is in use: {blocking[0].describe(now)}; "
            f"{action or kind} after it ends (a lease lapses {ttl:.0f} s after its holder stops)"
        )
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(ttl / 4):
            try:
                write(time.time() + ttl)
            except (StoreError, OSError):  # the next renewal tries again; the lease lapses only after ttl
                pass

    renewer = threading.Thread(target=renew, name=f"roft-{kind}-lease", daemon=True)
    renewer.start()
    try:
        yield Lease(kind, holder, acquired, acquired + ttl, path)
    finally:
        stop.set()
        renewer.join()
        _delete_quietly(store, path)


def _delete_quietly(store: StoreFiles, path: str) -> None:
    with contextlib.suppress(StoreError, OSError):
        store.delete(path)
