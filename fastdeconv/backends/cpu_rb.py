"""Register-blocked CPU kernels (both ops).

Channels-last (`cl_kernel`), output-stationary: a register tile of RB
output positions x NW vectors of output channels is accumulated in
registers over every kernel tap and every input channel, then stored once.
Per reduction step it loads NW weight vectors and broadcasts RB inputs for
RB*NW FMAs. AVX-512 (64-byte vectors, 32 registers): RB = 8, NW = 2 (32
float32 / 16 float64 channels), 12 x 2 for stride-1 calls off AMD Zen
(CL_WIDE_ROWS); AVX2 (32-byte vectors, 16 registers): 6 x 2 (16 float32
channels); NW = 1 (8 rows) for narrow layers. The tile shape is a
cpu_simd.Tile argument, so it is part of the compiled signature.

Rows of a tile are output positions that share (od, oh) and, for
transposes, the W phase `ow % sw`: all such outputs receive the same taps,
and consecutive ones read consecutive input columns (phase decomposition:
each phase of a strided transpose is a dense gather). The batch is folded
into the rows, so small images still fill the register tile.

A row whose input column for a tap lies outside the input (padding, or a
row past the end of the tile) reads a zero row instead: it adds 0 * w,
which is exactly 0 for finite weights, so padding never creates a NaN from
a finite input; a tap that no row of the block reaches is skipped.

Row spaces (`row_spaces`): the rows of one line, or, for convolutions and
stride-1-along-H transposes, of consecutive lines with the same H taps
inside the input, ordered so that columns missing the same W taps come
together (`row_order`). A tile is up to RT consecutive rows of one row
space.

A tile's rows run in blocks of RB; a block of at most cpu_simd.part_rows
rows runs vrun's part-tile loop, and when RB < rows left <= 2 of those,
they run as two such blocks (a tile of 32 rows on the AVX2 tile: 6, 6, 6, 6, 4, 4).

Order of the terms of every output element: for each group of `gs`
consecutive (kd, kh) (group (kd*KH + kh) // gs), a partial sum over (kh, kw,
input channel), one FMA each from zero, added to the running total; fixed
by the shapes only (`sum_group`). Each partial sum has at most
SUM_GROUP_TERMS terms unless one (kd, kh) alone has more: long sums stay
two-level for accuracy (a single chain of 13824 terms was less accurate
than TensorFlow), short ones skip most of the 2 x tile vector adds and
spills per (kd, kh), which cost 6 % of the time at 48 terms per (kd, kh)
and 40 % at 3. Forward convolutions with
dw == 1 and no groups read (kw, c) as one contiguous run when all rows are
inside the input: the same terms in the same order, fewer loop overheads.
"""

import functools
import itertools
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba.core import types
from numba.extending import intrinsic

from .. import _alloc
from .._jit import helper, serial_kernel
from . import cpu_simd
from .cpu_simd import (PART_ROWS, Tile, addr, itemsize, scratch, sfence, tile_dims, tile_part_rows, tile_rows,
                       vcopy_over, vpack_rows, vrun, vrun_cols, vrun_cols_gather, vrun_cols_part, vrun_cols_whole,
                       vtadd, vtaffine, vtranspose_block, vtstore, vtstore_rows, vtstore_stream, vtstore_zip2,
                       vtzero)

ROWS = 48  # output positions per parallel tile (at most)


