"""The Triton kernels against the torch reference (softhebb, hebbian).

On a CPU-only machine they run in Triton's interpreter: TRITON_INTERPRET=1 must be set before
the first kernel is built (tests/conftest.py sets it when CUDA is absent). With CUDA they run
on the GPU, and the CUDA-graph epoch is checked against the eager torch path too.
"""
import os

import pytest
import torch

from hebb_utils.backend import triton_available, triton_interpreted

if not triton_available():
    pytest.skip("triton is not installed (pip install triton)", allow_module_level=True)
if not torch.cuda.is_available() and not triton_interpreted():
    pytest.skip("no CUDA and TRITON_INTERPRET!=1: the Triton kernels cannot run here", allow_module_level=True)

from hebb_utils.kernels import (  # noqa: E402
    apply_update_triton,
    post_synaptic_triton,
    sanger_step_triton,
    softhebb_update_triton,
)
from hebb_utils.kernels import batchnorm, update  # noqa: E402
from hebb_utils.rules import graphed_epoch  # noqa: E402
from hebb_utils.rules.graphed_epoch import train_epoch_graphed  # noqa: E402
from hebb_utils.rules.hebbian import sanger_step  # noqa: E402
from hebb_utils import (  # noqa: E402
    Lateral,
    LateralSchedule,
    SoftHebbLinear,
    plastic_update,
    post_synaptic,
    softhebb_step,
    train_softhebb,
)

# In the interpreter the kernels run on CPU tensors (TRITON_INTERPRET=1 wins even where CUDA exists)
ON_GPU = torch.cuda.is_available() and not triton_interpreted()
DEVICE = "cuda" if ON_GPU else "cpu"
cuda_only = pytest.mark.skipif(not ON_GPU, reason="needs a CUDA GPU without TRITON_INTERPRET=1 (CUDA graphs)")


