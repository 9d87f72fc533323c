"""The command line: extract activations, train the topographic SoftHebb layer, draw its map.

    python -m hebb_utils extract --model NAME --n-stories 3200 --out DIR
    python -m hebb_utils train --activations DIR --grid 30x60 --out layer.pt
    python -m hebb_utils map --activations DIR --checkpoint layer.pt --out figures/
    python -m hebb_utils methods        # the dictionary methods notebook 07 compares (their registry)

Each subcommand calls the package functions the notebooks call (data.load_language_model,
data.load_tinystories, data.extract.extract_to_shards around data.extract.extract_activations,
rules.training.train_softhebb_parallel around SoftHebbLinear's step, rules.checkpoint for the .pt
file, report.lm_map.write_token_map around measure.maps/report.plots/report.token_map): no second
implementation. `train`'s defaults are the published LM run's (settings.LM_TOKENS).
Under `torchrun --nproc_per_node N` extract and train run data-parallel (NCCL on GPUs, gloo on
CPU); map runs on rank 0. A bad argument or input ends with one line on stderr and exit code 2.

Outputs never replace inputs: `extract --out` refuses a folder that holds anything but a store of
the same settings (which it resumes) unless --force; `train --out` refuses an existing file unless
--force, and any path inside an activation folder always.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path

from .checks import Grid
from .settings import LM_TOKENS

__all__ = ["main", "build_parser", "parse_grid"]

# a negative number, also in scientific notation (argparse takes "-1e-3" for an option), or -inf / -nan
RULES = ("softhebb", "pursuit")
# the options only one rule reads, and their defaults: given to the other rule they are refused
SOFTHEBB_ONLY = ("t_invert", "radius", "gain", "shape", "radius_end", "gain_end", "no_lateral")
PURSUIT_ONLY = ("k", "residual_threshold", "offset")
NEGATIVE_NUMBER = re.compile(r"-(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|-(?:inf|infinity|nan)", re.IGNORECASE)


def _numbers_as_values(argv: list[str]) -> list[str]:
    """'--gain -1e-3' -> '--gain=-1e-3', so that argparse reads a negative number as the option's value
    (the setting then decides whether it is allowed)."""
    out: list[str] = []
    for arg in argv:
        prev = out[-1] if out else ""
        if NEGATIVE_NUMBER.fullmatch(arg) and prev.startswith("--") and prev != "--" and "=" not in prev:
            out[-1] = f"{prev}={arg}"
        else:
            out.append(arg)
    return out


def _check_train_out(out: Path, activations: Path, force: bool) -> None:
    """The checkpoint path: never the activations or inside an activation folder; never an existing
    folder; an existing file only with --force."""
    from .data.store import is_activation_folder
    from .io import check_writable

    where, acts = out.resolve(), activations.resolve()
    if where == acts or acts in where.parents:
        raise ValueError(f"--out {out}: is {'the --activations path' if where == acts else 'inside the --activations folder'}; "
                         "a checkpoint there would overwrite or damage the activations: write it elsewhere")
    inside = next((f for f in (where, *where.parents) if f.is_dir() and is_activation_folder(f)), None)
    if inside is not None:
        place = "an activation folder" if inside == where else f"inside the activation folder {inside}"
        raise ValueError(f"--out {out}: is {place}; a checkpoint there would damage it: write it elsewhere")
    check_writable(out.parent, "--out", out)
    if out.is_dir():
        raise ValueError(f"--out {out}: is a folder; give the checkpoint's file name, e.g. {out / 'layer.pt'}")
    if out.exists() and not force:
        raise ValueError(f"--out {out}: exists; pass --force to replace it (train never replaces a file without it)")
    _check_creatable(out)


def _check_creatable(out: Path) -> None:
    """A file can be made next to `out` (where the checkpoint's temporary file goes), tried with an
    unnamed temporary file: the permission bits that check_writable reads say yes to root, and to
    folders such as /proc, where the save would fail only after training."""
    if not out.parent.is_dir():  # made when the checkpoint is saved; check_writable has read its first existing folder
        return
    try:
        with tempfile.TemporaryFile(dir=out.parent):
            pass
    except OSError as e:
        raise ValueError(f"--out {out}: no file can be created in {out.parent} ({e.strerror or type(e).__name__}); "
                         "write the checkpoint to a folder that can be written") from None


def _check_train_options(args) -> None:
    """What the command line alone decides, before the process group forms (under torchrun every rank
    then reports it at once, without waiting for the others) and before any file is read."""
    defaults = build_parser().parse_args(["train", "--activations", "a", "--grid", "1", "--out", "o"])
    other = SOFTHEBB_ONLY if args.rule == "pursuit" else PURSUIT_ONLY
    given = [f"--{name.replace('_', '-')}" for name in other if getattr(args, name) != getattr(defaults, name)]
    if given:
        reader = "softhebb" if args.rule == "pursuit" else "pursuit"
        raise ValueError(f"{' and '.join(given)}: set(s) the {reader} rule, but --rule is {args.rule}, which does not "
                         f"read it; drop {' and '.join(given)}, or pass --rule {reader}")
    if args.rule == "pursuit":
        from .rules.pursuit import check_k, check_residual_threshold

        try:
            check_k(args.k)
            check_residual_threshold(args.residual_threshold)
        except ValueError as e:
            raise ValueError(f"--{str(e).replace('_', '-')}") from None
        if args.k > Grid.of(args.grid).n:
            raise ValueError(f"--k {args.k}: expected at most the {Grid.of(args.grid).n} units of --grid "
                             f"{'x'.join(map(str, args.grid))}")
    if args.no_lateral:
        given = [f"--{name.replace('_', '-')}" for name in ("radius_end", "gain_end") if getattr(args, name) is not None]
        if given:
            shown = " and ".join(f"{g} {getattr(args, g[2:].replace('-', '_'))}" for g in given)
            raise ValueError(f"{shown}: anneals the lateral support, which --no-lateral turns off, so it would have "
                             f"no effect; drop {' and '.join(given)}, or drop --no-lateral to train with the support")
    _check_train_out(Path(args.out), Path(args.activations), args.force)


def _check_extract_out(out: Path, force: bool) -> None:
    """The store's folder: not a file, not inside another activation folder; a folder that holds
    something other than a store (the single-folder artifact, other files) only with --force."""
    from .data.store import is_activation_folder, store_state
    from .io import check_writable

    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: is a file, not a folder; give the folder of the store")
    check_writable(out.parent, "--out", out)
    inside = next((f for f in out.resolve().parents if f.is_dir() and is_activation_folder(f)), None)
    if inside is not None:
        raise ValueError(f"--out {out}: is inside the activation folder {inside}; choose a folder outside it")
    kind, what = store_state(out)
    if kind == "other" and not force:
        raise ValueError(f"--out {out}: {what}; pass --force to replace it, or choose another folder")


def parse_grid(text: str) -> tuple[int, ...]:
    """'30x60' -> (30, 60); '1800' -> (1800,) (one row, the 1D variant)."""
    parts = str(text).lower().replace("*", "x").split("x")
    try:
        sizes = tuple(int(p) for p in parts)
    except ValueError:
        sizes = ()
    if len(sizes) not in (1, 2) or min(sizes, default=0) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected ROWSxCOLS of positive integers such as 30x60 "
                                         "(or N for one row)")
    return sizes


def _pair(text: str) -> tuple[int, int]:
    sizes = parse_grid(text)
    if len(sizes) != 2:
        raise argparse.ArgumentTypeError(f"{text!r}: expected ROWSxCOLS such as 10x12")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    from .backend import BACKENDS
    from .rules.lateral import NEIGHBOURHOODS

    top = argparse.ArgumentParser(prog="python -m hebb_utils", description=__doc__.split("\n\n")[0],
                                  formatter_class=argparse.RawDescriptionHelpFormatter,
                                  epilog="Multi-process: torchrun --nproc_per_node N -m hebb_utils extract|train ...")
    sub = top.add_subparsers(dest="command", required=True, metavar="{extract,train,map,methods}")
    d = argparse.ArgumentDefaultsHelpFormatter

    ex = sub.add_parser("extract", formatter_class=d, help="residual-stream activations -> a sharded store",
                        description="Run a language model over stories and write the residual stream after block "
                                    "LAYER for every token as fixed-size shards (resumes an interrupted run).")
    ex.add_argument("--model", default=None, help="Hub id, local folder (save_pretrained) or .gguf file; default: "
                    "TinyStories-1M, or the offline stand-in SmolLM2-135M-Instruct (GGUF) with HEBB_DATA_MIRROR")
    ex.add_argument("--layer", type=int, default=None, help="keep the residual stream after this block (default: the "
                    "block at the published relative depth, 6 of 8 blocks: 5 of TinyStories-1M, 21 of SmolLM2-135M)")
    ex.add_argument("--dataset", default=None, help="TinyStories Hub id or a local folder of parquet files "
                    "with a 'text' column; default: roneneldan/TinyStories or the mirror's copy")
    ex.add_argument("--split", default="train", help="split of the dataset")
    ex.add_argument("--n-stories", type=int, default=3200, help="the first N stories of the split")
    ex.add_argument("--max-tokens", type=int, default=None, help="real tokens per story (default: the model's limit)")
    ex.add_argument("--center", choices=("auto", "on", "off"), default="auto",
                    help="subtract each token vector's mean; auto: on for causal LMs (as TransformerLens)")
    ex.add_argument("--batch-size", type=int, default=16, help="stories per forward pass")
    ex.add_argument("--shard-rows", type=int, default=None, help="rows per shard (default: 262144)")
    ex.add_argument("--chunk-stories", type=int, default=None, help="stories per extraction chunk (default: 64)")
    ex.add_argument("--dtype", choices=("float32", "float16"), default="float32", help="stored precision")
    ex.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (auto: this rank's GPU if any)")
    ex.add_argument("--no-verify", action="store_true", help="on resume, trust complete shards without hashing them")
    ex.add_argument("--out", required=True, help="the store's folder: new or empty, or a store of the same settings "
                    "(resumed); anything else is refused without --force")
    ex.add_argument("--force", action="store_true", help="replace what --out holds (a store of other settings, a "
                    "single-folder artifact): its activation files are deleted and every shard made again")

    tr = sub.add_parser("train", formatter_class=d, help="train the SoftHebb layer (data-parallel under torchrun)",
                        description="Train a SoftHebb layer with 2D lateral support on stored activations "
                                    "(sharded store or single-folder artifact); the defaults are notebook 05's.")
    tr.add_argument("--activations", required=True, help="folder of `extract` (or of notebook 01)")
    tr.add_argument("--grid", type=parse_grid, required=True, help="the neuron grid ROWSxCOLS, e.g. 30x60")
    tr.add_argument("--rule", choices=RULES, default="softhebb",
                    help="softhebb: the topographic SoftHebb layer (one winner, lateral support); pursuit: Hebbian "
                         "matching pursuit (rules/pursuit.py), --k units per token explaining each other away")
    tr.add_argument("--k", type=int, default=1, help="pursuit: units per token (matching pursuit's iterations)")
    tr.add_argument("--residual-threshold", type=float, default=0.0,
                    help="pursuit: stop coding a token once its residual norm is below this (0: always --k units)")
    tr.add_argument("--offset", action="store_true",
                    help="pursuit: learn a constant the tokens are coded around (x ~ b + aW), for activations with a "
                         "constant part")
    tr.add_argument("--t-invert", type=float, default=LM_TOKENS.t_invert, help="softmax inverse temperature")
    tr.add_argument("--lr", type=float, default=LM_TOKENS.lr, help="step size (max-normalised update)")
    tr.add_argument("--radius", type=float, default=LM_TOKENS.radius, help="lateral support radius (grid units)")
    tr.add_argument("--gain", type=float, default=LM_TOKENS.gain, help="lateral support gain")
    tr.add_argument("--shape", choices=tuple(NEIGHBOURHOODS), default="disc",
                    help="the support's shape: the published disc, or a Gaussian of the grid distance")
    tr.add_argument("--radius-end", type=float, default=None,
                    help="anneal the radius from --radius to this over training (a LateralSchedule, as notebook 06)")
    tr.add_argument("--gain-end", type=float, default=None, help="anneal the gain from --gain to this")
    tr.add_argument("--no-lateral", action="store_true", help="the ablation without lateral support")
    tr.add_argument("--epochs", type=int, default=LM_TOKENS.epochs, help="passes over the activations")
    tr.add_argument("--batch-size", type=int, default=LM_TOKENS.batch_size, help="the GLOBAL batch (all ranks)")
    tr.add_argument("--seed", type=int, default=LM_TOKENS.seed, help="initial weights and batch order")
    tr.add_argument("--shuffle", choices=("global", "shard", "none"), default="global",
                    help="global: one permutation of all rows (as the notebooks); shard: shards in order, rows "
                         "shuffled within each (sequential reads, one shard resident)")
    tr.add_argument("--device", default="auto", help="cpu, cuda ... (auto: this rank's GPU if any)")
    tr.add_argument("--backend", choices=BACKENDS, default="auto",
                    help="auto: the Triton kernels on a GPU that passes their self-check")
    tr.add_argument("--out", required=True, help="checkpoint file (.pt) to write; never inside an activation folder; "
                    "an existing file is refused without --force")
    tr.add_argument("--force", action="store_true", help="replace an existing --out file")

    sub.add_parser("methods", help="list the dictionary methods (dictionaries/registry.py METHODS)",
                   description="The dictionary methods notebook 07 compares, from their registry: the name, "
                               "what the method is, and whether it exports to SAELens' format.")
    mp = sub.add_parser("map", formatter_class=d, help="the map figures and the interactive page",
                        description="Read a trained layer on every token and write the map of words: "
                                    "PREFIXmap.png, PREFIXmap_crop.png, PREFIXmap.html, PREFIXtop_tokens.csv, "
                                    "PREFIXmetrics.json.")
    mp.add_argument("--activations", required=True, help="the folder the layer was trained on")
    mp.add_argument("--checkpoint", required=True, help="the .pt file of `train`")
    mp.add_argument("--out", required=True, help="folder for the figures")
    mp.add_argument("--top-tokens", type=int, default=3, help="distinct tokens that name a neuron")
    mp.add_argument("--purity-top", type=int, default=20, help="activations per neuron for token purity")
    mp.add_argument("--n-shuffles", type=int, default=100, help="shuffled grids of the distance-correlation null")
    mp.add_argument("--crop", type=_pair, default=(10, 12), help="ROWSxCOLS of the legible crop")
    mp.add_argument("--prefix", default="lm_", help="file name prefix")
    mp.add_argument("--device", default="auto", help="where the layer reads the tokens")
    return top


def _say(*args) -> None:
    from .parallel import is_main

    if is_main():
        print(*args, flush=True)


def _extract(args) -> None:
    from .checks import positive_int
    from .data.extract import block_at_depth, default_center, extract_to_shards
    from .data.sources import load_language_model, load_tinystories, model_label, resolve_source
    from .data.store import DEFAULT_CHUNK_STORIES, DEFAULT_SHARD_ROWS, StoreExistsError
    from .parallel import local_device, rank_world
    from .io import portable

    # the settings and the folder first: a misuse costs no model load
    if args.layer is not None:
        positive_int("layer", args.layer, minimum=0, hint="the block after which the residual stream is kept")
    for name in ("n_stories", "batch_size", "shard_rows", "chunk_stories", "max_tokens"):
        if getattr(args, name) is not None:
            positive_int(name, getattr(args, name))
    out = Path(args.out)
    _check_extract_out(out, args.force)
    device = str(local_device(args.device))
    model, tokenizer, info = load_language_model(args.model, device=device)
    if info["offline_stand_in"]:
        _say(f"{model_label(info)}: label every result as such.")
    layer = block_at_depth(info["n_layers"]) if args.layer is None else args.layer
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stories = load_tinystories(args.n_stories, dataset=args.dataset, split=args.split)
    for w in caught:
        _say("note:", w.message)
    data_source = portable({**resolve_source("tinystories", args.dataset), "split": args.split,
                            "n_stories_requested": args.n_stories, "n_stories": len(stories)})
    center = default_center(info) if args.center == "auto" else args.center == "on"
    start = time.perf_counter()
    try:
        out = extract_to_shards(model, tokenizer, stories, out, layer=layer, center=center,
                                batch_size=args.batch_size, max_tokens=args.max_tokens, device=device,
                                shard_rows=DEFAULT_SHARD_ROWS if args.shard_rows is None else args.shard_rows,
                                chunk_stories=DEFAULT_CHUNK_STORIES if args.chunk_stories is None else args.chunk_stories,
                                dtype=args.dtype, meta={"model": info, "data_source": data_source},
                                verify=not args.no_verify, force=args.force)
    except StoreExistsError as e:
        raise ValueError(f"--out {args.out}: {e.reason}; run with the same settings to resume it, pass --force to "
                         "replace it, or choose another folder") from None
    if rank_world()[1] > 1:
        import torch.distributed as dist

        dist.barrier()  # every rank's shards written: the last one has completed the manifest
    manifest = json.loads((Path(out) / "manifest.json").read_text())
    counts = manifest["counts"]
    _say(f"{args.out}: {counts['n_tokens']:,} tokens x {counts['d_model']} in {counts['n_shards']} shard(s) "
         f"({manifest['dtype']}), {len(stories)} stories, layer {layer}, center={center}; "
         f"{'complete' if manifest['complete'] else 'other ranks still writing'} ({time.perf_counter() - start:.1f} s)")


def _train(args) -> None:
    from .data.store import load_activations
    from .parallel import is_main, local_device, rank_world
    from .report.lm_map import source_of
    from .rules.checkpoint import lateral_of, save_checkpoint
    from .rules.layer import SoftHebbLinear
    from .rules.training import train_softhebb_parallel

    _check_train_out(Path(args.out), Path(args.activations), args.force)
    data = load_activations(args.activations, stream=True)
    device = local_device(args.device)
    n = Grid.of(args.grid).n
    config = {"grid": list(args.grid), "t_invert": args.t_invert, "lr": args.lr, "radius": args.radius,
              "gain": args.gain, "shape": args.shape, "radius_end": args.radius_end, "gain_end": args.gain_end,
              "lateral": not args.no_lateral, "epochs": args.epochs, "batch_size": args.batch_size,
              "seed": args.seed, "shuffle": args.shuffle, "in_features": data.dim,
              "activations": str(args.activations)}  # what `train` was asked: saved as the checkpoint's config
    lateral = None if args.rule == "pursuit" else lateral_of(config)
    _, world = rank_world()
    _check_fits(args, n, data.dim, len(data), world, device, lateral)
    if args.rule == "pursuit":
        from .rules.pursuit import PursuitLinear

        config = {k: v for k, v in config.items() if k not in SOFTHEBB_ONLY + ("lateral",)}
        config.update(rule="pursuit", k=args.k, residual_threshold=args.residual_threshold, offset=args.offset)
        layer = PursuitLinear(data.dim, n, args.k, args.residual_threshold, grid=args.grid if len(args.grid) == 2 else None,
                              offset=args.offset, seed=args.seed, device=device)
    else:
        layer = SoftHebbLinear(data.dim, n, args.t_invert, lateral=lateral, seed=args.seed, device=device)
    source = source_of(data)
    _say(f"training {n} neurons on a {'x'.join(map(str, args.grid))} grid on {source['label']} "
         f"({world} process(es), global batch {args.batch_size})")
    layer, info = train_softhebb_parallel(layer, data, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                          seed=args.seed, shuffle=args.shuffle, device=device, backend=args.backend)
    config["world_size"] = world
    if is_main():
        try:
            save_checkpoint(args.out, layer, config, variant="no lateral support" if args.no_lateral else "lateral support",
                            source=source, wins=info["wins"],
                            train={k: info[k] for k in ("steps", "seconds", "samples_per_s")})
        except OSError as e:  # named by --out, not by the temporary file next to it
            raise ValueError(f"--out {args.out}: the checkpoint could not be written ({e.strerror or e}); "
                             "write it to a folder that can be written") from None
    _say(f"{args.out}: {info['steps']} steps in {info['seconds']:.1f} s ({info['samples_per_s']:,.0f} samples/s); "
         f"{int((info['wins'] == 0).sum())} of {n} neurons never won")


GIB = 2.0 ** 30


def _bytes(n: float) -> str:
    for unit in ("GiB", "TiB", "PiB", "EiB"):
        if n < 1024 * GIB or unit == "EiB":
            return f"{n / GIB:,.1f} {unit}"
        n /= 1024


def _memory_of(device) -> tuple[int, str] | None:
    """(bytes, what) that tensors on `device` can ever hold: a GPU's memory, or the machine's RAM + swap
    for the CPU (the most an allocation could get; limits below it are not counted). None: unknown."""
    import torch

    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return int(props.total_memory), f"{device} ({props.name})"
    if device.type != "cpu":
        return None
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
    swap = 0
    try:
        with open("/proc/meminfo") as f:
            swap = next((int(line.split()[1]) * 1024 for line in f if line.startswith("SwapTotal:")), 0)
    except (OSError, ValueError, IndexError):
        pass
    return ram + swap, "this machine's RAM + swap" if swap else "this machine's RAM"


def _lateral_bytes(lateral, batch: int, n: int) -> int:
    """A lower bound of the bytes the torch reference's lateral term holds in one step of `batch` winners:
    the disc's neighbour indices (batch, K) (three int64 and one bool), or the Gaussian's (batch, N) weights
    (two float32). K is counted from the square inside the disc, which the support always holds."""
    from .constants import RADIUS_EPS
    from .rules.lateral import NEIGHBOURHOODS, LateralSchedule

    if lateral is None:
        return 0
    if isinstance(lateral, LateralSchedule):
        lateral = lateral.at(1.0)  # the last step's support: every run takes it
    if not (lateral.is_1d or NEIGHBOURHOODS[lateral.shape].cut_off):  # a dense (batch, N) weight
        return 2 * 4 * batch * n
    radius = min(lateral.radius, float(lateral.rows + lateral.cols))
    if lateral.is_1d:
        k = 2 * min(math.floor(radius), lateral.cols - 1)
    else:
        reach = min(math.floor(math.sqrt(radius ** 2 + RADIUS_EPS)), max(lateral.rows, lateral.cols) - 1)
        k = (2 * min(math.floor(math.sqrt((radius ** 2 + RADIUS_EPS) / 2)), reach) + 1) ** 2
    return (3 * 8 + 1) * batch * k


def _check_fits(args, n: int, dim: int, rows: int, world: int, device, lateral) -> None:
    """Refuse a --grid whose matrices cannot fit where they go, before any is allocated.

    Counted (float32): the weights (N, D) three times (the layer, its first snapshot, each step's
    update), a step's (batch, N) pre-activations and post-synaptic values, and with the torch backend the
    lateral term's matrices; on a GPU the CPU also holds the initial weights twice. All of these exist
    at once in every run, so the count is a lower bound of the need and no run that fits is refused."""
    batch = args.batch_size if isinstance(args.batch_size, int) and args.batch_size > 0 else 0
    batch = math.ceil(min(batch, rows) / max(world, 1))  # this rank's rows of a step
    weights = 4 * n * dim
    per_step = 2 * 4 * batch * n
    torch_backend = args.backend == "torch" or (device.type == "cpu" and args.backend == "auto")
    lateral_step = _lateral_bytes(lateral, batch, n) if torch_backend else 0
    needs = [(device, 3 * weights + per_step + lateral_step)]
    if device.type != "cpu":
        import torch

        needs.append((torch.device("cpu"), 2 * weights))  # drawn on the CPU (seeded there), then moved
    for where, need in needs:
        memory = _memory_of(where)
        if memory is None or need <= memory[0]:
            continue
        grid = "x".join(map(str, args.grid))
        parts = [f"3 x {_bytes(weights)} for the weights: the layer, its snapshot, each step's update"
                 if where == device else f"2 x {_bytes(weights)} to draw the initial weights"]
        if where == device and per_step:
            parts.append(f"{_bytes(per_step)} for a step's (batch, neurons) matrices at {batch} rows per process")
        if where == device and lateral_step >= 0.05 * GIB:
            parts.append(f"{_bytes(lateral_step)} for the lateral support's neighbour matrices")
        smaller = "a smaller --grid or --radius" if len(parts) == 3 else "a smaller --grid"
        raise ValueError(f"--grid {grid}: {n:,} neurons of {dim} features need at least {_bytes(need)} on {where} "
                         f"({'; '.join(parts)}), but {memory[1]} holds {_bytes(memory[0])}: use {smaller} "
                         "(or fewer features, or a device with more memory)")


def _map(args) -> None:
    """Every setting, the output folder and the inputs are checked before the first file is written;
    write_token_map then writes all five files or none. The files never land on the checkpoint or in
    the activations."""
    import re

    import torch

    from .data.store import load_activations
    from .parallel import is_main, local_device
    from .report.lm_map import check_map_output, check_map_settings, write_token_map
    from .rules.checkpoint import load_checkpoint

    if not is_main():
        return
    options = {"top_tokens": "--top-tokens", "purity_top": "--purity-top", "n_shuffles": "--n-shuffles",
               "crop": "--crop", "prefix": "--prefix"}
    try:
        check_map_settings(top_tokens=args.top_tokens, purity_top=args.purity_top, n_shuffles=args.n_shuffles,
                           crop=args.crop, prefix=args.prefix)
    except ValueError as e:
        key = re.match(r"\w*", str(e)).group(0)
        raise ValueError(f"{options.get(key, key)}: {e}") from None
    checkpoint = Path(args.checkpoint)
    check_map_output(args.out, args.prefix, name="--out", protect={"--checkpoint": checkpoint},
                     protect_folders={"--activations": args.activations})
    device = local_device(args.device)
    try:
        layer, saved = load_checkpoint(checkpoint, device)
    except FileNotFoundError:
        raise
    except ValueError as e:
        raise ValueError(str(e) if str(checkpoint) in str(e) else f"--checkpoint {checkpoint}: {e}") from None
    except Exception as e:  # noqa: BLE001  unpickling errors, a config without a key, weights of another shape
        what = " ".join(str(e).split())[:300]
        raise ValueError(f"--checkpoint {checkpoint}: not a readable checkpoint of `python -m hebb_utils train` "
                         f"({type(e).__name__}: {what})") from None
    data = load_activations(args.activations, stream=True)
    if data.dim != layer.in_features:
        raise ValueError(f"--activations has {data.dim} features per token but the checkpoint's layer was trained on "
                         f"{layer.in_features}: pass the activations it was trained on")
    metrics = write_token_map(layer, data, args.out, top_tokens=args.top_tokens, purity_top=args.purity_top,
                              n_shuffles=args.n_shuffles, crop=args.crop, seed=saved["config"]["seed"],
                              prefix=args.prefix, config=saved["config"])
    shown = ", ".join(f"{k} {metrics[k]:.4f}" for k in ("topographic_error", "distance_rho", "dead_fraction", "token_purity"))
    print(f"{args.out}: {args.prefix}map.png, {args.prefix}map_crop.png, {args.prefix}map.html, "
          f"{args.prefix}top_tokens.csv, {args.prefix}metrics.json; {shown}", flush=True)


def _methods(args) -> None:
    from .dictionaries.registry import METHODS

    width = max(map(len, METHODS))
    for name, m in METHODS.items():
        export = f"; SAELens export: {m.export.__module__}.{m.export.__name__}" if m.export else ""
        print(f"{name:<{width}}  {m.description} (fit: {m.fit.__name__}{export})")


def main(argv=None) -> int:
    from .data.sources import DataSourceError
    from .parallel import DistributedError, init_distributed

    parser = build_parser()
    argv = _numbers_as_values([str(a) for a in (sys.argv[1:] if argv is None else argv)])
    args = parser.parse_args(argv)  # a bad option: argparse's usage line and exit code 2
    run = {"extract": _extract, "train": _train, "map": _map, "methods": _methods}[args.command]
    try:
        if args.command == "train":  # the settings and --out before the process group: no rank waits for them
            _check_train_options(args)
        if args.command in ("extract", "train"):
            init_distributed()
        run(args)
    except (ValueError, OSError, DataSourceError, DistributedError) as e:  # OSError: a path that cannot be written
        message = " ".join(line.strip() for line in str(e).splitlines() if line.strip()) or type(e).__name__
        # one write per line: under torchrun the ranks' lines do not run into each other
        sys.stderr.write(f"python -m hebb_utils {args.command}: error: {message}\n")
        sys.stderr.flush()
        return 2
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return 0
