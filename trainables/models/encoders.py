"""The encoder protocol shared by the Hu GNN and GraphGPS, and the model's output.

:class:`Encoder` owns the Hu atom embeddings (``x_embedding1 (120, d)``, ``x_embedding2 (3, d)``)
and names layers for the fine-tuning methods; :class:`GNNOutput` is what a
:class:`~trainables.models.predictor.GraphPredictor` returns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from trainables.data.vocabulary import NUM_ATOM_TYPES, NUM_CHIRALITY_TAGS


@dataclass
class GNNOutput:
    node: torch.Tensor  # (n, d) last layer's node representations
    graph: torch.Tensor  # (B, d) mean-pooled graph representations
    logits: torch.Tensor  # (B, T) head outputs


class Encoder(nn.Module):
    """Base of the encoders (:class:`HuGNN`, :class:`trainables.models.gps.GPSEncoder`): the Hu atom
    embeddings ``x_embedding1 (120, d)`` and ``x_embedding2 (3, d)``, and the encoder protocol
    that the fine-tuning methods use instead of naming modules: ``num_layers``; ``INPUT_PREFIXES``
    (state keys of the input encoders); ``layer_of_key(key)`` (the layer a state key belongs to,
    ``None`` for input encoders, from ``LAYER_KEY``'s first group); and, in each subclass,
    ``surgical_units()`` (what Surgical FT trains one at a time) with ``surgical_unit_names()``.

    The embeddings keep PyTorch's default initialisation here; each subclass initialises them
    where its layout always has (the order of random draws fixes a seeded model).
    """

    INPUT_PREFIXES: tuple[str, ...]
    LAYER_KEY: re.Pattern

    def __init__(self, shape):
        super().__init__()
        self.shape = shape
        self.x_embedding1 = nn.Embedding(NUM_ATOM_TYPES, shape.emb_dim)
        self.x_embedding2 = nn.Embedding(NUM_CHIRALITY_TAGS, shape.emb_dim)

    @property
    def num_layers(self) -> int:
        return self.shape.num_layers

    def embed_atoms(self, x: torch.Tensor) -> torch.Tensor:
        """``X1[atom type] + X2[chirality]``: ``x (n, 2)`` -> ``(n, d)``."""
        return self.x_embedding1(x[:, 0]) + self.x_embedding2(x[:, 1])

    def layer_of_key(self, key: str) -> int | None:
        """Layer index of a state key of this module (``gnns.3.mlp.0.weight`` -> 3); ``None`` for inputs."""
        if key.startswith(self.INPUT_PREFIXES):
            return None
        match = self.LAYER_KEY.match(key)
        if match is None or int(match.group(1)) >= self.num_layers:
            raise ValueError(
                f"state key {key!r} belongs to no layer and to no input encoder "
                f"(input prefixes: {', '.join(self.INPUT_PREFIXES)})"
            )
        return int(match.group(1))
