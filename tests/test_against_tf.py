"""fastdeconv against tf.nn, on every backend.

Accuracy rules (SPEC "Accuracy"), all measured against the float64
reference backend on the same inputs: float64 within 1e-12 (and the
reference within 1e-12 of TF float64); float32 no further than TF float32
(or 2e-6); float16 the float32 result rounded once (within 1 ulp of the
exact value rounded), and loosely TF's half-precision value.
"""

import itertools

import numpy as np
import pytest

import fastdeconv
import geometry as geo
import tf_oracle
from cases import (Case, all_output_sizes, assert_float32_bar, assert_float64_close, call_ours, check_against_tf,
                   random_case, reference)

# --- a seeded random sweep -------------------------------------------------------

SWEEP_SIZE = 360
_sweep_rng = np.random.default_rng(20240611)
SWEEP = [random_case(_sweep_rng) for _ in range(SWEEP_SIZE)]


@pytest.mark.parametrize("index", range(SWEEP_SIZE), ids=[f"{i:03d}-{c}" for i, c in enumerate(SWEEP)])
def test_random_sweep(index, backend):
    """Random rank/n/k/s/d/padding/format/output size/argument spelling;
    float16 on every fourth case."""
    case = SWEEP[index]
    rng = np.random.default_rng(1000 + index)
    check_against_tf(case, backend, rng, float16=index % 4 == 0)


def test_sweep_covers_the_space():
    """The sweep really mixes what it claims to (guards against a
    generator change that silently narrows it)."""
    ops = {c.op for c in SWEEP}
    assert ops == {"conv1d", "conv2d", "conv3d", "conv1d_transpose", "conv2d_transpose", "conv3d_transpose"}
    assert {c.padding if isinstance(c.padding, str) else "explicit" for c in SWEEP} == {"SAME", "VALID", "explicit"}
    assert any(c.channels_first for c in SWEEP) and not all(c.channels_first for c in SWEEP)
    assert sum(max(c.strides) > 1 and max(c.dilations) > 1 for c in SWEEP) >= 20
    assert sum(c.groups > 1 for c in SWEEP) >= 5
    assert sum(c.transpose and c.natural for c in SWEEP) >= 20
    assert {c.spelling["strides"] for c in SWEEP} == {"int", "list1", "listN", "listN2"}
    assert {c.spelling["dilations"] for c in SWEEP} == {"int", "list1", "listN", "listN2", "none"}
    assert {c.spelling["padding"] for c in SWEEP} == {"upper", "lower", "mixed", "pairsN", "pairsN2"}
    assert any(c.spelling.get("output_shape") == "spatial" for c in SWEEP)


# --- a systematic grid -----------------------------------------------------------

GRID_N = {1: (11,), 2: (9, 8), 3: (7, 6, 7)}
GRID_K = {1: (3,), 2: (3, 2), 3: (2, 3, 2)}
GRID_PADS = {1: ((1, 2),), 2: ((1, 2), (0, 1)), 3: ((2, 0), (1, 1), (0, 2))}
STRIDE_DILATION = [(1, 1), (2, 1), (3, 1), (1, 2), (1, 3), (2, 2), (3, 2), (2, 3)]
PADDINGS = ["SAME", "VALID", "pairsN", "pairsN2"]


def grid_case(rank, transpose, padding, s, d, channels_first, natural):
    pad = GRID_PADS[rank] if padding.startswith("pairs") else padding
    case = Case(transpose, GRID_N[rank], GRID_K[rank], (s,) * rank, (d,) * rank, pad, cin=3, cout=2, batch=2,
                channels_first=channels_first)
    case.spelling = {"padding": padding if padding.startswith("pairs") else "upper",
                     "strides": "int", "dilations": "int"}
    if transpose:
        sizes = all_output_sizes(case)
        case.natural = natural
        case.out_spatial = (tuple(geo.natural_transpose_size(case.n[i], case.kernel[i], s, d, case.pad(i))
                                  for i in range(rank)) if natural else sizes[-1])
    return case


GRID = [grid_case(rank, transpose, padding, s, d, cf, natural)
        for rank in (1, 2, 3) for transpose in (False, True) for padding in PADDINGS
        for s, d in STRIDE_DILATION for cf in (False, True)
        for natural in ((True, False) if transpose else (False,))
        if rank < 3 or (s, d) in [(1, 1), (2, 1), (1, 2), (2, 2), (3, 2)]]


