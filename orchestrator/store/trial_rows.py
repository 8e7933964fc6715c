"""Trial rows: the commit of a trial (its row written last), the reads of committed rows once per
trial, failures, checkpoints, saved specs and alpha-search points.

A trial's row lives in ``trials/<trial_key>.parquet`` or, after a compaction, in a part file
(``trials/part-<id>.parquet``); readers keep each trial once (its own file first, else the newest part).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from orchestrator.store.schema import (
    FAILURE_SCHEMA,
    OPTIONAL_TEXT_COLUMNS,
    PART_PREFIX,
    SIDE_TABLES,
    TRIAL_SCHEMA,
    StoreError,
)
from orchestrator.store.tables import StoreTables, make_table


class TrialRows(StoreTables):
    """Writes and reads of trial rows and of what belongs to a trial (epochs, checkpoint, failure)."""

    # ---- writing ---------------------------------------------------------------------
    def write_trial(
        self,
        row: dict[str, Any],
        epochs: Iterable[dict[str, Any]] = (),
        side: dict[str, list[dict[str, Any]]] | None = None,
    ) -> Path | str:
        """Write a trial's epochs and other side tables, then its row (the commit).

        An empty string in one of :data:`OPTIONAL_TEXT_COLUMNS` is stored as null (``row`` itself is
        not changed). Returns the row's path (a :class:`Path` in a folder, the path on :attr:`fs` otherwise).
        """
        key = row["trial_key"]
        row = {**row, **{c: None for c in OPTIONAL_TEXT_COLUMNS if row.get(c) == ""}}  # "" means nothing: null
        row_table = make_table([row], TRIAL_SCHEMA, "trial row")
        tables = {"epochs": list(epochs), **(side or {})}
        unknown = sorted(set(tables) - set(SIDE_TABLES))
        if unknown:
            raise StoreError(f"unknown store table(s) {unknown}; accepted: {', '.join(SIDE_TABLES)}")
        prepared = {
            name: make_table([dict(r, trial_key=key) for r in rows], SIDE_TABLES[name], f"{name} row")
            for name, rows in tables.items()
            if rows
        }
        for name, table in prepared.items():
            self.write_table(table, self.path(name, f"{key}.parquet"))
        target = self.path("trials", f"{key}.parquet")
        self.write_table(row_table, target)
        return target if self.remote else Path(target)

    def artifact_location(self, trial_key: str) -> str:
        """Where a trial's checkpoint lives: a local path, or an ``s3://`` URI without query options."""
        path = self.path("artifacts", trial_key, "best.pt")
        return f"s3://{path}" if self.remote else path

    def write_artifact(self, trial_key: str, blob: bytes) -> str:
        """Write a trial's checkpoint atomically; returns :meth:`artifact_location`."""
        self.write_bytes(self.path("artifacts", trial_key, "best.pt"), blob)
        return self.artifact_location(trial_key)

    def read_artifact(self, trial_key: str) -> bytes | None:
        """A trial's checkpoint, or ``None`` when the store holds none."""
        return self.read_bytes(self.path("artifacts", trial_key, "best.pt"))

    def write_spec(self, sweep: str, text: bytes) -> None:
        """Keep a sweep's spec with its results (``specs/<sweep>.yaml``)."""
        self.write_bytes(self.path("specs", f"{sweep}.yaml"), text)

    def read_specs(self) -> list[tuple[str, str]]:
        """``(file name, text)`` of every saved sweep spec, by name."""
        specs = []
        for path in self.list_files("specs", ".yaml"):
            blob = self.read_bytes(path)
            if blob is not None:  # removed meanwhile
                specs.append((path.rpartition("/")[2], blob.decode()))
        return specs

    # ---- reading ---------------------------------------------------------------------
    def read_trial(self, trial_key: str) -> dict[str, Any] | None:
        """The committed row of one trial (its own file, else a compacted part file), or ``None``."""
        path = self.path("trials", f"{trial_key}.parquet")
        blob = self.read_bytes(path)
        if blob is None:
            parts = [p for p in self.list_files("trials") if _is_part(p)]
            if not parts:
                return None
            rows = self.scan("trials", filter=ds.field("trial_key") == trial_key, files=parts).to_pylist()
            return rows[-1] if rows else None
        try:
            rows = pq.read_table(pa.BufferReader(blob)).to_pylist()
        except pa.ArrowInvalid as exc:
            self.quarantine(path, str(exc).splitlines()[0])
            return None
        if len(rows) != 1 or rows[0].get("trial_key") != trial_key:
            raise StoreError(f"{path} does not hold exactly the row of trial {trial_key}")
        return rows[0]

    def done_keys(self) -> set[str]:
        """Keys of every trial with a committed row.

        In a folder every trial file is read (its ``trial_key`` column), so an unreadable one is
        quarantined and its trial counts as not done. On object storage a per-trial file is known
        by its name, ``trials/<trial_key>.parquet``: an object is visible only whole (a single PUT,
        or a server-side copy of a finished upload), so its name is its commit. Requests: one
        listing of ``trials/`` (one LIST request per 1,000 objects in it, see :meth:`list_files`),
        none per per-trial object, and the reads of the compacted parts (their ``trial_key`` column
        only): a resumed sweep against 10^5 per-trial objects costs 100 LISTs, not 10^5 GETs.
        """
        if not self.remote:
            return set(self.scan("trials", columns=["trial_key"]).column("trial_key").to_pylist())
        keys, parts = _trial_keys_by_name(self._final_files("trials", ".parquet"))
        if parts:
            keys.update(self.scan("trials", columns=["trial_key"], files=parts).column("trial_key").to_pylist())
        return keys

    def read_trials(self, columns: list[str] | None = None) -> pa.Table:
        """Every committed trial row, once per trial.

        A trial is in two files only after a compaction stopped between writing its merged file
        and deleting the files it merged; then its newest copy is kept (its own file, else the
        newest part), as compaction itself does.
        """
        files = self.list_files("trials")
        return self._trial_rows(columns, [p for p in files if not _is_part(p)], [p for p in files if _is_part(p)])

    def read_newest_trials(self, columns: list[str], limit: int) -> tuple[pa.Table, set[str], int]:
        """For object storage, where reading every row costs one GET per per-trial object: the rows of
        the compacted parts and of the ``limit`` newest per-trial objects (by modification time, from
        the one listing), every done trial's key (the others known by name, see :meth:`done_keys`),
        and how many per-trial objects were not read."""
        infos = self._final_infos("trials", ".parquet")
        keys, parts = _trial_keys_by_name(info.path for info in infos)
        singles = sorted(
            (info for info in infos if not _is_part(info.path)),
            reverse=True,
            key=lambda info: info.mtime.timestamp() if info.mtime is not None else 0.0,
        )
        table = self._trial_rows(columns, [info.path for info in singles[:limit]], parts)
        return table, keys | set(table.column("trial_key").to_pylist()), max(0, len(singles) - limit)

    def _trial_rows(self, columns: list[str] | None, singles: list[str], parts: list[str]) -> pa.Table:
        """The rows of ``singles`` (per-trial files) and ``parts`` (compacted, by name, oldest first),
        once per trial: a trial's own file first, else its newest part."""
        wanted = None if columns is None else list(dict.fromkeys([*columns, "trial_key"]))
        if not parts:  # one file per trial key
            table = self.scan("trials", columns=wanted, files=singles)
        else:
            tables, seen = [], pa.array([], pa.string())
            for group in ([singles] if singles else []) + [[p] for p in reversed(parts)]:  # newest first
                table = self.scan("trials", columns=wanted, files=group)
                table = table.filter(pc.invert(pc.is_in(table.column("trial_key"), value_set=seen)))
                seen = pa.concat_arrays([seen, table.column("trial_key").combine_chunks()])
                tables.append(table)
            table = pa.concat_tables(tables)
        return table if columns is None else table.select(columns)

    def alpha_points(self, study: str) -> list[dict[str, Any]]:
        """Every recorded point of an alpha-search study, once per point number, by number."""
        table = self.read_side_table("alpha_trials", filter=ds.field("study") == study)
        by_number = {r["number"]: r for r in table.to_pylist()}
        return [by_number[n] for n in sorted(by_number)]

    # ---- failures --------------------------------------------------------------------
    def write_failure(self, row: dict[str, Any]) -> None:
        """Record a trial that failed after its retries (``failures/<key>.parquet``; never a result)."""
        self.write_table(
            make_table([row], FAILURE_SCHEMA, "failure row"), self.path("failures", f"{row['trial_key']}.parquet")
        )

    def read_failures(self) -> pa.Table:
        return self.scan("failures")

    def failed_keys(self) -> set[str]:
        return set(self.read_failures().column("trial_key").to_pylist())

    def clear_failure(self, trial_key: str) -> None:
        self.delete(self.path("failures", f"{trial_key}.parquet"))


def _is_part(path: str) -> bool:
    return path.rpartition("/")[2].startswith(PART_PREFIX)


def _trial_keys_by_name(files: Iterable[str]) -> tuple[set[str], list[str]]:
    """``(the trial keys that per-trial files are named after, the compacted parts by name)`` among
    final ``*.parquet`` files of ``trials/``; no file is opened."""
    keys: set[str] = set()
    parts: list[str] = []
    for path in files:
        name = path.rpartition("/")[2]
        if name.startswith(PART_PREFIX):
            parts.append(path)
        else:
            keys.add(name[: -len(".parquet")])
    return keys, sorted(parts)
