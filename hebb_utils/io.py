"""Atomic artifact writing: a file is either absent or complete, never half-written.

Every artifact (activations, caches, checkpoints, result JSON) is written to a temporary file in
the destination folder and moved into place with `os.replace`, which is atomic on POSIX.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

__all__ = ["atomic_path", "atomic_write_json", "atomic_torch_save", "atomic_replace_dir", "recover_dir", "portable",
           "bars_off"]

MIRROR_ENV = "HEBB_DATA_MIRROR"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it replaces `path` atomically.

    Use it around any writer that takes a file name:

        with atomic_path("acts.npy") as tmp:
            np.save(tmp, array)
    """
    path = Path(path)
    with _naming(path):
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


@contextlib.contextmanager
def _naming(path: Path) -> Iterator[None]:
    """An OSError while making `path`'s folder or temp file, re-raised (same class) naming `path`, not the
    temp file the user never asked for (e.g. a folder that cannot be created, in /proc, on a read-only disk)."""
    try:
        yield
    except OSError as e:
        if e.errno is None:
            raise
        raise type(e)(e.errno, e.strerror, str(path)) from None


def check_writable(folder: str | os.PathLike, name: str, target: str | os.PathLike | None = None) -> None:
    """Refuse (ValueError naming `name`) writing `target` (default: files in `folder`) when a regular
    file stands on the way to `folder` or its first existing folder cannot be written. Creates nothing."""
    folder = Path(folder)
    shown = folder if target is None else Path(target)
    existing = next(p for p in (folder, *folder.parents) if p.exists())  # the root always exists
    if not existing.is_dir():
        raise ValueError(f"{name} {shown}: {existing} is a file, not a folder, so nothing can be written under it")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{name} {shown}: cannot write in {existing} (permission denied)")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """`obj` as strict JSON (NaN and inf written as null, so every JSON reader accepts the file), atomically."""
    text = json.dumps(strict_json(obj), indent=2, sort_keys=True, default=_json_default, allow_nan=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n")
    return Path(path)


def strict_json(obj: Any) -> Any:
    """`obj` (nested dicts, lists, numbers, arrays, tensors) with every NaN or infinite float replaced by
    None, so that it is written as strict JSON (null) instead of Python's NaN / Infinity literals."""
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(float(obj)) else None
    if hasattr(obj, "tolist") and not isinstance(obj, np.generic):  # a numpy array or a torch tensor
        return strict_json(obj.tolist())
    return obj


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> Path:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


_ACTIVE: set[Path] = set()  # this process's temp folders in use (the others of this pid are stale)


@contextlib.contextmanager
def atomic_replace_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary folder; on success it takes the place of `path` as a whole.

    For artifacts made of several files (an activation matrix plus its token table and config)
    so that a reader never sees the new matrix beside the old table. The new folder is written as
    `.NAME.new-PID-*`; the swap renames the old one to `.NAME.old-PID-*`, the new one to `path`,
    then deletes the old. A complete version always exists: if the second rename fails, the old
    folder is put back; if the process dies between the renames, `recover_dir(path)` (run by the
    next write and by `load_activations`) moves the old copy back. The next write also deletes
    stale temp folders of NAME (of dead processes, or of this one no longer in use). POSIX cannot
    exchange two folders atomically: a reader in the instant between a live writer's renames
    finds no folder, and should retry.
    """
    import shutil

    path = Path(path)
    with _naming(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        recover_dir(path)
        for stale in _stale(path):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.new-{os.getpid()}-", dir=path.parent))
    old = tmp.with_name(f".{path.name}.old-" + tmp.name[len(path.name) + 6:])
    os.chmod(tmp, 0o777 & ~_umask())
    _ACTIVE.update((tmp, old))
    try:
        yield tmp
        had_old = path.exists()
        if had_old:
            os.replace(path, old)
        try:
            os.replace(tmp, path)
        except BaseException:
            if had_old and not path.exists():
                os.replace(old, path)  # put the old version back
            raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        _ACTIVE.difference_update((tmp, old))


def recover_dir(path: str | os.PathLike) -> bool:
    """If `path` is missing but a stale complete copy `.NAME.old-*` (left by a writer that died
    mid-swap) is there, move the newest back to `path`. Returns True when it did."""
    path = Path(path)
    if path.exists() or not path.parent.is_dir():
        return False
    copies = [p for p in _stale(path) if p.name.startswith(f".{path.name}.old-")]
    if not copies:
        return False
    os.replace(max(copies, key=lambda p: p.stat().st_mtime_ns), path)
    return True


def _stale(path: Path) -> list[Path]:
    """Temp folders `.NAME.new-PID-*` / `.NAME.old-PID-*` whose writer is gone (a dead process, or
    this one no longer using them)."""
    def gone(pid: int) -> bool:
        if pid == os.getpid():
            return True
        try:
            os.kill(pid, 0)  # signal 0: only asks whether the process exists
        except ProcessLookupError:
            return True
        except OSError:  # it exists, another user's
            pass
        return False

    name = re.compile(rf"\.{re.escape(path.name)}\.(?:new|old)-(\d+)-\w+")
    return [p for p in path.parent.iterdir()
            if (m := name.fullmatch(p.name)) and p.is_dir() and p not in _ACTIVE and gone(int(m[1]))]


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

    def walk(o: Any) -> Any:  # the prefixes are worked out once, not per nested value
        if isinstance(o, dict):
            return {k: walk(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [walk(v) for v in o]
        if isinstance(o, Path):
            return fix(str(o))
        return fix(o) if isinstance(o, str) else o

    return walk(obj)


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


@contextlib.contextmanager
def bars_off(*modules: str) -> Iterator[None]:
    """Turn off the tqdm bars that library `modules` (names of modules that did `from tqdm... import
    tqdm`) draw while the block runs: transformers' GGUF de-quantisation and SAELens' trainer draw
    theirs with no switch, and in an executed notebook they leave "0%" lines in the committed output.
    The module attributes are restored after the block."""
    import functools
    import importlib

    saved = []
    for name in modules:
        module = importlib.import_module(name)
        bar = getattr(module, "tqdm", None)
        if bar is not None:
            saved.append((module, bar))
            module.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        for module, bar in saved:
            module.tqdm = bar
