"""Notebook 06's part of the README: MiniSom against SoftHebb with fixed and annealed lateral support,
one table per data set (in the order of the design the notebook writes), its goals and comparisons
(experiments/topography_goals.py), and two headline findings."""
from __future__ import annotations

from ...experiments.topography_goals import topography_design, topography_findings
from ...measure.seeds import contrast, format_mean_ci
from ..markdown import number_tables

__all__ = ["results", "headline"]

NOTEBOOK = "06_topography"


def results(res: dict, number: int) -> tuple[list[str], int]:
    """One table per data set of the design, then the goals and comparisons (topography_findings)."""
    runs, design = res["results"]["runs"], topography_design(res["results"], res["config"])
    out = ["**Topography: MiniSom against SoftHebb with fixed and annealed lateral support** (notebook 06; "
           f"{res['source']['lm'].get('label', '')}); train time is one epoch on this machine (MiniSom on LM "
           "tokens: one pass over its subsample). Sweep: [`figures/topography_sweep.png`](figures/topography_sweep.png); "
           "trade-off: [`figures/topography_tradeoff.png`](figures/topography_tradeoff.png); maps: "
           "[`figures/topography_cifar_minisom.png`](figures/topography_cifar_minisom.png), "
           "[`figures/topography_cifar_annealed.png`](figures/topography_cifar_annealed.png).", ""]
    # one table per data set: the baselines, then the annealed run, then the sweep around it (the
    # JSON's keys are sorted, so the order comes from the design)
    for d in design:
        order = [n for n in (d["minisom"], d["fixed"], d["annealed"], *d.get("sweep", [])) if n in runs]
        order += [n for n in runs if n.startswith(f"{d['key']} / ") and n not in order]  # a run the design omits
        out += number_tables("run", {n: runs[n] for n in order}, d["columns"],
                             f"Table {number}. **{d['title']}, {d['grid'][0]} x {d['grid'][1]}**")
        number += 1
    out += [topography_findings(runs, design), ""]
    return out, number


def headline(loaded: dict) -> list[tuple[int, str]]:
    """The annealed map against MiniSom (order and speed), and what the order costs the probe."""
    topo = loaded.get(NOTEBOOK)
    if not topo:
        return []
    ci = lambda run, m: format_mean_ci(run, m)  # noqa: E731
    runs, (images, *rest) = topo["results"]["runs"], topography_design(topo["results"], topo["config"])
    ann, som, fixed = (runs[images[k]] for k in ("annealed", "minisom", "fixed"))
    versus = [(images["title"], ann, som)]
    if rest and all(rest[0][k] in runs for k in ("annealed", "minisom")):
        versus.append((rest[0]["title"], runs[rest[0]["annealed"]], runs[rest[0]["minisom"]]))
    words = [contrast(a, m, "topographic_error") for _, a, m in versus]
    level = ("as topographic as a Kohonen map" if all(w != "higher than" for w in words)
             else "nearly as topographic as a Kohonen map")
    speed = som["mean"]["train_seconds"] / ann["mean"]["train_seconds"]
    # rank 5: first, right under the headline figure, which is this annealed map (its numbers under its picture)
    out = [(5, f"**Annealed, the support gives a map {level}, {speed:.0f}x faster than MiniSom.** Topographic error "
                + "; ".join(f"{title} {ci(a, 'topographic_error')}, {w} MiniSom's {ci(m, 'topographic_error')}"
                            for (title, a, m), w in zip(versus, words))
                + f" ({images['title']}: {ann['mean']['train_seconds']:.1f} s against {som['mean']['train_seconds']:.0f} s "
                  "per epoch).")]
    if "probe_triangle_test_acc" in ann.get("mean", {}):
        out.append((40, f"**Order costs features.** A linear probe on the annealed map's {images['title']} responses "
                        f"reaches {ci(ann, 'probe_triangle_test_acc')}, {contrast(ann, fixed, 'probe_triangle_test_acc')} "
                        f"the fixed support's {ci(fixed, 'probe_triangle_test_acc')}."))
    return out
