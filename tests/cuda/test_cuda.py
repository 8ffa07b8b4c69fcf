"""backend='cuda' against the float64 reference backend.

Run on its own (see conftest.py): NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda
"""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
from _cuda_support import SIMULATOR, SMALL_TILES, set_tunables, shipped_tunables

import fastdeconv
from fastdeconv.backends import cuda as cuda_backend
from fastdeconv.backends.cuda import config, kernels

FORWARD = {1: "conv1d", 2: "conv2d", 3: "conv3d"}
TRANSPOSE = {1: "conv1d_transpose", 2: "conv2d_transpose", 3: "conv3d_transpose"}
FORMATS = {(1, False): "NWC", (2, False): "NHWC", (3, False): "NDHWC",
           (1, True): "NCW", (2, True): "NCHW", (3, True): "NCDHW"}
# Small spatial sizes and non-cubic kernels per rank.
SPATIAL = {1: (7,), 2: (5, 6), 3: (3, 5, 4)}
KERNEL = {1: (3,), 2: (3, 2), 3: (2, 3, 2)}
# (strides, dilations) per rank: plain, strided, dilated, both, mixed per dim.
GEOMETRY = {
    "s1": (1, 1), "s2": (2, 1), "d2": (1, 2), "s2d2": (2, 2),
    "mixed": ([3, 1, 2], [1, 2, 1]),
}
PADDINGS = {"SAME": "SAME", "VALID": "VALID", "explicit": [(1, 0), (0, 2), (2, 1)]}
TOL = {np.float32: 2e-6, np.float64: 1e-12}


def _per_rank(value, rank):
    return value[:rank] if isinstance(value, list) else value


def _layout(batch, spatial, channels, channels_first):
    return (batch, channels, *spatial) if channels_first else (batch, *spatial, channels)


def _rel_err(got, ref):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if got.size == 0:
        return 0.0
    return float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-300))


def _arrays(rng, x_shape, w_shape, dtype):
    return rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype)


def _call(op, x, w, *args, backend, **kwargs):
    return getattr(fastdeconv, op)(x, w, *args, backend=backend, **kwargs)


def _check(op, x, w, *args, dtype=np.float32, **kwargs):
    got = _call(op, x, w, *args, backend="cuda", **kwargs)
    ref = _call(op, x, w, *args, backend="reference", **kwargs)
    assert isinstance(got, np.ndarray)
    assert got.shape == ref.shape and got.dtype == ref.dtype == np.dtype(dtype)
    assert _rel_err(got, ref) <= TOL[dtype], _rel_err(got, ref)
    return got


def _forward_case(rank, channels_first, batch=2, cin=3, cout=4, groups=1):
    x_shape = _layout(batch, SPATIAL[rank], cin * groups, channels_first)
    return x_shape, KERNEL[rank] + (cin, cout)


def _transpose_case(rank, channels_first, batch=2, cin=3, cout=4):
    return _layout(batch, SPATIAL[rank], cin, channels_first), KERNEL[rank] + (cout, cin)


# --------------------------------------------------------------- correctness

@pytest.mark.parametrize("channels_first", [False, True], ids=["last", "first"])
@pytest.mark.parametrize("geometry", GEOMETRY)
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_forward_matches_reference(rank, padding, geometry, channels_first, rng):
    strides, dilations = (_per_rank(v, rank) for v in GEOMETRY[geometry])
    x_shape, w_shape = _forward_case(rank, channels_first)
    x, w = _arrays(rng, x_shape, w_shape, np.float32)
    _check(FORWARD[rank], x, w, strides, _per_rank(PADDINGS[padding], rank),
           data_format=FORMATS[rank, channels_first], dilations=dilations)


