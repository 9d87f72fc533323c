"""The package's structure, read from the source (tools/import_graph.py, `ast`, nothing imported):
no import cycle between modules, no module reaching into another one's private names, and each
notebook's Makefile prerequisites derived from what it imports.

The checker is first run on small packages written here, where each rule must fire."""
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("import_graph", ROOT / "tools" / "import_graph.py")
import_graph = importlib.util.module_from_spec(spec)
sys.modules["import_graph"] = import_graph  # dataclasses look their module up
spec.loader.exec_module(import_graph)


@pytest.fixture(scope="module")
def package():
    return import_graph.load_package(ROOT)


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "hebb_utils" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


# -----------------------------------------------------------------------------
# the checker, on packages made to break each rule


def test_cycles_are_found_through_function_level_and_relative_imports(tmp_path):
    _write(tmp_path, {
        "__init__.py": "from .a import f\n",
        "a.py": "from .sub.b import g\ndef f():\n    return g()\n",
        "sub/__init__.py": "",
        "sub/b.py": "def g():\n    from ..c import h  # imported late, still an edge\n    return h()\n",
        "c.py": "import hebb_utils.a\ndef h():\n    return 1\n",
        "d.py": "from . import c\n",
    })
    pkg = import_graph.load_package(tmp_path)
    assert import_graph.cycles(pkg) == [["hebb_utils.a", "hebb_utils.sub.b", "hebb_utils.c", "hebb_utils.a"]]
    # a package's __init__ importing its submodules is no cycle, nor is a submodule importing a sibling
    _write(tmp_path, {"c.py": "def h():\n    return 1\n"})
    assert import_graph.cycles(import_graph.load_package(tmp_path)) == []


def test_a_computed_import_module_reaches_the_whole_package(tmp_path):
    _write(tmp_path, {
        "__init__.py": "",
        "lazy/__init__.py": "import importlib\ndef __getattr__(n):\n    return importlib.import_module(f'.{n}', __name__)\n",
        "lazy/one.py": "from ..user import x\n",
        "user.py": "x = 1\ndef f():\n    from .lazy import one\n",
        "ext.py": "import importlib\ndef load(name):\n    return importlib.import_module(name)  # datasets, ...\n",
    })
    pkg = import_graph.load_package(tmp_path)
    assert import_graph.graph(pkg)["hebb_utils.lazy"] == {"hebb_utils.lazy.one"}
    assert import_graph.graph(pkg)["hebb_utils.ext"] == set()  # a variable's module: nothing says it is ours
    assert import_graph.cycles(pkg) == [["hebb_utils.lazy", "hebb_utils.lazy.one", "hebb_utils.user", "hebb_utils.lazy"]]


def test_private_names_of_other_modules_are_found(tmp_path):
    _write(tmp_path, {
        "__init__.py": "",
        "a.py": "_hidden = 1\n__version__ = '1'\ndef _helper():\n    return _hidden  # its own: fine\n",
        "b.py": "from .a import _helper, __version__\n",                  # 1: imported
        "c.py": "from . import a\nx = a._hidden\ny = a.__doc__\n",         # 2: attribute
        "d.py": "def f():\n    import hebb_utils.a as m\n    return getattr(m, '_hidden')\n",  # 3: getattr
        "e.py": "import hebb_utils.a\nz = hebb_utils.a._helper\n",       # 4: dotted
        "f.py": "from .a import _helper as public\n",                     # 5: renamed on import
    })
    uses = import_graph.private_uses(import_graph.load_package(tmp_path))
    assert [(path, line) for path, line, _ in uses] == [("hebb_utils/b.py", 1), ("hebb_utils/c.py", 2),
                                                       ("hebb_utils/d.py", 3), ("hebb_utils/e.py", 2),
                                                       ("hebb_utils/f.py", 1)]
    assert "hebb_utils.a._hidden" in uses[1][2] and "getattr(hebb_utils.a, '_hidden')" in uses[2][2]


