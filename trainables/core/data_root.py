"""The data root: where the benchmark's files are read from, as one typed value.

It is resolved once, where a run starts (the command line's ``--data-root``, else ``$ROFT_DATA``),
and carried from there by the plan and the runtime; :func:`trainables.data.sources.resolve` finds
a registered file in it, or in the download cache (``$ROFT_CACHE``) when there is no data root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from trainables.core.paths import user_path

DATA_ROOT_ENV = "ROFT_DATA"
CACHE_ENV = "ROFT_CACHE"


class DataUnavailableError(FileNotFoundError):
    """A benchmark file could not be found or downloaded."""

    def __str__(self) -> str:
        return self.args[0]


def cache_dir() -> Path:
    """Download and featurization cache: ``$ROFT_CACHE`` or ``~/.cache/roft``."""
    return user_path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "roft", f"${CACHE_ENV}")


@dataclass(frozen=True)
class DataRoot:
    """Where the benchmark's files are read from.

    ``folder``: a directory laid out like the canonical data (``moleculenet/bbbp.csv``, ...),
    whose files are read in place; ``None``: no data root, so files come from the download cache
    (``ROFT_CACHE``), downloaded and sha256-checked when missing.
    """

    folder: Path | None = None

    def __post_init__(self):
        if self.folder is not None:
            folder = user_path(self.folder, "data root").resolve()
            if not folder.is_dir():
                raise DataUnavailableError(
                    f"data root {str(folder)!r} is not a directory; point it at a folder laid out like the "
                    "benchmark's data (moleculenet/, regression_extra/, weights/, ...)"
                )
            object.__setattr__(self, "folder", folder)

    @classmethod
    def from_setting(cls, explicit: str | os.PathLike | None = None) -> DataRoot:
        """The data root a command was given: ``explicit`` (``--data-root``) if given, else
        ``$ROFT_DATA``, else none (the download cache)."""
        value = explicit if explicit is not None else os.environ.get(DATA_ROOT_ENV) or None
        if value is None:
            return cls()
        folder = user_path(value, "data root").resolve()
        if not folder.is_dir():
            origin = "--data-root" if explicit is not None else DATA_ROOT_ENV
            raise DataUnavailableError(
                f"data root {str(folder)!r} (from {origin}) is not a directory; point it at a folder laid out "
                "like the benchmark's data (moleculenet/, regression_extra/, weights/, ...)"
            )
        return cls(folder)

    def __str__(self) -> str:
        return str(self.folder) if self.folder is not None else f"(none: the download cache {cache_dir()})"
