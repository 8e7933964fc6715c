"""Strings from a spec or a store never reach a report, a table or a file name unescaped: ``<script>``,
LaTeX control sequences and path separators put in every string a spec or a store row can carry are
refused (spec names), or escaped (report, LaTeX, HTML tables); the report's files stay in --out."""

from __future__ import annotations

import glob
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from orchestrator.cli import main
from search_spaces import parse_spec
from search_spaces.spec import SpecError

FIXTURE = Path(__file__).resolve().parents[3] / "fixtures" / "store-v0"
SCRIPT = "<script>alert('x')</script>"
LATEX = r"\input{/etc/passwd}\write18{touch pwned}"
PATH = "../../evil/x"
HOSTILE = f"{SCRIPT}{LATEX}{PATH}"
BASE = {"name": "ok", "backbones": ["scratch-gin"], "methods": {"lp": {}}, "tasks": ["esol"], "splits": ["scaffold"],
        "label_settings": ["full"], "seeds": [0]}


@pytest.mark.parametrize("field", ["name", "backbones", "methods", "tasks", "splits", "label_settings"])
def test_a_hostile_string_in_any_spec_name_is_refused(field):
    raw = dict(BASE)
    raw[field] = HOSTILE if field == "name" else {HOSTILE: {}} if field == "methods" else [HOSTILE]
    with pytest.raises(SpecError) as refused:
        parse_spec(raw)
    assert field in str(refused.value)


def test_a_hostile_hyper_parameter_value_is_refused():
    with pytest.raises(SpecError):
        parse_spec(dict(BASE, methods={"roft-mol": {"fit_order": HOSTILE}}))


@pytest.fixture
def hostile_store(tmp_path) -> Path:
    """The v0 store with every string column of its rows, and its saved spec's description, made hostile
    (as a hostile writer of the store could)."""
    store = tmp_path / "store"
    shutil.copytree(FIXTURE, store)
    for path in glob.glob(str(store / "trials" / "*.parquet")):
        rows = pd.read_parquet(path)
        for field in ("backbone", "method_label", "task", "sweep"):  # label_setting: parsed, refused if hostile
            rows[field] = rows[field].astype(str) + HOSTILE
        rows.to_parquet(path)
    spec = yaml.safe_load((store / "specs" / "mini.yaml").read_text())
    spec["description"] = HOSTILE
    (store / "specs" / "mini.yaml").write_text(yaml.safe_dump(spec))
    return store


def _latex_sequences(text: str) -> list[str]:
    return [bad for bad in ("\\input{", "\\write18{") if bad in text]


def test_report_escapes_every_string_and_writes_only_below_out(hostile_store, tmp_path, capsys):
    out = tmp_path / "report"
    before = {p for p in tmp_path.rglob("*") if not p.is_relative_to(out)}
    code = main(["report", "--store", str(hostile_store), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    page = (out / "index.html").read_text()
    assert "alert(" in page and "<script>alert" not in page, "the hostile string is missing or unescaped"
    assert "&lt;script&gt;" in page
    assert {p for p in tmp_path.rglob("*") if not p.is_relative_to(out)} == before
    assert not list(tmp_path.rglob("evil")) and not list(tmp_path.rglob("pwned"))


@pytest.mark.parametrize("fmt", ["latex", "html", "markdown"])
def test_tables_escape_every_string(hostile_store, capsys, fmt):
    code = main(["table", "--store", str(hostile_store), "--rows", "backbone,method", "--cols", "task",
                 "--format", fmt])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "alert(" in captured.out, "the hostile string did not reach the table"
    if fmt == "latex":
        assert _latex_sequences(captured.out) == [] and "\\textbackslash{}input\\{" in captured.out
    else:  # HTML, and Markdown (whose renderers pass raw HTML through)
        assert "<script>" not in captured.out and "&lt;script&gt;" in captured.out
    if fmt == "markdown":  # one row per line, every row with as many cells as the header
        rows = [line for line in captured.out.splitlines() if line.startswith("|")]
        assert len({line.replace("\\|", "").count("|") for line in rows}) == 1, captured.out


def test_the_table_of_every_grid_point_escapes_every_string(hostile_store, capsys):
    assert main(["table", "--store", str(hostile_store), "--all-points"]) == 0
    out = capsys.readouterr().out
    assert "alert(" in out and "<script>" not in out
    rows = [line for line in out.splitlines() if line.startswith("|")]
    assert len({line.replace("\\|", "").count("|") for line in rows}) == 1, out