def test_dependencies_follow_reexports_not_the_whole_init(tmp_path):
    _write(tmp_path, {
        "__init__.py": "from .x.one import f\nfrom .x.two import g\nfrom .lazy import h\n",
        "x/__init__.py": "",
        "x/one.py": "from .helper import k\ndef f():\n    return k\n",
        "x/helper.py": "k = 1\n",
        "x/two.py": "def g():\n    return 2\n",
        "lazy/__init__.py": "import importlib\ndef __getattr__(n):\n    return importlib.import_module('.a', __name__)\n",
        "lazy/a.py": "h = 3\n",
    })
    pkg = import_graph.load_package(tmp_path)
    deps = lambda src: import_graph.dependencies(pkg, import_graph.source_imports(  # noqa: E731
        import_graph.ast.parse(src), known=set(pkg.modules)))
    assert deps("from hebb_utils import f") == ["hebb_utils/__init__.py", "hebb_utils/x/__init__.py",
                                                "hebb_utils/x/helper.py", "hebb_utils/x/one.py"]
    assert deps("from hebb_utils.x.two import g") == ["hebb_utils/__init__.py", "hebb_utils/x/__init__.py",
                                                      "hebb_utils/x/two.py"]
    # a name the package only provides at run time: the package and what its __init__ may import
    assert deps("from hebb_utils.lazy import h") == ["hebb_utils/__init__.py", "hebb_utils/lazy/__init__.py",
                                                     "hebb_utils/lazy/a.py"]


def test_imports_up_a_floor_or_across_a_group_are_found(tmp_path):
    _write(tmp_path, {
        "__init__.py": "from .rules import a\n",                        # the top imports anything
        "checks.py": "",
        "kernels/__init__.py": "",
        "kernels/k.py": "from ..checks import x\nfrom ..rules.a import y\n",  # kernels -> rules: up
        "rules/__init__.py": "",
        "rules/a.py": "def f():\n    from ..measure import m\n",          # rules -> measure: across, in a function
        "measure/__init__.py": "",
        "measure/m.py": "from ..experiments import e\nfrom . import n\n",  # measure -> experiments: up
        "measure/n.py": "",
        "experiments/__init__.py": "",
        "experiments/e.py": "from ..measure import m\nfrom ..rules import a\n",  # down: fine
        "stray.py": "",
    })
    found = import_graph.layer_violations(import_graph.load_package(tmp_path))
    # `from ..experiments import e` reaches the package and its submodule e (tools/import_graph.py's rule)
    assert [(a, b) for a, b, _ in found] == [
        ("hebb_utils.kernels.k", "hebb_utils.rules.a"),
        ("hebb_utils.measure.m", "hebb_utils.experiments"), ("hebb_utils.measure.m", "hebb_utils.experiments.e"),
        ("hebb_utils.rules.a", "hebb_utils.measure"), ("hebb_utils.rules.a", "hebb_utils.measure.m"),
        ("hebb_utils.stray", "")]
    assert "kernels (floor 1) imports rules (floor 2): a higher floor" in found[0][2]
    assert "another group of its floor" in found[3][2] and "in no layer" in found[5][2]


def test_notebook_source_skips_magics(tmp_path):
    import json

    nb = {"cells": [{"cell_type": "code", "source": ["%matplotlib inline\n", "!ls\n", "from hebb_utils import f\n"]},
                    {"cell_type": "markdown", "source": "from hebb_utils import nothing"}]}
    (tmp_path / "n.ipynb").write_text(json.dumps(nb))
    assert import_graph.notebook_source(tmp_path / "n.ipynb").split("\n")[:3] == ["", "", "from hebb_utils import f"]


# -----------------------------------------------------------------------------
# the package itself


def test_no_import_cycles(package):
    found = import_graph.cycles(package)
    assert not found, "import cycles (module-level or in functions):\n" + "\n".join(" -> ".join(c) for c in found)


