"""A slice of a sweep spec: the same grid narrowed to some values of its axes (``roft sweep --only``).

A grid too large for one sitting (a laptop's CPU, a short allocation) runs slice by slice:
``roft sweep spec.yaml --only task=bbbp --only seed=3`` plans only the trials of BBBP and seed 3, and
the store keeps the whole spec, so ``roft status`` still counts what is left of the whole grid. A
slice's trials are trials of the spec (the same keys), so a later run of the whole spec, or of any other
slice, skips what has landed. Parents that WiSE-FT and RoFt-Mol start from are added by the planner as
for any spec, so ``--only method=wise-ft`` plans the Full-FT trials it needs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from search_spaces.spec import SweepSpec

# axis of --only -> the spec's field holding that axis's values
SLICE_AXES = {
    "backbone": "backbones",
    "method": "methods",
    "task": "tasks",
    "split": "splits",
    "label_setting": "label_settings",
    "seed": "seeds",
}


def parse_selection(text: str) -> tuple[str, tuple[str, ...]]:
    """``"task=bbbp,bace"`` -> ``("task", ("bbbp", "bace"))``; ``ValueError`` naming the text otherwise."""
    axis, sep, values = text.partition("=")
    axis = axis.strip().replace("-", "_")
    chosen = tuple(v.strip() for v in values.split(",") if v.strip())
    if not sep or axis not in SLICE_AXES or not chosen:
        raise ValueError(
            f"{text!r} is not accepted; accepted: AXIS=VALUE[,VALUE...] with AXIS one of {', '.join(SLICE_AXES)}"
        )
    return axis, chosen


def narrow(spec: SweepSpec, selections: Iterable[tuple[str, tuple[str, ...]]]) -> SweepSpec:
    """``spec`` with each selected axis narrowed to the chosen values, in the spec's order.

    Selections of the same axis add up (``--only seed=0 --only seed=1`` is ``--only seed=0,1``). A value
    the spec's axis does not hold is a ``ValueError`` naming it and the axis's values: a slice never
    plans a trial outside its spec. ``method`` narrows the grid points and the hyper-parameter searches.
    """
    changes: dict[str, object] = {}
    for axis, values in _grouped(selections).items():
        field, present = SLICE_AXES[axis], axis_values(spec, axis)
        unknown = [v for v in values if v not in present]
        if unknown:
            raise ValueError(
                f"--only {axis}={','.join(values)}: {', '.join(repr(v) for v in unknown)} "
                f"{'is' if len(unknown) == 1 else 'are'} not among the spec's {field}; accepted: {', '.join(present)}"
            )
        if axis == "method":
            changes["methods"] = tuple(point for point in spec.methods if point[0] in values)
            changes["searches"] = tuple(s for s in spec.searches if s.method in values)
        else:
            changes[field] = tuple(v for v in getattr(spec, field) if str(v) in values)
    return replace(spec, **changes)  # type: ignore[arg-type]


def describe(spec: SweepSpec, selections: Iterable[tuple[str, tuple[str, ...]]]) -> str:
    """One line for the plan's summary: the slice, and what it is a slice of (``spec``: the whole spec)."""
    parts = [
        f"{axis}={','.join(values)} (of {len(axis_values(spec, axis))} {SLICE_AXES[axis]})"
        for axis, values in _grouped(selections).items()
    ]
    return "slice: " + "; ".join(parts) + "; the store keeps the whole spec, so roft status counts the whole grid"


def axis_values(spec: SweepSpec, axis: str) -> list[str]:
    """The values of ``axis`` in ``spec``, as ``--only`` names them (methods: gridded and searched)."""
    if axis == "method":
        return list(dict.fromkeys([m for m, _ in spec.methods] + [s.method for s in spec.searches]))
    return [str(v) for v in getattr(spec, SLICE_AXES[axis])]


def _grouped(selections: Iterable[tuple[str, tuple[str, ...]]]) -> dict[str, list[str]]:
    """Axis -> its chosen values, repeated selections of an axis merged, each value once."""
    chosen: dict[str, list[str]] = {}
    for axis, values in selections:
        listed = chosen.setdefault(axis, [])
        for value in values:
            if value not in listed:
                listed.append(value)
    return chosen
