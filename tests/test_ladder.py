"""The fair protocol of notebook 07 (experiments/ladder.py): settings chosen on validation rows only,
at matched L0, every rung and seed run with the chosen setting, the tuning fit reused, CPU seconds on one
thread; and the goals read from its output (experiments/goals.py)."""
import pytest
import torch

from hebb_utils.dictionaries.registry import Dictionary
from hebb_utils.experiments import goals
from hebb_utils.experiments.ladder import (Split, ladder, one_thread_cpu_seconds, pick_on_validation, sparsity_frontier,
                                           validation_score)
from hebb_utils.measure.seeds import summarise_seeds

BASIS = torch.eye(4)


def _split(seed):
    g = torch.Generator().manual_seed(seed)
    return Split(train=torch.rand(40, 4, generator=g), validation=torch.rand(20, 4, generator=g),
                 evaluation=torch.rand(20, 4, generator=g))


def _keeper(keep, calls):
    """make(X) -> fit(seed): a code keeping the first `keep` coordinates (L0 keep, EV rising with keep);
    records (keep, rows, seed) of every fit."""
    def make(X):
        def fit(seed):
            calls.append((keep, X.shape[0], seed))
            mask = torch.zeros(4)
            mask[:keep] = 1
            return Dictionary(decoder=BASIS, encode=lambda x: x * mask, decode=lambda c: c @ BASIS, info={"rows": X.shape[0]})
        return fit
    return make


def _measure(method, dictionary, seed, split):
    return {"rows": float(dictionary.info["rows"]), "ev": validation_score(dictionary, split.evaluation)["explained_variance"]}


def test_the_setting_is_chosen_on_validation_at_matched_l0_and_runs_at_every_rung_and_seed():
    calls = []
    candidates = {"m": {"one": _keeper(1, calls), "two": _keeper(2, calls), "four": _keeper(4, calls)}}
    out = ladder(candidates, _split, rungs=[10, 30], seeds=[0, 1], measure=_measure, tune_rung=30, target_l0=2.0)
    assert out["chosen"]["m"]["label"] == "two" and out["chosen"]["m"]["l0_matched"]  # not the densest
    assert set(out["chosen"]["m"]["scores"]) == {"one", "two", "four"}
    # tuning: each candidate once at the tuning rung, seed 0; then the chosen one at every (rung, seed),
    # the (30, 0) fit being the tuning fit itself
    assert calls[:3] == [(1, 30, 0), (2, 30, 0), (4, 30, 0)]
    assert sorted(calls[3:]) == [(2, 10, 0), (2, 10, 1), (2, 30, 1)]
    assert sorted(out["runs"]) == ["10", "30"]
    for rung in ("10", "30"):
        run = out["runs"][rung]["m"]
        assert run["n"] == 2 and run["mean"]["rows"] == int(rung) and run["mean"]["samples"] == int(rung)
        assert all(row["cpu_seconds"] >= 0 for row in run["seeds"])
    # a variant takes the chosen setting as it is: no tuning fits
    calls.clear()
    again = ladder(candidates, _split, rungs=[10], seeds=[0], measure=_measure, tune_rung=30, target_l0=2.0,
                   chosen=out["chosen"])
    assert calls == [(2, 10, 0)] and again["chosen"]["m"]["tuned_elsewhere"]


def test_no_setting_near_the_target_l0_runs_the_nearest_and_says_so():
    calls = []
    out = ladder({"m": {"one": _keeper(1, calls), "four": _keeper(4, calls)}}, _split, rungs=[10], seeds=[0],
                 measure=_measure, tune_rung=10, target_l0=2.5, l0_tolerance=0.1)
    assert out["chosen"]["m"]["label"] == "one" and out["chosen"]["m"]["l0_matched"] is False  # |1 - 2.5| < |4 - 2.5|
    with pytest.raises(ValueError, match="target_l0=2.5: no candidate"):
        pick_on_validation(out["chosen"]["m"]["scores"], 2.5, 0.1)
    with pytest.raises(ValueError, match="needs 100"):
        ladder({"m": {"one": _keeper(1, calls)}}, _split, rungs=[100], seeds=[0], measure=_measure, tune_rung=10)
    with pytest.raises(ValueError, match="chosen: holds no setting for \\['other'\\]"):
        ladder({"other": {"one": _keeper(1, calls)}}, _split, rungs=[10], seeds=[0], measure=_measure, tune_rung=10,
               chosen=out["chosen"])


