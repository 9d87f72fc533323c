"""Triton kernels for SoftHebb and Sanger, one op family per file (its kernels and launcher):
post_synaptic.py, update.py, sanger.py and batchnorm.py (the gathered batch of the graphed epoch,
rules/graphed_epoch.py). They import no rule: a lateral support describes itself to them (support.py).

Matrix products stay on cuBLAS; reductions have a fixed order (no float atomics), so a seed gives
bit-identical weights on a device. CPU tensors run in Triton's interpreter (TRITON_INTERPRET=1,
set before the first kernel call). Triton and the files load at first use.
"""
import importlib

_HOME = dict(post_synaptic_triton="post_synaptic", apply_update_triton="update", softhebb_update_triton="update",
             sanger_step_triton="sanger", gather_batchnorm_triton="batchnorm")  # public name -> its file
__all__ = list(_HOME)


def __getattr__(name):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
