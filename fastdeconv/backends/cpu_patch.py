"""Transposed convolutions whose stride equals the kernel in every
dimension (the 2x2x2 stride-2 upsampling of a U-Net decoder), with no
padding and the output exactly stride x input: each input pixel writes its
own KD x KH x KW patch of the output, and each output receives exactly one
tap, so the op is one small GEMM per tap (input pixels x input channels
times the tap's filter slice) written into the interleaved positions.

Why not cpu_rb.cl_kernel: it tiles the outputs, so a block of its register
tile gets one tap, a run of Cg steps (64 for the U-Net's 64 -> 32), while
its block set-up (row pointers, the tap loops' checks, stores) is sized for
blocks of many taps: for the 16^3 x 64 -> 32^3 x 32 upsampling on one
thread 38 % of the kernel's time sat outside the FMA loop (perf samples,
benchmarks/NOTES.md section 51). Here a block is RB consecutive input
pixels (contiguous rows of the input, across line ends), set up once, and
every tap and output-channel block runs on it: one vrun each, then one
store of RB x NW vectors at fixed strides.

Channels-first (`patch_cf`): the same with cpu_rb.wv_kernel's roles, a
register tile of FR output channels x 2 vectors of input pixels along W,
every tap run on it; the inputs first copied into contiguous chunks (plain
loads, no masks); with KW = 2 the two W taps interleaved in registers and
stored whole (vtstore_zip2); large results in passes over a few output
channels at a time (`cf_plan`).

Term order: each output is one chain of FMAs over the input channels in
order, from zero, then added to zero: cl_kernel's and wv_kernel's order
for these shapes (one (kd, kh) group), so the same bits.
"""

import math

import numpy as np

from .._jit import allocating_kernel, serial_kernel
from .cpu_rb import RB_MAX, WV_BUF_BYTES, WV_OFFS_BYTES, _cdiv, wv_blocks, wv_tile
from .cpu_simd import (PART_ROWS, Tile, addr, itemsize, scratch, sfence, tile_dims, tile_part_rows, vcopy2,
                       vrun, vrun_cols_part, vrun_cols_whole, vtadd, vtaffine, vtstore, vtstore_stream, vtstore_zip2,
                       vtzero)

ROWS = 48  # input pixels per parallel tile (at most)
SCRATCH_BYTES = 3 * RB_MAX * 8  # three int64 values per row
CF_LINES = 8  # input lines per patch_cf tile (large results, cf_plan)
CF_PASS_CHANNELS = 4  # output channels per pass over a patch_cf tile (at least one block)
CF_PASS_MIN_BYTES = 8 << 20  # results from this size on: passes (cf_plan)


