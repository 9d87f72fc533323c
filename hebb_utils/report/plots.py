"""Figures: weight tiles on the neuron grid, training animations, the 2D map of tokens.

Every `grid` is a checks.Grid or (rows, cols), as in the SoftHebb layer. matplotlib is imported
inside the functions so the core package imports with torch and numpy.
"""
from __future__ import annotations

import base64
import html
import mimetypes
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..checks import Grid
from ..io import atomic_path

__all__ = ["weight_tiles", "plot_weight_grid", "animate_weight_grid", "plot_token_map", "busiest_window",
           "plot_convergence", "save_figure", "show_images", "plot_sweep", "plot_tradeoff"]


# Text keywords that draw a string as it is: no mathtext between `$` signs, no TeX. For strings
# that come from data (token labels, model names), where `$$` would end the drawing with a parse error.
TEXT_AS_IS = {"usetex": False, "parse_math": False}


def _numpy(a) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def weight_tiles(W, grid, image_shape: tuple[int, int, int] = (3, 32, 32), pad: int = 1) -> np.ndarray:
    """Lay the N weight vectors out as images on the (rows, cols) grid -> one RGB mosaic in [0, 1].

    W: (N, C*H*W) in the layout of the input (channels first, as CIFAR pixels are flattened
    here). Each tile is min-max scaled on its own, as the published figure does, so every
    neuron's preferred pattern is visible whatever its norm.
    """
    W = _numpy(W).astype(np.float32)
    grid = Grid.of(grid)
    rows, cols = grid.rows, grid.cols
    c, h, w = image_shape
    if W.shape != (rows * cols, c * h * w):
        raise ValueError(f"W has shape {W.shape}; expected ({rows * cols}, {c * h * w}) for grid={grid.shape}, image_shape={image_shape}")
    tiles = W.reshape(rows * cols, c, h, w).transpose(0, 2, 3, 1)  # (N, h, w, c)
    lo = tiles.min(axis=(1, 2, 3), keepdims=True)
    hi = tiles.max(axis=(1, 2, 3), keepdims=True)
    tiles = (tiles - lo) / np.maximum(hi - lo, 1e-12)
    # each tile gets `pad` white pixels above and to its left, then the grid is one reshape
    tiles = np.pad(tiles.reshape(rows, cols, h, w, c), ((0, 0), (0, 0), (pad, 0), (pad, 0), (0, 0)), constant_values=1.0)
    mosaic = tiles.transpose(0, 2, 1, 3, 4).reshape(rows * (h + pad), cols * (w + pad), c)
    mosaic = np.pad(mosaic, ((0, pad), (0, pad), (0, 0)), constant_values=1.0)  # the bottom and right border
    return mosaic.squeeze(-1) if c == 1 else mosaic


