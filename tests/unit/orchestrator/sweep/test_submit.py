"""What ``roft submit`` sends with a sweep's Ray job, and what it refuses, without a cluster."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pytest

from orchestrator.sweep import submit
from orchestrator.sweep.submit import Submission, build_submission, job_spec, job_store, jobs_address

REPO = Path(__file__).resolve().parents[4]
SECRET = "roftUNITSECRETq7Xz"


@pytest.fixture
def clean_env(monkeypatch):
    for name in (*submit.STORE_CREDENTIALS, *submit.STORE_SETTINGS, *submit.PATH_SETTINGS, *submit.ADDRESS_ENV,
                 "RAY_AUTH_MODE", *submit.TOKEN_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_a_bundled_spec_goes_by_name_and_a_file_by_its_path_below_the_working_directory(tmp_path):
    assert job_spec("mini.yaml", REPO) == "mini.yaml"
    assert job_spec(str(REPO / "search_spaces" / "cluster-check.yaml"), REPO) == "search_spaces/cluster-check.yaml"
    outside = tmp_path / "mine.yaml"
    outside.write_text("name: mine\n")
    with pytest.raises(ValueError, match=r"spec '.*mine.yaml' lies outside the working directory that the job "
                                         r"uploads \(.*\); accepted: a spec file below .*bundled spec \(.*mini.yaml"):
        job_spec(str(outside), REPO)
    with pytest.raises(ValueError, match=r"the job uploads no working directory"):
        job_spec(str(outside), None)


def test_a_spec_that_gitignore_leaves_out_of_the_upload_is_refused(tmp_path):
    import subprocess

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("/out/\n")
    (tmp_path / "out").mkdir()
    for name in ("out/spec.yaml", "spec.yaml"):
        (tmp_path / name).write_text("name: x\n")
    assert job_spec(str(tmp_path / "spec.yaml"), tmp_path) == "spec.yaml"
    with pytest.raises(ValueError, match=r"is listed by .gitignore, so the upload of .* leaves it out"):
        job_spec(str(tmp_path / "out" / "spec.yaml"), tmp_path)


@pytest.mark.parametrize("store, message", [
    ("results", r"--store 'results' is relative to this shell's folder.*accepted: an absolute path that every node "
                r"reaches \(on one machine: --store \"\$PWD/results\"\), or s3://bucket/prefix"),
    ("s3://KEY:SECRET@bucket/x", r"the URI carries credentials \(user information \(KEY:SECRET@\)\).*accepted: a URI "
                                 r"without them, with the credentials in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"),
    ("s3://bucket/x?secret_key=abc&scheme=http", r"query option\(s\) secret_key"),
])
def test_stores_the_job_cannot_use_or_must_not_show_are_refused(store, message):
    with pytest.raises(ValueError, match=message):
        job_store(store)


def test_a_folder_store_gets_the_data_root_and_no_credentials(clean_env, tmp_path):
    clean_env.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    clean_env.setenv("ROFT_DATA", "data")  # relative: made absolute, as the job runs elsewhere
    sub = build_submission("cluster-check.yaml", str(tmp_path / "store"), ["--device", "cpu"], working_dir=REPO,
                           spec_name="cluster-check")
    assert sub.entrypoint == ("python", "-m", "orchestrator", "sweep", "cluster-check.yaml", "--store",
                              str(tmp_path / "store"), "--device", "cpu")
    assert sub.settings["ROFT_DATA"] == str(Path("data").absolute()) and sub.credentials == ()
    env = sub.runtime_env()
    assert env["working_dir"] == str(REPO) and ".git" in env["excludes"]
    assert SECRET not in repr(env) and sub.job_id.startswith("roft-cluster-check-")


def test_an_s3_store_gets_the_credentials_of_this_environment_by_name_only(clean_env):
    clean_env.setenv("AWS_ACCESS_KEY_ID", "roftUNITKEY")
    clean_env.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    clean_env.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    uri = "s3://bucket/results?endpoint_override=127.0.0.1:9000&scheme=http"
    sub = build_submission("mini.yaml", uri, [], data_root="/data", working_dir=REPO, job_id="j1")
    assert sub.credentials == ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    assert SECRET not in repr(sub) and SECRET not in sub.command  # what roft prints or Ray logs
    env = sub.runtime_env()["env_vars"]
    assert env["AWS_SECRET_ACCESS_KEY"] == SECRET and env["ROFT_DATA"] == "/data"
    from orchestrator.version import code_version

    version = {"ROFT_CODE_VERSION"} if "unknown" not in code_version() else set()  # none outside a checkout
    assert set(sub.forwarded) == {"ROFT_DATA", *version, *sub.credentials}
    assert build_submission("mini.yaml", uri, [], working_dir=REPO, credentials=False).credentials == ()


def test_the_jobs_address_defaults_to_ray_s_variables_then_this_machine(clean_env):
    assert jobs_address(None) == "http://127.0.0.1:8265"
    clean_env.setenv("RAY_ADDRESS", "127.0.0.1:6379")  # a cluster address, not the Jobs API: passed over
    assert jobs_address(None) == "http://127.0.0.1:8265"
    clean_env.setenv("RAY_API_SERVER_ADDRESS", "http://10.0.0.5:8265/")
    assert jobs_address(None) == "http://10.0.0.5:8265"
    with pytest.raises(ValueError, match=r"--address 'head:8265' is not accepted; accepted: the head's Jobs API"):
        jobs_address("head:8265")


def test_a_token_at_hand_is_sent_as_ray_start_would(clean_env, tmp_path):
    clean_env.setenv("HOME", str(tmp_path))
    submit.use_token_at_hand()
    assert "RAY_AUTH_MODE" not in os.environ  # no token: nothing set
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("t" * 32)
    submit.use_token_at_hand()
    assert os.environ["RAY_AUTH_MODE"] == "token"
    clean_env.setenv("RAY_AUTH_MODE", "disabled")  # set by the user: left as it is
    submit.use_token_at_hand()
    assert os.environ["RAY_AUTH_MODE"] == "disabled"
    clean_env.delenv("RAY_AUTH_MODE")
    if "ray" in sys.modules:  # leave Ray's configuration in this process as the environment says
        from ray._raylet import Config

        Config.initialize("")


def test_auth_advice_says_what_to_set(clean_env):
    missing = submit.auth_advice("http://h:8265", refused=False)
    assert missing.startswith("the Ray cluster at http://h:8265 requires its authentication token, and this "
                              "machine has none: copy the head's ~/.ray/auth_token")
    assert "RAY_AUTH_TOKEN" in missing and "RAY_AUTH_MODE=token" in missing
    clean_env.setenv("RAY_AUTH_MODE", "disabled")
    assert "RAY_AUTH_MODE=disabled here sends none" in submit.auth_advice("http://h:8265", refused=False)
    assert "rejected this machine's authentication token" in submit.auth_advice("http://h:8265", refused=True)


def test_the_sweep_options_are_passed_on_as_roft_sweep_arguments(tmp_path):
    from orchestrator.cli.sweep import add_sweep_options, sweep_option_argv

    parser = argparse.ArgumentParser()
    add_sweep_options(parser)
    args = parser.parse_args(["--dry-run", "--device", "cpu", "--optuna-storage", "studies.journal",
                              "--unfused-trials-per-gpu-hour", "250"])
    assert sweep_option_argv(args) == ["--dry-run", "--unfused-trials-per-gpu-hour", "250.0", "--device", "cpu",
                                       "--optuna-storage", str(Path("studies.journal").absolute())]
    assert sweep_option_argv(parser.parse_args(["--optuna-storage", "sqlite:///s.db"])) == [
        "--optuna-storage", "sqlite:///s.db"]
    assert sweep_option_argv(parser.parse_args([])) == []
    only = parser.parse_args(["--only", "task=bbbp,bace", "--only", "seed=3"])
    assert sweep_option_argv(only) == ["--only", "task=bbbp,bace", "--only", "seed=3"]
    assert parser.parse_args(sweep_option_argv(only)).only == only.only  # the job parses what was given


def test_a_submission_is_frozen_and_prints_no_values():
    sub = Submission(address="http://h:1", job_id="j", entrypoint=("python",), working_dir=None,
                     settings={"ROFT_DATA": "/d"}, credentials=("AWS_SECRET_ACCESS_KEY",))
    assert sub.runtime_env({"AWS_SECRET_ACCESS_KEY": SECRET}) == {"env_vars": {"ROFT_DATA": "/d",
                                                                               "AWS_SECRET_ACCESS_KEY": SECRET}}
    assert SECRET not in repr(sub) and sub.runtime_env({}) == {"env_vars": {"ROFT_DATA": "/d"}}
