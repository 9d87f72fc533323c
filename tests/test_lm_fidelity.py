"""The loss recovered (experiments/lm_fidelity.py) against the model's own forward: on tiny random Llama
and GPT-Neo models (no download), the spliced clean loss equals the full forward's, a patched loss equals
a full forward whose block output is replaced by a hook, and a perfect reconstruction recovers 1."""
import pytest
import torch

from hebb_utils.dictionaries.registry import Dictionary
from hebb_utils.experiments.lm_fidelity import SplicedModel, loss_recovered

transformers = pytest.importorskip("transformers")

TEXTS = ["hello there", "a much longer story with many words in it", "hi you"]


class CharTokenizer:
    """One token per character; 1 is BOS, 0 pads."""
    pad_token_id, eos_token_id, bos_token_id = 0, 0, 1

    def __call__(self, texts, **kwargs):
        return {"input_ids": [[2 + ord(c) % 60 for c in t] for t in texts]}


def _models():
    torch.manual_seed(0)
    llama = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, bos_token_id=1, eos_token_id=0, pad_token_id=0))
    neo = transformers.GPTNeoForCausalLM(transformers.GPTNeoConfig(
        vocab_size=64, hidden_size=32, num_layers=4, num_heads=4, attention_types=[[["global", "local"], 2]],
        max_position_embeddings=128, bos_token_id=1, eos_token_id=0))
    return {"llama": llama.eval(), "gpt-neo": neo.eval()}


