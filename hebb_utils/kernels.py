"""Triton kernels for the SoftHebb and Sanger updates, and the whole-epoch CUDA-graph loop.

The matrix products (u = x W^T, y^T x, y^T y) stay on cuBLAS through torch; the kernels fuse
the cheap but many element-wise steps between them:

- the SoftHebb post-synaptic step (steps 2-4 in hebb_utils/softhebb.py): stable softmax with
  temperature, per-sample winner (ties -> lowest index), sign flip, legacy batch-winner flip,
  lateral support from the winner's grid coordinates, and the column sums s_j = sum_b y_bj u_bj;
- the plastic update: dW = y^T x - s W, max-|dW| normalisation and W += lr * dW;
- the Sanger / Oja batched update around its two matrix products.

Every reduction has a fixed order (no float atomics), so two runs with the same seed on the
same device give bit-identical weights. The kernels run on CUDA, or on CPU tensors in Triton's
interpreter (TRITON_INTERPRET=1, set before the first kernel call), which is how the tests
check them against the torch reference.

Triton is imported lazily, at the first kernel call: this module imports with torch alone.
"""
from __future__ import annotations

import functools
import math
import numbers

import torch

__all__ = [
    "post_synaptic_triton",
    "apply_update_triton",
    "softhebb_update_triton",
    "sanger_step_triton",
    "train_epoch_graphed",
]

triton = None  # set by _load_triton(); the kernel bodies below read these module globals
tl = None
libdevice = None


def _load_triton():
    global triton, tl, libdevice
    if tl is None:
        import triton as _triton
        import triton.language as _tl
        from triton.language.extra import libdevice as _libdevice

        triton, tl, libdevice = _triton, _tl, _libdevice
    return triton


@functools.lru_cache(maxsize=None)
def _jit(fn):
    """triton.jit(fn), made at the first call so that TRITON_INTERPRET is read then, not at import."""
    return _load_triton().jit(fn)


# FMA contraction off: the kernels round like the unfused torch reference, and the choice does
# not depend on Triton's default (which changes in 3.10)
_LAUNCH = dict(enable_fp_fusion=False)


def _next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


# --------------------------------------------------------------------------------------------
# SoftHebb post-synaptic step
# --------------------------------------------------------------------------------------------

# The kernels take the lateral support as a code: none, the 1D variant or the 2D grid.
LATERAL_NONE, LATERAL_1D, LATERAL_2D = 0, 1, 2


def _row_stats_kernel(u_ptr, winner_ptr, umax_ptr, denom_ptr, B, N, stride_u, t_invert,
                      ACCURATE_EXP: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_N: tl.constexpr):
    """Per sample b: winner k_b (first argmax of u), m_b = max_j u_bj and sum_j exp(t (u_bj - m_b)).

    One program per BLOCK_R samples, looping over N in BLOCK_N chunks, two passes (max, then
    sum), which rounds like torch.softmax rather than an online rescaled sum.
    """
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    row_ok = rows < B
    lanes = tl.arange(0, BLOCK_N)
    # pass 1: lane-wise running max and the first index where it occurs (strict > keeps the
    # earliest chunk), then the lowest such index over lanes: the first argmax of the row.
    vmax = tl.full([BLOCK_R, BLOCK_N], float("-inf"), tl.float32)
    vidx = tl.zeros([BLOCK_R, BLOCK_N], tl.int32)
    for start in range(0, N, BLOCK_N):
        cols = start + lanes
        ok = row_ok[:, None] & (cols < N)[None, :]
        v = tl.load(u_ptr + rows[:, None] * stride_u + cols[None, :], mask=ok, other=float("-inf"))
        better = v > vmax
        vidx = tl.where(better, cols[None, :], vidx)
        vmax = tl.where(better, v, vmax)
    umax = tl.max(vmax, axis=1)  # (BLOCK_R,)
    winner = tl.min(tl.where(vmax == umax[:, None], vidx, N), axis=1)
    # pass 2: the softmax denominator
    acc = tl.zeros([BLOCK_R, BLOCK_N], tl.float32)
    for start in range(0, N, BLOCK_N):
        cols = start + lanes
        ok = row_ok[:, None] & (cols < N)[None, :]
        v = tl.load(u_ptr + rows[:, None] * stride_u + cols[None, :], mask=ok, other=0.0)
        # t * (u - max) as in the reference: exactly 0 at the winner, so its exp is exactly 1
        z = t_invert * (v - umax[:, None])
        if ACCURATE_EXP:
            e = libdevice.exp(z)
        else:
            e = tl.exp(z)
        acc += tl.where(ok, e, 0.0)
    denom = tl.sum(acc, axis=1)
    tl.store(winner_ptr + rows, winner, mask=row_ok)
    tl.store(umax_ptr + rows, umax, mask=row_ok)
    tl.store(denom_ptr + rows, denom, mask=row_ok)


