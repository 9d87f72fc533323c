"""Data-parallel training on torch.distributed: 2 real gloo processes (torchrun) against one process.

The equivalence: 2 ranks with a global batch of 64 give the weights of one process with batch 64
(to float tolerance: the sums are added in another order), with the same winner for every sample
of every step, the same BatchNorm running statistics and the same winner counts."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from hebb_utils import Lateral, LateralSchedule, SoftHebbLinear, load_activations, oja, sanger, train_softhebb
from hebb_utils import train_softhebb_parallel
from hebb_utils.parallel import batch_slice
from hebb_utils import write_shards

N_ROWS, D, GRID, BATCH = 64 * 20 + 3, 16, (4, 6), 64  # 21 steps per epoch, the last of 3 rows split 2 + 1
SETTINGS = dict(epochs=2, batch_size=BATCH, lr=0.1, seed=5)

WORKER = textwrap.dedent("""
    import sys, torch
    from hebb_utils import Lateral, SoftHebbLinear, load_activations
    from hebb_utils import init_distributed, oja_parallel, sanger_parallel, train_softhebb_parallel
    sys.path.insert(0, sys.argv[2])
    from test_distributed import SETTINGS, data, layer, annealed_layer, pursuit_layer
    rank, world = init_distributed()
    assert world == 2 and torch.distributed.get_backend() == "gloo"
    X = data()
    out = {}
    l, info = train_softhebb_parallel(layer(), X, progress=False, record_winners=True, **SETTINGS)
    out["softhebb"] = (l.weight, l.bn.state_dict(), info["winners"], info["wins"])
    view = load_activations(sys.argv[3], stream=True)  # the same rows as shards
    for shuffle in ("global", "shard"):
        l, info = train_softhebb_parallel(layer(), view, progress=False, record_winners=True, shuffle=shuffle, **SETTINGS)
        out[shuffle] = (l.weight, l.bn.state_dict(), info["winners"], info["wins"])
    l, info = train_softhebb_parallel(annealed_layer(), X, progress=False, record_winners=True, **SETTINGS)
    out["annealed"] = (l.weight, l.bn.state_dict(), info["winners"], info["wins"])
    l, info = train_softhebb_parallel(pursuit_layer(), X, progress=False, record_winners=True, **SETTINGS)
    out["pursuit"] = (l.weight, l.usage, info["winners"], info["wins"], l.bias, l.bias_seen)
    out["sanger"] = sanger_parallel(X, 4, batch_size=64, steps=20, seed=1)
    out["oja"] = oja_parallel(X, batch_size=64, steps=20, seed=1)
    if rank == 0:
        torch.save(out, sys.argv[1])
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
""")


def data() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    X = torch.randn(N_ROWS, D, generator=g) * torch.linspace(0.5, 3, D) + 1.0
    X[:, 3] = 2.0  # a constant feature: normalised to 0 over every global batch
    return X


def layer() -> SoftHebbLinear:
    return SoftHebbLinear(D, GRID[0] * GRID[1], t_invert=20.0, lateral=Lateral(GRID, radius=1.0, gain=0.3), seed=3)


def annealed_layer() -> SoftHebbLinear:
    """An annealed Gaussian support (LateralSchedule): each step's support follows the global step."""
    schedule = LateralSchedule(GRID, radius=(3.0, 0.8), gain=(2.0, 0.5), shape="gaussian")
    return SoftHebbLinear(D, GRID[0] * GRID[1], t_invert=20.0, lateral=schedule, seed=3)


def pursuit_layer():
    """Hebbian matching pursuit (3 units per input, a learned offset): its sums are added over the ranks."""
    from hebb_utils.rules.pursuit import PursuitLinear

    return PursuitLinear(D, GRID[0] * GRID[1], k=3, seed=3, h0=10.0, offset=True)


def _one_process(X_or_view, shuffle="global", make_layer=layer):
    l, info = train_softhebb_parallel(make_layer(), X_or_view, progress=False, record_winners=True, shuffle=shuffle,
                                      **SETTINGS)
    return l.weight, l.bn.state_dict(), info["winners"], info["wins"]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Runs the worker under torchrun with 2 gloo processes on the CPU; returns (rank 0's results, shards)."""
    tmp = tmp_path_factory.mktemp("dp")
    write_shards(tmp / "shards", data().numpy(), shard_rows=300)  # 5 shards, the last of 83 rows
    (tmp / "worker.py").write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(tmp / "worker.py"), str(tmp / "out.pt"), os.path.dirname(__file__), str(tmp / "shards")]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return torch.load(tmp / "out.pt", weights_only=False), tmp / "shards"


def _same_run(a, b, atol=2e-5):
    (Wa, bna, winners_a, wins_a), (Wb, bnb, winners_b, wins_b) = a, b
    assert len(winners_a) == len(winners_b) == SETTINGS["epochs"] * 21
    for step, (x, y) in enumerate(zip(winners_a, winners_b)):
        assert torch.equal(x, y), f"winners differ at step {step}"
    assert torch.equal(wins_a, wins_b)
    torch.testing.assert_close(Wa, Wb, atol=atol, rtol=1e-4)
    for key in ("running_mean", "running_var"):
        torch.testing.assert_close(bna[key], bnb[key], atol=1e-5, rtol=1e-5)
    assert int(bna["num_batches_tracked"]) == int(bnb["num_batches_tracked"]) == len(winners_a)


