"""orchestrator.bench.s3_requests: every request relayed and counted as sent, or refused."""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from orchestrator.bench.s3_requests import RequestCounter, Requests, _kind, relayed_uri


def test_only_a_store_on_a_plain_http_endpoint_is_relayed():
    found = relayed_uri("s3://key:secret@bucket/prefix?region=eu-west-1&endpoint_override=127.0.0.1:9000&scheme=http")
    assert found == ("127.0.0.1:9000",
                     "s3://key:secret@bucket/prefix?region=eu-west-1&endpoint_override={endpoint}&scheme=http")
    assert relayed_uri("s3://bucket/prefix?endpoint_override=minio:9000&scheme=https") is None  # TLS: not readable
    assert relayed_uri("s3://bucket/prefix?endpoint_override=minio:9000") is None  # https by default
    assert relayed_uri("s3://bucket/prefix") is None  # AWS itself
    with pytest.raises(ValueError, match="expected HOST:PORT"):
        RequestCounter("localhost")


@pytest.mark.parametrize("method, target, kind", [
    ("GET", "/b?list-type=2&prefix=results/trials/&max-keys=1000&delimiter=/", "LIST"),
    ("GET", "/b?continuation-token=abc&list-type=2&prefix=p/", "LIST"),
    ("GET", "/b/", "LIST"),  # ListObjects (v1)
    ("GET", "/b?prefix=p/&marker=x", "LIST"),
    ("GET", "/b/results/trials/a.parquet", "GET"),  # an object
    ("GET", "/b?location", "GET"),  # other bucket sub-resources
    ("GET", "/b?uploads", "GET"),
    ("GET", "/", "GET"),  # ListBuckets
    ("HEAD", "/b", "HEAD"),
    ("PUT", "/b/k?partNumber=1&uploadId=u", "PUT"),
])
def test_requests_are_told_apart(method, target, kind):
    assert _kind(method, target) == kind


class Server(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive: a LIST takes 50 ms, a PUT answers with the length of its body."""

    protocol_version = "HTTP/1.1"
    bodies: list[bytes] = []

    def log_message(self, *args):
        pass

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        if "list-type=2" in self.path:
            time.sleep(0.05)
        self._answer(b"<ListBucketResult/>" * 1000)

    def do_HEAD(self):
        self._answer(b"")

    def do_PUT(self):
        if self.headers.get("Transfer-Encoding") == "chunked":
            body = b""
            while size := int(self.rfile.readline().strip(), 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers["Content-Length"]))
        Server.bodies.append(body)
        self._answer(str(len(body)).encode())


@pytest.fixture
def http_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Server.bodies = []
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_counter_relays_and_counts_every_request_of_a_kept_alive_connection(http_server):
    with RequestCounter(http_server) as counter:
        host, port = counter.endpoint.split(":")
        connection = http.client.HTTPConnection(host, int(port))
        answers = []
        for method, target, body, chunked in [("GET", "/b?list-type=2&prefix=p/", None, False),
                                              ("PUT", "/b/k1", b"x" * 200_000, False),
                                              ("GET", "/b?list-type=2&prefix=p/&continuation-token=t", None, False),
                                              ("PUT", "/b/k2", iter([b"ab", b"cde", b""]), True),
                                              ("HEAD", "/b/k1", None, False),
                                              ("GET", "/b/k1", None, False)]:
            connection.request(method, target, body=body, encode_chunked=chunked)
            response = connection.getresponse()
            answers.append(response.read())
        connection.close()
        other = http.client.HTTPConnection(host, int(port))  # a second connection, counted as well
        other.request("GET", "/b?list-type=2&prefix=q/")
        other.getresponse().read()
        other.close()
        requests = counter.reset()
        assert counter.requests == Requests()  # a new count
    assert not counter.errors
    assert requests.count == Counter({"LIST": 3, "PUT": 2, "HEAD": 1, "GET": 1})
    assert Server.bodies == [b"x" * 200_000, b"abcde"] and answers[1] == b"200000" and answers[3] == b"5"
    assert answers[0] == b"<ListBucketResult/>" * 1000 and answers[4] == b""
    assert 0.15 <= requests.server_s["LIST"] < 2  # three LISTs of 50 ms, measured at the relay


def test_a_request_that_cannot_be_framed_is_refused_not_counted_wrong(http_server):
    with RequestCounter(http_server) as counter:
        host, port = counter.endpoint.split(":")
        connection = http.client.HTTPConnection(host, int(port))
        connection.putrequest("PUT", "/b/k")
        connection.putheader("Content-Length", "not a number")
        connection.endheaders()
        with pytest.raises((http.client.HTTPException, OSError)):
            connection.getresponse()
        connection.close()
        deadline = time.monotonic() + 5
        while not counter.errors and time.monotonic() < deadline:
            time.sleep(0.01)
    assert counter.errors and "could not be relayed" in counter.errors[0]
