"""The shapes and calls from the source issue, exactly, with values
compared against TensorFlow.

Shapes are predicted by tests/geometry.py (not by fastdeconv) and checked
through both the ops and the public shape helpers."""

import numpy as np
import pytest

import fastdeconv
import geometry as geo
import tf_oracle
from cases import Case, assert_float32_bar, assert_float64_close, check_against_tf, rel_err


# --- conv3d_transpose x[2,2,7,7,64] -> [2,4,14,14,32] and the decoder chain ----------

def test_conv3d_transpose_issue_shape(backend, rng):
    case = Case(True, (2, 7, 7), (3, 3, 3), (2, 2, 2), (1, 1, 1), "SAME", cin=64, cout=32, batch=2,
                out_spatial=(4, 14, 14))
    assert case.x_shape() == (2, 2, 7, 7, 64) and case.w_shape() == (3, 3, 3, 32, 64)
    assert case.out_shape() == (2, 4, 14, 14, 32)
    check_against_tf(case, backend, rng)
    case.natural = True  # output_shape=None gives the same
    check_against_tf(case, backend, rng)


# (input spatial, filters, strides) of each decoder stage; out = in * strides.
CHAIN = [
    ((2, 7, 7), (3, 3, 3, 32, 64), (2, 2, 2)),
    ((4, 14, 14), (3, 3, 3, 16, 32), (2, 2, 2)),
    ((8, 28, 28), (3, 3, 3, 8, 16), (2, 2, 2)),
    ((16, 56, 56), (3, 3, 3, 1, 8), (1, 2, 2)),
]


def test_decoder_chain_shapes():
    shape = (2, 2, 7, 7, 64)
    for n, w_shape, s in CHAIN:
        assert shape[1:4] == n
        target = (2,) + tuple(ni * si for ni, si in zip(n, s)) + (w_shape[-2],)
        valid = fastdeconv.conv_transpose_output_shapes(shape, w_shape, list(s), "SAME")
        expected = [(2, a, b, c, w_shape[-2]) for a in geo.transpose_sizes(n[0], 3, s[0], 1, "SAME")
                    for b in geo.transpose_sizes(n[1], 3, s[1], 1, "SAME")
                    for c in geo.transpose_sizes(n[2], 3, s[2], 1, "SAME")]
        assert [tuple(v) for v in valid] == expected
        assert target in [tuple(v) for v in valid]
        shape = target
    assert shape == (2, 16, 112, 112, 1)


@pytest.mark.parametrize("stage", range(1, len(CHAIN)), ids=lambda i: f"stage{i}")
def test_decoder_chain_stage_values(stage, backend, rng):
    n, w_shape, s = CHAIN[stage]
    case = Case(True, n, w_shape[:3], s, (1, 1, 1), "SAME", cin=w_shape[-1], cout=w_shape[-2], batch=2,
                out_spatial=tuple(ni * si for ni, si in zip(n, s)))
    check_against_tf(case, backend, rng)


def test_decoder_chain_end_to_end(backend, rng):
    """The whole chain with output_shape=None, ours vs TF's chain (float32)."""
    x = rng.standard_normal((2, 2, 7, 7, 64)).astype(np.float32)
    ours = theirs = x
    for n, w_shape, s in CHAIN:
        w = (rng.standard_normal(w_shape) / np.sqrt(27 * w_shape[-1])).astype(np.float32)
        out = (2,) + tuple(ni * si for ni, si in zip(n, s)) + (w_shape[-2],)
        ours = fastdeconv.conv3d_transpose(ours, w, None, list(s), "SAME", backend=backend)
        theirs = tf_oracle.call("conv3d_transpose", theirs, w, list(out), list(s), "SAME")
        assert ours.shape == out and ours.dtype == np.float32
    assert ours.shape == (2, 16, 112, 112, 1)
    assert rel_err(ours, theirs) < 2e-5


# --- conv2d_transpose [1,3,3,1] with filters [2,2,3,1] at stride 2 SAME ----------------

@pytest.mark.parametrize("size", [5, 6])
def test_conv2d_transpose_3x3_to_5_or_6(size, backend, rng):
    case = Case(True, (3, 3), (2, 2), (2, 2), (1, 1), "SAME", cin=1, cout=3, out_spatial=(size, size))
    assert case.w_shape() == (2, 2, 3, 1)
    check_against_tf(case, backend, rng)


def test_conv2d_transpose_3x3_valid_shapes():
    shapes = fastdeconv.conv_transpose_output_shapes([1, 3, 3, 1], [2, 2, 3, 1], 2, "SAME")
    assert [tuple(s) for s in shapes] == [(1, 5, 5, 3), (1, 5, 6, 3), (1, 6, 5, 3), (1, 6, 6, 3)]
    x = np.ones((1, 3, 3, 1), np.float32)
    w = np.ones((2, 2, 3, 1), np.float32)
    assert fastdeconv.conv2d_transpose(x, w, None, 2, backend="reference").shape == (1, 6, 6, 3)
    for bad in (4, 7):
        with pytest.raises(fastdeconv.ShapeError):
            fastdeconv.conv2d_transpose(x, w, [1, bad, bad, 3], 2, backend="reference")


