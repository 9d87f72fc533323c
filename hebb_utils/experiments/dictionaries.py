"""Notebook 07's experiment: is the Hebbian dictionary a good dictionary? The one evaluation every
method of the registry (dictionaries/registry.py) gets, as the measures `methods_over_seeds` takes:

    runs, first = methods_over_seeds(methods, seeds, dictionary_measure(truth, X_eval))
    runs, first = methods_over_seeds(methods, seeds, benchmark_measure(synthetic_model))
    runs, first = methods_over_seeds(methods, seeds, lm_dictionary_measure(X, grid, ...))
"""
from __future__ import annotations

import tempfile
import time

import torch

from ..checks import finite_float, matrix, positive_int
from ..dictionaries.ground_truth import GroundTruth, sharkey_toy
from ..dictionaries.registry import Dictionary
from ..dictionaries.saelens import as_map_layer, export_saelens
from ..measure.maps import map_metrics, neuron_summary
from ..measure.recovery import dead_units, explained_variance, mcc, mmcs, recovered_share, topographic_rank_correlation
from ..rules.coactivation import coactivation, coactivation_layout, pooled_coactivation
from ..rules.layer import SoftHebbLinear
from ..rules.pursuit import PursuitLinear

__all__ = ["evaluate_dictionary", "dictionary_measure", "benchmark_measure", "as_saelens_sae", "recovery_on_split", "benchmark_on_split",
           "toy_splits", "benchmark_splits", "sae_candidates", "pursuit_candidates", "softhebb_candidates",
           "k_sweep_makers", "K_ARCHITECTURES", "lm_dictionary_measure", "toy_split",
           "goal_line", "layout_diagnosis"]


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


def layout_diagnosis(dictionary: Dictionary, truth: GroundTruth, X, *, widths=(4.0, 2.0, 1.0, 0.5),
                     restarts: int = 20, seed: int = 0) -> dict:
    """What limits a co-activation layout (rules/coactivation.py) on a topographic ground truth: the search,
    the objective, or the learned units' codes? The dictionary's units sit in cell order (unit i at cell i,
    as pursuit_fit_dictionary(layout=True) leaves them); C is their co-activation on X, J the pooled
    co-activation at the last width.

      objective_ratio: J of the learned layout / J of the same units at their matched true features'
        cells (mcc's matching). >= 1: the search found a layout the objective prefers to the true one,
        so more search cannot move the map toward the truth.
      true_codes_rho: the same search (widths, restarts, seed) on the true codes' co-activation, scored
        like a map (identity matching): near 1 says the objective itself points at the true layout.
    So objective_ratio >= 1 with true_codes_rho near 1 leaves the learned codes as the limit."""
    if truth.grid is None or dictionary.grid is None:
        raise ValueError("layout_diagnosis: needs a topographic ground truth (truth.grid) and a dictionary on a grid "
                         "(pursuit_fit_dictionary(..., grid=..., layout=True))")
    if tuple(truth.grid) != tuple(dictionary.grid):
        raise ValueError(f"dictionary.grid {tuple(dictionary.grid)} differs from truth.grid {tuple(truth.grid)}: "
                         "lay the units out on the true features' grid")
    X = matrix("X", X, min_rows=2)
    # first, as it checks widths and restarts: the true codes of all the truth's samples (never scored, only laid out)
    true_layout = coactivation_layout(coactivation(truth.codes), truth.grid, widths=widths, restarts=restarts, seed=seed)
    n = truth.features.shape[0]   # = the dictionary's units: one grid for both
    rho = topographic_rank_correlation(truth.grid, truth.grid, (true_layout, torch.arange(n)), n_shuffles=10,
                                       seed=seed)["rho"]
    C = coactivation(dictionary.encode(X))
    match = mcc(dictionary.decoder, truth.features)   # one-to-one and complete on one grid
    true_cells = torch.empty(n, dtype=torch.long)
    true_cells[torch.as_tensor(match["rows"]).long()] = torch.as_tensor(match["cols"]).long()
    width = list(widths)[-1]
    learned_j = pooled_coactivation(C, dictionary.grid, torch.arange(n), width)
    true_j = pooled_coactivation(C, dictionary.grid, true_cells, width)
    return {"objective_ratio": learned_j / true_j, "true_codes_rho": rho, "mcc": match["mcc"]}


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
        return eval_on_synthetic(as_saelens_sae(dictionary), synthetic_model, n_samples=n_samples, seed=seed)

    return measure


