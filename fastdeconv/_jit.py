"""The one place where Numba JIT options are spelled.

- serial kernels that release the GIL (`serial_kernel`): each runs a range
  of tiles (or rows), and `backends.cpu_rb.parallel_tiles` runs disjoint
  ranges on a thread pool; every output element has one writer, so results
  do not depend on the thread count. (Numba's parallel=True kernels, loops
  over prange, took 2.5-3 s to compile cold for a pooling layer, 36 s for
  a tile kernel; serial ones ~1 s.)
- cache: compiled kernels are stored on disk next to the sources, so a new
  process loads them instead of compiling (set NUMBA_CACHE_DIR to move it).
- fastmath: only 'contract' (fused multiply-add). Reassociation, nnan and
  ninf are off: they would change NaN/Inf propagation or make the
  summation order depend on the compiler's vector width choices.

Threads: Numba's OpenMP layer, told not to spin (OMP_WAIT_POLICY=PASSIVE,
unless the user set it). fastdeconv's kernels no longer start it, but
parallel Numba code of the caller's may, and with the default policy its
threads spin for milliseconds on the same cores after each parallel
region: when the layers were such kernels, the VGG decoder's first
convolution after each UpSampling2D took 24-26 ms instead of 19-21, its
predict 201 instead of 174 ms. libgomp reads the variable once, when
Numba first starts its threads, so it is set here, on import (in a
process that ran Numba parallel code before importing fastdeconv, the
caller's setting stands).
"""

import contextlib
import functools
import gc
import glob
import operator
import os
import time
import uuid

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba  # noqa: E402
from llvmlite import binding as llvm  # noqa: E402
from numba.core import (cgutils, config, ir, lowering, postproc, transforms, typed_passes, types,  # noqa: E402
                        untyped_passes)
from numba.core.caching import FunctionCache, IndexDataCacheFile  # noqa: E402
from numba.core.codegen import JITCodeLibrary, remove_redundant_nrt_refct  # noqa: E402
from numba.core.compiler import CompilerBase, DefaultPassBuilder  # noqa: E402
from numba.core.compiler_machinery import FunctionPass, register_pass  # noqa: E402
from numba.core.typing import npydecl  # noqa: E402

FASTMATH = {"contract"}


def floor_divmod(builder, a, b, minval):
    """Python's a // b and a % b of two signed LLVM integers, as Numba
    computes them under the NumPy error model (0 and 0 for b == 0 and for
    the one overflowing quotient, minval // -1), without branches. Numba
    lowers each `//` and `%` as four basic blocks and stack slots: with the
    ~90 of a tile kernel that was about a third of its unoptimized LLVM IR
    and 0.1-0.5 s of its cold compile (benchmarks/NOTES.md section 124)."""
    ty = a.type
    zero = ty(0)
    bad = builder.or_(builder.icmp_signed("==", b, zero),
                      builder.and_(builder.icmp_signed("==", a, ty(minval)), builder.icmp_signed("==", b, ty(-1))))
    d = builder.select(bad, ty(1), b)
    q = builder.sdiv(a, d)
    r = builder.srem(a, d)
    # the quotient truncates toward zero: one less, and the remainder plus
    # the divisor, where a nonzero remainder's sign differs from the divisor's
    fix = builder.and_(builder.icmp_signed("!=", r, zero), builder.icmp_signed("<", builder.xor(r, d), zero))
    q = builder.sub(q, builder.zext(fix, ty))
    r = builder.add(r, builder.select(fix, d, zero))
    return builder.select(bad, zero, q), builder.select(bad, zero, r)


_NUMBERS = (types.Integer, types.Float, types.Boolean)


def _index_types(idxty):
    """The integer type of each dimension's index: a tuple's, or one."""
    return idxty.types if isinstance(idxty, types.BaseTuple) else (idxty,)


