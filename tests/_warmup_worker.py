"""Run by test_warmup.py in a fresh interpreter (no kernel typed yet):
fastdeconv.warmup.warmup(...) for the given dtypes and formats, then
seeded random convolutions, transposes and layers, and two functional
models, of the given dtypes and layouts (every other call with streaming
stores forced, `warmup.forced_streaming`); prints one JSON object: every call after the warmup that gave a
kernel a new compiled variant (a compile, or a load from the cache of a
variant the warmup did not reach).

    python _warmup_worker.py WARM_DTYPES WARM_FORMATS LAYERS(0/1) CALL_DTYPES CALL_LAYOUTS(cl,cf,cf1) CALLS [JOBS]

JOBS > 1: the warmup in that many processes; then every call after it
that compiled a kernel variant (run it on an empty NUMBA_CACHE_DIR).

cf1: channels-first op calls on inputs of one pixel.
"""

import json
import sys

import numba
import numpy as np

import fastdeconv
from fastdeconv import layers as L
from fastdeconv import warmup
from fastdeconv.backends import (cpu_cfband, cpu_cfgather, cpu_dw, cpu_layers, cpu_layout, cpu_patch, cpu_pw, cpu_rb,
                                 cpu_short)

MODULES = (cpu_rb, cpu_patch, cpu_dw, cpu_pw, cpu_short, cpu_cfband, cpu_cfgather, cpu_layers, cpu_layout)


def variants():
    return {f"{m.__name__}.{n}": len(getattr(m, n).signatures) for m in MODULES for n in dir(m)
            if isinstance(getattr(m, n), numba.core.registry.CPUDispatcher)}


def conv_call(rng, dtype, cf, big, one_pixel=False):
    """A random op call (or None: a geometry TF's rules refuse); one_pixel:
    on an input of one pixel."""
    rank = int(rng.integers(1, 4))
    C = int(rng.choice([64, 100, 256, 512] if big else [1, 2, 3, 5, 8, 12, 16, 24, 33, 64, 70]))
    F = int(rng.choice([1, 3, 8, 64, 130, 512] if big else [1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 24, 32, 40, 64, 72]))
    sp = [int(rng.integers(1, 6 if big else 12)) for _ in range(rank)]
    if rng.random() < 0.4:
        sp[-1] = int(rng.integers(12, 30 if big else 80))
    if one_pixel:
        sp = [1] * rank
    B = int(rng.integers(1, 4))
    k = [int(rng.integers(1, 4)) for _ in range(rank)]
    trans = rng.random() < 0.5
    s = [int(rng.choice([1, 1, 2, 3])) for _ in range(rank)]
    d = [1] * rank
    if rng.random() < 0.2 and s == [1] * rank:
        d = [int(rng.choice([1, 2])) for _ in range(rank)]
    pad = str(rng.choice(["SAME", "VALID"]))
    if C * F * np.prod(k) > (3_000_000 if big else 200_000):
        return None
    x = rng.standard_normal([B, C] + sp if cf else [B] + sp + [C]).astype(dtype)
    w = rng.standard_normal(k + ([F, C] if trans else [C, F])).astype(dtype)
    if rng.random() < 0.5:
        w.flags.writeable = False
    fmt = ("NCW", "NCHW", "NCDHW")[rank - 1] if cf else ("NWC", "NHWC", "NDHWC")[rank - 1]
    op = getattr(fastdeconv, f"conv{rank}d" + ("_transpose" if trans else ""))
    label = f"{op.__name__} {fmt} x{x.shape} w{w.shape} s{s} d{d} {pad}"
    if trans:
        osp = [(n - 1) * st + (kk - 1) * dd + 1 if pad == "VALID" else n * st for n, st, kk, dd in zip(sp, s, k, d)]
        out = [B, F] + osp if cf else [B] + osp + [F]
        return label, lambda: op(x, w, out, s, pad, data_format=fmt, dilations=d)
    return label, lambda: op(x, w, s, pad, data_format=fmt, dilations=d)


def layer_call(rng, dtype, cf):
    fmt = "channels_first" if cf else "channels_last"
    sp = tuple(int(v) for v in rng.integers(2, 9, 3))

    def x_of(*spatial, C=None):
        C = C or int(rng.choice([1, 3, 8, 16]))
        return rng.standard_normal((2, C) + spatial if cf else (2,) + spatial + (C,)).astype(dtype)

    pad = str(rng.choice(["same", "valid"]))
    kind = int(rng.integers(0, 8))
    if kind == 0:
        layer, x = L.MaxPooling3D(int(rng.integers(1, 3)), padding=pad, data_format=fmt), x_of(*sp)
    elif kind == 1:
        layer, x = L.AveragePooling2D(int(rng.integers(1, 3)), padding=pad, data_format=fmt), x_of(*sp[1:])
    elif kind == 2:
        layer, x = L.UpSampling2D(int(rng.integers(1, 3)), data_format=fmt), x_of(*sp[1:])
    elif kind == 3:
        layer, x = L.Resizing(int(rng.integers(2, 12)), int(rng.integers(2, 12)), data_format=fmt), x_of(*sp[1:])
    elif kind == 4:
        layer, x = L.GroupNormalization(int(rng.choice([1, 2, 4])), axis=1 if cf else -1), x_of(*sp, C=8)
    elif kind == 5:
        layer, x = L.LayerNormalization(), x_of(*sp[1:])
    elif kind == 6:
        layer, x = L.Softmax(axis=1 if cf else -1), x_of(*sp[1:])
    else:
        act = str(rng.choice(["relu", "sigmoid", "tanh", "elu", "gelu", "swish", "softplus", "leaky_relu", "selu",
                              "mish", "relu6", "hard_sigmoid", "softsign", "exponential", "hard_silu"]))
        layer, x = L.Activation(act), x_of(*sp[1:])
    return f"{type(layer).__name__} {fmt} {x.shape}", lambda: layer(x)


