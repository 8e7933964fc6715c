from __future__ import annotations

import dataclasses

from orchestrator.store.forget import forget
from orchestrator.store.results import ResultStore
from orchestrator.sweep.plan import expand, plan_sweep
from search_spaces import parse_spec
from tests.unit.orchestrator.store.rows import make_row
from trainables.core.data_root import DataRoot
from trainables.methods.dependencies import parent_spec

SPEC = {
    "name": "p", "backbones": ["hu-gcn-contextpred", "scratch-gin"], "methods": {"full-ft": {}, "lp": {}},
    "tasks": ["esol", "bbbp"], "splits": ["scaffold", "random"], "label_settings": ["full", "fewshot:50"],
    "seeds": [0, 1, 2], "model": {"num_layers": 2, "emb_dim": 8},
}


def test_grid_size_and_unique_keys(real_env):
    trials, missing = expand(parse_spec(SPEC), DataRoot(real_env))
    assert missing == {}
    assert len(trials) == 2 * 2 * 2 * 2 * 2 * 3
    assert len({t.key() for t in trials}) == len(trials)


def test_pretrained_trials_ignore_scratch_size_and_carry_checkpoint_sha(real_env):
    trials, _ = expand(parse_spec(SPEC), DataRoot(real_env))
    hu = [t for t in trials if t.backbone == "hu-gcn-contextpred"]
    scratch = [t for t in trials if t.backbone == "scratch-gin"]
    assert all(t.num_layers is None and len(t.backbone_sha256) == 64 for t in hu)
    assert all(t.num_layers == 2 and t.emb_dim == 8 and t.backbone_sha256 == "" for t in scratch)
    # Changing the scratch size changes only scratch trials' keys.
    resized, _ = expand(parse_spec(dict(SPEC, model={"num_layers": 3, "emb_dim": 8})), DataRoot(real_env))
    old = {t.key() for t in trials}
    assert {t.key() for t in resized if t.backbone == "hu-gcn-contextpred"} <= old
    assert not ({t.key() for t in resized if t.backbone == "scratch-gin"} & old)


def test_subset_seed_follows_run_seed_when_asked(real_env):
    trials, _ = expand(parse_spec(dict(SPEC, subset_seed="run")), DataRoot(real_env))
    assert all(t.subset_seed == t.seed for t in trials)
    default, _ = expand(parse_spec(SPEC), DataRoot(real_env))
    assert all(t.subset_seed == 42 for t in default)


def test_done_trials_are_not_pending(real_env, tmp_path):
    spec = parse_spec(SPEC)
    store = ResultStore(tmp_path)
    plan = plan_sweep(spec, store, DataRoot(real_env))
    first = plan.trials[0]
    store.write_trial(make_row(first.key()))
    store.write_trial(make_row("not-in-this-sweep"))
    again = plan_sweep(spec, store, DataRoot(real_env))
    assert again.done == {first.key()}
    assert first not in again.pending and len(again.pending) == len(plan.trials) - 1
    assert "1 already in the store" in again.summary()


def test_missing_files_are_listed_not_raised(monkeypatch, tmp_path):
    (tmp_path / "moleculenet").mkdir()
    trials, missing = expand(parse_spec(SPEC), DataRoot(tmp_path))
    assert set(missing) == {"task esol", "task bbbp", "backbone hu-gcn-contextpred"}
    assert "moleculenet/esol.csv" in missing["task esol"]
    assert len(trials) == 96


# ----------------------------------------------------------------------------- dependencies

DEPENDANTS = dict(SPEC, backbones=["hu-gcn-contextpred"], tasks=["bbbp"], splits=["scaffold"],
                  label_settings=["fewshot:50"], seeds=[0, 1],
                  methods={"wise-ft": {"alpha": [0.3, 0.7]}, "roft-mol": {"groups": [1, 6]}, "lp": {}})


def test_parents_are_added_once_per_cell_and_said(real_env, tmp_path):
    plan = plan_sweep(parse_spec(DEPENDANTS), ResultStore(tmp_path), DataRoot(real_env))
    parents = [t for t in plan.trials if t.method == "full-ft"]
    assert plan.added_parents == 2 and len(parents) == 2  # one per seed, shared by 4 dependants each
    assert len(plan.trials) == 2 * (2 + 2 + 1) + 2
    assert "added 2 full-ft trials" in plan.summary()
    for trial in plan.trials:
        parent = parent_spec(trial)
        if trial.method in ("wise-ft", "roft-mol"):
            assert parent.key() in {p.key() for p in parents}
            assert (parent.seed, parent.backbone_sha256, parent.data_sha256) == (
                trial.seed, trial.backbone_sha256, trial.data_sha256)
        else:
            assert parent is None


