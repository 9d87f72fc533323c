"""Hebbian matching pursuit: a dictionary whose code holds several features at once.

A one-winner layer (SoftHebb, a Kohonen map) gives each input one unit; read with its k strongest
responses it is not a sparse code, because nothing makes the second unit explain what the first
left over. Here the units explain each other away, and each learns from what is left.

Encoding, for unit rows W (N, D), |w_j| = 1, and x (B, D):

    c = x W^T                                (B, N) each unit's drive
    k times (a sample stops early once |residual| < residual_threshold):
        j_b  = argmax_j relu(c_bj)           the strongest unit wins (the first on ties)
        v_b  = relu(c_b,j_b)                 its share
        a_bj += v_b                          (a unit may win again: its share grows)
        c_b  -= v_b G[j_b]                   removed from every unit's drive through the overlaps G = W W^T

which is x's residual r_b = x_b - a_b W projected on every unit, updated without forming r: the
matching-pursuit encoder of SAELens' MatchingPursuitSAE (sae_lens/saes/matching_pursuit_sae.py,
`_encode_matching_pursuit`, with max_iterations = k and stop_on_duplicate_support=False), computed
through the Gram matrix. k = 1 is winner-take-all: a = relu(w_j . x) on the best-matching unit.

Learning, local to each unit (it needs its own code a_j and the residual it is shown):

    h_j += sum_b a_bj^2                      the unit's running sum of its squared codes (from h0)
    w_j += lr * sum_b a_bj (x_b - a_b W) / h_j,   then each row rescaled to |w_j| = 1

offset=True adds an always-on unit: x is coded as b + aW (the pursuit runs on x - b), and b
learns like a unit whose code is 1 on every sample, b += lr * sum_b (x_b - b - a_b W) / n with n the
rows seen so far: the running mean of what the units leave unexplained, starting from the first
batch's mean (from zero it settles, measured on a toy, with a third of the constant still in the
rows: MMCS 0.85 against 0.96 from the mean; the mean keeps the mean code in b, a fixed point too,
as the residual's mean is zero there; the rows then learn the features around it). Data with a constant part
(SAELens' synthetic model adds a bias of norm 1 to every sample) need it; a non-negative code cannot
reach a constant with unit-norm rows, and centring on the data mean would subtract the mean code too.

1 / h_j is a per-unit step that shrinks as the unit is used (a running least-squares fit of the
unit to the inputs it explains); a unit that never wins does not move. The true dictionary is a
fixed point: an input that is an exact non-negative combination of orthogonal units, or one unit
times a positive coefficient, is coded exactly and leaves a zero residual, so no unit moves.
With k = 1 the update is Oja's rule for the winner, w_j += lr a_j (x - a_j w_j) / h_j.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..checks import Grid, finite_float, matrix, positive_int
from .schedule import seeded_generator

__all__ = ["PursuitLinear", "pursuit_encode", "pursuit_update", "pursuit_sums", "apply_pursuit_sums", "check_k",
           "check_residual_threshold"]


def check_k(k) -> int:
    return positive_int("k", k, hint="units per input (matching pursuit's iterations); 1 is winner-take-all")


def check_residual_threshold(threshold) -> float:
    return finite_float("residual_threshold", threshold, minimum=0,
                        hint="stop coding a sample once |x - aW| falls below it; 0: always k units")


@torch.no_grad()
def pursuit_encode(x: torch.Tensor, W: torch.Tensor, k: int, residual_threshold: float = 0.0) -> torch.Tensor:
    """The codes a (B, N) of x (B, D) on unit rows W (N, D): k steps of matching pursuit (module
    docstring), unchecked (the layer checks its inputs once). residual_threshold > 0: a sample whose
    residual norm has fallen below it takes no further unit."""
    c = x @ W.T  # (B, N) drives
    gram = W @ W.T  # (N, N) overlaps
    a = torch.zeros_like(c)
    residual = x.clone() if residual_threshold > 0 else None  # (B, D), only to test the threshold
    done = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    for _ in range(k):
        v, j = c.clamp_min(0.0).max(dim=1)  # (B,) each: the strongest drive (ReLU'd) and its unit
        if residual is not None:
            v = v.masked_fill(done, 0.0)
        a.scatter_add_(1, j[:, None], v[:, None])
        c -= v[:, None] * gram[j]  # (B, N): the winner's share removed through the overlaps
        if residual is not None:
            residual -= v[:, None] * W[j]
            done |= residual.norm(dim=1) < residual_threshold
            if bool(done.all()):
                break
    return a


@torch.no_grad()
def pursuit_update(W: torch.Tensor, usage: torch.Tensor, x: torch.Tensor, a: torch.Tensor, lr: float) -> None:
    """In place: usage += sum_b a_b^2, W += lr * a^T (x - aW) / usage, rows rescaled to norm 1 (a row
    of norm 0 stays 0). W (N, D), usage (N,), x (B, D), a (B, N) its codes."""
    hebbian, squared, _ = pursuit_sums(x, W, a)
    apply_pursuit_sums(W, usage, hebbian, squared, lr)


def pursuit_sums(x: torch.Tensor, W: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The batch sums of the update: a^T (x - aW) (N, D), each unit's code times what the code leaves
    unexplained, sum_b a_b^2 (N,), and the residuals' sum sum_b (x_b - a_b W) (D,) (the offset's step).
    x is what the units code (x - b with an offset). Data-parallel training adds them over the ranks."""
    residual = x - a @ W  # (B, D)
    return a.T @ residual, (a * a).sum(dim=0), residual.sum(dim=0)


