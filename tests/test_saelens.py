"""SAELens beside the Hebbian dictionary (hebb_utils.dictionaries.saelens): a SoftHebb layer exported as
an SAELens TopK SAE encodes and decodes as the layer does; SAELens' SAETrainer trains here without
wandb, the same for one seed; any SAELens SAE is drawn by the map tools. Small shapes, CPU, offline."""
import json

import numpy as np
import pytest
import torch

pytest.importorskip("sae_lens")

from sae_lens import SAE  # noqa: E402

from hebb_utils import Lateral, SoftHebbLinear, train_softhebb  # noqa: E402
from hebb_utils.dictionaries.saelens import (SAE_FILES, SAEMapLayer, as_map_layer, decode, encode,  # noqa: E402
                                             export_saelens, train_sae)


@pytest.fixture(scope="module")
def data():
    """400 rows of 6 features with unequal means and scales (so BatchNorm's mu and sigma matter)."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(400, 6, generator=g) * torch.tensor([1.0, 2.0, 0.5, 3.0, 1.0, 0.2]) + \
        torch.tensor([0.0, 1.0, -2.0, 0.0, 5.0, 0.0])


@pytest.fixture(scope="module")
def layer(data):
    layer = SoftHebbLinear(6, 12, 20.0, lateral=Lateral((3, 4)), seed=0)
    train_softhebb(layer, data, lr=0.05, seed=0, progress=False, backend="torch")
    return layer


@pytest.fixture
def no_wandb(monkeypatch):
    """Any wandb run, log or artifact fails the test."""
    import wandb

    def refuse(*args, **kwargs):
        raise AssertionError("wandb was called")

    for name in ("init", "log", "log_artifact"):
        monkeypatch.setattr(wandb, name, refuse)


# -----------------------------------------------------------------------------
# export: a SoftHebb layer as an SAELens TopK SAE


def test_export_loads_in_saelens_and_encodes_and_decodes_as_ours(layer, data, tmp_path):
    folder = export_saelens(layer, tmp_path / "sae", k=2)
    assert sorted(p.name for p in folder.iterdir()) == sorted(SAE_FILES)
    from sae_lens.constants import SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME

    assert SAE_FILES == (SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME)
    sae = SAE.load_from_disk(folder)
    assert type(sae).__name__ == "TopKSAE"
    assert (sae.cfg.d_in, sae.cfg.d_sae, sae.cfg.k) == (6, 12, 2)
    assert not sae.cfg.rescale_acts_by_decoder_norm and sae.cfg.normalize_activations == "none"
    assert sae.cfg.metadata.hebb_utils_source["grid"] == [3, 4]
    assert json.loads((folder / "cfg.json").read_text())["metadata"]["sae_lens_version"]
    assert (tuple(sae.W_enc.shape), tuple(sae.b_enc.shape), tuple(sae.W_dec.shape), tuple(sae.b_dec.shape)) == \
        ((6, 12), (12,), (12, 6), (6,))

    with torch.no_grad():
        codes = encode(layer, data, k=2)  # (400, 12)
        torch.testing.assert_close(sae.encode(data), codes, rtol=1e-5, atol=1e-5)
        assert ((codes != 0).sum(1) <= 2).all() and (codes >= 0).all()
        torch.testing.assert_close(sae.decode(codes), decode(layer, codes), rtol=1e-6, atol=1e-6)
        # the pre-activations are the layer's responses
        torch.testing.assert_close(as_map_layer(sae, (3, 4)).responses(data), layer.responses(data),
                                   rtol=1e-5, atol=1e-5)


def test_a_sample_along_the_winner_is_reconstructed(layer):
    """x = mu + sigma * a * w_j / |w_j| with j the largest-norm neuron (it always wins on its own
    direction): u_j = a |w_j| and decode(encode(x)) = x."""
    W = layer.weight
    j = int(W.norm(dim=1).argmax())
    mu, sigma = layer.bn.running_mean, torch.sqrt(layer.bn.running_var + layer.bn.eps)
    x = (mu + sigma * 2.5 * W[j] / W[j].norm())[None]  # (1, D)
    codes = encode(layer, x, k=1)
    assert codes.nonzero().tolist() == [[0, j]]
    torch.testing.assert_close(codes[0, j], 2.5 * W[j].norm(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(decode(layer, codes), x, rtol=1e-5, atol=1e-5)


def test_export_replaces_an_sae_folder_but_refuses_other_files(layer, tmp_path):
    export_saelens(layer, tmp_path / "sae", k=1)
    export_saelens(layer, tmp_path / "sae", k=3)  # an SAE's own folder is replaced whole
    assert json.loads((tmp_path / "sae" / "cfg.json").read_text())["k"] == 3
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="folder=.*notes.txt.*new or empty folder"):
        export_saelens(layer, tmp_path / "mixed")
    assert (tmp_path / "mixed" / "notes.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="k=13: expected at most out_features=12"):
        export_saelens(layer, tmp_path / "sae2", k=13)
    with pytest.raises(ValueError, match="layer: expected a trained SoftHebbLinear"):
        export_saelens(torch.nn.Linear(6, 12), tmp_path / "sae3")


# -----------------------------------------------------------------------------
# train_sae: SAELens' SAETrainer on X in memory


INFERENCE_CLASS = {"topk": "TopKSAE", "standard": "StandardSAE", "batchtopk": "JumpReLUSAE",  # SAELens' own choice
                   "jumprelu": "JumpReLUSAE", "matching_pursuit": "MatchingPursuitSAE"}


@pytest.mark.parametrize("settings", [dict(architecture="topk", k=1), dict(architecture="standard", l1_coefficient=0.5),
                                      dict(architecture="batchtopk", k=2), dict(architecture="jumprelu", l0_coefficient=0.1),
                                      dict(architecture="matching_pursuit", k=2)],
                         ids=["topk", "standard", "batchtopk", "jumprelu", "matching_pursuit"])
def test_train_sae_learns_is_seeded_and_never_calls_wandb(settings, data, no_wandb, quiet_bars):
    X = 0.01 * (data - data.mean(0)) / data.std(0)  # small-norm inputs: the scale is estimated, then folded
    rng = torch.get_rng_state()

    def run(seed):
        return train_sae(X, 12, **settings, batch_size=50, training_samples=4000, lr=3e-3, seed=seed)

    sae, info = run(0)
    again, _ = run(0)
    other, _ = run(1)
    assert torch.equal(torch.get_rng_state(), rng), "train_sae leaves the caller's random state alone"
    names = list(sae.state_dict())  # a matching-pursuit SAE is tied: W_dec and b_dec only
    assert "W_dec" in names and all(torch.equal(getattr(sae, n), getattr(again, n)) for n in names)
    assert not torch.equal(sae.W_dec, other.W_dec)

    assert type(sae).__name__ == INFERENCE_CLASS[settings["architecture"]]
    assert sae.cfg.normalize_activations == "none"  # folded: the SAE reads raw X
    assert info["steps"] == 80 and info["training_samples"] == 4000 and len(info["losses"]["mse_loss"]) == 80
    assert info["losses"]["mse_loss"][-1] < info["losses"]["mse_loss"][0]
    assert 0 < info["seconds"] < 60 and 0 < info["fvu"] < 1
    if settings["architecture"] in ("topk", "matching_pursuit"):
        assert info["l0"] <= settings["k"]
    with torch.no_grad():
        torch.testing.assert_close(float(((sae(X) - X) ** 2).mean()), info["mse"], rtol=1e-4, atol=1e-7)
    json.dumps(info)


@pytest.mark.parametrize("normalize", ["expected_average_only_in", "none"])
def test_b_dec_starts_at_the_data_mean_and_the_dead_window_reaches_the_trainer(data, normalize, no_wandb, quiet_bars):
    # a constant part far larger than the rest: the case b_dec_init="mean" is for
    X = data + 50.0 * torch.linspace(1, 2, data.shape[1])
    # lr so small that the weights barely move: the folded b_dec is then the start, read in raw units
    sae, info = train_sae(X, 12, k=2, batch_size=50, training_samples=100, lr=1e-9, normalize_activations=normalize,
                          b_dec_init="mean", dead_feature_window=7)
    torch.testing.assert_close(sae.b_dec.double(), X.double().mean(0), rtol=2e-3, atol=1e-3)
    zeros, _ = train_sae(X, 12, k=2, batch_size=50, training_samples=100, lr=1e-9, normalize_activations=normalize)
    assert float(zeros.b_dec.detach().abs().max()) < 1e-3  # SAELens' own start
    assert info["config"]["b_dec_init"] == "mean" and info["config"]["dead_feature_window"] == 7


def test_train_sae_refuses_bad_settings(data):
    with pytest.raises(ValueError, match="k=None: architecture='topk' needs k"):
        train_sae(data, 12)
    with pytest.raises(ValueError, match="k: only architecture 'batchtopk' / 'matching_pursuit' / 'topk' reads it"):
        train_sae(data, 12, architecture="standard", k=1, l1_coefficient=1.0)
    with pytest.raises(ValueError, match="l0_coefficient=None: architecture='jumprelu' needs l0_coefficient"):
        train_sae(data, 12, architecture="jumprelu")
    with pytest.raises(ValueError, match="l1_coefficient: only architecture 'standard' reads it"):
        train_sae(data, 12, architecture="jumprelu", l0_coefficient=1.0, l1_coefficient=1.0)
    with pytest.raises(ValueError, match="covariance_whitening.*matching-pursuit"):
        train_sae(data, 12, architecture="matching_pursuit", k=1, batch_size=50,
                  normalize_activations="covariance_whitening")
    with pytest.raises(ValueError, match="l1_coefficient=None"):
        train_sae(data, 12, architecture="standard")
    with pytest.raises(ValueError, match="batch_size=4096: X has only 400 rows"):
        train_sae(data, 12, k=1)
    with pytest.raises(ValueError, match="architecture='gated'"):
        train_sae(data, 12, architecture="gated")
    with pytest.raises(ValueError, match="normalize_activations='layer_norm'"):
        train_sae(data, 12, k=1, batch_size=50, normalize_activations="layer_norm")
    with pytest.raises(ValueError, match="b_dec_init='median': expected 'zeros'"):
        train_sae(data, 12, k=1, batch_size=50, b_dec_init="median")
    with pytest.raises(ValueError, match="b_dec_init='mean' with normalize_activations='covariance_whitening'"):
        train_sae(data, 12, k=1, batch_size=50, b_dec_init="mean", normalize_activations="covariance_whitening")
    with pytest.raises(ValueError, match="dead_feature_window"):
        train_sae(data, 12, k=1, batch_size=50, dead_feature_window=0)


# -----------------------------------------------------------------------------
# any SAELens SAE on the map


def _standard_sae(d_in: int = 6, d_sae: int = 12) -> SAE:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        sae = SAE.from_dict({"architecture": "standard", "d_in": d_in, "d_sae": d_sae, "dtype": "float32",
                             "device": "cpu", "apply_b_dec_to_input": True, "normalize_activations": "none",
                             "metadata": {"sae_lens_version": "6.54.12"}})
        with torch.no_grad():
            sae.b_enc.normal_()
            sae.b_dec.normal_()
    return sae.eval()


def test_as_map_layer_responds_with_the_pre_activations(data):
    sae = _standard_sae()
    mapped = as_map_layer(sae, (3, 4))
    assert isinstance(mapped, SAEMapLayer) and mapped.lateral.grid.shape == (3, 4)
    assert (mapped.in_features, mapped.out_features) == (6, 12)
    assert torch.equal(mapped.weight, sae.W_dec.detach())
    with torch.no_grad():
        hidden_pre = (data - sae.b_dec) @ sae.W_enc + sae.b_enc  # (400, 12)
    torch.testing.assert_close(mapped.responses(data), hidden_pre, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="does not learn"):
        mapped.hebbian_step(data[:10], lr=0.1)


def test_as_map_layer_refuses_a_grid_of_another_size_and_non_saes():
    with pytest.raises(ValueError, match=r"grid=\(3, 5\) has 15 neurons but there are 12 latents.*rows \* cols = 12"):
        as_map_layer(_standard_sae(), (3, 5))
    with pytest.raises(ValueError, match="sae: expected an SAELens SAE"):
        as_map_layer(torch.nn.Linear(6, 12), (3, 4))


def test_the_map_tools_draw_an_sae(data, tmp_path):
    """write_token_map takes the mapped SAE as it takes a SoftHebb layer: all five files, the metrics."""
    import pandas as pd

    from hebb_utils.data.store import Activations
    from hebb_utils.report.lm_map import map_files, write_token_map

    n = 120
    tokens = pd.DataFrame({"row": np.arange(n), "token_id": np.arange(n) % 17,
                           "token": [f"t{i % 17}" for i in range(n)],
                           "story_id": np.arange(n) // 40, "position": np.arange(n) % 40})
    acts = Activations(acts=data[:n].numpy(), tokens=tokens, meta={"data_source": "test"})
    metrics = write_token_map(as_map_layer(_standard_sae(), (3, 4)), acts, tmp_path, n_shuffles=2, purity_top=5,
                              crop=(2, 2))
    assert all(p.is_file() for p in map_files(tmp_path))
    assert 0 <= metrics["topographic_error"] <= 1


def test_export_and_the_map_refuse_non_finite_dictionaries_and_impossible_folders(layer, tmp_path, monkeypatch):
    """Issue 26: NaN weights or a BatchNorm variance of inf were exported without a word (the loaded SAE
    encoded NaN); as_map_layer on a NaN W_enc returned NaN responses; k > d_sae in cfg.json loaded, then
    failed deep in torch; export_saelens(layer, "") gave OSError [Errno 16]."""
    import copy

    broken = copy.deepcopy(layer)
    with torch.no_grad():
        broken.weight[3, 1] = float("nan")
    with pytest.raises(ValueError, match=r"layer: layer.weight holds 1 NaN or inf value"):
        export_saelens(broken, tmp_path / "nan")
    broken = copy.deepcopy(layer)
    broken.bn.running_var[0] = float("inf")
    with pytest.raises(ValueError, match=r"layer: layer.bn.running_var holds 1 NaN or inf"):
        export_saelens(broken, tmp_path / "inf")
    assert not (tmp_path / "nan").exists() and not (tmp_path / "inf").exists()
    for empty in ("", "  "):
        with pytest.raises(ValueError, match="expected the path of a new or empty folder"):
            export_saelens(layer, empty)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="is the current folder"):
        export_saelens(layer, ".")

    sae = SAE.load_from_disk(export_saelens(layer, tmp_path / "sae", k=2))
    with torch.no_grad():
        sae.W_enc[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"sae: its W_enc holds 1 NaN or inf"):
        as_map_layer(sae, (3, 4))
    cfg = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    (tmp_path / "sae" / "cfg.json").write_text(json.dumps({**cfg, "k": 99}))
    with pytest.raises(ValueError, match=r"k=99 for d_sae=12 latents"):
        as_map_layer(SAE.load_from_disk(tmp_path / "sae"), (3, 4))


@pytest.mark.parametrize("threshold", [0.0, 0.8])
def test_the_pursuit_rule_exports_as_saelens_matching_pursuit_and_encodes_the_same(tmp_path, threshold):
    """SAELens' MatchingPursuitSAE, loaded from the export, codes inputs as the layer does (its encoder
    works on the residual, ours through the Gram matrix: equal to float64 rounding), and decodes a @ W."""
    from hebb_utils.dictionaries.saelens import export_saelens, load_saelens
    from hebb_utils.rules.pursuit import PursuitLinear

    g = torch.Generator().manual_seed(0)
    layer = PursuitLinear(8, 12, k=4, residual_threshold=threshold, grid=(3, 4), offset=True, seed=1,
                          dtype=torch.float64)
    for _ in range(5):
        layer.train_step(torch.randn(32, 8, generator=g, dtype=torch.float64) + 2.0, lr=0.5)
    assert float(layer.bias.norm()) > 1  # the offset is learned, and exported as b_dec
    folder = export_saelens(layer, tmp_path / "mp")
    sae = load_saelens(folder)
    assert type(sae).__name__ == "MatchingPursuitSAE" and sae.cfg.max_iterations == 4
    X = torch.randn(50, 8, generator=g, dtype=torch.float64) + 2.0
    codes = layer(X)
    torch.testing.assert_close(sae.encode(X), codes, rtol=0, atol=1e-10)
    assert (codes > 0).sum(1).max() <= 4 and (codes > 0).sum(1).float().mean() > 1  # several units per input
    torch.testing.assert_close(sae.decode(codes), layer.decode(codes), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="k=13: expected at most out_features=12"):
        export_saelens(layer, tmp_path / "mp2", k=13)
