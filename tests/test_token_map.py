"""context_snippets on hand-made token tables, and token_map_html's inputs and output (no browser)."""
import json
import re

import numpy as np
import pandas as pd
import pytest
import torch

from hebb_utils.report.token_map import check_links, context_snippets, token_map_html, token_texts


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
    assert s == {"left": "dog was play", "token": "ing", "right": "ful.", "story_id": 0, "position": 4}
    (s,) = one([1], BERT, n_snippets=1, width=3)
    assert (s["left"], s["token"], s["right"]) == ("the ", "dog", " was playing")


# BERT's basic tokenizer splits punctuation and contractions off: the snippets put them back
BERT_TEXT = table([["one", "day", ",", "a", "good", "dog", "said", '"', "hello", "!", '"', "she", "didn", "'", "t",
                    "see", "lily", "'", "s", "(", "red", ")", "ball", "."],
                   ['"', "yes", ",", '"', "he", "said", "."]])


def test_wordpiece_punctuation_and_contractions_read_as_text():
    (s,) = one([5], BERT_TEXT, n_snippets=1, width=4)
    assert (s["left"], s["token"], s["right"]) == ("day, a good ", "dog", ' said "hello!')
    (s,) = one([23], BERT_TEXT, n_snippets=1, width=30)
    assert s["left"] + s["token"] + s["right"] == \
        'one day, a good dog said "hello!" she didn\'t see lily\'s (red) ball.'
    (s,) = one([24], BERT_TEXT, n_snippets=1, width=10)  # the quote parity restarts with each story
    assert s["left"] + s["token"] + s["right"] == '"yes," he said.'


# GPT-2 byte-level BPE as tokenizer.convert_ids_to_tokens gives it: Ġ is a space, Ċ a newline, and
# "é" (two bytes) and "🐶" (four) are byte symbols; "ðŁ" "Ĳ" "¶" split the dog over three tokens
RAW = table([["One", "Ġday", ",", "Ġa", "ĠcafÃ©", "Ġowner", "Ġsaid", ":", "Ġ\"", "Hello", "!\"", "Ċ", "The",
              "Ġdog", "ĠðŁ", "Ĳ", "¶", "Ġran", "."]])
RAW_TEXT = 'One day, a café owner said: "Hello!"\nThe dog 🐶 ran.'


def test_byte_level_bpe_is_decoded():
    (s,) = one([13], RAW, n_snippets=1, width=30)
    assert (s["left"], s["token"], s["right"]) == ('One day, a café owner said: "Hello!"\nThe ', "dog", " 🐶 ran.")
    (s,) = one([4], RAW, n_snippets=1, width=2)
    assert (s["left"], s["token"], s["right"]) == (", a ", "café", " owner said")
    (s,) = one([11], RAW, n_snippets=1, width=1)  # the newline token
    assert (s["left"], s["token"], s["right"]) == ('!"', "\n", "The")
    assert token_texts(RAW["token"])[:5] == ["One", " day", ",", " a", " café"]
    assert token_texts(GPT2["token"]) == GPT2["token"].tolist()  # decoded strings: as they are
    assert token_texts(["Ġthe", "##ing"], style="wordpiece") == ["Ġthe", "##ing"]


def test_byte_level_bpe_matches_the_gpt2_tokenizer():
    """Every snippet of a text tokenized by GPT-2's tokenizer (raw symbols, and decoded one token at a time as
    the extractor stores them) reads as the text, except those centred on a piece of a split character."""
    from hebb_utils import load_tokenizer

    tokenizer = load_tokenizer("roneneldan/TinyStories-1M")  # offline: <mirror>/gpt2-tokenizer
    text = 'Tom\'s café - "wow!"\n\nThe end \u2014 of it.'
    ids = tokenizer(text)["input_ids"]
    raw = table([tokenizer.convert_ids_to_tokens(ids)])
    decoded = table([tokenizer.batch_decode([[i] for i in ids])])
    assert tokenizer.decode(ids) == text
    for tokens in (raw, decoded):
        for r in range(len(ids)):
            (s,) = one([r], tokens, n_snippets=1, width=len(ids))
            assert s["left"] + s["token"] + s["right"] == text.strip(), (r, s)


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