def _full_loss(model, layer, replace=None):
    """Each story alone (no padding), the whole model; replace(h, real) -> h at block `layer`'s output."""
    from hebb_utils.data.extract import block_modules

    block = block_modules(model, model.config.num_hidden_layers)[layer]
    total, count = 0.0, 0
    for text in TEXTS:
        ids = torch.tensor([[1] + [2 + ord(c) % 60 for c in text]])
        real = torch.ones_like(ids, dtype=torch.bool)
        real[0, 0] = False

        def hook(module, args, output):
            h = output if isinstance(output, torch.Tensor) else output[0]
            h = replace(h.clone(), real)
            return h if isinstance(output, torch.Tensor) else (h, *output[1:])

        handle = block.register_forward_hook(hook) if replace else None
        try:
            with torch.no_grad():
                logits = model(input_ids=ids, use_cache=False).logits[0, :-1]
        finally:
            if handle:
                handle.remove()
        total += float(torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum"))
        count += ids.shape[1] - 1
    return total / count


@pytest.mark.parametrize("name", ["llama", "gpt-neo"])
@pytest.mark.parametrize("layer", [1, 3])
def test_the_spliced_losses_equal_the_full_forward(name, layer):
    model = _models()[name]
    spliced = SplicedModel(model, CharTokenizer(), TEXTS, layer=layer, batch_size=2)  # padding in a batch
    assert spliced.rows.shape == (sum(len(t) for t in TEXTS), 32)
    assert spliced.clean_loss == pytest.approx(_full_loss(model, layer), rel=1e-5)
    zero = _full_loss(model, layer, lambda h, real: h.masked_fill(real[..., None], 0.0))
    assert spliced.loss_with(torch.zeros_like(spliced.rows)) == pytest.approx(zero, rel=1e-5)
    assert spliced.zero_ablation_loss == pytest.approx(zero, rel=1e-5)
    doubled = _full_loss(model, layer, lambda h, real: torch.where(real[..., None], 2 * h, h))
    assert spliced.loss_with(2 * spliced.rows) == pytest.approx(doubled, rel=1e-5)


def test_a_perfect_reconstruction_recovers_all_of_the_loss_and_nothing_recovers_none():
    model = _models()["llama"]
    spliced = SplicedModel(model, CharTokenizer(), TEXTS, layer=2)
    identity = Dictionary(decoder=torch.eye(32), encode=lambda x: x, decode=lambda c: c)
    nothing = Dictionary(decoder=torch.eye(32), encode=lambda x: 0 * x, decode=lambda c: c)
    out = loss_recovered(spliced, identity)
    assert out["loss"] == pytest.approx(out["clean_loss"]) and out["loss_recovered"] == pytest.approx(1.0)
    assert out["loss_recovered_mean"] == pytest.approx(1.0)
    assert loss_recovered(spliced, nothing)["loss_recovered"] == pytest.approx(0.0, abs=1e-9)


def test_bad_inputs_name_the_argument():
    model = _models()["llama"]
    with pytest.raises(ValueError, match="layer=4: expected a block index in \\[0, 3\\]"):
        SplicedModel(model, CharTokenizer(), TEXTS, layer=4)
    with pytest.raises(ValueError, match="texts"):
        SplicedModel(model, CharTokenizer(), [], layer=1)
    spliced = SplicedModel(model, CharTokenizer(), TEXTS, layer=1)
    with pytest.raises(ValueError, match="rows has 3 rows: expected one per real token"):
        spliced.loss_with(torch.zeros(3, 32))
    with pytest.raises(ValueError, match="d_model"):
        spliced.loss_with(torch.zeros(len(spliced.rows), 5))


def test_the_sweep_scores_each_setting_on_the_held_out_rows():
    from hebb_utils.experiments.lm_fidelity import fidelity_sweep

    model = _models()["llama"]
    spliced = SplicedModel(model, CharTokenizer(), TEXTS, layer=2)

    def keep(n):  # a code keeping the first n coordinates
        mask = torch.zeros(32)
        mask[:n] = 1
        return lambda X: (lambda seed: Dictionary(decoder=torch.eye(32), encode=lambda x: x * mask, decode=lambda c: c))

    out = fidelity_sweep({"m": {4: keep(4), 32: keep(32)}}, torch.randn(10, 32), spliced, seed=0)
    low, full = out["m"]
    assert (low["setting"], low["l0"], full["l0"]) == (4, 4.0, 32.0)
    assert full["explained_variance"] == pytest.approx(1.0) and full["loss_recovered"] == pytest.approx(1.0)
    assert low["explained_variance"] < 1 and full["dead_fraction"] == 0 and low["dead_fraction"] == pytest.approx(28 / 32)


def test_the_sweep_counts_dead_units_on_the_training_rows():
    # a unit never active on a few held-out tokens is not dead: the field counts over training tokens
    from hebb_utils.experiments.lm_fidelity import fidelity_sweep

    spliced = SplicedModel(_models()["llama"], CharTokenizer(), TEXTS, layer=2)
    X_train = torch.randn(10, 32)
    X_train[:, 0] = 1000.0  # only training rows open the gate; the held-out rows never do

    def gated(X):
        return lambda seed: Dictionary(decoder=torch.eye(32), encode=lambda x: x * (x[:, :1] > 100), decode=lambda c: c)

    (row,) = fidelity_sweep({"m": {1: gated}}, X_train, spliced, seed=0)["m"]
    assert row["l0"] == 0 and row["dead_fraction"] == 0


def test_the_sweep_scores_a_fit_already_made_instead_of_fitting_again():
    # notebook 07 passes the tuning fits at k_mid: the same make, data and seed, so not paid twice
    from hebb_utils.experiments.lm_fidelity import fidelity_sweep

    spliced = SplicedModel(_models()["llama"], CharTokenizer(), TEXTS, layer=2)
    identity = Dictionary(decoder=torch.eye(32), encode=lambda x: x, decode=lambda c: c)

    def never(X):
        raise AssertionError("a setting given in `fitted` was fitted again")

    def keep_one(X):
        mask = torch.zeros(32)
        mask[0] = 1
        return lambda seed: Dictionary(decoder=torch.eye(32), encode=lambda x: x * mask, decode=lambda c: c)

    out = fidelity_sweep({"m": {1: keep_one, 32: never}}, torch.randn(10, 32), spliced, seed=0,
                         fitted={("m", 32): (identity, 12.345)})
    low, full = out["m"]
    assert (low["setting"], full["setting"]) == (1, 32) and low["l0"] == 1.0
    assert full["l0"] == 32.0 and full["cpu_seconds"] == 12.35 and full["loss_recovered"] == pytest.approx(1.0)
