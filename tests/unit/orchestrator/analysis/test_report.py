import shutil
import subprocess

import pytest

from orchestrator.analysis.report import build_report, shown_store
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


@pytest.mark.slow
def test_every_figure_is_written_and_not_empty(report):
    for name in FIGURES:
        for suffix in (".png", ".svg"):
            path = report.parent / "figures" / f"{name}{suffix}"
            assert path.is_file() and path.stat().st_size > 1000, path


@pytest.mark.slow
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
    dom = subprocess.run(
        [*command, "--dump-dom", report.as_uri()], check=True, capture_output=True, text=True, timeout=120
    ).stdout
    assert "roft report" in dom and "<table" in dom and "figures/critical_difference.png" in dom


@pytest.fixture(scope="module")
def alpha_search_store(tmp_path_factory):
    """WiSE-FT only through an Optuna alpha search (``wise-ft: {search: optuna, n_trials: 8}``)."""
    from tests.unit.orchestrator.store.rows import write_alpha_search_store

    store = ResultStore(tmp_path_factory.mktemp("alpha-search") / "store")
    write_alpha_search_store(store)
    return store


def test_a_store_whose_wise_ft_rows_all_come_from_an_alpha_search_gets_its_page(alpha_search_store, tmp_path):
    page = build_report(alpha_search_store, tmp_path / "out")
    text = page.read_text()
    assert "figures/alpha_curves.png" in text
    assert "figures/fewshot_curves.png" not in text  # one label setting: no curve, and the page says why
    assert "Not drawn: every task has one label setting only (all training labels)" in text
    assert (tmp_path / "out" / "figures" / "alpha_curves.png").stat().st_size > 1000


def test_a_filter_that_leaves_out_the_alpha_search_trials_writes_the_page(alpha_search_store, tmp_path):
    page = build_report(alpha_search_store, tmp_path / "out", where={"method": ["full-ft"]})
    text = page.read_text()
    assert "alpha_curves" not in text  # the search points belong to trials the filter left out
    assert "Not drawn: no WiSE-FT grid and no alpha search among these trials" in text
    page = build_report(alpha_search_store, tmp_path / "esol", where={"task": ["esol"]})
    assert "figures/alpha_curves.png" in page.read_text()


def test_the_significance_table_gives_mean_diff_in_the_tables_units(alpha_search_store, tmp_path):
    from orchestrator.analysis.significance import in_table_units, paired_tests
    from orchestrator.analysis.tables import load_trials, select

    trials = load_trials(alpha_search_store)
    tests = in_table_units(paired_tests(trials, select(trials))).set_index("task")
    # wise-ft - full-ft: 0.72 - 0.68 = 0.04 per seed: 4 percentage points on bbbp, 0.04 RMSE on esol
    assert tests.loc["bbbp", "mean_diff (table units)"] == pytest.approx(4.0)
    assert tests.loc["bbbp", "unit"] == "pp (ROC-AUC %)"
    assert tests.loc["esol", "mean_diff (table units)"] == pytest.approx(0.04)
    assert tests.loc["esol", "unit"] == "RMSE"
    text = build_report(alpha_search_store, tmp_path / "out").read_text()
    assert "<th>mean_diff (table units)</th>" in text and "<td>pp (ROC-AUC %)</td>" in text and "<td>4</td>" in text
    assert "percentage points for ROC-AUC" in text


def test_the_heading_names_a_store_inside_the_working_folder_by_its_relative_path(tmp_path, monkeypatch):
    inside = ResultStore(tmp_path / "docs" / "store")
    monkeypatch.chdir(tmp_path)
    assert shown_store(inside) == "docs/store"
    monkeypatch.chdir(tmp_path / "..")
    assert shown_store(inside) == f"{tmp_path.name}/docs/store"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert shown_store(inside) == str((tmp_path / "docs" / "store").resolve())