@pytest.mark.parametrize("case", GRID, ids=str)
def test_grid(case, backend, rng):
    """Each op x SAME/VALID/explicit (both spellings) x stride/dilation
    pairs (incl. both > 1) x both formats x output_shape None and given."""
    check_against_tf(case, backend, rng)


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("transpose", [False, True], ids=["forward", "transpose"])
@pytest.mark.parametrize("channels_first", [False, True], ids=["cl", "cf"])
def test_float16(rank, transpose, channels_first, backend, rng):
    """float16 in, float16 out: the float32 result rounded once; TF's half
    precision result only loosely."""
    for padding, s, d in [("SAME", 2, 1), ("VALID", 1, 2), ("pairsN", 2, 2)]:
        case = grid_case(rank, transpose, padding, s, d, channels_first, natural=False)
        check_against_tf(case, backend, rng, float16=True)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_float16_exact_when_float32_is_exact(rank, backend, rng):
    """With dyadic inputs every float32 partial sum is exact, so the result
    must be exactly the true value rounded to float16 (TF's half-precision
    accumulation is allowed to miss it; ours is not)."""
    for transpose in (False, True):
        case = grid_case(rank, transpose, "SAME", 2, 1, False, natural=False)
        case.cin = 8
        x, w = case.inputs(rng, np.float16, kind="dyadic")
        ours = call_ours(case, x, w, backend)
        exact = reference(case, x, w)
        assert ours.dtype == np.float16
        np.testing.assert_array_equal(ours, exact.astype(np.float16))


# --- every valid output_shape ------------------------------------------------------

OUTPUT_SHAPE_CASES = [
    Case(True, (4,), (3,), (2,), (1,), "SAME", 2, 3),
    Case(True, (4,), (3,), (3,), (1,), "VALID", 2, 3),
    Case(True, (3,), (2,), (3,), (1,), "VALID", 2, 3),      # stride > kernel: trailing zeros
    Case(True, (5,), (3,), (3,), (2,), ((1, 2),), 2, 3),
    Case(True, (4, 3), (3, 4), (2, 3), (1, 1), "SAME", 2, 2, channels_first=True),
    Case(True, (4, 3), (3, 2), (2, 3), (2, 1), "VALID", 2, 2),
    Case(True, (3, 4), (2, 3), (3, 2), (1, 2), ((0, 1), (2, 2)), 2, 2),
    Case(True, (3, 2, 3), (2, 3, 1), (2, 3, 2), (1, 1, 1), "SAME", 2, 2),
    Case(True, (2, 3, 2), (3, 1, 2), (3, 2, 2), (1, 1, 2), "VALID", 2, 2, channels_first=True),
    Case(True, (2, 2, 3), (2, 2, 2), (2, 2, 3), (2, 1, 1), ((1, 0), (0, 1), (1, 1)), 2, 2),
    # Explicit crops that start past the un-cropped length L = 1 (all zeros)
    # or run past its end.
    Case(True, (1,), (1,), (4,), (1,), ((3, 0),), 2, 3),
    Case(True, (2, 1), (2, 1), (3, 5), (1, 1), ((4, 0), (2, 0)), 2, 3),
]


@pytest.mark.parametrize("base", OUTPUT_SHAPE_CASES, ids=str)
def test_every_valid_output_shape(base, backend, rng):
    """Every output size TF accepts, and output_shape=None (the natural
    size, which must be one of them)."""
    sizes = all_output_sizes(base)
    assert 0 < len(sizes) <= int(np.prod(base.strides))
    for sizes_i in sizes:
        case = Case(**{**base.__dict__, "out_spatial": sizes_i, "spelling": {}})
        check_against_tf(case, backend, rng)
    natural = tuple(geo.natural_transpose_size(base.n[i], base.kernel[i], base.strides[i], base.dilations[i],
                                               base.pad(i)) for i in range(base.rank))
    assert natural in sizes
    check_against_tf(Case(**{**base.__dict__, "out_spatial": natural, "natural": True, "spelling": {}}),
                     backend, rng)


# --- cases where TF itself needs a workaround (see tf_oracle) --------------------------

