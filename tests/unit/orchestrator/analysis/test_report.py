import shutil
import subprocess

import pytest

from orchestrator.analysis.report import build_report
from orchestrator.bench.stores import write_synthetic_store
from orchestrator.store.results import ResultStore

FIGURES = ["critical_difference", "fewshot_curves", "alpha_curves", "mechanisms", "pretraining"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    store = ResultStore(root / "store")
    write_synthetic_store(store, 1000, seeds=3)
    (store.root / "specs").mkdir()
    (store.root / "specs" / "synthetic.yaml").write_text("name: synthetic\n")
    return build_report(store, root / "out")


def test_every_figure_is_written_and_not_empty(report):
    for name in FIGURES:
        for suffix in (".png", ".svg"):
            path = report.parent / "figures" / f"{name}{suffix}"
            assert path.is_file() and path.stat().st_size > 1000, path


def test_the_page_holds_tables_tests_ranks_and_provenance(report):
    page = report.read_text()
    assert page.count("<table class='results'>") == 3 * 3  # backbones x label settings (one split)
    assert "Holm-corrected" in page and "Friedman chi2" in page
    assert "name: synthetic" in page  # the spec, from the store
    assert (report.parent / "selected.csv").stat().st_size > 0


@pytest.mark.slow
def test_the_page_renders_in_headless_chromium(report, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "Debian's chromium is needed (apt-get install chromium); .ci/run installs it"
    shot = tmp_path / "report.png"
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,2400"]
    subprocess.run([*command, f"--screenshot={shot}", report.as_uri()], check=True, capture_output=True, timeout=120)
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    dom = subprocess.run([*command, "--dump-dom", report.as_uri()], check=True, capture_output=True, text=True,
                         timeout=120).stdout
    assert "roft report" in dom and "<table" in dom and "figures/critical_difference.png" in dom
