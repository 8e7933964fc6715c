from pathlib import Path

import pandas as pd
import pytest

from orchestrator.analysis.tables import load_trials, parse_where, pivot, render, select
from orchestrator.store.results import ResultStore
from tests.unit.orchestrator.store.rows import make_row

# (method, label, task, seed, val, test): val and test selection disagree on l2-sp in both tasks
ROWS = [
    ("full-ft", "full-ft", "bbbp", 0, 0.80, 0.70), ("full-ft", "full-ft", "bbbp", 1, 0.80, 0.70),
    ("l2-sp", "l2-sp[d=0.1]", "bbbp", 0, 0.90, 0.60), ("l2-sp", "l2-sp[d=0.1]", "bbbp", 1, 0.90, 0.60),
    ("l2-sp", "l2-sp[d=0.01]", "bbbp", 0, 0.70, 0.80), ("l2-sp", "l2-sp[d=0.01]", "bbbp", 1, 0.70, 0.80),
    ("bss", "bss", "bbbp", 0, 0.50, 0.50),  # no esol cell: missing
    ("full-ft", "full-ft", "esol", 0, 1.0, 1.0), ("full-ft", "full-ft", "esol", 1, 1.0, 2.0),
    ("l2-sp", "l2-sp[d=0.1]", "esol", 0, 2.0, 0.9), ("l2-sp", "l2-sp[d=0.1]", "esol", 1, 2.0, 0.9),
    ("l2-sp", "l2-sp[d=0.01]", "esol", 0, 1.0, 3.0), ("l2-sp", "l2-sp[d=0.01]", "esol", 1, 1.0, 3.0),
]


@pytest.fixture
def store(tmp_path):
    store = ResultStore(tmp_path)
    for i, (method, label, task, seed, val, test) in enumerate(ROWS):
        metric = "roc_auc" if task == "bbbp" else "rmse"
        store.write_trial(make_row(f"k{i}", method=method, method_label=label, task=task, metric=metric, seed=seed,
                                   val_metric=val, test_metric=test))
    return store


def chosen(selected, method, task):
    frame = selected.frame
    return frame[(frame.method == method) & (frame.task == task)].iloc[0]


def test_selection_by_validation_and_by_test_differ(store):
    trials = load_trials(store)
    by_val, by_test = select(trials, "val"), select(trials, "test")
    assert chosen(by_val, "l2-sp", "bbbp").method_label == "l2-sp[d=0.1]"  # best val 0.90 (ROC-AUC: higher)
    assert chosen(by_test, "l2-sp", "bbbp").method_label == "l2-sp[d=0.01]"  # best test 0.80
    assert chosen(by_val, "l2-sp", "esol").method_label == "l2-sp[d=0.01]"  # best val 1.0 (RMSE: lower)
    assert chosen(by_test, "l2-sp", "esol").method_label == "l2-sp[d=0.1]"  # best test 0.9
    assert chosen(by_val, "l2-sp", "bbbp")["mean"] == pytest.approx(0.60)
    assert "OPTIMISTIC" in render(by_test) and "OPTIMISTIC" not in render(by_val)


def test_std_with_both_ddofs(store):
    trials = load_trials(store)
    assert chosen(select(trials, ddof=0), "full-ft", "esol")["std"] == pytest.approx(0.5)
    assert chosen(select(trials, ddof=1), "full-ft", "esol")["std"] == pytest.approx(2 ** -0.5)
    assert pd.isna(chosen(select(trials, ddof=1), "bss", "bbbp")["std"])  # one seed: no sample std
    assert "ddof=1" in render(select(trials, ddof=1))


def test_best_per_column_is_direction_aware_and_missing_cells_show(store):
    table = render(select(load_trials(store), "val"))
    lines = {line.split(" | ")[0].strip("| "): line for line in table.splitlines() if line.startswith("| ")}
    assert "**70.00 ± 0.00 (n=2)**" in lines["full-ft"]  # bbbp: highest ROC-AUC
    assert "**1.50 ± 0.50 (n=2)**" in lines["full-ft"]  # esol: full-ft 1.5 beats l2-sp's selected 3.0
    assert lines["bss"].rstrip(" |").endswith("—")  # no esol trial
    by_test = render(select(load_trials(store), "test"))
    assert "**0.90 ± 0.00 (n=2) [l2-sp[d=0.1]]**" in by_test  # esol: lower is better


