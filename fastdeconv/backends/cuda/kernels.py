"""The CUDA kernels: one implicit-GEMM convolution kernel for both ops, and
two elementwise helpers (fill, cast).

Both ops are a matrix product per output tile, formed on the fly:

    out[m, n] = sum_kk A[m, kk] * B[kk, n]

m runs over output positions (batch, d, h, w), n over the output channels of
one group, kk over (tap d, tap h, tap w, input channel) with the channel
fastest. A[m, kk] is the input element that tap feeds into output m (0 when
it falls into the padding), B the filter.

- Forward: along each dim, output j and tap t read input i = j*s + t*d - pb.
- Transpose (gather form, no atomics): an output o receives tap k from input
  i = (o + pb - k*d) / s only when that division is exact. Outputs are split
  into s phases per dim, r = (o + pb) mod s; inside one phase the same taps
  contribute to every output, k = k0 + t*ks (ks = s / gcd(s, d)), and
  i = c0 + j - t*(d / gcd(s, d)). So the transpose is the forward kernel run
  once per phase with only the contributing taps: no multiply is wasted on
  the taps that skip an output, and every output has exactly one writer.

In both, a dim's geometry is the linear form i = j*ja + c0 + t*tc, o = o0 + j*os
(`_dim_geometry`).

Tiling (sizes from `config`, see `__init__.launch_shape`): a block of
THREADS_M x THREADS_N threads owns a tile of BM = THREADS_M*REG_M positions x
BN = THREADS_N*REG_N channels; each thread keeps a REG_M x REG_N register
tile (twice as large each way for problems with many tiles). Per step of
TILE_K reduction indexes the block stages the A slice (input patches,
zero-filled at the padding) and the B slice (filters) in shared memory, then
every thread loads its REG_M + REG_N fragment values once per reduction
index and does REG_M*REG_N multiply-adds with them. Per tile, the position ->
(batch, input origin, flat offset in x) decode is done once into shared
memory, per step the kk -> (channel, tap offsets, flat offsets in x and w)
decode likewise, so staging an element costs one add for its address plus
the bounds compares. x, w and out are passed flat (1-D), and shared-memory
indexes are unsigned (Numba adds no negative-index wrap to those).

Blocks loop over tiles with a grid-stride loop (any grid size is correct).

Determinism: each output element is accumulated by one thread, in increasing
kk, starting from 0, then stored once. Tile sizes and grid size change only
who computes an element, never its summation order, so the bits do not
depend on the launch configuration (float32 accumulates in float32, float64
in float64). Padding contributes 0 * w; zero inputs or weights are never
skipped, so NaN/Inf propagate as in direct summation.
"""

import functools

import numba
from numba import cuda

from ..._jit import cuda_device, cuda_kernel

# Positions of the entries of the int tuple `p` passed to the conv kernel.
(P_ND, P_NH, P_NW, P_OD, P_OH, P_OW, P_KD, P_KH, P_KW, P_SD, P_SH, P_SW, P_DD, P_DH, P_DW, P_PD, P_PH, P_PW,
 P_BATCH, P_CIN, P_COUT, P_GROUPS, P_CF, P_MTILES, P_NTILES) = range(25)


@cuda_device
def _dim_geometry(r, o, k, s, d, p, trans):
    """Geometry of one dim for phase r (forward: r = 0, one phase).

    Returns (o0, os, ja, c0, tc, k0, ks, ntaps, nj): output j of the phase is
    o = o0 + j*os; its tap t is k = k0 + t*ks and reads input
    i = j*ja + c0 + t*tc; the phase has nj outputs and ntaps taps."""
    if not trans:
        return 0, 1, s, -p, d, 0, 1, k, o
    # First output of the phase: the smallest o >= 0 with (o + p) % s == r.
    o0 = (r - p % s + s) % s
    nj = (o - o0 + s - 1) // s if o > o0 else 0
    a = s
    b = d
    while b != 0:  # gcd(s, d)
        a, b = b, a % b
    ks = s // a
    k0 = -1
    for kk in range(min(k, ks)):
        if (kk * d) % s == r:
            k0 = kk
            break
    if k0 < 0:
        return o0, s, 1, 0, 0, 0, 1, 0, nj
    ntaps = (k - k0 + ks - 1) // ks
    # (o0 + p - k0*d) is an exact multiple of s, so // is exact for either sign.
    return o0, s, 1, (o0 + p - k0 * d) // s, -(d // a), k0, ks, ntaps, nj


