"""A store file is read as Parquet only: a pickle bomb in its place (a pickle whose ``__reduce__``
would create a marker file) is never unpickled, and the command says so in at most a line or two."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest

from orchestrator.cli import main

FIXTURE = Path(__file__).resolve().parents[3] / "fixtures" / "store-v0"


class Bomb:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("table", ["trials", "epochs", "failures"])
@pytest.mark.parametrize("command", [["table"], ["store", "list"], ["status"]])
def test_a_pickle_bomb_as_a_store_file_is_never_unpickled(tmp_path, capsys, table, command):
    store, marker = tmp_path / "store", tmp_path / "exploded"
    shutil.copytree(FIXTURE, store)
    (store / table).mkdir(exist_ok=True)
    (store / table / "part-0.parquet").write_bytes(pickle.dumps(Bomb(marker), protocol=2))
    code = main([*command, "--store", str(store)])
    err = capsys.readouterr().err
    assert not marker.exists()
    assert code in (0, 1, 2) and "Traceback" not in err, err
    assert len([line for line in err.splitlines() if "part-0.parquet" in line]) <= 2, err
