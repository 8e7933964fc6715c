from __future__ import annotations

from datetime import datetime, timezone

import pytest

from orchestrator.plan import expand, plan_sweep
from orchestrator.store import ResultStore
from search_spaces import parse_spec
from tests.unit.orchestrator.test_store import make_row

SPEC = {
    "name": "p", "backbones": ["hu-gcn-contextpred", "scratch-gin"], "methods": {"full-ft": {}, "lp": {}},
    "tasks": ["esol", "bbbp"], "splits": ["scaffold", "random"], "label_settings": ["full", "fewshot:50"],
    "seeds": [0, 1, 2], "model": {"num_layers": 2, "emb_dim": 8},
}


def test_grid_size_and_unique_keys(real_env):
    trials, missing = expand(parse_spec(SPEC), str(real_env))
    assert missing == {}
    assert len(trials) == 2 * 2 * 2 * 2 * 2 * 3
    assert len({t.key() for t in trials}) == len(trials)


def test_pretrained_trials_ignore_scratch_size_and_carry_checkpoint_sha(real_env):
    trials, _ = expand(parse_spec(SPEC), str(real_env))
    hu = [t for t in trials if t.backbone == "hu-gcn-contextpred"]
    scratch = [t for t in trials if t.backbone == "scratch-gin"]
    assert all(t.num_layers is None and len(t.backbone_sha256) == 64 for t in hu)
    assert all(t.num_layers == 2 and t.emb_dim == 8 and t.backbone_sha256 == "" for t in scratch)
    # Changing the scratch size changes only scratch trials' keys.
    resized, _ = expand(parse_spec(dict(SPEC, model={"num_layers": 3, "emb_dim": 8})), str(real_env))
    old = {t.key() for t in trials}
    assert {t.key() for t in resized if t.backbone == "hu-gcn-contextpred"} <= old
    assert not ({t.key() for t in resized if t.backbone == "scratch-gin"} & old)


def test_subset_seed_follows_run_seed_when_asked(real_env):
    trials, _ = expand(parse_spec(dict(SPEC, subset_seed="run")), str(real_env))
    assert all(t.subset_seed == t.seed for t in trials)
    default, _ = expand(parse_spec(SPEC), str(real_env))
    assert all(t.subset_seed == 42 for t in default)


def test_done_trials_are_not_pending(real_env, tmp_path):
    spec = parse_spec(SPEC)
    store = ResultStore(tmp_path)
    plan = plan_sweep(spec, store, str(real_env))
    first = plan.trials[0]
    store.write_trial(make_row(first.key()))
    store.write_trial(make_row("not-in-this-sweep"))
    again = plan_sweep(spec, store, str(real_env))
    assert again.done == {first.key()}
    assert first not in again.pending and len(again.pending) == len(plan.trials) - 1
    assert "1 already in the store" in again.summary()


def test_missing_files_are_listed_not_raised(monkeypatch, tmp_path):
    (tmp_path / "moleculenet").mkdir()
    trials, missing = expand(parse_spec(SPEC), str(tmp_path))
    assert set(missing) == {"task esol", "task bbbp", "backbone hu-gcn-contextpred"}
    assert "moleculenet/esol.csv" in missing["task esol"]
    assert len(trials) == 96
