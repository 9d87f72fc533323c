"""Notebook 07's experiment: is the Hebbian dictionary a good dictionary? The one evaluation every
method of the registry (dictionaries/registry.py) gets, as the measures `methods_over_seeds` takes:

    runs, first = methods_over_seeds(methods, seeds, dictionary_measure(truth, X_eval))
    runs, first = methods_over_seeds(methods, seeds, benchmark_measure(synthetic_model))
    runs, first = methods_over_seeds(methods, seeds, lm_dictionary_measure(X, grid, ...))
"""
from __future__ import annotations

import time

import torch

from ..checks import matrix, positive_int
from ..dictionaries.ground_truth import GroundTruth, sharkey_toy
from ..dictionaries.registry import Dictionary
from ..dictionaries.saelens import as_map_layer
from ..measure.maps import map_metrics, neuron_summary
from ..measure.recovery import dead_units, explained_variance, mcc, mmcs, recovered_share, topographic_rank_correlation
from ..rules.layer import SoftHebbLinear

__all__ = ["evaluate_dictionary", "dictionary_measure", "benchmark_measure", "lm_dictionary_measure", "toy_split",
           "goal_line"]


def evaluate_dictionary(dictionary: Dictionary, truth: GroundTruth | None, X, *, n_shuffles: int = 100,
                        seed: int = 0, batch_size: int = 8192) -> dict:
    """What a dictionary is worth, on X (n, d): mean L0 of its code, explained variance of its
    reconstruction at that L0, dead units; against known features (truth): MMCS, MCC (Hungarian),
    the share recovered at cosine >= 0.9; when both lay their units on a grid, the rank correlation
    of the true and the matched units' grid distances with its shuffled-grid null."""
    X = matrix("X", X, min_rows=2)
    codes, recon = [], []
    for i in range(0, X.shape[0], batch_size):  # codes of a large X in pieces
        c = dictionary.encode(X[i:i + batch_size]).float()
        codes.append(c.to_sparse() if c.shape[1] > 256 else c)
        recon.append(dictionary.decode(c).float())
    codes = torch.cat([c.to_dense() for c in codes])
    out = {"l0": float((codes != 0).sum(1).float().mean()), "explained_variance": explained_variance(X, torch.cat(recon)),
           "dead_fraction": dead_units(codes)}
    if truth is not None:
        absolute = dictionary.sign_symmetric
        match = mcc(dictionary.decoder, truth.features, absolute=absolute)
        out.update(mmcs=mmcs(dictionary.decoder, truth.features, absolute=absolute), mcc=match["mcc"],
                   recovered_share=recovered_share(dictionary.decoder, truth.features, 0.9, absolute=absolute))
        if truth.grid is not None and dictionary.grid is not None:
            topo = topographic_rank_correlation(truth.grid, dictionary.grid, match, n_shuffles=n_shuffles, seed=seed)
            out.update(topographic_rho=topo["rho"], topographic_null=topo["null_mean"], topographic_p=topo["p_value"])
    return out


def dictionary_measure(truth: GroundTruth | None, X=None, **options):
    """measure(name, dictionary, seed) for methods_over_seeds: evaluate_dictionary on X (default:
    the ground truth's samples)."""
    X = truth.X if X is None else X

    def measure(name: str, dictionary: Dictionary, seed: int) -> dict:
        start = time.perf_counter()
        out = evaluate_dictionary(dictionary, truth, X, seed=seed, **options)
        out["eval_seconds"] = round(time.perf_counter() - start, 2)
        return out

    return measure


def benchmark_measure(synthetic_model, n_samples: int = 20_000):
    """measure(name, dictionary, seed) on SAELens' synthetic benchmark: the dictionary as an SAELens SAE
    (an SAE as it is; a SoftHebb layer as export_saelens writes it, k from its Dictionary) scored by
    SAELens' own eval_sae_on_synthetic_data on n_samples fresh rows (dictionaries.synthetic)."""
    from ..dictionaries.synthetic import eval_on_synthetic, softhebb_as_sae

    positive_int("n_samples", n_samples)

    def measure(name: str, dictionary: Dictionary, seed: int) -> dict:
        model = dictionary.model
        sae = softhebb_as_sae(model, dictionary.info["k"]) if isinstance(model, SoftHebbLinear) else model
        return eval_on_synthetic(sae, synthetic_model, n_samples=n_samples, seed=seed)

    return measure


