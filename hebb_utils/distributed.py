"""Data-parallel SoftHebb and Sanger/Oja on torch.distributed (one process per device, under torchrun).

    torchrun --nproc_per_node N -m hebb_utils train --activations DIR --grid 40x80 ...

Every rank draws the same permutation from torch.Generator(seed) and takes its contiguous slice
of each global batch (`batch_slice`), so N ranks with global batch B see exactly the rows of one
process with batch B, in the same order. One SoftHebb step on the global batch:

    BatchNorm    sum x and sum x^2 (float64, D each) are all-reduced: every rank normalises with
                 the global batch's mean and biased variance, and updates the running statistics
                 with the unbiased one, as nn.BatchNorm1d does in training mode
    constant     min and max of each feature over the global batch (one MAX all-reduce of 2D):
                 a feature constant over the batch normalises to 0 (SoftHebbLinear.hebbian_step)
    update       u = x W^T, y, s on the local rows (softhebb._post_synaptic: per sample, so local is
                 exact); the local y^T x - s W is all-reduced (a sum over samples), and every rank
                 applies the same max-normalised step (softhebb._apply_update), so W stays equal
    winners      each rank counts its rows' winners; the counts are all-reduced at the end

Sanger/Oja: the batch sum y^T x - tril(y^T y) W is all-reduced and divided by the global batch.
With one process (no process group, or WORLD_SIZE=1) training runs SoftHebbLinear's own step, so
`train_softhebb_parallel` gives exactly `train_softhebb`'s weights. NCCL on GPUs, gloo on CPU.
"""
from __future__ import annotations

import datetime
import os
import time

import numpy as np
import torch
import torch.distributed as dist

from .checks import check_finite, device_of, positive_int

__all__ = ["init_distributed", "rank_world", "is_main", "batch_slice", "local_device", "train_softhebb_parallel",
           "sanger_parallel", "oja_parallel", "sanger_step_parallel", "SHUFFLES"]

DEFAULT_TIMEOUT_S = 6 * 3600  # ranks wait at collectives for the slowest rank's shards / epoch
SHUFFLES = ("global", "shard", "none")


# ------------------------------------------------------------------------------------------------
# the process group


def rank_world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, else (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    return rank_world()[0] == 0


def init_distributed(backend: str | None = None, timeout_s: float | None = None) -> tuple[int, int]:
    """Join the process group that torchrun describes (WORLD_SIZE, RANK, MASTER_ADDR, ...).

    backend None: NCCL when there is a GPU (each rank on cuda:LOCAL_RANK), gloo otherwise. Without
    WORLD_SIZE > 1 nothing is started and (0, 1) comes back. Returns (rank, world size).
    """
    if dist.is_available() and dist.is_initialized():
        return rank_world()
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return 0, 1
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch has no torch.distributed")
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend not in ("nccl", "gloo"):
        raise ValueError(f"backend={backend!r}: expected 'nccl' (GPUs) or 'gloo' (CPU)")
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s or DEFAULT_TIMEOUT_S))
    return rank_world()


def local_device(device=None) -> torch.device:
    """The device of this rank: `device` if given, else cuda:LOCAL_RANK under NCCL (or with a GPU), else cpu."""
    if device not in (None, "auto"):
        return device_of("device", device)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def batch_slice(n: int, rank: int, world: int) -> tuple[int, int]:
    """Positions [start, stop) of a global batch of n rows that `rank` of `world` takes:
    contiguous, in rank order, sizes differing by at most one (numpy.array_split's split)."""
    base, extra = divmod(int(n), int(world))
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


