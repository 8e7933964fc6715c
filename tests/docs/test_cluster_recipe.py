"""The cluster path works as the documents say: their shell blocks, run as written, on loopback.

docs/cluster.md's "One machine" recipe and the README's cluster step are ```` ```sh ```` blocks.
Each test copies the checkout (so that ``$PWD/...`` stores land in the copy, not in this one),
and runs the blocks in one bash process, in order, each command as written (only its output is
captured, and its wall time taken), with the environment a user of the document has: roft's
``.venv/bin`` first on PATH, ``ROFT_DATA`` set, a home of its own (where ``make cluster-up`` makes
Ray's token) and the ports of ``make cluster-up`` set to free ones (``HEAD_PORT``,
``DASHBOARD_PORT``, ``HEAD_OPTIONS``; ``RAY_API_SERVER_ADDRESS`` names the Jobs API, as ``roft
submit``'s default would for the default port). While the head runs, the test checks that every
address Ray reports, and every port its processes listen on, is on 127.0.0.0/8, and that the
head refuses a request without its token.

docs/cluster.md's run block is run twice: with the folder store it sets, then, as the text says,
with ``ROFT_STORE`` on a local S3 server (moto) and fake, recognisable credentials in the shell
(the head never had them: ``make cluster-up`` starts Ray without them, so the job can only have
them from ``roft submit``). Then a submission that forwards none must fail with the store's
refusal and the variables it needs, and the credentials must appear in nothing: the outputs,
the copy of the checkout, the home, Ray's folder (logs of every process, the jobs' logs, their
working directories), Tune's state and every object of the bucket.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pyarrow.fs import FileSelector, FileType

from orchestrator.store.results import ResultStore
from orchestrator.version import code_version
from tests.integration.cluster import free_port, live_processes

pytestmark = [pytest.mark.slow, pytest.mark.data, pytest.mark.cluster, pytest.mark.timeout(1500)]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SH_BLOCK = re.compile(r"^```sh[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
COPY_IGNORED = shutil.ignore_patterns(".git", ".venv", "results", "results-cluster", "__pycache__", ".pytest_cache",
                                      "*.egg-info", "build")


# ---- the documents' blocks ------------------------------------------------------------------------

def cluster_md_blocks() -> list[str]:
    text = (REPO / "docs" / "cluster.md").read_text()
    match = re.search(r"^## One machine[ \t]*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, "docs/cluster.md has no '## One machine' section"
    return SH_BLOCK.findall(match.group(1))


def readme_blocks() -> list[str]:
    text = (REPO / "README.md").read_text()
    match = re.search(r"^\*\*5\. Cluster\.\*\*(.*?)(?=^\*\*\d|^## |\Z)", text, re.M | re.S)
    assert match, "README.md has no '**5. Cluster.**' step"
    return SH_BLOCK.findall(match.group(1))


def commands(block: str) -> list[str]:
    """The block's commands: lines joined where they end in a backslash; blank and comment lines dropped."""
    out, pending = [], ""
    for line in block.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        line = pending + line
        pending = ""
        if line.strip() and not line.lstrip().startswith("#"):
            out.append(line)
    return out


# ---- running them ---------------------------------------------------------------------------------

@dataclass
class Run:
    """Commands run by one bash process; ``outputs`` and ``seconds`` by command, in order."""

    commands: list[str]
    outputs: list[str] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    returncode: int = 0

    def output(self, fragment: str, nth: int = 0) -> str:
        """The output of the ``nth`` command that contains ``fragment``."""
        return [out for cmd, out in zip(self.commands, self.outputs) if fragment in cmd][nth]


