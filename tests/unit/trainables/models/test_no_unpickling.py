"""A checkpoint is never unpickled: a pickle whose ``__reduce__`` would create a marker file, given as a
user backbone's checkpoint, is refused in one line and the marker never appears."""

from __future__ import annotations

import pickle

import pytest

from trainables.core.data_root import DataRoot
from trainables.models.backbones import BACKBONES, read_checkpoint
from trainables.models.shapes import CheckpointMismatchError


class Bomb:
    """Unpickling this calls ``open(marker, "w")``: the file appears if anything unpickles it."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_bomb(path, marker) -> None:
    path.write_bytes(pickle.dumps({"x_embedding1.weight": Bomb(marker)}, protocol=2))


def test_a_pickle_bomb_as_a_checkpoint_is_refused_in_one_line(tmp_path, monkeypatch):
    marker, bomb = tmp_path / "exploded", tmp_path / "bomb.pth"
    write_bomb(bomb, marker)
    assert not marker.exists()
    backbone = BACKBONES.get("mole-bert")
    monkeypatch.setenv(backbone.user_file_env, str(bomb))
    with pytest.raises(CheckpointMismatchError) as refused:
        read_checkpoint(backbone, DataRoot(None))
    assert not marker.exists()
    message = str(refused.value)
    assert "\n" not in message and str(bomb) in message and "weights only" in message.lower(), message
