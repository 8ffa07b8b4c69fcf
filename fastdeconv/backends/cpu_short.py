"""Channels-last forward convolutions with short reductions: a video
network's first layer (7 x 224^2 x 3 -> 64, 1 x 3 x 3), a 3-D network's
first layers, few-channel 2-D stems. Taken where a whole reduction is one
of cl_kernel's partial sums (cpu.py's SHORT rule).

cl_kernel's register tile and its vrun, on a plainer loop: a tile is (a
run of) one output line (b, od, oh), its blocks consecutive output columns.
For such a block the row addresses are one base plus a column step, the
(kd, kh) taps inside the input are listed once per line, and each is one
vrun of KW * C steps (the (kw, c) inputs of a row are contiguous when
dw == 1), for each block of output channels in turn. cl_kernel spends as
long outside its FMA loop as in it when a reduction is 27 steps long
(section 102 of benchmarks/NOTES.md): its row spaces, folded lines, tap
tables and two-level sums serve every op and layout. Blocks whose rows
reach past the W edges run one vrun per kw, with the row of zeros for the
columns outside, as cl_kernel's do.

Term order: for each (kd, kh) inside the input, for each kw, for each input
channel, one FMA from zero, then added to a zero total: cl_kernel's order
for a single partial sum (KD * KH * KW * C <= SUM_GROUP_TERMS), so the same
bits.
"""

from .._jit import serial_kernel
from .cpu_rb import SUM_GROUP_TERMS
from .cpu_simd import addr, itemsize, scratch, tile_dims, vrun, vtadd, vtaffine, vtstore, vtzero

ROWS_BYTES = 3 * 16 * 8  # three int64 arrays of a tile's rows (Tile.MAX_ROWS)
# (kd, kh) pairs: as many as terms where KW * C == 1 (a 16 x 16 x 1 kernel
# on one channel has 256)
MAX_TAP_ROWS = SUM_GROUP_TERMS
TAPS_BYTES = 2 * MAX_TAP_ROWS * 8


def n_tiles(geo):
    """Tiles of short_cl: output lines, each in runs of `cols` columns."""
    B, OD, OH, OW, cols = geo[0], geo[5], geo[6], geo[7], geo[-1]
    return B * OD * OH * (-(-OW // cols))


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
def short_cl(x, wp, out, zrow, geo, tile, epi, ep_code, t_begin, t_end):
    """Tiles [t_begin, t_end) (`n_tiles`). x: (B, D, H, W, C) flat; wp:
    cl_kernel's packed filters (NFB, taps, C, NW*V) flat; out: flat, output
    pixel p's channels at p * ops (ops >= F: a channel slice of a wider
    array); zrow: >= C * KW zeros; geo: (B, D, H, W, C, OD, OH, OW, F, KD,
    KH, KW, sd, sh, sw, dd, dh, pd, ph, pw, NFB, ops, cols); epi, ep_code:
    cl_kernel's epilogue."""
    (B, D, H, W, C, OD, OH, OW, F, KD, KH, KW, sd, sh, sw, dd, dh, pd, ph, pw, NFB, ops, cols) = geo
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
    woff = tsc[MAX_TAP_ROWS:2 * MAX_TAP_ROWS]  # ... and filter offsets
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
                n += 1
        ow = part * cols
        ow1 = ow + cols if ow + cols < OW else OW
        obase = ((b * OD + od) * OH + oh) * OW
        while ow < ow1:
            nr = RB if RB < ow1 - ow else ow1 - ow
            first = ow * sw - pw  # row 0's input column for kw = 0
            inside = first >= 0 and (ow + nr - 1) * sw - pw + KW <= W
            for i in range(RB):
                # rows past nr repeat the last one (read, never stored)
                rp[i] = xa + (first + (i if i < nr else nr - 1) * sw) * C * isz
                po[i] = (obase + ow + i) * ops if i < nr else -1
            for fb in range(NFB):
                wfb = wa + fb * panel
                acc = vtzero(out, tile)
                if inside:
                    for t in range(n):
                        acc = vrun(out, acc, tile, rp, xoff[t], wfb + woff[t], run, nr)
                else:
                    for t in range(n):
                        for kw in range(KW):
                            any_ = False
                            for i in range(RB):
                                iw = first + i * sw + kw
                                if i < nr and 0 <= iw < W:
                                    pp[i] = rp[i] + xoff[t] + kw * C * isz
                                    any_ = True
                                else:
                                    pp[i] = za
                            if any_:
                                acc = vrun(out, acc, tile, pp, 0, wfb + woff[t] + kw * C * NV * isz, C, nr)
                # cl_kernel adds its partial sum to a zero total: -0 sums become +0
                acc = vtadd(vtzero(out, tile), acc)
                if ep_code > 0:
                    ne = len(epi) // 3
                    pe = addr(epi) + fb * NV * isz
                    acc = vtaffine(out, acc, tile, pe, pe + ne * isz, pe + 2 * ne * isz, ep_code == 2)
                f0 = fb * NV
                for i in range(RB):
                    pp[i] = po[i] + f0 if i < nr else -1
                vtstore(out, tile, pp, acc, NV if NV < F - f0 else F - f0)
            ow += nr
