"""From a validated spec to the list of trials still to run.

:func:`plan_sweep` expands the grid (backbone x method point x task x split x label setting x
seed) into :class:`~trainables.core.config.TrialSpec` objects, stamping each with the sha256 of its
data file and checkpoint, and diffs their keys against the store. Files that cannot be found
are collected (not raised) so a dry run can list them all.

Trials of methods that start from another trial's checkpoint (WiSE-FT and RoFt-Mol start from
Full FT, :mod:`trainables.methods.dependencies`) make the planner add their parent trials when the spec
does not list them; the plan says so. :meth:`SweepPlan.waves` orders the pending trials in two
waves: everything whose parent is already in the store (or that has none), then the dependants
whose parent runs in the first wave.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import cast

from orchestrator.store.results import ResultStore
from orchestrator.sweep.fusion import plan_units
from orchestrator.wording import plural
from search_spaces.spec import SweepSpec
from trainables.core.config import TrialSpec
from trainables.core.data_root import DataRoot
from trainables.data import sources
from trainables.data.dataset import checked_sha256
from trainables.data.tasks import TASKS
from trainables.methods import METHODS
from trainables.methods.dependencies import parent_spec
from trainables.methods.revisions import with_revisions
from trainables.models.backbones import BACKBONES
from trainables.models.shapes import default_size


@dataclass
class SweepPlan:
    spec: SweepSpec
    trials: list[TrialSpec]
    done: set[str] = field(default_factory=set)
    missing_files: dict[str, str] = field(default_factory=dict)  # what -> why
    added_parents: int = 0  # parent trials added because dependants need them
    data_root: DataRoot = field(default_factory=DataRoot)

    failed: set[str] = field(default_factory=set)  # keys with a failure record that this run skips

    @cached_property
    def pending(self) -> list[TrialSpec]:
        return [t for t in self.trials if t.key() not in self.done and t.key() not in self.failed]

    def waves(self) -> list[list[TrialSpec]]:
        """Pending trials in dependency order: [ready now, waiting for a parent of the first wave]."""
        ready: list[TrialSpec] = []
        waiting: list[TrialSpec] = []
        for trial in self.pending:
            parent = parent_spec(trial)
            if parent is not None and parent.key() not in self.done:
                waiting.append(trial)
            else:
                ready.append(trial)
        return [wave for wave in (ready, waiting) if wave]

    def fusion_summary(self) -> str:
        """How the pending trials of the first wave are scheduled: fused groups and single trials."""
        execution = self.spec.execution
        if not execution.fuse:
            return "fusion: off (execution.fuse: false), every trial runs alone"
        waves = self.waves()
        units = plan_units(waves[0], True, execution.fuse_max, self.data_root) if waves else []
        sizes = Counter(len(u.specs) for u in units if u.fused)
        fused = sum(size * n for size, n in sizes.items())
        later = sum(len(w) for w in waves[1:])
        groups = ", ".join(f"{n} x {size}" for size, n in sorted(sizes.items(), reverse=True)) or "none"
        return (
            f"fusion: {plural(fused, 'trial')} in {plural(sum(sizes.values()), 'fused group')} ({groups}; at most "
            f"{execution.fuse_max}), {plural(len(units) - sum(sizes.values()), 'trial')} alone"
            + (f", {plural(later, 'dependant')} after them" if later else "")
        )

    def summary(self) -> str:
        """Counts per dimension, done / pending, and missing files (the dry-run report)."""
        lines = [
            f"sweep {self.spec.name} ({self.spec.source}): {plural(len(self.trials), 'trial')}, "
            f"{len(self.trials) - len(self.pending)} already in the store, {len(self.pending)} to run"
        ]
        if self.failed:
            lines.append(
                f"  skipped {plural(len(self.failed), 'trial')} that failed before (their errors: the store's "
                "failures/ table); roft sweep --retry-failed runs them again"
            )
        if self.added_parents:
            lines.append(
                f"  added {plural(self.added_parents, 'full-ft trial')} that wise-ft / roft-mol trials start from "
                "(not listed in the spec); they run first"
            )
        for dimension in ("backbone", "method", "task", "split", "label_setting", "seed"):
            counts = Counter(str(getattr(t, dimension)) for t in self.trials)
            pending = Counter(str(getattr(t, dimension)) for t in self.pending)
            values = ", ".join(
                f"{k}={v}" + (f" ({pending[k]} to run)" if pending[k] != v else "") for k, v in counts.items()
            )
            lines.append(f"  {dimension:<14} {len(counts):>3}: {values}")
        res = self.spec.resources
        recipes = sorted({(t.recipe.epochs, t.recipe.batch_size) for t in self.trials})
        lines.append(
            f"  resources per Ray trial: cpu={res.cpu:g} gpu={res.gpu:g}; recipe: "
            + ", ".join(f"{epochs} epochs, batch {batch}" for epochs, batch in recipes)
        )
        lines.append("  " + self.fusion_summary())
        for search in self.spec.searches:
            lines.append(
                f"  search {search.describe()}, each point x {len(self.spec.seeds)} seeds, in each of "
                f"{len(cells(self.spec))} cells (runs after the grid; trials already in the store are reused)"
            )
        if self.missing_files:
            lines.append(f"  missing files ({len(self.missing_files)}):")
            lines.extend(f"    {what}: {why}" for what, why in self.missing_files.items())
        return "\n".join(lines)


def _file_sha(relpath: str, data_root: DataRoot, missing: dict[str, str], what: str) -> str:
    try:
        path = sources.resolve(relpath, data_root)
        return checked_sha256(relpath, path)
    except (sources.DataUnavailableError, sources.ChecksumError) as exc:
        missing[what] = str(exc)
        return ""


@dataclass(frozen=True)
class FileHashes:
    """sha256 of every task file and checkpoint a spec names ("" where missing)."""

    data: dict[str, str]
    backbones: dict[str, str]
    missing: dict[str, str]


def file_hashes(spec: SweepSpec, data_root: DataRoot) -> FileHashes:
    missing: dict[str, str] = {}
    data_sha = {t: _file_sha(TASKS.get(t).file, data_root, missing, f"task {t}") for t in spec.tasks}
    backbone_sha: dict[str, str] = {}
    for name in spec.backbones:
        backbone = BACKBONES.get(name)
        if not backbone.is_pretrained:
            backbone_sha[name] = ""
        elif backbone.data_file is not None:
            backbone_sha[name] = _file_sha(backbone.data_file, data_root, missing, f"backbone {name}")
        else:
            try:
                path = backbone.checkpoint_path(data_root)
                assert path is not None  # a pre-trained backbone has a checkpoint, or this raised
                backbone_sha[name] = sources.sha256_of(path)
            except sources.DataUnavailableError as exc:
                missing[f"backbone {name}"] = str(exc)
                backbone_sha[name] = ""
    return FileHashes(data_sha, backbone_sha, missing)


def make_trial(
    spec: SweepSpec,
    hashes: FileHashes,
    backbone: str,
    method: str,
    params: dict,
    task: str,
    split: str,
    label_setting: str,
    seed: int,
) -> TrialSpec:
    """The trial of one grid point (or one sampled point of a searched method)."""
    entry = BACKBONES.get(backbone)
    pretrained = entry.is_pretrained
    layers, width = default_size(entry.gnn_type)
    return with_revisions(
        TrialSpec(
            backbone=backbone,
            method=method,
            task=task,
            split=split,
            label_setting=label_setting,
            seed=seed,
            subset_seed=seed if spec.subset_seed == "run" else cast(int, spec.subset_seed),
            recipe=spec.recipe,
            method_params=dict(params),
            num_layers=None if pretrained else spec.num_layers or layers,
            emb_dim=None if pretrained else spec.emb_dim or width,
            backbone_sha256=hashes.backbones[backbone],
            data_sha256=hashes.data[task],
        )
    )


def cells(spec: SweepSpec) -> list[tuple[str, str, str, str]]:
    """(backbone, task, split, label setting) of the grid, in spec order."""
    return list(itertools.product(spec.backbones, spec.tasks, spec.splits, spec.label_settings))


def expand(spec: SweepSpec, data_root: DataRoot) -> tuple[list[TrialSpec], dict[str, str]]:
    """Every trial of the grid, and the files that could not be resolved.

    Searched methods contribute no trials (their points are sampled while the sweep runs), but
    the parent trials they start from are planned (:func:`with_parents`) through a
    representative trial per cell and seed.
    """
    hashes = file_hashes(spec, data_root)
    trials = [
        make_trial(spec, hashes, backbone, method, params, task, split, label_setting, seed)
        for backbone, (method, params), task, split, label_setting, seed in itertools.product(
            spec.backbones, spec.methods, spec.tasks, spec.splits, spec.label_settings, spec.seeds
        )
    ]
    return trials, hashes.missing


def search_parents(spec: SweepSpec, data_root: DataRoot) -> list[TrialSpec]:
    """Parent trials (Full FT) that the searched methods' trials will start from."""
    hashes = file_hashes(spec, data_root)
    parents: dict[str, TrialSpec] = {}
    for search in spec.searches:
        if METHODS.get(search.method).requires_parent is None:
            continue
        for (backbone, task, split, label_setting), seed in itertools.product(cells(spec), spec.seeds):
            parent = parent_spec(
                make_trial(spec, hashes, backbone, search.method, dict(search.fixed), task, split, label_setting, seed)
            )
            assert parent is not None  # the method requires a parent
            parents.setdefault(parent.key(), parent)
    return list(parents.values())


