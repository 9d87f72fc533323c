"""The Hebbian rules (PAPER.md rules 1-3, hebb_utils.rules.hebbian) against exact linear algebra; the run
schedule and history (hebb_utils.rules.schedule) and the data stream (hebb_utils.rules.stream)."""
import numpy as np
import pytest
import torch

from hebb_utils import (
    component_cosines,
    estimate_top_eigenvalue,
    hebb,
    hebb_with_decay,
    oja,
    recurrent_hebb,
    sanger,
    sanger_step,
    subspace_error,
    top_eigenvectors,
)

EVALS = [10.0, 7.0, 5.0, 3.5, 2.5]  # then 1.0: an eigengap between every one of the top 5


def gaussian_data(n=4000, D=20, seed=0, offset=3.0):
    """Samples with covariance Q diag(EVALS, 1, ..., 1) Q^T, a random rotation Q, and a mean offset."""
    g = torch.Generator().manual_seed(seed)
    evals = torch.tensor(EVALS + [1.0] * (D - len(EVALS)), dtype=torch.float64)
    Q = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=torch.float64))[0]
    Z = torch.randn(n, D, generator=g, dtype=torch.float64) * evals.sqrt()
    return (Z @ Q.T + offset).float()


def covariance64(X):
    x = X.double() - X.double().mean(0)
    return x.T @ x / x.shape[0]


@pytest.fixture(scope="module")
def data():
    X = gaussian_data()
    return X, top_eigenvectors(X, 5)


# ---------------------------------------------------------------------------------------------
# the exact reference


def test_top_eigenvectors_match_numpy():
    X = gaussian_data(n=1000, D=8)
    V, lam = top_eigenvectors(X, 3, return_eigenvalues=True)
    evals, evecs = np.linalg.eigh(np.cov(X.double().numpy(), rowvar=False, bias=True))
    assert V.shape == (3, 8) and V.dtype == torch.float32
    np.testing.assert_allclose(lam.numpy(), evals[::-1][:3], rtol=1e-10)
    cos = np.abs((V.double().numpy() @ evecs[:, ::-1][:, :3]).diagonal())
    np.testing.assert_allclose(cos, 1.0, atol=1e-6)
    # without centring it is the eigenvector of <x x^T>, here dominated by the mean offset
    mean_dir = X.double().mean(0) / X.double().mean(0).norm()
    v0 = top_eigenvectors(X, 1, center=False)[0]
    assert float(component_cosines(v0, mean_dir)[0]) > 0.99


def test_estimate_top_eigenvalue(data):
    X, _ = data
    lam = torch.linalg.eigvalsh(covariance64(X))[-1].item()
    assert estimate_top_eigenvalue(X, X.double().mean(0), gen=torch.Generator().manual_seed(0)) == pytest.approx(
        lam, rel=1e-6
    )


# ---------------------------------------------------------------------------------------------
# rule 1


def test_plain_hebb_diverges_along_top_eigenvector(data):
    X, ref = data
    res = hebb(X, lr=0.1)
    assert res.diverged
    assert res.norms[-1] > 1e20 and torch.isfinite(res.w).all()  # stopped before inf/NaN
    assert (res.norms[1:] > res.norms[:-1]).all()  # grows at every step
    # expected growth per step along e1: 1 + lr * lambda_1 / lambda_hat = 1.1 (lambda_hat ~ lambda_1)
    growth = (res.norms[-1] / res.norms[-51]) ** (1 / 50)
    assert growth.item() == pytest.approx(1.1, abs=0.01)
    assert component_cosines(res.w, ref[0]).item() > 0.999
    assert not hebb(X, lr=0.1, steps=20).diverged  # too short to pass max_norm


@pytest.mark.parametrize("scale", [1e-3, 1e3])
def test_hebb_with_decay_converges_to_top_eigenvector(data, scale):
    X, ref = data
    history = []
    w = hebb_with_decay(X * scale, reference=ref[0], history=history)
    assert component_cosines(w, ref[0]).item() >= 0.999
    norms = [h["norm"] for h in history]
    assert 1e-3 < min(norms) and max(norms) <= 1.0 + 1e-6  # alpha = lambda_hat: |w| neither explodes nor dies
    assert history[-1]["cos"] >= 0.999


def test_hebb_with_decay_far_alpha_reports_divergence(data):
    X, _ = data
    with pytest.raises(RuntimeError, match="alpha"):
        hebb_with_decay(X, alpha=1000.0)  # |w| decays to 0
    with pytest.raises(RuntimeError, match="alpha"):
        hebb_with_decay(X, alpha=0.01)  # |w| explodes


@pytest.mark.parametrize("alpha", [0.5, 4.0])
def test_recurrent_hebb_converges_to_covariance_over_alpha(data, alpha):
    X, _ = data
    C = covariance64(X)
    W = recurrent_hebb(X, alpha)
    assert W.shape == (20, 20)
    assert torch.allclose(W, W.T)
    assert ((alpha * W.double() - C).norm() / C.norm()).item() < 0.01


