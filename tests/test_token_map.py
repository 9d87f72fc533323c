"""context_snippets on hand-made token tables, and token_map_html's inputs and output (no browser)."""
import json
import re

import numpy as np
import pandas as pd
import pytest
import torch

from hebb_utils.report.token_map import context_snippets, token_map_html


def table(stories):
    """The token table of the activation artifact for a list of stories (lists of token strings)."""
    tokens = [t for s in stories for t in s]
    return pd.DataFrame({
        "row": np.arange(len(tokens), dtype=np.int64),
        "token_id": np.arange(len(tokens), dtype=np.int64),
        "token": np.array(tokens, dtype=object),
        "story_id": np.repeat(np.arange(len(stories)), [len(s) for s in stories]).astype(np.int64),
        "position": np.concatenate([np.arange(len(s)) for s in stories]).astype(np.int64),
    })


GPT2 = table([["Once", " upon", " a", " time", ",", " a", " cat", " sat", "."],   # rows 0-8
              ["The", " dog", " ran", ".", "\n", "It", " was", " happy", "."]])  # rows 9-17
BERT = table([["the", "dog", "was", "play", "##ing", "##ful", "."],                  # rows 0-6
              ["lily", "saw", "a", "tree"]])                                         # rows 7-10


def one(top_rows, tokens, **kw):
    """Snippets of a single neuron whose top rows are `top_rows`."""
    return context_snippets(np.array(top_rows, dtype=np.int64)[:, None], tokens, **kw)[0]


def test_bpe_joins_the_strings_as_they_are():
    (s,) = one([6], GPT2, n_snippets=1, width=3)
    assert s == {"left": "time, a ", "token": "cat", "right": " sat.", "story_id": 0, "position": 6}
    assert s["left"] + s["token"] + s["right"] == "time, a cat sat."


def test_wordpiece_joins_continuations_and_spaces_the_rest():
    (s,) = one([4], BERT, n_snippets=1, width=3)
    assert s == {"left": "dog was play", "token": "ing", "right": "ful .", "story_id": 0, "position": 4}
    (s,) = one([1], BERT, n_snippets=1, width=3)
    assert (s["left"], s["token"], s["right"]) == ("the ", "dog", " was playing")


def test_style_is_detected_from_the_table_and_can_be_forced():
    (s,) = one([1], BERT, n_snippets=1, width=1, style="bpe")  # forced: concatenated as they are
    assert (s["left"], s["token"], s["right"]) == ("the", "dog", "was")
    with pytest.raises(ValueError, match="style"):
        one([1], BERT, style="sentencepiece")


def test_story_boundaries_are_respected():
    first, last = one([9, 8], GPT2, n_snippets=2, width=4)
    assert (first["left"], first["token"], first["right"]) == ("", "The", " dog ran.")  # not story 0's tail
    assert (first["story_id"], first["position"]) == (1, 0)
    assert (last["left"], last["token"], last["right"]) == (", a cat sat", ".", "")  # not story 1's head
    assert (last["story_id"], last["position"]) == (0, 8)
    (s,) = one([10], BERT, n_snippets=1, width=20)  # the very last row of the table
    assert (s["left"], s["token"], s["right"]) == ("lily saw a ", "tree", "")


def test_width_counts_tokens_on_each_side():
    for width in (0, 1, 2, 4):  # row 4 has 4 tokens of its story on each side
        (s,) = one([4], GPT2, n_snippets=1, width=width)
        left = "".join(GPT2["token"][4 - width:4])
        right = "".join(GPT2["token"][5:5 + width])
        assert s["left"] == left.lstrip() and s["token"] == "," and s["right"] == right.rstrip()
    (s,) = one([4], GPT2, n_snippets=1, width=5)  # a wider window stops at the story's ends
    assert (s["left"], s["right"]) == ("Once upon a time", " a cat sat.")


