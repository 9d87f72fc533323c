"""Each idea has one home: the published settings, the lateral shapes' registry (the kernels' codes, the
command line's choices), and the one checkpoint format (writer, reader, finiteness check)."""
import pytest
import torch

from hebb_utils import settings
from hebb_utils.cli import build_parser
from hebb_utils.kernels import support as kernel
from hebb_utils.rules.checkpoint import FORMAT, layer_config, load_checkpoint, save_checkpoint
from hebb_utils.rules.lateral import NEIGHBOURHOODS, Lateral, LateralSchedule
from hebb_utils.rules.layer import SoftHebbLinear
from hebb_utils.rules.softhebb import check_lr, check_t_invert, post_synaptic_sums


# -----------------------------------------------------------------------------
# the published settings


def test_published_settings_are_the_papers_and_feed_the_hints_and_defaults():
    assert settings.CIFAR10.t_invert == 300.0 and settings.CIFAR10.lr == 0.08
    assert settings.LM_TOKENS.t_invert == 100.0 and settings.LM_TOKENS.lr == 0.2
    assert settings.published_hint("lr") == "published: 0.08 for CIFAR-10, 0.2 for LM tokens"
    assert settings.published_hint("gain") == "published: 0.3"
    with pytest.raises(ValueError, match="lr.*published: 0.08 for CIFAR-10, 0.2 for LM tokens"):
        check_lr(-1)
    with pytest.raises(ValueError, match="t_invert.*published: 300 for CIFAR-10, 100 for LM tokens"):
        check_t_invert(0)
    train = build_parser().parse_args(["train", "--activations", "a", "--grid", "2x3", "--out", "o.pt"])
    assert (train.t_invert, train.lr, train.radius, train.gain, train.batch_size, train.seed) == (
        100.0, 0.2, 1.0, 0.3, 64, 42)  # the LM run's, from settings.LM_TOKENS


# -----------------------------------------------------------------------------
# the lateral shapes, registered once


def test_each_shape_is_registered_with_its_kernel_code_and_is_the_command_lines_choice():
    codes = {name: n.kernel_code for name, n in NEIGHBOURHOODS.items()}
    assert codes == {"disc": kernel.DISC, "gaussian": kernel.GAUSSIAN}
    shape = next(a for a in build_parser()._subparsers._group_actions[0].choices["train"]._actions
                 if a.dest == "shape")
    assert tuple(shape.choices) == tuple(NEIGHBOURHOODS)


def test_a_support_describes_itself_to_the_kernels():
    # hand-computed: radius 1.5 on a 3 x 4 grid reaches 1.5^2 + 1e-6; a radius past rows + cols is cut there
    assert Lateral((3, 4), 1.5, 0.3).kernel_support() == (kernel.DISC, 2.25 + 1e-6, 0, 4, 0.3)
    assert Lateral((3, 4), 1e300, 0.5).kernel_support() == (kernel.DISC, 49.0 + 1e-6, 0, 4, 0.5)
    assert Lateral((3, 4), 2.0, 0.3, "gaussian").kernel_support() == (kernel.GAUSSIAN, -1 / 8, 0, 4, 0.3)
    assert Lateral((12,), 2.7, 0.3).kernel_support() == (kernel.ONE_D, 0.0, 2, 1, 0.3)


@pytest.mark.parametrize("lateral", [Lateral((3, 4), 1.5, 0.3), Lateral((3, 4), 2.0, 0.7, "gaussian"),
                                     Lateral((12,), 2.0, 0.3)], ids=["disc", "gaussian", "1d"])
def test_the_reference_lateral_term_is_gain_times_the_neighbourhood_times_the_winner(lateral):
    u = torch.randn(5, 12, generator=torch.Generator().manual_seed(0))
    y0, _ = post_synaptic_sums(u, 5.0, None, False)
    y, _ = post_synaptic_sums(u, 5.0, lateral, False)
    winners = u.argmax(1)
    expected = y0 + lateral.gain * lateral.weights(winners) * y0.gather(1, winners[:, None])
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-7)


