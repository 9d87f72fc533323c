"""Numeric constants shared by the rules and the kernels (the ground floor: imports nothing).

Each is used by the torch reference and by a Triton kernel, which must round the same way."""

__all__ = ["RADIUS_EPS", "DW_EPS", "BN_EPS", "GAUSSIAN_SCALE_MIN"]

# Grid distances are compared as dist^2 <= radius^2 + RADIUS_EPS: the squared distances are
# integers, so radius 1.5 (2.25) or radius sqrt(2) (2.0000000000000004) select the 3x3 block
# whatever the rounding of radius^2.
RADIUS_EPS = 1e-6
# dW is divided by max|dW| + DW_EPS, so an all-zero dW stays zero instead of turning into NaN.
DW_EPS = 1e-30
# BatchNorm's epsilon (nn.BatchNorm1d's default): the SoftHebb layer's input normalisation, which
# the SOM's standardisation and the graphed epoch's kernel repeat.
BN_EPS = 1e-5
# The Gaussian support's exponent scale -1 / (2 radius^2) is kept >= this (rules/lateral.py,
# Lateral.gaussian_scale): exp(-1e30) is 0 one grid step away, and 0 * scale stays 0 at the winner.
GAUSSIAN_SCALE_MIN = -1e30
