"""Linear algebra shared by the rules and the metrics (ground floor: checks only).

The Hebbian rules trace their convergence against a reference basis while they run (rules/hebbian.py,
rules/ica.py) and the metrics report the same numbers for a finished run (measure/metrics.py
re-exports these), so the two agree by construction and neither imports the other.
"""
from __future__ import annotations

import numpy as np
import torch

from .checks import matrix

__all__ = ["subspace_error", "component_cosines", "amari_distance", "pow2_rescaled"]


def _rows64(x, name: str) -> torch.Tensor:
    """x (k, D) or (D,) as a float64 (k, D) CPU tensor."""
    x = torch.from_numpy(x) if isinstance(x, np.ndarray) else x
    return matrix(name, x[None] if getattr(x, "ndim", None) == 1 else x, dtype=torch.float64).cpu()


def _orthonormal_rows(W: torch.Tensor, name: str) -> torch.Tensor:
    """Orthonormal basis (k, D) of the row space of W (k, D); ValueError if the rows are dependent."""
    if W.shape[0] > W.shape[1]:
        raise ValueError(f"{name}: {W.shape[0]} rows cannot be independent in D={W.shape[1]}")
    _, S, Vh = torch.linalg.svd(W, full_matrices=False)
    if S[-1] <= 1e-10 * S[0] or S[0] == 0:
        raise ValueError(f"{name}: rows are (nearly) linearly dependent or zero; no {W.shape[0]}-dim subspace")
    return Vh


def subspace_error(W, reference) -> float:
    """Distance between the row spaces of W (k, D) and reference (m, D), in [0, 1]:
    ``||P_W - P_ref||_F^2 / (k + m)`` with P the orthogonal projectors. For k = m it is the mean
    squared sine of the principal angles; 0 = same subspace, 1 = orthogonal subspaces.
    Rows need not be orthonormal (they are orthonormalised by SVD) but must be independent.
    """
    W, R = _rows64(W, "W"), _rows64(reference, "reference")
    if W.shape[1] != R.shape[1]:
        raise ValueError(f"reference: has D={R.shape[1]}, W has D={W.shape[1]}")
    Qw, Qr = _orthonormal_rows(W, "W"), _orthonormal_rows(R, "reference")
    k, m = Qw.shape[0], Qr.shape[0]
    overlap = float((Qw @ Qr.T).square().sum())  # ||Qw Qr^T||_F^2 = trace(P_W P_ref)
    return max(0.0, (k + m - 2 * overlap) / (k + m))


def component_cosines(W, reference) -> torch.Tensor:
    """(k,) float64 |cos| between row i of W and row i of reference (both (k, D) or (D,))."""
    W, R = _rows64(W, "W"), _rows64(reference, "reference")
    if W.shape != R.shape:
        raise ValueError(f"reference: shape {tuple(R.shape)} does not match W's {tuple(W.shape)}")
    norms = W.norm(dim=1) * R.norm(dim=1)
    if (norms == 0).any():
        raise ValueError("W / reference: a zero row has no direction")
    return ((W * R).sum(dim=1) / norms).abs()


def amari_distance(W, A) -> float:
    """Amari distance of the unmixing W (k, D) for the mixing A (D, k), normalised to [0, 1].

    With P = |W A| (k, k): ``[sum_i (sum_j P_ij / max_j P_ij - 1) + sum_j (sum_i P_ij / max_i P_ij - 1)]
    / (2 k (k - 1))``. 0 iff W A is a scaled permutation (perfect separation up to order and scale).
    Invariant to the order and signs of the rows; rescaling rows changes the column terms, so
    compare unmixing matrices scaled alike (e.g. unit-variance sources, as hebbian_ica and
    FastICA(whiten="unit-variance") return). Invariant to the overall scale of W and of A: each is
    first scaled by a power of two (exact) to a largest entry in [0.5, 1), so W A cannot overflow.
    """
    W, A = (pow2_rescaled(matrix(name, M, dtype=torch.float64).cpu(), limit=None)[0] for name, M in (("W", W), ("A", A)))
    if W.shape[1] != A.shape[0] or W.shape[0] != A.shape[1]:
        raise ValueError(f"A: expected shape ({W.shape[1]}, {W.shape[0]}) for W of shape {tuple(W.shape)}, "
                         f"got {tuple(A.shape)}")
    k = W.shape[0]
    if k < 2:
        raise ValueError("W: the Amari distance needs at least 2 components")
    P = (W @ A).abs()
    if (P.amax(dim=1) == 0).any() or (P.amax(dim=0) == 0).any():
        raise ValueError("W @ A has a zero row or column; W does not recover every source")
    rows = (P.sum(dim=1) / P.amax(dim=1) - 1).sum()
    cols = (P.sum(dim=0) / P.amax(dim=0) - 1).sum()
    return float((rows + cols) / (2 * k * (k - 1)))


def pow2_rescaled(*tensors: torch.Tensor, limit: float | None = 2.0 ** 500) -> tuple[torch.Tensor, ...]:
    """The tensors times one power of two, exact, chosen so that their largest |entry| is in [0.5, 1),
    when that entry is beyond [1 / limit, limit] (otherwise unchanged; limit=None: always): squares and
    sums of scale-free quantities (a ratio of variances, a rank of distances) then neither overflow nor
    underflow. All zeros stay as they are."""
    top = max(float(t.abs().max()) if t.numel() else 0.0 for t in tensors)
    if top == 0 or (limit is not None and 1 / limit <= top <= limit):
        return tensors
    exponent = torch.frexp(torch.tensor(top, dtype=torch.float64)).exponent
    return tuple(torch.ldexp(t, -exponent.to(t.dtype)) for t in tensors)
