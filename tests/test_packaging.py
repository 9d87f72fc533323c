"""The package as a user gets it: the wheel and the sdist hold every module of the checkout, and the
wheel, installed into a fresh virtual environment, imports and runs from there, not from the checkout.

The build runs on a copy of the build inputs (pyproject.toml, README.md, hebb_utils/), so nothing is
written into the checkout. The fresh venv gets the wheel alone; its third-party dependencies (torch,
...) come from this environment's site-packages, appended after the venv's own (a .pth file), so
installing torch again is not needed and the wheel's hebb_utils is the one imported.
"""
import ast
import importlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD_INPUTS = ("pyproject.toml", "README.md", "setup.py", "setup.cfg", "MANIFEST.in", "LICENSE", "LICENSE.txt")


def _package_files() -> set[str]:
    """Every file of hebb_utils/ in the checkout (bytecode caches aside), relative to the checkout."""
    return {p.relative_to(ROOT).as_posix() for p in (ROOT / "hebb_utils").rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def _run(cmd, cwd, **kw) -> subprocess.CompletedProcess:
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=300, **kw)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def _pip_wheel(source: Path, dist: Path) -> tuple[Path, str]:
    out = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", ".",
                "-w", dist], cwd=source)
    wheels = sorted(dist.glob("hebb_utils-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0], out.stdout + out.stderr


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(wheel, sdist, wheel built from the sdist, build log) from a copy of the checkout's build inputs."""
    tmp = tmp_path_factory.mktemp("packaging")
    src = tmp / "src"
    shutil.copytree(ROOT / "hebb_utils", src / "hebb_utils", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in BUILD_INPUTS:
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, src / name)
    wheel, log = _pip_wheel(src, tmp / "dist")
    # the sdist through the build backend pyproject.toml names (PEP 517's build_sdist hook)
    backend = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["build-backend"]
    out = _run([sys.executable, "-c", f"import sys, {backend.split(':')[0]} as b; print(b.build_sdist(sys.argv[1]))",
                tmp / "dist"], cwd=src)
    sdist = tmp / "dist" / out.stdout.strip().splitlines()[-1]
    log += out.stdout + out.stderr
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp / "unpacked", filter="data")
    (unpacked,) = (tmp / "unpacked").iterdir()
    from_sdist, log2 = _pip_wheel(unpacked, tmp / "dist_from_sdist")
    return wheel, sdist, from_sdist, log + log2


def _wheel_files(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as z:
        return {n for n in z.namelist() if n.startswith("hebb_utils/")}


def test_the_wheel_holds_every_file_of_the_package(built):
    wheel, _, from_sdist, _ = built
    files = _package_files()
    assert {"hebb_utils/kernels/launch.py", "hebb_utils/rules/training.py", "hebb_utils/data/__init__.py",
            "hebb_utils/experiments/topography.py", "hebb_utils/report/tables.py"} <= files
    for w in (wheel, from_sdist):
        assert sorted(files - _wheel_files(w)) == [], f"{w.name} lacks these files of the checkout"
        assert sorted(_wheel_files(w) - files) == [], f"{w.name} holds files the checkout does not"


def test_the_sdist_holds_every_file_of_the_package(built):
    _, sdist, _, _ = built
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert sorted(_package_files() - names) == []
    assert {"pyproject.toml", "README.md"} <= names  # README.md is the project's long description


def test_the_build_has_no_deprecation_warnings(built):
    log = built[3]
    assert "Deprecat" not in log and "BuildBackendWarning" not in log, log[-3000:]


def test_the_package_reads_no_files_of_its_own():
    """No package data to ship: the only use of a module's own location is to find the repository
    checkout (`Path(__file__).resolve().parents[1]`, for the cache folder and portable paths), which
    an installed package does without."""
    uses = []
    for path in sorted((ROOT / "hebb_utils").rglob("*.py")):
        source = path.read_text()
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id == "__file__":
                line = source.splitlines()[node.lineno - 1].strip()
                uses.append((path.relative_to(ROOT).as_posix(), line))
            if isinstance(node, ast.Attribute) and node.attr in ("get_data", "files", "open_text", "read_text") and \
                    isinstance(node.value, ast.Name) and node.value.id in ("pkgutil", "resources", "importlib_resources"):
                uses.append((path.relative_to(ROOT).as_posix(), f"package data via {node.value.id}.{node.attr}"))
    assert all("Path(__file__).resolve().parents[1]" in line for _, line in uses), uses


def test_the_installed_wheel_runs_from_a_fresh_venv(built, tmp_path):
    wheel = built[0]
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "--quiet", wheel],
         cwd=tmp_path)
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=tmp_path).stdout.strip())
    assert (site / "hebb_utils" / "__init__.py").exists()
    # third-party dependencies from this environment, after the venv's own site-packages
    here = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "zz_dependencies.pth").write_text("\n".join(sorted(here)) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env.update(TRITON_INTERPRET="1", PYTHONDONTWRITEBYTECODE="1")
    modules = sorted(f[:-3].replace("/", ".").removesuffix(".__init__") for f in _wheel_files(wheel) if f.endswith(".py")
                     and not f.endswith("__main__.py"))
    probe = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "import hebb_utils, hebb_utils.kernels\n"
        "from importlib.metadata import version\n"
        "print(json.dumps({'file': hebb_utils.__file__, 'path': sys.path, 'version': version('hebb_utils'),\n"
        "    'kernels': callable(hebb_utils.kernels.launch.triton_available),\n"
        "    'files': sorted({m.__file__ for n, m in sys.modules.items() if n.split('.')[0] == 'hebb_utils'}),\n"
        "    'cache': str(hebb_utils.default_cache_dir())}))\n"
    )
    out = json.loads(_run([python, "-c", probe], cwd=tmp_path, env=env).stdout.strip().splitlines()[-1])
    assert Path(out["file"]).is_relative_to(site)
    assert all(Path(f).is_relative_to(site) for f in out["files"]), out["files"]
    # the checkout is not on the path ("" is the working folder, outside the checkout)
    assert not tmp_path.is_relative_to(ROOT) and not [p for p in out["path"] if p and Path(p) in (ROOT, ROOT / "hebb_utils")]
    assert out["kernels"] and out["version"] == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert not Path(out["cache"]).is_relative_to(site)  # the cache goes to the working folder, not the package
    cli = _run([python, "-m", "hebb_utils", "--help"], cwd=tmp_path, env=env).stdout
    assert all(command in cli for command in ("extract", "train", "map")), cli
    report = _run([python, "-m", "hebb_utils.report", "--help"], cwd=tmp_path, env=env).stdout
    assert "--readme" in report
