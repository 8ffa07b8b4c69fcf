"""Every argument error: its class, what its message names, and that it is
raised before any backend work starts."""

import numpy as np
import pytest

import fastdeconv
from fastdeconv import ShapeError


def z(*shape, dtype=np.float32):
    return np.zeros(shape, dtype=dtype)


X1, W1, WT1 = z(1, 8, 3), z(3, 3, 2), z(3, 2, 3)          # conv1d / conv1d_transpose (C_out 2, C_in 3)
X2, W2, WT2 = z(1, 6, 6, 3), z(3, 3, 3, 2), z(3, 3, 2, 3)
X3, W3, WT3 = z(1, 4, 4, 4, 3), z(2, 2, 2, 3, 2), z(2, 2, 2, 2, 3)
XC2 = z(1, 3, 6, 6)                                      # NCHW


def conv2d(padding="SAME", strides=1, dilations=None, data_format="NHWC", x=X2, w=W2, backend="reference"):
    return fastdeconv.conv2d(x, w, strides, padding, data_format, dilations, backend=backend)


def conv2d_t(output_shape=(1, 11, 11, 2), strides=2, padding="SAME", data_format="NHWC", dilations=None, x=X2,
             w=WT2, backend="reference"):
    return fastdeconv.conv2d_transpose(x, w, output_shape, strides, padding, data_format, dilations,
                                       backend=backend)


