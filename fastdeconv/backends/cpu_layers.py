"""Numba kernels for the layers around the convolutions: pooling, nearest
upsampling, and the per-channel epilogue (scale, shift, activation).

Arrays are the canonical 5-D arrays of `fastdeconv.ops` (`(B, D, H, W, C)`,
or `(B, C, D, H, W)` when channels_first). Every kernel runs a range
[t_begin, t_end) of whole output rows (or blocks of rows), and
`cpu_rb.parallel_tiles` splits a call's rows over the threads, as for the
convolutions: every output element has one writer, so results do not
depend on the thread count. The kernels are serial Numba functions (a
parallel one, a loop over `prange`, took 2.5-3 s to compile cold, a serial
one ~1 s). `geo` is one small tuple of ints.

Pooling windows are clipped to the input (SAME padding never takes part):
max ignores it, average divides by the number of elements actually in the
window, as TensorFlow's avg_pool does. A NaN in a max-pool window wins.
"""

import math
import weakref

import numpy as np

from .. import _alloc
from .._jit import allocating_kernel, helper, serial_kernel
from .cpu_rb import _max, _min, parallel_tiles
from .cpu_simd import VBYTES, addr, exp_inplace, itemsize, prefetch, scratch, vloadn, vmaxnan, vsplat, vstoren

# Activation codes of `epilogue` (softmax is not elementwise; see layers).
# relu6 caps at alpha (6 for the activation, max_value for a ReLU layer).
ACTIVATIONS = {"linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3, "leaky_relu": 4, "elu": 5, "softplus": 6,
               "silu": 7, "relu6": 8, "gelu": 9, "selu": 10, "hard_sigmoid": 11, "hard_silu": 12, "mish": 13,
               "softsign": 14, "exponential": 15}
# Keras' (TensorFlow's) constants and formulas, in TF's order of operations.
SQRT2 = 1.4142135623730951
SELU_SCALE = 1.0507009873554805
SELU_SCALE_ALPHA = 1.7580993408473766  # scale * alpha


# Activations built on exp, computed a block of values at a time: the
# argument of exp into a stack scratch, exp_inplace (float32: vectors), then
# one elementwise loop (LLVM vectorises it). Per value with libm calls
# they ran 3-35x slower than Keras on 64^3 x 16 (tanh 49 ms, mish 118 ms,
# Keras 3.1 and 3.4 ms). Codes: sigmoid, tanh, elu, softplus, silu,
# selu, mish, exponential; gelu (a series, `_gelu_block`).
EXP_CODES = (2, 3, 5, 6, 7, 9, 10, 13, 15)  # and gelu (9), without exp
# Piecewise ones, one loop per code (a branch on the code per value keeps
# LLVM from vectorising): leaky_relu, relu6, hard_sigmoid, hard_silu,
# softsign.
SIMPLE_CODES = (4, 8, 11, 12, 14)
assert sorted((0, 1) + EXP_CODES + SIMPLE_CODES) == sorted(ACTIVATIONS.values())
EXP_BLOCK = 1024  # values per block
EXP_SCRATCH_BYTES = 8192  # EXP_BLOCK float64 values on the stack

# parallel_tiles splits a call in chunks of about cpu_rb.CHUNK_WORK
# multiply-adds of a convolution's tile kernel (~0.1-0.2 ms of one core);
# these loops cost about ELEMENT_WORK of them per element they read or
# write (a max pooling's input element, a copy's output element), those
# with exp about EXP_WORK.
ELEMENT_WORK = 16
EXP_WORK = 64


def _run(kernel, args, n, elements, per_element=ELEMENT_WORK):
    """kernel(*args, t_begin, t_end) over its n rows (or blocks), split over
    the threads when `elements` elements are worth it."""
    parallel_tiles(kernel, args, n, elements * per_element)


# tanh below 0.625 in magnitude: Cephes' tanhf polynomial (1 - 2/(exp(2|v|) + 1)
# loses the leading digits there).
_TANH_POLY = (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1, -3.33332819422e-1)


# gelu = v (1 + erf(v / sqrt 2)) / 2, erf(z) for |z| <= GELU_SERIES_Z as its
# Taylor series in float64 (2/sqrt(pi) sum (-1)^n z^(2n+1) / (n! (2n+1)), to
# n = 48: below 1e-15 at z = 3; the largest term ~56 costs ~6 bits), a
# vector loop; beyond it libm's erf, value by value.
GELU_SERIES_Z = 3.0
_ERF_TAYLOR = tuple(2 / math.sqrt(math.pi) * (-1) ** n / (math.factorial(n) * (2 * n + 1))
                    for n in range(48, -1, -1))


