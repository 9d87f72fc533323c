"""Notebook 06's goals and the design of its tables: which runs each data set compares, and the
findings generated from their seeds (set before measuring; judged on the 95% intervals).

Light on purpose (measure/seeds.py only): the README's and the paper's generator reads it, and so
does not depend on training code.
"""
from __future__ import annotations

from ..measure.seeds import contrast, format_mean_ci


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
