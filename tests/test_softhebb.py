"""SoftHebb with lateral support (hebb_utils.rules: lateral, softhebb, layer, training), the torch reference of the Triton kernels.

Hand-computed small cases, a float64 recomputation, a per-sample loop reference under
hypothesis, the layer's BatchNorm bookkeeping, and short training runs on synthetic data where
the lateral support must make the map topographic.
"""
import io
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hebb_utils import (
    Lateral,
    SoftHebbLinear,
    plastic_update,
    post_synaptic,
    softhebb_step,
    topographic_error,
    train_softhebb,
)
from hebb_utils.rules.softhebb import apply_update, post_synaptic_sums


def softmax_row(values, t_invert):
    top = max(values)
    e = [math.exp(t_invert * (v - top)) for v in values]
    return [v / sum(e) for v in e]


# -----------------------------------------------------------------------------
# steps 2-3: softmax and winners, by hand


def test_per_sample_winner_by_hand():
    u = torch.tensor([[1.0, 2.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 0.5], [1.0, 3.0, 3.0]])
    y = post_synaptic(u, t_invert=2.0)
    winners = [1, 0, 2, 1]  # the last row is a tie: the lowest index wins, as torch.argmax
    expected = []
    for row, k in zip(u.tolist(), winners):
        soft = softmax_row(row, 2.0)
        expected.append([s if j == k else -s for j, s in enumerate(soft)])
    torch.testing.assert_close(y, torch.tensor(expected), rtol=1e-6, atol=1e-7)


def test_legacy_batch_winner_turns_a_column_hebbian_for_all_samples():
    u = torch.tensor([[1.0, 2.0, 0.0, 0.0], [3.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.5]])
    soft = torch.tensor([softmax_row(row, 1.5) for row in u.tolist()])
    legacy = post_synaptic(u, 1.5, legacy_batch_winner=True)
    per_sample = post_synaptic(u, 1.5)
    # winners over the batch: {1, 0, 1} -> columns 0 and 1 positive in every row, 2 and 3 negative
    sign = torch.tensor([1.0, 1.0, -1.0, -1.0])
    torch.testing.assert_close(legacy, soft * sign, rtol=1e-6, atol=1e-7)
    # sample 0 did not win with neuron 0: Hebbian only in the legacy mode
    assert per_sample[0, 0] < 0 < legacy[0, 0]
    assert per_sample[1, 1] < 0 < legacy[1, 1]  # neuron 1 won for samples 0 and 2, Hebbian for 1 too
    assert per_sample[2, 0] < 0 < legacy[2, 0]
    assert per_sample[1, 0] == legacy[1, 0] > 0  # a sample's own winner is positive in both
    assert per_sample[0, 2] == legacy[0, 2] < 0  # a neuron that never won stays anti-Hebbian


# -----------------------------------------------------------------------------
# step 4: lateral support, by hand


def lateral_term(lateral, winner, t_invert=1.0):
    """Indices that received the lateral term for a single sample with a clear winner, checking its value."""
    u = torch.zeros(1, lateral.n_neurons)
    u[0, winner] = 1.0
    plain = post_synaptic(u, t_invert)
    with_support = post_synaptic(u, t_invert, lateral)
    w = plain[0, winner].item()
    added = (with_support - plain)[0]
    touched = torch.nonzero(added.abs() > 1e-7).flatten().tolist()
    torch.testing.assert_close(added[touched], torch.full((len(touched),), lateral.gain * w), rtol=1e-5, atol=1e-7)
    return set(touched), with_support[0, winner].item(), w


@pytest.mark.parametrize(
    "grid, radius, winner, expected",
    [
        ((4, 5), 1.0, 7, {2, 6, 7, 8, 12}),  # (1, 2): itself and its 4 neighbours
        ((4, 5), 1.5, 7, {1, 2, 3, 6, 7, 8, 11, 12, 13}),  # the 3x3 block
        ((4, 5), math.sqrt(2), 7, {1, 2, 3, 6, 7, 8, 11, 12, 13}),  # sqrt(2)^2 rounds above 2
        ((4, 5), 1.0, 0, {0, 1, 5}),  # top-left corner
        ((4, 5), 1.5, 0, {0, 1, 5, 6}),
        ((4, 5), 1.0, 19, {14, 18, 19}),  # bottom-right corner
        ((4, 5), 1.5, 19, {13, 14, 18, 19}),
        ((4, 5), 1.0, 2, {1, 2, 3, 7}),  # top edge
        ((4, 5), 1.0, 10, {5, 10, 11, 15}),  # left edge: no wrap-around to the row above
        ((4, 5), 1.0, 14, {9, 13, 14, 19}),  # right edge: 15 is the next row's first neuron
        ((4, 5), 0.0, 7, {7}),  # radius 0: the winner only
        ((4, 5), 0.99, 7, {7}),
        ((5, 5), 2.0, 12, {2, 6, 7, 8, 10, 11, 12, 13, 14, 16, 17, 18, 22}),  # the radius-2 disc
        ((1, 5), 1.0, 0, {0, 1}),  # a single row
        ((1, 5), 1.5, 2, {1, 2, 3}),
        ((5, 1), 1.0, 4, {3, 4}),  # a single column
    ],
)
def test_2d_neighbourhood(grid, radius, winner, expected):
    touched, winner_value, w = lateral_term(Lateral(grid, radius=radius, gain=0.3), winner)
    assert touched == expected
    assert winner_value == pytest.approx(1.3 * w, rel=1e-6)  # the winner is included