# --- [1,64,64,3] -> 64 / 66 / 127 / 128 / 129 / 130 ----------------------------------

@pytest.mark.parametrize("stride, padding, size", [
    (1, "SAME", 64), (1, "VALID", 66), (2, "SAME", 127), (2, "SAME", 128), (2, "VALID", 129), (2, "VALID", 130)])
def test_64x64_transpose_sizes(stride, padding, size, backend, rng):
    case = Case(True, (64, 64), (3, 3), (stride, stride), (1, 1), padding, cin=3, cout=4,
                out_spatial=(size, size))
    assert size in geo.transpose_sizes(64, 3, stride, 1, padding)
    check_against_tf(case, backend, rng)


def test_64x64_stride2_same_refuses_129():
    x = np.zeros((1, 64, 64, 3), np.float32)
    w = np.zeros((3, 3, 4, 3), np.float32)
    with pytest.raises(fastdeconv.ShapeError) as info:
        fastdeconv.conv2d_transpose(x, w, [1, 129, 129, 4], 2, "SAME", backend="reference")
    msg = str(info.value)
    assert "129" in msg and "127" in msg and "128" in msg
    # Both spatial dims are named, each with its valid sizes.
    assert "output_shape[1]" in msg and "output_shape[2]" in msg
    # A mix: only the bad dim is reported as unreachable.
    with pytest.raises(fastdeconv.ShapeError) as info:
        fastdeconv.conv2d_transpose(x, w, [1, 128, 126, 4], 2, "SAME", backend="reference")
    assert "output_shape[2]=126" in str(info.value) and "output_shape[1]=128 is not" not in str(info.value)
    assert [s[1] for s in fastdeconv.conv_transpose_output_shapes(x.shape, w.shape, 2, "SAME")][::2] == [127, 128]


# --- conv3d [1,7,224,224,3] -------------------------------------------------------------

BIG_CONV3D = [((1, 3, 3, 3, 64), 1), ((1, 3, 3, 3, 64), 2), ((1, 5, 3, 3, 64), 1), ((1, 5, 3, 3, 64), 2)]


@pytest.mark.parametrize("w_shape, depth_stride", BIG_CONV3D, ids=str)
def test_conv3d_224_shapes(w_shape, depth_stride):
    strides = [1, depth_stride, 1, 1, 1]
    for padding in ("SAME", "VALID"):
        expected = (1,) + tuple(geo.forward_out(n, k, s, 1, padding) for n, k, s in
                                zip((7, 224, 224), w_shape[:3], (depth_stride, 1, 1))) + (64,)
        assert fastdeconv.conv_output_shape([1, 7, 224, 224, 3], w_shape, strides, padding) == expected
    assert fastdeconv.conv_output_shape([1, 7, 224, 224, 3], w_shape, strides, "SAME") == (
        1, 7 if depth_stride == 1 else 4, 224, 224, 64)


@pytest.mark.slow
@pytest.mark.parametrize("w_shape, depth_stride", BIG_CONV3D, ids=str)
def test_conv3d_224_values(w_shape, depth_stride, cpu_backend, rng):
    """Big: the cpu backend only, against TF float32 and TF float64 (the
    float64 oracle here; the reference backend is slow on 3 channels)."""
    x = rng.standard_normal((1, 7, 224, 224, 3))
    w = rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[:4]))
    strides = [1, depth_stride, 1, 1, 1]
    x32, w32 = x.astype(np.float32), w.astype(np.float32)
    ours = fastdeconv.conv3d(x32, w32, strides, "SAME", backend=cpu_backend)
    assert ours.shape == (1, 7 if depth_stride == 1 else 4, 224, 224, 64)
    truth = tf_oracle.conv(x32.astype(np.float64), w32.astype(np.float64), strides[1:4], "SAME")
    assert_float32_bar(ours, tf_oracle.call("conv3d", x32, w32, strides, "SAME"), truth, str(w_shape))


# --- conv3d -> max-pool -> conv3d_transpose on [10,2,7,7,512] ---------------------------

