"""Residual-stream activations of a language model, one row per token (the published `get_acts_tokens`).

`extract_activations` runs the model over stories in padded batches and keeps the residual stream
after block `layer` (TransformerLens `blocks.{layer}.hook_resid_post`; Hugging Face
`hidden_states[layer + 1]`) for every real token:

- causal LMs (TinyStories-1M, GPT-Neo): a beginning-of-text token is prepended (GPT-2's
  <|endoftext|>, id 50256) and its row dropped;
- the BERT stand-in (MiniLM): its special tokens ([CLS], [SEP]) are dropped;

so in both cases position 0 is the first real token of a story. `save_activations` /
`load_activations` write and read the artifact folder atomically:

    acts.npy        float32 (tokens, d_model)
    tokens.parquet  row, token_id, token, story_id, position
    stories.jsonl   {"story_id", "text"} per line
    meta.json       config, model, data source, counts, versions
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..checks import positive_int
from ..io import atomic_replace_dir, atomic_write_json, portable, recover_dir

__all__ = ["Activations", "extract_activations", "save_activations", "load_activations", "block_modules",
           "default_center", "activations_source", "acts_checksum"]

ARTIFACT_FILES = ("acts.npy", "tokens.parquet", "stories.jsonl", "meta.json")
TOKEN_COLUMNS = ("row", "token_id", "token", "story_id", "position")


@dataclass
class Activations:
    acts: np.ndarray  # float32 (tokens, d_model)
    tokens: "pandas.DataFrame"  # noqa: F821  row, token_id, token, story_id, position
    stories: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.acts.shape)

    def __repr__(self) -> str:
        return (f"Activations(acts={self.acts.dtype}{tuple(self.acts.shape)}, tokens={len(self.tokens)} rows, "
                f"stories={len(self.stories)})")


class _StopForward(Exception):
    """Raised by the hook once the wanted block has run: the blocks after it are not needed."""


def block_modules(model: torch.nn.Module, n_layers: int) -> torch.nn.ModuleList:
    """The model's list of transformer blocks (transformer.h, encoder.layer, model.layers, ...)."""
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n_layers:
            return module
    raise ValueError(f"found no torch.nn.ModuleList of {n_layers} blocks in {type(model).__name__}")


def default_center(model_info: dict) -> bool:
    """Centre by default for causal LMs (TinyStories-1M), not for the BERT stand-in.

    The published run read TinyStories-1M through TransformerLens, which centres the residual
    stream by default; the MiniLM stand-in was never loaded that way, so its rows stay raw.
    """
    return bool(model_info["is_causal"])


def _model_facts(model) -> tuple[int, bool, int | None]:
    from .sources import _is_causal

    config = model.config
    return int(config.num_hidden_layers), _is_causal(config), getattr(config, "max_position_embeddings", None)


def _check_texts_and_layer(model, texts, layer):
    """(texts as a list, layer, _model_facts(model)) after the checks every extraction makes."""
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise ValueError("texts: expected a list of strings (one story each)")
    texts = list(texts)
    if not texts:
        raise ValueError("texts: expected at least one story, got none")
    facts = _model_facts(model)
    n_layers = facts[0]
    where = f"0 <= layer < {n_layers}: this model has {n_layers} blocks; layer 5 = hidden_states[6]"
    layer = positive_int("layer", layer, minimum=0, hint=where)
    if layer >= n_layers:
        raise ValueError(f"layer={layer!r}: expected an integer block index ({where})")
    return texts, layer, facts


def _token_limit(special: list[np.ndarray], max_tokens: int | None, max_positions: int | None) -> float:
    """Real tokens a story keeps at most: max_tokens, and what fits the model's positions beside the
    batch's special tokens (np.inf: no limit). shards.py plans its shards with the same number."""
    limit = max_tokens if max_tokens is not None else np.inf
    if max_positions:
        limit = min(limit, max_positions - max(int(s.sum()) for s in special))
    return limit


def _tokenize(tokenizer, texts: list[str], is_causal: bool):
    """Per story: token ids (int64) and a mask of special tokens, with the model's own specials."""
    if is_causal:
        bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if bos is None:
            raise ValueError("the tokenizer of this causal LM has neither a BOS nor an EOS token to prepend")
        ids = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
        ids = [np.array([bos] + x, dtype=np.int64) for x in ids]
        special = [np.arange(len(x)) == 0 for x in ids]  # only the BOS we prepended
    else:
        enc = tokenizer(texts, add_special_tokens=True, return_special_tokens_mask=True, verbose=False)
        ids = [np.array(x, dtype=np.int64) for x in enc["input_ids"]]
        special = [np.array(m, dtype=bool) for m in enc["special_tokens_mask"]]
    return ids, special


