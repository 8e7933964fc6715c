from __future__ import annotations

import pandas as pd
import pytest

from orchestrator.analysis.reading import NEEDED, compare, reading
from orchestrator.analysis.tables import COLUMNS, load_trials
from orchestrator.cli import main
from orchestrator.store.results import ResultStore
from tests.unit.orchestrator.store.rows import make_row

PRE, SCRATCH = "hu-gcn-supervised-contextpred", "scratch-gcn"


def frame(cells: dict[tuple[str, str], list[float]], method: str = "lp", split: str = "scaffold",
          label_setting: str = "full", epochs: int = 15, val: dict[tuple[str, str], list[float]] | None = None):
    """Rows of (backbone, task) -> per-seed test metrics (ROC-AUC fractions; RMSE for esol)."""
    rows = []
    for (backbone, task), values in cells.items():
        for seed, value in enumerate(values):
            rows.append({"trial_key": f"{backbone}/{task}/{method}/{split}/{label_setting}/{seed}",
                         "backbone": backbone, "method": method.partition("[")[0], "method_label": method,
                         "task": task, "split": split, "label_setting": label_setting,
                         "metric": "rmse" if task == "esol" else "roc_auc", "seed": seed, "epochs": epochs,
                         "test_metric": value,
                         "val_metric": (val or {}).get((backbone, task), values)[seed],
                         "pretraining": "none" if backbone.startswith("scratch") else "both"})
    return pd.DataFrame(rows)


def test_win_states_each_task_gain_in_points_and_the_setting():
    text = reading(frame({(PRE, "bbbp"): [0.69, 0.70, 0.68], (SCRATCH, "bbbp"): [0.56, 0.55, 0.57],
                          (PRE, "clintox"): [0.80, 0.81, 0.79], (SCRATCH, "clintox"): [0.56, 0.57, 0.55]}))
    first, second = text.split("\n")
    assert first == (f"Pre-trained {PRE} beats {SCRATCH}: +13.0 ROC-AUC points on BBBP (69.0 vs 56.0) and +24.0 on "
                     "ClinTox (80.0 vs 56.0) (seed-mean test metric; linear probing, 3 seeds, scaffold split, "
                     "full labels).")
    assert second.startswith("What it shows: the frozen pre-trained encoder's embeddings")
    assert "3 seeds on one split is a small sample" in second
    assert "100 epochs of full fine-tuning, not 15 epochs of linear probing" in second
    assert "within one seed std" not in second


def test_loss_says_not_and_does_not_claim_transfer():
    text = reading(frame({(PRE, "bbbp"): [0.59, 0.60], (SCRATCH, "bbbp"): [0.63, 0.64],
                          (PRE, "clintox"): [0.51, 0.50], (SCRATCH, "clintox"): [0.60, 0.61]}))
    first, second = text.split("\n")
    assert first.startswith(f"Pre-trained {PRE} does NOT beat {SCRATCH}: -4.0 ROC-AUC points on BBBP (59.5 vs 63.5)")
    assert "-10.0 on ClinTox (50.5 vs 60.5)" in first
    assert second.startswith("What it shows: pre-training does not help in this run")
    assert "Hu et al." not in second


def test_mixed_result_names_where_it_helps_and_flags_noise():
    text = reading(frame({(PRE, "bbbp"): [0.70, 0.72], (SCRATCH, "bbbp"): [0.56, 0.58],
                          (PRE, "clintox"): [0.60, 0.50], (SCRATCH, "clintox"): [0.56, 0.56]}))
    first, second = text.split("\n")
    assert "beats scratch-gcn on 1 of 2 tasks only" in first
    assert "pre-training helps on BBBP but not on ClinTox" in second
    assert "the difference on ClinTox is within one seed std" in second


def test_regression_gain_is_a_lower_rmse():
    text = reading(frame({(PRE, "esol"): [1.10, 1.14], (SCRATCH, "esol"): [1.45, 1.41]}, method="full-ft",
                         epochs=100))
    first, second = text.split("\n")
    assert "0.31 lower RMSE on ESOL (1.12 vs 1.43)" in first and "beats" in first
    assert "full fine-tuning, 2 seeds" in first
    assert "the paper's recipe" not in second  # full-ft for 100 epochs is the paper's recipe


def test_missing_scratch_backbone_says_so():
    text = reading(frame({(PRE, "bbbp"): [0.69], ("hu-gcn-contextpred", "bbbp"): [0.61]}))
    assert text.startswith("No scratch backbone in these trials")
    assert len(text.split("\n")) == 2 and "scratch-gcn" in text.split("\n")[1]


