"""Figure sizes: every saved PNG fits a ~1000-px notebook column at 1:1, its text is >= 10 px there
(and in the README, which shows images ~900 px wide), the weight grid is the mosaic pixel for pixel,
and every plot says what its axes and colours are. Each check reads the saved pixels or the drawn artists."""
from __future__ import annotations

import numpy as np
import pytest
import torch

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from PIL import Image  # noqa: E402

from hebb_utils.report import plots  # noqa: E402
from hebb_utils.report.plots import (busiest_window, images_html, plot_convergence, plot_sweep,  # noqa: E402
                                     plot_token_map, plot_tradeoff, plot_weight_grid, png_size, save_figure,
                                     weight_tiles)

COLUMN_PX, README_PX, MIN_TEXT_PX = 1000, 900, 10.0


def _rgb(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _save(fig, path, **kw):
    """save_figure, and the dpi it really saved at (PNG width / the figure's tight width in inches),
    measured before saving, for the text checks below."""
    spec = getattr(fig, plots._SAVE, {})
    tight_in = None if spec.get("exact") else plots._tight_width_inches(fig)
    save_figure(fig, path, show=False, **kw)
    width, height = png_size(path)
    return width, height, (fig.dpi if tight_in is None else width / tight_in)


def _texts(fig):
    fig.draw_without_rendering()
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def _assert_text_px(fig, saved_dpi, shown_scale=1.0, minimum=MIN_TEXT_PX):
    """Every visible text is >= `minimum` px as shown: its em size, and the height of its drawn box."""
    renderer = fig._get_renderer()
    texts = _texts(fig)
    assert texts
    for t in texts:
        em = t.get_fontsize() * saved_dpi / 72 * shown_scale
        box = t.get_window_extent(renderer).height / fig.dpi * saved_dpi * shown_scale
        assert em >= minimum and box >= minimum, (t.get_text()[:40], em, box)


def _histories():
    return {"Hebb with decay": [{"step": s, "cos": 1 - np.exp(-s / 30)} for s in range(0, 3000, 10)],
            "Oja": [{"step": s, "cos": 1 - np.exp(-s / 80)} for s in range(0, 3000, 10)]}


def _run(values: dict) -> dict:
    return {"mean": {k: float(np.mean(v)) for k, v in values.items()},
            "ci95": {k: (float(np.min(v)), float(np.max(v))) for k, v in values.items()}}


def _runs():
    rng = np.random.default_rng(0)
    names = [f"cifar / annealed gain {g}" for g in (0.1, 0.3, 1.0, 3.0)] + ["cifar / annealed radius end 0.5",
                                                                            "cifar / annealed lr 0.05"]
    metrics = ("topographic_error", "probe_triangle_test_acc", "distance_rho")
    runs = {n: _run({m: rng.random(3) for m in metrics})
            for n in names + ["cifar / minisom", "cifar / softhebb fixed support"]}
    return runs, names


def _lm_map(rows=30, cols=60, seed=0):
    """Labels as lm_map draws them: a neuron's top-3 tokens, one per line; '' for a neuron that never wins."""
    rng = np.random.default_rng(seed)
    words = ["\u00b7the", "\u00b7was", "\u00b7little", "\u00b7Suddenly", "Luc", "\u00b7elephant", "'t", ",",
             "\u00b7necklace", "\u00b7she", "ing", "\u00b7Timmy"]
    wins = np.where(rng.random(rows * cols) < 0.8, rng.integers(1, 3000, rows * cols), 0)
    labels = ["\n".join(rng.choice(words, 3, replace=False)) if w else "" for w in wins]
    return labels, wins, np.log1p(wins.astype(float))


# 1. the weight grid: the mosaic, pixel for pixel -----------------------------------------------------

def test_cifar_weight_grid_png_is_the_mosaic_pixel_for_pixel(tmp_path):
    W = torch.randn(450, 3 * 32 * 32, generator=torch.Generator().manual_seed(0))
    fig = plot_weight_grid(W, (15, 30), title="CIFAR-10 SoftHebb, 15 x 30, lateral support")
    width, height, dpi = _save(fig, tmp_path / "grid.png", dpi=110)  # the notebooks ask for 110: ignored
    _assert_text_px(fig, dpi)
    mosaic = weight_tiles(W, (15, 30))
    assert mosaic.shape == (496, 991, 3)
    assert width == 991 <= COLUMN_PX  # 1:1 in a 1000-px column, no margin
    expected = np.round(mosaic.astype(np.float64) * 255).astype(np.uint8)  # 8 bits a channel
    png = _rgb(tmp_path / "grid.png")
    band = height - 496
    assert 20 <= band <= 60  # a title band above the mosaic, nothing below it
    assert np.array_equal(png[band:, :], expected)  # every pixel unscaled, unshifted
    assert (png[:band] == 255).mean() > 0.9 and (png[:band] < 128).any()  # the band holds the (dark) title


def test_grey_weight_grid_is_pixel_exact_and_a_long_title_widens_the_figure(tmp_path):
    W = torch.randn(12, 64, generator=torch.Generator().manual_seed(1))
    title = "a long title, wider than the small mosaic it names, drawn whole"
    fig = plot_weight_grid(W, (3, 4), image_shape=(1, 8, 8), title=title)
    width, height, dpi = _save(fig, tmp_path / "grey.png")
    _assert_text_px(fig, dpi)
    mosaic = np.round(weight_tiles(W, (3, 4), image_shape=(1, 8, 8)).astype(np.float64) * 255).astype(np.uint8)  # (28, 37)
    left, top, w, h = getattr(fig, plots._SAVE)["image_box"]
    assert (w, h) == (37, 28) and width > 37 and height == top + 28
    png = _rgb(tmp_path / "grey.png")
    assert np.array_equal(png[top:, left:left + w], np.repeat(mosaic[..., None], 3, axis=-1))


def test_a_mosaic_wider_than_the_column_is_shrunk_by_an_integer_factor(tmp_path):
    W = torch.randn(160, 3 * 32 * 32, generator=torch.Generator().manual_seed(2))
    fig = plot_weight_grid(W, (4, 40), title="4 x 40")  # 40 * 33 + 1 = 1321 px wide
    width, height, _ = _save(fig, tmp_path / "wide.png")
    assert width == 661 <= COLUMN_PX  # 1321 / 2, rounded up
    mosaic = np.round(weight_tiles(W, (4, 40)).astype(np.float64) * 255)
    padded = np.pad(mosaic, ((0, 1), (0, 1), (0, 0)), constant_values=255.0)  # to a multiple of 2
    blocks = np.round(padded.reshape(67, 2, 661, 2, 3).mean(axis=(1, 3))).astype(np.uint8)
    png = _rgb(tmp_path / "wide.png")
    assert np.array_equal(png[height - 67:], blocks)
    assert "1 px = 2 x 2 px" in fig.texts[0].get_text()


# 2. widths and text sizes of the typical calls -------------------------------------------------------

def test_typical_plots_fit_the_column_with_text_of_at_least_10_px(tmp_path):
    runs, names = _runs()
    figures = {
        "convergence": (plot_convergence(_histories(), "cos", "|cos| with the top eigenvector",
                                         title="Hebb with linear decay"), {}),
        "sweep": (plot_sweep(runs, names, {"topographic_error": "topographic error (8-nbr)",
                                           "probe_triangle_test_acc": "probe on relu(u - mean)",
                                           "distance_rho": "distance rho"},
                             reference={"MiniSom": runs["cifar / minisom"],
                                        "fixed support": runs["cifar / softhebb fixed support"]},
                             title="Annealed SoftHebb on CIFAR-10, 15 x 30 (first point: gain 0.3)"), {"dpi": 110}),
        "tradeoff": (plot_tradeoff(runs, ["cifar / minisom", "cifar / softhebb fixed support"] + names,
                                   "topographic_error", "probe_triangle_test_acc",
                                   labels={"topographic_error": "topographic error (8-nbr), lower = more topographic",
                                           "probe_triangle_test_acc": "linear probe on relu(u - mean)"},
                                   title="CIFAR-10, 15 x 30: topography against read-out (3 seeds each)"), {"dpi": 110}),
    }
    for name, (fig, kw) in figures.items():
        width, _, dpi = _save(fig, tmp_path / f"{name}.png", **kw)
        assert width <= COLUMN_PX, (name, width)
        _assert_text_px(fig, dpi)
        for ax in fig.axes:
            if ax.axison:
                assert ax.get_xlabel() and ax.get_ylabel(), name


def test_save_figure_caps_any_figure_at_the_column_width(tmp_path):
    fig, ax = plt.subplots(figsize=(14, 3))  # a caller's own figure, wider than the column
    ax.plot([0, 1], [0, 1])
    ax.set(xlabel="x", ylabel="y")
    width, _, _ = _save(fig, tmp_path / "wide.png", dpi=150)
    assert COLUMN_PX - 30 <= width <= COLUMN_PX
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, 1])
    width, _, dpi = _save(fig, tmp_path / "small.png")
    assert dpi == pytest.approx(plots.FIG_DPI, rel=0.05) and width < 500  # small stays small: never enlarged