@serial_kernel
def _gelu_block(y, e, z2, p):
    """y (contiguous, at most len(e) values) = gelu(y); e, z2, p: scratch
    (z2 and p float64). The series runs coefficient by coefficient over
    the block (a vector loop each); float64 data: libm's erf throughout
    (the series' cancellation near |z| = 3 costs float64 digits)."""
    n = y.shape[0]
    for i in range(n):
        e[i] = y[i]
    if itemsize(y) == 8:
        for i in range(n):
            v = e[i]
            y[i] = 0.5 * v * (1 + math.erf(v / SQRT2))
        return
    for i in range(n):
        z = np.float64(y[i]) / SQRT2
        z2[i] = z * z
        p[i] = 0
    for c in _ERF_TAYLOR:
        for i in range(n):
            p[i] = p[i] * z2[i] + c
    for i in range(n):
        v = y[i]
        y[i] = 0.5 * v * (1 + np.float64(v) / SQRT2 * p[i])
    for i in range(n):
        v = e[i]
        if abs(v) > GELU_SERIES_Z * SQRT2:  # and +-inf; NaN is done
            y[i] = 0.5 * v * (1 + math.erf(v / SQRT2))


# 1/k! for k = 13 .. 1: exp(v) - 1 near 0 as its Taylor series
_EXPM1_TAYLOR = tuple(1 / math.factorial(k) for k in range(13, 0, -1))


@helper
def _expm1(v, ev):
    """exp(v) - 1 from ev = exp(v); near 0 (where ev - 1 keeps few digits)
    its Taylor series to v^13 (below float64's precision for |v| <= 1/4).
    Both computed, one selected: the loops stay vectorisable."""
    p = v * 0
    for c in _EXPM1_TAYLOR:
        p = p * v + c
    return ev - 1 if v < -0.25 or v > 0.25 else v * p


@serial_kernel
def _act_exp_block(y, code, alpha, e):
    """y (contiguous, at most len(e) values) = act(y) for a code of
    EXP_CODES; NaN stays NaN, infinities give what Keras gives."""
    n = y.shape[0]
    one = y.dtype.type(1)
    if code == 2 or code == 7:
        for i in range(n):
            e[i] = -y[i]
    elif code == 3:
        for i in range(n):
            e[i] = 2 * abs(y[i])
    elif code == 6:
        for i in range(n):
            e[i] = -abs(y[i])
    elif code == 5 or code == 10:
        for i in range(n):
            v = y[i]
            e[i] = v if not v > 0 else 0  # NaN passes
    else:
        for i in range(n):
            e[i] = y[i]
    exp_inplace(e, addr(e), n)
    if code == 2:
        for i in range(n):
            y[i] = one / (one + e[i])
    elif code == 7:
        for i in range(n):
            y[i] = y[i] / (one + e[i])
    elif code == 3:
        if itemsize(y) == 8:
            for i in range(n):
                y[i] = math.tanh(y[i])  # the polynomial is float32's
        else:
            p0, p1, p2, p3, p4 = _TANH_POLY
            for i in range(n):
                v = y[i]
                z = v * v
                small = ((((p0 * z + p1) * z + p2) * z + p3) * z + p4) * z * v + v
                big = one - 2 / (e[i] + one)
                big = big if v >= 0 else -big
                y[i] = small if abs(v) < 0.625 else big  # NaN: big (NaN)
    elif code == 5:
        for i in range(n):
            v = y[i]
            y[i] = v if v > 0 else alpha * _expm1(v, e[i])
    elif code == 10:
        for i in range(n):
            v = y[i]
            y[i] = v * SELU_SCALE if v > 0 else SELU_SCALE_ALPHA * _expm1(v, e[i])
    elif code == 6:
        # softplus = max(v, 0) + log1p(u), u = e^-|v| in [0, 1]: log1p(u) =
        # 2 atanh(w), w = u / (2 + u) <= 1/3, as its odd series (terms to
        # w^31: below float64's precision at w = 1/3)
        for i in range(n):
            v = y[i]
            w = e[i] / (2 + e[i])
            w2 = w * w
            p = one / 31
            for k in range(29, 0, -2):
                p = p * w2 + one / k
            y[i] = (v if v > 0 else 0) + 2 * w * p
    elif code == 13:
        # mish = v tanh(softplus(v)) = v m / (m + 2), m = e^v (e^v + 2); v
        # past 20: m / (m + 2) is 1 in float64 (and m overflows later)
        for i in range(n):
            v = y[i]
            m = e[i] * (e[i] + 2)
            y[i] = v if v > 20 else v * m / (m + 2)
    else:
        for i in range(n):
            y[i] = e[i]