@pytest.mark.parametrize(
    "n, radius, winner, expected",
    [
        (7, 2.0, 3, {1, 2, 4, 5}),
        (7, 2.0, 0, {1, 2}),  # clipped at 0
        (7, 2.0, 6, {4, 5}),  # clipped at N - 1 (the published code clipped with the batch size)
        (7, 2.9, 3, {1, 2, 4, 5}),  # floor(radius)
        (7, 0.5, 3, set()),
        (7, 10.0, 1, {0, 2, 3, 4, 5, 6}),
    ],
)
def test_1d_neighbourhood_excludes_the_winner(n, radius, winner, expected):
    touched, winner_value, w = lateral_term(Lateral((n,), radius=radius, gain=0.5), winner)
    assert touched == expected
    assert winner_value == w


def test_lateral_term_uses_the_winner_value_before_support_in_both_modes():
    u = torch.tensor([[2.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0]])
    lateral = Lateral((2, 2), radius=1.0, gain=-0.7)  # a negative gain is allowed and subtracts
    soft = torch.tensor([softmax_row(r, 3.0) for r in u.tolist()])
    for legacy in (False, True):
        y = post_synaptic(u, 3.0, lateral, legacy_batch_winner=legacy)
        plain = post_synaptic(u, 3.0, legacy_batch_winner=legacy)
        # sample 0: winner 0 at (0, 0), neighbours 1 and 2; sample 1: winner 2 at (1, 0), neighbours 0 and 3
        add = torch.zeros(2, 4)
        add[0, [0, 1, 2]] = -0.7 * soft[0, 0]
        add[1, [0, 2, 3]] = -0.7 * soft[1, 2]
        torch.testing.assert_close(y, plain + add, rtol=1e-6, atol=1e-7)


def test_softmax_stays_finite_at_large_t_invert():
    g = torch.Generator().manual_seed(0)
    u = torch.randn(16, 50, generator=g) * 1e4
    y = post_synaptic(u, 1000.0, Lateral((5, 10), 1.5))
    assert torch.isfinite(y).all()
    # t_invert * u overflows float32 here: a softmax that scales before subtracting the max gives NaN
    huge = torch.tensor([[1e36, -1e36, 0.0], [0.0, 2e36, 1e36]])
    y = post_synaptic(huge, 1000.0)
    torch.testing.assert_close(y, torch.tensor([[1.0, -0.0, -0.0], [-0.0, 1.0, -0.0]]))
    # and the temperature is applied, not lost: t * u = [0, 1, 2]
    y = post_synaptic(torch.tensor([[0.0, 1e-3, 2e-3]]), 1000.0)
    soft = softmax_row([0.0, 1.0, 2.0], 1.0)
    torch.testing.assert_close(y, torch.tensor([[-soft[0], -soft[1], soft[2]]]), rtol=1e-4, atol=1e-6)


# -----------------------------------------------------------------------------
# step 5 and the full step, against float64


def test_plastic_update_against_float64():
    g = torch.Generator().manual_seed(1)
    x, W = torch.randn(7, 5, generator=g), torch.randn(6, 5, generator=g)
    u = x @ W.T
    y = post_synaptic(u, 3.0, Lateral((2, 3), 1.0))
    dW = plastic_update(x, W, u, y)
    x64, W64, u64, y64 = (t.double() for t in (x, W, u, y))
    ref = torch.zeros(6, 5, dtype=torch.float64)
    for b in range(7):  # sum of outer products, written out
        ref += torch.outer(y64[b], x64[b]) - (y64[b] * u64[b])[:, None] * W64
    ref /= ref.abs().max()
    torch.testing.assert_close(dW.double(), ref, rtol=1e-5, atol=1e-6)
    assert dW.abs().max().item() == pytest.approx(1.0, abs=1e-6)
    # no post-synaptic activity: no update, and no NaN from the normalisation
    assert torch.equal(plastic_update(x, W, u, torch.zeros_like(y)), torch.zeros_like(W))


