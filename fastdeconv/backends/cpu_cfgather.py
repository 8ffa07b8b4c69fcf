"""Channels-first strided transposes with few input channels (NCHW 3 x 64^2
-> 256 x 128^2 k3 s2): each output row's taps gathered into runs whose
vector lanes are consecutive output columns.

The vectors-along-W kernel (cpu_rb.wv_kernel) gives each W phase of a
strided transpose its own lanes: with 1-16 input channels its runs are 1-16
steps per tap, and the per-tap and per-tile set-up and the two phases'
interleaved stores cost several times the multiply-adds (2.3x the
channels-last time on the call above). Here, per output row (b, od, oh):

- its D and H taps are those of its class ((od + pd) % sd, (oh + ph) % sh:
  tap k reaches output o when (o + p - k * d) / s is a whole number);
- lane l of a vector of output columns starting at a multiple of V has the
  W phase (l + pw) % sw (V a multiple of sw), whose taps are its slots s =
  0, 1, ... (kw ascending; fewer in some phases: a zero weight and a zero
  input there);
- each input row is expanded once (`expand_rows`) into runs of output
  columns, one per (W slot, input channel), holding the input each
  column's tap in that slot reads, zero where that falls outside the
  input; an output row's (D tap, H tap) reads its input row's runs;
- each block of FR output channels and NW vectors of columns is one
  `vrun_lanes` over the terms, with weight vectors packed per class and
  lane (`pack_weights`), and its rows are stored straight into the output
  planes: no interleaving, and set-up per (D tap, H tap) only.

Order of the terms of every output: (kd, kh, kw, input channel) ascending
over the taps that reach it, one FMA chain from zero; zero terms (taps
outside the input, missing slots) leave the chain's value as it is (+0
stays +0). That is the channels-last kernels' order with one partial sum
(cpu.py takes this path only then), so the same bits as the channels-last
call.
"""

import functools

import numpy as np

from .._jit import serial_kernel
from .cpu_rb import SUM_GROUP_TERMS, _max, _min
from .cpu_simd import Tile, addr, itemsize, scratch, sfence, tile_dims, vrun_lanes, vtstore_stream, vtzero, vzip2


def tile_for():
    """The register tile: FR output channels x 2 vectors of columns
    (AVX-512 8 x 2; AVX2 6 x 2), each step FR weight vectors and 2 input
    vectors for 2 FR multiply-adds."""
    return Tile(8, 2)


def class_taps(K, s, d):
    """Per class r in [0, s): the taps k (ascending) with k * d % s == r,
    as an (s, N) table padded with -1 (N: the most any class has, at
    least 1)."""
    lists = [[k for k in range(K) if k * d % s == r] for r in range(s)]
    n = max(1, max(len(t) for t in lists))
    tab = np.full((s, n), -1, dtype=np.int64)
    for r, t in enumerate(lists):
        tab[r, :len(t)] = t
    return tab


@functools.lru_cache(maxsize=256)
def plan(KD, KH, KW, sd, sh, sw, dd, dh, dw):
    """(dt, ht, wt), read-only: the kernel's tap tables (`class_taps`)
    along D and H (per class of output rows) and W (per phase: the taps of
    its slots). Computed once per geometry."""
    dt, ht, wt = class_taps(KD, sd, dd), class_taps(KH, sh, dh), class_taps(KW, sw, dw)
    for a in (dt, ht, wt):
        a.setflags(write=False)
    return dt, ht, wt


