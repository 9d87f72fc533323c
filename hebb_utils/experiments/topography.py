"""Notebook 06's experiment: MiniSom against SoftHebb with the fixed and the annealed lateral support,
on the same inputs, grid and metrics.

Each method is a `fit(seed)` of the dictionary registry (dictionaries/registry.py) and each data set a
`measure(name, dictionary, seed)` that reads the trained map (`dictionary.model`), the two halves
`methods_over_seeds` takes:

    methods = {"minisom": minisom_fit_dictionary(X, (15, 30), sigma=5.0, learning_rate=0.5),
               "annealed": softhebb_fit_dictionary(X, (15, 30), lateral=annealed_support((15, 30), (7.5, 1.5), 10.0),
                                                   lr=0.01, t_invert=300.0, to_cpu=False)}
    runs, first = methods_over_seeds(methods, seeds, cifar_measure(X, y, X_test, y_test, (15, 30), n_labels=10))

Every method sees the inputs standardised per feature as the SoftHebb layer's BatchNorm does (the
SOM by `train_som`, the weight measures by `feature_statistics` + `standardise`), and each map is read
with its own winner rule (`map_metrics`): the nearest unit for the SOM, the largest u for SoftHebb.
"""
from __future__ import annotations

import torch

from ..checks import Grid, finite_float, matrix, positive_int, vector
from ..dictionaries.registry import Dictionary
from ..rules.lateral import LateralSchedule
from ..rules.layer import SoftHebbLinear
from ..measure.maps import map_metrics, triangle_activation
from ..measure.metrics import effective_dimension, linear_probe, neighbour_similarity, reconstruction_error
from ..rules.som import SOM, standardise

__all__ = ["feature_statistics", "trained_map", "annealed_support", "annealed_sweep", "weight_measures",
           "cifar_measure", "lm_measure", "TOPOGRAPHY_GOALS", "design_entry", "topography_design",
           "topography_findings"]