# (id, call, exception class, substrings the message must contain)
CASES = [
    # --- padding
    ("padding-unknown-string", lambda: conv2d("FULL"), ValueError, ["'FULL'", "SAME", "VALID", "explicit"]),
    ("padding-unknown-string-1d", lambda: fastdeconv.conv1d(X1, W1, 1, "CAUSAL", backend="reference"),
     ValueError, ["'CAUSAL'", "SAME", "VALID"]),
    ("padding-unknown-string-3dT", lambda: fastdeconv.conv3d_transpose(X3, WT3, None, 1, "full",
                                                                      backend="reference"),
     ValueError, ["'full'", "SAME", "VALID"]),
    ("padding-EXPLICIT-string", lambda: conv2d("EXPLICIT"), ValueError, ["'EXPLICIT'", "pairs"]),
    ("padding-None", lambda: conv2d(None), ValueError, ["None", "SAME"]),
    ("padding-nonzero-batch-pair", lambda: conv2d([[1, 1], [0, 0], [0, 0], [0, 0]]), ValueError,
     ["batch and channel"]),
    ("padding-nonzero-channel-pair-nhwc", lambda: conv2d([[0, 0], [1, 1], [1, 1], [0, 1]]), ValueError,
     ["batch and channel"]),
    # In NCHW the channel pair is the second one; the last pair is spatial (W).
    ("padding-nonzero-channel-pair-nchw", lambda: conv2d([[0, 0], [1, 1], [1, 1], [0, 0]], data_format="NCHW",
                                                         x=XC2), ValueError, ["batch and channel"]),
    ("padding-nonzero-batch-pair-transpose", lambda: conv2d_t(padding=[[0, 1], [1, 1], [1, 1], [0, 0]]),
     ValueError, ["batch and channel"]),
    ("padding-wrong-pair-count", lambda: conv2d([[1, 1]] * 3), ValueError, ["3 pairs", "2 spatial pairs", "4"]),
    ("padding-wrong-pair-count-1d", lambda: fastdeconv.conv1d(X1, W1, 1, [[1, 1]] * 2, backend="reference"),
     ValueError, ["2 pairs", "1 spatial", "3"]),
    ("padding-wrong-pair-count-3d", lambda: fastdeconv.conv3d(X3, W3, 1, [[1, 1]] * 4, backend="reference"),
     ValueError, ["4 pairs", "3 spatial", "5"]),
    ("padding-negative", lambda: conv2d([[1, -1], [0, 0]]), ValueError, ["-1", "non-negative"]),
    ("padding-negative-transpose", lambda: conv2d_t(padding=[[-1, 0], [0, 0]]), ValueError, ["non-negative"]),
    ("padding-triple", lambda: conv2d([[1, 1, 1], [0, 0, 0]]), ValueError, ["pairs"]),
    ("padding-float", lambda: conv2d([[1.5, 1], [0, 0]]), ValueError, ["1.5", "int"]),
    # --- strides / dilations
    ("strides-length-3-on-2d", lambda: conv2d(strides=[1, 2, 1]), ValueError, ["[1, 2, 1]", "length 3", "1, 2, 4"]),
    ("strides-length-2-on-1d", lambda: fastdeconv.conv1d(X1, W1, [1, 2], "SAME", backend="reference"),
     ValueError, ["length 2", "1, 3"]),
    ("strides-length-4-on-3d", lambda: fastdeconv.conv3d(X3, W3, [1, 1, 1, 1], "SAME", backend="reference"),
     ValueError, ["length 4", "1, 3, 5"]),
    ("strides-zero", lambda: conv2d(strides=0), ValueError, [">= 1"]),
    ("strides-zero-in-list", lambda: conv2d(strides=[1, 0]), ValueError, [">= 1"]),
    ("strides-negative", lambda: conv2d(strides=[-1, 1]), ValueError, [">= 1"]),
    ("strides-batch-entry", lambda: conv2d(strides=[2, 1, 1, 1]), ValueError, ["batch and channel"]),
    ("strides-channel-entry-nhwc", lambda: conv2d(strides=[1, 1, 1, 2]), ValueError, ["batch and channel"]),
    # NCHW: position 1 is the channel; the last entry is spatial and fine.
    ("strides-channel-entry-nchw", lambda: conv2d(strides=[1, 2, 1, 1], data_format="NCHW", x=XC2), ValueError,
     ["batch and channel"]),
    # TF's conv1d silently ignores this batch entry in NWC (SEMANTICS 3.3); we refuse.
    ("strides-conv1d-batch-entry", lambda: fastdeconv.conv1d(X1, W1, [2, 1, 1], "SAME", backend="reference"),
     ValueError, ["batch and channel"]),
    ("strides-float", lambda: conv2d(strides=1.5), ValueError, ["1.5", "int"]),
    ("strides-float-list", lambda: conv2d(strides=[1, 2.0]), ValueError, ["int"]),
    ("strides-bool", lambda: conv2d(strides=True), ValueError, ["True"]),
    ("strides-None", lambda: conv2d(strides=None), ValueError, ["strides=None"]),
    ("strides-string", lambda: conv2d(strides="2"), ValueError, ["'2'"]),
    ("strides-transpose-zero", lambda: conv2d_t(strides=[0, 2]), ValueError, [">= 1"]),
    ("dilations-length", lambda: conv2d(dilations=[1, 1, 1]), ValueError, ["dilations", "length 3"]),
    ("dilations-zero", lambda: conv2d(dilations=0), ValueError, ["dilation", ">= 1"]),
    ("dilations-batch-entry", lambda: conv2d(dilations=[2, 1, 1, 1]), ValueError, ["batch and channel"]),
    ("dilations-channel-entry", lambda: conv2d(dilations=[1, 2, 2, 2]), ValueError, ["batch and channel"]),
    ("dilations-float", lambda: conv2d(dilations=[1.0, 2]), ValueError, ["int"]),
    ("dilations-transpose-negative", lambda: conv2d_t(dilations=-2), ValueError, [">= 1"]),
    # --- data_format
    ("format-conv2d-NWC", lambda: conv2d(data_format="NWC"), ValueError, ["'NWC'", "NHWC", "NCHW"]),
    ("format-conv2d-NDHWC", lambda: conv2d(data_format="NDHWC"), ValueError, ["NHWC", "NCHW"]),
    ("format-conv1d_transpose-NHWC", lambda: fastdeconv.conv1d_transpose(X1, WT1, None, 2, "SAME", "NHWC",
                                                                        backend="reference"),
     ValueError, ["'NHWC'", "NWC", "NCW"]),
    ("format-conv1d_transpose-NCHW", lambda: fastdeconv.conv1d_transpose(X1, WT1, None, 2, "SAME", "NCHW",
                                                                        backend="reference"),
     ValueError, ["NWC", "NCW"]),
    ("format-conv3d-NHWC", lambda: fastdeconv.conv3d(X3, W3, 1, "SAME", "NHWC", backend="reference"),
     ValueError, ["NDHWC", "NCDHW"]),
    ("format-conv3d_transpose-NCHW", lambda: fastdeconv.conv3d_transpose(X3, WT3, None, 1, "SAME", "NCHW",
                                                                        backend="reference"),
     ValueError, ["NDHWC", "NCDHW"]),
    ("format-conv2d_transpose-NCW", lambda: conv2d_t(data_format="NCW"), ValueError, ["NHWC", "NCHW"]),
    ("format-not-a-string", lambda: conv2d(data_format=4), ValueError, ["data_format=4"]),
    # --- ranks
    ("rank-conv2d-3d-input", lambda: conv2d(x=z(6, 6, 3)), ShapeError, ["[6, 6, 3]", "4 dims"]),
    ("rank-conv2d-3d-filters", lambda: conv2d(w=z(3, 3, 3)), ShapeError, ["[3, 3, 3]", "4 dims"]),
    ("rank-conv3d-4d-input", lambda: fastdeconv.conv3d(X2, W3, 1, "SAME", backend="reference"), ShapeError,
     ["5 dims"]),
    ("rank-conv3d-extra-batch-dims", lambda: fastdeconv.conv3d(z(2, 1, 4, 4, 4, 3), W3, 1, "SAME",
                                                              backend="reference"), ShapeError, ["5 dims"]),
    ("rank-conv1d-2d-input", lambda: fastdeconv.conv1d(z(8, 3), W1, 1, "SAME", backend="reference"), ShapeError,
     ["[8, 3]"]),
    ("rank-transpose-extra-batch-dims", lambda: conv2d_t(x=z(2, 1, 6, 6, 3), output_shape=None), ShapeError,
     ["4 dims"]),
    ("rank-transpose-filters", lambda: conv2d_t(w=z(3, 3, 3, 2, 3)), ShapeError, ["4 dims"]),
    # --- channels
    ("forward-channel-mismatch", lambda: conv2d(x=z(1, 6, 6, 5)), ShapeError, ["5 channels", "is 3"]),
    ("forward-channel-mismatch-nchw", lambda: conv2d(x=z(1, 5, 6, 6), data_format="NCHW"), ShapeError,
     ["5 channels", "is 3"]),
    ("forward-fewer-channels-than-filter", lambda: conv2d(x=z(1, 6, 6, 2)), ShapeError, ["2 channels", "is 3"]),
    ("grouped-out-channels-not-divisible", lambda: conv2d(x=z(1, 6, 6, 6), w=z(3, 3, 3, 5)), ShapeError,
     ["2 groups", "5 out_channels", "divisible by 2"]),
    ("forward-zero-in-channels-filter", lambda: conv2d(w=z(3, 3, 0, 2)), ShapeError, ["3 channels", "0"]),
    ("transpose-channel-mismatch", lambda: conv2d_t(w=z(3, 3, 2, 4)), ShapeError, ["3 channels", "is 4"]),
    ("transpose-no-groups", lambda: conv2d_t(x=z(1, 6, 6, 6)), ShapeError, ["6 channels", "is 3"]),
    # --- output_shape
    ("output-shape-length-3-on-2d", lambda: conv2d_t(output_shape=[1, 11, 11]), ShapeError,
     ["length 3", "4 or 2"]),
    ("output-shape-length-2-on-1d", lambda: fastdeconv.conv1d_transpose(X1, WT1, [16, 2], 2, backend="reference"),
     ShapeError, ["length 2", "3 entries"]),
    ("output-shape-length-3-on-3d", lambda: fastdeconv.conv3d_transpose(X3, WT3, [8, 8, 8], 2,
                                                                       backend="reference"),
     ShapeError, ["length 3", "5 entries"]),
    ("output-shape-negative", lambda: conv2d_t(output_shape=[1, -8, 11, 2]), ShapeError, ["-8", "non-negative"]),
    ("output-shape-wrong-batch", lambda: conv2d_t(output_shape=[3, 11, 11, 2]), ShapeError,
     ["batch is 3", "input batch is 1"]),
    ("output-shape-wrong-channels", lambda: conv2d_t(output_shape=[1, 11, 11, 5]), ShapeError,
     ["5 channels", "is 2"]),
    ("output-shape-wrong-channels-nchw", lambda: conv2d_t(output_shape=[1, 11, 11, 2], data_format="NCHW",
                                                         x=XC2), ShapeError, ["11 channels", "is 2"]),
    ("output-shape-floats", lambda: conv2d_t(output_shape=[1, 11.0, 11, 2]), ShapeError, ["ints"]),
    ("output-shape-unreachable-same", lambda: conv2d_t(output_shape=[1, 13, 11, 2]), ShapeError,
     ["output_shape[1]=13", "11 or 12"]),
    ("output-shape-unreachable-both-dims", lambda: conv2d_t(output_shape=[1, 10, 13, 2]), ShapeError,
     ["output_shape[1]=10", "output_shape[2]=13", "11 or 12"]),
    ("output-shape-unreachable-valid-stride3", lambda: fastdeconv.conv1d_transpose(
        z(1, 4, 3), WT1, [1, 20, 2], 3, "VALID", backend="reference"), ShapeError,
     ["output_shape[1]=20", "12 or 13 or 14"]),
    ("output-shape-unreachable-nchw", lambda: conv2d_t(output_shape=[1, 2, 11, 10], data_format="NCHW", x=XC2),
     ShapeError, ["output_shape[3]=10", "11 or 12"]),
    ("output-shape-unreachable-dilated", lambda: fastdeconv.conv1d_transpose(
        z(1, 4, 3), WT1, [1, 13, 2], 2, "VALID", dilations=2, backend="reference"), ShapeError,
     ["output_shape[1]=13", "11 or 12", "dilation 2"]),
    ("output-shape-unreachable-explicit", lambda: fastdeconv.conv1d_transpose(
        z(1, 4, 3), WT1, [1, 9, 2], 2, [(1, 1)], backend="reference"), ShapeError,
     ["output_shape[1]=9", "7 or 8"]),
    ("output-shape-unreachable-batch0", lambda: conv2d_t(x=z(0, 6, 6, 3), output_shape=[0, 13, 11, 2]),
     ShapeError, ["output_shape[1]=13", "11 or 12"]),
    ("transpose-explicit-no-valid-size", lambda: fastdeconv.conv1d_transpose(
        z(1, 1, 3), WT1, None, 1, [(3, 3)], backend="reference"), ShapeError, ["none"]),
    # --- forward sizes
    ("valid-kernel-larger-than-input", lambda: conv2d("VALID", x=z(1, 2, 6, 3)), ShapeError,
     ["size 2", "spans 3", "SAME"]),
    ("valid-dilated-kernel-larger-than-input", lambda: conv2d("VALID", dilations=3, x=z(1, 6, 6, 3)),
     ShapeError, ["spans 7", "dilation 3"]),
    ("explicit-pads-too-small", lambda: fastdeconv.conv1d(z(1, 2, 3), z(5, 3, 2), 1, [(1, 1)],
                                                         backend="reference"), ShapeError, ["padded 4", "spans 5"]),
    ("valid-in-truncation-window", lambda: fastdeconv.conv1d(z(1, 3, 3), z(4, 3, 2), 2, "VALID",
                                                            backend="reference"), ShapeError, ["spans 4"]),
    ("kernel-size-zero", lambda: conv2d(w=z(0, 3, 3, 2)), ShapeError, ["kernel size >= 1"]),
    ("kernel-size-zero-transpose", lambda: conv2d_t(w=z(3, 0, 2, 3), output_shape=None), ShapeError,
     ["kernel size >= 1"]),
    # --- dtypes
    ("dtype-int-input", lambda: conv2d(x=z(1, 6, 6, 3, dtype=np.int32)), TypeError, ["int32", "float32"]),
    ("dtype-int-filters", lambda: conv2d(w=z(3, 3, 3, 2, dtype=np.int64)), TypeError, ["int64", "filters"]),
    ("dtype-complex", lambda: conv2d(x=z(1, 6, 6, 3, dtype=np.complex64), w=z(3, 3, 3, 2, dtype=np.complex64)),
     TypeError, ["complex64"]),
    ("dtype-bool", lambda: conv2d(x=z(1, 6, 6, 3, dtype=bool)), TypeError, ["bool"]),
    ("dtype-int-list", lambda: fastdeconv.conv1d([[[1], [2], [3]]], [[[1.0]]], 1, "SAME", backend="reference"),
     TypeError, ["int64"]),
    ("dtype-object", lambda: conv2d(x=np.zeros((1, 6, 6, 3), dtype=object)), TypeError, ["object"]),
    ("dtype-longdouble", lambda: conv2d(x=z(1, 6, 6, 3, dtype=np.longdouble), w=z(3, 3, 3, 2, dtype=np.longdouble)),
     TypeError, ["float"]),
    ("dtype-mixed-32-64", lambda: conv2d(w=z(3, 3, 3, 2, dtype=np.float64)), TypeError, ["float32", "float64"]),
    ("dtype-mixed-16-32", lambda: conv2d(x=z(1, 6, 6, 3, dtype=np.float16)), TypeError, ["float16", "float32"]),
    ("dtype-mixed-transpose", lambda: conv2d_t(x=z(1, 6, 6, 3, dtype=np.float64)), TypeError,
     ["float64", "float32"]),
    # --- backend
    ("backend-unknown", lambda: conv2d(backend="gpu"), ValueError, ["'gpu'", "'cpu'", "'reference'"]),
    ("backend-unknown-transpose", lambda: conv2d_t(backend="numpy"), ValueError, ["'numpy'"]),
    # --- shape helpers
    ("helper-filter-rank", lambda: fastdeconv.conv_output_shape([1, 6, 6, 3], [3, 3], 1, "SAME"), ShapeError,
     ["filter_shape"]),
    ("helper-valid-too-small", lambda: fastdeconv.conv_output_shape([1, 2, 6, 3], [3, 3, 3, 2], 1, "VALID"),
     ShapeError, ["spans 3"]),
    ("helper-transpose-channels", lambda: fastdeconv.conv_transpose_output_shapes([1, 6, 6, 3], [3, 3, 2, 4], 2,
                                                                                  "SAME"), ShapeError, ["is 4"]),
    ("helper-bad-padding", lambda: fastdeconv.conv_transpose_output_shapes([1, 6, 6, 3], [3, 3, 2, 3], 2, "FULL"),
     ValueError, ["SAME"]),
]


