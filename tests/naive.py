"""A second, deliberately different oracle: direct loops over output
positions (gather form for both ops, SEMANTICS 1.1 and 2.1), float64,
channels-last, any rank. Slow; only for tiny shapes.

fastdeconv's reference backend pads and slices per tap and scatters for the
transpose, so agreement between the two is evidence, not a tautology.
Pads come from the caller (tests take them from geometry.py or from the
SEMANTICS tables), never from fastdeconv.
"""

import itertools

import numpy as np


def forward(x, w, strides, dilations, pads_before, out_spatial, groups=1):
    """y[b, o, f] = sum_{k, c in group(f)} x[b, o*s + k*d - pb, c] * w[k, c, f]."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    rank = w.ndim - 2
    n = x.shape[-rank - 1:-1]
    cin_g, cout = w.shape[-2], w.shape[-1]
    cout_g = cout // groups
    batch = x.shape[:-rank - 1]
    y = np.zeros(batch + tuple(out_spatial) + (cout,))
    for o in itertools.product(*map(range, out_spatial)):
        for k in itertools.product(*map(range, w.shape[:rank])):
            pos = [o[i] * strides[i] + k[i] * dilations[i] - pads_before[i] for i in range(rank)]
            if not all(0 <= pos[i] < n[i] for i in range(rank)):
                continue
            xv = x[(Ellipsis,) + tuple(pos) + (slice(None),)]
            for g in range(groups):
                y[(Ellipsis,) + o + (slice(g * cout_g, (g + 1) * cout_g),)] += (
                    xv[..., g * cin_g:(g + 1) * cin_g] @ w[k][:, g * cout_g:(g + 1) * cout_g])
    return y


def transpose(x, w, strides, dilations, pads_before, out_spatial):
    """Gather form: out[b, o, c] = sum over taps k with t = o + pb - k*d >= 0,
    t % s == 0, t // s < n of x[b, t // s, m] * w[k, c, m]."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    rank = w.ndim - 2
    n = x.shape[1:1 + rank]
    out = np.zeros((x.shape[0],) + tuple(out_spatial) + (w.shape[-2],))
    for o in itertools.product(*map(range, out_spatial)):
        for k in itertools.product(*map(range, w.shape[:rank])):
            src = []
            for i in range(rank):
                t = o[i] + pads_before[i] - k[i] * dilations[i]
                if t < 0 or t % strides[i] or t // strides[i] >= n[i]:
                    break
                src.append(t // strides[i])
            else:
                out[(slice(None),) + o] += x[(slice(None),) + tuple(src)] @ w[k].T
    return out


def forward_footprint(bad, kernel, strides, dilations, pads_before, out_spatial, groups, cout):
    """Boolean [B, *out, cout]: does output (b, o, f)'s window touch a True
    input of f's channel group? `bad` is [B, *n, C] boolean."""
    rank = len(kernel)
    n = bad.shape[1:1 + rank]
    cin = bad.shape[-1]
    cin_g, cout_g = cin // groups, cout // groups
    hit = np.zeros((bad.shape[0],) + tuple(out_spatial) + (cout,), dtype=bool)
    for o in itertools.product(*map(range, out_spatial)):
        for k in itertools.product(*map(range, kernel)):
            pos = [o[i] * strides[i] + k[i] * dilations[i] - pads_before[i] for i in range(rank)]
            if all(0 <= pos[i] < n[i] for i in range(rank)):
                for g in range(groups):
                    touched = bad[(slice(None),) + tuple(pos) + (slice(g * cin_g, (g + 1) * cin_g),)].any(axis=-1)
                    hit[(slice(None),) + o + (slice(g * cout_g, (g + 1) * cout_g),)] |= touched[:, None]
    return hit


def transpose_footprint(bad, kernel, strides, dilations, pads_before, out_spatial, cout):
    """Boolean [B, *O, cout]: is output (b, o, c) in the scatter footprint
    of a True input (any channel)? Scatter form, on purpose."""
    rank = len(kernel)
    hit = np.zeros((bad.shape[0],) + tuple(out_spatial) + (cout,), dtype=bool)
    any_bad = bad.any(axis=-1)
    for i in itertools.product(*map(range, bad.shape[1:1 + rank])):
        for k in itertools.product(*map(range, kernel)):
            o = [i[j] * strides[j] + k[j] * dilations[j] - pads_before[j] for j in range(rank)]
            if all(0 <= o[j] < out_spatial[j] for j in range(rank)):
                hit[(slice(None),) + tuple(o)] |= any_bad[(slice(None),) + i][:, None]
    return hit


def reached(n, kernel, strides, dilations, pads_before, out_spatial):
    """Boolean [*O]: output positions that at least one (input, tap) pair
    reaches in a transposed convolution (the rest must be exactly 0)."""
    rank = len(kernel)
    hit = np.zeros(tuple(out_spatial), dtype=bool)
    for i in itertools.product(*map(range, n)):
        for k in itertools.product(*map(range, kernel)):
            o = [i[j] * strides[j] + k[j] * dilations[j] - pads_before[j] for j in range(rank)]
            if all(0 <= o[j] < out_spatial[j] for j in range(rank)):
                hit[tuple(o)] = True
    return hit