@pytest.mark.parametrize("legacy", [False, True])
def test_softhebb_step_is_the_update_rule(legacy):
    g = torch.Generator().manual_seed(2)
    x, W = torch.randn(9, 4, generator=g), torch.randn(6, 4, generator=g)
    W0 = W.clone()
    lateral = Lateral((6,), radius=1.0)
    u = softhebb_step(W, x, 2.0, 0.05, lateral, legacy_batch_winner=legacy)
    u0 = x @ W0.T
    torch.testing.assert_close(u, u0)
    expected = W0 + 0.05 * plastic_update(x, W0, u0, post_synaptic(u0, 2.0, lateral, legacy_batch_winner=legacy))
    torch.testing.assert_close(W, expected, rtol=1e-6, atol=1e-7)
    # the torch helpers Triton is compared with: (y, s) and the normalised in-place update
    y, s = post_synaptic_sums(u0, 2.0, lateral, legacy)
    torch.testing.assert_close(y, post_synaptic(u0, 2.0, lateral, legacy_batch_winner=legacy))
    torch.testing.assert_close(s, (y * u0).sum(0))
    W1 = W0.clone()
    apply_update(W1, 3.0 * plastic_update(x, W0, u0, y), 0.05)  # the helper normalises again
    torch.testing.assert_close(W1, expected, rtol=1e-6, atol=1e-7)


def test_legacy_mode_changes_the_step_when_samples_disagree():
    x = torch.eye(3)
    W1 = torch.eye(3)  # each sample wins a different neuron
    W2 = W1.clone()
    softhebb_step(W1, x, 1.0, 0.1)
    softhebb_step(W2, x, 1.0, 0.1, legacy_batch_winner=True)
    assert not torch.allclose(W1, W2)


# -----------------------------------------------------------------------------
# property tests against a per-sample reference


def reference_post_synaptic(u, t_invert, lateral, legacy):
    """Steps 2-4 written out sample by sample, neuron by neuron, in float64."""
    rows = u.double().tolist()
    soft = [softmax_row(r, t_invert) for r in rows]
    winners = [r.index(max(r)) for r in rows]  # first maximum
    won = set(winners)
    y = [[s if ((j in won) if legacy else j == k) else -s for j, s in enumerate(sm)] for sm, k in zip(soft, winners)]
    if lateral is not None:
        for b, k in enumerate(winners):
            w = y[b][k]
            for j in range(len(y[b])):
                if lateral.is_1d:
                    near = 1 <= abs(j - k) <= math.floor(lateral.radius)
                else:
                    dr, dc = j // lateral.cols - k // lateral.cols, j % lateral.cols - k % lateral.cols
                    near = dr * dr + dc * dc <= lateral.radius**2 + 1e-6
                if near:
                    y[b][j] += lateral.gain * w
    return torch.tensor(y, dtype=torch.float64), winners


@st.composite
def cases(draw):
    kind = draw(st.sampled_from(["none", "1d", "2d"]))
    if kind == "2d":
        grid = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    else:
        grid = (draw(st.integers(1, 12)),)
    n = math.prod(grid)
    radius = draw(st.sampled_from([0.0, 0.5, 1.0, 1.5, math.sqrt(2), 2.0, 2.5, 3.0]) | st.floats(0.0, 4.0))
    gain = draw(st.floats(-1.0, 1.0))
    lateral = None if kind == "none" else Lateral(grid, radius=radius, gain=gain)
    B = draw(st.integers(1, 9))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31)))
    u = torch.randn(B, n, generator=g) * draw(st.sampled_from([0.01, 1.0, 30.0]))
    if draw(st.booleans()):
        u = u.round()  # many ties: the lowest index must win
    t_invert = draw(st.sampled_from([0.1, 1.0, 10.0, 300.0, 1000.0]) | st.floats(0.05, 100.0))
    return u, t_invert, lateral, draw(st.booleans())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_post_synaptic_matches_per_sample_reference(case):
    u, t_invert, lateral, legacy = case
    y = post_synaptic(u, t_invert, lateral, legacy_batch_winner=legacy)
    ref, _ = reference_post_synaptic(u, t_invert, lateral, legacy)
    assert y.shape == u.shape and y.dtype == torch.float32
    torch.testing.assert_close(y.double(), ref, rtol=1e-4, atol=2e-5)


