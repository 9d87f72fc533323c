"""The goals of notebook 07, set before measuring, and their verdicts from the seeds' intervals.

Each function takes the summarised runs (`measure.seeds.summarise_seeds`: mean, ci95 = [low, high],
per-seed values) and returns {"goal", "met", "evidence"}: `met` is True only when the whole 95%
interval is on the goal's side (a bound "above" another run: the two intervals do not overlap), so a
goal is not called met on a lucky seed.
"""
from __future__ import annotations

from ..measure.seeds import format_interval, format_number

__all__ = ["interval", "above", "recovery_goal", "benchmark_goal", "topography_goal", "real_goal", "ladder_goal",
           "every_seed_goal", "time_goal", "at_least_goal", "seeds_above_goal", "fidelity_goal"]


def interval(run: dict, metric: str) -> tuple[float, float, float]:
    """(mean, low, high) of `metric` over the seeds of a summarised run."""
    low, high = run["ci95"][metric]
    return run["mean"][metric], low, high


def _fmt(run: dict, metric: str) -> str:
    return format_interval(*interval(run, metric))


def above(run_a: dict, run_b: dict, metric: str) -> bool:
    """Whether run_a's interval of `metric` lies wholly above run_b's."""
    return interval(run_a, metric)[1] > interval(run_b, metric)[2]


def recovery_goal(runs: dict, softhebb: str, saes: list[str], dataset: str, threshold: float = 0.95,
                  time_ratio: float = 0.1) -> dict:
    """SoftHebb's MMCS >= threshold, above the best SAE's, in <= time_ratio of that SAE's train time."""
    best = max(saes, key=lambda n: runs[n]["mean"]["mmcs"])
    ours, sae = runs[softhebb], runs[best]
    ratio = ours["mean"]["train_seconds"] / sae["mean"]["train_seconds"]
    met = interval(ours, "mmcs")[1] >= threshold and above(ours, sae, "mmcs") and ratio <= time_ratio
    return {"goal": f"{dataset}: SoftHebb MMCS >= {threshold}, above the best SAE, in <= {time_ratio:g} of its time",
            "met": bool(met),
            "evidence": f"{softhebb} {_fmt(ours, 'mmcs')} against {best} {_fmt(sae, 'mmcs')}; "
                        f"train time {ratio:.2f} of the SAE's"}


def benchmark_goal(runs: dict, softhebb: list[str], saes: list[str], dataset: str) -> dict:
    """The best SoftHebb code reaches the best SAE's MCC and F1: its mean at or above the SAE's, or the
    SAE's interval not wholly above it and its mean inside the SAE's interval."""
    out = []
    met = True
    for metric in ("mcc", "f1_score"):
        ours = max(softhebb, key=lambda n: runs[n]["mean"][metric])
        sae = max(saes, key=lambda n: runs[n]["mean"][metric])
        mean, _, _ = interval(runs[ours], metric)
        sae_mean, sae_low, _ = interval(runs[sae], metric)
        met &= mean >= sae_mean or (not above(runs[sae], runs[ours], metric) and mean >= sae_low)
        out.append(f"{metric}: {ours} {_fmt(runs[ours], metric)} against {sae} {_fmt(runs[sae], metric)}")
    return {"goal": f"{dataset}: SoftHebb reaches the best SAE's MCC and F1", "met": bool(met),
            "evidence": "; ".join(out)}


def topography_goal(runs: dict, annealed: str, sae: str, rho: float = 0.7, recovery: float = 0.9) -> dict:
    """The map `annealed` (a method's name in runs: the annealed SoftHebb map, or Hebbian pursuit laid out
    by co-activation) keeps the true geometry (rank correlation >= rho) and recovers (MMCS >= recovery),
    while the SAE's dictionary sits at the null (its interval holds its null's mean)."""
    ours, theirs = runs[annealed], runs[sae]
    _, sae_low, sae_high = interval(theirs, "topographic_rho")
    null = theirs["mean"]["topographic_null"]
    met = (interval(ours, "topographic_rho")[1] >= rho and interval(ours, "mmcs")[1] >= recovery
           and sae_low <= null <= sae_high)
    return {"goal": f"G5: topographic ground truth: {annealed} rho >= {rho} and MMCS >= {recovery}; the SAE at the null",
            "met": bool(met),
            "evidence": f"{annealed}: rho {_fmt(ours, 'topographic_rho')}, MMCS {_fmt(ours, 'mmcs')}; "
                        f"{sae}: rho {_fmt(theirs, 'topographic_rho')} (null {format_number(null)})"}


