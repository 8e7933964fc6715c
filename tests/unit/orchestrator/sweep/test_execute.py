from __future__ import annotations

import io
import os

import pytest

from orchestrator.sweep.progress import ProgressReporter


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
    monkeypatch.setattr(execute, "check_resources_fit", lambda *args: None)  # no GPU here
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
    monkeypatch.delenv("TUNE_MAX_PENDING_TRIALS_PG", raising=False)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.2:6379")
    init_ray()
    assert calls[-1]["address"] == "127.0.0.2:6379" and "num_cpus" not in calls[-1]
    init_ray("auto")
    assert calls[-1]["address"] == "auto"
    # on a cluster, as many trials wait for resources as Tune's default lets the autoscaler see
    assert "TUNE_MAX_PENDING_TRIALS_PG" not in os.environ
    monkeypatch.delenv("RAY_ADDRESS")
    init_ray(num_cpus=2)
    assert "address" not in calls[-1] and calls[-1]["num_cpus"] == 2 and calls[-1]["include_dashboard"] is False
    assert os.environ["TUNE_MAX_PENDING_TRIALS_PG"] == "16"


TINY = {"name": "tiny", "backbones": ["scratch-gin"], "methods": {"full-ft": {}}, "tasks": ["esol"],
        "splits": ["scaffold"], "label_settings": ["fewshot:16"], "seeds": [0], "training": {"epochs": 1},
        "model": {"num_layers": 1, "emb_dim": 8}, "resources": {"cpu": 1},
        "execution": {"fuse": False, "max_failures": 0}}


def _no_ray(*args, **kwargs):
    raise AssertionError("Ray must not start for an unwritable store")


def test_an_unwritable_store_stops_the_sweep_in_one_line_before_ray_starts(real_env, tmp_path, monkeypatch):
    import orchestrator.sweep.execute as execute
    from orchestrator.store.schema import StoreError
    from tests.integration.sweeps import planned
    from tests.unit.orchestrator.store.rows import immutable

    setup = planned(TINY, real_env, tmp_path)
    setup.store.root.mkdir()
    monkeypatch.setattr(execute, "init_ray", _no_ray)
    monkeypatch.setattr(execute, "_prefeaturize", _no_ray)
    with immutable(setup.store.root):
        with pytest.raises(StoreError) as caught:
            execute.run_sweep(setup.plan, setup.store, setup.runtime, stream=io.StringIO())
    message = str(caught.value)
    assert message.startswith("the results store could not be written: cannot create a file in ")
    assert "Operation not permitted" in message and "nothing was run" in message and "\n" not in message
    assert isinstance(caught.value, RuntimeError)  # the CLI's `roft: error: ...`, exit 2
    assert list(setup.store.root.iterdir()) == []


def test_a_store_that_refuses_writes_stops_the_sweep_before_ray_starts(real_env, tmp_path, monkeypatch):
    import orchestrator.store.files as files
    import orchestrator.sweep.execute as execute
    from orchestrator.store.schema import StoreError
    from tests.integration.sweeps import planned

    setup = planned(TINY, real_env, tmp_path)

    def refuse(target, write):
        raise PermissionError(13, "Permission denied", str(target))

    monkeypatch.setattr(files, "atomic_write", refuse)
    monkeypatch.setattr(execute, "init_ray", _no_ray)
    monkeypatch.setattr(execute, "_prefeaturize", _no_ray)
    with pytest.raises(StoreError, match=r"^the results store could not be written: .*Permission denied"):
        execute.run_sweep(setup.plan, setup.store, setup.runtime, stream=io.StringIO())


@pytest.fixture
def ray_console():
    """A stand-in for Ray's terminal handler on the ``ray`` logger; yields what it printed."""
    import logging

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("ray")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _failed_trial_record(error: BaseException) -> None:
    """What Tune logs when a trial fails: the error with its traceback."""
    import logging

    try:
        raise error
    except BaseException as exc:
        logging.getLogger("ray.tune.execution.tune_controller").error("Trial task failed for trial t_00000",
                                                                       exc_info=exc)


def test_rays_tracebacks_and_inapplicable_hints_go_to_the_log_file_not_the_terminal(tmp_path, ray_console):
    import logging

    from orchestrator.sweep.ray_log import ray_log

    path = tmp_path / "logs" / "sweep.log"
    with ray_log(path):
        _failed_trial_record(ValueError("boom"))
        tune = logging.getLogger("ray.tune.tune")
        tune.error("Trials did not complete: [t_00000]")
        tune.warning("Experiment has been interrupted, but the most recent state was saved.\nResume experiment "
                     "with: Tuner.restore(path=\"/x\", trainable=...)")
        logging.getLogger("ray.train._internal.syncer").warning(
            "Last sync command failed with the following error:\nTraceback (most recent call last):\n  File "
            "\"x.py\", line 1\nOSError: [Errno 28] No space left on device")
        logging.getLogger("ray.tune.execution.insufficient_resources_manager").warning(
            "No trial is running and no new trial has been started within the last 60 seconds.")
    logging.getLogger("ray.tune.tune").warning("after the sweep: not in the log")
    shown = ray_console.getvalue()
    assert "No trial is running" in shown  # Ray's other warnings stay on the terminal
    assert "Traceback" not in shown and "boom" not in shown and "Tuner.restore" not in shown
    assert "Trials did not complete" not in shown
    kept = path.read_text()
    assert "Trial task failed for trial t_00000" in kept and "Traceback" in kept and "ValueError: boom" in kept
    assert "Tuner.restore" in kept and "No trial is running" in kept and "after the sweep" not in kept
    assert "Last sync command failed" not in shown and "No space left on device" in kept
    with ray_log(tmp_path / "quiet.log"):
        pass
    assert not (tmp_path / "quiet.log").exists()  # a sweep that Ray had nothing to say about leaves no file


