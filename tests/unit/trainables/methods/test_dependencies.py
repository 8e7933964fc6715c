"""Trial dependencies: parent specs, and dependants refusing missing or mismatched checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from orchestrator.store.forget import forget
from orchestrator.store.results import ResultStore
from search_spaces.spec import SpecError, parse_spec
from trainables.core.config import Runtime, TrainingRecipe, TrialSpec
from trainables.core.data_root import DataRoot
from trainables.methods.dependencies import parent_methods, parent_spec
from trainables.methods.revisions import with_revisions
from trainables.worker.trial import DependencyError, execute_trial, load_parent_state, save_artifact


def spec(method: str, **params) -> TrialSpec:
    return with_revisions(TrialSpec(
        backbone="scratch-gcn", method=method, task="bbbp", split="scaffold", label_setting="fewshot:50", seed=0,
        subset_seed=42, recipe=TrainingRecipe(epochs=2), method_params=params, num_layers=2, emb_dim=8))


def test_parent_spec_and_parent_methods():
    assert parent_methods() == {"full-ft"}
    assert parent_spec(spec("lp")) is None and parent_spec(spec("full-ft")) is None
    parent = parent_spec(spec("roft-mol", groups=3))
    assert parent == spec("full-ft")
    assert parent is parent_spec(spec("wise-ft", alpha=0.1))  # one shared object per cell


def test_missing_parent_row_is_refused(tmp_path):
    with pytest.raises(DependencyError, match=r"wise-ft trial \w+ needs its full-ft parent trial \w+, which is "
                                              r"not in the store"):
        load_parent_state(spec("wise-ft"), ResultStore(tmp_path))


def _commit_parent(store: ResultStore, state: dict, sha: str | None = None) -> str:
    from tests.unit.orchestrator.store.test_results import make_row

    key = spec("full-ft").key()
    path, digest = save_artifact(store, key, state)
    store.write_trial(make_row(key, artifact_path=path, artifact_sha256=digest if sha is None else sha))
    return digest


def test_parent_checkpoint_is_verified_by_sha256(tmp_path):
    store = ResultStore(tmp_path)
    state = {"graph_pred_linear.weight": torch.ones(1, 8)}
    digest = _commit_parent(store, state)
    parent = load_parent_state(spec("wise-ft"), store)
    key = parent.key
    assert (key, parent.sha256) == (spec("full-ft").key(), digest)
    assert torch.equal(parent.state["graph_pred_linear.weight"], state["graph_pred_linear.weight"])

    Path(store.path("artifacts", key, "best.pt")).write_bytes(Path(store.path("artifacts", key, "best.pt")).read_bytes() + b"tampered")
    with pytest.raises(DependencyError, match=rf"checkpoint .* has sha256 \w+, but its row records {digest}; "
                                              "refusing to use a mismatched checkpoint"):
        load_parent_state(spec("roft-mol"), store)
    Path(store.path("artifacts", key, "best.pt")).unlink()
    with pytest.raises(DependencyError, match=f"has no saved checkpoint.*`roft store forget {key}` takes it out"):
        load_parent_state(spec("roft-mol"), store)
    forget(store, [key])  # as the error advises: the parent is then missing, and a sweep plans it again
    with pytest.raises(DependencyError, match=f"needs its full-ft parent trial {key}, which is not in the store"):
        load_parent_state(spec("roft-mol"), store)


def test_parent_row_without_checkpoint_sha_is_refused(tmp_path):
    store = ResultStore(tmp_path)
    _commit_parent(store, {"w": torch.zeros(2)}, sha="")
    with pytest.raises(DependencyError, match=r"recorded sha256: none"):
        load_parent_state(spec("wise-ft"), store)


def test_wise_at_one_reproduces_its_parent_end_to_end(real_env, tmp_path):
    """Real data, real trainable: FT keeps its checkpoint, WiSE(1) reproduces FT, a tampered checkpoint is refused."""
    store = ResultStore(tmp_path / "store")
    runtime = Runtime(store=str(store.root), data_root=DataRoot(real_env))
    ft = execute_trial(spec("full-ft"), runtime, ResultStore(runtime.store))
    assert ft["artifact_sha256"] and ft["parent_trial_key"] == "" and ft["method_results"] == "{}"
    wise = execute_trial(spec("wise-ft", alpha=1.0), runtime, ResultStore(runtime.store))
    assert (wise["val_metric"], wise["test_metric"]) == (ft["val_metric"], ft["test_metric"])
    assert wise["parent_trial_key"] == ft["trial_key"] and wise["parent_artifact_sha256"] == ft["artifact_sha256"]
    assert wise["artifact_path"] == "" and wise["best_stage"] == "evaluate"  # only parents keep checkpoints

    Path(store.path("artifacts", ft["trial_key"], "best.pt")).write_bytes(b"not a checkpoint")
    with pytest.raises(DependencyError, match="mismatched checkpoint"):
        execute_trial(spec("wise-ft", alpha=0.5), runtime, ResultStore(runtime.store))
    assert spec("wise-ft", alpha=0.5).key() not in store.done_keys()


def test_a_scratch_gps_trial_end_to_end(real_env, tmp_path):
    """Spec -> plan -> trainable -> row for a GPS backbone: its size from the spec, RoFt-Mol by GPS layer."""
    from tests.integration.sweeps import planned

    raw = {"name": "gps", "backbones": ["scratch-gps"], "methods": {"full-ft": {}, "roft-mol": {"groups": 3,
                                                                                               "epochs": 2}},
           "tasks": ["esol"], "splits": ["scaffold"], "label_settings": ["fewshot:16"], "seeds": [0],
           "training": {"epochs": 2}, "model": {"num_layers": 2, "emb_dim": 16}}
    setup = planned(raw, real_env, tmp_path)
    trials = {t.method: t for t in setup.plan.pending}
    assert (trials["full-ft"].num_layers, trials["full-ft"].emb_dim) == (2, 16)
    ft = execute_trial(trials["full-ft"], setup.runtime, ResultStore(setup.runtime.store))
    assert (ft["architecture"], ft["num_layers"], ft["emb_dim"], ft["engine"]) == ("gps", 2, 16, "unfused")
    roft = execute_trial(trials["roft-mol"], setup.runtime, ResultStore(setup.runtime.store))
    assert len(json.loads(roft["method_results"])["alphas"]) == 3 and roft["parent_trial_key"] == ft["trial_key"]
    with pytest.raises(SpecError, match=r"model: emb_dim 300 is not accepted for a GPS encoder.*\(backbone "
                                        r"scratch-gps\)"):
        parse_spec({**raw, "model": {"emb_dim": 300}})
