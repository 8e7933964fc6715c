"""Planning alpha searches from the Full-FT trials of a store."""

from __future__ import annotations

import pytest

from orchestrator.store.results import ResultStore
from orchestrator.sweep.alpha import plan_alpha_searches, search_points
from tests.unit.orchestrator.store.test_results import make_row
from trainables.core.config import TrainingRecipe, TrialSpec
from trainables.methods.dependencies import parent_spec


def full_ft(seed: int, task: str = "bbbp") -> TrialSpec:
    return TrialSpec(backbone="scratch-gcn", method="full-ft", task=task, split="scaffold", label_setting="full",
                     seed=seed, subset_seed=42, recipe=TrainingRecipe(epochs=3), num_layers=5, emb_dim=8)


def commit(store: ResultStore, spec: TrialSpec, artifact_sha256: str = "ab" * 32) -> None:
    store.write_trial(make_row(spec.key(), method=spec.method, task=spec.task, seed=spec.seed,
                               backbone=spec.backbone, split=spec.split, label_setting=spec.label_setting,
                               trial_config=spec.canonical_json(), artifact_sha256=artifact_sha256))


def test_search_points_cover_methods_and_groups():
    points = search_points(["wise-ft", "roft-mol"], [1, 6], n_trials=50, search_seed=2)
    assert [(m, p.get("groups")) for m, p in points] == [("wise-ft", None), ("roft-mol", 1), ("roft-mol", 6)]
    assert all(p["search"] == "optuna" and p["n_trials"] == 50 and p["search_seed"] == 2 for _, p in points)


@pytest.mark.parametrize("args, message", [
    ((["lp"], [1], 10, 0), r"--method 'lp' is not accepted; accepted: wise-ft, roft-mol"),
    ((["roft-mol"], [1], 0, 0), r"roft-mol.n_trials=0 is not accepted; accepted: an integer from 1 to 100,000"),
    ((["roft-mol"], [0], 10, 0), r"roft-mol.groups=0 is not accepted"),
    ((["wise-ft"], [1], 10, 0, 0.5, 0.2), r"alpha range \[0.5, 0.2\] is not accepted"),
])
def test_search_point_errors_name_the_value(args, message):
    with pytest.raises(ValueError, match=message):
        search_points(*args)


def test_one_search_per_full_ft_checkpoint_and_filters(tmp_path):
    store = ResultStore(tmp_path)
    for seed in (0, 1):
        commit(store, full_ft(seed))
    commit(store, full_ft(0, task="esol"))
    commit(store, full_ft(5), artifact_sha256="")  # no kept checkpoint: not searchable
    lp = TrialSpec(**{**full_ft(0).to_dict(), "method": "lp", "recipe": TrainingRecipe(epochs=3)})
    commit(store, lp)
    points = search_points(["wise-ft", "roft-mol"], [1, 6], n_trials=20, search_seed=0)
    plan = plan_alpha_searches(store, points)
    assert len(plan.trials) == 3 * 3 and len(plan.pending) == 9
    parents = {parent_spec(t).key() for t in plan.trials}
    assert parents == {full_ft(0).key(), full_ft(1).key(), full_ft(0, task="esol").key()}
    assert all(t.method_params["search"] == "optuna" for t in plan.trials)
    # stamped with this code's revisions of roft-mol / wise-ft (not the parent's), as a worker checks
    from trainables.methods.revisions import with_revisions
    assert all(with_revisions(t) is t for t in plan.trials)
    assert plan.waves() == [plan.pending]  # parents are all in the store: one wave

    only = plan_alpha_searches(store, points, {"task": {"bbbp"}, "seed": {1}})
    assert {parent_spec(t).key() for t in only.trials} == {full_ft(1).key()}
    with pytest.raises(ValueError, match=r"unknown filter\(s\) \['method'\]"):
        plan_alpha_searches(store, points, {"method": {"x"}})


def test_done_searches_are_not_pending(tmp_path):
    store = ResultStore(tmp_path)
    commit(store, full_ft(0))
    points = search_points(["wise-ft"], [1], n_trials=20, search_seed=0)
    first = plan_alpha_searches(store, points)
    store.write_trial(make_row(first.trials[0].key()))
    assert plan_alpha_searches(store, points).pending == []
    # A larger budget is a new trial (it continues the same study).
    assert len(plan_alpha_searches(store, search_points(["wise-ft"], [1], 40, 0)).pending) == 1


@pytest.mark.parametrize("written", ["now", "before"])
def test_a_full_ft_row_without_a_checkpoint_is_not_searched_whether_null_or_empty(tmp_path, written):
    """Rows written now hold null where nothing is meant; rows of older stores hold "": both read alike,
    in alpha planning and in the worker's check of a parent checkpoint."""
    import pyarrow as pa

    from orchestrator.store.schema import OPTIONAL_TEXT_COLUMNS, TRIAL_SCHEMA
    from trainables.worker.trial import DependencyError, load_parent_state

    store = ResultStore(tmp_path)
    commit(store, full_ft(0))
    spec = full_ft(1)
    row = make_row(spec.key(), method=spec.method, task=spec.task, seed=spec.seed, backbone=spec.backbone,
                   split=spec.split, label_setting=spec.label_setting, trial_config=spec.canonical_json(),
                   **{c: "" for c in OPTIONAL_TEXT_COLUMNS})
    if written == "now":
        store.write_trial(row)
        assert store.read_trial(spec.key())["artifact_sha256"] is None
    else:
        store.write_table(pa.Table.from_pylist([row], schema=TRIAL_SCHEMA), store.path("trials", f"{spec.key()}.parquet"))
        assert store.read_trial(spec.key())["artifact_sha256"] == ""
    plan = plan_alpha_searches(store, search_points(["wise-ft"], [1], n_trials=5, search_seed=0))
    assert {parent_spec(t).key() for t in plan.trials} == {full_ft(0).key()}
    dependant = TrialSpec(**{**spec.to_dict(), "method": "wise-ft", "recipe": spec.recipe})
    with pytest.raises(DependencyError, match=r"has no saved checkpoint .*\(recorded sha256: none\)"):
        load_parent_state(dependant, store)