def _sum_(t: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def _max_(t: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t


# ------------------------------------------------------------------------------------------------
# SoftHebb


@torch.no_grad()
def _parallel_step(layer, x: torch.Tensor, n: int, lr: float, functions, world: int,
                   progress: float | None = None) -> torch.Tensor:
    """One step on the global batch of n rows, of which this rank holds x (b, D): returns the local u (b, N).
    progress: where this step lies in training, for a LateralSchedule (softhebb.schedule_progress)."""
    from .softhebb import _raw_update

    post_and_sums, apply_update = functions
    bn, W = layer.bn, layer.weight
    D = x.shape[1]
    # BatchNorm with the global batch statistics (float64 sums: cancellation ~1e-16 of mean^2)
    xd = x.double()
    sums = _sum_(torch.cat([xd.sum(0), (xd * xd).sum(0)]), world)  # (2D,)
    mean = sums[:D] / n
    var = (sums[D:] / n - mean * mean).clamp_min_(0.0)  # biased: what normalises the batch
    x_norm = ((xd - mean) * torch.rsqrt(var + bn.eps)).to(W.dtype)  # (b, D)
    if bn.track_running_stats:
        bn.num_batches_tracked.add_(1)
        m = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
        bn.running_mean.mul_(1 - m).add_((m * mean).to(bn.running_mean.dtype))
        bn.running_var.mul_(1 - m).add_((m * var * n / (n - 1)).to(bn.running_var.dtype))  # unbiased
    # a feature constant over the global batch normalises to exactly 0 (one MAX of -min and max)
    if x.shape[0]:
        lo, hi = torch.aminmax(x, dim=0)
    else:  # a rank with no rows in a small last batch
        lo = torch.full((D,), float("inf"), dtype=x.dtype, device=x.device)
        hi = -lo
    lohi = _max_(torch.cat([-lo, hi]), world)
    x_norm.masked_fill_(-lohi[:D] == lohi[D:], 0.0)
    # the update: local rows, summed over the ranks, then the same normalised step on every rank
    u = x_norm @ W.T  # (b, N)
    lateral = None if layer.lateral is None else layer.lateral.at(progress)
    y, s = post_and_sums(u, layer.t_invert, lateral, False)
    dW = _sum_(_raw_update(x_norm, W, y, s), world)  # (N, D) = sum over ranks of y^T x - s W
    apply_update(W, dW, lr)
    return u


class _Order:
    """The rows of one epoch in training order, handed out as consecutive position ranges.

    "global": one permutation of all rows (train_softhebb's); "shard": the shards in order, each
    one's rows permuted (only the current shard's permutation is held; reads stay in one or two
    shards at a time); "none": row order.
    """

    def __init__(self, n: int, shuffle: str, generator: torch.Generator, offsets: np.ndarray):
        self.shuffle, self.generator, self.offsets = shuffle, generator, offsets
        self.segments: list[tuple[int, torch.Tensor]] = []  # (first position, rows)
        self.k = 0
        if shuffle == "global":
            self.segments = [(0, torch.randperm(n, generator=generator, device=generator.device))]
        elif shuffle == "none":
            self.segments = [(0, torch.arange(n, device=generator.device))]

    def rows(self, start: int, stop: int) -> torch.Tensor:
        if self.shuffle == "shard":
            while self.offsets[self.k] < stop:  # draw the next shards' permutations as they are reached
                a, b = int(self.offsets[self.k]), int(self.offsets[self.k + 1])
                self.segments.append((a, a + torch.randperm(b - a, generator=self.generator, device=self.generator.device)))
                self.k += 1
            self.segments = [(a, r) for a, r in self.segments if a + len(r) > start]  # drop the past
        parts = [r[max(start - a, 0): stop - a] for a, r in self.segments if a < stop and a + len(r) > start]
        return parts[0] if len(parts) == 1 else torch.cat(parts)


def train_softhebb_parallel(layer, data, epochs: int = 1, batch_size: int = 64, lr: float = 0.08,
                            seed: int | None = 42, shuffle: str = "global", device=None, backend: str = "auto",
                            progress: bool = True, record_winners: bool = False):
    """Train `layer` in place, data-parallel over the ranks of torch.distributed; returns (layer, info).

    data: a (samples, D) tensor/array (every rank holds it; each uses its rows of each batch) or a
    streamed view (shards.ShardedActivations, from load_activations(folder, stream=True)), from
    which each rank reads only its rows. batch_size is the GLOBAL batch, split over the ranks.
    shuffle: "global" (one permutation of all rows per epoch, from torch.Generator(seed): the batches
    of train_softhebb), "shard" (shards in order, rows permuted within each: sequential reads, one
    shard resident) or "none". A last global batch of one sample is skipped (BatchNorm needs two).
    With one process the step is SoftHebbLinear's own, so the weights equal train_softhebb's with
    the same settings (in-memory data on the same device). The layer comes back in eval mode.

    info: steps, world_size, seconds, samples_per_s, wins (N,) how often each neuron won (summed
    over ranks, the same on all), and with record_winners the winner of every sample of every
    step in order (a list of (B,) tensors, gathered from the ranks).
    """
    from tqdm.auto import tqdm

    from .backend import resolve_backend
    from .shards import ShardedActivations
    from .softhebb import SoftHebbLinear, _lr, _step_functions, schedule_progress, seeded_generator, training_steps

    if not isinstance(layer, SoftHebbLinear):
        raise ValueError(f"layer: expected a SoftHebbLinear, got {type(layer).__name__}")
    epochs = positive_int("epochs", epochs)
    batch_size = positive_int("batch_size", batch_size, minimum=2, hint="the global batch; BatchNorm needs two")
    seed = None if seed is None else positive_int("seed", seed, minimum=0, hint="or None for a random seed")
    lr = _lr(lr)
    if shuffle is True or shuffle is False:
        shuffle = "global" if shuffle else "none"
    if shuffle not in SHUFFLES:
        raise ValueError(f"shuffle={shuffle!r}: expected one of {SHUFFLES}")
    rank, world = rank_world()
    if world > 1 and layer.legacy_batch_winner:
        raise ValueError("legacy_batch_winner=True flips every column that wins anywhere in the batch: it is not "
                         "data-parallel; train it in one process (or use the per-sample rule)")
    device = device_of("device", device) if device is not None else layer.weight.device
    layer.to(device)
    if isinstance(data, ShardedActivations):
        if data.dim != layer.in_features:
            raise ValueError(f"data has {data.dim} features per row but the layer has in_features={layer.in_features}")
        if len(data) < 2:
            raise ValueError(f"data has {len(data)} row(s): training needs at least 2")
        offsets, gen_device = data.offsets, torch.device("cpu")
        fetch = lambda rows: data.take(rows.cpu().numpy()).to(device)  # noqa: E731
    else:
        data = layer._input("data", data, batch_size)  # checked once, like train_softhebb
        offsets, gen_device = np.array([0, data.shape[0]]), data.device
        fetch = lambda rows: data[rows]  # noqa: E731
    n_samples = int(offsets[-1])
    steps_per_epoch = training_steps(n_samples, batch_size)
    functions = _step_functions(resolve_backend(backend, device))
    generator = seeded_generator(seed, gen_device)

    wins = torch.zeros(layer.out_features, dtype=torch.int64, device=device)
    winners = []
    bar = tqdm(total=epochs * steps_per_epoch, desc="softhebb" + (f" x{world}" if world > 1 else ""), unit="step",
               **({} if progress and rank == 0 else {"disable": True}))
    start_time = time.perf_counter()
    total = epochs * steps_per_epoch
    for epoch in range(epochs):
        order = _Order(n_samples, shuffle, generator, offsets)
        for step in range(steps_per_epoch):
            progress_t = schedule_progress(epoch * steps_per_epoch + step, total)  # a LateralSchedule's point
            a, b = step * batch_size, min((step + 1) * batch_size, n_samples)
            lo, hi = batch_slice(b - a, rank, world)
            x = fetch(order.rows(a + lo, a + hi))  # (b_local, D)
            if world == 1:
                u = layer._train_step(x, lr, functions, progress_t)
            else:
                if not isinstance(data, torch.Tensor):
                    check_finite("data", x)
                u = _parallel_step(layer, x, b - a, lr, functions, world, progress_t)
            won = u.argmax(dim=1)
            wins += torch.bincount(won, minlength=layer.out_features)
            if record_winners:
                winners.append(_gather_rows(won, b - a, world))
            bar.update(1)
    _sum_(wins, world)
    seconds = time.perf_counter() - start_time
    bar.close()
    layer.eval()
    info = {"steps": total, "world_size": world, "seconds": seconds, "wins": wins.cpu(),
            "samples_per_s": epochs * n_samples / seconds if seconds > 0 else float("inf"), "shuffle": shuffle}
    if record_winners:
        info["winners"] = winners
    return layer, info


def _gather_rows(local: torch.Tensor, n: int, world: int) -> torch.Tensor:
    """The global batch's (n,) values from each rank's slice, in rank order (for tests and logs)."""
    if world == 1:
        return local.cpu()
    size = -(-n // world)
    padded = torch.full((size,), -1, dtype=local.dtype, device=local.device)
    padded[: local.shape[0]] = local
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[: hi - lo] for p, (lo, hi) in zip(parts, (batch_slice(n, r, world) for r in range(world)))]).cpu()


# ------------------------------------------------------------------------------------------------
# Sanger and Oja


def sanger_step_parallel(W: torch.Tensor, x: torch.Tensor, lr: float, n: int) -> torch.Tensor:
    """One Sanger step on a global batch of n rows of which this rank holds x (b, D), IN PLACE:
    W += lr * (sum over all ranks of y^T x - tril(y^T y) W) / n. With one process: hebbian.sanger_step."""
    from .hebbian import _sanger_terms

    dW = _sum_(_sanger_terms(W, x), rank_world()[1])  # (k, D)
    return W.add_(dW / n, alpha=lr)


def sanger_parallel(X, n_components: int, **options) -> torch.Tensor:
    """hebbian.sanger, data-parallel: the top principal components as (k, D) rows.

    Every rank runs the same schedule on the same data stream (the mean and lambda_hat passes
    included, so they agree without communication) and takes its slice of each global batch; the
    batch terms are all-reduced. Options as hebbian.sanger (RunConfig; batch_size is global).
    """
    from .hebbian import _sanger_run

    rank, world = rank_world()

    def step(W, x, eta):  # x: the whole global batch, centred; this rank steps on its slice
        lo, hi = batch_slice(x.shape[0], rank, world)
        return sanger_step_parallel(W, x[lo:hi], eta, x.shape[0])

    return _sanger_run(X, n_components, options, lambda data: step)


def oja_parallel(X, **options) -> torch.Tensor:
    """hebbian.oja, data-parallel: the first principal component, a unit (D,) vector."""
    return sanger_parallel(X, 1, **options)[0]
