"""The fine-tuning method plug-in interface and its registry.

The trainer (:mod:`trainables.training.trainer`) runs one loop for every method. A method decides, per
*stage* (most methods have one; LP-FT has two):

* which parameters train (:meth:`FineTuningMethod.trainable_parameters`), everything else
  being frozen (``requires_grad = False``);
* the module modes during training (:meth:`FineTuningMethod.set_train_mode`);
* an extra loss term added to the task loss (:meth:`FineTuningMethod.regularizer`), and an
  extra forward pass before the loss's, where the method's penalty reads one
  (:meth:`FineTuningMethod.penalty_forward`);
* what happens to gradients before the optimizer step (:meth:`FineTuningMethod.before_step`), and
  the step itself (:meth:`FineTuningMethod.optimizer_step`);
* what carries over between stages (:meth:`FineTuningMethod.end_stage`);
* what is set up before the first stage (:meth:`FineTuningMethod.setup`: a frozen source model,
  the pre-trained reference weights, or a wrapper that replaces the trained module);
* what is saved and recorded at the best epoch (:meth:`FineTuningMethod.snapshot`,
  :meth:`FineTuningMethod.summary`).

A :class:`Stage` also says which part of the data it fits on and selects on, its learning rate
and whether its epochs may be chosen as the trial's best; a stage of 0 epochs is evaluated once
without training (post-hoc methods such as WiSE-FT).

A method that needs another trial's result (WiSE-FT and RoFt-Mol need the best-validation
Full-FT checkpoint of the same cell and seed) names it in ``requires_parent``; the planner runs
that trial first and the trainable hands its state to the method as ``ctx.parent_state``.

A method declares its hyper-parameters in ``hyperparameters``; sweep specs are validated
against them, and their values enter the trial key.

Register a new method with one decorated class::

    @register_method("my-method")
    class MyMethod(FineTuningMethod):
        mechanism = "weight"
        hyperparameters = {"d": HyperParameter(float, 1e-2, "regularisation strength")}
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from trainables.core.config import accepted_range
from trainables.core.registry import Registry
from trainables.models.encoders import GNNOutput

MECHANISMS = ("baseline", "partial", "weight", "representation")


@dataclass(frozen=True)
class HyperParameter:
    """A method hyper-parameter: its type, default, optional allowed values, and meaning."""

    type: type
    default: Any
    doc: str
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None  # every integer one has both ends (trainables.core.config.accepted_range)
    nullable: bool = False  # None accepted (its meaning is stated in ``doc``)

    def validate(self, name: str, value: Any) -> Any:
        """The value coerced to ``type``; ``ValueError`` naming the value and what is accepted."""
        article = "an" if self.type.__name__[0] in "aeiou" else "a"
        accepted = (
            f"one of {list(self.choices)}"
            if self.choices is not None
            else accepted_range(self.type, self.minimum, self.maximum)
            if self.minimum is not None and self.maximum is not None
            else f"{article} {self.type.__name__}" + (f" >= {self.minimum}" if self.minimum is not None else "")
        )
        if self.nullable:
            if value is None:
                return None
            accepted += " or null"
        if isinstance(value, bool) != (self.type is bool):
            raise ValueError(f"{name}={value!r} is not accepted; accepted: {accepted}")
        try:
            coerced = self.type(value)
            if self.type is int and float(value) != coerced:
                raise ValueError("fractional value for an integer")  # int(1.5) would silently give 1
        except (TypeError, ValueError, OverflowError):  # OverflowError: an integer beyond any float
            raise ValueError(f"{name}={reprlib.repr(value)} is not accepted; accepted: {accepted}") from None
        if self.choices is not None and coerced not in self.choices:
            raise ValueError(f"{name}={value!r} is not accepted; accepted: {accepted}")
        if isinstance(coerced, float) and not math.isfinite(coerced):
            raise ValueError(f"{name}={value!r} is not accepted; accepted: {accepted} (finite)")
        if (self.minimum is not None and coerced < self.minimum) or (
            self.maximum is not None and coerced > self.maximum
        ):
            raise ValueError(f"{name}={value!r} is not accepted; accepted: {accepted}")
        return coerced


FIT_PARTS = ("train", "valid", "valid_fit")
SELECT_PARTS = ("valid", "valid_select")


@dataclass(frozen=True)
class Stage:
    """One training stage.

    ``fit_on``: the molecules the stage trains on (``train``; ``valid`` for RoFt-Mol's alphas as
    in the reference code; ``valid_fit``, one half of validation). ``select_on``: the molecules
    whose metric picks the best epoch (``valid``, or ``valid_select``, the other half).
    ``lr``: this stage's Adam learning rate (``None``: the recipe's). ``selectable``: whether
    this stage's epochs may be reported as the trial's best (LP-FT reports its FT stage).
    ``epochs == 0``: evaluate the model once, without training. ``shuffle``: whether each epoch
    visits the fitting molecules in a new random order (``False``: in the split's order every epoch).
    """

    name: str
    epochs: int
    lr: float | None = None
    fit_on: str = "train"
    select_on: str = "valid"
    selectable: bool = True
    shuffle: bool = True

    def __post_init__(self):
        if self.fit_on not in FIT_PARTS:
            raise ValueError(f"stage {self.name}: fit_on={self.fit_on!r}; accepted: {', '.join(FIT_PARTS)}")
        if self.select_on not in SELECT_PARTS:
            raise ValueError(f"stage {self.name}: select_on={self.select_on!r}; accepted: {', '.join(SELECT_PARTS)}")
        if self.epochs < 0:
            raise ValueError(f"stage {self.name}: epochs={self.epochs} must be >= 0")


@dataclass
class MethodContext:
    """What a method may read while training.

    ``model``: the module the trainer trains and evaluates (a method's :meth:`~FineTuningMethod.setup`
    may replace it with a wrapper). ``pretrained_state``: theta_pre, the model's state dict when
    fitting begins (pre-trained backbone, fresh head); :func:`trainables.training.trainer.fit` fills it when
    ``None``. ``parent_state``: the state dict of the trial named by ``requires_parent``.
    ``seed``: the trial's run seed. ``parent_key``: the parent trial's key.
    ``evaluate(part) -> Score``: scores ``model`` in eval mode on a part of the split
    (``valid``, ``valid_fit``, ``valid_select``, ``test``), set by the trainer;
    ``evaluate_states(part, states) -> [Score]``: ``model`` loaded with each state dict, scored in
    one stacked pass where the architecture fuses (alpha searches score batches of points).
    ``optuna_storage``: where alpha searches keep their studies (None: in memory).
    ``prior_alpha_points(study) -> list``: points of a study already in the results store.
    """

    model: nn.Module
    pretrained_state: dict[str, torch.Tensor] | None
    parent_state: dict[str, torch.Tensor] | None = None
    seed: int = 0
    parent_key: str = ""
    evaluate: Callable[[str], Any] | None = None
    evaluate_states: Callable[[str, list], list] | None = None
    optuna_storage: str | None = None
    prior_alpha_points: Callable[[str], list] | None = None
    higher_is_better: bool = True


@dataclass(frozen=True)
class FusedTerms:
    """A method's additions to the task loss, in the form the fused engine evaluates for K trials at once.

    Per trial: ``anchor_strength/2 * sum_{w in anchors} ||w - anchor_w||^2`` (``anchors``: state
    name -> tensor), ``head_strength/2 * ||theta_head||^2``, ``feature_strength/2 * ||F_t - F_s||^2``
    over the last layer's node features (``F_s`` from the trial's initial weights, eval mode),
    ``spectral_strength * sum`` of the squares of the ``spectral_k`` smallest singular values of the
    batch's pooled embeddings; gradient values clipped to ``[-grad_clip, grad_clip]`` (0: off).
    All zero: Full FT.
    """

    anchors: dict[str, torch.Tensor] = field(default_factory=dict)
    anchor_strength: float = 0.0
    head_strength: float = 0.0
    feature_strength: float = 0.0
    feature_tensor: str = "conv"
    spectral_strength: float = 0.0
    spectral_k: int = 1
    grad_clip: float = 0.0


class FineTuningMethod:
    """Base class: full fine-tuning behaviour at every hook."""

    name: ClassVar[str] = ""
    mechanism: ClassVar[str] = "baseline"
    hyperparameters: ClassVar[dict[str, HyperParameter]] = {}
    requires_parent: ClassVar[str | None] = None  # method whose best checkpoint this one starts from
    # Raised whenever the method computes something else under the same hyper-parameters: it enters
    # the trial key (trainables.methods.revisions), so rows of the old computation are never pooled.
    revision: ClassVar[int] = 1
    label_hyperparameters: ClassVar[tuple[str, ...]] = ()  # shown in the label even at their default
    # True when the fused engine (trainables.training.fused) can train the method with other trials: its
    # stages fit on train and select on valid, its loss terms are those :meth:`fused_terms` states, what
    # trains is :meth:`trainable_parameters`, and :meth:`end_stage` (where ``has_stage_end``) may run
    # on the member's own model between stages.
    fusable: ClassVar[bool] = False
    has_stage_end: ClassVar[bool] = False  # end_stage does something (the fused engine then calls it)
    # The hyper-parameters that reproduce the reference code where roft's defaults deliberately differ
    # (docs/protocol.md, quirks); a spec's ``reference_exact: true`` starts every grid from them.
    reference_params: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any):
        self.params = self.validate_params(params)

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """Fill defaults and check every value; unknown names are errors."""
        unknown = sorted(set(params) - set(cls.hyperparameters))
        if unknown:
            accepted = ", ".join(cls.hyperparameters) or "none"
            raise ValueError(f"method {cls.name}: unknown hyper-parameter(s) {unknown}; accepted: {accepted}")
        return {
            name: hp.validate(f"{cls.name}.{name}", params.get(name, hp.default))
            for name, hp in cls.hyperparameters.items()
        }

    # ---- hooks -------------------------------------------------------------------------
    def validate_model(self, model: nn.Module) -> None:
        """``ValueError`` when the method's settings do not apply to ``model`` (checked by ``setup`` and
        by the fused engine)."""
        return None

    def setup(self, ctx: MethodContext) -> None:
        """Called once before the first stage (``ctx.pretrained_state`` is set)."""
        self.validate_model(ctx.model)
        if self.requires_parent is not None and ctx.parent_state is None:
            raise ValueError(f"method {self.name} needs the state of its {self.requires_parent} parent trial")

    def stages(self, epochs: int) -> list[Stage]:
        return [Stage("finetune", epochs)]

    def trainable_parameters(self, ctx: MethodContext, stage: Stage) -> list[nn.Parameter]:
        return list(ctx.model.parameters())

    def set_train_mode(self, ctx: MethodContext, stage: Stage) -> None:
        ctx.model.train()

    def penalty_forward(self, ctx: MethodContext, stage: Stage, batch: Any) -> None:
        """Called before the forward pass of the task loss: a method whose penalty reads a forward pass
        of its own (the reference code's regularised methods) runs it here."""
        return None

    def regularizer(self, ctx: MethodContext, stage: Stage, batch: Any, output: GNNOutput) -> torch.Tensor | None:
        return None

    def before_step(self, ctx: MethodContext, stage: Stage, parameters: list[nn.Parameter]) -> None:
        return None

    def optimizer_step(self, ctx: MethodContext, stage: Stage, optimizer: torch.optim.Optimizer) -> None:
        """The optimizer's update after each backward pass (one step; RoFt-Mol may take more)."""
        optimizer.step()

    def end_stage(self, ctx: MethodContext, stage: Stage, best_state: dict[str, torch.Tensor] | None) -> None:
        return None

    def snapshot(self, ctx: MethodContext) -> dict[str, torch.Tensor]:
        """The state saved for an epoch that improves validation (``GraphPredictor`` layout)."""
        return ctx.model.state_dict()

    def fuses(self) -> bool:
        """Whether this trial, with its hyper-parameters, can train in a fused group (``fusable``
        methods may refuse some settings)."""
        return self.fusable

    def fusion_signature(self, epochs: int) -> tuple | None:
        """What the trials of one fused group must share about their methods (``None``: trains alone):
        the engine, and per stage its epochs, learning rate, parts, whether it may be reported and
        whether it shuffles (methods, hyper-parameters and what trains may differ)."""
        if not self.fuses():
            return None
        return (
            "train",
            tuple((s.epochs, s.lr, s.fit_on, s.select_on, s.selectable, s.shuffle) for s in self.stages(epochs)),
        )

    def fused_terms(self, pretrained_state: dict[str, torch.Tensor], seed: int) -> FusedTerms:
        """This trial's loss terms for the fused engine (only for ``fusable`` methods)."""
        if not self.fuses():
            raise NotImplementedError(f"method {self.name} does not fuse")
        return FusedTerms()

    def summary(self, ctx: MethodContext) -> dict[str, Any]:
        """JSON-able values recorded with the best epoch (e.g. RoFt-Mol's alphas)."""
        return {}

    def records(self, ctx: MethodContext) -> dict[str, list[dict[str, Any]]]:
        """Extra store tables written with the trial, by table name (e.g. ``alpha_trials``)."""
        return {}

    def label_items(self) -> list[tuple[str, Any]]:
        """``(name, value)`` of the grid's defining and non-default hyper-parameters, by name."""
        return sorted(
            (k, v)
            for k, v in self.params.items()
            if v != self.hyperparameters[k].default or k in self.label_hyperparameters
        )

    @property
    def label(self) -> str:
        """Display name with the grid's defining and non-default hyper-parameters, e.g. ``l2-sp[d=0.01]``."""
        items = self.label_items()
        return self.name + (f"[{','.join(f'{k}={v}' for k, v in items)}]" if items else "")


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
