"""``roft report``: one static HTML page from the store, viewable offline.

The page holds the paper tables (one per backbone x split x label setting: methods x tasks,
selected hyper-parameters, mean +- std over seeds), the paired tests against Full FT, the
average ranks with the Friedman test and the critical-difference diagram, the figures of
:mod:`orchestrator.analysis.plots` (PNG, with SVG beside them) and where it all came from: sweeps, code
and protocol versions, file checksums and the sweep specs saved in the store. Images are files
next to ``index.html`` (``figures/``); nothing is fetched from the network.
"""

from __future__ import annotations

import html
import itertools
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from orchestrator.analysis import plots
from orchestrator.analysis.anchors import TRIAL_COLUMNS, published_notes
from orchestrator.analysis.significance import critical_difference_figure, in_table_units, paired_tests, rank_analysis
from orchestrator.analysis.tables import COLUMNS, Selected, load_trials, render, select
from orchestrator.store.results import ResultStore

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }
td.best { background: #eef6ee; }
caption { caption-side: bottom; font-size: 0.85em; color: #555; text-align: left; padding-top: 0.4em; }
img { max-width: 100%; border: 1px solid #eee; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.8em; }
"""
REPORT_COLUMNS = [*COLUMNS, "method_params", "method_results", "sweep", "code_version", "protocol_version",
                  "data_sha256", "backbone_sha256", "finished_at", "engine", *TRIAL_COLUMNS]


def _frame_html(frame: pd.DataFrame, floats: str = "{:.4g}") -> str:
    return frame.to_html(index=False, float_format=lambda v: floats.format(v), border=0, escape=True)


def _figure(figure, out: Path, name: str, title: str, parts: list[str]) -> None:
    if figure is None:
        return
    png, _ = plots.save_figure(figure, out / "figures", name)
    parts.append(f"<h3>{html.escape(title)}</h3><p><img src='figures/{png.name}' alt='{html.escape(title)}'> "
                 f"<a href='figures/{name}.svg'>SVG</a></p>")


def build_report(store: ResultStore, out: Path, where: dict | None = None, selection: str = "val", ddof: int = 0,
                 test: str = "ttest") -> Path:
    """Write ``out/index.html`` (+ ``out/figures``, ``out/selected.csv``); returns the page's path."""
    out.mkdir(parents=True, exist_ok=True)
    trials = load_trials(store, where, REPORT_COLUMNS)
    if trials.empty:
        raise ValueError(f"the store at {store.location} holds no finished trials matching {where or 'any filter'}")
    selected = select(trials, selection, ddof)
    selected.frame.to_csv(out / "selected.csv", index=False)
    notes, note_caption = published_notes(store, trials, ddof)
    parts = [f"<h1>roft report: {html.escape(store.location)}</h1>",
             f"<p>{len(trials)} trials; built {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; selection: "
             f"<b>{html.escape(selection)}</b>{' (optimistic)' if selection == 'test' else ''}; std ddof={ddof}; "
             f"selected cells: <a href='selected.csv'>selected.csv</a>.</p>", "<h2>Tables</h2>"]
    for backbone, split, label_setting in itertools.product(*(sorted(selected.frame[c].unique())
                                                               for c in ("backbone", "split", "label_setting"))):
        block = selected.frame[(selected.frame.backbone == backbone) & (selected.frame.split == split)
                               & (selected.frame.label_setting == label_setting)]
        if block.empty:
            continue
        parts.append(f"<h3>{html.escape(f'{backbone} / {split} / {label_setting}')}</h3>")
        parts.append(render(Selected(block, selection, ddof), rows=("method",), cols=("task",), fmt="html",
                            notes=notes, note_caption=note_caption if any(k[0] == backbone for k in notes) else ""))

    parts.append("<h2>Significance</h2>")
    tests = paired_tests(trials, selected, test=test)
    if tests.empty:
        parts.append("<p>No paired comparison: Full FT is missing from every task, or no other method ran.</p>")
    else:
        name = "paired t-test" if test == "ttest" else "Wilcoxon signed-rank test"
        parts.append(f"<p>Each method against Full FT per task, paired over seeds ({name}, two-sided), Holm-corrected "
                     f"over the methods within a task; significant at 0.05 after correction. mean_diff = method - "
                     f"Full FT, seed mean, in the tables' units (unit column): percentage points for ROC-AUC, "
                     f"RMSE units for RMSE; better: whether that is an improvement.</p>")
        parts.append(_frame_html(in_table_units(tests)))
    try:
        analysis = rank_analysis(selected)
        parts.append(f"<p>Average ranks over {len(analysis.ranks)} blocks (backbone x task x split x label setting; "
                     f"1 = best); Friedman chi2 = {analysis.friedman_statistic:.3f}, p = {analysis.friedman_p:.3g}; "
                     "Nemenyi post-hoc p-values below, and the critical-difference diagram (methods joined by a bar "
                     "do not differ significantly).</p>")
        parts.append(_frame_html(analysis.average_ranks.rename("average rank").reset_index()))
        parts.append(_frame_html(analysis.nemenyi.reset_index().rename(columns={"index": "method"}), "{:.3g}"))
        _figure(critical_difference_figure(analysis), out, "critical_difference", "Critical-difference diagram", parts)
        ranks = analysis.ranks
    except ValueError as exc:
        parts.append(f"<p>No rank analysis: {html.escape(str(exc))}.</p>")
        ranks = pd.DataFrame()

    parts.append("<h2>Figures</h2>")
    alpha_points = store.read_side_table("alpha_trials").to_pandas()
    alpha_points = alpha_points[alpha_points.trial_key.isin(trials.trial_key)]  # the points of --where's trials
    mechanisms = dict(zip(trials.method, trials.mechanism))
    pretraining = dict(zip(trials.backbone, trials.pretraining))
    _figure(plots.fewshot_curves(selected.frame), out, "fewshot_curves",
            "Test metric vs label setting (mean over backbones and splits of the selected cells)", parts)
    _figure(plots.alpha_curves(trials, alpha_points), out, "alpha_curves",
            "WiSE-FT / alpha search vs alpha (validation left, test right)", parts)
    _figure(plots.mechanism_ranks(ranks, mechanisms), out, "mechanisms", "Methods grouped by mechanism", parts)
    _figure(plots.pretraining_comparison(selected.frame, pretraining), out, "pretraining",
            "Self-supervised vs supervised backbones", parts)

    parts.append("<h2>Provenance</h2>")
    provenance = trials.groupby(["sweep", "code_version", "protocol_version", "engine"], dropna=False).agg(
        trials=("trial_key", "count"), first=("finished_at", "min"), last=("finished_at", "max")).reset_index()
    parts.append(_frame_html(provenance))
    files = pd.concat([trials[["task", "data_sha256"]].drop_duplicates().rename(columns={"task": "file of",
                                                                                         "data_sha256": "sha256"}),
                       trials[["backbone", "backbone_sha256"]].drop_duplicates().rename(
                           columns={"backbone": "file of", "backbone_sha256": "sha256"})])
    parts.append(_frame_html(files[files.sha256.fillna("") != ""]))
    for name, text in store.read_specs():
        parts.append(f"<h3>spec {html.escape(name)}</h3><pre>{html.escape(text)}</pre>")
    page = out / "index.html"
    page.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'><title>roft report</title>"
                    f"<style>{STYLE}</style></head><body>" + "\n".join(parts) + "</body></html>")
    return page
