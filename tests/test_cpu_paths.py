"""The cpu backend's algorithm paths, each forced, against the reference.

Paths (chosen in fastdeconv/backends/cpu.py `_run`): channels-last
register-blocked kernel (cpu_rb.cl_kernel; RB rows x 2 vectors, or 8 x 1
vector for at most one vector of output channels, CL1) with the fused (kw, c) run for forward
dw == 1 ungrouped convolutions, or per tap (FUSE_KW off); register-blocked
kernel with vectors along W (cpu_rb.wv_kernel: channels-first, and
channels-last with few output channels, WV_NARROW); the depthwise kernel
(cpu_dw, DEPTHWISE); the pointwise kernel (cpu_pw, POINTWISE); forward
convolutions with short reductions a line at a time (cpu_short, SHORT); output-channel blocks outermost or innermost in the
tile order, or outermost with panels packed per block (PANELS); filters
packed by Numba along their rows or by NumPy copies; tiles run on the
calling thread or split over threads; 64-byte (AVX-512) or 32-byte (AVX2)
vectors and the tile rows each width gets.
"""

import numpy as np
import pytest
from llvmlite import binding as llvm

import fastdeconv
from fastdeconv import _alloc
from fastdeconv.backends import (cpu, cpu_cfband, cpu_cfgather, cpu_dw, cpu_patch, cpu_pw, cpu_rb, cpu_short, cpu_simd,
                                 reference)

CASES = [
    # (op, x shape, w shape, strides, padding, data_format, dilations)
    ("conv1d", (2, 9, 3), (3, 3, 40), 1, "SAME", "NWC", 1),
    ("conv2d", (3, 7, 8, 5), (3, 2, 5, 33), [2, 1], [(1, 0), (0, 2)], "NHWC", [1, 1]),
    ("conv2d", (1, 6, 9, 6), (2, 3, 3, 8), 1, "VALID", "NHWC", [2, 1]),  # grouped (2 groups)
    ("conv3d", (2, 4, 5, 6, 7), (2, 3, 3, 7, 17), [1, 1, 2, 1, 1], "SAME", "NDHWC", None),
    ("conv3d", (2, 7, 4, 5, 6), (2, 3, 3, 7, 17), [1, 1, 1, 1, 1], "SAME", "NCDHW", [1, 1, 1, 2, 1]),
    ("conv1d_transpose", (2, 7, 5), (3, 33, 5), 2, "SAME", "NWC", 1),
    ("conv2d_transpose", (3, 4, 5, 6), (3, 3, 17, 6), [3, 2], "VALID", "NHWC", None),
    ("conv3d_transpose", (2, 3, 4, 5, 8), (2, 2, 2, 16, 8), 2, "SAME", "NDHWC", None),
    ("conv3d_transpose", (2, 8, 3, 4, 5), (3, 3, 3, 9, 8), [1, 1, 2, 1, 2], "SAME", "NCDHW", None),
    ("conv2d_transpose", (1, 5, 6, 4), (3, 3, 7, 4), 1, "SAME", "NHWC", 2),
    ("conv2d", (2, 5, 6, 41), (3, 2, 5, 9), [1, 2], "SAME", "NCHW", None),  # channels-first, W stride 2: gathered lanes
    # channels-first, W stride 3: packed rows split in three sub-rows, or gathers
    ("conv2d", (2, 4, 7, 23), (2, 4, 4, 7), [1, 1, 2, 3], [(0, 1), (1, 2)], "NCHW", None),
    ("conv2d_transpose", (1, 4, 3, 37), (3, 3, 11, 4), [2, 3], "VALID", "NCHW", [1, 1]),  # W > 32, phases
    ("conv1d", (2, 3, 70), (3, 3, 10), 1, [(2, 1)], "NCW", 2),  # two W chunks, masked edges
    # channels-first stride-2 transposes wide enough for the two W phases to
    # be interleaved in registers (vtstore_zip2), then a narrower last chunk
    ("conv2d_transpose", (2, 5, 3, 40), (2, 2, 6, 5), 2, "SAME", "NCHW", None),
    ("conv2d_transpose", (1, 3, 4, 37), (3, 3, 5, 3), 2, "VALID", "NCHW", None),
    # row spaces of several lines (cpu_rb.row_spaces): W padding with
    # dilation, lines at both H edges, two images in one space; a
    # transpose with two W phases and H stride 1
    ("conv2d", (2, 9, 11, 6), (3, 3, 6, 20), 1, "SAME", "NHWC", [1, 2, 2, 1]),
    ("conv2d_transpose", (2, 7, 5, 5), (3, 3, 9, 5), [1, 2], "SAME", "NHWC", [1, 1]),
    # long kernels: 19 and 18 taps along one dim (cl_kernel's tap tables)
    ("conv1d", (2, 30, 3), (19, 3, 10), 1, "SAME", "NWC", 1),
    ("conv2d_transpose", (1, 9, 5, 4), (18, 3, 6, 4), [3, 1], "SAME", "NHWC", None),
    # one output channel (NARROW_ONE_CHANNEL_CF: channels-last through a
    # channels-first copy of the input; a 1-row tile along W)
    ("conv3d_transpose", (2, 3, 5, 6, 8), (1, 3, 3, 1, 8), [1, 1, 2, 2, 1], "SAME", "NDHWC", None),
    ("conv1d", (2, 40, 3), (3, 3, 1), 1, "SAME", "NWC", 2),
    ("conv2d", (2, 3, 7, 37), (3, 3, 3, 1), 1, "VALID", "NCHW", None),
    # one output channel, 1 x 4-vector tile: an odd W output interleaved
    # up to a partial last chunk, a stride-3 transpose (three phases), a
    # dilated one
    ("conv2d_transpose", (2, 3, 4, 37), (3, 3, 1, 3), 2, "VALID", "NCHW", None),
    ("conv1d_transpose", (2, 70, 4), (4, 1, 4), 3, "SAME", "NWC", 1),
    ("conv2d_transpose", (1, 5, 40, 6), (3, 3, 1, 6), 1, "SAME", "NHWC", 2),
    # depthwise (one input channel per group; cpu_dw): multiplier 2 with
    # strides, dilation and padding; 3-D with a channel count of one vector
    ("conv2d", (2, 7, 8, 6), (3, 3, 1, 12), [1, 1, 2, 1], "SAME", "NHWC", [1, 2, 1, 1]),
    ("conv3d", (2, 4, 5, 6, 8), (2, 3, 3, 1, 8), 1, [(0, 1), (1, 1), (2, 0)], "NDHWC", None),
    # stride == kernel transposes (cpu_patch; the k2s2 cases above too):
    # blocks of input pixels across line ends and images, a kernel of 1
    # along H, 3 along W; channels-first with a partial W chunk, W taps
    # interleaved (KW = 2) or stored apart (KW = 3)
    ("conv3d_transpose", (2, 2, 3, 7, 5), (2, 1, 3, 19, 5), [1, 2, 1, 3, 1], "VALID", "NDHWC", None),
    ("conv2d_transpose", (2, 6, 3, 37), (2, 2, 7, 6), 2, "SAME", "NCHW", None),
    ("conv1d_transpose", (2, 4, 19), (3, 9, 4), 3, "VALID", "NCW", 1),
    # channels-first output channels in blocks of the 6 x 2 AVX2 tile and
    # then one or two part blocks (cf_tile: 16 as 6 + 6 + 4, 32 as 6 x 4 + 4 + 4)
    ("conv3d_transpose", (1, 8, 2, 3, 20), (2, 2, 2, 16, 8), 2, "SAME", "NCDHW", None),
    ("conv3d_transpose", (1, 5, 2, 3, 9), (2, 2, 2, 32, 5), 2, "VALID", "NCDHW", None),
    # channels-first, 64 channels in and out, rows of 7: bands of input rows
    # packed channels-last (cpu_cfband, CF_BANDS)
    ("conv2d", (2, 64, 5, 7), (3, 3, 64, 64), 1, "SAME", "NCHW", None),
] + [
    # pointwise (1x1 stride 1, few channels; cpu_pw): pixel counts that
    # are not a multiple of its blocks (last pixels in scalar code, the
    # last blocks' rows read masked), fewer pixels than a block, rows of
    # fewer channels than a vector, output channels on the 1-row, 4-row and
    # wide tiles, in two or three blocks of its rows, more than a vector
    # of them (results stored one by one)
    ("conv3d", (2, 3, 5, 7, 16), (1, 1, 1, 16, 2), 1, "SAME", "NDHWC", None),
    ("conv2d", (3, 5, 6, 32), (1, 1, 32, 1), 1, "VALID", "NHWC", None),
    ("conv1d", (2, 9, 3), (1, 3, 3), 1, "SAME", "NWC", 1),
    ("conv2d", (2, 9, 13, 4), (1, 1, 4, 7), 1, "SAME", "NHWC", None),
    ("conv3d", (1, 3, 8, 20, 2), (1, 1, 1, 2, 13), 1, "VALID", "NDHWC", None),
    ("conv2d", (1, 10, 12, 1), (1, 1, 1, 24), 1, "SAME", "NHWC", None),
    # 2 and 4 output channels: rows interleaved into pixels (vzip2), on
    # blocks of 32 or 16 pixels with a tail, with 5 (fewer than a vector)
    # and 8 input channels
    ("conv2d", (2, 7, 9, 5), (1, 1, 5, 2), 1, "SAME", "NHWC", None),
    ("conv3d", (1, 4, 5, 7, 8), (1, 1, 1, 8, 4), 1, "VALID", "NDHWC", None),
    ("conv2d", (2, 7, 11, 8), (1, 1, 8, 4), 1, "SAME", "NHWC", None),
    # more filter bytes than POINTWISE_BYTES, output channels within POINTWISE_OUT_BYTES
    ("conv3d", (1, 3, 5, 9, 24), (1, 1, 1, 24, 4), 1, "SAME", "NDHWC", None),
]
POINTWISE_CASES = CASES[-10:]


def _call(case, x, w, backend):
    op, _, _, strides, padding, fmt, dil = case
    f = getattr(fastdeconv, op)
    if op.endswith("_transpose"):
        return f(x, w, None, strides, padding, data_format=fmt, dilations=dil, backend=backend)
    return f(x, w, strides, padding, data_format=fmt, dilations=dil, backend=backend)


def _call_channels_last(case, x, w):
    """The cpu backend on the channels-last form of a channels-first case
    and its input x."""
    op, xs, _, strides, padding, fmt, dil = case
    cl = {"NCW": "NWC", "NCHW": "NHWC", "NCDHW": "NDHWC"}[fmt]

    def last(v):  # an N+2 list in NC... order -> N...C order
        return list(v[:1]) + list(v[2:]) + list(v[1:2]) if isinstance(v, list) and len(v) == len(xs) else v

    return _call((op, None, None, last(strides), padding, cl, last(dil)), np.ascontiguousarray(np.moveaxis(x, 1, -1)),
                 w, "cpu")


def _arrays(case, dtype, rng):
    _, xs, ws, *_ = case
    return rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)


def _calls_with(case, x, w, monkeypatch, settings):
    """The cpu backend's result once per (attrs, work) in settings: attrs
    {(module, name): value} set first; work None, or the multiply-adds
    parallel_tiles is told the call has (10**12: the most chunks of tiles,
    so chunks start inside rows, bands and pairs, whatever groups of tiles
    the caller asks to keep together)."""
    real = cpu_rb.parallel_tiles
    results = []
    for attrs, work in settings:
        for (module, name), value in attrs.items():
            monkeypatch.setattr(module, name, value)
        monkeypatch.setattr(cpu_rb, "parallel_tiles",
                            lambda k, a, n, wk, *g, _w=work: real(k, a, n, *((wk, *g) if _w is None else (_w,))))
        results.append(_call(case, x, w, "cpu"))
    monkeypatch.setattr(cpu_rb, "parallel_tiles", real)
    return results


@pytest.fixture(params=[(True, True, True), (False, True, True), (False, False, True), (False, True, False)],
                ids=["short", "fused", "per-tap", "lines-apart"])
def fuse(request, monkeypatch):
    """Forward convolutions with short reductions on their own kernels
    (cpu_short, SHORT and SHORT_CF) or on cl_kernel and wv_kernel; there,
    fused (kw, c) runs or one run per tap, lines folded into one row space
    (cpu_rb.row_spaces) or each line its own."""
    monkeypatch.setattr(cpu, "SHORT", request.param[0])
    monkeypatch.setattr(cpu, "SHORT_CF", request.param[0])
    monkeypatch.setattr(cpu, "FUSE_KW", request.param[1])
    monkeypatch.setattr(cpu, "FOLD_LINES", request.param[2])
    return request.param


@pytest.fixture(params=[0, 8], ids=["rb", "narrow-wv"])
def narrow(request, monkeypatch):
    """Channels-last calls with few output channels: register-blocked kernel
    (WV_NARROW = 0) or vectors along W with gathered loads."""
    monkeypatch.setattr(cpu, "WV_NARROW", request.param)
    monkeypatch.setattr(cpu, "WV_NARROW_STEPS", None)
    return request.param


@pytest.fixture(params=[True, False], ids=["tiles-8x1", "tiles-8x2"])
def cl1(request, monkeypatch):
    """Channels-last tiles: 8 rows x 1 vector where a group has at most one
    vector of output channels (else 8 x 2), or 8 x 2 vectors for every
    call."""
    monkeypatch.setattr(cpu, "CL1", request.param)
    return request.param


@pytest.fixture(params=[False, True], ids=["one-thread", "split"])
def split(request, monkeypatch):
    if request.param:
        # split every call into tile ranges, however small
        real = cpu_rb.parallel_tiles
        monkeypatch.setattr(cpu_rb, "parallel_tiles",
                            lambda k, a, n, work, *g: real(k, a, n, 10**12))
    return request.param


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[5]}")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_path_matches_reference(case, dtype, fuse, split, narrow, cl1):
    rng = np.random.default_rng(0)
    x, w = _arrays(case, dtype, rng)
    ours = _call(case, x, w, "cpu")
    ref = _call(case, x, w, "reference")
    err = np.max(np.abs(ours.astype(np.float64) - ref)) / max(float(np.max(np.abs(ref))), 1e-300)
    assert err <= (1e-12 if dtype == np.float64 else 2e-6)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[5]}")
def test_channel_block_order_gives_identical_bits(case, monkeypatch):
    """Channels-last tiles with the output-channel block innermost (every
    block of a tile's rows in the tile) or outermost in the tile order (FB_INNER; a larger FB_INNER_PANEL makes
    every multi-block case use it), and outermost with each block's panel
    packed by the thread that runs it (PANELS, transposes; PANELS_MIN_BYTES
    0 makes every multi-block one use it), on one thread and split: the
    same work per output, same bits."""
    x, w = _arrays(case, np.float32, np.random.default_rng(5))
    real = cpu_rb.parallel_tiles
    results = []
    for inner, panels, split in ((False, False, False), (True, False, False), (True, False, True),
                                 (False, True, False), (False, True, True)):
        monkeypatch.setattr(cpu, "FB_INNER", inner)
        monkeypatch.setattr(cpu, "FB_INNER_PANEL", 1 << 40)
        monkeypatch.setattr(cpu, "PANELS", panels)
        monkeypatch.setattr(cpu, "PANELS_MIN_BYTES", 0)
        monkeypatch.setattr(cpu, "CL1", False)  # more channel blocks
        monkeypatch.setattr(cpu, "SHORT", False)  # forward calls on cl_kernel too
        monkeypatch.setattr(cpu_rb, "parallel_tiles",
                            (lambda k, a, n, work, *g: real(k, a, n, 10**12)) if split else real)
        results.append(_call(case, x, w, "cpu").tobytes())
    assert all(r == results[0] for r in results[1:])


def test_channel_block_order_follows_panels_and_data_size(monkeypatch):
    """The tile order chosen: channel blocks innermost for small panels, and
    for large panels only when the call's data passes FB_INNER_DATA (set
    low here) and the panels stay within half of the data and within
    FB_INNER_DATA_PANELS."""
    orders = []
    real = cpu_rb.parallel_tiles
    monkeypatch.setattr(cpu, "SHORT", False)  # (the 1 x 1 call: 64 terms)
    monkeypatch.setattr(cpu_rb, "parallel_tiles",
                        lambda k, a, n, wk, *g: orders.append(a[5][26]) or real(k, a, n, wk, *g))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 30, 30, 64)).astype(np.float32)  # 460 KB in, 460 KB out
    few = x[:, :5, :5]  # 26 KB in and out
    big = rng.standard_normal((3, 3, 64, 64)).astype(np.float32)  # panels: 147 KB in all
    small = rng.standard_normal((1, 1, 64, 64)).astype(np.float32)
    monkeypatch.setattr(cpu, "FB_INNER_PANEL", 1024)
    monkeypatch.setattr(cpu, "FB_INNER_TOTAL", 1024)
    ref = fastdeconv.conv2d(x, big, 1, "SAME")
    monkeypatch.setattr(cpu, "FB_INNER_DATA", few.nbytes)
    inner = fastdeconv.conv2d(x, big, 1, "SAME")
    fastdeconv.conv2d(few, big, 1, "SAME")  # panels more than half of the data
    monkeypatch.setattr(cpu, "FB_INNER_DATA_PANELS", big.nbytes - 1)
    fastdeconv.conv2d(x, big, 1, "SAME")
    monkeypatch.setattr(cpu, "FB_INNER_TOTAL", 1 << 20)
    fastdeconv.conv2d(x, small, 1, "SAME")
    assert orders == [cpu_rb.FB_OUTER, cpu_rb.FB_INNERMOST, cpu_rb.FB_OUTER, cpu_rb.FB_OUTER, cpu_rb.FB_INNERMOST]
    assert inner.tobytes() == ref.tobytes()


def test_panel_order_is_taken(monkeypatch):
    """The panel order is what runs for a large writable transposed filter,
    and not for a read-only one (packed once) or a convolution (each panel
    would read a few bytes of every filter row)."""
    seen = []
    real = cpu_rb.by_panels
    monkeypatch.setattr(cpu_rb, "by_panels", lambda *a: seen.append(a) or real(*a))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, 3, 256)).astype(np.float32)
    w = rng.standard_normal((3, 3, 256, 256)).astype(np.float32)  # 2.4 MB packed
    ours = fastdeconv.conv2d_transpose(x, w, None, 1, "SAME")
    assert len(seen) == 1
    w.flags.writeable = False
    assert fastdeconv.conv2d_transpose(x, w, None, 1, "SAME").tobytes() == ours.tobytes()
    packed_once = fastdeconv.conv2d(x, w, 1, "SAME")
    # a writable copy: packed whole on every call, into recycled memory
    assert fastdeconv.conv2d(x, w.copy(), 1, "SAME").tobytes() == packed_once.tobytes()
    assert len(seen) == 1


