"""Explicit SIMD for the CPU kernels: a Numba type for one vector register
(64 bytes on AVX-512 machines: 16 float32 or 8 float64 lanes; 32 bytes on
AVX2), a register-tile shape type, and the intrinsics the register-blocked
kernels are built from.

Why: LLVM does not keep a register tile of accumulators in registers when
the tile is a Numba array (heap memory it cannot prove private), and it does
not vectorise fully unrolled scalar tiles. A tile here is a tuple of
vectors (SSA values that live in registers across the whole reduction, as
in a hand-written GEMM micro-kernel), and each micro-kernel (`vrun`,
`vrun_cols`) is emitted directly as one small LLVM loop: one typed call for
Numba instead of dozens of unrolled statements, which is most of what a
kernel's cold compile used to cost.

Each lane is an independent accumulator and every FMA rounds once
(llvm.fma), so the summation order of every output element is fixed by the
loop order, independent of the thread count, the vector width and LLVM's
choices.

Numba's on-disk cache checks the source file of each kernel (cpu_rb.py),
not of the intrinsics it calls: after editing this file alone, clear the
cache (the __pycache__ next to cpu_rb.py, or NUMBA_CACHE_DIR) or touch
cpu_rb.py. An installed release replaces both files.

Memory access takes byte addresses (`addr(arr) + offset`): no negative-index
wraparound and no bounds checks; callers guarantee validity. The array
argument of each intrinsic only fixes the dtype and keeps it alive.
"""

import os

from llvmlite import binding as llvm
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import NativeValue, intrinsic, models, register_model, typeof_impl, unbox


def _host_vector_bytes():
    """64 where the CPU Numba compiles for has AVX-512F (the host, or
    NUMBA_CPU_FEATURES when set, e.g. for a portable cache), else 32.
    FASTDECONV_VECTOR_BYTES (32 or 64) overrides it, e.g. to run the other width's kernels in tests;
    64-byte vectors on an AVX2 machine are correct but slow (LLVM splits
    them in two and the register tiles spill)."""
    env = os.environ.get("FASTDECONV_VECTOR_BYTES")
    if env:
        if env not in ("32", "64"):
            raise ValueError(f"FASTDECONV_VECTOR_BYTES={env!r}: expected 32 or 64 (or unset, to follow the CPU)")
        return int(env)
    from numba.core import config

    if config.CPU_FEATURES is not None:  # NUMBA_CPU_FEATURES: Numba compiles for these
        return 64 if "+avx512f" in config.CPU_FEATURES.split(",") else 32
    try:
        features = llvm.get_host_cpu_features()
        return 64 if features.get("avx512f", False) else 32
    except RuntimeError:  # the host's features cannot be read
        return 32


def _host_cpu_name():
    """The CPU Numba compiles for: NUMBA_CPU_NAME when set (e.g. "generic"
    for a portable cache), else the host's LLVM name ("znver5",
    "emeraldrapids", ...). For the few tile choices measured to differ
    between CPU families."""
    from numba.core import config

    if config.CPU_NAME:
        return config.CPU_NAME
    try:
        return llvm.get_host_cpu_name()
    except RuntimeError:
        return "generic"


HOST_CPU = _host_cpu_name()

# The vector width the kernels use, and how many such registers the CPU has
# (AVX-512: 32 zmm; AVX2: 16 ymm). Tiles are sized from both (`tile_rows`).
VBYTES = _host_vector_bytes()
VREGS = 32 if VBYTES == 64 else 16


def tile_rows(nvec, vregs=None, cap=8):
    """Rows of a register tile of nvec vectors per row: the most that keep
    rows*nvec accumulators, nvec weight vectors and one broadcast in
    registers, at most `cap` (more row pointers spill from the general
    registers). AVX-512: 8 rows x 2 vectors; AVX2: 6 x 2, 8 x 1."""
    vregs = VREGS if vregs is None else vregs
    return max(1, min(cap, (vregs - nvec - 1) // nvec))


class Tile:
    """A register tile's shape: rows x nvec vectors of vbytes bytes. Passed
    to the kernels as an argument, so that it is part of their compiled
    signature (and of Numba's on-disk cache key): one kernel source serves
    every tile shape and vector width, each compiled once."""

    __slots__ = ("rows", "nvec", "vbytes")

    MAX_ROWS = 16  # the kernels' per-row scratch space holds this many (cl tiles: 8)

    def __init__(self, rows, nvec, vbytes=None):
        self.rows, self.nvec = int(rows), int(nvec)
        self.vbytes = VBYTES if vbytes is None else int(vbytes)
        if not (1 <= self.rows <= self.MAX_ROWS and self.nvec >= 1 and self.vbytes in (32, 64)):
            raise ValueError(f"Tile({rows}, {nvec}, {vbytes}): expected 1-{self.MAX_ROWS} rows, "
                             "at least one vector and 32- or 64-byte vectors")

    def lanes(self, itemsize):
        """Elements per vector for elements of `itemsize` bytes."""
        return self.vbytes // itemsize

    def __repr__(self):
        return f"Tile({self.rows}, {self.nvec}, {self.vbytes})"


class TileType(types.Type):
    def __init__(self, rows, nvec, vbytes):
        self.rows, self.nvec, self.vbytes = rows, nvec, vbytes
        super().__init__(name=f"Tile[{rows}x{nvec}x{vbytes}B]")


@typeof_impl.register(Tile)
def _typeof_tile(val, c):
    return TileType(val.rows, val.nvec, val.vbytes)


register_model(TileType)(models.OpaqueModel)


@unbox(TileType)
def _unbox_tile(typ, obj, c):
    return NativeValue(c.context.get_dummy_value())


class Vec(types.Type):
    def __init__(self, dtype, vbytes):
        self.dtype = dtype
        self.vbytes = vbytes
        self.lanes = vbytes // (dtype.bitwidth // 8)
        super().__init__(name=f"Vec[{dtype}x{self.lanes}]")


@register_model(Vec)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        be = ir.VectorType(dmm.lookup(fe_type.dtype).get_value_type(), fe_type.lanes)
        super().__init__(dmm, fe_type, be)


@intrinsic
def tile_dims(typingctx, tile, arr):
    """(rows, nvec, lanes) of a Tile for arr's dtype, as constants."""
    if not isinstance(tile, TileType):
        return None
    vals = (tile.rows, tile.nvec, tile.vbytes // (arr.dtype.bitwidth // 8))
    rty = types.UniTuple(types.intp, 3)

    def impl(context, builder, sig, args):
        return context.make_tuple(builder, rty, [ir.Constant(context.get_value_type(types.intp), v)
                                                 for v in vals])
    return rty(tile, arr), impl


def _splat(builder, vty, s):
    v = builder.insert_element(ir.Constant(vty, ir.Undefined), s, ir.Constant(ir.IntType(32), 0))
    mask = ir.Constant(ir.VectorType(ir.IntType(32), vty.count), [0] * vty.count)
    return builder.shuffle_vector(v, ir.Constant(vty, ir.Undefined), mask)


def _counted_loop(builder, name, count, vty, values, step):
    """An LLVM loop over k in [0, count) (i64) that carries the vectors
    `values` (of type vty): step(k, current) emits the body and returns
    the next values. Returns the values after the loop."""
    i64 = ir.IntType(64)
    pre = builder.block
    head = builder.append_basic_block(f"{name}.head")
    body = builder.append_basic_block(f"{name}.body")
    done = builder.append_basic_block(f"{name}.done")
    builder.branch(head)
    builder.position_at_end(head)
    k = builder.phi(i64)
    k.add_incoming(ir.Constant(i64, 0), pre)
    current = []
    for v in values:
        ph = builder.phi(vty)
        ph.add_incoming(v, pre)
        current.append(ph)
    builder.cbranch(builder.icmp_signed("<", k, count), body, done)
    builder.position_at_end(body)
    new = step(k, current)
    k1 = builder.add(k, ir.Constant(i64, 1))
    end = builder.block
    builder.branch(head)
    k.add_incoming(k1, end)
    for ph, v in zip(current, new):
        ph.add_incoming(v, end)
    builder.position_at_end(done)
    return current


@intrinsic
def addr(typingctx, arr):
    """The address of arr's first element."""
    def impl(context, builder, sig, args):
        a = context.make_array(sig.args[0])(context, builder, args[0])
        return builder.ptrtoint(a.data, context.get_value_type(types.intp))
    return types.intp(arr), impl


@intrinsic
def scratch(typingctx, proto, nbytes):
    """A zeroed 1-D array of nbytes (a compile-time constant) on the
    kernel's stack, of proto's dtype (proto: an array or a scalar). For
    small per-call work space: no heap allocation, and no np.zeros /
    np.empty in the kernel, whose typing alone costs ~0.1 s of compile time
    each. The array must not outlive the call."""
    if not isinstance(nbytes, types.IntegerLiteral):
        return None
    dtype = proto.dtype if isinstance(proto, types.Array) else proto
    if isinstance(dtype, types.Literal):
        dtype = dtype.literal_type
    isz = dtype.bitwidth // 8
    count = nbytes.literal_value // isz
    arrty = types.Array(dtype, 1, "C")

    def impl(context, builder, sig, args):
        intp = context.get_value_type(types.intp)
        ptr = cgutils.alloca_once(builder, context.get_value_type(dtype), size=count)
        cgutils.memset(builder, ptr, ir.Constant(intp, count * isz), 0)
        ary = context.make_array(arrty)(context, builder)
        context.populate_array(ary, data=ptr, shape=[ir.Constant(intp, count)],
                               strides=[ir.Constant(intp, isz)], itemsize=ir.Constant(intp, isz),
                               meminfo=None)
        return ary._getvalue()
    return arrty(proto, nbytes), impl


@intrinsic
def itemsize(typingctx, arr):
    """arr's element size in bytes as a compile-time constant (arr.itemsize
    is read from the array at run time, which keeps LLVM from folding
    address steps into displacements)."""
    n = arr.dtype.bitwidth // 8

    def impl(context, builder, sig, args):
        return ir.Constant(context.get_value_type(types.intp), n)
    return types.intp(arr), impl


def _range_mask(builder, n, lo, hi):
    """<n x i1>: lane l is set when lo <= l < hi (lo, hi: i64). The bounds
    are clamped to [0, n] and compared as 32-bit lanes: one compare per
    bound for a float32 vector (64-bit lanes take two and a pack)."""
    i64, i32 = ir.IntType(64), ir.IntType(32)
    vt = ir.VectorType(i32, n)
    iota = ir.Constant(vt, list(range(n)))

    def clamp(v):
        v = builder.sext(v, i64) if v.type.width < 64 else v
        v = builder.select(builder.icmp_signed("<", v, ir.Constant(i64, 0)), ir.Constant(i64, 0), v)
        v = builder.select(builder.icmp_signed(">", v, ir.Constant(i64, n)), ir.Constant(i64, n), v)
        return _splat(builder, vt, builder.trunc(v, i32))
    below = builder.icmp_signed("<", iota, clamp(hi))
    if isinstance(lo, ir.Constant) and lo.constant <= 0:
        return below  # (every lane: no compare to emit, and LLVM none to fold)
    return builder.and_(builder.icmp_signed(">=", iota, clamp(lo)), below)


def _vector_store(builder, v, ptr, isz, stream):
    """A whole vector's store: plain (element-aligned), or streaming (a
    non-temporal store, vector-aligned)."""
    st = builder.store(v, ptr, align=v.type.count * isz if stream else isz)
    if stream:
        st.set_metadata("nontemporal", builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)]))


