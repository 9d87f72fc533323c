"""The published SoftHebb layer and its ablations, and how to read them: one streaming pass over
the data, then the metrics.

The LM run has ~10^5-10^6 tokens and 1800 neurons: the full response matrix would take gigabytes,
so `neuron_summary` streams over the samples and keeps only what the metrics need (each sample's
two best neurons; each neuron's strongest samples).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..checks import Grid, check_finite, matrix, positive_int
from .seeds import summarise_seeds
from .metrics import dead_fraction, distance_correlation, label_selectivity_from_winners, token_purity_from_top, topographic_error_from_winners
from ..io import atomic_torch_save
from ..rules.lateral import Lateral
from ..rules.layer import SoftHebbLinear
from ..rules.training import train_softhebb
from ..rules.som import SOM

__all__ = ["calibrate_normalisation", "train_ablations", "ablations_over_seeds", "neuron_summary", "top_distinct_tokens",
           "softhebb_metrics", "map_metrics", "methods_over_seeds", "triangle_activation", "as_layer"]


def triangle_activation(u: torch.Tensor) -> torch.Tensor:
    """relu(u - mean_j u): each response minus the sample's mean response, rectified (u (B, N)).

    The non-linearity that reads SoftHebb layers in Journe et al. 2023: only neurons that respond
    more than average to a sample stay on, so the features are sparse, unlike the linear u.
    """
    u = matrix("u", u)
    return torch.relu(u - u.mean(dim=1, keepdim=True))


@torch.no_grad()
def calibrate_normalisation(layer: SoftHebbLinear, X: torch.Tensor) -> SoftHebbLinear:
    """Set the layer's BatchNorm running statistics to the exact mean and (unbiased) variance of X.

    For an untrained baseline (random weights) that must be read with the same kind of
    normalisation as the trained layers.
    """
    X = matrix("X", X, as_layer(layer).in_features, dtype=layer.weight.dtype, min_rows=2, cols_name="in_features")
    layer.bn.running_mean.copy_(X.double().mean(0))
    layer.bn.running_var.copy_(X.double().var(0))
    return layer.eval()


def train_ablations(X, grid, t_invert: float, *, lr: float, radius: float = 1.0, gain: float = 0.3,
                    epochs: int = 1, batch_size: int = 64, seed: int = 42, device="cpu",
                    snapshot_every: int | None = None, checkpoint_dir=None, checkpoint_prefix: str = "",
                    checkpoint_meta: dict | None = None, progress: bool = True) -> tuple[dict, torch.Tensor, dict]:
    """Train the SoftHebb layer with 2D lateral support and its ablations on X (samples, D).

    Every variant starts from the same weights (`seed`) and sees the same shuffled batches:
      "lateral support"      the paper's layer (per-sample winner);
      "no lateral support";
      "legacy batch winner"  the published batch-wide winner flip, with lateral support;
      "random weights"       the untrained initial weights, read with the data's exact normalisation.
    Returns (layers by name, the "lateral support" run's snapshots (every `snapshot_every` steps),
    training seconds by name). With `checkpoint_dir`, each trained layer is saved there atomically
    as `{checkpoint_prefix}{name with underscores}.pt` with `checkpoint_meta`.
    """
    import time

    grid = Grid.of(grid)
    n_neurons = grid.n
    lateral = Lateral(grid, radius=radius, gain=gain)
    variants = {
        "lateral support": dict(lateral=lateral, legacy_batch_winner=False),
        "no lateral support": dict(lateral=None, legacy_batch_winner=False),
        "legacy batch winner": dict(lateral=lateral, legacy_batch_winner=True),
    }
    layers, train_seconds, snapshots = {}, {}, None
    for name, variant in variants.items():
        layer = SoftHebbLinear(X.shape[1], n_neurons, t_invert, seed=seed, device=device, **variant)
        start = time.perf_counter()
        layers[name], snaps = train_softhebb(
            layer, X, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device,
            snapshot_every=snapshot_every if name == "lateral support" else None, progress=progress)
        train_seconds[name] = round(time.perf_counter() - start, 2)
        if name == "lateral support":
            snapshots = snaps
        if checkpoint_dir is not None:
            atomic_torch_save(Path(checkpoint_dir) / f"{checkpoint_prefix}{name.replace(' ', '_')}.pt",
                              {"state_dict": layers[name].state_dict(), "variant": name, **(checkpoint_meta or {})})
    layers["random weights"] = calibrate_normalisation(
        SoftHebbLinear(X.shape[1], n_neurons, t_invert, seed=seed, device=device), X)
    return layers, snapshots, train_seconds


def ablations_over_seeds(X, grid, t_invert: float, seeds, measure, *, snapshot_every: int | None = None,
                         checkpoint_dir=None, **train_kwargs) -> tuple[dict, dict, torch.Tensor]:
    """`train_ablations` once per seed, each layer measured right away, then summarised over seeds.

    measure(name, layer, seed) -> dict of numbers for one trained layer (e.g. softhebb_metrics
    plus probes). The seed sets both the initial weights and the batch order. Only the first
    seed's layers are kept (for the figures), with its snapshots and checkpoints, so memory does
    not grow with the number of seeds.
    Returns (runs, layers of seeds[0], snapshots of seeds[0]) where runs[name] is
    `summarise_seeds` of that variant: mean, ci95, std, n_by_metric and the per-seed `seeds` list
    (each with its "train_seconds").
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds: expected at least one seed")
    per_seed: dict[str, list[dict]] = {}
    first_layers, first_snapshots = None, None
    for seed in seeds:
        first = seed == seeds[0]
        layers, snapshots, seconds = train_ablations(
            X, grid, t_invert, seed=seed, snapshot_every=snapshot_every if first else None,
            checkpoint_dir=checkpoint_dir if first else None, **train_kwargs)
        for name, layer in layers.items():
            row = {"seed": seed, **measure(name, layer, seed)}
            if name in seconds:
                row["train_seconds"] = seconds[name]
            per_seed.setdefault(name, []).append(row)
        if first:
            first_layers, first_snapshots = layers, snapshots
    return {name: summarise_seeds(rows) for name, rows in per_seed.items()}, first_layers, first_snapshots