def test_missing_pretrained_backbone_and_empty_frame():
    assert reading(frame({(SCRATCH, "bbbp"): [0.56]})).startswith("No pre-trained backbone")
    assert reading(pd.DataFrame(columns=NEEDED)).startswith("No finished trials")
    with pytest.raises(ValueError, match="lack column"):
        reading(pd.DataFrame({"backbone": [PRE]}))


def test_backbones_on_different_cells_cannot_be_compared():
    trials = pd.concat([frame({(PRE, "bbbp"): [0.69]}), frame({(SCRATCH, "clintox"): [0.56]})])
    assert reading(trials).startswith("The pre-trained and scratch backbones never share")


def test_best_pretrained_is_chosen_on_validation_not_test():
    trials = frame({(PRE, "bbbp"): [0.69], ("hu-gcn-contextpred", "bbbp"): [0.75], (SCRATCH, "bbbp"): [0.56]},
                   val={(PRE, "bbbp"): [0.92], ("hu-gcn-contextpred", "bbbp"): [0.85], (SCRATCH, "bbbp"): [0.78]})
    _, comparisons, _ = compare(trials.assign(pretrained=trials["pretraining"] != "none"))
    assert [c.pretrained for c in comparisons] == [PRE]
    assert "+13.0 ROC-AUC points on BBBP (69.0 vs 56.0)" in reading(trials)


def test_pretraining_falls_back_to_the_registry_and_other_settings_are_named():
    trials = pd.concat([
        frame({(PRE, "bbbp"): [0.60], (SCRATCH, "bbbp"): [0.63]}),
        frame({(PRE, "bbbp"): [0.69, 0.70], (SCRATCH, "bbbp"): [0.56, 0.55]}, method="lp[freeze_bn_stats=True]"),
    ]).drop(columns="pretraining")
    first, second = reading(trials).split("\n")
    # the setting with more trials is read, not the first by name
    assert "beats" in first and "linear probing [freeze_bn_stats=True], 2 seeds" in first
    assert "the store also compares them under lp / scaffold / full" in second


def test_duplicate_trial_keys_count_once():
    trials = frame({(PRE, "bbbp"): [0.69, 0.70], (SCRATCH, "bbbp"): [0.56, 0.55]})
    assert reading(pd.concat([trials, trials])) == reading(trials)


def test_reads_a_store_and_the_command_line(tmp_path, capsys):
    store = ResultStore(tmp_path / "store")
    for i, (backbone, pretraining, value) in enumerate([(PRE, "both", 0.70), (PRE, "both", 0.68),
                                                        (SCRATCH, "none", 0.55), (SCRATCH, "none", 0.57)]):
        store.write_trial(make_row(f"k{i}", backbone=backbone, pretraining=pretraining, method="lp",
                                   method_label="lp", task="bbbp", task_type="classification", metric="roc_auc",
                                   seed=i % 2, epochs=15, test_metric=value, val_metric=value))
    text = reading(load_trials(store, columns=[*COLUMNS, "epochs"]))
    assert text.startswith(f"Pre-trained {PRE} beats {SCRATCH}: +13.0 ROC-AUC points on BBBP (69.0 vs 56.0)")
    assert main(["reading", "--store", str(tmp_path / "store")]) == 0
    assert capsys.readouterr().out.strip() == text
    assert main(["reading", "--store", str(tmp_path / "missing")]) == 2


def test_the_command_line_reads_only_the_rows_where_asks_for(tmp_path, capsys):
    store = ResultStore(tmp_path / "store")
    rows = [(PRE, "both", "fewshot:100", 0.70), (SCRATCH, "none", "fewshot:100", 0.55),
            (PRE, "both", "fewshot:50", 0.50), (SCRATCH, "none", "fewshot:50", 0.65)]
    for i, (backbone, pretraining, label_setting, value) in enumerate(rows):
        store.write_trial(make_row(f"k{i}", backbone=backbone, pretraining=pretraining, method="lp",
                                   method_label="lp", task="bbbp", task_type="classification", metric="roc_auc",
                                   label_setting=label_setting, seed=0, epochs=15, test_metric=value,
                                   val_metric=value))
    for label_setting, verb in (("fewshot:100", "beats"), ("fewshot:50", "does NOT beat")):
        only = load_trials(store, where={"label_setting": [label_setting]}, columns=[*COLUMNS, "epochs"])
        assert len(only) == 2
        assert main(["reading", "--store", str(tmp_path / "store"), "--where", f"label_setting={label_setting}"]) == 0
        printed = capsys.readouterr().out.strip()
        assert printed == reading(only) and printed.startswith(f"Pre-trained {PRE} {verb} {SCRATCH}")
    assert main(["reading", "--store", str(tmp_path / "store"), "--where", "colour=red"]) == 2
    assert "colour" in capsys.readouterr().err
