"""Bad input and misuse of the command line and of the sharded activation store: a table of cases,
each stating what a careful user expects.

The command line runs in-process (`hebb_utils.cli.main(argv)`, stderr read with capsys); only the
torchrun case and the process group without a peer start processes. Whatever the case, the command
line never prints a traceback, and an error (exit code 2) is ONE line on stderr,
`python -m hebb_utils <command>: error: ...` (argparse's own errors: its usage lines, then that
line). Every command-line case is also held to what no misuse may do:

- the inputs (the stores, the single-folder artifact, the checkpoint, every file that existed
  under the case's folder) stay byte for byte the same, and no file appears inside an activation
  folder;
- `train` that fails writes no checkpoint;
- `map` writes all of its five files or, when it fails, none of them.

The store is used through the top-level package only (`from hebb_utils import ...`).
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
import torch

from hebb_utils import (Activations, ShardedActivations, load_activations, load_tokenizer, open_activations,
                        save_activations, train_som, write_shards)
from hebb_utils.cli import main

pytestmark = pytest.mark.usefixtures("quiet_bars")  # bars off for in-process calls (conftest.py)

MIRROR = os.environ.get("HEBB_DATA_MIRROR", "").strip()
COMMANDS = ("extract", "train", "map")
ROWS, DIM, SHARD_ROWS, GRID = 200, 8, 64, "4x5"  # 4 shards: 64, 64, 64 and 8 rows
NAMES = [f"t{i}" for i in range(13)]
STORIES = [f"story {i}" for i in range(10)]
MAP_FILES = ("map.png", "map_crop.png", "map.html", "top_tokens.csv", "metrics.json")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}


def token_table(n: int = ROWS, names=NAMES) -> pd.DataFrame:
    return pd.DataFrame({"row": np.arange(n), "token_id": np.arange(n) % len(names),
                         "token": [names[i % len(names)] for i in range(n)], "story_id": np.arange(n) * 10 // n,
                         "position": np.arange(n) % 20})


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _tensors(obj, name="checkpoint"):
    if isinstance(obj, torch.Tensor):
        yield name, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _tensors(v, f"{name}[{k!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{name}[{i}]")


def non_finite_tensors(path: Path) -> list[str]:
    saved = torch.load(path, map_location="cpu", weights_only=False)
    return [n for n, t in _tensors(saved) if t.is_floating_point() and not bool(torch.isfinite(t).all())]


def _option(argv, name, default=None):
    """The value of the last `name` option in argv (argparse: the last one wins)."""
    value = default
    for i, a in enumerate(argv[:-1]):
        if a == name:
            value = argv[i + 1]
    return value


# ------------------------------------------------------------------------------------------------
# running the command line in-process


@dataclass(repr=False)
class Run:
    argv: list[str]
    code: int
    out: str
    err: str

    def __repr__(self) -> str:
        return f"Run({' '.join(self.argv[:1])}: {self.said})"

    @property
    def command(self) -> str | None:
        return self.argv[0] if self.argv and self.argv[0] in COMMANDS else None

    @property
    def line(self) -> str:
        lines = [x for x in self.err.splitlines() if x.strip()]
        return lines[-1] if lines else ""

    @property
    def said(self) -> str:
        return f"exit {self.code}" + (f", stderr: {self.line!r}" if self.line else ", nothing on stderr")


def _check_one_line(run: Run) -> None:
    prefix = f"python -m hebb_utils {run.command}: error:" if run.command else "python -m hebb_utils: error:"
    lines = [x for x in run.err.splitlines() if x.strip()]
    assert lines, f"exit 2 but nothing on stderr (expected one line starting with {prefix!r})"
    if lines[0].startswith("usage: python -m hebb_utils"):  # argparse-level misuse: usage, then its error line
        top = "python -m hebb_utils: error:"  # an option no subcommand knows is the top parser's error
        assert lines[-1].startswith((prefix, top)) and all(x.startswith(" ") for x in lines[1:-1]), \
            f"argparse's usage should be followed by one line starting with {prefix!r}; stderr:\n{run.err}"
    else:
        assert len(lines) == 1 and lines[0].startswith(prefix), \
            f"expected ONE line starting with {prefix!r}; stderr had {len(lines)} line(s):\n{run.err[-3000:]}"


def run_cli(capsys, argv) -> Run:
    """main(argv) in-process -> Run(code, stdout, stderr); a raised exception or a printed traceback fails."""
    argv = [str(a) for a in argv]
    capsys.readouterr()  # what earlier steps printed
    try:
        code = main(argv)
    except SystemExit as e:  # argparse
        code = 0 if e.code is None else e.code if isinstance(e.code, int) else 1
    except Exception as e:  # noqa: BLE001  the point: no exception escapes the command line
        capsys.readouterr()
        pytest.fail(f"Traceback: `{' '.join(argv[:1])}` raised {type(e).__name__}: {str(e)[:300]} "
                    f"(expected exit 2 and one line on stderr)\n{traceback.format_exc()[-2500:]}", pytrace=False)
    out, err = capsys.readouterr()
    run = Run(argv, code, out, err)
    assert "Traceback" not in out + err, f"a traceback was printed ({run.said}):\n{err[-3000:]}"
    if code == 2:
        _check_one_line(run)
    return run


# ------------------------------------------------------------------------------------------------
# fixtures: a small valid store, the single-folder artifact of the same rows, a trained checkpoint


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("base")
    acts = np.random.default_rng(0).standard_normal((ROWS, DIM)).astype(np.float32)
    write_shards(root / "store", acts, tokens=token_table(), stories=STORIES, shard_rows=SHARD_ROWS)
    save_activations(root / "legacy", Activations(acts=acts, tokens=token_table(), stories=STORIES,
                                                  meta={"model": {"name": "mine", "offline_stand_in": False}}))
    code = main(["train", "--activations", str(root / "store"), "--grid", GRID, "--out", str(root / "layer.pt")])
    assert code == 0 and (root / "layer.pt").is_file()
    return root, acts




class Workspace:
    """One case's own copies of the store, the single-folder artifact and the checkpoint, under root."""

    def __init__(self, base, tmp_path, capsys, monkeypatch, request):
        source, self.acts = base
        self.root = tmp_path
        self.store = Path(shutil.copytree(source / "store", tmp_path / "store"))
        self.legacy = Path(shutil.copytree(source / "legacy", tmp_path / "legacy"))
        self.ckpt = Path(shutil.copy(source / "layer.pt", tmp_path / "layer.pt"))
        self.out = tmp_path / "out"
        self.afile = tmp_path / "afile"
        self.afile.write_text("a regular file, not a folder\n")
        self.capsys, self.monkeypatch, self.request = capsys, monkeypatch, request

    def cli(self, argv) -> Run:
        return run_cli(self.capsys, argv)

    def model(self) -> Path:
        return self.request.getfixturevalue("tiny_model")

    def new_store(self, name, acts=None, tokens="default", **kw) -> Path:
        acts = self.acts if acts is None else acts
        tokens = token_table(len(acts)) if isinstance(tokens, str) else tokens
        return write_shards(self.root / name, acts, tokens=tokens, stories=STORIES,
                            **{"shard_rows": SHARD_ROWS, **kw})

    def edit_manifest(self, edit, folder=None) -> Path:
        """The manifest changed in place by edit(manifest) (its return value is ignored)."""
        path = (folder or self.store) / "manifest.json"
        manifest = json.loads(path.read_text())
        edit(manifest)
        path.write_text(json.dumps(manifest))
        return folder or self.store

    def poke(self, value, shard=1, row=3, col=2) -> Path:
        """One value of a shard changed in place (a memory map), the manifest left as it was."""
        array = np.load(self.store / f"shard_{shard:05d}.npy", mmap_mode="r+")
        array[row, col] = value
        array.flush()
        del array
        return self.store


