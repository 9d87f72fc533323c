"""The `auto` backend's self-check (hebb_utils.backend), simulated on the CPU.

A CUDA device is faked by pretending triton imports and running the check on the CPU; the
"kernels" are the torch reference, a kernel that raises, or one that returns wrong numbers.
"""
import warnings

import pytest
import torch

import hebb_utils.backend as backend
import hebb_utils.rules.softhebb as sh


@pytest.fixture
def fake_gpu(monkeypatch):
    monkeypatch.setattr(backend, "_SELF_CHECK", {})
    monkeypatch.setattr(backend, "triton_available", lambda: True)
    monkeypatch.setattr(backend, "_check_device", lambda device: torch.device("cpu"))

    def use(post, apply):
        monkeypatch.setattr(backend, "_triton_functions", lambda: (post, apply))

    return use


def broken_compile(*args):
    raise RuntimeError("triton.CompilationError: bad kernel")


def wrong_post(u, t_invert, lateral, legacy):
    y, s = sh.post_synaptic_sums(u, t_invert, lateral, legacy)
    return y, s * 1.5


def wrong_winner_post(u, t_invert, lateral, legacy):
    return sh.post_synaptic_sums(-u, t_invert, lateral, legacy)


@pytest.mark.parametrize("post, apply, reason", [
    (broken_compile, sh.apply_update, "CompilationError"),
    (sh.post_synaptic_sums, broken_compile, "CompilationError"),
    (wrong_post, sh.apply_update, "weights differ"),
    (wrong_winner_post, sh.apply_update, "weights differ|winners"),
])
def test_a_failing_kernel_warns_once_and_auto_uses_torch(fake_gpu, post, apply, reason):
    fake_gpu(post, apply)
    with pytest.warns(RuntimeWarning, match=reason):
        assert backend.resolve_backend("auto", "cuda:0") == "torch"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the verdict is cached: no second warning, no second check
        fake_gpu(broken_compile, broken_compile)
        assert backend.resolve_backend("auto", torch.device("cuda:0")) == "torch"


def test_a_passing_kernel_makes_auto_choose_triton(fake_gpu):
    calls = []

    def post(*args):
        calls.append(1)
        return sh.post_synaptic_sums(*args)

    fake_gpu(post, sh.apply_update)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert backend.resolve_backend("auto", "cuda:0") == "triton"
        assert backend.resolve_backend("auto", "cuda:0") == "triton"
    assert len(calls) == 4 * len(backend.self_check_cases())  # the check ran once for the device: 4 steps a case
    assert backend.resolve_backend("auto", "cpu") == "torch"
    assert backend.resolve_backend("torch", "cuda:0") == "torch"


def test_cached_per_device(fake_gpu):
    fake_gpu(broken_compile, sh.apply_update)
    with pytest.warns(RuntimeWarning):
        backend.resolve_backend("auto", "cuda:0")
    fake_gpu(sh.post_synaptic_sums, sh.apply_update)
    assert backend.resolve_backend("auto", "cuda:1") == "triton"
    assert backend.resolve_backend("auto", "cuda:0") == "torch"


def test_bad_backend_name():
    with pytest.raises(ValueError, match="backend='cuda'"):
        backend.resolve_backend("cuda", "cpu")


def test_the_self_check_covers_every_support_the_kernels_run(fake_gpu):
    """Issue 26: the self-check ran the disc only, so `auto` trusted a Gaussian kernel it never checked."""
    from hebb_utils.rules.lateral import NEIGHBOURHOODS

    cases = backend.self_check_cases()
    assert {f"{shape} support" for shape in NEIGHBOURHOODS} <= set(cases)
    assert {"1D support", "no support", "batch-wide winner"} <= set(cases)

    def wrong_for_gaussian(u, t_invert, lateral, legacy):  # right on the disc, wrong on the Gaussian
        y, s = sh.post_synaptic_sums(u, t_invert, lateral, legacy)
        return (y, s * 1.5) if lateral is not None and lateral.shape == "gaussian" else (y, s)

    fake_gpu(wrong_for_gaussian, sh.apply_update)
    with pytest.warns(RuntimeWarning, match="gaussian support: the weights differ"):
        assert backend.resolve_backend("auto", "cuda:0") == "torch"
