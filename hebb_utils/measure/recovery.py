"""How well a learned dictionary recovers known features (hebb_utils.dictionaries.ground_truth).

`learned` (N, d): one direction per unit (a SoftHebb weight row, an SAE decoder row);
`true` (M, d): the true features. All cosines are SIGNED by default: the codes here are
non-negative (a ReLU SAE, a SoftHebb winner), so a unit pointing at -f does not code f; every
function that takes the best match has an `absolute=True` switch for sign-symmetric methods (ICA).

    C = cosine_matrix(learned, true)           # (N, M)
    mmcs(learned, true)                        # mean over true features of the best cosine
    m = mcc(learned, true)                     # one-to-one (Hungarian) matching: m["mcc"], m["rows"], m["cols"]
    topographic_rank_correlation(gt.grid, (rows, cols), m)   # is the true layout kept on the map?
"""
from __future__ import annotations

import math

import torch

from ..checks import Grid, finite_float, matrix, positive_int, vector
from ..linalg import pow2_rescaled
from .describe import POSITIVE, SIGNED, UNIT, describe
from .metrics import distance_correlation, grid_coordinates

__all__ = ["cosine_matrix", "mmcs", "mcc", "recovered_share", "explained_variance", "dead_units",
           "topographic_rank_correlation"]


def _directions(learned, true) -> tuple[torch.Tensor, torch.Tensor]:
    """learned (N, d) and true (M, d) as float64 CPU tensors with the same d; true rows nonzero."""
    learned = matrix("learned", learned, dtype=torch.float64).cpu()
    true = matrix("true", true, learned.shape[1], dtype=torch.float64, cols_name="learned.shape[1]").cpu()
    zero = (true == 0).all(dim=1)
    if zero.any():
        raise ValueError(f"true: row(s) {zero.nonzero().flatten().tolist()[:5]} are zero: "
                         "a true feature needs a direction")
    return learned, true


def _cosines(learned: torch.Tensor, true: torch.Tensor, absolute: bool) -> torch.Tensor:
    """(N, M) float64 cosines of checked rows; 0 for zero learned rows; |cos| with absolute."""
    C = _unit_rows(learned) @ _unit_rows(true).T
    return C.abs() if absolute else C


