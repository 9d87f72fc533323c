"""The SoftHebb layer: non-affine BatchNorm, then u = x W^T, trained by the rule of softhebb.py."""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..backend import resolve_backend, step_functions
from ..checks import device_of, finite_float, matrix, positive_int
from .lateral import Lateral, LateralSchedule, check_lateral
from .schedule import seeded_generator
from .softhebb import check_lr, check_t_invert, update_step

__all__ = ["SoftHebbLinear", "softhebb_step"]


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
    t_invert, lr = check_t_invert(t_invert), check_lr(lr)
    lateral = check_lateral(lateral, W.shape[0], "W.shape[0]")
    if isinstance(lateral, LateralSchedule):
        raise ValueError("lateral is a LateralSchedule: one step needs the support of that step, "
                         "lateral.at(progress) with progress = schedule_progress(step, total_steps)")
    post_and_sums, apply_update = step_functions(resolve_backend(backend, W.device))
    return update_step(W, x, t_invert, lr, lateral, legacy_batch_winner, post_and_sums, apply_update)



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
        self.lateral = check_lateral(lateral, self.out_features, "out_features")
        self.t_invert = check_t_invert(t_invert)
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
        return self.bn(self.checked_input("x", x, 2 if self.training else 0)) @ self.weight.T  # (B, N)

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
        x = self.checked_input("x", x, 2)
        if isinstance(self.lateral, LateralSchedule) and progress is None:
            raise ValueError("progress=None but the layer's lateral support is a LateralSchedule: pass "
                             "progress=schedule_progress(step, total_steps), from 0 (first step) to 1 (last)")
        progress = None if progress is None else finite_float("progress", progress, minimum=0, maximum=1)
        return self.train_step(x, check_lr(lr), step_functions(resolve_backend(backend, self.weight.device)), progress)

    def train_step(self, x: torch.Tensor, lr: float, functions, progress: float | None = None) -> torch.Tensor:
        """One step on a checked batch x (B, D), unchecked settings: what the training loop runs.
        functions: backend.step_functions(...); progress: a LateralSchedule's point."""
        was_training = self.bn.training
        self.bn.train()
        x_norm = self.bn(x)  # (B, D)
        self.bn.train(was_training)
        lo, hi = torch.aminmax(x, dim=0)  # (D,) each: equal where the feature is constant over the batch
        x_norm.masked_fill_(lo == hi, 0.0)
        lateral = None if self.lateral is None else self.lateral.at(progress)
        return update_step(self.weight, x_norm, self.t_invert, lr, lateral, self.legacy_batch_winner, *functions)

    @torch.no_grad()
    def responses(self, X: Any, batch_size: int = 4096) -> torch.Tensor:
        """u (samples, N) in eval mode (running statistics), batched; on the layer's device.

        For many samples and many neurons this is large (680k tokens x 1800 neurons = 4.9 GB in
        float32): slice X, or reduce each batch yourself with forward().
        """
        batch_size = positive_int("batch_size", batch_size)
        X = self.checked_input("X", X, 0)
        was_training = self.training
        self.eval()
        try:
            return torch.cat([self(X[i : i + batch_size]) for i in range(0, X.shape[0], batch_size)])
        finally:
            self.train(was_training)

    def checked_input(self, name: str, x, batch: int, min_rows: int | None = None) -> torch.Tensor:
        """x as a finite (rows, in_features) tensor of the layer's dtype and device. batch >= 2: a
        training batch (or a data set cut into batches of `batch`), whose BatchNorm variance must
        not overflow: refused, before it reaches the running statistics. min_rows (default 2 for a
        training batch, else 1): fewer rows are refused (a rank's slice of a batch may hold none)."""
        x = matrix(name, x, self.in_features, dtype=self.weight.dtype, device=self.weight.device,
                   cols_name="in_features", min_rows=0)
        if min_rows is None:
            min_rows = 2 if batch else 1
        if x.shape[0] < min_rows:
            raise ValueError(f"{name} has {x.shape[0]} sample(s): a training batch needs B >= 2, because "
                             "BatchNorm normalises with the batch statistics" if batch and min_rows == 2 else
                             f"{name} has {x.shape[0]} row(s): expected at least {min_rows}")
        # the batch variance sums up to `batch` squares of (x - mean), |x - mean| <= 2 max|x|
        if batch and x.numel() and float(x.abs().amax()) > math.sqrt(torch.finfo(x.dtype).max / (4 * batch)):
            raise ValueError(f"{name} holds values up to {float(x.abs().amax()):.3g}: BatchNorm's variance would "
                             f"overflow {x.dtype}; rescale the data (e.g. divide by its standard deviation)")
        return x
