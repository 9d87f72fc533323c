"""What each metric is, written beside the function that computes it, read by the report.

    MMCS = describe("mmcs", "MMCS", better="higher", bounds=(-1.0, 1.0), glossary="**MMCS**: mean over ...")

registers one Metric under its key (the name the measure functions and the results JSON use) and
returns it. Every module of measure/ that computes a metric describes it right beside the function:

    key       the metric's name in the results (a `summarise_seeds` key, a table column)
    label     what a reader sees: the README's column header, without an arrow
    better    "higher", "lower" or None: which way is better, where there is one; the header's
              arrow (↑ / ↓) comes from it (Metric.header), never from the label
    bounds    (low, high): the range the metric can take; the intervals over seeds are cut there
              (measure/seeds.py derives METRIC_BOUNDS from these); None: unbounded
    glossary  the README glossary's bullet that explains it (Markdown), on the first metric the
              bullet names; None for the others

METRICS (key -> Metric) is the registry, in the order of registration. The report
(hebb_utils/report/) reads labels, arrows and the glossary from it; measure/seeds.py the bounds.
Ground floor of measure/: imports nothing of hebb_utils.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Metric", "METRICS", "BETTER", "ARROWS", "UNIT", "SIGNED", "POSITIVE", "describe"]

BETTER = ("higher", "lower", None)
ARROWS = {"higher": "↑", "lower": "↓", None: ""}
# the usual bounds: shares, accuracies, purities and p-values; correlations and cosines; counts, times, dimensions
UNIT, SIGNED, POSITIVE = (0.0, 1.0), (-1.0, 1.0), (0.0, math.inf)


@dataclass(frozen=True)
class Metric:
    """One metric's description (see the module's docstring); checked when made."""

    key: str
    label: str
    better: str | None = None
    bounds: tuple[float, float] | None = None
    glossary: str | None = None

    def __post_init__(self):
        if not isinstance(self.key, str) or not self.key.isidentifier():
            raise ValueError(f"key={self.key!r}: expected a metric name (letters, digits, _), as the results use it")
        if not isinstance(self.label, str) or not self.label.strip():
            raise ValueError(f"{self.key}: label={self.label!r}: expected a non-empty text")
        if any(a in self.label for a in ARROWS.values() if a):
            raise ValueError(f"{self.key}: label={self.label!r} has an arrow: say better='higher' or 'lower' instead")
        if self.better not in BETTER:
            raise ValueError(f"{self.key}: better={self.better!r}: expected one of {BETTER}")
        if self.bounds is not None:
            bounds = self.bounds
            if (not isinstance(bounds, (tuple, list)) or len(bounds) != 2
                    or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)):
                raise ValueError(f"{self.key}: bounds={bounds!r}: expected (low, high) numbers or None")
            low, high = (float(b) for b in bounds)
            if math.isnan(low) or math.isnan(high) or not low < high:
                raise ValueError(f"{self.key}: bounds={bounds!r}: expected low < high")
            object.__setattr__(self, "bounds", (low, high))
        if self.glossary is not None and (not isinstance(self.glossary, str) or not self.glossary.strip()):
            raise ValueError(f"{self.key}: glossary={self.glossary!r}: expected a non-empty text or None")

    @property
    def arrow(self) -> str:
        """'↑' (higher is better), '↓' (lower is better) or '' (neither)."""
        return ARROWS[self.better]

    @property
    def header(self) -> str:
        """The column header: the label, then its arrow where there is one ('MMCS ↑')."""
        return f"{self.label} {self.arrow}" if self.arrow else self.label


METRICS: dict[str, Metric] = {}


def describe(key: str, label: str, *, better: str | None = None, bounds: tuple[float, float] | None = None,
             glossary: str | None = None) -> Metric:
    """Register the description of metric `key` (see the module's docstring) and return it; a key
    described twice is refused (ValueError), so two modules cannot disagree about one metric."""
    metric = Metric(key, label, better, bounds, glossary)
    if key in METRICS:
        raise ValueError(f"metric {key!r} is already described ({METRICS[key]}); describe each metric once, "
                         "beside the function that computes it")
    METRICS[key] = metric
    return metric