def plot_weight_grid(W, grid, image_shape=(3, 32, 32), title: str | None = None, scale: float = 0.6):
    import matplotlib.pyplot as plt

    mosaic = weight_tiles(W, grid, image_shape)
    grid = Grid.of(grid)
    rows, cols = grid.rows, grid.cols
    fig, ax = plt.subplots(figsize=(cols * scale, rows * scale + 0.4))
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def animate_weight_grid(snapshots, grid, path, image_shape=(3, 32, 32), steps: Sequence[int] | None = None,
                        fps: int = 4, scale: float = 0.3, dpi: int = 60) -> Path:
    """Write an animated GIF of the weight grid from training snapshots (n_snapshots, N, D)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    snapshots = _numpy(snapshots)
    grid = Grid.of(grid)
    rows, cols = grid.rows, grid.cols
    fig, ax = plt.subplots(figsize=(cols * scale, rows * scale + 0.4))
    ax.set_axis_off()
    image = ax.imshow(weight_tiles(snapshots[0], grid, image_shape), interpolation="nearest")
    title = ax.set_title("")

    def draw(i):
        image.set_data(weight_tiles(snapshots[i], grid, image_shape))
        title.set_text(f"step {steps[i]}" if steps is not None else f"snapshot {i}")
        return image, title

    anim = FuncAnimation(fig, draw, frames=len(snapshots), blit=False)
    path = Path(path)
    with atomic_path(path, suffix=".gif") as tmp:
        anim.save(tmp, writer=PillowWriter(fps=fps), dpi=dpi)
    plt.close(fig)
    return path


def plot_token_map(labels: Sequence[str], grid, title: str | None = None, cell_inches: float = 0.9,
                   fontsize: float = 5.0, colors: Sequence[float] | None = None,
                   region: tuple[int, int, int, int] | None = None):
    """Draw each neuron's label (e.g. its top-3 tokens) as text in its cell of the (rows, cols) grid.

    `colors`: optional per-neuron value (e.g. win count, log-scaled) for the cell background.
    `region=(row0, col0, height, width)`: draw only that window of the grid, with the real row and
    column numbers on the axes (a legible crop of a map too large to read whole).
    Labels and title are drawn as plain text, never as mathtext or TeX: a token such as `$$` or
    `$\\frac` is shown as it is (TEXT_AS_IS).
    """
    import matplotlib.pyplot as plt

    grid = Grid.of(grid, n=len(labels), what="labels")
    rows, cols = grid.rows, grid.cols
    r0, c0, h, w = region if region is not None else (0, 0, rows, cols)
    if not (0 <= r0 and 0 <= c0 and h >= 1 and w >= 1 and r0 + h <= rows and c0 + w <= cols):
        raise ValueError(f"region={region!r}: expected (row0, col0, height, width) inside the grid {grid.shape}")
    # at least 1.5 inches tall: a map of one or two rows still has room for its title
    fig, ax = plt.subplots(figsize=(w * cell_inches, max(h * cell_inches * 0.5, 1.5)))
    if colors is not None:
        if np.size(colors) != rows * cols or not np.isfinite(np.asarray(colors, dtype=float)).all():
            raise ValueError(f"colors: expected {rows * cols} finite numbers, one per neuron of the grid {grid.shape}")
        window = np.asarray(colors, dtype=float).reshape(rows, cols)[r0:r0 + h, c0:c0 + w]
        ax.imshow(window, cmap="Greys", alpha=0.35, extent=(c0 - 0.5, c0 + w - 0.5, r0 + h - 0.5, r0 - 0.5),
                  aspect="auto", interpolation="nearest", vmin=0, vmax=np.max(colors) or 1)
    for r in range(r0, r0 + h):
        for c in range(c0, c0 + w):
            ax.text(c, r, labels[r * cols + c], ha="center", va="center", fontsize=fontsize, family="monospace",
                    **TEXT_AS_IS)
    ax.set_xlim(c0 - 0.5, c0 + w - 0.5)
    ax.set_ylim(r0 + h - 0.5, r0 - 0.5)
    ax.set_xticks(np.arange(c0 - 0.5, c0 + w, 1), minor=True)
    ax.set_yticks(np.arange(r0 - 0.5, r0 + h, 1), minor=True)
    ax.grid(which="minor", color="0.85", linewidth=0.3)
    if region is None:
        ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    else:
        ax.set_xticks(range(c0, c0 + w))
        ax.set_yticks(range(r0, r0 + h))
        ax.tick_params(which="both", length=0, labelsize=fontsize, labeltop=True, labelbottom=False)
        ax.set_xlabel("column")
        ax.set_ylabel("row")
    if title:
        ax.set_title(title, **TEXT_AS_IS)
    fig.tight_layout()
    return fig


def busiest_window(counts, grid, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The (row0, col0, height, width) window of `size` whose neurons win most often in total:
    where a crop of the map shows the most live, readable neurons."""
    grid = Grid.of(grid, n=np.size(counts), what="counts")
    rows, cols = grid.rows, grid.cols
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) and v >= 1 for v in size)):
        raise ValueError(f"size={size!r}: expected (height, width), two positive integers (larger than the grid: all of it)")
    counts = np.asarray(counts, dtype=np.float64)
    if not np.isfinite(counts).all():
        raise ValueError("counts: expected finite numbers (e.g. each neuron's wins)")
    h, w = min(int(size[0]), rows), min(int(size[1]), cols)
    c = torch.as_tensor(np.asarray(counts, dtype=np.float64)).reshape(1, 1, rows, cols)
    sums = torch.nn.functional.avg_pool2d(c, (h, w), stride=1)[0, 0]  # (rows - h + 1, cols - w + 1)
    r0, c0 = divmod(int(sums.argmax()), sums.shape[1])
    return r0, c0, h, w


