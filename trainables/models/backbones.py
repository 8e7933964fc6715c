"""Backbone registry: pre-trained checkpoints and random-init baselines.

A :class:`Backbone` names a GNN architecture and where its pre-trained weights come from:

* the 9 Hu et al. (2020) checkpoints shipped in ``weights/pretrain_gnns_chem`` (GCN,
  GraphSAGE, GAT x contextpred / supervised / supervised_contextpred), e.g. ``hu-gcn-contextpred``;
* ``mole-bert`` and ``graphmae``: GIN 5x300 files in the Hu layout, supplied by the user (they
  cannot be downloaded here) through ``ROFT_MOLE_BERT_CKPT`` / ``ROFT_GRAPHMAE_CKPT`` or at
  ``<data root>/weights/user/{mole-bert,graphmae}.pth``;
* ``roft-<arch>-<objective>`` for arch ``gin, gcn, graphsage, gat, gps`` and objective
  ``attrmask``, ``contrastive`` (self-supervised) or ``descriptors`` (supervised): made here by
  ``roft pretrain --install`` (:mod:`trainables.pretrain`), found at
  ``<cache>/weights/user/<name>.pth`` or through ``ROFT_<ARCH>_<OBJECTIVE>_CKPT``; their size
  comes from the checkpoint (for GPS, from the ``.json`` sidecar beside it: attention heads are
  not in the state dict);
* ``scratch-{gin,gcn,graphsage,gat,gps}``: random initialisation (the no-pre-training
  baseline); their size comes from the sweep spec (default 5x300, GPS 16x256 with 8 heads).

A new downloadable checkpoint is one :func:`register_backbone` entry with its file's
:class:`~trainables.data.sources.DataFile` (path below the data root, sha256, canonical URL).

Checkpoints are loaded **strictly**: any missing or unexpected key, or a shape mismatch, raises
:class:`CheckpointMismatchError` listing them all. The sha256 of every file is verified against
the registry (user-supplied files: recorded, not verified).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from trainables.core.paths import user_path
from trainables.core.registry import Registry
from trainables.data import sources
from trainables.models.gnn import GNN_TYPES, GNNShape, HuGNN
from trainables.models.gps import GPSShape
from trainables.models.predictor import GraphPredictor
from trainables.models.shapes import CheckpointMismatchError, infer_shape, scratch_shape, shape_from_dict

PRETRAINING_KINDS = ("self-supervised", "supervised", "both", "none")
ARCHITECTURES = (*GNN_TYPES, "gps")  # the architectures a backbone can name (gnn_type)


@dataclass(frozen=True)
class Backbone:
    name: str
    gnn_type: str
    pretraining: str
    description: str
    data_file: str | None = None  # registered file below the data root
    user_file_env: str | None = None  # environment variable naming a user-supplied file

    @property
    def is_pretrained(self) -> bool:
        return self.pretraining != "none"

    def checkpoint_path(self, data_root: sources.DataRoot, download: bool = True) -> Path | None:
        """Local path of the pre-trained weights (``None`` for scratch backbones)."""
        if self.data_file is not None:
            return sources.resolve(self.data_file, data_root, download=download)
        if self.user_file_env is None:
            return None
        explicit = os.environ.get(self.user_file_env)
        root = data_root.folder
        candidates = [user_path(explicit, self.user_file_env)] if explicit else []
        if root is not None:
            candidates.append(root / "weights" / "user" / f"{self.name}.pth")
        candidates.append(installed_checkpoint_path(self.name))
        for path in candidates:
            if path.is_file():
                return path
        raise sources.DataUnavailableError(
            f"backbone {self.name}: its checkpoint is not distributed with roft; looked at "
            f"{', '.join(str(p) for p in candidates)}. Set {self.user_file_env}=/path/to/file.pth "
            f"({self.expected_layout()}) or place it at <data root>/weights/user/{self.name}.pth"
            + (f"; this backbone is the {self.description}" if self.name.startswith("roft-") else "")
            + "."
        )

    def expected_layout(self) -> str:
        if self.gnn_type == "gps":
            return (
                "a GPS state dict in roft's layout, trainables/models/gps.py, with the model.json sidecar of "
                "`roft pretrain` beside it as <name>.json"
            )
        layers = {"gin": "gnns.i.mlp.*", "gat": "gnns.i.weight_linear, gnns.i.att, gnns.i.bias"}.get(
            self.gnn_type, "gnns.i.linear"
        )
        return (
            f"a {self.gnn_type.upper()} state dict in the Hu et al. layout: x_embedding1, x_embedding2, {layers}, "
            f"gnns.i.edge_embedding*, batch_norms.i.*"
        )

    def is_available(self, data_root: sources.DataRoot) -> bool:
        if not self.is_pretrained:
            return True
        try:
            self.checkpoint_path(data_root, download=False)
            return True
        except sources.DataUnavailableError:
            return False


BACKBONES: Registry[Backbone] = Registry("backbone")


def register_backbone(backbone: Backbone, file: sources.DataFile | None = None) -> Backbone:
    """Register ``backbone``, and its checkpoint's data file when given (path below the data root,
    sha256, URL: ``file.relpath`` must be ``backbone.data_file``); a backbone whose file is registered
    already, or that has none (user-supplied, scratch), needs none."""
    if backbone.gnn_type not in ARCHITECTURES:
        raise ValueError(
            f"backbone {backbone.name}: architecture {backbone.gnn_type!r} is not one of {', '.join(ARCHITECTURES)}"
        )
    if file is not None:
        if file.relpath != backbone.data_file:
            raise ValueError(f"backbone {backbone.name}: its data_file is {backbone.data_file!r}, not {file.relpath!r}")
        sources.FILES.register(file.relpath, file)
    elif backbone.data_file is not None and backbone.data_file not in sources.FILES:
        raise ValueError(
            f"backbone {backbone.name}: its file {backbone.data_file!r} is not registered; pass its "
            "DataFile (path below the data root, sha256, URL)"
        )
    BACKBONES.register(backbone.name, backbone)
    return backbone


_KIND = {"contextpred": "self-supervised", "supervised": "supervised", "supervised_contextpred": "both"}
for _arch, _label in (("gcn", "GCN"), ("graphsage", "GraphSAGE"), ("gat", "GAT")):
    for _strategy, _kind in _KIND.items():
        _name = f"hu-{_arch}-{_strategy.replace('_', '-')}"
        register_backbone(
            Backbone(
                _name,
                _arch,
                _kind,
                f"Hu et al. 2020 {_label} 5x300, {_strategy} pre-training",
                data_file=f"weights/pretrain_gnns_chem/{_arch}_{_strategy}.pth",
            )
        )
register_backbone(
    Backbone(
        "mole-bert",
        "gin",
        "self-supervised",
        "Mole-BERT GIN 5x300 (user-supplied file, Hu layout)",
        user_file_env="ROFT_MOLE_BERT_CKPT",
    )
)
register_backbone(
    Backbone(
        "graphmae",
        "gin",
        "self-supervised",
        "GraphMAE GIN 5x300 (user-supplied file, Hu layout)",
        user_file_env="ROFT_GRAPHMAE_CKPT",
    )
)
# objective of `roft pretrain` -> (short name in backbone names, kind of pre-training)
PRETRAINING_OBJECTIVES = {
    "attr-mask": ("attrmask", "self-supervised"),
    "contrastive": ("contrastive", "self-supervised"),
    "descriptors": ("descriptors", "supervised"),
}
for _objective, (_short, _kind) in PRETRAINING_OBJECTIVES.items():
    for _arch in ARCHITECTURES:
        register_backbone(
            Backbone(
                f"roft-{_arch}-{_short}",
                _arch,
                _kind,
                f"{_arch.upper()} pre-trained by `roft pretrain --objective {_objective} --arch {_arch} --install`",
                user_file_env=f"ROFT_{_arch.upper()}_{_short.upper()}_CKPT",
            )
        )
for _arch in ARCHITECTURES:
    register_backbone(
        Backbone(f"scratch-{_arch}", _arch, "none", f"{_arch.upper()} with random initialisation (no pre-training)")
    )


def installed_checkpoint_path(name: str) -> Path:
    """Where ``roft pretrain --install`` puts the checkpoint of user backbone ``name``."""
    return sources.cache_dir() / "weights" / "user" / f"{name}.pth"


def checkpoint_shape(backbone: Backbone, pretrained: PretrainedWeights, dropout: float) -> GNNShape | GPSShape:
    """The encoder shape of a checkpoint: from its state dict (Hu layout) or its sidecar (GPS)."""
    if backbone.gnn_type != "gps":
        return infer_shape(pretrained.state, backbone.gnn_type, dropout)
    sidecar = pretrained.path.with_suffix(".json")
    if not sidecar.is_file():
        raise CheckpointMismatchError(
            f"backbone {backbone.name}: {pretrained.path} is a GPS checkpoint and needs "
            f"its sidecar {sidecar} (written by `roft pretrain`), which holds its shape"
        )
    meta = json.loads(sidecar.read_text())
    try:
        return shape_from_dict(meta["shape"], dropout=dropout)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointMismatchError(f"backbone {backbone.name}: {sidecar} holds no valid GPS shape ({exc})") from exc


def load_state_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``module.load_state_dict(state)`` that reports every mismatch at once."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(state))
        if tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = [f"{source} does not match the {type(module).__name__} architecture"]
        if missing:
            parts.append(f"missing keys: {missing}")
        if unexpected:
            parts.append(f"unexpected keys: {unexpected}")
        if shapes:
            parts.append(f"shape mismatches: {shapes}")
        raise CheckpointMismatchError("; ".join(parts))
    module.load_state_dict(state, strict=True)


@dataclass
class PretrainedWeights:
    state: dict[str, torch.Tensor]
    sha256: str
    path: Path


def read_checkpoint(backbone: Backbone, data_root: sources.DataRoot) -> PretrainedWeights | None:
    """The backbone's pre-trained state dict with its verified sha256 (``None`` for scratch)."""
    path = backbone.checkpoint_path(data_root)
    if path is None:
        return None
    if backbone.data_file is not None:
        from trainables.data.dataset import checked_sha256  # registry-verified, memoised

        sha = checked_sha256(backbone.data_file, path)
    else:
        sha = sources.sha256_of(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only: a pickle that would run code is refused here, never executed
        reason = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")[:300]
        raise CheckpointMismatchError(
            f"backbone {backbone.name}: cannot read {path} as a state dict of tensors "
            f"(torch.load with weights only: {type(exc).__name__}: {reason}); accepted: "
            "a file written by torch.save of a state dict"
        ) from exc
    if not isinstance(state, dict):
        raise CheckpointMismatchError(
            f"backbone {backbone.name}: {path} holds a {type(state).__name__}, not a state dict"
        )
    return PretrainedWeights(state=state, sha256=sha, path=path)


def build_model(
    backbone: Backbone, num_tasks: int, shape: GNNShape | GPSShape, pretrained: PretrainedWeights | None
) -> GraphPredictor:
    """A :class:`GraphPredictor` whose encoder holds the pre-trained weights (strictly loaded).

    The head is freshly initialised (by the caller's RNG state). Scratch backbones use
    ``shape``'s size (a :class:`GNNShape` or ``GPSShape``) in the backbone's architecture;
    pre-trained ones take their shape from the checkpoint, and only ``shape.dropout``.
    """
    if pretrained is None:
        if shape.gnn_type != backbone.gnn_type:
            shape = scratch_shape(backbone.gnn_type, shape.num_layers, shape.emb_dim, shape.dropout)
        return GraphPredictor(shape, num_tasks)
    shape = checkpoint_shape(backbone, pretrained, shape.dropout)
    model = GraphPredictor(shape, num_tasks)
    load_state_strict(model.gnn, pretrained.state, f"checkpoint {pretrained.path} (backbone {backbone.name})")
    return model


__all__ = [
    "BACKBONES",
    "Backbone",
    "CheckpointMismatchError",
    "GraphPredictor",
    "HuGNN",
    "PretrainedWeights",
    "build_model",
    "checkpoint_shape",
    "load_state_strict",
    "read_checkpoint",
    "scratch_shape",
]
