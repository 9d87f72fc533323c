"""The data stream of the Hebbian rules: the input as (B, D) float32 batches that can be read several times.

``X`` is one of
  * a (samples, D) ``torch.Tensor`` or ``numpy.ndarray`` of floats (kept on its device, used as float32);
    it is reshuffled every epoch with the run's seeded generator (``shuffle=True``);
  * a *re-iterable* of (B, D) batches (a list, a ``DataLoader``...), iterated once per pass, or
  * a zero-argument *callable* returning a fresh iterator of (B, D) batches each time it is called
    (for data streamed from disk). A batch may also be a tuple/list whose first item is the (B, D)
    batch (``DataLoader(TensorDataset(X))`` yields ``[x]``). Batches are used in the order the
    iterable gives them; a one-shot iterator (a generator object) is refused because the data is
    read more than once (one pass for the mean when centring, one per epoch).
Integer data are refused with the conversion to make (``X.float()``); every batch is checked finite.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch

from ..checks import matrix, positive_int

MOMENT_CHUNK = 8192  # rows per chunk when a tensor is summed in float64


def _batch(x, name: str, dim: int | None = None, device=None) -> torch.Tensor:
    """A finite (rows >= 1, D >= 1) float32 tensor on `device` (D = `dim`, the first batch's, when given)."""
    x = matrix(name, x, dim, dtype=torch.float32, device=device, cols_name="the D of batch 0")
    if x.shape[1] == 0:
        raise ValueError(f"{name} has shape {tuple(x.shape)}: expected at least one column")
    return x


class Stream:
    """The input X (module docstring) as a source of (B, D) float32 batches that can be read several times."""

    def __init__(self, X, batch_size: int, shuffle: bool = True, name: str = "X"):
        self.name, self.batch_size, self.shuffle = name, positive_int("batch_size", batch_size), shuffle
        self.tensor: torch.Tensor | None = None
        self.source: Callable[[], Iterator] | None = None
        if torch.is_tensor(X) or isinstance(X, np.ndarray):
            self.tensor = _batch(X, name)
            self.n, self.dim = self.tensor.shape
            self.device = self.tensor.device
            self.n_batches = -(-self.n // self.batch_size)
            return
        if isinstance(X, (str, bytes)):
            raise ValueError(f"{name}: expected a (samples, D) tensor/array or an iterable of batches, got a string")
        if callable(X):
            self.source = X
        elif isinstance(X, Iterable):
            if iter(X) is X:
                raise ValueError(
                    f"{name} is a one-shot iterator ({type(X).__name__}); the data is read more than once: "
                    "pass a list of batches, a DataLoader, or a zero-argument function returning a fresh iterator"
                )
            self.source = lambda: iter(X)
        else:
            raise ValueError(
                f"{name}: expected a (samples, D) tensor/array, an iterable of (B, D) batches or a "
                f"function returning one, got {type(X).__name__}"
            )
        first = next(iter(self.source()), None)
        if first is None:
            raise ValueError(f"{name}: the iterable yields no batches; the data is empty")
        first = _batch(self._unpack(first), f"{name} (batch 0)")
        self.n, self.dim, self.device = None, first.shape[1], first.device
        self.n_batches = None  # counted on the first full pass

    @staticmethod
    def _unpack(batch):
        return batch[0] if isinstance(batch, (tuple, list)) else batch

    def batches(self, gen: torch.Generator | None = None, chunk: int | None = None) -> Iterator[torch.Tensor]:
        """One pass. A tensor is cut into batches (shuffled when gen is given and shuffle=True)."""
        if self.tensor is not None:
            size = chunk or self.batch_size
            order = None
            if gen is not None and self.shuffle:
                order = torch.randperm(self.n, generator=gen).to(self.device)
            for start in range(0, self.n, size):
                yield self.tensor[start : start + size] if order is None else self.tensor[order[start : start + size]]
            return
        count = rows = 0
        for i, b in enumerate(self.source()):
            b = _batch(self._unpack(b), f"{self.name} (batch {i})", self.dim, self.device)
            count, rows = count + 1, rows + b.shape[0]
            yield b
        if count == 0:
            raise ValueError(f"{self.name}: the iterable yielded no batches on a later pass; pass a re-iterable")
        if self.n_batches is None:
            self.n_batches, self.n = count, rows
        elif count != self.n_batches:
            raise ValueError(f"{self.name}: yielded {count} batches, {self.n_batches} on an earlier pass; "
                             "every pass must give the same data")

    def batches_per_epoch(self) -> int:
        if self.n_batches is None:
            for _ in self.batches():  # one counting pass
                pass
        return self.n_batches

    def head(self, rows: int, gen: torch.Generator) -> torch.Tensor:
        """Up to `rows` rows: a seeded random subset of a tensor, or the first batches of an iterable."""
        if self.tensor is not None:
            if self.n <= rows:
                return self.tensor
            return self.tensor[torch.randperm(self.n, generator=gen)[:rows].to(self.device)]
        parts, total = [], 0
        for b in self.batches():
            parts.append(b)
            total += b.shape[0]
            if total >= rows:
                break
        return torch.cat(parts)[:rows]


def mean_of(data: Stream, center: bool = True) -> torch.Tensor:
    """(D,) float64 mean over all rows, accumulated chunk by chunk; zeros with center=False."""
    total = torch.zeros(data.dim, dtype=torch.float64, device=data.device)
    if not center:
        return total
    n = 0
    for b in data.batches(chunk=MOMENT_CHUNK):
        total += b.double().sum(0)
        n += b.shape[0]
    return total / n


def moments(data: Stream, center: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and C (D, D), both float64; C = covariance (center) or <x x^T>. Two passes so a
    large mean does not cancel away the variance."""
    mu = mean_of(data, center)
    C = torch.zeros(data.dim, data.dim, dtype=torch.float64, device=data.device)
    n = 0
    for b in data.batches(chunk=MOMENT_CHUNK):
        b = b.double() - mu
        C += b.T @ b
        n += b.shape[0]
    return mu, C / n