def test_whitespace_tokens_and_newlines():
    (s,) = one([13], GPT2, n_snippets=1, width=2)  # the "\n" token: kept, not stripped to nothing
    assert s["token"] == "\n" and s["left"] == "ran." and s["right"] == "It was"
    (s,) = one([14], GPT2, n_snippets=1, width=2)
    assert (s["left"], s["token"], s["right"]) == (".\n", "It", " was happy")


def test_first_distinct_rows_in_order_of_strength():
    snippets = one([6, 6, 2, 6, 9, 2, 11], GPT2, n_snippets=3, width=0)
    assert [(s["story_id"], s["position"]) for s in snippets] == [(0, 6), (0, 2), (1, 0)]
    assert [s["token"] for s in snippets] == ["cat", "a", "The"]
    assert len(one([6, 6, 6], GPT2, n_snippets=3)) == 1  # fewer distinct rows: fewer snippets
    assert one([6], GPT2, n_snippets=0) == []


def test_many_neurons_match_a_plain_loop():
    rng = np.random.default_rng(0)
    top_index = rng.integers(0, len(GPT2), size=(12, 40))
    top_index[:, 3] = 5  # one neuron with a single distinct row
    got = context_snippets(torch.from_numpy(top_index), GPT2, n_snippets=3, width=2)  # a tensor is fine too
    assert len(got) == 40
    for j in range(40):
        distinct = list(dict.fromkeys(top_index[:, j].tolist()))[:3]
        assert [(s["story_id"], s["position"]) for s in got[j]] == [
            (int(GPT2["story_id"][r]), int(GPT2["position"][r])) for r in distinct]
    assert len(got[3]) == 1


@pytest.mark.parametrize("bad, match", [
    (np.array([0, 1, 2]), "top_index"),                 # not (top, N)
    (np.array([[0.5], [1.0]]), "top_index"),            # not integer rows
    (np.array([[0], [18]]), r"top_index.*\[0, 18\)"),    # past the end of the table
    (np.array([[-1]]), "top_index"),
])
def test_context_snippets_rejects_bad_top_index(bad, match):
    with pytest.raises(ValueError, match=match):
        context_snippets(bad, GPT2)


def test_context_snippets_rejects_bad_arguments():
    with pytest.raises(ValueError, match="tokens"):
        context_snippets(np.zeros((1, 1), np.int64), GPT2[["token"]])
    with pytest.raises(ValueError, match="width"):
        context_snippets(np.zeros((1, 1), np.int64), GPT2, width=-1)
    with pytest.raises(ValueError, match="n_snippets"):
        context_snippets(np.zeros((1, 1), np.int64), GPT2, n_snippets=1.5)


# ------------------------------------------------------------------------------------------------
# token_map_html
# ------------------------------------------------------------------------------------------------

def page_data(path):
    text = path.read_text(encoding="utf-8")
    m = re.search(r'<script type="application/json" id="map-data">(.*?)</script>', text, re.S)
    assert m, "no embedded data"
    return text, json.loads(m.group(1))


def small_inputs(rows=2, cols=3):
    n = rows * cols
    names = [[" the", "dog"] if j % 2 else ["·cat"] for j in range(n)]
    wins = np.arange(n)  # neuron 0 is dead
    snippets = context_snippets(np.arange(n)[None, :] % len(GPT2), GPT2, width=2)
    return (rows, cols), names, wins, snippets


def test_token_map_html_writes_the_page(tmp_path):
    grid, names, wins, snippets = small_inputs()
    path = token_map_html(tmp_path / "sub" / "map.html", grid, names, torch.as_tensor(wins), snippets,
                          title="A <b>map</b>", note="note & more")
    assert path == tmp_path / "sub" / "map.html" and path.exists()
    assert [p.name for p in path.parent.iterdir()] == ["map.html"]  # written atomically: no temp file left
    text, data = page_data(path)
    assert (data["rows"], data["cols"]) == grid and data["wins"] == wins.tolist()
    assert data["names"][1] == ["\u00b7the", "dog"] and data["names"][0] == ["\u00b7cat"]  # spaces made visible
    assert data["snippets"][2][0][:3] == [snippets[2][0]["left"], snippets[2][0]["token"], snippets[2][0]["right"]]
    assert "A &lt;b&gt;map&lt;/b&gt;" in text and "note &amp; more" in text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), "the page must not load anything"
    assert "<link" not in text and "@import" not in text


