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

from ..io import atomic_path, atomic_write_json, portable
from ..pins import pin_status

__all__ = ["run_info", "write_results", "results_tables", "update_readme", "format_mean_ci", "seed_table", "contrast",
           "design_entry", "topography_design", "topography_findings", "TOPOGRAPHY_GOALS"]


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
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "blas": (blas.group(1) if blas else "unknown") + (f" {mkl.group(1)}" if mkl else ""),
        "mkl_cbwr": os.environ.get("MKL_CBWR", "unset (MKL picks the CPU's widest branch)"),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "float_pins": pin_status(),
        "device": str(device) if device is not None else "cpu",
    }
    if device is not None and torch.device(device).type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(torch.device(device))
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write_results(path, name: str, config: dict, results: dict, source: dict | None = None, device=None) -> Path:
    """One notebook's numbers with its full config, data source / model and machine, atomically."""
    return atomic_write_json(path, portable({"notebook": name, "config": config, "source": source or {},
                                             "run": run_info(device), "results": results}))


def format_mean_ci(run: dict, metric: str, digits: int = 3) -> str:
    """'0.667 [0.660, 0.674]' (mean [95% interval] over seeds) for a `summarise_seeds` entry, or the
    plain value for a one-off run ({metric: value}); '-' when the run has no such metric."""
    if "mean" in run:
        if metric not in run["mean"]:
            return "-"
        if metric not in run.get("n_by_metric", {}):  # one number for the run, not a per-seed value (a pair's MCC)
            return f"{run['mean'][metric]:.{digits}f}"
        lo, hi = run["ci95"][metric]
        if run["n_by_metric"][metric] == 1:
            return f"{run['mean'][metric]:.{digits}f} (1 seed)"
        return f"{run['mean'][metric]:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
    return _fmt(run.get(metric), digits)


def contrast(run_a: dict, run_b: dict, metric: str) -> str:
    """'lower than', 'higher than' or 'indistinguishable from': run_a's mean of `metric` against
    run_b's, by whether their 95% intervals over seeds are disjoint. For sentences whose claims
    must follow the numbers of the run that wrote them."""
    (lo_a, hi_a), (lo_b, hi_b) = run_a["ci95"][metric], run_b["ci95"][metric]
    if hi_a < lo_b:
        return "lower than"
    if lo_a > hi_b:
        return "higher than"
    return "indistinguishable from"


def seed_table(runs: dict, columns: list[str], digits: int = 3):
    """A pandas table, one row per run: 'mean [95% interval]' per metric and the number of seeds."""
    import pandas as pd

    table = pd.DataFrame({run: {c: format_mean_ci(entry, c, digits) for c in columns} for run, entry in runs.items()}).T
    table["n"] = [_seed_count(entry) for entry in runs.values()]
    return table


def _seed_count(entry: dict) -> str:
    counts = sorted(set(entry.get("n_by_metric", {}).values()))
    if not counts:
        return "1"
    return str(counts[-1]) if len(counts) == 1 else f"{counts[-1]} ({counts[0]} for the probes)"


def _fmt(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) >= 1e4 else f"{v:.{digits}f}"
    return str(v)


def _cell(v) -> str:
    """A Markdown table cell: pipes escaped, so GitHub does not split the cell ('|cos|')."""
    return str(v).replace("|", "\\|")


def _row(cells) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _table(header, rows) -> list[str]:
    return [_row(header), "|" + "---|" * len(header), *(_row(r) for r in rows)]