@pytest.mark.parametrize("trans", [False, True], ids=["conv", "transpose"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nv", [6, 8, 16])
def test_filter_packers_agree(trans, dtype, nv, monkeypatch):
    """Filters packed by one NumPy copy or split over threads by input
    channel (PACK_PARALLEL 0 makes every call split), into fresh or
    recycled memory, and a block's panel alone: the same values,
    zero-padded past the last channel. Views that are not the filters as
    given (grouped, sliced) have no panels."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((2, 3, 2, 7, 21)).astype(dtype)  # (KD, KH, KW, C, F) or (..., F, C)
    wg = (w.transpose(0, 1, 2, 4, 3) if trans else w)[None]
    assert cpu_rb.source_filters(wg) is not None
    packed = []
    for threshold, temporary in ((0, False), (1 << 40, False), (0, True)):
        monkeypatch.setattr(cpu_rb, "PACK_PARALLEL", threshold)
        packed.append(cpu_rb._pack_blocks(wg, dtype, nv, temporary))
    (a, nfb), *others = packed
    assert all(b.tobytes() == a.tobytes() and n == nfb for b, n in others)
    C, F = wg.shape[-2:]
    assert nfb == -(-F // nv)
    blocks = a.reshape(nfb, 2 * 3 * 2, C, nv)
    w3, tr = cpu_rb.source_filters(wg)
    assert tr == trans
    panel = np.full((2 * 3 * 2, C, nv), np.nan, dtype=dtype)
    for fb in range(nfb):
        nf = min(nv, F - fb * nv)
        assert np.array_equal(blocks[fb, ..., :nf], wg[0, ..., fb * nv:fb * nv + nf].reshape(-1, C, nf))
        assert not blocks[fb, ..., nf:].any()
        cpu_rb.pack_panel(w3, tr, fb, panel)
        assert panel.tobytes() == blocks[fb].tobytes()
    assert cpu_rb.source_filters(wg[..., 1:]) is None
    assert cpu_rb.source_filters(np.concatenate([wg, wg])) is None


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[5]}")
def test_paths_give_identical_bits(case, monkeypatch):
    """The short-reduction kernels (the first setting) or cl_kernel's fused
    and per-tap runs, lines folded into row spaces or apart,
    stride == kernel transposes by patches (cpu_patch) or not, channels-first
    input rows packed per output row (WV_PACK) or read in place,
    register-blocked or vectors along W (one
    output channel: through a channels-first copy or not), the depthwise
    kernel or not, one thread and split tiles: the same terms in the same
    order, so the same bits."""
    x, w = _arrays(case, np.float32, np.random.default_rng(1))
    results = []
    real = cpu_rb.parallel_tiles
    for fuse_kw, nv, one, cf1, dw, fold, patch, pack in (
            (True, 0, True, True, True, True, True, True), (True, 0, True, True, False, True, True, True),
            (False, 0, True, True, False, True, True, True), (True, 0, False, True, False, True, True, True),
            (False, 0, False, True, False, True, True, True), (True, 64, True, True, False, True, True, True),
            (False, 64, True, True, False, True, True, True), (True, 64, True, False, False, True, True, True),
            (True, 0, True, True, False, False, True, True), (False, 0, False, True, False, False, True, True),
            (True, 0, True, True, True, True, False, True), (True, 0, False, True, True, True, False, True),
            (True, 0, True, True, True, True, True, False), (True, 0, True, True, True, True, False, False)):
        first = not results
        for work in (None, 10**12):
            monkeypatch.setattr(cpu, "SHORT", first)
            monkeypatch.setattr(cpu, "SHORT_CF", first)
            monkeypatch.setattr(cpu, "WV_PACK", pack)
            monkeypatch.setattr(cpu, "WV_PACK_MIN_ROWS", 0)  # small cases too
            monkeypatch.setattr(cpu, "PATCH", patch)
            monkeypatch.setattr(cpu, "FOLD_LINES", fold)
            monkeypatch.setattr(cpu, "DEPTHWISE", dw)
            monkeypatch.setattr(cpu, "NARROW_ONE_CHANNEL_CF", cf1)
            monkeypatch.setattr(cpu, "FUSE_KW", fuse_kw)
            monkeypatch.setattr(cpu, "CL1", one)
            monkeypatch.setattr(cpu, "WV_NARROW", nv)
            monkeypatch.setattr(cpu, "WV_NARROW_STEPS", None)
            monkeypatch.setattr(cpu_rb, "parallel_tiles",
                                lambda k, a, n, wk, *g, _w=work: real(k, a, n, *((wk, *g) if _w is None else (_w,))))
            results.append(_call(case, x, w, "cpu").tobytes())
    assert len(set(results)) == 1


@pytest.mark.parametrize("pack", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", [c for c in CASES if c[5].startswith("NC")],
                         ids=lambda c: f"{c[0]}-{c[5]}")
def test_channels_first_same_bits_as_channels_last(case, dtype, pack, monkeypatch):
    """Both register-blocked kernels sum every output's terms in the same
    order, so the two layouts give the same bits; channels-first input
    rows packed per output row (WV_PACK) or read in place (wv_kernel:
    short reductions too)."""
    monkeypatch.setattr(cpu, "WV_PACK", pack)
    monkeypatch.setattr(cpu, "WV_PACK_MIN_ROWS", 0)
    monkeypatch.setattr(cpu, "SHORT_CF", False)
    x, w = _arrays(case, dtype, np.random.default_rng(2))
    a = _call(case, x, w, "cpu")
    b = _call_channels_last(case, x, w)
    assert np.moveaxis(a, 1, -1).tobytes() == b.tobytes()


# Channels-first calls on packed input rows, which stay in their slots for
# the next output rows where the H dilation is 1 (cpu_rb.wv_kernel,
# WV_SLOTS): rows kept along H, new images and groups (other rows in the
# same slots), an H stride (some rows kept), transposes (rows in
# descending order; with an H stride, each output row's taps of one phase),
# an H dilation and filters with more (kd, kh) taps than slots (rows packed
# per output row).
KEPT_ROW_CASES = [
    ("conv3d", (2, 4, 5, 6, 19), (3, 3, 3, 4, 7), 1, "SAME", "NCDHW", None),
    ("conv2d", (2, 6, 7, 21), (3, 3, 3, 8), 1, [(1, 1), (2, 0)], "NCHW", None),  # 2 groups
    ("conv2d", (1, 3, 11, 20), (3, 3, 3, 6), [1, 1, 2, 1], "VALID", "NCHW", None),
    ("conv2d", (1, 3, 11, 20), (3, 2, 3, 6), 1, "SAME", "NCHW", [1, 1, 2, 1]),
    ("conv2d_transpose", (1, 4, 5, 9), (3, 3, 5, 4), [1, 1, 2, 1], "SAME", "NCHW", None),
    ("conv2d_transpose", (2, 4, 6, 9), (3, 2, 5, 4), [1, 1, 1, 2], "VALID", "NCHW", None),
    ("conv2d", (1, 3, 14, 20), (4, 3, 3, 6), [1, 1, 3, 1], "SAME", "NCHW", None),
    ("conv3d_transpose", (1, 3, 3, 4, 9), (2, 5, 3, 4, 3), [1, 1, 2, 3, 1], "SAME", "NCDHW", None),
    ("conv3d", (1, 2, 10, 9, 11), (9, 8, 3, 2, 5), 1, "SAME", "NCDHW", None),  # 72 (kd, kh) taps
]


@pytest.mark.parametrize("case", KEPT_ROW_CASES, ids=lambda c: f"{c[0]}-{c[1]}")
def test_kept_packed_rows_same_bits(case, monkeypatch):
    """Packed input rows kept between output rows give the bits of rows
    read in place and of the channels-last kernel, on one chunk of tiles
    and on chunks that start inside a row (each with its own slots)."""
    assert cpu_rb.WV_SLOTS < 72 <= 9 * 8
    monkeypatch.setattr(cpu, "WV_PACK_MIN_ROWS", 0)
    monkeypatch.setattr(cpu, "WV_ROW_PAIRS", False)
    x, w = _arrays(case, np.float32, np.random.default_rng(11))
    results = _calls_with(case, x, w, monkeypatch, [({(cpu, "WV_PACK"): pack}, work)
                                                    for pack, work in ((True, None), (True, 10**12), (False, None))])
    assert all(r.tobytes() == results[0].tobytes() for r in results)
    assert np.moveaxis(results[0], 1, -1).tobytes() == _call_channels_last(case, x, w).tobytes()
    ref = _call(case, x, w, "reference")
    assert np.max(np.abs(results[0] - ref)) <= 1e-5 * max(1.0, float(np.max(np.abs(ref))))


_WIDE_ROWS = cpu_simd.tile_rows(2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", ["conv2d", "conv2d_transpose", "conv3d"])
# (full tile rows, channels past them): the last blocks run the part-rows
# loop on either tile (AVX2 6 rows: 13, 16, 14, 32 channels; AVX-512 8 rows:
# 17, 20, 18, 42).
@pytest.mark.parametrize("extra", [(2, 1), (2, cpu_simd.PART_ROWS), (1, _WIDE_ROWS + 2), (4, _WIDE_ROWS + 2)])
def test_last_channel_blocks_on_part_rows_same_bits(extra, op, dtype, monkeypatch):
    """Output channels in blocks of the wide tile's rows and then one or two
    blocks of up to PART_ROWS (cpu_rb.wv_blocks), which run the part-rows
    loop (cpu_simd.vrun_cols_part, packed rows): same bits as the
    channels-last kernel, close to the reference."""
    F = extra[0] * _WIDE_ROWS + extra[1]
    tile = cpu_rb.wv_tile(F)
    full, part = cpu_rb.wv_blocks(F, tile)
    assert tile.rows == _WIDE_ROWS and part >= 1
    assert full * tile.rows < F <= full * tile.rows + part * cpu_simd.PART_ROWS
    monkeypatch.setattr(cpu, "WV_PACK_MIN_ROWS", 0)
    if op == "conv3d":
        case = (op, (1, 5, 4, 5, 19), (3, 3, 3, 5, F), 1, "SAME", "NCDHW", None)
    elif op == "conv2d":
        case = (op, (2, 5, 6, 21), (3, 3, 5, F), [1, 1, 1, 2], "SAME", "NCHW", None)
    else:
        case = (op, (1, 5, 5, 9), (3, 3, F, 5), [1, 1, 2, 1], "SAME", "NCHW", None)
    x, w = _arrays(case, dtype, np.random.default_rng(17))
    a = _call(case, x, w, "cpu")
    assert np.moveaxis(a, 1, -1).tobytes() == _call_channels_last(case, x, w).tobytes()
    ref = _call(case, x, w, "reference")
    assert np.max(np.abs(a - ref)) <= 1e-5 * max(1.0, float(np.max(np.abs(ref))))


# Channels-first 3-D calls whose output rows go in bands of planes along D
# (cpu_rb.wv_band): a last band of fewer planes, two images, groups, a D
# stride, a D dilation, a strided transpose along D (each output plane's
# taps of one phase), and bands cut by the byte limit.
BAND_CASES = [
    ("conv3d", (1, 3, 11, 5, 9), (3, 3, 3, 3, 5), 1, "SAME", "NCDHW", None),
    ("conv3d", (2, 4, 7, 4, 10), (3, 2, 3, 2, 6), 1, [(1, 1), (2, 0), (1, 1)], "NCDHW", None),  # 2 groups
    ("conv3d", (1, 3, 13, 4, 9), (3, 3, 3, 3, 4), [1, 1, 2, 1, 1], "SAME", "NCDHW", None),
    ("conv3d", (1, 2, 12, 5, 9), (3, 3, 3, 2, 4), 1, "SAME", "NCDHW", [1, 1, 2, 1, 1]),
    ("conv3d_transpose", (1, 4, 6, 4, 9), (3, 3, 3, 5, 4), [1, 1, 2, 1, 1], "SAME", "NCDHW", None),
    ("conv3d_transpose", (1, 3, 5, 4, 9), (4, 3, 2, 3, 3), [1, 1, 3, 1, 1], "VALID", "NCDHW", None),
]


@pytest.mark.parametrize("case", BAND_CASES, ids=lambda c: f"{c[0]}-{c[1]}")
def test_row_bands_same_bits(case, monkeypatch):
    """Output rows in bands of 1, 3 and up to 8 planes along D, on one
    chunk of tiles and on chunks that start inside a band, give the same
    bits as each other, as rows read in place and as the channels-last
    kernel; the bands are really used."""
    monkeypatch.setattr(cpu, "WV_PACK_MIN_ROWS", 0)
    monkeypatch.setattr(cpu, "WV_ROW_PAIRS", False)
    monkeypatch.setattr(cpu, "SHORT_CF", False)  # (short reductions: cpu_short.short_cf)
    x, w = _arrays(case, np.float32, np.random.default_rng(13))
    real_band = cpu_rb.wv_band
    bands = []

    def spy(*a):
        bands.append(real_band.__wrapped__(*a))
        return bands[-1]

    monkeypatch.setattr(cpu_rb, "wv_band", spy)
    results = _calls_with(case, x, w, monkeypatch, [
        ({(cpu_rb, "WV_BAND_MAX"): band_max, (cpu_rb, "WV_BAND_BYTES"): band_bytes}, work)
        for band_max, band_bytes, work in ((1, 1 << 20, None), (3, 1 << 20, None), (8, 1 << 20, None),
                                           (8, 1 << 20, 10**12), (8, 1, None))])
    assert [b[0] for b in bands[:2]] == [1, 3] and bands[2][0] > 3 and bands[3] == bands[2]
    assert bands[4] == (1, 0)  # no band fits in one byte
    assert all(r.tobytes() == results[0].tobytes() for r in results)
    monkeypatch.setattr(cpu, "WV_PACK", False)
    assert _call(case, x, w, "cpu").tobytes() == results[0].tobytes()
    assert np.moveaxis(results[0], 1, -1).tobytes() == _call_channels_last(case, x, w).tobytes()
    ref = _call(case, x, w, "reference")
    assert np.max(np.abs(results[0] - ref)) <= 1e-5 * max(1.0, float(np.max(np.abs(ref))))


# Channels-first calls whose tiles hold two output rows (cpu.WV_ROW_PAIRS),
# paired along b, d or h (cpu_rb.pair_axis), with an odd count (a last
# tile of one row) and taps that only one row of a pair has.
ROW_PAIR_CASES = [
    ("conv2d", (3, 5, 3, 4), (3, 3, 5, 9), 1, "SAME", "NCHW", None),  # along b, 3 images
    ("conv3d", (1, 4, 4, 3, 3), (3, 3, 3, 4, 7), 1, "SAME", "NCDHW", None),  # along d
    ("conv3d", (1, 3, 3, 5, 4), (3, 2, 3, 3, 13), 1, "SAME", "NCDHW", [1, 1, 1, 2, 1]),  # along h, 5 rows
    ("conv2d", (1, 6, 7, 39), (3, 3, 6, 8), [1, 1, 2, 2], "SAME", "NCHW", None),  # W stride 2: sub-rows
    ("conv2d_transpose", (3, 5, 5, 4), (3, 3, 4, 5), 1, "SAME", "NCHW", [1, 1, 2, 1]),
    ("conv1d", (2, 3, 17), (3, 3, 12), 1, "SAME", "NCW", 2),  # 17 columns: 3 vectors of 8 (float32, AVX2)
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ROW_PAIR_CASES, ids=lambda c: f"{c[0]}-{c[1]}")
def test_row_pairs_same_bits(case, dtype, monkeypatch):
    """Tiles on two output rows give the bits of tiles on one row and of
    the channels-last kernel; the pairs are really used (the kernel's `pair` argument
    names the paired axis)."""
    monkeypatch.setattr(cpu, "WV_PACK_MIN_ROWS", 0)
    monkeypatch.setattr(cpu, "SHORT_CF", False)  # (short reductions: cpu_short.short_cf)
    x, w = _arrays(case, dtype, np.random.default_rng(7))
    axes = []
    real = cpu_rb.with_rows

    def spy(kernel, args, n, **kw):
        axes.append(args[6] or 0)
        return real(kernel, args, n, **kw)

    monkeypatch.setattr(cpu_rb, "with_rows", spy)
    paired = _call(case, x, w, "cpu")
    # pairs where the rule says so: every case in float32 with 32-byte vectors
    xs, strides = case[1], case[3]
    width = -(-xs[-1] // (strides[-1] if isinstance(strides, list) else strides))
    lanes = cpu_simd.VBYTES // np.dtype(dtype).itemsize
    assert axes and (axes[-1] > 0) == cpu_rb.wv_row_pairs(width, lanes)
    if cpu_simd.VBYTES == 32 and dtype == np.float32:
        assert axes[-1] > 0
    monkeypatch.setattr(cpu, "WV_ROW_PAIRS", False)
    single = _call(case, x, w, "cpu")
    assert axes[-1] == 0
    b = _call_channels_last(case, x, w)
    assert paired.tobytes() == single.tobytes()
    assert np.moveaxis(paired, 1, -1).tobytes() == b.tobytes()
    ref = _call(case, x, w, "reference")
    assert np.max(np.abs(paired - ref)) <= 1e-5 * max(1.0, float(np.max(np.abs(ref))))


# Channels-first calls whose last W chunk of one vector holds two output
# rows (cpu.WV_TAIL_PAIRS, cpu_rb.wv_tail_pairs): an odd row count (a last
# row alone), two images, groups, part channel blocks, a W stride
# (sub-rows), a stride-1 transpose, bands along D; and calls the rule
# leaves out (H stride, H dilation, a transpose's H stride). The flag:
# whether the call's geometry allows tail pairs.
TAIL_PAIR_CASES = [
    (("conv2d", (1, 5, 9, 37), (3, 3, 5, 7), 1, "SAME", "NCHW", None), True),
    (("conv2d", (2, 4, 8, 52), (3, 3, 4, 13), 1, "SAME", "NCHW", None), True),
    (("conv2d", (1, 4, 8, 52), (3, 3, 4, 13), [1, 1, 2, 1], "SAME", "NCHW", None), False),
    (("conv2d", (1, 6, 7, 40), (3, 3, 3, 8), 1, [(1, 1), (2, 0)], "NCHW", None), True),  # 2 groups
    (("conv2d", (1, 3, 6, 74), (3, 3, 3, 5), [1, 1, 1, 2], "SAME", "NCHW", None), True),
    (("conv2d_transpose", (1, 4, 6, 35), (3, 3, 5, 4), 1, "SAME", "NCHW", None), True),
    (("conv3d", (1, 3, 6, 5, 37), (3, 3, 3, 3, 5), 1, "SAME", "NCDHW", None), True),
    (("conv2d", (1, 3, 9, 37), (3, 3, 3, 6), 1, "SAME", "NCHW", [1, 1, 2, 1]), False),
    (("conv2d_transpose", (1, 4, 5, 36), (3, 3, 5, 4), [1, 1, 2, 1], "SAME", "NCHW", None), False),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case, allowed", TAIL_PAIR_CASES, ids=[f"{c[0]}-{c[1]}" for c, _ in TAIL_PAIR_CASES])
def test_tail_pairs_same_bits(case, allowed, dtype, vector_bytes, monkeypatch):
    """Tail pairs give the bits of one row per tile, on one chunk of
    tiles and on chunks that start between the two rows of a pair, and of
    the channels-last kernel, with either vector width; they are used where
    the rule says so (every allowed case in float32 on AVX2 tiles)."""
    monkeypatch.setattr(cpu, "WV_PACK_MIN_ROWS", 0)
    monkeypatch.setattr(cpu, "SHORT_CF", False)  # (short reductions: cpu_short.short_cf)
    x, w = _arrays(case, dtype, np.random.default_rng(19))
    used = []
    real_rows = cpu_rb.with_rows

    def spy(kernel, args, n, **kw):
        used.append(args[4][-1])  # geo's TP
        return real_rows(kernel, args, n, **kw)

    monkeypatch.setattr(cpu_rb, "with_rows", spy)
    results = _calls_with(case, x, w, monkeypatch, [({(cpu, "WV_TAIL_PAIRS"): tail}, work)
                                                    for tail, work in ((True, None), (True, 10**12), (False, None))])
    y = results[0]
    lanes = cpu_simd.VBYTES // np.dtype(dtype).itemsize
    OH, OW = y.shape[-2:]
    expected = allowed and cpu_rb.wv_tail_pairs(OW, OH, 2 * lanes, lanes) and not cpu_rb.wv_row_pairs(OW, lanes)
    assert used == [int(expected)] * 2 + [0]
    if cpu_simd.VBYTES == 32 and dtype == np.float32:
        assert used[0] == allowed
    assert all(r.tobytes() == y.tobytes() for r in results)
    assert np.moveaxis(y, 1, -1).tobytes() == _call_channels_last(case, x, w).tobytes()
    ref = _call(case, x, w, "reference")
    assert np.max(np.abs(y - ref)) <= 1e-5 * max(1.0, float(np.max(np.abs(ref))))


@pytest.mark.parametrize("vector_bytes", [32], indirect=True)  # AVX2 tiles: this case takes tail pairs
def test_tail_pairs_keep_the_packed_rows_within_their_bytes(vector_bytes, monkeypatch):
    """Tail pairs' extra slots (one row per plane and a slot of zeros)
    are only taken while the packed rows stay within cpu.WV_PACK_BYTES."""
    case = TAIL_PAIR_CASES[0][0]
    monkeypatch.setattr(cpu, "WV_PACK_MIN_ROWS", 0)
    monkeypatch.setattr(cpu, "SHORT_CF", False)
    x, w = _arrays(case, np.float32, np.random.default_rng(19))
    seen = []
    real = cpu_rb.with_rows
    monkeypatch.setattr(cpu_rb, "with_rows", lambda k, a, n, **kw: (seen.append((a[4][-1], n)), real(k, a, n, **kw))[1])
    monkeypatch.setattr(cpu, "WV_TAIL_PAIRS", False)
    plain = _call(case, x, w, "cpu")
    monkeypatch.setattr(cpu, "WV_TAIL_PAIRS", True)
    paired = _call(case, x, w, "cpu")
    monkeypatch.setattr(cpu, "WV_PACK_BYTES", seen[0][1] * x.itemsize)  # room for the plain slots only
    limited = _call(case, x, w, "cpu")
    assert [tp for tp, _ in seen] == [0, 1, 0]
    assert seen[1][1] > seen[0][1] == seen[2][1]
    assert plain.tobytes() == paired.tobytes() == limited.tobytes()


# Channels-first forward convolutions on bands of input rows packed
# channels-last (cpu.CF_BANDS, cpu_cfband), with the channel minimum
# lowered to keep them small: two images and a last channel block of 8;
# H stride and explicit padding; H dilation, VALID; 3-D with D padding and
# a D stride, a ring of D taps; 1-D; lines whose rows fall in the H padding on both sides of
# the input, with one inside (1x1, H stride 2) and with none (H stride 3);
# bands of 9 rows whose 4 W-edge columns (KW 5, 256 channels) run in blocks of their own
# (cpu_cfband.column_groups).
CF_BAND_CASES = [
    ("conv2d", (1, 256, 9, 6), (3, 5, 256, 20), 1, "SAME", "NCHW", None),
    # W dilations (a run per W tap): SAME, and VALID 3-D with an H dilation
    ("conv2d", (2, 20, 7, 11), (3, 3, 20, 24), 1, "SAME", "NCHW", [1, 1, 1, 2]),
    ("conv3d", (1, 16, 3, 8, 13), (2, 3, 3, 16, 18), 1, "VALID", "NCDHW", [1, 1, 1, 2, 3]),
    # stride-1 transposes (taps read in reverse, a run per W tap): SAME,
    # VALID with dilation, 3-D, 1-D with a W dilation
    ("conv2d_transpose", (2, 20, 7, 9), (3, 3, 24, 20), 1, "SAME", "NCHW", None),
    ("conv2d_transpose", (1, 17, 6, 5), (3, 2, 18, 17), 1, "VALID", "NCHW", [1, 1, 2, 1]),
    ("conv3d_transpose", (1, 16, 4, 5, 6), (3, 3, 3, 20, 16), 1, "SAME", "NCDHW", None),
    ("conv1d_transpose", (2, 16, 11), (3, 18, 16), 1, "SAME", "NCW", 2),
    # ... W-edge columns apart in bands of 7 rows (128 channels)
    ("conv2d_transpose", (2, 128, 7, 7), (3, 3, 20, 128), 1, "SAME", "NCHW", None),
    # strided transposes (a block's positions share their H and W phases):
    # k3 and k4 s2, strides 3 x 2 with VALID, explicit padding, 3-D, 1-D
    ("conv2d_transpose", (2, 20, 7, 9), (3, 3, 24, 20), 2, "SAME", "NCHW", None),
    ("conv2d_transpose", (1, 17, 5, 6), (4, 4, 18, 17), 2, "SAME", "NCHW", None),
    ("conv2d_transpose", (1, 16, 4, 5), (3, 3, 20, 16), [1, 1, 3, 2], "VALID", "NCHW", None),
    ("conv2d_transpose", (2, 16, 5, 4), (3, 3, 17, 16), 2, [(1, 0), (0, 2)], "NCHW", None),
    ("conv3d_transpose", (1, 16, 3, 4, 5), (3, 3, 3, 20, 16), 2, "SAME", "NCDHW", None),
    ("conv1d_transpose", (2, 16, 11), (5, 18, 16), 3, "SAME", "NCW", 1),
    # 3-D transposes' ring of packed input planes (cpu_cfband.RING_SLOTS),
    # more planes than slots: two images (the ring starts again), 4 D taps
    # at D stride 2, 5 at D stride 3 (VALID), and a D dilation (no ring)
    ("conv3d_transpose", (2, 16, 6, 3, 4), (4, 3, 3, 20, 16), 2, "SAME", "NCDHW", None),
    ("conv3d_transpose", (1, 16, 7, 3, 5), (5, 3, 3, 18, 16), [1, 1, 3, 1, 2], "VALID", "NCDHW", None),
    ("conv3d_transpose", (1, 16, 4, 4, 5), (3, 3, 3, 20, 16), 1, "SAME", "NCDHW", [1, 1, 2, 1, 1]),
    ("conv2d", (2, 20, 7, 9), (3, 3, 20, 40), 1, "SAME", "NCHW", None),
    ("conv2d", (1, 24, 11, 13), (3, 2, 24, 33), [1, 1, 2, 1], [(2, 1), (1, 0)], "NCHW", None),
    ("conv2d", (1, 17, 12, 10), (3, 3, 17, 20), 1, "VALID", "NCHW", [1, 1, 2, 1]),
    ("conv3d", (1, 16, 5, 6, 7), (3, 3, 3, 16, 24), 1, "SAME", "NCDHW", None),
    ("conv3d", (2, 16, 5, 4, 6), (3, 2, 3, 16, 17), [1, 1, 2, 1, 1], "SAME", "NCDHW", None),
    # the packed D taps a ring (cpu_cfband.RING_SLOTS): 5 taps, D stride 2 (3 kept from one plane to the
    # next); a D dilation (no ring)
    ("conv3d", (1, 16, 9, 4, 5), (5, 3, 3, 16, 18), [1, 1, 2, 1, 1], "SAME", "NCDHW", None),
    ("conv3d", (1, 16, 7, 5, 6), (3, 3, 3, 16, 20), 1, "SAME", "NCDHW", [1, 1, 2, 1, 1]),
    ("conv1d", (3, 32, 11), (5, 32, 20), 1, "SAME", "NCW", 1),
    ("conv2d", (1, 16, 2, 2), (1, 1, 16, 18), [1, 1, 2, 1], [(1, 2), (0, 0)], "NCHW", None),
    ("conv2d", (1, 16, 1, 5), (1, 3, 16, 18), [1, 1, 3, 1], [(2, 2), (1, 1)], "NCHW", None),
    # output rows of two columns, each its own column group: a block's outputs two apart, stored one
    # by one (convolutions have no every-second-column store)
    ("conv2d", (2, 16, 9, 2), (3, 3, 16, 20), 1, "SAME", "NCHW", None),
]


class _NanEmpty:
    """numpy, with np.empty returning arrays of NaN (stale data that a
    kernel must not read)."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def empty(shape, dtype=float):
        if np.dtype(dtype).kind != "f":  # bytes (a recycled block): all ones, NaN as floats
            return np.full(shape, -1, dtype=np.int8).view(dtype)
        return np.full(shape, np.nan, dtype=dtype)


@pytest.mark.parametrize("trans", [False, True])
def test_cf_band_tap_table(trans):
    """cpu_cfband.tap_table, against the taps' definition: a transpose's
    output o (phase q = (o + p) % s) takes tap k from input (o + p - k * d)
    / s where that is whole, which is the phase's first row or column
    (o + p - q) / s plus the table's offset; a convolution's every tap, k
    * d from o * s - p. Taps ascending, as the kernel sums them."""
    for K, s, d in [(3, 2, 1), (4, 2, 1), (5, 3, 2), (3, 1, 2), (7, 4, 3), (1, 2, 1)]:
        table = cpu_cfband.tap_table(K, K, s, s, d, d, trans)
        assert not table.flags.writeable
        SH = s if trans else 1
        assert table.shape[0] == 2 * SH
        for p in range(3):
            for o in range(12):
                q = (o + p) % s if trans else 0
                for row in (table[q], table[SH + q]):
                    listed = [tuple(row[1 + 2 * e:3 + 2 * e]) for e in range(row[0])]
                    if trans:
                        want = [(k, (o + p - k * d) // s - (o + p - q) // s) for k in range(K)
                                if (o + p - k * d) % s == 0]
                    else:
                        want = [(k, k * d) for k in range(K)]
                    assert listed == want, (K, s, d, p, o)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CF_BAND_CASES, ids=[f"{c[0]}-{c[1]}" for c in CF_BAND_CASES])
def test_cf_bands_same_bits(case, dtype, vector_bytes, monkeypatch):
    """Bands give the bits of vectors along W and of the channels-last
    kernel, with either vector width, in bands of several rows and of one
    (chunks of tiles then start inside a plane's bands), and are used."""
    monkeypatch.setattr(cpu, "CF_BANDS_MIN_CHANNELS", 16)
    monkeypatch.setattr(cpu, "CF_BANDS_ANY_ROW_CHANNELS", 16)
    monkeypatch.setattr(cpu, "CF_BANDS_NARROW_PHASE_CHANNELS", 16)
    monkeypatch.setattr(cpu, "CF_BANDS_ONE_VECTOR_PHASE_OUT_CHANNELS", 16)
    monkeypatch.setattr(cpu, "CF_GATHER", False)  # (16 input channels: gathered runs first)
    # (the 8-row tile's band plans; the 12-row tile's: test_cf_bands_wide_tile_same_bits)
    monkeypatch.setattr(cpu, "CF_BANDS_WIDE_CHANNELS", 1 << 30)
    x, w = _arrays(case, dtype, np.random.default_rng(23))
    kernels = []
    groups = []  # column groups (1: every column on all W taps)
    real_rows = cpu_rb.with_rows

    def spy(kernel, args, n, **kw):
        kernels.append(kernel)
        if kernel is cpu_cfband.cfband_kernel:
            groups.append(int(args[5][0]))
        return real_rows(kernel, args, n, **kw)

    monkeypatch.setattr(cpu_rb, "with_rows", spy)
    monkeypatch.setattr(cpu_rb, "np", _NanEmpty())  # the kernel zeroes what it reads of its array
    results = _calls_with(case, x, w, monkeypatch, [
        ({(cpu, "CF_BANDS"): True}, None),
        ({(cpu_cfband, "BAND_BYTES"): 1}, 10**12),
        ({(cpu, "CF_BANDS"): False}, None)])
    assert kernels[:2] == [cpu_cfband.cfband_kernel] * 2
    assert cpu_cfband.cfband_kernel not in kernels[2:]
    # bands of one row: a transpose's columns by W phase (and edge columns
    # apart where that costs fewer steps); a convolution's in one group
    # unless its edge columns apart cost fewer steps
    strides = case[3]
    sw = strides if isinstance(strides, int) else strides[-1]
    if case[0].endswith("_transpose"):
        assert groups[1] >= sw
    else:
        # (13 columns on KW 2: 8 + 5 rows, or 8 + 4 and 1 with AVX-512 tiles)
        assert groups[1] == 1 or (case[1][2:] == (11, 13) and groups[1] == 2)  # 13 columns, KW 2: 8 + 4 and 1 (below)
    if case[2][1] == 5:
        assert groups[0] == 5
    y = results[0]
    assert all(r.tobytes() == y.tobytes() for r in results)
    assert np.moveaxis(y, 1, -1).tobytes() == _call_channels_last(case, x, w).tobytes()
    ref = _call(case, x, w, "reference")
    assert np.max(np.abs(y - ref)) <= 1e-5 * max(1.0, float(np.max(np.abs(ref))))


CF_BAND_WIDE_CASES = [c for c in CF_BAND_CASES if not c[0].endswith("_transpose") and c[3] == 1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CF_BAND_WIDE_CASES, ids=[f"{c[0]}-{c[1]}" for c in CF_BAND_WIDE_CASES])
def test_cf_bands_wide_tile_same_bits(case, dtype, monkeypatch):
    """Bands on cl_kernel's 12-row 2-vector tile (cpu.CF_BANDS_WIDE_CHANNELS,
    cpu_rb.CL_WIDE_ROWS: stride-1 forward calls) give the bits of 8-row
    bands, of bands of one row with the most chunks, and of the
    channels-last kernel."""
    for name in ("CF_BANDS_MIN_CHANNELS", "CF_BANDS_ANY_ROW_CHANNELS", "CF_BANDS_NARROW_PHASE_CHANNELS"):
        monkeypatch.setattr(cpu, name, 16)
    monkeypatch.setattr(cpu, "CF_BANDS_WIDE_CHANNELS", 1)
    monkeypatch.setattr(cpu_simd, "VREGS", 32)
    x, w = _arrays(case, dtype, np.random.default_rng(31))
    tiles = []
    real_rows = cpu_rb.with_rows

    def spy(kernel, args, n, **kw):
        if kernel is cpu_cfband.cfband_kernel:
            tiles.append((args[4].rows, args[4].nvec))
        return real_rows(kernel, args, n, **kw)

    monkeypatch.setattr(cpu_rb, "with_rows", spy)
    monkeypatch.setattr(cpu_rb, "np", _NanEmpty())
    results = _calls_with(case, x, w, monkeypatch, [
        ({(cpu_rb, "CL_WIDE_ROWS"): 12}, None),
        ({(cpu_cfband, "BAND_BYTES"): 1}, 10**12),
        ({(cpu_rb, "CL_WIDE_ROWS"): 0, (cpu_cfband, "BAND_BYTES"): cpu_cfband.BAND_BYTES}, None)])
    assert len(tiles) == 3
    if tiles[0][1] == 2:
        assert tiles[:2] == [(12, 2)] * 2 and tiles[2] == (8, 2), tiles
    y = results[0]
    assert all(r.tobytes() == y.tobytes() for r in results)
    assert np.moveaxis(y, 1, -1).tobytes() == _call_channels_last(case, x, w).tobytes()


# Bands with at most one vector of output channels: cl_kernel's one-vector
# tile (16 rows on AVX-512 for stride-1 calls, cpu._band_vectors). Forward
# convolutions of 16, 5, 8 and 12 output channels (a stride: the tile of
# tile_rows(1) rows; 3-D), stride-1 and strided transposes.
CF_BAND_ONE_VECTOR_CASES = [
    ("conv2d", (2, 16, 7, 9), (3, 3, 16, 16), 1, "SAME", "NCHW", None),
    ("conv2d", (1, 20, 9, 11), (3, 3, 20, 5), 1, "VALID", "NCHW", None),
    ("conv2d", (1, 16, 9, 13), (3, 3, 16, 8), [1, 1, 2, 2], "SAME", "NCHW", None),
    ("conv3d", (1, 16, 4, 5, 6), (3, 3, 3, 16, 12), 1, "SAME", "NCDHW", None),
    ("conv2d_transpose", (2, 16, 6, 7), (3, 3, 16, 16), 1, "SAME", "NCHW", None),
    ("conv2d_transpose", (1, 16, 5, 6), (4, 4, 3, 16), 2, "SAME", "NCHW", None),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CF_BAND_ONE_VECTOR_CASES, ids=[f"{c[0]}-{c[2]}" for c in CF_BAND_ONE_VECTOR_CASES])
def test_cf_bands_one_vector_tile(case, dtype, vector_bytes, monkeypatch):
    """Bands take the one-vector tile where the output channels fit in one
    vector, and give the bits of vectors along W and of the channels-last
    kernel, in bands of several rows and of one."""
    for name in ("CF_BANDS_MIN_CHANNELS", "CF_BANDS_ANY_ROW_CHANNELS", "CF_BANDS_NARROW_PHASE_CHANNELS",
                 "CF_BANDS_ONE_VECTOR_PHASE_OUT_CHANNELS"):
        monkeypatch.setattr(cpu, name, 1)
    monkeypatch.setattr(cpu, "CF_GATHER", False)
    x, w = _arrays(case, dtype, np.random.default_rng(29))
    tiles = []
    real_rows = cpu_rb.with_rows

    def spy(kernel, args, n, **kw):
        if kernel is cpu_cfband.cfband_kernel:
            tiles.append(args[4])
        return real_rows(kernel, args, n, **kw)

    monkeypatch.setattr(cpu_rb, "with_rows", spy)
    monkeypatch.setattr(cpu_rb, "np", _NanEmpty())
    results = _calls_with(case, x, w, monkeypatch, [
        ({(cpu, "CF_BANDS"): True}, None),
        ({(cpu_cfband, "BAND_BYTES"): 1}, 10**12),
        ({(cpu, "CF_BANDS"): False}, None)])
    F = results[0].shape[1]
    one = F * np.dtype(dtype).itemsize <= vector_bytes
    assert len(tiles) == 2 and all(t.nvec == (1 if one else 2) for t in tiles)
    if one and vector_bytes == 64:  # 16 rows for stride-1 forward convolutions
        stride1_conv = case[3] == 1 and not case[0].endswith("_transpose")
        assert tiles[0].rows == (cpu_rb.CL_ONE_VECTOR_ROWS if stride1_conv else cpu_simd.tile_rows(1))
    y = results[0]
    assert all(r.tobytes() == y.tobytes() for r in results)
    assert np.moveaxis(y, 1, -1).tobytes() == _call_channels_last(case, x, w).tobytes()
    ref = _call(case, x, w, "reference")
    assert np.max(np.abs(y - ref)) <= 1e-5 * max(1.0, float(np.max(np.abs(ref))))


@pytest.mark.parametrize("case, used", [
    (("conv2d", (1, 64, 7, 7), (3, 3, 64, 64), 1, "SAME", "NCHW", None), True),
    (("conv2d", (1, 64, 7, 16), (3, 3, 64, 64), 1, "SAME", "NCHW", None), False),  # 16 columns: full lanes
    (("conv2d", (1, 128, 3, 16), (3, 3, 128, 128), 1, "SAME", "NCHW", None), True),  # ... 128 channels
    (("conv2d", (1, 64, 7, 32), (3, 3, 64, 64), [1, 1, 1, 2], "SAME", "NCHW", None), True),  # W stride
    (("conv2d", (1, 64, 7, 14), (3, 3, 64, 64), 1, "SAME", "NCHW", None), True),  # 14 columns
    # rows that fill vectors along W's lanes poorly against the band tile's
    # channel lanes (16 here): 12 columns in 16 lanes (0.75), 20 in 24
    # (0.83), from 16 channels; 14 in 16 (0.875) on the 2-vector band tile
    (("conv2d", (1, 48, 7, 14), (3, 3, 48, 64), 1, "SAME", "NCHW", None), True),
    (("conv2d", (1, 64, 7, 14), (3, 3, 64, 48), 1, "SAME", "NCHW", None), True),
    (("conv2d", (1, 16, 7, 14), (3, 3, 16, 8), 1, "SAME", "NCHW", None), False),  # one-vector band tile
    (("conv2d", (1, 32, 7, 12), (3, 3, 32, 32), 1, "SAME", "NCHW", None), True),
    (("conv2d", (1, 16, 7, 12), (3, 3, 16, 16), 1, "SAME", "NCHW", None), True),
    (("conv3d", (1, 16, 3, 5, 20), (3, 3, 3, 16, 32), 1, "SAME", "NCDHW", None), True),
    (("conv2d_transpose", (1, 32, 7, 12), (3, 3, 32, 32), 1, "SAME", "NCHW", None), True),
    (("conv2d", (1, 8, 7, 12), (3, 3, 8, 32), 1, "SAME", "NCHW", None), False),  # 8 input channels
    (("conv2d", (1, 32, 7, 12), (3, 3, 32, 24), 1, "SAME", "NCHW", None), False),  # 24 of 32 band lanes
    (("conv2d", (1, 32, 7, 14), (3, 3, 32, 32), 1, "SAME", "NCHW", None), True),
    # 3-D rows of up to two vectors (16 columns here) from 32 input channels
    # on the 2-vector band tile; 2-D ones, and 16 input channels, stay
    (("conv3d", (1, 32, 3, 4, 16), (3, 3, 3, 32, 32), 1, "SAME", "NCDHW", None), True),
    (("conv3d_transpose", (1, 32, 3, 4, 16), (3, 3, 3, 32, 32), 1, "SAME", "NCDHW", None), True),
    (("conv2d", (1, 32, 7, 16), (3, 3, 32, 32), 1, "SAME", "NCHW", None), False),
    (("conv3d", (1, 16, 3, 4, 16), (3, 3, 3, 16, 32), 1, "SAME", "NCDHW", None), False),
    (("conv3d", (1, 32, 3, 4, 16), (3, 3, 3, 32, 8), 1, "SAME", "NCDHW", None), False),  # one-vector band tile
    (("conv3d", (1, 32, 3, 4, 24), (3, 3, 3, 32, 32), 1, "SAME", "NCDHW", None), False),  # 3 vectors
    (("conv2d_transpose", (1, 16, 7, 12), (3, 3, 32, 16), 2, "SAME", "NCHW", None), False),  # strided: from 32
    # rows of one vector (8 columns) from 32 input channels, up to a ratio of 1
    (("conv2d", (1, 32, 7, 8), (3, 3, 32, 32), 1, "SAME", "NCHW", None), True),
    (("conv2d", (1, 48, 7, 7), (3, 3, 48, 64), 1, "SAME", "NCHW", None), True),
    (("conv2d", (1, 16, 7, 8), (3, 3, 16, 32), 1, "SAME", "NCHW", None), False),  # 16 input channels
    (("conv2d", (1, 32, 7, 8), (3, 3, 32, 24), 1, "SAME", "NCHW", None), False),  # 24 of 32 band lanes
    # a W dilation: rows that leave vectors along W part empty, 2-D and 3-D
    (("conv2d", (1, 64, 7, 7), (3, 3, 64, 64), 1, "SAME", "NCHW", [1, 1, 1, 2]), True),
    (("conv3d", (1, 64, 3, 4, 7), (3, 3, 3, 64, 64), 1, "SAME", "NCDHW", [1, 1, 1, 1, 2]), True),
    (("conv2d", (1, 64, 7, 16), (3, 3, 64, 64), 1, "SAME", "NCHW", [1, 1, 1, 2]), False),  # whole vectors
    (("conv2d", (1, 128, 7, 16), (3, 3, 128, 128), 1, "SAME", "NCHW", [1, 1, 1, 2]), False),
    (("conv1d", (1, 64, 23), (3, 64, 64), 1, "SAME", "NCW", 2), False),  # 1-D
    (("conv2d", (1, 64, 7, 7), (3, 3, 32, 64), 1, "SAME", "NCHW", None), False),  # two groups
    (("conv2d_transpose", (1, 64, 7, 7), (3, 3, 64, 64), 1, "SAME", "NCHW", None), True),
    # strided transposes: 128 input and output channels, or 32 where a W
    # phase has fewer columns than a vector's lanes (8 float32 here)
    (("conv2d_transpose", (1, 64, 7, 16), (3, 3, 64, 64), 2, "SAME", "NCHW", None), False),  # 16-column phases
    (("conv2d_transpose", (1, 64, 7, 7), (3, 3, 64, 64), 2, "SAME", "NCHW", None), True),  # 7-column phases
    (("conv2d_transpose", (1, 64, 7, 8), (3, 3, 64, 64), 2, "SAME", "NCHW", None), False),  # 8: one full vector
    (("conv2d_transpose", (1, 64, 7, 8), (3, 3, 32, 64), 2, "SAME", "NCHW", None), False),  # 32 out, 8 columns
    # 8 columns, 128 in, 64 out: k4 s2 (512 steps per output), k3 s2 (288)
    (("conv2d_transpose", (1, 128, 7, 8), (4, 4, 64, 128), 2, "SAME", "NCHW", None), True),
    (("conv2d_transpose", (1, 128, 7, 8), (3, 3, 64, 128), 2, "SAME", "NCHW", None), False),
    (("conv3d_transpose", (1, 128, 3, 4, 8), (3, 3, 3, 64, 128), 2, "SAME", "NCDHW", None), True),  # 432 steps
    # 3-D, one-vector W phases: from 64 input and 32 output channels
    (("conv3d_transpose", (1, 64, 3, 4, 8), (3, 3, 3, 32, 64), 2, "SAME", "NCDHW", None), True),
    (("conv3d_transpose", (1, 32, 3, 4, 8), (3, 3, 3, 64, 32), 2, "SAME", "NCDHW", None), False),
    (("conv3d_transpose", (1, 64, 3, 4, 8), (3, 3, 3, 16, 64), 2, "SAME", "NCDHW", None), False),
    (("conv2d_transpose", (1, 128, 7, 8), (4, 4, 32, 128), 2, "SAME", "NCHW", None), False),  # 32 out
    (("conv2d_transpose", (1, 128, 7, 16), (4, 4, 64, 128), 2, "SAME", "NCHW", None), False),  # 16 columns
    (("conv2d_transpose", (1, 64, 7, 7), (3, 3, 32, 64), 2, "SAME", "NCHW", None), True),  # 32 out, 7 columns
    (("conv2d_transpose", (1, 64, 7, 7), (3, 3, 16, 64), 2, "SAME", "NCHW", None), False),  # 16 out
    (("conv2d_transpose", (1, 128, 7, 7), (3, 3, 128, 128), 2, "SAME", "NCHW", None), True),
    (("conv2d_transpose", (1, 128, 4, 9), (3, 3, 128, 128), 2, "SAME", "NCHW", None), True),  # 9-column phases
    (("conv2d_transpose", (1, 128, 4, 4), (4, 4, 128, 128), 2, "SAME", "NCHW", None), True),  # k4 s2
    (("conv2d_transpose", (1, 128, 4, 4), (4, 4, 64, 128), 2, "SAME", "NCHW", None), True),  # 64 out, 4-column phases
    (("conv2d_transpose", (1, 128, 4, 16), (4, 4, 64, 128), 2, "SAME", "NCHW", None), False),  # 64 out, 16 columns
    # W phases that fill vectors along W's 16 lanes poorly, from 32 channels:
    # 9 or 10 columns (0.56, 0.63), not 14 (0.875)
    (("conv2d_transpose", (1, 64, 7, 9), (3, 3, 64, 64), 2, "SAME", "NCHW", None), True),
    (("conv2d_transpose", (1, 32, 5, 10), (3, 3, 32, 32), 2, "SAME", "NCHW", None), True),
    (("conv3d_transpose", (1, 32, 2, 3, 10), (3, 3, 3, 32, 32), 2, "SAME", "NCDHW", None), True),
    (("conv2d_transpose", (1, 32, 5, 14), (3, 3, 32, 32), 2, "SAME", "NCHW", None), False),
    (("conv2d_transpose", (1, 32, 5, 10), (3, 3, 24, 32), 2, "SAME", "NCHW", None), False),  # 24 out
    # W phases of at most half a vector (4 columns here): from 8 input and
    # 32 output channels, ahead of gathered runs; 16 input channels for
    # exactly half with a D stride
    (("conv2d_transpose", (1, 8, 5, 4), (4, 4, 32, 8), 2, "SAME", "NCHW", None), True),
    (("conv2d_transpose", (1, 8, 5, 4), (4, 4, 64, 8), 2, "SAME", "NCHW", None), True),
    (("conv2d_transpose", (1, 8, 5, 3), (3, 3, 32, 8), 2, "SAME", "NCHW", None), True),
    (("conv2d_transpose", (1, 6, 5, 4), (4, 4, 32, 6), 2, "SAME", "NCHW", None), False),  # 6 in
    (("conv2d_transpose", (1, 8, 5, 4), (4, 4, 24, 8), 2, "SAME", "NCHW", None), False),  # 24 out
    (("conv2d_transpose", (1, 8, 5, 5), (4, 4, 32, 8), 2, "SAME", "NCHW", None), False),  # 5 columns
    (("conv3d_transpose", (1, 8, 3, 4, 4), (3, 3, 3, 32, 8), 2, "SAME", "NCDHW", None), False),
    (("conv3d_transpose", (1, 16, 3, 4, 4), (3, 3, 3, 32, 16), 2, "SAME", "NCDHW", None), True),
    (("conv3d_transpose", (1, 8, 3, 4, 3), (3, 3, 3, 32, 8), 2, "SAME", "NCDHW", None), True),
    (("conv3d_transpose", (1, 128, 3, 4, 4), (3, 3, 3, 128, 128), 2, "SAME", "NCDHW", None), True),
    (("conv2d_transpose", (1, 128, 7, 7), (2, 2, 128, 128), 2, "VALID", "NCHW", None), False),  # stride == kernel
    # a padding past the first tap of input 0 ((K - 1) * d - p < 0)
    (("conv2d_transpose", (1, 128, 7, 7), (3, 3, 128, 128), 2, [(3, 0), (0, 0)], "NCHW", None), False),
    (("conv2d_transpose", (1, 64, 7, 7), (3, 3, 64, 64), 1, "SAME", "NCHW", [1, 1, 1, 2]), True),
])
def test_cf_bands_rule(case, used, monkeypatch):
    """Which channels-first calls take bands (float32, AVX2 tiles)."""
    monkeypatch.setattr(cpu_simd, "VBYTES", 32)
    monkeypatch.setattr(cpu_simd, "VREGS", 16)
    kernels = []  # the kernels given packed rows (a band kernel always is)
    monkeypatch.setattr(cpu_rb, "with_rows",
                        lambda k, a, n, _r=cpu_rb.with_rows, **kw: (kernels.append(k), _r(k, a, n, **kw))[1])
    x, w = _arrays(case, np.float32, np.random.default_rng(3))
    _call(case, x, w, "cpu")
    assert (cpu_cfband.cfband_kernel in kernels) == used


@pytest.mark.parametrize("ntiles, nt, most, chunks, span", [
    (16, 2, 14, 10, 8),  # 14 chunks (two of 2 tiles) would take 9 tiles' time
    (48, 2, 14, 12, 24),
    (7, 2, 2, 2, 4),
    (5, 2, 5, 5, 3),  # a tile each
    (3, 2, 3, 3, 2),
    (1000, 2, 16, 16, 504),  # within 2 % of 10 chunks of 100: the most chunks
    (12, 3, 8, 6, 4),
    (10, 3, 2, 3, 4),  # fewer chunks allowed than threads: one each
])
def test_chunk_bounds(ntiles, nt, most, chunks, span):
    """cpu_rb.chunk_bounds: contiguous ranges covering the tiles, sizes
    within one, at most `most`, as many as keep the time of nt threads
    claiming them in order near its least."""
    bounds = cpu_rb.chunk_bounds(ntiles, nt, most)
    sizes = np.diff(bounds)
    assert bounds[0] == 0 and bounds[-1] == ntiles and len(sizes) == chunks <= max(most, nt)
    assert sizes.min() >= 1 and sizes.max() - sizes.min() <= 1
    free = [0] * nt
    for size in sizes:
        free[free.index(min(free))] += int(size)
    assert max(free) == span


@pytest.mark.parametrize("per_thread, work, chunks", [
    (None, 10**12, 16),  # CHUNKS_PER_THREAD (8) on 2 threads
    (32, 10**12, 64),  # cl_kernel's (cpu.CL_CHUNKS_PER_THREAD)
    (32, 40 * 8_000_000, 40),  # at least CHUNK_WORK each
])
def test_parallel_tiles_chunks_per_thread(per_thread, work, chunks, monkeypatch):
    """parallel_tiles' chunk count: per_thread chunks per thread at most,
    each of CHUNK_WORK or more; every tile runs once."""
    monkeypatch.setattr(cpu_rb.numba, "get_num_threads", lambda: 2)
    monkeypatch.setattr(cpu_rb, "CHUNKS_PER_THREAD", 8)
    monkeypatch.setattr(cpu_rb, "CHUNK_WORK", 8_000_000)
    ranges = []
    cpu_rb.parallel_tiles(lambda t0, t1: ranges.append((t0, t1)), (), 4096, work, per_thread=per_thread)
    assert sorted(t for t0, t1 in ranges for t in range(t0, t1)) == list(range(4096))
    assert len(ranges) == chunks


@pytest.mark.parametrize("shape, channels_first, vector", [
    ((1, 28, 28, 192), False, True),  # depthwise_cl_vectors
    ((1, 28, 28, 192), True, True),  # depthwise_cf_blocks
    ((1, 14, 14, 576), False, True),  # depthwise_cl_blocks
    ((1, 112, 112, 144), False, True),
    ((1, 112, 112, 144), True, True),  # depthwise_cf
    ((1, 7, 7, 960), False, False),  # depthwise_cl: rows too short for the vector kernels
])
def test_depthwise_work_rule(shape, channels_first, vector, monkeypatch):
    """The vector depthwise kernels stay on the calling thread below
    cpu.DEPTHWISE_SERIAL_MACS multiply-adds (parallel_tiles' work 0) and
    above count 16 per multiply-add, as depthwise_cl always does; the same
    bits either way."""
    seen = []
    real = cpu_rb.parallel_tiles

    def spy(kernel, args, ntiles, work, *rest):
        seen.append(work)
        return real(kernel, args, ntiles, work, *rest)

    rng = np.random.default_rng(5)
    B, H, W, C = shape
    x = rng.standard_normal((B, C, H, W) if channels_first else shape).astype(np.float32)
    w = rng.standard_normal((3, 3, 1, C)).astype(np.float32)
    fmt = "NCHW" if channels_first else "NHWC"
    before = fastdeconv.conv2d(x, w, 1, "SAME", data_format=fmt, backend="cpu")
    monkeypatch.setattr(cpu_rb, "parallel_tiles", spy)
    ours = fastdeconv.conv2d(x, w, 1, "SAME", data_format=fmt, backend="cpu")
    macs = B * H * W * C * 9
    assert seen == [0 if vector and macs < cpu.DEPTHWISE_SERIAL_MACS else 16 * macs]
    np.testing.assert_array_equal(ours, before)
    monkeypatch.setattr(cpu, "DEPTHWISE_SERIAL_MACS", 0)
    seen.clear()
    np.testing.assert_array_equal(fastdeconv.conv2d(x, w, 1, "SAME", data_format=fmt, backend="cpu"), before)
    assert seen == [16 * macs]


def test_cl_kernel_chunks_per_thread(monkeypatch):
    """cl_kernel's calls with filters packed before the call pass
    cpu.CL_CHUNKS_PER_THREAD to parallel_tiles; the panel path (filters
    packed per chunk) keeps the default."""
    seen = []
    real = cpu_rb.parallel_tiles

    def spy(kernel, args, ntiles, work, group=1, per_thread=None, *entry):
        seen.append((getattr(getattr(kernel, "py_func", kernel), "__name__", ""), per_thread))
        return real(kernel, args, ntiles, work, group, per_thread, *entry)

    monkeypatch.setattr(cpu_rb, "parallel_tiles", spy)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 6, 6, 6, 32)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 64, 32)).astype(np.float32)
    w.flags.writeable = False
    fastdeconv.conv3d_transpose(x, w, (1, 12, 12, 12, 64), 2, "SAME", backend="cpu")
    assert ("cl_kernel", cpu.CL_CHUNKS_PER_THREAD) in seen


