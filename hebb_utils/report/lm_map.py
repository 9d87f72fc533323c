"""The 2D neuron map of words of one trained layer: notebook 5's map, as files (`python -m hebb_utils map`).

`write_token_map` reads the layer on every token in one streaming pass (analysis.neuron_summary,
a shard at a time for a sharded store), measures it (analysis.softhebb_metrics) and writes

    {prefix}map.png          the whole grid, each neuron named by its top distinct tokens
    {prefix}map_crop.png     the `crop` window whose neurons win most, legible
    {prefix}map.html         the interactive page (token_map.token_map_html), with an optional
                             subtitle and header links to sibling maps (`links`: (label, relative href))
    {prefix}top_tokens.csv   neuron, row, col, wins, token_1 .. token_k
    {prefix}metrics.json     topographic error, distance correlation, dead fraction, token purity

All five or none: every setting, the output folder and the inputs are checked first, then the files
are written in a staging folder inside the output folder and moved in together at the end. The
metrics file is strict JSON (a NaN, e.g. the null's mean with n_shuffles=0, is written as null);
a token cell of the CSV that a spreadsheet would run as a formula (=, +, -, @, tab, CR first) gets
a leading apostrophe. A 1D grid (n,) is drawn as one row.
"""
from __future__ import annotations

import contextlib
import numbers
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..data.store import is_activation_folder
from ..io import check_writable, strict_json

__all__ = ["write_token_map", "draw_token_map", "source_of", "map_files", "check_map_settings", "check_map_output",
           "spreadsheet_safe", "MAP_FILES"]

# the files of the map, after the prefix (draw_token_map writes the first four)
MAP_FILES = ("map.png", "map_crop.png", "map.html", "top_tokens.csv", "metrics.json")
# first characters that make a spreadsheet read a CSV cell as a formula (OWASP's list)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# a file name holds at most 255 bytes; atomic_path's temporary name adds ~16 to the longest, map_crop.png
PREFIX_MAX_BYTES = 200


def source_of(data) -> dict:
    """activations.activations_source of `data`, or for a store made without a model record
    (shards.write_shards of your own matrix) a plain label of its size."""
    from ..data.store import activations_source

    if "model" in data.meta:
        return activations_source(data)
    n, d = data.shape
    return {"model": None, "data_source": data.meta.get("data_source"), "counts": data.meta.get("counts"),
            "label": f"{n:,} rows x {d} (no model recorded)"}


def map_files(out_dir: str | os.PathLike, prefix: str = "lm_") -> list[Path]:
    """The five files write_token_map writes: out_dir / (prefix + name) for name in MAP_FILES."""
    return [Path(out_dir) / f"{prefix}{name}" for name in MAP_FILES]


def spreadsheet_safe(cell):
    """A CSV cell that a spreadsheet shows as text: a string starting with =, +, -, @, a tab or a
    carriage return gets a leading apostrophe ("'=SUM(A1)"), and a carriage return inside it is
    written visibly as \\r (as top_distinct_tokens writes a newline: the csv writer does not quote a
    bare CR, which would split the row). Anything else is returned as it is."""
    if not isinstance(cell, str):
        return cell
    return ("'" + cell if cell.startswith(FORMULA_START) else cell).replace("\r", "\\r")


