"""Fine-tuning methods; importing this package registers every built-in method."""

from trainables.methods import full_ft, interpolation, partial, regularized  # noqa: F401  (registration)
from trainables.methods.base import (
                                     METHODS,
                                     FineTuningMethod,
                                     HyperParameter,
                                     MethodContext,
                                     Stage,
                                     make_method,
                                     register_method,
)

__all__ = ["METHODS", "FineTuningMethod", "HyperParameter", "MethodContext", "Stage", "make_method",
           "register_method"]
