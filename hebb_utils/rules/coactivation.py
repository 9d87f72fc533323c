"""Topography from co-activation: put units that fire together side by side on the map.

SoftHebb's lateral support and a Kohonen map make grid neighbours *similar*: neighbours learn from the
same inputs, so the map orders the units by input similarity. When the features are unrelated
directions that merely fire together (a topographic ground truth; co-occurring concepts), that order
says nothing. Topographic ICA (Hyvärinen, Hoyer & Inki 2001) asks instead for neighbours whose
energies rise together. Here that is the objective, over where each learned unit sits:

    J(p) = sum_{i != j} C_ij h(p_i, p_j),     C_ij = E[a_i a_j]   (Hebbian co-activation of units i, j)
                                              h(p, q) = exp(-|p - q|^2 / (2 width^2)) on the grid

the pooled co-activation of grid neighbours, maximised over the permutation p of units to cells. A
move is a swap of two units' places; with B_ij = h(p_i, p_j) (zero diagonal), C symmetric with zero
diagonal and G = C B, swapping u and v changes J by

    delta(u, v) = 2 (G_uv + G_vu - G_uu - G_vv + 2 C_uv B_uv)

(the terms of u and v against every other unit k, exchanged; tests/test_coactivation.py checks it
against J recomputed). `coactivation_layout` takes the best swap while one raises J, for each width of
a shrinking schedule (wide first, for the global order, as a Kohonen map's neighbourhood shrinks), from
`restarts` seeded random starts, and keeps the start with the largest J at the last width: the swaps
only find a local maximum (J is a quadratic assignment problem).

What moves is where a unit sits, never what it codes: the dictionary and every code are the same up to
the order of the units. C is local (a synapse between units i and j can count a_i a_j); the search over
places is not a synaptic rule, it is the step that turns the co-activation a Hebbian layer already
measures into its layout. Measured on notebook 07's topographic toy (pursuit k = 2, 2 seeds each): three
variants inside the rule (a neighbour bonus in the pursuit's choice, neighbours learning from the
residual or from the other winners' shares) left the true layout's rank correlation at <= 0.06; this
layout reaches 0.786 over 3 seeds (README, "Topography from co-activation"; results/07_dictionaries.json).
What holds it there is the learned codes, not this search: on every seed the layout found scores above
the same units at their true features' cells, and the search on the true codes finds the true layout
(experiments.dictionaries.layout_diagnosis; notebook 07, "What limits the layout").
"""
from __future__ import annotations

import torch

from ..checks import Grid, finite_float, matrix, positive_int

__all__ = ["coactivation", "pooled_coactivation", "swap_gains", "coactivation_layout"]


@torch.no_grad()
def coactivation(codes, batch_size: int = 8192) -> torch.Tensor:
    """C (N, N) float64 = E[a_i a_j] over the rows of codes (samples, N), zero on the diagonal: how
    strongly units i and j fire together (a unit with itself is not co-activation)."""
    codes = matrix("codes", codes, min_rows=1)
    C = torch.zeros(codes.shape[1], codes.shape[1], dtype=torch.float64, device=codes.device)
    for start in range(0, codes.shape[0], batch_size):
        a = codes[start:start + batch_size].double()
        C += a.T @ a
    C /= codes.shape[0]
    C.fill_diagonal_(0.0)
    return C


def _neighbourhood(grid: Grid, width: float, dtype, device) -> torch.Tensor:
    """h (cells, cells): the Gaussian of the grid distance, zero on the diagonal."""
    rows, cols = torch.meshgrid(torch.arange(grid.rows, dtype=dtype, device=device),
                                torch.arange(grid.cols, dtype=dtype, device=device), indexing="ij")
    cells = torch.stack([rows.flatten(), cols.flatten()], dim=1)  # (cells, 2)
    h = torch.exp(-torch.cdist(cells, cells).square() / (2 * width ** 2))
    h.fill_diagonal_(0.0)
    return h


