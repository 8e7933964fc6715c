"""``roft store clean``: remove what interrupted work left beside a store's data.

Two kinds of leftovers, neither ever read:

* **temporaries of interrupted writes**: every store file is written under a hidden name
  (``.<name>.<random>.tmp``) and renamed (or, on object storage, copied) into place; a writer
  killed in between leaves the hidden file. Only those older than ``older_than_s`` (default one
  hour) are removed, so that a write in flight on another host is never touched;
* **Ray Tune's experiment state of killed sweeps**: a sweep keeps it in ``<store>/_tune`` (on the
  driver's disk for object storage, see :meth:`ResultStore.tune_dir`) and deletes each
  experiment once its chunk finished cleanly; a killed sweep leaves it behind.

It takes the store's lock as compaction does (refuses while a sweep runs here; ``--unlocked``
on object storage). Incomplete multipart uploads on S3 are not visible through the store's
filesystem; a bucket lifecycle rule (``AbortIncompleteMultipartUpload``) removes those.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.fs as pafs

from orchestrator.store.results import ResultStore
from orchestrator.store.schema import StoreError

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
    dry_run: bool = False

    def __str__(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        lines = [f"{verb} {len(self.temporaries)} temporary file(s) of interrupted writes "
                 f"({self.temporary_bytes:,} bytes) and {len(self.tune_experiments)} Tune experiment folder(s) "
                 f"of killed sweeps; kept {self.kept_recent} temporary file(s) younger than the age limit"]
        lines += [f"  {path}" for path in self.temporaries + self.tune_experiments]
        return "\n".join(lines)


def clean(store: ResultStore, older_than_s: float = DEFAULT_AGE_S, dry_run: bool = False,
          unlocked: bool = False) -> CleanSummary:
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


def age_seconds(text: str) -> float:
    """``"90m"``, ``"2h"``, ``"30s"``, ``"0"`` -> seconds (for ``--older-than``)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    try:
        seconds = float(value) * units[unit]
    except ValueError:
        raise ValueError(f"--older-than {text!r} is not accepted; accepted: a number with s, m, h or d "
                         "(e.g. 30m, 2h)") from None
    if seconds < 0:
        raise ValueError(f"--older-than {text!r} is not accepted; accepted: a duration >= 0")
    return seconds

