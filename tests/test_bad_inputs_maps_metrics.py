"""Bad inputs of the map page, the map metrics and the SOM baseline: refused with the argument named, or
(a legitimate value the page could not write) rendered. One test per defect a QA walk reported."""
import json
import math
import re

import numpy as np
import pytest
import torch

from hebb_utils.measure.maps import top_distinct_tokens
from hebb_utils.measure.metrics import distance_correlation, effective_dimension
from hebb_utils.report.lm_map import check_map_settings
from hebb_utils.report.token_map import token_map_html
from hebb_utils.rules.som import train_som


def _page_data(path):
    text = path.read_text(encoding="utf-8")
    blob = re.search(r'<script type="application/json" id="map-data">(.*?)</script>', text, re.S)
    assert blob, "no embedded data"
    return text, json.loads(blob.group(1))


# 1. top_distinct_tokens: k < 1 ----------------------------------------------------------------------

@pytest.mark.parametrize("k", [0, -1])
def test_top_distinct_tokens_refuses_k_below_1(k):
    with pytest.raises(ValueError, match=r"k=-?\d+: expected"):
        top_distinct_tokens(torch.tensor([[0, 1], [1, 0], [2, 2]]), ["a", "b", "c"], k=k)


@pytest.mark.parametrize("k", [0, -1])
def test_map_top_tokens_below_1_is_refused(k):
    """The map's way into top_distinct_tokens (write_token_map, draw_token_map, the CLI) checks it first."""
    with pytest.raises(ValueError, match="top_tokens"):
        check_map_settings(top_tokens=k)


# 2. token_map_html: a win count beyond int64 ----------------------------------------------------------

@pytest.mark.parametrize("big", [np.array([1e300, 1.0, 0.0]), np.array([2.0 ** 63, 1.0, 0.0]), [1e300, 1, 0],
                                 np.array([2 ** 64 - 1, 1, 0], dtype=np.uint64)])
def test_token_map_html_refuses_wins_beyond_int64(tmp_path, big):
    # was: the cast wrapped them, the page said -9223372036854775808 (or -1 for the uint64) wins
    with pytest.raises(ValueError, match=r"wins: counts must be below 2\*\*63"):
        token_map_html(tmp_path / "map.html", (1, 3), [["a"], ["b"], ["c"]], big)
    assert not list(tmp_path.iterdir())
    # the largest counts int64 holds are written as they are
    for wins, written in ((np.array([2 ** 63 - 1, 1, 0]), 2 ** 63 - 1), (np.array([2.0 ** 63 - 1024, 1, 0]), 2 ** 63 - 1024),
                          (np.array([7, 1, 0], dtype=np.uint64), 7)):
        _, data = _page_data(token_map_html(tmp_path / "ok.html", (1, 3), [["a"], ["b"], ["c"]], wins))
        assert data["wins"] == [written, 1, 0]


# 3. token_map_html: a lone surrogate in a string --------------------------------------------------------

def test_token_map_html_writes_lone_surrogates_as_replacement_characters(tmp_path):
    # was: UnicodeEncodeError ('utf-8' codec can't encode character '\ud800') when the page was written
    names = [["\ud800"], ["b\udc80", "\ud83d\ude00"], ["c"]]  # lone high, lone low, a surrogate pair
    path = token_map_html(tmp_path / "map.html", (1, 3), names, [1, 1, 0],
                          snippets=[[{"left": "x\udfff", "token": "\ud800", "right": "", "story_id": 0, "position": 1}],
                                    [], []], title="t\ud800")
    text, data = _page_data(path)
    assert data["names"] == [["\ufffd"], ["b\ufffd", "\U0001F600"], ["c"]]  # the pair is its character
    assert data["snippets"][0][0][:2] == ["x\ufffd", "\ufffd"]
    assert "t\ufffd" in text
    assert not re.search("[\ud800-\udfff]", text)
    # a page without surrogates is written as before
    plain = token_map_html(tmp_path / "plain.html", (1, 3), [["a"], ["b"], ["c"]], [1, 1, 0])
    assert _page_data(plain)[1]["names"] == [["a"], ["b"], ["c"]]


# 4. distance_correlation: n_shuffles=0 -----------------------------------------------------------------

def test_distance_correlation_n_shuffles_0_is_the_documented_skip():
    """n_shuffles=0 is the documented way to measure rho without the null (map --n-shuffles 0, whose strict
    JSON writes the NaN as null: test_map_safety): rho as with a null, p_value 1.0, the null's summary NaN
    (not measured) as the docstring says; a negative count or a non-integer is refused."""
    torch.manual_seed(0)
    W = torch.randn(9, 4)
    skip, full = distance_correlation(W, (3, 3), n_shuffles=0), distance_correlation(W, (3, 3), n_shuffles=5)
    assert skip["rho"] == full["rho"] and math.isfinite(skip["rho"]) and skip["n_pairs"] == full["n_pairs"] == 36
    assert skip["p_value"] == 1.0 and math.isnan(skip["null_mean"]) and math.isnan(skip["null_std"])
    assert "n_shuffles=0" in distance_correlation.__doc__ and "NaN" in distance_correlation.__doc__
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="n_shuffles"):
            distance_correlation(W, (3, 3), n_shuffles=bad)


# 5. effective_dimension: all-zero weights (and float64 rows whose |w|^2 leaves float64's range) -------------

def test_effective_dimension_refuses_zero_weights_and_keeps_extreme_scales():
    # was: NaN (0 / 0)
    for W in (torch.zeros(4, 3), np.zeros((4, 3)), torch.zeros(1, 5, dtype=torch.float64)):
        with pytest.raises(ValueError, match="W: every row is zero"):
            effective_dimension(W)
    with pytest.raises(ValueError, match=r"W has shape \(3, 0\)"):
        effective_dimension(torch.zeros(3, 0))
    # one zero row among others is fine (it adds no direction)
    assert effective_dimension(torch.tensor([[0.0, 0.0], [1.0, 0.0]])) == 1.0
    # was NaN: float64 rows at 1e200 (|w|^2 overflows) or 1e-200 (underflows); scale-free, as documented
    torch.manual_seed(0)
    W = torch.randn(5, 3, dtype=torch.float64)
    expected = effective_dimension(W)
    for scale in (1e200, 1e-200, 1e-300):
        assert effective_dimension(W * scale) == pytest.approx(expected, rel=1e-12)
    assert effective_dimension(torch.tensor([[1e300, 0.0], [0.0, 1.0]], dtype=torch.float64)) == pytest.approx(2.0)
    assert effective_dimension(torch.tensor([[5e-324, 0.0], [0.0, 1.0]], dtype=torch.float64)) == pytest.approx(2.0)


# 6. train_som: data without columns -----------------------------------------------------------------

@pytest.mark.parametrize("X", [torch.zeros(10, 0), np.zeros((10, 0), dtype=np.float32)])
def test_train_som_refuses_zero_columns(X):
    # was: a "trained" SOM of (4, 0) weights, with a degrees-of-freedom warning
    with pytest.raises(ValueError, match=r"X has shape \(10, 0\): expected at least one feature"):
        train_som(X, (2, 2))