@pytest.fixture
def w(base, tmp_path, capsys, monkeypatch, request):
    return Workspace(base, tmp_path, capsys, monkeypatch, request)


# ------------------------------------------------------------------------------------------------
# argv builders


def train(w, *extra, acts=None, out=None, grid=GRID):
    return ["train", "--activations", acts or w.store, "--grid", grid, *extra, "--out", out or w.root / "new.pt"]


def map_(w, *extra, acts=None, ckpt=None, out=None):
    return ["map", "--activations", acts or w.store, "--checkpoint", ckpt or w.ckpt, "--out", out or w.out,
            "--n-shuffles", "2", *extra]


def extract(w, *extra, out=None):
    return ["extract", "--model", w.model(), "--dataset", f"{MIRROR}/tinystories", "--n-stories", "4",
            "--max-tokens", "16", "--layer", "1", *extra, "--out", out or w.root / "extracted"]


# ------------------------------------------------------------------------------------------------
# expectations: (w, run) -> None


def _names(run: Run, words) -> None:
    low = run.err.lower()
    for word in words:
        options = word if isinstance(word, tuple) else (word,)
        assert any(o.lower() in low for o in options), \
            f"the error line does not name {' or '.join(map(repr, options))}: {run.line!r}"


def refused(*words, absent=()):
    """Exit 2; the one line names every word (a tuple: any of its words), and none of `absent`."""
    def check(w, run):
        assert run.code == 2, f"expected exit 2 with one line naming {list(words)}; got {run.said}"
        _names(run, words)
        shown = [a for a in absent if a.lower() in run.err.lower()]
        assert not shown, f"the error line shows {shown}, not a clear message: {run.line!r}"
    return check


