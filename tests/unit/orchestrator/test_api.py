"""``import orchestrator as roft``: load_trials, load_curves and table, the frames a notebook reads."""

from __future__ import annotations

import io
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pandas as pd
import pytest

import orchestrator as roft
from orchestrator import api
from orchestrator.analysis.tables import render_frame
from orchestrator.cli import main as cli
from orchestrator.store.compact import compact
from orchestrator.store.results import ResultStore
from orchestrator.store.schema import TRIAL_SCHEMA
from tests.unit.orchestrator.store.rows import epoch, make_row

REPO = Path(__file__).resolve().parents[3]
CPU_ROW = REPO / "docs" / "results" / "store-gin-scratch-cpu"


@pytest.fixture
def store(tmp_path) -> ResultStore:
    """Two methods x two tasks x two seeds; l2-sp has two grid points (val picks d=0.1 on bbbp)."""
    store = ResultStore(tmp_path / "store")
    rows = [("full-ft", "full-ft", 0.80, 0.70), ("l2-sp", "l2-sp[d=0.1]", 0.90, 0.60),
            ("l2-sp", "l2-sp[d=0.01]", 0.70, 0.80)]
    i = 0
    for method, label, val, test in rows:
        for task, metric in (("bbbp", "roc_auc"), ("esol", "rmse")):
            for seed in (0, 1):
                store.write_trial(make_row(f"k{i:02d}", method=method, method_label=label, task=task, metric=metric,
                                           seed=seed, val_metric=val, test_metric=test + seed / 100,
                                           epochs=3, num_layers=5),
                                  [epoch(1, 0.3), epoch(2, 0.2), epoch(3, 0.1)])
                i += 1
    return store


def printed(*argv: str) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli(list(argv)) == 0
    return out.getvalue()


def test_the_package_root_exposes_the_api():
    assert roft.load_trials is api.load_trials and roft.load_curves is api.load_curves and roft.table is api.table
    assert {"load_trials", "load_curves", "table"} <= set(dir(roft))
    with pytest.raises(AttributeError, match="no attribute 'lode_trials'"):
        roft.lode_trials  # noqa: B018