@pytest.mark.parametrize("name, call, exc, parts", CASES, ids=[c[0] for c in CASES])
def test_error(name, call, exc, parts):
    with pytest.raises(exc) as info:
        call()
    msg = str(info.value)
    for part in parts:
        assert part in msg, f"{part!r} not in message: {msg}"
    # Every message says what was expected (unreachable output shapes by
    # listing the valid sizes).
    assert "expected" in msg or "valid sizes are" in msg, msg
    if exc is ValueError:  # argument errors are plain ValueErrors, not ShapeErrors
        assert not isinstance(info.value, ShapeError), type(info.value)


def test_shape_error_is_a_value_error():
    assert issubclass(ShapeError, ValueError)
    assert fastdeconv.ShapeError is ShapeError
    with pytest.raises(ValueError):
        conv2d("VALID", x=z(1, 2, 2, 3))


class _BackendCalled(Exception):
    pass


class _TrapBackend:
    """Stands in for every backend module: any call is a failure."""

    def forward(self, *args, **kwargs):
        raise _BackendCalled("forward")

    def transpose(self, *args, **kwargs):
        raise _BackendCalled("transpose")


@pytest.fixture
def trapped(monkeypatch):
    monkeypatch.setattr(fastdeconv.backends, "get", lambda name: _TrapBackend())


