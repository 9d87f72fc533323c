"""Topography from co-activation (rules/coactivation.py): the swap gain is exact, the layout finds a
known layout, only the units' order changes, and bad inputs are named."""
import pytest
import torch

from hebb_utils.dictionaries.ground_truth import topographic_toy
from hebb_utils.dictionaries.registry import pursuit_fit_dictionary
from hebb_utils.measure.recovery import topographic_rank_correlation
from hebb_utils.rules.coactivation import (_neighbourhood, coactivation, coactivation_layout, pooled_coactivation,
                                           swap_gains)
from hebb_utils.checks import Grid


def _symmetric(n, seed):
    g = torch.Generator().manual_seed(seed)
    C = torch.rand(n, n, generator=g, dtype=torch.float64)
    C = C + C.T
    C.fill_diagonal_(0)
    return C


def test_coactivation_is_the_mean_product_of_codes_off_the_diagonal():
    codes = torch.tensor([[1.0, 2.0, 0.0], [0.0, 3.0, 4.0]])
    C = coactivation(codes, batch_size=1)  # two batches, summed
    expected = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 6.0], [0.0, 6.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(C, expected)


@pytest.mark.parametrize("grid,width", [((3, 4), 1.0), ((2, 5), 0.7), ((4, 4), 3.0)])
def test_the_swap_gain_equals_the_change_of_the_objective(grid, width):
    n = grid[0] * grid[1]
    C = _symmetric(n, seed=n)
    cell_of = torch.randperm(n, generator=torch.Generator().manual_seed(1))
    h = _neighbourhood(Grid.of(grid), width, torch.float64, "cpu")
    gains = swap_gains(C, h[cell_of][:, cell_of])
    before = pooled_coactivation(C, grid, cell_of, width)
    for u in range(n):
        for v in range(n):
            swapped = cell_of.clone()
            swapped[[u, v]] = swapped[[v, u]]
            assert float(gains[u, v]) == pytest.approx(pooled_coactivation(C, grid, swapped, width) - before, abs=1e-9)


def test_a_known_layout_is_found_up_to_an_isometry():
    # units that fire together exactly when their true cells are grid neighbours, in a scrambled order
    grid = (6, 6)
    n = 36
    truth = _neighbourhood(Grid.of(grid), 1.0, torch.float64, "cpu")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))  # unit i is true feature order[i]
    C = truth[order][:, order]
    cell_of = coactivation_layout(C, grid, widths=(3.0, 1.5, 1.0), restarts=10, seed=0)
    assert sorted(cell_of.tolist()) == list(range(n))  # a permutation: every cell holds one unit
    # unit i sits at cell_of[i]; the true feature order[i] at cell order[i]
    rho = topographic_rank_correlation(grid, grid, (cell_of, order), n_shuffles=0)["rho"]
    assert rho > 0.99
    scrambled = pooled_coactivation(C, grid, torch.arange(n))
    assert pooled_coactivation(C, grid, cell_of) > scrambled
    assert torch.equal(cell_of, coactivation_layout(C, grid, widths=(3.0, 1.5, 1.0), restarts=10, seed=0))  # seeded


def test_the_pursuit_layout_moves_units_and_nothing_else():
    topo = topographic_toy(6000, d=16, grid=(4, 4), seed=0, radius=1.0, mean_l0=2.0)
    X = topo.X
    plain = pursuit_fit_dictionary(X, 16, k=2, lr=1.0, grid=(4, 4))(seed=3)
    laid = pursuit_fit_dictionary(X, 16, k=2, lr=1.0, grid=(4, 4), layout=True, layout_restarts=3)(seed=3)
    # the same rows, in a new order: match each laid-out row to its plain twin
    match = (laid.decoder @ plain.decoder.T).argmax(1)
    assert sorted(match.tolist()) == list(range(16)) and not torch.equal(match, torch.arange(16))  # moved
    torch.testing.assert_close(laid.decoder, plain.decoder[match])
    torch.testing.assert_close(laid.encode(X[:50]), plain.encode(X[:50])[:, match])
    C_plain, C_laid = coactivation(plain.encode(X)), coactivation(laid.encode(X))
    identity = torch.arange(16)
    assert pooled_coactivation(C_laid, (4, 4), identity) >= pooled_coactivation(C_plain, (4, 4), identity)


