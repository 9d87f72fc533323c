"""Notebook 07's part of the README: SoftHebb against SAELens sparse autoencoders, MiniSom, ICA and
scikit-learn on known features; one table per data set, the goals' verdicts, and a headline finding."""
from __future__ import annotations

from ...measure.seeds import format_mean_ci
from ..markdown import number_tables

__all__ = ["results", "headline", "DICTIONARY_TABLES", "TOY_COLUMNS"]

NOTEBOOK = "07_dictionaries"

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
ORDER = ("toy", "saelens benchmark", "topographic", "real activations")  # the notebook's order (JSON sorts keys)


def results(res: dict, number: int) -> tuple[list[str], int]:
    """One table per data set (mean [95% interval] over seeds) and the goals' verdicts."""
    runs = res["results"]["runs"]
    out = ["**Dictionaries: SoftHebb against SAELens sparse autoencoders, MiniSom, ICA and scikit-learn on known "
           f"features** (notebook 07; real activations: {res['source'].get('lm', {}).get('label', '')}).", ""]
    for name in sorted(runs, key=lambda n: (next((i for i, o in enumerate(ORDER) if n.startswith(o)), len(ORDER)), n)):
        columns, what = DICTIONARY_TABLES.get(name, (TOY_COLUMNS, f"Sharkey et al.'s toy ({name.removeprefix('toy ')})"))
        out += number_tables("method", runs[name], columns, f"Table {number}. **{what}**")
        number += 1
    out += ["**Goals of notebook 07** (set before measuring; judged on the 95% intervals):", ""]
    out += [f"- **{'met' if g['met'] else 'missed'}**: {g['goal']}. {g['evidence']}." for g in res["results"]["goals"]]
    return out + [""], number


def headline(loaded: dict) -> list[tuple[int, str]]:
    """How many of the goals were met, and the toy's MMCS against an L1 SAE's."""
    dicts = loaded.get(NOTEBOOK)
    if not dicts:
        return []
    ci = lambda run, m: format_mean_ci(run, m)  # noqa: E731
    goals, runs = dicts["results"]["goals"], dicts["results"]["runs"]
    met = sum(g["met"] for g in goals)
    text = (f"**Not yet a better dictionary than a sparse autoencoder**: {met} of {len(goals)} goals set before "
            "measuring were met")
    one, five = runs.get("toy L0 1", {}), runs.get("toy L0 5", {})
    if all(k in d for d in (one, five) for k in ("softhebb", "sae l1")):
        text += (f". On Sharkey et al.'s toy, SoftHebb's MMCS is {ci(one['softhebb'], 'mmcs')} against an L1 SAE's "
                 f"{ci(one['sae l1'], 'mmcs')} with one active feature per input, {ci(five['softhebb'], 'mmcs')} "
                 f"against {ci(five['sae l1'], 'mmcs')} with five")
    return [(20, text + ".")]
