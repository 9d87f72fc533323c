"""Which implementation runs an update: plain torch (the reference) or the Triton kernels."""
from __future__ import annotations

import functools
import os

import torch

__all__ = ["resolve_backend", "triton_available"]

BACKENDS = ("auto", "torch", "triton")


@functools.lru_cache(maxsize=None)
def triton_available() -> bool:
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception:  # ImportError, or a broken install that fails on import
        return False
    return True


def triton_interpreted() -> bool:
    """True when TRITON_INTERPRET=1: the kernels then run on CPU tensors (slowly), for tests."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def resolve_backend(backend: str, device: torch.device | str) -> str:
    """Turn `backend` ("auto" | "torch" | "triton") into "torch" or "triton" for tensors on `device`.

    "auto" picks Triton on CUDA when it imports, torch otherwise. "triton" on a CPU tensor needs
    TRITON_INTERPRET=1 (the interpreter), and says so instead of failing deep inside Triton.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}: expected one of {BACKENDS}")
    device = torch.device(device)
    if backend == "torch":
        return "torch"
    if backend == "auto":
        return "triton" if device.type == "cuda" and triton_available() else "torch"
    if not triton_available():
        raise ValueError("backend='triton' but triton does not import: `pip install triton`, or use backend='torch'")
    if device.type != "cuda" and not triton_interpreted():
        raise ValueError(
            f"backend='triton' on a {device.type} tensor needs a CUDA device, or TRITON_INTERPRET=1 "
            "(set before importing triton) to run the kernels in the interpreter; or use backend='torch'"
        )
    return "triton"
