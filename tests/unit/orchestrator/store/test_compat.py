"""A store written by an earlier roft reads the same, and its rows are never pooled with new ones.

``tests/fixtures/store-v0`` was written by ``roft sweep search_spaces/mini.yaml`` with the code of
commit e4a0653 (the layout before the package reorganisation), then compacted with its
``roft store compact``; ``store-v0.table.csv`` and ``store-v0.list.txt`` are what that code's
``roft table --rows backbone,method --cols task --format csv`` and ``roft store list`` printed.
The spec it ran is kept in the store (``specs/mini.yaml``).
"""

from __future__ import annotations

import io
import shutil
from contextlib import redirect_stdout
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.cli import main as roft
from orchestrator.store.results import ResultStore
from orchestrator.sweep.plan import plan_sweep
from search_spaces import load_spec
from trainables.core.data_root import DataRoot

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"
OLD_STORE = FIXTURES / "store-v0"


@pytest.fixture
def old_store(tmp_path) -> Path:
    copy = tmp_path / "store"
    shutil.copytree(OLD_STORE, copy)
    return copy


def printed(*argv: str) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        assert roft(list(argv)) == 0
    return out.getvalue()


@pytest.mark.data
def test_rerunning_the_old_spec_replans_the_trials_whose_molecules_changed(real_env, old_store):
    """Every trial of the old spec is 100-shot, and roft now selects the reference code's 100 molecules
    (subset revision 2): the old rows keep their keys, none counts as done, and all 24 are planned anew
    under new keys; `roft store list --stale` names exactly the old rows."""
    spec = load_spec(old_store / "specs" / "mini.yaml")
    plan = plan_sweep(spec, ResultStore(old_store), DataRoot(real_env))
    assert len(plan.trials) == 24 and plan.done == set()
    assert all(trial.subset_revision == 2 for trial in plan.trials)
    old_keys = set(printed("store", "list", "--store", str(old_store), "--keys").split())
    assert len(old_keys) == 24 and old_keys.isdisjoint(trial.key() for trial in plan.trials)
    assert set(printed("store", "list", "--store", str(old_store), "--stale", "--keys").split()) == old_keys


def test_the_old_store_reads_the_same(old_store):
    table = printed("table", "--store", str(old_store), "--rows", "backbone,method", "--cols", "task",
                    "--format", "csv")
    expected = pd.read_csv(FIXTURES / "store-v0.table.csv")
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(table)), expected)
    listing = printed("store", "list", "--store", str(old_store)).splitlines()
    expected = (FIXTURES / "store-v0.list.txt").read_text().splitlines()
    # the same lines, with a last column saying that every row is stale (see above)
    assert [line.split() for line in listing] == [old.split() + ["stale"] for old in expected]
