"""The benchmark's files and tasks as plain data (what ``roft data`` prints); backbones and methods
have theirs in :mod:`trainables.models.inventory` and :mod:`trainables.methods.inventory`.

Nothing here prints: every function returns rows (dataclasses) or yields them, and the command
line formats them. Files are looked up without downloading (``download=False``) except where a
command exists to fetch them (featurizing, the pre-training corpus).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainables.data import sources

# ------------------------------------------------------------------------------------------ files


@dataclass(frozen=True)
class FileCheck:
    """One registered file against the registry: ``status`` is ``ok``, ``mismatch`` or ``missing``."""

    relpath: str
    status: str
    actual_sha256: str | None = None  # set when the file was read


def verify_files(data_root: sources.DataRoot) -> list[FileCheck]:
    """Every registered file's sha256 against the registry (the served digest is accepted too)."""
    checks = []
    for relpath, spec in sources.FILES.items():
        try:
            path = sources.resolve(relpath, data_root, download=False)
        except sources.DataUnavailableError:
            checks.append(FileCheck(relpath, "missing"))
            continue
        actual = sources.sha256_of(path)
        status = "ok" if actual in (spec.sha256, spec.served_sha256) else "mismatch"
        checks.append(FileCheck(relpath, status, actual))
    return checks


def pretraining_corpus(corpus: str | None, data_root: sources.DataRoot) -> tuple[Path, str]:
    """The pre-training corpus and its sha256: ``corpus`` (any CSV, its digest recorded) or, for
    ``None``, the data root's ``pretrain/zinc250k.csv.gz`` (its digest checked against the registry)."""
    if corpus is None:
        from trainables.data.dataset import checked_sha256

        relpath = "pretrain/zinc250k.csv.gz"
        path = sources.resolve(relpath, data_root)
        return path, checked_sha256(relpath, path)
    path = Path(corpus)
    if not path.is_file():
        raise FileNotFoundError(f"--corpus {corpus}: no such file")
    return path, sources.sha256_of(path)


# ------------------------------------------------------------------------------------------ tasks


@dataclass(frozen=True)
class Featurized:
    """One task's file loaded by :func:`trainables.data.dataset.load_graphs`, timed."""

    task: str
    molecules: int
    dropped: int
    cold: bool  # featurized now (no cache before); False: loaded from the cache
    seconds: float

    @property
    def molecules_per_second(self) -> float:
        return self.molecules / self.seconds if self.seconds > 0 else float("inf")


def featurize_tasks(names: Iterable[str] | None, data_root: sources.DataRoot) -> Iterator[Featurized]:
    """Build (or load) the featurized cache of each task (default: every registered task), one at a time."""
    from trainables.data.dataset import checked_sha256, featurized_cache_path, load_graphs
    from trainables.data.tasks import TASKS

    for name in names or TASKS.names():
        task = TASKS.get(name)
        path = sources.resolve(task.file, data_root)
        cold = not featurized_cache_path(checked_sha256(task.file, path), task.scaffold_source).is_file()
        started = time.perf_counter()
        graphs, _ = load_graphs(task.file, task.smiles_column, data_root, task.scaffold_source)
        stats = graphs["stats"]
        yield Featurized(name, stats["molecules"], stats["dropped"], cold, time.perf_counter() - started)


@dataclass(frozen=True)
class TaskRow:
    """A registered task and the state of its file; ``rows`` is ``None`` when the file is missing,
    ``valid`` and ``dropped`` are ``None`` until the featurized cache exists."""

    name: str
    in_paper: bool
    task_type: str
    metric: str
    file: str
    rows: int | None
    valid: int | None
    dropped: int | None
    label_columns: int | None
    cached: bool


def task_inventory(data_root: sources.DataRoot) -> list[TaskRow]:
    """Every registered task: its file's rows and label columns, and RDKit-valid rows where cached."""
    from trainables.data.dataset import is_cached, load_graphs, read_table
    from trainables.data.tasks import TASKS

    rows = []
    for name, task in TASKS.items():
        common: dict[str, Any] = dict(
            name=name, in_paper=task.in_paper, task_type=task.task_type.value, metric=task.metric, file=task.file
        )
        try:
            path = sources.resolve(task.file, data_root, download=False)
        except sources.DataUnavailableError:
            rows.append(TaskRow(**common, rows=None, valid=None, dropped=None, label_columns=None, cached=False))
            continue
        table = read_table(path)
        valid = dropped = None
        cached = is_cached(task, data_root)
        if cached:
            graphs, _ = load_graphs(task.file, task.smiles_column, data_root, task.scaffold_source)
            valid, dropped = len(graphs["scaffolds"]), graphs["stats"]["dropped"]
        rows.append(
            TaskRow(
                **common,
                rows=len(table),
                valid=valid,
                dropped=dropped,
                label_columns=len(task.resolve_label_columns(list(table.columns))),
                cached=cached,
            )
        )
    return rows
