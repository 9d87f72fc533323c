"""The lateral (topographic) support of SoftHebb: which neighbours of the winner share its update.

`Lateral` is a fixed support (the published disc of radius 1 and gain 0.3, or a Gaussian of the grid
distance); `LateralSchedule` anneals its width and gain over training, as a Kohonen map anneals its
sigma. Neighbourhood shapes and decays are chosen by name from the dicts NEIGHBOURHOODS and DECAYS.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import torch

from ..checks import Grid, finite_float, vector
from ..constants import GAUSSIAN_SCALE_MIN, RADIUS_EPS
from ..kernels import support as kernel
from ..settings import CIFAR10, published_hint

__all__ = ["Lateral", "LateralSchedule", "NEIGHBOURHOODS", "DECAYS", "check_lateral", "GAIN_MAX", "Neighbourhood"]

# The largest |gain| accepted (as softhebb.LR_MAX for lr). The winner passes gain times its
# post-synaptic value (<= 1) to its neighbours; by 1e36 the batch sums y^T x overflow float32 and
# the weights turn NaN. The published gain is 0.3, notebook 06's annealing starts at 10.
GAIN_MAX = 1e4
GAIN_HINT = f"{published_hint('gain')}; |gain| <= 1e4"
PROGRESS_HINT = "step / (total_steps - 1): 0 at the first step, 1 at the last"


@dataclass(frozen=True)
class Neighbourhood:
    """One shape of 2D support, registered once in NEIGHBOURHOODS (the command line's --shape choices,
    the kernels' code and the backend's self-check all read that dict).

    weight(d_row2, d_col2, lateral): the weight (0 .. 1) of the support from the squared row and column
        distances to the winner, d_row2 (B, rows, 1) and d_col2 (B, 1, cols); calling the
        Neighbourhood calls it.
    reach(lateral): the one number the Triton kernel reads besides the code (kernels/support.py).
    cut_off: True when the weight is 0 beyond a radius: the torch reference then scatters to the K
        cells of Lateral.offsets instead of adding a dense (B, N) weight.
    """

    weight: Callable
    reach: Callable
    kernel_code: int
    cut_off: bool

    def __call__(self, d_row2, d_col2, lateral):
        return self.weight(d_row2, d_col2, lateral)


# The neighbourhood shapes, by name. "disc" is the published support (dist^2 <= radius^2, cut at the
# grid's size: a radius past rows + cols reaches what rows + cols reaches, and 1e300**2 does not
# overflow); "gaussian" is the Kohonen map's (MiniSom's default), radius its standard deviation, no
# cut-off, a product of a row and a column factor as the Triton kernel computes it.
NEIGHBOURHOODS = {
    "disc": Neighbourhood(
        weight=lambda d_row2, d_col2, lateral: (d_row2 + d_col2 <= lateral.disc_reach).to(d_row2.dtype),
        reach=lambda lateral: lateral.disc_reach, kernel_code=kernel.DISC, cut_off=True),
    "gaussian": Neighbourhood(
        weight=lambda d_row2, d_col2, lateral: (
            torch.exp(d_row2 * lateral.gaussian_scale) * torch.exp(d_col2 * lateral.gaussian_scale)),
        reach=lambda lateral: lateral.gaussian_scale, kernel_code=kernel.GAUSSIAN, cut_off=False),
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
    radius: float = CIFAR10.radius  # the published disc (settings.py)
    gain: float = CIFAR10.gain
    shape: str = "disc"

    def __post_init__(self):
        object.__setattr__(self, "grid", Grid.of(self.grid))
        object.__setattr__(self, "radius", finite_float("radius", self.radius, minimum=0, hint="a grid distance"))
        object.__setattr__(self, "gain", _gain(self.gain))
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
        """The support at a point of training: a fixed support is the same throughout.

        progress, when given, is checked as LateralSchedule.at checks it (a number in [0, 1]), so
        that a NaN or out-of-range point is refused by either kind of support."""
        if progress is not None:
            finite_float("progress", progress, minimum=0, maximum=1, hint=PROGRESS_HINT)
        return self

    def offsets(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """(K, 2) int64 (d_row, d_col) of the disc neighbourhood, relative to the winner; cached per device.

        The 1D variant is a grid of one row whose offsets are (0, +-1 .. +-floor(radius)).
        """
        return _offsets(self.grid, self.radius, str(torch.device(device)))

    def neighbours(self, winners: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For winners (B,) int64: neuron indices (B, K) of their disc neighbourhoods and a validity mask (B, K).

        Positions that fall off the grid are invalid; their index is the winner itself, so it
        stays a legal index for gather/scatter (add zero there). winners outside 0 .. N-1 are refused.
        """
        return self._neighbours(self._checked_winners(winners))

    def _neighbours(self, winners: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """neighbours() without the check: the SoftHebb step's winners come from an argmax, in range by
        construction, so its per-step path reads no min/max (one GPU synchronisation each)."""
        off = self.offsets(winners.device)  # (K, 2)
        row = winners[:, None] // self.cols + off[:, 0]  # (B, K)
        col = winners[:, None] % self.cols + off[:, 1]  # (B, K)
        valid = (row >= 0) & (row < self.rows) & (col >= 0) & (col < self.cols)
        index = torch.where(valid, row * self.cols + col, winners[:, None])
        return index, valid

    def _checked_winners(self, winners) -> torch.Tensor:
        """winners as a 1D integer tensor of neuron indices in 0 .. N-1, else a ValueError naming winners.

        The tensor itself comes back (no copy, no conversion). The range is read with one min/max."""
        winners = vector("winners", winners, integer=True)
        if winners.numel() == 0:
            return winners
        lo, hi = (int(v) for v in torch.aminmax(winners))
        if lo < 0 or hi >= self.n_neurons:
            where = "" if self.is_1d else "; neuron j sits at row j // cols, column j % cols"
            raise ValueError(f"winners holds the index {lo if lo < 0 else hi}: expected neuron indices in "
                             f"0 .. {self.n_neurons - 1} (the grid {self.grid.shape} has {self.n_neurons} neurons{where})")
        return winners

    @property
    def disc_reach(self) -> float:
        """radius^2 + RADIUS_EPS, the radius cut at rows + cols (which reaches the whole grid already)."""
        return min(self.radius, float(self.rows + self.cols)) ** 2 + RADIUS_EPS

    def kernel_support(self) -> kernel.KernelSupport:
        """How this support describes itself to the Triton kernels (kernels/support.py)."""
        if self.is_1d:  # k +- 1 .. k +- floor(radius), the radius cut at the grid's length
            radius = min(self.radius, float(self.rows + self.cols))
            return kernel.KernelSupport(kernel.ONE_D, 0.0, int(math.floor(radius)), 1, float(self.gain))
        shape = NEIGHBOURHOODS[self.shape]
        return kernel.KernelSupport(shape.kernel_code, float(shape.reach(self)), 0, int(self.cols), float(self.gain))

    def add_support(self, y: torch.Tensor, winners: torch.Tensor) -> None:
        """In place, the torch reference of the lateral term: y[b, j] += gain * h(j, k_b) * y[b, k_b] for
        winners k_b (B,), in range (argmax winners: no check per step), y (B, N) before the term."""
        w = y.gather(1, winners[:, None])  # (B, 1) the winner's value, before any lateral term
        if self.is_1d or NEIGHBOURHOODS[self.shape].cut_off:
            index, valid = self._neighbours(winners)  # (B, K)
            # K distinct neighbours per row, so the scatter never adds twice to one element
            y.scatter_add_(1, index, self.gain * w * valid.to(y.dtype))
        else:  # a neighbourhood over the whole grid: (B, N) weights
            y.add_(self._weights(winners, y.dtype) * (self.gain * w))

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
        k +- 1 .. floor(radius). winners outside 0 .. N-1 are refused.
        """
        return self._weights(self._checked_winners(winners), dtype)

    def _weights(self, winners: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """weights() without the check (see _neighbours)."""
        device = winners.device
        if self.is_1d:
            d = torch.arange(self.cols, device=device) - winners[:, None]  # (B, N)
            return ((d != 0) & (d.abs() <= min(self.radius, self.cols))).to(dtype)
        d_row = (torch.arange(self.rows, device=device) - winners[:, None] // self.cols).to(dtype)  # (B, rows)
        d_col = (torch.arange(self.cols, device=device) - winners[:, None] % self.cols).to(dtype)  # (B, cols)
        h = NEIGHBOURHOODS[self.shape](d_row.square()[:, :, None], d_col.square()[:, None, :], self)  # (B, rows, cols)
        return h.reshape(len(winners), -1)  # (B, N)


def _gain(gain) -> float:
    """`gain` as a finite float with |gain| <= GAIN_MAX, or a ValueError naming gain."""
    return finite_float("gain", gain, minimum=-GAIN_MAX, maximum=GAIN_MAX, hint=GAIN_HINT)


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
        # a radius is a grid distance: >= 0 whatever the decay (> 0 for the geometric one)
        object.__setattr__(self, "radius", _pair("radius", radius, positive, "a grid distance, e.g. (7.5, 1.0)",
                                                 nonnegative=True))
        object.__setattr__(self, "gain", _pair("gain", self.gain, positive, "e.g. (1.0, 0.3)"))
        for g in self.gain:
            _gain(g)
        for r in self.radius:
            _check_shape(self.shape, grid, r)

    is_1d, rows, cols, n_neurons = Lateral.is_1d, Lateral.rows, Lateral.cols, Lateral.n_neurons

    def at(self, progress: float) -> Lateral:
        """The Lateral support at `progress` in [0, 1] of training."""
        p = finite_float("progress", progress, minimum=0, maximum=1, hint=PROGRESS_HINT)
        decay = DECAYS[self.decay]
        return Lateral(self.grid, decay(*self.radius, p), decay(*self.gain, p), self.shape)


def _pair(name: str, value, positive: bool, hint: str, nonnegative: bool = False) -> tuple[float, float]:
    pair = value if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2:
        raise ValueError(f"{name}={value!r}: expected (start, end) or one number ({hint})")
    minimum = 0.0 if positive or nonnegative else None
    out = tuple(finite_float(name, v, minimum=minimum, strict_minimum=positive, hint=hint) for v in pair)
    return out


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


def check_lateral(lateral, n: int, what: str):
    """`lateral` (a Lateral, a LateralSchedule or None) checked against a layer of n neurons, named `what`."""
    if lateral is not None and not isinstance(lateral, (Lateral, LateralSchedule)):
        raise ValueError(f"lateral={lateral!r}: expected a Lateral(grid, radius, gain), a LateralSchedule or None")
    if lateral is not None and lateral.n_neurons != n:
        raise ValueError(f"lateral grid {lateral.grid.shape} has {lateral.n_neurons} neurons but {what}={n}: "
                         f"use a grid with rows * cols = {n}")
    return lateral
