"""CUDA versions of `cpu_layers.pool` and `cpu_layers.upsample` (numba-cuda).

Same arguments and results as the CPU kernels. They take NumPy arrays
(copied to the device and back; the result is a NumPy array) or Numba
device arrays (the result stays on the device). One thread per output
element, grid-stride loops (correct for any launch size; the launch comes
from the CUDA backend's `config` at call time), every output written once.

With backend='cuda' a `fastdeconv.layers` Model keeps its activations on
the device between layers; the kernels for that (epilogue, softmax,
Concatenate, Add, weights copied once) are at the end of this module.
"""

import math

import numpy as np

from .. import _alloc
from .cpu_layers import ACTIVATIONS, SELU_SCALE, SELU_SCALE_ALPHA, SQRT2
# DevicePool and device_address: for the Model, which reaches the cuda
# backend through this module (imported only once numba-cuda is usable)
from .cuda import DevicePool, check_available, device_address, device_empty, elementwise_grid  # noqa: F401

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
    out = device_empty(shape, x.dtype) if not on_host else cuda.device_array(tuple(shape), np.dtype(x.dtype))
    if out.size:
        grid, threads = elementwise_grid(out.size)
        kernel[grid, threads](dx, out, geo)
    return out.copy_to_host() if on_host else out


@cuda_kernel
def _bilinear(x, out, yl, yu, yw, xl, xu, xw, cf):
    """cpu_layers.resize_bilinear, a thread per output element; x and out
    4-D (B, H, W, C), or (B, C, H, W) when cf."""
    if cf:
        C, OH, OW = out.shape[1], out.shape[2], out.shape[3]
    else:
        OH, OW, C = out.shape[1], out.shape[2], out.shape[3]
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        if cf:
            ow = i % OW
            oh = (i // OW) % OH
            c = (i // (OW * OH)) % C
            b = i // (OW * OH * C)
        else:
            c = i % C
            ow = (i // C) % OW
            oh = (i // (C * OW)) % OH
            b = i // (C * OW * OH)
        a, u, dx = xl[ow], xu[ow], xw[ow]
        ra, rb, dy = yl[oh], yu[oh], yw[oh]
        if cf:
            tl, tr, bl, br = x[b, c, ra, a], x[b, c, ra, u], x[b, c, rb, a], x[b, c, rb, u]
        else:
            tl, tr, bl, br = x[b, ra, a, c], x[b, ra, u, c], x[b, rb, a, c], x[b, rb, u, c]
        t = tl + (tr - tl) * dx
        v = bl + (br - bl) * dx
        if cf:
            out[b, c, oh, ow] = t + (v - t) * dy
        else:
            out[b, oh, ow, c] = t + (v - t) * dy


_TAPS = {}  # bilinear sampling tables on the device, by their contents (a copy waits for the GPU)


def _device_taps(taps, dtype):
    key = (np.dtype(dtype).str,) + tuple(t.tobytes() for t in taps)
    if key not in _TAPS:
        if len(_TAPS) > 256:
            _TAPS.clear()
        _TAPS[key] = [cuda.to_device(t if t.dtype.kind == "i" else t.astype(dtype)) for t in taps]
    return _TAPS[key]


def resize_bilinear(x, taps, channels_first):
    """cpu_layers.resize_bilinear (NumPy or device arrays, as `pool`)."""
    on_host = not _is_numba_device_array(x)
    dx = cuda.to_device(np.ascontiguousarray(x)) if on_host else x
    shape = tuple(dx.shape)
    x4 = dx.reshape((shape[0], shape[1]) + shape[3:]) if channels_first else dx.reshape(shape[:1] + shape[2:])
    oh, ow = len(taps[0]), len(taps[3])  # (yl, yu, yw, xl, xu, xw)
    out_shape = (shape[0], shape[1], 1, oh, ow) if channels_first else (shape[0], 1, oh, ow, shape[4])
    out = cuda.device_array(out_shape, np.dtype(x.dtype)) if on_host else device_empty(out_shape, x.dtype)
    if out.size:
        o4 = out.reshape((out_shape[0], out_shape[1]) + out_shape[3:]) if channels_first else \
            out.reshape(out_shape[:1] + out_shape[2:])
        grid, threads = elementwise_grid(out.size)
        _bilinear[grid, threads](x4, o4, *_device_taps(taps, x.dtype), bool(channels_first))
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


# --- a model's activations on the device -----------------------------------------
# With backend='cuda' a Model keeps its activations on the device from its
# input to its outputs: the per-channel epilogue, softmax, Concatenate and
# Add run as the kernels below, and a layer's weights are copied to the
# device once (`device_copy`).

def device_copy(a):
    """A device copy of a read-only NumPy array (a layer's weights), made
    once and kept while the array lives (`_alloc.memo`); a writable array is
    copied on every call, since it may change between calls."""
    if a is None or _is_numba_device_array(a):
        return a
    return _alloc.memo(a, "device", lambda: cuda.to_device(np.ascontiguousarray(a)))


def _flat(a):
    return a.reshape(a.size)


@cuda_kernel
def _epilogue(y, b, a, t, C, inner, code, alpha):
    """In place: y = act((y + b[c]) * a[c] + t[c]), c = (i // inner) % C
    (inner = 1: channels last; the spatial size: channels first)."""
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        c = (i // inner) % C
        v = (y[i] + b[c]) * a[c] + t[c]
        if code == 1:
            v = v if not v < 0 else 0.0  # NaN stays NaN
        elif code == 2:
            v = 1 / (1 + math.exp(-v))
        elif code == 3:
            v = math.tanh(v)
        elif code == 4:
            v = v if not v < 0 else v * alpha
        elif code == 5:
            v = v if v > 0 else alpha * (math.exp(v) - 1)
        elif code == 6:
            v = math.log1p(math.exp(-abs(v))) + max(v, 0.0)
        elif code == 7:
            v = v / (1 + math.exp(-v))
        elif code == 8:
            v = v if not v < 0 else 0.0
            v = v if not v > alpha else alpha
        elif code == 9:
            v = 0.5 * v * (1 + math.erf(v / SQRT2))
        elif code == 10:
            v = v * SELU_SCALE if v > 0 else SELU_SCALE_ALPHA * (math.exp(v) - 1)
        elif code == 11 or code == 12:
            h = v + 3.0
            h = h if not h < 0 else 0.0
            h = (h if not h > 6 else 6.0) / 6
            v = h if code == 11 else v * h
        elif code == 13:
            v = v * math.tanh(math.log1p(math.exp(-abs(v))) + max(v, 0.0))
        elif code == 14:
            v = v / (abs(v) + 1)
        elif code == 15:
            v = math.exp(v)
        y[i] = v


def _params(channels, dtype, bias, scale, shift):
    """Device (bias, scale, shift) vectors of `channels` entries (None: 0, 1, 0)."""
    out = []
    for v, fill in ((bias, 0), (scale, 1), (shift, 0)):
        if v is None:
            out.append(_constant(channels, dtype, fill))
        else:
            out.append(device_copy(v if np.dtype(v.dtype) == dtype else np.ascontiguousarray(v, dtype)))
    return out


_CONSTANTS = {}


def _constant(n, dtype, fill):
    key = (int(n), np.dtype(dtype).str, fill)
    if key not in _CONSTANTS:
        _CONSTANTS[key] = cuda.to_device(np.full(n, fill, dtype))
    return _CONSTANTS[key]


def epilogue(y, channels, channels_first, bias, scale, shift, activation, alpha=0.0):
    """cpu_layers.epilogue on a C-contiguous device array, in place."""
    if y.size == 0:
        return y
    b, a, t = _params(channels, np.dtype(y.dtype), bias, scale, shift)
    inner = y.size // (y.shape[0] * channels) if channels_first else 1
    grid, threads = elementwise_grid(y.size)
    _epilogue[grid, threads](_flat(y), b, a, t, channels, inner, ACTIVATIONS[activation], float(alpha))
    return y


@cuda_kernel
def _softmax_rows(y, b, a, t, C, inner):
    """Each row of C (a thread per row; a row's elements `inner` apart) in
    place: softmax((row + b) * a + t), exp(v - max) / sum with the sum in
    channel order; a NaN makes the row NaN."""
    for r in range(cuda.grid(1), y.size // C, cuda.gridsize(1)):
        base = (r // inner) * C * inner + r % inner
        m = -math.inf
        for c in range(C):
            i = base + c * inner
            v = (y[i] + b[c]) * a[c] + t[c]
            y[i] = v
            if v > m or v != v:
                m = v
        s = 0.0
        for c in range(C):
            i = base + c * inner
            e = math.exp(y[i] - m)
            y[i] = e
            s += e
        for c in range(C):
            y[base + c * inner] /= s


def softmax_last(y, bias=None, scale=None, shift=None):
    """cpu_layers.softmax_last on a C-contiguous device array, in place."""
    if y.size == 0:
        return y
    C = tuple(y.shape)[-1]
    b, a, t = _params(C, np.dtype(y.dtype), bias, scale, shift)
    grid, threads = elementwise_grid(y.size // C)
    _softmax_rows[grid, threads](_flat(y), b, a, t, C, 1)
    return y


def softmax_axis(y, axis):
    """Softmax along `axis` of a C-contiguous device array, in place."""
    shape = tuple(y.shape)
    C = shape[axis]
    if y.size == 0:
        return y
    b, a, t = _params(C, np.dtype(y.dtype), None, None, None)
    grid, threads = elementwise_grid(y.size // C)
    _softmax_rows[grid, threads](_flat(y), b, a, t, C, math.prod(shape[axis + 1:]))
    return y


@cuda_kernel
def _copy_block(src, dst, n_src, n_dst, off):
    """dst viewed as (outer, n_dst) rows, src as (outer, n_src): src's rows
    go to columns [off, off + n_src) of dst's."""
    for i in range(cuda.grid(1), src.size, cuda.gridsize(1)):
        r = i // n_src
        dst[r * n_dst + off + i - r * n_src] = src[i]


def concat(xs, axis):
    """C-contiguous device arrays of one dtype joined along `axis` (a new
    device array)."""
    axis = axis % len(xs[0].shape)
    shape = list(xs[0].shape)
    shape[axis] = sum(int(x.shape[axis]) for x in xs)
    out = device_empty(shape, xs[0].dtype)
    inner = math.prod(shape[axis + 1:])
    n_dst = shape[axis] * inner
    off = 0
    for x in xs:
        n_src = int(x.shape[axis]) * inner
        if x.size:
            grid, threads = elementwise_grid(x.size)
            _copy_block[grid, threads](_flat(x), _flat(out), n_src, n_dst, off)
        off += n_src
    return out


def to_device(a):
    return cuda.to_device(np.ascontiguousarray(a))


def copy(x):
    """A new device array with x's contents."""
    out = device_empty(tuple(x.shape), x.dtype)
    if x.size:
        out.copy_to_device(x)
    return out


# Merge layers' operations (layers.core), in kernel codes; "average" sums
# (the Average layer then divides once).
MERGE_OPS = {"add": 0, "average": 0, "subtract": 1, "multiply": 2, "maximum": 3, "minimum": 4}


@cuda_kernel
def _merge_into(a, b, code):
    """a = a op b elementwise; maximum and minimum propagate NaN (NumPy's)."""
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        u = a[i]
        v = b[i]
        if code == 0:
            u = u + v
        elif code == 1:
            u = u - v
        elif code == 2:
            u = u * v
        elif code == 3:
            u = u if u > v or u != u else v
        else:
            u = u if u < v or u != u else v
        a[i] = u


def merge(xs, op, inplace=False):
    """xs[0] op xs[1] op ... in that order (into xs[0] when inplace)."""
    y = xs[0] if inplace else copy(xs[0])
    for x in xs[1:]:
        if y.size:
            grid, threads = elementwise_grid(y.size)
            _merge_into[grid, threads](_flat(y), _flat(x), MERGE_OPS[op])
    return y


@cuda_kernel
def _prelu(y, a):
    n = a.size
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        v = y[i]
        y[i] = v if not v < 0 else a[i % n] * v


def prelu(y, alpha):
    """cpu_layers.prelu on a C-contiguous device array, in place (alpha: a
    host array, its device copy kept while it lives when read-only)."""
    if y.size:
        grid, threads = elementwise_grid(y.size)
        _prelu[grid, threads](_flat(y), device_copy(alpha))
    return y


@cuda_kernel
def _divide(a, n):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        a[i] = a[i] / n


def divide(y, n):
    """y / n in place (y's dtype)."""
    if y.size:
        grid, threads = elementwise_grid(y.size)
        _divide[grid, threads](_flat(y), np.dtype(y.dtype).type(n))
    return y


@cuda_kernel
def _pad_crop(x, out, geo):
    """out (5-D, flat) = x placed at offset `before` per dim (negative:
    cropped), zeros elsewhere; geo = out dims, x dims, before (5 each)."""
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        rest = i
        src = 0
        step = 1
        inside = True
        for k in range(4, -1, -1):
            o = rest % geo[k]
            rest //= geo[k]
            j = o - geo[10 + k]
            if j < 0 or j >= geo[5 + k]:
                inside = False
            src += j * step
            step *= geo[5 + k]
        out[i] = x[src] if inside else 0


def pad_crop(x, out_shape, before):
    """layers.reshaping.pad_or_crop for a C-contiguous device array of rank
    at most 5: a new device array."""
    out = device_empty(out_shape, x.dtype)
    lead = (1,) * (5 - len(out_shape))
    geo = tuple(int(v) for v in (lead + tuple(out_shape) + lead + tuple(x.shape)
                                 + (0,) * (5 - len(before)) + tuple(before)))
    if out.size:
        grid, threads = elementwise_grid(out.size)
        _pad_crop[grid, threads](_flat(x), _flat(out), geo)
    return out


@cuda_kernel
def _global_pool(x, out, S, C, cf, is_max):
    """out[b, c] = max or mean over the S positions of channel c of example
    b (a thread each); the mean summed in float64 in position order; max
    propagates NaN."""
    for r in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        b = r // C
        c = r % C
        base = r * S if cf else b * S * C + c
        step = 1 if cf else C
        if is_max:
            m = x[base]
            for s in range(1, S):
                v = x[base + s * step]
                if m == m and (v > m or v != v):
                    m = v
            out[r] = m
        else:
            acc = 0.0
            for s in range(S):
                acc += x[base + s * step]
            out[r] = acc / S


def global_pool(x, S, C, channels_first, is_max):
    """(batch, C) device array: the max or mean over the S spatial positions
    of a C-contiguous device array (channels first or last)."""
    B = int(tuple(x.shape)[0])
    out = device_empty((B, C), x.dtype)
    if out.size and S:
        grid, threads = elementwise_grid(out.size)
        _global_pool[grid, threads](_flat(x), _flat(out), int(S), int(C), bool(channels_first), bool(is_max))
    return out


@cuda_kernel
def _permute(x, out, geo):
    """out (flat, dims geo[0:5]) = x with its axes permuted: x's element
    strides taken in out's axis order are geo[5:10]."""
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        rest = i
        src = 0
        for k in range(4, -1, -1):
            src += (rest % geo[k]) * geo[5 + k]
            rest //= geo[k]
        out[i] = x[src]


def permute(x, axes):
    """np.transpose(x, axes) as a new C-contiguous device array (rank <= 5)."""
    shape = tuple(x.shape)
    strides = [math.prod(shape[k + 1:]) for k in range(len(shape))]
    out_shape = tuple(shape[a] for a in axes)
    out = device_empty(out_shape, x.dtype)
    lead = 5 - len(shape)
    geo = tuple(int(v) for v in ((1,) * lead + out_shape + (0,) * lead + tuple(strides[a] for a in axes)))
    if out.size:
        grid, threads = elementwise_grid(out.size)
        _permute[grid, threads](_flat(x), _flat(out), geo)
    return out


@cuda_kernel
def _normalize_rows(x, y, n, g, b, eps):
    """layers.normalization on rows of n contiguous elements (a thread per
    row): mean and variance in float64, y = x * inv + (b - mean * inv),
    inv = g / sqrt(var + eps)."""
    for r in range(cuda.grid(1), x.size // n, cuda.gridsize(1)):
        base = r * n
        s = 0.0
        for i in range(n):
            s += x[base + i]
        mean = s / n
        v = 0.0
        for i in range(n):
            d = x[base + i] - mean
            v += d * d
        inv = 1.0 / math.sqrt(v / n + eps)
        for i in range(n):
            k = inv * g[i]
            y[base + i] = x[base + i] * k + (b[i] - mean * k)


def normalize_rows(x, n, gamma, beta, epsilon):
    """LayerNormalization over the trailing axes (n elements per row) of a
    C-contiguous device array: a new device array."""
    y = device_empty(tuple(x.shape), x.dtype)
    if y.size:
        _, g, b = _params(n, np.dtype(x.dtype), None, gamma, beta)
        grid, threads = elementwise_grid(y.size // n)
        _normalize_rows[grid, threads](_flat(x), _flat(y), int(n), g, b, float(epsilon))
    return y


@cuda_kernel
def _group_normalize(x, y, S, C, cg, cf, g, b, eps):
    """GroupNormalization, a thread per (example, group) of cg channels over
    S spatial positions; float64 statistics as in _normalize_rows."""
    groups = C // cg
    m = cg * S
    for r in range(cuda.grid(1), (x.size // (S * C)) * groups, cuda.gridsize(1)):
        e = r // groups
        grp = r % groups
        s = 0.0
        for k in range(m):
            off = (e * C + grp * cg) * S + k if cf else e * S * C + (k // cg) * C + grp * cg + k % cg
            s += x[off]
        mean = s / m
        v = 0.0
        for k in range(m):
            off = (e * C + grp * cg) * S + k if cf else e * S * C + (k // cg) * C + grp * cg + k % cg
            d = x[off] - mean
            v += d * d
        inv = 1.0 / math.sqrt(v / m + eps)
        for k in range(m):
            if cf:
                off = (e * C + grp * cg) * S + k
                ch = grp * cg + k // S
            else:
                off = e * S * C + (k // cg) * C + grp * cg + k % cg
                ch = grp * cg + k % cg
            q = inv * g[ch]
            y[off] = x[off] * q + (b[ch] - mean * q)


def group_normalize(x, groups, channels_first, gamma, beta, epsilon):
    """GroupNormalization of a C-contiguous device array with its channels
    on axis 1 (channels_first) or last: a new device array."""
    shape = tuple(x.shape)
    C = shape[1] if channels_first else shape[-1]
    S = math.prod(shape[2:] if channels_first else shape[1:-1])
    y = device_empty(shape, x.dtype)
    if y.size:
        _, g, b = _params(C, np.dtype(x.dtype), None, gamma, beta)
        grid, threads = elementwise_grid((y.size // (S * C)) * groups)
        _group_normalize[grid, threads](_flat(x), _flat(y), int(S), int(C), int(C // groups),
                                        bool(channels_first), g, b, float(epsilon))
    return y
