"""trainables.data.tasks: the 15 registered tasks and their label columns against the real headers."""

from __future__ import annotations

import pandas as pd
import pytest

from trainables.core.data_root import DataRoot
from trainables.data import sources
from trainables.data.tasks import TASKS, Task, TaskType

PAPER = ["bbbp", "tox21", "toxcast", "sider", "clintox", "muv", "hiv", "bace",
         "esol", "lipophilicity", "malaria", "cep"]
EXTRA = ["freesolv", "qm7", "qm8"]
LABEL_COUNTS = {"tox21": 12, "toxcast": 617, "sider": 27, "clintox": 2, "muv": 17, "qm8": 12}
CLASSIFICATION = {"bbbp", "tox21", "toxcast", "sider", "clintox", "muv", "hiv", "bace"}


def test_all_fifteen_tasks_registered():
    assert TASKS.names() == PAPER + EXTRA
    assert [n for n, t in TASKS.items() if t.in_paper] == PAPER
    assert [n for n, t in TASKS.items() if not t.in_paper] == EXTRA


@pytest.mark.parametrize("name", PAPER + EXTRA)
def test_metric_and_direction(name):
    task = TASKS.get(name)
    assert task.file in sources.FILES
    if name in CLASSIFICATION:
        assert (task.task_type, task.metric, task.higher_is_better) == (TaskType.CLASSIFICATION, "roc_auc", True)
    else:
        assert (task.task_type, task.metric, task.higher_is_better) == (TaskType.REGRESSION, "rmse", False)


@pytest.mark.data
@pytest.mark.parametrize("name", PAPER + EXTRA)
def test_label_columns_against_the_real_header(name, data_root):
    task = TASKS.get(name)
    header = list(pd.read_csv(sources.resolve(task.file, DataRoot(data_root)), nrows=0).columns)
    columns = task.resolve_label_columns(header)
    assert len(columns) == LABEL_COUNTS.get(name, 1)
    assert task.smiles_column in header and task.smiles_column not in columns
    assert set(columns) <= set(header)
    assert len(set(columns)) == len(columns)


def test_explicit_columns_missing_from_header_error():
    task = TASKS.get("clintox")
    with pytest.raises(ValueError, match=r"task clintox: columns \['CT_TOX'\] not in moleculenet/clintox.csv"):
        task.resolve_label_columns(["smiles", "FDA_APPROVED"])
    with pytest.raises(ValueError, match=r"\['smiles'\]"):
        task.resolve_label_columns(["SMILES", "FDA_APPROVED", "CT_TOX"])


def test_all_other_columns_minus_excluded():
    task = Task("t", "moleculenet/sider.csv", "smiles", TaskType.CLASSIFICATION, None, excluded_columns=("id",))
    assert task.resolve_label_columns(["id", "a", "smiles", "b"]) == ("a", "b")
