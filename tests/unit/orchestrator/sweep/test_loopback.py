"""The services roft starts bind loopback: a local sweep's Ray has no dashboard and stays on this machine,
``make cluster-up`` binds its head and dashboard to 127.0.0.1 with token authentication, and the
documented optuna-dashboard command binds 127.0.0.1."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[4]


def test_a_local_sweep_starts_ray_without_a_dashboard_on_this_machine(monkeypatch):
    ray = pytest.importorskip("ray")
    from orchestrator.sweep import execute

    calls = []
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    for name in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_LOGGER_LEVEL"):  # restored afterwards, set or not
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda *args, **kwargs: calls.append((args, kwargs)))
    monkeypatch.setattr(execute, "filter_ray_console", lambda: None)
    execute.init_ray(num_cpus=1)
    (args, kwargs), = calls
    assert not args and "address" not in kwargs, kwargs  # a private Ray, never one found on the network
    assert kwargs["include_dashboard"] is False
    assert "dashboard_host" not in kwargs
    import os

    assert os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"
    assert os.environ["RAY_LOGGER_LEVEL"] == "warning"  # Ray's agents log trial actors' AWS_* variables at INFO


def test_make_cluster_up_binds_loopback_with_token_authentication():
    recipe = (REPO / "Makefile").read_text().split("cluster-up: setup", 1)[1].split("cluster-down:", 1)[0]
    start = recipe[recipe.index("ray start"):]
    assert "--node-ip-address 127.0.0.1" in start and "--dashboard-host 127.0.0.1" in start
    assert "RAY_AUTH_MODE=token" in recipe and "RAY_LOGGER_LEVEL=warning" in recipe
    assert "0.0.0.0" not in recipe


def test_the_documented_optuna_dashboard_binds_loopback():
    commands = [line for path in (REPO / "docs").glob("*.md") for line in path.read_text().splitlines()
                if re.match(r"\s*optuna-dashboard\s+\S+\s+--", line)]  # commands, not prose
    assert commands, "no optuna-dashboard command in docs/"
    assert all("--host 127.0.0.1" in line for line in commands), commands
