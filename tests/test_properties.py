"""Property tests (Hypothesis, deterministic profile in conftest): random
small geometry on every backend, checked against the naive loops
(tests/naive.py, independent of fastdeconv), the adjoint identity, layout
symmetry, argument-spelling invariance and the float16 rules."""

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

import fastdeconv
import geometry as geo
from cases import (Case, assert_float16_rule, assert_float64_close, call_ours, naive_result, reference,
                   spell_padding)


@st.composite
def geometries(draw, transpose=None, allow_groups=True, max_n=None):
    transpose = draw(st.booleans()) if transpose is None else transpose
    rank = draw(st.integers(1, 3))
    top = max_n or {1: 7, 2: 5, 3: 3}[rank]
    dims = st.tuples(*[st.integers(1, top)] * rank)
    n = draw(dims)
    kernel = draw(st.tuples(*[st.integers(1, 4 if rank < 3 else 3)] * rank))
    strides = draw(st.tuples(*[st.integers(1, 3)] * rank))
    dilations = draw(st.tuples(*[st.integers(1, 3)] * rank))
    padding = draw(st.one_of(st.sampled_from(["SAME", "VALID"]),
                             st.tuples(*[st.tuples(st.integers(0, 3), st.integers(0, 3))] * rank)))
    groups = draw(st.sampled_from([1, 1, 2])) if allow_groups and not transpose else 1
    cin = groups * draw(st.integers(1, 3))
    cout = groups * draw(st.integers(1, 3))
    case = Case(transpose, n, kernel, strides, dilations, padding, cin, cout, batch=draw(st.integers(1, 2)),
                channels_first=draw(st.booleans()), groups=groups)
    if transpose:
        valid = [geo.transpose_sizes(n[i], kernel[i], strides[i], dilations[i], case.pad(i)) for i in range(rank)]
        assume(all(valid))
        case.out_spatial = tuple(draw(st.sampled_from(v)) for v in valid)
    else:
        assume(all(o is not None and o > 0 for o in case.out_sizes()))
    return case


@given(case=geometries(), seed=st.integers(0, 2**32 - 1))
def test_matches_naive_loops(case, seed, backend):
    """float64 result == the naive gather loops (1e-12), right shape and dtype."""
    x, w = case.inputs(np.random.default_rng(seed))
    ours = call_ours(case, x, w, backend)
    assert ours.shape == case.out_shape() and ours.dtype == np.float64
    assert_float64_close(ours, naive_result(case, x, w), str(case))


@given(case=geometries(transpose=False, allow_groups=False), seed=st.integers(0, 2**32 - 1))
def test_adjoint_identity(case, seed, backend):
    """<conv(z, w), y> == <z, conv_transpose(y, w)> with the same w,
    strides, padding and dilations, and output_shape = z.shape."""
    rng = np.random.default_rng(seed)
    z, w = case.inputs(rng)
    fwd = call_ours(case, z, w, backend)
    y = rng.standard_normal(fwd.shape)
    t_case = Case(True, case.out_sizes(), case.kernel, case.strides, case.dilations, case.padding,
                  cin=case.cout, cout=case.cin, batch=case.batch, channels_first=case.channels_first,
                  out_spatial=case.n)
    back = call_ours(t_case, y, w, backend)
    assert back.shape == z.shape
    lhs, rhs = float(np.vdot(fwd, y)), float(np.vdot(z, back))
    scale = np.linalg.norm(fwd) * np.linalg.norm(y) + np.linalg.norm(z) * np.linalg.norm(back)
    assert abs(lhs - rhs) <= 1e-12 * max(scale, 1e-300), (str(case), lhs, rhs)


@given(case=geometries(), seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from([np.float32, np.float64]))
def test_channels_first_equals_channels_last(case, seed, dtype, backend):
    """The channels-first result is the channels-last result with the
    channel axis moved (same values up to rounding order)."""
    case.channels_first = False
    x, w = case.inputs(np.random.default_rng(seed), dtype)
    last = call_ours(case, x, w, backend)
    case.channels_first = True
    first = call_ours(case, np.moveaxis(x, -1, 1), w, backend)
    assert first.shape == np.moveaxis(last, -1, 1).shape and first.dtype == dtype
    tol = 1e-12 if dtype == np.float64 else 1e-6
    assert_float64_close(first, np.moveaxis(last, -1, 1), str(case), tol=tol)