@pytest.mark.parametrize("case", [
    # oneDNN float32: one output along W with stride 3 and a 4-wide kernel.
    Case(False, (4, 1), (1, 4), (1, 3), (1, 1), "SAME", cin=1, cout=3, batch=2),
    Case(False, (6, 2), (4, 2), (1, 3), (1, 1), "VALID", cin=2, cout=2, batch=3),
    Case(False, (3, 4, 1), (1, 1, 3), (1, 1, 3), (1, 1, 1), "SAME", cin=1, cout=4, batch=2),
    # Eigen conv3d (float64/float16): SAME with a negative unclamped total.
    Case(False, (3, 1, 1), (1, 1, 3), (3, 2, 2), (1, 1, 1), "SAME", cin=4, cout=1),
    Case(False, (7, 4, 5), (1, 1, 2), (4, 4, 1), (1, 1, 1), "SAME", cin=2, cout=2, batch=2),
], ids=str)
def test_cases_tf_gets_wrong(case, backend, rng):
    check_against_tf(case, backend, rng, float16=True)


# --- medium shapes: several tiles along W, batch and channels -------------------------

def _medium(transpose, n, k, s, d, padding, cin, cout, batch, cf, groups=1, out="natural"):
    case = Case(transpose, n, k, s, d, padding, cin, cout, batch=batch, channels_first=cf, groups=groups)
    if transpose:
        case.natural = out == "natural"
        case.out_spatial = (tuple(geo.natural_transpose_size(*a, case.pad(i)) for i, a in enumerate(zip(n, k, s, d)))
                            if case.natural else out)
    return case


MEDIUM = [
    _medium(False, (130,), (5,), (2,), (1,), "SAME", 33, 70, 3, False),
    _medium(False, (150,), (3,), (1,), (3,), ((4, 1),), 20, 40, 2, True),
    _medium(False, (20, 67), (3, 3), (1, 2), (1, 1), "SAME", 17, 65, 3, False),
    _medium(False, (19, 70), (4, 2), (2, 1), (2, 2), "VALID", 9, 35, 2, True),
    _medium(False, (15, 66), (3, 3), (1, 1), (1, 1), "SAME", 24, 72, 2, False, groups=3),
    _medium(False, (12, 80), (3, 1), (1, 3), (1, 1), ((1, 1), (0, 2)), 12, 8, 2, True, groups=4),
    _medium(False, (6, 9, 70), (2, 3, 3), (1, 2, 1), (1, 1, 1), "SAME", 10, 66, 2, False),
    _medium(False, (5, 8, 67), (3, 2, 3), (2, 1, 2), (1, 2, 1), "VALID", 8, 34, 2, True),
    _medium(True, (70,), (4,), (2,), (1,), "SAME", 33, 66, 3, False, out=(139,)),
    _medium(True, (65,), (3,), (3,), (2,), "VALID", 20, 40, 2, True),
    _medium(True, (12, 35), (3, 3), (2, 2), (1, 1), "SAME", 65, 70, 2, False, out=(23, 70)),
    _medium(True, (10, 40), (3, 4), (1, 2), (2, 1), ((2, 1), (1, 2)), 12, 33, 2, True),
    _medium(True, (4, 6, 34), (3, 3, 3), (2, 2, 2), (1, 1, 1), "SAME", 20, 66, 2, False, out=(7, 12, 67)),
    _medium(True, (3, 5, 33), (2, 3, 2), (1, 2, 3), (1, 1, 1), "VALID", 9, 35, 2, True),
]


@pytest.mark.parametrize("case", MEDIUM, ids=str)
def test_medium_shapes(case, backend, rng):
    """Shapes large enough for a tiled kernel to split W, batch and
    channels into several blocks with remainders."""
    check_against_tf(case, backend, rng)


# --- accepted output sizes: ours == TF's (Eigen path, float64) -----------------------

