"""roft's orchestrator: sweep planning, execution on Ray Tune, the results store, reports, CLI.

In a notebook::

    import orchestrator as roft

    roft.load_trials(store, where=None)   # one row per trial (pandas.DataFrame, the store's typed columns)
    roft.load_curves(store, where=None)   # per-epoch curves
    roft.table(store, rows="method", cols="task", where=None, select="val", anchors=False)  # `roft table` as data

Importing the package costs almost nothing: the functions (and pandas, pyarrow behind them) load
on first use, and nothing here imports torch or Ray (:mod:`orchestrator.api`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_trials", "load_curves", "table", "open_store", "code_version"]
_API = {"load_trials", "load_curves", "table", "open_store"}


def __getattr__(name: str) -> Any:
    if name in _API:
        from orchestrator import api

        return getattr(api, name)
    if name == "code_version":
        from orchestrator.version import code_version

        return code_version
    raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
