"""Residual-stream activations of a language model, one row per token (the published `get_acts_tokens`).

Everything here runs a model; what reads and writes the artifacts is store.py.

`extract_activations` runs the model over stories in padded batches and keeps the residual stream
after block `layer` (TransformerLens `blocks.{layer}.hook_resid_post`: the block's output, before
any final norm; Hugging Face `hidden_states[layer + 1]`) for every real token. The forward pass
stops there: blocks after `layer` never run. By default `layer` is the block at the published
relative depth (block_at_depth): TinyStories-1M's block 5 of 8, SmolLM2-135M's block 21 of 30.

- causal LMs (TinyStories-1M, SmolLM2, GPT-2, ...): the tokenizer's beginning-of-text token is
  prepended (GPT-2's <|endoftext|>, id 50256; SmolLM2-Instruct's <|im_start|>, id 1), as
  TransformerLens does, and its row dropped;
- encoders (BERT): their special tokens ([CLS], [SEP]) are dropped;

so in both cases position 0 is the first real token of a story. store.save_activations writes the
result as the single-folder artifact.

`extract_to_shards` writes a sharded store (store.ShardWriter) instead: it runs the model on fixed
chunks of `chunk_stories` stories (through the same `extract_activations`), so a shard's bytes
depend only on the settings, never on which process wrote it or when: an interrupted run resumes
at the next missing shard and ends bit-identical to an uninterrupted one, and under `torchrun`
rank r writes the shards k = r, r + world, ...
"""
from __future__ import annotations

import math
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from ..checks import positive_int
from ..parallel import rank_world
from .sources import is_causal_lm, resolve_device
from .store import DEFAULT_CHUNK_STORIES, DEFAULT_SHARD_ROWS, Activations, ShardWriter, check_dtype, library_versions

__all__ = ["extract_activations", "extract_to_shards", "block_modules", "block_at_depth", "default_center",
           "extraction_config", "tokenize_stories", "token_limit", "rows_per_story", "PUBLISHED_DEPTH"]

# The published run kept TinyStories-1M's residual stream after block 5 of 8: 6 of 8 blocks run.
PUBLISHED_DEPTH = 6 / 8


class _StopForward(Exception):
    """Raised by the hook once the wanted block has run: the blocks after it are not needed."""


def block_modules(model: torch.nn.Module, n_layers: int) -> torch.nn.ModuleList:
    """The model's list of transformer blocks (transformer.h, encoder.layer, model.layers, ...)."""
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n_layers:
            return module
    raise ValueError(f"found no torch.nn.ModuleList of {n_layers} blocks in {type(model).__name__}")


def block_at_depth(n_layers: int, depth: float = PUBLISHED_DEPTH) -> int:
    """The block k whose output lies `depth` of the way through a model of `n_layers` blocks: the
    k with (k + 1) / n_layers nearest to depth, the shallower one on a tie (fewer blocks to run).

    block_at_depth(8) = 5 (the published block of TinyStories-1M), block_at_depth(30) = 21
    (SmolLM2-135M: 22 of 30 blocks run, 0.733; block 22 would be 0.767).
    """
    n_layers = positive_int("n_layers", n_layers)
    if not 0 < depth <= 1:
        raise ValueError(f"depth={depth!r}: expected a fraction of the model's blocks in (0, 1], e.g. 0.75")
    return max(0, math.ceil(depth * n_layers - 0.5) - 1)


def default_center(model_info: dict) -> bool:
    """Centre by default where TransformerLens does: causal LMs with LayerNorm (TinyStories-1M, GPT-2).

    The published run read TinyStories-1M through TransformerLens, which by default folds the mean
    out of every weight that writes to the residual stream (center_writing_weights), so its
    hook_resid_post has zero mean over d_model. It refuses that for RMSNorm models (Llama, SmolLM2),
    whose norm keeps the mean, so their residual stream stays raw here too; so do encoders'.
    """
    return bool(model_info["is_causal"]) and model_info.get("norm", "layernorm") == "layernorm"


def _model_facts(model) -> tuple[int, bool, int | None]:
    config = model.config
    return int(config.num_hidden_layers), is_causal_lm(config), getattr(config, "max_position_embeddings", None)


def _check_texts_and_layer(model, texts, layer):
    """(texts as a list, layer, _model_facts(model)) after the checks every extraction makes."""
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise ValueError("texts: expected a list of strings (one story each)")
    texts = list(texts)
    if not texts:
        raise ValueError("texts: expected at least one story, got none")
    facts = _model_facts(model)
    n_layers = facts[0]
    if layer is None:
        return texts, block_at_depth(n_layers), facts
    where = (f"0 <= layer < {n_layers}: this model has {n_layers} blocks; or None: block {block_at_depth(n_layers)}, "
             "at the published relative depth")
    layer = positive_int("layer", layer, minimum=0, hint=where)
    if layer >= n_layers:
        raise ValueError(f"layer={layer!r}: expected an integer block index ({where})")
    return texts, layer, facts