def test_cpu_seconds_are_measured_on_one_thread_and_the_threads_restored():
    threads = torch.get_num_threads()
    seen, seconds = one_thread_cpu_seconds(torch.get_num_threads)
    assert seen == 1 and seconds >= 0 and torch.get_num_threads() == threads
    with pytest.raises(ZeroDivisionError):
        one_thread_cpu_seconds(lambda: 1 / 0)
    assert torch.get_num_threads() == threads


def test_the_frontier_has_one_point_per_setting_scored_on_the_evaluation_rows():
    calls = []
    split = _split(0)
    out = sparsity_frontier({"m": {1: _keeper(1, calls), 4: _keeper(4, calls)}}, split, seed=3)
    assert [r["setting"] for r in out["m"]] == [1, 4] and [r["l0"] for r in out["m"]] == [1.0, 4.0]
    assert out["m"][1]["explained_variance"] == pytest.approx(1.0)
    assert calls == [(1, 40, 3), (4, 40, 3)]


def _run(values, seconds=1.0):
    return summarise_seeds([{"seed": i, "mmcs": v, "mcc": v, "cpu_seconds": seconds} for i, v in enumerate(values)])


def test_the_ladder_goals_read_intervals_every_rung_and_every_seed():
    good = {"runs": {"100": {"ours": _run([0.96, 0.97, 0.98], 1.0), "sae": _run([0.5, 0.52, 0.51], 10.0)},
                     "300": {"ours": _run([0.98, 0.985, 0.99], 3.0), "sae": _run([0.7, 0.72, 0.71], 30.0)}}}
    assert goals.ladder_goal({"toy": good}, "ours", ["sae"])["met"]
    close = {"runs": {**good["runs"], "100": {"ours": _run([0.96, 0.97, 0.98]), "sae": _run([0.9, 0.97, 0.99])}}}
    verdict = goals.ladder_goal({"toy": close}, "ours", ["sae"])
    assert not verdict["met"] and "not above: sae at 0k" in verdict["evidence"]
    low = {"runs": {"300": {"ours": _run([0.9, 0.99, 0.98]), "sae": _run([0.5, 0.5, 0.51])}}}
    assert not goals.ladder_goal({"toy": low}, "ours", ["sae"])["met"]  # the interval reaches below 0.95
    # G3: ours reaches the SAE's final 0.71 at the first rung, in 1 CPU s of its 30
    assert goals.time_goal(good, "ours", ["sae"])["met"]
    slow = {"runs": {n: {"ours": _run([r["ours"]["mean"]["mmcs"]] * 3, 20.0), "sae": r["sae"]}
                     for n, r in good["runs"].items()}}
    assert not goals.time_goal(slow, "ours", ["sae"])["met"]
    # G2 and G7: every seed
    runs = good["runs"]["300"]
    assert goals.every_seed_goal(runs, ["ours"], ["sae"], "bench", metric="mmcs")["met"]
    one_bad = {"ours": _run([0.99, 0.99, 0.94]), "sae": _run([0.5, 0.5, 0.5])}
    assert not goals.every_seed_goal(one_bad, ["ours"], ["sae"], "bench", metric="mmcs")["met"]
    assert goals.seeds_above_goal(good, "ours", ["sae"], "toy")["met"]
    assert not goals.seeds_above_goal({"runs": {"100": {"ours": _run([0.99, 0.6, 0.99]), "sae": _run([0.7, 0.7, 0.7])}}},
                                      "ours", ["sae"], "toy")["met"]
    # G4: at least every SAE's mean, no SAE wholly above
    assert goals.at_least_goal(runs, "ours", ["sae"], "hard")["met"]
    assert not goals.at_least_goal({"ours": _run([0.5, 0.5, 0.51]), "sae": _run([0.9, 0.9, 0.91])}, "ours", ["sae"],
                                   "hard")["met"]


def test_the_fidelity_goal_compares_every_k_with_the_live_saes():
    def row(k, ev, lr, dead=0.0, cpu=1.0):
        return {"setting": k, "explained_variance": ev, "loss_recovered": lr, "dead_fraction": dead, "cpu_seconds": cpu}

    sweep = {"ours": [row(1, 0.5, 0.8, cpu=1), row(8, 0.8, 0.95, cpu=2)],
             "sae": [row(1, 0.52, 0.82, cpu=5), row(8, 0.85, 0.97, cpu=9)],
             "dead sae": [row(1, 0.9, 0.99, dead=0.5, cpu=5), row(8, 0.99, 0.99, dead=0.5, cpu=9)]}
    verdict = goals.fidelity_goal(sweep, "ours", ["sae", "dead sae"])
    assert verdict["met"] and "not compared at those k: dead sae" in verdict["evidence"]
    worse = {**sweep, "ours": [row(1, 0.3, 0.8), row(8, 0.8, 0.95)]}   # EV 0.3 < 0.9 x 0.52
    assert not goals.fidelity_goal(worse, "ours", ["sae"])["met"]
    slower = {**sweep, "ours": [row(1, 0.5, 0.8, cpu=6), row(8, 0.8, 0.95)]}
    assert not goals.fidelity_goal(slower, "ours", ["sae"])["met"]


