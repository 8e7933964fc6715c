"""The results store: a Parquet dataset that is the source of truth for what is done.

Layout below the store root::

    trials/<trial_key>.parquet     one row per finished trial (schema: TRIAL_SCHEMA)
    epochs/<trial_key>.parquet     per-epoch curves of that trial (schema: EPOCH_SCHEMA)
    alpha_trials/<trial_key>.parquet  every point of an Optuna alpha search (schema: ALPHA_SCHEMA)
    failures/<trial_key>.parquet   a trial that failed after its retries: error and traceback
                                   (schema: FAILURE_SCHEMA); removed when the trial lands
    artifacts/<trial_key>/best.pt  the best-validation state dict (GraphPredictor layout), kept for
                                   trials other trials depend on (Full FT), or all with
                                   ``execution.artifacts: all``; its sha256 is in the trial row

Every file is written under a hidden temporary name (``.<name>.<random>.tmp``; Parquet
readers skip names starting with ``.``) and renamed into place, so readers never see a
partial file. The trial row is written *last*: its presence is the commit of the trial. Two
writers of the same trial write the same file name, so a retried trial can never land twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from trainables.sources import atomic_write

TRIAL_SCHEMA = pa.schema([
    ("trial_key", pa.string()),
    ("sweep", pa.string()),
    ("backbone", pa.string()),
    ("backbone_sha256", pa.string()),
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
    ("artifact_path", pa.string()),  # "" when the trial's checkpoint was not kept
    ("artifact_sha256", pa.string()),
    ("parent_trial_key", pa.string()),  # "" for trials that depend on no other trial
    ("parent_artifact_sha256", pa.string()),
    ("method_results", pa.string()),  # canonical JSON of method-specific results (RoFt-Mol's alphas)
    ("engine", pa.string()),  # "unfused", or "fused" (trained in a fused group of fused_trials trials)
    ("fused_trials", pa.int32()),  # size of the trial's fused group (1 when unfused)
])

EPOCH_SCHEMA = pa.schema([
    ("trial_key", pa.string()),
    ("stage", pa.string()),
    ("epoch", pa.int32()),
    ("train_loss", pa.float64()),
    ("val_metric", pa.float64()),
    ("test_metric", pa.float64()),
    ("val_tasks_skipped", pa.int32()),
    ("test_tasks_skipped", pa.int32()),
])


ALPHA_SCHEMA = pa.schema([
    ("trial_key", pa.string()),  # the search trial that recorded the point
    ("study", pa.string()),
    ("number", pa.int32()),
    ("alphas", pa.list_(pa.float64())),
    ("val_metric", pa.float64()),
    ("test_metric", pa.float64()),
])

FAILURE_SCHEMA = pa.schema([
    ("trial_key", pa.string()),
    ("sweep", pa.string()),
    ("method", pa.string()),
    ("trial_config", pa.string()),  # canonical JSON of the TrialSpec
    ("error", pa.string()),  # one line
    ("traceback", pa.string()),  # everything Ray reported, remote traceback included
    ("failed_at", pa.timestamp("us", tz="UTC")),
])

PART_PREFIX = "part-"  # compacted files: trials/part-<id>.parquet, epochs/part-<id>.parquet, ...
LOCK_NAME = ".lock"

# Per-trial tables written before the trial row, by directory name.
SIDE_TABLES = {"epochs": EPOCH_SCHEMA, "alpha_trials": ALPHA_SCHEMA}


class StoreError(RuntimeError):
    """The store cannot be read or written."""


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class ResultStore:
    """A results store rooted at a local directory."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().resolve()
        self.trials_dir = self.root / "trials"
        self.epochs_dir = self.root / "epochs"
        self.artifacts_dir = self.root / "artifacts"

    def __repr__(self) -> str:
        return f"ResultStore({str(self.root)!r})"

    # ---- writing ---------------------------------------------------------------------
    def artifact_path(self, trial_key: str) -> Path:
        return self.artifacts_dir / trial_key / "best.pt"

    def write_trial(self, row: dict[str, Any], epochs: Iterable[dict[str, Any]] = (),
                    side: dict[str, list[dict[str, Any]]] | None = None) -> Path:
        """Write a trial's epochs and other side tables, then its row (the commit). Returns the row's path."""
        key = row["trial_key"]
        row_table = _table([row], TRIAL_SCHEMA, "trial row")
        tables = {"epochs": list(epochs), **(side or {})}
        unknown = sorted(set(tables) - set(SIDE_TABLES))
        if unknown:
            raise StoreError(f"unknown store table(s) {unknown}; accepted: {', '.join(SIDE_TABLES)}")
        prepared = {name: _table([dict(r, trial_key=key) for r in rows], SIDE_TABLES[name], f"{name} row")
                    for name, rows in tables.items() if rows}
        for name, table in prepared.items():
            self.write_table(table, self.root / name / f"{key}.parquet")
        target = self.trials_dir / f"{key}.parquet"
        self.write_table(row_table, target)
        return target

    def write_table(self, table: pa.Table, target: Path) -> None:
        """Write ``table`` to ``target`` under a temporary name, then rename it into place."""
        try:
            atomic_write(target, lambda fh: pq.write_table(table, fh))
        except OSError as exc:
            raise StoreError(f"cannot write to the store at {self.root} ({target.relative_to(self.root)}): "
                             f"{exc}") from exc

    # ---- reading ---------------------------------------------------------------------
    def _dataset(self, directory: Path, schema: pa.Schema) -> ds.Dataset | None:
        if not directory.is_dir():
            return None
        files = [str(p) for p in directory.glob("*.parquet")]
        if not files:
            return None
        return ds.dataset(files, schema=schema, format="parquet")

    def trials_dataset(self) -> ds.Dataset | None:
        """Every trial file (per-trial and compacted) as one pyarrow dataset, or None when empty."""
        return self._dataset(self.trials_dir, TRIAL_SCHEMA)

    def read_trial(self, trial_key: str) -> dict[str, Any] | None:
        """The committed row of one trial (its own file, else a compacted part file), or ``None``."""
        path = self.trials_dir / f"{trial_key}.parquet"
        if not path.is_file():
            parts = sorted(self.trials_dir.glob(f"{PART_PREFIX}*.parquet"))
            if not parts:
                return None
            rows = ds.dataset([str(p) for p in parts], schema=TRIAL_SCHEMA, format="parquet").to_table(
                filter=ds.field("trial_key") == trial_key).to_pylist()
            return rows[-1] if rows else None
        rows = pq.read_table(path).to_pylist()
        if len(rows) != 1 or rows[0].get("trial_key") != trial_key:
            raise StoreError(f"{path} does not hold exactly the row of trial {trial_key}")
        return rows[0]

    # ---- failures --------------------------------------------------------------------
    @property
    def failures_dir(self) -> Path:
        return self.root / "failures"

    def write_failure(self, row: dict[str, Any]) -> None:
        """Record a trial that failed after its retries (``failures/<key>.parquet``; never a result)."""
        self.write_table(_table([row], FAILURE_SCHEMA, "failure row"), self.failures_dir / f"{row['trial_key']}.parquet")

    def read_failures(self) -> pa.Table:
        dataset = self._dataset(self.failures_dir, FAILURE_SCHEMA)
        return FAILURE_SCHEMA.empty_table() if dataset is None else dataset.to_table()

    def failed_keys(self) -> set[str]:
        return set(self.read_failures().column("trial_key").to_pylist())

    def clear_failure(self, trial_key: str) -> None:
        (self.failures_dir / f"{trial_key}.parquet").unlink(missing_ok=True)

    # ---- locking ---------------------------------------------------------------------
    @contextlib.contextmanager
    def sweep_lock(self) -> Iterator[None]:
        """Held (shared) by a running sweep; :func:`orchestrator.compaction.compact` needs it exclusively.

        An advisory ``flock`` on ``<store>/.lock``: it guards this host (and filesystems that
        honour ``flock`` across hosts); on a shared store, do not compact while any node sweeps.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK_NAME, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def done_keys(self) -> set[str]:
        """Keys of every trial with a committed row."""
        dataset = self._dataset(self.trials_dir, TRIAL_SCHEMA)
        if dataset is None:
            return set()
        return set(dataset.to_table(columns=["trial_key"]).column("trial_key").to_pylist())

    def read_trials(self, columns: list[str] | None = None) -> pa.Table:
        dataset = self._dataset(self.trials_dir, TRIAL_SCHEMA)
        if dataset is None:
            return TRIAL_SCHEMA.empty_table() if columns is None else TRIAL_SCHEMA.empty_table().select(columns)
        return dataset.to_table(columns=columns)

    def read_epochs(self) -> pa.Table:
        return self.read_side_table("epochs")

    def read_side_table(self, name: str, filter=None) -> pa.Table:
        schema = SIDE_TABLES[name]
        dataset = self._dataset(self.root / name, schema)
        return schema.empty_table() if dataset is None else dataset.to_table(filter=filter)

    def alpha_points(self, study: str) -> list[dict[str, Any]]:
        """Every recorded point of an alpha-search study, once per point number, by number."""
        table = self.read_side_table("alpha_trials", filter=ds.field("study") == study)
        by_number = {r["number"]: r for r in table.to_pylist()}
        return [by_number[n] for n in sorted(by_number)]


def _table(rows: list[dict[str, Any]], schema: pa.Schema, what: str) -> pa.Table:
    expected = set(schema.names)
    for row in rows:
        missing, extra = sorted(expected - set(row)), sorted(set(row) - expected)
        if missing or extra:
            raise StoreError(f"{what} does not match the store schema: missing {missing}, unexpected {extra}")
    try:
        return pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise StoreError(f"{what} has a value of the wrong type: {exc}") from exc
