"""Every page a reader opens (results/*.html, figures/*.html) in a real browser, with no network.

Each page is opened from file:// in headless Chromium (driven by Playwright) with every request
routed: anything that is not file:, data: or blob: is recorded and aborted, and the test fails
listing them. The page must render (body text, no page errors, no console errors) and every
<img> must load. The interactive token map (figures/lm_map.html, and pages written by
`token_map_html` here) is also used: search, select a neuron, zoom, legend; and, on pages written
here at 1000 and 1400 px: it opens legible (every drawn label >= 10 px) on the busiest region,
exact and substring search count as they say, editing #neuron-N selects and centres N, the
overview inset shows the view and moving on it pans.

Needs Chromium (`apt-get install chromium`, or HEBB_CHROMIUM=/path/to/chrome) and the Python
package playwright (in the dev extras). Without them the tests skip, except under CI=true, where
they fail: CI must really run them.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([*ROOT.glob("results/*.html"), *ROOT.glob("figures/*.html")])
MAP_MARKER = '<script type="application/json" id="map-data">'
ALLOWED_SCHEMES = {"file", "data", "blob"}
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
INSTALL = ("install Chromium (Debian/Ubuntu: `apt-get install -y chromium`) or point HEBB_CHROMIUM at a "
           "Chrome/Chromium binary, and the dev extras (`pip install -e '.[dev]'`, for playwright)")


def _unavailable(reason: str):
    """Skip, or fail under CI=true (CI must run the browser tests)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the browser tests must run; {INSTALL})", pytrace=False)
    pytest.skip(f"{reason}: {INSTALL}")


def chromium_path() -> str | None:
    env = os.environ.get("HEBB_CHROMIUM")
    if env:
        return env if os.access(env, os.X_OK) else None
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _map_pages() -> list[Path]:
    """figures/lm_map.html (always, when it exists) and any other page written by token_map_html."""
    out = []
    for page in PAGES:
        if page.name == "lm_map.html" or MAP_MARKER in page.read_text(encoding="utf-8", errors="replace")[:200_000]:
            out.append(page)
    return out


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the Python package playwright is not installed")
    executable = chromium_path()
    if executable is None:
        where = os.environ.get("HEBB_CHROMIUM") or "/usr/bin/chromium or `chromium` on PATH"
        _unavailable(f"no Chromium found ({where})")
    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except Exception as err:  # a broken install: say so rather than skip silently
            pytest.fail(f"Chromium at {executable} did not start: {err}", pytrace=False)
        yield b
        b.close()


class Opened:
    """A page opened offline, with what it tried to fetch and what it reported."""

    def __init__(self, browser, path: Path, width: int = 1280, height: int = 800, fragment: str = ""):
        self.blocked: list[str] = []
        self.errors: list[str] = []
        self.context = browser.new_context(viewport={"width": width, "height": height}, service_workers="block")
        self.context.route("**/*", self._route)
        self.context.on("request", self._request)
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda err: self.errors.append(f"page error: {err}"))
        self.page.on("console", self._console)
        self.page.goto(path.resolve().as_uri() + fragment, wait_until="load")

    def _console(self, msg):
        # a request this test blocked is reported as such, not again as a console error
        if msg.type == "error" and "ERR_BLOCKED_BY_CLIENT" not in msg.text:
            self.errors.append(f"console {msg.type}: {msg.text}")

    def _allowed(self, url: str) -> bool:
        return urlsplit(url).scheme.lower() in ALLOWED_SCHEMES

    def _route(self, route):
        url = route.request.url
        if self._allowed(url):
            route.continue_()
        else:
            if url not in self.blocked:
                self.blocked.append(url)
            route.abort("blockedbyclient")

    def _request(self, request):  # a second net: requests the router might not see
        if not self._allowed(request.url) and request.url not in self.blocked:
            self.blocked.append(request.url)

    def close(self):
        self.context.close()


