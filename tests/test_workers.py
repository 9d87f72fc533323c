"""Fits in worker processes (experiments/workers.py): the same dictionaries, bit for bit, as in this
process, so notebook 07's numbers do not depend on `workers`; errors come back named."""
import pytest
import torch

from hebb_utils.experiments.dictionaries import (pursuit_candidates, recovery_on_split, sae_candidates,
                                                 softhebb_candidates, toy_splits)
from hebb_utils.experiments.ladder import ladder, sparsity_frontier
from hebb_utils.experiments.workers import check_workers, submit_fit

SPLIT_OF = toy_splits(1200, 300, 300, l0=2.0, correlated=False, d=16, n_features=24)


def _candidates():
    return {**pursuit_candidates(24, 2, lrs=[0.5, 1.0]),
            **sae_candidates(24, 2, lrs=[0.01], batch_size=64, methods=("sae topk",)),
            **softhebb_candidates((4, 6), lrs=[0.2], t_invert=20.0)}


def test_a_fit_in_a_worker_is_the_fit_in_this_process_bit_for_bit():
    split = SPLIT_OF(0)
    for method, options in _candidates().items():
        make = next(iter(options.values()))
        here, seconds_here = submit_fit(make, split.train[:1000], 3, workers=1).result()
        there, seconds_there = submit_fit(make, split.train[:1000], 3, workers=2).result()
        assert torch.equal(here.decoder, there.decoder), method
        assert torch.equal(here.encode(split.evaluation), there.encode(split.evaluation)), method
        assert seconds_here > 0 and seconds_there > 0


def test_the_ladder_and_the_frontier_do_not_depend_on_the_number_of_workers():
    def numbers(out):  # every number but the CPU seconds
        return {rung: {m: [{k: v for k, v in row.items() if k != "cpu_seconds"} for row in run["seeds"]]
                       for m, run in by_method.items()} for rung, by_method in out["runs"].items()}

    runs = [ladder(_candidates(), SPLIT_OF, rungs=[600, 1200], seeds=[0, 1], measure=recovery_on_split, tune_rung=1200,
                   target_l0=2.0, workers=w) for w in (1, 2)]
    assert runs[0]["chosen"] == runs[1]["chosen"]
    assert numbers(runs[0]) == numbers(runs[1])
    assert set(runs[0]["runs"]["1200"]) == {"pursuit", "sae topk", "softhebb"}

    makers = {"pursuit": {k: pursuit_candidates(24, k, lrs=[1.0])["pursuit"]["lr 1"] for k in (1, 3)}}
    fronts = [sparsity_frontier(makers, SPLIT_OF(0), 0, workers=w) for w in (1, 2)]
    assert [{k: v for k, v in r.items() if k != "cpu_seconds"} for r in fronts[0]["pursuit"]] == \
           [{k: v for k, v in r.items() if k != "cpu_seconds"} for r in fronts[1]["pursuit"]]


def test_an_error_in_a_worker_comes_back_as_itself():
    def make(X):
        def fit(seed):
            raise ValueError(f"lr=-1: expected a positive step (rows {X.shape[0]}, seed {seed})")
        return fit

    with pytest.raises(ValueError, match=r"lr=-1: expected a positive step \(rows 5, seed 7\)"):
        submit_fit(make, torch.zeros(5, 3), 7, workers=2).result()


@pytest.mark.parametrize("workers", [0, -1, 1.5, "2", True])
def test_workers_must_be_a_positive_integer(workers):
    with pytest.raises(ValueError, match="workers="):
        check_workers(workers)
    with pytest.raises(ValueError, match="workers="):
        submit_fit(lambda X: None, torch.zeros(2, 2), 0, workers=workers)
