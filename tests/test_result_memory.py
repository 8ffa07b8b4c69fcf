"""Result memory reuse (fastdeconv._alloc): the memory of a large result the
caller has dropped serves a later result; a result still referenced, or any
view of it, is never touched."""

import pickle

import numpy as np
import pytest

import fastdeconv
from fastdeconv import _alloc

X_SHAPE, W_SHAPE = (2, 8, 64, 64, 4), (3, 3, 3, 4, 32)  # 8 MB float32 result


def _conv(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(X_SHAPE).astype(np.float32)
    w = rng.standard_normal(W_SHAPE).astype(np.float32)
    return fastdeconv.conv3d(x, w, 1, "SAME", backend="cpu")


def test_dropped_result_memory_is_reused():
    y = _conv(0)
    assert y.nbytes >= _alloc.RECYCLE_MIN
    address = y.ctypes.data
    del y
    y2 = _conv(1)
    assert y2.ctypes.data == address


def test_live_results_and_views_are_never_reused():
    first = _conv(0)
    expected = first.copy()
    view = first[1, 2:5]
    view_copy = view.copy()
    del first  # the view keeps the memory
    others = [_conv(s) for s in range(1, 4)]
    for a in others:
        assert not np.shares_memory(a, view)
    np.testing.assert_array_equal(view, view_copy)
    np.testing.assert_array_equal(view, expected[1, 2:5])
    kept = [o.copy() for o in others]
    del view
    _conv(9)  # may take the memory the view held
    for a, k in zip(others, kept):
        np.testing.assert_array_equal(a, k)


def test_results_behave_like_plain_arrays():
    y = _conv(0)
    assert y.flags.c_contiguous and y.flags.writeable and y.flags.aligned
    assert y.dtype == np.float32 and y.shape == (2, 8, 64, 64, 32)
    y[0, 0, 0, 0, 0] = 7.0
    again = pickle.loads(pickle.dumps(y))
    np.testing.assert_array_equal(again, y)


def test_cap_from_the_environment(monkeypatch):
    monkeypatch.setenv("FASTDECONV_RECYCLE_MB", "0")
    assert _alloc._cap_from_env() == 0
    monkeypatch.setenv("FASTDECONV_RECYCLE_MB", "1.5")
    assert _alloc._cap_from_env() == 3 << 19
    monkeypatch.setenv("FASTDECONV_RECYCLE_MB", "lots")
    with pytest.raises(ValueError, match="FASTDECONV_RECYCLE_MB"):
        _alloc._cap_from_env()


def test_the_cap_bounds_what_is_kept(monkeypatch):
    recycler = _alloc._Recycler(3 << 20)
    for _ in range(3):
        recycler.give(np.empty(2 << 20, np.uint8))
    assert recycler.free_bytes() == 2 << 20
    assert recycler.take(1 << 20).nbytes == 2 << 20  # at most twice the size asked
    assert recycler.free_bytes() == 0
    assert recycler.take(1 << 20).nbytes == 1 << 20  # nothing kept: new memory


def test_new_blocks_replace_the_oldest_at_the_cap():
    """At the cap, a block given replaces the blocks given longest ago, so
    the sizes a process makes now are reused (not those of its first
    calls)."""
    recycler = _alloc._Recycler(5 << 20)
    old = np.empty(3 << 20, np.uint8)
    older = np.empty(1 << 20, np.uint8)
    recycler.give(older)
    recycler.give(old)
    new = np.empty(2 << 20, np.uint8)
    recycler.give(new)  # 6 MB > 5: the 1 MB block given first goes
    assert recycler.free_bytes() == 5 << 20
    assert recycler.take(2 << 20) is new
    assert recycler.take(3 << 20) is old
    assert recycler.take(1 << 20) is not older  # dropped: new memory
    recycler.give(np.empty(6 << 20, np.uint8))  # larger than the cap: not kept
    assert recycler.free_bytes() == 0


def test_work_arrays_from_dropped_memory():
    """_alloc.work: from WORK_MIN bytes a work array's memory is a dropped
    block's (a call's work array beside its result made glibc hand its heap
    top back after every call); below, a plain array."""
    small = _alloc.work(_alloc.WORK_MIN // 8 - 1, np.float64)
    assert small.base is None and small.shape == (_alloc.WORK_MIN // 8 - 1,)
    a = _alloc.work((3, _alloc.WORK_MIN // 4), np.float32)
    assert a.shape == (3, _alloc.WORK_MIN // 4) and a.dtype == np.float32 and a.flags.writeable
    address = a.ctypes.data
    del a
    b = _alloc.work(3 * _alloc.WORK_MIN // 8, np.float64)
    assert b.ctypes.data == address