@torch.no_grad()
def apply_pursuit_sums(W: torch.Tensor, usage: torch.Tensor, hebbian: torch.Tensor, squared_codes: torch.Tensor,
                       lr: float, bias: torch.Tensor | None = None, seen: torch.Tensor | None = None,
                       residual_sum: torch.Tensor | None = None, rows: int = 0) -> None:
    """The step of pursuit_update from its batch sums: hebbian (N, D) = a^T (x - aW), squared_codes (N,)
    = sum_b a_b^2 (summed over every rank's rows in data-parallel training). With an offset, bias (D,)
    takes the step lr * residual_sum / seen after seen (a 0-d tensor, the rows seen so far) += rows."""
    usage += squared_codes
    W += (lr * hebbian) / usage.clamp_min(torch.finfo(usage.dtype).tiny)[:, None]
    W /= W.norm(dim=1, keepdim=True).clamp_min(torch.finfo(W.dtype).tiny)
    if bias is not None and rows > 0:
        seen += rows
        bias += (lr * residual_sum) / seen


class PursuitLinear(nn.Module):
    """A dictionary of out_features unit-norm rows learned by Hebbian matching pursuit: forward(x) -> codes.

    k: units per input (the pursuit's iterations, a unit may be counted twice); residual_threshold:
    stop coding a sample once its residual norm falls below it (0: never). grid: where the units
    lie for a map, (rows, cols) with rows * cols = out_features, or None. h0: the starting value of
    each unit's running sum of squared codes, in the squared units of the codes (1 for inputs of
    norm about 1): it bounds the first steps. The weights start as rows of torch.Generator(seed)'s
    normal draws on the CPU, rescaled to norm 1 (a seed gives the same start on every device).
    The inputs are used as they are (no normalisation); offset=True learns a constant b that every input
    is coded around (x ~ b + aW: module docstring), for data with a constant part. It trains through rules.training's loop (train_softhebb_parallel) like SoftHebbLinear.
    """

    lateral = None  # no lateral support (the training loop reads these two of SoftHebb's settings)
    legacy_batch_winner = False

    def __init__(self, in_features: int, out_features: int, k: int = 1, residual_threshold: float = 0.0, *,
                 grid=None, h0: float = 1.0, offset: bool = False, seed: int | None = None, device=None,
                 dtype=torch.float32):
        super().__init__()
        self.in_features = positive_int("in_features", in_features)
        self.out_features = positive_int("out_features", out_features)
        self.k = check_k(k)
        if self.k > self.out_features:
            raise ValueError(f"k={k}: expected at most out_features={out_features} units per input")
        self.residual_threshold = check_residual_threshold(residual_threshold)
        self.grid = None if grid is None else Grid.of(grid, n=self.out_features, what="out_features")
        self.h0 = finite_float("h0", h0, minimum=0, strict_minimum=True, hint="a squared code; 1 for inputs of norm ~1")
        self.seed = seed if seed is None else positive_int("seed", seed, minimum=0)
        W = torch.randn(self.out_features, self.in_features, generator=seeded_generator(self.seed, "cpu"),
                        dtype=torch.float64)
        W /= W.norm(dim=1, keepdim=True)
        self.register_buffer("weight", W.to(dtype=dtype, device=device))
        self.register_buffer("usage", torch.full((self.out_features,), self.h0, dtype=dtype, device=device))
        if not isinstance(offset, bool):
            raise ValueError(f"offset={offset!r}: expected True (learn a constant b, x ~ b + aW) or False")
        self.offset = offset
        # b (D,) and the rows it has seen; zero and unused without an offset (one state_dict layout for both)
        self.register_buffer("bias", torch.zeros(self.in_features, dtype=dtype, device=device))
        self.register_buffer("bias_seen", torch.zeros((), dtype=torch.float64, device=device))

    def extra_repr(self) -> str:
        grid = "" if self.grid is None else f", grid={self.grid.shape}"
        return (f"in_features={self.in_features}, out_features={self.out_features}, k={self.k}, "
                f"residual_threshold={self.residual_threshold}{grid}, offset={self.offset}")

    def get_extra_state(self) -> dict:
        return {"k": self.k, "residual_threshold": self.residual_threshold, "offset": self.offset}

    def set_extra_state(self, state: dict) -> None:
        if state != self.get_extra_state():
            raise ValueError(f"state_dict is of a PursuitLinear with {state}, this one has {self.get_extra_state()}: "
                             "build it with the same k, residual_threshold and offset before loading")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.checked_input("x", x, 0)
        return pursuit_encode(x - self.bias, self.weight, self.k, self.residual_threshold)  # (B, N)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """x_hat (B, D) = codes (B, N) @ W + b (b = 0 without an offset)."""
        codes = matrix("codes", codes, self.out_features, dtype=self.weight.dtype, device=self.weight.device,
                       cols_name="out_features")
        return codes @ self.weight + self.bias

    @torch.no_grad()
    def train_step(self, x: torch.Tensor, lr: float, functions=None, progress: float | None = None) -> torch.Tensor:
        """One step on a checked batch x (B, D): code it, then update the winners; returns the codes (B, N).
        functions and progress are the training loop's (SoftHebb's backend and schedule), unused here."""
        return self.apply_sums(x, lr, lambda sums: sums)

    def apply_sums(self, x: torch.Tensor, lr: float, reduce) -> torch.Tensor:
        """Code x (B, D), then step on the batch sums as `reduce` returns them (identity on one process, the
        sum over the ranks in data-parallel training: one (N + 1, D + 1) tensor, one all-reduce). Returns
        the codes (B, N)."""
        if self.offset and float(self.bias_seen) == 0:  # b starts at the first (global) batch's mean
            first = reduce(torch.cat([x.sum(dim=0), x.new_tensor([x.shape[0]])]))
            self.bias.copy_(first[:-1] / first[-1].clamp_min(1))
        centred = x - self.bias
        a = pursuit_encode(centred, self.weight, self.k, self.residual_threshold)  # (B, N)
        hebbian, squared, residual_sum = pursuit_sums(centred, self.weight, a)
        N, D = hebbian.shape
        sums = torch.zeros(N + 1, D + 1, dtype=hebbian.dtype, device=hebbian.device)
        sums[:N, :D], sums[:N, D], sums[N, :D], sums[N, D] = hebbian, squared, residual_sum, x.shape[0]
        sums = reduce(sums)
        if self.offset:
            apply_pursuit_sums(self.weight, self.usage, sums[:N, :D], sums[:N, D], lr, self.bias, self.bias_seen,
                               sums[N, :D], int(sums[N, D]))
        else:
            apply_pursuit_sums(self.weight, self.usage, sums[:N, :D], sums[:N, D], lr)
        return a

    @torch.no_grad()
    def responses(self, X: Any, batch_size: int = 4096) -> torch.Tensor:
        """The codes (samples, N) of X, batched, on the layer's device."""
        batch_size = positive_int("batch_size", batch_size)
        X = self.checked_input("X", X, 0)
        return torch.cat([self(X[i: i + batch_size]) for i in range(0, X.shape[0], batch_size)])

    def checked_input(self, name: str, x, batch: int, min_rows: int | None = None) -> torch.Tensor:
        """x as a finite (rows, in_features) tensor of the layer's dtype and device, with at least
        min_rows rows (default 1; the training loop passes 0 for a rank's empty slice) and values whose
        squares do not overflow (the drives and the residuals square them)."""
        x = matrix(name, x, self.in_features, dtype=self.weight.dtype, device=self.weight.device,
                   cols_name="in_features", min_rows=0)
        min_rows = 1 if min_rows is None else min_rows
        if x.shape[0] < min_rows:
            raise ValueError(f"{name} has {x.shape[0]} row(s): expected at least {min_rows}")
        limit = math.sqrt(torch.finfo(x.dtype).max / (4 * max(self.in_features, self.k)))
        if x.numel() and float(x.abs().amax()) > limit:
            raise ValueError(f"{name} holds values up to {float(x.abs().amax()):.3g}: the drives and residuals would "
                             f"overflow {x.dtype}; rescale the data (e.g. divide by its standard deviation)")
        return x