class LeanLower(lowering.Lower):
    """Numba's lowering, with `//` and `%` of two signed integers of one
    type as `floor_divmod`, and the other operators on two numbers lowered
    with the signature type inference gave them. (Numba types each
    operator again to find its implementation: the same signature, since
    the operands are already of its argument types, at about 0.4 ms per
    operator, ~1.5 % of a tile kernel's compile.) Array elements of
    numbers are read and written from the array's value, as Numba indexes
    them but without its stack copy of the array per access and typing of
    the access again (`_item_pointer`; the same machine code,
    benchmarks/NOTES.md section 139). `range(stop)` and `range(start,
    stop)` loops count max(stop - start, 0) steps without Numba's code for
    any step (section 140), and every range loop's next step is taken
    without a stack slot for the (value, valid) pair (section 141)."""

    def _value_as(self, var, ty):
        """The variable's value, cast to type ty (a signature's)."""
        return self.context.cast(self.builder, self.loadvar(var.name), self.typeof(var.name), ty)

    def _operands(self, expr, sig):
        """expr's two operands, cast to sig's argument types."""
        return tuple(self._value_as(v, ty) for v, ty in zip((expr.lhs, expr.rhs), sig.args))

    def _item_pointer(self, arrty, idxty, arr, index):
        """The element pointer of a C-contiguous array for an integer
        index (a tuple of them for N-D), as Numba's basic indexing makes
        it: negative indices counted from the end, no bounds check. From
        the array's value directly: Numba's copies it into a stack slot
        for each access and reads its shape twice (30-50 LLVM instructions
        per access where this takes 5-10)."""
        builder, ctx = self.builder, self.context
        model = ctx.data_model_manager[arrty]
        data = builder.extract_value(arr, model.get_field_position("data"))
        shape = builder.extract_value(arr, model.get_field_position("shape"))
        idxtys = _index_types(idxty)
        idxs = ([builder.extract_value(index, k) for k in range(len(idxtys))] if isinstance(idxty, types.BaseTuple)
                else [index])
        loc = None
        for k, (ty, i) in enumerate(zip(idxtys, idxs)):
            size = builder.extract_value(shape, k)
            i = ctx.cast(builder, i, ty, types.intp)
            if ty.signed:
                i = builder.select(builder.icmp_signed("<", i, i.type(0)), builder.add(i, size), i)
            loc = i if loc is None else builder.add(builder.mul(loc, size), i)
        return builder.gep(data, [loc])

    @staticmethod
    def _plain_item(arrty, idxty):
        """An element of a C-contiguous, aligned array of numbers, read or
        written with one integer per dimension."""
        idxtys = _index_types(idxty)
        return (isinstance(arrty, types.Array) and arrty.layout == "C" and arrty.aligned
                and isinstance(arrty.dtype, (types.Integer, types.Float)) and len(idxtys) == arrty.ndim
                and all(isinstance(t, types.Integer) for t in idxtys))

    def lower_getitem(self, resty, expr, value, index, signature):
        arrty, idxty = self.typeof(value.name), signature.args[1]
        if (self._plain_item(arrty, idxty) and signature.args[0] == arrty
                and signature.return_type == arrty.dtype):
            ptr = self._item_pointer(arrty, idxty, self.loadvar(value.name), self._value_as(index, idxty))
            res = self.context.unpack_value(self.builder, arrty.dtype, ptr)
            return self.context.cast(self.builder, res, arrty.dtype, resty)
        return super().lower_getitem(resty, expr, value, index, signature)

    def lower_setitem(self, target_var, index_var, value_var, signature):
        arrty, idxty = self.typeof(target_var.name), signature.args[1]
        if self._plain_item(arrty, idxty) and signature.args[0] == arrty and signature.args[2] == arrty.dtype:
            ptr = self._item_pointer(arrty, idxty, self.loadvar(target_var.name), self._value_as(index_var, idxty))
            self.context.pack_value(self.builder, arrty.dtype, self._value_as(value_var, arrty.dtype), ptr)
            return
        return super().lower_setitem(target_var, index_var, value_var, signature)

    def lower_expr(self, resty, expr):
        if expr.op == "getiter" and isinstance(self.typeof(expr.value.name), types.RangeType):
            it = self._unit_step_iter(expr, resty)
            if it is not None:
                return it
        if (expr.op == "iternext" and isinstance(self.typeof(expr.value.name), types.RangeIteratorType)
                and self.fndesc.calltypes[expr].return_type == resty):
            return self._range_next(expr, resty)
        return super().lower_expr(resty, expr)

    def _range_next(self, expr, resty):
        """A range iterator's next (value, valid) pair, as Numba's
        `iternext` computes it, from the iterator's value: Numba's builds
        the pair in a stack slot of its own and reads it back (30 LLVM
        instructions per loop where this takes 12)."""
        builder = self.builder
        model = self.context.data_model_manager[self.typeof(expr.value.name)]
        it = self.loadvar(expr.value.name)
        iterptr, step, countptr = (builder.extract_value(it, model.get_field_position(f))
                                   for f in ("iter", "step", "count"))
        count = builder.load(countptr)
        valid = builder.icmp_signed(">", count, count.type(0))
        before = builder.block
        with builder.if_then(valid):
            value = builder.load(iterptr)
            builder.store(builder.sub(count, count.type(1), flags=["nsw"]), countptr)
            builder.store(builder.add(value, step), iterptr)
            then = builder.block
        first = builder.phi(value.type)
        first.add_incoming(value.type(0), before)
        first.add_incoming(value, then)
        pair = cgutils.get_null_value(self.context.get_value_type(resty))
        return builder.insert_value(builder.insert_value(pair, first, 0), valid, 1)

    def _unit_step_iter(self, expr, resty):
        """The iterator of `range(stop)` or `range(start, stop)`, whose
        count is max(stop - start, 0); Numba's takes any step (a branch to
        raise for step 0, a division, the remainder's sign: ~50 LLVM
        instructions for each of a kernel's loops, which LLVM then folds
        away). None for another range."""
        try:
            call = self.func_ir.get_definition(expr.value)
            fn = self.func_ir.get_definition(call.func) if isinstance(call, ir.Expr) and call.op == "call" else None
        except KeyError:  # (a variable assigned more than once)
            return None
        if not (isinstance(fn, (ir.Global, ir.FreeVar)) and fn.value is range and len(call.args) in (1, 2)
                and not call.kws and call.vararg is None):
            return None
        builder = self.builder
        state_model = self.context.data_model_manager[self.typeof(expr.value.name)]
        iter_model = self.context.data_model_manager[resty]
        state = self.loadvar(expr.value.name)
        start, stop, step = (builder.extract_value(state, state_model.get_field_position(f))
                             for f in ("start", "stop", "step"))
        diff = builder.sub(stop, start)
        fields = dict(iter=cgutils.alloca_once_value(builder, start), stop=stop, step=step,
                      count=cgutils.alloca_once_value(builder, builder.select(
                          builder.icmp_signed(">", diff, diff.type(0)), diff, diff.type(0))))
        it = cgutils.get_null_value(iter_model.get_value_type())
        for f, v in fields.items():
            it = builder.insert_value(it, v, iter_model.get_field_position(f))
        return it

    def lower_binop(self, resty, expr, op):
        sig = self.fndesc.calltypes[expr]
        if op is operator.floordiv or op is operator.mod:
            ty = sig.return_type
            if (isinstance(ty, types.Integer) and ty.signed and sig.args == (ty, ty)
                    and self.context.error_model.raise_on_fp_zero_division is False):
                q, r = floor_divmod(self.builder, *self._operands(expr, sig), ty.minval)
                return self.context.cast(self.builder, q if op is operator.floordiv else r, ty, resty)
        if (expr.static_lhs is ir.UNDEFINED and expr.static_rhs is ir.UNDEFINED
                and all(isinstance(t, _NUMBERS) for t in sig.args)):
            fnty = self.context.typing_context.resolve_value_type(op)
            try:
                # (the implementation Numba's typing recorded for these
                # argument types; none yet where type inference saw other
                # operand types, cast to these: Numba's way then records it)
                fnty.get_impl_key(sig)
            except KeyError:
                return super().lower_binop(resty, expr, op)
            res = self.context.get_function(fnty, sig)(self.builder, self._operands(expr, sig))
            return self.context.cast(self.builder, res, sig.return_type, resty)
        return super().lower_binop(resty, expr, op)


