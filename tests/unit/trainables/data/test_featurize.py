"""trainables.data.featurize: exact Hu et al. integer features and the mapping counters."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem

from trainables.data.featurize import FeaturizationStats, featurize_mol, featurize_smiles, quiet_rdkit
from trainables.data.vocabulary import (
    NUM_ATOM_TYPES,
    NUM_BOND_DIRECTIONS,
    NUM_BOND_TYPES,
    NUM_CHIRALITY_TAGS,
    SELF_LOOP_BOND_TYPE,
)

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
CAFFEINE = "Cn1cnc2c1c(=O)n(C)c(=O)n2C"


def featurize(smiles):
    stats = FeaturizationStats()
    with quiet_rdkit():
        graph = featurize_smiles(smiles, stats)
    return graph, stats


def pairs(graph):
    """The undirected bonds as {(i, j): (type, dir)}, checking both directions agree."""
    out = {}
    for k in range(0, graph.edge_index.shape[1], 2):
        i, j = graph.edge_index[:, k]
        assert tuple(graph.edge_index[:, k + 1]) == (j, i)
        assert tuple(graph.edge_attr[k]) == tuple(graph.edge_attr[k + 1])
        out[(int(i), int(j))] = tuple(int(v) for v in graph.edge_attr[k])
    return out


def test_vocabulary_sizes():
    assert (NUM_ATOM_TYPES, NUM_CHIRALITY_TAGS, NUM_BOND_TYPES, NUM_BOND_DIRECTIONS) == (120, 3, 6, 3)
    assert SELF_LOOP_BOND_TYPE == 4


def test_aspirin_exact():
    graph, stats = featurize(ASPIRIN)
    assert graph.num_atoms == 13
    assert graph.x.dtype == np.int64 and graph.edge_index.dtype == np.int64 and graph.edge_attr.dtype == np.int64
    # atomic-number index = Z - 1: carbon 5, oxygen 7
    assert graph.x[:, 0].tolist() == [5, 5, 7, 7, 5, 5, 5, 5, 5, 5, 5, 7, 7]
    assert graph.x[:, 1].tolist() == [0] * 13
    assert graph.edge_index.shape == (2, 26) and graph.edge_attr.shape == (26, 2)
    types = [t for t, _ in pairs(graph).values()]
    assert (types.count(0), types.count(1), types.count(2), types.count(3)) == (5, 2, 0, 6)
    assert pairs(graph)[(0, 1)] == (0, 0)  # C-C single
    assert pairs(graph)[(1, 2)] == (1, 0)  # C=O double
    assert pairs(graph)[(4, 5)] == (3, 0)  # aromatic
    assert graph.scaffold == "c1ccccc1"
    assert stats.as_dict() == {"molecules": 1, "invalid_smiles": 0, "dummy_atom_molecules": 0,
                               "dative_bonds_as_single": 0, "other_bonds_as_single": 0,
                               "other_chirality_as_unspecified": 0, "other_bond_dirs_as_none": 0, "dropped": 0}


def test_caffeine_exact():
    graph, _ = featurize(CAFFEINE)
    assert graph.num_atoms == 14
    assert graph.edge_index.shape == (2, 30)
    z = graph.x[:, 0] + 1
    assert (sorted(z.tolist()).count(6), (z == 7).sum(), (z == 8).sum()) == (8, 4, 2)
    types = [t for t, _ in pairs(graph).values()]
    assert (types.count(0), types.count(1), types.count(3)) == (3, 2, 10)
    assert graph.scaffold == "O=c1[nH]c(=O)c2[nH]cnc2[nH]1"


def test_benzene_ethanol_methane():
    benzene, _ = featurize("c1ccccc1")
    assert benzene.x.tolist() == [[5, 0]] * 6
    assert benzene.edge_attr.tolist() == [[3, 0]] * 12
    assert benzene.scaffold == "c1ccccc1"
    ethanol, _ = featurize("CCO")
    assert ethanol.x.tolist() == [[5, 0], [5, 0], [7, 0]]
    assert ethanol.edge_index.tolist() == [[0, 1, 1, 2], [1, 0, 2, 1]]
    assert ethanol.edge_attr.tolist() == [[0, 0]] * 4
    assert ethanol.scaffold == ""
    methane, _ = featurize("C")
    assert methane.x.tolist() == [[5, 0]]
    assert methane.edge_index.shape == (2, 0) and methane.edge_attr.shape == (0, 2)


def test_triple_bond_and_heavy_atoms():
    graph, _ = featurize("CC#N")
    assert pairs(graph)[(1, 2)] == (2, 0)
    graph, _ = featurize("[U]")
    assert graph.x.tolist() == [[91, 0]]  # Z = 92
    graph, _ = featurize("[Og]")
    assert graph.x.tolist() == [[117, 0]]  # Z = 118, the last index of the vocabulary


@pytest.mark.parametrize("smiles, tag", [("C[C@@H](N)C(=O)O", 1), ("C[C@H](N)C(=O)O", 2)])
def test_tetrahedral_chirality(smiles, tag):
    graph, _ = featurize(smiles)
    mol = Chem.MolFromSmiles(smiles)
    expected = {1: Chem.ChiralType.CHI_TETRAHEDRAL_CW, 2: Chem.ChiralType.CHI_TETRAHEDRAL_CCW}[tag]
    assert mol.GetAtomWithIdx(1).GetChiralTag() == expected
    assert graph.x[:, 1].tolist() == [0, tag, 0, 0, 0, 0]


def test_bond_directions():
    trans, _ = featurize("F/C=C/F")
    assert pairs(trans) == {(0, 1): (0, 1), (1, 2): (1, 0), (2, 3): (0, 1)}  # ENDUPRIGHT -> 1
    cis, _ = featurize("F/C=C\\F")
    assert pairs(cis) == {(0, 1): (0, 1), (1, 2): (1, 0), (2, 3): (0, 2)}  # ENDDOWNRIGHT -> 2


@pytest.mark.parametrize("smiles, bonds, expected_pair", [
    ("[NH3]->[Pt]", 1, ((0, 1), (0, 0))),
    ("C1=CC=CC=C1->[Fe]", 7, ((5, 6), (0, 0))),
])
def test_dative_bonds_are_single_and_counted(smiles, bonds, expected_pair):
    mol = Chem.MolFromSmiles(smiles)
    assert any(b.GetBondType() == Chem.BondType.DATIVE for b in mol.GetBonds())
    graph, stats = featurize(smiles)
    assert graph.edge_index.shape == (2, 2 * bonds)
    (i, j), attr = expected_pair
    assert pairs(graph)[(i, j)] == attr
    assert stats.dative_bonds_as_single == 1
    assert stats.other_bonds_as_single == 0 and stats.dropped == 0


def test_non_tetrahedral_chirality_is_unspecified_and_counted():
    graph, stats = featurize("F[Pt@SP1](Cl)(Br)I")  # square planar
    assert Chem.MolFromSmiles("F[Pt@SP1](Cl)(Br)I").GetAtomWithIdx(1).GetChiralTag() == Chem.ChiralType.CHI_SQUAREPLANAR
    assert graph.x.tolist() == [[8, 0], [77, 0], [16, 0], [34, 0], [52, 0]]
    assert stats.other_chirality_as_unspecified == 1
    graph, stats = featurize("F[Co@OH1](Cl)(Br)(I)(N)O")  # octahedral
    assert graph.x[1].tolist() == [26, 0]
    assert stats.other_chirality_as_unspecified == 1


def _hand_mol(bond_type, chiral_tag, bond_dir):
    mol = Chem.RWMol()
    mol.AddAtom(Chem.Atom(6))
    mol.AddAtom(Chem.Atom(8))
    mol.AddBond(0, 1, bond_type)
    mol.GetAtomWithIdx(0).SetChiralTag(chiral_tag)
    mol.GetBondWithIdx(0).SetBondDir(bond_dir)
    Chem.FastFindRings(mol)
    return mol.GetMol()


@pytest.mark.parametrize("chiral_tag", [Chem.ChiralType.CHI_ALLENE, Chem.ChiralType.CHI_OTHER,
                                        Chem.ChiralType.CHI_TRIGONALBIPYRAMIDAL])
def test_other_chirality_tags_on_a_hand_built_molecule(chiral_tag):
    stats = FeaturizationStats()
    graph = featurize_mol(_hand_mol(Chem.BondType.SINGLE, chiral_tag, Chem.BondDir.NONE), stats)
    assert graph.x.tolist() == [[5, 0], [7, 0]]
    assert stats.other_chirality_as_unspecified == 1


@pytest.mark.parametrize("bond_type", [Chem.BondType.ZERO, Chem.BondType.HYDROGEN, Chem.BondType.UNSPECIFIED,
                                       Chem.BondType.QUADRUPLE])
def test_other_bond_types_are_single_and_counted(bond_type):
    stats = FeaturizationStats()
    graph = featurize_mol(_hand_mol(bond_type, Chem.ChiralType.CHI_UNSPECIFIED, Chem.BondDir.NONE), stats)
    assert graph.edge_attr.tolist() == [[0, 0], [0, 0]]
    assert (stats.other_bonds_as_single, stats.dative_bonds_as_single) == (1, 0)


@pytest.mark.parametrize("bond_dir", [Chem.BondDir.BEGINWEDGE, Chem.BondDir.BEGINDASH, Chem.BondDir.EITHERDOUBLE,
                                      Chem.BondDir.UNKNOWN])
def test_other_bond_directions_are_none_and_counted(bond_dir):
    stats = FeaturizationStats()
    graph = featurize_mol(_hand_mol(Chem.BondType.DOUBLE, Chem.ChiralType.CHI_UNSPECIFIED, bond_dir), stats)
    assert graph.edge_attr.tolist() == [[1, 0], [1, 0]]
    assert stats.other_bond_dirs_as_none == 1


@pytest.mark.parametrize("smiles", ["C1CC", "", "   ", None, 3.5, "not a smiles", "C(C)(C)(C)(C)C"])
def test_invalid_smiles_dropped_and_counted(smiles):
    graph, stats = featurize(smiles)
    assert graph is None
    assert (stats.molecules, stats.invalid_smiles, stats.dummy_atom_molecules, stats.dropped) == (1, 1, 0, 1)


@pytest.mark.parametrize("smiles", ["*C", "c1ccccc1[*]", "[1*]CCO"])
def test_dummy_atom_molecules_dropped_and_counted(smiles):
    assert Chem.MolFromSmiles(smiles) is not None  # it parses; it is dropped for its atom 0
    graph, stats = featurize(smiles)
    assert graph is None
    assert (stats.molecules, stats.invalid_smiles, stats.dummy_atom_molecules, stats.dropped) == (1, 0, 1, 1)


def test_counters_accumulate_over_molecules():
    stats = FeaturizationStats()
    with quiet_rdkit():
        out = [featurize_smiles(s, stats) for s in [ASPIRIN, "C1CC", "*C", "[NH3]->[Pt]", "[NH3]->[Pt]<-[NH3]", "CCO"]]
    assert [g is None for g in out] == [False, True, True, False, False, False]
    assert stats.as_dict() == {"molecules": 6, "invalid_smiles": 1, "dummy_atom_molecules": 1,
                               "dative_bonds_as_single": 3, "other_bonds_as_single": 0,
                               "other_chirality_as_unspecified": 0, "other_bond_dirs_as_none": 0, "dropped": 2}


def test_dropped_molecule_does_not_count_mappings():
    graph, stats = featurize("F[Pt@SP1](Cl)(Br)*")
    assert graph is None and stats.dummy_atom_molecules == 1
    assert stats.other_chirality_as_unspecified == 0


def test_scaffold_keeps_chirality():
    from rdkit.Chem.Scaffolds import MurckoScaffold

    smiles = "O[C@H]1C[C@@H]2CC[C@H]1C2"
    mol = Chem.MolFromSmiles(smiles)
    with_chirality = MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=True)
    assert with_chirality != MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False)
    graph, _ = featurize(smiles)
    assert graph.scaffold == with_chirality
    assert "@" in graph.scaffold
