"""The Hebbian rules of the PCA family (PAPER.md rules 1-3): plain Hebb, Hebb with decay, the
recurrent all-to-all circuit, Oja and Sanger (GHA), plus the exact reference ``top_eigenvectors``.

Every rule takes the data X of :mod:`hebb_utils.stream` and the keyword options of
:class:`hebb_utils.schedule.RunConfig`, whose module describes the step size, the run length, the
history and the divergence check. ``center=True`` (default) subtracts the data mean first, so ``C``
is the covariance and the rules learn principal components; with ``center=False``, ``C = <x x^T>``.

Heavy tails. A finite step under-weights single samples that carry a large share of the variance
(a kick ``eta |x|^2 / B >> 1`` overshoots), so on extremely heavy-tailed data (e.g. one sample
making 40% of an eigenvalue) the order of close components can differ from the exact
eigendecomposition; a larger ``batch_size`` shrinks the kicks.

History. With ``history=[]`` and a ``reference`` (a (D,) vector or (k, D) basis, e.g. from
:func:`top_eigenvectors`) the entries hold "norm", "cos" and, for k > 1, "subspace_error".
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ..backend import resolve_backend
from ..checks import finite_float, matrix, positive_int, vector
from ..linalg import component_cosines, subspace_error
from ..parallel import all_sum, batch_slice, rank_world
from .schedule import Run, RunConfig, reference_of
from .stream import Stream, mean_of, moments

__all__ = ["HebbResult", "hebb", "hebb_with_decay", "recurrent_hebb", "oja", "sanger", "sanger_step",
           "top_eigenvectors", "estimate_top_eigenvalue", "sanger_parallel", "oja_parallel", "sanger_step_parallel"]


def fix_signs(W: torch.Tensor) -> torch.Tensor:
    """Flip each row so its largest-|.| entry is positive (eigenvectors have no sign of their own)."""
    idx = W.abs().argmax(dim=1, keepdim=True)
    sign = torch.sign(W.gather(1, idx))
    sign[sign == 0] = 1
    return W * sign


def estimate_top_eigenvalue(sample: torch.Tensor, mean: torch.Tensor | None = None, *, iters: int = 50,
                            gen: torch.Generator | None = None) -> float:
    """Top eigenvalue of the second moment of `sample` (B, D) (minus `mean` (D,)) by power iteration.

    Returns |C v| for the last iterate v, which lies between the Rayleigh quotient and lambda_1.
    """
    sample, iters = matrix("sample", sample), positive_int("iters", iters)
    if mean is not None:
        mean = vector("mean", mean, sample.shape[1]).to(sample.device, torch.float64)
    x = sample.double() - (0 if mean is None else mean)
    v = torch.randn(x.shape[1], generator=gen, dtype=torch.float64).to(x.device)
    v /= v.norm()
    lam = torch.zeros((), dtype=torch.float64)
    for _ in range(iters):
        v = x.T @ (x @ v) / x.shape[0]
        lam = v.norm()
        if lam == 0:
            break
        v /= lam
    return float(lam)


def _prepare(data: Stream, cfg: RunConfig, gen: torch.Generator) -> tuple[torch.Tensor, float]:
    """The data's mean (D,) float32 on its device (zeros without centring) and lambda_hat."""
    mean64 = mean_of(data, cfg.center)
    lam = estimate_top_eigenvalue(data.head(cfg.scale_rows, gen), mean64, gen=gen)
    if not lam > 0:
        raise ValueError("X: has zero variance (every row equal to the mean); nothing to learn")
    return mean64.to(torch.float32), lam


def _random_rows(k: int, dim: int, gen: torch.Generator, device) -> torch.Tensor:
    """k random unit rows, (k, D) float32."""
    W = torch.randn(k, dim, generator=gen)
    return (W / W.norm(dim=1, keepdim=True)).to(device)


def _curve(W: torch.Tensor, ref: torch.Tensor | None) -> dict:
    """norm / cos / subspace_error of the current weights W (k, D) for the history (scalars for k = 1)."""
    Wd = W.detach().to("cpu", torch.float64)
    single, norms = W.shape[0] == 1, Wd.norm(dim=1)
    out = {"norm": float(norms[0]) if single else norms.tolist()}
    if ref is not None:
        cos = component_cosines(Wd, ref)
        out["cos"] = float(cos[0]) if single else cos.tolist()
        if not single:
            out["subspace_error"] = subspace_error(Wd, ref)
    return out


