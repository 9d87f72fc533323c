"""How a lateral support describes itself to the kernels: a code and four numbers.

The kernels know nothing of the rules' classes: a support (rules/lateral.Lateral) hands them a
KernelSupport through its `kernel_support(n)` method, and each shape of rules/lateral.NEIGHBOURHOODS
names its code here. A new shape needs a branch in kernels/post_synaptic.py's `_post_output_kernel`
and a code below; the backend's self-check then runs it (backend.self_check_cases).
"""
from __future__ import annotations

from typing import NamedTuple

__all__ = ["KernelSupport", "NONE", "ONE_D", "DISC", "GAUSSIAN", "NO_SUPPORT"]

# the codes the post-synaptic kernel branches on
NONE, ONE_D, DISC, GAUSSIAN = 0, 1, 2, 3


class KernelSupport(NamedTuple):
    """code: NONE, ONE_D (k +- 1 .. k +- radius_1d on one row), DISC (grid distance^2 <= reach) or
    GAUSSIAN (exp(reach * d_row^2) * exp(reach * d_col^2), reach = -1 / (2 radius^2));
    grid_cols: the grid's columns (neuron j at row j // grid_cols); gain: what the winner passes on."""

    code: int
    reach: float
    radius_1d: int
    grid_cols: int
    gain: float


NO_SUPPORT = KernelSupport(NONE, 0.0, 0, 1, 0.0)