@pytest.mark.parametrize("ntiles, group, grouped", [
    (112, 4, True),  # 28 bands of 4 channel blocks: 16 chunks of 7 tiles, or 14 of 2 bands
    (12, 4, False),  # 3 bands on 2 threads: 8 tiles' time against 6
    (128, 16, True),
    (12, 5, False),  # (not a divisor: as in tiles)
])
def test_parallel_tiles_groups(ntiles, group, grouped, monkeypatch):
    """parallel_tiles keeps a band's tiles in one chunk when that takes the
    busiest thread no longer; every tile runs once either way."""
    monkeypatch.setattr(cpu_rb.numba, "get_num_threads", lambda: 2)
    ranges = []
    cpu_rb.parallel_tiles(lambda t0, t1: ranges.append((t0, t1)), (), ntiles, 10**12, group)
    assert sorted(t for t0, t1 in ranges for t in range(t0, t1)) == list(range(ntiles))
    assert len(ranges) > 1
    assert all(t0 % group == 0 for t0, _ in ranges) == grouped


@pytest.mark.parametrize("call, plan", [
    # (OH, H, OW, W, C, NV, KH, KW, sh, sw, dh, dw, ph, pw, BH, rows, part, trans, most images)
    ((8, 4, 8, 4, 512, 32, 4, 4, 2, 2, 1, 1, 1, 1, 8, 8, 4, True, 4), (4, True)),  # DCGAN 16 x 4^2 k4 s2
    ((8, 4, 8, 4, 512, 32, 4, 4, 2, 2, 1, 1, 1, 1, 8, 8, 4, True, 1), (1, True)),  # ... one image
    ((7, 7, 7, 7, 512, 32, 3, 3, 1, 1, 1, 1, 1, 1, 7, 8, 4, False, 2), (1, True)),  # 8 x 7^2 x 512 k3
    ((16, 8, 16, 8, 128, 32, 3, 3, 2, 2, 1, 1, 0, 0, 16, 8, 4, True, 1), (1, False)),  # 8^3 x 128 k3 s2
])
def test_cf_band_plan(call, plan):
    """cpu_cfband.band_plan on the measured cases (benchmarks/NOTES.md
    sections 86-87): images per band and W-edge columns apart."""
    assert cpu_cfband.band_plan(*call) == plan


