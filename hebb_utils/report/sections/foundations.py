"""Notebook 02's part of the README: the Hebbian PCA rules on synthetic data, against the exact answer."""
from __future__ import annotations

from ...measure.seeds import format_value
from ..markdown import table

__all__ = ["results", "headline", "FOUNDATION_NAMES", "MACHINE", "FIXED_TABLES"]

MACHINE = True  # a deterministic run: its JSON names the machine of the README's numbers
FIXED_TABLES = 1  # Table 1, whether or not the notebook has run

FOUNDATION_NAMES = {
    "hebb_decay_abs_cos": "Hebb with linear decay: |cos| with eigenvector 1",
    "oja_abs_cos": "Oja: |cos| with eigenvector 1",
    "plain_hebb_diverged": "plain Hebb diverges",
    "plain_hebb_norm_growth": "plain Hebb: growth of |w|",
    "recurrent_rel_error": "recurrent Hebb: relative distance to C / α",
    "sanger_min_abs_cos_top5": "Sanger: smallest |cos| over eigenvectors 1-5",
}


def results(res: dict, number: int) -> tuple[list[str], int]:
    """One table: each rule's result (a number or a yes/no), named by FOUNDATION_NAMES."""
    r = res["results"]
    out = [f"Table {number}. **Foundations** on synthetic data, against the exact answer of `torch.linalg.eigh`:", ""]
    out += table(("rule", "result"), [(FOUNDATION_NAMES.get(k, k.replace("_", " ")), format_value(v, 4))
                                      for k, v in r.items() if not isinstance(v, (dict, list))])
    return out + [""], number + 1


def headline(loaded: dict) -> list[tuple[int, str]]:
    found = loaded.get("02_foundations")
    if not found:
        return []
    r = found["results"]
    return [(50, f"**The Hebbian PCA rules are exact**: Oja's weight has |cos| {format_value(r['oja_abs_cos'], 4)} "
                 "with `torch.linalg.eigh`'s top eigenvector, Sanger's five at least "
                 f"{format_value(r['sanger_min_abs_cos_top5'], 4)}.")]
