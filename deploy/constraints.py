"""Print pins (``name==version``) of roft's runtime dependencies as installed in this environment.

``python deploy/constraints.py > deploy/constraints.txt`` after ``make setup``: the closure of
roft's ``[project] dependencies`` (with their extras, environment markers evaluated here), at
the versions this virtual environment holds, without torch (the images install the CUDA build
of the pinned torch first) and without roft itself. ``pip install -c deploy/constraints.txt``
then reproduces the tested set on the cluster's nodes.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, distribution

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

EXCLUDED = {"torch", "roft"}


def closure(root: str = "roft") -> dict[str, str]:
    """Canonical name -> installed version of every runtime dependency of ``root``."""
    pins: dict[str, str] = {}
    pending: list[tuple[str, frozenset[str]]] = [(root, frozenset())]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, extras = pending.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue  # an optional dependency that is not installed here
        pins[canonicalize_name(name)] = dist.version
        for text in dist.requires or []:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker is not None and not any(marker.evaluate({"extra": extra}) for extra in (extras or {""})):
                continue
            pending.append((requirement.name, frozenset(requirement.extras)))
    for name in EXCLUDED:
        pins.pop(name, None)
    return dict(sorted(pins.items()))


def main() -> int:
    print("# roft's runtime dependencies as tested (python deploy/constraints.py; torch is installed first)")
    for name, version in closure().items():
        print(f"{name}=={version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
