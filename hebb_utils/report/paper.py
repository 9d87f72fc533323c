"""Build the paper (paper/paper.typ) into a PDF, offline, with the `typst` package (typst-py).

    python -m hebb_utils.report.paper --out paper/paper.pdf

The paper reads its numbers from results/*.json and its figures from figures/*.png when it is built
(Typst's json() and image(), paths from the build root), so the PDF cannot drift from the results.
The root is the current folder by default (the checkout, where `make paper` runs); `--root` builds
another tree laid out the same way (paper/, results/, figures/), e.g. a copy with other results. Only the fonts embedded in Typst are used
(Libertinus Serif, New Computer Modern, DejaVu Sans Mono), so the PDF does not depend on the
machine's fonts. The PDF is written atomically. Writes nothing else.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..io import atomic_path, check_writable
from .sections import dictionaries

__all__ = ["build", "main", "PAPER"]

PAPER = Path("paper") / "paper.typ"  # relative to the root


def measure_inputs() -> str:
    """What paper/lib.typ needs of measure/ (as JSON, Typst's sys.inputs.measure), so that the paper prints an
    interval as the README does: each metric's bounds (METRIC_BOUNDS, null for an infinite one), the
    permutation p-values with their default shuffles (their intervals start at 1 / (1 + shuffles)) and
    disagreeing_seeds' share (seeds spread over more of a metric's range are printed one by one)."""
    import inspect
    import json
    import math

    from ..measure.seeds import METRIC_BOUNDS, PERMUTATION_P_VALUES, default_shuffles, disagreeing_seeds

    bounds = {k: [v if math.isfinite(v) else None for v in b] for k, b in METRIC_BOUNDS.items()}
    share = inspect.signature(disagreeing_seeds).parameters["share"].default
    return json.dumps({"bounds": bounds, "p_values": list(PERMUTATION_P_VALUES), "shuffles": default_shuffles(),
                       "disagree_share": share})


def build(out: str | Path, root: str | Path = ".", fmt: str = "pdf", ppi: float | None = None) -> Path:
    """Compile <root>/paper/paper.typ with `root` as Typst's root into `out` (atomically). Returns out.

    fmt="png" writes one page per file: `out` must then contain "{p}" (the page number), and the
    pages are written directly (not atomically); this is for looking at the pages, not for the build.
    """
    import typst  # the optional dependency: imported here so that the package imports without it

    root = Path(root).resolve()
    source = root / PAPER
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no paper source under root {root}")
    inputs = {"measure": measure_inputs()}
    # notebook 07's longer samples ladder, when `make ladder` has run (where: its README section says): its own paragraph
    ladder = root / "results" / dictionaries.LONG_RUN / f"{dictionaries.NOTEBOOK}.json"
    if ladder.is_file():
        inputs["ladder"] = ladder.read_text()
    options = dict(root=str(root), ignore_system_fonts=True, format=fmt, sys_inputs=inputs)
    if ppi is not None:
        options["ppi"] = ppi
    out = Path(out)
    if not str(out).strip() or out.is_dir():
        raise ValueError(f"--out {str(out)!r}: expected the path of a PDF file to write, not a folder")
    check_writable(out.parent, "--out", out)  # before Typst runs, naming --out (not the temp file)
    if fmt != "pdf":
        out.parent.mkdir(parents=True, exist_ok=True)
        typst.compile(str(source), output=str(out), **options)
        return out
    try:
        with atomic_path(out, suffix=".pdf") as tmp:
            typst.compile(str(source), output=str(tmp), **options)
    except OSError as e:  # a folder that cannot be made or written (no Typst error: those are not OSError)
        raise ValueError(f"--out {out}: cannot write it ({e.strerror or e})") from None
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hebb_utils.report.paper", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="paper/paper.pdf", help="the PDF to write")
    parser.add_argument("--root", default=".", help="the tree holding paper/, results/ and figures/ (default: the "
                                                     "current folder, the repository checkout as `make paper` runs it)")
    args = parser.parse_args(argv)
    try:
        import typst  # noqa: F401
    except ImportError:
        print("the paper needs the typst package: pip install typst", file=sys.stderr)
        return 2
    try:
        out = build(args.out, args.root)
    except Exception as err:  # a Typst error: one readable message, not a Rust traceback
        print(f"paper: {err}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
