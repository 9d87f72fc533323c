"""Hebbian matching pursuit (rules/pursuit.py) against mathematics: a float64 per-sample reference,
the exact code on orthogonal features, the true dictionary as a fixed point, k = 1 as a plain
winner-take-all Hebbian (Oja) step, and SAELens' own matching-pursuit encoder."""
import pytest
import torch

from hebb_utils.rules.pursuit import PursuitLinear, pursuit_encode, pursuit_update


def _units(n, d, seed=0, dtype=torch.float64):
    W = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return W / W.norm(dim=1, keepdim=True)


def _reference_encode(x, W, k, threshold=0.0):
    """Matching pursuit one sample at a time, with the residual itself (no Gram matrix)."""
    codes = torch.zeros(x.shape[0], W.shape[0], dtype=x.dtype)
    for b in range(x.shape[0]):
        r = x[b].clone()
        for _ in range(k):
            if threshold > 0 and float(r.norm()) < threshold:
                break
            drive = (W @ r).clamp_min(0)
            j = int(drive.argmax())
            codes[b, j] += drive[j]
            r -= drive[j] * W[j]
    return codes


@pytest.mark.parametrize("k", [1, 2, 5])
@pytest.mark.parametrize("threshold", [0.0, 1.5])
def test_the_code_is_matching_pursuit_sample_by_sample(k, threshold):
    W = _units(12, 6)
    x = torch.randn(9, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2
    torch.testing.assert_close(pursuit_encode(x, W, k, threshold), _reference_encode(x, W, k, threshold),
                               rtol=0, atol=1e-12)


def test_on_orthogonal_features_the_code_is_the_coefficients_and_the_dictionary_does_not_move():
    W = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64))[0][:5]
    coefficients = torch.tensor([[3.0, 0, 1.0, 0, 0], [0, 2.0, 0, 0.5, 0], [0, 0, 0, 0, 4.0]], dtype=torch.float64)
    x = coefficients @ W
    for k in (2, 3, 5):  # at least the largest support; more iterations add zeros (no drive is left)
        torch.testing.assert_close(pursuit_encode(x, W, k), coefficients, rtol=0, atol=1e-12)
    W_after, usage = W.clone(), torch.ones(5, dtype=torch.float64)
    pursuit_update(W_after, usage, x, pursuit_encode(x, W, 3), lr=0.5)
    torch.testing.assert_close(W_after, W, rtol=0, atol=1e-14)  # zero residual: a fixed point
    torch.testing.assert_close(usage, 1 + (coefficients ** 2).sum(0))


def test_an_overcomplete_dictionary_is_a_fixed_point_for_one_feature_per_input():
    W = _units(10, 4)  # 10 directions in 4 dimensions: far from orthogonal
    x = torch.tensor([2.0, 0.5, 1.0])[:, None] * W[[3, 7, 0]]  # each input one feature, positive
    a = pursuit_encode(x, W, k=3)
    expected = torch.zeros(3, 10, dtype=torch.float64)
    expected[0, 3], expected[1, 7], expected[2, 0] = 2.0, 0.5, 1.0
    # found alone: the first winner explains the input away (what is left is rounding, ~1e-16)
    torch.testing.assert_close(a, expected, rtol=0, atol=1e-12)
    W_after = W.clone()
    pursuit_update(W_after, torch.ones(10, dtype=torch.float64), x, a, lr=1.0)
    torch.testing.assert_close(W_after, W, rtol=0, atol=1e-14)


def test_k_1_is_a_winner_take_all_oja_step_with_a_per_unit_step():
    W = _units(6, 5)
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    u = x @ W.T
    winner = u.argmax(1)
    a_win = u.gather(1, winner[:, None]).clamp_min(0)[:, 0]  # relu(w_j . x) on the best-matching unit
    expected, usage = W.clone(), torch.full((6,), 0.5, dtype=torch.float64)
    for j in range(6):  # by hand: h_j += sum a^2, then w_j += lr sum_b a_b (x_b - a_b w_j) / h_j, normalised
        mine = winner == j
        h = 0.5 + float((a_win[mine] ** 2).sum())
        step = (a_win[mine, None] * (x[mine] - a_win[mine, None] * W[j])).sum(0) / h
        w = W[j] + 0.3 * step
        expected[j] = w / w.norm()
    W_after = W.clone()
    pursuit_update(W_after, usage, x, pursuit_encode(x, W, 1), lr=0.3)
    torch.testing.assert_close(W_after, expected, rtol=0, atol=1e-12)


def test_it_learns_a_sparse_dictionary_with_several_features_per_input():
    """3 of 16 random unit features per input (d 32): the learned rows find them (MMCS > 0.95),
    where a one-winner code cannot."""
    from hebb_utils.measure.recovery import mmcs

    g = torch.Generator().manual_seed(0)
    true = torch.randn(16, 32, generator=g)
    true /= true.norm(dim=1, keepdim=True)
    support = torch.rand(6000, 16, generator=g).argsort(1)[:, :3]
    coefficients = torch.zeros(6000, 16).scatter_(1, support, 0.5 + torch.rand(6000, 3, generator=g))
    X = coefficients @ true
    layer = PursuitLinear(32, 16, k=3, seed=0)
    for epoch in range(3):
        for i in range(0, len(X), 100):
            layer.train_step(X[i: i + 100], lr=1.0)
    assert mmcs(layer.weight, true) > 0.95
    one_winner = PursuitLinear(32, 16, k=1, seed=0)
    for epoch in range(3):
        for i in range(0, len(X), 100):
            one_winner.train_step(X[i: i + 100], lr=1.0)
    assert mmcs(one_winner.weight, true) < mmcs(layer.weight, true) - 0.1


