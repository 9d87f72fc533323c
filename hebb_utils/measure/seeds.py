"""Numbers from stochastic runs carry their spread over seeds.

A run that depends on a seed (initial weights, batch order) is repeated over `seeds`; each metric
is then reported as its mean with a 95% confidence interval of the mean (Student t, n - 1 degrees
of freedom), and the per-seed values are kept so that anyone can recompute anything:

    summarise_seeds([{"seed": 42, "rho": 0.24, ...}, {"seed": 43, ...}, ...])
    -> {"n": 5, "mean": {"rho": ...}, "ci95": {"rho": [lo, hi]}, "std": {...}, "n_by_metric": {...},
        "seeds": [the per-seed dicts]}

A metric missing from some seeds (e.g. a slow probe run on fewer seeds) is summarised over the
seeds that have it, and `n_by_metric` says over how many.
"""
from __future__ import annotations

import math

__all__ = ["seed_list", "t_quantile", "mean_ci", "summarise_seeds", "difference_tolerance"]


def seed_list(first: int, n_seeds: int) -> list[int]:
    """The seeds of a run: first, first + 1, ..., first + n_seeds - 1 (the first is the published one)."""
    if int(n_seeds) != n_seeds or n_seeds < 1:
        raise ValueError(f"n_seeds={n_seeds!r}: expected a positive integer")
    return [int(first) + i for i in range(int(n_seeds))]


def t_quantile(df: int, level: float = 0.95) -> float:
    """Two-sided Student-t quantile: P(|T| <= q) = level with `df` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, df))


def mean_ci(values, level: float = 0.95) -> tuple[float, float, float, float]:
    """(mean, low, high, sample std) of `values`; with one value the interval is that value."""
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        raise ValueError("values: expected at least one number")
    mean = math.fsum(values) / n
    if n == 1:
        return mean, mean, mean, 0.0
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(n - 1, level) * std / math.sqrt(n)
    return mean, mean - half, mean + half, std


def summarise_seeds(per_seed: list[dict], level: float = 0.95) -> dict:
    """Mean, 95% interval, std and n of every numeric metric over the per-seed result dicts."""
    if not per_seed:
        raise ValueError("per_seed: expected the results of at least one seed")
    names = [k for k in per_seed[0] if k != "seed"]
    names += [k for row in per_seed[1:] for k in row if k != "seed" and k not in names]
    out = {"n": len(per_seed), "mean": {}, "ci95": {}, "std": {}, "n_by_metric": {}, "seeds": per_seed}
    for name in names:
        values = [row[name] for row in per_seed if _is_number(row.get(name))]
        if not values:
            continue
        mean, lo, hi, std = mean_ci(values, level)
        out["mean"][name], out["ci95"][name], out["std"][name] = mean, [lo, hi], std
        out["n_by_metric"][name] = len(values)
    return out


def difference_tolerance(std: float, n: int, n_new: int | None = None, level: float = 0.95) -> float:
    """Half-width of the `level` interval of the difference of two means over n and n_new seeds.

    Two honest runs of the same configuration differ in their means by more than this only
    with probability 1 - level (normal seeds, the same spread): the reproduction check's tolerance.
    """
    n_new = n if n_new is None else n_new
    if n < 2 or n_new < 1:
        return 0.0
    return t_quantile(n - 1, level) * std * math.sqrt(1 / n + 1 / n_new)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