def check_map_settings(*, top_tokens: int = 3, purity_top: int = 20, n_shuffles: int = 100,
                       crop: tuple[int, int] = (10, 12), prefix: str = "lm_", seed: int = 42,
                       subtitle: str = "", links=(), units: str = "SoftHebb neurons") -> dict:
    """The settings of write_token_map checked (each error names its argument), as a dict.

    crop: (rows, cols), two positive integers; a crop larger than the grid shows the whole grid.
    prefix: a file name prefix (no folder: no '/'), at most 200 bytes.
    subtitle: a line under the page's title; links: (label, relative href) pairs of sibling pages
    for the page's header (token_map.check_links); units: what the grid's units are, as the page names them.
    """
    from ..checks import positive_int
    from .token_map import check_links

    out = {"top_tokens": positive_int("top_tokens", top_tokens, hint="distinct tokens that name a neuron"),
           "purity_top": positive_int("purity_top", purity_top, hint="activations per neuron for token purity"),
           "n_shuffles": positive_int("n_shuffles", n_shuffles, minimum=0, hint="shuffled grids of the null"),
           "seed": positive_int("seed", seed, minimum=0)}
    if (not isinstance(crop, (tuple, list)) or len(crop) != 2
            or not all(isinstance(c, numbers.Integral) and not isinstance(c, (bool, np.bool_)) and c >= 1 for c in crop)):
        raise ValueError(f"crop={crop!r}: expected (rows, cols), two positive integers such as (10, 12)")
    out["crop"] = (int(crop[0]), int(crop[1]))
    if not isinstance(prefix, str):
        raise ValueError(f"prefix={prefix!r}: expected a string (a file name prefix such as 'lm_')")
    seps = {"/", "\0", os.sep} | ({os.altsep} if os.altsep else set())
    if any(s in prefix for s in seps):
        raise ValueError(f"prefix={prefix!r}: expected a file name prefix, without '/' (choose the folder with out_dir)")
    if len(prefix.encode("utf-8", "surrogatepass")) > PREFIX_MAX_BYTES:
        raise ValueError(f"prefix: {len(prefix)} characters; expected at most {PREFIX_MAX_BYTES} bytes (a file name)")
    out["prefix"] = prefix
    if not isinstance(subtitle, str):
        raise ValueError(f"subtitle={subtitle!r}: expected a string (a line under the page's title)")
    out["subtitle"] = subtitle
    out["links"] = check_links(links)
    if not isinstance(units, str) or not units.strip():
        raise ValueError(f"units={units!r}: expected a short name of the map's units, e.g. 'SAE latents'")
    out["units"] = units
    return out