def test_no_import_reaches_up_a_floor(package):
    """kernels -> rules, rules <-> measure, rules -> experiments/report, measure -> experiments ...: none."""
    found = import_graph.layer_violations(package)
    assert not found, "imports against the floors of tools/import_graph.py LAYERS:\n" + "\n".join(
        f"{a} -> {b}: {why}" for a, b, why in found)


def test_no_private_names_of_other_modules(package):
    found = import_graph.private_uses(package)
    assert not found, "private names used across modules (make them public, or move the code):\n" + "\n".join(
        f"{path}:{line}: {what}" for path, line, what in found)


def test_the_graph_sees_every_module(package):
    files = {p.relative_to(ROOT).as_posix() for p in (ROOT / "hebb_utils").rglob("*.py")}
    assert {package.path(n) for n in package.modules} == files
    edges = import_graph.graph(package)
    assert "hebb_utils.rules.softhebb" in edges["hebb_utils.backend"]  # from .rules import softhebb as reference
    assert {"hebb_utils.kernels.batchnorm", "hebb_utils.kernels.update"} <= edges["hebb_utils.kernels"]  # lazy __getattr__


# -----------------------------------------------------------------------------
# each notebook's prerequisites, derived


def _deps(name: str) -> list[str]:
    return import_graph.file_dependencies(ROOT / "notebooks" / f"{name}.ipynb")


def test_notebook_prerequisites_are_what_it_imports():
    lm, foundations = _deps("05_lm_softhebb"), _deps("02_foundations")
    # the two a hand-written list once missed
    assert "hebb_utils/report/lm_map.py" in lm and "hebb_utils/report/token_map.py" in lm
    assert any(f.startswith("hebb_utils/data/") and not f.endswith("__init__.py") for f in lm)
    assert "hebb_utils/measure/maps.py" in lm and "hebb_utils/experiments/softhebb.py" in lm
    assert "hebb_utils/rules/training.py" in lm
    # foundations run on synthetic data, with the Hebbian rules alone: no data access, no SoftHebb layer
    assert "hebb_utils/rules/hebbian.py" in foundations and "hebb_utils/report/plots.py" in foundations
    assert not [f for f in foundations if f.startswith("hebb_utils/data/") or f.endswith(("/layer.py", "/lm_map.py"))]
    topo = _deps("06_topography")
    assert "hebb_utils/experiments/topography.py" in topo and "hebb_utils/rules/som.py" in topo
    assert "hebb_utils/report/lm_map.py" in topo  # it draws the annealed map of words, the main one
    for name in ("01_extract_activations", "02_foundations", "03_pca_family", "04_cifar_softhebb", "05_lm_softhebb",
                 "06_topography"):
        deps = _deps(name)
        assert deps and all((ROOT / f).is_file() for f in deps), name
        assert "hebb_utils/__init__.py" in deps and "hebb_utils/report/tables.py" in deps, name  # write_results


def test_a_module_depends_on_what_it_imports_and_its_packages():
    deps = import_graph.file_dependencies(ROOT / "hebb_utils" / "report" / "__main__.py")
    assert deps[:2] == ["hebb_utils/__init__.py", "hebb_utils/checks.py"]
    # the README's generator: its sections, the metrics' descriptions (beside the metrics), the seeds'
    # intervals and notebook 06's goals; no training code, no data access
    assert set(deps) == {
        "hebb_utils/__init__.py", "hebb_utils/checks.py", "hebb_utils/io.py", "hebb_utils/pins.py",
        "hebb_utils/linalg.py", "hebb_utils/experiments/__init__.py", "hebb_utils/experiments/topography_goals.py",
        "hebb_utils/measure/__init__.py", "hebb_utils/measure/describe.py", "hebb_utils/measure/metrics.py",
        "hebb_utils/measure/recovery.py", "hebb_utils/measure/seeds.py", "hebb_utils/report/__init__.py",
        "hebb_utils/report/__main__.py", "hebb_utils/report/markdown.py", "hebb_utils/report/tables.py",
        *(f"hebb_utils/report/sections/{n}.py" for n in ("__init__", "activations", "dictionaries", "foundations",
                                                         "pca", "softhebb", "topography"))}