def make_u(B, N, seed, lateral=None):
    """Random pre-activations, with the first samples' winners forced onto the borders of the grid
    (corners, first/last column, first/last neuron) where the neighbourhood is clipped."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(B, N, generator=g)
    cols = lateral.cols if lateral is not None else N
    for b, j in enumerate([0, N - 1, cols - 1, N - cols, min(N - 1, cols), N // 2][:B]):
        u[b, j] = u[b].max() + 1.0
    return u.to(DEVICE)


def reference(u, t_invert, lateral, legacy):
    y = post_synaptic(u, t_invert, lateral, legacy)
    return y, (y * u).sum(dim=0)


# (B, N, grid, radius): batch sizes 1, 63, 64, 1000; N = 450 and 1800 (not multiples of the block
# sizes), 10000 (more than one chunk per row); grids with one row; the 1D variant; radius 0, 1, 1.5.
CASES = [
    (1, 450, (15, 30), 1.0),
    (63, 450, (15, 30), 1.5),
    (64, 450, (15, 30), 0.0),
    (64, 1800, (30, 60), 1.0),
    (1000, 45, (5, 9), 1.5),
    (64, 45, (1, 45), 1.0),
    (63, 45, (1, 45), 1.5),
    (64, 45, (45,), 1.0),
    (63, 45, (45,), 2.5),
    (1, 45, (45,), 0.0),
    (64, 77, None, 0.0),
]


@pytest.mark.parametrize("legacy", [False, True], ids=["per_sample", "legacy"])
@pytest.mark.parametrize("B,N,grid,radius", CASES)
def test_post_synaptic_matches_reference(B, N, grid, radius, legacy):
    lateral = None if grid is None else Lateral(grid, radius, gain=0.3)
    _matches_reference(B, N, lateral, legacy)


def _matches_reference(B, N, lateral, legacy):
    """post_synaptic_triton against the torch reference on one batch of u; returns (u, y)."""
    u = make_u(B, N, seed=B * 7 + N, lateral=lateral)
    y, s = post_synaptic_triton(u, 300.0, lateral, legacy)
    y_ref, s_ref = reference(u, 300.0, lateral, legacy)
    assert y.shape == (B, N) and s.shape == (N,)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(s, s_ref, rtol=1e-5, atol=1e-5 * float(s_ref.abs().max()))
    return u, y


# The Gaussian neighbourhood (shape="gaussian"): every neuron gets gain * w_b * h(j, k_b), h = 1 at the
# winner, computed as a row factor times a column factor in both the kernel and Lateral.weights.
# Grids: a small one, the CIFAR layer's, one row; radii: narrower than a cell, the grid's scale, wider
# than the grid (h ~ 1 everywhere); gains: published, large, negative (lateral inhibition).
@pytest.mark.parametrize("legacy", [False, True], ids=["per_sample", "legacy"])
@pytest.mark.parametrize("B", [1, 5, 64])
@pytest.mark.parametrize("gain", [0.3, 3.0, -0.5])
@pytest.mark.parametrize("radius", [0.5, 1.0, 3.7, 100.0])
@pytest.mark.parametrize("grid", [(3, 4), (15, 30), (1, 7)], ids=["3x4", "15x30", "1x7"])
def test_post_synaptic_gaussian_matches_reference(grid, radius, gain, B, legacy):
    u, y = _matches_reference(B, grid[0] * grid[1], Lateral(grid, radius, gain, shape="gaussian"), legacy)
    # the same winners: the kernel's Gaussian term w_b h(j, k_b) peaks (h = 1) at torch's winner
    # (radius 100: h = 0.99995 one cell away, far above the rounding of y - y_plain)
    term = (y - post_synaptic(u, 300.0, None, legacy)) / gain
    assert torch.equal(term.argmax(1), u.argmax(1))


def test_post_synaptic_gaussian_hand_case():
    """2 samples on a 2x3 grid, radius 1 (h = exp(-d^2 / 2)), gain 0.5, t_invert 1: winners 4 and 0."""
    u = torch.zeros(2, 6)
    u[0, 4] = 2.0
    u[1, 0] = 1.0
    y, s = post_synaptic_triton(u.to(DEVICE), 1.0, Lateral((2, 3), 1.0, 0.5, shape="gaussian"), False)
    expected = torch.zeros(2, 6, dtype=torch.float64)
    for b, (k, peak) in enumerate([(4, 2.0), (0, 1.0)]):
        soft = torch.softmax(u[b].double(), 0)
        expected[b] = -soft
        expected[b, k] = soft[k]
        for j in range(6):
            d2 = (j // 3 - k // 3) ** 2 + (j % 3 - k % 3) ** 2
            expected[b, j] += 0.5 * soft[k] * torch.exp(torch.tensor(-d2 / 2.0, dtype=torch.float64))
    torch.testing.assert_close(y.cpu().double(), expected, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(s.cpu().double(), (expected * u.double()).sum(0), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("radius,disc_radius", [(1e-30, 0.0), (1e-200, 0.0), (1e300, 1e300)])
def test_post_synaptic_gaussian_extreme_radii(radius, disc_radius):
    """radius -> 0: the winner alone (as the disc of radius 0); radius -> inf: h = 1 on the whole grid (as a
    disc past the grid). -1 / (2 radius^2) is kept within float32 (0 * -inf would be NaN at the winner)."""
    u = make_u(5, 12, seed=4)
    for gain in (0.3, -0.5):
        y, s = post_synaptic_triton(u, 10.0, Lateral((3, 4), radius, gain, shape="gaussian"), True)
        y_disc, s_disc = post_synaptic_triton(u, 10.0, Lateral((3, 4), disc_radius, gain), True)
        assert torch.equal(y, y_disc) and torch.equal(s, s_disc)


def test_post_synaptic_long_rows():
    """N = 10000 (100x100): several chunks per row in the row kernel; legacy flip and lateral support."""
    lateral = Lateral((100, 100), 1.5, 0.3)
    u = make_u(3, 10000, seed=11, lateral=lateral)
    y, s = post_synaptic_triton(u, 100.0, lateral, True)
    y_ref, s_ref = reference(u, 100.0, lateral, True)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(s, s_ref, rtol=1e-5, atol=1e-5 * float(s_ref.abs().max()))


def test_post_synaptic_hand_case():
    """2 samples on a 3x3 grid, radius 1, gain 0.5, t_invert 1: winners 4 (centre) and 0 (corner)."""
    u = torch.zeros(2, 9)
    u[0, 4] = 2.0
    u[1, 0] = 1.0
    y, s = post_synaptic_triton(u.to(DEVICE), 1.0, Lateral((3, 3), 1.0, 0.5), False)
    expected = torch.zeros(2, 9, dtype=torch.float64)
    for b, (k, peak) in enumerate([(4, 2.0), (0, 1.0)]):
        soft = torch.softmax(u[b].double(), 0)
        expected[b] = -soft
        expected[b, k] = soft[k]
        neighbours = {4: [1, 3, 4, 5, 7], 0: [0, 1, 3]}[k]
        expected[b, neighbours] += 0.5 * soft[k]
    torch.testing.assert_close(y.cpu().double(), expected, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(s.cpu().double(), (expected * u.double()).sum(0), rtol=1e-6, atol=1e-7)


def test_winner_ties_take_the_lowest_index_across_chunks():
    """Equal maxima inside one chunk and in different BLOCK_N chunks of a long row: lowest index wins."""
    N = 5000  # the row kernel reads 2048 columns at a time: 100, 2148 and 4196 share a lane
    u = torch.zeros(4, N)
    u[0, [3000, 100, 4999]] = 1.0
    u[1, [4000, 2049, 2050]] = 1.0
    u[2, [7, 5]] = 1.0
    u[3, [4196, 2148, 100]] = 1.0
    y, _ = post_synaptic_triton(u.to(DEVICE), 10.0, None, False)
    assert (y.cpu() > 0).nonzero()[:, 1].tolist() == [100, 2049, 5, 100]


def test_post_synaptic_stays_finite_at_high_temperature():
    u = make_u(64, 450, seed=3) * 50
    y, s = post_synaptic_triton(u, 1000.0, Lateral((15, 30), 1.0, 0.3), False)
    assert bool(torch.isfinite(y).all()) and bool(torch.isfinite(s).all())
    torch.testing.assert_close(y, post_synaptic(u, 1000.0, Lateral((15, 30), 1.0, 0.3)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("grid", [(3, 4), (12,)], ids=["2d", "1d"])
def test_post_synaptic_huge_radius_reaches_the_whole_grid(grid):
    """radius 1e300 overflowed radius^2 (2D) or int32 (1D); past rows + cols it selects what rows + cols does."""
    u = make_u(5, 12, seed=4)
    lateral = Lateral(grid, 1e300, 0.3)
    y, _ = post_synaptic_triton(u, 10.0, lateral, False)
    torch.testing.assert_close(y, post_synaptic(u, 10.0, lateral), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(y, post_synaptic(u, 10.0, Lateral(grid, 16.0, 0.3)), rtol=1e-5, atol=1e-6)


def test_post_synaptic_rejects_bad_input():
    with pytest.raises(ValueError, match="float32"):
        post_synaptic_triton(torch.zeros(2, 9, dtype=torch.float64, device=DEVICE), 1.0, None, False)
    with pytest.raises(ValueError, match="t_invert"):
        post_synaptic_triton(torch.zeros(2, 9, device=DEVICE), 0.0, None, False)
    with pytest.raises(ValueError, match="lateral"):
        post_synaptic_triton(torch.zeros(2, 9, device=DEVICE), 1.0, Lateral((2, 5)), False)
    with pytest.raises(ValueError, match="u: expected"):
        post_synaptic_triton(torch.zeros(9, device=DEVICE), 1.0, None, False)
    with pytest.raises(ValueError, match="LateralSchedule"):
        post_synaptic_triton(torch.zeros(2, 9, device=DEVICE), 1.0, LateralSchedule((3, 3), 1.0), False)


@pytest.mark.parametrize("shape,max_parts", [((450, 64), 512), ((7, 3), 512), ((45, 300), 4)])
def test_apply_update_matches_float64(shape, max_parts, monkeypatch):
    # max_parts 4: each program of the first pass reduces several blocks (as for large W on a GPU)
    monkeypatch.setattr(update, "_MAX_PARTS", max_parts)
    g = torch.Generator().manual_seed(shape[0])
    W = torch.randn(shape, generator=g)
    dW = torch.randn(shape, generator=g) * 3
    expected = W.double() + 0.08 * dW.double() / dW.double().abs().max()
    W_dev = W.to(DEVICE)
    apply_update_triton(W_dev, dW.to(DEVICE), 0.08)
    torch.testing.assert_close(W_dev.cpu().double(), expected, rtol=0, atol=1e-6)


def test_apply_update_zero_step_keeps_weights():
    W = torch.randn(45, 30, device=DEVICE)
    before = W.clone()
    apply_update_triton(W, torch.zeros_like(W), 0.5)
    assert torch.equal(W, before)


def test_apply_update_rejects_bad_input():
    W = torch.zeros(4, 5, device=DEVICE)
    with pytest.raises(ValueError, match="shape"):
        apply_update_triton(W, torch.zeros(5, 4, device=DEVICE), 0.1)
    with pytest.raises(ValueError, match="contiguous"):
        apply_update_triton(torch.zeros(5, 4, device=DEVICE).T, torch.zeros(4, 5, device=DEVICE), 0.1)
    with pytest.raises(ValueError, match="lr"):
        apply_update_triton(W, W.clone(), float("nan"))


def test_fused_softhebb_update_matches_plastic_update():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 300, generator=g).to(DEVICE)
    W = torch.randn(450, 300, generator=g).to(DEVICE)
    u = x @ W.T
    y, s = post_synaptic_triton(u, 300.0, Lateral((15, 30)), False)
    expected = W.double() + 0.08 * plastic_update(x, W, u, y).double()
    softhebb_update_triton(W, (y.T @ x).contiguous(), s, 0.08)
    torch.testing.assert_close(W.double(), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("m,D,B", [(1, 30, 64), (10, 77, 63), (40, 200, 1), (40, 200, 1000)])
def test_sanger_step_matches_reference(m, D, B):
    g = torch.Generator().manual_seed(m * D + B)
    W = (torch.randn(m, D, generator=g) * 0.3).to(DEVICE)
    x = torch.randn(B, D, generator=g).to(DEVICE)
    Wd, xd = W.double(), x.double()
    y = xd @ Wd.T
    exact = Wd + 0.01 * (y.T @ xd - torch.tril(y.T @ y) @ Wd) / B
    expected = sanger_step(W.clone(), x, 0.01)
    out = sanger_step_triton(W, x, 0.01)
    assert out is W  # in place, like hebbian.sanger_step
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.double(), exact, rtol=1e-5, atol=1e-6)


def _train(backend, seed=0, steps=20, legacy=False, lateral=Lateral((6, 10), 1.0, 0.3)):
    g = torch.Generator().manual_seed(123)
    centres = torch.randn(6, 32, generator=g) * 3
    data = centres[torch.randint(0, 6, (steps * 16,), generator=g)] + torch.randn(steps * 16, 32, generator=g)
    layer = SoftHebbLinear(32, 60, t_invert=20.0, lateral=lateral,
                           legacy_batch_winner=legacy, seed=seed, device=DEVICE)
    layer, snaps = train_softhebb(layer, data, batch_size=16, lr=0.08, seed=seed, snapshot_every=5,
                                  device=DEVICE, backend=backend, progress=False)
    return layer, snaps, data.to(DEVICE)


@pytest.mark.parametrize("legacy", [False, True], ids=["per_sample", "legacy"])
def test_training_matches_torch_path(legacy):
    """20 steps of a small layer: weights agree to 1e-4 (relative) and the winners are the same."""
    layer_t, snaps_t, data = _train("torch", legacy=legacy)
    layer_k, snaps_k, _ = _train("triton", legacy=legacy)
    assert snaps_t.shape == snaps_k.shape == (5, 60, 32)
    rel = (snaps_k - snaps_t).norm(dim=(1, 2)) / snaps_t.norm(dim=(1, 2))
    assert float(rel.max()) < 1e-4, rel
    assert torch.equal(layer_t(data).argmax(1), layer_k(data).argmax(1))
    torch.testing.assert_close(layer_k.bn.running_var, layer_t.bn.running_var)


# a shrinking Gaussian (as a Kohonen map), a fixed one, and a shrinking disc with lateral inhibition
SCHEDULES = {
    "gaussian_schedule": LateralSchedule((6, 10), radius=(3.0, 0.7), gain=(1.0, 0.3)),
    "gaussian_fixed": Lateral((6, 10), 1.3, 0.5, shape="gaussian"),
    "disc_schedule": LateralSchedule((6, 10), radius=(2.5, 1.0), gain=(-0.2, 0.3), shape="disc", decay="linear"),
}


@pytest.mark.parametrize("legacy", [False, True], ids=["per_sample", "legacy"])
@pytest.mark.parametrize("name", list(SCHEDULES))
def test_training_with_a_schedule_matches_torch_path(name, legacy):
    """train_softhebb steps a LateralSchedule eagerly (a fixed Gaussian: in CUDA graphs on a GPU)."""
    layer_t, snaps_t, data = _train("torch", legacy=legacy, lateral=SCHEDULES[name])
    layer_k, snaps_k, _ = _train("triton", legacy=legacy, lateral=SCHEDULES[name])
    assert snaps_t.shape == snaps_k.shape == (5, 60, 32)
    rel = (snaps_k - snaps_t).norm(dim=(1, 2)) / snaps_t.norm(dim=(1, 2))
    assert float(rel.max()) < 1e-4, rel
    assert torch.equal(layer_t(data).argmax(1), layer_k(data).argmax(1))


@pytest.mark.parametrize("legacy", [False, True], ids=["per_sample", "legacy"])
def test_softhebb_step_gaussian_matches_torch(legacy):
    """20 softhebb_step calls with a Gaussian support on a 15x30 grid: the same winners at every step,
    weights within 1e-5 (relative)."""
    g = torch.Generator().manual_seed(21)
    centres = torch.randn(8, 48, generator=g) * 3
    W0 = torch.randn(450, 48, generator=g) * (14.0 / 48**0.5)
    W = {"torch": W0.clone().to(DEVICE), "triton": W0.clone().to(DEVICE)}
    lateral = Lateral((15, 30), 2.5, 0.5, shape="gaussian")
    for step in range(20):
        x = centres[torch.randint(0, 8, (32,), generator=g)] + torch.randn(32, 48, generator=g)
        x = ((x - x.mean(0)) / x.std(0)).to(DEVICE)
        u = {b: softhebb_step(W[b], x, 30.0, 0.05, lateral, legacy, backend=b) for b in W}
        assert torch.equal(u["torch"].argmax(1), u["triton"].argmax(1)), step
    rel = float((W["triton"] - W["torch"]).norm() / W["torch"].norm())
    assert rel < 1e-5, rel
    torch.testing.assert_close(W["triton"], W["torch"], rtol=1e-4, atol=1e-5)


def test_triton_training_is_bit_identical_for_a_seed():
    _, a, _ = _train("triton", seed=5)
    _, b, _ = _train("triton", seed=5)
    _, c, _ = _train("triton", seed=6)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


# last batch of 5 taken, of 1 skipped; 2 steps per graph: segments of 3 steps between snapshots
# run as one 2-step replay and one 1-step replay
@pytest.mark.parametrize("shape", ["disc", "gaussian"])
@pytest.mark.parametrize("n,step0,per_graph", [(16 * 9 + 5, 0, 2), (16 * 9 + 1, 4, 16)])
def test_device_side_epoch_matches_train_softhebb(n, step0, per_graph, shape, monkeypatch):
    """The steps the CUDA graphs capture (device-side batches, fused gather + BatchNorm, fused
    update), run eagerly on CPU: same weights, snapshots and BatchNorm statistics as
    train_softhebb's torch loop."""
    monkeypatch.setattr(graphed_epoch, "STEPS_PER_GRAPH", per_graph)

    g = torch.Generator().manual_seed(9)
    data = (torch.randn(n, 24, generator=g) * 2 + 1).to(DEVICE)
    layers = [SoftHebbLinear(24, 40, t_invert=10.0, lateral=Lateral((5, 8), 1.5, 0.3, shape=shape), seed=1,
                             device=DEVICE) for _ in range(2)]
    _, snaps_ref = train_softhebb(layers[0], data, batch_size=16, lr=0.1, seed=3, snapshot_every=3,
                                  backend="torch", progress=False)
    gen = torch.Generator(device=DEVICE).manual_seed(3)  # the order train_softhebb draws
    order = torch.randperm(n, generator=gen, device=DEVICE)
    snaps = train_epoch_graphed(layers[1], data, order, batch_size=16, lr=0.1, snapshot_every=3, step0=step0,
                                use_graph=DEVICE == "cuda")
    n_steps = n // 16 + (n % 16 >= 2)
    expected_steps = [t for t in range(1, n_steps + 1) if (t + step0) % 3 == 0]
    assert snaps.shape == (len(expected_steps), 40, 24)
    if step0 == 0:  # train_softhebb's snapshots: initial, steps 3, 6, 9, final
        torch.testing.assert_close(snaps.cpu(), snaps_ref[1:4], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(layers[1].weight, layers[0].weight, rtol=1e-4, atol=1e-5)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(layers[1].bn, name), getattr(layers[0].bn, name))


