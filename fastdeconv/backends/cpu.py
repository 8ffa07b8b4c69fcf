"""CPU backend: Numba kernels, parallel over output tiles.

The algorithm choice is made here, in `_run`:

- channels-last, both ops: `cpu_rb.cl_kernel`, register-blocked (8 output
  positions x 2 vectors = 32 float32 / 16 float64 output channels held in
  AVX-512 registers across all taps and input channels, 12 positions for
  stride-1 calls off AMD Zen (cpu_rb.CL_WIDE_ROWS), 6 x 2 vectors = 16
  float32 channels on AVX2 machines; x 1 vector when a group has at most
  one vector of output channels; transposes are phase-decomposed so every
  phase is a dense gather; strided transposes with few input channels
  copy each block's taps into one run per row, GATHER). See cpu_rb and
  cpu_simd.
- transposes with stride == kernel, no padding, output stride x input
  (PATCH: the 2x2x2 stride-2 upsampling): `cpu_patch.patch_cl` /
  `patch_cf`, a block of input pixels runs every tap (one output each),
  where cl_kernel's blocks would each get one short run.
- channels-last depthwise forward convolutions (one input channel per
  group, DEPTHWISE): `cpu_dw.depthwise_cl`, channels innermost, no tiles
  (each output has only the taps as terms).
- channels-last 1x1 stride-1 forward convolutions with few channels
  (POINTWISE, segmentation heads): `cpu_pw.pointwise_cl`, eight pixels at
  a time, one FMA chain per output (the tiles' term order).
- channels-last forward convolutions without groups and at most
  SHORT_MAX_TERMS terms per output (SHORT: a video network's 3-channel
  first layer, 1x1 layers, a 3-D U-Net's 16-channel layers):
  `cpu_short.short_cl`, cl_kernel's tile and term order a line at a time,
  without its row spaces and tap tables; the same bits.
- their channels-first form, with a W stride of 1 and lines
  (rows, or whole planes for SAME stride-1 rows) that fill vectors along
  W (SHORT_CF): `cpu_short.short_cf`, the same loop with wv_kernel's tile
  (output channels x output columns), each (kd, kh) tap's (kw, c) steps
  one run through a table of input offsets; the same bits as the
  channels-last call.
- channels-first forward convolutions and stride-1 transposes with many
  channels and rows that would leave vector lanes empty, or a W stride,
  and strided transposes with many channels, W phases narrower than a
  vector, or one vector and long reductions (CF_BANDS):
  `cpu_cfband.cfband_kernel`, cl_kernel's tile on bands of input rows
  packed channels-last by each thread (several images' in a band of a
  small plane, W-edge columns apart, where cpu_cfband.band_plan's count
  says it pays); the same bits as the channels-last call.
- channels-first strided transposes with 1-4 input channels (CF_GATHER):
  `cpu_cfgather`, each input row expanded once into runs of output
  columns (the W phases' taps side by side in the lanes, weights per
  phase), each output row's (D, H) taps one run over them; the same bits
  as the channels-last call.
- channels-first, both ops; and channels-last with at most WV_NARROW
  output channels (gathered loads for short reductions, WV_NARROW_STEPS;
  with one output channel through a channels-first copy of the input,
  NARROW_ONE_CHANNEL_CF):
  `cpu_rb.wv_kernel`, register-blocked with roles swapped (8 output
  channels x 32 float32 / 16 float64 output positions along W, 6 x 16
  float32 on AVX2; 1 x 32 for one output channel; channels-first input
  rows copied per output row into a zero-padded array, WV_PACK, read with
  plain vector loads, and rows of up to one vector as two output rows
  per tile, WV_ROW_PAIRS; otherwise contiguous or gathered input vectors
  along W, masked at the edges). Same term order, hence the same bits, as
  cl_kernel.
- channels-first calls on one input pixel (ONE_PIXEL_CL): the
  channels-last kernels on the same memory, the result copied into the
  channels-first layout; a transpose whose every output position receives
  one tap, with read-only filters (ONE_PIXEL_PATCH), runs
  cpu_patch.patch_cl with the positions as output channels, whose stores
  are the channels-first result.

Filters are packed for the kernel's tile (and checked for NaN/Inf) once
per read-only filter array (`_memo`; a layer's weights are read-only), on
every call otherwise. A channels-last result can be written straight into
a channel slice of a wider array (`out=`, a Model's concatenations).

Every output element has exactly one writer and receives its terms in an
order fixed by the shapes (never by the thread count), so results are the
same bits at any NUMBA_NUM_THREADS. Zero weights or inputs are never
skipped, so NaN/Inf propagate as in direct summation.

Threading: Numba's OpenMP layer with OMP_WAIT_POLICY=PASSIVE (unless the
user set it; set in fastdeconv._jit): with the default (spinning) policy
our idle threads and TensorFlow's spin against each other on a small
machine and a small call costs ~6 ms instead of ~0.1 ms, and a parallel
layer kernel's threads slow the convolution after it (benchmarks/NOTES.md).
"""

import functools
import math
import sys
import types

import numba
import numpy as np

from .. import _alloc

from . import cpu_cfband, cpu_cfgather, cpu_dw, cpu_layout, cpu_patch, cpu_pw, cpu_rb, cpu_short, cpu_simd, reference

# Results of STREAM_MIN_BYTES or more stored with streaming (non-temporal)
# stores, which write memory without first reading each line
# (cpu_simd.vtstore_stream): cpu_short's few-input-channel lines in both
# layouts, cpu_patch's channels-last 2x2x2 upsampling, cl_kernel's tiles,
# cpu_cfgather's channels-first few-input-channel transposes and
# cpu_pw.pointwise_cf's 1x1 convolutions (section 127). On an
# Intel Xeon (Emerald Rapids) VM a 90 MB result was written at 18-23 GB/s
# against 7-8 with plain stores; the 3-channel video conv3d (7 x 224^2 x 3
# -> 64) ran 0.61-0.85x as long, the 64^2 x 3 -> 128^2 x 256 k3 s2
# transpose 0.55-0.70x, the U-Net's k3 s2 transpose mostly 0.83-0.92x
# (benchmarks/NOTES.md section 120). On an AMD Zen 4 VM the same calls
# took 0.55-0.72x and 0.62-0.89x the time, the U-Net's k3 s2 transpose
# 0.89x (one and two threads; section 142). On a Zen 3 VM they were slower
# (section 39): off on Zen 1-3. Zen 5 is not measured.
STREAM_STORES_SLOWER = ("znver1", "znver2", "znver3")


def _streaming_stores_pay(host_cpu):
    """STREAM_STORES' default for an LLVM CPU name."""
    return host_cpu not in STREAM_STORES_SLOWER


STREAM_STORES = _streaming_stores_pay(cpu_simd.HOST_CPU)
STREAM_MIN_BYTES = 16 << 20

# Forward convolutions with dw == 1 and no groups read (kw, c) as one run
# (same terms, same order); tests switch it off to check the per-tap path.
FUSE_KW = True

# Channels-last register-blocked tiles: consecutive lines with the same H
# taps inside the input make one row space, with the columns that miss a W tap
# grouped apart (cpu_rb.row_spaces), for convolutions and stride-1-along-H
# transposes; False: a row space per line (tests compare the two).
FOLD_LINES = True

# Channels-last forward convolutions with one input channel per group and
# several groups (depthwise) use cpu_dw; False: the register-blocked paths
# (tests compare the two). 3x3 depthwise on 32-256 channels: 2.7-6.6x
# slower than TensorFlow on the register-blocked paths (benchmarks/NOTES.md).
DEPTHWISE = True
# ... those with multiplier 1, a vector of channels or more (a last part
# vector overlapping the one before) and rows of at
# least DEPTHWISE_CL_VECTORS_MIN_COLUMNS output columns (or 3-D ones with
# at most DEPTHWISE_CL_VECTORS_3D_CHANNELS channels: 9 or more (kd, kh)
# runs per position) a vector of channels at a time with a weight vector
# per tap (cpu_dw.depthwise_cl_vectors, DEPTHWISE_CL_POSITIONS output
# positions per tile; benchmarks/NOTES.md section 97: 112^2 x 32 0.29-0.35x
# the time, 28^2 x 256 0.62, 32^3 x 32 0.33; rows of 7-14 columns with
# 256-960 channels 1.2-1.8x, where depthwise_cl's loops along the channels
# run long). False turns it off (tests compare the two).
DEPTHWISE_CL_VECTORS = True
DEPTHWISE_CL_POSITIONS = 8
DEPTHWISE_CL_VECTORS_MIN_COLUMNS = 20
DEPTHWISE_CL_VECTORS_3D_CHANNELS = 64
# ... but first, those with multiplier 1, a vector of channels or more,
# stride 1, at most DEPTHWISE_CF_BLOCKS_MAX_POSITIONS input positions in
# the planes an output plane reads and rows of
# DEPTHWISE_CL_BLOCKS_MIN_COLUMNS output columns or more (or 3-D) run on
# the channels-first blocks' padded planes, filled a pixel's vector at a
# time (cpu_dw.depthwise_cl_blocks: no W edges one position at a time;
# benchmarks/NOTES.md section 97: 56^2 x 144 0.46x depthwise_cl's time,
# 14^2 x 576 0.80, 6^3 x 512 0.74; rows of 7-10 columns 1.1-1.4, left to
# depthwise_cl; stride 2 1.0-1.2, copying 4 input pixels per output)
DEPTHWISE_CL_BLOCKS = True
DEPTHWISE_CL_BLOCKS_MIN_COLUMNS = 12
# ... and channels-first ones (2-D and 3-D) use cpu_dw.depthwise_cf
# (vectors along W, a tile of DEPTHWISE_CF_ROWS output rows, the input
# planes of an output plane padded per tile, a strided plane's columns
# split by phase) instead of vectors along W with a 1-channel tile per
# group (benchmarks/NOTES.md section 94; 8 rows: 0.9-0.95x the time of 4,
# 1.0-1.2x that of 2 rows, the least on every measured plane; W strides
# of 3 and more, whose copy gathers each phase's columns, section 95:
# 0.7-0.95x the time there). False turns it off (tests compare the two).
DEPTHWISE_CF = True
DEPTHWISE_CF_ROWS = 8
# ... where tiles of output rows would leave lanes empty (rows of part of a
# vector), the tiles cover the output plane's positions laid out with the
# few columns of padding a row reads (cpu_dw.depthwise_cf's flat tiles) if
# that computes at most DEPTHWISE_CF_FLAT_RATIO of the lanes, with tiles
# of DEPTHWISE_CF_ROWS or DEPTHWISE_CF_FLAT_VECTORS vectors, W stride 1
# only (benchmarks/NOTES.md section 95: 7^2 and smaller planes and small
# 3-D ones 0.8-0.93x the time of row tiles; rows of 11-28 columns, not
# flat by the rule, were slower flat, as were stride-2 rows)
DEPTHWISE_CF_FLAT_RATIO = 0.75
DEPTHWISE_CF_FLAT_VECTORS = 4
# ... and those whose channels fill at least DEPTHWISE_CF_BLOCKS_FILL of
# the vectors of channels they make and with at most
# DEPTHWISE_CF_BLOCKS_MAX_POSITIONS input positions in the KD planes an
# output plane reads run a vector of channels at a time
# (cpu_dw.depthwise_cf_blocks: the block's planes transposed in registers,
# DEPTHWISE_CF_BLOCK_POSITIONS output positions per tile; benchmarks/
# NOTES.md section 96: 7^2 x 960 1.67 -> 1.07x the channels-last time,
# 14^2 x 576 s2 2.46 -> 1.34, 8 x 4^2 x 256 2.72 -> 1.36; 112^2 x 32 0.26
# -> 0.29, so larger planes stay on depthwise_cf; 72-120 channels of
# float32 on 64-byte vectors 0.9-1.0x the time, 8-40 1.0-1.5x). False
# turns it off (tests compare the two).
DEPTHWISE_CF_BLOCKS = True
DEPTHWISE_CF_BLOCKS_MAX_POSITIONS = 4096
DEPTHWISE_CF_BLOCKS_FILL = 0.85
DEPTHWISE_CF_BLOCK_POSITIONS = 8
# The vector depthwise kernels (all of cpu_dw's but depthwise_cl) run on
# one thread below DEPTHWISE_SERIAL_MACS multiply-adds (about 1 ms of one
# core at their 5-10 G/s), above in chunks of CHUNK_WORK /
# DEPTHWISE_MAC_WORK or more (cpu_rb.parallel_tiles), as depthwise_cl's
# calls of any size. On an AMD Zen 4 VM, where waking the
# pool's thread took ~50-130 us, calls of 0.15-0.85 ms (1 x 112^2 x 32,
# 56^2 x 144, 28^2 x 192, 14^2 x 576, 4 x 28^2 x 256) ran in 0.69-0.93x
# their time in 2-16 chunks on two threads; from ~15M (1 x 112^2 x 144, 4
# x 56^2 x 144) one thread was as fast or up to 1.35x slower
# (benchmarks/NOTES.md section 145).
DEPTHWISE_SERIAL_MACS = 12_000_000
DEPTHWISE_MAC_WORK = 16  # parallel_tiles' work per depthwise multiply-add

# Channels-last forward convolutions without groups, with dw == 1 and a
# reduction of at most cpu_rb.SUM_GROUP_TERMS terms (one partial sum) on
# cl_kernel's 2-vector tile run cpu_short.short_cl (and, by the flags
# below, W-dilated ones, one vector of channels, SHORT_MAX_TERMS): one
# output line per tile, its (kd, kh) taps listed once, a vrun of KW * C
# steps each; the same bits. One thread, against cl_kernel: 7 x 56^2 x 3 -> 64 1 x 3 x 3
# 0.69-0.74x the time, 7 x 224^2 0.56-0.66, 224^2 x 3 -> 32 s2 0.54,
# 56^2 x 8-28 -> 64 0.80-0.91, 28^2 x 16 -> 256 0.98, 32^3 x 4 -> 32 3 x
# 3 x 3 0.78 (benchmarks/NOTES.md section 102). False: cl_kernel.
SHORT = True
# ... and with a W dilation (SHORT_DILATED): a vrun of C steps per kw
# (0.59-0.98x cl_kernel's time, one thread; section 104).
SHORT_DILATED = True
# ... and with one vector of output channels (SHORT_ONE_VECTOR), on the
# 8-row 1-vector tile rather than cl_kernel's 16 rows: a 64-column line
# then has a quarter of its blocks on the W edges (one run per kw), not
# half. One thread, against cl_kernel: 224^2 x 3 -> 16 3x3 0.68-0.75x the
# time, s2 0.72, 8000 x 1 -> 16 k9 0.49-0.60, 112^2 x 16 -> 16 0.86-0.91,
# 32 x 64^2 x 1 -> 16 3x3x3 0.70-0.85 (1.44-1.48 on 16 rows; section 104).
SHORT_ONE_VECTOR = True
# ... and with up to SHORT_MAX_TERMS terms per output: cl_kernel's partial
# sums of SUM_GROUP_TERMS (kd, kh) groups, each added to the total in turn.
# One thread, against cl_kernel: 64^3 x 16 -> 16 3x3x3 (432 terms, the
# U-Net's) 0.91-0.96x the time, 32^3 x 16 -> 32 0.95-0.96, 4 x 56^2 x 32
# -> 64 3x3 (288) 0.97; 576-864 terms 0.98-0.99 (section 104).
SHORT_MAX_TERMS = 512
# ... and channels-first ones with a W stride of 1 (any dilation), at least
# SHORT_CF_MIN_CHANNELS output channels and lines of at least one vector
# whose lanes short_cf's tile fills to SHORT_CF_MIN_FILL:
# cpu_short.short_cf, the same loop with vectors along W (the same bits as
# channels-last). A line is an output row, or with an H stride of 1 and
# OW == W (SAME) the whole (OH, OW) plane, so that narrow rows leave no
# lanes empty. Shorter lines, and those that fill less (20 columns of 32
# lanes: 1.03-1.11x wv_kernel's time; 14 of 16: 1.17x), stay on
# wv_kernel, which pairs rows, as do lines whose lane masks (kept per
# geometry) would pass SHORT_CF_MASK_BYTES. One thread, against wv_kernel: NCDHW 7 x
# 224^2 x 3 -> 64 1 x 3 x 3 0.50-0.52x the time, 224^2 0.59-0.72, 16 x
# 64^2 x 1 -> 32 3 x 3 x 3 0.44-0.70, 32^3 x 4 -> 32 0.61-0.92; W
# dilation 2: 2 x 112^2 x 16 -> 32 0.79, 7 x 56^2 x 3 0.59
# (benchmarks/NOTES.md section 103). False: wv_kernel.
SHORT_CF = True
SHORT_CF_MIN_CHANNELS = 2
SHORT_CF_MIN_FILL = 0.7
SHORT_CF_MASK_BYTES = 64 << 10
# ... and, for 1x1 convolutions with lines that fill SHORT_CF_1X1_FILL of
# the lanes, before CF_BANDS too (one thread, against the bands: NCHW 112^2
# x 64 -> 64 1x1 0.74x the time, 56^2 x 64 -> 256 0.74, 56^2 x 256 -> 64
# 0.77, 28^2 x 128 -> 256 0.82; 4 x 7^2 x 256 -> 256, 49 of 64 lanes, 1.09)
SHORT_CF_1X1_FILL = 0.9

