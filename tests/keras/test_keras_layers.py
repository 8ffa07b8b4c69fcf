"""Every supported layer and option, against Keras; and the Model's own
behaviour (graphs, batching, freeing activations, in-place safety, summary)."""

import weakref

import numpy as np
import pytest

import fastdeconv
from conftest import FORMATS
from fastdeconv import layers as L
from keras_models import K, keras, rel_err

ZOO = ["zoo_1d", "zoo_2d", "zoo_3d", "sequential_2d", "zoo_reshaping", "zoo_separable"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("builder", ZOO)
def test_layer_zoo_matches_keras(builder, fmt, saved):
    s = saved(builder)
    model = fastdeconv.load_keras(s.paths[fmt])
    assert rel_err(model.predict(s.input(3), batch_size=2), s.expected(3)) <= 2e-6


@pytest.mark.parametrize("builder", ZOO)
def test_layer_zoo_reference_backend(builder, saved):
    """The NumPy oracle behind every kernel gives the same model output."""
    s = saved(builder)
    model = fastdeconv.load_keras(s.paths["keras"], backend="reference")
    assert model.backend == "reference"
    assert rel_err(model.predict(s.input(3)), s.expected(3)) <= 2e-6


@pytest.mark.parametrize("builder", ZOO)
def test_layer_zoo_in_float64(builder, saved):
    """predict(dtype=np.float64) runs the whole model in float64 (the float32
    weights widened once per layer) and agrees with the float64 reference
    backend to the SPEC's 1e-12."""
    s = saved(builder)
    model = fastdeconv.load_keras(s.paths["keras"])
    x = s.input(3).astype(np.float64)
    ours = model.predict(x, batch_size=2, dtype=np.float64)
    ref = model.predict(x, batch_size=2, backend="reference", dtype=np.float64)
    assert ours.dtype == np.float64 and rel_err(ours, ref) <= 1e-12


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_empty_batch(backend, rng):
    """No examples: outputs of batch size 0 and the right shape (the
    reference pooling reshaped with -1 and failed)."""
    a, b = L.Input((4, 4, 2)), L.Input((4, 4, 3))
    x = L.Conv2D(3, 3, padding="same", activation="relu")(L.Concatenate()([a, b]))
    model = L.Model([a, b], [L.MaxPooling2D()(x), L.AveragePooling2D()(L.Conv2DTranspose(2, 2, strides=2)(x))])
    outs = model.predict([np.zeros((0, 4, 4, 2)), np.zeros((0, 4, 4, 3))], backend=backend)
    assert [o.shape for o in outs] == [(0, 2, 2, 3), (0, 4, 4, 2)]


def test_predict_dtypes(saved):
    """float16 is computed in float32 and rounded once; non-float dtypes are
    refused before any work, naming predict's argument."""
    s = saved("zoo_2d")
    model = fastdeconv.load_keras(s.paths["keras"])
    x = s.input(3)
    half = model.predict(x, batch_size=2, dtype=np.float16)
    assert half.dtype == np.float16
    assert np.array_equal(half, model.predict(x, batch_size=2).astype(np.float16))
    for bad in (np.int32, "int8", "not a dtype", np.complex64):
        with pytest.raises(TypeError, match="predict"):
            model.predict(x, dtype=bad)


@pytest.mark.parametrize("builder, args", [("unet3d", (32, (8, 16, 32))), ("zoo_2d", ()), ("zoo_3d", ())])
def test_epilogue_in_the_kernel_gives_the_same_bits(builder, args, saved, monkeypatch):
    """On cpu a conv's bias, BatchNorm and ReLU run inside the kernel; the
    same arithmetic as the separate pass over the result."""
    from fastdeconv.layers import conv

    model = fastdeconv.load_keras(saved(builder, *args).paths["keras"])
    x = saved(builder, *args).input(2)
    monkeypatch.setattr(conv, "FUSE_EPILOGUE", False)
    separate = model.predict(x)
    monkeypatch.setattr(conv, "FUSE_EPILOGUE", True)
    np.testing.assert_array_equal(model.predict(x), separate)


def test_reused_buffers_never_change_a_result(saved):
    """A Model hands the memory of finished activations to later layers and
    later batches (fastdeconv._alloc.Pool): results stay the same whatever
    ran before, and an array returned by model(x) is never written again."""
    s = saved("unet3d", 32, (8, 16, 32))
    model = fastdeconv.load_keras(s.paths["keras"])
    x1, x2 = s.input(2, seed=0), s.input(3, seed=1)
    first = model(x1)
    kept = first.copy()
    y2 = model.predict(x2, batch_size=2)  # batches of 2 and 1: two working sets
    again = model(x1)
    np.testing.assert_array_equal(first, kept)
    np.testing.assert_array_equal(again, kept)
    np.testing.assert_array_equal(model.predict(x2, batch_size=2), y2)
    assert rel_err(kept, s.expected(2, seed=0)) <= 2e-6


def test_pool_lends_and_takes_back_only_its_own():
    from fastdeconv import _alloc

    pool = _alloc.Pool()
    with pool.active():
        a = _alloc.empty((4, 8), np.float32)
        outside = np.empty(32, np.float32)
        pool.give(_alloc.root(outside))  # not lent: ignored
        pool.give(_alloc.root(a))
        b = _alloc.empty(32, np.float32)  # same byte size: the same memory
        assert _alloc.root(b) is _alloc.root(a)
        c = _alloc.empty(32, np.float64)  # more bytes than any free buffer: new memory
        assert _alloc.root(c) is not _alloc.root(a)
        pool.give(_alloc.root(c))
        d = _alloc.empty(40, np.float32)  # 160 bytes: the 256-byte buffer (at most 2x)
        assert _alloc.root(d) is _alloc.root(c) and d.shape == (40,)
        pool.give(_alloc.root(b))
        pool.give(_alloc.root(b))  # twice: once only
    assert pool.free_bytes() == 128
    with pool.active():
        pass  # a run that takes nothing drops what it did not use
    assert pool.free_bytes() == 0
    assert _alloc.empty(3, np.float32).base is None  # no model running: plain np.empty


def test_zoo_covers_every_layer_class(saved):
    seen = set()
    for builder in ZOO:
        seen |= {type(layer).__name__ for layer in fastdeconv.load_keras(saved(builder).paths["h5"]).layers}
    for builder, args in [("unet3d", (32, (8, 16, 32))), ("c3t_chain", ())]:
        seen |= {type(layer).__name__ for layer in fastdeconv.load_keras(saved(builder, *args).paths["h5"]).layers}
    assert seen == set(fastdeconv.keras_io.SUPPORTED_LAYERS)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "softmax", "leaky_relu", "linear", "elu",
                                        "softplus", "silu", "swish", None, "relu6", "gelu", "selu", "hard_sigmoid",
                                        "hard_silu", "hard_swish", "mish", "softsign", "exponential"])
