"""Channels-last to channels-first copies for the cpu backend's layout
changes (a one-output-channel call's input, a one-pixel channels-first
call's result; cpu.py): (B, S, C) -> (B, C, S).

NumPy's strided copy (`np.copyto(dst, np.moveaxis(src, -1, 1))`) moves one
element at a time: 0.7-0.9 ns per element, 2.6-3.9 ns with 128-256
channels, where its writes walk C planes at once. Here each block of V
positions is transposed in registers, V x V at a time
(`cpu_simd.vtranspose_over`), and written as whole
vectors along the positions (benchmarks/NOTES.md section 78).
"""

from .._jit import serial_kernel
from .cpu_rb import _min
from .cpu_simd import addr, itemsize, tile_dims, vtranspose_over


# Position blocks per tile: each channel chunk's V planes get runs of
# BLOCKS * V elements in turn (one block at a time across all the channels
# walked C planes at once, which share cache sets: 224^2 x 64 0.88x
# NumPy's time, 0.4x in runs)
BLOCKS = 16


@serial_kernel
def to_channels_first(src, dst, tile, t_begin, t_end):
    """Tiles [t_begin, t_end) of src (B, S, C) -> dst (B, C, S), both
    C-contiguous; tile t: image t // NT, positions [s0, s0 + BLOCKS * V)
    (at most S) with s0 = (t % NT) * BLOCKS * V, V the tile's lanes. The
    last positions of an image, fewer than V, are copied one element at a
    time."""
    B, S, C = src.shape
    _, NW, V = tile_dims(tile, dst)
    isz = itemsize(dst)
    SB = BLOCKS * V
    nt = (S + SB - 1) // SB
    sa = addr(src)
    da = addr(dst)
    send = sa + B * S * C * isz
    for t in range(t_begin, t_end):
        b = t // nt
        s0 = (t % nt) * SB
        s1 = _min(S, s0 + SB)
        whole = s0 + (s1 - s0) // V * V  # end of the whole blocks
        for c0 in range(0, C, V):
            n = _min(V, C - c0)
            for s in range(s0, whole, V):
                p = sa + ((b * S + s) * C + c0) * isz
                q = da + ((b * C + c0) * S + s) * isz
                # rows of fewer than V channels: whole-vector loads (masked
                # ones are slow on Zen 5) while the last row's stays in src
                vtranspose_over(dst, tile, q, p, C * isz, S * isz, n, send)
        for c in range(C):
            for s in range(whole, s1):
                dst[b, c, s] = src[b, s, c]
