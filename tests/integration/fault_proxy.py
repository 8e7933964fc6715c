"""A fault-injecting HTTP proxy on loopback, between S3 clients and a local S3 server (moto).

Every request is forwarded to the upstream server unless the proxy's seeded RNG picks it for a
fault, which happens to a fixed fraction of requests (``rate``), spread over these kinds:

* ``error``: a 500 ``InternalError`` answered by the proxy; the request never reaches the server;
* ``throttle``: a 503 ``SlowDown`` answered by the proxy, as S3 throttles a busy prefix;
* ``stall``: the request waits ``stall_s`` seconds, then goes through (slower than the client's
  patience when ``stall_s`` is longer than its request timeout: the client gives up and retries
  while the stalled request may still be applied);
* ``drop_before``: the connection is closed without an answer, the request unforwarded;
* ``drop_after``: the request is applied by the server, then the connection is closed without
  an answer (the client cannot know that its write landed).

The proxy counts requests, faults by kind, and *retries*: a request for the same method and path
as a faulted one, seen within ``retry_window_s`` after it. It speaks HTTP/1.1 with keep-alive
(one upstream connection per client connection) and bodies sent with ``Content-Length`` or
chunked; it binds 127.0.0.1 only.
"""

from __future__ import annotations

import http.client
import random
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KINDS = ("error", "throttle", "stall", "drop_before", "drop_after")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "expect"}

_ERROR_BODY = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
    "<RequestId>roft-fault-proxy</RequestId></Error>"
)


class FaultProxy:
    """``FaultProxy(upstream="127.0.0.1:PORT", rate=0.08, seed=0)``; :meth:`start` returns ``HOST:PORT``.

    ``rate`` may be changed while it runs (0 forwards everything); ``kinds`` weighs the fault
    kinds (default: equal weights).
    """

    def __init__(
        self,
        upstream: str,
        rate: float = 0.0,
        seed: int = 0,
        stall_s: float = 4.0,
        kinds: dict[str, float] | None = None,
        retry_window_s: float = 60.0,
    ):
        host, _, port = upstream.rpartition(":")
        self.upstream = (host, int(port))
        self.rate, self.stall_s, self.retry_window_s = rate, stall_s, retry_window_s
        weights = kinds or {kind: 1.0 for kind in KINDS}
        unknown = sorted(set(weights) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown fault kind(s) {unknown}; accepted: {', '.join(KINDS)}")
        self._kinds, self._weights = list(weights), list(weights.values())
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.requests = 0
        self.by_method: Counter = Counter()
        self.faults: Counter = Counter()
        self.retries = 0
        self._faulted: dict[tuple[str, str], float] = {}  # (method, path) -> time of its last fault
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- the decision, under the lock (one RNG draw sequence per proxy) ------------------
    def _decide(self, method: str, path: str) -> str | None:
        with self._lock:
            self.requests += 1
            self.by_method[method] += 1
            now = time.monotonic()
            last = self._faulted.pop((method, path), None)
            if last is not None and now - last <= self.retry_window_s:
                self.retries += 1
            if self._rng.random() >= self.rate:
                return None
            kind = self._rng.choices(self._kinds, self._weights)[0]
            self.faults[kind] += 1
            self._faulted[(method, path)] = now
            return kind

    def report(self) -> dict:
        with self._lock:
            return {
                "requests": self.requests,
                "faults": dict(self.faults),
                "retries": self.retries,
                "by_method": dict(self.by_method),
            }

    # ---- serving ---------------------------------------------------------------------
    def start(self) -> str:
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _Handler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"
    timeout = 120

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _answer(self, status: int, code: str, message: str) -> None:
        body = _ERROR_BODY.format(code=code, message=message).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        if status == 503:
            self.send_header("Retry-After", "1")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        upstream = getattr(self, "_upstream", None)
        for attempt in (0, 1):  # an idle keep-alive upstream connection may have been closed
            if upstream is None:
                upstream = self._upstream = http.client.HTTPConnection(*self.owner.upstream, timeout=120)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                headers["Content-Length"] = str(len(body))
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                return response.status, response.reason, response.getheaders(), data
            except (http.client.HTTPException, OSError):
                upstream.close()
                upstream = self._upstream = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _handle(self) -> None:
        body = self._body()
        kind = self.owner._decide(self.command, self.path.split("?")[0])
        if kind == "error":
            return self._answer(500, "InternalError", "We encountered an internal error. Please try again.")
        if kind == "throttle":
            return self._answer(503, "SlowDown", "Please reduce your request rate.")
        if kind == "drop_before":
            return self._drop()
        if kind == "stall":
            time.sleep(self.owner.stall_s)
        try:
            status, reason, headers, data = self._forward(body)
        except (http.client.HTTPException, OSError):
            return self._drop()
        if kind == "drop_after":
            return self._drop()
        try:
            self.send_response(status, reason)
            for name, value in headers:
                if name.lower() not in HOP_BY_HOP and name.lower() not in ("content-length", "server", "date"):
                    self.send_header(name, value)
            if self.command == "HEAD":
                length = dict((k.lower(), v) for k, v in headers).get("content-length", "0")
                self.send_header("Content-Length", length)
                self.end_headers()
            else:
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
        except OSError:
            self.close_connection = True  # the client gave up meanwhile (its timeout): nothing to answer

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle
