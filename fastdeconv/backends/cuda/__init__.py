"""CUDA backend (Numba CUDA, from the numba-cuda package).

`forward` and `transpose` have the interface of every backend (canonical
5-D arrays, see `..reference`). They accept NumPy arrays (copied to the
device and back; the result is a NumPy array) or Numba device arrays (the
work and the result stay on the device). `DeviceArrays` is what `ops._run`
uses instead of NumPy for device inputs: zeros, 5-D views and the final
cast, all on the device.

Kernels are in `kernels`, tunables in `config` (read at every call).
numba.cuda is imported only when the backend is used, so `config` can be
imported, and a missing numba-cuda reported clearly, without it.
"""

import importlib.util
import math
import threading

import numpy as np

from ... import _alloc
from ...errors import message
from . import config

__all__ = ["forward", "transpose", "check_available", "as_device_array", "DeviceArrays", "DevicePool",
           "device_address", "device_empty", "elementwise_grid", "launch_shape", "shared_bytes"]

_INSTALL = "Install it with: pip install 'fastdeconv[cuda]' (or pip install numba-cuda)."
_available = None


def _numba_cuda():
    """numba.cuda from the numba-cuda package, or an error naming it.

    The errors for an unusable backend='cuda' are ValueErrors, like every
    other bad argument (message: given / expected / fix)."""
    if importlib.util.find_spec("numba_cuda") is None:
        raise ValueError(message(
            "backend='cuda' (or a CUDA device array as input), but the numba-cuda package is not installed",
            "numba-cuda (the 'cuda' extra of fastdeconv; Numba's built-in numba.cuda is deprecated)",
            _INSTALL))
    from numba import cuda

    _check_numpy_support()
    return cuda


def _check_numpy_support():
    """numba-cuda 0.30 registers an overload of np.row_stack, which NumPy 2.5
    removed, when it first compiles a kernel; it is in maintenance mode and
    will not change that (NVIDIA/numba-cuda#907). Say so up front instead of
    an AttributeError from deep inside the first launch."""
    if hasattr(np, "row_stack"):
        return
    try:
        import numba.cuda.np.arrayobj  # noqa: F401  the module whose import fails
    except AttributeError as exc:
        if "row_stack" not in str(exc):
            raise
        raise ValueError(message(
            f"backend='cuda' with NumPy {np.__version__}, which the installed numba-cuda cannot compile "
            "kernels with (it still refers to np.row_stack, removed in NumPy 2.5)",
            "NumPy < 2.5 with numba-cuda",
            "pip install 'numpy<2.5' (the 'cuda' extra of fastdeconv asks for it), or use backend='cpu'")) from None


def check_available():
    """Raise, with what to do, unless CUDA kernels can run here (a GPU with
    a driver, or the simulator: NUMBA_ENABLE_CUDASIM=1 before numba is imported)."""
    global _available
    cuda = _numba_cuda()
    if _available is None:
        _available = bool(cuda.is_available())
    if not _available:
        raise ValueError(message(
            "backend='cuda', but numba-cuda finds no usable CUDA GPU and driver",
            "an NVIDIA GPU with a working driver",
            "Use backend='cpu', or set NUMBA_ENABLE_CUDASIM=1 before importing numba to run on the "
            "(slow) CUDA simulator; `python -c \"from numba import cuda; cuda.detect()\"` shows what is wrong."))


def _is_numba_device_array(a):
    return bool(getattr(a, "__cuda_ndarray__", False))


def as_device_array(a):
    """A Numba device array viewing `a` (no copy): Numba device arrays as they
    are, anything else through `__cuda_array_interface__` (CuPy, PyTorch)."""
    if _is_numba_device_array(a):
        return a
    return _numba_cuda().as_cuda_array(a)


_active = threading.local()


def device_address(a):
    """The device address of a's first element (views of one buffer share it)."""
    if not a.size:
        return 0
    try:
        return int(a.__cuda_array_interface__["data"][0])
    except AttributeError:  # the CUDA simulator's arrays wrap a NumPy array
        return int(a.ctypes.data)