def _accept_cases():
    rng = np.random.default_rng(77)
    out = []
    for _ in range(40):
        rank = int(rng.choice([1, 1, 2, 3]))
        n = tuple(int(v) for v in rng.integers(1, 5, rank))
        k = tuple(int(v) for v in rng.integers(1, 5, rank))
        s = tuple(int(v) for v in rng.integers(1, 4, rank))
        d = tuple(int(v) for v in rng.choice([1, 1, 2], rank))
        r = rng.random()
        pad = "SAME" if r < 0.35 else "VALID" if r < 0.7 or rank == 3 else tuple(
            (int(a), int(b)) for a, b in rng.integers(0, 4, (rank, 2)))
        out.append((n, k, s, d, pad))
    return out


@pytest.mark.parametrize("n, k, s, d, pad", _accept_cases(), ids=str)
def test_accepted_output_sizes_match_tf(n, k, s, d, pad):
    """Per dim, try every O from 0 past the valid range: fastdeconv accepts
    exactly what TF's Eigen path accepts, and conv_transpose_output_shapes
    lists exactly those."""
    rank = len(n)
    op = getattr(fastdeconv, {1: "conv1d_transpose", 2: "conv2d_transpose", 3: "conv3d_transpose"}[rank])
    x = np.zeros((1, *n, 1))
    w = np.zeros((*k, 1, 1))
    ke = [(ki - 1) * di + 1 for ki, di in zip(k, d)]
    for i in range(rank):
        # Vary dim i; hold the other dims at a size TF accepts.
        others = [geo.transpose_sizes(n[j], k[j], s[j], d[j], geo.per_dim(pad, j)) for j in range(rank)]
        if any(not o for j, o in enumerate(others) if j != i):
            continue
        accepted = []
        for o in range(0, (n[i] + 1) * s[i] + ke[i] + 2):
            O = [others[j][0] if j != i else o for j in range(rank)]
            tf_ok = tf_oracle.transpose_accepts(n, k, s, pad, O, dilations=d)
            try:
                op(x, w, [1, *O, 1], list(s), pad if isinstance(pad, str) else list(pad), dilations=list(d),
                   backend="reference")
                ours_ok = True
            except fastdeconv.ShapeError:
                ours_ok = False
            assert ours_ok == tf_ok, f"dim {i}, O={O}: fastdeconv accepts={ours_ok}, TF accepts={tf_ok}"
            if tf_ok:
                accepted.append(o)
        # The tests' own shape rule (geometry.py) agrees with TF too.
        assert accepted == geo.transpose_sizes(n[i], k[i], s[i], d[i], geo.per_dim(pad, i))
    listed = fastdeconv.conv_transpose_output_shapes((1, *n, 1), (*k, 1, 1), list(s), pad, dilations=list(d))
    expected = [(1, *O, 1) for O in itertools.product(
        *[geo.transpose_sizes(n[j], k[j], s[j], d[j], geo.per_dim(pad, j)) for j in range(rank)])]
    assert [tuple(v) for v in listed] == expected


# --- particular cases ---------------------------------------------------------------

@pytest.mark.parametrize("transpose", [False, True], ids=["forward", "transpose"])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_stride_larger_than_kernel(rank, transpose, backend, rng):
    for padding in ("SAME", "VALID", "pairsN"):
        case = grid_case(rank, transpose, padding, 3, 1, False, natural=False)
        case.kernel = (1,) * rank if rank != 2 else (2, 1)
        case.padding = ((1, 0),) * rank if padding == "pairsN" else padding
        if transpose:
            case.out_spatial = all_output_sizes(case)[-1]
        check_against_tf(case, backend, rng)


@pytest.mark.parametrize("transpose", [False, True], ids=["forward", "transpose"])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_kernel_larger_than_input_same(rank, transpose, backend, rng):
    """SAME with k (or k_eff) > n: the window is mostly padding."""
    for n, k, s, d in [(2, 5, 1, 1), (1, 4, 3, 1), (3, 3, 1, 2), (2, 4, 2, 2)]:
        case = Case(transpose, (n,) * rank, (k,) * rank if rank < 3 else (k, 1, k), (s,) * rank, (d,) * rank,
                    "SAME", 2, 3)
        if transpose:
            case.out_spatial = all_output_sizes(case)[0]
        check_against_tf(case, backend, rng)


