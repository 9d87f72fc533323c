"""The streaming analysis of a trained layer equals the same metrics on the full response matrix."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from hebb_utils import (Lateral, SoftHebbLinear, atomic_path, atomic_replace_dir, calibrate_normalisation,
                        label_selectivity, neuron_summary, softhebb_metrics, token_purity, top_distinct_tokens,
                        topographic_error, train_ablations, train_softhebb, triangle_activation, weight_tiles)
from hebb_utils.report.tables import results_tables, update_readme, write_results


@pytest.fixture(scope="module")
def trained():
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(12, 16, generator=gen) * 3
    X = centres[torch.randint(0, 12, (3000,), generator=gen)] + 0.3 * torch.randn(3000, 16, generator=gen)
    layer = SoftHebbLinear(16, 20, t_invert=5.0, lateral=Lateral((4, 5)), seed=0)
    layer, _ = train_softhebb(layer, X, batch_size=64, lr=0.05, seed=0, progress=False)
    return layer, X


def test_neuron_summary_streams_the_same_as_the_full_matrix(trained):
    layer, X = trained
    u = layer.responses(X)  # (S, N), small here
    summary = neuron_summary(layer, X, top=7, batch_size=333)  # chunks that do not divide S
    assert torch.equal(summary["best2"], u.topk(2, dim=1).indices)
    values, index = u.topk(7, dim=0)
    torch.testing.assert_close(summary["top_values"], values)
    assert torch.equal(summary["top_index"], index)


def test_softhebb_metrics_match_the_dense_metrics(trained):
    layer, X = trained
    u = layer.responses(X)
    labels = torch.arange(len(X)) % 3
    token_ids = torch.arange(len(X)) % 5
    m = softhebb_metrics(layer, X, (4, 5), labels=labels, n_labels=3, token_ids=token_ids, purity_top=10,
                         n_shuffles=10, batch_size=512)
    assert m["topographic_error"] == pytest.approx(topographic_error(u, (4, 5)))
    assert m["topographic_error_4"] == pytest.approx(topographic_error(u, (4, 5), neighbourhood=4))
    assert m["class_purity"] == pytest.approx(label_selectivity(u, labels, 3)["mean_purity"])
    live = torch.bincount(u.argmax(1), minlength=20) > 0
    assert m["token_purity"] == pytest.approx(float(token_purity(u, token_ids, 10)[live].mean()))
    assert 0.0 <= m["dead_fraction"] < 1.0 and 0.0 < m["p_value"] <= 1.0


def test_top_distinct_tokens_skips_repeats_and_marks_spaces():
    tokens = pd.Series([" the", "cat", " the", "dog", "cat", "\n"])
    top_index = torch.tensor([[0, 5], [2, 1], [1, 3], [3, 0]])  # (top, N=2)
    assert top_distinct_tokens(top_index, tokens, k=3) == [["\u00b7the", "cat", "dog"], ["\\n", "cat", "dog"]]
    assert top_distinct_tokens(top_index, list(tokens), k=2) == [["\u00b7the", "cat"], ["\\n", "cat"]]


def test_triangle_activation_by_hand():
    u = torch.tensor([[1.0, 2.0, 6.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(triangle_activation(u), torch.tensor([[0.0, 0.0, 3.0], [0.0, 0.0, 0.0]]))


def test_calibrate_normalisation_uses_exact_statistics():
    X = torch.randn(500, 8) * torch.arange(1, 9) + 3
    layer = calibrate_normalisation(SoftHebbLinear(8, 4, t_invert=1.0, seed=0), X)
    z = layer.bn(X)
    torch.testing.assert_close(z.mean(0), torch.zeros(8), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.var(0), torch.ones(8), atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="expected \\(samples, 8\\)"):
        calibrate_normalisation(layer, X[:, :3])


def test_weight_tiles_places_neuron_j_at_row_j_div_cols():
    W = torch.zeros(6, 3 * 2 * 2)
    W[4, 0] = 1.0  # neuron 4: row 1, column 1 of a 2 x 3 grid; red pixel (0, 0)
    mosaic = weight_tiles(W, (2, 3), image_shape=(3, 2, 2), pad=1)
    assert mosaic.shape == (2 * 3 + 1, 3 * 3 + 1, 3)
    y0, x0 = 1 + 1 * 3, 1 + 1 * 3
    assert mosaic[y0, x0, 0] == 1.0 and mosaic[y0, x0, 1] == 0.0
    with pytest.raises(ValueError, match="grid"):
        weight_tiles(W, (2, 2), image_shape=(3, 2, 2))


def test_atomic_writes_leave_nothing_behind_on_failure(tmp_path):
    target = tmp_path / "a.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash while writing")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    folder = tmp_path / "acts"
    with atomic_replace_dir(folder) as tmp:
        (tmp / "x").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_replace_dir(folder) as tmp:
            (tmp / "x").write_text("2")
            raise RuntimeError("crash")
    assert (folder / "x").read_text() == "1" and sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "acts"]


def test_readme_table_is_generated_from_the_results(tmp_path):
    from hebb_utils import summarise_seeds

    runs = {"lateral support": summarise_seeds([{"seed": 1, "topographic_error": 0.1}, {"seed": 2, "topographic_error": 0.2}])}
    config = {"lr": 0.08, "rows": 3, "cols": 7, "seeds": [1, 2]}
    write_results(tmp_path / "04_cifar_softhebb.json", "04_cifar_softhebb", config,
                  {"columns": ["topographic_error"], "runs": runs}, source={"label": "test data"})
    assert json.loads((tmp_path / "04_cifar_softhebb.json").read_text())["config"] == config
    lo, hi = runs["lateral support"]["ci95"]["topographic_error"]
    row = f"| lateral support | 0.150<br>[{lo:.3f}, {hi:.3f}] |"
    tables = results_tables(tmp_path)
    assert row in tables and "CIFAR-10 SoftHebb, 3 x 7 grid**, one epoch" in tables and ", over 2 seeds:" in tables
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- headline:start -->\n<!-- headline:end -->\n<!-- results:start -->\nold\n"
                      "<!-- results:end -->\nend\n")
    update_readme(tmp_path, readme)
    text = readme.read_text()
    assert "old" not in text and row in text and text.endswith("end\n")
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        update_readme(tmp_path, readme)


def test_train_ablations_share_start_and_batches(tmp_path):
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(300, 8, generator=gen)
    layers, snapshots, seconds = train_ablations(X, (2, 3), 5.0, lr=0.05, seed=3, snapshot_every=2,
                                                 checkpoint_dir=tmp_path, checkpoint_prefix="t_",
                                                 checkpoint_meta={"note": "x"})
    assert list(layers) == ["lateral support", "no lateral support", "legacy batch winner", "random weights"]
    assert set(seconds) == set(layers) - {"random weights"}
    start = SoftHebbLinear(8, 6, 5.0, seed=3).weight
    torch.testing.assert_close(snapshots[0], start)
    torch.testing.assert_close(layers["random weights"].weight, start)
    # the same run as train_softhebb on its own: same seed, same batches, same weights
    alone, _ = train_softhebb(SoftHebbLinear(8, 6, 5.0, lateral=Lateral((2, 3)), seed=3), X, lr=0.05, seed=3,
                              progress=False)
    assert torch.equal(layers["lateral support"].weight, alone.weight)
    assert layers["legacy batch winner"].legacy_batch_winner and layers["no lateral support"].lateral is None
    saved = torch.load(tmp_path / "t_no_lateral_support.pt")
    assert saved["variant"] == "no lateral support" and saved["note"] == "x"
    # the one checkpoint format: it rebuilds the layer, with how it was trained
    from hebb_utils.rules.checkpoint import load_checkpoint

    loaded, saved = load_checkpoint(tmp_path / "t_lateral_support.pt")
    assert torch.equal(loaded.weight, layers["lateral support"].weight) and loaded.lateral is not None
    assert {k: saved["config"][k] for k in ("lr", "epochs", "batch_size", "seed")} == {"lr": 0.05, "epochs": 1,
                                                                                     "batch_size": 64, "seed": 3}
    with pytest.raises(ValueError, match="notebook_config"):  # the format's own entries are not overwritten
        train_ablations(X, (2, 3), 5.0, lr=0.05, seed=3, checkpoint_dir=tmp_path, checkpoint_meta={"config": {}})


def test_activations_source_labels_the_stand_in():
    from hebb_utils import Activations, activations_source

    meta = {"model": {"name": "SmolLM2-135M-Instruct", "format": "Q4_1 GGUF, de-quantised", "offline_stand_in": True,
                      "stands_in_for": "roneneldan/TinyStories-1M"}, "counts": {"n_stories": 3}}
    data = Activations(acts=np.zeros((5, 4), np.float32), tokens=pd.DataFrame(), meta=meta)
    assert activations_source(data)["label"] == ("OFFLINE STAND-IN SmolLM2-135M-Instruct (Q4_1 GGUF, de-quantised), "
                                                 "not TinyStories-1M, 5 tokens x 4 from 3 TinyStories stories")
    meta["model"] = {"name": "roneneldan/TinyStories-1M", "offline_stand_in": False}
    assert activations_source(data)["label"] == "roneneldan/TinyStories-1M, 5 tokens x 4 from 3 TinyStories stories"


# ----------------------------------------------------------------------------------------------
# issue 9: the shared grid and the audited defects


def test_softhebb_metrics_refuses_a_grid_other_than_the_layers(trained):
    layer, X = trained
    with pytest.raises(ValueError, match=r"grid=\(5, 4\) is not the layer's lateral grid \(4, 5\)"):
        softhebb_metrics(layer, X[:200], (5, 4), n_shuffles=2)
    with pytest.raises(ValueError, match="grid=.* has 21 neurons"):
        softhebb_metrics(layer, X[:200], (3, 7), n_shuffles=2)
    default = softhebb_metrics(layer, X[:200], n_shuffles=2)  # grid=None: the layer's
    assert default == softhebb_metrics(layer, X[:200], (np.int64(4), 5), n_shuffles=2)
    plain = SoftHebbLinear(16, 20, t_invert=5.0, seed=0).eval()
    with pytest.raises(ValueError, match="no lateral support"):
        softhebb_metrics(plain, X[:200], n_shuffles=2)
    assert 0 <= softhebb_metrics(plain, X[:200], (4, 5), n_shuffles=2)["topographic_error"] <= 1


def test_neuron_summary_on_a_one_neuron_layer():
    layer = SoftHebbLinear(4, 1, 5.0, seed=0).eval()
    summary = neuron_summary(layer, torch.randn(30, 4), top=5, batch_size=np.int64(7))
    assert summary["best2"].shape == (30, 1) and (summary["best2"] == 0).all()
    assert summary["top_index"].shape == (5, 1)


def test_analysis_refuses_bad_inputs_clearly(trained):
    layer, X = trained
    cases = [
        (lambda: neuron_summary(layer, X, top=0), "top"),
        (lambda: neuron_summary(layer, X, batch_size=0), "batch_size"),
        (lambda: neuron_summary(layer, X[:, :5]), "in_features"),
        (lambda: neuron_summary("layer", X), "SoftHebbLinear"),
        (lambda: calibrate_normalisation(layer, torch.full((4, 16), float("nan"))), "NaN"),
        (lambda: triangle_activation(torch.randn(4)), "2 dimensions"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()
    # float64 data (numpy's default) into the float32 layer is converted
    assert neuron_summary(layer, X[:50].double().numpy(), top=3)["best2"].shape == (50, 2)


def test_plots_take_the_shared_grid():
    from hebb_utils.checks import Grid
    from hebb_utils.report.plots import busiest_window

    W = torch.randn(6, 3 * 2 * 2)
    assert np.array_equal(weight_tiles(W, Grid(2, 3), (3, 2, 2)), weight_tiles(W, (2, 3), (3, 2, 2)))
    assert busiest_window(np.arange(6), Grid(2, 3), (1, 2)) == (1, 1, 1, 2)
    with pytest.raises(ValueError, match="grid"):
        busiest_window(np.arange(7), (2, 3), (1, 2))
