"""Which implementation runs an update: plain torch (the reference) or the Triton kernels.

"auto" uses Triton only where it has been seen to work: the first time it would pick Triton on a
CUDA device in this process, a few SoftHebb steps of a tiny random layer run through the kernels
and through the torch reference on that device (milliseconds). On an exception (a compile error,
say) or a mismatch (weights apart by more than 1e-4, or another winner) it warns once, with the
reason, and "auto" means torch on that device from then on. The verdict is cached per device.
"""
from __future__ import annotations

import warnings

import torch

from .kernels.launch import triton_available, triton_interpreted
from .rules.lateral import NEIGHBOURHOODS, Lateral
from .rules import softhebb as reference  # looked up at call time: tests may replace its functions

__all__ = ["resolve_backend", "step_functions", "self_check_cases", "triton_available", "triton_interpreted"]

BACKENDS = ("auto", "torch", "triton")
_SELF_CHECK: dict[str, bool] = {}  # str(device) -> did the Triton kernels pass there


def resolve_backend(backend: str, device: torch.device | str) -> str:
    """Turn `backend` ("auto" | "torch" | "triton") into "torch" or "triton" for tensors on `device`.

    "auto" picks Triton on CUDA when it imports and passes its self-check there, torch otherwise.
    "triton" on a CPU tensor needs TRITON_INTERPRET=1 (the interpreter), and says so instead of
    failing deep inside Triton; an explicit "triton" is not self-checked.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}: expected one of {BACKENDS}")
    device = torch.device(device)
    if backend == "torch":
        return "torch"
    if backend == "auto":
        return "triton" if device.type == "cuda" and triton_available() and _passes_self_check(device) else "torch"
    if not triton_available():
        raise ValueError("backend='triton' but triton does not import: `pip install triton`, or use backend='torch'")
    if device.type != "cuda" and not triton_interpreted():
        raise ValueError(
            f"backend='triton' on a {device.type} tensor needs a CUDA device, or TRITON_INTERPRET=1 "
            "(set before importing triton) to run the kernels in the interpreter; or use backend='torch'"
        )
    return "triton"


def _passes_self_check(device: torch.device) -> bool:
    key = str(device)
    if key not in _SELF_CHECK:
        reason = _self_check(_check_device(device))
        if reason is not None:
            warnings.warn(f"backend='auto': the Triton kernels failed their self-check on {key} ({reason}); "
                          "using the torch backend there", RuntimeWarning, stacklevel=3)
        _SELF_CHECK[key] = reason is None
    return _SELF_CHECK[key]


def _check_device(device: torch.device) -> torch.device:
    """Where the self-check runs: `device` itself (tests replace this to simulate a GPU on the CPU)."""
    return device


def step_functions(backend: str):
    """(post_synaptic_and_sums, apply_update) of a resolved backend: the Triton kernels or the torch
    reference (rules/softhebb.py), with the same signatures."""
    if backend == "triton":
        return _triton_functions()
    return reference.post_synaptic_sums, reference.apply_update


def _triton_functions():
    from .kernels import apply_update_triton, post_synaptic_triton

    return post_synaptic_triton, apply_update_triton


def self_check_cases() -> dict[str, tuple]:
    """What the self-check runs: every lateral shape the kernels compute (one case per entry of
    rules/lateral.NEIGHBOURHOODS on a 3 x 4 grid, the 1D support, none) and the published batch-wide
    winner flip, as name -> (lateral, legacy_batch_winner). A new shape registered there is checked too."""
    cases = {f"{shape} support": (Lateral((3, 4), radius=1.0, gain=0.3, shape=shape), False) for shape in NEIGHBOURHOODS}
    cases["1D support"] = (Lateral((12,), radius=2.0, gain=0.3), False)
    cases["no support"] = (None, False)
    cases["batch-wide winner"] = (Lateral((3, 4), radius=1.0, gain=0.3), True)
    return cases


def _self_check(device: torch.device, steps: int = 4) -> str | None:
    """Why the Triton SoftHebb step disagrees with the torch reference on `device` for any of
    self_check_cases(), or None."""
    try:
        post_triton, apply_triton = _triton_functions()
        fns = {"triton": (post_triton, apply_triton), "torch": (reference.post_synaptic_sums, reference.apply_update)}
        for case, (lateral, legacy) in self_check_cases().items():
            g = torch.Generator().manual_seed(0)
            W0 = torch.randn(12, 16, generator=g)  # (N, D): 12 neurons on the case's grid
            xs = torch.randn(steps, 8, 16, generator=g).to(device)  # (steps, B, D)
            W = {"triton": W0.to(device), "torch": W0.clone().to(device)}
            for x in xs:
                winners = {}
                for name, (post, apply) in fns.items():
                    u = x @ W[name].T  # (B, N)
                    y, s = post(u, 5.0, lateral, legacy)
                    winners[name] = u.argmax(dim=1)
                    apply(W[name], reference.raw_update(x, W[name], y, s), 0.1)
                if not torch.equal(winners["triton"], winners["torch"]):
                    return f"{case}: the winners differ from the torch reference"
            err = float((W["triton"] - W["torch"]).abs().max())
            if not err <= 1e-4:  # NaN fails too
                return f"{case}: the weights differ from the torch reference by {err:.3g} (tolerance 1e-4)"
    except Exception as exc:  # a compile or launch error: report it, fall back to torch
        return f"{type(exc).__name__}: {exc}"
    return None
