"""Experiment tracking: every trial of a sweep as one MLflow run (``roft sweep --tracker mlflow[=URI]``).

The store stays the truth; MLflow gets a copy of each trial's row once it has landed, read back
from the store by the driver (the workers never talk to MLflow):

* one *parent* run per sweep (tags ``roft.kind=sweep``, ``roft.sweep``), found again by its sweep
  name, so a rerun of the sweep nests under the same parent;
* one run per trial, nested under it (``mlflow.parentRunId``): a fused group of N trials is N runs,
  one per member. Params: the trial's configuration (its ``trial_config``, flattened:
  ``recipe.lr``, ``method_params.alpha``, ...). Metrics: the per-epoch curve as metric history
  (``train_loss``, ``val_<metric>``, ``test_<metric>``; step = the epoch's place in the curve,
  across stages), ``best_val_<metric>``, ``test_<metric>_at_best_val_epoch`` (the trial's result),
  ``best_epoch`` and ``wall_seconds``. Tags ``roft.<column>``: sweep, trial key, backbone, method,
  method label, task, split, label setting, seed, engine, fused trials, code version. Its start and
  end are the row's ``started_at`` and ``finished_at``.

A trial is logged once: the trial keys already in the experiment (tag ``roft.trial_key``) are read
first, so a retried trial, a rerun sweep or a second sweep planning the same trial adds no run.
Trials are logged as they land (:func:`tune_callback`, on the driver) and once more at the end of
the sweep for every landed trial of its plan that is not logged yet (a tracking server that was
down meanwhile, a sweep rerun with the tracker added), so rerunning the same command catches up.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

TRACKERS = ("mlflow",)
ACCEPTED = "mlflow, or mlflow=TRACKING_URI (e.g. mlflow=http://127.0.0.1:5000)"
EXPERIMENT = "roft"  # the MLflow experiment of every roft run (MLFLOW_EXPERIMENT_NAME overrides it)
INSTALL = "pip install 'roft[mlflow]' (or pip install mlflow)"
TAG_COLUMNS = [
    "sweep",
    "trial_key",
    "backbone",
    "method",
    "method_label",
    "task",
    "split",
    "label_setting",
    "seed",
    "engine",
    "fused_trials",
    "code_version",
]
ROW_COLUMNS = [
    *dict.fromkeys(
        [
            *TAG_COLUMNS,
            "metric",
            "val_metric",
            "test_metric",
            "best_epoch",
            "wall_seconds",
            "trial_config",
            "started_at",
            "finished_at",
        ]
    )
]
BATCH = {"metrics": 1000, "params": 100}  # the most of each that one MLflow log_batch call takes


class TrackerError(RuntimeError):
    """The tracker cannot be used (not installed, not reachable, a bad setting): one line, nothing run."""


@dataclass(frozen=True)
class TrackerSetting:
    """``--tracker`` / ``execution.tracker``: which tracker, and its URI (None: the tracker's own default,
    for MLflow ``$MLFLOW_TRACKING_URI`` else its local default)."""

    kind: str
    uri: str | None = None

    @classmethod
    def parse(cls, text: str) -> TrackerSetting:
        kind, sep, uri = str(text).partition("=")
        if kind not in TRACKERS or (sep and not uri.strip()):
            raise ValueError(f"--tracker {text!r} is not accepted; accepted: {ACCEPTED}")
        return cls(kind, uri.strip() or None)


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """``{"recipe": {"lr": 0.001}}`` -> ``{"recipe.lr": "0.001"}`` (leaves as text: strings as they are, other
    values as JSON)."""
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for key in sorted(value):
            out.update(flatten(value[key], f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value if isinstance(value, str) else json.dumps(value)}


def _millis(moment) -> int | None:
    if moment is None or (isinstance(moment, float) and math.isnan(moment)):
        return None
    try:
        return int(moment.timestamp() * 1000) if isinstance(moment, datetime) else int(moment.value // 1_000_000)
    except (AttributeError, ValueError, OverflowError):
        return None


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


@dataclass
class MlflowTracker:
    """Logs landed trials of sweep ``sweep`` to MLflow at ``setting.uri``; picklable (the client is made
    on first use), as a Tune callback holding it must be."""

    setting: TrackerSetting
    sweep: str
    experiment: str = EXPERIMENT
    logged: set[str] = field(default_factory=set)  # trial keys with a run in the experiment
    errors: list[str] = field(default_factory=list)  # why trials were not logged (the last few)
    added: int = 0  # runs this process created
    _client: Any = field(default=None, repr=False)
    _experiment_id: str | None = None
    _parent: str | None = None
    _queue: Any = field(default=None, repr=False)  # units waiting to be logged by the background thread
    _thread: Any = field(default=None, repr=False)

    def __getstate__(self):
        return {**self.__dict__, "_client": None, "_queue": None, "_thread": None}

    # ---- connection -------------------------------------------------------------------
    @property
    def client(self):
        if self._client is None:
            try:
                from mlflow.tracking import MlflowClient
            except ImportError:
                raise TrackerError(f"--tracker mlflow needs MLflow, which is not installed: {INSTALL}") from None
            # MLflow prints a "View run ..." line for every run it ends: a sweep's terminal keeps the progress
            logging.getLogger("mlflow").setLevel(logging.WARNING)
            self._client = MlflowClient(tracking_uri=self.setting.uri)
        return self._client

    @property
    def uri(self) -> str:
        return self.setting.uri or self.client.tracking_uri

    def start(self) -> None:
        """Reach the server, find or make the experiment and the sweep's parent run, read the trial keys
        already logged; :class:`TrackerError` (one line) when any of it fails."""
        try:
            experiment = self.client.get_experiment_by_name(self.experiment)
            self._experiment_id = (
                experiment.experiment_id if experiment is not None else self.client.create_experiment(self.experiment)
            )
            self._parent = self._parent_run()
            self.logged = self._logged_keys()
        except TrackerError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the client raises (connection refused, HTTP errors)
            raise TrackerError(
                f"MLflow tracking server {self.setting.uri or '(MLflow default)'} cannot be used: "
                f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}; nothing was run. Start "
                f"the server, or fix --tracker ({ACCEPTED})"
            ) from None

    def _parent_run(self) -> str:
        runs = self.client.search_runs(
            [self._experiment_id],
            max_results=1,
            filter_string=f"tags.`roft.kind` = 'sweep' and tags.`roft.sweep` = '{self.sweep}'",
        )
        if runs:
            return runs[0].info.run_id
        run = self.client.create_run(
            self._experiment_id, run_name=self.sweep, tags={"roft.kind": "sweep", "roft.sweep": self.sweep}
        )
        return run.info.run_id

    def _logged_keys(self) -> set[str]:
        keys: set[str] = set()
        token = None
        while True:
            page = self.client.search_runs(
                [self._experiment_id], filter_string="tags.`roft.kind` = 'trial'", max_results=1000, page_token=token
            )
            keys.update(run.data.tags.get("roft.trial_key") for run in page)
            token = page.token
            if not token:
                return keys - {None}

    @property
    def parent_run_id(self) -> str | None:
        return self._parent

    # ---- logging ----------------------------------------------------------------------
    def submit(self, store, keys: Iterable[str]) -> None:
        """Log ``keys`` in a background thread of this process (a Tune callback must not wait for the
        tracking server: Tune's loop would stall); :meth:`wait` for them."""
        import queue
        import threading

        if self._thread is None:
            self._queue = queue.Queue()
            self._thread = threading.Thread(target=self._work, name="roft-mlflow", daemon=True)
            self._thread.start()
        self._queue.put((store, list(keys)))

    def _work(self) -> None:
        while True:
            store, keys = self._queue.get()
            try:
                self.log(store, keys)
            finally:
                self._queue.task_done()

    def wait(self) -> None:
        """Return once every submitted unit is logged (or its failure recorded)."""
        if self._queue is not None:
            self._queue.join()

    def log(self, store, keys: Iterable[str]) -> int:
        """Log the landed trials among ``keys`` that have no run yet; returns how many were logged.
        Failures are kept in :attr:`errors` (a sweep goes on), never raised."""
        wanted = sorted(set(keys) - self.logged)
        if not wanted:
            return 0
        try:
            rows, curves = _read(store, wanted)
        except Exception as exc:  # noqa: BLE001
            self._error(f"reading {len(wanted)} trials from the store: {type(exc).__name__}: {exc}")
            return 0
        done = 0
        for row in rows:
            try:
                self._log_trial(row, curves.get(row["trial_key"], []))
            except Exception as exc:  # noqa: BLE001 - one trial's failure must not stop the others, nor the sweep
                self._error(f"trial {row['trial_key']}: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
                continue
            self.logged.add(row["trial_key"])
            done += 1
        self.added += done
        return done

    def _error(self, text: str) -> None:
        self.errors = [*self.errors[-9:], text]

    def _log_trial(self, row: dict[str, Any], curve: list[dict[str, Any]]) -> None:
        metric = row.get("metric") or "metric"
        tags: dict[str, str | None] = {f"roft.{c}": str(row[c]) for c in TAG_COLUMNS if row.get(c) is not None}
        tags.update({"roft.kind": "trial", "mlflow.parentRunId": self._parent})
        name = (
            "/".join(str(row.get(c)) for c in ("backbone", "method_label", "task", "label_setting"))
            + f"/seed{row.get('seed')}"
        )
        started, finished = _millis(row.get("started_at")), _millis(row.get("finished_at"))
        run = self.client.create_run(self._experiment_id, start_time=started or finished, tags=tags, run_name=name)
        try:
            self._fill(run.info.run_id, row, curve, metric, started, finished)
        except BaseException:
            try:  # a half-logged run would hide the trial from the next attempt: remove it
                self.client.delete_run(run.info.run_id)
            except Exception:  # noqa: BLE001 - the first error is the one to report
                pass
            raise

    def _fill(
        self,
        run_id: str,
        row: dict[str, Any],
        curve: list[dict[str, Any]],
        metric: str,
        started: int | None,
        finished: int | None,
    ) -> None:
        from mlflow.entities import Metric, Param

        at = finished or started or 0
        config = row.get("trial_config")
        params = flatten(json.loads(config)) if isinstance(config, str) and config else {}
        metrics = []
        for step, epoch in enumerate(curve, start=1):
            for key, column in (
                ("train_loss", "train_loss"),
                (f"val_{metric}", "val_metric"),
                (f"test_{metric}", "test_metric"),
            ):
                value = _number(epoch.get(column))
                if value is not None:
                    metrics.append(Metric(key, value, at, step))
        for key, value in (
            (f"best_val_{metric}", row.get("val_metric")),
            (f"test_{metric}_at_best_val_epoch", row.get("test_metric")),
            ("best_epoch", row.get("best_epoch")),
            ("wall_seconds", row.get("wall_seconds")),
        ):
            number = _number(value)
            if number is not None:
                metrics.append(Metric(key, number, at, 0))
        params_list = [Param(k, v) for k, v in params.items()]
        batches = max(math.ceil(len(metrics) / BATCH["metrics"]), math.ceil(len(params_list) / BATCH["params"]))
        for i in range(batches):  # one request for a trial of up to 300 epochs and 100 params
            self.client.log_batch(
                run_id,
                metrics=metrics[i * BATCH["metrics"] : (i + 1) * BATCH["metrics"]],
                params=params_list[i * BATCH["params"] : (i + 1) * BATCH["params"]],
            )
        self.client.set_terminated(run_id, "FINISHED", end_time=finished)

    def summary(self) -> str:
        """One line: how many runs, where; and why some were not logged."""
        line = (
            f"MLflow: {self.added} trial run(s) logged to {self.uri}, experiment {self.experiment!r}, under "
            f"the parent run {self._parent} of sweep {self.sweep!r} ({len(self.logged)} trial runs in the "
            "experiment)"
        )
        if self.errors:
            line += (
                f"; NOT logged: {len(self.errors)} error(s), the last: {self.errors[-1]}. Rerun the same "
                "command to log them (it runs no trial again)"
            )
        return line


FEW = 256  # up to this many trials are read one by one (their own files); more through one filtered scan


def _read(store, keys: list[str]) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """The rows of ``keys`` (landed ones only) and their epoch curves, in the curve's order.

    A few trials (a unit that just landed) are read from their own files; many (the end of a sweep)
    through one filtered scan of each table.
    """
    import pyarrow.dataset as ds

    if len(keys) <= FEW:
        rows = [row for row in (store.read_trial(key) for key in keys) if row is not None]
    else:
        table = store.scan("trials", columns=ROW_COLUMNS, filter=ds.field("trial_key").isin(keys))
        rows = list({row["trial_key"]: row for row in table.to_pylist()}.values())
    curves: dict[str, list[dict[str, Any]]] = {}
    if rows:
        seen = set()
        for epoch in _epochs(store, [r["trial_key"] for r in rows]):
            mark = (epoch["trial_key"], epoch["stage"], epoch["epoch"])
            if mark not in seen:  # a curve in two files (an interrupted compaction) counts once
                seen.add(mark)
                curves.setdefault(epoch["trial_key"], []).append(epoch)
    return rows, curves


EPOCH_COLUMNS = ["trial_key", "stage", "epoch", "train_loss", "val_metric", "test_metric"]


def _epochs(store, keys: list[str]) -> list[dict[str, Any]]:
    """The epoch rows of ``keys``: a few from their own files (``epochs/<key>.parquet``), the others (and
    many) through a filtered scan."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    out, rest = [], list(keys)
    if len(keys) <= FEW:
        rest = []
        for key in keys:
            blob = store.read_bytes(store.path("epochs", f"{key}.parquet"))
            if blob is None:
                rest.append(key)  # compacted into a part file
            else:
                out += pq.read_table(pa.BufferReader(blob), columns=EPOCH_COLUMNS).to_pylist()
    if rest:
        out += store.scan("epochs", columns=EPOCH_COLUMNS, filter=ds.field("trial_key").isin(rest)).to_pylist()
    return out


def tune_callback(tracker: MlflowTracker, store):
    """A Tune callback that hands each completed unit's trials (every member of a fused group) to the
    tracker's background thread."""
    from ray.tune import Callback

    class _Track(Callback):
        def on_trial_complete(self, iteration, trials, trial, **info):
            unit = trial.config["trial"]
            tracker.submit(store, unit.get("members", [unit["key"]]))

    return _Track()


def open_tracker(setting: TrackerSetting, sweep: str) -> MlflowTracker:
    """The started tracker of ``setting`` for sweep ``sweep`` (:class:`TrackerError` when it cannot be used)."""
    import os

    tracker = MlflowTracker(setting, sweep, os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT)
    tracker.start()
    return tracker