def results_tables(results_dir) -> str:
    """Markdown tables from the notebooks' JSON files (those present)."""
    results_dir = Path(results_dir)
    out = []

    def load(name):
        p = results_dir / f"{name}.json"
        return json.loads(p.read_text()) if p.exists() else None

    out += _figures(load("04_cifar_softhebb"), load("05_lm_softhebb"))
    acts = load("01_extract_activations")
    if acts:
        r, model = acts["results"], acts["source"]["model"]
        out += [f"**Activations** ({acts['source'].get('label', model['name'])}): {r['n_tokens']:,} tokens x {r['d_model']} from {r['n_stories']} "
                f"TinyStories stories, after block {r['layer']}; SHA-256 `{r['acts_sha256'][:16]}...`", ""]

    found = load("02_foundations")
    if found:
        r = found["results"]
        out += ["**Foundations** (synthetic data, exact reference from `torch.linalg.eigh`)", ""]
        out += _table(("rule", "result"), [(k, _fmt(v, 4)) for k, v in r.items() if not isinstance(v, (dict, list))])
        out.append("")

    pca = load("03_pca_family")
    if pca:
        r, src = pca["results"], pca["source"]
        out += [f"**PCA family on LM activations** ({src.get('label', '')})", ""]
        out += _table(("measurement", "value"), [(k, _fmt(v, 4)) for k, v in r.get("summary", {}).items()])
        out.append("")

    for name, what in (("04_cifar_softhebb", "CIFAR-10 SoftHebb"), ("05_lm_softhebb", "LM-token SoftHebb")):
        res = load(name)
        if not res:
            continue
        runs, cols, config = res["results"]["runs"], res["results"]["columns"], res["config"]
        n_seeds = len(config.get("seeds", [config.get("seed")]))
        out += [f"**{what}, {config['rows']} x {config['cols']} grid**, mean [95% interval] over {n_seeds} seeds "
                f"({res['source'].get('label', '')})", ""]
        out += _table(("run", *cols, "seeds"),
                      [(run, *(format_mean_ci(entry, c) for c in cols), _seed_count(entry)) for run, entry in runs.items()])
        out.append("")
    topo = load("06_topography")
    if topo:
        res, config = topo["results"], topo["config"]
        runs, design = res["runs"], topography_design(res, config)
        grids = ", ".join(f"{d['title']} {d['grid'][0]} x {d['grid'][1]}" for d in design)
        out += [f"**Topography: MiniSom against SoftHebb with fixed and annealed lateral support** (notebook 06), "
                f"mean [95% interval] over {len(config['seeds'])} seeds; {grids} "
                f"({topo['source']['lm'].get('label', '')}); train_seconds is one epoch on this machine "
                "(MiniSom on LM tokens: one pass over its subsample). Sweep: "
                "[`figures/topography_sweep.png`](figures/topography_sweep.png); trade-off: "
                "[`figures/topography_tradeoff.png`](figures/topography_tradeoff.png); maps: "
                "[`figures/topography_cifar_minisom.png`](figures/topography_cifar_minisom.png), "
                "[`figures/topography_cifar_annealed.png`](figures/topography_cifar_annealed.png).", ""]
        # one table per data set: the baselines, then the annealed run, then the sweep around it (the
        # JSON's keys are sorted, so the order comes from the design)
        for d in design:
            order = [n for n in (d["minisom"], d["fixed"], d["annealed"], *d.get("sweep", [])) if n in runs]
            order += [n for n in runs if n.startswith(f"{d['key']} / ") and n not in order]  # a run the design omits
            rows = [(run, *(format_mean_ci(runs[run], c) for c in d["columns"]), _seed_count(runs[run])) for run in order]
            out += _table(("run", *d["columns"], "seeds"), rows) + [""]
        out += [topography_findings(runs, design), ""]
    out += _dictionaries(load("07_dictionaries"))
    findings = _findings(load("04_cifar_softhebb"), load("05_lm_softhebb"))
    if findings:
        out += ["**What the seeds say** (generated from the JSON: \"lower\" / \"higher\" means the two 95% "
                "intervals do not overlap, \"indistinguishable\" that they do):", "", *findings, ""]
    run = next((x["run"] for x in (acts, found, pca) if x), None)
    if run:
        pins = run.get("float_pins")  # results written before the pins were recorded have none
        pinned = "" if pins is None else (", every float path pinned to AVX2 (`hebb_utils/pins.py`)" if pins.get("all_pinned")
                                          else ", float paths NOT all pinned")
        out.append(f"_Measured on {run['machine']} ({run.get('cpu', 'unknown CPU')}), {run['cpu_count']} CPU cores, "
                   f"{run['torch_threads']} torch threads, torch {run['torch']}, BLAS {run.get('blas', '?')} "
                   f"(MKL_CBWR={run.get('mkl_cbwr', '?')}){pinned}, {run['date']}._")
    return "\n".join(out)


# notebook 07's tables: which metrics each data set is read by, and their names in the README
DICTIONARY_TABLES = {
    "saelens benchmark": ("bench_columns", ("mcc", "f1_score", "precision", "recall", "explained_variance", "sae_l0",
                                            "train_seconds")),
    "topographic": (None, ("topographic_rho", "topographic_null", "mmcs", "recovered_share", "explained_variance",
                           "train_seconds")),
    "real activations": (None, ("explained_variance", "dead_fraction", "token_purity", "topographic_error", "seed_mcc",
                                "train_seconds")),
}


