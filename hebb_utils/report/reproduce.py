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

A seeded metric is one of a seed summary (`summarise_seeds`), wherever it sits in the JSON. Two
kinds of number are shown but not judged ("unstable (info)"): one a notebook marks as coming from an
optimiser stopped at its iteration cap (results["unconverged"]: a stopped optimiser amplifies the
last bits of its input, so no tolerance honest for a converged result covers it), one computed
from all the seeds at once, and one from a single seed of a stochastic run (neither has a spread
over seeds to test it against).

Wall-clock times (`*seconds`) are not compared; checksums (`*_sha256`) are shown for information.
The table gives each difference in units of its interval: the seeded metrics' 95% interval of a
difference of two means, or the deterministic tolerance. The exit status is 0 when every metric is
identical, consistent or unstable and every notebook has results on both sides; 1 when any metric is
discrepant or missing, or a notebook's results are on one side only; 2 when the input cannot be
judged (no results, no reference, a file that is not a results JSON: one line says which and why).
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

__all__ = ["Comparison", "CheckError", "flatten_results", "unconverged", "compare_results", "apply_holm", "holm",
           "welch_p", "tolerance_of", "tolerance_spread", "read_results_json", "reference_from_git", "committed_names", "verdict_table",
           "main", "TOLERANCES", "UNCONVERGED_KEY"]

UNCONVERGED_KEY = "unconverged"  # results[UNCONVERGED_KEY] = {metric: why}: stopped at an iteration cap
FAMILY_ALPHA = 0.05  # Holm: the chance of any false "discrepant" among the seeded metrics

# Deterministic floats: (pattern on "notebook / metric", relative tol, absolute tol, why). The first match wins.
# Each reason gives what was measured on another float path: the project's Intel Xeon unpinned (MKL's
# AVX-512 branch, ATen AVX512, OpenBLAS SkylakeX) against the pinned references (`check --spread`), and
# earlier an AMD EPYC against an Intel Xeon. With the pins, Intel and AMD give the same bits: these
# tolerances are for the paths the pins do not reach (another BLAS, ARM, a GPU).
TOLERANCES = [
    (r"probe_\w*acc", 0.0, 2e-3,
     "a converged linear probe (L-BFGS to tol 1e-4, float32) stops at a slightly different point on another float "
     "path: measured unpinned, the raw-pixel probe's test accuracy moved by 3e-4 (3 of 10,000 images) and its "
     "train accuracy by 1.05e-3 (21 of 20,000); 2e-3 is about twice the largest"),
    (r"ICA|kurtosis", 1e-3, 1e-6,
     "Hebbian ICA runs thousands of non-linear float32 steps after a whitening: measured, its mean excess kurtosis "
     "moved by 7.6e-6 relative unpinned and by 3e-5 from an AMD EPYC to an Intel Xeon; 1e-3 is 33x the largest "
     "(FastICA, which stops at its iteration cap here, is marked unconverged and not judged)"),
    (r"^0[23]_", 1e-4, 1e-6,
     "float32 Hebbian rules (Hebb with decay, Oja, Sanger, the recurrent circuit) over a few thousand steps against "
     "float64 eigenvectors: measured, at most 1.4e-6 relative unpinned and 2e-6 from an AMD EPYC to an Intel Xeon; "
     "1e-4 is 50x the largest (these contracting rules carry a difference at most linearly in the steps)"),
    (r"", 1e-6, 0.0, "any other float: the last digits of another BLAS (no deterministic float of the current "
                     "notebooks falls here: the seeded metrics are tested over seeds, the rest is marked not judged)"),
]


