"""Depthwise forward convolution: one input channel per group (Keras'
DepthwiseConv, the first half of SeparableConv).

Each output element has at most KD*KH*KW terms, so the register-blocked
kernels (a reduction over taps x input channels per output) spend their
time on set-up there: 3-7x slower than TensorFlow on 3x3 depthwise layers.
The kernels here (cpu.py's rules pick one):
- channels-last: `depthwise_cl_blocks`, a vector of channels x 8 output
  positions with a weight vector per tap on padded planes (as
  depthwise_cf_blocks', a plain copy), for multiplier 1 and small
  stride-1 planes; `depthwise_cl_vectors`, the same tile straight on the
  input rows, the W edges a position at a time, for long rows;
  `depthwise_cl`, a row of outputs accumulated with the channels
  innermost (input, filters and output contiguous; vectorised by LLVM),
  for the rest;
- channels-first: `depthwise_cf_blocks`, a vector of channels at a time on
  the block's planes transposed in registers, for small planes whose
  channels fill their vectors; `depthwise_cf`, vectors along W on one
  padded plane at a time, for the rest.

Term order, the same as cpu_rb.cl_kernel's for these shapes: taps in (kd,
kh, kw) order, the (kd, kh) pairs in groups of `gs` (cpu_rb.sum_group with
one channel per group), each group's partial sum from zero added to the
running total. Taps that fall into the padding along D and H are skipped,
as in cl_kernel; along W they are skipped too, where cl_kernel adds 0 * w
(the same value: only the sign of a zero result could differ).
The kernels on padded planes multiply the padding's zeros instead of
skipping those taps (the same values; a sum that starts at +0 never
becomes -0).
"""

import numpy as np

