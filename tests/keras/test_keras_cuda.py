"""The CUDA pooling / upsampling kernels and a model with backend='cuda',
run under Numba's CUDA simulator in a subprocess (NUMBA_ENABLE_CUDASIM must
be set before numba is imported), with launches shrunk to a few threads so
that the grid-stride loops wrap."""

import importlib.util
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("numba_cuda") is None, reason="numba-cuda not installed")

_SCRIPT = r"""
import os
os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
import numpy as np
from numba import cuda
from fastdeconv.backends.cuda import config
config.ELEMENTWISE_THREADS, config.ELEMENTWISE_MAX_BLOCKS = 4, 3
from fastdeconv.backends import cuda_layers as G, reference_layers as R
from fastdeconv import layers as L

rng = np.random.default_rng(0)
for cf in (False, True):
    x = rng.standard_normal((2, 2, 3, 5, 4) if cf else (2, 3, 5, 4, 2)).astype(np.float32)
    for is_max in (True, False):
        for args in [((2, 3, 2), (2, 2, 2), (2, 2, 2), (0, 1, 0)), ((1, 1, 2), (1, 2, 2), (3, 5, 2), (0, 0, 0))]:
            got, ref = G.pool(x, *args, cf, is_max), R.pool(x, *args, cf, is_max)
            assert got.shape == ref.shape and np.abs(got - ref).max() <= 1e-6, (cf, is_max, args)
    assert np.array_equal(G.upsample(x, (1, 2, 3), cf), R.upsample(x, (1, 2, 3), cf))
    on_device = G.upsample(cuda.to_device(x), (2, 1, 1), cf)
    assert getattr(on_device, "__cuda_ndarray__", False)
    assert np.array_equal(on_device.copy_to_host(), R.upsample(x, (2, 1, 1), cf))

# padding / cropping, global pooling (NaN, inf), the merges (NaN), softmax along an inner axis
from fastdeconv.layers import reshaping, _base
x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
x[0, 1, 2, 3], x[1, 0, 1, 2] = np.nan, np.inf
for shape, before in [((2, 5, 3, 7), (0, 1, -1, 2)), ((2, 3, 2, 5), (0, 0, -2, 0))]:
    got = G.pad_crop(cuda.to_device(x), shape, before).copy_to_host()
    assert np.array_equal(got, reshaping.pad_or_crop(x, shape, before), equal_nan=True), (shape, before)
for cf in (False, True):
    S, C = (20, 3) if cf else (12, 5)
    ref_max = np.max(x.reshape(2, 3, 20), axis=2) if cf else np.max(x.reshape(2, 12, 5), axis=1)
    ref_mean = (np.mean(x.reshape(2, 3, 20), axis=2, dtype=np.float64) if cf
                else np.mean(x.reshape(2, 12, 5), axis=1, dtype=np.float64)).astype(np.float32)
    assert np.array_equal(G.global_pool(cuda.to_device(x), S, C, cf, True).copy_to_host(), ref_max, equal_nan=True)
    mean = G.global_pool(cuda.to_device(x), S, C, cf, False).copy_to_host()
    assert np.allclose(mean, ref_mean, rtol=1e-6, atol=0, equal_nan=True)  # float64 sums in another order
y = rng.standard_normal(x.shape).astype(np.float32)
y[1, 2, 3, 4] = np.nan
for op, f in [("add", np.add), ("subtract", np.subtract), ("multiply", np.multiply), ("maximum", np.maximum),
              ("minimum", np.minimum)]:
    got = G.merge([cuda.to_device(x), cuda.to_device(y), cuda.to_device(x)], op).copy_to_host()
    assert np.array_equal(got, f(f(x, y), x), equal_nan=True), op
assert np.array_equal(G.divide(cuda.to_device(y), 3).copy_to_host(), y / np.float32(3), equal_nan=True)
from fastdeconv.backends import cpu_layers
from fastdeconv.layers.pooling import bilinear_taps
for cf in (False, True):
    x5 = rng.standard_normal((2, 3, 1, 4, 5) if cf else (2, 1, 4, 5, 3)).astype(np.float32)
    taps = bilinear_taps(4, 8) + bilinear_taps(5, 15)
    ref = cpu_layers.resize_bilinear(x5, taps, cf)
    assert np.abs(G.resize_bilinear(x5, taps, cf) - ref).max() <= 1e-6
    got = G.resize_bilinear(cuda.to_device(x5), taps, cf).copy_to_host()
    assert got.shape == ref.shape and np.abs(got - ref).max() <= 1e-6
z = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
for axes in [(0, 2, 3, 1), (0, 3, 1, 2), (1, 0, 3, 2)]:
    assert np.array_equal(G.permute(cuda.to_device(z), axes).copy_to_host(), np.transpose(z, axes)), axes
from fastdeconv.layers.normalization import _normalize
gam, bet = rng.uniform(0.5, 1.5, 20).astype(np.float32), rng.standard_normal(20).astype(np.float32)
ref = _normalize(z, (2, 3), gam, bet, 1e-3, (1, 1, 4, 5))
assert np.abs(G.normalize_rows(cuda.to_device(z), 20, gam, bet, 1e-3).copy_to_host() - ref).max() <= 1e-6
for cf in (False, True):
    C = 3 if cf else 5
    grouped = z.reshape((2, 3, 1, 20) if cf else (2, 12, 5, 1))  # 3 groups of 1 channel, or 5 of 1
    gam = rng.uniform(0.5, 1.5, C).astype(np.float32)
    ref = _normalize(grouped, (2, 3) if cf else (1, 3), gam, None, 1e-3,
                     (1, 3, 1, 1) if cf else (1, 1, 5, 1)).reshape(z.shape)
    got = G.group_normalize(cuda.to_device(z), C, cf, gam, None, 1e-3).copy_to_host()
    assert np.abs(got - ref).max() <= 1e-6, cf
    if cf:  # one group of all 3 channels
        two = _normalize(z.reshape(2, 60), (1,), None, None, 1e-3, (1, 1)).reshape(z.shape)
        assert np.abs(G.group_normalize(cuda.to_device(z), 1, True, None, None, 1e-3).copy_to_host()
                      - two).max() <= 1e-6
got = G.softmax_axis(cuda.to_device(z), 2).copy_to_host()
assert np.abs(got - _base.softmax(z, axis=2)).max() <= 1e-6

inp = L.Input((6, 6, 2))
y = L.Conv2D(3, 3, padding="same", activation="relu")(inp)
y = L.BatchNormalization()(L.MaxPooling2D()(y))
y = L.Conv2DTranspose(2, 3, strides=2, padding="same")(L.UpSampling2D()(y))
model = L.Model(inp, L.AveragePooling2D(3, strides=1, padding="same")(y))
for layer in model.layers:
    layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32) for w in layer.get_weights()])
x = rng.standard_normal((2, 6, 6, 2)).astype(np.float32)
ours, ref = model.predict(x, backend="cuda"), model.predict(x, backend="reference")
assert np.abs(ours - ref).max() <= 1e-5 * np.abs(ref).max(), np.abs(ours - ref).max()
print("ok")
"""


