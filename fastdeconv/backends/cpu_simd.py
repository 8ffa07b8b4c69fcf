"""Explicit SIMD for the CPU kernels: a Numba type for one 64-byte vector
(16 float32 or 8 float64 lanes, one AVX-512 register) and a few intrinsics.

Why: LLVM does not keep a register tile of accumulators in registers when
the tile is a Numba array (heap memory it cannot prove private), and it does
not vectorise fully unrolled scalar tiles. With vector-typed local variables
the accumulators are SSA values and live in registers across the whole
reduction loop, as in a hand-written GEMM micro-kernel.

Each lane is an independent accumulator and `vfma` rounds once (llvm.fma),
so the summation order of every output element is fixed by the loop order,
independent of the thread count and of LLVM's choices.

Memory access takes byte addresses (`addr(arr) + offset`): no negative-index
wraparound and no bounds checks; callers guarantee validity. The array
argument of each intrinsic only fixes the dtype and keeps it alive.
"""

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic, models, register_model

VBYTES = 64


class Vec(types.Type):
    def __init__(self, dtype):
        self.dtype = dtype
        self.lanes = VBYTES // (dtype.bitwidth // 8)
        super().__init__(name=f"Vec[{dtype}x{self.lanes}]")


@register_model(Vec)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        be = ir.VectorType(dmm.lookup(fe_type.dtype).get_value_type(), fe_type.lanes)
        super().__init__(dmm, fe_type, be)


def _pointer(context, builder, addr_type, addr, dtype):
    addr = context.cast(builder, addr, addr_type, types.uintp)
    return builder.inttoptr(addr, context.get_value_type(dtype).as_pointer())


def _splat(builder, vty, s):
    v = builder.insert_element(ir.Constant(vty, ir.Undefined), s, ir.Constant(ir.IntType(32), 0))
    mask = ir.Constant(ir.VectorType(ir.IntType(32), vty.count), [0] * vty.count)
    return builder.shuffle_vector(v, ir.Constant(vty, ir.Undefined), mask)


@intrinsic
def addr(typingctx, arr):
    """The address of arr's first element."""
    def impl(context, builder, sig, args):
        a = context.make_array(sig.args[0])(context, builder, args[0])
        return builder.ptrtoint(a.data, context.get_value_type(types.intp))
    return types.intp(arr), impl


@intrinsic
def itemsize(typingctx, arr):
    """arr's element size in bytes as a compile-time constant (arr.itemsize
    is read from the array at run time, which keeps LLVM from folding
    address steps into displacements)."""
    n = arr.dtype.bitwidth // 8

    def impl(context, builder, sig, args):
        return ir.Constant(context.get_value_type(types.intp), n)
    return types.intp(arr), impl


@intrinsic
def vzero(typingctx, arr):
    vt = Vec(arr.dtype)

    def impl(context, builder, sig, args):
        return ir.Constant(context.get_value_type(vt), None)
    return vt(arr), impl


@intrinsic
def vload(typingctx, arr, p):
    """The vector at byte address p (unaligned)."""
    vt = Vec(arr.dtype)

    def impl(context, builder, sig, args):
        ptr = _pointer(context, builder, sig.args[1], args[1], vt)
        return builder.load(ptr, align=arr.dtype.bitwidth // 8)
    return vt(arr, p), impl


@intrinsic
def vbcast(typingctx, arr, p):
    """Every lane the scalar at byte address p."""
    vt = Vec(arr.dtype)

    def impl(context, builder, sig, args):
        ptr = _pointer(context, builder, sig.args[1], args[1], arr.dtype)
        s = builder.load(ptr, align=arr.dtype.bitwidth // 8)
        return _splat(builder, context.get_value_type(vt), s)
    return vt(arr, p), impl


@intrinsic
def vstore(typingctx, arr, p, v):
    """Store v at byte address p (unaligned)."""
    def impl(context, builder, sig, args):
        ptr = _pointer(context, builder, sig.args[1], args[1], sig.args[2])
        builder.store(args[2], ptr, align=arr.dtype.bitwidth // 8)
        return context.get_dummy_value()
    return types.void(arr, p, v), impl


@intrinsic
def vlane(typingctx, v, i):
    """Lane i of v."""
    def impl(context, builder, sig, args):
        return builder.extract_element(args[0], args[1])
    return v.dtype(v, i), impl


@intrinsic
def vfma(typingctx, a, b, c):
    """a * b + c, rounded once (llvm.fma)."""
    def impl(context, builder, sig, args):
        vty = args[0].type
        name = f"llvm.fma.v{vty.count}f{a.dtype.bitwidth}"
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty] * 3), name)
        return builder.call(fn, args)
    return a(a, b, c), impl