def _start(rule: str, X, cfg: RunConfig, k: int, **run) -> tuple[Stream, Run]:
    """The stream and the run of a rule learning k components (history: _curve against the reference)."""
    data = Stream(X, cfg.batch_size, cfg.shuffle)
    if k > data.dim:
        raise ValueError(f"n_components={k}: at most D={data.dim} components exist")
    ref = reference_of(cfg.reference, (k, data.dim), f"{k} component(s)", vector=True)
    return data, Run(rule, data, cfg, lambda W: _curve(W, ref), **run)


# ----------------------------------------------------------------------------------------------
# rule 1: plain Hebb, Hebb with decay, the recurrent circuit


class HebbResult(NamedTuple):
    """Plain Hebb run: the last weights, |w| after every step (index 0 = initial), and whether
    |w| passed `max_norm` (the run then stopped there)."""

    w: torch.Tensor  # (D,)
    norms: torch.Tensor  # (steps + 1,) float64, CPU
    diverged: bool


def hebb(X, *, max_norm: float = 1e20, **options) -> HebbResult:
    """Plain Hebb, ``dw = eta * <y x>_batch`` with ``y = w.x``: in expectation ``w <- (I + eta C) w``,
    so |w| grows like (1 + lr)^t along the top eigenvector (eta = lr / lambda_hat, constant).
    Options: :class:`RunConfig` with lr=0.1 and log_every=1 (no lr_decay: the step is constant).

    The run stops cleanly, with ``diverged=True``, at the first step where |w| exceeds ``max_norm``
    (well below float32 overflow) instead of running on into inf/NaN. The history is logged every
    ``log_every`` steps and at that step.
    """
    max_norm = finite_float("max_norm", max_norm, minimum=0, strict_minimum=True)
    cfg = RunConfig.of("hebb", options, ("lr_decay",), lr=0.1, log_every=1, lr_decay=False)
    data, run = _start("hebb", X, cfg, 1)
    mean, lam = _prepare(data, cfg, run.gen)
    w = _random_rows(1, data.dim, run.gen, data.device)  # (1, D)
    norms, diverged = [float(w.double().norm())], False
    run.log(w)
    for xb in run:
        x = xb - mean  # (B, D)
        y = x @ w.T  # (B, 1)
        w = w + (run.lr / lam) * (y.T @ x) / x.shape[0]
        norms.append(float(w.double().norm()))  # float64: squaring 1e20 would overflow float32
        diverged = not math.isfinite(norms[-1]) or norms[-1] > max_norm
        if diverged or run.step % run.log_every == 0:
            run.log(w)
        if diverged:
            break
    return HebbResult(w[0], torch.tensor(norms, dtype=torch.float64), diverged)


def hebb_with_decay(X, alpha: float | None = None, **options) -> torch.Tensor:
    """Hebb with linear weight decay, ``dw = eta * (<y x>_batch - alpha w)``, ``y = w.x``. Returns w (D,).
    Options: :class:`RunConfig` (defaults lr=0.5, log_every=10).

    In expectation ``w <- (I + eta (C - alpha I)) w``: the component of w along eigenvector i is
    multiplied by ``1 + eta (lambda_i - alpha)`` per step, so the *direction* of w converges to the
    top eigenvector for any alpha (the top component always grows fastest), while the *norm* is
    fixed by nothing but alpha: it grows like (1 + eta (lambda_1 - alpha))^t, decays when
    alpha > lambda_1, and stays put only at alpha = lambda_1 (the fixed point C w = alpha w needs
    alpha to be an eigenvalue; |w| then ends at the size of the initial w's component along the
    top eigenvector, as the other components decay away). The default ``alpha = lambda_hat``,
    the power-iteration estimate of lambda_1, so |w| drifts only by the estimation error
    (record it with ``history``). eta = lr / max(lambda_hat, alpha) keeps eta * alpha < 1.
    A RuntimeError is raised if |w| leaves [1e-20, 1e20]: alpha is then far from lambda_1.
    Normalise the result for the direction.
    """
    cfg = RunConfig.of("hebb_with_decay", options)
    data, run = _start("hebb_with_decay", X, cfg, 1, hint="leave alpha=None to use the estimate")
    mean, lam = _prepare(data, cfg, run.gen)
    alpha = finite_float("alpha", lam if alpha is None else alpha, minimum=0, strict_minimum=True)
    scale = max(lam, alpha)

    def check(w):
        norm = float(w.double().norm())
        if not 1e-20 < norm < 1e20:
            return f"|w| = {norm:.3g}: alpha={alpha:.4g} is too far from the top eigenvalue (estimated {lam:.4g})"

    run.check = check
    w = _random_rows(1, data.dim, run.gen, data.device)  # (1, D)
    run.log(w)
    for xb in run:
        x = xb - mean
        y = x @ w.T  # (B, 1)
        w = w + (run.lr / scale) * ((y.T @ x) / x.shape[0] - alpha * w)
        run.watch(w)
    run.finish(w)
    return w[0]