def _masked_load(builder, vty, bits):
    """llvm.masked.load for vectors vty of `bits`-bit floats: (ptr, align,
    mask, passthru)."""
    mty = ir.VectorType(ir.IntType(1), vty.count)
    return cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vty, [vty.as_pointer(), ir.IntType(32), mty, vty]),
        f"llvm.masked.load.v{vty.count}f{bits}.p0")


def _masked_store(builder, vty, bits):
    """llvm.masked.store for vectors vty of `bits`-bit floats: (value, ptr,
    align, mask)."""
    mty = ir.VectorType(ir.IntType(1), vty.count)
    return cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.VoidType(), [vty, vty.as_pointer(), ir.IntType(32), mty]),
        f"llvm.masked.store.v{vty.count}f{bits}.p0")


def _row_values(context, builder, ty, val, nrow):
    """nrow int64 values: the elements of a tuple, or the first nrow
    elements of a 1-D integer array."""
    if isinstance(ty, types.BaseTuple):
        vals = cgutils.unpack_tuple(builder, val, nrow)
        return [context.cast(builder, v, t, types.int64) for v, t in zip(vals, ty.types)]
    a = context.make_array(ty)(context, builder, val)
    return [context.cast(builder, builder.load(builder.gep(a.data, [ir.Constant(ir.IntType(64), i)])),
                         ty.dtype, types.int64) for i in range(nrow)]


def _rows_type_ok(rows, nrow):
    """rows: a tuple of nrow integers, or a 1-D integer array."""
    if isinstance(rows, types.BaseTuple):
        return len(rows) == nrow and all(isinstance(t, types.Integer) for t in rows.types)
    return isinstance(rows, types.Array) and rows.ndim == 1 and isinstance(rows.dtype, types.Integer)


def _tile_args_ok(tile, accs, rows):
    """The typing check of the tile intrinsics: a Tile, its accumulators
    (a tuple of tile.rows * tile.nvec vectors) and per-row values `rows`
    (_rows_type_ok)."""
    return (isinstance(tile, TileType) and isinstance(accs, types.UniTuple) and isinstance(accs.dtype, Vec)
            and accs.count == tile.rows * tile.nvec and _rows_type_ok(rows, tile.rows))


def part_rows(tile):
    """Rows of vrun's part-tile loop, or 0 for none: the fewest rows whose
    nvec accumulators each still keep the two FMA pipes busy (8 in flight:
    4 cycles of latency x 2 per cycle), when that is fewer than the tile's.
    AVX2 6 x 2 and AVX-512 8 x 2: 4 rows; 8 x 1: none."""
    part = -(-8 // tile.nvec)
    return part if part < tile.rows else 0


@intrinsic
def tile_part_rows(typingctx, tile):
    """part_rows(tile) as a compile-time constant, for the kernels."""
    if not isinstance(tile, TileType):
        return None

    def impl(context, builder, sig, args):
        return ir.Constant(context.get_value_type(types.intp), part_rows(tile))
    return types.intp(tile), impl


@intrinsic
def vrun(typingctx, arr, accs, tile, rows, off, q, K, nrows):
    """The register-tile micro-kernel, emitted as one LLVM loop: K reduction
    steps; at step k, for each row i < tile.rows and weight vector j,
        accs[i*NW + j] = fma(bcast(rows[i] + off + k*itemsize), w_j, accs[i*NW + j])
    with w_j the vector at byte address q + (k*NW + j)*64 and
    NW = tile.nvec. rows: byte addresses, a tuple or an integer
    array (read once, before the loop). Returns the new accumulators.
    When only nrows <= part_rows(tile) rows are used, a second loop
    updates those rows only (the others are returned unchanged): a tile's
    last few rows of an output row cost their share, not a whole tile.

    Why an intrinsic: written as a Numba loop over unrolled vector
    statements, this body is typed, SSA-rebuilt and lowered statement by
    statement at every call site (about a third of a kernel's cold compile
    time); here it is one typed call and a few dozen IR instructions, and
    the FMAs are the same, in the same order, so the results are the same
    bits. Taking the row addresses as an array plus one offset saves the
    caller a tuple of nrow sums per call (compile time, too)."""
    if not _tile_args_ok(tile, accs, rows):
        return None
    nr, nw = tile.rows, tile.nvec
    part = part_rows(tile)
    isz = arr.dtype.bitwidth // 8
    vbytes = accs.dtype.vbytes

    def impl(context, builder, sig, args):
        i64 = ir.IntType(64)
        vty = context.get_value_type(accs.dtype)
        sty = context.get_value_type(arr.dtype)
        acc0 = cgutils.unpack_tuple(builder, args[1], accs.count)
        o = context.cast(builder, args[4], sig.args[4], types.int64)
        rows_v = [builder.add(r, o) for r in _row_values(context, builder, sig.args[3], args[3], nr)]
        q0 = context.cast(builder, args[5], sig.args[5], types.int64)
        nK = context.cast(builder, args[6], sig.args[6], types.int64)
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vty, [vty] * 3), f"llvm.fma.v{vty.count}f{arr.dtype.bitwidth}")

        def loop(n, merge):
            """The loop over rows [0, n); branches to merge with its
            accumulators (the block it leaves from, and the list)."""
            # Pointer-increment form (as a Numba loop over `p += itemsize`
            # would be): one phi per row pointer and for q, a down-counter for K.
            pre = builder.block
            head = builder.append_basic_block("vrun.head")
            body = builder.append_basic_block("vrun.body")
            done = builder.append_basic_block("vrun.done")
            builder.branch(head)

            builder.position_at_end(head)
            rem = builder.phi(i64)
            rem.add_incoming(nK, pre)
            qp = builder.phi(i64)
            qp.add_incoming(q0, pre)
            rp = []
            for r in rows_v[:n]:
                ph = builder.phi(i64)
                ph.add_incoming(r, pre)
                rp.append(ph)
            acc = []
            for a in acc0[:n * nw]:
                ph = builder.phi(vty)
                ph.add_incoming(a, pre)
                acc.append(ph)
            builder.cbranch(builder.icmp_signed(">", rem, ir.Constant(i64, 0)), body, done)

            builder.position_at_end(body)
            ws = [builder.load(builder.inttoptr(builder.add(qp, ir.Constant(i64, j * vbytes)), vty.as_pointer()),
                               align=isz) for j in range(nw)]
            new = []
            for i in range(n):
                s = builder.load(builder.inttoptr(rp[i], sty.as_pointer()), align=isz)
                b = _splat(builder, vty, s)
                for j in range(nw):
                    new.append(builder.call(fma, [b, ws[j], acc[i * nw + j]]))
            rem1 = builder.sub(rem, ir.Constant(i64, 1))
            q1 = builder.add(qp, ir.Constant(i64, nw * vbytes))
            r1 = [builder.add(r, ir.Constant(i64, isz)) for r in rp]
            end = builder.block
            builder.branch(head)
            rem.add_incoming(rem1, end)
            qp.add_incoming(q1, end)
            for ph, v in zip(rp, r1):
                ph.add_incoming(v, end)
            for ph, v in zip(acc, new):
                ph.add_incoming(v, end)

            builder.position_at_end(done)
            builder.branch(merge)
            return done, acc + list(acc0[n * nw:])

        merge = builder.append_basic_block("vrun.merge")
        if part:
            n_used = context.cast(builder, args[7], sig.args[7], types.int64)
            full_bb = builder.append_basic_block("vrun.full")
            part_bb = builder.append_basic_block("vrun.part")
            builder.cbranch(builder.icmp_signed(">", n_used, ir.Constant(i64, part)), full_bb, part_bb)
            builder.position_at_end(full_bb)
            exits = [loop(nr, merge)]
            builder.position_at_end(part_bb)
            exits.append(loop(part, merge))
        else:
            exits = [loop(nr, merge)]
        builder.position_at_end(merge)
        out = []
        for k in range(accs.count):
            ph = builder.phi(vty)
            for bb, vals in exits:
                ph.add_incoming(vals[k], bb)
            out.append(ph)
        return context.make_tuple(builder, sig.return_type, out)
    return accs(arr, accs, tile, rows, off, q, K, nrows), impl


@intrinsic
def vtzero(typingctx, arr, tile):
    """A register tile of zeros: a tuple of tile.rows * tile.nvec vectors
    (row i's are [i*nvec, (i+1)*nvec))."""
    if not isinstance(tile, TileType):
        return None
    vt = types.UniTuple(Vec(arr.dtype, tile.vbytes), tile.rows * tile.nvec)

    def impl(context, builder, sig, args):
        return ir.Constant(context.get_value_type(vt), None)
    return vt(arr, tile), impl


@intrinsic
def vtadd(typingctx, a, b):
    """a + b, element by element, for tuples of vectors."""
    if a != b:
        return None

    def impl(context, builder, sig, args):
        xs = cgutils.unpack_tuple(builder, args[0], a.count)
        ys = cgutils.unpack_tuple(builder, args[1], a.count)
        return context.make_tuple(builder, a, [builder.fadd(x, y) for x, y in zip(xs, ys)])
    return a(a, b), impl


def _row_vectors(builder, vty, base, off, nw, isz):
    """Pointers to a tile row's nw vectors vty: the first at element off
    (i64) of the array at byte address base, the others after it."""
    i64 = ir.IntType(64)
    return [builder.inttoptr(builder.add(base, builder.mul(builder.add(off, ir.Constant(i64, j * vty.count)),
                                                           ir.Constant(i64, isz))), vty.as_pointer())
            for j in range(nw)]


