"""The store's S3 filesystem retries transient errors: 500s and 503 SlowDown on every request
kind (HEAD and ranged GET included, which the S3 client itself does not retry), and dropped
connections; it does not retry a missing object or a refused access."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from orchestrator.store.results import ResultStore
from orchestrator.store.retrying import RetryingHandler, RetryPolicy, transient
from tests.integration.fault_proxy import FaultProxy
from tests.unit.orchestrator.store.rows import make_row


@pytest.mark.parametrize(
    "message",
    [
        "When reading information for key 'r/x' in bucket 'b': AWS Error UNKNOWN (HTTP status 500) during HeadObject "
        "operation: No response body.",
        "AWS Error SLOW_DOWN during PutObject operation: Please reduce your request rate.",
        "AWS Error INTERNAL_FAILURE during PutObject operation: We encountered an internal error.",
        "AWS Error NETWORK_CONNECTION during GetObject operation: curlCode: 52, Server returned nothing (no headers)",
    ],
)
def test_transient_errors_are_recognised(message):
    assert transient(OSError(message))


@pytest.mark.parametrize(
    "error",
    [
        FileNotFoundError("Path does not exist 'b/x'"),
        OSError("AWS Error ACCESS_DENIED during PutObject operation: Access Denied"),
        OSError("AWS Error UNKNOWN (HTTP status 400) during CreateBucket operation: InvalidBucketName"),
        ValueError("HTTP status 500"),
    ],
)
def test_lasting_errors_are_not(error):
    assert not transient(error)


class Flaky:
    """A filesystem whose first ``failures`` calls of ``get_file_info`` fail with ``error``."""

    def __init__(self, failures: int, error: Exception):
        self.failures, self.error, self.calls = failures, error, 0

    def get_file_info(self, paths):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return [pafs.FileInfo(p, pafs.FileType.NotFound) for p in paths]


def handler_over(flaky: Flaky, attempts: int) -> RetryingHandler:
    return RetryingHandler(flaky, RetryPolicy(attempts=attempts, delay_s=0.001, max_delay_s=0.001))


def test_a_transient_error_is_retried_until_the_attempts_run_out():
    error = OSError("AWS Error UNKNOWN (HTTP status 503) during HeadObject operation")
    flaky = Flaky(3, error)
    handler = handler_over(flaky, attempts=4)
    assert handler.get_file_info(["b/x"])[0].type == pafs.FileType.NotFound
    assert (flaky.calls, handler.retries) == (4, 3)
    with pytest.raises(OSError, match="HTTP status 503"):
        handler_over(Flaky(4, error), attempts=4).get_file_info(["b/x"])


def test_a_lasting_error_is_raised_at_once():
    flaky = Flaky(1, OSError("AWS Error ACCESS_DENIED during HeadObject operation"))
    with pytest.raises(OSError, match="ACCESS_DENIED"):
        handler_over(flaky, attempts=5).get_file_info(["b/x"])
    assert flaky.calls == 1


def test_a_store_behind_a_faulty_proxy_reads_and_writes_everything(s3_server, s3_bucket):
    """A third of the requests fail (500, 503 SlowDown, connections dropped before or after the
    server applied them): every trial row, side table, checkpoint and listing still comes through."""
    proxy = FaultProxy(
        s3_server, rate=0.33, seed=5, kinds={"error": 1, "throttle": 1, "drop_before": 1, "drop_after": 1}
    )
    endpoint = proxy.start()
    try:
        store = ResultStore(f"s3://{s3_bucket}/results?endpoint_override={endpoint}&scheme=http")
        keys = [f"{n:024x}" for n in range(8)]
        for n, key in enumerate(keys):
            store.write_trial(
                make_row(key, seed=n),
                epochs=[
                    {
                        "stage": "ft",
                        "epoch": 1,
                        "train_loss": 0.5,
                        "val_metric": 0.5,
                        "test_metric": 0.5,
                        "val_tasks_skipped": 0,
                        "test_tasks_skipped": 0,
                    }
                ],
            )
            store.write_artifact(key, bytes([n]) * 5000)
        assert store.done_keys() == set(keys)
        assert sorted(store.read_trials().column("trial_key").to_pylist()) == keys
        assert sorted(store.read_side_table("epochs").column("trial_key").to_pylist()) == keys
        assert all(store.read_artifact(key) == bytes([n]) * 5000 for n, key in enumerate(keys))
        assert store.read_trial(keys[3])["seed"] == 3
        report = proxy.report()
    finally:
        proxy.stop()
    assert sum(report["faults"].values()) >= 10 and report["retries"] >= 10, report
    assert set(report["faults"]) == {"error", "throttle", "drop_before", "drop_after"}


def test_a_buffered_write_is_one_upload_and_a_large_one_streams(s3_server, s3_bucket):
    store = ResultStore(f"s3://{s3_bucket}/results?endpoint_override={s3_server}&scheme=http")
    small, large = b"s" * 1000, b"L" * (6 * 1024 * 1024)
    store.write_bytes(store.path("x", "small.bin"), small)
    store.write_bytes(store.path("x", "large.bin"), large)
    assert store.read_bytes(store.path("x", "small.bin")) == small
    assert store.read_bytes(store.path("x", "large.bin")) == large
    with store.fs.open_input_file(store.path("x", "large.bin")) as handle:  # ranged reads of a reopened object
        assert handle.size() == len(large) and handle.read_at(4, 1024) == b"LLLL"
        handle.seek(-3, 2)
        assert handle.read() == b"LLL"
    assert isinstance(store.fs, pa.fs.PyFileSystem)
