"""The interactive 2D neuron map of words: one self-contained HTML page (no network, inline CSS/JS).

    snippets = context_snippets(summary["top_index"], tokens)          # a few contexts per neuron
    token_map_html("figures/lm_map.html", grid, names, wins, snippets)  # the page

The page: each cell is a neuron named by its top distinct tokens, its background the number of
wins on a log scale (with a legend in real numbers); dead neurons (no wins) are empty and grey.
It opens legible (cell text at 11 px) on the busiest region, with an overview inset of the whole
grid that shows the view and moves it. The search box finds the neurons one of whose top tokens
is the query (exact; a checkbox: contains it); wheel, buttons and drag zoom and pan; clicking a
neuron (or `#neuron-N` in the address, also edited later) shows its id, (row, col), wins, tokens
and context snippets, decoded to text (`context_snippets`: BPE, byte-level BPE or WordPiece).
"""
from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from ..checks import Grid
from ..io import atomic_path, check_writable

__all__ = ["context_snippets", "token_map_html", "token_texts", "check_links"]

SNIPPET_KEYS = ("left", "token", "right", "story_id", "position")
STYLES = ("bpe", "byte-level", "wordpiece")  # how a token table's strings join into text


# ----------------------------------------------------------------------------------------------
# context snippets
# ----------------------------------------------------------------------------------------------

def _as_index_matrix(top_index) -> np.ndarray:
    if hasattr(top_index, "detach"):  # a torch tensor, possibly on a GPU
        top_index = top_index.detach().cpu().numpy()
    index = np.asarray(top_index)
    if index.ndim != 2:
        raise ValueError(f"top_index: expected a 2-D (top, N) array of token-table rows, got shape {index.shape}")
    if index.size and not np.issubdtype(index.dtype, np.integer):
        raise ValueError(f"top_index: expected integer rows into the token table, got dtype {index.dtype}")
    return index.astype(np.int64, copy=False)


def _first_distinct(index: np.ndarray, n: int) -> np.ndarray:
    """(N, n) int64: per column of index (top, N), its first n distinct values in order; -1 pads."""
    cols = index.T  # (N, top)
    N, top = cols.shape
    out = np.full((N, n), -1, dtype=np.int64)
    if top == 0 or N == 0 or n == 0:
        return out
    order = np.argsort(cols, axis=1, kind="stable")  # equal values keep their order: the first comes first
    ranked = np.take_along_axis(cols, order, axis=1)
    repeat_sorted = np.zeros_like(ranked, dtype=bool)
    repeat_sorted[:, 1:] = ranked[:, 1:] == ranked[:, :-1]
    repeat = np.empty_like(repeat_sorted)
    np.put_along_axis(repeat, order, repeat_sorted, axis=1)
    keep = ~repeat
    slot = np.cumsum(keep, axis=1) - 1  # 0-based rank among the distinct values
    take = keep & (slot < n)
    r, c = np.nonzero(take)
    out[r, slot[r, c]] = cols[r, c]
    return out


def _gpt2_byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet inverted: each byte is drawn as one printable character (a space
    as "Ġ", a newline as "Ċ"); this maps the character back to its byte."""
    bs = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    cs = bs[:]
    extra = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(bs, cs)}


_BYTE_DECODER = _gpt2_byte_decoder()
# WordPiece punctuation that joins the word before it, opens or closes, and English contractions
# ("don ' t", "lily ' s" are split by BERT's basic tokenizer)
_CLOSES = {".", ",", "!", "?", ";", ":", ")", "]", "}", "%", "...", "\u2026", "\u201d", "\u2019"}
_OPENS = {"(", "[", "{", "\u201c", "\u2018", "$"}
_APOSTROPHES = {"'", "\u2019"}
_SUFFIXES = {"s", "t", "d", "m", "ll", "re", "ve"}


def _raw_bytes(token: str) -> str:
    """A raw byte-level BPE token ("Ġthe") as text (" the"); a byte that is part of a longer UTF-8
    character stays a surrogate escape, so that joining the pieces of a span and re-decoding it
    (`_utf8`) restores the character."""
    out = bytearray()
    for ch in token:
        b = _BYTE_DECODER.get(ch)
        out.extend([b] if b is not None else ch.encode("utf-8"))  # a special token's own characters
    return out.decode("utf-8", "surrogateescape")


def _utf8(text: str) -> str:
    """Text joined from `_raw_bytes` pieces with complete characters restored (an incomplete one: \ufffd)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def token_texts(strings, style: str | None = None) -> list[str]:
    """Each token string as the text it stands for: raw byte-level BPE symbols decoded ("Ġthe" ->
    " the", "Ċ" -> a newline); decoded BPE strings and WordPiece pieces ("##ing" is explained on the
    page) as they are. style: as for context_snippets (None: detected from the strings)."""
    if style not in (None, *STYLES):
        raise ValueError(f"style={style!r}: expected None (detect) or one of {STYLES}")
    strings = _as_strings(strings)
    if (style or _detect_style(strings)) != "byte-level":
        return strings.tolist()
    return [_utf8(_raw_bytes(t)) for t in strings]


