"""Pointwise (1x1, stride 1) forward convolution with few channels,
channels-last: segmentation heads (a 1x1x1 conv to a few classes before a
sigmoid or softmax). Taken for at most 256 bytes of filters (cpu.py).

The register-blocked kernels fill a tile's vector lanes with output
channels, so a few of them leave most lanes empty; the vectors-along-W one
gathers its channels-last loads, and with one output channel it reads a
channels-first copy of the input, which costs more than the convolution
(64^3 x 32 channels -> 1: 33 ms, 7 ms with 16 channels). Here the lanes
hold pixels: each block of NW x V consecutive pixels (a tile of NW
vectors) is transposed in registers into a scratch array, V x V at a time
(`vtranspose_block`), one row of pixels per input channel; the tile's rows
are output channels, and one vrun_cols_whole loop over the input channels
fills them (benchmarks/NOTES.md sections 49 and 75). The input is read
from memory once, with whole-vector loads. With 1, 2 or 4 output
channels (one block of a 4-accumulator tile) the scratch array holds
only the last channels (fewer than V): each whole chunk of V channels is
transposed and used in registers (`vrun_transposed`, section 116). The results go back to
pixel-major order by V x V transposes, or for 2 and 4 output channels by
interleaving their rows (`vzip2`, section 99).

Term order: each output is one chain over the input channels in order,
from zero, fused multiply-adds; the register-blocked kernels' order for a
1x1 convolution (one (kd, kh) group), so the same bits. The last pixels
(fewer than a block) run the same chain in scalar code.
"""

from .._jit import serial_kernel
from . import cpu_simd
from .cpu_rb import _max, _min
from .cpu_simd import (Tile, addr, itemsize, prefetch, scratch, sfence, tile_dims, tile_rows, vcopyn, vrun_cols,
                       vrun_cols_whole, vrun_transposed, vtadd, vtload, vtranspose_block, vtranspose_over, vtstore,
                       vtstore_stream, vtzero, vzip2)

# The input channels' bytes per pixel the scratch rows hold (cpu.py's
# POINTWISE_BYTES bounds the filters, C * F * itemsize, hence C * itemsize
# and F * itemsize).
PW_MAX_CHANNEL_BYTES = 256
_MAX_LANES = 64  # a tile's pixels: NW x V, at most 4 vectors of 16 float32
PW_XT_BYTES = PW_MAX_CHANNEL_BYTES * _MAX_LANES
# the results, channel-major (rows past F zero: a V x V transpose reads V rows)
PW_ACC_BYTES = (PW_MAX_CHANNEL_BYTES + 64) * _MAX_LANES
_OFFS_BYTES = 8 * 8


# Vectors of this many bytes when a pixel's output channels fit in one:
# on Zen 5 (AVX-512) the 8 x 8 transposes of 32-byte vectors made the calls
# 0.70-0.96x as long as the 16 x 16 ones of 64-byte vectors (64^3 x 32 -> 1
# 1.80 -> 1.26 ms, 64^3 x 8 -> 6 0.78 -> 0.58, 64^3 x 16 -> 2 0.86 ->
# 0.83); with more channels than a 32-byte vector the results are stored
# one by one there, and 64-byte vectors were 2.2x faster (4 -> 16).
PW_NARROW_VBYTES = 32


# Output channel counts whose results are stored without V x V transposes
# (1, 2, 4), on tiles of 4 accumulators, for pointwise_cl's `fused` chunks:
# 8 x 8 blocks transposed in registers feed the FMAs (4 x 2 and 2 x 4 tiles
# there: no faster, or up to 40 % slower, their weights and rows spilled)
PW_FUSED_TILES = {1: (1, 4), 2: (2, 2), 4: (4, 1)}


