"""Pre-training of a backbone encoder on a molecule corpus, three objectives, resumable checkpoints.

Encoders (``arch``): the Hu et al. GNNs (``gin``, ``gcn``, ``graphsage``, ``gat``;
:mod:`trainables.models.gnn`) and GraphGPS (``gps``; :mod:`trainables.models.gps`). Objectives, with ``h`` the
encoder's node states ``(n, d)`` and ``g = mean_pool(h)`` ``(B, d)``:

* ``attr-mask`` (self-supervised; the objective family of Hu et al., GraphMAE and Mole-BERT): a
  fraction ``mask_rate`` of the batch's atoms get the mask token and a linear head predicts their
  atom types::

      loss = cross_entropy(W h[masked] + b, atom_type[masked])          logits (m, 119)

* ``contrastive`` (self-supervised; GraphCL, You et al. 2020): two views of every molecule, each
  one augmentation drawn from ``augmentations`` (node dropping, edge perturbation, attribute
  masking, subgraph; :mod:`trainables.data.augment`) at strength ``aug_rate``; a projection MLP
  ``z = P(g)`` and the symmetric NT-Xent loss over the batch, cosine similarity at temperature
  ``tau``::

      S_ij = cos(z1_i, z2_j) / tau                                       (B, B)
      loss = (cross_entropy(S, arange(B)) + cross_entropy(S^T, arange(B))) / 2

* ``descriptors`` (supervised; the stand-in for Graphium's multitask pre-training and the GPS
  PCQM4Mv2 target): a linear head regresses the 16 standardised RDKit descriptors of
  :mod:`trainables.data.descriptors` from ``g``; mean squared error over the present targets.

Outputs in ``out``:

* ``model.pth``: the encoder's state dict: the Hu layout for the Hu GNNs (``x_embedding1.weight``,
  ``gnns.<i>.*``, ``batch_norms.<i>.*``), loadable exactly like the published checkpoints; the
  layout documented in :mod:`trainables.models.gps` for GPS;
* ``model.json``: the metadata sidecar (layout, objective, architecture and shape, corpus file and
  sha256, molecules, epochs, steps, per-epoch loss, final loss, code version; the descriptor
  names and standardisation for ``descriptors``). A GPS checkpoint needs it: the number of
  attention heads is not in the state dict;
* ``state.pt``: what ``resume`` needs (encoder, heads, Adam, the epoch reached and the RNG state),
  written after every epoch. Resuming continues from the saved epoch: an interrupted run that
  is resumed trains exactly as an uninterrupted one (on the CPU, where kernels are
  deterministic);
* ``descriptors.npy`` (``descriptors`` only): the corpus's raw descriptor values, computed once.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.utils import scatter

from trainables.core.registry import Registry
from trainables.data.augment import AUGMENTATIONS, check_rate, mask_atoms, two_views
from trainables.data.dataset import GraphBatch, GraphDataset
from trainables.models.backbones import ARCHITECTURES, PRETRAINING_OBJECTIVES
from trainables.models.gnn import GNNShape
from trainables.models.predictor import build_encoder
from trainables.models.shapes import default_size, shape_dict, shape_from_dict

ATOM_TYPES = 119  # real atom types 0..118: the classes the attribute-masking head predicts
LAYOUTS = {"hu": "hu2020-gnn", "gps": "roft-gps-v1"}


@dataclass(frozen=True)
class PretrainConfig:
    objective: str = "attr-mask"
    arch: str = "gin"
    num_layers: int | None = None  # None: the architecture's default (5, GPS 16)
    emb_dim: int | None = None  # None: the architecture's default (300, GPS 256)
    heads: int = 8  # GPS attention heads
    dropout: float = 0.0
    epochs: int = 1
    batch_size: int = 256
    lr: float = 1e-3
    mask_rate: float = 0.15  # attr-mask
    aug_rate: float = 0.2  # contrastive: strength of every augmentation
    augmentations: tuple[str, ...] = tuple(AUGMENTATIONS)  # contrastive: drawn from, per view
    temperature: float = 0.1  # contrastive: tau
    seed: int = 0
    limit: int | None = None  # the corpus's first `limit` molecules (None: all)

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective {self.objective!r} is not accepted; accepted: {', '.join(OBJECTIVES.names())}")
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch {self.arch!r} is not accepted; accepted: {', '.join(ARCHITECTURES)}")
        layers, width = default_size(self.arch)
        object.__setattr__(self, "num_layers", layers if self.num_layers is None else self.num_layers)
        object.__setattr__(self, "emb_dim", width if self.emb_dim is None else self.emb_dim)
        object.__setattr__(self, "augmentations", tuple(self.augmentations))
        check_rate(self.mask_rate, "mask_rate")
        check_rate(self.aug_rate, "aug_rate")
        unknown = [a for a in self.augmentations if a not in AUGMENTATIONS]
        if unknown or not self.augmentations:
            raise ValueError(
                f"augmentations {list(self.augmentations)!r} are not accepted; accepted: one or more "
                f"of {', '.join(AUGMENTATIONS)}"
            )
        for name in ("num_layers", "emb_dim", "epochs", "batch_size", "heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} {getattr(self, name)!r} is not accepted; accepted: an integer >= 1")
        if not self.temperature > 0:
            raise ValueError(f"temperature {self.temperature!r} is not accepted; accepted: a number > 0")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit {self.limit!r} is not accepted; accepted: an integer >= 1, or none for all")
        self.shape  # validates the architecture's own constraints (e.g. GPS width divisible by heads)

    @property
    def shape(self):
        """A :class:`~trainables.models.gnn.GNNShape`, or a ``GPSShape`` for ``arch: gps``."""
        if self.arch == "gps":
            from trainables.models.gps import GPSShape

            return GPSShape(self.num_layers, self.emb_dim, self.heads, dropout=self.dropout)
        return GNNShape(self.arch, self.num_layers, self.emb_dim, self.dropout)


@dataclass
class PretrainResult:
    out: Path
    epochs: int
    steps: int
    losses: list[float] = field(default_factory=list)  # mean objective loss per epoch


@dataclass
class Corpus:
    graphs: GraphDataset  # the molecules RDKit could read, featurized
    smiles: list[str]  # their SMILES, in the same order


def read_corpus(path: str | os.PathLike, limit: int | None = None, smiles_column: str = "smiles") -> Corpus:
    """The corpus's molecules (no labels) and their SMILES."""
    from trainables.data.dataset import featurize_table

    table = pd.read_csv(path, nrows=limit)
    if smiles_column not in table.columns:
        raise ValueError(f"corpus {path}: no column {smiles_column!r}; columns: {', '.join(map(str, table.columns))}")
    graphs = featurize_table(table[smiles_column].tolist())
    rows = graphs["source_rows"]
    if len(rows) == 0:
        raise ValueError(f"corpus {path}: none of its {len(table)} SMILES could be read by RDKit")
    data = GraphDataset(
        x=graphs["x"],
        edge_index=graphs["edge_index"],
        edge_attr=graphs["edge_attr"],
        node_ptr=graphs["node_ptr"],
        edge_ptr=graphs["edge_ptr"],
        y=torch.zeros((len(rows), 0)),
        source_rows=rows,
        scaffolds=graphs["scaffolds"],
        stats=graphs["stats"],
    )
    return Corpus(data, table[smiles_column].iloc[rows.numpy()].astype(str).tolist())


