"""Issue 28: the paper as a workshop reviewer reads it. The reproduced work and every method named are
cited; a related-work and a discussion section; Eq. (8) divides the whole update; the title is not
justified; the limitations and the discussion cannot contradict a table (generated from the goals'
verdicts and the intervals); Table 5 speaks words, not code; seeds that disagree are printed one by one.

Builds the PDF with hebb_utils.report.paper into tmp_path and reads it with pypdf (skips without typst and
pypdf, fails under CI=true, as tests/test_paper.py)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from test_paper import PAPER_DIR, REPO, copy_root, text_of, tools  # noqa: F401  (tools is a fixture)


@pytest.fixture(scope="module")
def paper_text(tools, tmp_path_factory):  # noqa: F811
    paper, pypdf = tools
    out = paper.build(tmp_path_factory.mktemp("review") / "paper.pdf", root=REPO)
    return text_of(pypdf, out)


def edit(root: Path, name: str, change) -> None:
    path = root / "results" / name
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def section(text: str, start: str, end: str) -> str:
    i = text.index(start)
    return text[i:text.index(end, i)]


def references(text: str) -> dict[int, str]:
    """The bibliography: number -> entry text."""
    refs = text[text.rindex("References"):]
    parts = re.split(r"\[(\d+)\] ", refs)[1:]
    return {int(n): body for n, body in zip(parts[::2], parts[1::2])}


# ---------------------------------------------------------------------------------------------
# citations

def test_the_reproduced_work_is_cited_wherever_the_paper_says_published_or_original(paper_text):
    refs = references(paper_text)
    number = next(n for n, body in refs.items() if "github.com/thexuanphuc/OJa" in body)
    body = paper_text[:paper_text.rindex("References")]
    sentences = [s for s in re.split(r"(?<=[.;])\s+(?=[A-Z*(])", body) if re.search(r"\b(published|original)\b", s)]
    assert len(sentences) >= 6
    uncited = [s for s in sentences if not re.search(rf"\[(\d+\], )*{number}\]|\[{number}\]", s)]
    assert not uncited, f"sentences naming the published/original work without citing it [{number}]: {uncited}"


def test_every_reference_is_cited_and_every_method_named_is_cited(paper_text):
    import yaml

    keys = yaml.safe_load((PAPER_DIR / "refs.yml").read_text())
    refs = references(paper_text)
    assert len(refs) == len(keys), "a refs.yml entry is not cited (Typst lists only cited entries)"
    for name in ("OJa", "scikit-learn", "SAELens", "MiniSom", "Oja", "Sanger", "SoftHebb", "Kohonen",
                 "Sparse autoencoders find", "Scaling and evaluating", "BatchTopK", "JumpReLU", "matching pursuit",
                 "Földiák", "Olshausen", "Rozell", "Zylberberg", "Pehlevan", "Topographic independent", "TopoLM",
                 "TopoNets", "information-maximization", "Fast and robust", "organization of behavior", "PyTorch"):
        assert any(name.lower() in body.lower() for body in refs.values()), f"no reference for {name}"
    cited = r"(?: \([^)]*\))? ?\[\d+\]"  # "Sanger’s rule (Generalized Hebbian Algorithm) [8]"
    for phrase in ("Plain Hebb", "Oja’s rule", "Sanger’s rule", "SoftHebb", "scikit-learn’s", "FastICA", "MiniSom",
                   "SAELens", "TopK", "BatchTopK", "JumpReLU", "MatchingPursuit", "Hebbian matching pursuit",
                   "Kohonen’s self-organising maps", "topographic ICA"):
        assert re.search(re.escape(phrase) + cited, paper_text, re.I), f"{phrase!r} is never followed by a citation"


def test_related_work_and_discussion_sections(paper_text):
    related = section(paper_text, "Related work", "Methods")
    for topic in ("Sparse autoencoders.", "Local and Hebbian sparse coding.", "Topographic maps and models."):
        assert topic in related
    assert len(re.findall(r"\[\d+\]", related)) >= 15
    discussion = section(paper_text, "Discussion", "Limitations")
    assert "was not measured" in discussion


# ---------------------------------------------------------------------------------------------
# typesetting (the Typst source: what the PDF's text cannot show)

def test_eq_8_divides_the_whole_update_and_the_title_is_not_justified():
    source = (PAPER_DIR / "paper.typ").read_text()
    assert '"lr" dot (Delta W) / (' in source
    assert not re.search(r"[^(]Delta W\s*/", source), "a fraction over W alone: bracket (Delta W)"
    title = source[source.index("#align(center)["):source.index("#v(0.6em)")]
    assert "#set par(justify: false)" in title


# ---------------------------------------------------------------------------------------------
# claims that follow the numbers

NUM = r"(-?\d+\.\d+)"
CLAIM = re.compile(r"(lower than|higher than|indistinguishable from)[^()]{0,80}\(" + NUM + r" \[" + NUM + ", " + NUM
                   + r"\](?: \(seeds [^)]*\))? against " + NUM + r" \[" + NUM + ", " + NUM + r"\]")


def claims(text: str) -> list[tuple[str, float, float, float, float]]:
    return [(m.group(1), float(m.group(3)), float(m.group(4)), float(m.group(6)), float(m.group(7)))
            for m in CLAIM.finditer(text)]


def wrong_claims(text: str) -> list:
    """Comparisons whose word does not follow from the intervals printed with them."""
    out = []
    for word, alo, ahi, blo, bhi in claims(text):
        right = "lower than" if ahi < blo else "higher than" if alo > bhi else "indistinguishable from"
        if word != right:
            out.append((word, alo, ahi, blo, bhi))
    return out


def test_the_discussion_and_limitations_follow_the_tables(paper_text):
    generated = section(paper_text, "Discussion", "References")
    found = claims(generated)
    assert len(found) >= 5
    assert not wrong_claims(generated)
    # no free-hand verdict: a method "did not reach" another only through compare()'s words and the numbers
    for phrase in ("did not reach", "falls short", "outperform", "better than", "worse than", "beats"):
        assert phrase not in generated, phrase
    goals = json.loads((REPO / "results" / "07_dictionaries.json").read_text())["results"]["goals"]
    limitations = section(paper_text, "Limitations", "References")
    for g in goals:
        name = g["goal"].split(":")[0]
        named = re.search(rf"(?<![\w]){re.escape(name)} \(", limitations) is not None
        assert named == (not g["met"]), f"{name}: met={g['met']} but the limitations {'name' if named else 'omit'} it"


def test_a_changed_result_changes_the_limitations_word_and_goals(tools, tmp_path):  # noqa: F811
    """The issue's defect: "SoftHebb did not reach the best SAE" while the table had it above. Here the fixed
    support's probe is set below the annealed one's, and a missed goal is set met: the limitations follow."""
    paper, pypdf = tools
    root = copy_root(tmp_path)

    def probe_below(data):
        fixed = data["results"]["runs"]["cifar / softhebb fixed support"]
        fixed["mean"]["probe_triangle_test_acc"] = 0.2
        fixed["ci95"]["probe_triangle_test_acc"] = [0.19, 0.21]

    def first_missed_met(data):
        goal = next(g for g in data["results"]["goals"] if not g["met"])
        goal["met"] = True

    edit(root, "06_topography.json", probe_below)
    edit(root, "07_dictionaries.json", first_missed_met)
    text = text_of(pypdf, paper.build(tmp_path / "changed.pdf", root=root))
    limitations = section(text, "Limitations", "References")
    assert "relu probe is higher than the fixed support’s" in limitations
    assert not wrong_claims(section(text, "Discussion", "References"))
    goals = json.loads((root / "results" / "07_dictionaries.json").read_text())["results"]["goals"]
    missed = [g["goal"].split(":")[0] for g in goals if not g["met"]]
    assert f"missed {len(missed)} of its {len(goals)} goals" in limitations
    assert not re.search(r"\bG1 \(", limitations)


# ---------------------------------------------------------------------------------------------
# Table 5 in words; seeds that disagree

def test_the_goals_table_prints_words_not_code_identifiers(paper_text):
    # the goals' table (Table 5 when the issue was filed; numbered after notebook 07's matched-L0 table now)
    number = re.search(r"Table (\d+): Notebook 07.s goals", paper_text).group(1)
    table = section(paper_text, "goal verdict evidence", f"Table {number}")
    for code in ("sae ", ">=", "<=", "rho", "f1_score", "_", "k=", "softhebb", "minisom"):
        assert code not in table, f"the goals' table prints {code!r}"
    assert "MatchingPursuit SAE" in table and "≥" in table
    matched = section(paper_text, "data (samples) metric", f"Table {int(number) - 1}")  # the matched-L0 table
    for code in ("sae ", "_", "softhebb"):
        assert code not in matched, f"the matched-L0 table prints {code!r}"


def test_seeds_that_disagree_are_printed_one_by_one(tools, tmp_path, paper_text):  # noqa: F811
    """An interval over seeds of which one succeeds and two fail (0.999, 0.273, 0.274) is printed with the
    seeds, as the README prints it (measure/seeds.py's disagreeing_seeds), and the seeds that agree are not."""
    paper, pypdf = tools
    root = copy_root(tmp_path)

    def split(data):
        run = data["results"]["runs"]["cifar / minisom"]
        values = [0.999, 0.273, 0.274]
        for row, v in zip(run["seeds"], values):
            row["distance_rho"] = v
        run["mean"]["distance_rho"] = sum(values) / 3
        run["ci95"]["distance_rho"] = [-0.526, 1.0]

    edit(root, "06_topography.json", split)
    text = text_of(pypdf, paper.build(tmp_path / "split.pdf", root=root))
    printed = "0.515 [-0.526, 1.000] (seeds 0.999, 0.273, 0.274)"
    assert text.count(printed) == 2  # in the text of Section 5.4 and in Table 4
    assert text.count("(seeds ") == 2 + paper_text.count("(seeds ")


def test_the_papers_intervals_follow_the_readmes_rules(tools, tmp_path):  # noqa: F811
    """lib.typ's iv prints an interval as measure/seeds.py's format_mean_ci: a permutation p-value's interval
    starts at 1/(1 + 100 shuffles), not 0, and seeds that disagree are printed. (The paper prints no p-value
    today: checked on a small document that imports lib.typ as paper.typ does.)"""
    paper, pypdf = tools
    root = copy_root(tmp_path)
    (root / "paper" / "paper.typ").write_text('''#import "lib.typ": *
#let p = (mean: (p_value: 0.0514851), ci95: (p_value: (-0.064, 0.167)), n_by_metric: (p_value: 5),
  seeds: ((p_value: 22 / 101), (p_value: 1 / 101), (p_value: 1 / 101), (p_value: 1 / 101), (p_value: 1 / 101)))
#let few = (mean: (p_value: 0.25), ci95: (p_value: (0.0, 0.6)), n_by_metric: (p_value: 2),
  seeds: ((p_value: 1 / 6), (p_value: 2 / 6)))
#let m = (mean: (mcc: 0.515333), ci95: (mcc: (-0.526, 1.0)), n_by_metric: (mcc: 3),
  seeds: ((mcc: 0.999), (mcc: 0.273), (mcc: 0.274)))
A #iv(p, "p_value") B #iv(few, "p_value") C #iv(m, "mcc") D
''')
    text = text_of(pypdf, paper.build(tmp_path / "t.pdf", root=root))
    from hebb_utils.measure.seeds import format_mean_ci

    readme_p = format_mean_ci({"mean": {"p_value": 0.0514851}, "ci95": {"p_value": [-0.064, 0.167]},
                               "n_by_metric": {"p_value": 5},
                               "seeds": [{"p_value": v} for v in (22 / 101, 1 / 101, 1 / 101, 1 / 101, 1 / 101)]},
                              "p_value")
    assert readme_p == "0.051 [0.010, 0.167]"
    # 5 shuffles' p-values (a smoke run) are not cut at 1/101: no floor is known for them
    assert f"A {readme_p} B 0.250 [0.000, 0.600] C 0.515 [-0.526, 1.000] (seeds 0.999, 0.273, 0.274) D" in text