@pytest.mark.parametrize("name, call, exc, parts", CASES, ids=[c[0] for c in CASES])
def test_error_raised_before_backend_work(name, call, exc, parts, trapped):
    with pytest.raises(exc):
        call()


@pytest.mark.parametrize("call", [
    lambda: conv2d(),
    lambda: conv2d_t(),
    lambda: fastdeconv.conv1d(X1, W1, 1, "SAME"),
    lambda: fastdeconv.conv3d_transpose(X3, WT3, None, 2, backend="reference"),
], ids=["conv2d", "conv2d_transpose", "conv1d-default-backend", "conv3d_transpose"])
def test_trap_catches_a_valid_call(call, trapped):
    """The trap above is live: valid calls do reach the backend."""
    with pytest.raises(_BackendCalled):
        call()


def test_a_remembered_plan_never_hides_an_error():
    """Plans are remembered per argument combination; values Python calls
    equal (2, 2.0, True) must still be checked each on its own."""
    x = np.zeros((1, 5, 5, 2), np.float32)
    w = np.zeros((3, 3, 2, 4), np.float32)
    assert fastdeconv.conv2d(x, w, 2, "SAME").shape == (1, 3, 3, 4)
    assert fastdeconv.conv2d(x, w, (2, 2), "SAME").shape == (1, 3, 3, 4)
    for bad in (2.0, True, [2, 2.0], [2, True], (2, 2.0), (True, 2)):
        with pytest.raises(ValueError, match="strides="):
            fastdeconv.conv2d(x, w, bad, "SAME")
    # and an error is raised again on the next identical call
    with pytest.raises(ValueError, match="strides="):
        fastdeconv.conv2d(x, w, 2.0, "SAME")
    assert fastdeconv.conv2d(x, w, [2, 2], "SAME").shape == (1, 3, 3, 4)