# Channels-last 1x1 stride-1 forward convolutions without groups and with
# at most POINTWISE_BYTES of filters (input x output channels x itemsize:
# 64 float32 multiply-adds per pixel) use cpu_pw (segmentation heads);
# False: the other paths (tests compare them). 64^3 x 16 -> 2, float32:
# 2.3 -> 1.4 ms; 32 -> 1: 29 -> 1.8 ms; 32 -> 3 (96 per pixel) 1.16x, 64
# -> 2 0.91x (benchmarks/NOTES.md section 49).
POINTWISE = True
POINTWISE_BYTES = 256
# ... or up to POINTWISE_OUT_BYTES of output channels (8 float32) from up
# to cpu_pw.PW_MAX_CHANNEL_BYTES of input channels: NDHWC 64^3, one and two
# threads, against cl_kernel: 16 -> 8 0.19-0.34x the time, 32 -> 4
# 0.22-0.27, 32 -> 8 0.26-0.31, 24 -> 6 0.25-0.41, 64 -> 2 0.67-0.88, 64 ->
# 4 0.68, 64 -> 8 0.52-0.82, 48 -> 3 0.99-1.05; 16 output channels
# 0.52-1.04, left as they were (benchmarks/NOTES.md section 101)
POINTWISE_OUT_BYTES = 32
# 1, 2 or 4 output channels: the input's whole chunks of a vector's
# channels transposed in registers and used there, on tiles of 4
# accumulators (cpu_pw.pointwise_cl, PW_FUSED_TILES; measured with
# AVX-512's 32 registers only)
POINTWISE_FUSED = True
# Channels-first 1x1 stride-1 convolutions of at most
# POINTWISE_CF_MAX_CHANNELS output channels (a segmentation head in
# PyTorch's layout), or up to POINTWISE_CF_WIDE_CHANNELS from at most
# POINTWISE_CF_WIDE_INPUT_CHANNELS: cpu_pw.pointwise_cf, whose lanes are
# the positions already. NCDHW 64^3, one thread, against vectors along W:
# 16 -> 2 0.47x the time, 32 -> 1 0.51, 128 -> 2 0.75, 64 -> 4 0.76, 8 ->
# 6 0.60, 16 -> 8 0.84; the wide tile from 64 input channels 1.05-1.14
# (64 -> 6, 64 -> 8), left on vectors along W (benchmarks/NOTES.md
# section 100).
POINTWISE_CF = True
POINTWISE_CF_MAX_CHANNELS = 4
POINTWISE_CF_WIDE_CHANNELS = 8
POINTWISE_CF_WIDE_INPUT_CHANNELS = 32
# ... or any number of channels on planes of POINTWISE_CF_MIN_POSITIONS or
# more, where the short-reduction kernel and the bands ran 1.05-1.5x the
# channels-last time and pointwise_cf 0.85-1.0 (2-D), 1.13-1.45 (3-D); on
# 7^2 planes (two tiles of 32 positions, one part empty) it was 1.07-1.10
# against 0.94-1.01 (benchmarks/NOTES.md section 107)
POINTWISE_CF_MIN_POSITIONS = 128
# ... reading the input planes a group at a time (the sums waiting in the
# output between groups, cpu_pw.pointwise_cf) where an image's input is at
# least POINTWISE_CF_GROUP_BYTES: 8 planes for 2 output channels, 4 for
# 3-8. Each plane is a stream, and NCDHW 64^3 x 16 -> 2 ran in 0.53-0.74x
# the time of all 16 at once (one thread); 16 -> 8 and 16 -> 4 0.73-0.95
# with 4; 64 -> 8 0.74x the channels-last time, 1.02 all at once. One
# output channel (32 -> 1: 1.10-1.13), more than 8 (1.4-3.9x slower in
# groups) and inputs in L2 (32 x 112^2: 1.07-1.27) read every plane at
# once (benchmarks/NOTES.md sections 105 and 107).
POINTWISE_CF_GROUP_BYTES = 4 << 20


def _pointwise_cf_group(C, F, P, itemsize):
    """The input planes cpu_pw.pointwise_cf reads at once (see
    POINTWISE_CF_GROUP_BYTES)."""
    if F == 1 or F > POINTWISE_CF_WIDE_CHANNELS or C * P * itemsize < POINTWISE_CF_GROUP_BYTES:
        return C
    return min(C, 8 if F == 2 else 4)


# ... and with several blocks of output channels, all planes at once, from
# POINTWISE_CF_PACK_BYTES of input per image (read from memory), each
# span's tiles copied a plane at a time into a scratch array that every
# block reads (cpu_pw.pointwise_cf): NCDHW 64^3 x 32 -> 32 1.08-1.18x the
# channels-last time -> 0.97-1.03, 64^3 x 16 -> 32 1.64-1.69 -> 1.27-1.29,
# 40^3 x 32 -> 64 1.30-1.35 -> 1.16-1.22; inputs in the caches pay for the
# copy (NCHW 56^2 x 256 -> 64 0.96-0.99 -> 1.10-1.12; benchmarks/NOTES.md
# section 111). That was on AMD Zen 5; on an Intel Xeon (Emerald Rapids)
# VM the copy made the same calls slower (reading the planes directly:
# 0.64-1.00x the time on one thread, 0.68-1.04 on two in 11 of 12
# samples; section 129), so only on AMD Zen. On an AMD Zen 4 VM, with the
# copy's prefetches (cpu_pw.PW_CF_PREFETCH_PLANES), NCDHW 1x1 calls from 4
# MB of input and more ran in 0.72-1.00x the time of the direct reads
# from 32-128 input channels (64 included, whose 1 KB runs section 111
# found too short for the copy without the prefetches), and with 16 input
# channels 0.92x into plainly stored results but 1.19x into results
# stored with streaming stores (STREAM_STORES), where 16 planes read at
# once keep up (section 143).
POINTWISE_CF_PACK = cpu_simd.HOST_CPU.startswith("znver")
POINTWISE_CF_PACK_BYTES = 4 << 20
POINTWISE_CF_PACK_STREAM_MIN_CHANNELS = 32


def _pointwise_cf_pack(C, F, P, itemsize, tile, stream=None):
    """Whether cpu_pw.pointwise_cf copies its input spans to scratch
    first (see POINTWISE_CF_PACK, POINTWISE_CF_PACK_BYTES and
    POINTWISE_CF_PACK_STREAM_MIN_CHANNELS): all planes at once, more than
    one block of output channels, a tile's input within the kernel's span
    array, and, where the kernel stores with streaming stores (`stream`:
    its argument, cpu._streams), enough input channels."""
    NJ = tile.nvec * tile.lanes(itemsize)
    return (POINTWISE_CF_PACK and (not stream or C >= POINTWISE_CF_PACK_STREAM_MIN_CHANNELS)
            and _pointwise_cf_group(C, F, P, itemsize) == C and F > tile.rows
            and C * P * itemsize >= POINTWISE_CF_PACK_BYTES
            and C * NJ * itemsize <= cpu_pw.PW_CF_INPUT_SPAN_BYTES)


# Channels-last calls with at most WV_NARROW float32 output channels per
# group (half as many float64) use the vectors-along-W kernel; 0 turns it off.
# Half a vector register: 8 with AVX-512, 4 with AVX2 (where the
# channels-last tile's one-vector form already covers 8).
WV_NARROW = cpu_simd.VBYTES // 8
# ... and at most WV_NARROW_STEPS reduction steps per output (taps x input
# channels; a strided transpose's output gets 1 tap in s per dimension);
# None: no limit. The gathers of its channels-last loads are slow on AMD's
# Zen 3 (AVX2) and Zen 5 (AVX-512): on Zen 3 the one-vector channels-last
# tile was 1.3-2.6x faster on 3x3 layers with 4-128 input channels, the
# gathered path 5-15 % faster only on reductions of 16-32 steps (1x1x1
# heads, the 8-channel stride-2 transpose chain); on Zen 5, with 64-byte
# vectors, the gathers took 2.0-4.0x the time of the packed rows below
# (benchmarks/NOTES.md section 74).
WV_NARROW_STEPS = 32
# ... and past WV_NARROW_STEPS, with 2-4 float32 output channels: vectors
# along W on input rows packed channels-first by each thread (V x V blocks
# transposed in registers, as cpu_cfband's bands the other way), instead of
# the one-vector channels-last tile, which computes 8 channels for 2-4 (a
# decoder's RGB head, NHWC 64 x 32^2 x 64 -> 3 k4 s2: 12.8 ms against TF's
# 12.3; benchmarks/NOTES.md section 69). False turns it off.
WV_CL_ROWS = True

# Channels-last calls on the vectors-along-W kernel with one output channel
# read a channels-first copy of the input (contiguous vectors along W
# instead of gathers); with one channel both layouts of the result are the
# same memory, and the kernel's term order is the same, so the same bits.
# The 1-channel stride-2 transpose of the chain (2x16x56x56x8): 4.1 ms with
# gathers, 0.5 ms copy + 2.5 ms. False turns it off (tests compare the two).
NARROW_ONE_CHANNEL_CF = True
# ... whatever the reduction's length up to this many input channels, or
# with at least NARROW_ONE_CHANNEL_CF_MIN_TAPS taps; else, as other narrow
# calls, only up to WV_NARROW_STEPS (the copy, cpu_layout's, then costs
# more than the one-vector channels-last tile saves). 1 output channel,
# two threads, copy route against the tile, NHWC 2 x 128^2: k3 with 8-128
# input channels 0.41-0.62x the tile's time, 256 1.02x; k5 0.26-0.43x up
# to 128, 256 0.83x; 32^3 k3 64 -> 1 0.90x; 4 x 64^2 transposes k3 s1/s2
# 16 and 64 -> 1 0.31-0.52x; 1x1 128 -> 1 2.7x, 256 3.7x
# (benchmarks/NOTES.md sections 74 and 78; with NumPy's copy, 64 channels
# took 1.63x at k3).
NARROW_ONE_CHANNEL_CF_MAX_CHANNELS = 32
NARROW_ONE_CHANNEL_CF_MIN_TAPS = 9
# ... except with 16-64 input channels and at least
# NARROW_ONE_CHANNEL_CF_MIN_TAPS taps, where each thread packs its input
# rows channels-first instead (WV_CL_ROWS, as for 2-4 output channels),
# when they fit WV_PACK_BYTES: no copy of the whole input. Two threads, one
# process, rows against the copy (3x3 and 3x3x3, forward and k3 s2
# transposes): 16-64 channels 0.29-0.76 back to back, 0.54-0.93 after
# pauses; 8 channels 0.63-1.38, and the chain's 1-channel
# transpose (8 channels, 1x3x3 s 1x2x2) 1.1-1.3x (benchmarks/NOTES.md
# section 117). Not measured past 64 channels or on fewer taps.
NARROW_ONE_CHANNEL_ROWS_CHANNELS = (16, 64)

# Channels-first calls on the vectors-along-W kernel: each output row's
# input rows are copied into one array, zeros around each row (for a W
# stride s > 1 split into s rows of every s-th column), when that
# array takes at most WV_PACK_BYTES (one per chunk of tiles), and there
# are WV_PACK_MIN_ROWS output rows per thread or more, or the copies are
# cheap against the call anyway: each chunk of tiles packs the rows of its
# first output row even when an earlier chunk did (one 1-D row in 16
# chunks would be packed 16 times), and a copied element costs about
# WV_PACK_COPY_COST multiply-adds (perf, 64^3 x 16 -> 16 k3: 12 % of the
# samples for 9216 elements per output row of 442k multiply-adds); packed
# when those repeated copies stay under a tenth of the call (NCHW 14^2 x
# 512 -> 512 at batch 1, 14 output rows: 6.9 -> 6.0 ms). A run then reads
# lines one row apart with plain loads, instead of masked loads of lines a
# channel plane apart, which share the cache sets, or gathers; the same
# values, so the same bits. False turns it off (tests compare the two).
WV_PACK = True
WV_PACK_BYTES = 2 << 20
WV_PACK_MIN_ROWS = 16
WV_PACK_COPY_COST = 6

# Channels-first calls with packed rows and one W phase: the 2-vector tile
# holds two output rows, one vector each, where two vectors along one row
# would pad it as much as the 8 x 1 tile's rule says (cpu_rb.wv_row_pairs:
# rows of up to 8 float32 columns on AVX2, or 17-24, ...), instead of that
# 8 x 1 tile (8 broadcasts per 8 FMAs against 6 per 12). The same terms
# in the same order, so the same bits (a tap only one of the two rows has
# multiplies zeros for the other). One thread: NCHW 8 x 7^2 x 512 -> 512
# k3 26.1 -> 21.4 ms, NCDHW 8^3 x 128 -> 128 5.9 -> 5.5 ms, 8^3 x 512 ->
# 512 66 -> 49 ms (benchmarks/NOTES.md section 53). False turns it off
# (tests compare the two).
WV_ROW_PAIRS = True

# Channels-first calls with packed rows kept between output rows, one W
# phase, H stride and dilation 1 and a last W chunk of at most one vector
# (56 float32 columns on AVX2: 16 + 16 + 16 + 8): that chunk of two output
# rows runs as one tile, a vector each (cpu_rb.wv_tail_pairs), instead of
# one tile per row with an empty half; one more packed row per plane and a
# row of zeros (taken only while they stay within WV_PACK_BYTES). The
# same bits. NCHW 56^2 x 256 -> 256 k3: 7-9 % faster on one and two
# threads. With H stride 2 (two more rows per plane): 0.92-1.09x, no clear
# gain (benchmarks/NOTES.md sections 59, 61). False turns it off (tests
# compare the two).
WV_TAIL_PAIRS = True