def _dictionaries(res: dict | None) -> list[str]:
    """Notebook 07: one table per data set (mean [95% interval] over seeds) and the goals' verdicts."""
    if not res:
        return []
    runs, config = res["results"]["runs"], res["config"]
    out = [f"**Dictionaries: SoftHebb against SAELens SAEs on known features** (notebook 07), mean [95% interval] "
           f"over {len(config['seeds'])} seeds (the baselines and the real activations: fewer, as the seeds column "
           f"says); real activations: {res['source'].get('lm', {}).get('label', '')}", ""]
    order = ("toy", "saelens benchmark", "topographic", "real activations")  # the notebook's order (JSON sorts keys)
    for name in sorted(runs, key=lambda n: (next((i for i, o in enumerate(order) if n.startswith(o)), len(order)), n)):
        table = runs[name]
        columns = DICTIONARY_TABLES.get(name, (None, ("mmcs", "mcc", "recovered_share", "explained_variance", "l0",
                                                      "dead_fraction", "train_seconds")))[1]
        out += [f"_{name}_", ""]
        out += _table(("method", *columns, "seeds"),
                      [(run, *(format_mean_ci(entry, c) for c in columns), _seed_count(entry))
                       for run, entry in table.items()])
        out.append("")
    out += ["**Goals of notebook 07** (set before measuring; judged on the 95% intervals):", ""]
    out += [f"- **{'met' if g['met'] else 'missed'}**: {g['goal']}. {g['evidence']}." for g in res["results"]["goals"]]
    return out + [""]


def _figures(cifar: dict | None, lm: dict | None) -> list[str]:
    """The README's figures, captioned with the grid and seed of the run that drew them."""
    out = []
    if cifar:
        c = cifar["config"]
        out += [f"**CIFAR-10, {c['rows'] * c['cols']} neurons on a {c['rows']} x {c['cols']} grid, one epoch with "
                f"lateral support** (seed {c['seeds'][0]}; without lateral support: "
                "[`figures/cifar_weights_no_lateral.png`](figures/cifar_weights_no_lateral.png); training: "
                "[`figures/cifar_training.gif`](figures/cifar_training.gif)):", "",
                "![CIFAR-10 weights on the grid](figures/cifar_weights_lateral.png)", ""]
    if lm:
        c = lm["config"]
        out += [f"**The 2D neuron map of words**, {c['rows']} x {c['cols']} neurons (seed {c['seeds'][0]}), each named by "
                f"its top-{c['top_tokens']} distinct tokens ({lm['source'].get('label', '')}). Below, the crop of the "
                "grid whose neurons win most. **The whole map: [`figures/lm_map.html`](figures/lm_map.html)**, one "
                "self-contained page to open in a browser (search a token, zoom and pan, click a neuron for its top "
                "tokens in context); the whole grid as one picture: [`figures/lm_map.png`](figures/lm_map.png); "
                "every neuron's tokens: [`figures/lm_top_tokens.csv`](figures/lm_top_tokens.csv).", "",
                "![A legible crop of the 2D neuron map of words](figures/lm_map_crop.png)", ""]
    return out


def _findings(cifar: dict | None, lm: dict | None) -> list[str]:
    """The README's reading of the SoftHebb tables, as sentences whose claims follow the intervals."""
    out = []
    for res, what in ((cifar, "CIFAR-10"), (lm, "LM tokens")):
        runs = res["results"]["runs"] if res else {}
        if not all("mean" in runs.get(k, {}) for k in ("lateral support", "no lateral support", "random weights")):
            continue
        lat, no, rnd = runs["lateral support"], runs["no lateral support"], runs["random weights"]
        ci = lambda run, m: format_mean_ci(run, m)  # noqa: E731
        out.append(f"- {what}: topographic error with lateral support {ci(lat, 'topographic_error')} is "
                   f"{contrast(lat, no, 'topographic_error')} without ({ci(no, 'topographic_error')}; random weights "
                   f"{ci(rnd, 'topographic_error')}); distance rho {ci(lat, 'distance_rho')} is "
                   f"{contrast(lat, no, 'distance_rho')} without ({ci(no, 'distance_rho')}); dead fraction "
                   f"{ci(lat, 'dead_fraction')} is {contrast(lat, no, 'dead_fraction')} without ({ci(no, 'dead_fraction')}).")
        for metric in ("class_purity", "token_purity", "probe_triangle_test_acc"):
            if metric in lat.get("mean", {}) and metric in no.get("mean", {}):
                out.append(f"  {metric}: {ci(lat, metric)} with support, {contrast(lat, no, metric)} without "
                           f"({ci(no, metric)}).")
        legacy = runs.get("legacy batch winner")
        if legacy:
            out.append(f"  The published batch-wide winner flip: topographic error {ci(legacy, 'topographic_error')}, "
                       f"{contrast(legacy, lat, 'topographic_error')} the per-sample rule.")
    return out


