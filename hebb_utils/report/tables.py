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
from ..measure.seeds import disagreeing_seeds, format_interval, format_number
from ..pins import pin_status

__all__ = ["run_info", "write_results", "results_tables", "headline", "update_readme", "format_mean_ci", "seed_table", "contrast",
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


def format_mean_ci(run: dict, metric: str, digits: int = 3, sep: str = " ") -> str:
    """'0.667 [0.660, 0.674]' (mean [95% interval] over seeds) for a `summarise_seeds` entry, or the
    plain value for a one-off run ({metric: value}); '-' when the run has no such metric. sep goes
    between the mean and its interval ('<br>' puts the interval on a line of its own in a table cell)."""
    if "mean" in run:
        if metric not in run["mean"]:
            return "-"
        if metric not in run.get("n_by_metric", {}):  # one number for the run, not a per-seed value (a pair's MCC)
            return format_number(run["mean"][metric], digits)
        if run["n_by_metric"][metric] == 1:
            return f"{format_number(run['mean'][metric], digits)}{sep}(1 seed)"
        text = format_interval(run["mean"][metric], *run["ci95"][metric], digits=digits, sep=sep)
        apart = disagreeing_seeds(run, metric)
        return text if apart is None else f"{text}{sep}seeds {', '.join(format_number(v, digits) for v in apart)}"
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
        return f"{v:.3g}" if abs(v) >= 1e4 else format_number(v, digits)
    return str(v)


def _cell(v) -> str:
    """A Markdown table cell: pipes escaped, so GitHub does not split the cell ('|cos|')."""
    return str(v).replace("|", "\\|")


def _row(cells) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _table(header, rows) -> list[str]:
    return [_row(header), "|" + "---|" * len(header), *(_row(r) for r in rows)]


# What the README calls each metric (column headers and the glossary); a metric without an entry keeps
# its JSON name with spaces. The arrows say which way is better where there is one.
METRIC_NAMES = {
    "topographic_error": "topographic error ↓", "distance_rho": "distance ρ ↑", "null_rho": "ρ, shuffled grid",
    "p_value": "p-value of ρ", "dead_fraction": "dead units", "class_purity": "class purity",
    "token_purity": "token purity", "probe_test_acc": "probe on u", "probe_triangle_test_acc": "probe on relu(u − ū)",
    "reconstruction_error": "reconstruction error ↓", "neighbour_similarity": "neighbour cosine",
    "effective_dimension": "effective dimension", "train_seconds": "train time (s)", "mmcs": "MMCS ↑", "mcc": "MCC ↑",
    "recovered_share": "recovered (cos ≥ 0.9)", "explained_variance": "explained variance ↑", "l0": "L0",
    "sae_l0": "L0", "f1_score": "F1 ↑", "precision": "precision", "recall": "recall",
    "topographic_rho": "geometry ρ ↑", "topographic_null": "ρ, shuffled grid", "seed_mcc": "MCC of 2 seeds ↑",
}

# The short glossary printed above the tables.
GLOSSARY = [
    "**topographic error**: share of inputs whose best and second-best neurons are not 8-neighbours on the grid "
    "(0 = a perfect map; about 1 for an unordered one)",
    "**distance ρ**: Spearman correlation, over all neuron pairs, between grid distance and weight distance; "
    "**ρ, shuffled grid** its mean over 100 random placements, **p-value of ρ** the permutation p-value (0.010 is "
    "the smallest 100 shuffles can give)",
    "**dead units**: share of neurons that never win; **class / token purity**: how often a neuron's inputs share "
    "its majority class / token",
    "**probe on u**, **probe on relu(u − ū)**: test accuracy of a logistic regression on the frozen layer's "
    "responses, or on their part above each input's mean response (L-BFGS stopped at `probe_max_iter` iterations, "
    "200, before convergence: an early-stopped probe; the raw-pixel probe runs to convergence)",
    "**reconstruction error**: |x − winner's weight| / |x| (a vector quantiser's error); **neighbour cosine**: mean "
    "cosine of grid neighbours' weights; **effective dimension**: participation ratio of the weights' spectrum",
    "**MMCS**: mean over true features of the best cosine with a learned one; **MCC**: the same after a one-to-one "
    "(Hungarian) matching; **recovered**: share of true features matched at cos ≥ 0.9; **L0**: mean active units",
    "**geometry ρ**: rank correlation of the true features' distances with the grid distances of the units that "
    "recover them; **MCC of 2 seeds**: MCC between two seeds' dictionaries (agreement, no ground truth)",
]

MAX_COLUMNS = 7  # every README table: a label column and at most 6 numbers (fits 1000 px; tests/test_browser_reader.py)


def _seed_note(runs: dict) -> tuple[str, bool]:
    """('over 5 seeds', False) when every row has the same seed counts, else ('', True): a seeds column."""
    counts = {_seed_count(entry) for entry in runs.values()}
    if len(counts) == 1:
        (count,) = counts
        return (f"over {count} seeds" if count != "1" else "one seed"), False
    return "", True


def _number_tables(label: str, runs: dict, columns, caption: str) -> list[str]:
    """`runs` as Markdown tables of at most MAX_COLUMNS columns: one row per run, 'mean<br>[interval]' per
    metric, split into consecutive groups of metrics when they do not fit, and a seeds column only
    when the rows differ in their number of seeds (otherwise the caption says it)."""
    note, seeds_column = _seed_note(runs)
    per_table = MAX_COLUMNS - 1 - seeds_column
    columns = list(columns)
    groups = [columns[i:i + per_table] for i in range(0, len(columns), per_table)]
    out = [f"{caption}{', ' + note if note else ''}:", ""]
    for i, group in enumerate(groups):
        if i:
            out.append("")
        header = (label, *(METRIC_NAMES.get(c, c.replace("_", " ")) for c in group), *(("seeds",) if seeds_column else ()))
        rows = [(run, *(format_mean_ci(entry, c, sep="<br>") for c in group),
                 *((_seed_count(entry),) if seeds_column else ())) for run, entry in runs.items()
                if any(c in entry.get("mean", entry) for c in group)]  # not a row of dashes (a probe-only run)
        out += _table(header, rows)
    return out + [""]


def _load(results_dir: Path, name: str):
    p = results_dir / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None


def results_tables(results_dir) -> str:
    """The README's detailed results, as Markdown, from the notebooks' JSON files (those present)."""
    results_dir = Path(results_dir)
    load = lambda name: _load(results_dir, name)  # noqa: E731
    out = ["Each number of a stochastic run is the mean over seeds with its 95% interval below it: the Student t "
           "interval of the mean, cut at the range the quantity can take (a share stays in [0, 1], a correlation in "
           "[-1, 1]; `measure/seeds.py`, METRIC_BOUNDS). Cutting never excludes the true mean, so the coverage stays "
           "the t interval's; a percentile bootstrap would also stay inside the bounds, but with 3 seeds it is the "
           "seeds' range and covers the mean only 75% of the time. The per-seed values are in the JSON under "
           "`seeds`. Deterministic runs (foundations, the PCA family) are single numbers.", "",
           "<details><summary><b>What the columns mean</b></summary>", "", *(f"- {g}" for g in GLOSSARY), "",
           "</details>", ""]
    out += _figures(load("04_cifar_softhebb"), load("05_lm_softhebb"))
    acts = load("01_extract_activations")
    if acts:
        r, model = acts["results"], acts["source"]["model"]
        out += [f"**Activations** ({acts['source'].get('label', model['name'])}): {r['n_tokens']:,} tokens x {r['d_model']} from {r['n_stories']} "
                f"TinyStories stories, after block {r['layer']}; SHA-256 `{r['acts_sha256'][:16]}...`", ""]

    found = load("02_foundations")
    if found:
        r = found["results"]
        out += ["Table 1. **Foundations** on synthetic data, against the exact answer of `torch.linalg.eigh`:", ""]
        out += _table(("rule", "result"), [(FOUNDATION_NAMES.get(k, k.replace("_", " ")), _fmt(v, 4)) for k, v in r.items()
                                           if not isinstance(v, (dict, list))])
        out.append("")

    pca = load("03_pca_family")
    if pca:
        r, src = pca["results"], pca["source"]
        out += [f"Table 2. **The PCA family on the LM activations** ({src.get('label', '')}):", ""]
        out += _table(("measurement", "value"), [(k, _fmt(v, 4)) for k, v in r.get("summary", {}).items()])
        out.append("")

    number = 3
    for name, what in (("04_cifar_softhebb", "CIFAR-10 SoftHebb"), ("05_lm_softhebb", "LM-token SoftHebb")):
        res = load(name)
        if not res:
            continue
        runs, cols, config = res["results"]["runs"], res["results"]["columns"], res["config"]
        out += _number_tables("run", runs, cols, f"Table {number}. **{what}, {config['rows']} x {config['cols']} grid**, "
                                                  f"one epoch with and without the lateral support "
                                                  f"({res['source'].get('label', '')})")
        number += 1
    topo = load("06_topography")
    if topo:
        res, config = topo["results"], topo["config"]
        runs, design = res["runs"], topography_design(res, config)
        out += ["**Topography: MiniSom against SoftHebb with fixed and annealed lateral support** (notebook 06; "
                f"{topo['source']['lm'].get('label', '')}); train time is one epoch on this machine (MiniSom on LM "
                "tokens: one pass over its subsample). Sweep: [`figures/topography_sweep.png`](figures/topography_sweep.png); "
                "trade-off: [`figures/topography_tradeoff.png`](figures/topography_tradeoff.png); maps: "
                "[`figures/topography_cifar_minisom.png`](figures/topography_cifar_minisom.png), "
                "[`figures/topography_cifar_annealed.png`](figures/topography_cifar_annealed.png).", ""]
        # one table per data set: the baselines, then the annealed run, then the sweep around it (the
        # JSON's keys are sorted, so the order comes from the design)
        for d in design:
            order = [n for n in (d["minisom"], d["fixed"], d["annealed"], *d.get("sweep", [])) if n in runs]
            order += [n for n in runs if n.startswith(f"{d['key']} / ") and n not in order]  # a run the design omits
            out += _number_tables("run", {n: runs[n] for n in order}, d["columns"],
                                  f"Table {number}. **{d['title']}, {d['grid'][0]} x {d['grid'][1]}**")
            number += 1
        out += [topography_findings(runs, design), ""]
    dictionaries, number = _dictionaries(load("07_dictionaries"), number)
    out += dictionaries
    findings = _findings(load("04_cifar_softhebb"), load("05_lm_softhebb"))
    if findings:
        out += ["**What the seeds say** (generated from the JSON: \"lower\" / \"higher\" means the two 95% "
                "intervals do not overlap, \"indistinguishable\" that they do):", "", *findings, ""]
    run = next((x["run"] for x in (acts, found, pca) if x), None)
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


FOUNDATION_NAMES = {
    "hebb_decay_abs_cos": "Hebb with linear decay: |cos| with eigenvector 1",
    "oja_abs_cos": "Oja: |cos| with eigenvector 1",
    "plain_hebb_diverged": "plain Hebb diverges",
    "plain_hebb_norm_growth": "plain Hebb: growth of |w|",
    "recurrent_rel_error": "recurrent Hebb: relative distance to C / α",
    "sanger_min_abs_cos_top5": "Sanger: smallest |cos| over eigenvectors 1-5",
}


# notebook 07's tables: which metrics each data set is read by, and their captions
DICTIONARY_TABLES = {
    "saelens benchmark": (("mcc", "f1_score", "precision", "recall", "explained_variance", "sae_l0", "train_seconds"),
                          "SAELens' synthetic benchmark (its own generator and scoring)"),
    "topographic": (("topographic_rho", "topographic_null", "mmcs", "recovered_share", "explained_variance",
                     "train_seconds"), "a topographic ground truth (features with positions on a grid)"),
    "real activations": (("explained_variance", "dead_fraction", "token_purity", "topographic_error", "seed_mcc",
                          "train_seconds"), "the LM activations (no ground truth)"),
}
TOY_COLUMNS = ("mmcs", "mcc", "recovered_share", "explained_variance", "l0", "dead_fraction", "train_seconds")


def _dictionaries(res: dict | None, number: int) -> tuple[list[str], int]:
    """Notebook 07: one table per data set (mean [95% interval] over seeds) and the goals' verdicts."""
    if not res:
        return [], number
    runs = res["results"]["runs"]
    out = ["**Dictionaries: SoftHebb against SAELens sparse autoencoders, MiniSom, ICA and scikit-learn on known "
           f"features** (notebook 07; real activations: {res['source'].get('lm', {}).get('label', '')}).", ""]
    order = ("toy", "saelens benchmark", "topographic", "real activations")  # the notebook's order (JSON sorts keys)
    for name in sorted(runs, key=lambda n: (next((i for i, o in enumerate(order) if n.startswith(o)), len(order)), n)):
        columns, what = DICTIONARY_TABLES.get(name, (TOY_COLUMNS, f"Sharkey et al.'s toy ({name.removeprefix('toy ')})"))
        out += _number_tables("method", runs[name], columns, f"Table {number}. **{what}**")
        number += 1
    out += ["**Goals of notebook 07** (set before measuring; judged on the 95% intervals):", ""]
    out += [f"- **{'met' if g['met'] else 'missed'}**: {g['goal']}. {g['evidence']}." for g in res["results"]["goals"]]
    return out + [""], number


def _figures(cifar: dict | None, lm: dict | None) -> list[str]:
    """The README's figures, captioned with the grid and seed of the run that drew them."""
    out = []
    if cifar:
        c = cifar["config"]
        out += [f"**CIFAR-10, {c['rows'] * c['cols']} neurons on a {c['rows']} x {c['cols']} grid, one epoch with "
                f"the fixed lateral support** (seed {c['seeds'][0]}; without lateral support: "
                "[`figures/cifar_weights_no_lateral.png`](figures/cifar_weights_no_lateral.png); training: "
                "[`figures/cifar_training.gif`](figures/cifar_training.gif); annealed: "
                "[`figures/topography_cifar_annealed.png`](figures/topography_cifar_annealed.png)):", "",
                "![CIFAR-10 weights on the grid](figures/cifar_weights_lateral.png)", ""]
    if lm:
        c = lm["config"]
        out += [f"**The 2D neuron map of words**, {c['rows']} x {c['cols']} neurons, each named by its top-{c['top_tokens']} "
                f"distinct tokens ({lm['source'].get('label', '')}). **The whole map: [`figures/lm_map.html`](figures/lm_map.html)** "
                "(the annealed, topographic layer), one self-contained page to open in a browser (search a token, zoom "
                "and pan, click a neuron for its top tokens in context); the fixed support's map: "
                "[`figures/lm_fixed_map.html`](figures/lm_fixed_map.html); the whole grid as one picture: "
                "[`figures/lm_map.png`](figures/lm_map.png); every neuron's tokens: "
                "[`figures/lm_top_tokens.csv`](figures/lm_top_tokens.csv).", ""]
    return out


HEADLINE_FIGURE = "figures/lm_map_crop.png"  # the annealed (topographic) map of words, its busiest window


def headline(results_dir) -> str:
    """The README's first screen: the headline figure and the findings, each with its numbers, from the
    JSON files (a finding whose notebook has not run is left out)."""
    results_dir = Path(results_dir)
    load = lambda name: _load(results_dir, name)  # noqa: E731
    cifar, lm, topo, dicts, found = (load(n) for n in ("04_cifar_softhebb", "05_lm_softhebb", "06_topography",
                                                        "07_dictionaries", "02_foundations"))
    ci = lambda run, m: format_mean_ci(run, m)  # noqa: E731
    findings = []
    if cifar and lm:
        c, t = cifar["results"]["runs"], lm["results"]["runs"]
        findings.append(
            f"**The lateral support orders the map**: topographic error {ci(t['no lateral support'], 'topographic_error')} "
            f"→ {ci(t['lateral support'], 'topographic_error')} on LM tokens, {ci(c['no lateral support'], 'topographic_error')} "
            f"→ {ci(c['lateral support'], 'topographic_error')} on CIFAR-10 (the share of inputs whose two best neurons "
            "are not grid neighbours).")
    if dicts:
        goals, runs = dicts["results"]["goals"], dicts["results"]["runs"]
        met = sum(g["met"] for g in goals)
        text = (f"**Not yet a better dictionary than a sparse autoencoder**: {met} of {len(goals)} goals set before "
                "measuring were met")
        one, five = runs.get("toy L0 1", {}), runs.get("toy L0 5", {})
        if all(k in d for d in (one, five) for k in ("softhebb", "sae l1")):
            text += (f". On Sharkey et al.'s toy, SoftHebb's MMCS is {ci(one['softhebb'], 'mmcs')} against an L1 SAE's "
                     f"{ci(one['sae l1'], 'mmcs')} with one active feature per input, {ci(five['softhebb'], 'mmcs')} "
                     f"against {ci(five['sae l1'], 'mmcs')} with five")
        findings.append(text + ".")
    if topo:
        runs, (images, *rest) = topo["results"]["runs"], topography_design(topo["results"], topo["config"])
        ann, som, fixed = (runs[images[k]] for k in ("annealed", "minisom", "fixed"))
        versus = [(images["title"], ann, som)]
        if rest and all(rest[0][k] in runs for k in ("annealed", "minisom")):
            versus.append((rest[0]["title"], runs[rest[0]["annealed"]], runs[rest[0]["minisom"]]))
        words = [contrast(a, m, "topographic_error") for _, a, m in versus]
        level = ("as topographic as a Kohonen map" if all(w != "higher than" for w in words)
                 else "nearly as topographic as a Kohonen map")
        speed = som["mean"]["train_seconds"] / ann["mean"]["train_seconds"]
        findings.append(
            f"**Annealed, the support gives a map {level}, {speed:.0f}x faster than MiniSom.** Topographic error "
            + "; ".join(f"{title} {ci(a, 'topographic_error')}, {w} MiniSom's {ci(m, 'topographic_error')}"
                        for (title, a, m), w in zip(versus, words))
            + f" ({images['title']}: {ann['mean']['train_seconds']:.1f} s against {som['mean']['train_seconds']:.0f} s "
              "per epoch).")
        probe = ("probe_triangle_test_acc" in ann.get("mean", {}) and
                 f"**Order costs features.** A linear probe on the annealed map's {images['title']} responses reaches "
                 f"{ci(ann, 'probe_triangle_test_acc')}, {contrast(ann, fixed, 'probe_triangle_test_acc')} the fixed "
                 f"support's {ci(fixed, 'probe_triangle_test_acc')}.")
    else:
        probe = None
    if probe:
        findings.append(probe)
    if found:
        r = found["results"]
        findings.append(f"**The Hebbian PCA rules are exact**: Oja's weight has |cos| {_fmt(r['oja_abs_cos'], 4)} with "
                        "`torch.linalg.eigh`'s top eigenvector, Sanger's five at least "
                        f"{_fmt(r['sanger_min_abs_cos_top5'], 4)}.")
    model = (lm or {}).get("source", {}).get("model", {}).get("name", "")
    stand_in = f" LM: the offline stand-in {model.split('/')[-1]}, not TinyStories-1M." if "OFFLINE" in (lm or {}).get(
        "source", {}).get("label", "") else ""
    # shown at its own width (notebook 06 draws it <= 900 px with >= 10 px text), so it reads as drawn
    out = [f'<img src="{HEADLINE_FIGURE}" alt="The busiest window of the annealed 2D neuron map of words">',
           "", f"_The busiest window of the annealed map of words; each cell a neuron, named by the tokens it wins "
               f"most.{stand_in}_", ""]
    out += [f"{i}. {f}" for i, f in enumerate(findings, 1)]
    return "\n".join(out)


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