# Channels-first forward convolutions with one group and W dilation 1, and
# stride-1 transposes (as convolutions whose taps read the input in
# reverse; one run per W tap, as cl_kernel's transposes), run cl_kernel's
# tile on bands of input rows packed channels-last (cpu_cfband) instead of
# vectors along W, when they have at least
# CF_BANDS_MIN_CHANNELS input and output channels and either
# CF_BANDS_ANY_ROW_CHANNELS, a W stride, or output rows that leave some of
# the vectors-along-W tile's lanes empty (not a multiple of its 2 vectors:
# rows of 7, 14 or 56 float32 columns on AVX2), and while one band row
# takes at most CF_BANDS_MAX_BYTES. Vectors along W multiply padding in
# every lane at the W edges, and strided rows need sub-rows or gathers.
# The same bits as the channels-last call. One thread, k3 SAME, time
# against vectors along W: NCHW 8 x 7^2 x 512 -> 512 0.89, 4 x 14^2 x 512
# 0.89, 56^2 x 256 0.91, 112^2 x 128 s2 0.86, NCDHW 8^3 x 128 0.86; 16
# columns (full lanes) with 64 channels, and 32 channels: within 5 %
# either way, left on vectors along W. Stride-1 transposes, against the
# channels-last time: 8 x 7^2 x 512 -> 256 1.15 -> 1.03, 28^2 x 256 -> 128
# 1.21 -> 1.07, 4 x 14^2 x 512 1.19 -> 1.14 (benchmarks/NOTES.md section
# 62). Strided transposes (a block of positions per H and W phase, stored
# a column at a time) with CF_BANDS_ANY_ROW_CHANNELS: one thread, against
# the channels-last time, NCHW 16 x 4^2 x 512 -> 256 k4 s2 2.38 -> 1.13,
# 16 x 8^2 x 256 -> 128 1.28 -> 1.07, 28^2 x 256 -> 128 k3 s2 1.18 ->
# 1.14; with 64 output channels vectors along W were as fast or faster
# (16 x 16^2 x 128 -> 64 k4 s2 1.01 against 1.22, NCDHW 16^3 x 64 -> 64
# k3 s2 0.96 against 1.43; section 67), except where a W phase's columns
# fill less than one vector along W (CF_BANDS_NARROW_PHASE_CHANNELS then;
# Zen 5, one thread: NCHW 8 x 8^2 x 128 -> 64 k4 s2 2.17 -> 1.09, 32 -> 32
# 1.92 -> 1.33, NCDHW 8^3 x 64 -> 64 k3 s2 1.96 -> 1.16; with 16 channels
# 0.92-1.2x vectors along W's time; a full vector, 16^3 x 64 -> 64: 1.13
# against 1.21; section 82), and with CF_BANDS_ANY_ROW_CHANNELS input and
# CF_BANDS_ONE_VECTOR_PHASE_OUT_CHANNELS output channels where a phase
# fills one vector (the 16 x 1 tile) and an output's reduction (taps / s
# per dimension x input channels) has CF_BANDS_ONE_VECTOR_PHASE_STEPS
# steps or more (after sections 83-87, one thread: NCHW 16 x 16^2 x 128
# -> 64 k4 s2, 512 steps, 1.09 -> 1.04, 8 x 16^2 x 256 -> 64 1.21 -> 1.03,
# NCDHW 16^3 x 128 -> 64 k3 s2, 432, 1.14 -> 1.04; 2-D k3 s2, 288 steps,
# 1.07 -> 1.18; with 32 output or 64 input channels vectors along W stay
# ahead, 1.19 against 1.23, 1.15 against 1.22; two vectors, 32^2 x 128 ->
# 64: 1.03 against 1.28; section 88). False turns it off (tests compare
# the two).
CF_BANDS = True
# The band tile's rows as cl_kernel's 2-vector stride-1 tile (12 off AMD
# Zen, cpu_rb.CL_WIDE_ROWS) from this many input channels; 8 below. Intel
# Xeon VM, 12 / 8 rows, four runs: NCHW 8 x 7^2 x 512 0.85-1.03, 4 x 14^2 x
# 512 0.92-0.97, 56^2 x 256 0.92-1.00, NCDHW 8^3 x 128 0.98-1.01; fewer
# channels mixed (32^3 x 64 0.95-1.07, 8 x 24^2 x 32 0.91-1.10:
# benchmarks/NOTES.md section 121).
CF_BANDS_WIDE_CHANNELS = 128
CF_BANDS_MIN_CHANNELS = 64
CF_BANDS_ANY_ROW_CHANNELS = 128
CF_BANDS_NARROW_PHASE_CHANNELS = 32
CF_BANDS_ONE_VECTOR_PHASE_OUT_CHANNELS = 64
CF_BANDS_ONE_VECTOR_PHASE_STEPS = 384
# ... and, since the band tile goes to the channel planes from the
# registers (section 109), 3-D strided transposes with one-vector W phases
# from CF_BANDS_ONE_VECTOR_PHASE_WIDE_CHANNELS input channels (and
# CF_BANDS_NARROW_PHASE_CHANNELS output channels). Zen 5, one thread, time
# against vectors along W, three runs: NCDHW 16^3 x 64 -> 32 k3 s2
# 0.88-0.98, 64 -> 64 0.86-0.90, 128 -> 32 0.85-0.95; 32 input channels
# 0.97-1.04, 2-D k4 s2 0.93-1.05 stay (benchmarks/NOTES.md section 110).
CF_BANDS_ONE_VECTOR_PHASE_WIDE_CHANNELS = 64
CF_BANDS_MAX_BYTES = 1 << 20
# ... and forward convolutions with a W dilation (a run per W tap, as
# cl_kernel's: the same bits) whose output rows leave vectors along W's
# lanes part empty, in 2-D and 3-D: one thread, time against vectors along
# W, NCHW 33^2 x 256 k3 d6 1.68 -> 1.44x the channels-last time, 2 x 65^2 x
# 512 -> 256 d2 1.35 -> 1.17, 4 x 56^2 x 64 d2 1.37 -> 1.15, 2 x 97^2 x 64
# 1.39 -> 1.17, NCDHW 20^3 x 64 d2 1.85 -> 1.14; rows of whole vectors
# (2 x 64^2 x 128: 1.07 against 1.12) and 1-D calls (8 x 1000 x 64-128:
# 1.06-1.11 against 1.17-1.22) stay on vectors along W (benchmarks/NOTES.md
# section 93). False turns it off (tests compare the two).
CF_BANDS_DILATED = True

# ... and, from CF_BANDS_FILL_CHANNELS input and output channels, forward
# convolutions and stride-1 transposes whose output rows fill vectors along
# W's lanes (cpu_rb.wv_lane_fill) at most CF_BANDS_FILL_RATIO times as well
# as the band tile's vectors fill with output channels (one vector where
# they fit in one, `_band_vectors`, else two): rows of 8, 12, 20, 24 or 40
# float32 columns on AVX-512 with 16, 32 or 64 output channels, 8, 12 or 20
# with 24 or 48. Zen 5, one thread, 144 stride-1 k3 calls of 2-D and 3-D
# rows of 8-56 columns and 16-64 channels, time against vectors along W:
# every call at a ratio of 0.85 or less was faster on bands (0.96-0.51x:
# 20 x 40^2 x 32 -> 32 1.43 -> 1.11x the channels-last time, 8 x 8^2 x 32
# 2.31 -> 1.18; 16 output channels on the one-vector tile 1.13-2.54 ->
# 1.10-1.18), 0.875 within 7 % either way, and from 1.1 (48 or 24 output
# channels: bands pad them to 64 or 32) vectors along W faster
# (benchmarks/NOTES.md section 90). Transposes on the one-vector tile stay
# on vectors along W (1.20-1.36 against 1.27-1.81). Strided transposes by
# the same ratio, with their W phases' columns, from
# CF_BANDS_NARROW_PHASE_CHANNELS (one thread, k3-k4 s2, 20-36 columns per
# phase, 32-128 channels: 1.27-1.56 -> 1.10-1.31x the channels-last time;
# 24 columns of a 3-D 32 -> 32 call 1.13 -> 1.16; 28 or 16 columns stay on
# vectors along W).
CF_BANDS_FILL_CHANNELS = 16
CF_BANDS_FILL_RATIO = 0.85
# ... CF_BANDS_FILL_RATIO_TWO_VECTORS for rows of more than one vector on
# the 2-vector band tile (not strided transposes), since section 109: 28 or
# 56 float32 columns (0.875) with 32 channels, time against vectors along
# W, NCHW 8 x 28^2 0.87-0.89, 56^2 0.91-0.93, 4 x 56^2 0.81-0.88, NCDHW
# 28^3 0.75-0.79; 64 channels 0.97-1.02 (section 110)
CF_BANDS_FILL_RATIO_TWO_VECTORS = 0.9
# ... or CF_BANDS_ONE_VECTOR_ROW_RATIO for output rows of at most one
# vector (vectors along W's 16 x 1 tile or row pairs, slower than its
# 2-vector tile) with CF_BANDS_ONE_VECTOR_ROW_CHANNELS input channels (same
# calls, ratio 1.0, rows of 12 or 16 columns with 32 or more input
# channels: bands 0.97-1.20x as fast, NCDHW 16^3 x 32 -> 32 1.24-1.33 ->
# 1.11-1.18x the channels-last time; with 16 input channels 0.96-1.13x;
# rows of 48 columns, 3 vectors: 0.9-1.17x).
CF_BANDS_ONE_VECTOR_ROW_RATIO = 1.0
CF_BANDS_ONE_VECTOR_ROW_CHANNELS = 32
# ... and 3-D rows of up to CF_BANDS_SHORT_ROW_VECTORS vectors on the
# 2-vector band tile, since section 109 (NCDHW 32^3 x 32 -> 32 0.93-0.95,
# 16 x 32^2 0.93-0.98, 64 -> 64 0.94-0.98, the stride-1 transpose 0.96-0.97;
# 2-D rows of 32 columns 0.96-1.14 and the one-vector band tile (16 output
# channels) 1.13-1.19 stay on vectors along W; section 110)
CF_BANDS_SHORT_ROW_VECTORS = 2
# ... and strided transposes whose W phases have at most half a vector's
# columns (8 float32 on AVX-512: input rows of 4-8 columns at W stride 2)
# from CF_BANDS_HALF_PHASE_CHANNELS input and CF_BANDS_NARROW_PHASE_CHANNELS
# output channels, ahead of
# gathered runs for more than CF_GATHER_MAX_CHANNELS input channels. Zen 5,
# one thread, 252 k3 and k4 s2 2-D and 3-D calls of 3-24 input and 32-128
# output channels on input rows of 4, 6, 8, 12 columns, bands against the
# path before: 4-8 columns with 8 or more input channels 0.40-0.95x,
# except 3-D (a D stride) on 8 columns, which needs 16 input channels
# (8: 1.00-1.12x, 12: 0.82-1.04, 16: 0.79-0.93); with 3-6 input channels
# 3-D rows of 8 columns ran 1.12-1.6x (gathered runs there), 2-D ones
# 0.5-0.94; 12 columns 0.85-2.0 (benchmarks/NOTES.md section 92).
CF_BANDS_HALF_PHASE_CHANNELS = 8

# Channels-first calls whose input is one pixel (a DCGAN generator's 1 x 1
# -> 4 x 4 projection) run the channels-last kernels on the same memory
# (with one pixel both layouts of the input are the same array), and the
# result is copied into the channels-first layout: the channels-first
# kernels put W in their lanes, one lane of 8-16 here. NCHW 64 x 100 x 1^2
# -> 512 x 4^2 k4: 5.8 -> ~1.9 ms, of which ~0.25 ms the copy
# (benchmarks/NOTES.md section 70). False turns it off (tests compare the
# two).
ONE_PIXEL_CL = True
# ... and transposes whose every output position receives one tap (a DCGAN
# generator's projection onto one patch, or a SAME or PyTorch padding that
# crops it) run cpu_patch.patch_cl with the positions as output channels,
# storing the channels-first result itself (_one_pixel_patch): NCHW 64 x
# 100 x 1^2 -> 512 x 4^2 k4, 1.28x the channels-last time with the copy,
# 0.98x without (benchmarks/NOTES.md section 98).
ONE_PIXEL_PATCH = True

# Channels-last strided transposes with few input channels (at most
# GATHER_MAX_CHANNELS, one group), whose whole reduction is one partial sum
# (KD*KH*KW*Cg <= cpu_rb.SUM_GROUP_TERMS), with GATHER_MIN_BLOCKS output
# channel blocks or more, innermost (FB_INNER): each block of rows gathers
# the inputs of its phase's taps into one run per row, and each channel block
# runs one vrun over it (cl_kernel's `gat` variant) instead of a run of Cg
# steps per tap, each with its set-up. The same bits. One thread, against
# a run per tap: 64^2 x 3 -> 256 k3 s2 0.65 (float64 0.67), 2 x 32^2 x 8
# -> 128 0.88, 16^3 x 8 -> 64 0.84, 2 x 32^2 x 16 -> 64 0.96; with 2
# channel blocks 1.01-1.30, and stride-1 or dilated transposes 1.07-1.29
# (every tap in every block: the copies cost more than the runs' set-up
# saves); forward convolutions (fused (kw, c) runs already) 1.6
# (benchmarks/NOTES.md section 71). False turns it off (tests compare the
# two).
GATHER = True
GATHER_MAX_CHANNELS = 16
GATHER_MIN_BLOCKS = 4

# Channels-first strided transposes with at most CF_GATHER_MAX_CHANNELS
# input channels (one group, one partial sum: KD*KH*KW*Cg <= 256), at least
# CF_GATHER_MIN_CHANNELS output channels and a W stride of at most
# CF_GATHER_MAX_W_STRIDE (each compiles a variant): the input rows
# expanded into runs of output columns and each output row's taps run on
# them, weights per W phase along the lanes (cpu_cfgather), instead of a
# run per tap and W phase on vectors along W. The same bits. One thread,
# against vectors along W: NCHW 3 x 64^2 -> 256 k3 s2 0.67, 1-3 x 32^2 ->
# 16-128 0.77-0.92 (3 -> 16: 1.02), NCDHW 4 x 16^3 -> 32-64 0.84-0.97; with
# 8-16 input channels 0.90-1.75 (the lanes of a phase with fewer taps
# multiply zeros: a third of the terms for k3 s2; benchmarks/NOTES.md
# section 79). False turns it off (tests compare the two).
CF_GATHER = True
CF_GATHER_MAX_CHANNELS = 4
CF_GATHER_MIN_CHANNELS = 16
# ... and from CF_GATHER_WIDE_OUT_CHANNELS output channels, up to
# CF_GATHER_WIDE_MAX_CHANNELS input channels, or CF_GATHER_EVEN_MAX_CHANNELS
# where each strided axis's kernel is a multiple of its stride with
# dilation 1 (every W phase has the same taps: no lane multiplies zeros).
# Zen 5, one thread, 156 k3 and k4 s2 2-D and 3-D calls of 5-16 input and
# 16-128 output channels on rows of 8-32 columns, time against vectors
# along W: in the 54 calls of this rule 0.62-1.02x (median 0.87; 2-D k4 s2
# 8 -> 64 and 16 -> 128 0.77-1.00, 3-D k3 s2 5 -> 128 0.64-0.83); outside
# it, 32 output channels or fewer 0.71-2.28, k3 s2 with 8-16 input
# channels 0.73-1.31 (benchmarks/NOTES.md section 91).
CF_GATHER_WIDE_OUT_CHANNELS = 64
CF_GATHER_WIDE_MAX_CHANNELS = 6
CF_GATHER_EVEN_MAX_CHANNELS = 16
# A tile is a block of output channels on a band of this many output rows
# (one row at a time: each block wrote one row of each of its 8 planes, then
# the next block's planes): NCHW 3 x 64^2 -> 256 k3 s2 0.92x the time,
# NCDHW 4 x 16^3 -> 64 0.87x, others 0.97-0.98x (benchmarks/NOTES.md
# section 81).
CF_GATHER_BAND_ROWS = 32
CF_GATHER_MAX_W_STRIDE = 2  # (each W stride compiles a variant)

