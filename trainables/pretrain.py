"""Self-supervised pre-training of a Hu et al. GNN by attribute masking, with resumable checkpoints.

Attribute masking (Hu et al. 2020, the objective family of GraphMAE and Mole-BERT): in every
mini-batch a fraction ``mask_rate`` of the atoms (at least one per batch) have their features
replaced by the mask token (atom type :data:`MASK_ATOM_TYPE`, chirality 0); the GNN encodes the
masked molecules and a linear head predicts each masked atom's type from its node state::

    h = GNN(x_masked)               (n, d)
    logits = W h[masked] + b        (m, 119)
    loss = cross_entropy(logits, x[masked, 0])

Outputs in ``out``:

* ``model.pth``: the GNN's state dict in the Hu layout (``x_embedding1.weight``,
  ``gnns.<i>.*``, ``batch_norms.<i>.*``), loadable exactly like the published checkpoints;
* ``model.json``: the metadata sidecar (objective, shape, corpus file and sha256, molecules,
  epochs, steps, per-epoch loss, final loss, code version);
* ``state.pt``: what ``resume`` needs (GNN, head, Adam, the epoch reached and the RNG state),
  written after every epoch. Resuming continues from the saved epoch: an interrupted run that
  is resumed trains exactly as an uninterrupted one (on the CPU, where kernels are
  deterministic).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from trainables.gnn import GNNShape, HuGNN

MASK_ATOM_TYPE = 119  # the extra row of the Hu atom-type embedding
ATOM_TYPES = 119  # real atom types 0..118: the classes the head predicts
OBJECTIVES = ("attr-mask",)
ARCHITECTURES = ("gin", "gcn", "graphsage", "gat")


@dataclass(frozen=True)
class PretrainConfig:
    objective: str = "attr-mask"
    arch: str = "gin"
    num_layers: int = 5
    emb_dim: int = 300
    dropout: float = 0.0
    epochs: int = 1
    batch_size: int = 256
    lr: float = 1e-3
    mask_rate: float = 0.15
    seed: int = 0
    limit: int | None = None  # the corpus's first `limit` molecules (None: all)

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective {self.objective!r} is not accepted; accepted: {', '.join(OBJECTIVES)}")
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch {self.arch!r} is not accepted; accepted: {', '.join(ARCHITECTURES)}")
        if not 0.0 < self.mask_rate < 1.0:
            raise ValueError(f"mask_rate {self.mask_rate!r} is not accepted; accepted: a number in (0, 1)")
        for name in ("num_layers", "emb_dim", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} {getattr(self, name)!r} is not accepted; accepted: an integer >= 1")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit {self.limit!r} is not accepted; accepted: an integer >= 1, or none for all")

    @property
    def shape(self) -> GNNShape:
        return GNNShape(self.arch, self.num_layers, self.emb_dim, self.dropout)


@dataclass
class PretrainResult:
    out: Path
    epochs: int
    steps: int
    losses: list[float] = field(default_factory=list)  # mean masked-atom cross-entropy per epoch


def read_corpus(path: str | os.PathLike, limit: int | None = None, smiles_column: str = "smiles"):
    """The corpus's molecules as a :class:`~trainables.dataset.GraphDataset` (no labels)."""
    from trainables.dataset import GraphDataset, featurize_table

    table = pd.read_csv(path, nrows=limit)
    if smiles_column not in table.columns:
        raise ValueError(f"corpus {path}: no column {smiles_column!r}; columns: {', '.join(map(str, table.columns))}")
    graphs = featurize_table(table[smiles_column].tolist())
    if len(graphs["source_rows"]) == 0:
        raise ValueError(f"corpus {path}: none of its {len(table)} SMILES could be read by RDKit")
    return GraphDataset(x=graphs["x"], edge_index=graphs["edge_index"], edge_attr=graphs["edge_attr"],
                        node_ptr=graphs["node_ptr"], edge_ptr=graphs["edge_ptr"],
                        y=torch.zeros((len(graphs["source_rows"]), 0)), source_rows=graphs["source_rows"],
                        scaffolds=graphs["scaffolds"], stats=graphs["stats"])


