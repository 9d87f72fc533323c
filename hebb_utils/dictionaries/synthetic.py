"""SAELens' own synthetic benchmark (`sae_lens.synthetic`), a benchmark no one here wrote: its data as
a GroundTruth, and its evaluation of any SAELens SAE, a SoftHebb layer exported as one included.

    gt, model = saelens_synthetic(50_000, num_features=512, hidden_dim=128, mean_l0=10, seed=0)
    gt.X (50000, 128)   gt.features (512, 128)   gt.codes (50000, 512)   gt.mean_l0 ~ 10
    sae, info = train_sae(gt.X, 512, k=10)                        # hebb_utils.dictionaries.saelens
    eval_on_synthetic(sae, model)                                 # {"mcc": ..., "f1_score": ..., ...}
    eval_on_synthetic(softhebb_as_sae(layer, k=1), model)         # the same numbers for a SoftHebb map

Why: ground_truth.py's toys are ours, and a method can look good on the data its authors chose.
SAELens' SyntheticModel is built and scored by SAELens' code (its Zipfian firing, its dictionary with a
bias, its MCC, F1 and dead-latent counts), so a SoftHebb map and an SAE are compared on a benchmark
neither was tuned to. `SyntheticModel.from_pretrained` needs the Hugging Face Hub; the model is built
here from a local SyntheticModelConfig instead, which is all a pretrained one is made from.

SAELens' data (synthetic_model.py, activation_generator.py, feature_dictionary.py), feature i 0-based:
  features: num_features rows drawn from N(0, I_hidden_dim) with the seed, scaled to unit norm
    (optionally "orthogonalised" by gradient descent: config orthogonalization=OrthogonalizationConfig());
  bias: a random direction of norm `bias` (SAELens' default 1.0; bias=False: none);
  feature i fires with probability p_i (Zipfian by default, independently unless correlation= is set);
    a firing feature has magnitude relu(mean + std * N(0, 1)), by default exactly 1 (std 0);
  X = codes @ features + bias: FeatureDictionary.forward, so X is NOT codes @ features alone as in
    ground_truth.py; the bias is stored in config["bias"] (hidden_dim floats).
SAELens samples with torch's GLOBAL generator; every draw here runs inside torch.random.fork_rng with
its own seed, so the caller's random state is left as it was and one seed gives identical tensors.

SAELens is imported inside the functions (importing it takes seconds).
"""
from __future__ import annotations

import dataclasses
import tempfile

import torch

from ..checks import finite_float, positive_int
from .ground_truth import GroundTruth
from ..measure.recovery import mcc as signed_mcc
from .saelens import export_saelens, seeded_global_rng

__all__ = ["saelens_synthetic", "eval_on_synthetic", "softhebb_as_sae", "EVAL_KEYS"]

# the seeds of one SyntheticModel. torch's CPU generator keeps only the low 32 bits of a seed (2**32 + s
# draws what s draws), so every stream sits below 2**32, apart from the small seeds the layers and SAEs
# are trained with. SAELens draws the features as torch.randn(num_features, hidden_dim) from its seed:
# exactly what SoftHebbLinear(hidden_dim, num_features, seed=s) draws for its initial weights, so with
# one seed for both the untrained layer IS the true dictionary (measured: MCC 1.000 at the same seed,
# 0.253 at another). SAELens derives model_seed .. model_seed + 4 for its own parts (firing
# probabilities, std and mean magnitudes, hierarchy, correlation); the training sample takes the next
# one, the evaluation a stream of its own (held out).
_MODEL_OFFSET = 2**30
_SAMPLE_OFFSET = _MODEL_OFFSET + 5
_EVAL_OFFSET = 2**31
_CHUNK = 16_384  # rows per SAELens draw: bounds the peak memory; fixed, so the stream depends on n alone

# what eval_on_synthetic returns (all floats), in this order
EVAL_KEYS = ("true_l0", "sae_l0", "dead_latents", "dead_fraction", "shrinkage", "explained_variance", "mcc",
             "mcc_signed", "uniqueness", "precision", "recall", "f1_score", "accuracy")


