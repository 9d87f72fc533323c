"""The reproduction check: do the numbers of this run match the ones committed in git?

    python -m hebb_utils.report.reproduce --results results     (`make check`; `make reproduce` ends with it)

Every metric of every `results/0*.json` is compared with the reference (the same file at git HEAD,
or `--reference DIR`) and judged at one of three levels:

- **identical**: the same value (bit for bit for floats). What a rerun on the same machine gives,
  and what another x86-64 CPU gives when every float path is pinned (README, "Reproducibility").
- **consistent**: not identical, but within what honest reruns elsewhere produce:
  - a metric with per-seed values (the SoftHebb runs): Welch's t-test of the two runs' seed means,
    with Holm's correction over all the seeded metrics, so that the chance of calling any one of
    them discrepant when every one reproduces is at most 5% (the family-wise error; a plain 95%
    test per metric fails about 14 of 277 by chance alone);
  - a deterministic float: within the cross-platform tolerance of its algorithm (TOLERANCES below,
    each with its reason);
- **DISCREPANT**: outside those; also integers, booleans and strings that differ, and a metric the
  new run lacks ("missing").

Wall-clock times (`*seconds`) are not compared; checksums (`*_sha256`) are shown for information.
The table gives each difference in units of its interval: the seeded metrics' 95% interval of a
difference of two means, or the deterministic tolerance. The exit status is 0 when every metric is
identical or consistent, 1 when any is discrepant or missing.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..measure.seeds import difference_tolerance

__all__ = ["Comparison", "flatten_results", "compare_results", "apply_holm", "holm", "welch_p", "tolerance_of",
           "reference_from_git", "verdict_table", "main", "TOLERANCES"]

FAMILY_ALPHA = 0.05  # Holm: the chance of any false "discrepant" among the seeded metrics

# Deterministic floats: (pattern on "notebook / metric", relative tol, absolute tol, why). The first match wins.
TOLERANCES = [
    (r"probe_\w*acc", 0.0, 5e-4,
     "a linear probe's accuracy moves in steps of one test sample (1e-4 of CIFAR-10's 10,000); L-BFGS (float32) "
     "on another CPU can flip a few samples at the decision boundary"),
    (r"ICA|kurtosis", 1e-3, 1e-6,
     "Hebbian ICA runs thousands of non-linear float32 steps after a whitening, and FastICA stops its fixed-point "
     "iterations at a tolerance (1e-4): another summation order can change the last iteration"),
    (r"^0[23]_", 1e-4, 1e-6,
     "float32 Hebbian rules (Hebb with decay, Oja, Sanger, the recurrent circuit) over a few thousand steps against "
     "float64 eigenvectors: another CPU rounds each step's sums in another order (float32 eps 6e-8), and these "
     "contracting rules carry the difference at most linearly in the steps"),
    (r"", 1e-6, 0.0, "any other float32 pipeline: the last digits of another BLAS"),
]


@dataclass
class Comparison:
    notebook: str
    metric: str
    reference: object
    new: object
    tolerance: float | None  # the interval the difference is measured in (None: exact equality required)
    verdict: str  # "identical" | "consistent" | "DISCREPANT" | "missing" | "differs (info)"
    p_value: float | None = None  # the seeded metrics' Welch test, before Holm's correction

    @property
    def failed(self) -> bool:
        return self.verdict in ("DISCREPANT", "missing")

    @property
    def units(self) -> float | None:
        """|new - reference| in units of the tolerance interval (None when not numeric)."""
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (self.reference, self.new))
        if not numbers or self.tolerance is None:
            return None
        diff = abs(self.new - self.reference)
        return 0.0 if diff == 0 else (diff / self.tolerance if self.tolerance > 0 else math.inf)
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


def tolerance_of(notebook: str, metric: str, value: float) -> tuple[float, str]:
    """The cross-platform tolerance of a deterministic float, and why (TOLERANCES)."""
    name = f"{notebook} / {metric}"
    for pattern, rtol, atol, why in TOLERANCES:
        if re.search(pattern, name):
            return atol + rtol * abs(value), why
    raise AssertionError("TOLERANCES ends with a catch-all")


def welch_p(ref: dict, new: dict) -> float:
    """Two-sided p-value of Welch's t-test that two runs' seed means are equal (from mean, std, n)."""
    from scipy.stats import t

    m1, s1, n1 = ref["value"], ref["std"] or 0.0, ref["n"]
    m2, s2, n2 = new["value"], new.get("std") or 0.0, new.get("n") or n1
    v1, v2 = s1 * s1 / n1, s2 * s2 / n2
    if v1 + v2 == 0:  # no spread at all: equal means or an unmistakable difference
        return 1.0 if m1 == m2 else 0.0
    df = (v1 + v2) ** 2 / ((v1 * v1 / (n1 - 1) if n1 > 1 else 0) + (v2 * v2 / (n2 - 1) if n2 > 1 else 0))
    return float(2 * t.sf(abs(m1 - m2) / math.sqrt(v1 + v2), df))


def holm(p_values: list[float], alpha: float = FAMILY_ALPHA) -> list[bool]:
    """Holm's step-down procedure: which hypotheses are rejected, the family-wise error kept at alpha."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    for rank, i in enumerate(order):
        if p_values[i] > alpha / (len(p_values) - rank):
            break
        rejected[i] = True
    return rejected


