"""Results bookkeeping: what each notebook writes, and the README table made from it.

    python -m hebb_utils.report --results results --readme README.md

rewrites the part of README.md between the `results:start` and `results:end` markers from the
JSON files in `results/`, so the table can never drift from the numbers.
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

from .io import atomic_path, atomic_write_json

__all__ = ["run_info", "write_results", "results_tables", "update_readme"]


def run_info(device: torch.device | str | None = None) -> dict:
    """Where and with what a result was computed (so every number names its machine)."""
    info = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device) if device is not None else "cpu",
    }
    if device is not None and torch.device(device).type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(torch.device(device))
    return info


def write_results(path, name: str, config: dict, results: dict, source: dict | None = None, device=None) -> Path:
    """One notebook's numbers with its full config, data source / model and machine, atomically."""
    return atomic_write_json(path, {"notebook": name, "config": config, "source": source or {},
                                    "run": run_info(device), "results": results})


def _fmt(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) >= 1e4 else f"{v:.{digits}f}"
    return str(v)


def results_tables(results_dir) -> str:
    """Markdown tables from the notebooks' JSON files (those present)."""
    results_dir = Path(results_dir)
    out = []

    def load(name):
        p = results_dir / f"{name}.json"
        return json.loads(p.read_text()) if p.exists() else None

    found = load("02_foundations")
    if found:
        r = found["results"]
        out += ["**Foundations** (synthetic data, exact reference from `torch.linalg.eigh`)", "",
                "| rule | result |", "|---|---|"]
        out += [f"| {k} | {_fmt(v, 4)} |" for k, v in r.items() if not isinstance(v, (dict, list))]
        out.append("")

    pca = load("03_pca_family")
    if pca:
        r, src = pca["results"], pca["source"]
        out += [f"**PCA family on LM activations** ({src.get('label', '')})", "",
                "| measurement | value |", "|---|---|"]
        for k, v in r.get("summary", {}).items():
            out.append(f"| {k} | {_fmt(v, 4)} |")
        out.append("")

    for name, title in (("04_cifar_softhebb", "CIFAR-10 SoftHebb, 15 x 30 grid"),
                        ("05_lm_softhebb", "LM-token SoftHebb, 30 x 60 grid")):
        res = load(name)
        if not res:
            continue
        rows = res["results"]["runs"]
        cols = [c for c in res["results"]["columns"]]
        src = res["source"].get("label", "")
        out += [f"**{title}** ({src})", "", "| run | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for run, vals in rows.items():
            out.append(f"| {run} | " + " | ".join(_fmt(vals.get(c)) for c in cols) + " |")
        out.append("")
    run = next((x["run"] for x in (found, pca) if x), None)
    if run:
        out.append(f"_Measured on {run['machine']} with {run['cpu_count']} CPU cores, torch {run['torch']}, {run['date']}._")
    return "\n".join(out)


def update_readme(results_dir, readme) -> None:
    readme = Path(readme)
    text = readme.read_text()
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    if start not in text or end not in text:
        raise ValueError(f"{readme} has no {start} ... {end} markers to fill")
    table = results_tables(results_dir)
    new = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: f"{start}\n{table}\n{end}", text, flags=re.S)
    with atomic_path(readme) as tmp:
        tmp.write_text(new)
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
