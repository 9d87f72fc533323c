"""The float code paths that depend on the CPU, pinned so that Intel and AMD x86-64 CPUs with AVX2 compute the same bits.

Left alone, each library picks the widest instructions the CPU has (AVX-512, or AMX on newer Xeons),
and its vendor's branch: that code rounds differently in the last bits, so the activations' SHA-256
and the trained weights would depend on the CPU. Pinned, they do not:

    MKL_CBWR=COMPATIBLE         MKL's conditional bitwise reproducibility branch (the BLAS behind PyTorch's
                                matmuls). COMPATIBLE is the one branch Intel documents as giving the same
                                results on Intel and compatible (AMD) CPUs; AVX2 holds on Intel only ("on
                                non-Intel CPUs ... the AUTO branch is used instead").
    ATEN_CPU_CAPABILITY=avx2    PyTorch's own CPU kernels (softmax, exp, reductions, element-wise ops)
    ONEDNN_MAX_CPU_ISA=AVX2     oneDNN (mkldnn) primitives, e.g. the language model's GELU, which runs as
                                `jit:avx10_1_512_amx` on an AMX Xeon otherwise (ONEDNN_VERBOSE=1 shows it)
    MKL_DYNAMIC=FALSE           MKL keeps the thread count PyTorch gives it
    OPENBLAS_CORETYPE=Haswell   the OpenBLAS of numpy and scipy (MiniSom, scikit-learn's probes, FastICA and
                                dictionary learning): its Haswell kernels, instead of SkylakeX on an AVX-512
                                Xeon or Zen on an AMD EPYC (a Makefile `?=`: a value the machine sets is kept)

Measured with the probe of tests/test_pins.py (an extraction from the offline stand-in and 30 steps
of the CIFAR-10 layer, 2 threads): with MKL_CBWR=COMPATIBLE and the other pins, an AMD EPYC (AVX2
only) and the project's Intel Xeon (AVX-512, AMX) print the same two hashes, c0f5ea2f... and
fe7fc8a1... (tests/test_pins.py commits them); with MKL_CBWR=AVX2 they print a13ac610... (AMD) and
cc995a25... (Intel). The raw-pixel linear probe of notebook 04 (scikit-learn, OpenBLAS) gives the AMD
EPYC's 0.3572 on the Intel Xeon with OPENBLAS_CORETYPE=Haswell, and 0.3567 with SkylakeX.

What it costs (the Intel Xeon, one thread): a 2048 x 2048 float32 matmul runs at 45 against 125
GFLOP/s with AVX2's branch, a SoftHebb step of the CIFAR-10 shape takes 11.2 against 6.0 ms; the
OpenBLAS Haswell kernels run a numpy 2048 x 2048 sgemm at 243 against 380 GFLOP/s (2 threads), and
a MiniSom step is unchanged (4.0 ms). The whole `make reproduce`: README, "Reproducibility".

The libraries read these when they load, before any Python code of ours runs, so they are set
outside Python: the Makefile exports PINS for every notebook and test, and tests/test_pins.py checks
that the two agree and that the pinned probe prints the committed hashes (naming, when it does not,
the CPU and which pin each hash depends on). The thread count is not pinned: MKL's branch gives the
same bits for the same number of threads, and every result records it.
"""
from __future__ import annotations

import os

__all__ = ["PINS", "PINNED_LIBRARY", "pin_status"]

PINS = {"MKL_CBWR": "COMPATIBLE", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_DYNAMIC": "FALSE",
        "OPENBLAS_CORETYPE": "Haswell"}

# which library reads each pin (what a probe mismatch names)
PINNED_LIBRARY = {"MKL_CBWR": "MKL (PyTorch's matmuls)", "ATEN_CPU_CAPABILITY": "PyTorch's CPU kernels (ATen)",
                  "ONEDNN_MAX_CPU_ISA": "oneDNN", "MKL_DYNAMIC": "MKL's threading",
                  "OPENBLAS_CORETYPE": "OpenBLAS (numpy, scipy, scikit-learn)"}


def pin_status() -> dict:
    """Each pin's value in this process's environment ("unset" where it is not set), and whether all
    hold: what a results file records, so a number computed unpinned says so."""
    values = {name: os.environ.get(name, "unset") for name in PINS}
    return {**values, "all_pinned": all(values[name].upper() == want.upper() for name, want in PINS.items())}