def _bad_orders(n):
    return {
        "short": torch.arange(n - 1, device=DEVICE),
        "past the end": torch.arange(n, device=DEVICE).flip(0) + 1,  # n is one row past data
        "negative": torch.arange(n, device=DEVICE) - 1,
        "floats": torch.arange(n, device=DEVICE).float(),
        "other device": torch.arange(n, device="meta"),
    }


@pytest.mark.parametrize("case", list(_bad_orders(3)))
def test_epoch_refuses_a_bad_order_before_any_step(case):
    """A bad `order` would make the gather kernel read outside data: refused at entry, layer untouched."""
    n = 16 * 2 + 3
    data = torch.randn(n, 24, generator=torch.Generator().manual_seed(0)).to(DEVICE)
    layer = SoftHebbLinear(24, 40, t_invert=10.0, lateral=Lateral((5, 8), 1.5, 0.3), seed=1, device=DEVICE)
    before = layer.weight.clone()
    with pytest.raises(ValueError, match="order"):
        train_epoch_graphed(layer, data, _bad_orders(n)[case], batch_size=16, lr=0.1, snapshot_every=3,
                            use_graph=DEVICE == "cuda")
    assert torch.equal(layer.weight, before) and int(layer.bn.num_batches_tracked) == 0


def test_epoch_refuses_a_lateral_schedule_before_any_step():
    """The graphs hold one support: a LateralSchedule is refused at entry, the layer untouched."""
    data = torch.randn(16 * 2 + 3, 24, generator=torch.Generator().manual_seed(0)).to(DEVICE)
    layer = SoftHebbLinear(24, 40, t_invert=10.0, lateral=LateralSchedule((5, 8), (2.0, 1.0)), seed=1, device=DEVICE)
    before = layer.weight.clone()
    with pytest.raises(ValueError, match="LateralSchedule"):
        train_epoch_graphed(layer, data, torch.arange(len(data), device=DEVICE), batch_size=16, lr=0.1,
                            snapshot_every=3, use_graph=DEVICE == "cuda")
    assert torch.equal(layer.weight, before) and int(layer.bn.num_batches_tracked) == 0