@helper
def _cdiv(a, b):
    """Ceiling division for b > 0 and any sign of a (Numba's // floors)."""
    return -((-a) // b)


def _ceil(a, b):
    """_cdiv for Python callers (a compiled helper called from Python
    goes through Numba's dispatcher: ~1 us a call)."""
    return -(-a // b)


def _int_select(op):
    """The typer of an intrinsic choosing one of two integers on their
    common type: the first where `first op second` holds (`_min`, `_max`).
    The builtins compile a function of their own per argument types (20-40
    ms of a kernel's cold compile), and a helper's IR is inlined, typed and
    lowered at every call site (expand_rows has 15)."""

    def typer(typingctx, a, b):
        if not (isinstance(a, types.Integer) and isinstance(b, types.Integer)):
            return None
        ty = typingctx.unify_pairs(a, b)
        if not isinstance(ty, types.Integer):
            return None

        def codegen(context, builder, sig, args):
            x = context.cast(builder, args[0], sig.args[0], ty)
            y = context.cast(builder, args[1], sig.args[1], ty)
            compare = builder.icmp_signed if ty.signed else builder.icmp_unsigned
            return builder.select(compare(op, x, y), x, y)

        return ty(a, b), codegen

    return typer


@intrinsic
def _min(typingctx, a, b):
    """min of two integers (in Python's order: a where they are equal)."""
    return _int_select("<=")(typingctx, a, b)


@intrinsic
def _max(typingctx, a, b):
    """max of two integers (a where they are equal)."""
    return _int_select(">=")(typingctx, a, b)


SUM_GROUP_TERMS = 256


def sum_group(KW, Cg):
    """(kd, kh) pairs per partial sum: as many as keep it within
    SUM_GROUP_TERMS terms (KW * Cg each), at least one."""
    return max(1, SUM_GROUP_TERMS // (KW * Cg))


NO_TAP = -(1 << 62)


def _taps_along(O, K, s, d, p, n, trans):
    """[o * K + k]: the input index along one axis that tap k of output o
    reads, or -1 (padding, or a strided transpose's skipped tap)."""
    o = np.arange(O)[:, None]
    k = np.arange(K)[None, :]
    if trans:
        t = o + p - k * d
        i = t // s
        ok = (t >= 0) & (t % s == 0) & (i < n)
    else:
        i = o * s + k * d - p
        ok = (i >= 0) & (i < n)
    return np.where(ok, i, -1).reshape(-1)


@functools.lru_cache(maxsize=256)
def tap_tables(B, OD, OH, OW, P, KD, KH, KW, D, H, W, sd, sh, sw, dd, dh, dw, pd, ph, pw, trans, rb, fold):
    """cl_kernel's taps, computed once per call geometry (on the host, no
    integer division in the kernel): one int64 array of
    - [od * KD + kd]: the input index along D that tap kd of output od
      reads, or -1 (padding, or a strided transpose's skipped tap);
    - [OD*KD + oh * KH + kh]: the same along H;
    - [OD*KD + OH*KH + phase * KW + kw]: the input column offset e of tap kw
      for W phase `phase` (a tile's row j reads column j*mw + e), or NO_TAP;
    - from OD*KD + OH*KH + P*KW: the tiles of each phase and the row orders
      they read (`row_spaces`, for tiles of at most rows_per_tile rows, a
      multiple of rb).
    Returns (the table, read-only; tiles per phase). Shared by calls with
    the same geometry."""
    phase = np.arange(P)[:, None]
    kw = np.arange(KW)[None, :]
    if trans:
        t = phase + pw - kw * dw
        e = np.where(t % sw == 0, t // sw, NO_TAP)
    else:
        e = np.broadcast_to(kw * dw - pw, (P, KW))
    h_taps = _taps_along(OH, KH, sh, dh, ph, H, trans)
    head = [_taps_along(OD, KD, sd, dd, pd, D, trans), h_taps, e.reshape(-1)]
    start = sum(len(a) for a in head)
    tiles, T = row_spaces(B, OH, OW, P, W, 1 if trans else sw, e, h_taps.reshape(OH, KH), rb,
                          fold and (not trans or sh == 1), start)
    table = np.concatenate(head + [tiles]).astype(np.int64)
    table.flags.writeable = False
    return table, T


def w_classes(nJ, W, mw, e):
    """For nJ columns j reading input columns j*mw + e for the offsets e of
    their taps (NO_TAP: none): (c1, c2), the number of the first columns
    that miss a tap on the left (j*mw + min e < 0) and of the last ones that
    miss one on the right (j*mw + max e >= W), together at most nJ."""
    es = e[e != NO_TAP]
    if nJ <= 0 or es.size == 0:
        return 0, 0
    left = min(nJ, max(0, -(int(es.min()) // mw)))
    first_right = -(-(W - int(es.max())) // mw)  # the first column with j*mw + max e >= W
    return left, nJ - min(nJ, max(left, first_right))


def row_order(NL, nJ, c1, c2):
    """The (line, column) of the rows of one image in a row space of NL
    lines of nJ columns: three classes of columns, [0, c1) (they miss a tap
    on the left), [c1, nJ - c2) (inside for every tap) and [nJ - c2, nJ),
    each for all lines, line by line. A block of rows then holds columns
    that miss the same taps, which it skips, instead of rows reading the
    zero row: W padding costs nothing (4 % of the multiply-adds of the
    dilated transpose) and lines of 32 no longer end in two 4-row blocks.
    One line: the columns in order."""
    return [(l, j) for lo, hi in ((0, c1), (c1, nJ - c2), (nJ - c2, nJ)) for l in range(NL) for j in range(lo, hi)]


TILE_FIELDS = 5  # a tile in the tap table: first line, lines, rows [r0, r1), its row order


def row_spaces(B, OH, OW, P, W, mw, e, h_inside, rb, fold, start):
    """cl_kernel's tiles for each W phase, as the part of the tap table
    from index `start`, and the number of tiles per phase T. Row spaces:
    each line alone, except with fold each run of consecutive lines with
    the same H taps inside the input (h_inside (OH, KH): input line or -1),
    which make one space in row_order (a block of rows on several of them
    runs the same taps for all; those inside read input lines hs apart
    from one output line to the next). A space of n = B * lines * columns
    rows (image by image) is cut into tiles of rows_per_tile(n, rb) rows.
    Layout: P * T tiles of TILE_FIELDS (first line, lines, r0, r1, start of
    its row order; a phase's last tiles may be empty), then per phase the
    row order of each space size, each row (line - first line) << 32 |
    column."""
    valid = h_inside >= 0
    spaces = []  # (first line, lines): runs of lines with the same taps inside
    for oh in range(OH):
        if fold and spaces and (valid[oh] == valid[oh - 1]).all():
            spaces[-1] = (spaces[-1][0], spaces[-1][1] + 1)
        else:
            spaces.append((oh, 1))
    per_phase, orders = [], []
    pos = 0  # from the first row order
    for phase in range(P):
        nJ = -(-(OW - phase) // P)
        c1, c2 = w_classes(nJ, W, mw, e[phase])
        first = {}  # lines -> the start of their row order (one per space size)
        tiles = []
        for oh0, nl in spaces:
            if nl not in first:
                first[nl] = pos
                orders.append([(l << 32) | j for l, j in row_order(nl, nJ, c1, c2)])
                pos += nl * nJ
            n = B * nl * nJ
            rt = rows_per_tile(n, rb)
            tiles += [(oh0, nl, r0, min(n, r0 + rt), first[nl]) for r0 in range(0, n, rt)]
        per_phase.append(tiles)
    T = max(1, max(len(t) for t in per_phase))
    table = np.zeros((P, T, TILE_FIELDS), dtype=np.int64)
    for phase, tiles in enumerate(per_phase):
        if tiles:
            table[phase, :len(tiles)] = tiles
            table[phase, :len(tiles), 4] += start + table.size
    return np.concatenate([table.reshape(-1)] + [np.array(o, dtype=np.int64) for o in orders]), T


def n_tiles(geo):
    (B, D, H, W, Cg, OD, OH, OW, Fg, KD, KH, KW, sd, sh, sw, dd, dh, dw, pd, ph, pw,
     G, trans, T, NFB, fuse, fb_order, gs, ops) = geo
    P = sw if trans else 1
    return OD * P * T * G * (1 if fb_order == FB_INNERMOST else NFB)


_POOL = None
PACK_PARALLEL = 1 << 20  # filters with more elements are packed by several threads


def _pool():
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=max(1, numba.config.NUMBA_NUM_THREADS - 1))
    return _POOL


# Multiply-adds per chunk of tiles, at least: ~0.1-0.2 ms of one core. A
# chunk costs ~10 us of dispatch and GIL hand-over between the threads, and
# waking the pool's thread ~50 us, so smaller calls are faster on one thread
# (a 0.3 ms transpose took 0.48 ms split into 16 chunks over 2 threads).
CHUNK_WORK = 8_000_000
CHUNKS_PER_THREAD = 8  # at most


def parallel_tiles(kernel, args, ntiles, work, group=1, per_thread=None, site=None):
    """kernel(*args, t0, t1) on [0, ntiles) split into contiguous ranges run
    by numba.get_num_threads() threads, claimed dynamically (at most
    `per_thread` (default CHUNKS_PER_THREAD) per thread, each of about
    CHUNK_WORK of the call's `work` multiply-adds or more; `chunk_bounds`); each a whole number of
    `group`s of tiles (a divisor of ntiles: tiles that share a packed band,
    which each chunk packs again) when that takes no longer.
    Each tile owns its outputs, so the split (and the thread count) never
    changes a result. Calls too small for two chunks stay on the calling
    thread. site: None, or the call site's dict (a remembered route's
    launch) where `compiled_at` finds kernel's compiled function for these
    arguments."""
    entry = compiled_at(site, kernel, args) if site is not None else None
    nt = min(numba.get_num_threads(), ntiles)
    most = min(ntiles, nt * (per_thread or CHUNKS_PER_THREAD), work // CHUNK_WORK)
    if nt <= 1 or most <= 1:
        (entry or kernel)(*args, 0, ntiles)
        return
    bounds = _grouped_bounds(ntiles, nt, most, group)
    nchunk = len(bounds) - 1
    counter = itertools.count()  # next() is atomic under the GIL: dynamic chunk claiming
    kernel = entry or compiled(kernel, args)

    def worker():
        while True:
            i = next(counter)
            if i >= nchunk:
                return
            kernel(*args, bounds[i], bounds[i + 1])

    futures = [_pool().submit(worker) for _ in range(nt - 1)]
    worker()
    for f in futures:
        f.result()


@functools.lru_cache(maxsize=1024)
def chunk_bounds(ntiles, nt, most):
    """The bounds of parallel_tiles' chunks: at most `most` contiguous
    ranges of [0, ntiles), sizes differing by one at most, as many as give
    the least time for nt threads claiming them in order, each the next
    free (equal tiles), or within 2 % of it: a multiple of the threads (3
    chunks on 2 threads leave one idle for the last third, the 1-channel
    chain transpose), or a tile each. 16 tiles in 14 chunks, two of 2
    tiles, cost 9 tiles' time on 2 threads, in 8 chunks of 2 or 16 of one
    8 (NCHW 7^2 x 512 -> 512, 16 channel blocks: benchmarks/NOTES.md
    section 84)."""
    spans = {}
    # (more threads than `most`: one chunk each, as far as the tiles go)
    for n in set(range(nt, most + 1, nt)) | {ntiles if ntiles <= most else nt}:
        bounds = tuple(ntiles * i // n for i in range(n + 1))
        spans[bounds] = _span(bounds, nt)
    least = min(spans.values())
    # within 2 % of the least: the most chunks, for threads slowed by others
    return max((b for b, span in spans.items() if span * 50 <= least * 51), key=len)


@functools.lru_cache(maxsize=1024)
def _grouped_bounds(ntiles, nt, most, group):
    """chunk_bounds, on bounds that are multiples of `group` where group
    divides ntiles and the busiest thread's share is no larger that way."""
    bounds = chunk_bounds(ntiles, nt, most)
    ngroups = ntiles // group
    if group > 1 and ngroups > 1 and ntiles % group == 0:
        grouped = chunk_bounds(ngroups, min(nt, ngroups), min(ngroups, most))
        if _span(grouped, nt) * group <= _span(bounds, nt):
            bounds = tuple(b * group for b in grouped)
    return bounds


def _span(bounds, nt):
    """The tiles the busiest of nt threads runs, each claiming the next of
    these chunks when free (equal tiles)."""
    free = [0] * nt
    for i in range(len(bounds) - 1):
        free[free.index(min(free))] += bounds[i + 1] - bounds[i]
    return max(free)


# Compiled entry points of tile kernels, by argument fingerprint (`compiled`).
_ENTRY = {}
_BOUND_TYPES = (numba.types.int64, numba.types.int64)


_NUMBERS = frozenset((int, float))
# the array flags Numba's type of an array depends on (layout, alignment,
# writability): C and F contiguous, ALIGNED, WRITEABLE
_TYPED_FLAGS = 0x1 | 0x2 | 0x100 | 0x400


def _fingerprint(v):
    """What Numba's type of an argument depends on, read cheaply (a tiny
    call's ~12 arguments, every call): an array's dtype, dimensions and
    flags (layout, alignment, writability: one integer, `flags.num`, not
    the flags object); a tuple's items; a number's Python type; any other
    object (a Tile) by its type and repr (which shows every field its
    Numba type is made of)."""
    t = type(v)
    if t is np.ndarray:
        return v.dtype, v.ndim, v.flags.num & _TYPED_FLAGS
    if t is tuple:
        kinds = tuple(map(type, v))
        if _NUMBERS.issuperset(kinds):  # (a set test in C: geo has ~40 items)
            return kinds
        return tuple(map(_fingerprint, v))
    if t is int or t is float or t is bool or v is None:
        return t
    if isinstance(v, np.ndarray):  # (a subclass)
        return t, v.dtype, v.ndim, v.flags.num & _TYPED_FLAGS
    return t, repr(v)


def compiled(kernel, args):
    """The machine-code function a call kernel(*args, t_begin, t_end) runs,
    once kernel (a Numba dispatcher) has been compiled for these argument
    types: calling it skips the dispatcher's typing of the arguments, ~6 us
    per call with the GIL held (a Tile is typed in Python), paid by every
    chunk of a parallel call (dispatch alone was 3 % of the dilated
    transpose's 4.9 ms). kernel itself before that (its first call
    compiles it) and for plain Python functions."""
    if not isinstance(kernel, numba.core.registry.CPUDispatcher):
        return kernel
    key = (kernel, _fingerprint(args))
    entry = _ENTRY.get(key)
    if entry is None:
        sig = tuple(kernel.typeof_pyval(v) for v in args) + _BOUND_TYPES
        done = kernel.overloads.get(sig)
        if done is None:
            return kernel
        entry = _ENTRY[key] = done.entry_point
    return entry


def compiled_at(site, kernel, args):
    """compiled(kernel, args) for a call site (a remembered route's launch)
    whose arguments other than its arrays are the same objects, or of the
    same types, on every call: remembered in the site's dict by the arrays'
    flags and the other arguments' types (~1 us, where compiled's
    fingerprint of every argument costs ~9 us for wv_kernel's 12); None
    before the kernel is compiled for them (its dispatcher compiles it)."""
    key = tuple([a.flags.num if type(a) is np.ndarray else type(a) for a in args])
    entry = site.get(key)
    if entry is None:
        entry = compiled(kernel, args)
        if entry is kernel:
            return None
        site[key] = entry
    return entry


# ------------------------------------------------- channels-last kernel
# A register tile is RB output positions x NW vectors of output channels
# (AVX-512: 8 x 2 = 32 float32 / 16 float64 channels, 16 accumulators; per
# reduction step 2 weight loads and 8 broadcasts for 16 FMAs; AVX2: 6 x 2,
# 12 of its 16 registers. NW = 1 for at most one vector of output channels
# per group, where a 2-vector tile would leave half of its lanes empty).
# At most 8 rows (12 measured ~10% slower on an early tile: their row
# pointers spill from the general registers; 8 also divides W = 64),
# except the wide tiles below. The accumulators are a
# tuple of vectors and the reduction loop is one intrinsic (cpu_simd.vrun),
# so one source serves every tile shape and each compiles quickly.

RB_MAX = 8  # tile_rows' cap: cl_kernel's tiles (its row pointers)
# ... except the 1-vector tile of stride-1 calls where the CPU has 32
# vector registers (AVX-512): 16 rows. Its 8 accumulators were just the FMA
# latency times the two FMA pipes; with 16, though their row pointers
# spill, one thread on Zen 5 ran 64^3 x 16 -> 16 k3 0.92x as long, 4 x
# 56^2 x 64 -> 12 0.92x, a dilated 32^3 x 16 -> 16 0.91x, float64 32^3 x 16
# -> 8 0.91x, stride-1 transposes 0.90-0.97x; strided forward convolutions
# and transposes 1.04x (benchmarks/NOTES.md section 77). On an Intel Xeon
# (Emerald Rapids) the same 16 rows ran channels-last calls 1.12-1.25x as
# long as 8 (section 118): LLVM folds each row's broadcast into its FMA as
# an indexed memory operand and reloads 5 of the 16 row pointers from the
# stack at every step. The channels-first band kernel's 16-row tile, whose
# rows are one packed panel, was no slower there. So cl_kernel's rows
# (pointers) take 16 only on the CPUs measured faster with them, AMD Zen.
CL_ONE_VECTOR_ROWS = 16
CL_ONE_VECTOR_POINTER_ROWS = cpu_simd.HOST_CPU.startswith("znver")
# ... and the 2-vector tile of stride-1 calls with 12 rows (24
# accumulators, 32 vector registers): 12 rows load each weight vector for
# 12 FMAs instead of 8, and with cl_kernel's block rule (a tile's last 5-8
# rows as two 4-row blocks) they never compute more rows than 8-row blocks
# (test_wide_tile_rule checks it; before that rule 8^3 x 128 and 16^3 x 64 ran 1.06-1.15x
# as long). Intel Xeon (Emerald Rapids), both tiles in one process, two
# threads: VGG's 14^2 x 512 transpose, the dilated transpose, the U-Net's
# 64^3 x 32 conv3d, 4 x 28^2 x 256, 32^3 x 32 and 56^2 x 256 0.85-1.02x
# the time of 8 rows over three runs (one thread 0.94-1.03;
# benchmarks/NOTES.md section 121). On AMD Zen 5, 10 or 12 rows were
# within +-4 % of 8: not taken there. 0: off.
CL_WIDE_ROWS = 0 if cpu_simd.HOST_CPU.startswith("znver") else 12

# cl_kernel's tile order (geo's fb_order): output-channel blocks outermost
# with every block's panel in wp, innermost (inside each tile: every block
# on the tile's rows), or outermost with wp holding only the panel of the
# tiles' block (`by_panels`)
FB_OUTER, FB_INNERMOST, FB_PANEL = 0, 1, 2
ROW_SCRATCH_BYTES = 6 * max(RB_MAX, CL_ONE_VECTOR_ROWS) * 8
# gathered taps (cl_kernel's `gat` variant): a block's rows of at most
# SUM_GROUP_TERMS elements each and room for one vector past them (each
# tap's inputs are stored as a whole vector, the next tap's overwrite the
# rest: masked stores cost several times more), float64 at most
GATHER_ROW = SUM_GROUP_TERMS + 16
GATHER_BYTES = RB_MAX * GATHER_ROW * 8  # (transposes: never the 16-row tile)


def cl_tile(nvec, stride1=False, pointers=False, wide=False):
    """cl_kernel's register tile for nvec weight vectors per row, sized to
    the CPU's vector registers (cpu_simd.tile_rows); CL_ONE_VECTOR_ROWS
    rows for a stride-1 call's 1-vector tile where 32 vector registers
    hold them and, for a kernel that reads its rows through `pointers`
    (cl_kernel), where CL_ONE_VECTOR_POINTER_ROWS; with `wide` (cl_kernel
    itself: its block rule and scratch), CL_WIDE_ROWS rows for a stride-1
    call's 2-vector tile where they fit in the registers."""
    if (nvec == 1 and stride1 and cpu_simd.VREGS >= CL_ONE_VECTOR_ROWS + 2
            and (CL_ONE_VECTOR_POINTER_ROWS or not pointers)):
        return Tile(CL_ONE_VECTOR_ROWS, 1)
    if nvec == 2 and stride1 and wide and CL_WIDE_ROWS and cpu_simd.VREGS >= 2 * CL_WIDE_ROWS + 3:
        return Tile(CL_WIDE_ROWS, 2)  # (24 accumulators, 2 weight vectors, a broadcast)
    return Tile(tile_rows(nvec), nvec)


@serial_kernel
def cl_kernel(x, wp, out, zrow, taptab, geo, tile, epi, ep_code, gat, stream, t_begin, t_end):
    """Tiles [t_begin, t_end). x: (B, D, H, W, G*Cg) flat; wp: (G, NFB, taps,
    Cg, NW*V) flat (output channels padded with zeros to NFB blocks of
    NW*V), or with fb_order FB_PANEL only the panel (taps, Cg, NW*V) of the
    block of every tile in [t_begin, t_end) (see `by_panels`); out: flat,
    output pixel (b, od, oh, ow) at element pixel * ops (ops >= G*Fg: the
    channels may be a slice of a wider array, e.g. one input of a
    concatenation); zrow: >= Cg*KW zeros; taptab: tap_tables(...);
    tile: a cpu_simd.Tile, RB rows x NW vectors (a compile-time shape).
    Epilogue (ep_code 1: affine, 2: affine + ReLU, 0: none): epi holds three
    rows of per-output-channel parameters (bias, scale, shift), each
    G*Fg + NW*V long, and every stored value is ((v + bias) * scale + shift).
    gat (gathered taps, a variant of its own; None: off): an int64 array,
    gat[q] the first tap of phase class q in wp's tap order (`gather_taps`,
    whose order wp then has) and gat[-1] the number of taps. Each block's
    rows then copy the inputs of their class's taps (zeros where a tap
    falls outside the input) into one run per row, and each channel block
    runs one vrun over it: the same terms in the same order, one run
    instead of one per tap (few input channels: runs of 1-8 steps). The
    zeros of taps outside the input leave a sum as it is (only a -0 sum,
    which needs a product that underflows to -0, would become +0). Only
    for one group of (kd, kh) per sum (KD*KH*KW*Cg <= SUM_GROUP_TERMS) and
    channel blocks innermost or one channel block; transposes only
    (cpu.GATHER's rule: strided ones with few input channels)."""
    (B, D, H, W, Cg, OD, OH, OW, Fg, KD, KH, KW, sd, sh, sw, dd, dh, dw, pd, ph, pw,
     G, trans, T, NFB, fuse, fb_order, gs, ops) = geo
    isz = itemsize(out)  # a constant: LLVM folds the steps into displacements
    RB, NW, V = tile_dims(tile, out)
    PART = tile_part_rows(tile)
    NV = NW * V
    Cx = G * Cg
    P = sw if trans else 1
    mw = 1 if trans else sw
    hs = 1 if trans else sh  # input lines per output line (row spaces of several lines: sh == 1 for transposes)
    taps = KD * KH * KW
    xa = addr(x)
    za = addr(zrow)
    rows = scratch(0, ROW_SCRATCH_BYTES)  # per-row int64 work space, five views
    rowj = rows[0:RB]
    rbase = rows[RB:2 * RB]
    rfix = rows[2 * RB:3 * RB]
    pp = rows[3 * RB:4 * RB]
    o = rows[4 * RB:5 * RB]
    gr = rows[5 * RB:6 * RB]  # gat: each row's gathered run
    if gat is not None:
        gb = scratch(out, GATHER_BYTES)
        for i in range(RB):
            gr[i] = addr(gb) + i * GATHER_ROW * isz
    gq = 0  # gat: the block's phase class
    th = OD * KD  # taptab: along D, then H from th, W offsets from tw, tiles from tt
    tw = th + OH * KH
    tt = tw + P * KW
    inner = OD * P * T * G
    for ti in range(t_begin, t_end):
        # output-channel block outermost (FB_OUTER, FB_PANEL): consecutive
        # tiles (one thread's range) share one weight panel; or innermost
        # (FB_INNERMOST, small panels): a tile runs every block on each block
        # of its rows (set up once for all of them), so the output is written
        # densely, once
        if fb_order == FB_INNERMOST:
            fb = 0
            r = ti
            nfb = NFB
        else:
            fb = ti // inner
            r = ti % inner
            nfb = 1
        g = r % G
        r = r // G
        k = r % T
        r = r // T
        phase = r % P
        od = r // P
        # the tile: rows [r0, r1) of the row space of NL lines from oh0,
        # whose order (row_order) is at taptab[order:]
        te = tt + (phase * T + k) * TILE_FIELDS
        oh0 = taptab[te]
        NL = taptab[te + 1]
        r0 = taptab[te + 2]
        r1 = taptab[te + 3]
        order = taptab[te + 4]
        nJ = (OW - phase + P - 1) // P
        L = NL * nJ  # rows per image
        wfb0 = addr(wp)
        if fb_order != FB_PANEL:
            wfb0 += (g * NFB + fb) * taps * Cg * NV * isz
        ob = g * Fg + fb * NV
        rb = r0
        fbi = 0  # FB_INNERMOST: the channel block (after fb) of this pass over the rows
        jmin = 0
        jmax = 0
        oh = 0
        fz = False
        while rb < r1:
            nr = RB if RB < r1 - rb else r1 - rb
            if PART < r1 - rb <= 2 * PART and (RB < r1 - rb or 2 * PART < RB):
                # two blocks of PART rows (vrun's part-tile loop) cost less
                # than a whole block and a short one: 32 rows on the 6-row
                # tile run 6, 6, 6, 6, 4, 4, not 6, 6, 6, 6, 6, 2; 8 rows
                # on the 12-row tile 4, 4
                nr = PART
            if fbi == 0:
                jmin = nJ
                jmax = 0
                # per row: its address at W offset 0 (of its image; of its line
                # relative to row 0's: rows inside along W read from there plus
                # one offset per tap) and its output offset. Rows past nr
                # repeat row nr - 1 (computed, not stored: every index into
                # the row arrays is a constant once the loop is unrolled).
                b = rb // L  # one division per block: later rows step (b, pos)
                pos = rb - b * L
                oh = oh0 + (taptab[order + pos] >> 32)  # row 0's line
                for i in range(RB):
                    if 0 < i < nr:
                        pos += 1
                        if pos == L:
                            pos = 0
                            b += 1
                    v = taptab[order + pos]
                    j = v & 0xFFFFFFFF
                    ohi = oh0 + (v >> 32)
                    jmin = j if j < jmin else jmin
                    jmax = j if j > jmax else jmax
                    rowj[i] = j
                    rbase[i] = xa + (b * D * H * W * Cx + g * Cg + (ohi - oh) * hs * W * Cx) * isz
                    rfix[i] = rbase[i] + j * mw * Cx * isz
                    o[i] = (((b * OD + od) * OH + ohi) * OW + phase + j * P) * ops
                # fused (kw, c) runs (forward, dw == 1, G == 1) when every row of
                # the block is inside along W for every tap: one run of KW*Cg
                # steps per (kd, kh), the same terms in the same order
                fz = fuse != 0 and jmin * sw - pw >= 0 and jmax * sw - pw + KW - 1 < W
                if gat is not None:
                    # the block's class: its outputs' (od + pd, oh + ph, ow + pw)
                    # modulo the strides (a taptab entry of -1 is a tap of
                    # another class or one outside the input: zeros)
                    cd = (od + pd) % sd
                    ch = (oh + ph) % sh
                    gq = (cd * sh + ch) * sw + (phase + pw) % sw
                    t = 0
                    for kd in range(KD):
                        if kd * dd % sd != cd:
                            continue
                        i_d = taptab[od * KD + kd]
                        for kh in range(KH):
                            if kh * dh % sh != ch:
                                continue
                            i_h = taptab[th + oh * KH + kh]
                            off = (i_d * H + i_h) * W * Cx * isz
                            for kw in range(KW):
                                e = taptab[tw + phase * KW + kw]
                                if e == NO_TAP:
                                    continue
                                for i in range(nr):
                                    iw = rowj[i] * mw + e
                                    sa = za
                                    if i_d >= 0 and i_h >= 0 and 0 <= iw < W:
                                        sa = rbase[i] + off + iw * Cx * isz
                                    da = gr[i] + t * Cg * isz
                                    for c0 in range(0, Cg, V):
                                        vcopy_over(out, tile, da + c0 * isz, sa + c0 * isz, Cg - c0)
                                t += 1
            f0 = (fb + fbi) * NV
            nf = NV if NV < Fg - f0 else Fg - f0
            wfb = wfb0 + fbi * taps * Cg * NV * isz
            acc = vtzero(out, tile)
            total = acc
            grp = -1
            ngrp = 0
            if gat is not None:
                glen = (gat[gq + 1] - gat[gq]) * Cg
                if glen > 0:
                    acc = vrun(out, acc, tile, gr, 0, wfb + gat[gq] * Cg * NV * isz, glen, nr)
            else:
                for kd in range(KD):
                    i_d = taptab[od * KD + kd]
                    if i_d < 0:
                        continue
                    for kh in range(KH):
                        i_h = taptab[th + oh * KH + kh]
                        if i_h < 0:
                            continue
                        qt = wfb + (kd * KH + kh) * KW * Cg * NV * isz
                        # two-level sum: a partial sum per group of gs (kd, kh)
                        # from zero, then added to the running total
                        if (kd * KH + kh) // gs != grp:
                            grp = (kd * KH + kh) // gs
                            if ngrp > 0:
                                total = vtadd(total, acc)
                                acc = vtzero(out, tile)
                            ngrp += 1
                        off = (i_d * H + i_h) * W * Cx * isz
                        for kw in range(1 if fz else KW):
                            e = taptab[tw + phase * KW + kw]
                            if e == NO_TAP:
                                continue
                            if jmin * mw + e >= 0 and jmax * mw + e < W:
                                # every row inside along W: fixed pointers plus one offset
                                src = rfix
                                so = off + e * Cx * isz
                            else:
                                any_ = False
                                for i in range(RB):
                                    iw = rowj[i] * mw + e
                                    if i < nr and 0 <= iw < W:
                                        pp[i] = rbase[i] + off + iw * Cx * isz
                                        any_ = True
                                    else:
                                        pp[i] = za
                                if not any_:
                                    continue
                                src = pp
                                so = 0
                            acc = vrun(out, acc, tile, src, so, qt + kw * Cg * NV * isz, KW * Cg if fz else Cg, nr)
            # total is still zero with one group: no loads of its spill
            # slots (a 1x1 conv or a stride == kernel transpose: every block)
            acc = vtadd(total, acc)
            if ep_code > 0:
                ne = len(epi) // 3
                pe = addr(epi) + (ob + fbi * NV) * isz
                acc = vtaffine(out, acc, tile, pe, pe + ne * isz, pe + 2 * ne * isz, ep_code == 2)
            for i in range(RB):  # pp: the store offsets now
                pp[i] = o[i] + ob + fbi * NV if i < nr else -1
            vtstore_stream(out, tile, pp, acc, nf, stream)
            fbi += 1
            if fbi == nfb:
                fbi = 0
                rb += nr
    sfence(stream)


@functools.lru_cache(maxsize=256)
def gather_taps(KD, KH, KW, sd, sh, sw, dd, dh, dw):
    """(order, gat) for cl_kernel's gathered taps of a transpose: the taps
    (kd, kh, kw) as flat indices, sorted by phase class and then in (kd,
    kh, kw) order, and the int64 array of each class's first position in
    that order, then the number of taps (read-only). Tap k along an axis
    reaches the outputs o with (o + p) % s == k * d % s: class
    ((kd*dd % sd) * sh + kh*dh % sh) * sw + kw*dw % sw."""
    cls = [((kd * dd % sd) * sh + kh * dh % sh) * sw + kw * dw % sw
           for kd in range(KD) for kh in range(KH) for kw in range(KW)]
    n = sd * sh * sw
    order = np.array(sorted(range(len(cls)), key=lambda t: (cls[t], t)), dtype=np.int64)
    gat = np.concatenate([[0], np.cumsum(np.bincount(cls, minlength=n))]).astype(np.int64)
    order.flags.writeable = False
    gat.flags.writeable = False
    return order, gat


def epilogue_params(F, tile, dtype, bias, scale, shift):
    """cl_kernel's epi: rows bias, scale, shift (None: 0, 1, 0) padded to
    F + one tile of channels, so the last block's vector loads stay inside."""
    ne = F + tile.nvec * tile.lanes(np.dtype(dtype).itemsize)
    epi = np.zeros((3, ne), dtype=dtype)
    epi[1] = 1
    for row, v in enumerate((bias, scale, shift)):
        if v is not None:
            epi[row, :F] = v
    return epi.reshape(-1)


def rows_per_tile(nrows, rb):
    """Split nrows into equal chunks of at most ROWS, a multiple of rb."""
    n = max(1, -(-nrows // ROWS))
    per = -(-nrows // n)
    return max(rb, -(-per // rb) * rb)


def source_filters(wg):
    """(w3, trans) when wg (1, KD, KH, KW, Cg, Fg) is a view of contiguous
    filters as given: w3 (taps, Cg, F) for a convolution, (taps, F, Cg) for
    a transpose (trans); else None."""
    if wg.shape[0] != 1:
        return None
    _, KD, KH, KW, Cg, F = wg.shape
    if wg[0].flags.c_contiguous:
        return wg[0].reshape(KD * KH * KW, Cg, F), False
    w5 = wg[0].transpose(0, 1, 2, 4, 3)
    if w5.flags.c_contiguous:
        return w5.reshape(KD * KH * KW, F, Cg), True
    return None


def pack_panel(w3, trans, fb, panel):
    """Output channels [fb * NV, (fb + 1) * NV) of the filters (w3, trans:
    see source_filters) into panel (taps, Cg, NV), zeros past the last one.
    One NumPy copy, taps merged into one axis (as 5-D views: ~2x slower)."""
    NV = panel.shape[2]
    F = w3.shape[1] if trans else w3.shape[2]
    f0 = fb * NV
    nf = min(NV, F - f0)
    src = w3[:, f0:f0 + nf, :].transpose(0, 2, 1) if trans else w3[:, :, f0:f0 + nf]
    panel[..., :nf] = src
    if nf < NV:
        panel[..., nf:] = 0


def by_panels(kernel, args, w3, trans, NV, inner):
    """A tile-range function for parallel_tiles running kernel (cl_kernel,
    fb_order FB_PANEL) on args, with args[1] (the packed filters) replaced
    by one output-channel block's panel, packed (pack_panel) by the thread
    that runs the block's tiles just before it runs them (tiles [fb * inner,
    (fb + 1) * inner) are block fb; one group). For large writable
    transposed filters, packed on every call: packed whole up front they
    are written to memory and read back, a panel stays in the core's cache
    between its packing and its use. (Not for convolutions: a block's
    panel is a few bytes of every filter row there.)"""
    taps = w3.shape[0]
    Cg = w3.shape[2] if trans else w3.shape[1]
    x = args[0]
    kernel = compiled(kernel, args)  # args[1]: an empty 1-D array, typed as a panel is

    def run(t_begin, t_end):
        panel = np.empty((taps, Cg, NV), dtype=x.dtype)
        t = t_begin
        while t < t_end:
            fb = t // inner
            t_next = min(t_end, (fb + 1) * inner)
            pack_panel(w3, trans, fb, panel)
            kernel(x, panel.reshape(-1), *args[2:], t, t_next)
            t = t_next

    return run


@serial_kernel
def _pack_rows(w3, c0, c1, wp):
    """Convolution filters w3 (taps, Cg, F) as given, input channels [c0,
    c1), into wp (NFB, taps, Cg, NV), whole blocks only: along the source
    rows, each row's F channels to their NFB blocks. NumPy's copy runs
    along wp, reading 64 bytes of every 2 KB filter row per block (32 passes
    over 28 MB: 9 ms, this loop ~4 ms). Compiled on the first large
    writable convolution filter (~0.25 s)."""
    NFB, taps, _, NV = wp.shape
    for t in range(taps):
        for c in range(c0, c1):
            s = w3[t, c]
            for b in range(NFB):
                p = wp[b, t, c]
                for f in range(NV):
                    p[f] = s[b * NV + f]


def _pack_blocks(wg, dtype, NV, temporary=False, blocks=None):
    """wg: (G, KD, KH, KW, Cg, Fg) -> (G, NFB, taps, Cg, NV) flat: output
    channels in blocks of NV, zero-padded; and NFB. blocks: None, or
    (full, part): `full` blocks of NV, then `part` blocks of PART_ROWS
    channels each (zero-padded to NV; wv_blocks). One strided NumPy copy
    for the whole blocks, or for large convolution filters as given a Numba
    loop along their rows (_pack_rows), split over the threads by input
    channels for large filters (NumPy releases the GIL while copying).
    temporary: the packed array is dropped after the call (writable
    filters); it is taken from recycled memory (_alloc): fresh pages cost
    ~2 ms per 28 MB."""
    G, KD, KH, KW, Cg, Fg = wg.shape
    if blocks is None:
        full, NFB, step = Fg // NV, max(1, -(-Fg // NV)), NV
    else:
        full, NFB, step = blocks[0], blocks[0] + blocks[1], PART_ROWS
    shape = (G, NFB, KD, KH, KW, Cg, NV)
    wp = _alloc.recycled(shape, dtype) if temporary else np.empty(shape, dtype=dtype)
    src = wg[..., :full * NV].reshape(G, KD, KH, KW, Cg, full, NV).transpose(0, 5, 1, 2, 3, 4, 6)
    for b in range(full, NFB):  # the last blocks, of `step` channels or fewer
        f0 = full * NV + (b - full) * step
        wp[:, b] = 0
        wp[:, b, ..., :min(step, Fg - f0)] = wg[..., f0:f0 + step]

    given = source_filters(wg)
    if given is not None and not given[1] and wp.size >= PACK_PARALLEL and given[0].dtype == wp.dtype:
        w3 = _alloc.readonly(given[0])  # one compiled variant for read-only and writable filters
        wp4 = wp.reshape(NFB, -1, Cg, NV)[:full]

        def copy(c0, c1):
            _pack_rows(w3, c0, c1, wp4)
    else:
        def copy(c0, c1):
            wp[:, :full, ..., c0:c1, :] = src[..., c0:c1, :]

    nt = min(numba.get_num_threads(), Cg) if wp.size >= PACK_PARALLEL else 1
    if full and nt <= 1:
        copy(0, Cg)
    elif full:
        bounds = [Cg * i // nt for i in range(nt + 1)]
        futures = [_pool().submit(copy, bounds[i], bounds[i + 1]) for i in range(1, nt)]
        copy(bounds[0], bounds[1])
        for f in futures:
            f.result()
    return wp.reshape(-1), NFB


def pack_filters(wg, dtype, tile, temporary=False):
    """wg: (G, KD, KH, KW, Cg, Fg) filters (reduction channel first) ->
    (G, NFB, taps, Cg, nvec*V) flat for cl_kernel's tile, output channels
    zero-padded; and NFB. temporary: see _pack_blocks."""
    return _pack_blocks(wg, dtype, tile.nvec * tile.lanes(np.dtype(dtype).itemsize), temporary)


# ------------------------------------------------- vectors-along-W kernel
# Roles swapped: a register tile is FR = 8 (AVX2: 6) output channels x 2 vectors along
# W (32 float32 / 16 float64 output positions of one phase of one output
# row). Per reduction step it loads 2 input vectors along W (masked at the
# edges: masked lanes read nothing and give 0, like the zero row of the
# channels-last kernel) and broadcasts FR weights, for 16 FMAs. Used for
# channels-first data (contiguous vector loads) and for channels-last data
# with few output channels (gathered loads, stride = channels), where the
# channels-last kernel would leave most of its 32 lanes empty. The order of
# the terms of every output element is the channels-last kernel's: for each
# group of (kd, kh) a partial sum over (kh, kw, c) from zero, then added to
# the total.

WV_BUF_BYTES = RB_MAX * 2 * 64  # at most 8 rows x 2 vectors of 64 bytes, or 16 x 1
WV_OFFS_BYTES = Tile.MAX_ROWS * 8
# Packed input rows are kept for the next output row (wv_kernel's slots)
# when a filter has at most this many (kd, kh) taps; larger ones pack
# every output row's rows anew.
WV_SLOTS = 64
WV_SLOT_BYTES = WV_SLOTS * 8
WV_TAP_SLOT_BYTES = 2 * WV_SLOT_BYTES  # an output row's tap slots, then (tail pairs) the next row's


def wv_tile(channels=None, width=None, lanes=None, pairs=False):
    """wv_kernel's register tile: FR output channels x 2 vectors along W
    (FR = 8 with AVX-512, 6 with AVX2: cpu_simd.tile_rows, its last blocks
    on a 4-row loop (wv_blocks), or 4 where that pads `channels` less,
    WV_FOUR_ROWS_COST; with `pairs`, vectors on two
    output rows, WV_PAIR_FOUR_ROWS_COST), or 8 x 1 vector for output
    rows of `width` columns (per W phase) that 2 vectors of `lanes` would
    pad too much (WV_ONE_VECTOR_COST); for `channels`
    = 1 output channel per group, where the other rows would be zero
    padding, 1 x WV_ONE_NVEC vectors. The tile never changes an output's
    terms or their order."""
    if channels == 1:
        return Tile(1, WV_ONE_NVEC)
    if not pairs and width and lanes and channels >= tile_rows(1) and wv_row_pairs(width, lanes):
        # 16 rows where 32 registers hold them and they pad no more than 8
        # rows do: the weights are one panel (no row pointers), and 16
        # accumulators hide the FMA latency that 8 only just cover
        rows, wide = tile_rows(1), WV_ONE_VECTOR_ROWS
        if cpu_simd.VREGS >= wide + 2 and _ceil(channels, wide) * wide <= _ceil(channels, rows) * rows:
            rows = wide
        return Tile(rows, 1)
    rows = tile_rows(2)
    cost = WV_PAIR_FOUR_ROWS_COST if pairs else WV_FOUR_ROWS_COST
    if channels and rows > 4 and -(-channels // 4) * 4 * cost <= _blocks(channels, rows, cost)[0]:
        rows = 4  # fewer padding rows, for the 4 x 2 tile's lower FMA density
    return Tile(rows, 2)


def _blocks(channels, rows, cost):
    """(time, full, part): the cheapest cover of `channels` by `full`
    blocks of `rows` and then `part` blocks of up to PART_ROWS channels
    (each part row at `cost` times a full one's), every block non-empty."""
    best = (-(-channels // rows) * rows, -(-channels // rows), 0)
    if rows <= PART_ROWS:
        return best
    for part in (1, 2):
        full = -(-max(0, channels - part * PART_ROWS) // rows)
        if channels - full * rows <= (part - 1) * PART_ROWS:
            continue  # a part block would be empty
        t = full * rows + part * PART_ROWS * cost
        if t < best[0]:
            best = (t, full, part)
    return best


def wv_blocks(channels, tile, pairs=False):
    """(full, part): wv_kernel's output-channel blocks for `tile`: `full`
    blocks of tile.rows channels, then `part` blocks of up to PART_ROWS
    that run the 4-row loop (vrun_cols_part: 16 channels as 6 + 6 + 4, 32
    as 6 x 4 + 4 + 4 on the AVX2 tile)."""
    cost = WV_PAIR_FOUR_ROWS_COST if pairs else WV_FOUR_ROWS_COST
    return _blocks(channels, tile.rows, cost)[1:] if tile.nvec == 2 else (-(-channels // tile.rows), 0)


# The 4 x 2 tile's time per multiply-add relative to 6 x 2's (one thread,
# channels-first 48^3 x 16 -> 64 k3: 79.4-80.1 against 75.4-78.7 ms with 66
# channels computed): it is used when 6 x 2 computes more than this much
# more padding. 16 or 32 channels: 2-5 % faster than 6 x 2. Also the cost
# of the 4-row loop of the last blocks of at most PART_ROWS channels
# (wv_blocks; one thread, NCDHW 64^3 x 16 -> 16 k3 as 6 + 6 + 4: 5 %
# faster than 4 x 4; 32^3 x 32 -> 32 as 6 x 4 + 4 + 4: 3-4 % faster than
# 4 x 8, as fast as 6 x 5 + 4).
WV_FOUR_ROWS_COST = 1.07
# ... with the vectors on two output rows (wv_row_pairs): 6 x 2 was as fast
# as 4 x 2 or faster with 32 channels (36 computed; NCDHW 16^2 x 20 x 32 ->
# 32 k3, one thread: 7.46 against 8.24 ms, 5.67 against 6.27 in a second
# run) and with 16 (18; 16^2 x 7 x 16 -> 16: 1.15 against 1.26, 0.69
# against 0.73 ms).
WV_PAIR_FOUR_ROWS_COST = 1.25

# The 8 x 1 tile's time per output lane relative to 6 x 2's (AVX2, one
# thread, NCHW 56^2 x 256 -> 256 k3: 56.0-56.5 ms for 56 lanes per row
# against 49.3-51.1 for 64): used where 6 x 2 computes more than this
# many times 8 x 1's lanes (8 x 7^2 x 512 -> 512: 40.4-41.5 -> 25.0-25.4 ms).
WV_ONE_VECTOR_COST = 1.27
# ... and that tile's rows where the vector registers hold them (AVX-512's
# 32; 8, tile_rows(1), otherwise)
WV_ONE_VECTOR_ROWS = 16


# Vectors along W of the 1-channel tile: the chain's 1-channel stride-2
# transpose (56 columns per phase, one thread) ran 1.71 ms with 2, 1.57
# with 3, 1.33 with 4, 1.55 with 5, 1.70 with 6, 1.57 with 8 (8 masks for
# the edge chunks do not fit in the registers with the accumulators).
WV_ONE_NVEC = 4


@serial_kernel
def wv_kernel(x, wp, out, taps, geo, tile, pair, one_row, tail, in_place, xcl, xin, t_begin, t_end):
    """Tiles [t_begin, t_end). x: 5-D flat with element strides (xsb, xsc,
    xsd, xsh, xsw); wp: (G, NFB, taps, Cg, FR) flat (output channels
    zero-padded); out: 5-D flat with strides (osb, osf, osd, osh, osw);
    taps: `wv_taps` for this geometry; xin: None, or zeros for the packed
    input rows (see below; `with_rows`): KD * KH * Cg * mw * row_len per
    output row of a tile, then W zeros. A tile is (b, od, oh, g, channel
    block, W chunk) and covers every phase of its chunk (transposes).
    Forward convolutions with W stride sw read every sw-th input column
    (packed sub-rows, or gathered lanes).
    pair: None, or (packed rows, W phases P = 1, channels-first output)
    the axis along which a tile's NW = 2 vectors are two output rows, V
    lanes each, instead of 2 V lanes of one row (rows of up to V columns,
    or V to 2 V past a multiple of 2 V, then fill fewer lanes): rows (b,
    od, oh) and the next along that axis (1: b, 2: od, 3: oh; `pair_axis`).
    A tap that only one of the two rows has multiplies the other's packed
    zeros (the zero terms a padded input gives; the real terms keep their
    order).
    one_row: None with pair, else True; in_place: None with xin, else
    True. Each variant compiles only its own branches: Numba drops a branch
    on `v is None` or `v is not None` when it types a call, but only for an
    argument v that is None, so each variant's code is under a test of an
    argument that is None in the others (the pair variant: 1.9 -> 1.4 s
    of cold compile, benchmarks/NOTES.md section 56).
    geo's last four: (BD, ND) (`wv_band`): output rows in bands of BD
    planes along D, packed rows in slots by input plane modulo ND (ND = 0:
    by tap); NFULL: the output-channel blocks of FR before those of
    PART_ROWS (`wv_blocks`); TP: 1 for tail pairs (`wv_tail_pairs`): the
    last W chunk of an even output row oh, one vector wide, also computes
    that chunk of row oh + 1 (one vector each; row oh + 1 skips it).
    tail: None, or True where TP may be 1 (one_row, packed rows, 2 vectors
    per row): one variant for every such call, with TP 0 or 1 (56- and
    64-wide rows compile once), and none of its code in the others.
    xcl: None, or True for channels-last input rows packed (few output
    channels, long runs): each packed by V x V blocks transposed in
    registers, as the bands of cpu_cfband (one W phase of input columns,
    mw = 1; no row or tail pairs)."""
    (B, D, H, W, Cg, OD, OH, OW, Fg, KD, KH, KW, sd, sh, sw, dd, dh, dw, pd, ph, pw,
     G, trans, NFB, gs, xsb, xsc, xsd, xsh, xsw, osb, osf, osd, osh, osw, BD, ND, NFULL, TP) = geo
    isz = itemsize(out)
    FR, NW, V = tile_dims(tile, out)
    NJ = NW * V
    P = sw if trans else 1
    mw = 1 if trans else sw  # input columns per output column along a lane
    LJ = NJ if pair is None else V  # lanes per output row
    nwc = _cdiv(_cdiv(OW, P), LJ)
    cstep = xsc * isz
    xw = xsw * mw * isz  # bytes between lanes
    contiguous = xw == isz
    xa = addr(x)
    buf = scratch(out, WV_BUF_BYTES)  # one phase's tile when stores are strided
    so = scratch(0, WV_OFFS_BYTES)  # per-row store offsets
    direct = P == 1 and osw == 1
    # packed rows stay for the next output rows: with H dilation 1, an
    # output row's taps along H read up to KH consecutive input rows (a
    # forward convolution's oh * sh - ph + kh; a transpose's valid taps, one
    # W phase's rows), and the next output row some of the same, so input
    # row i_h of tap kd goes to slot kd * KH + i_h % KH (distinct for one
    # output row's taps; with bands along D, ND > 0, input plane i_d's
    # rows go to slots (i_d % ND) * KH + i_h % KH, distinct for a band's
    # planes, and the band's next output rows find the rows its other
    # planes packed) and is packed only if that slot holds another row
    # (slot_row: 1 + the row's (b, g, d, h) index, 0: none; tap_slot: the
    # slot of each (kd, kh) tap of the current output row, read by the runs
    # without an integer division per tap). Else (H dilation, row pairs,
    # filters with more than WV_SLOTS (kd, kh) taps) slot kd * KH + kh
    # holds tap (kd, kh)'s row, packed per output row.
    # tail pairs: rows oh + 1's rows are packed with oh's, KS slots per
    # plane for both
    KS = KH
    if tail is not None:
        KS += TP  # (H stride 1)
    reuse = one_row is not None and dh == 1 and _max(KD, ND) * KS <= WV_SLOTS
    pairs_on = False
    if tail is not None:
        pairs_on = (TP != 0) & reuse  # (&, not `and`: fewer blocks to type)
    slot_row = scratch(0, WV_SLOT_BYTES)
    tap_slot = scratch(0, WV_TAP_SLOT_BYTES)
    # xin given (channels-first): the input rows of each output row's taps
    # are copied, per (b, od, oh, g), into mw sub-rows of row_len columns
    # per channel with zeros around them (wv_taps); runs then read lines
    # one sub-row apart with plain loads, not lines a channel plane apart
    # (which share the cache sets: 1.2-1.6x slower) or gathered lanes (W
    # stride 2: 4x slower). Each of the two kernels (xin an array or None)
    # compiles only its own branches: `xin is None` is decided when Numba
    # types the call.
    tw = OD * KD + OH * KH + P * nwc * KW * 4
    pad_left = taps[len(taps) - 2]
    row_len = taps[len(taps) - 1]
    slot_bytes = Cg * mw * row_len * isz  # one input row's packed rows
    rows_bytes = KD * KH * slot_bytes  # one output row's
    packed = -1
    zslot = 0  # a slot of zeros after the others: a tail pair's tap that one of its rows lacks
    if tail is not None:
        zslot = addr(xin) + _max(KD, ND) * KS * slot_bytes
    # two output rows per tile (pair): the paired axis as 0/1 per digit;
    # the second row's output offset; bytes between a tile's vectors; the
    # taps a tile runs along D and H: its row's, or those either row of a
    # pair along D (H) has (wv_taps' union tables); whether a pair's
    # second row exists
    pb = 0
    pd_ = 0
    ph_ = 0
    ostep = 0
    vstep = V * isz
    dtab = 0
    htab = OD * KD
    has1 = 0
    if pair is not None:
        pb = (pair == 1) * 1
        pd_ = (pair == 2) * 1
        ph_ = (pair == 3) * 1
        ostep = pb * osb + pd_ * osd + ph_ * osh
        vstep = rows_bytes
        dtab = pd_ * tw
        htab += ph_ * tw
    # the tile index's digits (b, od, oh, g, fb, wc), counted up from
    # t_begin's: ten integer divisions per tile were 7 % of the 1-channel
    # chain transpose's kernel time
    wc = t_begin % nwc
    r = t_begin // nwc
    fb = r % NFB
    r = r // NFB
    g = r % G
    r = r // G
    # the first output row's digits; the paired axis's digit counts pairs
    # here, then rows (the first of each pair). Output rows go in bands of
    # BD planes along D (wv_band): (b, band, oh, od in the band); od0 is
    # the band's first plane, nb its planes.
    nh = (OH + ph_) // (1 + ph_)
    nd = (OD + pd_) // (1 + pd_)
    b = r // (nd * nh) * (1 + pb)
    r = r % (nd * nh)
    od0 = r // (BD * nh) * BD
    nb = _min(BD, nd - od0)
    r = r - od0 * nh
    oh = r // nb * (1 + ph_)
    od = (od0 + r % nb) * (1 + pd_)
    od0 = od0 * (1 + pd_)
    wc -= 1
    for _ in range(t_begin, t_end):
        wc += 1
        if wc == nwc:
            wc = 0
            fb += 1
            if fb == NFB:
                fb = 0
                g += 1
                if g == G:
                    g = 0
                    od += 1 + pd_
                    if od >= od0 + nb * (1 + pd_):
                        od = od0
                        oh += 1 + ph_
                        if oh >= OH:
                            oh = 0
                            od0 += BD * (1 + pd_)
                            if od0 >= OD:
                                od0 = 0
                                b += 1 + pb
                            nb = _min(BD, (OD - od0 + pd_) // (1 + pd_))
                            od = od0
        if xin is not None:
            if packed != ((b * OD + od) * OH + oh) * G + g:
                packed = ((b * OD + od) * OH + oh) * G + g
                if one_row is not None:
                    two = 1  # output rows whose rows are packed: oh (and oh + 1)
                    if tail is not None:
                        two += pairs_on & (oh % 2 == 0) & (oh + 1 < OH)
                    for kd in range(KD):
                        i_d = taps[od * KD + kd]
                        if i_d < 0:
                            continue
                        for j in range(two):  # (one pass, j = 0, in the other variants)
                            for kh in range(KH):
                                i_h = taps[OD * KD + (oh + j) * KH + kh]
                                if i_h < 0:
                                    continue
                                s = kd * KH + kh
                                if reuse:
                                    s = (kd if ND == 0 else i_d % ND) * KS + i_h % KS
                                    tap_slot[j * WV_SLOTS + kd * KH + kh] = s
                                    row = 1 + ((b * G + g) * D + i_d) * H + i_h
                                    if slot_row[s] == row:
                                        continue
                                    slot_row[s] = row
                                xe = b * xsb + g * Cg * xsc + i_d * xsd + i_h * xsh  # the row's first element
                                if xcl is None:
                                    vpack_rows(out, tile, addr(xin) + s * slot_bytes + pad_left * isz, xa + xe * isz,
                                               W, Cg, xsc * isz, row_len, mw)
                                if xcl is not None:
                                    # V positions' V channels at a time, transposed
                                    # in registers; the last positions and channels
                                    # one by one
                                    dst = s * slot_bytes // isz + pad_left
                                    cv = Cg - Cg % V
                                    wq = W - W % V
                                    for c0 in range(0, cv, V):
                                        for iw in range(0, wq, V):
                                            vtranspose_block(xin, tile, addr(xin) + (dst + c0 * row_len + iw) * isz,
                                                             xa + (xe + iw * xsw + c0) * isz, xsw * isz,
                                                             row_len * isz, V)
                                    for c in range(Cg):
                                        for iw in range(wq if c < cv else 0, W):
                                            xin[dst + c * row_len + iw] = x[xe + iw * xsw + c]
                if pair is not None:
                    # the second output row: one further along the paired axis
                    # (if it exists); zeros for a tap outside one row (the
                    # other may run it): the W zeros after a pair's rows
                    has1 = (b + pb < B) & (od + pd_ < OD) & (oh + ph_ < OH)
                    zeros = addr(xin) + 2 * rows_bytes
                    for t in range((1 + has1) * KD * KH):
                        j = t // (KD * KH)
                        kd = (t - j * KD * KH) // KH
                        i_d = taps[(od + j * pd_) * KD + kd]
                        i_h = taps[OD * KD + (oh + j * ph_) * KH + t - j * KD * KH - kd * KH]
                        inside = (i_d >= 0) & (i_h >= 0)
                        src = xa + ((b + j * pb) * xsb + g * Cg * xsc + i_d * xsd + i_h * xsh) * isz
                        vpack_rows(out, tile, addr(xin) + t * slot_bytes + pad_left * isz,
                                   zeros + inside * (src - zeros), W, Cg, inside * xsc * isz, row_len, mw)
        # NFULL blocks of FR channels, then blocks of PART_ROWS (wv_blocks)
        part = fb >= NFULL
        f0 = fb * FR if not part else NFULL * FR + (fb - NFULL) * PART_ROWS
        nf = _min(FR if not part else PART_ROWS, Fg - f0)
        j0 = wc * LJ
        wfb = addr(wp) + (g * NFB + fb) * KD * KH * KW * Cg * FR * isz
        # stride-2 transposes with W contiguous: phase 0 waits in buf and the
        # two are interleaved in registers and stored as vectors, when phase
        # 1 has lanes in this chunk (else a strided scalar copy per phase)
        zip2 = P == 2 and osw == 1 and j0 < OW // 2
        # tail pairs: the last chunk of rows oh and oh + 1, oh even
        tailp = 0
        if tail is not None:
            if pairs_on & (wc == nwc - 1) & (oh % 2 == 1):
                continue
            tailp = pairs_on & (wc == nwc - 1) & (oh + 1 < OH)
        for phase in range(P):
            nJ = _cdiv(OW - phase, P)
            if j0 >= nJ:
                continue
            nj = _min(LJ, nJ - j0)
            acc = vtzero(out, tile)
            total = acc
            grp = -1
            ngrp = 0
            kwt = OD * KD + OH * KH + (phase * nwc + wc) * KW * 4
            for kd in range(KD):
                i_d = taps[dtab + od * KD + kd]
                if i_d < 0:
                    continue
                for kh in range(KH):
                    i_h = taps[htab + oh * KH + kh]
                    i_h1 = -1
                    if tail is not None:
                        if tailp:
                            i_h1 = taps[htab + (oh + 1) * KH + kh]
                    if (i_h < 0) & (i_h1 < 0):
                        continue
                    # two-level sum, as in cl_kernel
                    if (kd * KH + kh) // gs != grp:
                        grp = (kd * KH + kh) // gs
                        if ngrp > 0:
                            total = vtadd(total, acc)
                            acc = vtzero(out, tile)
                        ngrp += 1
                    xrow = xa + (b * xsb + g * Cg * xsc + i_d * xsd + i_h * xsh) * isz
                    xstep = vstep
                    if xin is not None:
                        t = kd * KH + kh
                        if reuse:
                            t = tap_slot[t]
                        prow = addr(xin) + t * slot_bytes  # this tap's packed rows
                        if tail is not None:
                            if tailp:
                                # the second vector: row oh + 1's packed rows (or zeros)
                                if i_h < 0:
                                    prow = zslot
                                prow1 = zslot
                                if i_h1 >= 0:
                                    prow1 = addr(xin) + tap_slot[WV_SLOTS + kd * KH + kh] * slot_bytes
                                xstep = prow1 - prow
                    for kw in range(KW):
                        # lanes [lo, hi) read input columns iw0 + l*mw inside the row
                        lo = taps[kwt + kw * 4]
                        hi = taps[kwt + kw * 4 + 1]
                        if lo >= hi:
                            continue
                        q = wfb + ((kd * KH + kh) * KW + kw) * Cg * FR * isz
                        if xin is not None:
                            p = prow + taps[kwt + kw * 4 + 3] * isz
                            if part:
                                acc = vrun_cols_part(out, acc, tile, p, mw * row_len * isz,
                                                     xstep, lo, hi, q, Cg)
                            else:
                                acc = vrun_cols_whole(out, acc, tile, p, mw * row_len * isz,
                                                      xstep, lo, hi, q, Cg)
                        if in_place is not None:
                            p = xrow + taps[kwt + kw * 4 + 2] * xsw * isz
                            if contiguous:
                                acc = vrun_cols(out, acc, tile, p, cstep, xw, lo, hi, q, Cg)
                            else:
                                acc = vrun_cols_gather(out, acc, tile, p, cstep, xw, lo, hi, q, Cg)
            # total is still zero with one group: no loads of its spill
            # slots (a 1x1 conv or a stride == kernel transpose: every block)
            acc = vtadd(total, acc)
            ob = b * osb + (g * Fg + f0) * osf + od * osd + oh * osh
            if pair is not None:
                # (one W phase, W contiguous)
                for i in range(FR):
                    so[i] = ob + j0 + i * osf if i < nf else -1
                vtstore_rows(out, tile, so, acc, nj, ostep, 1 + has1)
            if one_row is None:
                continue
            if tail is not None:
                if tailp:  # rows oh, oh + 1 (one W phase, W contiguous)
                    for i in range(FR):
                        so[i] = ob + j0 + i * osf if i < nf else -1
                    vtstore_rows(out, tile, so, acc, nj, osh, 2)
                    continue
            if direct:
                for i in range(FR):
                    so[i] = ob + j0 + i * osf if i < nf else -1
                vtstore(out, tile, so, acc, nj)
            elif zip2 and phase != 0:
                for i in range(FR):
                    so[i] = ob + i * osf + 2 * j0 if i < nf else -1
                vtstore_zip2(out, tile, so, buf, acc, OW - 2 * j0, None, None)
            else:
                # into buf: zip2's phase 0, or each phase copied out
                # (one call site for both: the store's code compiled once)
                for i in range(FR):
                    so[i] = i * NJ
                vtstore(buf, tile, so, acc, NJ)
                if zip2:
                    continue
                for i in range(nf):
                    o = ob + i * osf + (phase + j0 * P) * osw
                    for l in range(nj):
                        out[o + l * P * osw] = buf[i * NJ + l]


def with_rows(kernel, args, n, zeroed=True, site=None):
    """A tile-range function for parallel_tiles running wv_kernel (or
    cpu_cfband's kernel) on args with its own array of n elements for the
    packed input rows (`pack`), allocated per chunk of tiles: zeroed, or
    (zeroed False) left for the kernel to zero what it reads. site: None,
    or the call site's dict for `compiled_at`."""
    x = args[0]
    # (typed as the array run passes: writable, unlike a read-only x's view)
    typed = args + (np.empty(1, dtype=x.dtype),)
    kernel = (site is not None and compiled_at(site, kernel, typed)) or compiled(kernel, typed)
    alloc = np.zeros if zeroed else np.empty

    def run(t_begin, t_end):
        kernel(*args, alloc(n, dtype=x.dtype), t_begin, t_end)

    return run


def pack_filters_wv(wg, dtype, tile, temporary=False, blocks=None):
    """wg: (G, KD, KH, KW, Cg, Fg) -> (G, NFB, taps, Cg, FR) flat, output
    channels zero-padded to NFB blocks of FR = tile.rows; and NFB.
    blocks: None, or (full, part) (`wv_blocks`): `full` blocks of FR
    channels, then `part` blocks of up to PART_ROWS (zero-padded to FR).
    temporary: see _pack_blocks."""
    return _pack_blocks(wg, dtype, tile.rows, temporary, blocks if blocks and blocks[1] else None)


@functools.lru_cache(maxsize=256)
def wv_taps(OD, OH, OW, P, NJ, V, KD, KH, KW, D, H, W, sd, sh, sw, dd, dh, dw, pd, ph, pw, trans, pairs=False):
    """wv_kernel's taps, computed once per call geometry (no integer
    division in the kernel; NJ lanes per tile, V per vector): one
    read-only int64 array of
    - [od * KD + kd] and then [OD*KD + oh * KH + kh]: the input index along
      D (H) that the tap reads, or -1;
    - from OD*KD + OH*KH, for W phase `phase`, chunk wc (lanes j0 = wc*NJ on)
      and tap kw, at ((phase * nwc + wc) * KW + kw) * 4: (lo, hi, iw0, at),
      the chunk's lanes [lo, hi) that read input columns iw0 + lane*mw
      inside the row (lo >= hi: none, or a strided transpose's skipped tap),
      and where lane 0 reads in a packed row;
    - with `pairs`, then the D and H tables for pairs of rows (od, od + 1)
      and (oh, oh + 1): an index >= 0 where either row has the tap (the
      second only if it exists), else -1;
    - last, (pad_left, row_len): the layout of a packed row (wv_kernel's
      xin): per input channel, mw sub-rows of row_len columns, sub-row r
      holding input columns r, r + mw, ... from column pad_left on, zeros
      around them; lane l of a run then reads column at + l."""
    mw = 1 if trans else sw
    nwc = -(-(-(-OW // P)) // NJ)
    phase = np.arange(P)[:, None, None]
    j0 = (np.arange(nwc) * NJ)[None, :, None]
    kw = np.arange(KW)[None, None, :]
    if trans:
        t = phase + pw - kw * dw
        valid = t % sw == 0
        iw0 = j0 + t // sw
    else:
        valid = np.ones((1, 1, KW), dtype=bool)
        iw0 = j0 * sw + kw * dw - pw
    nj = np.minimum(NJ, -(-(OW - phase) // P) - j0)
    lo = np.maximum(0, -(iw0 // mw))  # ceil(-iw0 / mw)
    hi = np.minimum(-((iw0 - W) // mw), nj)  # ceil((W - iw0) / mw)
    hi = np.where(valid & (nj > 0), hi, lo)
    lo, hi, iw0 = np.broadcast_arrays(lo, hi, iw0)
    # packed sub-rows: column iw0 + l*mw is column q + l of sub-row r;
    # row_len covers every run's lanes and W rounded up to whole tiles (the
    # row copy's last vectors)
    r, q = iw0 % mw, iw0 // mw
    used = q[lo < hi]
    pad_left = max(0, -int(used.min())) if used.size else 0
    block = max(NJ, 2 * V)  # whole tiles, and whole copies of 2 vectors (vcopy2)
    row_len = pad_left + max(-(-(-(-W // mw)) // block) * block, int(used.max()) + NJ if used.size else 0)
    w_part = np.stack([lo, hi, iw0, r * row_len + pad_left + q], axis=-1).reshape(-1)
    along_d = _taps_along(OD, KD, sd, dd, pd, D, trans)
    along_h = _taps_along(OH, KH, sh, dh, ph, H, trans)
    parts = [along_d, along_h, w_part]
    if pairs:
        for t, n, k in ((along_d, OD, KD), (along_h, OH, KH)):
            t = np.asarray(t, dtype=np.int64).reshape(n, k)
            nxt = np.concatenate([t[1:], np.full((1, k), -1, dtype=np.int64)])
            parts.append(np.maximum(t, nxt).reshape(-1))
    table = np.concatenate(parts + [[pad_left, row_len]]).astype(np.int64)
    table.flags.writeable = False
    return table


# Channels-first output rows in bands of planes along D (wv_band): at
# most this many planes per band, and the band's packed rows (its input
# planes x KH rows) within this many bytes, to stay in L2 with the filters.
WV_BAND_MAX = 8
WV_BAND_BYTES = 192 * 1024


@functools.lru_cache(maxsize=256)
def wv_band(OD, KD, KH, D, sd, dd, pd, dh, trans, row_bytes):
    """(BD, ND) for wv_kernel's packed rows kept between output rows: its
    output rows go in bands of BD planes along D, (band, oh, od in the
    band), and input row (d, h) lives in slot (d % ND) * KH + h % KH, ND
    covering the input planes that one band reads (so a band's next
    output row packs each of those planes' one new row once, not once per
    output plane that reads it: KD times for a stride-1 convolution).
    (1, 0): one plane per band, slot kd * KH + h % KH (H dilations, one
    plane along D, or a band that would leave WV_BAND_BYTES); row_bytes:
    one input row's packed channels; the rest: the call's geometry along
    D (wv_taps)."""
    if dh != 1 or KD == 1 or OD == 1:
        return 1, 0
    along_d = np.asarray(_taps_along(OD, KD, sd, dd, pd, D, trans)).reshape(OD, KD)
    for bd in range(min(WV_BAND_MAX, OD), 1, -1):
        nd = 0
        for od0 in range(0, OD, bd):
            used = along_d[od0:od0 + bd]
            used = used[used >= 0]
            if used.size:
                nd = max(nd, int(used.max() - used.min()) + 1)
        if nd * KH <= WV_SLOTS and nd * KH * row_bytes <= WV_BAND_BYTES:
            return bd, nd
    return 1, 0


def wv_tail_pairs(OW, OH, NJ, V):
    """Whether wv_kernel's last W chunk, of at most one vector (V lanes)
    of an output row of OW columns in chunks of NJ = 2 V, holds that
    chunk of two output rows (oh, oh + 1) instead: a 56-wide row then
    computes 56 lanes, not 64 (packed rows kept between output rows, one
    W phase). Both rows' terms keep their order (a tap only one of the
    two has multiplies zeros for the other), so the same bits."""
    return OH > 1 and OW > NJ and 0 < OW % NJ <= V


def wv_lane_fill(width, lanes, tail=True):
    """The share of wv_kernel's lanes that hold output columns, for output
    rows of `width` columns (per W phase): one-vector tiles (8 x 1, 16 x 1,
    row pairs) where wv_row_pairs says so, else 2 vectors along the row,
    whose last chunk of at most one vector pairs with the next row's where
    tail pairs may run (`tail`: H stride and dilation 1; wv_tail_pairs)."""
    if wv_row_pairs(width, lanes) or tail and width > 2 * lanes and 0 < width % (2 * lanes) <= lanes:
        return width / (_ceil(width, lanes) * lanes)
    return width / (_ceil(width, 2 * lanes) * 2 * lanes)


def n_tiles_wv(geo, tile, itemsize, pair=None):
    B, OD, OH, OW, sw, G, trans, NFB = (geo[i] for i in (0, 5, 6, 7, 14, 21, 22, 23))
    P = sw if trans else 1
    lanes = tile.lanes(itemsize) * (tile.nvec if pair is None else 1)
    rows = [B, OD, OH]
    if pair is not None:
        rows[pair - 1] = -(-rows[pair - 1] // 2)
    return rows[0] * rows[1] * rows[2] * G * NFB * (-(-(-(-OW // P)) // lanes))


def pair_axis(B, OD, OH):
    """wv_kernel's `pair` for tiles on two output rows: the first of b,
    od, oh with an even count (pairs along b or d keep the H taps of both
    rows the same), else the longest; None when there is one row."""
    sizes = (B, OD, OH)
    if max(sizes) < 2:
        return None
    for a, n in enumerate(sizes):
        if n % 2 == 0:
            return a + 1
    return sizes.index(max(sizes)) + 1


def wv_row_pairs(width, lanes):
    """Whether wv_kernel's 2-vector tile goes on two output rows (`lanes`
    each; `pair`) for rows of `width` columns, if not on the 8 x 1 tile
    (wv_tile): where two vectors along one row would pad the row more
    than WV_ONE_VECTOR_COST times one vector (up to `lanes` columns, or `lanes` past a
    multiple of 2 `lanes` plus a few; 7: 8 lanes instead of 16). With less
    padding (56 columns: 56 lanes instead of 64) pairs were no faster than
    6 x 2 along one row (NCHW 56^2 x 64 -> 64: 1.02x the time), and slower
    once a pair's packed rows left L2 (56^2 x 256: 1.25x; benchmarks/NOTES.md
    section 53)."""
    return -(-width // (2 * lanes)) * 2 * lanes > WV_ONE_VECTOR_COST * -(-width // lanes) * lanes