@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
def test_conv2d_transpose_two_element_output_shape(data_format, backend, rng):
    """output_shape=[H, W]: batch from x, channels from the filters; the
    same call to TF gives the same values."""
    cf = data_format == "NCHW"
    x = rng.standard_normal((2, 4, 3, 5)).astype(np.float32)  # NHWC [2, 4, 3, 5] / NCHW C=4
    if cf:
        w = rng.standard_normal((3, 2, 3, 4)).astype(np.float32)
    else:
        w = rng.standard_normal((3, 2, 3, 5)).astype(np.float32)
    for hw in ([7, 6], [8, 5], [8, 6]) if not cf else ([5, 9], [6, 10]):
        ours = fastdeconv.conv2d_transpose(x, w, hw, 2, "SAME", data_format, backend=backend)
        full = [2, 3, *hw] if cf else [2, *hw, 3]
        assert ours.shape == tuple(full)
        theirs = tf_oracle.call("conv2d_transpose", x, w, hw, 2, "SAME", data_format)
        assert theirs.shape == tuple(full)
        same_full = fastdeconv.conv2d_transpose(x, w, full, 2, "SAME", data_format, backend=backend)
        np.testing.assert_array_equal(ours, same_full)
        ref = fastdeconv.conv2d_transpose(x.astype(np.float64), w.astype(np.float64), hw, 2, "SAME", data_format,
                                          backend="reference")
        assert_float32_bar(ours, theirs, ref, f"{data_format} {hw}")


@pytest.mark.parametrize("op, x_shape, w_shape", [
    ("conv1d", (2, 3, 9, 4), (3, 4, 5)),
    ("conv1d", (2, 1, 3, 9, 4), (2, 4, 3)),
    ("conv2d", (2, 3, 7, 6, 4), (3, 2, 4, 5)),
    ("conv2d", (3, 1, 2, 5, 5, 2), (2, 2, 2, 3)),
])
def test_leading_batch_dims(op, x_shape, w_shape, backend, rng):
    """conv1d/conv2d take batch_shape + [spatial, C] as TF does; same call to TF."""
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    for padding, s in [("SAME", 2), ("VALID", 1)]:
        ours64 = getattr(fastdeconv, op)(x, w, s, padding, backend=backend)
        theirs64 = tf_oracle.call(op, x, w, s, padding)
        assert ours64.shape == theirs64.shape
        assert_float64_close(ours64, theirs64, f"{op} {x_shape} {padding}")
        # Flattening the batch dims by hand gives the same thing.
        flat = getattr(fastdeconv, op)(x.reshape((-1,) + x_shape[-len(w_shape) + 1:]), w, s, padding, backend=backend)
        np.testing.assert_array_equal(ours64, flat.reshape(ours64.shape))
        x32, w32 = x.astype(np.float32), w.astype(np.float32)
        ours32 = getattr(fastdeconv, op)(x32, w32, s, padding, backend=backend)
        assert_float32_bar(ours32, tf_oracle.call(op, x32, w32, s, padding), ours64, op)


@pytest.mark.parametrize("legacy, modern", [("NHWC", "NWC"), ("NCHW", "NCW")])
def test_conv1d_legacy_data_format_spellings(legacy, modern, backend, rng):
    cf = modern == "NCW"
    x = rng.standard_normal((2, 3, 10) if cf else (2, 10, 3))
    w = rng.standard_normal((3, 3, 4))
    ours = fastdeconv.conv1d(x, w, 2, "SAME", legacy, backend=backend)
    np.testing.assert_array_equal(ours, fastdeconv.conv1d(x, w, 2, "SAME", modern, backend=backend))
    # TF computes NCW only through oneDNN (float32); float64 NWC directly.
    if cf:
        x32, w32 = x.astype(np.float32), w.astype(np.float32)
        ours32 = fastdeconv.conv1d(x32, w32, 2, "SAME", legacy, backend=backend)
        assert_float32_bar(ours32, tf_oracle.call("conv1d", x32, w32, 2, "SAME", legacy), ours)
    else:
        assert_float64_close(ours, tf_oracle.call("conv1d", x, w, 2, "SAME", legacy), legacy)