def mean_pool(node: torch.Tensor, batch: GraphBatch) -> torch.Tensor:
    """``(n, d) -> (B, d)``: each molecule's mean node state."""
    return scatter(node, batch.batch, dim=0, dim_size=batch.num_graphs, reduce="mean")


def encode(encoder: nn.Module, batch: GraphBatch) -> torch.Tensor:
    return encoder(batch.x, batch.edge_index, batch.edge_attr, batch.batch)


OBJECTIVES: Registry[type[Objective]] = Registry("objective")


class Objective(nn.Module):
    """The heads of one pre-training objective (its parameters) and its loss."""

    name: ClassVar[str]  # its kind and its short name in backbone names: backbones.PRETRAINING_OBJECTIVES

    def __init__(self, config: PretrainConfig, corpus: Corpus, out: Path):
        super().__init__()
        self.config = config

    def loss(
        self,
        encoder: nn.Module,
        batch: GraphBatch,
        graph_ids: torch.Tensor,
        generator: torch.Generator,
        device: torch.device,
    ) -> torch.Tensor:
        """The mean loss of one batch (``batch`` on the CPU, ``graph_ids`` its corpus rows ``(B,)``)."""
        raise NotImplementedError

    def metadata(self) -> dict:
        """What the sidecar records besides the common fields."""
        return {}