@helper
def _act_simple(y, code, alpha):
    """y (contiguous) = act(y) for a code of SIMPLE_CODES."""
    n = y.shape[0]
    if code == 4:
        for i in range(n):
            v = y[i]
            y[i] = v if not v < 0 else v * alpha
    elif code == 8:
        for i in range(n):
            v = y[i]
            v = v if not v < 0 else 0
            y[i] = v if not v > alpha else alpha
    elif code == 11 or code == 12:
        for i in range(n):
            v = y[i]
            h = v + 3
            h = h if not h < 0 else 0
            h = (h if not h > 6 else 6) / 6
            y[i] = h if code == 11 else v * h
    else:
        for i in range(n):
            v = y[i]
            y[i] = v / (abs(v) + 1)


@serial_kernel
def _act_block(y, code, alpha):
    """y (contiguous) = act(y) for a code other than linear and relu. A
    function of its own, not inlined: Numba inlines by copying the callee's
    IR, and copying these nested helpers into each epilogue kernel took
    3.8 s of a 5.8 s cold compile (benchmarks/NOTES.md section 57)."""
    if code in EXP_CODES:
        _act_exp(y, code, alpha)
    else:
        _act_simple(y, code, alpha)


@helper
def _act_exp(y, code, alpha):
    """_act_exp_block (or _gelu_block) over y in blocks of EXP_BLOCK."""
    e = scratch(y, EXP_SCRATCH_BYTES)
    if code == 9:
        z2 = scratch(0.0, EXP_SCRATCH_BYTES)
        p = scratch(0.0, EXP_SCRATCH_BYTES)
    for lo in range(0, y.shape[0], EXP_BLOCK):
        if code == 9:
            _gelu_block(y[lo:_min(lo + EXP_BLOCK, y.shape[0])], e, z2, p)
        else:
            _act_exp_block(y[lo:_min(lo + EXP_BLOCK, y.shape[0])], code, alpha, e)


# Channels-last epilogue tiles: whole rows, about EPILOGUE_TILE elements, with
# the per-channel parameters repeated to the tile's length so that the inner
# loop runs over contiguous memory with no index arithmetic.
EPILOGUE_TILE = 2048


@helper
def _affine_act(y, b, a, t, code, alpha):
    """y[i] = act((y[i] + b[i]) * a[i] + t[i]) over a contiguous run; the
    activation branch sits outside the loops so that each loop vectorises."""
    n = y.shape[0]
    if code == 0:
        for i in range(n):
            y[i] = (y[i] + b[i]) * a[i] + t[i]
    elif code == 1:
        for i in range(n):
            v = (y[i] + b[i]) * a[i] + t[i]
            y[i] = v if not v < 0 else 0
    else:
        for i in range(n):
            y[i] = (y[i] + b[i]) * a[i] + t[i]
        _act_block(y, code, alpha)


@helper
def _affine_act_scalar(y, b, a, t, code, alpha):
    """As _affine_act with one (b, a, t) for the whole run."""
    n = y.shape[0]
    if code == 0:
        for i in range(n):
            y[i] = (y[i] + b) * a + t
    elif code == 1:
        for i in range(n):
            v = (y[i] + b) * a + t
            y[i] = v if not v < 0 else 0
    else:
        for i in range(n):
            y[i] = (y[i] + b) * a + t
        _act_block(y, code, alpha)


@serial_kernel
def _epilogue_flat(y, b, a, t, code, alpha, t_begin, t_end):
    """y is flat, channels-last; b, a, t have the tile's length."""
    L = b.shape[0]
    for k in range(t_begin, t_end):
        lo = k * L
        hi = _min(lo + L, y.shape[0])
        _affine_act(y[lo:hi], b[:hi - lo], a[:hi - lo], t[:hi - lo], code, alpha)


@serial_kernel
def _epilogue_rows(y, b, a, t, code, alpha, t_begin, t_end):
    """y is (B * C, n), channels-first: row r has channel r % C."""
    C = b.shape[0]
    for r in range(t_begin, t_end):
        c = r % C
        _affine_act_scalar(y[r], b[c], a[c], t[c], code, alpha)


