"""``roft sweep`` on the running cluster, as a script for ``ray submit``.

    ray submit deploy/cluster-aws.yaml deploy/sweep.py -- paper.yaml [roft sweep options]

``ray submit`` copies this file to the head node and runs it there with the arguments after
``--``. It is ``roft sweep`` joined to the cluster the script runs on (``--address auto``
unless an address is given); the store defaults to ``$ROFT_STORE``, which the images set to the
shared file system. ``ray job submit`` needs no script: its entry point is
``python -m orchestrator sweep SPEC`` (deploy/README.md).
"""

from __future__ import annotations

import sys


def sweep_argv(args: list[str]) -> list[str]:
    """``roft`` arguments for ``args`` (a spec and ``roft sweep`` options): joined to this node's cluster."""
    has_address = any(a == "--address" or a.startswith("--address=") for a in args)
    return ["sweep", *args, *([] if has_address else ["--address", "auto"])]


def main(args: list[str] | None = None) -> int:
    from orchestrator.cli import main as roft

    return roft(sweep_argv(sys.argv[1:] if args is None else args))


if __name__ == "__main__":
    sys.exit(main())