def succeeds(then: Callable | None = None):
    def check(w, run):
        assert run.code == 0, f"expected exit 0; got {run.said}"
        if then:
            then(w, run)
    return check


def finite_checkpoint(w, run):
    path = Path(_option(run.argv, "--out"))
    assert path.is_file(), f"exit 0 but no checkpoint at {path}"
    bad = non_finite_tensors(path)
    assert not bad, f"exit 0 but the checkpoint holds NaN/inf: {bad}"


def finite_or_refused(*words):
    """A finite checkpoint (exit 0), or exit 2 with one line naming `words`; never a NaN checkpoint."""
    def check(w, run):
        if run.code == 0:
            finite_checkpoint(w, run)
        else:
            refused(*words)(w, run)
    return check


def not_argparse_misparse(w, run):
    """--gain -1e-3 is a number: exit 0 (accepted), or exit 2 from the layer naming gain as negative."""
    assert "expected one argument" not in run.err, f"argparse took the number -1e-3 for an option: {run.line!r}"
    if run.code == 0:
        finite_checkpoint(w, run)
    else:
        refused("gain", "negative")(w, run)


# the invariants of every command-line case


def _activation_folders(root: Path) -> set[Path]:
    return {p.parent for name in ("manifest.json", "meta.json") for p in root.rglob(name)}


def check_invariants(w, run, before: dict, folders: set[Path], existed: frozenset = frozenset()) -> None:
    """`before`: the digests of the files before the run; `existed`: every path (folders too) before it."""
    after = _digests(w.root)
    changed = sorted(k for k in before if after.get(k) != before[k])
    assert not changed, f"{run.argv[0]} changed or removed input file(s) {changed[:6]} ({run.said})"
    new = sorted(k for k in set(after) - set(before) if any((w.root / k).is_relative_to(f) for f in folders))
    assert not new, f"{run.argv[0]} wrote {new[:6]} inside an activation folder ({run.said})"
    if run.command == "train" and run.code != 0:
        out = _option(run.argv, "--out")
        if out and str(Path(out).relative_to(w.root)) not in before and str(Path(out)) not in existed:
            assert not Path(out).exists(), f"train failed ({run.said}) but wrote {out}"
    if run.command == "map":
        out, prefix = Path(_option(run.argv, "--out")), _option(run.argv, "--prefix", "lm_")
        files = [out / f"{prefix}{name}" for name in MAP_FILES]
        present = [f.name for f in files if f.is_file()]
        if run.code == 0:
            assert len(present) == len(files), f"map exited 0 but wrote only {present}"
        else:
            written = [f.name for f in files if f.is_file() and
                       (str(f.relative_to(w.root)) if f.is_relative_to(w.root) else str(f)) not in before]
            assert not written or len(present) == len(files), \
                f"map failed ({run.said}) after writing {written}: the out folder is neither empty nor complete"


# ------------------------------------------------------------------------------------------------
# the cases


@dataclass
class Case:
    name: str
    make: Callable  # w -> argv for main (checked by `expect` and the invariants), or w -> None (checks itself)
    expect: Callable | None = None
    changes_inputs: bool = False  # meant to replace an input (extract --force)


CASES: list[Case] = []


def case(name, make, expect=None, **kw):
    CASES.append(Case(name, make, expect, **kw))


def library(name):
    """A case that is a function of w making its own assertions."""
    def register(fn):
        case(name, fn)
        return fn
    return register