@torch.no_grad()
def _responder(model):
    """(in_features, N, device, responses(batch)) of a SoftHebb layer (eval mode: its trained
    normalisation) or a SOM (minus the distances: larger = the nearer unit)."""
    if isinstance(model, SOM):
        return model.weights.shape[1], model.weights.shape[0], model.weights.device, model.responses
    layer = as_layer(model).eval()
    return layer.in_features, layer.out_features, layer.weight.device, lambda x: layer(x.to(layer.weight.dtype))


def neuron_summary(layer: SoftHebbLinear | SOM, X, top: int = 50, batch_size: int = 8192) -> dict:
    """One pass over X (samples, D) with the layer in eval mode (its trained normalisation), or a SOM.

    Returns
      best2 (S, 2) int64: each sample's best and second-best neuron (by u); (S, 1) for a layer of
        one neuron, which has no second best;
      top_index, top_values (top, N): each neuron's `top` strongest samples, strongest first.
    X stays where it is (often the CPU); each batch moves to the layer's device and dtype. X may
    also be a streamed store (shards.ShardedActivations): it is then read one shard at a time.
    """
    from ..data.store import ShardedActivations

    in_features, N, device, respond = _responder(layer)
    top, batch_size = positive_int("top", top), positive_int("batch_size", batch_size)
    streamed = isinstance(X, ShardedActivations)
    if streamed:
        if X.dim != in_features:
            raise ValueError(f"X has {X.dim} features per row: expected in_features={in_features}")
        S, chunks = len(X), X.batches(batch_size)
    else:
        X = matrix("X", X, in_features, cols_name="in_features")
        S, chunks = X.shape[0], (X[start:start + batch_size] for start in range(0, X.shape[0], batch_size))
    if top > S:
        raise ValueError(f"top={top}: expected 1 <= top <= {S} (the number of samples)")
    best2 = torch.empty(S, min(2, N), dtype=torch.int64)
    top_values = torch.full((0, N), float("-inf"), device=device)
    top_index = torch.empty((0, N), dtype=torch.int64, device=device)
    start = 0
    for chunk in chunks:
        if streamed:  # an in-memory X was checked whole by `matrix`; a store's rows are checked as they come
            check_finite(f"X (the activations of {X.folder}, rows {start}..{start + chunk.shape[0] - 1})", chunk)
        u = respond(chunk.to(device))  # (b, N)
        best2[start:start + u.shape[0]] = u.topk(best2.shape[1], dim=1).indices.cpu()
        values, index = u.topk(min(top, u.shape[0]), dim=0)  # (k, N) strongest in this chunk
        values = torch.cat([top_values, values])
        index = torch.cat([top_index, index + start])
        keep = values.topk(min(top, values.shape[0]), dim=0).indices
        top_values, top_index = values.gather(0, keep), index.gather(0, keep)
        start += u.shape[0]
    return {"best2": best2, "top_index": top_index.cpu(), "top_values": top_values.cpu()}


def top_distinct_tokens(top_index: torch.Tensor, tokens: Sequence[str], k: int = 3) -> list[list[str]]:
    """For each neuron, its first `k` distinct token strings in order of activation strength.

    top_index (top, N) from `neuron_summary`; tokens: the token string of every sample (a list,
    array or pandas Series). Whitespace is made visible (a leading space becomes a middle dot,
    a newline "\\n") so that ' the' and 'the' stay apart.
    """
    k = positive_int("k", k, hint="distinct tokens listed per neuron")
    tokens = np.asarray(tokens, dtype=object)
    out = []
    for column in top_index.T.tolist():  # one short list per neuron, not a pass over the samples
        seen: list[str] = []
        for token in tokens[column]:
            token = str(token).replace(" ", "\u00b7").replace("\n", "\\n")
            if token not in seen:
                seen.append(token)
                if len(seen) == k:
                    break
        out.append(seen)
    return out


