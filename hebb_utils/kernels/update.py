"""The plastic update: dW = y^T x - s W (or a given dW), max-|dW| normalisation and W += lr * dW."""
from __future__ import annotations

import torch

from ..checks import finite_float
from ..constants import DW_EPS
from .launch import LAUNCH, cdiv, check_runnable, jit, next_pow2

tl = None  # bound by _triton.jit at the first kernel call

_UPDATE_BLOCK = 1024
_MAX_PARTS = 512


def _absmax_partial_kernel(g_ptr, w_ptr, s_ptr, part_ptr, numel, D, BLOCKS_PER_PROG, count_a_ptr, count_b_ptr,
                           HAS_S: tl.constexpr, COUNT: tl.constexpr, BLOCK: tl.constexpr):
    """part[p] = max |dW| over a contiguous run of BLOCKS_PER_PROG blocks (dW = g - s[:, None] W).

    COUNT: program 0 also adds 1 to two int64 counters (the graphed step's batch index and
    BatchNorm's num_batches_tracked), which saves a launch; no program here reads them.
    """
    pid = tl.program_id(0)
    if COUNT:
        if pid == 0:
            tl.store(count_a_ptr, tl.load(count_a_ptr) + 1)
            tl.store(count_b_ptr, tl.load(count_b_ptr) + 1)
    acc = tl.zeros([BLOCK], tl.float32)
    for i in range(BLOCKS_PER_PROG):
        offs = (pid * BLOCKS_PER_PROG + i) * BLOCK + tl.arange(0, BLOCK)
        ok = offs < numel
        d = tl.load(g_ptr + offs, mask=ok, other=0.0)
        if HAS_S:
            d = d - tl.load(s_ptr + offs // D, mask=ok, other=0.0) * tl.load(w_ptr + offs, mask=ok, other=0.0)
        acc = tl.maximum(acc, tl.abs(d))
    tl.store(part_ptr + pid, tl.max(acc, axis=0))


def _apply_kernel(w_ptr, g_ptr, s_ptr, part_ptr, n_parts, numel, D, lr,
                  HAS_S: tl.constexpr, EPS: tl.constexpr, BLOCK: tl.constexpr, PART_BLOCK: tl.constexpr):
    """W += lr * dW / (max|dW| + EPS); each program reduces the few partial maxima itself."""
    p = tl.load(part_ptr + tl.arange(0, PART_BLOCK), mask=tl.arange(0, PART_BLOCK) < n_parts, other=0.0)
    scale = tl.max(p, axis=0) + EPS
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < numel
    w = tl.load(w_ptr + offs, mask=ok, other=0.0)
    d = tl.load(g_ptr + offs, mask=ok, other=0.0)
    if HAS_S:
        d = d - tl.load(s_ptr + offs // D, mask=ok, other=0.0) * w
    tl.store(w_ptr + offs, w + lr * tl.div_rn(d, scale), mask=ok)  # IEEE division, like torch


def normalised_update(W, G, s, lr, counters=None):
    numel = W.numel()
    D = W.shape[1] if W.ndim == 2 else max(numel, 1)
    n_blocks = cdiv(numel, _UPDATE_BLOCK)
    per_prog = cdiv(n_blocks, min(n_blocks, _MAX_PARTS))
    n_parts = cdiv(n_blocks, per_prog)
    parts = torch.empty(n_parts, dtype=torch.float32, device=W.device)
    has_s = s is not None
    s_arg = s if has_s else G  # a placeholder pointer, never read
    count_a, count_b = counters if counters is not None else (parts, parts)  # placeholders, never touched
    jit(_absmax_partial_kernel)[(n_parts,)](
        G, W, s_arg, parts, numel, D, per_prog, count_a, count_b, HAS_S=has_s, COUNT=counters is not None,
        BLOCK=_UPDATE_BLOCK, **LAUNCH)
    jit(_apply_kernel)[(n_blocks,)](
        W, G, s_arg, parts, n_parts, numel, D, float(lr), HAS_S=has_s, EPS=DW_EPS, BLOCK=_UPDATE_BLOCK,
        PART_BLOCK=next_pow2(n_parts), **LAUNCH)


def _check_update_args(W, G, lr, g_name):
    if {W.dtype, G.dtype} != {torch.float32} or W.shape != G.shape or not (W.is_contiguous() and G.is_contiguous()):
        raise ValueError(f"W, {g_name}: expected contiguous float32 tensors of one shape (W is updated in place), "
                         f"got {tuple(W.shape)} {W.dtype} {W.stride()} and {tuple(G.shape)} {G.dtype} {G.stride()}")
    finite_float("lr", lr)
    check_runnable(W, G)


def apply_update_triton(W: torch.Tensor, dW: torch.Tensor, lr: float) -> None:
    """In place: W += lr * dW / (max|dW| + DW_EPS). The scale stays on the device (no host sync)."""
    _check_update_args(W, dW, lr, "dW")
    if W.numel():
        normalised_update(W, dW, None, lr)


def softhebb_update_triton(W: torch.Tensor, yx: torch.Tensor, s: torch.Tensor, lr: float) -> None:
    """In place: dW = yx - s[:, None] * W, then W += lr * dW / (max|dW| + DW_EPS).

    yx = y^T x (N, D) from cuBLAS; fusing the s W term saves writing and re-reading dW.
    """
    _check_update_args(W, yx, lr, "yx")
    if W.ndim != 2 or s.shape != (W.shape[0],) or s.dtype != torch.float32:
        raise ValueError(f"s: expected float32 of shape ({W.shape[0]},), got {s.dtype} {tuple(s.shape)}")
    if W.numel():
        normalised_update(W, yx, s.contiguous(), lr)
