"""SoftHebb training speed: the published-style implementation against ours (torch, Triton + CUDA graphs).

    python benchmarks/bench_softhebb.py                      # full epochs, JSON to benchmarks/results/<device>.json
    python benchmarks/bench_softhebb.py --steps-cap 200      # quick: 200 steps per epoch, epoch time extrapolated
    python benchmarks/bench_softhebb.py --host-copy          # also (a) with the published per-step host copy of W

Shapes (one epoch each, batch 64): CIFAR-10 (D=3072, N=450 on 15x30, t_invert 300, lr 0.08;
50,000 samples = 782 steps) and LM tokens (D=64, N=1800 on 30x60, t_invert 100, lr 0.2;
682,624 samples = 10,666 steps), radius 1, gain 0.3. The data are synthetic (uniform in [0, 1]
for CIFAR, standard normal for the LM activations), of the published sizes: the speed of a step
does not depend on the values.

Paths:
  (a) published-style: written from the description of the published code. Torch eager, the
      circular mask rebuilt every step with a meshgrid over batch x rows x cols, the batch-wide
      winner flip `y[:, winners] = -y[:, winners]`, lateral term `y - coef * y_winner * mask` with
      coef = -0.3; optionally (--host-copy) a full copy of W to the host after every step.
      Batches are drawn like ours (one device permutation per epoch) so only the step differs.
  (b) ours, torch: hebb_utils.train_softhebb(backend="torch").
  (c) ours, Triton + CUDA graphs: train_softhebb(backend="triton") on CUDA, which runs the epoch
      in hebb_utils.rules.graphed_epoch.train_epoch_graphed. Only with CUDA.
Each path runs a short warm-up epoch first (not timed); with --repeats the timed epochs of the
paths are interleaved and the median is kept. Epoch times include everything the epoch does
(shuffling, data checks, for (c) the warm-up step and the graph capture).
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import re
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from hebb_utils.io import atomic_write_json
from hebb_utils import Lateral, SoftHebbLinear, train_softhebb

SHAPES = {
    "cifar": dict(D=3072, grid=(15, 30), t_invert=300.0, lr=0.08, n_samples=50_000),
    "lm": dict(D=64, grid=(30, 60), t_invert=100.0, lr=0.2, n_samples=10_666 * 64),
}
LARGE = dict(D=768, grid=(100, 100), t_invert=100.0, lr=0.1)
BATCH, RADIUS, GAIN, SEED, WARMUP_STEPS = 64, 1.0, 0.3, 42, 3


# ----------------------------------------------------------------------------------------------
# (a) the published-style implementation


def published_epoch(W, bn, data, batch_size, t_invert, lr, grid, radius, host_copy, generator):
    """One epoch as the published code does it (see the module docstring); updates W in place."""
    rows, cols = grid
    lateral_gain_coef = -GAIN  # written with a minus sign, used as `y - coef * ...`
    device = W.device
    order = torch.randperm(data.shape[0], generator=generator, device=device)
    for start in range(0, data.shape[0], batch_size):
        x = data[order[start : start + batch_size]]
        if x.shape[0] < 2:
            continue
        x = bn(x)
        u = x @ W.T  # (B, N)
        y = torch.softmax(t_invert * u, dim=1)
        winners = torch.argmax(u, dim=1)
        y = -y
        y[:, winners] = -y[:, winners]  # every column that won for any sample, for all samples
        B = x.shape[0]
        # the circular neighbourhood, rebuilt every step over batch x rows x cols
        b_idx, r_idx, c_idx = torch.meshgrid(
            torch.arange(B, device=device), torch.arange(rows, device=device), torch.arange(cols, device=device),
            indexing="ij",
        )
        win_r = (winners // cols)[b_idx]
        win_c = (winners % cols)[b_idx]
        dist = torch.sqrt(((r_idx - win_r) ** 2 + (c_idx - win_c) ** 2).float())
        mask = (dist <= radius).float().reshape(B, rows * cols)
        y_win = y[torch.arange(B, device=device), winners]
        y = y - lateral_gain_coef * y_win[:, None] * mask
        s = (y * u).sum(0)
        dW = y.T @ x - s[:, None] * W
        dW = dW / (dW.abs().max() + 1e-30)
        W += lr * dW
        if host_copy:
            W.cpu().numpy().copy()  # the per-step copy for the animation (not kept here)


# ----------------------------------------------------------------------------------------------
# timing


class Timer:
    """Wall time of a block; on CUDA bracketed by events after a synchronize."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
            self.start, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.start.record()
        else:
            self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            self.end.record()
            torch.cuda.synchronize()
            self.seconds = self.start.elapsed_time(self.end) / 1e3
        else:
            self.seconds = time.perf_counter() - self.t0