# ----------------------------------------------------------------------------------------------
# the data


def _scaled_firing(cfg, num_features: int, mean_l0: float, seed: int):
    """cfg (a built-in FiringProbabilityConfig) with its probabilities times a, so that sum_i p_i = mean_l0.

    Why a scale: SAELens' four built-in shapes are linear in their probability fields (zipfian and
    linear: min + (max - min) t_i; random: min + (max - min) u_i with u from the seed; constant: p),
    so multiplying those fields by a multiplies every p_i by a and keeps the shape (the Zipf exponent,
    the max / min ratio). a = mean_l0 / sum_i p_i, computed from the probabilities the model draws.
    """
    from sae_lens.synthetic import (ConstantFiringProbabilityConfig, LinearFiringProbabilityConfig,
                                    RandomFiringProbabilityConfig, ZipfianFiringProbabilityConfig)

    fields = {ZipfianFiringProbabilityConfig: ("max_prob", "min_prob"), LinearFiringProbabilityConfig:
              ("max_prob", "min_prob"), RandomFiringProbabilityConfig: ("max_prob", "min_prob"),
              ConstantFiringProbabilityConfig: ("probability",)}.get(type(cfg))
    if fields is None:
        raise ValueError(f"firing_probability: mean_l0 can scale SAELens' zipfian, linear, random and constant "
                         f"configs, not {type(cfg).__name__}; pass mean_l0=None to use its probabilities as they are")
    a = mean_l0 / float(cfg.generate(num_features, seed=seed).double().sum())
    scaled = dataclasses.replace(cfg, **{name: getattr(cfg, name) * a for name in fields})
    top = max(getattr(scaled, name) for name in fields)
    if top > 1:
        raise ValueError(f"mean_l0={mean_l0:g}: the most frequent feature would fire with probability {top:.3g} > 1 "
                         f"with this shape ({type(cfg).__name__}); lower mean_l0, raise num_features, or flatten the "
                         "shape (e.g. ZipfianFiringProbabilityConfig(exponent=0.5))")
    return scaled


