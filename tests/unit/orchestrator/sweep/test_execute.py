from __future__ import annotations

import io
import os

from orchestrator.sweep.execute import ProgressReporter


def test_progress_line_counts_and_eta():
    stream = io.StringIO()
    reporter = ProgressReporter(total=4, name="s", stream=stream, min_interval_s=0)
    reporter.update(running=2)
    assert "0/4 done, 0 failed, 2 running, 2 queued" in reporter.line()
    assert "ETA ?" in reporter.line()
    reporter.update(running=2, finished_ok=1)
    reporter.update(running=1, finished_failed=1)
    line = reporter.line()
    assert "1/4 done, 1 failed, 1 running, 1 queued" in line
    assert "ETA ?" not in line
    assert stream.getvalue().count("\n") == 3


def test_heartbeat_names_the_epochs_of_running_trials():
    stream = io.StringIO()
    reporter = ProgressReporter(total=300, name="s", stream=stream, min_interval_s=0, heartbeat_s=0)
    reporter.update(running=2)
    reporter.progress("group-a", 12)
    assert "0/300 done, 0 failed, 2 running, at epoch 12, 298 queued" in stream.getvalue().splitlines()[-1]
    reporter.progress("group-b", 37)
    assert "2 running, at epochs 12-37, 298 queued" in stream.getvalue().splitlines()[-1]
    reporter.update(running=1, finished_ok=256, unit="group-b")  # a fused group of 256 lands
    assert "256/300 done, 0 failed, 1 running, at epoch 12, 43 queued" in stream.getvalue().splitlines()[-1]
    quiet = ProgressReporter(total=4, name="s", stream=io.StringIO(), heartbeat_s=3600)
    quiet.update(running=1)
    quiet.progress("t", 1)
    quiet.progress("t", 2)
    assert quiet.stream.getvalue().count("\n") == 1  # the start; no heartbeat before it is due


def test_error_line_names_the_exception_of_a_multi_line_remote_report():
    from orchestrator.sweep.execute import error_line

    report = ("RayTaskError(ValueError): ray::ImplicitFunc.train() (pid=1)\n  File \"x.py\", line 3, in f\n"
              "    raise ValueError(...)\nValueError: bad value 'x'; accepted: 'y'\n\nmore detail on a line of its own")
    assert error_line(report) == "ValueError: bad value 'x'; accepted: 'y'"
    assert error_line("not run: its parent did not land") == "not run: its parent did not land"


class _FakeTuner:
    """Stands in for ``ray.tune.Tuner``: records what it is given, runs nothing."""

    made: list[_FakeTuner] = []

    def __init__(self, trainable, param_space, tune_config, run_config):
        self.trainable, self.param_space = trainable, param_space
        _FakeTuner.made.append(self)

    def fit(self):
        return []


def test_fractional_gpus_of_a_spec_reach_tunes_resource_request(real_env, tmp_path, monkeypatch):
    """spec resources -> run_sweep -> run_trials -> tune.with_resources -> the bundle Tune asks Ray for."""
    from ray.tune.trainable.function_trainable import wrap_function

    import orchestrator.sweep.execute as execute
    from tests.integration.sweeps import planned

    raw = {"name": "g", "backbones": ["scratch-gin"], "methods": {"full-ft": {}}, "tasks": ["esol"],
           "splits": ["scaffold"], "label_settings": ["fewshot:16"], "seeds": [0, 1],
           "resources": {"cpu": 2, "gpu": 0.25}, "execution": {"fuse": False, "max_failures": 0}}
    setup = planned(raw, real_env, tmp_path)

    def trainable(config):  # not tune_trainable: with_resources marks the function it is given
        raise AssertionError("nothing runs")

    _FakeTuner.made.clear()
    monkeypatch.setattr("ray.tune.Tuner", _FakeTuner)
    monkeypatch.setattr(execute, "init_ray", lambda *args, **kwargs: None)
    monkeypatch.setattr(execute, "_trainable", lambda: trainable)
    execute.run_sweep(setup.plan, setup.store, setup.runtime, stream=io.StringIO())

    (tuner,) = _FakeTuner.made
    assert len(tuner.param_space["trial"]["grid_search"]) == 2  # one Tune trial per seed (fuse: false)
    request = wrap_function(tuner.trainable).default_resource_request({})
    assert request.required_resources == {"CPU": 2.0, "GPU": 0.25}


def test_init_ray_joins_the_cluster_of_ray_address(monkeypatch):
    """Inside ``ray job submit`` RAY_ADDRESS names the cluster: join it, never start a local Ray."""
    import ray

    from orchestrator.sweep.execute import init_ray

    calls = []
    monkeypatch.setattr(os, "environ", os.environ.copy())  # init_ray sets variables for the Ray it starts
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.2:6379")
    init_ray()
    assert calls[-1]["address"] == "127.0.0.2:6379" and "num_cpus" not in calls[-1]
    init_ray("auto")
    assert calls[-1]["address"] == "auto"
    monkeypatch.delenv("RAY_ADDRESS")
    init_ray(num_cpus=2)
    assert "address" not in calls[-1] and calls[-1]["num_cpus"] == 2 and calls[-1]["include_dashboard"] is False
