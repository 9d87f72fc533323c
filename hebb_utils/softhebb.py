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
anneals its sigma; train_softhebb then uses schedule.at(step / (steps - 1)) at each step.

This file is the torch reference; the Triton kernels (hebb_utils/kernels/) must match it.
`legacy_batch_winner=True` reproduces the published flip `y[:, winners] = -y[:, winners]`, where a
column that wins for any sample turns Hebbian for every sample of the batch.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .backend import resolve_backend
from .checks import Grid, device_of, finite_float, matrix, positive_int

__all__ = [
    "Lateral",
    "LateralSchedule",
    "NEIGHBOURHOODS",
    "DECAYS",
    "post_synaptic",
    "plastic_update",
    "softhebb_step",
    "SoftHebbLinear",
    "train_softhebb",
    "training_steps",
    "snapshot_steps",
    "schedule_progress",
]

# dW is divided by max|dW| + DW_EPS, so an all-zero dW stays zero instead of turning into NaN.
DW_EPS = 1e-30
# Grid distances are compared as dist^2 <= radius^2 + RADIUS_EPS: the squared distances are
# integers, so radius 1.5 (2.25) or radius sqrt(2) (2.0000000000000004) select the 3x3 block
# whatever the rounding of radius^2.
RADIUS_EPS = 1e-6
# The Gaussian's exponent scale is kept >= this (see Lateral.gaussian_scale).
GAUSSIAN_SCALE_MIN = -1e30
# The largest lr accepted: a step moves each weight by at most lr, and lr 1e38 overflows float32.
LR_MAX = 1e4


# -----------------------------------------------------------------------------
# lateral support


# The neighbourhood functions, by name: the weight (0 .. 1) of the support from the squared row and
# column distances to the winner, d_row2 (B, rows, 1) and d_col2 (B, 1, cols), for a Lateral.
# "disc" is the published support (dist^2 <= radius^2, cut at the grid's size); "gaussian" is the
# Kohonen map's (MiniSom's default), radius its standard deviation, no cut-off, a product of a row
# and a column factor as the Triton kernel computes it.
NEIGHBOURHOODS = {
    "disc": lambda d_row2, d_col2, lateral: (
        d_row2 + d_col2 <= min(lateral.radius, float(lateral.rows + lateral.cols)) ** 2 + RADIUS_EPS).to(d_row2.dtype),
    "gaussian": lambda d_row2, d_col2, lateral: (
        torch.exp(d_row2 * lateral.gaussian_scale) * torch.exp(d_col2 * lateral.gaussian_scale)),
}


