"""deploy/Dockerfile and deploy/constraints.txt: CUDA torch pinned and installed first, roft and
its tested dependency versions after it. (The image itself is built where Docker runs.)"""

from __future__ import annotations

import re

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.unit.deploy.configs import DEPLOY, load_script

REPO = DEPLOY.parent
tomllib = pytest.importorskip("tomllib")  # Python >= 3.11


def instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def pins() -> dict[str, str]:
    lines = [line for line in (DEPLOY / "constraints.txt").read_text().splitlines() if line and not line.startswith("#")]
    return {canonicalize_name(name): version for name, version in (line.split("==") for line in lines)}


def test_dockerfile_pins_cuda_torch_before_installing_the_project():
    steps = instructions()
    assert steps[0].startswith("FROM python:3.11")
    assert "ARG TORCH_VERSION=2.13.0" in steps
    assert any(re.fullmatch(r"ARG TORCH_INDEX=https://download\.pytorch\.org/whl/cu12\d", s) for s in steps)
    torch_at = next(i for i, s in enumerate(steps) if 'pip install "torch==${TORCH_VERSION}" --index-url' in s)
    project_at = next(i for i, s in enumerate(steps) if "pip install -c deploy/constraints.txt -e ." in s)
    assert torch_at < project_at
    assert "torch.__version__.split('+')[0] == '${TORCH_VERSION}'" in steps[project_at]  # the build checks it


def test_dockerfile_copies_every_package_of_the_project():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    copies = [s.split()[1] for s in instructions() if s.startswith("COPY ")]
    assert set(packages) <= set(copies)
    assert "deploy/constraints.txt" in copies


def test_constraints_pin_every_runtime_dependency_within_its_range_and_not_torch():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    pinned = pins()
    assert "torch" not in pinned and "roft" not in pinned
    for text in project["project"]["dependencies"]:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        if name == "torch":
            continue
        assert name in pinned, f"{name} is not pinned in deploy/constraints.txt (python deploy/constraints.py)"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (name, pinned[name])


def test_constraints_script_lists_the_installed_closure():
    closure = load_script("constraints.py").closure()
    assert "torch" not in closure and "roft" not in closure
    assert {"ray", "torch-geometric", "rdkit", "pyarrow", "optuna", "aiohttp"} <= set(closure)  # aiohttp: ray[default]
    assert "pytest" not in closure  # dev extras are not runtime dependencies