def test_convergence_has_a_log_step_axis_that_keeps_step_0():
    fig = plot_convergence(_histories(), "cos", "|cos|")
    ax = fig.axes[0]
    assert ax.get_xscale() in ("symlog", "log")
    assert "log" in ax.get_xlabel()
    x = ax.lines[0].get_xdata()
    assert x[0] == 0 and np.isfinite(ax.transData.transform([[x[0], 0.5]])).all()  # step 0 is drawn
    # log: step 10 sits halfway between step 1 and step 100 on the screen
    px = ax.transData.transform([[1, 0], [10, 0], [100, 0]])[:, 0]
    assert px[1] - px[0] == pytest.approx(px[2] - px[1], rel=1e-6)
    plt.close(fig)
    fig = plot_convergence(_histories(), "cos", "|cos|", logx=False)
    assert fig.axes[0].get_xscale() == "linear"
    plt.close(fig)


# 3. the token map --------------------------------------------------------------------------------

@pytest.mark.parametrize("crop", [(8, 10), (10, 12)])
def test_token_map_crop_is_legible_in_the_readme(tmp_path, crop):
    labels, wins, shade = _lm_map()
    region = busiest_window(wins, (30, 60), crop)
    # as lm_map._draw_files calls it
    fig = plot_token_map(labels, (30, 60), colors=shade, region=region, cell_inches=1.25, fontsize=8,
                         title=f"Rows {region[0]}-{region[0] + region[2] - 1}, columns {region[1]}-"
                               f"{region[1] + region[3] - 1} of the 30 x 60 map (lateral support, seed 42)")
    width, height, dpi = _save(fig, tmp_path / "crop.png", dpi=110)
    assert width <= README_PX
    _assert_text_px(fig, dpi, shown_scale=min(1.0, README_PX / width))
    ax, cax = fig.axes
    r0, c0, h, w = region
    assert [t.get_text() for t in ax.get_xticklabels() if t.get_visible()] == [str(c) for c in range(c0, c0 + w)]
    assert [t.get_text() for t in ax.get_yticklabels() if t.get_visible()] == [str(r) for r in range(r0, r0 + h)]
    assert ax.get_xlabel() and ax.get_ylabel()
    assert cax.get_ylabel() == "wins (tokens), log scale"
    # the colourbar is ticked in wins: 1, 10, 100, 1,000 at log(1 + wins)
    ticks = dict(zip([t.get_text() for t in cax.get_yticklabels()], cax.get_yticks()))
    assert ticks["10"] == pytest.approx(np.log1p(10)) and ticks["1,000"] == pytest.approx(np.log1p(1000))
    # every label is drawn, whole or cut with an ellipsis, and none is wider than its cell
    renderer = fig._get_renderer()
    cell_px = ax.get_window_extent(renderer).width / w
    texts = ax.texts
    assert len(texts) == h * w
    for t, label in zip(texts, (labels[r * 60 + c] for r in range(r0, r0 + h) for c in range(c0, c0 + w))):
        for shown, whole in zip(t.get_text().split("\n"), label.split("\n")):
            assert shown == whole or (shown.endswith("\u2026") and whole.startswith(shown[:-1]))
        assert t.get_window_extent(renderer).width <= cell_px