def test_activations(activation, rng):
    x = (rng.standard_normal((4, 6, 5)) * 3).astype(np.float32)
    x[0, 0, :2] = 0.0
    x[1, 2, :3] = (-3.0, 3.0, 6.0)  # the kinks of relu6 and the hard ones
    expected = np.asarray(K.Activation(activation)(x))
    got = L.Activation(activation)(x)
    assert rel_err(got, expected) <= 2e-7
    conv = K.Conv1D(5, 3, padding="same", activation=activation)
    conv(x)
    ours = L.Conv1D(5, 3, padding="same", activation=activation)
    ours.set_weights(conv.get_weights())
    assert rel_err(ours(x), np.asarray(conv(x))) <= 2e-6


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_activations_propagate_nan_like_keras(backend, rng):
    x = (rng.standard_normal((3, 7)) * 4).astype(np.float32)
    x[:, 0] = (np.nan, np.inf, -np.inf)
    for activation in [a for a in L.ACTIVATIONS if a not in ("linear", "softmax")]:
        expected = np.asarray(K.Activation(activation)(x))
        got = L.Activation(activation)(x, backend=backend)
        assert np.array_equal(np.isnan(got), np.isnan(expected)), activation
        finite = np.isfinite(expected)
        assert np.array_equal(got[~finite], expected[~finite], equal_nan=True) \
            and rel_err(got[finite], expected[finite]) <= 2e-7, \
            activation


