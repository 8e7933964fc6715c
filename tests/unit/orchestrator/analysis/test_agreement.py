from __future__ import annotations

import numpy as np
import pytest

from orchestrator.analysis.agreement import agreement, agreement_text
from orchestrator.analysis.tables import COLUMNS, load_trials
from orchestrator.cli import main
from orchestrator.store.results import ResultStore
from tests.unit.orchestrator.store.rows import make_row


def write(store: ResultStore, rows: list[tuple[str, str, str, int, float]], device: str | None = None) -> None:
    """rows: (key, task, method_label, seed, test_metric); BBBP/BACE are ROC-AUC, ESOL RMSE."""
    for key, task, label, seed, value in rows:
        regression = task == "esol"
        store.write_trial(make_row(key, task=task, method=label.split("[")[0], method_label=label, seed=seed,
                                   task_type="regression" if regression else "classification",
                                   metric="rmse" if regression else "roc_auc", test_metric=value, val_metric=value,
                                   device=device))


@pytest.fixture
def stores(tmp_path):
    cpu, gpu = ResultStore(tmp_path / "cpu"), ResultStore(tmp_path / "gpu")
    write(cpu, [("a0", "bbbp", "full-ft", 0, 0.70), ("a1", "bbbp", "full-ft", 1, 0.74),
                ("b0", "bace", "lp", 0, 0.60), ("e0", "esol", "full-ft", 0, 2.00), ("only-cpu", "bbbp", "lp", 0, 0.5)])
    write(gpu, [("a0", "bbbp", "full-ft", 0, 0.69), ("b0", "bace", "lp", 0, 0.63), ("e0", "esol", "full-ft", 0, 2.25),
                ("only-gpu", "bace", "full-ft", 3, 0.9)])
    return tmp_path


def test_shared_keys_are_paired_per_metric_in_table_units(stores):
    cpu = load_trials(ResultStore(stores / "cpu"), columns=COLUMNS)
    gpu = load_trials(ResultStore(stores / "gpu"), columns=COLUMNS)
    auc, rmse = agreement(cpu, gpu)
    assert (auc.metric, rmse.metric) == ("roc_auc", "rmse")
    assert sorted(np.round(auc.differences, 6)) == [-3.0, 1.0]  # points of %: 70-69, 60-63
    assert np.round(rmse.differences, 6).tolist() == [-0.25]
    assert "bace" in auc.largest and "lp" in auc.largest and "seed 0" in auc.largest
    # BBBP full-ft has two seeds in the CPU store (std 2.0 points, ddof 1); BACE lp one: the mean is over BBBP
    assert auc.seed_spread == pytest.approx(np.std([70, 74], ddof=1))
    assert rmse.seed_spread is None
    assert "store minus other -1.00 ROC-AUC points" in auc.line() and "largest 3.00" in auc.line()


def test_the_command_names_how_many_trials_both_hold(stores, capsys):
    assert main(["reading", "--store", str(stores / "cpu"), "--against", str(stores / "gpu")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith(f"3 of the 4 trials in {stores / 'gpu'} are also in the store")
    assert [line.split(":")[0] for line in lines[1:]] == ["roc_auc", "rmse"]
    assert main(["reading", "--store", str(stores / "cpu"), "--against", str(stores / "gpu"),
                 "--where", "task=esol"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("1 of the 1 trials")


def test_stores_without_a_shared_trial_say_so_and_a_missing_one_is_refused(stores, capsys):
    assert agreement_text(load_trials(ResultStore(stores / "cpu"), columns=COLUMNS).iloc[:0],
                          load_trials(ResultStore(stores / "gpu"), columns=COLUMNS), "gpu").endswith("nothing to compare.")
    assert main(["reading", "--store", str(stores / "cpu"), "--against", str(stores / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_columns_are_checked():
    import pandas as pd

    with pytest.raises(ValueError, match="lack column"):
        agreement(pd.DataFrame({"trial_key": []}), pd.DataFrame({"trial_key": []}))


def test_the_sides_name_their_devices_when_the_rows_record_one_each(tmp_path, capsys):
    write(ResultStore(tmp_path / "cpu"), [("a0", "bbbp", "full-ft", 0, 0.70)], device="cpu")
    write(ResultStore(tmp_path / "gpu"), [("a0", "bbbp", "full-ft", 0, 0.68)], device="cuda")
    assert main(["reading", "--store", str(tmp_path / "cpu"), "--against", str(tmp_path / "gpu")]) == 0
    assert "1 trial, store (cpu) minus other (cuda) +2.00 ROC-AUC points" in capsys.readouterr().out
