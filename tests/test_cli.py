"""The command line `python -m hebb_utils extract|train|map`: help, clear errors, and notebook 5's
map from the command line alone (the same weights as the notebook's code path, the same files)."""
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hebb_utils import load_activations, neuron_summary, top_distinct_tokens, train_ablations
from hebb_utils.cli import parse_grid
from hebb_utils.rules.checkpoint import load_checkpoint
from hebb_utils import write_shards

MIRROR = os.environ.get("HEBB_DATA_MIRROR", "").strip()
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}


def cli(*args, torchrun: int = 0, timeout=300):
    head = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(torchrun), "-m"] \
        if torchrun else [sys.executable, "-m"]
    return subprocess.run([*head, "hebb_utils", *map(str, args)], capture_output=True, text=True, timeout=timeout, env=ENV)


def test_help_of_every_subcommand():
    for command, words in (("extract", ["--model", "--layer", "--dataset", "--out", "--dtype", "--shard-rows", "--force"]),
                           ("train", ["--activations", "--grid", "--t-invert", "--shuffle", "(default: 0.2)", "--force",
                                      "replace an existing --out file"]),
                           ("map", ["--checkpoint", "--crop", "--prefix"])):
        run = cli(command, "--help")
        assert run.returncode == 0 and all(w in run.stdout for w in words), run.stdout
    assert "torchrun" in cli("--help").stdout


def test_bad_inputs_are_one_clear_line(tmp_path):
    write_shards(tmp_path / "acts", np.random.default_rng(0).standard_normal((100, 6)).astype(np.float32))
    cases = [
        (("train", "--activations", tmp_path / "missing", "--grid", "4x5", "--out", tmp_path / "l.pt"), "no activations at"),
        (("train", "--activations", tmp_path / "acts", "--grid", "4y5", "--out", tmp_path / "l.pt"), "argument --grid: '4y5'"),
        (("train", "--activations", tmp_path / "acts", "--grid", "0x5", "--out", tmp_path / "l.pt"), "ROWSxCOLS"),
        (("train", "--activations", tmp_path / "acts", "--grid", "4x5", "--lr", "-1", "--out", tmp_path / "l.pt"), "lr=-1.0"),
        (("train", "--activations", tmp_path / "acts", "--grid", "4x5", "--batch-size", "1", "--out", tmp_path / "l.pt"),
         "batch_size=1"),
        (("map", "--activations", tmp_path / "acts", "--checkpoint", tmp_path / "none.pt", "--out", tmp_path), "no checkpoint"),
        (("train", "--grid", "4x5"), "the following arguments are required: --activations"),
    ]
    for args, message in cases:
        run = cli(*args)
        assert run.returncode == 2, (args, run.stdout, run.stderr)
        assert message in run.stderr and "Traceback" not in run.stderr, (args, run.stderr)
    with pytest.raises(Exception, match="ROWSxCOLS"):
        parse_grid("30x")
    assert parse_grid("30x60") == (30, 60) and parse_grid("1800") == (1800,)


