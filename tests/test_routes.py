"""Remembered routes (cpu._ROUTES): a call whose signature `cpu._run` has
seen runs the launch it planned then, skipping the route choice and the
plan. Such a call must give the bits a fresh plan gives, read its own input
and filters (never those of the call that planned it), follow the thread
count, and be forgotten when a module setting of the backend changes."""

import numba
import numpy as np
import pytest

import fastdeconv
from fastdeconv.backends import (cpu, cpu_cfband, cpu_cfgather, cpu_dw, cpu_layers, cpu_layout, cpu_patch, cpu_pw,
                                 cpu_rb, cpu_short, cpu_simd)

# (op, x shape, w shape, strides, padding, data_format, the launch planned)
CASES = [
    ("conv2d", (1, 8, 8, 64), (3, 3, 64, 64), 1, "SAME", "NHWC", "_run.<locals>.launch"),  # cl_kernel
    ("conv2d_transpose", (1, 5, 6, 32), (3, 3, 40, 32), 2, "SAME", "NHWC", "_run.<locals>.launch"),
    ("conv2d", (2, 8, 8, 16), (3, 3, 16, 32), 1, "SAME", "NHWC", "_short.<locals>.launch"),
    ("conv3d", (1, 4, 4, 4, 8), (3, 3, 3, 8, 16), 1, "SAME", "NDHWC", "_short.<locals>.launch"),
    ("conv2d", (1, 8, 8, 4), (3, 3, 4, 3), 1, "SAME", "NHWC", "_run.<locals>.launch"),  # wv_kernel
    ("conv3d", (2, 6, 5, 7, 24), (3, 3, 3, 24, 5), 1, "SAME", "NDHWC", "_run.<locals>.launch"),  # packed rows
    ("conv2d_transpose", (2, 4, 5, 6), (3, 3, 2, 4), 2, "SAME", "NCHW", "_run.<locals>.launch"),
    ("conv2d", (2, 8, 16, 16), (3, 3, 8, 8), 1, "SAME", "NCHW", "_short_cf.<locals>.launch"),
    ("conv2d", (2, 64, 7, 7), (3, 3, 64, 64), 1, "SAME", "NCHW", "_cf_bands.<locals>.launch"),
    ("conv2d", (2, 6, 9, 16), (1, 1, 16, 3), 1, "VALID", "NHWC", "_pointwise.<locals>.launch"),
    ("conv2d", (2, 16, 6, 9), (1, 1, 16, 3), 1, "VALID", "NCHW", "_pointwise_cf.<locals>.launch"),
    # stride == kernel transposes: a patch per input pixel (the W taps merged
    # into the channels for 16 output channels)
    ("conv3d_transpose", (1, 4, 4, 4, 16), (2, 2, 2, 16, 16), 2, "SAME", "NDHWC", "_patch.<locals>.launch"),
    ("conv3d_transpose", (1, 4, 4, 4, 16), (2, 2, 2, 32, 16), 2, "SAME", "NDHWC", "_patch.<locals>.launch"),
    ("conv3d_transpose", (1, 16, 4, 4, 4), (2, 2, 2, 8, 16), 2, "SAME", "NCDHW", "_run.<locals>.launch"),
    # channels-first strided transposes with few input channels: rows expanded, then gathered
    ("conv2d_transpose", (2, 3, 8, 8), (3, 3, 64, 3), 2, "SAME", "NCHW", "_cf_gather.<locals>.launch"),
    # depthwise: blocks of channels on padded planes, vectors of channels along the rows, a
    # multiplier of 2 (channels-last); blocks, a plane at a time (channels-first)
    ("conv2d", (1, 14, 14, 64), (3, 3, 1, 64), 1, "SAME", "NHWC", "_depthwise_blocks.<locals>.launch"),
    ("conv2d", (1, 20, 40, 32), (3, 3, 1, 32), 2, "SAME", "NHWC", "_depthwise_cl_vectors.<locals>.launch"),
    ("conv2d", (1, 8, 9, 8), (3, 3, 1, 16), 1, "SAME", "NHWC", "_run.<locals>.launch"),
    ("conv2d", (1, 32, 7, 7), (3, 3, 1, 32), 1, "SAME", "NCHW", "_depthwise_blocks.<locals>.launch"),
    ("conv2d", (1, 16, 65, 64), (3, 3, 1, 16), 1, "SAME", "NCHW", "_depthwise_cf.<locals>.launch"),
]