@intrinsic
def vtstore(typingctx, arr, tile, offs, accs, nf):
    """Row i's vectors accs[i*NW : (i+1)*NW] (NW = tile.nvec) to arr's
    elements [offs[i], offs[i] + nf) for i < tile.rows; rows with
    offs[i] < 0 are not stored. Lanes past nf are not written (masked
    stores). offs: a tuple or an integer array."""
    return _vtstore_typed(arr, tile, offs, accs, nf, False)


@intrinsic
def vtstore_stream(typingctx, arr, tile, offs, accs, nf, stream):
    """vtstore, with whole vectors stored by non-temporal (streaming)
    stores where `stream` is True, which write memory without reading its
    lines first (every whole vector must then be at a vector-aligned
    address, and the kernel ends with `sfence(stream)`); only the vector
    holding a row's last lanes past nf is stored masked (a masked store
    reads its line first: NCHW 3 x 72^2 -> 256 x 144^2 k3 s2, rows ending
    in half a tile, ran slower streamed than with plain stores;
    benchmarks/NOTES.md section 131). Where it is None, plain vtstore. One
    compiled variant per kernel and setting."""
    if not isinstance(stream, (types.NoneType, types.Boolean)):
        return None
    typed = _vtstore_typed(arr, tile, offs, accs, nf, not isinstance(stream, types.NoneType))
    if typed is None:
        return None
    sig, impl = typed
    return types.void(arr, tile, offs, accs, nf, stream), impl


def _vtstore_typed(arr, tile, offs, accs, nf, stream):
    if not _tile_args_ok(tile, accs, offs):
        return None
    nr, nw = tile.rows, tile.nvec
    isz = arr.dtype.bitwidth // 8

    def impl(context, builder, sig, args):
        i64 = ir.IntType(64)
        vty = context.get_value_type(accs.dtype)
        n = vty.count
        a = context.make_array(sig.args[0])(context, builder, args[0])
        base = builder.ptrtoint(a.data, i64)
        os_ = _row_values(context, builder, sig.args[2], args[2], nr)
        vs = cgutils.unpack_tuple(builder, args[3], accs.count)
        nfv = context.cast(builder, args[4], sig.args[4], types.int64)
        zero = ir.Constant(i64, 0)
        mstore = _masked_store(builder, vty, arr.dtype.bitwidth)
        full = builder.icmp_signed(">=", nfv, ir.Constant(i64, nw * n))

        def whole_store(i, j, ptr):
            _vector_store(builder, vs[i * nw + j], ptr, isz, stream)

        def part_store(i, j, ptr, mask):
            builder.call(mstore, [vs[i * nw + j], ptr, ir.Constant(ir.IntType(32), isz), mask])

        def rows(store):
            # rows past the end are skipped; each row's addresses are
            # computed where it is stored: all rows' at once kept 16
            # addresses live in registers (short_cl's 8 x 2 tiles 6-15 %
            # slower)
            for i in range(nr):
                with builder.if_then(builder.icmp_signed(">=", os_[i], zero), likely=True):
                    for j, ptr in enumerate(_row_vectors(builder, vty, base, os_[i], nw, isz)):
                        store(i, j, ptr)

        # whole rows with plain stores (masked ones cost a mask per vector,
        # noticeable on tiles with little work, e.g. 3 input channels); the
        # test of nf once per tile and each vector's mask once for all rows
        # (a 16-row tile's store was 500 LLVM instructions, most of them
        # the same masks again)
        with builder.if_else(full, likely=True) as (whole, part):
            with whole:
                rows(whole_store)
            with part:
                masks = [_range_mask(builder, n, zero, builder.sub(nfv, ir.Constant(i64, j * n))) for j in range(nw)]

                def last_store(i, j, ptr):
                    if not stream:
                        part_store(i, j, ptr, masks[j])
                        return
                    # streaming: the row's whole vectors too (a masked
                    # store reads its line first), the rest masked
                    with builder.if_else(builder.icmp_signed(">=", nfv, ir.Constant(i64, (j + 1) * n))) as (
                            vector, rest):
                        with vector:
                            whole_store(i, j, ptr)
                        with rest:
                            part_store(i, j, ptr, masks[j])

                rows(last_store)
        return context.get_dummy_value()
    return types.void(arr, tile, offs, accs, nf), impl


@intrinsic
def sfence(typingctx, stream):
    """x86 `sfence` where `stream` is True (None: nothing): streaming
    stores before it are ordered before any store after it (a kernel's
    results before the caller reads them)."""
    if not isinstance(stream, (types.NoneType, types.Boolean)):
        return None
    fence = not isinstance(stream, types.NoneType)

    def impl(context, builder, sig, args):
        if fence:
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                "llvm.x86.sse.sfence")
            builder.call(fn, [])
        return context.get_dummy_value()
    return types.void(stream), impl


@intrinsic
def vtload(typingctx, arr, tile, offs, nf):
    """vtstore's inverse: a register tile whose row i's vectors hold arr's
    elements [offs[i], offs[i] + nf); rows with offs[i] < 0 and lanes past
    nf are 0 (not read: masked loads)."""
    if not (isinstance(tile, TileType) and _rows_type_ok(offs, tile.rows)):
        return None
    nr, nw = tile.rows, tile.nvec
    isz = arr.dtype.bitwidth // 8
    vt = types.UniTuple(Vec(arr.dtype, tile.vbytes), nr * nw)

    def impl(context, builder, sig, args):
        i64 = ir.IntType(64)
        vty = context.get_value_type(vt.dtype)
        n = vty.count
        a = context.make_array(sig.args[0])(context, builder, args[0])
        base = builder.ptrtoint(a.data, i64)
        os_ = _row_values(context, builder, sig.args[2], args[2], nr)
        nfv = context.cast(builder, args[3], sig.args[3], types.int64)
        zero, zv = ir.Constant(i64, 0), ir.Constant(vty, None)
        mload = _masked_load(builder, vty, arr.dtype.bitwidth)
        full = builder.icmp_signed(">=", nfv, ir.Constant(i64, nw * n))
        vs = []
        for i in range(nr):
            on = builder.icmp_signed(">=", os_[i], zero)
            ptrs = _row_vectors(builder, vty, base, os_[i], nw, isz)
            # whole rows with plain loads (as vtstore's stores)
            with builder.if_else(builder.and_(on, full), likely=True) as (whole, part):
                with whole:
                    v_whole = [builder.load(ptrs[j], align=isz) for j in range(nw)]
                    bb_whole = builder.block
                with part:
                    v_part = []
                    for j in range(nw):
                        mask = builder.and_(_range_mask(builder, n, zero, builder.sub(nfv, ir.Constant(i64, j * n))),
                                            _splat(builder, ir.VectorType(ir.IntType(1), n), on))
                        v_part.append(builder.call(mload, [ptrs[j], ir.Constant(ir.IntType(32), isz), mask, zv]))
                    bb_part = builder.block
            for j in range(nw):
                ph = builder.phi(vty)
                ph.add_incoming(v_whole[j], bb_whole)
                ph.add_incoming(v_part[j], bb_part)
                vs.append(ph)
        return context.make_tuple(builder, vt, vs)
    return vt(arr, tile, offs, nf), impl


@intrinsic
def vtstore_rows(typingctx, arr, tile, offs, accs, nj, vstride, nv):
    """vtstore for a tile whose vectors are different output rows: row
    i's vector j (j < nv) to arr's elements [offs[i] + j*vstride,
    offs[i] + j*vstride + nj) for i < tile.rows with offs[i] >= 0; lanes
    past nj are not written (masked stores)."""
    if not _tile_args_ok(tile, accs, offs):
        return None
    nr, nw = tile.rows, tile.nvec
    isz = arr.dtype.bitwidth // 8

    def impl(context, builder, sig, args):
        i64 = ir.IntType(64)
        vty = context.get_value_type(accs.dtype)
        n = vty.count
        base = builder.ptrtoint(context.make_array(sig.args[0])(context, builder, args[0]).data, i64)
        os_ = _row_values(context, builder, sig.args[2], args[2], nr)
        vs = cgutils.unpack_tuple(builder, args[3], accs.count)
        njv, vst, nvv = (context.cast(builder, args[k], sig.args[k], types.int64) for k in (4, 5, 6))
        zero = ir.Constant(i64, 0)
        mstore = _masked_store(builder, vty, arr.dtype.bitwidth)
        # masked stores only: once per tile, and fewer blocks to compile
        mask = _range_mask(builder, n, zero, njv)
        for i in range(nr):
            with builder.if_then(builder.icmp_signed(">=", os_[i], zero), likely=True):
                for j in range(nw):
                    with builder.if_then(builder.icmp_signed(">", nvv, ir.Constant(i64, j)), likely=True):
                        ptr = builder.inttoptr(builder.add(base, builder.mul(
                            builder.add(os_[i], builder.mul(vst, ir.Constant(i64, j))), ir.Constant(i64, isz))),
                            vty.as_pointer())
                        builder.call(mstore, [vs[i * nw + j], ptr, ir.Constant(ir.IntType(32), isz), mask])
        return context.get_dummy_value()
    return types.void(arr, tile, offs, accs, nj, vstride, nv), impl


