"""Bad input to the lateral support and to `python -m hebb_utils train` (QA walk): each is refused
with a ValueError, or the command line's one line on stderr and exit code 2, that names the argument
and the fix. Never silent, never a wrong answer, never a raw error from inside torch or int()."""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hebb_utils import Lateral, LateralSchedule, write_shards

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
for _name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
    ENV.pop(_name, None)
ERROR = "python -m hebb_utils train: error: "


def cli(*args, torchrun: int = 0, env: dict | None = None, timeout=300):
    head = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(torchrun), "-m"] \
        if torchrun else [sys.executable, "-m"]
    return subprocess.run([*head, "hebb_utils", *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**ENV, **(env or {})})


@pytest.fixture
def acts(tmp_path) -> Path:
    write_shards(tmp_path / "acts", np.random.default_rng(0).standard_normal((100, 6)).astype(np.float32))
    return tmp_path / "acts"


def _refused(run, *words):
    assert run.returncode == 2, (run.returncode, run.stdout, run.stderr)
    assert "Traceback" not in run.stderr, run.stderr
    line = next(line for line in run.stderr.splitlines() if line.startswith(ERROR))
    assert all(w in line for w in words), (words, run.stderr)
    return line


# 1-4: the lateral support's entry points

def test_fixed_lateral_at_refuses_a_nan_progress():
    lateral = Lateral((3, 4))
    for bad in (math.nan, math.inf, -0.1, 1.5, "0.5"):
        with pytest.raises(ValueError, match=r"progress=.*expected .*number"):
            lateral.at(bad)
    # valid points: the same support, as before
    assert lateral.at(None) is lateral and lateral.at(0.0) is lateral and lateral.at(np.float32(1.0)) is lateral


def test_neighbours_refuse_a_negative_winner():
    lateral = Lateral((3, 4))
    with pytest.raises(ValueError, match=r"winners holds the index -5: expected neuron indices in 0 \.\. 11"):
        lateral.neighbours(torch.tensor([-5]))
    with pytest.raises(ValueError, match=r"winners: expected a 1D tensor"):
        lateral.neighbours(-5)
    with pytest.raises(ValueError, match=r"winners has dtype torch.float32: expected integers"):
        lateral.neighbours(torch.tensor([5.0]))
    with pytest.raises(ValueError, match=r"winners holds the index -1"):
        Lateral((12,), radius=2).neighbours(torch.tensor([3, -1]))
    # valid winners: the same neighbourhoods as before
    index, valid = lateral.neighbours(torch.tensor([5, 0]))
    assert index.tolist() == [[1, 4, 5, 6, 9], [0, 0, 0, 1, 4]]
    assert valid.tolist() == [[True] * 5, [False, False, True, True, True]]


def test_weights_refuse_a_winner_outside_the_grid():
    for lateral in (Lateral((3, 4)), Lateral((3, 4), shape="gaussian"), Lateral((12,))):
        with pytest.raises(ValueError, match=r"winners holds the index 99: expected neuron indices in 0 \.\. 11"):
            lateral.weights(torch.tensor([99]))
        with pytest.raises(ValueError, match=r"winners holds the index 12"):
            lateral.neighbours(torch.tensor([0, 12]))
    with pytest.raises(ValueError, match=r"winners: expected a 1D tensor or array, got list"):
        Lateral((3, 4)).weights([99])
    # the last neuron is a valid winner: its weights as before
    h = Lateral((3, 4)).weights(torch.tensor([11]))
    assert h.reshape(3, 4).tolist() == [[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 1]]


def test_schedule_refuses_a_negative_end_radius():
    for radius in ((2, -1), (-1, 2)):
        with pytest.raises(ValueError, match=r"radius=-1: expected a finite number >= 0 \(a grid distance"):
            LateralSchedule((3, 4), radius=radius, shape="disc", decay="linear")
    with pytest.raises(ValueError, match=r"radius=-1: expected a finite number > 0"):
        LateralSchedule((3, 4), radius=(2, -1), shape="disc")  # geometric: refused before too
    # a radius that reaches 0 (the winner alone) stays valid with the linear decay
    assert LateralSchedule((3, 4), radius=(2, 0), shape="disc", decay="linear").at(1.0).radius == 0.0


# 5-8: the command line

def test_cli_refuses_radius_end_with_no_lateral(acts, tmp_path):
    line = _refused(cli("train", "--activations", acts, "--grid", "3x4", "--radius-end", 0.5, "--no-lateral",
                        "--out", tmp_path / "l.pt"), "--radius-end 0.5", "--no-lateral", "drop --radius-end")
    assert "--gain-end" not in line
    _refused(cli("train", "--activations", acts, "--grid", "3x4", "--gain-end", 0.1, "--no-lateral",
                 "--out", tmp_path / "l.pt"), "--gain-end 0.1", "--no-lateral")
    assert not (tmp_path / "l.pt").exists()


def test_cli_names_a_non_integer_world_size(acts, tmp_path):
    line = _refused(cli("train", "--activations", acts, "--grid", "3x4", "--out", tmp_path / "l.pt",
                        env={"WORLD_SIZE": "two"}), "WORLD_SIZE='two'", "expected an integer", "torchrun sets it")
    assert "invalid literal" not in line


def test_cli_under_torchrun_says_why_out_cannot_be_written(acts, tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    if Path("/proc").is_dir():  # root may write everywhere by its permission bits, but no file is made in /proc
        _refused(cli("train", "--activations", acts, "--grid", "3x4", "--out", "/proc/hebb_layer.pt"),
                 "--out /proc/hebb_layer.pt")
    run = cli("train", "--activations", acts, "--grid", "3x4", "--out", tmp_path / "afile" / "l.pt", torchrun=2)
    assert run.returncode != 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if "python -m hebb_utils train: error:" in line]
    assert lines, run.stderr  # the reason, not only torchrun's banner
    for line in lines:  # one whole line per rank, not run into another rank's
        assert line.startswith(ERROR + "--out ") and line.count("python -m hebb_utils") == 1, run.stderr
        assert "is a file, not a folder" in line, run.stderr
    assert "/hebb_utils/" not in run.stderr, run.stderr  # torchrun's own traceback only, none from the ranks
    assert "training" not in run.stdout


def test_cli_refuses_a_grid_that_cannot_fit(acts, tmp_path):
    line = _refused(cli("train", "--activations", acts, "--grid", "100000x100000", "--out", tmp_path / "l.pt"),
                    "--grid 100000x100000", "10,000,000,000 neurons", "need at least", "use a smaller --grid")
    assert "TiB" in line and "alloc" not in line.lower()
    assert not (tmp_path / "l.pt").exists()