def plot_convergence(histories: dict, key: str, ylabel: str, title: str | None = None, logy: bool = False):
    """One curve per named history (a list of dicts with 'step' and `key`)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for name, history in histories.items():
        ax.plot([h["step"] for h in history], [h[key] for h in history], label=name)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def save_figure(fig, path, dpi: int = 150, show: bool = True) -> Path:
    """Save a matplotlib figure atomically (PNG/SVG by the suffix), show the saved file inline when
    running in IPython (so a notebook shows exactly what it saved), and close the figure."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    if show:
        show_images([path])
    return path


def show_images(paths, titles: Sequence[str] | None = None, width: str | None = None) -> None:
    """Display saved images (PNG, GIF, ...) in one row, each embedded as a data URI, in IPython.

    For figures that belong side by side (the CIFAR grids with and without lateral support) and
    for the training animation; outside IPython it does nothing. The page needs no network.
    """
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
    except ImportError:  # pragma: no cover
        return
    if get_ipython() is None:
        return
    paths = [Path(p) for p in paths]
    titles = list(titles) if titles is not None else [None] * len(paths)
    width = width or f"{100 / len(paths) - 1:.0f}%"
    cells = []
    for p, title in zip(paths, titles):
        data = base64.b64encode(p.read_bytes()).decode("ascii")
        mime = mimetypes.guess_type(p.name)[0] or "image/png"
        caption = f"<figcaption>{html.escape(title)}</figcaption>" if title else ""
        cells.append(f'<figure style="display:inline-block;width:{width};margin:0 0.5%;vertical-align:top">'
                     f'<img src="data:{mime};base64,{data}" alt="{html.escape(p.name)}" style="width:100%">'
                     f"{caption}</figure>")
    display(HTML("<div>" + "".join(cells) + "</div>"))


def plot_sweep(runs: dict, settings: Sequence[str], metrics: dict, reference: dict | None = None,
               title: str | None = None):
    """Metrics against a setting, mean and 95% interval over seeds, one panel per metric.

    runs: name -> a `summarise_seeds` entry; settings: the run names, in the order of the x axis;
    metrics: metric -> axis label; reference: label -> run drawn as a horizontal band (mean and
    interval), e.g. {"MiniSom": runs["cifar / minisom"]}.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
    x = np.arange(len(settings))
    for ax, (metric, label) in zip(axes[0], metrics.items()):
        mean = np.array([runs[s]["mean"][metric] for s in settings])
        lo, hi = (np.array([runs[s]["ci95"][metric][i] for s in settings]) for i in (0, 1))
        ax.errorbar(x, mean, yerr=[mean - lo, hi - mean], fmt="o-", capsize=3, color="C0", label="annealed SoftHebb")
        for k, (name, run) in enumerate((reference or {}).items()):
            if metric in run.get("mean", {}):
                r_lo, r_hi = run["ci95"][metric]
                ax.axhspan(r_lo, r_hi, color=f"C{k + 1}", alpha=0.2)
                ax.axhline(run["mean"][metric], color=f"C{k + 1}", lw=1, label=name)
        ax.set_xticks(x, [s.split(" / ")[-1] for s in settings], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_tradeoff(runs: dict, names: Sequence[str], x: str, y: str, labels: dict | None = None,
                  title: str | None = None):
    """One point per run, `y` against `x`, with both 95% intervals over seeds: a trade-off curve.

    names: the runs to draw (each a `summarise_seeds` entry in runs); labels: axis labels by metric.
    """
    import matplotlib.pyplot as plt

    labels = labels or {}
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for k, name in enumerate(names):
        run = runs[name]
        mx, my = run["mean"][x], run["mean"][y]
        (x_lo, x_hi), (y_lo, y_hi) = run["ci95"][x], run["ci95"][y]
        ax.errorbar([mx], [my], xerr=[[mx - x_lo], [x_hi - mx]], yerr=[[my - y_lo], [y_hi - my]], fmt="o",
                    capsize=3, color=f"C{k % 10}", label=name.split(" / ")[-1])
    ax.set_xlabel(labels.get(x, x))
    ax.set_ylabel(labels.get(y, y))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
