"""The README and its generated tables: GitHub-conformant Markdown, numbers from the JSON, no
machine paths; the helpers behind them."""
import json
import math
import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from hebb_utils.io import portable
from hebb_utils.measure.seeds import METRIC_BOUNDS, format_interval, format_number, summarise_seeds
from hebb_utils.report.tables import BLOCKS, MAX_COLUMNS, contrast, format_mean_ci, results_tables

ROOT = Path(__file__).resolve().parents[1]


def _tables(markdown: str):
    """(header cell count, [cell count of each body row]) per table, as GitHub's parser sees them."""
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    tables, cells, row_cells = [], None, 0
    for t in tokens:
        if t.type == "table_open":
            cells = []
        elif t.type == "tr_open":
            row_cells = 0
        elif t.type in ("th_open", "td_open"):
            row_cells += 1
        elif t.type == "tr_close":
            cells.append(row_cells)
        elif t.type == "table_close":
            tables.append((cells[0], cells[1:]))
    return tables


def test_markdown_parser_sees_unescaped_pipes():  # the check below can fail
    bad = "| a | b |\n|---|---|\n| Oja |cos| | 0.9 |\n"
    good = "| a | b |\n|---|---|\n| Oja \\|cos\\| | 0.9 |\n"
    assert _tables(bad) == [(2, [2])]  # GitHub drops the extra cells: 0.9 is lost
    html = MarkdownIt("commonmark").enable("table").render(bad)
    assert "0.9" not in html
    assert "0.9" in MarkdownIt("commonmark").enable("table").render(good)


def test_readme_tables_keep_every_cell():
    tables = _tables((ROOT / "README.md").read_text())
    assert len(tables) >= 5
    for header, rows in tables:  # a body row with more cells than its header loses them on GitHub
        assert rows and all(n == header for n in rows), f"a README table has rows of {rows} cells, its header {header}"


def test_generated_tables_match_committed_json_and_escape_pipes():
    generated = results_tables(ROOT / "results")
    assert "\\|cos\\|" in generated
    for header, rows in _tables(generated):
        assert rows and all(n == header for n in rows)
    readme = (ROOT / "README.md").read_text()
    for name, make in BLOCKS.items():
        block = readme.split(f"<!-- {name}:start -->\n", 1)[1].split(f"\n<!-- {name}:end -->", 1)[0]
        assert block == make(ROOT / "results"), f"README.md's {name} is stale: run `python -m hebb_utils.report`"
    for name, what in (("04_cifar_softhebb", "CIFAR-10"), ("05_lm_softhebb", "LM-token")):
        config = json.loads((ROOT / "results" / f"{name}.json").read_text())["config"]
        assert f"{what} SoftHebb, {config['rows']} x {config['cols']} grid" in generated  # grid from the results


def test_readme_tables_are_narrow_and_intervals_possible():
    """At most 7 columns (1000 px; tests/test_browser_reader.py measures it), no '-0.000', and every
    interval of a committed result inside its metric's bounds (measure.seeds.METRIC_BOUNDS)."""
    readme = (ROOT / "README.md").read_text()
    assert all(header <= MAX_COLUMNS for header, _ in _tables(readme))
    assert not re.search(r"-0\.0+(?![0-9])", readme), "a '-0.000' in the README"
    out_of_bounds = []
    for path in sorted((ROOT / "results").glob("0*.json")):
        for run in _summaries(json.loads(path.read_text())):
            for metric, (low, high) in run["ci95"].items():
                lo_bound, hi_bound = METRIC_BOUNDS.get(metric, (-math.inf, math.inf))
                if not lo_bound <= low <= run["mean"][metric] <= high <= hi_bound:
                    out_of_bounds.append((path.name, metric, low, high))
    assert not out_of_bounds, out_of_bounds[:10]


def test_format_never_prints_negative_zero():
    assert format_number(-0.0004) == "0.000" and format_number(-0.0005) == "-0.001" and format_number(-0.0) == "0.000"
    assert format_interval(-0.0001, -0.0004, 0.0002) == "0.000 [0.000, 0.000]"
    assert format_interval(0.5, 0.25, 0.75, digits=2, sep="<br>") == "0.50<br>[0.25, 0.75]"


def _summaries(doc):
    """Every summarise_seeds entry in a results document."""
    if isinstance(doc, dict):
        if "ci95" in doc and "mean" in doc:
            yield doc
        else:
            for value in doc.values():
                yield from _summaries(value)
    elif isinstance(doc, list):
        for value in doc:
            yield from _summaries(value)


