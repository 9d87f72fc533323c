"""What a new reader sees, in a real browser at 1000 px wide: the README's first screen, its tables, and
the rendered notebooks (conclusions without code, one parameters cell, figures at 1:1).

The README is rendered as GitHub renders it closely enough for these checks: markdown-it (CommonMark
with tables and inline HTML) and the layout rules of GitHub's markdown CSS that decide widths (16 px
text, 32 px padding, tables as scrolling blocks, images no wider than the column). Chromium and
playwright as in tests/test_browser.py (its fixtures are used here); skipped without them, except
under CI=true.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from test_browser import browser, open_page  # noqa: F401 (pytest fixtures)

ROOT = Path(__file__).resolve().parents[1]
RENDERS = sorted(ROOT.glob("results/0*.html"))
WIDTH, FIRST_SCREEN = 1000, 900

# the parts of GitHub's markdown stylesheet that decide where things land and how wide they are
GITHUB_CSS = """
body { margin: 0; }
.markdown-body { box-sizing: border-box; max-width: 1012px; margin: 0 auto; padding: 32px;
  font-family: -apple-system, "Segoe UI", "Noto Sans", Helvetica, Arial, sans-serif; font-size: 16px; line-height: 1.5; }
.markdown-body h1 { font-size: 2em; margin: .67em 0; padding-bottom: .3em; border-bottom: 1px solid #d0d7de; }
.markdown-body h2 { font-size: 1.5em; padding-bottom: .3em; margin-top: 24px; margin-bottom: 16px; }
.markdown-body p, .markdown-body ul, .markdown-body ol, .markdown-body table, .markdown-body pre { margin-top: 0; margin-bottom: 16px; }
.markdown-body ol, .markdown-body ul { padding-left: 2em; }
.markdown-body img { max-width: 100%; box-sizing: content-box; }
.markdown-body table { display: block; width: max-content; max-width: 100%; overflow: auto; border-spacing: 0;
  border-collapse: collapse; }
.markdown-body td, .markdown-body th { padding: 6px 13px; border: 1px solid #d0d7de; }
.markdown-body code { font-size: 85%; padding: .2em .4em; }
"""


@pytest.fixture(scope="module")
def readme_page(tmp_path_factory) -> Path:
    body = MarkdownIt("commonmark", {"html": True}).enable("table").render((ROOT / "README.md").read_text())
    page = tmp_path_factory.mktemp("readme") / "README.html"
    page.write_text(f'<!doctype html><html><head><meta charset="utf-8"><base href="{ROOT.as_uri()}/">'
                    f'<style>{GITHUB_CSS}</style></head><body><article class="markdown-body">{body}</article></body></html>',
                    encoding="utf-8")
    return page


def test_readme_first_screen_holds_the_headline_figure_and_findings(open_page, readme_page):  # noqa: F811
    o = open_page(readme_page, width=WIDTH, height=FIRST_SCREEN)
    figure = o.page.evaluate("""() => { const img = document.querySelector('article img');
        const r = img.getBoundingClientRect(); return {src: img.getAttribute('src'), bottom: r.bottom, width: r.width,
        loaded: img.complete && img.naturalWidth > 0}; }""")
    assert figure["loaded"] and figure["src"].startswith("figures/"), figure
    assert figure["bottom"] <= FIRST_SCREEN, f"the headline figure ends at {figure['bottom']:.0f} px"
    findings = o.page.evaluate("""() => [...document.querySelectorAll('article ol > li')].map(li => ({
        text: li.innerText, bottom: li.getBoundingClientRect().bottom}))""")
    first = [f for f in findings if f["bottom"] <= FIRST_SCREEN]
    # at least three findings, each with a number and its interval, are on the first screen
    assert len(first) >= 3, f"{len(first)} findings on the first screen: {[round(f['bottom']) for f in findings]}"
    assert all(re.search(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", f["text"]) for f in first[:3])
    verdict = [f for f in first if re.search(r"\d+ of \d+ goals", f["text"])]
    assert verdict, "the goals' verdict is not on the first screen"


def test_no_readme_table_is_cut_off(open_page, readme_page):  # noqa: F811
    o = open_page(readme_page, width=WIDTH, height=FIRST_SCREEN)
    tables = o.page.evaluate("""() => [...document.querySelectorAll('article table')].map(t => ({
        columns: t.rows[0].cells.length, hidden: t.scrollWidth - t.clientWidth,
        head: [...t.rows[0].cells].map(c => c.innerText).join(' | ')}))""")
    assert len(tables) >= 10
    assert not [t for t in tables if t["hidden"] > 1], [t for t in tables if t["hidden"] > 1]
    assert max(t["columns"] for t in tables) <= 7


@pytest.mark.parametrize("path", RENDERS, ids=lambda p: p.name)
def test_rendered_notebook_reads_as_a_report(open_page, path):  # noqa: F811
    o = open_page(path, width=WIDTH, height=FIRST_SCREEN)
    cells = o.page.evaluate("""() => [...document.querySelectorAll('.jp-Cell')].map(c => ({
        markdown: c.classList.contains('jp-MarkdownCell'), heading: (c.querySelector('h2') || {}).innerText || '',
        code: (c.querySelector('.jp-InputArea .jp-Editor, .jp-InputArea pre') || {}).innerText || ''}))""")
    # one parameters cell (papermill's injected values merged into it)
    parameters = [c for c in cells if c["code"].lstrip().startswith("# Parameters")]
    assert len(parameters) == 1, f"{len(parameters)} parameters cells"
    # the conclusion shows its text, not the code that writes it
    start = next(i for i, c in enumerate(cells) if c["heading"].startswith("What this shows"))
    shown = [c["code"][:80] for c in cells[start + 1:] if c["code"].strip()]
    assert not shown, f"the conclusion shows code: {shown}"
    # every figure at 1:1: drawn at its own pixel width, neither shrunk nor stretched
    images = o.page.evaluate("""() => [...document.querySelectorAll('.jp-OutputArea img')].map(img => ({
        natural: img.naturalWidth, drawn: img.getBoundingClientRect().width, alt: img.alt || img.src.slice(0, 40)}))""")
    scaled = [i for i in images if i["natural"] and abs(i["drawn"] - i["natural"]) > 1]
    assert not scaled, f"figures not shown 1:1 at {WIDTH} px: {scaled}"
    # no stray object reprs (a returned Path, a figure handle) among the outputs
    text = o.page.evaluate("() => [...document.querySelectorAll('.jp-OutputArea-output')].map(e => e.innerText).join('\\n')")
    assert not re.search(r"(PosixPath|WindowsPath)\(|<Figure size|<matplotlib\.", text), "a stray object repr in the outputs"
