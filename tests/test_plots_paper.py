"""Issue 28's figure defects, drawn here without a notebook: the token map's log colour bar starts at 1 (no
"0" printed just under the "1"), and the sweep's tick labels never collide."""
from __future__ import annotations

import numpy as np

from hebb_utils.report.plots import plot_sweep, plot_token_map


def test_the_log_colour_bar_is_ticked_from_1():
    counts = np.array([0, 1, 3, 12, 150, 2000] * 4, dtype=float)
    fig = plot_token_map([f"t{i}" for i in range(24)], (4, 6), colors=np.log1p(counts))
    fig.canvas.draw()
    _, cax = fig.axes
    labels = [t.get_text() for t in cax.get_yticklabels() if t.get_visible() and t.get_text()]
    assert labels == ["1", "10", "100", "1,000"]
    assert "0" not in labels
    # the bar still reaches 0 wins (its bottom, under the 1) and a cell of 0 wins is drawn lightest
    assert cax.get_ylim()[0] == 0.0


def _overlaps(boxes) -> list[tuple[int, int]]:
    return [(i, j) for i in range(len(boxes)) for j in range(i + 1, len(boxes)) if boxes[i].overlaps(boxes[j])]


def test_the_sweeps_tick_labels_never_collide():
    """Notebook 06's sweep, 8 runs with names such as "annealed gain 10 to 1" beside "annealed lr 0.03",
    rotated 30 degrees, ran into each other (issue 28, Fig 6)."""
    names = ["cifar / softhebb annealed", "cifar / annealed gain 1", "cifar / annealed gain 3",
             "cifar / annealed end 1", "cifar / annealed end 2", "cifar / annealed gain 10 to 1",
             "cifar / annealed lr 0.03", "cifar / annealed lr 0.08"]
    runs = {n: {"mean": {"a": 0.1 * i, "b": 0.3, "c": 0.8}, "ci95": {"a": [0.1 * i - 0.01, 0.1 * i + 0.01],
                                                                      "b": [0.29, 0.31], "c": [0.7, 0.9]}}
            for i, n in enumerate(names)}
    fig = plot_sweep(runs, names, {"a": "topographic error", "b": "probe", "c": "distance rho"},
                     reference={"MiniSom": runs[names[1]]}, title="sweep")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        labels = [t for t in ax.get_xticklabels() if t.get_text()]
        assert [t.get_text() for t in labels] == [n.split(" / ")[-1] for n in names]
        boxes = [t.get_window_extent(renderer) for t in labels]
        assert not _overlaps(boxes), f"tick labels overlap: {_overlaps(boxes)}"
