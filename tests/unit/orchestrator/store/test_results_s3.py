"""The results store on object storage, against a local S3-compatible server (moto) on loopback."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from orchestrator.store.compact import compact
from orchestrator.store.filesystems import SINGLE_PUT_BYTES
from orchestrator.store.results import ResultStore
from orchestrator.store.schema import PART_PREFIX, StoreError
from tests.unit.orchestrator.store.rows import KEYS, epoch, make_row, write_concurrently

REPO = Path(__file__).resolve().parents[4]


def objects(store: ResultStore) -> list[str]:
    """Every object below the store's prefix, as S3 lists it (hidden names included), relative to the store.

    Leaves out the empty ``folder/`` markers pyarrow writes to keep a folder whose last file it deleted.
    """
    import boto3

    bucket, _, prefix = store.base.partition("/")
    endpoint = store.uri.split("endpoint_override=")[1].split("&")[0]
    client = boto3.client("s3", endpoint_url=f"http://{endpoint}")
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix + "/").get("Contents", [])
    return sorted(o["Key"][len(prefix) + 1:] for o in listed if not (o["Key"].endswith("/") and o["Size"] == 0))


def multipart_uploads(store: ResultStore) -> list[str]:
    import boto3

    endpoint = store.uri.split("endpoint_override=")[1].split("&")[0]
    client = boto3.client("s3", endpoint_url=f"http://{endpoint}")
    return [u["Key"] for u in client.list_multipart_uploads(Bucket=store.base.split("/")[0]).get("Uploads", [])]


def test_trials_side_tables_and_artifacts_round_trip(s3_store_uri, s3_bucket):
    store = ResultStore(s3_store_uri)
    assert store.remote and store.location == f"s3://{s3_bucket}/results" and not store.exists()
    location = store.write_artifact("a", b"state dict bytes")
    assert location == f"s3://{s3_bucket}/results/artifacts/a/best.pt"
    side = {"alpha_trials": [{"study": "s", "number": 0, "alphas": [0.5], "val_metric": 1.0, "test_metric": 1.5}]}
    store.write_trial(make_row("a", artifact_path=location), [epoch(1), epoch(2)], side)
    store.write_trial(make_row("b", seed=1))
    store.write_spec("tiny", b"name: tiny\n")

    again = ResultStore(s3_store_uri)  # another process's view: only what is on the server
    assert again.exists() and again.done_keys() == {"a", "b"}
    assert sorted(again.read_trials(columns=["trial_key"]).column("trial_key").to_pylist()) == ["a", "b"]
    assert again.read_trial("a")["artifact_path"] == location and again.read_trial("zzz") is None
    assert [(r["trial_key"], r["epoch"]) for r in again.read_side_table("epochs").to_pylist()] == [("a", 1), ("a", 2)]
    assert [p["alphas"] for p in again.alpha_points("s")] == [[0.5]]
    assert again.read_artifact("a") == b"state dict bytes" and again.read_artifact("b") is None
    assert again.read_specs() == [("tiny.yaml", "name: tiny\n")]
    assert again.scan("trials", columns=["trial_key"]).num_rows == 2
    assert objects(store) == ["alpha_trials/a.parquet", "artifacts/a/best.pt", "epochs/a.parquet",
                              "specs/tiny.yaml", "trials/a.parquet", "trials/b.parquet"]
    with pytest.raises(StoreError, match="on object storage: it has no local folder"):
        store.root


def test_rewriting_a_trial_overwrites_its_one_object(s3_store_uri):
    store = ResultStore(s3_store_uri)
    store.write_trial(make_row("a", test_metric=1.0), [epoch(1), epoch(2)])
    store.write_trial(make_row("a", test_metric=2.0), [epoch(1, loss=0.5)])  # a retried trial
    assert store.read_trials().column("test_metric").to_pylist() == [2.0]
    assert store.done_keys() == {"a"}
    assert [r["train_loss"] for r in store.read_side_table("epochs").to_pylist()] == [0.5]
    assert objects(store) == ["epochs/a.parquet", "trials/a.parquet"]  # no temporary or second object
    assert multipart_uploads(store) == []


def test_failures_are_kept_apart_and_cleared(s3_store_uri):
    store = ResultStore(s3_store_uri)
    store.write_failure({"trial_key": "a", "sweep": "s", "method": "full-ft", "trial_config": "{}",
                         "error": "ValueError: boom", "traceback": "Traceback ...", "failed_at": datetime.now(timezone.utc)})
    assert store.failed_keys() == {"a"} and store.done_keys() == set()
    assert store.read_failures().to_pylist()[0]["error"] == "ValueError: boom"
    store.clear_failure("a")
    store.clear_failure("never-failed")  # no error
    assert store.failed_keys() == set()


def test_large_objects_land_whole_through_a_temporary_object(s3_store_uri):
    store = ResultStore(s3_store_uri)
    blob = bytes(random.Random(0).getrandbits(8) for _ in range(1000)) * (SINGLE_PUT_BYTES // 1000 + 2000)
    assert len(blob) > SINGLE_PUT_BYTES + 1_000_000  # above the single-PUT size: uploaded, then copied
    store.write_artifact("big", blob)
    assert store.read_artifact("big") == blob
    assert objects(store) == ["artifacts/big/best.pt"] and multipart_uploads(store) == []


def test_concurrent_writers_never_duplicate_or_lose_a_trial(s3_store_uri):
    """Threads of this process and two other processes write the same 16 trials at once."""
    write_concurrently(s3_store_uri)
    store = ResultStore(s3_store_uri)
    trials = store.read_trials()
    assert sorted(trials.column("trial_key").to_pylist()) == KEYS  # each trial once, none lost
    assert set(trials.column("seed").to_pylist()) <= {0, 1, 2, 3, 10, 11}  # each row is one writer's whole row
    assert store.done_keys() == set(KEYS)
    epochs = store.read_side_table("epochs").to_pylist()
    assert sorted((r["trial_key"], r["epoch"]) for r in epochs) == sorted((k, n) for k in KEYS for n in (1, 2))
    assert objects(store) == sorted([f"epochs/{k}.parquet" for k in KEYS] + [f"trials/{k}.parquet" for k in KEYS])


# A writer that hangs at a chosen step of an upload, to be killed there by the test.
KILLED_WRITER = r"""
import sys, time
from orchestrator.store.results import ResultStore
from tests.unit.orchestrator.store.rows import KEYS, epoch, make_row, write_concurrently

