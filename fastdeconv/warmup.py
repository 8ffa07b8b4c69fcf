"""Compile the CPU kernels ahead of use, into Numba's on-disk cache.

The first call of a kernel variant compiles it (0.4-3 s). Which variant a
call takes depends on its dtype, its layout and channel counts, and for
channels-first data also on the row width and the number of rows (packed
rows or rows read in place, one or two vectors along W, row pairs, bands;
benchmarks/NOTES.md). A service that sees a new input size may meet a
variant its earlier calls did not need, and pay the compile on that
request. `warmup()` makes small calls that reach every variant of the
chosen dtypes and layouts, so that afterwards every first call, in this
process or a new one, at most loads its kernel from the cache (0.1-0.2 s).

    python -m fastdeconv warmup [--dtypes float32,float64] [--layouts NDHWC,NCDHW] [--no-layers] [--jobs N]
    fastdeconv.warmup.warmup(dtypes=("float32",), layouts=("NHWC",), jobs=2)

Compiling is single-threaded: `jobs` processes share the calls and compile
into the one cache at once (benchmarks/NOTES.md section 126).

Run it once where the package is installed (a container image's build, a
deployment step): the cache lives next to the package's sources, or in
NUMBA_CACHE_DIR when that is set, and is specific to the CPU model.
"""

import contextlib
import subprocess
import sys
import time

import numba
import numpy as np

from . import _alloc, ops

DTYPES = ("float32", "float64")
LAYOUTS = ("NDHWC", "NCDHW")