def test_committed_outputs_hold_no_machine_paths():
    pattern = re.compile(r"(/work/|/tmp/|/home/|/root/|site-packages)[A-Za-z0-9_.-]*")
    files = [ROOT / "README.md", *sorted((ROOT / "results").glob("0*")), *sorted((ROOT / "figures").glob("*.html")),
             *sorted((ROOT / "figures").glob("*.csv"))]
    found = {f.name: sorted(set(pattern.findall(f.read_text(errors="ignore")))) for f in files}
    assert not {k: v for k, v in found.items() if v}


def test_committed_notebooks_have_no_progress_bars_or_warnings():
    for path in sorted((ROOT / "results").glob("0*.ipynb")):
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            for out in cell.get("outputs", []):
                text = "".join(out.get("text", ""))
                assert out.get("name") != "stderr", f"{path.name}: stderr output {text[:200]!r}"
                assert "application/vnd.jupyter.widget-view+json" not in out.get("data", {}), f"{path.name}: a widget"
                assert not re.search(r"\d+/\d+ \[\d\d:\d\d<", text), f"{path.name}: a progress bar"


def test_every_saved_figure_is_shown_in_its_notebook():
    for path in sorted((ROOT / "results").glob("0*.ipynb")):
        nb = json.loads(path.read_text())
        code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
        images = [o for c in nb["cells"] for o in c.get("outputs", [])
                  if "image/png" in o.get("data", {}) or "data:image/" in "".join(o.get("data", {}).get("text/html", ""))]
        saves = code.count("save_figure(") + code.count("animate_weight_grid(")
        if saves:
            assert images, f"{path.name} saves figures but shows none"
        assert "## What this shows" in "".join("".join(c["source"]) for c in nb["cells"]), path.name


def test_portable_paths(monkeypatch, tmp_path):
    monkeypatch.setenv("HEBB_DATA_MIRROR", str(tmp_path))
    repo = str(ROOT)
    obj = {"a": str(tmp_path / "cifar10"), "b": [f"{repo}/results/x.json", "/opt/venv/lib/python3.11/site-packages/pkg/model"],
           "c": "roneneldan/TinyStories-1M", "d": 3, "e": tmp_path}
    assert portable(obj) == {"a": "$HEBB_DATA_MIRROR/cifar10", "b": ["./results/x.json", "<package pkg>"],
                             "c": "roneneldan/TinyStories-1M", "d": 3, "e": "$HEBB_DATA_MIRROR"}


def test_format_and_contrast():
    a = summarise_seeds([{"m": v} for v in (0.10, 0.11, 0.12)])
    b = summarise_seeds([{"m": v} for v in (0.50, 0.51, 0.52)])
    c = summarise_seeds([{"m": v} for v in (0.09, 0.12, 0.13)])
    assert format_mean_ci(a, "m") == f"0.110 [{a['ci95']['m'][0]:.3f}, {a['ci95']['m'][1]:.3f}]"
    assert format_mean_ci(summarise_seeds([{"m": 0.25}]), "m") == "0.250 (1 seed)"
    assert format_mean_ci(a, "other") == "-" and format_mean_ci({"m": 0.5}, "m") == "0.500"
    assert contrast(a, b, "m") == "lower than" and contrast(b, a, "m") == "higher than"
    assert contrast(a, c, "m") == "indistinguishable from"


def test_topography_tables_read_the_design_the_notebook_writes(tmp_path):
    """Notebook 06 now records which run is which (results.design); the committed JSON predates it and
    gets the same design from its own keys. Either way the README block is the same."""
    from hebb_utils.experiments.topography_goals import design_entry, topography_design

    for p in (ROOT / "results").glob("0*.json"):
        (tmp_path / p.name).write_text(p.read_text())
    doc = json.loads((ROOT / "results" / "06_topography.json").read_text())
    legacy = results_tables(tmp_path)
    res = doc["results"]
    derived = topography_design(res, doc["config"])
    res["design"] = [design_entry(d["key"], d["title"], d["grid"], d["columns"], [d["minisom"], d["fixed"], d["annealed"]],
                                  sweep={name: {} for name in d["sweep"]} if "sweep" in d else None) for d in derived]
    (tmp_path / "06_topography.json").write_text(json.dumps(doc))
    assert results_tables(tmp_path) == legacy
    # renamed runs and grids: the tables follow the design, not built-in labels
    res["runs"] = {name.replace("cifar / ", "images / "): run for name, run in res["runs"].items()}
    images = res["design"][0]
    for role in ("minisom", "fixed", "annealed"):
        images[role] = images[role].replace("cifar / ", "images / ")
    images.update(sweep=[n.replace("cifar / ", "images / ") for n in images["sweep"]], key="images", grid=[5, 90])
    (tmp_path / "06_topography.json").write_text(json.dumps(doc))
    text = results_tables(tmp_path)
    assert "| images / minisom |" in text and "**CIFAR-10, 5 x 90**" in text and "CIFAR-10, 5 x 90, one epoch" in text
    assert "cifar / " not in text


