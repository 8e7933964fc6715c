"""The store's tables: scans with column and filter pushdown, and the quarantine of unreadable files.

A table is a folder of Parquet files of one schema (:data:`orchestrator.store.schema.TABLES`). A file
that cannot be read as its table (not Parquet, truncated, another schema), or that is no table file,
is moved to ``quarantine/<table>/`` with a :class:`~orchestrator.store.schema.QuarantineWarning`, and
readers go on without it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from orchestrator.store.files import StoreFiles
from orchestrator.store.schema import QUARANTINE, TABLES, QuarantineWarning, StoreError


class StoreTables(StoreFiles):
    """Reads of the store's tables, and the quarantine of the files they cannot read."""

    def read_table_file(self, path: str, schema: pa.Schema) -> pa.Table | None:
        """One file of a table (a path on :attr:`fs`) read as ``schema``, as :meth:`read_file`; None when
        it vanished meanwhile, or when it is not a readable Parquet file of ``schema``: then it is
        quarantined as :meth:`scan` does. Other errors (an unreachable store) raise :class:`StoreError`."""
        try:
            return self.read_file(path, schema)
        except FileNotFoundError:
            return None
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError) as exc:
            try:
                found = self._unreadable(path, schema)
            except OSError as error:
                raise StoreError(
                    f"cannot read {self.relative(path)} from the store at {self.location}: {error}"
                ) from error
            if found is None:
                raise StoreError(f"cannot read {self.relative(path)} from the store at {self.location}: {exc}") from exc
            self.quarantine(*found)
            return None

    def _dataset(self, name: str, schema: pa.Schema, files: list[str]) -> ds.Dataset:
        return ds.dataset(files, schema=schema, format="parquet", filesystem=self.fs)

    def scan(
        self,
        name: str,
        columns: list[str] | None = None,
        filter: ds.Expression | None = None,
        files: list[str] | None = None,
    ) -> pa.Table:
        """Rows of table ``name`` (all its files, or ``files``), with column and filter pushdown.

        A file that cannot be read as the table's Parquet (not Parquet, truncated, another schema)
        is moved to ``quarantine/<name>/`` with a :class:`QuarantineWarning` naming it and the
        reason, and the scan goes on without it: the rest of the store stays readable, and a
        quarantined trial row no longer counts as done, so the next sweep runs that trial again.
        Errors that are not about a file's content (an unreachable store) raise :class:`StoreError`.
        """
        return self._scan(name, columns, filter, files)[0]

    def _scan(
        self, name: str, columns: list[str] | None, filter: ds.Expression | None, files: list[str] | None
    ) -> tuple[pa.Table, list[str]]:
        """:meth:`scan`, and the paths it quarantined."""
        schema = TABLES[name]
        files = self.list_files(name) if files is None else files
        if not files:
            return (schema.empty_table() if columns is None else schema.empty_table().select(columns)), []
        try:
            return self._dataset(name, schema, files).to_table(columns=columns, filter=filter), []
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError) as error:
            exc = error
            try:
                corrupt = [found for found in (self._unreadable(path, schema) for path in files) if found]
            except OSError as error:
                corrupt, exc = [], error
            if not corrupt:
                raise StoreError(f"cannot read {name}/ of the store at {self.location}: {exc}") from exc
            moved = [self.quarantine(path, reason) for path, reason in corrupt]
            kept = sorted(set(files) - {path for path, _ in corrupt})
            table, more = self._scan(name, columns, filter, kept)
            return table, moved + more

    def read_side_table(self, name: str, filter: ds.Expression | None = None) -> pa.Table:
        return self.scan(name, filter=filter)

    def check_tables(self, names: Iterable[str] | None = None, contents: bool = True) -> list[str]:
        """Quarantine what would make a reader of a table folder fail; returns the moved files
        (relative to the store). Every table is checked (``names``: only those):

        * a file that is no table file (not ``*.parquet``, not hidden: e.g. ``notes.txt``): the
          store's readers skip it, but pyarrow datasets and ``pandas.read_parquet`` of the folder
          read every file whose name does not start with ``.`` or ``_``;
        * with ``contents``, a ``*.parquet`` file that is not a readable Parquet file of the
          table's schema, as :meth:`scan` finds it (this reads every file's ``trial_key`` column).

        Each move warns with a :class:`QuarantineWarning`, as a scan's quarantine does.
        """
        moved = []
        for name in TABLES if names is None else names:
            for path in self._strays(name):
                moved.append(
                    self.quarantine(
                        path,
                        "not a table file: readers of the folder such as pandas.read_parquet fail on it",
                        what="is not a Parquet file",
                    )
                )
            if contents:
                moved += self._scan(name, ["trial_key"], None, None)[1]
        return [self.relative(path) for path in moved]

    def _strays(self, name: str) -> list[str]:
        """Files of the table folder ``name`` that are neither table files nor hidden (``.`` / ``_``)."""
        return sorted(
            info.path
            for info in self._files_in(name)
            if not info.base_name.endswith(".parquet") and not info.base_name.startswith((".", "_"))
        )

    def _unreadable(self, path: str, schema: pa.Schema) -> tuple[str, str] | None:
        """``(path, reason)`` when the file is not a readable Parquet file of ``schema``, else None."""
        try:
            table = pq.read_table(path, filesystem=self.fs)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            return path, str(exc).splitlines()[0]
        except FileNotFoundError:
            return None  # removed meanwhile (a compaction): not corrupt
        missing = [f.name for f in schema if f.name not in table.schema.names]
        if missing:
            return path, f"columns missing: {', '.join(missing)}"
        try:
            table.select(schema.names).cast(schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            return path, f"column types differ from the store's: {str(exc).splitlines()[0]}"
        return None

    def quarantine(self, path: str, reason: str, what: str = "is unreadable") -> str:
        """Move the store file ``path`` to ``quarantine/<its folder>/`` and warn; returns the new path."""
        relative = self.relative(path)
        target = self.path(QUARANTINE, relative)
        try:
            if not self.remote:
                Path(target).parent.mkdir(parents=True, exist_ok=True)
            self.fs.move(path, target)
            where = f"moved to {QUARANTINE}/{relative}"
        except OSError as exc:
            target, where = path, f"left in place (it could not be moved: {exc})"
        table = relative.partition("/")[0]
        consequence = (
            "a trial whose row was in it counts as not done and runs again in the next sweep"
            if table == "trials"
            else f"the trials keep their rows (any {table} rows of theirs in the file are left out)"
        )
        warnings.warn(
            QuarantineWarning(
                f"store {self.location}: {relative} {what} ({reason}); {where}. "
                f"The rest of the store stays readable; {consequence}"
            ),
            stacklevel=3,
        )
        return target


def make_table(rows: list[dict[str, Any]], schema: pa.Schema, what: str) -> pa.Table:
    expected = set(schema.names)
    for row in rows:
        missing, extra = sorted(expected - set(row)), sorted(set(row) - expected)
        if missing or extra:
            raise StoreError(f"{what} does not match the store schema: missing {missing}, unexpected {extra}")
    try:
        return pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise StoreError(f"{what} has a value of the wrong type: {exc}") from exc