@functools.lru_cache(maxsize=None)
def conv_kernel(trans, tm, tn, rm, rn, bk, dtype_name):
    """The conv kernel for one tile shape and dtype (compiled lazily, once per
    signature). x, w and out are the flat (1-D) views of the C-contiguous
    5-D arrays. Launch with tm*tn threads per block:
    kernel[grid, tm*tn](x, w, out, p)."""
    bm, bn, nthreads = tm * rm, tn * rn, tm * tn
    ftype = getattr(numba, dtype_name)
    u = numba.uint64
    # Shared rows padded by one element: the A slice (and the transpose's B
    # slice) is written with kk fastest, which would otherwise hit one bank.
    bmp, bnp = bm + 1, bn + 1
    a_len, b_len = bk * bmp, bk * bnp  # shared array sizes must be constants of the closure

    @cuda_device
    def fma_steps(a_s, b_s, acc, af, bf, ta, tb, steps):
        """acc += A[:, kq] x B[kq, :] for kq < steps, from shared memory.
        Unsigned shared indexes: Numba adds no negative-index wrap to them,
        so each fragment load is one address plus a constant offset."""
        for kq in range(steps):
            ka = u(kq) * u(bmp) + ta
            kb = u(kq) * u(bnp) + tb
            for i in range(rm):
                af[i] = a_s[ka + u(i * tm)]
            for j in range(rn):
                bf[j] = b_s[kb + u(j * tn)]
            for i in range(rm):
                for j in range(rn):
                    acc[i, j] += af[i] * bf[j]

    @cuda_kernel
    def kernel(x, w, out, p):
        nd, nh, nw = p[P_ND], p[P_NH], p[P_NW]
        od, oh, ow = p[P_OD], p[P_OH], p[P_OW]
        kd, kh, kw = p[P_KD], p[P_KH], p[P_KW]
        sd, sh, sw = p[P_SD], p[P_SH], p[P_SW]
        dd, dh, dw = p[P_DD], p[P_DH], p[P_DW]
        pd, ph, pw = p[P_PD], p[P_PH], p[P_PW]
        batch, cin, cout, groups, cf = p[P_BATCH], p[P_CIN], p[P_COUT], p[P_GROUPS], p[P_CF]
        m_tiles, n_tiles = p[P_MTILES], p[P_NTILES]
        x_ch = cin * groups  # channels of x and of out
        o_ch = cout * groups
        in_px = nd * nh * nw
        out_px = od * oh * ow
        # Flat offset steps of x along (channel, d, h, w), of out along
        # (channel, w), and of the filter along the output channel n.
        if cf:
            xs_c, xs_w, os_c, os_w = in_px, 1, out_px, 1
        else:
            xs_c, xs_w, os_c, os_w = 1, x_ch, 1, o_ch
        xs_h = xs_w * nw
        xs_d = xs_h * nh
        ws_n = cin if trans else 1

        a_s = cuda.shared.array(a_len, ftype)
        b_s = cuda.shared.array(b_len, ftype)
        # Per position of the tile: batch index (-1: past the end), the input
        # index of tap 0 along d, h, w (for the bounds), and its flat offset
        # in x (channel 0 of the group).
        m_b = cuda.shared.array(bm, numba.int32)
        m_d = cuda.shared.array(bm, numba.int32)
        m_h = cuda.shared.array(bm, numba.int32)
        m_w = cuda.shared.array(bm, numba.int32)
        m_x = cuda.shared.array(bm, numba.int64)
        # Per reduction index of the step: channel (-1: past the end), tap
        # offsets of the input index along d, h, w, their flat offset in x,
        # and the flat offset in w of B[kk, 0].
        k_c = cuda.shared.array(bk, numba.int32)
        k_d = cuda.shared.array(bk, numba.int32)
        k_h = cuda.shared.array(bk, numba.int32)
        k_w = cuda.shared.array(bk, numba.int32)
        k_x = cuda.shared.array(bk, numba.int64)
        k_f = cuda.shared.array(bk, numba.int64)
        acc = cuda.local.array((rm, rn), ftype)
        af = cuda.local.array(rm, ftype)
        bf = cuda.local.array(rn, ftype)

        t = cuda.threadIdx.x
        if cf:  # neighbours write neighbouring positions (contiguous along w)
            ti_m = t % tm
            ti_n = t // tm
        else:  # neighbours write neighbouring channels
            ti_n = t % tn
            ti_m = t // tn
        ta, tb = u(ti_m), u(ti_n)

        phases = sd * sh * sw if trans else 1
        total = phases * groups * m_tiles * n_tiles
        for tile in range(cuda.blockIdx.x, total, cuda.gridDim.x):
            nt = tile % n_tiles
            rest = tile // n_tiles
            mt = rest % m_tiles
            rest //= m_tiles
            g = rest % groups
            phase = rest // groups
            rw = phase % sw if trans else 0
            rh = (phase // sw) % sh if trans else 0
            rd = phase // (sw * sh) if trans else 0
            o0d, osd, jad, c0d, tcd, k0d, ksd, ntd, njd = _dim_geometry(rd, od, kd, sd, dd, pd, trans)
            o0h, osh, jah, c0h, tch, k0h, ksh, nth, njh = _dim_geometry(rh, oh, kh, sh, dh, ph, trans)
            o0w, osw, jaw, c0w, tcw, k0w, ksw, ntw, njw = _dim_geometry(rw, ow, kw, sw, dw, pw, trans)
            mp = batch * njd * njh * njw
            kred = ntd * nth * ntw * cin
            m0 = mt * bm
            n0 = nt * bn
            if m0 >= mp:  # an empty tile of a short phase; the same for the whole block
                continue

            for mm in range(t, bm, nthreads):
                m = m0 + mm
                if m < mp:
                    jw = m % njw
                    q = m // njw
                    jh = q % njh
                    q //= njh
                    jd = q % njd
                    b = q // njd
                    i_d = jd * jad + c0d
                    i_h = jh * jah + c0h
                    i_w = jw * jaw + c0w
                    m_b[mm] = b
                    m_d[mm] = i_d
                    m_h[mm] = i_h
                    m_w[mm] = i_w
                    m_x[mm] = b * x_ch * in_px + g * cin * xs_c + i_d * xs_d + i_h * xs_h + i_w * xs_w
                else:
                    m_b[mm] = -1
            for i in range(rm):
                for j in range(rn):
                    acc[i, j] = 0

            for kb in range(0, kred, bk):
                for kq in range(t, bk, nthreads):
                    kk = kb + kq
                    if kk < kred:
                        c = kk % cin
                        q = kk // cin
                        tw = q % ntw
                        q //= ntw
                        th = q % nth
                        td = q // nth
                        e_d = td * tcd
                        e_h = th * tch
                        e_w = tw * tcw
                        tap = ((k0d + td * ksd) * kh + (k0h + th * ksh)) * kw + (k0w + tw * ksw)
                        k_c[kq] = c
                        k_d[kq] = e_d
                        k_h[kq] = e_h
                        k_w[kq] = e_w
                        k_x[kq] = c * xs_c + e_d * xs_d + e_h * xs_h + e_w * xs_w
                        if trans:  # w[tap, n, c]
                            k_f[kq] = tap * cout * cin + c
                        else:  # w[tap, c, g*cout + n]
                            k_f[kq] = (tap * cin + c) * o_ch + g * cout
                    else:
                        k_c[kq] = -1
                cuda.syncthreads()

                # Stage A[m, kk]: kk fastest for channels-last (contiguous
                # channels), m fastest for channels-first (contiguous w).
                for e in range(t, bk * bm, nthreads):
                    if cf:
                        mm = e % bm
                        kq = e // bm
                    else:
                        kq = e % bk
                        mm = e // bk
                    v = ftype(0)
                    if m_b[mm] >= 0 and k_c[kq] >= 0:
                        i_d = m_d[mm] + k_d[kq]
                        i_h = m_h[mm] + k_h[kq]
                        i_w = m_w[mm] + k_w[kq]
                        if 0 <= i_d < nd and 0 <= i_h < nh and 0 <= i_w < nw:
                            v = x[m_x[mm] + k_x[kq]]
                    a_s[u(kq) * u(bmp) + u(mm)] = v
                # Stage B[kk, n]: the filter's contiguous axis fastest
                # (forward: out channels; transpose: in channels).
                for e in range(t, bk * bn, nthreads):
                    if trans:
                        kq = e % bk
                        nn = e // bk
                    else:
                        nn = e % bn
                        kq = e // bn
                    v = ftype(0)
                    n = n0 + nn
                    if k_c[kq] >= 0 and n < cout:
                        v = w[k_f[kq] + n * ws_n]
                    b_s[u(kq) * u(bnp) + u(nn)] = v
                cuda.syncthreads()

                fma_steps(a_s, b_s, acc, af, bf, ta, tb, min(bk, kred - kb))
                cuda.syncthreads()

            for i in range(rm):
                mm = ti_m + i * tm
                m = m0 + mm
                if m < mp:
                    jw = m % njw
                    q = m // njw
                    jh = q % njh
                    q //= njh
                    jd = q % njd
                    b = q // njd
                    px = ((o0d + jd * osd) * oh + (o0h + jh * osh)) * ow + (o0w + jw * osw)
                    base = b * o_ch * out_px + g * cout * os_c + px * os_w
                    for j in range(rn):
                        n = n0 + ti_n + j * tn
                        if n < cout:
                            out[base + n * os_c] = acc[i, j]
            # The next tile overwrites m_b..m_x, which other threads may
            # still be reading in their store loop above.
            cuda.syncthreads()

    return kernel


@cuda_kernel
def fill(out, value):
    """out[:] = value over a flat array (grid-stride)."""
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = value


@cuda_kernel
def cast(src, dst):
    """dst[:] = src over flat arrays of different float dtypes (grid-stride)."""
    for i in range(cuda.grid(1), src.size, cuda.gridsize(1)):
        dst[i] = src[i]
