"""The 2D neuron map of words of one trained layer: notebook 5's map, as files (`python -m hebb_utils map`).

`write_token_map` reads the layer on every token in one streaming pass (analysis.neuron_summary,
a shard at a time for a sharded store), measures it (analysis.softhebb_metrics) and writes

    {prefix}map.png          the whole grid, each neuron named by its top distinct tokens
    {prefix}map_crop.png     the `crop` window whose neurons win most, legible
    {prefix}map.html         the interactive page (token_map.token_map_html)
    {prefix}top_tokens.csv   neuron, row, col, wins, token_1 .. token_k
    {prefix}metrics.json     topographic error, distance correlation, dead fraction, token purity
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

__all__ = ["write_token_map", "draw_token_map", "source_of"]


def source_of(data) -> dict:
    """activations.activations_source of `data`, or for a store made without a model record
    (shards.write_shards of your own matrix) a plain label of its size."""
    from ..data.activations import activations_source

    if "model" in data.meta:
        return activations_source(data)
    n, d = data.shape
    return {"model": None, "data_source": data.meta.get("data_source"), "counts": data.meta.get("counts"),
            "label": f"{n:,} rows x {d} (no model recorded)"}


def write_token_map(layer, data, out_dir: str | os.PathLike, *, top_tokens: int = 3, purity_top: int = 20,
                    n_shuffles: int = 100, crop: tuple[int, int] = (10, 12), seed: int = 42, prefix: str = "lm_",
                    label: str | None = None, config: dict | None = None, show: bool = False) -> dict:
    """Map figures, interactive page, token table and metrics of `layer` (with lateral support) on
    `data` (an Activations or a shards.ShardedActivations with its token table). Returns the metrics.
    """
    from ..measure.analysis import _layer, neuron_summary, softhebb_metrics
    from ..checks import positive_int
    from .tables import write_results

    layer = _layer(layer)
    if layer.lateral is None:
        raise ValueError("layer: has no lateral support, so no grid to draw; train it with a grid")
    top_tokens, purity_top = positive_int("top_tokens", top_tokens), positive_int("purity_top", purity_top)
    X = _rows(data)
    n = data.shape[0]
    source = source_of(data)
    # as notebook 05: one pass keeps the strongest tokens of each neuron and each token's two best neurons
    summary = neuron_summary(layer, X, top=min(max(purity_top, 50), n))
    token_ids = torch.from_numpy(data.tokens["token_id"].to_numpy(copy=True))
    metrics = softhebb_metrics(layer, X, layer.lateral.grid.shape, token_ids=token_ids,
                               purity_top=min(purity_top, n), n_shuffles=n_shuffles, seed=seed, summary=summary)
    draw_token_map(summary, data.tokens, layer.lateral.grid, out_dir, top_tokens=top_tokens, crop=crop, seed=seed,
                   prefix=prefix, label=label or source["label"], show=show)
    write_results(Path(out_dir) / f"{prefix}metrics.json", "map", {**(config or {}), "top_tokens": top_tokens,
                  "purity_top": purity_top, "n_shuffles": n_shuffles, "crop": list(crop), "seed": seed},
                  metrics, source=source, device=str(layer.weight.device))
    return metrics


def draw_token_map(summary: dict, tokens, grid, out_dir: str | os.PathLike, *, top_tokens: int = 3,
                   crop: tuple[int, int] = (10, 12), seed: int = 42, prefix: str = "lm_", label: str = "",
                   show: bool = False):
    """The files of the map of words from one streaming pass (`analysis.neuron_summary` of the layer
    on every token, with top >= 50): {prefix}map.png, {prefix}map_crop.png (shown inline with
    show=True), {prefix}map.html and {prefix}top_tokens.csv. Returns the token table (pandas).
    Notebook 05 and `python -m hebb_utils map` both draw their map with it."""
    import pandas as pd

    from ..measure.analysis import top_distinct_tokens
    from ..checks import Grid
    from ..io import atomic_path
    from .plots import busiest_window, plot_token_map, save_figure
    from .token_map import context_snippets, token_map_html

    grid = Grid.of(grid)
    rows, cols = grid.rows, grid.cols
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = top_distinct_tokens(summary["top_index"], tokens["token"], k=top_tokens)
    wins = torch.bincount(summary["best2"][:, 0], minlength=rows * cols)
    labels = ["\n".join(names_j) if w > 0 else "" for names_j, w in zip(names, wins.tolist())]
    table = pd.DataFrame({"neuron": range(rows * cols), "row": [j // cols for j in range(rows * cols)],
                          "col": [j % cols for j in range(rows * cols)], "wins": wins.numpy(),
                          **{f"token_{i + 1}": [t[i] if i < len(t) else "" for t in names] for i in range(top_tokens)}})
    with atomic_path(out_dir / f"{prefix}top_tokens.csv") as tmp:
        table.to_csv(tmp, index=False)
    shade = torch.log1p(wins.double()).numpy()
    fig = plot_token_map(labels, grid.shape, title=f"2D neuron map of words ({label})", colors=shade)
    save_figure(fig, out_dir / f"{prefix}map.png", dpi=110, show=False)  # the whole grid: too large to show
    region = busiest_window(wins.numpy(), grid.shape, crop)
    fig = plot_token_map(labels, grid.shape, colors=shade, region=region, cell_inches=1.25, fontsize=8,
                         title=f"Rows {region[0]}-{region[0] + region[2] - 1}, columns {region[1]}-"
                               f"{region[1] + region[3] - 1} of the {rows} x {cols} map (lateral support, seed {seed})")
    save_figure(fig, out_dir / f"{prefix}map_crop.png", dpi=110, show=show)
    snippets = context_snippets(summary["top_index"], tokens, n_snippets=3, width=8)
    token_map_html(out_dir / f"{prefix}map.html", grid.shape, names, wins.numpy(), snippets,
                   title=f"2D neuron map of words: {label}",
                   note=f"{rows * cols} SoftHebb neurons on a {rows} x {cols} grid (lateral support, seed {seed}), "
                        f"each named by its top-{top_tokens} distinct tokens; colour: how many of the {len(tokens):,} "
                        "tokens it wins (log scale).")
    return table


def _rows(data):
    """In memory (an Activations) as a float32 tensor, or streamed shard by shard (a ShardedActivations)."""
    return torch.from_numpy(np.asarray(data.acts, dtype=np.float32)) if hasattr(data, "acts") else data
