"""Real Ray clusters on loopback, for the tests that need one: nodes that join and leave.

The head (``ray start --head``) and every worker (``ray start --address``) are separate Ray nodes
on addresses of their own, 127.0.0.2, 127.0.0.3, ...: Ray rewrites 127.0.0.1 to the machine's
routable address, other loopback addresses it keeps, so every address the cluster reports stays
on 127.0.0.0/8. Each node runs under ``ray start --block`` in a process group (a session) of its
own, with its own temp dir; teardown ends exactly those groups (never ``ray stop``, which would
stop every Ray on the machine, other tests' included). A node can leave gracefully
(:meth:`LoopbackCluster.stop`: SIGTERM to its ``ray start --block``, which stops its processes,
as ``ray stop`` on that machine would) or be lost (:meth:`LoopbackCluster.kill_raylet`: SIGKILL
of its raylet, as a crashed machine's would end).
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
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.dataset as ds

BIN = Path(sys.executable).parent  # the virtual environment's bin/: ray, python
REPO = Path(__file__).resolve().parents[2]
HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def node_ports(agent_port: int) -> list[str]:
    """Ports every node opens, chosen free (nodes share this machine; so may other tests); ``agent_port``:
    its dashboard agent's HTTP port (the head's serves the Jobs API's submissions)."""
    return ["--dashboard-agent-listen-port", str(agent_port), "--dashboard-agent-grpc-port", str(free_port()),
            "--metrics-export-port", str(free_port()), "--runtime-env-agent-port", str(free_port()),
            "--min-worker-port", "0", "--max-worker-port", "0", "--disable-usage-stats"]


def listening(ip: str, port: int) -> bool:
    """Whether something accepts TCP connections on ``ip:port``."""
    try:
        with socket.create_connection((ip, port), timeout=2):
            return True
    except OSError:
        return False


def ray_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_TMPDIR")}
    # Loopback only, so token authentication may be off; nodes may join (the private local Ray
    # of other tests sets RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, which forbids that).
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="1")
    # A joining node's raylet waits for its dashboard agent to write its port file, and aborts past this
    # timeout ("Timed out waiting for file .../dashboard_agent_listen_port_..."); on a machine whose cores
    # are all busy the agent took over a minute to start. Five minutes: a slow start, not a failed one.
    env.update(RAY_agent_register_timeout_ms="300000")
    return env


@dataclass
class Node:
    ip: str
    process: subprocess.Popen  # ``ray start --block``; its pid is also its process group's (and session's) id
    temp_dir: Path
    agent_port: int  # its dashboard agent's HTTP port
    joined_at: float = 0.0  # time.time() when the GCS first listed it ALIVE