@pytest.mark.parametrize("case, images", [
    # 5 images of 4 x 4 -> 8 x 8 (16 positions per phase): bands of 4 and 1
    (("conv2d_transpose", (5, 32, 4, 4), (4, 4, 24, 32), 2, "SAME", "NCHW", None), 4),
    (("conv2d", (3, 32, 5, 3), (3, 3, 32, 40), 1, "SAME", "NCHW", None), 3),  # 15 positions: all three
    (("conv3d", (2, 32, 3, 4, 4), (3, 3, 3, 32, 20), [1, 1, 2, 1, 1], "SAME", "NCDHW", None), 2),  # D stride
    (("conv2d", (3, 32, 9, 9), (3, 3, 32, 40), 1, "SAME", "NCHW", None), 1),  # 81 positions
])
@pytest.mark.parametrize("split", [False, True], ids=["whole-rows", "edges-apart"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cf_band_images(case, images, split, dtype, vector_bytes, monkeypatch):
    """Bands of a whole small plane holding several images' rows (blocks
    of positions across images; cpu_cfband.band_images, as many as
    band_plan may choose): the bits of the channels-last call, on one
    thread and in the most chunks, W-edge columns apart or not."""
    monkeypatch.setattr(cpu_cfband, "band_plan", lambda *a: (a[-1], split))
    monkeypatch.setattr(cpu, "CF_BANDS_MIN_CHANNELS", 16)
    monkeypatch.setattr(cpu, "CF_BANDS_ANY_ROW_CHANNELS", 16)
    monkeypatch.setattr(cpu, "CF_BANDS_NARROW_PHASE_CHANNELS", 16)
    monkeypatch.setattr(cpu, "CF_BANDS_ONE_VECTOR_PHASE_OUT_CHANNELS", 16)
    monkeypatch.setattr(cpu, "CF_GATHER", False)
    seen = []
    real_rows = cpu_rb.with_rows

    def spy(kernel, args, n, **kw):
        if kernel is cpu_cfband.cfband_kernel:
            seen.append(args[3][-1])
        return real_rows(kernel, args, n, **kw)

    monkeypatch.setattr(cpu_rb, "with_rows", spy)
    monkeypatch.setattr(cpu_rb, "np", _NanEmpty())
    x, w = _arrays(case, dtype, np.random.default_rng(29))
    results = _calls_with(case, x, w, monkeypatch, [({}, None), ({}, 10**12)])
    assert seen == [images] * 2
    assert results[0].tobytes() == results[1].tobytes()
    assert np.moveaxis(results[0], 1, -1).tobytes() == _call_channels_last(case, x, w).tobytes()


@pytest.mark.parametrize("call, split", [
    # (OH, H, OW, W, C, NV, KH, KW, sh, sw, dh, dw, ph, pw, BH, rows, part, trans)
    ((7, 7, 7, 7, 512, 32, 3, 3, 1, 1, 1, 1, 1, 1, 7, 8, 4, False), True),  # 7 x 7: 2 of 21 steps on padding
    ((7, 7, 7, 7, 512, 32, 3, 3, 1, 1, 1, 1, 1, 1, 7, 8, 4, True), True),  # ... a stride-1 transpose
    ((56, 56, 56, 56, 256, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 8, 4, False), False),  # bands of one row of 56
    ((8, 4, 8, 4, 512, 32, 4, 4, 2, 2, 1, 1, 1, 1, 8, 8, 4, True), True),  # k4 s2 transpose, 4-column phases
    # k3 s2, 8-column phases: the edge column's 8 outputs stored one by one
    ((16, 8, 16, 8, 128, 32, 3, 3, 2, 2, 1, 1, 0, 0, 16, 8, 4, True), False),
    ((56, 112, 56, 112, 128, 32, 3, 3, 2, 2, 1, 1, 0, 0, 2, 8, 4, False), False),  # right edge only, 2 rows
    ((7, 7, 7, 7, 512, 32, 1, 1, 1, 1, 1, 1, 0, 0, 7, 8, 4, False), False),  # 1x1: no edge columns
])
def test_cf_band_split_rule(call, split):
    """cpu_cfband.band_plan on one image per band: W-edge columns in
    blocks of their own when that costs less (tile steps and stores,
    `plane_cost`)."""
    assert cpu_cfband.band_plan(*call, 1) == (1, split)
    costs = [cpu_cfband.plane_cost(*call, s) for s in (False, True)]
    assert (costs[1] < costs[0]) == split


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[5]}")
@pytest.mark.parametrize("activation", ["linear", "relu", "tanh"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_epilogue_inside_the_kernel(case, activation, dtype, cl1, monkeypatch):
    """cpu.forward / cpu.transpose with a conv layer's epilogue (bias, scale,
    shift, activation): in registers in the channels-last kernel for linear
    and ReLU, else one pass after it; either way the same bits as the pass
    over the plain result, NaN inputs included."""
    from fastdeconv.backends import cpu_layers

    op, xs, ws, strides, padding, fmt, dil = case
    x, w = _arrays(case, dtype, np.random.default_rng(3))
    x.flat[x.size // 2] = np.nan
    cf = fmt.startswith("NC")
    F = w.shape[-2] if "transpose" in op else w.shape[-1]
    rng = np.random.default_rng(4)
    bias, scale, shift = (rng.standard_normal(F).astype(dtype) for _ in range(3))
    captured = {}
    real_forward, real_transpose = cpu.forward, cpu.transpose

    def spy(real):
        def call(*args, **kwargs):
            plain = real(*args)
            fused = real(*args, epilogue=(bias, scale, shift, activation, 0.0))
            captured["pair"] = (plain, fused)
            return fused
        return call

    monkeypatch.setattr(cpu, "forward", spy(real_forward))
    monkeypatch.setattr(cpu, "transpose", spy(real_transpose))
    _call(case, x, w, "cpu")
    plain, fused = captured["pair"]
    expected = cpu_layers.epilogue(plain.copy(), F, cf, bias, scale, shift, activation, 0.0)
    assert np.isnan(expected).any() and not np.isnan(expected).all()
    np.testing.assert_array_equal(fused, expected)


@pytest.mark.parametrize("geometry", [
    # (B, OH, OW, P, W, KH, h stride, h dilation, h pad, W offsets per phase (mw), rb, H size)
    (2, 9, 11, 1, 11, 3, 1, 2, 2, [[-2, 0, 2]], 2, 6, 9),   # dilated SAME: 2 + 2 edge columns and lines
    (1, 8, 8, 1, 8, 3, 1, 1, 1, [[-1, 0, 1]], 1, 6, 8),
    (3, 5, 10, 2, 5, 3, 1, 1, 1, [[1, 0, cpu_rb.NO_TAP], [1, cpu_rb.NO_TAP, 0]], 1, 8, 5),  # transpose, 2 phases
    (1, 4, 7, 1, 13, 3, 2, 1, 0, [[0, 1, 2]], 2, 6, 9),     # VALID, H stride 2: no edge lines or columns
    (1, 3, 5, 1, 5, 3, 1, 1, 1, [[-1, 0, 1]], 1, 6, 3),     # one inside line: nothing to fold
])
@pytest.mark.parametrize("fold", [True, False])
def test_row_spaces_cover_every_output_once(geometry, fold):
    """cl_kernel's tiles (cpu_rb.row_spaces) cover every (image, line,
    column) of every phase once; a row space of several lines holds only
    lines with the same H taps inside and orders its columns in classes:
    first those missing a W tap on the left, then those inside for every
    tap, then those missing one on the right; tiles are whole blocks of rb
    rows but the last of a space."""
    B, OH, OW, P, W, KH, sh, dh, ph, e, mw, rb, H = geometry
    e = np.array(e, dtype=np.int64)
    oh = np.arange(OH)[:, None]
    ih = oh * sh + np.arange(KH)[None, :] * dh - ph
    h_inside = np.where((ih >= 0) & (ih < H), ih, -1)
    start = 100
    table, T = cpu_rb.row_spaces(B, OH, OW, P, W, mw, e, h_inside, rb, fold, start)
    tiles = table[:P * T * cpu_rb.TILE_FIELDS].reshape(P, T, cpu_rb.TILE_FIELDS)
    folded_any = False
    for phase in range(P):
        nJ = -(-(OW - phase) // P)
        es = e[phase][e[phase] != cpu_rb.NO_TAP]
        seen = []
        for oh0, nl, r0, r1, order in tiles[phase]:
            if r1 <= r0:
                continue
            assert nl >= 1 and (r1 - r0) % rb == 0 or r1 == B * nl * nJ
            rows = table[order - start:order - start + nl * nJ]
            lines, cols = rows >> 32, rows & 0xFFFFFFFF
            if nl > 1:
                folded_any = True
                assert ((h_inside[oh0:oh0 + nl] >= 0) == (h_inside[oh0] >= 0)).all()
                inside = (cols[:, None] * mw + es[None, :] >= 0).all(axis=1) & \
                         (cols[:, None] * mw + es[None, :] < W).all(axis=1)
                left = (cols[:, None] * mw + es[None, :] < 0).any(axis=1)
                cls = np.where(left, 0, np.where(inside, 1, 2))
                assert (np.diff(cls) >= 0).all()
            for r in range(r0, r1):
                b, p = divmod(r, nl * nJ)
                seen.append((b, oh0 + lines[p], cols[p]))
        assert sorted(seen) == [(b, y, j) for b in range(B) for y in range(OH) for j in range(nJ)]
    same_taps = ((h_inside[1:] >= 0) == (h_inside[:-1] >= 0)).all(axis=1).any()
    assert folded_any == (fold and bool(same_taps))


def test_tile_rows_fit_the_vector_registers():
    """AVX-512 (32 registers): 8 rows x 2 vectors; AVX2 (16): 6 x 2 and
    8 x 1, so that accumulators, weight vectors and a broadcast fit."""
    assert cpu_simd.tile_rows(2, vregs=32) == 8
    assert cpu_simd.tile_rows(1, vregs=32) == 8
    assert cpu_simd.tile_rows(2, vregs=16) == 6
    assert cpu_simd.tile_rows(1, vregs=16) == 8
    for vregs in (16, 32):
        for nvec in (1, 2):
            rows = cpu_simd.tile_rows(nvec, vregs=vregs)
            assert rows * nvec + nvec + 1 <= vregs


@pytest.fixture(params=[32, 64], ids=["avx2-tiles", "avx512-tiles"])
def vector_bytes(request, monkeypatch):
    """Run the kernels with either vector width, whatever this CPU has (the
    width is part of each kernel's compiled signature: cpu_simd.Tile)."""
    vb = request.param
    monkeypatch.setattr(cpu_simd, "VBYTES", vb)
    monkeypatch.setattr(cpu_simd, "VREGS", 32 if vb == 64 else 16)
    monkeypatch.setattr(cpu, "WV_NARROW", vb // 8)
    monkeypatch.setattr(cpu, "WV_NARROW_STEPS", 32)
    monkeypatch.setattr(cpu, "WV_PACK_MIN_ROWS", 0)  # packed channels-first rows on small cases too
    return vb


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[5]}")
def test_vector_widths_give_identical_bits(case, vector_bytes):
    """32- and 64-byte vectors, with the tile rows each width gets: every
    lane is its own accumulator, so the terms of each output and their order
    do not change, nor do the bits (compared with the host width's result)."""
    x, w = _arrays(case, np.float32, np.random.default_rng(6))
    got = _call(case, x, w, "cpu")
    ref = _call(case, x, w, "reference")
    err = np.max(np.abs(got.astype(np.float64) - ref)) / max(float(np.max(np.abs(ref))), 1e-300)
    assert err <= 2e-6
    assert cpu_rb.cl_tile(2).vbytes == vector_bytes
    # the host width (imported defaults) in a fresh setting
    with pytest.MonkeyPatch.context() as mp:
        host = cpu_simd._host_vector_bytes()
        mp.setattr(cpu_simd, "VBYTES", host)
        mp.setattr(cpu_simd, "VREGS", 32 if host == 64 else 16)
        mp.setattr(cpu, "WV_NARROW", vector_bytes // 8)  # the same kernel choice
        assert _call(case, x, w, "cpu").tobytes() == got.tobytes()


def test_vector_width_setting_is_checked(monkeypatch):
    monkeypatch.setenv("FASTDECONV_VECTOR_BYTES", "48")
    with pytest.raises(ValueError, match="FASTDECONV_VECTOR_BYTES='48': expected 32 or 64"):
        cpu_simd._host_vector_bytes()
    monkeypatch.setenv("FASTDECONV_VECTOR_BYTES", "64")
    assert cpu_simd._host_vector_bytes() == 64


def test_vector_width_follows_numba_cpu_features(monkeypatch):
    """With NUMBA_CPU_FEATURES set, Numba compiles for those features, not
    the host's: the vector width follows them."""
    from numba.core import config

    monkeypatch.delenv("FASTDECONV_VECTOR_BYTES", raising=False)
    monkeypatch.setattr(config, "CPU_FEATURES", "+avx2,+fma,+avx512f")
    assert cpu_simd._host_vector_bytes() == 64
    monkeypatch.setattr(config, "CPU_FEATURES", "+avx2,+fma,-avx512f")
    assert cpu_simd._host_vector_bytes() == 32
    monkeypatch.setattr(config, "CPU_FEATURES", "")
    assert cpu_simd._host_vector_bytes() == 32


def test_tile_shapes_are_checked():
    with pytest.raises(ValueError, match="expected 1-16 rows"):
        cpu_simd.Tile(17, 1)
    with pytest.raises(ValueError, match="32- or 64-byte vectors"):
        cpu_simd.Tile(6, 2, 16)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "leaky_relu"])
def test_one_channel_route_with_epilogue_and_out(activation, monkeypatch):
    """The channels-first route of a 1-channel channels-last call keeps the
    epilogue (applied to the channels-last result) and writes into `out`
    (a Model's concatenation buffer) like the gathered path."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 5, 6, 8)).astype(np.float32)
    w = rng.standard_normal((1, 3, 3, 1, 8)).astype(np.float32)  # [kd, kh, kw, out, in]
    geo = ((3, 10, 12), (1, 2, 2), (1, 1, 1), (0, 0, 0), False)
    epilogue = (np.array([0.3], np.float32), np.array([1.5], np.float32), np.array([-0.2], np.float32), activation,
                0.2)
    results = []
    for cf1 in (True, False):
        monkeypatch.setattr(cpu, "NARROW_ONE_CHANNEL_CF", cf1)
        y = cpu.transpose(x, w, *geo, epilogue=epilogue)
        out = np.full(y.shape, np.nan, np.float32)
        assert cpu.transpose(x, w, *geo, epilogue=epilogue, out=out) is out
        np.testing.assert_array_equal(out, y)
        results.append(y)
    np.testing.assert_array_equal(results[0], results[1])
    assert np.all(np.isfinite(results[0]))


def test_patch_route_is_taken(monkeypatch):
    """The stride == kernel transposes of CASES run cpu_patch's kernels
    (so the tests above cover them), and other transposes do not."""
    from fastdeconv.backends import cpu_patch

    taken = []
    real = cpu_rb.parallel_tiles
    monkeypatch.setattr(cpu_rb, "parallel_tiles", lambda k, *a: (taken.append(k), real(k, *a)))
    monkeypatch.setattr(cpu, "WV_NARROW", 0)
    rng = np.random.default_rng(5)
    patches = 0
    for case in CASES:
        if not case[0].endswith("_transpose"):
            continue
        _, xs, ws, strides, padding, fmt, dil = case
        rank = len(xs) - 2
        kernel = ws[:rank]
        s = [strides] * rank if np.isscalar(strides) else list(strides)
        s = s[2:] if len(s) == rank + 2 and fmt.startswith("NC") else s[1:-1] if len(s) == rank + 2 else s
        expected = list(kernel) == list(s) and padding in ("SAME", "VALID")
        taken.clear()
        _call(case, *_arrays(case, np.float32, rng), "cpu")
        assert (taken[-1] in (cpu_patch.patch_cl, cpu_patch.patch_cf)) == expected, case
        patches += expected
    assert patches >= 6


@pytest.mark.parametrize("case", [c for c in CASES if c[0].endswith("_transpose") and c[5].startswith("NC")],
                         ids=lambda c: f"{c[0]}-{c[5]}")
def test_patch_passes_give_identical_bits(case, monkeypatch):
    """patch_cf's blocks of lines and passes over a few output channels
    (cpu_patch.cf_plan, for results too large for the caches), forced here
    on small ones: the same bits as one line and one pass, and as the
    other paths."""
    from fastdeconv.backends import cpu_patch

    x, w = _arrays(case, np.float32, np.random.default_rng(7))
    results = []
    for min_bytes, lines, channels, patch in ((1 << 40, 8, 8, True), (0, 2, 1, True), (0, 3, 8, True),
                                               (0, 8, 64, True), (0, 2, 1, False)):
        monkeypatch.setattr(cpu_patch, "CF_PASS_MIN_BYTES", min_bytes)
        monkeypatch.setattr(cpu_patch, "CF_LINES", lines)
        monkeypatch.setattr(cpu_patch, "CF_PASS_CHANNELS", channels)
        monkeypatch.setattr(cpu, "PATCH", patch)
        results.append(_call(case, x, w, "cpu").tobytes())
    assert len(set(results)) == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("W", [4, 8, 12, 16, 24, 40])
def test_patch_cf_flat_chunks_same_bits(W, dtype, monkeypatch):
    """patch_cf's lines shorter than a chunk or not a whole number of
    chunks (cpu_patch.cf_flat: half vectors of one line's positions) run
    as one run of positions across line ends: the same bits as
    channels-last and as the per-line path of another width's lines, and
    the reference's result, with several lines per tile (3: a last chunk
    part filled), passes of one block, part blocks (20 channels) and the
    most chunks."""
    from fastdeconv.backends import cpu_patch

    lanes = cpu_simd.VBYTES // np.dtype(dtype).itemsize
    flat = cpu_patch.cf_flat(W, 2, lanes)
    assert flat == (W % (2 * lanes) != 0 and W % (lanes // 2) == 0)
    case = ("conv3d_transpose", (2, 12, 2, 5, W), (2, 2, 2, 20, 12), 2, "VALID", "NCDHW", None)
    x, w = _arrays(case, dtype, np.random.default_rng(75))
    results = []
    for min_bytes, lines, channels, work in ((1 << 40, 8, 8, None), (0, 3, 1, None), (0, 3, 8, 10**12),
                                             (0, 8, 64, None)):
        monkeypatch.setattr(cpu_patch, "CF_PASS_MIN_BYTES", min_bytes)
        monkeypatch.setattr(cpu_patch, "CF_LINES", lines)
        monkeypatch.setattr(cpu_patch, "CF_PASS_CHANNELS", channels)
        results += _calls_with(case, x, w, monkeypatch, [({}, work)])
    b = _call_channels_last(case, x, w)
    assert all(np.moveaxis(r, 1, -1).tobytes() == b.tobytes() for r in results)
    ref = _call(case, x, w, "reference")
    assert np.max(np.abs(results[0] - ref)) <= 1e-5 * max(1.0, float(np.max(np.abs(ref))))


def test_patch_cf_plan_fills_chunks():
    """Small results: one line per tile, or (flat) the fewest lines that
    fill whole chunks of 2 vectors."""
    from fastdeconv.backends import cpu_patch

    assert cpu_patch.cf_plan(1 << 10, 4, 8) == (1, 4)
    assert [cpu_patch.cf_plan(1 << 10, 4, 8, W, True, 16)[0] for W in (8, 16, 24, 40)] == [4, 2, 4, 4]
    assert cpu_patch.cf_plan(1 << 30, 4, 8, 8, True, 16) == (cpu_patch.CF_LINES, max(1, cpu_patch.CF_PASS_CHANNELS // 8))


@pytest.mark.parametrize("geometry, expected", [
    # (input D, H, W), (output), kernel, strides, dilations, pads before
    (((4, 5, 6), (8, 10, 12), (2, 2, 2), (2, 2, 2), (1, 1, 1), (0, 0, 0)), True),
    (((4, 5, 6), (4, 10, 18), (1, 2, 3), (1, 2, 3), (2, 1, 1), (0, 0, 0)), True),  # dilation along a kernel of 1
    (((4, 5, 6), (8, 10, 12), (2, 2, 2), (2, 2, 2), (1, 2, 1), (0, 0, 0)), False),  # dilated taps overlap
    (((4, 5, 6), (8, 10, 11), (2, 2, 2), (2, 2, 2), (1, 1, 1), (0, 0, 0)), False),  # output shorter than s x input
    (((4, 5, 6), (8, 10, 12), (2, 2, 2), (2, 2, 2), (1, 1, 1), (0, 1, 0)), False),  # padding
    (((4, 5, 6), (12, 15, 18), (3, 3, 3), (3, 3, 2), (1, 1, 1), (0, 0, 0)), False),  # stride != kernel
])
def test_patch_geometry(geometry, expected):
    """cpu._is_patch: one output patch per input pixel only for stride ==
    kernel, dilation 1 where the kernel is longer than 1, no padding and an
    output of exactly stride x input."""
    assert cpu._is_patch(*geometry) is expected


@pytest.mark.parametrize("activation", ["relu", "linear", "tanh"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_patch_route_with_epilogue_and_out(activation, dtype, monkeypatch):
    """patch_cl applies a conv layer's epilogue in registers and writes a
    channel slice of a Model's concatenation buffer, with read-only
    filters (packed once): the same bits as cl_kernel."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 3, 4, 7, 16)).astype(dtype)
    x.flat[17] = np.nan
    w = rng.standard_normal((2, 2, 2, 21, 16)).astype(dtype)  # [kd, kh, kw, out, in]
    w.flags.writeable = False
    geo = ((6, 8, 14), (2, 2, 2), (1, 1, 1), (0, 0, 0), False)
    epilogue = tuple(rng.standard_normal(21).astype(dtype) for _ in range(3)) + (activation, 0.0)
    results = []
    for patch in (True, False):
        monkeypatch.setattr(cpu, "PATCH", patch)
        y = cpu.transpose(x, w, *geo, epilogue=epilogue)
        buf = np.full(y.shape[:-1] + (30,), np.nan, dtype)
        view = buf[..., 4:25]
        assert cpu.transpose(x, w, *geo, epilogue=epilogue, out=view) is view
        np.testing.assert_array_equal(view, y)
        assert np.isnan(buf[..., :4]).all() and np.isnan(buf[..., 25:]).all()
        results.append(y.tobytes())
    assert results[0] == results[1]


def test_compiled_entry_points_follow_the_argument_types(monkeypatch):
    """parallel_tiles calls a kernel's compiled function directly, found by
    a fingerprint of its arguments: every property Numba types an argument
    by must change the fingerprint, and the function found must be the one
    the dispatcher itself would run."""
    fp = cpu_rb._fingerprint
    a = np.zeros((4, 3), np.float32)
    ro = a.copy()
    ro.flags.writeable = False
    unaligned = np.ndarray((12,), np.float32, buffer=np.zeros(49, np.uint8), offset=1)
    variants = [a, a.astype(np.float64), a.reshape(-1), a.T, a[:, ::2], ro, unaligned, (1, 2), (1, 2, 3), (1, 2.0),
                (1, True), 1, 1.0, True, None, cpu_simd.Tile(6, 2, 32), cpu_simd.Tile(4, 2, 32)]
    keys = [fp(v) for v in variants]
    assert len(set(keys)) == len(keys)
    assert fp(np.ones((4, 3), np.float32)) == fp(a) and fp((5, 6)) == fp((1, 2))
    assert fp(a[:2]) == fp(a)  # a view that owns nothing: the same Numba type

    x = np.random.default_rng(0).standard_normal((1, 4, 5, 6, 3)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((2, 2, 2, 3, 16)).astype(np.float32)
    seen = {}
    real = cpu_rb.parallel_tiles

    def spy(kernel, args, ntiles, work, *g):
        seen["call"] = (kernel, args)
        return real(kernel, args, ntiles, work, *g)

    monkeypatch.setattr(cpu_rb, "parallel_tiles", spy)
    monkeypatch.setattr(cpu, "SHORT", False)  # cl_kernel (its tiles: cpu_rb.n_tiles)
    y = fastdeconv.conv3d(x, w, 1, "SAME").copy()  # the result is args[2]'s memory
    kernel, args = seen["call"]
    entry = cpu_rb.compiled(kernel, args)
    assert entry is not kernel
    sig = tuple(kernel.typeof_pyval(v) for v in args) + cpu_rb._BOUND_TYPES
    assert entry is kernel.overloads[sig].entry_point
    out = args[2]
    out[:] = np.nan
    entry(*args, 0, cpu_rb.n_tiles(args[5]))
    np.testing.assert_array_equal(out.reshape(y.shape), y)
    assert cpu_rb.compiled(len, ()) is len


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", POINTWISE_CASES, ids=lambda c: f"{c[0]}-{c[2]}")
def test_pointwise_kernel_gives_the_same_bits(case, dtype, monkeypatch):
    """cpu_pw (taken: the call goes through it) against the register-blocked
    and vectors-along-W paths: the same chain of FMAs per output, so the
    same bits, on one thread or split; and the reference."""
    x, w = _arrays(case, dtype, np.random.default_rng(3))
    taken = []
    real_pw = cpu_pw.pointwise_cl
    real = cpu_rb.parallel_tiles

    def spy(kernel, args, n, work, _big=None):
        taken.append(kernel is real_pw)
        return real(kernel, args, n, work if _big is None else _big)

    results = []
    for pointwise in (True, False):
        for big in (None, 10**12):
            monkeypatch.setattr(cpu, "POINTWISE", pointwise)
            monkeypatch.setattr(cpu_rb, "parallel_tiles", lambda k, a, n, wk, *g, _b=big: spy(k, a, n, wk, _b))
            results.append(_call(case, x, w, "cpu").tobytes())
            assert taken[-1] == pointwise
    assert len(set(results)) == 1
    np.testing.assert_allclose(_call(case, x, w, "cpu"), _call(case, x, w, "reference"),
                               rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5 if dtype == np.float32 else 1e-12)


POINTWISE_FUSED_CASES = [
    # 1, 2 and 4 output channels (cpu.POINTWISE_FUSED, cpu_pw.PW_FUSED_TILES): whole chunks of V input
    # channels (8 float32, 4 float64) only, chunks and then fewer than V through the scratch rows, no whole
    # chunk; pixel counts that leave a scalar tail; two images; 3 channels (not fused)
    ((2, 5, 7, 8), (1, 1, 8, 1)),
    ((1, 3, 5, 9, 12), (1, 1, 1, 12, 1)),
    ((2, 9, 11, 20), (1, 1, 20, 1)),
    ((1, 67, 32), (1, 32, 1)),
    ((2, 6, 7, 3), (1, 1, 3, 1)),
    ((2, 5, 7, 16), (1, 1, 16, 2)),
    ((1, 3, 5, 9, 6), (1, 1, 1, 6, 2)),
    ((2, 9, 11, 8), (1, 1, 8, 4)),
    ((1, 37, 28), (1, 28, 4)),
    ((2, 5, 7, 8), (1, 1, 8, 3)),
]


@pytest.mark.parametrize("case", POINTWISE_FUSED_CASES, ids=lambda c: f"{c[0]}-{c[1]}")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pointwise_fused_one_channel(case, dtype, monkeypatch):
    """pointwise_cl's chunks transposed in registers (vrun_transposed, on
    its fused tiles) against the scratch rows and the register-blocked
    kernels: the same FMA chain per output, so the same bits, on one thread
    and split; and the reference."""
    xs, ws = case
    F = ws[-1]
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)
    op = {3: "conv1d", 4: "conv2d", 5: "conv3d"}[x.ndim]
    real = cpu_rb.parallel_tiles
    fused = []

    def spy(kernel, args, n, work, *more, _big=None):
        if kernel is cpu_pw.pointwise_cl:
            fused.append(args[4])
        return real(kernel, args, n, work if _big is None else _big, *more)

    results = []
    for setting in ((True, True), (True, False), (False, False)):
        monkeypatch.setattr(cpu, "POINTWISE", setting[0])
        monkeypatch.setattr(cpu, "POINTWISE_FUSED", setting[1])
        for big in (None, 10**12):
            fused.clear()
            monkeypatch.setattr(cpu_rb, "parallel_tiles", lambda k, a, n, wk, *g, _b=big: spy(k, a, n, wk, *g, _big=_b))
            results.append(getattr(fastdeconv, op)(x, w, 1, "SAME", backend="cpu").tobytes())
            assert fused == ([setting[1] and F in cpu_pw.PW_FUSED_TILES] if setting[0] else [])
    assert len(set(results)) == 1
    np.testing.assert_allclose(np.frombuffer(results[0], dtype).reshape(x.shape[:-1] + (F,)),
                               getattr(fastdeconv, op)(x, w, 1, "SAME", backend="reference"),
                               rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5 if dtype == np.float32 else 1e-12)


POINTWISE_CF_CASES = [
    # (x channels-first, w): 1x1 stride-1 convolutions, positions not a multiple of the tile's (a shorter
    # last tile, masked loads), two images; 1, 2, 3-4 and 5-8 output channels (each tile), and the wide
    # tile with too many input channels (vectors along W instead)
    ((2, 16, 5, 7, 9), (1, 1, 1, 16, 2)),
    ((2, 32, 3, 100), (1, 1, 32, 1)),
    ((1, 3, 4, 4, 4), (1, 1, 1, 3, 3)),
    ((2, 40, 70), (1, 40, 4)),
    ((2, 8, 2, 3, 33), (1, 1, 1, 8, 6)),
    ((1, 32, 1, 1, 200), (1, 1, 1, 32, 8)),
    ((2, 64, 9, 9), (1, 1, 64, 8)),  # vectors along W
    # channel-heavy on planes of POINTWISE_CF_MIN_POSITIONS or more: several blocks of output channels, each
    # over spans of the input (cpu_pw.PW_CF_INPUT_SPAN_BYTES: 2 tiles with 512 channels)
    ((1, 64, 12, 13), (1, 1, 64, 40)),
    ((2, 24, 3, 7, 9), (1, 1, 1, 24, 20)),
    ((1, 512, 200), (1, 512, 20)),
    ((1, 16, 130, 130), (1, 1, 16, 12)),  # a long plane: the 8 x 3 tile (cpu_pw.PW_CF_WIDE3_POSITIONS)
    # more positions than a span (cpu_pw.PW_CF_SPAN_POSITIONS) in one image, and spans across two images,
    # for the input read a group of planes at a time (C not a multiple of the group)
    ((1, 12, 130, 130), (1, 1, 12, 2)),
    ((2, 9, 3, 50, 60), (1, 1, 1, 9, 3)),
]


@pytest.mark.parametrize("case", POINTWISE_CF_CASES, ids=lambda c: f"{c[0]}-{c[1]}")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pointwise_cf_same_bits(case, dtype, monkeypatch):
    """cpu_pw.pointwise_cf (POINTWISE_CF) against vectors along W and the
    channels-last call: the same FMA chain per output, so the same bits,
    as one chunk and as many, with the input planes read all at once and
    a group at a time; NaN inputs; and the reference."""
    xs, ws = case
    rng = np.random.default_rng(59)
    x = rng.standard_normal(xs).astype(dtype)
    x.flat[x.size // 3] = np.nan
    w = rng.standard_normal(ws).astype(dtype)
    rank = x.ndim - 2
    call = ({1: "conv1d", 2: "conv2d", 3: "conv3d"}[rank], xs, ws, 1, "SAME", {1: "NCW", 2: "NCHW", 3: "NCDHW"}[rank],
            None)
    C, F = ws[-2:]
    taken = []
    real = cpu._pointwise_cf
    monkeypatch.setattr(cpu, "_pointwise_cf", lambda *a: (taken.append(1), real(*a))[1])
    variants = [{(cpu, "POINTWISE_CF"): True}, {(cpu, "POINTWISE_CF"): True, (cpu, "POINTWISE_CF_GROUP_BYTES"): 0},
                {(cpu, "POINTWISE_CF"): True, (cpu, "POINTWISE_CF_PACK"): True, (cpu, "POINTWISE_CF_PACK_BYTES"): 0},
                {(cpu, "POINTWISE_CF"): False}]
    results = _calls_with(call, x, w, monkeypatch, [(v, work) for v in variants for work in (None, 10**12)])
    P = x[0, 0].size
    # (POINTWISE_CF_GROUP_BYTES and POINTWISE_CF_PACK_BYTES still 0, the copy on)
    assert cpu._pointwise_cf_group(C, F, P, x.itemsize) < C or F == 1 or F > 8 or C <= 4
    tile = cpu_pw.pw_cf_tile(F, P)
    assert cpu._pointwise_cf_pack(C, F, P, x.itemsize, tile) == (F > tile.rows and cpu._pointwise_cf_group(
        C, F, P, x.itemsize) == C)
    assert taken == ([1] * 6 if F <= 4 or C <= 32 or P >= cpu.POINTWISE_CF_MIN_POSITIONS else [])
    y = results[0]
    assert all(r.tobytes() == y.tobytes() for r in results)
    assert np.moveaxis(_call_channels_last(call, x, w), -1, 1).tobytes() == y.tobytes()
    ref = _call(call, x, w, "reference")
    assert np.array_equal(np.isnan(y), np.isnan(ref))
    ok = ~np.isnan(ref)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert np.max(np.abs(y[ok] - ref[ok])) <= tol * max(1.0, float(np.max(np.abs(ref[ok]))))


@pytest.mark.parametrize("C, F, P, itemsize, expected", [
    (32, 32, 64**3, 4, True),  # NCDHW 64^3 x 32 -> 32: 32 MB of input
    (16, 32, 64**3, 4, True),
    (32, 64, 32**3, 4, True),  # 4 MB
    (16, 64, 32**3, 4, False),  # 2 MB: in the caches
    (64, 32, 32**3, 4, True),  # 1 KB runs per plane and span
    (128, 64, 48**3, 4, True),
    (256, 64, 56 * 56, 4, False),  # NCHW 56^2 x 256 -> 64: 3.2 MB
    (16, 8, 64**3, 4, False),  # one block of output channels
    (64, 8, 64**3, 4, False),  # groups of planes
    (32, 32, 64**3, 8, True),
    (512, 64, 32**3, 4, False),  # a tile's input over the span array
])
def test_pointwise_cf_pack_rule(C, F, P, itemsize, expected, monkeypatch):
    """Where cpu_pw.pointwise_cf copies its input spans to scratch first
    (cpu.POINTWISE_CF_PACK_BYTES), on AMD Zen only (cpu.POINTWISE_CF_PACK:
    measured faster there, slower on an Intel Xeon), and into results
    stored with streaming stores only from
    POINTWISE_CF_PACK_STREAM_MIN_CHANNELS input channels (16 planes read
    at once were faster than the copy there, on Zen 4)."""
    assert cpu.POINTWISE_CF_PACK == cpu_simd.HOST_CPU.startswith("znver")
    monkeypatch.setattr(cpu, "POINTWISE_CF_PACK", True)
    tile = cpu_pw.pw_cf_tile(F, P)
    assert cpu._pointwise_cf_pack(C, F, P, itemsize, tile) is expected
    assert cpu._pointwise_cf_pack(C, F, P, itemsize, tile, None) is expected
    assert cpu._pointwise_cf_pack(C, F, P, itemsize, tile, True) is (expected and C >= 32)
    monkeypatch.setattr(cpu, "POINTWISE_CF_PACK", False)
    assert cpu._pointwise_cf_pack(C, F, P, itemsize, tile) is False


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_pointwise_cf_route_with_epilogue_and_out(activation, monkeypatch):
    """The channels-first pointwise kernel applies a conv layer's epilogue
    after it and writes into `out`: the same bits as vectors along W, from
    read-only filters (packed once) as a layer's are."""
    rng = np.random.default_rng(61)
    x = rng.standard_normal((2, 16, 3, 5, 7)).astype(np.float32)
    w = rng.standard_normal((1, 1, 1, 16, 2)).astype(np.float32)
    w.flags.writeable = False
    geo = ((3, 5, 7), (1, 1, 1), (1, 1, 1), (0, 0, 0), 1, True)
    epilogue = (np.array([0.3, -1], np.float32), np.array([1.5, 2], np.float32), None, activation, 0.0)
    results = []
    for on in (True, False, True):
        monkeypatch.setattr(cpu, "POINTWISE_CF", on)
        y = cpu.forward(x, w, *geo, epilogue=epilogue)
        out = np.full(y.shape, np.nan, np.float32)
        assert cpu.forward(x, w, *geo, epilogue=epilogue, out=out) is out
        np.testing.assert_array_equal(out, y)
        results.append(y.tobytes())
    assert results[0] == results[1] == results[2]


def _forward_into_channel_slice(x, w, geo, epilogue, before, after):
    """cpu.forward's channels-last result, once the same call with `out` a
    channel slice of a wider buffer (`before` channels before it, `after`
    after, as in a Model's concatenation) has returned the slice, filled it
    with the same values and left the other channels as they were."""
    y = cpu.forward(x, w, *geo, epilogue=epilogue)
    F = y.shape[-1]
    buf = np.full(y.shape[:-1] + (before + F + after,), np.nan, y.dtype)
    view = buf[..., before:before + F]
    assert cpu.forward(x, w, *geo, epilogue=epilogue, out=view) is view
    np.testing.assert_array_equal(view, y)
    assert np.isnan(np.delete(buf, np.s_[before:before + F], axis=-1)).all()
    return y


@pytest.mark.parametrize("activation", ["relu", "linear", "sigmoid"])
def test_pointwise_route_with_epilogue_and_out(activation, monkeypatch):
    """The pointwise kernel keeps a conv layer's epilogue and writes into
    `out` (a channel slice of a Model's concatenation buffer), with read-only
    filters (packed once) as a layer's are: the same bits as the other
    paths."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 3, 5, 7, 16)).astype(np.float32)
    w = rng.standard_normal((1, 1, 1, 16, 2)).astype(np.float32)
    w.flags.writeable = False
    geo = ((3, 5, 7), (1, 1, 1), (1, 1, 1), (0, 0, 0), 1, False)
    epilogue = (np.array([0.3, -1], np.float32), np.array([1.5, 2], np.float32), None, activation, 0.0)
    results = []
    for pointwise in (True, False):
        monkeypatch.setattr(cpu, "POINTWISE", pointwise)
        results.append(_forward_into_channel_slice(x, w, geo, epilogue, 1, 2).tobytes())
    assert results[0] == results[1]


def _dispatchers():
    """The Numba functions of the cpu backend's modules."""
    import numba

    from fastdeconv.backends import cpu_cfband, cpu_cfgather, cpu_dw, cpu_layers, cpu_layout, cpu_patch

    return [getattr(m, n) for m in (cpu_rb, cpu_patch, cpu_dw, cpu_pw, cpu_cfband, cpu_cfgather, cpu_layers, cpu_layout)
            for n in dir(m)
            if isinstance(getattr(m, n), numba.core.registry.CPUDispatcher)]


def test_tile_kernels_compile_on_the_lean_pipeline():
    """Every tile kernel (and layer kernel) compiles with _jit.LeanPipeline
    (its cold compile 0.35-0.8 s shorter), whose pass list has no SSA
    reconstruction; a function that reassigns its variables (as the
    kernels do) computes the same there as on Numba's default pipeline."""
    import numba

    from fastdeconv._jit import LeanPipeline

    kernels = [d for d in _dispatchers() if not d.targetoptions.get("inline") == "always"]
    assert {"cl_kernel", "wv_kernel", "patch_cf", "patch_cl", "depthwise_cl", "pointwise_cl", "to_channels_first",
            "_pool_cl", "_normalize_cl_stats", "_softmax_rows"} <= {k.py_func.__name__ for k in kernels}
    # (UnrollingPipeline: LeanPipeline with one LLVM round, tests/test_jit.py)
    assert all(issubclass(k._compiler.pipeline_class, LeanPipeline) for k in kernels), kernels

    def steps(a, n):
        s = 0.0
        i = n
        for j in range(n):
            i = i * 3 % 7 + j
            s = s * 0.5 + a[i % a.size]
        return s, i

    a = np.arange(11.0)
    lean, default = numba.njit(pipeline_class=LeanPipeline)(steps), numba.njit(steps)
    assert lean(a, 40) == default(a, 40) == steps(a, 40)

    def passes(d):
        return " ".join(d.overloads[d.signatures[0]].metadata["pipeline_times"]["nopython"])

    assert "reconstruct_ssa" in passes(default) and "reconstruct_ssa" not in passes(lean)


def _compiled_signatures():
    """How many machine-code versions the cpu backend's kernels have."""
    return sum(len(d.signatures) for d in _dispatchers())


@pytest.mark.parametrize("fmt", ["NDHWC", "NCDHW"])
def test_no_recompilation_when_shapes_strides_or_padding_change(fmt):
    """Sizes, strides, dilations and padding are run-time values of every
    kernel: once a layout, dtype and channel count have run, calls that
    change only those compile nothing. (Channels-first: the W size and
    stride and the number of output rows also choose between packed rows,
    row pairs and rows read in place, a variant each; these calls keep W
    and stay on one of them.)"""
    rng = np.random.default_rng(5)
    cl = fmt == "NDHWC"

    def x_of(d, h, w):
        return rng.standard_normal((2, d, h, w, 8) if cl else (2, 8, d, h, w)).astype(np.float32)

    def strides(sd, sh):
        return [1, sd, sh, 1, 1] if cl else [1, 1, sd, sh, 1]

    w = rng.standard_normal((3, 3, 3, 8, 24)).astype(np.float32)
    wt = rng.standard_normal((3, 3, 3, 24, 8)).astype(np.float32)
    calls = [
        lambda: fastdeconv.conv3d(x_of(5, 6, 19), w, 1, "SAME", data_format=fmt),
        lambda: fastdeconv.conv3d(x_of(7, 9, 19), w, strides(2, 1), "VALID", data_format=fmt),
        lambda: fastdeconv.conv3d(x_of(6, 11, 19), w, strides(1, 3), [(2, 1), (0, 2), (1, 1)], data_format=fmt),
        lambda: fastdeconv.conv3d(x_of(9, 8, 19), w, 1, "SAME", data_format=fmt,
                                  dilations=strides(2, 3)),
        lambda: fastdeconv.conv3d_transpose(x_of(4, 5, 19), wt, None, strides(2, 2), "SAME", data_format=fmt),
        lambda: fastdeconv.conv3d_transpose(x_of(3, 7, 19), wt, None, strides(3, 1), "VALID", data_format=fmt),
    ]
    calls[0]()
    calls[4]()
    before = _compiled_signatures()
    for call in calls:
        call()
    assert _compiled_signatures() == before


CL_ROWS_CASES = [
    # channels-last, 2-4 output channels, reductions past WV_NARROW_STEPS:
    # a decoder's RGB head (k4 s2, k3 s2), a forward 3x3, channel counts and
    # rows that leave tails of the V x V blocks, groups, 3-D, 1-D, dilation
    ("conv2d_transpose", (2, 5, 6, 16), (4, 4, 3, 16), 2, "SAME", "NHWC", None),
    ("conv2d_transpose", (1, 7, 9, 21), (3, 3, 3, 21), 2, "SAME", "NHWC", None),
    ("conv2d", (2, 9, 19, 13), (3, 3, 13, 2), 1, "SAME", "NHWC", None),
    ("conv2d", (1, 6, 11, 24), (3, 3, 12, 4), 1, "VALID", "NHWC", None),  # 2 groups
    ("conv3d", (1, 4, 5, 17, 9), (3, 3, 3, 9, 3), 1, "SAME", "NDHWC", None),
    ("conv1d", (3, 29, 40), (5, 40, 2), 1, "SAME", "NWC", 2),
    ("conv2d_transpose", (1, 6, 7, 33), (3, 3, 4, 33), 1, "SAME", "NHWC", 2),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CL_ROWS_CASES, ids=[f"{c[0]}-{c[1]}" for c in CL_ROWS_CASES])
def test_channels_last_packed_rows_same_bits(case, dtype, vector_bytes, monkeypatch):
    """Channels-last calls with few output channels and long reductions run
    vectors along W on rows packed channels-first (WV_CL_ROWS), with the
    bits of the channels-last tile, of the channels-first call and of the
    split into the most chunks, and the reference's result."""
    x, w = _arrays(case, dtype, np.random.default_rng(37))
    monkeypatch.setattr(cpu, "WV_NARROW_STEPS", 32)  # as set, whatever a test before changed
    kernels = []
    real_rows = cpu_rb.with_rows
    monkeypatch.setattr(cpu_rb, "with_rows", lambda k, a, n, **kw: (kernels.append(k), real_rows(k, a, n, **kw))[1])
    results = _calls_with(case, x, w, monkeypatch, [
        ({(cpu, "WV_CL_ROWS"): True}, None),
        ({(cpu, "WV_CL_ROWS"): True}, 10**12),
        ({(cpu, "WV_CL_ROWS"): False}, None)])
    trans = case[0].endswith("_transpose")
    F, Cw = (case[2][-2], case[2][-1]) if trans else (case[2][-1], case[2][-2])
    Fg = F // (case[1][-1] // Cw)  # per group
    if Fg <= cpu.WV_NARROW * 4 // np.dtype(dtype).itemsize:  # float64: 2 channels (4 take the tile's 4 lanes)
        assert kernels == [cpu_rb.wv_kernel] * 2
    else:
        assert kernels == []
    y = results[0]
    assert all(r.tobytes() == y.tobytes() for r in results)
    cf = {"NWC": "NCW", "NHWC": "NCHW", "NDHWC": "NCDHW"}[case[5]]
    y_cf = _call((case[0], None, None, case[3], case[4], cf, case[6]), np.ascontiguousarray(np.moveaxis(x, -1, 1)),
                 w, "cpu")
    assert np.moveaxis(y_cf, 1, -1).tobytes() == y.tobytes()
    ref = _call(case, x, w, "reference")
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert np.max(np.abs(y - ref)) <= tol * max(1.0, float(np.max(np.abs(ref))))


ONE_CHANNEL_ROWS_CASES = [
    # channels-last, one output channel, 16-64 input channels, 9 taps or more: packed rows
    # (NARROW_ONE_CHANNEL_ROWS_CHANNELS) instead of a channels-first copy of the input; forward 3x3 and
    # 3x3x3, a k3 s2 transpose, rows that leave tails of the V x V blocks, a dilation; 8 channels (copy)
    ("conv2d", (2, 9, 19, 16), (3, 3, 16, 1), 1, "SAME", "NHWC", None),
    ("conv3d", (1, 4, 5, 17, 24), (3, 3, 3, 24, 1), 1, "SAME", "NDHWC", None),
    ("conv2d_transpose", (2, 5, 7, 20), (3, 3, 1, 20), 2, "SAME", "NHWC", None),
    ("conv2d", (1, 7, 13, 64), (3, 3, 64, 1), 1, "VALID", "NHWC", [1, 2, 1, 1]),
    ("conv2d", (2, 9, 19, 8), (3, 3, 8, 1), 1, "SAME", "NHWC", None),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ONE_CHANNEL_ROWS_CASES, ids=[f"{c[0]}-{c[1]}" for c in ONE_CHANNEL_ROWS_CASES])
def test_one_channel_packed_rows_same_bits(case, dtype, monkeypatch):
    """One output channel on rows packed channels-first by each thread, or
    on a channels-first copy of the input (the rule: 16-64 input channels,
    9 taps or more): the same bits either way and split into the most
    chunks, the bits of the channels-first call, and the reference's
    result."""
    x, w = _arrays(case, dtype, np.random.default_rng(41))
    copies = []
    real_copy = cpu._to_channels_first
    monkeypatch.setattr(cpu, "_to_channels_first", lambda s, d: (copies.append(s.shape), real_copy(s, d))[1])
    monkeypatch.setattr(cpu, "WV_NARROW_STEPS", 32)  # as set, whatever a test before changed
    results = _calls_with(case, x, w, monkeypatch, [
        ({(cpu, "NARROW_ONE_CHANNEL_ROWS_CHANNELS"): (16, 64)}, None),
        ({(cpu, "NARROW_ONE_CHANNEL_ROWS_CHANNELS"): (16, 64)}, 10**12),
        ({(cpu, "NARROW_ONE_CHANNEL_ROWS_CHANNELS"): (0, -1)}, None)])
    rows = 16 <= x.shape[-1] <= 64
    assert len(copies) == (1 if rows else 3)  # the copy route's calls only
    y = results[0]
    assert all(r.tobytes() == y.tobytes() for r in results)
    cf = {"NWC": "NCW", "NHWC": "NCHW", "NDHWC": "NCDHW"}[case[5]]
    dil = case[6] if case[6] is None else [case[6][0], case[6][-1]] + list(case[6][1:-1])
    y_cf = _call((case[0], None, None, case[3], case[4], cf, dil), np.ascontiguousarray(np.moveaxis(x, -1, 1)), w,
                 "cpu")
    assert np.moveaxis(y_cf, 1, -1).tobytes() == y.tobytes()
    ref = _call(case, x, w, "reference")
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert np.max(np.abs(y - ref)) <= tol * max(1.0, float(np.max(np.abs(ref))))


ONE_PIXEL_AXIS_CASES = [
    # a DCGAN generator's projection: 1 x 1 -> 4 x 4, k4, stride 1 and 2
    ("conv2d_transpose", (3, 1, 1, 20), (4, 4, 24, 20), 1, "VALID", "NHWC", None),
    ("conv2d_transpose", (3, 1, 1, 20), (4, 4, 24, 20), 2, "VALID", "NHWC", None),
    # one axis of one pixel, with padding (SAME) and a dilation on it
    ("conv2d_transpose", (2, 1, 5, 16), (3, 3, 8, 16), [1, 3, 2, 1], "SAME", "NHWC", None),
    ("conv2d_transpose", (2, 1, 5, 16), (3, 3, 8, 16), 1, "VALID", "NHWC", [1, 2, 1, 1]),
    ("conv3d_transpose", (1, 1, 3, 1, 8), (2, 3, 4, 12, 8), [1, 1, 2, 1, 1], "VALID", "NDHWC", None),
    ("conv1d_transpose", (4, 1, 9), (5, 17, 9), 3, "SAME", "NWC", 1),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ONE_PIXEL_AXIS_CASES, ids=[f"{c[1]}-{c[3]}-{c[4]}" for c in ONE_PIXEL_AXIS_CASES])
def test_transpose_stride_along_one_pixel_axes(case, dtype, monkeypatch):
    """Along an axis of one input pixel a transpose's stride changes
    nothing, and the channels-last path takes it as the kernel's length
    (no padding and dilation 1: a patch per pixel). Same result as the
    reference and the same bits as the channels-first call (on a 1 x 1
    input the same kernels, else channels-first ones that keep the stride
    given)."""
    x, w = _arrays(case, dtype, np.random.default_rng(31))
    patches = []
    real = cpu._patch
    monkeypatch.setattr(cpu, "_patch", lambda *a: (patches.append(1), real(*a))[1])
    y = _call(case, x, w, "cpu")
    if case[1][1:3] == (1, 1) and case[4] == "VALID":
        assert patches, "a 1 x 1 input with VALID padding is a patch per pixel"
    ref = _call(case, x, w, "reference")
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert np.max(np.abs(y - ref)) <= tol * max(1.0, float(np.max(np.abs(ref))))
    cf = {"NWC": "NCW", "NHWC": "NCHW", "NDHWC": "NCDHW"}[case[5]]

    def first(v):  # an N+2 list in N...C order -> NC... order
        return list(v[:1]) + list(v[-1:]) + list(v[1:-1]) if isinstance(v, list) else v

    y_cf = _call((case[0], None, None, first(case[3]), case[4], cf, first(case[6])),
                 np.ascontiguousarray(np.moveaxis(x, -1, 1)), w, "cpu")
    assert np.moveaxis(y_cf, 1, -1).tobytes() == y.tobytes()


GATHER_CASES = [
    # (case, GATHER_MIN_BLOCKS): few input channels, strided transposes
    (("conv2d_transpose", (2, 7, 9, 3), (3, 3, 130, 3), 2, "SAME", "NHWC", None), None),
    (("conv2d_transpose", (1, 6, 5, 4), (4, 4, 70, 4), [1, 3, 2, 1], [(1, 2), (2, 1)], "NHWC", None), 1),
    (("conv2d_transpose", (2, 5, 6, 2), (3, 3, 40, 2), 2, "VALID", "NHWC", [1, 2, 2, 1]), 1),
    (("conv3d_transpose", (1, 3, 4, 5, 8), (3, 3, 3, 64, 8), 2, "SAME", "NDHWC", None), 1),
    (("conv3d_transpose", (2, 2, 3, 4, 16), (3, 1, 3, 20, 16), [1, 2, 1, 3, 1], "SAME", "NDHWC", None), 1),
    (("conv1d_transpose", (3, 7, 1), (5, 130, 1), 3, "VALID", "NWC", None), None),
    (("conv1d_transpose", (2, 9, 5), (2, 33, 5), 2, "SAME", "NWC", None), 1),  # k == s: a patch, not gathered
]


def _gathered_calls(monkeypatch):
    """A list that gets, per cl_kernel call, whether it took the gathered
    variant (its `gat` argument)."""
    gathered = []
    real = cpu_rb.parallel_tiles

    def spy(kernel, args, n, work, *g):
        if kernel is cpu_rb.cl_kernel:
            gathered.append(args[9] is not None)
        return real(kernel, args, n, work, *g)

    monkeypatch.setattr(cpu_rb, "parallel_tiles", spy)
    return gathered


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case, min_blocks", GATHER_CASES, ids=[f"{c[0][0]}-{c[0][1]}-{c[0][2]}" for c in GATHER_CASES])
def test_gathered_taps_same_bits(case, min_blocks, dtype, vector_bytes, monkeypatch):
    """Strided transposes with few input channels gather each block's taps
    into one run per row (GATHER, cl_kernel's `gat` variant): the bits of
    one run per tap, with the most chunks too, and the reference's
    result; the gathered variant runs where the rule says."""
    x, w = _arrays(case, dtype, np.random.default_rng(43))
    if min_blocks is not None:
        monkeypatch.setattr(cpu, "GATHER_MIN_BLOCKS", min_blocks)
    gathered = _gathered_calls(monkeypatch)
    results = _calls_with(case, x, w, monkeypatch, [
        ({(cpu, "GATHER"): True}, None),
        ({(cpu, "GATHER"): True}, 10**12),
        ({(cpu, "GATHER"): False}, None)])
    patch = case[2][0] == case[3]
    assert gathered == ([] if patch else [True, True, False])
    y = results[0]
    assert all(r.tobytes() == y.tobytes() for r in results)
    ref = _call(case, x, w, "reference")
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert np.max(np.abs(y - ref)) <= tol * max(1.0, float(np.max(np.abs(ref))))


def test_gathered_taps_rule(monkeypatch):
    """GATHER's rule: strided transposes only, GATHER_MIN_BLOCKS channel
    blocks, at most GATHER_MAX_CHANNELS input channels, one partial sum."""
    rng = np.random.default_rng(44)
    gathered = _gathered_calls(monkeypatch)
    NV = 2 * cpu_simd.VBYTES // 4  # float32 channels per block
    F = cpu.GATHER_MIN_BLOCKS * NV

    def run(C, F, strides=2, dil=1, k=3, op=fastdeconv.conv2d_transpose):
        x = rng.standard_normal((1, 6, 7, C)).astype(np.float32)
        gathered.clear()
        if op is fastdeconv.conv2d:
            op(x, rng.standard_normal((k, k, C, F)).astype(np.float32), strides, "SAME", dilations=dil)
        else:
            op(x, rng.standard_normal((k, k, F, C)).astype(np.float32), None, strides, "SAME", dilations=dil)
        return gathered == [True]

    assert run(3, F)
    assert run(cpu.GATHER_MAX_CHANNELS, F)
    assert not run(cpu.GATHER_MAX_CHANNELS + 1, F)
    assert not run(3, F - NV)  # too few channel blocks
    assert not run(3, F, strides=1)
    assert not run(3, F, strides=1, dil=2)
    assert not run(3, F, op=fastdeconv.conv2d)
    assert not run(16, F, k=5)  # 400 terms: two partial sums


CF_GATHER_CASES = [
    # channels-first strided transposes with few input channels (cpu_cfgather)
    ("conv2d_transpose", (2, 3, 7, 9), (3, 3, 40, 3), 2, "SAME", "NCHW", None),
    ("conv2d_transpose", (1, 4, 6, 5), (4, 4, 19, 4), [1, 1, 3, 2], [(1, 2), (2, 1)], "NCHW", None),
    ("conv2d_transpose", (2, 2, 5, 6), (3, 3, 24, 2), 2, "VALID", "NCHW", [1, 1, 2, 2]),
    # H stride 3 with a 2-tap kernel: a class of output rows no tap reaches
    ("conv2d_transpose", (1, 2, 4, 5), (2, 2, 16, 2), [1, 1, 3, 2], "VALID", "NCHW", None),
    ("conv2d_transpose", (1, 3, 5, 6), (3, 3, 17, 3), [1, 1, 2, 1], "SAME", "NCHW", None),  # W stride 1
    ("conv3d_transpose", (1, 8, 3, 4, 5), (3, 3, 3, 20, 8), 2, "SAME", "NCDHW", None),
    ("conv3d_transpose", (2, 16, 2, 3, 4), (3, 1, 3, 17, 16), [1, 1, 2, 3, 2], "SAME", "NCDHW", None),
    ("conv1d_transpose", (3, 1, 7), (5, 130, 1), 2, "VALID", "NCW", None),
]


def _cf_gather_calls(monkeypatch):
    """A list that gets, per call of the cpu backend that runs a tile
    kernel, whether it ran cpu_cfgather's."""
    from fastdeconv.backends import cpu_cfgather

    used = []
    real = cpu_rb.parallel_tiles

    def spy(kernel, args, n, work, *g):
        if kernel is not cpu_cfgather.expand_rows:
            used.append(kernel is cpu_cfgather.cfgather_kernel)
        return real(kernel, args, n, work, *g)

    monkeypatch.setattr(cpu_rb, "parallel_tiles", spy)
    return used


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CF_GATHER_CASES, ids=[f"{c[0]}-{c[1]}-{c[3]}" for c in CF_GATHER_CASES])
def test_cf_gathered_runs_same_bits(case, dtype, vector_bytes, monkeypatch):
    """Channels-first strided transposes with few input channels gather each
    output row's taps into runs of output columns (CF_GATHER, cpu_cfgather):
    the bits of vectors along W, of the most chunks and of the
    channels-last call, and the reference's result; the kernel runs."""
    x, w = _arrays(case, dtype, np.random.default_rng(47))
    monkeypatch.setattr(cpu, "CF_GATHER_MAX_CHANNELS", 16)  # the kernel is exact with more too
    monkeypatch.setattr(_alloc, "np", _NanEmpty())  # the kernels write every element they read of their array
    used = _cf_gather_calls(monkeypatch)
    results = _calls_with(case, x, w, monkeypatch, [
        ({(cpu, "CF_GATHER"): True}, None),
        ({(cpu, "CF_GATHER"): True}, 10**12),
        ({(cpu, "CF_GATHER_BAND_ROWS"): 3}, 10**12),  # bands of 3 rows, the last one shorter
        ({(cpu, "CF_GATHER_BAND_ROWS"): 1}, None),
        ({(cpu, "CF_GATHER"): False}, None)])
    assert used[:4] == [True] * 4 and True not in used[4:]
    y = results[0]
    assert all(r.tobytes() == y.tobytes() for r in results)
    assert np.moveaxis(y, 1, -1).tobytes() == _call_channels_last(case, x, w).tobytes()
    ref = _call(case, x, w, "reference")
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert np.max(np.abs(y - ref)) <= tol * max(1.0, float(np.max(np.abs(ref))))


def test_cf_gathered_runs_rule(monkeypatch):
    """CF_GATHER's rule: channels-first strided transposes, at most
    CF_GATHER_MAX_CHANNELS input channels (more with
    CF_GATHER_WIDE_OUT_CHANNELS output channels), CF_GATHER_MIN_CHANNELS
    output channels or more, one partial sum, a W stride of at most
    CF_GATHER_MAX_W_STRIDE."""
    rng = np.random.default_rng(48)
    used = _cf_gather_calls(monkeypatch)
    F = cpu.CF_GATHER_MIN_CHANNELS
    C = cpu.CF_GATHER_MAX_CHANNELS

    def run(C, F, strides=2, k=3, op=fastdeconv.conv2d_transpose, fmt="NCHW", dilations=1, W=7):
        x = rng.standard_normal((1, C, 6, W) if fmt == "NCHW" else (1, 6, W, C)).astype(np.float32)
        used.clear()
        if op is fastdeconv.conv2d:
            op(x, rng.standard_normal((k, k, C, F)).astype(np.float32), strides, "SAME", data_format=fmt)
        else:
            op(x, rng.standard_normal((k, k, F, C)).astype(np.float32), None, strides, "SAME", data_format=fmt,
               dilations=dilations)
        return True in used

    assert run(1, F)
    assert run(C, F, strides=[1, 1, 2, 1])
    assert not run(C + 1, F)
    assert not run(1, F - 1)
    assert not run(1, F, strides=1)
    assert not run(1, F, strides=[1, 1, 1, cpu.CF_GATHER_MAX_W_STRIDE + 1])
    assert not run(C, F, k=9)  # more than 256 terms: two partial sums
    assert not run(1, F, op=fastdeconv.conv2d)
    assert not run(1, F, fmt="NHWC")
    # from CF_GATHER_WIDE_OUT_CHANNELS output channels: more input channels,
    # up to CF_GATHER_EVEN_MAX_CHANNELS where every phase has the same taps
    # (k4 s2; a dilation 2 leaves phases without taps); rows of 20 columns
    # (W phases of at most half a vector run on bands from 8 input channels)
    wide, most, even = cpu.CF_GATHER_WIDE_OUT_CHANNELS, cpu.CF_GATHER_WIDE_MAX_CHANNELS, cpu.CF_GATHER_EVEN_MAX_CHANNELS
    assert run(most, wide, W=20)
    assert not run(most + 1, wide, W=20)
    assert not run(most, wide - 1, W=20)
    assert run(even, wide, k=4, W=20)
    assert run(even, wide, k=4, strides=[1, 1, 2, 1], W=20)
    assert not run(even, wide - 1, k=4, W=20)
    assert not run(most + 1, wide, k=4, dilations=2, W=20)
    assert run(most, wide, k=4, dilations=2, W=20)
    half = cpu.CF_BANDS_HALF_PHASE_CHANNELS
    assert not run(half, wide, k=4, W=2)  # 2-column phases: bands
    assert run(half - 1, wide, k=4, W=2)


# Channels-first depthwise convolutions (cpu_dw.depthwise_cf), on tiles of
# output rows and on flat tiles (the plane's positions, Ws columns a row):
# multipliers 1 and 3, SAME, VALID and explicit padding, an H stride, H and
# W dilations, rows of 1-40 columns, planes of fewer rows than a tile's and
# of a last partial block, W strides 2-4, 3-D.
DEPTHWISE_CF_CASES = [
    (("conv2d", (2, 8, 9, 13), (3, 3, 1, 8), 1, "SAME", "NCHW", None), True),
    (("conv2d", (1, 4, 7, 40), (5, 3, 1, 12), 1, "VALID", "NCHW", None), True),
    (("conv2d", (2, 6, 10, 17), (3, 3, 1, 6), [1, 1, 2, 1], [(2, 1), (0, 3)], "NCHW", [1, 1, 2, 3]), True),
    (("conv2d", (1, 5, 3, 1), (3, 1, 1, 5), 1, "SAME", "NCHW", None), True),
    (("conv2d", (3, 16, 2, 5), (3, 3, 1, 16), 1, "SAME", "NCHW", None), True),
    # planes of rows of part of a vector (flat tiles by the rule): a
    # MobileNet's last stage, 4^2 planes, an H stride and dilation
    (("conv2d", (2, 24, 7, 7), (3, 3, 1, 24), 1, "SAME", "NCHW", None), True),
    (("conv2d", (3, 5, 4, 4), (3, 3, 1, 10), 1, "SAME", "NCHW", None), True),
    (("conv2d", (1, 6, 11, 9), (3, 3, 1, 6), [1, 1, 2, 1], "SAME", "NCHW", [1, 1, 1, 2]), True),
    # W stride 2 (columns split by phase in the padded plane): SAME with
    # pads of 0 and 1 on the left, VALID with a W dilation, explicit padding
    (("conv2d", (1, 8, 9, 13), (3, 3, 1, 8), 2, "SAME", "NCHW", None), True),
    (("conv2d", (2, 4, 8, 36), (3, 3, 1, 4), 2, "SAME", "NCHW", None), True),
    (("conv2d", (2, 3, 8, 35), (3, 4, 1, 6), [1, 1, 2, 2], "VALID", "NCHW", [1, 1, 1, 2]), True),
    (("conv2d", (1, 5, 6, 20), (3, 5, 1, 5), [1, 1, 1, 2], [(1, 1), (3, 2)], "NCHW", None), True),
    # channels that make whole vectors (cpu_dw.depthwise_cf_blocks where the
    # vector holds 8 or 16 of them): a multiplier of 2 with strides 2, a W
    # stride 3 with an H dilation and explicit padding, 3-D
    (("conv2d", (2, 16, 7, 7), (3, 3, 1, 16), 1, "SAME", "NCHW", None), True),
    (("conv2d", (1, 32, 9, 11), (3, 3, 1, 64), 2, "SAME", "NCHW", None), True),
    (("conv2d", (1, 16, 10, 13), (3, 5, 1, 16), [1, 1, 1, 3], [(2, 1), (0, 3)], "NCHW", [1, 1, 2, 1]), True),
    (("conv3d", (1, 16, 4, 5, 6), (3, 3, 3, 1, 16), [1, 1, 2, 1, 1], "SAME", "NCDHW", [1, 1, 1, 1, 2]), True),
    # W strides 3 and 4 (each phase's columns gathered)
    (("conv2d", (1, 8, 9, 13), (3, 3, 1, 8), [1, 1, 1, 3], "SAME", "NCHW", None), True),
    (("conv2d", (2, 3, 8, 41), (3, 4, 1, 6), [1, 1, 2, 4], [(1, 0), (2, 3)], "NCHW", [1, 1, 1, 2]), True),
    # 3-D: the KD input planes of each output plane; a D stride and padding,
    # a D dilation, planes outside the input
    (("conv3d", (1, 4, 3, 5, 6), (3, 3, 3, 1, 4), 1, "SAME", "NCDHW", None), True),
    (("conv3d", (2, 3, 7, 6, 11), (3, 2, 3, 1, 6), [1, 1, 2, 1, 2], [(2, 1), (1, 0), (1, 1)], "NCDHW", None), True),
    (("conv3d", (1, 5, 9, 4, 5), (2, 3, 3, 1, 5), 1, "VALID", "NCDHW", [1, 1, 3, 1, 1]), True),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case, used", DEPTHWISE_CF_CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c, _ in DEPTHWISE_CF_CASES])
def test_depthwise_cf_same_bits(case, used, dtype, vector_bytes, monkeypatch):
    """The channels-first depthwise kernels give the bits of vectors along
    W and of the channels-last depthwise kernel: depthwise_cf on tiles of
    output rows and flat tiles of each size, depthwise_cf_blocks (its last
    block of channels partial where they do not make whole vectors, and
    copied where it would read past the input), on one chunk of planes and
    on a chunk each; and are used where the rule says so."""
    x, w = _arrays(case, dtype, np.random.default_rng(31))
    kernels = []
    real_rows = cpu_rb.with_rows

    def spy(kernel, args, n, **kw):
        kernels.append(kernel)
        return real_rows(kernel, args, n, **kw)

    monkeypatch.setattr(cpu_rb, "with_rows", spy)
    def on(ratio, vectors=cpu.DEPTHWISE_CF_FLAT_VECTORS, blocks=False):
        return {(cpu, "DEPTHWISE_CF"): True, (cpu, "DEPTHWISE_CF_FLAT_RATIO"): ratio,
                (cpu, "DEPTHWISE_CF_FLAT_VECTORS"): vectors, (cpu, "DEPTHWISE_CF_BLOCKS"): blocks,
                (cpu, "DEPTHWISE_CF_BLOCKS_MAX_POSITIONS"): 10**9, (cpu, "DEPTHWISE_CF_BLOCKS_FILL"): 0.0}

    results = _calls_with(case, x, w, monkeypatch, [
        (on(cpu.DEPTHWISE_CF_FLAT_RATIO), None),
        (on(cpu.DEPTHWISE_CF_FLAT_RATIO), 10**12),
        (on(0.0), None),  # tiles of output rows
        (on(1e9), None),  # flat tiles where the W stride is 1, of DEPTHWISE_CF_ROWS or 4 vectors
        (on(1e9, 2), 10**12),  # ... or 2
        (on(0.0, blocks=True), None),  # a vector of channels at a time (a last block partial)
        (on(0.0, blocks=True), 10**12),
        ({(cpu, "DEPTHWISE_CF"): False, (cpu, "DEPTHWISE_CF_BLOCKS"): False}, None)])
    assert (kernels.count(cpu_dw.depthwise_cf) == 5) == used
    assert (kernels.count(cpu_dw.depthwise_cf_blocks) == 2) == used
    y = results[0]
    assert all(r.tobytes() == y.tobytes() for r in results)
    assert np.moveaxis(y, 1, -1).tobytes() == _call_channels_last(case, x, w).tobytes()
    ref = _call(case, x, w, "reference")
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert np.max(np.abs(y - ref)) <= tol * max(1.0, float(np.max(np.abs(ref))))


# Channels-last depthwise convolutions with multiplier 1 and a vector of
# channels or more (cpu_dw.depthwise_cl_vectors): SAME, VALID and explicit
# padding, strides and dilations, rows of 1-40 columns (W edges, part
# blocks, no block at all), 3-D; 20, 24 and 40 channels (a last part
# vector overlapping the one before), 12 only where a vector holds 8 or 4.
DEPTHWISE_CL_CASES = [
    ("conv2d", (2, 9, 30, 16), (3, 3, 1, 16), 1, "SAME", "NHWC", None),
    ("conv2d", (1, 7, 40, 32), (5, 3, 1, 32), [1, 2, 1, 1], "VALID", "NHWC", [1, 1, 2, 1]),
    ("conv2d", (1, 10, 37, 16), (3, 4, 1, 16), [1, 1, 2, 1], [(0, 0), (2, 1), (3, 0), (0, 0)], "NHWC", [1, 1, 3, 1]),
    ("conv2d", (3, 4, 1, 16), (3, 3, 1, 16), 1, "SAME", "NHWC", None),
    ("conv2d", (1, 6, 7, 32), (3, 3, 1, 32), 1, "SAME", "NHWC", None),
    ("conv2d", (1, 12, 29, 16), (3, 5, 1, 16), [1, 3, 3, 1], "SAME", "NHWC", None),
    ("conv2d", (2, 8, 21, 24), (3, 3, 1, 24), 1, "SAME", "NHWC", None),
    ("conv2d", (1, 5, 26, 40), (3, 3, 1, 40), [1, 1, 2, 1], "SAME", "NHWC", None),
    ("conv2d", (1, 4, 22, 20), (2, 3, 1, 20), 1, "VALID", "NHWC", [1, 1, 2, 1]),
    ("conv2d", (2, 3, 25, 12), (3, 3, 1, 12), 1, "SAME", "NHWC", None),
    ("conv3d", (1, 5, 6, 23, 16), (3, 3, 3, 1, 16), [1, 2, 1, 1, 1], "SAME", "NDHWC", [1, 1, 1, 2, 1]),
    ("conv3d", (2, 4, 5, 6, 32), (2, 3, 3, 1, 32), 1, [(0, 0), (1, 0), (0, 2), (1, 1), (0, 0)], "NDHWC", None),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", DEPTHWISE_CL_CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in DEPTHWISE_CL_CASES])
def test_depthwise_cl_vectors_same_bits(case, dtype, vector_bytes, monkeypatch):
    """The channels-last vectors and blocks kernels give depthwise_cl's bits
    and the register-blocked kernels', on one chunk of tiles and on a chunk
    each, and are used from a vector of channels (blocks at stride 1)."""
    x, w = _arrays(case, dtype, np.random.default_rng(37))
    kernels, banded = [], []  # kernels run by parallel_tiles, and through with_rows
    real, real_rows = cpu_rb.parallel_tiles, cpu_rb.with_rows
    monkeypatch.setattr(cpu_rb, "parallel_tiles", lambda k, *a: (kernels.append(k), real(k, *a))[1])
    monkeypatch.setattr(cpu_rb, "with_rows", lambda k, a, n, **kw: (banded.append(k), real_rows(k, a, n, **kw))[1])

    def on(vectors, blocks):
        return {(cpu, "DEPTHWISE"): True, (cpu, "DEPTHWISE_CL_VECTORS"): vectors,
                (cpu, "DEPTHWISE_CL_VECTORS_MIN_COLUMNS"): 0, (cpu, "DEPTHWISE_CL_BLOCKS"): blocks,
                (cpu, "DEPTHWISE_CL_BLOCKS_MIN_COLUMNS"): 0}

    results = _calls_with(case, x, w, monkeypatch, [
        (on(True, False), None), (on(True, False), 10**12), (on(False, True), None), (on(False, True), 10**12),
        (on(False, False), None),
        ({(cpu, "DEPTHWISE"): False, (cpu, "DEPTHWISE_CL_VECTORS"): False, (cpu, "DEPTHWISE_CL_BLOCKS"): False},
         None)])
    used = case[1][-1] >= vector_bytes // np.dtype(dtype).itemsize
    blocks = used and case[3] == 1  # (stride 1 only)
    assert (kernels.count(cpu_dw.depthwise_cl_vectors) == 2) == used
    assert banded.count(cpu_dw.depthwise_cl_blocks) == 2 * blocks
    y = results[0]
    assert all(r.tobytes() == y.tobytes() for r in results)
    ref = _call(case, x, w, "reference")
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert np.max(np.abs(y - ref)) <= tol * max(1.0, float(np.max(np.abs(ref))))


@pytest.mark.parametrize("shape, stride, used", [
    ((1, 20, 20, 32), 1, "blocks"),  # rows of 20 columns, 400 positions
    ((1, 100, 100, 32), 1, "vectors"),  # 10^4 positions
    ((1, 100, 100, 32), 2, "vectors"),  # stride 2
    ((1, 14, 14, 576), 1, "blocks"),  # rows of 14
    ((1, 14, 14, 576), 2, None),  # of 7: depthwise_cl's loops along the channels
    ((1, 10, 10, 256), 1, None),  # of 10
    ((1, 6, 6, 6, 512), 1, "blocks"),  # 3-D
    ((1, 28, 28, 24), 1, "blocks"),  # 24 float32 channels: two 16-lane vectors, 8 channels in both
    ((1, 28, 28, 12), 1, None),  # 12: less than a vector
])
def test_depthwise_cl_rule(shape, stride, used, monkeypatch):
    """Which channels-last depthwise calls take the blocks or the vectors
    kernel (float32, 64-byte vectors, 3x3(x3) SAME)."""
    monkeypatch.setattr(cpu_simd, "VBYTES", 64)
    kernels = []
    real, real_rows = cpu_rb.compiled, cpu_rb.with_rows
    monkeypatch.setattr(cpu_rb, "compiled", lambda k, a: (kernels.append(k), real(k, a))[1])
    monkeypatch.setattr(cpu_rb, "with_rows", lambda k, a, n, **kw: (kernels.append(k), real_rows(k, a, n, **kw))[1])
    x = np.random.default_rng(6).standard_normal(shape).astype(np.float32)
    w = np.ones((3,) * (len(shape) - 2) + (1, shape[-1]), np.float32)
    (fastdeconv.conv2d if len(shape) == 4 else fastdeconv.conv3d)(x, w, stride, "SAME", backend="cpu")
    assert (cpu_dw.depthwise_cl_blocks in kernels) == (used == "blocks")
    assert (cpu_dw.depthwise_cl_vectors in kernels) == (used == "vectors")


@pytest.mark.parametrize("shape, blocks", [
    ((1, 32, 7, 7), True),  # whole vectors of channels, a small plane
    ((2, 16, 64, 64), True),  # 4096 positions
    ((1, 16, 65, 64), False),  # more: a plane at a time
    ((1, 24, 7, 7), False),  # 24 float32 channels: two vectors, 0.75 full
    ((1, 120, 7, 7), True),  # 120: eight vectors, 0.94 full
    ((1, 16, 8, 16, 16), True),  # 3-D: the three planes of 16^2 an output plane reads, 768 positions
    ((1, 16, 4, 40, 40), False),  # ... of 40^2, 4800
])
def test_depthwise_cf_blocks_rule(shape, blocks, monkeypatch):
    """Which channels-first depthwise calls run a vector of channels at a
    time (float32, 64-byte vectors, 3x3(x3) SAME)."""
    assert cpu.DEPTHWISE_CF_BLOCKS_FILL == 0.85 and cpu.DEPTHWISE_CF_BLOCKS_MAX_POSITIONS == 4096
    monkeypatch.setattr(cpu_simd, "VBYTES", 64)
    kernels = []
    real_rows = cpu_rb.with_rows
    monkeypatch.setattr(cpu_rb, "with_rows", lambda k, a, n, **kw: (kernels.append(k), real_rows(k, a, n, **kw))[1])
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((3,) * (len(shape) - 2) + (1, shape[1])).astype(np.float32)
    conv = fastdeconv.conv2d if len(shape) == 4 else fastdeconv.conv3d
    conv(x, w, 1, "SAME", data_format="NCHW" if len(shape) == 4 else "NCDHW", backend="cpu")
    assert kernels == [cpu_dw.depthwise_cf_blocks if blocks else cpu_dw.depthwise_cf]


@pytest.mark.parametrize("H, W, s, flat, nvec", [
    (7, 7, 1, True, 4),  # 7 of 16 lanes a row: 49 positions on one 4-vector tile, not 8 rows of a vector
    (4, 4, 1, True, 4),
    (14, 14, 1, False, 8),  # 14 of 16 lanes: Ws = 16 computes as many
    (56, 56, 1, False, 8),
    (14, 14, 2, False, 8),  # W stride 2 stays on rows (flat tiles measured no faster)
])
def test_depthwise_cf_flat_rule(H, W, s, flat, nvec):
    """Which channels-first depthwise calls take flat tiles, and of how
    many vectors (3x3 SAME, float32, 64-byte vectors)."""
    OH, OW = -(-H // s), -(-W // s)
    ph, pw = (max((o - 1) * s + 3 - i, 0) // 2 for o, i in ((OH, H), (OW, W)))
    geo, tile, _ = cpu._depthwise_cf_plan((1, 32, 1, H, W), (32, 1, 3, 3, 1, 1), (1, OH, OW), (1, s, s), (1, 1, 1),
                                          (0, ph, pw), 4, 64, 8, 0.75, 4)
    assert (bool(geo[-1]), tile.nvec) == (flat, nvec)


ONE_PIXEL_CF_CASES = [
    # a DCGAN generator's projection in PyTorch's layout: 1 x 1 -> 4 x 4, k4
    ("conv2d_transpose", (3, 20, 1, 1), (4, 4, 24, 20), 1, "VALID", "NCHW", None),
    ("conv2d_transpose", (3, 20, 1, 1), (4, 4, 24, 20), 2, "SAME", "NCHW", None),
    ("conv2d_transpose", (2, 16, 1, 1), (3, 3, 8, 16), 1, [(1, 0), (0, 1)], "NCHW", [1, 1, 2, 1]),
    ("conv3d_transpose", (2, 8, 1, 1, 1), (2, 3, 4, 12, 8), [1, 1, 2, 1, 3], "SAME", "NCDHW", None),
    ("conv1d_transpose", (4, 9, 1), (5, 17, 9), 3, "VALID", "NCW", 1),
    ("conv2d_transpose", (2, 6, 1, 1), (2, 2, 10, 6), 3, "SAME", "NCHW", None),  # output positions no tap reaches
    ("conv1d_transpose", (4, 9, 1), (5, 1, 9), 3, "VALID", "NCW", 1),  # one output channel: stays channels-first
    # forward: one output pixel (no copy), and explicit padding around the pixel
    ("conv2d", (3, 20, 1, 1), (3, 3, 20, 24), 1, "SAME", "NCHW", None),
    ("conv2d", (3, 20, 1, 1), (3, 3, 20, 24), 1, [(1, 1), (2, 2)], "NCHW", None),
    ("conv3d", (2, 12, 1, 1, 1), (1, 1, 1, 12, 40), 1, "VALID", "NCDHW", None),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ONE_PIXEL_CF_CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2][-2]}-{c[4]}" for c in ONE_PIXEL_CF_CASES])
@pytest.mark.parametrize("read_only", [False, True])
def test_channels_first_one_pixel_input(case, dtype, read_only, monkeypatch):
    """Channels-first calls on one input pixel run the channels-last
    kernels on the same memory (ONE_PIXEL_CL), or with read-only filters,
    where each output receives one tap, patch_cl with channels-first
    stores (ONE_PIXEL_PATCH):
    the channels-last call's bits, the reference's result, and the
    channels-first kernels' result when it is turned off. The caller's
    input is not written."""
    x, w = _arrays(case, dtype, np.random.default_rng(41))
    w.flags.writeable = not read_only
    x0 = x.copy()
    layouts = []
    real = cpu._run
    monkeypatch.setattr(cpu, "_run", lambda x, wg, *a, **k: (layouts.append(a[4]), real(x, wg, *a, **k))[1])
    patches = []
    real_patch = cpu._one_pixel_patch
    monkeypatch.setattr(cpu, "_one_pixel_patch", lambda *a: (patches.append(1), real_patch(*a))[1])
    y = _call(case, x, w, "cpu")
    out_channels = case[2][-2] if case[0].endswith("_transpose") else case[2][-1]
    # a transpose whose every output position receives one tap (counted on ones by the reference):
    # patch_cl, its stores channels-first (ONE_PIXEL_PATCH)
    one_tap = case[0].endswith("_transpose") and np.all(
        _call(case, np.ones_like(x), np.ones_like(w), "reference") == x.shape[1])
    patch = one_tap and out_channels > 1 and not w.flags.writeable
    assert patches == ([1] if patch else [])
    assert layouts == ([True] if patch or out_channels == 1 else [True, False])
    assert np.moveaxis(_call_channels_last(case, x, w), -1, 1).tobytes() == y.tobytes()
    monkeypatch.setattr(cpu, "ONE_PIXEL_CL", False)
    y_cf = _call(case, x, w, "cpu")
    ref = _call(case, x, w, "reference")
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for r in (y, y_cf):
        assert r.shape == ref.shape
        assert np.max(np.abs(r - ref)) <= tol * max(1.0, float(np.max(np.abs(ref))))
    assert x.tobytes() == x0.tobytes()


ONE_PIXEL_PATCH_CASES = [
    # (x, w [kd, kh, kw, out, in], output, pads before): one input pixel, one tap per output position
    ((64, 100, 1, 1, 1), (1, 4, 4, 40, 100), (1, 4, 4), (0, 0, 0)),  # a DCGAN projection, 640 channels a pixel
    ((3, 20, 1, 1, 1), (2, 3, 4, 24, 20), (2, 3, 4), (0, 0, 0)),
    ((5, 9, 1, 1, 1), (1, 1, 5, 17, 9), (1, 1, 5), (0, 0, 0)),  # 85 channels: a part block
    ((1, 7, 1, 1, 1), (1, 2, 1, 2, 7), (1, 2, 1), (0, 0, 0)),  # 4 channels: less than a vector
    ((2, 12, 1, 1, 1), (1, 2, 2, 37, 12), (1, 2, 2), (0, 0, 0)),  # the last block part full
    ((4, 24, 1, 1, 1), (1, 4, 4, 32, 24), (1, 2, 2), (0, 1, 1)),  # k4 s2 SAME: the middle taps
    ((2, 10, 1, 1, 1), (3, 3, 3, 16, 10), (1, 2, 3), (1, 0, 0)),  # a window at each end
]


@pytest.mark.parametrize("shapes", ONE_PIXEL_PATCH_CASES, ids=lambda c: f"{c[0]}-{c[1]}-{c[3]}")
@pytest.mark.parametrize("activation", [None, "linear", "relu", "tanh"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("read_only", [True, False])
def test_one_pixel_patch_route(shapes, activation, dtype, read_only, monkeypatch):
    """cpu._one_pixel_patch (ONE_PIXEL_PATCH): a channels-first transpose of
    one input pixel where each output position receives one tap (a patch,
    or a window of it), patch_cl with the positions as output channels. The same bits as the channels-last kernels and the
    copy, with a conv layer's epilogue (in registers for linear and ReLU),
    into a given `out` (contiguous or not), from read-only filters (packed
    once; writable ones take the copy route); the caller's arrays are not
    written."""
    xs, ws, out_spatial, pads = shapes
    rng = np.random.default_rng(43)
    x = rng.standard_normal(xs).astype(dtype)
    if xs[0] > 1:
        x[-1, 0] = np.nan  # the last pixel's outputs all NaN
    w = rng.standard_normal(ws).astype(dtype)
    w.flags.writeable = not read_only
    x0, w0 = x.copy(), w.copy()
    F = ws[3]
    epilogue = None
    if activation is not None:
        epilogue = (rng.standard_normal(F).astype(dtype), None, np.full(F, 0.5, dtype), activation, 0.0)
    geo = (out_spatial, ws[:3], (1, 1, 1), pads, True)
    calls = []
    real = cpu._one_pixel_patch
    monkeypatch.setattr(cpu, "_one_pixel_patch", lambda *a: (calls.append(1), real(*a))[1])
    taken = read_only  # (writable filters, packed on every call: the copy route)
    results = []
    for on in (True, False, True):  # the third call: the packed filters from the memo (read-only)
        monkeypatch.setattr(cpu, "ONE_PIXEL_PATCH", on)
        calls.clear()
        y = cpu.transpose(x, w, *geo, epilogue=epilogue)
        assert calls == ([1] if on and taken else [])
        assert y.shape == (xs[0], F) + out_spatial
        buf = np.full((xs[0], F + 3) + out_spatial, np.nan, dtype)
        for out in (np.empty_like(y), buf[:, 2:F + 2]):
            assert cpu.transpose(x, w, *geo, epilogue=epilogue, out=out) is out
            np.testing.assert_array_equal(out, y)
        assert np.isnan(buf[:, :2]).all() and np.isnan(buf[:, F + 2:]).all()
        results.append(y.tobytes())
    assert results[0] == results[1] == results[2]
    ref = reference.transpose(x, w, out_spatial, (1, 1, 1), (1, 1, 1), pads, True)
    if epilogue is None:
        ok = ~np.isnan(ref)
        y = np.frombuffer(results[0], dtype).reshape(ref.shape)
        tol = 1e-5 if dtype == np.float32 else 1e-12
        assert np.array_equal(np.isnan(y), np.isnan(ref))
        assert np.max(np.abs(y[ok] - ref[ok])) <= tol * max(1.0, float(np.max(np.abs(ref[ok]))))
    assert x.tobytes() == x0.tobytes() and w.tobytes() == w0.tobytes()


def _layer_call(layer, *shapes):
    from fastdeconv import layers

    def call(*xs):
        return getattr(layers, layer[0])(*layer[1:])(list(xs) if len(xs) > 1 else xs[0])
    return (call,) + shapes


READ_ONLY_CALLS = {
    "cl": (lambda x, w: fastdeconv.conv3d(x, w, 1, "SAME"), (1, 5, 6, 7, 16), (3, 3, 3, 16, 24)),
    "cl-transpose": (lambda x, w: fastdeconv.conv3d_transpose(x, w, None, 2, "SAME"), (1, 4, 5, 6, 16),
                     (3, 3, 3, 24, 16)),
    "wv-narrow": (lambda x, w: fastdeconv.conv2d(x, w, 1, "SAME"), (1, 9, 10, 8), (3, 3, 8, 2)),
    "wv-cf": (lambda x, w: fastdeconv.conv3d(x, w, 1, "SAME", data_format="NCDHW"), (1, 8, 5, 6, 20),
              (3, 3, 3, 8, 8)),
    "patch-cl": (lambda x, w: fastdeconv.conv3d_transpose(x, w, None, 2, "VALID"), (1, 3, 4, 5, 16),
                 (2, 2, 2, 8, 16)),
    "patch-cf": (lambda x, w: fastdeconv.conv3d_transpose(x, w, None, 2, "VALID", data_format="NCDHW"),
                 (1, 16, 3, 4, 5), (2, 2, 2, 8, 16)),
    "cf-bands": (lambda x, w: fastdeconv.conv2d(x, w, 1, "SAME", data_format="NCHW"), (1, 64, 5, 7),
                 (3, 3, 64, 64)),
    # filters packed by a Numba loop (cpu_rb._pack_rows): 2 M elements and more
    "cl-large-filters": (lambda x, w: fastdeconv.conv3d(x, w, 1, "SAME"), (1, 2, 3, 4, 512), (2, 2, 2, 512, 512)),
    "pointwise": (lambda x, w: fastdeconv.conv3d(x, w, 1, "SAME"), (1, 4, 5, 6, 8), (1, 1, 1, 8, 2)),
    "depthwise": (lambda x, w: fastdeconv.conv2d(x, w, 1, "SAME"), (1, 6, 7, 8), (3, 3, 1, 8)),
    "max-pooling": _layer_call(("MaxPooling3D", 2), (1, 4, 6, 6, 8)),
    "average-pooling": _layer_call(("AveragePooling3D", 2), (1, 4, 6, 6, 8)),
    "upsampling": _layer_call(("UpSampling3D", 2), (1, 3, 4, 5, 8)),
    "group-normalization": _layer_call(("GroupNormalization", 4), (1, 3, 4, 5, 8)),
    "layer-normalization": _layer_call(("LayerNormalization",), (2, 6, 8)),
    "resizing": _layer_call(("Resizing", 7, 9), (1, 4, 5, 8)),
    "concatenate": _layer_call(("Concatenate",), (1, 4, 5, 8), (1, 4, 5, 3)),
}


@pytest.mark.parametrize("name", list(READ_ONLY_CALLS))
def test_read_only_inputs_compile_nothing_new(name):
    """Read-only inputs and filters (np.load with mmap_mode="r",
    np.frombuffer, a framework tensor's .numpy()) run the kernels compiled
    for writable ones, with the same bits: Numba types the two apart, and
    every kernel would otherwise compile a second variant (1.2-2 s each)."""
    call, *shapes = READ_ONLY_CALLS[name]
    rng = np.random.default_rng(11)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    expected = call(*arrays)
    before = _compiled_signatures()
    frozen = [a.copy() for a in arrays]
    for a in frozen:
        a.flags.writeable = False
    got = call(*frozen)
    assert _compiled_signatures() == before, f"{name}: a read-only input compiled a new kernel variant"
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("vbytes", [32, 64])
def test_vtranspose_block(dtype, vbytes):
    """cpu_simd.vtranspose_block: column j of a V x V block (the rows read
    up to column n - 1 only) becomes vector j, for j < n; nothing else is
    written."""
    import numba

    @numba.njit
    def transpose(a, b, tile, stride, n):
        cpu_simd.vtranspose_block(b, tile, cpu_simd.addr(b), cpu_simd.addr(a), stride * a.itemsize,
                                  stride * b.itemsize, n)

    V = vbytes // np.dtype(dtype).itemsize
    tile = cpu_simd.Tile(4, 2, vbytes)
    for n in (V, V - 1, 1):
        a = np.arange(V * (V + 3), dtype=dtype).reshape(V, V + 3)  # rows V + 3 apart
        a[:, n:] = np.nan  # past column n - 1: never read into what is stored
        b = np.full((V, V + 3), -1, dtype=dtype)
        transpose(a.reshape(-1), b.reshape(-1), tile, V + 3, n)
        expected = np.full_like(b, -1)
        expected[:n, :V] = a[:, :n].T
        assert np.array_equal(b, expected)


def test_narrow_channels_last_route_rule(monkeypatch):
    """Channels-last calls with few output channels: one output channel goes
    on rows packed channels-first from NARROW_ONE_CHANNEL_ROWS_CHANNELS[0]
    to [1] input channels with NARROW_ONE_CHANNEL_CF_MIN_TAPS taps or more,
    else through a channels-first copy of the input up to
    NARROW_ONE_CHANNEL_CF_MAX_CHANNELS input channels or from
    NARROW_ONE_CHANNEL_CF_MIN_TAPS taps, whatever the reduction's length;
    otherwise, and with 2 or more output channels, the gathered loads only
    up to WV_NARROW_STEPS reduction steps, then packed rows (2 or more
    channels) or the channels-last tile (one)."""
    rng = np.random.default_rng(45)
    routes = []
    real_run, real_tiles = cpu._run, cpu_rb.parallel_tiles

    def spy_run(x, wg, out_spatial, strides, dilations, pads_before, channels_first, *a, **k):
        routes.append("cf" if channels_first else "cl")
        return real_run(x, wg, out_spatial, strides, dilations, pads_before, channels_first, *a, **k)

    monkeypatch.setattr(cpu, "_run", spy_run)
    monkeypatch.setattr(cpu, "SHORT", False)  # (cl_kernel's tile, not cpu_short's)
    # wv_kernel itself: gathered loads; with_rows's function: packed rows
    monkeypatch.setattr(cpu_rb, "parallel_tiles", lambda k, a, *r: (routes.append(
        {cpu_rb.wv_kernel: "gathered", cpu_rb.cl_kernel: "tile"}.get(k, "packed rows")), real_tiles(k, a, *r))[1])
    C_MAX = cpu.NARROW_ONE_CHANNEL_CF_MAX_CHANNELS

    def route(C, F, k=3):
        routes.clear()
        x = rng.standard_normal((1, 7, 40, C)).astype(np.float32)
        y = fastdeconv.conv2d(x, rng.standard_normal((k, k, C, F)).astype(np.float32), 1, "SAME")
        assert y.shape == (1, 7, 40, F)
        return routes

    lo, hi = cpu.NARROW_ONE_CHANNEL_ROWS_CHANNELS
    assert route(C_MAX, 1) == ["cl", "packed rows"]  # 288 steps, 9 taps: packed rows
    assert route(lo, 1) == ["cl", "packed rows"]
    assert route(hi, 1) == ["cl", "packed rows"]
    assert route(lo - 1, 1)[:2] == ["cl", "cf"]  # the copy
    assert route(3, 1)[:2] == ["cl", "cf"]
    assert "cf" in route(hi + 1, 1)  # 9 taps: the copy (its layout kernel first, at this size)
    assert route(lo, 1, k=2)[:2] == ["cl", "cf"]  # 4 taps, up to C_MAX channels: the copy
    assert route(C_MAX + 1, 1, k=2) == ["cl", "tile"]  # past both limits
    assert route(3, 2) == ["cl", "gathered"]  # 27 steps
    assert route(8, 2) == ["cl", "packed rows"]  # 72 steps


ONE_VECTOR_CASES = [
    # channels-first strided transposes whose W phases (2-3 columns) leave
    # most of a vector empty, with either width and dtype: wv_kernel's
    # 1-vector tile, 16 rows with 32 vector registers (two blocks, one
    # padded block), 8 where 16 would pad more
    ("conv3d_transpose", (1, 6, 4, 5, 2), (3, 3, 3, 32, 6), 2, "SAME", "NCDHW", None),
    ("conv2d_transpose", (2, 5, 7, 2), (4, 4, 12, 5), 2, "SAME", "NCHW", None),
    ("conv2d_transpose", (1, 4, 6, 2), (3, 3, 24, 4), [1, 2], "VALID", "NCHW", None),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ONE_VECTOR_CASES, ids=[f"{c[0]}-{c[2][-2]}" for c in ONE_VECTOR_CASES])
def test_one_vector_tile_rows_same_bits(case, dtype, monkeypatch):
    """wv_kernel's 1-vector tile with 16 rows (cpu_rb.WV_ONE_VECTOR_ROWS,
    AVX-512's 32 registers) gives the bits of its 8-row form, of the most
    chunks and of the channels-last call, and the reference's result."""
    x, w = _arrays(case, dtype, np.random.default_rng(46))
    monkeypatch.setattr(cpu_simd, "VREGS", 32)  # the 16-row choice on any CPU
    monkeypatch.setattr(cpu, "CF_GATHER", False)  # (few input channels: gathered runs first)
    F = case[2][-2]
    tiles = []
    real_pack = cpu_rb.pack_filters_wv
    monkeypatch.setattr(cpu_rb, "pack_filters_wv", lambda wg, dt, tile, *a: (tiles.append(tile),
                                                                             real_pack(wg, dt, tile, *a))[1])
    results = _calls_with(case, x, w, monkeypatch, [
        ({(cpu_rb, "WV_ONE_VECTOR_ROWS"): 16}, None),
        ({(cpu_rb, "WV_ONE_VECTOR_ROWS"): 16}, 10**12),
        ({(cpu_rb, "WV_ONE_VECTOR_ROWS"): 8}, None)])
    assert [(t.rows, t.nvec) for t in tiles[:1]] == [(8 if F == 24 else 16, 1)]
    assert (tiles[-1].rows, tiles[-1].nvec) == (8, 1)
    assert all(r.tobytes() == results[0].tobytes() for r in results)
    assert np.moveaxis(results[0], 1, -1).tobytes() == _call_channels_last(case, x, w).tobytes()
    ref = _call(case, x, w, "reference")
    assert np.max(np.abs(results[0] - ref)) <= 1e-5 * max(1.0, float(np.max(np.abs(ref))))


CL_ONE_VECTOR_CASES = [
    # channels-last stride-1 calls with at most one vector of output
    # channels: cl_kernel's 1-vector tile, 16 rows with 32 vector registers:
    # rows of 16 + 5 (the last block on the 8-row loop), a dilation, two
    # groups, a transpose (per-tap runs), a dilated one
    ("conv2d", (2, 7, 21, 6), (3, 3, 6, 12), 1, "SAME", "NHWC", None),
    ("conv3d", (1, 5, 6, 19, 4), (3, 3, 3, 4, 16), 1, "SAME", "NDHWC", 2),
    ("conv2d", (1, 9, 40, 8), (3, 3, 4, 14), 1, "VALID", "NHWC", None),
    ("conv2d_transpose", (2, 6, 19, 5), (3, 3, 12, 5), 1, "SAME", "NHWC", None),
    ("conv3d_transpose", (1, 4, 5, 18, 6), (3, 2, 3, 10, 6), 1, "VALID", "NDHWC", 2),
]


def _tiles_run(monkeypatch):
    """The (rows, nvec) of every Tile passed to cpu_rb.parallel_tiles from
    now on, in call order (a list that fills as calls run)."""
    tiles = []
    real = cpu_rb.parallel_tiles

    def spy(k, a, n, wk, *g):
        tiles.extend((t.rows, t.nvec) for t in a if isinstance(t, cpu_simd.Tile))
        return real(k, a, n, wk, *g)

    monkeypatch.setattr(cpu_rb, "parallel_tiles", spy)
    return tiles


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CL_ONE_VECTOR_CASES, ids=[f"{c[0]}-{c[2][-2:]}" for c in CL_ONE_VECTOR_CASES])
def test_channels_last_one_vector_tile_rows_same_bits(case, dtype, monkeypatch):
    """cl_kernel's 1-vector tile with 16 rows (cpu_rb.CL_ONE_VECTOR_ROWS,
    stride-1 calls, AVX-512's 32 registers) gives the bits of
    its 8-row form and of the most chunks, and the reference's result."""
    x, w = _arrays(case, dtype, np.random.default_rng(47))
    monkeypatch.setattr(cpu_simd, "VREGS", 32)  # the 16-row choice on any CPU
    monkeypatch.setattr(cpu_rb, "CL_ONE_VECTOR_POINTER_ROWS", True)
    monkeypatch.setattr(cpu, "CL1", True)
    monkeypatch.setattr(cpu, "SHORT", False)  # (short reductions: cpu_short's 8-row tile)
    lanes = cpu_simd.VBYTES // np.dtype(dtype).itemsize
    tiles = _tiles_run(monkeypatch)
    results = _calls_with(case, x, w, monkeypatch, [
        ({(cpu_rb, "CL_ONE_VECTOR_ROWS"): 16}, None),
        ({(cpu_rb, "CL_ONE_VECTOR_ROWS"): 16}, 10**12),
        ({(cpu_rb, "CL_ONE_VECTOR_ROWS"): 8}, None)])
    trans = case[0].endswith("_transpose")
    Fg = case[2][-2] if trans else case[2][-1] // (case[1][-1] // case[2][-2])
    if Fg <= lanes and Fg > cpu.WV_NARROW * 4 // np.dtype(dtype).itemsize:  # not the narrow path
        assert tiles[0] == (16, 1) and tiles[-1] == (8, 1)
    assert all(r.tobytes() == results[0].tobytes() for r in results)
    ref = _call(case, x, w, "reference")
    assert np.max(np.abs(results[0] - ref)) <= 1e-5 * max(1.0, float(np.max(np.abs(ref))))


def test_one_vector_tile_rows_rule(monkeypatch):
    """16-row 1-vector tiles (32 vector registers, stride-1 calls): the
    band kernel's on every CPU, cl_kernel's (rows read through pointers)
    only where CL_ONE_VECTOR_POINTER_ROWS, which is set for AMD Zen CPUs
    (the ones measured faster with them)."""
    monkeypatch.setattr(cpu_simd, "VREGS", 32)
    assert cpu_rb.CL_ONE_VECTOR_POINTER_ROWS == cpu_simd.HOST_CPU.startswith("znver")
    for zen in (True, False):
        monkeypatch.setattr(cpu_rb, "CL_ONE_VECTOR_POINTER_ROWS", zen)
        assert cpu_rb.cl_tile(1, True).rows == 16
        assert cpu_rb.cl_tile(1, True, pointers=True).rows == (16 if zen else cpu_simd.tile_rows(1))
        assert cpu_rb.cl_tile(1, False, pointers=True).rows == cpu_simd.tile_rows(1)
        assert cpu_rb.cl_tile(2, True, pointers=True).rows == cpu_simd.tile_rows(2)
    monkeypatch.setattr(cpu_simd, "VREGS", 16)
    assert cpu_rb.cl_tile(1, True).rows == cpu_simd.tile_rows(1, 16)


L32 = cpu_simd.VBYTES // 4  # float32 lanes of a vector
CL_WIDE_CASES = [
    # channels-last stride-1 calls with more than one vector of output
    # channels: cl_kernel's 2-vector tile, 12 rows with 32 vector registers:
    # rows of 13 (12 + 1: the part loop), rows of 8 and 20 (the last 8 as two
    # 4-row blocks), a dilation, two groups, a transpose (per-tap runs), a
    # dilated one, two channel blocks
    ("conv2d", (2, 7, 13, 6), (3, 3, 6, L32 + 3), 1, "SAME", "NHWC", None),
    ("conv3d", (1, 4, 5, 20, 4), (3, 3, 3, 4, 2 * L32), 1, "SAME", "NDHWC", 2),
    ("conv2d", (1, 9, 10, 5), (3, 3, 5, 4 * L32 + 5), 1, "VALID", "NHWC", None),
    ("conv2d", (1, 6, 17, 8), (3, 3, 4, 2 * L32 + 4), 1, "SAME", "NHWC", None),
    ("conv2d_transpose", (2, 6, 19, 5), (3, 3, L32 + 1, 5), 1, "SAME", "NHWC", None),
    ("conv3d_transpose", (1, 4, 5, 18, 6), (3, 2, 3, 2 * L32, 6), 1, "VALID", "NDHWC", 2),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CL_WIDE_CASES, ids=[f"{c[0]}-{c[1][1:-1]}" for c in CL_WIDE_CASES])
def test_channels_last_wide_tile_same_bits(case, dtype, monkeypatch):
    """cl_kernel's 2-vector tile with 12 rows (cpu_rb.CL_WIDE_ROWS,
    stride-1 calls, 32 vector registers) gives the bits of its 8-row form
    and of the most chunks, and the reference's result."""
    x, w = _arrays(case, dtype, np.random.default_rng(48))
    monkeypatch.setattr(cpu_simd, "VREGS", 32)  # the 12-row choice on any CPU
    monkeypatch.setattr(cpu, "SHORT", False)  # (short reductions: cpu_short's 8-row tile)
    tiles = _tiles_run(monkeypatch)
    results = _calls_with(case, x, w, monkeypatch, [
        ({(cpu_rb, "CL_WIDE_ROWS"): 12}, None),
        ({(cpu_rb, "CL_WIDE_ROWS"): 12}, 10**12),
        ({(cpu_rb, "CL_WIDE_ROWS"): 0}, None)])
    assert tiles[0] == (12, 2) and tiles[-1] == (8, 2), tiles
    assert all(r.tobytes() == results[0].tobytes() for r in results)
    ref = _call(case, x, w, "reference")
    assert np.max(np.abs(results[0] - ref)) <= 1e-5 * max(1.0, float(np.max(np.abs(ref))))


def _block_rows(rows, rb, part):
    """Rows cl_kernel computes (padding included) for a tile of `rows` rows
    in blocks of rb: its block rule, a block of at most `part` rows (vrun's
    part-tile loop) costing `part`."""
    done = 0
    while rows > 0:
        nr = rb if rb < rows else rows
        if part < rows <= 2 * part and (rb < rows or 2 * part < rb):
            nr = part
        done += part if part and nr <= part else rb
        rows -= nr
    return done


def test_wide_tile_rule(monkeypatch):
    """The 12-row 2-vector tile: cl_kernel's own (`wide`), stride-1 calls,
    32 vector registers, off on AMD Zen (measured no faster there); and
    with cl_kernel's block rule 12-row blocks never compute more rows than
    8-row ones, for any tile of rows_per_tile's split."""
    assert cpu_rb.CL_WIDE_ROWS == (0 if cpu_simd.HOST_CPU.startswith("znver") else 12)
    monkeypatch.setattr(cpu_rb, "CL_WIDE_ROWS", 12)
    monkeypatch.setattr(cpu_simd, "VREGS", 32)
    assert cpu_rb.cl_tile(2, True, pointers=True, wide=True).rows == 12
    assert cpu_rb.cl_tile(2, False, pointers=True, wide=True).rows == cpu_simd.tile_rows(2)
    assert cpu_rb.cl_tile(2, True, pointers=True).rows == cpu_simd.tile_rows(2)
    assert cpu_rb.cl_tile(1, True, pointers=True, wide=True).nvec == 1
    monkeypatch.setattr(cpu_simd, "VREGS", 16)
    assert cpu_rb.cl_tile(2, True, pointers=True, wide=True).rows == cpu_simd.tile_rows(2)
    # the block rule: 32 rows on the 6-row tile 6, 6, 6, 6, 4, 4; 8 on the
    # 12-row tile 4, 4; 13 on it 12, then the part loop
    assert _block_rows(32, 6, 4) == 32
    assert _block_rows(8, 12, 4) == 8
    assert _block_rows(13, 12, 4) == 16
    assert _block_rows(14, 8, 4) == 16

    def computed(n, rb):
        rt = cpu_rb.rows_per_tile(n, rb)
        return sum(_block_rows(min(n, r0 + rt) - r0, rb, 4) for r0 in range(0, n, rt))

    assert all(computed(n, 12) <= computed(n, 8) for n in range(1, 500))


def test_host_cpu_name_follows_numba(monkeypatch):
    """cpu_simd.HOST_CPU: the CPU Numba compiles for, NUMBA_CPU_NAME first
    (a portable cache's "generic" gets the non-Zen choices)."""
    from numba.core import config

    monkeypatch.setattr(config, "CPU_NAME", "generic")
    assert cpu_simd._host_cpu_name() == "generic"
    monkeypatch.setattr(config, "CPU_NAME", None)
    assert cpu_simd._host_cpu_name() == llvm.get_host_cpu_name()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stride1_patch_keeps_the_patch_tile(dtype, monkeypatch):
    """A stride-1 transpose that is a patch per pixel (one input pixel, or
    a 1-tap kernel) runs patch_cl on its own tile (at most RB_MAX rows),
    not the 16-row stride-1 tile."""
    monkeypatch.setattr(cpu_simd, "VREGS", 32)
    rng = np.random.default_rng(48)
    for xs, ws in (((3, 1, 7), (1, 12, 7)), ((2, 5, 6), (1, 10, 6)), ((1, 1, 1, 9), (2, 2, 14, 9))):
        x = rng.standard_normal(xs).astype(dtype)
        w = rng.standard_normal(ws).astype(dtype)
        op = fastdeconv.conv1d_transpose if x.ndim == 3 else fastdeconv.conv2d_transpose
        out = op(x, w, None, 1, "VALID")
        ref = op(x, w, None, 1, "VALID", backend="reference")
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 16, 9, 11, 8), (1, 5, 7, 37), (3, 50, 3), (2, 4, 4, 300), (1, 1, 1, 1, 64),
                                   (2, 600, 16)])
def test_channels_first_copy(shape, dtype, monkeypatch):
    """cpu_layout's (B, S, C) -> (B, C, S) copy: NumPy's result for rows of
    fewer channels than a vector, channel tails, positions past the last
    whole block (and past a tile), one position, most chunks; a
    non-contiguous destination goes through NumPy."""
    monkeypatch.setattr(cpu, "COPY_MIN", 0)
    x = np.random.default_rng(49).standard_normal(shape).astype(dtype)
    want = np.ascontiguousarray(np.moveaxis(x, -1, 1))
    for work in (None, 10**12):
        got = np.full(want.shape, np.nan, dtype)
        real = cpu_rb.parallel_tiles
        monkeypatch.setattr(cpu_rb, "parallel_tiles",
                            lambda k, a, n, wk, *g, _w=work: real(k, a, n, *((wk, *g) if _w is None else (_w,))))
        cpu._to_channels_first(x, got)
        monkeypatch.setattr(cpu_rb, "parallel_tiles", real)
        assert got.tobytes() == want.tobytes()
    wide = np.full((shape[0], shape[-1] + 2) + shape[1:-1], np.nan, dtype)
    cpu._to_channels_first(x, wide[:, 1:-1])
    assert wide[:, 1:-1].tobytes() == want.tobytes() and np.isnan(wide[:, 0]).all()


SHORT_CASES = [
    # channels-last forward convolutions with short reductions (cpu_short)
    ("conv3d", (1, 3, 9, 21, 3), (1, 3, 3, 3, 64), 1, "SAME", "NDHWC", None),  # a video stem: edges, a part block
    ("conv2d", (2, 12, 17, 3), (3, 3, 3, 40), 2, "SAME", "NHWC", None),  # a part channel block
    ("conv2d", (1, 9, 10, 6), (3, 4, 6, 33), 1, [(2, 0), (1, 3)], "NHWC", [2, 1]),  # explicit padding, H dilation
    ("conv1d", (3, 50, 5), (7, 5, 35), 3, "VALID", "NWC", None),
    ("conv3d", (2, 5, 6, 7, 9), (3, 3, 3, 9, 20), 1, "SAME", "NDHWC", [1, 2, 1, 1, 1]),  # 243 terms, D dilation
    ("conv3d", (1, 6, 5, 9, 4), (3, 2, 3, 4, 48), [1, 2, 1, 2, 1], "VALID", "NDHWC", None),
    ("conv2d", (2, 6, 7, 28), (3, 3, 28, 40), 1, "SAME", "NHWC", None),  # 252 terms: the last single partial sum
    ("conv2d", (1, 3, 4, 2), (5, 5, 2, 34), 1, "SAME", "NHWC", None),  # every block on the edges
    ("conv3d", (1, 9, 10, 3, 1), (9, 10, 1, 1, 32), 1, "SAME", "NDHWC", None),  # 90 (kd, kh) taps of one step
    ("conv2d", (1, 6, 30, 3), (3, 3, 3, 40), 1, "SAME", "NHWC", [2, 3]),  # W dilation: a run per kw, edges
    ("conv1d", (2, 60, 16), (2, 16, 33), 1, "VALID", "NWC", 9),
    ("conv3d", (1, 4, 6, 19, 1), (3, 3, 3, 1, 5), 1, "SAME", "NDHWC", None),  # one vector of output channels
    ("conv2d", (2, 9, 40, 3), (3, 3, 3, 7), [1, 2, 1, 1], "SAME", "NHWC", None),
    ("conv3d", (1, 4, 5, 19, 16), (3, 3, 3, 16, 40), 1, "SAME", "NDHWC", None),  # 432 terms: 2 partial sums
    ("conv2d", (1, 7, 20, 40), (3, 3, 40, 33), 1, "SAME", "NHWC", [2, 1]),  # 360: 3 (kd, kh) taps each
    ("conv2d", (2, 6, 9, 100), (5, 1, 100, 24), 1, "SAME", "NHWC", None),  # 500: 5 of one tap, rows outside
]


def _short_calls(monkeypatch, short=cpu_short.short_cl):
    """A list that records, per parallel_tiles call from now on, whether
    it ran `short` (cpu_short.short_cl or short_cf)."""
    ran = []
    real = cpu_rb.parallel_tiles

    def spy(kernel, *a):
        ran.append(kernel is short)
        return real(kernel, *a)

    monkeypatch.setattr(cpu_rb, "parallel_tiles", spy)
    return ran


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", SHORT_CASES, ids=lambda c: f"{c[0]}-{c[1]}-{c[2]}")
def test_short_kernel_same_bits(case, dtype, vector_bytes, monkeypatch):
    """The short-reduction kernel gives cl_kernel's bits (fused runs, per
    tap) with its lines whole, split into runs of one block of rows, and in
    the most chunks, and the reference's result within tolerance."""
    x, w = _arrays(case, dtype, np.random.default_rng(62))
    ran = _short_calls(monkeypatch)
    monkeypatch.setattr(cpu, "WV_NARROW", 0)  # (few output channels on the register tiles too)
    results = _calls_with(case, x, w, monkeypatch, [({(cpu, "SHORT"): True}, None), ({(cpu, "SHORT"): True}, 10**12)])
    tile_rows = cpu_rb.cl_tile(2).rows
    monkeypatch.setattr(cpu_short, "line_columns", lambda lines, OW, rows, threads: rows)
    results += _calls_with(case, x, w, monkeypatch, [({(cpu, "SHORT"): True}, 10**12)])
    assert ran == [True, True, True]
    monkeypatch.undo()
    results += _calls_with(case, x, w, monkeypatch, [({(cpu, "SHORT"): False, (cpu, "FUSE_KW"): fuse}, None)
                                                      for fuse in (True, False)])
    assert tile_rows >= 6
    assert all(r.tobytes() == results[0].tobytes() for r in results)
    ref = _call(case, x, w, "reference")
    tol = 2e-6 if dtype == np.float32 else 1e-12
    assert np.max(np.abs(results[0] - ref)) <= tol * max(1.0, float(np.max(np.abs(ref))))


def test_short_kernel_rule(monkeypatch):
    """SHORT's rule: channels-last forward convolutions without groups, with
    dw == 1 or SHORT_DILATED, two vectors of output channels or
    SHORT_ONE_VECTOR, and at most SHORT_MAX_TERMS terms per output."""
    rng = np.random.default_rng(63)
    ran = _short_calls(monkeypatch)

    def short(C, F, k=3, dil=1, groups=1, fmt="NHWC", strides=1):
        x = rng.standard_normal((1, 9, 10, C)).astype(np.float32)
        if fmt == "NCHW":
            x = np.ascontiguousarray(np.moveaxis(x, -1, 1))
        ran.clear()
        fastdeconv.conv2d(x, rng.standard_normal((k, k, C // groups, F)).astype(np.float32), strides, "SAME",
                          data_format=fmt, dilations=dil)
        return ran == [True]

    wide = 2 * cpu_simd.VBYTES // 4  # float32 channels of the 2-vector tile
    assert short(3, 64)
    assert short(3, wide // 2 + 1)
    assert short(3, 64, strides=2)
    assert short(3, 64, dil=[2, 1])
    assert short(cpu_rb.SUM_GROUP_TERMS // 9, 64)
    assert short(cpu_rb.SUM_GROUP_TERMS // 9 + 1, 64)  # two partial sums
    assert short(cpu.SHORT_MAX_TERMS // 9, 64)
    assert not short(cpu.SHORT_MAX_TERMS // 9 + 1, 64)
    assert short(3, 64, dil=[1, 2])  # W dilated: a run per kw
    monkeypatch.setattr(cpu, "SHORT_DILATED", False)
    assert not short(3, 64, dil=[1, 2])
    monkeypatch.setattr(cpu, "SHORT_DILATED", True)
    assert not short(4, 64, groups=2)
    assert not short(3, 64, fmt="NCHW")
    assert short(3, wide // 2)  # one vector of output channels: the 8-row tile
    monkeypatch.setattr(cpu, "SHORT_ONE_VECTOR", False)
    assert not short(3, wide // 2)
    monkeypatch.setattr(cpu, "SHORT_ONE_VECTOR", True)
    x = rng.standard_normal((1, 9, 10, 64)).astype(np.float32)
    ran.clear()
    fastdeconv.conv2d_transpose(x, rng.standard_normal((3, 3, 3, 64)).astype(np.float32), None, 1, "SAME")
    assert True not in ran


@pytest.mark.parametrize("activation", ["relu", "linear", "sigmoid"])
def test_short_kernel_with_epilogue_and_out(activation, monkeypatch):
    """The short-reduction kernel runs a conv layer's epilogue in its
    registers (ReLU, linear) or leaves it to the layer code (others), and
    writes into `out`, a channel slice of a Model's concatenation buffer,
    with read-only filters (packed once): cl_kernel's bits."""
    rng = np.random.default_rng(64)
    x = rng.standard_normal((1, 2, 6, 19, 3)).astype(np.float32)
    w = rng.standard_normal((1, 3, 3, 3, 40)).astype(np.float32)
    w.flags.writeable = False
    geo = ((2, 6, 19), (1, 1, 1), (1, 1, 1), (0, 1, 1), 1, False)
    F = w.shape[-1]
    epilogue = (rng.standard_normal(F).astype(np.float32), rng.standard_normal(F).astype(np.float32), None,
                activation, 0.0)
    ran = _short_calls(monkeypatch)
    results = []
    for on in (True, False):
        monkeypatch.setattr(cpu, "SHORT", on)
        ran.clear()
        results.append(_forward_into_channel_slice(x, w, geo, epilogue, 2, 3).tobytes())
        assert ran[0] == on
    assert results[0] == results[1]


SHORT_CF_CASES = [
    # channels-first forward convolutions with short reductions (cpu_short.short_cf)
    ("conv3d", (1, 3, 3, 9, 29), (1, 3, 3, 3, 64), 1, "SAME", "NCDHW", None),  # a video stem: edges, a part block
    ("conv3d", (2, 1, 5, 6, 40), (3, 3, 3, 1, 20), 1, "SAME", "NCDHW", None),  # one input channel: 1-step runs
    ("conv2d", (1, 4, 7, 33), (3, 5, 4, 9), [1, 1, 2, 1], "VALID", "NCHW", None),  # H stride, a part channel block
    ("conv2d", (1, 6, 9, 29), (3, 4, 6, 33), 1, [(2, 0), (1, 3)], "NCHW", [1, 1, 2, 1]),  # explicit padding
    ("conv1d", (3, 5, 50), (7, 5, 35), 1, "SAME", "NCW", None),
    ("conv2d", (2, 8, 4, 9), (1, 1, 8, 48), 1, "VALID", "NCHW", None),  # 1 x 1: an image's plane as one row
    ("conv2d", (1, 3, 5, 16), (3, 3, 3, 40), 1, "SAME", "NCHW", None),  # rows of whole vectors
    ("conv3d", (1, 2, 4, 6, 37), (3, 2, 3, 2, 17), [1, 1, 2, 1, 1], "SAME", "NCDHW", [1, 1, 1, 2, 1]),
    ("conv2d", (1, 28, 6, 35), (3, 3, 28, 12), 1, "SAME", "NCHW", None),  # 252 terms
    ("conv3d", (1, 1, 9, 10, 36), (9, 10, 1, 1, 32), 1, "SAME", "NCDHW", None),  # 90 (kd, kh) taps of one step
    ("conv2d", (2, 4, 7, 20), (3, 3, 4, 24), 1, [(0, 0), (1, 1)], "NCHW", None),  # a plane as one line, OH < H
    ("conv2d", (2, 5, 6, 7), (3, 3, 5, 16), 1, "SAME", "NCHW", None),  # ... of rows of 7
    ("conv2d", (1, 3, 8, 30), (3, 3, 3, 24), 1, "SAME", "NCHW", [1, 1, 2, 3]),  # W dilation: planes
    ("conv1d", (2, 4, 60), (5, 4, 20), 1, "VALID", "NCW", [1, 1, 4]),  # ... rows
    ("conv3d", (1, 1, 4, 6, 33), (3, 2, 4, 1, 10), 1, [(1, 1), (0, 1), (5, 1)], "NCDHW", [1, 1, 1, 2, 2]),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", SHORT_CF_CASES, ids=lambda c: f"{c[0]}-{c[1]}-{c[2]}")
def test_short_cf_same_bits(case, dtype, vector_bytes, monkeypatch):
    """The channels-first short-reduction kernel gives the channels-last
    result's bits and wv_kernel's, on output rows and (where OW == W and
    the H stride is 1) on whole planes as lines, with its lines whole,
    split into single blocks and in the most chunks, and the reference's
    result within tolerance. Its edge blocks run all three ways: lanes
    zeroed in registers, plain loads of the inner taps, masked loads at the
    start and end of x."""
    x, w = _arrays(case, dtype, np.random.default_rng(65))
    real_tiles, real_line, real_cols = cpu_rb.parallel_tiles, cpu._short_cf_line, cpu_short.line_columns
    flats = []  # per call: short_cf's `flat`, None for another kernel

    def spy(kernel, args, *a):
        flats.append(args[5][22] if kernel is cpu_short.short_cf else None)  # geo's `flat`
        return real_tiles(kernel, args, *a)

    def line(as_planes):
        def chosen(i, o, s, KH, KW, dtype, F):
            flat, length, fill = real_line(i, o, s, KH, KW, dtype, F)
            if as_planes is None:
                return flat, length, fill
            if as_planes and s[1] == 1 and o[2] == i[2] and o[1] > 1:
                return True, o[1] * o[2], fill
            return False, o[2], fill  # (fill: the rule's, so the call stays on short_cf)
        return chosen

    results = []
    for as_planes in (None, False, True):
        monkeypatch.setattr(cpu, "_short_cf_line", line(as_planes))
        for cols in (real_cols, lambda lines, OW, rows, threads: rows):  # whole lines, single blocks
            monkeypatch.setattr(cpu_short, "line_columns", cols)
            for work in (None, 10**12):  # one chunk of tiles, the most chunks
                monkeypatch.setattr(cpu_rb, "parallel_tiles", lambda k, a, n, wk, *g, _w=work: spy(
                    k, a, n, *((wk, *g) if _w is None else (_w,))))
                results.append(_call(case, x, w, "cpu"))
    y = results[0]
    h_stride = case[3] if isinstance(case[3], int) else case[3][-2]
    planes = y.ndim > 3 and h_stride == 1 and y.shape[-1] == x.shape[-1] and y.shape[-2] > 1
    assert None not in flats and not any(flats[4:8]) and all(f == planes for f in flats[8:])
    monkeypatch.undo()
    results.append(_call_channels_last(case, x, w))
    monkeypatch.setattr(cpu, "SHORT_CF", False)
    results.append(_call(case, x, w, "cpu"))
    assert all(r.tobytes() == y.tobytes() for r in results[1:12])
    assert results[12].tobytes() == np.ascontiguousarray(np.moveaxis(y, 1, -1)).tobytes()
    assert results[13].tobytes() == y.tobytes()
    ref = _call(case, x, w, "reference")
    tol = 2e-6 if dtype == np.float32 else 1e-12
    assert np.max(np.abs(y - ref)) <= tol * max(1.0, float(np.max(np.abs(ref))))


def test_short_cf_rule(monkeypatch):
    """SHORT_CF's rule: channels-first forward convolutions without groups,
    with a W stride of 1, SHORT_CF_MIN_CHANNELS output
    channels, at most SUM_GROUP_TERMS terms per output, and lines (planes
    where OW == W and the H stride is 1) of at least one vector that fill
    SHORT_CF_MIN_FILL of the lanes, with at most SHORT_CF_MASK_BYTES of
    lane masks; 1x1 calls whose lines fill SHORT_CF_1X1_FILL of them before
    the bands' rule."""
    rng = np.random.default_rng(66)
    ran = _short_calls(monkeypatch, cpu_short.short_cf)
    lanes = cpu_simd.VBYTES // 4

    def short(C, F, k=3, dil=1, groups=1, strides=1, W=40, fmt="NCHW", padding="SAME"):
        x = rng.standard_normal((1, C, 9, W)).astype(np.float32)
        if fmt == "NHWC":
            x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
        ran.clear()
        fastdeconv.conv2d(x, rng.standard_normal((k, k, C // groups, F)).astype(np.float32), strides, padding,
                          data_format=fmt, dilations=dil)
        return ran == [True]

    assert short(3, 64)
    assert short(3, cpu.SHORT_CF_MIN_CHANNELS, W=4 * lanes)
    assert short(3, 64, strides=[1, 1, 2, 1], dil=[1, 1, 2, 1])
    assert short(cpu_rb.SUM_GROUP_TERMS // 9, 8, W=4 * lanes)  # (8 output channels: not on bands)
    assert short(3, 64, W=lanes)  # one vector per row, filled
    assert not short(cpu_rb.SUM_GROUP_TERMS // 9 + 1, 8, W=4 * lanes)  # two partial sums
    assert not short(3, 64, strides=[1, 1, 1, 2])
    assert short(3, 64, dil=[1, 1, 1, 2])  # (kw, c) steps through the table whatever their spacing
    assert not short(4, 64, groups=2)
    assert not short(3, cpu.SHORT_CF_MIN_CHANNELS - 1)
    assert short(3, 64, W=lanes - 2)  # narrow rows of a plane as one line (OW == W, H stride 1)
    assert short(3, 64, W=lanes + lanes // 4)
    assert not short(3, 64, W=lanes, padding="VALID")  # lines of less than a vector: row pairs on wv_kernel
    assert not short(3, 64, W=lanes + lanes // 4 + 2, padding="VALID")  # 62.5 % of the lanes filled
    assert not short(3, 64, W=lanes + lanes // 4, strides=[1, 1, 2, 1])
    assert not short(3, 64, fmt="NHWC")
    assert short(3, 64, k=9, W=4000, padding="VALID")
    assert not short(3, 64, k=9, W=40000, padding="VALID")  # lane masks past SHORT_CF_MASK_BYTES
    monkeypatch.setattr(cpu, "POINTWISE_CF_MIN_POSITIONS", 10**9)  # (else pointwise_cf: 648 positions)
    assert short(64, 64, k=1, W=4 * lanes + lanes // 2)  # 1x1: ahead of the bands (rows of part vectors)
    monkeypatch.setattr(cpu, "SHORT_CF_1X1_FILL", 2.0)
    assert not short(64, 64, k=1, W=4 * lanes + lanes // 2)
    x = rng.standard_normal((1, 64, 9, 10)).astype(np.float32)
    ran.clear()
    fastdeconv.conv2d_transpose(x, rng.standard_normal((3, 3, 3, 64)).astype(np.float32), None, 1, "SAME",
                                data_format="NCHW")
    assert True not in ran


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_short_cf_with_epilogue_and_out(activation, monkeypatch):
    """A conv layer's epilogue after the channels-first short-reduction
    kernel, and `out` a channel slice of a wider channels-first buffer:
    wv_kernel's bits, the other channels untouched."""
    rng = np.random.default_rng(67)
    x = rng.standard_normal((1, 3, 2, 6, 29)).astype(np.float32)
    w = rng.standard_normal((1, 3, 3, 3, 40)).astype(np.float32)
    geo = ((2, 6, 29), (1, 1, 1), (1, 1, 1), (0, 1, 1), 1, True)
    F = w.shape[-1]
    epilogue = (rng.standard_normal(F).astype(np.float32), rng.standard_normal(F).astype(np.float32), None,
                activation, 0.0)
    ran = _short_calls(monkeypatch, cpu_short.short_cf)
    results = []
    for on in (True, False):
        monkeypatch.setattr(cpu, "SHORT_CF", on)
        ran.clear()
        y = cpu.forward(x, w, *geo, epilogue=epilogue)
        assert ran[0] == on
        buf = np.full((1, 2 + F + 3) + y.shape[2:], np.nan, np.float32)
        view = buf[:, 2:2 + F]
        assert cpu.forward(x, w, *geo, epilogue=epilogue, out=view) is view
        np.testing.assert_array_equal(view, y)
        assert np.isnan(np.delete(buf, np.s_[2:2 + F], axis=1)).all()
        results.append(y.tobytes())
    assert results[0] == results[1]


def test_first_call_paths_run_the_kernels_they_name(monkeypatch):
    """scripts/first_call.py times each kernel path's first call: every
    path's call runs the kernel its KERNELS entry names (a routing change
    must not leave a path timing another kernel than its name says)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "first_call.py"
    spec = importlib.util.spec_from_file_location("first_call", path)
    first_call = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(first_call)
    assert set(first_call.KERNELS) == set(first_call.PATHS)
    seen = []

    def spy(real):
        def call(kernel, *args, **kwargs):
            seen.append(getattr(getattr(kernel, "py_func", kernel), "__name__", ""))
            return real(kernel, *args, **kwargs)
        return call

    for name in ("parallel_tiles", "with_rows", "by_panels"):
        monkeypatch.setattr(cpu_rb, name, spy(getattr(cpu_rb, name)))
    from fastdeconv.backends import cpu_layers  # (holds its own name for parallel_tiles)
    monkeypatch.setattr(cpu_layers, "parallel_tiles", cpu_rb.parallel_tiles)
    rng = np.random.default_rng(0)
    ran = {}
    for name, code in first_call.PATHS.items():
        setup, call = code.split("CALL ")
        seen.clear()
        scope = {"np": np, "fd": fastdeconv, "r": lambda *s: rng.standard_normal(s).astype(np.float32)}
        exec(setup, scope)
        exec(call, scope)
        ran[name] = set(seen)
    assert {n: k for n, k in first_call.KERNELS.items() if k not in ran[n]} == {}


@pytest.mark.parametrize("kernel, F, dtype, merged", [
    ((2, 2, 2), 16, np.float32, True),  # the U-Net's k2 s2 to 16 channels: W taps as a 2-vector tile
    ((2, 2, 2), 12, np.float32, True),  # 24 channels
    ((1, 2, 3), 10, np.float32, True),  # 3 W taps of 10: 30 channels
    ((2, 2, 2), 16, np.float64, False),  # 16 float64 channels: two vectors already
    ((2, 2, 1), 16, np.float32, False),  # one W tap
])
@pytest.mark.parametrize("activation", [None, "relu", "sigmoid"])
@pytest.mark.parametrize("vector_bytes", [64], indirect=True)  # (the cases' expectations: 64-byte vectors)
def test_patch_w_taps_as_channels(kernel, F, dtype, merged, activation, vector_bytes, monkeypatch):
    """cpu_patch.patch_cl with a patch's W taps taken as channels
    (cpu.PATCH_MERGE_VECTORS): the bits of the call without it, with a
    fused epilogue (bias, scale, shift per channel, ReLU), one applied
    after (sigmoid) and none; and into `out`."""
    rng = np.random.default_rng(71)
    C = 12
    x = rng.standard_normal((2, 3, 4, 5, C)).astype(dtype)
    w = rng.standard_normal(kernel + (F, C)).astype(dtype)
    w.flags.writeable = False
    geo = (tuple(n * k for n, k in zip(x.shape[1:4], kernel)), kernel, (1, 1, 1), (0, 0, 0), False)
    epilogue = None
    if activation:
        epilogue = (rng.standard_normal(F).astype(dtype), rng.uniform(0.5, 2, F).astype(dtype),
                    rng.standard_normal(F).astype(dtype), activation, 0.0)
    tiles = []
    real = cpu_rb.parallel_tiles

    def spy(kernel_, args, *rest):
        if kernel_ is cpu_patch.patch_cl:
            tiles.append(args[4])
        return real(kernel_, args, *rest)

    monkeypatch.setattr(cpu_rb, "parallel_tiles", spy)
    results = []
    for vectors in (2, 0, 2):
        monkeypatch.setattr(cpu, "PATCH_MERGE_VECTORS", vectors)
        y = cpu.transpose(x, w, *geo, epilogue=epilogue)
        out = np.full(y.shape, np.nan, dtype)
        assert cpu.transpose(x, w, *geo, epilogue=epilogue, out=out) is out
        results += [y, out]
    assert all(r.tobytes() == results[0].tobytes() for r in results)
    lanes = cpu_simd.VBYTES // np.dtype(dtype).itemsize
    plain = cpu_rb.cl_tile(1 if F <= lanes else 2, False)
    assert len(tiles) == 6
    assert (repr(tiles[0]) != repr(plain)) == merged and repr(tiles[2]) == repr(plain)
    ref = reference.transpose(x.astype(np.float64), w.astype(np.float64), *geo)
    if epilogue is not None:
        ref = cpu._finish(ref, False, tuple(v if v is None or isinstance(v, (str, float)) else v.astype(np.float64)
                                            for v in epilogue))
    assert np.max(np.abs(results[0] - ref)) <= (1e-5 if dtype == np.float32 else 1e-12) * max(1.0, np.max(np.abs(ref)))


STREAM_CASES = [
    # channels-last results stored with streaming stores (cpu.STREAM_STORES;
    # pixels a whole number of vectors apart: 16, 32, 48 or 64 channels):
    # cpu_short's lines (3-4 input channels; 2 channel blocks, a part block
    # of 16 float32 channels, rows past the tile, a W stride), and the
    # 2x2x2 stride-2 patch
    ("conv3d", (1, 3, 9, 13, 3), (1, 3, 3, 3, 64), 1, "SAME", "NDHWC", None),
    ("conv2d", (2, 7, 11, 3), (3, 3, 3, 16), 1, "SAME", "NHWC", None),
    ("conv2d", (1, 9, 10, 4), (3, 3, 4, 48), [1, 2], "VALID", "NHWC", None),
    ("conv3d_transpose", (1, 3, 4, 5, 24), (2, 2, 2, 32, 24), 2, "SAME", "NDHWC", None),
    ("conv2d_transpose", (2, 5, 3, 8), (2, 2, 48, 8), 2, "VALID", "NHWC", None),
    # channels-first short reductions (cpu_short.short_cf): whole planes of
    # 64 positions as lines, and lines of 16 columns (an H stride)
    ("conv3d", (1, 3, 3, 8, 8), (1, 3, 3, 3, 24), 1, "SAME", "NCDHW", None),
    ("conv2d", (2, 3, 9, 16), (3, 3, 3, 16), [2, 1], "SAME", "NCHW", None),
    # cl_kernel: a long reduction, two groups of 16 channels, the gathered
    # taps of a strided transpose from 3 channels (channel blocks innermost)
    ("conv2d", (1, 5, 9, 64), (3, 3, 64, 32), 1, "SAME", "NHWC", None),
    ("conv2d", (1, 5, 6, 64), (3, 3, 32, 32), 1, "SAME", "NHWC", None),
    ("conv2d_transpose", (1, 4, 5, 3), (3, 3, 128, 3), 2, "SAME", "NHWC", None),
    # channels-first strided transposes from 3 channels (cpu_cfgather):
    # output rows of 16 columns
    ("conv2d_transpose", (2, 3, 4, 8), (3, 3, 32, 3), 2, "SAME", "NCHW", None),
    # channels-first 1x1 convolutions (cpu_pw.pointwise_cf): planes of 240
    # positions, a last tile of fewer positions than the tile (masked, not
    # streamed) and several blocks of output channels (the input packed)
    ("conv3d", (2, 16, 3, 8, 10), (1, 1, 1, 16, 3), 1, "SAME", "NCDHW", None),
    ("conv2d", (1, 8, 16, 20), (1, 1, 8, 20), 1, "SAME", "NCHW", None),
    # channels-first stride == kernel transposes (cpu_patch.patch_cf): the
    # two W phases interleaved (24 channels: full and part blocks), one W
    # phase, and a 2-D one
    ("conv3d_transpose", (1, 8, 3, 4, 16), (2, 2, 2, 24, 8), 2, "SAME", "NCDHW", None),
    ("conv3d_transpose", (1, 8, 3, 4, 16), (2, 2, 1, 16, 8), [2, 2, 1], "SAME", "NCDHW", None),
    ("conv2d_transpose", (2, 8, 4, 32), (2, 2, 16, 8), 2, "VALID", "NCHW", None),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", STREAM_CASES, ids=[f"{c[0]}-{c[2][-1] if not c[0].endswith('_transpose') else c[2][-2]}"
                                                   for c in STREAM_CASES])
def test_streaming_stores_same_bits(case, dtype, monkeypatch):
    """Whole rows of a channels-last result stored with streaming stores
    (cpu_simd.vtstore_stream, on vector-aligned results) give the bits of
    plain stores, in one chunk and in the most, and the reference's result;
    a spy checks which stores ran. Results from the recycler are aligned
    to a cache line (`_alloc`), so every result here is."""
    x, w = _arrays(case, dtype, np.random.default_rng(71))
    monkeypatch.setattr(_alloc, "RECYCLE_MIN", 0)  # (small results from the recycler: aligned)
    monkeypatch.setattr(cpu, "STREAM_MIN_BYTES", 0)
    streams = []
    real = cpu_rb.parallel_tiles

    def spy(kernel, args, *a):
        if kernel in (cpu_short.short_cl, cpu_short.short_cf, cpu_patch.patch_cl, cpu_rb.cl_kernel,
                      cpu_cfgather.cfgather_kernel, cpu_pw.pointwise_cf, cpu_patch.patch_cf):
            streams.append(args[-1])
        return real(kernel, args, *a)

    monkeypatch.setattr(cpu_rb, "parallel_tiles", spy)
    results = _calls_with(case, x, w, monkeypatch, [
        ({(cpu, "STREAM_STORES"): True}, None),
        ({(cpu, "STREAM_STORES"): True}, 10**12),
        ({(cpu, "STREAM_STORES"): False}, None)])
    assert streams == [True, True, None]
    assert all(r.tobytes() == results[0].tobytes() for r in results)
    ref = _call(case, x, w, "reference")
    assert np.max(np.abs(results[0] - ref)) <= 1e-5 * max(1.0, float(np.max(np.abs(ref))))


@pytest.mark.parametrize("C", [32, 8])
def test_pointwise_cf_copy_with_streaming_stores(C, monkeypatch):
    """cpu_pw.pointwise_cf's span copy (with its prefetches of the planes
    ahead, and of the next span's first planes, over several spans and
    chunks) gives the bits of the direct reads, into results stored with
    streaming stores and plainly; a spy checks which ran: with streaming
    stores the copy only from POINTWISE_CF_PACK_STREAM_MIN_CHANNELS input
    channels."""
    case = ("conv3d", (1, C, 4, 6, 50), (1, 1, 1, C, 24), 1, "SAME", "NCDHW", None)
    x, w = _arrays(case, np.float32, np.random.default_rng(73))
    monkeypatch.setattr(_alloc, "RECYCLE_MIN", 0)
    monkeypatch.setattr(cpu, "STREAM_MIN_BYTES", 0)
    monkeypatch.setattr(cpu, "POINTWISE_CF_PACK_BYTES", 0)
    ran = []
    real = cpu_rb.parallel_tiles

    def spy(kernel, args, *a):
        if kernel is cpu_pw.pointwise_cf:
            ran.append(args[-2:])  # (pack, stream)
        return real(kernel, args, *a)

    monkeypatch.setattr(cpu_rb, "parallel_tiles", spy)
    results = _calls_with(case, x, w, monkeypatch, [
        ({(cpu, "POINTWISE_CF_PACK"): True, (cpu, "STREAM_STORES"): True}, None),
        ({(cpu, "POINTWISE_CF_PACK"): True, (cpu, "STREAM_STORES"): True}, 10**12),
        ({(cpu, "POINTWISE_CF_PACK"): True, (cpu, "STREAM_STORES"): False}, 10**12),
        ({(cpu, "POINTWISE_CF_PACK"): False, (cpu, "STREAM_STORES"): True}, None)])
    copied = C >= cpu.POINTWISE_CF_PACK_STREAM_MIN_CHANNELS
    assert ran == [(copied, True), (copied, True), (True, None), (False, True)]
    assert all(r.tobytes() == results[0].tobytes() for r in results)
    ref = _call(case, x, w, "reference")
    assert np.max(np.abs(results[0] - ref)) <= 1e-5 * max(1.0, float(np.max(np.abs(ref))))


def test_streaming_stores_rule(monkeypatch):
    """Streaming stores only for results of STREAM_MIN_BYTES or more whose
    whole vectors all fall on aligned addresses; on by default but on AMD
    Zen 1-3 (measured faster on an Intel Xeon and on Zen 4, slower on Zen 3)."""
    assert cpu.STREAM_STORES == cpu._streaming_stores_pay(cpu_simd.HOST_CPU)
    assert [cpu._streaming_stores_pay(name) for name in ("emeraldrapids", "znver4", "generic", "znver3", "znver2")] \
        == [True, True, True, False, False]
    monkeypatch.setattr(cpu, "STREAM_STORES", True)
    v = cpu_simd.VBYTES
    big = _alloc.recycled(cpu.STREAM_MIN_BYTES // 4, np.float32)
    assert big.ctypes.data % 64 == 0
    assert cpu._streams(big, 64, 2 * v)
    assert not cpu._streams(big[:-16], 64, 2 * v)  # under STREAM_MIN_BYTES
    assert not cpu._streams(big[1:], 64, 2 * v)  # not aligned
    assert not cpu._streams(big, 20, 2 * v)  # pixels not whole vectors apart
    assert not cpu._streams(big, 64, v // 2)  # channel blocks of half a vector
    monkeypatch.setattr(cpu, "STREAM_STORES", False)
    assert not cpu._streams(big, 64, 2 * v)
