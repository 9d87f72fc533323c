"""Fits in worker processes. Notebook 07 times every fit on one thread (one_thread_cpu_seconds, below:
the fair-comparison protocol of experiments.ladder), so in one process every other core sits idle; `submit_fit` hands each fit to one of `workers` spawned processes
instead, and the caller measures the results, in the order it asked for them, while the next fits run.

    pending = [submit_fit(make, X_train, seed, workers=2) for make in makes]   # nothing waits yet
    for handle in pending:
        dictionary, cpu_seconds = handle.result()    # make(X_train)(seed), its single-thread CPU seconds

A job is make(X) -> fit(seed) -> Dictionary, run as one_thread_cpu_seconds(make(X), seed) in its worker:
the same single-thread computation as in this process, with every random draw seeded, so the dictionaries
are bit for bit those of workers=1 (tests/test_workers.py) and the seconds count the fit alone. The makes
are closures over their settings (lambdas): cloudpickle carries them; X goes as a numpy array of its own
rows (not through torch's shared memory, which a container's 64 MB /dev/shm would not hold), pickled only
when a worker is about to take the job; the trained Dictionary (its model, its encode/decode closures)
comes back as cloudpickle's bytes, unpickled by result() in the caller's thread. No torch work runs in
the executor's helper threads: torch's OpenMP threads, once a second Python thread has used them, made
every later op of the notebook's own thread 4 to 5 times slower (measured: a SoftHebb fit of the
topographic toy, 0.27 s, then 1.23 s).
workers=1 fits in this process when the result is asked for: exactly the serial loop.

The pool is spawned once per session and kept (each worker imports torch and SAELens once); spawned,
not forked, because a fork after torch has used its OpenMP threads can hang in the child. As with any
spawned pool, a script that starts one needs the `if __name__ == "__main__":` guard.
"""
from __future__ import annotations

import atexit
import multiprocessing
import signal
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable

import numpy as np
import torch

from ..checks import positive_int

__all__ = ["one_thread_cpu_seconds", "submit_fit", "check_workers", "shutdown_workers"]

_POOLS: dict[int, ProcessPoolExecutor] = {}


class _ByValue:
    """An object pickled by cloudpickle inside the executor's own pickling (lambdas and closures: the
    makes). Unpickles as the object itself."""

    def __init__(self, obj):
        self.obj = obj

    def __reduce__(self):
        import cloudpickle  # here, not at the top: the core imports with torch and numpy alone

        return cloudpickle.loads, (cloudpickle.dumps(self.obj),)


class _Rows:
    """X for a worker, pickled as a numpy array: numpy copies the rows of a view (a rung's first rows)
    alone, and no torch op runs in the executor's thread that pickles it (module docstring)."""

    def __init__(self, X):
        self.array = (np.ascontiguousarray(X) if isinstance(X, np.ndarray)
                      else X.detach().cpu().contiguous().numpy())  # a view of X's memory: nothing copied here

    def __reduce__(self):
        return torch.from_numpy, (self.array,)


def one_thread_cpu_seconds(fn: Callable, *args, **kwargs) -> tuple[Any, float]:
    """(fn(*args, **kwargs), the CPU seconds it took with torch on one thread: time.process_time)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    start = time.process_time()
    try:
        out = fn(*args, **kwargs)
    finally:
        seconds = time.process_time() - start
        torch.set_num_threads(threads)
    return out, seconds


class _InProcess:
    """workers=1: the fit runs here, when its result is asked for (the serial loop, unchanged)."""

    def __init__(self, make, X, seed: int):
        self.make, self.X, self.seed = make, X, seed

    def result(self):
        return one_thread_cpu_seconds(self.make(self.X), self.seed)


class _InWorker:
    """workers > 1: a future of the fit in a worker; result() names a worker that died."""

    def __init__(self, future):
        self.future = future

    def result(self):
        import cloudpickle

        try:
            payload, seconds = self.future.result()
        except BrokenProcessPool as e:
            shutdown_workers()
            raise RuntimeError("a fit's worker process died: out of memory, or a script that starts workers without "
                               "the `if __name__ == \"__main__\":` guard (the error above says which); free memory, add "
                               "the guard, or run with workers=1 to fit in this process") from e
        return cloudpickle.loads(payload), seconds  # here, in the caller's thread (module docstring)


class Done:
    """A fit already made (a tuning fit reused at its rung): result() is (dictionary, seconds)."""

    def __init__(self, dictionary, seconds: float):
        self.value = (dictionary, seconds)

    def result(self):
        return self.value


def _fit_in_worker(make, X, seed: int):
    import cloudpickle

    dictionary, seconds = one_thread_cpu_seconds(make(X), seed)
    return cloudpickle.dumps(dictionary), seconds


def _ignore_interrupts() -> None:
    # a notebook kernel is stopped by SIGINT to its process group: the workers leave with the kernel
    # (shutdown_workers at exit) instead of printing a KeyboardInterrupt each
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def check_workers(workers) -> int:
    """workers as an int >= 1 (the processes fits run in), or a ValueError naming the argument."""
    return positive_int("workers", workers, hint="processes the fits run in; 1 fits in this process")


def _pool(workers: int) -> ProcessPoolExecutor:
    if workers not in _POOLS:
        shutdown_workers()  # one pool at a time: another size replaces it
        _POOLS[workers] = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_ignore_interrupts)
    return _POOLS[workers]


def submit_fit(make, X, seed: int, *, workers: int = 1):
    """A handle whose result() is (make(X)(seed), its single-thread CPU seconds): fitted in one of `workers`
    spawned processes (workers > 1), or in this process when result() is called (workers = 1)."""
    workers = check_workers(workers)
    if workers == 1:
        return _InProcess(make, X, int(seed))
    return _InWorker(_pool(workers).submit(_fit_in_worker, _ByValue(make), _Rows(X), int(seed)))


def shutdown_workers() -> None:
    """Stop the worker processes (they are started again on the next submit_fit with workers > 1)."""
    for pool in _POOLS.values():
        pool.shutdown(wait=True, cancel_futures=True)
    _POOLS.clear()


atexit.register(shutdown_workers)
