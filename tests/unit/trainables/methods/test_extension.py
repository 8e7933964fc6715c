"""Extending roft: a new method is one module in ``trainables/methods/``, a new task one
``register_task`` entry and a new downloadable checkpoint one ``register_backbone`` entry, each
with its file's sha256 and URL. They run through a tiny sweep (spec -> plan -> worker -> trainer
-> store) with nothing else edited."""

from __future__ import annotations

import hashlib
import sys
import textwrap
from pathlib import Path

import pytest

import trainables.methods
from orchestrator.store.results import ResultStore
from tests.integration.sweeps import planned
from tests.unit.trainables.hand_molecules import HAND_SMILES
from trainables.data import sources, tasks
from trainables.methods import METHODS
from trainables.models.backbones import BACKBONES, Backbone, register_backbone
from trainables.worker.trial import execute_trial

# The whole of a contributor's new method: one module of the methods package.
TOY_METHOD = '''
"""A toy method: the head trains, and the encoder's last layer only (a "partial" method)."""

from trainables.methods.base import FineTuningMethod, HyperParameter, register_method


@register_method("toy-last-layer")
class ToyLastLayer(FineTuningMethod):
    mechanism = "partial"
    hyperparameters = {"layers": HyperParameter(int, 1, "how many last encoder layers train", minimum=1)}

    def trainable_parameters(self, ctx, stage):
        layers = list(ctx.model.gnn.gnns)[-self.params["layers"]:]
        return [p for layer in layers for p in layer.parameters()] + list(ctx.model.head.parameters())
'''

# The whole of a contributor's new task: one entry (written here from a temporary module).
TOY_TASK = '''
from trainables.data.sources import DataFile
from trainables.data.tasks import Task, TaskType, register_task

register_task(Task("toy-solubility", "toy/solubility.csv", "smiles", TaskType.REGRESSION, ("y",)),
              DataFile("toy/solubility.csv", "{sha256}", "https://example.invalid/toy/solubility.csv"))
'''


@pytest.fixture
def clean_registries(monkeypatch):
    """The registries as they were before the test (entries added by the test are dropped)."""
    for registry in (METHODS, tasks.TASKS, sources.FILES, BACKBONES):
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith(("trainables.methods.toy_", "toy_task_")):
            del sys.modules[name]


def _files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_a_new_method_module_and_a_new_task_entry_run_through_a_tiny_sweep(clean_registries, monkeypatch, tmp_path):
    # The data: a CSV below a data root of its own.
    data_root = tmp_path / "data"
    (data_root / "toy").mkdir(parents=True)
    csv = "smiles,y\n" + "".join(f"{s},{i * 0.25 - 2:.2f}\n" for i, s in enumerate(HAND_SMILES))
    (data_root / "toy" / "solubility.csv").write_text(csv)
    sha256 = hashlib.sha256(csv.encode()).hexdigest()

    # The contribution: one module in (a folder of) the methods package, one task entry.
    contribution = tmp_path / "contribution"
    (contribution / "methods").mkdir(parents=True)
    (contribution / "methods" / "toy_last_layer.py").write_text(textwrap.dedent(TOY_METHOD))
    (contribution / "toy_task_entry.py").write_text(TOY_TASK.format(sha256=sha256))
    assert _files_under(contribution) == {"methods/toy_last_layer.py", "toy_task_entry.py"}

    # Discovery: the methods package imports every module of its folders; nothing lists the new one.
    monkeypatch.setattr(trainables.methods, "__path__", [*trainables.methods.__path__, str(contribution / "methods")])
    assert "toy-last-layer" not in METHODS
    assert "trainables.methods.toy_last_layer" in trainables.methods.discover()
    monkeypatch.syspath_prepend(str(contribution))
    __import__("toy_task_entry")
    assert METHODS.get("toy-last-layer").name == "toy-last-layer"  # set by register_method
    assert sources.FILES.get("toy/solubility.csv").sha256 == sha256

    # A tiny sweep of both: planned, run by the worker, committed; planned again, nothing is pending.
    raw = {"name": "toy", "backbones": ["scratch-gin"], "methods": {"toy-last-layer": {"layers": [1, 2]}},
           "tasks": ["toy-solubility"], "splits": ["random"], "label_settings": ["full"], "seeds": [0],
           "training": {"epochs": 2, "batch_size": 8}, "model": {"num_layers": 2, "emb_dim": 8}}
    setup = planned(raw, data_root, tmp_path)
    assert len(setup.plan.pending) == 2 and not setup.plan.missing_files
    rows = [execute_trial(trial, setup.runtime, ResultStore(setup.runtime.store)) for trial in setup.plan.pending]
    assert {(r["method"], r["task"], r["metric"]) for r in rows} == {("toy-last-layer", "toy-solubility", "rmse")}
    assert sorted(r["trial_key"] for r in rows) == sorted(t.key() for t in setup.plan.pending)
    assert planned(raw, data_root, tmp_path / "again").plan.pending  # another store: all pending
    again = planned(raw, data_root, tmp_path)  # the same store: all done
    assert again.plan.pending == [] and setup.store.done_keys() == {r["trial_key"] for r in rows}
    # The contribution stayed two files: nothing else was written beside them.
    assert _files_under(contribution) == {"methods/toy_last_layer.py", "toy_task_entry.py"}