@pytest.fixture
def open_page(browser):
    opened = []

    def _open(path: Path, width: int = 1280, height: int = 800, fragment: str = "") -> Opened:
        o = Opened(browser, path, width, height, fragment)
        opened.append(o)
        return o

    yield _open
    for o in opened:
        o.close()


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


# ------------------------------------------------------------------------------------------------
# every page: offline, rendered, images loaded
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", PAGES, ids=_rel)
def test_page_opens_offline(open_page, path):
    o = open_page(path)
    page = o.page
    problems = []
    if o.blocked:
        problems.append(f"tried to reach the network ({len(o.blocked)} request(s), all blocked; a page must be "
                        f"self-contained):\n  " + "\n  ".join(o.blocked))
    if not page.evaluate("() => document.body ? document.body.innerText.trim() : ''"):
        problems.append("the page rendered no text")
    # wait (briefly) for any image still decoding, then list those that did not load
    broken = page.evaluate("""async () => {
        const imgs = Array.from(document.images);
        await Promise.race([
          Promise.all(imgs.map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; }))),
          new Promise(r => setTimeout(r, 5000))]);
        return imgs.map((img, k) => ({k, ok: img.complete && img.naturalWidth > 0,
                                      src: (img.getAttribute('src') || '').slice(0, 80)}))
                   .filter(x => !x.ok).map(x => `<img> #${x.k}: ${x.src}`);
    }""")
    if broken:
        problems.append(f"{len(broken)} image(s) did not load:\n  " + "\n  ".join(broken))
    if o.errors:
        problems.append("errors while loading:\n  " + "\n  ".join(o.errors))
    if problems:
        pytest.fail(f"{_rel(path)}:\n" + "\n".join(f"- {p}" for p in problems), pytrace=False)


# ------------------------------------------------------------------------------------------------
# the interactive token map
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_map(tmp_path_factory) -> Path:
    """A page written by token_map_html from a tiny GPT-2-style token table (independent of results/)."""
    from hebb_utils.measure.maps import top_distinct_tokens
    from hebb_utils.report.token_map import context_snippets, token_map_html

    stories = [["Once", " upon", " a", " time", ",", " a", " dragon", " slept", "."],
               ["Lily", " saw", " a", " big", " </script>", " tree", ".", "\n", "The", " end", "."],
               ["Tom", " and", " Lily", " played", " with", " the", " dragon", "."]]
    tokens = pd.DataFrame({
        "token": [t for s in stories for t in s],
        "story_id": np.repeat(np.arange(len(stories)), [len(s) for s in stories]),
        "position": np.concatenate([np.arange(len(s)) for s in stories]),
    })
    tokens.insert(0, "row", np.arange(len(tokens)))
    tokens.insert(1, "token_id", np.arange(len(tokens)))
    rows, cols = 4, 6
    rng = np.random.default_rng(0)
    top_index = rng.integers(0, len(tokens), size=(6, rows * cols))
    top_index[0, 0] = 6  # neuron 0: " dragon" first
    top_index[0, 1] = 4 + 9  # neuron 1: " </script>" first
    names = top_distinct_tokens(top_index, tokens["token"], k=3)
    wins = rng.integers(1, 500, size=rows * cols)
    wins[[5, 17]] = 0  # two dead neurons
    path = tmp_path_factory.mktemp("token_map") / "small_map.html"
    return token_map_html(path, (rows, cols), names, wins, context_snippets(top_index, tokens, width=4),
                          title="test map", note="a tiny map written by the tests")


def _scale(page) -> float:
    transform = page.eval_on_selector("#map", "el => el.style.transform")
    m = re.search(r"scale\(([0-9.eE+-]+)\)", transform)
    assert m, f"#map has no scale transform: {transform!r}"
    return float(m.group(1))


def _translate(page) -> tuple[float, float]:
    m = re.search(r"translate\(([-0-9.]+)px,\s*([-0-9.]+)px\)", page.eval_on_selector("#map", "el => el.style.transform"))
    assert m
    return float(m.group(1)), float(m.group(2))


