"""BatchNorm of a gathered batch, on the device: x = BN(data[order[step*B : step*B + B]]) with batch
statistics, and the running statistics updated as nn.BatchNorm1d does in training mode. The batch
index `step` lives on the device, so a CUDA graph can replay the gather (rules/graphed_epoch.py)."""
from __future__ import annotations

import torch

from .launch import LAUNCH, cdiv, jit, next_pow2

tl = None  # bound by _triton.jit at the first kernel call

__all__ = ["gather_batchnorm_triton"]


def _gather_batchnorm_kernel(data_ptr, order_ptr, step_ptr, x_ptr, mean_ptr, var_ptr, B, D, stride_data,
                             momentum, eps, BLOCK_B: tl.constexpr, BLOCK_D: tl.constexpr):
    """x = BatchNorm(data[order[step*B : step*B + B]]) for BLOCK_D features, batch statistics.

    Updates the running statistics as nn.BatchNorm1d does in training mode: mean, and the
    unbiased variance, averaged with weight `momentum`. Three passes over the gathered rows
    (sum, squared deviations, output), which stay in L2; the order is fixed.
    """
    cols = tl.program_id(0) * BLOCK_D + tl.arange(0, BLOCK_D)
    col_ok = cols < D
    first = tl.load(step_ptr) * B  # int64: the batch index lives on the device
    lanes = tl.arange(0, BLOCK_B)
    total = tl.zeros([BLOCK_D], tl.float32)
    for b0 in range(0, B, BLOCK_B):
        rows = b0 + lanes
        ok = (rows < B)[:, None] & col_ok[None, :]
        src = tl.load(order_ptr + first + rows, mask=rows < B, other=0)
        total += tl.sum(tl.load(data_ptr + src[:, None] * stride_data + cols[None, :], mask=ok, other=0.0), axis=0)
    mean = tl.div_rn(total, B.to(tl.float32))
    total = tl.zeros([BLOCK_D], tl.float32)
    for b0 in range(0, B, BLOCK_B):
        rows = b0 + lanes
        ok = (rows < B)[:, None] & col_ok[None, :]
        src = tl.load(order_ptr + first + rows, mask=rows < B, other=0)
        v = tl.load(data_ptr + src[:, None] * stride_data + cols[None, :], mask=ok, other=0.0)
        dev = tl.where(ok, v - mean[None, :], 0.0)
        total += tl.sum(dev * dev, axis=0)
    var = tl.div_rn(total, B.to(tl.float32))  # biased: what the batch is normalised with
    inv_std = tl.div_rn(1.0, tl.sqrt_rn(var + eps))  # IEEE-rounded; tl.sqrt is approximate on GPUs
    for b0 in range(0, B, BLOCK_B):
        rows = b0 + lanes
        ok = (rows < B)[:, None] & col_ok[None, :]
        src = tl.load(order_ptr + first + rows, mask=rows < B, other=0)
        v = tl.load(data_ptr + src[:, None] * stride_data + cols[None, :], mask=ok, other=0.0)
        tl.store(x_ptr + rows[:, None] * D + cols[None, :], (v - mean[None, :]) * inv_std[None, :], mask=ok)
    running_mean = tl.load(mean_ptr + cols, mask=col_ok, other=0.0)
    running_var = tl.load(var_ptr + cols, mask=col_ok, other=0.0)
    tl.store(mean_ptr + cols, momentum * mean + (1.0 - momentum) * running_mean, mask=col_ok)
    unbiased = tl.div_rn(var * B, (B - 1).to(tl.float32))
    tl.store(var_ptr + cols, momentum * unbiased + (1.0 - momentum) * running_var, mask=col_ok)


def gather_batchnorm_triton(data: torch.Tensor, order: torch.Tensor, step: torch.Tensor, batch_size: int,
                            running_mean: torch.Tensor, running_var: torch.Tensor, momentum: float,
                            eps: float) -> torch.Tensor:
    """x (batch_size, D) = BatchNorm(data[order[step*B : step*B + B]]), the running statistics updated in place.

    data (samples, D) float32 contiguous, order int64 row indices (unchecked: the caller checks them
    once), step a 0-dim int64 device tensor (the batch number), all on one device."""
    D = data.shape[1]
    x = torch.empty(batch_size, D, dtype=data.dtype, device=data.device)
    block_b = min(next_pow2(batch_size), 64)
    block_d = max(16, min(64, next_pow2(cdiv(D, 8))))  # several programs for small D (LM: 4 of 16)
    jit(_gather_batchnorm_kernel)[(cdiv(D, block_d),)](
        data, order, step, x, running_mean, running_var, batch_size, D, data.stride(0), momentum, eps,
        BLOCK_B=block_b, BLOCK_D=block_d, **LAUNCH)
    return x