def test_bad_inputs_name_the_argument():
    C = _symmetric(6, 0)
    with pytest.raises(ValueError, match="expected a square"):
        coactivation_layout(C[:, :5], (2, 3))
    with pytest.raises(ValueError, match="not symmetric"):
        coactivation_layout(C + torch.triu(torch.ones(6, 6, dtype=torch.float64)), (2, 3))
    with pytest.raises(ValueError, match="grid"):
        coactivation_layout(C, (2, 4))
    with pytest.raises(ValueError, match="widths"):
        coactivation_layout(C, (2, 3), widths=())
    with pytest.raises(ValueError, match="widths"):
        coactivation_layout(C, (2, 3), widths=(1.0, -1.0))
    with pytest.raises(ValueError, match="restarts"):
        coactivation_layout(C, (2, 3), restarts=0)
    with pytest.raises(ValueError, match="layout=True: the units need a grid"):
        pursuit_fit_dictionary(torch.randn(20, 4), 6, k=1, lr=1.0, layout=True)
    with pytest.raises(ValueError, match="layout_widths"):
        pursuit_fit_dictionary(torch.randn(20, 4), 6, k=1, lr=1.0, grid=(2, 3), layout=True, layout_widths=())


def _true_dictionary(truth, order):
    """The true features as a dictionary whose unit j is feature order[j]: its code is the true code."""
    from hebb_utils.dictionaries.registry import Dictionary

    def encode(X):
        assert X.shape == truth.X.shape and torch.equal(X, truth.X)   # the test only encodes the truth's samples
        return truth.codes[:, order]

    return Dictionary(decoder=truth.features[order], encode=encode, decode=lambda codes: codes @ truth.features[order],
                      grid=truth.grid)


def test_layout_diagnosis_on_the_true_dictionary():
    """The true features in their true cells: the learned layout *is* the true one (ratio exactly 1), and the
    search on the true codes finds the layout back; scrambled, the true cells score higher (ratio < 1)."""
    from hebb_utils.experiments.dictionaries import layout_diagnosis

    truth = topographic_toy(4000, d=12, grid=(4, 4), seed=3, radius=1.0, mean_l0=2.0)
    exact = layout_diagnosis(_true_dictionary(truth, torch.arange(16)), truth, truth.X, restarts=20, seed=0)
    assert exact["objective_ratio"] == pytest.approx(1.0, abs=1e-12)
    assert exact["mcc"] == pytest.approx(1.0, abs=1e-6)
    assert exact["true_codes_rho"] > 0.95
    scrambled = layout_diagnosis(_true_dictionary(truth, torch.randperm(16, generator=torch.Generator().manual_seed(1))),
                                 truth, truth.X, restarts=20, seed=0)
    assert scrambled["objective_ratio"] < 0.8
    assert scrambled["true_codes_rho"] == exact["true_codes_rho"]   # the truth's search does not see the dictionary


def test_layout_diagnosis_needs_the_true_grid():
    from hebb_utils.experiments.dictionaries import layout_diagnosis

    truth = topographic_toy(500, d=12, grid=(4, 4), seed=3)
    dictionary = _true_dictionary(truth, torch.arange(16))
    dictionary.grid = (2, 8)
    with pytest.raises(ValueError, match="truth.grid"):
        layout_diagnosis(dictionary, truth, truth.X)
    dictionary.grid = None
    with pytest.raises(ValueError, match="grid"):
        layout_diagnosis(dictionary, truth, truth.X)
    dictionary.grid = truth.grid
    with pytest.raises(ValueError, match="widths"):
        layout_diagnosis(dictionary, truth, truth.X, widths=())