@pytest.mark.parametrize("fmt, marker", [("latex", r"\textbf{70.00 $\pm$ 0.00 (n=2)}"), ("html", "<td class='best'>"),
                                         ("csv", "l2-sp[d=0.1]")])
def test_formats(store, fmt, marker):
    assert marker in render(select(load_trials(store)), fmt=fmt)


def test_filters_and_ambiguity(store):
    assert set(load_trials(store, parse_where(["task=esol"])).task) == {"esol"}
    assert set(load_trials(store, parse_where(["seed=1"])).seed) == {1}
    with pytest.raises(ValueError, match="unknown column"):
        load_trials(store, {"colour": ["red"]})
    with pytest.raises(ValueError, match="seed holds int64 values; accepted: int values"):
        load_trials(store, parse_where(["seed=zero"]))
    with pytest.raises(ValueError, match="accepted: COLUMN=VALUE"):
        parse_where(["task"])
    with pytest.raises(ValueError, match="selection 'best'"):
        select(load_trials(store), "best")


FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"


def test_the_default_table_of_a_demo_store_splits_rows_by_backbone():
    """``make demo``'s store (3 backbones x 2 methods x 2 tasks): the default table works and says so."""
    store = ResultStore(FIXTURES / "store-v0")
    selected = select(load_trials(store))
    grid = pivot(selected)
    assert grid.added_rows == ("backbone",) and grid.row_names == ("backbone", "method")
    assert len(grid.rows) == 6 and len(grid.cells) == 12
    table = render(selected)
    assert table.startswith("| backbone / method | bbbp | esol |")
    assert "| scratch-gcn / lp | **64.46 ± 0.23 (n=2)** | 3.95 ± 0.09 (n=2) |" in table
    assert "Rows are also split by backbone" in table
    # best per column within each backbone: one bold cell per backbone and column
    assert table.count("**") == 2 * 3 * 2
    for fmt in ("latex", "html"):
        assert "Rows are also split by backbone" in render(selected, fmt=fmt)


def test_an_explicit_layout_that_would_mix_adds_the_dimension_to_the_rows(store):
    selected = select(load_trials(store))
    grid = pivot(selected, rows=("method",), cols=("split",))
    assert grid.added_rows == ("task",) and grid.row_names == ("task", "method")
    assert (("bbbp", "bss"), ("scaffold",)) in grid.cells
    table = render(selected, rows=("method",), cols=("split",))
    assert "| task / method | scaffold |" in table and "Rows are also split by task" in table
    # bbbp is ROC-AUC and esol RMSE: each task's best is marked, never one compared with the other
    assert "**70.00 ± 0.00 (n=2)**" in table and "**1.50 ± 0.50 (n=2)**" in table
    assert "Rows are also split" not in render(selected)  # nothing mixes in the default layout here


def test_latex_escape_lets_no_control_sequence_through():
    from orchestrator.analysis.tables import _latex_escape

    escaped = _latex_escape(r"\input{/etc/passwd} $x^2$ ~ & % # _ \write18{touch x}")
    assert "\\input{" not in escaped and "\\write18{" not in escaped
    assert escaped.count("\\textbackslash{}") == 2 and "\\{" in escaped and "\\$" in escaped


def test_a_cell_whose_points_have_different_seed_counts_is_marked(store):
    # l2-sp on bbbp: d=0.1 has seeds 0, 1; a third seed of d=0.01 lands first (a sweep mid-run)
    store.write_trial(make_row("late", method="l2-sp", method_label="l2-sp[d=0.01]", task="bbbp", metric="roc_auc",
                               seed=2, val_metric=0.7, test_metric=0.8))
    table = render(select(load_trials(store), "val"))
    lines = {line.split(" | ")[0].strip("| "): line for line in table.splitlines() if line.startswith("| ")}
    assert "[l2-sp[d=0.1]] †" in lines["l2-sp"] and "†" not in lines["full-ft"]
    assert "† marks a cell whose grid points have different seed counts so far" in table
    assert "†" not in render(select(load_trials(ResultStore(store.root)).query("trial_key != 'late'"), "val"))
