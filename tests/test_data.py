"""Data access: CIFAR-10 and TinyStories from the offline mirror, the cache, and the no-source error."""
import itertools
import os
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import pytest

from hebb_utils import DataSourceError, default_cache_dir, load_cifar10, load_tinystories, resolve_source
import hebb_utils.data.sources as data

MIRROR = os.environ.get("HEBB_DATA_MIRROR", "").strip()
needs_mirror = pytest.mark.skipif(not MIRROR, reason="HEBB_DATA_MIRROR is not set: these tests read the "
                                                     "offline data mirror (the CI sets it)")
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test: with the mirror nothing may touch the network."""
    def refuse(self, address):
        raise AssertionError(f"network access to {address} while HEBB_DATA_MIRROR is set")
    monkeypatch.setattr(socket.socket, "connect", refuse)


# ------------------------------------------------------------------------------------------------
# the mirror

@needs_mirror
@pytest.mark.parametrize("split, n", [("train", 50_000), ("test", 10_000)])
def test_cifar10_from_mirror(split, n, no_network):
    images, labels, names = load_cifar10(split)  # decoded once, then read from the cache
    assert images.shape == (n, 32, 32, 3) and images.dtype == np.uint8
    assert labels.shape == (n,) and labels.dtype == np.int64
    assert names == CIFAR_CLASSES
    assert np.array_equal(np.bincount(labels, minlength=10), np.full(10, n // 10))  # official: balanced
    if split == "train":
        assert labels[0] == 6 and names[labels[0]] == "frog"
    # real photographs, not blank decodes: every image has some contrast
    assert (images.reshape(n, -1).std(axis=1) > 1).all()


@needs_mirror
def test_cifar10_cache_is_read_back(tmp_path, monkeypatch, no_network):
    first = load_cifar10("test", cache_dir=tmp_path)
    cached = list(tmp_path.glob("cifar10-test-*.npz"))
    assert len(cached) == 1 and not list(tmp_path.glob(".*"))  # written atomically: no temp left
    monkeypatch.setattr(data, "_decode_images", lambda *a: pytest.fail("decoded again instead of using the cache"))
    second = load_cifar10("test", cache_dir=tmp_path)
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1]) and first[2] == second[2]


def _tiny_cifar(folder: Path, seed: int) -> np.ndarray:
    """A 6-image dataset in the mirror's format (parquet with Image + ClassLabel features)."""
    import datasets

    images = np.random.default_rng(seed).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b", "c"])})
    ds = datasets.Dataset.from_dict({"img": list(images), "label": [0, 1, 2, 0, 1, 2]}, features=features)
    folder.mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(folder / "test-00000-of-00001.parquet"))
    return images


def test_cifar10_cache_is_keyed_by_source(tmp_path):
    cache = tmp_path / "cache"
    images_a = _tiny_cifar(tmp_path / "a", seed=0)
    images_b = _tiny_cifar(tmp_path / "b", seed=1)
    got_a, labels, names = load_cifar10("test", dataset=str(tmp_path / "a"), cache_dir=cache)
    got_b, _, _ = load_cifar10("test", dataset=str(tmp_path / "b"), cache_dir=cache)
    assert np.array_equal(got_a, images_a) and np.array_equal(got_b, images_b)  # PNG: lossless
    assert labels.tolist() == [0, 1, 2, 0, 1, 2] and names == ["a", "b", "c"]
    assert len(list(cache.glob("cifar10-test-*.npz"))) == 2
    # the same folder with new content: a new key, the new images, not the stale cache
    images_a2 = _tiny_cifar(tmp_path / "a", seed=2)
    os.utime(tmp_path / "a" / "test-00000-of-00001.parquet", ns=(1, 1))
    assert np.array_equal(load_cifar10("test", dataset=str(tmp_path / "a"), cache_dir=cache)[0], images_a2)


@needs_mirror
def test_tinystories_from_mirror(no_network):
    stories = load_tinystories(5)
    assert len(stories) == 5 and all(isinstance(s, str) and s for s in stories)
    assert stories[0].startswith("One day, a little girl named Lily found a needle in her room.")
    with pytest.warns(UserWarning, match=r"asked for n_stories=3200 .* only 2316"):
        everything = load_tinystories(3200)
    assert len(everything) == 2316 and everything[:5] == stories


@needs_mirror
def test_mirror_source_and_its_limits(tmp_path):
    src = resolve_source("cifar10")
    assert src["kind"] == "mirror" and Path(src["path_or_id"]) == Path(MIRROR).resolve() / "cifar10"
    assert src["stands_in_for"] == "uoft-cs/cifar10"
    with pytest.raises(DataSourceError, match="HEBB_DATA_MIRROR"):
        resolve_source("cifar10", "someone/other-dataset")  # offline: a Hub id the mirror lacks
    with pytest.raises(ValueError, match="split='validation'"):
        load_tinystories(3, split="validation")
    with pytest.raises(ValueError, match="n_stories"):
        load_tinystories(0)
    with pytest.raises(ValueError, match="what="):
        resolve_source("mnist")


OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


@needs_mirror
def test_mirror_call_is_offline_and_restores_the_environment(monkeypatch):
    import datasets
    import huggingface_hub.constants as hub_constants

    for var in OFFLINE_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    seen, real = [], datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: (
        seen.append((os.environ.get("HF_HUB_OFFLINE"), hub_constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE)),
        real(*a, **k))[1])
    assert len(load_tinystories(2)) == 2
    data.load_tokenizer("gpt2")
    assert seen == [("1", True, True)]  # offline during the library call ...
    assert not any(v in os.environ for v in OFFLINE_VARS)  # ... and not after it
    assert hub_constants.HF_HUB_OFFLINE is False and datasets.config.HF_HUB_OFFLINE is False
    # so a later error does not blame a variable the user never set
    monkeypatch.delenv("HEBB_DATA_MIRROR")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(DataSourceError) as e:
        data._require_hub("cifar10")
    assert "HF_HUB_OFFLINE" not in str(e.value) and "127.0.0.1:9" in str(e.value)


def _load_warns(match, *args, **kwargs):
    with pytest.warns(UserWarning, match=match):
        return load_cifar10(*args, **kwargs)


def test_damaged_cache_is_rebuilt_with_a_warning(tmp_path):
    images = _tiny_cifar(tmp_path / "a", seed=0)
    first = load_cifar10("test", dataset=str(tmp_path / "a"), cache_dir=tmp_path / "cache")
    (cache_file,) = (tmp_path / "cache").glob("*.npz")
    good = cache_file.read_bytes()
    for damage in (good[: len(good) // 2], b"garbage" * 100, b""):
        cache_file.write_bytes(damage)
        got = _load_warns(rf"{cache_file.name}.*damaged.*rebuilding", "test", dataset=str(tmp_path / "a"),
                          cache_dir=tmp_path / "cache")
        assert np.array_equal(got[0], images) and np.array_equal(got[1], first[1]) and got[2] == first[2]
        assert cache_file.read_bytes() == good  # rebuilt
    np.savez(cache_file, images=images, labels=first[1][:3], class_names=np.array(first[2]))  # wrong shapes
    assert np.array_equal(_load_warns("damaged", "test", dataset=str(tmp_path / "a"), cache_dir=tmp_path / "cache")[1],
                          first[1])


def test_stale_cache_with_the_same_size_and_mtime_is_not_read(tmp_path):
    import datasets

    folder = tmp_path / "a"
    images = _tiny_cifar(folder, seed=0)
    file = folder / "test-00000-of-00001.parquet"
    before = file.stat()
    _, labels, _ = load_cifar10("test", dataset=str(folder), cache_dir=tmp_path / "cache")
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b", "c"])})
    for new_labels in itertools.product(range(3), repeat=6):  # relabel the same images, to the same size
        ds = datasets.Dataset.from_dict({"img": list(images), "label": list(new_labels)}, features=features)
        ds.to_parquet(str(file))
        if file.stat().st_size == before.st_size and list(new_labels) != labels.tolist():
            break
    os.utime(file, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert file.stat().st_size == before.st_size and file.stat().st_mtime_ns == before.st_mtime_ns
    got_images, got_labels, _ = load_cifar10("test", dataset=str(folder), cache_dir=tmp_path / "cache")
    assert labels.tolist() == [0, 1, 2, 0, 1, 2] and got_labels.tolist() == list(new_labels)
    assert np.array_equal(got_images, images)


def _mirror_with(tmp_path, monkeypatch, files: dict) -> Path:
    """A mirror in tmp_path holding `files` ({relative path: bytes}); HEBB_DATA_MIRROR points at it."""
    for rel, content in files.items():
        (tmp_path / "mirror" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "mirror" / rel).write_bytes(content)
    monkeypatch.setenv("HEBB_DATA_MIRROR", str(tmp_path / "mirror"))
    return tmp_path / "mirror"


@needs_mirror
def test_damaged_mirror_parquet_names_the_file(tmp_path, monkeypatch):
    real = (Path(MIRROR) / "cifar10" / "test-00000-of-00001.parquet").read_bytes()
    for damage in (real[: len(real) // 3], b"not a parquet file" * 50):
        _mirror_with(tmp_path, monkeypatch, {"cifar10/test-00000-of-00001.parquet": damage})
        with pytest.raises(DataSourceError, match=r"test-00000-of-00001\.parquet.*HEBB_DATA_MIRROR=") as e:
            load_cifar10("test", cache_dir=tmp_path / "cache")
        assert e.value.__cause__ is None and e.value.__suppress_context__
    _mirror_with(tmp_path, monkeypatch, {"tinystories/train-00000-of-00001.parquet": b"PAR1garbagePAR1"})
    with pytest.raises(DataSourceError, match=r"train-00000-of-00001\.parquet.*HEBB_DATA_MIRROR="):
        load_tinystories(2)


def test_damaged_images_name_the_file(tmp_path, monkeypatch):
    import datasets

    folder = tmp_path / "mirror" / "cifar10"
    folder.mkdir(parents=True)
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    good = np.zeros((32, 32, 3), np.uint8)
    datasets.Dataset.from_dict({"img": [good, {"bytes": b"not an image", "path": None}], "label": [0, 1]},
                               features=features).to_parquet(str(folder / "test-00000-of-00001.parquet"))
    monkeypatch.setenv("HEBB_DATA_MIRROR", str(tmp_path / "mirror"))
    with pytest.raises(DataSourceError, match=r"test-00000-of-00001\.parquet.*HEBB_DATA_MIRROR="):
        load_cifar10("test", cache_dir=tmp_path / "cache")


@needs_mirror
def test_damaged_tokenizer_names_the_file(tmp_path, monkeypatch):
    merges = (Path(MIRROR) / "gpt2-tokenizer" / "merges.txt").read_bytes()
    _mirror_with(tmp_path, monkeypatch, {"gpt2-tokenizer/vocab.json": b'{"a": 0, "b"',
                                         "gpt2-tokenizer/merges.txt": merges})
    with pytest.raises(DataSourceError, match=r"vocab\.json.*HEBB_DATA_MIRROR="):
        data.load_tokenizer("gpt2")


def test_n_stories_accepts_numpy_integers(monkeypatch):
    monkeypatch.setattr(data, "resolve_source", lambda *a: pytest.fail("checked after the source"))
    with pytest.raises(ValueError, match=r"n_stories=.*integer >= 1"):
        load_tinystories(np.int64(0))
    with pytest.raises(ValueError, match="n_stories"):
        load_tinystories(2.0)


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("HEBB_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("HEBB_CACHE_DIR")
    assert default_cache_dir().name == "cache"


# ------------------------------------------------------------------------------------------------
# no mirror and no Hub: one clear error, fast

def test_bad_mirror_path(monkeypatch, tmp_path):
    monkeypatch.setenv("HEBB_DATA_MIRROR", str(tmp_path / "nowhere"))
    with pytest.raises(DataSourceError, match="HEBB_DATA_MIRROR"):
        load_tinystories(3)


def test_no_source_in_process(monkeypatch):
    monkeypatch.delenv("HEBB_DATA_MIRROR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataSourceError, match="HEBB_DATA_MIRROR") as e:
        load_cifar10("train")
    assert isinstance(e.value, RuntimeError)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: connection refused
    t0 = time.perf_counter()
    with pytest.raises(DataSourceError, match=r"HEBB_DATA_MIRROR.*127\.0\.0\.1:9"):
        load_tinystories(3)
    assert time.perf_counter() - t0 < 5


NO_SOURCE_SCRIPT = """
import hebb_utils.data.sources as d
for call in (lambda: d.load_cifar10(), lambda: d.load_tinystories(3), lambda: d.load_language_model()):
    try:
        call()
    except d.DataSourceError as e:
        print("ERROR:", e)
    else:
        raise SystemExit("no error")
d.load_tinystories(3)  # uncaught: what a user sees
"""


def test_no_source_subprocess_fails_fast_and_clearly(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("HEBB_DATA_MIRROR", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT="http://127.0.0.1:9", HEBB_CACHE_DIR=str(tmp_path), HF_HOME=str(tmp_path / "hf"))
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", NO_SOURCE_SCRIPT], env=env, cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    elapsed = time.perf_counter() - t0
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stdout.count("ERROR:") == 3 and run.stdout.count("HEBB_DATA_MIRROR") >= 3, run.stdout
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("hebb_utils.data.sources.DataSourceError:") and "HEBB_DATA_MIRROR" in last, run.stderr
    assert "During handling of the above exception" not in run.stderr  # one error, not a chain of retries
    assert elapsed < 10, f"took {elapsed:.1f} s"


def test_cifar_inputs_layout_is_channels_first():
    from hebb_utils import cifar_inputs

    images = np.zeros((2, 32, 32, 3), dtype=np.uint8)
    images[1, 4, 7, 2] = 255  # sample 1, row 4, column 7, blue channel
    x = cifar_inputs(images)
    assert x.shape == (2, 3072) and x.dtype == torch.float32
    assert x[1, 2 * 1024 + 4 * 32 + 7] == 1.0 and x.sum() == 1.0
    with pytest.raises(ValueError, match="images"):
        cifar_inputs(images.astype(np.float32))
