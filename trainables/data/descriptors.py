"""The fixed set of RDKit descriptors that supervised pre-training regresses, and their standardisation.

The stand-in for Graphium's supervised multitask pre-training (and, for GPS, for the PCQM4Mv2
HOMO-LUMO gap): 16 whole-molecule descriptors of RDKit's ``Descriptors`` module, chosen to cover
size, polarity, lipophilicity, hydrogen bonding, flexibility, rings and shape, and to cost about
1 ms per molecule together. The list is part of the checkpoint's metadata; changing it is a new
:data:`DESCRIPTOR_SET_VERSION`.

Targets are standardised with the pre-training corpus's own statistics,
``z_t = (d_t - mean_t) / std_t`` (population std; a constant descriptor gets std 1), and a
descriptor RDKit cannot compute (NaN or infinite) is a missing target, masked out of the loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DESCRIPTOR_SET_VERSION = "roft-descriptors-v1"
DESCRIPTORS = (
    "MolWt",
    "HeavyAtomCount",
    "MolLogP",
    "MolMR",
    "TPSA",
    "LabuteASA",
    "NumHDonors",
    "NumHAcceptors",
    "NumHeteroatoms",
    "NumRotatableBonds",
    "RingCount",
    "NumAromaticRings",
    "NumAliphaticRings",
    "FractionCSP3",
    "HallKierAlpha",
    "Kappa2",
)


def compute_descriptors(smiles: Sequence[str]) -> np.ndarray:
    """``(N, 16)`` float64 descriptor values, NaN where a molecule or a descriptor cannot be computed."""
    from rdkit import Chem, RDLogger
    from rdkit.Chem import Descriptors

    functions = dict(Descriptors.descList)
    chosen = [functions[name] for name in DESCRIPTORS]
    values = np.full((len(smiles), len(DESCRIPTORS)), np.nan)
    RDLogger.DisableLog("rdApp.*")  # type: ignore[attr-defined]
    try:
        for row, text in enumerate(smiles):
            molecule = Chem.MolFromSmiles(str(text))
            if molecule is None:
                continue
            for column, function in enumerate(chosen):
                try:
                    values[row, column] = float(function(molecule))
                except (ValueError, RuntimeError, ZeroDivisionError):
                    pass
    finally:
        RDLogger.EnableLog("rdApp.*")  # type: ignore[attr-defined]
    values[~np.isfinite(values)] = np.nan
    return values


def standardisation(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-descriptor ``(mean, std)`` over the finite values (std 1 where a column is constant)."""
    mean = np.nanmean(values, axis=0)
    std = np.nanstd(values, axis=0)
    return mean, np.where(std > 0, std, 1.0)


def standardise(values: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return (values - mean) / std