def _token_pieces(strings, rows: np.ndarray, style: str, story: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For the token-table rows `rows`: (separator before each token, its text) for joining into natural text.

    bpe: decoded strings carry their own leading whitespace: no separator, the string itself.
    byte-level: raw symbols decoded to bytes (see `_raw_bytes`; a span is finished with `_utf8`).
    wordpiece: "##x" joins as "x"; closing punctuation and a contraction ("don ' t") join the word
    before; nothing follows an opening bracket or quote; other tokens get " ". A straight double quote
    opens or closes by its parity within the story (the story's first one opens).
    """
    strings = _as_strings(strings)
    text = strings.iloc[rows].to_numpy(dtype=object)
    if style == "bpe":
        return np.full(len(rows), "", dtype=object), text
    if style == "byte-level":
        return np.full(len(rows), "", dtype=object), np.array([_raw_bytes(t) for t in text], dtype=object)
    T = len(strings)
    quote = (strings == '"').to_numpy()
    starts = np.r_[True, story[1:] != story[:-1]]
    count = np.cumsum(quote)
    before_story = np.maximum.accumulate(np.where(starts, count - quote, 0))  # quotes before each story's start
    opening = quote & ((count - before_story) % 2 == 1)
    has_prev = (rows > 0) & (story[np.maximum(rows - 1, 0)] == story[rows])
    has_next = (rows < T - 1) & (story[np.minimum(rows + 1, T - 1)] == story[rows])
    prev = np.where(has_prev, strings.iloc[np.maximum(rows - 1, 0)].to_numpy(dtype=object), "")
    nxt = np.where(has_next, strings.iloc[np.minimum(rows + 1, T - 1)].to_numpy(dtype=object), "")
    prev_opens = has_prev & opening[np.maximum(rows - 1, 0)]
    cont = np.array([t.startswith("##") and len(t) > 2 for t in text], dtype=bool)
    join = (cont | np.isin(text, list(_CLOSES)) | (quote[rows] & ~opening[rows]) | np.isin(prev, list(_OPENS))
            | prev_opens | (np.isin(text, list(_APOSTROPHES)) & np.isin(nxt, list(_SUFFIXES)))
            | (np.isin(text, list(_SUFFIXES)) & np.isin(prev, list(_APOSTROPHES))))
    text = np.where(cont, [t[2:] for t in text], text).astype(object)
    return np.where(join, "", " ").astype(object), text


def _as_strings(values):
    """values as a pandas Series of strings; a missing token (None or NaN) is the empty string (pandas 3's
    astype(str) keeps missing values missing, and the joins below need strings)."""
    import pandas as pd

    s = pd.Series(values, dtype=object)
    return s.where(s.notna(), "").astype(str).reset_index(drop=True)


def _detect_style(token_strings) -> str:
    """'bpe' when some token carries its own leading whitespace (decoded GPT-2-style BPE); else 'byte-level'
    when some token starts with "Ġ" or holds "Ċ" (raw byte-level BPE symbols); else 'wordpiece'."""
    s = _as_strings(token_strings)
    if bool(s.str.match(r"\s").any()):
        return "bpe"
    if bool(s.str.startswith("\u0120").any() or s.str.contains("\u010a", regex=False).any()):
        return "byte-level"
    return "wordpiece"


def context_snippets(top_index, tokens, n_snippets: int = 3, width: int = 8,
                     style: str | None = None) -> list[list[dict]]:
    """For each neuron (columns of top_index, shape (top, N), int64 rows into the token table, strongest first):
    up to n_snippets dicts {"left": str, "token": str, "right": str, "story_id": int, "position": int}
    for its first n_snippets distinct top rows: `width` tokens before and after within the same story.

    tokens: the token table of the activation artifact (columns row, token_id, token, story_id,
    position; row i is tokens.iloc[i], in story order). The strings are joined into natural text by
    `style`, detected from the table when None:
      "bpe"         decoded BPE strings (the extractor's, one tokenizer.decode per token), which carry
                    their own leading spaces: concatenated as they are (a table is "bpe" when some
                    token starts with whitespace);
      "byte-level"  raw byte-level BPE symbols (tokenizer.convert_ids_to_tokens: "Ġthe", "Ċ"), decoded
                    to bytes and then UTF-8 over the whole span, so a character split over tokens is
                    whole again (a table is "byte-level" when some token starts with "Ġ" or holds "Ċ");
      "wordpiece"   BERT pieces: "##x" joins the token before without a space, punctuation and
                    contractions join as written ("one day, a good dog", "didn't"), other tokens
                    get a space.
    The whitespace that separates the token from its left context goes to `left`, so `token` is
    the word itself (a whitespace-only token, such as GPT-2's newline, is kept as it is).
    Snippets read as text: left + token + right is the decoded span.
    """
    if isinstance(n_snippets, bool) or not isinstance(n_snippets, (int, np.integer)) or n_snippets < 0:
        raise ValueError(f"n_snippets={n_snippets!r}: expected a non-negative integer")
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 0:
        raise ValueError(f"width={width!r}: expected a non-negative integer (tokens on each side)")
    if style not in (None, *STYLES):
        raise ValueError(f"style={style!r}: expected None (detect) or one of {STYLES}")
    missing = [c for c in ("token", "story_id", "position") if c not in getattr(tokens, "columns", ())]
    if missing:
        raise ValueError(f"tokens: expected the token table (a DataFrame with columns token, story_id, position); "
                         f"missing {missing}")
    index = _as_index_matrix(top_index)
    T = len(tokens)
    if index.size and (index.min() < 0 or index.max() >= T):
        raise ValueError(f"top_index: rows must lie in [0, {T}) (the token table's length); "
                         f"got [{index.min()}, {index.max()}]")
    rows = _first_distinct(index, int(n_snippets))  # (N, n), -1 where a neuron has fewer distinct rows
    N = rows.shape[0]
    if rows.size == 0 or (rows < 0).all():
        return [[] for _ in range(N)]

    strings = _as_strings(tokens["token"].to_numpy())
    story = tokens["story_id"].to_numpy().astype(np.int64)
    position = tokens["position"].to_numpy().astype(np.int64)
    style = style or _detect_style(strings)

    flat = rows.reshape(-1)
    live = flat >= 0
    centre = flat[live]  # (M,) the snippets' token rows
    offsets = np.arange(-int(width), int(width) + 1)
    window = centre[:, None] + offsets[None, :]  # (M, 2w+1)
    inside = (window >= 0) & (window < T)
    clipped = np.clip(window, 0, max(T - 1, 0))
    inside &= story[clipped] == story[centre][:, None]  # stories are contiguous: no gaps inside a window

    # join pieces only for the rows some window needs
    needed, inverse = np.unique(clipped, return_inverse=True)
    sep, text = _token_pieces(strings, needed, style, story)
    sep, text = sep[inverse.reshape(clipped.shape)], text[inverse.reshape(clipped.shape)]

    w = int(width)
    out_flat: list[dict] = []
    for m in range(len(centre)):  # one short join per snippet (neurons x n_snippets), not per token
        ok = inside[m]
        left = "".join(s + t for s, t, k in zip(sep[m, :w], text[m, :w], ok[:w]) if k)
        right = "".join(s + t for s, t, k in zip(sep[m, w + 1:], text[m, w + 1:], ok[w + 1:]) if k)
        token = text[m, w]
        if style == "byte-level":  # whole characters again, now that the span's bytes are together
            left, token, right = _utf8(left), _utf8(token), _utf8(right)
        if token.strip():
            stripped = token.lstrip()
            left += sep[m, w] + token[:len(token) - len(stripped)]
            token = stripped
        else:
            left += sep[m, w]
        out_flat.append({"left": left.lstrip(), "token": token, "right": right.rstrip(),
                         "story_id": int(story[centre[m]]), "position": int(position[centre[m]])})
    out: list[list[dict]] = [[] for _ in range(N)]
    neuron_of = np.repeat(np.arange(N), rows.shape[1])[live]
    for j, snip in zip(neuron_of.tolist(), out_flat):
        out[j].append(snip)
    return out


# ----------------------------------------------------------------------------------------------
# the page
# ----------------------------------------------------------------------------------------------

def _visible(token: str) -> str:
    """Whitespace made visible as in `top_distinct_tokens` (idempotent on its output)."""
    return str(token).replace(" ", "\u00b7").replace("\n", "\\n")


def _check_grid(grid) -> tuple[int, int]:
    """(rows, cols) of a checks.Grid, of (rows, cols), or of (n,): one row of n neurons (the 1D grid)."""
    grid = Grid.of(grid)
    return grid.rows, grid.cols


def _check_names(names, n: int) -> list[list[str]]:
    if isinstance(names, (str, bytes)) or not hasattr(names, "__len__"):
        raise ValueError("names: expected one list of token strings per neuron")
    if len(names) != n:
        raise ValueError(f"names has {len(names)} entries; the grid needs rows*cols={n}")
    out = []
    for j, name in enumerate(names):
        if isinstance(name, (str, bytes)) or not isinstance(name, Sequence) and not hasattr(name, "tolist"):
            raise ValueError(f"names[{j}]={name!r}: expected a list of token strings (e.g. from top_distinct_tokens)")
        name = list(name.tolist() if hasattr(name, "tolist") else name)
        if not all(isinstance(t, str) for t in name):
            raise ValueError(f"names[{j}]: expected token strings, got {name!r}")
        out.append([_visible(t) for t in name])
    return out


def _check_wins(wins, n: int) -> np.ndarray:
    if hasattr(wins, "detach"):
        wins = wins.detach().cpu().numpy()
    arr = np.asarray(wins)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(f"wins: expected shape ({n},) (one count per neuron, rows*cols={n}), got shape {arr.shape}")
    if arr.size and not (np.issubdtype(arr.dtype, np.integer) or
                         (np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr))
                          and np.all(arr == np.round(arr)))):
        raise ValueError(f"wins: expected integer counts, got dtype {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"wins: counts must be >= 0, got a minimum of {arr.min()}")
    # the page holds int64 counts: a larger one (a float such as 1e300, a uint64 from 2**63) would wrap
    # to a negative number in the cast
    if arr.size and (float(arr.max()) >= 2.0 ** 63 if np.issubdtype(arr.dtype, np.floating)
                     else int(arr.max()) > np.iinfo(np.int64).max):
        raise ValueError(f"wins: counts must be below 2**63 (int64), got a maximum of {arr.max()}; pass each "
                         "neuron's number of wins (e.g. torch.bincount of the winners)")
    return arr.astype(np.int64)


def _check_snippets(snippets, n: int) -> list:
    if snippets is None:
        return [[] for _ in range(n)]
    if isinstance(snippets, (str, bytes)) or not hasattr(snippets, "__len__"):
        raise ValueError("snippets: expected the list returned by context_snippets (one list per neuron) or None")
    if len(snippets) != n:
        raise ValueError(f"snippets has {len(snippets)} entries; the grid needs rows*cols={n}")
    out = []
    for j, group in enumerate(snippets):
        if isinstance(group, (str, bytes, dict)) or not hasattr(group, "__iter__"):
            raise ValueError(f"snippets[{j}]: expected a list of snippet dicts")
        packed = []
        for s in group:
            if not isinstance(s, dict) or any(k not in s for k in SNIPPET_KEYS):
                raise ValueError(f"snippets[{j}]: expected dicts with keys {SNIPPET_KEYS}, got {s!r}")
            packed.append([str(s["left"]), str(s["token"]), str(s["right"]), int(s["story_id"]), int(s["position"])])
        out.append(packed)
    return out


def _script_json(obj) -> str:
    """JSON safe inside <script>: no '<', '>' or '&' appears literally, so '</script>' or '<!--' cannot end it."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)  # strict JSON
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def check_links(links) -> list[tuple[str, str]]:
    """links: (label, href) pairs of sibling pages, each href a relative address (no scheme, no '//'):
    the page stays offline. Returned as a list of pairs of strings."""
    if isinstance(links, (str, bytes, dict)) or not hasattr(links, "__iter__"):
        raise ValueError(f"links={links!r}: expected a list of (label, relative href) pairs, "
                         "e.g. [('fixed support', 'lm_fixed_map.html')]")
    out = []
    for k, link in enumerate(links):
        if isinstance(link, (str, bytes)) or not isinstance(link, Sequence) or len(link) != 2 \
                or not all(isinstance(v, str) and v.strip() for v in link):
            raise ValueError(f"links[{k}]={link!r}: expected a (label, href) pair of non-empty strings")
        label, href = link
        if re.match(r"^\s*([A-Za-z][A-Za-z0-9+.-]*:|[/\\]{2})", href):
            raise ValueError(f"links[{k}]: href={href!r}: expected a relative address such as 'lm_fixed_map.html' "
                             "(no scheme or '//': the page must open offline, beside its siblings)")
        out.append((label, href))
    return out


def token_map_html(path: str | os.PathLike, grid, names, wins, snippets=None, title: str = "2D neuron map of words",
                   note: str = "", *, subtitle: str = "", links: Sequence[tuple[str, str]] = ()) -> Path:
    """grid: (rows, cols), (n,) for one row, or a checks.Grid; names: per neuron a list of its top distinct token
    strings; wins: (N,) ints; snippets: from context_snippets or None. Writes the page atomically (use
    hebb_utils.io.atomic_path) and returns Path(path).

    subtitle: one line under the title (e.g. which layer this is); note: the longer description;
    links: (label, relative href) pairs shown in the header, e.g. the sibling maps of other layers.

    Whitespace in names is made visible as in `top_distinct_tokens` (a space as a middle dot); a key
    line explains the marks (and WordPiece's "##" when some name has it). Snippets are shown as
    natural text with the token highlighted. Neurons with no wins are dead: their cells are grey and
    empty. The data is one JSON blob in the page; JavaScript draws it.

    The page opens at a legible zoom (cell text drawn at >= 11 px) centred on the busiest window
    of the view's size (most wins), or on the whole map when that fits legibly; an overview inset
    shows the whole grid and the view (click or drag it to move). Search is exact by default (a
    neuron matches when one of its top tokens equals the query, ignoring case and surrounding
    spaces, and a leading "##"); a checkbox switches to substring search. `#neuron-N` in the
    address selects and centres neuron N, also when it is edited in an open page.
    """
    rows, cols = _check_grid(grid)
    n = rows * cols
    names = _check_names(names, n)
    wins = _check_wins(wins, n)
    packed = _check_snippets(snippets, n)
    for arg, value in (("title", title), ("note", note), ("subtitle", subtitle)):
        if not isinstance(value, str):
            raise ValueError(f"{arg}={value!r}: expected a string")
    links = check_links(links)
    data = {"rows": rows, "cols": cols, "names": names, "wins": wins.tolist(), "snippets": packed}
    nav = " ".join(f'<a href="{html.escape(href)}">{html.escape(label)}</a>' for label, href in links)
    fields = {"TITLE": html.escape(title), "NOTE": html.escape(note), "SUBTITLE": html.escape(subtitle),
              "LINKS": nav, "KEY": _key(names), "CSS": _CSS.replace("__COLS__", str(cols)), "JS": _JS,
              "DATA": _script_json(data)}
    page = re.sub(r"__(TITLE|NOTE|SUBTITLE|LINKS|KEY|CSS|JS|DATA)__", lambda m: fields[m.group(1)], _PAGE)  # one pass
    if _SURROGATE.search(page):  # a lone surrogate (e.g. \ud800 in a token) cannot be written as UTF-8
        page = _without_lone_surrogates(page)
    path = _page_path(path)
    with atomic_path(path, suffix=".html") as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path


def _page_path(path) -> Path:
    """`path` as the page's file: not empty, not a folder, under no file and in a writable folder (a
    ValueError naming path; otherwise the atomic write fails on its temp file, naming that)."""
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise ValueError(f"path={path!r}: expected the path of the .html file to write")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"path={str(path)!r} is a folder: expected the path of the .html file to write, e.g. "
                         f"{str(path / 'map.html')!r}")
    check_writable(path.parent, "path", path)
    return path


_SURROGATE = re.compile("[\ud800-\udfff]")


def _without_lone_surrogates(text: str) -> str:
    """text with each surrogate pair joined into its character and each lone surrogate shown as U+FFFD
    (the replacement character, as an incomplete UTF-8 character in a token is shown)."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _key(names: list[list[str]]) -> str:
    """The line that says what the marks in the names mean (only the marks that occur)."""
    flat = [t for name in names for t in name]
    parts = ["Each cell is a neuron, named by its strongest distinct tokens."]
    if any("\u00b7" in t for t in flat):
        parts.append("<code>\u00b7</code> is a space: <code>\u00b7the</code> is \u201cthe\u201d starting a word, "
                     "<code>the</code> without it continues one (or starts the text).")
    if any("\\n" in t for t in flat):
        parts.append("<code>\\n</code> is a line break.")
    if any(t.startswith("##") and len(t) > 2 for t in flat):
        parts.append("<code>##ing</code> is a WordPiece word piece: it continues the word before it "
                     "(<code>play</code> <code>##ing</code> is \u201cplaying\u201d).")
    return " ".join(parts)


_CSS = r"""
*{box-sizing:border-box}
html,body{height:100%;margin:0}
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1d2330;
  display:flex;flex-direction:column;background:#fff}
header{padding:8px 12px 6px;border-bottom:1px solid #d5dae3;display:flex;flex-wrap:wrap;gap:6px 20px;align-items:center}
header h1{font-size:16px;margin:0}
.subtitle{font-size:13px;color:#444}
.subtitle:empty,#links:empty{display:none}
#links{display:flex;gap:4px 12px;font-size:13px;flex-wrap:wrap}
#links::before{content:"Other maps:";color:#555}
.note,.key{font-size:12px;color:#555;margin:0;flex-basis:100%}
.note:empty{display:none}
.key code{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;background:#f1f3f7;
  padding:0 2px;border-radius:3px}
.group{display:flex;gap:6px;align-items:center}
#search{width:13em;padding:4px 6px;font:inherit;border:1px solid #aab2c0;border-radius:4px}
#substring-label{font-size:12px;color:#333;display:flex;align-items:center;gap:3px;cursor:pointer}
#count{font-size:12px;color:#444;min-width:12em}
button{font:inherit;padding:2px 10px;border:1px solid #aab2c0;border-radius:4px;background:#f5f7fa;cursor:pointer}
button:hover{background:#e8edf5}
#legend{display:flex;align-items:center;gap:8px;font-size:12px;color:#333}
#legend-scale{position:relative;width:200px;height:30px;margin:0 26px 0 8px}
#legend-bar{height:12px;border:1px solid #999;border-radius:2px}
#legend-ticks{position:relative;height:16px}
#legend-ticks span{position:absolute;top:1px;transform:translateX(-50%);font-size:11px;white-space:nowrap}
#legend-ticks span::before{content:"";position:absolute;left:50%;top:-3px;height:4px;border-left:1px solid #555}
.swatch{display:inline-block;width:14px;height:12px;border:1px solid #999;vertical-align:middle}
main{flex:1;display:flex;min-height:0}
#viewport{flex:1;position:relative;overflow:hidden;background:#f4f6f9;cursor:grab;touch-action:none;user-select:none}
#viewport.dragging{cursor:grabbing}
#map{position:absolute;left:0;top:0;transform-origin:0 0;display:grid;grid-template-columns:repeat(__COLS__,96px);
  grid-auto-rows:46px;gap:1px;background:#cfd5df;border:1px solid #cfd5df}
.cell{font:11px/1.25 ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;white-space:pre;
  overflow:hidden;padding:2px 3px;cursor:pointer;background:#fff}
.cell.dead,.swatch.dead{background:repeating-linear-gradient(45deg,#d6d6d6 0 3px,#e9e9e9 3px 6px)}
.cell.dead{cursor:default}
#map.searching .cell{opacity:.28}
#map.searching .cell.hit{opacity:1;box-shadow:inset 0 0 0 3px #e4572e;outline:1px solid #e4572e}
.cell.selected{box-shadow:inset 0 0 0 3px #111 !important;opacity:1 !important}
#overview{position:absolute;right:10px;bottom:10px;z-index:2;background:#fff;border:1px solid #8d96a7;
  box-shadow:0 1px 4px rgba(0,0,0,.25);cursor:crosshair;line-height:0;touch-action:none}
#overview canvas{display:block;image-rendering:pixelated}
#overview-view{position:absolute;border:2px solid #e4572e;background:rgba(228,87,46,.12);pointer-events:none}
aside#panel{width:clamp(260px,30vw,380px);flex:none;border-left:1px solid #d5dae3;overflow:auto;padding:10px 14px}
#panel h2{font-size:16px;margin:2px 0 4px}
#panel h3{font-size:13px;margin:12px 0 4px;color:#444;text-transform:uppercase;letter-spacing:.04em}
#panel .facts{color:#333;margin:0}
#panel .hint{color:#666}
#panel ol{margin:0;padding-left:1.6em}
#panel code{font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;background:#f1f3f7;
  padding:0 3px;border-radius:3px}
.snip{white-space:pre-wrap;margin:6px 0 10px;padding:6px 8px;background:#f8f9fb;border-left:3px solid #c3cad6;
  font-family:Georgia,"Times New Roman",serif;line-height:1.45}
.snip mark{background:#ffd54f;padding:0 1px;border-radius:2px;font-weight:bold}
.snip .src{display:block;font:11px system-ui,sans-serif;color:#777;margin-top:2px}
.dead-note{color:#8a5a00}
"""

_JS = r"""
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("map-data").textContent);
  var N = D.rows * D.cols, GAP = 1;
  var OPEN_SCALE = 1;  // the scale the page opens at (and centres a neuron at): cell text at its 11 px
  var map = document.getElementById("map"), viewport = document.getElementById("viewport");
  var panel = document.getElementById("panel"), search = document.getElementById("search");
  var substring = document.getElementById("substring"), countEl = document.getElementById("count");

  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }

  // colour: wins on a log scale, 1 -> light, max -> dark
  var STOPS = [[239, 244, 251], [198, 219, 239], [107, 174, 214], [33, 113, 181], [8, 48, 107]];
  var maxWins = 0;
  for (var i = 0; i < N; i++) if (D.wins[i] > maxWins) maxWins = D.wins[i];
  var logMax = Math.log(Math.max(maxWins, 1));
  function level(w) { return logMax > 0 ? Math.log(w) / logMax : 1; }
  function colour(t) {
    t = Math.min(1, Math.max(0, t)) * (STOPS.length - 1);
    var k = Math.min(Math.floor(t), STOPS.length - 2), f = t - k, a = STOPS[k], b = STOPS[k + 1];
    return "rgb(" + [0, 1, 2].map(function (c) { return Math.round(a[c] + f * (b[c] - a[c])); }).join(",") + ")";
  }

  // cells
  var html = [];
  for (var j = 0; j < N; j++) {
    var w = D.wins[j];
    if (w > 0) {
      var t = level(w);
      html.push('<div class="cell" data-n="' + j + '" style="background:' + colour(t) + (t > 0.6 ? ";color:#fff" : "") +
                '" title="neuron ' + j + ": " + w + ' wins">' + esc(D.names[j].join("\n")) + "</div>");
    } else {
      html.push('<div class="cell dead" data-n="' + j + '" title="neuron ' + j + ': dead (0 wins)"></div>');
    }
  }
  map.innerHTML = html.join("");
  var cells = map.children;
  // the grid's pitch in map pixels, measured (cell size + gap), and the map's own size
  var PITCH_X = D.cols > 1 ? cells[1].offsetLeft - cells[0].offsetLeft : cells[0].offsetWidth + GAP;
  var PITCH_Y = D.rows > 1 ? cells[D.cols].offsetTop - cells[0].offsetTop : cells[0].offsetHeight + GAP;
  var X0 = cells[0].offsetLeft, Y0 = cells[0].offsetTop, CELL_W = cells[0].offsetWidth, CELL_H = cells[0].offsetHeight;
  var mapW = map.offsetWidth, mapH = map.offsetHeight;

  // legend: real numbers at powers of ten (and the maximum) on the log scale
  (function () {
    var bar = document.getElementById("legend-bar"), ticks = document.getElementById("legend-ticks");
    var stops = [];
    for (var s = 0; s <= 10; s++) stops.push(colour(s / 10) + " " + (s * 10) + "%");
    bar.style.background = "linear-gradient(to right," + stops.join(",") + ")";
    var values = [1];
    for (var p = 10; p < maxWins; p *= 10) values.push(p);
    if (maxWins > 1) values.push(maxWins);
    var out = [];
    values.forEach(function (v, k) {
      var x = 100 * level(v);
      if (k > 0 && k === values.length - 1 && values.length > 2 && x - 100 * level(values[k - 1]) < 12) out.pop();
      out.push('<span style="left:' + x.toFixed(1) + '%">' + v.toLocaleString("en-US") + "</span>");
    });
    ticks.innerHTML = out.join("");
    var live = D.wins.filter(function (x) { return x > 0; }).length;
    document.getElementById("legend-dead").textContent = "0: dead (" + (N - live) + " of " + N + ")";
  })();

  // the overview inset: one block per neuron shaded by wins, and the view as a rectangle
  var overview = document.getElementById("overview"), ovCanvas = document.getElementById("overview-map");
  var ovView = document.getElementById("overview-view");
  var OV = Math.max(1, Math.min(12, 180 / D.cols, 110 / D.rows));  // overview pixels per neuron
  ovCanvas.width = Math.max(1, Math.round(D.cols * OV)); ovCanvas.height = Math.max(1, Math.round(D.rows * OV));
  function drawOverview(hitSet) {
    var ctx = ovCanvas.getContext("2d"), fx = ovCanvas.width / D.cols, fy = ovCanvas.height / D.rows;
    ctx.clearRect(0, 0, ovCanvas.width, ovCanvas.height);
    for (var j = 0; j < N; j++) {
      var r = Math.floor(j / D.cols), c = j % D.cols;
      ctx.fillStyle = hitSet ? (hitSet[j] ? "#e4572e" : (D.wins[j] > 0 ? "#e3e7ee" : "#f2f2f2"))
                             : (D.wins[j] > 0 ? colour(level(D.wins[j])) : "#d9d9d9");
      ctx.fillRect(Math.floor(c * fx), Math.floor(r * fy), Math.ceil(fx), Math.ceil(fy));
    }
  }
  drawOverview(null);

  // zoom and pan: the map is translated by (tx, ty) and scaled by s
  var s = 1, tx = 0, ty = 0, minS = 0.05, maxS = 4;
  function apply() {
    map.style.transform = "translate(" + tx.toFixed(1) + "px," + ty.toFixed(1) + "px) scale(" + s.toFixed(4) + ")";
    map.setAttribute("data-scale", s.toFixed(4));
    // the view in overview pixels, cut to the map
    var kx = ovCanvas.width / mapW, ky = ovCanvas.height / mapH;
    var x0 = Math.max(0, -tx / s), y0 = Math.max(0, -ty / s);
    var x1 = Math.min(mapW, (viewport.clientWidth - tx) / s), y1 = Math.min(mapH, (viewport.clientHeight - ty) / s);
    ovView.style.display = x1 > x0 && y1 > y0 ? "" : "none";
    ovView.style.left = (x0 * kx).toFixed(1) + "px"; ovView.style.top = (y0 * ky).toFixed(1) + "px";
    ovView.style.width = ((x1 - x0) * kx).toFixed(1) + "px"; ovView.style.height = ((y1 - y0) * ky).toFixed(1) + "px";
  }
  function clampView() {  // a map larger than the view fills it (no empty margin); a smaller one is centred
    var vw = viewport.clientWidth, vh = viewport.clientHeight, w = mapW * s, h = mapH * s;
    tx = w <= vw ? (vw - w) / 2 : Math.min(0, Math.max(vw - w, tx));
    ty = h <= vh ? (vh - h) / 2 : Math.min(0, Math.max(vh - h, ty));
  }
  function centreAt(x, y) {  // map point (x, y), in unscaled map pixels, to the middle of the view
    tx = viewport.clientWidth / 2 - x * s; ty = viewport.clientHeight / 2 - y * s;
    clampView(); apply();
  }
  function fitScale() {
    return Math.min(1.5, Math.max(0.02, Math.min((viewport.clientWidth - 16) / mapW,
                                                 (viewport.clientHeight - 16) / mapH)));
  }
  function fit() { s = fitScale(); minS = Math.min(s, 1) / 2; clampView(); apply(); }
  // the (row0, col0, height, width) window of that size with the most wins (first in row order on ties)
  function busiest(h, w) {
    var P = new Float64Array((D.rows + 1) * (D.cols + 1)), W1 = D.cols + 1, best = -1, at = [0, 0];
    for (var r = 0; r < D.rows; r++)
      for (var c = 0; c < D.cols; c++)
        P[(r + 1) * W1 + c + 1] = D.wins[r * D.cols + c] + P[r * W1 + c + 1] + P[(r + 1) * W1 + c] - P[r * W1 + c];
    for (var r0 = 0; r0 + h <= D.rows; r0++)
      for (var c0 = 0; c0 + w <= D.cols; c0++) {
        var sum = P[(r0 + h) * W1 + c0 + w] - P[r0 * W1 + c0 + w] - P[(r0 + h) * W1 + c0] + P[r0 * W1 + c0];
        if (sum > best) { best = sum; at = [r0, c0]; }
      }
    return [at[0], at[1], h, w];
  }
  // the opening view: legible, on the busiest window of the view's size; the whole map if it fits legibly
  function home() {
    var fs = fitScale(), win;
    minS = Math.min(fs, 1) / 2;
    if (fs >= OPEN_SCALE) { s = fs; win = [0, 0, D.rows, D.cols]; clampView(); apply(); }
    else {
      s = OPEN_SCALE;
      var h = Math.max(1, Math.min(D.rows, Math.floor((viewport.clientHeight - Y0 * s) / (PITCH_Y * s))));
      var w = Math.max(1, Math.min(D.cols, Math.floor((viewport.clientWidth - X0 * s) / (PITCH_X * s))));
      win = busiest(h, w);
      centreAt(X0 + (win[1] + w / 2) * PITCH_X - GAP / 2, Y0 + (win[0] + h / 2) * PITCH_Y - GAP / 2);
    }
    map.setAttribute("data-window", win.join(","));
  }
  function zoomAt(factor, cx, cy) {
    var ns = Math.min(maxS, Math.max(minS, s * factor));
    tx = cx - (cx - tx) * (ns / s); ty = cy - (cy - ty) * (ns / s); s = ns;
    apply();
  }
  function zoomCentre(factor) { zoomAt(factor, viewport.clientWidth / 2, viewport.clientHeight / 2); }
  document.getElementById("zoom-in").addEventListener("click", function () { zoomCentre(1.5); });
  document.getElementById("zoom-out").addEventListener("click", function () { zoomCentre(1 / 1.5); });
  document.getElementById("reset").addEventListener("click", home);
  document.getElementById("whole").addEventListener("click", fit);
  viewport.addEventListener("wheel", function (e) {
    e.preventDefault();
    var r = viewport.getBoundingClientRect();
    zoomAt(Math.exp(-e.deltaY * (e.deltaMode === 1 ? 0.05 : 0.0015)), e.clientX - r.left, e.clientY - r.top);
  }, {passive: false});
  var drag = null, moved = false;
  viewport.addEventListener("pointerdown", function (e) {
    if (e.button !== 0 || overview.contains(e.target)) return;
    drag = {x: e.clientX, y: e.clientY, tx: tx, ty: ty, id: e.pointerId}; moved = false;
  });
  viewport.addEventListener("pointermove", function (e) {
    if (!drag) return;
    var dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (!moved && Math.abs(dx) + Math.abs(dy) < 4) return;
    if (!moved) { moved = true; viewport.classList.add("dragging"); viewport.setPointerCapture(drag.id); }
    tx = drag.tx + dx; ty = drag.ty + dy; apply();
  });
  function endDrag() { drag = null; viewport.classList.remove("dragging"); }
  viewport.addEventListener("pointerup", endDrag);
  viewport.addEventListener("pointercancel", endDrag);
  window.addEventListener("resize", function () { clampView(); apply(); });

  // the overview navigates: press or drag on it to centre the view there
  var ovDrag = false;
  function ovMove(e) {
    var r = ovCanvas.getBoundingClientRect();
    centreAt((e.clientX - r.left) / r.width * mapW, (e.clientY - r.top) / r.height * mapH);
  }
  overview.addEventListener("pointerdown", function (e) {
    if (e.button !== 0) return;
    e.stopPropagation(); e.preventDefault();
    ovDrag = true; overview.setPointerCapture(e.pointerId); ovMove(e);
  });
  overview.addEventListener("pointermove", function (e) { if (ovDrag) ovMove(e); });
  overview.addEventListener("pointerup", function () { ovDrag = false; });
  overview.addEventListener("pointercancel", function () { ovDrag = false; });
  overview.addEventListener("click", function (e) { e.stopPropagation(); });
  overview.addEventListener("wheel", function (e) { e.stopPropagation(); }, {passive: true});

  // the side panel
  var selected = -1;
  function select(j) {
    if (selected >= 0) cells[selected].classList.remove("selected");
    selected = j;
    cells[j].classList.add("selected");
    var w = D.wins[j], r = Math.floor(j / D.cols), c = j % D.cols, out = [];
    out.push("<h2>Neuron " + j + "</h2>");
    out.push('<p class="facts">row ' + r + ", col " + c + " &middot; <b>" + w.toLocaleString("en-US") + "</b> win" +
             (w === 1 ? "" : "s") + "</p>");
    if (w === 0) out.push('<p class="dead-note">Dead neuron: it is never the best neuron for any token. ' +
                          "Its strongest tokens are still listed.</p>");
    out.push("<h3>Top tokens</h3>");
    out.push(D.names[j].length ? "<ol class=\"tokens\">" + D.names[j].map(function (t) {
      return "<li><code>" + esc(t) + "</code></li>"; }).join("") + "</ol>" : "<p>(none)</p>");
    out.push("<h3>In context</h3>");
    var sn = D.snippets[j];
    if (!sn.length) out.push('<p class="hint">No context snippets in this page.</p>');
    sn.forEach(function (x) {
      var tok = x[1].trim() ? x[1] : (x[1].indexOf("\n") >= 0 ? "\u21b5" : "\u2423");
      out.push('<div class="snip">' + esc(x[0]) + "<mark>" + esc(tok) + "</mark>" + esc(x[2]) +
               '<span class="src">story ' + x[3] + ", token " + x[4] + "</span></div>");
    });
    panel.innerHTML = out.join("");
    if (location.hash !== "#neuron-" + j) {
      try { history.replaceState(null, "", "#neuron-" + j); } catch (err) { /* file:// in some browsers */ }
    }
  }
  map.addEventListener("click", function (e) {
    if (moved) { moved = false; return; }
    var cell = e.target.closest(".cell");
    if (cell) select(+cell.getAttribute("data-n"));
  });
  function centreOn(j) {
    if (s < OPEN_SCALE) s = OPEN_SCALE;
    var cell = cells[j];
    centreAt(cell.offsetLeft + CELL_W / 2, cell.offsetTop + CELL_H / 2);
  }
  // the address: #neuron-N selects and centres neuron N, at load and whenever it is edited
  function fromHash() {
    var m = /^#neuron-(\d+)$/.exec(location.hash);
    if (m && +m[1] < N) { select(+m[1]); centreOn(+m[1]); return true; }
    return false;
  }
  window.addEventListener("hashchange", fromHash);

  // search. exact (default): a live neuron matches when one of its top tokens equals the query,
  // ignoring case, surrounding spaces and a leading "##"; substring: a token contains the query
  // (ignoring case; a space matches the middle dot)
  var hits = [], hitPos = -1;
  function norm(t) { return t.replace(/\u00b7/g, " ").replace(/\\n/g, "\n").toLowerCase(); }
  function exactKey(t) { var u = norm(t), v = u.trim().replace(/^##(?=.)/, ""); return v || u; }
  var haystack = D.names.map(function (n) { return n.map(norm); });
  var exactKeys = D.names.map(function (n) { return n.map(exactKey); });
  function runSearch() {
    var raw = search.value, sub = substring.checked;
    var q = sub ? norm(raw) : exactKey(raw), shown = sub ? raw : (raw.trim() || raw);
    hits = []; hitPos = -1;
    var hitSet = q.length ? new Uint8Array(N) : null;
    for (var j = 0; j < N; j++) {
      var hit = q.length > 0 && D.wins[j] > 0 && (sub ? haystack[j].some(function (t) { return t.indexOf(q) >= 0; })
                                                      : exactKeys[j].indexOf(q) >= 0);
      cells[j].classList.toggle("hit", hit);
      if (hit) { hits.push(j); hitSet[j] = 1; }
    }
    map.classList.toggle("searching", q.length > 0);
    drawOverview(hitSet);
    var n = hits.length, ns = n + " neuron" + (n === 1 ? " has " : "s have ");
    countEl.textContent = !q.length ? "" : (sub ? ns + 'a token containing "' + shown + '" (substring)'
                                                : ns + 'the token "' + shown + '" (exact)') +
                                           (n ? " \u00b7 Enter: next" : "");
  }
  search.addEventListener("input", runSearch);
  substring.addEventListener("change", runSearch);
  search.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && hits.length) {
      hitPos = (hitPos + 1) % hits.length;
      centreOn(hits[hitPos]); select(hits[hitPos]);
    } else if (e.key === "Escape") { search.value = ""; runSearch(); }
  });

  home();
  fromHash();
  if (search.value) runSearch();
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="hebb_utils token_map 2">
<title>__TITLE__</title>
<style>__CSS__</style>
</head>
<body>
<header>
<h1>__TITLE__</h1>
<span class="subtitle">__SUBTITLE__</span>
<nav id="links" aria-label="Other maps">__LINKS__</nav>
<div class="group"><input id="search" type="search" placeholder="Find a token\u2026" aria-label="Find a token"
  autocomplete="off" spellcheck="false">
<label id="substring-label" title="Off: a neuron matches when one of its top tokens IS the query (any case,
  spaces and a leading ## ignored). On: when one CONTAINS it."><input id="substring" type="checkbox"> substring</label>
<span id="count" aria-live="polite"></span></div>
<div class="group" role="group" aria-label="zoom"><button id="zoom-out" type="button" title="Zoom out">&minus;</button>
<button id="zoom-in" type="button" title="Zoom in">+</button>
<button id="reset" type="button" title="Back to the opening view: the busiest region, legible">Reset</button>
<button id="whole" type="button" title="Show the whole map">Whole map</button></div>
<div id="legend" aria-label="Colour legend"><span>wins (log scale)</span>
<div id="legend-scale"><div id="legend-bar"></div><div id="legend-ticks"></div></div>
<span><span class="swatch dead"></span> <span id="legend-dead">0: dead</span></span></div>
<p class="note">__NOTE__</p>
<p class="key" id="key">__KEY__</p>
</header>
<main>
<div id="viewport"><div id="map" role="grid" aria-label="neuron map"></div>
<div id="overview" title="Overview of the whole map: click or drag to move the view"><canvas id="overview-map"></canvas>
<div id="overview-view"></div></div></div>
<aside id="panel" aria-live="polite"><p class="hint">Click a neuron to see its tokens in context.
Its colour is how often it wins. Wheel or +/&minus; to zoom, drag to pan, the overview (bottom right) to
move across the map; type in the box to find a token (Enter jumps to the next match). The address
<code>#neuron-N</code> opens neuron N.</p></aside>
</main>
<script type="application/json" id="map-data">__DATA__</script>
<script>__JS__</script>
</body>
</html>
"""
