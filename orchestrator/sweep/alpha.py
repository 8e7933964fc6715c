"""``roft alpha``: Optuna searches of interpolation coefficients over the Full-FT checkpoints in a store.

For every committed ``full-ft`` trial (a cell x seed) that kept its checkpoint and matches the
filters, one search trial per requested method point is planned: ``wise-ft`` (one global
alpha) and/or ``roft-mol`` (one alpha per group, for each requested group count), each with
``search: optuna``. They are ordinary dependant trials (:mod:`trainables.methods.dependencies`): their
key derives from the FT trial's spec, the store deduplicates them, and they run through the
same sweep path as ``roft sweep`` (Ray Tune, local or ``--address``). Raising ``n_trials``
makes new search trials that continue the same studies (see :mod:`trainables.methods.alpha_search`).

What ``roft alpha`` was asked for (:class:`AlphaRequest`) is saved as its sweep's spec
(``specs/alpha.yaml``, under an ``alpha_search:`` key: every distinct request made on the store, so
that searches run in slices, one ``--task`` or ``--seed`` at a time, add up), and ``roft status``
plans them again and counts their queue: the search trials of every matching Full-FT checkpoint in
the store that have no row yet (Full-FT trials that landed since count too: rerunning ``roft alpha``
runs them).
Planning it reads the store's Full-FT rows (on object storage, every row until ``roft store compact``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from orchestrator.store.results import ResultStore
from orchestrator.sweep.plan import SweepPlan
from search_spaces.spec import Execution, Resources, SweepSpec
from trainables.core.config import TrialSpec
from trainables.methods import METHODS
from trainables.methods.dependencies import parent_spec
from trainables.methods.revisions import with_revisions

SEARCHABLE = ("wise-ft", "roft-mol")
FILTER_COLUMNS = ("backbone", "task", "split", "label_setting", "seed")
ALPHA_SWEEP = "alpha"  # the sweep name of roft alpha's trials and of its saved spec
SPEC_KEY = "alpha_search"  # the key that marks a saved spec as an alpha search


@dataclass(frozen=True)
class AlphaRequest:
    """What ``roft alpha`` was asked for: the searched method points and the Full-FT trials they start from."""

    methods: tuple[str, ...] = SEARCHABLE
    groups: tuple[int, ...] = (1, 2, 3, 6)
    n_trials: int = 100
    search_seed: int = 0
    alpha_range: tuple[float, float] = (0.0, 1.0)
    filters: dict[str, tuple] = field(default_factory=dict)  # FILTER_COLUMNS -> accepted values
    cpus: float = 1.0
    gpus: float = 0.0  # GPUs per search trial (fractions share one); a search trains on a GPU only with some

    def points(self) -> list[tuple[str, dict[str, Any]]]:
        return search_points(self.methods, self.groups, self.n_trials, self.search_seed, *self.alpha_range)

    def to_body(self) -> dict[str, Any]:
        """The request as saved in the store's ``specs/alpha.yaml`` (:func:`requests_yaml`)."""
        return {
            "methods": list(self.methods),
            "groups": list(self.groups),
            "n_trials": self.n_trials,
            "search_seed": self.search_seed,
            "alpha_range": list(self.alpha_range),
            "filters": {k: list(v) for k, v in self.filters.items()},
            "cpus": self.cpus,
            **({"gpus": self.gpus} if self.gpus else {}),  # requests saved before the option read the same
        }

    @classmethod
    def from_body(cls, body: Any) -> AlphaRequest:
        """A request as saved (:meth:`to_body`); :class:`ValueError` naming what is wrong."""
        accepted = ", ".join(f.name for f in dataclasses.fields(cls))
        if not isinstance(body, dict):
            raise ValueError(f"{SPEC_KEY}: {body!r} is not accepted; accepted: a mapping of {accepted}")
        unknown = sorted(set(body) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"{SPEC_KEY}: unknown key(s) {unknown}; accepted: {accepted}")
        try:
            return cls(
                **{
                    **body,
                    "methods": tuple(body.get("methods", SEARCHABLE)),
                    "groups": tuple(body.get("groups", cls.groups)),
                    "alpha_range": tuple(body.get("alpha_range", cls.alpha_range)),
                    "filters": {k: tuple(v) for k, v in (body.get("filters") or {}).items()},
                }
            )
        except TypeError as exc:
            raise ValueError(f"{SPEC_KEY}: {exc}") from None


def is_alpha_spec(raw: Any) -> bool:
    """Whether a saved spec (parsed YAML) is ``roft alpha``'s (:func:`requests_yaml`)."""
    return isinstance(raw, dict) and SPEC_KEY in raw


