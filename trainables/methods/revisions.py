"""The revisions a trial's key carries: what this code computes for its method and its molecules.

``method_revision`` is the method's ``revision`` (:class:`~trainables.methods.base.FineTuningMethod`);
``subset_revision`` is :func:`trainables.data.splits.subset_revision` of its split and label
setting. Planning stamps both on every trial; a worker refuses a trial stamped by other code, so a
row never claims a computation it did not get. A stored row whose key differs from the key this
code gives its configuration is *stale* (:func:`current_key`).
"""

from __future__ import annotations

import dataclasses

from trainables.core.config import TrialSpec
from trainables.data.splits import subset_revision
from trainables.methods.base import METHODS


def with_revisions(spec: TrialSpec) -> TrialSpec:
    """``spec`` with the revisions of this code (the same object when they already agree)."""
    method_revision = METHODS.get(spec.method).revision
    data_revision = subset_revision(spec.split, spec.label_setting)
    if (spec.method_revision, spec.subset_revision) == (method_revision, data_revision):
        return spec
    return dataclasses.replace(spec, method_revision=method_revision, subset_revision=data_revision)


def check_revisions(spec: TrialSpec) -> None:
    """``ValueError`` when ``spec`` was planned by code that computes it differently from this code."""
    current = with_revisions(spec)
    if current is not spec:
        raise ValueError(
            f"trial {spec.key()} was planned for method revision {spec.method_revision} and subset revision "
            f"{spec.subset_revision}; this roft computes revision {current.method_revision} and "
            f"{current.subset_revision}: plan the sweep again with this version"
        )


def current_key(config: dict) -> str | None:
    """The key this code gives a stored trial configuration (``trial_config`` as a dict): its
    hyper-parameters re-validated (new ones at their defaults) and its revisions restamped. ``None``
    when this code cannot run that configuration any more (an unknown method or hyper-parameter)."""
    try:
        spec = TrialSpec.from_dict(config)
        params = METHODS.get(spec.method).validate_params(dict(spec.method_params))
        return with_revisions(dataclasses.replace(spec, method_params=params)).key()
    except (KeyError, ValueError, TypeError):
        return None
