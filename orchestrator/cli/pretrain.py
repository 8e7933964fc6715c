"""``roft pretrain``: pre-train a backbone encoder (attr-mask, contrastive, descriptors; GIN..GPS), resumable."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from orchestrator.cli.arguments import MAX_EPOCHS, MAX_SEED, device, integer, number
from orchestrator.cli.common import add_data_root, data_root


def register(sub) -> None:
    pre = sub.add_parser("pretrain", help="pre-train a backbone encoder (Hu GNN or GPS) on a molecule corpus")
    pre.add_argument(
        "--objective",
        default="attr-mask",
        choices=("attr-mask", "contrastive", "descriptors"),
        help="attr-mask (masked atom types), contrastive (GraphCL) or descriptors (supervised: 16 RDKit "
        "descriptors); default attr-mask",
    )
    pre.add_argument("--arch", default="gin", choices=("gin", "gcn", "graphsage", "gat", "gps"), help="default gin")
    pre.add_argument(
        "--corpus",
        default=None,
        help="CSV with a smiles column (default: the data root's pretrain/zinc250k.csv.gz, sha256-checked)",
    )
    pre.add_argument("--out", required=True, help="folder for model.pth, model.json (metadata) and state.pt (resume)")
    pre.add_argument(
        "--epochs",
        type=integer(1, MAX_EPOCHS),
        default=1,
        help="epochs in all: with --resume, training continues up to this epoch (default 1)",
    )
    pre.add_argument(
        "--limit", type=integer(1, 1_000_000_000), default=None, help="only the corpus's first N molecules"
    )
    pre.add_argument("--batch-size", type=integer(1, 1_000_000), default=256, help="molecules per batch (default 256)")
    pre.add_argument("--layers", type=integer(1, 100), default=None, help="default 5 (GPS 16)")
    pre.add_argument("--width", type=integer(1, 65_536), default=None, help="default 300 (GPS 256)")
    pre.add_argument("--heads", type=integer(1, 1_024), default=8, help="GPS attention heads (default 8)")
    pre.add_argument(
        "--lr", type=number(0.0, 10.0, above=True), default=1e-3, help="Adam learning rate (default 0.001)"
    )
    pre.add_argument("--mask-rate", type=number(0.0, 1.0), default=0.15, help="attr-mask: fraction of atoms masked")
    pre.add_argument(
        "--augmentations",
        default="node-drop,edge-perturb,attr-mask,subgraph",
        help="contrastive: comma-separated views to draw from (default all four)",
    )
    pre.add_argument(
        "--aug-rate", type=number(0.0, 1.0), default=0.2, help="contrastive: strength of each augmentation"
    )
    pre.add_argument(
        "--temperature", type=number(0.0, 100.0, above=True), default=0.1, help="contrastive: NT-Xent temperature"
    )
    pre.add_argument(
        "--seed",
        type=integer(0, MAX_SEED),
        default=0,
        help="seed of the initialisation, the batch order, masks and augmentations (default 0)",
    )
    pre.add_argument("--device", type=device, default="cpu", help="torch device, e.g. cuda (default cpu)")
    pre.add_argument("--threads", type=integer(1, 1_024), default=None, help="torch CPU threads (default: torch's)")
    pre.add_argument("--resume", action="store_true", help="continue the pre-training saved in --out")
    pre.add_argument(
        "--install",
        action="store_true",
        help="then install the checkpoint as backbone roft-<arch>-<objective> (in the cache) for sweeps",
    )
    add_data_root(pre)
    pre.set_defaults(handler=run_pretraining)


def run_pretraining(args) -> int:
    import torch

    from orchestrator.sweep.progress import ProgressLine
    from orchestrator.version import code_version
    from trainables.data.inventory import pretraining_corpus
    from trainables.pretrain import PretrainConfig, install, pretrain

    if args.threads:
        torch.set_num_threads(args.threads)
    config = PretrainConfig(
        objective=args.objective,
        arch=args.arch,
        num_layers=args.layers,
        emb_dim=args.width,
        heads=args.heads,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        mask_rate=args.mask_rate,
        aug_rate=args.aug_rate,
        temperature=args.temperature,
        augmentations=tuple(a.strip() for a in args.augmentations.split(",") if a.strip()),
        seed=args.seed,
        limit=args.limit,
    )
    corpus, sha = pretraining_corpus(args.corpus, data_root(args))
    started = time.perf_counter()
    progress = ProgressLine(sys.stderr)

    def on_step(epoch: int, step: int, steps_per_epoch: int, loss: float) -> None:
        progress.update(
            step - (epoch - 1) * steps_per_epoch,
            steps_per_epoch,
            f"epoch {epoch}/{config.epochs}  loss {loss:.4f}  {time.perf_counter() - started:,.0f} s",
        )

    print(
        f"pre-training {config.arch} {config.num_layers}x{config.emb_dim} by {config.objective} on {corpus} "
        f"({'first ' + str(config.limit) if config.limit else 'all'} molecules) into {args.out}",
        file=sys.stderr,
    )
    result = pretrain(
        config,
        corpus,
        args.out,
        resume=args.resume,
        corpus_sha256=sha,
        code_version=code_version(),
        on_step=on_step,
        device=args.device,
    )
    progress.close()
    for epoch, loss in enumerate(result.losses, 1):
        print(f"epoch {epoch}: mean {config.objective} loss {loss:.4f}")
    print(f"{result.steps} steps in {time.perf_counter() - started:,.1f} s; checkpoint {Path(args.out) / 'model.pth'}")
    if args.install:
        name, path = install(args.out)
        print(f"installed as backbone {name} ({path}); name it under `backbones:` in a sweep spec")
    return 0
