"""The paper (paper/paper.typ) builds offline, reads its numbers from results/*.json and embeds its figures.

Builds the PDF with `python -m hebb_utils.report.paper`'s functions into tmp_path, extracts its text with
pypdf and checks it against numbers formatted here from the JSON. Needs the packages typst and pypdf:
without them the tests skip, and fail under CI=true.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAPER_DIR = REPO / "paper"
INSTALL = "pip install typst pypdf"


def _unavailable(reason: str):
    """Skip, or fail under CI=true (CI must build the paper)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the paper tests must run; {INSTALL})", pytrace=False)
    pytest.skip(f"{reason}: {INSTALL}")


@pytest.fixture(scope="module")
def tools():
    try:
        import typst  # noqa: F401
    except ImportError:
        _unavailable("the Python package typst is not installed")
    try:
        import pypdf
    except ImportError:
        _unavailable("the Python package pypdf is not installed")
    from hebb_utils.report import paper

    return paper, pypdf


# ---------------------------------------------------------------------------------------------
# the numbers as the paper prints them (paper/lib.typ's fmt and iv)

def fmt(x: float, digits: int = 3) -> str:
    """As lib.typ's fmt: rounded half away from zero (Typst's calc.round), never '-0.000'."""
    v = abs(x) * 10**digits
    n = int(v)
    if v - n >= 0.5:
        n += 1
    sign = "-" if x < 0 and n > 0 else ""
    whole, frac = divmod(n, 10**digits)
    return f"{sign}{whole}" + (f".{frac:0{digits}d}" if digits else "")


def iv(entry: dict, metric: str, digits: int = 3) -> str:
    lo, hi = entry["ci95"][metric]
    return f"{fmt(entry['mean'][metric], digits)} [{fmt(lo, digits)}, {fmt(hi, digits)}]"


def test_fmt_matches_the_rules():
    assert fmt(0.65154) == "0.652"
    assert fmt(-7.08e-05) == "0.000"  # negative zero is normalised
    assert fmt(-0.0103) == "-0.010"
    assert fmt(0.0005) == "0.001"  # half away from zero
    assert fmt(2.5, 0) == "3"


def results(root: Path = REPO) -> dict:
    return {p.name[:2]: json.loads(p.read_text()) for p in sorted((root / "results").glob("0*.json"))}


def text_of(pypdf, pdf: Path) -> str:
    """The PDF's text, whitespace (line breaks inside a sentence or an interval) as single spaces."""
    reader = pypdf.PdfReader(str(pdf))
    return re.sub(r"\s+", " ", " ".join(page.extract_text() for page in reader.pages))


@pytest.fixture(scope="module")
def built(tools, tmp_path_factory):
    """The paper built by the command's main() from the committed results: (pdf path, its text)."""
    paper, pypdf = tools
    out = tmp_path_factory.mktemp("paper") / "paper.pdf"
    assert paper.main(["--out", str(out), "--root", str(REPO)]) == 0
    assert out.is_file() and out.stat().st_size > 0
    assert [p.name for p in out.parent.iterdir()] == ["paper.pdf"], "the atomic write left a temporary file"
    return out, text_of(pypdf, out)


# ---------------------------------------------------------------------------------------------
# (a) the numbers of the results are in the text

def test_numbers_from_the_results_appear(built):
    _, text = built
    r = results()
    runs04, runs05, runs06 = (r[k]["results"]["runs"] for k in ("04", "05", "06"))
    expected = [
        iv(runs05["lateral support"], "topographic_error"),  # notebook 05, lateral support
        iv(runs05["no lateral support"], "topographic_error"),
        iv(runs04["lateral support"], "topographic_error"),  # notebook 04
        iv(runs04["lateral support"], "distance_rho"),
        iv(runs06["cifar / softhebb annealed"], "topographic_error"),  # notebook 06, annealed CIFAR-10
        iv(runs06["cifar / minisom"], "topographic_error"),
        iv(runs06["lm / softhebb annealed"], "topographic_error"),
        fmt(r["02"]["results"]["oja_abs_cos"], 5),  # notebook 02
        f'{r["03"]["results"]["summary"]["PCA components for 95% variance"]} principal components',  # notebook 03
        f'{r["01"]["results"]["n_tokens"]:,} tokens',
    ]
    missing = [e for e in expected if e not in text]
    assert not missing, f"not in the paper's text: {missing}"
    assert "-0.000" not in text


def test_goal_verdicts_of_notebook_07(built):
    _, text = built
    goals = json.loads((REPO / "results" / "07_dictionaries.json").read_text())["results"]["goals"]
    met = [g["goal"].split(":")[0] for g in goals if g["met"]]
    missed = [g["goal"].split(":")[0] for g in goals if not g["met"]]
    assert f"{len(met)} of {len(goals)}" in text
    assert f"Met: {'; '.join(met) or 'none'}. Missed: {'; '.join(missed) or 'none'}." in text
    assert f"missed {len(missed)} of its {len(goals)} goals" in text


