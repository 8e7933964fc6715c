"""The results store: a Parquet dataset that is the source of truth for what is done.

The store lives in a local folder or on S3-compatible object storage
(``s3://bucket/prefix``, with pyarrow's query options such as
``?endpoint_override=HOST:PORT&scheme=http&region=...``; credentials come from the usual
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN`` variables or the AWS
configuration files). Every read, write, listing and artifact of the store goes through one
``pyarrow.fs`` filesystem object.

Layout below the store root::

    trials/<trial_key>.parquet     one row per finished trial (schema: TRIAL_SCHEMA)
    epochs/<trial_key>.parquet     per-epoch curves of that trial (schema: EPOCH_SCHEMA)
    alpha_trials/<trial_key>.parquet  every point of an Optuna alpha search (schema: ALPHA_SCHEMA)
    failures/<trial_key>.parquet   a trial that failed after its retries: error and traceback
                                   (schema: FAILURE_SCHEMA); removed when the trial lands
    artifacts/<trial_key>/best.pt  the best-validation state dict (GraphPredictor layout), kept for
                                   trials other trials depend on (Full FT), or all with
                                   ``execution.artifacts: all``; its sha256 is in the trial row
    specs/<sweep>.yaml             the spec of every sweep run on the store (reports' provenance)
    running/<unit>.json            a trial or fused group in flight: its trial keys, host, pid, start,
                                   last heartbeat (no table: small JSON objects that the worker writes
                                   and removes, see mark_running)
    quarantine/<table>/<file>      files found unreadable (not Parquet, truncated, another
                                   schema) or that are no table files (e.g. notes.txt), moved
                                   aside by the first read that met them, or by the check of
                                   every table folder that each sweep makes first (check_tables)

Readers list only final names (``*.parquet`` not starting with ``.``), so a partial file is never
read. In a folder, every file is written under a hidden temporary name
(``.<name>.<random>.tmp``) and renamed into place. On object storage a file is serialised in
memory first, then uploaded: up to :data:`SINGLE_PUT_BYTES` in a single PUT, which S3 makes
visible whole or not at all (readers see the old or the new object); a larger one (large
checkpoints, compacted files) is uploaded under a hidden temporary name and then copied into
place by the server, so a writer killed or failing mid-upload leaves at most an invisible
multipart upload or a temporary object that no reader opens. The trial row is written *last*:
its presence is the commit of the trial. Two writers of the same trial write the same file (or
object) name, so a retried trial can never land twice.

:class:`ResultStore` is composed of one module per concern: :mod:`~orchestrator.store.files` (where
the store lives, atomic writes, reads, listings), :mod:`~orchestrator.store.tables` (table scans and
quarantine), :mod:`~orchestrator.store.markers` (running markers and locks) and
:mod:`~orchestrator.store.trial_rows` (the commit of a trial and the reads of trial rows).
"""

from __future__ import annotations

from orchestrator.store.markers import StoreMarkers
from orchestrator.store.schema import RUNNING, StoreError
from orchestrator.store.trial_rows import TrialRows

__all__ = ["RUNNING", "ResultStore", "StoreError"]


class ResultStore(TrialRows, StoreMarkers):
    """A results store rooted at a local folder or at an ``s3://bucket/prefix`` URI.

    ``fs`` is the store's ``pyarrow.fs`` filesystem and ``path(...)`` a path on it; ``location``
    names the store in messages (no credentials, no query options) and ``uri`` is what opens it
    again elsewhere (Ray workers get it through :class:`trainables.core.config.Runtime`). Its
    methods are those of :class:`~orchestrator.store.trial_rows.TrialRows` (with the table scans and
    files below it) and :class:`~orchestrator.store.markers.StoreMarkers`.
    """