def real_goal(runs: dict, softhebb: str, sae: str, ev_gap: float = 0.1) -> dict:
    """On real activations: SoftHebb's explained variance within ev_gap (relative) of the TopK k=1 SAE's,
    and two seeds of SoftHebb agree (MCC) at least as well as two of the SAE."""
    ours, theirs = runs[softhebb], runs[sae]
    ev_ours, ev_sae = ours["mean"]["explained_variance"], theirs["mean"]["explained_variance"]
    within = ev_ours >= (1 - ev_gap) * ev_sae
    agree = ours["mean"]["seed_mcc"] >= theirs["mean"]["seed_mcc"]
    return {"goal": f"real activations: SoftHebb's EV within {ev_gap:.0%} of the TopK k=1 SAE's, seeds agree as well",
            "met": bool(within and agree),
            "evidence": f"EV {ev_ours:.3f} against {ev_sae:.3f}; two seeds' MCC {ours['mean']['seed_mcc']:.3f} "
                        f"against {theirs['mean']['seed_mcc']:.3f}"}


# ------------------------------------------------------------------------------------------------
# the goals of the fair protocol (issue 27: G1-G7), on experiments.ladder's outputs
# (ladder["runs"][str(rung)][method] = a summarised run)

def _largest(ladder: dict) -> str:
    return max(ladder["runs"], key=int)


def ladder_goal(ladders: dict, ours: str, saes: list[str], threshold: float = 0.95, metric: str = "mmcs") -> dict:
    """G1: on every data set of ladders {name: ladder}, ours' `metric` interval >= threshold at the largest
    rung, and wholly above every SAE's at every rung."""
    met, evidence = True, []
    for name, lad in ladders.items():
        top = lad["runs"][_largest(lad)]
        met &= interval(top[ours], metric)[1] >= threshold
        misses = [f"{sae} at {int(n) // 1000}k" for n, runs in lad["runs"].items() for sae in saes
                  if not above(runs[ours], runs[sae], metric)]
        met &= not misses
        best = max(saes, key=lambda s: top[s]["mean"][metric])
        evidence.append(f"{name} at {int(_largest(lad)) // 1000}k: {ours} {_fmt(top[ours], metric)}, best SAE {best} "
                        f"{_fmt(top[best], metric)}" + (f" (not above: {', '.join(misses)})" if misses else ""))
    return {"goal": f"G1: {ours}'s {metric.upper()} >= {threshold} at the largest rung and above every tuned SAE's at "
                    "every rung", "met": bool(met), "evidence": "; ".join(evidence)}


def every_seed_goal(runs: dict, hebbian: list[str], saes: list[str], dataset: str, threshold: float = 0.95,
                    metric: str = "mcc") -> dict:
    """G2: every seed of the best Hebbian method (by mean) at `metric` >= threshold, its interval above the
    best SAE's."""
    ours = max(hebbian, key=lambda n: runs[n]["mean"][metric])
    sae = max(saes, key=lambda n: runs[n]["mean"][metric])
    per_seed = [row[metric] for row in runs[ours]["seeds"]]
    met = min(per_seed) >= threshold and above(runs[ours], runs[sae], metric)
    return {"goal": f"G2: {dataset}: every seed of the best Hebbian method at {metric.upper()} >= {threshold}, above "
                    "the best SAE", "met": bool(met),
            "evidence": f"{ours} per seed {', '.join(f'{v:.3f}' for v in per_seed)} ({_fmt(runs[ours], metric)}); "
                        f"best SAE {sae} {_fmt(runs[sae], metric)}"}


