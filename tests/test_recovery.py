"""Recovery metrics on hand-computed cases (3-4-5 triangles give exact cosines) and against scipy."""
import itertools
import math

import numpy as np
import pytest
import torch

from hebb_utils.measure.recovery import (cosine_matrix, dead_units, explained_variance, mcc, mmcs,
                                         recovered_share, topographic_rank_correlation)

TRUE = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # (M=2, d=3)
# cosines with the true features: row 0 (0.8, 0.6), row 1 (0.6, 0), row 2 (zero norm) (0, 0)
LEARNED = torch.tensor([[4.0, 3.0, 0.0], [3.0, 0.0, 4.0], [0.0, 0.0, 0.0]])  # norms 5, 5, 0: exact in float32


def orthonormal(m, d, seed=0):
    Q, _ = torch.linalg.qr(torch.randn(d, m, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return Q.T  # (m, d)


def test_cosine_matrix_hand_case_and_zero_rows():
    C = cosine_matrix(LEARNED * 7, TRUE * 2)  # scale-free
    assert C.dtype == torch.float64
    assert C.flatten().tolist() == pytest.approx([0.8, 0.6, 0.6, 0.0, 0.0, 0.0], abs=1e-15)


def test_mmcs_and_mcc_differ_where_one_unit_is_best_for_two_features():
    # best per true feature: learned 0 for both (0.8 and 0.6) -> mmcs 0.7;
    # one-to-one: 0 -> 1 and 1 -> 0 (0.6 + 0.6 = 1.2 beats 0.8 + 0 = 0.8) -> mcc 0.6
    assert mmcs(LEARNED, TRUE) == pytest.approx(0.7, abs=1e-15)
    m = mcc(LEARNED, TRUE)
    assert m["mcc"] == pytest.approx(0.6, abs=1e-15)
    assert m["rows"].tolist() == [0, 1] and m["cols"].tolist() == [1, 0]
    assert m["rows"].dtype == m["cols"].dtype == torch.int64


def test_signed_cosine_does_not_credit_flipped_units():
    true = orthonormal(3, 6)
    # every unit points at minus its feature: signed, each feature's best is 0 (another unit, orthogonal)
    assert mmcs(-true, true) == pytest.approx(0.0, abs=1e-12)
    assert mmcs(-true, true, absolute=True) == pytest.approx(1.0, abs=1e-12)
    signed = mcc(-true, true)
    assert signed["mcc"] == pytest.approx(0.0, abs=1e-12)  # any derangement (0) beats the identity (-1 each)
    assert all(r != c for r, c in zip(signed["rows"].tolist(), signed["cols"].tolist()))
    m = mcc(-true, true, absolute=True)
    assert m["mcc"] == pytest.approx(1.0, abs=1e-12) and m["cols"].tolist() == [0, 1, 2]


def test_mcc_recovers_a_permutation_with_signs_and_scales():
    true = orthonormal(5, 8, seed=1)
    perm = torch.tensor([3, 0, 4, 1, 2])
    signs = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0], dtype=torch.float64)
    learned = true[perm] * (signs * torch.tensor([2.0, 0.5, 1.0, 3.0, 0.1], dtype=torch.float64))[:, None]
    m = mcc(learned, true, absolute=True)
    assert m["mcc"] == pytest.approx(1.0, abs=1e-12)
    assert m["rows"].tolist() == [0, 1, 2, 3, 4] and m["cols"].tolist() == perm.tolist()
    C = cosine_matrix(learned, true)
    assert C[torch.arange(5), perm].tolist() == pytest.approx(signs.tolist(), abs=1e-12)
    # more learned units than features: K = min(N, M) pairs, the extra (random) units unmatched
    extra = torch.cat([learned, torch.randn(4, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))])
    m = mcc(extra, true, absolute=True)
    assert m["rows"].tolist() == [0, 1, 2, 3, 4] and m["cols"].tolist() == perm.tolist()
    # fewer: two learned units for five features
    m = mcc(learned[:2], true, absolute=True)
    assert m["cols"].tolist() == [3, 0] and m["mcc"] == pytest.approx(1.0, abs=1e-12)


def test_mcc_is_the_best_matching():
    gen = torch.Generator().manual_seed(3)
    learned, true = torch.randn(4, 5, generator=gen), torch.randn(4, 5, generator=gen)
    C = cosine_matrix(learned, true)
    best = max(sum(float(C[i, p[i]]) for i in range(4)) / 4 for p in itertools.permutations(range(4)))
    assert mcc(learned, true)["mcc"] == pytest.approx(best, abs=1e-12)


