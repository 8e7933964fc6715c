"""Counting the requests a store sends to its S3 endpoint: a loopback relay for the benchmarks.

:class:`RequestCounter` sits between a store and its plain-HTTP S3 endpoint on loopback and
counts what passes, with the time the server took on each kind; ``roft bench plan`` reports the
LIST requests of a re-plan with it (:func:`counted`).
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_LINE_LIMIT = 65536  # longest request line or header accepted (S3 keys are at most 1,024 bytes)


@dataclass
class Requests:
    """What a :class:`RequestCounter` saw: requests by kind, and the seconds the server took on them.

    A kind is ``LIST`` for a ListObjects request (a GET of a bucket whose options are all listing
    options, see :func:`_kind`), else the HTTP method (``GET``, ``HEAD``, ``PUT``, ...).
    ``server_s[kind]`` sums, over the requests of that kind, the time from the request's first
    byte leaving the relay to the first byte of its response coming back: for a request without
    a body (LIST, GET, HEAD), the time the server took to answer it.
    """

    count: Counter[str] = field(default_factory=Counter)
    server_s: Counter[str] = field(default_factory=Counter)

    def total(self) -> int:
        return sum(self.count.values())


class _Connection:
    """One client connection relayed upstream; ``pending`` is the request awaiting its response:
    the count it is in, its kind, and when its first byte was sent."""

    def __init__(self, client: socket.socket, upstream: socket.socket):
        self.client, self.upstream = client, upstream
        self.pending: tuple[Requests, str, float] | None = None

    def close(self) -> None:
        for sock in (self.client, self.upstream):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


class RequestCounter:
    """A loopback TCP relay in front of a plain-HTTP S3 endpoint (``HOST:PORT``) that counts requests.

    Point a store at :attr:`endpoint` (:func:`relayed_uri`) and every request it sends passes
    through, counted in :attr:`requests` (:meth:`reset` starts a new count). It reads HTTP/1.1
    requests one after another on each connection, as S3 clients send them (no pipelining), with
    bodies framed by ``Content-Length`` or chunked; a request it cannot frame closes its
    connection (the client sees an error) instead of being counted wrongly. Responses are passed
    through unread. Use it as a context manager: it listens from ``__enter__`` to ``__exit__``.
    """

    def __init__(self, upstream: str):
        host, _, port = upstream.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"endpoint {upstream!r}: expected HOST:PORT")
        self.upstream = (host, int(port))
        self.requests = Requests()
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._connections: set[_Connection] = set()
        self._listener: socket.socket | None = None

    @property
    def endpoint(self) -> str:
        if self._listener is None:
            raise RuntimeError("the relay is not listening (use it as a context manager)")
        host, port = self._listener.getsockname()[:2]
        return f"{host}:{port}"

    def reset(self) -> Requests:
        """Start a new count; returns the one that ends (a request in flight stays in the count it began in)."""
        with self._lock:
            ended, self.requests = self.requests, Requests()
        return ended

    def __enter__(self) -> RequestCounter:
        self._listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, args=(self._listener,), name="request-counter", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            connection.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed by __exit__
                return
            try:
                upstream = socket.create_connection(self.upstream)
            except OSError as exc:
                self.errors.append(f"cannot reach {self.upstream[0]}:{self.upstream[1]}: {exc}")
                client.close()
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = _Connection(client, upstream)
            with self._lock:
                self._connections.add(connection)
            threading.Thread(target=self._relay_requests, args=(connection,), daemon=True).start()
            threading.Thread(target=self._relay_responses, args=(connection,), daemon=True).start()

    def _relay_requests(self, connection: _Connection) -> None:
        reader = connection.client.makefile("rb")
        try:
            while True:
                head = _read_head(reader)
                if head is None:
                    return
                method, target, headers = _parse_head(head)
                kind = _kind(method, target)
                with self._lock:
                    self.requests.count[kind] += 1
                    connection.pending = (self.requests, kind, time.perf_counter())
                connection.upstream.sendall(head)
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    _relay_chunked(reader, connection.upstream)
                else:
                    _relay_exactly(reader, connection.upstream, int(headers.get("content-length", "0")))
        except (OSError, ValueError) as exc:
            if self._listener is not None:  # not closed by __exit__
                self.errors.append(f"a request could not be relayed: {exc}")
        finally:
            with self._lock:
                self._connections.discard(connection)
            connection.close()

    def _relay_responses(self, connection: _Connection) -> None:
        try:
            while data := connection.upstream.recv(1 << 16):
                arrived = time.perf_counter()
                with self._lock:
                    if connection.pending is not None:
                        requests, kind, sent = connection.pending
                        requests.server_s[kind] += arrived - sent  # type: ignore[assignment]  # seconds
                        connection.pending = None
                connection.client.sendall(data)
        except OSError:
            pass
        finally:
            connection.close()


def _read_head(reader: BinaryIO) -> bytes | None:
    """The request line and headers (up to the empty line), or None at the end of the connection."""
    lines: list[bytes] = []
    while True:
        line = reader.readline(_LINE_LIMIT)
        if not line:
            if lines:
                raise ValueError("the connection ended inside a request's headers")
            return None
        if not line.endswith(b"\n"):
            raise ValueError(f"a request line or header is longer than {_LINE_LIMIT} bytes")
        if not lines and line in (b"\r\n", b"\n"):
            continue  # an empty line between requests (RFC 9112 lets a server ignore it)
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            return b"".join(lines)


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    request_line, *header_lines = head.decode("latin-1").splitlines()
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ValueError(f"not an HTTP/1.x request line: {request_line[:200]!r}")
    headers = {}
    for line in header_lines:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return parts[0], parts[1], headers


_LIST_OPTIONS = {
    "list-type",
    "prefix",
    "delimiter",
    "marker",
    "max-keys",
    "encoding-type",
    "continuation-token",
    "start-after",
    "fetch-owner",
    "optional-object-attributes",
}


def _kind(method: str, target: str) -> str:
    """``LIST`` for a ListObjects(V2) request, else the method. Path-style addressing (what a store
    with ``endpoint_override`` sends): a GET of ``/bucket`` whose options are all listing options."""
    path, _, query = target.partition("?")
    names = {option.partition("=")[0] for option in query.split("&") if option}
    bucket_only = path.strip("/") != "" and "/" not in path.strip("/")
    return "LIST" if method == "GET" and bucket_only and names <= _LIST_OPTIONS else method


def _relay_exactly(reader: BinaryIO, upstream: socket.socket, size: int) -> None:
    while size > 0:
        block = reader.read(min(size, 1 << 16))
        if not block:
            raise ValueError("the connection ended inside a request body")
        upstream.sendall(block)
        size -= len(block)


def _relay_chunked(reader: BinaryIO, upstream: socket.socket) -> None:
    """A chunked body, its last chunk and trailers (RFC 9112 section 7.1)."""
    while True:
        line = reader.readline(_LINE_LIMIT)
        if not line.endswith(b"\n"):
            raise ValueError("a chunked request body ended early")
        upstream.sendall(line)
        size = int(line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            break
        _relay_exactly(reader, upstream, size + 2)  # the chunk and its CRLF
    while True:  # trailers, up to an empty line
        line = reader.readline(_LINE_LIMIT)
        if not line.endswith(b"\n"):
            raise ValueError("a chunked request body ended early")
        upstream.sendall(line)
        if line in (b"\r\n", b"\n"):
            return


def relayed_uri(uri: str) -> tuple[str, str] | None:
    """``(endpoint, uri)``: the ``HOST:PORT`` that an ``s3://`` store ``uri`` reaches over plain
    HTTP (``endpoint_override`` with ``scheme=http``), and ``uri`` with ``{endpoint}`` in its place;
    None when the store is not reached that way (HTTPS cannot be relayed and counted)."""
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = dict(query)
    if parts.scheme.lower() != "s3" or options.get("scheme") != "http" or not options.get("endpoint_override"):
        return None
    relayed = [(name, "{endpoint}" if name == "endpoint_override" else value) for name, value in query]
    return options["endpoint_override"], urlunsplit(parts._replace(query=urlencode(relayed, safe="{}:")))


@contextmanager
def counted(uri: str) -> Iterator[tuple[str, RequestCounter] | None]:
    """``(uri of the same store through a RequestCounter, the counter)`` while the block runs, or None
    when the store's requests cannot be counted (see :func:`relayed_uri`)."""
    found = relayed_uri(uri)
    if found is None:
        yield None
        return
    endpoint, template = found
    with RequestCounter(endpoint) as counter:
        yield template.replace("{endpoint}", counter.endpoint), counter