def test_recurrent_hebb_single_step_is_exact():
    # lr=1 without decay: W <- (1 - 1) W + S_batch / alpha, the last batch's correlations exactly
    X = gaussian_data(n=600, D=5)
    W = recurrent_hebb(X, 2.0, lr=1.0, lr_decay=False, epochs=1, batch_size=256, shuffle=False)
    x = X.double()[512:] - X.double().mean(0)
    assert torch.allclose(W.double(), x.T @ x / x.shape[0] / 2.0, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# rules 2-3


def test_sanger_step_matches_per_sample_formula():
    g = torch.Generator().manual_seed(1)
    W = torch.randn(3, 6, generator=g)
    x = torch.randn(10, 6, generator=g)
    W64, x64 = W.double(), x.double()
    dW = torch.zeros_like(W64)  # dW_ij = < y_i (x_j - sum_{k<=i} y_k W_kj) >
    for b in range(10):
        y = W64 @ x64[b]
        for i in range(3):
            for j in range(6):
                dW[i, j] += y[i] * (x64[b, j] - sum(y[k] * W64[k, j] for k in range(i + 1)))
    expected = W64 + 0.1 * dW / 10
    out = sanger_step(W, x, 0.1)
    assert out is W  # in place
    assert torch.allclose(W.double(), expected, atol=1e-5)


@pytest.mark.parametrize("scale", [1e-3, 1e-1, 1e1, 1e3])
def test_oja_finds_first_pc_at_any_scale_with_defaults(data, scale):
    X, ref = data
    w = oja(X * scale)
    assert w.shape == (20,)
    assert w.norm().item() == pytest.approx(1.0, abs=1e-5)
    assert component_cosines(w, ref[0]).item() >= 0.999


@pytest.mark.parametrize("scale", [1e-3, 1e3])
def test_sanger_finds_top5_in_order(data, scale):
    X, ref = data
    W = sanger(X * scale, 5)
    cos = component_cosines(W, ref)
    assert (cos >= 0.99).all(), cos
    assert subspace_error(W, ref) < 1e-3
    assert torch.allclose(W @ W.T, torch.eye(5), atol=0.02)  # converged rows are orthonormal


def test_oja_history_records_convergence(data):
    X, ref = data
    history = []
    oja(X, reference=ref[0], history=history, log_every=50)
    assert history[0]["step"] == 0 and history[-1]["step"] == 2000  # 16 batches/epoch x 125 epochs
    assert [h["step"] for h in history[:3]] == [0, 50, 100]
    assert history[0]["cos"] < 0.9 and history[-1]["cos"] >= 0.999
    assert history[-1]["norm"] == pytest.approx(1.0, abs=0.01)  # Oja normalises itself
    assert history[-1]["lr"] < 0.01 * history[1]["lr"]  # linear decay to ~0


def test_iterable_inputs_give_the_tensor_answer(data):
    X, _ = data
    expected = sanger(X, 3, shuffle=False, epochs=3)
    batches = list(X.split(256))
    assert torch.allclose(sanger(batches, 3, epochs=3), expected, atol=1e-6)
    assert torch.allclose(sanger(lambda: iter(X.split(256)), 3, epochs=3), expected, atol=1e-6)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X), batch_size=256)
    assert torch.allclose(sanger(loader, 3, epochs=3), expected, atol=1e-6)
    assert torch.allclose(oja([b.numpy() for b in batches], epochs=3), oja(X, shuffle=False, epochs=3), atol=1e-6)


def test_same_seed_same_weights(data):
    X, _ = data
    assert torch.equal(sanger(X, 3, steps=100, seed=3), sanger(X, 3, steps=100, seed=3))
    assert not torch.equal(sanger(X, 3, steps=100, seed=3), sanger(X, 3, steps=100, seed=4))


# ---------------------------------------------------------------------------------------------
# bad input


def one_shot():
    yield torch.zeros(4, 3)


