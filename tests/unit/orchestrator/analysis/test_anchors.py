"""orchestrator.analysis.anchors: published rows as data, matched like with like."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from orchestrator.analysis import anchors

RECIPE = {"epochs": 100, "batch_size": 32, "lr": 0.001, "weight_decay": 0.0, "dropout": 0.5}


def trial(key, backbone="scratch-gin", task="bbbp", test=0.66, **recipe):
    config = {"recipe": {**RECIPE, **recipe}}
    return {"trial_key": key, "backbone": backbone, "task": task, "method": "full-ft", "split": "scaffold",
            "label_setting": "full", "metric": "roc_auc", "num_layers": 5, "emb_dim": 300,
            "trial_config": json.dumps(config), "test_metric": test}


def test_every_shipped_row_is_valid_and_names_its_epoch_and_confidence():
    rows = anchors.published_rows()
    assert {r.id for r in rows} >= {"hu2020-none", "graphmae2022", "molebert2023"}
    for row in rows:
        assert row.epoch in anchors.EPOCH_RULES and row.confidence in anchors.CONFIDENCES
        assert row.seeds == 10 and set(row.values) == {"bbbp", "tox21", "toxcast", "sider", "clintox", "muv",
                                                        "hiv", "bace"}
    hu = next(r for r in rows if r.id == "hu2020-none")
    assert hu.values["bbbp"] == (65.8, 4.5) and hu.backbones == ("scratch-gin",)


def test_a_matching_cell_gets_the_published_row_and_the_two_se_verdict():
    trials = pd.DataFrame([trial("a", test=0.60), trial("b", test=0.64), trial("c", test=0.68)])
    out = anchors.compare(trials, None).iloc[0]
    assert out["anchor"] == "hu2020-none" and out["seeds"] == 3 and out["epoch"] == "best-val"
    assert math.isclose(out["mean"], 64.0) and math.isclose(out["difference"], 64.0 - 65.8)
    se = math.sqrt(out["std"] ** 2 / 3 + 4.5 ** 2 / 10)
    assert out["within_2se"] == (abs(out["difference"]) <= 2 * se) and out["within_2se"]
    far = anchors.compare(pd.DataFrame([trial("d", test=0.30), trial("e", test=0.31)]), None).iloc[0]
    assert not far["within_2se"]
    assert "published 65.8 ± 4.5 (n=10; Δ -1.8, within 2 SE)" == anchors.cell_notes(
        anchors.compare(trials, None))[("scratch-gin", "full-ft", "bbbp", "scaffold", "full")]


@pytest.mark.parametrize("change", [{"epochs": 50}, {"lr": 0.0001}, {"dropout": 0.2}])
def test_another_recipe_or_an_unpublished_backbone_gets_nothing(change):
    assert anchors.compare(pd.DataFrame([trial("a", **change)]), None).empty
    assert anchors.compare(pd.DataFrame([trial("a", backbone="scratch-gcn")]), None).empty
    assert anchors.compare(pd.DataFrame([trial("a", task="esol")]), None).empty


def test_a_last_epoch_source_is_compared_at_the_last_epoch():
    trials = pd.DataFrame([trial("a", backbone="graphmae", test=0.9), trial("b", backbone="graphmae", test=0.9)])
    epochs = pd.DataFrame({"trial_key": ["a", "a", "b", "b"], "epoch": [1, 100, 100, 1],
                           "test_metric": [0.5, 0.70, 0.74, 0.99]})
    out = anchors.compare(trials, epochs).iloc[0]
    assert out["anchor"] == "graphmae2022" and out["epoch"] == "last" and math.isclose(out["mean"], 72.0)
    with pytest.raises(ValueError, match="needs the stored epoch curves"):
        anchors.compare(trials, None)
    assert "last epoch (100)" in anchors.caption(anchors.compare(trials, epochs))


def test_a_malformed_entry_names_itself(tmp_path):
    path = tmp_path / "published.yaml"
    path.write_text("- {id: x, source: s, backbones: [], architecture: gin, pretraining: none, seeds: 10, "
                    "epoch: middle, epoch_evidence: e, confidence: checked, roc_auc: {}}\n")
    with pytest.raises(ValueError, match="entry 'x': epoch 'middle' is not accepted; accepted: best-val, last"):
        anchors.published_rows(path)


def test_roft_table_anchors_puts_the_published_row_beside_the_matching_cell(tmp_path):
    """End to end through the store and the CLI: a scratch-gin Full-FT cell on BBBP gets Hu et al.'s
    number beside it; a cell of another recipe gets nothing."""
    import io
    from contextlib import redirect_stdout

    from orchestrator.cli import main as roft
    from orchestrator.store.results import ResultStore
    from tests.unit.orchestrator.store.rows import make_row

    store = ResultStore(tmp_path / "store")
    config = json.dumps({"recipe": RECIPE})
    for seed, value in enumerate((0.62, 0.66, 0.70)):
        store.write_trial(make_row(f"k{seed}", backbone="scratch-gin", method="full-ft", task="bbbp",
                                   split="scaffold", label_setting="full", seed=seed, test_metric=value,
                                   num_layers=5, emb_dim=300, trial_config=config, metric="roc_auc"))
    store.write_trial(make_row("other", backbone="scratch-gin", method="full-ft", task="bbbp", split="scaffold",
                               label_setting="fewshot:100", seed=0, test_metric=0.6, num_layers=5, emb_dim=300,
                               trial_config=config, metric="roc_auc"))
    out = io.StringIO()
    with redirect_stdout(out):
        assert roft(["table", "--store", str(store.root), "--anchors", "--rows", "label_setting"]) == 0
    text = out.getvalue()
    full = next(line for line in text.splitlines() if line.startswith("| full "))
    few = next(line for line in text.splitlines() if line.startswith("| fewshot:100 "))
    assert "published 65.8 ± 4.5 (n=10; Δ +0.2, within 2 SE)" in full and "published" not in few
    assert "hu2020-none" in text and "best-validation epoch" in text