@pytest.mark.parametrize("channels_first", [False, True], ids=["last", "first"])
@pytest.mark.parametrize("geometry", GEOMETRY)
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_transpose_matches_reference(rank, padding, geometry, channels_first, rng):
    strides, dilations = (_per_rank(v, rank) for v in GEOMETRY[geometry])
    x_shape, w_shape = _transpose_case(rank, channels_first)
    x, w = _arrays(rng, x_shape, w_shape, np.float32)
    _check(TRANSPOSE[rank], x, w, None, strides, _per_rank(PADDINGS[padding], rank),
           data_format=FORMATS[rank, channels_first], dilations=dilations)


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("geometry", [([2, 3], [1, 1]), ([3, 2], [2, 1])], ids=["s23", "s32d21"])
def test_transpose_every_valid_output_shape(geometry, padding, rng):
    """All s_h * s_w valid output shapes of a 2-D transpose, both formats."""
    strides, dilations = geometry
    pad = _per_rank(PADDINGS[padding], 2)
    for channels_first in (False, True):
        fmt = FORMATS[2, channels_first]
        x_shape, w_shape = _transpose_case(2, channels_first, batch=1, cin=2, cout=3)
        x, w = _arrays(rng, x_shape, w_shape, np.float32)
        shapes = fastdeconv.conv_transpose_output_shapes(x_shape, w_shape, strides, pad, data_format=fmt,
                                                         dilations=dilations)
        assert len(shapes) == strides[0] * strides[1]
        for shape in shapes:
            _check("conv2d_transpose", x, w, shape, strides, pad, data_format=fmt, dilations=dilations)


@pytest.mark.parametrize("op", ["conv1d", "conv2d", "conv3d", "conv1d_transpose", "conv2d_transpose",
                                "conv3d_transpose"])
@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_dtypes(op, dtype, rng):
    rank = int(op[4])
    channels_first = dtype == np.float16
    transpose = op.endswith("transpose")
    x_shape, w_shape = (_transpose_case if transpose else _forward_case)(rank, channels_first)
    x, w = _arrays(rng, x_shape, w_shape, dtype)
    args = (None, 2, "SAME") if transpose else (2, "SAME")
    kwargs = dict(data_format=FORMATS[rank, channels_first])
    got = _call(op, x, w, *args, backend="cuda", **kwargs)
    assert got.dtype == dtype
    if dtype == np.float64:
        assert _rel_err(got, _call(op, x, w, *args, backend="reference", **kwargs)) <= 1e-12
    else:
        # float16: the float32 computation, rounded once.
        ref32 = _call(op, x.astype(np.float32), w.astype(np.float32), *args, backend="reference", **kwargs)
        assert _rel_err(got, ref32.astype(np.float16)) <= 1e-3


@pytest.mark.parametrize("channels_first", [False, True], ids=["last", "first"])
@pytest.mark.parametrize("rank,groups,cin,cout", [(1, 3, 2, 6), (2, 2, 3, 4), (2, 4, 1, 4), (3, 2, 2, 2)])
def test_grouped_forward(rank, groups, cin, cout, channels_first, rng):
    x_shape, w_shape = _forward_case(rank, channels_first, cin=cin, cout=cout, groups=groups)
    x, w = _arrays(rng, x_shape, w_shape, np.float32)
    _check(FORWARD[rank], x, w, 1, "SAME", data_format=FORMATS[rank, channels_first],
           dilations=2 if rank == 1 else None)


def test_leading_batch_dims_and_legacy_format(rng):
    x, w = _arrays(rng, (2, 3, 6, 3), (3, 3, 4), np.float32)
    _check("conv1d", x, w, 2, "SAME")
    x, w = _arrays(rng, (2, 3, 5, 6, 3), (3, 2, 3, 4), np.float32)
    _check("conv2d", x, w, 1, "VALID")
    x, w = _arrays(rng, (2, 3, 7), (3, 3, 4), np.float32)
    _check("conv1d", x, w, 1, "SAME", data_format="NCHW")


def test_many_channels_multi_tile(rng):
    """Channels spread over several channel tiles and reduction steps."""
    x, w = _arrays(rng, (1, 3, 4, 11), (2, 2, 11, 9), np.float32)
    _check("conv2d", x, w, 1, "SAME")
    x, w = _arrays(rng, (1, 3, 4, 11), (2, 2, 9, 11), np.float32)
    _check("conv2d_transpose", x, w, None, 2, "SAME")


# ------------------------------------------------------------- edge cases

