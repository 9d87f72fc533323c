"""Training a SoftHebb layer: one loop for one process and for N (torch.distributed, under torchrun).

    torchrun --nproc_per_node N -m hebb_utils train --activations DIR --grid 40x80 ...

`train_softhebb` (one process) and `train_softhebb_parallel` (the ranks of a process group) are the
same loop, `_train`. Every rank draws the same permutation from torch.Generator(seed) and takes its
contiguous slice of each global batch (`parallel.batch_slice`), so N ranks with global batch B see
exactly the rows of one process with batch B, in the same order. With one process the step is
SoftHebbLinear's own (`train_step`); with N, one step on the global batch is:

    BatchNorm    sum x and sum x^2 (float64, D each) are all-reduced: every rank normalises with
                 the global batch's mean and biased variance, and updates the running statistics
                 with the unbiased one, as nn.BatchNorm1d does in training mode
    constant     min and max of each feature over the global batch (one MAX all-reduce of 2D):
                 a feature constant over the batch normalises to 0 (SoftHebbLinear.hebbian_step)
    update       u = x W^T, y, s on the local rows (softhebb.post_synaptic_sums: per sample, so local
                 is exact); the local y^T x - s W is all-reduced (a sum over samples), and every rank
                 applies the same max-normalised step (softhebb.apply_update), so W stays equal
    winners      each rank counts its rows' winners; the counts are all-reduced at the end

Before the first step the ranks compare their settings and data (one all-gather): a rank started
with another lr, seed, batch size or data set is named, instead of hanging or drifting apart.
Data: a (samples, D) tensor or array (checked once), or a streamed store (data.store.
ShardedActivations, each batch checked as it is read).
"""
from __future__ import annotations

import hashlib
import time

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from ..backend import resolve_backend, step_functions
from ..checks import device_of, positive_int
from ..data.store import ShardedActivations
from ..parallel import all_max, all_sum, batch_slice, rank_world
from ..settings import CIFAR10
from .lateral import LateralSchedule
from .layer import SoftHebbLinear
from .pursuit import PursuitLinear
from .schedule import schedule_progress, seeded_generator, snapshot_steps, training_steps
from .softhebb import check_lr, raw_update

__all__ = ["train_softhebb", "train_softhebb_parallel", "SHUFFLES"]

SHUFFLES = ("global", "shard", "none")


def train_softhebb(
    layer: SoftHebbLinear,
    data,
    epochs: int = CIFAR10.epochs,
    batch_size: int = CIFAR10.batch_size,
    lr: float = CIFAR10.lr,
    seed: int | None = CIFAR10.seed,
    shuffle: bool | str = True,
    snapshot_every: int | None = None,
    device: torch.device | str | None = None,
    backend: str = "auto",
    progress: bool = True,
) -> tuple[SoftHebbLinear, torch.Tensor]:
    """Train `layer` in place on data (samples, in_features) of floats; returns (layer, snapshots).

    Each epoch draws a permutation from torch.Generator(seed) on the data's device (one generator
    for the whole run, so epochs differ; seed=None: a fresh random seed, so runs differ) and steps
    over batches of `batch_size`; a final batch of a single sample is skipped, because BatchNorm
    needs two. The defaults are the published CIFAR-10 run's (settings.CIFAR10; the LM run used lr 0.2). The data are
    checked once (finite, no variance overflow) and converted to the layer's dtype; a streamed store
    (load_activations(folder, stream=True)) is checked batch by batch. shuffle: True ("global"),
    False ("none") or "shard" (a store's shards in order, rows permuted within each).

    snapshots: (n, N, D) on the CPU, the weights before the first step, after every
    `snapshot_every`-th step (counted over all epochs), and after the last step (not twice):
    the steps `snapshot_steps(training_steps(len(data), batch_size, epochs), snapshot_every)`.
    With snapshot_every=None: the initial and the final weights.

    The layer and the data move to `device` (default: the layer's). The layer comes back in eval
    mode, so layer(x) uses the running statistics. A layer whose lateral support is a LateralSchedule
    takes step t (0-based, over all epochs) with lateral.at(schedule_progress(t, total_steps)). On
    CUDA with the Triton backend each epoch of a fixed support runs in
    hebb_utils.rules.graphed_epoch (CUDA graphs); a schedule steps eagerly. progress=False hides the tqdm bar
    (with progress=True, TQDM_DISABLE=1 still hides it). Always one process: for the ranks of a
    process group, train_softhebb_parallel.
    """
    if shuffle is True or shuffle is False:
        shuffle = "global" if shuffle else "none"
    layer, info = _train(layer, data, epochs, batch_size, lr, seed, shuffle, snapshot_every, device, backend,
                         progress, record_winners=False, world=1)
    return layer, info["snapshots"]


