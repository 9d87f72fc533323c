import os

# The Triton kernels are tested on the CPU in Triton's interpreter. The variable must be set
# before triton is first imported, so it is set here, before any test module loads.
if "TRITON_INTERPRET" not in os.environ:
    import torch

    if not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"


import functools

import pytest


@pytest.fixture
def quiet_bars(monkeypatch):
    """tqdm bars off for in-process command-line calls (TQDM_DISABLE is read only when tqdm is first
    imported), so that stderr holds only what the command line says."""
    import tqdm.std

    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.setattr(tqdm.std.tqdm, "__init__", functools.partialmethod(tqdm.std.tqdm.__init__, disable=True))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A randomly initialised GPT-Neo (d_model 16, 2 blocks) saved with save_pretrained, with the GPT-2 tokenizer."""
    if not os.environ.get("HEBB_DATA_MIRROR", "").strip():
        pytest.skip("HEBB_DATA_MIRROR is not set: extract reads the tokenizer and TinyStories from the offline mirror")
    import torch
    from transformers import GPTNeoConfig, GPTNeoForCausalLM

    from hebb_utils import load_tokenizer

    config = GPTNeoConfig(vocab_size=50257, hidden_size=16, num_layers=2, num_heads=2, window_size=32,
                          attention_types=[[["global", "local"], 1]], max_position_embeddings=64, intermediate_size=32,
                          bos_token_id=50256, eos_token_id=50256)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-gpt-neo")
    GPTNeoForCausalLM(config).save_pretrained(folder)
    load_tokenizer("roneneldan/TinyStories-1M").save_pretrained(folder)  # offline: <mirror>/gpt2-tokenizer
    return folder


@pytest.fixture(scope="session")
def stand_in_model():
    """(model, tokenizer, info) of the offline stand-in, SmolLM2-135M-Instruct from its GGUF file: loaded once
    per test session (de-quantising takes ~20 s)."""
    if not os.environ.get("HEBB_DATA_MIRROR", "").strip():
        pytest.skip("HEBB_DATA_MIRROR is not set: the default model is the offline stand-in only with the mirror")
    from hebb_utils import load_language_model

    return load_language_model(None)
