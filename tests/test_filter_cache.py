"""The cpu backend keeps the packed form of read-only filters between calls
(backends.cpu._memo); a layer's weights are private read-only copies. A
small writable filter array is packed again only when its bytes change;
a larger one on every call."""

import gc
import weakref

import numpy as np
import pytest

import fastdeconv
from fastdeconv import _alloc
from fastdeconv import layers as L
from fastdeconv.backends import cpu, cpu_rb


@pytest.fixture
def packs(monkeypatch):
    """The number of filter packings (cpu_rb._pack_blocks calls)."""
    count = [0]
    real = cpu_rb._pack_blocks

    def spy(*a, **k):
        count[0] += 1
        return real(*a, **k)

    monkeypatch.setattr(cpu_rb, "_pack_blocks", spy)
    return count


@pytest.mark.parametrize("small", [True, False])
def test_writable_filters_are_packed_again_when_written(small, rng, packs, monkeypatch):
    """Small writable filters (_alloc.WRITABLE_MEMO_BYTES) are packed once
    while their bytes stay the same, again after any write (a sign bit
    too); larger ones on every call."""
    if not small:
        monkeypatch.setattr(_alloc, "WRITABLE_MEMO_BYTES", 0)
    x = rng.standard_normal((1, 4, 5, 6, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 3, 8)).astype(np.float32)
    first = fastdeconv.conv3d(x, w, [1] * 5, "SAME")
    np.testing.assert_array_equal(fastdeconv.conv3d(x, w, [1] * 5, "SAME"), first)
    assert packs[0] == (1 if small else 2)
    w *= 2  # in place: a cache keyed on this array alone would return `first`
    np.testing.assert_array_equal(fastdeconv.conv3d(x, w, [1] * 5, "SAME"), 2 * first)
    assert packs[0] == (2 if small else 3)
    w[0, 0, 0, 0, 0] = 0.0
    fastdeconv.conv3d(x, w, [1] * 5, "SAME")
    w[0, 0, 0, 0, 0] = -0.0  # equal to 0.0, other bits: packed again
    negative_zero = fastdeconv.conv3d(x, w, [1] * 5, "SAME")
    assert packs[0] == (4 if small else 5)
    assert negative_zero.tobytes() == fastdeconv.conv3d(x, w.copy(), [1] * 5, "SAME").tobytes()


def test_writable_memo_keeps_few_arrays(rng):
    """At most WRITABLE_MEMO_MAX writable arrays are remembered (what is
    made from one may keep it alive)."""
    x = rng.standard_normal((1, 5, 6, 4)).astype(np.float32)
    for _ in range(_alloc.WRITABLE_MEMO_MAX + 5):
        fastdeconv.conv2d(x, rng.standard_normal((3, 3, 4, 8)).astype(np.float32), 1, "SAME")
        assert len(_alloc.WRITABLE_MEMO) <= _alloc.WRITABLE_MEMO_MAX


def test_read_only_filters_are_remembered_and_give_the_same_bits(rng):
    x = rng.standard_normal((2, 4, 5, 6, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 3, 20)).astype(np.float32)
    want = fastdeconv.conv3d(x, w, [1] * 5, "SAME")
    frozen = w.copy()
    frozen.flags.writeable = False
    assert id(frozen) not in cpu._MEMO
    for _ in range(2):
        np.testing.assert_array_equal(fastdeconv.conv3d(x, frozen, [1] * 5, "SAME"), want)
    assert cpu._MEMO[id(frozen)][0]() is frozen
    # a transpose of the same array is packed and remembered separately
    wt = frozen[..., :3]
    got = fastdeconv.conv3d_transpose(want[..., :3], wt, [2, 4, 5, 6, 3], [1] * 5, "SAME")
    np.testing.assert_array_equal(got, fastdeconv.conv3d_transpose(want[..., :3], wt.copy(), [2, 4, 5, 6, 3],
                                                                    [1] * 5, "SAME"))
    key, alive = id(frozen), weakref.ref(frozen)
    del frozen, wt
    gc.collect()
    assert alive() is None and key not in cpu._MEMO  # dropped with the array


def test_views_of_one_read_only_array_are_remembered_apart(rng):
    """Two views of one read-only buffer with the same shape and strides
    but different offsets (two layers' filters in one weight file) are
    packed apart: the memo keys on each view's place in its owner."""
    x = rng.standard_normal((1, 5, 6, 4)).astype(np.float32)
    buf = rng.standard_normal(2 * 3 * 3 * 4 * 8).astype(np.float32)
    buf.flags.writeable = False
    first, second = buf[:288].reshape(3, 3, 4, 8), buf[288:].reshape(3, 3, 4, 8)
    for _ in range(2):
        for w in (first, second):
            np.testing.assert_array_equal(fastdeconv.conv2d(x, w, 1, "SAME"),
                                          fastdeconv.conv2d(x, w.copy(), 1, "SAME"))


def test_layer_weights_are_private_read_only_copies(rng):
    layer = L.Conv2D(4, 3, padding="same")
    x = rng.standard_normal((1, 6, 7, 2)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)
    bias = np.zeros(4, np.float32)
    layer(x)
    layer.set_weights([kernel, bias])
    assert kernel.flags.writeable and not layer.kernel.flags.writeable
    first = layer(x)
    kernel *= 3  # the caller's array: the layer kept its own copy
    np.testing.assert_array_equal(layer(x), first)
    layer.set_weights([kernel, bias])  # new weights: a new array, packed anew
    np.testing.assert_allclose(layer(x), 3 * first, rtol=1e-6, atol=1e-6)
    got = layer.get_weights()[0]
    assert got.flags.writeable
    np.testing.assert_array_equal(got, kernel)