def as_saelens_sae(dictionary: Dictionary):
    """The dictionary as the SAELens SAE that scores it: an SAE as it is; a SoftHebb layer as the TopK SAE
    export_saelens writes (k from the Dictionary); a pursuit layer as SAELens' MatchingPursuitSAE (its
    export, loaded back: what is scored is the exported artefact itself)."""
    from ..dictionaries.synthetic import softhebb_as_sae

    model = dictionary.model
    if isinstance(model, SoftHebbLinear):
        return softhebb_as_sae(model, dictionary.info["k"])
    if isinstance(model, PursuitLinear):
        from sae_lens import SAE

        with tempfile.TemporaryDirectory() as tmp:
            return SAE.load_from_disk(export_saelens(model, f"{tmp}/sae"))
    return model


def recovery_on_split(name: str, dictionary: Dictionary, seed: int, split) -> dict:
    """measure(method, dictionary, seed, split) of experiments.ladder on a toy: evaluate_dictionary against
    split.truth on the evaluation rows."""
    return evaluate_dictionary(dictionary, split.truth, split.evaluation, seed=seed)


def benchmark_on_split(n_samples: int = 20_000):
    """measure(method, dictionary, seed, split) of experiments.ladder on SAELens' benchmark: SAELens'
    eval_sae_on_synthetic_data on n_samples fresh rows of the seed's SyntheticModel (split.context)."""
    from ..dictionaries.synthetic import eval_on_synthetic

    positive_int("n_samples", n_samples)

    def measure(name: str, dictionary: Dictionary, seed: int, split) -> dict:
        return eval_on_synthetic(as_saelens_sae(dictionary), split.context, n_samples=n_samples, seed=seed)

    return measure


def toy_splits(n_train: int, n_val: int, n_eval: int, *, l0: float, correlated: bool, d: int, n_features: int):
    """split_of(seed) -> experiments.ladder.Split of Sharkey et al.'s toy drawn with that seed (its
    features and samples): the first n_train rows for training, then n_val for validation, n_eval for
    scoring."""
    from .ladder import Split

    def split_of(seed: int) -> Split:
        data = sharkey_toy(n_train + n_val + n_eval, d=d, n_features=n_features, seed=seed, correlated=correlated,
                           target_l0=l0)
        X = data.X
        return Split(train=X[:n_train], validation=X[n_train:n_train + n_val], evaluation=X[n_train + n_val:],
                     truth=data)

    return split_of


def benchmark_splits(n_train: int, n_val: int, *, noise_std: float = 0.0, **synthetic):
    """split_of(seed) -> Split of SAELens' synthetic benchmark built with that seed
    (dictionaries.synthetic.saelens_synthetic(n_train + n_val, seed=seed, **synthetic)): training and
    validation rows, plus N(0, noise_std^2) noise on every coordinate when noise_std > 0 (drawn from
    torch.Generator(seed)); the model in split.context, whose scoring draws its own fresh rows
    (benchmark_on_split), so split.evaluation is the validation rows, unused."""
    from ..dictionaries.synthetic import saelens_synthetic
    from .ladder import Split

    noise_std = finite_float("noise_std", noise_std, minimum=0)

    def split_of(seed: int) -> Split:
        data, model = saelens_synthetic(n_train + n_val, seed=seed, **synthetic)
        X = data.X
        if noise_std > 0:
            X = X + noise_std * torch.randn(X.shape, generator=torch.Generator().manual_seed(seed), dtype=X.dtype)
        return Split(train=X[:n_train], validation=X[n_train:], evaluation=X[n_train:], truth=data, context=model)

    return split_of


def lm_dictionary_measure(X, grid, token_ids, held_out, *, decoders: dict, summaries: dict, keep_seed: int,
                          top: int = 50, n_shuffles: int = 20):
    """measure(name, dictionary, seed) of notebook 07 on real activations X (tokens, d): the map metrics
    of the dictionary's units on grid (a SoftHebb or pursuit layer, named "softhebb..." / "pursuit...", or an SAE as
    dictionaries.saelens.as_map_layer lays it), each neuron's `top` strongest tokens, and
    evaluate_dictionary's explained variance and L0 on the rows `held_out`. Stores each decoder in
    `decoders[name, seed]` and the summaries of seed `keep_seed` in `summaries[name]`."""

    def measure(name, dictionary, run_seed):
        # a SoftHebb or Hebbian pursuit layer is read as it is; an SAELens SAE through as_map_layer
        layer = dictionary.model if name.startswith(("softhebb", "pursuit")) else as_map_layer(dictionary.model, grid)
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