def test_a_trial_that_cannot_write_the_store_stops_the_sweep_in_one_line_naming_the_log(tmp_path, monkeypatch,
                                                                                       ray_console):
    from types import SimpleNamespace

    from orchestrator.store.schema import StoreError
    from orchestrator.sweep.execute import run_trials
    from orchestrator.sweep.ray_log import ray_log
    from trainables.core.config import Runtime

    error = StoreError(f"cannot write to the store at {tmp_path} (epochs/k.parquet): [Errno 28] No space left on "
                       "device")

    class FailingTuner(_FakeTuner):
        def fit(self):
            _failed_trial_record(error)
            return [SimpleNamespace(error=error, config={"trial": {"key": "k"}}, metrics={})]

    def trainable(config):
        raise AssertionError("nothing runs")

    monkeypatch.setattr("ray.tune.Tuner", FailingTuner)
    path = tmp_path / "sweep.log"
    with ray_log(path), pytest.raises(StoreError) as caught:
        run_trials([{"key": "k"}, {"key": "l"}], Runtime(store=str(tmp_path)), trainable, name="s",
                   resources={"cpu": 1}, chunk_size=1, tune_root=tmp_path / "_tune", log_path=path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("the results store could not be written (StoreError: cannot write to the store at ")
    assert "No space left on device" in message and "1 not started" in message
    assert message.endswith(f"rerun the same command; the full traceback is in {path}")
    assert "Traceback" in path.read_text() and "No space left on device" in path.read_text()
    assert ray_console.getvalue() == ""


def test_a_sweep_with_a_failed_trial_names_its_log_and_a_clean_sweep_leaves_none(real_env, tmp_path, monkeypatch,
                                                                                 ray_console):
    import logging
    from types import SimpleNamespace

    import orchestrator.sweep.execute as execute
    from orchestrator.sweep.plan import plan_sweep
    from tests.integration.sweeps import planned
    from tests.unit.orchestrator.store.rows import make_row

    setup = planned({**TINY, "seeds": [0, 1]}, real_env, tmp_path)
    first, second = (t.key() for t in setup.plan.pending)

    class Tuner(_FakeTuner):
        failing = True

        def fit(self):  # the first trial fails (Tune logs its traceback) while `failing`, the others land
            logging.getLogger("ray.tune.tune").warning("Tune says something worth seeing")
            results = []
            for unit in self.param_space["trial"]["grid_search"]:
                if unit["key"] == first and Tuner.failing:
                    _failed_trial_record(ValueError("boom"))
                    results.append(SimpleNamespace(error=ValueError("boom"), config={"trial": unit}, metrics={}))
                else:
                    setup.store.write_trial(make_row(unit["key"]))
                    results.append(SimpleNamespace(error=None, config={"trial": unit}, metrics={"done": True}))
            return results

    path = tmp_path / "logs" / "tiny.log"
    monkeypatch.setattr("ray.tune.Tuner", Tuner)
    monkeypatch.setattr(execute, "init_ray", lambda *args, **kwargs: None)
    monkeypatch.setattr(execute, "check_resources_fit", lambda *args: None)  # no Ray started
    monkeypatch.setattr(execute, "sweep_log_path", lambda name: path)
    stream = io.StringIO()
    outcome = execute.run_sweep(setup.plan, setup.store, setup.runtime, stream=stream)
    assert outcome.failed == {first: "ValueError: boom"} and outcome.log_path == path
    assert f"[tiny] Ray's log of this sweep, with the full tracebacks: {path}" in stream.getvalue()
    assert "ValueError: boom" in path.read_text() and "Traceback" in path.read_text()
    assert ray_console.getvalue() == "Tune says something worth seeing\n"  # no traceback on the terminal

    path.unlink()
    Tuner.failing = False
    retry = plan_sweep(setup.spec, setup.store, setup.runtime.data_root, retry_failed=True)
    outcome = execute.run_sweep(retry, setup.store, setup.runtime, stream=io.StringIO())
    assert outcome.failed == {} and outcome.succeeded == 1
    assert outcome.log_path is None and not path.exists()  # nothing failed: no log left behind


def test_device_cuda_with_trials_that_ask_no_gpu_is_refused_before_anything_runs():
    """Ray hides every GPU from a trial that asks for none, so --device cuda would fail each trial at its first
    step; roft says so once, naming the options that fix it."""
    from orchestrator.sweep.execute import ResourcesError, check_device_resources
    from search_spaces.spec import Resources

    with pytest.raises(ResourcesError, match=r"^--device cuda, but the trials ask for no GPU .*--gpus.*--device auto"):
        check_device_resources("cuda", Resources(cpu=1.0, gpu=0.0))
    for device, gpu in (("cuda", 0.125), ("auto", 0.0), ("cpu", 0.0), ("cpu", 1.0)):
        check_device_resources(device, Resources(cpu=1.0, gpu=gpu))
