"""Depthwise forward convolution, channels-last: one input channel per group
(Keras' DepthwiseConv, the first half of SeparableConv).

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
"""

import numpy as np

from .._jit import allocating_kernel


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