@dataclass
class Comparison:
    notebook: str
    metric: str
    reference: object
    new: object
    tolerance: float | None  # the interval the difference is measured in (None: exact equality required)
    verdict: str  # "identical" | "consistent" | "DISCREPANT" | "missing" | "differs (info)" | "unstable (info)"
    p_value: float | None = None  # the seeded metrics' Welch test, before Holm's correction
    why: str = ""  # for "unstable (info)": why the value is not judged
    seeded: bool = False  # a mean over seeds (judged by Welch and Holm when not identical)

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
    """metric name -> {"value", "std", "n", "seeded"} from one notebook's JSON (`write_results` layout).

    A seed summary (`summarise_seeds`: a dict with "mean", "std" and "n_by_metric") is recognised
    wherever it sits (notebooks 04-06 keep theirs in results.runs[name], 07 one level deeper, in
    results.runs[data][method]); each of its metrics is one seeded metric named by its path, judged
    by Welch and Holm. A metric in a summary's mean without a per-seed count (one number computed
    from all the seeds, e.g. the MCC between two seeds' dictionaries) has no spread to test against:
    it is marked "derived"; a summary of a single seed, "single". Everything else gives its scalar values, nested keys joined with " / ";
    the top level "runs" key is left out of the names (what the verdicts have always called them).
    """
    out: dict[str, dict] = {}
    results = doc.get("results", {})
    runs = results.get("runs", {})
    _walk(runs if isinstance(runs, dict) else {}, "", out)
    _walk({k: v for k, v in results.items() if k not in ("runs", UNCONVERGED_KEY)}, "", out)
    return out


def _is_summary(obj) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("mean"), dict) and isinstance(obj.get("std"), dict) \
        and isinstance(obj.get("n_by_metric"), dict)


def _walk(obj, prefix: str, out: dict) -> None:
    if _is_summary(obj):
        for metric, value in obj["mean"].items():
            counted = metric in obj["n_by_metric"]
            n = obj["n_by_metric"][metric] if counted else 1
            out[f"{prefix}{metric}"] = {"value": value, "std": obj["std"].get(metric, 0.0) if counted else None,
                                        "n": n, "derived": not counted, "single": counted and n < 2}
    elif isinstance(obj, dict):
        for k, v in obj.items():
            if k != "seeds":
                _walk(v, f"{prefix}{k} / " if isinstance(v, dict) else f"{prefix}{k}", out)
    elif isinstance(obj, (int, float, str, bool)) or obj is None:
        out[prefix.rstrip(" /")] = {"value": obj, "std": None, "n": 1}


def unconverged(doc: dict) -> dict[str, str]:
    """The metrics a notebook marks as coming from an optimiser stopped at its iteration cap
    (results["unconverged"]: {metric name as flatten_results names it: why})."""
    marked = doc.get("results", {}).get(UNCONVERGED_KEY, {})
    return {str(k): str(v) for k, v in marked.items()} if isinstance(marked, dict) else {}


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


def tolerance_spread(comparisons: list[Comparison]) -> list[dict]:
    """What the deterministic tolerances were measured with: for each TOLERANCES class, the deterministic
    floats of `comparisons` it covers, their largest relative and absolute difference, and how many
    exceed the class's tolerance. Run the notebooks on another float path (e.g. with the pins unset)
    into a folder and `check --results FOLDER --spread`."""
    rows = []
    for pattern, rtol, atol, _ in TOLERANCES:
        mine = [c for c in comparisons if not c.seeded and isinstance(c.new, float) and isinstance(c.reference, float)
                and c.verdict in ("identical", "consistent", "DISCREPANT") and c.tolerance is not None
                and _class_of(c.notebook, c.metric) == pattern]
        diffs = [(abs(c.new - c.reference), abs(c.new - c.reference) / abs(c.reference) if c.reference else math.inf)
                 for c in mine]
        rows.append({"class": pattern or "(any other)", "rtol": rtol, "atol": atol, "metrics": len(mine),
                     "differ": sum(d > 0 for d, _ in diffs), "max_abs": max((d for d, _ in diffs), default=0.0),
                     "max_rel": max((r for d, r in diffs if d > 0), default=0.0),
                     "outside": sum(c.verdict == "DISCREPANT" for c in mine)})
    return rows


def _class_of(notebook: str, metric: str) -> str:
    name = f"{notebook} / {metric}"
    return next(pattern for pattern, *_ in TOLERANCES if re.search(pattern, name))


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


