"""Metrics on hand-computed small cases and against scipy / scikit-learn."""
import math

import numpy as np
import pytest
import torch

from hebb_utils import (
    amari_distance,
    component_cosines,
    dead_fraction,
    distance_correlation,
    grid_coordinates,
    label_selectivity,
    linear_probe,
    subspace_error,
    token_purity,
    topographic_error,
    winner_counts,
)


def responses(n_neurons, pairs):
    """u (B, N) in which sample b's best neuron is pairs[b][0] and its second-best pairs[b][1]."""
    u = torch.zeros(len(pairs), n_neurons)
    for b, (best, second) in enumerate(pairs):
        u[b, best], u[b, second] = 2.0, 1.0
    return u


def test_grid_coordinates():
    assert grid_coordinates((2, 3)).tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]
    assert grid_coordinates((3,)).tolist() == [[0, 0], [0, 1], [0, 2]]
    with pytest.raises(ValueError, match="grid"):
        grid_coordinates((0, 3))


def test_topographic_error_hand_cases():
    # 3 x 3 grid:  0 1 2 / 3 4 5 / 6 7 8
    u = responses(9, [(0, 1), (0, 4), (2, 0), (7, 4), (3, 5), (2, 3)])
    # (0,1) side, (0,4) diagonal, (2,0) two apart, (7,4) side, (3,5) two apart, (2,3) next index but
    # a different row (no wrap-around)
    assert topographic_error(u, (3, 3)) == pytest.approx(3 / 6)
    assert topographic_error(u, (3, 3), neighbourhood=4) == pytest.approx(4 / 6)
    # one row of 5
    u1 = responses(5, [(1, 2), (0, 4)])
    assert topographic_error(u1, (5,)) == 0.5 == topographic_error(u1, (5,), neighbourhood=4)


def test_topographic_error_bad_input():
    u = torch.randn(4, 6)
    with pytest.raises(ValueError, match=r"grid=\(3, 3\) has 9 neurons but there are 6 columns of u"):
        topographic_error(u, (3, 3))
    with pytest.raises(ValueError, match="neighbourhood"):
        topographic_error(u, (2, 3), neighbourhood=6)
    with pytest.raises(ValueError, match="NaN"):
        topographic_error(torch.full((2, 6), float("nan")), (2, 3))


def null_from_scipy(W, grid, n_shuffles, seed, max_pairs=None):
    """rho and the shuffled-grid null recomputed pair by pair with scipy (same permutations)."""
    from scipy.stats import spearmanr

    n = W.shape[0]
    coords = grid_coordinates(grid).double()
    gd, wd = torch.cdist(coords, coords), torch.cdist(W.double(), W.double())
    i, j = torch.triu_indices(n, n, 1)
    gen = torch.Generator().manual_seed(seed)
    if max_pairs is not None:
        pick = torch.randperm(i.numel(), generator=gen)[:max_pairs]
        i, j = i[pick], j[pick]
    rho = spearmanr(gd[i, j], wd[i, j])[0]
    null = []
    for _ in range(n_shuffles):
        p = torch.randperm(n, generator=gen)
        if max_pairs is None:  # all pairs: the weight side is permuted (the same null distribution)
            null.append(spearmanr(gd[i, j], wd[p[i], p[j]])[0])
        else:
            null.append(spearmanr(gd[p[i], p[j]], wd[i, j])[0])
    return rho, np.array(null)


@pytest.mark.parametrize("max_pairs", [None, 100])
def test_distance_correlation_matches_scipy(max_pairs):
    g = torch.Generator().manual_seed(0)
    grid = (4, 5)
    W = grid_coordinates(grid) + torch.randn(20, 2, generator=g)  # noisy smooth map
    res = distance_correlation(W, grid, n_shuffles=30, seed=2, max_pairs=max_pairs)
    rho, null = null_from_scipy(W, grid, 30, 2, max_pairs)
    assert res["n_pairs"] == (190 if max_pairs is None else 100)
    assert res["rho"] == pytest.approx(rho, abs=1e-9)
    assert res["null_mean"] == pytest.approx(null.mean(), abs=1e-5)
    assert res["null_std"] == pytest.approx(null.std(ddof=1), abs=1e-5)
    assert res["p_value"] == pytest.approx((1 + (null >= rho - 1e-9).sum()) / 31)


