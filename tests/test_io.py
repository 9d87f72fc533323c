"""Atomic artifact folders: a complete version is always there, leftovers are recovered or removed."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hebb_utils.io import atomic_replace_dir, recover_dir

IO_PY = Path(__file__).resolve().parents[1] / "hebb_utils" / "io.py"

# dies (os._exit: no finally, no cleanup) at the k-th os.replace of the swap, or, with k = 0, in the
# rmtree of the old folder after both renames; io.py is loaded alone, so the process starts fast
CRASH = """
import importlib.util, os, shutil, sys
spec = importlib.util.spec_from_file_location("hebb_io", sys.argv[1])
io = importlib.util.module_from_spec(spec); spec.loader.exec_module(io)
target, k, calls, real = sys.argv[2], int(sys.argv[3]), [], os.replace
def replace(*a):
    calls.append(a)
    if len(calls) == k:
        os._exit(3)
    return real(*a)
with io.atomic_replace_dir(target) as tmp:
    open(os.path.join(tmp, "x"), "w").write("new")
    os.replace = replace
    if k == 0:
        shutil.rmtree = lambda *a, **kw: os._exit(3)
"""


def _write(path: Path, text: str) -> None:
    with atomic_replace_dir(path) as tmp:
        (tmp / "x").write_text(text)


def _crash(path: Path, k: int) -> None:
    run = subprocess.run([sys.executable, "-c", CRASH, str(IO_PY), str(path), str(k)], capture_output=True, text=True)
    assert run.returncode == 3, run.stderr


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("k", [1, 2])
def test_a_failed_rename_keeps_the_old_version(tmp_path, monkeypatch, k):
    target = tmp_path / "acts"
    _write(target, "old")
    real, calls = os.replace, []

    def replace(*a):
        calls.append(a)
        if len(calls) == k:  # 1: path -> .old, 2: new -> path
            raise OSError(f"rename {k} failed")
        return real(*a)
    with monkeypatch.context() as m:
        with pytest.raises(OSError, match=f"rename {k} failed"):
            with atomic_replace_dir(target) as tmp:
                (tmp / "x").write_text("new")
                m.setattr(os, "replace", replace)
    assert (target / "x").read_text() == "old" and _names(tmp_path) == ["acts"]


def test_crash_between_the_renames_is_recovered(tmp_path):
    target = tmp_path / "acts"
    _write(target, "old")
    _crash(target, 2)  # died after moving the old folder aside, before moving the new one in
    assert not target.exists()
    left = _names(tmp_path)
    assert len(left) == 2 and {n.split("-")[0] for n in left} == {".acts.old", ".acts.new"}
    assert recover_dir(target) and (target / "x").read_text() == "old"  # the complete old copy
    assert not recover_dir(target)  # nothing left to do
    _write(target, "newer")  # the next write removes the dead writer's half-made folder
    assert (target / "x").read_text() == "newer" and _names(tmp_path) == ["acts"]


def test_the_next_write_recovers_a_missing_folder_first(tmp_path):
    target = tmp_path / "acts"
    _write(target, "old")
    _crash(target, 2)
    with pytest.raises(RuntimeError):
        with atomic_replace_dir(target) as tmp:  # recovers the old copy, then fails writing
            raise RuntimeError("crash while writing")
    assert (target / "x").read_text() == "old" and _names(tmp_path) == ["acts"]


@pytest.mark.parametrize("k", [1, 0])
def test_crash_before_or_after_the_swap_leaves_a_complete_folder_and_stale_copies_are_removed(tmp_path, k):
    target = tmp_path / "acts"
    _write(target, "old")
    _crash(target, k)  # 1: before the first rename; 0: after both, before deleting the old folder
    assert (target / "x").read_text() == ("old" if k == 1 else "new") and len(_names(tmp_path)) == 2
    _write(target, "newer")
    assert _names(tmp_path) == ["acts"]


def test_a_live_writers_folders_are_left_alone(tmp_path):
    target = tmp_path / "acts"
    _write(target, "old")
    live = tmp_path / f".acts.new-{os.getppid()}-abc"  # a running process (our parent) is writing
    live.mkdir()
    _write(target, "new")
    assert live.is_dir() and (target / "x").read_text() == "new"
    target.rename(tmp_path / "elsewhere")
    (tmp_path / f".acts.old-{os.getppid()}-abc").mkdir()  # its old copy mid-swap: not ours to take
    assert not recover_dir(target)


def test_recover_dir_without_a_parent_folder(tmp_path):
    assert not recover_dir(tmp_path / "no" / "acts")


def test_json_artifacts_are_strict(tmp_path):
    """NaN and inf (Python, numpy, torch) are written as null: every JSON reader accepts the file."""
    import json

    import numpy as np
    import torch

    from hebb_utils.io import atomic_write_json

    def refuse(token):
        raise AssertionError(f"non-standard JSON literal {token}")

    obj = {"p": float("nan"), "arr": np.array([1.0, np.inf]), "t": torch.tensor([-np.inf, 2.0]), "x": np.float32(0.5),
           "nested": [{"q": float("-inf")}, (1, 2)], "ok": 3}
    path = atomic_write_json(tmp_path / "r.json", obj)
    back = json.loads(path.read_text(), parse_constant=refuse)
    assert back == {"p": None, "arr": [1.0, None], "t": [None, 2.0], "x": 0.5, "nested": [{"q": None}, [1, 2]], "ok": 3}