@dataclass(frozen=True)
class Lateral:
    """Lateral support: the winner passes `gain` times its post-synaptic value to its grid neighbours.

    grid=(rows, cols): 2D support. Neuron j sits at (j // cols, j % cols). With shape="disc" (the
        published support) every neuron at Euclidean grid distance <= radius from the winner, the
        winner itself included, gets the term (so the winner ends at (1 + gain) times its value).
        Compared as dist^2 <= radius^2 + 1e-6: radius 1 gives the winner and its 4 neighbours,
        radius 1.5 the 3x3 block. No wrap-around. With shape="gaussian" every neuron j gets
        gain * exp(-dist^2 / (2 radius^2)) times the winner's value (radius is the Gaussian's
        standard deviation, radius > 0), as a Kohonen map's neighbourhood.
    grid=(n,): 1D variant (disc only). Neurons k +- 1 .. k +- floor(radius) inside [0, n), the winner
        excluded. A Gaussian on one row: grid=(1, n).
    `grid` is stored as a checks.Grid (tuples are converted); a radius beyond the grid selects it all.
    For a support that shrinks over training, see LateralSchedule.
    """

    grid: Grid
    radius: float = 1.0
    gain: float = 0.3
    shape: str = "disc"

    def __post_init__(self):
        object.__setattr__(self, "grid", Grid.of(self.grid))
        object.__setattr__(self, "radius", finite_float("radius", self.radius, minimum=0, hint="a grid distance"))
        object.__setattr__(self, "gain", finite_float("gain", self.gain, hint="published: 0.3"))
        _check_shape(self.shape, self.grid, self.radius)

    @property
    def is_1d(self) -> bool:
        return self.grid.one_d

    @property
    def rows(self) -> int:
        return self.grid.rows

    @property
    def cols(self) -> int:
        return self.grid.cols

    @property
    def n_neurons(self) -> int:
        return self.grid.n

    def at(self, progress: float | None = None) -> "Lateral":
        """The support at a point of training: a fixed support is the same throughout."""
        return self

    def offsets(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """(K, 2) int64 (d_row, d_col) of the disc neighbourhood, relative to the winner; cached per device.

        The 1D variant is a grid of one row whose offsets are (0, +-1 .. +-floor(radius)).
        """
        return _offsets(self.grid, self.radius, str(torch.device(device)))

    def neighbours(self, winners: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For winners (B,) int64: neuron indices (B, K) of their disc neighbourhoods and a validity mask (B, K).

        Positions that fall off the grid are invalid; their index is the winner itself, so it
        stays a legal index for gather/scatter (add zero there).
        """
        off = self.offsets(winners.device)  # (K, 2)
        row = winners[:, None] // self.cols + off[:, 0]  # (B, K)
        col = winners[:, None] % self.cols + off[:, 1]  # (B, K)
        valid = (row >= 0) & (row < self.rows) & (col >= 0) & (col < self.cols)
        index = torch.where(valid, row * self.cols + col, winners[:, None])
        return index, valid

    @property
    def gaussian_scale(self) -> float:
        """-1 / (2 radius^2): the Gaussian's exponent per squared grid step, kept in [-1e30, 0].

        A finite scale keeps d^2 * scale = 0 at the winner (h = 1) for a tiny radius (exp(-1e30) is
        already 0 one step away), and a huge radius gives -0.0: h = 1 everywhere.
        """
        try:
            scale = -1.0 / (2 * self.radius**2)
        except (OverflowError, ZeroDivisionError):  # radius**2 past 1e308, or 2 radius^2 == 0
            scale = -0.0 if self.radius > 1 else -math.inf
        return max(scale, GAUSSIAN_SCALE_MIN)

    def weights(self, winners: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(B, N) the neighbourhood function around each winner (B,): what gain multiplies, per neuron.

        2D: NEIGHBOURHOODS[shape] of the squared row and column distances. 1D disc: 1 at
        k +- 1 .. floor(radius).
        """
        device = winners.device
        if self.is_1d:
            d = torch.arange(self.cols, device=device) - winners[:, None]  # (B, N)
            return ((d != 0) & (d.abs() <= min(self.radius, self.cols))).to(dtype)
        d_row = (torch.arange(self.rows, device=device) - winners[:, None] // self.cols).to(dtype)  # (B, rows)
        d_col = (torch.arange(self.cols, device=device) - winners[:, None] % self.cols).to(dtype)  # (B, cols)
        h = NEIGHBOURHOODS[self.shape](d_row.square()[:, :, None], d_col.square()[:, None, :], self)  # (B, rows, cols)
        return h.reshape(len(winners), -1)  # (B, N)


def _check_shape(shape, grid: Grid, radius: float) -> None:
    if shape not in NEIGHBOURHOODS:
        raise ValueError(f"shape={shape!r}: expected one of {sorted(NEIGHBOURHOODS)}")
    if shape == "gaussian" and grid.one_d:
        raise ValueError(f"shape='gaussian' needs a 2D grid, got the 1D grid {grid.shape}: "
                         f"use grid=(1, {grid.cols}) for one row")
    if shape == "gaussian" and radius <= 0:
        raise ValueError(f"radius={radius!r}: the Gaussian's width must be > 0")


# How a setting moves from its start to its end value as training progresses (p from 0 to 1).
DECAYS = {
    "linear": lambda start, end, p: start + (end - start) * p,
    "geometric": lambda start, end, p: start * (end / start) ** p,  # both > 0: a constant ratio per step
}


@dataclass(frozen=True)
class LateralSchedule:
    """A lateral support that anneals over training, as a Kohonen map anneals its neighbourhood.

    radius and gain are (start, end) pairs, or one number for a constant; at a point p of training
    (0 = first step, 1 = last step) the support is Lateral(grid, DECAYS[decay](start, end, p), ...).
    radius=None: from a quarter of the grid's longer side down to 1. The published fixed support is
    Lateral(grid, 1.0, 0.3); this is what train_softhebb steps through when a layer is given one:

        LateralSchedule((15, 30), radius=(7.5, 1.0), gain=(1.0, 0.3), shape="gaussian")
    """

    grid: Grid
    radius: tuple[float, float] | float | None = None
    gain: tuple[float, float] | float = 0.3
    shape: str = "gaussian"
    decay: str = "geometric"

    def __post_init__(self):
        grid = Grid.of(self.grid)
        object.__setattr__(self, "grid", grid)
        radius = (max(grid.rows, grid.cols) / 4, 1.0) if self.radius is None else self.radius
        if self.decay not in DECAYS:
            raise ValueError(f"decay={self.decay!r}: expected one of {sorted(DECAYS)}")
        positive = self.decay == "geometric"
        object.__setattr__(self, "radius", _pair("radius", radius, positive, "a grid distance, e.g. (7.5, 1.0)"))
        object.__setattr__(self, "gain", _pair("gain", self.gain, positive, "e.g. (1.0, 0.3)"))
        for r in self.radius:
            _check_shape(self.shape, grid, r)

    is_1d, rows, cols, n_neurons = Lateral.is_1d, Lateral.rows, Lateral.cols, Lateral.n_neurons

    def at(self, progress: float) -> Lateral:
        """The Lateral support at `progress` in [0, 1] of training."""
        p = finite_float("progress", progress, minimum=0, maximum=1, hint="step / (total_steps - 1)")
        decay = DECAYS[self.decay]
        return Lateral(self.grid, decay(*self.radius, p), decay(*self.gain, p), self.shape)


def _pair(name: str, value, positive: bool, hint: str) -> tuple[float, float]:
    pair = value if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2:
        raise ValueError(f"{name}={value!r}: expected (start, end) or one number ({hint})")
    minimum = 0.0 if positive else None
    out = tuple(finite_float(name, v, minimum=minimum, strict_minimum=positive, hint=hint) for v in pair)
    return out


def schedule_progress(step: int, total_steps: int) -> float:
    """Where step (0-based) of total_steps lies in training: 0 at the first step, 1 at the last."""
    return step / (total_steps - 1) if total_steps > 1 else 1.0


@functools.lru_cache(maxsize=64)
def _offsets(grid: Grid, radius: float, device: str) -> torch.Tensor:
    # no neighbour is farther than rows + cols: a larger radius selects the same (1e300**2 overflows)
    radius = min(radius, float(grid.rows + grid.cols))
    if grid.one_d:
        reach = min(math.floor(radius), grid.cols - 1)
        d_col = [d for d in range(-reach, reach + 1) if d != 0]
        pairs = [(0, d) for d in d_col]
    else:
        reach = min(math.floor(math.sqrt(radius**2 + RADIUS_EPS)), max(grid.rows, grid.cols) - 1)
        pairs = [
            (dr, dc)
            for dr in range(-reach, reach + 1)
            for dc in range(-reach, reach + 1)
            if dr * dr + dc * dc <= radius**2 + RADIUS_EPS
        ]
    return torch.tensor(pairs, dtype=torch.int64, device=device).reshape(-1, 2)


# -----------------------------------------------------------------------------
# the update rule (torch reference)


def post_synaptic(
    u: torch.Tensor, t_invert: float, lateral: Lateral | None = None, legacy_batch_winner: bool = False
) -> torch.Tensor:
    """Steps 2-4: y (B, N) from the pre-activations u (B, N); checks its inputs, then runs the
    very function training runs (`_post_synaptic`).

    softmax(t_invert * u) over N, computed as softmax(t_invert * (u - max_j u)) so that it stays
    finite for any t_invert up to float32's largest number (beyond it is refused) and any finite u;
    y = -softmax, except at each sample's winner
    k_b = argmax_j u_bj (ties: lowest index), where y = +softmax. With legacy_batch_winner, every
    column that wins for some sample is +softmax for all samples. Then lateral support around k_b
    (per sample in both modes) with w_b = y[b, k_b] taken before any lateral term.
    """
    u = matrix("u", u)
    return _post_synaptic(u, _t_invert(t_invert), _lateral(lateral, u.shape[1], "u.shape[1]"), legacy_batch_winner)[0]


def _post_synaptic(u, t_invert, lateral, legacy_batch_winner):
    """(y (B, N), s (N,) = sum_b y_bj u_bj), unchecked: what training runs, and what
    kernels.post_synaptic_triton returns."""
    soft = torch.softmax(t_invert * (u - u.amax(dim=1, keepdim=True)), dim=1)  # (B, N)
    winners = u.argmax(dim=1)  # (B,) first index of the maximum
    if legacy_batch_winner:
        won = torch.zeros(u.shape[1], dtype=torch.bool, device=u.device)
        won[winners] = True  # (N,) columns that won for any sample in the batch
        y = torch.where(won, soft, -soft)
    else:
        y = -soft
        y.scatter_(1, winners[:, None], soft.gather(1, winners[:, None]))
    if lateral is not None:
        w = y.gather(1, winners[:, None])  # (B, 1) the winner's value, before any lateral term
        if lateral.shape == "disc":
            index, valid = lateral.neighbours(winners)  # (B, K)
            # K distinct neighbours per row, so the scatter never adds twice to one element
            y.scatter_add_(1, index, lateral.gain * w * valid.to(y.dtype))
        else:  # a neighbourhood over the whole grid: (B, N) weights
            y.add_(lateral.weights(winners, y.dtype) * (lateral.gain * w))
    return y, (y * u).sum(dim=0)


def plastic_update(x: torch.Tensor, W: torch.Tensor, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Step 5: dW (N, D) = y^T x - s[:, None] * W with s_j = sum_b y_bj u_bj, divided by max|dW| + 1e-30.

    Checks its inputs (x is converted to W's float dtype), then runs training's `_raw_update`."""
    W = matrix("W", W)
    x = matrix("x", x, W.shape[1], dtype=W.dtype, cols_name="W.shape[1]")
    u, y = (matrix(name, t, dtype=W.dtype) for name, t in (("u", u), ("y", y)))
    for name, t in (("u", u), ("y", y)):
        if t.shape != (x.shape[0], W.shape[0]):
            raise ValueError(f"{name} has shape {tuple(t.shape)}: expected (B, N) = {(x.shape[0], W.shape[0])} from x, W")
    dW = _raw_update(x, W, y, (y * u).sum(dim=0))
    return dW / (_max_abs(dW) + DW_EPS)


def _raw_update(x, W, y, s):
    # (N, D): the matrix product on cuBLAS / BLAS, then one fused pass for - s_j W_j (no temporary)
    return (y.T @ x).addcmul_(s[:, None], W, value=-1.0)


def _apply_update(W: torch.Tensor, dW: torch.Tensor, lr: float) -> None:
    """W += lr * dW / (max|dW| + 1e-30), in place: what kernels.apply_update_triton does. No input checks."""
    # one fused pass, and no host sync: the max stays on the device as a 0-d tensor
    W.addcdiv_(dW, _max_abs(dW) + DW_EPS, value=lr)


def _max_abs(t: torch.Tensor) -> torch.Tensor:
    lo, hi = torch.aminmax(t)  # one pass, no |t| temporary
    return torch.maximum(hi, -lo)


def softhebb_step(
    W: torch.Tensor,
    x: torch.Tensor,
    t_invert: float,
    lr: float,
    lateral: Lateral | None = None,
    legacy_batch_winner: bool = False,
    backend: str = "torch",
) -> torch.Tensor:
    """One SoftHebb step on already-normalised x (B, D): updates W (N, D) in place, returns u (B, N).

    Checks shapes and settings but not finiteness (that would synchronise with the device every
    step); SoftHebbLinear.hebbian_step and train_softhebb check their inputs once. x is converted
    to W's float dtype. backend="triton" runs steps 2-4 and the max-normalised update in
    hebb_utils.kernels; the matrix products stay in torch either way.
    """
    W = matrix("W", W, finite=False)
    x = matrix("x", x, W.shape[1], dtype=W.dtype, finite=False, cols_name="W.shape[1]")
    t_invert, lr = _t_invert(t_invert), _lr(lr)
    lateral = _lateral(lateral, W.shape[0], "W.shape[0]")
    if isinstance(lateral, LateralSchedule):
        raise ValueError("lateral is a LateralSchedule: one step needs the support of that step, "
                         "lateral.at(progress) with progress = schedule_progress(step, total_steps)")
    post_and_sums, apply_update = _step_functions(resolve_backend(backend, W.device))
    return _step(W, x, t_invert, lr, lateral, legacy_batch_winner, post_and_sums, apply_update)


def _step_functions(backend: str):
    if backend == "triton":
        from .kernels import apply_update_triton, post_synaptic_triton

        return post_synaptic_triton, apply_update_triton
    return _post_synaptic, _apply_update


def _step(W, x, t_invert, lr, lateral, legacy_batch_winner, post_and_sums, apply_update):
    u = x @ W.T  # (B, N)
    y, s = post_and_sums(u, t_invert, lateral, legacy_batch_winner)
    apply_update(W, _raw_update(x, W, y, s), lr)
    return u


# -----------------------------------------------------------------------------
# the layer


class SoftHebbLinear(nn.Module):
    """A linear SoftHebb layer with non-affine BatchNorm in front: forward(x) -> u = BN(x) W^T.

    W (out_features, in_features) is a buffer (no gradients), initialised Normal(0, 1) * 14 / sqrt(D)
    from torch.Generator(seed) on the CPU, so a seed gives the same start on every device.
    forward uses BatchNorm in the module's mode: after training call .eval() (train_softhebb does)
    so that analysis sees the running statistics the layer was trained with. Inputs of another
    float dtype (numpy's float64) are converted to the layer's; a NaN/inf batch, or one whose
    variance would overflow, is refused before it reaches BatchNorm's running statistics.
    The state_dict records t_invert and the lateral grid: loading it into a layer with other ones
    raises (state_dicts saved before this check load as before).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        t_invert: float,
        lateral: Lateral | LateralSchedule | None = None,
        legacy_batch_winner: bool = False,
        seed: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        self.in_features = positive_int("in_features", in_features)
        self.out_features = positive_int("out_features", out_features)
        self.lateral = _lateral(lateral, self.out_features, "out_features")
        self.t_invert = _t_invert(t_invert)
        self.legacy_batch_winner = bool(legacy_batch_winner)
        self.seed = seed if seed is None else positive_int("seed", seed, minimum=0)
        device = device if device is None else device_of("device", device)
        self.bn = nn.BatchNorm1d(self.in_features, affine=False, device=device, dtype=dtype)
        generator = seeded_generator(self.seed)
        weight = torch.randn(self.out_features, self.in_features, generator=generator) * (14.0 / math.sqrt(in_features))
        self.register_buffer("weight", weight.to(device=device, dtype=dtype))

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, t_invert={self.t_invert}, "
            f"lateral={self.lateral}, legacy_batch_winner={self.legacy_batch_winner}"
        )

    def get_extra_state(self) -> dict:
        return {"t_invert": self.t_invert, "grid": None if self.lateral is None else self.lateral.grid.shape}

    def set_extra_state(self, state: dict) -> None:
        if state != self.get_extra_state():
            raise ValueError(f"state_dict is of a layer with {state}, this layer has {self.get_extra_state()}: "
                             "build the layer with the same t_invert and lateral grid before loading")

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, *args):
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, *args)
        if prefix + "_extra_state" in missing_keys:  # a state_dict saved before t_invert/grid were recorded
            missing_keys.remove(prefix + "_extra_state")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self._input("x", x, 2 if self.training else 0)) @ self.weight.T  # (B, N)

    @torch.no_grad()
    def hebbian_step(self, x: torch.Tensor, lr: float, backend: str = "auto",
                     progress: float | None = None) -> torch.Tensor:
        """One training step on a raw batch x (B, in_features), B >= 2: returns u (B, N).

        BatchNorm normalises with the batch statistics and updates its running statistics,
        whatever mode the module is in (the mode is left as it was). A feature that is constant
        over the batch normalises to exactly 0: BatchNorm's float mean leaves rounding noise there
        (about 1e-7 of the value), which the max-normalised step would blow up into a full lr
        (a constant batch then does not move W at all). Other features are untouched, bit for bit.
        With a LateralSchedule, `progress` (0 at the first step, 1 at the last; see
        schedule_progress) picks the support of this step; a fixed Lateral ignores it.
        """
        x = self._input("x", x, 2)
        if isinstance(self.lateral, LateralSchedule) and progress is None:
            raise ValueError("progress=None but the layer's lateral support is a LateralSchedule: pass "
                             "progress=schedule_progress(step, total_steps), from 0 (first step) to 1 (last)")
        progress = None if progress is None else finite_float("progress", progress, minimum=0, maximum=1)
        return self._train_step(x, _lr(lr), _step_functions(resolve_backend(backend, self.weight.device)), progress)

    def _train_step(self, x, lr, functions, progress=None):
        was_training = self.bn.training
        self.bn.train()
        x_norm = self.bn(x)  # (B, D)
        self.bn.train(was_training)
        lo, hi = torch.aminmax(x, dim=0)  # (D,) each: equal where the feature is constant over the batch
        x_norm.masked_fill_(lo == hi, 0.0)
        lateral = None if self.lateral is None else self.lateral.at(progress)
        return _step(self.weight, x_norm, self.t_invert, lr, lateral, self.legacy_batch_winner, *functions)

    @torch.no_grad()
    def responses(self, X: Any, batch_size: int = 4096) -> torch.Tensor:
        """u (samples, N) in eval mode (running statistics), batched; on the layer's device.

        For many samples and many neurons this is large (680k tokens x 1800 neurons = 4.9 GB in
        float32): slice X, or reduce each batch yourself with forward().
        """
        batch_size = positive_int("batch_size", batch_size)
        X = self._input("X", X, 0)
        was_training = self.training
        self.eval()
        try:
            return torch.cat([self(X[i : i + batch_size]) for i in range(0, X.shape[0], batch_size)])
        finally:
            self.train(was_training)

    def _input(self, name, x, batch):
        """x as a finite (rows, in_features) tensor of the layer's dtype and device. batch >= 2: a
        training batch (or a data set cut into batches of `batch`), whose BatchNorm variance must
        not overflow: refused, before it reaches the running statistics."""
        x = matrix(name, x, self.in_features, dtype=self.weight.dtype, device=self.weight.device,
                   cols_name="in_features")
        if batch and x.shape[0] < 2:
            raise ValueError(f"{name} has {x.shape[0]} sample(s): a training batch needs B >= 2, because "
                             "BatchNorm normalises with the batch statistics")
        # the batch variance sums up to `batch` squares of (x - mean), |x - mean| <= 2 max|x|
        if batch and float(x.abs().amax()) > math.sqrt(torch.finfo(x.dtype).max / (4 * batch)):
            raise ValueError(f"{name} holds values up to {float(x.abs().amax()):.3g}: BatchNorm's variance would "
                             f"overflow {x.dtype}; rescale the data (e.g. divide by its standard deviation)")
        return x


# -----------------------------------------------------------------------------
# training


def train_softhebb(
    layer: SoftHebbLinear,
    data: Any,
    epochs: int = 1,
    batch_size: int = 64,
    lr: float = 0.08,
    seed: int | None = 42,
    shuffle: bool = True,
    snapshot_every: int | None = None,
    device: torch.device | str | None = None,
    backend: str = "auto",
    progress: bool = True,
) -> tuple[SoftHebbLinear, torch.Tensor]:
    """Train `layer` in place on data (samples, in_features) of floats; returns (layer, snapshots).

    Each epoch draws a permutation from torch.Generator(seed) on the data's device (one generator
    for the whole run, so epochs differ; seed=None: a fresh random seed, so runs differ) and steps
    over batches of `batch_size`; a final batch of a single sample is skipped, because BatchNorm
    needs two. lr defaults to the published CIFAR-10 setting (the LM run used 0.2). The data are
    checked once (finite, no variance overflow) and converted to the layer's dtype.

    snapshots: (n, N, D) on the CPU, the weights before the first step, after every
    `snapshot_every`-th step (counted over all epochs), and after the last step (not twice):
    the steps `snapshot_steps(training_steps(len(data), batch_size, epochs), snapshot_every)`.
    With snapshot_every=None: the initial and the final weights.

    The layer and the data move to `device` (default: the layer's). The layer comes back in eval
    mode, so layer(x) uses the running statistics. A layer whose lateral support is a LateralSchedule
    takes step t (0-based, over all epochs) with lateral.at(schedule_progress(t, total_steps)). On
    CUDA with the Triton backend each epoch of a fixed support runs in
    hebb_utils.kernels.train_epoch_graphed (CUDA graphs); a schedule steps eagerly. progress=False hides the tqdm bar
    (with progress=True, TQDM_DISABLE=1 still hides it).
    """
    if not isinstance(layer, SoftHebbLinear):
        raise ValueError(f"layer: expected a SoftHebbLinear, got {type(layer).__name__}")
    epochs = positive_int("epochs", epochs)
    batch_size = positive_int("batch_size", batch_size, minimum=2, hint="BatchNorm needs two samples")
    if snapshot_every is not None:
        snapshot_every = positive_int("snapshot_every", snapshot_every, hint="or None")
    seed = None if seed is None else positive_int("seed", seed, minimum=0, hint="or None for a random seed")
    lr = _lr(lr)
    device = device_of("device", device) if device is not None else layer.weight.device
    layer.to(device)
    data = layer._input("data", data, batch_size)
    n_samples = data.shape[0]
    steps_per_epoch = training_steps(n_samples, batch_size)
    total_steps = epochs * steps_per_epoch
    every = int(snapshot_every or total_steps)
    n_snapshots = len(snapshot_steps(total_steps, every))
    snapshots = torch.empty((n_snapshots, *layer.weight.shape), dtype=layer.weight.dtype, device=device)
    snapshots[0] = layer.weight

    backend = resolve_backend(backend, device)
    # the CUDA graph bakes the support's settings into the captured kernels: a schedule steps eagerly
    graphed = backend == "triton" and device.type == "cuda" and not isinstance(layer.lateral, LateralSchedule)
    functions = _step_functions(backend)
    generator = seeded_generator(seed, device)
    bar = tqdm(total=total_steps, desc="softhebb", unit="step", **({} if progress else {"disable": True}))
    n_taken, step = 1, 0
    for _ in range(epochs):
        if shuffle:
            order = torch.randperm(n_samples, generator=generator, device=device)
        else:
            order = torch.arange(n_samples, device=device)
        if graphed:
            from .kernels import train_epoch_graphed

            # contract: the same batches in the same order as the loop below; returns the weights
            # after each step t (global, from 1) with t % snapshot_every == 0 within this epoch
            epoch_snaps = train_epoch_graphed(
                layer, data, order=order, batch_size=batch_size, lr=lr, snapshot_every=every, step0=step
            )
            snapshots[n_taken : n_taken + len(epoch_snaps)] = epoch_snaps
            n_taken += len(epoch_snaps)
            step += steps_per_epoch
            bar.update(steps_per_epoch)
            continue
        for start in range(0, steps_per_epoch * batch_size, batch_size):
            layer._train_step(data[order[start : start + batch_size]], lr, functions,
                              schedule_progress(step, total_steps))
            step += 1
            if step % every == 0:
                snapshots[n_taken] = layer.weight
                n_taken += 1
            bar.update(1)
    bar.close()
    if total_steps % every != 0:
        snapshots[n_taken] = layer.weight
        n_taken += 1
    assert n_taken == n_snapshots, (n_taken, n_snapshots)
    layer.eval()
    return layer, snapshots.cpu()


def seeded_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator on `device` seeded with `seed` (None: a fresh random seed, so runs differ)."""
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def training_steps(n_samples: int, batch_size: int, epochs: int = 1) -> int:
    """Steps train_softhebb takes: every batch of `batch_size`, and a last partial batch unless it
    holds a single sample (BatchNorm needs two). 50,000 CIFAR images at batch 64 give 782 steps."""
    return int(epochs) * (int(n_samples) // int(batch_size) + (int(n_samples) % int(batch_size) >= 2))


def snapshot_steps(total_steps: int, every: int | None) -> list[int]:
    """The step after which each of train_softhebb's snapshots was taken: 0 (the initial weights),
    every `every`-th step, and the last step (not twice). every=None: [0, total_steps]."""
    every = int(every or total_steps)
    steps = list(range(0, total_steps + 1, every))
    return steps if steps[-1] == total_steps else steps + [total_steps]


# -----------------------------------------------------------------------------
# settings


def _t_invert(t_invert) -> float:
    # beyond float32's largest number, t_invert * 0 at the winner is inf * 0 = NaN
    return finite_float("t_invert", t_invert, minimum=0, strict_minimum=True, maximum=torch.finfo(torch.float32).max,
                        hint="published: 300 for CIFAR-10, 100 for LM tokens")


def _lr(lr) -> float:
    return finite_float("lr", lr, minimum=0, maximum=LR_MAX, hint="published: 0.08 for CIFAR-10, 0.2 for LM tokens")


def _lateral(lateral, n, what):
    if lateral is not None and not isinstance(lateral, (Lateral, LateralSchedule)):
        raise ValueError(f"lateral={lateral!r}: expected a Lateral(grid, radius, gain), a LateralSchedule or None")
    if lateral is not None and lateral.n_neurons != n:
        raise ValueError(f"lateral grid {lateral.grid.shape} has {lateral.n_neurons} neurons but {what}={n}: "
                         f"use a grid with rows * cols = {n}")
    return lateral
