"""Dependencies between trials.

A method with ``requires_parent`` (WiSE-FT, RoFt-Mol: ``full-ft``) starts from the saved
best-validation state of its *parent*: the trial of the parent method, with that method's
default hyper-parameters, on the same backbone (and checkpoint sha256), task (and data
sha256), split, label setting, run seed, subset seed, recipe and architecture. The parent's key
is therefore a pure function of the dependant's spec, so planning needs no store lookups and a
dependant can never be paired with a checkpoint of another cell.
"""

from __future__ import annotations

import dataclasses

from trainables.core.config import TrialSpec
from trainables.methods import METHODS
from trainables.methods.revisions import with_revisions


def parent_spec(spec: TrialSpec) -> TrialSpec | None:
    """The trial ``spec`` depends on, or ``None`` for a self-contained trial."""
    parent_method = METHODS.get(spec.method).requires_parent
    if parent_method is None:
        return None
    cell = (spec.cell(), parent_method)
    parent = _PARENTS.get(cell)
    if parent is None:
        # Dependants of one cell share one parent object (and its memoised key): planning a
        # grid with 29 dependants per cell builds and hashes each parent once.
        if len(_PARENTS) >= _PARENT_CACHE_SIZE:
            _PARENTS.clear()
        parent = _PARENTS[cell] = with_revisions(
            dataclasses.replace(
                spec,
                method=parent_method,
                method_params=METHODS.get(parent_method).validate_params({}),
                method_revision=METHODS.get(parent_method).revision,
            )
        )
    return parent


_PARENT_CACHE_SIZE = 1 << 16
_PARENTS: dict[tuple, TrialSpec] = {}


def parent_methods() -> set[str]:
    """Methods some registered method depends on (their trials keep their checkpoints)."""
    return {cls.requires_parent for _, cls in METHODS.items() if cls.requires_parent is not None}
