"""The README's Markdown pieces, shared by tables.py and the notebooks' sections (report/sections/):
GitHub-safe table cells, the tables of mean [95% interval] over seeds, and the metrics' names and
glossary, read from their descriptions (measure/describe.py, written beside each metric's function).
"""
from __future__ import annotations

from ..measure.describe import METRICS
from ..measure.seeds import format_mean_ci  # also what registers every metric's description (measure/seeds.py)

__all__ = ["MAX_COLUMNS", "GLOSSARY_ORDER", "metric_header", "glossary", "table", "seed_count", "number_tables"]

MAX_COLUMNS = 7  # every README table: a label column and at most 6 numbers (fits 1000 px; tests/test_browser_reader.py)

# The glossary's reading order: these metrics' bullets first, then any other metric's bullet in the order
# the metrics were described (a new metric with a glossary text shows up without an edit here).
GLOSSARY_ORDER = ("topographic_error", "distance_rho", "dead_fraction", "probe_test_acc", "reconstruction_error",
                  "mmcs", "topographic_rho")


def metric_header(key: str) -> str:
    """What the README calls metric `key` in a column header: its label and the arrow of which way is
    better (measure.describe.Metric.header); a metric without a description keeps its name with spaces."""
    metric = METRICS.get(key)
    return metric.header if metric is not None else key.replace("_", " ")


def glossary() -> list[str]:
    """The short glossary printed above the tables: one bullet per metric described with a glossary text."""
    keys = [k for k in GLOSSARY_ORDER if k in METRICS] + [k for k in METRICS if k not in GLOSSARY_ORDER]
    return [METRICS[k].glossary for k in keys if METRICS[k].glossary]


def _cell(v) -> str:
    """A Markdown table cell: pipes escaped, so GitHub does not split the cell ('|cos|')."""
    return str(v).replace("|", "\\|")


def _row(cells) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def table(header, rows) -> list[str]:
    """A Markdown table (its lines): the header, the rule, one line per row, every cell escaped."""
    return [_row(header), "|" + "---|" * len(header), *(_row(r) for r in rows)]


def seed_count(entry: dict) -> str:
    """How many seeds a `summarise_seeds` entry is over ('5', '5 (3 for the probes)'; '1' for a one-off run)."""
    counts = sorted(set(entry.get("n_by_metric", {}).values()))
    if not counts:
        return "1"
    return str(counts[-1]) if len(counts) == 1 else f"{counts[-1]} ({counts[0]} for the probes)"


def _seed_note(runs: dict) -> tuple[str, bool]:
    """('over 5 seeds', False) when every row has the same seed counts, else ('', True): a seeds column."""
    counts = {seed_count(entry) for entry in runs.values()}
    if len(counts) == 1:
        (count,) = counts
        return (f"over {count} seeds" if count != "1" else "one seed"), False
    return "", True


def number_tables(label: str, runs: dict, columns, caption: str) -> list[str]:
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
        header = (label, *(metric_header(c) for c in group), *(("seeds",) if seeds_column else ()))
        rows = [(run, *(format_mean_ci(entry, c, sep="<br>") for c in group),
                 *((seed_count(entry),) if seeds_column else ())) for run, entry in runs.items()
                if any(c in entry.get("mean", entry) for c in group)]  # not a row of dashes (a probe-only run)
        out += table(header, rows)
    return out + [""]