def test_a_new_checkpoint_entry_runs_through_a_tiny_sweep(clean_registries, monkeypatch, tmp_path):
    import torch

    from trainables.models.gnn import GNNShape, HuGNN

    data_root = tmp_path / "data"
    (data_root / "toy").mkdir(parents=True)
    csv = "smiles,y\n" + "".join(f"{s},{i * 0.25 - 2:.2f}\n" for i, s in enumerate(HAND_SMILES))
    (data_root / "toy" / "solubility.csv").write_text(csv)
    checkpoint = data_root / "weights" / "toy-gin.pth"
    checkpoint.parent.mkdir()
    torch.manual_seed(0)
    torch.save(HuGNN(GNNShape("gin", 3, 8)).state_dict(), checkpoint)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "toy_task_entry.py").write_text(TOY_TASK.format(sha256=hashlib.sha256(csv.encode()).hexdigest()))
    __import__("toy_task_entry")

    # The whole of a contributor's new checkpoint: one entry.
    register_backbone(
        Backbone("toy-gin", "gin", "supervised", "a toy GIN 3x8", data_file="weights/toy-gin.pth"),
        sources.DataFile("weights/toy-gin.pth", sources.sha256_of(checkpoint), "https://example.invalid/toy-gin.pth"),
    )
    assert BACKBONES.get("toy-gin").is_pretrained

    raw = {"name": "toy", "backbones": ["toy-gin"], "methods": {"full-ft": {}}, "tasks": ["toy-solubility"],
           "splits": ["random"], "label_settings": ["full"], "seeds": [0], "training": {"epochs": 1, "batch_size": 8}}
    setup = planned(raw, data_root, tmp_path)
    assert len(setup.plan.pending) == 1 and not setup.plan.missing_files
    row = execute_trial(setup.plan.pending[0], setup.runtime, ResultStore(setup.runtime.store))
    assert (row["backbone"], row["num_layers"], row["emb_dim"]) == ("toy-gin", 3, 8)  # from the checkpoint
    assert row["backbone_sha256"] == sources.sha256_of(checkpoint)


def test_a_task_or_backbone_entry_refuses_a_file_it_does_not_name(clean_registries):
    file = sources.DataFile("toy/a.csv", "0" * 64, None)
    with pytest.raises(ValueError, match="its file is 'toy/b.csv', not 'toy/a.csv'"):
        tasks.register_task(tasks.Task("toy", "toy/b.csv", "smiles", tasks.TaskType.REGRESSION, ("y",)), file)
    with pytest.raises(ValueError, match="its file 'toy/b.csv' is not registered"):
        tasks.register_task(tasks.Task("toy", "toy/b.csv", "smiles", tasks.TaskType.REGRESSION, ("y",)))
    with pytest.raises(ValueError, match="architecture 'mlp' is not one of gin, "):
        register_backbone(Backbone("toy", "mlp", "none", "toy"))
    with pytest.raises(ValueError, match="its file 'weights/toy.pth' is not registered"):
        register_backbone(Backbone("toy", "gin", "supervised", "toy", data_file="weights/toy.pth"))