def saelens_synthetic(n_samples: int, num_features: int = 512, hidden_dim: int = 128, mean_l0: float | None = 10.0,
                      seed: int = 0, **config):
    """SAELens' synthetic data: (GroundTruth, SyntheticModel), the model being what eval_on_synthetic needs.

    The model is sae_lens.synthetic.SyntheticModel(SyntheticModelConfig(num_features, hidden_dim,
    seed=seed, **config)) on the CPU, every setting SAELens' default unless `config` names it:
    firing_probability (default ZipfianFiringProbabilityConfig(exponent=1, max_prob=0.3, min_prob=0.01)),
    bias (default 1.0: X has a bias of norm 1), std_firing_magnitudes (0.0) / mean_firing_magnitudes
    (1.0), correlation, hierarchy, orthogonalization (None each); the nested configs are SAELens'
    dataclasses. `mean_l0` scales the firing probabilities (their shape kept, see _scaled_firing) so
    that the expected number of active features per sample, sum_i p_i, is mean_l0; mean_l0=None keeps
    firing_probability as given. With a hierarchy a child fires only when its parent does, so the
    realised mean L0 is lower than sum_i p_i (config["expected_l0"]).

    Then n_samples rows are drawn with SAELens' sample_with_features (in chunks of 16,384 rows) under
    torch's global generator seeded with seed + 2**30 + 5 inside fork_rng (the model itself is built
    from seed + 2**30: see _MODEL_OFFSET). The GroundTruth:
      X (n_samples, hidden_dim) float32 = codes @ features + bias, exactly as SAELens computes it;
      features (num_features, hidden_dim): model.feature_dict.feature_vectors, unit-norm rows already
        (SAELens normalises them; not re-normalised here, so that X = codes @ features + bias holds);
      codes (n_samples, num_features): the true feature activations (>= 0; 1 where firing, by default);
      grid None; rates (num_features,) float64: the firing probabilities p_i;
      correlation: the Gaussian copula's correlation matrix factor @ factor.T + diag(diag) with
        correlation=LowRankCorrelationConfig(...), else None;
      config: generator, n_samples, seed, mean_l0, expected_l0 = sum_i p_i, bias (the vector, a list),
        and model = SyntheticModelConfig.to_dict() (SyntheticModelConfig.from_dict of it rebuilds the
        same model).
    """
    from sae_lens.synthetic import SyntheticModel, SyntheticModelConfig, ZipfianFiringProbabilityConfig

    n_samples = positive_int("n_samples", n_samples)
    num_features = positive_int("num_features", num_features)
    hidden_dim = positive_int("hidden_dim", hidden_dim)
    seed = positive_int("seed", seed, minimum=0)
    if seed >= _MODEL_OFFSET:  # the streams must stay below 2**32, where torch's generator wraps around
        raise ValueError(f"seed={seed}: expected a seed below 2**30 (the benchmark's streams sit at seed + 2**30 "
                         "and seed + 2**31)")
    if mean_l0 is not None:
        mean_l0 = finite_float("mean_l0", mean_l0, minimum=0, maximum=num_features, strict_minimum=True,
                               hint="the expected number of active features per sample; or None")
    allowed = {f.name for f in dataclasses.fields(SyntheticModelConfig)} - {"num_features", "hidden_dim", "seed",
                                                                            "dtype"}
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise ValueError(f"{unknown}: not SyntheticModelConfig settings this function passes on; expected some of "
                         f"{sorted(allowed)} (num_features, hidden_dim and seed are arguments; the data are float32)")
    firing = config.pop("firing_probability", None) or ZipfianFiringProbabilityConfig()
    if mean_l0 is not None:
        firing = _scaled_firing(firing, num_features, mean_l0, seed + _MODEL_OFFSET)
    cfg = SyntheticModelConfig(num_features=num_features, hidden_dim=hidden_dim, firing_probability=firing,
                               seed=seed + _MODEL_OFFSET, **config)
    model = SyntheticModel(cfg, device="cpu")

    with seeded_global_rng(seed + _SAMPLE_OFFSET, "cpu"):
        parts = [model.sample_with_features(min(_CHUNK, n_samples - start)) for start in range(0, n_samples, _CHUNK)]
    X = torch.cat([x for x, _ in parts])  # (n_samples, hidden_dim)
    codes = torch.cat([c for _, c in parts])  # (n_samples, num_features)
    del parts
    rates = model.activation_generator.firing_probabilities.double().cpu()  # (num_features,)
    correlation = None
    if model.correlation_matrix is not None:
        factor, diag = model.correlation_matrix
        correlation = (factor @ factor.T + torch.diag(diag)).float().cpu()
    bias = model.feature_dict.bias.detach()
    config_out = {"generator": "saelens_synthetic", "n_samples": n_samples, "seed": seed, "mean_l0": mean_l0,
                  "expected_l0": float(rates.sum()), "bias": bias.tolist(), "model": cfg.to_dict()}
    features = model.feature_dict.feature_vectors.detach().clone()
    return GroundTruth(X, features, codes, None, config_out, rates, correlation), model


# ----------------------------------------------------------------------------------------------
# the evaluation


def softhebb_as_sae(layer, k: int = 1, folder=None):
    """A SoftHebb layer as the SAELens TopK SAE that export_saelens writes, loaded back with
    sae_lens.SAE.load_from_disk: so what is scored is the exported artefact itself, not a copy of it.
    folder=None: a temporary folder, deleted once the SAE is loaded (the weights are in memory)."""
    from sae_lens import SAE

    if folder is not None:
        return SAE.load_from_disk(export_saelens(layer, folder, k))
    with tempfile.TemporaryDirectory() as tmp:
        return SAE.load_from_disk(export_saelens(layer, f"{tmp}/sae", k))


