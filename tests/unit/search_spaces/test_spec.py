from __future__ import annotations

from pathlib import Path

import pytest

from search_spaces import SpecError, load_spec, parse_spec

BUNDLED = sorted((Path(__file__).resolve().parents[3] / "search_spaces").glob("*.yaml"))
VALID = {"name": "s", "backbones": ["scratch-gin"], "methods": {"full-ft": {}}, "tasks": ["esol"],
         "splits": ["scaffold"], "label_settings": ["full"], "seeds": [0]}


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.name)
def test_every_bundled_spec_validates(path):
    spec = load_spec(path)
    assert spec.backbones and spec.methods and spec.tasks


def test_bundled_spec_found_by_name():
    assert load_spec("mini.yaml").name == "mini"


def test_mini_spec_is_the_demo_the_readme_promises():
    from trainables.data.tasks import TASKS, TaskType
    from trainables.models.backbones import BACKBONES

    spec = load_spec("mini.yaml")
    kinds = {BACKBONES.get(b).pretraining for b in spec.backbones}
    assert "none" in kinds and kinds - {"none"}  # pre-trained against random-init
    assert [m for m, _ in spec.methods] == ["lp"]
    assert {TASKS.get(t).task_type for t in spec.tasks} == {TaskType.CLASSIFICATION}
    assert len(spec.seeds) == 3 and spec.label_settings == ("full",)


def errors_of(raw) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    return info.value.errors


def test_unknown_keys_and_values_name_path_and_accepted_values():
    errors = errors_of(dict(VALID, backbones=["scratch-gni"], splits=["scafold"], tasks=["bbbp", "tox"],
                            trainig={"epochs": 3}, training={"epoch": 3}))
    text = "\n".join(errors)
    assert "(top level): unknown key 'trainig' (did you mean 'training'?)" in text
    assert "backbones[0]: unknown value 'scratch-gni'" in text and "scratch-gin" in text
    assert "splits[0]: unknown value 'scafold' (did you mean 'scaffold'?); accepted: scaffold, size, random" in text
    assert "tasks[1]: unknown value 'tox'" in text
    assert "training: unknown key 'epoch' (did you mean 'epochs'?)" in text
    assert len(errors) == 5


def test_method_and_hyperparameter_errors():
    text = "\n".join(errors_of(dict(VALID, methods={"l2sp": {}, "lp": {"freeze_bn_stats": ["yes"], "d": [1]}})))
    assert "methods: unknown method 'l2sp'" in text and "full-ft, lp" in text
    assert "lp.freeze_bn_stats='yes' is not accepted; accepted: one of [False, True]" in text
    assert "methods.lp: unknown hyper-parameter 'd'" in text


def test_method_grid_expands_cartesian():
    spec = parse_spec(dict(VALID, methods={"lp": {"freeze_bn_stats": [False, True]}, "full-ft": None}))
    assert spec.methods == (("lp", {"freeze_bn_stats": False}), ("lp", {"freeze_bn_stats": True}),
                            ("full-ft", {}))


def test_reference_exact_starts_every_grid_from_the_reference_settings():
    methods = {"l2-sp": {"d": [0.1, 0.01]}, "lp-ft": {"copy_best_head": True}, "roft-mol": {"groups": 1},
               "full-ft": {}}
    plain = dict(parse_spec(dict(VALID, methods=methods)).methods[i] for i in (0, 2, 3))
    exact = parse_spec(dict(VALID, methods=methods, reference_exact=True)).methods
    l2sp = [params for name, params in exact if name == "l2-sp"]
    assert [(p["d"], p["l2sp_scope"], p["double_forward"]) for p in l2sp] == [(0.1, "all", True), (0.01, "all", True)]
    assert dict(exact)["lp-ft"]["copy_best_head"] is True  # a value the grid gives wins
    assert dict(exact)["roft-mol"]["tied_updates"] == "repeated" and plain["roft-mol"]["tied_updates"] == "once"
    assert dict(exact)["full-ft"] == {}
    assert "reference_exact: 'yes' is not accepted; accepted: true or false" in "\n".join(
        errors_of(dict(VALID, reference_exact="yes")))


@pytest.mark.parametrize("settings, message", [
    (["fewshot:0"], "label_settings[0]: invalid label setting 'fewshot:0'"),
    (["ratio:2"], "label_settings[0]: invalid label setting 'ratio:2'"),
    (["some"], "accepted: 'full', 'fewshot:N'"),
])
def test_label_setting_errors(settings, message):
    assert message in "\n".join(errors_of(dict(VALID, label_settings=settings)))


def test_seeds_forms():
    assert parse_spec(dict(VALID, seeds={"range": [0, 5]})).seeds == (0, 1, 2, 3, 4)
    assert "seeds:" in errors_of(dict(VALID, seeds=[-1]))[0]
    assert "seeds:" in errors_of(dict(VALID, seeds="0"))[0]


def test_numbers_and_required_keys():
    raw = dict(VALID, training={"epochs": 0, "lr": "fast"}, resources={"gpu": -1})
    del raw["tasks"]
    text = "\n".join(errors_of(raw))
    assert "tasks: required key is missing" in text
    assert "training.epochs: 0 is not accepted; accepted: an integer from 1 to 100,000" in text
    assert "training.lr: 'fast' is not accepted" in text
    assert "resources.gpu: -1 is not accepted" in text


