"""Bad input to the activation store, refused with a ValueError that names the argument and the fix
(each was accepted before: silently, wrongly, or with a raw error), and the valid inputs beside
each, which behave as they did."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from hebb_utils import (Activations, SoftHebbLinear, load_activations, load_tinystories, open_activations,
                        save_activations, train_softhebb, write_shards)
from hebb_utils.data.store import ShardWriter, read_artifact
from test_store_safety import digests
from test_store_safety import table as store_table

ROWS, DIM, SHARD_ROWS = 50, 4, 16  # 4 shards: 16, 16, 16 and 2 rows
STORIES = [f"story {i}" for i in range(5)]


def table(n: int = ROWS) -> pd.DataFrame:
    return store_table(n).assign(story_id=np.arange(n) * len(STORIES) // n)  # the token table, for 5 stories


@pytest.fixture
def acts():
    return np.random.default_rng(0).standard_normal((ROWS, DIM)).astype(np.float32)


@pytest.fixture
def store(tmp_path, acts):
    return write_shards(tmp_path / "store", acts, tokens=table(), stories=STORIES, shard_rows=SHARD_ROWS)


# 1. take: fractional indices ----------------------------------------------------------------------

def test_take_refuses_fractional_indices(store, acts):
    view = open_activations(store)
    for rows in ([1.7], np.array([0.0, 3.0]), torch.tensor([2.5])):  # was: row 1 (1.7 truncated), rows 0 and 3, row 2
        with pytest.raises(ValueError, match=r"rows has dtype float\S*: expected integer row indices .*dtype=np.int64"):
            view.take(rows)
    # integer indices of every kind read exactly the rows they name, as before
    for rows in ([3, 1, 40], np.array([3, 1, 40], np.int32), np.array([3, 1, 40], np.uint16), torch.tensor([3, 1, 40])):
        assert torch.equal(view.take(rows), torch.from_numpy(acts[[3, 1, 40]]))
    assert torch.equal(view.take(7), torch.from_numpy(acts[[7]]))
    assert view.take([]).shape == (0, DIM)  # an empty list (float64 to numpy) is no rows, as before
    assert torch.equal(view.read(10, 20), torch.from_numpy(acts[10:20]))
    with pytest.raises(IndexError):
        view.take([ROWS])


# 2. take: a boolean mask --------------------------------------------------------------------------

def test_take_refuses_a_boolean_mask(store):
    view = open_activations(store)
    mask = np.zeros(ROWS, dtype=bool)
    mask[[3, 10, 20]] = True
    for given in (mask, torch.from_numpy(mask), [True, False]):  # was: 50 rows, each row 0 or row 1
        with pytest.raises(ValueError, match=r"rows has dtype bool: a mask.*np\.flatnonzero\(mask\)"):
            view.take(given)
    assert view.take(np.flatnonzero(mask)).shape == (3, DIM)


# 3. verify (and the other flags): a bool, not a truthy string ---------------------------------------

def test_verify_must_be_a_bool(store, tmp_path, acts):
    save_activations(tmp_path / "legacy", Activations(acts=acts, tokens=table(), stories=STORIES,
                                                      meta={"model": {"name": "m", "offline_stand_in": False}}))
    for folder in (store, tmp_path / "legacy"):
        for call in (lambda: open_activations(folder, verify="yes"),  # was: accepted (read as True)
                     lambda: load_activations(folder, verify="yes"),
                     lambda: load_activations(folder, stream=True, verify="no"),  # was: read as True
                     lambda: open_activations(folder, verify=1)):
            with pytest.raises(ValueError, match=r"verify=('yes'|'no'|1): expected True or False"):
                call()
    with pytest.raises(ValueError, match=r"stream='no': expected True or False"):
        load_activations(store, stream="no")  # was: a streamed view
    with pytest.raises(ValueError, match=r"mmap='yes': expected True or False"):
        read_artifact(tmp_path / "legacy", mmap="yes")
    # True and False (numpy's too) as before
    assert open_activations(store, verify=True).shape == (ROWS, DIM)
    assert open_activations(store, verify=np.False_).shape == (ROWS, DIM)
    assert np.array_equal(load_activations(tmp_path / "legacy", verify=True).acts, acts)


# 4. max_open: a positive integer or None ---------------------------------------------------------

def test_max_open_must_be_a_positive_integer_or_none(store, acts):
    for bad in (1.5, 0, -1, True, "2"):  # 1.5 was accepted (and held one shard open)
        with pytest.raises(ValueError, match=rf"max_open={bad!r}: expected an integer >= 1 .*None for all"):
            open_activations(store, max_open=bad)
    for good in (1, 2, np.int64(3), None):
        view = open_activations(store, max_open=good)
        assert torch.equal(view.take(np.arange(ROWS)), torch.from_numpy(acts))
        assert len(view._open) == (view.n_shards if good is None else min(int(good), view.n_shards))


# 5. write_shards: values the store's dtype cannot hold -------------------------------------------

def test_write_shards_refuses_values_float16_cannot_hold(store, tmp_path, acts):
    big = acts.copy()
    big[3, 1] = 1e5  # was: written as inf
    before = digests(store)
    with pytest.raises(ValueError, match=r"acts holds values up to 100000 in magnitude, more than dtype='float16' can "
                                         r"hold \(largest 65504\): .*inf; write with dtype='float32'.*nothing was written"):
        write_shards(store, big, tokens=table(), stories=STORIES, shard_rows=SHARD_ROWS, dtype="float16")
    assert digests(store) == before  # the old store, untouched, still opens
    assert torch.equal(open_activations(store).take(np.arange(ROWS)), torch.from_numpy(acts))
    with pytest.raises(ValueError, match="float16"):
        write_shards(tmp_path / "new", -big, dtype="float16")
    assert not (tmp_path / "new").exists()
    with pytest.raises(ValueError, match=r"dtype='float32' can hold.*rescale the values"):  # float64 beyond float32
        write_shards(tmp_path / "new", np.full((2, 2), 1e39), dtype="float32")
    # what fits is written as before: float32 keeps 1e5, float16 the largest value it holds
    write_shards(tmp_path / "f32", big, dtype="float32")
    assert open_activations(tmp_path / "f32").take([3])[0, 1] == 1e5
    edge = acts.copy()
    edge[0, 0] = 65504.0
    write_shards(tmp_path / "f16", edge, dtype="float16")
    assert open_activations(tmp_path / "f16").take([0])[0, 0] == 65504.0


# 6. write_shards: NaN and inf --------------------------------------------------------------------

def test_write_shards_refuses_non_finite_rows(store, tmp_path, acts):
    bad = acts.copy()
    bad[5, 2] = np.nan  # was: written, and read back as NaN
    bad[9] = np.inf
    before = digests(store)
    with pytest.raises(ValueError, match=r"acts contains 5 NaN or inf value\(s\) \(in 2 row\(s\)\): expected finite "
                                         r"numbers \(drop or impute those rows first\); nothing was written"):
        write_shards(store, bad, tokens=table(), stories=STORIES, shard_rows=SHARD_ROWS)
    assert digests(store) == before
    with pytest.raises(ValueError, match="1 NaN or inf"):
        write_shards(tmp_path / "new", np.array([[1.0, np.nan], [2.0, 3.0]], np.float32), dtype="float16")
    assert not (tmp_path / "new").exists()


# 7. a single string is not a list of stories (nor a count of them) ---------------------------------

def test_a_single_string_is_not_a_list_of_stories(store, tmp_path, acts):
    before = digests(store)
    with pytest.raises(ValueError, match=r"stories='one story': a single string, which would be stored as 9 "
                                         r"one-character stories; pass a list of texts"):
        write_shards(store, acts, stories="one story")  # was: a store of 9 stories, 'o', 'n', 'e', ...
    assert digests(store) == before
    with pytest.raises(ValueError, match=r"result.stories='one story': a single string"):
        save_activations(tmp_path / "legacy", Activations(acts=acts, tokens=table().assign(story_id=0),
                                                          stories="one story"))
    with pytest.raises(ValueError, match=r"stories='one story': a single string"):
        save_activations(tmp_path / "legacy", Activations(acts=acts, tokens=table().assign(story_id=0)),
                         stories="one story")
    assert not (tmp_path / "legacy").exists()
    with pytest.raises(ValueError, match=r"stories\[1\] is int 2: expected a list of story texts \(str\)"):
        ShardWriter(tmp_path / "w", ROWS, DIM, ["a", 2])
    with pytest.raises(ValueError, match=r"stories: expected a list of story texts, got int"):
        write_shards(tmp_path / "w", acts, stories=3)
    # the count of load_tinystories is an integer (refused before any data is read)
    for count in ("one story", "9", 2.5, True):
        with pytest.raises(ValueError, match=rf"n_stories={count!r}: expected an integer >= 1"):
            load_tinystories(count)
    # lists (and tuples) of texts as before
    write_shards(tmp_path / "ok", acts, stories=("a", "b"))
    assert open_activations(tmp_path / "ok").stories == ["a", "b"]
    write_shards(tmp_path / "none", acts)
    assert open_activations(tmp_path / "none").stories == []


# 8. a store whose rows are all the same --------------------------------------------------------

def test_a_store_of_constant_rows_warns_on_opening(tmp_path, acts):
    same = np.tile(acts[:1], (ROWS, 1))
    write_shards(tmp_path / "same", same, shard_rows=SHARD_ROWS)
    with pytest.warns(UserWarning, match=r"same: all 50 rows are the same row: training on it cannot move the "
                                         r"weights"):
        view = open_activations(tmp_path / "same")
    # what the warning says: the weights after training are the initial ones (as before: no refusal)
    layer = SoftHebbLinear(DIM, 6, 20.0, seed=1)
    w0 = layer.weight.clone()
    train_softhebb(layer, view, batch_size=8, progress=False)
    assert torch.equal(layer.weight, w0)
    # a big store: only the rows at the ends of each shard are read, and the warning says so
    write_shards(tmp_path / "big", np.ones((40000, 3), np.float32), shard_rows=20000)
    with pytest.warns(UserWarning, match=r"big: the \d+ rows read on opening \(up to 64 KiB at each end of each "
                                         r"shard\) are all the same row"):
        assert open_activations(tmp_path / "big").shape == (40000, 3)
    save_activations(tmp_path / "legacy", Activations(acts=same, tokens=table(), stories=STORIES,
                                                      meta={"model": {"name": "m", "offline_stand_in": False}}))
    with pytest.warns(UserWarning, match="legacy: all 50 rows are the same row"):
        load_activations(tmp_path / "legacy", stream=True)
    # rows that differ (even by one value, in the last shard) open without a word
    almost = same.copy()
    almost[-1, 0] += 1.0
    write_shards(tmp_path / "almost", almost, shard_rows=SHARD_ROWS)
    write_shards(tmp_path / "real", acts, shard_rows=SHARD_ROWS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        open_activations(tmp_path / "almost")
        open_activations(tmp_path / "real")
        write_shards(tmp_path / "one", acts[:1])
        open_activations(tmp_path / "one")  # one row: nothing to compare
