"""Permutation p-values stay on their own scale: an interval over seeds never starts below 1 / (1 + n_shuffles),
the smallest p-value n shuffles can give (issue 28: "0.030 [0.000, 0.085]" with 100 shuffles)."""
from __future__ import annotations

import json
import re
from pathlib import Path

from hebb_utils.measure.seeds import (PERMUTATION_P_VALUES, cut_p_values, default_shuffles, format_mean_ci,
                                      p_value_floor, summarise_seeds)

REPO = Path(__file__).resolve().parents[1]
FLOOR_100 = 1 / 101


def p_values(n: int, hits: list[int]) -> list[float]:
    """The p-values of runs with `hits` null values at or above the observed one, of n shuffles each."""
    return [(1 + k) / (1 + n) for k in hits]


def test_the_floor_is_one_over_shuffles_plus_one_where_the_values_are_such_p_values():
    assert default_shuffles() == 100
    assert p_value_floor(p_values(100, [21, 0, 0])) == FLOOR_100
    assert p_value_floor(p_values(100, [21, 0, 0]), n_shuffles=100) == FLOOR_100
    assert p_value_floor(p_values(20, [3, 0]), n_shuffles=20) == 1 / 21
    # p-values of 5 shuffles (a smoke run) are not those of 100: no floor is assumed, 0 is safe
    assert p_value_floor(p_values(5, [0, 1])) == 0.0
    assert p_value_floor([]) == 0.0


def test_summarise_seeds_cuts_a_p_value_at_its_floor_and_nothing_else():
    rows = [{"seed": s, "p_value": p, "dead_fraction": d}
            for s, (p, d) in enumerate(zip(p_values(100, [21, 0, 0, 0, 0]), [0.0, 0.0, 0.001, 0.0, 0.0]))]
    summary = summarise_seeds(rows)
    lo, hi = summary["ci95"]["p_value"]
    assert lo == FLOOR_100 and hi > summary["mean"]["p_value"]  # the t interval reached below 0.0099
    assert summary["ci95"]["dead_fraction"][0] == 0.0  # a share keeps its bound 0
    assert format_mean_ci(summary, "p_value") == "0.051 [0.010, 0.167]"


def test_results_written_before_the_cut_are_cut_when_rendered():
    """The committed JSON of notebooks 04-07 predates the cut: the report cuts at render time (cut_p_values
    with the config's n_shuffles, format_mean_ci from the values) and no rendered p-value interval starts
    below 0.010."""
    before = after = 0
    for path in sorted((REPO / "results").glob("0*.json")):
        raw = json.loads(path.read_text())
        cut = cut_p_values(raw)

        def walk(node, old):
            nonlocal before, after
            if isinstance(node, dict):
                for metric in PERMUTATION_P_VALUES:
                    if isinstance(node.get("ci95"), dict) and metric in node["ci95"]:
                        before += old["ci95"][metric][0] < FLOOR_100 - 1e-12
                        after += node["ci95"][metric][0] < FLOOR_100 - 1e-12
                        lo = float(re.search(r"\[(\S+),", format_mean_ci(old, metric)).group(1))
                        assert lo >= 0.010, (path.name, format_mean_ci(old, metric))
                for key, value in node.items():
                    walk(value, old[key])
            elif isinstance(node, list):
                for value, o in zip(node, old):
                    walk(value, o)

        walk(cut["results"], raw["results"])
    assert before > 0, "the committed results no longer hold an interval below the floor: this test checks nothing"
    assert after == 0


def test_the_readme_tables_print_no_p_value_interval_below_the_floor():
    from hebb_utils.report.tables import results_tables

    text = results_tables(REPO / "results")
    assert "[0.000, 0.167]" not in text and "[0.010, 0.167]" in text  # notebook 05's lateral support
