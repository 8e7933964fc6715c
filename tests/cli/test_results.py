"""orchestrator/cli/results.py and store.py: a regular file given as the store is refused, naming it."""

from __future__ import annotations

import pytest

from orchestrator.cli import main


@pytest.mark.parametrize("command", [["table"], ["table", "--all-points"], ["store", "list"], ["store", "list", "--keys"],
                                     ["report", "--out", "report"], ["store", "compact"], ["alpha", "--dry-run"]])
def test_a_regular_file_as_the_store_is_refused(tmp_path, capsys, command):
    not_a_store = tmp_path / "results"
    not_a_store.write_bytes(b"PAR1")
    assert main([*command, "--store", str(not_a_store)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"roft: error: store {str(not_a_store)!r} is a file, not a folder; accepted: a local folder")
    assert len(err.splitlines()) == 1


def test_a_store_below_a_file_names_the_file(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["table", "--store", str(tmp_path / "file" / "store")]) == 2
    assert f": {str(tmp_path / 'file')!r} is a file, not a folder" in capsys.readouterr().err
