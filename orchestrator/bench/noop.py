"""A trainable that does nothing but report once: the orchestrator's own per-trial cost.

Kept in a module that imports neither torch nor RDKit, so a worker starting it pays only Ray.
"""

from __future__ import annotations

from typing import Any


def noop_trainable(config: dict[str, Any]) -> None:
    from ray import tune

    tune.report({"done": True, "trial_key": config["trial"]["key"]})