@library("the-fixture-store-is-valid")
def _control(w):
    view = load_activations(w.store, stream=True)
    assert isinstance(view, ShardedActivations) and view.shape == (ROWS, DIM) and view.n_shards == 4
    assert np.array_equal(load_activations(w.legacy).acts, w.acts)


@library("open_activations-of-a-regular-file")
def _regular_file(w):
    with pytest.raises(FileNotFoundError, match="afile"):
        open_activations(w.afile)


# 1. extract over an existing activation artifact: refuse unless --force --------------------------

case("extract-out-is-a-legacy-artifact", lambda w: extract(w, out=w.legacy), refused("--out", "--force"))
case("extract-out-is-a-write_shards-store", lambda w: extract(w, out=w.store), refused("--out", "--force"))


def _replaced_by_the_extraction(folder_of):
    def check(w, run):
        folder = folder_of(w)
        assert run.code == 0, f"--force: expected exit 0 (the folder replaced); got {run.said}"
        data = load_activations(folder)
        assert data.acts.shape == (64, 16), f"--force: {folder} reads as {data.acts.shape}, not the extraction (64, 16)"
        manifest = json.loads((folder / "manifest.json").read_text())
        listed = {s["file"] for s in manifest["shards"]}
        stale = sorted(p.name for p in folder.glob("*.npy") if p.name not in listed)
        assert not stale, f"--force left files of the replaced artifact: {stale}"
    return check


case("extract-force-replaces-a-legacy-artifact", lambda w: extract(w, "--force", out=w.legacy),
     _replaced_by_the_extraction(lambda w: w.legacy), changes_inputs=True)
case("extract-force-replaces-a-store", lambda w: extract(w, "--force", out=w.store),
     _replaced_by_the_extraction(lambda w: w.store), changes_inputs=True)


def _extract_twice(w):
    assert w.cli(extract(w, out=w.root / "ex")).code == 0
    return extract(w, out=w.root / "ex")  # the same command again: a resume, nothing to redo


case("extract-same-command-again-resumes", _extract_twice, succeeds())

# 2. train / map outputs never land on the activations or the checkpoint ---------------------------

case("train-out-is-the-manifest", lambda w: train(w, out=w.store / "manifest.json"), refused("--out"))
case("train-out-is-a-shard", lambda w: train(w, out=w.store / "shard_00000.npy"), refused("--out"))
case("train-out-is-legacy-acts.npy", lambda w: train(w, acts=w.legacy, out=w.legacy / "acts.npy"), refused("--out"))
case("train-out-is-the-activations-folder", lambda w: train(w, out=w.store), refused("--out"))
case("map-out-is-the-store-folder", lambda w: map_(w, out=w.store), refused("--out"))
case("map-prefix-writes-into-the-store", lambda w: map_(w, "--prefix", "../store/lm_"), refused(("--prefix", "--out")))
case("map-out-is-the-checkpoint-file", lambda w: map_(w, out=w.ckpt), refused("--out"))
case("map-out-is-the-manifest", lambda w: map_(w, out=w.store / "manifest.json"), refused("--out"))


def _checkpoint_named_like_an_output(w):
    w.out.mkdir()
    ckpt = Path(shutil.copy(w.ckpt, w.out / "lm_metrics.json"))
    return map_(w, ckpt=ckpt)


case("map-would-overwrite-the-checkpoint", _checkpoint_named_like_an_output, refused(("--out", "--checkpoint")))


# 3. an interrupted write_shards over an existing store never reads as a mix ----------------------

class CrashAfter:
    """Wraps numpy's array writers: the first `n` writes go through, the next raises (a full disk)."""

    def __init__(self, n):
        self.n, self.done, self.depth = n, 0, 0

    def wrap(self, real):
        def write(*args, **kwargs):
            if self.depth == 0 and self.done >= self.n:
                raise OSError("simulated crash: the disk filled up while writing the next shard")
            self.depth += 1
            try:
                return real(*args, **kwargs)
            finally:
                self.depth -= 1
                if self.depth == 0:
                    self.done += 1
        return write


