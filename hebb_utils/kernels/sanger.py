"""The Sanger / Oja batched update: W += lr * (y^T x - tril(y^T y) W) / B, y = x W^T."""
from __future__ import annotations

import torch

from .launch import LAUNCH, cdiv, check_runnable, jit, next_pow2

tl = None  # bound by _triton.jit at the first kernel call


def _sanger_kernel(w_ptr, out_ptr, g_ptr, c_ptr, M, D, lr, batch,
                   BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr):
    """out = W + lr * (G - tril(C) W) / B for a (BLOCK_M, BLOCK_D) tile; G = y^T x, C = y^T y.

    Row i of tril(C) W needs rows k <= i of W, so the result goes to a separate buffer (no
    program reads rows another one writes). The k-loop is an exact float32 outer-product sum.
    """
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    row_ok = rows < M
    col_ok = cols < D
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    for k in range(0, M):
        c = tl.load(c_ptr + rows * M + k, mask=row_ok & (rows >= k), other=0.0)  # tril(C)[rows, k]
        w_k = tl.load(w_ptr + k * D + cols, mask=col_ok, other=0.0)
        acc += c[:, None] * w_k[None, :]
    ok = row_ok[:, None] & col_ok[None, :]
    tile = rows[:, None] * D + cols[None, :]
    w = tl.load(w_ptr + tile, mask=ok, other=0.0)
    g = tl.load(g_ptr + tile, mask=ok, other=0.0)
    tl.store(out_ptr + tile, w + lr * tl.div_rn(g - acc, batch), mask=ok)


def sanger_step_triton(W: torch.Tensor, x: torch.Tensor, lr: float) -> torch.Tensor:
    """One batched Sanger step, in place like hebbian.sanger_step: W += lr * (y^T x - tril(y^T y) W) / B
    with y = x W^T. Returns W.

    W: (m, D) contiguous float32, components as rows; x: (B, D). With m = 1 this is Oja's rule.
    The three matrix products run on cuBLAS; the kernel fuses the triangular product, the
    subtraction and the add into a new buffer, copied back into W (m x D is small).
    """
    if W.ndim != 2 or x.ndim != 2 or x.shape[1] != W.shape[1] or x.shape[0] < 1:
        raise ValueError(f"x: expected (batch >= 1, {W.shape[-1]}) for W of shape {tuple(W.shape)}, "
                         f"got {tuple(x.shape)}")
    if {W.dtype, x.dtype} != {torch.float32} or not W.is_contiguous():
        raise ValueError(f"W, x: expected float32 and W contiguous (it is updated in place), got {W.dtype} and "
                         f"{x.dtype}, W contiguous: {W.is_contiguous()}")
    check_runnable(W, x)
    y = x @ W.T  # (B, m)
    G = (y.T @ x).contiguous()  # (m, D)
    C = (y.T @ y).contiguous()  # (m, m)
    M, D = W.shape
    out = torch.empty_like(W)
    block_m = min(next_pow2(M), 32)
    block_d = min(next_pow2(D), 128)
    jit(_sanger_kernel)[(cdiv(M, block_m), cdiv(D, block_d))](
        W, out, G, C, M, D, float(lr), float(x.shape[0]), BLOCK_M=block_m, BLOCK_D=block_d, **LAUNCH)
    return W.copy_(out)