@settings(max_examples=100, deadline=None)
@given(cases())
def test_post_synaptic_invariants(case):
    u, t_invert, lateral, legacy = case
    B, N = u.shape
    plain = post_synaptic(u, t_invert, legacy_batch_winner=legacy)
    winners = u.argmax(1)
    soft = plain.abs()
    # |y| is the softmax: every row sums to 1 and its largest entry is the winner's
    torch.testing.assert_close(soft.sum(1), torch.ones(B), rtol=1e-5, atol=1e-5)
    assert torch.equal(soft.gather(1, winners[:, None])[:, 0], soft.amax(1))
    positive = torch.signbit(plain).logical_not()  # sign pattern (a softmax can underflow to +-0)
    if legacy:
        won = torch.zeros(N, dtype=torch.bool)
        won[winners] = True
        assert torch.equal(positive, won.expand(B, N))
    else:
        assert torch.equal(positive.sum(1), torch.ones(B, dtype=torch.long))
        assert torch.equal(positive.float().argmax(1), winners)
    if lateral is not None:
        y = post_synaptic(u, t_invert, lateral, legacy_batch_winner=legacy)
        index, valid = lateral.neighbours(winners)
        w = soft.gather(1, winners[:, None])[:, 0]
        # the support adds gain * w once per neighbour inside the grid, and nothing elsewhere
        torch.testing.assert_close(y.sum(1) - plain.sum(1), lateral.gain * w * valid.sum(1), rtol=1e-4, atol=1e-5)
        hits = torch.zeros(B, N, dtype=torch.long).scatter_add_(1, index, valid.long())
        assert hits.max() <= 1  # each neighbour once
        untouched = hits == 0
        assert torch.equal(y[untouched], plain[untouched])


# -----------------------------------------------------------------------------
# the layer


def test_layer_initialisation():
    layer = SoftHebbLinear(400, 300, t_invert=10.0, seed=3)
    W = layer.weight
    assert W.shape == (300, 400) and W.dtype == torch.float32 and not W.requires_grad
    assert "weight" in layer.state_dict() and len(list(layer.parameters())) == 0
    assert W.mean().abs().item() < 0.01 * 14 / 20
    assert W.std().item() == pytest.approx(14 / math.sqrt(400), rel=0.02)
    assert torch.equal(W, SoftHebbLinear(400, 300, 10.0, seed=3).weight)
    assert not torch.equal(W, SoftHebbLinear(400, 300, 10.0, seed=4).weight)
    same64 = SoftHebbLinear(400, 300, 10.0, seed=3, dtype=torch.float64).weight
    assert same64.dtype == torch.float64 and torch.allclose(same64.float(), W)
    assert not layer.bn.affine