def requests_yaml(requests: Iterable[AlphaRequest]) -> str:
    """The saved spec: ``alpha_search:`` and the list of requests, in the store's ``specs/alpha.yaml``."""
    return (
        "# roft alpha: Optuna searches of interpolation alphas over the store's Full-FT checkpoints\n"
        + yaml.safe_dump({"name": ALPHA_SWEEP, SPEC_KEY: [request.to_body() for request in requests]}, sort_keys=False)
    )


def saved_requests(raw: Any) -> list[AlphaRequest]:
    """The requests of a saved spec (parsed YAML; one mapping, as stores saved before the list, is one
    request); :class:`ValueError` naming what is wrong."""
    body = raw.get(SPEC_KEY) if isinstance(raw, dict) else None
    if body is None:
        raise ValueError(f"not an alpha search: no {SPEC_KEY!r} key")
    return [AlphaRequest.from_body(one) for one in (body if isinstance(body, list) else [body])]


def plan_alpha_request(store: ResultStore, request: AlphaRequest) -> SweepPlan:
    """The plan of ``request`` against the Full-FT checkpoints that ``store`` holds now."""
    return plan_alpha_searches(
        store,
        request.points(),
        {k: set(v) for k, v in request.filters.items()},
        resources=Resources(cpu=request.cpus, gpu=request.gpus),
    )


def save_alpha_request(store: ResultStore, request: AlphaRequest) -> None:
    """Add the request to the sweep's spec (``specs/alpha.yaml``: every distinct request made on the store),
    for ``roft status`` and reports. A saved spec that cannot be read is replaced by this request alone."""
    saved = dict(store.read_specs()).get(f"{ALPHA_SWEEP}.yaml")
    try:
        requests = saved_requests(yaml.safe_load(saved)) if saved is not None else []
    except (ValueError, yaml.YAMLError):
        requests = []
    if request not in requests:
        store.write_spec(ALPHA_SWEEP, requests_yaml([*requests, request]).encode())


def saved_request_keys(store: ResultStore, raw: Any) -> set[str]:
    """The keys of a saved spec's search trials (parsed YAML) against the store's Full-FT checkpoints now:
    the union over its requests."""
    return {trial.key() for request in saved_requests(raw) for trial in plan_alpha_request(store, request).trials}


def search_points(
    methods: Iterable[str], groups: Iterable[int], n_trials: int, search_seed: int, low: float = 0.0, high: float = 1.0
) -> list[tuple[str, dict[str, Any]]]:
    """(method, validated params) of every requested search; errors name the value and what is accepted."""
    points = []
    for method in methods:
        if method not in SEARCHABLE:
            raise ValueError(f"--method {method!r} is not accepted; accepted: {', '.join(SEARCHABLE)}")
        common = {
            "search": "optuna",
            "n_trials": n_trials,
            "search_seed": search_seed,
            "alpha_low": low,
            "alpha_high": high,
        }
        for extra in [{}] if method == "wise-ft" else [{"groups": g} for g in groups]:
            points.append((method, METHODS.get(method).validate_params({**common, **extra})))
    return points


def plan_alpha_searches(
    store: ResultStore,
    points: list[tuple[str, dict[str, Any]]],
    filters: dict[str, set] | None = None,
    name: str = ALPHA_SWEEP,
    resources: Resources = Resources(),
    execution: Execution = Execution(),
) -> SweepPlan:
    """One search trial per (matching Full-FT trial with a kept checkpoint) x (method point)."""
    filters = {k: v for k, v in (filters or {}).items() if v}
    unknown = sorted(set(filters) - set(FILTER_COLUMNS))
    if unknown:
        raise ValueError(f"unknown filter(s) {unknown}; accepted: {', '.join(FILTER_COLUMNS)}")
    rows = store.read_trials(
        columns=["trial_key", "method", "trial_config", "artifact_sha256", *FILTER_COLUMNS]
    ).to_pylist()
    trials: list[TrialSpec] = []
    for row in sorted(rows, key=lambda r: r["trial_key"]):
        if row["method"] != "full-ft" or not row["artifact_sha256"]:
            continue
        if any(row[column] not in values for column, values in filters.items()):
            continue
        parent = TrialSpec.from_dict(json.loads(row["trial_config"]))
        for method, params in points:
            trial = with_revisions(dataclasses.replace(parent, method=method, method_params=dict(params)))
            own_parent = parent_spec(trial)
            if own_parent is None or own_parent.key() != row["trial_key"]:
                raise RuntimeError(f"store row {row['trial_key']} does not match the key of its own trial_config")
            trials.append(trial)
    spec = SweepSpec(
        name=name,
        backbones=(),
        methods=tuple(points),
        tasks=(),
        splits=(),
        label_settings=(),
        seeds=(),
        resources=resources,
        execution=execution,
        source="roft alpha",
    )
    return SweepPlan(spec=spec, trials=trials, done=store.done_keys() & {t.key() for t in trials})
