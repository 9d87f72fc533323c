"""The PCA family of Hebbian rules (PAPER.md rules 1-4): plain Hebb, Hebb with decay, the
recurrent all-to-all circuit, Oja, Sanger (GHA) and Hebbian ICA, plus an exact reference.

Conventions shared by every rule here
-------------------------------------
Data ``X`` is one of
  * a (samples, D) ``torch.Tensor`` or ``numpy.ndarray`` (kept on its device, used as float32);
    it is reshuffled every epoch with the seeded generator (``shuffle=True``);
  * a *re-iterable* of (B, D) batches (a list, a ``DataLoader``...), iterated once per pass, or
  * a zero-argument *callable* returning a fresh iterator of (B, D) batches each time it is called
    (for data streamed from disk). A batch may also be a tuple/list whose first item is the (B, D)
    batch (``DataLoader(TensorDataset(X))`` yields ``[x]``). Batches are used in the order the
    iterable gives them; a one-shot iterator (a generator object) is refused because the data is
    read more than once (one pass for the mean when ``center=True``, one per epoch).

``center=True`` (default) subtracts the data mean first, so ``C`` is the covariance and the rules
learn principal components; with ``center=False``, ``C = <x x^T>``.

Step size. Every rule multiplies its update by ``eta_t = lr_t / scale`` with
``lr_t = lr * (1 - t / T)`` for update t = 0 .. T-1 of a run of T planned updates (linear decay
to zero; ``lr_decay=False``: constant ``lr``). ``scale`` is ``lambda_hat``, the top eigenvalue of
``C`` estimated by power iteration on a sample of up to ``scale_rows`` rows (a seeded random
subset of a tensor, the first batches of an iterable); the recurrent circuit uses ``alpha`` and
ICA, which runs on whitened data, uses 1 instead (see each function). Multiplying the data by s
multiplies both the Hebbian term and ``lambda_hat`` by s^2, so the same ``lr`` works on data of any
overall scale, and ``eta * lambda_1 ~ lr`` keeps the linearised dynamics stable for lr < 1.
The decay removes the stochastic jitter that a constant step leaves: the last updates are tiny
and average over many batches. (A 1/t schedule, the textbook Robbins-Monro choice, either decays
too fast to converge the minor components or leaves too large a final step; the linear decay did
better on the spectra tried: flat, 1/i power law, Student-t tails.)
Knowing T needs the number of batches per epoch: a tensor has ceil(n / batch_size); an iterable's
batches are counted during its first full pass (the mean pass when ``center=True``, else one
extra counting pass).

Heavy tails. A finite step under-weights single samples that carry a large share of the variance
(a kick ``eta |x|^2 / B >> 1`` overshoots), so on extremely heavy-tailed data (e.g. one sample
making 40% of an eigenvalue) the order of close components can differ from the exact
eigendecomposition; a larger ``batch_size`` shrinks the kicks.

Length of a run. ``epochs`` passes over the data, or ``steps`` updates, whichever ends first; with
both ``None`` (default) it runs whole epochs until at least ``DEFAULT_MIN_STEPS`` updates are made
(one epoch of a large data set, several of a small one).

Convergence curves. Pass ``history=[]`` and a ``reference`` (a (D,) vector or (k, D) basis, e.g.
from :func:`top_eigenvectors`); every ``log_every`` steps (and at the last step) a dict
``{"step", "epoch", "lr", "norm", "cos", "subspace_error"}`` is appended (keys that need a
reference only with one; ``lr`` is ``eta_t * scale``, the step in units of 1/lambda_hat).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

import numpy as np
import torch

from .backend import resolve_backend
from .metrics import amari_distance, component_cosines, subspace_error

__all__ = [
    "HebbResult",
    "hebb",
    "hebb_with_decay",
    "recurrent_hebb",
    "oja",
    "sanger",
    "sanger_step",
    "hebbian_ica",
    "top_eigenvectors",
    "estimate_top_eigenvalue",
]

DEFAULT_MIN_STEPS = 2000  # updates made when neither epochs nor steps is given
MOMENT_CHUNK = 8192  # rows per chunk when a tensor is summed in float64


# ----------------------------------------------------------------------------------------------
# input handling


def _as_float_matrix(x, name: str, dim: int | None = None, where: str = "") -> torch.Tensor:
    """A finite, non-empty (rows, D) float32 tensor, or a ValueError that says what is wrong."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not torch.is_tensor(x):
        raise ValueError(f"{name}{where}: expected a (samples, D) tensor or array, got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{name}{where}: expected 2 dimensions (samples, D), got shape {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name}{where}: empty, shape {tuple(x.shape)}; need at least one row and one column")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name}{where}: has D={x.shape[1]} columns, expected D={dim} like the first batch")
    if not (x.is_floating_point() or x.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)):
        raise ValueError(f"{name}{where}: expected real numbers, got dtype {x.dtype}")
    x = x.to(torch.float32)
    if not torch.isfinite(x).all():
        raise ValueError(f"{name}{where}: contains NaN or inf; clean or drop those rows first")
    return x