def pack_weights(wg, dtype, tile, strides, dilations, pw):
    """wg (1, KD, KH, KW, C, F) -> (packed, offsets): for each (D class, H
    class) in turn, (NFB, T, FR, sw) weights: term t = (D tap, H tap, W
    slot, input channel) of the class, row r = output channel fb * FR + r,
    element e the weight of the W phase (e + pw) % sw's tap in that slot
    (zero for a missing slot or channel), which `vrun_lanes` gives lanes e,
    e + sw, ... offsets: each class's first element."""
    _, KD, KH, KW, C, F = wg.shape
    (sd, sh, sw), (dd, dh, dw) = strides, dilations
    FR = tile.rows
    NFB = -(-F // FR)
    dt, ht, wt = plan(KD, KH, KW, sd, sh, sw, dd, dh, dw)
    NKW = wt.shape[1]
    wz = np.zeros((KD, KH, KW + 1, C, NFB * FR), dtype=dtype)
    wz[:, :, :KW, :, :F] = wg[0]
    # kw index of slot s for element e (KW: the zero tap)
    kwe = wt[(np.arange(sw) + pw) % sw].T  # (NKW, sw)
    kwe = np.where(kwe < 0, KW, kwe)
    parts, offsets, n = [], [], 0
    for cd in range(sd):
        kds = dt[cd][dt[cd] >= 0]
        for ch in range(sh):
            khs = ht[ch][ht[ch] >= 0]
            sub = wz[kds][:, khs][:, :, kwe]  # (nkd, nkh, NKW, sw, C, NFB * FR)
            sub = sub.reshape(len(kds), len(khs), NKW, sw, C, NFB, FR).transpose(5, 0, 1, 2, 4, 6, 3)
            parts.append(np.ascontiguousarray(sub).reshape(-1))
            offsets.append(n)
            n += parts[-1].size
    packed = np.concatenate(parts) if n else np.zeros(1, dtype=dtype)
    return packed, np.array(offsets, dtype=np.int64)


@serial_kernel
def expand_rows(x, wt, geo, E, tile, t_begin, t_end):
    """Input rows [t_begin, t_end) ((b, i_d, i_h) in C order) of x (B, C,
    D, H, W), C-contiguous, flat, expanded into E: per row, NKW x C runs of
    OWP output columns (slot s, input channel c), column ow holding the
    input that the tap of slot s of its W phase (wt) reads, zero where that
    falls outside the input or the phase has no such slot. With W stride 2
    and both phases' taps, the columns where both read inside the input are
    interleaved V pairs at a time (`vzip2`)."""
    (B, C, D, H, W, F, OD, OH, OW, sd, sh, sw, dd, dh, dw, pd, ph, pw, NFB, OWP, NKW, BR) = geo
    isz = itemsize(E)
    ea = addr(E)
    xa = addr(x)
    qe = pw % sw  # the W phase of column 0
    for r in range(t_begin, t_end):
        bd = r // H  # b * D + i_d
        src0 = ((bd // D * C * D + bd % D) * H + r % H) * W  # channel 0's row
        for s in range(NKW):
            for c in range(C):
                src = src0 + c * D * H * W
                dst = ((r * NKW + s) * C + c) * OWP
                ke = wt[qe, s]
                ko = wt[(qe + 1) % sw, s]
                if (sw == 2) & (ke >= 0) & (ko >= 0):
                    # columns 2 m and 2 m + 1 read input columns ie + m and io + m
                    n = OWP // 2
                    ie = (pw - ke * dw) // 2
                    io = (1 + pw - ko * dw) // 2
                    e0 = _min(n, _max(0, -ie))
                    e1 = _max(e0, _min(n, W - ie))
                    o0 = _min(n, _max(0, -io))
                    o1 = _max(o0, _min(n, W - io))
                    m0 = _max(e0, o0)
                    m1 = _max(m0, _min(e1, o1))
                    vzip2(E, tile, ea + (dst + 2 * m0) * isz, xa + (src + ie + m0) * isz,
                          xa + (src + io + m0) * isz, m1 - m0)
                    # the columns before and after: one phase inside, or neither
                    for k in range(n - (m1 - m0)):
                        m = k if k < m0 else k + m1 - m0
                        E[dst + 2 * m] = x[src + ie + m] if (m >= e0) & (m < e1) else 0
                        E[dst + 2 * m + 1] = x[src + io + m] if (m >= o0) & (m < o1) else 0
                    continue
                for q in range(sw):
                    # columns ow0 + m * sw read input column iw0 + m:
                    # zeros, the inputs [m0, m1), zeros
                    kw = wt[q, s]
                    ow0 = (q - pw) % sw
                    n = (OWP - ow0 + sw - 1) // sw
                    iw0 = (ow0 + pw - kw * dw) // sw
                    m0 = _min(n, _max(0, -iw0))
                    m1 = _max(m0, _min(n, W - iw0))
                    if kw < 0:
                        m0 = n
                        m1 = n
                    for m in range(m0):
                        E[dst + ow0 + m * sw] = 0
                    for m in range(m0, m1):
                        E[dst + ow0 + m * sw] = x[src + iw0 + m]
                    for m in range(m1, n):
                        E[dst + ow0 + m * sw] = 0


# a row's taps: at most KD * KH (cpu.py takes this kernel for at most
# cpu_rb.SUM_GROUP_TERMS terms per output), 2 int64 each
_TAPS_BYTES = 2 * SUM_GROUP_TERMS * 8


@serial_kernel
def cfgather_kernel(E, wp, out, dt, ht, woff, geo, tile, period, stream, t_begin, t_end):
    """Tiles [t_begin, t_end): tile t is block t % NFB of FR output
    channels on band t // NFB of BR output rows ((b, od, oh) in C order;
    the last band may have fewer), row after row. E: the input
    rows expanded (`expand_rows`); out (B, F, OD, OH, OW), C-contiguous,
    flat; dt, ht, woff: `plan`'s tables and `pack_weights`' offsets;
    period: sw items (`vrun_lanes`). Each (D tap, H tap) of the row's class
    runs its NKW x C terms from its input row's runs; a tap whose input
    row does not exist adds zero terms: skipped, and its weights."""
    (B, C, D, H, W, F, OD, OH, OW, sd, sh, sw, dd, dh, dw, pd, ph, pw, NFB, OWP, NKW, BR) = geo
    FR, NW, V = tile_dims(tile, out)
    NJ = NW * V
    isz = itemsize(out)
    NKD = dt.shape[1]
    NKH = ht.shape[1]
    KS = NKW * C  # terms per (D tap, H tap)
    run_bytes = KS * OWP * isz  # an input row's runs
    tap_bytes = KS * FR * sw * isz  # a tap's weights in a block
    plane = OD * OH * OW
    ea = addr(E)
    so = scratch(0, 16 * 8)  # per-row store offsets
    taps = scratch(0, _TAPS_BYTES)  # a row's taps, 2 values each
    rows = B * OD * OH
    for t in range(t_begin * BR, t_end * BR):
        band = t // (BR * NFB)
        fb = t // BR % NFB
        row = band * BR + t % BR
        if row >= rows:
            continue
        oh = row % OH
        od = row // OH % OD
        b = row // (OH * OD)
        cd = (od + pd) % sd
        ch = (oh + ph) % sh
        nkd = 0
        for ikd in range(NKD):
            nkd += dt[cd, ikd] >= 0
        nkh = 0
        for ikh in range(NKH):
            nkh += ht[ch, ikh] >= 0
        w0 = addr(wp) + woff[cd * sh + ch] * isz + fb * nkd * nkh * tap_bytes
        f0 = fb * FR
        nf = _min(FR, F - f0)
        ob = (b * F + f0) * plane + (od * OH + oh) * OW
        # the row's taps that read the input, once for all its tiles of
        # columns (per tile, their integer divisions took about as long as
        # the tile's multiply-adds): each one's input row in E and weights
        ntap = 0
        wq = w0
        for ikd in range(nkd):
            i_d = (od + pd - dt[cd, ikd] * dd) // sd
            for ikh in range(nkh):
                i_h = (oh + ph - ht[ch, ikh] * dh) // sh
                if (i_d >= 0) & (i_d < D) & (i_h >= 0) & (i_h < H):
                    taps[2 * ntap] = ea + ((b * D + i_d) * H + i_h) * run_bytes
                    taps[2 * ntap + 1] = wq
                    ntap += 1
                wq += tap_bytes
        for j0 in range(0, OW, NJ):
            acc = vtzero(out, tile)
            for q in range(ntap):
                acc = vrun_lanes(out, acc, tile, taps[2 * q] + j0 * isz, OWP * isz, V * isz, 0, 0, taps[2 * q + 1],
                                 KS, period)
            for i in range(FR):
                so[i] = ob + i * plane + j0 if i < nf else -1
            vtstore_stream(out, tile, so, acc, OW - j0, stream)
    sfence(stream)