@pytest.mark.parametrize("args", [{}, {"max_value": 6.0}, {"max_value": 0.5}, {"negative_slope": 0.25},
                                  {"max_value": 0.0}])
def test_relu_layer_matches_keras(args, rng):
    x = (rng.standard_normal((2, 5, 4)) * 4).astype(np.float32)
    x[0, 0, :3] = (np.nan, 6.0, -0.0)
    expected = np.asarray(K.ReLU(**args)(x))
    for backend in ("cpu", "reference"):
        got = L.ReLU(**args)(x, backend=backend)
        assert np.array_equal(got, expected, equal_nan=True) or rel_err(got, expected) <= 2e-7, (args, backend)
    assert L.ReLU(**args).get_config()["max_value"] == args.get("max_value")


def test_relu_layer_refuses_what_it_does_not_implement():
    with pytest.raises(ValueError, match="threshold=0"):
        L.ReLU(threshold=0.5)
    with pytest.raises(ValueError, match="not both"):
        L.ReLU(max_value=6.0, negative_slope=0.1)
    with pytest.raises(ValueError, match="max_value a number >= 0"):
        L.ReLU(max_value=-1.0)
    with pytest.raises(ValueError, match="negative_slope a number >= 0"):
        L.ReLU(negative_slope="0.1")


@pytest.mark.parametrize("shape, shared_axes", [((6, 5, 3), None), ((6, 5, 3), [1, 2]), ((6, 5, 3), [1]),
                                                ((6, 5, 3), 3), ((3, 6, 5), [2, 3]), ((4, 5, 6, 2), [1, 2, 3]),
                                                ((9, 4), None)])