_DEVICE_SCRIPT = r"""
import os
os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
import numpy as np
from fastdeconv.backends.cuda import config
config.ELEMENTWISE_THREADS, config.ELEMENTWISE_MAX_BLOCKS = 4, 3
config.THREADS_PER_BLOCK, config.MAX_THREADS_N = 16, 4  # (as in _ZOO_SCRIPT)
from fastdeconv.backends import cuda_layers as G
from fastdeconv import layers as L

rng = np.random.default_rng(1)


def randomize(model):
    for layer in model.layers:
        ws = layer.get_weights()
        if isinstance(layer, L.BatchNormalization):
            ws = [rng.uniform(0.5, 1.5, w.shape).astype(np.float32) for w in ws]
        else:
            ws = [rng.uniform(-0.7, 0.7, w.shape).astype(np.float32) for w in ws]
        layer.set_weights(ws)


def check(model, x):
    # every layer gets device arrays: activations never visit the host between layers
    seen = []
    for layer in model.layers:
        call = layer.call

        def spy(inputs, *a, _call=call, _name=layer.name, **k):
            for v in (inputs if isinstance(inputs, list) else [inputs]):
                seen.append((_name, bool(getattr(v, "__cuda_ndarray__", False))))
            return _call(inputs, *a, **k)

        layer.call = spy
    moved = []
    to_device = G.to_device
    G.to_device = lambda a: moved.append(a.shape) or to_device(a)
    try:
        ours = model.predict(x, batch_size=2, backend="cuda")
    finally:
        G.to_device = to_device
        for layer in model.layers:
            del layer.call
    host = [n for n, d in seen if not d]
    assert not host, host
    batches = -(-len(x) // 2)
    assert len(moved) == batches + sum(isinstance(l, L.Dense) for l in model.layers) * batches + sum(
        isinstance(l, L.Flatten) and l.data_format == "channels_first" for l in model.layers) * batches, moved
    # batches of one size: a second predict takes every buffer from the model's device pool
    from numba import cuda
    allocs = []
    device_array = cuda.device_array
    cuda.device_array = lambda *a, **k: allocs.append(a) or device_array(*a, **k)
    try:
        again = model.predict(x, batch_size=2, backend="cuda")
    finally:
        cuda.device_array = device_array
    assert not allocs, allocs
    assert np.array_equal(again, ours)
    ref = model.predict(x, batch_size=2, backend="reference")
    assert isinstance(ours, np.ndarray) and ours.shape == ref.shape and ours.dtype == ref.dtype
    err = np.abs(ours - ref).max() / np.abs(ref).max()
    assert err <= 1e-5, err


# a two-level 3-D U-Net: fused conv + BatchNorm + ReLU, skips, k2 s2 transposes, softmax head
inp = L.Input((8, 8, 8, 1))
e1 = L.Activation("relu")(L.BatchNormalization()(L.Conv3D(4, 3, padding="same")(inp)))
b = L.Conv3D(8, 3, padding="same", activation="relu")(L.MaxPooling3D()(e1))
u = L.Conv3DTranspose(4, 2, strides=2)(b)
d = L.Conv3D(4, 3, padding="same", activation="relu")(L.Concatenate()([u, e1]))
unet = L.Model(inp, L.Conv3D(3, 1, activation="softmax")(d))
randomize(unet)
check(unet, rng.standard_normal((4, 8, 8, 8, 1)).astype(np.float32))

# channels-first, standalone BatchNorm on axis 1, residual Add, the other activations,
# pooling, upsampling, Dropout, Flatten (a transposing copy on the host), Dense, Reshape
inp = L.Input((3, 6, 6))
x = L.Conv2D(4, 3, padding="same", data_format="channels_first")(inp)
x = L.LeakyReLU(0.1)(L.BatchNormalization(axis=1)(x))
y = L.Conv2D(4, 3, padding="same", data_format="channels_first", activation="tanh")(x)
x = L.Add()([x, y, L.Activation("sigmoid")(y)])
x = L.AveragePooling2D(2, data_format="channels_first")(x)
x = L.UpSampling2D(2, data_format="channels_first")(L.Activation("elu")(x))
x = L.Conv2DTranspose(2, 3, strides=2, padding="same", data_format="channels_first", activation="softplus")(x)
x = L.Flatten(data_format="channels_first")(L.Dropout(0.5)(x))
x = L.Reshape((-1, 4))(L.Dense(12, activation="silu")(x))
cf = L.Model(inp, L.Concatenate(axis=1)([x, L.Activation("softmax")(x)]))
randomize(cf)
check(cf, rng.standard_normal((4, 3, 6, 6)).astype(np.float32))
print("ok")
"""