@intrinsic
def vtstore_planes(typingctx, arr, tile, accs, dst, pstride, nf):
    """A tile whose rows are consecutive positions of channel planes
    (channels-first), transposed in registers and stored: row i's lane f
    of vector j (channel j * V + f, V the lanes) to byte address dst +
    (j * V + f) * pstride + i * itemsize, for channels below nf. Each
    chunk of up to V rows takes the P x P block transpose
    (`_transpose_blocks`, P the chunk's rows rounded up to a power of
    two), whose vectors then hold each channel's run of rows; one plain
    store of the chunk's rows per channel. Replaces a tile stored
    channels-last, transposed through memory and copied out run by run."""
    if not (isinstance(tile, TileType) and isinstance(accs, types.UniTuple) and isinstance(accs.dtype, Vec)
            and accs.count == tile.rows * tile.nvec):
        return None
    nr, nw = tile.rows, tile.nvec
    isz = arr.dtype.bitwidth // 8

    def impl(context, builder, sig, args):
        i64, i32 = ir.IntType(64), ir.IntType(32)
        vty = context.get_value_type(accs.dtype)
        nl = vty.count
        vs = cgutils.unpack_tuple(builder, args[2], accs.count)
        d, ps, nfv = (context.cast(builder, args[k], sig.args[k], types.int64) for k in (3, 4, 5))
        undef = ir.Constant(vty, ir.Undefined)
        for r0 in range(0, nr, nl):
            m = min(nl, nr - r0)  # the chunk's rows
            P = 1
            while P < m:
                P *= 2
            sty = ir.VectorType(vty.element, m)
            for j in range(nw):
                rows = [vs[(r0 + i) * nw + j] for i in range(m)] + [undef] * (P - m)
                _transpose_blocks(builder, rows)
                for f in range(nl):  # channel j * nl + f: lanes [g * P, g * P + m) of vector i
                    g, i = divmod(f, P)
                    run = builder.shuffle_vector(rows[i], undef, ir.Constant(ir.VectorType(i32, m),
                                                                             [g * P + k for k in range(m)]))
                    ch = j * nl + f
                    with builder.if_then(builder.icmp_signed(">", nfv, ir.Constant(i64, ch)), likely=True):
                        ptr = builder.add(d, builder.add(builder.mul(ps, ir.Constant(i64, ch)),
                                                         ir.Constant(i64, r0 * isz)))
                        builder.store(run, builder.inttoptr(ptr, sty.as_pointer()), align=isz)
        return context.get_dummy_value()
    return types.void(arr, tile, accs, dst, pstride, nf), impl


@intrinsic
def vtstore_flat(typingctx, arr, tile, base, accs, p0, r0, Ws, OW, OH):
    """Stores a tile whose vectors hold consecutive positions of a plane
    laid out Ws columns a row (cpu_dw.depthwise_cf's flat tiles): vector
    j's lane l is position p = p0 + j*V + l, row p // Ws and column p %
    Ws; columns below OW of rows below OH go to arr element base + row*OW
    + column, the others are not written. A masked store per row a vector
    meets (2-3 for rows of about half a vector), straight from the
    registers. r0: the row of p0 (p0 // Ws, which the caller counts on);
    each vector's rows are counted on from there (a division per vector
    took a fifth of a 7^2 plane's time; the same number of stores for
    every vector, the masks of rows past a vector's empty, a third)."""
    if not (isinstance(tile, TileType) and isinstance(accs, types.UniTuple) and accs.count == tile.rows * tile.nvec):
        return None
    nw = tile.nvec * tile.rows
    isz = arr.dtype.bitwidth // 8

    def impl(context, builder, sig, args):
        i64 = ir.IntType(64)
        vty = context.get_value_type(accs.dtype)
        n = vty.count
        data = builder.ptrtoint(context.make_array(sig.args[0])(context, builder, args[0]).data, i64)
        vs = cgutils.unpack_tuple(builder, args[3], accs.count)
        b0, q0, rr, ws, ow, oh = (context.cast(builder, args[k], sig.args[k], types.int64) for k in (2, 4, 5, 6, 7, 8))
        mstore = _masked_store(builder, vty, arr.dtype.bitwidth)
        one = ir.Constant(i64, 1)
        row = cgutils.alloca_once_value(builder, rr)  # the first row the next vector meets
        for j in range(nw):
            pj = builder.add(q0, ir.Constant(i64, j * n))
            end = builder.add(pj, ir.Constant(i64, n))
            head = builder.append_basic_block(f"flat{j}.head")
            body = builder.append_basic_block(f"flat{j}.body")
            done = builder.append_basic_block(f"flat{j}.done")
            builder.branch(head)
            builder.position_at_end(head)
            r = builder.load(row)
            more = builder.and_(builder.icmp_signed("<", r, oh), builder.icmp_signed("<", builder.mul(r, ws), end))
            builder.cbranch(more, body, done)
            builder.position_at_end(body)
            lo = builder.sub(builder.mul(r, ws), pj)  # lane of the row's column 0
            ptr = builder.inttoptr(builder.add(data, builder.mul(
                builder.sub(builder.add(b0, builder.mul(r, ow)), lo), ir.Constant(i64, isz))), vty.as_pointer())
            builder.call(mstore, [vs[j], ptr, ir.Constant(ir.IntType(32), isz),
                                  _range_mask(builder, n, lo, builder.add(lo, ow))])
            builder.store(builder.add(r, one), row)
            builder.branch(head)
            builder.position_at_end(done)
            # the next vector starts in the last row met unless that row ended with this one
            r = builder.load(row)
            last = builder.sub(r, one)
            builder.store(builder.select(builder.icmp_signed(">", builder.mul(r, ws), end), last, r), row)
        return context.get_dummy_value()
    return types.void(arr, tile, base, accs, p0, r0, Ws, OW, OH), impl


def _zip_masks(n):
    """Shuffle masks interleaving two n-lane vectors a and b: (a0 b0 a1 b1
    ... of the first halves, the same of the second halves)."""
    return ([k // 2 + (n if k % 2 else 0) for k in range(n)],
            [n // 2 + k // 2 + (n if k % 2 else 0) for k in range(n)])


@intrinsic
def vtstore_zip2(typingctx, arr, tile, offs, buf, accs, count, stream, voffs):
    """Two W phases of a vectors-along-W tile (tile.rows rows x NW =
    tile.nvec vectors): phase 0's in buf (row i at buf[i*NJ : (i+1)*NJ], NJ
    = NW vectors of lanes), phase 1's in accs; row i's outputs interleaved
    (phase 0 lane l to arr[offs[i] + 2l], phase 1's to arr[offs[i] + 2l +
    1]) with vector shuffles, the first `count` of the 2*NJ stored (whole
    vectors, masked stores past count); rows with offs[i] < 0 are not
    stored. Replaces a strided scalar copy per phase for stride-2
    transposes. stream: as vtstore_stream's, for the rows stored whole
    (a row with masked stores is stored plainly: its last lines are
    read first either way). voffs: None, the 2*NW interleaved vectors of a
    row one after the other; or an integer array whose first 2*NW
    elements place vector e at arr[offs[i] + voffs[e]] (a chunk of input
    positions across line ends: cpu_patch.patch_cf)."""
    if not (_tile_args_ok(tile, accs, offs) and isinstance(buf, types.Array) and buf.dtype == arr.dtype
            and isinstance(count, types.Integer) and isinstance(stream, (types.NoneType, types.Boolean))
            and (isinstance(voffs, types.NoneType) or _rows_type_ok(voffs, 2 * tile.nvec))):
        return None
    nr, nw = tile.rows, tile.nvec
    isz = arr.dtype.bitwidth // 8
    streamed = not isinstance(stream, types.NoneType)

    def impl(context, builder, sig, args):
        i64 = ir.IntType(64)
        vty = context.get_value_type(accs.dtype)
        n = vty.count
        base = builder.ptrtoint(context.make_array(sig.args[0])(context, builder, args[0]).data, i64)
        bbase = builder.ptrtoint(context.make_array(sig.args[3])(context, builder, args[3]).data, i64)
        os_ = _row_values(context, builder, sig.args[2], args[2], nr)
        vs = cgutils.unpack_tuple(builder, args[4], accs.count)
        cnt = context.cast(builder, args[5], sig.args[5], types.int64)
        zero = ir.Constant(i64, 0)
        if isinstance(voffs, types.NoneType):
            at = [ir.Constant(i64, e * n) for e in range(2 * nw)]
        else:
            at = _row_values(context, builder, sig.args[7], args[7], 2 * nw)
        lo, hi = _zip_masks(n)
        mstore = _masked_store(builder, vty, arr.dtype.bitwidth)
        full = builder.icmp_signed(">=", cnt, ir.Constant(i64, 2 * nw * n))

        def ptr(b, elems):
            return builder.inttoptr(builder.add(b, ir.Constant(i64, elems * isz)), vty.as_pointer())

        def vptr(row, e):
            return builder.inttoptr(builder.add(row, builder.mul(at[e], ir.Constant(i64, isz))), vty.as_pointer())

        def rows_zipped(store):
            for i in range(nr):
                with builder.if_then(builder.icmp_signed(">=", os_[i], zero), likely=True):
                    row = builder.add(base, builder.mul(os_[i], ir.Constant(i64, isz)))
                    for j in range(nw):
                        a = builder.load(ptr(bbase, (i * nw + j) * n), align=isz)
                        b = vs[i * nw + j]
                        for e, m in enumerate((lo, hi)):
                            v = builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(ir.IntType(32), n), m))
                            store(2 * j + e, v, vptr(row, 2 * j + e))
        # the test of count once per tile, each vector's mask once for all
        # rows (as vtstore)
        with builder.if_else(full, likely=True) as (whole, part):
            with whole:
                rows_zipped(lambda e, v, p: _vector_store(builder, v, p, isz, streamed))
            with part:
                masks = [_range_mask(builder, n, zero, builder.sub(cnt, ir.Constant(i64, e * n)))
                         for e in range(2 * nw)]
                rows_zipped(lambda e, v, p: builder.call(mstore, [v, p, ir.Constant(ir.IntType(32), isz), masks[e]]))
        return context.get_dummy_value()
    return types.void(arr, tile, offs, buf, accs, count, stream, voffs), impl


def _vec_of(arr):
    """The host-width vector type of arr's dtype."""
    return Vec(arr.dtype, VBYTES)


@intrinsic
def vsplat(typingctx, arr, value):
    """A host-width vector of arr's dtype with every lane `value`."""
    vt = _vec_of(arr)

    def impl(context, builder, sig, args):
        v = context.cast(builder, args[1], sig.args[1], arr.dtype)
        return _splat(builder, context.get_value_type(vt), v)
    return vt(arr, value), impl


def _load_first(builder, vty, ptr, n, isz):
    """The vector at ptr; when n < lanes only lanes [0, n) are read (masked,
    the others 0): a plain load for whole vectors (masked accesses cost
    several times more on AVX2). n: i64."""
    i64 = ir.IntType(64)
    with builder.if_else(builder.icmp_signed(">=", n, ir.Constant(i64, vty.count))) as (whole, part):
        with whole:
            bb_w = builder.block
            v_w = builder.load(ptr, align=isz)
        with part:
            bb_p = builder.block
            mask = _range_mask(builder, vty.count, ir.Constant(i64, 0), n)
            v_p = builder.call(_masked_load(builder, vty, isz * 8),
                               [ptr, ir.Constant(ir.IntType(32), isz), mask, ir.Constant(vty, None)])
    phi = builder.phi(vty)
    phi.add_incoming(v_w, bb_w)
    phi.add_incoming(v_p, bb_p)
    return phi


def _store_first(builder, v, ptr, n, isz):
    """Stores lanes [0, min(n, lanes)) of v at ptr (a plain store for a
    whole vector). n: i64."""
    i64 = ir.IntType(64)
    with builder.if_else(builder.icmp_signed(">=", n, ir.Constant(i64, v.type.count))) as (whole, part):
        with whole:
            builder.store(v, ptr, align=isz)
        with part:
            mask = _range_mask(builder, v.type.count, ir.Constant(i64, 0), n)
            builder.call(_masked_store(builder, v.type, isz * 8), [v, ptr, ir.Constant(ir.IntType(32), isz), mask])


@intrinsic
def vloadn(typingctx, arr, p, n):
    """The vector at byte address p; when n < lanes only lanes [0, n) are
    read (the others 0; `_load_first`)."""
    vt = _vec_of(arr)
    isz = arr.dtype.bitwidth // 8

    def impl(context, builder, sig, args):
        vty = context.get_value_type(vt)
        ptr = builder.inttoptr(context.cast(builder, args[1], sig.args[1], types.int64), vty.as_pointer())
        return _load_first(builder, vty, ptr, context.cast(builder, args[2], sig.args[2], types.int64), isz)
    return vt(arr, p, n), impl


@intrinsic
def vstoren(typingctx, arr, p, v, n):
    """Stores lanes [0, min(n, lanes)) of v at byte address p
    (`_store_first`)."""
    isz = arr.dtype.bitwidth // 8

    def impl(context, builder, sig, args):
        vty = context.get_value_type(sig.args[2])
        ptr = builder.inttoptr(context.cast(builder, args[1], sig.args[1], types.int64), vty.as_pointer())
        _store_first(builder, args[2], ptr, context.cast(builder, args[3], sig.args[3], types.int64), isz)
        return context.get_dummy_value()
    return types.void(arr, p, v, n), impl


def _copy2(builder, vty, isz, d, s_, n, st):
    """vcopy2's copy (all i64 values): 2 vectors vty to byte address d from
    elements 0, st, 2 st, ... at s_, the first n of them, zeros after."""
    i64, i32 = ir.IntType(64), ir.IntType(32)
    nl = vty.count
    vsz = ir.Constant(i64, nl * isz)
    v64 = ir.VectorType(i64, nl)
    pty = ir.VectorType(ir.IntType(8).as_pointer(), nl)
    gather = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vty, [pty, i32, ir.VectorType(ir.IntType(1), nl), vty]),
        f"llvm.masked.gather.v{nl}f{isz * 8}.v{nl}p0")
    lanes = builder.mul(ir.Constant(v64, list(range(nl))), _splat(builder, v64, builder.mul(st, ir.Constant(i64, isz))))
    for h in range(2):
        m = builder.sub(n, ir.Constant(i64, h * nl))
        dptr = builder.inttoptr(builder.add(d, builder.mul(ir.Constant(i64, h), vsz)), vty.as_pointer())
        with builder.if_else(builder.icmp_signed("==", st, ir.Constant(i64, 1)), likely=True) as (one, strided):
            with one:
                src = builder.add(s_, builder.mul(ir.Constant(i64, h), vsz))
                builder.store(_load_first(builder, vty, builder.inttoptr(src, vty.as_pointer()), m, isz),
                              dptr, align=isz)
            with strided:
                src = builder.add(s_, builder.mul(ir.Constant(i64, h * nl * isz), st))
                ptrs = builder.inttoptr(builder.add(_splat(builder, v64, src), lanes), pty)
                v = builder.call(gather, [ptrs, ir.Constant(i32, isz),
                                          _range_mask(builder, nl, ir.Constant(i64, 0), m), ir.Constant(vty, None)])
                builder.store(v, dptr, align=isz)