def recurrent_hebb(X, alpha: float = 1.0, **options) -> torch.Tensor:
    """All-to-all recurrent circuit driven by its input (unit activity y = x), every connection
    learning by Hebb with decay: ``dW_ij = eta * (<y_i y_j>_batch - alpha W_ij)``. Returns W (D, D).
    Options: :class:`RunConfig` without scale_rows (defaults lr=0.5, log_every=10).

    W starts at 0. With eta = lr / alpha the update reads ``W <- (1 - lr_t) W + lr_t S_batch / alpha``,
    a running average of the batch correlations S_batch, so W converges to the fixed point
    ``C / alpha`` for every alpha > 0: the circuit mirrors the input correlations. It is stable for
    lr_t < 2; a larger lr makes W oscillate and grow, and the run raises RuntimeError (lower lr)
    as soon as W stops being finite, like the other rules, instead of returning NaN.
    ``reference`` (D, D), e.g. C / alpha, adds "rel_error" = ||W - ref||_F / ||ref||_F and "cos"
    (of W and ref flattened) to the history.
    """
    alpha = finite_float("alpha", alpha, minimum=0, strict_minimum=True)
    cfg = RunConfig.of("recurrent_hebb", options, ("scale_rows",))
    data = Stream(X, cfg.batch_size, cfg.shuffle)
    ref = reference_of(cfg.reference, (data.dim, data.dim), "the (D, D) matrix")

    def values(W):
        Wd = W.detach().to("cpu", torch.float64)
        out = {"norm": float(Wd.norm())}
        if ref is not None:
            out["rel_error"] = float((Wd - ref).norm() / ref.norm())
            out["cos"] = float((Wd * ref).sum() / (Wd.norm() * ref.norm()).clamp_min(1e-300))
        return out

    run = Run("recurrent_hebb", data, cfg, values)
    mu = mean_of(data, cfg.center).float()
    W = torch.zeros(data.dim, data.dim, device=data.device)  # (D, D)
    run.log(W)
    for xb in run:
        x = xb - mu
        W = W + (run.lr / alpha) * ((x.T @ x) / x.shape[0] - alpha * W)
        run.watch(W)
    run.finish(W)
    return W


# ----------------------------------------------------------------------------------------------
# rules 2-3: Oja and Sanger


def sanger_step(W: torch.Tensor, x: torch.Tensor, lr: float) -> torch.Tensor:
    """One batch step of Sanger's rule (GHA), IN PLACE: ``W += lr * (y^T x - tril(y^T y) W) / B``.

    W (k, D) float32, rows are components; x (B, D) the (centred) batch; lr the step already divided
    by the data scale. ``y = x W^T`` (B, k). Row i moves by ``<y_i (x - sum_{j<=i} y_j w_j)>``, so
    with k = 1 this is Oja's rule ``dw = lr * <y (x - y w)>``. Returns W (the same tensor).
    This is the reference the Triton kernel ``sanger_step_triton`` is checked against.
    """
    dW = _sanger_terms(W, x) / x.shape[0]  # (k, D)
    return W.add_(dW, alpha=lr)