def _check_map(o: Opened, label: str):
    page = o.page
    if page.query_selector("#map-data") is None:
        pytest.fail(f"{label} is not the interactive token map (no embedded data): re-run notebook 05, which "
                    f"writes it with hebb_utils.report.token_map.token_map_html", pytrace=False)
    if o.blocked:
        pytest.fail(f"{label} tried to reach the network: {o.blocked}", pytrace=False)
    data = page.evaluate("() => JSON.parse(document.getElementById('map-data').textContent)")
    n = data["rows"] * data["cols"]
    wins = np.asarray(data["wins"])
    cells = page.locator("#map .cell")
    assert cells.count() == n
    # dead neurons: grey and empty
    assert page.locator("#map .cell.dead").count() == int((wins == 0).sum())
    assert all(not t.strip() for t in page.locator("#map .cell.dead").all_inner_texts())

    # the legend, with real numbers
    assert page.locator("#legend").is_visible()
    ticks = page.locator("#legend-ticks span").all_inner_texts()
    assert ticks and ticks[0] == "1", ticks
    if wins.max() > 1:
        assert ticks[-1].replace(",", "") == str(wins.max()), ticks

    # search: a token that exists in a live neuron's name
    live = [j for j in range(n) if wins[j] > 0 and data["names"][j]]
    assert live, f"{label}: no live neuron with a name"
    j = live[0]
    query = data["names"][j][0].replace("\u00b7", " ").strip() or data["names"][j][0]
    page.fill("#search", query)
    hits = page.locator("#map .cell.hit")
    assert hits.count() >= 1, f"searching {query!r} highlighted nothing"
    assert page.locator(f'#map .cell.hit[data-n="{j}"]').count() == 1
    count = page.inner_text("#count")
    assert str(hits.count()) in count, f"the count {count!r} does not show the {hits.count()} matches"
    page.fill("#search", "")
    assert page.locator("#map .cell.hit").count() == 0 and page.inner_text("#count").strip() == ""

    # click a live neuron: its id, tokens and a snippet in the panel. A page that opens zoomed in on its
    # busiest window may have neuron j out of view: the address (#neuron-j, hashchange) brings it there first
    page.evaluate(f"location.hash = '#neuron-{j}'")
    page.wait_for_function(f"() => location.hash === '#neuron-{j}'")
    page.locator(f'#map .cell[data-n="{j}"]').click()
    panel = page.locator("#panel")
    text = panel.inner_text()
    assert f"Neuron {j}" in text
    assert f"row {j // data['cols']}, col {j % data['cols']}" in text
    for name in data["names"][j]:
        assert name in text, f"token {name!r} of neuron {j} not in the panel"
    if any(data["snippets"]):
        assert data["snippets"][j], f"{label}: neuron {j} has no snippets while others do"
        assert panel.locator(".snip").count() >= 1
        assert panel.locator(".snip mark").first.inner_text().strip()

    # zoom: buttons, wheel; pan: drag; reset
    s0 = _scale(page)
    page.click("#zoom-in")
    s1 = _scale(page)
    assert s1 > s0, f"zoom in did not enlarge the map ({s0} -> {s1})"
    page.click("#zoom-out")
    assert _scale(page) < s1
    box = page.locator("#viewport").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.wheel(0, -300)
    page.wait_for_function(f"() => parseFloat(document.getElementById('map').dataset.scale) > {s0 + 1e-4}")
    t0 = _translate(page)
    page.mouse.down()
    page.mouse.move(cx + 60, cy + 40, steps=5)
    page.mouse.up()
    t1 = _translate(page)
    assert abs(t1[0] - t0[0] - 60) < 2 and abs(t1[1] - t0[1] - 40) < 2, f"drag did not pan: {t0} -> {t1}"
    page.click("#reset")
    assert abs(_scale(page) - s0) < 1e-3
    assert not o.errors, f"{label}: errors:\n  " + "\n  ".join(o.errors)
    if page.query_selector('meta[name="generator"][content^="hebb_utils token_map"]') is None:
        pytest.skip(f"{label} was written by an older token_map_html (no legible opening view, overview or exact "
                    "search): re-run the notebook that writes it (05 or 07) to check those too")
    # the newer page: legible at open, the overview, exact search, the address
    page.click("#reset")
    assert _smallest_label_px(page) >= 10
    assert page.locator("#overview canvas").is_visible() and page.locator("#overview-view").is_visible()
    page.fill("#search", query)
    assert "(exact)" in page.inner_text("#count")
    page.fill("#search", "")
    other = live[-1]
    page.evaluate(f"() => {{ location.hash = '#neuron-{other}'; }}")
    page.wait_for_function(f"() => document.querySelector('#map .cell[data-n=\"{other}\"]').classList.contains('selected')")
    assert f"Neuron {other}" in page.inner_text("#panel")
    assert not o.errors, f"{label}: errors:\n  " + "\n  ".join(o.errors)