def _compare_one(notebook: str, metric: str, ref: dict, new: dict | None, unstable: str | None = None) -> Comparison:
    if new is None:
        return Comparison(notebook, metric, ref["value"], None, None, "missing")
    a, b = ref["value"], new["value"]
    if metric.endswith("sha256"):
        return Comparison(notebook, metric, a, b, None, "identical" if a == b else "differs (info)")
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    if not numeric or (isinstance(a, int) and isinstance(b, int)):
        return Comparison(notebook, metric, a, b, None, "identical" if a == b else "DISCREPANT")
    seeded = ref["std"] is not None and ref["n"] >= 2
    if a == b or (math.isnan(a) and math.isnan(b)):
        return Comparison(notebook, metric, a, b, 0.0, "identical", seeded=seeded)
    if unstable is not None:  # an optimiser stopped at its cap: its last bits are amplified, no tolerance is honest
        return Comparison(notebook, metric, a, b, None, "unstable (info)", why=unstable)
    if ref.get("single") or new.get("single"):
        return Comparison(notebook, metric, a, b, None, "unstable (info)",
                          why="one seed of a stochastic run: no spread over seeds to test it against (run more seeds)")
    if ref.get("derived") or new.get("derived"):
        return Comparison(notebook, metric, a, b, None, "unstable (info)",
                          why="one number computed from all the seeds' runs: no per-seed spread to test it against")
    if seeded:
        # judged with Holm over the family in compare_all; the tolerance is the units of the table
        tol = difference_tolerance(ref["std"], ref["n"], new.get("n") or ref["n"])
        return Comparison(notebook, metric, a, b, tol, "consistent", p_value=welch_p(ref, new), seeded=True)
    tol, _ = tolerance_of(notebook, metric, a)
    return Comparison(notebook, metric, a, b, tol, "consistent" if abs(a - b) <= tol else "DISCREPANT")


def compare_results(reference: dict, new: dict, notebook: str = "") -> list[Comparison]:
    """Compare two JSON documents of one notebook, metric by metric (the reference's metrics), with
    Holm's correction over this notebook's seeded metrics (main corrects over all notebooks at once).
    A metric that either side marks unconverged (results["unconverged"]) is "unstable (info)" when
    it is not identical: shown, never judged as exact."""
    return apply_holm(_compare_docs(reference, new, notebook))


def _compare_docs(reference: dict, new: dict, notebook: str) -> list[Comparison]:
    """Every metric of the reference against the new run, before Holm's correction."""
    ref_flat, new_flat = flatten_results(reference), flatten_results(new)
    marked = {**unconverged(reference), **unconverged(new)}
    return [_compare_one(notebook, m, r, new_flat.get(m), marked.get(m)) for m, r in ref_flat.items()
            if not _is_timing(m)]


def apply_holm(comparisons: list[Comparison], alpha: float = FAMILY_ALPHA) -> list[Comparison]:
    """Seeded metrics that Holm's procedure rejects become DISCREPANT; the others stay as they are."""
    tested = [c for c in comparisons if c.p_value is not None]
    for c, rejected in zip(tested, holm([c.p_value for c in tested], alpha)):
        c.verdict = "DISCREPANT" if rejected else "consistent"
    return comparisons


class CheckError(ValueError):
    """Input the verdict cannot judge (a missing or unreadable file): one line, and exit status 2."""


def read_results_json(text: str, where: str) -> dict:
    """One notebook's results JSON, parsed strictly: an object with a "results" object, or CheckError naming
    `where` (a file, or a file at a git revision) and the fix."""
    def reject(constant):
        raise ValueError(f"{constant} is not JSON")

    def finite(number: str) -> float:  # 1e999 parses as inf without a word: refuse it as Infinity is
        value = float(number)
        if not math.isfinite(value):
            raise ValueError(f"{number} overflows a float to {value}")
        return value

    try:
        doc = json.loads(text, parse_constant=reject, parse_float=finite)
    except ValueError as e:
        raise CheckError(f"{where} is not valid JSON ({e}): re-run its notebook, or restore it with "
                         "`git checkout -- <file>`") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), dict):
        kind = type(doc).__name__ if not isinstance(doc, dict) else 'an object without a "results" object'
        raise CheckError(f"{where} is {kind}, not a notebook's results (an object with \"results\"): "
                         "re-run its notebook, or restore it with `git checkout -- <file>`")
    _check_summaries(doc["results"], where, "results")
    if not flatten_results(doc):
        raise CheckError(f"{where} holds no metrics (its \"results\" is empty): nothing to compare")
    return doc