@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
@pytest.mark.parametrize("groups", [2, 3])
def test_grouped_conv2d(groups, data_format, backend, rng):
    """Input channels a multiple g of the filters' in_channels: g groups,
    exactly TF's grouped conv2d (same call)."""
    cf = data_format == "NCHW"
    cin_g, cout = 2, 2 * groups
    shape = (2, groups * cin_g, 7, 6) if cf else (2, 7, 6, groups * cin_g)
    x = rng.standard_normal(shape)
    w = rng.standard_normal((3, 2, cin_g, cout))
    for padding, s, d in [("SAME", 1, 1), ("VALID", 2, 1), ("SAME", 1, 2),
                          ([[0, 0], [0, 0], [1, 2], [2, 0]] if cf else [[0, 0], [1, 2], [2, 0], [0, 0]], 2, 1)]:
        ours64 = fastdeconv.conv2d(x, w, s, padding, data_format, d, backend=backend)
        ref = fastdeconv.conv2d(x, w, s, padding, data_format, d, backend="reference")
        assert_float64_close(ours64, ref)
        x32, w32 = x.astype(np.float32), w.astype(np.float32)
        ours32 = fastdeconv.conv2d(x32, w32, s, padding, data_format, d, backend=backend)
        theirs32 = tf_oracle.call("conv2d", x32, w32, s, padding, data_format, d)
        assert_float32_bar(ours32, theirs32, ref, f"g{groups} {data_format} {padding}")
        if not cf:  # TF's float64 (Eigen) path is NHWC only
            assert_float64_close(tf_oracle.call("conv2d", x, w, s, padding, data_format, d), ref)
        # Independently: each group is an ordinary convolution.
        caxis = 1 if cf else -1
        parts = [fastdeconv.conv2d(np.take(x, range(g * cin_g, (g + 1) * cin_g), axis=caxis),
                                   w[..., g * (cout // groups):(g + 1) * (cout // groups)], s, padding, data_format, d,
                                   backend="reference") for g in range(groups)]
        assert_float64_close(np.concatenate(parts, axis=caxis), ref)


@pytest.mark.parametrize("rank", [1, 3])
def test_grouped_conv1d_conv3d(rank, backend, rng):
    """Grouped conv1d (TF computes it) and conv3d (TF CPU refuses groups;
    the oracle runs one TF call per group)."""
    for cf in (False, True):
        case = Case(False, (7,) * rank if rank == 1 else (4, 5, 3), (3,) * rank if rank == 1 else (2, 3, 1),
                    (2,) * rank, (1,) * rank, "SAME", cin=6, cout=4, groups=2, channels_first=cf)
        check_against_tf(case, backend, rng)


@pytest.mark.parametrize("call", [
    ("conv2d", dict(strides=[1, 2, 2, 1], padding=[[0, 0], [1, 2], [0, 1], [0, 0]], data_format="NHWC",
                    dilations=[1, 1, 1, 1]), (2, 8, 9, 3), (3, 3, 3, 4)),
    ("conv3d", dict(strides=[1, 2, 1, 2, 1], padding="VALID", dilations=[1, 1, 2, 1, 1]), (1, 6, 7, 5, 2),
     (2, 2, 2, 2, 3)),
    ("conv1d", dict(stride=[1, 3, 1], padding="SAME", dilations=2), (2, 11, 3), (3, 3, 2)),
    ("conv3d_transpose", dict(output_shape=[2, 7, 6, 8, 3], strides=2, padding="SAME"), (2, 4, 3, 4, 2),
     (3, 2, 3, 3, 2)),
    ("conv2d_transpose", dict(output_shape=[1, 9, 10, 2], strides=[1, 2, 3, 1],
                              padding=[[0, 0], [1, 0], [0, 2], [0, 0]]), (1, 5, 4, 3), (2, 3, 2, 3)),
    ("conv1d_transpose", dict(output_shape=[2, 12, 3], strides=[3], padding="VALID", dilations=[2]), (2, 3, 2),
     (3, 3, 2)),
], ids=lambda c: c[0])
def test_same_arguments_as_tf(call, backend, rng):
    """Copied tf.nn calls (TF's own argument spellings) run unchanged."""
    op, kwargs, x_shape, w_shape = call
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    theirs = tf_oracle.call(op, x, w, **kwargs)
    ours = getattr(fastdeconv, op)(x, w, **kwargs, backend=backend)
    ref = getattr(fastdeconv, op)(x.astype(np.float64), w.astype(np.float64), **kwargs, backend="reference")
    assert ours.shape == theirs.shape
    assert_float32_bar(ours, theirs, ref, op)