def test_token_map_interaction_small(open_page, small_map):
    o = open_page(small_map)
    _check_map(o, "the test page")
    page = o.page
    # the token "</script>" is data, not markup: the page survived it and can find it
    page.fill("#search", "</script>")  # exact: the whole token
    assert page.locator("#map .cell.hit").count() >= 1
    page.fill("#search", "")
    page.check("#substring")
    page.fill("#search", "</script")  # substring: a part of it
    assert page.locator("#map .cell.hit").count() >= 1
    page.uncheck("#substring")
    # a dead neuron is listed as such
    page.fill("#search", "")
    page.locator('#map .cell[data-n="5"]').click()
    assert "Dead neuron" in page.inner_text("#panel")


@pytest.mark.parametrize("path", _map_pages(), ids=_rel)
def test_token_map_interaction(open_page, path):
    _check_map(open_page(path), _rel(path))


# ------------------------------------------------------------------------------------------------
# the token map's opening view, search modes, address and overview (pages written here)
# ------------------------------------------------------------------------------------------------

BIG = (30, 60)  # the grid of the committed figures/lm_map.html
HOT = (21, 44)  # the centre of the hand-made busy region


@pytest.fixture(scope="module")
def big_map(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A 30 x 60 page like figures/lm_map.html, with many dead neurons and one busy region away from the centre."""
    from hebb_utils.report.token_map import token_map_html

    rows, cols = BIG
    rng = np.random.default_rng(1)
    r, c = np.divmod(np.arange(rows * cols), cols)
    wins = rng.integers(0, 30, rows * cols) * (rng.random(rows * cols) < 0.5)
    wins += (2000 * np.exp(-((r - HOT[0]) ** 2 + (c - HOT[1]) ** 2) / 12)).astype(int)
    names = [[f"\u00b7w{j}", f"p{j}", "."] for j in range(rows * cols)]
    snippets = [[{"left": "one day, a good ", "token": f"w{j}", "right": " ran.", "story_id": j, "position": 4}]
                for j in range(rows * cols)]
    path = tmp_path_factory.mktemp("big_map") / "big_map.html"
    return token_map_html(path, BIG, names, wins, snippets, title="big test map", subtitle="annealed layer",
                          links=[("fixed support", "fixed_map.html")]), wins


# exact search: "the" is the token of neurons 0, 1, 4 and 7 (5 is dead); substring adds 2, 3 and 6
SEARCH_NAMES = [["\u00b7the", "\u00b7a"], ["the"], ["\u00b7There"], ["\u00b7other", "\u00b7dog"], ["\u00b7The"],
                ["\u00b7the"], ["then"], ["##the"], ["\u00b7cat"]]


@pytest.fixture(scope="module")
def search_map(tmp_path_factory) -> Path:
    from hebb_utils.report.token_map import token_map_html

    wins = [5, 4, 3, 9, 2, 0, 7, 1, 6]
    return token_map_html(tmp_path_factory.mktemp("search_map") / "search.html", (3, 3), SEARCH_NAMES, wins)


def _smallest_label_px(page) -> float:
    """The smallest drawn font size (px on screen) of the live cells that show in the view at all."""
    return page.evaluate("""() => {
        const vp = document.getElementById('viewport').getBoundingClientRect();
        let least = Infinity, seen = 0;
        for (const cell of document.querySelectorAll('#map .cell:not(.dead)')) {
          const r = cell.getBoundingClientRect();
          if (r.right <= vp.left || r.left >= vp.right || r.bottom <= vp.top || r.top >= vp.bottom) continue;
          const drawn = parseFloat(getComputedStyle(cell).fontSize) * r.height / cell.offsetHeight;
          least = Math.min(least, drawn); seen++;
        }
        return seen ? least : -1;
    }""")


def _cell_box(page, j: int) -> dict:
    return page.evaluate(f"() => {{ const r = document.querySelector('#map .cell[data-n=\"{j}\"]')"
                         ".getBoundingClientRect(); return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; }")


@pytest.mark.parametrize("width", [1000, 1400])
def test_token_map_opens_legible_on_the_busiest_region(open_page, big_map, width):
    from hebb_utils.report.plots import busiest_window

    path, wins = big_map
    page = open_page(path, width=width, height=800).page
    assert _smallest_label_px(page) >= 10, "a label in the opening view is drawn under 10 px"
    # the window of the view's size with the most wins, as plots.busiest_window finds it, is in view
    r0, c0, h, w = map(int, page.eval_on_selector("#map", "el => el.dataset.window").split(","))
    assert h >= 5 and w >= 5, f"the opening view shows only a {h} x {w} window"
    assert (r0, c0, h, w) == busiest_window(wins, BIG, (h, w))
    assert r0 <= HOT[0] < r0 + h and c0 <= HOT[1] < c0 + w
    vp = page.locator("#viewport").bounding_box()
    for j in (r0 * BIG[1] + c0, (r0 + h - 1) * BIG[1] + c0 + w - 1):  # its corners
        box = _cell_box(page, j)
        assert box["left"] >= vp["x"] - 1 and box["right"] <= vp["x"] + vp["width"] + 1
        assert box["top"] >= vp["y"] - 1 and box["bottom"] <= vp["y"] + vp["height"] + 1
    # the map fills the view: no empty margin
    m = page.locator("#map").bounding_box()
    assert m["x"] <= vp["x"] + 1 and m["y"] <= vp["y"] + 1
    assert m["x"] + m["width"] >= vp["x"] + vp["width"] - 1 and m["y"] + m["height"] >= vp["y"] + vp["height"] - 1
    # the header: subtitle and the link to the sibling page (relative)
    assert page.inner_text(".subtitle") == "annealed layer"
    assert page.get_attribute("#links a", "href") == "fixed_map.html"
    assert page.inner_text("#links a") == "fixed support"


def test_token_map_search_is_exact_with_a_substring_switch(open_page, search_map):
    o = open_page(search_map, width=1000)
    page = o.page
    assert page.locator("#substring").is_visible() and not page.is_checked("#substring")
    page.fill("#search", "the")
    hits = sorted(int(x) for x in page.eval_on_selector_all("#map .cell.hit", "els => els.map(e => e.dataset.n)"))
    assert hits == [0, 1, 4, 7]
    assert page.inner_text("#count").startswith('4 neurons have the token "the" (exact)')
    page.check("#substring")
    hits = sorted(int(x) for x in page.eval_on_selector_all("#map .cell.hit", "els => els.map(e => e.dataset.n)"))
    assert hits == [0, 1, 2, 3, 4, 6, 7]
    assert page.inner_text("#count").startswith('7 neurons have a token containing "the" (substring)')
    page.uncheck("#substring")
    page.fill("#search", " CAT ")  # exact ignores case and surrounding spaces
    assert page.inner_text("#count").startswith('1 neuron has the token "CAT" (exact)')
    page.fill("#search", "zebra")
    assert page.inner_text("#count") == '0 neurons have the token "zebra" (exact)'
    assert "##" in page.inner_text("#key")  # the WordPiece piece is explained
    assert not o.errors, o.errors


def test_token_map_follows_the_address(open_page, big_map):
    path, _ = big_map
    o = open_page(path, width=1000)
    page = o.page
    vp = page.locator("#viewport").bounding_box()
    for j in (15 * 60 + 30, 10 * 60 + 20):  # away from the edges, so the view can centre them
        page.evaluate(f"() => {{ location.hash = '#neuron-{j}'; }}")
        page.wait_for_function(f"() => document.querySelector('#map .cell[data-n=\"{j}\"]').classList.contains('selected')")
        assert page.inner_text("#panel h2") == f"Neuron {j}"
        assert page.locator("#map .cell.selected").count() == 1
        box = _cell_box(page, j)
        assert abs((box["left"] + box["right"]) / 2 - (vp["x"] + vp["width"] / 2)) < 2
        assert abs((box["top"] + box["bottom"]) / 2 - (vp["y"] + vp["height"] / 2)) < 2
        assert _smallest_label_px(page) >= 10
    # opened with the address: selected and centred at load
    o2 = open_page(path, width=1000, fragment="#neuron-905")
    assert o2.page.inner_text("#panel h2") == "Neuron 905"
    box, vp = _cell_box(o2.page, 905), o2.page.locator("#viewport").bounding_box()
    assert abs((box["left"] + box["right"]) / 2 - (vp["x"] + vp["width"] / 2)) < 2
    assert not o.errors and not o2.errors, o.errors + o2.errors


def test_token_map_overview_shows_and_moves_the_view(open_page, big_map):
    path, _ = big_map
    o = open_page(path, width=1000)
    page = o.page
    ov = page.locator("#overview canvas").bounding_box()
    rect = page.locator("#overview-view").bounding_box()
    assert ov and rect and ov["width"] >= 100, (ov, rect)
    assert rect["width"] < ov["width"] and rect["height"] < ov["height"]  # a part of the map is in view
    assert ov["x"] - 1 <= rect["x"] and rect["x"] + rect["width"] <= ov["x"] + ov["width"] + 1
    # a click on the overview's middle centres the view on the map's middle
    t0 = _translate(page)
    page.mouse.click(ov["x"] + ov["width"] / 2, ov["y"] + ov["height"] / 2)
    t1 = _translate(page)
    assert t1 != t0
    vp = page.locator("#viewport").bounding_box()
    box = _cell_box(page, 15 * 60 + 30)  # the map's middle neuron, near the view's middle
    assert abs((box["left"] + box["right"]) / 2 - (vp["x"] + vp["width"] / 2)) < 100
    mid = page.locator("#overview-view").bounding_box()
    assert abs(mid["x"] + mid["width"] / 2 - (ov["x"] + ov["width"] / 2)) < 3
    # dragging on the overview pans with it; the view rectangle follows
    page.mouse.move(ov["x"] + ov["width"] / 2, ov["y"] + ov["height"] / 2)
    page.mouse.down()
    page.mouse.move(ov["x"] + ov["width"] / 4, ov["y"] + ov["height"] / 2, steps=5)
    page.mouse.up()
    t2 = _translate(page)
    assert t2[0] > t1[0] + 100, f"dragging left on the overview did not move the view left: {t1} -> {t2}"
    moved = page.locator("#overview-view").bounding_box()
    assert moved["x"] < mid["x"] - 10
    assert not page.locator("#map .cell.selected").count()  # the overview is not a click on the map
    assert not o.errors, o.errors