def max_pool3d_same(x, ksize, strides):
    """NDHWC max-pool with TF's SAME rule: ceil(n/s) outputs, odd pad after,
    padding never wins (it is -inf)."""
    pads = [geo.same_pads(n, k, s, 1) for n, k, s in zip(x.shape[1:4], ksize, strides)]
    xp = np.pad(x, [(0, 0)] + pads + [(0, 0)], constant_values=-np.inf)
    outs = [-(-n // s) for n, s in zip(x.shape[1:4], strides)]
    y = np.full((x.shape[0], *outs, x.shape[-1]), -np.inf, dtype=x.dtype)
    for kd in range(ksize[0]):
        for kh in range(ksize[1]):
            for kw in range(ksize[2]):
                y = np.maximum(y, xp[:, kd:kd + (outs[0] - 1) * strides[0] + 1:strides[0],
                                     kh:kh + (outs[1] - 1) * strides[1] + 1:strides[1],
                                     kw:kw + (outs[2] - 1) * strides[2] + 1:strides[2]])
    return y


POOL = dict(ksize=(1, 2, 2), strides=(1, 2, 2))


def test_max_pool_helper_matches_tf(rng):
    for shape in [(2, 2, 7, 7, 3), (1, 3, 6, 5, 2), (1, 1, 1, 3, 1)]:
        x = rng.standard_normal(shape).astype(np.float32)
        np.testing.assert_array_equal(max_pool3d_same(x, **POOL), tf_oracle.max_pool3d(x, **POOL, padding="SAME"))


def test_pool_chain_shapes():
    """[10,2,7,7,512] -conv3d k3 SAME-> [10,2,7,7,512] -pool 1x2x2-> [10,2,4,4,512]
    -conv3d_transpose k3 stride (1,2,2) SAME, output_shape [10,2,7,7,512]."""
    a = fastdeconv.conv_output_shape([10, 2, 7, 7, 512], [3, 3, 3, 512, 512], 1, "SAME")
    assert a == (10, 2, 7, 7, 512)
    pooled = (10,) + tuple(-(-n // s) for n, s in zip(a[1:4], POOL["strides"])) + (512,)
    assert pooled == (10, 2, 4, 4, 512)
    valid = [tuple(v) for v in fastdeconv.conv_transpose_output_shapes(pooled, [3, 3, 3, 512, 512], [1, 2, 2],
                                                                         "SAME")]
    assert valid == [(10, 2, 7, 7, 512), (10, 2, 7, 8, 512), (10, 2, 8, 7, 512), (10, 2, 8, 8, 512)]


def _pool_chain(x, w1, w2, backend):
    a = fastdeconv.conv3d(x, w1, [1, 1, 1, 1, 1], "SAME", backend=backend)
    p = max_pool3d_same(a, **POOL)
    y = fastdeconv.conv3d_transpose(p, w2, list(x.shape), [1, 2, 2], "SAME", backend=backend)
    return a, p, y


def _tf_pool_chain(x, w1, w2):
    a = tf_oracle.call("conv3d", x, w1, [1, 1, 1, 1, 1], "SAME")
    # TF's MaxPool3D has no float64 kernel; the helper is checked against it above.
    p = tf_oracle.max_pool3d(a, **POOL, padding="SAME") if a.dtype != np.float64 else max_pool3d_same(a, **POOL)
    y = tf_oracle.call("conv3d_transpose", p, w2, list(x.shape), [1, 2, 2], "SAME")
    return a, p, y


def _check_pool_chain(batch, backend, rng, channels=512):
    x = rng.standard_normal((batch, 2, 7, 7, channels)).astype(np.float32)
    w1 = (rng.standard_normal((3, 3, 3, channels, channels)) / np.sqrt(27 * channels)).astype(np.float32)
    w2 = (rng.standard_normal((3, 3, 3, channels, channels)) / np.sqrt(27 * channels)).astype(np.float32)
    a, p, y = _pool_chain(x, w1, w2, backend)
    ta, tp, ty = _tf_pool_chain(x, w1, w2)
    assert a.shape == (batch, 2, 7, 7, channels) and p.shape == (batch, 2, 4, 4, channels)
    assert y.shape == (batch, 2, 7, 7, channels) and y.dtype == np.float32
    # Each stage on identical inputs: the SPEC float32 bar.
    ref_a = fastdeconv.conv3d(x.astype(np.float64), w1.astype(np.float64), 1, "SAME", backend="reference")
    assert_float32_bar(a, ta, ref_a, "conv3d 512->512")
    ref_y = fastdeconv.conv3d_transpose(tp.astype(np.float64), w2.astype(np.float64), list(x.shape), [1, 2, 2],
                                        "SAME", backend="reference")
    ours_y_on_tf_pool = fastdeconv.conv3d_transpose(tp, w2, list(x.shape), [1, 2, 2], "SAME", backend=backend)
    assert_float32_bar(ours_y_on_tf_pool, ty, ref_y, "conv3d_transpose 512->512")
    # End to end: the two chains agree closely.
    assert rel_err(y, ty) < 1e-4


def test_pool_chain_values_small_batch(backend, rng):
    """The same chain with batch 1 (512 channels), every backend."""
    _check_pool_chain(1, backend, rng)


@pytest.mark.slow
def test_pool_chain_full_size(cpu_backend, rng):
    """The full [10,2,7,7,512] chain on the cpu backend, against TF."""
    _check_pool_chain(10, cpu_backend, rng)


def test_pool_chain_float64_small(backend, rng):
    """float64 through the chain: ours vs TF float64 (Eigen) stage by stage."""
    x = rng.standard_normal((1, 2, 7, 7, 16))
    w1 = rng.standard_normal((3, 3, 3, 16, 16)) / 20
    w2 = rng.standard_normal((3, 3, 3, 16, 16)) / 20
    a, p, y = _pool_chain(x, w1, w2, backend)
    ta, tp, ty = _tf_pool_chain(x, w1, w2)
    assert_float64_close(a, ta)
    assert_float64_close(y, ty)
