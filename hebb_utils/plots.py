"""Figures: weight tiles on the neuron grid, training animations, the 2D map of tokens.

matplotlib is imported inside the functions so the core package imports with torch and numpy.
"""
from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .io import atomic_path

__all__ = ["weight_tiles", "plot_weight_grid", "animate_weight_grid", "plot_token_map", "token_map_html",
           "plot_convergence", "save_figure"]


def _numpy(a) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def weight_tiles(W, grid: tuple[int, int], image_shape: tuple[int, int, int] = (3, 32, 32), pad: int = 1) -> np.ndarray:
    """Lay the N weight vectors out as images on the (rows, cols) grid -> one RGB mosaic in [0, 1].

    W: (N, C*H*W) in the layout of the input (channels first, as CIFAR pixels are flattened
    here). Each tile is min-max scaled on its own, as the published figure does, so every
    neuron's preferred pattern is visible whatever its norm.
    """
    W = _numpy(W).astype(np.float32)
    rows, cols = grid
    c, h, w = image_shape
    if W.shape != (rows * cols, c * h * w):
        raise ValueError(f"W has shape {W.shape}; expected ({rows * cols}, {c * h * w}) for grid={grid}, image_shape={image_shape}")
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
    rows, cols = grid
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
    rows, cols = grid
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
                   fontsize: float = 5.0, colors: Sequence[float] | None = None):
    """Draw each neuron's label (e.g. its top-3 tokens) as text in its cell of the (rows, cols) grid.

    `colors`: optional per-neuron value (e.g. win count, log-scaled) for the cell background.
    """
    import matplotlib.pyplot as plt

    rows, cols = grid
    if len(labels) != rows * cols:
        raise ValueError(f"labels has {len(labels)} entries; grid={grid} needs {rows * cols}")
    fig, ax = plt.subplots(figsize=(cols * cell_inches, rows * cell_inches * 0.5))
    if colors is not None:
        ax.imshow(np.asarray(colors, dtype=float).reshape(rows, cols), cmap="Greys", alpha=0.35,
                  extent=(-0.5, cols - 0.5, rows - 0.5, -0.5), aspect="auto", interpolation="nearest")
    for j, text in enumerate(labels):
        ax.text(j % cols, j // cols, text, ha="center", va="center", fontsize=fontsize, family="monospace")
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_xticks(np.arange(-0.5, cols, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, rows, 1), minor=True)
    ax.grid(which="minor", color="0.85", linewidth=0.3)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def token_map_html(labels: Sequence[str], details: Sequence[str], grid, path, title: str = "2D neuron map",
                   counts: Sequence[int] | None = None) -> Path:
    """A self-contained HTML page: the grid of labels; hovering a cell shows `details` for that neuron."""
    rows, cols = grid
    if not (len(labels) == len(details) == rows * cols):
        raise ValueError(f"labels ({len(labels)}) and details ({len(details)}) must both have rows*cols={rows * cols} entries")
    counts = np.asarray(counts if counts is not None else np.zeros(rows * cols))
    shade = np.log1p(counts) / max(np.log1p(counts).max(), 1e-12)
    cells = []
    for j in range(rows * cols):
        tip = html.escape(f"neuron {j} (row {j // cols}, col {j % cols})\n{details[j]}", quote=True)
        bg = f"rgba(70,110,200,{0.08 + 0.5 * shade[j]:.3f})"
        cells.append(f'<div class="c" style="background:{bg}" title="{tip}">{html.escape(labels[j])}</div>')
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:12px}} .g{{display:grid;grid-template-columns:repeat({cols},92px);gap:1px}}
.c{{font:9px/1.1 monospace;height:34px;overflow:hidden;padding:1px;border:1px solid #ddd;white-space:pre-wrap}}
.c:hover{{outline:2px solid #d33;z-index:2}}</style></head><body><h3>{html.escape(title)}</h3>
<p>Hover a neuron to see its top tokens. Background: how often the neuron wins (log scale).</p>
<div class="g">{''.join(cells)}</div></body></html>"""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path


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


def save_figure(fig, path, dpi: int = 150) -> Path:
    """Save a matplotlib figure atomically (PNG/SVG by the suffix) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path
