"""Notebook 07's part of the README: Hebbian matching pursuit and SoftHebb against SAELens sparse
autoencoders (each tuned on a validation split, on a samples ladder), MiniSom, ICA and scikit-learn on
known features; one table per data set and rung, the goals' verdicts, and a headline finding."""
from __future__ import annotations

from ...measure.seeds import format_mean_ci
from ..markdown import number_tables

__all__ = ["results", "headline", "long_ladder", "DICTIONARY_TABLES", "TOY_COLUMNS"]

NOTEBOOK = "07_dictionaries"
LONG_RUN = "ladder"  # `make ladder`: this notebook with its samples ladder to 1M, in results/ladder/ (tables.py)

# notebook 07's tables, by the start of a run's name ("saelens benchmark @ 100k"): which metrics each data
# set is read by, and their captions
BENCH_COLUMNS = ("mcc", "f1_score", "precision", "recall", "explained_variance", "sae_l0", "dead_fraction", "cpu_seconds")
DICTIONARY_TABLES = {
    "saelens benchmark": (BENCH_COLUMNS, "SAELens' synthetic benchmark (its own generator and scoring)"),
    "harder benchmark": (BENCH_COLUMNS, "SAELens' synthetic model with a hierarchy, correlation, random magnitudes "
                                        "and noise"),
    "topographic": (("topographic_rho", "topographic_null", "mmcs", "recovered_share", "explained_variance",
                     "train_seconds"), "a topographic ground truth (features with positions on a grid)"),
    "real activations": (("explained_variance", "dead_fraction", "token_purity", "topographic_error", "seed_mcc",
                          "train_seconds"), "the LM activations (no ground truth)"),
}
TOY_COLUMNS = ("mmcs", "mcc", "recovered_share", "explained_variance", "l0", "dead_fraction", "cpu_seconds",
               "train_seconds")
ORDER = ("toy", "saelens benchmark", "harder benchmark", "topographic", "real activations")  # the notebook's order


def _table(name: str) -> tuple[tuple, str]:
    """(columns, caption) of run `name`: its data set's, matched on the start of the name."""
    base, _, rung = name.partition(" @ ")
    at = f", {rung.removesuffix('k')}k samples" if rung else ""
    for prefix, (columns, what) in DICTIONARY_TABLES.items():
        if base.startswith(prefix):
            return columns, what + base.removeprefix(prefix) + at
    return TOY_COLUMNS, f"Sharkey et al.'s toy ({base.removeprefix('toy ')}{at})"


def _rung(name: str) -> int:
    """The samples of a run named "... @ 100k" (0 without a rung), so that rungs sort by size."""
    return int(name.rsplit(" @ ", 1)[1].removesuffix("k")) if " @ " in name else 0


def results(res: dict, number: int) -> tuple[list[str], int]:
    """One table per data set (mean [95% interval] over seeds) and the goals' verdicts."""
    runs = res["results"]["runs"]
    out = ["**Dictionaries: Hebbian matching pursuit and SoftHebb against SAELens sparse autoencoders (each tuned on "
           "a validation split), MiniSom, ICA and scikit-learn on known features** (notebook 07; each seed its own "
           "data draw; CPU seconds on one thread; real activations: "
           f"{res['source'].get('lm', {}).get('label', '')}).", ""]
    for name in sorted(runs, key=lambda n: (next((i for i, o in enumerate(ORDER) if n.startswith(o)), len(ORDER)),
                                            n.split(" @ ")[0], _rung(n))):
        columns, what = _table(name)
        present = {c for run in runs[name].values() for c in run.get("mean", {})}
        out += number_tables("method", runs[name], [c for c in columns if c in present], f"Table {number}. **{what}**")
        number += 1
    if "long_run" in res:
        lines, number = long_ladder(res["long_run"], number)
        out += lines
    out += ["**Goals of notebook 07** (set before measuring; judged on the 95% intervals):", ""]
    out += [f"- **{'met' if g['met'] else 'missed'}**: {g['goal']}. {g['evidence']}." for g in res["results"]["goals"]]
    return out + [""], number