def pw_tile(F, itemsize, fused=False):
    """The tile for F output channels of `itemsize` bytes: one channel on
    4 vectors of pixels (four FMA chains), 2 on 2 x 4, 4 on 4 x 4 with
    AVX-512's 32 registers, up to 4 on 4 x 2, more on the wide 2-vector
    tile (8 x 2 with AVX-512's 32 registers, 6 x 2 with AVX2's 16), in
    blocks of its rows; PW_NARROW_VBYTES vectors where F fit in one;
    `fused`: PW_FUSED_TILES. (The
    rows are exactly the 2 or 4 channels there, whose results are
    interleaved into pixels by vzip2; 4 x 2 left half its rows empty for 2,
    and its results went back through V x V transposes: benchmarks/NOTES.md
    section 99.)"""
    host = cpu_simd.VBYTES
    vb = min(PW_NARROW_VBYTES, host) if F * itemsize <= PW_NARROW_VBYTES else host
    if fused:
        return Tile(*PW_FUSED_TILES[F], vb)
    if F == 1:
        return Tile(1, 4, vb)
    if F == 2:
        return Tile(2, 4, vb)
    if F == 4 and cpu_simd.VREGS >= 32:
        return Tile(4, 4, vb)
    if F <= 4:
        return Tile(4, 2, vb)
    return Tile(tile_rows(2), 2, vb)