@intrinsic
def vcopy2(typingctx, arr, tile, dst, src, n, step):
    """Two vectors of tile.vbytes (2 V elements of arr's dtype) to byte
    address dst from elements 0, step, 2 step, ... at byte address src:
    elements [0, n) copied, the rest of the 2 V zero (src is not read past
    element n - 1). Contiguous loads for step 1, else gathers. The width is
    the tile's, not the host's: a kernel compiled for another width (tests)
    copies what its tile holds."""
    if not isinstance(tile, TileType):
        return None
    vt = Vec(arr.dtype, tile.vbytes)
    isz = arr.dtype.bitwidth // 8

    def impl(context, builder, sig, args):
        d, s_, n, st = (context.cast(builder, args[i], sig.args[i], types.int64) for i in (2, 3, 4, 5))
        _copy2(builder, context.get_value_type(vt), isz, d, s_, n, st)
        return context.get_dummy_value()
    return types.void(arr, tile, dst, src, n, step), impl


@intrinsic
def vpack_rows(typingctx, arr, tile, dst, src, W, C, cstep, row_len, mw):
    """C input rows of W elements, row c at byte address src + c*cstep
    (elements contiguous), each to mw sub-rows of row_len elements at dst
    + (c*mw + r)*row_len*itemsize: sub-row r gets columns r, r + mw, ...
    (vcopy2 by 2 vectors; zeros after a sub-row's last column up to whole
    2 vectors, so row_len must hold them). mw == 2 (W stride 2): 4 vectors
    of each row's columns loaded and split into their even and odd lanes
    by shuffles, instead of vcopy2's gathers (which LLVM turns into a
    branch and a scalar load per lane where gathers are slow: 11 % of an
    NCHW 112^2 x 128 stride-2 convolution's time)."""
    if not isinstance(tile, TileType):
        return None
    vt = Vec(arr.dtype, tile.vbytes)
    isz = arr.dtype.bitwidth // 8

    def impl(context, builder, sig, args):
        i64 = ir.IntType(64)
        vty = context.get_value_type(vt)
        d, s_, nW, nC, cst, rl, mw_ = (context.cast(builder, args[i], sig.args[i], types.int64)
                                       for i in range(2, 9))
        nl = vty.count
        blk = ir.Constant(i64, 2 * nl)
        one = ir.Constant(i64, 1)
        two = ir.Constant(i64, 2)
        c_isz = ir.Constant(i64, isz)
        rbytes = builder.mul(rl, c_isz)

        def at(base, elems):
            return builder.inttoptr(builder.add(base, builder.mul(elems, c_isz)), vty.as_pointer())
        with builder.if_else(builder.icmp_signed("==", mw_, two)) as (split, general):
            with split:
                even = ir.Constant(ir.VectorType(ir.IntType(32), nl), list(range(0, 2 * nl, 2)))
                odd = ir.Constant(ir.VectorType(ir.IntType(32), nl), list(range(1, 2 * nl, 2)))
                n0 = builder.sdiv(builder.add(nW, one), two)  # sub-row 0's columns
                nblk = builder.sdiv(builder.sub(builder.add(n0, blk), one), blk)
                with cgutils.for_range(builder, nC) as c_loop:
                    src_c = builder.add(s_, builder.mul(c_loop.index, cst))
                    row0 = builder.add(d, builder.mul(builder.mul(c_loop.index, two), rbytes))
                    row1 = builder.add(row0, rbytes)
                    with cgutils.for_range(builder, nblk) as j_loop:
                        j = builder.mul(j_loop.index, blk)  # sub-row column; input column 2 j
                        left = builder.sub(nW, builder.mul(j, two))
                        v = [_load_first(builder, vty, at(src_c, builder.add(builder.mul(j, two), ir.Constant(i64, k * nl))),
                                         builder.sub(left, ir.Constant(i64, k * nl)), isz) for k in range(4)]
                        for h in range(2):
                            col = builder.add(j, ir.Constant(i64, h * nl))
                            builder.store(builder.shuffle_vector(v[2 * h], v[2 * h + 1], even), at(row0, col), align=isz)
                            builder.store(builder.shuffle_vector(v[2 * h], v[2 * h + 1], odd), at(row1, col), align=isz)
            with general:
                with cgutils.for_range(builder, nC) as c_loop:
                    src_c = builder.add(s_, builder.mul(c_loop.index, cst))
                    with cgutils.for_range(builder, mw_) as r_loop:
                        r = r_loop.index
                        n = builder.sdiv(builder.sub(builder.add(nW, mw_), builder.add(r, one)), mw_)  # ceil((W-r)/mw)
                        row = builder.add(d, builder.mul(builder.add(builder.mul(c_loop.index, mw_), r), rbytes))
                        nblk = builder.sdiv(builder.sub(builder.add(n, blk), one), blk)
                        with cgutils.for_range(builder, nblk) as j_loop:
                            j = builder.mul(j_loop.index, blk)
                            _copy2(builder, vty, isz, builder.add(row, builder.mul(j, c_isz)),
                                   builder.add(src_c, builder.mul(builder.add(builder.mul(j, mw_), r), c_isz)),
                                   builder.sub(n, j), mw_)
        return context.get_dummy_value()
    return types.void(arr, tile, dst, src, W, C, cstep, row_len, mw), impl


def _make_vcopy(whole):
    def vcopy(typingctx, arr, tile, dst, src, n):
        """vcopyn: elements [0, min(n, V)) of arr's dtype from byte address
        src to dst, V the tile's lanes: one vector, plain or masked
        (`_load_first`, `_store_first`); nothing past element n - 1 is read
        or written.
        vcopy_over: the same read, stored as one whole vector (lanes from n
        on written as 0, so dst needs room for V elements), for copies whose
        next store overwrites that rest (masked stores cost several times a
        plain one)."""
        if not isinstance(tile, TileType):
            return None
        vt = Vec(arr.dtype, tile.vbytes)
        isz = arr.dtype.bitwidth // 8

        def impl(context, builder, sig, args):
            vty = context.get_value_type(vt)
            d, s_, n = (context.cast(builder, args[i], sig.args[i], types.int64) for i in (2, 3, 4))
            v = _load_first(builder, vty, builder.inttoptr(s_, vty.as_pointer()), n, isz)
            if whole:
                builder.store(v, builder.inttoptr(d, vty.as_pointer()), align=isz)
            else:
                _store_first(builder, v, builder.inttoptr(d, vty.as_pointer()), n, isz)
            return context.get_dummy_value()
        return types.void(arr, tile, dst, src, n), impl
    vcopy.__name__ = "vcopy_over" if whole else "vcopyn"
    return intrinsic(vcopy)