# -----------------------------------------------------------------------------
# metric descriptions (measure/describe.py, beside each metric's function) and the notebooks' sections


def _committed_columns() -> set[str]:
    """Every metric a committed results JSON names as a table column (columns, lm_columns, the design's)."""
    found = set()

    def walk(doc):
        if isinstance(doc, dict):
            for key, value in doc.items():
                if key in ("columns", "lm_columns") and isinstance(value, list):
                    found.update(value)
                else:
                    walk(value)
        elif isinstance(doc, list):
            for value in doc:
                walk(value)

    for path in sorted((ROOT / "results").glob("0*.json")):
        walk(json.loads(path.read_text()))
    return found


def test_every_committed_metric_has_a_description():
    """Each column of the committed results and of the sections' tables, and each metric summarised over
    seeds, is described (label, direction, bounds) beside its function. The fallback, for a metric
    without a description: its JSON name with spaces, no arrow, and no bounds on its interval."""
    from hebb_utils.measure.describe import METRICS
    from hebb_utils.report.markdown import metric_header
    from hebb_utils.report.sections import dictionaries

    columns = _committed_columns() | set(dictionaries.TOY_COLUMNS)
    columns |= {c for cols, _ in dictionaries.DICTIONARY_TABLES.values() for c in cols}
    assert len(columns) > 20
    assert sorted(columns - set(METRICS)) == []
    summarised = {m for p in sorted((ROOT / "results").glob("0*.json"))
                  for run in _summaries(json.loads(p.read_text())) for m in run["mean"]}
    assert sorted(summarised - set(METRICS)) == []
    assert sorted(k for k in summarised if METRICS[k].bounds is None) == []
    assert METRIC_BOUNDS == {k: m.bounds for k, m in METRICS.items() if m.bounds is not None}
    assert metric_header("no_such_metric") == "no such metric" and "no_such_metric" not in METRIC_BOUNDS


def test_metric_bounds_are_the_ones_the_intervals_were_cut_at():
    """METRIC_BOUNDS, now derived from the descriptions, keeps the values it had when written by hand."""
    unit = ("accuracy", "class_chance", "class_purity", "class_purity_weighted", "dead_fraction", "f1_score", "p_value",
            "precision", "probe_test_acc", "probe_train_acc", "probe_triangle_test_acc", "recall", "recovered_share",
            "token_purity", "topographic_error", "topographic_error_4", "topographic_p", "uniqueness")
    signed = ("distance_rho", "null_rho", "neighbour_similarity", "topographic_rho", "topographic_null", "mcc",
              "mcc_signed", "seed_mcc", "mmcs")
    positive = ("dead_latents", "effective_dimension", "eval_seconds", "train_seconds", "cpu_seconds", "samples", "l0",
                "sae_l0", "true_l0",
                "null_rho_std", "reconstruction_error", "shrinkage")
    assert METRIC_BOUNDS == {**{m: (0.0, 1.0) for m in unit}, **{m: (-1.0, 1.0) for m in signed},
                             **{m: (0.0, math.inf) for m in positive}, "explained_variance": (-math.inf, 1.0)}


def test_describe_refuses_duplicates_and_bad_descriptions(monkeypatch):
    from hebb_utils.measure import describe as describe_module
    from hebb_utils.measure.describe import Metric, describe

    with pytest.raises(ValueError, match="already described"):
        describe("mmcs", "another MMCS")  # a key registered by measure/recovery.py
    registry = {}
    monkeypatch.setattr(describe_module, "METRICS", registry)
    metric = describe("test_metric", "test metric", better="lower", bounds=[0, 1], glossary="**test metric**: a test")
    assert registry == {"test_metric": metric} and metric.bounds == (0.0, 1.0)
    with pytest.raises(ValueError, match="already described"):
        describe("test_metric", "test metric")
    for bad in (dict(better="up"), dict(better="Higher"), dict(better=True), dict(bounds=(1, 0)), dict(bounds=(0,)),
                dict(bounds=(0, float("nan"))), dict(bounds="01"), dict(glossary=""), dict(glossary=3)):
        with pytest.raises(ValueError):
            describe("other_metric", "other metric", **bad)
    for key, label in (("", "x"), ("two words", "x"), ("x", ""), ("x", "x ↑"), ("x", "x ↓")):
        with pytest.raises(ValueError):
            Metric(key, label)
    assert list(registry) == ["test_metric"]  # nothing refused was registered
    with pytest.raises(AttributeError):
        metric.label = "changed"  # frozen