# Numba types every scalar `+`, `*`, `//`, comparison, ... of a kernel by
# trying its NumPy array-operator template too, and again when it lowers
# it: that template resolves the operator's ufunc loop for the argument
# types and only then rejects them when none is an array
# (npydecl.NumpyRulesArrayOperator.generic), about 0.1 s of a tile
# kernel's type inference and 0.05 s of its lowering. While
# LeanTypeInference or LeanLowering runs, the template answers None at once
# for arguments without an array: what it would have returned (its
# signature's arguments are the call's).
_typing_lean_kernel = False
_array_operator_generic = npydecl.NumpyRulesArrayOperator.generic


def _array_operator_generic_lean(self, args, kws):
    if _typing_lean_kernel and not any(
            isinstance(a.type if isinstance(a, types.Optional) else a, types.ArrayCompatible) for a in args):
        return None
    return _array_operator_generic(self, args, kws)


npydecl.NumpyRulesArrayOperator.generic = _array_operator_generic_lean


# An operator on numbers of the same types is typed the same way each time:
# while a kernel is typed or lowered, the signatures of operators on
# integers, floats and booleans (not literals) are remembered per kernel
# instead of trying every template of the operator again (a tile kernel
# types a few hundred `+`, `*`, `<`, ... of int64 operands).
_OPERATORS = frozenset(getattr(operator, name) for name in dir(operator) if not name.startswith("_"))
_call_types = {}
_function_get_call_type = types.Function.get_call_type


