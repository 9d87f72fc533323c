"""Results bookkeeping: what each notebook writes, and the README table made from it.

    python -m hebb_utils.report --results results --readme README.md

rewrites the part of README.md between the `results:start` and `results:end` markers from the
JSON files in `results/`, so the table can never drift from the numbers.

Nothing here names a notebook: each notebook's part of the README is written by its section
(report/sections/, registered in SECTIONS in notebook order), and each metric's column header and
glossary bullet come from its description beside the function that computes it (measure/describe.py).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import time
from pathlib import Path

import torch

from ..io import atomic_path, atomic_write_json, portable
from ..measure.seeds import contrast, cut_p_values, format_mean_ci
from ..pins import pin_status
from .markdown import MAX_COLUMNS, glossary, seed_count
from .sections import SECTIONS

__all__ = ["run_info", "write_results", "results_tables", "headline", "update_readme", "format_mean_ci", "seed_table", "contrast",
           "MAX_COLUMNS"]


def run_info(device: torch.device | str | None = None) -> dict:
    """Where and with what a result was computed (so every number names its machine).

    Includes what decides the float round-off on a CPU: the threads, the BLAS and its pinned
    branch (MKL_CBWR), the instruction set PyTorch's kernels use, and every pin of pins.PINS.
    """
    build = torch.__config__.show()
    blas = re.search(r"BLAS_INFO=(\w+)", build)
    mkl = re.search(r"Math Kernel Library Version ([\w.]+)", build)
    info = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cpu": _cpu_name(),
        "cpu_vendor": _cpuinfo("vendor_id") or platform.processor() or "unknown",
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "blas": (blas.group(1) if blas else "unknown") + (f" {mkl.group(1)}" if mkl else ""),
        "mkl_cbwr": os.environ.get("MKL_CBWR", "unset (MKL picks the CPU's widest branch)"),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "openblas": _openblas_kernels(),
        "float_pins": pin_status(),
        "device": str(device) if device is not None else "cpu",
    }
    if device is not None and torch.device(device).type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(torch.device(device))
    return info


def _cpuinfo(field: str) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":", 1)[0].strip() == field:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _cpu_name() -> str:
    return _cpuinfo("model name") or platform.processor() or "unknown"


def _openblas_kernels() -> str:
    """The kernels numpy's OpenBLAS runs (its `architecture`: Haswell when pinned, SkylakeX or Zen otherwise)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # scikit-learn's dependency: absent only in a bare torch + numpy install
        return "unknown (threadpoolctl not installed)"
    kernels = sorted({i.get("architecture", "?") for i in threadpool_info() if i.get("internal_api") == "openblas"})
    return ", ".join(kernels) or "none loaded"


def write_results(path, name: str, config: dict, results: dict, source: dict | None = None, device=None) -> Path:
    """One notebook's numbers with its full config, data source / model and machine, atomically."""
    return atomic_write_json(path, portable({"notebook": name, "config": config, "source": source or {},
                                             "run": run_info(device), "results": results}))


def seed_table(runs: dict, columns: list[str], digits: int = 3):
    """A pandas table, one row per run: 'mean [95% interval]' per metric and the number of seeds. Columns
    are headed by each metric's described label and arrow ('MMCS ↑'; the key itself if undescribed)."""
    import pandas as pd

    from ..measure.describe import METRICS

    table = pd.DataFrame({run: {c: format_mean_ci(entry, c, digits) for c in columns} for run, entry in runs.items()}).T
    table.columns = [METRICS[c].header if c in METRICS else c for c in columns]
    table["seeds"] = [seed_count(entry) for entry in runs.values()]
    return table


def _load(results_dir: Path, name: str):
    p = results_dir / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None


def _loaded(results_dir) -> dict:
    """Notebook name -> its results JSON, for every notebook of SECTIONS whose JSON is in results_dir; a
    section's LONG_RUN folder (a longer run of its notebook outside `make reproduce`, e.g. `make ladder`'s
    results/ladder/) is attached as res["long_run"] when its JSON is there."""
    results_dir = Path(results_dir)
    # permutation p-values' intervals start at 1 / (1 + shuffles), also in results written before
    # summarise_seeds cut them there (measure/seeds.py); the JSON on disk is not changed
    loaded = {name: cut_p_values(res) for name in SECTIONS if (res := _load(results_dir, name))}
    for name, res in loaded.items():
        folder = getattr(SECTIONS[name], "LONG_RUN", None)
        if folder and (long_run := _load(results_dir / folder, name)):
            res["long_run"] = cut_p_values(long_run)
    return loaded


def _sections() -> list:
    """Each section module once, in notebook order (one module may write several notebooks)."""
    out = []
    for section in SECTIONS.values():
        if not any(section is s for s in out):
            out.append(section)
    return out


