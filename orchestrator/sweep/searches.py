"""Searched methods: Ray Tune's OptunaSearch over a method's hyper-parameters, per cell.

For each searched method of a spec (``methods: {l2-sp: {tune: optuna, num_samples: 20, d:
{log_uniform: [1.0e-4, 1.0]}}}``) and each cell (backbone x task x split x label setting),
one Tune experiment samples ``num_samples`` points with a seeded TPE sampler
(``OptunaSearch``, through a ``ConcurrencyLimiter``); each point trains every seed of the
spec (:mod:`trainables.worker.point`) and is scored by its seed-mean validation metric,
maximised for ROC-AUC and minimised for RMSE. Every trial lands in the store as an ordinary
row, deduplicated by key: with ``max_concurrent: 1`` (the default) a rerun proposes the same
points, finds their trials in the store and continues the study where it stopped (a larger
``num_samples`` adds points); with more concurrency a rerun reuses whatever points coincide.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import Any

from orchestrator.store.results import ResultStore
from orchestrator.sweep.plan import cells, file_hashes, make_trial
from search_spaces.spec import HyperparameterSearch, SweepSpec
from trainables.core.config import Runtime
from trainables.data.tasks import TASKS


@dataclass
class SearchOutcome:
    points: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # experiment -> error
    best: list[dict[str, Any]] = field(default_factory=list)  # per cell: the best point and its objective


def tune_space(search: HyperparameterSearch) -> dict[str, Any]:
    """The search's distributions as Ray Tune sampling domains."""
    from ray import tune

    domains = {
        "uniform": lambda lo, hi: tune.uniform(lo, hi),
        "log_uniform": lambda lo, hi: tune.loguniform(lo, hi),
        "int": lambda lo, hi: tune.randint(lo, hi + 1),
        "choice": lambda *values: tune.choice(list(values)),
    }
    return {name: domains[kind](*args) for name, kind, args in search.space}


def run_searches(spec: SweepSpec, runtime: Runtime) -> SearchOutcome:
    """Run every searched method of ``spec`` in every cell (Ray must be initialised)."""
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    from trainables.worker.point import tune_point_trainable

    outcome = SearchOutcome()
    hashes = file_hashes(spec, runtime.data_root)
    tune_root = ResultStore(runtime.store).tune_dir()
    resources = {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}
    for search in spec.searches:
        for backbone, task, split, label_setting in cells(spec):
            base = [
                make_trial(
                    spec, hashes, backbone, search.method, dict(search.fixed), task, split, label_setting, seed
                ).to_dict()
                for seed in spec.seeds
            ]
            mode = "max" if TASKS.get(task).higher_is_better else "min"
            searcher = ConcurrencyLimiter(
                OptunaSearch(metric="objective", mode=mode, seed=search.tune_seed), max_concurrent=search.max_concurrent
            )
            name = f"{spec.name}-{search.method}-{backbone}-{task}-{split}-{label_setting}".replace(":", "_")
            tuner = tune.Tuner(
                tune.with_resources(tune.with_parameters(tune_point_trainable, open_store=ResultStore), resources),
                param_space={"point": tune_space(search), "base": base, "runtime": runtime.to_dict()},
                tune_config=tune.TuneConfig(search_alg=searcher, num_samples=search.num_samples, reuse_actors=True),
                run_config=tune.RunConfig(name=name, storage_path=str(tune_root), verbose=0),
            )
            results = tuner.fit()
            errors = [r.error for r in results if r.error is not None]
            if errors:
                outcome.failed[name] = f"{len(errors)} of {len(results)} points failed; first: {errors[0]}"
            else:  # the store holds every point's trials; Tune's experiment folder is disposable
                shutil.rmtree(tune_root / name, ignore_errors=True)
            finished = [r for r in results if r.error is None and r.metrics and "objective" in r.metrics]
            outcome.points += len(finished)
            if finished:
                best = (max if mode == "max" else min)(finished, key=lambda r: r.metrics["objective"])
                outcome.best.append(
                    {
                        "method": search.method,
                        "backbone": backbone,
                        "task": task,
                        "split": split,
                        "label_setting": label_setting,
                        "point": best.config["point"],
                        "objective": best.metrics["objective"],
                    }
                )
    return outcome