def test_links_subtitle_and_key(tmp_path):
    grid, names, wins, snippets = small_inputs()
    names[3] = ["##ing", "\\n"]
    path = token_map_html(tmp_path / "map.html", grid, names, wins, snippets, title="t", subtitle="annealed layer",
                          links=[("fixed support", "lm_fixed_map.html"), ("other & more", "sub/b.html#neuron-3")])
    text, _ = page_data(path)
    assert '<a href="lm_fixed_map.html">fixed support</a>' in text
    assert '<a href="sub/b.html#neuron-3">other &amp; more</a>' in text
    assert '<span class="subtitle">annealed layer</span>' in text
    key = re.search(r'<p class="key" id="key">(.*?)</p>', text).group(1)
    assert "\u00b7" in key and "##ing" in key and "line break" in key
    text, _ = page_data(token_map_html(tmp_path / "plain.html", (1, 2), [["a"], ["b"]], [1, 1]))
    key = re.search(r'<p class="key" id="key">(.*?)</p>', text).group(1)
    assert "##" not in key and "line break" not in key  # only the marks that occur are explained


@pytest.mark.parametrize("links, match", [
    ("a.html", "links"),
    ([("a", "https://example.org/")], r"links\[0\].*relative"),
    ([("a", "//example.org/x.html")], r"links\[0\].*relative"),
    ([("a", "javascript:alert(1)")], r"links\[0\].*relative"),
    ([("a", "b.html"), ("c",)], r"links\[1\]"),
    ([("", "b.html")], r"links\[0\]"),
    ([(1, "b.html")], r"links\[0\]"),
])
def test_links_must_be_relative_pairs(tmp_path, links, match):
    grid, names, wins, _ = small_inputs()
    with pytest.raises(ValueError, match=match):
        token_map_html(tmp_path / "map.html", grid, names, wins, links=links)
    assert not list(tmp_path.iterdir())
    assert check_links([("a", "b.html"), ["c", "../d.html"]]) == [("a", "b.html"), ("c", "../d.html")]


def test_draw_token_map_passes_subtitle_and_links(tmp_path):
    from hebb_utils.report.lm_map import draw_token_map

    tokens = table([["Once", "Ġupon", "Ġa", "Ġtime", "."], ["The", "Ġdog", "Ġran", "."]])  # raw byte-level
    summary = {"best2": torch.tensor([[0, 1], [1, 0], [2, 3], [3, 2], [0, 2], [1, 3], [0, 1], [2, 0], [3, 1]]),
               "top_index": torch.tensor([[1, 6, 3, 8], [2, 7, 0, 5]])}
    table_ = draw_token_map(summary, tokens, (2, 2), tmp_path, top_tokens=2, crop=(1, 2), subtitle="fixed layer",
                            links=[("annealed", "lm_map.html")])
    assert table_["token_1"].tolist() == ["\u00b7upon", "\u00b7dog", "\u00b7time", "."]  # names decoded
    text, data = page_data(tmp_path / "lm_map.html")
    assert '<a href="lm_map.html">annealed</a>' in text and "fixed layer" in text
    assert data["snippets"][0][0][:3] == ["Once ", "upon", " a time."]
    with pytest.raises(ValueError, match="links"):
        draw_token_map(summary, tokens, (2, 2), tmp_path / "no", links=[("x", "http://a.b/")])
    with pytest.raises(ValueError, match="subtitle"):
        draw_token_map(summary, tokens, (2, 2), tmp_path / "no", subtitle=3)
    with pytest.raises(ValueError, match="units=''"):
        draw_token_map(summary, tokens, (2, 2), tmp_path / "no", units="")
    assert not (tmp_path / "no").exists()
    assert "4 SoftHebb neurons on a 2 x 2 grid" in text  # the default: a SoftHebb map
    draw_token_map(summary, tokens, (2, 2), tmp_path / "sae", top_tokens=2, crop=(1, 2), units="TopK SAE latents")
    sae_text, _ = page_data(tmp_path / "sae" / "lm_map.html")
    assert "4 TopK SAE latents on a 2 x 2 grid" in sae_text and "SoftHebb" not in sae_text  # a page names what it draws