def test_listed_parents_are_not_added_twice(real_env, tmp_path):
    listed = dict(DEPENDANTS, methods={**DEPENDANTS["methods"], "full-ft": {}})
    plan = plan_sweep(parse_spec(listed), ResultStore(tmp_path), DataRoot(real_env))
    assert plan.added_parents == 0 and "added" not in plan.summary()
    assert sum(t.method == "full-ft" for t in plan.trials) == 2
    assert len({t.key() for t in plan.trials}) == len(plan.trials)


def test_waves_run_parents_before_dependants(real_env, tmp_path):
    store = ResultStore(tmp_path)
    plan = plan_sweep(parse_spec(DEPENDANTS), store, DataRoot(real_env))
    first, second = plan.waves()
    assert {t.method for t in first} == {"full-ft", "lp"}
    assert {t.method for t in second} == {"wise-ft", "roft-mol"} and len(second) == 8
    # Once a parent is in the store, its dependants are ready in the first wave.
    seed0 = next(t for t in first if t.method == "full-ft" and t.seed == 0)
    store.write_trial(make_row(seed0.key()))
    first, second = plan_sweep(parse_spec(DEPENDANTS), store, DataRoot(real_env)).waves()
    assert {(t.method, t.seed) for t in first} == {("full-ft", 1), ("lp", 0), ("lp", 1), ("wise-ft", 0),
                                                    ("roft-mol", 0)}
    assert {(t.method, t.seed) for t in second} == {("wise-ft", 1), ("roft-mol", 1)}


def test_parent_key_depends_on_everything_but_the_method(real_env):
    trials, _ = expand(parse_spec(DEPENDANTS), DataRoot(real_env))
    wise = next(t for t in trials if t.method == "wise-ft")
    parent = parent_spec(wise)
    assert parent.method == "full-ft" and parent.method_params == {}
    assert parent_spec(dataclasses.replace(wise, method_params={"alpha": 0.9, "bn_stats": "ft"})).key() == parent.key()
    for change in ({"seed": 7}, {"subset_seed": 3}, {"label_setting": "full"}, {"backbone_sha256": "0" * 64},
                   {"recipe": dataclasses.replace(wise.recipe, epochs=3)}):
        assert parent_spec(dataclasses.replace(wise, **change)).key() != parent.key(), change


def test_known_failures_are_skipped_unless_retried(real_env, tmp_path):
    spec = parse_spec(SPEC)
    store = ResultStore(tmp_path)
    trials = plan_sweep(spec, store, DataRoot(real_env)).trials
    store.write_failure({"trial_key": trials[0].key(), "sweep": "s", "method": trials[0].method, "trial_config": "{}",
                         "error": "boom", "traceback": "boom", "failed_at": None})
    plan = plan_sweep(spec, store, DataRoot(real_env))
    assert trials[0].key() not in {t.key() for t in plan.pending} and plan.failed == {trials[0].key()}
    assert "skipped 1 trial that failed before" in plan.summary()
    retry = plan_sweep(spec, store, DataRoot(real_env), retry_failed=True)
    assert len(retry.pending) == len(trials) and not retry.failed


def test_a_dependant_that_failed_runs_again_when_its_parent_trains_again(real_env, tmp_path):
    """WiSE-FT failed for want of its parent's checkpoint; once the parent is forgotten (so this sweep trains it
    again), the failure is stale and the dependant runs after it. While the parent stays landed it is skipped."""
    spec = parse_spec(dict(DEPENDANTS, methods={"wise-ft": {"alpha": [0.5]}}, seeds=[0]))
    store = ResultStore(tmp_path)
    wise = next(t for t in plan_sweep(spec, store, DataRoot(real_env)).trials if t.method == "wise-ft")
    parent = parent_spec(wise)
    store.write_trial(make_row(parent.key()))
    store.write_failure({"trial_key": wise.key(), "sweep": "s", "method": "wise-ft", "trial_config": "{}",
                         "error": "DependencyError: no saved checkpoint", "traceback": "", "failed_at": None})
    plan = plan_sweep(spec, store, DataRoot(real_env))
    assert plan.failed == {wise.key()} and not plan.pending  # the parent landed: the failure stands
    forget(store, [parent.key()])
    plan = plan_sweep(spec, store, DataRoot(real_env))
    assert not plan.failed and [t.key() for t in plan.pending] == [parent.key(), wise.key()]
    store.write_failure({"trial_key": parent.key(), "sweep": "s", "method": "full-ft", "trial_config": "{}",
                         "error": "diverged at epoch 3", "traceback": "", "failed_at": None})
    plan = plan_sweep(spec, store, DataRoot(real_env))  # the parent failed too: both stay skipped
    assert plan.failed == {parent.key(), wise.key()} and not plan.pending