def n_tiles(pixels):
    """patch_cl's tiles for `pixels` input pixels."""
    return -(-pixels // ROWS)


def cf_tile(channels):
    """(tile, blocks): patch_cf's register tile, FR output channels x 2
    vectors, and its output-channel blocks (full, part): wv_kernel's
    (cpu_rb.wv_tile, cpu_rb.wv_blocks: the 6 x 2 AVX2 tile with its last
    one or two blocks of up to PART_ROWS channels on the 4-row loop, 32
    channels as 6 x 4 + 4 + 4, or 4 x 2 where that pads less); 1 x 2 for
    one channel."""
    if channels == 1:
        return Tile(1, 2), (1, 0)
    tile = wv_tile(channels)
    return tile, wv_blocks(channels, tile)


def cf_flat(W, KW, lanes):
    """Whether patch_cf runs its tile's lines as one run of positions, in
    chunks of 2 vectors across line ends (its `flat`): two W phases, lines
    of a multiple of half a vector (each half vector's outputs in one
    line) that are not a whole number of chunks (which would leave lanes
    of every line's last chunk empty)."""
    return KW == 2 and W % (2 * lanes) != 0 and W % (lanes // 2) == 0


def cf_plan(out_bytes, NFB, FR, W=1, flat=False, lanes=1):
    """patch_cf's (input lines per tile, channel blocks per pass). A result
    that stays in the caches: one line per tile, every channel in one pass
    (the chunk stays in L1 for all of them); with `flat` (cf_flat), the
    fewest lines that fill whole chunks of 2 vectors of `lanes`
    positions. A larger one: CF_LINES lines
    and passes of CF_PASS_CHANNELS channels, each writing a few output
    planes over several lines, where one pass writes 128 bytes to each of
    the F planes in turn (as a store pattern alone, 32 planes of 64^3 on
    one thread: 6.5 ms, passes of 4-8 channels 3.5 ms, sequential 2 ms;
    in the kernel 4 channels per pass ran 3-6 % faster than 8;
    benchmarks/NOTES.md section 51)."""
    if out_bytes < CF_PASS_MIN_BYTES:
        return (2 * lanes // math.gcd(W, 2 * lanes) if flat else 1), NFB
    return CF_LINES, max(1, CF_PASS_CHANNELS // FR)


def n_tiles_cf(geo):
    """patch_cf's tiles: (b, id, block of input lines)."""
    B, D, H, LINES = geo[0], geo[1], geo[2], geo[10]
    return B * D * -(-H // LINES)


@serial_kernel
def patch_cl(x, wp, out, geo, tile, epi, ep_code, stream, t_begin, t_end):
    """Tiles [t_begin, t_end) of ROWS input pixels. x: (B, D, H, W, C)
    flat; wp: (NFB, taps, C, NW*V) flat (cpu_rb.pack_filters, output
    channels zero-padded); out: (B, D*KD, H*KH, W*KW, ops) flat, the F
    channels first in each pixel (ops >= F: a channel slice of a wider
    array); epi, ep_code: as in cpu_rb.cl_kernel; stream: as in
    cpu_short.short_cl."""
    (B, D, H, W, C, F, KD, KH, KW, NFB, ops) = geo
    isz = itemsize(out)
    RB, NW, V = tile_dims(tile, out)
    PART = tile_part_rows(tile)
    NV = NW * V
    OD = D * KD
    OH = H * KH
    OW = W * KW
    taps = KD * KH * KW
    N = B * D * H * W
    xa = addr(x)
    wa = addr(wp)
    rows = scratch(0, SCRATCH_BYTES)  # per-row int64 work space, three views
    rp = rows[0:RB]
    base = rows[RB:2 * RB]
    o = rows[2 * RB:3 * RB]
    for ti in range(t_begin, t_end):
        p1 = (ti + 1) * ROWS
        if p1 > N:
            p1 = N
        pb = ti * ROWS
        while pb < p1:
            nr = RB if RB < p1 - pb else p1 - pb
            if RB < p1 - pb <= 2 * PART:
                nr = PART  # two part blocks (cl_kernel's rule)
            # rows: input pixels pb, pb + 1, ... (contiguous, across lines);
            # base: a row's output pixel for tap (0, 0, 0). Rows past nr
            # repeat row nr - 1 and are not stored.
            iw = pb % W
            r = pb // W
            ih = r % H
            r = r // H
            i_d = r % D
            b = r // D
            for i in range(RB):
                if 0 < i < nr:
                    iw += 1
                    if iw == W:
                        iw = 0
                        ih += 1
                        if ih == H:
                            ih = 0
                            i_d += 1
                            if i_d == D:
                                i_d = 0
                                b += 1
                rp[i] = xa + (pb + (i if i < nr else nr - 1)) * C * isz
                base[i] = ((b * OD + i_d * KD) * OH + ih * KH) * OW + iw * KW
            for kd in range(KD):
                for kh in range(KH):
                    for kw in range(KW):
                        t = (kd * KH + kh) * KW + kw
                        dt = (kd * OH + kh) * OW + kw
                        for fb in range(NFB):
                            f0 = fb * NV
                            nf = NV if NV < F - f0 else F - f0
                            acc = vrun(out, vtzero(out, tile), tile, rp, 0, wa + (fb * taps + t) * C * NV * isz,
                                       C, nr)
                            acc = vtadd(vtzero(out, tile), acc)
                            if ep_code > 0:
                                ne = len(epi) // 3
                                pe = addr(epi) + f0 * isz
                                acc = vtaffine(out, acc, tile, pe, pe + ne * isz, pe + 2 * ne * isz, ep_code == 2)
                            for i in range(RB):
                                o[i] = (base[i] + dt) * ops + f0 if i < nr else -1
                            vtstore_stream(out, tile, o, acc, nf, stream)
            pb += nr
    sfence(stream)



@allocating_kernel
def patch_cf(x, wp, out, geo, tile, stream, t_begin, t_end):
    """Tiles [t_begin, t_end), each (b, id, a block of up to LINES input
    lines). x: (B, C, D, H, W) flat; wp: (NFB, taps, C, FR) flat
    (cpu_rb.pack_filters_wv: NFULL blocks of FR channels, then blocks of
    up to PART_ROWS, on the 4-row loop); out: (B, F, D*KD, H*KH, W*KW)
    flat.

    The tile's inputs are first copied together, in chunks of NJ = 2
    vectors along W, lanes past the line's end zero: read in place, a
    chunk's channels are a plane apart (a multiple of 4 KB for the usual
    sizes), all in the same cache sets. Then passes of per_pass output
    channel blocks run over the block, every tap on every chunk (cf_plan).
    flat (geo's last, cf_flat): 1 to copy and run the block's lines as one
    run of positions, in chunks across line ends. stream: True to store the whole rows of KW = 1 and KW = 2 tiles with
    streaming stores (cpu._streams: output lines and chunks a whole number
    of vectors long), else None."""
    (B, D, H, W, C, F, KD, KH, KW, NFB, LINES, per_pass, NFULL, flat) = geo
    isz = itemsize(out)
    FR, _, V = tile_dims(tile, out)
    NJ = 2 * V
    OD = D * KD
    OH = H * KH
    OW = W * KW
    plane = OD * OH * OW  # an output channel's elements
    taps = KD * KH * KW
    nwc = _cdiv(W, NJ)
    nhb = _cdiv(H, LINES)
    xa = addr(x)
    wa = addr(wp)
    cstep = D * H * W * isz  # between input channels
    # the block's chunks: line l, chunk wc, channel c's lanes at ((l*nwc + wc)*C + c)*NJ
    xin = np.empty(LINES * nwc * C * NJ, dtype=out.dtype)
    pa = addr(xin)
    buf = scratch(out, WV_BUF_BYTES)  # the tile of W tap 0, or of a strided store
    so = scratch(0, WV_OFFS_BYTES)  # per-row store offsets
    vo = scratch(0, 32)  # the offsets of a row's four interleaved vectors
    for ti in range(t_begin, t_end):
        hb = ti % nhb
        r = ti // nhb
        i_d = r % D
        b = r // D
        ih0 = hb * LINES
        nh = LINES if LINES < H - ih0 else H - ih0
        # flat: the block's lines as one run of nh * W positions, in chunks
        # across line ends; else each line in chunks of its own
        nlb = 1 if flat else nh
        nch = _cdiv(nh * W, NJ) if flat else nwc
        run = nh * W if flat else W
        for c in range(C):
            src = xa + (b * C * D * H * W + (i_d * H + ih0) * W) * isz + c * cstep
            for lb in range(nlb):
                for wc in range(nch):
                    j0 = wc * NJ
                    nj = NJ if NJ < run - j0 else run - j0
                    vcopy2(out, tile, pa + ((lb * nch + wc) * C + c) * NJ * isz, src + (lb * W + j0) * isz, nj, 1)
        for g0 in range(0, NFB, per_pass):
            for lb in range(nlb):
                ih = ih0 + lb
                for wc in range(nch):
                    j0 = wc * NJ
                    nj = NJ if NJ < run - j0 else run - j0
                    zip2 = KW == 2
                    pc = pa + (lb * nch + wc) * C * NJ * isz
                    # where the four interleaved vectors of a row go: one
                    # after the other from 2 * j0 in the line, or (flat)
                    # each half vector's outputs at their line's place (W a
                    # multiple of V / 2: one line's positions each)
                    jo = 0 if flat else 2 * j0
                    for e in range(4):
                        q = j0 + e * (V // 2)
                        vo[e] = (q // W) * KH * OW + (q % W) * 2 if flat else e * V
                    for fb in range(g0, g0 + per_pass if g0 + per_pass < NFB else NFB):
                        part = fb >= NFULL
                        f0 = fb * FR if not part else NFULL * FR + (fb - NFULL) * PART_ROWS
                        nf = FR if not part else PART_ROWS
                        nf = nf if nf < F - f0 else F - f0
                        for kd in range(KD):
                            for kh in range(KH):
                                line = (b * F + f0) * plane + ((i_d * KD + kd) * OH + ih * KH + kh) * OW
                                for kw in range(KW):
                                    t = (kd * KH + kh) * KW + kw
                                    if part:
                                        acc = vrun_cols_part(out, vtzero(out, tile), tile, pc, NJ * isz, V * isz, 0,
                                                             NJ, wa + (fb * taps + t) * C * FR * isz, C)
                                    else:
                                        acc = vrun_cols_whole(out, vtzero(out, tile), tile, pc, NJ * isz, V * isz, 0,
                                                              NJ, wa + (fb * taps + t) * C * FR * isz, C)
                                    acc = vtadd(vtzero(out, tile), acc)
                                    # wv_kernel's four ways to store this tile; an inlined shared
                                    # helper cost both kernels 0.1-0.15 s of cold compile
                                    if KW == 1:
                                        for i in range(FR):
                                            so[i] = line + i * plane + j0 if i < nf else -1
                                        vtstore_stream(out, tile, so, acc, nj, stream)
                                    elif zip2 and kw == 0:
                                        for i in range(FR):
                                            so[i] = i * NJ
                                        vtstore(buf, tile, so, acc, NJ)
                                    elif zip2:
                                        for i in range(FR):
                                            so[i] = line + i * plane + jo if i < nf else -1
                                        vtstore_zip2(out, tile, so, buf, acc, 2 * nj, stream, vo)
                                    else:
                                        for i in range(FR):
                                            so[i] = i * NJ
                                        vtstore(buf, tile, so, acc, NJ)
                                        for i in range(nf):
                                            o = line + i * plane + j0 * KW + kw
                                            for lane in range(nj):
                                                out[o + lane * KW] = buf[i * NJ + lane]
    sfence(stream)
