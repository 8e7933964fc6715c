"""``roft bench orchestrator``: what the Ray Tune path costs per trial, with no-op trials.

Runs ``N`` no-op trials through :func:`orchestrator.execute.run_trials` (the sweep's own path:
chunked Tuner, reused actors) and prints the amortized wall time per trial and the driver's
peak RSS, for each ``N`` in the same Ray session (so Ray's start is paid once, before timing).
"""

from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path

from orchestrator.execute import init_ray, run_trials
from orchestrator.noop import noop_trainable
from trainables.config import Runtime


def bench_orchestrator(sizes: list[int], num_cpus: int | None = None, chunk_size: int = 256) -> list[dict]:
    started = time.perf_counter()
    init_ray(num_cpus=num_cpus)
    print(f"ray.init: {time.perf_counter() - started:.1f} s")
    results = []
    with tempfile.TemporaryDirectory(prefix="roft-bench-") as tmp:
        runtime = Runtime(store=tmp, sweep="bench")
        run_trials([{"key": f"warm-{i}"} for i in range(4)], runtime, noop_trainable, name="warmup",
                   resources={"cpu": 1}, chunk_size=chunk_size, tune_root=Path(tmp) / "_tune")
        for n in sizes:
            start = time.perf_counter()
            errors = run_trials([{"key": f"t{n}-{i}"} for i in range(n)], runtime, noop_trainable,
                                name=f"bench{n}", resources={"cpu": 1}, chunk_size=chunk_size,
                                tune_root=Path(tmp) / "_tune")
            seconds = time.perf_counter() - start
            peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            row = {"trials": n, "seconds": seconds, "per_trial_ms": 1000 * seconds / n, "errors": len(errors),
                   "driver_peak_rss_mib": peak_mib}
            results.append(row)
            print(f"{n:>6} no-op trials: {seconds:7.1f} s, {row['per_trial_ms']:6.1f} ms/trial amortized, "
                  f"{len(errors)} errors, driver peak RSS {peak_mib:,.0f} MiB")
    return results
