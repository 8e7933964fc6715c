"""orchestrator/cli/sweep.py: odd paths (a regular file as the store, a binary spec) are refused in one line."""

from __future__ import annotations

from orchestrator.cli import main
from tests.cli.test_cli import write_spec


def test_dry_run_refuses_a_regular_file_as_the_store(real_env, tmp_path, capsys):
    not_a_store = tmp_path / "results.csv"
    not_a_store.write_text("trial_key\n")
    assert main(["sweep", str(write_spec(tmp_path)), "--store", str(not_a_store), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == err[0]  # refused before planning: the one line is all
    assert err[0].startswith(f"roft: error: store {str(not_a_store)!r} is a file, not a folder; accepted: a local "
                             "folder, or s3://")
    assert not_a_store.read_text() == "trial_key\n"


def test_a_binary_spec_is_refused_in_one_line_naming_the_file(tmp_path, capsys):
    spec = tmp_path / "sweep.yaml"
    spec.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    assert main(["sweep", str(spec), "--store", str(tmp_path / "store"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"roft: error: sweep spec {str(spec)!r} is not a UTF-8 text file")
    assert "accepted: a YAML file" in err and len(err.splitlines()) == 1


def test_a_bad_tracker_is_refused_in_one_line_before_anything(tmp_path, capsys):
    spec = write_spec(tmp_path)
    assert main(["sweep", str(spec), "--store", str(tmp_path / "store"), "--tracker", "wandb"]) == 2
    err = capsys.readouterr().err
    assert err == "roft: error: --tracker 'wandb' is not accepted; accepted: mlflow, or mlflow=TRACKING_URI " \
                  "(e.g. mlflow=http://127.0.0.1:5000)\n"
    assert not (tmp_path / "store").exists()


def test_tracking_without_mlflow_is_one_line_saying_what_to_install(real_env, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    assert main(["sweep", str(write_spec(tmp_path)), "--store", str(tmp_path / "store"), "--tracker", "mlflow"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("roft: error: --tracker mlflow needs MLflow, which is not installed: pip install "
                       "'roft[mlflow]' (or pip install mlflow)")
    assert not (tmp_path / "store" / "trials").exists()  # nothing ran
