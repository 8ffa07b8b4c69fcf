"""Edge cases from SPEC "Edge cases" and the SEMANTICS worked examples:
empty tensors, NaN/Inf propagation, untouched transposed outputs, inputs
never modified, unusual array layouts, and exact worked values."""

import itertools

import numpy as np
import pytest

import fastdeconv
import geometry as geo
import naive
import tf_oracle
from cases import Case, call_ours, random_case

# NumPy warns about NaN/Inf inside the reference backend's matmuls; the
# values are what these tests check.
nonfinite_ok = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")


# --- empty tensors -----------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_forward_batch_zero(dtype, backend):
    x, w = np.zeros((0, 6, 5, 3), dtype), np.ones((3, 2, 3, 4), dtype)
    for padding, strides, expected in [("SAME", 1, (0, 6, 5, 4)), ("VALID", 1, (0, 4, 4, 4)),
                                       ("SAME", 2, (0, 3, 3, 4)), ([(1, 0), (2, 2)], [1, 3], (0, 5, 3, 4))]:
        out = fastdeconv.conv2d(x, w, strides, padding, backend=backend)
        assert out.shape == expected and out.dtype == dtype
    # TF's Eigen path (float64) gives the same empty shape.
    assert tf_oracle.call("conv2d", x.astype(np.float64), w.astype(np.float64), 1, "VALID").shape == (0, 4, 4, 4)


def test_forward_batch_zero_still_validated(backend):
    x = np.zeros((0, 2, 5, 3))
    with pytest.raises(fastdeconv.ShapeError):
        fastdeconv.conv2d(x, np.ones((3, 3, 3, 4)), 1, "VALID", backend=backend)
    with pytest.raises(fastdeconv.ShapeError):
        fastdeconv.conv2d(x, np.ones((3, 3, 2, 4)), 1, "SAME", backend=backend)
    with pytest.raises(ValueError):
        fastdeconv.conv2d(x, np.ones((3, 3, 3, 4)), 0, "SAME", backend=backend)


def test_forward_spatial_zero_same(backend):
    out = fastdeconv.conv2d(np.zeros((2, 0, 5, 3), np.float32), np.ones((3, 3, 3, 4), np.float32), 2, "SAME",
                            backend=backend)
    assert out.shape == (2, 0, 3, 4) and out.dtype == np.float32
    out = fastdeconv.conv3d(np.zeros((1, 3, 0, 0, 2)), np.ones((1, 2, 2, 2, 1)), 1, "SAME", backend=backend)
    assert out.shape == (1, 3, 0, 0, 1)


def test_forward_spatial_zero_with_explicit_padding_is_zeros(backend):
    """n = 0 padded to 4 with k = 3: two windows made only of padding."""
    out = fastdeconv.conv1d(np.zeros((1, 0, 3)), np.ones((3, 3, 2)), 1, [(2, 2)], backend=backend)
    assert out.shape == (1, 2, 2)
    np.testing.assert_array_equal(out, 0.0)


@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
def test_forward_zero_input_channels_gives_zeros(data_format, backend):
    x = np.zeros((2, 6, 5, 0) if data_format == "NHWC" else (2, 0, 6, 5), np.float32)
    out = fastdeconv.conv2d(x, np.zeros((3, 3, 0, 4), np.float32), 2, "SAME", data_format, backend=backend)
    assert out.shape == ((2, 3, 3, 4) if data_format == "NHWC" else (2, 4, 3, 3)) and out.dtype == np.float32
    np.testing.assert_array_equal(out, 0.0)


