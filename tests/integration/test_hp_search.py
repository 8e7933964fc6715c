"""A searched method through real Ray Tune + OptunaSearch: rows land, reruns continue the study."""

from __future__ import annotations

import io
import json

import pytest

from orchestrator.store.results import ResultStore
from orchestrator.sweep.execute import run_sweep
from orchestrator.sweep.plan import plan_sweep
from search_spaces import parse_spec
from trainables.core.config import Runtime
from trainables.core.data_root import DataRoot

pytestmark = [pytest.mark.slow, pytest.mark.data]


def searched(num_samples: int) -> dict:
    return {
        "name": "search",
        "backbones": ["scratch-gcn"],
        "methods": {"l2-sp": {"tune": "optuna", "num_samples": num_samples, "d": {"log_uniform": [1.0e-4, 1.0]},
                              "grad_clip": 5.0}},
        "tasks": ["esol"],
        "splits": ["scaffold"],
        "label_settings": ["fewshot:16"],
        "seeds": [0, 1],
        "training": {"epochs": 1, "batch_size": 8},
        "model": {"num_layers": 2, "emb_dim": 8},
        "resources": {"cpu": 1},
    }


def test_optuna_search_lands_rows_and_continues_where_it_stopped(ray_session, real_env, tmp_path):
    store = ResultStore(tmp_path / "store")
    runtime = Runtime(store=str(store.root), sweep="search", data_root=DataRoot(real_env), code_version="test")

    def run(num_samples: int):
        spec = parse_spec(searched(num_samples))
        outcome = run_sweep(plan_sweep(spec, store, DataRoot(real_env)), store, runtime, stream=io.StringIO())
        assert outcome.failed == {}
        return outcome

    first = run(3)
    rows = store.read_trials().to_pandas()
    assert len(rows) == 3 * 2 and set(rows.method) == {"l2-sp"} and set(rows.seed) == {0, 1}
    points = {json.loads(p)["d"] for p in rows.method_params}
    assert len(points) == 3 and all(1e-4 <= d <= 1.0 for d in points)
    assert all(json.loads(p)["grad_clip"] == 5.0 for p in rows.method_params)  # fixed values stay fixed
    (best,) = first.searches.best
    by_point = rows.groupby(rows.method_params.map(lambda p: json.loads(p)["d"])).val_metric.mean()
    assert best["objective"] == pytest.approx(by_point.min())  # RMSE: lower is better
    assert best["point"]["d"] == pytest.approx(by_point.idxmin())

    again = run(3)  # the same seeded proposals: every point is found in the store
    assert again.searches.points == 3 and len(store.read_trials()) == 6

    run(4)  # one more sample continues the study: exactly one new point, both seeds
    rows = store.read_trials().to_pandas()
    assert len(rows) == 8 and len({json.loads(p)["d"] for p in rows.method_params}) == 4
