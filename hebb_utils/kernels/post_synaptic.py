"""The SoftHebb post-synaptic step (steps 2-4 of hebb_utils/softhebb.py) and the column sums, fused."""
from __future__ import annotations

import torch

from ..checks import finite_float
from .launch import LAUNCH, cdiv, check_runnable, jit, next_pow2, triton_interpreted
from .support import NO_SUPPORT, KernelSupport

tl = libdevice = None  # bound by _triton.jit at the first kernel call

# The kernels take the lateral support as a code (kernels/support.py): none, the 1D variant, the 2D grid's
# disc or its Gaussian.


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
                        stride_y, t_invert, gain, reach, radius_1d, grid_cols,
                        LEGACY: tl.constexpr, LATERAL: tl.constexpr, ACCURATE_EXP: tl.constexpr,
                        BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr):
    """y for a block of columns and all samples, and s_j = sum_b y_bj u_bj for those columns.

    One program per BLOCK_N columns, looping over the batch in a fixed order: the column sums
    are deterministic without atomics. reach: radius^2 + RADIUS_EPS for the disc (LATERAL 2), the
    Gaussian's exponent scale -1 / (2 radius^2) for LATERAL 3.
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
    if LATERAL >= 2:  # grid coordinates of these columns
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
        p = tl.where(p < 1.1754943508222875e-38, 0.0, p)  # below float32's normal range: 0, as the reference
        is_winner = cols[None, :] == k[:, None]
        if LEGACY:
            positive = is_winner | (won_any[None, :] != 0)
        else:
            positive = is_winner
        y = tl.where(positive, p, -p)
        if LATERAL != 0:
            # the winner's own value after the flip: exp(0) / denom
            support = (gain * tl.div_rn(1.0, denom))[:, None]
            if LATERAL == 1:  # support.ONE_D: k +- 1 .. k +- floor(radius), winner excluded; inside [0, N) by construction
                d = cols[None, :] - k[:, None]
                near = (d != 0) & (d <= radius_1d) & (d >= -radius_1d)
                y = tl.where(near, y + support, y)
            elif LATERAL == 2:  # support.DISC: Euclidean grid distance <= radius, winner included, no wrap
                dr = (col_r[None, :] - (k // grid_cols)[:, None]).to(tl.float32)
                dc = (col_c[None, :] - (k % grid_cols)[:, None]).to(tl.float32)
                near = dr * dr + dc * dc <= reach
                y = tl.where(near, y + support, y)
            else:  # support.GAUSSIAN over the whole grid, winner included (h = 1): a row times a column factor
                dr = (col_r[None, :] - (k // grid_cols)[:, None]).to(tl.float32)
                dc = (col_c[None, :] - (k % grid_cols)[:, None]).to(tl.float32)
                if ACCURATE_EXP:
                    h = libdevice.exp(dr * dr * reach) * libdevice.exp(dc * dc * reach)
                else:
                    h = tl.exp(dr * dr * reach) * tl.exp(dc * dc * reach)
                y = y + support * h
        y = tl.where(ok, y, 0.0)
        tl.store(y_ptr + rows[:, None] * stride_y + cols[None, :], y, mask=ok)
        s_acc += tl.sum(y * u, axis=0)
    tl.store(s_ptr + cols, s_acc, mask=col_ok)


def _support_args(lateral, n: int) -> KernelSupport:
    """What the kernels read of `lateral`: the KernelSupport it describes itself as (none for None)."""
    if lateral is None:
        return NO_SUPPORT
    if not hasattr(lateral, "kernel_support"):
        raise ValueError(f"lateral: expected a Lateral or None, got {type(lateral).__name__}; a LateralSchedule "
                         "gives each step's support as lateral.at(progress)")
    if lateral.n_neurons != n:
        raise ValueError(f"lateral: grid {lateral.grid.shape} has {lateral.n_neurons} neurons, u has {n} columns")
    return lateral.kernel_support()


def post_synaptic_triton(u: torch.Tensor, t_invert: float, lateral=None, legacy_batch_winner: bool = False):
    """Steps 2-4 of SoftHebb and the column sums, fused: returns (y (B, N), s (N,)).

    u: (B, N) float32, finite (the caller validates: checking it here would synchronise the host).
    Same result as softhebb.post_synaptic, plus s_j = sum_b y_bj u_bj.
    """
    if u.ndim != 2 or u.shape[0] < 1 or u.shape[1] < 1 or u.dtype != torch.float32:
        raise ValueError(f"u: expected a non-empty (batch, neurons) float32 matrix, got {tuple(u.shape)} {u.dtype}")
    t_invert = finite_float("t_invert", t_invert, minimum=0, strict_minimum=True)
    check_runnable(u)
    u = u.contiguous()
    B, N = u.shape
    code, reach, radius_1d, grid_cols, gain = _support_args(lateral, N)
    y = torch.empty_like(u)
    s = torch.empty(N, dtype=u.dtype, device=u.device)
    winner = torch.empty(B, dtype=torch.int32, device=u.device)
    umax, denom = torch.empty(2, B, dtype=u.dtype, device=u.device)  # two contiguous rows
    # tl.exp is ex2.approx on NVIDIA GPUs (~1e-6 relative for |z| ~ 20); libdevice's expf is
    # within 1 ulp, like torch.softmax. The interpreter has no libdevice (numpy's exp is exact).
    accurate = not triton_interpreted()
    # row statistics: tiles of at most 4096 values; several short rows share a program
    block_n = min(next_pow2(N), 2048)
    block_r = max(1, min(4096 // block_n, 16, next_pow2(B)))
    jit(_row_stats_kernel)[(cdiv(B, block_r),)](
        u, winner, umax, denom, B, N, u.stride(0), float(t_invert), ACCURATE_EXP=accurate, BLOCK_R=block_r,
        BLOCK_N=block_n, **LAUNCH)
    block_n = min(next_pow2(N), 64)
    block_b = min(next_pow2(B), 32)
    jit(_post_output_kernel)[(cdiv(N, block_n),)](
        u, y, s, winner, umax, denom, B, N, u.stride(0), y.stride(0), float(t_invert), gain, reach,
        radius_1d, grid_cols, LEGACY=bool(legacy_batch_winner), LATERAL=code, ACCURATE_EXP=accurate,
        BLOCK_B=block_b, BLOCK_N=block_n, **LAUNCH)
    return y, s
