"""deploy/cluster-aws.yaml and deploy/cluster-onprem.yaml: valid for the installed Ray's cluster
launcher (its JSON schema, and the preparation ``ray up`` does before it calls a provider), and
wired as the deployment needs: GPU workers, the image, roft installed, shared storage."""

from __future__ import annotations

import copy

import jsonschema
import pytest

from tests.unit.deploy.configs import DEPLOY, SHARED, load_yaml, ray_schema

CLUSTERS = ["cluster-aws.yaml", "cluster-onprem.yaml"]


@pytest.mark.parametrize("name", CLUSTERS)
def test_validates_against_the_schema_inside_the_installed_ray(name):
    jsonschema.validate(load_yaml(name), ray_schema())


@pytest.mark.parametrize("name", CLUSTERS)
def test_passes_the_preparation_and_validation_of_ray_up(name):
    """``ray up`` fills in the provider's defaults and validates the result before any cloud call."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(load_yaml(name)))
    validate_config(prepared)
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_the_schema_check_catches_a_misspelt_key():
    config = load_yaml("cluster-aws.yaml")
    config["available_node_types"]["worker.gpu8"]["max_worker"] = 4
    with pytest.raises(jsonschema.ValidationError, match="max_worker"):
        jsonschema.validate(config, ray_schema())


@pytest.mark.parametrize("name", CLUSTERS)
def test_dashboard_listens_on_the_head_loopback_only(name):
    start = " ".join(load_yaml(name)["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in start and "0.0.0.0" not in start


def test_aws_has_a_cpu_head_and_autoscaled_8_gpu_workers():
    config = load_yaml("cluster-aws.yaml")
    types = config["available_node_types"]
    head, workers = types[config["head_node_type"]], types["worker.gpu8"]
    assert head["resources"] == {"CPU": 0}  # trials never land on the head
    assert workers["resources"]["GPU"] == 8
    assert 0 <= workers["min_workers"] <= workers["max_workers"] <= config["max_workers"]
    assert workers["node_config"]["InstanceType"] == "p5.48xlarge"


def test_aws_runs_the_image_and_installs_the_synced_code_over_it():
    config = load_yaml("cluster-aws.yaml")
    assert config["docker"]["image"].endswith("/roft:0.1.0-cu128")
    assert config["file_mounts"] == {"/home/ray/roft": "."}
    assert "pip install --quiet --no-deps -e /home/ray/roft" in config["setup_commands"]
    assert ".gitignore" in config["rsync_filter"]  # no .venv, results or caches are synced


def test_aws_mounts_shared_storage_on_every_node_and_into_the_container():
    config = load_yaml("cluster-aws.yaml")
    init = " ".join(config["initialization_commands"])
    assert f"efs.us-east-1.amazonaws.com:/ {SHARED}" in init and "nfs4" in init
    assert f"--volume {SHARED}:{SHARED}" in config["docker"]["run_options"]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for variable, folder in (("ROFT_STORE", "results"), ("ROFT_DATA", "data"), ("ROFT_CACHE", "cache")):
        assert f"{variable}={SHARED}/{folder}" in dockerfile
        assert f"{SHARED}/{folder}" in init


def test_onprem_lists_the_lab_boxes_and_installs_pinned_torch_and_roft():
    from ray.autoscaler._private.util import prepare_config

    config = load_yaml("cluster-onprem.yaml")
    provider = config["provider"]
    assert provider["type"] == "local" and provider["head_ip"] and len(provider["worker_ips"]) == 3
    node = next(iter(prepare_config(copy.deepcopy(config))["available_node_types"].values()))
    assert node["min_workers"] == node["max_workers"] == 3  # every listed box joins
    setup = " ".join(config["setup_commands"])
    assert "pip install --quiet torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128" in setup
    assert "-c ~/roft/deploy/constraints.txt -e ~/roft" in setup
    assert config["file_mounts"] == {"~/roft": "."}
    assert f"mountpoint -q {SHARED}" in setup and f"ROFT_STORE={SHARED}/results" in setup
