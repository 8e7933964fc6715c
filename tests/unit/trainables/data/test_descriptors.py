"""trainables.data.descriptors: the fixed RDKit descriptor set and its standardisation."""

from __future__ import annotations

import numpy as np
import pytest

from trainables.data.descriptors import DESCRIPTORS, compute_descriptors, standardisation, standardise


def test_known_values_of_benzene_and_ethanol():
    values = dict(zip(DESCRIPTORS, compute_descriptors(["c1ccccc1", "CCO"])[0]))
    assert values["MolWt"] == pytest.approx(78.114, abs=1e-3)
    assert (values["HeavyAtomCount"], values["RingCount"], values["NumAromaticRings"]) == (6, 1, 1)
    assert (values["NumHDonors"], values["TPSA"], values["FractionCSP3"]) == (0, 0.0, 0.0)
    ethanol = dict(zip(DESCRIPTORS, compute_descriptors(["CCO"])[0]))
    assert (ethanol["NumHDonors"], ethanol["HeavyAtomCount"]) == (1, 3)
    assert ethanol["TPSA"] == pytest.approx(20.23, abs=1e-2)


def test_an_unreadable_molecule_is_a_row_of_missing_values():
    values = compute_descriptors(["CCO", "not a molecule"])
    assert values.shape == (2, 16) and np.isfinite(values[0]).all() and np.isnan(values[1]).all()


def test_standardisation_ignores_missing_values_and_constant_columns():
    raw = np.array([[1.0, 5.0], [3.0, 5.0], [np.nan, 5.0]])
    mean, std = standardisation(raw)
    assert mean.tolist() == [2.0, 5.0] and std.tolist() == [1.0, 1.0]  # population std of (1, 3) is 1
    z = standardise(raw, mean, std)
    assert z[0].tolist() == [-1.0, 0.0] and np.isnan(z[2, 0])
