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


def test_cuda_layer_kernels_under_the_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    res = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stdout + res.stderr


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
