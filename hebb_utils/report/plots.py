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

__all__ = ["weight_tiles", "fit_mosaic", "plot_weight_grid", "animate_weight_grid", "plot_token_map", "busiest_window",
           "plot_convergence", "save_figure", "show_images", "images_html", "png_size", "plot_sweep", "plot_tradeoff",
           "plot_ladder", "plot_frontier"]


# Text keywords that draw a string as it is: no mathtext between `$` signs, no TeX. For strings
# that come from data (token labels, model names), where `$$` would end the drawing with a parse error.
TEXT_AS_IS = {"usetex": False, "parse_math": False}

# Sizes. Every figure is meant to be shown at 1:1 (one PNG pixel = one CSS pixel) in a rendered notebook,
# whose content column is about 1000 px wide, and the README shows its images scaled to about 900 px.
# The rule: a figure drawn here is laid out at FIG_DPI (100) and at most MAX_WIDTH_PX / FIG_DPI inches
# wide; save_figure saves every PNG at most MAX_WIDTH_PX wide (it lowers the dpi of a wider figure, but
# never raises it); every text is at least MIN_FONT_PT (10 pt = 13.9 px at 100 dpi, and >= 10 px at any
# dpi >= 72). Exceptions, each marked on its figure for save_figure: plot_weight_grid's figure is
# pixel-exact (saved at its own dpi, no resampling of the tiles) and the whole token map of a large grid
# is a reference picture of up to FULL_MAP_MAX_WIDTH_PX, opened on its own.
FIG_DPI = 100
MAX_WIDTH_PX = 1000
README_WIDTH_PX = 900
FULL_MAP_MAX_WIDTH_PX = 6000
MIN_FONT_PT = 10.0
TITLE_PT = 12.0
# the rc settings of the figures drawn here, in a context around their drawing (never set globally)
STYLE = {"font.size": 11.0, "axes.titlesize": TITLE_PT, "axes.labelsize": 11.0, "xtick.labelsize": MIN_FONT_PT,
         "ytick.labelsize": MIN_FONT_PT, "legend.fontsize": MIN_FONT_PT, "legend.title_fontsize": MIN_FONT_PT,
         "figure.titlesize": TITLE_PT, "figure.dpi": FIG_DPI, "savefig.dpi": FIG_DPI, "savefig.pad_inches": 0.1}
_SAVE = "_hebb_save"  # the attribute of a figure that tells save_figure how to save it (see save_figure)


def _style():
    import matplotlib

    return matplotlib.rc_context(STYLE)


def _ticks_legible(*axes) -> None:
    """Tick labels of at least MIN_FONT_PT, also for the ticks matplotlib makes later, at draw time
    (outside the rc context), which read their size from the axis' tick keywords."""
    for ax in axes:
        ax.tick_params(which="both", labelsize=MIN_FONT_PT)


def png_size(path) -> tuple[int, int]:
    """(width, height) in pixels of a PNG/GIF/JPEG file."""
    from PIL import Image

    with Image.open(path) as im:
        return im.size


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


def _mosaic_rgb8(mosaic: np.ndarray) -> np.ndarray:
    """A mosaic in [0, 1] (H, W) or (H, W, 3) -> (H, W, 3) uint8, as the PNG stores it."""
    m = np.clip(np.asarray(mosaic, dtype=np.float64), 0.0, 1.0)
    if m.ndim == 2:
        m = np.repeat(m[..., None], 3, axis=-1)
    return np.round(m * 255).astype(np.uint8)