def _get_call_type_lean(self, context, args, kws):
    if (_typing_lean_kernel and not kws and self.typing_key in _OPERATORS
            and all(type(a) in _NUMBERS for a in args)):
        key = (self, tuple(args))
        sig = _call_types.get(key)
        if sig is None:
            sig = _call_types[key] = _function_get_call_type(self, context, args, kws)
        return sig
    return _function_get_call_type(self, context, args, kws)


types.Function.get_call_type = _get_call_type_lean


@contextlib.contextmanager
def _typing_kernel():
    """The array-operator template's shortcut (_array_operator_generic_lean)
    and the operators' remembered signatures (_get_call_type_lean) on."""
    global _typing_lean_kernel
    outer = _typing_lean_kernel  # (a kernel compiled while another is typed)
    if not outer:
        _call_types.clear()
    _typing_lean_kernel = True
    try:
        yield
    finally:
        _typing_lean_kernel = outer
        if not outer:
            _call_types.clear()


@register_pass(mutates_CFG=True, analysis_only=False)
class LeanTypeInference(typed_passes.NopythonTypeInference):
    """Numba's type inference, with the array-operator template's shortcut
    for scalar operators (_array_operator_generic_lean)."""

    _name = "lean_nopython_type_inference"

    def run_pass(self, state):
        with _typing_kernel():
            return super().run_pass(state)


@register_pass(mutates_CFG=True, analysis_only=False)
class LeanLowering(typed_passes.NativeLowering):
    """Numba's native lowering pass, on LeanLower, with the array-operator
    template's shortcut for the operators it types again."""

    _name = "lean_native_lowering"

    @property
    def lowering_class(self):
        return LeanLower

    def run_pass(self, state):
        with _typing_kernel():
            return super().run_pass(state)


