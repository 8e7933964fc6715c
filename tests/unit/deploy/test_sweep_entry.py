"""deploy/sweep.py, the ``ray submit`` entry point: ``roft sweep`` joined to the running cluster."""

from __future__ import annotations

from tests.unit.deploy.configs import load_script


def test_joins_the_cluster_unless_an_address_is_given():
    sweep_argv = load_script("sweep.py").sweep_argv
    assert sweep_argv(["paper.yaml", "--dry-run"]) == ["sweep", "paper.yaml", "--dry-run", "--address", "auto"]
    assert sweep_argv(["paper.yaml", "--address", "10.0.0.10:6379"]) == ["sweep", "paper.yaml", "--address",
                                                                       "10.0.0.10:6379"]
    assert sweep_argv(["paper.yaml", "--address=auto"])[-1] == "--address=auto"


def test_runs_roft_sweep(real_env, tmp_path, capsys):
    code = load_script("sweep.py").main(["mini.yaml", "--store", str(tmp_path / "store"), "--dry-run"])
    assert code == 0
    err = capsys.readouterr().err
    assert "sweep mini" in err and "GPU-hours" in err