def train_softhebb_parallel(layer, data, epochs: int = CIFAR10.epochs, batch_size: int = CIFAR10.batch_size,
                            lr: float = CIFAR10.lr, seed: int | None = CIFAR10.seed, shuffle: str = "global", device=None, backend: str = "auto",
                            progress: bool = True, record_winners: bool = False, snapshot_every: int | None = None):
    """Train `layer` in place, data-parallel over the ranks of torch.distributed; returns (layer, info).

    data: a (samples, D) tensor/array (every rank holds it; each uses its rows of each batch) or a
    streamed view (data.store.ShardedActivations, from load_activations(folder, stream=True)), from
    which each rank reads only its rows. batch_size is the GLOBAL batch, split over the ranks (a rank
    whose slice of a short last batch is empty still takes part in the step).
    shuffle: "global" (one permutation of all rows per epoch, from torch.Generator(seed): the batches
    of train_softhebb), "shard" (shards in order, rows permuted within each: sequential reads, one
    shard resident) or "none". A last global batch of one sample is skipped (BatchNorm needs two).
    With one process the step is SoftHebbLinear's own, so the weights equal train_softhebb's with
    the same settings (in-memory data on the same device). The layer comes back in eval mode.
    The ranks must agree on every setting, the layer and the data: checked before the first step.

    info: steps, world_size, seconds, samples_per_s, wins (N,) how often each neuron won (summed
    over ranks, the same on all), snapshots (as train_softhebb's, with snapshot_every), and with
    record_winners the winner of every sample of every step in order (a list of (B,) tensors,
    gathered from the ranks).
    """
    if shuffle is True or shuffle is False:
        shuffle = "global" if shuffle else "none"
    return _train(layer, data, epochs, batch_size, lr, seed, shuffle, snapshot_every, device, backend, progress,
                  record_winners=record_winners, world=None, count_wins=True)


# ------------------------------------------------------------------------------------------------
# the loop