@given(case=geometries(), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_argument_spellings_are_equivalent(case, seed, data, backend):
    """Every accepted spelling of strides/dilations/padding/output_shape
    gives bit-identical results."""
    x, w = case.inputs(np.random.default_rng(seed), np.float32)
    base = call_ours(case, x, w, backend, {"strides": "listN", "dilations": "listN", "padding": "upper"})
    styles = ["listN2"] + (["int", "list1"] if len(set(case.strides)) == 1 else [])
    dstyles = ["listN2"] + (["int", "list1"] if len(set(case.dilations)) == 1 else []) + (
        ["none"] if all(d == 1 for d in case.dilations) else [])
    pstyles = ["lower", "mixed"] if isinstance(case.padding, str) else ["pairsN2"]
    spelling = {"strides": data.draw(st.sampled_from(styles)), "dilations": data.draw(st.sampled_from(dstyles)),
                "padding": data.draw(st.sampled_from(pstyles))}
    other = call_ours(case, x, w, backend, spelling)
    np.testing.assert_array_equal(base, other)
    if case.transpose:
        natural = tuple(geo.natural_transpose_size(case.n[i], case.kernel[i], case.strides[i], case.dilations[i],
                                                   case.pad(i)) for i in range(case.rank))
        case.out_spatial, case.natural = natural, True
        by_none = call_ours(case, x, w, backend)
        case.natural = False
        np.testing.assert_array_equal(by_none, call_ours(case, x, w, backend))


@given(case=geometries(), seed=st.integers(0, 2**32 - 1))
def test_float16_is_float32_rounded_once(case, seed, backend):
    x, w = case.inputs(np.random.default_rng(seed), np.float16)
    ours = call_ours(case, x, w, backend)
    assert ours.dtype == np.float16 and ours.shape == case.out_shape()
    assert_float16_rule(ours, x, w, case, reference)


@given(case=geometries(), seed=st.integers(0, 2**32 - 1))
def test_float16_exact_on_dyadic_inputs(case, seed, backend):
    """Inputs whose float32 sums are exact: the float16 result is exactly
    the true value rounded to float16."""
    x, w = case.inputs(np.random.default_rng(seed), np.float16, kind="dyadic")
    ours = call_ours(case, x, w, backend)
    np.testing.assert_array_equal(ours, naive_result(case, x, w).astype(np.float16))


@given(case=geometries(), seed=st.integers(0, 2**32 - 1))
def test_float32_within_bar_of_reference(case, seed, backend):
    """float32 on small sums: within the SPEC floor (2e-6) of the reference."""
    x, w = case.inputs(np.random.default_rng(seed), np.float32)
    ours = call_ours(case, x, w, backend)
    assert ours.dtype == np.float32
    assert_float64_close(ours, reference(case, x, w), str(case), tol=2e-6)


@given(case=geometries(), seed=st.integers(0, 2**32 - 1))
def test_shape_helpers_agree_with_ops(case, seed, backend):
    """conv_output_shape / conv_transpose_output_shapes predict what the op
    returns, and both agree with the tests' own shape rules."""
    x, w = case.inputs(np.random.default_rng(seed), np.float32)
    padding = spell_padding(case.padding, case.channels_first, "pairsN")
    strides, dilations = list(case.strides), list(case.dilations)
    if case.transpose:
        shapes = [tuple(s) for s in fastdeconv.conv_transpose_output_shapes(
            x.shape, w.shape, strides, padding, case.data_format, dilations)]
        expected = [case._layout(o, case.cout) for o in _product_sizes(case)]
        assert shapes == expected
        assert case.out_shape() in shapes
    else:
        shape = fastdeconv.conv_output_shape(x.shape, w.shape, strides, padding, case.data_format, dilations)
        assert shape == case.out_shape()
    assert call_ours(case, x, w, backend).shape == case.out_shape()


def _product_sizes(case):
    import itertools
    return list(itertools.product(*[geo.transpose_sizes(case.n[i], case.kernel[i], case.strides[i],
                                                        case.dilations[i], case.pad(i)) for i in range(case.rank)]))