def test_distance_correlation_smooth_map_and_random_weights():
    grid = (6, 8)
    smooth = distance_correlation(grid_coordinates(grid), grid, n_shuffles=50)
    assert smooth["rho"] == pytest.approx(1.0, abs=1e-12)  # weight distance = grid distance
    assert smooth["p_value"] == pytest.approx(1 / 51)  # no shuffle reaches it
    assert abs(smooth["null_mean"]) < 0.05
    random = distance_correlation(torch.randn(48, 10, generator=torch.Generator().manual_seed(1)), grid, n_shuffles=50)
    assert random["p_value"] > 0.05 and abs(random["rho"]) < 0.1
    assert distance_correlation(grid_coordinates(grid), grid, n_shuffles=5, max_pairs=10**6) == distance_correlation(
        grid_coordinates(grid), grid, n_shuffles=5
    )


def test_distance_correlation_bad_input():
    with pytest.raises(ValueError, match="grid"):
        distance_correlation(torch.randn(10, 3), (3, 3))
    with pytest.raises(ValueError, match="W"):
        distance_correlation(torch.ones(6, 3), (2, 3))  # every weight distance equal
    with pytest.raises(ValueError, match="W"):
        distance_correlation(torch.randn(6), (2, 3))


def test_winner_counts_and_dead_fraction():
    u = responses(3, [(0, 1), (2, 1), (2, 0), (0, 2), (2, 1)])
    counts = winner_counts(u)
    assert counts.dtype == torch.int64 and counts.tolist() == [2, 0, 3]
    assert dead_fraction(u) == pytest.approx(1 / 3) == dead_fraction(counts)
    with pytest.raises(ValueError, match="u_or_counts"):
        dead_fraction(torch.tensor([1.5, 0.0]))


def test_subspace_error_and_component_cosines():
    theta = 0.3
    assert subspace_error(torch.tensor([[1.0, 0.0]]), torch.tensor([[math.cos(theta), math.sin(theta)]])) == (
        pytest.approx(math.sin(theta) ** 2)
    )
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(3, 7, generator=g)
    mixed = torch.randn(3, 3, generator=g) @ ref  # same row space, other basis
    assert subspace_error(mixed, ref) == pytest.approx(0.0, abs=1e-12)
    assert subspace_error(torch.eye(4)[:2], torch.eye(4)[2:]) == pytest.approx(1.0)
    assert subspace_error(torch.eye(3)[:2], torch.eye(3)[:1]) == pytest.approx(1 / 3)  # (2 + 1 - 2 * 1) / 3
    cos = component_cosines(torch.tensor([[1.0, 0.0], [1.0, 1.0]]), torch.tensor([[-2.0, 0.0], [0.0, 1.0]]))
    assert torch.allclose(cos, torch.tensor([1.0, 1 / math.sqrt(2)], dtype=torch.float64))
    with pytest.raises(ValueError, match="dependent"):
        subspace_error(torch.tensor([[1.0, 0.0, 0.0], [2.0, 0.0, 0.0]]), torch.eye(3)[:2])
    with pytest.raises(ValueError, match="reference"):
        component_cosines(torch.eye(3), torch.eye(3)[:2])


def test_amari_distance():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(5, 3, generator=g, dtype=torch.float64)
    perm_scale = torch.tensor([[0.0, 3.0, 0.0], [0.0, 0.0, -0.5], [2.0, 0.0, 0.0]], dtype=torch.float64)
    W = perm_scale @ torch.linalg.pinv(A)  # W A = scaled permutation
    assert amari_distance(W, A) == pytest.approx(0.0, abs=1e-10)
    # hand case: W A = [[1, .5], [0, 1]]: rows (0.5 + 0) + columns (0 + 0.5), over 2 k (k - 1) = 4
    assert amari_distance(torch.tensor([[1.0, 0.5], [0.0, 1.0]]), torch.eye(2)) == pytest.approx(0.25)
    assert amari_distance(torch.ones(3, 3), torch.eye(3)) == pytest.approx(1.0)  # nothing separated
    assert amari_distance(torch.linalg.pinv(A) + 0.1, A) > 0.0
    with pytest.raises(ValueError, match="A"):
        amari_distance(torch.randn(3, 5), torch.randn(4, 3))