# --- CUDA only: the whole-epoch CUDA-graph path ------------------------------------------------

def _epoch(backend, n, D, grid, t_invert, lr, snapshot_every, epochs=1, legacy=False, shape="disc"):
    g = torch.Generator().manual_seed(7)
    data = torch.rand(n, D, generator=g)
    N = grid[0] * grid[1]
    layer = SoftHebbLinear(D, N, t_invert=t_invert, lateral=Lateral(grid, 1.0, 0.3, shape=shape),
                           legacy_batch_winner=legacy, seed=42, device="cuda")
    layer, snaps = train_softhebb(layer, data, epochs=epochs, batch_size=64, lr=lr, seed=42,
                                  snapshot_every=snapshot_every, device="cuda", backend=backend, progress=False)
    return layer, snaps, data.cuda()


@cuda_only
@pytest.mark.parametrize("shape", ["disc", "gaussian"])
@pytest.mark.parametrize("legacy", [False, True], ids=["per_sample", "legacy"])
def test_graphed_epochs_match_eager_torch(legacy, shape):
    # 2 epochs of 20 full batches + a partial one of 37 samples; snapshots every 7 steps
    kwargs = dict(n=64 * 20 + 37, D=300, grid=(9, 10), t_invert=30.0, lr=0.08, snapshot_every=7, epochs=2,
                  legacy=legacy, shape=shape)
    layer_t, snaps_t, data = _epoch("torch", **kwargs)
    layer_g, snaps_g, _ = _epoch("triton", **kwargs)
    assert snaps_t.shape == snaps_g.shape == (1 + 42 // 7, 90, 300)
    rel = (snaps_g - snaps_t).norm(dim=(1, 2)) / snaps_t.norm(dim=(1, 2))
    assert float(rel.max()) < 1e-4, rel
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(layer_g.bn, name), getattr(layer_t.bn, name), rtol=1e-5, atol=1e-6)
    assert torch.equal(layer_t(data).argmax(1), layer_g(data).argmax(1))