class Shell:
    """Runs documented commands in ``cwd`` under ``env``, one bash process per :meth:`run`."""

    def __init__(self, cwd: Path, env: dict[str, str], work: Path):
        self.cwd, self.env, self.work = cwd, env, work
        self.runs = 0
        self.timings: list[tuple[str, float]] = []

    def start(self, lines: list[str]) -> tuple[subprocess.Popen, Path, Run]:
        self.runs += 1
        folder = self.work / f"run{self.runs}"
        folder.mkdir()
        script = ["set -eo pipefail"]
        for i, line in enumerate(lines):
            # the command as written; only its output goes to a file, and its times to another
            script += ['__start=$(date +%s.%N)', "{ " + line, f'}} > "{folder}/{i}.out" 2>&1',
                       f'echo "{i} $__start $(date +%s.%N)" >> "{folder}/times"']
        (folder / "script.sh").write_text("\n".join(script) + "\n")
        process = subprocess.Popen(["bash", str(folder / "script.sh")], cwd=self.cwd, env=self.env,
                                   stdout=subprocess.DEVNULL, stderr=(folder / "bash.err").open("w"),
                                   start_new_session=True)
        return process, folder, Run(lines)

    def finish(self, process: subprocess.Popen, folder: Path, run: Run, timeout: float = 1200) -> Run:
        try:
            run.returncode = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            run.returncode = process.wait(timeout=30)
        times = [line.split() for line in (folder / "times").read_text().splitlines()] \
            if (folder / "times").exists() else []
        run.seconds = [float(end) - float(start) for _, start, end in times]
        run.outputs = [(folder / f"{i}.out").read_text(errors="replace") if (folder / f"{i}.out").exists() else ""
                       for i in range(len(run.commands))]
        self.timings += list(zip(run.commands, run.seconds))
        failed = len(run.seconds)
        assert run.returncode == 0, (f"`{run.commands[failed] if failed < len(run.commands) else '?'}` failed "
                                     f"(exit {run.returncode}):\n{run.outputs[failed][-6000:] if failed < len(run.outputs) else ''}"
                                     f"\n{(folder / 'bash.err').read_text()[-2000:]}")
        return run

    def run(self, lines: list[str], on_head_up=None) -> Run:
        """Run ``lines``; ``on_head_up()`` is called once, while they run, when ``make cluster-up`` has returned."""
        process, folder, run = self.start(lines)
        if on_head_up is not None and any("make cluster-up" in line for line in lines):
            index = next(i for i, line in enumerate(lines) if "make cluster-up" in line)
            deadline = time.monotonic() + 300
            while process.poll() is None and time.monotonic() < deadline:
                done = (folder / "times").read_text().split("\n") if (folder / "times").exists() else []
                if any(line.split()[:1] == [str(index)] for line in done):
                    on_head_up()
                    break
                time.sleep(0.5)
        return self.finish(process, folder, run)

    def report(self) -> str:
        return "\n".join(f"  {seconds:7.1f} s  {command}" for command, seconds in self.timings)