def _call(case, x, w, backend="cpu"):
    op, _, _, strides, padding, data_format, _ = case
    if op.endswith("_transpose"):
        return getattr(fastdeconv, op)(x, w, None, strides, padding, data_format=data_format, backend=backend)
    return getattr(fastdeconv, op)(x, w, strides, padding, data_format=data_format, backend=backend)


def _arrays(case, dtype, seed, read_only):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(case[1]).astype(dtype)
    w = rng.standard_normal(case[2]).astype(dtype)
    w.flags.writeable = not read_only
    return x, w


def _unaligned(a):
    """a's values in an array one byte off its dtype's alignment."""
    buf = np.zeros(a.nbytes + 1, np.uint8)
    u = np.ndarray(a.shape, a.dtype, buffer=buf, offset=1)
    u[...] = a
    assert not u.flags.aligned
    return u


@pytest.fixture
def planned(monkeypatch):
    """The launches planned (cpu._launched's), by qualified name."""
    names = []
    real = cpu._launched

    def spy(key, launch, *a):
        names.append(launch.__qualname__)
        return real(key, launch, *a)

    monkeypatch.setattr(cpu, "_launched", spy)  # (a setting: the routes are forgotten)
    assert not cpu._ROUTES
    return names


@pytest.mark.parametrize("read_only", [True, False], ids=["read-only", "writable"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}-{c[5]}" for c in CASES])
def test_remembered_route_same_bits(case, dtype, read_only, planned):
    """The second call of a signature plans nothing and gives the bits of a
    fresh plan on its own arrays: other values, filters changed in place,
    an unaligned input; and the reference's result."""
    x1, w1 = _arrays(case, dtype, 1, read_only)
    x2, w2 = _arrays(case, dtype, 2, read_only)
    y1 = _call(case, x1, w1).copy()
    assert planned == [case[-1]] and len(cpu._ROUTES) == 1
    y2 = _call(case, x2, w2).copy()
    y1_again = _call(case, x1, w1).copy()
    y2_unaligned = _call(case, _unaligned(x2), w2).copy()
    if not read_only:
        w1 *= 2
        y1_doubled = _call(case, x1, w1).copy()
    assert len(planned) == 1  # all remembered
    assert y1_again.tobytes() == y1.tobytes() and y2_unaligned.tobytes() == y2.tobytes()
    cpu._ROUTES.clear()
    assert _call(case, x2, w2).tobytes() == y2.tobytes()
    if not read_only:
        cpu._ROUTES.clear()
        assert _call(case, x1, w1).tobytes() == y1_doubled.tobytes()
        w1 /= 2
    assert len(planned) == (2 if read_only else 3)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    for x, w, y in ((x1, w1, y1), (x2, w2, y2)):
        np.testing.assert_allclose(y, _call(case, x, w, "reference"), rtol=tol, atol=tol)


@pytest.mark.parametrize("transpose, channels, launch", [(False, 64, "_run.<locals>.launch"),
                                                         (False, 32, "_short.<locals>.launch"),
                                                         (True, 16, "_patch.<locals>.launch")],
                         ids=["cl_kernel", "short", "patch"])
def test_remembered_route_epilogue(transpose, channels, launch, planned):
    """A remembered route applies each call's own epilogue (bias, ReLU in
    the kernel's registers; the patch kernel's bias tiled over its merged
    W taps)."""
    rng = np.random.default_rng(5)
    if transpose:
        x = rng.standard_normal((1, 3, 4, 5, 16)).astype(np.float32)
        w = rng.standard_normal((2, 2, 2, 16, 16)).astype(np.float32)
        call = cpu.transpose
        geometry = ((6, 8, 10), (2, 2, 2), (1, 1, 1), (0, 0, 0), False)
    else:
        x = rng.standard_normal((1, 1, 6, 7, channels)).astype(np.float32)
        w = rng.standard_normal((1, 3, 3, channels, 48)).astype(np.float32)
        call = cpu.forward
        geometry = ((1, 6, 7), (1, 1, 1), (1, 1, 1), (0, 1, 1), 1, False)
    w.flags.writeable = False
    results = []
    for seed in (6, 7):
        bias = np.random.default_rng(seed).standard_normal(16 if transpose else 48).astype(np.float32)
        results.append((bias, call(x, w, *geometry, epilogue=(bias, None, None, "relu", 0.0)).copy()))
    assert planned == [launch]
    plain = call(x, w, *geometry).copy()
    for bias, y in results:
        np.testing.assert_array_equal(y, np.maximum(plain + bias, 0))


def test_remembered_route_follows_thread_count(planned, monkeypatch):
    """The thread count is part of a route's signature (plans depend on
    it): another count plans again, with the same bits."""
    case = CASES[4]  # wv_kernel's plan takes the thread count
    x, w = _arrays(case, np.float32, 3, True)
    y = _call(case, x, w).copy()
    monkeypatch.setattr(numba, "get_num_threads", lambda: 3)
    assert _call(case, x, w).tobytes() == y.tobytes()
    assert len(planned) == 2 and len(cpu._ROUTES) == 2


@pytest.mark.parametrize("module", [cpu, cpu_cfband, cpu_cfgather, cpu_dw, cpu_layout, cpu_patch, cpu_pw, cpu_rb,
                                    cpu_short, cpu_simd], ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_settings_forget_routes(module, monkeypatch):
    """Setting any attribute of a backend module (a tuning constant, a
    spy) forgets the remembered routes, planned with the old settings."""
    case = CASES[0]
    x, w = _arrays(case, np.float32, 4, True)
    _call(case, x, w)
    assert cpu._ROUTES
    monkeypatch.setattr(module, "_SETTING", 1, raising=False)
    assert not cpu._ROUTES


def test_every_planning_module_forgets_routes():
    """Every cpu backend module a plan can read a setting of has the
    forgetting module class (cpu_layers: its settings are read per call,
    never planned)."""
    import importlib
    import pkgutil

    import fastdeconv.backends as backends

    names = [m.name for m in pkgutil.iter_modules(backends.__path__) if m.name.startswith("cpu")]
    assert len(names) >= 10
    for name in names:
        module = importlib.import_module(f"fastdeconv.backends.{name}")
        assert isinstance(module, cpu._Settings) == (name != "cpu_layers"), name


@pytest.mark.parametrize("read_only", [True, False], ids=["read-only", "writable"])
def test_epilogue_parameter_rows(read_only):
    """The channels-last epilogue's parameter rows are remembered for
    read-only parameters only: a writable bias written in place is used as
    it is now."""
    rng = np.random.default_rng(8)
    y0 = rng.standard_normal((2, 5, 6, 7)).astype(np.float32)
    bias = rng.standard_normal(7).astype(np.float32)
    bias.flags.writeable = not read_only
    cpu_layers._TILED.clear()
    for _ in range(2):
        y = cpu_layers.epilogue(y0.copy(), 7, False, bias, None, None, "relu")
        np.testing.assert_array_equal(y, np.maximum(y0 + bias, 0))
    assert len(cpu_layers._TILED) == (1 if read_only else 0)
    if not read_only:
        bias += 1
        np.testing.assert_array_equal(cpu_layers.epilogue(y0.copy(), 7, False, bias, None, None, "relu"),
                                      np.maximum(y0 + bias, 0))
