"""The results store: a Parquet dataset that is the source of truth for what is done.

The store lives in a local folder or on S3-compatible object storage
(``s3://bucket/prefix``, with pyarrow's query options such as
``?endpoint_override=HOST:PORT&scheme=http&region=...``; credentials come from the usual
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN`` variables or the AWS
configuration files). Every read, write, listing and artifact of the store goes through one
``pyarrow.fs`` filesystem object.

Layout below the store root::

    trials/<trial_key>.parquet     one row per finished trial (schema: TRIAL_SCHEMA)
    epochs/<trial_key>.parquet     per-epoch curves of that trial (schema: EPOCH_SCHEMA)
    alpha_trials/<trial_key>.parquet  every point of an Optuna alpha search (schema: ALPHA_SCHEMA)
    failures/<trial_key>.parquet   a trial that failed after its retries: error and traceback
                                   (schema: FAILURE_SCHEMA); removed when the trial lands
    artifacts/<trial_key>/best.pt  the best-validation state dict (GraphPredictor layout), kept for
                                   trials other trials depend on (Full FT), or all with
                                   ``execution.artifacts: all``; its sha256 is in the trial row
    specs/<sweep>.yaml             the spec of every sweep run on the store (reports' provenance)
    running/<unit>.json            a trial or fused group in flight: its trial keys, host, pid, start,
                                   last heartbeat (no table: small JSON objects that the worker writes
                                   and removes, see mark_running)
    quarantine/<table>/<file>      files found unreadable (not Parquet, truncated, another
                                   schema) or that are no table files (e.g. notes.txt), moved
                                   aside by the first read that met them, or by the check of
                                   every table folder that each sweep makes first (check_tables)

Readers list only final names (``*.parquet`` not starting with ``.``), so a partial file is never
read. In a folder, every file is written under a hidden temporary name
(``.<name>.<random>.tmp``) and renamed into place. On object storage a file is serialised in
memory first, then uploaded: up to :data:`SINGLE_PUT_BYTES` in a single PUT, which S3 makes
visible whole or not at all (readers see the old or the new object); a larger one (large
checkpoints, compacted files) is uploaded under a hidden temporary name and then copied into
place by the server, so a writer killed or failing mid-upload leaves at most an invisible
multipart upload or a temporary object that no reader opens. The trial row is written *last*:
its presence is the commit of the trial. Two writers of the same trial write the same file (or
object) name, so a retried trial can never land twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from orchestrator.store import leases
from orchestrator.store.filesystems import ACCEPTED_STORES, SINGLE_PUT_BYTES, s3_filesystem, shown_uri
from orchestrator.store.schema import (
    FAILURE_SCHEMA,
    LOCK_NAME,
    OPTIONAL_TEXT_COLUMNS,
    PART_PREFIX,
    QUARANTINE,
    SIDE_TABLES,
    TABLES,
    TRIAL_SCHEMA,
    QuarantineWarning,
    StoreError,
)
from trainables.data.sources import atomic_write

RUNNING = "running"  # running/<unit>.json: the markers of trials and fused groups in flight (not a table)


class ResultStore:
    """A results store rooted at a local folder or at an ``s3://bucket/prefix`` URI.

    ``fs`` is the store's ``pyarrow.fs`` filesystem and ``path(...)`` a path on it; ``location``
    names the store in messages (no credentials, no query options) and ``uri`` is what opens it
    again elsewhere (Ray workers get it through :class:`trainables.core.config.Runtime`).
    """

    def __init__(self, root: str | os.PathLike):
        text = os.fspath(root)
        scheme = urlsplit(text).scheme.lower() if "://" in text else ""
        if scheme == "file":
            try:
                text, scheme = pafs.FileSystem.from_uri(text)[1], ""
            except (pa.ArrowException, ValueError) as exc:
                raise StoreError(f"store {text}: {exc}; accepted: {ACCEPTED_STORES}") from None
        if scheme == "":
            self._root: Path | None = Path(text).expanduser().resolve()
            self.fs: pafs.FileSystem = pafs.LocalFileSystem()
            self.base = self._root.as_posix()
            self.uri = self.location = str(self._root)
            self.remote = False
        elif scheme == "s3":
            self._root = None
            self.uri, self.location = text, shown_uri(text)
            self.fs, self.base = s3_filesystem(text, self.location)
            self.remote = True
        else:
            raise StoreError(f"store {shown_uri(text)}: unknown scheme {scheme + '://'!r}; accepted: {ACCEPTED_STORES}")

    def __repr__(self) -> str:
        return f"ResultStore({self.location!r})"

    # ---- places ----------------------------------------------------------------------
    @property
    def root(self) -> Path:
        """The store's local folder (a store on object storage has none)."""
        if self._root is None:
            raise StoreError(f"the store at {self.location} is on object storage: it has no local folder")
        return self._root

    @property
    def trials_dir(self) -> Path:
        return self.root / "trials"

    @property
    def epochs_dir(self) -> Path:
        return self.root / "epochs"

    @property
    def failures_dir(self) -> Path:
        return self.root / "failures"

    def path(self, *parts: str) -> str:
        """The path of ``parts`` below the store's root on :attr:`fs`."""
        return "/".join([self.base, *parts])

    def relative(self, path: str) -> str:
        """``path`` (a path on :attr:`fs`) relative to the store's root, for messages."""
        return path[len(self.base) + 1:] if path.startswith(self.base + "/") else path

    def exists(self) -> bool:
        """Whether the store's folder (or prefix: anything written below it) exists."""
        try:
            return self.fs.get_file_info(self.base).type == pafs.FileType.Directory
        except OSError as exc:
            raise StoreError(f"cannot read the store at {self.location}: {exc}") from exc

    def tune_dir(self) -> Path:
        """A local folder for Ray Tune's experiment state (disposable: the store is the truth).

        ``<store>/_tune`` for a store in a folder; for one on object storage, a folder named after
        the store under the driver's temporary directory.
        """
        if not self.remote:
            return self.root / "_tune"
        return Path(tempfile.gettempdir()) / "roft-tune" / hashlib.sha256(self.location.encode()).hexdigest()[:16]

    def worker_env(self) -> dict[str, str]:
        """Environment variables that processes on other hosts need to open the store.

        The ``AWS_*`` variables of this process for a store on object storage (credentials, region,
        profile); nothing for a local folder.
        """
        return {k: v for k, v in os.environ.items() if k.startswith("AWS_")} if self.remote else {}

    # ---- writing ---------------------------------------------------------------------
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

    def write_trial(self, row: dict[str, Any], epochs: Iterable[dict[str, Any]] = (),
                    side: dict[str, list[dict[str, Any]]] | None = None) -> Path | str:
        """Write a trial's epochs and other side tables, then its row (the commit).

        An empty string in one of :data:`OPTIONAL_TEXT_COLUMNS` is stored as null (``row`` itself is
        not changed). Returns the row's path (a :class:`Path` in a folder, the path on :attr:`fs` otherwise).
        """
        key = row["trial_key"]
        row = {**row, **{c: None for c in OPTIONAL_TEXT_COLUMNS if row.get(c) == ""}}  # "" means nothing: null
        row_table = _table([row], TRIAL_SCHEMA, "trial row")
        tables = {"epochs": list(epochs), **(side or {})}
        unknown = sorted(set(tables) - set(SIDE_TABLES))
        if unknown:
            raise StoreError(f"unknown store table(s) {unknown}; accepted: {', '.join(SIDE_TABLES)}")
        prepared = {name: _table([dict(r, trial_key=key) for r in rows], SIDE_TABLES[name], f"{name} row")
                    for name, rows in tables.items() if rows}
        for name, table in prepared.items():
            self.write_table(table, self.path(name, f"{key}.parquet"))
        target = self.path("trials", f"{key}.parquet")
        self.write_table(row_table, target)
        return target if self.remote else Path(target)

    def write_table(self, table: pa.Table, target: str | os.PathLike) -> None:
        """Write ``table`` as Parquet to ``target`` (a path on :attr:`fs`) atomically."""
        buffer = pa.BufferOutputStream()
        pq.write_table(table, buffer)
        self.write_bytes(os.fspath(target), buffer.getvalue())

    def write_bytes(self, target: str, data: bytes | pa.Buffer) -> None:
        """Write ``data`` to ``target`` (a path on :attr:`fs`) atomically."""
        try:
            if self.remote:
                self._upload(target, data)
            else:
                atomic_write(Path(target), lambda fh: fh.write(data))
        except OSError as exc:
            raise StoreError(f"cannot write to the store at {self.location} ({self.relative(target)}): "
                             f"{exc}") from exc

    def check_writable(self) -> None:
        """:class:`StoreError` unless a file can be written to (and removed from) the store's folder
        (or prefix) and, in a folder, each folder of it that a sweep writes to and that exists already.

        A sweep calls it before it starts anything (Ray, trials), so that an unwritable store (read-only
        or immutable folder, no permission, full disk) stops it with one line naming the cause. The
        probe is a hidden temporary (``.write-check.<random>.tmp``), which readers never open.
        """
        folders = [""] if self.remote else ["", *(name for name in (*TABLES, "artifacts", "specs", RUNNING)
                                                  if os.path.lexists(self.root / name))]
        for folder in folders:
            probe = self.path(*([folder] if folder else []), f".write-check.{secrets.token_hex(8)}.tmp")
            try:
                self.write_bytes(probe, b"\0" * 4096)
                self.delete(probe)
            except StoreError as exc:
                cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
                if isinstance(cause, OSError) and cause.strerror:  # not the probe's temporary name
                    cause = f"[Errno {cause.errno}] {cause.strerror}" if cause.errno else cause.strerror
                where = f"{folder}/ of {self.location}" if folder else self.location
                raise StoreError(f"the results store could not be written: cannot create a file in {where} "
                                 f"({cause}); nothing was run. Fix the store's permissions or free space (or "
                                 "choose another --store), then rerun the same command") from exc

    def _upload(self, path: str, data: bytes | pa.Buffer) -> None:
        """One object, visible whole or not at all (see the module's docstring)."""
        if len(data) <= SINGLE_PUT_BYTES:
            self._put(path, data)
            return
        directory, _, name = path.rpartition("/")
        temporary = f"{directory}/.{name}.{secrets.token_hex(8)}.tmp"
        try:
            self._put(temporary, data)
            self.fs.move(temporary, path)  # a server-side copy: the final name appears complete
        except BaseException:
            with contextlib.suppress(OSError):
                self.fs.delete_file(temporary)
            raise

    def _put(self, path: str, data: bytes | pa.Buffer) -> None:
        # The bytes are complete before the stream opens: nothing can fail between its writes, so
        # closing it never publishes a truncated object. A process killed before close publishes nothing.
        stream = self.fs.open_output_stream(path)
        stream.write(data)
        stream.close()

    def delete(self, path: str) -> None:
        """Remove the file ``path`` (a path on :attr:`fs`); a missing one is no error."""
        try:
            self.fs.delete_file(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot delete {self.relative(path)} from the store at {self.location}: {exc}") from exc

    def write_spec(self, sweep: str, text: bytes) -> None:
        """Keep a sweep's spec with its results (``specs/<sweep>.yaml``)."""
        self.write_bytes(self.path("specs", f"{sweep}.yaml"), text)

    def read_specs(self) -> list[tuple[str, str]]:
        """``(file name, text)`` of every saved sweep spec, by name."""
        return [(path.rpartition("/")[2], self.read_bytes(path).decode()) for path in self.list_files("specs", ".yaml")]

    # ---- reading ---------------------------------------------------------------------
    def read_bytes(self, path: str) -> bytes | None:
        """The content of the file ``path`` (a path on :attr:`fs`), or ``None`` when there is none."""
        try:
            with self.fs.open_input_file(path) as handle:
                return handle.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {self.relative(path)} from the store at {self.location}: {exc}") from exc

    def has_file(self, path: str) -> bool:
        """Whether the file ``path`` (a path on :attr:`fs`) exists (one metadata request, no read)."""
        try:
            return self.fs.get_file_info(path).type == pafs.FileType.File
        except OSError as exc:
            raise StoreError(f"cannot look up {self.relative(path)} in the store at {self.location}: {exc}") from exc

    def read_file(self, path: str, schema: pa.Schema | None = None) -> pa.Table:
        """One Parquet file of the store (a path on :attr:`fs`)."""
        return pq.read_table(path, schema=schema, filesystem=self.fs)

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
                raise StoreError(f"cannot read {self.relative(path)} from the store at {self.location}: "
                                 f"{error}") from error
            if found is None:
                raise StoreError(f"cannot read {self.relative(path)} from the store at {self.location}: "
                                 f"{exc}") from exc
            self.quarantine(*found)
            return None

    def _files_in(self, directory: str) -> list[pafs.FileInfo]:
        """The files of a store folder (one listing; none when the folder does not exist)."""
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.path(directory), allow_not_found=True))
        except NotADirectoryError:
            return []
        except OSError as exc:
            raise StoreError(f"cannot list {directory}/ in the store at {self.location}: {exc}") from exc
        return [info for info in infos if info.type == pafs.FileType.File]

    def list_files(self, directory: str, suffix: str = ".parquet") -> list[str]:
        """The final files of a store folder, by name: never temporary (hidden) names.

        One listing of the folder: on object storage, one LIST request per 1,000 names directly
        below ``directory/`` (objects, and the sub-folders S3 rolls up), and no request per object.
        """
        return sorted(self._final_files(directory, suffix))

    def _final_files(self, directory: str, suffix: str) -> list[str]:
        """:meth:`list_files` in the listing's order (the same requests, no sort)."""
        return [info.path for info in self._final_infos(directory, suffix)]

    def _final_infos(self, directory: str, suffix: str) -> list[pafs.FileInfo]:
        return [info for info in self._files_in(directory)
                if info.base_name.endswith(suffix) and not info.base_name.startswith(".")]

    def _dataset(self, name: str, schema: pa.Schema, files: list[str] | None = None) -> ds.Dataset | None:
        files = self.list_files(name) if files is None else files
        if not files:
            return None
        return ds.dataset(files, schema=schema, format="parquet", filesystem=self.fs)

    def scan(self, name: str, columns: list[str] | None = None, filter: ds.Expression | None = None,
             files: list[str] | None = None) -> pa.Table:
        """Rows of table ``name`` (all its files, or ``files``), with column and filter pushdown.

        A file that cannot be read as the table's Parquet (not Parquet, truncated, another schema)
        is moved to ``quarantine/<name>/`` with a :class:`QuarantineWarning` naming it and the
        reason, and the scan goes on without it: the rest of the store stays readable, and a
        quarantined trial row no longer counts as done, so the next sweep runs that trial again.
        Errors that are not about a file's content (an unreachable store) raise :class:`StoreError`.
        """
        return self._scan(name, columns, filter, files)[0]

    def _scan(self, name: str, columns: list[str] | None, filter: ds.Expression | None,
              files: list[str] | None) -> tuple[pa.Table, list[str]]:
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
                moved.append(self.quarantine(path, "not a table file: readers of the folder such as "
                                                   "pandas.read_parquet fail on it", what="is not a Parquet file"))
            if contents:
                moved += self._scan(name, ["trial_key"], None, None)[1]
        return [self.relative(path) for path in moved]

    def _strays(self, name: str) -> list[str]:
        """Files of the table folder ``name`` that are neither table files nor hidden (``.`` / ``_``)."""
        return sorted(info.path for info in self._files_in(name)
                      if not info.base_name.endswith(".parquet") and not info.base_name.startswith((".", "_")))

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
        consequence = ("a trial whose row was in it counts as not done and runs again in the next sweep"
                       if table == "trials" else f"the trials keep their rows (any {table} rows of theirs in the "
                                                 "file are left out)")
        warnings.warn(QuarantineWarning(f"store {self.location}: {relative} {what} ({reason}); {where}. "
                                        f"The rest of the store stays readable; {consequence}"), stacklevel=3)
        return target

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

    # ---- failures --------------------------------------------------------------------
    def write_failure(self, row: dict[str, Any]) -> None:
        """Record a trial that failed after its retries (``failures/<key>.parquet``; never a result)."""
        self.write_table(_table([row], FAILURE_SCHEMA, "failure row"),
                         self.path("failures", f"{row['trial_key']}.parquet"))

    def read_failures(self) -> pa.Table:
        return self.scan("failures")

    def failed_keys(self) -> set[str]:
        return set(self.read_failures().column("trial_key").to_pylist())

    def clear_failure(self, trial_key: str) -> None:
        self.delete(self.path("failures", f"{trial_key}.parquet"))

    # ---- running markers ---------------------------------------------------------------
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
        self.write_bytes(self.path(RUNNING, f"{unit}.json"),
                         json.dumps({**info, "trial_keys": list(keys)}, sort_keys=True, default=str).encode())

    def clear_running(self, unit: str) -> None:
        """Remove the running marker of ``unit`` (a missing one is no error)."""
        self.delete(self.path(RUNNING, f"{unit}.json"))

    def read_running(self) -> list[dict[str, Any]]:
        """Every running trial: its unit's JSON object with its own ``trial_key``; a marker that is
        not a JSON object with ``trial_keys`` is ``{"trial_key": <its name>, "unreadable": <why>}``.
        Markers removed meanwhile are left out."""
        markers = []
        for path in self.list_files(RUNNING, ".json"):
            name = path.rpartition("/")[2][:-len(".json")]
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
            raise StoreError(f"the results store could not be written: cannot open its lock file "
                             f"{self.root / LOCK_NAME} ({exc}). Fix the store's permissions (or choose another "
                             "--store), then rerun the same command") from exc
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
                raise StoreError(f"a sweep is running on the store at {self.location} (it holds {LOCK_NAME}); "
                                 f"{action} after it finishes") from None
            yield

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
        singles = sorted((info for info in infos if not _is_part(info.path)), reverse=True,
                         key=lambda info: info.mtime.timestamp() if info.mtime is not None else 0.0)
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

    def read_epochs(self) -> pa.Table:
        return self.read_side_table("epochs")

    def read_side_table(self, name: str, filter=None) -> pa.Table:
        return self.scan(name, filter=filter)

    def alpha_points(self, study: str) -> list[dict[str, Any]]:
        """Every recorded point of an alpha-search study, once per point number, by number."""
        table = self.read_side_table("alpha_trials", filter=ds.field("study") == study)
        by_number = {r["number"]: r for r in table.to_pylist()}
        return [by_number[n] for n in sorted(by_number)]


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
            keys.add(name[:-len(".parquet")])
    return keys, sorted(parts)


def _table(rows: list[dict[str, Any]], schema: pa.Schema, what: str) -> pa.Table:
    expected = set(schema.names)
    for row in rows:
        missing, extra = sorted(expected - set(row)), sorted(set(row) - expected)
        if missing or extra:
            raise StoreError(f"{what} does not match the store schema: missing {missing}, unexpected {extra}")
    try:
        return pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise StoreError(f"{what} has a value of the wrong type: {exc}") from exc
