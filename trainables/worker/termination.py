"""A trial worker that Ray ends on purpose ends without a traceback.

Ray ends a job's workers with SIGTERM (when the job's driver exits, when Tune stops an actor), and
a Ray worker's SIGTERM handler raises ``SystemExit(1)`` in the main thread, wherever it is. Where
that is a finalizer or the interpreter's own shutdown (``threading._shutdown`` waiting for a thread,
as a worker that already returned from its task loop does), Python cannot propagate it and prints
it instead, as ``Exception ignored in: <module 'threading'> ... SystemExit: 1``, nine lines that
Ray copies into the job's log after a sweep that succeeded. :func:`quiet_termination` drops
exactly those reports (a :class:`SystemExit` that cannot propagate); every other exception that
cannot be raised is still printed by Python's default hook.
"""

from __future__ import annotations

import sys


def _drop_system_exit(unraisable) -> None:
    if isinstance(unraisable.exc_value, SystemExit):
        return  # the process is being ended on purpose
    sys.__unraisablehook__(unraisable)


def quiet_termination() -> None:
    """Report no :class:`SystemExit` that cannot propagate, in this process (idempotent; a hook
    set by someone else is left in place)."""
    if sys.unraisablehook is sys.__unraisablehook__:
        sys.unraisablehook = _drop_system_exit