def register_objective(cls: type[Objective]) -> type[Objective]:
    OBJECTIVES.register(cls.name, cls)
    return cls


@register_objective
class AttributeMasking(Objective):
    name = "attr-mask"

    def __init__(self, config: PretrainConfig, corpus: Corpus, out: Path):
        super().__init__(config, corpus, out)
        self.head = nn.Linear(config.emb_dim, ATOM_TYPES)

    def loss(self, encoder, batch, graph_ids, generator, device):
        x_masked, masked = mask_atoms(batch.x, self.config.mask_rate, generator)
        atom_types = batch.x[masked, 0].to(device)
        batch = batch.to(device)
        node = encoder(x_masked.to(device), batch.edge_index, batch.edge_attr, batch.batch)
        return F.cross_entropy(self.head(node.index_select(0, masked.to(device))), atom_types)


@register_objective
class GraphContrastive(Objective):
    name = "contrastive"

    def __init__(self, config: PretrainConfig, corpus: Corpus, out: Path):
        super().__init__(config, corpus, out)
        d = config.emb_dim
        self.projection = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d))

    def loss(self, encoder, batch, graph_ids, generator, device):
        first, second = (
            view.to(device) for view in two_views(batch, self.config.augmentations, self.config.aug_rate, generator)
        )
        z1 = F.normalize(self.projection(mean_pool(encode(encoder, first), first)), dim=-1)
        z2 = F.normalize(self.projection(mean_pool(encode(encoder, second), second)), dim=-1)
        return nt_xent(z1, z2, self.config.temperature)

    def metadata(self):
        return {
            "augmentations": list(self.config.augmentations),
            "aug_rate": self.config.aug_rate,
            "temperature": self.config.temperature,
        }


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric NT-Xent of unit vectors ``z1, z2`` ``(B, p)``: row i of each is the same molecule."""
    similarity = z1 @ z2.T / temperature  # (B, B)
    target = torch.arange(z1.shape[0], device=z1.device)
    return (F.cross_entropy(similarity, target) + F.cross_entropy(similarity.T, target)) / 2


@register_objective
class DescriptorRegression(Objective):
    name = "descriptors"

    def __init__(self, config: PretrainConfig, corpus: Corpus, out: Path):
        from trainables.data.descriptors import DESCRIPTORS, compute_descriptors, standardisation, standardise

        super().__init__(config, corpus, out)
        self.head = nn.Linear(config.emb_dim, len(DESCRIPTORS))
        cached = out / "descriptors.npy"
        if cached.is_file():
            raw = np.load(cached)
        else:
            from trainables.data.sources import atomic_write

            raw = compute_descriptors(corpus.smiles)
            out.mkdir(parents=True, exist_ok=True)
            atomic_write(cached, lambda fh: np.save(fh, raw))
        if raw.shape != (len(corpus.smiles), len(DESCRIPTORS)):
            raise ValueError(
                f"{cached} holds {raw.shape} descriptor values, not ({len(corpus.smiles)}, "
                f"{len(DESCRIPTORS)}): it belongs to another corpus; delete it or choose another --out"
            )
        self.mean, self.std = standardisation(raw)
        self.targets = torch.as_tensor(standardise(raw, self.mean, self.std), dtype=torch.float32)  # (N, 16)

    def loss(self, encoder, batch, graph_ids, generator, device):
        batch = batch.to(device)
        prediction = self.head(mean_pool(encode(encoder, batch), batch))
        target = self.targets[graph_ids].to(device)
        present = ~torch.isnan(target)
        return F.mse_loss(prediction[present], target[present])

    def metadata(self):
        from trainables.data.descriptors import DESCRIPTOR_SET_VERSION, DESCRIPTORS

        return {
            "descriptor_set": DESCRIPTOR_SET_VERSION,
            "descriptors": list(DESCRIPTORS),
            "descriptor_mean": self.mean.tolist(),
            "descriptor_std": self.std.tolist(),
        }


def pretrain(
    config: PretrainConfig,
    corpus: str | os.PathLike,
    out: str | os.PathLike,
    resume: bool = False,
    corpus_sha256: str = "",
    code_version: str = "unknown",
    on_step: Callable[[int, int, int, float], None] | None = None,
    device: str | torch.device = "cpu",
) -> PretrainResult:
    """Pre-train (or, with ``resume``, continue pre-training) into ``out``; see the module docstring.

    ``on_step(epoch, step, steps_per_epoch, loss)`` is called after every optimiser step
    (progress display). Batches, masks and views are drawn on the CPU (one seeded generator,
    whatever the device); the encoder and heads train on ``device``.
    """
    device = torch.device(device)
    out = Path(out)
    state_path = out / "state.pt"
    saved = None
    if resume:
        if not state_path.is_file():
            raise FileNotFoundError(f"--resume: no {state_path} to continue from (start without --resume)")
        saved = torch.load(state_path, map_location="cpu", weights_only=True)
        if saved["config"] != _config_dict(config, ignore_epochs=True):
            raise ValueError(
                f"--resume: {state_path} was written with another configuration "
                f"({saved['config']}); only epochs may change"
            )
    elif state_path.exists():
        raise FileExistsError(
            f"{out} already holds a pre-training (state.pt): pass --resume to continue it, or choose another --out"
        )
    corpus_data = read_corpus(corpus, config.limit)
    data = corpus_data.graphs
    torch.manual_seed(config.seed)
    encoder = build_encoder(config.shape)
    objective = OBJECTIVES.get(config.objective)(config, corpus_data, out)
    encoder.to(device)
    objective.to(device)
    optimizer = torch.optim.Adam([*encoder.parameters(), *objective.parameters()], lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    losses: list[float] = []
    start_epoch, steps = 1, 0
    if saved is not None:
        encoder.load_state_dict(saved["encoder"])
        objective.load_state_dict(saved["objective"])
        optimizer.load_state_dict(saved["optimizer"])
        generator.set_state(saved["generator"])
        torch.set_rng_state(saved["torch_rng"])
        start_epoch, steps, losses = saved["epoch"] + 1, saved["steps"], list(saved["losses"])
    out.mkdir(parents=True, exist_ok=True)
    n = len(data)
    steps_per_epoch = math.ceil(n / config.batch_size)
    for epoch in range(start_epoch, config.epochs + 1):
        encoder.train()
        objective.train()
        order = torch.randperm(n, generator=generator)
        total, batches = 0.0, 0
        for first in range(0, n, config.batch_size):
            graph_ids = order[first : first + config.batch_size]
            loss = objective.loss(encoder, data.batch(graph_ids), graph_ids, generator, device)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
            total, batches = total + loss.item(), batches + 1
            if on_step is not None:
                on_step(epoch, steps, steps_per_epoch, loss.item())
        losses.append(total / batches)
        _save(
            out,
            config,
            encoder,
            objective,
            optimizer,
            generator,
            epoch,
            steps,
            losses,
            corpus,
            corpus_sha256,
            n,
            code_version,
        )
    return PretrainResult(out, config.epochs, steps, losses)


def _config_dict(config: PretrainConfig, ignore_epochs: bool = False) -> dict:
    values = asdict(config)
    if ignore_epochs:
        values.pop("epochs")
    return values


def _save(
    out: Path,
    config: PretrainConfig,
    encoder: nn.Module,
    objective: Objective,
    optimizer,
    generator,
    epoch: int,
    steps: int,
    losses: list[float],
    corpus,
    corpus_sha256: str,
    molecules: int,
    code_version: str,
) -> None:
    """``model.pth`` + ``model.json`` + ``state.pt``, each written whole under a temporary name."""
    from trainables.data.sources import atomic_write

    encoder_state = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
    atomic_write(out / "model.pth", lambda fh: torch.save(encoder_state, fh))
    meta = {
        "layout": LAYOUTS["gps" if config.arch == "gps" else "hu"],
        "objective": config.objective,
        "pretraining": PRETRAINING_OBJECTIVES[config.objective][1],
        "arch": config.arch,
        "shape": shape_dict(config.shape),
        "num_layers": config.num_layers,
        "emb_dim": config.emb_dim,
        "config": _config_dict(config),
        "corpus": Path(corpus).name,
        "corpus_sha256": corpus_sha256,
        "molecules": molecules,
        "epochs": epoch,
        "steps": steps,
        "molecules_seen": epoch * molecules,
        "losses": losses,
        "final_loss": losses[-1],
        **objective.metadata(),
        "code_version": code_version,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write(out / "model.json", lambda fh: fh.write(json.dumps(meta, indent=2).encode()))
    state = {
        "config": _config_dict(config, ignore_epochs=True),
        "encoder": encoder_state,
        "objective": objective.state_dict(),
        "optimizer": optimizer.state_dict(),
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "epoch": epoch,
        "steps": steps,
        "losses": losses,
    }
    atomic_write(out / "state.pt", lambda fh: torch.save(state, fh))


def load_pretrained(out: str | os.PathLike) -> tuple[nn.Module, dict]:
    """The encoder of a pre-training folder (strictly loaded) and its metadata."""
    from trainables.models.backbones import load_state_strict

    out = Path(out)
    meta = json.loads((out / "model.json").read_text())
    encoder = build_encoder(shape_from_dict(meta["shape"], dropout=0.0))
    load_state_strict(
        encoder, torch.load(out / "model.pth", map_location="cpu", weights_only=True), str(out / "model.pth")
    )
    return encoder, meta


def backbone_name(arch: str, objective: str) -> str:
    """The backbone an installed pre-training becomes: ``roft-<arch>-<objective short name>``."""
    OBJECTIVES.get(objective)
    return f"roft-{arch}-{PRETRAINING_OBJECTIVES[objective][0]}"


def install(out: str | os.PathLike) -> tuple[str, Path]:
    """Copy ``out``'s checkpoint and sidecar to where backbone ``roft-<arch>-<objective>`` finds
    them; returns ``(backbone name, path)``. A sweep names that backbone; its rows record the
    checkpoint's sha256."""
    from trainables.data.sources import atomic_write
    from trainables.models.backbones import BACKBONES, installed_checkpoint_path

    _, meta = load_pretrained(out)
    name = backbone_name(meta["arch"], meta["objective"])
    BACKBONES.get(name)  # registered
    target = installed_checkpoint_path(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    for source, destination in (
        (Path(out) / "model.json", target.with_suffix(".json")),
        (Path(out) / "model.pth", target),
    ):  # the checkpoint last: it marks availability
        blob = source.read_bytes()
        atomic_write(destination, lambda fh: fh.write(blob))
    return name, target