def _post_output_kernel(u_ptr, y_ptr, s_ptr, winner_ptr, umax_ptr, denom_ptr, B, N, stride_u,
                        stride_y, t_invert, gain, radius2, radius_1d, grid_cols,
                        LEGACY: tl.constexpr, LATERAL: tl.constexpr, ACCURATE_EXP: tl.constexpr,
                        BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr):
    """y for a block of columns and all samples, and s_j = sum_b y_bj u_bj for those columns.

    One program per BLOCK_N columns, looping over the batch in a fixed order: the column sums
    are deterministic without atomics.
    """
    cols = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    col_ok = cols < N
    lanes_b = tl.arange(0, BLOCK_B)
    # legacy (published) rule: a column that wins for any sample turns positive for all samples
    won_any = tl.zeros([BLOCK_N], tl.int32)
    if LEGACY:
        for b0 in range(0, B, BLOCK_B):
            rows = b0 + lanes_b
            k = tl.load(winner_ptr + rows, mask=rows < B, other=-1)
            hit = (k[:, None] == cols[None, :]).to(tl.int32)
            won_any = tl.maximum(won_any, tl.max(hit, axis=0))
    if LATERAL == 2:  # grid coordinates of these columns
        col_r = cols // grid_cols
        col_c = cols % grid_cols
    s_acc = tl.zeros([BLOCK_N], tl.float32)
    for b0 in range(0, B, BLOCK_B):
        rows = b0 + lanes_b
        row_ok = rows < B
        ok = row_ok[:, None] & col_ok[None, :]
        u = tl.load(u_ptr + rows[:, None] * stride_u + cols[None, :], mask=ok, other=0.0)
        k = tl.load(winner_ptr + rows, mask=row_ok, other=-1)
        umax = tl.load(umax_ptr + rows, mask=row_ok, other=0.0)
        denom = tl.load(denom_ptr + rows, mask=row_ok, other=1.0)
        z = t_invert * (u - umax[:, None])
        if ACCURATE_EXP:
            p = tl.div_rn(libdevice.exp(z), denom[:, None])  # `/` is approximate (2 ulp) on GPUs
        else:
            p = tl.div_rn(tl.exp(z), denom[:, None])
        is_winner = cols[None, :] == k[:, None]
        if LEGACY:
            positive = is_winner | (won_any[None, :] != 0)
        else:
            positive = is_winner
        y = tl.where(positive, p, -p)
        if LATERAL != 0:
            # the winner's own value after the flip: exp(0) / denom
            support = (gain * tl.div_rn(1.0, denom))[:, None]
            if LATERAL == 1:  # k +- 1 .. k +- floor(radius), winner excluded; inside [0, N) by construction
                d = cols[None, :] - k[:, None]
                near = (d != 0) & (d <= radius_1d) & (d >= -radius_1d)
            else:  # Euclidean grid distance <= radius, winner included, no wrap
                dr = (col_r[None, :] - (k // grid_cols)[:, None]).to(tl.float32)
                dc = (col_c[None, :] - (k % grid_cols)[:, None]).to(tl.float32)
                near = dr * dr + dc * dc <= radius2
            y = tl.where(near, y + support, y)
        y = tl.where(ok, y, 0.0)
        tl.store(y_ptr + rows[:, None] * stride_y + cols[None, :], y, mask=ok)
        s_acc += tl.sum(y * u, axis=0)
    tl.store(s_ptr + cols, s_acc, mask=col_ok)


def _lateral_args(lateral, n: int):
    """(code, radius^2 + 1e-6, floor(radius), grid columns, gain) for the kernels."""
    if lateral is None:
        return LATERAL_NONE, 0.0, 0, 1, 0.0
    if lateral.n_neurons != n:
        raise ValueError(f"lateral: grid {tuple(lateral.grid)} has {lateral.n_neurons} neurons, u has {n} columns")
    if lateral.is_1d:
        return LATERAL_1D, 0.0, int(math.floor(lateral.radius)), 1, float(lateral.gain)
    return LATERAL_2D, float(lateral.radius) ** 2 + 1e-6, 0, int(lateral.cols), float(lateral.gain)


def _check_runnable(*tensors):
    for t in tensors:
        if t.device.type != "cuda" and not _interpreted():
            raise ValueError(
                f"Triton kernels need CUDA tensors, or TRITON_INTERPRET=1 set before the first kernel call "
                f"to run on {t.device.type} tensors in the interpreter; got a tensor on {t.device}"
            )


def _interpreted() -> bool:
    from .backend import triton_interpreted

    return triton_interpreted()


def post_synaptic_triton(u: torch.Tensor, t_invert: float, lateral=None, legacy_batch_winner: bool = False):
    """Steps 2-4 of SoftHebb and the column sums, fused: returns (y (B, N), s (N,)).

    u: (B, N) float32, finite (the caller validates: checking it here would synchronise the host).
    Same result as softhebb.post_synaptic, plus s_j = sum_b y_bj u_bj.
    """
    if u.ndim != 2 or u.shape[0] < 1 or u.shape[1] < 1:
        raise ValueError(f"u: expected a non-empty (batch, neurons) matrix, got shape {tuple(u.shape)}")
    if u.dtype != torch.float32:
        raise ValueError(f"u: expected float32, got {u.dtype}")
    if not t_invert > 0:
        raise ValueError(f"t_invert: expected > 0, got {t_invert}")
    _check_runnable(u)
    u = u.contiguous()
    B, N = u.shape
    code, radius2, radius_1d, grid_cols, gain = _lateral_args(lateral, N)
    y = torch.empty_like(u)
    s = torch.empty(N, dtype=u.dtype, device=u.device)
    winner = torch.empty(B, dtype=torch.int32, device=u.device)
    umax = torch.empty(B, dtype=u.dtype, device=u.device)
    denom = torch.empty(B, dtype=u.dtype, device=u.device)
    # tl.exp is ex2.approx on NVIDIA GPUs (~1e-6 relative for |z| ~ 20); libdevice's expf is
    # within 1 ulp, like torch.softmax. The interpreter has no libdevice (numpy's exp is exact).
    accurate = not _interpreted()
    # row statistics: tiles of at most 4096 values; several short rows share a program
    block_n = min(_next_pow2(N), 2048)
    block_r = max(1, min(4096 // block_n, 16, _next_pow2(B)))
    _jit(_row_stats_kernel)[(triton.cdiv(B, block_r),)](
        u, winner, umax, denom, B, N, u.stride(0), float(t_invert), ACCURATE_EXP=accurate, BLOCK_R=block_r,
        BLOCK_N=block_n, **_LAUNCH)
    block_n = min(_next_pow2(N), 64)
    block_b = min(_next_pow2(B), 32)
    _jit(_post_output_kernel)[(triton.cdiv(N, block_n),)](
        u, y, s, winner, umax, denom, B, N, u.stride(0), y.stride(0), float(t_invert), gain, radius2,
        radius_1d, grid_cols, LEGACY=bool(legacy_batch_winner), LATERAL=code, ACCURATE_EXP=accurate,
        BLOCK_B=block_b, BLOCK_N=block_n, **_LAUNCH)
    return y, s


# --------------------------------------------------------------------------------------------
# Plastic update: max-|dW| normalisation and W += lr * dW
# --------------------------------------------------------------------------------------------

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
                  HAS_S: tl.constexpr, BLOCK: tl.constexpr, PART_BLOCK: tl.constexpr):
    """W += lr * dW / (max|dW| + 1e-30); each program reduces the few partial maxima itself."""
    p = tl.load(part_ptr + tl.arange(0, PART_BLOCK), mask=tl.arange(0, PART_BLOCK) < n_parts, other=0.0)
    scale = tl.max(p, axis=0) + 1e-30
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < numel
    w = tl.load(w_ptr + offs, mask=ok, other=0.0)
    d = tl.load(g_ptr + offs, mask=ok, other=0.0)
    if HAS_S:
        d = d - tl.load(s_ptr + offs // D, mask=ok, other=0.0) * w
    tl.store(w_ptr + offs, w + lr * tl.div_rn(d, scale), mask=ok)  # IEEE division, like torch


_UPDATE_BLOCK = 1024
_MAX_PARTS = 512


def _normalised_update(W, G, s, lr, counters=None):
    numel = W.numel()
    D = W.shape[1] if W.ndim == 2 else max(numel, 1)
    n_blocks = triton.cdiv(numel, _UPDATE_BLOCK)
    per_prog = triton.cdiv(n_blocks, min(n_blocks, _MAX_PARTS))
    n_parts = triton.cdiv(n_blocks, per_prog)
    parts = torch.empty(n_parts, dtype=torch.float32, device=W.device)
    has_s = s is not None
    s_arg = s if has_s else G  # a placeholder pointer, never read
    count_a, count_b = counters if counters is not None else (parts, parts)  # placeholders, never touched
    _jit(_absmax_partial_kernel)[(n_parts,)](
        G, W, s_arg, parts, numel, D, per_prog, count_a, count_b, HAS_S=has_s, COUNT=counters is not None,
        BLOCK=_UPDATE_BLOCK, **_LAUNCH)
    _jit(_apply_kernel)[(n_blocks,)](
        W, G, s_arg, parts, n_parts, numel, D, float(lr), HAS_S=has_s, BLOCK=_UPDATE_BLOCK,
        PART_BLOCK=_next_pow2(n_parts), **_LAUNCH)


def _check_update_args(W, G, lr, g_name):
    if W.dtype != torch.float32 or G.dtype != torch.float32:
        raise ValueError(f"W, {g_name}: expected float32, got {W.dtype} and {G.dtype}")
    if W.shape != G.shape:
        raise ValueError(f"{g_name}: expected the shape of W {tuple(W.shape)}, got {tuple(G.shape)}")
    if not W.is_contiguous() or not G.is_contiguous():
        raise ValueError(f"W, {g_name}: expected contiguous tensors (W is updated in place)")
    if not math.isfinite(lr):
        raise ValueError(f"lr: expected a finite number, got {lr}")
    _check_runnable(W, G)
    _load_triton()


def apply_update_triton(W: torch.Tensor, dW: torch.Tensor, lr: float) -> None:
    """In place: W += lr * dW / (max|dW| + 1e-30). The scale stays on the device (no host sync)."""
    _check_update_args(W, dW, lr, "dW")
    if W.numel():
        _normalised_update(W, dW, None, lr)


def softhebb_update_triton(W: torch.Tensor, yx: torch.Tensor, s: torch.Tensor, lr: float) -> None:
    """In place: dW = yx - s[:, None] * W, then W += lr * dW / (max|dW| + 1e-30).

    yx = y^T x (N, D) from cuBLAS; fusing the s W term saves writing and re-reading dW.
    """
    _check_update_args(W, yx, lr, "yx")
    if W.ndim != 2 or s.shape != (W.shape[0],) or s.dtype != torch.float32:
        raise ValueError(f"s: expected float32 of shape ({W.shape[0]},), got {s.dtype} {tuple(s.shape)}")
    if W.numel():
        _normalised_update(W, yx, s.contiguous(), lr)


# --------------------------------------------------------------------------------------------
# Sanger / Oja batched update
# --------------------------------------------------------------------------------------------

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
    """One batched Sanger step, in place like pca.sanger_step: W += lr * (y^T x - tril(y^T y) W) / B
    with y = x W^T. Returns W.

    W: (m, D) contiguous float32, components as rows; x: (B, D). With m = 1 this is Oja's rule.
    The three matrix products run on cuBLAS; the kernel fuses the triangular product, the
    subtraction and the add into a new buffer, copied back into W (m x D is small).
    """
    if W.ndim != 2 or x.ndim != 2 or x.shape[1] != W.shape[1]:
        raise ValueError(f"x: expected (batch, {W.shape[-1]}) for W of shape {tuple(W.shape)}, got {tuple(x.shape)}")
    if x.shape[0] < 1:
        raise ValueError("x: expected at least one sample")
    if W.dtype != torch.float32 or x.dtype != torch.float32:
        raise ValueError(f"W, x: expected float32, got {W.dtype} and {x.dtype}")
    if not W.is_contiguous():
        raise ValueError("W: expected a contiguous tensor (it is updated in place)")
    _check_runnable(W, x)
    _load_triton()
    y = x @ W.T  # (B, m)
    G = (y.T @ x).contiguous()  # (m, D)
    C = (y.T @ y).contiguous()  # (m, m)
    M, D = W.shape
    out = torch.empty_like(W)
    block_m = min(_next_pow2(M), 32)
    block_d = min(_next_pow2(D), 128)
    _jit(_sanger_kernel)[(triton.cdiv(M, block_m), triton.cdiv(D, block_d))](
        W, out, G, C, M, D, float(lr), float(x.shape[0]), BLOCK_M=block_m, BLOCK_D=block_d, **_LAUNCH)
    return W.copy_(out)


# --------------------------------------------------------------------------------------------
# Whole epoch on CUDA: device-side batches, steps captured in CUDA graphs and replayed
# --------------------------------------------------------------------------------------------

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


def _device_step(data, order, step, bn_state, W, batch_size, t_invert, lateral, legacy, lr):
    """One SoftHebb step on batch number `step` (a 0-dim int64 device tensor) of `order`, all on
    the device: 7 launches (gather + BatchNorm, x W^T, 2 post-synaptic, y^T x, 2 update), and
    the update's first kernel advances `step` and BatchNorm's num_batches_tracked.

    bn_state = (running_mean, running_var, num_batches_tracked, momentum, eps), updated in place
    as nn.BatchNorm1d does in training mode.
    """
    running_mean, running_var, n_tracked, momentum, eps = bn_state
    D = data.shape[1]
    x = torch.empty(batch_size, D, dtype=data.dtype, device=data.device)
    block_b = min(_next_pow2(batch_size), 64)
    block_d = max(16, min(64, _next_pow2(triton.cdiv(D, 8))))  # several programs for small D (LM: 4 of 16)
    _jit(_gather_batchnorm_kernel)[(triton.cdiv(D, block_d),)](
        data, order, step, x, running_mean, running_var, batch_size, D, data.stride(0), momentum, eps,
        BLOCK_B=block_b, BLOCK_D=block_d, **_LAUNCH)
    u = x @ W.T  # (B, N) cuBLAS
    y, s = post_synaptic_triton(u, t_invert, lateral, legacy)
    _normalised_update(W, y.T @ x, s, lr, counters=(step, n_tracked))  # y^T x on cuBLAS, the rest fused


def _layer_state(layer):
    bn = layer.bn
    if bn.momentum is None or not bn.track_running_stats or bn.affine:
        raise ValueError("layer.bn: train_epoch_graphed expects BatchNorm1d(affine=False) with a float momentum "
                         "and running statistics (as SoftHebbLinear builds it)")
    return (bn.running_mean, bn.running_var, bn.num_batches_tracked, float(bn.momentum), float(bn.eps))


# steps per CUDA graph: one replay runs this many steps (fewer host calls and gaps between graphs)
STEPS_PER_GRAPH = 16


def train_epoch_graphed(layer, data: torch.Tensor, order: torch.Tensor, batch_size: int, lr: float,
                        snapshot_every: int, step0: int = 0, use_graph: bool = True) -> torch.Tensor:
    """One epoch of SoftHebb training on CUDA, as softhebb.train_softhebb's eager loop does it.

    layer: a SoftHebbLinear on the GPU; data (samples, D) float32 on the GPU, already checked for
    finite values; order (samples,) int64 on the GPU, the shuffled sample order. Batch i is
    order[i*B : (i+1)*B]; a last partial batch of >= 2 samples is taken eagerly, one of 1 is
    skipped (BatchNorm needs two samples). The full batches replay steps captured in CUDA graphs
    (STEPS_PER_GRAPH steps per graph, and a one-step graph for the rest): no host
    synchronisation and no host copy per step. Updates layer.weight and the BatchNorm running
    statistics in place.

    Returns (k, N, D) on the GPU: the weights after every global step t (counted from step0 + 1)
    with t % snapshot_every == 0 in this epoch, copied on the device between replays.

    use_graph=False runs the same device-side steps eagerly instead of replaying graphs: slower,
    but it runs wherever the kernels do (the CPU tests use it under TRITON_INTERPRET=1).
    """
    if use_graph and data.device.type != "cuda":
        raise ValueError(f"data: CUDA graphs need CUDA tensors, got {data.device}; pass use_graph=False")
    W = layer.weight
    if W.device != data.device or order.device != data.device:
        raise ValueError(f"layer, data, order: expected one device, got {W.device}, {data.device}, {order.device}")
    n = data.shape[0]
    if data.ndim != 2 or data.shape[1] != W.shape[1] or data.dtype != torch.float32 or W.dtype != torch.float32:
        raise ValueError(f"data: expected ({n}, {W.shape[1]}) float32 like W, got {tuple(data.shape)} {data.dtype}")
    if order.shape != (n,) or order.dtype != torch.int64:
        raise ValueError(f"order: expected ({n},) int64, got {tuple(order.shape)} {order.dtype}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 2:
        raise ValueError(f"batch_size={batch_size!r}: expected an integer >= 2")
    if isinstance(snapshot_every, bool) or not isinstance(snapshot_every, numbers.Integral) or snapshot_every < 1:
        raise ValueError(f"snapshot_every={snapshot_every!r}: expected a positive integer")
    batch_size, snapshot_every, step0 = int(batch_size), int(snapshot_every), int(step0)
    if not W.is_contiguous():
        raise ValueError("layer.weight: expected a contiguous tensor (it is updated in place)")
    _check_runnable(W)
    _load_triton()
    bn_state = _layer_state(layer)
    settings = (batch_size, layer.t_invert, layer.lateral, layer.legacy_batch_winner, float(lr))
    data, order = data.contiguous(), order.contiguous()
    n_full, rest = divmod(n, batch_size)
    n_steps = n_full + (rest >= 2)
    snap_steps = [i for i in range(n_steps) if (step0 + i + 1) % snapshot_every == 0]  # 0-based in the epoch
    snapshots = torch.empty((len(snap_steps), *W.shape), dtype=W.dtype, device=W.device)
    step = torch.zeros((), dtype=torch.int64, device=W.device)

    # the full batches in segments that end where a snapshot is due
    ends = [i + 1 for i in snap_steps if i < n_full]
    due = set(snap_steps)
    segments = [(b - a, b - 1 in due) for a, b in zip([0] + ends, ends + [n_full]) if b > a]
    with torch.no_grad():
        run_many, run_one = _step_runners(data, order, step, bn_state, W, settings, segments, use_graph)
        slot = 0
        for length, snapshot in segments:
            for _ in range(length // STEPS_PER_GRAPH):
                run_many()
            for _ in range(length % STEPS_PER_GRAPH):
                run_one()
            if snapshot:
                snapshots[slot].copy_(W)
                slot += 1
        if rest >= 2:  # the last, partial batch: the same step, eagerly, on the rows left
            _device_step(data, order[n_full * batch_size:], torch.zeros_like(step), bn_state, W, rest, *settings[1:])
            if n_full in due:
                snapshots[slot].copy_(W)
                slot += 1
    assert slot == len(snap_steps), (slot, snap_steps)
    return snapshots


def _step_runners(data, order, step, bn_state, W, settings, segments, use_graph):
    """(run STEPS_PER_GRAPH steps, run 1 step): replays of CUDA graphs, or eager calls."""
    def steps(k, state=bn_state, weight=W, counter=step):
        def run():
            for _ in range(k):
                _device_step(data, order, counter, state, weight, *settings)
        return run

    if not use_graph:
        return steps(STEPS_PER_GRAPH), steps(1)
    need_many = any(length >= STEPS_PER_GRAPH for length, _ in segments)
    need_one = any(length % STEPS_PER_GRAPH for length, _ in segments)
    if not (need_many or need_one):
        return None, None
    # Warm-up (Triton compilation, cuBLAS set-up) on copies of the state, so the layer is
    # untouched until the first replay; then capture, on a side stream. (Not torch.cuda.graph,
    # whose empty_cache() would hand all cached blocks back to the driver at every epoch.)
    main = torch.cuda.current_stream(W.device)
    side = torch.cuda.Stream(device=W.device)
    side.wait_stream(main)
    graphs, pool = [], None
    with torch.cuda.stream(side):
        warm_state = tuple(t.clone() if isinstance(t, torch.Tensor) else t for t in bn_state)
        steps(1, warm_state, W.clone(), step.clone())()
        side.synchronize()  # once per epoch: the warm-up has finished before capture starts
        for k, needed in ((STEPS_PER_GRAPH, need_many), (1, need_one)):
            if not needed:
                graphs.append(None)
                continue
            graph = torch.cuda.CUDAGraph()
            graph.capture_begin(pool=pool)  # the two graphs share one memory pool
            steps(k)()
            graph.capture_end()
            pool = graph.pool()
            graphs.append(graph.replay)
    main.wait_stream(side)
    step.zero_()  # capture records, it does not run; start at batch 0 all the same
    return graphs[0], graphs[1]
