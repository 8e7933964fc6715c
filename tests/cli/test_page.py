"""``roft page refresh|check``: a page's quotes of roft's output follow its store, and nothing else runs."""

from __future__ import annotations

from orchestrator.cli import main as roft
from orchestrator.store.results import ResultStore
from tests.unit.orchestrator.store.rows import make_row

PAGE = """# Findings

Some prose that stays as it is.

<!-- output of: roft table --store {store} --cols task -->
stale text
<!-- end of output -->

More prose.
"""


def a_page(tmp_path, store_root):
    page = tmp_path / "page.md"
    page.write_text(PAGE.format(store=store_root))
    return page


def a_store(tmp_path):
    store = ResultStore(tmp_path / "store")
    store.write_trial(make_row("k0", method="full-ft", method_label="full-ft", task="bbbp", metric="roc_auc", seed=0,
                               val_metric=0.8, test_metric=0.7))
    return store


def test_check_names_a_stale_quote_refresh_rewrites_it_and_check_then_passes(tmp_path, capsys):
    store = a_store(tmp_path)
    page = a_page(tmp_path, store.root)
    assert roft(["page", "check", str(page)]) == 1
    assert f"{page}: the quote of `roft table --store {store.root} --cols task` differs" in capsys.readouterr().out
    assert roft(["page", "refresh", str(page)]) == 0
    assert "1 quoted outputs, 1 refreshed" in capsys.readouterr().out
    text = page.read_text()
    assert "stale text" not in text and "70.00 ± 0.00 (n=1)" in text
    assert text.startswith("# Findings\n\nSome prose that stays as it is.\n") and text.endswith("\nMore prose.\n")
    assert roft(["page", "check", str(page)]) == 0
    store.write_trial(make_row("k1", method="full-ft", method_label="full-ft", task="bbbp", metric="roc_auc", seed=1,
                               val_metric=0.8, test_metric=0.9))
    assert roft(["page", "check", str(page)]) == 1  # a row landed: the quote is stale again
    assert [p.name for p in tmp_path.glob(".*")] == []  # the rewrite left no temporary


def test_a_quote_of_roft_page_a_failing_command_or_no_quote_is_a_one_line_error(tmp_path, capsys):
    page = tmp_path / "page.md"
    page.write_text("<!-- output of: roft page refresh page.md -->\n<!-- end of output -->\n")
    assert roft(["page", "refresh", str(page)]) == 2
    assert "accepted: any roft command but roft page" in capsys.readouterr().err
    page.write_text("<!-- output of: roft table --store /nonexistent/store -->\nold\n<!-- end of output -->\n")
    assert roft(["page", "refresh", str(page)]) == 2
    assert "failed (exit 2)" in capsys.readouterr().err
    assert "old" in page.read_text()  # nothing written
    page.write_text("no quotes here\n")
    assert roft(["page", "check", str(page)]) == 2
    assert "quotes no output" in capsys.readouterr().err
    assert roft(["page", "check", str(tmp_path / "absent.md")]) == 2
    assert "is not a file" in capsys.readouterr().err