def _token_strings(tokenizer, token_ids: np.ndarray) -> np.ndarray:
    """Decode each token on its own; once per distinct id, not once per row."""
    unique, inverse = np.unique(token_ids, return_inverse=True)
    decoded = np.array(tokenizer.batch_decode([[int(i)] for i in unique]), dtype=object)
    return decoded[inverse.reshape(-1)]


@torch.inference_mode()
def extract_activations(model, tokenizer, texts, layer: int = 5, center: bool = False, batch_size: int = 16,
                        max_tokens: int | None = None, device: str | None = None,
                        progress: bool = True) -> Activations:
    """Residual stream after block `layer` for every real token of `texts`.

    Returns Activations with acts float32 (tokens, d_model) in story order, and the token table.
    max_tokens caps the real tokens per story (None: the model's position limit only). center=True
    subtracts each token vector's mean over d_model, as TransformerLens does by default. The model
    is moved to `device` (None/'auto': the GPU when there is one) and put in eval mode.
    """
    import pandas as pd
    from tqdm import tqdm  # text bar: stays readable in executed notebooks and their HTML

    from .sources import resolve_device

    texts, layer, (n_layers, is_causal, max_positions) = _check_texts_and_layer(model, texts, layer)
    batch_size = positive_int("batch_size", batch_size)
    if max_tokens is not None:
        max_tokens = positive_int("max_tokens", max_tokens, hint="or None: tokens per story")
    device = resolve_device(device)
    model = model.to(device).eval()

    # tokenise, then truncate each story to `limit` real tokens (specials are kept)
    ids, special = _tokenize(tokenizer, texts, is_causal)
    limit = _token_limit(special, max_tokens, max_positions)
    n_real = np.array([int((~s).sum()) for s in special])
    n_truncated = int((n_real > limit).sum())
    if n_truncated:
        keep_tok = [s | (np.cumsum(~s) <= limit) for s in special]
        ids = [x[k] for x, k in zip(ids, keep_tok)]
        special = [s[k] for s, k in zip(special, keep_tok)]
    n_kept = np.array([int((~s).sum()) for s in special])  # real tokens per story
    offsets = np.concatenate([[0], np.cumsum(n_kept)[:-1]])  # first output row of each story
    n_tokens = int(n_kept.sum())

    blocks = block_modules(model, n_layers)
    runner = getattr(model, "base_model", model)  # the trunk: no LM head, no logits
    pad_id = next(t for t in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0) if t is not None)
    acts = torch.empty(n_tokens, model.config.hidden_size, dtype=torch.float32)
    captured = {}

    def grab(module, args, output):
        captured["h"] = output if isinstance(output, torch.Tensor) else output[0]
        raise _StopForward

    # longest stories first so each batch pads little; the rows still land in story order
    order = np.argsort([-len(x) for x in ids], kind="stable")
    handle = blocks[layer].register_forward_hook(grab)
    try:
        # progress=False turns the bar off; otherwise tqdm's own default applies, so TQDM_DISABLE=1
        # (set by the Makefile for the committed notebooks) does too
        with tqdm(total=len(texts), unit="story", desc=f"layer {layer}", **({} if progress else {"disable": True})) as bar:
            for start in range(0, len(order), batch_size):
                batch = order[start:start + batch_size]
                width = max(len(ids[i]) for i in batch)
                input_ids = np.full((len(batch), width), pad_id, dtype=np.int64)
                attention = np.zeros((len(batch), width), dtype=np.int64)
                keep = np.zeros((len(batch), width), dtype=bool)
                for row, i in enumerate(batch):  # right padding
                    input_ids[row, :len(ids[i])] = ids[i]
                    attention[row, :len(ids[i])] = 1
                    keep[row, :len(ids[i])] = ~special[i]
                kwargs = {"use_cache": False} if is_causal else {}
                try:
                    runner(input_ids=torch.from_numpy(input_ids).to(device),
                           attention_mask=torch.from_numpy(attention).to(device), **kwargs)
                except _StopForward:
                    pass
                h = captured.pop("h")  # (B, T, d_model)
                keep_t = torch.from_numpy(keep)
                position = keep_t.cumsum(1) - 1  # 0 at each story's first real token
                dest = torch.from_numpy(offsets[batch])[:, None] + position  # (B, T) output row
                acts[dest[keep_t]] = h[keep_t.to(h.device)].float().cpu()
                bar.update(len(batch))
    finally:
        handle.remove()
    if center:
        acts -= acts.mean(dim=1, keepdim=True)

    token_ids = np.concatenate([x[~s] for x, s in zip(ids, special)]) if n_tokens else np.zeros(0, np.int64)
    story_id = np.repeat(np.arange(len(texts)), n_kept)
    tokens = pd.DataFrame({
        "row": np.arange(n_tokens, dtype=np.int64),
        "token_id": token_ids.astype(np.int64),
        "token": _token_strings(tokenizer, token_ids) if n_tokens else np.zeros(0, dtype=object),
        "story_id": story_id.astype(np.int64),
        "position": (np.arange(n_tokens) - np.repeat(offsets, n_kept)).astype(np.int64),
    })
    meta = {
        "config": {"layer": int(layer), "center": bool(center), "batch_size": int(batch_size),
                   "max_tokens": None if max_tokens is None else int(max_tokens),
                   "token_limit": None if limit == np.inf else int(limit), "device": device,
                   "hook": f"blocks.{layer}.hook_resid_post (hidden_states[{layer + 1}])",
                   "bos_prepended": is_causal, "special_tokens_dropped": True},
        "counts": {"n_stories": len(texts), "n_tokens": n_tokens, "d_model": int(acts.shape[1]),
                   "n_stories_truncated": n_truncated, "n_empty_stories": int((n_kept == 0).sum())},
    }
    return Activations(acts=acts.numpy(), tokens=tokens, stories=texts, meta=meta)


