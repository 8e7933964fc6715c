from __future__ import annotations

import math

import pandas as pd

from orchestrator.analysis.summary import markdown_table, summarize


def frame(rows):
    return pd.DataFrame(rows, columns=["backbone", "method_label", "task", "split", "label_setting", "metric",
                                       "trial_key", "test_metric"])


def test_mean_std_and_seed_count_per_cell():
    trials = frame([
        ("b", "full-ft", "bbbp", "scaffold", "full", "roc_auc", "k1", 0.6),
        ("b", "full-ft", "bbbp", "scaffold", "full", "roc_auc", "k2", 0.8),
        ("b", "lp", "bbbp", "scaffold", "full", "roc_auc", "k3", 0.5),
    ])
    out = summarize(trials, ddof=0).set_index("method_label")
    assert math.isclose(out.loc["full-ft", "mean"], 0.7)
    assert math.isclose(out.loc["full-ft", "std"], 0.1)  # population std
    assert out.loc["full-ft", "seeds"] == 2
    sample = summarize(trials, ddof=1).set_index("method_label")
    assert math.isclose(sample.loc["full-ft", "std"], math.sqrt(0.02))
    assert math.isnan(sample.loc["lp", "std"])  # one seed has no sample std


def test_duplicate_trial_keys_count_once():
    trials = frame([("b", "lp", "esol", "scaffold", "full", "rmse", "k1", 1.0)] * 3)
    assert summarize(trials).seeds.tolist() == [1]


def test_markdown_shows_percent_for_auc_and_states_ddof():
    trials = frame([("b", "lp", "bbbp", "scaffold", "full", "roc_auc", "k1", 0.75),
                    ("b", "lp", "esol", "scaffold", "full", "rmse", "k2", 1.25)])
    text = markdown_table(summarize(trials), ddof=0)
    assert "| b | lp | bbbp | scaffold | full | roc_auc (%) | 75.00 ± 0.00 | 1 |" in text
    assert "| b | lp | esol | scaffold | full | rmse | 1.25 ± 0.00 | 1 |" in text
    assert "ddof=0" in text


def test_empty_store_message():
    assert "no finished trials" in markdown_table(summarize(frame([])))


def test_store_table_keeps_only_the_rows_matching_where(tmp_path):
    import pytest

    from orchestrator.analysis.summary import store_table
    from orchestrator.store.results import ResultStore
    from tests.unit.orchestrator.store.rows import make_row

    store = ResultStore(tmp_path)
    store.write_trial(make_row("a", method="full-ft", method_label="full-ft", task="esol", seed=0))
    store.write_trial(make_row("b", method="lp", method_label="lp", task="esol", seed=0))
    store.write_trial(make_row("c", method="lp", method_label="lp", task="bbbp", metric="roc_auc", seed=1))
    everything = store_table(store)
    assert "| full-ft |" in everything and "| bbbp |" in everything
    lp = store_table(store, where={"method": ["lp"]})
    assert "| full-ft |" not in lp and "| scratch-gin | lp | esol |" in lp and "| scratch-gin | lp | bbbp |" in lp
    only = store_table(store, where={"method": ["lp"], "seed": ["1"]})
    assert "| scratch-gin | lp | bbbp |" in only and "| esol |" not in only
    assert store_table(store, where={"task": ["tox21"]}) == "(no finished trials match --where task=tox21)"
    with pytest.raises(ValueError, match="unknown column"):
        store_table(store, where={"colour": ["red"]})
    with pytest.raises(ValueError, match="seed holds int64 values"):
        store_table(store, where={"seed": ["zero"]})