def test_prelu_matches_keras(shape, shared_axes, rng):
    x = (rng.standard_normal((2,) + shape) * 2).astype(np.float32)
    x.reshape(-1)[:2] = (np.nan, -0.0)
    theirs = K.PReLU(shared_axes=shared_axes, alpha_initializer=keras.initializers.RandomNormal(seed=3))
    expected = np.asarray(theirs(x))
    for backend in ("cpu", "reference"):
        ours = L.PReLU(shared_axes=shared_axes)
        ours.set_weights(theirs.get_weights())
        got = ours(x, backend=backend)
        assert np.array_equal(got, expected, equal_nan=True), (backend, shared_axes)
        assert ours.count_params() == theirs.count_params()
    with pytest.raises(ValueError, match="shared_axes"):
        L.PReLU(shared_axes=[0])
    with pytest.raises(fastdeconv.ShapeError, match="axes 1.."):
        L.PReLU(shared_axes=[len(shape) + 1])(x)


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("kind", ["Max", "Average"])
def test_pooling_odd_sizes(kind, padding, rank, rng):
    """Windows hanging over the edge: AveragePooling 'same' divides by the
    number of input elements in the window (as Keras)."""
    shape = (2, 7, 5, 6, 3)[:1] + (7, 5, 6)[:rank] + (3,)
    x = rng.standard_normal(shape).astype(np.float32)
    name = f"{kind}Pooling{rank}D"
    pool, strides = (3, 2, 3)[:rank], (2, 2, 1)[:rank]
    expected = np.asarray(getattr(K, name)(pool, strides=strides, padding=padding)(x))
    got = getattr(L, name)(pool, strides=strides, padding=padding)(x)
    assert got.shape == expected.shape
    assert rel_err(got, expected) <= 2e-7


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels", [1, 3, 16, 21])
def test_max_pooling_propagates_nan_and_keeps_infinities(channels, dtype, rng):
    """The cpu backend's channels-last max pooling (a running max per vector
    of channels over the window, the last partial vector masked): a NaN
    anywhere in a window makes that output NaN
    (as NumPy's max); +-inf are ordinary values. Against np.max per window."""
    x = rng.standard_normal((2, 5, 6, 7, channels)).astype(dtype)
    flat = x.reshape(-1)
    idx = rng.choice(flat.size, size=max(3, flat.size // 50), replace=False)
    flat[idx[0::3]] = np.nan
    flat[idx[1::3]] = np.inf
    flat[idx[2::3]] = -np.inf
    from fastdeconv.backends import cpu_layers

    got = cpu_layers.pool(x, (2, 3, 3), (2, 2, 2), (2, 2, 2), (0, 0, 0), False, True)
    win = x[:, :4, :6, :6].reshape(2, 2, 2, 3, 2, 3, 2, channels)
    expected = win.max(axis=(2, 4, 6))
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, expected)
    assert np.isnan(expected).any()


def test_channels_first_bias_where_keras_is_wrong(rng):
    """Keras 3's TF backend adds a channels-first conv bias along the last
    axis when that axis has the channel count (keras.ops.add's bias_add
    shortcut picks NHWC); we add it along the channels, which is what the
    layer means (and what Keras does for every other shape)."""
    x = rng.standard_normal((2, 3, 4, 6)).astype(np.float32)
    conv = L.Conv2D(6, 1, data_format="channels_first")
    kernel = rng.standard_normal((1, 1, 3, 6)).astype(np.float32)
    bias = np.arange(1, 7, dtype=np.float32)
    conv.set_weights([kernel, bias])
    got = conv(x)
    expected = np.einsum("bchw,cf->bfhw", x, kernel[0, 0]) + bias[None, :, None, None]
    assert rel_err(got, expected) <= 1e-6


def test_layers_built_by_hand_with_keras_weights(rng):
    """fastdeconv.layers used directly (no file): the functional API with a
    skip connection, Keras' weights copied over."""
    inp = keras.Input((10, 10, 10, 2))
    a = K.Conv3D(4, 3, padding="same", activation="relu")(inp)
    b = K.MaxPooling3D(2)(a)
    c = K.Conv3DTranspose(4, 2, strides=2)(b)
    d = K.Add()([a, c])
    km = keras.Model(inp, K.Conv3D(1, 1, activation="sigmoid")(d))
    for layer in km.layers:
        layer.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.3 for w in layer.get_weights()])

    x = L.Input((10, 10, 10, 2))
    a = L.Conv3D(4, 3, padding="same", activation="relu")(x)
    b = L.MaxPooling3D(2)(a)
    c = L.Conv3DTranspose(4, 2, strides=2)(b)
    d = L.Add()([a, c])
    model = L.Model(x, L.Conv3D(1, 1, activation="sigmoid")(d))
    for ours, theirs in zip(model.layers, km.layers):
        ours.set_weights(theirs.get_weights())
    data = rng.standard_normal((3, 10, 10, 10, 2)).astype(np.float32)
    assert rel_err(model.predict(data, batch_size=2), np.asarray(km(data))) <= 2e-6
    assert model.count_params() == km.count_params()


