"""Notebooks 04 (CIFAR-10) and 05 (LM tokens): SoftHebb with and without the lateral support. Their
figures above the tables, one table per notebook, what the seeds say below the tables, and the
headline's first finding."""
from __future__ import annotations

from ...measure.seeds import contrast, format_mean_ci
from ..markdown import number_tables

__all__ = ["results", "figures", "findings", "headline", "headline_note", "TITLES"]

CIFAR, LM = "04_cifar_softhebb", "05_lm_softhebb"
TITLES = {CIFAR: "CIFAR-10 SoftHebb", LM: "LM-token SoftHebb"}  # each notebook's table


def results(res: dict, number: int) -> tuple[list[str], int]:
    """One table of the runs (mean [95% interval] over seeds) of the notebook's grid."""
    runs, cols, config = res["results"]["runs"], res["results"]["columns"], res["config"]
    what = TITLES.get(res.get("notebook"), res.get("notebook"))
    out = number_tables("run", runs, cols, f"Table {number}. **{what}, {config['rows']} x {config['cols']} grid**, "
                                           f"one epoch with and without the lateral support "
                                           f"({res['source'].get('label', '')})")
    return out, number + 1


def figures(loaded: dict) -> list[str]:
    """The README's figures, captioned with the grid and seed of the run that drew them."""
    cifar, lm = loaded.get(CIFAR), loaded.get(LM)
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


def findings(loaded: dict) -> list[str]:
    """The README's reading of the SoftHebb tables, as sentences whose claims follow the intervals."""
    out = []
    for res, what in ((loaded.get(CIFAR), "CIFAR-10"), (loaded.get(LM), "LM tokens")):
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
    if not out:
        return []
    return ["**What the seeds say** (generated from the JSON: \"lower\" / \"higher\" means the two 95% "
            "intervals do not overlap, \"indistinguishable\" that they do):", "", *out, ""]


def headline(loaded: dict) -> list[tuple[int, str]]:
    """The first finding: the lateral support orders both maps (both notebooks' JSON needed)."""
    cifar, lm = loaded.get(CIFAR), loaded.get(LM)
    if not (cifar and lm):
        return []
    ci = lambda run, m: format_mean_ci(run, m)  # noqa: E731
    c, t = cifar["results"]["runs"], lm["results"]["runs"]
    return [(10, f"**The lateral support orders the map**: topographic error {ci(t['no lateral support'], 'topographic_error')} "
                 f"→ {ci(t['lateral support'], 'topographic_error')} on LM tokens, {ci(c['no lateral support'], 'topographic_error')} "
                 f"→ {ci(c['lateral support'], 'topographic_error')} on CIFAR-10 (the share of inputs whose two best neurons "
                 "are not grid neighbours).")]


def headline_note(loaded: dict) -> str:
    """' LM: the offline stand-in X, not TinyStories-1M.' when notebook 05 ran on the offline stand-in."""
    lm = loaded.get(LM) or {}
    model = lm.get("source", {}).get("model", {}).get("name", "")
    return f" LM: the offline stand-in {model.split('/')[-1]}, not TinyStories-1M." if "OFFLINE" in lm.get(
        "source", {}).get("label", "") else ""
