"""Hu et al. (2020) molecular graph featurization (the scheme every checkpoint here expects).

Node features, shape ``(n_atoms, 2)``, int64:
    column 0: atomic-number index = atomic number - 1 (0..117); the embedding has 120 rows,
              the last ones being mask tokens used in pre-training;
    column 1: chirality tag index: 0 unspecified, 1 tetrahedral CW, 2 tetrahedral CCW.
Edge features, shape ``(n_edges, 2)``, int64, every bond stored in both directions:
    column 0: bond type: 0 single, 1 double, 2 triple, 3 aromatic (4 = self-loop and 5 = mask
              are added by the layers / pre-training, never by the featurizer);
    column 1: bond direction: 0 none, 1 end-up-right, 2 end-down-right.

RDKit releases of 2026 differ from the 2019 pipeline; this module maps the differences
deliberately and counts each mapping (:class:`FeaturizationStats`):

* DATIVE bonds (RDKit now returns them for many metal complexes) -> single;
* other bond types (ZERO, UNSPECIFIED, ...) -> single;
* chirality tags beyond the 3-entry vocabulary (CHI_OTHER, allene, square planar, ...) ->
  unspecified;
* bond directions beyond the 3-entry vocabulary -> none;
* SMILES that RDKit cannot parse and sanitize, and molecules containing a dummy atom
  (atomic number 0, which has no row in the embedding), are dropped and counted.

The Bemis-Murcko scaffold (chirality included, as in the reference splitter) and the atom
count of each molecule are computed here too, so that splitting never re-parses SMILES. The
scaffold is taken from the parsed molecule (``scaffold_source="raw"``), or, where the reference
loader hands its splitter RDKit's canonical SMILES instead of the file's (BBBP and ClinTox), from
the molecule re-parsed from ``MolToSmiles(mol)`` (``"canonical"``): E/Z marks of some ring-adjacent
double bonds survive one route and not the other, which moves a few molecules between scaffold
sets (docs/protocol.md, quirks).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import numpy as np
from rdkit import Chem, RDLogger
from rdkit.Chem.Scaffolds import MurckoScaffold

_CHIRALITY = {
    Chem.rdchem.ChiralType.CHI_UNSPECIFIED: 0,
    Chem.rdchem.ChiralType.CHI_TETRAHEDRAL_CW: 1,
    Chem.rdchem.ChiralType.CHI_TETRAHEDRAL_CCW: 2,
}
_BOND_TYPE = {
    Chem.rdchem.BondType.SINGLE: 0,
    Chem.rdchem.BondType.DOUBLE: 1,
    Chem.rdchem.BondType.TRIPLE: 2,
    Chem.rdchem.BondType.AROMATIC: 3,
}
_BOND_DIR = {
    Chem.rdchem.BondDir.NONE: 0,
    Chem.rdchem.BondDir.ENDUPRIGHT: 1,
    Chem.rdchem.BondDir.ENDDOWNRIGHT: 2,
}


@dataclass
class FeaturizationStats:
    """Counts of what the featurizer had to drop or map."""

    molecules: int = 0
    invalid_smiles: int = 0
    dummy_atom_molecules: int = 0
    dative_bonds_as_single: int = 0
    other_bonds_as_single: int = 0
    other_chirality_as_unspecified: int = 0
    other_bond_dirs_as_none: int = 0

    @property
    def dropped(self) -> int:
        return self.invalid_smiles + self.dummy_atom_molecules

    def as_dict(self) -> dict[str, int]:
        return asdict(self) | {"dropped": self.dropped}


@dataclass
class MoleculeGraph:
    """One featurized molecule."""

    x: np.ndarray  # (n_atoms, 2) int64
    edge_index: np.ndarray  # (2, n_edges) int64, node indices local to the molecule
    edge_attr: np.ndarray  # (n_edges, 2) int64
    scaffold: str
    stats: FeaturizationStats = field(default_factory=FeaturizationStats)

    @property
    def num_atoms(self) -> int:
        return int(self.x.shape[0])


def parse_smiles(smiles: object) -> Chem.Mol | None:
    """RDKit molecule from SMILES with full sanitization, or ``None`` if it fails."""
    if not isinstance(smiles, str) or not smiles.strip():
        return None
    return Chem.MolFromSmiles(smiles)


@contextlib.contextmanager
def quiet_rdkit() -> Iterator[None]:
    """Silence RDKit's per-molecule parse warnings (the drops are counted instead)."""
    RDLogger.DisableLog("rdApp.*")  # type: ignore[attr-defined]
    try:
        yield
    finally:
        RDLogger.EnableLog("rdApp.*")  # type: ignore[attr-defined]