def _check_summaries(obj, where: str, path: str) -> None:
    """Every seed summary's counts (n_by_metric: integers >= 1) and spreads (std: finite numbers >= 0),
    or CheckError naming the file and the entry: Welch's test would fail deep inside on a string, and
    judge a negative spread or a count of 0 as if they were seeds."""
    if _is_summary(obj):
        for metric, n in obj["n_by_metric"].items():
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise CheckError(f"{where}: {path} / n_by_metric / {metric} is {n!r}, expected a count of seeds "
                                 "(an integer >= 1): re-run its notebook, or restore it with `git checkout -- <file>`")
        for metric, std in obj["std"].items():
            if metric in obj["n_by_metric"] and (isinstance(std, bool) or not isinstance(std, (int, float))
                                                 or not std >= 0):
                raise CheckError(f"{where}: {path} / std / {metric} is {std!r}, expected a spread over seeds (a "
                                 "number >= 0): re-run its notebook, or restore it with `git checkout -- <file>`")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _check_summaries(v, where, f"{path} / {k}")


def _read_text(path: Path) -> str:
    """The text of a results file, or CheckError naming it when it is not UTF-8 (OSError passes)."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise CheckError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}), so not a results JSON: re-run "
                         "its notebook, or restore it with `git checkout -- <file>`") from None


def reference_from_git(path: Path, rev: str = "HEAD") -> dict | None:
    """The committed version of `path` (None when the file is not in git at `rev`); CheckError when
    `path` is not in a git checkout at all, or the committed file is not a results JSON."""
    path = Path(path).resolve()
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=path.parent, capture_output=True,
                             text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as e:
        raise CheckError(f"{path.parent} is not in a git checkout, so there is no committed reference: pass "
                         "--reference DIR (a folder of reference JSON files)") from e
    name = path.relative_to(top).as_posix()
    try:
        data = subprocess.run(["git", "show", f"{rev}:{name}"], cwd=top, capture_output=True, check=True).stdout
    except subprocess.CalledProcessError:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CheckError(f"{name} at git {rev} is not UTF-8 text ({e.reason} at byte {e.start}), so not a results "
                         "JSON: pass --reference DIR (a folder of reference JSON files)") from None
    return read_results_json(text, f"{name} at git {rev}")


def committed_names(folder: Path, rev: str = "HEAD") -> list[str]:
    """The `0*.json` file names committed in `folder` at git `rev` (what a reference run produced)."""
    folder = Path(folder).resolve()
    try:
        listing = subprocess.run(["git", "ls-tree", "--name-only", rev, "--", "./"], cwd=folder, capture_output=True,
                                 text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError) as e:
        raise CheckError(f"{folder} is not in a git checkout with a revision {rev!r}: pass --reference DIR "
                         "(a folder of reference JSON files), or --rev REV") from e
    return sorted(n for n in listing if re.fullmatch(r"0.*\.json", n))


def _reference(path: Path, folder: str | None, rev: str) -> dict | None:
    """The reference of results file `path`: the same name in `folder`, else the file at git `rev`."""
    if folder is None:
        return reference_from_git(path, rev)
    ref = Path(folder) / path.name
    return read_results_json(_read_text(ref), str(ref)) if ref.exists() else None


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, str) and len(v) > 16:
        return v[:12] + "..."
    return str(v)


def verdict_table(comparisons: list[Comparison]) -> str:
    header = ("notebook", "metric", "reference", "this run", "interval", "difference", "verdict")
    rows = [(c.notebook, c.metric, _fmt(c.reference), _fmt(c.new),
             "not judged" if c.verdict == "unstable (info)" else "exact" if c.tolerance in (None, 0.0)
             else f"{c.tolerance:.2g}",
             "" if c.units in (None, 0.0) else f"{c.units:.2f} x" + (f" (p {c.p_value:.2g})" if c.p_value is not None else ""),
             c.verdict) for c in comparisons]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def _files(results: Path, reference: str | None, rev: str) -> tuple[list[str], list[str]]:
    """(names of this run's 0*.json, names of the reference's 0*.json); CheckError when a side has none."""
    if not results.is_dir():
        raise CheckError(f"--results {results}: no such folder (run `make reproduce`)")
    new = sorted(p.name for p in results.glob("0*.json"))
    if not new:
        raise CheckError(f"--results {results}: no 0*.json results in it (run `make reproduce`)")
    if reference is None:
        ref = committed_names(results, rev)
        where = f"git {rev} ({results}/)"
    else:
        folder = Path(reference)
        if not folder.is_dir():
            raise CheckError(f"--reference {reference}: no such folder (give a folder of reference 0*.json files, "
                             "or leave --reference out to compare with git HEAD)")
        ref = sorted(p.name for p in folder.glob("0*.json"))
        where = f"--reference {reference}"
    if not ref:
        raise CheckError(f"{where}: no reference 0*.json files, so nothing can be compared")
    return new, ref


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default="results", help="folder with this run's 0*.json")
    p.add_argument("--reference", default=None,
                   help="folder with the reference JSON files (default: the same files at git HEAD)")
    p.add_argument("--rev", default="HEAD", help="git revision of the reference (default HEAD)")
    p.add_argument("--spread", action="store_true",
                   help="also print, for each deterministic tolerance, the largest differences measured (tolerance_spread)")
    a = p.parse_args(argv)
    results = Path(a.results)
    try:
        new_names, ref_names = _files(results, a.reference, a.rev)
        comparisons = []
        for name in sorted(set(new_names) & set(ref_names)):
            ref = _reference(results / name, a.reference, a.rev)
            new = read_results_json(_read_text(results / name), str(results / name))
            comparisons += _compare_docs(ref, new, Path(name).stem)
    except CheckError as e:
        print(f"check: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"check: cannot read {e.filename}: {e.strerror}", file=sys.stderr)
        return 2
    apply_holm(comparisons)  # one family: every seeded metric of every notebook
    print(verdict_table(comparisons))
    if a.spread:
        print("\ndeterministic floats by tolerance class (largest differences measured):")
        for r in tolerance_spread(comparisons):
            print(f"  {r['class']:<22} rtol {r['rtol']:.0e} atol {r['atol']:.0e}: {r['metrics']} metrics, {r['differ']} differ, "
                  f"max |diff| {r['max_abs']:.3g}, max relative {r['max_rel']:.3g}, {r['outside']} outside")
    counts = {v: sum(c.verdict == v for c in comparisons) for v in
              ("identical", "consistent", "differs (info)", "unstable (info)", "DISCREPANT", "missing")}
    print("\n" + ", ".join(f"{n} {v}" for v, n in counts.items() if n) + f" ({len(comparisons)} metrics)")
    unstable = [c for c in comparisons if c.verdict == "unstable (info)"]
    for c in unstable:
        print(f"unstable (not judged): {c.notebook} / {c.metric}: {c.why}")
    # a notebook on one side only is a failure: a verdict over fewer notebooks than the run made proves nothing
    only_new, only_ref = sorted(set(new_names) - set(ref_names)), sorted(set(ref_names) - set(new_names))
    problems = ([f"no reference for {', '.join(only_new)}"] if only_new else []) + \
               ([f"this run lacks {', '.join(only_ref)}"] if only_ref else [])
    failed = [c for c in comparisons if c.failed]
    if failed:
        level = f"DISCREPANT: {len(failed)} metric(s) outside what reruns give"
    elif problems:
        level = "INCOMPLETE: " + "; ".join(problems)
    elif counts["consistent"] == 0 and not unstable:
        level = "IDENTICAL: every metric is bit for bit the reference's"
    else:
        level = ("CONSISTENT: every metric identical or within what honest reruns give (Holm-corrected over the "
                 f"seeded metrics, tolerances for deterministic floats); {counts['consistent']} not identical"
                 + (f", {len(unstable)} unstable (not judged)" if unstable else ""))
    if failed and problems:
        level += "; " + "; ".join(problems)
    print("VERDICT: " + level)
    return 1 if failed or problems else 0


if __name__ == "__main__":
    sys.exit(main())