def feature_statistics(X) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and biased variance of X (samples, D), summed in float64, returned as two
    (D,) float32 tensors: the statistics `standardise` takes (BatchNorm's, over the training set)."""
    X = matrix("X", X, min_rows=2)
    return X.double().mean(0).float(), X.double().var(0, unbiased=False).float()


def trained_map(model):
    """The trained map a measure reads: a registry Dictionary's model (a SoftHebbLinear, a SOM), or
    the map itself."""
    return model.model if isinstance(model, Dictionary) else model


def annealed_support(grid, radius: tuple[float, float], gain: float | tuple[float, float]) -> LateralSchedule:
    """The annealed lateral support of notebook 06: a Gaussian neighbourhood on grid (rows, cols) whose
    width goes from radius[0] to radius[1] over training (geometric), with a constant gain or a
    (start, end) pair. LateralSchedule checks the values."""
    return LateralSchedule(grid, radius=radius, gain=gain, shape="gaussian")


def annealed_sweep(grid, *, radius: tuple[float, float], gain: float, lr: float, gains=(), radius_ends=(),
                   final_gains=(), lrs=()) -> dict[str, dict]:
    """One setting changed at a time around the annealed support (radius (start, end), gain, lr):

        "gain G"           the constant gain G            for G in gains
        "end R"            the width ending at R          for R in radius_ends
        "gain g0 to G"     the gain annealed from g0 to G for G in final_gains
        "lr L"             the step size L                for L in lrs

    Returns name -> {"lateral": LateralSchedule, "lr": float, "varied": {setting: value}}, in that order.
    """
    settings = {"gains": gains, "radius_ends": radius_ends, "final_gains": final_gains, "lrs": lrs}
    for what, values in settings.items():
        for v in values:
            finite_float(what, v, minimum=0, strict_minimum=True)
    start, end = radius
    out = {f"gain {g:g}": {"lateral": annealed_support(grid, (start, end), g), "lr": lr, "varied": {"gain": g}}
           for g in gains}
    out.update({f"end {r:g}": {"lateral": annealed_support(grid, (start, r), gain), "lr": lr, "varied": {"radius_end": r}}
                for r in radius_ends})
    out.update({f"gain {gain:g} to {g:g}": {"lateral": annealed_support(grid, (start, end), (gain, g)), "lr": lr,
                                           "varied": {"gain": [gain, g]}} for g in final_gains})
    out.update({f"lr {v:g}": {"lateral": annealed_support(grid, (start, end), gain), "lr": v, "varied": {"lr": v}}
                for v in lrs})
    return out


def weight_measures(model: SoftHebbLinear | SOM, X_std, grid) -> dict:
    """What the weights alone say, for a SOM or a SoftHebb layer with N = rows * cols units:
    reconstruction_error of X_std (samples, D), the inputs standardised as the map was trained;
    neighbour_similarity (the mean cosine of grid neighbours' weights); effective_dimension (over how
    many directions the units spread, a participation ratio)."""
    weights = model.weights if isinstance(model, SOM) else model.weight  # (N, D)
    X_std = matrix("X_std", X_std, weights.shape[1], cols_name="the map's input size")
    Grid.of(grid, n=weights.shape[0], what="units in the map")
    return {"reconstruction_error": reconstruction_error(X_std, weights),
            "neighbour_similarity": neighbour_similarity(weights, grid),
            "effective_dimension": effective_dimension(weights)}


def cifar_measure(X_train, y_train, X_test, y_test, grid, *, n_labels: int, n_shuffles: int = 100,
                  probe_max_iter: int = 200, probe_train_samples: int | None = None):
    """measure(name, model, seed) for images: X_* (samples, D) pixels, y_* (samples,) class labels;
    model: a trained map or the registry Dictionary holding it (trained_map).

    map_metrics on the test set (topographic error, distance rho, dead units, class purity), the
    linear probe on relu(u - mean u) of the responses (trained on the training set, scored on the
    test set; on a seeded subsample of `probe_train_samples` training images when given), and the
    weight measures on the test images standardised with the training set's statistics (the units
    both maps are trained in).
    """
    X_train, X_test = matrix("X_train", X_train, min_rows=2), matrix("X_test", X_test, X_train.shape[1])
    vector("y_train", y_train, X_train.shape[0], integer=True)
    vector("y_test", y_test, X_test.shape[0], integer=True)
    positive_int("n_labels", n_labels, minimum=2)
    positive_int("n_shuffles", n_shuffles)
    positive_int("probe_max_iter", probe_max_iter)
    X_test_std = standardise(X_test, *feature_statistics(X_train))

    def measure(name: str, model, run_seed: int) -> dict:
        model = trained_map(model)
        m = map_metrics(model, X_test, grid, labels=y_test, n_labels=n_labels, n_shuffles=n_shuffles, seed=run_seed)
        probe = linear_probe(triangle_activation(model.responses(X_train)), y_train,
                             triangle_activation(model.responses(X_test)), y_test, max_iter=probe_max_iter,
                             seed=run_seed, train_samples=probe_train_samples)
        m.update(probe_triangle_test_acc=probe["test_acc"], probe_converged=probe["converged"],
                 **weight_measures(model, X_test_std, grid))
        return m

    return measure


def lm_measure(X, grid, token_ids, *, n_shuffles: int = 100, reconstruction_samples: int = 100_000,
               sample_seed: int = 42):
    """measure(name, model, seed) for LM tokens: X (tokens, d_model), token_ids (tokens,); model: a
    trained map or the registry Dictionary holding it (trained_map).

    map_metrics on every token (topographic error, distance rho, dead units, token purity) and the
    weight measures on a seeded subsample of `reconstruction_samples` tokens (torch.randperm from
    `sample_seed`), standardised with the statistics of all tokens.
    """
    X = matrix("X", X, min_rows=2)
    vector("token_ids", token_ids, X.shape[0], integer=True)
    positive_int("n_shuffles", n_shuffles)
    positive_int("reconstruction_samples", reconstruction_samples)
    positive_int("sample_seed", sample_seed, minimum=0)
    mean, var = feature_statistics(X)
    rows = torch.randperm(len(X), generator=torch.Generator().manual_seed(sample_seed))[:reconstruction_samples]
    X_rec = standardise(X[rows], mean, var)

    def measure(name: str, model, run_seed: int) -> dict:
        model = trained_map(model)
        m = map_metrics(model, X, grid, token_ids=token_ids, n_shuffles=n_shuffles, seed=run_seed)
        m.update(weight_measures(model, X_rec, grid))
        return m

    return measure
