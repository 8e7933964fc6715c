"""Transient object-storage errors retried: a ``pyarrow.fs`` filesystem that wraps another.

The S3 client under ``pyarrow.fs.S3FileSystem`` retries some failed requests itself, but not
all: a 500 or 503 answer to a HEAD (which has no body to name the error) or to a ranged GET
comes back as an ``OSError`` at the first attempt. On a busy or flaky object store (S3 throttling
a prefix with 503 SlowDown, a load balancer's 502, a dropped connection), one such answer would
fail a trial's commit or stop a sweep's driver. :class:`RetryingHandler` repeats every operation
of the store's filesystem whose error is transient (:func:`transient`: an HTTP 5xx status, a
throttling code, a network or timeout error; never a missing file, a refused access or a bad
request), waiting ``delay_s * 2**attempt`` (at most ``max_delay_s``, with jitter) in between,
at most ``attempts`` times. Writes stay whole-object: a stream opened for writing buffers its
bytes and uploads them at ``close`` (one PUT, retried whole), which is also what the store asks
of S3 (``allow_delayed_open``); past ``stream_after`` bytes (the store's single-PUT limit) it
streams them to the inner filesystem instead (a multipart upload, which the store makes under a
hidden temporary name and retries only as the S3 client does). Reads reopen the object and
continue where they failed.

Every repeated operation is idempotent for the store: a PUT writes the same bytes under the same
name, a DELETE of a missing object is no error to the store, a ``move`` whose source is gone
after a failed attempt is done when its destination exists.
"""

from __future__ import annotations

import random
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import pyarrow as pa
import pyarrow.fs as pafs

T = TypeVar("T")

