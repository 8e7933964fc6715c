"""A spec planned against a fresh store under a test's tmp_path (the setup of every sweep test)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator.store.results import ResultStore
from orchestrator.sweep.plan import SweepPlan, plan_sweep
from search_spaces import parse_spec
from search_spaces.spec import SweepSpec
from trainables.core.config import Runtime
from trainables.core.data_root import DataRoot


@dataclass
class Planned:
    spec: SweepSpec
    store: ResultStore
    runtime: Runtime
    plan: SweepPlan


def planned(raw: dict, data_root: Path, tmp_path: Path, **runtime) -> Planned:
    spec = parse_spec(raw)
    store = ResultStore(tmp_path / "store")
    options = {"sweep": spec.name, "data_root": DataRoot(data_root), "code_version": "test", **runtime}
    return Planned(spec, store, Runtime(store=str(store.root), **options), plan_sweep(spec, store, DataRoot(data_root)))