@dataclass
class LoopbackCluster:
    dashboard: str  # http://127.0.0.1:PORT: the Jobs API and the state API
    gcs: str = ""  # HEAD_IP:PORT, the address nodes and drivers join
    nodes: dict[str, Node] = field(default_factory=dict)  # by IP, the head first, departed ones included

    @property
    def head(self) -> subprocess.Popen:
        return self.nodes[HEAD_IP].process

    @property
    def worker(self) -> subprocess.Popen:
        return self.nodes[WORKER_IP].process

    @property
    def temp_dirs(self) -> tuple[Path, ...]:
        return tuple(node.temp_dir for node in self.nodes.values())

    def state(self, resource: str, **params) -> list[dict]:
        query = "&".join(f"{k}={v}" for k, v in {"limit": 1000, **params}.items())
        with urllib.request.urlopen(f"{self.dashboard}/api/v0/{resource}?{query}", timeout=10) as response:
            return json.load(response)["data"]["result"]["result"]

    def alive_nodes(self) -> list[dict]:
        try:
            return [n for n in self.state("nodes", detail="true") if n["state"] == "ALIVE"]
        except OSError:
            return []

    def alive_ips(self) -> set[str]:
        return {n["node_ip"] for n in self.alive_nodes()}

    def join(self, ip: str, num_cpus: int = 1, num_gpus: int = 0, resources: dict[str, float] | None = None,
             timeout: float = 120.0, attempts: int = 2) -> Node:
        """Start a worker node on ``ip`` and return once the GCS lists it alive.

        ``ray start`` gives up when the node's raylet has not registered within 30 s (a fixed time in
        Ray), and the raylet first waits for its dashboard agent, which on a machine whose cores are all
        busy can take longer to start: such a node is started again (``attempts`` in all), as an
        autoscaler would, and the failed start is printed on stderr."""
        args = ["--address", self.gcs, "--node-ip-address", ip, "--num-cpus", str(num_cpus), "--num-gpus",
                str(num_gpus), "--resources", json.dumps(resources or {})]
        for attempt in range(1, attempts + 1):
            temp_dir = Path(tempfile.mkdtemp(prefix=f"roft-ray-{ip.rpartition('.')[2]}-", dir="/tmp"))
            node = self.nodes[ip] = _start_node(ip, args, temp_dir)
            try:
                _wait(lambda: ip in self.alive_ips(), f"node {ip}'s joining", [node], timeout)
                break
            except RuntimeError as failure:
                _stop(node.process, grace=5.0)
                if attempt == attempts:  # the cluster's teardown removes this node's temp dir
                    raise
                shutil.rmtree(temp_dir, ignore_errors=True)  # its log's tail is in the message below
                print(f"\n{failure}\n(start {attempt} of node {ip} failed; starting it again)", file=sys.stderr)
        node.joined_at = time.time()
        return node

    def stop(self, ip: str) -> None:
        """The node leaves gracefully: SIGTERM to its ``ray start --block``, as Kubernetes deleting its
        pod or ``ray stop`` there would send. Ray then drains the node (up to
        ``RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S``, 30 s, while running work goes on) and stops its
        processes; returns once they are gone."""
        _stop(self.nodes[ip].process, grace=90.0)

    def kill_raylet(self, ip: str) -> int:
        """SIGKILL the node's raylet (its trial workers then die with it); returns the raylet's pid."""
        node = self.nodes[ip]
        pids = [pid for pid, args in live_processes(node.process.pid) if args.split()[0].endswith("/raylet")]
        assert len(pids) == 1, live_processes(node.process.pid)
        os.kill(pids[0], signal.SIGKILL)
        return pids[0]

    def wait_gone(self, ip: str, timeout: float = 120.0) -> float:
        """Seconds until the GCS no longer lists node ``ip`` alive."""
        started = time.monotonic()
        while ip in self.alive_ips():
            assert time.monotonic() < started + timeout, f"node {ip} is still alive after {timeout:.0f} s"
            time.sleep(0.5)
        return time.monotonic() - started

    def submit(self, argv: list[str], log_path: Path, runtime_env: dict, submission_id: str = "sweep",
               ) -> subprocess.Popen:
        """``ray job submit --working-dir .`` of ``argv`` from the repository, its output to ``log_path``."""
        with open(log_path, "w") as out:
            return subprocess.Popen(
                [str(BIN / "ray"), "job", "submit", "--address", self.dashboard, "--submission-id", submission_id,
                 "--working-dir", ".", "--runtime-env-json", json.dumps(runtime_env), "--", *argv],
                cwd=REPO, env={**ray_env(), "PYTHONUNBUFFERED": "1"}, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)

    def jobs(self) -> dict[str, str]:
        return {j["submission_id"]: j["status"] for j in self.state("jobs") if j.get("type") == "SUBMISSION"}


