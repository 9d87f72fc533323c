"""The sharded activation store: round trips, float16, the old single folder, provenance, resuming a
killed extraction bit for bit, and training that streams from more shards than a memory limit holds."""
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hebb_utils import (Activations, activations_source, load_activations, load_language_model, load_tinystories,
                        save_activations)
from hebb_utils import ShardedActivations, extract_to_shards, write_shards

MIRROR = os.environ.get("HEBB_DATA_MIRROR", "").strip()
needs_mirror = pytest.mark.skipif(not MIRROR, reason="HEBB_DATA_MIRROR is not set: reads the offline mirror (CI sets it)")


def _table(n):
    return pd.DataFrame({"row": np.arange(n), "token_id": np.arange(n) % 7, "token": [f"t{i % 7}" for i in range(n)],
                         "story_id": np.arange(n) // 10, "position": np.arange(n) % 10})


def _digests(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_round_trip_batches_take_and_tokens(tmp_path):
    rng = np.random.default_rng(0)
    acts = rng.standard_normal((1003, 12)).astype(np.float32)
    write_shards(tmp_path / "s", acts, tokens=_table(1003), stories=[f"story {i}" for i in range(101)], shard_rows=250,
                 meta={"model": {"name": "mine"}})
    view = load_activations(tmp_path / "s", stream=True)
    assert isinstance(view, ShardedActivations) and view.shape == (1003, 12) and view.n_shards == 5
    assert [len(b) for b in view.batches(100)] == [100, 100, 50] * 4 + [3]  # a batch never spans two shards
    assert torch.equal(torch.cat(list(view.batches(100))), torch.from_numpy(acts))
    rows = rng.permutation(1003)[:300]
    assert torch.equal(view.take(rows), torch.from_numpy(acts[rows]))
    assert torch.equal(view.read(245, 260), torch.from_numpy(acts[245:260]))
    assert view.tokens.equals(_table(1003)) and len(view.stories) == 101
    whole = load_activations(tmp_path / "s")  # in memory: the Activations of the single folder
    assert isinstance(whole, Activations) and np.array_equal(whole.acts, acts) and whole.acts.dtype == np.float32
    assert whole.meta["model"]["name"] == "mine" and whole.meta["counts"]["n_shards"] == 5
    load_activations(tmp_path / "s", stream=True, verify=True)  # the SHA-256 of every shard match
    with pytest.raises(IndexError):
        view.take([1003])


def test_float16_shards(tmp_path):
    acts = np.random.default_rng(1).standard_normal((500, 8)).astype(np.float32)
    write_shards(tmp_path / "h", acts, shard_rows=128, dtype="float16")
    view = load_activations(tmp_path / "h", stream=True)
    assert view.dtype == "float16" and np.load(tmp_path / "h" / "shard_00000.npy", mmap_mode="r").dtype == np.float16
    assert (tmp_path / "h" / "shard_00000.npy").stat().st_size < 128 * 8 * 2 + 200  # half the bytes of float32
    batch = next(view.batches(64))
    assert batch.dtype == torch.float32
    np.testing.assert_allclose(torch.cat(list(view.batches(64))).numpy(), acts, rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match="dtype='int8'"):
        write_shards(tmp_path / "x", acts, dtype="int8")


def test_the_single_folder_artifact_stays_readable(tmp_path):
    acts = np.random.default_rng(2).standard_normal((30, 4)).astype(np.float32)
    res = Activations(acts=acts, tokens=_table(30), stories=["a", "b", "c"],
                      meta={"model": {"name": "m", "offline_stand_in": False}})
    save_activations(tmp_path / "old", res)
    old = load_activations(tmp_path / "old")
    assert isinstance(old, Activations) and np.array_equal(old.acts, acts)
    view = load_activations(tmp_path / "old", stream=True)  # a view of one shard
    assert view.n_shards == 1 and view.shape == (30, 4) and torch.equal(view.read(0, 30), torch.from_numpy(acts))
    assert view.tokens.equals(old.tokens) and view.stories == ["a", "b", "c"]
    assert activations_source(view)["label"] == activations_source(old)["label"]


def test_damaged_or_missing_stores_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no activations at .*python -m hebb_utils extract"):
        load_activations(tmp_path / "nothing", stream=True)
    write_shards(tmp_path / "s", np.ones((20, 3), np.float32), shard_rows=8)
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    (tmp_path / "s" / "manifest.json").write_text(json.dumps({**manifest, "complete": False}))
    with pytest.raises(ValueError, match="incomplete .*3 of 3 shards.*resume"):
        load_activations(tmp_path / "s", stream=True)
    (tmp_path / "s" / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "s" / "shard_00001.npy").write_bytes(b"damaged")
    with pytest.raises(ValueError, match="shard_00001.npy: not a readable .npy"):  # caught without verify
        load_activations(tmp_path / "s", stream=True)
    # a change in the middle of a big shard: only the whole-file SHA-256 (verify=True) sees it
    write_shards(tmp_path / "big", np.ones((40000, 3), np.float32), shard_rows=20000)
    middle = np.load(tmp_path / "big" / "shard_00001.npy", mmap_mode="r+")
    middle[10000, 1] = 2.0
    middle.flush()
    del middle
    assert load_activations(tmp_path / "big", stream=True).shape == (40000, 3)
    with pytest.raises(ValueError, match="shard_00001.npy: its SHA-256"):
        load_activations(tmp_path / "big", stream=True, verify=True)
    (tmp_path / "s" / "shard_00001.npy").unlink()
    with pytest.raises(FileNotFoundError, match="shard_00001.npy"):
        load_activations(tmp_path / "s", stream=True)


# ------------------------------------------------------------------------------------------------
# extraction: provenance and resuming a killed run

EXTRACT = dict(layer=5, batch_size=4, max_tokens=32, shard_rows=150, chunk_stories=3)
KILLED = textwrap.dedent("""
    import os, signal, sys
    import hebb_utils.data.store as store
    from hebb_utils import extract_to_shards, load_language_model, load_tinystories
    save, written = store._save_npy, []
    def save_then_die(path, array):
        save(path, array)            # the temp file of this shard is complete ...
        written.append(path)
        if len(written) == 3:        # ... but the third shard is never moved into place
            os.kill(os.getpid(), signal.SIGKILL)
    store._save_npy = save_then_die
    model, tokenizer, info = load_language_model(None)
    extract_to_shards(model, tokenizer, load_tinystories(20), sys.argv[1], meta={"model": info},
                             progress=False, **%r)
""" % EXTRACT)


@pytest.fixture(scope="module")
def stand_in(stand_in_model):
    model, tokenizer, info = stand_in_model  # conftest: the offline stand-in, loaded once per session
    return model, tokenizer, info, load_tinystories(20)


def test_manifest_carries_the_provenance(stand_in, tmp_path):
    model, tokenizer, info, stories = stand_in
    out = extract_to_shards(model, tokenizer, stories, tmp_path / "x", meta={"model": info, "data_source": {"kind": "mirror"}},
                            progress=False, dtype="float16", **EXTRACT)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["model"]["name"] == "SmolLM2-135M-Instruct" and manifest["model"]["offline_stand_in"]
    assert manifest["config"]["layer"] == 5 and manifest["config"]["max_tokens"] == 32
    assert manifest["data_source"] == {"kind": "mirror"} and manifest["dtype"] == "float16"
    assert manifest["counts"]["n_stories"] == 20 and manifest["counts"]["d_model"] == 576
    assert [s["rows"][1] - s["rows"][0] for s in manifest["shards"]][:-1] == [150] * (len(manifest["shards"]) - 1)
    assert all(len(s["sha256"]) == 64 for s in manifest["shards"])
    view = load_activations(out, stream=True)
    assert view.tokens["row"].tolist() == list(range(len(view)))  # one global token table, in story order
    assert view.tokens.groupby("story_id").size().max() <= 32
    assert "OFFLINE STAND-IN" in activations_source(view)["label"]
    # the rows are what extract_activations gives for the stories of each chunk
    from hebb_utils import extract_activations

    first = extract_activations(model, tokenizer, stories[:3], progress=False, layer=5, batch_size=4, max_tokens=32)
    np.testing.assert_array_equal(view.read(0, len(first.acts)).numpy(), first.acts.astype(np.float16).astype(np.float32))
    with pytest.raises(ValueError, match="other settings .*shard_rows"):
        extract_to_shards(model, tokenizer, stories, out, progress=False, **{**EXTRACT, "shard_rows": 100})


def test_killed_extraction_resumes_bit_identical(stand_in, tmp_path):
    model, tokenizer, info, stories = stand_in
    whole = extract_to_shards(model, tokenizer, stories, tmp_path / "whole", meta={"model": info}, progress=False, **EXTRACT)
    n_shards = json.loads((whole / "manifest.json").read_text())["counts"]["n_shards"]
    assert n_shards >= 4

    killed = subprocess.run([sys.executable, "-c", KILLED, str(tmp_path / "resumed")], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "TQDM_DISABLE": "1"})
    assert killed.returncode == -9, killed.stderr[-2000:]  # SIGKILL mid-write of the third shard
    folder = tmp_path / "resumed"
    assert not json.loads((folder / "manifest.json").read_text())["complete"]
    assert (folder / "shard_00001.json").exists() and not (folder / "shard_00002.npy").exists()
    assert list(folder.glob(".shard_00002.npy.*")), "the killed write should have left its temp file"
    with pytest.raises(ValueError, match="incomplete .*2 of"):
        load_activations(folder, stream=True)

    before = {p.name: p.stat().st_mtime_ns for p in folder.glob("shard_0000[01].npy")}
    extract_to_shards(model, tokenizer, stories, folder, meta={"model": info}, progress=False, **EXTRACT)
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("shard_0000[01].npy")} == before  # kept, not redone
    assert _digests(folder) == _digests(whole)  # every file, the manifest included; no temp file left


# ------------------------------------------------------------------------------------------------
# training streams from shards under a memory limit

STREAM = textwrap.dedent("""
    import resource, sys, torch
    from hebb_utils import Lateral, SoftHebbLinear, load_activations
    from hebb_utils import train_softhebb_parallel
    folder, mode, budget = sys.argv[1], sys.argv[2], int(sys.argv[3])
    def layer():
        return SoftHebbLinear(256, 16, 20.0, lateral=Lateral((4, 4)), seed=0)
    view = load_activations(folder, stream=True)
    train_softhebb_parallel(layer(), torch.randn(256, 256), batch_size=128, progress=False)  # warm every code path
    vm = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + budget, vm + budget))  # address space: mapped files count too
    try:
        if mode == "stream":
            trained, info = train_softhebb_parallel(layer(), view, batch_size=1024, lr=0.1, shuffle="shard", progress=False)
            print("trained", info["steps"], int(info["wins"].sum()))
        else:
            print("loaded", load_activations(folder).acts.shape)
    except (MemoryError, OSError) as e:
        print("out of memory:", type(e).__name__)
        sys.exit(3)
""")


def test_training_streams_from_shards_larger_than_the_memory_limit(tmp_path):
    shard_rows, n_shards, budget = 16384, 8, 64 << 20  # 8 shards of 16 MB = 128 MB of data; 64 MB allowed
    rng = np.random.default_rng(0)
    acts = rng.standard_normal((shard_rows * n_shards, 256), dtype=np.float32)
    write_shards(tmp_path / "big", acts, shard_rows=shard_rows)
    assert acts.nbytes == 2 * budget
    del acts
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    run = lambda mode: subprocess.run([sys.executable, "-c", STREAM, str(tmp_path / "big"), mode, str(budget)],  # noqa: E731
                                      capture_output=True, text=True, timeout=300, env=env)
    streamed = run("stream")
    assert streamed.returncode == 0, streamed.stdout + streamed.stderr[-2000:]
    assert streamed.stdout.split() == ["trained", str(shard_rows * n_shards // 1024), str(shard_rows * n_shards)]
    loaded = run("load")  # the control: the whole set does not fit under the same limit
    assert loaded.returncode == 3, loaded.stdout + loaded.stderr[-2000:]