def _simulate(script):
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stdout + res.stderr


def test_cuda_layer_kernels_under_the_simulator():
    _simulate(_SCRIPT)


def test_model_activations_stay_on_the_device_under_the_simulator():
    """A Model on backend='cuda' copies each batch to the device once and its
    outputs back once; every layer gets device arrays; a second predict
    allocates nothing (the model's device pool), and the results match
    the reference backend's (epilogues, softmax, Concatenate, Add, BatchNorm on
    either axis, Flatten, Dense, Reshape)."""
    _simulate(_DEVICE_SCRIPT)


def test_gpu_models_script_on_a_saved_model(tmp_path):
    """scripts/gpu_models.py end to end on the smallest model: --make saves it
    with Keras' output, then the check loads it without TensorFlow and
    compares (here on the cpu backend: the script, not the GPU)."""
    script = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "gpu_models.py")
    made = subprocess.run([sys.executable, script, str(tmp_path), "--make", "--only", "c3t_chain"],
                          capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c3t_chain.keras", "c3t_chain.npz"]
    res = subprocess.run([sys.executable, script, str(tmp_path), "--backends", "cpu", "--repeat", "1"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    row = [line for line in res.stdout.splitlines() if line.startswith("| cpu |")]
    assert len(row) == 1 and "FAIL" not in row[0], res.stdout


_ZOO_SCRIPT = r"""
import os, sys
os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
import numpy as np
import fastdeconv
from fastdeconv.backends.cuda import config
# small blocks: the simulator runs each block's threads as Python threads at
# once (256 of them: minutes of switching between them); results do not
# depend on these
config.THREADS_PER_BLOCK, config.MAX_THREADS_N = 16, 4
config.ELEMENTWISE_THREADS, config.ELEMENTWISE_MAX_BLOCKS = 16, 8
for path in sys.argv[1:]:
    x, y = np.load(path + ".x.npy"), np.load(path + ".y.npy")
    model = fastdeconv.load_keras(path)
    host = []  # layers that got a host array: every layer runs on the device
    for layer in model.layers:
        def spy(inputs, *a, _call=layer.call, _name=layer.name, **k):
            for v in (inputs if isinstance(inputs, list) else [inputs]):
                if not getattr(v, "__cuda_ndarray__", False):
                    host.append(_name)
            return _call(inputs, *a, **k)
        layer.call = spy
    out = model.predict(x, batch_size=2, backend="cuda")
    assert not host, (path, host)
    err = float(np.abs(out - y).max() / np.abs(y).max())
    assert err <= 2e-6, (path, err)
print("ok")
"""


def test_layer_zoo_on_cuda_matches_keras_under_the_simulator(saved, tmp_path):
    """The saved networks that cover every layer class, on backend='cuda'
    (every layer gets device arrays), against Keras' own outputs."""
    from test_keras_layers import ZOO

    import numpy as np

    paths = []
    for builder in ZOO:
        s = saved(builder)
        path = str(s.paths["keras"])
        np.save(path + ".x.npy", s.input(2))  # one batch: the simulator is slow
        np.save(path + ".y.npy", s.expected(2))
        paths.append(path)
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    res = subprocess.run([sys.executable, "-c", _ZOO_SCRIPT, *paths], env=env, capture_output=True, text=True,
                         timeout=1200)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stdout + res.stderr
