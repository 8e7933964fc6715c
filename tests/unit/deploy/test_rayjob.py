"""deploy/rayjob.yaml: a KubeRay RayJob with the fields the deployment relies on, and an entry
point that is a valid ``roft sweep`` command on the shared volume."""

from __future__ import annotations

import shlex

import ray
import yaml

from orchestrator.cli import build_parser
from search_spaces import load_spec
from tests.unit.deploy.configs import SHARED, load_yaml


def rayjob() -> dict:
    return load_yaml("rayjob.yaml")


def test_is_a_rayjob_with_lifecycle_limits():
    job = rayjob()
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert isinstance(spec["activeDeadlineSeconds"], int) and spec["activeDeadlineSeconds"] > 0
    assert isinstance(spec["backoffLimit"], int) and spec["backoffLimit"] >= 0
    assert spec["rayClusterSpec"]["rayVersion"] == ray.__version__


def test_worker_group_requests_gpus_and_mounts_the_shared_volume():
    cluster = rayjob()["spec"]["rayClusterSpec"]
    groups = cluster["workerGroupSpecs"]
    assert groups
    for group in groups:
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        pod = group["template"]["spec"]
        (container,) = pod["containers"]
        resources = container["resources"]
        assert int(resources["limits"]["nvidia.com/gpu"]) == int(resources["requests"]["nvidia.com/gpu"]) == 8
        assert {"name": "roft-shared", "mountPath": SHARED} in container["volumeMounts"]
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
        assert claims == {"roft-shared": "roft-shared"}
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    for params in [head["rayStartParams"], *(g["rayStartParams"] for g in groups)]:
        assert all(isinstance(v, str) for v in params.values())  # KubeRay takes strings only


def test_runtime_env_and_entrypoint_run_a_bundled_spec_into_the_shared_store():
    spec = rayjob()["spec"]
    env = yaml.safe_load(spec["runtimeEnvYAML"])["env_vars"]
    assert env["ROFT_DATA"] == f"{SHARED}/data" and env["ROFT_CACHE"] == f"{SHARED}/cache"
    words = shlex.split(spec["entrypoint"])
    assert words[:3] == ["python", "-m", "orchestrator"]
    args = build_parser().parse_args(words[3:])
    assert (args.command, args.address, args.store) == ("sweep", "auto", f"{SHARED}/results")
    assert load_spec(args.spec).name == "paper"


def test_images_match_the_cluster_launcher_image_tag():
    tag = load_yaml("cluster-aws.yaml")["docker"]["image"].rsplit("/", 1)[1]
    cluster = rayjob()["spec"]["rayClusterSpec"]
    pods = [cluster["headGroupSpec"]["template"], *(g["template"] for g in cluster["workerGroupSpecs"])]
    assert {c["image"].rsplit("/", 1)[1] for pod in pods for c in pod["spec"]["containers"]} == {tag}
