"""Where a store lives: a local folder or S3-compatible object storage, through one ``pyarrow.fs``
filesystem; locations as messages show them (no credentials, no query options)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from orchestrator.store.retrying import retrying
from orchestrator.store.schema import StoreError

# Objects up to this size go to object storage in one PUT (pyarrow switches to a multipart upload
# at 10 MiB); larger ones through a temporary object and a server-side copy.
SINGLE_PUT_BYTES = 5 * 1024 * 1024
ACCEPTED_STORES = (
    "a local folder, or s3://bucket/prefix with pyarrow's S3 query options (e.g. "
    "?endpoint_override=HOST:PORT&scheme=http&region=REGION); S3 credentials come from "
    "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN) or the AWS configuration files"
)


def shown_uri(uri: str) -> str:
    """``uri`` without credentials or query options, for messages."""
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}".rstrip("/")


def s3_filesystem(uri: str, shown: str) -> tuple[pafs.FileSystem, str]:
    """The S3 filesystem and root path of ``uri``; :class:`StoreError` unless its bucket answers.

    The filesystem retries requests that fail transiently (:mod:`orchestrator.store.retrying`)."""
    try:
        filesystem, path = pafs.FileSystem.from_uri(uri)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise StoreError(f"store {shown}: {exc}; accepted: {ACCEPTED_STORES}") from None
    path = path.strip("/")
    bucket = path.split("/", 1)[0]
    if not bucket:
        raise StoreError(f"store {shown} names no bucket; accepted: {ACCEPTED_STORES}")
    try:  # one PUT per object up to pyarrow's multipart threshold, instead of a 3-request multipart upload
        filesystem = pafs.S3FileSystem(**{**filesystem.__reduce__()[1][0], "allow_delayed_open": True})
    except TypeError:  # a pyarrow without the option: multipart uploads, still visible only once complete
        pass
    filesystem = retrying(filesystem)  # transient errors (5xx, throttling, lost connections) are retried
    try:
        info = filesystem.get_file_info(bucket)
    except OSError as exc:
        raise StoreError(f"store {shown}: cannot reach bucket {bucket!r}: {exc}; accepted: {ACCEPTED_STORES}") from None
    if info.type == pafs.FileType.NotFound:
        raise StoreError(
            f"store {shown}: bucket {bucket!r} does not exist (or these credentials cannot see it); "
            f"create it first; accepted: {ACCEPTED_STORES}"
        )
    return filesystem, path
