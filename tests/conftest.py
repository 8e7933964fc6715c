"""Shared fixtures: the real data root, an isolated cache, and one Ray session per test run."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_DEFAULT_DATA = REPO.parent / "shared" / "data"


def _hypothesis_profiles() -> None:
    """Generated-input tests (tests/*/test_hostile_*.py): ``fast`` (make test) runs a bounded number of
    examples, ``full`` (HYPOTHESIS_PROFILE=full, set by make test-all) many more. Failing examples are
    kept in .hypothesis/examples (replayed first on the next run) and printed as a reproduction blob."""
    try:
        from hypothesis import HealthCheck, settings
        from hypothesis.database import DirectoryBasedExampleDatabase
    except ModuleNotFoundError:  # the dev extra is not installed: those tests are skipped by importorskip
        return
    common = dict(deadline=None, print_blob=True, database=DirectoryBasedExampleDatabase(REPO / ".hypothesis" / "examples"),
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                         HealthCheck.data_too_large])
    settings.register_profile("fast", max_examples=12, **common)
    settings.register_profile("full", max_examples=100, **common)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))


_hypothesis_profiles()


def real_data_root() -> Path | None:
    root = Path(os.environ.get("ROFT_DATA") or _DEFAULT_DATA).resolve()
    return root if (root / "moleculenet").is_dir() else None


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = real_data_root()
    if root is None:
        pytest.skip("real data not available: set ROFT_DATA to a folder laid out like shared/data")
    return root


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    """A featurization cache shared by the tests of one run (never ~/.cache)."""
    return tmp_path_factory.mktemp("roft-cache")


@pytest.fixture
def real_env(monkeypatch, data_root, session_cache):
    """ROFT_DATA -> the real data, ROFT_CACHE -> the session cache."""
    monkeypatch.setenv("ROFT_DATA", str(data_root))
    monkeypatch.setenv("ROFT_CACHE", str(session_cache))
    return data_root


@pytest.fixture(scope="session")
def ray_session(data_root, session_cache):
    """A local Ray on loopback, started once per test session in a fresh temp dir."""
    import ray

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ["ROFT_CACHE"] = str(session_cache)  # Ray workers inherit the driver's environment
    os.environ["ROFT_DATA"] = str(data_root)
    from orchestrator.sweep.execute import init_ray

    ray_tmp = tempfile.mkdtemp(prefix="roft-ray-", dir="/tmp")
    os.environ["RAY_TMPDIR"] = ray_tmp
    init_ray(num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> str:
    """A local S3-compatible server (moto) on loopback, with test credentials in the environment.

    Yields the server's ``HOST:PORT``. The ``AWS_*`` variables stay set for the rest of the session
    (processes started later, such as a sweep's Ray workers, inherit them); the AWS configuration
    files of the machine are ignored.
    """
    moto_server = pytest.importorskip("moto.server")
    nothing = tmp_path_factory.mktemp("aws") / "none"
    os.environ.update({"AWS_ACCESS_KEY_ID": "roft-test", "AWS_SECRET_ACCESS_KEY": "roft-test-secret",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                       "AWS_CONFIG_FILE": str(nothing), "AWS_SHARED_CREDENTIALS_FILE": str(nothing)})
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_server) -> str:
    """A fresh, empty bucket on :func:`s3_server`; yields its name."""
    import uuid

    from pyarrow import fs

    bucket = f"roft-{uuid.uuid4().hex[:12]}"
    fs.S3FileSystem(endpoint_override=s3_server, scheme="http", allow_bucket_creation=True).create_dir(bucket)
    return bucket


@pytest.fixture
def s3_store_uri(s3_server, s3_bucket) -> str:
    """The URI of an empty results store below a fresh bucket of :func:`s3_server`."""
    return f"s3://{s3_bucket}/results?endpoint_override={s3_server}&scheme=http"


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory) -> str:
    """A real MLflow tracking server (``mlflow server``) on loopback, with its own SQLite database and
    artifact folder; yields its URI (``http://127.0.0.1:PORT``) and stops it (its whole process group)."""
    import shutil
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    pytest.importorskip("mlflow")
    for name in ("NO_PROXY", "no_proxy"):  # loopback traffic never goes through a proxy
        os.environ[name] = ",".join(filter(None, [os.environ.get(name), "127.0.0.1", "localhost"]))
    root = tmp_path_factory.mktemp("mlflow")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or shutil.which("mlflow")
    log = open(root / "server.log", "w")
    server = subprocess.Popen([mlflow, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                               "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
                               "--default-artifact-root", str(root / "artifacts")],
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, f"mlflow server exited: {(root / 'server.log').read_text()[-2000:]}"
            assert time.monotonic() < deadline, "mlflow server did not answer /health within 300 s"
            time.sleep(1)
        yield uri
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)  # the server and its uvicorn workers
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=60)
        log.close()