def test_an_unmatched_method_competes_on_explained_variance_alone():
    calls = []
    from hebb_utils.experiments.ladder import choose

    candidates = {"one-winner": {"one": _keeper(1, calls), "four": _keeper(4, calls)}}
    chosen, fitted = choose(candidates, _split(0), tune_rung=20, seed=0, target_l0=1.0)
    assert chosen["one-winner"]["label"] == "one"  # matched: L0 1
    chosen, fitted = choose(candidates, _split(0), tune_rung=20, seed=0, target_l0=1.0, unmatched=("one-winner",))
    assert chosen["one-winner"]["label"] == "four" and fitted["one-winner"][0].info["rows"] == 20


def test_the_sweep_makers_rebuild_each_chosen_setting_at_every_k():
    from hebb_utils.experiments.dictionaries import k_sweep_makers, softhebb_candidates

    X = torch.randn(600, 8, generator=torch.Generator().manual_seed(0)).abs()
    makers = k_sweep_makers(16, [1, 3], {"pursuit": "lr 0.5", "sae topk": "lr 0.01"}, pursuit_lrs=[0.5, 1.0],
                            sae_lrs=[0.01], batch_size=100)
    assert sorted(makers) == ["pursuit", "sae topk"] and sorted(makers["pursuit"]) == [1, 3]
    for k in (1, 3):
        pursuit, sae = makers["pursuit"][k](X)(0), makers["sae topk"][k](X)(0)
        assert pursuit.info["k"] == k and int((pursuit.encode(X) > 0).sum(1).max()) <= k
        assert int((sae.encode(X) != 0).sum(1).max()) == k
    with pytest.raises(ValueError, match="'lr 9' is not one of the sweep's settings"):
        k_sweep_makers(16, [1], {"pursuit": "lr 9"}, pursuit_lrs=[0.5], sae_lrs=[0.01])
    softhebb = softhebb_candidates((4, 4), lrs=[0.05, 0.2], t_invert=20.0)
    assert sorted(softhebb["softhebb"]) == ["lr 0.05", "lr 0.2"]
    assert softhebb["softhebb"]["lr 0.2"](X)(0).decoder.shape == (16, 8)


def test_the_splits_draw_each_seed_its_own_data_and_the_benchmark_scores_a_pursuit_export():
    from hebb_utils.experiments.dictionaries import (as_saelens_sae, benchmark_on_split, benchmark_splits,
                                                     recovery_on_split, toy_splits)
    from hebb_utils.dictionaries.registry import pursuit_fit_dictionary

    split_of = toy_splits(300, 50, 60, l0=2.0, correlated=False, d=16, n_features=24)
    a, b, again = split_of(0), split_of(1), split_of(0)
    assert (a.train.shape, a.validation.shape, a.evaluation.shape) == ((300, 16), (50, 16), (60, 16))
    assert torch.equal(a.train, again.train) and not torch.equal(a.train, b.train)
    assert not torch.equal(a.truth.features, b.truth.features)  # the features too: a new toy per seed
    dictionary = pursuit_fit_dictionary(a.train, 24, k=2, lr=1.0)(0)
    assert set(recovery_on_split("pursuit", dictionary, 0, a)) >= {"mmcs", "mcc", "explained_variance", "l0"}

    clean = benchmark_splits(400, 50, num_features=24, hidden_dim=12, mean_l0=2.0)(0)
    noisy = benchmark_splits(400, 50, noise_std=0.1, num_features=24, hidden_dim=12, mean_l0=2.0)(0)
    noise = noisy.train - clean.train
    assert 0.08 < float(noise.std()) < 0.12 and torch.equal(noisy.train, benchmark_splits(
        400, 50, noise_std=0.1, num_features=24, hidden_dim=12, mean_l0=2.0)(0).train)
    layer = pursuit_fit_dictionary(clean.train, 24, k=2, lr=1.0, offset=True)(0)
    sae = as_saelens_sae(layer)
    assert type(sae).__name__ == "MatchingPursuitSAE"
    with torch.no_grad():
        torch.testing.assert_close(sae.encode(clean.validation), layer.encode(clean.validation), atol=1e-5, rtol=0)
    scores = benchmark_on_split(500)("pursuit", layer, 0, clean)
    assert 0 <= scores["mcc"] <= 1 and scores["sae_l0"] <= 2
