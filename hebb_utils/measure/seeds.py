"""Numbers from stochastic runs carry their spread over seeds.

A run that depends on a seed (initial weights, batch order) is repeated over `seeds`; each metric
is then reported as its mean with a 95% confidence interval of the mean (Student t, n - 1 degrees
of freedom) intersected with the range the metric can take (METRIC_BOUNDS), and the per-seed values
are kept so that anyone can recompute anything:

    summarise_seeds([{"seed": 42, "rho": 0.24, ...}, {"seed": 43, ...}, ...])
    -> {"n": 5, "mean": {"rho": ...}, "ci95": {"rho": [lo, hi]}, "std": {...}, "n_by_metric": {...},
        "seeds": [the per-seed dicts]}

Why a t interval cut at the bounds, and not a percentile bootstrap: the true mean of a bounded
quantity lies inside its bounds, so cutting the interval there never excludes it and the coverage is
the t interval's; a dead fraction no longer reads [-0.002, 0.004] nor a p-value [0.144, 1.060]. The
percentile bootstrap also stays inside the bounds, but with the 3-5 seeds of this project it is too
narrow: with 3 seeds it is exactly [min, max] of the seeds, which holds the mean of a normal sample
75% of the time, and about 83% with 5 seeds (simulated; tests/test_reproduce.py), not 95%.

A metric missing from some seeds (e.g. a slow probe run on fewer seeds) is summarised over the
seeds that have it, and `n_by_metric` says over how many.
"""
from __future__ import annotations

import math

__all__ = ["seed_list", "t_quantile", "mean_ci", "summarise_seeds", "difference_tolerance", "disagreeing_seeds",
           "METRIC_BOUNDS",
           "format_number", "format_interval"]

# The range each metric can take (what the intervals must stay inside; tests/test_report.py checks the
# committed results against it). Shares, accuracies, purities and p-values in [0, 1]; correlations and
# cosines in [-1, 1]; counts, times and dimensions >= 0; explained variance <= 1.
_UNIT = ("accuracy", "class_chance", "class_purity", "class_purity_weighted", "dead_fraction", "f1_score", "p_value",
         "precision", "probe_test_acc", "probe_train_acc", "probe_triangle_test_acc", "recall", "recovered_share",
         "token_purity", "topographic_error", "topographic_error_4", "topographic_p", "uniqueness")
_SIGNED = ("distance_rho", "null_rho", "neighbour_similarity", "topographic_rho", "topographic_null", "mcc",
           "mcc_signed", "seed_mcc", "mmcs")
_POSITIVE = ("dead_latents", "effective_dimension", "eval_seconds", "train_seconds", "l0", "sae_l0", "true_l0",
             "null_rho_std", "reconstruction_error", "shrinkage")
METRIC_BOUNDS = {**{m: (0.0, 1.0) for m in _UNIT}, **{m: (-1.0, 1.0) for m in _SIGNED},
                 **{m: (0.0, math.inf) for m in _POSITIVE}, "explained_variance": (-math.inf, 1.0)}


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
    """Mean, 95% interval (Student t, cut at the metric's METRIC_BOUNDS), std and n of every numeric metric
    over the per-seed result dicts."""
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
        low_bound, high_bound = METRIC_BOUNDS.get(name, (-math.inf, math.inf))
        lo, hi = max(lo, low_bound), min(hi, high_bound)  # the true mean is inside the bounds: coverage unchanged
        out["mean"][name], out["ci95"][name], out["std"][name] = mean, [lo, hi], std
        out["n_by_metric"][name] = len(values)
    return out


def disagreeing_seeds(summary: dict, metric: str, share: float = 0.25) -> list[float] | None:
    """The per-seed values of `metric` when the seeds disagree, else None: when they spread over more than
    `share` of the metric's range (METRIC_BOUNDS; unbounded metrics are never flagged). Some seeds
    succeeding and others failing (an MCC of 0.999, 0.273, 0.274) is a finding an interval over the
    seeds would hide: such values are shown per seed."""
    low, high = METRIC_BOUNDS.get(metric, (-math.inf, math.inf))
    values = [row[metric] for row in summary.get("seeds", []) if _is_number(row.get(metric))]
    if len(values) < 2 or not math.isfinite(high - low):
        return None
    return values if max(values) - min(values) > share * (high - low) else None


def difference_tolerance(std: float, n: int, n_new: int | None = None, level: float = 0.95) -> float:
    """Half-width of the `level` interval of the difference of two means over n and n_new seeds.

    Two honest runs of the same configuration differ in their means by more than this only
    with probability 1 - level (normal seeds, the same spread): the reproduction check's tolerance.
    """
    n_new = n if n_new is None else n_new
    if n < 2 or n_new < 1:
        return 0.0
    return t_quantile(n - 1, level) * std * math.sqrt(1 / n + 1 / n_new)


def format_number(value: float, digits: int = 3) -> str:
    """`value` with `digits` decimals, never '-0.000': a negative number that rounds to zero prints as zero."""
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def format_interval(mean: float, low: float, high: float, digits: int = 3, sep: str = " ") -> str:
    """'0.652 [0.640, 0.663]': a mean and its interval (sep between them: ' ', or '<br>' in a narrow table cell)."""
    return f"{format_number(mean, digits)}{sep}[{format_number(low, digits)}, {format_number(high, digits)}]"


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