def test_the_layer_checks_its_settings_and_inputs():
    with pytest.raises(ValueError, match="k=9: expected at most out_features=8"):
        PursuitLinear(4, 8, k=9)
    with pytest.raises(ValueError, match="k"):
        PursuitLinear(4, 8, k=0)
    with pytest.raises(ValueError, match="residual_threshold"):
        PursuitLinear(4, 8, residual_threshold=-1)
    with pytest.raises(ValueError, match="out_features"):
        PursuitLinear(4, 8, grid=(3, 3))
    layer = PursuitLinear(4, 8, k=2, seed=0)
    with pytest.raises(ValueError, match="x"):
        layer(torch.full((2, 4), float("nan")))
    with pytest.raises(ValueError, match="in_features"):
        layer(torch.zeros(2, 5))
    assert torch.allclose(layer.weight.norm(dim=1), torch.ones(8))
    assert torch.equal(PursuitLinear(4, 8, k=2, seed=0).weight, layer.weight)  # same seed, same start


def test_the_offset_is_an_always_on_unit_the_running_mean_of_the_residual():
    """offset=True: the code is pursuit on x - b, the decode a W + b, and the step b += lr * sum of the
    residuals / rows seen from the first batch's mean, by hand on two batches; the true (b, W) is a
    fixed point."""
    W = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64))[0][:4]
    b = torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0, 1.0], dtype=torch.float64)
    coefficients = torch.tensor([[2.0, 0, 1.0, 0], [0, 0.5, 0, 0], [0, 0, 0, 3.0]], dtype=torch.float64)
    layer = PursuitLinear(6, 4, k=2, offset=True, dtype=torch.float64)
    layer.weight.copy_(W)
    layer.bias.copy_(b)
    layer.bias_seen.fill_(10)  # as if trained: b is not re-started at the batch's mean
    x = coefficients @ W + b
    torch.testing.assert_close(layer(x), coefficients, rtol=0, atol=1e-12)
    torch.testing.assert_close(layer.decode(layer(x)), x, rtol=0, atol=1e-12)
    layer.train_step(x, lr=1.0)  # zero residual: neither the units nor the offset move
    torch.testing.assert_close(layer.weight, W, rtol=0, atol=1e-14)
    torch.testing.assert_close(layer.bias, b, rtol=0, atol=1e-14)
    assert float(layer.bias_seen) == 13

    fresh = PursuitLinear(5, 3, k=1, offset=True, seed=0, dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    batches = [torch.randn(4, 5, generator=g, dtype=torch.float64) + 1.0 for _ in range(2)]
    expected_bias, seen = batches[0].mean(0), 0  # b starts at the first batch's mean
    for x in batches:  # by hand: the residual after the units' code, its sum over the rows seen
        a = pursuit_encode(x - expected_bias, fresh.weight, 1)
        residual = (x - expected_bias) - a @ fresh.weight
        seen += len(x)
        expected_bias = expected_bias + 0.7 * residual.sum(0) / seen
        fresh.train_step(x, lr=0.7)
        torch.testing.assert_close(fresh.bias, expected_bias, rtol=0, atol=1e-12)
    without = PursuitLinear(5, 3, k=1, seed=0, dtype=torch.float64)
    without.train_step(batches[0], lr=0.7)
    assert torch.equal(without.bias, torch.zeros(5, dtype=torch.float64))  # no offset: b stays 0
    with pytest.raises(ValueError, match="offset"):
        PursuitLinear(5, 3, offset="yes")


def test_with_an_offset_it_learns_a_dictionary_on_data_with_a_constant_part():
    """Sparse features plus a constant vector of norm 3 (as SAELens' synthetic model adds a bias): the
    offset takes most of the constant (it starts at the data's mean, which holds the mean code too) and
    the rows find the features; without it the rows do worse."""
    from hebb_utils.measure.recovery import mmcs

    g = torch.Generator().manual_seed(0)
    true = torch.randn(16, 32, generator=g)
    true /= true.norm(dim=1, keepdim=True)
    constant = torch.randn(32, generator=g)
    constant *= 3 / constant.norm()
    support = torch.rand(6000, 16, generator=g).argsort(1)[:, :3]
    X = torch.zeros(6000, 16).scatter_(1, support, 0.5 + torch.rand(6000, 3, generator=g)) @ true + constant
    scores = {}
    for offset in (True, False):
        layer = PursuitLinear(32, 16, k=3, offset=offset, seed=0)
        for epoch in range(3):
            for i in range(0, len(X), 100):
                layer.train_step(X[i: i + 100], lr=1.0)
        scores[offset] = mmcs(layer.weight, true)
        if offset:
            assert float((layer.bias - constant).norm()) < 3 / 3
    assert scores[True] > 0.93 and scores[False] < scores[True] - 0.1
