"""The report of stores of three sizes, read as a browser shows it: one cell, the demo's, the methods'.

Each page is built, then rendered by headless Chromium (a screenshot with ink on it, the DOM after
rendering); what each section says is checked on the page's text, so a section without data must
say why, a one-method table has no bold cell, and figures appear only where their axis has two
values or more.
"""

from __future__ import annotations

import html
import re

import pytest

from orchestrator.analysis.report import build_report
from orchestrator.bench.stores import write_synthetic_store
from orchestrator.store.results import ResultStore
from tests.unit.orchestrator.analysis import browser
from tests.unit.orchestrator.store.rows import write_demo_store, write_one_cell_store


def text_of(page) -> str:
    """The page's text, tags removed and entities decoded (what a reader sees, on one line)."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page.read_text())).split())


STORES = {"one-cell": write_one_cell_store, "demo": lambda s: write_demo_store(s, dirty_seeds=(2,)),
          "methods": lambda s: write_synthetic_store(s, 1000, seeds=3)}


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """name -> the report page of that store, built on first use."""
    root = tmp_path_factory.mktemp("pages")

    class Pages(dict):
        def __missing__(self, name):
            store = ResultStore(root / name / "store")
            STORES[name](store)
            self[name] = build_report(store, root / name / "report")
            return self[name]

    return Pages()


def test_a_one_cell_page_says_why_each_section_is_empty(pages):
    page = pages["one-cell"]
    text = text_of(page)
    assert "from 3 finished trials of 1 sweep(s) (one-cell)" in text
    assert "<td class='best'>" not in page.read_text()  # one method: nothing to compare, nothing in bold
    assert "no cell in bold (one value per column: nothing to compare)" in text
    assert "No paired test: only full-ft ran here: there is no other method to compare with it" in text
    assert "Full FT is missing" not in text
    assert "No rank analysis: ranking needs at least 3 methods" in text
    assert "Not drawn: every task has one label setting only (all training labels); a curve needs at least two" in text
    assert "Not drawn: every backbone here has the same pre-training (none)" in text
    assert "No scratch backbone" not in text and "No pre-trained backbone in these trials (only scratch-gin)" in text
    # the published number beside the measured one, in the table and in a figure
    assert "published 65.8 ± 4.5 (n=10" in text and "figures/published.png" in page.read_text()
    assert "uncommitted changes" in text and "ran code with uncommitted changes" not in text


def test_the_demo_page_compares_pretrained_with_random_init_and_flags_dirty_rows(pages):
    page = pages["demo"]
    text = text_of(page)
    assert "Pre-trained hu-gcn-supervised-contextpred beats scratch-gcn: +12.6 ROC-AUC points on BBBP (68.9 vs 56.3)" \
        in text
    assert "GCN, supervised + ContextPred pre-training (hu-gcn-supervised-contextpred) · scaffold split · all " \
           "training labels" in text
    assert "figures/pretraining.png" in page.read_text()
    assert "No paired test: every test compares a method with full-ft, and full-ft did not run here (methods: lp)" \
        in text
    assert "4 of 12 trials ran code with uncommitted changes (code version 0.3.0+g0123456789.dirty)" in text
    assert "Not drawn: every task has one label setting only" in text  # 62.6 averaged over backbones: gone
    assert "No published number to compare with" in text


@pytest.mark.slow  # a report of 1,350 trials: every figure drawn
def test_the_methods_page_draws_every_figure(pages):
    page = pages["methods"]
    source = page.read_text()
    for name in ("fewshot_curves", "alpha_curves", "mechanisms", "pretraining", "critical_difference"):
        assert f"figures/{name}.png" in source, name
        assert (page.parent / "figures" / f"{name}.png").stat().st_size > 1000
    assert "Not drawn" not in source and "Holm-corrected" in source and "Friedman chi2" in source


@pytest.mark.slow
@pytest.mark.parametrize("name", ["one-cell", "demo", "methods"])
def test_each_page_renders_in_headless_chromium(pages, name, tmp_path):
    page = pages[name]
    shot = browser.screenshot(page, tmp_path / f"{name}.png", height=3000)
    assert browser.ink(shot) > 0.02  # text, tables and figures drawn: not a blank page
    rendered = browser.dom(page)
    assert "roft report" in rendered and "<table" in rendered and "finished trials" in rendered
    for image in re.findall(r"src=\"(figures/[^\"]+)\"", rendered):
        assert (page.parent / image).stat().st_size > 1000, image  # every image the page shows exists
