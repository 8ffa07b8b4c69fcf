"""The kernels' compiler pipeline (fastdeconv._jit) and scalar intrinsics
compute what Numba and Python do: integer `//` and `%` (`floor_divmod`,
no branches) against Numba's lowering of the same function, on every
sign, zero divisors and the overflowing quotient, for each signed width;
`cpu_rb._min` and `_max` against the builtins."""

import numba
import numpy as np
import pytest

from fastdeconv import _jit
from fastdeconv.backends import cpu_rb


def _divmod_all(a, b, q, r, scale, t_begin, t_end):
    for i in range(t_begin, t_end):
        q[i] = a[i] // b[i]
        r[i] = a[i] % b[i]
        # a literal divisor, and `//=` / `%=` (inplace_binop)
        x = a[i]
        x //= 3
        y = a[i]
        y %= -7
        scale[i] = x + y + a[i] // 2 - a[i] % 4


def _operands(dtype):
    info = np.iinfo(dtype)
    edge = np.array([info.min, info.min + 1, -7, -3, -2, -1, 0, 1, 2, 3, 7, info.max - 1, info.max], dtype)
    rng = np.random.default_rng(0)
    rand = rng.integers(info.min, info.max, 200, dtype=dtype, endpoint=True)
    small = rng.integers(-20, 21, 200).astype(dtype)
    a = np.concatenate([np.repeat(edge, edge.size), rand, small, small])
    b = np.concatenate([np.tile(edge, edge.size), small, rand, small[::-1]])
    return a, b


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64])
def test_integer_floor_division_matches_numbas(dtype, monkeypatch):
    a, b = _operands(dtype)
    lowered = []

    def spy(*args):
        lowered.append(1)
        return floor_divmod(*args)

    floor_divmod = _jit.floor_divmod
    monkeypatch.setattr(_jit, "floor_divmod", spy)
    # (not cached: each run lowers it)
    ours = numba.njit(error_model="numpy", pipeline_class=_jit.LeanPipeline)(_divmod_all)
    theirs = numba.njit(error_model="numpy")(_divmod_all)
    outs = []
    for f in (ours, theirs):
        q, r, s = np.empty_like(a), np.empty_like(a), np.empty(a.size, np.int64)
        f(a, b, q, r, s, 0, a.size)
        outs.append((q, r, s))
    for mine, ref, what in zip(outs[0], outs[1], ("quotient", "remainder", "literal and in-place")):
        bad = np.flatnonzero(mine != ref)
        assert bad.size == 0, f"{what} differs for a={a[bad[:5]]}, b={b[bad[:5]]}: {mine[bad[:5]]} != {ref[bad[:5]]}"
    # every // and % of the function took the branchless lowering
    assert len(lowered) == 6


