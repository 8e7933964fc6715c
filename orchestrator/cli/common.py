"""What the command modules share: the ``--store`` and ``--data-root`` options, the table printer, stores."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

DEFAULT_STORE = "results"
STORE_ENV = "ROFT_STORE"  # the store's default location (cluster images set it to shared storage)
STORE_HELP = (
    f"results store: a folder, or s3://bucket/prefix[?endpoint_override=HOST:PORT&scheme=http] with "
    f"credentials in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (default: ${STORE_ENV}, else ./{DEFAULT_STORE})"
)
DATA_ROOT_HELP = "folder laid out like shared/data (default: $ROFT_DATA, else download into the cache)"
OPTUNA_STORAGE_HELP = (
    "where alpha-search studies live: a JournalStorage file path (safe on a shared filesystem; "
    "optuna-dashboard opens it) or an RDB URL such as sqlite:///studies.db (default: in memory, "
    "continued from the store's alpha_trials table)"
)
WHERE_HELP = "keep rows whose COLUMN is one of the values (repeatable), e.g. --where {example}"
SELECT_HELP = "pick each cell's hyper-parameters by seed-mean val (default) or test (optimistic)"
DDOF_HELP = "degrees of freedom of the std over seeds (default 0)"


def add_data_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", default=None, metavar="DIR", help=DATA_ROOT_HELP)


def add_store(parser: argparse.ArgumentParser) -> None:
    """``--store``, defaulting to ``$ROFT_STORE`` (set by the cluster images), else ``./results``."""
    parser.add_argument("--store", default=os.environ.get(STORE_ENV) or DEFAULT_STORE, help=STORE_HELP)


def add_where(parser: argparse.ArgumentParser, example: str) -> None:
    parser.add_argument(
        "--where", action="append", default=[], metavar="COLUMN=V[,V...]", help=WHERE_HELP.format(example=example)
    )


def data_root(args: argparse.Namespace):
    """The run's :class:`~trainables.core.data_root.DataRoot`, resolved once here: ``--data-root``,
    else ``$ROFT_DATA`` (checked to be a folder), else none (the download cache)."""
    from trainables.core.data_root import DataRoot

    return DataRoot.from_setting(args.data_root)


def print_rows(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Left-aligned columns under a header and a rule of dashes."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())


def open_store(location: str):
    """The :class:`ResultStore` at ``location`` (it may not exist yet); a local path that is, or lies
    below, something other than a folder is refused, naming it and what is accepted."""
    from orchestrator.store.filesystems import ACCEPTED_STORES
    from orchestrator.store.results import ResultStore
    from orchestrator.store.schema import StoreError

    store = ResultStore(location)
    if not store.remote:
        nearest = next(path for path in (store.root, *store.root.parents) if path.exists())  # at worst "/"
        if not nearest.is_dir():
            where = "" if nearest == store.root else f": {str(nearest)!r}"
            raise StoreError(f"store {location!r}{where} is a file, not a folder; accepted: {ACCEPTED_STORES}")
    return store


def existing_store(location: str):
    """The :class:`ResultStore` at ``location``, which must exist."""
    store = open_store(location)
    if not store.exists():
        raise FileNotFoundError(f"store {store.location!r} does not exist")
    return store


def in_ray_job() -> bool:
    """Whether this process is the entry point of a Ray job (Ray sets the job's configuration for it)."""
    return bool(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR"))


def missing_module_message(module: str | None) -> str:
    """Why roft cannot run in this Python (it lacks ``module``, a dependency), and which environment to use."""
    import sys

    problem = f"this Python ({sys.executable}) has no module {module!r}, which roft needs"
    if in_ray_job():
        return (
            f"{problem}. A Ray job's entry point runs the `python` first on the PATH of the head's `ray start`: "
            "start Ray from roft's environment (`make cluster-up` in the checkout, or `ray start` with the "
            "checkout's .venv/bin first on PATH, e.g. after `source .venv/bin/activate`), or run the cluster "
            "from the image of deploy/Dockerfile"
        )
    return f"{problem}; run roft from its environment (`make setup` creates .venv; then .venv/bin/roft)"
