"""Hand-made trial rows, and writers and lock holders, for store, table and report tests."""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import random
import threading
from datetime import datetime, timezone

from orchestrator.store.results import TRIAL_SCHEMA, ResultStore

KEYS = [f"k{i:02d}" for i in range(16)]


def make_row(key: str, **overrides) -> dict:
    row = {name: None for name in TRIAL_SCHEMA.names}
    row.update(trial_key=key, sweep="t", backbone="scratch-gin", method="full-ft", method_label="full-ft",
               task="esol", task_type="regression", metric="rmse", split="scaffold", label_setting="full",
               seed=0, test_metric=1.0, val_metric=1.0, finished_at=datetime.now(timezone.utc))
    row.update(overrides)
    return row


def epoch(n: int, loss: float = 0.1) -> dict:
    return {"stage": "finetune", "epoch": n, "train_loss": loss, "val_metric": 1.0, "test_metric": 2.0,
            "val_tasks_skipped": 0, "test_tasks_skipped": 0}


def write_keys(uri: str, seed: int) -> None:
    """Write the trials :data:`KEYS` (two epochs each) in an order shuffled by ``seed``."""
    store = ResultStore(uri)
    keys = KEYS[:]
    random.Random(seed).shuffle(keys)
    for key in keys:
        store.write_trial(make_row(key, seed=seed, test_metric=float(seed)), [epoch(1), epoch(2)])


def write_concurrently(uri: str) -> None:
    """Four threads of this process and two spawned processes write :data:`KEYS` to ``uri`` at once."""
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=spawn) as processes:
        remote = [processes.submit(write_keys, uri, seed) for seed in (10, 11)]
        threads = [threading.Thread(target=write_keys, args=(uri, seed)) for seed in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for future in remote:
            future.result(timeout=120)


@contextlib.contextmanager
def held_by_a_sweep(store: ResultStore):
    """A thread holds ``store``'s sweep lock, as a running ``roft sweep`` does, while the block runs."""
    holding, release = threading.Event(), threading.Event()

    def sweep():
        with store.sweep_lock():
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=sweep)
    thread.start()
    holding.wait(10)
    try:
        yield
    finally:
        release.set()
        thread.join()
