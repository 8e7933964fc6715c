"""Optuna search of interpolation coefficients, evaluation only.

The objective of a point ``alpha in [lo, hi]^g`` is the validation metric of theta(alpha) (see
:mod:`trainables.methods.interpolation`); nothing trains. The sampler is TPE with a fixed seed,
so the same seed, history and budget give the same alphas.

A study is identified by its name (derived from the Full-FT trial key and the search's
settings, never from its budget), so raising ``n_trials`` *continues* it: with a persistent
Optuna storage (a JournalStorage file, safe on a shared filesystem, or an RDB URL) the study is
loaded from there; with the default in-memory storage, the points already recorded in the
results store's ``alpha_trials`` table are added to the new study first. Either way only
``n_trials - len(done)`` new points are evaluated.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

STUDY_DIRECTIONS = ("maximize", "minimize")


@dataclass(frozen=True)
class AlphaPoint:
    """One evaluated point of a study: its number, alphas ``(g,)``, and val / test metrics."""

    number: int
    alphas: tuple[float, ...]
    val: float
    test: float


def open_storage(location: str | None):
    """An Optuna storage: None -> in memory; ``scheme://...`` -> RDB URL; anything else -> journal file."""
    import optuna

    if location is None:
        return optuna.storages.InMemoryStorage()
    if "://" in location:
        return optuna.storages.RDBStorage(location)
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(location))


def check_range(low: float, high: float) -> None:
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"alpha range [{low}, {high}] is not accepted; accepted: finite low < high, e.g. [0, 1]")


def search_alphas(
    evaluate: Callable[[Sequence[float]], tuple[float, float]],
    *,
    groups: int,
    n_trials: int,
    seed: int,
    direction: str,
    study_name: str,
    storage=None,
    low: float = 0.0,
    high: float = 1.0,
    prior: Sequence[AlphaPoint] = (),
    evaluate_many: Callable[[list[tuple[float, ...]]], list[tuple[float, float]]] | None = None,
) -> tuple[AlphaPoint, list[AlphaPoint], list[AlphaPoint]]:
    """Run (or continue) a study until it holds ``n_trials`` complete points.

    ``evaluate(alphas) -> (val, test)``; the study optimises val in ``direction``; test is kept
    as a user attribute. ``prior`` points are added first when the study does not hold them yet
    (in-memory continuation). Returns ``(best point, points evaluated now, every point)``.

    ``evaluate_many(list of alphas) -> [(val, test)]`` (optional) scores several points in one
    batched pass. TPE draws its first ``n_startup_trials`` points at random, independently of the
    scores, so those are asked together, scored in one batch and told: the same points, in the
    same order, as one by one; later points depend on the scores and are asked one at a time.
    """
    import optuna

    if direction not in STUDY_DIRECTIONS:
        raise ValueError(f"direction {direction!r} is not accepted; accepted: {', '.join(STUDY_DIRECTIONS)}")
    if groups < 1 or n_trials < 1:
        raise ValueError(f"groups={groups} and n_trials={n_trials} must both be >= 1")
    check_range(low, high)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names = [f"alpha_{g}" for g in range(groups)]
    distribution = optuna.distributions.FloatDistribution(low, high)
    study = optuna.create_study(
        study_name=study_name,
        storage=storage if storage is not None else None,
        sampler=optuna.samplers.TPESampler(seed=seed),
        direction=direction,
        load_if_exists=True,
    )
    if not _complete(study) and prior:
        study.add_trials(
            [
                optuna.trial.create_trial(
                    params=dict(zip(names, p.alphas)),
                    distributions={n: distribution for n in names},
                    value=p.val,
                    user_attrs={"test": p.test},
                )
                for p in prior
                if len(p.alphas) == groups and math.isfinite(p.val)
            ]
        )
    evaluated: list[AlphaPoint] = []
    calls = [0]
    if evaluate_many is not None:
        batch = min(STARTUP_TRIALS - len(_finished(study)), n_trials - len(_complete(study)))
        if batch > 0:
            _startup_batch(study, batch, names, distribution, evaluate_many, evaluated, calls)

    def objective(trial) -> float:
        calls[0] += 1
        alphas = tuple(trial.suggest_float(name, low, high) for name in names)
        val, test = evaluate(alphas)
        if not math.isfinite(val):
            raise optuna.TrialPruned(f"validation metric {val} at alphas {alphas}")  # not a complete point
        trial.set_user_attr("test", test)
        evaluated.append(AlphaPoint(trial.number, alphas, val, test))
        return val

    # Processes sharing a study stop when it holds n_trials complete points (MaxTrialsCallback);
    # points without a finite metric do not count, up to n_trials of them.
    stop = optuna.study.MaxTrialsCallback(n_trials, states=(optuna.trial.TrialState.COMPLETE,))
    while (missing := n_trials - len(_complete(study))) > 0 and calls[0] < 2 * n_trials:
        made = calls[0]
        study.optimize(objective, n_trials=missing, callbacks=[stop], gc_after_trial=False)
        if calls[0] == made:
            break
    points = [
        AlphaPoint(t.number, tuple(t.params[n] for n in names), t.value, t.user_attrs.get("test", math.nan))
        for t in _complete(study)
    ][:n_trials]  # a larger study answers a smaller budget with its first points
    if not points:
        raise RuntimeError(f"study {study_name}: no point produced a finite validation metric")
    pick = max if direction == "maximize" else min
    best_point = pick(points, key=lambda p: p.val)  # ties: the earliest point
    return best_point, evaluated, points


STARTUP_TRIALS = 10  # TPESampler's default n_startup_trials: points drawn at random before TPE models the scores


def _startup_batch(
    study, batch: int, names: list[str], distribution, evaluate_many, evaluated: list[AlphaPoint], calls: list[int]
) -> None:
    """Ask ``batch`` startup points, score them in one pass, tell them (see :func:`search_alphas`)."""
    import optuna

    trials = [study.ask({name: distribution for name in names}) for _ in range(batch)]
    points = [tuple(trial.params[name] for name in names) for trial in trials]
    calls[0] += batch
    for trial, alphas, (val, test) in zip(trials, points, evaluate_many(points)):
        if not math.isfinite(val):
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        trial.set_user_attr("test", test)
        study.tell(trial, val)
        evaluated.append(AlphaPoint(trial.number, alphas, val, test))


def _finished(study):
    import optuna

    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))


def _complete(study):
    import optuna

    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