@pytest.mark.parametrize("case", [
    ("conv2d", (0, 4, 4, 3), (3, 3, 3, 2), (1, "SAME")),                    # batch 0
    ("conv2d", (1, 4, 4, 3), (3, 3, 3, 0), (1, "SAME")),                    # C_out 0
    ("conv2d", (1, 4, 4, 0), (3, 3, 0, 2), (1, "SAME")),                    # C_in 0: zeros
    ("conv2d", (1, 0, 4, 3), (3, 3, 3, 2), (1, "SAME")),                    # spatial 0
    ("conv2d_transpose", (0, 3, 3, 2), (3, 3, 4, 2), (None, 2, "SAME")),    # batch 0
    ("conv2d_transpose", (1, 3, 3, 0), (3, 3, 4, 0), (None, 2, "SAME")),    # C_in 0: zeros
    ("conv1d_transpose", (1, 0, 2), (3, 4, 2), ([1, 1, 4], 2, "VALID")),    # n 0, valid O: zeros
], ids=["batch0", "cout0", "cin0", "spatial0", "t-batch0", "t-cin0", "t-n0"])
def test_empty(case, rng):
    op, x_shape, w_shape, args = case
    x, w = _arrays(rng, x_shape, w_shape, np.float32)
    ref = _call(op, x, w, *args, backend="reference")
    got = _call(op, x, w, *args, backend="cuda")
    assert isinstance(got, np.ndarray) and got.shape == ref.shape and got.dtype == ref.dtype
    np.testing.assert_array_equal(got, ref)
    dev = _call(op, _to_device(x), _to_device(w), *args, backend=None)
    assert _is_device(dev) and tuple(dev.shape) == ref.shape and dev.dtype == ref.dtype
    np.testing.assert_array_equal(dev.copy_to_host(), ref)


def test_direct_backend_call_with_empty_output():
    x = np.zeros((0, 1, 1, 3, 2), np.float32)
    w = np.zeros((1, 1, 1, 2, 4), np.float32)
    out = cuda_backend.forward(x, w, (1, 1, 3), (1, 1, 1), (1, 1, 1), (0, 0, 0), 1, False)
    assert out.shape == (0, 1, 1, 3, 4)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("op", ["conv2d", "conv2d_transpose"])
def test_nan_and_inf_propagate_like_direct_summation(op, rng):
    transpose = op.endswith("transpose")
    x, w = _arrays(rng, (1, 5, 5, 2), (2, 2, 3, 2) if transpose else (2, 2, 2, 3), np.float32)
    x[0, 1, 2, 0] = np.nan
    x[0, 3, 0, 1] = np.inf
    w[0, 0] = 0.0  # zero weights must not hide a NaN
    args = (None, 3, "VALID") if transpose else (1, "SAME")
    got = _call(op, x, w, *args, backend="cuda")
    ref = _call(op, x, w, *args, backend="reference")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(ref))
    finite = np.isfinite(ref)
    assert finite.any() and not finite.all()
    assert _rel_err(got[finite], ref[finite]) <= 2e-6


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_transpose_gaps_are_exact_zeros_even_with_nan_input():
    """stride 3 > kernel 2: outputs no tap reaches are exactly 0."""
    x = np.array([[[1.0], [np.nan], [1.0]]], np.float32)
    w = np.ones((2, 1, 1), np.float32)
    got = fastdeconv.conv1d_transpose(x, w, [1, 10, 1], 3, "VALID", backend="cuda")[0, :, 0]
    expected = np.array([1, 1, 0, np.nan, np.nan, 0, 1, 1, 0, 0], np.float32)
    np.testing.assert_array_equal(got, expected)


def test_kernel_size_one_transpose_places_inputs():
    x = np.array([[[1.0], [2.0], [3.0]]], np.float32)
    w = np.ones((1, 1, 1), np.float32)
    got = fastdeconv.conv1d_transpose(x, w, [1, 6, 1], 2, "SAME", backend="cuda")[0, :, 0]
    np.testing.assert_array_equal(got, [1, 0, 2, 0, 3, 0])


# ------------------------------------------------------- determinism / launch

