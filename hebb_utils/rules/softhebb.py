"""SoftHebb with lateral support: a topographic Hebbian dictionary (PAPER.md, "SoftHebb with lateral support").

For a batch x (B, D) of batch-normalised inputs and weights W (N, D):

    u = x W^T                                   (B, N)
    y = softmax(t_invert * u)                   over the N outputs, stably
    y = -y, then y[b, k_b] = +softmax[b, k_b]   k_b = argmax_j u_bj (per-sample winner)
    y[b, j] += gain * h(j, k_b) * y[b, k_b]     h: the neighbourhood of k_b on the grid (published:
                                                1 on a disc of radius 1; or a Gaussian of the distance)
    dW = y^T x - s[:, None] * W                 s_j = sum_b y_bj u_bj
    W += lr * dW / (max |dW| + 1e-30)

A LateralSchedule anneals the neighbourhood's width and gain over training, as a Kohonen map
anneals its sigma; training (training.py) then uses schedule.at(step / (steps - 1)) at each step.

This file is the torch reference of one step; the Triton kernels (hebb_utils/kernels/) must match it.
The lateral support is lateral.py, the layer layer.py, the training loop training.py.
`legacy_batch_winner=True` reproduces the published flip `y[:, winners] = -y[:, winners]`, where a
column that wins for any sample turns Hebbian for every sample of the batch.
"""
from __future__ import annotations

import math

import torch

from ..checks import finite_float, matrix
from ..constants import DW_EPS
from ..settings import published_hint
from .lateral import Lateral, check_lateral

__all__ = ["post_synaptic", "post_synaptic_sums", "plastic_update", "raw_update", "apply_update", "update_step",
           "check_t_invert", "check_lr", "LR_MAX", "TINY"]

# The largest lr accepted: a step moves each weight by at most lr, and lr 1e38 overflows float32.
LR_MAX = 1e4
# float32's smallest normal number. The softmax is kept free of denormals by construction: an exponent
# below log(TINY) gives exactly 0, and so does a probability below TINY. A denormal operand makes a CPU's
# multiply-add tens of times slower (the step at t_invert 10 ran 1.5x slower with them), GPUs flush
# them to 0 anyway, and a value below 1.2e-38 cannot move a weight of float32 precision.
TINY = torch.finfo(torch.float32).tiny
LOG_TINY = float(torch.log(torch.tensor(TINY, dtype=torch.float64)))  # -87.336...


def post_synaptic(
    u: torch.Tensor, t_invert: float, lateral: Lateral | None = None, legacy_batch_winner: bool = False
) -> torch.Tensor:
    """Steps 2-4: y (B, N) from the pre-activations u (B, N); checks its inputs, then runs the
    very function training runs (`post_synaptic_sums`).

    softmax(t_invert * u) over N, computed as softmax(t_invert * (u - max_j u)) so that it stays
    finite for any t_invert up to float32's largest number (beyond it is refused) and any finite u;
    y = -softmax, except at each sample's winner
    k_b = argmax_j u_bj (ties: lowest index), where y = +softmax. With legacy_batch_winner, every
    column that wins for some sample is +softmax for all samples. Then lateral support around k_b
    (per sample in both modes) with w_b = y[b, k_b] taken before any lateral term.
    """
    u = matrix("u", u)
    return post_synaptic_sums(u, check_t_invert(t_invert), check_lateral(lateral, u.shape[1], "u.shape[1]"), legacy_batch_winner)[0]


def post_synaptic_sums(u, t_invert, lateral, legacy_batch_winner):
    """(y (B, N), s (N,) = sum_b y_bj u_bj), unchecked: what training runs, and what
    kernels.post_synaptic_triton returns."""
    z = t_invert * (u - u.amax(dim=1, keepdim=True))  # (B, N), 0 at each sample's maximum
    soft = torch.softmax(z.masked_fill_(z < LOG_TINY, -math.inf), dim=1)  # no denormal exp(z)
    soft.masked_fill_(soft < TINY, 0.0)  # e / sum >= TINY / N can still fall below it
    winners = u.argmax(dim=1)  # (B,) first index of the maximum
    if legacy_batch_winner:
        won = torch.zeros(u.shape[1], dtype=torch.bool, device=u.device)
        won[winners] = True  # (N,) columns that won for any sample in the batch
        y = torch.where(won, soft, -soft)
    else:
        y = -soft
        y.scatter_(1, winners[:, None], soft.gather(1, winners[:, None]))
    if lateral is not None:
        lateral.add_support(y, winners)  # argmax winners: in range, no check per step
    return y, (y * u).sum(dim=0)


def plastic_update(x: torch.Tensor, W: torch.Tensor, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Step 5: dW (N, D) = y^T x - s[:, None] * W with s_j = sum_b y_bj u_bj, divided by max|dW| + 1e-30.

    Checks its inputs (x is converted to W's float dtype), then runs training's `raw_update`."""
    W = matrix("W", W)
    x = matrix("x", x, W.shape[1], dtype=W.dtype, cols_name="W.shape[1]")
    u, y = (matrix(name, t, dtype=W.dtype) for name, t in (("u", u), ("y", y)))
    for name, t in (("u", u), ("y", y)):
        if t.shape != (x.shape[0], W.shape[0]):
            raise ValueError(f"{name} has shape {tuple(t.shape)}: expected (B, N) = {(x.shape[0], W.shape[0])} from x, W")
    dW = raw_update(x, W, y, (y * u).sum(dim=0))
    return dW / (_max_abs(dW) + DW_EPS)


def raw_update(x, W, y, s):
    # (N, D): the matrix product on cuBLAS / BLAS, then one fused pass for - s_j W_j (no temporary)
    return (y.T @ x).addcmul_(s[:, None], W, value=-1.0)


def apply_update(W: torch.Tensor, dW: torch.Tensor, lr: float) -> None:
    """W += lr * dW / (max|dW| + 1e-30), in place: what kernels.apply_update_triton does. No input checks."""
    # one fused pass, and no host sync: the max stays on the device as a 0-d tensor
    W.addcdiv_(dW, _max_abs(dW) + DW_EPS, value=lr)


def _max_abs(t: torch.Tensor) -> torch.Tensor:
    lo, hi = torch.aminmax(t)  # one pass, no |t| temporary
    return torch.maximum(hi, -lo)


def update_step(W, x, t_invert, lr, lateral, legacy_batch_winner, post_and_sums, apply_update):
    """One whole step on normalised x (B, D), in place, unchecked: u (B, N) = x W^T, then
    post_and_sums and apply_update of a backend (backend.step_functions). Returns u."""
    u = x @ W.T  # (B, N)
    y, s = post_and_sums(u, t_invert, lateral, legacy_batch_winner)
    apply_update(W, raw_update(x, W, y, s), lr)
    return u


def check_t_invert(t_invert) -> float:
    """t_invert as a float in (0, float32 max], or a clear error."""
    # beyond float32's largest number, t_invert * 0 at the winner is inf * 0 = NaN
    return finite_float("t_invert", t_invert, minimum=0, strict_minimum=True, maximum=torch.finfo(torch.float32).max,
                        hint=published_hint("t_invert"))


def check_lr(lr) -> float:
    """lr as a float in [0, LR_MAX], or a clear error."""
    return finite_float("lr", lr, minimum=0, maximum=LR_MAX, hint=published_hint("lr"))