def headline(loaded: dict) -> list[tuple[int, str]]:
    """How many of the goals were met, and the main toy's MMCS: Hebbian pursuit against the best tuned SAE
    at the smallest and the largest rung, and on SAELens' benchmark."""
    dicts = loaded.get(NOTEBOOK)
    if not dicts:
        return []
    goals, runs = dicts["results"]["goals"], dicts["results"]["runs"]
    met = sum(g["met"] for g in goals)
    main = [n for n in runs if n.startswith("toy L0 5 @ ")]
    if not main:
        return [(20, f"**Dictionaries**: {met} of {len(goals)} goals set before measuring were met.")]
    first_name, last_name = min(main, key=_rung), max(main, key=_rung)
    first, last, first_rung, last_rung = runs[first_name], runs[last_name], _rung(first_name), _rung(last_name)
    saes = [m for m in last if m.startswith("sae")]
    if "pursuit" not in last or not saes:
        return [(20, f"**Dictionaries**: {met} of {len(goals)} goals set before measuring were met.")]

    def versus(run: dict, rung: int, first: bool) -> str:  # pursuit against the best SAE of one rung
        best = max(saes, key=lambda m: run[m]["mean"]["mmcs"])
        if not first:
            return f"{format_mean_ci(run['pursuit'], 'mmcs')} vs {format_mean_ci(run[best], 'mmcs')} at {rung}k"
        return (f"{format_mean_ci(run['pursuit'], 'mmcs')} vs the best SAE's {format_mean_ci(run[best], 'mmcs')} "
                f"at {rung}k ({run['pursuit']['mean']['cpu_seconds']:.1f} vs "
                f"{run[best]['mean']['cpu_seconds']:.1f} CPU s)")

    # the lead claims the toys only if pursuit's interval is above every SAE's on every toy and rung
    better = all(run["pursuit"]["ci95"]["mmcs"][0] > run[m]["ci95"]["mmcs"][1]
                 for name, run in runs.items() if name.startswith("toy L0") and "pursuit" in run
                 for m in run if m.startswith("sae"))
    text = (f"MMCS (mean best cosine of a true feature) on Sharkey's toy (L0 5): "
            f"{versus(first, first_rung, True)}; {versus(last, last_rung, False)}")
    long_runs = dicts.get("long_run", {}).get("results", {}).get("runs", {})
    long_main = [n for n in long_runs if n.startswith("toy L0 5 @ ") and _rung(n) > last_rung]
    if long_main:  # the long ladder's largest rung: where the budget ends, the comparison may turn
        longest = max(long_main, key=_rung)
        text += f" ({versus(long_runs[longest], _rung(longest), False)}, long ladder)"
    else:
        text += " (`make ladder`: to 1M)"
    bench = [n for n in runs if n.startswith("saelens benchmark @ ")]
    bench_better = None
    if bench:
        b = runs[max(bench, key=_rung)]
        b_saes = [m for m in b if m.startswith("sae")]
        if "pursuit" in b and b_saes:
            b_best = max(b_saes, key=lambda m: b[m]["mean"]["mcc"])
            bench_better = b["pursuit"]["ci95"]["mcc"][0] > b[b_best]["ci95"]["mcc"][1]
            text += (f"; SAELens' benchmark MCC {format_mean_ci(b['pursuit'], 'mcc')} vs "
                     f"{format_mean_ci(b[b_best], 'mcc')}")
    if better and bench_better is not False:
        lead = "**A Hebbian dictionary ahead of every tuned SAE**"
    elif better:
        lead = "**Ahead of tuned SAEs on Sharkey's toys, behind on SAELens' benchmark**"
    else:
        lead = "**Hebbian pursuit vs tuned SAEs**"
    return [(20, f"{lead}: {text}. {met} of {len(goals)} goals met.")]


def long_ladder(long_run: dict, number: int) -> tuple[list[str], int]:
    """The long ladder (`make ladder`, results/ladder/07_dictionaries.json): at every rung of the main toy
    and of SAELens' benchmark, Hebbian pursuit against the best tuned SAE of that rung (one table)."""
    runs = long_run["results"]["runs"]
    rows = []
    for data, metric, label in (("toy L0 5", "mmcs", "Sharkey's toy, L0 5 (MMCS)"),
                                ("saelens benchmark", "mcc", "SAELens' benchmark (MCC)")):
        for name in sorted((n for n in runs if n.startswith(data + " @ ")), key=_rung):
            run = runs[name]
            saes = [m for m in run if m.startswith("sae")]
            if "pursuit" not in run or not saes:
                continue
            best = max(saes, key=lambda m: run[m]["mean"][metric])
            k = _rung(name)
            rows.append(f"| {label} | {f'{k}k' if k < 1000 else f'{k / 1000:g}M'} | {format_mean_ci(run['pursuit'], metric)} | "
                        f"{run['pursuit']['mean']['cpu_seconds']:.1f} | {best} | {format_mean_ci(run[best], metric)} | "
                        f"{run[best]['mean']['cpu_seconds']:.1f} |")
    if not rows:
        return [], number
    out = [f"Table {number}. **The long ladder** (`make ladder`: notebook 07 again with its ladders to "
           f"{max(long_run['config']['ladder_rungs']):,} samples, `results/ladder/`; not part of `make reproduce`): "
           "Hebbian pursuit against the best tuned SAE of each rung, CPU seconds on one thread", "",
           "| data | samples | pursuit | CPU s | best SAE | its score | CPU s |", "|---|---|---|---|---|---|---|", *rows, ""]
    return out, number + 1