def test_multi_input_multi_output_and_shared_layer(rng):
    x1, x2 = L.Input((8, 8, 3), name="a"), L.Input((8, 8, 3), name="b")
    shared = L.Conv2D(4, 3, padding="same", name="shared")
    y1, y2 = shared(x1), shared(x2)
    model = L.Model([x1, x2], [L.Add()([y1, y2]), L.Concatenate()([y1, y2])])
    kernel = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    shared.set_weights([kernel, bias])
    a, b = (rng.standard_normal((5, 8, 8, 3)).astype(np.float32) for _ in range(2))
    s, c = model.predict([a, b], batch_size=2)
    ya = fastdeconv.conv2d(a, kernel, 1, "SAME") + bias
    yb = fastdeconv.conv2d(b, kernel, 1, "SAME") + bias
    np.testing.assert_allclose(s, ya + yb, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(c, np.concatenate([ya, yb], -1), rtol=1e-6, atol=1e-6)
    assert model.count_params() == kernel.size + bias.size


class _Probe(L.Layer):
    """Copies its input; records which earlier probes' outputs are alive."""

    log = []

    def call(self, x, backend="cpu", inplace=False):
        y = x.copy()
        alive = [name for name, ref in _Probe.refs if ref() is not None]
        _Probe.log.append((self.name, alive))
        _Probe.refs.append((self.name, weakref.ref(y)))
        return y


def test_activations_are_freed_after_their_last_reader():
    _Probe.log, _Probe.refs = [], []
    x = L.Input((4, 4, 2))
    p1 = _Probe(name="p1")(x)
    p2 = _Probe(name="p2")(p1)
    p3 = _Probe(name="p3")(p2)
    p4 = _Probe(name="p4")(p3)
    out = L.Add()([p4, p1])  # p1 is a skip connection: alive until Add
    model = L.Model(x, _Probe(name="p6")(_Probe(name="p5b")(out)))
    model.predict(np.ones((3, 4, 4, 2), np.float32), batch_size=3)
    log = dict(_Probe.log)
    assert log["p3"] == ["p1", "p2"]  # p2 is p3's input
    assert log["p4"] == ["p1", "p3"]  # p2 is gone
    assert log["p5b"] == ["p4"]  # Add has run in place in p4's buffer; p1 is gone
    assert log["p6"] == ["p5b"]


def test_in_place_layers_never_overwrite_a_value_still_needed(rng):
    """A conv output read by BatchNormalization, an Activation and a skip:
    nothing may work in place on it."""
    x = L.Input((6, 6, 3))
    c = L.Conv2D(4, 3, padding="same")(x)
    bn = L.BatchNormalization()(c)
    act = L.Activation("relu")(c)
    flat = L.Flatten()(c)
    model = L.Model(x, [L.Add()([bn, act, L.Reshape((6, 6, 4))(flat)]), c])
    kernel = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    model.layers[1].set_weights([kernel, np.zeros(4, np.float32)])
    bn_layer = model.layers[2]
    gamma, beta = np.full(4, 2.0, np.float32), np.full(4, 0.5, np.float32)
    bn_layer.set_weights([gamma, beta, np.zeros(4, np.float32), np.ones(4, np.float32)])
    data = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    before = data.copy()
    total, conv = model.predict(data)
    np.testing.assert_array_equal(data, before)  # the caller's input is never written
    ref = fastdeconv.conv2d(data, kernel, 1, "SAME")
    np.testing.assert_allclose(conv, ref, rtol=1e-6, atol=1e-6)
    expected = ref * (gamma / np.sqrt(1 + 1e-3)) + beta + np.maximum(ref, 0) + ref
    np.testing.assert_allclose(total, expected, rtol=1e-5, atol=1e-5)


def test_summary_like_keras(saved):
    model = fastdeconv.load_keras(saved("unet3d", 32, (8, 16, 32)).paths["keras"])
    text = model.summary(print_fn=None)
    lines = text.splitlines()
    assert lines[0] == 'Model: "unet3d"'
    assert "Layer (type)" in text and "Output Shape" in text and "Param #" in text and "Connected to" in text
    assert any(line.startswith("up2 (Conv3DTranspose)") and "(None, 16, 16, 16, 16)" in line for line in lines)
    assert any(line.startswith("skip1 (Concatenate)") and "up1, enc1_relu2" in line for line in lines)
    km = saved("unet3d", 32, (8, 16, 32)).keras_model
    trainable = sum(int(np.prod(w.shape)) for w in km.trainable_weights)
    assert f"Trainable params: {trainable:,}" in text
    assert f"Non-trainable params: {km.count_params() - trainable:,}" in text
    seq = fastdeconv.load_keras(saved("sequential_2d").paths["h5"]).summary(print_fn=None)
    assert "Connected to" not in seq  # a chain needs no connection column


def test_layer_argument_errors():
    with pytest.raises(ValueError, match="padding"):
        L.Conv2D(4, 3, padding="full")
    with pytest.raises(ValueError, match="output_padding"):
        L.Conv2DTranspose(4, 3, strides=2, output_padding=2)
    with pytest.raises(ValueError, match="data_format"):
        L.MaxPooling2D(data_format="NHWC")
    with pytest.raises(ValueError, match="activation"):
        L.Dense(3, activation="gelu_custom")
    with pytest.raises(ValueError, match="interpolation"):
        L.UpSampling2D(interpolation="area")
    conv = L.Conv2D(4, 3)
    conv.set_weights([np.zeros((3, 3, 2, 4), np.float32), np.zeros(4, np.float32)])
    with pytest.raises(fastdeconv.ShapeError, match="kernel"):
        conv(np.zeros((1, 5, 5, 3), np.float32))  # built for 3 input channels: the kernel has 2
    model = L.Sequential([L.InputLayer(shape=(5, 5, 3)), L.Conv2D(2, 3)])
    with pytest.raises(fastdeconv.ShapeError, match="shape"):
        model.predict(np.zeros((1, 6, 5, 3), np.float32))
    with pytest.raises(ValueError, match="backend"):
        model.predict(np.zeros((1, 5, 5, 3), np.float32), backend="gpu")


def test_reshaping_merge_and_softmax_argument_errors():
    """Bad padding / cropping amounts, a cropping that leaves nothing, a
    Subtract of three inputs, a Softmax over the batch axis: each refused
    before any work, saying what was given and what is expected."""
    with pytest.raises(ValueError, match=r"padding=\(1, 2, 3\).*2 \(before, after\) pairs"):
        L.ZeroPadding2D((1, 2, 3))
    with pytest.raises(ValueError, match="cropping=-1.*>= 0"):
        L.Cropping3D(-1)
    with pytest.raises(ValueError, match=r"padding=\(1, 2, 3\)"):
        L.ZeroPadding1D((1, 2, 3))
    with pytest.raises(ValueError, match="cropping=1.5"):
        L.Cropping1D(1.5)
    with pytest.raises(fastdeconv.ShapeError, match="spatial dim 1 of size 4 cropped by 2 \\+ 2"):
        L.Cropping2D(((0, 0), (2, 2)))(L.Input((5, 4, 3)))
    a, b = L.Input((4, 3)), L.Input((4, 3))
    with pytest.raises(fastdeconv.ShapeError, match="exactly 2 inputs"):
        L.Subtract()([a, b, a])
    with pytest.raises(fastdeconv.ShapeError, match="equal shapes"):
        L.Multiply()([a, L.Input((4, 2))])
    with pytest.raises(fastdeconv.ShapeError, match="non-batch axis"):
        L.Softmax(axis=0)(a)
    with pytest.raises(ValueError, match="one axis"):
        L.Softmax(axis=(1, 2))


@pytest.mark.parametrize("channels_first", [False, True])
def test_padding_and_cropping_are_exact_copies(channels_first, rng):
    """Against NumPy's pad and slicing, on both sides of every spatial dim."""
    fmt = "channels_first" if channels_first else "channels_last"
    x = rng.standard_normal((2, 3, 4, 5, 6)).astype(np.float32)
    spatial = (slice(None), slice(None)) if channels_first else (slice(None),)
    pads = ((1, 0), (2, 3), (0, 1))
    width = ((0, 0), (0, 0)) + pads if channels_first else ((0, 0),) + pads + ((0, 0),)
    np.testing.assert_array_equal(L.ZeroPadding3D(pads, data_format=fmt)(x), np.pad(x, width))
    crops = ((1, 1), (0, 2), (3, 0))
    n = x.shape[2:] if channels_first else x.shape[1:4]
    cut = tuple(slice(a, m - b) for (a, b), m in zip(crops, n))
    expected = x[spatial + cut]
    np.testing.assert_array_equal(L.Cropping3D(crops, data_format=fmt)(x), expected)


def test_global_pooling_and_merges_propagate_nan(rng):
    """A NaN in an input makes the max pooling, the mean, and Maximum /
    Minimum NaN where it takes part (NumPy's rules); infinities stay."""
    x = rng.standard_normal((2, 4, 5, 3)).astype(np.float32)
    x[0, 1, 2, 1] = np.nan
    x[1, 0, 0, 2] = np.inf
    got = L.GlobalMaxPooling2D()(x)
    assert np.isnan(got[0, 1]) and got[1, 2] == np.inf
    np.testing.assert_array_equal(got[:, 0], x[:, :, :, 0].max(axis=(1, 2)))
    assert np.isnan(L.GlobalAveragePooling2D()(x)[0, 1])
    y = rng.standard_normal(x.shape).astype(np.float32)
    for layer in (L.Maximum(), L.Minimum()):
        for pair in ([x, y], [y, x]):
            out = layer(pair)
            assert np.isnan(out[0, 1, 2, 1]) and not np.isnan(out[1]).any()


@pytest.mark.parametrize("size", [(2, 2), (3, 1), (1, 4), (5, 3)])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_bilinear_upsampling_matches_keras(size, data_format, rng):
    """Keras' UpSampling2D(interpolation='bilinear') (TensorFlow's
    resize_bilinear, half-pixel centers) on odd sizes, every backend."""
    x = rng.standard_normal((2, 3, 5, 7) if data_format == "channels_first" else (2, 5, 7, 3)).astype(np.float32)
    expected = np.asarray(K.UpSampling2D(size, data_format=data_format, interpolation="bilinear")(x))
    layer = L.UpSampling2D(size, data_format=data_format, interpolation="bilinear")
    for backend in ("cpu", "reference"):
        got = layer(x, backend=backend)
        assert got.shape == expected.shape and rel_err(got, expected) <= 1e-6, backend


def test_other_upsampling_interpolations_are_refused():
    with pytest.raises(ValueError, match="interpolation='bicubic'.*'nearest' or 'bilinear'"):
        L.UpSampling2D(interpolation="bicubic")


@pytest.mark.parametrize("dims", [(3, 1, 2), (2, 3, 1), (1, 3, 2)])
def test_permute_matches_keras(dims, rng):
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    np.testing.assert_array_equal(L.Permute(dims)(x), np.asarray(K.Permute(dims)(x)))
    with pytest.raises(ValueError, match="permutation of 1..n"):
        L.Permute((1, 1, 2))
    with pytest.raises(fastdeconv.ShapeError, match="rank 4"):
        L.Permute(dims)(L.Input((3, 4)))


def test_rescaling_and_elu_layers_match_keras(rng):
    x = (rng.standard_normal((2, 5, 6, 3)) * 40 + 100).astype(np.float32)
    expected = np.asarray(K.Rescaling(1 / 127.5, offset=-1)(x))
    for backend in ("cpu", "reference"):
        assert rel_err(L.Rescaling(1 / 127.5, offset=-1)(x, backend=backend), expected) <= 1e-6
    y = rng.standard_normal((2, 5, 6, 3)).astype(np.float32)
    assert rel_err(L.ELU(alpha=0.7)(y), np.asarray(K.ELU(alpha=0.7)(y))) <= 1e-6
    with pytest.raises(ValueError, match="per-channel arrays"):
        L.Rescaling([1.0, 2.0])


@pytest.mark.parametrize("layer_args", [
    ("LayerNormalization", dict()), ("LayerNormalization", dict(axis=[1, 3], epsilon=1e-5)),
    ("LayerNormalization", dict(axis=2, center=False)), ("LayerNormalization", dict(axis=[1, 2, 3], center=False)),
    ("LayerNormalization", dict(axis=[2, 3], scale=False)), ("GroupNormalization", dict(groups=2)),
    ("GroupNormalization", dict(groups=3, axis=1, scale=False)), ("GroupNormalization", dict(groups=6)),
], ids=lambda a: f"{a[0]}-{a[1]}")
def test_layer_and_group_normalization_match_keras(layer_args, rng):
    """Per-example statistics, then gamma and beta (random), against Keras on
    a shifted, scaled input (where a one-pass float32 variance loses digits)."""
    cls, kwargs = layer_args
    x = (rng.standard_normal((2, 3, 5, 6)) * 3 + 10).astype(np.float32)
    theirs = getattr(K, cls)(**kwargs)
    theirs.build(x.shape)
    theirs.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32) for w in theirs.get_weights()])
    ours = getattr(L, cls)(**kwargs)
    ours.build((None,) + x.shape[1:])
    ours.set_weights(theirs.get_weights())
    expected = np.asarray(theirs(x))
    for backend in ("cpu", "reference"):
        assert rel_err(ours(x, backend=backend), expected) <= 2e-6, backend
    with pytest.raises(fastdeconv.ShapeError, match="divisible by groups"):
        L.GroupNormalization(groups=4)(L.Input((3, 6)))


