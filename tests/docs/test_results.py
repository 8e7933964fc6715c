"""docs/results: every table quoted there regenerates, byte for byte, from the committed store."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from orchestrator.cli import main as roft

RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"


def test_the_cpu_row_table_regenerates_from_its_committed_store():
    out = io.StringIO()
    with redirect_stdout(out):
        assert roft(["table", "--store", str(RESULTS / "store-gin-scratch-cpu"), "--rows", "backbone", "--cols", "task",
                     "--anchors"]) == 0
    assert out.getvalue() == (RESULTS / "gin-scratch-cpu.md").read_text()


@pytest.mark.parametrize("share", ["whole", "quarter"])
def test_the_placement_tables_regenerate_from_their_committed_stores(share):
    out = io.StringIO()
    with redirect_stdout(out):
        assert roft(["placement", "--store", str(RESULTS / f"store-placement-{share}"), "--timeline"]) == 0
    assert out.getvalue() == (RESULTS / f"placement-{share}.md").read_text()


def test_the_quirks_table_regenerates_from_its_committed_store():
    out = io.StringIO()
    with redirect_stdout(out):
        assert roft(["table", "--store", str(RESULTS / "store-quirks"), "--rows", "method", "--cols", "task",
                     "--all-points"]) == 0
    assert out.getvalue() == (RESULTS / "quirks-table.md").read_text()
