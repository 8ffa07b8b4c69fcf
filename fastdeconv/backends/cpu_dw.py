"""Depthwise forward convolution: one input channel per group (Keras'
DepthwiseConv, the first half of SeparableConv), channels-last
(`depthwise_cl`) and channels-first with W stride 1 or 2 (`depthwise_cf`).

Each output element has at most KD*KH*KW terms, so the register-blocked
kernels (a reduction over taps x input channels per output) spend their
time on set-up there: 3-7x slower than TensorFlow on 3x3 depthwise layers.
Here a row of outputs is accumulated with the channels innermost, where
the input, the filters and the output are all contiguous (vectorised by
LLVM).

Term order, the same as cpu_rb.cl_kernel's for these shapes: taps in (kd,
kh, kw) order, the (kd, kh) pairs in groups of `gs` (cpu_rb.sum_group with
one channel per group), each group's partial sum from zero added to the
running total. Taps that fall into the padding along D and H are skipped,
as in cl_kernel; along W they are skipped too, where cl_kernel adds 0 * w
(the same value: only the sign of a zero result could differ).
depthwise_cf multiplies the padding's zeros instead of skipping those taps
(the same values; a sum that starts at +0 never becomes -0).
"""

import numpy as np

from .._jit import allocating_kernel, serial_kernel
from .cpu_simd import (addr, itemsize, scratch, tile_dims, vcopyn, vpack_rows, vrun_cols_whole, vtadd, vtstore_rows,
                       vtzero)


@allocating_kernel
def depthwise_cl(x, w, out, geo, r_begin, r_end):
    """Output rows (b, od, oh) [r_begin, r_end) (cpu_rb.parallel_tiles
    splits them over threads). x (B, D, H, W, C); w (KD, KH, KW, M, C); out
    (B, OD, OH, OW, C*M), output channel c*M + m from input channel c and
    filter w[..., m, c]. The sums are kept as (M, C), so every inner loop
    runs along the channels; the store interleaves them. A serial kernel: a
    prange one took 2.8 s to compile cold."""
    sd, sh, sw, dd, dh, dw, pd, ph, pw, gs = geo
    B, D, H, W, C = x.shape
    _, OD, OH, OW, F = out.shape
    KD, KH, KW, M, _ = w.shape
    total = np.empty(F, dtype=out.dtype)
    part = np.empty(F, dtype=out.dtype)
    for r in range(r_begin, r_end):
        b, od, oh = r // (OD * OH), (r // OH) % OD, r % OH
        for ow in range(OW):
            total[:] = 0
            for g0 in range(0, KD * KH, gs):
                part[:] = 0
                for t in range(g0, min(g0 + gs, KD * KH)):
                    kd, kh = t // KH, t % KH
                    i_d = od * sd - pd + kd * dd
                    i_h = oh * sh - ph + kh * dh
                    if i_d < 0 or i_d >= D or i_h < 0 or i_h >= H:
                        continue
                    for kw in range(KW):
                        i_w = ow * sw - pw + kw * dw
                        if i_w < 0 or i_w >= W:
                            continue
                        xs = x[b, i_d, i_h, i_w]
                        for m in range(M):
                            ws = w[kd, kh, kw, m]
                            base = m * C
                            for c in range(C):
                                part[base + c] += xs[c] * ws[c]
                for f in range(F):
                    total[f] += part[f]
            dst = out[b, od, oh, ow]
            if M == 1:
                for f in range(F):
                    dst[f] = total[f]
            else:
                for m in range(M):
                    for c in range(C):
                        dst[c * M + m] = total[m * C + c]