def _conv_calls(dtype, cf):
    """(label, thunk) pairs: convolutions and transposes whose kernel
    choices (cpu._run) cover every variant of one dtype and layout."""
    rng = np.random.default_rng(0)
    fmt = "NCDHW" if cf else "NDHWC"

    def arr(*shape):
        return rng.standard_normal(shape).astype(dtype)

    def x_of(C, D, H, W):
        return arr(1, C, D, H, W) if cf else arr(1, D, H, W, C)

    def out_of(C, D, H, W):
        return (1, C, D, H, W) if cf else (1, D, H, W, C)

    def frozen(w):
        w.flags.writeable = False  # packed once, as a layer's weights
        return w

    calls = []

    def conv(C, F, D, H, W, k=3, s=1, d=1, groups=1, writable=False):
        x = x_of(C, D, H, W)
        w = arr(k, k, k, C // groups, F)
        w = w if writable else frozen(w)
        calls.append((f"conv3d {fmt} {C}->{F} {D}x{H}x{W} k{k} s{s} d{d}",
                      lambda: ops.conv3d(x, w, s, "SAME", data_format=fmt, dilations=d)))

    def transpose(C, F, D, H, W, k=3, s=2, d=1, writable=False):
        # s: one stride, or (D, H, W) strides
        x = x_of(C, D, H, W)
        w = arr(k, k, k, F, C)
        w = w if writable else frozen(w)
        ss = (s,) * 3 if isinstance(s, int) else s
        pad = "VALID" if ss == (k,) * 3 else "SAME"
        out = out_of(F, *((n - 1) * t + (k - 1) * d + 1 if pad == "VALID" else n * t for n, t in zip((D, H, W), ss)))
        st = s if isinstance(s, int) else [1, 1, *s] if cf else [1, *s, 1]
        calls.append((f"conv3d_transpose {fmt} {C}->{F} {D}x{H}x{W} k{k} s{s} d{d}",
                      lambda: ops.conv3d_transpose(x, w, out, st, pad, data_format=fmt, dilations=d)))

    # Output channels from one to several vectors (the channels-last tiles
    # of one and two vectors, both also on cpu_short's kernel for the
    # short reductions of 8 input channels; the few-channel vectors-along-W
    # tiles; the channels-first tiles of one channel, 4 x 2 and 6 x 2 / 8 x
    # 2), rows
    # from a few columns to several vectors of them (8 x 1 tiles, row
    # pairs, one or two vectors along W, tail pairs), few and many rows
    # (rows read in place, packed rows).
    # (and channels-last, one output channel from 16 input channels: rows
    # packed channels-first, cpu.NARROW_ONE_CHANNEL_ROWS_CHANNELS)
    for C, F in [(8, F) for F in (1, 2, 3, 4, 8, 16, 32)] + ([] if cf else [(16, 1)]):
        for W in (3, 5, 7, 12, 20, 40, 56, 64):
            conv(C, F, 2, 3, W)
            conv(C, F, 6, 6, W)
        conv(C, F, 4, 8, 19, s=2)
        conv(C, F, 4, 8, 19, d=2)
        conv(C, F, 8, 8, 40, s=(1, 1, 1, 2, 1) if not cf else (1, 1, 1, 1, 2))
        for W in (3, 7, 20, 56):
            transpose(C, F, 2, 3, W, s=1)
            transpose(C, F, 4, 6, W)
            transpose(C, F, 4, 6, W, s=3)
            transpose(C, F, 3, 4, W, k=2, s=2)
        transpose(C, F, 4, 6, 11, s=1, d=2)
    # few input channels, several channel blocks: gathered taps (channels-last
    # cl_kernel; channels-first cpu_cfgather with W strides 1 and 2), and
    # channels-first with more input channels (vectors along W, one vector
    # per W phase: the 16 x 1 tile on packed rows)
    transpose(8, 64, 4, 6, 20)
    transpose(3, 32, 4, 6, 20)
    transpose(3, 32, 4, 6, 20, s=(2, 2, 1))
    transpose(8, 64, 4, 6, 20, s=(2, 2, 1))
    # 1x1 convolutions (pointwise kernel), depthwise, 64 channels and more
    # (channels-first bands, forward and stride-1 transposes), large
    # writable filters (packed by a Numba loop; transposed ones per block)
    x = x_of(4, 4, 5, 6)
    for F in (1, 2, 3, 4, 8, 16):  # the pointwise kernels' tiles (cpu_pw.pw_tile, pw_cf_tile)
        w1 = frozen(arr(1, 1, 1, 4, F))
        calls.append((f"conv3d {fmt} 1x1 4->{F}", lambda w1=w1: ops.conv3d(x, w1, 1, "SAME", data_format=fmt)))
    if cf:
        # ... and on planes of whole vectors (streaming stores where the
        # warmup forces them: forced_streaming), each of pointwise_cf's tiles
        for F in (1, 2, 4, 8):
            conv(4, F, 4, 4, 8, k=1)
    # ... channels-first, more than 8 output channels on a long plane (its 8 x 3 tile)
    xl, wl = x_of(4, 1, 128, 128), frozen(arr(1, 1, 1, 4, 16))
    calls.append((f"conv3d {fmt} 1x1 4->16, 128x128", lambda: ops.conv3d(xl, wl, 1, "SAME", data_format=fmt)))
    conv(8, 8, 3, 4, 9, groups=8)
    # 2-D depthwise calls of 8 channels (cpu_dw.depthwise_cf): rows of 9 on
    # flat tiles, of 16 on tiles of output rows
    w2 = frozen(arr(1, 3, 3, 1, 8))
    for H, W in ((4, 9), (8, 16)):
        x2 = x_of(8, 1, H, W)
        calls.append((f"conv3d {fmt} 2-D depthwise {H}x{W}",
                      lambda x2=x2: ops.conv3d(x2, w2, 1, "SAME", data_format=fmt)))
    # ... and 16 channels, rows of 24 (a vector of channels at a time:
    # cpu_dw.depthwise_cf_blocks, depthwise_cl_blocks; with a W stride of 2,
    # depthwise_cl_vectors)
    x16, w16 = x_of(16, 1, 4, 48), frozen(arr(1, 3, 3, 1, 16))
    for s in (1, 2):
        calls.append((f"conv3d {fmt} 2-D depthwise, 16 channels, stride {s}",
                      lambda s=s: ops.conv3d(x16, w16, (1, 1, s), "SAME", data_format=fmt)))
    for W in (7, 9, 16):
        conv(64, 64, 2, 4, W)
        conv(64, 64, 2, 4, W, s=(1, 1, 1, 2, 1) if not cf else (1, 1, 1, 1, 2))
        transpose(64, 64, 2, 4, W, s=1)
    # bands with one vector of output channels (rows that fill vectors along
    # W poorly, cpu.CF_BANDS_FILL_*): a stride-1 call's tile and a strided one's
    conv(16, 16, 2, 4, 12)
    conv(16, 16, 2, 4, 12, s=2)
    # the layout copy (cpu_layout) of one-channel and one-pixel calls, which
    # takes its kernel from cpu.COPY_MIN elements on
    from .backends import cpu

    src, dst = arr(1, cpu.COPY_MIN // 8, 8), arr(1, 8, cpu.COPY_MIN // 8)
    calls.append(("channels-first copy", lambda: cpu._to_channels_first(src, dst)))
    conv(512, 512, 1, 3, 4, k=3, writable=True)
    transpose(512, 512, 1, 3, 4, k=3, s=1, writable=True)
    if cf:
        # channels-first calls on one input pixel run the channels-last
        # kernels (cpu.ONE_PIXEL_CL): their tiles, narrow, pointwise and
        # depthwise paths, patches
        conv(8, 8, 1, 1, 1, groups=8)
        conv(4, 16, 1, 1, 1, k=1)  # the pointwise kernel's 64-byte tile (cpu_pw.pw_tile)
        for F in (2, 3, 4, 6, 8, 16, 32, 64):  # 6: AVX-512's 8 x 2 narrow tile
            for C in (8, 40):  # short and long reductions (narrow paths)
                conv(C, F, 1, 1, 1)
                conv(C, F, 1, 1, 1, k=1)
                transpose(C, F, 1, 1, 1, k=4, s=4)
                # (writable filters: patch_cl itself, not the one-pixel patch)
                transpose(C, F, 1, 1, 1, k=4, s=4, writable=True)
                transpose(C, F, 1, 1, 1)
                transpose(C, F, 1, 1, 1, k=3, s=1, d=2)
        # ... and a transpose onto one patch runs patch_cl with the patch's
        # positions as channels (cpu._one_pixel_patch): its one-vector tile
        xp, wpx = x_of(8, 1, 1, 1), frozen(arr(1, 1, 2, 2, 8))
        calls.append((f"conv3d_transpose {fmt} 8->2 1x1x1 k1x1x2",
                      lambda: ops.conv3d_transpose(xp, wpx, out_of(2, 1, 1, 2), 1, "VALID", data_format=fmt)))
    return calls


def _layer_calls(dtype, cf):
    """(label, thunk) pairs: each layer kernel of the cpu backend, in a
    one-layer model run in `dtype` (a layer called on an array computes
    in float32)."""
    from . import layers as L

    rng = np.random.default_rng(1)
    fmt = "channels_first" if cf else "channels_last"
    axis = 1 if cf else -1

    def x_of(*spatial, C=8):
        return rng.standard_normal((2, C) + spatial if cf else (2,) + spatial + (C,)).astype(dtype)

    x3, x2 = x_of(4, 6, 6), x_of(6, 6)
    made = [
        ("MaxPooling3D", lambda: L.MaxPooling3D(2, data_format=fmt), x3),
        ("AveragePooling3D", lambda: L.AveragePooling3D(2, data_format=fmt), x3),
        ("UpSampling3D", lambda: L.UpSampling3D(2, data_format=fmt), x3),
        ("Resizing", lambda: L.Resizing(9, 7, data_format=fmt), x2),
        ("GroupNormalization", lambda: L.GroupNormalization(4, axis=axis), x3),
        ("LayerNormalization", lambda: L.LayerNormalization(), x2),
        ("Softmax", lambda: L.Softmax(axis=axis), x2),
        ("PReLU", lambda: L.PReLU(), x2),
    ] + [(f"Activation {act}", lambda act=act: L.Activation(act), x2)
         for act in ("relu", "sigmoid", "tanh", "elu", "gelu", "swish", "softplus", "leaky_relu")]
    calls = []
    for name, layer, x in made:
        inp = L.Input(x.shape[1:])
        model = L.Model(inp, layer()(inp))
        calls.append((f"{name} {fmt}", lambda model=model, x=x: model.predict(x, dtype=dtype)))
    if not cf and dtype == np.float32:  # a layer called on arrays (float32 only)
        y = x_of(6, 6, C=3)
        calls.append(("Concatenate", lambda: L.Concatenate()([x2, y])))
    return calls


def _model_calls(dtype, cf):
    """(label, thunk) pairs: small functional models, whose predict runs
    what single layer calls do not: convolutions with their epilogue
    fused, concatenation buffers written in place, pooling and layers
    reading a channel slice of such a buffer, softmax heads."""
    from . import layers as L

    fmt = "channels_first" if cf else "channels_last"
    axis = 1 if cf else -1
    rng = np.random.default_rng(2)

    def shape(*spatial, C):
        return (C,) + spatial if cf else spatial + (C,)

    def block(x, c, conv, act="relu"):
        for _ in range(2):
            x = conv(c, 3, padding="same", data_format=fmt)(x)
            x = L.BatchNormalization(axis=axis)(x)
            x = L.Activation(act)(x)
        return x

    # a 3-D U-Net: conv-BN-ReLU blocks, pooling of skip buffers, k2 s2
    # upsampling, concatenations, a 1x1 softmax head
    inp = L.Input(shape(8, 8, 8, C=1))
    e1 = block(inp, 4, L.Conv3D)
    e2 = block(L.MaxPooling3D(2, data_format=fmt)(e1), 8, L.Conv3D)
    u1 = L.Conv3DTranspose(4, 2, strides=2, data_format=fmt)(e2)
    d1 = block(L.Concatenate(axis=axis)([u1, e1]), 4, L.Conv3D, "elu")
    out = L.Conv3D(2, 1, activation="softmax", data_format=fmt)(d1)
    unet = L.Model(inp, out)
    # a 2-D decoder: upsampling, transposes with activations and biases,
    # average pooling of a concatenation, a sigmoid head
    inp2 = L.Input(shape(6, 6, C=8))
    a = L.Conv2DTranspose(8, 3, strides=2, padding="same", activation="tanh", data_format=fmt)(inp2)
    b = L.UpSampling2D(2, data_format=fmt)(inp2)
    c = L.Concatenate(axis=axis)([a, b])
    c = L.AveragePooling2D(2, data_format=fmt)(c)
    c = L.Conv2D(3, 3, padding="same", activation="sigmoid", data_format=fmt)(c)
    dec = L.Model(inp2, c)
    calls = []
    for name, model in (("U-Net 3-D", unet), ("2-D decoder", dec)):
        x = rng.standard_normal((2,) + tuple(model.input_shape[1:])).astype(dtype)
        calls.append((f"model {name} {fmt}", lambda model=model, x=x: model.predict(x, dtype=dtype)))
    return calls


_LAYOUTS = {f: "NDHWC" for f in ("NDHWC", "NHWC", "NWC", "channels_last")}
_LAYOUTS.update({f: "NCDHW" for f in ("NCDHW", "NCHW", "NCW", "channels_first")})


def _dtype(d):
    """The kernels' dtype for d: float32 or float64 (float16 is computed in
    float32); a ValueError for anything else."""
    try:
        dt = np.dtype(d)
    except TypeError:
        dt = None
    if dt == np.float16:
        dt = np.dtype(np.float32)
    if dt not in (np.float32, np.float64):
        raise ValueError(f"warmup: dtype {d!r}: expected float32, float64 or float16 (computed in float32)")
    return dt


@contextlib.contextmanager
def forced_streaming():
    """Inside: every aligned channels-last result is stored with streaming
    stores whatever its size (cpu.STREAM_MIN_BYTES 0), and every result
    comes from the recycler (aligned to a cache line), so that small calls
    take the kernels' streaming variants, which otherwise only results of
    many MB reach. Not thread-safe: module settings, for the warmup and
    its check."""
    from .backends import cpu

    saved = cpu.STREAM_MIN_BYTES, _alloc.RECYCLE_MIN
    cpu.STREAM_MIN_BYTES, _alloc.RECYCLE_MIN = 0, 0
    try:
        yield
    finally:
        cpu.STREAM_MIN_BYTES, _alloc.RECYCLE_MIN = saved


def _streams():
    from .backends import cpu

    return cpu.STREAM_STORES


def _checked(dtypes, layouts):
    """The kernels' dtypes and layout families of warmup's arguments; a
    ValueError for an unknown one."""
    kinds = [_dtype(d) for d in dtypes]
    formats = []
    for f in layouts:
        if f not in _LAYOUTS:
            raise ValueError(f"warmup: data format {f!r}: expected one of {', '.join(_LAYOUTS)}")
        formats.append(_LAYOUTS[f])
    return list(dict.fromkeys(kinds)), list(dict.fromkeys(formats))


# calls per block: warmup(jobs=N) gives each process a run of consecutive
# blocks, as consecutive calls often reach the same variants, which two
# processes would both compile (float32 channels-last on 2 processes: 44 s
# of CPU time in two runs of calls, 70 s with the calls dealt out one each,
# 84 s with blocks of 6 dealt out as each process became free; 50 s in one
# process)
BLOCK_CALLS = 6


def _blocks(kinds, formats, layers):
    """warmup's calls in blocks: (label prefix, dtype's layout family, calls
    of up to BLOCK_CALLS) in order."""
    blocks = []
    for dt in kinds:
        for f in formats:
            cf = f == "NCDHW"
            calls = _conv_calls(dt, cf) + (_layer_calls(dt, cf) + _model_calls(dt, cf) if layers else [])
            for i in range(0, len(calls), BLOCK_CALLS):
                blocks.append((f"{dt.name} {f}", dt, calls[i:i + BLOCK_CALLS]))
    return blocks


def _run_block(block, progress):
    """One block's calls on one thread (the calls then take every variant
    whatever the thread count: packed rows need enough output rows per
    thread), then again with streaming stores forced: the streaming
    variants of the channels-last kernels (large results:
    cpu.STREAM_STORES; channels-first calls of one input pixel run them
    too)."""
    name, dt, calls = block
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        for label, call in calls:
            t = time.perf_counter()
            call()
            if progress is not None:
                progress(f"{dt.name} {label}", time.perf_counter() - t)
        if _streams():
            t = time.perf_counter()
            with forced_streaming():
                for _, call in calls:
                    call()
            if progress is not None:
                progress(f"{name} calls {calls[0][0]}..., streaming stores", time.perf_counter() - t)
    finally:
        numba.set_num_threads(threads)


# a worker of warmup(jobs=N), given KINDS FORMATS LAYERS FIRST END: runs
# blocks [FIRST, END), printing "seconds<TAB>label" per call
_WORKER = """
import sys
from fastdeconv import warmup
blocks = warmup._blocks([warmup._dtype(k) for k in sys.argv[1].split(",")], sys.argv[2].split(","),
                        sys.argv[3] == "1")
for block in blocks[int(sys.argv[4]):int(sys.argv[5])]:
    warmup._run_block(block, lambda label, s: print(f"{s}\t{label}", flush=True))
"""


def _in_processes(kinds, formats, layers, progress, jobs):
    """The blocks in `jobs` runs of consecutive blocks (whole dtypes and
    layouts where there are as many), a worker process each; they compile
    into the one on-disk cache at once (each variant's entry and file are
    written safely for that: _jit.ProcessSafeCacheFile)."""
    n = len(_blocks(kinds, formats, layers))
    args = [",".join(k.name for k in kinds), ",".join(formats), "1" if layers else "0"]
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, *args, str(n * i // jobs), str(n * (i + 1) // jobs)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(jobs)]
    failed = []
    for i, p in enumerate(procs):
        out, err = p.communicate()
        if p.returncode != 0:
            failed.append(f"warmup worker {i + 1}/{jobs} exited with {p.returncode}:\n{err[-2000:]}")
        elif progress is not None:
            for line in out.splitlines():
                seconds, _, label = line.partition("\t")
                progress(label, float(seconds))
    if failed:
        raise RuntimeError("\n".join(failed))


def warmup(dtypes=DTYPES, layouts=LAYOUTS, layers=True, progress=None, jobs=1):
    """Compile (or load from the cache) every CPU kernel variant for these
    dtypes (float32, float64; float16 runs the float32 kernels) and data
    formats (channels-last "NDHWC", "NHWC", "NWC" or "channels_last", and
    their channels-first counterparts: each family runs the same kernels),
    and with `layers` the layer kernels. progress: None, or a function
    called with each call's label and its seconds. jobs: processes that
    share the calls (each compiles on one core; with jobs > 1 the kernels
    go to the on-disk cache only, this process loads them when it first
    calls them, and progress hears of each worker's calls when it ends).
    Returns the seconds taken. Raises ValueError for an unknown dtype or
    format, or a jobs count under 1, before any work."""
    kinds, formats = _checked(dtypes, layouts)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"warmup: jobs={jobs!r}: expected a whole number of processes, 1 or more")
    t0 = time.perf_counter()
    if jobs == 1:
        for block in _blocks(kinds, formats, layers):
            _run_block(block, progress)
    else:
        _in_processes(kinds, formats, layers, progress, jobs)
    return time.perf_counter() - t0
