"""The files of a results store: where it lives, its paths, atomic writes, reads and listings.

A store is a local folder or an ``s3://bucket/prefix`` URI; every read, write and listing goes
through one ``pyarrow.fs`` filesystem object (:attr:`StoreFiles.fs`). In a folder, a file is written
under a hidden temporary name and renamed into place; on object storage it is serialised in memory
and uploaded whole (see :mod:`orchestrator.store.results` for the guarantees). Listings return final
names only, never temporary (hidden) ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from orchestrator.store.filesystems import ACCEPTED_STORES, SINGLE_PUT_BYTES, s3_filesystem, shown_uri
from orchestrator.store.schema import RUNNING, TABLES, StoreError, refused_access
from trainables.core.paths import user_path
from trainables.data.sources import atomic_write


class StoreFiles:
    """The files of a store rooted at a local folder or at an ``s3://bucket/prefix`` URI.

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
            self._root: Path | None = user_path(text, "store").resolve()
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

    def path(self, *parts: str) -> str:
        """The path of ``parts`` below the store's root on :attr:`fs`."""
        return "/".join([self.base, *parts])

    def relative(self, path: str) -> str:
        """``path`` (a path on :attr:`fs`) relative to the store's root, for messages."""
        return path[len(self.base) + 1 :] if path.startswith(self.base + "/") else path

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
            raise StoreError(f"cannot write to the store at {self.location} ({self.relative(target)}): {exc}") from exc

    def check_writable(self) -> None:
        """:class:`StoreError` unless a file can be written to (and removed from) the store's folder
        (or prefix) and, in a folder, each folder of it that a sweep writes to and that exists already.

        A sweep calls it before it starts anything (Ray, trials), so that an unwritable store (read-only
        or immutable folder, no permission, full disk) stops it with one line naming the cause. The
        probe is a hidden temporary (``.write-check.<random>.tmp``), which readers never open.
        """
        folders = (
            [""]
            if self.remote
            else ["", *(name for name in (*TABLES, "artifacts", "specs", RUNNING) if os.path.lexists(self.root / name))]
        )
        for folder in folders:
            probe = self.path(*([folder] if folder else []), f".write-check.{secrets.token_hex(8)}.tmp")
            try:
                self.write_bytes(probe, b"\0" * 4096)
                self.delete(probe)
            except StoreError as exc:
                cause: Exception | str = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
                if isinstance(cause, OSError) and cause.strerror:  # not the probe's temporary name
                    cause = f"[Errno {cause.errno}] {cause.strerror}" if cause.errno else cause.strerror
                where = f"{folder}/ of {self.location}" if folder else self.location
                if refused_access(str(cause)):  # credentials, not space nor permissions of a folder
                    raise StoreError(
                        f"the results store refused access: cannot create a file in {where} ({cause}); nothing was run"
                    ) from exc
                raise StoreError(
                    f"the results store could not be written: cannot create a file in {where} "
                    f"({cause}); nothing was run. Fix the store's permissions or free space (or "
                    "choose another --store), then rerun the same command"
                ) from exc

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

    # ---- reading and listing ---------------------------------------------------------
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
        return [
            info
            for info in self._files_in(directory)
            if info.base_name.endswith(suffix) and not info.base_name.startswith(".")
        ]
