"""Regression tests for the defects tools/bad_input_walk.py found (one test per defect, each asserting
that the message names the offending argument or file), and a quick run of a few of the walk's own
probes so that the walk keeps working."""
from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import numpy as np
import torch

from hebb_utils.report import reproduce

REPO = Path(__file__).resolve().parents[1]


def _sides(tmp_path: Path, new: str, ref: str, name: str = "01_x.json") -> list[str]:
    for side, text in (("new", new), ("ref", ref)):
        (tmp_path / side).mkdir()
        (tmp_path / side / name).write_bytes(text.encode() if isinstance(text, str) else text)
    return ["--results", str(tmp_path / "new"), "--reference", str(tmp_path / "ref")]


def _seeded(mean, std, n) -> str:
    return json.dumps({"results": {"runs": {"a": {"mean": {"m": mean}, "std": {"m": std}, "n_by_metric": {"m": n}}}}})


def _verdict_error(argv, capsys) -> str:
    code = reproduce.main(argv)
    out, err = capsys.readouterr()
    assert code == 2 and "IDENTICAL" not in out and "Traceback" not in err
    return err.strip().splitlines()[-1]


# -- the verdict -----------------------------------------------------------------------------------------------


def test_verdict_refuses_a_number_that_overflows_to_inf(tmp_path, capsys):
    """1e999 parsed as inf: on the reference side it widened the tolerance to inf and judged any value
    CONSISTENT (exit 0); on the results side it was a DISCREPANT metric instead of an unreadable file."""
    argv = _sides(tmp_path, '{"results": {"accuracy": 0.5}}', '{"results": {"accuracy": 1e999}}')
    line = _verdict_error(argv, capsys)
    assert "ref/01_x.json" in line and "1e999" in line


def test_verdict_names_a_results_file_that_is_not_utf8(tmp_path, capsys):
    """A UnicodeDecodeError traceback from read_text, naming no file."""
    argv = _sides(tmp_path, b'{"results": {"name": "\xff\xfe"}}', '{"results": {"name": "x"}}')
    line = _verdict_error(argv, capsys)
    assert "new/01_x.json" in line and "UTF-8" in line


@pytest.mark.parametrize("std", ["wide", -0.1])
def test_verdict_refuses_a_seed_spread_that_is_not_a_spread(tmp_path, capsys, std):
    """A string std was a TypeError deep in measure/seeds.py; a negative one was judged CONSISTENT."""
    argv = _sides(tmp_path, _seeded(1.2, 0.1, 3), _seeded(1.0, std, 3))
    line = _verdict_error(argv, capsys)
    assert "ref/01_x.json" in line and "std / m" in line


@pytest.mark.parametrize("n", ["3", 0])
def test_verdict_refuses_a_seed_count_that_is_not_a_count(tmp_path, capsys, n):
    """A string count was a TypeError in flatten_results; a count of 0 was shown as CONSISTENT."""
    argv = _sides(tmp_path, _seeded(1.2, 0.1, n), _seeded(1.0, 0.1, n))
    line = _verdict_error(argv, capsys)
    assert "01_x.json" in line and "n_by_metric / m" in line


# -- the SAELens export ------------------------------------------------------------------------------------------


@pytest.fixture
def layer():
    from hebb_utils import Lateral, SoftHebbLinear
    return SoftHebbLinear(4, 6, 10.0, lateral=Lateral((2, 3)), seed=0)


def test_export_to_a_folder_that_cannot_be_made_names_folder(layer):
    """Exporting into /proc passed check_writable (root may write /proc) and failed with a
    FileNotFoundError naming the temp folder '/proc/.walk_sae.new-PID-...'."""
    pytest.importorskip("sae_lens")
    from hebb_utils.dictionaries.saelens import export_saelens

    with pytest.raises(ValueError, match="folder") as info:
        export_saelens(layer, "/proc/walk_sae")
    assert "/proc/walk_sae" in str(info.value) and ".new-" not in str(info.value)


