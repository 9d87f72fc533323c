"""SAELens (PyPI `sae-lens`) beside the Hebbian dictionary: train its sparse autoencoders on the same
activations, export a SoftHebb layer as an SAELens SAE, and draw any SAELens SAE on the map of words.

    train_sae(X, d_sae, architecture="topk", k=1)   an SAELens TopK / standard (L1) SAE trained by
                                                    SAELens' own SAETrainer on an in-memory X, no wandb
    export_saelens(layer, folder, k=1)              a SoftHebbLinear as a folder SAE.load_from_disk reads
    encode(layer, X, k), decode(layer, codes)       the same SAE in plain torch, from the layer itself
    as_map_layer(sae, grid)                         any SAELens SAE as the layer write_token_map draws
    load_saelens(folder)                            SAE.load_from_disk, the folder's cfg and weights checked first

Why: SAEs are the usual way to turn activations into a dictionary of features; an SAE written in
SAELens' format opens in its tools (and Neuronpedia's), and a SAELens SAE drawn with our map tools is
read with the same metrics as the SoftHebb map. SAELens is imported inside the functions that use it
(importing it takes seconds and pulls in transformer-lens and wandb); encode and decode need torch alone.
"""
from __future__ import annotations

import json
import math
import os
import time
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

import torch

from ..checks import Grid, device_of, finite_float, matrix, positive_int
from ..io import atomic_replace_dir, atomic_write_json, bars_off, check_writable
from ..rules.lateral import Lateral
from ..rules.layer import SoftHebbLinear
from ..rules.pursuit import PursuitLinear

__all__ = ["train_sae", "export_saelens", "saelens_state", "encode", "decode", "as_map_layer", "SAEMapLayer",
           "SAE_FILES", "ARCHITECTURES", "NORMALIZATIONS", "load_saelens"]

# the two files of an SAELens SAE folder (sae_lens.constants SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME)
SAE_FILES = ("cfg.json", "sae_weights.safetensors")
# The SAELens architectures train_sae trains, by name (SAELens' own names): its training SAE class, its
# config class, and the one sparsity setting it reads (every other one is refused).
ARCHITECTURES = {
    "standard": ("StandardTrainingSAE", "StandardTrainingSAEConfig", "l1_coefficient"),  # ReLU + L1 penalty
    "topk": ("TopKTrainingSAE", "TopKTrainingSAEConfig", "k"),  # the k largest per sample
    "batchtopk": ("BatchTopKTrainingSAE", "BatchTopKTrainingSAEConfig", "k"),  # k per sample on average over a batch
    "jumprelu": ("JumpReLUTrainingSAE", "JumpReLUTrainingSAEConfig", "l0_coefficient"),  # learned thresholds + L0
    "matching_pursuit": ("MatchingPursuitTrainingSAE", "MatchingPursuitTrainingSAEConfig", "k"),  # k pursuit steps
}
SPARSITY_HINTS = {"k": "latents active per sample (k=1: one winner, as SoftHebb)",
                  "l1_coefficient": "the weight of the L1 penalty (SAELens' default is 1.0; larger: sparser codes)",
                  "l0_coefficient": "the weight of the L0 penalty (SAELens' default is 1.0; larger: sparser codes)"}
# the input normalisations SAELens folds into the weights at the end of training, so that the
# returned SAE reads the raw activations (the per-sample ones, layer_norm and constant_norm_rescale,
# would stay a run-time step of the SAE)
NORMALIZATIONS = ("expected_average_only_in", "none", "covariance_whitening")


# -----------------------------------------------------------------------------
# training an SAELens SAE on activations in memory


@contextmanager
def seeded_global_rng(seed: int, device: str | torch.device):
    """Run the block with torch's global CPU generator (and `device`'s CUDA one) seeded with `seed`, the
    caller's states restored afterwards (SAELens draws from the global generators only)."""
    device = torch.device(device)
    cuda = [torch.cuda.current_device() if device.index is None else device.index] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.random.default_generator.manual_seed(seed)
        for index in cuda:
            torch.cuda.default_generators[index].manual_seed(seed)
        yield


