"""Hebbian ICA (PAPER.md rule 4, hebb_utils.rules.ica) against FastICA."""
import numpy as np
import pytest
import torch

from hebb_utils import amari_distance, hebbian_ica

# ---------------------------------------------------------------------------------------------
# rule 4


def laplace_mixture(n=10000, k=4, D=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, k, generator=g, dtype=torch.float64) - 0.5
    S = -torch.sign(u) * torch.log1p(-2 * u.abs())  # Laplace(0, 1) sources by inverse CDF
    A = torch.randn(D, k, generator=g, dtype=torch.float64)
    return (S @ A.T + 2.0).float(), S, A


def test_hebbian_ica_separates_laplace_sources_like_fastica():
    from sklearn.decomposition import FastICA

    X, S, A = laplace_mixture()
    history = []
    W = hebbian_ica(X, 4, reference=A, history=history)
    ours = amari_distance(W, A)
    fast = FastICA(4, whiten="unit-variance", random_state=0).fit(X.numpy())
    theirs = amari_distance(torch.from_numpy(fast.components_), A)
    print(f"Amari distance: hebbian_ica {ours:.4f}, FastICA {theirs:.4f}")
    assert ours <= 0.1 and theirs <= 0.1
    assert history[0]["amari"] > 0.1 and history[-1]["amari"] == pytest.approx(ours, abs=1e-6)
    # W applies to the centred original data: each recovered source is one true source
    S_hat = (X.double() - X.double().mean(0)) @ W.double().T
    assert torch.allclose(S_hat.var(0), torch.ones(4, dtype=torch.float64), atol=0.01)
    corr = torch.corrcoef(torch.cat([S_hat.T, S.T]))[:4, 4:].abs()
    assert (corr.max(dim=1).values > 0.98).all()
    assert amari_distance(hebbian_ica(X, 4, whiten="sanger"), A) <= 0.1




def test_same_seed_same_unmixing():
    X = laplace_mixture(n=2000)[0]
    assert torch.equal(hebbian_ica(X, 3, steps=50, seed=1), hebbian_ica(X, 3, steps=50, seed=1))
    assert torch.equal(hebbian_ica(X, np.int64(3), steps=np.int64(50), seed=np.int64(1)),
                       hebbian_ica(X, 3, steps=50, seed=1))


def test_bad_input_is_named():
    X = torch.randn(50, 4)
    with pytest.raises(ValueError, match="n_components"):
        hebbian_ica(X, 0)
    with pytest.raises(ValueError, match="n_components"):
        hebbian_ica(X, 5)
    with pytest.raises(ValueError, match="whiten"):
        hebbian_ica(X, 2, whiten="pca")
    with pytest.raises(ValueError, match="mixing matrix"):
        hebbian_ica(X, 2, reference=torch.randn(4, 3))
    with pytest.raises(TypeError, match="center"):
        hebbian_ica(X, 2, center=False)  # ICA always centres


def test_divergence_raises():
    X = laplace_mixture(n=2000)[0]
    with pytest.raises(RuntimeError, match="hebbian_ica: the weights diverged.*lower lr"):
        hebbian_ica(X, 4, lr=100.0, lr_decay=False, steps=200)