K_ARCHITECTURES = ("sae topk", "sae batchtopk", "sae matching pursuit")  # sparse by k: L0 matched by construction


def sae_candidates(n_latents: int, k: int, *, lrs=(1e-2, 3e-2), l1_coefficients=(0.5, 1.0, 2.0),
                   l0_coefficients=(1.0, 3.0), batch_size: int = 256, methods=None, **settings) -> dict:
    """Notebook 07's sweep of SAELens' five architectures, for experiments.ladder: method ->
    {label: make(X) -> fit(seed)}. TopK, BatchTopK and MatchingPursuit are sparse by k (the data's L0:
    matched by construction) and swept over lrs; the L1 (standard) SAE over lrs x l1_coefficients and
    JumpReLU over lrs x l0_coefficients, whose L0 the ladder matches to the data's on validation rows.
    methods: the method names to keep (e.g. K_ARCHITECTURES), default all five. settings: passed to every
    train_sae (e.g. b_dec_init="mean", dead_feature_window=20 on a language model's activations)."""
    from ..dictionaries.registry import sae_fit

    def make(architecture, **knobs):
        return lambda X: sae_fit(X, n_latents, architecture=architecture, batch_size=batch_size, **knobs, **settings)

    out = {f"sae {name}": {f"lr {lr:g}": make(architecture, k=k, lr=lr) for lr in lrs}
           for name, architecture in (("topk", "topk"), ("batchtopk", "batchtopk"), ("matching pursuit", "matching_pursuit"))}
    out["sae l1"] = {f"lr {lr:g}, l1 {c:g}": make("standard", l1_coefficient=c, lr=lr) for lr in lrs for c in l1_coefficients}
    out["sae jumprelu"] = {f"lr {lr:g}, l0 {c:g}": make("jumprelu", l0_coefficient=c, lr=lr) for lr in lrs
                           for c in l0_coefficients}
    return out if methods is None else {m: out[m] for m in methods}


def softhebb_candidates(grid, *, lrs, t_invert: float, name: str = "softhebb", k: int = 1) -> dict:
    """{name: {label: make(X) -> fit(seed)}}: SoftHebb without lateral support on grid, read with k winners,
    swept over lrs (its step: a step too small for the number of steps leaves the start unforgotten)."""
    from ..dictionaries.registry import softhebb_fit_dictionary

    return {name: {f"lr {lr:g}": (lambda X, lr=lr: softhebb_fit_dictionary(X, grid, lateral=None, t_invert=t_invert,
                                                                           lr=lr, k=k)) for lr in lrs}}


def k_sweep_makers(n_units: int, ks, chosen: dict, *, pursuit_lrs, sae_lrs, batch_size: int = 256,
                   offset: bool = False, sae_settings: dict | None = None) -> dict:
    """method -> {k: make(X) -> fit(seed)} for Hebbian pursuit and the k-sparse SAEs, each at the setting
    `chosen` names for it ({method: label}, labels of pursuit_candidates / sae_candidates, e.g. a ladder's
    choice made at one k), for every k of ks: the points of an EV-against-L0 frontier. sae_settings: the
    SAEs' other train_sae settings (sae_candidates' **settings)."""
    out = {}
    for k in ks:
        options = {**pursuit_candidates(n_units, k, lrs=pursuit_lrs, offset=offset),
                   **sae_candidates(n_units, k, lrs=sae_lrs, batch_size=batch_size, methods=K_ARCHITECTURES,
                                    **(sae_settings or {}))}
        for method, label in chosen.items():
            if method not in options or label not in options[method]:
                raise ValueError(f"chosen: {method!r} {label!r} is not one of the sweep's settings; give a label of "
                                 "pursuit_candidates or sae_candidates (k-sparse SAEs) with these learning rates")
            out.setdefault(method, {})[k] = options[method][label]
    return out


def pursuit_candidates(n_units: int, k: int, *, lrs=(0.5, 1.0, 2.0), offset: bool = False, grid=None) -> dict:
    """{"pursuit": {label: make(X) -> fit(seed)}}: Hebbian matching pursuit with k units per input (the
    data's L0), swept over lrs."""
    from ..dictionaries.registry import pursuit_fit_dictionary

    return {"pursuit": {f"lr {lr:g}": (lambda X, lr=lr: pursuit_fit_dictionary(X, n_units, k=k, lr=lr, offset=offset,
                                                                              grid=grid)) for lr in lrs}}
