"""Encoder shapes: default sizes, scratch shapes, shapes read from checkpoints and sidecars.

A shape is a :class:`~trainables.models.gnn.GNNShape` (Hu GNNs: type, layers, width, dropout)
or a :class:`~trainables.models.gps.GPSShape`. Scratch encoders take the spec's size, or their
architecture's default: 5 x 300 for the Hu GNNs, 16 x 256 with 8 attention heads for GPS.
"""

from __future__ import annotations

from dataclasses import asdict

import torch

from trainables.models.gnn import GNNShape
from trainables.models.gps import GPSShape


class CheckpointMismatchError(ValueError):
    """A checkpoint's state dict does not match the architecture key for key."""


DEFAULT_SIZE = {"gps": (16, 256)}  # scratch (layers, width) when the spec gives none; the Hu GNNs: 5 x 300
GPS_HEADS = 8  # attention heads of a scratch GPS


def default_size(gnn_type: str) -> tuple[int, int]:
    return DEFAULT_SIZE.get(gnn_type, (5, 300))


def scratch_shape(gnn_type: str, num_layers: int | None, emb_dim: int | None, dropout: float):
    """The shape of a randomly initialised encoder (``None``: the architecture's default size)."""
    layers, width = default_size(gnn_type)
    layers, width = num_layers or layers, emb_dim or width
    if gnn_type == "gps":
        if width % GPS_HEADS:
            raise ValueError(
                f"emb_dim {width} is not accepted for a GPS encoder; accepted: a multiple of its "
                f"{GPS_HEADS} attention heads"
            )
        return GPSShape(layers, width, GPS_HEADS, dropout=dropout)
    return GNNShape(gnn_type, layers, width, dropout)


def infer_shape(state: dict[str, torch.Tensor], gnn_type: str, dropout: float) -> GNNShape:
    """Number of layers and width of a Hu-layout state dict."""
    if "x_embedding1.weight" not in state:
        raise CheckpointMismatchError(
            f"not a Hu-layout GNN state dict: no 'x_embedding1.weight' among {sorted(state)[:8]}..."
        )
    layers = {int(k.split(".")[1]) for k in state if k.startswith("batch_norms.")}
    if not layers:
        raise CheckpointMismatchError("not a Hu-layout GNN state dict: no 'batch_norms.<i>.*' keys")
    return GNNShape(
        gnn_type, num_layers=max(layers) + 1, emb_dim=int(state["x_embedding1.weight"].shape[1]), dropout=dropout
    )


def shape_dict(shape) -> dict:
    """The sidecar's ``shape``: the shape's fields and its ``gnn_type``."""
    return {"gnn_type": shape.gnn_type, **asdict(shape)}


def shape_from_dict(values: dict, dropout: float | None = None):
    """The inverse of :func:`shape_dict`, with ``dropout`` replaced when given (fine-tuning's own)."""
    values = dict(values)
    gnn_type = values.pop("gnn_type")
    if dropout is not None:
        values["dropout"] = dropout
    if gnn_type == "gps":
        return GPSShape(**values)
    return GNNShape(**values)
