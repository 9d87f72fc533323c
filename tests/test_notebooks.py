"""Notebook sources: committed without outputs, one cell tagged `parameters`, run by the Makefile."""
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert [p.stem[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_source_is_clean_and_parameterised(path):
    cells = json.loads(path.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), f"{path.name} has outputs"
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: expected exactly one cell tagged 'parameters'"
    makefile = (ROOT / "Makefile").read_text()
    assert f"run_notebook,{path.stem}," in makefile, f"{path.name} is not run by the Makefile"
    # every parameter the Makefile passes must exist in the parameters cell (papermill would
    # only warn and inject it, and the notebook would silently ignore it)
    assignments = [line.split("=")[0] for line in "".join(tagged[0]["source"]).splitlines()
                   if "=" in line and not line.lstrip().startswith("#")]
    names = {name.strip() for lhs in assignments for name in lhs.split(",")}  # "rows, cols = 15, 30"
    for line in makefile.splitlines():
        if f"run_notebook,{path.stem}," in line:
            passed = [w for i, w in enumerate(line.split()) if i and line.split()[i - 1] == "-p"]
            missing = [p for p in passed if p not in names]
            assert not missing, f"the Makefile passes {missing} to {path.name}, which has no such parameter"


def _code(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_define_no_function(path):
    """A notebook runs the package and tells the story: its functions (fits, measures, formatting)
    live in hebb_utils (experiments/, measure/), where they are tested; no def, lambda or class."""
    import ast

    code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in _code(path).split("\n"))
    defined = [n for n in ast.walk(ast.parse(code))
               if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef))]
    assert not defined, [getattr(n, "name", "lambda") for n in defined]


def test_notebook_06_runs_the_package_and_tells_the_story():
    """Its experiment (each data set's measurements, the sweep) is hebb_utils/experiments/topography.py's
    and its maps the dictionary registry's (dictionaries/registry.py)."""
    code = _code(ROOT / "notebooks" / "06_topography.ipynb")
    assert "hebb_utils.experiments.topography" in code and "hebb_utils.dictionaries.registry" in code


def _make_database() -> dict[str, list[str]]:
    """target -> prerequisites, as make reads the Makefile (`make -p`, nothing run)."""
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = subprocess.run(["make", "--no-print-directory", "-pq", "help"], cwd=ROOT, capture_output=True, text=True)
    assert "import_graph.py gave no hebb_utils files" not in out.stderr, out.stderr
    rules = {}
    for line in out.stdout.splitlines():
        if ":" in line and not line.startswith(("#", "\t", " ")) and "=" not in line.split(":", 1)[0]:
            target, prereqs = line.split(":", 1)
            rules.setdefault(target.strip(), prereqs.replace("|", " ").split())
    return rules


def test_makefile_prerequisites_are_the_derived_imports():
    """Each notebook's target depends on the notebook, the HTML template, and exactly the hebb_utils files
    tools/import_graph.py derives from its imports (no hand-written list to forget a file in)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "tools" / "import_graph.py")
    import_graph = importlib.util.module_from_spec(spec)
    sys.modules["import_graph"] = import_graph
    spec.loader.exec_module(import_graph)
    pkg = import_graph.load_package(ROOT)
    rules = _make_database()
    targets = {"01_extract_activations": "results/activations/lm/meta.json"}
    template = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "notebooks" / "nbconvert" / "offline").iterdir())
    for path in NOTEBOOKS:
        target = targets.get(path.stem, f"results/{path.stem}.json")
        prereqs = rules[target]
        derived = import_graph.file_dependencies(path, pkg)
        # the renderer (nbconvert's preprocessor for the HTML) comes with the template, for every notebook
        renderer = {"hebb_utils/report/render.py", "notebooks/nbconvert/config.py"}
        assert sorted(p for p in prereqs if p.startswith("hebb_utils/") and p not in renderer) == derived, path.stem
        assert f"notebooks/{path.name}" in prereqs and set(template) | renderer <= set(prereqs), path.stem
    assert "hebb_utils/report/lm_map.py" in rules["results/05_lm_softhebb.json"]
    assert "hebb_utils/report/tables.py" in rules["README.md"]