def make_data(n, D, kind, device, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, D, generator=g) if kind == "uniform" else torch.randn(n, D, generator=g)
    return x.to(device)


def n_steps(n, batch_size):
    return n // batch_size + (n % batch_size >= 2)


def run_path(path, data, D, grid, t_invert, lr, batch_size, device, host_copy=False):
    """Seconds for one epoch over `data` with path 'a' | 'b' | 'c'."""
    N = grid[0] * grid[1]
    if path == "a":
        W = (torch.randn(N, D, generator=torch.Generator().manual_seed(SEED)) * (14 / math.sqrt(D))).to(device)
        bn = torch.nn.BatchNorm1d(D, affine=False, device=device)
        generator = torch.Generator(device=device).manual_seed(SEED)
        with torch.no_grad(), Timer(device) as t:
            published_epoch(W, bn, data, batch_size, t_invert, lr, grid, RADIUS, host_copy, generator)
        return t.seconds
    # built outside the timed region, like (a)'s W: the epoch is what is compared
    layer = SoftHebbLinear(D, N, t_invert=t_invert, lateral=Lateral(grid, RADIUS, GAIN), seed=SEED, device=device)
    backend = {"b": "torch", "c": "triton"}[path]
    with Timer(device) as t:
        train_softhebb(layer, data, batch_size=batch_size, lr=lr, seed=SEED, device=device, backend=backend,
                       progress=False)
    return t.seconds


def bench_shape(name, cfg, paths, device, steps_cap, host_copy, repeats):
    full_steps = n_steps(cfg["n_samples"], BATCH)
    n = cfg["n_samples"] if steps_cap is None or steps_cap >= full_steps else steps_cap * BATCH
    steps = n_steps(n, BATCH)
    kind = "uniform" if name == "cifar" else "normal"
    data = make_data(n, cfg["D"], kind, device, seed=0)
    warm = data[: WARMUP_STEPS * BATCH]
    out = dict(full_steps=full_steps, steps_run=steps, capped=steps < full_steps,
               samples=cfg["n_samples"], D=cfg["D"], grid=list(cfg["grid"]), t_invert=cfg["t_invert"], lr=cfg["lr"])
    runs = [(p, False) for p in paths] + ([("a", True)] if host_copy else [])
    args = (cfg["D"], cfg["grid"], cfg["t_invert"], cfg["lr"], BATCH, device)
    for path, copy in runs:  # warm-up: allocator, cuBLAS, Triton compilation
        run_path(path, warm, *args, host_copy=copy)
    times = {path + ("_host_copy" if copy else ""): [] for path, copy in runs}
    for _ in range(repeats):  # interleaved, so that a load change on the machine hits every path
        for path, copy in runs:
            times[path + ("_host_copy" if copy else "")].append(run_path(path, data, *args, host_copy=copy))
    for key, all_seconds in times.items():
        seconds = statistics.median(all_seconds)
        us = seconds / steps * 1e6
        out[key] = dict(us_per_step=us, epoch_s=us * full_steps / 1e6 if steps < full_steps else seconds,
                        epoch_extrapolated=steps < full_steps, measured_s=all_seconds)
        label = f"{name} ({key})"
        note = f"  [extrapolated from {steps} of {full_steps} steps]" if steps < full_steps else ""
        print(f"{label:<24} {us:10.1f} us/step   epoch {out[key]['epoch_s']:9.3f} s{note}", flush=True)
    for path in ("b", "c"):
        if path in out:
            out[f"speedup_{path}_over_a"] = out["a"]["us_per_step"] / out[path]["us_per_step"]
    if "c" not in paths:
        out["c"] = "n/a (no CUDA)"
    return out


