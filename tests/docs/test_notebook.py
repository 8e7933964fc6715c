"""docs/notebooks/tour.ipynb runs on its committed store, and shows what it computes.

The notebook is executed with nbclient in a fresh kernel (this environment's Python), from its own
folder; no cell may fail, and every text it shows (printed lines, frames' and values' text) must be
what the committed notebook shows, so its outputs never drift from the store and the API.
"""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "docs" / "notebooks"
TOUR = NOTEBOOKS / "tour.ipynb"


def texts(cell) -> list[str]:
    """The text a code cell shows: its printed lines and the text of its values, figures as their repr.
    Consecutive chunks of one stream are joined: a kernel under load may send one print in two chunks."""
    out: list[str] = []
    previous = None
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            if previous is not None and previous.get("output_type") == "stream" and previous["name"] == output["name"]:
                out[-1] += output["text"]
            else:
                out.append(output["text"])
        elif "data" in output:
            out.append(output["data"].get("text/plain", ""))
        elif output["output_type"] == "error":
            out.append(f"{output['ename']}: {output['evalue']}")
        previous = output
    return out


@pytest.fixture(scope="module")
def executed():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    committed = nbformat.read(TOUR, as_version=4)
    notebook = nbformat.read(TOUR, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    nbclient.NotebookClient(notebook, timeout=300, startup_timeout=180, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return committed, notebook


def test_every_cell_runs_and_shows_what_the_committed_notebook_shows(executed):
    committed, notebook = executed
    code = [(c, e) for c, e in zip(committed.cells, notebook.cells) if c.cell_type == "code"]
    assert len(code) >= 8
    for i, (before, after) in enumerate(code):
        assert before.source == after.source
        assert texts(after) == texts(before), f"code cell {i} shows something else now:\n{after.source}"


def test_the_tour_makes_the_table_and_draws_its_curves(executed):
    _, notebook = executed
    shown = "\n".join(text for cell in notebook.cells if cell.cell_type == "code" for text in texts(cell))
    assert "| hu-gcn-supervised-contextpred | **56.59 ± 2.50 (n=3)** |" in shown  # render_frame(roft.table(...))
    assert "68.9" in shown and "56.3" in shown  # the demo's BBBP cells, in the pivoted grid
    images = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs
              if "image/png" in o.get("data", {})]
    assert len(images) == 2  # the few-shot curve and the learning curves
    assert all(len(o["data"]["image/png"]) > 10_000 for o in images)