def _checked(C, grid, width) -> tuple[torch.Tensor, Grid, float]:
    C = matrix("C", C, dtype=torch.float64, min_rows=2)
    if C.shape[0] != C.shape[1]:
        raise ValueError(f"C has shape {tuple(C.shape)}: expected a square (units, units) co-activation matrix "
                         "(coactivation(codes))")
    if not torch.allclose(C, C.T):
        raise ValueError("C is not symmetric: expected E[a_i a_j] over samples (coactivation(codes))")
    grid = Grid.of(grid, n=C.shape[0], what="units of C")
    width = finite_float("width", width, minimum=0, strict_minimum=True, hint="grid units")
    return C - torch.diag(C.diagonal()), grid, width


def pooled_coactivation(C, grid, cell_of, width: float = 1.0) -> float:
    """J = sum_{i != j} C_ij h(p_i, p_j): the co-activation of units pooled over grid neighbours, with
    unit i at cell cell_of[i] of grid (rows, cols) and h a Gaussian of the grid distance of this width."""
    C, grid, width = _checked(C, grid, width)
    h = _neighbourhood(grid, width, C.dtype, C.device)
    cell_of = torch.as_tensor(cell_of, device=C.device)
    return float((C * h[cell_of][:, cell_of]).sum())


def swap_gains(C: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """delta (N, N): the change of J when units u and v swap places, for every pair (module docstring);
    C (N, N) symmetric with zero diagonal, B (N, N) = h between the units' current cells. Unchecked."""
    G = C @ B
    g = G.diagonal()
    gains = G + G.T - g[:, None] - g[None, :] + 2 * C * B
    gains.fill_diagonal_(0.0)
    return 2 * gains


@torch.no_grad()
def coactivation_layout(C, grid, widths=(4.0, 2.0, 1.0, 0.5), restarts: int = 20, seed: int = 0,
                        max_swaps: int | None = None) -> torch.Tensor:
    """cell_of (N,) int64: the cell of grid each unit moves to, a permutation raising the pooled
    co-activation J (module docstring) by best swaps at each width of `widths` in turn, from `restarts`
    random starts of torch.Generator(seed); the start whose layout has the largest J at the last width
    wins (the first on ties). max_swaps: per width and start (default 50 N). Unit i's new place is
    cell_of[i]; reorder a dictionary with `rows[unit_at]`, unit_at = argsort(cell_of)."""
    C, grid, _ = _checked(C, grid, 1.0)
    widths = [finite_float("widths", w, minimum=0, strict_minimum=True, hint="grid units") for w in widths]
    if not widths:
        raise ValueError("widths: expected at least one neighbourhood width (grid units), e.g. (4, 2, 1, 0.5)")
    restarts = positive_int("restarts", restarts)
    seed = positive_int("seed", seed, minimum=0)
    n = C.shape[0]
    max_swaps = 50 * n if max_swaps is None else positive_int("max_swaps", max_swaps)
    neighbourhoods = [_neighbourhood(grid, w, C.dtype, C.device) for w in widths]
    tolerance = 1e-12 * float(C.abs().max().clamp_min(torch.finfo(C.dtype).tiny))
    generator = torch.Generator().manual_seed(seed)
    best_value, best = None, None
    for _ in range(restarts):
        cell_of = torch.randperm(n, generator=generator).to(C.device)
        for h in neighbourhoods:
            for _ in range(max_swaps):
                gains = swap_gains(C, h[cell_of][:, cell_of])
                flat = int(gains.argmax())
                u, v = divmod(flat, n)
                if float(gains[u, v]) <= tolerance:
                    break
                cell_of[[u, v]] = cell_of[[v, u]]
        value = float((C * neighbourhoods[-1][cell_of][:, cell_of]).sum())
        if best_value is None or value > best_value:
            best_value, best = value, cell_of.clone()
    return best.cpu()
