"""Notebooks 04 and 05: the published SoftHebb layer and its ablations, trained over seeds and
measured as they come, and the generic loop that trains and measures any map over seeds.

    runs, layers, snapshots = ablations_over_seeds(X, grid, t_invert, seeds, cifar_ablation_measure(...), lr=...)
    runs, first_models = methods_over_seeds({"name": fit, ...}, seeds, measure)

The reading of a trained map (neuron_summary, map_metrics, ...) is measure/maps.py's.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..checks import Grid, matrix
from ..measure.maps import neuron_summary, softhebb_metrics, triangle_activation
from ..measure.metrics import linear_probe
from ..measure.seeds import summarise_seeds
from ..rules.checkpoint import save_checkpoint
from ..rules.lateral import Lateral
from ..rules.layer import SoftHebbLinear
from ..rules.training import train_softhebb
from ..settings import CIFAR10

__all__ = ["calibrate_normalisation", "train_ablations", "ablations_over_seeds", "methods_over_seeds", "as_layer",
           "cifar_ablation_measure", "lm_ablation_measure"]

# what save_checkpoint writes itself (and "variant", which train_ablations adds): not for checkpoint_meta
_CHECKPOINT_KEYS = {"format", "state_dict", "config", "published", "variant"}


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


def train_ablations(X, grid, t_invert: float, *, lr: float, radius: float = CIFAR10.radius, gain: float = CIFAR10.gain,
                    epochs: int = CIFAR10.epochs, batch_size: int = CIFAR10.batch_size, seed: int = CIFAR10.seed,
                    device="cpu",
                    snapshot_every: int | None = None, checkpoint_dir=None, checkpoint_prefix: str = "",
                    checkpoint_meta: dict | None = None, progress: bool = True) -> tuple[dict, torch.Tensor, dict]:
    """Train the SoftHebb layer with 2D lateral support and its ablations on X (samples, D).

    Every variant starts from the same weights (`seed`) and sees the same shuffled batches:
      "lateral support"      the paper's layer (per-sample winner);
      "no lateral support";
      "legacy batch winner"  the published batch-wide winner flip, with lateral support;
      "random weights"       the untrained initial weights, read with the data's exact normalisation.
    Returns (layers by name, the "lateral support" run's snapshots (every `snapshot_every` steps),
    training seconds by name). With `checkpoint_dir`, each trained layer is saved there in the one
    checkpoint format (rules.checkpoint.save_checkpoint: its config with lr, epochs, batch_size and
    seed; "variant": name) as `{checkpoint_prefix}{name with underscores}.pt`, with the entries of
    `checkpoint_meta` beside them (not the format's own keys).
    """
    import time

    clash = sorted(set(checkpoint_meta or {}) & _CHECKPOINT_KEYS)
    if clash:
        raise ValueError(f"checkpoint_meta: {clash} are the checkpoint format's own entries (rules.checkpoint): "
                         "name them otherwise (e.g. 'notebook_config')")
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
            save_checkpoint(Path(checkpoint_dir) / f"{checkpoint_prefix}{name.replace(' ', '_')}.pt", layers[name],
                            training={"lr": lr, "epochs": epochs, "batch_size": batch_size, "seed": seed},
                            variant=name, **(checkpoint_meta or {}))
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


def as_layer(layer) -> SoftHebbLinear:
    """`layer` itself when it is a SoftHebbLinear, else a ValueError naming what it is."""
    if not isinstance(layer, SoftHebbLinear):
        raise ValueError(f"layer: expected a SoftHebbLinear, got {type(layer).__name__}")
    return layer


def cifar_ablation_measure(X_train, y_train, X_test, y_test, grid, *, n_labels: int, n_shuffles: int,
                           probe_seeds, probe_runs, probe_max_iter: int, probe_train_samples: int | None):
    """measure(name, layer, seed) of notebook 04, for `ablations_over_seeds`: softhebb_metrics on the
    test images X_test (class purity from y_test over n_labels classes); for a seed in probe_seeds
    and a variant in probe_runs also the linear probes on u and on relu(u - mean u) (trained on
    X_train, scored on X_test, `probe_max_iter` L-BFGS iterations, on a seeded subsample of
    `probe_train_samples` training images)."""
    probe_seeds, probe_runs = set(probe_seeds), list(probe_runs)

    def measure(name, layer, run_seed):
        m = softhebb_metrics(layer, X_test, grid, labels=y_test, n_labels=n_labels, n_shuffles=n_shuffles,
                             seed=run_seed)
        if run_seed in probe_seeds and name in probe_runs:
            u_train, u_test = layer.responses(X_train), layer.responses(X_test)
            probe = linear_probe(u_train, y_train, u_test, y_test, max_iter=probe_max_iter, seed=run_seed,
                                 train_samples=probe_train_samples)
            triangle = linear_probe(triangle_activation(u_train), y_train, triangle_activation(u_test), y_test,
                                    max_iter=probe_max_iter, seed=run_seed, train_samples=probe_train_samples)
            m.update(probe_test_acc=probe["test_acc"], probe_train_acc=probe["train_acc"],
                     probe_converged=probe["converged"], probe_triangle_test_acc=triangle["test_acc"],
                     probe_triangle_converged=triangle["converged"])
        return m

    return measure


def lm_ablation_measure(X, grid, token_ids, *, top: int, purity_top: int, n_shuffles: int, summaries: dict,
                        keep_seed: int):
    """measure(name, layer, seed) of notebook 05, for `ablations_over_seeds`: neuron_summary of X (each
    neuron's `top` strongest tokens), then softhebb_metrics with the token purity of its top
    `purity_top`. The summaries of seed `keep_seed` are stored in `summaries` by variant (for the map)."""

    def measure(name, layer, run_seed):
        summary = neuron_summary(layer, X, top=top)
        if run_seed == keep_seed:
            summaries[name] = summary
        return softhebb_metrics(layer, X, grid, token_ids=token_ids, purity_top=purity_top,
                                n_shuffles=n_shuffles, seed=run_seed, summary=summary)

    return measure