def extraction_config(layer: int, center: bool, batch_size: int, max_tokens: int | None, is_causal: bool,
                      **run) -> dict:
    """The extraction settings every artifact records (meta.json's and the manifest's "config").

    `run` adds what only the single-folder artifact records (token_limit, device); the store's
    config holds only what defines its bytes, so that a resume on another device still matches.
    """
    return {"layer": int(layer), "center": bool(center), "batch_size": int(batch_size),
            "max_tokens": None if max_tokens is None else int(max_tokens), **run,
            "hook": f"blocks.{layer}.hook_resid_post (hidden_states[{layer + 1}])",
            "bos_prepended": bool(is_causal), "special_tokens_dropped": True}


def token_limit(special: list[np.ndarray], max_tokens: int | None, max_positions: int | None) -> float:
    """Real tokens a story keeps at most: max_tokens, and what fits the model's positions beside the
    batch's special tokens (np.inf: no limit). The shard planner counts rows with the same number."""
    limit = max_tokens if max_tokens is not None else np.inf
    if max_positions:
        limit = min(limit, max_positions - max(int(s.sum()) for s in special))
    return limit


def tokenize_stories(tokenizer, texts: list[str], is_causal: bool):
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
def extract_activations(model, tokenizer, texts, layer: int | None = None, center: bool = False, batch_size: int = 16,
                        max_tokens: int | None = None, device: str | None = None,
                        progress: bool = True) -> Activations:
    """Residual stream after block `layer` (None: block_at_depth) for every real token of `texts`.

    Returns Activations with acts float32 (tokens, d_model) in story order, and the token table.
    max_tokens caps the real tokens per story (None: the model's position limit only). center=True
    subtracts each token vector's mean over d_model, as TransformerLens does by default. The model
    is moved to `device` (None/'auto': the GPU when there is one) and put in eval mode.
    """
    import pandas as pd
    from tqdm import tqdm  # text bar: stays readable in executed notebooks and their HTML

    texts, layer, (n_layers, is_causal, max_positions) = _check_texts_and_layer(model, texts, layer)
    batch_size = positive_int("batch_size", batch_size)
    if max_tokens is not None:
        max_tokens = positive_int("max_tokens", max_tokens, hint="or None: tokens per story")
    device = resolve_device(device)
    model = model.to(device).eval()

    # tokenise, then truncate each story to `limit` real tokens (specials are kept)
    ids, special = tokenize_stories(tokenizer, texts, is_causal)
    limit = token_limit(special, max_tokens, max_positions)
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
        "config": extraction_config(layer, center, batch_size, max_tokens, is_causal,
                                    token_limit=None if limit == np.inf else int(limit), device=device),
        "counts": {"n_stories": len(texts), "n_tokens": n_tokens, "d_model": int(acts.shape[1]),
                   "n_stories_truncated": n_truncated, "n_empty_stories": int((n_kept == 0).sum())},
    }
    return Activations(acts=acts.numpy(), tokens=tokens, stories=texts, meta=meta)