def test_label_selectivity_hand_case():
    # winners 0,0,0,1,1,1,1 (neuron 2 never wins)
    u = responses(3, [(0, 1)] * 3 + [(1, 0)] * 4)
    labels = torch.tensor([2, 2, 1, 0, 0, 0, 1])
    res = label_selectivity(u, labels, 3)
    assert res["counts"].tolist() == [[0, 1, 2], [3, 1, 0], [0, 0, 0]]
    assert res["wins"].tolist() == [3, 4, 0]
    assert res["majority"].tolist() == [2, 0, -1]
    assert res["purity"][:2].tolist() == pytest.approx([2 / 3, 3 / 4]) and math.isnan(res["purity"][2])
    assert res["mean_purity"] == pytest.approx((2 / 3 + 3 / 4) / 2)
    assert res["weighted_purity"] == pytest.approx(5 / 7)
    assert res["chance"] == pytest.approx(3 / 7)
    assert res["n_live"] == 2
    with pytest.raises(ValueError, match="labels"):
        label_selectivity(u, torch.tensor([0, 1, 2, 3, 0, 0, 0]), 3)
    with pytest.raises(ValueError, match="labels"):
        label_selectivity(u, labels[:5], 3)


def test_token_purity_hand_case():
    u = torch.tensor([[6.0, 1.0], [5.0, 2.0], [4.0, 3.0], [3.0, 4.0], [2.0, 5.0], [1.0, 6.0]])
    tokens = torch.tensor([7, 7, 9, 8, 8, 8])
    # neuron 0's top 3 are samples 0, 1, 2 (tokens 7, 7, 9); neuron 1's are 5, 4, 3 (8, 8, 8)
    assert token_purity(u, tokens, top=3).tolist() == pytest.approx([2 / 3, 1.0])
    assert token_purity(u, tokens, top=6).tolist() == pytest.approx([1 / 2, 1 / 2])
    with pytest.raises(ValueError, match="top"):
        token_purity(u, tokens, top=7)
    with pytest.raises(ValueError, match="token_ids"):
        token_purity(u, tokens[:4])


def test_linear_probe_on_separable_blobs():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (600,), generator=g)
    centres = torch.randn(3, 8, generator=g) * 4
    X = centres[y] + torch.randn(600, 8, generator=g)
    res = linear_probe(X[:400], y[:400], X[400:], y[400:])
    assert res["train_acc"] == 1.0 and res["test_acc"] >= 0.98 and res["converged"]
    with pytest.raises(ValueError, match="test_features"):
        linear_probe(X[:400], y[:400], X[400:, :5], y[400:])


