"""Channels-first forward convolutions and transposes on channels-last
tiles: bands of input rows packed channels-last (CF_BANDS in cpu.py). A
transpose's output o takes tap k from input (o + p - k * d) / s where that
is a whole number, so a block's positions share their phase along H and W
((o + p) mod s, which decides their taps), with a run per W tap as
cl_kernel's transposes have.

The vectors-along-W kernel (cpu_rb.wv_kernel) fills its vector lanes with
output columns, so rows of 7 or 14 columns leave lanes empty, W-edge taps
multiply padding in every lane, and strided rows need sub-rows or
gathers; channel-heavy layers then ran 1.13-1.30x their channels-last
time. Here a thread copies the input rows that a band of BH output rows
reads (every input channel, zeros for the padding) into a channels-last
array, V x V blocks transposed in registers (cpu_simd.vtranspose_block),
and runs cl_kernel's register tile on it: RB output positions of the band
(along W, across its rows) x NW vectors of output channels, one run of
(W taps x C) contiguous steps per (kd, kh). Columns that miss the same W
taps at the edges make blocks of their own, and a band of a whole small
plane holds several images' rows (blocks then run across images, as
cl_kernel's row spaces do), where a count of the kernel's steps and
stores says that costs less (`band_plan`, `plane_cost`). The tile goes to
the output's channel planes transposed in registers
(cpu_simd.vtstore_planes): straight to the planes where its positions
are consecutive outputs, else to a buffer whose runs of consecutive
positions are then copied out (cpu_simd.vcopyn, vstore_every2).

Term order: cl_kernel's (for each group of gs consecutive (kd, kh), a
partial sum over (kw, c) from zero, added to the running total; a
transpose's taps of the position's phase, in ascending order), so a
channels-first call gives the bits of the channels-last one. A tap that
reads padding for some rows of a block multiplies packed zeros (cl_kernel
multiplies its zero row there), and a (kd, kh) that no row of the block
reaches is skipped; adding 0 * w for a finite weight never changes a sum
(filters with NaN/Inf go to the reference, cpu.py).
"""

import functools

import numpy as np

from .._jit import serial_kernel
from .cpu_rb import ROW_SCRATCH_BYTES, _max, _min, sum_group
from .cpu_simd import (addr, itemsize, scratch, tile_dims, tile_part_rows, vcopyn, vrun, vstore_every2, vtadd,
                       vtranspose_block, vtstore_planes, vtzero)

# The packed band: at most this many bytes (per chunk of tiles). Larger
# bands have more rows for each block of positions and for the W-edge
# column groups, but chunks of tiles that share a band each copy it. One
# thread, against 192 KB: NCHW 4 x 14^2 x 512 -> 512 1.05-1.08 -> 1.01-1.03x
# the channels-last time with 384 or 512 KB; two threads: 112^2 x 128 s2
# 1.05-1.12 with 192 or 384 KB, 1.16 with 512 (benchmarks/NOTES.md section 62).
BAND_BYTES = 384 * 1024

# a tile in whole vectors of rows (at most 16: a 64-byte float32 vector) x 2 vectors of 64 bytes
BUF_BYTES = 16 * 2 * 64

# The packed D taps are a ring of KD planes (input plane i_d in slot
# i_d % KD) for dd == 1, KD <= RING_SLOTS and one image per band: the next
# output plane of the same band (the next tile, cfband_kernel) packs only
# the planes it does not share with the last (a convolution's one of KD
# for sd == 1; a transpose's output plane reads at most ceil(KD / sd)
# consecutive input planes, each of them for about KD / sd output planes
# in a row).
RING_SLOTS = 16
_RING_BYTES = RING_SLOTS * 8


def band_rows(OH, KD, KH, sh, dh, Wp, C, isz, trans):
    """Output rows per band (BH): as many as keep the KD planes of packed
    input rows (`input_rows`), Wp columns of C channels, within BAND_BYTES;
    at least one."""
    row = Wp * C * isz * KD
    BH = 1
    while BH < OH and input_rows(BH + 1, KH, sh, dh, trans) * row <= BAND_BYTES:
        BH += 1
    return BH