def test_recovered_share_at_the_threshold():
    # best cosines: 0.8 (feature 0) and 0.6 (feature 1), both exact in float64 (3-4-5)
    assert recovered_share(LEARNED, TRUE, threshold=0.8) == 0.5
    assert recovered_share(LEARNED, TRUE, threshold=float(np.nextafter(0.8, 1))) == 0.0
    assert recovered_share(LEARNED, TRUE, threshold=0.6) == 1.0
    assert recovered_share(LEARNED, TRUE, threshold=float(np.nextafter(0.6, 1))) == 0.5
    assert recovered_share(-LEARNED, TRUE, threshold=0.5) == 0.0
    assert recovered_share(-LEARNED, TRUE, threshold=0.5, absolute=True) == 1.0


def test_explained_variance():
    X = torch.randn(50, 4, generator=torch.Generator().manual_seed(0))
    assert explained_variance(X, X) == 1.0
    assert explained_variance(X, X.mean(dim=0).expand_as(X)) == pytest.approx(0.0, abs=1e-12)
    # hand case: total sum of squares 2 around the mean 0, residual 2 * 0.5^2 = 0.5
    X = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    assert explained_variance(X, X / 2) == pytest.approx(0.75, abs=1e-15)
    assert explained_variance(X, -X) == pytest.approx(-3.0, abs=1e-15)  # worse than the mean


def test_dead_units():
    codes = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 2.0, -1.0, 0.0]])
    assert dead_units(codes) == 0.5  # units 0 and 3 never active; a negative code is active
    assert dead_units(torch.ones(2, 3)) == 0.0


