"""Atomic artifact writing: a file is either absent or complete, never half-written.

Every artifact (activations, caches, checkpoints, result JSON) is written to a temporary file in
the destination folder and moved into place with `os.replace`, which is atomic on POSIX.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

__all__ = ["atomic_path", "atomic_write_json", "atomic_save_npy", "atomic_torch_save", "atomic_replace_dir",
           "portable"]

MIRROR_ENV = "HEBB_DATA_MIRROR"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it replaces `path` atomically.

    Use it around any writer that takes a file name:

        with atomic_path("acts.npy") as tmp:
            np.save(tmp, array)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the artifact gets the usual permissions
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")
    return Path(path)


def atomic_save_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, np.asarray(array))
    return Path(path)


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> Path:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


@contextlib.contextmanager
def atomic_replace_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary folder; on success it takes the place of `path` as a whole.

    For artifacts made of several files (an activation matrix plus its token table and config)
    so that a reader never sees the new matrix beside the old table.
    """
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old.{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def portable(obj: Any) -> Any:
    """`obj` (nested dicts, lists, strings) with this machine's paths replaced by names that mean
    the same on any machine, for committed artifacts: the data mirror becomes `$HEBB_DATA_MIRROR`,
    a folder inside an installed package `<package NAME>`, the repository `.`; other paths stay.
    """
    prefixes = []
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if mirror:
        prefixes.append((str(Path(mirror).expanduser().resolve()), f"${MIRROR_ENV}"))
        prefixes.append((mirror.rstrip("/"), f"${MIRROR_ENV}"))
    repo = Path(__file__).resolve().parents[1]
    prefixes.append((str(repo), "."))

    def fix(s: str) -> str:
        for site in ("site-packages/", "dist-packages/"):
            if site in s and os.path.isabs(s):  # an installed package's folder: name the package
                return "<package " + s.split(site, 1)[1].split("/", 1)[0] + ">"
        for prefix, name in prefixes:
            if s == prefix or s.startswith(prefix + "/"):
                return name + s[len(prefix):]
        return s

    if isinstance(obj, dict):
        return {k: portable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [portable(v) for v in obj]
    if isinstance(obj, Path):
        return fix(str(obj))
    return fix(obj) if isinstance(obj, str) else obj


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    try:
        import torch

        if isinstance(o, torch.Tensor):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