def mask_atoms(x: torch.Tensor, rate: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_masked, masked)``: ``round(rate * n)`` atoms (at least one) drawn without replacement
    get the mask token; ``masked`` are their row indices ``(m,)``."""
    n = x.shape[0]
    masked = torch.randperm(n, generator=generator)[:max(1, int(round(rate * n)))]
    x_masked = x.clone()
    x_masked[masked, 0] = MASK_ATOM_TYPE
    x_masked[masked, 1] = 0
    return x_masked, masked


def pretrain(config: PretrainConfig, corpus: str | os.PathLike, out: str | os.PathLike, resume: bool = False,
             corpus_sha256: str = "", code_version: str = "unknown",
             on_step: Callable[[int, int, float], None] | None = None) -> PretrainResult:
    """Pre-train (or, with ``resume``, continue pre-training) into ``out``; see the module docstring.

    ``on_step(epoch, step, loss)`` is called after every optimiser step (progress display).
    """
    out = Path(out)
    state_path = out / "state.pt"
    saved = None
    if resume:
        if not state_path.is_file():
            raise FileNotFoundError(f"--resume: no {state_path} to continue from (start without --resume)")
        saved = torch.load(state_path, map_location="cpu", weights_only=True)
        if saved["config"] != _config_dict(config, ignore_epochs=True):
            raise ValueError(f"--resume: {state_path} was written with another configuration "
                             f"({saved['config']}); only epochs may change")
    elif state_path.exists():
        raise FileExistsError(f"{out} already holds a pre-training (state.pt): pass --resume to continue it, "
                              "or choose another --out")
    data = read_corpus(corpus, config.limit)
    torch.manual_seed(config.seed)
    gnn = HuGNN(config.shape)
    head = nn.Linear(config.emb_dim, ATOM_TYPES)
    optimizer = torch.optim.Adam([*gnn.parameters(), *head.parameters()], lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    losses: list[float] = []
    start_epoch, steps = 1, 0
    if saved is not None:
        gnn.load_state_dict(saved["gnn"])
        head.load_state_dict(saved["head"])
        optimizer.load_state_dict(saved["optimizer"])
        generator.set_state(saved["generator"])
        torch.set_rng_state(saved["torch_rng"])
        start_epoch, steps, losses = saved["epoch"] + 1, saved["steps"], list(saved["losses"])
    out.mkdir(parents=True, exist_ok=True)
    n = len(data)
    for epoch in range(start_epoch, config.epochs + 1):
        gnn.train()
        head.train()
        order = torch.randperm(n, generator=generator)
        total, batches = 0.0, 0
        for first in range(0, n, config.batch_size):
            batch = data.batch(order[first:first + config.batch_size])
            x_masked, masked = mask_atoms(batch.x, config.mask_rate, generator)
            node = gnn(x_masked, batch.edge_index, batch.edge_attr)
            loss = F.cross_entropy(head(node.index_select(0, masked)), batch.x[masked, 0])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
            total, batches = total + loss.item(), batches + 1
            if on_step is not None:
                on_step(epoch, steps, loss.item())
        losses.append(total / batches)
        _save(out, config, gnn, head, optimizer, generator, epoch, steps, losses, corpus, corpus_sha256, n,
              code_version)
    return PretrainResult(out, config.epochs, steps, losses)


def _config_dict(config: PretrainConfig, ignore_epochs: bool = False) -> dict:
    values = asdict(config)
    if ignore_epochs:
        values.pop("epochs")
    return values


def _save(out: Path, config: PretrainConfig, gnn: HuGNN, head: nn.Linear, optimizer, generator, epoch: int,
          steps: int, losses: list[float], corpus, corpus_sha256: str, molecules: int, code_version: str) -> None:
    """``model.pth`` + ``model.json`` + ``state.pt``, each written whole under a temporary name."""
    from trainables.sources import atomic_write

    atomic_write(out / "model.pth", lambda fh: torch.save(gnn.state_dict(), fh))
    meta = {"layout": "hu2020-gnn", "objective": config.objective, "arch": config.arch,
            "num_layers": config.num_layers, "emb_dim": config.emb_dim, "config": _config_dict(config),
            "corpus": Path(corpus).name, "corpus_sha256": corpus_sha256, "molecules": molecules,
            "epochs": epoch, "steps": steps, "losses": losses, "final_loss": losses[-1],
            "code_version": code_version, "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    atomic_write(out / "model.json", lambda fh: fh.write(json.dumps(meta, indent=2).encode()))
    state = {"config": _config_dict(config, ignore_epochs=True), "gnn": gnn.state_dict(),
             "head": head.state_dict(), "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
             "torch_rng": torch.get_rng_state(), "epoch": epoch, "steps": steps, "losses": losses}
    atomic_write(out / "state.pt", lambda fh: torch.save(state, fh))


def load_pretrained(out: str | os.PathLike) -> tuple[HuGNN, dict]:
    """The GNN of a pre-training folder (strictly loaded) and its metadata."""
    from trainables.backbones import load_state_strict

    out = Path(out)
    meta = json.loads((out / "model.json").read_text())
    gnn = HuGNN(GNNShape(meta["arch"], meta["num_layers"], meta["emb_dim"], 0.0))
    load_state_strict(gnn, torch.load(out / "model.pth", map_location="cpu", weights_only=True), str(out / "model.pth"))
    return gnn, meta


def install(out: str | os.PathLike) -> tuple[str, Path]:
    """Copy ``out``'s checkpoint to where backbone ``roft-<arch>-<objective>`` finds it; returns
    ``(backbone name, path)``. A sweep names that backbone; its rows record the file's sha256."""
    from trainables.backbones import BACKBONES, installed_checkpoint_path
    from trainables.sources import atomic_write

    _, meta = load_pretrained(out)
    name = f"roft-{meta['arch']}-{meta['objective'].replace('-', '')}"
    BACKBONES.get(name)  # registered
    target = installed_checkpoint_path(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    blob = (Path(out) / "model.pth").read_bytes()
    atomic_write(target, lambda fh: fh.write(blob))
    return name, target
