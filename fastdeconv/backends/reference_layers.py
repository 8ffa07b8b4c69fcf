"""The NumPy oracle for `cpu_layers`: same functions, same arguments,
float64 arithmetic, written to be read."""

import numpy as np

from .reference import _channels_last, _restore


def _act(v, activation, alpha):
    if activation == "linear":
        return v
    if activation == "relu":
        return np.where(v < 0, 0.0, v)
    if activation == "sigmoid":
        return 1 / (1 + np.exp(-v))
    if activation == "tanh":
        return np.tanh(v)
    if activation == "leaky_relu":
        return np.where(v < 0, v * alpha, v)
    if activation == "elu":
        return np.where(v > 0, v, alpha * np.expm1(np.minimum(v, 0)))
    if activation == "softplus":
        return np.log1p(np.exp(-np.abs(v))) + np.maximum(v, 0)
    if activation == "silu":
        return v / (1 + np.exp(-v))
    if activation == "relu6":  # capped at alpha
        return np.where(v > alpha, alpha, np.where(v < 0, 0.0, v))
    if activation == "gelu":
        from math import erf
        return 0.5 * v * (1 + np.vectorize(erf, otypes=[np.float64])(v / np.sqrt(2)))
    if activation == "selu":
        return 1.0507009873554805 * np.where(v > 0, v, 1.6732632423543772 * np.expm1(np.minimum(v, 0)))
    if activation in ("hard_sigmoid", "hard_silu"):
        h = np.clip(v + 3, 0, 6) / 6
        return h if activation == "hard_sigmoid" else v * h
    if activation == "mish":
        return v * np.tanh(np.logaddexp(0, v))
    if activation == "softsign":
        return v / (np.abs(v) + 1)
    if activation == "exponential":
        return np.exp(v)
    raise ValueError(activation)


def epilogue(y, channels, channels_first, bias, scale, shift, activation, alpha=0.0):
    shape = [1] * y.ndim
    shape[1 if channels_first else -1] = channels
    v = y.astype(np.float64)
    for p, op in ((bias, np.add), (scale, np.multiply), (shift, np.add)):
        if p is not None:
            v = op(v, np.asarray(p, np.float64).reshape(shape))
    with np.errstate(over="ignore", invalid="ignore"):  # inf and NaN inputs give what Keras gives
        y[...] = _act(v, activation, alpha)
    return y


def prelu(y, alpha):
    v = y.astype(np.float64).reshape(-1, alpha.size)
    a = np.asarray(alpha, np.float64)
    y[...] = np.where(v < 0, v * a, v).reshape(y.shape)
    return y


def pool(x, out_spatial, window, strides, pads_before, channels_first, is_max):
    xl = _channels_last(x, channels_first).astype(np.float64)
    B, C = xl.shape[0], xl.shape[-1]
    out = np.empty((B, *out_spatial, C))
    for o in np.ndindex(*out_spatial):
        lo = [max(oi * s - p, 0) for oi, s, p in zip(o, strides, pads_before)]
        hi = [min(oi * s - p + k, n) for oi, s, p, k, n in zip(o, strides, pads_before, window, xl.shape[1:4])]
        win = xl[(slice(None),) + tuple(slice(a, b) for a, b in zip(lo, hi))]
        win = win.reshape(B, int(np.prod([b - a for a, b in zip(lo, hi)])), C)  # -1 fails on an empty batch
        out[(slice(None),) + o] = win.max(axis=1) if is_max else win.mean(axis=1)
    return np.ascontiguousarray(_restore(out, channels_first)).astype(x.dtype)


def upsample(x, size, channels_first):
    first = 2 if channels_first else 1
    for axis, s in enumerate(size):
        x = np.repeat(x, s, axis=first + axis)
    return np.ascontiguousarray(x)


def resize_bilinear(x, taps, channels_first):
    """cpu_layers.resize_bilinear in float64 (the same sampling tables)."""
    yl, yu, yw, xl, xu, xw = taps
    xl64 = _channels_last(x, channels_first)[:, 0].astype(np.float64)  # (B, H, W, C)
    top, bottom = xl64[:, yl], xl64[:, yu]
    dx = xw.astype(np.float64)[None, None, :, None]
    dy = yw.astype(np.float64)[None, :, None, None]
    t = top[:, :, xl] + (top[:, :, xu] - top[:, :, xl]) * dx
    v = bottom[:, :, xl] + (bottom[:, :, xu] - bottom[:, :, xl]) * dx
    out = (t + (v - t) * dy)[:, None]
    return np.ascontiguousarray(_restore(out, channels_first)).astype(x.dtype)