def bench_large(paths, device, steps):
    """Samples/s on a 100x100 map over D=768, batch 64 and 1024, `steps` steps after a warm-up."""
    rows = []
    for batch in (64, 1024):
        data = make_data(steps * batch, LARGE["D"], "normal", device, seed=1)
        for path in paths:
            args = (LARGE["D"], LARGE["grid"], LARGE["t_invert"], LARGE["lr"], batch, device)
            run_path(path, data[: 2 * batch], *args)
            seconds = run_path(path, data, *args)
            rows.append(dict(batch=batch, path=path, steps=steps, samples_per_s=steps * batch / seconds,
                             us_per_step=seconds / steps * 1e6))
            print(f"large 100x100 D=768 B={batch:<5} ({path})  {steps * batch / seconds:12.0f} samples/s  "
                  f"({seconds / steps * 1e3:.2f} ms/step)", flush=True)
    return rows


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU {model}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps-cap", type=int, default=None,
                        help="at most this many steps per epoch; the epoch time is then extrapolated (and says so)")
    parser.add_argument("--large-steps", type=int, default=20, help="steps for the 100x100 map throughput")
    parser.add_argument("--skip-large", action="store_true", help="leave out the 100x100 map throughput")
    parser.add_argument("--host-copy", action="store_true", help="also time (a) with the per-step host copy of W")
    parser.add_argument("--repeats", type=int, default=1,
                        help="timed epochs per path (interleaved); the median is kept")
    parser.add_argument("--shapes", default="cifar,lm", help="comma-separated subset of cifar,lm")
    parser.add_argument("--json", default=None, help="output path (default benchmarks/results/<device>.json)")
    parser.add_argument("--note", default="", help="free text stored in the JSON (e.g. machine contention)")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device here")
    if args.steps_cap is not None and args.steps_cap < 1 or args.repeats < 1 or args.large_steps < 1:
        sys.exit("--steps-cap, --repeats, --large-steps: expected positive integers")
    unknown = set(args.shapes.split(",")) - set(SHAPES)
    if unknown:
        sys.exit(f"--shapes: unknown {sorted(unknown)}; expected a comma-separated subset of {sorted(SHAPES)}")
    from hebb_utils.backend import triton_available

    has_c = device.type == "cuda" and triton_available()
    paths = ["a", "b"] + (["c"] if has_c else [])
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    name = device_name(device)
    command = shlex.join(["python", "benchmarks/bench_softhebb.py", *(sys.argv[1:] if argv is None else argv)])
    info = dict(device=name, torch=torch.__version__, triton=triton_version, cpu_threads=torch.get_num_threads(),
                cpu_count=os.cpu_count(), steps_cap=args.steps_cap, repeats=args.repeats, batch=BATCH,
                synthetic_data=True, note=args.note, command=command)
    print(f"device: {name} | torch {torch.__version__} | triton {triton_version} | "
          f"{torch.get_num_threads()} CPU threads | steps cap: {args.steps_cap or 'none (full epochs)'}")
    if not has_c:
        print("(c) Triton + CUDA graphs: n/a (no CUDA)")
    results = dict(info=info, shapes={})
    for shape in args.shapes.split(","):
        results["shapes"][shape] = bench_shape(shape, SHAPES[shape], paths, device, args.steps_cap, args.host_copy,
                                                 args.repeats)
        r = results["shapes"][shape]
        print(f"{shape}: speed-up over (a): (b) {r['speedup_b_over_a']:.2f}x"
              + (f", (c) {r['speedup_c_over_a']:.1f}x" if "speedup_c_over_a" in r else ", (c) n/a (no CUDA)"))
    if not args.skip_large:
        results["large_map"] = bench_large(paths, device, args.large_steps)
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    out = Path(args.json or Path(__file__).parent / "results" / f"{slug}.json")
    atomic_write_json(out, results)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
