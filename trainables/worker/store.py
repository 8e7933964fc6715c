"""What a trial needs of the results store, as a protocol the worker owns.

The worker writes its own row, epoch curve and checkpoint, so a finished trial is durable even
if the driver dies; but ``trainables`` sits below the orchestrator and never imports it. The
orchestrator hands each trial an opener (``location -> TrialStore``; its ``ResultStore`` class
satisfies the protocol), and the worker opens the store named by ``Runtime.store`` with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol


class TrialStore(Protocol):
    """The store operations of one trial: look up landed trials, read parent checkpoints and
    alpha-search points, write a checkpoint, then the row with its epochs (the row last: a row
    means the trial is done); and mark what is in flight: one marker per trial or fused group
    (``running/<unit>.json``: its trial keys, host, pid, start, heartbeat), which the worker
    removes when the unit ends, landed or failed."""

    location: str

    def read_trial(self, trial_key: str) -> dict[str, Any] | None: ...

    def artifact_location(self, trial_key: str) -> str: ...

    def read_artifact(self, trial_key: str) -> bytes | None: ...

    def write_artifact(self, trial_key: str, blob: bytes) -> str: ...

    def alpha_points(self, study: str) -> list[dict[str, Any]]: ...

    def write_trial(
        self,
        row: dict[str, Any],
        epochs: Iterable[dict[str, Any]] = (),
        side: dict[str, list[dict[str, Any]]] | None = None,
    ) -> object: ...

    def mark_running(self, unit: str, keys: Sequence[str], info: dict[str, Any]) -> None: ...

    def clear_running(self, unit: str) -> None: ...


StoreOpener = Callable[[str], TrialStore]
