"""Hebbian ICA (PAPER.md rule 4): independent components by the natural-gradient infomax rule."""
from __future__ import annotations

import torch

from ..checks import positive_int
from .hebbian import fix_signs, sanger
from ..linalg import amari_distance
from .schedule import Run, RunConfig, reference_of
from .stream import MOMENT_CHUNK, Stream, mean_of, moments

__all__ = ["hebbian_ica"]


def _whitening(X, data: Stream, cfg: RunConfig, k: int, whiten: str) -> tuple[torch.Tensor, torch.Tensor]:
    """V (k, D) float32 with Cov(V (x - mean)) ~ I, and the mean (D,) float32."""
    if whiten == "eigh":
        mean64, C = moments(data, center=True)
        evals, evecs = torch.linalg.eigh(C)
        order = torch.argsort(evals, descending=True)[:k]
        var, E = evals[order], evecs[:, order]  # (k,), (D, k)
        V = (E / var.sqrt()).T  # (k, D)
    else:
        E = sanger(X, k, batch_size=cfg.batch_size, seed=cfg.seed, shuffle=cfg.shuffle, backend="torch").double()
        mean64 = mean_of(data)
        var = torch.zeros(k, dtype=torch.float64, device=data.device)
        n = 0
        for b in data.batches(chunk=MOMENT_CHUNK):
            var += ((b.double() - mean64) @ E.T).square().sum(0)
            n += b.shape[0]
        var /= n
        V = E / var.sqrt()[:, None]
    if not var.min() > 1e-12 * var.max().clamp_min(1e-300):  # var: the variances along the k directions
        raise ValueError(f"n_components={k}: the data has fewer than {k} directions with variance")
    return V.to(torch.float32), mean64.to(torch.float32)


def hebbian_ica(X, n_components: int, *, whiten: str = "eigh", **options) -> torch.Tensor:
    """Independent components by the natural-gradient infomax rule on whitened data. Returns the
    (k, D) unmixing rows for the CENTRED ORIGINAL data: ``S = (X - X.mean(0)) @ W.T`` are the sources.
    Options: :class:`hebb_utils.schedule.RunConfig` without center (the data is always centred)
    and scale_rows (defaults lr=0.05, log_every=10).

    1. Whitening (``z = V (x - mean)``, V (k, D), Cov z = I): ``whiten="eigh"`` uses the exact top-k
       eigenvectors of the covariance, ``V = diag(lambda^-1/2) E^T``; ``whiten="sanger"`` uses the
       Sanger components (:func:`sanger`, default run length) scaled by their measured variances
       (approximately white).
    2. Rule (Amari, Cichocki & Yang 1996; Bell & Sejnowski 1995), for a batch z (B, k):
       ``y = z B^T``, ``dB = eta * (I - phi(y)^T y / B) B`` with ``phi(y) = 2 tanh(y)``, the score of
       the logistic density, suited to super-Gaussian (sparse, heavy-tailed) sources; it is the
       natural gradient of the likelihood, with a stable fixed point ``<phi(y) y^T> = I`` when the
       sources are super-Gaussian. B starts as a seeded random rotation; the step
       ``eta = lr (1 - t / T)`` needs no scale normalisation because z is white.
       (The rule printed in the paper, ``dw_i = eta (x_i - g(w.x) w_i)``, has no known convergence
       guarantee, so it is not used.)
    3. Result ``W = B V``, rows rescaled so each source has unit variance on the whitened data and
       signs fixed (largest-|.| entry positive). The order of ICA components is arbitrary.

    ``reference``: the true (D, k) mixing matrix A of a synthetic mixture; the history then gets
    "amari" = :func:`amari_distance` (W, A) (0 = perfect separation). Raises RuntimeError if B
    stops being finite (lr too large).
    """
    k = positive_int("n_components", n_components)
    if whiten not in ("eigh", "sanger"):
        raise ValueError(f"whiten={whiten!r}: expected 'eigh' or 'sanger'")
    cfg = RunConfig.of("hebbian_ica", options, ("center", "scale_rows"), lr=0.05)
    data = Stream(X, cfg.batch_size, cfg.shuffle)
    if k > data.dim:
        raise ValueError(f"n_components={k}: at most D={data.dim} components exist")
    A = reference_of(cfg.reference, (data.dim, k), "the (D, k) mixing matrix")
    V, mu = _whitening(X, data, cfg, k, whiten)

    def values(B):
        out = {"norm": (B.detach().double().norm(dim=1)).tolist()}
        if A is not None:
            unit = B / B.norm(dim=1, keepdim=True)  # as returned: unit-variance sources
            out["amari"] = amari_distance((unit @ V).detach().to("cpu", torch.float64), A)
        return out

    run = Run("hebbian_ica", data, cfg, values)
    Bm = torch.linalg.qr(torch.randn(k, k, generator=run.gen, dtype=torch.float64))[0]
    Bm = Bm.to(torch.float32).to(data.device)  # (k, k) random rotation
    eye = torch.eye(k, device=data.device)
    run.log(Bm)
    for xb in run:
        z = (xb - mu) @ V.T  # (B, k) whitened
        y = z @ Bm.T  # (B, k)
        grad = eye - (2.0 * torch.tanh(y)).T @ y / y.shape[0]  # (k, k)
        Bm = Bm + run.lr * grad @ Bm
        run.watch(Bm)
    run.finish(Bm)
    Bm = Bm / Bm.norm(dim=1, keepdim=True)  # unit variance of y on white z
    return fix_signs(Bm @ V)