uri, step = sys.argv[1:]
store = ResultStore(uri)
real = store.fs


def hang(*args, **kwargs):
    print("ready", flush=True)
    time.sleep(600)


class Stream:  # the real upload stream, but its close (the commit of the upload) never comes
    def __init__(self, stream):
        self.stream = stream

    def write(self, data):
        return self.stream.write(data)

    close = hang


class FileSystem:
    def __getattr__(self, name):
        return getattr(real, name)

    def open_output_stream(self, path, *args, **kwargs):
        stream = real.open_output_stream(path, *args, **kwargs)
        return stream if step == "copy" else Stream(stream)

    move = hang


store.fs = FileSystem()
if step == "row":
    store.write_trial(make_row("a"))
else:
    store.write_artifact("a", b"x" * 12_000_000)
"""


@pytest.mark.parametrize("step", ["row", "upload", "copy"])
def test_a_writer_killed_mid_write_leaves_no_visible_data(s3_store_uri, step):
    """Killed before its row's PUT, in the middle of a multipart upload, before the copy into place."""
    store = ResultStore(s3_store_uri)
    store.write_trial(make_row("old"))
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, s3_store_uri, step], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        if step == "upload":  # the first part is on the server, the upload is not complete
            deadline = time.monotonic() + 30
            while not multipart_uploads(store) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(multipart_uploads(store)) == 1
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert store.done_keys() == {"old"} and store.read_trials().num_rows == 1
    assert store.read_artifact("a") is None and store.read_trial("a") is None
    hidden = [name for name in objects(store) if name != "trials/old.parquet"]
    if step == "copy":  # the complete upload under its hidden temporary name, never read as data
        assert len(hidden) == 1 and hidden[0].startswith("artifacts/a/.best.pt.") and hidden[0].endswith(".tmp")
    else:  # an incomplete upload (or one never started) is no object at all
        assert hidden == []