def check_map_output(out_dir: str | os.PathLike, prefix: str = "lm_", *, name: str = "out_dir",
                     protect: dict | None = None, protect_folders: dict | None = None,
                     files: list[str] = MAP_FILES) -> Path:
    """Refuse (ValueError naming `name`) an output folder the map cannot or must not be written to:
    a file, a folder under a file or without write permission, a folder that is or lies inside one
    of `protect_folders` ({label: folder}, e.g. the activations) or holds an activation store, and
    file names that are one of `protect` ({label: file}, e.g. the checkpoint). Writes nothing."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{name}={out}: is a file, not a folder for the map's files")
    check_writable(out, name)
    if is_activation_folder(out):
        raise ValueError(f"{name}={out}: is a folder of activations; write the map's files to another folder")
    resolved = out.resolve()
    for label, folder in (protect_folders or {}).items():
        folder = Path(folder).resolve()
        if resolved == folder or folder in resolved.parents:
            raise ValueError(f"{name}={out}: lies inside {label} {folder}; write the map's files to another folder")
    targets = [out / f"{prefix}{f}" for f in files]
    for target in targets:
        if target.is_dir():
            raise ValueError(f"{name}={out}: {target.name} there is a folder, in the way of the map's file")
        for label, path in (protect or {}).items():
            path = Path(path)
            same = target.resolve() == path.resolve() or (target.exists() and path.exists()
                                                          and os.path.samefile(target, path))
            if same:
                raise ValueError(f"{name}={out} with prefix {prefix!r} would overwrite {label} {path}; "
                                 "choose another folder or prefix")
    return out


def write_token_map(layer, data, out_dir: str | os.PathLike, *, top_tokens: int = 3, purity_top: int = 20,
                    n_shuffles: int = 100, crop: tuple[int, int] = (10, 12), seed: int = 42, prefix: str = "lm_",
                    label: str | None = None, config: dict | None = None, show: bool = False, subtitle: str = "",
                    links=()) -> dict:
    """Map figures, interactive page, token table and metrics of `layer` (with lateral support) on
    `data` (an Activations or a shards.ShardedActivations with its token table). Returns the metrics.

    Everything is checked before the first file is written, and the five files are moved into
    out_dir together at the end: a failure leaves none of them (see the module's docstring).
    subtitle, links: for the page's header (see draw_token_map).
    """
    from ..checks import check_finite
    from ..experiments.softhebb import as_layer
    from ..measure.maps import neuron_summary, softhebb_metrics
    from .tables import write_results

    layer = as_layer(layer)
    if layer.lateral is None:
        raise ValueError("layer: has no lateral support, so no grid to draw; train it with a grid")
    for key, value in layer.state_dict().items():
        if isinstance(value, torch.Tensor):
            check_finite(f"layer's {key}", value)
    settings = check_map_settings(top_tokens=top_tokens, purity_top=purity_top, n_shuffles=n_shuffles, crop=crop,
                                  prefix=prefix, seed=seed, subtitle=subtitle, links=links)
    top_tokens, purity_top, n_shuffles, crop, seed = (settings[k] for k in
                                                      ("top_tokens", "purity_top", "n_shuffles", "crop", "seed"))
    folder = getattr(data, "folder", None)
    out_dir = check_map_output(out_dir, prefix, protect_folders={"the activations": folder} if folder else None)
    n, d = data.shape
    if d != layer.in_features:
        raise ValueError(f"the activations have {d} features per token but the layer was trained on "
                         f"in_features={layer.in_features}: pass the activations it was trained on")
    tokens = _token_table(data, n)
    X = _rows(data)
    source = source_of(data)
    # as notebook 05: one pass keeps the strongest tokens of each neuron and each token's two best neurons
    summary = neuron_summary(layer, X, top=min(max(purity_top, 50), n))
    token_ids = torch.from_numpy(tokens["token_id"].to_numpy(copy=True))
    metrics = softhebb_metrics(layer, X, layer.lateral.grid.shape, token_ids=token_ids,
                               purity_top=min(purity_top, n), n_shuffles=n_shuffles, seed=seed, summary=summary)
    with _staged(out_dir) as stage:
        _draw_files(summary, tokens, layer.lateral.grid, stage, top_tokens=top_tokens, crop=crop, seed=seed,
                    prefix=prefix, label=label or source["label"], show=show, subtitle=settings["subtitle"],
                    links=settings["links"], units=settings["units"])
        write_results(stage / f"{prefix}metrics.json", "map",
                      strict_json({**(config or {}), "top_tokens": top_tokens, "purity_top": purity_top,
                                   "n_shuffles": n_shuffles, "crop": list(crop), "seed": seed}),
                      strict_json(metrics), source=strict_json(source), device=str(layer.weight.device))
    return metrics


def draw_token_map(summary: dict, tokens, grid, out_dir: str | os.PathLike, *, top_tokens: int = 3,
                   crop: tuple[int, int] = (10, 12), seed: int = 42, prefix: str = "lm_", label: str = "",
                   show: bool = False, subtitle: str = "", links=(), units: str = "SoftHebb neurons"):
    """The files of the map of words from one streaming pass (`analysis.neuron_summary` of the layer
    on every token, with top >= 50): {prefix}map.png, {prefix}map_crop.png (shown inline with
    show=True), {prefix}map.html and {prefix}top_tokens.csv. Returns the token table (pandas).
    Notebook 05 and `python -m hebb_utils map` both draw their map with it. The inputs are checked
    first and the four files moved into out_dir together: all of them or none.

    subtitle: a line under the page's title (e.g. "annealed lateral support: the topographic layer");
    links: (label, relative href) pairs shown in the page's header, e.g.
    [("fixed support", "lm_fixed_map.html")] to link the sibling map beside it; units: what the grid's
    units are, as the page names them ("SAE latents", "Hebbian pursuit units")."""
    settings = check_map_settings(top_tokens=top_tokens, crop=crop, prefix=prefix, seed=seed, subtitle=subtitle,
                                  links=links, units=units)
    out_dir = check_map_output(out_dir, settings["prefix"], files=MAP_FILES[:4])
    with _staged(out_dir) as stage:
        return _draw_files(summary, tokens, grid, stage, top_tokens=settings["top_tokens"], crop=settings["crop"],
                           seed=settings["seed"], prefix=prefix, label=label, show=show,
                           subtitle=settings["subtitle"], links=settings["links"], units=settings["units"])


def _draw_files(summary: dict, tokens, grid, out_dir: Path, *, top_tokens: int, crop: tuple[int, int], seed: int,
                prefix: str, label: str, show: bool, units: str, subtitle: str = "", links=()):
    """draw_token_map's four files, written straight into out_dir (a staging folder)."""
    import pandas as pd

    from ..checks import Grid
    from ..io import atomic_path
    from ..measure.maps import top_distinct_tokens
    from .plots import busiest_window, plot_token_map, save_figure
    from .token_map import context_snippets, token_map_html, token_texts

    grid = Grid.of(grid)
    rows, cols = grid.rows, grid.cols  # a 1D grid (n,) is one row
    if isinstance(summary, dict):  # numpy arrays as tensors
        summary = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in summary.items()}
    _check_summary(summary, grid.n, len(tokens))
    # raw byte-level BPE symbols ("Ġthe") named as text (" the"); decoded strings stay as they are
    names = top_distinct_tokens(summary["top_index"], token_texts(tokens["token"]), k=top_tokens)
    wins = torch.bincount(summary["best2"][:, 0], minlength=rows * cols)
    labels = ["\n".join(names_j) if w > 0 else "" for names_j, w in zip(names, wins.tolist())]
    table = pd.DataFrame({"neuron": range(rows * cols), "row": [j // cols for j in range(rows * cols)],
                          "col": [j % cols for j in range(rows * cols)], "wins": wins.numpy(),
                          **{f"token_{i + 1}": [t[i] if i < len(t) else "" for t in names] for i in range(top_tokens)}})
    safe = table.copy()  # the CSV's token cells never start a spreadsheet formula; the returned table is as named
    for i in range(top_tokens):
        safe[f"token_{i + 1}"] = safe[f"token_{i + 1}"].map(spreadsheet_safe)
    with atomic_path(out_dir / f"{prefix}top_tokens.csv") as tmp:
        safe.to_csv(tmp, index=False)
    shade = torch.log1p(wins.double()).numpy()
    support = subtitle.split(" (")[0] or "lateral support"  # "annealed lateral support (width ...)" -> its name
    fig = plot_token_map(labels, (rows, cols), title=f"2D neuron map of words ({label})", colors=shade)
    save_figure(fig, out_dir / f"{prefix}map.png", dpi=110, show=False)  # the whole grid: too large to show
    region = busiest_window(wins.numpy(), (rows, cols), crop)
    fig = plot_token_map(labels, (rows, cols), colors=shade, region=region, cell_inches=1.25, fontsize=8,
                         title=f"Rows {region[0]}-{region[0] + region[2] - 1}, columns {region[1]}-"
                               f"{region[1] + region[3] - 1} of the {rows} x {cols} map ({support}, seed {seed})")
    save_figure(fig, out_dir / f"{prefix}map_crop.png", dpi=110, show=show)
    snippets = context_snippets(summary["top_index"], tokens, n_snippets=3, width=8)
    token_map_html(out_dir / f"{prefix}map.html", (rows, cols), names, wins.numpy(), snippets,
                   title=f"2D neuron map of words: {label}",
                   note=f"{rows * cols} {units} on a {rows} x {cols} grid ({support}, seed {seed}), "
                        f"each named by its top-{top_tokens} distinct tokens; colour: how many of the {len(tokens):,} "
                        "tokens it wins (log scale).", subtitle=subtitle, links=links)
    return table


def _check_summary(summary, n: int, n_tokens: int) -> None:
    """A neuron_summary of n neurons whose rows index a token table of n_tokens rows."""
    if not isinstance(summary, dict) or "best2" not in summary or "top_index" not in summary:
        raise ValueError("summary: expected the dict of analysis.neuron_summary (best2, top_index)")
    best2, top_index = summary["best2"], summary["top_index"]
    if not isinstance(best2, torch.Tensor) or best2.dim() != 2 or best2.shape[0] < 1 or best2.is_floating_point():
        raise ValueError("summary['best2']: expected the (samples, 2) integer tensor of analysis.neuron_summary")
    if int(best2[:, 0].min()) < 0 or int(best2[:, 0].max()) >= n:
        raise ValueError(f"summary['best2']: neuron indices must lie in [0, {n}) (the grid's neurons)")
    if not isinstance(top_index, torch.Tensor) or top_index.dim() != 2 or top_index.shape[1] != n \
            or top_index.is_floating_point():
        raise ValueError(f"summary['top_index']: expected a (top, {n}) integer tensor (one column per neuron of the grid)")
    if top_index.numel() and (int(top_index.min()) < 0 or int(top_index.max()) >= n_tokens):
        raise ValueError(f"summary['top_index']: rows must lie in [0, {n_tokens}) (the token table's length)")


def _token_table(data, n: int):
    """data's token table, checked against its n rows; a damaged table is refused naming its file."""
    try:
        tokens = data.tokens
    except FileNotFoundError as e:
        raise ValueError(f"the token table of the activations is missing a file, {e}; the store is damaged: "
                         "extract it again") from None
    missing = [c for c in ("token_id", "token", "story_id", "position") if c not in getattr(tokens, "columns", ())]
    if missing:
        raise ValueError(f"{_token_file(data, 0)}: the token table has no column(s) {missing}; "
                         "the map names neurons by their tokens")
    bad = None
    if "row" in tokens.columns:
        rows = tokens["row"].to_numpy()
        m = min(len(rows), n)
        wrong = np.flatnonzero(rows[:m] != np.arange(m))
        bad = int(wrong[0]) if wrong.size else None
    if bad is None and len(tokens) != n:
        bad = min(len(tokens), n) - 1 if len(tokens) > n else max(len(tokens) - 1, 0)
    if bad is not None:
        raise ValueError(f"{_token_file(data, bad)}: the token table has {len(tokens):,} rows for {n:,} activation "
                         f"rows and disagrees with them from row {bad} on; the store is damaged: extract it again")
    null = np.flatnonzero(tokens["token"].isna().to_numpy())
    if null.size:
        raise ValueError(f"{_token_file(data, int(null[0]))}: {null.size} token string(s) of the token table are "
                         f"missing (null), the first at row {null[0]}; the map names neurons by their tokens")
    return tokens


def _token_file(data, row: int) -> str:
    """The file of data's token table that holds `row` (a store's shard table, the artifact's tokens.parquet)."""
    folder = getattr(data, "folder", None)
    shards = getattr(data, "meta", {}).get("shards") if getattr(data, "legacy", None) is None else None
    if folder is not None and shards and hasattr(data, "offsets"):
        k = int(np.clip(np.searchsorted(data.offsets, row, side="right") - 1, 0, len(shards) - 1))
        return str(Path(folder) / shards[k].get("tokens_file", "?"))
    if folder is not None:
        return str(Path(folder) / "tokens.parquet")
    return "the token table"


@contextlib.contextmanager
def _staged(out_dir: Path):
    """A fresh staging folder inside out_dir (made if needed); on success its files are moved into
    out_dir, then it is removed. On failure nothing reaches out_dir, and the folders made are removed."""
    made = []  # the folders this call creates, out_dir first
    p = out_dir
    while not p.exists() and p != p.parent:
        made.append(p)
        p = p.parent
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=".map-staging-", dir=out_dir))
    except OSError as e:
        _remove_empty(made)
        raise ValueError(f"out_dir={out_dir}: cannot write there ({e.strerror or e})") from None
    done = False
    try:
        yield stage
        for f in sorted(stage.iterdir()):
            os.replace(f, out_dir / f.name)
        done = True
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if not done:
            _remove_empty(made)


def _remove_empty(folders) -> None:
    for folder in folders:  # innermost first; stop at the first that is not empty
        try:
            folder.rmdir()
        except OSError:
            break


def _rows(data):
    """In memory (an Activations) as a float32 tensor, or streamed shard by shard (a ShardedActivations)."""
    return torch.from_numpy(np.asarray(data.acts, dtype=np.float32)) if hasattr(data, "acts") else data
