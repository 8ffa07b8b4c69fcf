"""TensorFlow as the oracle: the only test module that imports TensorFlow.

Cases are described the way fastdeconv's API takes them, already
normalised by the test: `strides` / `dilations` one int per spatial dim,
`padding` "SAME", "VALID" or a tuple of (before, after) pairs for the
spatial dims, arrays in our layout (channels-first when `channels_first`).

Where TF on CPU refuses a case, the TF value is derived from calls TF does
accept, by identities that hold exactly:
- explicit padding on a forward conv (TF: conv2d only) -> zero-pad with
  tf.pad, then VALID; conv1d goes through conv2d with a unit H axis, which
  is how tf.nn.conv1d itself is built.
- explicit padding on a transpose (TF: conv2d_transpose only, NHWC only) ->
  conv1d_transpose via conv2d_transpose with a unit H axis; for 3-D, TF's
  VALID transpose to the full length L = (n-1)*s + k_eff, then the window
  [pb, pb + O), zero-extended past L (SEMANTICS 2.1, full-then-crop form).
- dilation where TF's Eigen path refuses it (every float64/float16
  transpose, conv3d in float64/float16, and conv2d_transpose with explicit
  padding) -> the same undilated op on the zero-stuffed kernel of size
  k_eff (tap k moved to k*d). Adding exact zeros changes no sum, so this is
  the dilated result, in float64 to the last few ulps.
- channels-first where the Eigen path refuses it (float64, float16, and
  conv2d_transpose with explicit padding) -> move channels last and back.
  float32 channels-first goes through TF natively (oneDNN path).
- grouped conv3d (TF CPU refuses groups there) -> one TF call per group,
  concatenated along channels.

Worked around, not mirrored (two TF 2.21 CPU bugs found while writing
these tests):
- oneDNN's float32 forward conv with an output dim of size 1, stride > 1
  and a kernel wider than 1 returns wrong values or uninitialised memory
  (see `_avoid_onednn_single_output_stride`).
- TF's Eigen conv3d (float64 and float16 on CPU) gets SAME wrong when
  (ceil(n/s)-1)*s + k_eff - n <= -2 (stride larger than the kernel): it
  does not clamp the total padding at 0 and reads the window shifted by
  -total//2 (x[1,3,1,1,C], k=1, stride 3 along D returns the value at D=1
  instead of D=0; conv1d/conv2d and oneDNN's float32 conv3d get it right).
  A SAME conv3d off the oneDNN path is therefore run here as explicit
  padding with TF's own clamped SAME pads.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow turns its oneDNN kernels on by default only on CPUs with
# AVX-512 VNNI/BF16 or AMX; elsewhere its float32 convolutions are
# several times slower and refuse channels-first and dilated transposes.
# Compare with (and test against) TF at its best on every CPU.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.get_logger().setLevel("ERROR")
tf.config.experimental.enable_op_determinism()

# TF's float32 CPU kernels go through oneDNN unless this is switched off;
# oneDNN computes channels-first and dilated transposes that the Eigen
# path refuses.
ONEDNN = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").strip().lower() not in ("0", "false", "off", "no")

VERSION = tf.__version__
InvalidArgumentError = tf.errors.InvalidArgumentError


def call(op, *args, **kwargs):
    """tf.nn.<op>(*args, **kwargs) on NumPy arguments, as a NumPy array:
    for tests that pass TF exactly the arguments they pass fastdeconv."""
    return getattr(tf.nn, op)(*args, **kwargs).numpy()


def _stuff(w, dilations):
    """The undilated kernel of size k_eff equivalent to `w` at `dilations`."""
    rank = len(dilations)
    ke = [(k - 1) * d + 1 for k, d in zip(w.shape[:rank], dilations)]
    out = np.zeros(ke + list(w.shape[rank:]), dtype=w.dtype)
    out[tuple(slice(None, None, d) for d in dilations)] = w
    return out


def _to_last(a):
    return np.moveaxis(a, 1, -1)


def _to_first(a):
    return np.moveaxis(a, -1, 1)


def _native_float32(dtype):
    return np.dtype(dtype) == np.float32 and ONEDNN


# --- forward -------------------------------------------------------------------

def conv(x, w, strides, padding, dilations=None, channels_first=False):
    """TF's conv1d/2d/3d of x (our layout; any number of leading batch dims
    for rank 1 and 2) with filters w [*k, C_in / groups, C_out]."""
    x, w = np.asarray(x), np.asarray(w)
    rank = w.ndim - 2
    strides = tuple(strides)
    dilations = tuple(dilations) if dilations is not None else (1,) * rank
    batch = x.shape[:x.ndim - rank - 1]
    x = x.reshape((-1,) + x.shape[x.ndim - rank - 1:])
    if channels_first and not _native_float32(x.dtype):
        y = _to_first(_forward(_to_last(x), w, strides, padding, dilations, False))
    else:
        y = _forward(x, w, strides, padding, dilations, channels_first)
    return y.reshape(batch + y.shape[1:])


def _forward(x, w, strides, padding, dilations, cf):
    rank = w.ndim - 2
    caxis = 1 if cf else x.ndim - 1
    if rank == 3 and any(d > 1 for d in dilations) and not _native_float32(x.dtype):
        w, dilations = _stuff(w, dilations), (1,) * rank
    n = x.shape[2:] if cf else x.shape[1:-1]
    if rank == 3 and padding == "SAME" and not _native_float32(x.dtype):
        padding = _same_pads(n, w.shape[:3], strides, dilations)
    if _native_float32(x.dtype):
        x, strides, padding = _avoid_onednn_single_output_stride(x, w, n, strides, padding, dilations, cf)
    cin_g, cout = w.shape[-2], w.shape[-1]
    groups = x.shape[caxis] // cin_g if cin_g else 1
    if rank == 3 and groups > 1:
        cout_g = cout // groups
        parts = [_forward(np.take(x, range(g * cin_g, (g + 1) * cin_g), axis=caxis),
                          w[..., g * cout_g:(g + 1) * cout_g], strides, padding, dilations, cf)
                 for g in range(groups)]
        return np.concatenate(parts, axis=caxis)
    fmt = {1: "NCW", 2: "NCHW", 3: "NCDHW"}[rank] if cf else {1: "NWC", 2: "NHWC", 3: "NDHWC"}[rank]
    if not isinstance(padding, str):
        pairs = [list(p) for p in padding]
        full_pairs = [[0, 0], [0, 0]] + pairs if cf else [[0, 0]] + pairs + [[0, 0]]
        if rank == 3:
            x = tf.pad(x, full_pairs).numpy()
            padding = "VALID"
        elif rank == 2:
            padding = full_pairs
        else:
            # conv1d as TF builds it: conv2d with a unit H axis, explicit pads.
            haxis = 2 if cf else 1
            x4 = np.expand_dims(x, haxis)
            pads4 = [[0, 0], [0, 0], [0, 0], pairs[0]] if cf else [[0, 0], [0, 0], pairs[0], [0, 0]]
            y = tf.nn.conv2d(x4, w[None], [1, strides[0]], pads4, "NCHW" if cf else "NHWC",
                             [1, dilations[0]]).numpy()
            return np.squeeze(y, haxis)
    if rank == 1:
        return tf.nn.conv1d(x, w, strides[0], padding, fmt, dilations[0]).numpy()
    if rank == 2:
        return tf.nn.conv2d(x, w, list(strides), padding, fmt, list(dilations)).numpy()
    full = (lambda v: [1, 1] + list(v)) if cf else (lambda v: [1] + list(v) + [1])
    return tf.nn.conv3d(x, w, full(strides), padding, fmt, full(dilations)).numpy()


def _avoid_onednn_single_output_stride(x, w, n, strides, padding, dilations, cf):
    """oneDNN float32 forward convs return wrong values (or uninitialised
    memory) when a spatial dim has output size 1 with stride > 1 and a
    kernel wider than 1 (seen on the last spatial dim with another spatial
    dim > 1, e.g. conv2d NHWC x[2,4,1,1], w[1,4,1,3], strides [1,3], SAME:
    values of order 1e35). With one output the stride does not matter:
    zero-pad, keep the one window of length k_eff, and run stride 1,
    VALID. Exact."""
    rank = len(n)
    if padding == "SAME":
        pads = _same_pads(n, w.shape[:rank], strides, dilations)
    elif padding == "VALID":
        pads = ((0, 0),) * rank
    else:
        pads = tuple(tuple(p) for p in padding)
    ke = [(k - 1) * d + 1 for k, d in zip(w.shape[:rank], dilations)]
    out = [(ni + pb + pa - kei) // s + 1 for ni, (pb, pa), kei, s in zip(n, pads, ke, strides)]
    single = [o == 1 and s > 1 for o, s in zip(out, strides)]
    if not any(single):
        return x, strides, padding
    spatial0 = 2 if cf else 1
    full_pairs = [(0, 0)] * x.ndim
    for i, p in enumerate(pads):
        full_pairs[spatial0 + i] = p
    x = tf.pad(x, full_pairs).numpy()
    keep = [slice(None)] * x.ndim
    for i in range(rank):
        if single[i]:
            keep[spatial0 + i] = slice(0, ke[i])
    x = x[tuple(keep)]
    strides = tuple(1 if single[i] else s for i, s in enumerate(strides))
    return x, strides, "VALID"


def _same_pads(n, kernel, strides, dilations):
    """TF's SAME pads (GetWindowedOutputSizeVerbose): total clamped at 0,
    odd unit after."""
    pads = []
    for ni, k, s, d in zip(n, kernel, strides, dilations):
        total = max(0, (-(-ni // s) - 1) * s + (k - 1) * d + 1 - ni)
        pads.append((total // 2, total - total // 2))
    return tuple(pads)


# --- transpose -----------------------------------------------------------------

def conv_transpose(x, w, out_spatial, strides, padding, dilations=None, channels_first=False):
    """TF's conv1d/2d/3d_transpose of x (our layout) with filters
    w [*k, C_out, C_in] to spatial size `out_spatial`."""
    x, w = np.asarray(x), np.asarray(w)
    rank = w.ndim - 2
    strides, out_spatial = tuple(strides), tuple(out_spatial)
    dilations = tuple(dilations) if dilations is not None else (1,) * rank
    explicit = not isinstance(padding, str)
    if channels_first and (explicit or not _native_float32(x.dtype)):
        return _to_first(conv_transpose(_to_last(x), w, out_spatial, strides, padding, dilations, False))
    if explicit and rank <= 2:
        return _explicit_transpose_2d(x, w, out_spatial, strides, padding, dilations)
    if explicit:
        n = x.shape[1:1 + rank]
        full = [(ni - 1) * s + (k - 1) * d + 1 for ni, s, k, d in zip(n, strides, w.shape[:rank], dilations)]
        y = conv_transpose(x, w, full, strides, "VALID", dilations, False)
        out = np.zeros((x.shape[0],) + out_spatial + (w.shape[-2],), dtype=y.dtype)
        src = tuple(slice(pb, min(pb + o, L)) for (pb, _), o, L in zip(padding, out_spatial, full))
        dst = tuple(slice(0, max(0, min(pb + o, L) - pb)) for (pb, _), o, L in zip(padding, out_spatial, full))
        out[(slice(None),) + dst] = y[(slice(None),) + src]
        return out
    if any(d > 1 for d in dilations) and not _native_float32(x.dtype):
        w, dilations = _stuff(w, dilations), (1,) * rank
    cf = channels_first
    cout = w.shape[-2]
    shape = [x.shape[0], cout, *out_spatial] if cf else [x.shape[0], *out_spatial, cout]
    fmt = {1: "NCW", 2: "NCHW", 3: "NCDHW"}[rank] if cf else {1: "NWC", 2: "NHWC", 3: "NDHWC"}[rank]
    op = {1: tf.nn.conv1d_transpose, 2: tf.nn.conv2d_transpose, 3: tf.nn.conv3d_transpose}[rank]
    return op(x, w, shape, list(strides), padding, fmt, list(dilations)).numpy()


def _explicit_transpose_2d(x, w, out_spatial, strides, padding, dilations):
    """conv2d_transpose with explicit padding (TF's Eigen path: NHWC, no
    dilation); 1-D through a unit H axis."""
    rank = w.ndim - 2
    if any(d > 1 for d in dilations):
        w = _stuff(w, dilations)
    pairs = [list(p) for p in padding]
    if rank == 1:
        x, w = x[:, None], w[None]
        out_spatial, strides, pairs = (1,) + out_spatial, (1,) + strides, [[0, 0]] + pairs
    shape = [x.shape[0], *out_spatial, w.shape[-2]]
    y = tf.nn.conv2d_transpose(x, w, shape, list(strides), [[0, 0]] + pairs + [[0, 0]], "NHWC").numpy()
    return y[:, 0] if rank == 1 else y


# --- shapes and helpers --------------------------------------------------------

def transpose_accepts(n, kernel, strides, padding, out_spatial, dilations=None):
    """Does TF's Eigen path (float64) accept a transposed conv from spatial
    size n to out_spatial? Dilation only enters through k_eff, so the check
    runs on a kernel of size k_eff. Rank 1 and 2 go through
    conv2d_transpose (explicit pads allowed); rank 3 through
    conv3d_transpose (SAME/VALID only). Needs every n >= 1 (TF's conv3d
    transpose crashes the process on empty inputs, SEMANTICS 8.3)."""
    rank = len(n)
    dilations = dilations or (1,) * rank
    ke = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    x = np.zeros((1, *n, 1))
    w = np.zeros((*ke, 1, 1))
    try:
        if rank == 3:
            tf.nn.conv3d_transpose(x, w, [1, *out_spatial, 1], list(strides), padding, "NDHWC")
        else:
            if rank == 1:
                x, w = x[:, None], w[None]
                out_spatial, strides = (1, *out_spatial), (1, *strides)
                if not isinstance(padding, str):
                    padding = [(0, 0)] + list(padding)
            pad = padding if isinstance(padding, str) else [[0, 0]] + [list(p) for p in padding] + [[0, 0]]
            tf.nn.conv2d_transpose(x, w, [1, *out_spatial, 1], list(strides), pad, "NHWC")
    except tf.errors.InvalidArgumentError:
        return False
    return True


def max_pool3d(x, ksize, strides, padding):
    """tf.nn.max_pool3d, NDHWC."""
    return tf.nn.max_pool3d(x, list(ksize), list(strides), padding).numpy()
