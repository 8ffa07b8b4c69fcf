"""The oracle: plain NumPy, float64 accumulation, written to be read.

Both functions take the canonical 5-D arrays of `fastdeconv.ops`
(`(B, D, H, W, C)`, or `(B, C, D, H, W)` when channels_first) and a filter
`(KD, KH, KW, P, Q)`. They work one kernel tap at a time: a strided window
of the (padded) input times that tap's channel matrix.
"""

import numpy as np


def _channels_last(a, channels_first):
    return np.moveaxis(a, 1, -1) if channels_first else a


def _restore(a, channels_first):
    return np.moveaxis(a, -1, 1) if channels_first else a


def _matmul(a, b):
    """a @ b; NaN/Inf inputs give NaN/Inf outputs as they should, so NumPy's
    'invalid value' warning says nothing new."""
    with np.errstate(invalid="ignore"):
        return a @ b


def _taps(kernel):
    return np.ndindex(*kernel)


def forward(x, w, out_spatial, strides, dilations, pads_before, groups, channels_first):
    """y[b, o, f] = sum_{k, c} xpad[b, o*s + k*d, c] * w[k, c, f] (cross-correlation).

    A tap that falls on padding contributes no term (not 0 * w): a
    non-finite weight reaches only the outputs where its tap reads the input."""
    x = _channels_last(x, channels_first).astype(np.float64)
    w = w.astype(np.float64)
    cin, cout = w.shape[3], w.shape[4]
    cout_g = cout // groups
    # Pad before by pads_before, and after far enough for the last window.
    need = [(o - 1) * s + (k - 1) * d + 1 for o, s, k, d in zip(out_spatial, strides, w.shape[:3], dilations)]
    after = [max(0, nd - pb - n) for nd, pb, n in zip(need, pads_before, x.shape[1:4])]
    xp = np.pad(x, [(0, 0)] + list(zip(pads_before, after)) + [(0, 0)])
    # True where the padded input is the input, False on padding.
    inside = np.pad(np.ones(x.shape[1:4], bool), list(zip(pads_before, after)))
    out = np.zeros((x.shape[0], *out_spatial, cout))
    for tap in _taps(w.shape[:3]):
        sel = tuple(slice(t * d, t * d + (o - 1) * s + 1, s)
                    for t, d, o, s in zip(tap, dilations, out_spatial, strides))
        window, reads_input = xp[(slice(None),) + sel], inside[sel][..., None]
        for g in range(groups):
            out[..., g * cout_g:(g + 1) * cout_g] += np.where(reads_input, _matmul(
                window[..., g * cin:(g + 1) * cin], w[tap][:, g * cout_g:(g + 1) * cout_g]), 0.0)
    return _restore(out, channels_first)


def transpose(x, w, out_spatial, strides, dilations, pads_before, channels_first):
    """Scatter every input pixel through every tap into the un-cropped result
    (o = i*s + k*d), then keep the window [pad_before, pad_before + O).
    Only input pixels are scattered, so positions between or outside them
    get no term from a tap (a non-finite weight reaches only the outputs
    its tap scatters to)."""
    x = _channels_last(x, channels_first).astype(np.float64)
    w = w.astype(np.float64)
    n = x.shape[1:4]
    full_len = [(ni - 1) * s + (k - 1) * d + 1 for ni, s, k, d in zip(n, strides, w.shape[:3], dilations)]
    full = np.zeros((x.shape[0], *full_len, w.shape[3]))
    for tap in _taps(w.shape[:3]):
        target = (slice(None),) + tuple(
            slice(t * d, t * d + (ni - 1) * s + 1, s) for t, d, ni, s in zip(tap, dilations, n, strides))
        full[target] += _matmul(x, w[tap].T)
    out = np.zeros((x.shape[0], *out_spatial, w.shape[3]))
    keep = tuple(slice(pb, min(pb + o, L)) for pb, o, L in zip(pads_before, out_spatial, full_len))
    sizes = [max(0, min(pb + o, L) - pb) for pb, o, L in zip(pads_before, out_spatial, full_len)]
    out[(slice(None),) + tuple(slice(0, s) for s in sizes)] = full[(slice(None),) + keep]
    return _restore(out, channels_first)
