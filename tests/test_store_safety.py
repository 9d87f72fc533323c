"""Safety of the activation store and of the command line that writes it: outputs never replace
inputs unless asked (--force), an interrupted write never reads as a mix of two data sets, a
damaged store is refused on opening (cheaply, naming the file), checkpoints load without running
code, and every misuse ends with exit code 2 and one line on stderr."""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import hebb_utils.data.store as store
from hebb_utils import Activations, load_activations, open_activations, save_activations, write_shards
from hebb_utils.cli import main
from hebb_utils.rules.checkpoint import load_checkpoint

pytestmark = pytest.mark.usefixtures("quiet_bars")  # bars off for in-process calls (conftest.py)

MIRROR = os.environ.get("HEBB_DATA_MIRROR", "").strip()
ROWS, DIM, SHARD_ROWS = 200, 8, 64  # 4 shards: 64, 64, 64 and 8 rows
STORIES = [f"story {i}" for i in range(10)]


def table(n: int = ROWS) -> pd.DataFrame:
    return pd.DataFrame({"row": np.arange(n), "token_id": np.arange(n) % 7, "token": [f"t{i % 7}" for i in range(n)],
                         "story_id": np.arange(n) * 10 // n, "position": np.arange(n) % 20})


def digests(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def acts():
    return np.random.default_rng(0).standard_normal((ROWS, DIM)).astype(np.float32)


@pytest.fixture
def made(tmp_path, acts):
    """A store, the single-folder artifact of the same rows and a trained checkpoint, under tmp_path."""
    write_shards(tmp_path / "store", acts, tokens=table(), stories=STORIES, shard_rows=SHARD_ROWS)
    save_activations(tmp_path / "legacy", Activations(acts=acts, tokens=table(), stories=STORIES,
                                                      meta={"model": {"name": "m", "offline_stand_in": False}}))
    assert main(["train", "--activations", str(tmp_path / "store"), "--grid", "4x5", "--out", str(tmp_path / "l.pt")]) == 0
    return tmp_path


def cli(capsys, *argv) -> tuple[int, str]:
    """main(argv) in-process: (exit code, stderr); an error is exactly one line, without a traceback."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:  # argparse
        code = e.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if code == 2:
        lines = [x for x in err.splitlines() if x.strip()]
        assert lines[-1].startswith(f"python -m hebb_utils {argv[0]}: error: "), err
        assert len(lines) == 1 or lines[0].startswith("usage:"), err
    return code, err


# ------------------------------------------------------------------------------------------------
# 1. extract never replaces an existing folder without --force; a store of the same settings resumes




def extract(model, out, *extra):
    return ["extract", "--model", model, "--dataset", f"{MIRROR}/tinystories", "--n-stories", 4, "--max-tokens", 16,
            "--layer", 1, "--shard-rows", 20, *extra, "--out", out]


def test_extract_refuses_what_it_would_replace(tiny_model, made, capsys):
    other = made / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine\n")
    for folder in (made / "legacy", made / "store", other):  # the single folder, a store of other settings, files
        before = digests(made)
        code, err = cli(capsys, *extract(tiny_model, folder))
        assert code == 2 and "--out" in err and "--force" in err, err
        assert digests(made) == before, f"extract changed files while refusing {folder.name}"


def test_extract_force_replaces_and_the_same_command_resumes(tiny_model, made, capsys):
    assert cli(capsys, *extract(tiny_model, made / "legacy", "--force"))[0] == 0
    folder = made / "legacy"
    assert not (folder / "acts.npy").exists() and not (folder / "meta.json").exists()
    data = load_activations(folder)
    assert data.acts.shape == (64, 16)
    assert cli(capsys, *extract(tiny_model, made / "store", "--force"))[0] == 0
    listed = {s["file"] for s in json.loads((made / "store" / "manifest.json").read_text())["shards"]}
    assert {p.name for p in (made / "store").glob("*.npy")} == listed  # the 4 old shards are gone, 4 new ones
    assert np.array_equal(load_activations(made / "store").acts, data.acts)
    before = digests(made / "store")
    assert cli(capsys, *extract(tiny_model, made / "store"))[0] == 0  # the same settings: a resume, nothing redone
    assert digests(made / "store") == before
    code, err = cli(capsys, *extract(tiny_model, made / "store", "--dtype", "float16"))  # other settings
    assert code == 2 and "other settings (dtype" in err and "--force" in err
    assert digests(made / "store") == before


def test_extract_out_that_cannot_be_a_folder(tiny_model, made, capsys):
    (made / "afile").write_text("x\n")
    for out in (made / "afile", made / "afile" / "acts", made / "store" / "inner"):
        code, err = cli(capsys, *extract(tiny_model, out))
        assert code == 2 and "--out" in err, err
    assert not (made / "store" / "inner").exists()


def test_the_writer_decides_before_it_writes(tmp_path, acts):
    writer = store.ShardWriter(tmp_path / "new", ROWS, DIM, STORIES, shard_rows=SHARD_ROWS)
    assert writer.check() == "new" and not (tmp_path / "new").exists()
    write_shards(tmp_path / "s", acts, stories=STORIES, shard_rows=SHARD_ROWS)
    same = store.ShardWriter(tmp_path / "s", ROWS, DIM, STORIES, shard_rows=SHARD_ROWS)
    assert same.check() == "resume" and same.check(replace=True) == "replace"
    other = store.ShardWriter(tmp_path / "s", ROWS, DIM, STORIES, shard_rows=32)
    with pytest.raises(store.StoreExistsError, match="other settings .*shard_rows"):
        other.check()
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / ".manifest.json.abc.json").write_text("")  # only the temp file of a killed writer
    assert store.ShardWriter(tmp_path / "e", ROWS, DIM, STORIES).check() == "new"


# ------------------------------------------------------------------------------------------------
# 2. train --out never lands in the activations; an existing file only with --force


def test_train_out_never_destroys_the_activations(made, capsys):
    before = digests(made)
    store_, legacy = made / "store", made / "legacy"
    for acts, out in ((store_, store_ / "manifest.json"), (store_, store_ / "shard_00000.npy"),
                      (store_, store_ / "tokens_00001.parquet"), (store_, store_ / "shard_00000.json"),
                      (legacy, legacy / "acts.npy"), (store_, store_), (store_, store_ / "new.pt"),
                      (legacy, store_ / "x.pt")):  # inside another activation folder too
        for force in ((), ("--force",)):
            code, err = cli(capsys, "train", "--activations", acts, "--grid", "4x5", *force, "--out", out)
            assert code == 2 and "--out" in err, (out, err)
    assert digests(made) == before


def test_train_replaces_a_file_only_with_force(made, capsys):
    ckpt, other = made / "l.pt", made / "notes.txt"
    other.write_text("not a checkpoint\n")
    for out in (ckpt, other):
        before = out.read_bytes()
        code, err = cli(capsys, "train", "--activations", made / "store", "--grid", "4x5", "--seed", 1, "--out", out)
        assert code == 2 and "--force" in err and out.read_bytes() == before, err
    assert cli(capsys, "train", "--activations", made / "store", "--grid", "4x5", "--seed", 1, "--force", "--out", ckpt)[0] == 0
    assert load_checkpoint(ckpt)[1]["config"]["seed"] == 1
    (made / "adir").mkdir()
    code, err = cli(capsys, "train", "--activations", made / "store", "--grid", "4x5", "--force", "--out", made / "adir")
    assert code == 2 and "is a folder" in err


# ------------------------------------------------------------------------------------------------
# 3. an interrupted write over an existing store: the old store intact, or a store that refuses to open


class Crash(Exception):
    pass


def _crash_after(n, real):
    calls = []

    def call(*args, **kwargs):
        if len(calls) >= n:
            raise Crash("simulated crash")
        calls.append(args)
        return real(*args, **kwargs)
    return call


@pytest.mark.parametrize("shards_written", [0, 1, 3])
def test_interrupted_rewrite_never_reads_as_a_mix(made, acts, monkeypatch, shards_written):
    other = (acts[::-1] * 3 + 1).astype(np.float32)  # another data set of the same shape: the same plan
    with monkeypatch.context() as m:
        m.setattr(store, "_save_npy", _crash_after(shards_written, store._save_npy))
        with pytest.raises(Crash):
            write_shards(made / "store", other, tokens=table(), stories=STORIES, shard_rows=SHARD_ROWS)
    with pytest.raises(ValueError, match="incomplete"):
        load_activations(made / "store")
    with pytest.raises(ValueError, match="incomplete"):
        open_activations(made / "store", verify=False)
    write_shards(made / "store", other, tokens=table(), stories=STORIES, shard_rows=SHARD_ROWS)  # written again
    assert np.array_equal(load_activations(made / "store").acts, other)


def test_a_crash_before_the_new_manifest_keeps_the_old_store(made, acts, monkeypatch):
    with monkeypatch.context() as m:  # the manifest of the new plan never got written
        m.setattr(store, "atomic_write_json", _crash_after(0, store.atomic_write_json))
        with pytest.raises(Crash):
            write_shards(made / "store", acts * 2, tokens=table(), stories=STORIES, shard_rows=SHARD_ROWS)
    assert np.array_equal(load_activations(made / "store", verify=True).acts, acts)


def test_an_interrupted_replace_of_the_single_folder_refuses_to_open(made, acts, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(store, "_save_npy", _crash_after(1, store._save_npy))
        with pytest.raises(Crash):
            write_shards(made / "legacy", acts * 2, tokens=table(), stories=STORIES, shard_rows=SHARD_ROWS)
    with pytest.raises(ValueError, match="incomplete"):
        load_activations(made / "legacy")
    assert not (made / "legacy" / "acts.npy").exists()


def test_a_manifest_marked_incomplete_is_refused(made):
    path = made / "store" / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "complete": False}))
    with pytest.raises(ValueError, match="incomplete"):
        load_activations(made / "store", stream=True)


@pytest.mark.parametrize("fmt", ["hebb_utils.shards/0", "hebb_utils.shards/2", None])
def test_a_manifest_of_another_format_is_refused(made, fmt):
    """Issue 26: the manifest's format was never checked (/0, /2 or none all opened and trained)."""
    path = made / "store" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.pop("format")
    path.write_text(json.dumps(manifest if fmt is None else {**manifest, "format": fmt}))
    with pytest.raises(ValueError, match=r"format .* this hebb_utils reads 'hebb_utils.shards/1'"):
        load_activations(made / "store", stream=True)
    with pytest.raises(ValueError, match="re-extract"):
        open_activations(made / "store")


# ------------------------------------------------------------------------------------------------
# 4. damage is caught on opening, by default and cheaply, naming the file


def _swap(folder):
    shutil.copy(folder / "shard_00000.npy", folder / "shard_00001.npy")


def _truncate(folder):
    path = folder / "shard_00001.npy"
    path.write_bytes(path.read_bytes()[:2000])


def _outside(folder):
    np.save(folder.parent / "outside.npy", np.zeros((64, DIM), np.float32))
    _edit(folder, lambda m: m["shards"][1].update(file="../outside.npy"))


def _absolute(folder):
    np.save(folder.parent / "outside.npy", np.zeros((64, DIM), np.float32))
    _edit(folder, lambda m: m["shards"][1].update(file=str(folder.parent / "outside.npy")))


def _edit(folder, edit):
    manifest = json.loads((folder / "manifest.json").read_text())
    edit(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("damage, named", [(_swap, "shard_00001.npy: its first and last 64 KiB"),
                                           (_truncate, "shard_00001.npy: truncated"),
                                           (_outside, "'../outside.npy', which is not a file of the store"),
                                           (_absolute, "outside.npy', which is not a file of the store")])
def test_damaged_shards_are_refused_on_opening(made, damage, named):
    damage(made / "store")
    for read in (lambda: load_activations(made / "store"), lambda: open_activations(made / "store")):
        with pytest.raises(ValueError) as info:
            read()
        assert named in str(info.value) and "mmap length" not in str(info.value), info.value


def _extra_row(folder):
    path = folder / "tokens_00000.parquet"
    t = pd.read_parquet(path)
    pd.concat([t.iloc[:4], t.iloc[3:]], ignore_index=True).to_parquet(path, index=False)


def _short(folder):
    path = folder / "tokens_00000.parquet"
    pd.read_parquet(path).iloc[1:].to_parquet(path, index=False)


def _doubled_row(folder):
    path = folder / "tokens_00000.parquet"
    t = pd.read_parquet(path)
    t.iloc[4] = t.iloc[3]
    t.to_parquet(path, index=False)


@pytest.mark.parametrize("damage", [_extra_row, _short, _doubled_row])
def test_damaged_token_tables_are_refused_naming_the_file(made, damage):
    damage(made / "store")
    with pytest.raises(ValueError, match="tokens_00000.parquet"):
        load_activations(made / "store")
    with pytest.raises(ValueError, match="tokens_00000.parquet"):
        open_activations(made / "store").tokens


@pytest.mark.parametrize("damage, rows", [(_extra_row, 65), (_short, 63)])
def test_token_row_counts_are_checked_on_opening(made, damage, rows):
    damage(made / "store")
    with pytest.raises(ValueError, match=rf"tokens_00000.parquet: {rows} rows, the manifest says 64"):
        open_activations(made / "store")  # before the table is read


def test_a_doubled_token_row_is_caught_when_the_table_is_read(made):
    _doubled_row(made / "store")  # the same row count: only the hash sees it
    view = open_activations(made / "store")
    with pytest.raises(ValueError, match=r"tokens_00000.parquet: its SHA-256 is not the manifest's"):
        view.tokens
    with pytest.raises(ValueError, match=r"tokens_00000.parquet: its SHA-256"):
        open_activations(made / "store", verify=True)


def test_stores_of_older_versions_still_open(made, acts):
    """Manifests written before the size and the edge hash were recorded: checked by header and size."""
    _edit(made / "store", lambda m: [(s.pop("bytes"), s.pop("edges_sha256")) for s in m["shards"]])
    assert np.array_equal(load_activations(made / "store").acts, acts)
    _truncate(made / "store")
    with pytest.raises(ValueError, match="shard_00001.npy: truncated"):
        load_activations(made / "store")


# ------------------------------------------------------------------------------------------------
# 5. obscure errors become one line; checkpoints load without running code


def test_obscure_errors_are_one_line(made, capsys):
    (made / "afile").write_text("x\n")
    (made / "random.pt").write_bytes(np.random.default_rng(0).bytes(1000))
    (made / "notes.pt").write_text("hello\n")
    (made / "adir").mkdir()
    bad_manifest = Path(shutil.copytree(made / "store", made / "bad"))
    train = ["train", "--grid", "4x5", "--activations"]
    for argv, named in (([*train, made / "store", "--out", made / "afile" / "x.pt"], "--out"),
                        ([*train, made / "store", "--out", made / "adir"], "--out"),
                        ([*train, made / "afile", "--out", made / "n.pt"], "afile"),
                        (["map", "--activations", made / "store", "--checkpoint", made / "random.pt", "--out",
                          made / "figs"], "random.pt"),
                        (["map", "--activations", made / "store", "--checkpoint", made / "notes.pt", "--out",
                          made / "figs"], "notes.pt")):
        code, err = cli(capsys, *argv)
        assert code == 2 and named in err, (argv, err)
    for text in ("{not json", "[1, 2]", json.dumps({"shards": []}), json.dumps({"complete": True})):
        (bad_manifest / "manifest.json").write_text(text)
        code, err = cli(capsys, *train, bad_manifest, "--out", made / "n.pt")
        assert code == 2 and "manifest.json" in err, (text, err)
    assert not (made / "n.pt").exists()


class _Marker:
    """An object whose unpickling writes a file: a stand-in for a pickle that runs code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (Path.write_text, (Path(self.path), "code ran"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_checkpoints_load_without_running_code(made):
    saved = torch.load(made / "l.pt", weights_only=True)  # what train writes loads with weights_only
    marker = made / "ran.txt"
    torch.save({**saved, "extra": _Marker(marker)}, made / "evil.pt")
    with pytest.raises(ValueError, match="evil.pt: not a checkpoint .*not unpickled"):
        load_checkpoint(made / "evil.pt")
    assert not marker.exists()
    with open(made / "plain.pkl", "wb") as f:
        pickle.dump({"a": 1}, f)
    with pytest.raises(ValueError, match="plain.pkl"):
        load_checkpoint(made / "plain.pkl")
    layer, again = load_checkpoint(made / "l.pt")  # a checkpoint of train: tensors, numbers, strings, lists, dicts
    assert torch.equal(layer.weight, saved["state_dict"]["weight"])


@pytest.mark.parametrize("edit, named", [(lambda s: s["config"].pop("t_invert"), "lacks ['t_invert']"),
                                         (lambda s: s["state_dict"]["weight"].__setitem__((0, 0), float("nan")),
                                          "NaN or inf"),
                                         (lambda s: s["config"].update(in_features=3), "do not make a layer")])
def test_edited_checkpoints_are_named(made, edit, named):
    saved = torch.load(made / "l.pt", weights_only=True)
    edit(saved)
    torch.save(saved, made / "edited.pt")
    with pytest.raises(ValueError, match=f"edited.pt: .*{named}".replace("[", r"\[").replace("]", r"\]")):
        load_checkpoint(made / "edited.pt")


# ------------------------------------------------------------------------------------------------
# 6. negative numbers in scientific notation are values


def test_negative_numbers_in_scientific_notation_are_values(made, capsys):
    code, err = cli(capsys, "train", "--activations", made / "store", "--grid", "4x5", "--gain", "-1e-3",
                    "--out", made / "g.pt")
    assert "expected one argument" not in err
    assert code == 0 and load_checkpoint(made / "g.pt")[1]["config"]["gain"] == -1e-3
    code, err = cli(capsys, "train", "--activations", made / "store", "--grid", "4x5", "--lr", "-1E+2",
                    "--out", made / "h.pt")
    assert code == 2 and "lr=-100.0" in err  # the setting refuses it, not argparse


# ------------------------------------------------------------------------------------------------
# 7. misuse of train and extract: exit 2, one line naming the setting


def _int_acts(folder):
    np.save(folder / "acts.npy", np.zeros((ROWS, DIM), np.int64))


@pytest.mark.parametrize("extra, named", [(("--epochs", "0"), "epochs"), (("--batch-size", "0"), "batch_size"),
                                          (("--t-invert", "nan"), "t_invert"), (("--lr", "inf"), "lr"),
                                          (("--radius", "-1"), "radius"), (("--seed", "-1"), "seed")])
def test_train_settings_out_of_range(made, capsys, extra, named):
    code, err = cli(capsys, "train", "--activations", made / "store", "--grid", "4x5", *extra, "--out", made / "x.pt")
    assert code == 2 and named in err and not (made / "x.pt").exists(), err


def test_train_on_data_that_cannot_train(made, acts, capsys):
    write_shards(made / "one", acts[:1], shard_rows=SHARD_ROWS)
    save_activations(made / "empty", Activations(acts=np.zeros((0, DIM), np.float32), tokens=table(0), stories=[],
                                                 meta={"model": {"name": "m", "offline_stand_in": False}}))
    _int_acts(made / "legacy")
    for folder, named in ((made / "one", "1 row"), (made / "empty", "0 row"), (made / "legacy", "acts.npy")):
        code, err = cli(capsys, "train", "--activations", folder, "--grid", "4x5", "--out", made / "x.pt")
        assert code == 2 and named in err, err


@pytest.mark.parametrize("extra, named", [(("--n-stories", "0"), "n_stories"), (("--shard-rows", "0"), "shard_rows"),
                                          (("--chunk-stories", "0"), "chunk_stories"),
                                          (("--batch-size", "0"), "batch_size"), (("--max-tokens", "0"), "max_tokens"),
                                          (("--layer", "-1"), "layer")])
def test_extract_settings_are_checked_before_the_model_loads(tmp_path, capsys, monkeypatch, extra, named):
    import hebb_utils.data.sources as sources

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the settings were checked")
    monkeypatch.setattr(sources, "load_language_model", no_model)
    code, err = cli(capsys, "extract", *extra, "--out", tmp_path / "x")
    assert code == 2 and named in err and not (tmp_path / "x").exists(), err


def test_extract_layer_beyond_the_model(tiny_model, tmp_path, capsys):
    code, err = cli(capsys, *extract(tiny_model, tmp_path / "x", "--layer", "2"))
    assert code == 2 and "layer=2" in err and "2 blocks" in err
    assert not (tmp_path / "x").exists()
