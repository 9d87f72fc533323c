"""How to read a trained map: one streaming pass over the data, then the metrics.

The LM run has ~10^5-10^6 tokens and 1800 neurons: the full response matrix would take gigabytes,
so `neuron_summary` streams over the samples and keeps only what the metrics need (each sample's
two best neurons; each neuron's strongest samples).

A map is taken as it behaves, not by its class (measure/ imports no rule): a SoftHebb layer
(in_features, out_features, weight, eval(), u = layer(x), and `lateral` for its own grid) or a
Kohonen map (prototypes `weights` and `responses(X)`, minus the distances), each read with its own
winner rule.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..checks import Grid, check_finite, matrix, positive_int
from .metrics import dead_fraction, distance_correlation, label_selectivity_from_winners, token_purity_from_top, topographic_error_from_winners

__all__ = ["triangle_activation", "neuron_summary", "top_distinct_tokens", "softhebb_metrics", "map_metrics",
           "top_tokens_of_directions"]


def triangle_activation(u: torch.Tensor) -> torch.Tensor:
    """relu(u - mean_j u): each response minus the sample's mean response, rectified (u (B, N)).

    The non-linearity that reads SoftHebb layers in Journe et al. 2023: only neurons that respond
    more than average to a sample stay on, so the features are sparse, unlike the linear u.
    """
    u = matrix("u", u)
    return torch.relu(u - u.mean(dim=1, keepdim=True))


def _is_som(model) -> bool:
    """Whether `model` is read as a Kohonen map (rules.som.SOM): prototypes `weights` (N, D) and
    `responses(X)` (minus the distances), and no layer `weight`."""
    return hasattr(model, "weights") and hasattr(model, "responses") and not hasattr(model, "weight")


def _as_layer(model):
    """`model` when it reads as a SoftHebb layer (rules.layer.SoftHebbLinear: in_features, out_features,
    weight (N, D), eval(), u = model(x)), else a ValueError naming what it is."""
    if not callable(model) or not all(hasattr(model, a) for a in ("in_features", "out_features", "weight", "eval")):
        raise ValueError(f"layer: expected a SoftHebbLinear, got {type(model).__name__}")
    return model


@torch.no_grad()
def _responder(model):
    """(in_features, N, device, responses(batch)) of a SoftHebb layer (eval mode: its trained
    normalisation) or a SOM (minus the distances: larger = the nearer unit)."""
    if _is_som(model):
        return model.weights.shape[1], model.weights.shape[0], model.weights.device, model.responses
    layer = _as_layer(model).eval()
    return layer.in_features, layer.out_features, layer.weight.device, lambda x: layer(x.to(layer.weight.dtype))


def neuron_summary(layer, X, top: int = 50, batch_size: int = 8192) -> dict:
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
    if isinstance(top_index, np.ndarray) and top_index.dtype.kind in "iu":
        top_index = torch.from_numpy(top_index)
    if not isinstance(top_index, torch.Tensor) or top_index.ndim != 2 or top_index.is_floating_point() \
            or top_index.dtype == torch.bool:
        what = f"{tuple(top_index.shape)} {top_index.dtype}" if isinstance(top_index, torch.Tensor) else type(top_index).__name__
        raise ValueError(f"top_index: expected a (top, neurons) integer tensor (neuron_summary's 'top_index'), got {what}")
    if top_index.numel() and (int(top_index.min()) < 0 or int(top_index.max()) >= len(tokens)):
        raise ValueError(f"top_index holds sample indices from {int(top_index.min())} to {int(top_index.max())}, but "
                         f"tokens has {len(tokens)} entries: pass the token strings of the samples it indexes")
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


def softhebb_metrics(layer, X, grid=None, *, labels=None, n_labels: int | None = None,
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
    grid = _layer_grid(_as_layer(layer), grid)
    return map_metrics(layer, X, grid, labels=labels, n_labels=n_labels, token_ids=token_ids, purity_top=purity_top,
                       n_shuffles=n_shuffles, seed=seed, summary=summary, batch_size=batch_size)


def map_metrics(model, X, grid, *, labels=None, n_labels: int | None = None, token_ids=None,
                purity_top: int = 20, n_shuffles: int = 100, seed: int = 0, summary: dict | None = None,
                batch_size: int = 8192) -> dict:
    """softhebb_metrics for any map on `grid`: a SoftHebb layer (any grid of its size) or a SOM
    (each method's own winner rule: the largest u for SoftHebb, the nearest unit for the SOM)."""
    weight = model.weights if _is_som(model) else _as_layer(model).weight
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


def _layer_grid(layer, grid) -> Grid:
    """The grid to measure `layer` on: its lateral grid; `grid` must be None or that one."""
    lateral = getattr(layer, "lateral", None)
    own = None if lateral is None else lateral.grid
    if grid is None and own is None:
        raise ValueError("grid=None but the layer has no lateral support: pass grid=(rows, cols) "
                         f"with rows * cols = {layer.out_features}")
    grid = own if grid is None else Grid.of(grid, n=layer.out_features, what="neurons in the layer")
    if own is not None and grid.shape != own.shape:
        raise ValueError(f"grid={grid.shape} is not the layer's lateral grid {own.shape}: pass grid=None "
                         "(or the layer's grid) to measure the map the layer was trained on")
    return grid


def top_tokens_of_directions(X, W, tokens, top: int, name: str, mean=None):
    """A pandas table, one column per direction w_i (row i of W (k, D)) named "{name} {i + 1}": the
    repr of the tokens of the `top` samples of X (samples, D) whose projection (x - mean) . w_i is
    largest, strongest first. tokens: the token string of every sample; mean (D,): default 0."""
    import pandas as pd

    proj = (X if mean is None else X - mean) @ W.T  # (tokens, k)
    idx = proj.topk(top, dim=0).indices.T  # (k, top)
    return pd.DataFrame({f"{name} {i + 1}": [repr(tokens[j]) for j in row] for i, row in enumerate(idx.tolist())})
