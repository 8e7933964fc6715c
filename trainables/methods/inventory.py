"""The registered fine-tuning methods with their hyper-parameters, as plain data (``roft methods list``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from trainables.methods.base import METHODS

_PAPER_GRID = re.compile(r"paper grid: ([^)]*)")


@dataclass(frozen=True)
class HyperParameterRow:
    name: str
    type: str
    default: Any
    choices: tuple[Any, ...] | None
    paper_grid: tuple[str, ...] | None  # as the hyper-parameter's doc states it ("paper grid: ..."), else None
    doc: str


@dataclass(frozen=True)
class MethodRow:
    name: str
    mechanism: str
    requires_parent: str | None
    fusable: bool
    hyperparameters: tuple[HyperParameterRow, ...]


def method_inventory() -> list[MethodRow]:
    """Every registered fine-tuning method with its hyper-parameters, their defaults and, where a
    hyper-parameter's doc declares it, the paper's grid."""
    rows = []
    for name, cls in METHODS.items():
        params = []
        for param, hp in cls.hyperparameters.items():
            grid = _PAPER_GRID.search(hp.doc)
            params.append(
                HyperParameterRow(
                    param,
                    hp.type.__name__,
                    hp.default,
                    hp.choices,
                    tuple(v.strip() for v in grid.group(1).split(",")) if grid else None,
                    hp.doc,
                )
            )
        rows.append(MethodRow(name, cls.mechanism, cls.requires_parent, cls.fusable, tuple(params)))
    return rows
