"""The deployment files under deploy/, loaded for tests."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import yaml

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
SHARED = "/mnt/roft"  # where every deployment mounts its shared storage


def load_yaml(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def ray_schema() -> dict:
    """The cluster-config JSON schema shipped inside the installed ``ray`` package."""
    import ray.autoscaler

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def load_script(name: str) -> ModuleType:
    """A script of deploy/ (not a package) as a module."""
    spec = importlib.util.spec_from_file_location(f"deploy_{Path(name).stem}", DEPLOY / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