def test_hebbian_step_uses_batch_statistics_and_forward_the_running_ones():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(16, 6, generator=g) * 3 + 2
    lateral = Lateral((2, 4), radius=1.0)
    layer = SoftHebbLinear(6, 8, t_invert=4.0, lateral=lateral, seed=0).eval()
    W0 = layer.weight.clone()
    u = layer.hebbian_step(x, lr=0.1, backend="torch")
    assert not layer.training  # the mode is left as it was
    mean, var = x.mean(0), x.var(0, unbiased=False)
    x_norm = (x - mean) / torch.sqrt(var + 1e-5)
    u_ref = x_norm @ W0.T
    torch.testing.assert_close(u, u_ref, rtol=1e-5, atol=1e-5)
    y = post_synaptic(u_ref, 4.0, lateral)
    torch.testing.assert_close(layer.weight, W0 + 0.1 * plastic_update(x_norm, W0, u_ref, y), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(layer.bn.running_mean, 0.1 * mean)
    torch.testing.assert_close(layer.bn.running_var, 0.9 + 0.1 * x.var(0, unbiased=True))
    # eval: the running statistics, in forward and in the batched responses
    x_eval = (x - layer.bn.running_mean) / torch.sqrt(layer.bn.running_var + 1e-5)
    torch.testing.assert_close(layer(x), x_eval @ layer.weight.T, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer.responses(x.numpy(), batch_size=5), layer(x))


# -----------------------------------------------------------------------------
# training


def test_train_softhebb_batches_snapshots_and_shuffle():
    g = torch.Generator().manual_seed(6)
    data = torch.randn(17, 5, generator=g)  # two batches of 8 and a last one of 1, which is skipped
    layer = SoftHebbLinear(5, 4, 2.0, lateral=Lateral((2, 2)), seed=1)
    W_init = layer.weight.clone()
    layer, snaps = train_softhebb(layer, data, epochs=2, batch_size=8, lr=0.1, seed=9, snapshot_every=1, progress=False)
    assert not layer.training
    assert layer.bn.num_batches_tracked.item() == 4
    assert snaps.shape == (5, 4, 5) and snaps.device.type == "cpu"
    assert torch.equal(snaps[0], W_init) and torch.equal(snaps[-1], layer.weight)
    assert all(not torch.equal(a, b) for a, b in zip(snaps[:-1], snaps[1:]))
    # the same run by hand: one generator, one permutation per epoch, hebbian_step per batch
    manual = SoftHebbLinear(5, 4, 2.0, lateral=Lateral((2, 2)), seed=1)
    shuffler = torch.Generator().manual_seed(9)
    for _ in range(2):
        order = torch.randperm(17, generator=shuffler)
        for start in (0, 8):
            manual.hebbian_step(data[order[start : start + 8]], lr=0.1, backend="torch")
    assert torch.equal(manual.weight, layer.weight)
    # a last batch of two is kept; snapshots every 3 steps, plus the initial and the final weights
    layer = SoftHebbLinear(5, 4, 2.0, seed=1)
    data = torch.randn(18, 5, generator=g)
    _, snaps = train_softhebb(layer, data, epochs=2, batch_size=8, snapshot_every=3, progress=False)
    assert layer.bn.num_batches_tracked.item() == 6 and snaps.shape[0] == 3  # steps 0, 3, 6
    _, snaps = train_softhebb(layer, data, epochs=2, batch_size=8, snapshot_every=4, progress=False)
    assert snaps.shape[0] == 3  # steps 0, 4, 6
    _, snaps = train_softhebb(layer, torch.randn(18, 5, generator=g), batch_size=8, progress=False)
    assert snaps.shape[0] == 2 and torch.equal(snaps[-1], layer.weight)


def test_snapshot_steps_label_every_snapshot():
    from hebb_utils import snapshot_steps, training_steps

    assert training_steps(50000, 64) == 782  # the last batch of 16 is a step: the GIF ends at step 782
    assert training_steps(17, 8) == 2 and training_steps(18, 8, epochs=2) == 6
    assert snapshot_steps(782, 50)[:2] == [0, 50] and snapshot_steps(782, 50)[-2:] == [750, 782]
    assert snapshot_steps(6, 3) == [0, 3, 6] and snapshot_steps(6, 4) == [0, 4, 6] and snapshot_steps(6, None) == [0, 6]
    g = torch.Generator().manual_seed(1)
    data = torch.randn(37, 5, generator=g)
    for every in (1, 2, 5, None):
        layer = SoftHebbLinear(5, 4, 2.0, seed=1)
        _, snaps = train_softhebb(layer, data, epochs=2, batch_size=8, snapshot_every=every, progress=False)
        steps = snapshot_steps(training_steps(37, 8, 2), every)
        assert snaps.shape[0] == len(steps) and steps[-1] == layer.bn.num_batches_tracked.item()


def test_training_is_deterministic():
    data = np.random.default_rng(0).normal(size=(300, 12)).astype(np.float32)

    def train(init_seed, seed):
        layer = SoftHebbLinear(12, 20, 5.0, lateral=Lateral((4, 5)), seed=init_seed)
        return train_softhebb(layer, data, epochs=2, batch_size=32, lr=0.1, seed=seed, progress=False)[0].weight

    first = train(0, 42)
    assert torch.equal(first, train(0, 42))
    assert not torch.allclose(first, train(0, 43))  # another batch order
    assert not torch.allclose(first, train(1, 42))  # another initialisation
    unshuffled = SoftHebbLinear(12, 20, 5.0, seed=0)
    train_softhebb(unshuffled, data, batch_size=32, lr=0.1, shuffle=False, progress=False)
    manual = SoftHebbLinear(12, 20, 5.0, seed=0)
    for start in range(0, 300, 32):
        manual.hebbian_step(torch.from_numpy(data[start : start + 32]), lr=0.1)
    assert torch.equal(unshuffled.weight, manual.weight)


def ring_of_clusters(seed, n_clusters=16, per_cluster=100, dim=16, harmonics=5, noise=0.1):
    """Clusters on a closed curve: centre i = (cos k*theta_i, sin k*theta_i)_{k<=harmonics}, rotated into
    `dim` dimensions. Neighbours on the ring are the most similar clusters (cos 0.33), the others less so."""
    g = torch.Generator().manual_seed(seed)
    theta = torch.arange(n_clusters) * 2 * math.pi / n_clusters
    k = torch.arange(1, harmonics + 1)
    centres = torch.cat([torch.cos(theta[:, None] * k), torch.sin(theta[:, None] * k)], dim=1)
    rotation, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g))
    labels = torch.arange(n_clusters).repeat_interleave(per_cluster)
    X = (centres @ rotation[: 2 * harmonics])[labels] + noise * torch.randn(len(labels), dim, generator=g)
    return X, labels


def test_clusters_get_their_own_winners_and_support_makes_the_map_topographic():
    errors = {True: [], False: []}
    for seed in range(3):
        X, labels = ring_of_clusters(seed)
        for support in (True, False):
            lateral = Lateral((4, 5), radius=1.0, gain=0.3) if support else None
            layer = SoftHebbLinear(16, 20, t_invert=10.0, lateral=lateral, seed=seed)
            train_softhebb(layer, X, epochs=10, batch_size=64, lr=0.1, seed=seed, progress=False)
            u = layer.responses(X)
            winners = u.argmax(1)
            majority = torch.stack([winners[labels == c].mode().values for c in range(16)])
            purity = torch.stack([(winners[labels == c] == majority[c]).float().mean() for c in range(16)])
            assert purity.min() >= 0.9, (seed, support, purity)  # each cluster has one dominant winner
            if support:
                assert len(set(majority.tolist())) == 16, (seed, majority)  # ... of its own
            errors[support].append(topographic_error(u, (4, 5)))
    with_support, without = np.mean(errors[True]), np.mean(errors[False])
    assert without > 0.5, errors  # no support: best and second-best neurons scattered on the grid
    assert with_support < 0.5 * without, errors