@library("write_shards-interrupted-over-a-store-never-mixes")
def _interrupted_rewrite(w):
    a = w.acts
    b = (w.acts[::-1] * 3 + 1).astype(np.float32)  # another data set of the same shape
    crash = CrashAfter(1)
    with pytest.MonkeyPatch.context() as patch, pytest.raises((OSError, ValueError)):  # the crash, or a refusal
        patch.setattr(np, "save", crash.wrap(np.save))
        patch.setattr(np.lib.format, "write_array", crash.wrap(np.lib.format.write_array))
        write_shards(w.store, b, tokens=token_table(), stories=STORIES, shard_rows=SHARD_ROWS)
    try:
        got = load_activations(w.store).acts
    except (ValueError, FileNotFoundError) as e:
        assert "shard" in str(e) or "store" in str(e) or "incomplete" in str(e), f"unclear error: {e}"
        return
    same_as = [name for name, x in (("A", a), ("B", b)) if np.array_equal(got, x)]
    from_b = [f"{k}..{min(k + SHARD_ROWS, ROWS) - 1}" for k in range(0, ROWS, SHARD_ROWS)
              if np.array_equal(got[k:k + SHARD_ROWS], b[k:k + SHARD_ROWS])]
    assert same_as, (f"after write_shards(B) died after its first shard, load_activations returned a complete-looking "
                     f"store mixing the two: rows {from_b} from B, the rest from A (expected an error, or exactly A "
                     "or B)")


# 4. training refuses NaN, inf and overflowing values in a shard ----------------------------------

WHAT = ("nan", "inf", "finite", "large", "overflow", "range", "1e+30")
WHERE = ("data", "activations", "shard")
case("train-shard-with-nan", lambda w: w.poke(np.nan) and train(w), refused(WHERE, WHAT))
case("train-shard-with-inf", lambda w: w.poke(np.inf) and train(w), refused(WHERE, WHAT))
case("train-shard-with-1e30", lambda w: w.poke(1e30) and train(w), refused(WHERE, WHAT))


# 5. damaged stores are refused by default, naming the file ---------------------------------------

def swap_shard(w):
    shutil.copy(w.store / "shard_00000.npy", w.store / "shard_00001.npy")  # same shape, other rows


def truncate_shard(w):
    path = w.store / "shard_00001.npy"
    path.write_bytes(path.read_bytes()[:2000])


def outside_shard(w):
    np.save(w.root / "outside.npy", w.acts[64:128])  # a valid array of the right shape, outside the store
    w.edit_manifest(lambda m: m["shards"][1].update(file="../outside.npy"))


def extra_token_row(w):
    path = w.store / "tokens_00000.parquet"
    table = pd.read_parquet(path)
    pd.concat([table.iloc[:4], table.iloc[3:]], ignore_index=True).to_parquet(path, index=False)  # row 3 twice


def doubled_token_row(w):
    path = w.store / "tokens_00000.parquet"
    table = pd.read_parquet(path)
    table.iloc[4] = table.iloc[3]  # row 3 twice, row 4 gone: the same length
    table.to_parquet(path, index=False)


DAMAGE = {"swapped-shard": (swap_shard, "shard_00001.npy"), "truncated-shard": (truncate_shard, "shard_00001.npy"),
          "manifest-file-outside-the-store": (outside_shard, "outside.npy"),
          "token-table-with-an-extra-row": (extra_token_row, "tokens_00000.parquet"),
          "token-table-with-a-doubled-row": (doubled_token_row, "tokens_00000.parquet")}
for kind, (damage, named) in DAMAGE.items():
    if kind.startswith("token"):
        case(f"map-{kind}", lambda w, d=damage: d(w) or map_(w), refused(named))
    else:
        case(f"train-{kind}", lambda w, d=damage: d(w) or train(w), refused(named, absent=("mmap length",)))

    def _load_refused(w, damage=damage, named=named):
        damage(w)
        with pytest.raises(ValueError) as info:
            load_activations(w.store)  # the default: no verify flag
        assert named in str(info.value) and "mmap length" not in str(info.value), f"unclear: {info.value}"
        with pytest.raises(ValueError):
            open_activations(w.store).to_activations()

    library(f"load_activations-{kind}")(_load_refused)


# 6 and 7. processes ------------------------------------------------------------------------------

@library("torchrun-3-ranks-300-rows-batch-149")
def _torchrun_uneven(w):
    store = w.new_store("s300", acts=np.random.default_rng(3).standard_normal((300, DIM)).astype(np.float32))
    ckpt = w.root / "t.pt"
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "3",
                          "-m", "hebb_utils", "train", "--activations", str(store), "--grid", GRID,
                          "--batch-size", "149", "--out", str(ckpt)], capture_output=True, text=True, timeout=240,
                         env=ENV)
    errors = [x for x in run.stderr.splitlines() if "error:" in x or "Error:" in x][:2]
    assert run.returncode == 0, f"torchrun exited {run.returncode} (expected 0): {errors}"
    assert ckpt.is_file() and not non_finite_tensors(ckpt)
    assert torch.load(ckpt, weights_only=False)["config"]["world_size"] == 3