# The goals notebook 06 checks (the issue's): on the means of the annealed CIFAR-10 map.
TOPOGRAPHY_GOALS = {"topographic_error": 0.06, "distance_rho": 0.75, "dead_fraction": 0.01, "time_ratio": 2.0}


def design_entry(key: str, title: str, grid, columns: list[str], methods, sweep: dict | None = None) -> dict:
    """One data set of notebook 06's design (see topography_design), as the notebook writes it.

    methods: the labels of its MiniSom, fixed-support and annealed runs, in that order (the keys of
    the methods dict it trains); sweep: the sweep's run label -> the settings it changed.
    """
    minisom, fixed, annealed = methods
    rows, cols = grid
    entry = {"key": key, "title": title, "grid": [rows, cols], "columns": list(columns), "minisom": minisom,
             "fixed": fixed, "annealed": annealed}
    if sweep is not None:
        entry.update(sweep=list(sweep), varied=dict(sweep))
    return entry


def topography_design(results: dict, config: dict | None = None) -> list[dict]:
    """Which runs of notebook 06's JSON are what, one entry per data set, in the order of the report:
    {"key" (the data set's run-label prefix), "title", "grid" [rows, cols], "columns" (its table's
    metrics), "minisom", "fixed", "annealed" (run labels), "sweep" (the sweep around the annealed run,
    run labels), "varied" (sweep label -> the settings it changed)}. The goals are checked on the first.

    The notebook writes it as results["design"]. A JSON written before it did (results without
    "design") gets it from what it has: the sweep list (the annealed run first), the columns, the grids
    of the config, and the run labels the notebook used then.
    """
    if "design" in results:
        return results["design"]
    runs, sweep, config = results["runs"], results.get("sweep", []), config or {}
    lm_som = next((n for n in runs if n.startswith("lm / minisom")), "lm / minisom")
    return [
        {"key": "cifar", "title": "CIFAR-10", "grid": [config.get("cifar_rows"), config.get("cifar_cols")],
         "columns": results.get("columns", []), "minisom": "cifar / minisom", "fixed": "cifar / softhebb fixed support",
         "annealed": sweep[0] if sweep else "cifar / softhebb annealed", "sweep": sweep[1:]},
        {"key": "lm", "title": "LM tokens", "grid": [config.get("lm_rows"), config.get("lm_cols")],
         "columns": results.get("lm_columns", []), "minisom": lm_som, "fixed": "lm / softhebb fixed support",
         "annealed": "lm / softhebb annealed"},
    ]