def rows_per_story(tokenizer, texts: list[str], is_causal: bool, max_tokens, max_positions) -> np.ndarray:
    """Real tokens each story keeps, as extract_activations counts them for this chunk of stories
    (the planner of a store's rows: tokenizing is cheap next to the model)."""
    _, special = tokenize_stories(tokenizer, texts, is_causal)
    limit = token_limit(special, max_tokens, max_positions)
    return np.array([min(int((~s).sum()), limit) for s in special], dtype=np.int64)


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def extract_to_shards(model, tokenizer, texts, out: str | os.PathLike, layer: int | None = None, center: bool = False,
                      batch_size: int = 16, max_tokens: int | None = None, device: str | None = None,
                      shard_rows: int = DEFAULT_SHARD_ROWS, chunk_stories: int = DEFAULT_CHUNK_STORIES,
                      dtype: str = "float32", meta: dict | None = None, verify: bool = True,
                      progress: bool = True, force: bool = False) -> Path:
    """Residual stream after block `layer` for every real token of `texts`, written as a sharded store.

    The stories run in fixed chunks of `chunk_stories` through `extract_activations` (so each row
    is what the single-folder extraction of that chunk gives); shard k holds rows
    [k * shard_rows, (k + 1) * shard_rows) of the story-ordered token stream. A store already in
    `out` with the same settings is resumed: shards whose files are complete (with verify, whose
    SHA-256 match their record) are kept, the others are made. Anything else in `out` (a store of
    other settings, the single-folder artifact, other files) raises store.StoreExistsError, unless
    force=True: then it is replaced (and every shard made again). Under torch.distributed each rank
    writes the shards k with k % world_size == rank, and the last one to finish writes the complete
    manifest. `meta` (model info, data source) goes into the manifest. Returns Path(out).
    """
    import pandas as pd
    from tqdm import tqdm

    texts, layer, (n_layers, is_causal, max_positions) = _check_texts_and_layer(model, texts, layer)
    batch_size, shard_rows = positive_int("batch_size", batch_size), positive_int("shard_rows", shard_rows)
    chunk_stories, dtype = positive_int("chunk_stories", chunk_stories), check_dtype(dtype)
    if max_tokens is not None:
        max_tokens = positive_int("max_tokens", max_tokens, hint="or None: tokens per story")
    device = resolve_device(device)
    rank, world = rank_world()
    folder = Path(out)

    # the plan: rows per story (tokenizing is cheap next to the model), chunks of stories, shards of rows
    chunks = [(c, min(c + chunk_stories, len(texts))) for c in range(0, len(texts), chunk_stories)]
    kept = np.concatenate([rows_per_story(tokenizer, texts[a:b], is_causal, max_tokens, max_positions)
                           for a, b in chunks])
    story_rows = np.concatenate([[0], np.cumsum(kept)])  # first row of each story, then the total
    n_tokens = int(story_rows[-1])
    if n_tokens == 0:
        raise ValueError("texts: the stories hold no tokens to extract")
    chunk_rows = story_rows[[a for a, _ in chunks] + [len(texts)]]  # (n_chunks + 1,) first row of each chunk
    writer = ShardWriter(folder, n_tokens, int(model.config.hidden_size), texts, shard_rows=shard_rows, dtype=dtype,
                         meta=meta, chunk_stories=chunk_stories,
                         config=extraction_config(layer, center, batch_size, max_tokens, is_causal),
                         counts={"n_empty_stories": int((kept == 0).sum())}, versions=library_versions())
    action = writer.check(replace=force)  # every rank sees the folder before rank 0 touches it
    _barrier(world)
    if rank == 0:
        writer.begin(action)
    _barrier(world)  # the others write their shards once the manifest of this plan is there

    mine = [s for s in writer.shards if s["index"] % world == rank]
    todo = [s for s in mine if action != "resume" or writer.done(s, verify) is None]
    cache: OrderedDict[int, tuple[np.ndarray, object]] = OrderedDict()  # the last chunks extracted

    def chunk(c: int):
        if c not in cache:
            a, b = chunks[c]
            res = extract_activations(model, tokenizer, texts[a:b], layer=layer, center=center, batch_size=batch_size,
                                      max_tokens=max_tokens, device=device, progress=False)
            if res.acts.shape[0] != chunk_rows[c + 1] - chunk_rows[c]:
                raise RuntimeError(f"stories {a}..{b - 1} gave {res.acts.shape[0]} rows, the plan counted "
                                   f"{chunk_rows[c + 1] - chunk_rows[c]}: the tokenizer is not deterministic")
            res.tokens["row"] += chunk_rows[c]
            res.tokens["story_id"] += a
            cache[c] = (res.acts, res.tokens)
            while len(cache) > 2:
                cache.popitem(last=False)
        return cache[c]

    with tqdm(total=sum(s["rows"][1] - s["rows"][0] for s in todo), unit="token", unit_scale=True,
              desc=f"extract layer {layer}" + (f" rank {rank}/{world}" if world > 1 else ""),
              **({} if progress else {"disable": True})) as bar:
        for shard in todo:
            a, b = shard["rows"]
            first = int(np.searchsorted(chunk_rows, a, side="right")) - 1
            last = int(np.searchsorted(chunk_rows, b, side="left"))  # chunks first .. last - 1 hold rows a..b-1
            parts = [chunk(c) for c in range(first, last)]
            acts = np.concatenate([p[0] for p in parts])[a - chunk_rows[first]: b - chunk_rows[first]]
            tokens = pd.concat([p[1] for p in parts], ignore_index=True).iloc[a - chunk_rows[first]: b - chunk_rows[first]]
            writer.write(shard, acts, tokens.reset_index(drop=True))
            bar.update(b - a)
    writer.finish()  # whoever finishes last finds every shard and writes the complete manifest
    return folder