def test_compaction_waits_for_no_sweep_lease_and_readers_keep_one_copy(s3_store_uri):
    store = ResultStore(s3_store_uri)
    for i, key in enumerate(["a", "b", "c"]):
        store.write_trial(make_row(key, test_metric=float(i)), [epoch(1)])
    other_node = ResultStore(s3_store_uri)
    with other_node.sweep_lock():  # a sweep on another node holds its lease
        assert [n.split("/")[0] for n in objects(store)].count("leases") == 1
        with pytest.raises(StoreError, match=r"in use: a sweep held by .* compact after it ends"):
            compact(store)
        assert len(objects(store)) == 7  # nothing touched (6 files and the sweep's lease)
    assert "leases" not in {n.split("/")[0] for n in objects(store)}  # released on exit

    summary = compact(store)
    assert summary.tables["trials"] == (3, 3) and summary.tables["epochs"] == (3, 3)
    names = objects(store)
    assert len(names) == 2 and all(n.split("/")[1].startswith(PART_PREFIX) for n in names)  # its lease is gone too
    assert store.read_trial("b")["test_metric"] == 1.0 and store.done_keys() == {"a", "b", "c"}

    store.write_trial(make_row("b", test_metric=9.0))  # b in its own file and in the part file
    trials = store.read_trials()
    assert sorted(trials.column("trial_key").to_pylist()) == ["a", "b", "c"]  # each trial once
    assert dict(zip(trials.column("trial_key").to_pylist(), trials.column("test_metric").to_pylist()))["b"] == 9.0
    assert store.read_trials(columns=["test_metric"]).num_rows == 3


def test_forget_on_s3_waits_for_no_sweep_and_rewrites_the_part_in_place(s3_store_uri):
    from orchestrator.store.forget import forget

    store = ResultStore(s3_store_uri)
    keys = [f"{i:024x}" for i in range(3)]
    for key in keys:
        store.write_trial(make_row(key), [epoch(1)])
        store.write_artifact(key, b"w")
    compact(store, unlocked=True)
    before = objects(store)
    with ResultStore(s3_store_uri).sweep_lock():
        with pytest.raises(StoreError, match=r"in use: a sweep held by .*forget trials after it ends"):
            forget(store, [keys[1]])
    assert objects(store) == before
    summary = forget(store, [keys[1]])
    assert summary.rows == {"trials": 1, "epochs": 1, "alpha_trials": 0} and summary.artifacts == 1
    assert store.done_keys() == {keys[0], keys[2]} and store.read_artifact(keys[1]) is None
    assert sorted(store.read_side_table("epochs").column("trial_key").to_pylist()) == [keys[0], keys[2]]
    assert objects(store) == [n for n in before if keys[1] not in n]  # the same part names, no temporaries


def test_clean_on_s3_removes_hidden_temporaries_when_no_sweep_runs(s3_store_uri):
    from orchestrator.store.clean import clean

    store = ResultStore(s3_store_uri)
    store.write_trial(make_row("a"), [epoch(1)])
    with store.fs.open_output_stream(store.path("artifacts", "b", ".best.pt.5f3a.tmp")) as out:
        out.write(b"an interrupted large upload")
    before = objects(store)
    with ResultStore(s3_store_uri).sweep_lock():
        with pytest.raises(StoreError, match=r"in use: a sweep held by .*clean after it ends"):
            clean(store)
    assert clean(store).temporaries == []  # younger than an hour: left alone
    summary = clean(store, older_than_s=0)
    assert summary.temporaries == ["artifacts/b/.best.pt.5f3a.tmp"]
    assert objects(store) == [n for n in before if ".tmp" not in n] and store.done_keys() == {"a"}