def _train(layer, data, epochs, batch_size, lr, seed, shuffle, snapshot_every, device, backend, progress, *,
           record_winners: bool, world: int | None, count_wins: bool = False):
    """The training loop of both entry points. world=1: one process whatever the process group;
    None: the process group's ranks. Returns (layer, info)."""
    if not isinstance(layer, (SoftHebbLinear, PursuitLinear)):
        raise ValueError(f"layer: expected a SoftHebbLinear or a PursuitLinear, got {type(layer).__name__}")
    pursuit = isinstance(layer, PursuitLinear)
    epochs = positive_int("epochs", epochs)
    batch_size = positive_int("batch_size", batch_size, minimum=2, hint="the global batch; BatchNorm needs two")
    if snapshot_every is not None:
        snapshot_every = positive_int("snapshot_every", snapshot_every, hint="or None")
    seed = None if seed is None else positive_int("seed", seed, minimum=0, hint="or None for a random seed")
    lr = check_lr(lr)
    if shuffle not in SHUFFLES:
        raise ValueError(f"shuffle={shuffle!r}: expected one of {SHUFFLES} (or True / False)")
    rank, world = (0, 1) if world == 1 else rank_world()
    if world > 1 and layer.legacy_batch_winner:
        raise ValueError("legacy_batch_winner=True flips every column that wins anywhere in the batch: it is not "
                         "data-parallel; train it in one process (or use the per-sample rule)")
    device = device_of("device", device) if device is not None else layer.weight.device
    layer.to(device)
    source = _Source(layer, data, batch_size, device)
    if shuffle == "shard" and not source.streamed:
        shuffle = "global"  # in-memory data are one shard
    n_samples = source.n
    if world > 1:
        _check_ranks_agree(layer, source, world, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                           shuffle=SHUFFLES.index(shuffle))
    steps_per_epoch = training_steps(n_samples, batch_size)
    total_steps = epochs * steps_per_epoch
    every = int(snapshot_every or total_steps)
    snapshots = torch.empty((len(snapshot_steps(total_steps, every)), *layer.weight.shape), dtype=layer.weight.dtype,
                            device=device)
    snapshots[0] = layer.weight

    if pursuit and backend == "triton":
        raise ValueError("backend='triton': the matching-pursuit rule has no Triton kernels; use 'auto' or 'torch'")
    backend = "torch" if pursuit else resolve_backend(backend, device)
    functions = step_functions(backend)
    # the CUDA graph bakes the support's settings into the captured kernels (a schedule steps eagerly) and
    # counts no winners
    graphed = (not pursuit and backend == "triton" and device.type == "cuda" and world == 1 and not source.streamed
               and not isinstance(layer.lateral, LateralSchedule) and not (count_wins or record_winners))
    generator = seeded_generator(seed, source.generator_device)
    wins = torch.zeros(layer.out_features, dtype=torch.int64, device=device)
    winners = []
    bar = tqdm(total=total_steps, desc="softhebb" + (f" x{world}" if world > 1 else ""), unit="step",
               **({} if progress and rank == 0 else {"disable": True}))
    start_time = time.perf_counter()
    n_taken, step = 1, 0
    for _ in range(epochs):
        order = _Order(n_samples, shuffle, generator, source.offsets)
        if graphed:
            from .graphed_epoch import train_epoch_graphed

            # contract: the same batches in the same order as the loop below; returns the weights
            # after each step t (global, from 1) with t % snapshot_every == 0 within this epoch
            epoch_snaps = train_epoch_graphed(layer, source.data, order=order.rows(0, n_samples), batch_size=batch_size,
                                              lr=lr, snapshot_every=every, step0=step)
            snapshots[n_taken: n_taken + len(epoch_snaps)] = epoch_snaps
            n_taken += len(epoch_snaps)
            step += steps_per_epoch
            bar.update(steps_per_epoch)
            continue
        for k in range(steps_per_epoch):
            a, b = k * batch_size, min((k + 1) * batch_size, n_samples)
            lo, hi = batch_slice(b - a, rank, world)
            x = source.fetch(order.rows(a + lo, a + hi))  # (b_local, D)
            progress_t = schedule_progress(step, total_steps)  # a LateralSchedule's point
            if world == 1:
                u = layer.train_step(x, lr, functions, progress_t)
            else:
                u = (_pursuit_parallel_step(layer, x, lr, world) if pursuit else
                     _parallel_step(layer, x, b - a, lr, functions, world, progress_t))
            if count_wins or record_winners:
                won = u.argmax(dim=1)  # (b_local,)
                wins += torch.bincount(won, minlength=layer.out_features)
                if record_winners:
                    winners.append(_gather_rows(won, b - a, world))
            step += 1
            if step % every == 0:
                snapshots[n_taken] = layer.weight
                n_taken += 1
            bar.update(1)
    bar.close()
    if total_steps % every != 0:
        snapshots[n_taken] = layer.weight
        n_taken += 1
    assert n_taken == len(snapshots), (n_taken, len(snapshots))
    all_sum(wins, world)
    seconds = time.perf_counter() - start_time
    layer.eval()
    info = {"steps": total_steps, "world_size": world, "seconds": seconds, "wins": wins.cpu(), "shuffle": shuffle,
            "samples_per_s": epochs * n_samples / seconds if seconds > 0 else float("inf"),
            "snapshots": snapshots.cpu()}
    if record_winners:
        info["winners"] = winners
    return layer, info


