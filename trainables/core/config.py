"""The canonical configuration of one trial, and its key.

A :class:`TrialSpec` holds everything that determines a trial's result. Its
:meth:`~TrialSpec.key` is the sha256 of its canonical JSON (sorted keys; numbers typed by
:class:`TrainingRecipe` and by each method's hyper-parameter declarations, so ``0`` and ``0.0``
never both occur; floats in Python's shortest round-trip form),
so two specs with the same content have the same key on every machine; the results store is
deduplicated on it. The key covers the data file's and the checkpoint's sha256 and the
protocol version, so a changed file or protocol yields new trials instead of stale matches.
Sweep name, resources and store location are *not* part of it.

Two revision numbers make a change of what roft computes change the keys it touches, and only
those: ``method_revision`` (the method's ``revision``: raised when the method computes something
else under the same hyper-parameters) and ``subset_revision`` (raised when the training molecules
a split and label setting select change). Both are set by
:func:`trainables.methods.revisions.with_revisions` from the code, never by a user, and enter the
canonical JSON only when above 1, so the keys of trials whose computation never changed (Full FT
on the full-label scaffold split, for one) are those they always had.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from typing import Any

from trainables.core.data_root import DataRoot
from trainables.core.engine import EngineOptions

PROTOCOL_VERSION = "roft-protocol-1"
ARTIFACT_POLICIES = ("required", "all")
MAX_EPOCHS = 100_000  # the most epochs of any training stage (the recipe's, LP-FT's stages, RoFt-Mol's alphas)
MAX_SEEDS = 10_000  # run seeds in one spec
MAX_SEED = 2**32 - 1  # the largest seed of a sampler (numpy's and Optuna's accept up to 2**32 - 1)


def bounded(default: Any, minimum: float, maximum: float, **metadata: Any) -> Any:
    """A dataclass field from ``minimum`` to ``maximum`` (both included): sweep specs are validated against
    its type and range (:mod:`search_spaces.spec`); more ``metadata`` (e.g. ``section``) as given. Every
    number has an upper bound too: a spec's arithmetic (planning, estimates) never meets an integer
    beyond float range, and a typo of a few extra digits is refused instead of planned."""
    if not minimum <= maximum:
        raise ValueError(f"bounded: minimum {minimum} above maximum {maximum}")
    return field(default=default, metadata={"minimum": minimum, "maximum": maximum, **metadata})


def accepted_range(kind: type, minimum: float, maximum: float) -> str:
    """What a bounded number accepts, in words: ``"an integer from 1 to 100,000"``,
    ``"a finite number from 0 to 10"`` (the wording of every range error and of docs/guide.md)."""

    if kind is int:
        return f"an integer from {int(minimum):,} to {int(maximum):,}"
    return f"a finite number from {minimum:,.10g} to {maximum:,.10g}"


def in_range(value: float, minimum: float, maximum: float) -> bool:
    """``minimum <= value <= maximum``; False for NaN (which compares false with everything)."""
    return minimum <= value <= maximum


@dataclass(frozen=True)
class TrainingRecipe:
    """The shared recipe of docs/protocol.md, Recipe (defaults are the paper's)."""

    epochs: int = bounded(100, 1, MAX_EPOCHS)
    batch_size: int = bounded(32, 1, 1_000_000)
    lr: float = bounded(1e-3, 0.0, 10.0)
    weight_decay: float = bounded(0.0, 0.0, 10.0)
    dropout: float = bounded(0.5, 0.0, 1.0)

    def __post_init__(self):
        # Equal recipes must serialise equally (0 and 0.0 would give different trial keys).
        for name in ("epochs", "batch_size"):
            object.__setattr__(self, name, int(getattr(self, name)))
        for name in ("lr", "weight_decay", "dropout"):
            object.__setattr__(self, name, float(getattr(self, name)))


@dataclass(frozen=True)
class TrialSpec:
    backbone: str
    method: str
    task: str
    split: str
    label_setting: str
    seed: int
    subset_seed: int
    recipe: TrainingRecipe = field(default_factory=TrainingRecipe)
    method_params: dict[str, Any] = field(default_factory=dict)
    # Architecture of scratch backbones (None for pre-trained ones: the checkpoint decides).
    num_layers: int | None = None
    emb_dim: int | None = None
    backbone_sha256: str = ""
    data_sha256: str = ""
    protocol_version: str = PROTOCOL_VERSION
    method_revision: int = 1  # the method's revision (see the module docstring)
    subset_revision: int = 1  # the revision of the split and label subset's selection

    def __post_init__(self):
        for name in REVISION_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} is not accepted; accepted: an integer >= 1")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (hand-rolled: ``dataclasses.asdict`` deep-copies and costs ~10x more).

        A revision of 1 is left out, so keys made before revisions existed stay valid."""
        out = {
            name: getattr(self, name)
            for name in _SPEC_FIELDS
            if name not in REVISION_FIELDS or getattr(self, name) != 1
        }
        out["recipe"] = dict(self.recipe.__dict__)
        out["method_params"] = dict(self.method_params)
        return out

    def cell(self) -> tuple:
        """Every field except the method, its hyper-parameters and its revision (hashable)."""
        return tuple(
            getattr(self, name) for name in _SPEC_FIELDS if name not in ("method", "method_params", "method_revision")
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialSpec:
        data = dict(data)
        data["recipe"] = TrainingRecipe(**data.get("recipe", {}))
        return cls(**data)

    def canonical_json(self) -> str:
        return canonical_json(self.to_dict())

    def key(self) -> str:
        """First 24 hex digits of sha256(canonical JSON) (memoised: the spec is immutable)."""
        cached = self.__dict__.get("_key")
        if cached is None:
            cached = hashlib.sha256(self.canonical_json().encode()).hexdigest()[:24]
            object.__setattr__(self, "_key", cached)
        return cached


_SPEC_FIELDS = tuple(f.name for f in fields(TrialSpec))
REVISION_FIELDS = ("method_revision", "subset_revision")


def canonical_json(value: Any) -> str:
    """``value`` as JSON with sorted keys and no spaces: equal values give equal text on every machine
    (trial keys, and the ``method_params`` / ``method_results`` columns of the store)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(value: Any) -> Any:
    raise TypeError(f"value {value!r} of type {type(value).__name__} is not JSON-serialisable")


@dataclass(frozen=True)
class Runtime:
    """Where and how a trial runs; not part of the trial key."""

    store: str
    sweep: str = "adhoc"
    data_root: DataRoot = field(default_factory=DataRoot)  # resolved once, where the run starts
    threads: int = 1
    device: str = "auto"  # auto | cpu | cuda
    code_version: str = "unknown"
    artifacts: str = "required"  # required: keep checkpoints other trials depend on | all
    optuna_storage: str | None = None  # alpha searches: None (in memory), a journal file path, or an RDB URL
    engine: EngineOptions = field(default_factory=EngineOptions)  # speed options (see trainables.core.engine)

    def __post_init__(self):
        if self.artifacts not in ARTIFACT_POLICIES:
            raise ValueError(f"artifacts={self.artifacts!r} is not accepted; accepted: {', '.join(ARTIFACT_POLICIES)}")
        if not isinstance(self.data_root, DataRoot):
            raise TypeError(
                f"Runtime.data_root must be a DataRoot (resolved once from --data-root / ROFT_DATA), "
                f"not {type(self.data_root).__name__}"
            )
        if isinstance(self.engine, dict):  # from to_dict(), through Ray's config
            object.__setattr__(self, "engine", EngineOptions(**self.engine))

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "engine": self.engine.to_dict()}