def test_linear_probe_on_a_seeded_subsample():
    """train_samples fits on that many training rows (the seed's randperm, in order), scores every test row."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 3, (600,), generator=g)
    X = torch.randn(3, 8, generator=g)[y] * 1.5 + torch.randn(600, 8, generator=g)  # overlapping blobs
    sub = linear_probe(X[:400], y[:400], X[400:], y[400:], train_samples=50, seed=3)
    assert sub == linear_probe(X[:400], y[:400], X[400:], y[400:], train_samples=50, seed=3)
    keep = torch.randperm(400, generator=torch.Generator().manual_seed(3))[:50].sort().values
    scaler = StandardScaler().fit(X[keep].numpy())
    ref = LogisticRegression(max_iter=200).fit(scaler.transform(X[keep].numpy()).astype("float32"), y[keep].numpy())
    assert sub["test_acc"] == ref.score(scaler.transform(X[400:].numpy()).astype("float32"), y[400:].numpy())
    assert linear_probe(X[:400], y[:400], X[400:], y[400:], train_samples=400) == linear_probe(X[:400], y[:400], X[400:], y[400:])
    with pytest.raises(ValueError, match="train_samples"):
        linear_probe(X[:400], y[:400], X[400:], y[400:], train_samples=1)


def test_streaming_variants_agree_with_the_response_versions():
    from hebb_utils.measure.metrics import label_selectivity_from_winners, token_purity_from_top, topographic_error_from_winners

    g = torch.Generator().manual_seed(0)
    u = torch.randn(200, 12, generator=g)
    labels = torch.randint(0, 4, (200,), generator=g)
    tokens = torch.randint(0, 5, (200,), generator=g)
    best2 = u.topk(2, dim=1).indices
    for nb in (4, 8):
        assert topographic_error_from_winners(best2, (3, 4), nb) == topographic_error(u, (3, 4), nb)
    a, b = label_selectivity(u, labels, 4), label_selectivity_from_winners(best2[:, 0], labels, 4, 12)
    assert torch.equal(a["counts"], b["counts"]) and a["weighted_purity"] == b["weighted_purity"]
    top_index = u.topk(10, dim=0).indices
    assert torch.equal(token_purity_from_top(top_index, tokens), token_purity(u, tokens, top=10))
    with pytest.raises(ValueError, match="winners"):
        label_selectivity_from_winners(torch.tensor([0, 12]), labels[:2], 4, 12)
    with pytest.raises(ValueError, match="best2"):
        topographic_error_from_winners(torch.tensor([[0, 12]]), (3, 4))


# ----------------------------------------------------------------------------------------------
# issue 9: shared checks, Grid, and the audited defects


def test_amari_distance_is_scale_invariant_and_finite_at_1e200():
    A = torch.randn(4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    W = torch.linalg.pinv(A) + 0.05
    ref = amari_distance(W, A)
    for scale in (1e200, 1e-200, 2.0 ** 60):
        assert amari_distance(W * scale, A) == pytest.approx(ref, rel=1e-12)
        assert amari_distance(W, A * scale) == pytest.approx(ref, rel=1e-12)
    for scale in (1e200, 1e-200):  # W A alone would overflow to inf (NaN) or underflow to 0
        assert amari_distance(W * scale, A * scale) == pytest.approx(ref, rel=1e-12)
    assert amari_distance(W * 4.0, A) == ref  # a power of two changes nothing, bit for bit


def test_metrics_take_the_shared_grid_and_numpy_sizes():
    from hebb_utils.checks import Grid

    u = torch.randn(20, 6, generator=torch.Generator().manual_seed(0))
    assert topographic_error(u, Grid(2, 3)) == topographic_error(u, (2, 3)) == topographic_error(u, (np.int64(2), 3))
    assert torch.equal(grid_coordinates(Grid(1, 5, True)), grid_coordinates((5,)))
    W = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    assert distance_correlation(W, Grid(2, 3), n_shuffles=np.int64(5), seed=np.int64(0))["n_pairs"] == 15
    labels = np.arange(20) % 3
    assert label_selectivity(u, labels, np.int64(3))["n_live"] >= 1
    assert token_purity(u, torch.arange(20), top=np.int64(4)).shape == (6,)


def test_metrics_refuse_bad_inputs_clearly():
    u = torch.randn(8, 6)
    cases = [
        (lambda: topographic_error(u, 6), "grid=6"),
        (lambda: distance_correlation(torch.randn(6, 3), (2, 3), n_shuffles=-1), "n_shuffles"),
        (lambda: distance_correlation(torch.randn(6, 3), (2, 3), max_pairs=2), "max_pairs"),
        (lambda: label_selectivity(u, torch.arange(8) * 1.0, 8), "labels.*integers"),
        (lambda: label_selectivity(u, torch.arange(8), 4), r"labels: values must lie in \[0, 4\)"),
        (lambda: label_selectivity(u, torch.arange(8), 0), "n_labels"),
        (lambda: token_purity(u, torch.arange(8), top=0), "top"),
        (lambda: token_purity(u, torch.arange(8), top=9), "top"),
        (lambda: dead_fraction(torch.tensor([1, -1, 2])), "u_or_counts"),
        (lambda: dead_fraction(torch.tensor([1.0, 2.0])), "u_or_counts.*integers"),
        (lambda: amari_distance(torch.full((2, 2), float("nan")), torch.eye(2)), "NaN"),
        (lambda: component_cosines(np.zeros((0, 3)), np.zeros((0, 3))), "row"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()


def test_excess_kurtosis_is_scipys_with_the_sample_standard_deviation():
    from scipy.stats import kurtosis

    from hebb_utils import excess_kurtosis

    g = torch.Generator().manual_seed(0)
    laplace = torch.empty(4000, 1).exponential_(generator=g) - torch.empty(4000, 1).exponential_(generator=g)
    S = torch.cat([torch.randn(4000, 2, generator=g), laplace,
                   torch.rand(4000, 1, generator=g)], dim=1).double()
    n = S.shape[0]
    b2 = torch.from_numpy(kurtosis(S.numpy(), axis=0, fisher=True))  # biased moments
    # standardised with the n - 1 standard deviation: ((n - 1) / n)^2 (b2 + 3) - 3
    torch.testing.assert_close(excess_kurtosis(S), ((n - 1) / n) ** 2 * (b2 + 3) - 3, rtol=1e-10, atol=1e-10)
    k = excess_kurtosis(S.float())
    assert abs(k[0]) < 0.3 and abs(k[1]) < 0.3 and 2.0 < k[2] < 4.5 and -1.4 < k[3] < -1.0
    # normal 0, Laplace 3, uniform -1.2
    with pytest.raises(ValueError, match="S"):
        excess_kurtosis(torch.randn(5))
