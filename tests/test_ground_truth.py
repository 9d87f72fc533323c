"""The ground-truth generators: seeded, exact (X = codes @ features), and firing as documented,
checked against the formulas (binomial tolerances: 4.5 standard errors)."""
import json
import math

import pytest
import torch

from hebb_utils.dictionaries.ground_truth import sharkey_toy, topographic_toy


def fired(gt) -> torch.Tensor:
    return (gt.codes != 0).double()  # (n_samples, n_features)


def assert_rate(observed: float, p: float, n: int):
    assert abs(observed - p) <= 4.5 * math.sqrt(p * (1 - p) / n) + 1e-12, (observed, p)


def assert_exact_mixture(gt):
    norms = gt.features.double().norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-6)
    assert torch.equal(gt.X, gt.codes @ gt.features)
    assert gt.X.dtype == gt.features.dtype == gt.codes.dtype == torch.float32
    assert gt.codes.min() >= 0 and gt.codes.max() <= 1
    json.dumps(gt.config)


@pytest.mark.parametrize("make", [
    lambda seed: sharkey_toy(300, d=16, n_features=40, seed=seed),
    lambda seed: sharkey_toy(300, d=16, n_features=40, seed=seed, correlated=True, target_l0=3),
    lambda seed: topographic_toy(300, d=8, grid=(4, 5), seed=seed),
])
def test_generators_are_seeded_and_leave_the_global_rng_alone(make):
    state = torch.random.get_rng_state()
    a, b, c = make(7), make(7), make(8)
    assert torch.equal(torch.random.get_rng_state(), state)
    for field in ("X", "features", "codes"):
        assert torch.equal(getattr(a, field), getattr(b, field))
        assert not torch.equal(getattr(a, field), getattr(c, field))
    assert a.config == b.config


def test_sharkey_default_probabilities_follow_the_replication_code():
    n = 512
    gt = sharkey_toy(10, d=8, n_features=n)
    assert_exact_mixture(gt)
    assert gt.grid is None and gt.correlation is None
    i = torch.arange(n, dtype=torch.float64)
    assert torch.allclose(gt.rates, 0.99**i * 5 / n, rtol=1e-12, atol=0)
    # sum of a geometric series: the default mean L0 is ~0.97, not 5
    assert gt.config["expected_l0"] == pytest.approx(5 / n * (1 - 0.99**n) / 0.01, rel=1e-12)
    # the features do not depend on n_samples (drawn first)
    assert torch.equal(sharkey_toy(20, d=8, n_features=n).features, gt.features)


@pytest.mark.parametrize("target", [5.0, 1.0])
def test_sharkey_firing_rates_and_mean_l0(target):
    n_samples, n = 20_000, 512
    gt = sharkey_toy(n_samples, d=8, n_features=n, target_l0=target, seed=1)
    assert_exact_mixture(gt)
    p = 0.99 ** torch.arange(n, dtype=torch.float64)
    p = p * target / p.sum()  # no clipping at these targets
    assert torch.allclose(gt.rates, p, rtol=1e-12, atol=0)
    rates = fired(gt).mean(dim=0)
    for i in (0, 10, 100, 300):
        assert_rate(float(rates[i]), float(p[i]), n_samples)
    l0 = fired(gt).sum(dim=1)
    assert abs(gt.mean_l0 - target) <= 4.5 * float(l0.std()) / math.sqrt(n_samples)
    assert gt.mean_l0 == float(l0.mean())


def test_sharkey_target_l0_clips_probabilities_at_one():
    # two features with weights 1 and 0.99: sum min(1, a w) = 1.995 needs a = 0.995 / 0.99 (the first clipped)
    gt = sharkey_toy(2_000, d=4, n_features=2, target_l0=1.995, seed=0)
    assert gt.rates.tolist() == pytest.approx([1.0, 0.995], abs=1e-12)
    assert bool((gt.codes[:, 0] != 0).all())
    assert_rate(float(fired(gt)[:, 1].mean()), 0.995, 2_000)
    every = sharkey_toy(50, d=4, n_features=3, target_l0=3)
    assert bool((every.codes != 0).all()) and every.mean_l0 == 3