vcopyn = _make_vcopy(False)
vcopy_over = _make_vcopy(True)


def _transpose_blocks(builder, rows):
    """Transposes, in place, each P x P block of the P vectors `rows` (P a
    power of two, at most their lanes): after it, lane g * P + k of vector
    i is what lane g * P + i of vector k was. log2(P) stages of P
    two-source shuffles, each swapping the off-diagonal h x h blocks of
    row pairs (i, i + h), h = P/2, P/4, ..., 1."""
    P = len(rows)
    nl = rows[0].type.count
    h = P // 2
    while h:
        # lane j of the first row: a[j] where j & h == 0, else b[j - h];
        # of the second: a[j + h] where j & h == 0, else b[j]
        lo = ir.Constant(ir.VectorType(ir.IntType(32), nl),
                         [j if not j & h else nl + j - h for j in range(nl)])
        hi = ir.Constant(ir.VectorType(ir.IntType(32), nl),
                         [j + h if not j & h else nl + j for j in range(nl)])
        for i in range(P):
            if not i & h:
                a, b = rows[i], rows[i + h]
                rows[i] = builder.shuffle_vector(a, b, lo)
                rows[i + h] = builder.shuffle_vector(a, b, hi)
        h //= 2


def _vtranspose(builder, vty, isz, d, s_, ss, ds, n, nread):
    """vtranspose_block's code: rows read up to element nread - 1 (i64),
    the first n vectors stored."""
    i64 = ir.IntType(64)
    nl = vty.count
    rows = [_load_first(builder, vty, builder.inttoptr(builder.add(s_, builder.mul(ss, ir.Constant(i64, k))),
                                                       vty.as_pointer()), nread, isz) for k in range(nl)]
    _transpose_blocks(builder, rows)
    for j in range(nl):
        with builder.if_then(builder.icmp_signed(">", n, ir.Constant(i64, j)), likely=True):
            builder.store(rows[j], builder.inttoptr(builder.add(d, builder.mul(ds, ir.Constant(i64, j))),
                                                    vty.as_pointer()), align=isz)


@intrinsic
def vtranspose_block(typingctx, arr, tile, dst, src, sstride, dstride, n):
    """A V x V block (V = the tile's lanes of arr's dtype) transposed: row
    k of V elements at byte address src + k * sstride becomes column k of
    the V vectors stored at dst + j * dstride, for j < n (n <= V: the rows
    are read up to element n - 1 only). In registers: log2(V) stages of V
    two-source shuffles, each swapping the off-diagonal h x h blocks of
    row pairs (i, i + h), h = V/2, V/4, ..., 1."""
    if not isinstance(tile, TileType):
        return None
    vt = Vec(arr.dtype, tile.vbytes)
    isz = arr.dtype.bitwidth // 8

    def impl(context, builder, sig, args):
        d, s_, ss, ds, n = (context.cast(builder, args[i], sig.args[i], types.int64) for i in range(2, 7))
        _vtranspose(builder, context.get_value_type(vt), isz, d, s_, ss, ds, n, n)
        return context.get_dummy_value()
    return types.void(arr, tile, dst, src, sstride, dstride, n), impl


@intrinsic
def vtranspose_over(typingctx, arr, tile, dst, src, sstride, dstride, n, end):
    """vtranspose_block, its rows of n < V elements read as whole vectors
    (plain loads, the lanes past n unused) where the last row's vector
    ends at or before byte address `end` (other data follows the rows),
    masked otherwise: AVX-512's masked loads took 4x the time of plain ones
    on Zen 5 (cpu_pw, benchmarks/NOTES.md section 75)."""
    if not isinstance(tile, TileType):
        return None
    vt = Vec(arr.dtype, tile.vbytes)
    isz = arr.dtype.bitwidth // 8

    def impl(context, builder, sig, args):
        i64 = ir.IntType(64)
        vty = context.get_value_type(vt)
        nl = vty.count
        d, s_, ss, ds, n, e = (context.cast(builder, args[i], sig.args[i], types.int64) for i in range(2, 8))
        last = builder.add(builder.add(s_, builder.mul(ss, ir.Constant(i64, nl - 1))), ir.Constant(i64, nl * isz))
        nread = builder.select(builder.icmp_signed("<=", last, e), ir.Constant(i64, nl), n)
        _vtranspose(builder, vty, isz, d, s_, ss, ds, n, nread)
        return context.get_dummy_value()
    return types.void(arr, tile, dst, src, sstride, dstride, n, end), impl


@intrinsic
def vrun_transposed(typingctx, arr, accs, tile, src, sstride, K, q):
    """The pointwise micro-kernel on pixel-major input, transposed in
    registers: NW = tile.nvec groups of V consecutive pixels (pixel p's
    channels at byte address src + p * sstride), K whole chunks of V
    channels. Chunk k: each group's V x V block (its pixels' channels
    [k V, k V + V)) is loaded as V whole vectors and transposed, so that
    vector m holds channel k V + m of the group's pixels; then, for m in
    order and each row i < tile.rows,
        accs[i*NW + j] = fma(bcast(w), X_m, accs[i*NW + j]),
    w at byte address q + ((k V + m) * tile.rows + i) * itemsize: each
    output's chain over the channels in order, as vrun_cols_whole over a
    transposed copy (cpu_pw.pointwise_cl), with no copy.
    Tiles of at most 4 accumulators only (cpu_pw's fused tiles, 1 x 4,
    2 x 2, 4 x 1): for others accs are returned unchanged and no code is
    emitted (their broadcast weights, the transposed rows and the
    accumulators do not fit the registers together)."""
    if not _vrun_tile_ok(tile, accs):
        return None
    nr, nw = tile.rows, tile.nvec
    isz = arr.dtype.bitwidth // 8

    def impl(context, builder, sig, args):
        if nr * nw > 4:
            return args[1]
        i64 = ir.IntType(64)
        vty = context.get_value_type(accs.dtype)
        sty = context.get_value_type(arr.dtype)
        n = vty.count
        src_, ss, nK, q_ = (context.cast(builder, args[i], sig.args[i], types.int64) for i in range(3, 7))
        acc0 = cgutils.unpack_tuple(builder, args[1], accs.count)
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vty, [vty] * 3), f"llvm.fma.v{n}f{arr.dtype.bitwidth}")

        def step(k, acc):
            base = builder.add(src_, builder.mul(k, ir.Constant(i64, n * isz)))
            qk = builder.add(q_, builder.mul(k, ir.Constant(i64, n * nr * isz)))
            ws = [[_splat(builder, vty, builder.load(
                builder.inttoptr(builder.add(qk, ir.Constant(i64, (m * nr + i) * isz)), sty.as_pointer()),
                align=isz)) for i in range(nr)] for m in range(n)]
            new = list(acc)
            # a group at a time: its V rows and the accumulators live, not
            # every group's rows at once (which spilled)
            for j in range(nw):
                rows = [builder.load(builder.inttoptr(builder.add(base, builder.mul(ss, ir.Constant(i64, j * n + r))),
                                                      vty.as_pointer()), align=isz) for r in range(n)]
                _transpose_blocks(builder, rows)
                for m in range(n):
                    for i in range(nr):
                        new[i * nw + j] = builder.call(fma, [ws[m][i], rows[m], new[i * nw + j]])
            return new

        acc = _counted_loop(builder, "vtr", nK, vty, acc0, step)
        return context.make_tuple(builder, accs, acc)
    return accs(arr, accs, tile, src, sstride, K, q), impl


@intrinsic
def prefetch(typingctx, p):
    """A hint to bring the cache line at byte address p into L1 (no fault
    if p is not mapped): for strided reads the hardware prefetchers miss,
    e.g. one channel slice of every pixel of a wider array."""
    def impl(context, builder, sig, args):
        i32 = ir.IntType(32)
        ptr = builder.inttoptr(context.cast(builder, args[0], sig.args[0], types.int64), ir.IntType(8).as_pointer())
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32]),
                                            "llvm.prefetch.p0")
        builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()
    return types.void(p), impl


# exp for float32 vectors (Cephes' expf): x = n ln2 + r, |r| <= ln2 / 2,
# exp(r) by a degree-7 polynomial (Horner, one FMA per term), times 2^n from
# the exponent bits. Relative error about 1.2e-7 (1-2 ulp; libm: 0.5 ulp).
_EXP_HI = 88.72283935546875  # ln of the largest float32; above: +inf
_EXP_LO = -87.33654475  # ln of the smallest normal float32; below: 0 (no subnormal results)
_EXP_POLY = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1,
             5.0000001201e-1)


def _vexp_f32(builder, x):
    """exp of a <n x float> vector: NaN stays NaN, -inf and x < _EXP_LO give
    0, x > _EXP_HI gives +inf."""
    vty = x.type
    n = vty.count
    f32 = ir.FloatType()
    i32v = ir.VectorType(ir.IntType(32), n)

    def c(v):
        return ir.Constant(vty, [ir.Constant(f32, v)] * n)

    fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty] * 3), f"llvm.fma.v{n}f32")
    floor = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty]), f"llvm.floor.v{n}f32")
    xc = builder.select(builder.fcmp_ordered(">", x, c(_EXP_HI)), c(_EXP_HI), x)
    xc = builder.select(builder.fcmp_ordered("<", xc, c(_EXP_LO)), c(_EXP_LO), xc)
    fx = builder.call(floor, [builder.call(fma, [xc, c(1.44269504088896341), c(0.5)])])
    r = builder.call(fma, [fx, c(-0.693359375), xc])
    r = builder.call(fma, [fx, c(2.12194440e-4), r])
    p = c(_EXP_POLY[0])
    for k in _EXP_POLY[1:]:
        p = builder.call(fma, [p, r, c(k)])
    p = builder.call(fma, [p, builder.fmul(r, r), builder.fadd(r, c(1.0))])
    # 2^n as 2^(n >> 1) * 2^(n - (n >> 1)): each factor a normal float for
    # every n in [-126, 128] (the top of the range needs 2^128)
    ni = builder.fptosi(fx, i32v)
    n1 = builder.ashr(ni, ir.Constant(i32v, [1] * n))

    def pow2(e):
        return builder.bitcast(builder.shl(builder.add(e, ir.Constant(i32v, [127] * n)),
                                           ir.Constant(i32v, [23] * n)), vty)
    y = builder.fmul(builder.fmul(p, pow2(n1)), pow2(builder.sub(ni, n1)))
    y = builder.select(builder.fcmp_ordered("<", x, c(_EXP_LO)), c(0.0), y)
    y = builder.select(builder.fcmp_ordered(">", x, c(_EXP_HI)), c(float("inf")), y)
    return builder.select(builder.fcmp_unordered("uno", x, x), x, y)