def test_offline_stand_in_is_said(built):
    _, text = built
    model = json.loads((REPO / "results" / "05_lm_softhebb.json").read_text())["source"]["model"]
    assert model["offline_stand_in"] is True
    assert f"offline stand-in {model['name']}" in text
    assert "not TinyStories-1M" in text


# ---------------------------------------------------------------------------------------------
# (b) every figure the source includes exists and is embedded

def included_figures() -> list[str]:
    sources = " ".join(p.read_text() for p in sorted(PAPER_DIR.glob("*.typ")))
    return sorted(set(re.findall(r'image\(\s*"([^"]+)"', sources)))


def embedded_images(pypdf, pdf: Path) -> set[int]:
    """Object numbers of the image XObjects reachable from the pages' resources (forms included)."""
    found: set[int] = set()
    seen_forms: set[int] = set()

    def walk(resources):
        xobjects = (resources or {}).get("/XObject")
        if xobjects is None:
            return
        for ref in xobjects.get_object().values():
            obj = ref.get_object()
            key = getattr(ref, "idnum", id(obj))
            if obj.get("/Subtype") == "/Image":
                found.add(key)
            elif obj.get("/Subtype") == "/Form" and key not in seen_forms:
                seen_forms.add(key)
                walk(obj.get("/Resources"))

    for page in pypdf.PdfReader(str(pdf)).pages:
        walk(page.get("/Resources"))
    return found


def test_every_included_figure_exists_and_is_embedded(tools, built):
    _, pypdf = tools
    pdf, _ = built
    figures = included_figures()
    required = {"cifar_weights_lateral.png", "lm_map_crop.png", "topography_cifar_annealed.png",
                "topography_tradeoff.png", "foundations_oja_sanger.png", "pca_convergence.png"}
    assert required <= {Path(f).name for f in figures}
    missing = [f for f in figures if not (REPO / f.lstrip("/")).is_file()]
    assert not missing, f"figures included by the paper but absent: {missing}"
    assert len(embedded_images(pypdf, pdf)) == len(figures)


# ---------------------------------------------------------------------------------------------
# (c) the numbers are read at build time, not typed in

def copy_root(tmp_path: Path) -> Path:
    """A tree laid out as the repository (paper/, results/, figures/) whose results a test may change."""
    root = tmp_path / "root"
    shutil.copytree(PAPER_DIR, root / "paper", ignore=shutil.ignore_patterns("*.pdf"))
    (root / "results").mkdir()
    for p in (REPO / "results").glob("0*.json"):
        shutil.copy2(p, root / "results" / p.name)
    (root / "figures").mkdir()
    for f in included_figures():
        shutil.copy2(REPO / f.lstrip("/"), root / "figures" / Path(f).name)
    return root


def test_a_changed_result_changes_the_paper(tools, built, tmp_path):
    paper, pypdf = tools
    _, committed_text = built
    root = copy_root(tmp_path)

    path = root / "results" / "05_lm_softhebb.json"
    data = json.loads(path.read_text())
    entry = data["results"]["runs"]["lateral support"]
    before = iv(entry, "topographic_error")
    entry["mean"]["topographic_error"] = 0.123456
    after = iv(entry, "topographic_error")
    path.write_text(json.dumps(data))

    out = paper.build(tmp_path / "changed.pdf", root=root)
    text = text_of(pypdf, out)
    assert before in committed_text and before not in text
    assert after in text and after not in committed_text


def test_a_missing_metric_or_an_impossible_out_fails_naming_it(tools, tmp_path, capsys):
    """Issue 26: a results JSON missing a metric built with exit 0 and printed "–" in the abstract; an
    unwritable --out was reported with a temp file's name."""
    paper, _ = tools
    root = tmp_path / "root"
    shutil.copytree(PAPER_DIR, root / "paper", ignore=shutil.ignore_patterns("*.pdf"))
    shutil.copytree(REPO / "results", root / "results", ignore=shutil.ignore_patterns("*.html", "*.ipynb", "*.csv"))
    (root / "figures").mkdir()
    for f in included_figures():
        shutil.copy2(REPO / f.lstrip("/"), root / "figures" / Path(f).name)
    path = root / "results" / "05_lm_softhebb.json"
    data = json.loads(path.read_text())
    del data["results"]["runs"]["lateral support"]["mean"]["topographic_error"]
    path.write_text(json.dumps(data))
    assert paper.main(["--out", str(tmp_path / "p.pdf"), "--root", str(root)]) == 1
    assert "the results have no metric topographic_error" in capsys.readouterr().err
    assert not (tmp_path / "p.pdf").exists()

    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out, says in ((blocker / "p.pdf", f"--out {blocker / 'p.pdf'}: {blocker} is a file"), (tmp_path, "not a folder")):
        assert paper.main(["--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert says in err and ".tmp" not in err