@pytest.mark.parametrize("op", ["conv3d", "conv3d_transpose"])
def test_deterministic_and_independent_of_tunables(op, rng, monkeypatch):
    """Two runs give the same bits, and so do other tile shapes, thread counts,
    reduction steps and grid sizes (each output is summed by one thread in a
    fixed order)."""
    transpose = op.endswith("transpose")
    x, w = _arrays(rng, (1, 2, 3, 3, 3), (2, 2, 2, 3, 3), np.float32)
    args = (None, [1, 2, 2], "SAME") if transpose else ([1, 2, 1], "SAME")
    first = _call(op, x, w, *args, backend="cuda")
    np.testing.assert_array_equal(first, _call(op, x, w, *args, backend="cuda"))
    for tunables in (dict(THREADS_PER_BLOCK=1, TILE_K=1, MAX_BLOCKS=1, REG_M=1, REG_N=1),
                     dict(THREADS_PER_BLOCK=8, MAX_THREADS_N=4, TILE_K=5, MAX_BLOCKS=2, REG_M=3, REG_N=1),
                     dict(BIG_TILE_MIN_TILES=1)):  # the larger register tiles
        set_tunables(monkeypatch, **tunables)
        np.testing.assert_array_equal(first, _call(op, x, w, *args, backend="cuda"))


def test_multi_block_grid_stride_launch(rng, monkeypatch):
    """Many more tiles than blocks: every block loops over several tiles."""
    set_tunables(monkeypatch, **dict(SMALL_TILES, THREADS_PER_BLOCK=2, MAX_BLOCKS=2, TILE_K=2))
    x, w = _arrays(rng, (2, 6, 5, 3), (3, 3, 5, 3), np.float32)
    tm, tn, rm, rn, _ = cuda_backend.launch_shape(5, 4)
    assert (2 * 12 * 10) // (tm * rm) > 2  # tiles per phase > blocks
    _check("conv2d_transpose", x, w, None, 2, "SAME")
    _check("conv2d", x, w.transpose(0, 1, 3, 2).copy(), 2, "SAME")


def test_shipped_tunables(rng, monkeypatch):
    """The configuration users get (one block of 256 threads here), once per op kind."""
    set_tunables(monkeypatch, **shipped_tunables())
    x, w = _arrays(rng, (1, 4, 5, 3), (3, 3, 3, 4), np.float32)
    _check("conv2d", x, w, 1, "SAME")
    _check("conv2d_transpose", x, w.transpose(0, 1, 3, 2).copy(), None, 2, "SAME")


@pytest.mark.parametrize("cout_g", [1, 3, 4, 17, 64, 512])
@pytest.mark.parametrize("itemsize", [4, 8])
def test_launch_shape_fits(cout_g, itemsize, monkeypatch):
    for values in ({}, SMALL_TILES, dict(THREADS_PER_BLOCK=1024, REG_M=8, TILE_K=64)):
        set_tunables(monkeypatch, **{**{k: getattr(config, k) for k in SMALL_TILES}, **values})
        tm, tn, rm, rn, bk = cuda_backend.launch_shape(cout_g, itemsize)
        assert tm * tn <= max(config.THREADS_PER_BLOCK, 1) and min(tm, tn, rm, rn, bk) >= 1
        bm, bn = tm * rm, tn * rn
        # the kernel's shared arrays: A and B slices, 4 int32 + 1 int64 per position, 4 int32 + 2 int64 per index
        assert bk * (bm + bn + 2) * itemsize + 4 * (4 * bm + 4 * bk) + 8 * (bm + 2 * bk) <= config.SHARED_BYTES
        assert tn * rn < 2 * max(cout_g, 1) or tn * rn <= 4


@pytest.mark.parametrize("positions, big", [(64, False), (1 << 20, True)])
def test_launch_shape_larger_tiles_only_for_many_tiles(positions, big, monkeypatch):
    set_tunables(monkeypatch, **shipped_tunables())
    base = cuda_backend.launch_shape(64, 4)
    got = cuda_backend.launch_shape(64, 4, positions, 1)
    assert (got[2] * got[3] > base[2] * base[3]) == big
    assert got[0] * got[1] <= config.THREADS_PER_BLOCK


def test_kernels_are_not_recompiled_for_new_shapes(rng):
    """Shapes, strides, dilations and padding are arguments, not constants."""
    x, w = _arrays(rng, (1, 5, 6, 3), (3, 2, 3, 4), np.float32)
    fastdeconv.conv2d(x, w, 1, "SAME", backend="cuda")
    before = kernels.conv_kernel.cache_info().currsize
    for s, d, p in [(2, 1, "VALID"), (1, 2, "SAME"), (3, 1, [(1, 2), (0, 1)])]:
        fastdeconv.conv2d(x, w, s, p, dilations=d, backend="cuda")
    x2, _ = _arrays(rng, (2, 7, 4, 3), (1,), np.float32)
    fastdeconv.conv2d(x2, w, 1, "SAME", backend="cuda")
    assert kernels.conv_kernel.cache_info().currsize == before
    if not SIMULATOR:
        key = (False,) + cuda_backend.launch_shape(4, 4) + ("float32",)
        assert len(kernels.conv_kernel(*key).signatures) == 1