def test_cli_compact_of_an_s3_store_refuses_while_a_sweep_holds_its_lease(s3_store_uri, capsys):
    from orchestrator.cli import main

    ResultStore(s3_store_uri).write_trial(make_row("a"))
    ResultStore(s3_store_uri).write_trial(make_row("b"))
    with ResultStore(s3_store_uri).sweep_lock():
        assert main(["store", "compact", "--store", s3_store_uri]) == 2
    assert "in use: a sweep held by" in capsys.readouterr().err
    assert main(["store", "compact", "--store", s3_store_uri]) == 0
    assert "trials: 2 files -> 1 (2 rows)" in capsys.readouterr().out
    empty = s3_store_uri.replace("/results?", "/nothing-here?")
    assert main(["table", "--store", empty]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_bad_store_uris_name_the_uri_and_what_is_accepted(s3_server, s3_bucket):
    with pytest.raises(StoreError, match=r"store gs://bucket/prefix: unknown scheme 'gs://'; accepted: a local "
                                         r"folder, or s3://bucket/prefix"):
        ResultStore("gs://bucket/prefix")
    with pytest.raises(StoreError, match=r"store s3://no-such-bucket/p: bucket 'no-such-bucket' does not exist.*"
                                         r"accepted: a local folder"):
        ResultStore(f"s3://no-such-bucket/p?endpoint_override={s3_server}&scheme=http")
    with socket_closed() as port:  # nothing listens there
        with pytest.raises(StoreError, match=rf"store s3://{s3_bucket}/p: cannot reach bucket '{s3_bucket}'"):
            ResultStore(f"s3://key:secret@{s3_bucket}/p?endpoint_override=127.0.0.1:{port}&scheme=http")
    with pytest.raises(StoreError, match=r"store s3://b/p: .*query parameter.*accepted") as error:
        ResultStore("s3://user:hidden-secret@b/p?no_such_option=1")
    assert "hidden-secret" not in str(error.value)  # credentials in the URI never reach a message


class socket_closed:
    """A loopback port that refuses connections (bound, never listening)."""

    def __enter__(self) -> int:
        import socket

        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        return self.socket.getsockname()[1]

    def __exit__(self, *exc) -> None:
        self.socket.close()


def test_ray_workers_on_a_cluster_get_the_store_environment(s3_store_uri, monkeypatch):
    """A local Ray's workers inherit the driver's environment; a cluster's get it via the job's runtime_env."""
    import ray

    from orchestrator.sweep.execute import init_ray

    store = ResultStore(s3_store_uri)
    env = store.worker_env()
    assert env["AWS_ACCESS_KEY_ID"] == "roft-test" and env["AWS_DEFAULT_REGION"] == "us-east-1"
    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    init_ray("ray://head:10001", env=env)
    init_ray("ray://head:10001", env={})  # a local store needs nothing
    assert calls[0]["runtime_env"] == {"env_vars": env} and "runtime_env" not in calls[1]
    # a driver started by `ray job submit --runtime-env-json ...`: Ray refuses a variable set twice
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR",
                       '{"runtime_env": {"env_vars": {"AWS_ACCESS_KEY_ID": "roft-test", "OTHER": "1"}}}')
    init_ray("auto", env=env)
    assert "AWS_ACCESS_KEY_ID" not in calls[2]["runtime_env"]["env_vars"]
    assert calls[2]["runtime_env"]["env_vars"]["AWS_SECRET_ACCESS_KEY"] == "roft-test-secret"
    assert ResultStore("relative/store").worker_env() == {}


def test_done_keys_on_object_storage_list_trial_files_and_read_only_parts(s3_store_uri, monkeypatch):
    """A resumed sweep's plan costs one LIST per 1,000 trial files, not one GET each: per-trial files
    are known by name; compacted parts are the only files opened."""
    store = ResultStore(s3_store_uri)
    for n in range(6):
        store.write_trial(make_row(f"{n:024x}", seed=n))
    compact(store, unlocked=True)
    for n in range(6, 10):
        store.write_trial(make_row(f"{n:024x}", seed=n))
    opened: list[str] = []
    original = ResultStore._dataset

    def recording(self, name, schema, files=None):
        opened.extend(files or [])
        return original(self, name, schema, files)

    monkeypatch.setattr(ResultStore, "_dataset", recording)
    again = ResultStore(s3_store_uri)
    assert again.done_keys() == {f"{n:024x}" for n in range(10)}
    assert opened and all(path.rpartition("/")[2].startswith(PART_PREFIX) for path in opened)