def test_support_orders_the_map_on_a_continuous_sheet():
    """Inputs from a 2D sheet of positions (a, b): with support, neurons near on the grid prefer near positions."""

    def grid_position_correlation(support, seed):
        g = torch.Generator().manual_seed(seed)
        ab = torch.rand(4000, 2, generator=g) * math.pi
        k = torch.arange(1, 3)
        a, b = ab[:, :1] * k, ab[:, 1:] * k
        features = torch.cat([torch.cos(a), torch.sin(a), torch.cos(b), torch.sin(b)], 1)  # (4000, 8)
        rotation, _ = torch.linalg.qr(torch.randn(16, 16, generator=g))
        X = features @ rotation[:8] + 0.05 * torch.randn(4000, 16, generator=g)
        layer = SoftHebbLinear(16, 36, 10.0, lateral=Lateral((6, 6)) if support else None, seed=seed)
        train_softhebb(layer, X, epochs=10, lr=0.1, seed=seed, progress=False)
        winners = layer.responses(X).argmax(1)
        used = [j for j in range(36) if (winners == j).sum() > 5]
        preferred = torch.stack([ab[winners == j].mean(0) for j in used])  # (M, 2) mean position won
        cell = torch.tensor([[j // 6, j % 6] for j in used], dtype=torch.float32)
        i, j = torch.triu_indices(len(used), len(used), 1)
        distances = ((cell[i] - cell[j]).norm(dim=1), (preferred[i] - preferred[j]).norm(dim=1))
        ranks = [d.argsort().argsort().float() for d in distances]
        return torch.corrcoef(torch.stack(ranks))[0, 1].item()  # Spearman (distances have few ties)

    with_support = [grid_position_correlation(True, s) for s in range(2)]
    without = [grid_position_correlation(False, s) for s in range(2)]
    assert min(with_support) > 0.3 and max(without) < 0.2, (with_support, without)


# -----------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(grid=(4, 5), radius=-1.0), "radius"),
        (dict(grid=(4, 5), radius=float("nan")), "radius"),
        (dict(grid=(4, 5), gain=float("inf")), "gain"),
        (dict(grid=(0, 5)), "grid"),
        (dict(grid=(2, 3, 4)), "grid"),
        (dict(grid=20), "grid"),
        (dict(grid=(4.0, 5)), "grid"),
    ],
)
def test_bad_lateral(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Lateral(**kwargs)


def test_bad_inputs():
    layer = SoftHebbLinear(10, 6, 5.0, lateral=Lateral((2, 3)))
    x = torch.randn(8, 10)
    cases = [
        (
            lambda: SoftHebbLinear(10, 450, 300.0, lateral=Lateral((15, 31))),
            r"lateral grid \(15, 31\) has 465 neurons but out_features=450",
        ),
        (lambda: SoftHebbLinear(10, 6, 0.0), "t_invert"),
        (lambda: SoftHebbLinear(10, 6, -1.0), "t_invert"),
        (lambda: post_synaptic(torch.randn(3, 6), float("nan")), "t_invert"),
        (lambda: post_synaptic(torch.randn(3, 6), 1.0, Lateral((2, 2))), "4 neurons"),
        (lambda: post_synaptic(torch.randn(6), 1.0), "u"),
        (lambda: post_synaptic(torch.randn(0, 6), 1.0), "0 row"),
        (lambda: post_synaptic(torch.tensor([[0.0, float("nan")]]), 1.0), "NaN"),
        (lambda: plastic_update(x, torch.randn(6, 9), torch.randn(8, 6), torch.randn(8, 6)), "x has shape"),
        (lambda: plastic_update(x, torch.randn(6, 10), torch.randn(8, 6), torch.randn(8, 5)), "y has shape"),
        (lambda: softhebb_step(torch.randn(6, 10), torch.randn(8, 9), 1.0, 0.1), "x has shape"),
        (lambda: layer(torch.randn(8, 9)), "x has shape"),
        (lambda: layer(torch.randn(10)), "x has shape"),
        (lambda: layer.hebbian_step(torch.randn(1, 10), 0.1), "BatchNorm"),
        (lambda: layer.hebbian_step(torch.full((4, 10), float("inf")), 0.1), "NaN or inf"),
        (lambda: layer.hebbian_step(torch.ones(4, 10, dtype=torch.uint8), 0.1), "float"),
        (lambda: layer.hebbian_step(x, -0.1), "lr"),
        (lambda: train_softhebb(layer, torch.randn(20, 9), progress=False), "data has shape"),
        (lambda: train_softhebb(layer, np.full((20, 10), np.nan, dtype=np.float32), progress=False), "NaN"),
        (lambda: train_softhebb(layer, torch.zeros(20, 10, dtype=torch.uint8), progress=False), "float"),
        (lambda: train_softhebb(layer, x, batch_size=1, progress=False), "batch_size"),
        (lambda: train_softhebb(layer, x, snapshot_every=0, progress=False), "snapshot_every"),
        (lambda: train_softhebb(layer, x, backend="cuda", progress=False), "backend"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()


# -----------------------------------------------------------------------------
# issue 9: audited defects, one regression test each


def test_nan_batch_in_train_mode_is_refused_before_batchnorm():
    layer = SoftHebbLinear(8, 12, 10.0, seed=0)
    mean, var = layer.bn.running_mean.clone(), layer.bn.running_var.clone()
    for call in (lambda: layer(torch.full((4, 8), float("nan"))),
                 lambda: layer.hebbian_step(torch.full((4, 8), float("nan")), 0.1),
                 lambda: train_softhebb(layer, torch.full((20, 8), float("nan")), progress=False)):
        with pytest.raises(ValueError, match="NaN"):
            call()
    assert torch.equal(layer.bn.running_mean, mean) and torch.equal(layer.bn.running_var, var)
    assert torch.isfinite(layer.responses(torch.randn(16, 8))).all()


def test_data_whose_batch_variance_overflows_is_refused():
    layer = SoftHebbLinear(8, 12, 10.0, seed=0)
    big = torch.randn(64, 8) * 1e19
    for call in (lambda: layer.hebbian_step(big, 0.1), lambda: layer.train()(big),
                 lambda: train_softhebb(layer, big, progress=False)):
        with pytest.raises(ValueError, match="overflow"):
            call()
    assert torch.isfinite(layer.bn.running_var).all()


def test_a_constant_batch_does_not_move_the_weights():
    # BatchNorm's float mean of a constant feature leaves ~1e-5 noise; max-normalising it made a full lr step
    layer = SoftHebbLinear(8, 12, 1000.0, seed=0)
    W0 = layer.weight.clone()
    for _ in range(120):
        layer.hebbian_step(torch.full((16, 8), 7.0), 0.08, backend="torch")
    assert torch.equal(layer.weight, W0)
    # a constant feature beside varying ones: the varying ones still train
    x = torch.randn(16, 8)
    x[:, 3] = 7.0
    layer.hebbian_step(x, 0.08, backend="torch")
    assert not torch.equal(layer.weight, W0)


def test_t_invert_and_lr_beyond_float32_are_refused():
    u = torch.randn(4, 6)
    with pytest.raises(ValueError, match="t_invert"):
        post_synaptic(u, 1e39)
    assert torch.isfinite(post_synaptic(u, 1e38)).all()
    layer = SoftHebbLinear(8, 6, 10.0, seed=0)
    for lr in (1e38, 1e39, np.float64(1e5)):
        with pytest.raises(ValueError, match="lr"):
            layer.hebbian_step(torch.randn(8, 8), lr)
    with pytest.raises(ValueError, match="lr"):
        softhebb_step(torch.randn(6, 8), torch.randn(4, 8), 1.0, 1e38)


def test_huge_radius_selects_the_whole_grid():
    lateral = Lateral((3, 4), radius=1e300)
    index, valid = lateral.neighbours(torch.tensor([5]))
    assert sorted(index[valid].tolist()) == list(range(12))
    assert Lateral((5,), radius=1e300).neighbours(torch.tensor([0]))[1].sum() == 4


def test_lateral_grid_is_the_shared_grid():
    from hebb_utils.checks import Grid

    assert Lateral((2, 3)).grid == Grid(2, 3) and Lateral(Grid(2, 3)) == Lateral((2, 3))
    assert Lateral((np.int64(5),)).is_1d and Lateral((np.int64(5),)).n_neurons == 5


def test_responses_batch_size_is_checked():
    layer = SoftHebbLinear(8, 6, 10.0, seed=0).eval()
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="batch_size"):
            layer.responses(torch.randn(5, 8), batch_size=bad)
    assert layer.responses(torch.randn(5, 8), batch_size=np.int64(2)).shape == (5, 6)


def test_train_softhebb_seed_none_and_numpy_sizes():
    data = torch.randn(40, 6)
    runs = [train_softhebb(SoftHebbLinear(6, 4, 5.0, seed=0), data, batch_size=8, seed=None, progress=False)[0].weight
            for _ in range(2)]
    assert torch.isfinite(runs[0]).all() and not torch.equal(runs[0], runs[1])  # fresh seeds: other orders
    layer = SoftHebbLinear(np.int64(6), np.int64(4), np.float32(5.0), seed=np.int64(0))
    _, snaps = train_softhebb(layer, data, epochs=np.int64(2), batch_size=np.int64(8), snapshot_every=np.int64(5),
                              seed=np.int64(1), lr=np.float32(0.1), progress=False)
    assert snaps.shape == (3, 4, 6)


def test_cuda_without_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA GPU"):
        train_softhebb(SoftHebbLinear(6, 4, 5.0, seed=0), torch.randn(20, 6), device="cuda", progress=False)
    with pytest.raises(ValueError, match="no CUDA GPU"):
        SoftHebbLinear(6, 4, 5.0, device="cuda")


def test_float64_input_is_converted_to_the_layer_dtype():
    layer = SoftHebbLinear(6, 4, 5.0, seed=0)
    x = np.random.default_rng(0).normal(size=(16, 6))  # numpy's float64
    u = layer.hebbian_step(x, 0.1, backend="torch")
    assert u.dtype == torch.float32
    assert layer.eval()(torch.from_numpy(x)).dtype == torch.float32
    assert layer.responses(x).dtype == torch.float32
    train_softhebb(layer, x, batch_size=8, progress=False)
    W = torch.randn(4, 6)
    softhebb_step(W, torch.from_numpy(x), 5.0, 0.1)
    assert plastic_update(torch.from_numpy(x), W, torch.randn(16, 4), torch.randn(16, 4)).dtype == torch.float32


def test_state_dict_of_another_t_invert_or_grid_is_refused():
    trained = SoftHebbLinear(6, 4, 5.0, lateral=Lateral((2, 2)), seed=0)
    state = trained.state_dict()
    same = SoftHebbLinear(6, 4, 5.0, lateral=Lateral((2, 2)), seed=1)
    same.load_state_dict(state)
    assert torch.equal(same.weight, trained.weight)
    for other in (SoftHebbLinear(6, 4, 7.0, lateral=Lateral((2, 2))), SoftHebbLinear(6, 4, 5.0, lateral=Lateral((4,))),
                  SoftHebbLinear(6, 4, 5.0)):
        with pytest.raises(ValueError, match="t_invert and lateral grid"):
            other.load_state_dict(state)
    legacy = {k: v for k, v in state.items() if k != "_extra_state"}  # saved before the check
    same.load_state_dict(legacy)


def test_progress_bar_is_tqdm(monkeypatch):
    import hebb_utils.rules.training as sh

    seen = []
    real = sh.tqdm

    def recording(**kw):
        seen.append(kw)
        return real(**kw, file=io.StringIO())

    monkeypatch.setattr(sh, "tqdm", recording)
    data = torch.randn(20, 6)
    for progress in (False, True):
        train_softhebb(SoftHebbLinear(6, 4, 5.0, seed=0), data, batch_size=8, progress=progress)
    # progress=True passes no `disable`, so tqdm's TQDM_DISABLE environment variable still applies
    assert [kw.get("disable", "unset") for kw in seen] == [True, "unset"]


def test_public_functions_are_what_training_runs(monkeypatch):
    import hebb_utils.rules.softhebb as sh

    calls = []
    real = sh.post_synaptic_sums
    monkeypatch.setattr(sh, "post_synaptic_sums", lambda *a: calls.append("post") or real(*a))
    layer = SoftHebbLinear(6, 4, 5.0, seed=0)
    layer.hebbian_step(torch.randn(8, 6), 0.1, backend="torch")
    post_synaptic(torch.randn(3, 4), 2.0)
    assert calls == ["post", "post"]
    # training's torch step runs the very core the public post_synaptic wraps (no second copy)
    from hebb_utils.backend import step_functions

    assert step_functions("torch") == (sh.post_synaptic_sums, sh.apply_update)


def test_softmax_has_no_denormals_by_construction():
    """Probabilities below float32's normal range are exactly 0 (no slow denormal arithmetic, the CPU
    agrees with GPUs, which flush them); every other value is torch.softmax's, bit for bit."""
    from hebb_utils.rules.softhebb import TINY

    u = torch.linspace(0.0, 1.0, 200).repeat(3, 1)  # (3, 200)
    u[1] *= 0.5
    t_invert = 100.0  # exponents from 0 down to -100: exp underflows into the denormals below -87.3
    naive = torch.softmax(t_invert * (u - u.amax(dim=1, keepdim=True)), dim=1)
    assert ((naive > 0) & (naive < TINY)).any()  # the case this is about
    y = post_synaptic(u, t_invert)  # (B, N): -softmax except the winner
    soft = y.abs()
    assert not ((soft > 0) & (soft < TINY)).any()
    normal = naive >= TINY
    assert torch.equal(soft[normal], naive[normal]) and (soft[~normal] == 0).all()