@intrinsic
def exp_inplace(typingctx, arr, p, n):
    """The n elements of arr's dtype at byte address p become their exp:
    float32 a vector at a time (`_vexp_f32`, the tail masked), float64 one
    llvm.exp each (what math.exp compiles to in Numba). For softmax, whose
    float32 exps were a scalar libm call each (no vector math library in
    Numba here): 64^3 x 2 channels took 2 ms, most of it in exp."""
    if not (isinstance(arr, types.Array) and arr.dtype in (types.float32, types.float64)):
        return None

    def impl64(context, builder, sig, args):
        i64 = ir.IntType(64)
        f64 = ir.DoubleType()
        p0 = context.cast(builder, args[1], sig.args[1], types.int64)
        nn = context.cast(builder, args[2], sig.args[2], types.int64)
        exp = cgutils.get_or_insert_function(builder.module, ir.FunctionType(f64, [f64]), "llvm.exp.f64")
        with cgutils.for_range(builder, nn) as loop:
            ptr = builder.inttoptr(builder.add(p0, builder.mul(loop.index, ir.Constant(i64, 8))), f64.as_pointer())
            builder.store(builder.call(exp, [builder.load(ptr)]), ptr)
        return context.get_dummy_value()

    def impl(context, builder, sig, args):
        i64 = ir.IntType(64)
        vty = context.get_value_type(Vec(arr.dtype, VBYTES))
        p0 = context.cast(builder, args[1], sig.args[1], types.int64)
        nn = context.cast(builder, args[2], sig.args[2], types.int64)
        with cgutils.for_range_slice(builder, ir.Constant(i64, 0), nn, ir.Constant(i64, vty.count)) as (k, _):
            ptr = builder.inttoptr(builder.add(p0, builder.mul(k, ir.Constant(i64, 4))), vty.as_pointer())
            left = builder.sub(nn, k)
            _store_first(builder, _vexp_f32(builder, _load_first(builder, vty, ptr, left, 4)), ptr, left, 4)
        return context.get_dummy_value()
    return types.void(arr, p, n), (impl if arr.dtype == types.float32 else impl64)


@intrinsic
def vmaxnan(typingctx, a, b):
    """Lane-wise max(a, b) that propagates a NaN of b (a NaN in a stays,
    since nothing compares greater): b where b > a or b is NaN, else a.
    Running it from -inf over a window gives NumPy's max, NaN included."""
    if not (isinstance(a, Vec) and a == b):
        return None

    def impl(context, builder, sig, args):
        x, y = args
        take = builder.or_(builder.fcmp_ordered(">", y, x), builder.fcmp_unordered("uno", y, y))
        return builder.select(take, y, x)
    return a(a, b), impl


@intrinsic
def vtaffine(typingctx, arr, accs, tile, pb, pa, pt, relu):
    """Per output channel, for a tile of tile.rows rows x NW = tile.nvec
    vectors (row i's vectors are accs[i*NW : (i+1)*NW]): v = (v + b) * a + t, then
    v = 0 where relu and v < 0 (NaN stays NaN). b, a, t: NW vectors at
    byte addresses pb, pa, pt. The fused form of a conv layer's bias,
    inference BatchNorm and ReLU, applied while the tile is in registers."""
    if not (isinstance(tile, TileType) and accs.count == tile.rows * tile.nvec):
        return None
    nw = tile.nvec
    vbytes = accs.dtype.vbytes

    def impl(context, builder, sig, args):
        i64 = ir.IntType(64)
        vty = context.get_value_type(accs.dtype)
        vs = cgutils.unpack_tuple(builder, args[1], accs.count)

        def vec(p, j):
            p = context.cast(builder, p, types.intp, types.int64)
            p = builder.add(p, ir.Constant(i64, j * vbytes))
            return builder.load(builder.inttoptr(p, vty.as_pointer()), align=arr.dtype.bitwidth // 8)
        b = [vec(args[3], j) for j in range(nw)]
        a = [vec(args[4], j) for j in range(nw)]
        t = [vec(args[5], j) for j in range(nw)]
        zero = ir.Constant(vty, None)
        on = _splat(builder, ir.VectorType(ir.IntType(1), vty.count), args[6])
        out = []
        for k, v in enumerate(vs):
            j = k % nw
            v = builder.fadd(builder.fmul(builder.fadd(v, b[j]), a[j]), t[j])
            neg = builder.and_(builder.fcmp_ordered("<", v, zero), on)
            out.append(builder.select(neg, zero, v))
        return context.make_tuple(builder, accs, out)
    return accs(arr, accs, tile, pb, pa, pt, relu), impl


def _vrun_cols_impl(accs, tile, arr, gather, masked, part, period, table=False, table_lanes=None):
    """vrun_cols' (and vrun_lanes') code: see vrun_cols. period: None
    (one weight per row, broadcast), or P: P weights per row, lane l
    getting weight l % P. table: step k's input offset is the k-th int64
    at byte address cstep + 16 k, not k * cstep (vrun_cols_table).
    table_lanes (with table): vector j's lanes kept where their bits in
    the int32 at byte address lo + (the int64 at cstep + 16 k + 8) + 4 j
    are set, the others 0: "select", whole vectors loaded and the lanes
    cleared in registers; "load", masked loads (cleared lanes not read)."""
    nr, nw = tile.rows, tile.nvec
    nru = nr if part is None else min(part, nr)  # rows computed
    isz = arr.dtype.bitwidth // 8
    P = 1 if period is None else period

    def impl(context, builder, sig, args):
        i64, i32 = ir.IntType(64), ir.IntType(32)
        vty = context.get_value_type(accs.dtype)
        sty = context.get_value_type(arr.dtype)
        n = vty.count
        p, cstep, xw, lo, hi, q, nK = (context.cast(builder, args[i], sig.args[i], types.int64)
                                       for i in range(3, 10))
        acc0 = cgutils.unpack_tuple(builder, args[1], accs.count)
        starts = [builder.add(p, builder.mul(xw, ir.Constant(i64, j if not (gather or masked) else j * n)))
                  for j in range(nw)]
        zero = ir.Constant(vty, None)
        align = ir.Constant(i32, isz)
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vty, [vty] * 3), f"llvm.fma.v{n}f{arr.dtype.bitwidth}")
        if gather or masked:
            masks = [_range_mask(builder, n, builder.sub(lo, ir.Constant(i64, j * n)),
                                 builder.sub(hi, ir.Constant(i64, j * n))) for j in range(nw)]
        if gather:
            v64 = ir.VectorType(i64, n)
            v32 = ir.VectorType(i32, n)
            # 32-bit lane offsets (callers keep V*xw below 2**31): LLVM
            # then selects the dword-index gather, 16 float32 lanes at once
            lanes = builder.sext(builder.mul(ir.Constant(v32, list(range(n))),
                                             _splat(builder, v32, builder.trunc(xw, i32))), v64)
            pty = ir.VectorType(ir.IntType(8).as_pointer(), n)
            fnty = ir.FunctionType(vty, [pty, i32, masks[0].type, vty])
            ld = cgutils.get_or_insert_function(
                builder.module, fnty, f"llvm.masked.gather.v{n}f{arr.dtype.bitwidth}.v{n}p0")

            def load(addr, j):
                ptrs = builder.inttoptr(builder.add(_splat(builder, v64, addr), lanes), pty)
                return builder.call(ld, [ptrs, align, masks[j], zero])
        elif masked:
            ld = _masked_load(builder, vty, arr.dtype.bitwidth)

            def load(addr, j):
                return builder.call(ld, [builder.inttoptr(addr, vty.as_pointer()), align, masks[j], zero])
        else:
            def load(addr, j):
                return builder.load(builder.inttoptr(addr, vty.as_pointer()), align=isz)

        gty = ir.VectorType(sty, P)
        spread = ir.Constant(ir.VectorType(i32, n), [l % P for l in range(n)])

        def weights(wa):
            if P == 1:
                return _splat(builder, vty, builder.load(builder.inttoptr(wa, sty.as_pointer()), align=isz))
            g = builder.load(builder.inttoptr(wa, gty.as_pointer()), align=isz)
            return builder.shuffle_vector(g, ir.Constant(gty, ir.Undefined), spread)

        def step(k, acc):
            if table:
                # step k: (input offset, byte offset of its lane masks) at cstep + 16 k
                at = builder.add(cstep, builder.mul(k, ir.Constant(i64, 16)))
                off = builder.load(builder.inttoptr(at, i64.as_pointer()), align=8)
            else:
                off = builder.mul(k, cstep)
            if table and table_lanes:
                moff = builder.add(lo, builder.load(builder.inttoptr(builder.add(at, ir.Constant(i64, 8)),
                                                                     i64.as_pointer()), align=8))
                xs = []
                for j, s in enumerate(starts):
                    bits = builder.load(builder.inttoptr(builder.add(moff, ir.Constant(i64, 4 * j)), i32.as_pointer()),
                                        align=4)
                    m = builder.bitcast(builder.trunc(bits, ir.IntType(n)), ir.VectorType(ir.IntType(1), n))
                    ptr = builder.inttoptr(builder.add(s, off), vty.as_pointer())
                    if table_lanes == "load":
                        xs.append(builder.call(_masked_load(builder, vty, arr.dtype.bitwidth), [ptr, align, m, zero]))
                    else:
                        xs.append(builder.select(m, builder.load(ptr, align=isz), zero))
            else:
                xs = [load(builder.add(s, off), j) for j, s in enumerate(starts)]
            qk = builder.add(q, builder.mul(k, ir.Constant(i64, nr * P * isz)))
            new = []
            for i in range(nru):
                b = weights(builder.add(qk, ir.Constant(i64, i * P * isz)))
                new += [builder.call(fma, [b, x, acc[i * nw + j]]) for j, x in enumerate(xs)]
            return new

        acc = _counted_loop(builder, "vcols", nK, vty, acc0[:nru * nw], step)
        return context.make_tuple(builder, accs, acc + list(acc0[nru * nw:]))
    return impl


def _vrun_tile_ok(tile, accs):
    return (isinstance(tile, TileType) and isinstance(accs, types.UniTuple) and isinstance(accs.dtype, Vec)
            and accs.count == tile.rows * tile.nvec)