# -----------------------------------------------------------------------------
# one checkpoint format


@pytest.mark.parametrize("lateral", [None, Lateral((2, 3), 1.0, 0.3),
                                     LateralSchedule((2, 3), radius=(2.0, 1.0), gain=(1.0, 0.3), decay="linear")],
                         ids=["none", "fixed", "schedule"])
def test_a_checkpoint_rebuilds_the_layer_it_saved(tmp_path, lateral):
    layer = SoftHebbLinear(4, 6, 50.0, lateral=lateral, seed=3, legacy_batch_winner=lateral is not None)
    layer.weight.mul_(2.0)  # not the seed's initial weights: the reader must load the state, not re-draw it
    path = save_checkpoint(tmp_path / "l.pt", layer, {"lr": 0.1, "epochs": 2}, variant="v")
    again, saved = load_checkpoint(path)
    assert saved["format"] == FORMAT and saved["variant"] == "v" and saved["config"]["lr"] == 0.1
    assert saved["published"]["CIFAR-10"]["lr"] == 0.08  # the published settings travel with every checkpoint
    assert torch.equal(again.weight, layer.weight) and again.legacy_batch_winner == layer.legacy_batch_winner
    assert again.lateral == lateral and layer_config(again) == layer_config(layer)


def test_a_diverged_layer_is_not_written_and_an_edited_file_not_read(tmp_path):
    layer = SoftHebbLinear(4, 6, 50.0, seed=0)
    layer.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"l\.pt: nothing written: the layer's weight holds NaN"):
        save_checkpoint(tmp_path / "l.pt", layer)
    assert list(tmp_path.iterdir()) == []  # not even a temporary file
    layer.weight[0, 0] = 0.0
    path = save_checkpoint(tmp_path / "l.pt", layer)
    saved = torch.load(path, weights_only=True)
    torch.save({**saved, "format": "hebb_utils.checkpoint/0"}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match=r"old\.pt.*format is 'hebb_utils.checkpoint/0'"):
        load_checkpoint(tmp_path / "old.pt")
    saved["state_dict"]["weight"][1, 1] = float("inf")
    torch.save(saved, tmp_path / "edited.pt")
    with pytest.raises(ValueError, match=r"edited\.pt: the checkpoint's weight holds NaN or inf"):
        load_checkpoint(tmp_path / "edited.pt")


# -----------------------------------------------------------------------------
# the dictionary methods' registry


def test_the_registry_names_one_fit_per_method_and_the_command_line_lists_it(capsys):
    from hebb_utils.cli import main
    from hebb_utils.dictionaries import registry

    assert registry.method("minisom").fit is registry.minisom_fit_dictionary
    assert registry.method("softhebb").export.__name__ == "export_saelens"
    with pytest.raises(ValueError, match=r"method 'kohonen': expected one of \['hebbian ica', 'minisom', 'pursuit', 'sae', "):
        registry.method("kohonen")
    assert main(["methods"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("  ")[0].strip() for line in lines] == list(registry.METHODS)


def test_a_checkpoint_of_the_pursuit_rule_rebuilds_it(tmp_path):
    from hebb_utils.rules.pursuit import PursuitLinear

    layer = PursuitLinear(5, 6, k=2, residual_threshold=0.1, grid=(2, 3), h0=4.0, seed=7)
    layer.train_step(torch.randn(8, 5, generator=torch.Generator().manual_seed(0)), lr=0.5)
    again, saved = load_checkpoint(save_checkpoint(tmp_path / "p.pt", layer, {"lr": 0.5}))
    assert isinstance(again, PursuitLinear) and saved["config"]["rule"] == "pursuit"
    assert (again.k, again.residual_threshold, again.grid.shape, again.h0) == (2, 0.1, (2, 3), 4.0)
    assert torch.equal(again.weight, layer.weight) and torch.equal(again.usage, layer.usage)
    saved["config"]["rule"] = "sparse coding"
    torch.save(saved, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"other\.pt.*rule 'sparse coding'.*\['pursuit', 'softhebb'\]"):
        load_checkpoint(tmp_path / "other.pt")