@cuda_only
def test_graphed_epoch_is_bit_identical_for_a_seed():
    kwargs = dict(n=64 * 10 + 5, D=64, grid=(6, 10), t_invert=100.0, lr=0.2, snapshot_every=3)
    _, a, _ = _epoch("triton", **kwargs)
    _, b, _ = _epoch("triton", **kwargs)
    assert torch.equal(a, b)


@cuda_only
def test_full_cifar_shaped_epoch_matches_torch():
    """782 steps of the CIFAR-10 shape (B=64, D=3072, N=450 on 15x30) on synthetic data in [0, 1]."""
    kwargs = dict(n=50000, D=3072, grid=(15, 30), t_invert=300.0, lr=0.08, snapshot_every=100)
    layer_t, snaps_t, data = _epoch("torch", **kwargs)
    layer_g, snaps_g, _ = _epoch("triton", **kwargs)
    rel = float((snaps_g[-1] - snaps_t[-1]).norm() / snaps_t[-1].norm())
    assert rel < 1e-4, rel
    same = (layer_t(data).argmax(1) == layer_g(data).argmax(1)).float().mean()
    assert float(same) >= 0.999, float(same)


def test_published_style_baseline_computes_the_legacy_rule():
    """The benchmark's baseline (a) is the published rule: same weights as our legacy batch-winner mode."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_softhebb.py"
    spec = importlib.util.spec_from_file_location("bench_softhebb", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    data = torch.rand(16 * 10 + 5, 20, generator=torch.Generator().manual_seed(0))
    layer = SoftHebbLinear(20, 24, t_invert=5.0, lateral=Lateral((4, 6), 1.0, 0.3), legacy_batch_winner=True, seed=42)
    W = layer.weight.clone()
    bn = torch.nn.BatchNorm1d(20, affine=False)
    train_softhebb(layer, data, batch_size=16, lr=0.1, seed=42, backend="torch", progress=False)
    with torch.no_grad():
        bench.published_epoch(W, bn, data, 16, 5.0, 0.1, (4, 6), 1.0, False, torch.Generator().manual_seed(42))
    torch.testing.assert_close(W, layer.weight, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(bn.running_var, layer.bn.running_var)


# Compiled for an H100 without a GPU (ptxas ships with triton), in a subprocess without
# TRITON_INTERPRET (the interpreter patches triton.language for the whole process). Catches what
# the interpreter lets through: type changes of loop-carried values, unsupported ops, ...
AOT_SCRIPT = """
import sys
try:
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, compile
except ImportError as e:  # these are Triton internals; a future version may move them
    sys.exit(f"SKIP: {e}")
