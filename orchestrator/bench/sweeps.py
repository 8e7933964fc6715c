"""``roft bench orchestrator``: what the Ray Tune path costs per trial, with no-op trials.

Runs ``N`` no-op trials through :func:`orchestrator.sweep.execute.run_trials` (the sweep's own path:
chunked Tuner, reused actors) under the sweep's scheduler (newest pending trial first) and, as the
baseline in the same Ray session, under Tune's default (FIFO); prints the amortized wall time per
trial of each, their ratio and the driver's peak RSS, for each ``N`` (Ray's start is paid once,
before timing). Last, ``no_reuse`` trials without actor reuse: what a fresh actor per trial costs
(Ray's worker start alone here; a real trial's actor also imports torch and PyG, about 5 s more).
"""

from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path

from orchestrator.bench.noop import noop_trainable
from orchestrator.store.results import ResultStore
from orchestrator.sweep.execute import init_ray, run_trials
from trainables.core.config import Runtime
from trainables.core.data_root import DataRoot

SCHEDULER_LABELS = {"newest-first": "newest-first (roft)", "fifo": "fifo (Tune's default)"}


def bench_orchestrator(
    sizes: list[int], num_cpus: int | None = None, chunk_size: int = 256, no_reuse: int = 16
) -> list[dict]:
    started = time.perf_counter()
    init_ray(num_cpus=num_cpus)
    print(f"ray.init: {time.perf_counter() - started:.1f} s")
    results = []
    with tempfile.TemporaryDirectory(prefix="roft-bench-") as tmp:
        runtime = Runtime(store=tmp, sweep="bench")

        def timed(n: int, scheduler: str = "newest-first", reuse_actors: bool = True) -> dict:
            start = time.perf_counter()
            errors = run_trials(
                [{"key": f"t{n}-{scheduler}-{reuse_actors}-{i}"} for i in range(n)],
                runtime,
                noop_trainable,
                name=f"bench{n}-{scheduler}-{reuse_actors}",
                resources={"cpu": 1},
                chunk_size=chunk_size,
                tune_root=Path(tmp) / "_tune",
                scheduler=scheduler,
                reuse_actors=reuse_actors,
            )
            seconds = time.perf_counter() - start
            peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            return {
                "trials": n,
                "scheduler": scheduler,
                "reuse_actors": reuse_actors,
                "seconds": seconds,
                "per_trial_ms": 1000 * seconds / n,
                "errors": len(errors),
                "driver_peak_rss_mib": peak_mib,
            }

        timed(4)  # warm-up: the trainable's registration, the first actors
        for n in sizes:
            rows = [timed(n, scheduler) for scheduler in SCHEDULER_LABELS]
            results += rows
            for row in rows:
                print(
                    f"{n:>6} no-op trials, {SCHEDULER_LABELS[row['scheduler']]:<22}: {row['seconds']:7.1f} s, "
                    f"{row['per_trial_ms']:6.1f} ms/trial amortized, {row['errors']} errors, driver peak RSS "
                    f"{row['driver_peak_rss_mib']:,.0f} MiB"
                )
            print(f"{'':>6} newest-first / fifo per-trial time: {rows[0]['seconds'] / rows[1]['seconds']:.2f}")
        if no_reuse:
            fresh = timed(no_reuse, reuse_actors=False)
            results.append(fresh)
            reused = [r for r in results if r["reuse_actors"] and r["scheduler"] == "newest-first"]
            print(
                f"{no_reuse:>6} no-op trials without actor reuse: {fresh['seconds']:7.1f} s, "
                f"{fresh['per_trial_ms']:6.1f} ms/trial, {fresh['per_trial_ms'] / reused[0]['per_trial_ms']:.0f}x "
                f"the reused actors' ({fresh['errors']} errors)"
            )
    return results


def bench_alpha(
    backbone: str,
    task: str,
    label_setting: str,
    ft_epochs: int,
    n_trials: int,
    data_root: DataRoot = DataRoot(),
    threads: int = 1,
) -> dict:
    """Cost of an ``n_trials``-point Optuna alpha search relative to one Full-FT trial, same task.

    Runs one Full-FT trial of ``ft_epochs`` epochs (timed), then a WiSE-FT and a 6-group
    RoFt-Mol search of ``n_trials`` points on its checkpoint (timed, data already loaded), and
    prints seconds per FT epoch, per search point, and the search's cost as a fraction of the
    measured FT trial and of a paper-length (100-epoch) FT trial at the measured epoch cost.
    """
    import dataclasses

    from trainables.core.config import TrainingRecipe, TrialSpec
    from trainables.worker.trial import execute_trial

    with tempfile.TemporaryDirectory(prefix="roft-bench-alpha-") as tmp:
        runtime = Runtime(store=tmp, sweep="bench", data_root=data_root, threads=threads)
        ft = TrialSpec(
            backbone=backbone,
            method="full-ft",
            task=task,
            split="scaffold",
            label_setting=label_setting,
            seed=0,
            subset_seed=42,
            recipe=TrainingRecipe(epochs=1),
        )
        execute_trial(ft, runtime, ResultStore(runtime.store))  # warm-up: data, checkpoint, allocator
        ft = dataclasses.replace(ft, recipe=TrainingRecipe(epochs=ft_epochs))
        ft_row = execute_trial(ft, runtime, ResultStore(runtime.store))
        per_epoch = ft_row["wall_seconds"] / ft_epochs
        print(
            f"{backbone}, {task}, scaffold, {label_setting} (n_train={ft_row['n_train']}, n_val={ft_row['n_val']}); "
            f"{threads} torch thread(s)"
        )
        print(
            f"full-ft: {ft_epochs} epochs in {ft_row['wall_seconds']:.1f} s = {per_epoch:.2f} s/epoch; "
            f"100-epoch trial at that rate: {100 * per_epoch:.0f} s"
        )
        out = {"ft_seconds": ft_row["wall_seconds"], "ft_seconds_per_epoch": per_epoch, "searches": []}
        for method, params in (("wise-ft", {}), ("roft-mol", {"groups": 6})):
            spec = dataclasses.replace(
                ft, method=method, method_params={"search": "optuna", "n_trials": n_trials, **params}
            )
            row = execute_trial(spec, runtime, ResultStore(runtime.store))
            seconds = row["wall_seconds"]
            result = {
                "method": row["method_label"],
                "seconds": seconds,
                "per_point": seconds / n_trials,
                "vs_measured_ft": seconds / ft_row["wall_seconds"],
                "vs_100_epoch_ft": seconds / (100 * per_epoch),
            }
            out["searches"].append(result)
            print(
                f"{result['method']}: {seconds:.1f} s = {result['per_point']:.3f} s/point; "
                f"{100 * result['vs_measured_ft']:.1f}% of the measured FT trial, "
                f"{100 * result['vs_100_epoch_ft']:.1f}% of a 100-epoch FT trial"
            )
    return out
