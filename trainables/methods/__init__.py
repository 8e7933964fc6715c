"""Fine-tuning methods; importing this package registers every built-in method.

Every module of this package is imported here (:func:`discover`), so a new method is one module
in this folder with a class decorated by :func:`register_method`: no import list to edit.
"""

from __future__ import annotations

import importlib
import pkgutil

from trainables.methods.base import (
    METHODS,
    FineTuningMethod,
    HyperParameter,
    MethodContext,
    Stage,
    make_method,
    register_method,
)


def discover() -> list[str]:
    """Import every module of this package (a method registers when its module is imported); returns
    their names. Modules imported before are not imported again."""
    names = [info.name for info in pkgutil.iter_modules(__path__, f"{__name__}.")]
    for name in names:
        importlib.import_module(name)
    return names


discover()

__all__ = [
    "METHODS",
    "FineTuningMethod",
    "HyperParameter",
    "MethodContext",
    "Stage",
    "discover",
    "make_method",
    "register_method",
]