class DevicePool(_alloc.RunPool):
    """Device buffers a Model's layers release, lent again to later layers
    and batches (`device_empty` inside `active()`), by element count and
    dtype; the host `_alloc.Pool`'s run rules.

    Why: a buffer numba-cuda frees goes to its deferred-deallocation queue,
    and flushing that queue (cuMemFree) waits for the GPU: a U-Net predict
    spent most of its time in the host's calls (benchmarks/GPU.md). Nothing
    is freed during a run."""

    def __init__(self):
        super().__init__(_active)  # self._free: (elements, dtype) -> [flat device arrays]
        self._lent = {}  # device address -> flat device array

    def take(self, shape, dtype):
        cuda = _numba_cuda()
        dtype = np.dtype(dtype)
        shape = tuple(int(n) for n in shape)
        n = math.prod(shape)
        if n == 0:
            return cuda.device_array(shape, dtype)
        with self._lock:
            free = self._free.get((n, dtype.str))
            flat = free.pop() if free else None
        if flat is None:
            flat = cuda.device_array(n, dtype)
        with self._lock:
            self._lent[device_address(flat)] = flat
            self._used.add(id(flat))
        return flat if shape == (n,) else flat.reshape(shape)

    def give(self, a):
        """Back to the pool if `a` (or a view at its start) is a buffer this
        pool lent (else nothing)."""
        if not a.size:
            return
        with self._lock:
            flat = self._lent.pop(device_address(a), None)
            if flat is not None:
                self._free.setdefault((flat.size, np.dtype(flat.dtype).str), []).append(flat)
                self._used.add(id(flat))

    def _end_run(self):
        # a buffer still lent after the run (an output no layer reads,
        # never given back) is left to its views
        self._lent.clear()


def device_empty(shape, dtype):
    """cuda.device_array(shape, dtype), from the running Model's DevicePool
    when there is one."""
    pool = getattr(_active, "pool", None)
    if pool is not None:
        return pool.take(shape, dtype)
    return _numba_cuda().device_array(tuple(int(n) for n in shape), np.dtype(dtype))


def _pow2ceil(n):
    return 1 << max(0, int(n) - 1).bit_length()


