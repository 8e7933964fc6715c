"""Which pending trials train together as one fused group (see :mod:`trainables.training.fused`).

Trials fuse when their method is ``fusable`` and they share what a fused group must share: the
GNN architecture (type, depth, width: pre-trained backbones of one architecture fuse, each
trial keeping its own initial weights), the task, the split, the label setting (hence as many
fitting molecules), the training recipe and the method's stages (their epochs and learning rates:
LP-FT's two stages fuse with LP-FT's of the same lengths). Seeds, label subsets, backbones, methods
and what each trains may differ.
Each compatible set is cut into groups of at most ``max_size`` trials; a group of one is an
ordinary trial. A unit is what Ray Tune schedules: one trial, or one group.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import lru_cache

from trainables.core.config import TrialSpec
from trainables.core.data_root import DataRoot
from trainables.methods import make_method
from trainables.models.backbones import BACKBONES, read_checkpoint
from trainables.models.shapes import default_size, infer_shape
from trainables.training.fused.model import FUSABLE_GNN_TYPES


@dataclass(frozen=True)
class Unit:
    """One Ray Tune trial: a single trial, or a fused group of trials."""

    specs: tuple[TrialSpec, ...]

    @property
    def fused(self) -> bool:
        return len(self.specs) > 1

    @property
    def key(self) -> str:
        """The trial's key, or ``fused-`` + a digest of the members' keys."""
        if not self.fused:
            return self.specs[0].key()
        return "fused-" + hashlib.sha256(",".join(sorted(s.key() for s in self.specs)).encode()).hexdigest()[:20]

    def to_config(self) -> dict:
        if not self.fused:
            return {"key": self.key, "spec": self.specs[0].to_dict()}
        return {"key": self.key, "group": [s.to_dict() for s in self.specs], "members": [s.key() for s in self.specs]}


@lru_cache(maxsize=None)
def _checkpoint_shape(backbone: str, data_root: DataRoot) -> tuple[int, int] | None:
    """(layers, width) of a pre-trained backbone's checkpoint, read once per planning process."""
    weights = read_checkpoint(BACKBONES.get(backbone), data_root)
    if weights is None:
        return None
    shape = infer_shape(weights.state, BACKBONES.get(backbone).gnn_type, 0.0)
    return shape.num_layers, shape.emb_dim


@lru_cache(maxsize=4096)
def _schedule(method: str, params: tuple, epochs: int) -> tuple | None:
    """The stages a method with these hyper-parameters trains (what its fused group must share), or
    ``None`` when it does not fuse (memoised: a grid repeats them)."""
    return make_method(method, dict(params)).fusion_signature(epochs)


def fusion_key(spec: TrialSpec, data_root: DataRoot = DataRoot()) -> tuple | None:
    """What a trial must share with its group (``None``: it trains alone)."""
    backbone = BACKBONES.get(spec.backbone)
    schedule = _schedule(spec.method, tuple(sorted(spec.method_params.items())), spec.recipe.epochs)
    if schedule is None or backbone.gnn_type not in FUSABLE_GNN_TYPES:
        return None
    if backbone.is_pretrained:
        try:
            shape = _checkpoint_shape(spec.backbone, data_root)
        except Exception:  # an unreadable checkpoint: the trial alone reports it, a group would fail whole
            return None
    else:
        layers, width = default_size(backbone.gnn_type)
        shape = (spec.num_layers or layers, spec.emb_dim or width)
    return (
        backbone.gnn_type,
        shape,
        spec.task,
        spec.split,
        spec.label_setting,
        spec.recipe,
        spec.data_sha256,
        spec.protocol_version,
        schedule,
    )


def plan_units(
    trials: list[TrialSpec], fuse: bool = True, max_size: int = 64, data_root: DataRoot = DataRoot()
) -> list[Unit]:
    """``trials`` as Ray Tune units: fused groups of compatible trials (in first-seen order), then singles."""
    if max_size < 1:
        raise ValueError(f"fuse_max={max_size} is not accepted; accepted: an integer >= 1")
    if not fuse:
        return [Unit((t,)) for t in trials]
    compatible: dict[tuple, list[TrialSpec]] = {}
    singles: list[TrialSpec] = []
    for trial in trials:
        key = fusion_key(trial, data_root)
        if key is None:
            singles.append(trial)
        else:
            compatible.setdefault(key, []).append(trial)
    units: list[Unit] = []
    for members in compatible.values():
        n_groups = math.ceil(len(members) / max_size)
        size = math.ceil(len(members) / n_groups)  # balanced: 65 trials at max 64 -> 33 + 32, not 64 + 1
        units.extend(Unit(tuple(members[i : i + size])) for i in range(0, len(members), size))
    return units + [Unit((t,)) for t in singles]
