"""The ``roft`` command line, called in-process (``main(argv)``) and once as a subprocess."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request

import pytest
import yaml

from orchestrator.cli import main
from orchestrator.store.results import ResultStore
from tests.unit.orchestrator.store.test_results import make_row


def write_spec(tmp_path, **overrides):
    raw = {"name": "c", "backbones": ["hu-gcn-contextpred", "scratch-gin"], "methods": {"full-ft": {}, "lp": {}},
           "tasks": ["esol"], "splits": ["scaffold"], "label_settings": ["fewshot:16"], "seeds": [0, 1]}
    raw.update(overrides)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_dry_run_prints_counts_and_runs_nothing(real_env, tmp_path, capsys):
    code = main(["sweep", str(write_spec(tmp_path)), "--store", str(tmp_path / "store"), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 0
    assert "8 trials, 0 already in the store, 8 to run" in err
    assert "backbone         2: hu-gcn-contextpred=4, scratch-gin=4" in err
    assert not (tmp_path / "store" / "trials").exists()


def test_invalid_spec_exits_2_naming_the_key(real_env, tmp_path, capsys):
    code = main(["sweep", str(write_spec(tmp_path, splits=["scafold"])), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2
    assert "splits[0]: unknown value 'scafold'" in err


def test_dry_run_lists_missing_files_offline(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("ROFT_DATA", raising=False)
    monkeypatch.setenv("ROFT_CACHE", str(tmp_path / "cache"))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    code = main(["sweep", str(write_spec(tmp_path)), "--store", str(tmp_path / "store"), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 1
    assert "missing files (2)" in err
    assert "moleculenet/esol.csv: not found locally" in err and "set ROFT_DATA=" in err
    assert "weights/pretrain_gnns_chem/gcn_contextpred.pth" in err


def test_data_verify_checks_every_file(real_env, capsys):
    assert main(["data", "verify"]) == 0
    captured = capsys.readouterr()
    assert "ok         moleculenet/hiv.csv.gz" in captured.out
    assert "26/26 files verified" in captured.err


def test_data_list_and_featurize(real_env, capsys):
    assert main(["data", "featurize", "esol"]) == 0
    assert "esol: 1128 molecules, 0 dropped" in capsys.readouterr().out
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    esol = next(line for line in out.splitlines() if line.startswith("esol "))
    assert esol.split()[-5:] == ["1128", "1128", "0", "1", "yes"]
    assert any(line.startswith("toxcast ") and " 617 " in line for line in out.splitlines())


def test_backbones_list(real_env, capsys, monkeypatch):
    monkeypatch.delenv("ROFT_MOLE_BERT_CKPT", raising=False)
    assert main(["backbones", "list"]) == 0
    lines = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[2:]}
    assert lines["hu-gcn-contextpred"][1:4] == ["gcn", "self-supervised", "yes"]
    assert lines["hu-gat-supervised"][1:4] == ["gat", "supervised", "yes"]
    assert lines["hu-graphsage-supervised-contextpred"][2] == "both"
    assert lines["mole-bert"][3] == "no"
    assert lines["scratch-gin"][2:4] == ["none", "yes"]


def test_table_reads_the_store(tmp_path, capsys):
    store = ResultStore(tmp_path)
    store.write_trial(make_row("a", test_metric=0.5))
    store.write_trial(make_row("b", seed=1, test_metric=1.5))
    assert main(["table", "--store", str(tmp_path)]) == 0
    assert "| full-ft | 1.00 ± 0.50 (n=2) |" in capsys.readouterr().out  # one method: nothing bold
    assert main(["table", "--store", str(tmp_path), "--all-points"]) == 0
    assert "| scratch-gin | full-ft | esol | scaffold | full | rmse | 1.00 ± 0.50 | 2 |" in capsys.readouterr().out
    assert main(["table", "--store", str(tmp_path), "--format", "latex", "--ddof", "1"]) == 0
    latex = capsys.readouterr().out
    assert r"1.00 $\pm$ 0.71 (n=2)" in latex and r"\textbf" not in latex
    assert main(["table", "--store", str(tmp_path / "missing")]) == 2


def test_store_forget_takes_trials_out_and_names_bad_keys(tmp_path, capsys):
    store = ResultStore(tmp_path)
    keys = ["0" * 24, "1" * 24]
    for key, method in zip(keys, ["wise-ft", "full-ft"]):
        store.write_trial(make_row(key, method=method, method_label=method))
    assert main(["store", "list", "--store", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert all(key in out for key in keys) and "method_label" in out and "wise-ft" in out
    assert main(["store", "list", "--store", str(tmp_path), "--where", "method=wise-ft", "--keys"]) == 0
    assert capsys.readouterr().out.split() == [keys[0]]  # keys only: what `roft store forget` takes
    assert main(["store", "forget", keys[0], "--store", str(tmp_path)]) == 0
    assert "forgot 1 trial: 1 trials row" in capsys.readouterr().out
    assert store.done_keys() == {keys[1]}
    assert main(["store", "forget", "nope", "--store", str(tmp_path)]) == 2
    assert "malformed trial key(s) 'nope'; accepted: 24 hex digits" in capsys.readouterr().err
    assert store.done_keys() == {keys[1]}


def test_store_clean_lists_then_removes_leftovers(tmp_path, capsys):
    ResultStore(tmp_path).write_trial(make_row("a"))
    leftover = tmp_path / "trials" / ".b.parquet.k2.tmp"
    leftover.write_bytes(b"x")
    assert main(["store", "clean", "--store", str(tmp_path), "--older-than", "0", "--dry-run"]) == 0
    assert "would remove 1 temporary file(s)" in capsys.readouterr().out and leftover.exists()
    assert main(["store", "clean", "--store", str(tmp_path), "--older-than", "0"]) == 0
    assert "removed 1 temporary file(s)" in capsys.readouterr().out and not leftover.exists()
    with pytest.raises(SystemExit) as exit_:
        main(["store", "clean", "--store", str(tmp_path), "--older-than", "soon"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("roft store clean: error: argument --older-than: 'soon' is not accepted") and err.count("\n") == 1


def test_module_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "orchestrator", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and "sweep" in result.stdout


@pytest.mark.slow
def test_bench_methods_prints_each_method_alone_and_fused_and_writes_rates(real_env, tmp_path, capsys):
    from orchestrator.sweep.rates import MethodRates

    out = tmp_path / "rates.json"
    assert main(["bench", "methods", "--task", "esol", "--label-setting", "fewshot:16", "--epochs", "1",
                 "--seeds", "2", "--unfused-trials", "1", "--methods", "full-ft", "wise-ft",
                 "roft-mol", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "1 epochs (RoFt-Mol 2 alpha epochs): rates of these shortened trials" in lines[0]
    rows = {line.split()[0]: line for line in lines if line.split()[0] in ("full-ft", "wise-ft", "roft-mol")}
    assert "1x2" in rows["full-ft"]  # two seeds in one fused group
    assert rows["wise-ft"].split()[1] == "point" and rows["roft-mol"].split()[1] == "fit"
    rates = MethodRates.load(out)
    assert (rates.task, rates.label_setting, rates.seeds, rates.epochs) == ("esol", "fewshot:16", 2, 1)
    assert rates.molecules["train"] == 16 and rates.methods["full-ft"].fused.groups == (2,)
    assert all(rate.unfused.seconds > 0 for rate in rates.methods.values())
    assert main(["bench", "methods", "--methods", "lora"]) == 2
    assert "--methods lora not accepted" in capsys.readouterr().err


def _gpu_hours_total(err: str) -> float:
    line = next(line for line in err.splitlines() if "total about" in line)
    return float(line.split("total about ")[1].split(" GPU-hours")[0].replace(",", ""))


def test_dry_run_estimates_gpu_hours_from_the_measured_throughput(real_env, tmp_path, capsys):
    spec = str(write_spec(tmp_path, training={"epochs": 100}, methods={"full-ft": {}, "lp": {"freeze_bn_stats": True}}))
    store = str(tmp_path / "store")
    assert main(["sweep", spec, "--store", store, "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert ("Full FT: 2,064 fused / 46 unfused 100-epoch BBBP-sized Full-FT trials per GPU-hour, measured on one "
            "H100") in err
    assert "cost per pass relative to Full FT's, measured on cpu" in err and "method_rates.json" in err
    assert "4 fused trials:" in err and "4 unfused trials:" in err  # full-ft fuses, lp with fixed statistics alone
    default = _gpu_hours_total(err)

    assert main(["sweep", spec, "--store", store, "--dry-run", "--trials-per-gpu-hour", "900",
                 "--unfused-trials-per-gpu-hour", "23"]) == 0
    err = capsys.readouterr().err
    assert "Full FT: 900 fused / 23 unfused" in err
    assert _gpu_hours_total(err) == pytest.approx(2 * default, rel=0.05)


def test_dry_run_takes_method_rates_from_a_file_or_none(real_env, tmp_path, capsys):
    spec = str(write_spec(tmp_path, training={"epochs": 100}))
    store = str(tmp_path / "store")
    assert main(["sweep", spec, "--store", store, "--dry-run", "--method-rates", "none"]) == 0
    assert "cost per pass assumed equal to Full FT's (--method-rates none)" in capsys.readouterr().err
    (tmp_path / "rates.json").write_text("{}")
    assert main(["sweep", spec, "--store", store, "--dry-run", "--method-rates", str(tmp_path / "rates.json")]) == 2
    assert "is not a rates file (format None; accepted: 1)" in capsys.readouterr().err


def test_dry_run_refuses_a_throughput_that_is_not_positive(real_env, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["sweep", str(write_spec(tmp_path)), "--store", str(tmp_path / "store"), "--dry-run",
              "--unfused-trials-per-gpu-hour", "0"])
    assert exit_.value.code == 2
    assert ("argument --unfused-trials-per-gpu-hour: '0' is not accepted; accepted: a finite number above 0, "
            "up to 1,000,000,000") in capsys.readouterr().err


def test_store_defaults_to_roft_store(real_env, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ROFT_STORE", str(tmp_path / "shared-store"))
    assert main(["sweep", str(write_spec(tmp_path)), "--dry-run"]) == 0
    assert f"store: {tmp_path / 'shared-store'}" in capsys.readouterr().err


def test_a_relative_store_on_a_cluster_is_warned_about(real_env, tmp_path, capsys, monkeypatch):
    """Inside ``ray job submit`` the working directory is temporary: a relative store would vanish."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ROFT_STORE", raising=False)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.2:6379")  # set by Ray Jobs for its entry point
    assert main(["sweep", str(write_spec(tmp_path)), "--dry-run"]) == 0
    assert "roft: warning: the store 'results' is relative to this process's working directory" in \
        capsys.readouterr().err
    monkeypatch.delenv("RAY_ADDRESS")
    assert main(["sweep", str(write_spec(tmp_path)), "--dry-run"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_bench_plan_plans_diffs_and_prints_figures(real_env, capsys):
    assert main(["bench", "plan", "--spec", "mini.yaml", "--seeds", "3"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"mini: 12 trials planned in [\d.]+ s, peak RSS [\d,]+ MiB", out), out
    assert "planned again against the 12-row store" in out and "(0 pending)" in out


def test_pretrain_writes_a_checkpoint_and_resumes(tmp_path, capsys):
    import pandas as pd

    from tests.unit.trainables.hand_molecules import HAND_SMILES

    corpus = tmp_path / "corpus.csv"
    pd.DataFrame({"smiles": HAND_SMILES}).to_csv(corpus, index=False)
    common = ["pretrain", "--corpus", str(corpus), "--out", str(tmp_path / "out"), "--layers", "2", "--width", "8",
              "--batch-size", "8"]
    assert main([*common, "--epochs", "1"]) == 0
    assert main([*common, "--epochs", "2"]) == 2  # the folder holds a pre-training: --resume or another --out
    assert "pass --resume" in capsys.readouterr().err
    assert main([*common, "--epochs", "3", "--resume"]) == 0
    out = capsys.readouterr().out
    assert "epoch 3: mean attr-mask loss" in out and "9 steps" in out
    assert (tmp_path / "out" / "model.pth").is_file()


def test_pretrain_a_gps_by_descriptors_and_install_it(tmp_path, capsys, monkeypatch):
    import pandas as pd

    from tests.unit.trainables.hand_molecules import HAND_SMILES

    monkeypatch.setenv("ROFT_CACHE", str(tmp_path / "cache"))
    corpus = tmp_path / "corpus.csv"
    pd.DataFrame({"smiles": HAND_SMILES}).to_csv(corpus, index=False)
    assert main(["pretrain", "--corpus", str(corpus), "--out", str(tmp_path / "out"), "--objective", "descriptors",
                 "--arch", "gps", "--layers", "2", "--width", "8", "--heads", "2", "--batch-size", "8",
                 "--install"]) == 0
    captured = capsys.readouterr()
    assert "installed as backbone roft-gps-descriptors" in captured.out
    assert re.search(r"\[#+\] 100%  3/3  epoch 1/1  loss [\d.]+", captured.err), captured.err  # the progress line
    assert main(["backbones", "list"]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("roft-gps-descriptors")]
    assert listed and " gps " in listed[0] and "supervised" in listed[0] and " yes " in listed[0]
    assert main(["pretrain", "--corpus", str(corpus), "--out", str(tmp_path / "bad"), "--objective", "contrastive",
                 "--augmentations", "node-drop,flip"]) == 2
    assert "augmentations ['node-drop', 'flip'] are not accepted" in capsys.readouterr().err
