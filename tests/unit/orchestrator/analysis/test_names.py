import pytest

from orchestrator.analysis.names import backbone_name, label_setting_name, label_setting_order, task_name


@pytest.mark.parametrize("backbone, architecture, pretraining, name", [
    ("hu-gcn-supervised-contextpred", "gcn", "both", "GCN, supervised + ContextPred pre-training"),
    ("hu-gat-contextpred", None, None, "GAT, ContextPred pre-training (self-supervised)"),
    ("hu-graphsage-supervised", "graphsage", "supervised", "GraphSAGE, supervised pre-training (ChEMBL)"),
    ("scratch-gin", float("nan"), None, "GIN, random init (no pre-training)"),  # null columns of older rows
    ("roft-gps-attrmask", "gps", "self-supervised", "GraphGPS, attribute-masking pre-training"),
    ("mole-bert", "gin", "self-supervised", "GIN, Mole-BERT pre-training"),
    ("my-own", None, "supervised", "supervised pre-training"),
])
def test_backbones_are_named_by_architecture_and_pretraining(backbone, architecture, pretraining, name):
    assert backbone_name(backbone, architecture, pretraining) == name


def test_label_settings_and_tasks():
    assert [label_setting_name(s) for s in ("full", "fewshot:64", "ratio:0.1")] == [
        "all training labels", "64 labelled molecules", "10% of the labels"]
    assert sorted(["full", "fewshot:256", "ratio:0.5", "fewshot:16"], key=label_setting_order) == [
        "fewshot:16", "fewshot:256", "ratio:0.5", "full"]
    assert task_name("clintox") == "ClinTox" and task_name("unknown-task") == "unknown-task"
