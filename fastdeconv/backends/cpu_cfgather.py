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
- the row's runs are packed once (`xin`, for a band of rows): one row of
  output columns per term (D tap, H tap, W slot, input channel), holding
  the input each column's tap reads, zero where that falls outside the
  input;
- each block of FR output channels and NW vectors of columns is one
  `vrun_lanes` over the terms, with weight vectors packed per class and
  lane (`pack_weights`), and its rows are stored straight into the output
  planes: no interleaving and no per-tap set-up. A block of channels runs
  on every row of its band in turn.

Order of the terms of every output: (kd, kh, kw, input channel) ascending
over the taps that reach it, one FMA chain from zero; zero terms (taps
outside the input, missing slots) leave the chain's value as it is (+0
stays +0). That is the channels-last kernels' order with one partial sum
(cpu.py takes this path only then), so the same bits as the channels-last
call.
"""

import numpy as np

from .._jit import serial_kernel
from .cpu_simd import Tile, addr, itemsize, scratch, tile_dims, tile_rows, vrun_lanes, vtstore, vtzero


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


def plan(KD, KH, KW, sd, sh, sw, dd, dh, dw, C):
    """(dt, ht, wt, terms): the kernel's tap tables (`class_taps`) along D
    and H (per class of output rows) and W (per phase: the taps of its
    slots), and the terms of an output row of each (D class, H class), in
    C order."""
    dt, ht, wt = class_taps(KD, sd, dd), class_taps(KH, sh, dh), class_taps(KW, sw, dw)
    nkd = (dt >= 0).sum(axis=1)
    nkh = (ht >= 0).sum(axis=1)
    terms = np.outer(nkd, nkh).reshape(-1) * wt.shape[1] * C
    return dt, ht, wt, terms


def pack_weights(wg, dtype, tile, strides, dilations, pw):
    """wg (1, KD, KH, KW, C, F) -> (packed, offsets): for each (D class, H
    class) in turn, (NFB, T, FR, V) weight vectors: term t = (D tap, H tap,
    W slot, input channel) of the class, row r = output channel fb * FR +
    r, lane l the weight of the W phase (l + pw) % sw's tap in that slot
    (zero for a missing slot or channel). offsets: each class's first
    element."""
    _, KD, KH, KW, C, F = wg.shape
    (sd, sh, sw), (dd, dh, dw) = strides, dilations
    FR = tile.rows
    V = tile.lanes(np.dtype(dtype).itemsize)
    NFB = -(-F // FR)
    dt, ht, wt, _ = plan(KD, KH, KW, sd, sh, sw, dd, dh, dw, C)
    NKW = wt.shape[1]
    wz = np.zeros((KD, KH, KW + 1, C, NFB * FR), dtype=dtype)
    wz[:, :, :KW, :, :F] = wg[0]
    # kw index of slot s in lane l (KW: the zero tap)
    kwl = wt[(np.arange(V) + pw) % sw].T  # (NKW, V)
    kwl = np.where(kwl < 0, KW, kwl)
    parts, offsets, n = [], [], 0
    for cd in range(sd):
        kds = dt[cd][dt[cd] >= 0]
        for ch in range(sh):
            khs = ht[ch][ht[ch] >= 0]
            sub = wz[kds][:, khs][:, :, kwl]  # (nkd, nkh, NKW, V, C, NFB * FR)
            sub = sub.reshape(len(kds), len(khs), NKW, V, C, NFB, FR).transpose(5, 0, 1, 2, 4, 6, 3)
            parts.append(np.ascontiguousarray(sub).reshape(-1))
            offsets.append(n)
            n += parts[-1].size
    packed = np.concatenate(parts) if n else np.zeros(1, dtype=dtype)
    return packed, np.array(offsets, dtype=np.int64)


@serial_kernel
def cfgather_kernel(x, wp, out, dt, ht, wt, woff, geo, tile, xin, t_begin, t_end):
    """Tiles [t_begin, t_end): tile t is band t // NFB of BR output rows
    ((b, od, oh) in C order) and its block t % NFB of FR output channels.
    x (B, C, D, H, W), out (B, F, OD, OH, OW): C-contiguous, flat. dt, ht,
    wt, woff: `plan`'s tables and `pack_weights`' offsets; xin: BR * T_max
    * OWP elements for the packed runs of a band's rows (OWP: OW rounded up
    to whole tiles' columns), each row's at T_max * OWP from the last."""
    (B, C, D, H, W, F, OD, OH, OW, sd, sh, sw, dd, dh, dw, pd, ph, pw, NFB, OWP, BR, TM) = geo
    FR, NW, V = tile_dims(tile, out)
    NJ = NW * V
    isz = itemsize(out)
    NKD = dt.shape[1]
    NKH = ht.shape[1]
    NKW = wt.shape[1]
    plane = OD * OH * OW
    rows = B * OD * OH
    so = scratch(0, 16 * 8)  # per-row store offsets
    packed = -1
    for t in range(t_begin, t_end):
        fb = t % NFB
        band = t // NFB
        r0 = band * BR
        r1 = min(rows, r0 + BR)
        if band != packed:
            packed = band
            for row in range(r0, r1):
                oh = row % OH
                od = row // OH % OD
                b = row // (OH * OD)
                cd = (od + pd) % sd
                ch = (oh + ph) % sh
                T = (row - r0) * TM
                for ikd in range(NKD):
                    kd = dt[cd, ikd]
                    if kd < 0:
                        break
                    i_d = (od + pd - kd * dd) // sd
                    for ikh in range(NKH):
                        kh = ht[ch, ikh]
                        if kh < 0:
                            break
                        i_h = (oh + ph - kh * dh) // sh
                        inside = (i_d >= 0) & (i_d < D) & (i_h >= 0) & (i_h < H)
                        for s in range(NKW):
                            for c in range(C):
                                dst = T * OWP
                                T += 1
                                src = (((b * C + c) * D + i_d) * H + i_h) * W
                                for q in range(sw):
                                    # columns ow0 + m * sw read input column iw0 + m:
                                    # zeros, the inputs [m0, m1), zeros
                                    kw = wt[q, s]
                                    ow0 = (q - pw) % sw
                                    n = (OWP - ow0 + sw - 1) // sw
                                    iw0 = (ow0 + pw - kw * dw) // sw
                                    m0 = min(n, max(0, -iw0))
                                    m1 = max(m0, min(n, W - iw0))
                                    if (kw < 0) | (not inside):
                                        m0 = n
                                        m1 = n
                                    for m in range(m0):
                                        xin[dst + ow0 + m * sw] = 0
                                    for m in range(m0, m1):
                                        xin[dst + ow0 + m * sw] = x[src + iw0 + m]
                                    for m in range(m1, n):
                                        xin[dst + ow0 + m * sw] = 0
        f0 = fb * FR
        nf = min(FR, F - f0)
        for row in range(r0, r1):
            oh = row % OH
            od = row // OH % OD
            b = row // (OH * OD)
            cd = (od + pd) % sd
            ch = (oh + ph) % sh
            T = 0
            for ikd in range(NKD):
                T += dt[cd, ikd] >= 0
            nh = 0
            for ikh in range(NKH):
                nh += ht[ch, ikh] >= 0
            T *= nh * NKW * C
            wq = addr(wp) + (woff[cd * sh + ch] + fb * T * FR * V) * isz
            ob = (b * F + f0) * plane + (od * OH + oh) * OW
            xr = addr(xin) + (row - r0) * TM * OWP * isz
            for j0 in range(0, OW, NJ):
                acc = vtzero(out, tile)
                acc = vrun_lanes(out, acc, tile, xr + j0 * isz, OWP * isz, V * isz, wq, T)
                for i in range(FR):
                    so[i] = ob + i * plane + j0 if i < nf else -1
                vtstore(out, tile, so, acc, OW - j0)
