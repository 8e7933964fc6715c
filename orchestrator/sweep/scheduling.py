"""Which pending trial Tune hands a freed actor to, so that nodes joining mid-sweep get work.

A sweep reuses trial actors (``reuse_actors``): a fresh actor costs a process start and ~5 s of
imports. On a growing cluster this starves new nodes under Tune's default FIFO scheduler:

1. Tune stages the oldest pending trials, asking Ray for each one's resources in order; a node
   that joins is given the *oldest* staged trial, and starts an actor for it (seconds: a process
   and the imports).
2. When a trial on an old node finishes, its actor is kept for reuse, and Tune hands it to the
   trial its scheduler chooses, FIFO's being the oldest pending one: the very trial whose actor is
   starting on the new node. Tune then discards that starting actor, and the new node is idle
   again, to be given the next oldest trial, and so on for as long as old nodes finish a trial
   more often than a new actor can start. On a busy cluster the new node never trains.

:class:`NewestPendingFirst` hands a freed actor to the *newest* pending trial instead, which
holds no resources elsewhere, so an actor starting on a new node is never discarded and the node
trains within an actor's start of joining. Trials of a chunk then start newest-first; nothing
depends on their order within a chunk (a trial's parents run in an earlier wave).
"""

from __future__ import annotations

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler


class NewestPendingFirst(FIFOScheduler):
    """FIFO in everything but :meth:`choose_trial_to_run`: the newest pending trial, else the newest paused one."""

    def choose_trial_to_run(self, tune_controller) -> Trial | None:
        trials = tune_controller.get_trials()
        for status in (Trial.PENDING, Trial.PAUSED):
            for trial in reversed(trials):
                if trial.status == status:
                    return trial
        return None

    def debug_string(self) -> str:
        return "Newest pending trial first (a freed actor never takes a trial from an actor still starting)."


# The schedulers a sweep's chunk can run under, by name: the sweep's own, and Tune's default as the
# baseline `roft bench orchestrator` compares it with.
SCHEDULERS = {"newest-first": NewestPendingFirst, "fifo": FIFOScheduler}
