"""The Kohonen self-organizing map baseline: MiniSom, on the same inputs and grid as a SoftHebb run.

MiniSom (github.com/JustGlowing/minisom) is the reference SOM library; this file only adapts it:

    som = train_som(X, grid=(15, 30), seed=42)      # X (samples, D) raw, as given to train_softhebb
    u = som.responses(X_test)                       # (B, N) = -||x - w_j||: larger = closer
    topographic_error(u, grid)                      # the project's metrics, on the SOM's own winner rule

The inputs are standardised per feature with the training set's mean and (biased) variance, as the
SoftHebb layer's BatchNorm does, so both maps see the same numbers. The SOM's winner is the nearest
unit (MiniSom's rule), so its responses are minus the Euclidean distances; ranked by dot product
instead, half of a CIFAR SOM's units never win. triangle_activation of these responses is Coates'
k-means "triangle" feature, relu(mean_k d_k - d_j).

Training is MiniSom's own: one sample per step, a Gaussian neighbourhood, sigma and the learning
rate decayed over the steps (MiniSom's decay functions, by name). It runs in numpy on the CPU:
about a millisecond per step at 450 units x 3072 inputs, so large token sets take `max_samples`, a
seeded subsample of the training set (one pass over it).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..checks import Grid, finite_float, matrix, positive_int
from ..constants import BN_EPS

__all__ = ["SOM", "train_som", "standardise", "as_float32"]

# The settings train_som accepts. MiniSom's step is w += eta * h * (x - w) with h <= 1 and eta
# decaying from learning_rate: with learning_rate <= 1 each unit moves at most onto the sample, so
# the weights stay among the samples and the initial weights; above 2 a step overshoots more than
# it corrects and the weights grow to inf/NaN (learning_rate 10). A Gaussian narrower than
# SIGMA_MIN grid units is already the winner alone (exp(-1 / (2 sigma^2)) = 0 one step away), and
# below ~1e-162 MiniSom's 2 sigma^2 underflows to 0 and the winner's weight is 0 / 0 = NaN.
LEARNING_RATE_MAX = 1.0
SIGMA_MIN = 0.01


def standardise(X: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """(x - mean) / sqrt(var + 1e-5) per feature, as BatchNorm1d (eval, non-affine) computes it."""
    return (X - mean) / torch.sqrt(var + BN_EPS)


@dataclass
class SOM:
    """A trained MiniSom map on `grid`: weights (N, D) float32 in standardised input units, neuron j
    at (j // cols, j % cols) as everywhere in this project, and the standardisation it was trained with."""

    weights: torch.Tensor  # (N, D)
    grid: Grid
    mean: torch.Tensor  # (D,) training-set mean
    var: torch.Tensor  # (D,) training-set biased variance
    train_seconds: float
    config: dict = field(default_factory=dict)

    def inputs(self, X) -> torch.Tensor:
        """X (B, D) standardised as the SOM was trained."""
        X = matrix("X", X, self.weights.shape[1], dtype=torch.float32, cols_name="the SOM's input size")
        return standardise(X, self.mean, self.var)

    @torch.no_grad()
    def responses(self, X, batch_size: int = 8192) -> torch.Tensor:
        """(B, N) minus the Euclidean distance of each standardised input to each unit: the SOM's
        winner (the nearest unit) is the largest response, as for the project's metrics."""
        batch_size = positive_int("batch_size", batch_size)
        X = self.inputs(X)
        w_sq = self.weights.square().sum(1)  # (N,)
        out = []
        for i in range(0, X.shape[0], batch_size):
            x = X[i : i + batch_size]
            d2 = x.square().sum(1, keepdim=True) - 2 * x @ self.weights.T + w_sq  # (b, N)
            out.append(-d2.clamp_min_(0).sqrt_())
        return torch.cat(out)


def as_float32(som) -> None:
    """Make a MiniSom train in float32 instead of its float64: the weights and the grid coordinates the
    neighbourhood is computed from. Every step of MiniSom streams the whole (rows, cols, D) weight
    array several times, so halving its bytes makes a step ~3x faster (measured: 8.7 -> 2.9 ms at
    15 x 30 x 3072 on 2 cores); the SoftHebb layer trains in float32 too. MiniSom has no dtype
    option, so this sets its arrays; tests/test_som.py checks that it trains in float32 and lands
    where float64 does."""
    for name in ("_weights", "_xx", "_yy"):
        if not isinstance(getattr(som, name, None), np.ndarray):
            raise RuntimeError(f"this MiniSom has no array {name}: as_float32 was written for MiniSom 2.3")
        setattr(som, name, getattr(som, name).astype(np.float32))


def train_som(X, grid, *, sigma: float = 5.0, learning_rate: float = 0.5, sigma_decay: str = "linear_decay_to_one",
              lr_decay: str = "linear_decay_to_zero", max_samples: int | None = None, seed: int = 42) -> SOM:
    """One pass of MiniSom over X (samples, D) on `grid` (rows, cols); returns a SOM.

    sigma: the Gaussian neighbourhood's initial width in grid units (>= 0.01), decayed by MiniSom's
    `sigma_decay` ("linear_decay_to_one": sigma -> 1); learning_rate in (0, 1] decayed by `lr_decay`
    ("linear_decay_to_zero"). Other settings are refused (they give NaN or inf weights). The weights start at random training samples (MiniSom's
    random_weights_init) and the samples are visited in a random order, both from `seed`.
    max_samples: train on a seeded subsample of that many rows (all rows if None or larger).
    """
    from minisom import MiniSom

    grid = Grid.of(grid)
    if grid.one_d:
        raise ValueError(f"grid={grid.shape}: the SOM baseline needs (rows, cols); use (1, {grid.cols}) for one row")
    X = matrix("X", X, dtype=torch.float32, min_rows=2)
    if X.shape[1] == 0:
        raise ValueError(f"X has shape {tuple(X.shape)}: expected at least one feature (column) per sample")
    sigma = finite_float("sigma", sigma, minimum=SIGMA_MIN, hint="grid units, e.g. 5.0")
    learning_rate = finite_float("learning_rate", learning_rate, minimum=0, maximum=LEARNING_RATE_MAX,
                                 strict_minimum=True, hint="in (0, 1], e.g. 0.5")
    seed = positive_int("seed", seed, minimum=0)
    if max_samples is not None:
        max_samples = positive_int("max_samples", max_samples, minimum=2, hint="or None for every sample")
    mean, var = X.double().mean(0), X.double().var(0, unbiased=False)
    rows = torch.arange(X.shape[0])
    if max_samples is not None and max_samples < X.shape[0]:
        rows = torch.randperm(X.shape[0], generator=torch.Generator().manual_seed(seed))[:max_samples].sort().values
    data = standardise(X[rows].double(), mean, var).float().numpy()  # (n, D) float32, as the SoftHebb layer
    try:
        som = MiniSom(grid.rows, grid.cols, X.shape[1], sigma=sigma, learning_rate=learning_rate,
                      decay_function=lr_decay, sigma_decay_function=sigma_decay,
                      neighborhood_function="gaussian", random_seed=seed)
    except ValueError as e:  # an unknown decay name: MiniSom lists the ones it has
        raise ValueError(f"sigma_decay={sigma_decay!r} / lr_decay={lr_decay!r}: {e}") from None
    som.random_weights_init(data)
    as_float32(som)
    start = time.perf_counter()
    som.train(data, len(data), random_order=True)  # one pass: a permutation of the samples
    seconds = time.perf_counter() - start
    weights = torch.from_numpy(som.get_weights().reshape(grid.n, X.shape[1])).float()  # row-major: j = r * cols + c
    config = dict(sigma=sigma, learning_rate=learning_rate, sigma_decay=sigma_decay, lr_decay=lr_decay,
                  n_train=len(data), subsample=len(data) < X.shape[0], seed=seed, library="minisom")
    return SOM(weights, grid, mean.float(), var.float(), round(seconds, 2), config)