def test_token_map_html_without_snippets(tmp_path):
    grid, names, wins, _ = small_inputs()
    _, data = page_data(token_map_html(tmp_path / "map.html", grid, names, wins))
    assert data["snippets"] == [[]] * 6


def test_script_breaking_tokens_stay_data(tmp_path):
    grid, names, wins, snippets = small_inputs()
    names[1] = ["</script>", "<!--", "]]>&amp;", "\u2028"]
    snippets[1] = [{"left": "a </script><script>alert(1)//", "token": "</SCRIPT >", "right": "<!-- x",
                    "story_id": 0, "position": 1}]
    path = token_map_html(tmp_path / "map.html", grid, names, wins, snippets)
    text, data = page_data(path)
    assert text.lower().count("</script") == 2  # the data's and the code's own closing tags only
    assert "<!--" not in text
    assert data["names"][1] == ["</script>", "<!--", "]]>&amp;", "\u2028"]
    assert data["snippets"][1][0][:3] == ["a </script><script>alert(1)//", "</SCRIPT >", "<!-- x"]


def test_page_size_for_the_full_map(tmp_path):
    """1,800 neurons, 3 tokens and 3 snippets of 8 + 8 tokens each: well under a megabyte."""
    rng = np.random.default_rng(0)
    words = [" " + w for w in ("the dog cat ran saw happy little girl named Lily wanted play park ball "
                               "mom said yes they went outside sun tree big red").split()] + [".", ",", "\n"]
    stories = [list(rng.choice(words, size=rng.integers(80, 200))) for _ in range(400)]
    tokens = table(stories)
    rows, cols = 30, 60
    top_index = torch.from_numpy(rng.integers(0, len(tokens), size=(50, rows * cols)))
    snippets = context_snippets(top_index, tokens)
    assert all(len(s) == 3 for s in snippets)
    names = [[f" word{j}", f"w{j}", "."] for j in range(rows * cols)]
    path = token_map_html(tmp_path / "map.html", (rows, cols), names, rng.integers(0, 900, rows * cols), snippets)
    assert path.stat().st_size <= 1_000_000, path.stat().st_size


@pytest.mark.parametrize("change, match", [
    ({"grid": (0, 6)}, "grid"),
    ({"grid": (2, -3)}, "grid"),
    ({"grid": (2.0, 3)}, "grid"),
    ({"grid": (True, 6)}, "grid"),
    ({"grid": 6}, "grid"),
    ({"grid": (1, 2, 3)}, "grid"),
    ({"grid": (3, 3)}, "names"),               # rows*cols != len(names)
    ({"names": [["a"]] * 5}, "names"),
    ({"names": ["a b"] * 6}, r"names\[0\]"),   # a string, not a list of tokens
    ({"names": [[1, 2]] * 6}, r"names\[0\]"),
    ({"wins": np.arange(5)}, "wins"),
    ({"wins": np.ones((2, 3), int)}, "wins"),
    ({"wins": np.array([0, 1, 2, 3, 4, -5])}, "wins"),
    ({"wins": np.array([0, 1, 2, 3, 4, 0.5])}, "wins"),
    ({"snippets": [[]] * 5}, "snippets"),
    ({"snippets": [[{"left": "a"}]] * 6}, r"snippets\[0\]"),
    ({"title": None}, "title"),
    ({"note": 3}, "note"),
])
def test_token_map_html_validates_its_inputs(tmp_path, change, match):
    grid, names, wins, snippets = small_inputs()
    kw = {"grid": grid, "names": names, "wins": wins, "snippets": snippets, "title": "t", "note": ""}
    kw.update(change)
    path = tmp_path / "map.html"
    with pytest.raises(ValueError, match=match):
        token_map_html(path, **kw)
    assert not path.exists() and not list(tmp_path.iterdir())
