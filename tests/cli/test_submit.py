"""``roft submit`` and the job's entry point, where they cannot go on: one line that says what to do.

No Ray cluster here (tests/docs/test_cluster_recipe.py submits to a real one): a port where nothing
listens, and a loopback HTTP server that answers as a head with token authentication does when a
request has no token (401) or the wrong one (403).
"""

from __future__ import annotations

import http.server
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from orchestrator.cli import main
from tests.integration.cluster import free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_token(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_API_SERVER_ADDRESS", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)


def _head_refusing(status: int, text: str):
    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server hook's name
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_no_jobs_api_at_the_address_is_one_line(no_token, tmp_path, capsys):
    address = f"http://127.0.0.1:{free_port()}"
    assert main(["submit", "cluster-check.yaml", "--address", address, "--store", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"roft: error: no Ray Jobs API answers at {address} (Failed to connect to Ray at address: "
                   f"{address}.); start a head (`make cluster-up` on this machine) or give --address "
                   "http://HEAD:PORT, the head's dashboard (8265 by default)")


@pytest.mark.parametrize("status, text, says", [
    (401, "Unauthorized: Missing authentication token", "requires its authentication token, and this machine has none"),
    (403, "Forbidden: Invalid authentication token", "rejected this machine's authentication token"),
])
def test_a_head_that_wants_its_token_says_what_to_set(no_token, tmp_path, capsys, status, text, says):
    server = _head_refusing(status, text)
    address = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert main(["submit", "cluster-check.yaml", "--address", address, "--store", str(tmp_path / "s")]) == 2
    finally:
        server.shutdown()
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"roft: error: the Ray cluster at {address} {says}") and len(err.splitlines()) == 1
    assert "copy the head's ~/.ray/auth_token" in err and "RAY_AUTH_TOKEN" in err


def test_a_relative_store_is_refused_before_anything_is_sent(no_token, capsys):
    assert main(["submit", "cluster-check.yaml", "--store", "results", "--address", "http://127.0.0.1:1"]) == 2
    assert "--store 'results' is relative to this shell's folder" in capsys.readouterr().err


def test_an_invalid_spec_is_refused_here_not_on_the_cluster(no_token, tmp_path, capsys):
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: bad\nbackbones: [no-such-backbone]\n")
    assert main(["submit", str(spec), "--store", str(tmp_path / "s"), "--address", "http://127.0.0.1:1"]) == 2
    assert "invalid sweep spec" in capsys.readouterr().err


@pytest.mark.parametrize("in_job", [True, False])
def test_a_python_without_roft_s_packages_says_which_environment_to_use(in_job, tmp_path):
    """What a Ray job's log ends with when the head's `python` lacks roft's packages (here: this
    Python without its site-packages, ``-S``)."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_JOB_CONFIG_JSON_ENV_VAR"}
    if in_job:
        env["RAY_JOB_CONFIG_JSON_ENV_VAR"] = '{"runtime_env": {}}'  # as Ray sets it for a job's entry point
    result = subprocess.run([sys.executable, "-S", "-m", "orchestrator", "sweep", "cluster-check.yaml", "--store",
                             str(tmp_path / "s")], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert re.match(rf"roft: error: this Python \({re.escape(sys.executable)}\) has no module '(numpy|yaml|pandas)', "
                    "which roft needs", line), line
    if in_job:
        assert "start Ray from roft's environment (`make cluster-up`" in line and "deploy/Dockerfile" in line
    else:
        assert "run roft from its environment (`make setup` creates .venv" in line