def _sanger_terms(W: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The batch sum ``y^T x - tril(y^T y) W`` (k, D) of Sanger's rule, ``y = x W^T``: a sum over the
    samples, so data-parallel ranks add theirs (hebb_utils.distributed)."""
    y = x @ W.T  # (B, k)
    yy = torch.tril(y.T @ y)  # (k, k): sum over the batch of y_i y_j, j <= i
    return y.T @ x - yy @ W


def sanger(X, n_components: int, *, backend: str = "auto", **options) -> torch.Tensor:
    """Sanger's rule (Generalized Hebbian Algorithm): the top ``n_components`` principal components,
    in order, as the rows of a (k, D) float32 tensor on the data's device.
    Options: :class:`RunConfig` (defaults lr=0.5, log_every=10).

    Batch form ``dW = eta * (y^T x - tril(y^T y) W) / B`` with ``y = x W^T``; rows start as random unit
    vectors (seeded) and converge to unit norm; the result is renormalised to exactly unit rows and
    each row's sign is fixed so its largest-|.| entry is positive. Scale-free step
    ``eta = lr (1 - t / T) / lambda_hat`` (:mod:`hebb_utils.schedule`), so the defaults converge on
    data of any overall scale. ``backend``: "torch" (:func:`sanger_step`), "triton" (the fused kernel
    of ``hebb_utils.kernels``), or "auto" (Triton on CUDA when available).
    Raises RuntimeError if the weights stop being finite (lr too large).
    """
    def step_of(data):
        if resolve_backend(backend, data.device) == "triton":
            from ..kernels import sanger_step_triton  # lazy: needs triton

            return sanger_step_triton
        return sanger_step

    return _sanger_run(X, n_components, options, step_of)


def _sanger_run(X, n_components: int, options: dict, step_of) -> torch.Tensor:
    """Sanger's schedule and run loop; step_of(data) gives step(W, x_centred (B, D), eta) -> W, the
    one place the single-process and the data-parallel rules (hebb_utils.distributed) differ."""
    k = positive_int("n_components", n_components)
    cfg = RunConfig.of("sanger", options)
    data, run = _start("sanger", X, cfg, k)
    step = step_of(data)
    W = _random_rows(k, data.dim, run.gen, data.device)  # (k, D)
    mean, lam = _prepare(data, cfg, run.gen)
    run.log(W)
    for xb in run:
        W = step(W, xb - mean, run.lr / lam)
        run.watch(W)
    run.finish(W)
    return fix_signs(W / W.norm(dim=1, keepdim=True))


def oja(X, *, backend: str = "auto", **options) -> torch.Tensor:
    """Oja's rule ``dw = eta * <y (x - y w)>_batch``, ``y = w.x``: the first principal component,
    a unit (D,) vector (sign: largest-|.| entry positive). It is Sanger's rule with one output, so
    every option is as in :func:`sanger`; the history's "norm" shows |w| converging to 1 by itself.
    """
    return sanger(X, 1, backend=backend, **options)[0]


# ------------------------------------------------------------------------------------------------
# Sanger and Oja, data-parallel (torchrun): the batch terms are all-reduced


def sanger_step_parallel(W: torch.Tensor, x: torch.Tensor, lr: float, n: int) -> torch.Tensor:
    """One Sanger step on a global batch of n rows of which this rank holds x (b, D), IN PLACE:
    W += lr * (sum over all ranks of y^T x - tril(y^T y) W) / n. With one process: hebbian.sanger_step."""
    dW = all_sum(_sanger_terms(W, x), rank_world()[1])  # (k, D)
    return W.add_(dW / n, alpha=lr)


def sanger_parallel(X, n_components: int, **options) -> torch.Tensor:
    """hebbian.sanger, data-parallel: the top principal components as (k, D) rows.

    Every rank runs the same schedule on the same data stream (the mean and lambda_hat passes
    included, so they agree without communication) and takes its slice of each global batch; the
    batch terms are all-reduced. Options as hebbian.sanger (RunConfig; batch_size is global).
    """
    rank, world = rank_world()

    def step(W, x, eta):  # x: the whole global batch, centred; this rank steps on its slice
        lo, hi = batch_slice(x.shape[0], rank, world)
        return sanger_step_parallel(W, x[lo:hi], eta, x.shape[0])

    return _sanger_run(X, n_components, options, lambda data: step)


def oja_parallel(X, **options) -> torch.Tensor:
    """hebbian.oja, data-parallel: the first principal component, a unit (D,) vector."""
    return sanger_parallel(X, 1, **options)[0]


def top_eigenvectors(X, k: int, *, center: bool = True, return_eigenvalues: bool = False,
                     batch_size: int = 8192):
    """Exact top-k eigenvectors of C (covariance with ``center=True``, else <x x^T>) with
    ``torch.linalg.eigh`` in float64: (k, D) rows by decreasing eigenvalue, each sign fixed like the
    learned ones, returned as float32 on the data's device (and the (k,) float64 eigenvalues with
    ``return_eigenvalues=True``). Accepts the same inputs as the rules.
    """
    data = Stream(X, batch_size, shuffle=False)
    k = positive_int("k", k)
    if k > data.dim:
        raise ValueError(f"k={k}: at most D={data.dim} eigenvectors exist")
    _, C = moments(data, center)
    evals, evecs = torch.linalg.eigh(C)  # ascending
    order = torch.argsort(evals, descending=True)[:k]
    V = fix_signs(evecs[:, order].T).to(torch.float32)
    return (V, evals[order]) if return_eigenvalues else V
