"""The process group of data-parallel training (torchrun): joining it, this rank's device, its rows.

    torchrun --nproc_per_node N -m hebb_utils train --activations DIR --grid 40x80 ...

NCCL on GPUs, gloo on CPU. Without WORLD_SIZE > 1 nothing is started and every helper is the
one-process identity, so the same code runs in one process and in N.
"""
from __future__ import annotations

import datetime
import os
import time

import torch
import torch.distributed as dist

from .checks import device_of, finite_float

__all__ = ["init_distributed", "rank_world", "is_main", "batch_slice", "local_device", "all_sum", "all_max",
           "DistributedError"]

DEFAULT_TIMEOUT_S = 6 * 3600  # ranks wait at collectives for the slowest rank's shards / epoch
# every process must have joined within this (HEBB_JOIN_TIMEOUT_S overrides it): a missing peer is an
# error in a minute, not a hang until the collective timeout
JOIN_TIMEOUT_S = 60.0
LOCAL_RANK_HINT = "this process's rank on its machine, its GPU; torchrun sets it"


class DistributedError(RuntimeError):
    """The process group could not be formed (a peer missing, an unreachable master)."""


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
    WORLD_SIZE > 1 nothing is started and (0, 1) comes back. Returns (rank, world size). Every
    process must join within JOIN_TIMEOUT_S (60 s; the environment variable HEBB_JOIN_TIMEOUT_S
    overrides it), else DistributedError says who is missing; collectives then wait up to
    `timeout_s` (6 h) for the slowest rank.
    """
    if dist.is_available() and dist.is_initialized():
        return rank_world()
    world = _env_int("WORLD_SIZE", 1, "the number of processes; torchrun sets it; unset it to run in one process")
    if world <= 1:
        return 0, 1
    # the other variables torchrun sets, read before any of them is used: a wrong one is named
    node_rank = _env_int("RANK", 0, f"this process's rank, 0 .. WORLD_SIZE-1 = {world - 1}; torchrun sets it",
                         minimum=0, maximum=world - 1)
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch has no torch.distributed")
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend not in ("nccl", "gloo"):
        raise ValueError(f"backend={backend!r}: expected 'nccl' (GPUs) or 'gloo' (CPU)")
    if backend == "nccl":
        torch.cuda.set_device(_env_int("LOCAL_RANK", 0, LOCAL_RANK_HINT, minimum=0))
    join_s = _env_seconds("HEBB_JOIN_TIMEOUT_S", JOIN_TIMEOUT_S)
    rank = os.environ.get("RANK", "?")
    where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
    try:  # the rendezvous alone, with the short timeout: rank 0's store waits for all WORLD_SIZE processes
        if os.environ.get("RANK", "0") != "0":
            _wait_for_master(os.environ.get("MASTER_ADDR", ""), os.environ.get("MASTER_PORT", ""), join_s)
        store, _, _ = next(dist.rendezvous("env://", timeout=datetime.timedelta(seconds=join_s)))
    except (RuntimeError, ValueError, TimeoutError, OSError) as e:  # DistStoreError is a RuntimeError
        raise DistributedError(
            f"rank {rank} of WORLD_SIZE={world}: the process group did not form within {join_s:g} s at {where} "
            f"({str(e).splitlines()[0] if str(e) else type(e).__name__}); start all {world} processes "
            "(torchrun --nproc_per_node N starts them), or unset WORLD_SIZE for one process") from None
    timeout = datetime.timedelta(seconds=timeout_s or DEFAULT_TIMEOUT_S)
    store.set_timeout(timeout)
    dist.init_process_group(backend, store=store, rank=node_rank, world_size=world, timeout=timeout)
    return rank_world()


def _env_int(name: str, default: int, what: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """The integer in the environment variable `name` (unset or empty: `default`), else a ValueError
    naming the variable, what it holds and what it must be."""
    text = os.environ.get(name, "")
    if not text.strip():
        return default
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = ""
        if minimum is not None:
            bounds = f" in {minimum} .. {maximum}" if maximum is not None else f" >= {minimum}"
        raise ValueError(f"environment variable {name}={text!r}: expected an integer{bounds} ({what})")
    return value


def _env_seconds(name: str, default: float) -> float:
    """The positive number of seconds in the environment variable `name` (unset or empty: `default`)."""
    text = os.environ.get(name, "")
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = text
    return finite_float(f"environment variable {name}", value, minimum=0, strict_minimum=True,
                        hint=f"seconds every process has to join; unset it for the default {default:g}")


def _wait_for_master(addr: str, port: str, seconds: float) -> None:
    """Poll the master's port until it accepts a connection (c10d's own client, on a timeout, prints a
    C++ stack trace to stderr before raising)."""
    import socket

    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection((addr, int(port)), timeout=1.0).close()
            return
        except (OSError, ValueError):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no master listening at {addr}:{port}") from None
            time.sleep(0.2)


def local_device(device=None) -> torch.device:
    """The device of this rank: `device` if given, else cuda:LOCAL_RANK under NCCL (or with a GPU), else cpu."""
    if device not in (None, "auto"):
        return device_of("device", device)
    if torch.cuda.is_available():
        return torch.device("cuda", _env_int("LOCAL_RANK", 0, LOCAL_RANK_HINT, minimum=0))
    return torch.device("cpu")


def batch_slice(n: int, rank: int, world: int) -> tuple[int, int]:
    """Positions [start, stop) of a global batch of n rows that `rank` of `world` takes:
    contiguous, in rank order, sizes differing by at most one (numpy.array_split's split)."""
    base, extra = divmod(int(n), int(world))
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


def all_sum(t: torch.Tensor, world: int) -> torch.Tensor:
    """t summed over the ranks, in place (the identity with one process)."""
    if world > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_max(t: torch.Tensor, world: int) -> torch.Tensor:
    """t's elementwise maximum over the ranks, in place (the identity with one process)."""
    if world > 1:
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t