def _sha(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.skipif(not MIRROR, reason="HEBB_DATA_MIRROR is not set: reads the offline mirror (the CI sets it)")
def test_notebook_5_map_from_the_command_line(tmp_path):
    """extract -> train -> map on a small stand-in run; the trained weights are the notebook's
    (train_ablations' "lateral support" layer, the same settings), and so are the neurons' names."""
    acts, ckpt, figs = tmp_path / "acts", tmp_path / "layer.pt", tmp_path / "figures"
    run = cli("extract", "--n-stories", 24, "--max-tokens", 48, "--shard-rows", 300, "--chunk-stories", 5, "--out", acts)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "OFFLINE STAND-IN" in run.stdout and "complete" in run.stdout
    grid, settings = (6, 10), dict(t_invert=100.0, lr=0.2, radius=1.0, gain=0.3, epochs=1, batch_size=64, seed=42)
    run = cli("train", "--activations", acts, "--grid", "6x10", "--out", ckpt)
    assert run.returncode == 0, run.stderr[-3000:]
    run = cli("map", "--activations", acts, "--checkpoint", ckpt, "--out", figs, "--n-shuffles", 5, "--crop", "4x6")
    assert run.returncode == 0, run.stderr[-3000:]
    for name in ("lm_map.png", "lm_map_crop.png", "lm_map.html", "lm_top_tokens.csv", "lm_metrics.json"):
        assert (figs / name).stat().st_size > 0, name

    # notebook 05's code path on the same activations
    data = load_activations(acts)
    X = torch.from_numpy(data.acts.astype("float32"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the command line ran with OMP_NUM_THREADS=1: the same float code path
    try:
        layers, _, _ = train_ablations(X, grid, settings["t_invert"], lr=settings["lr"], radius=settings["radius"],
                                       gain=settings["gain"], epochs=settings["epochs"],
                                       batch_size=settings["batch_size"], seed=settings["seed"], device="cpu",
                                       progress=False)
    finally:
        torch.set_num_threads(threads)
    layer, saved = load_checkpoint(ckpt)
    assert saved["config"]["world_size"] == 1
    assert torch.equal(layer.weight, layers["lateral support"].weight)
    assert torch.equal(layer.bn.running_var, layers["lateral support"].bn.running_var)
    summary = neuron_summary(layers["lateral support"], X, top=50)
    names = top_distinct_tokens(summary["top_index"], data.tokens["token"], k=3)
    table = pd.read_csv(figs / "lm_top_tokens.csv", keep_default_na=False)
    assert table["wins"].tolist() == torch.bincount(summary["best2"][:, 0], minlength=60).tolist()
    assert table[["token_1", "token_2", "token_3"]].values.tolist() == [n + [""] * (3 - len(n)) for n in names]

    # the same extraction and training with 2 gloo processes under torchrun
    run = cli("extract", "--n-stories", 24, "--max-tokens", 48, "--shard-rows", 300, "--chunk-stories", 5,
              "--out", tmp_path / "acts2", torchrun=2)
    assert run.returncode == 0, run.stderr[-3000:]
    assert _sha(tmp_path / "acts2") == _sha(acts)  # each rank wrote its own shards: the same bytes
    run = cli("train", "--activations", acts, "--grid", "6x10", "--out", tmp_path / "layer2.pt", torchrun=2)
    assert run.returncode == 0, run.stderr[-3000:]
    layer2, saved2 = load_checkpoint(tmp_path / "layer2.pt")
    assert saved2["config"]["world_size"] == 2 and torch.equal(saved2["wins"], saved["wins"])
    torch.testing.assert_close(layer2.weight, layer.weight, atol=5e-5, rtol=1e-4)


def test_train_with_an_annealed_support(tmp_path):
    """--shape gaussian --radius-end: the layer trains with a LateralSchedule, as notebook 06's runs."""
    from hebb_utils import LateralSchedule, SoftHebbLinear, train_softhebb

    X = np.random.default_rng(1).standard_normal((300, 6)).astype(np.float32)
    write_shards(tmp_path / "acts", X)
    run = cli("train", "--activations", tmp_path / "acts", "--grid", "3x4", "--shape", "gaussian", "--radius", 2.0,
              "--radius-end", 0.8, "--gain", 3.0, "--lr", 0.05, "--out", tmp_path / "l.pt")
    assert run.returncode == 0, run.stderr[-3000:]
    layer, saved = load_checkpoint(tmp_path / "l.pt")
    assert isinstance(layer.lateral, LateralSchedule) and layer.lateral.radius == (2.0, 0.8)
    ref = SoftHebbLinear(6, 12, 100.0, lateral=LateralSchedule((3, 4), radius=(2.0, 0.8), gain=3.0, shape="gaussian"),
                         seed=42)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the command line (OMP_NUM_THREADS=1)
    try:
        train_softhebb(ref, torch.from_numpy(X), lr=0.05, seed=42, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(layer.weight, ref.weight)
    run = cli("train", "--activations", tmp_path / "acts", "--grid", "3x4", "--radius-end", 0, "--out", tmp_path / "b.pt")
    assert run.returncode == 2 and "radius" in run.stderr and "Traceback" not in run.stderr


def test_train_with_the_matching_pursuit_rule(tmp_path):
    """--rule pursuit --k: the layer is rules/pursuit.py's, trained by the one loop, as in Python; the
    options of the other rule are refused, not ignored."""
    from hebb_utils.rules.pursuit import PursuitLinear
    from hebb_utils.rules.training import train_softhebb_parallel

    X = np.random.default_rng(2).standard_normal((300, 6)).astype(np.float32)
    write_shards(tmp_path / "acts", X)
    run = cli("train", "--activations", tmp_path / "acts", "--grid", "3x4", "--rule", "pursuit", "--k", 3,
              "--lr", 0.5, "--out", tmp_path / "p.pt")
    assert run.returncode == 0, run.stderr[-3000:]
    layer, saved = load_checkpoint(tmp_path / "p.pt")
    assert isinstance(layer, PursuitLinear) and layer.k == 3 and layer.grid.shape == (3, 4)
    assert saved["config"]["rule"] == "pursuit" and "t_invert" not in saved["config"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the command line (OMP_NUM_THREADS=1)
    try:
        ref, _ = train_softhebb_parallel(PursuitLinear(6, 12, 3, grid=(3, 4), seed=42), torch.from_numpy(X), lr=0.5,
                                         seed=42, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(layer.weight, ref.weight)
    for extra, named in ((["--radius", 2], "--radius"), (["--no-lateral"], "--no-lateral"), (["--k", 0], "--k"),
                         (["--k", 13], "--k 13: expected at most the 12 units")):
        run = cli("train", "--activations", tmp_path / "acts", "--grid", "3x4", "--rule", "pursuit", *extra,
                  "--out", tmp_path / "q.pt")
        assert run.returncode == 2 and named in run.stderr and "Traceback" not in run.stderr, run.stderr
    run = cli("train", "--activations", tmp_path / "acts", "--grid", "3x4", "--k", 2, "--out", tmp_path / "r.pt")
    assert run.returncode == 2 and "--k: set(s) the pursuit rule, but --rule is softhebb" in run.stderr, run.stderr
    assert not (tmp_path / "q.pt").exists() and not (tmp_path / "r.pt").exists()