@serial_kernel
def depthwise_cf(x, wf, out, geo, tile, xin, t_begin, t_end):
    """Output planes (b, c, od) [t_begin, t_end) of a 2-D or 3-D
    channels-first depthwise convolution with W stride 1 or 2, every
    multiplier m. x: (B, C, D, H, W) flat; wf: (C*M, KD, KH, KW) flat,
    output channel f = c*M + m's filter; out: (B, C*M, OD, OH, OW) flat;
    xin: zeros for the KD input planes the output plane reads, each
    padded (`plane_rows` rows of sw sub-rows of Ws columns: input row ih at
    row ph + ih, its column iw in sub-row iw % sw at column P0 + iw // sw,
    P0 = ceil(pw / sw)), so that output column ow's tap kw, input column e
    = ow*sw + kw*dw - pw, is column ow + P0 + floor((kw*dw - pw) / sw) of
    sub-row e % sw. Planes outside the input are skipped, as depthwise_cl
    skips their taps. A tile's NW vectors are NW output rows, V columns
    each; with W stride 1 a row of KW taps is one run (its input a column
    on per tap, its weights consecutive), with 2 a run per tap (stride-2
    rows split into their even and odd columns in registers,
    vpack_rows)."""
    (B, C, D, H, W, M, OD, OH, OW, KD, KH, KW, sd, sh, sw, dd, dh, dw, pd, ph, pw, gs, Ws, NR) = geo
    isz = itemsize(out)
    _, NW, V = tile_dims(tile, out)
    xa = addr(x)
    ba = addr(xin)
    wa = addr(wf)
    so = scratch(0, 8)
    F = C * M
    P0 = (pw + sw - 1) // sw
    Wrow = sw * Ws
    nwc = (OW + V - 1) // V
    for t in range(t_begin, t_end):
        od = t % OD
        q = t // OD
        c = q % C
        b = q // C
        for kd in range(KD):
            i_d = od * sd - pd + kd * dd
            if i_d < 0 or i_d >= D:
                continue
            src = xa + (((b * C + c) * D + i_d) * H * W) * isz
            for ih in range(H):
                dst = ba + ((kd * NR + ph + ih) * Wrow + P0) * isz
                if sw == 1:
                    for iw in range(0, W, V):
                        vcopyn(out, tile, dst + iw * isz, src + (ih * W + iw) * isz, W - iw)
                else:
                    vpack_rows(out, tile, dst, src + ih * W * isz, W, 1, 0, Ws, sw)
        for m in range(M):
            f = c * M + m
            for oh0 in range(0, OH, NW):
                nv = NW if NW < OH - oh0 else OH - oh0
                for wc in range(nwc):
                    ow0 = wc * V
                    # taps in (kd, kh, kw) order, (kd, kh) groups of gs summed from zero
                    acc = vtzero(out, tile)
                    total = acc
                    grp = -1
                    ngrp = 0
                    for kd in range(KD):
                        i_d = od * sd - pd + kd * dd
                        if i_d < 0 or i_d >= D:
                            continue
                        for kh in range(KH):
                            if (kd * KH + kh) // gs != grp:
                                grp = (kd * KH + kh) // gs
                                if ngrp > 0:
                                    total = vtadd(total, acc)
                                    acc = vtzero(out, tile)
                                ngrp += 1
                            p = ba + (((kd * NR) + oh0 * sh + kh * dh) * Wrow + P0 + ow0) * isz
                            q = wa + ((f * KD + kd) * KH + kh) * KW * isz
                            if sw == 1:
                                acc = vrun_cols_whole(out, acc, tile, p - pw * isz, dw * isz, sh * Wrow * isz, 0, 0,
                                                      q, KW)
                            else:
                                for kw in range(KW):
                                    e = kw * dw - pw
                                    acc = vrun_cols_whole(out, acc, tile, p + ((e % sw) * Ws + e // sw) * isz, 0,
                                                          sh * Wrow * isz, 0, 0, q + kw * isz, 1)
                    acc = vtadd(total, acc)
                    so[0] = (((b * F + f) * OD + od) * OH + oh0) * OW + ow0
                    vtstore_rows(out, tile, so, acc, OW - ow0, OW, nv)


def plane_rows(OH, H, KH, sh, dh, ph, rows):
    """depthwise_cf's padded plane: rows for every block of `rows` output
    rows (the last block read in full) and the input with ph rows above."""
    return max(ph + H, (-(-OH // rows) * rows - 1) * sh + (KH - 1) * dh + 1)


def subrow_columns(OW, W, KW, sw, dw, pw, lanes):
    """depthwise_cf's sub-row length: the columns whole vectors of output
    columns read, and those the copy writes (whole 2 vectors for W stride
    2, vpack_rows)."""
    P0 = -(-pw // sw)
    reads = P0 + -(-OW // lanes) * lanes + max(0, ((KW - 1) * dw - pw) // sw) + 1
    writes = P0 + -(-(-(-W // sw)) // (2 * lanes)) * 2 * lanes
    return max(reads, writes) + lanes