def topography_findings(runs: dict, design: list[dict], goals: dict | None = None) -> str:
    """Notebook 06's reading, as Markdown: the goals (TOPOGRAPHY_GOALS) checked against the means of
    the annealed map of the first data set, and the comparisons with MiniSom and the fixed support
    by their 95% intervals; then the second data set's (if its three runs are there).

    runs: run label -> `summarise_seeds` entry; design: `topography_design` (which run is which, the grids).
    """
    goals = {**TOPOGRAPHY_GOALS, **(goals or {})}
    ci = lambda name, m: format_mean_ci(runs[name], m)  # noqa: E731
    mean = lambda name, m: runs[name]["mean"][m]  # noqa: E731
    images, *rest = design
    som, fixed, ann = images["minisom"], images["fixed"], images["annealed"]
    missing = [n for n in (som, fixed, ann) if n not in runs]
    if missing:
        raise ValueError(f"design names runs {missing} that are not in runs ({sorted(runs)})")
    verdict = lambda ok: "**met**" if ok else "**not met**"  # noqa: E731
    ratio = mean(ann, "train_seconds") / mean(fixed, "train_seconds")
    te, rho, dead, time_ratio = (goals[k] for k in ("topographic_error", "distance_rho", "dead_fraction", "time_ratio"))
    rows, cols = images["grid"]
    lines = [
        f"{images['title']}, {rows} x {cols}, one epoch, goals checked on the means:",
        "",
        f"- topographic error <= {te:g}: annealed {ci(ann, 'topographic_error')}, "
        f"{verdict(mean(ann, 'topographic_error') <= te)}; "
        f"{contrast(runs[ann], runs[som], 'topographic_error')} MiniSom ({ci(som, 'topographic_error')}); "
        f"fixed support {ci(fixed, 'topographic_error')}.",
        f"- distance rho >= {rho:g}: annealed {ci(ann, 'distance_rho')}, {verdict(mean(ann, 'distance_rho') >= rho)}; "
        f"MiniSom {ci(som, 'distance_rho')}.",
        f"- dead units <= {dead:.0%}: annealed {ci(ann, 'dead_fraction')}, {verdict(mean(ann, 'dead_fraction') <= dead)}.",
        f"- relu(u - mean) probe not below the fixed support: annealed {ci(ann, 'probe_triangle_test_acc')} is "
        f"{contrast(runs[ann], runs[fixed], 'probe_triangle_test_acc')} the fixed support "
        f"({ci(fixed, 'probe_triangle_test_acc')}), "
        f"{verdict(contrast(runs[ann], runs[fixed], 'probe_triangle_test_acc') != 'lower than')}; MiniSom "
        f"{ci(som, 'probe_triangle_test_acc')}.",
        f"- epoch time within {time_ratio:g}x of the fixed support: {mean(ann, 'train_seconds'):.1f} s vs "
        f"{mean(fixed, 'train_seconds'):.1f} s ({ratio:.2f}x), {verdict(ratio <= time_ratio)}; MiniSom "
        f"{mean(som, 'train_seconds'):.1f} s.",
        f"- reconstruction error: annealed {ci(ann, 'reconstruction_error')}, MiniSom {ci(som, 'reconstruction_error')}, "
        f"fixed support {ci(fixed, 'reconstruction_error')}.",
    ]
    sweep = [name for name in images.get("sweep", []) if name in runs]
    if sweep:
        settings = [ann] + sweep
        best_te = min(settings, key=lambda n: mean(n, "topographic_error"))
        best_probe = max(settings, key=lambda n: mean(n, "probe_triangle_test_acc"))
        lines.append(f"- the sweep ({len(settings)} settings): the lowest topographic error is `{best_te}` "
                     f"({ci(best_te, 'topographic_error')}, probe {ci(best_te, 'probe_triangle_test_acc')}); the "
                     f"best probe is `{best_probe}` ({ci(best_probe, 'probe_triangle_test_acc')}, topographic error "
                     f"{ci(best_probe, 'topographic_error')}).")
        softhebb_runs = settings + [fixed]
        rho_te = _spearman([mean(n, "topographic_error") for n in softhebb_runs],
                           [mean(n, "probe_triangle_test_acc") for n in softhebb_runs])
        lines.append(f"- the trade-off: over the {len(softhebb_runs)} SoftHebb runs (the sweep and the fixed support), "
                     f"the rank correlation of topographic error with probe accuracy is {rho_te:+.2f}"
                     + (" (the more topographic the map, the lower the probe)." if rho_te > 0 else "."))
    if "neighbour_similarity" in runs[ann].get("mean", {}):
        lines.append(f"- what limits it: neighbouring units' weights have a mean cosine of "
                     f"{ci(ann, 'neighbour_similarity')} in the annealed map, {ci(som, 'neighbour_similarity')} in "
                     f"MiniSom's and {ci(fixed, 'neighbour_similarity')} with the fixed support; the units spread "
                     f"over {ci(ann, 'effective_dimension')}, {ci(som, 'effective_dimension')} and "
                     f"{ci(fixed, 'effective_dimension')} directions (participation ratio).")
    for tokens in rest:
        lm_som, lf, la = tokens["minisom"], tokens["fixed"], tokens["annealed"]
        if not all(n in runs for n in (lm_som, lf, la)):
            continue
        rows, cols = tokens["grid"]
        lines += ["", f"{tokens['title']}, {rows} x {cols}:", "",
                  f"- topographic error at or below MiniSom's: annealed {ci(la, 'topographic_error')} is "
                  f"{contrast(runs[la], runs[lm_som], 'topographic_error')} `{lm_som}` ({ci(lm_som, 'topographic_error')}), "
                  f"{verdict(contrast(runs[la], runs[lm_som], 'topographic_error') != 'higher than')}; fixed support "
                  f"{ci(lf, 'topographic_error')}.",
                  f"- distance rho: annealed {ci(la, 'distance_rho')}, MiniSom {ci(lm_som, 'distance_rho')}, fixed "
                  f"{ci(lf, 'distance_rho')}; dead units: annealed {ci(la, 'dead_fraction')}, MiniSom "
                  f"{ci(lm_som, 'dead_fraction')}; token purity: annealed {ci(la, 'token_purity')}, MiniSom "
                  f"{ci(lm_som, 'token_purity')}, fixed {ci(lf, 'token_purity')}."]
    return "\n".join(lines)


def _spearman(a: list[float], b: list[float]) -> float:
    """Spearman rank correlation of two equal-length lists (ties share their average rank)."""
    import numpy as np
    from scipy.stats import spearmanr

    return float(spearmanr(np.asarray(a), np.asarray(b)).statistic) if len(a) > 2 else float("nan")


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