class UnrollingCodeLibrary(JITCodeLibrary):
    """Numba's code library with one LLVM -O3 round instead of two. Numba
    optimizes each lowered function at -O3 (LLVM's function simplification
    pipeline) as it is added to the library, then the whole module at -O3
    again (its per-module pipeline: inlining, that simplification once
    more, the loop and SLP vectorizers, unrolling) when the library is
    finalized. Here the second round is Numba's cheap module round and
    LLVM's loop unrolling only: the micro-kernels' FMA loops come out
    unrolled as after two rounds, the kernel's loops of scalar copies are
    not vectorized (on AVX-512 the vectorizer made gathers and scatters of
    the strided ones). cfband_kernel's cold compile 20-25 % shorter, its
    FMA loops the same instructions (benchmarks/NOTES.md section 133)."""

    def _optimize_final_module(self):
        cheap = self._codegen._module_pass_manager(loop_vectorize=self._codegen._loopvect, slp_vectorize=False,
                                                   opt=self._codegen._opt_level, cost="cheap")
        if not (isinstance(cheap, tuple) and hasattr(llvm, "create_new_module_pass_manager")):
            return super()._optimize_final_module()  # (a Numba on LLVM's legacy pass manager)
        mpm, mpb = cheap
        with self._recorded_timings.record("Module passes (cheap optimization for refprune)", mpb):
            mpm.run(self._final_module, mpb)
        if not config.LLVM_REFPRUNE_PASS:
            self._final_module = remove_redundant_nrt_refct(self._final_module)
        pm = llvm.create_new_module_pass_manager()
        pm.add_loop_unroll_pass()
        pm.add_instruction_combine_pass()
        pm.add_simplify_cfg_pass()
        pb = self._codegen._pass_builder()
        with self._recorded_timings.record(self.UNROLLING, pb):
            pm.run(self._final_module, pb)

    UNROLLING = "Module passes (loop unrolling)"


@register_pass(mutates_CFG=True, analysis_only=False)
class UnrollingLowering(LeanLowering):
    """LeanLowering into an UnrollingCodeLibrary."""

    _name = "lean_native_lowering_unrolling"

    def run_pass(self, state):
        if state.library is None:  # (as NativeLowering makes Numba's)
            state.library = UnrollingCodeLibrary(state.targetctx.codegen(), state.func_id.func_qualname)
            state.library.enable_object_caching()
        return super().run_pass(state)


@register_pass(mutates_CFG=True, analysis_only=False)
class LeanIRProcessing(FunctionPass):
    """Numba's IR processing without its liveness analysis: the CFG
    canonicalized, the variables' lifetimes left to be computed when a
    pass reads them (`postproc.VariableLifetime` is lazy). Numba computes
    every block's live variables here, again after inlining, and for the
    last time when the IR legalization inserts the `del`s that lowering
    follows; none of the kernels' passes in between reads them (only
    `literal_unroll`, which the kernels do not use, and generators, which
    take Numba's pass)."""

    _name = "lean_ir_processing"

    def __init__(self):
        FunctionPass.__init__(self)

    def run_pass(self, state):
        _process_ir(postproc.PostProcessor(state.func_ir))
        return True


_postproc_run = postproc.PostProcessor.run


def _process_ir(pp, emit_dels=False, extend_lifetimes=False):
    """PostProcessor.run without the live variables, where no `del`s are
    asked for (LeanIRProcessing)."""
    fir = pp.func_ir
    if emit_dels or fir.is_generator:
        return _postproc_run(pp, emit_dels, extend_lifetimes)
    fir.blocks = transforms.canonicalize_cfg(fir.blocks)
    fir.variable_lifetime = postproc.VariableLifetime(fir.blocks)
    fir.generator_info = None


@register_pass(mutates_CFG=True, analysis_only=False)
class LeanInlineInlinables(untyped_passes.InlineInlinables):
    """Numba's inlining of `inline='always'` helpers, whose IR processing
    after the inlining (and the helpers' own) skip the live variables as
    LeanIRProcessing does. (Numba compiles under one lock: no other
    compilation sees the processing swapped.)"""

    _name = "lean_inline_inlinables"

    def run_pass(self, state):
        outer = postproc.PostProcessor.run
        postproc.PostProcessor.run = _process_ir
        try:
            return super().run_pass(state)
        finally:
            postproc.PostProcessor.run = outer


