"""hebb_utils: Hebbian learning rules, topographic SoftHebb, metrics, data access and GPU kernels.

The core (rules, softhebb, metrics, kernels) imports with torch and numpy alone; the data layer
(datasets, transformers) is imported lazily, only when used.
"""
from .io import *  # noqa: F401,F403