# ----------------------------------------------------------- device arrays

def _to_device(a):
    from numba import cuda

    return cuda.to_device(a)


def _is_device(a):
    return bool(getattr(a, "__cuda_ndarray__", False)) and not isinstance(a, np.ndarray)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("op", ["conv2d", "conv3d_transpose", "conv1d"])
def test_device_arrays_in_device_array_out(op, dtype, rng):
    rank = int(op[4])
    transpose = op.endswith("transpose")
    x_shape, w_shape = (_transpose_case if transpose else _forward_case)(rank, rank == 3)
    x, w = _arrays(rng, x_shape, w_shape, dtype)
    args = (None, 2, "SAME") if transpose else (2, "VALID")
    kwargs = dict(data_format=FORMATS[rank, rank == 3])
    dx, dw = _to_device(x), _to_device(w)
    got = _call(op, dx, dw, *args, backend=None, **kwargs)
    assert _is_device(got) and got.dtype == dtype
    host = _call(op, x, w, *args, backend="cuda", **kwargs)
    assert tuple(got.shape) == host.shape
    np.testing.assert_array_equal(got.copy_to_host(), host)
    np.testing.assert_array_equal(dx.copy_to_host(), x)  # inputs untouched


def test_device_arrays_with_leading_batch_dims(rng):
    x, w = _arrays(rng, (2, 2, 6, 3), (3, 3, 4), np.float32)
    got = fastdeconv.conv1d(_to_device(x), _to_device(w), 1, "SAME")
    assert _is_device(got) and tuple(got.shape) == (2, 2, 6, 4)
    np.testing.assert_array_equal(got.copy_to_host(), fastdeconv.conv1d(x, w, 1, "SAME", backend="cuda"))


def test_device_array_errors(rng):
    x, w = _arrays(rng, (1, 4, 4, 3), (3, 3, 3, 2), np.float32)
    dx, dw = _to_device(x), _to_device(w)
    with pytest.raises(ValueError, match="device array but filters are a host"):
        fastdeconv.conv2d(dx, w, 1, "SAME")
    with pytest.raises(ValueError, match="host .*but filters are a CUDA device array"):
        fastdeconv.conv2d(x, dw, 1, "SAME", backend="cuda")
    for backend in ("cpu", "reference"):
        with pytest.raises(ValueError, match=f"backend='{backend}'"):
            fastdeconv.conv2d(dx, dw, 1, "SAME", backend=backend)
    with pytest.raises(ValueError, match="non-contiguous"):
        fastdeconv.conv2d(dx[:, :, ::2], dw, 1, "SAME")
    with pytest.raises(TypeError, match="float16, float32 or float64"):
        fastdeconv.conv2d(_to_device(x.astype(np.int32)), _to_device(w.astype(np.int32)), 1, "SAME")
    with pytest.raises(fastdeconv.ShapeError):
        fastdeconv.conv2d(dx, _to_device(w[:, :, :2].copy()), 1, "SAME")


def test_missing_numba_cuda_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "numba_cuda" else real(name, *a))
    with pytest.raises(ValueError, match=r"numba-cuda.*fastdeconv\[cuda\]"):
        fastdeconv.conv2d(np.zeros((1, 3, 3, 1)), np.zeros((1, 1, 1, 1)), 1, "SAME", backend="cuda")