def lm_dictionary_measure(X, grid, token_ids, held_out, *, decoders: dict, summaries: dict, keep_seed: int,
                          top: int = 50, n_shuffles: int = 20):
    """measure(name, dictionary, seed) of notebook 07 on real activations X (tokens, d): the map metrics
    of the dictionary's units on grid (a SoftHebb method's layer, named "softhebb...", or an SAE as
    dictionaries.saelens.as_map_layer lays it), each neuron's `top` strongest tokens, and
    evaluate_dictionary's explained variance and L0 on the rows `held_out`. Stores each decoder in
    `decoders[name, seed]` and the summaries of seed `keep_seed` in `summaries[name]`."""

    def measure(name, dictionary, run_seed):
        layer = dictionary.model if name.startswith("softhebb") else as_map_layer(dictionary.model, grid)
        summary = neuron_summary(layer, X, top=top)
        m = map_metrics(layer, X, grid, token_ids=token_ids, n_shuffles=n_shuffles, seed=run_seed, summary=summary)
        decoders[name, run_seed] = dictionary.decoder
        if run_seed == keep_seed:
            summaries[name] = summary
        ev = evaluate_dictionary(dictionary, None, X[held_out])
        return {"explained_variance": ev["explained_variance"], "l0": ev["l0"], "dead_fraction": m["dead_fraction"],
                "token_purity": m["token_purity"], "topographic_error": m["topographic_error"]}

    return measure


def toy_split(n_train: int, n_eval: int, *, l0: float, correlated: bool, d: int, n_features: int, seed: int = 0):
    """(data, X_train, X_eval): Sharkey et al.'s toy (ground_truth.sharkey_toy) of n_train + n_eval
    samples with mean L0 `l0`, cut into its first n_train samples (training) and the n_eval after."""
    data = sharkey_toy(n_train + n_eval, d=d, n_features=n_features, seed=seed, correlated=correlated, target_l0=l0)
    return data, data.X[:n_train], data.X[n_train:]


def goal_line(verdict: dict) -> str:
    """A goal's verdict ({"goal", "met", "evidence"}, experiments.goals) as one Markdown list item."""
    return f"- **{'met' if verdict['met'] else 'missed'}**: {verdict['goal']}. {verdict['evidence']}."


def select_on_validation(candidates: dict, X_val, *, seed: int = 0, target_l0: float | None = None,
                         l0_tolerance: float = 0.25) -> tuple[str, dict]:
    """Each method at its best, chosen without the scored data: fit every candidate setting
    (label -> fit(seed) -> Dictionary) once, score it on held-out rows X_val (n, d) by explained
    variance, and return (the best label, {label: {"explained_variance", "l0"}}).

    target_l0: only candidates whose mean L0 on X_val lies within l0_tolerance (a share: 0.25 =
    +-25%) of it compete, so that methods are compared at matched sparsity; a ValueError names the
    L0s reached when none does. Ties keep the first label (the order of `candidates`)."""
    X_val = matrix("X_val", X_val, min_rows=2)
    if not candidates:
        raise ValueError("candidates: expected at least one setting (label -> fit)")
    scores = {}
    for label, fit in candidates.items():
        dictionary = fit(seed)
        with torch.no_grad():
            codes = dictionary.encode(X_val)
            recon = dictionary.decode(codes)
        scores[label] = {"explained_variance": explained_variance(X_val, recon),
                         "l0": float((codes != 0).sum(dim=1, dtype=torch.float64).mean())}
    eligible = [label for label, s in scores.items()
                if target_l0 is None or abs(s["l0"] - target_l0) <= l0_tolerance * target_l0]
    if not eligible:
        reached = ", ".join(f"{label}: {s['l0']:.2f}" for label, s in scores.items())
        raise ValueError(f"target_l0={target_l0}: no candidate reaches an L0 within {l0_tolerance:.0%} of it on "
                         f"X_val ({reached}); widen the sparsity sweep")
    best = max(eligible, key=lambda label: scores[label]["explained_variance"])  # max keeps the first of ties
    return best, scores