def with_parents(trials: list[TrialSpec]) -> tuple[list[TrialSpec], int]:
    """``trials`` plus the parent trials they need that are not among them (parents first)."""
    keys = {t.key() for t in trials}
    added: dict[str, TrialSpec] = {}
    for trial in trials:
        parent = parent_spec(trial)
        if parent is not None and parent.key() not in keys:
            added.setdefault(parent.key(), parent)
    return [*added.values(), *trials], len(added)


def plan_sweep(spec: SweepSpec, store: ResultStore, data_root: DataRoot, retry_failed: bool = False) -> SweepPlan:
    """The sweep's trials, what the store already holds, and (unless ``retry_failed``) the known failures skipped,
    except dependants whose parent trains in this sweep."""
    trials, missing = expand(spec, data_root)
    trials, added = with_parents(trials)
    listed = {t.key() for t in trials}
    for parent in search_parents(spec, data_root):
        if parent.key() not in listed:
            trials.insert(0, parent)
            listed.add(parent.key())
            added += 1
    keys = {t.key() for t in trials}
    done = store.done_keys() & keys
    failed = set() if retry_failed else (store.failed_keys() & keys) - done
    # A dependant that failed before while its parent trains in this sweep (again, once forgotten) runs after
    # it: its failure came from the earlier parent (a checkpoint lost with a machine, say).
    training = keys - done - failed  # a parent that failed before is skipped, and its dependants with it
    failed -= {t.key() for t in trials if (of := parent_spec(t)) is not None and of.key() in training}
    return SweepPlan(
        spec=spec,
        trials=trials,
        done=done,
        missing_files=missing,
        added_parents=added,
        data_root=data_root,
        failed=failed,
    )