from .._jit import allocating_kernel, helper, serial_kernel
from .cpu_rb import _min
from .cpu_simd import (addr, itemsize, scratch, tile_dims, vcopyn, vpack_rows, vrun_cols_whole, vrun_lanes, vtadd,
                       vtranspose_block, vtranspose_over, vtstore_flat, vtstore_rows, vtzero)


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
                for t in range(g0, _min(g0 + gs, KD * KH)):
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
    channels-first depthwise convolution, every multiplier m. x: (B, C, D, H, W) flat; wf: (C*M, KD, KH, KW) flat,
    output channel f = c*M + m's filter; out: (B, C*M, OD, OH, OW) flat.

    xin: zeros for the KD input planes the output plane reads, each padded
    and split by phase into sh*sw planes of NR rows of Ws columns (input
    row ih, padded row r = ph + ih, in H phase r % sh at row r // sh; its
    column iw in W phase iw % sw at column P0 + iw // sw, P0 = ceil(pw /
    sw)). Output (oh, ow)'s tap (kh, kw)
    reads H phase (kh*dh) % sh, row oh + (kh*dh) // sh, W phase e % sw,
    column ow + P0 + e // sw (e = kw*dw - pw): a whole vector of outputs
    reads one vector per tap. Planes outside the input are skipped, as
    depthwise_cl skips their taps.

    A tile's NW vectors are NW output rows of V columns, or (flat, for
    rows that would leave lanes empty) NW*V consecutive positions of the
    output plane laid out Ws columns a row: the columns past OW then read
    the zero padding between rows and are not stored (vtstore_flat: a
    masked store per row a vector meets). With W stride 1 a row of
    KW taps is one run (its input a column on per tap, its weights
    consecutive), with more a run per tap (vpack_rows: stride-2 rows split
    into their even and odd columns in registers, larger strides' phases
    gathered)."""
    (B, C, D, H, W, M, OD, OH, OW, KD, KH, KW, sd, sh, sw, dd, dh, dw, pd, ph, pw, gs, Ws, NR, flat) = geo
    isz = itemsize(out)
    _, NW, V = tile_dims(tile, out)
    xa = addr(x)
    ba = addr(xin)
    wa = addr(wf)
    so = scratch(0, 8)
    F = C * M
    P0 = (pw + sw - 1) // sw
    plane = NR * Ws  # one (kd, H phase, W phase) plane
    # tiles: blocks of NW output rows by column chunks of V, or (flat)
    # blocks of NW*V positions
    if flat:
        nblk = (OH * Ws + NW * V - 1) // (NW * V)
        ncol = 1
        vstep = V
        bstep = NW * V
    else:
        nblk = (OH + NW - 1) // NW
        ncol = (OW + V - 1) // V
        vstep = Ws
        bstep = NW * Ws
    # the plane (b, c, od) of tile t_begin, then counted on (no divisions per plane)
    od = t_begin % OD
    c = t_begin // OD % C
    b = t_begin // OD // C
    for t in range(t_begin, t_end):
        if t > t_begin:
            od += 1
            if od == OD:
                od = 0
                c += 1
                if c == C:
                    c = 0
                    b += 1
        for kd in range(KD):
            i_d = od * sd - pd + kd * dd
            if i_d < 0 or i_d >= D:
                continue
            src = xa + (((b * C + c) * D + i_d) * H * W) * isz
            for ih in range(H):
                hq, hp = _split(ph + ih, sh)
                dst = ba + (((kd * sh + hp) * sw * NR + hq) * Ws + P0) * isz
                if sw == 1:
                    for iw in range(0, W, V):
                        vcopyn(out, tile, dst + iw * isz, src + (ih * W + iw) * isz, W - iw)
                else:
                    vpack_rows(out, tile, dst, src + ih * W * isz, W, 1, 0, plane, sw)
        for m in range(M):
            f = c * M + m
            ib = 0
            wc = -1
            r0 = 0
            for _ in range(nblk * ncol):
                wc += 1
                if wc == ncol:
                    wc = 0
                    ib += 1
                oh0 = ib * NW
                ow0 = wc * V
                p0 = ib * bstep + ow0  # the plane's position of vector 0
                while flat and (r0 + 1) * Ws <= p0:  # r0: the row of p0
                    r0 += 1
                # taps in (kd, kh, kw) order, (kd, kh) groups of gs summed from zero
                acc = vtzero(out, tile)
                total = acc
                gend = 0  # the first tap past the current group
                ngrp = 0
                for kd in range(KD):
                    i_d = od * sd - pd + kd * dd
                    if i_d < 0 or i_d >= D:
                        continue
                    for kh in range(KH):
                        if kd * KH + kh >= gend:
                            gend = ((kd * KH + kh) // gs + 1) * gs
                            if ngrp > 0:
                                total = vtadd(total, acc)
                                acc = vtzero(out, tile)
                            ngrp += 1
                        hq, hp = _split(kh * dh, sh)
                        p = ba + ((((kd * sh + hp) * sw) * NR + hq) * Ws + P0 + p0) * isz
                        q = wa + ((f * KD + kd) * KH + kh) * KW * isz
                        if sw == 1:
                            acc = vrun_cols_whole(out, acc, tile, p - pw * isz, dw * isz, vstep * isz, 0, 0, q, KW)
                        else:
                            for kw in range(KW):
                                wq, wp = _split(kw * dw - pw, sw)
                                acc = vrun_cols_whole(out, acc, tile, p + (wp * plane + wq) * isz, 0,
                                                      vstep * isz, 0, 0, q + kw * isz, 1)
                acc = vtadd(total, acc)
                if flat:
                    vtstore_flat(out, tile, (((b * F + f) * OD + od) * OH) * OW, acc, p0, r0, Ws, OW, OH)
                else:
                    so[0] = (((b * F + f) * OD + od) * OH + oh0) * OW + ow0
                    vtstore_rows(out, tile, so, acc, OW - ow0, OW, OH - oh0)


@helper
def _split(a, s):
    """(a // s, a % s) for s >= 1, without a division for s 1 and 2 (an
    integer division takes 10-20 cycles; the plane loops run one per row
    and tap)."""
    if s == 1:
        return a, 0
    if s == 2:
        return a >> 1, a & 1
    return a // s, a % s


def plane_geometry(OH, OW, H, W, KH, KW, sh, sw, dh, dw, ph, pw, nvec, lanes, flat):
    """depthwise_cf's padded planes for tiles of nvec vectors: (Ws, NR,
    n), the columns and rows of each (H phase, W phase) plane and the
    lanes an output plane's tiles compute. Ws: the columns whole vectors
    of output columns read and (W strides over 1, vpack_rows) the whole 2
    vectors each copy writes; flat: at least the columns the outputs of a
    row read, so that the columns past OW read the zeros after a row and
    before the next. NR: the rows the tiles read (a last block of output
    rows in full) and those the copy writes."""
    P0 = -(-pw // sw)
    right = max(0, ((KW - 1) * dw - pw) // sw)  # columns a row's last output reads past it
    writes = -(-(-(-W // sw)) // (2 * lanes)) * 2 * lanes if sw > 1 else W
    last_data_row = (ph + H - 1) // sh
    tap_rows = (KH - 1) * dh // sh
    if flat:
        Ws = max(OW + right, P0 + -(-W // sw))  # a row's data ends before the next row's left padding
        n = -(-(OH * Ws) // (nvec * lanes)) * nvec * lanes
        NR = max((n - 1 + P0 + right) // Ws + tap_rows, last_data_row + (P0 + writes - 1) // Ws) + 1
        return Ws, NR, n
    Ws = max(P0 + -(-OW // lanes) * lanes + right + 1, P0 + writes) + lanes
    NR = max(-(-OH // nvec) * nvec + tap_rows, last_data_row + 1)
    return Ws, NR, -(-OH // nvec) * nvec * -(-OW // lanes) * lanes


@helper
def _block_taps(buf, wb, out, geo, tile, period, od, oh, ow0, fb):
    """The blocks kernels' sum for output positions ow0 + j (j < the tile's
    vectors) of output row oh of plane od, on the padded planes at the
    start of buf (KD planes of Hp x Wp positions of V channels), with
    filter block fb: KW steps per (kd, kh) that reads inside the input
    along D (`vrun_lanes`, a weight vector per tap), (kd, kh) groups of gs
    summed from zero (depthwise_cl's order)."""
    (B, C, D, H, W, M, OD, OH, OW, KD, KH, KW, sd, sh, sw, dd, dh, dw, pd, ph, pw, gs, Hp, Wp) = geo
    isz = itemsize(out)
    V = tile_dims(tile, out)[2]
    acc = vtzero(out, tile)
    total = acc
    gend = 0  # the first tap past the current group
    ngrp = 0
    for kd in range(KD):
        i_d = od * sd - pd + kd * dd
        if i_d < 0 or i_d >= D:
            continue
        for kh in range(KH):
            if kd * KH + kh >= gend:
                gend = ((kd * KH + kh) // gs + 1) * gs
                if ngrp > 0:
                    total = vtadd(total, acc)
                    acc = vtzero(out, tile)
                ngrp += 1
            p = addr(buf) + (((kd * Hp + oh * sh + kh * dh) * Wp + ow0 * sw) * V) * isz
            q = addr(wb) + (((fb * KD + kd) * KH + kh) * KW * V) * isz
            acc = vrun_lanes(out, acc, tile, p, dw * V * isz, sw * V * isz, 0, 0, q, KW, period)
    return vtadd(total, acc)


@serial_kernel
def depthwise_cl_blocks(x, wb, out, geo, tile, period, buf, t_begin, t_end):
    """Output planes (b, channel block, od) [t_begin, t_end) of a 2-D or
    3-D channels-last depthwise convolution with multiplier 1 and at least
    V channels, V at a time (a last part block is the last V channels,
    overlapping the one before: computed twice, to the same bits), on
    depthwise_cf_blocks' padded planes: each input pixel's V channels are
    one vector copied into them (no transposes), and each output position's
    vector goes straight to its pixel. For rows too short for
    depthwise_cl_vectors, whose W edges run one position at a time. x: (B,
    D, H, W, C) flat; wb: (ceil(C / V), 1, KD, KH, KW, V) flat, channel
    min(cb*V, C - V) + l's filter in lane l; out: (B, OD, OH, OW, C) flat;
    period: V items (vrun_lanes). Term order: depthwise_cl's; taps in the
    padding multiply its zeros."""
    (B, C, D, H, W, M, OD, OH, OW, KD, KH, KW, sd, sh, sw, dd, dh, dw, pd, ph, pw, gs, Hp, Wp) = geo
    isz = itemsize(out)
    _, NW, V = tile_dims(tile, out)
    xa = addr(x)
    ba = addr(buf)
    so = scratch(0, 8)
    NB = (C + V - 1) // V
    nwc = (OW + NW - 1) // NW
    od = t_begin % OD
    cb = t_begin // OD % NB
    b = t_begin // OD // NB
    for t in range(t_begin, t_end):
        if t > t_begin:
            od += 1
            if od == OD:
                od = 0
                cb += 1
                if cb == NB:
                    cb = 0
                    b += 1
        c0 = _min(cb * V, C - V)
        for kd in range(KD):
            i_d = od * sd - pd + kd * dd
            if i_d < 0 or i_d >= D:
                continue
            src = xa + ((((b * D + i_d) * H) * W) * C + c0) * isz
            for ih in range(H):
                dst = ba + (((kd * Hp + ph + ih) * Wp + pw) * V) * isz
                for iw in range(W):
                    vcopyn(out, tile, dst + iw * V * isz, src + ((ih * W + iw) * C) * isz, V)
        for oh in range(OH):
            for wc in range(nwc):
                ow0 = wc * NW
                acc = _block_taps(buf, wb, out, geo, tile, period, od, oh, ow0, cb)
                so[0] = (((b * OD + od) * OH + oh) * OW + ow0) * C + c0
                vtstore_rows(out, tile, so, acc, V, C, OW - ow0)


@serial_kernel
def depthwise_cf_blocks(x, wb, out, geo, tile, period, buf, t_begin, t_end):
    """Output planes (b, channel block, od) [t_begin, t_end) of a 2-D or
    3-D channels-first depthwise convolution, every multiplier m, V input
    channels at a time (V: the vectors' lanes; the last block may hold
    fewer), as depthwise_cl computes a pixel's channels: the block's input
    planes are transposed in registers (vtranspose_over) into KD padded
    planes of Hp x Wp positions of V channels (zero padding, never
    written), each output row's positions run NW at a time with a weight
    vector per tap (vrun_lanes: lane l has channel l's weight), the
    results go to OH*OW positions of V channels after the planes, then
    are transposed back into the block's output planes (the last block of
    positions through a scratch block and masked copies, so nothing is
    written past a plane). A partial block whose V planes would run past
    the input's reads its planes from a copy (its transposes read V
    planes; the others read the next image's as their unused lanes). x: (B, C,
    D, H, W) flat; wb: (ceil(C / V), M, KD, KH, KW, V) flat, filter m of
    input channel cb*V + l in lane l (zeros past C); out: (B, C*M, OD, OH,
    OW) flat; period: V items (vrun_lanes). Term order: depthwise_cl's
    (taps in (kd, kh, kw) order, (kd, kh) groups of gs summed from zero);
    taps in the padding multiply its zeros."""
    (B, C, D, H, W, M, OD, OH, OW, KD, KH, KW, sd, sh, sw, dd, dh, dw, pd, ph, pw, gs, Hp, Wp) = geo
    isz = itemsize(out)
    _, NW, V = tile_dims(tile, out)
    xa = addr(x)
    ba = addr(buf)
    oa = addr(out)
    so = scratch(0, 8)
    F = C * M
    NB = (C + V - 1) // V
    HW = H * W
    P = OH * OW
    ybase = KD * Hp * Wp * V  # the block's outputs: P positions of V channels
    zbase = ybase + (P + V) * V  # a last block of positions transposed
    cbase = zbase + V * V  # the last block's input planes, copied
    bend = ba + (cbase + V * HW + V) * isz
    nwc = (OW + NW - 1) // NW
    od = t_begin % OD
    cb = t_begin // OD % NB
    b = t_begin // OD // NB
    for t in range(t_begin, t_end):
        if t > t_begin:
            od += 1
            if od == OD:
                od = 0
                cb += 1
                if cb == NB:
                    cb = 0
                    b += 1
        nc = _min(V, C - cb * V)  # the block's channels
        copied = b * C + cb * V + V > B * C  # the block's V planes would run past the input
        for kd in range(KD):
            i_d = od * sd - pd + kd * dd
            if i_d < 0 or i_d >= D:
                continue
            src = xa + (((b * C + cb * V) * D + i_d) * HW) * isz
            cs = D * HW * isz
            end = xa + B * C * D * HW * isz
            if copied:
                for ch in range(nc):
                    for q0 in range(0, HW, V):
                        vcopyn(out, tile, ba + (cbase + ch * HW + q0) * isz, src + (ch * D * HW + q0) * isz, HW - q0)
                src = ba + cbase * isz
                cs = HW * isz
                end = bend
            for ih in range(H):
                dst = ba + (((kd * Hp + ph + ih) * Wp + pw) * V) * isz
                for iw in range(0, W, V):
                    vtranspose_over(out, tile, dst + iw * V * isz, src + (ih * W + iw) * isz, cs, V * isz,
                                    _min(V, W - iw), end)
        for m in range(M):
            for oh in range(OH):
                for wc in range(nwc):
                    ow0 = wc * NW
                    acc = _block_taps(buf, wb, out, geo, tile, period, od, oh, ow0, cb * M + m)
                    so[0] = ybase + (oh * OW + ow0) * V
                    vtstore_rows(buf, tile, so, acc, V, V, OW - ow0)
            # positions x channels -> the block's output planes (cb*V + l)*M + m
            dst = oa + (((b * F + cb * V * M + m) * OD + od) * P) * isz
            cstride = M * OD * P * isz
            for q0 in range(0, P, V):
                src = ba + (ybase + q0 * V) * isz
                if q0 + V <= P:
                    vtranspose_block(out, tile, dst + q0 * isz, src, V * isz, cstride, nc)
                else:
                    vtranspose_block(out, tile, ba + zbase * isz, src, V * isz, V * isz, V)
                    for ch in range(nc):
                        vcopyn(out, tile, dst + ch * cstride + q0 * isz, ba + (zbase + ch * V) * isz, P - q0)


def block_geometry(OH, OW, H, W, KH, KW, sh, sw, dh, dw, ph, pw, nvec):
    """depthwise_cf_blocks' padded planes: (Hp, Wp), the rows and columns
    (positions of V channels) that the copy writes and the tiles of nvec
    positions read."""
    Hp = max(ph + H, (OH - 1) * sh + (KH - 1) * dh + 1)
    Wp = max(pw + W, (-(-OW // nvec) * nvec - 1) * sw + (KW - 1) * dw + 1)
    return Hp, Wp


@helper
def _cl_taps(x, wb, out, geo, tile, period, b, od, oh, cb, c0, ow0, kw0, nk):
    """depthwise_cl_vectors' sum for output positions ow0 + j (j < the
    tile's vectors) of row (b, od, oh), channels [c0, c0 + V) (filter block cb): taps
    kw0 .. kw0 + nk - 1 of each (kd, kh) that reads inside the input
    along D and H, in (kd, kh, kw) order, (kd, kh) groups of gs summed
    from zero (depthwise_cl's order)."""
    (B, D, H, W, C, OD, OH, OW, KD, KH, KW, sd, sh, sw, dd, dh, dw, pd, ph, pw, gs) = geo
    isz = itemsize(out)
    V = tile_dims(tile, out)[2]
    acc = vtzero(out, tile)
    total = acc
    gend = 0  # the first tap past the current group
    ngrp = 0
    for kd in range(KD):
        i_d = od * sd - pd + kd * dd
        if i_d < 0 or i_d >= D:
            continue
        for kh in range(KH):
            i_h = oh * sh - ph + kh * dh
            if i_h < 0 or i_h >= H:
                continue
            if kd * KH + kh >= gend:
                gend = ((kd * KH + kh) // gs + 1) * gs
                if ngrp > 0:
                    total = vtadd(total, acc)
                    acc = vtzero(out, tile)
                ngrp += 1
            p = addr(x) + ((((b * D + i_d) * H + i_h) * W + ow0 * sw - pw + kw0 * dw) * C + c0) * isz
            q = addr(wb) + (((cb * KD + kd) * KH + kh) * KW + kw0) * V * isz
            acc = vrun_lanes(out, acc, tile, p, dw * C * isz, sw * C * isz, 0, 0, q, nk, period)
    return vtadd(total, acc)


@serial_kernel
def depthwise_cl_vectors(x, wb, out, geo, tile, one, period, t_begin, t_end):
    """Output rows (b, od, oh) [t_begin, t_end) of a channels-last
    depthwise convolution with multiplier 1 and at least V channels (V,
    the vectors' lanes; a last part vector is the last V channels, which
    overlap the vector before: those are computed twice, to the same
    bits): for each vector of channels, the row's
    positions whose W taps all read inside the input run the tile's NW at
    a time, a weight vector per tap (vrun_lanes: lane l has channel l's
    weight; the input's channels are contiguous, so every load is a whole
    vector), the others (the W edges, a last part block) one at a time
    (`one`, a 1-vector tile) over the W taps that read inside. depthwise_cl
    keeps its partial sums in an array (a load and a store per tap and
    vector). x: (B, D, H, W, C) flat; wb: (ceil(C / V), 1, KD, KH, KW, V)
    flat, channel min(cb*V, C - V) + l's filter in lane l; out: (B, OD, OH,
    OW, C) flat;
    period: V items (vrun_lanes). Same terms in the same order as
    depthwise_cl (padding taps skipped along every axis), so the same
    bits."""
    (B, D, H, W, C, OD, OH, OW, KD, KH, KW, sd, sh, sw, dd, dh, dw, pd, ph, pw, gs) = geo
    _, NW, V = tile_dims(tile, out)
    so = scratch(0, 8)
    # [ow_a, ow_b): the positions whose W taps all read inside the input
    ow_a = _min(OW, (pw + sw - 1) // sw)
    ow_b = _min(OW, (W - 1 + pw - (KW - 1) * dw) // sw + 1)
    if ow_b < ow_a:
        ow_b = ow_a
    oh = t_begin % OH
    od = t_begin // OH % OD
    b = t_begin // OH // OD
    for t in range(t_begin, t_end):
        if t > t_begin:
            oh += 1
            if oh == OH:
                oh = 0
                od += 1
                if od == OD:
                    od = 0
                    b += 1
        row = ((b * OD + od) * OH + oh) * OW
        for cb in range((C + V - 1) // V):
            c0 = _min(cb * V, C - V)  # a last part block overlaps the one before
            ow = 0
            while ow < OW:
                if ow >= ow_a and ow + NW <= ow_b:
                    acc = _cl_taps(x, wb, out, geo, tile, period, b, od, oh, cb, c0, ow, 0, KW)
                    so[0] = (row + ow) * C + c0
                    vtstore_rows(out, tile, so, acc, V, C, NW)
                    ow += NW
                else:
                    e = ow * sw - pw  # input column of tap 0
                    kw0 = 0 if e >= 0 else (dw - 1 - e) // dw
                    kw1 = _min(KW, (W - 1 - e) // dw + 1) if e < W else 0
                    nk = kw1 - kw0 if kw1 > kw0 else 0
                    one_acc = _cl_taps(x, wb, out, geo, one, period, b, od, oh, cb, c0, ow, kw0, nk)
                    so[0] = (row + ow) * C + c0
                    vtstore_rows(out, one, so, one_acc, V, C, 1)
                    ow += 1
