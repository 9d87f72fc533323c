"""The sharded activation store: activations of any size as fixed-size, memory-mappable shards.

One row per token, like the single-folder artifact of activations.py, cut into shards of
`shard_rows` rows (the last one shorter):

    manifest.json          format, model, layer, data source, extraction config, counts, dtype,
                           every shard's rows and SHA-256; "complete": true once all are written
    shard_00000.npy        float16 or float32 (rows, d_model), memory-mappable
    tokens_00000.parquet   the token table of those rows (row, token_id, token, story_id, position)
    shard_00000.json       written last: the shard is complete (rows, SHA-256 of its two files)
    stories.jsonl          {"story_id", "text"} per line

Extraction (`extract_to_shards`) runs the model on fixed chunks of `chunk_stories` stories (the
same `extract_activations` as the single folder), so a shard's bytes depend only on the settings,
never on which process wrote it or when: an interrupted run resumes at the next missing shard and
ends bit-identical to an uninterrupted one, and under `torchrun` rank r writes the shards
k = r, r + world, ... Every file is written atomically (io.atomic_path).

`open_activations(folder)` (or `load_activations(folder, stream=True)`) returns a
`ShardedActivations`: a streamed view that reads one shard at a time (`batches`) or gathers rows
(`take`), and opens the old single-folder artifact as a store of one shard.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from ..checks import positive_int
from ..io import atomic_path, atomic_write_json, portable

__all__ = ["ShardedActivations", "open_activations", "extract_to_shards", "write_shards", "is_sharded",
           "MANIFEST", "DTYPES"]

MANIFEST = "manifest.json"
FORMAT = "hebb_utils.shards/1"
DTYPES = ("float32", "float16")
DEFAULT_SHARD_ROWS = 1 << 18  # 262,144 rows: 100 MB of float32 at d_model 96, 400 MB at 384 ...
DEFAULT_CHUNK_STORIES = 64
# the settings that define a store's bytes: a resume with other values would mix two extractions
PLAN_KEYS = ("format", "dtype", "shard_rows", "chunk_stories", "stories_sha256", "config", "counts")
CONFIG_KEYS = ("layer", "center", "batch_size", "max_tokens")


def _names(index: int) -> tuple[str, str, str]:
    return f"shard_{index:05d}.npy", f"tokens_{index:05d}.parquet", f"shard_{index:05d}.json"


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def is_sharded(folder: str | os.PathLike) -> bool:
    """Whether `folder` holds a sharded store (a manifest.json), not the single-folder artifact."""
    return (Path(folder) / MANIFEST).is_file()


# ------------------------------------------------------------------------------------------------
# writing


def _dtype(dtype) -> str:
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name not in DTYPES:
        raise ValueError(f"dtype={dtype!r}: expected 'float32' or 'float16' (half the disk, ~3 significant digits)")
    return name


def _write_shard(folder: Path, index: int, acts: np.ndarray, tokens, dtype: str) -> dict:
    """Shard `index`: its matrix, its token table, then its record (the completion mark), each atomically."""
    npy, parquet, record = _names(index)
    for name in (npy, parquet, record):  # temp files of an earlier run of this shard that was killed
        for stale in folder.glob(f".{name}.*"):
            stale.unlink(missing_ok=True)
    with atomic_path(folder / npy) as tmp:
        _save_npy(tmp, np.ascontiguousarray(acts, dtype=dtype))
    if tokens is not None:
        with atomic_path(folder / parquet) as tmp:
            tokens.to_parquet(tmp, index=False)
    info = {"index": index, "rows": int(acts.shape[0]), "file": npy, "sha256": _sha256(folder / npy),
            "tokens_file": parquet if tokens is not None else None,
            "tokens_sha256": _sha256(folder / parquet) if tokens is not None else None}
    atomic_write_json(folder / record, info)
    return info


def _save_npy(path: Path, array: np.ndarray) -> None:
    np.save(path, array)  # a function of its own: the resume test kills the writer here


def _done(folder: Path, index: int, rows: int, verify: bool) -> dict | None:
    """The record of shard `index` if its files are complete (and, with verify, their SHA-256 match)."""
    npy, parquet, record = _names(index)
    try:
        info = json.loads((folder / record).read_text())
        if info["rows"] != rows or not (folder / npy).is_file():
            return None
        if verify and (_sha256(folder / npy) != info["sha256"] or (
                info["tokens_file"] and _sha256(folder / parquet) != info["tokens_sha256"])):
            return None
        return info
    except (OSError, ValueError, KeyError):
        return None


def _write_stories(folder: Path, texts: list[str]) -> str:
    text = "".join(json.dumps({"story_id": i, "text": t}, ensure_ascii=False) + "\n" for i, t in enumerate(texts))
    with atomic_path(folder / "stories.jsonl") as tmp:
        tmp.write_text(text, encoding="utf-8")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _finish(folder: Path, manifest: dict, verify: bool = False) -> bool:
    """Write the complete manifest if every shard is there; returns whether it was."""
    records = []
    for shard in manifest["shards"]:
        info = _done(folder, shard["index"], shard["rows"][1] - shard["rows"][0], verify)
        if info is None:
            return False
        records.append({**shard, **{k: info[k] for k in ("sha256", "tokens_file", "tokens_sha256")}})
    atomic_write_json(folder / MANIFEST, {**manifest, "shards": records, "complete": True})
    return True


def _plan(n_rows: int, shard_rows: int) -> list[dict]:
    starts = range(0, n_rows, shard_rows)
    return [{"index": k, "file": _names(k)[0], "rows": [s, min(s + shard_rows, n_rows)]} for k, s in enumerate(starts)]


def _check_plan(folder: Path, manifest: dict) -> None:
    """An existing store in `folder` must have been planned with the same settings."""
    path = folder / MANIFEST
    if not path.exists():
        return
    try:
        old = json.loads(path.read_text())
    except ValueError:
        return  # unreadable: rewritten (it is written atomically, so this is someone else's file)
    diff = [k for k in PLAN_KEYS if old.get(k) != manifest.get(k)]
    if old.get("model", {}).get("name") != manifest.get("model", {}).get("name"):
        diff.append("model")
    if diff:
        raise ValueError(f"out={folder}: holds a store made with other settings ({', '.join(diff)} differ); "
                         "resume with the same settings, or choose another folder (or delete this one)")


def write_shards(folder: str | os.PathLike, acts, tokens=None, stories: list[str] | None = None,
                 meta: dict | None = None, shard_rows: int = DEFAULT_SHARD_ROWS, dtype: str = "float32") -> Path:
    """Store an in-memory (rows, D) matrix (and optionally its token table and stories) as shards.

    For activations made elsewhere (bring your own): the store then streams like an extraction's.
    `meta` (model, data_source, ...) goes into the manifest.
    """
    acts = np.asarray(acts)
    if acts.ndim != 2 or acts.shape[0] < 1 or acts.dtype.kind != "f":
        raise ValueError(f"acts: expected a (rows >= 1, D) float matrix, got {acts.dtype} {acts.shape}")
    if tokens is not None and len(tokens) != acts.shape[0]:
        raise ValueError(f"tokens: {len(tokens)} rows but acts has {acts.shape[0]}")
    shard_rows, dtype = positive_int("shard_rows", shard_rows), _dtype(dtype)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {**portable(meta or {}), "format": FORMAT, "dtype": dtype, "shard_rows": shard_rows,
                "chunk_stories": None, "complete": False,
                "counts": {**(meta or {}).get("counts", {}), "n_tokens": int(acts.shape[0]), "d_model": int(acts.shape[1]),
                           "n_stories": len(stories or [])},
                "shards": _plan(acts.shape[0], shard_rows)}
    manifest["stories_sha256"] = _write_stories(folder, list(stories or []))
    for shard in manifest["shards"]:
        a, b = shard["rows"]
        _write_shard(folder, shard["index"], acts[a:b], None if tokens is None else tokens.iloc[a:b], dtype)
    manifest["counts"]["n_shards"] = len(manifest["shards"])
    if not _finish(folder, manifest):
        raise RuntimeError(f"{folder}: a shard is missing right after writing it")
    return folder


def _kept_counts(tokenizer, texts: list[str], is_causal: bool, max_tokens, max_positions) -> np.ndarray:
    """Real tokens each story keeps, as extract_activations counts them for this chunk of stories."""
    from .activations import _token_limit, _tokenize

    _, special = _tokenize(tokenizer, texts, is_causal)
    limit = _token_limit(special, max_tokens, max_positions)
    return np.array([min(int((~s).sum()), limit) for s in special], dtype=np.int64)


def extract_to_shards(model, tokenizer, texts, out: str | os.PathLike, layer: int = 5, center: bool = False,
                      batch_size: int = 16, max_tokens: int | None = None, device: str | None = None,
                      shard_rows: int = DEFAULT_SHARD_ROWS, chunk_stories: int = DEFAULT_CHUNK_STORIES,
                      dtype: str = "float32", meta: dict | None = None, verify: bool = True,
                      progress: bool = True) -> Path:
    """Residual stream after block `layer` for every real token of `texts`, written as a sharded store.

    The stories run in fixed chunks of `chunk_stories` through `extract_activations` (so each row
    is what the single-folder extraction of that chunk gives); shard k holds rows
    [k * shard_rows, (k + 1) * shard_rows) of the story-ordered token stream. A store already in
    `out` with the same settings is resumed: shards whose files are complete (with verify, whose
    SHA-256 match their record) are kept, the others are made. Under torch.distributed each rank
    writes the shards k with k % world_size == rank, and the last one to finish writes the complete
    manifest. `meta` (model info, data source) goes into the manifest. Returns Path(out).
    """
    import pandas as pd
    from tqdm import tqdm

    from .activations import _check_texts_and_layer, _versions, extract_activations
    from .sources import resolve_device
    from ..parallel import rank_world

    texts, layer, (n_layers, is_causal, max_positions) = _check_texts_and_layer(model, texts, layer)
    batch_size, shard_rows = positive_int("batch_size", batch_size), positive_int("shard_rows", shard_rows)
    chunk_stories, dtype = positive_int("chunk_stories", chunk_stories), _dtype(dtype)
    if max_tokens is not None:
        max_tokens = positive_int("max_tokens", max_tokens, hint="or None: tokens per story")
    device = resolve_device(device)
    rank, world = rank_world()
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)

    # the plan: rows per story (tokenizing is cheap next to the model), chunks of stories, shards of rows
    chunks = [(c, min(c + chunk_stories, len(texts))) for c in range(0, len(texts), chunk_stories)]
    kept = np.concatenate([_kept_counts(tokenizer, texts[a:b], is_causal, max_tokens, max_positions) for a, b in chunks])
    story_rows = np.concatenate([[0], np.cumsum(kept)])  # first row of each story, then the total
    n_tokens = int(story_rows[-1])
    if n_tokens == 0:
        raise ValueError("texts: the stories hold no tokens to extract")
    chunk_rows = story_rows[[a for a, _ in chunks] + [len(texts)]]  # (n_chunks + 1,) first row of each chunk
    stories_text = "".join(json.dumps({"story_id": i, "text": t}, ensure_ascii=False) + "\n" for i, t in enumerate(texts))
    config = {"layer": layer, "center": bool(center), "batch_size": batch_size, "max_tokens": max_tokens,
              "hook": f"blocks.{layer}.hook_resid_post (hidden_states[{layer + 1}])", "bos_prepended": is_causal,
              "special_tokens_dropped": True}
    manifest = {**portable(meta or {}), "format": FORMAT, "dtype": dtype, "shard_rows": shard_rows,
                "chunk_stories": chunk_stories, "complete": False, "config": config,
                "counts": {"n_tokens": n_tokens, "d_model": int(model.config.hidden_size), "n_stories": len(texts),
                           "n_shards": -(-n_tokens // shard_rows), "n_empty_stories": int((kept == 0).sum())},
                "stories_sha256": hashlib.sha256(stories_text.encode("utf-8")).hexdigest(),
                "shards": _plan(n_tokens, shard_rows), "versions": _versions()}
    _check_plan(folder, manifest)
    if rank == 0 and not (folder / MANIFEST).exists():
        _write_stories(folder, texts)
        atomic_write_json(folder / MANIFEST, manifest)

    mine = [s for s in manifest["shards"] if s["index"] % world == rank]
    todo = [s for s in mine if _done(folder, s["index"], s["rows"][1] - s["rows"][0], verify) is None]
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
            _write_shard(folder, shard["index"], acts, tokens.reset_index(drop=True), dtype)
            bar.update(b - a)
    if not (folder / "stories.jsonl").exists():  # rank 0 is resuming an older plan, or another rank got here first
        _write_stories(folder, texts)
    _finish(folder, manifest)  # whoever finishes last finds every shard and writes the complete manifest
    return folder


# ------------------------------------------------------------------------------------------------
# reading


class ShardedActivations:
    """A streamed view of a sharded store (or of the single-folder artifact, as one shard).

    len(view) rows of view.dim floats, stored as view.dtype; view.meta is the manifest (or
    meta.json). Nothing is read on opening but the manifest: `batches` maps one shard at a time
    and yields float32 tensors in row order; `take(rows)` gathers rows by index; `tokens` and
    `stories` are read when first asked for; `to_activations()` loads everything (an Activations).
    At most `max_open` shards are mapped at once (None: all, for random access).
    """

    def __init__(self, folder: str | os.PathLike, verify: bool = False, max_open: int | None = 2):
        from .activations import load_activations

        self.folder = folder = Path(folder)
        self.max_open = max_open
        self._open: OrderedDict[int, np.ndarray] = OrderedDict()
        self._tokens = self._stories = None
        if not is_sharded(folder):  # the single-folder artifact: checked by load_activations, one shard
            legacy = load_activations(folder, mmap=True, verify=verify)
            self.meta, self.legacy = legacy.meta, legacy
            self.files = [folder / "acts.npy"]
            self.offsets = np.array([0, legacy.acts.shape[0]], dtype=np.int64)
            self.dim, self.dtype = int(legacy.acts.shape[1]), "float32"
            return
        self.legacy = None
        hint = "run the same extract command again to resume it"
        try:
            self.meta = json.loads((folder / MANIFEST).read_text())
            shards, counts = self.meta["shards"], self.meta["counts"]
        except (OSError, ValueError, KeyError) as e:
            raise ValueError(f"{folder / MANIFEST}: unreadable ({type(e).__name__}: {e}); the store is damaged") from None
        if not self.meta.get("complete"):
            have = sum(_done(folder, s["index"], s["rows"][1] - s["rows"][0], False) is not None for s in shards)
            raise ValueError(f"{folder}: the extraction is incomplete ({have} of {len(shards)} shards written); {hint}")
        self.files = [folder / s["file"] for s in shards]
        self.offsets = np.array([s["rows"][0] for s in shards] + [shards[-1]["rows"][1]], dtype=np.int64)
        self.dim, self.dtype = int(counts["d_model"]), self.meta["dtype"]
        missing = [f.name for f in self.files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"{folder}: shard file(s) {missing[:3]} missing; the store is damaged: {hint}")
        if verify:
            for s, f in zip(shards, self.files):
                if _sha256(f) != s["sha256"]:
                    raise ValueError(f"{f}: its SHA-256 is not the manifest's; the shard is damaged: delete it and {hint}")

    # shape ------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def shape(self) -> tuple[int, int]:
        return len(self), self.dim

    @property
    def n_shards(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return f"ShardedActivations({self.folder}, {self.dtype}{self.shape}, {self.n_shards} shard(s))"

    # rows -------------------------------------------------------------------------------------
    def shard(self, index: int) -> np.ndarray:
        """Shard `index` as a read-only memory map (stored dtype)."""
        if index in self._open:
            self._open.move_to_end(index)
            return self._open[index]
        array = np.load(self.files[index], mmap_mode="r", allow_pickle=False)
        rows = int(self.offsets[index + 1] - self.offsets[index])
        if array.ndim != 2 or array.shape != (rows, self.dim) or array.dtype.name != self.dtype:
            raise ValueError(f"{self.files[index]}: holds {array.dtype} {array.shape}, the manifest says "
                             f"{self.dtype} ({rows}, {self.dim}); the store is damaged")
        self._open[index] = array
        while self.max_open is not None and len(self._open) > self.max_open:
            self._open.popitem(last=False)
        return array

    def batches(self, batch_size: int, device=None):
        """The rows in order as float32 tensors of up to `batch_size` rows (a batch never spans two
        shards), one shard mapped at a time."""
        batch_size = positive_int("batch_size", batch_size)
        for k in range(self.n_shards):
            array = self.shard(k)
            for start in range(0, array.shape[0], batch_size):
                yield torch.from_numpy(np.array(array[start:start + batch_size], dtype=np.float32)).to(device)

    def take(self, rows) -> torch.Tensor:
        """Rows `rows` (int array, any order) as a float32 (len(rows), D) tensor, in that order."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = np.empty((rows.size, self.dim), dtype=np.float32)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"rows span {rows.min()}..{rows.max()}, outside 0..{len(self) - 1}")
        where = np.searchsorted(self.offsets, rows, side="right") - 1  # the shard of each row
        for k in np.unique(where):  # a handful of shards per batch; no loop over rows
            hit = where == k
            local = rows[hit] - self.offsets[k]
            order = np.argsort(local, kind="stable")  # ascending reads from the map
            block = self.shard(int(k))[local[order]]
            out[np.flatnonzero(hit)[order]] = block
        return torch.from_numpy(out)

    def read(self, start: int, stop: int) -> torch.Tensor:
        """Rows start..stop-1 as a float32 tensor."""
        return self.take(np.arange(start, stop))

    # the rest ---------------------------------------------------------------------------------
    @property
    def tokens(self):
        """The token table of all rows (pandas), read on first use."""
        if self._tokens is None:
            if self.legacy is not None:
                self._tokens = self.legacy.tokens
            else:
                import pandas as pd

                files = [self.folder / s["tokens_file"] for s in self.meta["shards"] if s.get("tokens_file")]
                if len(files) != self.n_shards:
                    raise ValueError(f"{self.folder}: this store has no token table (written without one)")
                self._tokens = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        return self._tokens

    @property
    def stories(self) -> list[str]:
        if self._stories is None:
            if self.legacy is not None:
                self._stories = self.legacy.stories
            else:
                text = (self.folder / "stories.jsonl").read_text("utf-8")
                self._stories = [json.loads(line)["text"] for line in text.split("\n") if line.strip()]
        return self._stories

    def to_activations(self):
        """Everything in memory, as the Activations of the single-folder artifact (float32 acts)."""
        from .activations import Activations

        if self.legacy is not None:
            return Activations(acts=np.asarray(self.legacy.acts), tokens=self.tokens, stories=self.stories,
                               meta=self.meta)
        acts = np.concatenate([np.asarray(self.shard(k), dtype=np.float32) for k in range(self.n_shards)])
        has_tokens = all(s.get("tokens_file") for s in self.meta["shards"])
        if has_tokens:
            tokens = self.tokens
        else:
            import pandas as pd

            tokens = pd.DataFrame({"row": np.arange(len(self), dtype=np.int64)})
        return Activations(acts=acts, tokens=tokens, stories=self.stories, meta=self.meta)


def open_activations(folder: str | os.PathLike, verify: bool = False, max_open: int | None = 2) -> ShardedActivations:
    """A ShardedActivations of `folder`: a sharded store, or the single-folder artifact as one shard."""
    folder = Path(folder)
    if not folder.is_dir() and not is_sharded(folder):
        from ..io import recover_dir

        if not recover_dir(folder):
            raise FileNotFoundError(f"no activations at {folder}: make them with `python -m hebb_utils extract "
                                    "... --out DIR` or the notebook notebooks/01_extract_activations.ipynb")
    return ShardedActivations(folder, verify=verify, max_open=max_open)