def test_importing_the_package_loads_neither_torch_nor_ray_nor_pandas():
    code = ("import sys, orchestrator; heavy = [m for m in ('torch', 'ray', 'pandas', 'pyarrow', 'matplotlib') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert out.strip() == "[]"
    code = ("import sys, orchestrator as roft; roft.table(sys.argv[1]); "
            "print([m for m in ('torch', 'ray') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code, str(CPU_ROW)], capture_output=True, text=True, check=True,
                         cwd=REPO).stdout
    assert out.strip() == "[]"  # a table needs neither


def test_load_trials_gives_one_typed_row_per_trial(store):
    trials = roft.load_trials(store.root)
    assert len(trials) == 12 and trials.trial_key.is_unique
    assert list(trials.columns) == TRIAL_SCHEMA.names
    assert trials.seed.dtype == "int64" and trials.num_layers.dtype == "int32" and trials.epochs.dtype == "int32"
    assert str(trials.finished_at.dtype) == "datetime64[us, UTC]" and trials.test_metric.dtype == "float64"
    # a path as text, a Path and an open store read the same
    pd.testing.assert_frame_equal(trials, roft.load_trials(str(store.root)))
    pd.testing.assert_frame_equal(trials, roft.load_trials(store))


def test_where_takes_one_value_or_a_list_typed_or_as_text(store):
    assert set(roft.load_trials(store, where={"task": "esol"}).task) == {"esol"}
    assert len(roft.load_trials(store, where={"task": ["esol", "bbbp"], "seed": 1})) == 6
    assert len(roft.load_trials(store, where={"seed": "1", "method": "l2-sp"})) == 4
    assert roft.load_trials(store, where={"task": "tox21"}).empty
    picked = roft.load_trials(store, where={"method_label": "l2-sp[d=0.1]"}, columns=["trial_key", "seed"])
    assert list(picked.columns) == ["trial_key", "seed"] and len(picked) == 4


@pytest.mark.parametrize("where, message", [
    ({"colour": "red"}, r"unknown column\(s\) \['colour'\]"),
    ({"seed": "zero"}, "seed holds int64 values"),
    ({"task": []}, r"where\['task'\] is empty"),
    ("task=bbbp", "accepted: a dict of column"),
])
def test_a_bad_filter_is_one_error_naming_it(store, where, message):
    with pytest.raises(ValueError, match=message):
        roft.load_trials(store, where=where)


def test_a_missing_store_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        roft.load_trials(tmp_path / "nothing")


def test_a_trial_in_two_files_after_an_interrupted_compaction_is_one_row(store):
    compact(store)
    store.write_trial(make_row("k00", method="full-ft", task="bbbp", metric="roc_auc", test_metric=0.99),
                      [epoch(1), epoch(2), epoch(3)])  # its own file again, beside the compacted part
    trials = roft.load_trials(store)
    assert len(trials) == 12 and trials.set_index("trial_key").loc["k00", "test_metric"] == 0.99
    assert len(roft.load_curves(store)) == 12 * 3


def test_load_curves_carries_each_trials_cell_and_seed(store):
    curves = roft.load_curves(store, where={"task": "bbbp", "seed": 0})
    assert len(curves) == 3 * 3 and set(curves.task) == {"bbbp"} and set(curves.seed) == {0}
    assert list(curves.columns[:len(api.CURVE_TRIAL_COLUMNS) + 1]) == ["trial_key", *api.CURVE_TRIAL_COLUMNS]
    assert {"stage", "epoch", "train_loss", "val_metric", "test_metric"} <= set(curves.columns)
    assert curves.groupby("trial_key").epoch.apply(list).map(lambda e: e == [1, 2, 3]).all()
    assert len(roft.load_curves(store)) == 12 * 3


def test_table_is_the_selection_as_data(store):
    frame = roft.table(store)
    assert frame.attrs["rows"] == ("method",) and frame.attrs["cols"] == ("task",)
    cell = frame.set_index(["method", "task"])
    assert cell.loc[("l2-sp", "bbbp"), "method_label"] == "l2-sp[d=0.1]"  # best validation 0.90
    assert cell.loc[("l2-sp", "bbbp"), "mean"] == pytest.approx(0.605)  # its test metric, as a fraction
    assert cell.loc[("l2-sp", "bbbp"), "seeds"] == 2 and cell.loc[("l2-sp", "bbbp"), "points"] == 2
    assert cell.loc[("full-ft", "bbbp"), "best"] and not cell.loc[("l2-sp", "bbbp"), "best"]  # ROC-AUC: higher
    assert cell.loc[("full-ft", "esol"), "best"]  # RMSE: 0.705 beats l2-sp's selected 0.805
    by_test = roft.table(store, select="test").set_index(["method", "task"])
    assert by_test.loc[("l2-sp", "bbbp"), "method_label"] == "l2-sp[d=0.01]"
    assert roft.table(store, where={"task": "esol"}).task.unique().tolist() == ["esol"]
    assert roft.table(store, rows="task", cols=["method"]).attrs["rows"] == ("task",)


BOLD = {"markdown": "**", "latex": r"\textbf", "html": "class='best'", "csv": ""}


@pytest.mark.parametrize("fmt", ["markdown", "latex", "html", "csv"])
def test_the_cli_table_is_rendered_from_exactly_the_api_frame(store, monkeypatch, fmt):
    frames = []
    original = api.table

    def spy(*args, **kwargs):
        frames.append(original(*args, **kwargs))
        return frames[-1]

    monkeypatch.setattr(api, "table", spy)
    argv = ["table", "--store", str(store.root), "--rows", "method", "--cols", "task", "--format", fmt]
    text = printed(*argv)
    assert len(frames) == 1 and text == render_frame(frames[0], fmt) + "\n"
    # a change to the frame is a change to the printed table: nothing is recomputed on the way
    changed = frames[0].copy()
    changed.attrs = frames[0].attrs
    changed.loc[(changed.method == "full-ft") & (changed.task == "bbbp"), "mean"] = 0.4321
    changed["best"] = False
    monkeypatch.setattr(api, "table", lambda *args, **kwargs: changed)
    altered = printed(*argv)
    assert ("0.4321" if fmt == "csv" else "43.21") in altered
    if fmt != "csv":  # csv prints no bold mark
        assert BOLD[fmt] in text and BOLD[fmt] not in altered
    assert altered == render_frame(changed, fmt) + "\n"


def test_the_committed_cpu_row_as_data_and_as_printed_agree():
    frame = roft.table(CPU_ROW, rows="backbone", anchors=True)
    assert len(frame) == 4 and set(frame.task) == {"bace", "bbbp", "clintox", "sider"}
    assert frame.within_2se.all() and set(frame.anchor) == {"hu2020-none"}
    bbbp = frame.set_index("task").loc["bbbp"]
    assert round(bbbp["mean"] * 100, 2) == 69.17 and round(bbbp.published_mean * 100, 1) == 65.8
    assert not frame.best.any()  # one backbone: nothing to compare, so nothing in bold
    printed_table = printed("table", "--store", str(CPU_ROW), "--rows", "backbone", "--cols", "task", "--anchors")
    assert printed_table == render_frame(frame) + "\n"
    assert printed_table == (REPO / "docs" / "results" / "gin-scratch-cpu.md").read_text()


def test_an_s3_store_reads_the_same(s3_store_uri, store):
    remote = ResultStore(s3_store_uri)
    for row in store.read_trials().to_pylist():
        remote.write_trial(row, [epoch(1), epoch(2)])
    local = roft.load_trials(store).sort_values("trial_key").reset_index(drop=True)
    pd.testing.assert_frame_equal(roft.load_trials(s3_store_uri).sort_values("trial_key").reset_index(drop=True),
                                  local)
    assert len(roft.load_curves(s3_store_uri, where={"task": "esol"})) == 6 * 2
    pd.testing.assert_frame_equal(roft.table(s3_store_uri), roft.table(store))
