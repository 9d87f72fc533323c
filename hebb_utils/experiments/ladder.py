"""Notebook 07's fair protocol: every method at its best, chosen on a validation split, then scored at
each rung of a samples ladder, with fresh data per seed and single-thread CPU seconds.

    split_of = lambda seed: Split(truth, X_train, X_val, X_eval)        # each seed its own data draw
    candidates = {"pursuit": {"lr 1": lambda X: pursuit_fit_dictionary(X, 512, k=5, lr=1.0), ...},
                  "sae topk": {"lr 0.01": lambda X: sae_fit(X, 512, architecture="topk", k=5, lr=1e-2), ...}}
    out = ladder(candidates, split_of, rungs=[50_000, 100_000, 300_000], seeds=[0, 1, 2],
                 measure=recovery_on_split, tune_rung=100_000, target_l0=5)  # experiments.dictionaries
    out["runs"]["100000"]["pursuit"]     # summarise_seeds over the seeds: mean, ci95, per seed
    out["chosen"]["sae topk"]            # the label chosen on the validation split, and every candidate's score

How a setting is chosen (`choose`): each candidate is fitted on the first `tune_rung` training rows of
the first seed's draw and scored by its explained variance on that draw's VALIDATION rows (never the
rows the tables are scored on); only candidates whose mean L0 there lies within `l0_tolerance` of the
data's L0 compete (matched sparsity), where a method has a sparsity knob. The chosen setting then runs
at every rung and seed; the first seed's tuning fit is reused at the tuning rung (the same fit: same
data, same seed), so it is not paid twice.

CPU seconds: `time.process_time` around the fit alone, with torch on one thread (torch.set_num_threads(1),
restored after), so methods compare by the work they need, not by how well they use two cores. That
leaves the other cores to other fits: with workers=N the fits run in N processes (experiments.workers)
and are measured here in the serial order as they come back; the numbers are those of workers=1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..checks import matrix, positive_int
from ..dictionaries.registry import Dictionary
from ..measure.recovery import explained_variance
from ..measure.seeds import summarise_seeds
from .workers import Done, check_workers, one_thread_cpu_seconds, submit_fit

__all__ = ["Split", "one_thread_cpu_seconds", "validation_score", "pick_on_validation", "select_on_validation", "choose",
           "ladder", "sparsity_frontier"]


@dataclass(frozen=True)
class Split:
    """One seed's data: training rows in draw order (a rung of n samples is the first n), validation rows
    (settings are chosen on them), evaluation rows (the tables are scored on them), the ground truth
    (or None) and anything else a measure needs (`context`, e.g. SAELens' SyntheticModel)."""

    train: torch.Tensor  # (largest rung, d)
    validation: torch.Tensor  # (n_val, d)
    evaluation: torch.Tensor  # (n_eval, d)
    truth: Any = None
    context: Any = None


@torch.no_grad()
def validation_score(dictionary: Dictionary, X_val, batch_size: int = 8192) -> dict:
    """{"explained_variance", "l0"} of a dictionary's own code on validation rows X_val (n, d)."""
    X_val = matrix("X_val", X_val, min_rows=2)
    recon, active = [], 0.0
    for i in range(0, X_val.shape[0], batch_size):
        codes = dictionary.encode(X_val[i:i + batch_size]).float()
        recon.append(dictionary.decode(codes).float())
        active += float((codes != 0).sum(dtype=torch.float64))
    return {"explained_variance": explained_variance(X_val, torch.cat(recon)), "l0": active / X_val.shape[0]}


def pick_on_validation(scores: dict, target_l0: float | None = None, l0_tolerance: float = 0.3) -> str:
    """The label of the best explained variance among scores {label: {"explained_variance", "l0"}} whose
    L0 lies within l0_tolerance (a share) of target_l0 (None: every label competes). Ties keep the first
    label. A ValueError names the L0s reached when none is near the target."""
    if not scores:
        raise ValueError("scores: expected at least one candidate's validation score")
    eligible = [label for label, s in scores.items()
                if target_l0 is None or abs(s["l0"] - target_l0) <= l0_tolerance * target_l0]
    if not eligible:
        reached = ", ".join(f"{label}: {s['l0']:.2f}" for label, s in scores.items())
        raise ValueError(f"target_l0={target_l0}: no candidate reaches an L0 within {l0_tolerance:.0%} of it on the "
                         f"validation rows ({reached}); widen the sparsity sweep")
    return max(eligible, key=lambda label: scores[label]["explained_variance"])  # max keeps the first of ties


def select_on_validation(candidates: dict, X_val, *, seed: int = 0, target_l0: float | None = None,
                         l0_tolerance: float = 0.25) -> tuple[str, dict]:
    """Fit every candidate setting (label -> fit(seed) -> Dictionary) once, score each on held-out rows
    X_val (validation_score), and return (pick_on_validation's label, {label: score})."""
    X_val = matrix("X_val", X_val, min_rows=2)
    if not candidates:
        raise ValueError("candidates: expected at least one setting (label -> fit)")
    scores = {label: validation_score(fit(seed), X_val) for label, fit in candidates.items()}
    return pick_on_validation(scores, target_l0, l0_tolerance), scores


def choose(candidates: dict, split: Split, *, tune_rung: int, seed: int, target_l0: float | None = None,
           l0_tolerance: float = 0.3, unmatched=(), progress: Callable[[str], None] | None = None,
           workers: int = 1) -> tuple[dict, dict]:
    """Each method's setting, chosen on validation rows: (chosen, fitted).

    candidates: method -> {label: make(X_train) -> fit(seed) -> Dictionary}; every label of a method
    with more than one is fitted on split.train[:tune_rung] with `seed` and scored on split.validation
    (validation_score); the best explained variance among those within l0_tolerance of target_l0 wins
    (pick_on_validation), except for the methods named in `unmatched` (a one-winner method, whose L0 is 1
    whatever the data), which compete on explained variance alone. When no setting is near the target,
    the nearest runs, with "l0_matched": False (said, not hidden). workers: the processes the fits run in
    (experiments.workers; the same dictionaries whatever the number).
    chosen: method -> {"label", "l0_matched", "scores"}; fitted: method -> (the chosen fit, its CPU seconds)."""
    say = progress or (lambda message: None)
    X_tune = split.train[:tune_rung]
    pending = {method: {label: submit_fit(make, X_tune, seed, workers=workers) for label, make in options.items()}
               for method, options in candidates.items() if len(options) > 1}  # every fit started before any waits
    chosen, fitted = {}, {}
    for method, options in candidates.items():
        if len(options) == 1:
            chosen[method] = {"label": next(iter(options)), "l0_matched": True, "scores": {}}
            continue
        scores, fits = {}, {}
        for label, handle in pending.pop(method).items():
            dictionary, seconds = handle.result()
            scores[label] = validation_score(dictionary, split.validation)
            fits[label] = (dictionary, seconds)
            say(f"{method} {label}: validation EV {scores[label]['explained_variance']:.3f} at L0 {scores[label]['l0']:.2f}")
        target = None if method in unmatched else target_l0
        try:
            label, l0_matched = pick_on_validation(scores, target, l0_tolerance), True
        except ValueError:  # no setting near the data's L0: the nearest, and the table says it is not matched
            label, l0_matched = min(scores, key=lambda lab: abs(scores[lab]["l0"] - target)), False
        chosen[method] = {"label": label, "l0_matched": l0_matched, "scores": scores}
        fitted[method] = fits[label]
    return chosen, fitted


def ladder(candidates: dict, split_of: Callable[[int], Split], *, rungs, seeds, measure: Callable,
           tune_rung: int, target_l0: float | None = None, l0_tolerance: float = 0.3, unmatched=(),
           chosen: dict | None = None, progress: Callable[[str], None] | None = None, workers: int = 1) -> dict:
    """Each method at its best, at every rung and seed (module docstring).

    candidates: method -> {label: make(X_train) -> fit(seed) -> Dictionary}; one label: nothing to choose.
    split_of(seed) -> Split; measure(method, dictionary, seed, split) -> dict of numbers. The settings are
    chosen by `choose` on the first seed's split (target_l0, l0_tolerance, unmatched: see there), or
    taken as they are from another ladder's "chosen" (a variant of a data set, tuned on the original's
    validation rows: no tuning here, each marked "tuned_elsewhere"). workers: the processes the fits run
    in (experiments.workers), measured here in the serial loop's order as they come back: the same
    numbers whatever the number, but the CPU seconds.
    Returns {"chosen": {method: {"label", "l0_matched", "scores"}}, "runs": {str(rung): {method: summarise_seeds}}},
    each row holding the measure, "cpu_seconds" and "samples".
    """
    rungs = sorted(positive_int("rung", n, minimum=2) for n in rungs)
    tune_rung = positive_int("tune_rung", tune_rung, minimum=2)
    workers = check_workers(workers)
    seeds = [int(s) for s in seeds]
    if not seeds or not candidates:
        raise ValueError("seeds and candidates: expected at least one of each")
    say = progress or (lambda message: None)
    splits = {seeds[0]: split_of(seeds[0])}
    largest = max(rungs + [tune_rung])
    if splits[seeds[0]].train.shape[0] < largest:
        raise ValueError(f"split_of({seeds[0]}).train has {splits[seeds[0]].train.shape[0]} rows: the ladder needs "
                         f"{largest} (its largest rung or tune_rung)")
    if chosen is not None:
        missing = sorted(set(candidates) - set(chosen))
        if missing:
            raise ValueError(f"chosen: holds no setting for {missing}; pass the ladder whose candidates these are")
        chosen, reused = {method: {**chosen[method], "tuned_elsewhere": True} for method in candidates}, {}
    else:  # 1. the setting, on the first seed's validation rows; its fit is reused at the tuning rung
        chosen, reused = choose(candidates, splits[seeds[0]], tune_rung=tune_rung, seed=seeds[0], target_l0=target_l0,
                                l0_tolerance=l0_tolerance, unmatched=unmatched, progress=progress, workers=workers)
    rows: dict = {}

    def submitted(seed: int) -> tuple[Split, list]:  # one seed's fits, started (in workers) or waiting (workers=1)
        split = splits.pop(seed) if seed in splits else split_of(seed)
        return split, [(n, method, Done(*reused.pop(method)) if seed == seeds[0] and n == tune_rung and method in reused
                        else submit_fit(options[chosen[method]["label"]], split.train[:n], seed, workers=workers))
                       for n in rungs for method, options in candidates.items()]

    # 2. the chosen setting at every rung and seed, scored on the evaluation rows; the next seed's fits are
    # started before this seed's are scored, so the workers never wait, and at most two seeds' data are held
    ahead = submitted(seeds[0])
    for i, seed in enumerate(seeds):
        split, pending = ahead
        ahead = submitted(seeds[i + 1]) if i + 1 < len(seeds) else None
        for n, method, handle in pending:
            dictionary, seconds = handle.result()
            row = {"seed": seed, **measure(method, dictionary, seed, split), "cpu_seconds": round(seconds, 2),
                   "samples": n}
            rows.setdefault(str(n), {}).setdefault(method, []).append(row)
        say(f"seed {seed} done")
    return {"chosen": chosen, "runs": {n: {m: summarise_seeds(r) for m, r in by_method.items()}
                                      for n, by_method in rows.items()}}


def sparsity_frontier(makers: dict, split: Split, seed: int, *, workers: int = 1) -> dict:
    """The frontier SAE papers draw: explained variance against L0, one point per sparsity setting.

    makers: method -> {setting: make(X_train) -> fit(seed)} (e.g. one per k); each is fitted on
    split.train with `seed` (in `workers` processes: experiments.workers) and scored on split.evaluation.
    Returns method -> [{"setting", "l0", "explained_variance", "cpu_seconds"}]."""
    pending = [(method, setting, submit_fit(make, split.train, seed, workers=workers))
               for method, settings in makers.items() for setting, make in settings.items()]
    out = {}
    for method, setting, handle in pending:
        dictionary, seconds = handle.result()
        score = validation_score(dictionary, split.evaluation)
        out.setdefault(method, []).append({"setting": setting, **score, "cpu_seconds": round(seconds, 2)})
    return out
