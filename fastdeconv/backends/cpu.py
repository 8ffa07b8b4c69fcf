"""CPU backend: Numba kernels, parallel over output tiles.

The algorithm choice is made here, in `_run`:

- channels-last, both ops: `cpu_rb.cl_kernel`, register-blocked (8 output
  positions x 2 vectors = 32 float32 / 16 float64 output channels held in
  AVX-512 registers across all taps and input channels; x 1 vector when a
  group has at most 16 float32 output channels; transposes are
  phase-decomposed so every phase is a dense gather). See cpu_rb.
- channels-first, transposes and forward sw == 1; and channels-last with
  at most WV_NARROW output channels: `cpu_rb.wv_kernel`, register-blocked
  with roles swapped (8 output channels x 32 float32 / 16 float64 output
  positions along W; contiguous or gathered input vectors along W, masked
  at the edges). Same term order, hence the same bits, as cl_kernel.
- channels-first forward with sw > 1: `_cf_kernel` below, read natively (no
  layout copies): tiles (batch, out d, out h, W chunk, group, channel
  block), a buffer channels x W, the inner loop along W; tile ranges run
  on cpu_rb.parallel_tiles like the other kernels.

Every output element has exactly one writer and receives its terms in an
order fixed by the shapes (never by the thread count), so results are the
same bits at any NUMBA_NUM_THREADS. Zero weights or inputs are never
skipped, so NaN/Inf propagate as in direct summation.

Threading: Numba's OpenMP layer with OMP_WAIT_POLICY=PASSIVE (unless the
user set it): with the default (spinning) policy our idle threads and
TensorFlow's spin against each other on a small machine and a small call
costs ~6 ms instead of ~0.1 ms (benchmarks/NOTES.md).
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
from numba import uint64 as _u

from .._jit import helper
from . import cpu_rb, reference
from .cpu_rb import _cdiv, _src  # index math shared with the register-blocked kernels

# Forward convolutions with dw == 1 and no groups read (kw, c) as one run
# (same terms, same order); tests switch it off to check the per-tap path.
FUSE_KW = True

# Channels-last calls with at most WV_NARROW float32 output channels per
# group (half as many float64) use the vectors-along-W kernel; 0 turns it off.
WV_NARROW = 8

# Channels-last calls with at most one vector of output channels per group
# (16 float32 / 8 float64) use the 8-row x 1-vector tile instead of the
# 8 x 2-vector one; False turns it off (tests compare the two).
CL1 = True

# Channels-first tiles: up to CF_WIDTH outputs along W, CF_CHANNELS channels.
CF_WIDTH = 64
CF_CHANNELS = 32


# ---------------------------------------------------------------- index math

@helper
def _w_range(o0, o1, k, s, d, p, n, trans):
    """Along W, tap k, outputs [o0, o1): returns (lo, hi, e) such that the
    pairs are v in [lo, hi) with
      forward:   ow = v, iw = v*s + e  (gather)
      transpose: iw = v, ow = v*s + e  (scatter)
    where e = k*d - p and both indexes are in range."""
    e = k * d - p
    if trans:
        lo = max(0, _cdiv(o0 - e, s))
        hi = min(n, _cdiv(o1 - e, s))
    else:
        lo = max(o0, _cdiv(-e, s))
        hi = min(o1, _cdiv(n - e, s))
    return lo, max(lo, hi), e


# ------------------------------------------------------------- micro kernels
# Indexes are cast with _u (uint64): Numba wraps negative signed indexes
# (a select per access), which stops LLVM from vectorising these loops;
# unsigned indexes have no wraparound. All offsets here are >= 0.

@helper
def _cf_micro(acc, lda, ab, x, xb, cs, xs, L, w, wb, C, ldw, nf):
    """acc[f*lda + ab + t] += sum_c w[wb + c*ldw + f] * x[xb + c*cs + t*xs]
    for f < nf, t < L. Blocked 4 channels out x 4 channels in; the vector
    loop runs along W (t), unit stride when xs == 1."""
    c = 0
    while c + 4 <= C:
        i0 = xb + c * cs
        i1 = i0 + cs
        i2 = i1 + cs
        i3 = i2 + cs
        k0 = wb + c * ldw
        k1 = k0 + ldw
        k2 = k1 + ldw
        k3 = k2 + ldw
        f = 0
        while f + 4 <= nf:
            w00 = w[_u(k0 + f)]
            w01 = w[_u(k0 + f + 1)]
            w02 = w[_u(k0 + f + 2)]
            w03 = w[_u(k0 + f + 3)]
            w10 = w[_u(k1 + f)]
            w11 = w[_u(k1 + f + 1)]
            w12 = w[_u(k1 + f + 2)]
            w13 = w[_u(k1 + f + 3)]
            w20 = w[_u(k2 + f)]
            w21 = w[_u(k2 + f + 1)]
            w22 = w[_u(k2 + f + 2)]
            w23 = w[_u(k2 + f + 3)]
            w30 = w[_u(k3 + f)]
            w31 = w[_u(k3 + f + 1)]
            w32 = w[_u(k3 + f + 2)]
            w33 = w[_u(k3 + f + 3)]
            a0 = f * lda + ab
            a1 = a0 + lda
            a2 = a1 + lda
            a3 = a2 + lda
            if xs == 1:
                for t in range(L):
                    u0 = x[_u(i0 + t)]
                    u1 = x[_u(i1 + t)]
                    u2 = x[_u(i2 + t)]
                    u3 = x[_u(i3 + t)]
                    acc[_u(a0 + t)] += u0 * w00 + u1 * w10 + u2 * w20 + u3 * w30
                    acc[_u(a1 + t)] += u0 * w01 + u1 * w11 + u2 * w21 + u3 * w31
                    acc[_u(a2 + t)] += u0 * w02 + u1 * w12 + u2 * w22 + u3 * w32
                    acc[_u(a3 + t)] += u0 * w03 + u1 * w13 + u2 * w23 + u3 * w33
            else:
                for t in range(L):
                    u0 = x[_u(i0 + t * xs)]
                    u1 = x[_u(i1 + t * xs)]
                    u2 = x[_u(i2 + t * xs)]
                    u3 = x[_u(i3 + t * xs)]
                    acc[_u(a0 + t)] += u0 * w00 + u1 * w10 + u2 * w20 + u3 * w30
                    acc[_u(a1 + t)] += u0 * w01 + u1 * w11 + u2 * w21 + u3 * w31
                    acc[_u(a2 + t)] += u0 * w02 + u1 * w12 + u2 * w22 + u3 * w32
                    acc[_u(a3 + t)] += u0 * w03 + u1 * w13 + u2 * w23 + u3 * w33
            f += 4
        while f < nf:
            w00 = w[_u(k0 + f)]
            w10 = w[_u(k1 + f)]
            w20 = w[_u(k2 + f)]
            w30 = w[_u(k3 + f)]
            a0 = f * lda + ab
            for t in range(L):
                acc[_u(a0 + t)] += (x[_u(i0 + t * xs)] * w00 + x[_u(i1 + t * xs)] * w10
                                + x[_u(i2 + t * xs)] * w20 + x[_u(i3 + t * xs)] * w30)
            f += 1
        c += 4
    while c < C:  # leftover channels, one at a time
        i0 = xb + c * cs
        k0 = wb + c * ldw
        for f in range(nf):
            w00 = w[_u(k0 + f)]
            a0 = f * lda + ab
            if xs == 1:
                for t in range(L):
                    acc[_u(a0 + t)] += x[_u(i0 + t)] * w00
            else:
                for t in range(L):
                    acc[_u(a0 + t)] += x[_u(i0 + t * xs)] * w00
        c += 1


# ------------------------------------------------------------------ kernels

@cpu_rb.serial_kernel
def _cf_kernel(x, w, out, geo, t_begin, t_end):
    """Channels-first. x: (B, G*Cg, D, H, W) flat; w: (G, taps, Cg, Fg) flat;
    out: (B, G*Fg, OD, OH, OW) flat. Forward tiles cover WT outputs along W;
    transpose tiles cover WT = sw*JT outputs, buffered phase-major
    (index (ow % sw)*JT + (ow - o0)//sw)."""
    (B, D, H, W, Cg, OD, OH, OW, Fg, KD, KH, KW, sd, sh, sw, dd, dh, dw, pd, ph, pw,
     G, Fp, trans, WT, BT, FT) = geo
    Cx = G * Cg
    F = G * Fg
    cs = D * H * W
    JT = WT // sw if trans else WT
    nwc = _cdiv(OW, WT)
    nfb = _cdiv(Fg, FT)
    for tile in range(t_begin, t_end):
        fb = tile % nfb
        r = tile // nfb
        g = r % G
        r = r // G
        wc = r % nwc
        r = r // nwc
        oh = r % OH
        r = r // OH
        od = r % OD
        b = r // OD
        o0 = wc * WT
        o1 = min(OW, o0 + WT)
        f0 = fb * FT
        nf = min(FT, Fg - f0)
        acc = np.zeros(nf * WT, dtype=out.dtype)
        for kd in range(KD):
            i_d = _src(od, kd, sd, dd, pd, D, trans)
            if i_d < 0:
                continue
            for kh in range(KH):
                i_h = _src(oh, kh, sh, dh, ph, H, trans)
                if i_h < 0:
                    continue
                xrow = (((b * Cx + g * Cg) * D + i_d) * H + i_h) * W
                for kw in range(KW):
                    wb = (((g * KD + kd) * KH + kh) * KW + kw) * Cg * Fg + f0
                    if trans:
                        # scatter: iw -> ow = iw*sw + e = (iw + q)*sw + phase
                        e = kw * dw - pw
                        phase = e % sw
                        q = (e - phase) // sw
                        j0 = o0 // sw
                        lo = max(0, j0 - q)
                        hi = min(W, j0 - q + JT, _cdiv(OW - e, sw))
                        if hi <= lo:
                            continue
                        ab = phase * JT + lo + q - j0
                        _cf_micro(acc, WT, ab, x, xrow + lo, cs, 1, hi - lo, w, wb, Cg, Fg, nf)
                    else:
                        lo, hi, e = _w_range(o0, o1, kw, sw, dw, pw, W, trans)
                        if hi == lo:
                            continue
                        _cf_micro(acc, WT, lo - o0, x, xrow + lo * sw + e, cs, sw, hi - lo,
                                  w, wb, Cg, Fg, nf)
        for f in range(nf):
            ob = (((b * F + g * Fg + f0 + f) * OD + od) * OH + oh) * OW
            if trans:
                for ow in range(o0, o1):
                    out[ob + ow] = acc[f * WT + (ow % sw) * JT + (ow - o0) // sw]
            else:
                for ow in range(o0, o1):
                    out[ob + ow] = acc[f * WT + ow - o0]


# ------------------------------------------------------------------ wrappers

def _run(x, wg, out_spatial, strides, dilations, pads_before, channels_first, trans, epilogue=None):
    """wg: (G, KD, KH, KW, Cg, Fg) view of the filters, reduction channel
    before output channel. Builds the tile geometry and calls a kernel.
    epilogue: see `forward`; applied in the channels-last kernel's registers
    when it is affine + linear/ReLU, else in one pass over the result."""
    G, KD, KH, KW, Cg, Fg = wg.shape
    if channels_first:
        B, _, D, H, W = x.shape
    else:
        B, D, H, W, _ = x.shape
    OD, OH, OW = (int(v) for v in out_spatial)
    sd, sh, sw = (int(v) for v in strides)
    dd, dh, dw = (int(v) for v in dilations)
    pd, ph, pw = (int(v) for v in pads_before)
    out = np.empty(B * OD * OH * OW * G * Fg, dtype=x.dtype)
    Cx = G * Cg
    F = G * Fg
    narrow = (not channels_first and Fg <= WV_NARROW * 4 // x.dtype.itemsize
              and (trans or sw == 1) and Cx * W * x.dtype.itemsize < 2**31)
    if (channels_first and (trans or sw == 1)) or narrow:
        # Vectors along W (cpu_rb.wv_kernel): channels-first data, or
        # channels-last data with few output channels (gathered loads).
        wp, NFB = cpu_rb.pack_filters_wv(wg, x.dtype)
        if channels_first:
            xs = (Cx * D * H * W, D * H * W, H * W, W, 1)
            os_ = (F * OD * OH * OW, OD * OH * OW, OH * OW, OW, 1)
        else:
            xs = (D * H * W * Cx, 1, H * W * Cx, W * Cx, Cx)
            os_ = (OD * OH * OW * F, 1, OH * OW * F, OW * F, F)
        geo = (B, D, H, W, Cg, OD, OH, OW, Fg, KD, KH, KW, sd, sh, sw, dd, dh, dw, pd, ph, pw,
               G, int(trans), NFB) + xs + os_
        geo = tuple(int(v) for v in geo)
        cpu_rb.parallel_tiles(cpu_rb.wv_kernel, (x.reshape(-1), wp, out, geo),
                              cpu_rb.n_tiles_wv(geo, x.dtype.itemsize),
                              B * OD * OH * OW * G * Fg * KD * KH * KW * Cg)
        if channels_first:
            return _finish(out.reshape((B, G * Fg, OD, OH, OW)), True, epilogue)
        return _finish(out.reshape((B, OD, OH, OW, G * Fg)), False, epilogue)
    if channels_first:
        Fp = Fg
        w_k = np.ascontiguousarray(wg).reshape(-1)
        FT = CF_CHANNELS
        if trans:
            WT = sw * min(_ceil(OW, sw), max(1, CF_WIDTH // sw))
        else:
            WT = min(OW, CF_WIDTH)
        BT = 1
        run = _cf_kernel
    else:
        # Channels-last: register-blocked kernel (cpu_rb), both ops.
        P = sw if trans else 1
        nvec = 1 if CL1 and Fg * x.dtype.itemsize <= 64 else 2
        RT = cpu_rb.rows_per_tile(B * _ceil(OW, P))
        wp, NFB = cpu_rb.pack_filters(wg, x.dtype, nvec)
        zrow = np.zeros(Cg * KW + 1, dtype=x.dtype)
        fuse = int(FUSE_KW and not trans and dw == 1 and G == 1)
        geo = (B, D, H, W, Cg, OD, OH, OW, Fg, KD, KH, KW, sd, sh, sw, dd, dh, dw, pd, ph, pw,
               G, int(trans), RT, NFB, fuse)
        geo = tuple(int(v) for v in geo)
        ep_code = 0
        epi = np.zeros(3, dtype=x.dtype)
        if epilogue is not None and epilogue[3] in ("linear", "relu"):
            bias, scale, shift, activation, _ = epilogue
            epi = cpu_rb.epilogue_params(F, nvec, x.dtype, bias, scale, shift)
            ep_code = 2 if activation == "relu" else 1
            epilogue = None
        cpu_rb.parallel_tiles(cpu_rb.cl_kernel,
                              (x.reshape(-1), wp, out, zrow, geo, cpu_rb.tile_tag(nvec), epi, ep_code),
                              cpu_rb.n_tiles(geo), B * OD * OH * OW * G * Fg * KD * KH * KW * Cg)
        return _finish(out.reshape((B, OD, OH, OW, G * Fg)), False, epilogue)
    geo = (B, D, H, W, Cg, OD, OH, OW, Fg, KD, KH, KW, sd, sh, sw, dd, dh, dw, pd, ph, pw,
           G, Fp, int(trans), WT, BT, FT)
    geo = tuple(int(v) for v in geo)
    cpu_rb.parallel_tiles(run, (x.reshape(-1), w_k, out, geo), B * OD * OH * _ceil(OW, WT) * G * _ceil(Fg, FT),
                          B * OD * OH * OW * G * Fg * KD * KH * KW * Cg)
    shape = (B, G * Fg, OD, OH, OW) if channels_first else (B, OD, OH, OW, G * Fg)
    return _finish(out.reshape(shape), channels_first, epilogue)


def _finish(y, channels_first, epilogue):
    """y after the epilogue not fused into the kernel (in place)."""
    if epilogue is not None:
        from . import cpu_layers

        bias, scale, shift, activation, alpha = epilogue
        channels = y.shape[1] if channels_first else y.shape[-1]
        cpu_layers.epilogue(y, channels, channels_first, bias, scale, shift, activation, alpha)
    return y


def _ceil(a, b):
    return -((-a) // b)


def _finite(w):
    """False when the filters hold a NaN or Inf. The kernels multiply a zero
    row into W-edge taps that fall on padding (0 * Inf = NaN), while the
    rule is that such a tap contributes no term; filters like that (a broken
    model, never a fast path) go through the float64 reference instead.
    Checking costs one pass over the filters."""
    with np.errstate(invalid="ignore"):
        return bool(np.isfinite(w).all())


def forward(x, w, out_spatial, strides, dilations, pads_before, groups, channels_first, epilogue=None):
    """Direct (gather) convolution. Returns a new 5-D array.

    epilogue (for conv layers): None, or (bias, scale, shift, activation,
    alpha) applied per output channel to the result, in place:
    act((y + bias) * scale + shift), None standing for 0, 1, 0 (activation
    names of cpu_layers.ACTIVATIONS)."""
    if not _finite(w):
        y = reference.forward(x, w, out_spatial, strides, dilations, pads_before, groups,
                              channels_first).astype(x.dtype)
        return _finish(y, channels_first, epilogue)
    KD, KH, KW, P, Q = w.shape
    wg = w.reshape(KD, KH, KW, P, groups, Q // groups).transpose(4, 0, 1, 2, 3, 5)
    return _run(x, wg, out_spatial, strides, dilations, pads_before, channels_first, False, epilogue)


def transpose(x, w, out_spatial, strides, dilations, pads_before, channels_first, epilogue=None):
    """Scatter-based transposed convolution. Returns a new 5-D array.
    epilogue: as in `forward`."""
    if not _finite(w):
        y = reference.transpose(x, w, out_spatial, strides, dilations, pads_before,
                                channels_first).astype(x.dtype)
        return _finish(y, channels_first, epilogue)
    wg = w.transpose(0, 1, 2, 4, 3)[None]  # (1, KD, KH, KW, Q=C_in, P=C_out)
    return _run(x, wg, out_spatial, strides, dilations, pads_before, channels_first, True, epilogue)