# Channels-last calls with at most one vector of output channels per group
# (AVX-512: 16 float32 / 8 float64) use the one-vector tile instead of the
# two-vector one; False turns it off (tests compare the two).
CL1 = True

# Channels-last: output-channel blocks innermost in the tile order when a
# block's packed weights take at most FB_INNER_PANEL bytes, or all blocks'
# together at most FB_INNER_TOTAL (they then take turns in L2: a quarter
# of a 1 MB L2), or when the call's input and output take FB_INNER_DATA
# bytes or more and all blocks' panels at most half of that and at
# most FB_INNER_DATA_PANELS (they then come from L3 for every tile, while
# blocks outermost would stream the input and the output from memory once
# per block; 15.8 MB of panels for 18 MB of data were 10 % slower
# innermost); False: always outermost (tests compare the two). Innermost, a
# tile runs every block on each block of its rows, set up once for all of
# them (the U-Net's 32^3 64 -> 32 k3 s2 transpose, 1-8 taps per block:
# 5-10 % faster than a tile per block, benchmarks/NOTES.md section 51).
FB_INNER = True
FB_INNER_PANEL = 64 * 1024
FB_INNER_TOTAL = 256 * 1024
FB_INNER_DATA = 16 << 20  # half of a 32 MB L3
FB_INNER_DATA_PANELS = 16 << 20

# Transposes with stride == kernel in every dimension (dilation 1 where the
# kernel is longer than 1), no padding and an output of exactly stride x
# input use cpu_patch (patch_cl, channels-first patch_cf): each input pixel
# writes its own patch, one tap per output (the U-Net's 2x2x2 stride-2
# upsampling); False: cl_kernel / wv_kernel (tests compare them).
PATCH = True
PATCH_CF_STREAM = True

# Channels-last, one group, channel blocks outermost, writable filters
# (packed on every call) of at least PANELS_MIN_BYTES packed: each thread
# packs the panel of the block it is about to run (cpu_rb.by_panels)
# instead of the whole filter up front; False: always up front (tests
# compare the two).
PANELS = True
PANELS_MIN_BYTES = 1 << 20


# ------------------------------------------------------------------ wrappers

def _channel_slice(out, shape, dtype):
    """(flat array, pixel stride) when `out` is a channels-last 5-D view of
    `shape` and `dtype` with its channels contiguous and its pixels one
    stride (>= the channels) apart, e.g. `buf[..., c0:c1]`: flat is the
    memory from its first element to its last (all inside the array it is
    a view of), in elements. Else None."""
    if not (isinstance(out, np.ndarray) and out.dtype == dtype and tuple(out.shape) == tuple(shape)
            and out.flags.writeable and out.size):
        return None
    from .cpu_layers import pixel_stride

    ps = pixel_stride(out)
    if ps is None:
        return None
    B, OD, OH, OW, F = shape
    span = (B * OD * OH * OW - 1) * ps + F
    return np.lib.stride_tricks.as_strided(out, shape=(span,), strides=(dtype.itemsize,)), ps


# Remembered routes: for a call signature `_run` has seen (shapes, dtype,
# geometry, layout, the filters' writability, the thread count), the
# launch it chose and planned, so that the next such call skips the choice
# and the plan: ~35 us of a 1 x 8^2 x 16 -> 32 conv2d's ~80
# (benchmarks/NOTES.md section 122). The routes ending in `_launched`
# (cl_kernel, cpu_short, wv_kernel, the bands, the pointwise, patch and
# depthwise kernels, the gathered transposes) are remembered, not calls
# into a caller's `out`; any module setting of the backend set anew
# (module.X = v, as tests and the warmup do) forgets them all
# (`_Settings`).
ROUTES_MAX = 512
_ROUTES = {}


class _Route:
    """launch(x, wg, flat, epilogue) -> the epilogue left for _finish, on a
    new result of `size` elements, then finished as `shape`."""

    __slots__ = ("launch", "size", "shape", "channels_first")

    def __init__(self, launch, size, shape, channels_first):
        self.launch, self.size, self.shape, self.channels_first = launch, size, shape, channels_first

    def run(self, x, wg, epilogue):
        flat = _alloc.empty(self.size, x.dtype)
        return _finish(flat.reshape(self.shape), self.channels_first, self.launch(x, wg, flat, epilogue))


def _launched(key, launch, x, wg, flat, epilogue, shape, channels_first, wp, out=None):
    """launch's result for this call (wp: its packed filters, or None),
    remembered under key (unless None); `out`: returned instead of flat
    where flat is a view of it."""
    rest = launch(x, wg, flat, epilogue, wp)
    if out is not None:
        return out
    if key is not None:
        if len(_ROUTES) >= ROUTES_MAX:
            _ROUTES.clear()
        _ROUTES[key] = _Route(launch, flat.size, shape, channels_first)
    return _finish(flat.reshape(shape), channels_first, rest)


class _Settings(types.ModuleType):
    """The backend's modules: setting an attribute forgets the remembered
    routes, which were planned with the old settings."""

    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        _ROUTES.clear()


