"""Superposition data with KNOWN features: the ground truth a learned dictionary is scored against.

Each generator draws n_features unit-norm directions in R^d (d may be smaller: superposition),
a sparse non-negative code per sample, and returns the samples X = codes @ features:

    gt = sharkey_toy(50_000, d=256, n_features=512, target_l0=5, seed=0)
    gt.X (50000, 256)   gt.features (512, 256)   gt.codes (50000, 512)   gt.mean_l0 ~ 5

Everything is drawn from one local torch.Generator seeded with `seed` + DATA_STREAM (the global RNG is
never touched; the offset keeps the data's stream apart from the layers', which are seeded with the same
small numbers): the same arguments give bit-identical tensors. The features are drawn first, so they
depend on (seed, d, n_features) alone, not on n_samples.

Memory: codes are a dense float32 tensor, n_samples * n_features * 4 bytes (100,000 x 512 = 205 MB),
and drawing them needs about three times that at peak. At the sizes of the notebooks this is
simpler and faster than a sparse tensor; for much larger sets draw fewer samples.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..checks import Grid, finite_float, positive_int

__all__ = ["GroundTruth", "sharkey_toy", "topographic_toy"]


@dataclass(frozen=True)
class GroundTruth:
    """Samples and the features they are made of.

    X (n_samples, d) float32: the samples, exactly codes @ features.
    features (n_features, d) float32: the true directions, unit-norm rows.
    codes (n_samples, n_features) float32: the true coefficients, >= 0, zero where a feature is off.
    grid: (rows, cols) where feature i sits at (i // cols, i % cols) (topographic toy), else None.
    config: the settings, JSON-able (the derived scale included).
    rates (n_features,) float64: each feature's true firing probability (its share of samples, in
      expectation).
    correlation (n_features, n_features) float32 or None: the Gaussian copula's correlation matrix
      of the correlated toy, else None.
    """

    X: torch.Tensor
    features: torch.Tensor
    codes: torch.Tensor
    grid: tuple[int, int] | None
    config: dict
    rates: torch.Tensor
    correlation: torch.Tensor | None = None

    @property
    def mean_l0(self) -> float:
        """Mean number of active features (nonzero codes) per sample."""
        return float((self.codes != 0).sum(dim=1).double().mean())


# ----------------------------------------------------------------------------------------------
# shared pieces


def _unit_directions(n: int, d: int, gen: torch.Generator) -> torch.Tensor:
    """(n, d) float32 rows drawn from N(0, I_d) and scaled to unit norm (uniform on the sphere)."""
    F = torch.randn(n, d, generator=gen, dtype=torch.float64)
    return (F / F.norm(dim=1, keepdim=True)).float()


def _coefficients(fires: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """codes (B, n) float32: Uniform(0, 1] where fires (B, n) is True, 0 elsewhere.

    1 - U with U ~ Uniform[0, 1) never gives 0, so a firing feature is always nonzero (L0 counts it)."""
    coef = 1.0 - torch.rand(fires.shape, generator=gen)
    return torch.where(fires, coef, torch.zeros_like(coef))


def _scale_for_total(weights: torch.Tensor, total: float) -> float:
    """The scale a with sum_i min(1, a * w_i) = total, for w (m,) float64 >= 0 and 0 < total <= #(w > 0).

    Why exact: the sum is piecewise linear and increasing in a. With the k largest weights clipped
    at 1, a = (total - k) / (sum of the others); the solution is the k for which the k-th largest
    weight is clipped (a w >= 1) and the (k+1)-th is not (a w <= 1). One sort, no iteration.
    """
    w = weights[weights > 0].sort(descending=True).values  # (m,)
    m = w.numel()
    if total >= m:
        return float(1.0 / w[-1])  # everything fires
    k = torch.arange(m, dtype=torch.float64)
    rest = w.flip(0).cumsum(0).flip(0)  # rest[k] = sum of w[k:]
    a = (total - k) / rest  # (m,) the scale if exactly the first k are clipped
    slack = 1e-12
    unclipped = a * w <= 1 + slack  # the (k+1)-th largest stays below 1
    clipped = torch.ones_like(unclipped)
    clipped[1:] = a[1:] * w[:-1] >= 1 - slack  # the k-th largest reaches 1
    return float(a[(unclipped & clipped).nonzero()[0, 0]])


# The data's stream sits at seed + DATA_STREAM, not at seed: a layer seeded with the same number draws its
# initial weights from torch.Generator(seed), and Hebbian pursuit's float64 normal draws of shape
# (n_features, d) WERE the toy's features (measured: MMCS 1.000 on every seed of notebook 07 before this
# offset, the untrained layer already being the answer; tests/test_ground_truth.py checks every method's
# start against every generator). torch keeps the low 32 bits of a seed, so seeds stay below 2**31.
DATA_STREAM = 3 * 2**29


def _seed(seed) -> torch.Generator:
    seed = positive_int("seed", seed, minimum=0)
    if seed >= 2**31:
        raise ValueError(f"seed={seed}: expected a seed below 2**31 (the data's stream sits at seed + {DATA_STREAM}, "
                         "and torch keeps 32 bits of a seed)")
    return torch.Generator().manual_seed(seed + DATA_STREAM)


# ----------------------------------------------------------------------------------------------
# the toy of Sharkey, Braun & Millidge (2022)


def sharkey_toy(n_samples: int, d: int = 256, n_features: int = 512, seed: int = 0, correlated: bool = False,
                target_l0: float | None = None, *, n_factors: int = 8) -> GroundTruth:
    """The toy data of Sharkey, Braun & Millidge (2022), "Taking features out of superposition with
    sparse autoencoders" (LessWrong interim report): sparse non-negative mixtures of random directions.

    Process (feature i is 0-based):
      features: n_features rows drawn from N(0, I_d), scaled to unit norm;
      firing probability p_i = min(1, 0.99**i * base): frequent and rare features, geometrically;
      base = 5 / n_features by default (as in the replication code, whose uncorrelated branch uses
        feature_num_nonzero / n_features). NOTE: the mean L0 is then sum_i p_i, which for 512
        features is 5 / 512 * (1 - 0.99**512) / 0.01 = 0.97, not 5. Pass target_l0=5 for "5 active
        features per sample on average" as the report states;
      with target_l0: base is solved so that sum_i min(1, 0.99**i * base) = target_l0 exactly
        (0 < target_l0 <= n_features);
      each feature fires independently with p_i (correlated=False), and an active feature gets a
        coefficient ~ Uniform(0, 1]; X = codes @ features.

    correlated=True: the firing events are correlated through a Gaussian copula that keeps every
    marginal at p_i. A random factor model gives the latent z = (F g + e) / sqrt(|F_i|^2 + 1) with
    loadings F (n_features, n_factors) ~ N(0, 1) drawn once, and per sample g ~ N(0, I_n_factors),
    e ~ N(0, I_n_features); so z ~ N(0, C) with C_ij = (F_i . F_j + [i = j]) / sqrt((|F_i|^2 + 1)
    (|F_j|^2 + 1)), a correlation matrix (unit diagonal, full rank; off-diagonal entries of both
    signs, spread ~ 1 / sqrt(n_factors)). Feature i fires when Phi(z_i) < p_i, i.e. z_i < Phi^-1(p_i):
    marginally still with probability p_i, so the mean L0 is unchanged, but features with C_ij > 0
    fire together more often than independence predicts (and those with C_ij < 0 less). C is
    returned as `correlation`.
    """
    n_samples = positive_int("n_samples", n_samples)
    d = positive_int("d", d)
    n_features = positive_int("n_features", n_features)
    if not isinstance(correlated, bool):
        raise ValueError(f"correlated={correlated!r}: expected True or False")
    n_factors = positive_int("n_factors", n_factors)
    if target_l0 is not None:
        target_l0 = finite_float("target_l0", target_l0, minimum=0, maximum=n_features, strict_minimum=True,
                                 hint="the mean number of active features per sample, at most n_features; or None")
    gen = _seed(seed)

    features = _unit_directions(n_features, d, gen)  # (n_features, d)
    decay = 0.99 ** torch.arange(n_features, dtype=torch.float64)  # (n_features,)
    base = 5.0 / n_features if target_l0 is None else _scale_for_total(decay, target_l0)
    p = (decay * base).clamp(max=1.0)  # (n_features,) float64

    correlation = None
    if correlated:
        F = torch.randn(n_features, n_factors, generator=gen, dtype=torch.float64)
        scale = (F.square().sum(dim=1) + 1).sqrt()  # (n_features,) the latent's standard deviation
        g = torch.randn(n_samples, n_factors, generator=gen)  # float32: the big draws stay 4 bytes an entry
        e = torch.randn(n_samples, n_features, generator=gen)
        z = (g @ F.float().T + e) / scale.float()  # (n_samples, n_features) ~ N(0, C)
        del e
        fires = z < torch.special.ndtri(p)  # compared in float64; p = 1 gives +inf: always fires
        del z
        correlation = ((F @ F.T + torch.eye(n_features, dtype=torch.float64)) / (scale[:, None] * scale)).float()
    else:
        fires = torch.rand(n_samples, n_features, generator=gen) < p  # compared in float64
    codes = _coefficients(fires, gen)  # (n_samples, n_features)
    config = {"generator": "sharkey_toy", "n_samples": n_samples, "d": d, "n_features": n_features, "seed": int(seed),
              "correlated": correlated, "target_l0": target_l0, "n_factors": n_factors if correlated else None,
              "decay": 0.99, "base": base, "expected_l0": float(p.sum())}
    return GroundTruth(codes @ features, features, codes, None, config, p, correlation)


# ----------------------------------------------------------------------------------------------
# a topographic toy: features on a 2D map, neighbours fire together


def topographic_toy(n_samples: int, d: int = 64, grid=(8, 8), seed: int = 0, radius: float = 1.0,
                    mean_l0: float = 4.0, torus: bool = False) -> GroundTruth:
    """Features laid out on a 2D grid, active in neighbourhoods: the data a topographic map should
    find, with the layout known.

    Process:
      features: n_features = rows * cols unit-norm directions (N(0, I_d), normalised); feature k
        sits at (k // cols, k % cols). d < n_features puts them in superposition;
      each sample picks a centre cell c uniformly at random;
      feature k then fires, independently of the others given c, with probability
        P[c, k] = min(1, a * exp(-dist(c, k)^2 / (2 radius^2))),
        dist the Euclidean grid distance (torus=True: wrapping around both edges);
      a is solved exactly so that the mean L0 (averaged over centres) equals `mean_l0`;
      an active feature gets a coefficient ~ Uniform(0, 1]; X = codes @ features.
    So features close on the grid fire together and far ones almost never do; on a torus every
    feature fires equally often, on a plain grid those at the edges fire less (fewer centres near).
    `rates` holds each feature's firing probability, mean over c of P[c, k].
    """
    n_samples = positive_int("n_samples", n_samples)
    d = positive_int("d", d)
    g = Grid.of(grid)
    radius = finite_float("radius", radius, minimum=0, strict_minimum=True, hint="in grid cells")
    if not isinstance(torus, bool):
        raise ValueError(f"torus={torus!r}: expected True or False")
    gen = _seed(seed)
    n = g.n

    rows, cols = torch.arange(n) // g.cols, torch.arange(n) % g.cols
    dr = (rows[:, None] - rows[None]).abs()  # (n, n)
    dc = (cols[:, None] - cols[None]).abs()
    if torus:
        dr, dc = torch.minimum(dr, g.rows - dr), torch.minimum(dc, g.cols - dc)
    r2 = radius * radius  # inf past ~1e154 (radius**2 would raise OverflowError): the limit, exp(-0) = 1 everywhere
    if r2 > 0:
        shape = torch.exp(-(dr.square() + dc.square()).double() / (2 * r2))  # (n, n) centre c, feature k
    else:  # radius**2 underflows (radius < ~1e-162): the limit, only the centre's own feature can fire
        shape = ((dr + dc) == 0).double()
    reachable = int((shape > 0).sum()) / n  # the largest mean L0: every reachable feature always fires
    mean_l0 = finite_float("mean_l0", mean_l0, minimum=0, maximum=reachable, strict_minimum=True,
                           hint=f"at most {reachable:g} active features per sample on this grid and radius")
    a = _scale_for_total(shape.flatten(), mean_l0 * n)
    P = (a * shape).clamp(max=1.0)  # (n, n)

    features = _unit_directions(n, d, gen)  # (n, d)
    centre = torch.randint(n, (n_samples,), generator=gen)  # (n_samples,)
    fires = torch.rand(n_samples, n, generator=gen) < P[centre]  # compared in float64
    codes = _coefficients(fires, gen)  # (n_samples, n)
    config = {"generator": "topographic_toy", "n_samples": n_samples, "d": d, "grid": [g.rows, g.cols],
              "seed": int(seed), "radius": radius, "mean_l0": mean_l0, "torus": torus, "scale": a,
              "expected_l0": float(P.sum() / n)}
    return GroundTruth(codes @ features, features, codes, (g.rows, g.cols), config, P.mean(dim=0))
