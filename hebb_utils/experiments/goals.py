"""The goals of notebook 07, set before measuring, and their verdicts from the seeds' intervals.

Each function takes the summarised runs (`measure.seeds.summarise_seeds`: mean, ci95 = [low, high],
per-seed values) and returns {"goal", "met", "evidence"}: `met` is True only when the whole 95%
interval is on the goal's side (a bound "above" another run: the two intervals do not overlap), so a
goal is not called met on a lucky seed.
"""
from __future__ import annotations

from ..measure.seeds import format_interval, format_number

__all__ = ["interval", "above", "recovery_goal", "benchmark_goal", "topography_goal", "real_goal"]


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
    """The annealed map keeps the true geometry (rank correlation >= rho) and recovers (MMCS >=
    recovery), while the SAE's dictionary sits at the null (its interval holds its null's mean)."""
    ours, theirs = runs[annealed], runs[sae]
    _, sae_low, sae_high = interval(theirs, "topographic_rho")
    null = theirs["mean"]["topographic_null"]
    met = (interval(ours, "topographic_rho")[1] >= rho and interval(ours, "mmcs")[1] >= recovery
           and sae_low <= null <= sae_high)
    return {"goal": f"topographic ground truth: annealed map rho >= {rho} and MMCS >= {recovery}; the SAE at the null",
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