def test_done_keys_on_object_storage_make_one_list_per_1000_objects_and_no_request_per_trial(
        s3_store_uri, s3_bucket):
    """2,342 per-trial objects, a compacted part and a hidden temporary: 3 LIST requests (2,344
    names at 1,000 per LIST), the part's reads, and no request for any per-trial object (they are
    not even Parquet: one opened would be quarantined and lose its key)."""
    import warnings

    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    from orchestrator.bench.s3_requests import counted

    store = ResultStore(s3_store_uri)
    compacted = {f"{n:024x}" for n in range(3)}
    for key in sorted(compacted):
        store.write_trial(make_row(key))
    compact(store, unlocked=True)
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]  # the server's own store: 2,342 PUTs over HTTP take long
    singles = {f"{n:024x}" for n in range(3, 2_345)}
    for key in singles:
        backend.put_object(s3_bucket, f"results/trials/{key}.parquet", b"never opened")
    backend.put_object(s3_bucket, "results/trials/.deadbeef.parquet.5f3a.tmp", b"a hidden temporary")
    with counted(s3_store_uri) as (uri, counter), warnings.catch_warnings():
        warnings.simplefilter("error")  # a quarantine would warn
        again = ResultStore(uri)
        counter.reset()
        assert again.done_keys() == singles | compacted
        requests = counter.reset()
    assert not counter.errors
    assert requests.count["LIST"] == 3
    others = requests.total() - requests.count["LIST"]
    assert 1 <= others <= 4, requests  # the part's footer and column: one or a few GET / HEAD, never 2,342



def test_status_on_object_storage_reads_the_parts_and_the_newest_rows_and_counts_the_rest_by_name(s3_store_uri):
    """roft status on S3: one listing of trials/; the compacted part and the ``remote_rows_read``
    newest per-trial objects are read; the older per-trial objects count as done by their names."""
    from orchestrator.bench.s3_requests import counted
    from orchestrator.store.status import read_store_state

    store = ResultStore(s3_store_uri)
    t0 = datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)
    keys = [f"{n:024x}" for n in range(12)]
    for i, key in enumerate(keys[:5]):
        store.write_trial(make_row(key, sweep="s", finished_at=t0.replace(minute=i)))
    compact(store, unlocked=True)
    for i, key in enumerate(keys[5:9], start=5):
        store.write_trial(make_row(key, sweep="s", finished_at=t0.replace(minute=i)))
    time.sleep(1.1)  # the server's modification times have a resolution of one second
    for i, key in enumerate(keys[9:], start=9):
        store.write_trial(make_row(key, sweep="s", finished_at=t0.replace(minute=i)))
    with counted(s3_store_uri) as (uri, counter):
        again = ResultStore(uri)
        counter.reset()
        state = read_store_state(again, remote_rows_read=3)
        requests = counter.reset()
        read_store_state(again, remote_rows_read=100)
        every_row = counter.reset()
    assert not counter.errors
    assert state.done == set(keys) and state.unread == 4  # keys[5:9]: known by name only
    assert sorted(state.rows.column("trial_key").to_pylist()) == sorted(keys[:5] + keys[9:])
    assert [r["trial_key"] for r in state.last_rows(state.done, 2)] == [keys[11], keys[10]]
    # LISTs of specs/, failures/, running/ and trials/ (once each); at most 3 requests (HEAD, footer,
    # data) for each of the 4 objects read, the part and the 3 newest: not one per row
    reads = requests.total() - requests.count["LIST"]
    assert requests.count["LIST"] == 4 and reads <= 3 * 4, requests
    assert every_row.total() - every_row.count["LIST"] > reads  # reading all 8 objects costs more


def test_leases_exclude_each_other_lapse_when_not_renewed_and_are_renewed_while_held(s3_store_uri):
    import json
    import time

    from orchestrator.store import leases

    store = ResultStore(s3_store_uri)
    with leases.hold(store, "sweep", ttl=2.0):
        with leases.hold(store, "sweep", ttl=2.0):  # sweeps share the store
            assert len(leases.live_leases(store)) == 2
        time.sleep(1.2)  # past half the ttl: the renewer has rewritten expires_at
        (live,) = leases.live_leases(store)
        assert live.expires_at > time.time() + 0.5
    with leases.hold(store, "compaction", ttl=2.0):
        with pytest.raises(StoreError, match="in use: a compaction held by"):
            with leases.hold(store, "sweep"):
                pass
        with pytest.raises(StoreError, match="in use: a compaction held by"):
            compact(store)
    # a holder that died: its lease stays on the server but lapses after its ttl
    store.write_bytes(store.path(leases.LEASES, "sweep-dead.json"), json.dumps(
        {"kind": "sweep", "holder": "gone:1", "acquired_at": time.time() - 300, "expires_at": time.time() + 1}).encode())
    with pytest.raises(StoreError, match="a sweep held by gone:1"):
        compact(store)
    time.sleep(1.5)
    assert compact(store).tables == {}  # lapsed: nothing blocks, nothing to merge
