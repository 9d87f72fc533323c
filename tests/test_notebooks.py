"""Notebook sources: committed without outputs, one cell tagged `parameters`, run by the Makefile."""
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert [p.stem[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06"]


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
