from orchestrator.store.results import ResultStore
from orchestrator.sweep.plan import plan_sweep
from orchestrator.sweep.searches import tune_space
from search_spaces import parse_spec
from trainables.core.data_root import DataRoot


def test_distributions_become_tune_domains():
    from ray.tune.search.sample import Categorical, Float, Integer

    spec = parse_spec({"name": "s", "backbones": ["scratch-gin"], "tasks": ["bbbp"], "splits": ["scaffold"],
                       "label_settings": ["full"], "seeds": [0],
                       "methods": {"bss": {"tune": "optuna", "d": {"log_uniform": [1e-4, 1.0]}, "k": {"int": [1, 3]},
                                           "d_head": {"choice": [0.0, 0.01]}}}})
    space = tune_space(spec.searches[0])
    assert isinstance(space["d"], Float) and (space["d"].lower, space["d"].upper) == (1e-4, 1.0)
    assert isinstance(space["k"], Integer) and (space["k"].lower, space["k"].upper) == (1, 4)  # high included
    assert isinstance(space["d_head"], Categorical) and space["d_head"].categories == [0.0, 0.01]


def test_a_searched_dependant_gets_its_parents_planned(tmp_path):
    spec = parse_spec({"name": "s", "backbones": ["scratch-gcn"], "tasks": ["bbbp", "esol"], "splits": ["scaffold"],
                       "label_settings": ["fewshot:16"], "seeds": [0, 1],
                       "methods": {"roft-mol": {"tune": "optuna", "num_samples": 5,
                                                "alpha_lr": {"log_uniform": [1e-3, 1e-1]}, "epochs": 2}}})
    plan = plan_sweep(spec, ResultStore(tmp_path), DataRoot.from_setting())
    assert [t.method for t in plan.trials] == ["full-ft"] * 4 and plan.added_parents == 4
    summary = plan.summary()
    assert "search roft-mol: optuna over alpha_lr ~ log_uniform[0.001, 0.1], 5 samples (seed 0)" in summary
    assert "x 2 seeds, in each of 2 cells" in summary
