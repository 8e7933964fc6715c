"""trainables.core.config: TrialSpec canonical JSON and key, round trips, Runtime."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainables.core.config import PROTOCOL_VERSION, Runtime, TrainingRecipe, TrialSpec
from trainables.core.data_root import DataRoot

REPO = Path(__file__).resolve().parents[4]


def base_spec(**changes) -> TrialSpec:
    spec = TrialSpec(backbone="hu-gcn-contextpred", method="lp", task="bbbp", split="scaffold",
                     label_setting="fewshot:100", seed=0, subset_seed=42,
                     recipe=TrainingRecipe(epochs=3, batch_size=8),
                     method_params={"freeze_bn_stats": True}, backbone_sha256="ab" * 32, data_sha256="cd" * 32)
    return dataclasses.replace(spec, **changes)


def test_key_shape_and_memo():
    spec = base_spec()
    key = spec.key()
    assert len(key) == 24 and int(key, 16) >= 0
    assert spec.key() is key  # memoised
    assert "_key" not in spec.to_dict()
    assert base_spec().key() == key  # equal content, equal key


def test_canonical_json_is_sorted_and_compact():
    text = base_spec().canonical_json()
    data = json.loads(text)
    assert text == json.dumps(data, sort_keys=True, separators=(",", ":"))
    assert list(data) == sorted(data)
    assert data["recipe"] == {"batch_size": 8, "dropout": 0.5, "epochs": 3, "lr": 0.001, "weight_decay": 0.0}
    assert data["protocol_version"] == PROTOCOL_VERSION
    assert " " not in text.replace("hu-gcn-contextpred", "")


def test_key_independent_of_dict_insertion_order():
    a = base_spec(method_params={"a": 1, "b": 2.5})
    b = base_spec(method_params={"b": 2.5, "a": 1})
    assert a.key() == b.key()


def test_key_is_stable_across_processes():
    spec = base_spec(method_params={"z": [1, 2], "a": {"y": 0.1, "x": None}})
    code = ("import json, sys; from trainables.core.config import TrialSpec; "
            "print(TrialSpec.from_dict(json.loads(sys.argv[1])).key())")
    keys = set()
    for hash_seed in ("0", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        out = subprocess.run([sys.executable, "-c", code, json.dumps(spec.to_dict())], cwd=REPO, env=env,
                             capture_output=True, text=True, check=True, timeout=60)
        keys.add(out.stdout.strip())
    assert keys == {spec.key()}


@pytest.mark.parametrize("change", [
    {"seed": 1}, {"subset_seed": 0}, {"backbone": "hu-gcn-supervised"}, {"method": "full-ft"}, {"task": "tox21"},
    {"split": "size"}, {"label_setting": "full"}, {"backbone_sha256": "ef" * 32}, {"data_sha256": ""},
    {"method_params": {"freeze_bn_stats": False}}, {"method_params": {}}, {"num_layers": 5}, {"emb_dim": 300},
    {"protocol_version": "roft-protocol-2"}, {"recipe": TrainingRecipe(epochs=3, batch_size=8, lr=1e-4)},
    {"recipe": TrainingRecipe(epochs=4, batch_size=8)}, {"recipe": TrainingRecipe(epochs=3, batch_size=8, dropout=0.1)},
    {"method_revision": 2}, {"subset_revision": 2},
])
def test_key_changes_when_any_field_changes(change):
    assert base_spec(**change).key() != base_spec().key()


def test_every_field_is_in_the_key():
    """Guard: a new TrialSpec field must enter the canonical JSON (a revision only above 1)."""
    data = json.loads(base_spec().canonical_json())
    assert set(data) == {f.name for f in dataclasses.fields(TrialSpec)} - {"method_revision", "subset_revision"}
    revised = json.loads(base_spec(method_revision=2, subset_revision=3).canonical_json())
    assert set(revised) == {f.name for f in dataclasses.fields(TrialSpec)}
    assert (revised["method_revision"], revised["subset_revision"]) == (2, 3)


def test_revisions_of_one_leave_the_key_as_it_was():
    """Keys made before revisions existed (no revision fields in their JSON) stay the keys of revision 1."""
    spec = base_spec()
    legacy = {k: v for k, v in spec.to_dict().items()}
    assert "method_revision" not in legacy and TrialSpec.from_dict(legacy).key() == spec.key()
    again = TrialSpec.from_dict(base_spec(method_revision=2).to_dict())
    assert again.method_revision == 2 and again.key() == base_spec(method_revision=2).key()


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2"])
def test_a_revision_must_be_a_positive_integer(value):
    with pytest.raises(ValueError, match="method_revision"):
        base_spec(method_revision=value)


def test_round_trip_through_dict_and_json():
    spec = base_spec(num_layers=2, emb_dim=16)
    again = TrialSpec.from_dict(spec.to_dict())
    assert again == spec and again.key() == spec.key()
    assert isinstance(again.recipe, TrainingRecipe)
    via_json = TrialSpec.from_dict(json.loads(spec.canonical_json()))
    assert via_json == spec and via_json.key() == spec.key()
    minimal = TrialSpec.from_dict({"backbone": "b", "method": "m", "task": "t", "split": "s",
                                   "label_setting": "full", "seed": 0, "subset_seed": 42})
    assert minimal.recipe == TrainingRecipe()


def test_non_json_values_are_refused():
    with pytest.raises(TypeError, match=r"value .* of type set is not JSON-serialisable"):
        base_spec(method_params={"x": {1, 2}}).key()


def test_equal_specs_have_equal_keys():
    a = base_spec(recipe=TrainingRecipe(weight_decay=0))
    b = base_spec(recipe=TrainingRecipe(weight_decay=0.0))
    assert a == b
    assert a.key() == b.key()


def test_runtime_is_not_part_of_the_key():
    runtime = Runtime(store="/tmp/s", sweep="x", threads=2)
    assert runtime.to_dict() == {"store": "/tmp/s", "sweep": "x", "data_root": DataRoot(), "threads": 2,
                                 "device": "auto", "code_version": "unknown", "artifacts": "required",
                                 "optuna_storage": None,
                                 "engine": {"tf32": False, "compile": False, "dropout_streams": "per-trial",
                                            "precision": "fp32", "aggregation": "scatter",
                                            "test_scoring": "every-epoch"}}
    assert Runtime(**runtime.to_dict()) == runtime
    assert "store" not in base_spec().to_dict() and "sweep" not in base_spec().to_dict()