def fit_mosaic(mosaic: np.ndarray, max_width: int = MAX_WIDTH_PX) -> tuple[np.ndarray, int]:
    """The mosaic as uint8 RGB, shrunk by the smallest integer factor k that makes it at most
    `max_width` pixels wide (each k x k block of pixels -> its mean; the bottom and right edges are
    padded with white to a multiple of k) -> (image, k). k = 1: the mosaic as it is, pixel for pixel."""
    image = _mosaic_rgb8(mosaic)
    if max_width < 1:
        raise ValueError(f"max_width={max_width!r}: expected a positive number of pixels")
    k = -(-image.shape[1] // int(max_width))
    if k <= 1:
        return image, 1
    h, w = -(-image.shape[0] // k) * k, -(-image.shape[1] // k) * k
    padded = np.pad(image.astype(np.float64), ((0, h - image.shape[0]), (0, w - image.shape[1]), (0, 0)),
                    constant_values=255.0)
    blocks = padded.reshape(h // k, k, w // k, k, 3).mean(axis=(1, 3))
    return np.round(blocks).astype(np.uint8), k


def plot_weight_grid(W, grid, image_shape=(3, 32, 32), title: str | None = None, scale: float | None = None, *,
                     max_width: int = MAX_WIDTH_PX, dpi: float = FIG_DPI):
    """The weight tiles on the neuron grid (weight_tiles), drawn pixel for pixel: one pixel of the
    mosaic is one pixel of the PNG, so the figure shown at 1:1 shows every tile unscaled.

    The figure is the mosaic with a band above it for the title (TITLE_PT); it is exactly as wide as
    the mosaic (wider, centred, only when the title needs more room) and save_figure saves it at its own
    dpi, whatever dpi it is asked for. A 15 x 30 grid of 32 x 32 tiles with 1-px borders is 991 x 496
    pixels: 991 x 528 with its title. A mosaic wider than `max_width` pixels is shrunk by the smallest
    integer factor k that fits (each k x k block -> its mean, see fit_mosaic; the title then says
    "1 px = k x k px"); for every pixel of a larger map, save weight_tiles' array yourself.
    `scale` is ignored (it set inches per tile, before the figures were drawn pixel for pixel).
    """
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_agg import RendererAgg

    image, k = fit_mosaic(weight_tiles(W, grid, image_shape), max_width)
    if title and k > 1:
        title = f"{title} (1 px = {k} x {k} px)"
    h, w = image.shape[:2]
    band, title_w = 0, 0
    if title:
        from matplotlib.font_manager import FontProperties

        prop = FontProperties(size=TITLE_PT)
        title_w, title_h, _ = RendererAgg(10, 10, dpi).get_text_width_height_descent(title, prop, ismath=False)
        band = int(np.ceil(title_h + 1.2 * TITLE_PT * dpi / 72))  # the title and a margin above and below it
    fig_w = max(w, int(np.ceil(title_w)) + 12)
    fig_h = h + band
    with _style():
        fig = plt.figure(figsize=(fig_w / dpi, fig_h / dpi), dpi=dpi)
        left = (fig_w - w) // 2
        fig.figimage(image, xo=left, yo=0, origin="upper", resize=False)  # not resampled: pixel for pixel
        if title:
            fig.text(0.5, 1 - band / 2 / fig_h, title, ha="center", va="center", fontsize=TITLE_PT)
    # for save_figure, and for a check: where the image lies in the PNG, (left, top, width, height) in px
    setattr(fig, _SAVE, {"exact": True, "image_box": (left, band, w, h), "factor": k})
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


def _truncate(label: str, max_chars: int) -> str:
    """Each line of the label cut to max_chars characters, the last of them an ellipsis where cut."""
    return "\n".join(line if len(line) <= max_chars else line[:max_chars - 1] + "\u2026" for line in label.split("\n"))


def _tick_step(cell_px: float, need_px: float) -> int:
    """Every how many cells a tick label goes so that labels `need_px` wide do not touch."""
    for step in (1, 2, 5, 10, 20, 50, 100):
        if step * cell_px >= need_px:
            return step
    return 100


def plot_token_map(labels: Sequence[str], grid, title: str | None = None, cell_inches: float = 0.9,
                   fontsize: float = MIN_FONT_PT, colors: Sequence[float] | None = None,
                   region: tuple[int, int, int, int] | None = None, *,
                   color_label: str = "wins (tokens), log scale", color_scale: str = "log1p",
                   max_width: int | None = None, truncate: bool = True, dpi: float = FIG_DPI):
    """Draw each neuron's label (e.g. its top-3 tokens) as text in its cell of the (rows, cols) grid.

    `colors`: optional per-neuron value (e.g. win count, log-scaled) for the cell background, with a
    colourbar labelled `color_label`. color_scale="log1p" (the default): `colors` are log(1 + count), and
    the colourbar's ticks are labelled in counts (0, 1, 10, 100, ...); "linear": in the values as they are.
    `region=(row0, col0, height, width)`: draw only that window of the grid (a legible crop of a map too
    large to read whole). Rows and columns are ticked with their grid indices, on the left and on top.

    Sizes: text is drawn at `fontsize` points, at least MIN_FONT_PT (10 pt = 13.9 px at 100 dpi); a cell
    is `cell_inches` wide at most and tall enough for its lines of text. The figure is at most
    `max_width` pixels wide as saved (save_figure). Default: README_WIDTH_PX (900) for a crop (`region`
    given), so the README, which shows images about 900 px wide, shows it 1:1 and its text >= 10 px;
    for the whole grid MAX_WIDTH_PX (1000) when its cells can be 60 px wide within it, else
    FULL_MAP_MAX_WIDTH_PX (6000): a reference picture, opened on its own. At 10 pt, a window of 8 rows x
    10 columns of 3-token labels gives cells of ~70 x 60 px (8 characters a line) in 900 px.
    `truncate`: cut a line of a label that is wider than its cell (its last character an ellipsis) so
    that labels never run into each other; the CSV and the HTML map have the tokens whole.
    Labels and title are drawn as plain text, never as mathtext or TeX: a token such as `$$` or
    `$\\frac` is shown as it is (TEXT_AS_IS).
    """
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties
    from matplotlib.ticker import FixedFormatter, FixedLocator

    grid = Grid.of(grid, n=len(labels), what="labels")
    rows, cols = grid.rows, grid.cols
    r0, c0, h, w = region if region is not None else (0, 0, rows, cols)
    if not (0 <= r0 and 0 <= c0 and h >= 1 and w >= 1 and r0 + h <= rows and c0 + w <= cols):
        raise ValueError(f"region={region!r}: expected (row0, col0, height, width) inside the grid {grid.shape}")
    if colors is not None:
        if np.size(colors) != rows * cols or not np.isfinite(np.asarray(colors, dtype=float)).all():
            raise ValueError(f"colors: expected {rows * cols} finite numbers, one per neuron of the grid {grid.shape}")
    if color_scale not in ("log1p", "linear"):
        raise ValueError(f"color_scale={color_scale!r}: expected 'log1p' or 'linear'")
    fontsize = max(float(fontsize), MIN_FONT_PT)
    font_px = fontsize * dpi / 72
    pad_px = 2 * STYLE["savefig.pad_inches"] * dpi  # save_figure's margin around the tight box
    margins_px = 70 + (120 if colors is not None else 0)  # row ticks and label; the colourbar, its ticks, its label
    if max_width is None:
        if region is not None:
            max_width = README_WIDTH_PX
        else:
            max_width = MAX_WIDTH_PX if w * 60 + margins_px + pad_px <= MAX_WIDTH_PX else FULL_MAP_MAX_WIDTH_PX
    n_lines = max([str(labels[r * cols + c]).count("\n") + 1 for r in range(r0, r0 + h) for c in range(c0, c0 + w)])
    cell_w = min(cell_inches * dpi, (max_width - pad_px - margins_px) / w)
    cell_h = max(n_lines * 1.25 * font_px + 10, cell_inches * dpi * 0.5)
    top_px = 3.2 * TITLE_PT * dpi / 72 + (1.6 * TITLE_PT * dpi / 72 if title else 0)  # column ticks and label; title
    fig_w = w * cell_w + margins_px
    fig_h = max(h * cell_h + top_px + 12, 150)
    with _style():
        fig, ax = plt.subplots(figsize=(fig_w / dpi, fig_h / dpi), dpi=dpi, layout="constrained")
        fig.get_layout_engine().set(w_pad=2 / 72, h_pad=2 / 72)
        if colors is not None:
            values = np.asarray(colors, dtype=float)
            window = values.reshape(rows, cols)[r0:r0 + h, c0:c0 + w]
            vmax = float(np.max(values)) or 1.0
            im = ax.imshow(window, cmap="Greys", alpha=0.35, extent=(c0 - 0.5, c0 + w - 0.5, r0 + h - 0.5, r0 - 0.5),
                           aspect="auto", interpolation="nearest", vmin=0, vmax=vmax)
            bar_px = 18
            cbar = fig.colorbar(im, ax=ax, fraction=bar_px / (w * cell_w), pad=10 / (w * cell_w),
                                aspect=max(h * cell_h / bar_px, 2.0))
            cbar.set_label(color_label, **TEXT_AS_IS)
            if color_scale == "log1p":
                top = float(np.expm1(vmax))
                # ticks from 1: a "0" tick sits just under "1" (log1p(0) = 0, log1p(1) = 0.69) and reads as a
                # log scale reaching 0; a neuron of 0 wins is the bar's bottom, below the 1
                counts = [10 ** e for e in range(0, int(np.floor(np.log10(max(top, 1.0)))) + 1)]
                cbar.set_ticks(FixedLocator([float(np.log1p(v)) for v in counts]))
                cbar.ax.yaxis.set_major_formatter(FixedFormatter([f"{v:,}" for v in counts]))
                cbar.ax.yaxis.set_minor_locator(FixedLocator([]))
            _ticks_legible(cbar.ax)
        ax.set_xlim(c0 - 0.5, c0 + w - 0.5)
        ax.set_ylim(r0 + h - 0.5, r0 - 0.5)
        ax.set_xticks(np.arange(c0 - 0.5, c0 + w, 1), minor=True)
        ax.set_yticks(np.arange(r0 - 0.5, r0 + h, 1), minor=True)
        ax.grid(which="minor", color="0.85", linewidth=0.5)
        digits = len(str(max(r0 + h, c0 + w) - 1))
        col_step = _tick_step(cell_w, (digits + 1.5) * 0.65 * MIN_FONT_PT * dpi / 72)
        row_step = _tick_step(cell_h, 1.6 * MIN_FONT_PT * dpi / 72)
        ax.set_xticks([c for c in range(c0, c0 + w) if c % col_step == 0])
        ax.set_yticks([r for r in range(r0, r0 + h) if r % row_step == 0])
        ax.tick_params(which="minor", length=0)
        ax.tick_params(which="major", length=3, top=True, bottom=False, labeltop=True, labelbottom=False)
        _ticks_legible(ax)
        ax.xaxis.set_label_position("top")
        ax.set_xlabel("grid column")
        ax.set_ylabel("grid row")
        if title:
            ax.set_title(title, **TEXT_AS_IS)  # no wrap=True: wrapping measures the title as mathtext
        max_chars = None
        if truncate:
            fig.draw_without_rendering()  # the layout: how wide a cell came out
            cell_px = ax.get_window_extent().width / w
            prop = FontProperties(family="monospace", size=fontsize)
            char_px = RendererAgg(10, 10, dpi).get_text_width_height_descent("M" * 20, prop, ismath=False)[0] / 20
            max_chars = max(2, int((cell_px - 6) // char_px))
        for r in range(r0, r0 + h):
            for c in range(c0, c0 + w):
                label = str(labels[r * cols + c])
                text = ax.text(c, r, _truncate(label, max_chars) if max_chars else label, ha="center", va="center",
                               fontsize=fontsize, family="monospace", linespacing=1.1, clip_on=True, **TEXT_AS_IS)
                text.set_in_layout(False)
    setattr(fig, _SAVE, {"max_width": int(max_width)})
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


def plot_convergence(histories: dict, key: str, ylabel: str, title: str | None = None, logy: bool = False,
                     logx: bool = True, xlabel: str = "training step"):
    """One curve per named history (a list of dicts with 'step' and `key`).

    logx (default): the step axis is logarithmic (symlog, linear below step 1, so step 0 is drawn at 0):
    curves that converge in the first few percent of the run are spread out. Axis labels say the scale.
    """
    import matplotlib.pyplot as plt

    with _style():
        fig, ax = plt.subplots(figsize=(6.4, 3.8), layout="constrained")
        for name, history in histories.items():
            ax.plot([h["step"] for h in history], [h[key] for h in history], label=name)
        if logx:
            ax.set_xscale("symlog", linthresh=1, linscale=0.5)
        ax.set_xlabel(f"{xlabel} (log scale)" if logx else xlabel)
        ax.set_ylabel(f"{ylabel} (log scale)" if logy else ylabel)
        if logy:
            ax.set_yscale("log")
        if title:
            ax.set_title(title, wrap=True)
        ax.grid(alpha=0.3)
        ax.legend()
        _ticks_legible(ax)
    return fig


def _tight_width_inches(fig) -> float:
    """How wide savefig(bbox_inches="tight") makes the figure, in inches (its margin included)."""
    import matplotlib

    fig.draw_without_rendering()
    bbox = fig.get_tightbbox(fig._get_renderer())
    return float(bbox.width) + 2 * float(matplotlib.rcParams["savefig.pad_inches"])


def smallest_font_pt(fig) -> float | None:
    """The size in points of the smallest text the figure draws (tick labels made at draw time included);
    None for a figure without text. save_figure records it in the PNG (text chunk MIN_FONT_KEY), so that
    how large a figure's text prints where it is placed can be read from the file (tests/test_paper_figures.py)."""
    from matplotlib.text import Text

    fig.draw_without_rendering()
    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    return float(min(sizes)) if sizes else None


MIN_FONT_KEY = "min_font_pt"  # the PNG text chunk where save_figure records smallest_font_pt


def save_figure(fig, path, dpi: float | None = None, show: bool = True, max_width: int | None = None) -> Path:
    """Save a matplotlib figure atomically (PNG/SVG by the suffix), show the saved file inline when
    running in IPython (so a notebook shows exactly what it saved, at 1:1), and close the figure.

    A PNG records its smallest text's size in points (text chunk MIN_FONT_KEY) beside its dpi, so that the
    size its text prints at in the paper can be read from the file.

    Sizes: `dpi` (default FIG_DPI, 100) is lowered, never raised, so that the saved image is at most
    `max_width` pixels wide (default MAX_WIDTH_PX, 1000, or what the figure's helper set, e.g. a whole
    token map). A pixel-exact figure (plot_weight_grid) is saved at its own dpi, without a tight box,
    whatever `dpi` says, so its tiles are not resampled.
    """
    import matplotlib.pyplot as plt

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    spec = getattr(fig, _SAVE, {})
    smallest = smallest_font_pt(fig) if fmt == "png" else None
    meta = {"metadata": {MIN_FONT_KEY: f"{smallest:.2f}"}} if smallest is not None else {}
    try:
        if spec.get("exact"):
            with atomic_path(path) as tmp:
                fig.savefig(tmp, dpi=fig.dpi, format=fmt, **meta)
        else:
            cap = int(max_width or spec.get("max_width") or MAX_WIDTH_PX)
            dpi = float(dpi or FIG_DPI)
            with atomic_path(path) as tmp:
                dpi = min(dpi, (cap - 1) / _tight_width_inches(fig))
                for _ in range(4):  # the tight box in inches moves a little with the dpi (text is hinted)
                    fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=fmt, **meta)
                    if fmt != "png" or (width := png_size(tmp)[0]) <= cap:
                        break
                    dpi *= (cap - 1) / width
    finally:
        plt.close(fig)
    if show:
        show_images([path])
    return path


def _pixel_width(path: Path) -> int | None:
    try:
        return png_size(path)[0]
    except Exception:  # not an image PIL reads (an SVG): shown as wide as the page allows
        return None


def images_html(paths, titles: Sequence[str] | None = None, width: str | None = None) -> str:
    """The HTML that show_images displays: each image embedded as a data URI, at its own pixel width
    (1:1, never stretched; narrower only where the page is), side by side while they fit, else one
    under the other. `width` (CSS, e.g. "60%"): the most each image may take."""
    paths = [Path(p) for p in paths]
    titles = list(titles) if titles is not None else [None] * len(paths)
    cells = []
    for p, title in zip(paths, titles):
        data = base64.b64encode(p.read_bytes()).decode("ascii")
        mime = mimetypes.guess_type(p.name)[0] or "image/png"
        px = _pixel_width(p)
        size = f' width="{px}"' if px else ""
        style = f"width:{px}px;max-width:100%;height:auto" if px else "max-width:100%"
        caption = f"<figcaption>{html.escape(title)}</figcaption>" if title else ""
        cells.append(f'<figure style="display:inline-block;max-width:{width or "100%"};margin:0 0.5% 0.5em 0;'
                     f'vertical-align:top"><img src="data:{mime};base64,{data}" alt="{html.escape(p.name)}"{size} '
                     f'style="{style}">{caption}</figure>')
    return "<div>" + "".join(cells) + "</div>"


def show_images(paths, titles: Sequence[str] | None = None, width: str | None = None) -> None:
    """Display saved images (PNG, GIF, ...) in IPython, each at its own pixel width (images_html).

    For figures that belong together (the CIFAR grids with and without lateral support) and for the
    training animation; outside IPython it does nothing. The page needs no network. `width` (CSS, e.g.
    "60%") caps each image; an image is never shown wider than it is.
    """
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
    except ImportError:  # pragma: no cover
        return
    if get_ipython() is None:
        return
    display(HTML(images_html(paths, titles, width)))


def plot_sweep(runs: dict, settings: Sequence[str], metrics: dict, reference: dict | None = None,
               title: str | None = None, xlabel: str = "setting (run)"):
    """Metrics against a setting, mean and 95% interval over seeds, one panel per metric.

    runs: name -> a `summarise_seeds` entry; settings: the run names, in the order of the x axis;
    metrics: metric -> axis label; reference: label -> run drawn as a horizontal band (mean and
    interval), e.g. {"MiniSom": runs["cifar / minisom"]}. At most 3 panels a row (a figure <= 9.6 in).
    """
    import matplotlib.pyplot as plt

    n = len(metrics)
    ncols = min(n, 3)
    nrows = -(-n // ncols)
    names = [s.split(" / ")[-1] for s in settings]
    label_inches = 0.075 * max(len(n) for n in names)  # the upright tick labels' height (10 pt: ~0.075 in a character)
    with _style():
        fig, axes = plt.subplots(nrows, ncols, figsize=(min(3.2 * ncols + 0.4, 9.6), (3.2 + label_inches) * nrows + 0.4),
                                 squeeze=False, layout="constrained")
        x = np.arange(len(settings))
        for ax, (metric, label) in zip(axes.flat, metrics.items()):
            mean = np.array([runs[s]["mean"][metric] for s in settings])
            lo, hi = (np.array([runs[s]["ci95"][metric][i] for s in settings]) for i in (0, 1))
            ax.errorbar(x, mean, yerr=[mean - lo, hi - mean], fmt="o-", capsize=3, color="C0", label="annealed SoftHebb")
            for k, (name, run) in enumerate((reference or {}).items()):
                if metric in run.get("mean", {}):
                    r_lo, r_hi = run["ci95"][metric]
                    ax.axhspan(r_lo, r_hi, color=f"C{k + 1}", alpha=0.2)
                    ax.axhline(run["mean"][metric], color=f"C{k + 1}", lw=1, label=name)
            ax.set_xticks(x, names, rotation=90)  # upright: one line of text apart, never overlapping
            ax.set_xlabel(xlabel)
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            _ticks_legible(ax)
        for ax in list(axes.flat)[n:]:
            ax.set_axis_off()
        handles, names = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, names, loc="outside lower center", ncols=min(len(names), 4))  # under the panels
        if title:
            fig.suptitle(title, wrap=True)
    return fig


def _finish_one_panel(fig, ax, xlabel: str, ylabel: str, title: str | None) -> None:
    """Axis labels, grid, the legend outside below the axes (it hides no point, and a long title above
    cannot run into it, as it did beside the title on the right) and the title of a one-panel figure."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    handles, names = ax.get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=min(len(names), 3) or 1)
    if title:
        fig.suptitle(title, wrap=True)
    _ticks_legible(ax)


def plot_tradeoff(runs: dict, names: Sequence[str], x: str, y: str, labels: dict | None = None,
                  title: str | None = None):
    """One point per run, `y` against `x`, with both 95% intervals over seeds: a trade-off curve.

    names: the runs to draw (each a `summarise_seeds` entry in runs); labels: axis labels by metric.
    The legend is outside the axes, below them, so it hides no point.
    """
    import matplotlib.pyplot as plt

    labels = labels or {}
    with _style():
        fig, ax = plt.subplots(figsize=(8.8, 4.8), layout="constrained")
        for k, name in enumerate(names):
            run = runs[name]
            mx, my = run["mean"][x], run["mean"][y]
            (x_lo, x_hi), (y_lo, y_hi) = run["ci95"][x], run["ci95"][y]
            ax.errorbar([mx], [my], xerr=[[mx - x_lo], [x_hi - mx]], yerr=[[my - y_lo], [y_hi - my]], fmt="o",
                        capsize=3, color=f"C{k % 10}", label=name.split(" / ")[-1])
        _finish_one_panel(fig, ax, labels.get(x, x), labels.get(y, y), title)
    return fig


def plot_ladder(ladder_runs: dict, metrics: dict, methods: Sequence[str] | None = None, x: str = "samples",
                title: str | None = None):
    """Metrics against the samples ladder (x="samples", log axis) or against the CPU seconds each run
    took (x="cpu_seconds"): one line per method through its rungs, mean and 95% interval over seeds.

    ladder_runs: experiments.ladder's "runs" ({str(rung): {method: summarised seeds}}); metrics:
    metric -> axis label; methods: which to draw, in legend order (default: all, as in the first rung).
    """
    import matplotlib.pyplot as plt

    rungs = sorted(ladder_runs, key=int)
    methods = list(methods or ladder_runs[rungs[0]])
    n = len(metrics)
    with _style():
        fig, axes = plt.subplots(1, n, figsize=(min(3.2 * n + 0.4, 9.6), 3.8), squeeze=False, layout="constrained")
        for ax, (metric, label) in zip(axes.flat, metrics.items()):
            for k, method in enumerate(methods):
                runs = [ladder_runs[r][method] for r in rungs if method in ladder_runs[r]]
                xs = np.array([run["mean"][x] for run in runs])
                mean = np.array([run["mean"][metric] for run in runs])
                lo, hi = (np.array([run["ci95"][metric][i] for run in runs]) for i in (0, 1))
                ax.errorbar(xs, mean, yerr=[mean - lo, hi - mean], fmt="o-", ms=3, capsize=2, color=f"C{k % 10}",
                            label=method)
            ax.set_xscale("log")
            ax.set_xlabel("training samples" if x == "samples" else "CPU seconds (one thread)")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            _ticks_legible(ax)
        handles, names = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, names, loc="outside lower center", ncols=min(len(names), 4))
        if title:
            fig.suptitle(title, wrap=True)
    return fig


def plot_frontier(points: dict, x: str = "l0", y: str = "explained_variance", labels: dict | None = None,
                  title: str | None = None):
    """The sparsity frontier: y (explained variance) against x (L0), one line per method through its
    settings. points: method -> list of {x: ..., y: ...} (one per setting, e.g. per k)."""
    import matplotlib.pyplot as plt

    labels = labels or {}
    with _style():
        fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
        for k, (method, rows) in enumerate(points.items()):
            rows = sorted(rows, key=lambda r: r[x])
            ax.plot([r[x] for r in rows], [r[y] for r in rows], "o-", ms=4, color=f"C{k % 10}", label=method)
        ax.set_xscale("log")
        _finish_one_panel(fig, ax, labels.get(x, x), labels.get(y, y), title)
    return fig