@pytest.mark.parametrize("edit, says", [
    ({"d_sae": 5}, "d_sae"),  # SAELens: RuntimeError "size mismatch for W_dec" from torch
    ({"d_in": 3}, "d_in"),
    ({"k": 0}, "k=0"),  # SAELens: loads, and its TopK keeps no latent at all
    ({"architecture": "nope"}, "architecture"),  # SAELens: KeyError 'nope'
    (None, "not valid JSON"),  # SAELens: JSONDecodeError
])
def test_load_saelens_names_what_is_wrong_in_cfg_json(layer, tmp_path, edit, says):
    pytest.importorskip("sae_lens")
    from hebb_utils.dictionaries.saelens import export_saelens, load_saelens

    folder = export_saelens(layer, tmp_path / "sae")
    cfg = folder / "cfg.json"
    if edit is None:
        cfg.write_text(cfg.read_text()[:20])
    else:
        cfg.write_text(json.dumps({**json.loads(cfg.read_text()), **edit}))
    with pytest.raises(ValueError, match=says) as info:
        load_saelens(folder)
    assert "cfg.json" in str(info.value)
    assert load_saelens(export_saelens(layer, tmp_path / "good")).cfg.d_sae == 6


def test_load_saelens_names_missing_or_cut_weights(layer, tmp_path):
    """SAELens: a FileNotFoundError for a missing file is fine; a cut safetensors file is its own error."""
    pytest.importorskip("sae_lens")
    from hebb_utils.dictionaries.saelens import export_saelens, load_saelens

    folder = export_saelens(layer, tmp_path / "sae")
    weights = folder / "sae_weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:60])
    with pytest.raises(ValueError, match="sae_weights.safetensors"):
        load_saelens(folder)
    weights.unlink()
    with pytest.raises(FileNotFoundError, match="sae_weights.safetensors"):
        load_saelens(folder)
    with pytest.raises(FileNotFoundError, match="nope"):
        load_saelens(tmp_path / "nope")


# -- io, the paper, the token map, the toys ---------------------------------------------------------------------


def test_atomic_path_names_the_target_not_its_temp_file(tmp_path):
    """An OSError while making the temp file named '.NAME.XXXX.ext', a file the user never asked for."""
    from hebb_utils.io import atomic_path

    with pytest.raises(OSError) as info:
        with atomic_path("/proc/walk/p.pdf"):
            pass
    assert "/proc/walk/p.pdf" in str(info.value) and "/proc/walk/." not in str(info.value)


def test_paper_out_that_cannot_be_made_names_out(capsys):
    """--out /proc/walk/p.pdf: 'paper: [Errno 2] No such file or directory: /proc/walk' (no --out)."""
    pytest.importorskip("typst")
    from hebb_utils.report import paper

    assert paper.main(["--out", "/proc/walk/p.pdf", "--root", str(REPO)]) == 1
    err = capsys.readouterr().err
    assert "--out /proc/walk/p.pdf" in err


def test_token_map_html_path_that_is_a_folder_names_path(tmp_path):
    """IsADirectoryError naming the temp file '.p092.XXXX.html' -> the folder."""
    from hebb_utils import token_map_html

    with pytest.raises(ValueError, match="path=") as info:
        token_map_html(tmp_path, (2, 3), [["a"]] * 6, [1, 2, 3, 4, 5, 6])
    assert "is a folder" in str(info.value) and "/." not in str(info.value)
    blocker = tmp_path / "f.txt"
    blocker.write_text("mine")
    with pytest.raises(ValueError, match="path"):
        token_map_html(blocker / "m.html", (2, 3), [["a"]] * 6, [1, 2, 3, 4, 5, 6])
    assert blocker.read_text() == "mine"


def test_topographic_toy_with_a_huge_radius_is_the_flat_limit():
    """radius=1e300: OverflowError (34, 'Numerical result out of range') from radius**2."""
    from hebb_utils.dictionaries.ground_truth import topographic_toy

    toy = topographic_toy(20, d=4, grid=(2, 3), radius=1e300, mean_l0=2.0)
    assert math.isclose(toy.config["expected_l0"], 2.0, rel_tol=1e-9)
    assert bool(torch.isfinite(toy.X).all()) and bool((toy.rates - toy.rates[0]).abs().max() < 1e-12)


