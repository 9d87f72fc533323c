"""Every dictionary method behind one interface: one fit factory per method, and their registry.

A method is `fit(seed) -> Dictionary` (the shape `experiments.softhebb.methods_over_seeds` takes), so
each runs on the same data, at the same dictionary size and sample budget, once per seed:

    methods = {"softhebb annealed": softhebb_fit_dictionary(X, grid, lateral=..., lr=0.05),
               "sae topk k=1": sae_fit(X, N, architecture="topk", k=1)}
    runs, first = methods_over_seeds(methods, seeds, dictionary_measure(truth))   # experiments.dictionaries

METHODS names them (method("minisom").fit is minisom_fit_dictionary), with each one's SAELens
export where it has one; the measures of notebook 07 are experiments/dictionaries.py's.

A `Dictionary` is what the metrics need and nothing else: `decoder` (N, d), one direction per unit
in the INPUT space (what a unit stands for), `encode` (X (n, d) -> codes (n, N), the method's own
sparse code) and `decode` (codes -> X_hat (n, d)), plus the unit grid when the method lays its
units on a map. What each method's decoder is:

- SoftHebb: the layer read as the TopK SAE `dictionaries.saelens.export_saelens` writes (k winners
  of u = w . z, z = (x - mu) / sigma; decoder sigma * w_j / |w_j|^2, offset mu);
- MiniSom: the prototypes mu + sigma * w_j, a one-winner vector quantiser (code 1 on the winner);
- Hebbian ICA: the mixing matrix (pseudo-inverse of the unmixing rows); its code is dense and
  its signs arbitrary (`sign_symmetric`: the metrics take |cos|);
- scikit-learn MiniBatchDictionaryLearning (coordinate descent, non-negative codes): its atoms;
- Hebbian matching pursuit: its unit rows (tied: the code is k pursuit steps on them);
- SAELens SAEs (L1, TopK, BatchTopK, JumpReLU, MatchingPursuit): W_dec.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ..checks import Grid, finite_float, matrix, positive_int
from ..rules.ica import hebbian_ica
from ..rules.lateral import Lateral, LateralSchedule, check_lateral
from ..rules.layer import SoftHebbLinear
from ..constants import BN_EPS
from ..rules.som import train_som
from ..rules.coactivation import coactivation, coactivation_layout
from ..rules.pursuit import PursuitLinear
from ..rules.training import train_softhebb, train_softhebb_parallel
from ..settings import LM_TOKENS
from .saelens import decode, encode, export_saelens, saelens_state, train_sae

__all__ = ["Dictionary", "softhebb_fit_dictionary", "pursuit_fit_dictionary", "minisom_fit_dictionary", "ica_fit_dictionary",
           "sklearn_fit_dictionary", "sae_fit", "Method", "METHODS", "method"]


@dataclass
class Dictionary:
    """A trained dictionary: N units, each with a direction in the input space (d)."""

    decoder: torch.Tensor  # (N, d) what each unit stands for, in input units
    encode: Callable[[torch.Tensor], torch.Tensor]  # X (n, d) -> codes (n, N)
    decode: Callable[[torch.Tensor], torch.Tensor]  # codes (n, N) -> X_hat (n, d)
    grid: tuple | None = None  # (rows, cols) when the units lie on a map: unit j at (j // cols, j % cols)
    sign_symmetric: bool = False  # a unit and its negative mean the same (ICA): compare |cos|
    model: object = None  # the trained object itself (layer, SOM, SAE, estimator)
    info: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------
# the methods: fit(seed) -> Dictionary

def softhebb_fit_dictionary(X, grid, *, lateral: Lateral | LateralSchedule | None, lr: float,
                            t_invert: float = LM_TOKENS.t_invert, epochs: int = 1, batch_size: int = 64, k: int = 1,
                            device="cpu", to_cpu: bool = True):
    """fit(seed) -> the SoftHebb layer trained on X (n, d) with one unit per cell of grid, read
    with a k-winner code (k = 1: its own winner-take-all).

    The layer starts from the seed's initial weights and sees the seed's batch order (train_softhebb,
    `epochs` passes in batches of `batch_size`, step size `lr`: no default, the published ones differ
    by data, hebb_utils/settings.py), with the fixed support (`Lateral`), an annealed one
    (`LateralSchedule`) or none. to_cpu: the trained layer is moved to the CPU, where the Dictionary's
    code is computed; False leaves it on `device` (a map measured there, as notebook 06 does)."""
    X = matrix("X", X, min_rows=2)
    n_units = Grid.of(grid).n
    check_lateral(lateral, n_units, "the neurons of grid")
    finite_float("t_invert", t_invert, minimum=0, strict_minimum=True)
    finite_float("lr", lr, minimum=0, strict_minimum=True)
    positive_int("batch_size", batch_size)
    k = positive_int("k", k)
    if k > n_units:
        raise ValueError(f"k={k}: expected at most the {n_units} units of grid {tuple(Grid.of(grid).shape)}")

    def fit(seed: int) -> Dictionary:
        layer = SoftHebbLinear(X.shape[1], n_units, t_invert, lateral=lateral, seed=seed, device=device)
        train_softhebb(layer, X, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device, progress=False)
        if to_cpu:
            layer = layer.cpu()
        return Dictionary(decoder=saelens_state(layer)["W_dec"], encode=lambda x: encode(layer, x, k),
                          decode=lambda c: decode(layer, c), grid=tuple(Grid.of(grid).shape), model=layer,
                          info={"k": k})

    return fit


def pursuit_fit_dictionary(X, n_units: int, *, k: int, lr: float, grid=None, residual_threshold: float = 0.0,
                           h0: float = 1.0, offset: bool = False, epochs: int = 1, batch_size: int = 256,
                           device="cpu", layout: bool = False, layout_widths=(4.0, 2.0, 1.0, 0.5),
                           layout_restarts: int = 20):
    """fit(seed) -> Hebbian matching pursuit (rules/pursuit.py) trained on X (n, d): n_units unit rows,
    k units per sample explaining each other away, through the one training loop (`epochs` passes in
    the seed's batch order, batches of `batch_size`, step size `lr`); its code is the layer's own,
    its decoder the rows (x_hat = codes @ W + b). grid: where the units lie for a map, or None; offset:
    learn a constant b the inputs are coded around (data with a constant part, as SAELens' benchmark).
    layout=True (needs a grid): after training, the units move to the cells that put units firing
    together side by side (rules/coactivation.py: the co-activation of their codes on X, pooled over
    grid neighbours of the widths layout_widths, best of layout_restarts seeded starts); the
    dictionary and its codes are the same up to the units' order."""
    X = matrix("X", X, min_rows=2)
    n_units = positive_int("n_units", n_units)
    grid = None if grid is None else tuple(Grid.of(grid, n=n_units, what="units").shape)
    layer_settings = dict(k=k, residual_threshold=residual_threshold, grid=grid, h0=h0, offset=offset)
    PursuitLinear(X.shape[1], n_units, **layer_settings)  # the settings checked before any fit
    finite_float("lr", lr, minimum=0, strict_minimum=True)
    positive_int("batch_size", batch_size, minimum=2)
    if layout and grid is None:
        raise ValueError("layout=True: the units need a grid to be laid out on; pass grid=(rows, cols)")
    if layout:
        layout_widths = [finite_float("layout_widths", w, minimum=0, strict_minimum=True, hint="grid units")
                         for w in layout_widths]
        if not layout_widths:
            raise ValueError("layout_widths: expected at least one neighbourhood width (grid units), e.g. (4, 2, 1, 0.5)")
        layout_restarts = positive_int("layout_restarts", layout_restarts)

    def fit(seed: int) -> Dictionary:
        layer = PursuitLinear(X.shape[1], n_units, **layer_settings, seed=seed, device=device)
        train_softhebb_parallel(layer, X, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device,
                                progress=False)
        layer = layer.cpu()
        if layout:
            C = coactivation(layer.responses(X))
            unit_at = coactivation_layout(C, grid, widths=layout_widths, restarts=layout_restarts, seed=seed).argsort()
            layer.weight.copy_(layer.weight[unit_at])  # the unit at cell c is unit_at[c]
            layer.usage.copy_(layer.usage[unit_at])
        return Dictionary(decoder=layer.weight.clone(), encode=layer, decode=layer.decode, grid=grid, model=layer,
                          info={"k": layer.k})

    return fit


def minisom_fit_dictionary(X, grid, *, sigma: float, learning_rate: float = 0.5, max_samples: int | None = None):
    """fit(seed) -> one pass of MiniSom over X on grid, as a vector quantiser: the code of a sample
    is 1 on its nearest prototype, the reconstruction that prototype. sigma shrinks to 1 and
    learning_rate to 0, linearly (`train_som`); max_samples: a seeded subsample of that many rows
    (MiniSom trains one sample per step in numpy)."""
    X = matrix("X", X, min_rows=2)
    grid = Grid.of(grid)
    finite_float("sigma", sigma, minimum=0, strict_minimum=True)
    finite_float("learning_rate", learning_rate, minimum=0, strict_minimum=True)
    if max_samples is not None:
        positive_int("max_samples", max_samples, minimum=2, hint="or None for every sample")

    def fit(seed: int) -> Dictionary:
        som = train_som(X, grid.shape, sigma=sigma, learning_rate=learning_rate, max_samples=max_samples, seed=seed)
        prototypes = som.mean + som.weights * torch.sqrt(som.var + BN_EPS)  # (N, d) back in input units

        def code(x):
            winner = som.responses(x).argmax(1)  # the nearest prototype
            return torch.nn.functional.one_hot(winner, grid.n).float()

        return Dictionary(decoder=prototypes, encode=code, decode=lambda c: c @ prototypes, grid=tuple(grid.shape),
                          model=som)

    return fit


def ica_fit_dictionary(X, n_components: int, **options):
    """fit(seed) -> Hebbian ICA with n_components <= d (it unmixes at most d sources): the mixing
    directions, the sources as a dense code."""
    X = matrix("X", X, min_rows=2)
    n_components = positive_int("n_components", n_components)
    if n_components > X.shape[1]:
        raise ValueError(f"n_components={n_components}: ICA finds at most d = {X.shape[1]} components (one per "
                         "input dimension); ask for at most that many")

    def fit(seed: int) -> Dictionary:
        W = hebbian_ica(X, n_components, seed=seed, **options)  # (k, d): sources (X - mean) W^T
        mean = X.mean(0)
        A = torch.linalg.pinv(W.double()).float()  # (d, k): X - mean ~ S A^T
        return Dictionary(decoder=A.T.contiguous(), encode=lambda x: (x - mean) @ W.T,
                          decode=lambda s: s @ A.T + mean, sign_symmetric=True, model=W)

    return fit


def sklearn_fit_dictionary(X, n_components: int, *, alpha: float = 0.1, batch_size: int = 256,
                           max_iter: int = 1, transform_alpha: float | None = None):
    """fit(seed) -> scikit-learn's MiniBatchDictionaryLearning (coordinate descent, non-negative
    codes), `max_iter` passes over X; codes by the same Lasso (transform_alpha, default alpha)."""
    X = matrix("X", X, min_rows=2)
    positive_int("n_components", n_components)

    def fit(seed: int) -> Dictionary:
        from sklearn.decomposition import MiniBatchDictionaryLearning

        est = MiniBatchDictionaryLearning(n_components=n_components, alpha=alpha, batch_size=batch_size,
                                          max_iter=max_iter, fit_algorithm="cd", positive_code=True,
                                          transform_algorithm="lasso_cd", transform_alpha=transform_alpha or alpha,
                                          random_state=seed)
        # In float64: on float32 data the same seed gave other atoms from run to run, even on one thread
        # (measured: up to 3e-4 apart on a 4000 x 128 toy; MMCS 0.70697, then 0.707214, on notebook 07's
        # 10k-sample toy, in one process), which float64 does not.
        est.fit(X.numpy().astype(np.float64))
        atoms = torch.from_numpy(est.components_.astype(np.float32))  # (N, d)

        def code(x):
            return torch.from_numpy(est.transform(x.numpy().astype(np.float64)).astype(np.float32))

        return Dictionary(decoder=atoms, encode=code, decode=lambda c: c @ atoms, model=est)

    return fit


def sae_fit(X, d_sae: int, grid=None, **settings):
    """fit(seed) -> an SAELens SAE trained on X by `dictionaries.saelens.train_sae(X, d_sae, **settings)`.
    grid (rows, cols) with rows * cols = d_sae lays its latents on a map in index order (an SAE has no
    layout of its own: the null a topographic map is compared with)."""
    X = matrix("X", X, min_rows=2)
    positive_int("d_sae", d_sae)
    grid = None if grid is None else tuple(Grid.of(grid, n=d_sae, what="latents of the SAE").shape)

    def fit(seed: int) -> Dictionary:
        sae, info = train_sae(X, d_sae, seed=seed, **settings)

        @torch.no_grad()
        def code(x):
            return sae.encode(x)

        @torch.no_grad()
        def recon(c):
            return sae.decode(c)

        return Dictionary(decoder=sae.W_dec.detach().clone(), encode=code, decode=recon, model=sae, grid=grid,
                          info={k: info[k] for k in ("seconds", "steps") if k in info})

    return fit


# ------------------------------------------------------------------------------------------------
# the registry: one line per method

@dataclass(frozen=True)
class Method:
    """One dictionary method: its fit factory (-> fit(seed) -> Dictionary, whose encode/decode are the
    method's code), its SAELens export (layer, folder, ...) or None, and what it is in one line."""

    fit: Callable
    export: Callable | None
    description: str


METHODS = {
    "softhebb": Method(fit=softhebb_fit_dictionary, export=export_saelens,
                       description="SoftHebb layer on a grid, read as a k-winner TopK SAE"),
    "pursuit": Method(fit=pursuit_fit_dictionary, export=export_saelens,
                      description="Hebbian matching pursuit: k units per input, explaining each other away"),
    "minisom": Method(fit=minisom_fit_dictionary, export=None,
                      description="MiniSom Kohonen map, a one-winner vector quantiser"),
    "hebbian ica": Method(fit=ica_fit_dictionary, export=None,
                          description="Hebbian ICA: the mixing directions, a dense sign-symmetric code"),
    "sklearn": Method(fit=sklearn_fit_dictionary, export=None,
                      description="scikit-learn MiniBatchDictionaryLearning, non-negative Lasso codes"),
    "sae": Method(fit=sae_fit, export=None,
                  description="SAELens SAE (L1, TopK, BatchTopK, JumpReLU or MatchingPursuit), already one of SAELens"),
}


def method(name: str) -> Method:
    """METHODS[name], or a ValueError listing the valid names."""
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise ValueError(f"method {name!r}: expected one of {sorted(METHODS)}") from None