def input_rows(BH, KH, sh, dh, trans):
    """The input rows that BH consecutive output rows read, at most: a
    convolution's (BH - 1) * sh + (KH - 1) * dh + 1; a transpose's, whose
    output row oh reads input rows (oh + ph - kh * dh) / sh, at most
    (BH - 1 + (KH - 1) * dh) // sh + 1."""
    if trans:
        return (BH - 1 + (KH - 1) * dh) // sh + 1
    return (BH - 1) * sh + (KH - 1) * dh + 1


def band_geometry(B, C, D, H, W, OD, OH, OW, F, KD, KH, KW, sd, sh, sw, dd, dh, dw, pd, ph, pw, trans, NFB, inner,
                  isz, rb, NV, part):
    """(cfband_kernel's geo, its packed band's length in elements, its
    tile count, its wcols). pd, ph, pw: a convolution's zeros before the
    input along each axis, or a transpose's padding (its output o receives
    tap k from input (o + p - k * d) / s where that is a whole number; zb,
    the packed columns before input column 0, is then (KW - 1) * dw - pw
    over sw, which must not be negative). inner: every output-channel
    block in each tile (else a tile per block); rb, NV, part: the tile's
    rows, its output channels and the rows of its part loop
    (cpu_simd.part_rows). W-edge columns get blocks of their own, and a
    band of a small plane several images' rows, where that costs less
    (`band_plan`)."""
    if trans:
        zb = ((KW - 1) * dw - pw) // sw
        Wp = max((OW - 1 + pw) // sw + zb + 1, zb + W)
    else:
        zb = pw
        Wp = max((OW - 1) * sw + (KW - 1) * dw + 1, pw + W)
    BH = band_rows(OH, KD, KH, sh, dh, Wp, C, isz, trans)
    nbands = -(-OH // BH)
    rpb = input_rows(BH, KH, sh, dh, trans)
    NI, split = band_plan(OH, H, OW, W, C, NV, KH, KW, sh, sw, dh, dw, ph, pw, BH, rb, part, trans,
                          band_images(B, OH, OW, sh, sw, trans, nbands, KD * rpb * Wp * C * isz))
    geo = (B, C, D, H, W, OD, OH, OW, F, KD, KH, KW, sd, sh, sw, dd, dh, pd, ph, pw, NFB, BH, nbands,
           sum_group(KW, C), Wp, rpb, int(inner), dw, int(trans), zb, NI)
    return (tuple(int(v) for v in geo), NI * KD * rpb * Wp * C, -(-B // NI) * OD * nbands * (1 if inner else NFB),
            column_groups(OW, W, KW, sw, pw, split, trans, dw))


# A band of a whole plane may hold several images' rows when a phase of
# one image has fewer positions than this: blocks then run across images,
# as cl_kernel's row spaces do (NCHW 16 x 4^2 x 512 -> 256 k4 s2: 16
# positions per phase and image, 2 blocks, or a part block for a W-edge
# group; benchmarks/NOTES.md section 87).
BAND_IMAGE_POSITIONS = 64


def band_images(B, OH, OW, sh, sw, trans, nbands, image_bytes):
    """The most images per band worth trying: 1 unless one band holds the
    whole plane and a phase has fewer than BAND_IMAGE_POSITIONS positions;
    then as many as bring a phase to that many, within BAND_BYTES, at most
    B (`band_plan` decides)."""
    phase = OH * OW // (sh * sw if trans else 1)
    if nbands > 1 or B == 1 or phase >= BAND_IMAGE_POSITIONS:
        return 1
    return max(1, min(B, -(-BAND_IMAGE_POSITIONS // max(phase, 1)), BAND_BYTES // image_bytes))


@functools.lru_cache(maxsize=256)
def band_plan(OH, H, OW, W, C, NV, KH, KW, sh, sw, dh, dw, ph, pw, BH, rb, part, trans, most_images):
    """(images per band, split): the least `plane_cost` per image with one
    image or most_images per band, W-edge columns in blocks of their own
    (`column_groups`) or not (apart only where the W taps run as one
    (kw, c) run or per tap: transposes, convolutions with dw 1).
    Edge groups of a few positions run short blocks at a fraction of the
    FMA rate; blocks that no longer start on a row run H-edge taps on
    padding for rows that need none and store in more runs (a column's
    outputs one by one): bands of one row of 56 columns keep one group
    (NCHW 56^2 x 256: 1.04 -> 1.11x the channels-last time split), NCDHW
    8^3 x 128 -> 64 k3 s2 too (1.13-1.17 -> 1.21-1.27 split), but a
    7-column row of 3x3 taps spends 2 of 21 steps on padding (NCHW 8 x 7^2
    x 512, bands of 7 rows: 1.18 -> 1.05 split; benchmarks/NOTES.md
    section 83), a k4 s2 transpose's 4-column phases 1 of 8 (section 86).
    Blocks across images run the H taps of all their rows (8 x 7^2 x 512:
    1.12-1.14x with 2 images, 1.10-1.12 with one; 16 x 4^2 x 512 -> 256 k4
    s2: 1.04-1.07 with 4, 1.15-1.20 with one; section 87)."""
    options = [(ni, split) for ni in sorted({1, most_images}) for split in (False, True)
               if not split or trans or dw == 1]
    return min(options, key=lambda o: (plane_cost(OH, H, OW, W, C, NV, KH, KW, sh, sw, dh, dw, ph, pw, BH, rb,
                                                  part, trans, o[1], o[0]), o))


# A part block's steps (cpu_simd.part_rows rows: half the FMAs of a whole
# tile's step, in just as many accumulators as keep the FMA pipes busy)
# cost this many times its rows: the value that orders the measured cases
# (section 87: W-edge groups apart for 7^2 k3 and for 16 x 4^2 k4 s2 on one
# image per band, 4 images per band there, one for 8 x 7^2, no split for
# 8^3 k3 s2).
PART_BLOCK_ROWS = 1.15

# A run of a tile's outputs on one output row, per output channel, in tile
# steps (one step: a broadcast and NV / V FMAs for each of the tile's rows):
# a store that touches its own cache lines of the channel planes.
STORE_RUN_STEPS = 8


def plane_cost(OH, H, OW, W, C, NV, KH, KW, sh, sw, dh, dw, ph, pw, BH, rb, part, trans, split, NI=1):
    """The cost of one output plane (per D tap) as cfband_kernel runs it
    with these column groups, in tile steps: for each block of positions,
    its rows (the whole tile, or the part loop for at most part rows) x
    the H taps that some row of the block reads the input with x the
    group's W taps x C, and STORE_RUN_STEPS x NV per output row it
    stores to; with NI images per band, their positions in turn (a block
    across two images counted on all the band's rows), per image."""
    table = column_groups(OW, W, KW, sw, pw, split, trans, dw)
    steps = runs = 0
    seen = {}  # bands whose rows all read inside the input cost the same per (height, H phase)
    for oh0 in range(0, OH, BH):
        nl = min(BH, OH - oh0)
        if trans:
            inside = oh0 + ph - (KH - 1) * dh >= 0 and (oh0 + nl - 1 + ph) // sh < H
        else:
            inside = oh0 * sh - ph >= 0 and (oh0 + nl - 1) * sh - ph + (KH - 1) * dh < H
        key = (nl, oh0 % sh) if inside else oh0
        if key not in seen:
            seen[key] = _band_cost(table, oh0, nl, H, KH, sh, sw, dh, dw, ph, pw, rb, part, trans, NI)
        steps += seen[key][0]
        runs += seen[key][1]
    return (steps * C + runs * NV * STORE_RUN_STEPS) / NI


def _band_cost(table, oh0, nl, H, KH, sh, sw, dh, dw, ph, pw, rb, part, trans, NI):
    """plane_cost's (tile steps per input channel, store runs) of the band
    of nl output rows from oh0."""
    ng = int(table[0])
    SH = sh if trans else 1
    steps = runs = 0
    for qh in range(SH):
        lo0 = (qh - oh0 - ph) % sh if trans else 0
        nrows = (nl - lo0 + SH - 1) // SH
        for g in range(ng):
            c0, c1 = int(table[1 + g]), int(table[2 + g])
            ncol = c1 - c0
            lo, hi = int(table[2 + ng + g]), int(table[2 + 2 * ng + g])
            wtaps = hi - lo
            if trans:
                qw = (int(table[2 + 3 * ng + c0]) + pw) % sw
                wtaps = sum((kw * dw - qw) % sw == 0 for kw in range(lo, hi))
            npi = nrows * ncol
            if npi == 0:
                continue  # no row of this phase in the band
            p0, nr = _blocks(NI * npi, rb, part)
            across = p0 // npi != (p0 + nr - 1) // npi
            q0, q1 = p0 % npi, (p0 + nr - 1) % npi
            oh_f = oh0 + lo0 + np.where(across, 0, q0 // ncol) * SH
            oh_l = oh0 + lo0 + np.where(across, nrows - 1, q1 // ncol) * SH
            htaps = 0
            for kh in range(KH):
                if trans:
                    if (kh * dh - qh) % sh:
                        continue
                    ih_f, ih_l = (oh_f + ph - kh * dh) // sh, (oh_l + ph - kh * dh) // sh
                else:
                    ih_f, ih_l = oh_f * sh - ph + kh * dh, oh_l * sh - ph + kh * dh
                htaps = htaps + ((ih_l >= 0) & (ih_f < H))
            steps += float(np.sum(np.where(nr > part, rb, PART_BLOCK_ROWS * part or rb) * htaps)) * wtaps
            runs += int(np.sum((p0 + nr - 1) // ncol - p0 // ncol + 1))
    return steps, runs


@functools.lru_cache(maxsize=1024)
def _blocks(npx, rb, part):
    """cfband_kernel's blocks of npx positions: (first positions, rows)."""
    p0, nr = [], []
    p = 0
    while p < npx:
        n = min(rb, npx - p)
        if part < npx - p <= 2 * part and (rb < npx - p or 2 * part < rb):
            n = part
        if npx - p > 2 * rb + 2 * part:  # whole tiles up to the last few
            n = (npx - p - rb - 2 * part) // rb * rb
            p0.extend(range(p, p + n, rb))
            nr.extend([rb] * (n // rb))
        else:
            p0.append(p)
            nr.append(n)
        p += n
    return np.array(p0, dtype=np.int64), np.array(nr, dtype=np.int64)


@functools.lru_cache(maxsize=256)
def column_groups(OW, W, KW, sw, pw, split, trans=False, dw=1):
    """The output columns grouped by the W taps that read the input (kw in
    [lo, hi)), the group of all KW taps first, as one int64 array: ng, then
    ng + 1 group starts, ng lo's, ng hi's, then the OW columns, each group's
    in ascending order, then their packed columns. A block of positions takes one group's, so it runs
    only its taps (cl_kernel's row order does the same). split False: one
    group, every column on all KW taps (W-edge columns multiply the packed
    zeros): a band of few rows would give edge groups of a few positions,
    whose short blocks run the FMAs at a fraction of their rate (NCHW 56^2
    x 256, bands of one row: 1.04 -> 1.11x the channels-last time).
    trans: a transpose's columns also by W phase (ow + pw) % sw, which
    decides their taps (those of [lo, hi) with kw * dw = phase mod sw;
    lo = hi where none reads the input)."""
    groups = {}
    for ow in range(OW):
        if trans:
            phase = (ow + pw) % sw
            key = (0, KW, phase)
            if split:
                taps = [kw for kw in range(KW)
                        if (ow + pw - kw * dw) % sw == 0 and 0 <= (ow + pw - kw * dw) // sw < W]
                key = (taps[0], taps[-1] + 1, phase) if taps else (0, 0, phase)
        else:
            lo = max(0, pw - ow * sw) if split else 0
            key = (lo, max(lo, min(KW, W + pw - ow * sw)) if split else KW, 0)
        groups.setdefault(key, []).append(ow)
    keys = sorted(groups, key=lambda k: (k[:2] != (0, KW), k))
    starts = np.cumsum([0] + [len(groups[k]) for k in keys])
    cols = [ow for k in keys for ow in groups[k]]
    # then each column's packed column (before the packed zeros): a
    # convolution's first tap's, ow * sw; a transpose's phase tap's,
    # (ow + pw - phase) / sw (no division per position in the kernel)
    packed = [(ow + pw) // sw if trans else ow * sw for ow in cols]
    table = np.array([len(keys)] + list(starts) + [k[0] for k in keys] + [k[1] for k in keys] + cols + packed,
                     dtype=np.int64)
    table.flags.writeable = False  # shared by the calls of one geometry
    return table


@functools.lru_cache(maxsize=256)
def tap_table(KH, KW, sh, sw, dh, dw, trans):
    """The H and W taps of each phase with the packed row or column each
    reads relative to the tap of the phase's first row or column, as one
    read-only int64 array: row qh < SH (a transpose's H phases, sh of
    them; a convolution's one) holds n, then (kh, dr) for its n taps; row
    SH + qw likewise (kw, dc) for W phase qw < (sw for a transpose, else
    1). A transpose's tap k is of phase q where k * d = q mod s, and reads
    -(k * d - q) / s rows or columns from the first; a convolution's, k *
    d. cfband_kernel reads these instead of dividing by the strides per
    block and tap (transposes 0.92-1.02x the time in this VM's noise, the
    transposed variant's compile 2 % fewer instructions;
    benchmarks/NOTES.md section 132)."""
    SH, SW = (sh, sw) if trans else (1, 1)
    table = np.zeros((SH + SW, 1 + 2 * max(KH, KW)), dtype=np.int64)
    for row, (K, s, d, q) in enumerate([(KH, sh, dh, q) for q in range(SH)] + [(KW, sw, dw, q) for q in range(SW)]):
        taps = [(k, -((k * d - q) // s) if trans else k * d) for k in range(K) if not trans or (k * d - q) % s == 0]
        table[row, 0] = len(taps)
        for e, (k, rel) in enumerate(taps):
            table[row, 1 + 2 * e:3 + 2 * e] = k, rel
    table.flags.writeable = False
    return table


@functools.partial(serial_kernel, one_round=True)  # (its FMA loops checked: section 133)
def cfband_kernel(x, wp, out, geo, tile, wcols, ktab, tr, xin, t_begin, t_end):
    """Tiles [t_begin, t_end): tile t is output-channel block t % NFB of
    r = t // NFB, or (inner) every block of r = t: band (r // OD) % nbands
    of planes (images b0 .. b0 + NI - 1, od = r % OD), b0 = r // OD //
    nbands * NI. The output planes of one band follow each other, so that
    the ring of packed D taps (RING_SLOTS) carries over from one to the
    next (NCDHW 32^3 x 32 and x 64 k3, two and three bands: 0.97-0.99x the
    time of the bands in turn; benchmarks/NOTES.md section 130).
    x: (B, C, D, H, W) flat;
    wp: cpu_rb.pack_filters for `tile` (one group); out: (B, F, OD, OH, OW)
    flat; wcols: `column_groups`; ktab: `tap_table`; xin: NI * KD * rpb * Wp * C elements for
    the band's input rows, channels-last, image b0 + j's plane kd's row r
    (input row row0 + r, `band_geometry`) at ((j * KD + kd) * rpb + r) *
    Wp * C, input column iw at column zb + iw (kd: the slot i_d % KD of
    input plane i_d where the planes are a ring, RING_SLOTS). A group's blocks of
    positions take its columns on each band row of each image in turn.
    tr: None (a convolution) or True (a transpose): a variant each,
    compiled with only its own code."""
    (B, C, D, H, W, OD, OH, OW, F, KD, KH, KW, sd, sh, sw, dd, dh, pd, ph, pw, NFB, BH, nbands, gs,
     Wp, rpb, inner, dw, _, zb, NI) = geo
    fused = dw == 1  # (kw, c) as one run; else a run per W tap
    SH = 1  # H phases: a block's rows share one (transposes)
    if tr is not None:
        fused = False
        SH = sh
    isz = itemsize(out)
    RB, NW, V = tile_dims(tile, out)
    PART = tile_part_rows(tile)
    NV = NW * V
    HW = H * W
    OHW = OH * OW
    ODHW = OD * OHW
    rows = scratch(0, ROW_SCRATCH_BYTES)
    ra = rows[0:RB]  # row addresses in xin
    o = rows[RB:2 * RB]  # output offsets (channel 0)
    PV = (RB + V - 1) // V * V  # the tile's rows in whole vectors
    buf2 = scratch(out, BUF_BYTES)  # the tile transposed: channel f's positions at f * PV
    b2a = addr(buf2)
    oa = addr(out)
    xa = addr(xin)
    xba = addr(x)
    DHW = D * HW
    slot = Wp * C  # elements per packed row
    IMG = KD * rpb * slot  # elements per image's packed rows
    ng = wcols[0]
    cbase = 2 + 3 * ng  # wcols[cbase + j]: the j-th column in group order
    pbase = cbase + OW  # wcols[pbase + j]: its packed column (zb not counted)
    # the packed rows' padding columns: zeros for every band (the kernel's
    # array is not zeroed: a memset of it per chunk cost more)
    for rr in range(NI * KD * rpb):
        for e in range(zb * C):
            xin[rr * slot + e] = 0
        for e in range((zb + W) * C, slot):
            xin[rr * slot + e] = 0
    packed = -1
    row0 = 0
    ring = dd == 1 and NI == 1 and KD <= RING_SLOTS
    held = scratch(0, _RING_BYTES)  # the input plane in each slot of the ring
    held_band = -1  # the ring's band and image: b0 * nbands + band
    for t in range(t_begin, t_end):
        # the tile's output-channel blocks [fb_lo, fb_hi): one, or (inner)
        # every block on each block of positions, whose input stays in L1
        fb_lo = 0 if inner else t % NFB
        fb_hi = NFB if inner else fb_lo + 1
        r = t if inner else t // NFB
        od = r % OD
        bq = r // OD
        band = bq % nbands
        b0 = (bq // nbands) * NI  # the band's images: [b0, b0 + ni)
        ni = NI if NI < B - b0 else B - b0
        oh0 = band * BH
        nl = BH if BH < OH - oh0 else OH - oh0  # output rows in the band
        # packed row 0's input row, and the band's input rows
        row0 = oh0 * sh - ph
        nrow = (nl - 1) * sh + (KH - 1) * dh + 1
        if tr is not None:
            row0 = -((-(oh0 + ph - (KH - 1) * dh)) // sh)  # ceil
            nrow = (oh0 + nl - 1 + ph) // sh - row0 + 1
        if r != packed:
            # the band's input rows, every channel, channels-last; rows
            # outside the input are zeros (columns outside it always are)
            packed = r
            if ring and b0 * nbands + band != held_band:
                held_band = b0 * nbands + band
                for kd in range(KD):
                    held[kd] = -1
            for jk in range(ni * KD):
                j = jk // KD  # image b0 + j's D tap kd
                kd = jk - j * KD
                i_d = od * sd - pd + kd * dd
                if tr is not None:
                    i_d = od + pd - kd * dd
                    if i_d % sd != 0:
                        continue  # not a tap of this plane
                    i_d = i_d // sd
                if i_d < 0 or i_d >= D:
                    continue  # never read: its taps are skipped
                ks = kd  # its slot
                if ring:
                    ks = i_d % KD
                    if held[ks] == i_d:
                        continue  # packed for the last output plane
                    held[ks] = i_d
                # the rows inside the input: [r_lo, r_hi)
                r_lo = _min(_max(-row0, 0), nrow)
                r_hi = _max(_min(H - row0, nrow), r_lo)
                for rr in range(nrow):
                    if rr < r_lo or rr >= r_hi:
                        d0 = j * IMG + (ks * rpb + rr) * slot
                        for e in range(zb * C, (zb + W) * C):
                            xin[d0 + e] = 0
                # V x V blocks (V channels' rows of V columns) transposed in
                # registers, the last channels one by one; a block of
                # channels' rows in turn, so each channel's reads run on
                # along its plane (consecutive rows) for the hardware
                # prefetchers
                s0 = ((b0 + j) * C * D + i_d) * HW + row0 * W
                d0 = j * IMG + (ks * rpb) * slot + zb * C
                cv = C - C % V
                for c0 in range(0, cv, V):
                    for rr in range(r_lo, r_hi):
                        dst = d0 + rr * slot + c0
                        src = s0 + rr * W + c0 * DHW
                        for iw in range(0, W, V):
                            vtranspose_block(xin, tile, xa + (dst + iw * C) * isz, xba + (src + iw) * isz,
                                             DHW * isz, C * isz, W - iw)
                for c in range(cv, C):
                    for rr in range(r_lo, r_hi):
                        for iw in range(W):
                            xin[d0 + rr * slot + iw * C + c] = x[s0 + rr * W + c * DHW + iw]
        for qg in range(SH * ng):
            qh = qg // ng  # the rows' H phase (transposes), then the column group
            g = qg - qh * ng
            # the group's positions: its columns on each band row of the phase
            c0g = wcols[1 + g]
            ncol = wcols[2 + g] - c0g
            klo = wcols[2 + ng + g]
            nk = wcols[2 + 2 * ng + g] - klo  # its W taps: [klo, klo + nk)
            qw = 0
            if tr is not None:
                qw = (wcols[cbase + c0g] + pw) % sw  # the columns' W phase
            # fused: one run of nk * C steps; else a run of C per tap of
            # the columns' W phase (`tap_table`; a convolution's: all KW)
            nwe = 1 if fused else ktab[SH + qw, 0]
            steps = nk * C if fused else C
            lo0 = 0
            rbase = 0
            if tr is not None:
                lo0 = (qh - oh0 - ph) % sh  # the band's first row of this phase
                rbase = (oh0 + lo0 + ph - qh) // sh - row0
            npi = ((nl - lo0 + SH - 1) // SH) * ncol  # per image
            npx = ni * npi
            p0 = 0
            while p0 < npx:
                nr = RB if RB < npx - p0 else npx - p0
                if PART < npx - p0 <= 2 * PART and (RB < npx - p0 or 2 * PART < RB):
                    nr = PART  # two part blocks, as cl_kernel
                # the block's positions, counted on from its first (image
                # b0 + j, the phase's row m of the band, column cc of the
                # group; no division per position); its first and last band
                # rows over all its images
                j = p0 // npi
                m = (p0 - j * npi) // ncol
                cc = p0 - j * npi - m * ncol
                lf = OH
                ll = 0
                for i in range(RB):
                    lo = lo0 + m * SH
                    lf = _min(lf, lo)
                    ll = _max(ll, lo)
                    ow = wcols[cbase + c0g + cc]
                    # the packed row and column its first tap reads (a
                    # transpose's: a tap with k * d = phase; its row is
                    # (oh0 + lo + ph - qh) / sh - row0 = rbase + m)
                    pr = lo * sh
                    pc = wcols[pbase + c0g + cc]
                    if tr is not None:
                        pr = rbase + m
                        pc += zb
                    ra[i] = xa + (j * IMG + (pr * Wp + pc) * C) * isz
                    o[i] = ((b0 + j) * F * OD + od) * OHW + (oh0 + lo) * OW + ow
                    if i + 1 < nr:  # rows past nr repeat the last position
                        cc += 1
                        if cc == ncol:
                            cc = 0
                            m += 1
                            if m * ncol == npi:
                                m = 0
                                j += 1
                # a whole tile of consecutive output positions (one
                # column group of every column, one image): stored from
                # the registers (cpu_simd.vtstore_planes)
                flat = nr == RB
                for i in range(1, RB):
                    if o[i] != o[0] + i:
                        flat = False
                # the input rows that the block's first and last band rows
                # read with a tap of packed row offset dr: hf + dr, hl + dr
                hf = (oh0 + lf) * sh - ph
                hl = (oh0 + ll) * sh - ph
                if tr is not None:
                    hf = row0 + rbase + (lf - lo0) // sh
                    hl = row0 + rbase + (ll - lo0) // sh
                for fb in range(fb_lo, fb_hi):
                    f0 = fb * NV
                    nf = NV if NV < F - f0 else F - f0
                    wfb = addr(wp) + fb * KD * KH * KW * C * NV * isz
                    acc = vtzero(out, tile)
                    total = acc
                    gend = 0  # the end of the current group of (kd, kh): the next starts a partial sum
                    ngrp = 0
                    for kd in range(KD):
                        i_d = od * sd - pd + kd * dd
                        if tr is not None:
                            i_d = od + pd - kd * dd
                            if i_d % sd != 0:
                                continue
                            i_d = i_d // sd
                        if i_d < 0 or i_d >= D:
                            continue
                        ks = i_d % KD if ring else kd
                        for eh in range(ktab[qh, 0]):
                            # the phase's H tap and the packed row it reads, relative to ra's
                            kh = ktab[qh, 1 + 2 * eh]
                            dr = ktab[qh, 2 + 2 * eh]
                            # skipped when no row of the block reads an input row
                            if hl + dr < 0 or hf + dr >= H:
                                continue
                            if tr is None:
                                if hf + dr < 0 and hl + dr >= H:
                                    # rows on both sides and none inside (sh > H)
                                    inside = False
                                    for lo in range(lf, ll + 1):
                                        ih = (oh0 + lo) * sh - ph + dr
                                        if 0 <= ih < H:
                                            inside = True
                                    if not inside:
                                        continue
                            # two-level sum, as in cl_kernel
                            if kd * KH + kh >= gend:
                                gend = ((kd * KH + kh) // gs + 1) * gs
                                if ngrp > 0:
                                    total = vtadd(total, acc)
                                    acc = vtzero(out, tile)
                                ngrp += 1
                            # one (kw, c) run over the group's W taps, or
                            # a run per W tap in cl_kernel's order (kw
                            # ascending, zeros included; a transpose's of its
                            # phase in [klo, klo + nk)); one vrun call site
                            # for both (compile time)
                            for ew in range(nwe):
                                kw = klo
                                dc = klo * dw  # the packed column the tap reads, relative to ra's
                                if not fused:
                                    kw = ktab[SH + qw, 1 + 2 * ew]
                                    dc = ktab[SH + qw, 2 + 2 * ew]
                                    if kw < klo or kw >= klo + nk:
                                        continue
                                off = ((ks * rpb + dr) * slot + dc * C) * isz
                                acc = vrun(out, acc, tile, ra, off, wfb + ((kd * KH + kh) * KW + kw) * C * NV * isz,
                                           steps, nr)
                    acc = vtadd(total, acc)
                    # straight to the output planes; else into buf2 (channel
                    # f's positions at f * PV), then each run of up to V
                    # positions on one output row stored as (part of) a
                    # vector per channel (one call site: the store's code
                    # is compiled once)
                    dst = b2a
                    pstride = PV
                    if flat:
                        dst = oa + (o[0] + f0 * ODHW) * isz
                        pstride = ODHW
                    vtstore_planes(out, tile, acc, dst, pstride * isz, nf)
                    if flat:
                        continue
                    i = 0
                    while i < nr:
                        e = i + 1  # a run of consecutive output offsets, at most V
                        while e < nr and e < i + V and o[e] == o[e - 1] + 1:
                            e += 1
                        if tr is not None and e - i == 1:
                            # a run two columns apart (a W stride 2 transpose's
                            # phase), at most V / 2: one masked store per channel
                            # (scalar stores, which LLVM turned into gathers and
                            # scatters: 28^2 x 256 -> 128 k3 s2 1.21-1.26x the
                            # channels-last time, 1.04-1.08 this way;
                            # benchmarks/NOTES.md section 80). Transposes only:
                            # a convolution's runs are two apart only on output
                            # rows of two columns, and without this path its
                            # variant compiles 0.1-0.35 s faster (section 122)
                            while e < nr and e < i + V // 2 and o[e] == o[e - 1] + 2:
                                e += 1
                            if e - i > 1:
                                for f in range(nf):
                                    vstore_every2(out, tile, oa + (o[i] + (f0 + f) * ODHW) * isz,
                                                  b2a + (f * PV + i) * isz, e - i)
                                i = e
                                continue
                        if e - i == 1:
                            # (a transpose's W phases: columns sw apart) plain
                            # stores, not one-lane masked ones
                            for f in range(nf):
                                out[o[i] + (f0 + f) * ODHW] = buf2[f * PV + i]
                        else:
                            for f in range(nf):
                                vcopyn(out, tile, oa + (o[i] + (f0 + f) * ODHW) * isz, b2a + (f * PV + i) * isz,
                                       e - i)
                        i = e
                p0 += nr
