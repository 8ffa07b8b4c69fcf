"""Channels-last forward convolutions with short reductions: a video
network's first layer (7 x 224^2 x 3 -> 64, 1 x 3 x 3), a 3-D network's
first layers, few-channel 2-D stems, and reductions of a few of
cl_kernel's partial sums (cpu.py's SHORT rule).

cl_kernel's register tile and its vrun, on a plainer loop: a tile is (a
run of) one output line (b, od, oh), its blocks consecutive output columns.
For such a block the row addresses are one base plus a column step, the
(kd, kh) taps inside the input are listed once per line, and each is one
vrun of KW * C steps (the (kw, c) inputs of a row are contiguous when
dw == 1; with a W dilation, one vrun of C steps per kw), for each block of
output channels in turn. cl_kernel spends as
long outside its FMA loop as in it when a reduction is 27 steps long
(section 102 of benchmarks/NOTES.md): its row spaces, folded lines, tap
tables and two-level sums serve every op and layout. Blocks whose rows
reach past the W edges run one vrun per kw, with the row of zeros for the
columns outside, as cl_kernel's do.

Term order: for each group of cl_kernel's (kd, kh) pairs (cpu_rb.sum_group),
for each (kd, kh) inside the input, for each kw, for each input channel,
one FMA from zero, the group's sum then added to a total from zero:
cl_kernel's order, so the same bits.

short_cf is the same loop on channels-first data (SHORT_CF), with
wv_kernel's tile: output channels x consecutive output columns, vectors
along W. A (kd, kh) tap's (kw, c) inputs are then not evenly spaced (c a
plane apart, kw a column), so each tap is one run through a table of their
offsets (`cpu_simd.vrun_cols_table`); columns outside the row are zeroed
in registers, and each output channel's rows are written a plane at a time.
Where OW == W and the H stride is 1 (SAME), a line is a whole output plane:
input and output then differ by one offset per tap along the plane, so a
block of columns may span rows, and narrow rows fill the vectors.
"""

import functools

import numpy as np

from .._jit import serial_kernel
from .cpu_rb import SUM_GROUP_TERMS
from .cpu_simd import (addr, itemsize, scratch, sfence, tile_dims, vrun, vrun_cols_table, vrun_cols_table_masked,
                       vrun_cols_table_select, vtadd, vtaffine, vtstore_stream, vtzero)

ROWS_BYTES = 3 * 16 * 8  # three int64 arrays of a tile's rows (Tile.MAX_ROWS)
# (kd, kh) pairs: as many as terms where KW * C == 1 (a 16 x 16 x 1 kernel
# on one channel has 256)
MAX_TAP_ROWS = SUM_GROUP_TERMS
TAPS_BYTES = 3 * MAX_TAP_ROWS * 8