def _start_node(ip: str, args: list[str], temp_dir: Path) -> Node:
    log, agent_port = open(temp_dir / "ray-start.log", "w"), free_port()
    process = subprocess.Popen(
        [str(BIN / "ray"), "start", "--block", "--temp-dir", str(temp_dir), *args, *node_ports(agent_port)],
        env=ray_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return Node(ip, process, temp_dir, agent_port)


def _stop(process: subprocess.Popen, grace: float = 30.0) -> None:
    """End the node: SIGTERM to ``ray start --block`` stops its Ray processes (after draining the
    node for up to ``grace`` seconds); then SIGKILL to its process group."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the group this test created (start_new_session)
    except ProcessLookupError:
        pass


def _wait(condition, what: str, nodes: list[Node], timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if any(node.process.poll() is not None for node in nodes):
            break
        time.sleep(0.5)
    logs = "\n".join((node.temp_dir / "ray-start.log").read_text()[-3000:] for node in nodes)
    raise RuntimeError(f"{what} did not happen; ray start said:\n{logs}")


@contextmanager
def loopback_cluster(workers: int = 1, head_cpus: int = 1, worker_gpus: int = 1):
    """A head on 127.0.0.2 (``head_cpus`` CPUs, no GPU) and ``workers`` worker nodes on 127.0.0.3,
    127.0.0.4, ... (1 CPU and ``worker_gpus`` GPUs each, which Ray only counts).

    Each node has a temp dir of its own: on one machine, nodes sharing one would share the
    job's unpacked working directory, and a worker's cleanup would delete it under the driver.
    The dirs are short (/tmp/roft-ray-*): Ray's socket paths must fit in 107 bytes.
    """
    gcs, dashboard = free_port(), free_port()
    cluster = LoopbackCluster(f"http://127.0.0.1:{dashboard}", f"{HEAD_IP}:{gcs}")
    try:
        head_dir = Path(tempfile.mkdtemp(prefix="roft-ray-head-", dir="/tmp"))
        head = cluster.nodes[HEAD_IP] = _start_node(HEAD_IP, [
            "--head", "--node-ip-address", HEAD_IP, "--port", str(gcs), "--dashboard-host", "127.0.0.1",
            "--dashboard-port", str(dashboard), "--ray-client-server-port", str(free_port()),
            "--num-cpus", str(head_cpus), "--num-gpus", "0", "--resources", json.dumps({"roft_head": 1})], head_dir)
        _wait(lambda: len(cluster.alive_nodes()) == 1, "the head's start", [head])
        # The Jobs API hands a submission to the head's dashboard agent, and refuses it ("No available agent
        # to submit job") when the agent has not started within 10 s: on a busy machine it can start later
        # than the node is listed alive. It registers as soon as its HTTP server listens.
        _wait(lambda: listening(HEAD_IP, head.agent_port), "the head's dashboard agent's start", [head], 300.0)
        time.sleep(1.0)  # its registration follows the listening at once
        head.joined_at = time.time()
        for i in range(workers):
            cluster.join(f"127.0.0.{3 + i}", num_cpus=1, num_gpus=worker_gpus, resources={"roft_worker": 1})
        yield cluster
    finally:
        for node in reversed(cluster.nodes.values()):
            _stop(node.process)
        for node in cluster.nodes.values():
            shutil.rmtree(node.temp_dir, ignore_errors=True)


def live_processes(session: int | None = None) -> list[tuple[int, str]]:
    """``(pid, command line)`` of every process of process session ``session`` (None: of every
    session) that still runs; zombies, dead but not yet reaped by their new parent, are left out."""
    out = subprocess.run(["ps", "-ww", "-eo", "pid=,sid=,stat=,args="], capture_output=True, text=True, check=True).stdout
    rows = [line.split(None, 3) for line in out.splitlines()]
    return [(int(pid), args) for pid, sid, stat, args in (r for r in rows if len(r) == 4)
            if (session is None or int(sid) == session) and not stat.startswith("Z")]


def wait_until_gone(session: int, timeout: float = 30.0) -> list[tuple[int, str]]:
    """Wait until no process of ``session`` runs (SIGKILL takes effect when the kernel next
    schedules the process); returns those still running after ``timeout``."""
    deadline = time.monotonic() + timeout
    while (left := live_processes(session)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the process group (session) that ``process`` leads, which this test started."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=30)


def rows_per_key(store: Path) -> Counter:
    """Every row of the trials table, in every data file (per-trial files and part files alike)."""
    directory = store / "trials"
    if not directory.is_dir():
        return Counter()
    keys = ds.dataset(str(directory), format="parquet").to_table(columns=["trial_key"]).column("trial_key")
    return Counter(keys.to_pylist())
