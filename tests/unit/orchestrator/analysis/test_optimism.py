"""The gap between choosing by test and by validation: signed by the metric's direction, never negative."""

from __future__ import annotations

import io
from contextlib import redirect_stdout

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.analysis.optimism import GAP_COLUMNS, gap_table, render_gap, selection_gap
from orchestrator.analysis.tables import load_trials
from orchestrator.cli import main as roft
from orchestrator.store.results import ResultStore
from tests.unit.orchestrator.store.rows import make_row

# (method, label, task, seed, val, test): validation and test choose different l2-sp points on both tasks
ROWS = [
    ("full-ft", "full-ft", "bbbp", 0, 0.80, 0.70),
    ("l2-sp", "l2-sp[d=0.1]", "bbbp", 0, 0.90, 0.60),
    ("l2-sp", "l2-sp[d=0.1]", "bbbp", 1, 0.90, 0.60),
    ("l2-sp", "l2-sp[d=0.01]", "bbbp", 0, 0.70, 0.80),
    ("l2-sp", "l2-sp[d=0.01]", "bbbp", 1, 0.70, 0.84),
    ("bss", "bss[d=0.1]", "bbbp", 0, 0.90, 0.60),
    ("bss", "bss[d=0.01]", "bbbp", 0, 0.70, 0.50),
    ("l2-sp", "l2-sp[d=0.1]", "esol", 0, 2.0, 0.9),
    ("l2-sp", "l2-sp[d=0.01]", "esol", 0, 1.0, 1.2),
]


@pytest.fixture
def store(tmp_path):
    store = ResultStore(tmp_path)
    for i, (method, label, task, seed, val, test) in enumerate(ROWS):
        metric = "roc_auc" if task == "bbbp" else "rmse"
        store.write_trial(
            make_row(
                f"k{i}",
                method=method,
                method_label=label,
                task=task,
                metric=metric,
                seed=seed,
                val_metric=val,
                test_metric=test,
            )
        )
    return store


def cell(frame, method, task):
    return frame[(frame.method == method) & (frame.task == task)].iloc[0]


def test_the_gap_is_what_choosing_by_test_adds_in_the_metrics_direction(store):
    gaps = selection_gap(load_trials(store))
    roc = cell(gaps, "l2-sp", "bbbp")  # validation picks d=0.1 (test 0.60), test picks d=0.01 (test 0.82)
    assert (roc.val_point, roc.test_point) == ("l2-sp[d=0.1]", "l2-sp[d=0.01]")
    assert roc.gap == pytest.approx(0.22)
    rmse = cell(gaps, "l2-sp", "esol")  # validation picks d=0.01 (RMSE 1.2), test picks d=0.1 (RMSE 0.9)
    assert rmse.gap == pytest.approx(0.3)  # lower RMSE looks better: positive
    assert cell(gaps, "bss", "bbbp").gap == 0.0  # both choose d=0.1
    assert cell(gaps, "full-ft", "bbbp").gap == 0.0 and cell(gaps, "full-ft", "bbbp").points == 1
    assert list(gaps.columns) == GAP_COLUMNS


def test_the_printed_table_names_both_points_and_marks_unequal_seed_counts(store):
    table = render_gap(gap_table(load_trials(store)))
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines() if line.startswith("| ")}
    # l2-sp d=0.1 has seeds 0, 1 on BBBP and so has d=0.01; on ESOL one seed each: no mark
    assert "+22.00 [l2-sp[d=0.1] → l2-sp[d=0.01]]" in rows["l2-sp"]
    assert "+0.30 [l2-sp[d=0.01] → l2-sp[d=0.1]]" in rows["l2-sp"]
    assert "| 0.00 |" in rows["bss"] and "†" not in table
    assert "roc_auc: mean gap 11.00 over the 2 cells with several points (1 choose differently)" in table
    assert "rmse: mean gap 0.30 over the 1 cells" in table
    csv = render_gap(gap_table(load_trials(store)), "csv")
    assert csv.splitlines()[0] == ",".join(GAP_COLUMNS)


def test_a_cell_whose_points_have_different_seed_counts_is_marked(store):
    store.write_trial(
        make_row("extra", method="l2-sp", method_label="l2-sp[d=0.01]", task="esol", metric="rmse", seed=1,
                 val_metric=1.0, test_metric=1.2)
    )
    table = render_gap(gap_table(load_trials(store)))
    assert "[l2-sp[d=0.01] → l2-sp[d=0.1]] †" in table and "† marks a cell" in table


def test_roft_table_select_gap_prints_it_and_refuses_anchors(store, capsys):
    out = io.StringIO()
    with redirect_stdout(out):
        assert roft(["table", "--store", str(store.root), "--select", "gap"]) == 0
    assert "Optimism of choosing" in out.getvalue() and "+22.00" in out.getvalue()
    assert roft(["table", "--store", str(store.root), "--select", "gap", "--anchors"]) != 0
    assert "anchors=True is not accepted with select='gap'" in capsys.readouterr().err


points = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),  # grid point
        st.integers(0, 2),  # seed
        st.floats(0.0, 1.0),  # validation metric
        st.floats(0.0, 1.0),  # test metric
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(points=points, metric=st.sampled_from(["roc_auc", "rmse"]))
def test_the_gap_is_never_negative_and_zero_when_one_point_is_chosen(points, metric):
    rows = [
        {
            "backbone": "b", "method": "l2-sp", "task": "bbbp" if metric == "roc_auc" else "esol",
            "split": "scaffold", "label_setting": "full", "method_label": f"l2-sp[{label}]", "mechanism": "weight",
            "pretraining": "none", "metric": metric, "seed": seed, "trial_key": f"{label}-{seed}",
            "val_metric": val, "test_metric": test,
        }
        for label, seed, val, test in points
    ]
    gaps = selection_gap(pd.DataFrame(rows).drop_duplicates("trial_key"))
    assert len(gaps) == 1
    gap = gaps.iloc[0]
    assert gap.gap >= 0
    if gap.val_point == gap.test_point:
        assert gap.gap == 0