def test_one_process_is_train_softhebb_exactly():
    X = data()
    ref, _ = train_softhebb(layer(), X, progress=False, **SETTINGS)
    W, bn, winners, wins = _one_process(X)
    assert torch.equal(W, ref.weight)
    assert torch.equal(bn["running_var"], ref.bn.running_var)
    assert int(wins.sum()) == SETTINGS["epochs"] * N_ROWS and len(winners) == 42


def test_two_gloo_ranks_give_the_weights_of_one_process(two_ranks):
    out, _ = two_ranks
    one = _one_process(data())
    _same_run(out["softhebb"], one)
    diff = float((out["softhebb"][0] - one[0]).abs().max())
    print(f"2 ranks vs 1 process, SoftHebb: max |dW| = {diff:.2e}")


def test_two_ranks_with_an_annealed_support(two_ranks):
    out, _ = two_ranks
    one = _one_process(data(), make_layer=annealed_layer)
    _same_run(out["annealed"], one)
    ref, _ = train_softhebb(annealed_layer(), data(), progress=False, **SETTINGS)  # one process is train_softhebb's
    assert torch.equal(one[0], ref.weight)


def test_two_ranks_streaming_from_shards(two_ranks):
    out, shards = two_ranks
    view = load_activations(shards, stream=True)
    assert view.n_shards == 5
    _same_run(out["global"], _one_process(data()))  # global shuffle from shards == in memory
    _same_run(out["shard"], _one_process(view, shuffle="shard"))


