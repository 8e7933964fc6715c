"""Task registry: which file, which SMILES column, which label columns, which metric.

Classification tasks are scored by ROC-AUC averaged over the label columns that have both
classes present in the evaluated split (higher is better); regression tasks by RMSE averaged
over label columns (lower is better).

A new task is one :func:`register_task` entry below, with its file's :class:`DataFile` (path below
the data root, sha256, canonical URL) unless that file is registered already.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from trainables.core.registry import Registry
from trainables.data.sources import FILES, DataFile


class TaskType(str, Enum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"


METRIC_OF = {TaskType.CLASSIFICATION: "roc_auc", TaskType.REGRESSION: "rmse"}
HIGHER_IS_BETTER = {"roc_auc": True, "rmse": False}


@dataclass(frozen=True)
class Task:
    """A downstream prediction task.

    ``label_columns`` is either an explicit tuple of column names, or ``None`` meaning "every
    column of the file except ``excluded_columns``" (ToxCast's 617 assays, SIDER's 27 classes).
    """

    name: str
    file: str
    smiles_column: str
    task_type: TaskType
    label_columns: tuple[str, ...] | None
    excluded_columns: tuple[str, ...] = ()
    in_paper: bool = True
    # the SMILES the reference loader hands its scaffold splitter: the file's ("raw") or RDKit's
    # canonical SMILES of the parsed molecule ("canonical": BBBP and ClinTox)
    scaffold_source: str = "raw"

    @property
    def metric(self) -> str:
        return METRIC_OF[self.task_type]

    @property
    def higher_is_better(self) -> bool:
        return HIGHER_IS_BETTER[self.metric]

    def resolve_label_columns(self, header: list[str]) -> tuple[str, ...]:
        """The label columns, checked against a file header."""
        if self.label_columns is None:
            skip = {self.smiles_column, *self.excluded_columns}
            return tuple(c for c in header if c not in skip)
        missing = [c for c in (self.smiles_column, *self.label_columns) if c not in header]
        if missing:
            raise ValueError(f"task {self.name}: columns {missing} not in {self.file} (header: {header[:10]}...)")
        return self.label_columns


TASKS: Registry[Task] = Registry("task")


def register_task(task: Task, file: DataFile | None = None) -> Task:
    """Register ``task``, and its data file when given (its path below the data root, sha256 and URL:
    ``file.relpath`` must be ``task.file``); a task of a file registered before needs none."""
    if file is not None:
        if file.relpath != task.file:
            raise ValueError(f"task {task.name}: its file is {task.file!r}, not {file.relpath!r}")
        FILES.register(file.relpath, file)
    elif task.file not in FILES:
        raise ValueError(
            f"task {task.name}: its file {task.file!r} is not registered; pass its DataFile "
            "(path below the data root, sha256, URL)"
        )
    TASKS.register(task.name, task)
    return task


C, R = TaskType.CLASSIFICATION, TaskType.REGRESSION
for _task in [
    Task("bbbp", "moleculenet/bbbp.csv", "smiles", C, ("p_np",), scaffold_source="canonical"),
    Task(
        "tox21",
        "moleculenet/tox21.csv",
        "smiles",
        C,
        (
            "NR-AR",
            "NR-AR-LBD",
            "NR-AhR",
            "NR-Aromatase",
            "NR-ER",
            "NR-ER-LBD",
            "NR-PPAR-gamma",
            "SR-ARE",
            "SR-ATAD5",
            "SR-HSE",
            "SR-MMP",
            "SR-p53",
        ),
    ),
    Task("toxcast", "moleculenet/toxcast.csv.gz", "smiles", C, None),
    Task("sider", "moleculenet/sider.csv", "smiles", C, None),
    Task("clintox", "moleculenet/clintox.csv", "smiles", C, ("FDA_APPROVED", "CT_TOX"), scaffold_source="canonical"),
    Task("muv", "moleculenet/muv.csv.gz", "smiles", C, None),
    Task("hiv", "moleculenet/hiv.csv.gz", "smiles", C, ("HIV_active",)),
    Task("bace", "moleculenet/bace.csv.gz", "mol", C, ("Class",)),
    Task("esol", "moleculenet/esol.csv", "smiles", R, ("measured log solubility in mols per litre",)),
    Task("lipophilicity", "moleculenet/lipophilicity.csv", "smiles", R, ("exp",)),
    Task("malaria", "regression_extra/malaria.csv", "smiles", R, ("activity",)),
    Task("cep", "regression_extra/cep.csv.gz", "smiles", R, ("PCE",)),
    Task("freesolv", "moleculenet/freesolv.csv", "smiles", R, ("expt",), in_paper=False),
    Task("qm7", "moleculenet/qm7.csv", "smiles", R, ("u0_atom",), in_paper=False),
    Task("qm8", "moleculenet/qm8.csv.gz", "smiles", R, None, in_paper=False),
]:
    register_task(_task)