def _versions() -> dict:
    import platform

    import pandas
    import transformers

    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
           "transformers": transformers.__version__, "pandas": pandas.__version__}
    try:
        import datasets

        out["datasets"] = datasets.__version__
    except ImportError:  # pragma: no cover
        pass
    return out


def save_activations(folder: str | os.PathLike, result: Activations, stories: list[str] | None = None,
                     meta: dict | None = None) -> Path:
    """Write the artifact folder atomically: either the complete new folder or the old one, never a mix.

    `stories` defaults to result.stories; `meta` (model info, data source, ...) is merged into
    result.meta, and the library versions are added.
    """
    stories = list(result.stories if stories is None else stories)
    acts = np.asarray(result.acts, dtype=np.float32)
    if acts.ndim != 2 or acts.shape[0] != len(result.tokens):
        raise ValueError(f"result: acts {acts.shape} and the token table ({len(result.tokens)} rows) disagree")
    if len(result.tokens) and int(result.tokens["story_id"].max()) >= len(stories):
        raise ValueError(f"stories: {len(stories)} texts, but the token table refers to story "
                         f"{int(result.tokens['story_id'].max())}")
    full_meta = portable({**result.meta, **(meta or {}), "files": list(ARTIFACT_FILES), "versions": _versions()})
    full_meta.setdefault("counts", {}).update(n_tokens=int(acts.shape[0]), d_model=int(acts.shape[1]),
                                              n_stories=len(stories))
    full_meta["acts_sha256"] = acts_checksum(acts)  # two extractions on one machine give the same bytes
    folder = Path(folder)
    with atomic_replace_dir(folder) as tmp:
        np.save(tmp / "acts.npy", acts)
        result.tokens.loc[:, list(TOKEN_COLUMNS)].to_parquet(tmp / "tokens.parquet", index=False)
        with open(tmp / "stories.jsonl", "w", encoding="utf-8") as f:
            for i, text in enumerate(stories):
                f.write(json.dumps({"story_id": i, "text": text}, ensure_ascii=False) + "\n")
        atomic_write_json(tmp / "meta.json", full_meta)
    return folder


def acts_checksum(acts: np.ndarray) -> str:
    """SHA-256 of the float32 activation matrix's bytes (C order): equal iff bit-identical."""
    return hashlib.sha256(np.ascontiguousarray(acts, dtype=np.float32).tobytes()).hexdigest()