def test_column_arrows_come_from_better():
    from hebb_utils.measure.describe import METRICS, Metric
    from hebb_utils.report.markdown import metric_header, number_tables

    assert Metric("a", "a").header == "a" and Metric("a", "a", "higher").header == "a ↑"
    assert Metric("a", "a", "lower").header == "a ↓"
    for key, metric in METRICS.items():
        assert "↑" not in metric.label and "↓" not in metric.label, key
        assert metric_header(key) == {"higher": f"{metric.label} ↑", "lower": f"{metric.label} ↓",
                                      None: metric.label}[metric.better], key
    assert METRICS["topographic_error"].better == "lower" and METRICS["mmcs"].better == "higher"
    table = number_tables("run", {"a": {"topographic_error": 0.1, "mmcs": 0.5, "null_rho": 0.0}},
                          ["topographic_error", "mmcs", "null_rho"], "caption")
    assert "| run | topographic error ↓ | MMCS ↑ | ρ, shuffled grid |" in table
    # the glossary names the metrics by their labels, without the arrows
    generated = results_tables(ROOT / "results")
    assert "**topographic error**: share of inputs" in generated and "**MMCS**: mean over true features" in generated


def test_a_new_notebook_section_needs_no_edit_to_tables(tmp_path, monkeypatch):
    """A notebook's part of the README comes from its section module, registered in SECTIONS: a fake
    notebook 08 appears in the results and the headline without tables.py naming it."""
    from types import SimpleNamespace

    from hebb_utils.report import tables
    from hebb_utils.report.sections import SECTIONS

    source = Path(tables.__file__).read_text()
    assert not re.search(r"\b0\d_[a-z]", source), "tables.py names a notebook"
    for p in (ROOT / "results").glob("0*.json"):
        (tmp_path / p.name).write_text(p.read_text())
    before = results_tables(tmp_path)
    last = max(int(n) for n in re.findall(r"^Table (\d+)\.", before, flags=re.M))
    fake = SimpleNamespace(
        results=lambda res, number: ([f"Table {number}. **The fake notebook**: {res['results']['answer']}", ""], number + 1),
        headline=lambda loaded: [(45, f"**A fake finding**: {loaded['08_fake']['results']['answer']}")])
    monkeypatch.setitem(SECTIONS, "08_fake", fake)
    assert results_tables(tmp_path) == before  # registered, but its notebook has not run
    (tmp_path / "08_fake.json").write_text(json.dumps({"notebook": "08_fake", "results": {"answer": 42}}))
    after = results_tables(tmp_path)
    assert f"Table {last + 1}. **The fake notebook**: 42" in after
    # after every notebook's tables, before the closing sentences and the machine
    assert after.index("**Goals of notebook 07**") < after.index("**The fake notebook**") < after.index("**What the seeds say**")
    head = tables.headline(tmp_path)
    findings = re.findall(r"^\d+\. \*\*(.+?)\*\*", head, flags=re.M)
    assert findings[-2:] == ["A fake finding", "The Hebbian PCA rules are exact"]  # rank 45: before foundations' 50


def test_the_first_finding_is_the_figure_above_it_and_the_caption_reads_the_map():
    from hebb_utils.report import tables

    # the headline figure is the annealed map of words: the finding right under it gives its numbers
    head = tables.headline(ROOT / "results")
    findings = re.findall(r"^\d+\. \*\*(.+?)\*\*", head, flags=re.M)
    assert findings[0].startswith("Annealed, the support gives a map") and "lm_map_crop.png" in tables.HEADLINE_FIGURE
    assert "a leading · is a space" in head  # the map's names read " the" as "·the"
    assert "MMCS (mean best cosine of a true feature)" in head  # defined where it first appears


def test_the_long_ladder_is_a_table_of_its_own_only_when_it_has_run(tmp_path):
    # `make ladder` writes results/ladder/07_dictionaries.json; the README reads it beside notebook 07's
    for p in (ROOT / "results").glob("0*.json"):
        (tmp_path / p.name).write_text(p.read_text())
    assert "The long ladder" not in results_tables(tmp_path)
    long_run = json.loads((ROOT / "results" / "07_dictionaries.json").read_text())
    main = long_run["results"]["runs"]["toy L0 5 @ 50k"]
    long_run["results"]["runs"]["toy L0 5 @ 1000k"] = main
    long_run["config"]["ladder_rungs"] = [50000, 1000000]
    (tmp_path / "ladder").mkdir()
    (tmp_path / "ladder" / "07_dictionaries.json").write_text(json.dumps(long_run))
    tables = results_tables(tmp_path)
    assert "**The long ladder** (`make ladder`" in tables and "not part of `make reproduce`" in tables
    best = max((m for m in main if m.startswith("sae")), key=lambda m: main[m]["mean"]["mmcs"])
    row = (f"| Sharkey's toy, L0 5 (MMCS) | 1M | {format_mean_ci(main['pursuit'], 'mmcs')} | "
           f"{main['pursuit']['mean']['cpu_seconds']:.1f} | {best} | {format_mean_ci(main[best], 'mmcs')} |")
    assert row in tables