def test_token_map_without_truncation_keeps_labels_and_a_linear_scale_is_labelled():
    labels, _, _ = _lm_map(4, 5)
    fig = plot_token_map(labels, (4, 5), colors=np.arange(20.0), truncate=False, color_scale="linear",
                         color_label="purity")
    ax, cax = fig.axes
    assert [t.get_text() for t in ax.texts] == labels and cax.get_ylabel() == "purity"
    plt.close(fig)
    with pytest.raises(ValueError, match="color_scale"):
        plot_token_map(labels, (4, 5), colors=np.arange(20.0), color_scale="log")


def test_whole_token_map_is_a_reference_picture_of_at_most_6000_px(tmp_path):
    labels, wins, shade = _lm_map()
    fig = plot_token_map(labels, (30, 60), title="2D neuron map of words (test)", colors=shade)
    width, _, dpi = _save(fig, tmp_path / "map.png", dpi=110)
    assert COLUMN_PX < width <= plots.FULL_MAP_MAX_WIDTH_PX
    _assert_text_px(fig, dpi)
    assert fig.axes[1].get_ylabel()
    # a small grid's whole map fits the column
    labels, _, shade = _lm_map(6, 10)
    width, _, _ = _save(plot_token_map(labels, (6, 10), colors=shade), tmp_path / "small.png", dpi=110)
    assert width <= COLUMN_PX


