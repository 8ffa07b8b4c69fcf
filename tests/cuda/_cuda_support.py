"""Shared by conftest.py and test_cuda.py (a module name of its own: both
tests/ and tests/cuda/ have a conftest.py)."""

import os

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"

# Under the simulator: 4 threads per block (2 x 2 along positions x channels),
# 2 x 2 outputs per thread, 8 reduction indexes per step, at most 5 blocks.
SMALL_TILES = dict(THREADS_PER_BLOCK=4, MAX_THREADS_N=2, REG_M=2, REG_N=2, TILE_K=8, MAX_BLOCKS=5,
                   BIG_TILE_SCALE=2, BIG_TILE_MIN_TILES=512, ELEMENTWISE_THREADS=8, ELEMENTWISE_MAX_BLOCKS=3)


def shipped_tunables():
    """The values in fastdeconv/backends/cuda/config.py (before any test patches them)."""
    return dict(_SHIPPED)


def set_tunables(monkeypatch, **values):
    """Set CUDA tunables for one test (read by the backend at call time)."""
    from fastdeconv.backends.cuda import config

    for name, value in values.items():
        assert hasattr(config, name), name
        monkeypatch.setattr(config, name, value)


def _read_shipped():
    from fastdeconv.backends.cuda import config

    return {name: getattr(config, name) for name in SMALL_TILES}


_SHIPPED = _read_shipped()


def fix_simulator_shared_array_race():
    """Make the simulator's cuda.shared.array thread-safe.

    numba-cuda's simulator (0.30) runs each CUDA thread as a Python thread and
    finds a block's shared array by (file, line) with an unlocked
    get-then-set: two threads reaching the same cuda.shared.array line at
    once can each create their own array, so they stop sharing it and a
    kernel computes garbage about once in a few hundred launches (seen here
    as rare, unreproducible failures). This repeats the same lookup under a
    lock. A GPU is unaffected; only tests and `gpu_check.py --simulate` call it.
    """
    import sys
    import threading

    import numpy as np
    from numba.core import types
    from numba.cuda.simulator import kernelapi
    from numba.np import numpy_support

    shared = kernelapi.FakeCUDAShared
    if getattr(shared, "_fastdeconv_locked", False):
        return
    original = shared.array
    lock = threading.Lock()

    def array(self, shape, dtype, alignment=None):
        if alignment is not None or shape == 0:  # errors / dynamic shared memory: unchanged
            return original(self, shape, dtype, alignment)
        if isinstance(dtype, types.Type):
            dtype = numpy_support.as_dtype(dtype)
        frame = sys._getframe(1)
        caller = (frame.f_code.co_filename, frame.f_lineno)
        with lock:
            res = self._allocations.get(caller)
            if res is None:
                res = self._allocations[caller] = np.empty(shape, dtype)
        return res

    shared.array = array
    shared._fastdeconv_locked = True