@serial_kernel
def pointwise_cl(x, wp, out, tile, fused, p_begin, p_end):
    """Pixels [p_begin, p_end) (cpu_rb.parallel_tiles splits them over
    threads). x (P, C) C-contiguous; wp (NFB, C, FR): the filters in blocks
    of FR = tile.rows output channels, zero-padded; out (P, F)
    C-contiguous. fused: see below (cpu.POINTWISE_FUSED)."""
    P, C = x.shape
    F = out.shape[1]
    NFB = wp.shape[0]
    FR, NW, V = tile_dims(tile, out)
    NJ = NW * V
    isz = itemsize(out)
    xt = scratch(out, PW_XT_BYTES)  # a block's inputs: C rows of NJ pixels
    acc = scratch(out, PW_ACC_BYTES)  # its results: NFB * FR rows of NJ pixels
    so = scratch(0, _OFFS_BYTES)
    for i in range(FR):
        so[i] = i * NJ
    xa = addr(x)
    xend = xa + P * C * isz
    xta = addr(xt)
    wa = addr(wp)
    acca = addr(acc)
    oa = addr(out)
    zero = out.dtype.type(0)
    # `fused` (pw_tile's fused tiles, one block): the whole chunks of V
    # input channels transposed in registers and used there (no scratch
    # copy), the rest (fewer than V) through the scratch rows
    KC = C // V if NFB == 1 and fused else 0
    c1 = KC * V
    p = p_begin
    while p + NJ <= p_end:
        # rows of fewer than V channels: whole-vector loads, reading into
        # the next pixels (masked at the end of x)
        for j in range(NW):
            for c0 in range(c1, C, V):
                vtranspose_over(out, tile, xta + ((c0 - c1) * NJ + j * V) * isz, xa + ((p + j * V) * C + c0) * isz,
                                C * isz, NJ * isz, _min(V, C - c0), xend)
        for fb in range(NFB):
            accs = vtzero(out, tile)
            if KC > 0:
                accs = vrun_transposed(out, accs, tile, xa + p * C * isz, C * isz, KC, wa)
            if c1 < C:
                accs = vrun_cols_whole(out, accs, tile, xta, NJ * isz, V * isz, 0, 0, wa + (fb * C + c1) * FR * isz,
                                       C - c1)
            vtstore(acc[fb * FR * NJ:], tile, so, accs, NJ)
        if F == 1:
            for e in range(0, NJ, V):
                vcopyn(out, tile, oa + (p + e) * isz, acca + e * isz, V)
        elif F == 2:
            # the two rows interleaved, two shuffles per V pixels
            vzip2(out, tile, oa + p * 2 * isz, acca, acca + NJ * isz, NJ)
        elif F == 4:
            # rows 0 and 2, 1 and 3 interleaved, then those two: pixel-major
            tmp = acca + 4 * NJ * isz
            vzip2(out, tile, tmp, acca, acca + 2 * NJ * isz, NJ)
            vzip2(out, tile, tmp + 2 * NJ * isz, acca + NJ * isz, acca + 3 * NJ * isz, NJ)
            vzip2(out, tile, oa + p * 4 * isz, tmp, tmp + 2 * NJ * isz, 2 * NJ)
        elif F <= V:
            # back to pixel-major, V x V, straight into `out`: pixel v's
            # vector (its channels in the first F lanes) at v * F, in order,
            # so each store's lanes past F are overwritten by the next
            # pixel's; the last pixels, whose vectors would reach past the
            # block, one by one. (Through a scratch array, the whole-vector
            # reloads of those overlapping stores stalled: 2x slower.)
            nfull = V - (V + F - 1) // F + 1
            for j in range(NW):
                vtranspose_block(out, tile, oa + (p + j * V) * F * isz, acca + j * V * isz, NJ * isz, F * isz,
                                 V if j < NW - 1 else nfull)
            for q in range(NJ - V + nfull, NJ):
                for i in range(F):
                    out[p + q, i] = acc[i * NJ + q]
        else:
            for i in range(F):
                for q in range(NJ):
                    out[p + q, i] = acc[i * NJ + q]
        p += NJ
    for q in range(p, p_end):
        for f in range(F):
            s = zero
            for c in range(C):
                s += x[q, c] * wp[f // FR, c, f % FR]
            out[q, f] = s


# pointwise_cf's positions per span: where it reads the input planes a
# group at a time, each span's sums wait in the output between the groups
# (64 KB per float32 output plane, in L2)
PW_CF_SPAN_POSITIONS = 16384
# With several blocks of output channels, each block runs over a span of
# at most PW_CF_INPUT_SPAN_BYTES of input (read again from L2 by the next
# block), so that a span's stores go to one block's planes at a time
PW_CF_INPUT_SPAN_BYTES = 64 * 1024
# ... and where those spans are copied to scratch first (`pack`), the
# plane this many planes ahead of the one copied is prefetched: NCDHW 1x1
# calls from 8-32 MB of input on an AMD Zen 4 VM 0.84-0.94x the time of
# the copy without it, one thread (benchmarks/NOTES.md section 143)
PW_CF_PREFETCH_PLANES = 4


# More than 8 output channels on planes of at least PW_CF_WIDE3_POSITIONS
# positions: the 8 x 3 tile where there are 32 vector registers (24
# accumulators; 11 loads per 24 FMAs, against 10 per 16). NCDHW 32^3 x 32
# -> 64 and 64 -> 32 1x1: 1.45-1.50x the channels-last time -> 1.17-1.19,
# 64^3 x 16 -> 32 1.72 -> 1.45; on smaller planes no better or worse (NCHW
# 56^2 x 64 -> 256 0.94-0.98 -> 1.00, 8 x 7^3 x 128 -> 256 0.88 -> 0.96),
# with up to 8 output channels worse (64^3 x 64 -> 8 0.76 -> 0.98;
# benchmarks/NOTES.md section 108)
PW_CF_WIDE3_POSITIONS = 16384


def pw_cf_tile(F, P):
    """pointwise_cf's tile for F output channels on planes of P positions:
    8 vectors of positions for one channel (8 FMA chains, AVX-512's 32
    registers; 4 with AVX2's 16), 2 x 4 for two, 4 x 4 (4 x 2) up to
    four, the wide 2-vector tile beyond, or 8 x 3 (PW_CF_WIDE3_POSITIONS)."""
    if F == 1:
        return Tile(1, 8 if cpu_simd.VREGS >= 32 else 4)
    if F == 2:
        return Tile(2, 4)
    if F <= 4:
        return Tile(4, 4 if cpu_simd.VREGS >= 32 else 2)
    if F > 8 and P >= PW_CF_WIDE3_POSITIONS and cpu_simd.VREGS >= 32:
        return Tile(8, 3)
    return Tile(tile_rows(2), 2)


@serial_kernel
def pointwise_cf(x, wp, out, tile, group, pack, stream, t_begin, t_end):
    """Channels-first 1x1 stride-1 convolutions, tiles [t_begin, t_end):
    tile t is image t // nb, positions [p0, p0 + NJ) with p0 = (t % nb) *
    NJ (NJ = NW x V; the image's last tile may have fewer). x (B, C, P)
    and out (B, F, P) C-contiguous; wp (NFB, C, FR): the filters in blocks
    of FR = tile.rows output channels, zero-padded (cpu_rb.pack_filters_wv).
    The positions are the lanes already: each block of output channels is
    one vrun_cols_whole over the input channels' planes (masked loads for
    the last, shorter tile), stored straight into the output planes.
    `group` < C: the planes are read `group` at a time over spans of
    PW_CF_SPAN_POSITIONS positions, the partial sums kept in `out` between
    the groups (fewer input streams at once: cpu.POINTWISE_CF_GROUP_BYTES).
    `pack` (all planes at once, several blocks of output channels, a
    tile's input within PW_CF_INPUT_SPAN_BYTES): each span's whole tiles
    are first copied, a plane at a time, into a scratch array of C rows of
    NJ positions per tile, from which every block reads them
    (cpu.POINTWISE_CF_PACK_BYTES). stream: True to store whole tiles with
    streaming stores (cpu._streams; only where every plane is read at
    once, as the sums of a group are read back), else None.
    Term order: each output one FMA chain over the input channels in
    order, from zero, then added to zero: wv_kernel's for a 1x1
    convolution, so the same bits (a chain stored and loaded again is
    unchanged)."""
    B, C, P = x.shape
    F = out.shape[1]
    NFB = wp.shape[0]
    FR, NW, V = tile_dims(tile, out)
    NJ = NW * V
    isz = itemsize(out)
    nb = (P + NJ - 1) // NJ
    so = scratch(0, _OFFS_BYTES)
    xa = addr(x)
    wa = addr(wp)
    ng = (C + group - 1) // group
    span = t_end - t_begin
    if ng > 1:
        span = _max(1, PW_CF_SPAN_POSITIONS // NJ)
    if NFB > 1:
        span = _min(span, _max(1, PW_CF_INPUT_SPAN_BYTES // (C * NJ * isz)))
    # a span's whole tiles, tile-major: C rows of NJ positions each
    xp = scratch(out, PW_CF_INPUT_SPAN_BYTES)
    xpa = addr(xp)
    pack = pack and ng == 1 and NFB > 1 and span * C * NJ * isz <= PW_CF_INPUT_SPAN_BYTES
    for t0 in range(t_begin, t_end, span):
        t1 = _min(t_end, t0 + span)
        if pack:
            # a plane's run of the span at a time: one stream read ahead
            # by the hardware, not C streams a tile apart; and the run of
            # the plane PW_CF_PREFETCH_PLANES on (the next span's first
            # planes at the end) asked for, a line at a time, since each
            # run is too short for the hardware to read far ahead
            for c in range(C):
                cn = c + PW_CF_PREFETCH_PLANES
                tn0 = t0
                if cn >= C:
                    cn -= C
                    tn0 = t1
                for t in range(tn0, _min(t_end, tn0 + span)):
                    pn = (t % nb) * NJ
                    if P - pn >= NJ:
                        src = xa + (((t // nb) * C + cn) * P + pn) * isz
                        for e in range(0, NJ * isz, 64):
                            prefetch(src + e)
                for t in range(t0, t1):
                    p0 = (t % nb) * NJ
                    if P - p0 >= NJ:
                        src = xa + (((t // nb) * C + c) * P + p0) * isz
                        dst = xpa + ((t - t0) * C + c) * NJ * isz
                        for e in range(0, NJ * isz, V * isz):
                            vcopyn(out, tile, dst + e, src + e, V)
        for fb in range(NFB):
            f0 = fb * FR
            nf = FR if FR < F - f0 else F - f0
            for g in range(ng):
                c0 = g * group
                nc = _min(group, C - c0)
                q = wa + (fb * C + c0) * FR * isz
                for t in range(t0, t1):
                    b = t // nb
                    p0 = (t % nb) * NJ
                    n = NJ if NJ < P - p0 else P - p0
                    px = xa + ((b * C + c0) * P + p0) * isz
                    for i in range(FR):
                        so[i] = (b * F + f0 + i) * P + p0 if i < nf else -1
                    # the chains go on from the last group's sums, stored in out
                    acc = vtzero(out, tile) if g == 0 else vtload(out, tile, so, n)
                    if n == NJ and pack:
                        acc = vrun_cols_whole(out, acc, tile, xpa + (t - t0) * C * NJ * isz, NJ * isz, V * isz, 0, NJ,
                                              q, nc)
                    elif n == NJ:
                        acc = vrun_cols_whole(out, acc, tile, px, P * isz, V * isz, 0, NJ, q, nc)
                    else:
                        acc = vrun_cols(out, acc, tile, px, P * isz, isz, 0, n, q, nc)
                    if g == ng - 1:
                        acc = vtadd(vtzero(out, tile), acc)
                    vtstore_stream(out, tile, so, acc, n, stream)
    sfence(stream)
