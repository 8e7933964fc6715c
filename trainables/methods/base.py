"""The fine-tuning method plug-in interface and its registry.

The trainer (:mod:`trainables.train`) runs one loop for every method. A method decides, per
*stage* (most methods have one; LP-FT has two):

* which parameters train (:meth:`FineTuningMethod.trainable_parameters`), everything else
  being frozen (``requires_grad = False``);
* the module modes during training (:meth:`FineTuningMethod.set_train_mode`);
* an extra loss term added to the task loss (:meth:`FineTuningMethod.regularizer`);
* what happens to gradients before the optimizer step (:meth:`FineTuningMethod.before_step`);
* what carries over between stages (:meth:`FineTuningMethod.end_stage`).

A method declares its hyper-parameters in ``hyperparameters``; sweep specs are validated
against them, and their values enter the trial key.

Register a new method with one decorated class::

    @METHODS.register("my-method")
    class MyMethod(FineTuningMethod):
        mechanism = "weight"
        hyperparameters = {"d": HyperParameter(float, 1e-2, "regularisation strength")}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from trainables.gnn import GNNOutput, GraphPredictor
from trainables.registry import Registry

MECHANISMS = ("baseline", "partial", "weight", "representation")


@dataclass(frozen=True)
class HyperParameter:
    """A method hyper-parameter: its type, default, optional allowed values, and meaning."""

    type: type
    default: Any
    doc: str
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None

    def validate(self, name: str, value: Any) -> Any:
        """The value coerced to ``type``; ``ValueError`` naming the value and what is accepted."""
        accepted = (f"one of {list(self.choices)}" if self.choices is not None else
                    f"a {self.type.__name__}" + (f" >= {self.minimum}" if self.minimum is not None else ""))
        if isinstance(value, bool) != (self.type is bool):
            raise ValueError(f"{name}={value!r} is not accepted; accepted: {accepted}")
        try:
            coerced = self.type(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name}={value!r} is not accepted; accepted: {accepted}") from None
        if self.choices is not None and coerced not in self.choices:
            raise ValueError(f"{name}={value!r} is not accepted; accepted: {accepted}")
        if self.minimum is not None and coerced < self.minimum:
            raise ValueError(f"{name}={value!r} is not accepted; accepted: {accepted}")
        return coerced


@dataclass(frozen=True)
class Stage:
    name: str
    epochs: int


@dataclass
class MethodContext:
    """What a method may read while training: the model, theta_pre and the task."""

    model: GraphPredictor
    pretrained_state: dict[str, torch.Tensor] | None


class FineTuningMethod:
    """Base class: full fine-tuning behaviour at every hook."""

    name: ClassVar[str] = ""
    mechanism: ClassVar[str] = "baseline"
    hyperparameters: ClassVar[dict[str, HyperParameter]] = {}

    def __init__(self, **params: Any):
        self.params = self.validate_params(params)

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """Fill defaults and check every value; unknown names are errors."""
        unknown = sorted(set(params) - set(cls.hyperparameters))
        if unknown:
            accepted = ", ".join(cls.hyperparameters) or "none"
            raise ValueError(f"method {cls.name}: unknown hyper-parameter(s) {unknown}; accepted: {accepted}")
        return {name: hp.validate(f"{cls.name}.{name}", params.get(name, hp.default))
                for name, hp in cls.hyperparameters.items()}

    # ---- hooks -------------------------------------------------------------------------
    def stages(self, epochs: int) -> list[Stage]:
        return [Stage("finetune", epochs)]

    def trainable_parameters(self, ctx: MethodContext, stage: Stage) -> list[nn.Parameter]:
        return list(ctx.model.parameters())

    def set_train_mode(self, ctx: MethodContext, stage: Stage) -> None:
        ctx.model.train()

    def regularizer(self, ctx: MethodContext, stage: Stage, batch: Any, output: GNNOutput) -> torch.Tensor | None:
        return None

    def before_step(self, ctx: MethodContext, stage: Stage, parameters: list[nn.Parameter]) -> None:
        return None

    def end_stage(self, ctx: MethodContext, stage: Stage, best_state: dict[str, torch.Tensor] | None) -> None:
        return None

    @property
    def label(self) -> str:
        """Display name with non-default hyper-parameters, e.g. ``l2-sp[d=0.01]``."""
        changed = {k: v for k, v in self.params.items() if v != self.hyperparameters[k].default}
        return self.name + (f"[{','.join(f'{k}={v}' for k, v in sorted(changed.items()))}]" if changed else "")


METHODS: Registry[type[FineTuningMethod]] = Registry("method")


def register_method(name: str):
    """Class decorator: register a :class:`FineTuningMethod` subclass under ``name``."""

    def add(cls: type[FineTuningMethod]) -> type[FineTuningMethod]:
        if cls.mechanism not in MECHANISMS:
            raise ValueError(f"method {name}: mechanism {cls.mechanism!r} not in {MECHANISMS}")
        cls.name = name
        METHODS.register(name, cls)
        return cls

    return add


def make_method(name: str, params: dict[str, Any] | None = None) -> FineTuningMethod:
    return METHODS.get(name)(**(params or {}))
