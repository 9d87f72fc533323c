"""The reproduction check: do the numbers of this run match the ones committed in git?

    python -m hebb_utils.reproduce --results results      (`make check`; `make reproduce` ends with it)

For every metric of every `results/0*.json`, the new value is compared with the reference (the
same file at git HEAD, or `--reference DIR`):

- a metric with per-seed values (the SoftHebb runs) is reproduced when the two means differ by
  less than the 95% interval of a difference of two means with the reference's seed spread
  (`seeds.difference_tolerance`);
- a metric of a deterministic run (one value, no seeds) must be identical; a float may differ in
  its last digits (relative 1e-6) only across machines, whose BLAS round differently;
- integers, booleans and strings must be equal.
- wall-clock times (`*seconds` keys and what they hold) are not compared;
- checksums (`*_sha256`) are shown for information: identical on the machine that made the
  reference, different on another CPU (its float32 round-off differs); they do not fail the check.

It prints one verdict line per metric and exits with status 1 if any metric is outside its
tolerance, so `make reproduce` fails loudly rather than reporting numbers it did not reproduce.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..measure.seeds import difference_tolerance

__all__ = ["Comparison", "flatten_results", "compare_results", "reference_from_git", "verdict_table", "main"]

FLOAT_RTOL = 1e-6  # deterministic floats across machines: float32 round-off of another BLAS


@dataclass
class Comparison:
    notebook: str
    metric: str
    reference: object
    new: object
    tolerance: float | None  # None: exact equality required
    verdict: str  # "identical" | "reproduced" | "OUTSIDE tolerance" | "missing" | "differs (info)"

    @property
    def failed(self) -> bool:
        return self.verdict in ("OUTSIDE tolerance", "missing")


def flatten_results(doc: dict) -> dict[str, dict]:
    """metric name -> {"value", "std", "n"} from one notebook's JSON (`write_results` layout).

    Seeded runs (results.runs[name] with "mean", "std", "n_by_metric") give their means;
    everything else gives its scalar values, nested keys joined with " / ".
    """
    out: dict[str, dict] = {}
    results = doc.get("results", {})
    runs = results.get("runs", {})
    for run, entry in runs.items():
        if isinstance(entry, dict) and "mean" in entry:
            for metric, value in entry["mean"].items():
                out[f"{run} / {metric}"] = {"value": value, "std": entry["std"].get(metric, 0.0),
                                            "n": entry["n_by_metric"].get(metric, 1)}
        else:
            _scalars(entry, f"{run} / ", out)
    _scalars({k: v for k, v in results.items() if k != "runs"}, "", out)
    return out


def _scalars(obj, prefix: str, out: dict) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k != "seeds":
                _scalars(v, f"{prefix}{k} / " if isinstance(v, dict) else f"{prefix}{k}", out)
    elif isinstance(obj, (int, float, str, bool)) or obj is None:
        out[prefix.rstrip(" /")] = {"value": obj, "std": None, "n": 1}


def _is_timing(metric: str) -> bool:
    # wall-clock times are reported, not reproduced: a `*seconds` key, or any entry under one
    return any(part.endswith("seconds") for part in metric.split(" / "))


def _compare_one(notebook: str, metric: str, ref: dict, new: dict | None) -> Comparison:
    if new is None:
        return Comparison(notebook, metric, ref["value"], None, None, "missing")
    a, b = ref["value"], new["value"]
    if metric.endswith("sha256"):
        return Comparison(notebook, metric, a, b, None, "identical" if a == b else "differs (info)")
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    if not numeric or (isinstance(a, int) and isinstance(b, int)):
        return Comparison(notebook, metric, a, b, None, "identical" if a == b else "OUTSIDE tolerance")
    if a == b or (math.isnan(a) and math.isnan(b)):
        return Comparison(notebook, metric, a, b, 0.0, "identical")
    if ref["std"] is not None and ref["n"] >= 2:
        tol = difference_tolerance(ref["std"], ref["n"], new.get("n") or ref["n"])
    else:
        tol = FLOAT_RTOL * max(abs(a), abs(b))
    return Comparison(notebook, metric, a, b, tol, "reproduced" if abs(a - b) <= tol else "OUTSIDE tolerance")


def compare_results(reference: dict, new: dict, notebook: str = "") -> list[Comparison]:
    """Compare two JSON documents of one notebook, metric by metric (the reference's metrics)."""
    ref_flat, new_flat = flatten_results(reference), flatten_results(new)
    return [_compare_one(notebook, m, r, new_flat.get(m)) for m, r in ref_flat.items() if not _is_timing(m)]


def reference_from_git(path: Path, rev: str = "HEAD") -> dict | None:
    """The committed version of `path` (None when git or the file at `rev` is not there)."""
    path = Path(path).resolve()
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=path.parent, capture_output=True,
                             text=True, check=True).stdout.strip()
        text = subprocess.run(["git", "show", f"{rev}:{path.relative_to(top).as_posix()}"], cwd=top,
                              capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError, ValueError):
        return None
    return json.loads(text)


def _reference(path: Path, folder: str | None, rev: str) -> dict | None:
    """The reference of results file `path`: the same name in `folder`, else the file at git `rev`."""
    if folder is None:
        return reference_from_git(path, rev)
    ref = Path(folder) / path.name
    return json.loads(ref.read_text()) if ref.exists() else None


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, str) and len(v) > 16:
        return v[:12] + "..."
    return str(v)


def verdict_table(comparisons: list[Comparison]) -> str:
    header = ("notebook", "metric", "reference", "this run", "tolerance", "verdict")
    rows = [(c.notebook, c.metric, _fmt(c.reference), _fmt(c.new),
             "exact" if c.tolerance in (None, 0.0) else f"{c.tolerance:.2g}", c.verdict) for c in comparisons]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default="results", help="folder with this run's 0*.json")
    p.add_argument("--reference", default=None,
                   help="folder with the reference JSON files (default: the same files at git HEAD)")
    p.add_argument("--rev", default="HEAD", help="git revision of the reference (default HEAD)")
    a = p.parse_args(argv)
    files = sorted(Path(a.results).glob("0*.json"))
    if not files:
        print(f"check: no results in {a.results}/ (run `make reproduce`)", file=sys.stderr)
        return 1
    comparisons, unchecked = [], []
    for path in files:
        ref = _reference(path, a.reference, a.rev)
        if ref is None:
            unchecked.append(path.name)
            continue
        comparisons += compare_results(ref, json.loads(path.read_text()), path.stem)
    print(verdict_table(comparisons))
    counts = {v: sum(c.verdict == v for c in comparisons) for v in
              ("identical", "reproduced", "differs (info)", "OUTSIDE tolerance", "missing")}
    print("\n" + ", ".join(f"{n} {v}" for v, n in counts.items() if n) + f" ({len(comparisons)} metrics)")
    if unchecked:
        print(f"no committed reference for: {', '.join(unchecked)} (not in git at {a.rev}?)")
    failed = [c for c in comparisons if c.failed]
    print("VERDICT: " + ("every metric reproduced" if not failed and not unchecked else
                         f"{len(failed)} metric(s) outside tolerance" if failed else "some results had no reference"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
