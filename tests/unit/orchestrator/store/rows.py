"""Hand-made trial rows, and writers and lock holders, for store, table and report tests."""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import random
import threading
from datetime import datetime, timezone

from orchestrator.store.results import ResultStore
from orchestrator.store.schema import TRIAL_SCHEMA

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


SEARCH_PARAMS = {"alpha": 0.5, "alpha_high": 1.0, "alpha_low": 0.0, "bn_stats": "interpolate", "n_trials": 8,
                 "search": "optuna", "search_seed": 0, "test_per_point": False}


def write_alpha_search_store(store: ResultStore, seeds: int = 3, points: int = 8) -> None:
    """A store as ``methods: {full-ft: {}, wise-ft: {search: optuna, n_trials: 8}}`` leaves it: Full FT
    and WiSE-FT rows on bbbp (ROC-AUC) and esol (RMSE), every WiSE-FT row from an Optuna alpha search
    (its chosen alpha in ``method_results``, its points in ``alpha_trials``, val only: no
    ``test_per_point``), no WiSE-FT grid row."""
    import json

    for task, metric in (("bbbp", "roc_auc"), ("esol", "rmse")):
        for seed in range(seeds):
            full = f"ft-{task}-{seed}"
            store.write_trial(make_row(full, task=task, metric=metric, seed=seed, mechanism="baseline",
                                       pretraining="none", method_params="{}", method_results="{}",
                                       val_metric=0.70 + 0.01 * seed, test_metric=0.68 + 0.01 * seed))
            key, study = f"wise-{task}-{seed}", f"wise-ft:{full}:bn_stats=interpolate"
            store.write_trial(
                make_row(key, task=task, metric=metric, seed=seed, method="wise-ft", mechanism="weight",
                         method_label="wise-ft[optuna,n_trials=8]", pretraining="none",
                         method_params=json.dumps(SEARCH_PARAMS, sort_keys=True), parent_trial_key=full,
                         method_results=json.dumps({"alphas": [0.6], "study": study, "best_point": points - 1}),
                         val_metric=0.75 + 0.01 * seed, test_metric=0.72 + 0.01 * seed),
                side={"alpha_trials": [{"study": study, "number": n, "alphas": [n / points],
                                        "val_metric": 0.70 + n / 100, "test_metric": None} for n in range(points)]})


@contextlib.contextmanager
def immutable(folder):
    """``folder`` made immutable (``chattr +i``: nothing can be created in it, even by root, as tests
    run here) while the block runs; the test is skipped where chattr is missing or refused."""
    import shutil
    import subprocess

    import pytest

    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)],
                                                        capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here (the PermissionError variant of the test still runs)")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


# The published recipe (orchestrator.analysis.anchors.RECIPE), as a trial's configuration records it.
PUBLISHED_RECIPE = {"recipe": {"epochs": 100, "batch_size": 32, "lr": 0.001, "dropout": 0.5, "weight_decay": 0.0}}
# (task, seed) -> test ROC-AUC of the one-cell store: BBBP near Hu et al.'s no-pre-training row
ONE_CELL = {("bbbp", 0): 0.662, ("bbbp", 1): 0.6916, ("bbbp", 2): 0.7214}
# backbone -> task -> three seeds' test ROC-AUC, as `make demo` measures them (README)
DEMO = {"hu-gcn-supervised-contextpred": {"bbbp": (0.6788, 0.6888, 0.6988), "clintox": (0.7341, 0.7761, 0.8181)},
        "scratch-gcn": {"bbbp": (0.5603, 0.5629, 0.5655), "clintox": (0.5566, 0.5606, 0.5646)}}


def one_cell_row(key: str, seed: int, test: float, **overrides) -> dict:
    """A GIN-from-scratch Full-FT trial of the published recipe (it matches hu2020-none)."""
    import json

    return make_row(key, backbone="scratch-gin", architecture="gin", pretraining="none", num_layers=5, emb_dim=300,
                    method="full-ft", method_label="full-ft", mechanism="baseline", method_params="{}",
                    method_results="{}", task="bbbp", task_type="classification", metric="roc_auc", seed=seed,
                    val_metric=test + 0.1, test_metric=test, epochs=100, sweep="one-cell", engine="fused",
                    code_version="0.3.0+g0123456789", protocol_version="roft-protocol-1",
                    trial_config=json.dumps(PUBLISHED_RECIPE), **overrides)


def write_one_cell_store(store: ResultStore) -> None:
    """One cell (scratch-gin, Full FT, BBBP, scaffold, all labels), three seeds."""
    for (task, seed), test in ONE_CELL.items():
        store.write_trial(one_cell_row(f"one-{task}-{seed}", seed, test), [epoch(n) for n in (1, 2, 3)])


def demo_row(key: str, backbone: str, task: str, seed: int, test: float, dirty: bool = False) -> dict:
    pretrained = backbone != "scratch-gcn"
    return make_row(key, backbone=backbone, architecture="gcn", pretraining="both" if pretrained else "none",
                    num_layers=5, emb_dim=300, method="lp", method_label="lp[freeze_bn_stats=True]",
                    mechanism="partial", method_params='{"freeze_bn_stats": true}', method_results="{}", task=task,
                    task_type="classification", metric="roc_auc", seed=seed, val_metric=test + 0.05,
                    test_metric=test, epochs=15, sweep="mini", engine="unfused",
                    code_version="0.3.0+g0123456789" + (".dirty" if dirty else ""), protocol_version="roft-protocol-1",
                    trial_config="{}")


def write_demo_store(store: ResultStore, dirty_seeds: tuple[int, ...] = ()) -> None:
    """`make demo`'s 12 trials (linear probe, pre-trained vs random-init GCN, BBBP and ClinTox, 3 seeds);
    the trials of ``dirty_seeds`` ran code with uncommitted changes."""
    for backbone, tasks in DEMO.items():
        for task, values in tasks.items():
            for seed, test in enumerate(values):
                store.write_trial(demo_row(f"demo-{backbone}-{task}-{seed}", backbone, task, seed, test,
                                           dirty=seed in dirty_seeds), [epoch(n) for n in (1, 2, 3)])