def _compare_one(notebook: str, metric: str, ref: dict, new: dict | None) -> Comparison:
    if new is None:
        return Comparison(notebook, metric, ref["value"], None, None, "missing")
    a, b = ref["value"], new["value"]
    if metric.endswith("sha256"):
        return Comparison(notebook, metric, a, b, None, "identical" if a == b else "differs (info)")
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    if not numeric or (isinstance(a, int) and isinstance(b, int)):
        return Comparison(notebook, metric, a, b, None, "identical" if a == b else "DISCREPANT")
    if a == b or (math.isnan(a) and math.isnan(b)):
        return Comparison(notebook, metric, a, b, 0.0, "identical")
    if ref["std"] is not None and ref["n"] >= 2:
        # judged with Holm over the family in compare_all; the tolerance is the units of the table
        tol = difference_tolerance(ref["std"], ref["n"], new.get("n") or ref["n"])
        return Comparison(notebook, metric, a, b, tol, "consistent", p_value=welch_p(ref, new))
    tol, _ = tolerance_of(notebook, metric, a)
    return Comparison(notebook, metric, a, b, tol, "consistent" if abs(a - b) <= tol else "DISCREPANT")


def compare_results(reference: dict, new: dict, notebook: str = "") -> list[Comparison]:
    """Compare two JSON documents of one notebook, metric by metric (the reference's metrics), with
    Holm's correction over this notebook's seeded metrics (compare_all corrects over all notebooks)."""
    ref_flat, new_flat = flatten_results(reference), flatten_results(new)
    return apply_holm([_compare_one(notebook, m, r, new_flat.get(m)) for m, r in ref_flat.items() if not _is_timing(m)])


def apply_holm(comparisons: list[Comparison], alpha: float = FAMILY_ALPHA) -> list[Comparison]:
    """Seeded metrics that Holm's procedure rejects become DISCREPANT; the others stay as they are."""
    tested = [c for c in comparisons if c.p_value is not None]
    for c, rejected in zip(tested, holm([c.p_value for c in tested], alpha)):
        c.verdict = "DISCREPANT" if rejected else "consistent"
    return comparisons


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
    header = ("notebook", "metric", "reference", "this run", "interval", "difference", "verdict")
    rows = [(c.notebook, c.metric, _fmt(c.reference), _fmt(c.new),
             "exact" if c.tolerance in (None, 0.0) else f"{c.tolerance:.2g}",
             "" if c.units in (None, 0.0) else f"{c.units:.2f} x" + (f" (p {c.p_value:.2g})" if c.p_value is not None else ""),
             c.verdict) for c in comparisons]
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
        ref_flat, new_flat = flatten_results(ref), flatten_results(json.loads(path.read_text()))
        comparisons += [_compare_one(path.stem, m, r, new_flat.get(m)) for m, r in ref_flat.items() if not _is_timing(m)]
    apply_holm(comparisons)  # one family: every seeded metric of every notebook
    print(verdict_table(comparisons))
    counts = {v: sum(c.verdict == v for c in comparisons) for v in
              ("identical", "consistent", "differs (info)", "DISCREPANT", "missing")}
    print("\n" + ", ".join(f"{n} {v}" for v, n in counts.items() if n) + f" ({len(comparisons)} metrics)")
    if unchecked:
        print(f"no committed reference for: {', '.join(unchecked)} (not in git at {a.rev}?)")
    failed = [c for c in comparisons if c.failed]
    level = ("IDENTICAL: every metric is bit for bit the reference's" if not failed and counts["consistent"] == 0
             else "CONSISTENT: every metric identical or within what honest reruns give (Holm-corrected over the "
                  f"seeded metrics, tolerances for deterministic floats); {counts['consistent']} not identical"
             if not failed else f"DISCREPANT: {len(failed)} metric(s) outside what reruns give")
    print("VERDICT: " + (level if not unchecked or failed else level + "; some results had no reference"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