# -- the walk itself ----------------------------------------------------------------------------------------------


def _walk_module():
    spec = importlib.util.spec_from_file_location("bad_input_walk", REPO / "tools" / "bad_input_walk.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bad_input_walk", module)
    spec.loader.exec_module(module)
    return module


def test_the_walk_runs_a_few_fast_probes(tmp_path):
    walk = _walk_module()
    assert len(walk.PROBES) >= 100
    assert sum(p.surface in walk.NEW_SURFACES for p in walk.PROBES) >= 60
    chosen = [p for p in walk.PROBES if p.name in (
        "--results missing", "a notebook on the results side only", "1e999 on the reference side "
        "(would widen the tolerance to inf)", "identical inputs are IDENTICAL (control)", "sharkey n_samples True",
        "topographic radius 1e300 (huge)", "mmcs at scale 1e200", "take([1.5])")]
    assert len(chosen) == 8
    results = walk.walk(chosen, timeout=60, root=tmp_path / "walk")
    failed = [(r["name"], r["reason"]) for r in results if not r["handled"]]
    assert not failed
    # the judge itself: a raw error, a silent success and data loss are not handled
    raw = walk.Probe("x", "raw", lambda t: {}["k"], walk.Error("k"))
    silent = walk.Probe("x", "silent", lambda t: 1.0, walk.Error("k"))
    nan = walk.Probe("x", "nan", lambda t: math.nan, walk.Value(lambda r: True, "anything"))
    loss = walk.Probe("x", "loss", lambda t: (t / "f.txt").unlink(), walk.Value(lambda r: True, "anything"),
                      setup=lambda t: (t / "f.txt").write_text("mine"))
    results = walk.walk([raw, silent, nan, loss], timeout=60, root=tmp_path / "judge")
    assert [r["handled"] for r in results] == [False] * 4
    assert results[0]["reason"].startswith("raw KeyError") and "silent success" in results[1]["reason"]
    assert "nan" in results[2]["reason"] and "data loss" in results[3]["reason"]


# -----------------------------------------------------------------------------
# the walk's last failures, in the metrics (fixed after the walk)


def test_scale_free_metrics_do_not_overflow_or_underflow():
    from hebb_utils.measure.metrics import distance_correlation
    from hebb_utils.measure.recovery import explained_variance

    g = lambda s: torch.randn(6, 3, generator=torch.Generator().manual_seed(s), dtype=torch.float64)  # noqa: E731
    plain = explained_variance(g(0), g(1))
    for scale in (1e200, 1e-200):
        assert explained_variance(g(0) * scale, g(1) * scale) == pytest.approx(plain, rel=1e-12)
    W = torch.randn(6, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert distance_correlation(W * 1e200, (2, 3), n_shuffles=0)["rho"] == distance_correlation(W, (2, 3), n_shuffles=0)["rho"]


def test_linear_probe_names_labels_that_are_not_classes():
    from hebb_utils.measure.metrics import linear_probe

    F = torch.randn(10, 3, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"train_labels holds 0\.5: expected class labels"):
        linear_probe(F, np.arange(10) % 2 + 0.5, F[:4], np.arange(4) % 2)


@pytest.mark.parametrize("top_index, match", [
    (torch.tensor([[0, 5], [1, 2]]), r"top_index holds sample indices from 0 to 5, but tokens has 3"),
    (torch.tensor([[0.0, 1.0], [1.0, 0.0]]), r"top_index: expected a \(top, neurons\) integer tensor"),
    (torch.tensor([0, 1]), r"top_index: expected a \(top, neurons\) integer tensor.*\(2,\)"),
])
def test_top_distinct_tokens_names_a_bad_top_index(top_index, match):
    from hebb_utils.measure.maps import top_distinct_tokens

    with pytest.raises(ValueError, match=match):
        top_distinct_tokens(top_index, ["a", "b", "c"], 2)