@pytest.mark.parametrize("size", [(9, 4), (3, 13), (5, 7), (1, 1)])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_resizing_matches_keras(size, interpolation, data_format, rng):
    """Keras' Resizing (TensorFlow's resize, half-pixel centers), up and down."""
    x = rng.standard_normal((2, 3, 5, 7) if data_format == "channels_first" else (2, 5, 7, 3)).astype(np.float32)
    expected = np.asarray(K.Resizing(*size, interpolation=interpolation, data_format=data_format)(x))
    layer = L.Resizing(*size, interpolation=interpolation, data_format=data_format)
    for backend in ("cpu", "reference"):
        got = layer(x, backend=backend)
        assert got.shape == expected.shape and rel_err(got, expected) <= 1e-6, backend
    with pytest.raises(ValueError, match="crop_to_aspect_ratio=True"):
        L.Resizing(4, 4, crop_to_aspect_ratio=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels_first", [False, True])
def test_activation_kernels_match_the_reference_value_by_value(dtype, channels_first, rng):
    """The cpu epilogue's activations (vector blocks of exp, series and
    selects; `cpu_layers`) against the float64 reference, element by
    element, on blocks of odd sizes and on the values where their formulas
    switch (tanh's polynomial below 0.625, expm1's series below 0.25,
    mish past 20, gelu's series to |x| = 3 sqrt 2, exp's underflow)."""
    from fastdeconv.backends import cpu_layers, reference_layers

    special = np.array([0.0, -0.0, 0.25, -0.25, 0.2501, -0.2501, 0.625, -0.625, 20.0, 20.01, -20.0, 3 * 2 ** 0.5,
                        -3 * 2 ** 0.5, 4.25, -4.25, -87.0, -88.0, 88.0, 3.0, -3.0, 6.0, 1e-30, -1e-30])
    C = 3
    n = 2 * C * 1357  # rows longer than a block, not a multiple of it
    values = np.concatenate([special, rng.standard_normal(n) * 4, rng.standard_normal(n) * 0.1])[:n]
    x = values.reshape((2, C, -1) if channels_first else (2, -1, C)).astype(dtype)
    eps = np.finfo(dtype).eps
    for name in cpu_layers.ACTIVATIONS:
        alpha = {"leaky_relu": 0.2, "elu": 0.7, "relu6": 6.0}.get(name, 0.0)
        # no bias, scale or shift (they are (v + 0) * 1 + 0: exact), so the
        # reference sees the same arguments
        got = cpu_layers.epilogue(x.copy(), C, channels_first, None, None, None, name, alpha)
        ref = reference_layers.epilogue(x.astype(np.float64), C, channels_first, None, None, None, name, alpha)
        # float32 exp is 0 below -87.3 (no subnormal results; Keras' too), so
        # are the products with it there
        flushed = np.abs(ref) < np.finfo(dtype).tiny
        if dtype == np.float32 and name in ("sigmoid", "softplus", "silu", "mish", "exponential"):
            flushed |= x < -87.3
        with np.errstate(all="ignore"):
            rel = np.abs(got - ref) / np.abs(ref)
        assert np.array_equal(np.isnan(got), np.isnan(ref)), name
        ok = ~flushed & np.isfinite(ref)
        assert rel[ok].max() <= 4 * eps, (name, rel[ok].max() / eps)
        assert np.all(np.abs(got[flushed] - ref[flushed]) <= 1e-30), name  # values of order 1e-36 or below