def train_sae(X, d_sae: int, *, architecture: str = "topk", k: int | None = None,
              l1_coefficient: float | None = None, l0_coefficient: float | None = None,
              training_samples: int | None = None, batch_size: int = 4096,
              lr: float = 3e-4, seed: int = 0, device: str | torch.device = "cpu",
              normalize_activations: str = "expected_average_only_in", b_dec_init: str = "zeros",
              dead_feature_window: int = 1000):
    """Train an SAELens SAE of d_sae latents on X (n, d_in) with SAELens' SAETrainer; returns (sae, info).

    architecture (ARCHITECTURES): "topk", TopKTrainingSAE, the k largest pre-activations kept (k=1: one
    winner per sample, as SoftHebb's code); "batchtopk", the k * batch largest over a batch (SAELens
    turns it into a JumpReLU SAE with one threshold for inference); "standard", ReLU with an L1
    penalty of weight l1_coefficient; "jumprelu", learned thresholds with an L0 penalty of weight
    l0_coefficient; "matching_pursuit", SAELens' tied matching-pursuit SAE with k pursuit steps per
    sample (max_iterations = k, no residual threshold, a latent may be chosen twice: the encoder of
    rules/pursuit.py's Hebbian rule, trained by gradient descent). Each needs its own sparsity
    setting and refuses the others'.

    Batches of `batch_size` rows are drawn from a stream of permutations of X (torch.Generator(seed)):
    every batch is full, and every row is seen once per pass. training_samples (default: one pass
    over X) is rounded down to whole batches. The weights are initialised from torch's global
    generator seeded with `seed` inside torch.random.fork_rng, so the caller's random state is left
    as it was and one seed on the same data gives identical weights (on the CPU; CUDA kernels may
    differ from run to run).

    normalize_activations="expected_average_only_in" (the default) scales the inputs to a mean norm
    of sqrt(d_in) during training: SAELens' initialisation (decoder rows of norm 0.1) and learning
    rates assume activations of that size, and small-norm inputs (standardised features, say) barely
    train without it. SAELens folds the scale (and "covariance_whitening") into the weights at the
    end, so the returned SAE reads raw X. The scale is estimated from one pass of batches.

    b_dec_init="mean" starts the decoder bias at the data's mean (in the trainer's scaled units) instead
    of SAELens' zeros, as Bricken et al. (2023) start it at the geometric median: on activations with a
    large shared direction (a language model's residual stream) a zero start lets the few latents most
    aligned with that direction win every token, and the rest never fire (measured on the LM stand-in's
    block 21: 98% of a TopK SAE's latents dead at k=1 from zeros). dead_feature_window: the steps without
    firing after which SAETrainer counts a latent dead (TopK's auxiliary loss revives those); SAELens'
    1000 is longer than a short run, so that loss would never act.

    No wandb: the trainer's LoggingConfig(log_to_wandb=False), no checkpoints. SAETrainer logs its
    metrics only to wandb, so the losses of every step are recorded here (SAETrainer.step, its public
    seam, overridden) and the final numbers measured on X.

    Returns the inference SAE (TopKSAE or StandardSAE, SAELens' encode/decode; the training SAE's
    state converted as SAELens' save_inference_model does) and info:
      seconds        wall time of SAETrainer.fit alone (scale estimate + steps + folding)
      steps, training_samples
      mse            mean over X of |x - x_hat|^2 / d_in;  fvu: sum |x - x_hat|^2 / sum |x - mean(X)|^2
      l0             mean number of active latents per row of X; dead_fraction: latents never active on X
      losses         {name: [value at each step]} (mse_loss, and auxiliary_reconstruction_loss or l1_loss)
      config         every setting, the SAE's config (SAELens' to_dict) and the sae_lens version
    """
    import sae_lens
    from sae_lens import SAE, SAETrainer
    from sae_lens.config import LoggingConfig, SAETrainerConfig

    X = matrix("X", X, dtype=torch.float32, min_rows=2)
    n, d_in = X.shape
    d_sae = positive_int("d_sae", d_sae, hint="the number of latents")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture={architecture!r}: expected one of {list(ARCHITECTURES)}")
    class_name, config_name, knob = ARCHITECTURES[architecture]
    sparsity = {"k": k, "l1_coefficient": l1_coefficient, "l0_coefficient": l0_coefficient}
    for name, value in sparsity.items():
        if name != knob and value is not None:
            readers = sorted(a for a, (_, _, kn) in ARCHITECTURES.items() if kn == name)
            raise ValueError(f"{name}: only architecture {' / '.join(map(repr, readers))} reads it; a "
                             f"{architecture!r} SAE is sparse by {knob} (drop {name}, pass {knob})")
    if sparsity[knob] is None:
        raise ValueError(f"{knob}=None: architecture={architecture!r} needs {knob}, {SPARSITY_HINTS[knob]}")
    if knob == "k":
        k = positive_int("k", k, hint="latents active per sample")
        if k > d_sae:
            raise ValueError(f"k={k}: expected at most d_sae={d_sae} active latents")
    elif knob == "l1_coefficient":
        l1_coefficient = finite_float("l1_coefficient", l1_coefficient, minimum=0)
    else:
        l0_coefficient = finite_float("l0_coefficient", l0_coefficient, minimum=0)
    if architecture == "matching_pursuit" and normalize_activations == "covariance_whitening":
        raise ValueError("normalize_activations='covariance_whitening': a matching-pursuit SAE's encoder is its "
                         "decoder, into which SAELens cannot fold a whitening; use 'expected_average_only_in'")
    batch_size = positive_int("batch_size", batch_size)
    if batch_size > n:
        raise ValueError(f"batch_size={batch_size}: X has only {n} rows; use batch_size <= {n}")
    training_samples = n if training_samples is None else positive_int("training_samples", training_samples)
    if training_samples < batch_size:
        raise ValueError(f"training_samples={training_samples}: expected at least one batch ({batch_size} rows)")
    training_samples -= training_samples % batch_size
    lr = finite_float("lr", lr, minimum=0, strict_minimum=True)
    seed = positive_int("seed", seed, minimum=0)
    device = device_of("device", device)
    if normalize_activations not in NORMALIZATIONS:
        raise ValueError(f"normalize_activations={normalize_activations!r}: expected one of {list(NORMALIZATIONS)} "
                         "(each is folded into the weights after training, so the SAE reads raw X)")

    if b_dec_init not in ("zeros", "mean"):
        raise ValueError(f"b_dec_init={b_dec_init!r}: expected 'zeros' (SAELens' start) or 'mean' (the data's mean)")
    if b_dec_init == "mean" and normalize_activations == "covariance_whitening":
        raise ValueError("b_dec_init='mean' with normalize_activations='covariance_whitening': the whitening centres the "
                         "data already; use b_dec_init='zeros'")
    dead_feature_window = positive_int("dead_feature_window", dead_feature_window, hint="training steps")

    common = dict(d_in=d_in, d_sae=d_sae, dtype="float32", device=str(device),
                  normalize_activations=normalize_activations)
    settings = {"k": dict(k=k), "l1_coefficient": dict(l1_coefficient=l1_coefficient),
                "l0_coefficient": dict(l0_coefficient=l0_coefficient)}[knob]
    if architecture == "matching_pursuit":  # k pursuit steps, always (as the Hebbian rule); unit-norm decoder rows
        settings = dict(max_iterations=k, residual_threshold=0.0, stop_on_duplicate_support=False,
                        decoder_init_norm=1.0)
    sae_class, sae_cfg = getattr(sae_lens, class_name), getattr(sae_lens, config_name)(**settings, **common)
    norm_batches = max(1, n // batch_size)  # one pass: the scale (or whitening) estimate
    trainer_cfg = SAETrainerConfig(
        total_training_samples=training_samples, train_batch_size_samples=batch_size,
        lr=lr, lr_end=lr,  # SAETrainer asserts lr_end is set; only the LM runner config fills it in
        lr_scheduler_name="constant", device=str(device), n_checkpoints=0, checkpoint_path=None,
        save_final_checkpoint=False, logger=LoggingConfig(log_to_wandb=False),
        n_batches_for_norm_estimate=norm_batches, dead_feature_window=dead_feature_window)

    losses: dict[str, list[torch.Tensor]] = {}  # name -> one 0-d tensor per step (no device sync per step)

    class RecordingTrainer(SAETrainer):
        """SAETrainer that keeps each step's losses (it would send them to wandb only)."""

        def step(self, batch):
            out = super().step(batch)
            for name, value in out.losses.items():
                losses.setdefault(name, []).append(value.detach())
            return out

    with seeded_global_rng(seed, device):
        sae = sae_class(sae_cfg)
        if b_dec_init == "mean":  # in the units the trainer feeds the SAE: X scaled to a mean norm of sqrt(d_in)
            scale = 1.0 if normalize_activations == "none" else d_in ** 0.5 / float(X.double().norm(dim=1).mean())
            with torch.no_grad():
                sae.b_dec.copy_((X.double().mean(0) * scale).to(sae.b_dec))
        trainer = RecordingTrainer(trainer_cfg, sae, _batches(X, batch_size, seed))
        start = time.perf_counter()
        with bars_off("sae_lens.training.sae_trainer", "sae_lens.training.activation_scaler"):  # no switch of their own
            trained = trainer.fit()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        state = trained.state_dict()
        trained.process_state_dict_for_saving_inference(state)  # as save_inference_model: folds the decoder norm
        inference = SAE.from_dict(trained.cfg.get_inference_sae_cfg_dict())  # random init: inside fork_rng
    inference.load_state_dict(state)
    inference.eval()
    info = {"seconds": seconds, "steps": trainer.n_training_steps, "training_samples": trainer.n_training_samples,
            **_fit_numbers(inference, X),
            "losses": {name: torch.stack(values).float().cpu().tolist() for name, values in losses.items()},
            "config": {"architecture": architecture, "d_in": d_in, "d_sae": d_sae, "k": k,
                       "l1_coefficient": l1_coefficient, "l0_coefficient": l0_coefficient, "training_samples": training_samples,
                       "batch_size": batch_size, "lr": lr, "seed": seed, "device": str(device),
                       "normalize_activations": normalize_activations, "b_dec_init": b_dec_init,
                       "dead_feature_window": dead_feature_window, "n_batches_for_norm_estimate": norm_batches,
                       "sae_cfg": inference.cfg.to_dict(), "sae_lens_version": version("sae-lens")}}
    return inference, info


def _batches(X: torch.Tensor, batch_size: int, seed: int):
    """SAETrainer's data provider: an endless iterator of (batch_size, d_in) batches of X, rows drawn
    from one permutation after another of torch.Generator(seed); every batch is full."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.empty(0, dtype=torch.long)
    while True:
        while order.numel() < batch_size:
            order = torch.cat([order, torch.randperm(X.shape[0], generator=generator)])
        rows, order = order[:batch_size], order[batch_size:]
        yield X[rows.to(X.device)]


@torch.no_grad()
def _fit_numbers(sae, X: torch.Tensor, batch_size: int = 8192) -> dict:
    """mse, fvu, l0 and dead_fraction of `sae` on X (n, d_in), in batches."""
    n, d_in = X.shape
    mean = X.double().mean(0)
    err = var = active = 0.0
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
    for start in range(0, n, batch_size):
        x = X[start:start + batch_size].to(sae.W_enc.device)
        codes = sae.encode(x)  # (b, d_sae)
        x_hat = sae.decode(codes)  # (b, d_in)
        err += float((x_hat.double() - x.double()).pow(2).sum())
        var += float((x.double() - mean.to(x.device)).pow(2).sum())
        active += float((codes != 0).sum())
        fired |= (codes != 0).any(0).cpu()
    return {"mse": err / (n * d_in), "fvu": err / var if var > 0 else math.nan, "l0": active / n,
            "dead_fraction": float((~fired).double().mean())}


# -----------------------------------------------------------------------------
# a SoftHebb layer as an SAELens TopK SAE


def saelens_state(layer: SoftHebbLinear) -> dict[str, torch.Tensor]:
    """The SAELens weights of a SoftHebb layer (see export_saelens): W_enc (D, N), b_enc (N,),
    W_dec (N, D), b_dec (D,), in the layer's dtype, on the CPU."""
    layer = _softhebb("layer", layer)
    W = layer.weight.detach().cpu()  # (N, D)
    mu = layer.bn.running_mean.detach().cpu().to(W.dtype)  # (D,)
    sigma = torch.sqrt(layer.bn.running_var.detach().cpu().to(W.dtype) + layer.bn.eps)  # (D,)
    norm2 = W.pow(2).sum(1, keepdim=True)  # (N, 1)
    unit = torch.where(norm2 > 0, W / torch.where(norm2 > 0, norm2, 1), 0)  # w_j / |w_j|^2; 0 for a zero row
    state = {"W_enc": (W / sigma).T.contiguous(), "b_enc": torch.zeros(W.shape[0], dtype=W.dtype),
             "W_dec": (unit * sigma).contiguous(), "b_dec": mu.clone()}
    for name, value in (("layer.weight", W), ("layer.bn.running_mean", mu), ("layer.bn.running_var", sigma),
                        *state.items()):
        if not bool(torch.isfinite(value).all()):  # an SAE of NaN or inf would load and encode NaN without a word
            raise ValueError(f"layer: {name} holds {int((~torch.isfinite(value)).sum())} NaN or inf value(s), so the "
                             "SAE would encode NaN; retrain the layer on finite data (check the inputs, or lower lr)")
    return state


def export_saelens(layer: SoftHebbLinear | PursuitLinear, folder: str | os.PathLike, k: int | None = None, *,
                   metadata: dict | None = None) -> Path:
    """Write a trained SoftHebb layer as an SAELens TopK SAE with k winners (default 1), or a Hebbian
    matching-pursuit layer (rules/pursuit.py) as SAELens' MatchingPursuitSAE with k iterations (default:
    the layer's k): `folder` holds cfg.json and sae_weights.safetensors, which
    `sae_lens.SAE.load_from_disk(folder)` reads. Returns the folder.

    Matching pursuit: the layer's unit rows are the tied dictionary, W_dec = W and b_dec = 0 (the layer
    codes its inputs as they are); cfg "matching_pursuit" with max_iterations = k, the layer's
    residual_threshold and stop_on_duplicate_support False (a unit may win twice, as in the layer):
    SAELens' encode of the export is the layer's code (tests/test_saelens.py).

    The mathematics. In eval mode the layer reads z = (x - mu) / sigma, with BatchNorm's running mean
    mu and sigma = sqrt(running_var + eps) (the BatchNorm is not affine), and responds u_j = w_j . z.
    SAELens' TopK SAE (apply_b_dec_to_input) computes hidden_pre = (x - b_dec) @ W_enc + b_enc, so

        b_dec = mu,  W_enc[:, j] = w_j / sigma,  b_enc = 0   gives   hidden_pre = u exactly,

    and TopK keeps the k largest u_j, ReLU'd (k=1: SoftHebb's winner-take-all code). Decoder: an input
    along one weight, z = a w_j / |w_j| (a > 0), gives u_j = a |w_j|; so z_hat = u_j w_j / |w_j|^2
    and x_hat = mu + sigma * z_hat, i.e.

        W_dec[j] = sigma * w_j / |w_j|^2  (a zero w_j gets a zero row),   x_hat = codes @ W_dec + b_dec.

    Such an input is reconstructed exactly whenever j wins (always for the largest-norm weight).
    cfg: architecture "topk", rescale_acts_by_decoder_norm False (True would rank u_j |W_dec[j]|, not
    u_j), normalize_activations "none", the layer's dtype; metadata records the SAELens version (older
    or missing versions make SAELens rewrite the config as a pre-6.0 one), the source layer (t_invert,
    grid, BatchNorm eps) and `metadata` (e.g. model_name, hook_name for SAELens' model tools).

    The folder is written whole or not at all (io.atomic_replace_dir). An existing folder is replaced
    only if it holds nothing but an SAE's two files: anything else in it is refused, not deleted.
    """
    pursuit = isinstance(layer, PursuitLinear)
    if not pursuit:
        layer = _softhebb("layer", layer)
    k = (layer.k if pursuit else 1) if k is None else k
    k = positive_int("k", k, hint="units per sample; 1 is SoftHebb's winner-take-all")
    if k > layer.out_features:
        raise ValueError(f"k={k}: expected at most out_features={layer.out_features} winners")
    if metadata is not None and not isinstance(metadata, dict):
        raise ValueError(f"metadata: expected a dict (such as {{'hook_name': ...}}), got {type(metadata).__name__}")
    if not isinstance(folder, (str, os.PathLike)) or not str(folder).strip():
        raise ValueError(f"folder={folder!r}: expected the path of a new or empty folder for the SAE's files")
    folder = Path(folder)
    if folder.resolve() == Path.cwd().resolve():
        raise ValueError(f"folder={str(folder)!r} is the current folder, which the export cannot replace whole: "
                         "give a new folder, e.g. 'sae'")
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"folder={folder}: is a file; expected a folder for the SAE's {' and '.join(SAE_FILES)}")
    if folder.is_dir():
        other = sorted(p.name for p in folder.iterdir() if p.name not in SAE_FILES)
        if other:
            raise ValueError(f"folder={folder}: holds {other[:5]} besides an SAE's files, and the export replaces the "
                             "whole folder; choose a new or empty folder")
    check_writable(folder, "folder")
    from safetensors.torch import save_file

    if pursuit:
        cfg, state = _pursuit_export(layer, k, metadata)
    else:
        cfg, state = _softhebb_export(layer, k, metadata)
    try:
        with atomic_replace_dir(folder) as tmp:
            atomic_write_json(tmp / SAE_FILES[0], cfg)
            save_file(state, str(tmp / SAE_FILES[1]))
    except OSError as e:  # a folder check_writable could not foresee (in /proc, a read-only disk, a full one)
        raise ValueError(f"folder={str(folder)!r}: cannot write the SAE there ({e.strerror or e}); choose a "
                         "writable folder") from None
    return folder


