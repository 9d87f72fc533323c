"""Every page a reader opens (results/*.html, figures/*.html) in a real browser, with no network.

Each page is opened from file:// in headless Chromium (driven by Playwright) with every request
routed: anything that is not file:, data: or blob: is recorded and aborted, and the test fails
listing them. The page must render (body text, no page errors, no console errors) and every
<img> must load. The interactive token map (figures/lm_map.html, and a small page written by
`token_map_html` here) is also used: search, select a neuron, zoom, legend.

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

    def __init__(self, browser, path: Path):
        self.blocked: list[str] = []
        self.errors: list[str] = []
        self.context = browser.new_context(viewport={"width": 1280, "height": 800}, service_workers="block")
        self.context.route("**/*", self._route)
        self.context.on("request", self._request)
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda err: self.errors.append(f"page error: {err}"))
        self.page.on("console", self._console)
        self.page.goto(path.resolve().as_uri(), wait_until="load")

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

    def _open(path: Path) -> Opened:
        o = Opened(browser, path)
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
    from hebb_utils.measure.analysis import top_distinct_tokens
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

    # click a live neuron: its id, tokens and a snippet in the panel
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


def test_token_map_interaction_small(open_page, small_map):
    o = open_page(small_map)
    _check_map(o, "the test page")
    page = o.page
    # the token "</script>" is data, not markup: the page survived it and can find it
    page.fill("#search", "</script")
    assert page.locator("#map .cell.hit").count() >= 1
    # a dead neuron is listed as such
    page.fill("#search", "")
    page.locator('#map .cell[data-n="5"]').click()
    assert "Dead neuron" in page.inner_text("#panel")


@pytest.mark.parametrize("path", _map_pages(), ids=_rel)
def test_token_map_interaction(open_page, path):
    _check_map(open_page(path), _rel(path))