def _run(x, wg, out_spatial, strides, dilations, pads_before, channels_first, trans, epilogue=None, out=None):
    """wg: (G, KD, KH, KW, Cg, Fg) view of the filters, reduction channel
    before output channel. Builds the tile geometry and calls a kernel.
    epilogue: see `forward`; applied in the channels-last kernel's registers
    when it is affine + linear/ReLU, else in one pass over the result.
    out: see `forward`."""
    G, KD, KH, KW, Cg, Fg = wg.shape
    x = _alloc.readonly(x)  # one compiled variant per kernel, whatever the caller's array
    if channels_first:
        B, _, D, H, W = x.shape
    else:
        B, D, H, W, _ = x.shape
    OD, OH, OW = map(int, out_spatial)
    if trans and not channels_first:
        # a transpose's stride along an axis of one input pixel changes
        # nothing (no second pixel to place): taken as the kernel's length,
        # each output then receives one tap, and with no padding the call is
        # a patch per pixel (a DCGAN generator's 1x1 -> 4x4 projection:
        # 3.1 -> 1.1 ms, benchmarks/NOTES.md section 68)
        strides = tuple(k if n == 1 else int(v) for n, k, v in zip((D, H, W), (KD, KH, KW), strides))
    sd, sh, sw = map(int, strides)
    dd, dh, dw = map(int, dilations)
    pd, ph, pw = map(int, pads_before)
    Cx = G * Cg
    F = G * Fg
    # filters packed on every call, dropped after it (up to 64 KB: while unchanged, _alloc.memo)
    writable = _alloc.root(wg).flags.writeable
    key = None
    if out is None:
        # (the thread count: some plans depend on it)
        key = (x.shape, x.dtype, wg.shape, writable, OD, OH, OW, sd, sh, sw, dd, dh, dw, pd, ph, pw,
               channels_first, trans, numba.get_num_threads())
        route = _ROUTES.get(key)
        if route is not None:
            return route.run(x, wg, epilogue)
    # (one output channel: NARROW_ONE_CHANNEL_CF goes the other way)
    if ONE_PIXEL_CL and channels_first and D * H * W == 1 and F > 1:
        # (read-only filters: packed once; writable ones, packed on every
        # call, cost 1.1-1.4x more to pack this way than for the channels-last
        # kernels, most of such a call's time)
        if (ONE_PIXEL_PATCH and trans and G == 1 and OD * OH * OW > 1 and not writable
                and _one_tap_each((OD, OH, OW), (KD, KH, KW), (dd, dh, dw), (pd, ph, pw))):
            return _one_pixel_patch(x, wg, (pd, ph, pw), (OD, OH, OW), epilogue, out)
        y = _run(x.reshape((B, 1, 1, 1, Cx)), wg, out_spatial, strides, dilations, pads_before, False, trans,
                 epilogue)
        if out is None and OD * OH * OW == 1:
            return y.reshape((B, F, 1, 1, 1))  # one output pixel too: the same memory
        if out is None:
            out = _alloc.empty((B, F, OD, OH, OW), x.dtype)
        _to_channels_first(y, out)
        return out
    if not trans and channels_first and Cg == 1 and G > 1 and out is None:
        lanes = cpu_simd.VBYTES // x.dtype.itemsize
        if (DEPTHWISE_CF_BLOCKS and G >= DEPTHWISE_CF_BLOCKS_FILL * _ceil(G, lanes) * lanes
                and KD * H * W <= DEPTHWISE_CF_BLOCKS_MAX_POSITIONS):
            launch = _depthwise_blocks(x, wg, (OD, OH, OW), (sd, sh, sw), (dd, dh, dw), (pd, ph, pw), True)
            return _launched(key, launch, x, wg, _alloc.empty(B * F * OD * OH * OW, x.dtype), epilogue,
                             (B, F, OD, OH, OW), True, None)
        if DEPTHWISE_CF:
            launch = _depthwise_cf(x, wg, (OD, OH, OW), (sd, sh, sw), (dd, dh, dw), (pd, ph, pw))
            return _launched(key, launch, x, wg, _alloc.empty(B * F * OD * OH * OW, x.dtype), epilogue,
                             (B, F, OD, OH, OW), True, None)
    if DEPTHWISE and not trans and not channels_first and Cg == 1 and G > 1:
        if out is not None:
            out[...] = _run(x, wg, out_spatial, strides, dilations, pads_before, False, False, epilogue)
            return out
        lanes = cpu_simd.VBYTES // x.dtype.itemsize
        if (DEPTHWISE_CL_BLOCKS and Fg == 1 and G >= lanes and KD * H * W <= DEPTHWISE_CF_BLOCKS_MAX_POSITIONS
                and (sd, sh, sw) == (1, 1, 1) and (OW >= DEPTHWISE_CL_BLOCKS_MIN_COLUMNS or KD > 1)):
            launch = _depthwise_blocks(x, wg, (OD, OH, OW), (sd, sh, sw), (dd, dh, dw), (pd, ph, pw), False)
        elif (DEPTHWISE_CL_VECTORS and Fg == 1 and G >= lanes
                and (OW >= DEPTHWISE_CL_VECTORS_MIN_COLUMNS or (KD > 1 and G <= DEPTHWISE_CL_VECTORS_3D_CHANNELS))):
            launch = _depthwise_cl_vectors(x, wg, (OD, OH, OW), (sd, sh, sw), (dd, dh, dw), (pd, ph, pw))
        else:
            geo = tuple(int(v) for v in (sd, sh, sw, dd, dh, dw, pd, ph, pw, cpu_rb.sum_group(KW, 1)))
            site = {}

            def launch(x, wg, flat, epilogue, wp=None):
                # (KD, KH, KW, M, C): filter m of input channel c makes output channel c*M + m
                # read-only either way (a view of a read-only caller's array, or a copy)
                dtype = x.dtype
                wd = _memo(wg, ("dw", dtype.str), lambda: _alloc.readonly(
                    np.ascontiguousarray(wg[:, :, :, :, 0, :].transpose(1, 2, 3, 4, 0), dtype=dtype)))
                args = (np.ascontiguousarray(x), wd, flat.reshape((B, OD, OH, OW, F)), geo)
                # work: ~32 multiply-adds of the register-blocked kernels' time per
                # term (0.3-1.5 ns per term on one core, scalar for multipliers > 1)
                cpu_rb.parallel_tiles(cpu_dw.depthwise_cl, args, B * OD * OH,
                                      DEPTHWISE_MAC_WORK * B * OD * OH * OW * F * KD * KH * KW, 1, None, site)
                return epilogue
        return _launched(key, launch, x, wg, _alloc.empty(B * OD * OH * OW * F, x.dtype), epilogue,
                         (B, OD, OH, OW, F), False, None)
    if (POINTWISE and not (trans or channels_first) and G == 1 and KD == KH == KW == 1
            and (Cg * Fg * x.dtype.itemsize <= POINTWISE_BYTES
                 or Cg * x.dtype.itemsize <= cpu_pw.PW_MAX_CHANNEL_BYTES
                 and Fg * x.dtype.itemsize <= POINTWISE_OUT_BYTES)
            and (sd, sh, sw, pd, ph, pw) == (1, 1, 1, 0, 0, 0) and (OD, OH, OW) == (D, H, W)):
        return _pointwise(x, wg, epilogue, out, key)
    if (POINTWISE_CF and channels_first and not trans and G == 1 and KD == KH == KW == 1
            and (Fg <= POINTWISE_CF_MAX_CHANNELS
                 or Fg <= POINTWISE_CF_WIDE_CHANNELS and Cg <= POINTWISE_CF_WIDE_INPUT_CHANNELS
                 or D * H * W >= POINTWISE_CF_MIN_POSITIONS)
            and (sd, sh, sw, pd, ph, pw) == (1, 1, 1, 0, 0, 0) and (OD, OH, OW) == (D, H, W)):
        return _pointwise_cf(x, wg, epilogue, out, key)
    narrow = (not channels_first and Fg <= WV_NARROW * 4 // x.dtype.itemsize
              and (trans or sw == 1) and Cx * W * x.dtype.itemsize < 2**31)
    cl_rows = False  # channels-last input rows packed for vectors along W (WV_CL_ROWS)
    lanes = cpu_simd.VBYTES // x.dtype.itemsize
    rows_fit = KD * KH * Cg * (W + (KW - 1) * dw + 4 * lanes) * x.dtype.itemsize <= WV_PACK_BYTES
    # one output channel from NARROW_ONE_CHANNEL_ROWS_MIN_CHANNELS: packed rows
    one_channel_rows = (narrow and F == 1 and WV_CL_ROWS and rows_fit
                        and NARROW_ONE_CHANNEL_ROWS_CHANNELS[0] <= Cg <= NARROW_ONE_CHANNEL_ROWS_CHANNELS[1]
                        and KD * KH * KW >= NARROW_ONE_CHANNEL_CF_MIN_TAPS)
    # one output channel: a channels-first copy of the input, no gathers
    one_channel_cf = (narrow and F == 1 and NARROW_ONE_CHANNEL_CF and out is None  # `out`: filled by a copy
                      and not one_channel_rows
                      and (Cg <= NARROW_ONE_CHANNEL_CF_MAX_CHANNELS or KD * KH * KW >= NARROW_ONE_CHANNEL_CF_MIN_TAPS))
    if narrow and WV_NARROW_STEPS is not None and not one_channel_cf:
        steps = KD * KH * KW * Cg // (sd * sh * sw if trans else 1)
        if steps > WV_NARROW_STEPS or one_channel_rows:
            cl_rows = WV_CL_ROWS and (Fg > 1 or one_channel_rows) and rows_fit
        narrow = steps <= WV_NARROW_STEPS or cl_rows
    if one_channel_cf:
        x_cf = np.empty((B, Cx, D, H, W), dtype=x.dtype)
        _to_channels_first(x, x_cf)
        y = _run(x_cf, wg, out_spatial, strides, dilations, pads_before, True, trans)
        return _finish(y.reshape((B, OD, OH, OW, F)), False, epilogue)
    dest = None
    if out is not None:
        # the channels-last kernel writes into the caller's view itself when
        # its epilogue runs in registers; any other path computes and copies
        if not (channels_first or narrow) and (epilogue is None or epilogue[3] in ("linear", "relu")):
            dest = _channel_slice(out, (B, OD, OH, OW, F), x.dtype)
        if dest is None:
            out[...] = _run(x, wg, out_spatial, strides, dilations, pads_before, channels_first, trans, epilogue)
            return out
        flat, ops = dest
    else:
        flat, ops = _alloc.empty(B * OD * OH * OW * G * Fg, x.dtype), F
    # a patch per input pixel (cpu_patch): stride == kernel transposes
    patch = PATCH and trans and _is_patch((D, H, W), (OD, OH, OW), (KD, KH, KW), strides, dilations, pads_before)
    # transposes on bands: no output column or row before the first tap of
    # input 0 ((K - 1) * d - p >= 0; the packed columns start there)
    trans_ok = channels_first and trans and min(
        (k - 1) * d - p for k, d, p in zip((KD, KH, KW), (dd, dh, dw), (pd, ph, pw))) >= 0
    phase_cols, lanes = -(-OW // sw), cpu_simd.VBYTES // x.dtype.itemsize
    strided_trans = trans and (sd, sh, sw) != (1, 1, 1)
    part_lanes = OW * x.dtype.itemsize % (2 * cpu_simd.VBYTES) != 0  # rows not of whole 2-vector chunks
    # (bands for W phases of at most half a vector, CF_BANDS_HALF_PHASE_CHANNELS)
    # (twice the input channels for half a vector exactly with a D stride)
    by_half = (trans and sw > 1 and 2 * phase_cols <= lanes and Fg >= CF_BANDS_NARROW_PHASE_CHANNELS
               and Cg >= CF_BANDS_HALF_PHASE_CHANNELS * (2 if sd > 1 and 2 * phase_cols == lanes else 1))
    gather_channels = CF_GATHER_MAX_CHANNELS
    if Fg >= CF_GATHER_WIDE_OUT_CHANNELS and not by_half:
        even = all(s == 1 or (k % s == 0 and d == 1) for k, s, d in zip((KD, KH, KW), (sd, sh, sw), (dd, dh, dw)))
        gather_channels = max(gather_channels, CF_GATHER_EVEN_MAX_CHANNELS if even else CF_GATHER_WIDE_MAX_CHANNELS)
    if (CF_GATHER and channels_first and strided_trans and G == 1 and not patch
            and Cg <= gather_channels and KD * KH * KW * Cg <= cpu_rb.SUM_GROUP_TERMS
            and F >= CF_GATHER_MIN_CHANNELS and sw <= CF_GATHER_MAX_W_STRIDE):
        launch = _cf_gather(x, wg, (OD, OH, OW), strides, dilations, pads_before, writable)
        return _launched(key, launch, x, wg, flat, epilogue, (B, F, OD, OH, OW), True, None)
    # (strided transposes: CF_BANDS_ANY_ROW_CHANNELS, or
    # CF_BANDS_NARROW_PHASE_CHANNELS where a W phase's columns leave a vector
    # along W part empty, or CF_BANDS_ANY_ROW_CHANNELS in and
    # CF_BANDS_ONE_VECTOR_PHASE_OUT_CHANNELS out where they fill one vector
    # and an output's reduction has CF_BANDS_ONE_VECTOR_PHASE_STEPS steps)
    least = CF_BANDS_MIN_CHANNELS
    if strided_trans:
        least = CF_BANDS_NARROW_PHASE_CHANNELS if phase_cols < lanes else CF_BANDS_ANY_ROW_CHANNELS
        if (phase_cols == lanes and Cg >= CF_BANDS_ANY_ROW_CHANNELS
                and KD * KH * KW * Cg >= CF_BANDS_ONE_VECTOR_PHASE_STEPS * sd * sh * sw):
            least = CF_BANDS_ONE_VECTOR_PHASE_OUT_CHANNELS
        if phase_cols == lanes and OD > 1 and Cg >= CF_BANDS_ONE_VECTOR_PHASE_WIDE_CHANNELS:
            least = CF_BANDS_NARROW_PHASE_CHANNELS
    # (also rows that fill vectors along W's lanes poorly against the band
    # tile's channel lanes: a strided transpose's W phases, from
    # CF_BANDS_NARROW_PHASE_CHANNELS; other calls' output rows, from
    # CF_BANDS_FILL_CHANNELS)
    by_fill = False
    if min(Cg, Fg) >= (CF_BANDS_NARROW_PHASE_CHANNELS if strided_trans else CF_BANDS_FILL_CHANNELS):
        band_vectors = _band_vectors(Fg, x.dtype.itemsize)
        band_lanes = band_vectors * lanes
        fill_ratio = (cpu_rb.wv_lane_fill(phase_cols if trans else OW, lanes, sh == 1 and dh == 1 and not strided_trans)
                      / (Fg / (_ceil(Fg, band_lanes) * band_lanes)))
        # (and 3-D rows of up to CF_BANDS_SHORT_ROW_VECTORS on the 2-vector band tile)
        short_rows = OD > 1 and band_vectors == 2 and OW <= CF_BANDS_SHORT_ROW_VECTORS * lanes
        one_vector = Cg >= CF_BANDS_ONE_VECTOR_ROW_CHANNELS and (OW <= lanes or short_rows) and not strided_trans
        wide = band_vectors == 2 and OW > lanes and not strided_trans
        ratio = CF_BANDS_FILL_RATIO_TWO_VECTORS if wide else CF_BANDS_FILL_RATIO
        # (not transposes on the band kernel's one-vector tile: slower)
        by_fill = (fill_ratio <= (CF_BANDS_ONE_VECTOR_ROW_RATIO if one_vector else ratio)
                   and (band_vectors == 2 or not trans))
    dilated_ok = CF_BANDS_DILATED and D * H > 1 and part_lanes  # (a forward W dilation)
    short_line = (False, OW, 0.0)  # SHORT_CF: short_cf's lines (_short_cf_line), fill 0 where it does not apply
    if (SHORT_CF and channels_first and not trans and G == 1 and sw == 1
            and Fg >= SHORT_CF_MIN_CHANNELS and KD * KH * KW * Cg <= cpu_rb.SUM_GROUP_TERMS):
        short_line = _short_cf_line((D, H, W), (OD, OH, OW), (sd, sh, sw), KH, KW, x.dtype, Fg)
        if KD * KH * KW == 1 and short_line[2] >= SHORT_CF_1X1_FILL:
            # (1x1: ahead of the bands, whose channels-last copy of the input
            # costs as much as a call that reads each input once)
            launch, wp = _short_cf(x, wg, (OD, OH, OW), strides, dilations, pads_before, writable, short_line)
            return _launched(key, launch, x, wg, flat, epilogue, (B, F, OD, OH, OW), True, wp)
    if (CF_BANDS and channels_first and (trans_ok or not trans and (dw == 1 or dilated_ok)) and G == 1
            and not patch
            and (by_fill or by_half or min(Cg, Fg) >= least
                 and (min(Cg, Fg) >= CF_BANDS_ANY_ROW_CHANNELS or sw > 1 or part_lanes))
            and KD * ((KH - 1) * dh + 1) * (OW * sw + (KW - 1) * dw + 1) * Cg * x.dtype.itemsize
            <= CF_BANDS_MAX_BYTES):
        launch, wp = _cf_bands(x, wg, (OD, OH, OW), strides, dilations, pads_before, trans, writable)
        return _launched(key, launch, x, wg, flat, epilogue, (B, F, OD, OH, OW), True, wp)
    if channels_first or narrow:
        # Vectors along W (cpu_rb.wv_kernel): channels-first data, or
        # channels-last data with few output channels (gathered loads).
        if patch and channels_first:
            tile, blocks = cpu_patch.cf_tile(Fg)

            def packed(wg, dtype):
                return _memo(wg, ("wv", dtype.str, repr(tile), blocks),
                             lambda: cpu_rb.pack_filters_wv(wg, dtype, tile, writable, blocks))

            wp, NFB = packed(wg, x.dtype)
            lanes = tile.lanes(x.dtype.itemsize)
            runs = cpu_patch.cf_flat(W, KW, lanes)
            lines, per_pass = cpu_patch.cf_plan(flat.nbytes, NFB, tile.rows, W, runs, lanes)
            geo = tuple(int(v) for v in (B, D, H, W, Cg, Fg, KD, KH, KW, NFB, lines, per_pass, blocks[0], runs))
            work = _work(B * D * H * W, NFB * tile.rows, KD * KH * KW * Cg, (1, 1, 1), False)
            ntiles = cpu_patch.n_tiles_cf(geo)
            site = {}

            def launch(x, wg, flat, epilogue, wp=None):
                if wp is None:
                    wp, _ = packed(wg, x.dtype)
                xf = x.reshape(-1)
                # (streaming stores: whole output lines of whole chunks)
                stream = _streams(flat, OW, KW * 2 * tile.vbytes) if KW <= 2 and PATCH_CF_STREAM else None
                args = (xf, wp, flat, geo, tile, stream)
                cpu_rb.parallel_tiles(cpu_patch.patch_cf, args, ntiles, work, 1, None, site)
                return epilogue

            return _launched(key, launch, x, wg, flat, epilogue, (B, Fg, OD, OH, OW), True, wp)
        if short_line[2] >= SHORT_CF_MIN_FILL:
            launch, wp = _short_cf(x, wg, (OD, OH, OW), strides, dilations, pads_before, writable, short_line)
            return _launched(key, launch, x, wg, flat, epilogue, (B, F, OD, OH, OW), True, wp)
        if channels_first:
            xs = (Cx * D * H * W, D * H * W, H * W, W, 1)
            os_ = (F * OD * OH * OW, OD * OH * OW, OH * OW, OW, 1)
        else:
            xs = (D * H * W * Cx, 1, H * W * Cx, W * Cx, Cx)
            os_ = (OD * OH * OW * F, 1, OH * OW * F, OW * F, F)
        lanes = cpu_simd.VBYTES // x.dtype.itemsize
        width = -(-OW // (sw if trans else 1))  # output columns per W phase
        # the 2-vector tile on two output rows (WV_ROW_PAIRS) instead of the
        # 8 x 1 tile: channels-first, one W phase, packed rows
        pairs = (WV_ROW_PAIRS and channels_first and Fg > 1 and (sw == 1 or not trans)
                 and B * OD * OH > 1 and cpu_rb.wv_row_pairs(width, lanes))
        for NR in ((2, 1) if pairs else (1,)):
            tile = cpu_rb.wv_tile(Fg, width, lanes, pairs=NR == 2)
            V = tile.lanes(x.dtype.itemsize)
            taps = cpu_rb.wv_taps(OD, OH, OW, sw if trans else 1, tile.nvec * V // NR, V, KD, KH, KW, D, H, W,
                                  sd, sh, sw, dd, dh, dw, pd, ph, pw, bool(trans), NR == 2)
            # channels-first input rows packed per output row (WV_PACK)
            work = _work(B * OD * OH * OW, G * _ceil(Fg, tile.rows) * tile.rows, KD * KH * KW * Cg, strides, trans)
            rows = KD * KH * Cg * (1 if trans else sw) * int(taps[-1])
            nt = numba.get_num_threads()
            pack = (WV_PACK and NR * rows * x.dtype.itemsize <= WV_PACK_BYTES
                    and (cl_rows or channels_first and (
                        B * OD * OH * G >= WV_PACK_MIN_ROWS * nt
                        or cpu_rb.CHUNKS_PER_THREAD * nt * KD * KH * Cg * W * WV_PACK_COPY_COST <= work // 10)))
            if pack or NR == 1:  # row pairs read packed rows only
                break
        blocks = cpu_rb.wv_blocks(Fg, tile, NR == 2)

        def packed(wg, dtype):
            return _memo(wg, ("wv", dtype.str, repr(tile), blocks),
                         lambda: cpu_rb.pack_filters_wv(wg, dtype, tile, writable, blocks))

        wp, NFB = packed(wg, x.dtype)
        pair = cpu_rb.pair_axis(B, OD, OH) if NR == 2 else None
        band = (1, 0)
        tail = False
        if pack and pair is None:
            per = rows // (KD * KH)  # one input row's packed channels
            # tail pairs (WV_TAIL_PAIRS): slots for two output rows' rows
            tail = (WV_TAIL_PAIRS and channels_first and tile.nvec == 2 and (sw == 1 or not trans)
                    and sh == 1 and dh == 1 and cpu_rb.wv_tail_pairs(OW, OH, 2 * V, V))
            for KS in ((KH + 1, KH) if tail else (KH,)):
                band = cpu_rb.wv_band(OD, KD, KS, D, sd, dd, pd, dh, bool(trans), per * x.dtype.itemsize)
                slots = max(KD, band[1]) * KS
                # (tail pairs' slots and their slot of zeros within WV_PACK_BYTES)
                if slots <= cpu_rb.WV_SLOTS and (KS == KH or (slots + 1) * per * x.dtype.itemsize <= WV_PACK_BYTES):
                    break
            tail = KS > KH
            rows = (max(KD, band[1]) * KS + tail) * per  # the slots, then (tail pairs) one of zeros
        geo = (B, D, H, W, Cg, OD, OH, OW, Fg, KD, KH, KW, sd, sh, sw, dd, dh, dw, pd, ph, pw,
               G, int(trans), NFB, cpu_rb.sum_group(KW, Cg)) + xs + os_ + band + (blocks[0], int(tail))
        geo = tuple(map(int, geo))
        variant = (pair, True if pair is None else None,
                   True if pack and pair is None and tile.nvec == 2 and channels_first else None,
                   None if pack else True, True if pack and not channels_first else None)
        ntiles = cpu_rb.n_tiles_wv(geo, tile, x.dtype.itemsize, pair)
        # NR output rows' packed rows, then W zeros (packed for a tap that one of two rows lacks)
        nrows = NR * rows + (W if NR > 1 else 0)

        site = {}

        def launch(x, wg, flat, epilogue, wp=None):
            if wp is None:
                wp, _ = packed(wg, x.dtype)
            xf = x.reshape(-1)
            args = (xf, wp, flat, taps, geo, tile) + variant
            if pack:
                cpu_rb.parallel_tiles(cpu_rb.with_rows(cpu_rb.wv_kernel, args, nrows, site=site), (), ntiles, work)
            else:
                cpu_rb.parallel_tiles(cpu_rb.wv_kernel, args + (None,), ntiles, work, 1, None, site)
            return epilogue

        shape = (B, G * Fg, OD, OH, OW) if channels_first else (B, OD, OH, OW, G * Fg)
        return _launched(key, launch, x, wg, flat, epilogue, shape, channels_first, wp)
    # Channels-last: register-blocked kernel (cpu_rb), both ops.
    P = sw if trans else 1
    nvec = 1 if CL1 and Fg * x.dtype.itemsize <= cpu_simd.VBYTES else 2
    # (patch_cl: 8 rows at most)
    tile = cpu_rb.cl_tile(nvec, (sd, sh, sw) == (1, 1, 1) and not patch, pointers=True)
    NV = tile.nvec * tile.lanes(x.dtype.itemsize)
    NFB = _ceil(Fg, NV)
    panel_bytes = KD * KH * KW * Cg * NV * x.dtype.itemsize
    if patch:
        launch, wp = _patch(x, wg, tile, NFB, writable, ops)
        # (out: where flat is the caller's channel slice; key is None then)
        return _launched(key, launch, x, wg, flat, epilogue, (B, OD, OH, OW, F), False, wp, out)
    if (SHORT and not trans and G == 1 and (dw == 1 or SHORT_DILATED) and (tile.nvec == 2 or SHORT_ONE_VECTOR)
            and KD * KH * KW * Cg <= SHORT_MAX_TERMS and KD * KH <= cpu_short.MAX_TAP_ROWS):
        # (one vector of output channels: the 8-row tile, SHORT_ONE_VECTOR)
        short_tile = tile if tile.nvec == 2 else cpu_rb.cl_tile(1)
        launch, wp = _short(x, wg, short_tile, (OD, OH, OW), strides, dilations, pads_before, writable, ops)
        return _launched(key, launch, x, wg, flat, epilogue, (B, OD, OH, OW, F), False, wp, out)
    fuse = int(FUSE_KW and not trans and dw == 1 and G == 1)
    # the kernel's own tile (cpu_rb.CL_WIDE_ROWS); the packed filters depend
    # only on the vectors per row: packed for `tile`, shared
    kernel_tile = cpu_rb.cl_tile(nvec, (sd, sh, sw) == (1, 1, 1), pointers=True, wide=True)
    # Channel blocks innermost when one block's weight panel is small (it
    # stays in L1/L2 anyway) or all of them fit in L2 together: the tiles of
    # a row then write its channels together, instead of one pass over the
    # whole output per channel block (each pass writing part of every cache
    # line: the U-Net k3 s2 transpose on AVX2, 2 blocks of 110 KB, 9 % faster).
    # Also for calls whose data does not stay in the caches, whatever the
    # panels (8 x 112 x 112 x 128 -> 128: 9 % faster, 224 x 224 x 128 -> 64:
    # 5 %; benchmarks/NOTES.md section 49).
    data_bytes = (x.size + B * OD * OH * OW * F) * x.dtype.itemsize
    if _small_panels(NFB, panel_bytes) or (FB_INNER and NFB > 1 and data_bytes >= FB_INNER_DATA
                                           and NFB * panel_bytes <= min(FB_INNER_DATA_PANELS, data_bytes // 2)):
        fb_order = cpu_rb.FB_INNERMOST
    elif (PANELS and trans and writable and NFB > 1 and NFB * panel_bytes >= PANELS_MIN_BYTES
          and (given := cpu_rb.source_filters(wg)) is not None):
        fb_order = cpu_rb.FB_PANEL
    else:
        fb_order = cpu_rb.FB_OUTER
    gat = None
    if (GATHER and trans and sd * sh * sw > 1 and (fb_order == cpu_rb.FB_INNERMOST or NFB == 1) and G == 1
            and Cg <= GATHER_MAX_CHANNELS and NFB >= GATHER_MIN_BLOCKS
            and KD * KH * KW * Cg <= cpu_rb.SUM_GROUP_TERMS):
        order, gat = cpu_rb.gather_taps(KD, KH, KW, sd, sh, sw, dd, dh, dw)
    taps, T = cpu_rb.tap_tables(B, OD, OH, OW, P, KD, KH, KW, D, H, W, sd, sh, sw, dd, dh, dw, pd, ph, pw,
                                bool(trans), kernel_tile.rows, FOLD_LINES)
    geo = (B, D, H, W, Cg, OD, OH, OW, Fg, KD, KH, KW, sd, sh, sw, dd, dh, dw, pd, ph, pw,
           G, int(trans), T, NFB, fuse, fb_order, cpu_rb.sum_group(KW, Cg), ops)
    geo = tuple(map(int, geo))
    work = _work(B * OD * OH * OW, G * NFB * tile.nvec * tile.lanes(x.dtype.itemsize), KD * KH * KW * Cg,
                 strides, trans)
    # (streaming stores: each group's channels a whole number of vectors in)
    streams = G == 1 or Fg * x.dtype.itemsize % cpu_simd.VBYTES == 0
    ntiles = cpu_rb.n_tiles(geo)
    site = {}

    def launch(x, wg, flat, epilogue, wp=None):
        dtype = x.dtype
        if gat is not None:
            wp, _ = _memo(wg, ("cl-gathered", dtype.str, repr(tile)), lambda: cpu_rb.pack_filters(
                wg.reshape(1, 1, 1, KD * KH * KW, Cg, Fg)[:, :, :, order], dtype, tile, writable))
        elif fb_order == cpu_rb.FB_PANEL:
            wp = np.empty(0, dtype=dtype)  # each thread packs the panels of its tiles
        else:
            wp, _ = _memo(wg, ("cl", dtype.str, repr(tile)), lambda: cpu_rb.pack_filters(wg, dtype, tile, writable))
        ep_code, epi, rest = _fused_epilogue(epilogue, F, tile, dtype)
        stream = _streams(flat, ops, tile.nvec * tile.vbytes) if streams else None
        xf, zrow = x.reshape(-1), np.zeros(Cg * KW + 1, dtype=dtype)
        args = (xf, wp, flat, zrow, taps, geo, kernel_tile, epi, ep_code, gat, stream)
        if fb_order == cpu_rb.FB_PANEL:
            run = cpu_rb.by_panels(cpu_rb.cl_kernel, args, *given, NV, ntiles // NFB)
            cpu_rb.parallel_tiles(run, (), ntiles, work)
        else:
            # (group, per_thread, site)
            cpu_rb.parallel_tiles(cpu_rb.cl_kernel, args, ntiles, work, 1, CL_CHUNKS_PER_THREAD, site)
        return rest

    # (FB_PANEL: `given`, the caller's filters, is this call's)
    return _launched(key if fb_order != cpu_rb.FB_PANEL else None, launch, x, wg, flat, epilogue,
                     (B, OD, OH, OW, G * Fg), False, None, out)


# cl_kernel's chunks of tiles per thread where its filters are packed
# before the call (not per chunk, FB_PANEL): finer chunks even out the
# threads' finishing times on large calls (benchmarks/NOTES.md section 114)
CL_CHUNKS_PER_THREAD = 32


def _small_panels(NFB, panel_bytes):
    """FB_INNER's rule for the weight panels: channel blocks innermost when
    one block's panel is small or all of them fit in L2 together."""
    return FB_INNER and NFB > 1 and (panel_bytes <= FB_INNER_PANEL or NFB * panel_bytes <= FB_INNER_TOTAL)


def _is_patch(in_spatial, out_spatial, kernel, strides, dilations, pads_before):
    """Whether a transpose makes one output patch per input pixel
    (cpu_patch): stride == kernel, dilation 1 where the kernel is longer
    than 1, no padding, output exactly stride x input."""
    D, H, W = in_spatial
    return (tuple(kernel) == tuple(strides) and not any(pads_before)
            and all(k == 1 or d == 1 for k, d in zip(kernel, dilations))
            and tuple(out_spatial) == (D * kernel[0], H * kernel[1], W * kernel[2]))


# A patch of at most one vector of output channels whose W taps' channels
# fill at most PATCH_MERGE_VECTORS vectors, written into an array of just
# those channels: the W taps are taken as channels (output pixel (.., iw *
# KW + kw, f) is pixel iw's channel kw * F + f), so patch_cl's 2-vector
# tile runs them with one broadcast of each input for both, where the
# one-vector tile loaded 8 broadcasts per 8 FMAs (the U-Net's 32^3 x 32 ->
# 64^3 x 16 k2 s2: benchmarks/NOTES.md section 115). Each output is the
# same one chain over the input channels: the same bits.
PATCH_MERGE_VECTORS = 2


def _patch(x, wg, tile, NFB, writable, ops):
    """(launch, wp): cpu_patch.patch_cl's launch for `_launched`, for _run's
    channels-last branch (writable, ops: as _run found them; output pixel
    p's channels at p * ops), and this call's packed filters."""
    _, KD, KH, KW, C, F = wg.shape
    B, D, H, W, _ = x.shape
    Fo = F
    vbytes, isz = cpu_simd.VBYTES, x.dtype.itemsize
    merged = KW > 1 and ops == F and F * isz <= vbytes and KW * F * isz <= PATCH_MERGE_VECTORS * vbytes
    if merged:
        F, KW, ops = KW * F, 1, KW * F
        tile = cpu_rb.cl_tile(1 if F * isz <= vbytes else 2, False)
        NFB = _ceil(F, tile.nvec * tile.lanes(isz))

        def packed(wg, dtype):
            return _memo(wg, ("cl-patch-kw", dtype.str, repr(tile)), lambda: cpu_rb.pack_filters(
                np.ascontiguousarray(np.swapaxes(wg, 3, 4)).reshape(1, KD, KH, 1, C, F), dtype, tile, writable))
    else:
        def packed(wg, dtype):
            return _memo(wg, ("cl", dtype.str, repr(tile)), lambda: cpu_rb.pack_filters(wg, dtype, tile, writable))
    assert tile.rows <= cpu_rb.RB_MAX  # patch_cl's per-row scratch
    geo = tuple(int(v) for v in (B, D, H, W, C, F, KD, KH, KW, NFB, ops))
    pixels = B * D * H * W
    work = _work(pixels, NFB * tile.nvec * tile.lanes(x.dtype.itemsize), KD * KH * KW * C, (1, 1, 1), False)
    ntiles = cpu_patch.n_tiles(pixels)
    site = {}

    def launch(x, wg, flat, epilogue, wp=None):
        if wp is None:
            wp, _ = packed(wg, x.dtype)
        if merged and epilogue is not None and epilogue[3] in ("linear", "relu"):
            reps = F // Fo
            epilogue = tuple(None if v is None else np.tile(v, reps) for v in epilogue[:3]) + tuple(epilogue[3:])
        ep_code, epi, rest = _fused_epilogue(epilogue, F, tile, x.dtype)
        stream = _streams(flat, ops, tile.nvec * tile.vbytes)
        xf = x.reshape(-1)
        args = (xf, wp, flat, geo, tile, epi, ep_code, stream)
        cpu_rb.parallel_tiles(cpu_patch.patch_cl, args, ntiles, work, 1, None, site)
        return rest

    return launch, packed(wg, x.dtype)[0]


def _one_tap_each(out_spatial, kernel, dilations, pads_before):
    """Whether each output position of a one-pixel transpose receives
    exactly one tap: output o gets tap k = o + p (dilation 1, or a kernel
    of 1), inside the kernel for every o (the patch, and SAME or PyTorch
    padding that crops it: k4 s2 SAME on 1 x 1 -> 2 x 2 reads taps 1-2)."""
    return all((k == 1 or d == 1) and p >= 0 and p + o <= k
               for o, k, d, p in zip(out_spatial, kernel, dilations, pads_before))


def _one_pixel_patch(x, wg, pads, out_spatial, epilogue, out):
    """A channels-first transpose of one input pixel where each output
    position receives one tap (ONE_PIXEL_PATCH, _one_tap_each): out[b, f,
    od, oh, ow] = sum_c x[b, c] w[od + pd, oh + ph, ow + pw, f, c] is
    cpu_patch.patch_cl on a 1 x 1 x 1 kernel of F * (output positions)
    channels in the order (f, od, oh, ow), whose stores are the
    channels-first result. Each output is one chain of FMAs over the input
    channels in order, from zero, then added to zero: the channels-last
    call's terms, so the same bits."""
    _, KD, KH, KW, C, F = wg.shape
    B = x.shape[0]
    OD, OH, OW = out_spatial
    taps = OD * OH * OW
    FT = F * taps
    tile, NV = _one_pixel_tile(FT, x.dtype)
    window = tuple(int(v) for v in tuple(pads) + tuple(out_spatial))
    wp, NFB = _memo(wg, ("cl-pixel", x.dtype.str, repr(tile), window),
                    lambda: _pack_one_pixel(wg, x.dtype, tile, window))
    if epilogue is not None and epilogue[3] in ("linear", "relu"):
        # per (f, tap) channel: each of F values repeated taps times
        epilogue = tuple(v if v is None or i >= 3 else np.repeat(np.broadcast_to(np.asarray(v, x.dtype), (F,)), taps)
                         for i, v in enumerate(epilogue))
        ep_code, epi, _ = _fused_epilogue(epilogue, FT, tile, x.dtype)
        epilogue = None
    else:
        ep_code, epi = 0, np.zeros(3, dtype=x.dtype)
    shape = (B, F, OD, OH, OW)
    direct = out is not None and out.flags.c_contiguous and out.dtype == x.dtype
    y = out if direct else _alloc.empty(shape, x.dtype)
    geo = tuple(int(v) for v in (B, 1, 1, 1, C, FT, 1, 1, 1, NFB, FT))
    work = _work(B, NFB * NV, C, (1, 1, 1), False)
    cpu_rb.parallel_tiles(cpu_patch.patch_cl, (x.reshape(-1), wp, y.reshape(-1), geo, tile, epi, ep_code, None),
                          cpu_patch.n_tiles(B), work)
    _finish(y, True, epilogue)
    if out is not None and not direct:
        out[...] = y
        return out
    return y


def _one_pixel_tile(channels, dtype):
    """(tile, NV): patch_cl's register tile for _one_pixel_patch's
    channels, and its channels per block."""
    nvec = 1 if CL1 and channels * dtype.itemsize <= cpu_simd.VBYTES else 2
    tile = cpu_rb.cl_tile(nvec, False)
    return tile, tile.nvec * tile.lanes(dtype.itemsize)


def _pack_one_pixel(wg, dtype, tile, window):
    """(wp, NFB): the taps window = (pd, ph, pw, OD, OH, OW) of wg (1, KD,
    KH, KW, C, F) packed as cpu_rb.pack_filters packs a 1 x 1 x 1 kernel of
    F * taps channels ordered (f, tap) for `tile`. Where a block of
    channels holds whole patches, one strided copy (NCHW 512 x 1^2 -> 512
    k4: 2.2 ms, against 10 ms for a (C, F, taps) copy before cpu_rb's
    packing)."""
    pd, ph, pw, OD, OH, OW = window
    C, F = wg.shape[-2:]
    taps = OD * OH * OW
    NV = tile.nvec * tile.lanes(np.dtype(dtype).itemsize)
    src = wg[0, pd:pd + OD, ph:ph + OH, pw:pw + OW].reshape(taps, C, F)
    if NV % taps:
        return cpu_rb.pack_filters(src.transpose(1, 2, 0).reshape(1, 1, 1, 1, C, F * taps), dtype, tile)
    nf = NV // taps  # output channels a block
    NFB = _ceil(F, nf)
    shape = (NFB, C, nf, taps)
    wp = np.empty(shape, dtype=dtype)
    full = F // nf
    np.copyto(wp[:full], src[:, :, :full * nf].reshape(taps, C, full, nf).transpose(2, 1, 3, 0))
    if full < NFB:
        wp[full:] = 0
        wp[full, :, :F - full * nf] = src[:, :, full * nf:].transpose(1, 2, 0)
    return wp.reshape(-1), NFB


def _cf_bands(x, wg, out_spatial, strides, dilations, pads_before, trans, writable):
    """(launch, wp): cpu_cfband.cfband_kernel's launch for `_launched`, for
    _run's channels-first forward convolutions and transposes (CF_BANDS),
    and this call's packed filters."""
    _, KD, KH, KW, C, F = wg.shape
    B, _, D, H, W = x.shape
    OD, OH, OW = out_spatial
    (sd, sh, sw), (dd, dh, dw) = strides, dilations
    stride1 = (sd, sh, sw) == (1, 1, 1) and not trans
    packing = cpu_rb.cl_tile(_band_vectors(F, x.dtype.itemsize), stride1)
    tile = cpu_rb.cl_tile(packing.nvec, stride1, wide=C >= CF_BANDS_WIDE_CHANNELS)
    NV = tile.nvec * tile.lanes(x.dtype.itemsize)
    NFB = _ceil(F, NV)

    def packed(wg, dtype):
        return _memo(wg, ("cl", dtype.str, repr(packing)), lambda: cpu_rb.pack_filters(wg, dtype, packing, writable))

    pd, ph, pw = pads_before  # a convolution's zeros before the input, or a transpose's padding
    # every channel block on each block of positions when the panels are
    # small (FB_INNER's rule): the positions' input rows stay in L1
    panel_bytes = KD * KH * KW * C * NV * x.dtype.itemsize
    inner = _small_panels(NFB, panel_bytes)
    geo, n, ntiles, wcols = cpu_cfband.band_geometry(B, C, D, H, W, OD, OH, OW, F, KD, KH, KW, sd, sh, sw, dd, dh,
                                                     dw, pd, ph, pw, trans, NFB, inner, x.dtype.itemsize,
                                                     tile.rows, NV, cpu_simd.part_rows(tile))
    ktab = cpu_cfband.tap_table(KH, KW, sh, sw, dh, dw, trans)
    work = _work(B * OD * OH * OW, NFB * NV, KD * KH * KW * C, strides, trans)
    site = {}

    def launch(x, wg, flat, epilogue, wp=None):
        if wp is None:
            wp, _ = packed(wg, x.dtype)
        # (tr: a variant for transposes)
        args = (x.reshape(-1), wp, flat, geo, tile, wcols, ktab, True if trans else None)
        run = cpu_rb.with_rows(cpu_cfband.cfband_kernel, args, n, zeroed=False, site=site)
        # a band's channel blocks in one chunk: each chunk packs its bands again
        cpu_rb.parallel_tiles(run, (), ntiles, work, 1 if inner else NFB)
        return epilogue

    return launch, packed(wg, x.dtype)[0]


def _depthwise_work(macs):
    """parallel_tiles' `work` for a call of `macs` multiply-adds of the
    vector depthwise kernels (DEPTHWISE_SERIAL_MACS)."""
    return 0 if macs < DEPTHWISE_SERIAL_MACS else DEPTHWISE_MAC_WORK * macs


def _depthwise_cl_vectors(x, wg, out_spatial, strides, dilations, pads_before):
    """The launch (for `_launched`) of cpu_dw.depthwise_cl_vectors for _run's
    channels-last depthwise calls with multiplier 1 and a vector of channels
    or more (DEPTHWISE_CL_VECTORS)."""
    _, KD, KH, KW, _, _ = wg.shape
    B, D, H, W, C = x.shape
    OD, OH, OW = out_spatial
    V = cpu_simd.VBYTES // x.dtype.itemsize
    geo, tiles = _depthwise_cl_vectors_plan(x.shape, (KD, KH, KW), tuple(out_spatial), tuple(strides),
                                            tuple(dilations), tuple(pads_before), x.dtype.itemsize, cpu_simd.VBYTES,
                                            DEPTHWISE_CL_POSITIONS)
    site = {}

    def launch(x, wg, flat, epilogue, wp=None):
        wb = _cl_vector_filters(wg, x.dtype, V)
        args = (np.ascontiguousarray(x).reshape(-1), wb.reshape(-1), flat, geo) + tiles
        # the compiled entry point: a small call skips the dispatcher's typing of the tiles
        cpu_rb.parallel_tiles(cpu_dw.depthwise_cl_vectors, args, B * OD * OH,
                              _depthwise_work(B * OD * OH * OW * C * KD * KH * KW), 1, None, site)
        return epilogue

    return launch


@functools.lru_cache(maxsize=256)
def _depthwise_cl_vectors_plan(shape, kernel, out_spatial, strides, dilations, pads_before, itemsize, vbytes, NW):
    """_depthwise_cl_vectors' geo and (tile, 1-vector tile, period), once
    per call geometry."""
    B, D, H, W, C = shape
    geo = tuple(int(v) for v in (B, D, H, W, C) + out_spatial + kernel + strides + dilations + pads_before
                + (cpu_rb.sum_group(kernel[2], 1),))
    return geo, (cpu_simd.Tile(1, NW, vbytes), cpu_simd.Tile(1, 1, vbytes), (0,) * (vbytes // itemsize))


def _depthwise_cf(x, wg, out_spatial, strides, dilations, pads_before):
    """The launch (for `_launched`) of cpu_dw.depthwise_cf for _run's
    channels-first depthwise calls (DEPTHWISE_CF)."""
    _, KD, KH, KW, _, M = wg.shape
    B, C, D, H, W = x.shape
    OD, OH, OW = out_spatial
    geo, tile, nbuf = _depthwise_cf_plan(x.shape, wg.shape, tuple(out_spatial), tuple(strides), tuple(dilations),
                                         tuple(pads_before), x.dtype.itemsize, cpu_simd.VBYTES, DEPTHWISE_CF_ROWS,
                                         DEPTHWISE_CF_FLAT_RATIO, DEPTHWISE_CF_FLAT_VECTORS)
    site = {}

    def launch(x, wg, flat, epilogue, wp=None):
        dtype = x.dtype
        # filters (C*M, KD, KH, KW): output channel c*M + m's taps in a row
        wf = _memo(wg, ("dw-cf", dtype.str), lambda: _alloc.readonly(np.ascontiguousarray(
            wg.transpose(0, 5, 4, 1, 2, 3).reshape(C * M, KD, KH, KW), dtype=dtype)))
        args = (np.ascontiguousarray(x).reshape(-1), wf.reshape(-1), flat, geo, tile)
        cpu_rb.parallel_tiles(cpu_rb.with_rows(cpu_dw.depthwise_cf, args, nbuf, site=site), (), B * C * OD,
                              _depthwise_work(B * OD * OH * OW * C * M * KD * KH * KW))
        return epilogue

    return launch


@functools.lru_cache(maxsize=256)
def _depthwise_cf_plan(shape, wshape, out_spatial, strides, dilations, pads_before, itemsize, vbytes, rows,
                       flat_ratio, flat_vectors):
    """_depthwise_cf's (geo, tile, scratch elements), once per call
    geometry (~10 us of Python per call otherwise, a tenth of a 7^2 x 960
    call)."""
    _, KD, KH, KW, _, M = wshape
    B, C, D, H, W = shape
    OD, OH, OW = out_spatial
    (sd, sh, sw), (dd, dh, dw) = strides, dilations
    pd, ph, pw = pads_before
    V = vbytes // itemsize
    plane = (OH, OW, H, W, KH, KW, sh, sw, dh, dw, ph, pw)
    # lanes computed per output plane: tiles of `rows` output rows, or of
    # the plane's positions Ws columns a row, by tiles of `rows` or
    # `flat_vectors` vectors (whichever computes fewer)
    (Ws, NR, lanes), nvec, flat = cpu_dw.plane_geometry(*plane, rows, V, False), rows, False
    best, k = min(((cpu_dw.plane_geometry(*plane, k, V, True), k) for k in (rows, flat_vectors)),
                  key=lambda g: g[0][2])
    if sw == 1 and best[2] <= flat_ratio * lanes:
        (Ws, NR, lanes), nvec, flat = best, k, True
    geo = tuple(int(v) for v in (B, C, D, H, W, M, OD, OH, OW, KD, KH, KW, sd, sh, sw, dd, dh, dw, pd, ph, pw,
                                 cpu_rb.sum_group(KW, 1), Ws, NR, flat))
    return geo, cpu_simd.Tile(1, nvec, vbytes), KD * sh * sw * NR * Ws


def _depthwise_blocks(x, wg, out_spatial, strides, dilations, pads_before, channels_first):
    """The launch (for `_launched`) of cpu_dw.depthwise_cf_blocks for _run's
    channels-first depthwise calls on small planes whose channels fill their
    vectors (DEPTHWISE_CF_BLOCKS), of cpu_dw.depthwise_cl_blocks for
    channels-last ones with multiplier 1 and short rows
    (DEPTHWISE_CL_BLOCKS)."""
    _, KD, KH, KW, _, M = wg.shape
    if channels_first:
        B, C, D, H, W = x.shape
    else:
        B, D, H, W, C = x.shape
    OD, OH, OW = out_spatial
    V = cpu_simd.VBYTES // x.dtype.itemsize
    # filters (ceil(C / V), M, KD, KH, KW, V): block cb's channels in its
    # lanes (channels-first: cb*V + l, zeros past C; channels-last: the
    # last block the last V channels)
    NB = _ceil(C, V)
    geo, tile, nbuf = _depthwise_blocks_plan((B, C, D, H, W), wg.shape, tuple(out_spatial), tuple(strides),
                                             tuple(dilations), tuple(pads_before), x.dtype.itemsize,
                                             cpu_simd.VBYTES, DEPTHWISE_CF_BLOCK_POSITIONS, channels_first)
    kernel = cpu_dw.depthwise_cf_blocks if channels_first else cpu_dw.depthwise_cl_blocks
    lanes = (0,) * V
    site = {}

    def launch(x, wg, flat, epilogue, wp=None):
        dtype = x.dtype
        if channels_first:
            wb = _memo(wg, ("dw-cf-blocks", dtype.str, V), lambda: _alloc.readonly(np.ascontiguousarray(
                np.concatenate([wg[:, :, :, :, 0, :], np.zeros((NB * V - C, KD, KH, KW, M), wg.dtype)]).reshape(
                    NB, V, KD, KH, KW, M).transpose(0, 5, 2, 3, 4, 1), dtype=dtype)))
        else:
            wb = _cl_vector_filters(wg, dtype, V)
        args = (np.ascontiguousarray(x).reshape(-1), wb.reshape(-1), flat, geo, tile, lanes)
        cpu_rb.parallel_tiles(cpu_rb.with_rows(kernel, args, nbuf, site=site), (), B * NB * OD,
                              _depthwise_work(B * OD * OH * OW * C * M * KD * KH * KW))
        return epilogue

    return launch


def _cl_vector_filters(wg, dtype, V):
    """Channels-last depthwise filters for the vector kernels, (ceil(C / V),
    1, KD, KH, KW, V): channel min(cb*V, C - V) + l's in lane l."""
    C, KD, KH, KW = wg.shape[:4]
    NB = _ceil(C, V)

    def make():
        channels = np.minimum(np.arange(NB) * V, C - V)[:, None] + np.arange(V)
        return _alloc.readonly(np.ascontiguousarray(
            wg[channels.reshape(-1), :, :, :, 0, :].reshape(NB, V, KD, KH, KW, 1).transpose(0, 5, 2, 3, 4, 1),
            dtype=dtype))

    return _memo(wg, ("dw-cl-vectors", dtype.str, V), make)


@functools.lru_cache(maxsize=256)
def _depthwise_blocks_plan(shape, wshape, out_spatial, strides, dilations, pads_before, itemsize, vbytes, NW,
                           channels_first):
    """_depthwise_blocks' (geo, tile, scratch elements), once per call
    geometry: the KD padded planes, and for the channels-first kernel its
    outputs' block, a block of positions to transpose and a copy of a
    block's planes."""
    V = vbytes // itemsize
    _, KD, KH, KW, _, M = wshape
    B, C, D, H, W = shape
    OD, OH, OW = out_spatial
    (sd, sh, sw), (dd, dh, dw) = strides, dilations
    pd, ph, pw = pads_before
    Hp, Wp = cpu_dw.block_geometry(OH, OW, H, W, KH, KW, sh, sw, dh, dw, ph, pw, NW)
    geo = tuple(int(v) for v in (B, C, D, H, W, M, OD, OH, OW, KD, KH, KW, sd, sh, sw, dd, dh, dw, pd, ph, pw,
                                 cpu_rb.sum_group(KW, 1), Hp, Wp))
    n = KD * Hp * Wp * V
    if channels_first:
        n += (OH * OW + 2 * V) * V + V * (H * W + 1)
    return geo, cpu_simd.Tile(1, NW, vbytes), n


def _band_vectors(F, itemsize):
    """Vectors per row of the band kernel's tile, as cl_kernel's (CL1): one
    where F output channels fit in one (its 16-row tile for stride-1
    forward convolutions on AVX-512; transposes take 8 rows: NCDHW 16^2 x
    20 x 16 -> 16 ran at 1.81x the channels-last time with 16, 1.38 with
    8), else two."""
    return 1 if CL1 and F * itemsize <= cpu_simd.VBYTES else 2


def _cf_gather(x, wg, out_spatial, strides, dilations, pads_before, writable):
    """The launch (for `_launched`) of cpu_cfgather's kernels for _run's
    channels-first strided transposes with few input channels (CF_GATHER):
    the input rows expanded, then the output rows."""
    _, KD, KH, KW, C, F = wg.shape
    B, _, D, H, W = x.shape
    OD, OH, OW = out_spatial
    (sd, sh, sw), (dd, dh, dw) = strides, dilations
    pd, ph, pw = pads_before
    tile = cpu_cfgather.tile_for()
    NJ = tile.nvec * tile.lanes(x.dtype.itemsize)
    NFB = _ceil(F, tile.rows)
    OWP = _ceil(OW, NJ) * NJ
    dt, ht, wt = cpu_cfgather.plan(KD, KH, KW, sd, sh, sw, dd, dh, dw)
    NKW = wt.shape[1]
    BR = CF_GATHER_BAND_ROWS
    geo = tuple(int(v) for v in (B, C, D, H, W, F, OD, OH, OW, sd, sh, sw, dd, dh, dw, pd, ph, pw, NFB, OWP, NKW, BR))
    work = _work(B * OD * OH * OW, NFB * tile.rows, KD * KH * KW * C, strides, True)
    phases = (0,) * sw
    expand_site, site = {}, {}

    def launch(x, wg, flat, epilogue, wp=None):
        dtype = x.dtype
        wp, woff = _memo(wg, ("cf-gathered", dtype.str, repr(tile), tuple(strides), tuple(dilations), pw % sw),
                         lambda: cpu_cfgather.pack_weights(wg, dtype, tile, strides, dilations, pw))
        E = _alloc.work(B * D * H * NKW * C * OWP, dtype)
        xf = x.reshape(-1)
        args = (xf, wt, geo, E, tile)
        cpu_rb.parallel_tiles(cpu_cfgather.expand_rows, args, B * D * H, COPY_WORK * E.size, 1, None, expand_site)
        stream = _streams(flat, OW, tile.nvec * tile.vbytes)  # (output rows of whole vectors)
        args = (E, wp, flat, dt, ht, woff, geo, tile, phases, stream)
        cpu_rb.parallel_tiles(cpu_cfgather.cfgather_kernel, args, _ceil(B * OD * OH, BR) * NFB, work, 1, None, site)
        return epilogue

    return launch


def _fused_epilogue(epilogue, F, tile, dtype):
    """(ep_code, epi, what is left for _finish) for the channels-last
    kernels: an affine + linear/ReLU epilogue runs in their registers."""
    if epilogue is not None and epilogue[3] in ("linear", "relu"):
        bias, scale, shift, activation, _ = epilogue
        epi = cpu_rb.epilogue_params(F, tile, dtype, bias, scale, shift)
        return (2 if activation == "relu" else 1), epi, None
    return 0, np.zeros(3, dtype=dtype), epilogue


# parallel_tiles' work per element of a layout copy (cpu_layout), in
# multiply-adds' time: ~0.2 ns an element against ~0.02 ns a multiply-add
# on one core
COPY_WORK = 8
# ... and fewer elements than this go through NumPy (the kernel's call costs
# ~2 us more)
COPY_MIN = 1 << 14


def _to_channels_first(src, dst):
    """np.copyto(dst, np.moveaxis(src, -1, 1)): cpu_layout's kernel when
    both are C-contiguous (and NumPy's copy otherwise)."""
    B, C = src.shape[0], src.shape[-1]
    if not (src.flags.c_contiguous and dst.flags.c_contiguous) or src.size < COPY_MIN:
        np.copyto(dst, np.moveaxis(src, -1, 1))
        return
    S = src.size // (B * C)
    tile = cpu_simd.Tile(1, 1)
    cpu_rb.parallel_tiles(cpu_layout.to_channels_first, (src.reshape(B, S, C), dst.reshape(B, C, S), tile),
                          B * -(-S // (cpu_layout.BLOCKS * tile.lanes(src.dtype.itemsize))), COPY_WORK * src.size)


def _pointwise_cf(x, wg, epilogue, out, key=None):
    """cpu_pw.pointwise_cf for a channels-first 1x1 stride-1 convolution
    with few output channels (see _run)."""
    B, C, D, H, W = x.shape
    F = wg.shape[-1]
    P = D * H * W
    if out is not None:
        out[...] = _pointwise_cf(x, wg, epilogue, None)
        return out
    tile = cpu_pw.pw_cf_tile(F, D * H * W)
    writable = _alloc.root(wg).flags.writeable

    def packed(wg, dtype):
        return _memo(wg, ("pw-cf", dtype.str, repr(tile)), lambda: cpu_rb.pack_filters_wv(wg, dtype, tile, writable))

    wp, NFB = packed(wg, x.dtype)
    NJ = tile.nvec * tile.lanes(x.dtype.itemsize)
    group = _pointwise_cf_group(C, F, P, x.dtype.itemsize)
    # the copy's rule, into results stored plainly and with streaming stores
    packs = {s: _pointwise_cf_pack(C, F, P, x.dtype.itemsize, tile, s) for s in (None, True)}
    site = {}

    def launch(x, wg, flat, epilogue, wp=None):
        if wp is None:
            wp, _ = packed(wg, x.dtype)
        # (streaming stores: output planes and tiles a whole number of
        # vectors long; not where the sums of a group of planes are read back)
        stream = _streams(flat, P, NJ * x.dtype.itemsize) if group == C else None
        args = (x.reshape(B, C, P), wp.reshape(NFB, C, tile.rows), flat.reshape(B, F, P), tile, group, packs[stream],
                stream)
        cpu_rb.parallel_tiles(cpu_pw.pointwise_cf, args, B * _ceil(P, NJ), (C + 64) * F * B * P, 1, None, site)
        return epilogue

    return _launched(key, launch, x, wg, _alloc.empty(B * F * P, x.dtype), epilogue, (B, F, D, H, W), True, wp)


def _short(x, wg, tile, out_spatial, strides, dilations, pads_before, writable, ops):
    """(launch, wp): cpu_short.short_cl's launch for `_launched`, into
    flat (output pixel p's channels at p * ops), the epilogue in registers
    where _fused_epilogue runs it there (see _run; it returns what is left
    of the epilogue for _finish), and this call's packed filters."""
    B, D, H, W, C = x.shape
    KD, KH, KW, _, F = wg.shape[1:]
    OD, OH, OW = out_spatial

    def packed(wg, dtype):
        return _memo(wg, ("cl", dtype.str, repr(tile)), lambda: cpu_rb.pack_filters(wg, dtype, tile, writable))

    wp, NFB = packed(wg, x.dtype)
    cols = cpu_short.line_columns(B * OD * OH, OW, tile.rows, numba.get_num_threads())
    geo = tuple(int(v) for v in (B, D, H, W, C, OD, OH, OW, F, KD, KH, KW, *strides, *dilations, *pads_before,
                                 NFB, ops, cols, cpu_rb.sum_group(KW, C)))
    work = _work(B * OD * OH * OW, NFB * tile.nvec * tile.lanes(x.dtype.itemsize), KD * KH * KW * C, strides, False)
    ntiles = cpu_short.n_tiles(geo)
    site = {}

    def launch(x, wg, flat, epilogue, wp=None):
        if wp is None:
            wp, _ = packed(wg, x.dtype)
        ep_code, epi, rest = _fused_epilogue(epilogue, F, tile, x.dtype)
        stream = _streams(flat, ops, tile.nvec * tile.vbytes)
        xf, zrow = x.reshape(-1), np.zeros(C * KW + 1, dtype=x.dtype)
        args = (xf, wp, flat, zrow, geo, tile, epi, ep_code, stream)
        cpu_rb.parallel_tiles(cpu_short.short_cl, args, ntiles, work, 1, None, site)
        return rest

    return launch, wp


def _streams(flat, ops, block_bytes):
    """The kernels' `stream` argument: True where they store the whole rows
    of their register tiles with streaming stores (STREAM_STORES), else
    None (plain stores; a compiled variant each): a result of STREAM_MIN_BYTES or more,
    at a vector-aligned address, whose rows start `ops` elements apart
    (channels-last pixels; channels-first lines) and whose tiles start
    block_bytes apart within them (channel blocks; blocks of columns), so
    that every whole vector is aligned."""
    v = cpu_simd.VBYTES
    aligned = (STREAM_STORES and flat.nbytes >= STREAM_MIN_BYTES and flat.ctypes.data % v == 0
               and ops * flat.itemsize % v == 0 and block_bytes % v == 0)
    return True if aligned else None


def _short_cf_line(in_spatial, out_spatial, strides, KH, KW, dtype, F):
    """short_cf's lines: (flat, length, fill). flat: whole (OH, OW) planes
    (an H stride of 1 and OW == W let a block of output columns span
    rows), taken where they fill the vector lanes at least as well as rows
    (and make fewer, longer lines); fill: the share of the tile's lanes
    that hold output columns, 0 for lines of less than one vector and
    where the lane masks (cpu_short.cf_masks, kept per geometry) would
    pass SHORT_CF_MASK_BYTES."""
    lanes = cpu_simd.VBYTES // dtype.itemsize

    def fill(length, KHm):
        NJ = _short_cf_tile(length, F, dtype).nvec * lanes
        if length < lanes or _ceil(length, NJ) * KHm * (KW * NJ // lanes + 1) * 4 > SHORT_CF_MASK_BYTES:
            return 0.0
        return length / (_ceil(length, NJ) * NJ)

    OH, OW = out_spatial[1:]
    rows = fill(OW, 1)
    if strides[1] == 1 and OW == in_spatial[2] and OH > 1:
        plane = fill(OH * OW, KH)
        if plane >= rows and plane > 0:
            return True, OH * OW, plane
    return False, OW, rows


def _short_cf_tile(length, F, dtype):
    """short_cf's tile: wv_kernel's, one vector along W where two would pad
    the lines more."""
    return cpu_rb.wv_tile(F, length, cpu_simd.VBYTES // dtype.itemsize)


def _short_cf(x, wg, out_spatial, strides, dilations, pads_before, writable, line):
    """(launch, wp): cpu_short.short_cf's launch for `_launched`,
    channels-first (see _run), and this call's packed filters; line:
    _short_cf_line's (flat, length, fill) for the call."""
    B, C, D, H, W = x.shape
    KD, KH, KW, _, F = wg.shape[1:]
    OD, OH, OW = out_spatial
    whole, length, _ = line
    isz = x.dtype.itemsize
    tile = _short_cf_tile(length, F, x.dtype)

    def packed(wg, dtype):
        return _memo(wg, ("wv", dtype.str, repr(tile), None), lambda: cpu_rb.pack_filters_wv(wg, dtype, tile, writable))

    wp, NFB = packed(wg, x.dtype)
    V = tile.lanes(isz)
    steps = cpu_short.cf_steps(C, KW, D * H * W * isz, dilations[2], isz, tile.nvec)
    masks = cpu_short.cf_masks(OH, OW, H, W, KH, KW, dilations[1], dilations[2], pads_before[1], pads_before[2], V,
                               tile.nvec, whole)
    if whole:
        OH, OW = 1, length
    cols = cpu_short.line_columns(B * OD * OH, OW, tile.nvec * V, numba.get_num_threads())
    geo = tuple(int(v) for v in (B, D, H, W, C, OD, OH, OW, F, KD, KH, KW, *strides[:2], *dilations, *pads_before,
                                 NFB, cols, whole))
    work = _work(B * OD * OH * OW, NFB * tile.rows, KD * KH * KW * C, strides, False)
    ntiles = cpu_short.n_tiles_cf(geo)
    site = {}

    def launch(x, wg, flat, epilogue, wp=None):
        if wp is None:
            wp, _ = packed(wg, x.dtype)
        # (streaming stores: every block of columns a whole number of vectors
        # from its channel plane's start, each line's too)
        stream = _streams(flat, OW, V * isz) if cols % V == 0 else None
        xf = x.reshape(-1)
        args = (xf, wp, flat, steps, masks, geo, tile, stream)
        cpu_rb.parallel_tiles(cpu_short.short_cf, args, ntiles, work, 1, None, site)
        return epilogue

    return launch, wp


def _pointwise(x, wg, epilogue, out, key=None):
    """cpu_pw.pointwise_cl for a 1x1 stride-1 convolution (see _run)."""
    B, D, H, W, C = x.shape
    F = wg.shape[-1]
    P = B * D * H * W
    if out is not None:
        out[...] = _pointwise(x, wg, epilogue, None)
        return out
    fused = POINTWISE_FUSED and F in cpu_pw.PW_FUSED_TILES and cpu_simd.VREGS >= 32
    tile = cpu_pw.pw_tile(F, x.dtype.itemsize, fused)
    assert C * x.dtype.itemsize <= cpu_pw.PW_MAX_CHANNEL_BYTES
    writable = _alloc.root(wg).flags.writeable

    def packed(wg, dtype):
        # (NFB, C, FR): blocks of FR = tile.rows output channels, zero-padded
        return _memo(wg, ("pw", dtype.str, repr(tile)), lambda: cpu_rb.pack_filters_wv(wg, dtype, tile, writable))

    wp, NFB = packed(wg, x.dtype)
    site = {}

    def launch(x, wg, flat, epilogue, wp=None):
        if wp is None:
            wp, _ = packed(wg, x.dtype)
        args = (np.ascontiguousarray(x).reshape(P, C), wp.reshape(NFB, C, tile.rows), flat.reshape(P, F), tile, fused)
        cpu_rb.parallel_tiles(cpu_pw.pointwise_cl, args, P, (C + 64) * F * P, 1, None, site)
        return epilogue

    return _launched(key, launch, x, wg, _alloc.empty(P * F, x.dtype), epilogue, (B, D, H, W, F), False, wp)


def _work(positions, channels, taps, strides, trans):
    """A call's cost in multiply-adds, for cpu_rb.parallel_tiles: those the
    kernel does (channels: output channels padded to whole register tiles;
    a strided transpose's output receives about one tap in s per
    dimension), plus 64 per output element computed (stores, per-tile
    set-up, gathers: a 1-output-channel transpose does far fewer
    multiply-adds than its time says)."""
    macs = positions * channels * taps
    if trans:
        macs //= strides[0] * strides[1] * strides[2]
    return macs + 64 * positions * channels


def _finish(y, channels_first, epilogue):
    """y after the epilogue not fused into the kernel (in place); none for
    an identity epilogue (no bias, scale or shift, linear)."""
    if epilogue is not None and not (all(v is None for v in epilogue[:3]) and epilogue[3] == "linear"):
        from . import cpu_layers

        bias, scale, shift, activation, alpha = epilogue
        channels = y.shape[1] if channels_first else y.shape[-1]
        cpu_layers.epilogue(y, channels, channels_first, bias, scale, shift, activation, alpha)
    return y


# Packed filters and their finiteness, once per read-only filter array
# (and per small writable one while its bytes stay the same: _alloc.memo).
_memo, _MEMO = _alloc.memo, _alloc.MEMO


_ceil = cpu_rb._ceil


def _finite(w):
    """False when the filters hold a NaN or Inf. The kernels multiply a zero
    row into W-edge taps that fall on padding (0 * Inf = NaN), while the
    rule is that such a tap contributes no term; filters like that (a broken
    model, never a fast path) go through the float64 reference instead.
    Checking costs one summation over the filters."""
    with np.errstate(invalid="ignore", over="ignore"):
        # a finite sum means every element is finite (Inf and NaN propagate);
        # only an overflowing sum of finite values needs the element test
        return bool(np.isfinite(w.sum())) or bool(np.isfinite(w).all())


def _into(out, y):
    """y, or y copied into the caller's `out`."""
    if out is None:
        return y
    out[...] = y
    return out


def _checked(x, w, out_spatial, out_channels, epilogue, out, compute, fallback):
    """compute() (the kernels), or fallback() (the float64 reference) when
    the filters hold a NaN or Inf (see _finite). The filters are checked
    first when they are no larger than the result (or remembered); else
    the result is checked after the kernels and the filters only when it
    is not finite: every term the reference sums, the kernels sum too, and
    a non-finite term makes the sum non-finite, so a finite result means
    no non-finite weight was used (VGG's 3x3x512x512 filters, 9.4 MB, for
    a 1.6 MB result: ~1 ms less per call). Epilogues that could turn a
    non-finite value finite (tanh, sigmoid, ...) check the filters first."""
    result_size = x.shape[0] * math.prod(out_spatial) * out_channels
    keeps_nonfinite = epilogue is None or epilogue[3] in ("linear", "relu")
    if w.size <= result_size or not keeps_nonfinite or not _alloc.root(w).flags.writeable:
        if not _memo(w, "finite", lambda: _finite(w)):
            return _into(out, fallback())
        return compute()
    y = compute()
    if _finite(y) or _finite(w):
        return y
    return _into(out, fallback())


def forward(x, w, out_spatial, strides, dilations, pads_before, groups, channels_first, epilogue=None, out=None):
    """Direct (gather) convolution. Returns a new 5-D array, or `out`.

    epilogue (for conv layers): None, or (bias, scale, shift, activation,
    alpha) applied per output channel to the result, in place:
    act((y + bias) * scale + shift), None standing for 0, 1, 0 (activation
    names of cpu_layers.ACTIVATIONS).
    out (for a Model's concatenations): None, or a writable 5-D array of
    the result's shape and dtype to hold it; the channels-last kernel
    writes a channel slice of a contiguous array (`buf[..., c0:c1]`)
    directly, any other case is computed and copied."""
    KD, KH, KW, P, Q = w.shape

    def compute():
        wg = w.reshape(KD, KH, KW, P, groups, Q // groups).transpose(4, 0, 1, 2, 3, 5)
        return _run(x, wg, out_spatial, strides, dilations, pads_before, channels_first, False, epilogue, out)

    def fallback():
        y = reference.forward(x, w, out_spatial, strides, dilations, pads_before, groups,
                              channels_first).astype(x.dtype)
        return _finish(y, channels_first, epilogue)

    return _checked(x, w, out_spatial, Q, epilogue, out, compute, fallback)


def transpose(x, w, out_spatial, strides, dilations, pads_before, channels_first, epilogue=None, out=None):
    """Scatter-based transposed convolution. Returns a new 5-D array, or
    `out`. epilogue, out: as in `forward`."""
    def compute():
        wg = w.transpose(0, 1, 2, 4, 3)[None]  # (1, KD, KH, KW, Q=C_in, P=C_out)
        return _run(x, wg, out_spatial, strides, dilations, pads_before, channels_first, True, epilogue, out)

    def fallback():
        y = reference.transpose(x, w, out_spatial, strides, dilations, pads_before,
                                channels_first).astype(x.dtype)
        return _finish(y, channels_first, epilogue)

    return _checked(x, w, out_spatial, w.shape[3], epilogue, out, compute, fallback)


for _module in (sys.modules[__name__], cpu_cfband, cpu_cfgather, cpu_dw, cpu_layout, cpu_patch, cpu_pw, cpu_rb,
                cpu_short, cpu_simd):
    _module.__class__ = _Settings
