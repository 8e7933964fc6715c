"""``roft report``: one static HTML page from the store, viewable offline.

The page says when it was made and from how many trials, flags rows produced by code with
uncommitted changes, then holds the paper tables (one per backbone x split x label setting:
methods x tasks, selected hyper-parameters, mean +- std over seeds, published numbers beside the
cells that match them), what pre-training adds (the pre-trained backbone against its random-init
counterpart, :mod:`orchestrator.analysis.reading`), the published numbers against the measured
ones, the paired tests against Full FT, the average ranks with the Friedman test and the
critical-difference diagram, the figures of :mod:`orchestrator.analysis.plots` (PNG, with SVG
beside them) and where it all came from: sweeps, code and protocol versions, file checksums and
the sweep specs saved in the store. A section or figure without data says exactly why.

Images are files next to ``index.html`` (``figures/``); nothing is fetched from the network.
Every file is written whole under a temporary name and renamed into place, the page last, so a
reader (a browser following ``roft report --watch``) sees the old page or the new one, never
half of one; figures of earlier builds that the new page no longer shows are removed after it.
"""

from __future__ import annotations

import html
import itertools
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from orchestrator.analysis import anchors, plots
from orchestrator.analysis.anchors import TRIAL_COLUMNS
from orchestrator.analysis.names import backbone_name, label_setting_name, label_setting_order, split_name
from orchestrator.analysis.reading import reading
from orchestrator.analysis.significance import (
    critical_difference_figure,
    in_table_units,
    missing_comparison,
    paired_tests,
    rank_analysis,
)
from orchestrator.analysis.tables import COLUMNS, Selected, load_trials, render, select
from orchestrator.store.results import ResultStore
from trainables.data.sources import atomic_write

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }
table.results { min-width: 40em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }
td.best { background: #eef6ee; }
caption { caption-side: bottom; font-size: 0.85em; color: #555; text-align: left; padding-top: 0.4em; }
img { max-width: 100%; border: 1px solid #eee; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.8em; }
p.made { background: #f3f6fa; padding: 0.6em 0.8em; border-left: 4px solid #4a78b0; }
p.warning { background: #fff4e0; padding: 0.6em 0.8em; border-left: 4px solid #d08a00; }
p.empty { color: #555; font-style: italic; }
"""
REPORT_COLUMNS = [
    *COLUMNS,
    "method_params",
    "method_results",
    "sweep",
    "code_version",
    "protocol_version",
    "data_sha256",
    "backbone_sha256",
    "finished_at",
    "engine",
    "architecture",
    "epochs",
    *TRIAL_COLUMNS,
]
FIGURES = "figures"
DIRTY = ".dirty"  # the end of a code_version made from a checkout with uncommitted changes


def _frame_html(frame: pd.DataFrame, floats: str = "{:.4g}") -> str:
    return frame.to_html(index=False, float_format=lambda v: floats.format(v), border=0, escape=True)


def _empty(text: str) -> str:
    return f"<p class='empty'>{html.escape(text)}</p>"


class NoTrials(ValueError):
    """The store holds no finished trial that the report's filter keeps."""


class _Figures:
    """The figures of one build: each drawn and saved, or the reason it is not drawn."""

    def __init__(self, out: Path):
        self.folder = out / FIGURES
        self.written: set[str] = set()

    def add(self, draw, name: str, title: str, parts: list[str]) -> None:
        """``draw()`` -> a figure (saved, shown under ``title``), or :class:`plots.NothingToDraw` (its reason shown)."""
        try:
            figure = draw()
        except plots.NothingToDraw as reason:
            parts.append(f"<h3>{html.escape(title)}</h3>" + _empty(f"Not drawn: {reason}."))
            return
        png, svg = plots.save_figure(figure, self.folder, name)
        self.written.update({png.name, svg.name})
        parts.append(
            f"<h3>{html.escape(title)}</h3><p><img src='{FIGURES}/{png.name}' alt='{html.escape(title)}'> "
            f"<a href='{FIGURES}/{svg.name}'>SVG</a></p>"
        )

    def remove_others(self) -> None:
        """Remove the images of earlier builds that this one does not show (after the page is in place)."""
        if self.folder.is_dir():
            for path in self.folder.iterdir():
                if path.suffix in (".png", ".svg") and path.name not in self.written:
                    path.unlink(missing_ok=True)


def backbone_names(trials: pd.DataFrame) -> dict[str, str]:
    """Backbone id -> ``GCN, supervised + ContextPred pre-training`` (from the rows' architecture and kind)."""
    rows = trials.drop_duplicates("backbone")
    return {
        r.backbone: backbone_name(r.backbone, getattr(r, "architecture", None), getattr(r, "pretraining", None))
        for r in rows.itertuples(index=False)
    }


def _made(store: ResultStore, trials: pd.DataFrame, selection: str, ddof: int, refresh_s: float | None) -> str:
    newest = trials["finished_at"].max()
    sweeps = sorted(trials["sweep"].dropna().unique())
    follow = (
        f" The page reloads itself every {refresh_s:g} s while <code>roft report --watch</code> rebuilds it "
        "as rows land."
        if refresh_s
        else ""
    )
    return (
        f"<p class='made'>Made <b>{datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC</b> from "
        f"<b>{len(trials)} finished trials</b> of {len(sweeps)} sweep(s) ({html.escape(', '.join(sweeps))}); "
        f"the newest landed {'?' if pd.isna(newest) else f'{newest:%Y-%m-%d %H:%M:%S}'} UTC. Selection: "
        f"<b>{html.escape(selection)}</b>{' (optimistic)' if selection == 'test' else ''}; std ddof={ddof}; "
        f"selected cells: <a href='selected.csv'>selected.csv</a>.{follow}</p>"
    )


def _dirty_warning(trials: pd.DataFrame) -> str:
    """A warning naming the rows produced by code with uncommitted changes, or ''."""
    versions = trials["code_version"].fillna("")
    dirty = versions.str.endswith(DIRTY)
    if not dirty.any():
        return ""
    names = ", ".join(sorted(versions[dirty].unique()))
    return (
        f"<p class='warning'><b>{int(dirty.sum())} of {len(trials)} trials ran code with uncommitted changes</b> "
        f"(code version {html.escape(names)}): the commit named is not the code that produced them, so they "
        "cannot be reproduced from it. Rerun them from a clean checkout (<code>roft store forget</code>, then "
        "<code>roft sweep</code>) before publishing them; the provenance table below marks them.</p>"
    )


def build_report(
    store: ResultStore,
    out: Path,
    where: dict | None = None,
    selection: str = "val",
    ddof: int = 0,
    test: str = "ttest",
    refresh_s: float | None = None,
) -> Path:
    """Write ``out/index.html`` (+ ``out/figures``, ``out/selected.csv``); returns the page's path.

    ``refresh_s``: the page reloads itself that often (``roft report --watch``).
    """
    trials = load_trials(store, where, REPORT_COLUMNS)  # a bad filter is refused before anything is written
    if trials.empty:
        raise NoTrials(f"the store at {store.location} holds no finished trials matching {where or 'any filter'}")
    out.mkdir(parents=True, exist_ok=True)
    selected = select(trials, selection, ddof)
    atomic_write(out / "selected.csv", lambda fh: fh.write(selected.frame.to_csv(index=False).encode()))
    comparison = anchors.published_comparison(store, trials, ddof)
    published = anchors.cell_values(comparison)
    names = backbone_names(trials)
    figures = _Figures(out)
    parts = [
        f"<h1>roft report: {html.escape(shown_store(store))}</h1>",
        _made(store, trials, selection, ddof, refresh_s),
        _dirty_warning(trials),
        "<h2>Tables</h2>",
    ]
    for backbone, split, label_setting in itertools.product(
        sorted(selected.frame.backbone.unique()),
        sorted(selected.frame.split.unique()),
        sorted(selected.frame.label_setting.unique(), key=label_setting_order),
    ):
        block = selected.frame[
            (selected.frame.backbone == backbone)
            & (selected.frame.split == split)
            & (selected.frame.label_setting == label_setting)
        ]
        if block.empty:
            continue
        heading = f"{names[backbone]} ({backbone}) · {split_name(split)} · {label_setting_name(label_setting)}"
        parts.append(f"<h3>{html.escape(heading)}</h3>")
        parts.append(
            render(
                Selected(block, selection, ddof),
                rows=("method",),
                cols=("task",),
                fmt="html",
                published=published,
                published_caption=anchors.caption(comparison) if backbone in set(published.backbone) else "",
            )
        )

    parts.append("<h2>What pre-training adds</h2>")
    parts.append(_reading_html(trials))

    parts.append("<h2>Published numbers</h2>")
    if comparison.empty:
        why = anchors.caption(comparison)
        parts.append(_empty(f"No published number to compare with: {why[0].lower()}{why[1:]}"))
    else:
        shown = comparison.assign(backbone=comparison.backbone.map(lambda b: f"{names.get(b, b)} ({b})"))
        parts.append(_frame_html(shown.drop(columns=["source"]), "{:.3g}"))
        parts.append(f"<p>{html.escape(anchors.caption(comparison))}</p>")
        figures.add(lambda: plots.published_comparison(comparison, names), "published", "Measured vs published", parts)

    parts.append("<h2>Significance</h2>")
    tests = paired_tests(trials, selected, test=test)
    if tests.empty:
        parts.append(_empty(f"No paired test: {missing_comparison(selected)}"))
    else:
        name = "paired t-test" if test == "ttest" else "Wilcoxon signed-rank test"
        parts.append(
            f"<p>Each method against Full FT per task, paired over seeds ({name}, two-sided), Holm-corrected "
            f"over the methods within a task; significant at 0.05 after correction. mean_diff = method - "
            f"Full FT, seed mean, in the tables' units (unit column): percentage points for ROC-AUC, "
            f"RMSE units for RMSE; better: whether that is an improvement.</p>"
        )
        untestable = int(tests["p"].isna().sum())
        if untestable:
            parts.append(
                _empty(
                    f"{untestable} of {len(tests)} comparisons have no p-value: fewer than 2 paired seeds, "
                    "or the same difference on every seed."
                )
            )
        parts.append(_frame_html(in_table_units(tests)))
    try:
        analysis = rank_analysis(selected)
    except ValueError as exc:
        parts.append(_empty(f"No rank analysis: {exc}."))
        ranks = pd.DataFrame()
    else:
        parts.append(
            f"<p>Average ranks over {len(analysis.ranks)} blocks (backbone x task x split x label setting; "
            f"1 = best); Friedman chi2 = {analysis.friedman_statistic:.3f}, p = {analysis.friedman_p:.3g}; "
            "Nemenyi post-hoc p-values below, and the critical-difference diagram (methods joined by a bar "
            "do not differ significantly).</p>"
        )
        parts.append(_frame_html(analysis.average_ranks.rename("average rank").reset_index()))
        parts.append(_frame_html(analysis.nemenyi.reset_index().rename(columns={"index": "method"}), "{:.3g}"))
        figures.add(
            lambda: critical_difference_figure(analysis), "critical_difference", "Critical-difference diagram", parts
        )
        ranks = analysis.ranks

    parts.append("<h2>Figures</h2>")
    alpha_points = store.read_side_table("alpha_trials").to_pandas()
    alpha_points = alpha_points[alpha_points.trial_key.isin(trials.trial_key)]  # the points of --where's trials
    mechanisms = dict(zip(trials.method, trials.mechanism))
    pretraining = dict(zip(trials.backbone, trials.pretraining))
    figures.add(
        lambda: plots.fewshot_curves(selected.frame, names), "fewshot_curves", "Test metric vs training labels", parts
    )
    figures.add(
        lambda: plots.alpha_curves(trials, alpha_points),
        "alpha_curves",
        "Metric vs alpha (validation left, test right): the WiSE-FT grid and the one-alpha searches, each "
        "method variant by its label (for RoFt-Mol, its grouping: groups=1)",
        parts,
    )
    figures.add(lambda: plots.mechanism_ranks(ranks, mechanisms), "mechanisms", "Methods grouped by mechanism", parts)
    figures.add(
        lambda: plots.pretraining_comparison(selected.frame, pretraining, names),
        "pretraining",
        "Pre-trained vs random-init backbones",
        parts,
    )

    parts.append("<h2>Provenance</h2>")
    provenance = (
        trials.groupby(["sweep", "code_version", "protocol_version", "engine"], dropna=False)
        .agg(trials=("trial_key", "count"), first=("finished_at", "min"), last=("finished_at", "max"))
        .reset_index()
    )
    provenance.insert(
        2,
        "uncommitted changes",
        provenance["code_version"].fillna("").str.endswith(DIRTY).map({True: "YES", False: "no"}),
    )
    parts.append(_frame_html(provenance))
    files = pd.concat(
        [
            trials[["task", "data_sha256"]]
            .drop_duplicates()
            .rename(columns={"task": "file of", "data_sha256": "sha256"}),
            trials[["backbone", "backbone_sha256"]]
            .drop_duplicates()
            .rename(columns={"backbone": "file of", "backbone_sha256": "sha256"}),
        ]
    )
    parts.append(_frame_html(files[files.sha256.fillna("") != ""]))
    for name, text in store.read_specs():
        parts.append(f"<h3>spec {html.escape(name)}</h3><pre>{html.escape(text)}</pre>")
    page = out / "index.html"
    refresh = f"<meta http-equiv='refresh' content='{refresh_s:g}'>" if refresh_s else ""
    text = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>" + refresh + "<title>roft report</title>"
        f"<style>{STYLE}</style></head><body>" + "\n".join(p for p in parts if p) + "</body></html>"
    )
    atomic_write(page, lambda fh: fh.write(text.encode()))
    figures.remove_others()
    return page


def shown_store(store: ResultStore) -> str:
    """The store as the page's heading names it: a local store inside the current folder by its relative
    path (a report committed beside its store names no machine's folders), any other by its location."""
    if store.remote:
        return store.location
    try:
        return Path(store.location).relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return store.location


def waiting_page(store: ResultStore, out: Path, refresh_s: float) -> Path:
    """``out/index.html`` for a store without finished trials yet (``roft report --watch`` before the first
    row lands): it says so, and reloads itself every ``refresh_s`` seconds."""
    page = out / "index.html"
    text = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<meta http-equiv='refresh' content='{refresh_s:g}'><title>roft report</title><style>{STYLE}</style>"
        f"</head><body><h1>roft report: {html.escape(shown_store(store))}</h1><p class='made'>Made "
        f"<b>{datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC</b> from <b>0 finished trials</b>: no trial has "
        f"landed in the store yet. This page reloads itself every {refresh_s:g} s while "
        "<code>roft report --watch</code> waits for the first rows.</p></body></html>"
    )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(page, lambda fh: fh.write(text.encode()))
    return page


def _reading_html(trials: pd.DataFrame) -> str:
    """The pre-trained backbone against its random-init counterpart (``roft reading``'s two lines), or
    why there is nothing to compare."""
    lines = reading(trials).splitlines()
    compared = lines[0].startswith(("Pre-trained", "The best pre-trained"))
    if not compared:
        return _empty(" ".join(lines))
    return "".join(f"<p>{html.escape(line)}</p>" for line in lines)