@dataclass
class Head:
    """Where ``make cluster-up`` puts its head in this test: its folder, ports and Ray's token."""

    dir: Path
    port: int
    dashboard: int
    home: Path

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.dashboard}"

    def get(self, path: str, token: bool = True):
        headers = {"Authorization": f"Bearer {(self.home / '.ray' / 'auth_token').read_text().strip()}"} if token else {}
        request = urllib.request.Request(f"{self.address}{path}", headers=headers)
        with urllib.request.urlopen(request, timeout=20) as response:
            return json.load(response)

    def check_loopback(self) -> dict:
        """Every node Ray reports and every listening socket of the head's processes is on 127.0.0.0/8;
        the head refuses a request without its token. Returns what was seen, for the report."""
        import psutil

        nodes = self.get("/api/v0/nodes?detail=true")["data"]["result"]["result"]
        ips = {n["node_ip"] for n in nodes}
        assert ips and all(ipaddress.ip_address(ip).is_loopback for ip in ips), ips
        with pytest.raises(urllib.error.HTTPError) as refused:
            self.get("/api/v0/nodes", token=False)
        assert refused.value.code == 401  # token authentication is on
        session = int((self.dir / "head.pid").read_text())
        pids = {pid for pid, _ in live_processes(session)}
        listening = {(c.laddr.ip, c.laddr.port) for c in psutil.net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN and c.pid in pids}
        outside = [a for a in listening if not ipaddress.ip_address(a[0].removeprefix("::ffff:")).is_loopback]
        assert listening and not outside, f"the head's processes listen outside loopback: {outside}"
        return {"nodes": sorted(ips), "listening": len(listening)}

    def stop(self, env: dict[str, str], cwd: Path) -> None:
        """``make cluster-down`` where a test failed before its own did; then nothing of the head is left."""
        if (self.dir / "head.pid").exists():
            session = int((self.dir / "head.pid").read_text())
            subprocess.run(["make", "cluster-down"], cwd=cwd, env=env, capture_output=True, timeout=120)
            try:
                os.killpg(session, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


def checkout_copy(tmp_path: Path) -> Path:
    """This checkout without its venv, stores and caches, with ``.venv`` linked to this one's (the
    copy's pyproject.toml kept older than the venv's install mark, so `make` installs nothing)."""
    venv = Path(sys.prefix)  # the environment running the tests, as `make setup` made it
    if not (venv / ".roft-installed").is_file():
        pytest.fail(f"the recipe runs `make`, which needs the environment of `make setup` ({venv} is not one)")
    copy = tmp_path / "checkout"
    shutil.copytree(REPO, copy, ignore=COPY_IGNORED)
    (copy / ".venv").symlink_to(venv)
    mark = (venv / ".roft-installed").stat().st_mtime
    os.utime(copy / "pyproject.toml", (mark - 60, mark - 60))
    return copy


def head_env(tmp_path: Path, data_root: Path, cache: Path) -> tuple[dict[str, str], Head]:
    head = Head(dir=Path(tempfile.mkdtemp(prefix="roft-doc-", dir="/tmp")), port=free_port(), dashboard=free_port(),
                home=tmp_path / "home")
    head.home.mkdir()
    options = ["--ray-client-server-port", free_port(), "--dashboard-agent-listen-port", free_port(),
               "--dashboard-agent-grpc-port", free_port(), "--metrics-export-port", free_port(),
               "--runtime-env-agent-port", free_port(), "--min-worker-port", 0, "--max-worker-port", 0, "--num-cpus", 2]
    drop = ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_TMPDIR", "RAY_API_SERVER_ADDRESS", "ROFT_STORE", "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "VIRTUAL_ENV", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(PATH=f"{BIN}:{os.environ['PATH']}", HOME=str(head.home), ROFT_DATA=str(data_root), ROFT_CACHE=str(cache),
               HEAD_DIR=str(head.dir), HEAD_PORT=str(head.port), DASHBOARD_PORT=str(head.dashboard),
               HEAD_OPTIONS=" ".join(map(str, options)), RAY_API_SERVER_ADDRESS=head.address,
               RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1")
    return env, head


def files_holding(secrets_: tuple[str, ...], *roots: Path) -> list[str]:
    """Files under ``roots`` (followed into, not through symlinks) whose bytes contain any of ``secrets_``."""
    needles = [s.encode() for s in secrets_]
    found = []
    for root in roots:
        paths = [root] if root.is_file() else (p for p in root.rglob("*") if p.is_file() and not p.is_symlink()
                                               and ".venv" not in p.relative_to(root).parts)
        for path in paths:
            try:
                data = path.read_bytes()
            except OSError:
                continue
            if any(n in data for n in needles):
                found.append(str(path))
    return found


def landed(store: ResultStore) -> list[dict]:
    return store.read_trials(columns=["trial_key", "method", "code_version", "sweep"]).to_pylist()


# ---- the tests ------------------------------------------------------------------------------------

def test_the_one_machine_recipe_runs_as_written_on_a_folder_and_on_s3(real_env, session_cache, s3_server, s3_bucket,
                                                                      tmp_path):
    blocks = cluster_md_blocks()
    assert len(blocks) == 4, f"expected head, store, run and stop blocks; found {len(blocks)}"
    head_up, store_block, run_block, head_down = (commands(b) for b in blocks)
    assert any("make cluster-up" in c for c in head_up) and any("make cluster-down" in c for c in head_down)
    assert any(c.startswith("roft submit") for c in run_block)

    copy = checkout_copy(tmp_path)
    env, head = head_env(tmp_path, real_env, session_cache)
    key_id, secret = f"roftFAKEKEYID{secrets.token_hex(4)}", f"roftFAKESECRET{secrets.token_hex(8)}"
    s3_store = f"s3://{s3_bucket}/results?endpoint_override={s3_server}&scheme=http"
    refused_store = f"s3://{s3_bucket}/refused?endpoint_override={s3_server}&scheme=http"
    env.update(ROFT_TEST_S3_STORE=s3_store, ROFT_TEST_REFUSED_STORE=refused_store, ROFT_TEST_KEY_ID=key_id,
               ROFT_TEST_SECRET=secret)
    # As the text says: the S3 store and its credentials in this shell (values from the test's environment,
    # so that not even this script's file holds them).
    s3_shell = ['export ROFT_STORE="$ROFT_TEST_S3_STORE" AWS_ACCESS_KEY_ID="$ROFT_TEST_KEY_ID" '
                'AWS_SECRET_ACCESS_KEY="$ROFT_TEST_SECRET" AWS_DEFAULT_REGION=us-east-1']
    refused = ['roft submit cluster-check.yaml --store "$ROFT_TEST_REFUSED_STORE" --no-credentials --wait '
               '|| echo "exit $?"']
    shell, seen = Shell(copy, env, tmp_path), {}
    try:
        run = shell.run(head_up + store_block + run_block + s3_shell + run_block + refused,
                        on_head_up=lambda: seen.update(head.check_loopback()))
        assert seen["nodes"] == ["127.0.0.1"], seen

        folder, s3 = ResultStore(copy / "results-cluster"), ResultStore(s3_store)
        for store, nth in ((folder, 0), (s3, 1)):
            submitted = run.output("roft submit", nth)
            assert re.search(r"job roft-cluster-check-\S+: SUCCEEDED", submitted), submitted[-3000:]
            assert "ran 2 trials" in submitted and "2 landed, 0 failed" in submitted, submitted[-3000:]
            rows = landed(store)
            assert sorted(r["method"] for r in rows) == ["full-ft", "wise-ft"]
            assert {r["code_version"] for r in rows} == {code_version()}  # forwarded: the upload has no .git
            status = run.output("roft status", nth)
            assert ("sweep cluster-check (specs/cluster-check.yaml, 2 planned): 2 done, 0 failed, 0 running, "
                    "0 queued") in status, status
            table = run.output("roft table", nth)
            assert table.startswith("| method | bbbp |") and "\n| full-ft | " in table and "\n| wise-ft | " in table, table
        assert "forwarded: ROFT_DATA, ROFT_CACHE, ROFT_CODE_VERSION (values not shown)" in run.output("roft submit", 0)
        assert ("forwarded: ROFT_DATA, ROFT_CACHE, ROFT_CODE_VERSION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
                "AWS_DEFAULT_REGION (values not shown)") in run.output("roft submit", 1)

        # Without the credentials the store refuses the job, and says which variables it needs.
        without = run.output("--no-credentials")
        assert re.search(r"job roft-cluster-check-\S+: FAILED", without) and without.rstrip().endswith("exit 1")
        assert "the results store refused access" in without and "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY" in without
        assert "this is a Ray job" in without and "`roft submit` forwards these variables" in without
        assert "Fix the store's permissions or free space" not in without

        # The credentials are in nothing that was written or printed.
        control = tmp_path / "control"
        control.write_text(f"x{secret}x")
        assert files_holding((secret,), control) == [str(control)]  # the search finds them where they are
        listed = s3.fs.get_file_info(FileSelector(s3_bucket, recursive=True))
        objects = {o.path: s3.fs.open_input_stream(o.path).read() for o in listed if o.type == FileType.File}
        assert sum("/results/trials/" in p for p in objects) == 2, sorted(objects)
        assert not [p for p, data in objects.items() if key_id.encode() in data or secret.encode() in data]
        roft_logs = list((Path(tempfile.gettempdir()) / "roft-logs").glob("cluster-check-*"))
        tune_state = [p for p in (s3.tune_dir(),) if p.exists()]
        leaks = [p for p in files_holding((key_id, secret), tmp_path, head.dir, *roft_logs, *tune_state)
                 if p != str(control)]
        assert not leaks, f"the credentials were written to {leaks}"
        assert not [out for out in run.outputs if key_id in out or secret in out]

        down = shell.run(head_down)
        assert "stopped" in down.outputs[0] and not (head.dir / "head.pid").exists()
    finally:
        head.stop(env, copy)
        print(f"\ndocs/cluster.md, One machine (head {seen}):\n{shell.report()}")


def test_the_readme_cluster_step_runs_as_written(real_env, session_cache, tmp_path):
    [block] = readme_blocks()
    lines = commands(block)
    assert lines[0].startswith("make cluster-up") and lines[-1].startswith("make cluster-down")
    copy = checkout_copy(tmp_path)
    env, head = head_env(tmp_path, real_env, session_cache)
    shell, seen = Shell(copy, env, tmp_path), {}
    try:
        run = shell.run(lines, on_head_up=lambda: seen.update(head.check_loopback()))
        assert seen["nodes"] == ["127.0.0.1"], seen
        submitted = run.output("roft submit")
        assert re.search(r"job roft-cluster-check-\S+: SUCCEEDED", submitted), submitted[-3000:]
        rows = landed(ResultStore(copy / "results-cluster"))
        assert sorted(r["method"] for r in rows) == ["full-ft", "wise-ft"] and {r["sweep"] for r in rows} == {
            "cluster-check"}
        assert not (head.dir / "head.pid").exists()  # make cluster-down stopped it
        # nothing of the head is left running
        assert not [args for _, args in live_processes() if str(head.dir) in args]
    finally:
        head.stop(env, copy)
        print(f"\nREADME.md, 5. Cluster (head {seen}):\n{shell.report()}")