def _cdiv(a, b):
    return -(-a // b)


def shared_bytes(tm, tn, rm, rn, bk, itemsize):
    """Static shared memory of `kernels.conv_kernel` for one tile shape: the
    A and B slices, then the per-position and per-index tables."""
    bm, bn = tm * rm, tn * rn
    return bk * (bm + bn + 2) * itemsize + 4 * (4 * bm + 4 * bk) + 8 * (bm + 2 * bk)


def launch_shape(cout_g, itemsize, positions=0, tile_groups=1):
    """(tm, tn, rm, rn, bk) for a group of `cout_g` output channels, from
    `config` at call time: as many threads along the channels as the channels
    need (up to MAX_THREADS_N), the rest of the block along the positions;
    REG_M then TILE_K halved until the tiles fit in SHARED_BYTES.

    `positions` (output positions per phase) and `tile_groups` (phases x
    groups) size the problem: when it has at least BIG_TILE_MIN_TILES tiles
    with REG_M and REG_N times BIG_TILE_SCALE, those larger tiles are used."""
    threads = max(1, int(config.THREADS_PER_BLOCK))

    def shape(reg_m, reg_n):
        rn = max(1, min(reg_n, _pow2ceil(cout_g)))
        tn = max(1, min(int(config.MAX_THREADS_N), _pow2ceil(_cdiv(max(cout_g, 1), rn)), threads))
        tm = max(1, threads // tn)
        rm, bk = max(1, reg_m), max(1, int(config.TILE_K))
        while shared_bytes(tm, tn, rm, rn, bk, itemsize) > config.SHARED_BYTES and rm > 1:
            rm //= 2
        while shared_bytes(tm, tn, rm, rn, bk, itemsize) > config.SHARED_BYTES and bk > 1:
            bk //= 2
        return tm, tn, rm, rn, bk

    reg_m, reg_n, scale = int(config.REG_M), int(config.REG_N), max(1, int(config.BIG_TILE_SCALE))
    if scale > 1:
        tm, tn, rm, rn, bk = big = shape(reg_m * scale, reg_n * scale)
        tiles = tile_groups * _cdiv(positions, tm * rm) * _cdiv(cout_g, tn * rn)
        if tiles >= int(config.BIG_TILE_MIN_TILES):
            return big
    return shape(reg_m, reg_n)


def _launch(trans, x5, w5, out_spatial, strides, dilations, pads_before, groups, channels_first):
    cuda = _numba_cuda()
    from . import kernels

    on_host = not (_is_numba_device_array(x5) and _is_numba_device_array(w5))
    dtype = np.dtype(x5.dtype)
    out_spatial, strides, dilations, pads_before = (
        tuple(int(v) for v in t) for t in (out_spatial, strides, dilations, pads_before))
    if trans:
        cout_g, cin, cout = int(w5.shape[3]), int(w5.shape[4]), int(w5.shape[3])
        groups = 1
    else:
        cin, cout = int(w5.shape[3]), int(w5.shape[4])
        cout_g = cout // groups
    batch = int(x5.shape[0])
    spatial = tuple(int(v) for v in (x5.shape[2:] if channels_first else x5.shape[1:4]))
    kernel_size = tuple(int(v) for v in w5.shape[:3])
    out_shape = (batch, cout) + out_spatial if channels_first else (batch,) + out_spatial + (cout,)
    if math.prod(out_shape) == 0:
        empty = np.zeros(out_shape, dtype)
        return empty if on_host else cuda.to_device(empty)

    # Outputs per phase: at most ceil(O / s) per dim for a transpose.
    per_dim = [_cdiv(o, s) for o, s in zip(out_spatial, strides)] if trans else list(out_spatial)
    positions = batch * math.prod(per_dim)
    phases = math.prod(strides) if trans else 1
    tm, tn, rm, rn, bk = launch_shape(cout_g, dtype.itemsize, positions, phases * groups)
    m_tiles = _cdiv(positions, tm * rm)
    n_tiles = _cdiv(cout_g, tn * rn)
    total = phases * groups * m_tiles * n_tiles
    grid = max(1, min(total, int(config.MAX_BLOCKS)))
    params = tuple(int(v) for v in (*spatial, *out_spatial, *kernel_size, *strides, *dilations, *pads_before,
                                    batch, cin, cout_g, groups, int(bool(channels_first)), m_tiles, n_tiles))

    # The kernel indexes flat views (offsets computed once per tile and step).
    dx = x5.reshape(x5.size) if _is_numba_device_array(x5) else cuda.to_device(np.ascontiguousarray(x5).ravel())
    dw = w5.reshape(w5.size) if _is_numba_device_array(w5) else cuda.to_device(np.ascontiguousarray(w5).ravel())
    n_out = math.prod(out_shape)
    out = cuda.device_array(n_out, dtype) if on_host else device_empty((n_out,), dtype)
    kernels.conv_kernel(bool(trans), tm, tn, rm, rn, bk, dtype.name)[grid, tm * tn](dx, dw, out, params)
    out = out.reshape(out_shape)
    return out.copy_to_host() if on_host else out


def forward(x5, w5, out_spatial, strides, dilations, pads_before, groups, channels_first):
    """Cross-correlation; see `..reference.forward`."""
    return _launch(False, x5, w5, out_spatial, strides, dilations, pads_before, groups, channels_first)


def transpose(x5, w5, out_spatial, strides, dilations, pads_before, channels_first):
    """Transposed convolution (gather form, one writer per output); see
    `..reference.transpose`."""
    return _launch(True, x5, w5, out_spatial, strides, dilations, pads_before, 1, channels_first)


def elementwise_grid(n):
    threads = max(1, int(config.ELEMENTWISE_THREADS))
    return max(1, min(_cdiv(n, threads), int(config.ELEMENTWISE_MAX_BLOCKS))), threads


class DeviceArrays:
    """The array operations `ops._run` needs, for device arrays: nothing here
    copies to or from the host."""

    @staticmethod
    def zeros(shape, dtype):
        cuda = _numba_cuda()
        from . import kernels

        out = cuda.device_array(tuple(shape), np.dtype(dtype))
        if out.size:
            grid, threads = elementwise_grid(out.size)
            kernels.fill[grid, threads](out.reshape(out.size), 0)
        return out

    @staticmethod
    def cast(a, dtype):
        """`a` as `dtype` (a new device array), or `a` itself if it already is."""
        dtype = np.dtype(dtype)
        if np.dtype(a.dtype) == dtype:
            return a
        cuda = _numba_cuda()
        from . import kernels

        out = cuda.device_array(tuple(a.shape), dtype)
        if out.size:
            grid, threads = elementwise_grid(out.size)
            kernels.cast[grid, threads](a.reshape(a.size), out.reshape(out.size))
        return out

    @staticmethod
    def contiguous(a, dtype):
        """A C-contiguous device array of `dtype` with a's contents."""
        if a.size > 1 and not a.is_c_contiguous():
            raise ValueError(message(
                f"a non-contiguous CUDA device array (shape {tuple(a.shape)}, strides {tuple(a.strides)})",
                "C-contiguous device arrays",
                "Make a contiguous copy on the device first, e.g. cupy.ascontiguousarray(a), "
                "tensor.contiguous(), or numba.cuda.device_array + a copy kernel."))
        return DeviceArrays.cast(a, dtype)

    @staticmethod
    def result(out, shape, dtype):
        return DeviceArrays.cast(out.reshape(tuple(shape)), dtype)
