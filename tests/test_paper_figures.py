"""Every figure of the paper prints its text at 7 pt or more (issue 28: 3-6.6 pt against 10 pt body text).

Reads every image placed in the PDF with pypdf: its size in pixels and the width it is placed at (the
transformation in force where the page draws it, through any form XObject). The PNG it came from (in
figures/, found by its pixel size) records the dpi it was drawn at and, where save_figure wrote it, the
size of its smallest text (MIN_FONT_KEY); a PNG without that record is assumed to hold text of the plotting
code's smallest size, MIN_FONT_PT (10 pt, also matplotlib's default). The text prints at
smallest * placed width / drawn width."""
from __future__ import annotations

from pathlib import Path

import pytest

from hebb_utils.report.plots import MAX_WIDTH_PX, MIN_FONT_KEY, MIN_FONT_PT, FIG_DPI
from test_paper import REPO, included_figures, tools  # noqa: F401  (tools is a fixture)

MIN_PRINTED_PT = 7.0


def _mul(a, b):
    return [a[0] * b[0] + a[1] * b[2], a[0] * b[1] + a[1] * b[3], a[2] * b[0] + a[3] * b[2],
            a[2] * b[1] + a[3] * b[3], a[4] * b[0] + a[5] * b[2] + b[4], a[4] * b[1] + a[5] * b[3] + b[5]]


def placed_images(pypdf, pdf: Path) -> list[dict]:
    """Every image drawn on the pages: page, pixel width and height, the width in points it is drawn at."""
    from pypdf.generic import ContentStream

    reader = pypdf.PdfReader(str(pdf))
    found = []

    def walk(content, resources, ctm, page):
        stack = []
        for operands, op in ContentStream(content, reader).operations:
            if op == b"q":
                stack.append(ctm)
            elif op == b"Q":
                ctm = stack.pop()
            elif op == b"cm":
                ctm = _mul([float(x) for x in operands], ctm)
            elif op == b"Do":
                obj = resources["/XObject"][operands[0]].get_object()
                if obj["/Subtype"] == "/Image":  # drawn into the unit square: its width is the matrix's first column
                    found.append({"page": page, "px": (int(obj["/Width"]), int(obj["/Height"])),
                                  "placed_pt": (ctm[0] ** 2 + ctm[1] ** 2) ** 0.5})
                elif obj["/Subtype"] == "/Form":
                    matrix = [float(x) for x in obj.get("/Matrix", [1, 0, 0, 1, 0, 0])]
                    walk(obj, obj.get("/Resources", resources), _mul(matrix, ctm), page)

    for number, page in enumerate(reader.pages, 1):
        walk(page.get_contents(), page["/Resources"], [1, 0, 0, 1, 0, 0], number)
    return found


def drawn(path: Path) -> dict:
    """What a PNG records of its drawing: its dpi and its smallest text in points (MIN_FONT_PT if not recorded)."""
    from PIL import Image

    with Image.open(path) as im:
        dpi = float(im.info.get("dpi", (FIG_DPI, FIG_DPI))[0])
        smallest = float(im.info.get(MIN_FONT_KEY, MIN_FONT_PT))
        return {"px": im.size, "dpi": dpi, "smallest_pt": smallest, "recorded": MIN_FONT_KEY in im.info}


@pytest.fixture(scope="module")
def placed(tools, tmp_path_factory):  # noqa: F811
    paper, pypdf = tools
    pdf = paper.build(tmp_path_factory.mktemp("figures") / "paper.pdf", root=REPO)
    return placed_images(pypdf, pdf)


def test_every_figure_prints_its_text_at_7pt_or_more(placed):
    files = {}
    for f in included_figures():
        info = drawn(REPO / f.lstrip("/"))
        files.setdefault(info["px"], []).append((f, info))
    assert len(placed) == len(included_figures())
    small = []
    for image in placed:
        # two files of one pixel size cannot be told apart in the PDF: the one whose text prints smaller counts
        name, info = min(files[image["px"]], key=lambda fi: fi[1]["smallest_pt"] * fi[1]["dpi"])
        drawn_pt = image["px"][0] / info["dpi"] * 72
        printed = info["smallest_pt"] * image["placed_pt"] / drawn_pt
        image.update(name=name, printed=printed)
        if printed < MIN_PRINTED_PT:
            small.append(f"{name} (page {image['page']}): {printed:.2f} pt, "
                         f"{'recorded' if info['recorded'] else 'assumed'} {info['smallest_pt']:g} pt text")
    assert not small, f"figure text under {MIN_PRINTED_PT} pt: {small}"


def test_the_text_width_prints_the_widest_figure_at_7pt(placed):
    """The rule behind the page's margins: a figure drawn at the plotting code's widest (MAX_WIDTH_PX at
    FIG_DPI) with MIN_FONT_PT text prints at 7 pt when placed at the text width."""
    text_width_pt = max(image["placed_pt"] for image in placed)
    assert MIN_FONT_PT * text_width_pt / (MAX_WIDTH_PX / FIG_DPI * 72) >= MIN_PRINTED_PT


def test_save_figure_records_the_smallest_text(tmp_path):
    import matplotlib.pyplot as plt

    from hebb_utils.report.plots import save_figure

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1])
    ax.set_title("title", fontsize=12)
    ax.text(0.5, 0.5, "note", fontsize=8.5)
    info = drawn(save_figure(fig, tmp_path / "f.png", show=False))
    assert info["recorded"] and info["smallest_pt"] == 8.5 and info["dpi"] == pytest.approx(FIG_DPI, rel=1e-3)