class LeanPipeline(CompilerBase):
    """Numba's nopython pipeline for the serial tile kernels, less what
    they do not need (a tile kernel's cold compile 0.35-0.55 s shorter,
    benchmarks/NOTES.md section 55):
    - SSA (Numba's `enable_ssa` flag off, as its inliner compiles callees):
      every reassignment of a loop counter, address or accumulator tuple
      was a variable of its own, typed and lowered apart (0.25-0.45 s).
      LLVM builds the same SSA form from the stack slots. All assignments
      of a variable must then have one type: a variable that took an int
      and a float would be typed as a float, so such code uses two names.
    - the passes for `with` blocks, closures, and rewrites of constant
      raises and getitems and of array expressions: the kernels have none
      (~0.1 s). Code that needs one fails to type, it is not run slower.
    - the removal of SSA's phi nodes before lowering: without SSA there
      are none, and the IR's liveness that pass computes again is computed
      once more by the IR legalization that follows (wv_kernel's first
      call 4.7 % fewer instructions, the same machine code;
      benchmarks/NOTES.md section 134).
    - the variables' liveness that Numba's IR processing computes at the
      start and again after inlining (LeanIRProcessing,
      LeanInlineInlinables): the legalization before lowering computes it
      (wv_kernel's first call 7 % fewer instructions, the same machine
      code; section 137).
    And it lowers integer `//` and `%` without branches (LeanLowering)."""

    SKIPPED = (untyped_passes.WithLifting, untyped_passes.InlineClosureLikes,
               untyped_passes.GenericRewrites, untyped_passes.MakeFunctionToJitFunction,
               typed_passes.NopythonRewrites, typed_passes.PreLowerStripPhis)

    LOWERING = LeanLowering

    def define_pipelines(self):
        self.state.flags.enable_ssa = False
        pm = DefaultPassBuilder.define_nopython_pipeline(self.state)
        lean = {typed_passes.NativeLowering: self.LOWERING, typed_passes.NopythonTypeInference: LeanTypeInference,
                untyped_passes.IRProcessing: LeanIRProcessing, untyped_passes.InlineInlinables: LeanInlineInlinables}
        pm.passes[:] = [(lean.get(p, p), what) for p, what in pm.passes if p not in self.SKIPPED]
        return [pm]


class UnrollingPipeline(LeanPipeline):
    """LeanPipeline with one LLVM -O3 round and unrolling
    (UnrollingCodeLibrary)."""

    LOWERING = UnrollingLowering


@contextlib.contextmanager
def _file_lock(path):
    """An exclusive lock on the file `path` (created if missing) between
    processes, where the platform has fcntl; elsewhere none."""
    try:
        import fcntl
    except ImportError:  # (Windows: unique data names still keep entries apart)
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # (releases the lock)


class ProcessSafeCacheFile(IndexDataCacheFile):
    """Numba's index and data files of one kernel's cache, safe when several
    processes compile its variants at once (workers of a service, or of a
    test run, starting on an empty cache). Numba's `save` reads the index,
    names the new variant's data file by its position in it and writes
    both: two processes saving different variants together both pick the
    same name, the index keeps one entry and the data file possibly the
    other variant, which a later process loads for the wrong signature
    (numba/numba#4807). Here each data file gets a name of its own and is
    written before its entry, which is added to the index re-read under a
    lock. Data files no entry names, from other source versions or
    replaced, are removed once an hour old (a file just written waits for
    its entry only while its writer takes the lock)."""

    STALE_SECONDS = 3600

    def save(self, key, data):
        base = self._index_name[:-len(".nbi")]
        name = f"{base}.{uuid.uuid4().hex[:16]}.nbc"
        self._save_data(name, data)
        with _file_lock(self._index_path + ".lock"):
            overloads = self._load_index()
            overloads[key] = name
            self._save_index(overloads)
            kept = set(overloads.values())
        now = time.time()
        for path in glob.glob(os.path.join(glob.escape(self._cache_path), glob.escape(base) + ".*.nbc")):
            if os.path.basename(path) not in kept:
                with contextlib.suppress(OSError):
                    if now - os.path.getmtime(path) > self.STALE_SECONDS:
                        os.remove(path)


