"""Every public entry point against bad input: a clear error that names the argument, or a correct
finite result. Never a deep stack trace from inside torch/numpy, never a silent NaN.

The walk is a table: for each function, a call with valid arguments, the name of its data
argument, and its settings. Each is tried with
  wrong shape | wrong dtype | NaN | inf | empty | numpy scalar (must work) | out-of-range setting.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import hebb_utils as H

G = torch.Generator().manual_seed(0)
X = torch.randn(200, 6, generator=G)  # (samples, D)
U = torch.randn(50, 12, generator=G)  # responses (samples, N) for a 3 x 4 grid
W = torch.randn(12, 6, generator=G)
LABELS = torch.randint(0, 3, (50,), generator=G)
FAST = dict(steps=20)  # the PCA-family rules: a few steps are enough to check the arguments


def _layer(**kw):
    return H.SoftHebbLinear(6, 12, 10.0, lateral=H.Lateral((3, 4)), seed=0, **kw)


def _trained():
    layer = _layer()
    H.train_softhebb(layer, X, batch_size=32, lr=0.05, progress=False)
    return layer


# name -> (function taking the data argument first, valid data, name of the data argument,
#          {setting: (valid value, [bad values])})
ENTRY_POINTS = {
    "oja": (lambda d, **k: H.oja(d, **{**FAST, **k}), X, "X", {"lr": (0.5, [-1.0, math.inf, 0.0]),
                                                               "batch_size": (32, [0, -3, 2.5])}),
    "sanger": (lambda d, **k: H.sanger(d, 3, **{**FAST, **k}), X, "X", {"lr": (0.5, [-1.0, math.nan]),
                                                                        "batch_size": (32, [0])}),
    "hebb_with_decay": (lambda d, **k: H.hebb_with_decay(d, **{**FAST, **k}), X, "X", {"lr": (0.5, [-0.1])}),
    "recurrent_hebb": (lambda d, **k: H.recurrent_hebb(d, **{**FAST, **k}), X, "X", {"alpha": (1.0, [0.0, -1.0])}),
    "hebb": (lambda d, **k: H.hebb(d, **{**FAST, **k}).w, X, "X", {"lr": (0.1, [-1.0])}),
    "hebbian_ica": (lambda d, **k: H.hebbian_ica(d, 2, **{**FAST, **k}), X, "X", {"lr": (0.05, [-1.0])}),
    "top_eigenvectors": (lambda d, **k: H.top_eigenvectors(d, 2, **k), X, "X", {}),
    "post_synaptic": (lambda d, **k: H.post_synaptic(d, **{"t_invert": 10.0, **k}), U, "u",
                      {"t_invert": (10.0, [0.0, -1.0, math.inf, 1e39])}),
    "topographic_error": (lambda d, **k: H.topographic_error(d, **{"grid": (3, 4), **k}), U, "u",
                          {"grid": ((3, 4), [(3, 5), (0, 12), (12,) * 3])}),
    "winner_counts": (lambda d, **k: H.winner_counts(d), U, "u", {}),
    "dead_fraction": (lambda d, **k: H.dead_fraction(d), U, "u", {}),
    "label_selectivity": (lambda d, **k: H.label_selectivity(d, LABELS, **{"n_labels": 3, **k}), U, "u",
                          {"n_labels": (3, [0, -1])}),
    "token_purity": (lambda d, **k: H.token_purity(d, LABELS, **{"top": 5, **k}), U, "u", {"top": (5, [0, 51])}),
    "distance_correlation": (lambda d, **k: H.distance_correlation(d, **{"grid": (3, 4), "n_shuffles": 5, **k}), W,
                             "W", {"n_shuffles": (5, [-1, 2.5])}),
    "triangle_activation": (lambda d, **k: H.triangle_activation(d), U, "u", {}),
    "responses": (lambda d, **k: _layer().responses(d, **k), X, "X", {"batch_size": (64, [0, -1])}),
    "train_softhebb": (lambda d, **k: H.train_softhebb(_layer(), d, **{"batch_size": 32, "lr": 0.05,
                                                                         "progress": False, **k})[0].weight, X, "data",
                       {"lr": (0.05, [-1.0, math.inf, 1e39]), "batch_size": (32, [1, 0]), "epochs": (1, [0])}),
    "neuron_summary": (lambda d, **k: H.neuron_summary(_layer().eval(), d, **{"top": 3, **k})["best2"], X, "X",
                       {"top": (3, [0, 10_000])}),
}

SHAPES = {"1d": lambda d: d[:, 0], "3d": lambda d: d[None], "transposed": lambda d: d.T}
DTYPES = {"int": lambda d: (d * 10).long(), "bool": lambda d: d > 0, "strings": lambda d: np.array([["a"] * d.shape[1]])}


def _poison(d, value):
    d = d.clone()
    d[1, 2] = value
    return d


def _finite(result) -> bool:
    if isinstance(result, dict):
        return all(_finite(v) for v in result.values())
    if isinstance(result, (tuple, list)):
        return all(_finite(v) for v in result)
    if isinstance(result, torch.Tensor):
        return not result.is_floating_point() or bool(torch.isfinite(result).all())
    if isinstance(result, (float, np.floating)):
        return math.isfinite(result)
    return True


def _clear_error(call, *names):
    """The call raises a ValueError whose message names one of `names`."""
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert any(n in message for n in names), f"the error does not name {names}: {message!r}"


# where the number of columns is fixed by a layer or a grid, the transposed matrix is also wrong
FIXED_COLUMNS = {"responses", "train_softhebb", "neuron_summary", "topographic_error", "label_selectivity",
                 "token_purity", "distance_correlation"}

CASES = []
for fname, (fn, data, arg, settings) in ENTRY_POINTS.items():
    for kind, make in SHAPES.items():
        if kind != "transposed" or fname in FIXED_COLUMNS:
            CASES.append((f"{fname}-shape-{kind}", fn, arg, ("data", make)))
    for kind, make in DTYPES.items():
        CASES.append((f"{fname}-dtype-{kind}", fn, arg, ("data", make)))
    CASES.append((f"{fname}-nan", fn, arg, ("data", lambda d: _poison(d, float("nan")))))
    CASES.append((f"{fname}-inf", fn, arg, ("data", lambda d: _poison(d, float("inf")))))
    CASES.append((f"{fname}-empty", fn, arg, ("data", lambda d: d[:0])))
    for setting, (good, bads) in settings.items():
        for bad in bads:
            CASES.append((f"{fname}-{setting}={bad!r}", fn, setting, ("setting", setting, bad)))


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_a_clear_error(case):
    """A clear error naming the argument; integer or boolean data may instead be used as numbers,
    as long as the result is finite (a correct answer, not a silent failure)."""
    name, fn, arg, how = case
    data = ENTRY_POINTS[name.split("-")[0]][1]
    if how[0] == "data":
        bad = how[1](data)
        if "-dtype-int" in name or "-dtype-bool" in name:
            try:
                result = fn(bad)
            except ValueError as e:
                assert arg in str(e), f"the error does not name {arg}: {e}"
            else:
                assert _finite(result)
            return
        _clear_error(lambda: fn(bad), arg)
    else:
        _, setting, value = how
        _clear_error(lambda: fn(data, **{setting: value}), setting)


def test_the_walk_is_large():
    assert len(CASES) + len(NUMPY_SCALARS) > 150


NUMPY_SCALARS = [(fname, setting, good) for fname, (_, _, _, settings) in ENTRY_POINTS.items()
                 for setting, (good, _) in settings.items() if isinstance(good, (int, float)) and not isinstance(good, bool)]


@pytest.mark.parametrize("fname,setting,good", NUMPY_SCALARS, ids=[f"{f}-{s}" for f, s, _ in NUMPY_SCALARS])
def test_numpy_scalars_work_like_python_numbers(fname, setting, good):
    fn, data, _, _ = ENTRY_POINTS[fname]
    value = np.int64(good) if isinstance(good, int) else np.float32(good)
    result = fn(data, **{setting: value})
    assert _finite(result)


@pytest.mark.parametrize("fname", [f for f in ENTRY_POINTS if f not in ("top_eigenvectors",)])
def test_float64_and_numpy_data_work(fname):
    fn, data, _, _ = ENTRY_POINTS[fname]
    for variant in (data.double(), data.numpy()):
        assert _finite(fn(variant))


# ------------------------------------------------------------------------------------------------
# the audit's one-line reproducers


def test_nan_batch_never_reaches_batchnorm():
    layer = H.SoftHebbLinear(8, 12, 10.0, seed=0)
    with pytest.raises(ValueError, match="NaN"):
        layer(torch.full((4, 8), float("nan")))
    assert torch.isfinite(layer.responses(torch.randn(16, 8))).all()
    with pytest.raises(ValueError):
        layer.hebbian_step(torch.full((4, 8), 1e19), lr=0.1)
    assert torch.isfinite(layer.bn.running_var).all()


def test_noise_step_does_not_move_the_weights_by_lr():
    layer = H.SoftHebbLinear(8, 12, 1000.0, seed=0)
    before = layer.weight.clone()
    layer.hebbian_step(torch.full((16, 8), 7.0), lr=0.08)
    assert (layer.weight - before).abs().max() < 0.08 * 1e-2


def test_settings_that_overflow_float32():
    u = torch.randn(4, 6)
    with pytest.raises(ValueError, match="t_invert"):
        H.post_synaptic(u, 1e39)
    assert torch.isfinite(H.Lateral((2, 3), radius=1e300).offsets()).all()


def test_recurrent_hebb_divergence_is_an_error():
    with pytest.raises((ValueError, RuntimeError), match="diverg"):
        H.recurrent_hebb(X, lr=2.5, lr_decay=False, steps=300, batch_size=32)


def test_cuda_without_a_gpu_and_seed_none():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="device"):
        H.train_softhebb(_layer(), X, device="cuda", progress=False)
    layer, _ = H.train_softhebb(_layer(), X, seed=None, batch_size=32, progress=False)
    assert torch.isfinite(layer.weight).all()


def test_one_neuron_layer_and_large_amari():
    layer = H.SoftHebbLinear(6, 1, 10.0, seed=0).eval()
    summary = H.neuron_summary(layer, X, top=3)
    assert summary["best2"].shape == (200, 1) and (summary["best2"] == 0).all()
    A = torch.randn(4, 4, generator=G)
    assert math.isfinite(H.amari_distance(A.double() * 1e200, torch.linalg.inv(A.double())))


def test_metrics_refuse_a_grid_other_than_the_layers():
    layer = _trained()
    with pytest.raises(ValueError, match="grid"):
        H.softhebb_metrics(layer, X, (4, 3), n_shuffles=2)


def test_state_dict_of_another_layer_is_refused():
    a = _layer()
    b = H.SoftHebbLinear(6, 12, 99.0, lateral=H.Lateral((3, 4)), seed=0)
    with pytest.raises((ValueError, RuntimeError), match="t_invert"):
        b.load_state_dict(a.state_dict())
    c = H.SoftHebbLinear(6, 12, 10.0, lateral=H.Lateral((4, 3)), seed=0)
    with pytest.raises((ValueError, RuntimeError), match="grid"):
        c.load_state_dict(a.state_dict())
    d = _layer()
    d.load_state_dict(a.state_dict())  # the same configuration loads
    assert torch.equal(d.weight, a.weight)
