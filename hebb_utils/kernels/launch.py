"""What the kernel files share: whether Triton is there, Triton loaded at the first kernel call, and
the launch helpers."""
from __future__ import annotations

import functools
import os

# FMA contraction off: the kernels round like the unfused torch reference, and the choice does
# not depend on Triton's default (which changes in 3.10)
LAUNCH = dict(enable_fp_fusion=False)


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


@functools.lru_cache(maxsize=None)
def jit(fn):
    """triton.jit(fn) at the first call (TRITON_INTERPRET is read then); binds `tl`, `libdevice` in fn's file."""
    import triton
    import triton.language as tl
    from triton.language.extra import libdevice

    fn.__globals__.update(tl=tl, libdevice=libdevice)
    return triton.jit(fn)


def cdiv(a: int, b: int) -> int:
    return (a + b - 1) // b  # as triton.cdiv


def next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def check_runnable(*tensors):
    for t in tensors:
        if t.device.type != "cuda" and not triton_interpreted():
            raise ValueError(f"Triton kernels need CUDA tensors, or TRITON_INTERPRET=1 set before the first "
                             f"kernel call to run on {t.device.type} tensors in the interpreter; got {t.device}")
