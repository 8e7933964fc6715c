import os
from pathlib import Path

import pytest

from trainables.core.paths import user_path


def test_a_home_is_expanded_and_other_paths_are_kept(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert user_path("~/runs/store") == tmp_path / "runs" / "store"
    assert user_path("runs/~x") == Path("runs/~x")
    assert user_path(Path("/a/b")) == Path("/a/b")


def test_the_home_of_no_user_names_the_value_and_what_it_is():
    with pytest.raises(ValueError) as error:
        user_path("~nosuchuser0/store", "store")
    text = str(error.value)
    assert text.startswith("store '~nosuchuser0/store': '~nosuchuser0' names no home folder") and os.linesep not in text