from hebb_utils.kernels import launch, batchnorm, post_synaptic, sanger, update
P, I = "*fp32", "i32"
jobs = [  # (kernel, runtime argument types, constexprs): every branch compiled in
    (post_synaptic._row_stats_kernel, [P, "*i32", P, P, I, I, I, "fp32"],
     dict(ACCURATE_EXP=True, BLOCK_R=8, BLOCK_N=512)),
    (post_synaptic._post_output_kernel, [P, P, P, "*i32", P, P, I, I, I, I, "fp32", "fp32", "fp32", I, I],
     dict(LEGACY=True, LATERAL=2, ACCURATE_EXP=True, BLOCK_B=32, BLOCK_N=64)),
    (post_synaptic._post_output_kernel, [P, P, P, "*i32", P, P, I, I, I, I, "fp32", "fp32", "fp32", I, I],
     dict(LEGACY=False, LATERAL=1, ACCURATE_EXP=True, BLOCK_B=32, BLOCK_N=64)),
    (post_synaptic._post_output_kernel, [P, P, P, "*i32", P, P, I, I, I, I, "fp32", "fp32", "fp32", I, I],
     dict(LEGACY=False, LATERAL=3, ACCURATE_EXP=True, BLOCK_B=32, BLOCK_N=64)),
    (update._absmax_partial_kernel, [P, P, P, P, I, I, I, "*i64", "*i64"], dict(HAS_S=True, COUNT=True, BLOCK=1024)),
    (update._apply_kernel, [P, P, P, P, I, I, I, "fp32"],
     dict(HAS_S=True, EPS=update.DW_EPS, BLOCK=1024, PART_BLOCK=512)),
    (sanger._sanger_kernel, [P, P, P, P, I, I, "fp32", "fp32"], dict(BLOCK_M=32, BLOCK_D=128)),
    (batchnorm._gather_batchnorm_kernel, [P, "*i64", "*i64", P, P, P, I, I, I, "fp32", "fp32"],
     dict(BLOCK_B=64, BLOCK_D=64)),
]
for kernel, types, constants in jobs:
    fn = launch.jit(kernel)  # a JITFunction (no TRITON_INTERPRET here); binds the file's `tl`
    name = kernel.__name__
    runtime = [a for a in fn.arg_names if a not in constants]
    assert len(runtime) == len(types), name
    signature = dict(zip(runtime, types), **{k: "constexpr" for k in constants})
    source = ASTSource(fn, signature, constexprs={(fn.arg_names.index(k),): v for k, v in constants.items()})
    compiled = compile(source, target=GPUTarget("cuda", 90, 32), options=dict(enable_fp_fusion=False))
    assert compiled.asm["cubin"], name
    print("compiled", name, constants)
"""


def test_kernels_compile_for_an_h100():
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", AOT_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    if done.returncode == 1 and "SKIP: " in done.stderr:
        pytest.skip(f"this Triton version lays out its compiler API differently: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("compiled") == 8, done.stdout


def test_post_synaptic_flushes_denormals_like_the_reference():
    """Probabilities below float32's normal range are exactly 0 in the kernel too (GPUs flush them;
    the interpreter computes them, so the kernel sets them to 0 itself)."""
    from hebb_utils.rules.softhebb import TINY

    u = torch.linspace(0.0, 1.0, 200).repeat(4, 1).to(DEVICE)  # exponents 0 .. -100 at t_invert 100
    y, s = post_synaptic_triton(u, 100.0, Lateral((10, 20)), False)
    y_ref, s_ref = reference(u, 100.0, Lateral((10, 20)), False)
    assert not ((y.abs() > 0) & (y.abs() < TINY)).any()
    assert torch.equal(y == 0, y_ref == 0)  # the same entries flushed
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-6)