def _pursuit_export(layer: PursuitLinear, k: int, metadata: dict | None) -> tuple[dict, dict]:
    """(cfg, weights) of SAELens' MatchingPursuitSAE for a PursuitLinear (see export_saelens)."""
    W = layer.weight.detach().cpu().contiguous()  # (N, D) unit rows
    if not bool(torch.isfinite(W).all()):
        raise ValueError(f"layer: layer.weight holds {int((~torch.isfinite(W)).sum())} NaN or inf value(s), so the SAE "
                         "would encode NaN; retrain the layer on finite data (check the inputs, or lower lr)")
    grid = None if layer.grid is None else list(layer.grid.shape)
    cfg = {"architecture": "matching_pursuit", "d_in": layer.in_features, "d_sae": layer.out_features,
           "dtype": str(W.dtype).removeprefix("torch."), "device": "cpu", "apply_b_dec_to_input": True,
           "normalize_activations": "none", "reshape_activations": "none",
           "residual_threshold": layer.residual_threshold, "max_iterations": k, "stop_on_duplicate_support": False,
           "metadata": {**(metadata or {}), "sae_lens_version": version("sae-lens"),
                        "hebb_utils_source": {"layer": "PursuitLinear", "k": layer.k, "grid": grid}}}
    # SAELens codes x - b_dec and decodes a W_dec + b_dec: the layer's offset (zero without one)
    return cfg, {"W_dec": W, "b_dec": layer.bias.detach().cpu().to(W.dtype).contiguous()}


