"""A real two-node Ray cluster on loopback, for the tests that need one.

The head (``ray start --head``, no GPU) and a worker (``ray start --address``, one GPU, which
Ray only counts) are separate Ray nodes on 127.0.0.2 and 127.0.0.3: Ray rewrites 127.0.0.1 to
the machine's routable address, other loopback addresses it keeps, so every address the
cluster reports stays on 127.0.0.0/8. Each node runs under ``ray start --block`` in a process
group (a session) of its own, with its own temp dir; teardown ends exactly those groups (never
``ray stop``, which would stop every Ray on the machine, other tests' included).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent  # the virtual environment's bin/: ray, python
HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def node_ports() -> list[str]:
    """Ports every node opens, chosen free (two nodes share this machine; so may other tests)."""
    return ["--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
            "--metrics-export-port", str(free_port()), "--runtime-env-agent-port", str(free_port()),
            "--min-worker-port", "0", "--max-worker-port", "0", "--disable-usage-stats"]


def ray_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_TMPDIR")}
    # Loopback only, so token authentication may be off; nodes may join (the private local Ray
    # of other tests sets RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, which forbids that).
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="1")
    return env


@dataclass
class LoopbackCluster:
    dashboard: str  # http://127.0.0.1:PORT: the Jobs API and the state API
    gcs: str = ""  # HEAD_IP:PORT, the address nodes and drivers join
    # ``ray start --block`` of each node; its pid is also its process group's (and session's) id
    head: subprocess.Popen | None = field(default=None, repr=False)
    worker: subprocess.Popen | None = field(default=None, repr=False)
    temp_dirs: tuple[Path, ...] = ()  # the nodes' temp dirs, removed at teardown

    def state(self, resource: str, **params) -> list[dict]:
        query = "&".join(f"{k}={v}" for k, v in {"limit": 1000, **params}.items())
        with urllib.request.urlopen(f"{self.dashboard}/api/v0/{resource}?{query}", timeout=10) as response:
            return json.load(response)["data"]["result"]["result"]

    def alive_nodes(self) -> list[dict]:
        try:
            return [n for n in self.state("nodes", detail="true") if n["state"] == "ALIVE"]
        except OSError:
            return []


def _start_node(args: list[str], temp_dir: Path) -> subprocess.Popen:
    log = open(temp_dir / "ray-start.log", "w")
    return subprocess.Popen([str(BIN / "ray"), "start", "--block", "--temp-dir", str(temp_dir), *args, *node_ports()],
                            env=ray_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    """End the node: SIGTERM to ``ray start --block`` stops its Ray processes; then its process group."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the group this test created (start_new_session)
    except ProcessLookupError:
        pass


def _wait(condition, what: str, nodes: list[subprocess.Popen], dirs: list[Path], timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if any(p.poll() is not None for p in nodes):
            break
        time.sleep(0.5)
    logs = "\n".join((d / "ray-start.log").read_text()[-3000:] for d in dirs)
    raise RuntimeError(f"{what} did not happen; ray start said:\n{logs}")


@contextmanager
def loopback_cluster():
    """A head on 127.0.0.2 (1 CPU, no GPU) and a worker on 127.0.0.3 (1 CPU, 1 GPU).

    Each node has a temp dir of its own: on one machine, nodes sharing one would share the
    job's unpacked working directory, and the worker's cleanup would delete it under the driver.
    The dirs are short (/tmp/roft-ray-*): Ray's socket paths must fit in 107 bytes.
    """
    head_dir = Path(tempfile.mkdtemp(prefix="roft-ray-head-", dir="/tmp"))
    worker_dir = Path(tempfile.mkdtemp(prefix="roft-ray-worker-", dir="/tmp"))
    gcs, dashboard = free_port(), free_port()
    cluster = LoopbackCluster(f"http://127.0.0.1:{dashboard}", f"{HEAD_IP}:{gcs}", temp_dirs=(head_dir, worker_dir))
    nodes: list[subprocess.Popen] = []
    try:
        nodes.append(_start_node(["--head", "--node-ip-address", HEAD_IP, "--port", str(gcs),
                                  "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
                                  "--ray-client-server-port", str(free_port()), "--num-cpus", "1", "--num-gpus", "0",
                                  "--resources", json.dumps({"roft_head": 1})], head_dir))
        cluster.head = nodes[-1]
        _wait(lambda: len(cluster.alive_nodes()) == 1, "the head's start", nodes, [head_dir])
        nodes.append(_start_node(["--address", f"{HEAD_IP}:{gcs}", "--node-ip-address", WORKER_IP,
                                  "--num-cpus", "1", "--num-gpus", "1", "--resources", json.dumps({"roft_worker": 1})],
                                 worker_dir))
        cluster.worker = nodes[-1]
        _wait(lambda: len(cluster.alive_nodes()) == 2, "the worker's joining", nodes, [head_dir, worker_dir])
        yield cluster
    finally:
        for node in reversed(nodes):
            _stop(node)
        for folder in (head_dir, worker_dir):
            shutil.rmtree(folder, ignore_errors=True)
