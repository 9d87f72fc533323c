"""Measures of what a learned layer became: topography on the neuron grid, winners and dead
neurons, agreement with a reference basis, ICA separation, label/token specificity, linear probe.

Grid convention (as in the SoftHebb layer): a checks.Grid or ``grid=(rows, cols)``, neuron j sits
at row ``j // cols``, column ``j % cols``; ``grid=(n,)`` is one row of n neurons.
Responses ``u`` are (samples, N): one column per neuron, larger = more active.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..checks import Grid, matrix, positive_int, vector
from .describe import POSITIVE, SIGNED, UNIT, describe
from ..linalg import amari_distance, component_cosines, pow2_rescaled, subspace_error

__all__ = [
    "grid_coordinates",
    "topographic_error",
    "distance_correlation",
    "winner_counts",
    "dead_fraction",
    "subspace_error",
    "component_cosines",
    "amari_distance",
    "label_selectivity",
    "token_purity",
    "linear_probe",
    "reconstruction_error",
    "neighbour_similarity",
    "effective_dimension",
    "topographic_error_from_winners",
    "label_selectivity_from_winners",
    "token_purity_from_top",
    "excess_kurtosis",
]


# ----------------------------------------------------------------------------------------------
# input checks and the grid


def _indices(name: str, x, ndim: int, upper: int | None = None, what: str = "") -> torch.Tensor:
    """x (tensor or array) of `ndim` dims of integers in [0, upper) as int64 on the CPU."""
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "biuf":
            raise ValueError(f"{name} has dtype {x.dtype}: expected integers (convert with x.astype(np.int64))")
        x = torch.from_numpy(np.ascontiguousarray(x))
    if ndim == 1:
        x = vector(name, x, integer=True)
    elif not isinstance(x, torch.Tensor) or x.dim() != ndim or x.is_floating_point() or x.dtype == torch.bool:
        desc = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected a {ndim}D tensor or array of integers, got {desc}")
    if x.numel() == 0:
        raise ValueError(f"{name} has shape {tuple(x.shape)}: expected at least one entry")
    if int(x.min()) < 0 or (upper is not None and int(x.max()) >= upper):
        raise ValueError(f"{name}: values must lie in [0, {upper if upper is not None else 'inf'}){what}, got "
                         f"[{int(x.min())}, {int(x.max())}]")
    return x.cpu().long()


def grid_coordinates(grid) -> torch.Tensor:
    """(N, 2) float32 (row, col) of each neuron j: (j // cols, j % cols)."""
    grid = Grid.of(grid)
    j = torch.arange(grid.n)
    return torch.stack([j // grid.cols, j % grid.cols], dim=1).to(torch.float32)


# ----------------------------------------------------------------------------------------------
# topography


describe("topographic_error", "topographic error", better="lower", bounds=UNIT,
         glossary="**topographic error**: share of inputs whose best and second-best neurons are not 8-neighbours on "
                  "the grid (0 = a perfect map; about 1 for an unordered one)")
describe("topographic_error_4", "topographic error (4-neighbours)", better="lower", bounds=UNIT)  # neighbourhood=4


def topographic_error(u, grid, neighbourhood: int = 8) -> float:
    """Share of samples whose best and second-best neurons (by u) are not grid neighbours.

    u (B, N); ``neighbourhood=8``: neighbours at Chebyshev distance 1 (diagonals count),
    ``4``: Manhattan distance 1. Ties in u are broken by ``torch.topk`` (lowest index first on CPU).
    0 = every sample's two best neurons touch on the grid.
    """
    u = matrix("u", u)
    if neighbourhood not in (4, 8):
        raise ValueError(f"neighbourhood={neighbourhood!r}: expected 8 (Chebyshev) or 4 (Manhattan)")
    n = u.shape[1]
    if n < 2:
        raise ValueError(f"u: needs at least 2 neurons (columns) for a second-best, got {n}")
    return _not_neighbours(u.topk(2, dim=1).indices, Grid.of(grid, n=n, what="columns of u").cols, neighbourhood)


def _not_neighbours(best2: torch.Tensor, cols: int, neighbourhood: int) -> float:
    """Share of rows of best2 (B, 2) whose two neurons are not grid neighbours."""
    dr = (best2[:, 0] // cols - best2[:, 1] // cols).abs()
    dc = (best2[:, 0] % cols - best2[:, 1] % cols).abs()
    near = torch.maximum(dr, dc) == 1 if neighbourhood == 8 else (dr + dc) == 1
    return float((~near).double().mean())


def _average_ranks(v: torch.Tensor) -> torch.Tensor:
    """1-based ranks of v (M,), ties sharing their average rank (as scipy.stats.rankdata), float64."""
    _, inverse, counts = torch.unique(v, sorted=True, return_inverse=True, return_counts=True)
    counts = counts.to(torch.float64)
    last = counts.cumsum(0)  # rank of the last member of each group of equal values
    return (last - (counts - 1) / 2)[inverse]


# distance_correlation's rho, null_mean, null_std and p_value, as measure/maps.py's map_metrics names them
describe("distance_rho", "distance ρ", better="higher", bounds=SIGNED,
         glossary="**distance ρ**: Spearman correlation, over all neuron pairs, between grid distance and weight "
                  "distance; **ρ, shuffled grid** its mean over 100 random placements, **p-value of ρ** the "
                  "permutation p-value (0.010 is the smallest 100 shuffles can give)")
describe("null_rho", "ρ, shuffled grid", bounds=SIGNED)
describe("null_rho_std", "ρ, shuffled grid: std", bounds=POSITIVE)
describe("p_value", "p-value of ρ", bounds=UNIT)


def distance_correlation(W, grid, n_shuffles: int = 100, seed: int = 0, max_pairs: int | None = None) -> dict:
    """Spearman correlation between grid distance and weight distance over neuron pairs, against
    a null in which the grid positions are randomly permuted among the neurons.

    W (N, D): one weight vector per neuron. Over all pairs i < j (or ``max_pairs`` of them drawn
    at random with ``seed``, the same pairs for the data and the null), ``rho`` is the Pearson
    correlation of the ranks of the Euclidean grid distance and of the Euclidean distance between
    rows of W; ties get their average rank (the usual Spearman; grid distances tie a lot). A
    topographic map has rho > 0: neighbours on the grid have similar weights.
    Null: ``n_shuffles`` seeded permutations pi of the neurons, correlating the grid distance of
    (pi(i), pi(j)) with the weight distance of (i, j). With all pairs, permuting only reorders the
    pair values, so the ranks are reused and each shuffle is one permuted (N, N) float32 dot
    product: N=1800 (1.6M pairs) x 100 shuffles takes about 1-2 s on one CPU core. With
    ``max_pairs`` the same pairs are re-ranked under each permutation (grid distances take few
    distinct values, so ranking is a bincount), O(max_pairs) per shuffle.
    Returns dict(rho, null_mean, null_std, p_value, n_pairs) with
    ``p_value = (1 + #{null >= rho}) / (1 + n_shuffles)`` (one-sided, never 0).
    ``n_shuffles=0`` skips the null (rho alone, e.g. `python -m hebb_utils map --n-shuffles 0`): there is
    then no null to summarise, so null_mean and null_std are NaN ("not measured"; strict JSON writes
    null, seed summaries leave it out) and p_value is 1.0; with one shuffle null_std is NaN (one value
    has no spread).
    """
    W = matrix("W", W, dtype=torch.float64).cpu()
    (W,) = pow2_rescaled(W)  # ranks of distances: an exact rescaling keeps 1e200 weights from overflowing
    n = W.shape[0]
    grid = Grid.of(grid, n=n, what="rows of W")
    cols = grid.cols
    if n < 3:
        raise ValueError(f"W: needs at least 3 neurons for a rank correlation over pairs, got {n}")
    n_shuffles = positive_int("n_shuffles", n_shuffles, minimum=0)
    seed = positive_int("seed", seed, minimum=0)
    max_pairs = max_pairs if max_pairs is None else positive_int("max_pairs", max_pairs, minimum=3, hint="or None")
    gen = torch.Generator().manual_seed(seed)
    i, j = torch.triu_indices(n, n, 1)  # (M,) each
    if max_pairs is not None and max_pairs < i.numel():
        pick = torch.randperm(i.numel(), generator=gen)[:max_pairs]
        i, j = i[pick], j[pick]
    # squared grid distances: small exact integers with the same order as the Euclidean ones
    r, c = torch.arange(n) // cols, torch.arange(n) % cols
    grid_sq = (r[:, None] - r[None]).square() + (c[:, None] - c[None]).square()  # (N, N) int64
    n_values = int(grid_sq.max()) + 1

    def grid_ranks(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Average ranks of the grid distances of pairs (a, b) by counting (few distinct values)."""
        g = grid_sq[a, b]
        counts = torch.bincount(g, minlength=n_values).to(torch.float64)
        return (counts.cumsum(0) - (counts - 1) / 2)[g]

    w_dist = torch.cdist(W, W, compute_mode="donot_use_mm_for_euclid_dist")[i, j]
    w_rank = _average_ranks(w_dist)
    mean_rank = (i.numel() + 1) / 2  # the mean of average ranks is always (M + 1) / 2
    w_centred = w_rank - mean_rank
    if w_centred.norm() == 0:
        raise ValueError("W: every pair of rows is at the same distance (e.g. identical rows); no correlation")

    def corr(g_rank: torch.Tensor) -> float:
        g_centred = g_rank - mean_rank
        return float((g_centred * w_centred).sum() / (g_centred.norm() * w_centred.norm()))

    g_rank = grid_ranks(i, j)
    if (g_rank == g_rank[0]).all():
        raise ValueError(f"grid={grid.shape!r}: every pair of neurons is at the same grid distance; no correlation")
    rho = corr(g_rank)
    null = torch.empty(n_shuffles, dtype=torch.float64)
    if i.numel() < n * (n - 1) // 2:
        # a subset of pairs: re-rank the grid distances of the same pairs under each permutation
        for s in range(n_shuffles):
            perm = torch.randperm(n, generator=gen)  # neuron a moves to grid position perm[a]
            null[s] = corr(grid_ranks(perm[i], perm[j]))
    else:
        # all pairs: a permutation only reorders the pair values, so the ranks are those of the
        # unshuffled pairs, reordered. Hold the centred ranks in symmetric (N, N) matrices and
        # permute the weight side (the same null distribution); each shuffle is then two
        # index_selects and one float32 dot product (~1e-4 relative rounding, far below the
        # spread of the null)
        g_mat = torch.zeros(n, n, dtype=torch.float32)
        w_mat = torch.zeros(n, n, dtype=torch.float32)
        g_mat[i, j] = g_mat[j, i] = (g_rank - mean_rank).float()
        w_mat[i, j] = w_mat[j, i] = w_centred.float()
        g_flat = g_mat.view(-1)
        denom = float(g_mat.double().norm() * w_mat.double().norm())
        for s in range(n_shuffles):
            perm = torch.randperm(n, generator=gen)
            null[s] = float(torch.dot(g_flat, w_mat.index_select(0, perm).index_select(1, perm).view(-1))) / denom
    return {
        "rho": rho,
        "null_mean": float(null.mean()) if n_shuffles else math.nan,
        "null_std": float(null.std()) if n_shuffles > 1 else math.nan,
        "p_value": (1 + int((null >= rho).sum())) / (1 + n_shuffles),
        "n_pairs": int(i.numel()),
    }


# ----------------------------------------------------------------------------------------------
# winners


describe("reconstruction_error", "reconstruction error", better="lower", bounds=POSITIVE,
         glossary="**reconstruction error**: |x − winner's weight| / |x| (a vector quantiser's error); **neighbour "
                  "cosine**: mean cosine of grid neighbours' weights; **effective dimension**: participation ratio of "
                  "the weights' spectrum")


def reconstruction_error(X, W, batch_size: int = 8192) -> float:
    """Share of the inputs' energy left after coding each input by ONE unit with a non-negative gain.

    For each x_b (X (B, D), in the units the map was trained in) and each unit w_j (W (N, D)), the
    best gain a >= 0 is relu(x_b . w_j) / |w_j|^2 and it leaves |x_b|^2 - relu(x_b . w_j)^2 / |w_j|^2;
    the error is  sum_b min_j (that residual) / sum_b |x_b|^2,  0 (every input is a scaled unit)
    to 1 (no unit points along any input).

    Why it is fair to a SOM and to SoftHebb alike: the gain takes each unit's scale out, so
    SoftHebb's near-unit-norm weights and a SOM's weights in input units (norms ~ |x|) are judged
    on their directions only; and the unit is the best one for reconstruction, not each method's
    own winner (nearest unit for the SOM, largest dot product for SoftHebb), so neither winner rule
    is favoured. It is a gain-shape vector quantisation error of a one-unit code. Units of zero
    norm reconstruct nothing.
    """
    W = matrix("W", W)
    X = matrix("X", X, W.shape[1], dtype=W.dtype, cols_name="W.shape[1]")
    batch_size = positive_int("batch_size", batch_size)
    w_sq = W.double().square().sum(1)  # (N,)
    inv = torch.where(w_sq > 0, 1.0 / w_sq, torch.zeros_like(w_sq))
    explained, energy = 0.0, 0.0
    for i in range(0, X.shape[0], batch_size):
        x = X[i : i + batch_size].double()
        dots = torch.relu(x @ W.double().T)  # (b, N)
        explained += float((dots.square() * inv).amax(dim=1).sum())
        energy += float(x.square().sum())
    if energy == 0:
        raise ValueError("X: every input is zero; the reconstruction error is undefined")
    return max(0.0, 1.0 - explained / energy)


describe("neighbour_similarity", "neighbour cosine", bounds=SIGNED)


def neighbour_similarity(W, grid) -> float:
    """Mean cosine similarity of the weight vectors of grid 8-neighbours (each pair once).

    How alike a map's neighbouring units are: 1 when every unit copies its neighbours, about 0
    for unrelated random directions. A topographic map needs it high; a dictionary whose units
    should each add a new direction (a probe's features) wants it low.
    """
    W = matrix("W", W)
    grid = Grid.of(grid, n=W.shape[0], what="rows of W")
    V = W.double() / W.double().norm(dim=1, keepdim=True).clamp_min(1e-300)
    cells = V.reshape(grid.rows, grid.cols, -1)
    sims = [(cells[:, :-1] * cells[:, 1:]).sum(-1).flatten(),          # right
            (cells[:-1, :] * cells[1:, :]).sum(-1).flatten(),          # down
            (cells[:-1, :-1] * cells[1:, 1:]).sum(-1).flatten(),       # down-right
            (cells[:-1, 1:] * cells[1:, :-1]).sum(-1).flatten()]       # down-left
    sims = torch.cat(sims)
    if sims.numel() == 0:
        raise ValueError(f"grid={grid.shape}: a single unit has no neighbours")
    return float(sims.mean())


describe("effective_dimension", "effective dimension", bounds=POSITIVE)


def effective_dimension(W) -> float:
    """Participation ratio (sum s_i^2)^2 / sum s_i^4 of the singular values of W's unit-norm rows.

    The number of directions the units spread over: N for N orthogonal units, 1 when all are
    parallel. Scale-free (rows are normalised), so SoftHebb and SOM weights compare.
    """
    W = matrix("W", W)
    if W.shape[1] == 0:
        raise ValueError(f"W has shape {tuple(W.shape)}: expected at least one column (the weight vectors' dimension)")
    if not bool(W.any()):
        raise ValueError("W: every row is zero, so there are no directions and the participation ratio (0 / 0) is "
                         "undefined; pass trained weights with at least one non-zero row")
    norms, largest = W.double().norm(dim=1), W.double().abs().amax(dim=1)
    if not bool(((largest == 0) | (torch.isfinite(norms) & (norms > 1e-150))).all()):
        # a float64 row whose |w|^2 overflows (entries ~1e154 and up) or underflows (~1e-154 and below) would give
        # inf / inf or lose its direction: scale every row to largest entry 1 first (same directions). float32
        # weights never take this path
        W = W.double() / largest.clamp_min(1e-300)[:, None]
    V = W.double() / W.double().norm(dim=1, keepdim=True).clamp_min(1e-300)
    power = torch.linalg.svdvals(V).square()
    return float(power.sum().square() / power.square().sum())


def winner_counts(u) -> torch.Tensor:
    """(N,) int64: how many samples each neuron wins (argmax of u over neurons, u (B, N))."""
    u = matrix("u", u)
    return torch.bincount(u.argmax(dim=1).cpu(), minlength=u.shape[1])


describe("dead_fraction", "dead units", bounds=UNIT,  # also measure/recovery.py's dead_units, over codes
         glossary="**dead units**: share of neurons that never win; **class / token purity**: how often a neuron's "
                  "inputs share its majority class / token")


def dead_fraction(u_or_counts) -> float:
    """Share of neurons that never win: from responses u (B, N) or from (N,) winner counts."""
    x = u_or_counts
    if getattr(x, "ndim", None) == 1:
        counts = _indices("u_or_counts", x, 1, what=" (a 1-D input is winner counts (N,))")
    else:
        counts = winner_counts(matrix("u_or_counts", x))
    return float((counts == 0).double().mean())


# ----------------------------------------------------------------------------------------------
# agreement with a reference basis: hebb_utils/linalg.py (the rules trace their convergence with
# the same functions)


# ----------------------------------------------------------------------------------------------
# what the neurons respond to


# label_selectivity's mean_purity, weighted_purity and chance, as measure/maps.py's map_metrics names them
describe("class_purity", "class purity", bounds=UNIT)
describe("class_purity_weighted", "class purity (weighted by wins)", bounds=UNIT)
describe("class_chance", "class purity by chance", bounds=UNIT)


def label_selectivity(u, labels, n_labels: int) -> dict:
    """How specific each neuron's wins are to one label.

    u (B, N) responses, labels (B,) ints in [0, n_labels). Each sample goes to its winning neuron
    (argmax u). Returns a dict of
      counts (N, n_labels) int64 wins per label; wins (N,); majority (N,) most common label (-1 if dead);
      purity (N,) float64: share of a neuron's wins that carry its majority label (NaN if dead);
      mean_purity: unweighted mean over live neurons;
      weighted_purity: the same weighted by wins (= share of all samples whose winner's majority
        label is their own label);
      chance: the share of the most common label overall (what one neuron winning everything gets);
      n_live: neurons that win at least once.
    """
    u = matrix("u", u)
    return _label_selectivity(u.argmax(dim=1).cpu(), labels, n_labels, u.shape[1], "u")


def _label_selectivity(winner: torch.Tensor, labels, n_labels: int, n: int, what: str) -> dict:
    """label_selectivity from winner (B,) int64 neuron indices in [0, n)."""
    n_labels = positive_int("n_labels", n_labels)
    labels = _indices("labels", labels, 1, n_labels)
    if labels.shape[0] != winner.shape[0]:
        raise ValueError(f"labels: has {labels.shape[0]} entries, {what} has {winner.shape[0]} samples")
    counts = torch.bincount(winner * n_labels + labels, minlength=n * n_labels).view(n, n_labels)
    wins = counts.sum(dim=1)
    top, majority = counts.max(dim=1)
    live = wins > 0
    purity = torch.full((n,), math.nan, dtype=torch.float64)
    purity[live] = top[live].double() / wins[live].double()
    majority = torch.where(live, majority, torch.full_like(majority, -1))
    return {
        "counts": counts,
        "wins": wins,
        "majority": majority,
        "purity": purity,
        "mean_purity": float(purity[live].mean()),
        "weighted_purity": float(top.sum()) / float(wins.sum()),
        "chance": float(torch.bincount(labels, minlength=n_labels).max()) / labels.shape[0],
        "n_live": int(live.sum()),
    }


describe("token_purity", "token purity", bounds=UNIT)


def token_purity(u, token_ids, top: int = 20) -> torch.Tensor:
    """(N,) float64: for each neuron, the share of its `top` strongest activations (samples with
    the largest u in its column) that are its most common token id there. 1 = one token only.

    u (S, N) responses over S token samples, token_ids (S,) ints.
    """
    u = matrix("u", u)
    token_ids = _indices("token_ids", token_ids, 1)
    if token_ids.shape[0] != u.shape[0]:
        raise ValueError(f"token_ids: has {token_ids.shape[0]} entries, u has {u.shape[0]} samples")
    top = positive_int("top", top)
    if top > u.shape[0]:
        raise ValueError(f"top={top!r}: expected an integer in [1, {u.shape[0]}] (the number of samples)")
    idx = u.topk(top, dim=0).indices.cpu()  # (top, N)
    return _mode_share(token_ids[idx])


def _mode_share(tokens: torch.Tensor) -> torch.Tensor:
    """(N,) share of the most common value in each column of tokens (top, N), by sorted runs."""
    top = tokens.shape[0]
    s = tokens.sort(dim=0).values
    new_run = torch.ones_like(s, dtype=torch.bool)
    new_run[1:] = s[1:] != s[:-1]
    run_id = new_run.long().cumsum(dim=0) - 1  # (top, N): which run of equal tokens, per column
    run_len = torch.zeros_like(s).scatter_add_(0, run_id, torch.ones_like(s))
    return run_len.amax(dim=0).double() / top


# ----------------------------------------------------------------------------------------------
# linear probe


# linear_probe's test_acc and train_acc: on the responses u, and on relu(u - mean u) (triangle_activation)
describe("probe_test_acc", "probe on u", bounds=UNIT,
         glossary="**probe on u**, **probe on relu(u − ū)**: test accuracy of a logistic regression on the frozen "
                  "layer's responses, or on their part above each input's mean response (L-BFGS stopped at "
                  "`probe_max_iter` iterations, 200, before convergence: an early-stopped probe; the raw-pixel probe "
                  "runs to convergence)")
describe("probe_train_acc", "probe on u (train)", bounds=UNIT)
describe("probe_triangle_test_acc", "probe on relu(u − ū)", bounds=UNIT)


def linear_probe(train_features, train_labels, test_features, test_labels, *, C: float = 1.0,
                 max_iter: int = 200, tol: float = 1e-4, seed: int = 0, train_samples: int | None = None) -> dict:
    """Accuracy of a multinomial logistic regression on frozen features.

    Features are standardised with the training mean/std (scikit-learn ``StandardScaler``), then
    ``LogisticRegression(solver="lbfgs", C=C, max_iter=max_iter, tol=tol)`` is fitted. L-BFGS on
    standardised features converges in about 100-300 iterations; max_iter=200 keeps 50,000 x 450
    features with 10 classes well under a minute on 2 cores (each iteration is two 50,000 x 450 x 10
    products). Returns dict(train_acc, test_acc, n_iter, converged); ``converged=False`` means the
    optimiser hit max_iter (the accuracies are then still those of a valid, slightly
    under-fitted classifier). train_samples: fit on a seeded subsample of that many training rows
    (torch.randperm from `seed`; the fit's cost is linear in the rows) and score on all the test
    rows; train_acc is then the subsample's. None: every row.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    def as_np(x, name, ndim):
        x = torch.from_numpy(x) if isinstance(x, np.ndarray) else x
        return (matrix(name, x) if ndim == 2 else vector(name, x)).detach().cpu().numpy()

    Xtr, ytr = as_np(train_features, "train_features", 2), as_np(train_labels, "train_labels", 1)
    Xte, yte = as_np(test_features, "test_features", 2), as_np(test_labels, "test_labels", 1)
    if ytr.shape[0] != Xtr.shape[0]:
        raise ValueError(f"train_labels: {ytr.shape[0]} labels for {Xtr.shape[0]} rows of train_features")
    if yte.shape[0] != Xte.shape[0]:
        raise ValueError(f"test_labels: {yte.shape[0]} labels for {Xte.shape[0]} rows of test_features")
    for name, y in (("train_labels", ytr), ("test_labels", yte)):
        if y.dtype.kind == "f" and not np.array_equal(y, np.round(y)):
            raise ValueError(f"{name} holds {float(y[y != np.round(y)][0])!r}: expected class labels (integers)")
    if Xte.shape[1] != Xtr.shape[1]:
        raise ValueError(f"test_features: has {Xte.shape[1]} features, train_features has {Xtr.shape[1]}")
    if train_samples is not None:
        train_samples = positive_int("train_samples", train_samples, minimum=2, hint="or None for every training row")
        if train_samples < Xtr.shape[0]:
            keep = torch.randperm(Xtr.shape[0], generator=torch.Generator().manual_seed(int(seed)))[:train_samples]
            keep = keep.sort().values.numpy()
            Xtr, ytr = Xtr[keep], ytr[keep]
    if np.unique(ytr).size < 2:
        raise ValueError("train_labels: need at least 2 classes")
    scaler = StandardScaler().fit(Xtr)
    # float32 standardised features: scikit-learn then fits in float32 (its L-BFGS loss keeps the dtype),
    # ~1.5x faster than float64 on 50,000 x 450 (measured on 2 cores), the features' own precision
    Ztr, Zte = scaler.transform(Xtr).astype(np.float32), scaler.transform(Xte).astype(np.float32)
    clf = LogisticRegression(C=C, max_iter=max_iter, tol=tol, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # reported as converged=False
        clf.fit(Ztr, ytr)
    n_iter = int(np.max(clf.n_iter_))
    return {
        "train_acc": float(clf.score(Ztr, ytr)),
        "test_acc": float(clf.score(Zte, yte)),
        "n_iter": n_iter,
        "converged": n_iter < max_iter,
    }


# ----------------------------------------------------------------------------------------------
# the same metrics from winners / top indices, for data too large for a (samples, N) matrix
# (hebb_utils.analysis.neuron_summary streams over the samples and keeps only these)


def topographic_error_from_winners(best2, grid, neighbourhood: int = 8) -> float:
    """`topographic_error` from each sample's (best, second-best) neuron indices, best2 (B, 2) ints."""
    grid = Grid.of(grid)
    best2 = _indices("best2", best2, 2, grid.n, f" (the neurons of grid={grid.shape})")
    if best2.shape[1] != 2:
        raise ValueError(f"best2: expected (B, 2) integer neuron indices, got {tuple(best2.shape)}")
    if neighbourhood not in (4, 8):
        raise ValueError(f"neighbourhood={neighbourhood!r}: expected 8 (Chebyshev) or 4 (Manhattan)")
    return _not_neighbours(best2, grid.cols, neighbourhood)


def label_selectivity_from_winners(winners, labels, n_labels: int, n_neurons: int) -> dict:
    """`label_selectivity` from each sample's winning neuron index, winners (B,) ints."""
    n_neurons = positive_int("n_neurons", n_neurons)
    winners = _indices("winners", winners, 1, n_neurons, " (the neuron indices)")
    return _label_selectivity(winners, labels, n_labels, n_neurons, "winners")


def token_purity_from_top(top_index, token_ids) -> torch.Tensor:
    """`token_purity` from each neuron's strongest sample indices, top_index (top, N) ints."""
    token_ids = _indices("token_ids", token_ids, 1)
    top_index = _indices("top_index", top_index, 2, token_ids.shape[0], " (sample indices: len(token_ids))")
    return _mode_share(token_ids[top_index])  # (top, N) tokens


# ----------------------------------------------------------------------------------------------
# the shape of a distribution


def excess_kurtosis(S) -> torch.Tensor:
    """Excess kurtosis of each column of S (samples, k), (k,): the mean fourth power of the column
    standardised with its mean and its sample (n - 1) standard deviation, minus 3 (0 for a Gaussian;
    large for a heavy-tailed, i.e. sparse, source). With the n - 1 standard deviation this is
    ((n - 1) / n)^2 (b2 + 3) - 3 for scipy.stats.kurtosis's b2 (fisher=True, biased moments)."""
    S = matrix("S", S, min_rows=2)
    S = (S - S.mean(0)) / S.std(0)
    return (S ** 4).mean(0) - 3

