"""Notebook 07's fits in worker processes against one process, measured in one run.

    python benchmarks/bench_workers.py                 # JSON to benchmarks/results/workers-<machine>.json
    python benchmarks/bench_workers.py --rows 20000 --repeats 1    # quick

The job: the main toy of notebook 07 (Sharkey's toy, d 256, 512 features, L0 5) at `--rows` training rows,
one setting of each of its six methods (Hebbian pursuit and SAELens' TopK, BatchTopK, MatchingPursuit, L1
and JumpReLU SAEs), fitted on `--seeds` seeds and each scored on its evaluation rows, as `ladder` does
(experiments.ladder). It runs with workers=1 and with workers=2, interleaved `--repeats` times (medians
kept), and prints: the wall-time ratio; the sum of the fits' single-thread CPU seconds in each mode (two
fits at once on two cores each run slower than alone: what the CPU-second columns of a run with workers
pay); that the dictionaries are bit for bit the same; and an in-process SoftHebb fit timed before and after
the pool has run, which catches torch work leaking into the executor's threads (experiments/workers.py:
it once made every later op of the notebook's thread 4 to 5 times slower).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

from hebb_utils.dictionaries.registry import softhebb_fit_dictionary
from hebb_utils.experiments.dictionaries import pursuit_candidates, recovery_on_split, sae_candidates, toy_splits
from hebb_utils.experiments.workers import shutdown_workers, submit_fit
from hebb_utils.io import atomic_write_json


def candidates() -> dict:
    """method -> make: one setting each (the learning rate notebook 07 chose most often)."""
    sae = sae_candidates(512, 5, lrs=[0.01], l1_coefficients=[1.0], l0_coefficients=[1.0], batch_size=256)
    return {"pursuit": pursuit_candidates(512, 5, lrs=[1.0])["pursuit"]["lr 1"],
            **{method: next(iter(options.values())) for method, options in sae.items()}}


def run(makes: dict, splits: dict, rows: int, workers: int) -> dict:
    """Every (seed, method) fit submitted, then each scored in turn: the ladder's loop."""
    start = time.perf_counter()
    pending = [(seed, method, submit_fit(make, splits[seed].train[:rows], seed, workers=workers))
               for seed in splits for method, make in makes.items()]
    decoders, cpu = {}, 0.0
    for seed, method, handle in pending:
        dictionary, seconds = handle.result()
        recovery_on_split(method, dictionary, seed, splits[seed])
        decoders[seed, method], cpu = dictionary.decoder, cpu + seconds
    return {"wall": time.perf_counter() - start, "cpu": cpu, "decoders": decoders}


def in_process_fit(X) -> float:
    start = time.perf_counter()
    softhebb_fit_dictionary(X, (8, 8), lateral=None, t_invert=100.0, lr=0.1)(0)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=50_000, help="training rows per fit (notebook 07: 50k, 100k)")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs per mode (median kept)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    split_of = toy_splits(args.rows, 2_000, 20_000, l0=5.0, correlated=False, d=256, n_features=512)
    splits = {seed: split_of(seed) for seed in range(args.seeds)}
    makes = candidates()
    small = torch.randn(50_000, 32, generator=torch.Generator().manual_seed(0))
    before = [in_process_fit(small) for _ in range(3)]
    submit_fit(makes["pursuit"], splits[0].train[:2_000], 0, workers=2).result()  # the pool up: not timed
    runs = {1: [], 2: []}
    for _ in range(args.repeats):
        for workers in (1, 2):
            runs[workers].append(run(makes, splits, args.rows, workers))
    after = [in_process_fit(small) for _ in range(3)]
    shutdown_workers()

    same = all(torch.equal(runs[1][0]["decoders"][key], r["decoders"][key])
               for r in runs[2] + runs[1] for key in runs[1][0]["decoders"])
    wall = {w: statistics.median(r["wall"] for r in runs[w]) for w in runs}
    cpu = {w: statistics.median(r["cpu"] for r in runs[w]) for w in runs}
    result = {"machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, torch threads {torch.get_num_threads()}",
              "rows": args.rows, "seeds": args.seeds, "fits_per_run": len(makes) * args.seeds, "repeats": args.repeats,
              "wall_seconds": {f"workers={w}": round(wall[w], 2) for w in wall},
              "speedup": round(wall[1] / wall[2], 2),
              "fit_cpu_seconds": {f"workers={w}": round(cpu[w], 2) for w in cpu},
              "cpu_seconds_inflation": round(cpu[2] / cpu[1], 2),
              "bit_identical": same,
              "in_process_fit_seconds": {"before the pool": round(statistics.median(before), 3),
                                         "after": round(statistics.median(after), 3)}}
    print(f"{result['fits_per_run']} fits of {args.rows:,} rows, median of {args.repeats}: "
          f"workers=1 {wall[1]:.1f} s, workers=2 {wall[2]:.1f} s wall: {result['speedup']:.2f}x; "
          f"the fits' single-thread CPU seconds {cpu[1]:.1f} against {cpu[2]:.1f} ({result['cpu_seconds_inflation']:.2f}x "
          f"with two at once); dictionaries bit for bit the same: {same}; an in-process fit "
          f"{result['in_process_fit_seconds']['before the pool']:.3f} s before the pool, "
          f"{result['in_process_fit_seconds']['after']:.3f} s after")
    out = args.json or Path(__file__).parent / "results" / f"workers-{platform.machine()}-{torch.get_num_threads()}cpu.json"
    atomic_write_json(out, result)
    print("wrote", out)


if __name__ == "__main__":
    main()
