"""A small name -> object registry, one per abstract concept (tasks, backbones, methods).

Adding a new entry is one ``register`` call (or one decorated object) in one file::

    SPLITS = Registry("split")

    @SPLITS.register("scaffold")
    def scaffold_split(...): ...

A registry whose entries need more than a name has its own registering function, and that
function is the only way to add to it: :func:`trainables.methods.register_method` (it sets the
class's ``name`` and checks its mechanism), :func:`trainables.data.tasks.register_task` and
:func:`trainables.models.backbones.register_backbone` (they register the entry's data file, with
its URL and sha256, too).

Lookups of unknown names raise :class:`UnknownNameError`, which names the offending value,
the closest registered names and the full list of accepted values.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, overload

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised when a registry is asked for a name it does not hold."""

    def __init__(self, kind: str, name: object, accepted: list[str]):
        self.kind = kind
        self.name = name
        self.accepted = accepted
        close = difflib.get_close_matches(str(name), accepted, n=3)
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        message = f"unknown {kind} {name!r}{hint}; accepted: {', '.join(accepted)}"
        super().__init__(message)

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return self.args[0]


class Registry(Generic[T]):
    """Ordered mapping from a public name to a registered object."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T) -> T: ...

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """Register ``obj`` under ``name``; usable as a decorator when ``obj`` is omitted."""

        def add(value: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = value
            return value

        return add if obj is None else add(obj)

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownNameError(self.kind, name, self.names()) from None

    def names(self) -> list[str]:
        return list(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(self._entries.items())

    def __contains__(self, name: object) -> bool:
        """Whether ``name`` is registered (anything unhashable, e.g. a list from a spec, is not)."""
        try:
            return name in self._entries
        except TypeError:
            return False

    def __len__(self) -> int:
        return len(self._entries)