def test_the_saved_request_reads_back_and_roft_status_counts_its_queue(tmp_path):
    from orchestrator.sweep.alpha import AlphaRequest, plan_alpha_request, save_alpha_request
    from orchestrator.sweep.status import sweep_status
    from trainables.core.data_root import DataRoot

    store = ResultStore(tmp_path)
    for seed in (0, 1):
        commit(store, full_ft(seed))
    request = AlphaRequest(methods=("wise-ft", "roft-mol"), groups=(1, 6), n_trials=20, search_seed=3,
                           alpha_range=(0.1, 0.9), filters={"seed": (0, 1)}, cpus=2.0)
    save_alpha_request(store, request)
    save_alpha_request(store, request)  # the same request again: saved once
    [(name, text)] = store.read_specs()
    assert name == "alpha.yaml" and text.startswith("# roft alpha")
    import yaml

    from orchestrator.sweep.alpha import saved_requests
    assert saved_requests(yaml.safe_load(text)) == [request]

    plan = plan_alpha_request(store, request)
    store.write_trial(make_row(plan.trials[0].key(), sweep="alpha"))  # one search landed
    status = sweep_status(store, DataRoot(None))
    alpha = next(s for s in status.sweeps if s.name == "alpha")
    assert (alpha.spec_file, alpha.planned, alpha.done, alpha.queued, alpha.plan_error) == \
        ("specs/alpha.yaml", 6, 1, 5, "")

    commit(store, full_ft(2))  # a Full-FT trial landed since, outside the request's seeds: not queued
    assert next(s for s in sweep_status(store, DataRoot(None)).sweeps if s.name == "alpha").queued == 5


def test_searches_run_in_slices_add_up_in_the_saved_spec(tmp_path):
    """roft alpha --seed 0, then --seed 1: roft status counts both slices' searches, not the last one's; a spec
    saved as one request (before the list) still reads, and the next request is added to it."""
    import yaml

    from orchestrator.sweep.alpha import ALPHA_SWEEP, AlphaRequest, requests_yaml, save_alpha_request, saved_requests
    from orchestrator.sweep.status import sweep_status
    from trainables.core.data_root import DataRoot

    store = ResultStore(tmp_path)
    for seed in (0, 1, 2):
        commit(store, full_ft(seed))
    slices = [AlphaRequest(methods=("wise-ft",), n_trials=20, filters={"seed": (seed,)}) for seed in (0, 1)]
    store.write_spec(ALPHA_SWEEP, yaml.safe_dump({"name": "alpha", "alpha_search": slices[0].to_body()}).encode())
    assert saved_requests(yaml.safe_load(dict(store.read_specs())["alpha.yaml"])) == slices[:1]
    save_alpha_request(store, slices[1])
    assert saved_requests(yaml.safe_load(dict(store.read_specs())["alpha.yaml"])) == slices
    alpha = next(s for s in sweep_status(store, DataRoot(None)).sweeps if s.name == "alpha")
    assert (alpha.planned, alpha.queued, alpha.plan_error) == (2, 2, "")  # seeds 0 and 1, not seed 2
    assert requests_yaml(slices).count("- methods:") == 2


def test_a_saved_request_with_an_unknown_key_is_reported_on_its_sweep_line(tmp_path):
    from orchestrator.sweep.status import sweep_status
    from trainables.core.data_root import DataRoot

    store = ResultStore(tmp_path)
    commit(store, full_ft(0))
    store.write_spec("alpha", b"name: alpha\nalpha_search: {methods: [wise-ft], budget: 3}\n")
    alpha = next(s for s in sweep_status(store, DataRoot(None)).sweeps if s.name == "alpha")
    assert alpha.queued is None and "unknown key(s) ['budget']" in alpha.plan_error


def test_gpus_per_search_trial_reach_the_plan_and_a_request_without_them_reads_as_before(tmp_path):
    from orchestrator.sweep.alpha import AlphaRequest, plan_alpha_request

    store = ResultStore(tmp_path)
    commit(store, full_ft(0))
    on_gpu = AlphaRequest(methods=("wise-ft",), n_trials=2, gpus=0.125)
    assert on_gpu.to_body()["gpus"] == 0.125 and AlphaRequest.from_body(on_gpu.to_body()) == on_gpu
    assert plan_alpha_request(store, on_gpu).spec.resources.gpu == 0.125
    on_cpu = AlphaRequest(methods=("wise-ft",), n_trials=2)
    assert "gpus" not in on_cpu.to_body()  # the stores' saved requests keep their text
    assert plan_alpha_request(store, on_cpu).spec.resources.gpu == 0.0