def _hooks(name: str):
    """The sections' optional hook `name` (see report/sections/__init__.py), in notebook order."""
    return [getattr(s, name) for s in _sections() if hasattr(s, name)]


def results_tables(results_dir) -> str:
    """The README's detailed results, as Markdown, from the notebooks' JSON files (those present): each
    notebook's part written by its section (report/sections/, in SECTIONS' order)."""
    loaded = _loaded(results_dir)
    out = ["Each number of a stochastic run is the mean over seeds with its 95% interval below it: the Student t "
           "interval of the mean, cut at the range the quantity can take (a share stays in [0, 1], a correlation in "
           "[-1, 1]; `measure/seeds.py`, METRIC_BOUNDS). Cutting never excludes the true mean, so the coverage stays "
           "the t interval's; a percentile bootstrap would also stay inside the bounds, but with 3 seeds it is the "
           "seeds' range and covers the mean only 75% of the time. The per-seed values are in the JSON under "
           "`seeds`. Deterministic runs (foundations, the PCA family) are single numbers.", "",
           "<details><summary><b>What the columns mean</b></summary>", "", *(f"- {g}" for g in glossary()), "",
           "</details>", ""]
    for figures in _hooks("figures"):
        out += figures(loaded)
    number = 1  # the next table's number
    for name, section in SECTIONS.items():
        if name in loaded:
            lines, number = section.results(loaded[name], number)
            out += lines
        else:
            number += getattr(section, "FIXED_TABLES", 0)
    for findings in _hooks("findings"):
        out += findings(loaded)
    run = next((loaded[name]["run"] for name, section in SECTIONS.items()
                if name in loaded and getattr(section, "MACHINE", False)), None)
    if run:
        out.append(_machine(run))
    return "\n".join(out)


def _machine(run: dict) -> str:
    pins = run.get("float_pins")  # results written before the pins were recorded have none
    pinned = "" if pins is None else (", every float path pinned (`hebb_utils/pins.py`)" if pins.get("all_pinned")
                                      else ", float paths NOT all pinned")
    vendor = f"{run['cpu_vendor']} " if run.get("cpu_vendor") else ""
    openblas = f", OpenBLAS {run['openblas']}" if run.get("openblas") else ""
    return (f"_Measured on {run['machine']} ({vendor}{run.get('cpu', 'unknown CPU')}), {run['cpu_count']} CPU cores, "
            f"{run['torch_threads']} torch threads, torch {run['torch']}, BLAS {run.get('blas', '?')} "
            f"(MKL_CBWR={run.get('mkl_cbwr', '?')}){openblas}{pinned}, {run['date']}._")


HEADLINE_FIGURE = "figures/lm_map_crop.png"  # the annealed (topographic) map of words, its busiest window


def headline(results_dir) -> str:
    """The README's first screen: the headline figure and the findings, each with its numbers, from the
    JSON files (a finding whose notebook has not run is left out), in the order of their rank among
    the sections' headline findings."""
    loaded = _loaded(results_dir)
    ranked = [finding for make in _hooks("headline") for finding in make(loaded)]
    findings = [text for _, text in sorted(ranked, key=lambda finding: finding[0])]  # stable: a section's order kept
    notes = "".join(note(loaded) for note in _hooks("headline_note"))
    # shown at its own width (notebook 06 draws it <= 900 px with >= 10 px text), so it reads as drawn
    out = [f'<img src="{HEADLINE_FIGURE}" alt="The busiest window of the annealed 2D neuron map of words">',
           "", f"_The annealed map of words (finding 1), its busiest window: each neuron named by the tokens it wins "
               f"most (a leading · is a space).{notes}_", ""]
    out += [f"{i}. {f}" for i, f in enumerate(findings, 1)]
    return "\n".join(out)


BLOCKS = {"headline": headline, "results": results_tables}  # README marker name -> what fills it


def update_readme(results_dir, readme) -> None:
    """Rewrite every generated block of the README (between <!-- NAME:start --> and <!-- NAME:end -->)."""
    readme = Path(readme)
    text = readme.read_text()
    for name, make in BLOCKS.items():
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        if start not in text or end not in text:
            raise ValueError(f"{readme} has no {start} ... {end} markers to fill")
        block = make(results_dir)
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: f"{start}\n{block}\n{end}", text, flags=re.S)
    with atomic_path(readme) as tmp:
        tmp.write_text(text)
    os.utime(readme)  # make sees it as up to date even when the text did not change


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default="results")
    p.add_argument("--readme", default="README.md")
    a = p.parse_args(argv)
    update_readme(a.results, a.readme)
    print(f"updated {a.readme} from {a.results}/*.json")


if __name__ == "__main__":
    main()
