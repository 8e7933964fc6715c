"""Sizes of the Hu et al. (2020) feature vocabularies (see :mod:`trainables.data.featurize`).

Kept apart from the featurizer so that the models and the fast engine import without RDKit.
"""

FEATURIZER_VERSION = "hu2020-v1"

NUM_ATOM_TYPES = 120
NUM_CHIRALITY_TAGS = 3
NUM_BOND_TYPES = 6  # 4 chemical + self-loop + mask
NUM_BOND_DIRECTIONS = 3
SELF_LOOP_BOND_TYPE = 4