def _make_vrun_cols(gather, masked=True, part=None):
    def vrun_cols(typingctx, arr, accs, tile, p, cstep, xw, lo, hi, q, K):
        """The vectors-along-W micro-kernel as one LLVM loop (see vrun): K
        reduction steps; at step k NW = tile.nvec input vectors, x_j's lane
        l from byte address p + k*cstep + (j*V + l)*xw, where j*V + l is in
        [lo, hi) (other lanes 0, not read), and for each row i < tile.rows
        the weight at q + (k*NR + i)*itemsize:
            accs[i*NW + j] = fma(bcast(w_i), x_j, accs[i*NW + j]).
        Contiguous masked loads, or gathers (lane step xw bytes) for
        vrun_cols_gather, or for vrun_cols_whole plain loads of whole
        vectors (every lane read; lo and hi ignored), x_j from byte address
        p + k*cstep + j*xw (xw: bytes between the vectors, V*itemsize for
        one row, more for a tile whose vectors are different output rows):
        no mask registers, so the 6 x 2 AVX2 tile's 12 accumulators stay
        in registers. (A
        plain-load loop beside the masked one in vrun_cols, taken when
        [lo, hi) covers every lane, made the 6 x 2 tile's channels-first
        calls 10-30 % slower: benchmarks/NOTES.md section 52.)
        vrun_cols_part: vrun_cols_whole for the first PART_ROWS rows only
        (weights still tile.rows apart; the other accumulators unchanged),
        for a last block of at most PART_ROWS output channels."""
        if not _vrun_tile_ok(tile, accs):
            return None
        return (accs(arr, accs, tile, p, cstep, xw, lo, hi, q, K),
                _vrun_cols_impl(accs, tile, arr, gather, masked, part, None))
    vrun_cols.__name__ = ("vrun_cols_gather" if gather else "vrun_cols" if masked else
                          "vrun_cols_whole" if part is None else "vrun_cols_part")
    return intrinsic(vrun_cols)


vrun_cols = _make_vrun_cols(False)
vrun_cols_gather = _make_vrun_cols(True)
vrun_cols_whole = _make_vrun_cols(False, masked=False)
# rows of wv_kernel's last output-channel block computed apart (fewer than
# a 6- or 8-row tile's): the 4 x 2 loop's 8 accumulators just cover the FMA
# latency
PART_ROWS = 4
vrun_cols_part = _make_vrun_cols(False, masked=False, part=PART_ROWS)


def _make_vrun_cols_table(lanes):
    def vrun_cols_table(typingctx, arr, accs, tile, p, steps, xw, q, K, masks):
        """vrun_cols_whole with step k's input vectors at byte address p +
        steps[2k] + j*xw (steps: the byte address of K int64 pairs), for
        reductions whose steps are not evenly spaced (cpu_short.short_cf:
        the (kw, c) steps of a channels-first row, c the planes apart, kw
        the columns). vrun_cols_table_select: lane l of vector j kept where
        bit l of the int32 at byte address masks + steps[2k+1] + 4 j is
        set, else 0, by plain loads (every lane's element must be
        readable); vrun_cols_table_masked: the same by masked loads;
        vrun_cols_table ignores masks."""
        if not _vrun_tile_ok(tile, accs):
            return None
        impl = _vrun_cols_impl(accs, tile, arr, False, False, None, None, table=True, table_lanes=lanes)

        def wrapped(context, builder, sig, args):
            # vrun_cols' argument order: the masks' address as lo, hi unused
            zero = context.get_constant(types.int64, 0)
            full = list(args[:6]) + [args[8], zero] + list(args[6:8])
            fsig = types.void(*(list(sig.args[:6]) + [sig.args[8], types.int64] + list(sig.args[6:8])))
            return impl(context, builder, fsig, full)
        return accs(arr, accs, tile, p, steps, xw, q, K, masks), wrapped
    vrun_cols_table.__name__ = {None: "vrun_cols_table", "select": "vrun_cols_table_select",
                                "load": "vrun_cols_table_masked"}[lanes]
    return intrinsic(vrun_cols_table)


vrun_cols_table = _make_vrun_cols_table(None)
vrun_cols_table_select = _make_vrun_cols_table("select")
vrun_cols_table_masked = _make_vrun_cols_table("load")


@intrinsic
def vrun_lanes(typingctx, arr, accs, tile, p, cstep, xw, lo, hi, q, K, period):
    """vrun_cols_whole with weights that repeat along the lanes with a
    period P (cpu_cfgather: a strided transpose's output columns of P = sw
    W phases in one vector): for each row i < tile.rows the P weights at q
    + (k*NR + i)*P*itemsize, lane l getting weight l % P (a broadcast of P
    elements: vbroadcastss, vbroadcastsd for float32 pairs, ...); lo and hi
    ignored. period: a tuple of P items (its length is the compile-time
    P)."""
    if not (_vrun_tile_ok(tile, accs) and isinstance(period, types.UniTuple)):
        return None
    return (accs(arr, accs, tile, p, cstep, xw, lo, hi, q, K, period),
            _vrun_cols_impl(accs, tile, arr, False, False, None, period.count))


@intrinsic
def vzip2(typingctx, arr, tile, dst, src0, src1, n):
    """n pairs of arr's dtype interleaved: dst[2 m] = src0[m], dst[2 m + 1]
    = src1[m] for m < n (byte addresses), V pairs at a time (two vector
    loads, two shuffles, two whole stores; V the tile's lanes), the last
    pairs one by one."""
    if not isinstance(tile, TileType):
        return None
    vt = Vec(arr.dtype, tile.vbytes)
    isz = arr.dtype.bitwidth // 8

    def impl(context, builder, sig, args):
        i64, i32 = ir.IntType(64), ir.IntType(32)
        vty = context.get_value_type(vt)
        sty = context.get_value_type(arr.dtype)
        nl = vty.count
        d, a, b, cnt = (context.cast(builder, args[i], sig.args[i], types.int64) for i in (2, 3, 4, 5))
        lo, hi = (ir.Constant(ir.VectorType(i32, nl), m) for m in _zip_masks(nl))
        blocks = builder.sdiv(cnt, ir.Constant(i64, nl))
        start = builder.mul(blocks, ir.Constant(i64, nl))
        step = ir.Constant(i64, nl * isz)
        pre = builder.block
        head = builder.append_basic_block("zip.head")
        body = builder.append_basic_block("zip.body")
        tail = builder.append_basic_block("zip.tail")
        tbody = builder.append_basic_block("zip.tbody")
        done = builder.append_basic_block("zip.done")
        builder.branch(head)
        builder.position_at_end(head)
        k = builder.phi(i64)
        k.add_incoming(ir.Constant(i64, 0), pre)
        builder.cbranch(builder.icmp_signed("<", k, blocks), body, tail)
        builder.position_at_end(body)
        off = builder.mul(k, step)
        va = builder.load(builder.inttoptr(builder.add(a, off), vty.as_pointer()), align=isz)
        vb = builder.load(builder.inttoptr(builder.add(b, off), vty.as_pointer()), align=isz)
        dk = builder.add(d, builder.add(off, off))
        builder.store(builder.shuffle_vector(va, vb, lo), builder.inttoptr(dk, vty.as_pointer()), align=isz)
        builder.store(builder.shuffle_vector(va, vb, hi), builder.inttoptr(builder.add(dk, step), vty.as_pointer()),
                      align=isz)
        k.add_incoming(builder.add(k, ir.Constant(i64, 1)), body)
        builder.branch(head)
        builder.position_at_end(tail)
        m = builder.phi(i64)
        m.add_incoming(start, head)
        builder.cbranch(builder.icmp_signed("<", m, cnt), tbody, done)
        builder.position_at_end(tbody)
        eb = ir.Constant(i64, isz)
        moff = builder.mul(m, eb)
        ea = builder.load(builder.inttoptr(builder.add(a, moff), sty.as_pointer()), align=isz)
        ebv = builder.load(builder.inttoptr(builder.add(b, moff), sty.as_pointer()), align=isz)
        dm = builder.add(d, builder.add(moff, moff))
        builder.store(ea, builder.inttoptr(dm, sty.as_pointer()), align=isz)
        builder.store(ebv, builder.inttoptr(builder.add(dm, eb), sty.as_pointer()), align=isz)
        m.add_incoming(builder.add(m, ir.Constant(i64, 1)), tbody)
        builder.branch(tail)
        builder.position_at_end(done)
        return context.get_dummy_value()
    return types.void(arr, tile, dst, src0, src1, n), impl


@intrinsic
def vstore_every2(typingctx, arr, tile, dst, src, n):
    """Elements [0, n) at byte address src (n <= V/2, V the tile's lanes)
    to dst, dst + 2, ... (elements of arr's dtype): one masked load, a
    shuffle into the even lanes and one masked store of those lanes (a
    stride-2 transpose's W phase, whose outputs are two columns apart),
    instead of n scalar stores."""
    if not isinstance(tile, TileType):
        return None
    vt = Vec(arr.dtype, tile.vbytes)
    isz = arr.dtype.bitwidth // 8

    def impl(context, builder, sig, args):
        i64, i32 = ir.IntType(64), ir.IntType(32)
        vty = context.get_value_type(vt)
        nl = vty.count
        d, s_, cnt = (context.cast(builder, args[i], sig.args[i], types.int64) for i in (2, 3, 4))
        mask = _range_mask(builder, nl, ir.Constant(i64, 0), cnt)
        v = builder.call(_masked_load(builder, vty, isz * 8),
                         [builder.inttoptr(s_, vty.as_pointer()), ir.Constant(i32, isz), mask, ir.Constant(vty, None)])
        spread = builder.shuffle_vector(v, ir.Constant(vty, None),
                                        ir.Constant(ir.VectorType(i32, nl), [l // 2 if l % 2 == 0 else nl
                                                                             for l in range(nl)]))
        even = ir.Constant(ir.VectorType(ir.IntType(1), nl), [l % 2 == 0 for l in range(nl)])
        smask = builder.and_(even, _range_mask(builder, nl, ir.Constant(i64, 0),
                                               builder.sub(builder.add(cnt, cnt), ir.Constant(i64, 1))))
        builder.call(_masked_store(builder, vty, isz * 8),
                     [spread, builder.inttoptr(d, vty.as_pointer()), ir.Constant(i32, isz), smask])
        return context.get_dummy_value()
    return types.void(arr, tile, dst, src, n), impl