_TRANSIENT = re.compile(  # the S3 client's words for them (its error names, S3's codes, curl's messages)
    r"HTTP status 5\d\d|slow_?down|internal_?(error|failure)|service_?unavailable|request_?time_?out|throttl|"
    r"curlCode|connection|timeout|timed out|network|broken pipe|reset by peer|unable to connect|empty reply|"
    r"failure when receiving data",
    re.IGNORECASE,
)


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` is an error that the same request may not meet again (see the module)."""
    return (
        isinstance(exc, OSError)
        and not isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError))
        and bool(_TRANSIENT.search(str(exc)))
    )


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a transient error is retried (the defaults wait at most ~25 s)."""

    attempts: int = 8  # tries of one operation, the first included
    delay_s: float = 0.2  # wait after the first failure; doubled after each further one
    max_delay_s: float = 5.0  # longest single wait
    stream_after: int = 5 * 1024 * 1024  # bytes a written stream buffers (retried whole) before it streams

    def wait_s(self, failures: int) -> float:
        return min(self.max_delay_s, self.delay_s * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)


class RetryingHandler(pafs.FileSystemHandler):
    """A :class:`pyarrow.fs.FileSystemHandler` that runs every operation on ``inner`` and repeats
    those that fail transiently (``pafs.PyFileSystem(RetryingHandler(s3))`` is the filesystem).
    ``retries`` counts the repeats (for reports)."""

    def __init__(self, inner: pafs.FileSystem, policy: RetryPolicy = RetryPolicy()):
        self.inner, self.policy = inner, policy
        self.retries = 0
        self._lock = threading.Lock()

    def call(self, operation: Callable[[], T]) -> T:
        for attempt in range(1, self.policy.attempts + 1):
            try:
                return operation()
            except OSError as exc:
                if attempt == self.policy.attempts or not transient(exc):
                    raise
            with self._lock:
                self.retries += 1
            time.sleep(self.policy.wait_s(attempt))
        raise AssertionError("unreachable")

    # ---- the handler's interface -----------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        return isinstance(other, RetryingHandler) and self.inner.equals(other.inner)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def get_type_name(self) -> str:
        return f"retrying-{self.inner.type_name}"

    def normalize_path(self, path: str) -> str:
        return self.inner.normalize_path(path)

    def equals(self, other: Any) -> bool:
        return self == other

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return self.call(lambda: self.inner.get_file_info(paths))

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        return self.call(lambda: self.inner.get_file_info(selector))

    def create_dir(self, path: str, recursive: bool) -> None:
        self.call(lambda: self.inner.create_dir(path, recursive=recursive))

    def delete_dir(self, path: str) -> None:
        self.call(lambda: self.inner.delete_dir(path))

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self.call(lambda: self.inner.delete_dir_contents(path, missing_dir_ok=missing_dir_ok))

    def delete_root_dir_contents(self) -> None:
        self.call(lambda: self.inner.delete_dir_contents("/", accept_root_dir=True))

    def delete_file(self, path: str) -> None:
        tried: list[bool] = []

        def delete() -> None:
            try:
                self.inner.delete_file(path)
            except FileNotFoundError:
                if not tried:  # missing from the start: the caller's to judge
                    raise
            finally:
                tried.append(True)

        self.call(delete)

    def move(self, src: str, dest: str) -> None:
        tried: list[bool] = []

        def move() -> None:
            try:
                self.inner.move(src, dest)
            except FileNotFoundError:
                # an earlier attempt copied and deleted, but its answer was lost: done if dest is there
                if not tried or self.inner.get_file_info(dest).type != pafs.FileType.File:
                    raise
            finally:
                tried.append(True)

        self.call(move)

    def copy_file(self, src: str, dest: str) -> None:
        self.call(lambda: self.inner.copy_file(src, dest))

    def open_input_stream(self, path: str) -> pa.NativeFile:
        return pa.BufferReader(self.call(lambda: _read_all(self.inner, path)))

    def open_input_file(self, path: str) -> pa.NativeFile:
        return pa.PythonFile(_Reader(self, path, self.call(lambda: self.inner.open_input_file(path))), mode="r")

    def open_output_stream(self, path: str, metadata: Any) -> pa.NativeFile:
        return pa.PythonFile(_Writer(self, path, metadata, append=False), mode="w")

    def open_append_stream(self, path: str, metadata: Any) -> pa.NativeFile:
        return pa.PythonFile(_Writer(self, path, metadata, append=True), mode="w")


def _read_all(inner: pafs.FileSystem, path: str) -> bytes:
    with inner.open_input_stream(path) as handle:
        return handle.read()


class _Reader:
    """A file object over ``path`` whose reads reopen the object after a transient error."""

    def __init__(self, handler: RetryingHandler, path: str, opened: Any):
        self.handler, self.path, self._size = handler, path, opened.size()
        self._file: Any = opened
        self._position = 0
        self.closed = False

    def _open(self) -> Any:
        if self._file is None:
            self._file = self.handler.inner.open_input_file(self.path)
        return self._file

    def size(self) -> int:
        if self._size is None:
            self._size = self.handler.call(lambda: self._open().size())
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def seek(self, position: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._position, 2: self.size()}[whence]
        self._position = base + position
        return self._position

    def tell(self) -> int:
        return self._position

    def read(self, nbytes: int | None = None) -> bytes:
        remaining = max(0, self.size() - self._position)
        nbytes = remaining if nbytes is None or nbytes < 0 else min(nbytes, remaining)

        def read() -> bytes:
            try:
                return self._open().read_at(nbytes, self._position)
            except OSError:
                self._file = None  # reopen on the next attempt
                raise

        data = self.handler.call(read) if nbytes else b""
        self._position += len(data)
        return data

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file, self.closed = None, True


class _Writer:
    """A file object that buffers what is written and uploads it whole at ``close``, retried."""

    def __init__(self, handler: RetryingHandler, path: str, metadata: Any, append: bool):
        self.handler, self.path, self.metadata, self.append = handler, path, metadata, append
        self._parts: list[bytes] = []
        self._length = 0
        self._stream: Any = None  # the inner stream, once more than ``stream_after`` bytes came
        self.closed = False

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._length += len(chunk)
        if self._stream is None and self._length > self.handler.policy.stream_after:
            self._stream = self._opener()(self.path, metadata=self.metadata)  # too large to buffer: stream
            for part in self._parts:
                self._stream.write(part)
            self._parts = []
        if self._stream is not None:
            self._stream.write(chunk)
        else:
            self._parts.append(chunk)
        return len(chunk)

    def _opener(self) -> Any:
        return self.handler.inner.open_append_stream if self.append else self.handler.inner.open_output_stream

    def tell(self) -> int:
        return self._length

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._stream is not None:
            self._stream.close()
            return
        data = b"".join(self._parts)
        self._parts = []

        def upload() -> None:
            stream = self._opener()(self.path, metadata=self.metadata)
            stream.write(data)
            stream.close()

        self.handler.call(upload)


def retrying(filesystem: pafs.FileSystem, policy: RetryPolicy = RetryPolicy()) -> pafs.FileSystem:
    """``filesystem`` with its transient errors retried (see the module)."""
    return pafs.PyFileSystem(RetryingHandler(filesystem, policy))