def softhebb_metrics(layer: SoftHebbLinear, X, grid=None, *, labels=None, n_labels: int | None = None,
                     token_ids=None, purity_top: int = 20, n_shuffles: int = 100, seed: int = 0,
                     summary: dict | None = None, batch_size: int = 8192) -> dict:
    """The topographic and specificity numbers of one trained layer, on samples X.

    topographic_error (8- and 4-neighbourhood), distance_rho with its shuffled-grid null and
    p-value, dead_fraction; with `labels`: class purity of the neurons (label_selectivity); with
    `token_ids`: the mean token purity of the live neurons' top-`purity_top` activations.
    `summary`: a `neuron_summary` of the same layer and X with top >= purity_top, if already made.
    grid: the layer's lateral grid (None: that one); a layer without lateral support needs one.
    Another grid than the layer's is refused: the metrics would describe a map the layer never had.
    """
    grid = _layer_grid(as_layer(layer), grid)
    return map_metrics(layer, X, grid, labels=labels, n_labels=n_labels, token_ids=token_ids, purity_top=purity_top,
                       n_shuffles=n_shuffles, seed=seed, summary=summary, batch_size=batch_size)


def map_metrics(model: SoftHebbLinear | SOM, X, grid, *, labels=None, n_labels: int | None = None, token_ids=None,
                purity_top: int = 20, n_shuffles: int = 100, seed: int = 0, summary: dict | None = None,
                batch_size: int = 8192) -> dict:
    """softhebb_metrics for any map on `grid`: a SoftHebb layer (any grid of its size) or a SOM
    (each method's own winner rule: the largest u for SoftHebb, the nearest unit for the SOM)."""
    weight = model.weights if isinstance(model, SOM) else as_layer(model).weight
    grid = Grid.of(grid, n=weight.shape[0], what="units in the map")
    summary = summary or neuron_summary(model, X, top=purity_top, batch_size=batch_size)
    best2 = summary["best2"]
    counts = torch.bincount(best2[:, 0], minlength=weight.shape[0])
    dist = distance_correlation(weight.cpu(), grid, n_shuffles=n_shuffles, seed=seed)
    out = {
        "topographic_error": topographic_error_from_winners(best2, grid, neighbourhood=8),
        "topographic_error_4": topographic_error_from_winners(best2, grid, neighbourhood=4),
        "distance_rho": dist["rho"], "null_rho": dist["null_mean"], "null_rho_std": dist["null_std"],
        "p_value": dist["p_value"],
        "dead_fraction": dead_fraction(counts),
    }
    if labels is not None:
        sel = label_selectivity_from_winners(best2[:, 0], labels, n_labels, weight.shape[0])
        out.update(class_purity=sel["mean_purity"], class_purity_weighted=sel["weighted_purity"],
                   class_chance=sel["chance"])
    if token_ids is not None:
        purity = token_purity_from_top(summary["top_index"][:purity_top], token_ids)  # (N,)
        out["token_purity"] = float(purity[counts > 0].mean())
    return out


def as_layer(layer) -> SoftHebbLinear:
    """`layer` itself when it is a SoftHebbLinear, else a ValueError naming what it is."""
    if not isinstance(layer, SoftHebbLinear):
        raise ValueError(f"layer: expected a SoftHebbLinear, got {type(layer).__name__}")
    return layer


def _layer_grid(layer: SoftHebbLinear, grid) -> Grid:
    """The grid to measure `layer` on: its lateral grid; `grid` must be None or that one."""
    own = None if layer.lateral is None else layer.lateral.grid
    if grid is None and own is None:
        raise ValueError("grid=None but the layer has no lateral support: pass grid=(rows, cols) "
                         f"with rows * cols = {layer.out_features}")
    grid = own if grid is None else Grid.of(grid, n=layer.out_features, what="neurons in the layer")
    if own is not None and grid.shape != own.shape:
        raise ValueError(f"grid={grid.shape} is not the layer's lateral grid {own.shape}: pass grid=None "
                         "(or the layer's grid) to measure the map the layer was trained on")
    return grid


def methods_over_seeds(methods: dict, seeds, measure) -> tuple[dict, dict]:
    """Train and measure each method once per seed, then summarise over seeds.

    methods: name -> fit(seed) returning a trained model (a SoftHebb layer, a SOM, ...);
    measure(name, model, seed) -> dict of numbers. Each row also gets "train_seconds" (the wall
    time of fit: one epoch when fit trains one). Returns (runs, models of the first seed) with
    runs[name] = summarise_seeds(rows): mean, ci95, std and the per-seed values.
    """
    import time

    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds: expected at least one seed")
    rows: dict[str, list[dict]] = {}
    first: dict = {}
    for name, fit in methods.items():
        for seed in seeds:
            start = time.perf_counter()
            model = fit(seed)
            seconds = round(time.perf_counter() - start, 2)
            rows.setdefault(name, []).append({"seed": seed, **measure(name, model, seed), "train_seconds": seconds})
            if seed == seeds[0]:
                first[name] = model
    return {name: summarise_seeds(r) for name, r in rows.items()}, first