class _Source:
    """The training rows: in-memory (checked once, on the device) or a streamed store (each batch
    checked as it is read, so a NaN in a shard stops training with its message)."""

    def __init__(self, layer: SoftHebbLinear, data, batch_size: int, device: torch.device):
        self.layer, self.batch_size, self.device = layer, batch_size, device
        self.streamed = isinstance(data, ShardedActivations)
        if self.streamed:
            if data.dim != layer.in_features:
                raise ValueError(f"data has {data.dim} features per row but the layer has in_features={layer.in_features}")
            if len(data) < 2:
                raise ValueError(f"data has {len(data)} row(s): training needs at least 2")
            self.data, self.offsets, self.generator_device = data, data.offsets, torch.device("cpu")
        else:
            self.data = layer.checked_input("data", data, batch_size)  # (n, D) on the device
            self.offsets, self.generator_device = np.array([0, self.data.shape[0]]), self.data.device
        self.n = int(self.offsets[-1])

    def fetch(self, rows: torch.Tensor) -> torch.Tensor:
        if not self.streamed:
            return self.data[rows]
        x = self.data.take(rows.cpu().numpy())
        return self.layer.checked_input(f"data (the store {self.data.folder})", x, self.batch_size, min_rows=0)

    def fingerprint(self) -> float:
        """A number that equal data give on every rank: the shards' SHA-256 for a store, else the float64 sum."""
        if self.streamed:
            digest = hashlib.sha256(repr([s.get("sha256") for s in self.data.meta.get("shards", [])]).encode())
            return float(int(digest.hexdigest()[:12], 16))
        return float(self.data.sum(dtype=torch.float64))


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
            while self.k + 1 < len(self.offsets) and self.offsets[self.k] < stop:  # draw permutations as reached
                a, b = int(self.offsets[self.k]), int(self.offsets[self.k + 1])
                self.segments.append((a, a + torch.randperm(b - a, generator=self.generator, device=self.generator.device)))
                self.k += 1
            self.segments = [(a, r) for a, r in self.segments if a + len(r) > start]  # drop the past
        parts = [r[max(start - a, 0): stop - a] for a, r in self.segments if a < stop and a + len(r) > start]
        if not parts:  # an empty slice: this rank's share of a short last batch
            return torch.empty(0, dtype=torch.int64, device=self.generator.device)
        return parts[0] if len(parts) == 1 else torch.cat(parts)


# ------------------------------------------------------------------------------------------------
# N processes


@torch.no_grad()
def _parallel_step(layer, x: torch.Tensor, n: int, lr: float, functions, world: int,
                   progress: float | None = None) -> torch.Tensor:
    """One step on the global batch of n rows, of which this rank holds x (b, D): returns the local u (b, N).
    progress: where this step lies in training, for a LateralSchedule (schedule.schedule_progress)."""
    post_and_sums, apply_update = functions
    bn, W = layer.bn, layer.weight
    D = x.shape[1]
    # BatchNorm with the global batch statistics (float64 sums: cancellation ~1e-16 of mean^2)
    xd = x.double()
    sums = all_sum(torch.cat([xd.sum(0), (xd * xd).sum(0)]), world)  # (2D,)
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
    lohi = all_max(torch.cat([-lo, hi]), world)
    x_norm.masked_fill_(-lohi[:D] == lohi[D:], 0.0)
    # the update: local rows, summed over the ranks, then the same normalised step on every rank
    u = x_norm @ W.T  # (b, N)
    lateral = None if layer.lateral is None else layer.lateral.at(progress)
    y, s = post_and_sums(u, layer.t_invert, lateral, False)
    dW = all_sum(raw_update(x_norm, W, y, s), world)  # (N, D) = sum over ranks of y^T x - s W
    apply_update(W, dW, lr)
    return u


@torch.no_grad()
def _pursuit_parallel_step(layer: PursuitLinear, x: torch.Tensor, lr: float, world: int) -> torch.Tensor:
    """One matching-pursuit step on the global batch, of which this rank holds x (b, D): each rank codes
    its rows, the batch sums (a^T (x - aW), a^2, and the offset's residual sum and row count) are summed
    over the ranks in one all-reduce, and every rank takes the same step. Returns the local codes (b, N)."""
    return layer.apply_sums(x, lr, lambda sums: all_sum(sums, world))


def _check_ranks_agree(layer: SoftHebbLinear, source: _Source, world: int, **settings) -> None:
    """One all-gather of every setting, the layer and the data: a clear error on every rank, naming
    what differs, instead of a hang (other batch counts) or ranks drifting apart (another lr)."""
    values = {**{k: (-1.0 if v is None else float(v)) for k, v in settings.items()},
              "rows of data": float(source.n), "in_features": float(layer.in_features),
              "out_features": float(layer.out_features), "t_invert": float(getattr(layer, "t_invert", 0.0)),
              "k": float(getattr(layer, "k", 0)),
              "lateral support": float(int(hashlib.sha256(repr(layer.lateral).encode()).hexdigest()[:12], 16)),
              "initial weights": float(layer.weight.sum(dtype=torch.float64)),
              "data": source.fingerprint()}
    mine = torch.tensor(list(values.values()), dtype=torch.float64, device=layer.weight.device)
    every = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(every, mine)
    for i, name in enumerate(values):
        seen = [float(t[i]) for t in every]
        if any(v != seen[0] for v in seen):
            raise ValueError(f"the {world} ranks disagree on {name}: " + ", ".join(f"rank {r} has {v:.10g}"
                             for r, v in enumerate(seen)) + "; start every rank with the same settings and data")


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