def test_numpy_without_row_stack_names_the_fix():
    """numba-cuda 0.30 cannot compile kernels on NumPy 2.5 (no np.row_stack):
    a clear error before any work, run in a child where NumPy lacks it."""
    code = (
        "import numpy as np; del np.row_stack\n"
        "import fastdeconv\n"
        "try:\n"
        "    fastdeconv.conv2d(np.zeros((1, 3, 3, 1)), np.zeros((1, 1, 1, 1)), 1, 'SAME', backend='cuda')\n"
        "except ValueError as exc:\n"
        "    print(exc)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "np.row_stack" in res.stdout and "pip install 'numpy<2.5'" in res.stdout, res.stdout


@pytest.mark.parametrize("library", ["cupy", "torch"])
def test_foreign_device_arrays(library, rng):
    """CuPy arrays / torch CUDA tensors through __cuda_array_interface__."""
    lib = pytest.importorskip(library)
    if SIMULATOR:
        pytest.skip("the CUDA simulator cannot view another library's device memory")
    if library == "torch" and not lib.cuda.is_available():
        pytest.skip("torch has no CUDA device here")
    x, w = _arrays(rng, (2, 5, 6, 3), (3, 3, 3, 4), np.float32)
    if library == "cupy":
        dx, dw = lib.asarray(x), lib.asarray(w)
    else:
        dx, dw = lib.from_numpy(x).cuda(), lib.from_numpy(w).cuda()
    got = fastdeconv.conv2d(dx, dw, 2, "SAME")
    assert _is_device(got)
    np.testing.assert_array_equal(got.copy_to_host(), fastdeconv.conv2d(x, w, 2, "SAME", backend="cuda"))


# ------------------------------------------------- larger shapes (GPU only)

LARGE = [
    ("conv2d", (4, 32, 32, 64), (3, 3, 64, 96), (1, "SAME"), {}),
    ("conv2d", (2, 31, 33, 48), (5, 3, 48, 40), (2, "VALID"), dict(dilations=1)),
    ("conv2d", (2, 64, 30, 30), (3, 3, 32, 64), ([1, 2], "SAME"), dict(data_format="NCHW", dilations=[2, 1])),
    ("conv3d", (2, 8, 16, 16, 32), (3, 3, 3, 32, 32), ([1, 1, 1, 1, 1], "SAME"), {}),
    ("conv2d_transpose", (2, 16, 16, 64), (3, 3, 32, 64), (None, 2, "SAME"), {}),
    ("conv2d_transpose", (1, 64, 15, 15), (4, 4, 48, 64), (None, 2, "VALID"), dict(data_format="NCHW")),
    ("conv3d_transpose", (2, 4, 14, 14, 32), (3, 3, 3, 16, 32), ([2, 8, 28, 28, 16], 2, "SAME"), {}),
    ("conv3d_transpose", (1, 8, 8, 8, 16), (3, 3, 3, 16, 16), (None, 1, "SAME"), dict(dilations=2)),
    ("conv1d_transpose", (8, 100, 128), (5, 64, 128), (None, 2, "VALID"), {}),
]


@pytest.mark.hardware
@pytest.mark.parametrize("case", LARGE, ids=[f"{c[0]}-{i}" for i, c in enumerate(LARGE)])
def test_larger_shapes_on_hardware(case, rng):
    if SIMULATOR:
        pytest.skip("larger shapes run only on a real GPU (scripts/gpu_check.py)")
    op, x_shape, w_shape, args, kwargs = case
    x, w = _arrays(rng, x_shape, w_shape, np.float32)
    w /= np.sqrt(np.prod(w_shape[:-2]) * w_shape[-2])
    got = _call(op, x, w, *args, backend="cuda", **kwargs)
    ref = _call(op, x, w, *args, backend="reference", **kwargs)
    assert _rel_err(got, ref) <= 1e-5
    np.testing.assert_array_equal(got, _call(op, x, w, *args, backend="cuda", **kwargs))
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    ref64 = _call(op, x64, w64, *args, backend="reference", **kwargs)
    assert _rel_err(_call(op, x64, w64, *args, backend="cuda", **kwargs), ref64) <= 1e-12


def test_gpu_check_script_smoke():
    """scripts/gpu_check.py's timing table on the simulator (tiny shapes):
    every case row has its whole-call and kernel-only times."""
    script = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "gpu_check.py")
    res = subprocess.run([sys.executable, script, "--simulate", "--skip-tests", "--repeat", "1",
                          "--only", "src_c2t_3x3x1_to_6", "unet_c3t_32c64_k2s2_ncdhw"],
                         capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, NUMBA_ENABLE_CUDASIM="1"))
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    rows = [line.split("|")[1:-1] for line in res.stdout.splitlines() if line.startswith("| src_") or
            line.startswith("| unet_")]
    assert len(rows) == 2, res.stdout
    for row in rows:
        assert float(row[3]) > 0 and float(row[4]) > 0  # ms, kernel ms
