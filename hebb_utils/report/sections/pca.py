"""Notebook 03's part of the README: the PCA family on the LM activations."""
from __future__ import annotations

from ...measure.seeds import format_value
from ..markdown import table

__all__ = ["results", "MACHINE", "FIXED_TABLES"]

MACHINE = True  # a deterministic run: its JSON names the machine of the README's numbers
FIXED_TABLES = 1  # Table 2, whether or not the notebook has run


def results(res: dict, number: int) -> tuple[list[str], int]:
    """One table: the notebook's summary, one measurement per row."""
    r, src = res["results"], res["source"]
    out = [f"Table {number}. **The PCA family on the LM activations** ({src.get('label', '')}):", ""]
    out += table(("measurement", "value"), [(k, format_value(v, 4)) for k, v in r.get("summary", {}).items()])
    return out + [""], number + 1