def test_correlated_sharkey_keeps_marginals_and_correlates_firing():
    from scipy.stats import multivariate_normal, norm

    n_samples, n = 40_000, 64
    gt = sharkey_toy(n_samples, d=8, n_features=n, target_l0=5, correlated=True, seed=0)
    assert_exact_mixture(gt)
    C = gt.correlation.double()
    assert torch.allclose(C.diagonal(), torch.ones(n, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(C, C.T) and float(torch.linalg.eigvalsh(C).min()) > 0
    p = gt.rates
    assert float(p.sum()) == pytest.approx(5.0, rel=1e-12)
    B = fired(gt)
    for i in (0, 20, 63):
        assert_rate(float(B[:, i].mean()), float(p[i]), n_samples)
    l0 = B.sum(dim=1)
    assert abs(gt.mean_l0 - 5) <= 4.5 * float(l0.std()) / math.sqrt(n_samples)
    # joint firing of the most and the least correlated pair among the 20 most frequent features:
    # P(both) = Phi2(t_i, t_j; C_ij) with t = Phi^-1(p) (the copula), far from p_i p_j
    top = C[:20, :20] - 2 * torch.eye(20, dtype=torch.float64)
    for flat in (int(top.argmax()), int((top + 4 * torch.eye(20, dtype=torch.float64)).argmin())):
        i, j = divmod(flat, 20)
        c = float(C[i, j])
        both = multivariate_normal(mean=[0, 0], cov=[[1, c], [c, 1]]).cdf([norm.ppf(p[i]), norm.ppf(p[j])])
        assert_rate(float((B[:, i] * B[:, j]).mean()), both, n_samples)
        independent = float(p[i] * p[j])
        assert (both - independent) * c > 0 and abs(both - independent) > 0.3 * independent
    # over all pairs, firing events correlate where the latent does; without the copula they do not
    phi = torch.corrcoef(B.T)
    iu = torch.triu_indices(n, n, 1)
    assert float(torch.corrcoef(torch.stack([phi[iu[0], iu[1]], C[iu[0], iu[1]]]))[0, 1]) > 0.5
    positive = C[iu[0], iu[1]] > 0.5
    assert float(phi[iu[0], iu[1]][positive].mean()) > 0.05
    plain = torch.corrcoef(fired(sharkey_toy(n_samples, d=8, n_features=n, target_l0=5, seed=0)).T)
    assert abs(float(plain[iu[0], iu[1]][positive].mean())) < 0.01


def test_topographic_toy_process_on_two_cells():
    # grid (1, 2), radius 1: shape [[1, e^-1/2], [e^-1/2, 1]]; mean L0 = 1 needs a (1 + e^-1/2) = 1,
    # so each feature fires with probability 1/2 and both together with a^2 e^-1/2 (< 1/4: the centre separates them)
    n_samples = 40_000
    gt = topographic_toy(n_samples, d=3, grid=(1, 2), mean_l0=1.0, seed=0)
    assert_exact_mixture(gt)
    a = 1 / (1 + math.exp(-0.5))
    assert gt.config["scale"] == pytest.approx(a, rel=1e-12)
    assert gt.rates.tolist() == pytest.approx([0.5, 0.5], rel=1e-12)
    B = fired(gt)
    assert_rate(float(B[:, 0].mean()), 0.5, n_samples)
    assert_rate(float((B[:, 0] * B[:, 1]).mean()), a * a * math.exp(-0.5), n_samples)


def test_topographic_toy_neighbours_fire_together():
    n_samples = 20_000
    gt = topographic_toy(n_samples, d=16, grid=(8, 8), radius=1.0, mean_l0=4.0, seed=2)
    assert_exact_mixture(gt)
    assert gt.grid == (8, 8) and gt.features.shape == (64, 16) and gt.config["grid"] == [8, 8]
    assert abs(gt.mean_l0 - 4.0) <= 4.5 * float(fired(gt).sum(dim=1).std()) / math.sqrt(n_samples)
    rates = fired(gt).mean(dim=0)
    for k in (0, 9, 27):  # corner, near corner, middle: fewer centres reach the edges
        assert_rate(float(rates[k]), float(gt.rates[k]), n_samples)
    assert gt.rates[0] < gt.rates[9] < gt.rates[27]
    B = fired(gt)
    joint = B.T @ B / n_samples  # (64, 64) P(i and j)
    r, c = torch.arange(64) // 8, torch.arange(64) % 8
    dist = ((r[:, None] - r[None]).square() + (c[:, None] - c[None]).square()).double().sqrt()
    near, far = joint[dist == 1].mean(), joint[dist >= 4].mean()
    assert near > 20 * far
    # on the plain grid the two ends of a row are far apart; on a torus they are neighbours
    tor = topographic_toy(n_samples, d=16, grid=(8, 8), radius=1.0, mean_l0=4.0, seed=2, torus=True)
    assert torch.allclose(tor.rates, torch.full((64,), 4.0 / 64, dtype=torch.float64), rtol=1e-12)
    Bt = fired(tor)
    wrapped, inside = float((Bt[:, 0] * Bt[:, 7]).mean()), float((Bt[:, 3] * Bt[:, 4]).mean())
    assert abs(wrapped - inside) <= 4.5 * math.sqrt(2 * inside / n_samples)
    assert float((B[:, 0] * B[:, 7]).mean()) < 0.1 * wrapped


@pytest.mark.parametrize("call, name", [
    (lambda: sharkey_toy(0), "n_samples"),
    (lambda: sharkey_toy(10, d=0), "d"),
    (lambda: sharkey_toy(10, n_features=2.5), "n_features"),
    (lambda: sharkey_toy(10, seed=-1), "seed"),
    (lambda: sharkey_toy(10, n_features=4, target_l0=5), "target_l0"),
    (lambda: sharkey_toy(10, target_l0=float("nan")), "target_l0"),
    (lambda: sharkey_toy(10, correlated="yes"), "correlated"),
    (lambda: topographic_toy(10, grid=(0, 4)), "grid"),
    (lambda: topographic_toy(10, radius=0), "radius"),
    (lambda: topographic_toy(10, grid=(2, 2), mean_l0=5), "mean_l0"),
    (lambda: topographic_toy(10, torus=1), "torus"),
])
def test_bad_arguments_are_named(call, name):
    with pytest.raises(ValueError, match=name):
        call()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_method_starts_at_the_true_features_of_the_same_seed(seed):
    """A layer and a toy seeded with the same number draw from different streams: Hebbian pursuit's
    float64 normal start once WAS the toy's features (MMCS 1.000 untrained)."""
    from hebb_utils.measure.recovery import mmcs
    from hebb_utils.rules.layer import SoftHebbLinear
    from hebb_utils.rules.pursuit import PursuitLinear

    for truth in (sharkey_toy(50, d=32, n_features=48, seed=seed), topographic_toy(50, d=16, grid=(6, 8), seed=seed)):
        n, d = truth.features.shape
        for layer in (PursuitLinear(d, n, seed=seed), SoftHebbLinear(d, n, 20.0, seed=seed)):
            assert mmcs(layer.weight, truth.features) < 0.8, type(layer).__name__
    with pytest.raises(ValueError, match="below 2\\*\\*31"):
        sharkey_toy(10, d=4, n_features=4, seed=2**31)