def _softhebb_export(layer: SoftHebbLinear, k: int, metadata: dict | None) -> tuple[dict, dict]:
    """(cfg, weights) of SAELens' TopK SAE for a SoftHebbLinear (see export_saelens)."""
    grid = None if layer.lateral is None else list(layer.lateral.grid.shape)  # a Lateral's or a LateralSchedule's
    cfg = {"architecture": "topk", "d_in": layer.in_features, "d_sae": layer.out_features, "k": k,
           "dtype": str(layer.weight.dtype).removeprefix("torch."), "device": "cpu", "apply_b_dec_to_input": True,
           "normalize_activations": "none", "reshape_activations": "none", "rescale_acts_by_decoder_norm": False,
           "metadata": {**(metadata or {}), "sae_lens_version": version("sae-lens"),
                        "hebb_utils_source": {"layer": "SoftHebbLinear", "t_invert": layer.t_invert, "grid": grid,
                                              "bn_eps": layer.bn.eps}}}
    return cfg, saelens_state(layer)


def load_saelens(folder: str | os.PathLike):
    """sae_lens.SAE.load_from_disk(folder), after checking what it would read without a word: cfg.json
    a JSON object with an architecture SAELens knows, integer d_in, d_sae >= 1 and (TopK) 1 <= k <= d_sae,
    and sae_weights.safetensors holding W_enc (d_in, d_sae), W_dec (d_sae, d_in), b_enc (d_sae,) and
    b_dec (d_in,) of finite values. A ValueError (FileNotFoundError for a missing folder or file) names
    the file and the entry; SAELens' own would be a JSONDecodeError, a KeyError or a torch RuntimeError
    about a state dict (or, for k = 0, an SAE that loads and encodes nothing)."""
    from sae_lens import SAE
    from safetensors import safe_open

    if not isinstance(folder, (str, os.PathLike)) or not str(folder).strip():
        raise ValueError(f"folder={folder!r}: expected the folder of an SAELens SAE (cfg.json and "
                         "sae_weights.safetensors)")
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder={str(folder)!r}: no such folder; expected the folder of an SAELens SAE "
                                f"({' and '.join(SAE_FILES)}), e.g. one export_saelens wrote")
    cfg_path, weights_path = folder / SAE_FILES[0], folder / SAE_FILES[1]
    for path in (cfg_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; an SAELens SAE folder holds {' and '.join(SAE_FILES)}")
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{cfg_path}: not valid JSON ({e}); export the SAE again") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"{cfg_path}: holds a JSON {type(cfg).__name__}, not an SAE config object")
    from sae_lens.registry import get_sae_class

    architecture = cfg.get("architecture", "standard")
    try:
        get_sae_class(architecture)
    except (KeyError, ValueError, TypeError):
        raise ValueError(f"{cfg_path}: architecture {architecture!r} is not one SAELens knows (e.g. 'topk', "
                         "'standard')") from None
    for key in ("d_in", "d_sae"):
        value = cfg.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{cfg_path}: {key}={value!r}, expected an integer >= 1")
    d_in, d_sae = cfg["d_in"], cfg["d_sae"]
    if architecture == "topk" or "k" in cfg:
        k = cfg.get("k")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= d_sae:
            raise ValueError(f"{cfg_path}: k={k!r} for d_sae={d_sae} latents, expected an integer with "
                             "1 <= k <= d_sae")
    expected = {"W_enc": (d_in, d_sae), "W_dec": (d_sae, d_in), "b_enc": (d_sae,), "b_dec": (d_in,)}
    if architecture == "matching_pursuit":  # tied: the encoder is W_dec itself, and there is no b_enc
        expected = {"W_dec": (d_sae, d_in), "b_dec": (d_in,)}
    try:
        with safe_open(str(weights_path), framework="pt") as f:
            keys = set(f.keys())
            for name, shape in expected.items():
                if name not in keys:
                    raise ValueError(f"{weights_path}: has no {name}; it holds {sorted(keys)[:6]}")
                got = tuple(f.get_slice(name).get_shape())
                if got != shape:
                    raise ValueError(f"{weights_path}: {name} has shape {got}, but {SAE_FILES[0]} says d_in={d_in}, "
                                     f"d_sae={d_sae} (expected {shape}): fix d_in / d_sae in {cfg_path}")
                value = f.get_tensor(name)
                if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                    raise ValueError(f"{weights_path}: {name} holds {int((~torch.isfinite(value)).sum())} NaN or "
                                     "inf value(s); use an SAE trained on finite data")
    except ValueError:
        raise
    except Exception as e:  # noqa: BLE001  safetensors' own error for a cut or foreign file
        raise ValueError(f"{weights_path}: not a readable safetensors file ({type(e).__name__}: {e}); export the "
                         "SAE again") from None
    return SAE.load_from_disk(str(folder))


@torch.no_grad()
def encode(layer: SoftHebbLinear, X, k: int = 1, batch_size: int = 4096) -> torch.Tensor:
    """codes (n, N): the exported TopK SAE's encode in plain torch, from the layer itself.

    u = layer.responses(X) (eval mode, running statistics), then SAELens' TopK exactly: the k largest
    u_j of each row (torch.topk), ReLU'd (a winner with u_j <= 0 codes 0), every other entry 0.
    """
    layer = _softhebb("layer", layer)
    k = positive_int("k", k, hint="winners per sample")
    if k > layer.out_features:
        raise ValueError(f"k={k}: expected at most out_features={layer.out_features} winners")
    u = layer.responses(X, batch_size=batch_size)  # (n, N)
    values, index = torch.topk(u, k=k, dim=-1, sorted=False)
    return torch.zeros_like(u).scatter_(-1, index, values.relu())


@torch.no_grad()
def decode(layer: SoftHebbLinear, codes) -> torch.Tensor:
    """x_hat (n, D) = codes @ W_dec + b_dec = mu + sigma * sum_j codes_j w_j / |w_j|^2 (export_saelens),
    on the layer's device. codes (n, N): from encode, or any non-negative code of the neurons."""
    layer = _softhebb("layer", layer)
    codes = matrix("codes", codes, layer.out_features, dtype=layer.weight.dtype, device=layer.weight.device,
                   cols_name="out_features")
    state = saelens_state(layer)
    return codes @ state["W_dec"].to(codes.device) + state["b_dec"].to(codes.device)


def _softhebb(name: str, layer) -> SoftHebbLinear:
    if not isinstance(layer, SoftHebbLinear) or isinstance(layer, SAEMapLayer):
        raise ValueError(f"{name}: expected a trained SoftHebbLinear, got {type(layer).__name__}")
    return layer


# -----------------------------------------------------------------------------
# any SAELens SAE on the map of words


class SAEMapLayer(SoftHebbLinear):
    """An SAELens SAE seen as the layer the map tools read (write_token_map, neuron_summary,
    softhebb_metrics): responses u = the SAE's pre-activations, weight = its decoder rows W_dec.

    It is a SoftHebbLinear so that every tool that takes one takes it unchanged; only what they read
    is defined: in_features = d_in, out_features = d_sae, lateral.grid = the user's grid (radius 0,
    gain 0: it only places the latents), weight (d_sae, d_in) a copy of W_dec when made (the
    dictionary: the map's distance correlation compares these rows), forward(x) = hidden_pre. The
    inherited BatchNorm is unused, and it does not learn (hebbian_step raises).

    hidden_pre is what the SAE's encode passes through its hook_sae_acts_pre (captured with a forward
    hook, so it is the SAE's own computation, of any architecture that has that hook), times |W_dec[j]|
    when the SAE ranks its latents so (rescale_acts_by_decoder_norm): the largest is the latent the
    SAE's TopK would keep first, so the map's winner is the SAE's most active latent.
    """

    def __init__(self, sae, grid):
        cfg = sae.cfg
        W_dec = sae.W_dec.detach()
        super().__init__(cfg.d_in, cfg.d_sae, t_invert=1.0, lateral=Lateral(grid, radius=0.0, gain=0.0),
                         device=W_dec.device, dtype=W_dec.dtype)
        self.weight = W_dec.clone()  # (d_sae, d_in)
        self.sae = sae

    def extra_repr(self) -> str:
        return f"d_in={self.in_features}, d_sae={self.out_features}, grid={self.lateral.grid.shape}"

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.checked_input("x", x, 0)
        captured = []
        handle = self.sae.hook_sae_acts_pre.register_forward_hook(lambda module, args, out: captured.append(out))
        try:
            self.sae.encode(x)
        finally:
            handle.remove()
        if len(captured) != 1:
            raise ValueError(f"sae: its encode passed {len(captured)} tensors through hook_sae_acts_pre, expected "
                             f"one (the pre-activations); {type(self.sae).__name__} cannot be mapped this way")
        pre = captured[0]  # (b, d_sae)
        if getattr(self.sae.cfg, "rescale_acts_by_decoder_norm", False):
            pre = pre * self.sae.W_dec.norm(dim=-1)
        return pre.to(self.weight.dtype)

    def hebbian_step(self, *args, **kwargs):
        raise ValueError("SAEMapLayer draws a trained SAE on the map and does not learn: train SAEs with train_sae")

    def train_step(self, *args, **kwargs):
        raise ValueError("SAEMapLayer draws a trained SAE on the map and does not learn: train SAEs with train_sae")


def as_map_layer(sae, grid) -> SAEMapLayer:
    """Any SAELens SAE (sae_lens.SAE: trained here, loaded with SAE.load_from_disk or from_pretrained)
    on a grid of rows * cols = d_sae latents, as the layer write_token_map and draw_token_map's
    neuron_summary read (see SAEMapLayer). The grid places latent j at row j // cols, column j % cols:
    an SAE has no topography of its own, so its map shows how far its latent order carries any."""
    from sae_lens import SAE

    if not isinstance(sae, SAE):
        raise ValueError(f"sae: expected an SAELens SAE (sae_lens.SAE), got {type(sae).__name__}")
    if getattr(sae.cfg, "reshape_activations", "none") != "none":
        raise ValueError(f"sae: reads {sae.cfg.reshape_activations} activations (heads x d_head); the map reads "
                         "rows of d_in features: use an SAE with reshape_activations='none'")
    k = getattr(sae.cfg, "k", None)
    if k is not None and not (isinstance(k, int) and 1 <= k <= sae.cfg.d_sae):
        raise ValueError(f"sae: its cfg has k={k!r} for d_sae={sae.cfg.d_sae} latents: expected 1 <= k <= d_sae "
                         "(fix k in the SAE's cfg.json)")
    for name, value in sae.state_dict().items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ValueError(f"sae: its {name} holds {int((~torch.isfinite(value)).sum())} NaN or inf value(s), so "
                             "every response would be NaN; use an SAE trained on finite data")
    grid = Grid.of(grid, n=sae.cfg.d_sae, what="latents in the SAE (d_sae)")
    return SAEMapLayer(sae, grid).eval()