@library("world-size-2-without-a-peer-fails-fast")
def _no_peer(w):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**ENV, "WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    start = time.perf_counter()
    try:
        run = subprocess.run([sys.executable, "-m", "hebb_utils", *map(str, train(w))], capture_output=True,
                             text=True, timeout=120, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail("WORLD_SIZE=2 with no peer: still waiting after 120 s (expected exit 2 within 90 s naming the "
                    "missing peer / world size)", pytrace=False)
    seconds = time.perf_counter() - start
    result = Run(["train"], run.returncode, run.stdout, run.stderr)
    assert run.returncode == 2 and seconds < 90, f"{result.said} after {seconds:.0f} s"
    assert "Traceback" not in run.stderr
    _check_one_line(result)
    assert re.search(r"peer|world.?size", run.stderr, re.I), f"does not name the missing peer: {result.line!r}"


# 8. token labels are text, never mathtext --------------------------------------------------------

MATH_TOKENS = ["$$", "$x$", "\\frac", "$\\frac{1}{", "a_b^c$", "$\\alpha$", "x$y", "plain"]


def _mathtext_tokens(w):
    import matplotlib.mathtext

    parsed = []
    real = matplotlib.mathtext.MathTextParser.parse

    def spy(self, s, *args, **kwargs):
        parsed.append(s)
        return real(self, s, *args, **kwargs)

    w.monkeypatch.setattr(matplotlib.mathtext.MathTextParser, "parse", spy)
    w.parsed = parsed
    return map_(w, acts=w.new_store("math", tokens=token_table(names=MATH_TOKENS)))


def _drawn_as_text(w, run):
    assert (w.out / "lm_map.png").stat().st_size > 0 and (w.out / "lm_map_crop.png").stat().st_size > 0
    assert not w.parsed, f"token labels were parsed as mathtext: {w.parsed[:4]}"


case("map-tokens-with-dollars-and-backslashes", _mathtext_tokens, succeeds(_drawn_as_text))


# 9. huge settings: finite weights or a clear refusal ----------------------------------------------

case("train-gain-1e308", lambda w: train(w, "--gain", "1e308"), finite_or_refused("gain"))
case("train-gain-1e36", lambda w: train(w, "--gain", "1e36"), finite_or_refused("gain"))


def _som(setting, value):
    def call(w):
        try:
            som = train_som(torch.from_numpy(w.acts), (4, 5), **{setting: value})
        except ValueError as e:
            assert setting in str(e), f"the error does not name {setting}: {e}"
            return
        assert bool(torch.isfinite(som.weights).all()), f"train_som({setting}={value}) gave NaN/inf weights"
    return call


library("train_som-learning_rate-10")(_som("learning_rate", 10.0))
library("train_som-sigma-1e-200")(_som("sigma", 1e-200))


# 10. map's files: strict JSON, a 1-D grid, CSV cells ---------------------------------------------

def _strict_json(w, run):
    def refuse(constant):
        raise ValueError(f"lm_metrics.json holds {constant}: not valid JSON")
    json.loads((w.out / "lm_metrics.json").read_text(), parse_constant=refuse)


case("map-n-shuffles-0-writes-strict-json", lambda w: map_(w, "--n-shuffles", "0"), succeeds(_strict_json))


@library("train-1d-grid-then-map")
def _one_row_grid(w):
    trained = w.cli(train(w, grid="20", out=w.root / "row.pt"))
    if trained.code == 2:
        refused("grid")(w, trained)
        return
    assert trained.code == 0, trained.said
    mapped = w.cli(map_(w, ckpt=w.root / "row.pt"))
    check_invariants(w, mapped, {}, set())  # map writes all its files or none
    assert mapped.code == 0, f"train accepted --grid 20 but map refuses its checkpoint: {mapped.said}"


FORMULA_TOKENS = ["=SUM(A1)", "+1", "-2", "@x", "=cmd|' /C calc'!A0", "plain"]


def _neutralised(w, run):
    with open(w.out / "lm_top_tokens.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    cells = [v for row in rows for k, v in row.items() if k.startswith("token_")]
    live = sorted({c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")})
    assert not live, f"lm_top_tokens.csv has cells a spreadsheet runs as formulas: {live}"


case("map-csv-cells-are-not-formulas",
     lambda w: map_(w, acts=w.new_store("csv", tokens=token_table(names=FORMULA_TOKENS))), succeeds(_neutralised))


# 11. obscure errors become one line --------------------------------------------------------------

case("train-out-under-a-regular-file", lambda w: train(w, out=w.afile / "x.pt"), refused("--out"))
case("map-out-under-a-regular-file", lambda w: map_(w, out=w.afile / "figs"), refused("--out"))
case("extract-out-under-a-regular-file", lambda w: extract(w, out=w.afile / "acts"), refused("--out"))
case("extract-out-is-a-regular-file", lambda w: extract(w, out=w.afile), refused("--out"))
case("train-out-is-an-existing-directory", lambda w: (w.root / "adir").mkdir() or train(w, out=w.root / "adir"),
     refused("--out"))


def _random_bytes(w):
    (w.root / "random.pt").write_bytes(np.random.default_rng(0).bytes(1000))
    return map_(w, ckpt=w.root / "random.pt")


case("map-checkpoint-of-random-bytes", _random_bytes, refused("random.pt"))
case("map-checkpoint-is-a-text-file", lambda w: (w.root / "notes.pt").write_text("hello\n") and
     map_(w, ckpt=w.root / "notes.pt"), refused("notes.pt"))
case("train-activations-is-a-regular-file", lambda w: train(w, acts=w.afile), refused("afile"))
case("train-gain-negative-is-a-number", lambda w: train(w, "--gain", "-1e-3"), not_argparse_misparse)


# 12. more settings and damaged inputs -------------------------------------------------------------

case("train-epochs-0", lambda w: train(w, "--epochs", "0"), refused("epochs"))
case("train-epochs-2.5", lambda w: train(w, "--epochs", "2.5"), refused("--epochs"))
case("train-batch-size-0", lambda w: train(w, "--batch-size", "0"), refused("batch_size"))
case("train-t-invert-nan", lambda w: train(w, "--t-invert", "nan"), refused("t_invert"))
case("train-lr-inf", lambda w: train(w, "--lr", "inf"), refused("lr"))
case("train-radius-negative", lambda w: train(w, "--radius", "-1"), refused("radius"))
case("train-seed-negative", lambda w: train(w, "--seed", "-1"), refused("seed"))
case("train-grid-1x1", lambda w: train(w, grid="1x1"), finite_or_refused("grid"))
case("train-float16-store", lambda w: train(w, acts=w.new_store("half", dtype="float16")), succeeds(finite_checkpoint))
case("map-crop-0x5", lambda w: map_(w, "--crop", "0x5"), refused("--crop"))
case("map-crop-bigger-than-the-grid", lambda w: map_(w, "--crop", "9x9"), lambda w, r: r.code == 0 or
     refused("crop")(w, r))
case("map-top-tokens-0", lambda w: map_(w, "--top-tokens", "0"), refused("top_tokens"))
case("map-purity-top-0", lambda w: map_(w, "--purity-top", "0"), refused("purity_top"))
case("map-n-shuffles-negative", lambda w: map_(w, "--n-shuffles", "-1"), refused("n_shuffles"))
case("map-activations-of-another-dim", lambda w: map_(w, acts=w.new_store("d6", acts=w.acts[:, :6].copy())),
     refused("features"))
case("extract-shard-rows-0", lambda w: extract(w, "--shard-rows", "0"), refused("shard_rows"))
case("extract-chunk-stories-0", lambda w: extract(w, "--chunk-stories", "0"), refused("chunk_stories"))
case("extract-n-stories-0", lambda w: extract(w, "--n-stories", "0"), refused("n_stories"))
case("extract-layer-99", lambda w: extract(w, "--layer", "99"), refused("layer"))
case("extract-layer-negative", lambda w: extract(w, "--layer", "-1"), refused("layer"))
case("extract-dtype-float64", lambda w: extract(w, "--dtype", "float64"), refused("--dtype"))
if not torch.cuda.is_available():
    case("train-device-cuda-without-a-gpu", lambda w: train(w, "--device", "cuda"), refused("device"))


def _empty_legacy(w):
    empty = Activations(acts=np.zeros((0, DIM), np.float32), tokens=token_table(0), stories=[],
                        meta={"model": {"name": "m", "offline_stand_in": False}})
    save_activations(w.root / "empty", empty)
    return train(w, acts=w.root / "empty")


case("train-empty-activations", _empty_legacy, refused("0 row"))
case("train-one-row-store", lambda w: train(w, acts=w.new_store("one", acts=w.acts[:1])), refused("1 row"))


@library("write_shards-zero-rows")
def _zero_rows(w):
    with pytest.raises(ValueError, match="acts"):
        write_shards(w.root / "zero", np.zeros((0, DIM), np.float32))


@library("write_shards-shard-rows-0")
def _shard_rows_zero(w):
    with pytest.raises(ValueError, match="shard_rows"):
        write_shards(w.root / "zero", w.acts, shard_rows=0)


def _legacy_int_acts(w):
    np.save(w.legacy / "acts.npy", (w.acts * 10).astype(np.int64))
    return train(w, acts=w.legacy)


case("train-legacy-acts-of-dtype-int", _legacy_int_acts, refused("acts.npy"))
case("train-shard-of-dtype-int", lambda w: np.save(w.store / "shard_00001.npy", (w.acts[64:128] * 10).astype(np.int32))
     or train(w), refused("shard_00001.npy"))
case("train-manifest-not-json", lambda w: (w.store / "manifest.json").write_text("{not json") and train(w),
     refused("manifest.json"))
case("train-manifest-is-a-json-list", lambda w: (w.store / "manifest.json").write_text("[1, 2]") and train(w),
     refused("manifest.json"))
case("train-manifest-without-dtype", lambda w: w.edit_manifest(lambda m: m.pop("dtype")) and train(w),
     refused("manifest.json"))
case("train-manifest-shard-without-file", lambda w: w.edit_manifest(lambda m: m["shards"][0].pop("file")) and
     train(w), refused("manifest.json"))
case("train-manifest-with-no-shards", lambda w: w.edit_manifest(lambda m: m.update(shards=[])) and train(w),
     refused("manifest.json"))
case("train-manifest-incomplete", lambda w: w.edit_manifest(lambda m: m.update(complete=False)) and train(w),
     refused("incomplete"))
case("map-store-without-a-token-table", lambda w: map_(w, acts=w.new_store("bare", tokens=None)),
     refused("token table"))
case("map-token-file-missing", lambda w: (w.store / "tokens_00001.parquet").unlink() or map_(w),
     refused("tokens_00001.parquet", ("missing", "not found", "no such", "damaged")))


def _null_token(w):
    tokens = token_table()
    tokens.loc[tokens["token"] == "t3", "token"] = None  # every 13th row: some are among a neuron's top tokens
    return map_(w, acts=w.new_store("null", tokens=tokens))


case("map-null-token", _null_token, lambda w, r: r.code == 0 or refused("token")(w, r))
case("map-checkpoint-is-a-directory", lambda w: map_(w, ckpt=w.root), refused("no checkpoint"))


def _saved(obj, name):
    def make(w):
        torch.save(obj(w) if callable(obj) else obj, w.root / name)
        return map_(w, ckpt=w.root / name)
    return make


def _edited_checkpoint(edit):
    def build(w):
        saved = torch.load(w.ckpt, weights_only=False)
        edit(saved)
        return saved
    return build


case("map-checkpoint-without-config", _saved({"weights": torch.ones(3)}, "other.pt"), refused("not a checkpoint"))
case("map-checkpoint-config-without-t_invert", _saved(_edited_checkpoint(lambda s: s["config"].pop("t_invert")),
                                                       "edited.pt"), refused("edited.pt"))
case("map-checkpoint-with-a-nan-weight",
     _saved(_edited_checkpoint(lambda s: s["state_dict"]["weight"].__setitem__((0, 0), float("nan"))), "nan.pt"),
     refused(("checkpoint", "nan.pt")))


# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_misuse(case, w):
    argv = case.make(w)
    if argv is None:  # a library or multi-step case: it made its own assertions
        return
    before, folders = _digests(w.root), _activation_folders(w.root)
    existed = frozenset(str(p) for p in w.root.rglob("*"))
    run = w.cli(argv)
    case.expect(w, run)
    if not case.changes_inputs:
        check_invariants(w, run, before, folders, existed)


def test_the_walk_is_large():
    assert len(CASES) >= 80 and len({c.name for c in CASES}) == len(CASES)