# 4. shown at 1:1 -------------------------------------------------------------------------------------

def test_images_are_shown_at_their_pixel_width(tmp_path, monkeypatch):
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.plot([0, 1])
    path = save_figure(fig, tmp_path / "a.png", show=False)
    width = png_size(path)[0]
    page = images_html([path, path], titles=["one", "two"])
    assert page.count(f'width="{width}"') == 2 and f"width:{width}px;max-width:100%" in page
    assert "width:100%" not in page.replace("max-width:100%", "")  # never stretched to the column
    assert "max-width:60%" in images_html([path], width="60%")  # a cap, not a size
    shown = []
    monkeypatch.setattr(plots, "show_images", lambda paths, *a, **k: shown.append(list(paths)))
    fig, ax = plt.subplots()
    save_figure(fig, tmp_path / "b.png")
    assert shown == [[tmp_path / "b.png"]]


def test_the_ladder_and_frontier_figures_draw_one_line_per_method_through_its_points():
    import matplotlib.pyplot as plt

    from hebb_utils.measure.seeds import summarise_seeds
    from hebb_utils.report.plots import plot_frontier, plot_ladder

    def run(n, v):
        return summarise_seeds([{"seed": s, "samples": n, "cpu_seconds": n / 1e4 + s, "mmcs": v + 0.01 * s}
                                for s in range(3)])

    ladder_runs = {"1000": {"a": run(1000, 0.5), "b": run(1000, 0.3)}, "3000": {"a": run(3000, 0.7), "b": run(3000, 0.4)}}
    for x in ("samples", "cpu_seconds"):
        fig = plot_ladder(ladder_runs, {"mmcs": "MMCS"}, x=x, title="t")
        lines = [container.lines[0] for container in fig.axes[0].containers]  # each errorbar's data line
        assert len(lines) == 2 and fig.axes[0].get_xscale() == "log"
        assert [t.get_text() for t in fig.legends[0].get_texts()] == ["a", "b"]
        assert list(lines[0].get_ydata()) == pytest.approx([0.51, 0.71])  # method a, mean over seeds, by rung
        expected_x = [1000, 3000] if x == "samples" else [1.1, 1.3]
        assert list(lines[0].get_xdata()) == pytest.approx(expected_x)
        plt.close(fig)
    fig = plot_frontier({"a": [{"l0": 4, "explained_variance": 0.9}, {"l0": 1, "explained_variance": 0.5}]})
    (line,) = fig.axes[0].get_lines()
    assert list(line.get_xdata()) == [1, 4] and list(line.get_ydata()) == [0.5, 0.9]  # sorted by L0
    plt.close(fig)
    # a long title and long method names: the title stays clear of the legend (it ran into it as an axes title)
    fig = plot_frontier({f"sae matching pursuit {i}": [{"l0": 1, "explained_variance": 0.5}] for i in range(3)},
                        title="Sharkey's toy, L0 5: explained variance against L0 (first seed), a long title")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    title, legend = fig._suptitle.get_window_extent(renderer), fig.legends[0].get_window_extent(renderer)
    assert not title.overlaps(legend)
    plt.close(fig)