SCAFFOLD_SOURCES = ("raw", "canonical")


def murcko_scaffold(mol: Chem.Mol, source: str = "raw") -> str:
    """Bemis-Murcko scaffold SMILES, chirality included (as the reference splitter), of ``mol``
    (``source="raw"``) or of the molecule its canonical SMILES parses to (``"canonical"``)."""
    if source == "canonical":
        return MurckoScaffold.MurckoScaffoldSmiles(smiles=Chem.MolToSmiles(mol), includeChirality=True)
    if source != "raw":
        raise ValueError(f"scaffold source {source!r} is not accepted; accepted: {', '.join(SCAFFOLD_SOURCES)}")
    return MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=True)


def featurize_mol(
    mol: Chem.Mol, stats: FeaturizationStats | None = None, scaffold_source: str = "raw"
) -> MoleculeGraph | None:
    """Featurize an RDKit molecule; ``None`` when it holds an atom outside the vocabulary."""
    stats = stats if stats is not None else FeaturizationStats()
    other_chirality = other_dirs = dative = other_bonds = 0
    x = np.empty((mol.GetNumAtoms(), 2), dtype=np.int64)
    for i, atom in enumerate(mol.GetAtoms()):
        atomic_num = atom.GetAtomicNum()
        if not 1 <= atomic_num <= 118:
            stats.dummy_atom_molecules += 1  # dropped: its mappings are not counted
            return None
        chirality = _CHIRALITY.get(atom.GetChiralTag())
        if chirality is None:
            other_chirality += 1
            chirality = 0
        x[i, 0] = atomic_num - 1
        x[i, 1] = chirality
    n_bonds = mol.GetNumBonds()
    edge_index = np.empty((2, 2 * n_bonds), dtype=np.int64)
    edge_attr = np.empty((2 * n_bonds, 2), dtype=np.int64)
    for k, bond in enumerate(mol.GetBonds()):
        bond_type = bond.GetBondType()
        type_index = _BOND_TYPE.get(bond_type)
        if type_index is None:
            if bond_type == Chem.rdchem.BondType.DATIVE:
                dative += 1
            else:
                other_bonds += 1
            type_index = 0
        dir_index = _BOND_DIR.get(bond.GetBondDir())
        if dir_index is None:
            other_dirs += 1
            dir_index = 0
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        edge_index[:, 2 * k] = (i, j)
        edge_index[:, 2 * k + 1] = (j, i)
        edge_attr[2 * k] = edge_attr[2 * k + 1] = (type_index, dir_index)
    stats.other_chirality_as_unspecified += other_chirality
    stats.dative_bonds_as_single += dative
    stats.other_bonds_as_single += other_bonds
    stats.other_bond_dirs_as_none += other_dirs
    return MoleculeGraph(
        x=x, edge_index=edge_index, edge_attr=edge_attr, scaffold=murcko_scaffold(mol, scaffold_source), stats=stats
    )


def featurize_smiles(
    smiles: object, stats: FeaturizationStats | None = None, scaffold_source: str = "raw"
) -> MoleculeGraph | None:
    """Parse and featurize one SMILES; ``None`` (and a count in ``stats``) when dropped."""
    stats = stats if stats is not None else FeaturizationStats()
    stats.molecules += 1
    mol = parse_smiles(smiles)
    if mol is None:
        stats.invalid_smiles += 1
        return None
    return featurize_mol(mol, stats, scaffold_source)