def spearman_reference(true_grid, learned_grid, rows, cols):
    """Spearman over pairs of matched features with numpy / scipy, independently of the package."""
    from scipy.stats import spearmanr

    def pos(k, grid):
        return np.array([k // grid[1], k % grid[1]], dtype=float)

    d_true, d_learned = [], []
    for a, b in itertools.combinations(range(len(rows)), 2):
        d_true.append(np.linalg.norm(pos(cols[a], true_grid) - pos(cols[b], true_grid)))
        d_learned.append(np.linalg.norm(pos(rows[a], learned_grid) - pos(rows[b], learned_grid)))
    return spearmanr(d_true, d_learned).statistic


def test_topographic_rank_correlation_hand_case():
    # one row of 3: true i -> learned [1, 0, 2][i]. Pair distances: true (1, 2, 1), learned (1, 1, 2);
    # average ranks (1.5, 3, 1.5) and (1.5, 1.5, 3): rho = (0.25 - 0.5 - 0.5) / 1.5 = -0.5
    out = topographic_rank_correlation((1, 3), (1, 3), {"rows": torch.tensor([1, 0, 2]), "cols": torch.arange(3)},
                                       n_shuffles=10)
    assert out["rho"] == pytest.approx(-0.5, abs=1e-12)


def test_topographic_rank_correlation_is_one_for_a_kept_layout():
    n = 16
    identity = topographic_rank_correlation((4, 4), (4, 4), (torch.arange(n), torch.arange(n)), n_shuffles=50)
    assert identity["rho"] == pytest.approx(1.0, abs=1e-12)
    assert identity["p_value"] == 1 / 51 and abs(identity["null_mean"]) < 0.1
    # a transpose onto a (3, 2) map, learned (c, r) <-> true (r, c): an isometry, rho 1
    true_k = torch.arange(6)
    learned_k = (true_k % 3) * 2 + true_k // 3
    assert topographic_rank_correlation((2, 3), (3, 2), (learned_k, true_k))["rho"] == pytest.approx(1.0, abs=1e-12)
    # every learned unit matched, not every feature: a (2, 2) map onto the corners of a (3, 3) grid (scaled by 2)
    out = topographic_rank_correlation((3, 3), (2, 2), {"rows": torch.arange(4), "cols": torch.tensor([0, 2, 6, 8])})
    assert out["rho"] == pytest.approx(1.0, abs=1e-12)


def test_topographic_rank_correlation_random_layout_matches_scipy_and_the_null():
    gen = torch.Generator().manual_seed(5)
    # 8 x 8 features matched into a 10 x 10 map at random (N > M: what mcc returns for a larger map)
    rows = torch.randperm(100, generator=gen)[:64].sort().values
    cols = torch.randperm(64, generator=gen)
    out = topographic_rank_correlation((8, 8), (10, 10), {"rows": rows, "cols": cols}, n_shuffles=200, seed=1)
    assert out["rho"] == pytest.approx(spearman_reference((8, 8), (10, 10), rows.tolist(), cols.tolist()), abs=1e-9)
    assert abs(out["rho"] - out["null_mean"]) < 3 * out["null_std"] and out["null_std"] < 0.05
    assert 1 / 201 <= out["p_value"] <= 1 and out["p_value"] > 0.01
    assert out["n_pairs"] == 64 * 63 // 2
    # seeded: the same null again
    assert topographic_rank_correlation((8, 8), (10, 10), {"rows": rows, "cols": cols}, n_shuffles=200, seed=1) == out


@pytest.mark.parametrize("call, name", [
    (lambda: cosine_matrix(torch.ones(3), TRUE), "learned"),
    (lambda: cosine_matrix(LEARNED, torch.ones(2, 4)), "true"),
    (lambda: cosine_matrix(LEARNED, torch.zeros(2, 3)), "true"),
    (lambda: mmcs(torch.full((2, 3), float("nan")), TRUE), "learned"),
    (lambda: mmcs(LEARNED, TRUE, absolute=1), "absolute"),
    (lambda: mcc(LEARNED, torch.tensor([[1.0, float("inf"), 0.0]])), "true"),
    (lambda: recovered_share(LEARNED, TRUE, threshold=1.5), "threshold"),
    (lambda: explained_variance(torch.ones(3, 2) * torch.arange(3.0)[:, None], torch.ones(3, 3)), "X_hat"),
    (lambda: explained_variance(torch.ones(3, 2), torch.ones(3, 2)), "X"),
    (lambda: dead_units(torch.ones(3, dtype=torch.long)), "codes"),
    (lambda: topographic_rank_correlation((2, 2), (2, 2), [0, 1, 2]), "matching"),
    (lambda: topographic_rank_correlation((2, 2), (2, 2), ([0, 1], [1, 0])), "matching"),
    (lambda: topographic_rank_correlation((3, 3), (3, 3), ([0, 1, 2], [0, 1, 2])), "matching"),
    (lambda: topographic_rank_correlation((2, 2), (2, 2), ([0, 1, 1, 3], [0, 1, 2, 3])), "matching"),
    (lambda: topographic_rank_correlation((2, 2), (2, 2), ([0, 1, 2, 4], [0, 1, 2, 3])), "matching"),
    (lambda: topographic_rank_correlation((2, 2), (2, 2), ([0.0, 1, 2, 3], [0, 1, 2, 3])), "matching"),
    (lambda: topographic_rank_correlation((0, 2), (2, 2), ([0, 1, 2, 3], [0, 1, 2, 3])), "true_grid"),
    (lambda: topographic_rank_correlation((2, 2), (2, 2), ([0, 1, 2, 3], [0, 1, 2, 3]), n_shuffles=-1), "n_shuffles"),
])
def test_bad_inputs_are_named(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_zero_learned_rows_never_match():
    m = mcc(torch.cat([torch.zeros(1, 3), LEARNED[:2]]), TRUE)
    assert m["rows"].tolist() == [1, 2] and m["mcc"] == pytest.approx(0.6, abs=1e-15)
    assert math.isclose(mmcs(torch.zeros(2, 3), TRUE), 0.0)


def test_extreme_scales_keep_their_directions_and_empty_codes_are_refused():
    """Issue 26: mmcs(T, T * 1e200) was 0.0 (the norm overflowed) and mmcs(T * 1e-200, T) 1e100, a cosine
    above 1 (the norm underflowed); dead_units of an empty matrix was NaN."""
    import torch

    from hebb_utils.measure.recovery import cosine_matrix, dead_units, mcc, mmcs

    T = torch.randn(6, 9, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for learned, true in ((T, T * 1e200), (T * 1e-200, T), (T * 1e-300, T * 1e300), (T * 1e-310, T)):
        assert mmcs(learned, true) == pytest.approx(1.0, abs=1e-12)
        assert mcc(learned, true)["mcc"] == pytest.approx(1.0, abs=1e-12)
        assert cosine_matrix(learned, true).abs().max() <= 1 + 1e-12
    assert torch.equal(cosine_matrix(T, T), cosine_matrix(T * 1.0, T))  # ordinary rows: the plain path, bit for bit
    with pytest.raises(ValueError, match="codes has 0 columns"):
        dead_units(torch.zeros(4, 0))
    with pytest.raises(ValueError, match="codes has 0 row"):
        dead_units(torch.zeros(0, 4))


def test_a_radius_whose_square_underflows_is_the_centre_only_limit():
    from hebb_utils.dictionaries.ground_truth import topographic_toy

    gt = topographic_toy(200, d=16, grid=(4, 4), radius=1e-300, mean_l0=0.5, seed=0)
    tiny = topographic_toy(200, d=16, grid=(4, 4), radius=1e-3, mean_l0=0.5, seed=0)
    assert torch.equal(gt.codes, tiny.codes)  # at 1e-3 only the centre can fire too: the same draw
