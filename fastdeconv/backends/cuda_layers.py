"""CUDA versions of `cpu_layers.pool` and `cpu_layers.upsample` (numba-cuda).

Same arguments and results as the CPU kernels. They take NumPy arrays
(copied to the device and back; the result is a NumPy array) or Numba
device arrays (the result stays on the device). One thread per output
element, grid-stride loops (correct for any launch size; the launch comes
from the CUDA backend's `config` at call time), every output written once.

The per-channel epilogue (bias, BatchNormalization, activation) of a
`fastdeconv.layers` model with backend='cuda' runs on the host: the model's
activations are NumPy arrays between layers.
"""

import math

import numpy as np

from .cuda import check_available, config

check_available()  # a clear error when numba-cuda or a GPU is missing

from numba import cuda  # noqa: E402

from .._jit import cuda_kernel  # noqa: E402


def _is_numba_device_array(a):
    return bool(getattr(a, "__cuda_ndarray__", False))


@cuda_kernel
def _pool(x, out, geo):
    kd, kh, kw, sd, sh, sw, pd, ph, pw, is_max, cf = geo
    if cf:
        C, OD, OH, OW = out.shape[1], out.shape[2], out.shape[3], out.shape[4]
        D, H, W = x.shape[2], x.shape[3], x.shape[4]
    else:
        OD, OH, OW, C = out.shape[1], out.shape[2], out.shape[3], out.shape[4]
        D, H, W = x.shape[1], x.shape[2], x.shape[3]
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        if cf:
            ow = i % OW
            t = i // OW
            oh = t % OH
            t //= OH
            od = t % OD
            t //= OD
            c = t % C
            b = t // C
        else:
            c = i % C
            t = i // C
            ow = t % OW
            t //= OW
            oh = t % OH
            t //= OH
            od = t % OD
            b = t // OD
        d0, h0, w0 = od * sd - pd, oh * sh - ph, ow * sw - pw
        d1, h1, w1 = min(d0 + kd, D), min(h0 + kh, H), min(w0 + kw, W)
        d0, h0, w0 = max(d0, 0), max(h0, 0), max(w0, 0)
        acc = -math.inf if is_max else 0.0
        for d in range(d0, d1):
            for h in range(h0, h1):
                for w in range(w0, w1):
                    v = x[b, c, d, h, w] if cf else x[b, d, h, w, c]
                    if is_max:
                        if v > acc or v != v:
                            acc = v
                    else:
                        acc += v
        if not is_max:
            acc /= (d1 - d0) * (h1 - h0) * (w1 - w0)
        if cf:
            out[b, c, od, oh, ow] = acc
        else:
            out[b, od, oh, ow, c] = acc


@cuda_kernel
def _upsample(x, out, geo):
    sd, sh, sw, cf = geo
    if cf:
        C, OD, OH, OW = out.shape[1], out.shape[2], out.shape[3], out.shape[4]
    else:
        OD, OH, OW, C = out.shape[1], out.shape[2], out.shape[3], out.shape[4]
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        if cf:
            ow = i % OW
            t = i // OW
            oh = t % OH
            t //= OH
            od = t % OD
            t //= OD
            c = t % C
            b = t // C
            out[b, c, od, oh, ow] = x[b, c, od // sd, oh // sh, ow // sw]
        else:
            c = i % C
            t = i // C
            ow = t % OW
            t //= OW
            oh = t % OH
            t //= OH
            od = t % OD
            b = t // OD
            out[b, od, oh, ow, c] = x[b, od // sd, oh // sh, ow // sw, c]


def _launch(kernel, x, shape, geo):
    on_host = not _is_numba_device_array(x)
    dx = cuda.to_device(np.ascontiguousarray(x)) if on_host else x
    out = cuda.device_array(tuple(shape), np.dtype(x.dtype))
    if out.size:
        threads = max(1, int(config.ELEMENTWISE_THREADS))
        grid = max(1, min(-(-out.size // threads), int(config.ELEMENTWISE_MAX_BLOCKS)))
        kernel[grid, threads](dx, out, geo)
    return out.copy_to_host() if on_host else out


def pool(x, out_spatial, window, strides, pads_before, channels_first, is_max):
    """Max or average pooling of a canonical 5-D array (see cpu_layers.pool)."""
    B = x.shape[0]
    C = x.shape[1] if channels_first else x.shape[4]
    shape = (B, C) + tuple(out_spatial) if channels_first else (B,) + tuple(out_spatial) + (C,)
    geo = tuple(int(v) for v in (*window, *strides, *pads_before, bool(is_max), bool(channels_first)))
    return _launch(_pool, x, shape, geo)


def upsample(x, size, channels_first):
    """Nearest-neighbour upsampling by integer factors `size` (D, H, W)."""
    size = tuple(int(v) for v in size)
    if channels_first:
        shape = tuple(x.shape[:2]) + tuple(n * s for n, s in zip(x.shape[2:], size))
    else:
        shape = (x.shape[0],) + tuple(n * s for n, s in zip(x.shape[1:4], size)) + (x.shape[4],)
    return _launch(_upsample, x, shape, (*size, int(bool(channels_first))))
