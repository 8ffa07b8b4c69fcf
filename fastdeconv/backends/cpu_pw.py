"""Pointwise (1x1, stride 1) forward convolution with few channels,
channels-last: segmentation heads (a 1x1x1 conv to a few classes before a
sigmoid or softmax). Taken for at most 256 bytes of filters (cpu.py).

The register-blocked kernels fill a tile's vector lanes with output
channels, so a few of them leave most lanes empty; the vectors-along-W one
gathers its channels-last loads, and with one output channel it reads a
channels-first copy of the input, which costs more than the convolution
(64^3 x 32 channels -> 1: 33 ms, 7 ms with 16 channels). Here eight
pixels are computed together, each output channel one chain of
multiply-adds per pixel: eight independent chains keep the FMA pipes
busy, and the input is read from memory once (then from L1 for each
further output channel; benchmarks/NOTES.md section 49).

Term order: each output is one chain over the input channels in order,
from zero, fused multiply-adds (the `contract` flag); the register-blocked
kernels' order for a 1x1 convolution (one (kd, kh) group), so the same
bits.
"""

from .._jit import serial_kernel


@serial_kernel
def pointwise_cl(x, w, out, p_begin, p_end):
    """Pixels [p_begin, p_end) (cpu_rb.parallel_tiles splits them over
    threads). x (P, C); w (C, F); out (P, F)."""
    C, F = w.shape
    zero = out.dtype.type(0)
    p = p_begin
    while p + 8 <= p_end:
        for f in range(F):
            a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = zero
            for c in range(C):
                wc = w[c, f]
                a0 += x[p, c] * wc
                a1 += x[p + 1, c] * wc
                a2 += x[p + 2, c] * wc
                a3 += x[p + 3, c] * wc
                a4 += x[p + 4, c] * wc
                a5 += x[p + 5, c] * wc
                a6 += x[p + 6, c] * wc
                a7 += x[p + 7, c] * wc
            out[p, f] = a0
            out[p + 1, f] = a1
            out[p + 2, f] = a2
            out[p + 3, f] = a3
            out[p + 4, f] = a4
            out[p + 5, f] = a5
            out[p + 6, f] = a6
            out[p + 7, f] = a7
        p += 8
    for q in range(p, p_end):
        for f in range(F):
            s = zero
            for c in range(C):
                s += x[q, c] * w[c, f]
            out[q, f] = s
