"""Input checks for the public entry points: one home, one wording.

Every public function checks its arguments once, here, and trusts them inside. An error names the
argument, what was given and what to do instead. numpy scalars count as the numbers they hold
(`np.int64(32)` is an integer, `np.float32(0.1)` a float); booleans are never numbers.

    positive_int("batch_size", 32)          -> 32
    finite_float("lr", np.float32(0.2), minimum=0)
    matrix("X", array, cols=384, dtype=torch.float32)   # a finite 2D float tensor
    Grid.of((30, 60), n=1800)               # the neuron grid, shared by the layer, metrics and plots
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["positive_int", "finite_float", "matrix", "vector", "Grid", "device_of", "check_finite"]


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def positive_int(name: str, value, minimum: int = 1, hint: str = "") -> int:
    """`value` as an int >= minimum (Python or numpy integers; not bool, not float)."""
    if not _is_int(value) or int(value) < minimum:
        raise ValueError(f"{name}={value!r}: expected an integer >= {minimum}{_hint(hint)}")
    return int(value)


def finite_float(name: str, value, minimum: float | None = None, maximum: float | None = None,
                 strict_minimum: bool = False, hint: str = "") -> float:
    """`value` as a finite float in [minimum, maximum] ((minimum, maximum] with strict_minimum)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise ValueError(f"{name}={value!r}: expected a number{_hint(hint)}")
    try:
        out = float(value)
    except OverflowError:
        out = math.inf
    low_ok = minimum is None or (out > minimum if strict_minimum else out >= minimum)
    if not (math.isfinite(out) and low_ok and (maximum is None or out <= maximum)):
        bounds = []
        if minimum is not None:
            bounds.append(f"{'>' if strict_minimum else '>='} {minimum:g}")
        if maximum is not None:
            bounds.append(f"<= {maximum:g}")
        raise ValueError(f"{name}={value!r}: expected a finite number{' ' + ' and '.join(bounds) if bounds else ''}"
                         f"{_hint(hint)}")
    return out


def check_finite(name: str, t: torch.Tensor) -> None:
    """Raise if `t` holds NaN or inf. One reduction first (cheap), the element-wise pass only on failure."""
    if t.is_floating_point() and not bool(torch.isfinite(t.sum())) and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name} contains {bad} NaN or inf value(s): expected finite numbers "
                         "(drop or impute those rows first)")


def matrix(name: str, x, cols: int | None = None, *, dtype: torch.dtype | None = None, device=None,
           min_rows: int = 1, finite: bool = True, cols_name: str = "") -> torch.Tensor:
    """`x` (tensor or numpy array) as a 2D floating tensor (rows, cols), finite, on `device`.

    With `dtype`, floats of another precision are converted (float64 from numpy into a float32
    layer, say); integer data are refused with the conversion to make.
    """
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(_numeric(name, x))
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name}: expected a 2D tensor or numpy array, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} has shape {tuple(x.shape)}: expected 2 dimensions (samples, features)"
                         + (f" with {cols} features" if cols is not None else ""))
    if cols is not None and x.shape[1] != cols:
        raise ValueError(f"{name} has shape {tuple(x.shape)}: expected (samples, {cols})"
                         f"{' (' + cols_name + ')' if cols_name else ''}")
    if x.shape[0] < min_rows:
        raise ValueError(f"{name} has {x.shape[0]} row(s): expected at least {min_rows}")
    if not x.is_floating_point():
        raise ValueError(f"{name} has dtype {x.dtype}: expected floats (convert with x.float(); uint8 images "
                         "with x.float() / 255)")
    if dtype is not None or device is not None:
        x = x.to(device=device if device is not None else x.device, dtype=dtype or x.dtype)
    if finite:
        check_finite(name, x)
    return x


def vector(name: str, x, length: int | None = None, *, integer: bool = False) -> torch.Tensor:
    """`x` as a 1D tensor (of integers with integer=True) of `length` entries."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(_numeric(name, x)))
    if not isinstance(x, torch.Tensor) or x.dim() != 1:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected a 1D tensor or array, got {shape}")
    if length is not None and x.shape[0] != length:
        raise ValueError(f"{name} has {x.shape[0]} entries: expected {length}")
    if integer and (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool):
        raise ValueError(f"{name} has dtype {x.dtype}: expected integers (convert with x.long())")
    if not integer:
        check_finite(name, x)
    return x


@dataclass(frozen=True)
class Grid:
    """The neuron grid: neuron j sits at row j // cols, column j % cols. `one_d`: the 1D variant
    (one row; the lateral support then reaches k +- 1 .. k +- radius)."""

    rows: int
    cols: int
    one_d: bool = False

    @property
    def n(self) -> int:
        return self.rows * self.cols

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.cols,) if self.one_d else (self.rows, self.cols)

    @classmethod
    def of(cls, grid, n: int | None = None, name: str = "grid", what: str = "neurons") -> "Grid":
        """A Grid from (rows, cols), (n,) or a Grid; with `n`, it must hold exactly n neurons."""
        if isinstance(grid, Grid):
            out = grid
        else:
            if _is_int(grid) or not isinstance(grid, (tuple, list)) or len(grid) not in (1, 2):
                raise ValueError(f"{name}={grid!r}: expected (rows, cols), or (n,) for one row")
            sizes = [positive_int(name, g) for g in grid] if all(_is_int(g) for g in grid) else None
            if sizes is None:
                raise ValueError(f"{name}={grid!r}: expected positive integers")
            out = cls(1, sizes[0], True) if len(sizes) == 1 else cls(sizes[0], sizes[1])
        if n is not None and out.n != n:
            raise ValueError(f"{name}={out.shape} has {out.n} neurons but there are {n} {what}: "
                             f"use a grid with rows * cols = {n}")
        return out


def device_of(name: str, device) -> torch.device:
    """A usable torch device; 'cuda' without a GPU is refused with the fix."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"{name}={device!r}: expected a device such as 'cpu' or 'cuda'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name}={device!r}: no CUDA GPU is available here; use device='cpu' (or 'auto')")
    return dev


def _numeric(name: str, x: np.ndarray) -> np.ndarray:
    if x.dtype.kind not in "biuf":  # strings, objects, dates, complex: not data these rules read
        raise ValueError(f"{name} has dtype {x.dtype}: expected numbers (convert with np.asarray(x, dtype=np.float32))")
    return x


def _hint(hint: str) -> str:
    return f" ({hint})" if hint else ""