class KernelCache(FunctionCache):
    """Numba's on-disk cache of a kernel, with two changes.

    Loaded without first refreshing the typing and target contexts. Numba
    refreshes them before every cache load: once per process, it imports
    its NumPy, random, typed-container and other implementations and
    installs their 250 registries (0.17-0.2 s, half of a first call served
    from the cache; benchmarks/NOTES.md section 123). Loading machine code
    needs none of them, only the NRT's symbols, which an allocating kernel
    links against. A kernel that is not in the cache is compiled as before,
    and Numba's compiler refreshes the contexts then.

    Saved through a ProcessSafeCacheFile."""

    def __init__(self, py_func):
        super().__init__(py_func)
        self._cache_file = ProcessSafeCacheFile(cache_path=self._cache_path,
                                                filename_base=self._impl.filename_base,
                                                source_stamp=self._impl.locator.get_source_stamp())

    def load_overload(self, sig, target_context):
        from numba.core.runtime import rtsys

        rtsys.initialize(target_context)
        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context)


def serial_kernel(fn, nrt=False, one_round=False):
    """A serial, cached kernel that releases the GIL, compiled on the
    LeanPipeline. nrt: the kernel allocates arrays (`allocating_kernel`).
    one_round: on the UnrollingPipeline, for a kernel whose machine code
    and speed were checked that way (wv_kernel's came out 1-5 % slower on
    one thread: benchmarks/NOTES.md section 133).
    Without Numba's reference counting, no incref/decref code is emitted
    for the tuples of accumulator vectors at every assignment: cl_kernel's
    LLVM IR before optimization 8206 -> 6187 lines, its cold compile
    ~0.05-0.1 s less."""
    kernel = numba.njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy", _nrt=nrt,
                        pipeline_class=UnrollingPipeline if one_round else LeanPipeline)(fn)
    kernel._cache = KernelCache(fn)
    kernel.compile = functools.partial(_without_gc, kernel.compile)
    return kernel


def _without_gc(compile, sig):
    """compile(sig) with Python's cyclic garbage collector paused. A
    kernel's compile makes millions of short-lived objects (Numba's IR,
    types, llvmlite's IR), whose allocations trigger collections that walk
    every tracked object of the process again and again: a first call
    2.7 % fewer instructions without them, the peak memory the same
    (benchmarks/NOTES.md section 135). What the compile leaves behind is
    collected afterwards as usual."""
    if not gc.isenabled():
        return compile(sig)
    gc.disable()
    try:
        return compile(sig)
    finally:
        gc.enable()


def allocating_kernel(fn):
    """serial_kernel for a kernel that allocates arrays (np.empty)."""
    return serial_kernel(fn, nrt=True)


def helper(fn):
    """A small function inlined into kernels."""
    return numba.njit(inline="always", cache=True, fastmath=FASTMATH)(fn)


# CUDA (numba-cuda), imported only when the CUDA backend is used. No
# fastmath: NaN/Inf must propagate and the summation order is fixed by the
# kernels. The compiler may fuse a*b + c into one FMA (the CUDA default);
# that is the same on every run, so results stay bit-reproducible. No
# on-disk cache: the kernels are closures over their tile sizes.

def cuda_kernel(fn):
    """A CUDA kernel (launched as kernel[grid, block](...))."""
    from numba import cuda

    return cuda.jit(fastmath=False)(fn)


def cuda_device(fn):
    """A CUDA device function called from kernels."""
    from numba import cuda

    return cuda.jit(device=True, fastmath=False)(fn)
