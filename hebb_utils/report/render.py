"""How an executed notebook is rendered to HTML: one parameters cell, conclusions without their code.

Used by `jupyter nbconvert --config notebooks/nbconvert/config.py` (the Makefile's NBCONVERT), not
imported by the package (it needs nbconvert, which the core does not).

papermill leaves two parameter cells in an executed notebook: the notebook's own (tagged
`parameters`, the defaults) and the one it injects after it (`injected-parameters`, the values the
Makefile passed). A reader should see one cell with the values the run used: MergeParameters writes
each injected value into the defaults cell, saying what the default was, and drops the injected cell.
The "What this shows" cells, tagged `hide-input`, lose their code through nbconvert's own
TagRemovePreprocessor (configured beside this one).
"""
from __future__ import annotations

import ast

from nbconvert.preprocessors import Preprocessor

__all__ = ["MergeParameters", "merge_parameters"]


def _assignments(source: str) -> dict[str, ast.Assign]:
    """name -> its top-level `name = value` statement."""
    return {node.targets[0].id: node for node in ast.parse(source).body
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)}


def merge_parameters(defaults: str, injected: str) -> str:
    """The defaults cell's source with each injected value in place of its default.

    A one-line assignment keeps its comment and gains '(default: X, set by make)'; a name the defaults
    cell does not assign is appended, as papermill would have run it."""
    lines = defaults.split("\n")
    values = {name: ast.get_source_segment(injected, node.value) for name, node in _assignments(injected).items()}
    for name, node in sorted(_assignments(defaults).items(), key=lambda item: -item[1].lineno):  # bottom up: line numbers stay valid
        if name not in values:
            continue
        old = ast.get_source_segment(defaults, node.value)
        note = f"(default: {old}, set by make)" if "\n" not in old else "(set by make)"
        first, last = node.lineno - 1, node.end_lineno - 1
        head, tail = lines[first][:node.value.col_offset], lines[last][node.value.end_col_offset:]
        comment = f"{tail.rstrip()} {note}" if "#" in tail else f"  # {note}"
        lines[first:last + 1] = [f"{head}{values[name]}{comment}"]
    extra = [f"{name} = {value}  # (set by make)" for name, value in values.items() if name not in _assignments(defaults)]
    return "\n".join(lines + extra)


class MergeParameters(Preprocessor):
    """One parameters cell in the render: the defaults cell with papermill's injected values merged in."""

    def preprocess(self, nb, resources):
        tagged = lambda tag: [i for i, c in enumerate(nb.cells) if tag in c.get("metadata", {}).get("tags", [])]  # noqa: E731
        params, injected = tagged("parameters"), tagged("injected-parameters")
        if params and injected:
            cell, extra = nb.cells[params[0]], nb.cells[injected[0]]
            cell.source = merge_parameters(cell.source, extra.source)
            del nb.cells[injected[0]]
        return nb, resources