def _channel_params(channels, dtype, bias, scale, shift):
    """(bias, scale, shift) as contiguous arrays of `dtype`, None standing
    for 0, 1, 0; read-only, so that a layer's read-only weights and the
    arrays made here run one compiled variant of each kernel."""
    return tuple(_alloc.readonly(np.full(channels, fill, dtype) if v is None else np.ascontiguousarray(v, dtype))
                 for v, fill in ((bias, 0), (scale, 1), (shift, 0)))


# The channels-last epilogue's parameter rows (_tiled_params), per
# (channels, dtype, repeats, parameter arrays) of read-only parameters (a
# layer's weights): making them cost ~20 us of a small layer's call.
_TILED = {}
_TILED_MAX = 256


def _tiled_params(channels, dtype, bias, scale, shift, reps):
    """_channel_params' arrays, each repeated `reps` times."""
    params = (bias, scale, shift)
    fixed = all(v is None or type(v) is np.ndarray and not _alloc.root(v).flags.writeable for v in params)
    key = (channels, dtype, reps) + tuple(map(id, params))
    if fixed:
        hit = _TILED.get(key)
        if hit is not None and all((v is None) if r is None else r() is v for r, v in zip(hit[0], params)):
            return hit[1]
    tiled = tuple(np.tile(v, reps) for v in _channel_params(channels, dtype, bias, scale, shift))
    if fixed:
        if len(_TILED) >= _TILED_MAX:
            _TILED.clear()
        _TILED[key] = (tuple(None if v is None else weakref.ref(v) for v in params), tiled)
    return tiled