def _unit_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows of x scaled to unit norm; zero rows stay zero. Rows whose norm would overflow or underflow
    float64 (entries beyond ~1e150 or below ~1e-150) are first divided by their largest entry, so that
    T and T * 1e200 have the same directions; other rows take the plain path, bit for bit as before."""
    scale = x.abs().amax(dim=1, keepdim=True)
    extreme = (scale > 0) & ((scale < 1e-150) | (scale > 1e150))
    if extreme.any():
        x = torch.where(extreme, x / scale.where(extreme, torch.ones_like(scale)), x)
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-300)


def _absolute(absolute) -> bool:
    if not isinstance(absolute, bool):
        raise ValueError(f"absolute={absolute!r}: expected True (|cos|) or False (signed cos)")
    return absolute


def cosine_matrix(learned, true) -> torch.Tensor:
    """(N, M) float64: the cosine between learned row n and true row m.

    A learned row of zero norm (a dead or pruned unit) has no direction and gets cosine 0 with
    every true feature, so it never counts as a match; a zero true feature is refused.
    """
    return _cosines(*_directions(learned, true), absolute=False)


describe("mmcs", "MMCS", better="higher", bounds=SIGNED,
         glossary="**MMCS**: mean over true features of the best cosine with a learned one; **MCC**: the same after a "
                  "one-to-one (Hungarian) matching; **recovered**: share of true features matched at cos ≥ 0.9; **L0**: "
                  "mean active units")


def mmcs(learned, true, absolute: bool = False) -> float:
    """Mean max cosine similarity (Sharkey et al. 2022): for each TRUE feature the cosine of the
    learned row closest to it, averaged over the true features. 1 = every feature has a learned
    copy; several true features may share one learned row (see `mcc` for one-to-one).
    Signed cosine by default (a unit at -f does not recover f); absolute=True uses |cos|."""
    return float(_cosines(*_directions(learned, true), _absolute(absolute)).amax(dim=0).mean())


describe("mcc", "MCC", better="higher", bounds=SIGNED)
describe("mcc_signed", "MCC (signed cosines)", better="higher", bounds=SIGNED)  # SAELens' benchmark: mcc with signs
describe("seed_mcc", "MCC of 2 seeds", better="higher", bounds=SIGNED)  # mcc of one seed's dictionary against another's


def mcc(learned, true, absolute: bool = False) -> dict:
    """Mean cosine after the best ONE-TO-ONE matching of learned rows to true features.

    The matching maximises the summed (signed, or with absolute=True |.|) cosine over min(N, M)
    pairs (Hungarian algorithm, scipy.optimize.linear_sum_assignment); "mcc" is the mean cosine
    over those pairs. Unlike `mmcs`, one learned row cannot stand in for two features, so a
    dictionary that merged features scores lower. (In ICA the MCC correlates matched sources;
    here, as in the dictionary-learning literature, it is the cosine of matched directions.)
    Returns dict(mcc, rows, cols): rows (K,) int64 learned indices matched to cols (K,) int64 true
    indices, K = min(N, M), rows ascending.
    """
    from scipy.optimize import linear_sum_assignment

    C = _cosines(*_directions(learned, true), _absolute(absolute))
    rows, cols = linear_sum_assignment(C.numpy(), maximize=True)
    rows, cols = torch.from_numpy(rows).long(), torch.from_numpy(cols).long()
    return {"mcc": float(C[rows, cols].mean()), "rows": rows, "cols": cols}


describe("recovered_share", "recovered (cos ≥ 0.9)", bounds=UNIT)
# SAELens' scoring of each latent as a detector of its best-matching true feature (dictionaries/synthetic.py)
describe("precision", "precision", bounds=UNIT)
describe("recall", "recall", bounds=UNIT)
describe("f1_score", "F1", better="higher", bounds=UNIT)
describe("accuracy", "detector accuracy", bounds=UNIT)
describe("uniqueness", "uniqueness", bounds=UNIT)  # distinct true features among the latents' best matches


def recovered_share(learned, true, threshold: float = 0.9, absolute: bool = False) -> float:
    """Share of true features whose best learned cosine is >= threshold (in [-1, 1])."""
    threshold = finite_float("threshold", threshold, minimum=-1, maximum=1, hint="a cosine")
    C = _cosines(*_directions(learned, true), _absolute(absolute))
    return float((C.amax(dim=0) >= threshold).double().mean())


describe("explained_variance", "explained variance", better="higher", bounds=(-math.inf, 1.0))
describe("shrinkage", "shrinkage", bounds=POSITIVE)  # |x_hat| / |x|, SAELens' benchmark


def explained_variance(X, X_hat) -> float:
    """1 - sum ||X - X_hat||^2 / sum ||X - mean(X)||^2 over all samples (rows) and dimensions.

    1 = perfect reconstruction, 0 = no better than the mean sample, < 0 = worse than it.
    """
    X = matrix("X", X, dtype=torch.float64).cpu()
    X_hat = matrix("X_hat", X_hat, dtype=torch.float64).cpu()
    if X_hat.shape != X.shape:
        raise ValueError(f"X_hat has shape {tuple(X_hat.shape)}: expected X's shape {tuple(X.shape)}")
    X, X_hat = pow2_rescaled(X, X_hat)  # a ratio: exact rescaling keeps 1e200 or 1e-200 data from over/underflowing
    total = (X - X.mean(dim=0)).square().sum()
    if total == 0:
        raise ValueError("X: every sample is the same; the explained variance is undefined")
    return float(1 - (X - X_hat).square().sum() / total)


# dead_units's share is dead_fraction (described beside measure.metrics.dead_fraction); the activity counts:
describe("dead_latents", "dead latents", bounds=POSITIVE)
describe("l0", "L0", bounds=POSITIVE)  # mean number of nonzero codes per sample
describe("sae_l0", "L0", bounds=POSITIVE)  # the same, as SAELens' benchmark reports it
describe("true_l0", "true L0", bounds=POSITIVE)  # mean number of active true features per sample


def dead_units(codes) -> float:
    """Share of units (columns of codes (n_samples, N)) that are zero on every sample."""
    codes = matrix("codes", codes)
    if codes.shape[1] == 0:
        raise ValueError("codes has 0 columns: expected one column per unit (n_samples, N) with N >= 1")
    return float(((codes != 0).sum(dim=0) == 0).double().mean())


def _matched_pairs(matching, n_learned: int, n_true: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, cols) int64 of a one-to-one matching, from mcc's dict or a (rows, cols) pair."""
    if isinstance(matching, dict) and {"rows", "cols"} <= matching.keys():
        rows, cols = matching["rows"], matching["cols"]
    elif isinstance(matching, (tuple, list)) and len(matching) == 2:
        rows, cols = matching
    else:
        raise ValueError(f"matching: expected mcc's result (a dict with 'rows' and 'cols') or a (rows, cols) pair, "
                         f"got {type(matching).__name__}")
    rows = vector("matching['rows']", torch.as_tensor(rows), integer=True).cpu().long()
    cols = vector("matching['cols']", torch.as_tensor(cols), rows.shape[0], integer=True).cpu().long()
    for name, idx, n, what in (("rows", rows, n_learned, "learned units"), ("cols", cols, n_true, "true features")):
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
            raise ValueError(f"matching['{name}']: indices must lie in [0, {n}) ({what} on the grid), "
                             f"got [{int(idx.min())}, {int(idx.max())}]")
        if idx.unique().numel() != idx.numel():
            raise ValueError(f"matching['{name}']: an index appears twice; expected a one-to-one matching (mcc's)")
    return rows, cols


