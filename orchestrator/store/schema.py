"""The store's tables: their Arrow schemas, file naming and the store's errors.

One row per trial in ``trials`` (the commit of a trial), its per-epoch curve in ``epochs``, the
points of its alpha searches in ``alpha_trials``, and the last error of a trial that failed in
``failures``. Optional text columns hold null when absent (rows written by roft 0.1 hold ``""``;
readers accept both).
"""

from __future__ import annotations

import os
import re

import pyarrow as pa

TRIAL_SCHEMA = pa.schema(
    [
        ("trial_key", pa.string()),
        ("sweep", pa.string()),
        ("backbone", pa.string()),
        ("backbone_sha256", pa.string()),  # null for a backbone without a checkpoint (scratch)
        ("architecture", pa.string()),
        ("num_layers", pa.int32()),
        ("emb_dim", pa.int32()),
        ("pretraining", pa.string()),
        ("method", pa.string()),
        ("method_label", pa.string()),
        ("mechanism", pa.string()),
        ("method_params", pa.string()),  # canonical JSON
        ("task", pa.string()),
        ("task_type", pa.string()),
        ("metric", pa.string()),
        ("data_sha256", pa.string()),
        ("split", pa.string()),
        ("label_setting", pa.string()),
        ("subset_seed", pa.int64()),
        ("seed", pa.int64()),
        ("epochs", pa.int32()),
        ("batch_size", pa.int32()),
        ("lr", pa.float64()),
        ("best_epoch", pa.int32()),
        ("best_stage", pa.string()),
        ("val_metric", pa.float64()),
        ("test_metric", pa.float64()),
        ("n_train", pa.int64()),
        ("n_val", pa.int64()),
        ("n_test", pa.int64()),
        ("invalid_smiles_dropped", pa.int64()),
        ("tasks_total", pa.int32()),
        ("val_tasks_evaluated", pa.int32()),
        ("test_tasks_evaluated", pa.int32()),
        ("wall_seconds", pa.float64()),
        ("device", pa.string()),
        ("hostname", pa.string()),
        ("code_version", pa.string()),
        ("protocol_version", pa.string()),
        ("trial_config", pa.string()),  # canonical JSON of the TrialSpec
        ("finished_at", pa.timestamp("us", tz="UTC")),
        ("artifact_path", pa.string()),  # null when the trial's checkpoint was not kept
        ("artifact_sha256", pa.string()),  # null likewise
        ("parent_trial_key", pa.string()),  # null for trials that depend on no other trial
        ("parent_artifact_sha256", pa.string()),  # null likewise
        ("method_results", pa.string()),  # canonical JSON of method-specific results (RoFt-Mol's alphas)
        ("engine", pa.string()),  # "unfused", or "fused" (trained in a fused group of fused_trials trials)
        ("fused_trials", pa.int32()),  # size of the trial's fused group (1 when unfused)
        ("started_at", pa.timestamp("us", tz="UTC")),  # when its worker began it (a fused group's start)
        ("node_ip", pa.string()),  # the Ray node that trained it; null outside Ray
        ("gpu_ids", pa.string()),  # the accelerators Ray assigned it, comma-separated ("0", "2,3"); null for none
    ]
)

EPOCH_SCHEMA = pa.schema(
    [
        ("trial_key", pa.string()),
        ("stage", pa.string()),
        ("epoch", pa.int32()),
        ("train_loss", pa.float64()),
        ("val_metric", pa.float64()),
        ("test_metric", pa.float64()),
        ("val_tasks_skipped", pa.int32()),
        ("test_tasks_skipped", pa.int32()),
    ]
)


ALPHA_SCHEMA = pa.schema(
    [
        ("trial_key", pa.string()),  # the search trial that recorded the point
        ("study", pa.string()),
        ("number", pa.int32()),
        ("alphas", pa.list_(pa.float64())),
        ("val_metric", pa.float64()),
        ("test_metric", pa.float64()),
    ]
)

FAILURE_SCHEMA = pa.schema(
    [
        ("trial_key", pa.string()),
        ("sweep", pa.string()),
        ("method", pa.string()),
        ("trial_config", pa.string()),  # canonical JSON of the TrialSpec
        ("error", pa.string()),  # one line
        ("traceback", pa.string()),  # everything Ray reported, remote traceback included
        ("failed_at", pa.timestamp("us", tz="UTC")),
    ]
)

# Text columns of the trial row that may hold nothing: null in rows written now; rows of stores
# written before hold "" there instead, so readers treat null and "" alike (``not value``).
OPTIONAL_TEXT_COLUMNS = (
    "backbone_sha256",
    "artifact_path",
    "artifact_sha256",
    "parent_trial_key",
    "parent_artifact_sha256",
    "node_ip",
    "gpu_ids",
)

PART_PREFIX = "part-"  # compacted files: trials/part-<id>.parquet, epochs/part-<id>.parquet, ...
LOCK_NAME = ".lock"
RUNNING = "running"  # running/<unit>.json: the markers of trials and fused groups in flight (not a table)
# Per-trial tables written before the trial row, by directory name.
SIDE_TABLES = {"epochs": EPOCH_SCHEMA, "alpha_trials": ALPHA_SCHEMA}
# Every table of the store, by directory name.
TABLES = {"trials": TRIAL_SCHEMA, "failures": FAILURE_SCHEMA, **SIDE_TABLES}


QUARANTINE = "quarantine"


class QuarantineWarning(UserWarning):
    """A corrupt file of the store was moved to ``quarantine/``; the rest stays readable."""


# How object storage (S3 and compatible servers, through pyarrow's AWS SDK) words a refusal of the
# request's credentials: none, unknown, wrong, expired, or not allowed to do this.
_REFUSED_ACCESS = re.compile(
    r"ACCESS_DENIED|AccessDenied|Access Denied|InvalidAccessKeyId|SignatureDoesNotMatch"
    r"|ExpiredToken|InvalidToken|INVALID_ACCESS_KEY_ID|SIGNATURE_DOES_NOT_MATCH"
    r"|HTTP response code: 403|HTTP status 403"
)
CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
_ADVICE_MARK = "The store refused access"


def refused_access(message: str) -> bool:
    """Whether ``message`` reports object storage refusing the request's credentials."""
    return bool(_REFUSED_ACCESS.search(message))


def credentials_advice() -> str:
    """Which variables the store's credentials come from, and how a Ray job gets them."""
    advice = (
        f"{_ADVICE_MARK}: the credentials are missing here or may not do this. S3 reads them from "
        f"{' / '.join(CREDENTIAL_VARIABLES[:2])} (and {CREDENTIAL_VARIABLES[2]} for temporary ones), else from "
        "the AWS configuration files or the node's instance role"
    )
    if os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR"):  # the entry point of a Ray job
        advice += (
            "; this is a Ray job, which sees only what its runtime environment carries: `roft submit` "
            "forwards these variables from the submitting shell"
        )
    return advice


class StoreError(RuntimeError):
    """The store cannot be read or written. A message reporting that object storage refused the
    request's credentials ends with :func:`credentials_advice`."""

    def __init__(self, message: str = "", *args: object):
        if isinstance(message, str) and refused_access(message) and _ADVICE_MARK not in message:
            message = f"{message.rstrip('. ')}. {credentials_advice()}"
        super().__init__(message, *args)