def time_goal(ladder: dict, ours: str, saes: list[str], ratio: float = 1 / 3, metric: str = "mmcs") -> dict:
    """G3: ours reaches the best SAE's final `metric` (its mean at the largest rung) at a rung whose CPU
    seconds are at most `ratio` of that SAE's at the largest rung."""
    top = ladder["runs"][_largest(ladder)]
    sae = max(saes, key=lambda s: top[s]["mean"][metric])
    target, sae_seconds = top[sae]["mean"][metric], top[sae]["mean"]["cpu_seconds"]
    reached = [n for n in sorted(ladder["runs"], key=int) if ladder["runs"][n][ours]["mean"][metric] >= target]
    if reached:
        n = reached[0]
        seconds = ladder["runs"][n][ours]["mean"]["cpu_seconds"]
        met, how = seconds <= ratio * sae_seconds, (f"{ours} reaches it at {int(n) // 1000}k samples in {seconds:.1f} "
                                                      f"CPU s ({seconds / sae_seconds:.2f} of the SAE's)")
    else:
        met, how = False, f"{ours} does not reach it at any rung"
    return {"goal": f"G3: the best SAE's final {metric.upper()} reached in <= {ratio:.2g} of its CPU seconds",
            "met": bool(met), "evidence": f"{sae}: {metric.upper()} {target:.3f} in {sae_seconds:.1f} CPU s at "
                                          f"{int(_largest(ladder)) // 1000}k; {how}"}


def at_least_goal(runs: dict, ours: str, saes: list[str], dataset: str, metric: str = "mcc") -> dict:
    """G4: ours' mean `metric` at least every SAE's mean, and no SAE's interval wholly above ours'."""
    best = max(saes, key=lambda s: runs[s]["mean"][metric])
    met = runs[ours]["mean"][metric] >= runs[best]["mean"][metric] and not above(runs[best], runs[ours], metric)
    return {"goal": f"G4: {dataset}: {ours}'s {metric.upper()} at least every SAE's", "met": bool(met),
            "evidence": f"{ours} {_fmt(runs[ours], metric)} against {best} {_fmt(runs[best], metric)}"}


def seeds_above_goal(ladder: dict, ours: str, saes: list[str], dataset: str, metric: str = "mmcs") -> dict:
    """G7: at every rung, every seed of ours above the best SAE's interval."""
    met, evidence = True, []
    for n, runs in sorted(ladder["runs"].items(), key=lambda item: int(item[0])):
        sae = max(saes, key=lambda s: runs[s]["mean"][metric])
        lowest = min(row[metric] for row in runs[ours]["seeds"])
        met &= lowest > interval(runs[sae], metric)[2]
        evidence.append(f"{int(n) // 1000}k: {ours} lowest seed {lowest:.3f}, {sae} {_fmt(runs[sae], metric)}")
    return {"goal": f"G7: {dataset}: every seed of {ours} above the best SAE at every rung", "met": bool(met),
            "evidence": "; ".join(evidence)}


def fidelity_goal(sweep: dict, ours: str, saes: list[str], gap: float = 0.1, dead: float = 0.1) -> dict:
    """G6, on lm_fidelity.fidelity_sweep's output: at every setting (k), ours' explained variance and loss
    recovered within `gap` (relative) of the best SAE's, in fewer CPU seconds than that SAE; the SAEs
    compared are those with dead units under `dead` (an SAE above it is said, not compared)."""
    by_setting = {row["setting"]: row for row in sweep[ours]}
    met, evidence, too_dead = True, [], set()
    for setting, row in by_setting.items():
        alive = {s: r for s in saes for r in sweep[s] if r["setting"] == setting and r["dead_fraction"] < dead}
        too_dead |= {s for s in saes for r in sweep[s] if r["setting"] == setting and r["dead_fraction"] >= dead}
        if not alive:
            met = False
            evidence.append(f"k={setting}: no SAE with dead units under {dead:.0%}")
            continue
        parts = []
        for metric in ("explained_variance", "loss_recovered"):
            best = max(alive, key=lambda s: alive[s][metric])
            ok = row[metric] >= (1 - gap) * alive[best][metric]
            faster = row["cpu_seconds"] < alive[best]["cpu_seconds"]
            met &= ok and faster
            parts.append(f"{metric.replace('_', ' ')} {row[metric]:.3f} vs {best} {alive[best][metric]:.3f}")
        met &= row["dead_fraction"] < dead
        evidence.append(f"k={setting}: " + ", ".join(parts))
    note = f" (dead units over {dead:.0%}, not compared at those k: {', '.join(sorted(too_dead))})" if too_dead else ""
    return {"goal": f"G6: real activations: at every k, {ours}'s EV and loss recovered within {gap:.0%} of the best "
                    f"SAE's (dead under {dead:.0%}), in less CPU time", "met": bool(met),
            "evidence": "; ".join(evidence) + note}
