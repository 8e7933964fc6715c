"""The registered backbones with the state of their checkpoints, as plain data (``roft backbones list``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trainables.data import sources
from trainables.data.dataset import checked_sha256
from trainables.models.backbones import BACKBONES

# The state of a backbone's checkpoint, as ``roft backbones list`` shows it.
CHECKPOINT_STATES = {
    "verified": "a registered file whose sha256 matches the registry",
    "mismatch": "a registered file whose sha256 differs from the registry's (trials refuse it)",
    "recorded": "a user-supplied file: its sha256 is recorded with each trial, not verified",
    "missing": "no file found (nothing is downloaded to list backbones)",
    "-": "random initialisation: no file",
}


@dataclass(frozen=True)
class BackboneRow:
    name: str
    architecture: str
    pretraining: str
    checkpoint: str  # a key of CHECKPOINT_STATES
    file: str  # the registered file, $VARIABLE for a user-supplied one, or (random init)
    path: Path | None = None  # where the checkpoint was found

    @property
    def available(self) -> bool:
        """Whether a trial can use the backbone as it stands."""
        return self.checkpoint in ("verified", "recorded", "-")


def checkpoint_state(backbone, data_root: sources.DataRoot) -> tuple[str, Path | None]:
    """(state, path) of ``backbone``'s checkpoint; the state is a key of :data:`CHECKPOINT_STATES`."""
    if not backbone.is_pretrained:
        return "-", None
    try:
        path = backbone.checkpoint_path(data_root, download=False)
    except sources.DataUnavailableError:
        return "missing", None
    if backbone.data_file is None:
        return "recorded", path
    try:
        checked_sha256(backbone.data_file, path)
    except sources.ChecksumError:
        return "mismatch", path
    return "verified", path


def backbone_inventory(data_root: sources.DataRoot) -> list[BackboneRow]:
    """Every registered backbone with the state of its checkpoint (registered files are hashed)."""
    rows = []
    for name, backbone in BACKBONES.items():
        state, path = checkpoint_state(backbone, data_root)
        file = backbone.data_file or (f"${backbone.user_file_env}" if backbone.user_file_env else "(random init)")
        rows.append(BackboneRow(name, backbone.gnn_type, backbone.pretraining, state, file, path))
    return rows