def test_two_ranks_matching_pursuit(two_ranks):
    out, _ = two_ranks
    l, info = train_softhebb_parallel(pursuit_layer(), data(), progress=False, record_winners=True, **SETTINGS)
    W, usage, winners, wins, bias, seen = out["pursuit"]
    for step, (x, y) in enumerate(zip(winners, info["winners"])):
        assert torch.equal(x, y), f"the strongest unit differs at step {step}"
    assert torch.equal(wins, info["wins"]) and len(winners) == 42
    torch.testing.assert_close(W, l.weight, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(usage, l.usage, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(bias, l.bias, atol=2e-5, rtol=1e-4)
    assert float(seen) == float(l.bias_seen) == SETTINGS["epochs"] * len(data()) and float(l.bias.norm()) > 0
    # one process is the layer's own step, batch after batch, in the loop's order (one generator, a
    # permutation per epoch)
    ref, X, generator = pursuit_layer(), data(), torch.Generator().manual_seed(SETTINGS["seed"])
    for _ in range(SETTINGS["epochs"]):
        order = torch.randperm(len(X), generator=generator)
        for i in range(0, len(X), BATCH):
            ref.train_step(X[order[i: i + BATCH]], SETTINGS["lr"])
    assert torch.equal(ref.weight, l.weight) and not torch.equal(ref.weight, pursuit_layer().weight)


def test_two_ranks_sanger_and_oja(two_ranks):
    out, _ = two_ranks
    X = data()
    torch.testing.assert_close(out["sanger"], sanger(X, 4, batch_size=64, steps=20, seed=1, backend="torch"),
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["oja"], oja(X, batch_size=64, steps=20, seed=1, backend="torch"), atol=1e-5, rtol=1e-5)


def test_batch_slice_splits_like_array_split():
    for n in (0, 1, 3, 64, 65):
        for world in (1, 2, 3, 8):
            parts = [batch_slice(n, r, world) for r in range(world)]
            expect = np.array_split(np.arange(n), world)
            assert [list(range(a, b)) for a, b in parts] == [e.tolist() for e in expect]


def test_shard_shuffle_reads_shards_in_order(tmp_path):
    """shuffle='shard': every batch of an epoch comes from the shard being read (or the next one)."""
    X = torch.arange(40, dtype=torch.float32)[:, None].repeat(1, 3) + torch.randn(40, 3) * 0.01
    write_shards(tmp_path / "s", X.numpy(), shard_rows=10)
    view = load_activations(tmp_path / "s", stream=True)
    from hebb_utils.rules.training import _Order

    order = _Order(40, "shard", torch.Generator().manual_seed(0), view.offsets)
    rows = torch.cat([order.rows(a, min(a + 8, 40)) for a in range(0, 40, 8)])
    assert sorted(rows.tolist()) == list(range(40))
    assert [sorted(rows[k * 10:(k + 1) * 10].tolist()) for k in range(4)] == [list(range(k * 10, k * 10 + 10)) for k in range(4)]


def test_bad_inputs(tmp_path):
    X = data()
    with pytest.raises(ValueError, match="shuffle='sometimes'"):
        train_softhebb_parallel(layer(), X, shuffle="sometimes")
    with pytest.raises(ValueError, match="batch_size=1"):
        train_softhebb_parallel(layer(), X, batch_size=1)
    with pytest.raises(ValueError, match="layer: expected a SoftHebbLinear"):
        train_softhebb_parallel(torch.nn.Linear(2, 2), X)
    write_shards(tmp_path / "s", np.ones((10, 5), np.float32))
    with pytest.raises(ValueError, match="5 features per row but the layer has in_features=16"):
        train_softhebb_parallel(layer(), load_activations(tmp_path / "s", stream=True))


# ------------------------------------------------------------------------------------------------
# ranks that cannot train together: a clear error on every rank, never a hang or a silent drift

THREE_RANKS = textwrap.dedent("""
    import sys, torch
    from hebb_utils import SoftHebbLinear, Lateral, init_distributed, train_softhebb_parallel
    rank, world = init_distributed()
    assert world == 3
    g = torch.Generator().manual_seed(0)
    X = torch.randn(300, 6, generator=g)
    def make():
        return SoftHebbLinear(6, 20, 20.0, lateral=Lateral((4, 5)), seed=1)
    out = {}
    # 300 rows at a global batch of 149: the last batch has 2 rows for 3 ranks, one rank holds none
    l, info = train_softhebb_parallel(make(), X, batch_size=149, lr=0.1, progress=False, record_winners=True)
    out["short"] = (l.weight.clone(), info["winners"])
    for name, kwargs, data in (("lr", dict(lr=0.1 if rank else 0.2), X),
                               ("batch_size", dict(batch_size=64 + rank), X),
                               ("rows of data", {}, X[: 300 - rank]),
                               ("data", {}, X + (rank == 2))):
        kwargs = {"lr": 0.1, "batch_size": 64, **kwargs}
        try:
            train_softhebb_parallel(make(), data, progress=False, **kwargs)
            out[name] = "trained"
        except ValueError as e:
            out[name] = str(e)
    torch.save(out, sys.argv[1] + f".{rank}")
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
""")


def test_three_ranks_short_last_batch_and_disagreeing_settings(tmp_path):
    (tmp_path / "worker.py").write_text(THREE_RANKS)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "3",
           str(tmp_path / "worker.py"), str(tmp_path / "out.pt")]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    outs = [torch.load(tmp_path / f"out.pt.{r}", weights_only=False) for r in range(3)]
    # the short last batch: every rank ends with the weights of one process with the same global batch
    g = torch.Generator().manual_seed(0)
    X = torch.randn(300, 6, generator=g)
    one, info = train_softhebb_parallel(SoftHebbLinear(6, 20, 20.0, lateral=Lateral((4, 5)), seed=1), X,
                                        batch_size=149, lr=0.1, progress=False, record_winners=True)
    assert len(info["winners"]) == 3 and [len(w) for w in info["winners"]] == [149, 149, 2]
    for out in outs:
        torch.testing.assert_close(out["short"][0], one.weight, atol=2e-5, rtol=1e-4)
        assert all(torch.equal(a, b) for a, b in zip(out["short"][1], info["winners"]))
    # a rank started with other settings or data: every rank says which, and what each rank had
    for name in ("lr", "batch_size", "rows of data", "data"):
        for out in outs:
            assert out[name].startswith(f"the 3 ranks disagree on {name}: rank 0 has"), (name, out[name])


@pytest.mark.parametrize("rank", [0, 1])
def test_a_missing_peer_fails_fast_with_a_message(tmp_path, rank):
    """WORLD_SIZE=2 with one process: rank 0 waits for a client, rank 1 for a master; both give up."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    write_shards(tmp_path / "acts", np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32))
    env = {**os.environ, "WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(port), "HEBB_JOIN_TIMEOUT_S": "3", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    run = subprocess.run([sys.executable, "-m", "hebb_utils", "train", "--activations", str(tmp_path / "acts"),
                          "--grid", "2x3", "--out", str(tmp_path / "l.pt")], capture_output=True, text=True,
                         timeout=60, env=env)
    assert run.returncode == 2, run.stderr[-2000:]
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert f"rank {rank} of WORLD_SIZE=2: the process group did not form within 3 s" in run.stderr
    assert not (tmp_path / "l.pt").exists()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e30])
@pytest.mark.parametrize("entry", ["train_softhebb", "train_softhebb_parallel"])
def test_streamed_batches_are_checked(tmp_path, bad, entry):
    """A store is read batch by batch: each batch is checked as in-memory data are, before BatchNorm."""
    write_shards(tmp_path / "s", data().numpy(), shard_rows=300)
    view = load_activations(tmp_path / "s", stream=True)
    real_take = view.take

    def take(rows):  # what a shard damaged after its hash was taken would give
        x = real_take(rows).clone()
        if len(x) and 200 in rows:
            x[0, 2] = bad
        return x

    view.take = take
    train = train_softhebb if entry == "train_softhebb" else train_softhebb_parallel
    l0 = layer()
    with pytest.raises(ValueError, match=r"data \(the store .*\) (contains 1 NaN or inf|holds values up to)"):
        train(l0, view, progress=False, shuffle="none", batch_size=64, lr=0.1)
    assert torch.isfinite(l0.weight).all()
