"""``roft store clean``: remove what interrupted work left beside a store's data.

Three kinds of leftovers, none ever read as data:

* **temporaries of interrupted writes**: every store file is written under a hidden name
  (``.<name>.<random>.tmp``) and renamed (or, on object storage, copied) into place; a writer
  killed in between leaves the hidden file. Only those older than ``older_than_s`` (default one
  hour) are removed, so that a write in flight on another host is never touched;
* **Ray Tune's experiment state of killed sweeps**: a sweep keeps it in ``<store>/_tune`` (on the
  driver's disk for object storage, see :meth:`ResultStore.tune_dir`) and deletes each
  experiment once its chunk finished cleanly; a killed sweep leaves it behind;
* **running markers of lost workers** (``running/<unit>.json``): a worker removes its marker when
  its trial ends; one killed with its node leaves it, its heartbeat frozen. A marker is removed
  when every trial it lists has landed, or when its heartbeat (rewritten at most every 30 s,
  after an epoch) is older than ``older_than_s``; an unreadable marker goes by its file's age.

It takes the store's lock as compaction does (refuses while a sweep runs here; ``--unlocked``
on object storage). Incomplete multipart uploads on S3 are not visible through the store's
filesystem; a bucket lifecycle rule (``AbortIncompleteMultipartUpload``) removes those.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.fs as pafs

from orchestrator.store.results import RUNNING, ResultStore
from orchestrator.store.schema import StoreError
from orchestrator.store.status import parse_time

DEFAULT_AGE_S = 3600.0


def is_temporary(base_name: str) -> bool:
    """A hidden temporary of an atomic write (``.<name>.<random>.tmp``)."""
    return base_name.startswith(".") and base_name.endswith(".tmp")


@dataclass
class CleanSummary:
    temporaries: list[str] = field(default_factory=list)  # relative to the store
    temporary_bytes: int = 0
    kept_recent: int = 0  # temporaries younger than the age limit
    tune_experiments: list[str] = field(default_factory=list)
    markers: list[str] = field(default_factory=list)  # running markers of lost workers, relative to the store
    dry_run: bool = False

    def __str__(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        lines = [
            f"{verb} {len(self.temporaries)} temporary file(s) of interrupted writes "
            f"({self.temporary_bytes:,} bytes) and {len(self.tune_experiments)} Tune experiment folder(s) "
            f"of killed sweeps, {len(self.markers)} running marker(s) of lost workers; kept "
            f"{self.kept_recent} temporary file(s) younger than the age limit"
        ]
        lines += [f"  {path}" for path in self.temporaries + self.tune_experiments + self.markers]
        return "\n".join(lines)


def clean(
    store: ResultStore, older_than_s: float = DEFAULT_AGE_S, dry_run: bool = False, unlocked: bool = False
) -> CleanSummary:
    """Remove (or with ``dry_run`` list) the leftovers of interrupted writes and killed sweeps."""
    if older_than_s < 0:
        raise ValueError(f"older_than_s={older_than_s!r} is not accepted; accepted: seconds >= 0")
    summary = CleanSummary(dry_run=dry_run)
    with store.compaction_lock(unlocked, action="clean"):
        cutoff = datetime.now(timezone.utc).timestamp() - older_than_s
        try:
            infos = store.fs.get_file_info(pafs.FileSelector(store.path(), recursive=True, allow_not_found=True))
        except OSError as exc:
            raise StoreError(f"cannot list the store at {store.location}: {exc}") from exc
        tune = store.tune_dir()
        markers = [
            info
            for info in infos
            if info.type == pafs.FileType.File
            and store.relative(info.path).startswith(f"{RUNNING}/")
            and info.base_name.endswith(".json")
        ]
        if markers:
            _lost_markers(store, markers, cutoff, summary)
        for info in infos:
            if info.type != pafs.FileType.File or not is_temporary(info.base_name):
                continue
            if not store.remote and Path(info.path).is_relative_to(tune):
                continue  # Tune's own files go with their experiment folder
            if info.mtime is not None and info.mtime.timestamp() > cutoff:
                summary.kept_recent += 1
                continue
            summary.temporaries.append(store.relative(info.path))
            summary.temporary_bytes += max(info.size or 0, 0)
            if not dry_run:
                store.delete(info.path)
        if tune.is_dir():
            for experiment in sorted(p for p in tune.iterdir() if p.is_dir()):
                summary.tune_experiments.append(str(experiment))
                if not dry_run:
                    shutil.rmtree(experiment)
    return summary


def _lost_markers(store: ResultStore, markers: list[pafs.FileInfo], cutoff: float, summary: CleanSummary) -> None:
    """Remove (unless a dry run) the markers whose trials all landed or whose heartbeat is older than ``cutoff``."""
    done = store.done_keys()
    for info in markers:
        blob = store.read_bytes(info.path)
        if blob is None:  # removed meanwhile by its worker
            continue
        try:
            data = json.loads(blob)
            keys, beat = set(data["trial_keys"]), parse_time(data.get("heartbeat_at"))
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
            keys, beat = None, None
        last = beat.timestamp() if beat is not None else (info.mtime.timestamp() if info.mtime else 0.0)
        if (keys and keys <= done) or last < cutoff:
            summary.markers.append(store.relative(info.path))
            if not summary.dry_run:
                store.delete(info.path)