def model_calls(dtype, cf):
    """Functional models unlike the warmup's: a 2-D U-Net (max pooling of
    concatenation slices, k3 s2 transposes, PReLU, group and layer
    normalization, a softmax head) and a 1-D encoder-decoder."""
    fmt = "channels_first" if cf else "channels_last"
    axis = 1 if cf else -1
    rng = np.random.default_rng(5)

    def shape(*spatial, C):
        return (C,) + spatial if cf else spatial + (C,)

    inp = L.Input(shape(12, 10, C=3))
    e1 = L.Conv2D(6, 3, padding="same", activation="relu", data_format=fmt)(inp)
    e1 = L.Concatenate(axis=axis)([e1, L.Conv2D(2, 1, data_format=fmt)(inp)])
    p1 = L.MaxPooling2D(2, data_format=fmt)(e1)
    e2 = L.Conv2D(12, 3, padding="same", data_format=fmt)(p1)
    e2 = L.GroupNormalization(4, axis=axis)(e2)
    e2 = L.PReLU(shared_axes=[2, 3] if cf else [1, 2])(e2)
    u1 = L.Conv2DTranspose(8, 3, strides=2, padding="same", activation="gelu", data_format=fmt)(e2)
    d1 = L.Concatenate(axis=axis)([u1, e1])
    d1 = L.AveragePooling2D(1, data_format=fmt)(d1)
    out = L.Conv2D(3, 1, activation="softmax", data_format=fmt)(d1)
    unet2 = L.Model(inp, out)
    inp1 = L.Input(shape(40, C=5))
    h = L.Conv1D(16, 5, strides=2, padding="same", activation="swish", data_format=fmt)(inp1)
    h = L.Conv1DTranspose(7, 4, strides=2, padding="same", data_format=fmt)(h)
    if not cf:
        h = L.LayerNormalization()(h)
    h = L.UpSampling1D(2)(h) if not cf else h
    seq = L.Model(inp1, h)
    calls = []
    for name, model in (("2-D U-Net", unet2), ("1-D encoder-decoder", seq)):
        x = rng.standard_normal((3,) + tuple(model.input_shape[1:])).astype(dtype)
        calls.append((f"model {name} {fmt}", lambda model=model, x=x: model.predict(x, dtype=dtype)))
    return calls


def compiled():
    """Variants compiled in this process (not loaded from the cache), per kernel."""
    return {f"{m.__name__}.{n}": sum(getattr(m, n).stats.cache_misses.values()) for m in MODULES for n in dir(m)
            if isinstance(getattr(m, n), numba.core.registry.CPUDispatcher)}


def main():
    warm_dtypes, warm_formats, warm_layers, call_dtypes, call_layouts, calls = sys.argv[1:7]
    jobs = int(sys.argv[7]) if len(sys.argv) > 7 else 1
    warmup.warmup(warm_dtypes.split(","), warm_formats.split(","), layers=warm_layers == "1", jobs=jobs)
    # jobs > 1: the warmup compiled in other processes, and this one loads
    # what it reached from the cache; a variant it missed is compiled here
    variants_of = variants if jobs == 1 else compiled
    base = variants_of()
    new = []
    for dtype in call_dtypes.split(","):
        for layout in call_layouts.split(","):
            cf = layout in ("cf", "cf1")
            one_pixel = layout == "cf1"  # op calls on inputs of one pixel only
            rng = np.random.default_rng([17, np.dtype(dtype).itemsize, int(cf) + one_pixel])
            made = []
            for i in range(int(calls)):
                big = i % 4 == 3
                # layers called on arrays compute in float32; float64 ones run in the models
                direct_layer = i % 3 == 0 and dtype == "float32" and not one_pixel
                c = layer_call(rng, dtype, cf) if direct_layer else conv_call(rng, dtype, cf, big, one_pixel)
                if c is not None:
                    made.append(c)
            if not one_pixel:
                made += model_calls(dtype, cf)
            for i, (label, call) in enumerate(made):
                try:
                    if i % 2:  # (every other call: the kernels' streaming variants where they apply)
                        with warmup.forced_streaming():
                            call()
                    else:
                        call()
                except fastdeconv.ShapeError:
                    continue  # an output_shape the op's rules refuse
                now = variants_of()
                grown = {k: now[k] - base[k] for k in now if now[k] != base[k]}
                if grown:
                    new.append({"call": f"{dtype} {label}", "new": grown})
                    base = now
    print(json.dumps({"new": new}))


if __name__ == "__main__":
    main()