def test_fractional_gpu_and_subset_seed():
    spec = parse_spec(dict(VALID, resources={"cpu": 2, "gpu": 0.25}, subset_seed="run"))
    assert spec.resources.gpu == 0.25 and spec.subset_seed == "run"
    assert "subset_seed" in errors_of(dict(VALID, subset_seed="always"))[0]


def test_bad_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(bad)
    bad.write_text("name: x\nmethods:\n  full-ft: {}\n  lp: [unclosed\nseeds: [0]\n")
    with pytest.raises(SpecError, match=r"not valid YAML(.|\n)*line 4, column 7"):  # where the error is
        load_spec(bad)
    with pytest.raises(FileNotFoundError, match="bundled specs: cluster-check.yaml, methods.yaml, mini.yaml, paper.yaml"):
        load_spec(tmp_path / "nope.yaml")


# --------------------------------------------------------------------------- searched methods

def _searched(**grid):
    return {"name": "s", "backbones": ["scratch-gin"], "methods": {"full-ft": {}, "l2-sp": {"tune": "optuna", **grid}},
            "tasks": ["bbbp"], "splits": ["scaffold"], "label_settings": ["full"], "seeds": [0, 1]}


def test_a_searched_method_is_parsed_into_a_search_not_grid_points():
    spec = parse_spec(_searched(num_samples=7, tune_seed=3, d={"log_uniform": [1e-4, 1]}, grad_clip=5,
                                l2sp_scope={"choice": ["backbone", "all"]}))
    assert spec.methods == (("full-ft", {}),)
    (search,) = spec.searches
    assert (search.method, search.num_samples, search.tune_seed, search.max_concurrent) == ("l2-sp", 7, 3, 1)
    assert search.fixed == (("grad_clip", 5.0),)
    assert search.space == (("d", "log_uniform", (1e-4, 1.0)), ("l2sp_scope", "choice", ("backbone", "all")))


@pytest.mark.parametrize("grid, message", [
    ({"d": {"log_uniform": [0.0, 1.0]}}, "low 0.0 must be > 0"),
    ({"d": {"uniform": [1.0, 0.1]}}, "must be below high"),
    ({"d": {"int": [1, 3]}}, "float-valued; accepted: uniform, log_uniform or choice"),
    ({"d": {"normal": [0, 1]}}, "accepted: one of {uniform"),
    ({"d": [0.1, 0.01]}, "takes a distribution, not a list"),
    ({"d": {"uniform": [-1.0, 1.0]}}, "l2-sp.d=-1.0 is not accepted"),
    ({"x": {"uniform": [0.0, 1.0]}}, "unknown hyper-parameter 'x'"),
    ({"d": {"uniform": [0.0, 1.0]}, "num_samples": 0}, "num_samples: 0 is not accepted"),
    ({"grad_clip": 5}, "needs at least one hyper-parameter distribution"),
])
def test_bad_searches_are_clear_errors(grid, message):
    with pytest.raises(SpecError) as info:
        parse_spec(_searched(**grid))
    assert message in str(info.value)


def test_only_optuna_searches():
    raw = _searched(d={"uniform": [0.0, 1.0]})
    raw["methods"]["l2-sp"]["tune"] = "hyperopt"
    with pytest.raises(SpecError, match="tune: 'hyperopt' is not accepted; accepted: optuna"):
        parse_spec(raw)


def test_gpu_speed_options_of_execution():
    spec = parse_spec({**VALID, "execution": {"tf32": True, "compile": True, "dropout_streams": "group",
                                              "precision": "bf16", "aggregation": "csr"}})
    engine = spec.execution.engine
    assert (engine.tf32, engine.compile) == (True, True)
    assert (engine.dropout_streams, engine.precision) == ("group", "bf16")
    assert engine.aggregation == "csr"
    assert (parse_spec(VALID).execution.engine.precision, parse_spec(VALID).execution.engine.aggregation) == (
        "fp32", "scatter")
    errors = errors_of({**VALID, "execution": {"precision": "fp16", "dropout_streams": "shared",
                                               "aggregation": "coo"}})
    assert any("execution.precision" in e and "fp16" in e and "fp32, bf16" in e for e in errors)
    assert any("execution.dropout_streams" in e and "per-trial, group" in e for e in errors)
    assert any("execution.aggregation" in e and "'coo'" in e and "scatter, csr" in e for e in errors)


def test_the_tracker_of_execution():
    assert parse_spec(VALID).execution.tracker is None
    assert parse_spec({**VALID, "execution": {"tracker": "mlflow"}}).execution.tracker == "mlflow"
    uri = "mlflow=http://127.0.0.1:5000"
    assert parse_spec({**VALID, "execution": {"tracker": uri}}).execution.tracker == uri
    for bad in ("wandb", "mlflow=", True):
        errors = errors_of({**VALID, "execution": {"tracker": bad}})
        assert any(f"execution.tracker: {bad!r} is not accepted; accepted: mlflow, or mlflow=TRACKING_URI" in e
                   for e in errors), errors