def test_forward_zero_output_channels_is_empty(backend):
    out = fastdeconv.conv1d(np.ones((2, 7, 3)), np.ones((3, 3, 0)), 2, "VALID", backend=backend)
    assert out.shape == (2, 3, 0)
    assert tf_oracle.call("conv1d", np.ones((2, 7, 3)), np.ones((3, 3, 0)), 2, "VALID").shape == (2, 3, 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_transpose_batch_zero(dtype, backend):
    x, w = np.zeros((0, 4, 3, 2), dtype), np.ones((3, 3, 5, 2), dtype)
    out = fastdeconv.conv2d_transpose(x, w, [0, 8, 5, 5], 2, "SAME", backend=backend)
    assert out.shape == (0, 8, 5, 5) and out.dtype == dtype
    assert fastdeconv.conv2d_transpose(x, w, None, 2, "VALID", backend=backend).shape == (0, 9, 7, 5)
    with pytest.raises(fastdeconv.ShapeError) as info:
        fastdeconv.conv2d_transpose(x, w, [0, 9, 5, 5], 2, "SAME", backend=backend)
    assert "7 or 8" in str(info.value)
    with pytest.raises(fastdeconv.ShapeError):
        fastdeconv.conv2d_transpose(x, w, [1, 8, 5, 5], 2, "SAME", backend=backend)


@pytest.mark.parametrize("k, s", [(4, 2), (3, 1), (5, 2), (2, 3)])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_transpose_spatial_zero(k, s, padding, backend):
    """x with W = 0: TF's truncating rule decides the valid O (SEMANTICS 2.2);
    the result is zeros. Acceptance compared with TF float64 (1-D only: TF's
    conv3d_transpose crashes on empty inputs)."""
    x = np.zeros((1, 0, 2))
    w = np.ones((k, 3, 2))
    valid = geo.transpose_sizes(0, k, s, 1, padding)
    for o in range(0, k + s + 2):
        try:
            tf_ok = tf_oracle.call("conv1d_transpose", x, w, [1, o, 3], s, padding).shape == (1, o, 3)
        except tf_oracle.InvalidArgumentError:
            tf_ok = False
        assert tf_ok == (o in valid), o
        if o in valid:
            out = fastdeconv.conv1d_transpose(x, w, [1, o, 3], s, padding, backend=backend)
            assert out.shape == (1, o, 3)
            np.testing.assert_array_equal(out, 0.0)
        else:
            with pytest.raises(fastdeconv.ShapeError):
                fastdeconv.conv1d_transpose(x, w, [1, o, 3], s, padding, backend=backend)
    natural = fastdeconv.conv1d_transpose(x, w, None, s, padding, backend=backend)
    assert natural.shape[1] in valid


def test_transpose_zero_input_channels_gives_zeros(backend):
    out = fastdeconv.conv3d_transpose(np.zeros((2, 2, 3, 2, 0), np.float32), np.zeros((2, 2, 2, 4, 0), np.float32),
                                      None, 2, "SAME", backend=backend)
    assert out.shape == (2, 4, 6, 4, 4) and out.dtype == np.float32
    np.testing.assert_array_equal(out, 0.0)


def test_transpose_zero_output_channels_is_empty(backend):
    out = fastdeconv.conv1d_transpose(np.ones((2, 4, 3)), np.ones((3, 0, 3)), [2, 8, 0], 2, "SAME",
                                      backend=backend)
    assert out.shape == (2, 8, 0)


# --- NaN and Inf ---------------------------------------------------------------------

def _poison(x, rng, count):
    """Put NaN, +Inf and -Inf at `count` random places of x (a copy)."""
    x = x.copy()
    flat = x.reshape(-1)
    for i, idx in enumerate(rng.choice(flat.size, size=min(count, flat.size), replace=False)):
        flat[idx] = (np.nan, np.inf, -np.inf)[i % 3]
    return x


def _check_nonfinite(case, x, w, backend):
    ours = call_ours(case, x, w, backend)
    cl = (lambda a: np.moveaxis(a, 1, -1)) if case.channels_first else (lambda a: a)
    bad = ~np.isfinite(cl(x))
    if case.transpose:
        expect = naive.transpose_footprint(bad, case.kernel, case.strides, case.dilations, case.pads_before(),
                                           case.out_spatial, case.cout)
    else:
        expect = naive.forward_footprint(bad, case.kernel, case.strides, case.dilations, case.pads_before(),
                                         case.out_sizes(), case.groups, case.cout)
    got = ~np.isfinite(cl(ours))
    assert got.shape == expect.shape
    wrong = np.argwhere(got != expect)
    assert wrong.size == 0, f"{case}: non-finite pattern differs at {wrong[:5].tolist()} (expected {expect.sum()} " \
                            f"non-finite, got {got.sum()})"
    return ours


@nonfinite_ok
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("transpose", [False, True], ids=["forward", "transpose"])
def test_nonfinite_footprint(transpose, dtype, backend):
    """An output is non-finite exactly when its window (forward) or scatter
    footprint (transpose) touches a non-finite input, whatever the weight."""
    rng = np.random.default_rng(11 + transpose)
    for i in range(24):
        case = random_case(rng, transpose=transpose)
        x, w = case.inputs(rng, dtype)
        x = _poison(x, rng, int(rng.integers(1, 4)))
        w = w * (rng.random(w.shape) < 0.6)  # plenty of exact zero weights
        _check_nonfinite(case, x, w, backend)


@nonfinite_ok
@pytest.mark.parametrize("transpose", [False, True], ids=["forward", "transpose"])
def test_nonfinite_with_all_zero_weights(transpose, backend):
    """0 * NaN = NaN and 0 * Inf = NaN: zero weights are never skipped; all
    other outputs are exactly 0."""
    rng = np.random.default_rng(5)
    for i in range(16):
        case = random_case(rng, transpose=transpose)
        x, _ = case.inputs(rng)
        x = _poison(x, rng, 2)
        w = np.zeros(case.w_shape())
        ours = _check_nonfinite(case, x, w, backend)
        assert np.all(np.isnan(ours) | (ours == 0))
        assert not np.isinf(ours).any()


@nonfinite_ok
def test_nonfinite_grouped_stays_in_its_group(backend):
    """A NaN in one channel group poisons only that group's outputs."""
    x = np.ones((1, 5, 6))
    x[0, 2, 1] = np.nan  # group 0 of 3 (channels 0-1)
    w = np.zeros((3, 2, 6))
    out = fastdeconv.conv1d(x, w, 1, "SAME", backend=backend)
    assert np.isnan(out[0, 1:4, 0:2]).all()
    assert (out[0, :, 2:] == 0).all() and (out[0, [0, 4], :] == 0).all()


@nonfinite_ok
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("fill", [np.nan, np.inf])
def test_stride_larger_than_kernel_gaps_are_exact_zeros(rank, fill, backend):
    """Transposed outputs that no tap reaches are exactly 0, even when every
    input is NaN/Inf (and positions beyond L, VALID with large O)."""
    for s, k, d, padding in [(3, 2, 1, "VALID"), (3, 1, 1, "SAME"), (4, 2, 2, "VALID"), (3, 2, 1, "SAME")]:
        n = (3,) * rank
        case = Case(True, n, (k,) * rank, (s,) * rank, (d,) * rank, padding, cin=2, cout=2)
        sizes = geo.transpose_sizes(3, k, s, d, padding)
        case.out_spatial = (sizes[-1],) * rank
        x = np.full(case.x_shape(), fill)
        w = np.ones(case.w_shape())
        out = call_ours(case, x, w, backend)
        reached = naive.reached(n, case.kernel, case.strides, case.dilations, case.pads_before(), case.out_spatial)
        assert (~reached).any()
        gaps = out[0][~reached]
        assert np.all(gaps == 0.0), f"{case}: {gaps[gaps != 0][:5]}"
        assert not np.isfinite(out[0][reached]).any()


# --- non-finite weights: padding and positions outside the input give no term --------
#
# A tap that falls on padding (forward), or on a position between or outside
# the input pixels (transpose), contributes no term at all, not 0 * w: a
# NaN/Inf weight makes non-finite exactly the outputs where its tap reads
# (forward) or scatters (transpose) a real input pixel. naive.forward and
# naive.transpose skip such taps, so they are the expected values.
#
# TensorFlow 2.21 on CPU is not consistent here. Transposes on the Eigen path
# (float64, and float32 with TF_ENABLE_ONEDNN_OPTS=0) follow this rule; so do
# oneDNN float32 SAME transposes. Eigen forward convs (float64) multiply the
# padding (an Inf weight on a padded tap gives NaN there), and oneDNN float32
# does so along W only (conv3d, and transposes whose taps leave the input
# along W); oneDNN float32 conv2d follows the rule in the cases measured.
#
# The cpu kernels multiply a zero row into W-edge taps that fall on padding,
# so filters holding a NaN/Inf go through the float64 reference there
# (cpu.forward / cpu.transpose). The cuda kernels (checked under the
# simulator) multiply the padding on every axis.

WEIGHT_RULE_CASES = [
    Case(False, (5,), (3,), (1,), (1,), "SAME", 2, 3),
    Case(False, (7,), (3,), (2,), (1,), "SAME", 2, 3, channels_first=True),
    Case(False, (5, 6), (3, 1), (1, 1), (1, 1), "SAME", 2, 3),
    Case(False, (5, 6), (3, 3), (2, 1), (1, 2), "SAME", 3, 2),
    Case(False, (4, 5, 4), (3, 2, 1), (1, 2, 1), (1, 1, 1), ((1, 1), (0, 2), (0, 0)), 2, 2),
    Case(False, (4, 4, 5), (2, 3, 3), (1, 1, 1), (1, 1, 1), "SAME", 2, 2, channels_first=True),
    Case(True, (4,), (3,), (2,), (1,), "VALID", 2, 3, out_spatial=(10,)),
    Case(True, (4,), (3,), (2,), (1,), "SAME", 2, 3, out_spatial=(7,)),
    Case(True, (3, 4), (3, 1), (2, 1), (1, 1), "VALID", 3, 2, out_spatial=(8, 4)),
    Case(True, (3, 4), (3, 2), (2, 2), (1, 1), "SAME", 3, 2, out_spatial=(5, 8), channels_first=True),
    Case(True, (3, 3, 3), (3, 3, 3), (2, 2, 2), (1, 1, 1), "VALID", 2, 2, out_spatial=(7, 8, 8)),
    Case(True, (3, 3, 3), (3, 3, 3), (2, 2, 2), (1, 1, 1), "SAME", 2, 2, out_spatial=(6, 6, 5)),
    # filters larger than the result: the cpu backend checks the result
    # first and the filters only when it is not finite (backends.cpu._checked)
    Case(False, (3, 3), (3, 3), (1, 1), (1, 1), "SAME", 16, 16),
    Case(True, (2, 2), (3, 3), (2, 2), (1, 1), "SAME", 16, 16, out_spatial=(4, 4)),
]


def _expected(case, x, w):
    cl = (lambda a: np.moveaxis(a, 1, -1)) if case.channels_first else (lambda a: a)
    if case.transpose:
        y = naive.transpose(cl(x), w, case.strides, case.dilations, case.pads_before(), case.out_spatial)
    else:
        y = naive.forward(cl(x), w, case.strides, case.dilations, case.pads_before(), case.out_sizes(), case.groups)
    return np.moveaxis(y, -1, 1) if case.channels_first else y


@nonfinite_ok
@pytest.mark.parametrize("fill", [np.inf, np.nan])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", WEIGHT_RULE_CASES, ids=str)
def test_nonfinite_weight_on_padding_gives_no_term(case, dtype, fill, backend):
    """Every tap in turn holds one NaN/Inf weight (one channel pair); the
    inputs are positive and finite, so only outputs whose window reads (or
    footprint receives) that tap on a real input pixel are non-finite."""
    rng = np.random.default_rng(23)
    x = rng.uniform(0.5, 2.0, case.x_shape()).astype(dtype)
    w0 = rng.uniform(0.5, 2.0, case.w_shape()).astype(dtype)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for tap in np.ndindex(*case.kernel):
        w = w0.copy()
        w[tap][-1, 0] = fill
        expected = _expected(case, x, w)
        ours = call_ours(case, x, w, backend)
        assert (~np.isfinite(expected)).any() and np.isfinite(expected).any()
        np.testing.assert_allclose(ours, expected, rtol=rtol, err_msg=f"{case}, {fill} at tap {tap}")


@nonfinite_ok
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_nonfinite_weight_transpose_matches_tf_eigen(rank):
    """TF's Eigen transposes (float64) follow the rule: same NaN/Inf pattern
    and values as naive.transpose."""
    rng = np.random.default_rng(29)
    for case in WEIGHT_RULE_CASES:
        if not case.transpose or case.rank != rank:
            continue
        x = rng.uniform(0.5, 2.0, case.x_shape())
        for fill in (np.inf, np.nan):
            for tap in [(0,) * rank, tuple(k - 1 for k in case.kernel)]:
                w = rng.uniform(0.5, 2.0, case.w_shape())
                w[tap][-1, 0] = fill
                theirs = tf_oracle.conv_transpose(x, w, case.out_spatial, case.strides, case.padding,
                                                  case.dilations, case.channels_first)
                np.testing.assert_allclose(theirs, _expected(case, x, w), rtol=1e-12, err_msg=f"{case}, tap {tap}")


@nonfinite_ok
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nonfinite_weight_worked_examples(dtype, backend):
    """1-D: forward x = 1 (n=4), w = [inf, 1, 1], SAME -> the first output's
    tap 0 reads padding: [2, inf, inf, inf]. Transpose x = 1 (n=3), same w,
    stride 2, VALID O=8 -> tap 0 scatters to 0, 2, 4 only; 7 is reached by
    no tap: [inf, 1, inf, 1, inf, 1, 1, 0]."""
    w = np.array([np.inf, 1, 1], dtype).reshape(3, 1, 1)
    out = fastdeconv.conv1d(np.ones((1, 4, 1), dtype), w, 1, "SAME", backend=backend)
    np.testing.assert_array_equal(out.ravel(), [2, np.inf, np.inf, np.inf])
    out = fastdeconv.conv1d_transpose(np.ones((1, 3, 1), dtype), w, [1, 8, 1], 2, "VALID", backend=backend)
    np.testing.assert_array_equal(out.ravel(), [np.inf, 1, np.inf, 1, np.inf, 1, 1, 0])


# --- inputs are never modified; unusual array layouts -----------------------------------

OPS_FOR_INPUT_TESTS = [
    Case(False, (9,), (3,), (2,), (1,), "SAME", 3, 4),
    Case(False, (6, 5), (3, 2), (1, 2), (2, 1), ((1, 0), (0, 2)), 4, 2, groups=2, channels_first=True),
    Case(False, (4, 5, 3), (2, 3, 1), (2, 1, 1), (1, 1, 2), "VALID", 2, 3),
    Case(True, (5,), (3,), (2,), (1,), "VALID", 3, 2, out_spatial=(12,), channels_first=True),
    Case(True, (3, 4), (3, 3), (2, 2), (1, 1), "SAME", 2, 3, out_spatial=(5, 8)),
    Case(True, (2, 3, 2), (2, 2, 3), (2, 1, 2), (1, 2, 1), ((0, 1), (1, 1), (2, 0)), 2, 2,
         out_spatial=(4, 3, 4)),
]


@nonfinite_ok
@pytest.mark.parametrize("case", OPS_FOR_INPUT_TESTS, ids=str)
@pytest.mark.parametrize("dtype", ["<f4", "<f8", "<f2", ">f4", ">f8"])
def test_inputs_never_modified(case, dtype, backend, rng):
    x, w = case.inputs(rng, dtype)
    x[(0,) * x.ndim] = np.nan
    before = (x.tobytes(), w.tobytes(), x.dtype, w.dtype, x.flags.writeable, w.flags.writeable)
    call_ours(case, x, w, backend)
    after = (x.tobytes(), w.tobytes(), x.dtype, w.dtype, x.flags.writeable, w.flags.writeable)
    assert before == after


@pytest.mark.parametrize("case", OPS_FOR_INPUT_TESTS, ids=str)
def test_unusual_layouts_give_identical_results(case, backend, rng):
    """Sliced and transposed views, Fortran order, big-endian, read-only
    arrays and nested lists all give the same bits as a C-contiguous array."""
    x, w = case.inputs(rng, np.float32)
    expected = call_ours(case, x, w, backend)
    assert expected.dtype == np.float32

    big = np.zeros((2,) + tuple(2 * v for v in x.shape), np.float32)
    big[(0,) + tuple(slice(None, None, 2) for _ in x.shape)] = x
    strided = big[(0,) + tuple(slice(None, None, 2) for _ in x.shape)]
    assert not strided.flags.c_contiguous
    transposed_view = np.swapaxes(np.ascontiguousarray(np.swapaxes(x, -1, -2)), -1, -2)
    assert np.array_equal(transposed_view, x) and not transposed_view.flags.c_contiguous
    readonly = x.copy()
    readonly.flags.writeable = False
    w_strided = np.repeat(w, 2, axis=-1)[..., ::2]
    variants = {
        "strided": (strided, w),
        "transposed-view": (transposed_view, w),
        "fortran": (np.asfortranarray(x), np.asfortranarray(w)),
        "big-endian": (x.astype(">f4"), w.astype(">f4")),
        "read-only": (readonly, w),
        "strided-filters": (x, w_strided),
    }
    for name, (xv, wv) in variants.items():
        out = call_ours(case, xv, wv, backend)
        assert out.dtype == np.float32 and out.dtype.byteorder in "=|<", (name, out.dtype)
        np.testing.assert_array_equal(out, expected, err_msg=name)

    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    from_lists = call_ours(case, x64.tolist(), w64.tolist(), backend)
    assert from_lists.dtype == np.float64
    np.testing.assert_array_equal(from_lists, call_ours(case, x64, w64, backend))


def test_big_endian_float64_result_is_native(backend):
    x = np.arange(12, dtype=">f8").reshape(1, 4, 3)
    w = np.ones((2, 3, 1), dtype=">f8")
    out = fastdeconv.conv1d(x, w, 1, "VALID", backend=backend)
    assert out.dtype == np.float64 and out.dtype.isnative
    np.testing.assert_array_equal(out[0, :, 0], [3 + 12, 12 + 21, 21 + 30])


# --- SEMANTICS worked examples --------------------------------------------------------

# SEMANTICS 1.4: n, k, s, d, padding, output, (pb, pa)
FORWARD_TABLE = [
    (5, 3, 1, 1, "SAME", 5, (1, 1)),
    (6, 4, 1, 1, "SAME", 6, (1, 2)),
    (6, 3, 2, 1, "SAME", 3, (0, 1)),
    (5, 3, 2, 1, "SAME", 3, (1, 1)),
    (7, 3, 2, 2, "SAME", 4, (2, 2)),
    (8, 1, 3, 1, "SAME", 3, (0, 0)),
    (2, 5, 1, 1, "SAME", 2, (2, 2)),
    (1, 4, 3, 1, "SAME", 1, (1, 2)),
    (7, 3, 2, 1, "VALID", 3, (0, 0)),
    (7, 3, 2, 3, "VALID", 1, (0, 0)),
    (5, 3, 2, 1, (2, 1), 3, (2, 1)),
    (4, 3, 1, 1, (0, 2), 4, (0, 2)),
]


@pytest.mark.parametrize("n, k, s, d, padding, out, pads", FORWARD_TABLE, ids=str)
def test_semantics_forward_table(n, k, s, d, padding, out, pads, backend):
    """Output size and pads of each row. x = 1..n and w = powers of 10 make
    every output a digit pattern showing exactly which inputs each tap read,
    so a wrong pad shows up as shifted digits."""
    pad_arg = [padding] if isinstance(padding, tuple) else padding
    assert fastdeconv.conv_output_shape([1, n, 1], [k, 1, 1], s, pad_arg, dilations=d) == (1, out, 1)
    x = np.arange(1, n + 1, dtype=np.float64).reshape(1, n, 1)
    w = (10.0 ** np.arange(k)).reshape(k, 1, 1)
    ours = fastdeconv.conv1d(x, w, s, pad_arg, dilations=d, backend=backend)
    expected = naive.forward(x, w, (s,), (d,), (pads[0],), (out,))
    np.testing.assert_array_equal(ours, expected)


@pytest.mark.parametrize("n, k, s", [(3, 5, 1), (3, 4, 2)])
def test_semantics_forward_table_errors(n, k, s):
    with pytest.raises(fastdeconv.ShapeError):
        fastdeconv.conv_output_shape([1, n, 1], [k, 1, 1], s, "VALID")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_semantics_forward_values(dtype, backend):
    x = np.arange(1, 7, dtype=dtype).reshape(1, 6, 1)
    out = fastdeconv.conv1d(x, np.array([1, 10, 100, 1000], dtype).reshape(4, 1, 1), 1, "SAME", backend=backend)
    np.testing.assert_array_equal(out.ravel(), [3210, 4321, 5432, 6543, 654, 65])
    out = fastdeconv.conv1d(x, np.array([1, 10, 100], dtype).reshape(3, 1, 1), 2, "SAME", backend=backend)
    np.testing.assert_array_equal(out.ravel(), [321, 543, 65])


@pytest.mark.parametrize("w, padding, o, expected", [
    ([1, 2, 3], "SAME", 5, [2, 13, 20, 130, 200]),
    ([1, 2, 3], "SAME", 6, [1, 2, 13, 20, 130, 200]),
    ([1, 2, 3], "VALID", 7, [1, 2, 13, 20, 130, 200, 300]),
    ([1, 2, 3], "VALID", 8, [1, 2, 13, 20, 130, 200, 300, 0]),
    ([1, 2, 3, 4], "SAME", 6, [2, 13, 24, 130, 240, 300]),
    ([1, 2, 3, 4], "SAME", 5, [2, 13, 24, 130, 240]),
], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_semantics_transpose_values(w, padding, o, expected, dtype, backend):
    """SEMANTICS 2.1: x = [1, 10, 100], stride 2."""
    x = np.array([1, 10, 100], dtype).reshape(1, 3, 1)
    wa = np.array(w, dtype).reshape(len(w), 1, 1)
    out = fastdeconv.conv1d_transpose(x, wa, [1, o, 1], 2, padding, backend=backend)
    np.testing.assert_array_equal(out.ravel(), expected)
    out_cf = fastdeconv.conv1d_transpose(x.reshape(1, 1, 3), wa, [1, 1, o], 2, padding, "NCW", backend=backend)
    np.testing.assert_array_equal(out_cf.ravel(), expected)


# SEMANTICS 2.4: n, k, s, d, padding, {O: (pb, pa)}, Keras natural O (None for explicit)
TRANSPOSE_TABLE = [
    (4, 3, 2, 1, "SAME", {7: (1, 1), 8: (0, 1)}, 8),
    (4, 3, 2, 1, "VALID", {9: (0, 0), 10: (0, -1)}, 9),
    (4, 4, 2, 1, "SAME", {7: (1, 2), 8: (1, 1)}, 8),
    (4, 2, 2, 1, "SAME", {7: (0, 1), 8: (0, 0)}, 8),
    (3, 1, 2, 1, "SAME", {5: (0, 0), 6: (0, -1)}, 6),
    (3, 2, 3, 1, "VALID", {8: (0, 0), 9: (0, -1), 10: (0, -2)}, 9),
    (5, 3, 3, 1, "SAME", {13: (1, 1), 14: (0, 1), 15: (0, 0)}, 15),
    (2, 5, 1, 1, "VALID", {6: (0, 0)}, 6),
    (2, 5, 1, 1, "SAME", {2: (2, 2)}, 2),
    (1, 3, 2, 1, "VALID", {3: (0, 0), 4: (0, -1)}, 3),
    (4, 3, 1, 2, "SAME", {4: (2, 2)}, 4),
    (4, 3, 2, 2, "VALID", {11: (0, 0), 12: (0, -1)}, 11),
    (4, 3, 2, 2, "SAME", {7: (2, 2), 8: (1, 2)}, 8),
    (4, 3, 2, 1, (1, 1), {7: (1, 1), 8: (1, 0)}, None),
    (4, 3, 1, 1, (0, 2), {4: (0, 2)}, None),
]


@pytest.mark.parametrize("n, k, s, d, padding, crops, natural", TRANSPOSE_TABLE, ids=str)
def test_semantics_transpose_table(n, k, s, d, padding, crops, natural, backend):
    pad_arg = [padding] if isinstance(padding, tuple) else padding
    shapes = fastdeconv.conv_transpose_output_shapes([1, n, 1], [k, 1, 1], s, pad_arg, dilations=d)
    assert [tuple(v) for v in shapes] == [(1, o, 1) for o in sorted(crops)]
    x = (10.0 ** np.arange(n)).reshape(1, n, 1)
    w = np.arange(1, k + 1, dtype=np.float64).reshape(k, 1, 1)
    L = (n - 1) * s + (k - 1) * d + 1
    for o, (pb, pa) in crops.items():
        assert pb + o + pa == L  # the table's crop accounts for the whole length
        out = fastdeconv.conv1d_transpose(x, w, [1, o, 1], s, pad_arg, dilations=d, backend=backend)
        np.testing.assert_array_equal(out, naive.transpose(x, w, (s,), (d,), (pb,), (o,)))
    if natural is None:  # explicit pads: the smallest valid size (SPEC)
        natural = min(crops)
    out = fastdeconv.conv1d_transpose(x, w, None, s, pad_arg, dilations=d, backend=backend)
    assert out.shape == (1, natural, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_semantics_kernel_one_and_gaps(dtype, backend):
    """SEMANTICS 7.2."""
    x = np.array([3, 5, 7], dtype).reshape(1, 3, 1)
    w1 = np.ones((1, 1, 1), dtype)
    out = fastdeconv.conv1d_transpose(x, w1, [1, 5, 1], 2, "SAME", backend=backend)
    np.testing.assert_array_equal(out.ravel(), [3, 0, 5, 0, 7])
    out = fastdeconv.conv1d_transpose(x, w1, [1, 6, 1], 2, "SAME", backend=backend)
    np.testing.assert_array_equal(out.ravel(), [3, 0, 5, 0, 7, 0])
    ones, w2 = np.ones((1, 3, 1), dtype), np.ones((2, 1, 1), dtype)
    for o, expected in [(8, [1, 1, 0, 1, 1, 0, 1, 1]), (9, [1, 1, 0, 1, 1, 0, 1, 1, 0]),
                        (10, [1, 1, 0, 1, 1, 0, 1, 1, 0, 0])]:
        out = fastdeconv.conv1d_transpose(ones, w2, [1, o, 1], 3, "VALID", backend=backend)
        np.testing.assert_array_equal(out.ravel(), expected)


@nonfinite_ok
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_semantics_nan_inf_examples(dtype, backend):
    """SEMANTICS 7.3: forward x=[inf,1,1], w=[0,1] VALID -> [nan, 1];
    transpose of an Inf through w=[1,-1], s=3 -> inf, -inf."""
    out = fastdeconv.conv1d(np.array([np.inf, 1, 1], dtype).reshape(1, 3, 1),
                            np.array([0, 1], dtype).reshape(2, 1, 1), 1, "VALID", backend=backend)
    np.testing.assert_array_equal(out.ravel(), [np.nan, 1])
    out = fastdeconv.conv1d_transpose(np.array([2, np.inf, 3], dtype).reshape(1, 3, 1),
                                      np.array([1, -1], dtype).reshape(2, 1, 1), [1, 8, 1], 3, "VALID",
                                      backend=backend)
    np.testing.assert_array_equal(out.ravel(), [2, -2, 0, np.inf, -np.inf, 0, 3, -3])


def test_semantics_same_split_per_dimension(backend):
    """Odd SAME totals put the extra unit after, independently per dim
    (2-D and 3-D, different k/s/d per axis), checked by digit patterns."""
    for n, k, s, d in [((6, 5), (4, 3), (1, 2), (1, 1)), ((5, 6, 4), (2, 3, 2), (1, 2, 3), (2, 1, 1))]:
        rank = len(n)
        x = np.arange(1, int(np.prod(n)) + 1, dtype=np.float64).reshape((1,) + n + (1,))
        w = np.arange(1, int(np.prod(k)) + 1, dtype=np.float64).reshape(k + (1, 1)) ** 2
        pads = [geo.same_pads(*a) for a in zip(n, k, s, d)]
        out_sizes = [-(-a // b) for a, b in zip(n, s)]
        op = fastdeconv.conv2d if rank == 2 else fastdeconv.conv3d
        ours = op(x, w, list(s), "SAME", dilations=list(d), backend=backend)
        np.testing.assert_array_equal(ours, naive.forward(x, w, s, d, [p[0] for p in pads], out_sizes))
        assert any(p[1] > p[0] for p in pads)


def test_shape_helpers_cover_all_layouts():
    assert fastdeconv.conv_output_shape([2, 3, 9, 8], [3, 3, 3, 5], [2, 1], "SAME", "NCHW") == (2, 5, 5, 8)
    assert fastdeconv.conv_output_shape([4, 2, 9, 3], [3, 3, 2], 2, "VALID") == (4, 2, 4, 2)
    assert [tuple(s) for s in fastdeconv.conv_transpose_output_shapes([2, 3, 4], [3, 5, 3], 2, "SAME", "NCW")] == [
        (2, 5, 7), (2, 5, 8)]
    listed = fastdeconv.conv_transpose_output_shapes([1, 2, 2, 2, 1], [1, 2, 3, 4, 1], [1, 2, 3], "VALID")
    assert [tuple(s) for s in listed] == [(1, 2, a, b, 4) for a, b in itertools.product([4, 5], [6, 7, 8])]


def test_layer_softmax_kernel_matches_numpy_and_propagates_nan():
    from fastdeconv.backends import cpu_layers
    from fastdeconv.layers._base import softmax

    rng = np.random.default_rng(3)
    y = rng.standard_normal((2, 5, 7, 3)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    got = cpu_layers.softmax_last(y.copy(), b)
    np.testing.assert_allclose(got, softmax(y + b), rtol=1e-6, atol=1e-7)
    q = np.array([[np.nan, 1], [1, np.nan], [np.inf, 1], [-np.inf, 1]], np.float32)
    got = cpu_layers.softmax_last(q.copy())
    assert np.isnan(got[:3]).all()
    assert got[3].tolist() == [0.0, 1.0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_two_class_softmax_same_bits_as_the_general_loop(dtype):
    """softmax_last's two-class branch against its loop over any C: a third
    channel of -inf adds an exact 0 to the sum and never wins the max, so
    the first two channels must come out the same bits (NaN, Inf, huge
    values and the affine epilogue included)."""
    from fastdeconv.backends import cpu_layers

    rng = np.random.default_rng(5)
    y = (rng.standard_normal((3000, 2)) * 30).astype(dtype)
    y[::7, 0] = np.nan
    y[3::11, 1] = np.nan
    y[5::13] = [np.inf, 1]
    y[6::17] = [-np.inf, np.inf]
    y[8::19] = [-np.inf, -np.inf]
    y[9::23] = [3e38 if dtype == np.float32 else 1e308, -1]
    b, a, t = (rng.standard_normal(2).astype(dtype) for _ in range(3))
    two = cpu_layers.softmax_last(y.copy(), b, a, t)
    three = np.concatenate([y, np.full((len(y), 1), -np.inf, dtype)], axis=1)
    pad = lambda v, fill: np.append(v, dtype(fill))  # noqa: E731
    general = cpu_layers.softmax_last(three, pad(b, 0), pad(a, 1), pad(t, 0))[:, :2]
    assert two.tobytes() == np.ascontiguousarray(general).tobytes()
    assert np.isnan(two[7]).all() and np.isfinite(two[1]).all()


def test_layer_concat_kernel_is_a_copy():
    from fastdeconv.backends import cpu_layers

    rng = np.random.default_rng(4)
    a = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    b = rng.standard_normal((2, 3, 4, 2)).astype(np.float32)
    assert np.array_equal(cpu_layers.concat_last([a, b]), np.concatenate([a, b], -1))
    assert cpu_layers.concat_last([a, b.astype(np.float64)]) is None
    assert cpu_layers.concat_last([a, a, a]) is None


def test_exp_kernel_accuracy_and_special_values():
    """cpu_simd.exp_inplace, the softmax's exp: float32 vectors within 2 ulp
    of the true exp over the whole normal range (the masked tail too),
    exp(0) exactly 1, NaN kept, -inf and results below the smallest normal
    float32 0, overflow inf; float64 as libm's exp."""
    import numba

    from fastdeconv.backends.cpu_simd import addr, exp_inplace

    @numba.njit
    def exp_all(a):
        exp_inplace(a, addr(a), a.size)

    x = np.concatenate([np.linspace(-87.3, 88.7, 100_003),
                        [0.0, -0.0, np.nan, -np.inf, np.inf, -87.4, -300.0, 88.8, 1e-30, -1e-30]])
    got = x.astype(np.float32)
    exp_all(got)
    want = np.exp(x.astype(np.float32).astype(np.float64))
    f32 = np.finfo(np.float32)
    normal = (want >= f32.tiny) & (want <= f32.max)
    assert (np.abs(got[normal] - want[normal]) <= 2.4e-7 * want[normal]).all()
    assert got[-10:-8].tolist() == [1.0, 1.0]
    assert np.isnan(got[-8])
    assert got[-7:-2].tolist() == [0.0, np.inf, 0.0, 0.0, np.inf]
    g64 = x.copy()
    exp_all(g64)
    np.testing.assert_allclose(g64[np.isfinite(x)], np.exp(x[np.isfinite(x)]), rtol=4e-16)
