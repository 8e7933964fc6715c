"""trainables.core.engine: one declaration of the speed options, and every view derived from it."""

import dataclasses

import pytest

from trainables.core.config import Runtime
from trainables.core.engine import EngineOptions


def test_engine_labels_name_the_options_in_effect():
    plain = EngineOptions()
    assert plain.label(1, "cpu") == "unfused" and plain.label(8, "cpu") == "fused"
    fast = EngineOptions(tf32=True, compile=True, dropout_streams="group", precision="bf16")
    assert fast.label(8, "cuda") == "fused+tf32+compile+group-dropout+bf16"
    assert fast.label(1, "cuda") == "unfused+tf32"  # the fused-only options do not apply alone
    assert fast.label(8, "cpu") == "fused+group-dropout+bf16"  # TF32 and compiling apply on CUDA only


def test_csr_aggregation_applies_to_fused_gin_gcn_graphsage_only():
    csr = EngineOptions(aggregation="csr")
    assert [csr.aggregation_for(g) for g in ("gin", "gcn", "graphsage", "gat", "gps")] == [
        "csr", "csr", "csr", "scatter", "scatter"]
    assert csr.label(8, "cuda", "gcn") == "fused+csr"
    assert csr.label(8, "cuda", "gat") == "fused"  # GAT groups sum by scatter; the row says so
    assert csr.label(1, "cuda", "gin") == "unfused"
    assert csr.in_effect(True, "cuda", "gat").aggregation == "scatter"


@pytest.mark.parametrize("kwargs, message", [
    ({"precision": "fp16"}, "precision='fp16' is not accepted; accepted: fp32, bf16"),
    ({"dropout_streams": "x"}, "dropout_streams='x' is not accepted; accepted: per-trial, group"),
    ({"aggregation": "coo"}, "aggregation='coo' is not accepted; accepted: scatter, csr"),
    ({"tf32": "yes"}, "tf32='yes' is not accepted; accepted: true, false"),
])
def test_bad_values_are_refused_with_the_accepted_ones(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EngineOptions(**kwargs)


def test_words_round_trip_and_cover_every_non_default_value():
    assert set(EngineOptions.words()) == {"tf32", "compile", "group-dropout", "bf16", "csr", "lazy-test"}
    options = EngineOptions.from_words("compile,csr")
    assert options == EngineOptions(compile=True, aggregation="csr")
    assert EngineOptions.from_words(options.as_words()) == options
    assert EngineOptions.from_words("plain") == EngineOptions() and EngineOptions().as_words() == "plain"
    with pytest.raises(ValueError, match="'fast' are not accepted; accepted: plain, or a comma-separated list of"):
        EngineOptions.from_words("compile,fast")


def test_the_spec_schema_and_the_runtime_derive_from_the_declaration():
    names = [f.name for f in dataclasses.fields(EngineOptions)]
    assert list(EngineOptions.schema()) == names
    assert EngineOptions.schema()["aggregation"] == ("scatter", "csr") and EngineOptions.schema()["tf32"] is bool
    runtime = Runtime(store="s", engine=EngineOptions(aggregation="csr"))
    assert Runtime(**runtime.to_dict()) == runtime and runtime.to_dict()["engine"]["aggregation"] == "csr"


def test_spec_execution_keys_become_engine_options():
    from search_spaces.spec import SpecError, parse_spec

    base = {"name": "x", "backbones": ["scratch-gin"], "methods": {"full-ft": {}}, "tasks": ["bbbp"],
            "splits": ["scaffold"], "label_settings": ["full"], "seeds": [0]}
    spec = parse_spec({**base, "execution": {"fuse_max": 8, "compile": True, "aggregation": "csr"}}, "test")
    assert spec.execution.engine == EngineOptions(compile=True, aggregation="csr") and spec.execution.fuse_max == 8
    with pytest.raises(SpecError, match="execution.aggregation"):
        parse_spec({**base, "execution": {"aggregation": "coo"}}, "test")
