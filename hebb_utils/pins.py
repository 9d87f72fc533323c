"""The float code paths that depend on the CPU, pinned so that every x86-64 CPU with AVX2 computes the same bits.

Left alone, each library picks the widest instructions the CPU has (AVX-512, or AMX on newer Xeons),
and that code rounds differently from the AVX2 code in the last bits: the activations' SHA-256 and
the trained weights then depend on the CPU. Pinned, they do not:

    MKL_CBWR=AVX2               MKL's conditional bitwise reproducibility branch (the BLAS behind the matmuls)
    ATEN_CPU_CAPABILITY=avx2    PyTorch's own CPU kernels (softmax, exp, reductions, element-wise ops)
    ONEDNN_MAX_CPU_ISA=AVX2     oneDNN (mkldnn) primitives, e.g. the language model's GELU, which runs as
                                `jit:avx10_1_512_amx` on an AMX Xeon otherwise (ONEDNN_VERBOSE=1 shows it)
    MKL_DYNAMIC=FALSE           MKL keeps the thread count PyTorch gives it

Each pin is needed, measured on the project's Intel Xeon (AVX-512 and AMX) with the probe of
tests/test_pins.py (an extraction from the offline stand-in and 30 steps of the CIFAR-10 layer): with
all four, the bytes equal those of every library capped at AVX2; without MKL_CBWR the activations and
the weights differ; without ATEN_CPU_CAPABILITY or ONEDNN_MAX_CPU_ISA the activations differ;
MKL_DYNAMIC changed nothing there and is kept for machines with more cores.

The libraries read these when they load, before any Python code of ours runs, so they are set
outside Python: the Makefile exports PINS for every notebook and test, and tests/test_pins.py checks
that the two agree and that the pins hold (an extraction and a training, pinned on this CPU and
capped at AVX2 in every library, give the same bytes). The pinned path is not slower: on the
project's Intel Xeon (AVX-512, AMX; 2 threads) a SoftHebb step took 3.87 against 3.70 ms (CIFAR-10
shape) and 2.05 against 1.96 ms (LM shape) with ATen at AVX2 and AVX-512. The thread count is not
pinned: MKL's branch gives the same bits for the same number of threads, and every result records it.
"""
from __future__ import annotations

import os

__all__ = ["PINS", "pin_status"]

PINS = {"MKL_CBWR": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_DYNAMIC": "FALSE"}


def pin_status() -> dict:
    """Each pin's value in this process's environment ("unset" where it is not set), and whether all
    hold: what a results file records, so a number computed unpinned says so."""
    values = {name: os.environ.get(name, "unset") for name in PINS}
    return {**values, "all_pinned": all(values[name].upper() == want.upper() for name, want in PINS.items())}
