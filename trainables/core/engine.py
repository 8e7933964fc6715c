"""The engine's speed options, declared once.

Every speed option is a field of :class:`EngineOptions` with its metadata (help text, accepted
values, where it applies, the word a result row's ``engine`` uses for it). Everything else is
derived from this one declaration: the sweep spec's ``execution`` keys and their validation,
the runtime a trial receives, the fused engine's switches, the throughput bench's flags and
``--variant`` words, and each row's ``engine`` label. A new option is a new field here and its
implementation in the engine.

Speed options change floating-point results (rounding), never what a trial is: they are not part
of the trial key, and each row names those in effect, e.g. ``fused+tf32+compile+csr``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

# Where an option takes effect (for the row's engine label and for the engine itself):
ANYWHERE_ON_CUDA = "cuda"  # every trial on a CUDA device (e.g. TF32 matrix products)
FUSED = "fused"  # fused groups, on any device
FUSED_ON_CUDA = "fused-cuda"  # fused groups on a CUDA device
FUSED_CSR_TYPES = "fused-csr"  # fused groups of an architecture CSR aggregation applies to

CSR_GNN_TYPES = ("gin", "gcn", "graphsage")  # GAT's message weights are new in every layer: scatter only


def _option(
    default: Any,
    help: str,
    applies: str,
    choices: tuple[str, ...] | None = None,
    words: dict[Any, str | None] | None = None,
) -> Any:
    """A field of :class:`EngineOptions`. ``words`` maps a non-default value to the word that the
    row's engine label, the bench's flag (``--WORD``) and ``--variant`` use for it."""
    if words is None:
        words = {True: None} if isinstance(default, bool) else {}
    return field(default=default, metadata={"help": help, "applies": applies, "choices": choices, "words": words})


@dataclass(frozen=True)
class EngineOptions:
    """Speed options of the training engine (defaults: exact, portable fp32)."""

    tf32: bool = _option(False, "TF32 matrix products on GPUs (process-wide)", ANYWHERE_ON_CUDA)
    compile: bool = _option(
        False, "fused groups on GPUs: torch.compile the training-mode BatchNorm + ReLU + dropout chain", FUSED_ON_CUDA
    )
    dropout_streams: str = _option(
        "per-trial",
        "fused groups: one dropout generator per trial (a trial's result "
        "does not depend on its group) or one per group",
        FUSED,
        ("per-trial", "group"),
        {"group": "group-dropout"},
    )
    precision: str = _option(
        "fp32",
        "fused groups: float32 (TF32 where allowed) or bfloat16 autocast",
        FUSED,
        ("fp32", "bf16"),
        {"bf16": "bf16"},
    )
    aggregation: str = _option(
        "scatter",
        "fused GIN/GCN/GraphSAGE groups: sum messages by gather + index_add (scatter) or by sparse CSR products",
        FUSED_CSR_TYPES,
        ("scatter", "csr"),
        {"csr": "csr"},
    )
    test_scoring: str = _option(
        "every-epoch",
        "fused groups: score test every epoch, or only at the epochs a member's "
        "validation improves and at each stage's last epoch (the only test "
        "figures a result reports: the same results, epoch curves with test "
        "only there)",
        FUSED,
        ("every-epoch", "improved"),
        {"improved": "lazy-test"},
    )

    def __post_init__(self):
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            choices = spec.metadata["choices"]
            if choices is None and not isinstance(value, bool):
                raise ValueError(f"{spec.name}={value!r} is not accepted; accepted: true, false")
            if choices is not None and value not in choices:
                raise ValueError(f"{spec.name}={value!r} is not accepted; accepted: {', '.join(choices)}")

    # ------------------------------------------------------------------ derived views

    @staticmethod
    def schema() -> dict[str, Any]:
        """Spec validation: option name -> ``bool`` or the tuple of accepted values."""
        return {f.name: f.metadata["choices"] or bool for f in dataclasses.fields(EngineOptions)}

    @staticmethod
    def choices(name: str) -> tuple[Any, ...]:
        """The accepted values of option ``name``."""
        spec = {f.name: f for f in dataclasses.fields(EngineOptions)}[name]
        return spec.metadata["choices"] or (False, True)

    @staticmethod
    def describe() -> list[tuple[str, Any, str]]:
        """(name, default, help) of every option, in declaration order."""
        return [(f.name, f.default, f.metadata["help"]) for f in dataclasses.fields(EngineOptions)]

    @staticmethod
    def words() -> dict[str, tuple[str, Any]]:
        """Bench flag / variant word -> (option name, value), e.g. ``"csr" -> ("aggregation", "csr")``."""
        out = {}
        for spec in dataclasses.fields(EngineOptions):
            for value, word in spec.metadata["words"].items():
                out[word or spec.name] = (spec.name, value)
        return out

    @classmethod
    def from_words(cls, text: str, base: EngineOptions | None = None) -> EngineOptions:
        """``"compile,csr"`` -> those options switched on over ``base``; ``"plain"`` -> ``base``."""
        words = cls.words()
        chosen = [w.strip() for w in text.split(",") if w.strip() and w.strip() != "plain"]
        unknown = [w for w in chosen if w not in words]
        if unknown:
            raise ValueError(
                f"engine option(s) {', '.join(map(repr, unknown))} are not accepted; accepted: "
                f"plain, or a comma-separated list of {', '.join(words)}"
            )
        return dataclasses.replace(base or cls(), **dict(words[w] for w in chosen))

    def as_words(self) -> str:
        """The inverse of :meth:`from_words`: ``"plain"`` or e.g. ``"compile,csr"``."""
        on = [word for word, (name, value) in self.words().items() if getattr(self, name) == value]
        return ",".join(on) or "plain"

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    # ------------------------------------------------------------------ what applies where

    def aggregation_for(self, gnn_type: str) -> str:
        """The aggregation a fused group of ``gnn_type`` uses: ``csr`` where asked and it applies, else scatter."""
        return self.aggregation if gnn_type in CSR_GNN_TYPES else "scatter"

    def in_effect(self, fused: bool, device_type: str, gnn_type: str = "gin") -> EngineOptions:
        """The options as they act on one trial: those that do not apply there set to their defaults."""
        applies = {
            ANYWHERE_ON_CUDA: device_type == "cuda",
            FUSED: fused,
            FUSED_ON_CUDA: fused and device_type == "cuda",
            FUSED_CSR_TYPES: fused and gnn_type in CSR_GNN_TYPES,
        }
        defaults: dict[str, Any] = {
            f.name: f.default for f in dataclasses.fields(self) if not applies[f.metadata["applies"]]
        }
        return dataclasses.replace(self, **defaults)

    def label(self, fused_trials: int, device_type: str, gnn_type: str = "gin") -> str:
        """A row's ``engine``: ``unfused`` or ``fused``, then ``+`` the word of each option in effect."""
        fused = fused_trials > 1
        effective = self.in_effect(fused, device_type, gnn_type)
        on = [word for word, (name, value) in self.words().items() if getattr(effective, name) == value]
        return "+".join(["fused" if fused else "unfused", *on])
