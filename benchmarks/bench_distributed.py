"""Data-parallel SoftHebb throughput: 1 against N processes on torch.distributed (gloo on CPU, NCCL on GPUs).

    python benchmarks/bench_distributed.py                        # 1 and 2 processes, JSON to benchmarks/results/
    python benchmarks/bench_distributed.py --procs 1 2 4 --steps 40
    taskset -c 0,1 python benchmarks/bench_distributed.py         # the processes inherit the CPU affinity

For each process count P it launches `torchrun --standalone --nproc_per_node P` on this file in worker
mode; every rank trains a SoftHebb layer with 2D lateral support with
hebb_utils.train_softhebb_parallel on synthetic standard-normal data (a step's cost does not
depend on the values) for a warm-up run, then for `--steps` timed steps of the GLOBAL batch; rank 0
reports samples/s (global samples per wall-clock second). The JSON records the CPU affinity, the
threads per process and the load average, because other work on the machine shows in the numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

SHAPES = {
    "lm": dict(D=384, grid=(30, 60), batch=64, t_invert=100.0, lr=0.2),  # notebook 05 on the earlier BERT stand-in (D 384)
    "lm-b1024": dict(D=384, grid=(30, 60), batch=1024, t_invert=100.0, lr=0.2),
    "large": dict(D=768, grid=(100, 100), batch=1024, t_invert=100.0, lr=0.1),  # the 100 x 100 map
}


def worker(args) -> None:
    import torch

    from hebb_utils import init_distributed, train_softhebb_parallel
    from hebb_utils.parallel import local_device
    from hebb_utils import Lateral, SoftHebbLinear

    rank, world = init_distributed()
    device = local_device(args.device)
    results = {}
    for name in args.shapes:
        s = SHAPES[name]
        steps = max(2, args.steps if name != "large" else args.large_steps)
        X = torch.randn(steps * s["batch"], s["D"], generator=torch.Generator().manual_seed(0)).to(device)

        def run(n_rows):
            layer = SoftHebbLinear(s["D"], s["grid"][0] * s["grid"][1], s["t_invert"], lateral=Lateral(s["grid"]),
                                   seed=0, device=device)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if world > 1:
                torch.distributed.barrier()
            start = time.perf_counter()
            train_softhebb_parallel(layer, X[:n_rows], batch_size=s["batch"], lr=s["lr"], progress=False,
                                    device=device, backend="torch")
            if device.type == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - start

        run(2 * s["batch"])  # warm-up
        seconds = run(steps * s["batch"])
        results[name] = {**s, "grid": list(s["grid"]), "steps": steps, "seconds": seconds,
                         "samples_per_s": steps * s["batch"] / seconds, "ms_per_step": 1000 * seconds / steps}
    if rank == 0:
        Path(args.worker_out).write_text(json.dumps(results))
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()  # gloo's threads must stop before the interpreter does


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    p.add_argument("--steps", type=int, default=200, help="timed steps of the lm shapes")
    p.add_argument("--large-steps", type=int, default=6, help="timed steps of the 100 x 100 map")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (OMP_NUM_THREADS)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", default=None, help="default: benchmarks/results/distributed-<machine>.json")
    p.add_argument("--note", default="")
    p.add_argument("--worker-out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker_out:
        return worker(args)

    import torch

    out = {"machine": {"cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                       "affinity": sorted(os.sched_getaffinity(0)), "threads_per_process": args.threads,
                       "torch": torch.__version__, "cuda": torch.cuda.is_available(),
                       "load_average_before": os.getloadavg()}, "note": args.note, "runs": {}}
    try:
        out["machine"]["cpu"] = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_distributed_{os.getpid()}.json"
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads), "TQDM_DISABLE": "1"}
    for procs in args.procs:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs), __file__,
               "--worker-out", str(tmp), "--steps", str(args.steps), "--large-steps", str(args.large_steps),
               "--device", args.device, "--shapes", *args.shapes]
        subprocess.run(cmd, check=True, env=env)
        out["runs"][str(procs)] = json.loads(tmp.read_text())
        tmp.unlink()
    out["machine"]["load_average_after"] = os.getloadavg()
    print(f"{'shape':10} {'procs':>5} {'samples/s':>11} {'ms/step':>9} {'vs 1 proc':>9}")
    for name in args.shapes:
        base = out["runs"][str(args.procs[0])][name]["samples_per_s"]
        for procs in args.procs:
            r = out["runs"][str(procs)][name]
            print(f"{name:10} {procs:5d} {r['samples_per_s']:11.0f} {r['ms_per_step']:9.2f} {r['samples_per_s'] / base:8.2f}x")
    path = Path(args.json or Path(__file__).parent / "results" / f"distributed-{platform.machine()}-{os.cpu_count()}cpu.json")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from hebb_utils.io import atomic_write_json

    atomic_write_json(path, out)
    print("wrote", path)


if __name__ == "__main__":
    main()