@intrinsic
def vadd(typingctx, a, b):
    """a + b, lane by lane."""
    def impl(context, builder, sig, args):
        return builder.fadd(args[0], args[1])
    return a(a, b), impl


def _range_mask(builder, n, lo, hi):
    """<n x i1>: lane l is set when lo <= l < hi (lo, hi: i64)."""
    i64 = ir.IntType(64)
    vt = ir.VectorType(i64, n)
    iota = ir.Constant(vt, list(range(n)))
    lo = _splat(builder, vt, builder.sext(lo, i64) if lo.type.width < 64 else lo)
    hi = _splat(builder, vt, builder.sext(hi, i64) if hi.type.width < 64 else hi)
    return builder.and_(builder.icmp_signed(">=", iota, lo), builder.icmp_signed("<", iota, hi))


@intrinsic
def vloadm(typingctx, arr, p, lo, hi):
    """Lanes l in [lo, hi) from byte address p + l*itemsize, the others 0.
    Masked lanes are not read (llvm.masked.load), so p may point outside
    the array where those lanes would be."""
    vt = Vec(arr.dtype)

    def impl(context, builder, sig, args):
        vty = context.get_value_type(vt)
        ptr = _pointer(context, builder, sig.args[1], args[1], vt)
        mask = _range_mask(builder, vty.count, args[2], args[3])
        name = f"llvm.masked.load.v{vty.count}f{arr.dtype.bitwidth}.p0"
        fnty = ir.FunctionType(vty, [ptr.type, ir.IntType(32), mask.type, vty])
        fn = cgutils.get_or_insert_function(builder.module, fnty, name)
        return builder.call(fn, [ptr, ir.Constant(ir.IntType(32), arr.dtype.bitwidth // 8), mask,
                                 ir.Constant(vty, None)])
    return vt(arr, p, lo, hi), impl


@intrinsic
def vstorem(typingctx, arr, p, v, lo, hi):
    """Store lanes l in [lo, hi) of v at byte address p + l*itemsize."""
    def impl(context, builder, sig, args):
        vty = args[2].type
        ptr = _pointer(context, builder, sig.args[1], args[1], sig.args[2])
        mask = _range_mask(builder, vty.count, args[3], args[4])
        name = f"llvm.masked.store.v{vty.count}f{arr.dtype.bitwidth}.p0"
        fnty = ir.FunctionType(ir.VoidType(), [vty, ptr.type, ir.IntType(32), mask.type])
        fn = cgutils.get_or_insert_function(builder.module, fnty, name)
        builder.call(fn, [args[2], ptr, ir.Constant(ir.IntType(32), arr.dtype.bitwidth // 8), mask])
        return context.get_dummy_value()
    return types.void(arr, p, v, lo, hi), impl


@intrinsic
def vgatherm(typingctx, arr, p, step, lo, hi):
    """Lanes l in [lo, hi) from byte address p + l*step (step: bytes, fits
    in 32 bits), the others 0 (llvm.masked.gather; masked lanes not read)."""
    vt = Vec(arr.dtype)

    def impl(context, builder, sig, args):
        vty = context.get_value_type(vt)
        n = vty.count
        i32 = ir.IntType(32)
        i64 = ir.IntType(64)
        v32 = ir.VectorType(i32, n)
        v64 = ir.VectorType(i64, n)
        st = _splat(builder, v32, builder.trunc(args[2], i32))
        idx = builder.sext(builder.mul(ir.Constant(v32, list(range(n))), st), v64)
        base = _splat(builder, v64, context.cast(builder, args[1], sig.args[1], types.int64))
        ptrs = builder.inttoptr(builder.add(base, idx), ir.VectorType(ir.IntType(8).as_pointer(), n))
        mask = _range_mask(builder, n, args[3], args[4])
        name = f"llvm.masked.gather.v{n}f{arr.dtype.bitwidth}.v{n}p0"
        fnty = ir.FunctionType(vty, [ptrs.type, i32, mask.type, vty])
        fn = cgutils.get_or_insert_function(builder.module, fnty, name)
        return builder.call(fn, [ptrs, ir.Constant(i32, arr.dtype.bitwidth // 8), mask, ir.Constant(vty, None)])
    return vt(arr, p, step, lo, hi), impl
