"""Paths a user types: ``~`` and ``~user`` expanded, or a one-line error that names the value."""

from __future__ import annotations

import os
from pathlib import Path


def user_path(value: str | os.PathLike, what: str = "path") -> Path:
    """``value`` as a path with a leading ``~`` or ``~user`` expanded.

    ``Path.expanduser`` raises a bare "Could not determine home directory." for ``~nobody/x`` (no such
    user) or ``~`` without a home; this names ``what`` and the value instead (ValueError).
    """
    path = Path(value)
    try:
        return path.expanduser()
    except RuntimeError:
        head = path.parts[0]
        raise ValueError(
            f"{what} {os.fspath(value)!r}: {head!r} names no home folder on this machine; accepted: a path, "
            "with ~ only for the current user's home or an existing user's (~name)"
        ) from None