def epilogue(y, channels, channels_first, bias, scale, shift, activation, alpha=0.0):
    """In place, per channel: y = act((y + bias) * scale + shift); None
    stands for 0, 1, 0. y is C-contiguous."""
    code = ACTIVATIONS[activation]
    if y.size == 0:
        return y
    work = EXP_WORK if code in EXP_CODES else ELEMENT_WORK
    if channels_first:
        b, a, t = _channel_params(channels, y.dtype, bias, scale, shift)
        rows = y.reshape(-1, y.size // (y.shape[0] * channels))
        _run(_epilogue_rows, (rows, b, a, t, code, float(alpha)), rows.shape[0], y.size, work)
    else:
        reps = max(1, EPILOGUE_TILE // channels)
        L = reps * channels
        _run(_epilogue_flat, (y.reshape(-1),) + _tiled_params(channels, y.dtype, bias, scale, shift, reps)
             + (code, float(alpha)), -(-y.size // L), y.size, work)
    return y


@serial_kernel
def _prelu_rows(y, a, t_begin, t_end):
    """In place: y[r, j] = a[j] * y[r, j] where y[r, j] < 0 (NaN stays)."""
    for r in range(t_begin, t_end):
        row = y[r]
        for j in range(a.shape[0]):
            v = row[j]
            row[j] = v if not v < 0 else a[j] * v


def prelu(y, alpha):
    """In place on a C-contiguous y: negative values times alpha, a 1-D
    array whose length divides the size of each example (alpha repeats
    along the flat example: per channel, its length is the channels)."""
    if y.size:
        rows = y.reshape(-1, alpha.size)
        _run(_prelu_rows, (rows, alpha), rows.shape[0], y.size)
    return y


SOFTMAX_ROWS = 256  # rows per block (one exp_inplace call)


@serial_kernel
def _softmax_rows(y, b, a, t, t_begin, t_end):
    """y is (n, C): each row in place becomes softmax((row + b) * a + t),
    computed as exp(v - max) / sum with the sum in channel order. A NaN in
    a row makes the whole row NaN (as NumPy's max does)."""
    n, C = y.shape
    rows = SOFTMAX_ROWS
    isz = itemsize(y)
    for k in range(t_begin, t_end):
        r0 = k * rows
        r1 = _min(r0 + rows, n)
        if C == 2:
            # two classes (segmentation heads): the same operations without
            # the loops over C, 2-3x faster
            b0, b1, a0, a1, t0, t1 = b[0], b[1], a[0], a[1], t[0], t[1]
            for r in range(r0, r1):
                v0 = (y[r, 0] + b0) * a0 + t0
                v1 = (y[r, 1] + b1) * a1 + t1
                m = v1 if v1 > v0 or v1 != v1 else v0
                y[r, 0] = v0 - m
                y[r, 1] = v1 - m
        else:
            for r in range(r0, r1):
                # y[r, c], not a row view: a view per row cost more than the math
                for c in range(C):
                    y[r, c] = (y[r, c] + b[c]) * a[c] + t[c]
                m = y[r, 0]
                for c in range(1, C):
                    if y[r, c] > m or y[r, c] != y[r, c]:
                        m = y[r, c]
                    if m != m:
                        break
                for c in range(C):
                    y[r, c] -= m
        # the chunk's exps in one pass over contiguous memory (float32: vectors)
        exp_inplace(y, addr(y) + r0 * C * isz, (r1 - r0) * C)
        if C == 2:
            for r in range(r0, r1):
                s = y.dtype.type(0) + y[r, 0] + y[r, 1]
                y[r, 0] /= s
                y[r, 1] /= s
        else:
            for r in range(r0, r1):
                s = y.dtype.type(0)
                for c in range(C):
                    s += y[r, c]
                for c in range(C):
                    y[r, c] /= s


def softmax_last(y, bias=None, scale=None, shift=None):
    """In place: y = softmax((y + bias) * scale + shift) over the last axis
    (None stands for 0, 1, 0). y is C-contiguous."""
    if y.size == 0:
        return y
    C = y.shape[-1]
    b, a, t = _channel_params(C, y.dtype, bias, scale, shift)
    _run(_softmax_rows, (y.reshape(-1, C), b, a, t), -(-(y.size // C) // SOFTMAX_ROWS), y.size, EXP_WORK)
    return y


CONCAT_ROWS = 256  # rows per block


@serial_kernel
def _concat2_rows(a, b, out, t_begin, t_end):
    """out[r] = a[r] followed by b[r]; a, b, out are 2-D, C-contiguous."""
    n = out.shape[0]
    ca = a.shape[1]
    cb = b.shape[1]
    rows = CONCAT_ROWS
    for k in range(t_begin, t_end):
        for r in range(k * rows, _min(k * rows + rows, n)):
            for c in range(ca):
                out[r, c] = a[r, c]
            for c in range(cb):
                out[r, ca + c] = b[r, c]


def concat_last(xs):
    """Two C-contiguous arrays of one dtype and equal leading dims joined
    along the last axis (a plain copy, in parallel over rows); None for any
    other case."""
    if len(xs) != 2:
        return None
    a, b = (_alloc.readonly(v) for v in xs)
    if (a.dtype != b.dtype or a.ndim != b.ndim or a.ndim < 2 or a.shape[:-1] != b.shape[:-1]
            or not (a.flags.c_contiguous and b.flags.c_contiguous)):
        return None
    out = _alloc.empty(a.shape[:-1] + (a.shape[-1] + b.shape[-1],), a.dtype)
    if out.size:
        rows = out.reshape(-1, out.shape[-1])
        _run(_concat2_rows, (a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1]), rows),
             -(-rows.shape[0] // CONCAT_ROWS), out.size)
    return out


@helper
def _window(o, k, s, p, n):
    """[lo, hi) of the input rows that output o's window covers, clipped."""
    start = o * s - p
    return _max(start, 0), _min(start + k, n)


def pixel_stride(x):
    """Elements from one pixel of a channels-last 5-D array to the next when
    its channels are contiguous and its pixels one stride apart (the array,
    or a channel slice `buf[..., c0:c1]` of a contiguous one); else None."""
    if x.flags.c_contiguous:
        return x.shape[4]
    isz = x.itemsize
    B, D, H, W, C = x.shape
    ps = x.strides[3] // isz
    want = (D * H * W * ps, H * W * ps, W * ps, ps, 1)
    if W < 2 or x.strides[3] % isz or ps < C or any(n > 1 and s != w * isz
                                                    for n, s, w in zip(x.shape, x.strides, want)):
        return None
    return ps


# Max pooling a channel slice (pixel stride > channels, e.g. an input of a
# Model's concatenation) prefetches the pixel this many ahead: a 64-byte
# slice of every 128-byte pixel, read alone, left the hardware prefetchers
# behind (64^3 x 16 of 32 channels: 1.6-2.0 ms, 1.0-1.1 with this, 0.6
# for a contiguous array).
PF_PIXELS = 8


@serial_kernel
def _pool_cl(x, out, geo, t_begin, t_end):
    """x: the input's first element; pixel (b, d, h, w) starts ps elements
    after the one before it (ps >= C: x may be a channel slice)."""
    kd, kh, kw, sd, sh, sw, pd, ph, pw, is_max, ps = geo
    B, OD, OH, OW, C = out.shape
    D, H, W = x.shape[1], x.shape[2], x.shape[3]
    isz = itemsize(x)
    lanes = VBYTES // isz
    xa = addr(x)
    pf = ps > C
    for r in range(t_begin, t_end):
        b, od, oh = r // (OD * OH), (r // OH) % OD, r % OH
        d0, d1 = _window(od, kd, sd, pd, D)
        h0, h1 = _window(oh, kh, sh, ph, H)
        for ow in range(OW):
            w0, w1 = _window(ow, kw, sw, pw, W)
            if is_max:
                # per vector of channels, a running max in a register over
                # the window's pixels, stored once (64^3 x 16: 2.8 ms with a
                # scalar compare per channel, 1.8 with a load-max-store in
                # memory per pixel, which waits on the store before it)
                po = addr(out) + (((b * OD + od) * OH + oh) * OW + ow) * C * isz
                for c in range(0, C, lanes):
                    acc = vsplat(x, -np.inf)
                    for d in range(d0, d1):
                        for h in range(h0, h1):
                            pr = xa + ((((b * D + d) * H + h) * W + w0) * ps + c) * isz
                            for w in range(w1 - w0):
                                if pf:
                                    prefetch(pr + (w + PF_PIXELS) * ps * isz)
                                acc = vmaxnan(acc, vloadn(x, pr + w * ps * isz, C - c))
                    vstoren(out, po + c * isz, acc, C - c)
            else:
                # summed by index, not through a view per pixel (64^3 x 16
                # average pool 2.0 -> 1.4 ms)
                for c in range(C):
                    out[b, od, oh, ow, c] = 0
                for d in range(d0, d1):
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            for c in range(C):
                                out[b, od, oh, ow, c] += x[b, d, h, w, c]
                count = (d1 - d0) * (h1 - h0) * (w1 - w0)
                for c in range(C):
                    out[b, od, oh, ow, c] /= count


@serial_kernel
def _pool_cf(x, out, geo, t_begin, t_end):
    kd, kh, kw, sd, sh, sw, pd, ph, pw, is_max = geo
    B, C, OD, OH, OW = out.shape
    D, H, W = x.shape[2], x.shape[3], x.shape[4]
    for r in range(t_begin, t_end):
        b, c, od = r // (C * OD), (r // OD) % C, r % OD
        d0, d1 = _window(od, kd, sd, pd, D)
        xc = x[b, c]
        for oh in range(OH):
            h0, h1 = _window(oh, kh, sh, ph, H)
            for ow in range(OW):
                w0, w1 = _window(ow, kw, sw, pw, W)
                acc = -np.inf if is_max else 0.0
                for d in range(d0, d1):
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            v = xc[d, h, w]
                            if is_max:
                                if v > acc or v != v:
                                    acc = v
                            else:
                                acc += v
                if not is_max:
                    acc /= (d1 - d0) * (h1 - h0) * (w1 - w0)
                out[b, c, od, oh, ow] = acc


def pool(x, out_spatial, window, strides, pads_before, channels_first, is_max):
    """Max or average pooling of a canonical 5-D array."""
    x = _alloc.readonly(x)
    B = x.shape[0]
    C = x.shape[1] if channels_first else x.shape[4]
    shape = (B, C) + tuple(out_spatial) if channels_first else (B,) + tuple(out_spatial) + (C,)
    out = _alloc.empty(shape, x.dtype)
    if out.size == 0:
        return out
    if channels_first:
        geo = tuple(int(v) for v in (*window, *strides, *pads_before, bool(is_max)))
        _run(_pool_cf, (x, out, geo), B * C * out_spatial[0], x.size + out.size)
        return out
    ps = pixel_stride(x) if is_max else None
    if ps is None:  # average pooling indexes x as a C-contiguous array
        x = np.ascontiguousarray(x)
        ps = C
    geo = tuple(int(v) for v in (*window, *strides, *pads_before, bool(is_max), ps))
    _run(_pool_cl, (x, out, geo), B * out_spatial[0] * out_spatial[1], x.size + out.size)
    return out


@serial_kernel
def _upsample_cl(x, out, size, t_begin, t_end):
    sd, sh, sw = size
    B, OD, OH, OW, C = out.shape
    for r in range(t_begin, t_end):
        b, od, oh = r // (OD * OH), (r // OH) % OD, r % OH
        src = x[b, od // sd, oh // sh]
        dst = out[b, od, oh]
        for ow in range(OW):
            v = src[ow // sw]
            o = dst[ow]
            for c in range(C):
                o[c] = v[c]


@serial_kernel
def _upsample_cf(x, out, size, t_begin, t_end):
    sd, sh, sw = size
    B, C, OD, OH, OW = out.shape
    for r in range(t_begin, t_end):
        b, c, od = r // (C * OD), (r // OD) % C, r % OD
        src = x[b, c, od // sd]
        for oh in range(OH):
            row = src[oh // sh]
            dst = out[b, c, od, oh]
            for ow in range(OW):
                dst[ow] = row[ow // sw]


def upsample(x, size, channels_first):
    """Nearest-neighbour upsampling by integer factors `size` (D, H, W)."""
    x = _alloc.readonly(x)
    size = tuple(int(v) for v in size)
    if channels_first:
        shape = x.shape[:2] + tuple(n * s for n, s in zip(x.shape[2:], size))
    else:
        shape = (x.shape[0],) + tuple(n * s for n, s in zip(x.shape[1:4], size)) + (x.shape[4],)
    out = _alloc.empty(shape, x.dtype)
    if out.size:
        rows = out.shape[0] * out.shape[1] * out.shape[2]  # (b, c, od) or (b, od, oh)
        _run(_upsample_cf if channels_first else _upsample_cl, (x, out, size), rows, out.size)
    return out


@serial_kernel
def _bilinear_cl(x, out, yl, yu, yw, xl, xu, xw, t_begin, t_end):
    B, OH, OW, C = out.shape
    for r in range(t_begin, t_end):
        b, oh = r // OH, r % OH
        top, bottom, dy = x[b, yl[oh]], x[b, yu[oh]], yw[oh]
        dst = out[b, oh]
        for ow in range(OW):
            a, u, dx = xl[ow], xu[ow], xw[ow]
            for c in range(C):
                t = top[a, c] + (top[u, c] - top[a, c]) * dx
                v = bottom[a, c] + (bottom[u, c] - bottom[a, c]) * dx
                dst[ow, c] = t + (v - t) * dy


@serial_kernel
def _bilinear_cf(x, out, yl, yu, yw, xl, xu, xw, t_begin, t_end):
    B, C, OH, OW = out.shape
    for r in range(t_begin, t_end):
        b, c, oh = r // (C * OH), (r // OH) % C, r % OH
        top, bottom, dy = x[b, c, yl[oh]], x[b, c, yu[oh]], yw[oh]
        dst = out[b, c, oh]
        for ow in range(OW):
            a, u, dx = xl[ow], xu[ow], xw[ow]
            t = top[a] + (top[u] - top[a]) * dx
            v = bottom[a] + (bottom[u] - bottom[a]) * dx
            dst[ow] = t + (v - t) * dy


def resize_bilinear(x, taps, channels_first):
    """Bilinear resizing of the H and W dims of a canonical 5-D array with D
    = 1, TensorFlow's formula: top = x[yl, xl] + (x[yl, xu] - x[yl, xl]) *
    xw, bottom likewise on row yu, top + (bottom - top) * yw. taps: (yl, yu,
    yw, xl, xu, xw), per output row and column (layers.pooling.bilinear_taps)."""
    yl, yu, yw, xl, xu, xw = taps
    x = _alloc.readonly(x)
    x4 = x[:, :, 0] if channels_first else x[:, 0]
    if channels_first:
        shape = x4.shape[:2] + (len(yl), len(xl))
    else:
        shape = (x4.shape[0], len(yl), len(xl), x4.shape[3])
    out = _alloc.empty(shape, x.dtype)
    if out.size:
        w = lambda a: a.astype(x.dtype)  # noqa: E731  float32 weights, or float64 for float64 data
        rows = out.shape[0] * (out.shape[1] * out.shape[2] if channels_first else out.shape[1])
        _run(_bilinear_cf if channels_first else _bilinear_cl,
             (np.ascontiguousarray(x4), out, yl, yu, w(yw), xl, xu, w(xw)), rows, 4 * out.size)
    return out[:, :, None] if channels_first else out[:, None]


@serial_kernel
def _normalize_rows(x, y, gamma, beta, eps, t_begin, t_end):
    """x, y (N, n): each row normalized over its n elements (float64 mean,
    then mean square deviation), y = x * k + (beta - mean * k), k = gamma /
    sqrt(var + eps); gamma, beta (n,)."""
    N, n = x.shape
    for r in range(t_begin, t_end):
        row, out = x[r], y[r]
        t = 0.0
        for i in range(n):
            t += row[i]
        mean = t / n
        t = 0.0
        for i in range(n):
            d = row[i] - mean
            t += d * d
        inv = 1.0 / math.sqrt(t / n + eps)
        for i in range(n):
            k = inv * gamma[i]
            out[i] = row[i] * k + (beta[i] - mean * k)


@allocating_kernel
def _normalize_cl_stats(x, G, eps, mean, inv, t_begin, t_end):
    """x (N, S, C); for examples n in [t_begin, t_end), per group of C // G
    consecutive channels over all S positions, in float64: mean, then the
    mean square deviation; mean[n, c] and inv[n, c] = 1 / sqrt(var + eps)
    for every channel c of the group. Every inner loop runs along the
    channels (per-channel sums, then per group)."""
    N, S, C = x.shape
    cg = C // G
    acc = np.zeros(C)
    for n in range(t_begin, t_end):
        acc[:] = 0.0
        for s in range(S):
            row = x[n, s]
            for c in range(C):
                acc[c] += row[c]
        mc = mean[n]
        for g in range(G):
            t = 0.0
            for c in range(g * cg, (g + 1) * cg):
                t += acc[c]
            for c in range(g * cg, (g + 1) * cg):
                mc[c] = t / (S * cg)
        acc[:] = 0.0
        for s in range(S):
            row = x[n, s]
            for c in range(C):
                d = row[c] - mc[c]
                acc[c] += d * d
        for g in range(G):
            t = 0.0
            for c in range(g * cg, (g + 1) * cg):
                t += acc[c]
            for c in range(g * cg, (g + 1) * cg):
                inv[n, c] = 1.0 / math.sqrt(t / (S * cg) + eps)


@serial_kernel
def _normalize_cl_apply(x, y, gamma, beta, mean, inv, t_begin, t_end):
    """y = x * k + (beta - mean * k), k = inv * gamma, at the positions
    r = n * S + s in [t_begin, t_end) of x, y (N, S, C)."""
    S, C = x.shape[1], x.shape[2]
    for r in range(t_begin, t_end):
        n, s = r // S, r % S
        row, out, mc, ic = x[n, s], y[n, s], mean[n], inv[n]
        for c in range(C):
            k = ic[c] * gamma[c]
            out[c] = row[c] * k + (beta[c] - mc[c] * k)


@serial_kernel
def _normalize_cf(x, y, G, gamma, beta, eps, t_begin, t_end):
    """x, y (N, C, S) with per-channel gamma, beta (C,): each (n, group) is
    one contiguous block of C // G channels x S; as _normalize_cl."""
    N, C, S = x.shape
    cg = C // G
    m = cg * S
    for r in range(t_begin, t_end):
        n, g = r // G, r % G
        t = 0.0
        for c in range(g * cg, (g + 1) * cg):
            for s in range(S):
                t += x[n, c, s]
        mean = t / m
        t = 0.0
        for c in range(g * cg, (g + 1) * cg):
            for s in range(S):
                d = x[n, c, s] - mean
                t += d * d
        inv = 1.0 / math.sqrt(t / m + eps)
        for c in range(g * cg, (g + 1) * cg):
            k = inv * gamma[c]
            shift = beta[c] - mean * k
            for s in range(S):
                y[n, c, s] = x[n, c, s] * k + shift


def normalize(x, groups, channels_first, gamma, beta, epsilon):
    """Group normalization of a C-contiguous (N, S, C) array (channels_first:
    (N, C, S)) with `groups` groups of consecutive channels; gamma, beta:
    None or (C,)."""
    C = x.shape[1] if channels_first else x.shape[2]
    x = _alloc.readonly(x)
    y = _alloc.empty(x.shape, x.dtype)
    if y.size:
        g, b = (_alloc.readonly(np.full(C, f) if v is None else np.asarray(v, np.float64))
                for v, f in ((gamma, 1.0), (beta, 0.0)))
        N, G = x.shape[0], int(groups)
        if channels_first:
            _run(_normalize_cf, (x, y, G, g, b, float(epsilon)), N * G, 3 * x.size)
        else:
            mean, inv = np.empty((N, C)), np.empty((N, C))
            _run(_normalize_cl_stats, (x, G, float(epsilon), mean, inv), N, 2 * x.size)
            _run(_normalize_cl_apply, (x, y, g, b, mean, inv), N * x.shape[1], x.size)
    return y


def normalize_rows(x, gamma, beta, epsilon):
    """Layer normalization of each row of a C-contiguous (N, n) array;
    gamma, beta: None or (n,)."""
    x = _alloc.readonly(x)
    y = _alloc.empty(x.shape, x.dtype)
    if y.size:
        n = x.shape[1]
        g, b = (_alloc.readonly(np.full(n, f) if v is None else np.asarray(v, np.float64).reshape(n))
                for v, f in ((gamma, 1.0), (beta, 0.0)))
        _run(_normalize_rows, (x, y, g, b, float(epsilon)), x.shape[0], 3 * x.size)
    return y
