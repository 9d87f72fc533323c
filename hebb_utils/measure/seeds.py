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

from . import metrics, recovery  # noqa: F401  (imported for their descriptions: the bounds of their metrics)
from .describe import METRICS, POSITIVE, describe

__all__ = ["seed_list", "t_quantile", "mean_ci", "summarise_seeds", "difference_tolerance", "disagreeing_seeds",
           "METRIC_BOUNDS", "PERMUTATION_P_VALUES", "default_shuffles", "p_value_floor", "cut_p_values",
           "format_number", "format_interval", "format_value", "format_mean_ci", "contrast"]

# times of a run, measured around the training (experiments/) and the evaluation (dictionaries/)
describe("train_seconds", "train time (s)", bounds=POSITIVE)
describe("eval_seconds", "evaluation time (s)", bounds=POSITIVE)
describe("cpu_seconds", "CPU time, one thread (s)", bounds=POSITIVE)  # time.process_time around a fit (experiments/ladder.py)
describe("samples", "training samples", bounds=POSITIVE)

# The range each metric can take (what the intervals must stay inside; tests/test_report.py checks the
# committed results against it), from each metric's description (measure/describe.py), written beside
# the function that computes it: shares, accuracies, purities and p-values in [0, 1]; correlations and
# cosines in [-1, 1]; counts, times and dimensions >= 0; explained variance <= 1.
METRIC_BOUNDS = {key: metric.bounds for key, metric in METRICS.items() if metric.bounds is not None}

# Permutation p-values, (1 + #{null >= observed}) / (1 + n_shuffles) (metrics.distance_correlation and
# recovery.topographic_rank_correlation), are never below 1 / (1 + n_shuffles): 0.0099 with 100 shuffles.
# Their intervals are cut there, not at 0, so that "0.030 [0.000, 0.085]" cannot be printed.
PERMUTATION_P_VALUES = ("p_value", "topographic_p")


def default_shuffles() -> int:
    """The shuffles a p-value has when its run does not say (metrics.distance_correlation's default)."""
    import inspect

    return int(inspect.signature(metrics.distance_correlation).parameters["n_shuffles"].default)


def p_value_floor(values, n_shuffles: int | None = None) -> float:
    """The smallest value a permutation p-value of `n_shuffles` shuffles can take, 1 / (1 + n_shuffles)
    (default_shuffles() where the run did not record it), for the p-values `values` of one run's seeds.

    The floor is returned only where every value is a multiple of it, as such p-values are; otherwise (a run
    of other shuffles than assumed, e.g. a smoke run's 5 against the default 100) 0: a floor too low is
    safe, one too high is not."""
    m = 1 + (default_shuffles() if n_shuffles is None else int(n_shuffles))
    values = [float(v) for v in values]
    if values and all(abs(v * m - round(v * m)) < 1e-6 and round(v * m) >= 1 for v in values):
        return 1.0 / m
    return 0.0


def cut_p_values(result: dict) -> dict:
    """A copy of a notebook's results JSON whose permutation p-values' intervals start at their floor,
    1 / (1 + config["n_shuffles"]) (p_value_floor from the values where the config does not say). For the
    report and the paper, which render results written before summarise_seeds cut them itself."""
    import copy

    result = copy.deepcopy(result)
    n_shuffles = (result.get("config") or {}).get("n_shuffles")

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("ci95"), dict):
                for metric in PERMUTATION_P_VALUES:
                    if metric in node["ci95"]:
                        values = [row[metric] for row in node.get("seeds", []) if _is_number(row.get(metric))]
                        floor = p_value_floor(values, n_shuffles)
                        lo, hi = node["ci95"][metric]
                        node["ci95"][metric] = [max(lo, floor), max(hi, floor)]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(result.get("results"))
    return result


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
        if name in PERMUTATION_P_VALUES:  # nor below the smallest p-value its shuffles can give
            lo = max(lo, p_value_floor(values))
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


def format_value(v, digits: int = 3) -> str:
    """A one-off number as the tables print it: '-' for None, 3 significant digits from 10^4 up, else
    `digits` decimals (format_number); anything else as str."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) >= 1e4 else format_number(v, digits)
    return str(v)


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
        lo, hi = run["ci95"][metric]
        if metric in PERMUTATION_P_VALUES:  # results written before summarise_seeds cut p-values at their floor
            floor = p_value_floor([row[metric] for row in run.get("seeds", []) if _is_number(row.get(metric))])
            lo, hi = max(lo, floor), max(hi, floor)
        text = format_interval(run["mean"][metric], lo, hi, digits=digits, sep=sep)
        apart = disagreeing_seeds(run, metric)
        return text if apart is None else f"{text}{sep}seeds {', '.join(format_number(v, digits) for v in apart)}"
    return format_value(run.get(metric), digits)


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


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