# topographic_rank_correlation's rho, null_mean and p_value
describe("topographic_rho", "geometry ρ", better="higher", bounds=SIGNED,
         glossary="**geometry ρ**: rank correlation of the true features' distances with the grid distances of the "
                  "units that recover them; **MCC of 2 seeds**: MCC between two seeds' dictionaries (agreement, no "
                  "ground truth)")
describe("topographic_null", "ρ, shuffled grid", bounds=SIGNED)
describe("topographic_p", "p-value of geometry ρ", bounds=UNIT)


def topographic_rank_correlation(true_grid, learned_grid, matching, n_shuffles: int = 100, seed: int = 0) -> dict:
    """Does the learned map keep the true features' layout? Spearman correlation, over all pairs of
    matched features, between their distance on the true grid and their matched units' distance on
    the learned grid, against a shuffled-layout null.

    true_grid, learned_grid: (rows, cols); true feature i sits at (i // cols, i % cols) of
    true_grid, learned unit j at (j // cols, j % cols) of learned_grid. matching: mcc's result (or
    (rows, cols)): learned unit rows[k] <-> true feature cols[k]. Distances are Euclidean on the plain
    grids (no wrap-around). rho = 1 when the map is the true layout up to an isometry or a uniform
    scale (a shift, a flip, a transpose), ~0 for an unrelated layout.

    The matching must cover every true feature or every learned unit (mcc's always does: K =
    min(N, M)), so that one side's positions form its full grid. Computed by
    measure.metrics.distance_correlation with that side as the grid and the other side's matched
    positions as the "weights", so the two share one Spearman (average ranks for ties) and one null:
    n_shuffles seeded permutations of the positions among the matched pairs (a Mantel test; which
    side is permuted does not change the null distribution).
    Returns dict(rho, null_mean, null_std, p_value, n_pairs), p_value = (1 + #{null >= rho}) /
    (1 + n_shuffles), one-sided, in [1 / (1 + n_shuffles), 1].
    """
    true_grid = Grid.of(true_grid, name="true_grid", what="true features")
    learned_grid = Grid.of(learned_grid, name="learned_grid", what="learned units")
    n_shuffles = positive_int("n_shuffles", n_shuffles, minimum=0)
    seed = positive_int("seed", seed, minimum=0)
    rows, cols = _matched_pairs(matching, learned_grid.n, true_grid.n)
    k = rows.numel()
    if k < 3:
        raise ValueError(f"matching: has {k} pair(s); a rank correlation over pairs of features needs at least 3")
    if k == true_grid.n:  # every true feature matched: the true grid is the grid, ordered by true index
        order = cols.argsort()
        grid, positions = true_grid, grid_coordinates(learned_grid)[rows[order]]
    elif k == learned_grid.n:  # every learned unit matched
        order = rows.argsort()
        grid, positions = learned_grid, grid_coordinates(true_grid)[cols[order]]
    else:
        raise ValueError(f"matching: covers {k} of {true_grid.n} true features and {k} of {learned_grid.n} learned "
                         "units; expected a matching of every true feature or every learned unit (as mcc returns)")
    return distance_correlation(positions, grid.shape, n_shuffles=n_shuffles, seed=seed)
