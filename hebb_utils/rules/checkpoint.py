"""One checkpoint format for a trained SoftHebb layer: one writer, one reader, one finiteness check.

A checkpoint holds one layer, SoftHebb's (rules/layer.py) or Hebbian matching pursuit's
(rules/pursuit.py: config["rule"] = "pursuit"). It is a torch file of plain types and tensors (read back with weights_only=True, so a
file from elsewhere cannot run code on loading):

    {"format": "hebb_utils.checkpoint/1",
     "state_dict": the layer's tensors (CPU),
     "config": what rebuilds the layer (its rule, grid, in_features, seed; SoftHebb's t_invert, lateral
               support and legacy_batch_winner; the pursuit's k, residual_threshold and h0) and how it
               was trained (lr, epochs, batch size, ...),
     "published": the published settings of hebb_utils/settings.py, for comparison,
     ...: what the writer adds (the data's source, the wins per neuron, timings)}

The command line's `train` and the notebooks' ablations write it with `save_checkpoint`;
`load_checkpoint` rebuilds the layer from any of them.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from ..checks import Grid
from ..io import atomic_torch_save
from ..settings import PUBLISHED
from .lateral import Lateral, LateralSchedule
from .layer import SoftHebbLinear
from .pursuit import PursuitLinear

__all__ = ["FORMAT", "save_checkpoint", "load_checkpoint", "layer_config", "lateral_of", "check_finite_state"]

FORMAT = "hebb_utils.checkpoint/1"
REQUIRED = {"softhebb": ("grid", "in_features", "t_invert", "seed"), "pursuit": ("grid", "in_features", "k", "seed")}


def layer_config(layer: SoftHebbLinear | PursuitLinear) -> dict:
    """What rebuilds `layer` (its rule, grid, sizes, seed; SoftHebb's t_invert and lateral support, the
    pursuit's k, residual_threshold, h0 and offset), as plain types; the inverse of lateral_of for the support."""
    if isinstance(layer, PursuitLinear):
        grid = [layer.out_features] if layer.grid is None else list(layer.grid.shape)
        return {"rule": "pursuit", "grid": grid, "in_features": layer.in_features, "k": layer.k,
                "residual_threshold": layer.residual_threshold, "h0": layer.h0, "offset": layer.offset,
                "seed": layer.seed}
    lateral = layer.lateral
    config = {"in_features": layer.in_features, "t_invert": layer.t_invert, "seed": layer.seed,
              "legacy_batch_winner": layer.legacy_batch_winner, "lateral": lateral is not None}
    if lateral is None:
        return {"grid": [layer.out_features], **config}
    config["grid"] = list(lateral.grid.shape)
    if isinstance(lateral, LateralSchedule):
        (r0, r1), (g0, g1) = lateral.radius, lateral.gain
        return {**config, "radius": r0, "gain": g0, "radius_end": r1, "gain_end": g1, "shape": lateral.shape,
                "decay": lateral.decay}
    return {**config, "radius": lateral.radius, "gain": lateral.gain, "shape": lateral.shape}


def lateral_of(config: dict):
    """The lateral support a checkpoint's config describes: none, the fixed Lateral, or a LateralSchedule
    when an end radius or gain is given (configs written before these existed: the disc)."""
    if not config.get("lateral", True):
        return None
    grid, shape = tuple(config["grid"]), config.get("shape", "disc")
    radius_end, gain_end = config.get("radius_end"), config.get("gain_end")
    if radius_end is None and gain_end is None:
        return Lateral(grid, radius=config["radius"], gain=config["gain"], shape=shape)
    radius = (config["radius"], config["radius"] if radius_end is None else radius_end)
    gain = (config["gain"], config["gain"] if gain_end is None else gain_end)
    extra = {"decay": config["decay"]} if "decay" in config else {}
    return LateralSchedule(grid, radius=radius, gain=gain, shape=shape, **extra)


def check_finite_state(state: dict, where: str, what: str = "the checkpoint's") -> None:
    """The one finiteness check of a checkpoint's tensors: a ValueError naming `where` and the tensor when a
    floating tensor of `state` holds NaN or inf."""
    for key, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ValueError(f"{where}: {what} {key} holds NaN or inf values (a diverged or edited "
                             "layer): train again")


def save_checkpoint(path, layer: SoftHebbLinear | PursuitLinear, training: dict | None = None, **extra) -> Path:
    """Write `layer` to `path` atomically (never half-written) in the one checkpoint format.

    training: how it was trained (lr, epochs, batch_size, ...), merged into the config after
    layer_config(layer); extra: more top-level entries (plain types and tensors). A layer with NaN
    or inf weights is refused (nothing is written)."""
    state = {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in layer.state_dict().items()}
    check_finite_state(state, str(path), "nothing written: the layer's")
    saved = {"format": FORMAT, "state_dict": state, "config": {**layer_config(layer), **(training or {})},
             "published": {data: s.as_dict() for data, s in PUBLISHED.items()}, **extra}
    return atomic_torch_save(path, _plain(saved))


def _plain(obj):
    """Nested dicts/lists of Python numbers, strings and tensors (what torch.load(weights_only=True) reads)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def load_checkpoint(path, device="cpu") -> tuple[SoftHebbLinear | PursuitLinear, dict]:
    """The SoftHebbLinear (or PursuitLinear) of a checkpoint (built from its config, then its state_dict), in eval mode, and
    the file's dict.

    Anything that is not a usable checkpoint (another file, an edited config, NaN weights) raises
    ValueError naming the file; a missing file FileNotFoundError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}" + (" (it is a folder)" if path.is_dir() else "") +
                                f": make one with `python -m hebb_utils train ... --out {path}`")
    what = f"{path}: not a checkpoint of `python -m hebb_utils train`"
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  not a torch file, or objects that weights_only refuses to unpickle
        detail = " ".join(str(e).split())
        if "Weights only load failed" in detail or "Unsupported global" in detail:
            found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", detail)
            raise ValueError(f"{what}: it holds objects other than tensors, numbers, strings, lists and dicts"
                             f"{f' ({found[1]})' if found else ''}, which are not unpickled (that could run code); "
                             "train it again with this version") from None
        raise ValueError(f"{what} (unreadable: {type(e).__name__}: {detail[:200]})") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict) \
            or not isinstance(saved.get("state_dict"), dict):
        raise ValueError(f"{what} (no config / state_dict)")
    if saved.get("format", FORMAT) != FORMAT:  # files written before the format was named have none
        raise ValueError(f"{what}: its format is {saved['format']!r}, this version reads {FORMAT!r}")
    c = saved["config"]
    rule = c.get("rule", "softhebb")  # files written before the pursuit rule existed: SoftHebb's
    if rule not in REQUIRED:
        raise ValueError(f"{what}: its config names the rule {rule!r}, this version reads {sorted(REQUIRED)}")
    missing = [k for k in REQUIRED[rule] if k not in c]
    if missing:
        raise ValueError(f"{what}: its config lacks {missing}")
    check_finite_state(saved["state_dict"], str(path))
    try:
        n = Grid.of(tuple(c["grid"])).n
        if rule == "pursuit":
            grid = tuple(c["grid"]) if len(c["grid"]) == 2 else None
            layer = PursuitLinear(c["in_features"], n, c["k"], c.get("residual_threshold", 0.0), grid=grid,
                                  h0=c.get("h0", 1.0), offset=bool(c.get("offset", False)), seed=c["seed"],
                                  device=device)
            layer.load_state_dict(saved["state_dict"])
            return layer.eval(), saved
        lateral = lateral_of(c)
        layer = SoftHebbLinear(c["in_features"], n, c["t_invert"], lateral=lateral, seed=c["seed"], device=device,
                               legacy_batch_winner=bool(c.get("legacy_batch_winner", False)))
        layer.load_state_dict(saved["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"{what}: its config and weights do not make a layer ({type(e).__name__}: "
                         f"{' '.join(str(e).split())[:300]})") from None
    return layer.eval(), saved
