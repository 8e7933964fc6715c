"""``python -m orchestrator ...`` is the ``roft`` command (for ``ray job submit`` entry points)."""

from orchestrator.cli import main

raise SystemExit(main())