def load_activations(folder: str | os.PathLike, mmap: bool = False, verify: bool = False, stream: bool = False):
    """Read a folder written by save_activations (mmap=True maps acts.npy instead of reading it).

    A sharded store (shards.py, a folder with manifest.json) is read too: into memory as the same
    Activations (float32), or with stream=True as a shards.ShardedActivations view that reads one
    shard at a time (stream=True on the single-folder artifact gives a view of one shard).

    Refuses, naming the file, an artifact whose files do not agree: acts.npy not a float32 matrix,
    a token table without the columns TOKEN_COLUMNS, counts in meta.json (n_tokens, d_model,
    n_stories) other than the files', story ids outside 0 .. n_stories - 1. verify=True also
    compares acts.npy with meta.json's `acts_sha256` (hashes the whole matrix: seconds). When the
    folder is missing but a complete copy was left by a save that died mid-swap, that copy is
    moved back first (see io.atomic_replace_dir).
    """
    import pandas as pd

    from .shards import is_sharded, open_activations

    if stream or is_sharded(folder):
        view = open_activations(folder, verify=verify)
        return view if stream else view.to_activations()
    folder = Path(folder)
    hint = "run `make activations` or the notebook notebooks/01_extract_activations.ipynb to make it"
    if not folder.is_dir() and not recover_dir(folder):
        raise FileNotFoundError(f"no activations at {folder}: {hint}")
    missing = [f for f in ARTIFACT_FILES if not (folder / f).exists()]
    if missing:
        raise FileNotFoundError(f"activations at {folder} are incomplete (missing {', '.join(missing)}): {hint}")

    def bad(name: str, what: str) -> ValueError:
        return ValueError(f"{folder / name}: {what}; the artifact is damaged or was edited: {hint} again")

    def read(name: str, how):
        try:
            return how(folder / name)
        except Exception as e:  # noqa: BLE001  name the file instead of raising a library's error
            raise bad(name, f"unreadable ({type(e).__name__}: {e})") from None

    acts = read("acts.npy", lambda p: np.load(p, mmap_mode="r" if mmap else None, allow_pickle=False))
    tokens = read("tokens.parquet", pd.read_parquet)
    stories = read("stories.jsonl", lambda p: [json.loads(line)["text"] for line in p.read_text("utf-8").split("\n")
                                               if line.strip()])
    meta = read("meta.json", lambda p: json.loads(p.read_text()))
    counts = read("meta.json", lambda p: {k: meta["counts"][k] for k in ("n_tokens", "d_model", "n_stories")})
    if acts.dtype != np.float32 or acts.ndim != 2:
        raise bad("acts.npy", f"holds {acts.dtype} {acts.shape}, expected a float32 (tokens, d_model) matrix")
    absent = [c for c in TOKEN_COLUMNS if c not in tokens.columns]
    if absent:
        raise bad("tokens.parquet", f"lacks the column(s) {absent} (expected {list(TOKEN_COLUMNS)})")
    if len(tokens) != acts.shape[0]:
        raise bad("tokens.parquet", f"has {len(tokens)} rows but acts.npy {acts.shape[0]}")
    found = {"n_tokens": acts.shape[0], "d_model": acts.shape[1], "n_stories": len(stories)}
    if counts != found:
        raise bad("meta.json", f"counts {counts} disagree with the files: {found}")
    ids = tokens["story_id"].to_numpy()
    if not np.issubdtype(ids.dtype, np.integer):
        raise bad("tokens.parquet", f"story_id has dtype {ids.dtype}, expected integers")
    if len(ids) and (ids.min() < 0 or ids.max() >= len(stories)):
        raise bad("tokens.parquet", f"story_id spans {ids.min()} .. {ids.max()}, outside 0 .. {len(stories) - 1}")
    if verify and acts_checksum(acts) != meta.get("acts_sha256"):
        raise bad("acts.npy", f"its SHA-256 is not meta.json's acts_sha256 {meta.get('acts_sha256')!r}")
    return Activations(acts=acts, tokens=tokens, stories=stories, meta=meta)


def activations_source(data: Activations) -> dict:
    """What produced `data` (model, data source, counts) plus a one-line `label` for tables and
    figures, which starts with OFFLINE STAND-IN when the model is not the one the paper used."""
    model, counts = data.meta["model"], data.meta["counts"]
    n_tokens, d_model = data.shape  # an Activations or a streamed shards.ShardedActivations
    label = (f"OFFLINE STAND-IN {model['name']} (not TinyStories-1M), " if model.get("offline_stand_in")
             else f"{model['name']}, ") + f"{n_tokens:,} tokens x {d_model} from {counts['n_stories']} TinyStories stories"
    return {"model": model, "data_source": data.meta.get("data_source"), "counts": counts, "label": label}