def eval_on_synthetic(sae, model, n_samples: int = 100_000, seed: int = 0, batch_size: int = 8192) -> dict:
    """SAELens' eval_sae_on_synthetic_data of `sae` on n_samples FRESH rows of `model` (saelens_synthetic's
    second value): a flat dict of floats, keys EVAL_KEYS.

    The rows are drawn under torch's global generator seeded with 2**31 + seed inside fork_rng: the
    same (sae, model, n_samples, seed, batch_size) give the same numbers, and the rows are not the
    training rows of saelens_synthetic (seed + 2**30 + 5). No activation scaler: the SAE reads raw X (train_sae
    folds its normalisation into the weights; a SoftHebb SAE has BatchNorm folded into W_enc, b_dec).

    SAELens' numbers (sae_lens/synthetic/evals.py):
      true_l0      mean number of active true features per row
      sae_l0       mean number of nonzero latents per row
      dead_latents number of latents zero on every row; dead_fraction: that over d_sae
      shrinkage    mean over rows of |x_hat| / |x| (1: no shrinkage; rows with |x| < 1e-6 skipped)
      explained_variance  1 - sum |x - x_hat|^2 / sum |x - mean x|^2 (can be < 0)
      mcc          mean |cosine| of decoder rows W_dec and true features after the best one-to-one
                   (Hungarian) matching of min(d_sae, num_features) pairs, in [0, 1]; from the weights alone
      uniqueness   distinct true features among the latents' best |cosine| matches, over d_sae, in (0, 1]
      precision, recall, f1_score, accuracy: each latent as a detector of its best |cosine| true
                   feature (fires iff nonzero vs the feature's code > 0), averaged over ALL latents (a
                   dead latent counts 0 precision, recall and F1); accuracy counts the true negatives, so
                   it is near 1 for any sparse code: read F1
    Added here:
      mcc_signed   the same matching with SIGNED cosines (recovery.mcc), in [-1, 1]: the codes are >= 0,
                   so a decoder row at -f does not code f though SAELens' |cosine| counts it
    """
    from sae_lens import SAE
    from sae_lens.synthetic import SyntheticModel, eval_sae_on_synthetic_data

    if not isinstance(sae, SAE):
        raise ValueError(f"sae: expected an SAELens SAE (train_sae's, softhebb_as_sae's, SAE.load_from_disk's), "
                         f"got {type(sae).__name__}")
    if not isinstance(model, SyntheticModel):
        raise ValueError(f"model: expected the SyntheticModel that saelens_synthetic returns second, "
                         f"got {type(model).__name__}")
    if sae.cfg.d_in != model.cfg.hidden_dim:
        raise ValueError(f"sae reads d_in={sae.cfg.d_in} features but the model makes hidden_dim="
                         f"{model.cfg.hidden_dim}: train or export the SAE on this model's data")
    if torch.device(sae.W_dec.device) != torch.device(model.device):
        raise ValueError(f"sae is on {sae.W_dec.device} and model on {model.device}: move one, e.g. sae.to('cpu') "
                         "or model.to(device)")
    n_samples = positive_int("n_samples", n_samples)
    seed = positive_int("seed", seed, minimum=0)
    batch_size = positive_int("batch_size", batch_size)

    with seeded_global_rng(_EVAL_OFFSET + seed, model.device):
        result = eval_sae_on_synthetic_data(sae, model.feature_dict, model.activation_generator,
                                            num_samples=n_samples, batch_size=batch_size)
    c = result.classification
    out = {"true_l0": result.true_l0, "sae_l0": result.sae_l0, "dead_latents": result.dead_latents,
           "dead_fraction": result.dead_latents / sae.cfg.d_sae, "shrinkage": result.shrinkage,
           "explained_variance": result.explained_variance, "mcc": result.mcc,
           "mcc_signed": signed_mcc(sae.W_dec.detach(), model.feature_dict.feature_vectors.detach())["mcc"],
           "uniqueness": result.uniqueness, "precision": c.precision, "recall": c.recall,
           "f1_score": c.f1_score, "accuracy": c.accuracy}
    return {key: float(out[key]) for key in EVAL_KEYS}