class _Data:
    """The input as a source of (B, D) float32 batches that can be read several times."""

    def __init__(self, X, batch_size: int, shuffle: bool = True, name: str = "X"):
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r}: expected a positive integer")
        self.name, self.batch_size, self.shuffle = name, batch_size, shuffle
        self.tensor: torch.Tensor | None = None
        self.source: Callable[[], Iterator] | None = None
        if torch.is_tensor(X) or isinstance(X, np.ndarray):
            self.tensor = _as_float_matrix(X, name)
            self.n, self.dim = self.tensor.shape
            self.device = self.tensor.device
            self.n_batches = -(-self.n // batch_size)
            return
        if isinstance(X, (str, bytes)):
            raise ValueError(f"{name}: expected a (samples, D) tensor/array or an iterable of batches, got a string")
        if callable(X):
            self.source = X
        elif isinstance(X, Iterable):
            if iter(X) is X:
                raise ValueError(
                    f"{name} is a one-shot iterator ({type(X).__name__}); the data is read more than once: "
                    "pass a list of batches, a DataLoader, or a zero-argument function returning a fresh iterator"
                )
            self.source = lambda: iter(X)
        else:
            raise ValueError(
                f"{name}: expected a (samples, D) tensor/array, an iterable of (B, D) batches or a "
                f"function returning one, got {type(X).__name__}"
            )
        first = next(iter(self.source()), None)
        if first is None:
            raise ValueError(f"{name}: the iterable yields no batches; the data is empty")
        first = _as_float_matrix(self._unpack(first), name, where=" (batch 0)")
        self.n, self.dim, self.device = None, first.shape[1], first.device
        self.n_batches = None  # counted on the first full pass

    @staticmethod
    def _unpack(batch):
        return batch[0] if isinstance(batch, (tuple, list)) else batch

    def batches(self, gen: torch.Generator | None = None, chunk: int | None = None) -> Iterator[torch.Tensor]:
        """One pass. A tensor is cut into batches (shuffled when gen is given and shuffle=True)."""
        if self.tensor is not None:
            size = chunk or self.batch_size
            order = None
            if gen is not None and self.shuffle:
                order = torch.randperm(self.n, generator=gen).to(self.device)
            for start in range(0, self.n, size):
                if order is None:
                    yield self.tensor[start : start + size]
                else:
                    yield self.tensor[order[start : start + size]]
            return
        count = rows = 0
        for i, b in enumerate(self.source()):
            b = _as_float_matrix(self._unpack(b), self.name, self.dim, where=f" (batch {i})").to(self.device)
            count, rows = count + 1, rows + b.shape[0]
            yield b
        if count == 0:
            raise ValueError(f"{self.name}: the iterable yielded no batches on a later pass; pass a re-iterable")
        if self.n_batches is None:
            self.n_batches, self.n = count, rows
        elif count != self.n_batches:
            raise ValueError(f"{self.name}: yielded {count} batches, {self.n_batches} on an earlier pass; "
                             "every pass must give the same data")

    def batches_per_epoch(self) -> int:
        if self.n_batches is None:
            for _ in self.batches():  # one counting pass
                pass
        return self.n_batches

    def head(self, rows: int, gen: torch.Generator) -> torch.Tensor:
        """Up to `rows` rows: a seeded random subset of a tensor, or the first batches of an iterable."""
        if self.tensor is not None:
            if self.n <= rows:
                return self.tensor
            return self.tensor[torch.randperm(self.n, generator=gen)[:rows].to(self.device)]
        parts, total = [], 0
        for b in self.batches():
            parts.append(b)
            total += b.shape[0]
            if total >= rows:
                break
        return torch.cat(parts)[:rows]


def _mean(data: _Data) -> torch.Tensor:
    """(D,) float64 mean over all rows, accumulated chunk by chunk."""
    total = torch.zeros(data.dim, dtype=torch.float64, device=data.device)
    n = 0
    for b in data.batches(chunk=MOMENT_CHUNK):
        total += b.double().sum(0)
        n += b.shape[0]
    return total / n


def _moments(data: _Data, center: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and C (D, D), both float64; C = covariance (center) or <x x^T>. Two passes so a
    large mean does not cancel away the variance."""
    mean = _mean(data) if center else torch.zeros(data.dim, dtype=torch.float64, device=data.device)
    C = torch.zeros(data.dim, data.dim, dtype=torch.float64, device=data.device)
    n = 0
    for b in data.batches(chunk=MOMENT_CHUNK):
        b = b.double() - mean
        C += b.T @ b
        n += b.shape[0]
    return mean, C / n


def _check_int(value, name: str, low: int = 1) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < low):
        raise ValueError(f"{name}={value!r}: expected an integer >= {low} (or None)")


def _check_positive(value, name: str) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}={value!r}: expected a finite number > 0")


def _reference(reference, k: int, dim: int) -> torch.Tensor | None:
    """The reference as a (k, D) float64 CPU tensor, checked against the learned shape."""
    if reference is None:
        return None
    ref = torch.as_tensor(reference).detach().to("cpu", torch.float64)
    if ref.ndim == 1:
        ref = ref[None]
    if ref.shape != (k, dim):
        raise ValueError(f"reference: expected shape ({k}, {dim}) (or ({dim},) for one component), "
                         f"got {tuple(ref.shape)}")
    if not torch.isfinite(ref).all():
        raise ValueError("reference: contains NaN or inf")
    return ref


def _fix_signs(W: torch.Tensor) -> torch.Tensor:
    """Flip each row so its largest-|.| entry is positive (eigenvectors have no sign of their own)."""
    idx = W.abs().argmax(dim=1, keepdim=True)
    sign = torch.sign(W.gather(1, idx))
    sign[sign == 0] = 1
    return W * sign


# ----------------------------------------------------------------------------------------------
# the training loop shared by the rules


def estimate_top_eigenvalue(sample: torch.Tensor, mean: torch.Tensor | None = None, *, iters: int = 50,
                            gen: torch.Generator | None = None) -> float:
    """Top eigenvalue of the second moment of `sample` (B, D) (minus `mean`) by power iteration.

    Returns |C v| for the last iterate v, which lies between the Rayleigh quotient and lambda_1.
    """
    x = sample.double() - (0 if mean is None else mean.to(sample.device, torch.float64))
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


class _Run:
    """Step counting, the learning-rate schedule, epochs and history logging for one rule."""

    def __init__(self, data: _Data, *, lr, epochs, steps, lr_decay, seed, log_every, history):
        _check_positive(lr, "lr")
        _check_int(epochs, "epochs")
        _check_int(steps, "steps")
        _check_int(log_every, "log_every")
        _check_int(seed, "seed", low=0)
        if history is not None and not isinstance(history, list):
            raise ValueError(f"history: expected a list to append to (or None), got {type(history).__name__}")
        self.data, self.lr, self.lr_decay = data, float(lr), bool(lr_decay)
        self.epochs, self.steps = epochs, steps
        self._total = None
        self.log_every, self.history = log_every, history
        self.gen = torch.Generator().manual_seed(seed)
        self.step = 0
        self.epoch = 0

    @property
    def total(self) -> int:
        """T, the number of updates the run will make."""
        if self._total is None:
            per_epoch = self.data.batches_per_epoch()
            if self.epochs is None and self.steps is None:  # whole epochs, at least DEFAULT_MIN_STEPS
                self._total = per_epoch * -(-DEFAULT_MIN_STEPS // per_epoch)
            elif self.epochs is None:
                self._total = self.steps
            elif self.steps is None:
                self._total = self.epochs * per_epoch
            else:
                self._total = min(self.steps, self.epochs * per_epoch)
        return self._total

    def lr_at(self, step: int) -> float:
        """lr of update number `step` (0-based), in units of 1/scale."""
        if not self.lr_decay:
            return self.lr
        return self.lr * max(0.0, 1.0 - step / self.total)

    @property
    def current_lr(self) -> float:
        """lr of the update being made (inside the loop, `step` already counts it)."""
        return self.lr_at(self.step - 1)

    def __iter__(self) -> Iterator[torch.Tensor]:
        """Yield batches until the epochs / steps budget is spent. `step` counts the updates made,
        the one about to be made with the yielded batch included."""
        total = self.total
        while True:
            for xb in self.data.batches(self.gen):
                if self.step >= total:
                    return
                self.step += 1
                yield xb
            self.epoch += 1
            if self.step >= total:
                return

    def should_log(self) -> bool:
        return self.history is not None and self.step % self.log_every == 0

    def log(self, **values) -> None:
        self.history.append({"step": self.step, "epoch": self.epoch, "lr": self.lr_at(max(self.step - 1, 0)), **values})


def _curve_values(W: torch.Tensor, ref: torch.Tensor | None, single: bool) -> dict:
    """norm / cos / subspace_error of the current weights for the history."""
    Wd = W.detach().to("cpu", torch.float64)
    norms = Wd.norm(dim=1)
    out = {"norm": float(norms[0]) if single else norms.tolist()}
    if ref is not None:
        cos = component_cosines(Wd, ref)
        out["cos"] = float(cos[0]) if single else cos.tolist()
        if not single:
            out["subspace_error"] = subspace_error(Wd, ref)
    return out


def _prepare(data: _Data, center: bool, seed_gen: torch.Generator, scale_rows: int):
    """The data's mean (float32 on its device, zeros without centring) and lambda_hat."""
    mean64 = _mean(data) if center else torch.zeros(data.dim, dtype=torch.float64, device=data.device)
    _check_int(scale_rows, "scale_rows")
    sample = data.head(scale_rows, seed_gen)
    lam = estimate_top_eigenvalue(sample, mean64, gen=seed_gen)
    if not lam > 0:
        raise ValueError("X: has zero variance (every row equal to the mean); nothing to learn")
    return mean64.to(torch.float32), lam


def _random_rows(k: int, dim: int, gen: torch.Generator, device) -> torch.Tensor:
    """k random unit rows, (k, D) float32."""
    W = torch.randn(k, dim, generator=gen)
    return (W / W.norm(dim=1, keepdim=True)).to(device)


# ----------------------------------------------------------------------------------------------
# rule 1: plain Hebb, Hebb with decay, the recurrent circuit


class HebbResult(NamedTuple):
    """Plain Hebb run: the last weights, |w| after every step (index 0 = initial), and whether
    |w| passed `max_norm` (the run then stopped there)."""

    w: torch.Tensor  # (D,)
    norms: torch.Tensor  # (steps + 1,) float64, CPU
    diverged: bool


def hebb(X, *, lr: float = 0.1, epochs: int | None = None, steps: int | None = None, batch_size: int = 256,
         seed: int = 0, center: bool = True, shuffle: bool = True, max_norm: float = 1e20,
         scale_rows: int = 4096, reference=None, history: list | None = None, log_every: int = 1) -> HebbResult:
    """Plain Hebb, ``dw = eta * <y x>_batch`` with ``y = w.x``: in expectation ``w <- (I + eta C) w``,
    so |w| grows like (1 + lr)^t along the top eigenvector (eta = lr / lambda_hat, constant).

    The run stops cleanly, with ``diverged=True``, at the first step where |w| exceeds ``max_norm``
    (well below float32 overflow) instead of running on into inf/NaN.
    """
    _check_positive(max_norm, "max_norm")
    data = _Data(X, batch_size, shuffle)
    run = _Run(data, lr=lr, epochs=epochs, steps=steps, lr_decay=False, seed=seed,
               log_every=log_every, history=history)
    mean, lam = _prepare(data, center, run.gen, scale_rows)
    ref = _reference(reference, 1, data.dim)
    w = _random_rows(1, data.dim, run.gen, data.device)  # (1, D)
    norms = [float(w.double().norm())]
    diverged = False
    if history is not None:
        run.log(**_curve_values(w, ref, single=True))
    for xb in run:
        x = xb - mean  # (B, D)
        y = x @ w.T  # (B, 1)
        w = w + (run.current_lr / lam) * (y.T @ x) / x.shape[0]
        norm = float(w.double().norm())  # float64: squaring 1e20 would overflow float32
        norms.append(norm)
        if not math.isfinite(norm) or norm > max_norm:
            diverged = True
            if history is not None:
                run.log(**_curve_values(w, ref, single=True))
            break
        if run.should_log() and history is not None:
            run.log(**_curve_values(w, ref, single=True))
    return HebbResult(w[0], torch.tensor(norms, dtype=torch.float64), diverged)


def hebb_with_decay(X, alpha: float | None = None, *, lr: float = 0.5, epochs: int | None = None,
                    steps: int | None = None, batch_size: int = 256, seed: int = 0, center: bool = True,
                    shuffle: bool = True, lr_decay: bool = True, scale_rows: int = 4096,
                    reference=None, history: list | None = None, log_every: int = 10) -> torch.Tensor:
    """Hebb with linear weight decay, ``dw = eta * (<y x>_batch - alpha w)``, ``y = w.x``. Returns w (D,).

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
    data = _Data(X, batch_size, shuffle)
    run = _Run(data, lr=lr, epochs=epochs, steps=steps, lr_decay=lr_decay,
               seed=seed, log_every=log_every, history=history)
    mean, lam = _prepare(data, center, run.gen, scale_rows)
    if alpha is None:
        alpha = lam
    _check_positive(alpha, "alpha")
    scale = max(lam, float(alpha))
    ref = _reference(reference, 1, data.dim)
    w = _random_rows(1, data.dim, run.gen, data.device)  # (1, D)
    if history is not None:
        run.log(**_curve_values(w, ref, single=True))
    for xb in run:
        x = xb - mean
        y = x @ w.T  # (B, 1)
        w = w + (run.current_lr / scale) * ((y.T @ x) / x.shape[0] - alpha * w)
        if run.should_log() or run.step % 100 == 0:
            norm = float(w.double().norm())
            if not (1e-20 < norm < 1e20):
                raise RuntimeError(
                    f"hebb_with_decay: |w| = {norm:.3g} at step {run.step}: alpha={alpha:.4g} is too far from the "
                    f"top eigenvalue (estimated {lam:.4g}); leave alpha=None to use the estimate"
                )
            if run.should_log():
                run.log(**_curve_values(w, ref, single=True))
    if history is not None and history[-1]["step"] != run.step:
        run.log(**_curve_values(w, ref, single=True))
    return w[0]


def recurrent_hebb(X, alpha: float = 1.0, *, lr: float = 0.5, epochs: int | None = None, steps: int | None = None,
                   batch_size: int = 256, seed: int = 0, center: bool = True, shuffle: bool = True,
                   lr_decay: bool = True, reference=None, history: list | None = None,
                   log_every: int = 10) -> torch.Tensor:
    """All-to-all recurrent circuit driven by its input (unit activity y = x), every connection
    learning by Hebb with decay: ``dW_ij = eta * (<y_i y_j>_batch - alpha W_ij)``. Returns W (D, D).

    W starts at 0. With eta = lr / alpha the update reads ``W <- (1 - lr_t) W + lr_t S_batch / alpha``,
    a running average of the batch correlations S_batch, so W converges to the fixed point
    ``C / alpha`` for every alpha > 0: the circuit mirrors the input correlations.
    ``reference`` (D, D), e.g. C / alpha, adds "rel_error" = ||W - ref||_F / ||ref||_F and "cos"
    (of W and ref flattened) to the history.
    """
    _check_positive(alpha, "alpha")
    data = _Data(X, batch_size, shuffle)
    run = _Run(data, lr=lr, epochs=epochs, steps=steps, lr_decay=lr_decay, seed=seed,
               log_every=log_every, history=history)
    mean = (_mean(data) if center else torch.zeros(data.dim, dtype=torch.float64, device=data.device)).float()
    ref = None
    if reference is not None:
        ref = torch.as_tensor(reference).detach().to("cpu", torch.float64)
        if ref.shape != (data.dim, data.dim):
            raise ValueError(f"reference: expected shape ({data.dim}, {data.dim}), got {tuple(ref.shape)}")

    def values(W):
        Wd = W.detach().to("cpu", torch.float64)
        out = {"norm": float(Wd.norm())}
        if ref is not None:
            out["rel_error"] = float((Wd - ref).norm() / ref.norm())
            out["cos"] = float((Wd * ref).sum() / (Wd.norm() * ref.norm()).clamp_min(1e-300))
        return out

    W = torch.zeros(data.dim, data.dim, device=data.device)
    if history is not None:
        run.log(**values(W))
    for xb in run:
        x = xb - mean
        eta = run.current_lr / alpha
        W = W + eta * ((x.T @ x) / x.shape[0] - alpha * W)
        if run.should_log():
            run.log(**values(W))
    if history is not None and history[-1]["step"] != run.step:
        run.log(**values(W))
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
    y = x @ W.T  # (B, k)
    yy = torch.tril(y.T @ y)  # (k, k): sum over the batch of y_i y_j, j <= i
    dW = (y.T @ x - yy @ W) / x.shape[0]  # (k, D)
    return W.add_(dW, alpha=lr)


def sanger(X, n_components: int, *, lr: float = 0.5, epochs: int | None = None, steps: int | None = None,
           batch_size: int = 256, seed: int = 0, center: bool = True, shuffle: bool = True,
           lr_decay: bool = True, scale_rows: int = 4096, backend: str = "auto", reference=None,
           history: list | None = None, log_every: int = 10) -> torch.Tensor:
    """Sanger's rule (Generalized Hebbian Algorithm): the top ``n_components`` principal components,
    in order, as the rows of a (k, D) float32 tensor on the data's device.

    Batch form ``dW = eta * (y^T x - tril(y^T y) W) / B`` with ``y = x W^T``; rows start as random unit
    vectors (seeded) and converge to unit norm; the result is renormalised to exactly unit rows and
    each row's sign is fixed so its largest-|.| entry is positive. Scale-free step
    ``eta = lr (1 - t / T) / lambda_hat`` (module docstring), so the defaults converge on
    data of any overall scale. ``backend``: "torch" (:func:`sanger_step`), "triton" (the fused kernel
    of ``hebb_utils.kernels``), or "auto" (Triton on CUDA when available).
    Raises RuntimeError if the weights stop being finite (lr too large).
    """
    _check_int(n_components, "n_components")
    data = _Data(X, batch_size, shuffle)
    if n_components > data.dim:
        raise ValueError(f"n_components={n_components}: at most D={data.dim} components exist")
    run = _Run(data, lr=lr, epochs=epochs, steps=steps, lr_decay=lr_decay, seed=seed,
               log_every=log_every, history=history)
    if resolve_backend(backend, data.device) == "triton":
        from .kernels import sanger_step_triton as step  # lazy: needs triton
    else:
        step = sanger_step
    W = _random_rows(n_components, data.dim, run.gen, data.device)  # (k, D)
    mean, lam = _prepare(data, center, run.gen, scale_rows)
    ref = _reference(reference, n_components, data.dim)
    single = n_components == 1
    if history is not None:
        run.log(**_curve_values(W, ref, single))
    for xb in run:
        W = step(W, xb - mean, run.current_lr / lam)
        if run.step % log_every == 0 or run.step % 100 == 0:
            if not bool(torch.isfinite(W).all()):
                raise RuntimeError(f"sanger: weights not finite at step {run.step}; lower lr (now {lr})")
            if run.should_log():
                run.log(**_curve_values(W, ref, single))
    if not bool(torch.isfinite(W).all()):
        raise RuntimeError(f"sanger: weights not finite at the end; lower lr (now {lr})")
    if history is not None and history[-1]["step"] != run.step:
        run.log(**_curve_values(W, ref, single))
    return _fix_signs(W / W.norm(dim=1, keepdim=True))


def oja(X, *, lr: float = 0.5, epochs: int | None = None, steps: int | None = None, batch_size: int = 256,
        seed: int = 0, center: bool = True, shuffle: bool = True, lr_decay: bool = True,
        scale_rows: int = 4096, backend: str = "auto", reference=None, history: list | None = None,
        log_every: int = 10) -> torch.Tensor:
    """Oja's rule ``dw = eta * <y (x - y w)>_batch``, ``y = w.x``: the first principal component,
    a unit (D,) vector (sign: largest-|.| entry positive). It is Sanger's rule with one output, so
    every option is as in :func:`sanger`; the history's "norm" shows |w| converging to 1 by itself.
    """
    return sanger(X, 1, lr=lr, epochs=epochs, steps=steps, batch_size=batch_size, seed=seed, center=center,
                  shuffle=shuffle, lr_decay=lr_decay, scale_rows=scale_rows, backend=backend,
                  reference=reference, history=history, log_every=log_every)[0]


# ----------------------------------------------------------------------------------------------
# exact reference


def top_eigenvectors(X, k: int, *, center: bool = True, return_eigenvalues: bool = False,
                     batch_size: int = 8192):
    """Exact top-k eigenvectors of C (covariance with ``center=True``, else <x x^T>) with
    ``torch.linalg.eigh`` in float64: (k, D) rows by decreasing eigenvalue, each sign fixed like the
    learned ones, returned as float32 on the data's device (and the (k,) float64 eigenvalues with
    ``return_eigenvalues=True``). Accepts the same inputs as the rules.
    """
    data = _Data(X, batch_size, shuffle=False)
    _check_int(k, "k")
    if k > data.dim:
        raise ValueError(f"k={k}: at most D={data.dim} eigenvectors exist")
    _, C = _moments(data, center)
    evals, evecs = torch.linalg.eigh(C)  # ascending
    order = torch.argsort(evals, descending=True)[:k]
    V = _fix_signs(evecs[:, order].T)
    V = V.to(torch.float32)
    return (V, evals[order]) if return_eigenvalues else V


# ----------------------------------------------------------------------------------------------
# rule 4: Hebbian ICA


def hebbian_ica(X, n_components: int, *, lr: float = 0.05, epochs: int | None = None, steps: int | None = None,
                batch_size: int = 256, seed: int = 0, shuffle: bool = True, lr_decay: bool = True,
                whiten: str = "eigh", reference=None, history: list | None = None,
                log_every: int = 10) -> torch.Tensor:
    """Independent components by the natural-gradient infomax rule on whitened data. Returns the
    (k, D) unmixing rows for the CENTRED ORIGINAL data: ``S = (X - X.mean(0)) @ W.T`` are the sources.

    1. Whitening (``z = V (x - mean)``, V (k, D), Cov z = I): ``whiten="eigh"`` uses the exact top-k
       eigenvectors of the covariance, ``V = diag(lambda^-1/2) E^T``; ``whiten="sanger"`` uses the
       Sanger components (:func:`sanger`) scaled by their measured variances (approximately white).
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
    "amari" = :func:`amari_distance` (W, A) (0 = perfect separation).
    """
    _check_int(n_components, "n_components")
    if whiten not in ("eigh", "sanger"):
        raise ValueError(f"whiten={whiten!r}: expected 'eigh' or 'sanger'")
    data = _Data(X, batch_size, shuffle)
    if n_components > data.dim:
        raise ValueError(f"n_components={n_components}: at most D={data.dim} components exist")
    run = _Run(data, lr=lr, epochs=epochs, steps=steps, lr_decay=lr_decay, seed=seed,
               log_every=log_every, history=history)
    k = n_components
    if whiten == "eigh":
        mean64, C = _moments(data, center=True)
        evals, evecs = torch.linalg.eigh(C)
        order = torch.argsort(evals, descending=True)[:k]
        lam, E = evals[order], evecs[:, order]  # (k,), (D, k)
        if not lam[-1] > 1e-12 * lam[0].clamp_min(1e-300):
            raise ValueError(f"n_components={k}: the data has fewer than {k} directions with variance")
        V = (E / lam.sqrt()).T  # (k, D)
    else:
        E = sanger(X, k, batch_size=batch_size, seed=seed, shuffle=shuffle, backend="torch").double()
        mean64 = _mean(data)
        var = torch.zeros(k, dtype=torch.float64, device=data.device)
        n = 0
        for b in data.batches(chunk=MOMENT_CHUNK):
            var += ((b.double() - mean64) @ E.T).square().sum(0)
            n += b.shape[0]
        var /= n
        if not var.min() > 1e-12 * var.max().clamp_min(1e-300):
            raise ValueError(f"n_components={k}: the data has fewer than {k} directions with variance")
        V = E / var.sqrt()[:, None]
    V, mean = V.to(torch.float32), mean64.to(torch.float32)

    A = None
    if reference is not None:
        A = torch.as_tensor(reference).detach().to("cpu", torch.float64)
        if A.ndim != 2 or A.shape != (data.dim, k):
            raise ValueError(f"reference: expected the ({data.dim}, {k}) mixing matrix, got {tuple(A.shape)}")

    def values(B):
        out = {"norm": (B.detach().double().norm(dim=1)).tolist()}
        if A is not None:
            unit = B / B.norm(dim=1, keepdim=True)  # as returned: unit-variance sources
            out["amari"] = amari_distance((unit @ V).detach().to("cpu", torch.float64), A)
        return out

    Bm = torch.linalg.qr(torch.randn(k, k, generator=run.gen, dtype=torch.float64))[0]
    Bm = Bm.to(torch.float32).to(data.device)  # (k, k) random rotation
    eye = torch.eye(k, device=data.device)
    if history is not None:
        run.log(**values(Bm))
    for xb in run:
        z = (xb - mean) @ V.T  # (B, k) whitened
        y = z @ Bm.T  # (B, k)
        grad = eye - (2.0 * torch.tanh(y)).T @ y / y.shape[0]  # (k, k)
        Bm = Bm + run.current_lr * grad @ Bm
        if run.step % log_every == 0 or run.step % 100 == 0:
            if not bool(torch.isfinite(Bm).all()):
                raise RuntimeError(f"hebbian_ica: weights not finite at step {run.step}; lower lr (now {lr})")
            if run.should_log():
                run.log(**values(Bm))
    if not bool(torch.isfinite(Bm).all()):
        raise RuntimeError(f"hebbian_ica: weights not finite at the end; lower lr (now {lr})")
    if history is not None and history[-1]["step"] != run.step:
        run.log(**values(Bm))
    Bm = Bm / Bm.norm(dim=1, keepdim=True)  # unit variance of y on white z
    return _fix_signs(Bm @ V)
