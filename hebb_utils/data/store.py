"""Activation artifacts on disk: the single-folder artifact and the sharded store, read and written.

Nothing here runs a model (that is extract.py); everything that reads or writes activations is here.

The single-folder artifact (`save_activations`, read by `read_artifact`), written atomically:

    acts.npy        float32 (tokens, d_model)
    tokens.parquet  row, token_id, token, story_id, position
    stories.jsonl   {"story_id", "text"} per line
    meta.json       config, model, data source, counts, versions

The sharded store: one row per token cut into shards of `shard_rows` rows (the last one shorter):

    manifest.json          format, model, layer, data source, extraction config, counts, dtype, every
                           shard's rows, size, SHA-256 and the SHA-256 of its first and last 64 KiB;
                           "complete": true once all are written
    shard_00000.npy        float16 or float32 (rows, d_model), memory-mappable
    tokens_00000.parquet   the token table of those rows (row, token_id, token, story_id, position)
    shard_00000.json       written last: the shard is complete (rows, size, SHA-256 of its two files)
    stories.jsonl          {"story_id", "text"} per line

`ShardWriter` writes a store in a fixed order, so that an interrupted write never reads as complete:
the manifest of the new plan (complete: false) first, then the shards, the complete manifest last
(and a store of another plan is cleared only after its manifest says incomplete). Every file is
written atomically (io.atomic_path). `write_shards` (a matrix you have) and extract.extract_to_shards
(a model's activations) both use it.

Reading: `load_activations(folder)` reads either format into memory as an `Activations`;
`open_activations(folder)` (or `load_activations(folder, stream=True)`) returns a
`ShardedActivations` view that maps one shard at a time, and opens the single-folder artifact as a
store of one shard. Opening checks, cheaply, every shard against the manifest (file names inside
the folder, size, the .npy header's shape and dtype, the hash of its first and last 64 KiB, the
token table's row count); a token table's SHA-256 is checked when it is read; verify=True hashes
every file whole on opening.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..checks import positive_int
from ..io import atomic_path, atomic_replace_dir, atomic_write_json, portable, recover_dir
from .sources import model_label

__all__ = ["Activations", "save_activations", "read_artifact", "load_activations", "acts_checksum",
           "activations_source", "library_versions", "write_stories", "read_stories", "stories_sha256",
           "ShardWriter", "StoreExistsError", "write_shards", "ShardedActivations", "open_activations", "is_sharded",
           "check_dtype", "store_state", "ARTIFACT_FILES", "TOKEN_COLUMNS", "MANIFEST", "FORMAT", "DTYPES",
           "DEFAULT_SHARD_ROWS", "DEFAULT_CHUNK_STORIES"]

ARTIFACT_FILES = ("acts.npy", "tokens.parquet", "stories.jsonl", "meta.json")
TOKEN_COLUMNS = ("row", "token_id", "token", "story_id", "position")
MANIFEST = "manifest.json"
STORIES = "stories.jsonl"
FORMAT = "hebb_utils.shards/1"
DTYPES = ("float32", "float16")
DEFAULT_SHARD_ROWS = 1 << 18  # 262,144 rows: 100 MB of float32 at d_model 96, 400 MB at 384 ...
DEFAULT_CHUNK_STORIES = 64
# the settings that define a store's bytes: a resume with other values would mix two extractions
PLAN_KEYS = ("format", "dtype", "shard_rows", "chunk_stories", "stories_sha256", "config", "counts")
CONFIG_KEYS = ("layer", "center", "batch_size", "max_tokens")
EDGE_BYTES = 1 << 16  # the cheap content check hashes this much at each end of a shard
# the files a writer of either format makes in a folder (and the temp files io.atomic_path makes of them)
_STORE_FILE = re.compile(r"(?:shard|tokens)_\d{5,}\.(?:npy|json|parquet)")
_OWN_NAMES = (MANIFEST, *ARTIFACT_FILES)
_HINT_ARTIFACT = "run `make activations` or the notebook notebooks/01_extract_activations.ipynb to make it"
_HINT_STORE = "write it again (the same extract command resumes it)"


def _flag(name: str, value) -> bool:
    """`value` as a bool: True or False (numpy's too); a string or a number is refused, not read as truthy."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}={value!r}: expected True or False")
    return bool(value)


def _texts(name: str, stories) -> list[str]:
    """`stories` as a list of story texts; a single string (which list() would cut into one story per
    character) and entries that are not strings are refused."""
    if isinstance(stories, (str, bytes)):
        raise ValueError(f"{name}={stories!r:.60}: a single string, which would be stored as {len(stories)} "
                         "one-character stories; pass a list of texts (e.g. [text])")
    try:
        texts = list(stories)
    except TypeError:
        raise ValueError(f"{name}: expected a list of story texts, got {type(stories).__name__}") from None
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise ValueError(f"{name}[{bad}] is {type(texts[bad]).__name__} {texts[bad]!r:.60}: expected a list of "
                         "story texts (str)")
    return texts


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


# ------------------------------------------------------------------------------------------------
# shared by both formats


def library_versions() -> dict:
    """The versions recorded in every artifact (python, torch, numpy, transformers, pandas, datasets)."""
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


def acts_checksum(acts: np.ndarray) -> str:
    """SHA-256 of the float32 activation matrix's bytes (C order): equal iff bit-identical."""
    return hashlib.sha256(np.ascontiguousarray(acts, dtype=np.float32).tobytes()).hexdigest()


def _stories_text(texts: list[str]) -> str:
    return "".join(json.dumps({"story_id": i, "text": t}, ensure_ascii=False) + "\n" for i, t in enumerate(texts))


def stories_sha256(texts: list[str]) -> str:
    """SHA-256 of the stories.jsonl that write_stories writes for `texts`."""
    return hashlib.sha256(_stories_text(_texts("texts", texts)).encode("utf-8")).hexdigest()


def write_stories(folder: str | os.PathLike, texts: list[str]) -> str:
    """Write folder/stories.jsonl ({"story_id", "text"} per line) atomically; returns its SHA-256."""
    text = _stories_text(_texts("texts", texts))
    with atomic_path(Path(folder) / STORIES) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_stories(path: str | os.PathLike) -> list[str]:
    """The texts of a stories.jsonl, in story order."""
    return [json.loads(line)["text"] for line in Path(path).read_text("utf-8").split("\n") if line.strip()]


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _edges_sha256(path: Path) -> str:
    """SHA-256 of the size and the first and last EDGE_BYTES of a file (the whole file when smaller)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        h.update(str(size).encode())
        h.update(f.read(EDGE_BYTES))
        if size > EDGE_BYTES:
            f.seek(max(EDGE_BYTES, size - EDGE_BYTES))
            h.update(f.read())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------
# the single-folder artifact


def save_activations(folder: str | os.PathLike, result: Activations, stories: list[str] | None = None,
                     meta: dict | None = None) -> Path:
    """Write the artifact folder atomically: either the complete new folder or the old one, never a mix.

    `stories` defaults to result.stories; `meta` (model info, data source, ...) is merged into
    result.meta, and the library versions are added.
    """
    stories = _texts("result.stories" if stories is None else "stories", result.stories if stories is None else stories)
    acts = np.asarray(result.acts, dtype=np.float32)
    if acts.ndim != 2 or acts.shape[0] != len(result.tokens):
        raise ValueError(f"result: acts {acts.shape} and the token table ({len(result.tokens)} rows) disagree")
    if len(result.tokens) and int(result.tokens["story_id"].max()) >= len(stories):
        raise ValueError(f"stories: {len(stories)} texts, but the token table refers to story "
                         f"{int(result.tokens['story_id'].max())}")
    full_meta = portable({**result.meta, **(meta or {}), "files": list(ARTIFACT_FILES), "versions": library_versions()})
    full_meta.setdefault("counts", {}).update(n_tokens=int(acts.shape[0]), d_model=int(acts.shape[1]),
                                              n_stories=len(stories))
    full_meta["acts_sha256"] = acts_checksum(acts)  # two extractions on one machine give the same bytes
    folder = Path(folder)
    with atomic_replace_dir(folder) as tmp:
        np.save(tmp / "acts.npy", acts)
        result.tokens.loc[:, list(TOKEN_COLUMNS)].to_parquet(tmp / "tokens.parquet", index=False)
        write_stories(tmp, stories)
        atomic_write_json(tmp / "meta.json", full_meta)
    return folder


def read_artifact(folder: str | os.PathLike, mmap: bool = False, verify: bool = False) -> Activations:
    """Read a folder written by save_activations (mmap=True maps acts.npy instead of reading it).

    Refuses, naming the file, an artifact whose files do not agree: acts.npy not a float32 matrix,
    a token table without the columns TOKEN_COLUMNS, counts in meta.json (n_tokens, d_model,
    n_stories) other than the files', story ids outside 0 .. n_stories - 1. verify=True also
    compares acts.npy with meta.json's `acts_sha256` (hashes the whole matrix: seconds). When the
    folder is missing but a complete copy was left by a save that died mid-swap, that copy is
    moved back first (see io.atomic_replace_dir).
    """
    import pandas as pd

    mmap, verify = _flag("mmap", mmap), _flag("verify", verify)
    folder = Path(folder)
    hint = _HINT_ARTIFACT
    if not folder.is_dir() and not recover_dir(folder):
        if folder.exists():
            raise FileNotFoundError(f"no activations at {folder}: it is a file, not a folder of activations ({hint})")
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
    stories = read("stories.jsonl", read_stories)
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


# ------------------------------------------------------------------------------------------------
# the sharded store: writing


def _names(index: int) -> tuple[str, str, str]:
    return f"shard_{index:05d}.npy", f"tokens_{index:05d}.parquet", f"shard_{index:05d}.json"


def is_sharded(folder: str | os.PathLike) -> bool:
    """Whether `folder` holds a sharded store (a manifest.json), not the single-folder artifact."""
    return (Path(folder) / MANIFEST).is_file()


def is_activation_folder(folder: str | os.PathLike) -> bool:
    """Whether `folder` holds activations in either format (a manifest.json, or an acts.npy): what no
    other output may be written into."""
    folder = Path(folder)
    return (folder / MANIFEST).is_file() or (folder / "acts.npy").exists()


def check_dtype(dtype) -> str:
    """The stored dtype's name, 'float32' or 'float16'."""
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name not in DTYPES:
        raise ValueError(f"dtype={dtype!r}: expected 'float32' or 'float16' (half the disk, ~3 significant digits)")
    return name


def _own_file(name: str) -> bool:
    """A file a writer of either format makes (or the temp file io.atomic_path makes of one)."""
    if name.startswith("."):  # .NAME.XXXX.SUFFIX of io.atomic_path
        base = name[1:]
        return any(base.startswith(own + ".") for own in _OWN_NAMES) or bool(
            re.match(r"(?:shard|tokens)_\d{5,}\.(?:npy|json|parquet)\.", base))
    return name in _OWN_NAMES or bool(_STORE_FILE.fullmatch(name))


def store_state(folder: str | os.PathLike) -> tuple[str, str]:
    """What `folder` holds, as (kind, description): kind is "absent" (no folder, or an empty one, or
    only the temp files of a killed writer), "store" (a manifest.json) or "other" (a single-folder
    artifact, other files). Raises NotADirectoryError when `folder` is a file."""
    folder = Path(folder)
    if not folder.exists():
        return "absent", "no folder"
    if not folder.is_dir():
        raise NotADirectoryError(f"out={folder}: is a file, not a folder")
    if (folder / MANIFEST).is_file():
        return "store", "a sharded store"
    names = [p.name for p in folder.iterdir()]
    real = [n for n in names if not (n.startswith(".") and _own_file(n))]
    if not real:
        return "absent", "an empty folder"
    if "acts.npy" in real or "meta.json" in real:
        return "other", "holds a single-folder activation artifact (acts.npy, meta.json)"
    shown = ", ".join(sorted(real)[:3]) + (", ..." if len(real) > 3 else "")
    return "other", f"is not empty ({len(real)} entries: {shown}) and holds no activation store to resume"


class StoreExistsError(ValueError):
    """The folder holds something other than a store of the same plan; `reason` says what."""

    def __init__(self, folder: Path, reason: str):
        self.folder, self.reason = Path(folder), reason
        super().__init__(f"out={folder}: {reason}; resume with the same settings, choose another folder, or "
                         "replace it (force=True; --force on the command line)")


class ShardWriter:
    """Writes one sharded store, in the order that keeps a reader from ever seeing a mix:

        writer = ShardWriter(folder, n_rows, d_model, stories, shard_rows=..., dtype=..., meta=...)
        action = writer.check(replace=False)   # "new", "resume" or "replace" (else StoreExistsError)
        writer.begin(action)                   # the incomplete manifest of this plan first (one process)
        for shard in writer.shards:
            if writer.done(shard) is None:
                writer.write(shard, acts, tokens)
        writer.finish()                        # the complete manifest, last, once every shard is there

    `manifest` is the plan: format, dtype, shard_rows, chunk_stories, config, counts, the stories'
    SHA-256 and every shard's rows. A store of the same plan in `folder` is resumed: its complete
    shards are kept. Anything else there is refused unless replace=True.
    """

    def __init__(self, folder: str | os.PathLike, n_rows: int, d_model: int, stories: list[str], *,
                 shard_rows: int = DEFAULT_SHARD_ROWS, dtype: str = "float32", meta: dict | None = None,
                 chunk_stories: int | None = None, config: dict | None = None, counts: dict | None = None,
                 versions: dict | None = None):
        self.folder = Path(folder)
        self.stories = _texts("stories", stories)
        shard_rows, dtype = positive_int("shard_rows", shard_rows), check_dtype(dtype)
        n_rows, d_model = positive_int("n_rows", n_rows), positive_int("d_model", d_model)
        starts = range(0, n_rows, shard_rows)
        shards = [{"index": k, "file": _names(k)[0], "rows": [s, min(s + shard_rows, n_rows)]}
                  for k, s in enumerate(starts)]
        manifest = {**portable(meta or {}), "format": FORMAT, "dtype": dtype, "shard_rows": shard_rows,
                    "chunk_stories": chunk_stories, "complete": False,
                    "counts": {**(counts or {}), "n_tokens": n_rows, "d_model": d_model, "n_stories": len(self.stories),
                               "n_shards": len(shards)},
                    "stories_sha256": stories_sha256(self.stories), "shards": shards}
        if config is not None:
            manifest["config"] = config
        if versions is not None:
            manifest["versions"] = versions
        self.manifest = manifest

    @property
    def shards(self) -> list[dict]:
        return self.manifest["shards"]

    @property
    def dtype(self) -> str:
        return self.manifest["dtype"]

    def _differences(self, old: dict) -> list[str]:
        diff = [k for k in PLAN_KEYS if old.get(k) != self.manifest.get(k)]
        old_model = old.get("model") if isinstance(old.get("model"), dict) else {}
        if old_model.get("name") != self.manifest.get("model", {}).get("name"):
            diff.append("model")
        return diff

    def check(self, replace: bool = False) -> str:
        """What begin() will do (reads only): "new" (nothing there), "replace" (anything there, with
        replace=True: every shard is written again), "resume" (a store of this plan, without replace).
        Anything else raises StoreExistsError; a file at `folder` raises NotADirectoryError."""
        kind, what = store_state(self.folder)
        if kind == "absent":
            return "new"
        if replace:
            return "replace"
        if kind == "store":
            try:
                old = json.loads((self.folder / MANIFEST).read_text())
                if not isinstance(old, dict):
                    raise ValueError("not a JSON object")
            except (OSError, ValueError) as e:
                what = f"holds an unreadable {MANIFEST} ({type(e).__name__}: {e})"
            else:
                diff = self._differences(old)
                if not diff:
                    return "resume"
                what = f"holds a store made with other settings ({', '.join(diff)} differ)"
        raise StoreExistsError(self.folder, what)

    def begin(self, action: str) -> None:
        """Make the folder ready for the shards (in one process: rank 0). "new"/"replace": the
        manifest of this plan, complete: false, is written FIRST, so that the folder never again reads
        as what it held; then the old shards, their records and the single-folder files are removed
        and the stories written. "resume": only the stories, if they are missing."""
        if action not in ("new", "resume", "replace"):
            raise ValueError(f"action={action!r}: expected 'new', 'resume' or 'replace' (what check() returns)")
        self.folder.mkdir(parents=True, exist_ok=True)
        if action == "resume":
            if not (self.folder / STORIES).is_file():
                write_stories(self.folder, self.stories)
            return
        # records first: a complete old store reads without them, and a resume must not trust them
        for path in sorted(self.folder.glob("shard_*.json")):
            if _STORE_FILE.fullmatch(path.name):
                path.unlink(missing_ok=True)
        atomic_write_json(self.folder / MANIFEST, self.manifest)
        for path in self.folder.iterdir():
            if path.name != MANIFEST and _own_file(path.name) and path.is_file():
                path.unlink(missing_ok=True)
        write_stories(self.folder, self.stories)

    def done(self, shard: dict, verify: bool = False) -> dict | None:
        """The record of `shard` if its files are complete (with verify: their SHA-256 match)."""
        return _shard_record(self.folder, shard, verify)

    def write(self, shard: dict, acts: np.ndarray, tokens=None) -> dict:
        """Shard `shard`: its matrix, its token table, then its record (the completion mark), each atomically."""
        index = shard["index"]
        rows = shard["rows"][1] - shard["rows"][0]
        acts = np.asarray(acts)
        if acts.ndim != 2 or acts.shape[0] != rows:
            raise ValueError(f"shard {index}: {acts.shape[0] if acts.ndim else 0} rows given, the plan has {rows}")
        if tokens is not None and len(tokens) != rows:
            raise ValueError(f"shard {index}: a token table of {len(tokens)} rows, the plan has {rows}")
        npy, parquet, record = _names(index)
        folder = self.folder
        for name in (npy, parquet, record):  # temp files of an earlier run of this shard that was killed
            for stale in folder.glob(f".{name}.*"):
                stale.unlink(missing_ok=True)
        with atomic_path(folder / npy) as tmp:
            _save_npy(tmp, np.ascontiguousarray(acts, dtype=self.dtype))
        if tokens is not None:
            with atomic_path(folder / parquet) as tmp:
                tokens.to_parquet(tmp, index=False)
        info = {"index": index, "rows": rows, "file": npy, "sha256": _sha256(folder / npy),
                "bytes": (folder / npy).stat().st_size, "edges_sha256": _edges_sha256(folder / npy),
                "tokens_file": parquet if tokens is not None else None,
                "tokens_sha256": _sha256(folder / parquet) if tokens is not None else None}
        atomic_write_json(folder / record, info)
        return info

    def finish(self, verify: bool = False) -> bool:
        """Write the complete manifest if every shard is there; returns whether it was."""
        records = []
        for shard in self.shards:
            info = self.done(shard, verify)
            if info is None:
                return False
            path = self.folder / shard["file"]
            records.append({**shard, "sha256": info["sha256"], "tokens_file": info["tokens_file"],
                            "tokens_sha256": info["tokens_sha256"],
                            "bytes": info.get("bytes", path.stat().st_size),  # records of older versions: measured
                            "edges_sha256": info.get("edges_sha256") or _edges_sha256(path)})
        atomic_write_json(self.folder / MANIFEST, {**self.manifest, "shards": records, "complete": True})
        return True


def _save_npy(path: Path, array: np.ndarray) -> None:
    np.save(path, array)  # a function of its own: the resume test kills the writer here


def _shard_record(folder: Path, shard: dict, verify: bool) -> dict | None:
    """The record of shard `shard` if its files are complete (and, with verify, their SHA-256 match)."""
    index, rows = shard["index"], shard["rows"][1] - shard["rows"][0]
    npy, parquet, record = _names(index)
    try:
        info = json.loads((folder / record).read_text())
        if info["rows"] != rows or not (folder / npy).is_file():
            return None
        if "bytes" in info and (folder / npy).stat().st_size != info["bytes"]:
            return None
        if info["tokens_file"] and not (folder / parquet).is_file():
            return None
        if verify and (_sha256(folder / npy) != info["sha256"] or (
                info["tokens_file"] and _sha256(folder / parquet) != info["tokens_sha256"])):
            return None
        return info
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_shards(folder: str | os.PathLike, acts, tokens=None, stories: list[str] | None = None,
                 meta: dict | None = None, shard_rows: int = DEFAULT_SHARD_ROWS, dtype: str = "float32") -> Path:
    """Store an in-memory (rows, D) matrix (and optionally its token table and stories) as shards.

    For activations made elsewhere (bring your own): the store then streams like an extraction's.
    `meta` (model, data_source, ...) goes into the manifest. Whatever `folder` held (a store, the
    single-folder artifact) is replaced; if the write is interrupted the folder refuses to open
    (its manifest says incomplete) rather than mixing the old rows with the new.
    """
    acts = np.asarray(acts)
    if acts.ndim != 2 or acts.shape[0] < 1 or acts.dtype.kind != "f":
        raise ValueError(f"acts: expected a (rows >= 1, D) float matrix, got {acts.dtype} {acts.shape}")
    if tokens is not None and len(tokens) != acts.shape[0]:
        raise ValueError(f"tokens: {len(tokens)} rows but acts has {acts.shape[0]}")
    _storable("acts", acts, check_dtype(dtype))  # before the writer touches the folder
    writer = ShardWriter(folder, int(acts.shape[0]), int(acts.shape[1]), [] if stories is None else stories,
                         shard_rows=shard_rows, dtype=dtype, meta=meta, counts=(meta or {}).get("counts", {}))
    writer.begin(writer.check(replace=True))
    for shard in writer.shards:
        a, b = shard["rows"]
        writer.write(shard, acts[a:b], None if tokens is None else tokens.iloc[a:b])
    if not writer.finish():
        raise RuntimeError(f"{folder}: a shard is missing right after writing it")
    return Path(folder)


def _storable(name: str, acts: np.ndarray, dtype: str) -> None:
    """Refuse a float matrix with NaN or inf, or with values that `dtype` cannot hold (they would be
    stored as inf). Two reductions (min, max); the element-wise count only on failure."""
    lo, hi = acts.min(), acts.max()
    if not (np.isfinite(lo) and np.isfinite(hi)):
        finite = np.isfinite(acts)
        bad = int(finite.size - np.count_nonzero(finite))
        rows = int(acts.shape[0] - np.count_nonzero(finite.all(axis=1)))
        raise ValueError(f"{name} contains {bad} NaN or inf value(s) (in {rows} row(s)): expected finite numbers "
                         "(drop or impute those rows first); nothing was written")
    largest = max(-lo, hi)
    with np.errstate(over="ignore"):
        stored = np.asarray(largest, dtype=acts.dtype).astype(dtype)
    if np.isinf(stored):
        fix = "write with dtype='float32' (or rescale the values)" if dtype != "float32" else "rescale the values"
        raise ValueError(f"{name} holds values up to {float(largest):.6g} in magnitude, more than dtype={dtype!r} can "
                         f"hold (largest {float(np.finfo(dtype).max):.6g}): they would be stored as inf; {fix}; "
                         "nothing was written")


# ------------------------------------------------------------------------------------------------
# the sharded store: reading


def _inside_name(name) -> bool:
    """A plain file name in the store's folder: no folder part, not absolute, not '.' or '..'."""
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name \
        and "\0" not in name and Path(name).name == name


def _read_manifest(folder: Path) -> dict:
    """The manifest, checked for the structure every reader relies on (ValueError naming it otherwise)."""
    path = folder / MANIFEST

    def bad(what: str) -> ValueError:
        return ValueError(f"{path}: {what}; the store is damaged: {_HINT_STORE}")

    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise bad(f"unreadable ({type(e).__name__}: {e})") from None
    if not isinstance(manifest, dict):
        raise bad(f"holds a JSON {type(manifest).__name__}, not the manifest object")
    if manifest.get("format") != FORMAT:  # another version's layout would be read as this one's, silently
        raise ValueError(f"{path}: format {manifest.get('format')!r}, this hebb_utils reads {FORMAT!r}: "
                         "re-extract the activations with this version (`python -m hebb_utils extract`), or read "
                         "the store with the hebb_utils that wrote it")
    shards, counts = manifest.get("shards"), manifest.get("counts")
    if not isinstance(shards, list) or not shards:
        raise bad("lists no shards" if isinstance(shards, list) else "has no list of shards")
    if not isinstance(counts, dict) or not isinstance(counts.get("d_model"), int) or counts["d_model"] < 1:
        raise bad("has no counts with the d_model of the rows")
    if manifest.get("dtype") not in DTYPES:
        raise bad(f"dtype {manifest.get('dtype')!r}: expected one of {list(DTYPES)}")
    end = 0
    for k, shard in enumerate(shards):
        if not isinstance(shard, dict):
            raise bad(f"shard {k} is not an object")
        rows = shard.get("rows")
        if not (isinstance(rows, list) and len(rows) == 2 and all(isinstance(r, int) for r in rows)
                and rows[0] == end and rows[1] > rows[0]):
            raise bad(f"shard {k} has rows {rows!r}, expected [{end}, end > {end}]")
        end = rows[1]
        if shard.get("index") != k:
            raise bad(f"shard {k} has index {shard.get('index')!r}")
        for key in ("file", "tokens_file"):
            name = shard.get(key)
            if key == "file" and name is None:
                raise bad(f"shard {k} names no file")
            if name is not None and not _inside_name(name):
                raise bad(f"shard {k} refers to {name!r}, which is not a file of the store's own folder")
    if "n_tokens" in counts and counts["n_tokens"] != end:
        raise bad(f"counts n_tokens {counts['n_tokens']!r} but the shards hold {end} rows")
    return manifest


def _npy_layout(path: Path) -> tuple[tuple, np.dtype, int]:
    """(shape, dtype, offset of the data) from a .npy file's header."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"npy format version {version} (expected 1.0 or 2.0)")
        if fortran:
            raise ValueError("a Fortran-order array")
        return shape, dtype, f.tell()


def _edge_values(path: Path, rows: int) -> str:
    """What the rows in a shard's first and last 64 KiB hold (for the message about a changed shard)."""
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    k = max(1, EDGE_BYTES // max(1, array.itemsize * int(np.prod(array.shape[1:]))))
    values = np.concatenate([np.asarray(array[:k], np.float64).ravel(), np.asarray(array[-k:], np.float64).ravel()])
    finite = np.isfinite(values)
    if not finite.all():
        return f"there: {int((~finite).sum())} NaN or inf value(s)"
    return f"there: largest magnitude {np.abs(values).max():.3g}" if values.size else "no values"


class ShardedActivations:
    """A streamed view of a sharded store (or of the single-folder artifact, as one shard).

    len(view) rows of view.dim floats, stored as view.dtype; view.meta is the manifest (or
    meta.json). Nothing is read on opening but the manifest and each shard's header and ends:
    `batches` maps one shard at a time and yields float32 tensors in row order; `take(rows)` gathers
    rows by index; `tokens` and `stories` are read when first asked for; `to_activations()` loads
    everything (an Activations). At most `max_open` shards are mapped at once (None: all).
    """

    def __init__(self, folder: str | os.PathLike, verify: bool = False, max_open: int | None = 2):
        verify = _flag("verify", verify)
        if max_open is not None:
            max_open = positive_int("max_open", max_open, hint="how many shards may be mapped at once, or None for all")
        self.folder = folder = Path(folder)
        self.max_open = max_open
        self._open: OrderedDict[int, np.ndarray] = OrderedDict()
        self._tokens = self._stories = None
        if not is_sharded(folder):  # the single-folder artifact: checked by read_artifact, one shard
            legacy = read_artifact(folder, mmap=True, verify=verify)
            self.meta, self.legacy = legacy.meta, legacy
            self.files = [folder / "acts.npy"]
            self.offsets = np.array([0, legacy.acts.shape[0]], dtype=np.int64)
            self.dim, self.dtype = int(legacy.acts.shape[1]), "float32"
            self._warn_if_constant()
            return
        self.legacy = None
        self.meta = _read_manifest(folder)
        shards = self.meta["shards"]
        if self.meta.get("complete") is not True:
            have = sum(_shard_record(folder, s, False) is not None for s in shards)
            raise ValueError(f"{folder}: the store is incomplete ({have} of {len(shards)} shards written): it was "
                             f"being written, or its writer was interrupted; {_HINT_STORE} to resume it")
        self.files = [folder / s["file"] for s in shards]
        self.offsets = np.array([s["rows"][0] for s in shards] + [shards[-1]["rows"][1]], dtype=np.int64)
        self.dim, self.dtype = int(self.meta["counts"]["d_model"]), self.meta["dtype"]
        missing = [f.name for f in self.files if not f.is_file()]
        missing += [s["tokens_file"] for s in shards if s.get("tokens_file") and not (folder / s["tokens_file"]).is_file()]
        if missing:
            raise FileNotFoundError(f"{folder}: file(s) {missing[:3]} missing; the store is damaged: {_HINT_STORE}")
        for k, (s, f) in enumerate(zip(shards, self.files)):
            self._check_shard(k, s, f, verify)
        tables = [s for s in shards if s.get("tokens_file")]
        if tables:  # each token table's row count, from its parquet footer (its SHA-256 is checked when read)
            import pyarrow.parquet as pq

            for s in tables:
                path, rows = folder / s["tokens_file"], s["rows"][1] - s["rows"][0]
                try:
                    found = pq.read_metadata(path).num_rows
                except Exception as e:  # noqa: BLE001  name the file instead of raising pyarrow's error
                    raise ValueError(f"{path}: unreadable ({type(e).__name__}: {e}); the store is damaged: "
                                     f"{_HINT_STORE}") from None
                if found != rows:
                    raise ValueError(f"{path}: {found} rows, the manifest says {rows}; the token table is damaged: "
                                     f"{_HINT_STORE}")
                if verify and s.get("tokens_sha256") and _sha256(path) != s["tokens_sha256"]:
                    raise ValueError(f"{path}: its SHA-256 is not the manifest's; the token table is damaged or was "
                                     f"edited: {_HINT_STORE}")
        self._warn_if_constant()

    def _warn_if_constant(self) -> None:
        """Warn when every row read from the ends of the shards (at most EDGE_BYTES at each end: the bytes
        opening hashes) is one and the same row: training on such a store cannot move the weights.
        Reads nothing else; stops at the first row that differs (for real data, in shard 0's first rows)."""
        if len(self) < 2:
            return
        first, seen, every_row = None, 0, True
        for k in range(self.n_shards):
            try:
                array = self.legacy.acts if self.legacy is not None else np.load(self.files[k], mmap_mode="r",
                                                                                 allow_pickle=False)
            except (OSError, ValueError):  # left to shard(), which names the file when the rows are read
                return
            rows, n = array.shape[0], max(1, EDGE_BYTES // max(1, array.itemsize * self.dim))
            parts = (array,) if 2 * n >= rows else (array[:n], array[-n:])
            every_row = every_row and 2 * n >= rows
            for part in parts:
                part = np.asarray(part)
                if first is None:
                    first = part[0].copy()
                if not (part == first).all():
                    return
                seen += part.shape[0]
        what = (f"all {len(self)} rows are the same row" if every_row else
                f"the {seen} rows read on opening (up to {EDGE_BYTES // 1024} KiB at each end of each shard) are all "
                "the same row")
        warnings.warn(f"{self.folder}: {what}: training on it cannot move the weights (BatchNorm maps a feature "
                      "that is constant over a batch to 0); check the activations it was written from", stacklevel=3)

    def _check_shard(self, k: int, shard: dict, path: Path, verify: bool) -> None:
        """The shard file against the manifest: header (shape, dtype), size, the hash of its ends."""
        def bad(what: str) -> ValueError:
            return ValueError(f"{path}: {what}; the shard is damaged or was replaced: delete it and {_HINT_STORE}")

        rows = int(self.offsets[k + 1] - self.offsets[k])
        try:
            shape, dtype, offset = _npy_layout(path)
        except (OSError, ValueError, EOFError) as e:
            raise bad(f"not a readable .npy file ({type(e).__name__}: {e})") from None
        if tuple(shape) != (rows, self.dim) or dtype.name != self.dtype:
            raise bad(f"holds {dtype} {tuple(shape)}, the manifest says {self.dtype} ({rows}, {self.dim})")
        size, expected = path.stat().st_size, offset + rows * self.dim * dtype.itemsize
        if size != expected:
            raise bad(f"{'truncated: ' if size < expected else ''}{size} bytes, expected {expected} for "
                      f"{self.dtype} ({rows}, {self.dim})")
        if "bytes" in shard and shard["bytes"] != size:
            raise bad(f"{size} bytes, the manifest says {shard['bytes']}")
        if shard.get("edges_sha256") and _edges_sha256(path) != shard["edges_sha256"]:
            raise bad("its first and last 64 KiB are not the ones the manifest recorded (another shard's bytes, or "
                      f"edited values; {_edge_values(path, rows)})")
        if verify and _sha256(path) != shard.get("sha256"):
            raise bad("its SHA-256 is not the manifest's")

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
        path = self.files[index]
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as e:  # an OSError (out of memory, a missing file) stays what it is
            raise ValueError(f"{path}: unreadable ({type(e).__name__}: {e}); the store is damaged") from None
        rows = int(self.offsets[index + 1] - self.offsets[index])
        if array.ndim != 2 or array.shape != (rows, self.dim) or array.dtype.name != self.dtype:
            raise ValueError(f"{path}: holds {array.dtype} {array.shape}, the manifest says "
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
        rows = np.asarray(_row_indices(rows), dtype=np.int64).reshape(-1)
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
    def _token_table(self, shard: dict):
        """One shard's token table, checked against the manifest (SHA-256 and rows)."""
        import pandas as pd

        path = self.folder / shard["tokens_file"]
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: the token table is missing; the store is damaged: {_HINT_STORE}") from None
        if shard.get("tokens_sha256") and hashlib.sha256(data).hexdigest() != shard["tokens_sha256"]:
            raise ValueError(f"{path}: its SHA-256 is not the manifest's; the token table is damaged or was edited: "
                             f"{_HINT_STORE}")
        try:
            table = pd.read_parquet(io.BytesIO(data))
        except Exception as e:  # noqa: BLE001  name the file instead of raising pyarrow's error
            raise ValueError(f"{path}: unreadable ({type(e).__name__}: {e}); the store is damaged") from None
        rows = shard["rows"][1] - shard["rows"][0]
        if len(table) != rows:
            raise ValueError(f"{path}: {len(table)} rows, the manifest says {rows}; the token table is damaged")
        return table

    @property
    def tokens(self):
        """The token table of all rows (pandas), read on first use."""
        if self._tokens is None:
            if self.legacy is not None:
                self._tokens = self.legacy.tokens
            else:
                import pandas as pd

                shards = self.meta["shards"]
                if not all(s.get("tokens_file") for s in shards):
                    raise ValueError(f"{self.folder}: this store has no token table (written without one)")
                self._tokens = pd.concat([self._token_table(s) for s in shards], ignore_index=True)
        return self._tokens

    @property
    def stories(self) -> list[str]:
        if self._stories is None:
            if self.legacy is not None:
                self._stories = self.legacy.stories
            else:
                path = self.folder / STORIES
                try:
                    self._stories = read_stories(path)
                except FileNotFoundError:
                    raise FileNotFoundError(f"{path}: missing; the store is damaged: {_HINT_STORE}") from None
                except (OSError, ValueError, KeyError, TypeError) as e:
                    raise ValueError(f"{path}: unreadable ({type(e).__name__}: {e}); the store is damaged") from None
        return self._stories

    def to_activations(self) -> Activations:
        """Everything in memory, as the Activations of the single-folder artifact (float32 acts)."""
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


def _row_indices(rows) -> np.ndarray:
    """`rows` (a list, array or tensor) as an array of integer row indices; a boolean mask (which would
    read as the rows 0 and 1) and fractional indices (which would be truncated) are refused."""
    try:
        array = np.asarray(rows)
    except (ValueError, TypeError) as e:
        raise ValueError(f"rows: expected integer row indices, got {type(rows).__name__} ({e})") from None
    if array.dtype.kind == "b":
        raise ValueError(f"rows has dtype {array.dtype}: a mask, which would be read as the rows 0 and 1; pass "
                         "the indices of its True entries (np.flatnonzero(mask), or mask.nonzero().squeeze(1) for "
                         "a tensor)")
    if array.dtype.kind not in "iu" and array.size:  # an empty list is float64 to numpy: no rows, nothing to refuse
        raise ValueError(f"rows has dtype {array.dtype}: expected integer row indices (convert with "
                         "np.asarray(rows, dtype=np.int64), or rows.long() for a tensor)")
    return array


def open_activations(folder: str | os.PathLike, verify: bool = False, max_open: int | None = 2) -> ShardedActivations:
    """A ShardedActivations of `folder`: a sharded store, or the single-folder artifact as one shard."""
    folder = Path(folder)
    if not folder.is_dir() and not is_sharded(folder):
        if folder.exists():
            raise FileNotFoundError(f"no activations at {folder}: it is a file, not a folder of activations "
                                    "(give the folder that `python -m hebb_utils extract ... --out DIR` wrote)")
        if not recover_dir(folder):
            raise FileNotFoundError(f"no activations at {folder}: make them with `python -m hebb_utils extract "
                                    "... --out DIR` or the notebook notebooks/01_extract_activations.ipynb")
    return ShardedActivations(folder, verify=verify, max_open=max_open)


def load_activations(folder: str | os.PathLike, mmap: bool = False, verify: bool = False, stream: bool = False):
    """Activations of `folder`, in either format.

    The single-folder artifact is read by read_artifact (mmap=True maps acts.npy). A sharded store
    (a folder with manifest.json) is read into memory as the same Activations (float32), or with
    stream=True as a ShardedActivations view that reads one shard at a time (stream=True on the
    single-folder artifact gives a view of one shard). verify=True hashes every file whole.
    """
    mmap, verify, stream = _flag("mmap", mmap), _flag("verify", verify), _flag("stream", stream)
    if stream or is_sharded(folder):
        view = open_activations(folder, verify=verify)
        return view if stream else view.to_activations()
    return read_artifact(folder, mmap=mmap, verify=verify)


def activations_source(data) -> dict:
    """What produced `data` (model, data source, counts) plus a one-line `label` for tables and
    figures, which starts with OFFLINE STAND-IN when the model is not the one the paper used."""
    model, counts = data.meta["model"], data.meta["counts"]
    n_tokens, d_model = data.shape  # an Activations or a streamed ShardedActivations
    label = f"{model_label(model)}, {n_tokens:,} tokens x {d_model} from {counts['n_stories']} TinyStories stories"
    return {"model": model, "data_source": data.meta.get("data_source"), "counts": counts, "label": label}