@pytest.mark.parametrize(
    "X, kwargs, name",
    [
        (torch.zeros(10), {}, "X"),  # 1-D
        (torch.zeros(2, 3, 4), {}, "X"),  # 3-D
        (torch.zeros(0, 5), {}, "X"),  # empty
        (torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), {}, "NaN"),
        (torch.tensor([[1.0, float("inf")], [0.0, 1.0]]), {}, "NaN or inf"),
        ([torch.randn(8, 5), torch.randn(8, 4)], {}, r"batch 1\) has shape \(8, 4\): expected \(samples, 5\)"),
        (torch.zeros(5, 0), {}, "column"),
        (torch.ones(20, 5, dtype=torch.int64), {}, r"x\.float\(\)"),  # integers: refused with the conversion
        ([], {}, "no batches"),
        (one_shot(), {}, "one-shot"),
        ("data", {}, "X"),
        (torch.randn(20, 5), {"lr": 0.0}, "lr"),
        (torch.randn(20, 5), {"batch_size": 0}, "batch_size"),
        (torch.randn(20, 5), {"epochs": 0}, "epochs"),
        (torch.randn(20, 5), {"lr": float("nan")}, "lr"),
        (torch.randn(20, 5), {"steps": 2.0}, "steps"),
        (torch.randn(20, 5), {"seed": -1}, "seed"),
        (torch.randn(20, 5), {"log_every": True}, "log_every"),
        (torch.randn(20, 5), {"scale_rows": 0}, "scale_rows"),
        (torch.randn(20, 5), {"history": ()}, "history"),
        (torch.randn(20, 5), {"reference": "v"}, "reference"),
        (torch.randn(20, 5), {"reference": torch.full((5,), float("nan"))}, "reference"),
        (torch.randn(20, 5), {"backend": "cuda"}, "backend"),
        (torch.randn(20, 5), {"reference": torch.randn(4)}, "reference"),
        (torch.ones(20, 5), {}, "zero variance"),
    ],
)
def test_bad_input_is_named(X, kwargs, name):
    with pytest.raises(ValueError, match=name):
        oja(X, **kwargs)


def test_bad_components_and_alpha():
    X = torch.randn(50, 4)
    with pytest.raises(ValueError, match="n_components"):
        sanger(X, 5)
    with pytest.raises(ValueError, match="alpha"):
        recurrent_hebb(X, -1.0)


def test_numpy_scalars_are_numbers(data):
    # regression: np.int64(32) was refused as "expected a positive integer"
    X, _ = data
    assert torch.equal(oja(X, batch_size=np.int64(32), steps=np.int64(40), seed=np.int32(1), log_every=np.int64(5),
                           scale_rows=np.int64(500), lr=np.float32(0.5)),
                       oja(X, batch_size=32, steps=40, seed=1, log_every=5, scale_rows=500, lr=float(np.float32(0.5))))
    assert sanger(X, np.int64(2), epochs=np.int64(1)).shape == (2, 20)
    assert top_eigenvectors(X, np.int64(2)).shape == (2, 20)
    assert recurrent_hebb(X, np.float32(2.0), steps=10).shape == (20, 20)
    assert hebb_with_decay(X, np.float64(10.0), steps=10).shape == (20,)
    assert hebb(X, steps=np.int64(3), max_norm=np.float32(1e9)).norms.shape == (4,)


def test_recurrent_hebb_divergence_raises():
    # regression: lr > 2 makes W <- (1 - lr) W + ... oscillate and grow; it returned NaN, now it raises
    X = gaussian_data(n=600, D=5)
    with pytest.raises(RuntimeError, match=r"recurrent_hebb: the weights diverged \(not finite\) at step \d+"):
        recurrent_hebb(X, lr=2.5, lr_decay=False, steps=300, batch_size=32)
    assert torch.isfinite(recurrent_hebb(X, lr=1.5, lr_decay=False, steps=300, batch_size=32)).all()  # stable


def test_sanger_divergence_raises(data):
    X, _ = data
    with pytest.raises(RuntimeError, match="sanger: the weights diverged.*lower lr"):
        sanger(X, 3, lr=50.0, lr_decay=False, steps=300)


def test_options_not_of_the_rule_are_refused(data):
    X, _ = data
    with pytest.raises(TypeError, match="lr_decay"):
        hebb(X, lr_decay=True)  # plain Hebb has a constant step
    with pytest.raises(TypeError, match="scale_rows"):
        recurrent_hebb(X, scale_rows=10)
    with pytest.raises(TypeError, match="lr_rate"):
        oja(X, lr_rate=0.1)


def test_lr_at_and_history_schedule():
    from hebb_utils.rules.schedule import lr_at

    assert lr_at(0, 0.5, 100) == 0.5 and lr_at(50, 0.5, 100) == 0.25 and lr_at(100, 0.5, 100) == 0.0
    assert lr_at(70, 0.5, 100, decay=False) == 0.5
    X = gaussian_data(n=500, D=6)
    history = []
    sanger(X, 2, steps=25, batch_size=100, log_every=10, history=history)  # 5 batches per epoch
    assert [(h["step"], h["epoch"]) for h in history] == [(0, 0), (10, 1), (20, 3), (25, 5)]  # epochs completed
    assert [h["lr"] for h in history] == [0.5, lr_at(9, 0.5, 25), lr_at(19, 0.5, 25), lr_at(24, 0.5, 25)]


def test_estimate_top_eigenvalue_bad_input():
    with pytest.raises(ValueError, match="sample"):
        estimate_top_eigenvalue(torch.zeros(5))
    with pytest.raises(ValueError, match="iters"):
        estimate_top_eigenvalue(torch.randn(5, 3), iters=0)
    with pytest.raises(ValueError, match="mean"):
        estimate_top_eigenvalue(torch.randn(5, 3), torch.zeros(4))