def n_tiles(geo):
    """Tiles of short_cl: output lines, each in runs of `cols` columns."""
    B, OD, OH, OW, cols = geo[0], geo[5], geo[6], geo[7], geo[23]
    return B * OD * OH * (-(-OW // cols))


def n_tiles_cf(geo):
    """Tiles of short_cf: output lines (whole planes with `flat`) in runs of
    `cols` columns, for each block of output channels."""
    B, OD, OH, OW, NFB, cols = (geo[i] for i in (0, 5, 6, 7, 20, 21))
    return B * OD * OH * (-(-OW // cols)) * NFB


def line_columns(lines, OW, rows, threads, least=32):
    """Output columns per tile: whole lines, or runs of whole blocks of
    rows when there are fewer than `least` lines per thread (1-D signals,
    a few tall images) so that every thread gets work."""
    if lines >= least * threads or threads <= 1:
        return OW
    parts = -(-least * threads // lines)
    cols = -(-OW // parts)
    return min(OW, -(-cols // rows) * rows)


@serial_kernel
def short_cl(x, wp, out, zrow, geo, tile, epi, ep_code, stream, t_begin, t_end):
    """Tiles [t_begin, t_end) (`n_tiles`). x: (B, D, H, W, C) flat; wp:
    cl_kernel's packed filters (NFB, taps, C, NW*V) flat; out: flat, output
    pixel p's channels at p * ops (ops >= F: a channel slice of a wider
    array); zrow: >= C * KW zeros; geo: (B, D, H, W, C, OD, OH, OW, F, KD,
    KH, KW, sd, sh, sw, dd, dh, dw, pd, ph, pw, NFB, ops, cols, gs), gs:
    cl_kernel's (kd, kh) pairs per partial sum (cpu_rb.sum_group); epi,
    ep_code: cl_kernel's epilogue. stream (True, or None: plain stores):
    whole rows of channels stored with streaming stores (their addresses
    vector-aligned: cpu.STREAM_STORES' rule)."""
    (B, D, H, W, C, OD, OH, OW, F, KD, KH, KW, sd, sh, sw, dd, dh, dw, pd, ph, pw, NFB, ops, cols, gs) = geo
    isz = itemsize(out)
    RB, NW, V = tile_dims(tile, out)
    NV = NW * V
    panel = KD * KH * KW * C * NV * isz  # one channel block's packed filters
    xa = addr(x)
    za = addr(zrow)
    wa = addr(wp)
    rows = scratch(0, ROWS_BYTES)
    rp = rows[0:RB]  # each row's first input column, at (kd, kh) offset 0
    po = rows[RB:2 * RB]  # each row's output offset, -1 past the block
    pp = rows[2 * RB:3 * RB]  # row addresses of an edge run; store offsets
    tsc = scratch(0, TAPS_BYTES)
    xoff = tsc[0:MAX_TAP_ROWS]  # the line's (kd, kh) taps: input offsets
    woff = tsc[MAX_TAP_ROWS:2 * MAX_TAP_ROWS]  # ... filter offsets
    grp = tsc[2 * MAX_TAP_ROWS:3 * MAX_TAP_ROWS]  # ... and partial sums
    parts = (OW + cols - 1) // cols
    run = KW * C
    for ti in range(t_begin, t_end):
        part = ti % parts
        line = ti // parts
        oh = line % OH
        r = line // OH
        od = r % OD
        b = r // OD
        n = 0
        for kd in range(KD):
            i_d = od * sd - pd + kd * dd
            if i_d < 0 or i_d >= D:
                continue
            for kh in range(KH):
                i_h = oh * sh - ph + kh * dh
                if i_h < 0 or i_h >= H:
                    continue
                xoff[n] = ((b * D + i_d) * H + i_h) * W * C * isz
                woff[n] = (kd * KH + kh) * KW * C * NV * isz
                grp[n] = (kd * KH + kh) // gs
                n += 1
        ow = part * cols
        ow1 = ow + cols if ow + cols < OW else OW
        obase = ((b * OD + od) * OH + oh) * OW
        while ow < ow1:
            nr = RB if RB < ow1 - ow else ow1 - ow
            first = ow * sw - pw  # row 0's input column for kw = 0
            inside = first >= 0 and (ow + nr - 1) * sw - pw + (KW - 1) * dw + 1 <= W
            for i in range(RB):
                # rows past nr repeat the last one (read, never stored)
                rp[i] = xa + (first + (i if i < nr else nr - 1) * sw) * C * isz
                po[i] = (obase + ow + i) * ops if i < nr else -1
            for fb in range(NFB):
                wfb = wa + fb * panel
                tot = vtzero(out, tile)
                acc = vtzero(out, tile)
                for t in range(n):
                    if t > 0 and grp[t] != grp[t - 1]:
                        # the next of cl_kernel's partial sums
                        tot = vtadd(tot, acc)
                        acc = vtzero(out, tile)
                    if inside and dw == 1:
                        acc = vrun(out, acc, tile, rp, xoff[t], wfb + woff[t], run, nr)
                    elif inside:  # (a W dilation: a run per kw)
                        for kw in range(KW):
                            acc = vrun(out, acc, tile, rp, xoff[t] + kw * dw * C * isz,
                                       wfb + woff[t] + kw * C * NV * isz, C, nr)
                    else:
                        for kw in range(KW):
                            any_ = False
                            for i in range(RB):
                                iw = first + i * sw + kw * dw
                                if i < nr and 0 <= iw < W:
                                    pp[i] = rp[i] + xoff[t] + kw * dw * C * isz
                                    any_ = True
                                else:
                                    pp[i] = za
                            if any_:
                                acc = vrun(out, acc, tile, pp, 0, wfb + woff[t] + kw * C * NV * isz, C, nr)
                # each partial sum added to a total from zero (cl_kernel's): -0 sums become +0
                acc = vtadd(tot, acc)
                if ep_code > 0:
                    ne = len(epi) // 3
                    pe = addr(epi) + fb * NV * isz
                    acc = vtaffine(out, acc, tile, pe, pe + ne * isz, pe + 2 * ne * isz, ep_code == 2)
                f0 = fb * NV
                for i in range(RB):
                    pp[i] = po[i] + f0 if i < nr else -1
                vtstore_stream(out, tile, pp, acc, NV if NV < F - f0 else F - f0, stream)
            ow += nr
    sfence(stream)


@functools.lru_cache(maxsize=64)
def cf_steps(C, KW, plane, dw, isz, NW):
    """short_cf's reduction steps of a (kd, kh) tap, (kw, c) in cl_kernel's
    order, as int64 pairs: the byte offset c * plane + kw * dw * isz in a
    channels-first input (plane: bytes between input channels), and kw's
    row of `cf_masks` (kw * NW * 4 bytes)."""
    kw = np.arange(KW, dtype=np.int64)[:, None]
    c = np.arange(C, dtype=np.int64)[None, :]
    steps = np.stack(np.broadcast_arrays(c * plane + kw * dw * isz, kw * NW * 4 + 0 * c), axis=-1).reshape(-1)
    steps.flags.writeable = False  # (shared by the calls of one geometry)
    return steps


@functools.lru_cache(maxsize=64)
def cf_masks(OH, OW, H, W, KH, KW, dh, dw, ph, pw, V, NW, flat):
    """short_cf's lanes per block of NJ = NW * V output columns of a line
    (flat: of a whole (OH, OW) plane, OW == W, lines one after the other)
    and tap: int32 (blocks, KHm, KW * NW + 1) flat, KHm = KH if flat else 1.
    Bit l of [q, kh, kw * NW + j] is set where column o = q * NJ + j * V +
    l of the line (plane) reads an input element inside the rows and
    columns for tap (kh, kw); the last int of [q, kh] is 1 where every
    lane of the block (those past the line's end aside) does so for every
    kw (plain loads, no masks)."""
    NJ = NW * V
    L = OH * OW if flat else OW
    o = np.arange(-(-L // NJ) * NJ).reshape(-1, 1, 1, NW, V)
    kh = np.arange(KH if flat else 1).reshape(1, -1, 1, 1, 1)
    kw = np.arange(KW).reshape(1, 1, -1, 1, 1)
    col = (o % OW if flat else o) + kw * dw - pw
    inside = (col >= 0) & (col < W)
    if flat:
        row = o // OW + kh * dh - ph
        inside = inside & (row >= 0) & (row < H)
    past = o >= L  # not stored: any value, never read
    bits = ((inside & ~past).astype(np.int64) << np.arange(V)).sum(axis=-1).astype(np.uint32).view(np.int32)
    full = (inside | past).all(axis=(2, 3, 4)).astype(np.int32)
    masks = np.concatenate([bits.reshape(bits.shape[0], bits.shape[1], -1), full[:, :, None]], axis=-1).reshape(-1)
    masks.flags.writeable = False  # (shared by the calls of one geometry)
    return masks


@serial_kernel
def short_cf(x, wp, out, steps, masks, geo, tile, stream, t_begin, t_end):
    """short_cl's loop on channels-first data, vectors along W. Tiles
    [t_begin, t_end) are output lines, or runs of them, for one block of
    tile.rows output channels each (the lines of a (b, od) plane for one
    channel block, then the next block: each channel's row is written in
    runs of whole planes, not 64 rows at once as a line's channels would
    be, which took 1.9x the channels-last time on 7 x 224^2 x 64), the
    line in blocks of NJ = tile.nvec * V consecutive columns, a register
    tile of rows (channels) x NJ columns each. With `flat` (H stride 1,
    OW == W) a line is a whole (OH, OW) plane: the input element of output
    column o for tap (kh, kw) is then o + (kh * dh - ph) * W + kw * dw - pw
    along the plane, so a block may span rows (no vector lanes left empty
    at the end of each row) and every kh tap is one run, its lanes on rows
    outside the input zeroed. Each (kd, kh) tap is one run of KW * C steps
    (`cf_steps`: the (kw, c) inputs of a row are not evenly spaced in
    channels-first data): plain loads where `cf_masks` says every lane
    reads inside the input, else the lanes outside set to zero in registers
    (as cl_kernel's row of zeros), or, where a whole vector would read
    outside x, masked loads. Terms and order as short_cl (the zero terms
    change no bits: the sum is added to a zero total), so the same bits as
    channels-last. x: (B, C, D, H, W) flat; wp: pack_filters_wv's (NFB,
    taps, C, FR) flat; out: (B, F, OD, OH, OW) flat; geo: (B, D, H, W, C,
    OD, OH, OW, F, KD, KH, KW, sd, sh, dd, dh, dw, pd, ph, pw, NFB, cols,
    flat), OH = 1 and OW = the plane's length with `flat`. stream: as in
    short_cl (every whole block of columns then starts on an aligned
    vector: cpu._short_cf's rule)."""
    (B, D, H, W, C, OD, OH, OW, F, KD, KH, KW, sd, sh, dd, dh, dw, pd, ph, pw, NFB, cols, flat) = geo
    isz = itemsize(out)
    RB, NW, V = tile_dims(tile, out)
    NJ = NW * V
    plane = D * H * W * isz
    oplane = OD * OH * OW
    panel = KD * KH * KW * C * RB * isz  # one channel block's packed filters
    S = KW * NW + 1  # masks' ints per (block, kh)
    KHm = KH if flat else 1
    xa = addr(x)
    xend = xa + len(x) * isz
    wa = addr(wp)
    sa = addr(steps)
    ma = addr(masks)
    reach = (C - 1) * plane + ((KW - 1) * dw + NJ) * isz  # a run's bytes from its first
    rows = scratch(0, ROWS_BYTES)
    po = rows[0:RB]  # each output channel's line, -1 past F
    pp = rows[RB:2 * RB]  # ... and the block's first column there
    tsc = scratch(0, TAPS_BYTES)
    xoff = tsc[0:MAX_TAP_ROWS]  # the line's (kd, kh) taps: input offsets
    woff = tsc[MAX_TAP_ROWS:2 * MAX_TAP_ROWS]  # ... filter offsets
    khs = tsc[2 * MAX_TAP_ROWS:3 * MAX_TAP_ROWS]  # ... and their kh in masks
    parts = (OW + cols - 1) // cols
    run = KW * C
    for ti in range(t_begin, t_end):
        part = ti % parts
        line = ti // parts
        oh = line % OH
        r = line // OH
        fb = r % NFB
        r = r // NFB
        od = r % OD
        b = r // OD
        n = 0
        for kd in range(KD):
            i_d = od * sd - pd + kd * dd
            if i_d < 0 or i_d >= D:
                continue
            for kh in range(KH):
                i_h = kh * dh - ph if flat else oh * sh - ph + kh * dh
                if not flat and (i_h < 0 or i_h >= H):
                    continue
                xoff[n] = ((b * C * D + i_d) * H + i_h) * W * isz
                woff[n] = (kd * KH + kh) * KW * C * RB * isz
                khs[n] = kh if flat else 0
                n += 1
        ow = part * cols
        ow1 = ow + cols if ow + cols < OW else OW
        obase = ((b * F * OD + od) * OH + oh) * OW
        wfb = wa + fb * panel
        for i in range(RB):
            f = fb * RB + i
            po[i] = obase + f * oplane if f < F else -1
        while ow < ow1:
            nj = NJ if NJ < ow1 - ow else ow1 - ow
            mq = (ow // NJ) * KHm
            acc = vtzero(out, tile)
            for t in range(n):
                p = xa + xoff[t] + (ow - pw) * isz  # lane 0's input for (kw, c) = (0, 0)
                m = (mq + khs[t]) * S
                if masks[m + S - 1]:
                    acc = vrun_cols_table(out, acc, tile, p, sa, V * isz, wfb + woff[t], run, 0)
                elif p >= xa and p + reach <= xend:
                    acc = vrun_cols_table_select(out, acc, tile, p, sa, V * isz, wfb + woff[t], run, ma + m * 4)
                else:
                    acc = vrun_cols_table_masked(out, acc, tile, p, sa, V * isz, wfb + woff[t], run, ma + m * 4)
            # cl_kernel adds its partial sum to a zero total: -0 sums become +0
            acc = vtadd(vtzero(out, tile), acc)
            for i in range(RB):
                pp[i] = po[i] + ow if po[i] >= 0 else -1
            vtstore_stream(out, tile, pp, acc, nj, stream)
            ow += nj
    sfence(stream)