def _min_max_all(a, b, lo, hi, mixed, t_begin, t_end):
    for i in range(t_begin, t_end):
        lo[i] = _min(a[i], b[i])
        hi[i] = _max(a[i], b[i])
        # an int32 against an int64, and literals
        mixed[i] = _max(np.int32(a[i] % 1000), b[i] // 3) + _min(a[i], 5) - _max(0, b[i])


_min = cpu_rb._min
_max = cpu_rb._max


def test_integer_min_and_max_match_the_builtins():
    a, b = _operands(np.int64)
    kernel = _jit.serial_kernel(_min_max_all)
    lo, hi, mixed = np.empty_like(a), np.empty_like(a), np.empty_like(a)
    kernel(a, b, lo, hi, mixed, 0, a.size)
    assert lo.tolist() == [min(x, y) for x, y in zip(a.tolist(), b.tolist())]
    assert hi.tolist() == [max(x, y) for x, y in zip(a.tolist(), b.tolist())]
    expect = [max(int(np.int32(x % 1000)), y // 3) + min(x, 5) - max(0, y) for x, y in zip(a.tolist(), b.tolist())]
    # (int64 wraparound, as the kernel computes)
    assert mixed.tolist() == [(e + 2**63) % 2**64 - 2**63 for e in expect]


def test_array_operator_template_shortcut_answers_as_numba(monkeypatch):
    """While a kernel is typed, NumPy's array-operator templates answer None
    at once for operands without an array (`_jit._array_operator_generic_lean`):
    what Numba's own template returns for them after resolving a ufunc
    loop. Arrays, Optional arrays and in-place and unary operators give
    Numba's answer; outside a kernel's typing the template is Numba's."""
    import operator

    from numba.core import types
    from numba.core.registry import cpu_target
    from numba.core.typing import npydecl

    ctx = cpu_target.typing_context
    ctx.refresh()
    arr = types.Array(types.float32, 1, "C")
    operands = [(types.int64, types.int64), (types.int32, types.float64), (types.float32, types.float32),
                (types.boolean, types.int8), (types.UniTuple(types.int64, 2), types.int64),
                (types.Optional(types.int64), types.int64), (arr, types.float32), (types.int64, arr),
                (types.Optional(arr), types.float64), (arr, arr)]

    def template(op):  # the one Numba registered for op
        return next(t for t in ctx.resolve_value_type(op).templates
                    if issubclass(t, npydecl.NumpyRulesArrayOperator))(ctx)

    checked = 0
    for op, name in npydecl.NumpyRulesArrayOperator._op_map.items():
        inst = template(op)
        for args in operands:
            monkeypatch.setattr(_jit, "_typing_lean_kernel", False)
            expected = _jit._array_operator_generic(inst, args, {})
            plain = inst.generic(args, {})
            monkeypatch.setattr(_jit, "_typing_lean_kernel", True)
            lean = inst.generic(args, {})
            assert lean == expected == plain, (name, args)
            checked += expected is not None
    assert checked >= 3 * len(npydecl.NumpyRulesArrayOperator._op_map) - 4  # (the array operands type)
    # in-place and unary operators (their generic calls the patched one)
    for op, args in ((operator.iadd, (arr, types.float32)), (operator.neg, (arr,)), (operator.neg, (types.int64,))):
        monkeypatch.setattr(_jit, "_typing_lean_kernel", False)
        expected = template(op).generic(args, {})
        monkeypatch.setattr(_jit, "_typing_lean_kernel", True)
        assert template(op).generic(args, {}) == expected


def _scalar_ops(a, out, t_begin, t_end):
    for i in range(t_begin, t_end):
        k = i * 3 + 1
        out[i] = a[i] * 2.0 + k - (k >> 1) if k % 7 != 0 and i < t_end - 1 else a[i]


def test_kernel_passes_take_the_template_shortcut(monkeypatch):
    """Compiling on the LeanPipeline, neither type inference nor lowering
    asks NumPy's array-operator template about operands without an array,
    an operator on numbers of the same types goes through its templates
    once, and the lowering takes the typed signature of each operator on
    two numbers instead of typing it again (Numba's lower_binop is not
    reached); other code still asks, and the result is Numba's."""
    from numba.core import lowering, types

    asked = []
    real = _jit._array_operator_generic

    def spy(self, args, kws):
        asked.append(any(isinstance(a, types.ArrayCompatible) for a in args))
        return real(self, args, kws)

    monkeypatch.setattr(_jit, "_array_operator_generic", spy)
    typed = []  # operators on numbers typed through their templates while the kernel's passes run
    real_typing = _jit._function_get_call_type

    def typing_spy(self, context, args, kws):
        if (_jit._typing_lean_kernel and self.typing_key in _jit._OPERATORS
                and all(type(a) in _jit._NUMBERS for a in args)):  # (not literals)
            typed.append((self.typing_key, tuple(args)))
        return real_typing(self, context, args, kws)

    monkeypatch.setattr(_jit, "_function_get_call_type", typing_spy)
    numbas = []
    real_binop = lowering.Lower.lower_binop
    monkeypatch.setattr(lowering.Lower, "lower_binop", lambda self, *a: (numbas.append(1), real_binop(self, *a))[1])
    a = np.arange(10, dtype=np.float64)
    ours, theirs = np.zeros(10), np.zeros(10)
    numba.njit(pipeline_class=_jit.LeanPipeline)(_scalar_ops)(a, ours, 0, 10)
    assert not _jit._typing_lean_kernel
    assert asked == [] or all(asked)
    assert numbas == []
    # each operator and operand types through the templates once (then remembered)
    assert typed and len(typed) == len(set(typed))
    numba.njit(_scalar_ops)(a, theirs, 0, 10)
    assert asked and not all(asked)  # (plain Numba asks about scalars)
    assert ours.tobytes() == theirs.tobytes()


def _dot_rows(x, w, out, t_begin, t_end):
    for t in range(t_begin, t_end):
        s = np.float32(0)
        for k in range(x.shape[1]):
            s += x[t, k] * w[k]
        out[t] = s


def test_one_round_pipeline_unrolls_without_the_second_round(monkeypatch):
    """A kernel on the UnrollingPipeline: its module gets Numba's cheap
    round and LLVM's loop unrolling, not the full -O3 round; the same
    results as on the LeanPipeline (one accumulator, its order fixed)."""
    from numba.core import config

    monkeypatch.setattr(config, "LLVM_PASS_TIMINGS", 1)
    opts = dict(nogil=True, fastmath=_jit.FASTMATH, error_model="numpy", _nrt=False)
    one = numba.njit(pipeline_class=_jit.UnrollingPipeline, **opts)(_dot_rows)
    two = numba.njit(pipeline_class=_jit.LeanPipeline, **opts)(_dot_rows)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((37, 301)).astype(np.float32)
    w = rng.standard_normal(301).astype(np.float32)
    a, b = np.zeros(37, np.float32), np.zeros(37, np.float32)
    one(x, w, a, 0, 37)
    two(x, w, b, 0, 37)
    assert a.tobytes() == b.tobytes()
    np.testing.assert_allclose(a, (x.astype(np.float64) @ w).astype(np.float32), rtol=1e-4, atol=1e-4)

    def rounds(kernel):
        cres = kernel.overloads[kernel.signatures[0]]
        return cres.library, {rec.name: {r.pass_name.split(" on ")[0] for r in rec.timings.list_records()}
                              for rec in cres.library.recorded_timings}

    library, passes = rounds(one)
    assert isinstance(library, _jit.UnrollingCodeLibrary)
    assert "LoopUnrollPass" in passes[_jit.UnrollingCodeLibrary.UNROLLING]
    assert not any("full optimization" in name for name in passes)
    library, passes = rounds(two)
    assert type(library) is not _jit.UnrollingCodeLibrary
    assert any("full optimization" in name for name in passes)


def test_band_kernel_is_compiled_in_one_round():
    from fastdeconv.backends import cpu_cfband

    assert cpu_cfband.cfband_kernel._compiler.pipeline_class is _jit.UnrollingPipeline
    assert cpu_rb.cl_kernel._compiler.pipeline_class is _jit.LeanPipeline


def test_kernels_compile_with_the_collector_paused(monkeypatch):
    """serial_kernel's compile runs with Python's cyclic collector paused
    and leaves it as it found it, also when typing fails."""
    import gc

    from numba.core.caching import NullCache

    seen = []
    typing = _jit.LeanTypeInference.run_pass

    def spy(self, state):
        seen.append(gc.isenabled())
        return typing(self, state)

    monkeypatch.setattr(_jit.LeanTypeInference, "run_pass", spy)
    kernel = _jit.serial_kernel(_dot_rows)
    kernel._cache = NullCache()  # (compiled here, not loaded)
    x = np.ones((3, 5), np.float32)
    w = np.ones(5, np.float32)
    out = np.zeros(3, np.float32)
    assert gc.isenabled()
    kernel(x, w, out, 0, 3)
    assert seen == [False] and gc.isenabled()
    assert out.tolist() == [5.0, 5.0, 5.0]
    with pytest.raises(numba.core.errors.TypingError):
        kernel(x, "w", out, 0, 3)
    assert gc.isenabled()
    gc.disable()
    try:
        kernel(x.astype(np.float64), w.astype(np.float64), out.astype(np.float64), 0, 3)
        assert not gc.isenabled()
    finally:
        gc.enable()
    assert seen == [False] * 3


@numba.njit(inline="always")
def _clamped(v, lo, hi):
    if v < lo:
        return lo
    return hi if v > hi else v


def _loops(a, out, n0, n1, step):
    # loops of every range form (negative and empty ones too), branches,
    # an inlined helper: the IR the lean passes process
    k = 0
    for i in range(n1):
        out[k] = _clamped(a[i % a.size], -1.0, 1.0)
        k += 1
    for i in range(n0, n1):
        out[k] = a[i % a.size] * i
        k += 1
    for i in range(n1, n0):
        out[k] = -1.0
        k += 1
    for i in range(n1, n0, step):
        out[k] = a[i % a.size] + i
        k += 1
    for i in range(n0, n1, -step):
        out[k] = 7.0
        k += 1
    j = 0
    while j < 3:
        if a[j] > 0:
            out[k] = a[j]
        else:
            out[k] = _clamped(a[j] * 5, -2.0, 2.0)
        k += 1
        j += 1
    return k


def test_lean_ir_processing_skips_liveness_and_matches_numba(monkeypatch):
    """LeanIRProcessing and LeanInlineInlinables leave the variables'
    liveness to the IR legalization (the only processing with `del`s in
    the lean pipeline), restore Numba's post-processor after inlining, and
    the kernel computes what Numba's own pipeline does."""
    from numba.core import postproc

    runs = []
    run = postproc.PostProcessor.run

    def spy(self, emit_dels=False, extend_lifetimes=False):
        runs.append(emit_dels)
        return run(self, emit_dels, extend_lifetimes)

    monkeypatch.setattr(postproc.PostProcessor, "run", spy)
    monkeypatch.setattr(_jit, "_postproc_run", spy)
    ours = numba.njit(pipeline_class=_jit.LeanPipeline, error_model="numpy")(_loops)
    theirs = numba.njit(error_model="numpy")(_loops)
    a = np.array([0.5, -3.0, 2.0, -0.25, 4.0])
    sig = tuple(numba.typeof((a, a, 0, 0, 0)))
    ours.compile(sig)
    # every full processing of ours (and its inlined helper's): the
    # legalization's, with the dels
    assert runs and all(runs)
    assert postproc.PostProcessor.run is spy
    theirs.compile(sig)
    assert not all(runs)  # (Numba's pipeline: the liveness without dels too)
    for n0, n1, step in [(2, 9, -2), (9, 2, -3), (0, 0, -1), (-4, 5, -1)]:
        outs = [np.zeros(64), np.zeros(64)]
        counts = [f(a, o, n0, n1, step) for f, o in zip((ours, theirs), outs)]
        assert counts[0] == counts[1]
        assert outs[0].tobytes() == outs[1].tobytes()


def _items(a, b, m, out, ro, i32, u64):
    # element reads and writes of every index form the lean lowering takes
    # (negative indices from the end, 32-bit and unsigned indices, literal
    # ones, 2-D, a 1-tuple on 1-D, a read-only array) and of the forms it leaves to Numba
    # (a slice, a non-contiguous array)
    n = a.size
    for i in range(-n, n):
        out[i + n] = a[i] * 2 + b[i % b.size]
    out[2 * n] = a[0] + a[-1] + ro[-2]
    out[2 * n + 1] = a[i32] + a[u64] + a[np.int32(-1)]
    for r in range(-m.shape[0], m.shape[0]):
        for c in range(-m.shape[1], m.shape[1]):
            m[r, c] += r * 10 + c
    s = a[1:4]
    out[2 * n + 2] = s[0] + s[-1]
    t = m[:, 1]
    out[2 * n + 3] = t[-1]
    b[-1] = 5
    b[u64] = a[i32]
    b[(1,)] = b[(-2,)] + 1
    return out[0]


def test_lean_element_access_matches_numba():
    """LeanLower's element reads and writes give Numba's results, negative
    and unsigned indices included, and leave other indexing to Numba."""
    ours = numba.njit(pipeline_class=_jit.LeanPipeline, error_model="numpy")(_items)
    theirs = numba.njit(error_model="numpy")(_items)
    rng = np.random.default_rng(0)
    a = rng.standard_normal(7).astype(np.float32)
    ro = a.copy()
    ro.flags.writeable = False
    results = []
    for f in (ours, theirs):
        b = np.arange(5, dtype=np.int64)
        m = np.zeros((3, 4))
        out = np.zeros(32)
        first = f(a, b, m, out, ro, np.int32(-3), np.uint64(2))
        results.append((first, b, m, out))
    for mine, ref in zip(results[0], results[1]):
        assert np.asarray(mine).tobytes() == np.asarray(ref).tobytes()


def test_unit_step_ranges_take_the_lean_iterator(monkeypatch):
    """range(stop) and range(start, stop) loops get LeanLower's iterator,
    loops with a step Numba's; every range loop LeanLower's next step; the
    results are Numba's (_loops' test)."""
    made = []
    lean = _jit.LeanLower._unit_step_iter

    def spy(self, expr, resty):
        it = lean(self, expr, resty)
        made.append(it is not None)
        return it

    nexts = []
    lean_next = _jit.LeanLower._range_next

    def spy_next(self, expr, resty):
        nexts.append(expr)
        return lean_next(self, expr, resty)

    monkeypatch.setattr(_jit.LeanLower, "_unit_step_iter", spy)
    monkeypatch.setattr(_jit.LeanLower, "_range_next", spy_next)
    kernel = numba.njit(pipeline_class=_jit.LeanPipeline, error_model="numpy")(_loops)
    a = np.ones(4)
    kernel.compile(tuple(numba.typeof((a, a, 0, 0, 0))))
    assert made == [True, True, True, False, False]
    assert len(nexts) == 5  # (every range loop's next step, any step)
