"""A whole SoftHebb epoch on CUDA: device-side batches, the steps captured in CUDA graphs and replayed.

It takes a SoftHebbLinear and runs the kernels of hebb_utils/kernels (gather + BatchNorm, the
post-synaptic step, the normalised update) on it; train_softhebb calls it for a fixed support on CUDA.
"""
from __future__ import annotations

import torch

from ..checks import positive_int, vector
from ..kernels.batchnorm import gather_batchnorm_triton
from ..kernels.launch import check_runnable
from ..kernels.post_synaptic import post_synaptic_triton
from ..kernels.update import normalised_update
from .lateral import Lateral
from .schedule import snapshot_steps, training_steps

__all__ = ["train_epoch_graphed", "STEPS_PER_GRAPH"]

# steps per CUDA graph: one replay runs this many steps (fewer host calls and gaps between graphs)
STEPS_PER_GRAPH = 16


def _device_step(data, order, step, bn_state, W, batch_size, t_invert, lateral, legacy, lr):
    """One SoftHebb step on batch number `step` (a 0-dim int64 device tensor) of `order`, all on
    the device: 7 launches (gather + BatchNorm, x W^T, 2 post-synaptic, y^T x, 2 update), and
    the update's first kernel advances `step` and BatchNorm's num_batches_tracked.

    bn_state = (running_mean, running_var, num_batches_tracked, momentum, eps), updated in place
    as nn.BatchNorm1d does in training mode.
    """
    running_mean, running_var, n_tracked, momentum, eps = bn_state
    x = gather_batchnorm_triton(data, order, step, batch_size, running_mean, running_var, momentum, eps)
    u = x @ W.T  # (B, N) cuBLAS
    y, s = post_synaptic_triton(u, t_invert, lateral, legacy)
    normalised_update(W, y.T @ x, s, lr, counters=(step, n_tracked))  # y^T x on cuBLAS, the rest fused


def _layer_state(layer):
    bn = layer.bn
    if bn.momentum is None or not bn.track_running_stats or bn.affine:
        raise ValueError("layer.bn: train_epoch_graphed expects BatchNorm1d(affine=False) with a float momentum "
                         "and running statistics (as SoftHebbLinear builds it)")
    return (bn.running_mean, bn.running_var, bn.num_batches_tracked, float(bn.momentum), float(bn.eps))


def _check_order(order, n: int, device: torch.device) -> torch.Tensor:
    """order as int64 on `device`, n indices in [0, n): the kernels gather data[order[i]] unchecked."""
    order = vector("order", order, length=n, integer=True)
    if order.device != device:
        raise ValueError(f"order is on {order.device}, data on {device}: move it with order.to(data.device)")
    if n:
        low, high = (int(v) for v in torch.aminmax(order))
        if low < 0 or high >= n:
            raise ValueError(f"order holds indices from {low} to {high}: expected row indices in [0, {n}) of data "
                             f"(a permutation such as torch.randperm({n}))")
    return order.long().contiguous()


def train_epoch_graphed(layer, data: torch.Tensor, order: torch.Tensor, batch_size: int, lr: float,
                        snapshot_every: int, step0: int = 0, use_graph: bool = True) -> torch.Tensor:
    """One epoch of SoftHebb training on CUDA, as softhebb.train_softhebb's eager loop does it.

    layer: a SoftHebbLinear; data (samples, D) float32 on its device, already checked for finite
    values; order (samples,) integers on that device in [0, samples), the shuffled sample order
    (checked once, one host sync: a bad order raises ValueError before any step). Batch i is
    order[i*B : (i+1)*B]; the last partial batch is taken eagerly when training_steps counts it.
    The full batches replay steps captured in CUDA graphs (STEPS_PER_GRAPH steps per graph, and a
    one-step graph for the rest): no host sync or copy per step. The graphs hold the lateral
    support's settings (disc or Gaussian): a layer with a LateralSchedule is refused, since its
    support changes every step (train_softhebb steps it eagerly). Updates layer.weight and the
    BatchNorm running statistics in place. Returns (k, N, D) on the device: the weights after the
    steps of this epoch (global, from step0 + 1) that snapshot_steps schedules at multiples of
    snapshot_every; train_softhebb takes the initial and the final weights itself. use_graph=False
    runs the same device-side steps eagerly: slower, but wherever the kernels run (CPU tests).
    """
    if use_graph and data.device.type != "cuda":
        raise ValueError(f"data: CUDA graphs need CUDA tensors, got {data.device}; pass use_graph=False")
    W, n = layer.weight, data.shape[0]
    if (data.ndim != 2 or data.shape[1] != W.shape[1] or {data.dtype, W.dtype} != {torch.float32}
            or W.device != data.device):
        raise ValueError(f"data: expected ({n}, {W.shape[1]}) float32 on {W.device} like layer.weight, "
                         f"got {tuple(data.shape)} {data.dtype} on {data.device}")
    order = _check_order(order, n, data.device)
    batch_size = positive_int("batch_size", batch_size, minimum=2, hint="BatchNorm needs two samples")
    snapshot_every = positive_int("snapshot_every", snapshot_every)
    step0 = positive_int("step0", step0, minimum=0)
    if not W.is_contiguous():
        raise ValueError("layer.weight: expected a contiguous tensor (it is updated in place)")
    check_runnable(W)
    if layer.lateral is not None and not isinstance(layer.lateral, Lateral):
        raise ValueError(f"layer.lateral is a {type(layer.lateral).__name__}: the CUDA graphs hold one fixed "
                         "lateral support (a Lateral or None), a schedule changes it every step; train with "
                         "train_softhebb, which steps a LateralSchedule eagerly")
    bn_state = _layer_state(layer)
    settings = (batch_size, layer.t_invert, layer.lateral, layer.legacy_batch_winner, float(lr))
    data = data.contiguous()
    n_full, n_steps = n // batch_size, training_steps(n, batch_size)  # n_steps > n_full: a partial batch
    # this epoch's part of train_softhebb's schedule: its steps at multiples of snapshot_every
    snap_steps = [t - step0 - 1 for t in snapshot_steps(step0 + n_steps, snapshot_every)
                  if t > step0 and t % snapshot_every == 0]  # 0-based in the epoch
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
        if n_steps > n_full:  # the last, partial batch: the same step, eagerly, on the rows left
            rest = order[n_full * batch_size:]
            _device_step(data, rest, torch.zeros_like(step), bn_state, W, len(rest), *settings[1:])
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
